//! What a pod's status says about the task attempt it runs: a pure reading of one `Pod`.
//!
//! The Job controller names the pod's Job and completion index in labels and annotations;
//! the container's `terminated` state and termination message say how it ended. Disruptions
//! (a `DisruptionTarget` condition: drain, preemption, eviction by the control plane) are
//! reported as such and never as an end: the Job's `podFailurePolicy` recreates the index,
//! and the attempt goes on in the new pod without counting against `max_retries`.

use super::termination::{self, PodResult};
use crate::launch::AttemptOutcome;
use flow_dsl::error_class::ErrorClass;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Label (and annotation) the Job controller puts on each pod of an Indexed Job.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Label naming the pod's Job.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// Older spelling of [`JOB_NAME`], still set by the controller.
pub const JOB_NAME_LEGACY: &str = "job-name";

/// Waiting reasons that do not go away by waiting: the attempt cannot start.
const STUCK_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// One pod's news.
#[derive(Debug, Clone, PartialEq)]
pub struct PodReport {
    pub pod: String,
    pub job: String,
    pub index: usize,
    pub state: PodState,
}

// `Ended` carries two outcomes (with their resource usage); a pod's state is read once per
// watch event and not stored in bulk, so the size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum PodState {
    /// Not started yet (scheduling, pulling the image) and nothing wrong seen.
    Waiting,
    /// Cannot start: a bad image, a missing Secret, a container that cannot be created.
    Stuck { reason: String, message: String },
    /// The container runs (Unix seconds of its start).
    Running { started_at: f64 },
    /// The control plane took the pod away; Kubernetes recreates the index.
    Disrupted { reason: String },
    /// The container ended. `result` is what `flow task` reported, when it got that far.
    Ended {
        outcome: AttemptOutcome,
        result: Option<PodResult>,
    },
}

/// Unix seconds of a Kubernetes timestamp.
pub fn unix_seconds(time: &Time) -> f64 {
    time.0.as_millisecond() as f64 / 1000.0
}

/// Read a pod; `None` when it is not a pod of an Indexed Job (no job name or index).
pub fn read_pod(pod: &Pod) -> Option<PodReport> {
    let meta = &pod.metadata;
    let labels = meta.labels.as_ref();
    let annotations = meta.annotations.as_ref();
    let job = labels
        .and_then(|l| l.get(JOB_NAME).or_else(|| l.get(JOB_NAME_LEGACY)))?
        .clone();
    let index = annotations
        .and_then(|a| a.get(COMPLETION_INDEX))
        .or_else(|| labels.and_then(|l| l.get(COMPLETION_INDEX)))?
        .parse::<usize>()
        .ok()?;
    let name = meta.name.clone().unwrap_or_default();
    Some(PodReport {
        state: pod_state(pod, &name),
        pod: name,
        job,
        index,
    })
}

fn pod_state(pod: &Pod, name: &str) -> PodState {
    let Some(status) = &pod.status else {
        return PodState::Waiting;
    };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let container = status
        .container_statuses
        .as_ref()
        .and_then(|c| c.first())
        .cloned();
    // A disrupted pod that still succeeded (an evicted pod's task finished within its
    // termination grace period) is an end: the Job controller counts the index as
    // succeeded and creates no replacement, so waiting for one would wait forever.
    if let Some(reason) = disruption(pod) {
        if phase == "Failed" || (pod.metadata.deletion_timestamp.is_some() && phase != "Succeeded")
        {
            return PodState::Disrupted { reason };
        }
    }
    match phase {
        "Succeeded" | "Failed" => PodState::Ended {
            outcome: ended_outcome(pod, name, phase, container.as_ref()),
            result: container
                .as_ref()
                .and_then(terminated_message)
                .and_then(|m| termination::decode(&m)),
        },
        _ => {
            let state = container.as_ref().and_then(|c| c.state.as_ref());
            if let Some(running) = state.and_then(|s| s.running.as_ref()) {
                let started_at = running
                    .started_at
                    .as_ref()
                    .map(unix_seconds)
                    .unwrap_or_else(crate::task_runner::now);
                return PodState::Running { started_at };
            }
            if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
                let reason = waiting.reason.clone().unwrap_or_default();
                if STUCK_REASONS.contains(&reason.as_str()) {
                    return PodState::Stuck {
                        reason,
                        message: waiting.message.clone().unwrap_or_default(),
                    };
                }
            }
            PodState::Waiting
        }
    }
}

/// The reason of a `DisruptionTarget=True` condition, if the pod has one.
fn disruption(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
        .map(|c| {
            c.reason
                .clone()
                .unwrap_or_else(|| "DisruptionTarget".to_string())
        })
}

fn terminated_message(container: &ContainerStatus) -> Option<String> {
    container
        .state
        .as_ref()?
        .terminated
        .as_ref()?
        .message
        .clone()
        .filter(|m| !m.trim().is_empty())
}

/// The outcome Kubernetes alone can tell (used when `flow task` left no result): exit
/// code or signal, and the class from the pod's or container's reason.
fn ended_outcome(
    pod: &Pod,
    name: &str,
    phase: &str,
    container: Option<&ContainerStatus>,
) -> AttemptOutcome {
    let status = pod.status.as_ref();
    let pod_reason = status.and_then(|s| s.reason.clone()).unwrap_or_default();
    let pod_message = status.and_then(|s| s.message.clone()).unwrap_or_default();
    let terminated = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    let exit_code = terminated.map(|t| t.exit_code);
    let signal = terminated.and_then(|t| t.signal);
    let container_reason = terminated
        .and_then(|t| t.reason.clone())
        .unwrap_or_default();
    let started_at = terminated
        .and_then(|t| t.started_at.as_ref())
        .or(status.and_then(|s| s.start_time.as_ref()))
        .map(unix_seconds);
    let ended_at = terminated
        .and_then(|t| t.finished_at.as_ref())
        .map(unix_seconds)
        .or_else(|| Some(crate::task_runner::now()));
    let error_class = if phase == "Succeeded" && exit_code.unwrap_or(0) == 0 {
        None
    } else if pod_reason == "DeadlineExceeded" {
        Some(ErrorClass::Walltime)
    } else if container_reason == "OOMKilled" {
        Some(ErrorClass::OutOfMemory)
    } else if pod_reason == "Evicted" || pod_reason == "Preempting" {
        Some(ErrorClass::Preempted)
    } else if terminated.is_none() {
        Some(ErrorClass::LaunchFailed)
    } else if signal.is_some() {
        Some(ErrorClass::Signal)
    } else {
        Some(ErrorClass::NonzeroExit)
    };
    let message = error_class.map(|_| {
        let mut parts = vec![format!("pod {name}")];
        for part in [&pod_reason, &container_reason, &pod_message] {
            if !part.is_empty() && part != "Error" {
                parts.push(part.clone());
            }
        }
        if let Some(code) = exit_code {
            parts.push(format!("exit code {code}"));
        }
        if let Some(tail) = terminated.and_then(|t| t.message.clone()) {
            if !tail.trim().is_empty() && termination::decode(&tail).is_none() {
                parts.push(format!("log tail: {}", tail.trim()));
            }
        }
        parts.join(": ")
    });
    AttemptOutcome {
        exit_code,
        signal,
        error_class,
        message,
        started_at,
        ended_at,
        usage: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "flow-mocks-0123-4-abcde",
                "labels": {JOB_NAME: "flow-mocks-0123", COMPLETION_INDEX: "4"},
                "annotations": {COMPLETION_INDEX: "4"}
            },
            "spec": {"containers": [{"name": "task"}]},
            "status": status
        }))
        .unwrap()
    }

    fn terminated(exit_code: i32, reason: &str, message: &str) -> serde_json::Value {
        json!([{"name": "task", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "reason": reason, "message": message,
                "startedAt": "2026-11-28T10:00:00Z", "finishedAt": "2026-11-28T10:00:05Z"}}}])
    }

    #[test]
    fn names_the_job_and_the_completion_index() {
        let report = read_pod(&pod(json!({"phase": "Pending"}))).unwrap();
        assert_eq!(report.job, "flow-mocks-0123");
        assert_eq!(report.index, 4);
        assert_eq!(report.state, PodState::Waiting);
        let stranger: Pod = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert!(read_pod(&stranger).is_none());
    }

    #[test]
    fn a_running_container_is_running_since_its_start() {
        let report = read_pod(&pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "task", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
             "state": {"running": {"startedAt": "2026-11-28T10:00:00Z"}}}]})))
        .unwrap();
        assert_eq!(
            report.state,
            PodState::Running {
                started_at: 1_795_860_000.0
            }
        );
    }

    #[test]
    fn the_termination_message_carries_flows_own_result() {
        let own = AttemptOutcome {
            exit_code: Some(1),
            signal: None,
            error_class: Some(ErrorClass::ScfNotConverged),
            message: Some("SCF did not converge".into()),
            started_at: Some(1.0),
            ended_at: Some(2.0),
            usage: None,
        };
        let message = termination::encode("qe/si", 2, &own).unwrap();
        let report = read_pod(&pod(json!({"phase": "Failed",
            "containerStatuses": terminated(1, "Error", &message)})))
        .unwrap();
        let PodState::Ended { outcome, result } = report.state else {
            panic!("not ended: {report:?}")
        };
        let result = result.unwrap();
        assert_eq!((result.task_id.as_str(), result.attempt), ("qe/si", 2));
        assert_eq!(result.outcome, own);
        assert_eq!(outcome.error_class, Some(ErrorClass::NonzeroExit));
    }

    #[test]
    fn without_a_result_the_pod_status_decides_the_class() {
        let cases = [
            (
                json!({"phase": "Succeeded", "containerStatuses": terminated(0, "Completed", "")}),
                None,
            ),
            (
                json!({"phase": "Failed", "containerStatuses": terminated(2, "Error", "boom\n")}),
                Some(ErrorClass::NonzeroExit),
            ),
            (
                json!({"phase": "Failed", "containerStatuses": terminated(137, "OOMKilled", "")}),
                Some(ErrorClass::OutOfMemory),
            ),
            (
                json!({"phase": "Failed", "reason": "DeadlineExceeded", "message": "Pod was active on the node longer than the specified deadline",
                "containerStatuses": terminated(137, "Error", "")}),
                Some(ErrorClass::Walltime),
            ),
            (
                json!({"phase": "Failed", "reason": "UnexpectedAdmissionError"}),
                Some(ErrorClass::LaunchFailed),
            ),
        ];
        for (status, class) in cases {
            let report = read_pod(&pod(status.clone())).unwrap();
            let PodState::Ended { outcome, result } = report.state else {
                panic!("not ended: {status}")
            };
            assert!(result.is_none());
            assert_eq!(outcome.error_class, class, "{status}");
            if class.is_some() {
                assert!(outcome
                    .message
                    .unwrap()
                    .starts_with("pod flow-mocks-0123-4-abcde"));
            }
        }
        let report = read_pod(&pod(
            json!({"phase": "Failed", "containerStatuses": terminated(2, "Error", "Traceback: x")}),
        ))
        .unwrap();
        let PodState::Ended { outcome, .. } = report.state else {
            panic!()
        };
        assert!(outcome.message.unwrap().contains("log tail: Traceback: x"));
        assert_eq!(outcome.started_at, Some(1_795_860_000.0));
        assert_eq!(outcome.ended_at, Some(1_795_860_005.0));
    }

    #[test]
    fn a_disrupted_pod_is_not_an_end() {
        let report = read_pod(&pod(json!({"phase": "Failed",
            "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}],
            "containerStatuses": terminated(137, "Error", "")})))
        .unwrap();
        assert_eq!(
            report.state,
            PodState::Disrupted {
                reason: "PreemptionByScheduler".into()
            }
        );
    }

    #[test]
    fn an_evicted_pod_that_succeeded_in_its_grace_period_is_an_end() {
        // What the real 1.34 control plane does: the Eviction API adds DisruptionTarget
        // and deletes the pod; its task finishes before the grace period ends, the pod is
        // Succeeded and the Job counts the index as completed (no replacement pod).
        let condition = json!([{"type": "DisruptionTarget", "status": "True",
            "reason": "EvictionByEvictionAPI"}]);
        let mut evicted = pod(json!({"phase": "Running", "conditions": condition}));
        evicted.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2026-12-02T07:58:40Z")).unwrap());
        assert_eq!(
            read_pod(&evicted).unwrap().state,
            PodState::Disrupted {
                reason: "EvictionByEvictionAPI".into()
            }
        );
        let mut succeeded = pod(json!({"phase": "Succeeded", "conditions": condition,
            "containerStatuses": terminated(0, "Completed", "")}));
        succeeded.metadata.deletion_timestamp = evicted.metadata.deletion_timestamp.clone();
        let PodState::Ended { outcome, .. } = read_pod(&succeeded).unwrap().state else {
            panic!("a succeeded pod is an end")
        };
        assert!(outcome.succeeded());
    }

    #[test]
    fn a_pod_that_cannot_start_is_stuck_but_a_pull_in_progress_is_not() {
        let waiting = |reason: &str| {
            json!({"phase": "Pending", "containerStatuses": [{"name": "task", "image": "i",
                "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": "details"}}}]})
        };
        let stuck = read_pod(&pod(waiting("ImagePullBackOff"))).unwrap();
        assert_eq!(
            stuck.state,
            PodState::Stuck {
                reason: "ImagePullBackOff".into(),
                message: "details".into()
            }
        );
        let pulling = read_pod(&pod(waiting("ContainerCreating"))).unwrap();
        assert_eq!(pulling.state, PodState::Waiting);
    }
}
