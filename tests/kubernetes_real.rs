//! The campaign scenarios of `tests/kubernetes_campaign.rs` against a real Kubernetes
//! control plane (`scripts/k8s-dev.sh up`: Kubernetes 1.34 built from source, a real kubelet
//! on containerd + runc), through the `flow` binary. The pods are real containers of an image
//! made from this build's `flow` (`scripts/k8s-dev.sh image`); the driver runs under the
//! service-account token of the example RBAC (`examples/kubernetes/driver-in-cluster.yaml`),
//! and its requests are counted in the API server's audit log.
//!
//! What stays with the API double only (faults a real server cannot be made to produce on
//! demand): a create answered 500 (the driver's retry), `410 Gone` on an open watch (the
//! re-list), and a server that says it is older than 1.29 while being 1.34 (here the legacy Job
//! shape is forced through `server_version` instead, and the real Job controller runs it).
//!
//! Differences from the double's versions, all from the node: it has two CPUs and every pod
//! requests one, so at most two pods run at once; the `max_running` cap is therefore tested
//! at 1 (below the node's capacity) and `flow cancel` with two of four pods running.
//!
//! Without a control plane the tests say SKIPPED and pass, except under CI (`CI=true`) or with
//! `FLOW_K8S_REAL=1`, where they fail.

mod real_cluster;
mod support;
use real_cluster::RealCluster;
use support::*;

use flow_engine::state::{StateStore, TaskRow};
use flow_engine::task_state::TaskState;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A machine on the real cluster, the driver's kubeconfig, and a campaign `c.yaml`.
fn campaign(c: &RealCluster, dir: &Path, name: &str, step: &str) {
    campaign_with(c, dir, name, step, "")
}

fn campaign_with(c: &RealCluster, dir: &Path, name: &str, step: &str, kubernetes: &str) {
    c.write_kubeconfig(&dir.join("kubeconfig"));
    std::fs::write(
        dir.join("machine.yaml"),
        format!(
            "machine:\n  name: real-k8s\n  executor: kubernetes\n  root: {root}\n  launcher: none\n  kubernetes:\n{block}{kubernetes}  job_types:\n    small: {{cpus_per_task: 1, mem: 100M, time: 10m}}\n  defaults:\n    resources: {{job_type: small}}\n",
            root = dir.join("rootstock").display(),
            block = c.kubernetes_block(),
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("c.yaml"),
        format!("campaign: {{name: {name}, version: v1, machine: machine.yaml, output: out}}\nsteps:\n{step}"),
    )
    .unwrap();
}

/// `flow ARGS` with the driver's kubeconfig, under umask 0: the driver runs as root here and
/// the pods as user 1000, on the same hostPath volume (a real cluster's shared volume is
/// writable by the pods' fsGroup; a hostPath ignores fsGroup).
fn k8s_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg("umask 0 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_flow"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("FLOW_RECIPES")
        .env("KUBECONFIG", dir.join("kubeconfig"));
    c
}

/// Longest any one `flow` call may take here (real pods start in about a second; a
/// recreated index waits out the Job controller's backoff of 10 s and more).
const LIMIT: Duration = Duration::from_secs(240);

fn wait_limited(child: &mut Child) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("flow did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn k8s(dir: &Path, args: &[&str]) -> Output {
    let mut child = k8s_cmd(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the flow binary runs");
    wait_limited(&mut child);
    child.wait_with_output().unwrap()
}

fn spawn_driver(dir: &Path) -> Child {
    k8s_cmd(dir, &["run", "c.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn pods_in_phase(c: &RealCluster, wanted: &str) -> Vec<Value> {
    c.pods()
        .into_iter()
        .filter(|p| phase(p) == wanted)
        .collect()
}

/// Pods whose container is running (phase Running, not being deleted).
fn running_pods(c: &RealCluster) -> Vec<Value> {
    pods_in_phase(c, "Running")
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| {
            p.pointer("/status/containerStatuses/0/state/running")
                .is_some()
        })
        .collect()
}

fn completion_index(pod: &Value) -> String {
    pod.pointer("/metadata/annotations/batch.kubernetes.io~1job-completion-index")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn name_of(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn tasks(dir: &Path, name: &str) -> (StateStore, HashMap<String, TaskRow>) {
    campaign_state(&dir.join(format!("out/v1_{name}")))
}

fn output(dir: &Path, name: &str, file: &str) -> String {
    std::fs::read_to_string(dir.join(format!("out/v1_{name}/{file}")))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn jobs_path(c: &RealCluster) -> String {
    format!("/apis/batch/v1/namespaces/{}/jobs", c.ns)
}

fn pods_path(c: &RealCluster) -> String {
    format!("/api/v1/namespaces/{}/pods", c.ns)
}

fn ledger(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(dir.join("ledger"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn real_a_campaign_runs_as_indexed_jobs_and_a_failed_task_is_retried() {
    let Some(c) = RealCluster::start("retry") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        &c,
        d,
        "k8s-retry",
        "  work:\n    kind: command\n    array: {i: {range: [0, 6]}}\n    command: 'if [ {{i}} = 4 ] && [ \"$FLOW_ATTEMPT\" = 1 ]; then echo boom >&2; exit 3; fi; echo {{i}} > {{output}}'\n    output: data/{{i}}.txt\n    execution: {batch_size: 3, max_retries: 2}\n",
    );
    let plan = k8s(d, &["plan", "c.yaml"]);
    assert_ok(&plan);
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    for i in 0..6 {
        assert_eq!(
            output(d, "k8s-retry", &format!("data/{i}.txt")).trim(),
            i.to_string()
        );
    }
    // Two batches of three, and one Job for the retry of task 4: three Jobs, three POSTs
    // (no create failed here), all admitted by the real API server as the driver's account.
    let jobs = c.jobs();
    assert_eq!(jobs.len(), 3, "{jobs:#?}");
    assert_eq!(c.count("POST", &jobs_path(&c)), 3);
    let first = jobs
        .iter()
        .find(|j| j.pointer("/metadata/annotations/flow~1batch") == Some(&"work-b00000".into()))
        .expect("the first batch's Job");
    let first_name = name_of(first);
    assert!(
        text(&plan.stdout).contains(&first_name),
        "`flow plan` shows the Job that `flow run` creates ({first_name}):\n{}",
        text(&plan.stdout)
    );
    assert_eq!(first.pointer("/spec/completions"), Some(&3.into()));
    assert_eq!(
        first.pointer("/spec/completionMode"),
        Some(&"Indexed".into())
    );
    // The real Job controller finished every Job.
    for job in &jobs {
        let complete = job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|cond| cond["type"] == "Complete" && cond["status"] == "True");
        let failed_index = job.pointer("/status/failedIndexes").is_some();
        assert!(complete || failed_index, "{job:#}");
    }
    let retry = jobs
        .iter()
        .find(|j| j.pointer("/metadata/annotations/flow~1batch") == Some(&"work-b00001-a2".into()))
        .expect("a Job for the retry");
    assert_eq!(retry.pointer("/spec/completions"), Some(&1.into()));

    // The result came back in the real kubelet's termination message.
    let failed = pods_in_phase(&c, "Failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let message = failed[0]
        .pointer("/status/containerStatuses/0/state/terminated/message")
        .and_then(Value::as_str)
        .unwrap();
    let result: Value = serde_json::from_str(message).unwrap();
    assert_eq!(result["schema"], "flow-pod-result/1");
    assert_eq!(result["attempt"], 1);
    assert_eq!(result["outcome"]["error_class"], "nonzero-exit");
    assert_eq!(result["outcome"]["exit_code"], 3);
    assert_eq!(pods_in_phase(&c, "Succeeded").len(), 6);
    let (store, rows) = tasks(d, "k8s-retry");
    assert!(rows.values().all(|r| r.state == TaskState::Succeeded));
    let retried: Vec<&TaskRow> = rows.values().filter(|r| r.attempts == 2).collect();
    assert_eq!(retried.len(), 1, "{rows:#?}");
    let attempts = store.attempts(&retried[0].id).unwrap();
    assert_eq!(attempts[0].error_class.as_deref(), Some("nonzero-exit"));

    // One LIST and watches of the campaign's pods; never a GET per pod; nothing refused.
    let requests = c.requests();
    let pods = pods_path(&c);
    let pod_lists = requests
        .iter()
        .filter(|r| r.is_list() && r.path == pods)
        .count();
    assert_eq!(pod_lists, 1, "{requests:#?}");
    assert!(requests.iter().any(|r| r.is_watch() && r.path == pods));
    assert!(
        !requests
            .iter()
            .any(|r| r.method == "GET" && r.path.starts_with(&format!("{pods}/"))),
        "{requests:#?}"
    );
    assert!(requests.iter().filter(|r| r.path == pods).all(|r| r
        .query
        .contains("labelSelector=flow%2Fcampaign%3Dv1_k8s-retry")));
    let refused: Vec<_> = requests.iter().filter(|r| r.code == 403).collect();
    assert!(
        refused.is_empty(),
        "the example Role is not enough: {refused:#?}"
    );
}

#[test]
fn real_an_evicted_pod_is_recreated_without_counting_an_attempt() {
    let Some(c) = RealCluster::start("evict") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    // No retries at all: if an eviction counted as a failure, the campaign would fail.
    campaign(
        &c,
        d,
        "k8s-disrupt",
        "  work:\n    kind: command\n    array: {i: {range: [0, 2]}}\n    command: 'sleep 6; echo {{i}} > {{output}}'\n    output: data/{{i}}.txt\n    execution: {max_retries: 0}\n",
    );
    let mut driver = spawn_driver(d);
    assert!(
        c.wait_until(Duration::from_secs(60), |c| running_pods(c).len() == 2),
        "the pods did not start: {:#?}",
        c.pods()
    );
    let mut running = running_pods(&c);
    running.sort_by_key(completion_index);
    // Index 0: evicted with a 1 s grace period, its container is killed; the pod fails with
    // DisruptionTarget and the real Job controller recreates the index (podFailurePolicy
    // Ignore). Index 1: evicted with the default 30 s grace; its task ends within it, the
    // pod Succeeded and the Job counts the index as done (no replacement).
    c.evict_pod(&name_of(&running[0]), Some(1));
    c.evict_pod(&name_of(&running[1]), None);
    let status = wait_limited(&mut driver);
    assert_eq!(status.code(), Some(0));
    for i in 0..2 {
        assert_eq!(
            output(d, "k8s-disrupt", &format!("data/{i}.txt")).trim(),
            i.to_string()
        );
    }
    let pods_of = |index: &str| {
        c.pods()
            .into_iter()
            .filter(|p| completion_index(p) == index)
            .count()
    };
    // Evicted pods are deleted once they ended: index 0 keeps its replacement only.
    assert!(
        c.wait_until(Duration::from_secs(40), |_| pods_of("1") == 0
            && pods_of("0") == 1),
        "index 0 was recreated, index 1 was not: {:#?}",
        c.pods()
    );
    let replacement = c.pods().remove(0);
    assert_ne!(name_of(&replacement), name_of(&running[0]));
    assert_eq!(phase(&replacement), "Succeeded");
    assert_eq!(c.count("POST", &jobs_path(&c)), 1);
    let (_, rows) = tasks(d, "k8s-disrupt");
    assert_eq!(rows.len(), 2);
    assert!(
        rows.values()
            .all(|r| r.state == TaskState::Succeeded && r.attempts == 1),
        "{rows:#?}"
    );
}

#[test]
fn real_kill_9_of_the_driver_adopts_running_jobs_without_a_second_create() {
    let Some(c) = RealCluster::start("adopt") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        &c,
        d,
        "k8s-adopt",
        "  work:\n    kind: command\n    array: {i: {range: [0, 6]}}\n    command: 'sleep 3; echo {{i}} >> ../../ledger'\n    execution: {batch_size: 3}\n",
    );
    let mut driver = spawn_driver(d);
    assert!(
        c.wait_until(Duration::from_secs(60), |c| c.jobs().len() == 2
            && !running_pods(c).is_empty()),
        "the Jobs were not created: {:#?}",
        c.jobs()
    );
    driver.kill().unwrap(); // SIGKILL
    driver.wait().unwrap();
    let creates = c.count("POST", &jobs_path(&c));
    assert_eq!(creates, 2);
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    assert_eq!(
        c.count("POST", &jobs_path(&c)),
        creates,
        "a Job was created again"
    );
    assert_eq!(c.jobs().len(), 2);
    assert_eq!(
        ledger(d),
        ["0", "1", "2", "3", "4", "5"],
        "every task ran exactly once"
    );
    let (_, rows) = tasks(d, "k8s-adopt");
    assert!(
        rows.values()
            .all(|r| r.state == TaskState::Succeeded && r.attempts == 1),
        "{rows:#?}"
    );
}

#[test]
fn real_flow_cancel_deletes_the_campaigns_jobs_and_their_pods() {
    let Some(c) = RealCluster::start("cancel") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        &c,
        d,
        "k8s-cancel",
        "  work:\n    kind: command\n    array: {i: {range: [0, 4]}}\n    command: 'sleep 120'\n    execution: {batch_size: 2}\n",
    );
    let mut driver = spawn_driver(d);
    // Two CPUs, one per pod: two of the four pods run, two wait for the node.
    assert!(
        c.wait_until(Duration::from_secs(60), |c| running_pods(c).len() == 2
            && c.pods().len() == 4),
        "the pods did not start: {:#?}",
        c.pods()
    );
    let cancel = k8s(d, &["cancel", "c.yaml"]);
    assert_ok(&cancel);
    let status = wait_limited(&mut driver);
    assert_ne!(
        status.code(),
        Some(0),
        "a cancelled campaign is not a success"
    );
    // The containers get SIGTERM, then SIGKILL after the 30 s grace period.
    assert!(
        c.wait_until(Duration::from_secs(90), |c| c.jobs().is_empty()
            && c.pods().is_empty()),
        "Jobs or pods are left: {:#?} {:#?}",
        c.jobs(),
        c.pods()
    );
    assert_eq!(c.count("DELETE", &jobs_path(&c)), 2);
    let (_, rows) = tasks(d, "k8s-cancel");
    assert!(
        rows.values().all(|r| r.state == TaskState::Cancelled),
        "{rows:#?}"
    );
}

#[test]
fn real_a_pod_that_cannot_start_fails_its_tasks_with_the_reason() {
    let Some(c) = RealCluster::start("stuck") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    // The Secret does not exist: the real kubelet cannot build the container's environment.
    campaign_with(
        &c,
        d,
        "k8s-stuck",
        "  work:\n    kind: command\n    array: {i: {range: [0, 2]}}\n    command: 'true'\n",
        "    secret_env: [{name: API_TOKEN, secret: missing-secret, key: token}]\n",
    );
    let out = k8s(d, &["run", "c.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (store, rows) = tasks(d, "k8s-stuck");
    assert_eq!(rows.len(), 2);
    for row in rows.values() {
        assert_eq!(row.state, TaskState::Failed);
        let attempts = store.attempts(&row.id).unwrap();
        assert_eq!(attempts.len(), 1, "launch failures are not retried");
        assert_eq!(attempts[0].error_class.as_deref(), Some("launch-failed"));
        let message = attempts[0].message.clone().unwrap_or_default();
        assert!(message.contains("CreateContainerConfigError"), "{message}");
    }
    assert!(
        c.wait_until(Duration::from_secs(30), |c| c.jobs().is_empty()),
        "the stuck Job is deleted"
    );
}

#[test]
fn real_a_secret_reaches_the_pod_by_reference_and_its_value_is_stored_nowhere() {
    const VALUE: &str = "s3cr3t-value-4711";
    let Some(c) = RealCluster::start("secret") else {
        return;
    };
    c.create_secret("api", "token", VALUE);
    let dir = c.tempdir();
    let d = dir.path();
    campaign_with(
        &c,
        d,
        "k8s-secret",
        "  work:\n    kind: command\n    command: 'test ${#API_TOKEN} = 17 && echo got-it'\n    execution: {max_retries: 0}\n",
        "    secret_env: [{name: API_TOKEN, secret: api, key: token}]\n",
    );
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let plan = k8s(d, &["plan", "c.yaml"]);
    assert_ok(&plan);
    assert!(!text(&plan.stdout).contains(VALUE));
    let job = c.jobs()[0].to_string();
    assert!(job.contains("secretKeyRef"), "{job}");
    assert!(!job.contains(VALUE));
    let mut checked = 0;
    for file in walk(d) {
        let content = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(
            !content.contains(VALUE),
            "{} holds the secret value",
            file.display()
        );
        checked += 1;
    }
    assert!(
        checked > 5,
        "state, manifests, logs and results were looked at"
    );
}

#[test]
fn real_flow_logs_reads_the_pod_log_of_an_attempt() {
    let Some(c) = RealCluster::start("logs") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        &c,
        d,
        "k8s-logs",
        "  work:\n    kind: command\n    command: 'echo to-the-file; exit 2'\n    execution: {max_retries: 0}\n",
    );
    let out = k8s(d, &["run", "c.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let (_, rows) = tasks(d, "k8s-logs");
    let id = rows.keys().next().unwrap().clone();
    let logs = k8s(d, &["logs", "c.yaml", &id]);
    assert_ok(&logs);
    let shown = text(&logs.stdout);
    assert!(
        shown.contains("executor kubernetes job flow-work-"),
        "{shown}"
    );
    assert!(
        shown.contains("to-the-file"),
        "the task's stdout file: {shown}"
    );
    let pod_name = name_of(&c.pods()[0]);
    assert!(
        shown.contains(&format!("--- pod log ({pod_name}) ---")),
        "{shown}"
    );
    // The pod log came from the kubelet through the API server, as the driver's account.
    assert!(
        c.requests()
            .iter()
            .any(|r| r.path == format!("{}/{pod_name}/log", pods_path(&c)) && r.code == 200),
        "{:#?}",
        c.requests()
    );
}

#[test]
fn real_flow_cancel_without_a_driver_deletes_the_jobs() {
    let Some(c) = RealCluster::start("orphans") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        &c,
        d,
        "k8s-orphans",
        "  work:\n    kind: command\n    array: {i: {range: [0, 4]}}\n    command: 'sleep 120'\n    execution: {batch_size: 2}\n",
    );
    let mut driver = spawn_driver(d);
    assert!(
        c.wait_until(Duration::from_secs(60), |c| c.jobs().len() == 2),
        "the Jobs were not created"
    );
    driver.kill().unwrap();
    driver.wait().unwrap();
    let cancel = k8s(d, &["cancel", "c.yaml"]);
    assert_ok(&cancel);
    assert!(
        text(&cancel.stdout).contains("deleted 2 Kubernetes Job(s)"),
        "{}",
        text(&cancel.stdout)
    );
    assert!(
        c.wait_until(Duration::from_secs(90), |c| c.jobs().is_empty()
            && c.pods().is_empty())
    );
}

/// The most containers that ran at once, from their start and finish times (whole seconds,
/// truncated alike, so two that did not overlap never count as overlapping).
fn most_at_once(pods: &[Value]) -> usize {
    let seconds = |p: &Value, field: &str| -> Option<i64> {
        let text = p
            .pointer(&format!(
                "/status/containerStatuses/0/state/terminated/{field}"
            ))?
            .as_str()?;
        let out = Command::new("date")
            .args(["-u", "-d", text, "+%s"])
            .output()
            .ok()?;
        text_to_i64(&out.stdout)
    };
    let spans: Vec<(i64, i64)> = pods
        .iter()
        .filter_map(|p| Some((seconds(p, "startedAt")?, seconds(p, "finishedAt")?)))
        .collect();
    assert_eq!(spans.len(), pods.len(), "every pod ran to its end");
    let mut most = 0;
    for &(start, _) in &spans {
        let at_once = spans
            .iter()
            .filter(|(s, f)| *s <= start && start < *f)
            .count();
        most = most.max(at_once);
    }
    most
}

fn text_to_i64(bytes: &[u8]) -> Option<i64> {
    String::from_utf8_lossy(bytes).trim().parse().ok()
}

#[test]
fn real_max_running_is_shared_out_among_the_jobs_of_a_step() {
    let Some(c) = RealCluster::start("cap") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    // Four Jobs of two tasks, at most one pod of the step at once (the node could run two).
    campaign(
        &c,
        d,
        "k8s-cap",
        "  work:\n    kind: command\n    array: {i: {range: [0, 8]}}\n    command: 'sleep 2'\n    execution: {batch_size: 2, max_running: 1}\n",
    );
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let pods = c.pods();
    assert_eq!(pods.len(), 8);
    let most = most_at_once(&pods);
    assert_eq!(most, 1, "{most} pods ran at once");
    let jobs = c.jobs();
    assert_eq!(jobs.len(), 4);
    // Jobs waited in the driver and were created as capacity freed up, or had their
    // parallelism raised: every Job got a slot in the end.
    let share: u64 = jobs
        .iter()
        .map(|j| {
            j.pointer("/spec/parallelism")
                .and_then(Value::as_u64)
                .unwrap()
        })
        .sum();
    assert!(share >= 4, "every Job has at least one slot: {share}");
}

#[test]
fn real_a_pod_lost_while_no_driver_ran_is_retried_not_awaited_forever() {
    let Some(c) = RealCluster::start("lost") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        &c,
        d,
        "k8s-lost",
        "  work:\n    kind: command\n    array: {i: {range: [0, 2]}}\n    command: 'if [ \"$FLOW_ATTEMPT\" = 1 ] && [ {{i}} = 0 ]; then sleep 60; fi; echo {{i}} >> ../../ledger'\n    execution: {batch_size: 2, max_retries: 1}\n",
    );
    let mut driver = spawn_driver(d);
    let index0_running = |c: &RealCluster| {
        running_pods(c)
            .into_iter()
            .find(|p| completion_index(p) == "0")
    };
    assert!(
        c.wait_until(Duration::from_secs(60), |c| index0_running(c).is_some()),
        "index 0 did not start"
    );
    driver.kill().unwrap();
    driver.wait().unwrap();
    // While no driver runs, the container is killed (no result written) and the pod
    // deleted; the real Job controller fails the index (podFailurePolicy FailIndex).
    let pod = index0_running(&c).unwrap();
    c.kill_container(&pod);
    assert!(
        c.wait_until(Duration::from_secs(60), |c| {
            c.jobs()[0].pointer("/status/failedIndexes") == Some(&"0".into())
        }),
        "{:#?}",
        c.jobs()
    );
    c.delete_pod(&name_of(&pod));
    assert!(c.wait_until(Duration::from_secs(60), |c| !c
        .pods()
        .iter()
        .any(|p| name_of(p) == name_of(&pod))));
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let (store, rows) = tasks(d, "k8s-lost");
    let lost = rows.values().find(|r| r.index == 0).unwrap();
    assert_eq!((lost.state, lost.attempts), (TaskState::Succeeded, 2));
    let attempts = store.attempts(&lost.id).unwrap();
    assert_eq!(attempts[0].error_class.as_deref(), Some("node-failure"));
    assert_eq!(ledger(d), ["0", "1"]);
}

#[test]
fn real_the_legacy_job_shape_reruns_an_index_without_running_its_attempt_again() {
    let Some(c) = RealCluster::start("legacy") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    // The Job shape for clusters before 1.29 (no per-index retries), on the real 1.34 Job
    // controller: it reruns the failed index itself.
    campaign_with(
        &c,
        d,
        "k8s-legacy",
        "  work:\n    kind: command\n    array: {i: {range: [0, 2]}}\n    command: 'echo {{i}}-$FLOW_ATTEMPT >> ../../ledger; if [ {{i}} = 1 ] && [ \"$FLOW_ATTEMPT\" = 1 ]; then exit 3; fi'\n    execution: {batch_size: 2, max_retries: 1}\n",
        "    server_version: \"1.27\"\n",
    );
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let jobs = c.jobs();
    let first = jobs
        .iter()
        .find(|j| j.pointer("/metadata/annotations/flow~1batch") == Some(&"work-b00000".into()))
        .unwrap();
    assert!(first.pointer("/spec/backoffLimitPerIndex").is_none());
    let first_name = name_of(first);
    // The rerun comes after the Job controller's backoff (10 s); it finds the attempt's
    // result on the volume and runs nothing.
    assert!(
        c.wait_until(Duration::from_secs(60), |c| {
            c.pods()
                .into_iter()
                .filter(|p| {
                    p.pointer("/metadata/labels/batch.kubernetes.io~1job-name")
                        == Some(&first_name.clone().into())
                        && completion_index(p) == "1"
                })
                .count()
                >= 2
        }),
        "the index was rerun by Kubernetes: {:#?}",
        c.pods()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ledger(d), ["0-1", "1-1", "1-2"]);
}

#[test]
fn real_a_pod_past_its_deadline_is_walltime_and_succeeds_with_escalated_time() {
    let Some(c) = RealCluster::start("deadline") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        &c,
        d,
        "k8s-deadline",
        // The real kubelet ends a pod past its deadline with SIGTERM and SIGKILL after the
        // 30 s grace period; `flow task run-manifest` (the container's PID 1) does not act
        // on SIGTERM, so the task runs on for the grace period: it needs longer than 33 s to
        // be cut short. The escalated deadline (60 s) fits it.
        "  long:\n    kind: command\n    command: 'sleep 40; echo done > {{output}}'\n    output: long.txt\n    resources: {time: 3s}\n    execution: {max_retries: 1, retry_backoff: {initial: 1s}, on_retry: {time: x20, max_time: 1m}}\n",
    );
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    assert_eq!(output(d, "k8s-deadline", "long.txt").trim(), "done");
    let (store, rows) = tasks(d, "k8s-deadline");
    let task = rows.values().next().unwrap();
    assert_eq!((task.state, task.attempts), (TaskState::Succeeded, 2));
    let attempts = store.attempts(&task.id).unwrap();
    assert_eq!(
        attempts[0].error_class.as_deref(),
        Some("walltime"),
        "{attempts:?}"
    );
    let mut deadlines: Vec<u64> = c
        .jobs()
        .iter()
        .filter_map(|j| {
            j.pointer("/spec/template/spec/activeDeadlineSeconds")?
                .as_u64()
        })
        .collect();
    deadlines.sort();
    assert_eq!(deadlines, [3, 60]);
    // The real kubelet ended the first pod for its deadline.
    assert!(
        c.pods()
            .iter()
            .any(|p| p.pointer("/status/reason") == Some(&"DeadlineExceeded".into())),
        "{:#?}",
        c.pods()
    );
}

/// The 1,000-task campaign of `engine/benches/kubernetes_api.rs` against the real control
/// plane: API requests (from the audit log) and the driver's CPU time. Not a test (it takes
/// minutes: the node runs two pods at once); run it with
/// `cargo test -p flow-engine --test kubernetes_real -- --ignored --nocapture real_bench`.
/// `FLOW_K8S_BENCH_FLOW` names the driver binary to measure (default: this build's `flow`).
#[test]
#[ignore]
fn real_bench_api_traffic_of_a_1000_task_campaign() {
    const TASKS: usize = 1000;
    const BATCH: usize = 100;
    const MAX_RUNNING: usize = 50;
    let Some(c) = RealCluster::start("bench") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        &c,
        d,
        "kbench",
        &format!("  work:\n    kind: command\n    array: {{i: {{range: [0, {TASKS}]}}}}\n    command: 'true'\n    execution: {{batch_size: {BATCH}, max_running: {MAX_RUNNING}}}\n"),
    );
    let driver = std::env::var("FLOW_K8S_BENCH_FLOW")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_flow").to_string());
    let start = std::time::Instant::now();
    let log = std::fs::File::create(d.join("driver.log")).unwrap();
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 0 && exec \"$0\" \"$@\"")
        .arg(&driver)
        .args(["run", "c.yaml"])
        .current_dir(d)
        .env("KUBECONFIG", d.join("kubeconfig"))
        .env("NO_COLOR", "1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: wait4 on our own child; usage is a valid out-pointer.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    std::mem::forget(child);
    let wall = start.elapsed();
    assert_eq!(
        status,
        0,
        "{}",
        std::fs::read_to_string(d.join("driver.log")).unwrap_or_default()
    );
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    let requests = c.requests();
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &requests {
        let after_ns: Vec<&str> = r
            .path
            .split('/')
            .skip_while(|p| *p != "namespaces")
            .collect();
        let resource = after_ns.get(2).copied().unwrap_or(r.path.as_str());
        let sub = match (after_ns.len() > 3, r.path.rsplit('/').next()) {
            (true, Some("log")) => "/<name>/log",
            (true, _) => "/<name>",
            _ => "",
        };
        let verb = match r.verb.as_str() {
            "watch" => "WATCH",
            "list" => "LIST",
            _ => r.method.as_str(),
        };
        *kinds
            .entry(format!("{verb} {resource}{sub} ({})", r.code))
            .or_default() += 1;
    }
    println!("real kubernetes: {TASKS} tasks, batch_size {BATCH}, max_running {MAX_RUNNING}");
    println!("  driver: {driver}");
    println!("  flow run wall time: {:.1} s", wall.as_secs_f64());
    println!(
        "  driver CPU (user + sys): {cpu:.2} s, peak RSS {:.1} MB",
        usage.ru_maxrss as f64 / 1024.0
    );
    println!("  Jobs created: {}", c.jobs().len());
    println!("  API requests: {} in all", requests.len());
    for (kind, n) in &kinds {
        println!("    {kind}: {n}");
    }
    println!(
        "  requests per task: {:.3}",
        requests.len() as f64 / TASKS as f64
    );
    let (_, rows) = tasks(d, "kbench");
    assert_eq!(rows.len(), TASKS);
    assert!(rows.values().all(|r| r.state == TaskState::Succeeded));
}
