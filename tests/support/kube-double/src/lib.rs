//! An in-process double of the Kubernetes API server, Job controller and
//! kubelet, for testing flow's Kubernetes executor without a cluster.
//!
//! [`ApiDouble::start`] serves real Kubernetes JSON over HTTP/1.1 on
//! `127.0.0.1:<random port>`, so an unmodified `kube::Client` talks to it.
//! It runs its own tokio runtime on background threads: the handle's API is
//! synchronous and usable from plain `#[test]` functions.
//!
//! # What is served (any namespace)
//! - `batch/v1` Jobs, `v1` Pods and ConfigMaps: create (POST), get, list,
//!   watch, delete (also by collection with `labelSelector`), replace (PUT),
//!   merge patch; `pods/{name}/log` (`tailLines`, `limitBytes`, `follow`);
//!   `pods/{name}/eviction` (POST a `policy/v1` Eviction; see the kubelet);
//!   `GET /version`, `/api`, `/apis`. Anything else: a 404 `Status`.
//! - Every change bumps one global resourceVersion. Watches replay changes
//!   after `resourceVersion=N`, or start with synthetic ADDED events when it
//!   is absent/`""`/`"0"`; `sendInitialEvents=true` ends those with the
//!   `k8s.io/initial-events-end` BOOKMARK (kube-rs streaming lists);
//!   `allowWatchBookmarks=true` adds a BOOKMARK every 2 s;
//!   `timeoutSeconds` ends the stream. [`ApiDouble::expire_watches`]
//!   emulates etcd compaction (410 `Expired`).
//! - Errors are always `Status` bodies (400/404/405/409/410/415/422/...).
//! - Deleting a Job without a propagation policy orphans its pods, as the
//!   real `batch/v1` API does; `Background`/`Foreground` delete them too.
//!
//! # Job controller
//! Every Job is treated as Indexed. At most `spec.parallelism` pods are
//! active, lowest pending index first. Pods are named
//! `<job>-<index>-<5 random chars>` and carry the real labels, annotations
//! and owner reference. A failed pod goes through `spec.podFailurePolicy`
//! (first matching rule: `Ignore`, `FailIndex`, `FailJob`, `Count`; none
//! matching is `Count`). `Count` recreates the index while its failures are
//! `<= backoffLimitPerIndex`; without `backoffLimitPerIndex`, a set
//! `backoffLimit` is a Job-wide limit (reason `BackoffLimitExceeded`), and
//! with neither the index fails at its first counted failure.
//! `maxFailedIndexes` is honoured. The status carries `active`,
//! `succeeded`, `failed`, `ready`, `completedIndexes`, `failedIndexes`
//! (interval form), `startTime`, and at the end the conditions
//! `SuccessCriteriaMet`+`Complete` (with `completionTime`) or
//! `FailureTarget`+`Failed` (reason `FailedIndexes`, `PodFailurePolicy`,
//! `BackoffLimitExceeded` or `MaxFailedIndexesExceeded`; like the real
//! controller, a failed Job gets no `completionTime`).
//! `ttlSecondsAfterFinished` deletes the finished Job and its pods.
//!
//! # Kubelet: pods are local processes
//! With [`Options::run_pods`], a pod's `spec.containers[0]` runs as
//! `command` + `args` (with `$(VAR)` expansion; `$$` escapes `$`; unknown
//! references stay literal) in its own process group, in `workingDir` if
//! set, stdin null, stdout+stderr appended to a per-pod log file. The image
//! is ignored; a container without `command`/`args` fails with `StartError`.
//! Killing a pod (deadline, `fail_pod`, `disrupt_pod`, delete) kills its
//! whole process tree, as a container runtime ends the whole cgroup: the
//! process group and every descendant, also those in groups of their own.
//! The environment is the test process's, plus `HOSTNAME`, `envFrom` and
//! `env` (literal values, `fieldRef` of `metadata.name`/`namespace`/`uid`,
//! `metadata.annotations['k']`, `metadata.labels['k']`, `secretKeyRef` and
//! `configMapKeyRef`). Secrets come from [`Options::secrets`], ConfigMaps
//! from the store; a missing non-optional one leaves the pod `Pending` with
//! `CreateContainerConfigError`. `restartPolicy` is not applied to
//! containers (a pod runs once); memory and CPU limits are **not enforced**.
//! With [`Options::max_running_pods`], pods beyond the capacity stay
//! `Pending` with `PodScheduled=False`, reason `Unschedulable`.
//!
//! ## Termination messages
//! A real kubelet mounts a file at the container's `terminationMessagePath`
//! (default `/dev/termination-log`); a local process cannot write there. So
//! the double emulates the mount: **every env var whose value equals the
//! container's `terminationMessagePath` is given the path of a per-pod file
//! instead** (e.g. `env: TM=/dev/termination-log`, then the command writes
//! to `"$TM"`). At exit, at most 4096 bytes of that file become
//! `state.terminated.message`; if it is empty, the exit code is non-zero and
//! `terminationMessagePolicy` is `FallbackToLogsOnError`, the last 80 lines
//! (at most 2048 bytes) of the log are used.
//!
//! An eviction (the Eviction API, as `kubectl drain` sends it) gives the pod
//! `DisruptionTarget=True` (reason `EvictionByEvictionAPI`) and a
//! `deletionTimestamp` at once; the process is SIGKILLed when the grace period
//! (`deleteOptions.gracePeriodSeconds`, else the pod's
//! `terminationGracePeriodSeconds`, else 30 s) has passed, without a SIGTERM
//! first (as a container's PID 1 without a handler ignores it); a process that
//! ends within the grace ends the pod as usual (`Succeeded` on exit 0). The
//! ended pod is then removed from the store. There are no
//! PodDisruptionBudgets: every eviction is allowed.
//!
//! `spec.activeDeadlineSeconds` SIGKILLs the process group that many
//! seconds after start: the pod fails with `status.reason:
//! DeadlineExceeded` and exit code 137.
//!
//! # Use from a test
//! ```no_run
//! use flow_kube_double::{ApiDouble, Options};
//! use std::time::Duration;
//! let double = ApiDouble::start(Options::default()).unwrap();
//! // kube::Config::new(double.url().parse().unwrap()), or:
//! double.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig")).unwrap();
//! // ... create a Job through the executor ...
//! assert!(double.wait_until(Duration::from_secs(20), |d| d.pods("default").len() == 3));
//! ```
//! [`ApiDouble::wait_until`] blocks its thread: call it from a plain
//! `#[test]`, or from a multi-threaded runtime's `spawn_blocking`.

mod admission;
mod clock;
mod controller;
mod env;
mod expand;
mod failure_policy;
mod intervals;
mod kinds;
mod kubelet;
mod logs;
mod respond;
mod selector;
mod server;
mod state;
mod status;
mod store;
mod watch;

use kinds::Kind;
use kubelet::Termination;
use serde_json::Value;
use state::{Injection, Shared, State};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the double behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run pods as local processes (default true); false leaves them `Pending`.
    pub run_pods: bool,
    /// At most this many pod processes at once; others stay `Pending`
    /// (unschedulable) until capacity frees.
    pub max_running_pods: Option<usize>,
    /// Secrets by name, each a map of key to (decoded) value.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// The namespace of the context [`ApiDouble::write_kubeconfig`] writes.
    pub namespace: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            run_pods: true,
            max_running_pods: None,
            secrets: BTreeMap::new(),
            namespace: "default".into(),
        }
    }
}

/// One HTTP request the double received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (without `?`), as sent.
    pub query: String,
    /// The HTTP status of the answer (for a watch, of its headers); 0 while unanswered.
    pub code: u16,
    /// The `User-Agent` header ("" when absent): tells the client under test from a test's
    /// own requests.
    pub user_agent: String,
}

impl RecordedRequest {
    /// Whether this was a WATCH (`watch=true` or `watch=1`).
    pub fn is_watch(&self) -> bool {
        self.query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1")
    }

    /// Whether this was a LIST: a GET on a collection that is not a watch.
    pub fn is_list(&self) -> bool {
        let collection = matches!(
            self.path.rsplit('/').next(),
            Some("jobs" | "pods" | "configmaps")
        );
        self.method == "GET" && collection && !self.is_watch()
    }
}

/// A running double; dropping it stops the server and SIGKILLs every pod
/// process group.
pub struct ApiDouble {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    url: String,
    namespace: String,
    _dir: tempfile::TempDir,
}

impl ApiDouble {
    /// Binds `127.0.0.1:0` and starts serving. Fails only if the runtime,
    /// the socket or the temporary directory cannot be created.
    pub fn start(options: Options) -> std::io::Result<ApiDouble> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kube-double")
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let dir = tempfile::Builder::new()
            .prefix("flow-kube-double-")
            .tempdir()?;
        let namespace = options.namespace.clone();
        let shared = Arc::new(Shared::new(
            State::new(options, dir.path().to_path_buf()),
            runtime.handle().clone(),
        ));
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        runtime.spawn(server::serve(shared.clone(), listener));
        runtime.spawn(controller::ttl_loop(shared.clone()));
        Ok(ApiDouble {
            shared,
            runtime: Some(runtime),
            url,
            namespace,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Writes a kubeconfig: cluster `server` = [`url`](Self::url), a user
    /// with token `double-token`, a context with [`Options::namespace`],
    /// set as current.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        let quote = |s: &str| Value::String(s.to_string()).to_string();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-double\n  cluster:\n    server: {}\n\
             users:\n- name: kube-double\n  user:\n    token: double-token\n\
             contexts:\n- name: kube-double\n  context:\n    cluster: kube-double\n    user: kube-double\n    namespace: {}\n\
             current-context: kube-double\npreferences: {{}}\n",
            quote(&self.url),
            quote(&self.namespace)
        );
        std::fs::write(path, text)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many requests had this method and a path starting with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(path_prefix))
            .count()
    }

    /// The next `times` requests with this method and path prefix (watches
    /// included) are answered `status` with a `Status` body; 429 adds
    /// `Retry-After: 1`. Note that kube-rs clients retry 429/503/504 by
    /// themselves.
    pub fn inject_failure(&self, method: &str, path_prefix: &str, status: u16, times: u32) {
        self.shared.lock().injections.push(Injection {
            method: method.to_string(),
            path_prefix: path_prefix.to_string(),
            status,
            remaining: times,
        });
    }

    /// Compaction: every open watch gets a 410 `Expired` ERROR event and
    /// ends; later watches from any resourceVersion up to now get it too.
    pub fn expire_watches(&self) {
        self.shared.lock().store.expire();
    }

    /// Preempts a pod: kills its process; the pod fails with exit code 137
    /// and condition `DisruptionTarget=True` (reason `PreemptionByScheduler`).
    /// False if the pod is missing or already finished.
    pub fn disrupt_pod(&self, namespace: &str, name: &str) -> bool {
        let mut t = Termination::exit(137);
        t.signal = Some(libc::SIGKILL);
        t.disruption = true;
        self.shared
            .mutate(|st| kubelet::kill_pod(st, namespace, name, t))
    }

    /// Adds (or replaces) a key of a Secret, as [`Options::secrets`] does at start: pods
    /// created from now on see it.
    pub fn put_secret(&self, name: &str, key: &str, value: &str) {
        self.shared
            .lock()
            .options
            .secrets
            .entry(name.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    /// Kills a pod's process and ends it with `exit_code` (`Failed`, or
    /// `Succeeded` for 0). False if the pod is missing or already finished.
    pub fn fail_pod(&self, namespace: &str, name: &str, exit_code: i32) -> bool {
        self.shared
            .mutate(|st| kubelet::kill_pod(st, namespace, name, Termination::exit(exit_code)))
    }

    fn objects(&self, kind: Kind, namespace: &str) -> Vec<Value> {
        self.shared
            .lock()
            .store
            .list(kind, namespace)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The stored Jobs of a namespace, by name.
    pub fn jobs(&self, namespace: &str) -> Vec<Value> {
        self.objects(Kind::Job, namespace)
    }

    /// The stored Pods of a namespace, by name.
    pub fn pods(&self, namespace: &str) -> Vec<Value> {
        self.objects(Kind::Pod, namespace)
    }

    /// The stored ConfigMaps of a namespace, by name.
    pub fn configmaps(&self, namespace: &str) -> Vec<Value> {
        self.objects(Kind::ConfigMap, namespace)
    }

    /// Polls `pred` every 20 ms until it holds (true) or `timeout` passes
    /// (false). Blocks the calling thread.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&ApiDouble) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if pred(self) {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ApiDouble {
    fn drop(&mut self) {
        kubelet::kill_all(&self.shared.lock());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
