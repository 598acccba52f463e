//! [`Cluster`] on a real Kubernetes control plane: the one `scripts/k8s-dev.sh up` starts on
//! this machine (etcd, kube-apiserver with RBAC and an audit log, kube-controller-manager,
//! kube-scheduler, containerd and a kubelet whose node is `localhost`).
//!
//! Each test gets a namespace of its own with the driver's RBAC from
//! `examples/kubernetes/driver-in-cluster.yaml` applied as it is (only the namespace
//! changed), a ReadWriteMany claim bound to a hostPath volume (`/var/lib/flow-k8s-dev/volume`,
//! mounted at the same path in the pods, so a campaign directory there is the same path in the
//! driver and in the pods), and a kubeconfig holding that service account's token: the driver
//! under test is not cluster admin. The harness itself inspects the cluster as admin (`kubectl`)
//! and counts the driver's requests in the API server's audit log.
//!
//! When the control plane is not up the tests say so and pass, except under CI (`CI=true`)
//! or with `FLOW_K8S_REAL=1`, where they fail: CI must not report a real-cluster test as passed
//! that did not run.

use super::webhook::FailingCreates;
use super::{ApiRequest, Cluster};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

pub const STATE: &str = "/var/lib/flow-k8s-dev";
pub const VOLUME: &str = "/var/lib/flow-k8s-dev/volume";
const AUDIT_LOG: &str = "/var/log/flow-k8s-dev/audit.log";
const CONTAINERD: &str = "/run/flow-k8s-dev/containerd.sock";
const SERVER: &str = "https://127.0.0.1:6443";

fn admin_kubeconfig() -> PathBuf {
    std::env::var_os("FLOW_K8S_ADMIN_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(STATE).join("admin.kubeconfig"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `kubectl` as cluster admin, with `stdin` fed to it when given.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(admin_kubeconfig())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// `kubectl ARGS`, failing the test with its stderr unless it succeeds.
pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Why the control plane cannot be used, or None when it can.
fn unavailable() -> Option<String> {
    let kubeconfig = admin_kubeconfig();
    if !kubeconfig.exists() {
        return Some(format!("{} does not exist", kubeconfig.display()));
    }
    let ready = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "get",
            "node",
            "localhost",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
        .output();
    match ready {
        Err(e) => Some(format!("kubectl cannot run: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "the API server does not answer: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(out) if out.stdout != b"True" => Some(format!(
            "node localhost is not Ready ({})",
            String::from_utf8_lossy(&out.stdout)
        )),
        Ok(_) => None,
    }
}

/// The tests share one node of two CPUs: they run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The image with this build's `flow`, imported into the node's containerd once per test
/// binary (`scripts/k8s-dev.sh image`).
fn image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(repo_root().join("scripts/k8s-dev.sh"))
                .arg("image")
                .arg(env!("CARGO_BIN_EXE_flow"))
                .output()
                .expect("bash runs");
            assert!(
                out.status.success(),
                "scripts/k8s-dev.sh image: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .clone()
}

/// A namespace on the real control plane, set up for one test; deleted on drop.
pub struct RealCluster {
    pub ns: String,
    pub image: String,
    token: String,
    /// The admission webhook of [`Cluster::fail_job_creates`], while installed.
    failing_creates: Mutex<Option<FailingCreates>>,
    _serial: MutexGuard<'static, ()>,
}

impl RealCluster {
    fn items(&self, kind: &str) -> Vec<Value> {
        let text = kubectl_ok(&["get", kind, "-n", &self.ns, "-o", "json"], None);
        let list: Value = serde_json::from_str(&text).unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    }
}

impl Cluster for RealCluster {
    const BACKEND: &'static str = "real";
    const POLL: Duration = Duration::from_millis(300);

    /// The control plane for test `name`, or None (after saying why) when it is not up
    /// outside CI. Under CI, or with `FLOW_K8S_REAL=1`, a missing control plane fails.
    fn start(name: &str) -> Option<RealCluster> {
        if let Some(why) = unavailable() {
            let required = std::env::var("CI").is_ok_and(|v| v == "true")
                || std::env::var("FLOW_K8S_REAL").is_ok_and(|v| v == "1");
            if required {
                panic!("the real Kubernetes control plane is not up ({why}); start it with `scripts/k8s-dev.sh up`");
            }
            eprintln!("SKIPPED {name}: no real Kubernetes control plane ({why}); `scripts/k8s-dev.sh up` starts one");
            return None;
        }
        let serial = serial();
        let image = image();
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut ns = format!("r{}-{n}-{}", std::process::id(), name.replace('_', "-"));
        ns.truncate(60);
        let ns = ns.trim_end_matches('-').to_string();
        kubectl_ok(&["create", "namespace", &ns], None);
        // The example's ServiceAccount, Role and RoleBinding, in this namespace.
        let example =
            std::fs::read_to_string(repo_root().join("examples/kubernetes/driver-in-cluster.yaml"))
                .unwrap();
        let rbac: Vec<String> = example
            .split("\n---\n")
            .filter(|doc| {
                ["kind: ServiceAccount", "kind: Role\n", "kind: RoleBinding"]
                    .iter()
                    .any(|k| doc.contains(k))
            })
            .map(|doc| doc.replace("namespace: calibration", &format!("namespace: {ns}")))
            .collect();
        assert_eq!(rbac.len(), 3, "the example's RBAC documents");
        kubectl_ok(&["apply", "-f", "-"], Some(&rbac.join("\n---\n")));
        kubectl_ok(
            &["apply", "-f", "-"],
            Some(&format!(
                "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {ns}}}\nspec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteMany]\n  persistentVolumeReclaimPolicy: Retain\n  storageClassName: \"\"\n  hostPath: {{path: {VOLUME}, type: Directory}}\n  claimRef: {{namespace: {ns}, name: campaigns}}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: campaigns, namespace: {ns}}}\nspec:\n  accessModes: [ReadWriteMany]\n  storageClassName: \"\"\n  volumeName: {ns}\n  resources: {{requests: {{storage: 1Gi}}}}\n"
            )),
        );
        let token = kubectl_ok(
            &[
                "create",
                "token",
                "flow-driver",
                "-n",
                &ns,
                "--duration=7200s",
            ],
            None,
        )
        .trim()
        .to_string();
        Some(RealCluster {
            ns,
            image,
            token,
            failing_creates: Mutex::new(None),
            _serial: serial,
        })
    }

    /// A campaign directory under the shared volume, writable by the pods' user.
    fn tempdir(&self) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", self.ns))
            .tempdir_in(VOLUME)
            .expect("a directory on the volume (scripts/k8s-dev.sh up makes it)");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        dir
    }

    /// A kubeconfig with the driver's service-account token (not cluster admin).
    fn write_kubeconfig(&self, path: &Path) {
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    server: {SERVER}\n    certificate-authority: {STATE}/pki/ca.crt\nusers:\n- name: flow-driver\n  user:\n    token: {}\ncontexts:\n- name: dev\n  context: {{cluster: dev, user: flow-driver, namespace: {}}}\ncurrent-context: dev\n",
                self.token, self.ns
            ),
        )
        .unwrap();
    }

    /// The machine's `kubernetes:` lines for this cluster (namespace, image, volume, user).
    fn kubernetes_block(&self) -> String {
        format!(
            "    namespace: {}\n    image: {}\n    flow_binary: /usr/local/bin/flow\n    volume: {{claim: campaigns, mount_path: {VOLUME}}}\n    run_as_user: 1000\n    run_as_group: 1000\n",
            self.ns, self.image
        )
    }

    /// `flow ARGS` with the driver's kubeconfig, under umask 0: the driver runs as root here
    /// and the pods as user 1000, on the same hostPath volume (a real cluster's shared volume
    /// is writable by the pods' fsGroup; a hostPath ignores fsGroup).
    fn flow_command(&self, dir: &Path, args: &[&str]) -> Command {
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

    /// Real pods start in about a second; a recreated index waits out the Job controller's
    /// backoff of 10 s and more, a stopped pod the 30 s grace.
    fn limit(&self) -> Duration {
        Duration::from_secs(240)
    }

    /// Two CPUs, and every pod requests one.
    fn node_capacity(&self) -> Option<usize> {
        Some(2)
    }

    /// The kubelet's SIGTERM, then SIGKILL after the default 30 s.
    fn termination_grace(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn namespace(&self) -> &str {
        &self.ns
    }

    /// The namespace's Jobs, as the API server has them.
    fn jobs(&self) -> Vec<Value> {
        self.items("jobs")
    }

    /// The namespace's pods, as the API server has them.
    fn pods(&self) -> Vec<Value> {
        self.items("pods")
    }

    /// Every request the driver's service account made, from the audit log.
    fn requests(&self) -> Vec<ApiRequest> {
        audited_requests(&format!("system:serviceaccount:{}:flow-driver", self.ns))
    }

    /// Through a validating admission webhook of the test's that refuses them with
    /// `status` (see `webhook.rs`): the API server's own answer to a create it could not
    /// admit.
    fn fail_job_creates(&self, status: u16, times: u32) -> bool {
        let webhook = FailingCreates::install(&self.ns, status, times);
        *self.failing_creates.lock().unwrap() = Some(webhook);
        true
    }

    /// Not on demand: an open watch is served from the API server's watch cache, and `410
    /// Gone` comes only when a client resumes from a resourceVersion the cache no longer
    /// holds (after a long disconnection, or an API server restart), which a test cannot
    /// cause without stopping the shared control plane.
    fn expire_watches(&self) -> bool {
        false
    }

    /// Evict a pod through the Eviction API, as `kubectl drain` does: the API server adds
    /// the `DisruptionTarget` condition and deletes the pod gracefully.
    /// `grace_seconds` overrides the pod's termination grace period (30 s).
    fn evict_pod(&self, name: &str, grace_seconds: Option<u32>) {
        let options = grace_seconds
            .map(|g| format!(",\"deleteOptions\":{{\"gracePeriodSeconds\":{g}}}"))
            .unwrap_or_default();
        let body = format!(
            "{{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"{}\"}}{options}}}",
            self.ns
        );
        let path = format!("/api/v1/namespaces/{}/pods/{name}/eviction", self.ns);
        kubectl_ok(&["create", "--raw", &path, "-f", "-"], Some(&body));
    }

    /// SIGKILL a pod's container through containerd (an OOM killer, a crash): the kubelet
    /// then reports it terminated with exit code 137.
    fn kill_container(&self, pod: &Value) {
        let id = pod
            .pointer("/status/containerStatuses/0/containerID")
            .and_then(Value::as_str)
            .and_then(|id| id.strip_prefix("containerd://"))
            .expect("a started container");
        let out = Command::new("ctr")
            .args(["--address", CONTAINERD, "-n", "k8s.io", "tasks", "kill"])
            .args(["-s", "SIGKILL", id])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctr tasks kill: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Delete a pod (as the terminated-pod garbage collector would).
    fn delete_pod(&self, name: &str) {
        kubectl_ok(
            &["delete", "pod", "-n", &self.ns, name, "--wait=false"],
            None,
        );
    }

    /// A Secret in the namespace.
    fn create_secret(&self, name: &str, key: &str, value: &str) {
        kubectl_ok(
            &[
                "create",
                "secret",
                "generic",
                name,
                "-n",
                &self.ns,
                &format!("--from-literal={key}={value}"),
            ],
            None,
        );
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.ns, "--wait=false"], None);
        let _ = kubectl(&["delete", "pv", &self.ns, "--wait=false"], None);
    }
}

/// The requests of `user` in the audit log, one per request (by audit ID).
pub fn audited_requests(user: &str) -> Vec<ApiRequest> {
    let text = std::fs::read_to_string(AUDIT_LOG).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        // Cheap filter before parsing: the log holds every test's driver.
        if !line.contains(user) {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if event.pointer("/user/username").and_then(Value::as_str) != Some(user) {
            continue;
        }
        let id = event["auditID"].as_str().unwrap_or("").to_string();
        if !seen.insert(id) {
            continue;
        }
        let verb = event["verb"].as_str().unwrap_or("").to_string();
        let uri = event["requestURI"].as_str().unwrap_or("");
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let method = match verb.as_str() {
            "create" => "POST",
            "update" => "PUT",
            "patch" => "PATCH",
            "delete" | "deletecollection" => "DELETE",
            _ => "GET",
        };
        out.push(ApiRequest {
            method: method.to_string(),
            verb,
            path: path.to_string(),
            query: query.to_string(),
            code: event
                .pointer("/responseStatus/code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(0),
        });
    }
    out
}
