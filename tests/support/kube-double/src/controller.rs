//! The Job controller (Indexed semantics) and the TTL-after-finished controller.

use crate::failure_policy::{self, Action};
use crate::kinds::Kind;
use crate::state::{Shared, State};
use crate::store::{name_of, uid_of};
use crate::{clock, intervals, kubelet};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";

/// What the controller remembers of one Job beyond its status.
#[derive(Default)]
pub struct JobBook {
    accounted: HashSet<String>,
    succeeded: BTreeSet<i64>,
    failed: BTreeSet<i64>,
    failures: HashMap<i64, i64>,
    failed_pods: i64,
    counted: i64,
    failure: Option<(&'static str, String)>,
    finished_at: Option<Instant>,
}

fn is_finished(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| matches!(c["type"].as_str(), Some("Complete" | "Failed")) && c["status"] == "True")
}

/// Whether a pod reached `Succeeded` or `Failed`.
pub fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

fn pod_index(pod: &Value) -> Option<i64> {
    pod.pointer("/metadata/labels")
        .and_then(|l| l.get(INDEX_KEY))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// Pods of the Job with this uid, in a namespace.
fn pods_of(st: &State, ns: &str, job_uid: &str) -> Vec<Value> {
    st.store
        .list(Kind::Pod, ns)
        .into_iter()
        .filter(|p| {
            p.pointer("/metadata/labels")
                .and_then(|l| l.get(CONTROLLER_UID))
                .and_then(Value::as_str)
                == Some(job_uid)
        })
        .cloned()
        .collect()
}

/// Reconciles every Job.
pub fn reconcile_all(st: &mut State) {
    let jobs: Vec<(String, String)> = st
        .store
        .all_by_creation(Kind::Job)
        .into_iter()
        .map(|j| {
            let ns = j.pointer("/metadata/namespace").and_then(Value::as_str);
            (ns.unwrap_or("").to_string(), name_of(j).to_string())
        })
        .collect();
    for (ns, name) in jobs {
        reconcile(st, &ns, &name);
    }
}

fn spec_i64(job: &Value, field: &str) -> Option<i64> {
    job.get("spec")
        .and_then(|s| s.get(field))
        .and_then(Value::as_i64)
}

fn account(book: &mut JobBook, job: &Value, pod: &Value) {
    let Some(index) = pod_index(pod) else { return };
    if pod.pointer("/status/phase").and_then(Value::as_str) == Some("Succeeded") {
        if !book.failed.contains(&index) {
            book.succeeded.insert(index);
        }
        return;
    }
    let (action, rule) = failure_policy::evaluate(job.pointer("/spec/podFailurePolicy"), pod);
    match action {
        Action::Ignore => {}
        Action::FailIndex => {
            book.failed_pods += 1;
            book.failed.insert(index);
        }
        Action::FailJob => {
            book.failed_pods += 1;
            let cs = pod.pointer("/status/containerStatuses/0");
            let container = cs.and_then(|c| c["name"].as_str()).unwrap_or("");
            let code = cs
                .and_then(|c| c.pointer("/state/terminated/exitCode"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            book.failure.get_or_insert((
                "PodFailurePolicy",
                format!(
                    "Container {container} for pod {}/{} failed with exit code {code} matching FailJob rule at index {}",
                    pod["metadata"]["namespace"].as_str().unwrap_or(""),
                    name_of(pod),
                    rule.unwrap_or(0)
                ),
            ));
        }
        Action::Count => {
            book.failed_pods += 1;
            book.counted += 1;
            let failures = book.failures.entry(index).or_insert(0);
            *failures += 1;
            let per_index = spec_i64(job, "backoffLimitPerIndex");
            match (per_index, spec_i64(job, "backoffLimit")) {
                (Some(limit), _) if *failures > limit => {
                    book.failed.insert(index);
                }
                (Some(_), _) => {}
                (None, Some(limit)) if book.counted > limit => {
                    book.failure.get_or_insert((
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit".into(),
                    ));
                }
                (None, Some(_)) => {}
                (None, None) => {
                    book.failed.insert(index);
                }
            }
        }
    }
}

fn new_pod(job: &Value, index: i64, failures: i64) -> Value {
    let name = name_of(job);
    let template = &job["spec"]["template"];
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let uid = uid_of(job);
    for (k, v) in [
        (CONTROLLER_UID, uid),
        ("controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
        ("job-name", name),
    ] {
        labels[k] = json!(v);
    }
    labels[INDEX_KEY] = json!(index.to_string());
    let mut annotations = template
        .pointer("/metadata/annotations")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    annotations[INDEX_KEY] = json!(index.to_string());
    if failures > 0 {
        annotations["batch.kubernetes.io/job-index-failure-count"] = json!(failures.to_string());
    }
    json!({
        "metadata": {
            "name": format!("{name}-{index}-{}", clock::suffix(5)),
            "generateName": format!("{name}-{index}-"),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

fn condition(kind: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": kind, "status": "True", "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": now})
}

fn reconcile(st: &mut State, ns: &str, name: &str) {
    let Some(job) = st.store.get(Kind::Job, ns, name).cloned() else {
        return;
    };
    if is_finished(&job) {
        return;
    }
    let uid = uid_of(&job).to_string();
    let completions = spec_i64(&job, "completions").unwrap_or(1).max(0);
    let parallelism = spec_i64(&job, "parallelism").unwrap_or(1).max(0);
    let mut book = st.jobs.remove(&uid).unwrap_or_default();
    let pods = pods_of(st, ns, &uid);
    for pod in pods.iter().filter(|p| is_terminal(p)) {
        if book.accounted.insert(uid_of(pod).to_string()) {
            account(&mut book, &job, pod);
        }
    }
    if let Some(max) = spec_i64(&job, "maxFailedIndexes") {
        if book.failed.len() as i64 > max {
            book.failure.get_or_insert((
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes".into(),
            ));
        }
    }
    let mut active: Vec<&Value> = pods.iter().filter(|p| !is_terminal(p)).collect();
    if book.failure.is_some() {
        for pod in &active {
            kubelet::delete_pod(st, ns, name_of(pod));
        }
        active.clear();
    } else {
        let busy: HashSet<i64> = active.iter().filter_map(|p| pod_index(p)).collect();
        let room = (parallelism - active.len() as i64).max(0) as usize;
        let missing: Vec<i64> = (0..completions)
            .filter(|i| {
                !book.succeeded.contains(i) && !book.failed.contains(i) && !busy.contains(i)
            })
            .take(room)
            .collect();
        for index in missing {
            let failures = book.failures.get(&index).copied().unwrap_or(0);
            // Names are random; a clash is retried with another suffix.
            for _ in 0..3 {
                if st
                    .store
                    .create(Kind::Pod, ns, new_pod(&job, index, failures))
                    .is_ok()
                {
                    break;
                }
            }
        }
    }
    let active_now = pods_of(st, ns, &uid)
        .into_iter()
        .filter(|p| !is_terminal(p))
        .collect::<Vec<_>>();
    let ready = active_now
        .iter()
        .filter(|p| {
            p.pointer("/status/phase") == Some(&json!("Running"))
                && p.pointer("/status/containerStatuses/0/ready") == Some(&json!(true))
        })
        .count();
    let now = clock::now();
    let mut status = job
        .get("status")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if status.get("startTime").is_none() {
        status["startTime"] = json!(now);
    }
    let set_count = |status: &mut Value, field: &str, n: i64| {
        if n > 0 {
            status[field] = json!(n);
        } else if let Some(m) = status.as_object_mut() {
            m.remove(field);
        }
    };
    set_count(&mut status, "active", active_now.len() as i64);
    set_count(&mut status, "succeeded", book.succeeded.len() as i64);
    set_count(&mut status, "failed", book.failed_pods);
    status["ready"] = json!(ready);
    if !book.succeeded.is_empty() {
        status["completedIndexes"] = json!(intervals::format(book.succeeded.iter().copied()));
    }
    if !book.failed.is_empty() || spec_i64(&job, "backoffLimitPerIndex").is_some() {
        status["failedIndexes"] = json!(intervals::format(book.failed.iter().copied()));
    }
    let all_done =
        (0..completions).all(|i| book.succeeded.contains(&i) || book.failed.contains(&i));
    let terminal = if let Some((reason, message)) = &book.failure {
        Some((false, *reason, message.clone()))
    } else if active_now.is_empty() && all_done {
        if book.failed.is_empty() {
            Some((
                true,
                "CompletionsReached",
                "Reached expected number of succeeded pods".to_string(),
            ))
        } else {
            Some((false, "FailedIndexes", "Job has failed indexes".to_string()))
        }
    } else {
        None
    };
    if let Some((complete, reason, message)) = terminal {
        let (interim, last) = if complete {
            ("SuccessCriteriaMet", "Complete")
        } else {
            ("FailureTarget", "Failed")
        };
        let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        conditions.push(condition(interim, reason, &message, &now));
        conditions.push(condition(last, reason, &message, &now));
        status["conditions"] = Value::Array(conditions);
        if complete {
            status["completionTime"] = json!(now);
        }
        book.finished_at = Some(Instant::now());
    }
    st.store
        .update(Kind::Job, ns, name, |j| j["status"] = status);
    st.jobs.insert(uid, book);
}

/// Deletes a Job with a propagation policy (`Orphan` when none is given, as
/// the batch/v1 API does): `Background` deletes the Job then its pods,
/// `Foreground` the pods then the Job, `Orphan` leaves the pods running
/// without their owner reference.
pub fn delete_job(st: &mut State, ns: &str, name: &str, policy: &str) -> Option<Value> {
    let job = st.store.get(Kind::Job, ns, name)?.clone();
    let uid = uid_of(&job).to_string();
    let pods: Vec<String> = pods_of(st, ns, &uid)
        .iter()
        .map(|p| name_of(p).to_string())
        .collect();
    let deleted = match policy {
        "Orphan" => {
            let deleted = st.store.delete(Kind::Job, ns, name);
            for pod in &pods {
                st.store.update(Kind::Pod, ns, pod, |p| {
                    if let Some(meta) = p["metadata"].as_object_mut() {
                        meta.remove("ownerReferences");
                    }
                });
            }
            deleted
        }
        "Foreground" => {
            for pod in &pods {
                kubelet::delete_pod(st, ns, pod);
            }
            st.store.delete(Kind::Job, ns, name)
        }
        _ => {
            let deleted = st.store.delete(Kind::Job, ns, name);
            for pod in &pods {
                kubelet::delete_pod(st, ns, pod);
            }
            deleted
        }
    };
    st.jobs.remove(&uid);
    deleted
}

/// Deletes (Background) finished Jobs whose `ttlSecondsAfterFinished` passed.
fn collect_expired(st: &mut State) {
    let expired: Vec<(String, String)> =
        st.store
            .all_by_creation(Kind::Job)
            .into_iter()
            .filter_map(|job| {
                let ttl = spec_i64(job, "ttlSecondsAfterFinished")?;
                let finished = st.jobs.get(uid_of(job))?.finished_at?;
                (is_finished(job) && finished.elapsed() >= Duration::from_secs(ttl.max(0) as u64))
                    .then(|| {
                        let ns = job["metadata"]["namespace"].as_str().unwrap_or("");
                        (ns.to_string(), name_of(job).to_string())
                    })
            })
            .collect();
    for (ns, name) in expired {
        delete_job(st, &ns, &name, "Background");
    }
}

/// The TTL controller: checks finished Jobs ten times a second.
pub async fn ttl_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        shared.mutate(collect_expired);
    }
}
