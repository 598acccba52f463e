//! Whole campaigns on the Kubernetes executor against the in-process API double
//! (`flow-kube-double`): real HTTP on loopback, the unmodified `kube` client in the `flow`
//! binary, Indexed Jobs whose pods run `flow task run-manifest` as local processes.
//!
//! What a real cluster would add (image pulls, scheduling, the real kubelet and Job
//! controller) is not here; `docs/kubernetes.md` says what is verified where.

mod support;
use support::*;

use flow_engine::state::{StateStore, TaskRow};
use flow_engine::task_state::TaskState;
use flow_kube_double::{ApiDouble, Options};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const NS: &str = "flow-test";
const JOBS: &str = "/apis/batch/v1/namespaces/flow-test/jobs";
const PODS: &str = "/api/v1/namespaces/flow-test/pods";

fn double() -> ApiDouble {
    ApiDouble::start(Options {
        namespace: NS.into(),
        ..Options::default()
    })
    .expect("the API double starts")
}

/// A machine on the double's cluster, its kubeconfig, and a campaign `c.yaml` with one
/// command step.
fn campaign(double: &ApiDouble, dir: &Path, name: &str, step: &str) {
    campaign_with(double, dir, name, step, "")
}

/// [`campaign`] with more lines in the machine's `kubernetes:` block.
fn campaign_with(double: &ApiDouble, dir: &Path, name: &str, step: &str, kubernetes: &str) {
    double.write_kubeconfig(&dir.join("kubeconfig")).unwrap();
    std::fs::write(
        dir.join("machine.yaml"),
        format!(
            "machine:\n  name: double-k8s\n  executor: kubernetes\n  root: {root}\n  launcher: none\n  kubernetes:\n    namespace: {NS}\n    image: registry.invalid/flow:test\n    flow_binary: {flow}\n{kubernetes}  job_types:\n    small: {{cpus_per_task: 1, mem: 100M, time: 10m}}\n  defaults:\n    resources: {{job_type: small}}\n",
            root = dir.join("rootstock").display(),
            flow = env!("CARGO_BIN_EXE_flow"),
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("c.yaml"),
        format!("campaign: {{name: {name}, version: v1, machine: machine.yaml, output: out}}\nsteps:\n{step}"),
    )
    .unwrap();
}

fn k8s_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = flow_cmd(dir, args);
    c.env("KUBECONFIG", dir.join("kubeconfig"));
    c
}

/// Longest any one `flow` call may take here: a hang fails the test instead of CI.
const LIMIT: Duration = Duration::from_secs(120);

/// Wait for a child at most [`LIMIT`]; kill it and fail past that.
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
    // Small outputs: the pipes do not fill before the end.
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

fn pods_in_phase(double: &ApiDouble, wanted: &str) -> Vec<Value> {
    double
        .pods(NS)
        .into_iter()
        .filter(|p| phase(p) == wanted)
        .collect()
}

fn completion_index(pod: &Value) -> String {
    pod.pointer("/metadata/annotations/batch.kubernetes.io~1job-completion-index")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The campaign's tasks as the state database has them.
fn tasks(dir: &Path, name: &str) -> (StateStore, HashMap<String, TaskRow>) {
    campaign_state(&dir.join(format!("out/v1_{name}")))
}

fn output(dir: &Path, name: &str, file: &str) -> String {
    std::fs::read_to_string(dir.join(format!("out/v1_{name}/{file}")))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn a_campaign_runs_as_indexed_jobs_and_a_failed_task_is_retried() {
    let double = double();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    campaign(
        &double,
        d,
        "k8s-retry",
        "  work:\n    kind: command\n    array: {i: {range: [0, 6]}}\n    command: 'if [ {{i}} = 4 ] && [ \"$FLOW_ATTEMPT\" = 1 ]; then echo boom >&2; exit 3; fi; echo {{i}} > {{output}}'\n    output: data/{{i}}.txt\n    execution: {batch_size: 3, max_retries: 2}\n",
    );
    let plan = k8s(d, &["plan", "c.yaml"]);
    assert_ok(&plan);
    // The first create is answered 500: the driver retries it.
    double.inject_failure("POST", JOBS, 500, 1);
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    for i in 0..6 {
        assert_eq!(
            output(d, "k8s-retry", &format!("data/{i}.txt")).trim(),
            i.to_string()
        );
    }

    // Two batches of three, and one Job for the retry of task 4: three Jobs, four POSTs.
    let jobs = double.jobs(NS);
    assert_eq!(jobs.len(), 3, "{jobs:#?}");
    assert_eq!(double.count("POST", JOBS), 4);
    let first = jobs
        .iter()
        .find(|j| j.pointer("/metadata/annotations/flow~1batch") == Some(&"work-b00000".into()))
        .expect("the first batch's Job");
    let first_name = first.pointer("/metadata/name").unwrap().as_str().unwrap();
    assert!(
        text(&plan.stdout).contains(first_name),
        "`flow plan` shows the Job that `flow run` creates ({first_name}):\n{}",
        text(&plan.stdout)
    );
    assert_eq!(first.pointer("/spec/completions"), Some(&3.into()));
    assert_eq!(
        first.pointer("/spec/completionMode"),
        Some(&"Indexed".into())
    );
    let retry = jobs
        .iter()
        .find(|j| j.pointer("/metadata/annotations/flow~1batch") == Some(&"work-b00001-a2".into()))
        .expect("a Job for the retry");
    assert_eq!(retry.pointer("/spec/completions"), Some(&1.into()));

    // Results came back in termination messages, the failure with flow's own class.
    let failed = pods_in_phase(&double, "Failed");
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
    assert_eq!(pods_in_phase(&double, "Succeeded").len(), 6);
    let (store, rows) = tasks(d, "k8s-retry");
    assert!(rows.values().all(|r| r.state == TaskState::Succeeded));
    let retried: Vec<&TaskRow> = rows.values().filter(|r| r.attempts == 2).collect();
    assert_eq!(retried.len(), 1, "{rows:#?}");
    let attempts = store.attempts(&retried[0].id).unwrap();
    assert_eq!(attempts[0].error_class.as_deref(), Some("nonzero-exit"));
    assert_eq!(attempts[0].executor, "kubernetes");

    // One LIST and watches of the campaign's pods; never a GET per pod.
    let requests = double.requests();
    let pod_lists = requests
        .iter()
        .filter(|r| r.is_list() && r.path == PODS)
        .count();
    assert_eq!(pod_lists, 1, "{requests:#?}");
    assert!(requests.iter().any(|r| r.is_watch() && r.path == PODS));
    assert!(
        !requests
            .iter()
            .any(|r| r.method == "GET" && r.path.starts_with(&format!("{PODS}/"))),
        "{requests:#?}"
    );
    assert!(requests.iter().filter(|r| r.path == PODS).all(|r| r
        .query
        .contains("labelSelector=flow%2Fcampaign%3Dv1_k8s-retry")));
}

#[test]
fn a_disrupted_pod_is_recreated_without_counting_an_attempt() {
    let double = double();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // No retries at all: if the disruption counted as a failure, the campaign would fail.
    campaign(
        &double,
        d,
        "k8s-disrupt",
        "  work:\n    kind: command\n    array: {i: {range: [0, 2]}}\n    command: 'sleep 2; echo {{i}} > {{output}}'\n    output: data/{{i}}.txt\n    execution: {max_retries: 0}\n",
    );
    let mut driver = spawn_driver(d);
    assert!(
        double.wait_until(Duration::from_secs(30), |d| !pods_in_phase(d, "Running")
            .is_empty()),
        "no pod started: {:#?}",
        double.pods(NS)
    );
    let victim = pods_in_phase(&double, "Running").remove(0);
    let name = victim.pointer("/metadata/name").unwrap().as_str().unwrap();
    assert!(double.disrupt_pod(NS, name));
    // The API server also compacts its history: the watch must re-list and go on.
    double.expire_watches();
    let status = wait_limited(&mut driver);
    assert_eq!(status.code(), Some(0));
    for i in 0..2 {
        assert_eq!(
            output(d, "k8s-disrupt", &format!("data/{i}.txt")).trim(),
            i.to_string()
        );
    }
    let index = completion_index(&victim);
    let pods_of_index: Vec<Value> = double
        .pods(NS)
        .into_iter()
        .filter(|p| completion_index(p) == index)
        .collect();
    assert_eq!(pods_of_index.len(), 2, "{pods_of_index:#?}");
    assert_eq!(double.count("POST", JOBS), 1);
    let lists = double
        .requests()
        .iter()
        .filter(|r| r.is_list() && r.path == PODS)
        .count();
    assert!(lists >= 2, "the watch did not re-list after 410 Gone");
    let (_, rows) = tasks(d, "k8s-disrupt");
    assert_eq!(rows.len(), 2);
    assert!(
        rows.values()
            .all(|r| r.state == TaskState::Succeeded && r.attempts == 1),
        "{rows:#?}"
    );
}

#[test]
fn kill_9_of_the_driver_adopts_running_jobs_without_a_second_create() {
    let double = double();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    campaign(
        &double,
        d,
        "k8s-adopt",
        "  work:\n    kind: command\n    array: {i: {range: [0, 6]}}\n    command: 'sleep 3; echo {{i}} >> ../../ledger'\n    execution: {batch_size: 3}\n",
    );
    let mut driver = spawn_driver(d);
    assert!(
        double.wait_until(Duration::from_secs(30), |d| d.jobs(NS).len() == 2
            && !pods_in_phase(d, "Running").is_empty()),
        "the Jobs were not created: {:#?}",
        double.jobs(NS)
    );
    driver.kill().unwrap(); // SIGKILL
    driver.wait().unwrap();
    let creates = double.count("POST", JOBS);
    assert_eq!(creates, 2);
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    assert_eq!(
        double.count("POST", JOBS),
        creates,
        "a Job was created again"
    );
    assert_eq!(double.jobs(NS).len(), 2);
    let ledger = std::fs::read_to_string(d.join("ledger")).unwrap();
    let mut lines: Vec<&str> = ledger.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
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
fn flow_cancel_deletes_the_campaigns_jobs_and_their_pods() {
    let double = double();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    campaign(
        &double,
        d,
        "k8s-cancel",
        "  work:\n    kind: command\n    array: {i: {range: [0, 4]}}\n    command: 'sleep 120'\n    execution: {batch_size: 2}\n",
    );
    let mut driver = spawn_driver(d);
    assert!(
        double.wait_until(Duration::from_secs(30), |d| pods_in_phase(d, "Running")
            .len()
            == 4),
        "the pods did not start: {:#?}",
        double.pods(NS)
    );
    let cancel = k8s(d, &["cancel", "c.yaml"]);
    assert_ok(&cancel);
    let status = wait_limited(&mut driver);
    assert_ne!(
        status.code(),
        Some(0),
        "a cancelled campaign is not a success"
    );
    assert!(
        double.wait_until(Duration::from_secs(20), |d| d.jobs(NS).is_empty()
            && d.pods(NS).is_empty()),
        "Jobs or pods are left: {:#?} {:#?}",
        double.jobs(NS),
        double.pods(NS)
    );
    assert_eq!(double.count("DELETE", JOBS), 2);
    let (_, rows) = tasks(d, "k8s-cancel");
    assert!(
        rows.values().all(|r| r.state == TaskState::Cancelled),
        "{rows:#?}"
    );
}

#[test]
fn a_pod_that_cannot_start_fails_its_tasks_with_the_reason() {
    let double = double();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The Secret does not exist: the kubelet cannot build the container's environment.
    campaign_with(
        &double,
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
        double.wait_until(Duration::from_secs(10), |d| d.jobs(NS).is_empty()),
        "the stuck Job is deleted"
    );
}

#[test]
fn a_secret_reaches_the_pod_by_reference_and_its_value_is_stored_nowhere() {
    const VALUE: &str = "s3cr3t-value-4711";
    let double = ApiDouble::start(Options {
        namespace: NS.into(),
        secrets: [(
            "api".to_string(),
            [("token".to_string(), VALUE.to_string())].into(),
        )]
        .into(),
        ..Options::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    campaign_with(
        &double,
        d,
        "k8s-secret",
        // The pod checks it got the value (by its length): the YAML never holds it.
        "  work:\n    kind: command\n    command: 'test ${#API_TOKEN} = 17 && echo got-it'\n    execution: {max_retries: 0}\n",
        "    secret_env: [{name: API_TOKEN, secret: api, key: token}]\n",
    );
    assert_eq!(VALUE.len(), 17);
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let plan = k8s(d, &["plan", "c.yaml"]);
    assert_ok(&plan);
    assert!(!text(&plan.stdout).contains(VALUE));
    let job = double.jobs(NS)[0].to_string();
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
fn flow_logs_reads_the_pod_log_of_an_attempt() {
    let double = double();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    campaign(
        &double,
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
    let pod = double.pods(NS).remove(0);
    let pod_name = pod.pointer("/metadata/name").unwrap().as_str().unwrap();
    assert!(
        shown.contains(&format!("--- pod log ({pod_name}) ---")),
        "{shown}"
    );
}

#[test]
fn flow_cancel_without_a_driver_deletes_the_jobs() {
    let double = double();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    campaign(
        &double,
        d,
        "k8s-orphans",
        "  work:\n    kind: command\n    array: {i: {range: [0, 4]}}\n    command: 'sleep 120'\n    execution: {batch_size: 2}\n",
    );
    let mut driver = spawn_driver(d);
    assert!(
        double.wait_until(Duration::from_secs(30), |d| d.jobs(NS).len() == 2),
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
        double.wait_until(Duration::from_secs(20), |d| d.jobs(NS).is_empty()
            && d.pods(NS).is_empty())
    );
}

#[test]
fn max_running_is_shared_out_among_the_jobs_of_a_step() {
    let double = double();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Four Jobs of two tasks, at most three pods of the step at once.
    campaign(
        &double,
        d,
        "k8s-cap",
        "  work:\n    kind: command\n    array: {i: {range: [0, 8]}}\n    command: 'sleep 1'\n    execution: {batch_size: 2, max_running: 3}\n",
    );
    let mut driver = spawn_driver(d);
    let mut most = 0;
    let start = std::time::Instant::now();
    while driver.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < LIMIT, "the campaign did not finish");
        let running = pods_in_phase(&double, "Running").len();
        most = most.max(running);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(driver.wait().unwrap().code(), Some(0));
    assert!(most <= 3, "{most} pods ran at once");
    assert!(
        most >= 2,
        "the cap was never used: at most {most} pod(s) at once"
    );
    let jobs = double.jobs(NS);
    assert_eq!(jobs.len(), 4);
    let first_share: u64 = jobs
        .iter()
        .map(|j| {
            j.pointer("/spec/parallelism")
                .and_then(Value::as_u64)
                .unwrap()
        })
        .sum();
    assert!(
        first_share >= 4,
        "every Job has at least one slot: {first_share}"
    );
}

/// DELETE one object through the API, as the terminated-pod garbage collector would.
fn delete(double: &ApiDouble, path: &str) {
    use std::io::{Read, Write};
    let address = double.url().trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "DELETE {path} HTTP/1.1\r\nHost: double\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_pod_lost_while_no_driver_ran_is_retried_not_awaited_forever() {
    let double = double();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    campaign(
        &double,
        d,
        "k8s-lost",
        "  work:\n    kind: command\n    array: {i: {range: [0, 2]}}\n    command: 'if [ \"$FLOW_ATTEMPT\" = 1 ] && [ {{i}} = 0 ]; then sleep 60; fi; echo {{i}} >> ../../ledger'\n    execution: {batch_size: 2, max_retries: 1}\n",
    );
    let mut driver = spawn_driver(d);
    let index0_running = |d: &ApiDouble| {
        pods_in_phase(d, "Running")
            .into_iter()
            .find(|p| completion_index(p) == "0")
    };
    assert!(
        double.wait_until(Duration::from_secs(30), |d| index0_running(d).is_some()),
        "index 0 did not start"
    );
    driver.kill().unwrap();
    driver.wait().unwrap();
    // While no driver runs, the pod is killed (no result written) and garbage-collected.
    let pod = index0_running(&double).unwrap();
    let name = pod
        .pointer("/metadata/name")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(double.fail_pod(NS, &name, 137));
    assert!(double.wait_until(Duration::from_secs(10), |d| {
        d.jobs(NS)[0].pointer("/status/failedIndexes") == Some(&"0".into())
    }));
    delete(&double, &format!("{PODS}/{name}"));
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let (store, rows) = tasks(d, "k8s-lost");
    let lost = rows.values().find(|r| r.index == 0).unwrap();
    assert_eq!((lost.state, lost.attempts), (TaskState::Succeeded, 2));
    let attempts = store.attempts(&lost.id).unwrap();
    assert_eq!(attempts[0].error_class.as_deref(), Some("node-failure"));
    let mut ledger: Vec<String> = std::fs::read_to_string(d.join("ledger"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    ledger.sort();
    assert_eq!(ledger, ["0", "1"]);
}

#[test]
fn on_a_cluster_without_per_index_retries_a_rerun_index_does_not_run_its_attempt_again() {
    let double = double();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    campaign_with(
        &double,
        d,
        "k8s-legacy",
        "  work:\n    kind: command\n    array: {i: {range: [0, 2]}}\n    command: 'echo {{i}}-$FLOW_ATTEMPT >> ../../ledger; if [ {{i}} = 1 ] && [ \"$FLOW_ATTEMPT\" = 1 ]; then exit 3; fi'\n    execution: {batch_size: 2, max_retries: 1}\n",
        "    server_version: \"1.27\"\n",
    );
    let out = k8s(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let jobs = double.jobs(NS);
    let first = jobs
        .iter()
        .find(|j| j.pointer("/metadata/annotations/flow~1batch") == Some(&"work-b00000".into()))
        .unwrap();
    assert!(first.pointer("/spec/backoffLimitPerIndex").is_none());
    // Kubernetes reran the failed index of the first Job; that pod found the attempt's
    // result and ran nothing: attempt 1 of task 1 ran once, attempt 2 once, in its own Job.
    let first_name = first.pointer("/metadata/name").unwrap().as_str().unwrap();
    let reruns = double
        .pods(NS)
        .into_iter()
        .filter(|p| {
            p.pointer("/metadata/labels/batch.kubernetes.io~1job-name") == Some(&first_name.into())
                && completion_index(p) == "1"
        })
        .count();
    assert_eq!(reruns, 2, "the index was rerun by Kubernetes");
    let mut ledger: Vec<String> = std::fs::read_to_string(d.join("ledger"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    ledger.sort();
    assert_eq!(ledger, ["0-1", "1-1", "1-2"]);
}

#[test]
fn a_pod_past_its_deadline_is_walltime_and_succeeds_with_escalated_time() {
    let double = double();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The pod's activeDeadlineSeconds is the job's time (3 s); the task needs 5 s, which
    // fits in the escalated 9 s.
    campaign(
        &double,
        d,
        "k8s-deadline",
        "  long:\n    kind: command\n    command: 'sleep 5; echo done > {{output}}'\n    output: long.txt\n    resources: {time: 3s}\n    execution: {max_retries: 1, retry_backoff: {initial: 1s}, on_retry: {time: x3, max_time: 1m}}\n",
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
    let mut deadlines: Vec<u64> = double
        .jobs(NS)
        .iter()
        .filter_map(|j| {
            j.pointer("/spec/template/spec/activeDeadlineSeconds")?
                .as_u64()
        })
        .collect();
    deadlines.sort();
    assert_eq!(deadlines, [3, 9]);
}

#[test]
fn a_machine_without_kubernetes_settings_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("c.yaml"),
        "campaign: {name: nok8s, version: v1, machine: local, output: out}\nsteps:\n  work:\n    kind: command\n    command: 'true'\n",
    )
    .unwrap();
    let out = flow(d, &["run", "c.yaml", "--executor", "kubernetes"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("machine local has no `kubernetes:` block")
            && err.contains("flow recipes show generic-k8s"),
        "{err}"
    );
}

#[test]
fn a_misspelt_kubernetes_setting_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("machine.yaml"),
        "machine:\n  name: k\n  executor: kubernetes\n  root: /tmp/k\n  kubernetes:\n    namespce: flow\n    image: registry.invalid/flow:test\n",
    )
    .unwrap();
    std::fs::write(
        d.join("c.yaml"),
        "campaign: {name: typo, version: v1, machine: machine.yaml, output: out}\nsteps:\n  work:\n    kind: command\n    command: 'true'\n",
    )
    .unwrap();
    for args in [
        &["validate", "c.yaml"][..],
        &["plan", "c.yaml"],
        &["run", "c.yaml"],
    ] {
        let out = flow(d, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("machine.yaml:6:5: machine.kubernetes.namespce: unknown field `namespce`")
                && err.contains("did you mean `namespace`?"),
            "{args:?}: {err}"
        );
    }
}
