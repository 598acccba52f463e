//! The campaign scenarios of the Kubernetes executor, through the `flow` binary, written once
//! for every [`Cluster`]. Each is a `#[test]` per backend (see [`super::scenario_tests!`]).
//!
//! Where the backends differ, the scenario asks the cluster, never its type: the node's
//! capacity (the real node runs two one-CPU pods at once, the double any number), the
//! termination grace (the real kubelet's 30 s, which `flow task run-manifest` sits out; the
//! double kills at once), and the fault only the double can produce on demand (`410 Gone`
//! on an open watch), whose consequences are checked where it happened.

use super::*;
use crate::support::{assert_ok, text, walk};
use flow_engine::task_state::TaskState;

pub fn a_campaign_runs_as_indexed_jobs_and_a_failed_task_is_retried<C: Cluster>(c: &C) {
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        c,
        d,
        "k8s-retry",
        "  work:\n    kind: command\n    array: {i: {range: [0, 6]}}\n    command: 'if [ {{i}} = 4 ] && [ \"$FLOW_ATTEMPT\" = 1 ]; then echo boom >&2; exit 3; fi; echo {{i}} > {{output}}'\n    output: data/{{i}}.txt\n    execution: {batch_size: 3, max_retries: 2}\n",
    );
    let plan = k8s(c, d, &["plan", "c.yaml"]);
    assert_ok(&plan);
    // The first create is answered 500 (the double's injected failure; on the real server, a
    // refusing admission webhook): the driver retries it.
    let injected = usize::from(c.fail_job_creates(500, 1));
    let out = k8s(c, d, &["run", "c.yaml"]);
    assert_ok(&out);
    for i in 0..6 {
        assert_eq!(
            output(d, "k8s-retry", &format!("data/{i}.txt")).trim(),
            i.to_string()
        );
    }

    // Two batches of three, and one Job for the retry of task 4: three Jobs, three POSTs
    // and one more for a create answered 500; all admitted as the driver's identity.
    let jobs = c.jobs();
    assert_eq!(jobs.len(), 3, "{jobs:#?}");
    assert_eq!(c.count("POST", &c.jobs_path()), 3 + injected);
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
    // The Job controller finished every Job.
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

    // Results came back in the kubelet's termination messages, the failure with flow's own
    // class.
    let failed = pods_in_phase(c, "Failed");
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
    assert_eq!(pods_in_phase(c, "Succeeded").len(), 6);
    let (store, rows) = tasks(d, "k8s-retry");
    assert!(rows.values().all(|r| r.state == TaskState::Succeeded));
    let retried: Vec<&TaskRow> = rows.values().filter(|r| r.attempts == 2).collect();
    assert_eq!(retried.len(), 1, "{rows:#?}");
    let attempts = store.attempts(&retried[0].id).unwrap();
    assert_eq!(attempts[0].error_class.as_deref(), Some("nonzero-exit"));
    assert_eq!(attempts[0].executor, "kubernetes");

    // One LIST and watches of the campaign's pods; never a GET per pod; nothing refused.
    let requests = c.requests();
    let pods = c.pods_path();
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

pub fn an_evicted_pod_is_recreated_without_counting_an_attempt<C: Cluster>(c: &C) {
    let dir = c.tempdir();
    let d = dir.path();
    // No retries at all: if an eviction counted as a failure, the campaign would fail.
    campaign(
        c,
        d,
        "k8s-disrupt",
        "  work:\n    kind: command\n    array: {i: {range: [0, 2]}}\n    command: 'sleep 6; echo {{i}} > {{output}}'\n    output: data/{{i}}.txt\n    execution: {max_retries: 0}\n",
    );
    let mut driver = spawn_driver(c, d);
    assert!(
        c.wait_until(Duration::from_secs(60), |c| running_pods(c).len() == 2),
        "the pods did not start: {:#?}",
        c.pods()
    );
    let mut running = running_pods(c);
    running.sort_by_key(completion_index);
    // Index 0: evicted with a 1 s grace period, its container is killed; the pod fails with
    // DisruptionTarget and the Job controller recreates the index (podFailurePolicy
    // Ignore). Index 1: evicted with the default 30 s grace; its task ends within it, the
    // pod Succeeded and the Job counts the index as done (no replacement).
    c.evict_pod(&name_of(&running[0]), Some(1));
    c.evict_pod(&name_of(&running[1]), None);
    // Where the backend can (the double), the history is compacted at the same moment: the
    // watch must re-list and go on.
    let expired = c.expire_watches();
    let status = wait_limited(c, &mut driver);
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
    assert_eq!(c.count("POST", &c.jobs_path()), 1);
    if expired {
        let lists = c
            .requests()
            .iter()
            .filter(|r| r.is_list() && r.path == c.pods_path())
            .count();
        assert!(lists >= 2, "the watch did not re-list after 410 Gone");
    }
    let (_, rows) = tasks(d, "k8s-disrupt");
    assert_eq!(rows.len(), 2);
    assert!(
        rows.values()
            .all(|r| r.state == TaskState::Succeeded && r.attempts == 1),
        "{rows:#?}"
    );
}

pub fn kill_9_of_the_driver_adopts_running_jobs_without_a_second_create<C: Cluster>(c: &C) {
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        c,
        d,
        "k8s-adopt",
        "  work:\n    kind: command\n    array: {i: {range: [0, 6]}}\n    command: 'sleep 3; echo {{i}} >> ../../ledger'\n    execution: {batch_size: 3}\n",
    );
    let mut driver = spawn_driver(c, d);
    assert!(
        c.wait_until(Duration::from_secs(60), |c| c.jobs().len() == 2
            && !running_pods(c).is_empty()),
        "the Jobs were not created: {:#?}",
        c.jobs()
    );
    driver.kill().unwrap(); // SIGKILL
    driver.wait().unwrap();
    let creates = c.count("POST", &c.jobs_path());
    assert_eq!(creates, 2);
    let out = k8s(c, d, &["run", "c.yaml"]);
    assert_ok(&out);
    assert_eq!(
        c.count("POST", &c.jobs_path()),
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

pub fn flow_cancel_deletes_the_campaigns_jobs_and_their_pods<C: Cluster>(c: &C) {
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        c,
        d,
        "k8s-cancel",
        "  work:\n    kind: command\n    array: {i: {range: [0, 4]}}\n    command: 'sleep 120'\n    execution: {batch_size: 2}\n",
    );
    let mut driver = spawn_driver(c, d);
    // Four pods; as many run as the node has room for (two on the real node), the others
    // wait for it.
    let can_run = c.node_capacity().unwrap_or(4).min(4);
    assert!(
        c.wait_until(Duration::from_secs(60), |c| running_pods(c).len()
            == can_run
            && c.pods().len() == 4),
        "the pods did not start: {:#?}",
        c.pods()
    );
    let cancel = k8s(c, d, &["cancel", "c.yaml"]);
    assert_ok(&cancel);
    let status = wait_limited(c, &mut driver);
    assert_ne!(
        status.code(),
        Some(0),
        "a cancelled campaign is not a success"
    );
    // A real kubelet sends SIGTERM, then SIGKILL after the 30 s grace period.
    assert!(
        c.wait_until(Duration::from_secs(90), |c| c.jobs().is_empty()
            && c.pods().is_empty()),
        "Jobs or pods are left: {:#?} {:#?}",
        c.jobs(),
        c.pods()
    );
    assert_eq!(c.count("DELETE", &c.jobs_path()), 2);
    let (_, rows) = tasks(d, "k8s-cancel");
    assert!(
        rows.values().all(|r| r.state == TaskState::Cancelled),
        "{rows:#?}"
    );
}

pub fn a_pod_that_cannot_start_fails_its_tasks_with_the_reason<C: Cluster>(c: &C) {
    let dir = c.tempdir();
    let d = dir.path();
    // The Secret does not exist: the kubelet cannot build the container's environment.
    campaign_with(
        c,
        d,
        "k8s-stuck",
        "  work:\n    kind: command\n    array: {i: {range: [0, 2]}}\n    command: 'true'\n",
        "    secret_env: [{name: API_TOKEN, secret: missing-secret, key: token}]\n",
    );
    let out = k8s(c, d, &["run", "c.yaml"]);
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

pub fn a_secret_reaches_the_pod_by_reference_and_its_value_is_stored_nowhere<C: Cluster>(c: &C) {
    const VALUE: &str = "s3cr3t-value-4711";
    c.create_secret("api", "token", VALUE);
    let dir = c.tempdir();
    let d = dir.path();
    campaign_with(
        c,
        d,
        "k8s-secret",
        // The pod checks it got the value (by its length): the YAML never holds it.
        "  work:\n    kind: command\n    command: 'test ${#API_TOKEN} = 17 && echo got-it'\n    execution: {max_retries: 0}\n",
        "    secret_env: [{name: API_TOKEN, secret: api, key: token}]\n",
    );
    assert_eq!(VALUE.len(), 17);
    let out = k8s(c, d, &["run", "c.yaml"]);
    assert_ok(&out);
    let plan = k8s(c, d, &["plan", "c.yaml"]);
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

pub fn flow_logs_reads_the_pod_log_of_an_attempt<C: Cluster>(c: &C) {
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        c,
        d,
        "k8s-logs",
        "  work:\n    kind: command\n    command: 'echo to-the-file; exit 2'\n    execution: {max_retries: 0}\n",
    );
    let out = k8s(c, d, &["run", "c.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let (_, rows) = tasks(d, "k8s-logs");
    let id = rows.keys().next().unwrap().clone();
    let logs = k8s(c, d, &["logs", "c.yaml", &id]);
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
    // The pod log came from the kubelet through the API server, as the driver's identity.
    let log_path = format!("{}/{pod_name}/log", c.pods_path());
    assert!(
        c.requests()
            .iter()
            .any(|r| r.path == log_path && r.code == 200),
        "{:#?}",
        c.requests()
    );
}

pub fn flow_cancel_without_a_driver_deletes_the_jobs<C: Cluster>(c: &C) {
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        c,
        d,
        "k8s-orphans",
        "  work:\n    kind: command\n    array: {i: {range: [0, 4]}}\n    command: 'sleep 120'\n    execution: {batch_size: 2}\n",
    );
    let mut driver = spawn_driver(c, d);
    assert!(
        c.wait_until(Duration::from_secs(60), |c| c.jobs().len() == 2),
        "the Jobs were not created"
    );
    driver.kill().unwrap();
    driver.wait().unwrap();
    let cancel = k8s(c, d, &["cancel", "c.yaml"]);
    assert_ok(&cancel);
    assert!(
        text(&cancel.stdout).contains("deleted 2 Kubernetes Job(s)"),
        "{}",
        text(&cancel.stdout)
    );
    assert!(
        c.wait_until(Duration::from_secs(90), |c| c.jobs().is_empty()
            && c.pods().is_empty()),
        "Jobs or pods are left: {:#?} {:#?}",
        c.jobs(),
        c.pods()
    );
}

pub fn max_running_is_shared_out_among_the_jobs_of_a_step<C: Cluster>(c: &C) {
    let dir = c.tempdir();
    let d = dir.path();
    // Four Jobs of two tasks, at most `cap` pods of the step at once: three where the node
    // has no limit (the double), else one below the node's capacity (one on the real node's
    // two), so that the cap and not the node is what limits.
    let cap = match c.node_capacity() {
        None => 3,
        Some(n) => n.saturating_sub(1).clamp(1, 3),
    };
    campaign(
        c,
        d,
        "k8s-cap",
        &format!("  work:\n    kind: command\n    array: {{i: {{range: [0, 8]}}}}\n    command: 'sleep 2'\n    execution: {{batch_size: 2, max_running: {cap}}}\n"),
    );
    let mut driver = spawn_driver(c, d);
    let mut most_seen = 0;
    let start = Instant::now();
    while driver.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < c.limit(), "the campaign did not finish");
        most_seen = most_seen.max(running_pods(c).len());
        std::thread::sleep(C::POLL.min(Duration::from_millis(20)));
    }
    assert_eq!(driver.wait().unwrap().code(), Some(0));
    let pods = c.pods();
    assert_eq!(pods.len(), 8);
    // Seen while it ran, and from the containers' own start and finish times.
    let most = most_at_once(&pods);
    assert!(
        most_seen <= cap,
        "{most_seen} pods were seen running at once"
    );
    assert!(most <= cap, "{most} pods ran at once");
    assert!(
        most_seen.max(most) >= cap.min(2),
        "the cap was never used: at most {} pod(s) at once",
        most_seen.max(most)
    );
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

pub fn a_pod_lost_while_no_driver_ran_is_retried_not_awaited_forever<C: Cluster>(c: &C) {
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        c,
        d,
        "k8s-lost",
        "  work:\n    kind: command\n    array: {i: {range: [0, 2]}}\n    command: 'if [ \"$FLOW_ATTEMPT\" = 1 ] && [ {{i}} = 0 ]; then sleep 60; fi; echo {{i}} >> ../../ledger'\n    execution: {batch_size: 2, max_retries: 1}\n",
    );
    let mut driver = spawn_driver(c, d);
    let index0_running = |c: &C| {
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
    // deleted; the Job controller fails the index (podFailurePolicy FailIndex).
    let pod = index0_running(c).unwrap();
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
    let out = k8s(c, d, &["run", "c.yaml"]);
    assert_ok(&out);
    let (store, rows) = tasks(d, "k8s-lost");
    let lost = rows.values().find(|r| r.index == 0).unwrap();
    assert_eq!((lost.state, lost.attempts), (TaskState::Succeeded, 2));
    let attempts = store.attempts(&lost.id).unwrap();
    assert_eq!(attempts[0].error_class.as_deref(), Some("node-failure"));
    assert_eq!(ledger(d), ["0", "1"]);
}

pub fn the_legacy_job_shape_reruns_an_index_without_running_its_attempt_again<C: Cluster>(c: &C) {
    let dir = c.tempdir();
    let d = dir.path();
    // The Job shape for clusters before 1.29 (no per-index retries), forced through
    // `server_version`: the Job controller reruns the failed index itself.
    campaign_with(
        c,
        d,
        "k8s-legacy",
        "  work:\n    kind: command\n    array: {i: {range: [0, 2]}}\n    command: 'echo {{i}}-$FLOW_ATTEMPT >> ../../ledger; if [ {{i}} = 1 ] && [ \"$FLOW_ATTEMPT\" = 1 ]; then exit 3; fi'\n    execution: {batch_size: 2, max_retries: 1}\n",
        "    server_version: \"1.27\"\n",
    );
    let out = k8s(c, d, &["run", "c.yaml"]);
    assert_ok(&out);
    let jobs = c.jobs();
    let first = jobs
        .iter()
        .find(|j| j.pointer("/metadata/annotations/flow~1batch") == Some(&"work-b00000".into()))
        .unwrap();
    assert!(first.pointer("/spec/backoffLimitPerIndex").is_none());
    let first_name = name_of(first);
    // The rerun comes after the Job controller's backoff (10 s on a real one); it finds the
    // attempt's result on the volume, hands it back and runs nothing: attempt 1 of task 1
    // ran once, attempt 2 once, in its own Job.
    let index_1_pods = |c: &C| -> Vec<Value> {
        c.pods()
            .into_iter()
            .filter(|p| {
                p.pointer("/metadata/labels/batch.kubernetes.io~1job-name")
                    == Some(&first_name.clone().into())
                    && completion_index(p) == "1"
            })
            .collect()
    };
    assert!(
        c.wait_until(Duration::from_secs(60), |c| {
            let pods = index_1_pods(c);
            pods.len() >= 2
                && pods
                    .iter()
                    .all(|p| matches!(phase(p), "Succeeded" | "Failed"))
        }),
        "the index was rerun by Kubernetes: {:#?}",
        c.pods()
    );
    let reruns = index_1_pods(c);
    assert_eq!(reruns.len(), 2, "{reruns:#?}");
    assert_eq!(
        reruns.iter().filter(|p| phase(p) == "Succeeded").count(),
        1,
        "the rerun handed back the attempt's result and ended: {reruns:#?}"
    );
    assert_eq!(ledger(d), ["0-1", "1-1", "1-2"]);
}

pub fn a_pod_past_its_deadline_is_walltime_and_succeeds_with_escalated_time<C: Cluster>(c: &C) {
    let dir = c.tempdir();
    let d = dir.path();
    // The pod's activeDeadlineSeconds is the job's time (3 s). A real kubelet ends a pod
    // past its deadline with SIGTERM and SIGKILL after the 30 s grace period;
    // `flow task run-manifest` (the container's PID 1) does not act on SIGTERM, so the task
    // runs on for the grace period: it must need longer than deadline + grace to be cut
    // short (the double kills at the deadline). The escalated deadline (60 s) fits it.
    let grace = c.termination_grace().as_secs();
    let sleep = if grace == 0 { 5 } else { 3 + grace + 7 };
    campaign(
        c,
        d,
        "k8s-deadline",
        &format!("  long:\n    kind: command\n    command: 'sleep {sleep}; echo done > {{{{output}}}}'\n    output: long.txt\n    resources: {{time: 3s}}\n    execution: {{max_retries: 1, retry_backoff: {{initial: 1s}}, on_retry: {{time: x20, max_time: 1m}}}}\n"),
    );
    let out = k8s(c, d, &["run", "c.yaml"]);
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
    // The kubelet ended the first pod for its deadline.
    assert!(
        c.pods()
            .iter()
            .any(|p| p.pointer("/status/reason") == Some(&"DeadlineExceeded".into())),
        "{:#?}",
        c.pods()
    );
}
