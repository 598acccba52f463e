//! The kubelet: pods run as local processes, one process group each.

use crate::controller::is_terminal;
use crate::expand::expand;
use crate::kinds::Kind;
use crate::state::{Proc, Shared, State};
use crate::store::{name_of, uid_of};
use crate::{clock, env};
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

const NODE: &str = "kube-double";

/// A pod ready to start: everything resolved while the state was locked.
pub struct Launch {
    namespace: String,
    name: String,
    uid: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    working_dir: Option<String>,
    log_path: PathBuf,
    message_path: PathBuf,
    fallback_to_logs: bool,
    deadline: Option<Duration>,
}

/// How a container ended.
pub struct Termination {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub message: Option<String>,
    pub started_at: Option<String>,
    /// `status.reason` / `status.message` of the pod.
    pub pod_reason: Option<(&'static str, String)>,
    /// Adds the `DisruptionTarget` condition.
    pub disruption: bool,
    /// Overrides the container's terminated reason.
    pub reason: Option<&'static str>,
}

impl Termination {
    pub fn exit(exit_code: i32) -> Termination {
        Termination {
            exit_code,
            signal: None,
            message: None,
            started_at: None,
            pod_reason: None,
            disruption: false,
            reason: None,
        }
    }
}

/// The per-pod log file (stdout + stderr).
pub fn log_path(dir: &Path, pod_uid: &str) -> PathBuf {
    dir.join(format!("{pod_uid}.log"))
}

/// Ends a pod's container as a container runtime does (the whole cgroup): the pod's process
/// group and every process descended from it, even those that moved to process groups of
/// their own (`flow task` starts each task in a new group).
fn kill_group(pgid: Option<i32>) {
    let Some(pgid) = pgid.filter(|p| *p > 1) else {
        return;
    };
    let table = process_table();
    let mut members: Vec<i32> = table
        .iter()
        .filter(|(_, _, g)| *g == pgid)
        .map(|(pid, _, _)| *pid)
        .collect();
    loop {
        let more: Vec<i32> = table
            .iter()
            .filter(|(pid, ppid, _)| members.contains(ppid) && !members.contains(pid))
            .map(|(pid, _, _)| *pid)
            .collect();
        if more.is_empty() {
            break;
        }
        members.extend(more);
    }
    let mut groups: Vec<i32> = table
        .iter()
        .filter(|(pid, _, _)| members.contains(pid))
        .map(|(_, _, g)| *g)
        .filter(|g| *g > 1)
        .collect();
    groups.push(pgid);
    groups.sort_unstable();
    groups.dedup();
    for group in groups {
        // SAFETY: kill(2) with a negative pid signals a process group of this pod's tree.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
    for pid in members {
        // SAFETY: kill(2) on a process of this pod's tree.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// (pid, parent pid, process group) of every process, from /proc.
fn process_table() -> Vec<(i32, i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(ppid), Some(pgrp)) = (
            fields.get(1).and_then(|f| f.parse().ok()),
            fields.get(2).and_then(|f| f.parse().ok()),
        ) {
            out.push((pid, ppid, pgrp));
        }
    }
    out
}

/// SIGKILLs every pod process group (on drop of the double).
pub fn kill_all(st: &State) {
    for proc in st.procs.values() {
        kill_group(proc.pgid);
    }
}

fn container_status(pod: &Value, state: Value, ready: bool) -> Value {
    let c = pod
        .pointer("/spec/containers/0")
        .cloned()
        .unwrap_or_else(|| json!({}));
    json!({
        "name": c["name"], "image": c["image"], "imageID": "",
        "ready": ready, "started": ready, "restartCount": 0, "state": state,
    })
}

fn conditions(pairs: &[(&str, &str, Option<&str>)], now: &str) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(kind, status, reason)| {
                let mut c = json!({"type": kind, "status": status, "lastProbeTime": null,
                    "lastTransitionTime": now});
                if let Some(r) = reason {
                    c["reason"] = json!(r);
                }
                c
            })
            .collect(),
    )
}

/// Marks queued pods and starts those that may run (capacity permitting).
pub fn schedule(st: &mut State) -> Vec<Launch> {
    if !st.options.run_pods {
        return Vec::new();
    }
    let capacity = st.options.max_running_pods.unwrap_or(usize::MAX);
    let candidates: Vec<Value> = st
        .store
        .all_by_creation(Kind::Pod)
        .into_iter()
        .filter(|p| {
            p.pointer("/status/phase") == Some(&json!("Pending"))
                && p.pointer("/metadata/deletionTimestamp").is_none()
                && !st.procs.contains_key(uid_of(p))
        })
        .cloned()
        .collect();
    let mut launches = Vec::new();
    for pod in candidates {
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = name_of(&pod).to_string();
        let now = clock::now();
        if st.procs.len() >= capacity {
            st.store.update(Kind::Pod, &ns, &name, |p| {
                p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                    "reason": "Unschedulable", "lastProbeTime": null, "lastTransitionTime": now,
                    "message": "0/1 nodes are available: 1 Insufficient capacity (max_running_pods of the double)."}]);
            });
            continue;
        }
        match prepare(st, &pod) {
            Err(message) => {
                let waiting = container_status(
                    &pod,
                    json!({"waiting": {"reason": "CreateContainerConfigError", "message": message}}),
                    false,
                );
                st.store.update(Kind::Pod, &ns, &name, |p| {
                    p["spec"]["nodeName"] = json!(NODE);
                    let s = &mut p["status"];
                    if s.get("startTime").is_none() {
                        s["startTime"] = json!(now);
                    }
                    s["conditions"] = conditions(
                        &[
                            ("PodScheduled", "True", None),
                            ("Initialized", "True", None),
                            ("Ready", "False", Some("ContainersNotReady")),
                            ("ContainersReady", "False", Some("ContainersNotReady")),
                        ],
                        &now,
                    );
                    s["containerStatuses"] = json!([waiting]);
                });
            }
            Ok(launch) => {
                st.procs.insert(launch.uid.clone(), Proc { pgid: None });
                let creating = container_status(
                    &pod,
                    json!({"waiting": {"reason": "ContainerCreating"}}),
                    false,
                );
                st.store.update(Kind::Pod, &ns, &name, |p| {
                    p["spec"]["nodeName"] = json!(NODE);
                    let s = &mut p["status"];
                    s["startTime"] = json!(now);
                    s["hostIP"] = json!("127.0.0.1");
                    s["conditions"] = conditions(
                        &[
                            ("PodScheduled", "True", None),
                            ("Initialized", "True", None),
                            ("Ready", "False", Some("ContainersNotReady")),
                            ("ContainersReady", "False", Some("ContainersNotReady")),
                        ],
                        &now,
                    );
                    s["containerStatuses"] = json!([creating]);
                });
                launches.push(launch);
            }
        }
    }
    launches
}

fn prepare(st: &State, pod: &Value) -> Result<Launch, String> {
    let container = pod
        .pointer("/spec/containers/0")
        .ok_or("pod has no container")?;
    let message_mount = container["terminationMessagePath"]
        .as_str()
        .unwrap_or("/dev/termination-log")
        .to_string();
    let uid = uid_of(pod).to_string();
    let message_path = st.dir.join(format!("{uid}.termination-log"));
    let mut vars = env::resolve(st, pod, container)?;
    for (_, value) in vars.iter_mut() {
        if *value == message_mount {
            *value = message_path.display().to_string();
        }
    }
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let strings = |field: &str| -> Vec<String> {
        container[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| expand(s, lookup))
            .collect()
    };
    let mut argv = strings("command");
    argv.extend(strings("args"));
    Ok(Launch {
        namespace: pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        name: name_of(pod).to_string(),
        log_path: log_path(&st.dir, &uid),
        uid,
        argv,
        env: vars,
        working_dir: container["workingDir"].as_str().map(str::to_string),
        message_path,
        fallback_to_logs: container["terminationMessagePolicy"] == "FallbackToLogsOnError",
        deadline: pod
            .pointer("/spec/activeDeadlineSeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs),
    })
}

/// Applies a container's end to a pod's status (Succeeded or Failed).
fn apply_termination(pod: &mut Value, t: &Termination) {
    let now = clock::now();
    let succeeded = t.exit_code == 0 && !t.disruption;
    let started = t
        .started_at
        .clone()
        .or_else(|| {
            pod.pointer("/status/containerStatuses/0/state/running/startedAt")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| now.clone());
    let mut terminated = json!({
        "exitCode": t.exit_code,
        "reason": t.reason.unwrap_or(if t.exit_code == 0 { "Completed" } else { "Error" }),
        "startedAt": started, "finishedAt": now,
    });
    if let Some(signal) = t.signal {
        terminated["signal"] = json!(signal);
    }
    if let Some(message) = t.message.as_ref().filter(|m| !m.is_empty()) {
        terminated["message"] = json!(message);
    }
    let cs = container_status(pod, json!({"terminated": terminated}), false);
    let mut conds = vec![
        ("PodScheduled", "True", None),
        ("Initialized", "True", None),
        ("Ready", "False", Some("PodCompleted")),
        ("ContainersReady", "False", Some("PodCompleted")),
    ];
    // An eviction set its own DisruptionTarget condition before the container ended.
    let evicted = condition(pod, "DisruptionTarget");
    if t.disruption && evicted.is_none() {
        conds.push(("DisruptionTarget", "True", Some("PreemptionByScheduler")));
    }
    let status = &mut pod["status"];
    status["phase"] = json!(if succeeded { "Succeeded" } else { "Failed" });
    status["conditions"] = conditions(&conds, &now);
    let preempted = t.disruption && evicted.is_none();
    if let (Some(kept), Some(list)) = (evicted, status["conditions"].as_array_mut()) {
        list.push(kept);
    }
    if preempted {
        if let Some(last) = status["conditions"]
            .as_array_mut()
            .and_then(|c| c.last_mut())
        {
            last["message"] = json!("kube-double: preempted by the scheduler (disrupt_pod)");
        }
    }
    status["containerStatuses"] = json!([cs]);
    if let Some((reason, message)) = &t.pod_reason {
        status["reason"] = json!(reason);
        status["message"] = json!(message);
    }
}

/// Ends a pod now: kills its process group and marks it terminated with `t`.
/// False when the pod is missing or already finished.
pub fn kill_pod(st: &mut State, ns: &str, name: &str, t: Termination) -> bool {
    let Some(pod) = st.store.get(Kind::Pod, ns, name) else {
        return false;
    };
    if is_terminal(pod) {
        return false;
    }
    if let Some(proc) = st.procs.get(uid_of(pod)) {
        kill_group(proc.pgid);
    }
    st.store
        .update(Kind::Pod, ns, name, |p| apply_termination(p, &t))
        .is_some()
}

/// A pod condition of this type, if the pod has one.
fn condition(pod: &Value, kind: &str) -> Option<Value> {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
}

/// The Eviction API (`POST pods/{name}/eviction`), as the API server and kubelet carry it
/// out: the pod gets `DisruptionTarget=True` (reason `EvictionByEvictionAPI`) and a
/// deletion timestamp at once; its container is SIGKILLed when `grace` has passed (no
/// SIGTERM first: a container's PID 1 without a handler, such as `flow task run-manifest`,
/// ignores it), or ends by itself within the grace (`Succeeded` when it exits 0). Once it
/// ended, the pod is removed. A pod that already ended is removed at once. False when the
/// pod does not exist.
pub fn evict(shared: &Arc<Shared>, ns: &str, name: &str, grace: Duration) -> bool {
    let uid = shared.mutate(|st| {
        let pod = st.store.get(Kind::Pod, ns, name)?;
        let uid = uid_of(pod).to_string();
        if is_terminal(pod) {
            st.store.delete(Kind::Pod, ns, name);
            return Some(None);
        }
        let now = clock::now();
        st.store.update(Kind::Pod, ns, name, |p| {
            p["metadata"]["deletionTimestamp"] = json!(now);
            p["metadata"]["deletionGracePeriodSeconds"] = json!(grace.as_secs());
            if condition(p, "DisruptionTarget").is_none() {
                let mut list = p["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                list.push(json!({"type": "DisruptionTarget", "status": "True",
                    "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
                    "lastProbeTime": null, "lastTransitionTime": now}));
                p["status"]["conditions"] = Value::Array(list);
            }
        });
        Some(Some(uid))
    });
    let Some(uid) = uid else {
        return false;
    };
    if let Some(uid) = uid {
        let (shared, ns, name) = (shared.clone(), ns.to_string(), name.to_string());
        shared.handle.clone().spawn(async move {
            tokio::time::sleep(grace).await;
            let mut t = Termination::exit(137);
            t.signal = Some(libc::SIGKILL);
            shared.mutate(|st| {
                if st
                    .store
                    .get(Kind::Pod, &ns, &name)
                    .is_some_and(|p| uid_of(p) == uid)
                {
                    kill_pod(st, &ns, &name, t);
                }
            });
            shared.mutate(|st| remove_if_deleted(st, &ns, &name, &uid));
        });
    }
    true
}

/// Removes a pod that ended after its deletion was asked for (an eviction's end). The
/// controllers saw it end first: that was an earlier `mutate`.
fn remove_if_deleted(st: &mut State, ns: &str, name: &str, uid: &str) {
    let ended_deleted = st.store.get(Kind::Pod, ns, name).is_some_and(|p| {
        uid_of(p) == uid && is_terminal(p) && p.pointer("/metadata/deletionTimestamp").is_some()
    });
    if ended_deleted {
        st.store.delete(Kind::Pod, ns, name);
    }
}

/// Deletes a pod at once, killing its process group.
pub fn delete_pod(st: &mut State, ns: &str, name: &str) -> Option<Value> {
    let pod = st.store.get(Kind::Pod, ns, name)?;
    if let Some(proc) = st.procs.get(uid_of(pod)) {
        kill_group(proc.pgid);
    }
    st.store.delete(Kind::Pod, ns, name)
}

fn pod_is_live(st: &State, launch: &Launch) -> bool {
    st.store
        .get(Kind::Pod, &launch.namespace, &launch.name)
        .is_some_and(|p| uid_of(p) == launch.uid && !is_terminal(p))
}

fn read_message(launch: &Launch, exit_code: i32) -> String {
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(&launch.message_path) {
        let _ = f.take(4096).read_to_end(&mut buf);
    }
    let message = String::from_utf8_lossy(&buf).into_owned();
    if message.is_empty() && exit_code != 0 && launch.fallback_to_logs {
        return log_tail(&launch.log_path, 80, 2048);
    }
    message
}

/// The last `lines` lines of a file, at most `max_bytes` bytes.
pub fn log_tail(path: &Path, lines: usize, max_bytes: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.split_inclusive('\n').collect();
    all[all.len().saturating_sub(lines)..].concat()
}

fn finish(shared: &Arc<Shared>, launch: &Launch, t: Termination) {
    shared.mutate(|st| {
        st.procs.remove(&launch.uid);
        if pod_is_live(st, launch) {
            st.store
                .update(Kind::Pod, &launch.namespace, &launch.name, |p| {
                    apply_termination(p, &t)
                });
        }
    });
    shared.mutate(|st| remove_if_deleted(st, &launch.namespace, &launch.name, &launch.uid));
}

fn start_error(shared: &Arc<Shared>, launch: &Launch, message: String) {
    let mut t = Termination::exit(128);
    t.reason = Some("StartError");
    t.message = Some(message);
    finish(shared, launch, t);
}

/// Runs one pod's process to its end and reports each phase.
pub async fn run(shared: Arc<Shared>, launch: Launch) {
    let Some((program, args)) = launch.argv.split_first() else {
        return start_error(
            &shared,
            &launch,
            "kube-double cannot run an image entrypoint: the container needs a command".into(),
        );
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log_path);
    let _ = std::fs::write(&launch.message_path, b"");
    let (out, err) = match log.and_then(|f| Ok((f.try_clone()?, f))) {
        Ok(pair) => pair,
        Err(e) => return start_error(&shared, &launch, format!("log file: {e}")),
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .process_group(0)
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    if let Some(dir) = &launch.working_dir {
        let _ = std::fs::create_dir_all(dir);
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return start_error(
                &shared,
                &launch,
                format!("failed to start {program:?}: {e}"),
            )
        }
    };
    let pgid = child.id().map(|p| p as i32);
    let started_at = clock::now();
    shared.mutate(|st| {
        if !pod_is_live(st, &launch) {
            kill_group(pgid);
            return;
        }
        if let Some(proc) = st.procs.get_mut(&launch.uid) {
            proc.pgid = pgid;
        }
        st.store
            .update(Kind::Pod, &launch.namespace, &launch.name, |p| {
                let running =
                    container_status(p, json!({"running": {"startedAt": started_at}}), true);
                let s = &mut p["status"];
                s["phase"] = json!("Running");
                s["podIP"] = json!("127.0.0.1");
                s["podIPs"] = json!([{"ip": "127.0.0.1"}]);
                s["conditions"] = conditions(
                    &[
                        ("PodReadyToStartContainers", "True", None),
                        ("PodScheduled", "True", None),
                        ("Initialized", "True", None),
                        ("Ready", "True", None),
                        ("ContainersReady", "True", None),
                    ],
                    &started_at,
                );
                s["containerStatuses"] = json!([running]);
            });
    });
    let (status, deadline_hit) = match launch.deadline {
        Some(limit) => tokio::select! {
            status = child.wait() => (status, false),
            _ = tokio::time::sleep(limit) => {
                kill_group(pgid);
                (child.wait().await, true)
            }
        },
        None => (child.wait().await, false),
    };
    let mut t = match status {
        Ok(s) => {
            let signal = s.signal();
            let code = s.code().unwrap_or_else(|| 128 + signal.unwrap_or(0));
            let mut t = Termination::exit(code);
            t.signal = signal;
            t
        }
        Err(_) => Termination::exit(128),
    };
    t.started_at = Some(started_at);
    if deadline_hit {
        t.exit_code = 137;
        t.reason = Some("Error");
        t.pod_reason = Some((
            "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline".into(),
        ));
    }
    t.message = Some(read_message(&launch, t.exit_code));
    finish(&shared, &launch, t);
}

/// Re-exported for the log endpoint: whether the pod has a process log yet.
pub fn has_started(st: &State, pod: &Value) -> bool {
    log_path(&st.dir, uid_of(pod)).exists()
}
