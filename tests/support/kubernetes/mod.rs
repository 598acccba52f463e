//! One harness for the Kubernetes campaign tests: the scenarios (`scenarios.rs`) are written
//! once against [`Cluster`], which two backends implement:
//!
//! - [`double::DoubleCluster`]: the in-process API double (`flow-kube-double`), one per test;
//!   pods are local processes; faults are injected (a create answered 500, `410 Gone`).
//! - [`real::RealCluster`]: the real control plane of `scripts/k8s-dev.sh up`, a namespace per
//!   test with the example RBAC; the driver's requests come from the API server's audit log;
//!   a create answered 500 comes from an admission webhook of the test's (`webhook.rs`).
//!
//! [`scenario_tests!`] makes one `#[test]` per scenario for a backend, in a module named after
//! it (`double::...` in `tests/kubernetes_campaign.rs`, `real::...` in
//! `tests/kubernetes_real.rs`). Where a backend cannot produce a situation (the real server
//! cannot be made to end an open watch with `410 Gone` on demand), the [`Cluster`] method
//! says so by returning false and the scenario checks what follows from it only where it
//! happened; `docs/kubernetes.md` lists those faults.
//!
//! Included with `#[path = "support/kubernetes/mod.rs"] mod kubernetes;` next to
//! `mod support;` (the helpers in `support/mod.rs`), by the two Kubernetes test files only.
#![allow(dead_code)] // each test binary uses one backend

pub mod double;
pub mod real;
pub mod scenarios;
pub mod webhook;

use crate::support::campaign_state;
use flow_engine::state::{StateStore, TaskRow};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// One request the driver made, as the backend saw it (the double's request log, the real
/// API server's audit log).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// `GET`, `POST`, `PATCH`, `PUT` or `DELETE`.
    pub method: String,
    /// Kubernetes' verb: `get`, `list`, `watch`, `create`, `patch`, `update`, `delete`,
    /// `deletecollection`.
    pub verb: String,
    pub path: String,
    /// The query string, as sent (percent-encoded).
    pub query: String,
    /// The HTTP status of the answer (0 when the backend has none yet).
    pub code: u16,
}

impl ApiRequest {
    pub fn is_list(&self) -> bool {
        self.verb == "list"
    }

    pub fn is_watch(&self) -> bool {
        self.verb == "watch"
    }
}

/// A Kubernetes cluster a campaign test runs against: what the machine YAML needs, what a
/// test inspects (through the API), and the faults it can cause.
pub trait Cluster: Sized {
    /// `double` or `real`: the machine's name says which.
    const BACKEND: &'static str;
    /// How often [`Cluster::wait_until`] looks.
    const POLL: Duration;

    /// A cluster for the test `test`, or None when this backend cannot run here (the
    /// reason is printed; see [`real::RealCluster::start`] for when that fails instead).
    fn start(test: &str) -> Option<Self>;

    /// The namespace the campaign's Jobs go to.
    fn namespace(&self) -> &str;
    /// A campaign directory that the driver and the pods see at the same path.
    fn tempdir(&self) -> tempfile::TempDir;
    /// A kubeconfig for the driver (its identity on this cluster).
    fn write_kubeconfig(&self, path: &Path);
    /// The lines under the machine's `kubernetes:` (indented four spaces).
    fn kubernetes_block(&self) -> String;
    /// `flow ARGS` in `dir` with the kubeconfig `dir/kubeconfig`.
    fn flow_command(&self, dir: &Path, args: &[&str]) -> Command;
    /// The longest any one `flow` call may take here.
    fn limit(&self) -> Duration;
    /// How many one-CPU pods the node runs at once (None: no limit).
    fn node_capacity(&self) -> Option<usize>;
    /// How long a pod's container runs on after its pod is told to stop (deadline, eviction,
    /// deleted Job) before it is SIGKILLed: `flow task run-manifest` ignores SIGTERM.
    fn termination_grace(&self) -> Duration;

    /// The namespace's Jobs.
    fn jobs(&self) -> Vec<Value>;
    /// The namespace's pods.
    fn pods(&self) -> Vec<Value>;
    /// Every request the driver's identity made, in order.
    fn requests(&self) -> Vec<ApiRequest>;

    /// Evict a pod through the Eviction API (`grace_seconds` overrides the pod's grace).
    fn evict_pod(&self, name: &str, grace_seconds: Option<u32>);
    /// SIGKILL a running pod's container (a crash, the OOM killer): exit code 137, no result.
    fn kill_container(&self, pod: &Value);
    /// DELETE a pod through the API (as the terminated-pod garbage collector would).
    fn delete_pod(&self, name: &str);
    /// A Secret `name` with one key.
    fn create_secret(&self, name: &str, key: &str, value: &str);

    /// Answer the next `times` Job creates with `status`; false when the backend cannot.
    fn fail_job_creates(&self, status: u16, times: u32) -> bool;
    /// Compact the history so every open watch ends with `410 Gone`; false when the backend
    /// cannot.
    fn expire_watches(&self) -> bool;

    /// The path of the namespace's Jobs.
    fn jobs_path(&self) -> String {
        format!("/apis/batch/v1/namespaces/{}/jobs", self.namespace())
    }

    /// The path of the namespace's pods.
    fn pods_path(&self) -> String {
        format!("/api/v1/namespaces/{}/pods", self.namespace())
    }

    /// The driver's requests with `method` whose path starts with `path_prefix`.
    fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .count()
    }

    /// Look every [`Cluster::POLL`] until `done` holds (true) or `timeout` passed (false).
    fn wait_until(&self, timeout: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if done(self) {
                return true;
            }
            std::thread::sleep(Self::POLL);
        }
        done(self)
    }
}

/// A machine on `c`, the driver's kubeconfig, and a campaign `c.yaml` with the step(s) `step`.
pub fn campaign(c: &impl Cluster, dir: &Path, name: &str, step: &str) {
    campaign_with(c, dir, name, step, "")
}

/// [`campaign`] with more lines in the machine's `kubernetes:` block.
pub fn campaign_with<C: Cluster>(c: &C, dir: &Path, name: &str, step: &str, kubernetes: &str) {
    c.write_kubeconfig(&dir.join("kubeconfig"));
    std::fs::write(
        dir.join("machine.yaml"),
        format!(
            "machine:\n  name: {backend}-k8s\n  executor: kubernetes\n  root: {root}\n  launcher: none\n  kubernetes:\n{block}{kubernetes}  job_types:\n    small: {{cpus_per_task: 1, mem: 100M, time: 10m}}\n  defaults:\n    resources: {{job_type: small}}\n",
            backend = C::BACKEND,
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

/// Wait for a `flow` child at most [`Cluster::limit`]; kill it and fail past that.
pub fn wait_limited(c: &impl Cluster, child: &mut Child) -> ExitStatus {
    let limit = c.limit();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("flow did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `flow ARGS` in `dir` to its end (at most [`Cluster::limit`]).
pub fn k8s(c: &impl Cluster, dir: &Path, args: &[&str]) -> Output {
    let mut child = c
        .flow_command(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the flow binary runs");
    // Small outputs: the pipes do not fill before the end.
    wait_limited(c, &mut child);
    child.wait_with_output().unwrap()
}

/// `flow run c.yaml` in the background.
pub fn spawn_driver(c: &impl Cluster, dir: &Path) -> Child {
    c.flow_command(dir, &["run", "c.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn pods_in_phase(c: &impl Cluster, wanted: &str) -> Vec<Value> {
    c.pods()
        .into_iter()
        .filter(|p| phase(p) == wanted)
        .collect()
}

/// Pods whose container is running (phase Running, not being deleted).
pub fn running_pods(c: &impl Cluster) -> Vec<Value> {
    pods_in_phase(c, "Running")
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| {
            p.pointer("/status/containerStatuses/0/state/running")
                .is_some()
        })
        .collect()
}

pub fn completion_index(pod: &Value) -> String {
    pod.pointer("/metadata/annotations/batch.kubernetes.io~1job-completion-index")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

pub fn name_of(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The campaign's tasks as the state database has them.
pub fn tasks(dir: &Path, name: &str) -> (StateStore, HashMap<String, TaskRow>) {
    campaign_state(&dir.join(format!("out/v1_{name}")))
}

/// A file of the campaign directory.
pub fn output(dir: &Path, name: &str, file: &str) -> String {
    std::fs::read_to_string(dir.join(format!("out/v1_{name}/{file}")))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The lines the tasks appended to `dir/ledger`, sorted.
pub fn ledger(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(dir.join("ledger"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// The most containers that ran at once, from their start and finish times (whole seconds,
/// truncated alike, so two that did not overlap never count as overlapping).
pub fn most_at_once(pods: &[Value]) -> usize {
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
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
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

/// One `#[test]` per scenario of `scenarios.rs` for the backend `$cluster`, in `mod $backend`:
/// `scenario_tests!(double, crate::kubernetes::double::DoubleCluster)` gives
/// `double::a_campaign_runs_as_indexed_jobs_and_a_failed_task_is_retried` and the others.
macro_rules! scenario_tests {
    ($backend:ident, $cluster:ty) => {
        mod $backend {
            $crate::kubernetes::scenario_tests!(@each $cluster;
                a_campaign_runs_as_indexed_jobs_and_a_failed_task_is_retried,
                an_evicted_pod_is_recreated_without_counting_an_attempt,
                kill_9_of_the_driver_adopts_running_jobs_without_a_second_create,
                flow_cancel_deletes_the_campaigns_jobs_and_their_pods,
                a_pod_that_cannot_start_fails_its_tasks_with_the_reason,
                a_secret_reaches_the_pod_by_reference_and_its_value_is_stored_nowhere,
                flow_logs_reads_the_pod_log_of_an_attempt,
                flow_cancel_without_a_driver_deletes_the_jobs,
                max_running_is_shared_out_among_the_jobs_of_a_step,
                a_pod_lost_while_no_driver_ran_is_retried_not_awaited_forever,
                the_legacy_job_shape_reruns_an_index_without_running_its_attempt_again,
                a_pod_past_its_deadline_is_walltime_and_succeeds_with_escalated_time,
            );
        }
    };
    (@each $cluster:ty; $($scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                if let Some(c) =
                    <$cluster as $crate::kubernetes::Cluster>::start(stringify!($scenario))
                {
                    $crate::kubernetes::scenarios::$scenario(&c);
                }
            }
        )*
    };
}
pub(crate) use scenario_tests;
