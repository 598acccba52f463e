//! The pod watch: one `kube::runtime::watcher` on this campaign's pods, running on the
//! executor's runtime, and what each pod's news means for its attempt (started, ended,
//! stuck, deleted); the logs of an attempt's pods.

use super::*;
use crate::kubernetes::api::api_code;
use crate::kubernetes::pod_report::{read_pod, PodState};
use crate::launch::{AttemptOutcome, ExecutorEvent};
use crate::task_runner::now;
use crate::ExecutorError;
use flow_dsl::error_class::ErrorClass;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use std::sync::mpsc::channel;
/// What the watch task hands the driver thread.
pub(super) enum WatchNews {
    Pod(Box<Pod>),
    Deleted(Box<Pod>),
    /// A full listing (initial or after 410 Gone) was delivered.
    Listed,
    Error(String),
}

impl KubernetesExecutor {
    /// Start the one watch of this campaign's pods, once.
    pub(super) fn ensure_watch(&mut self) {
        if self.news.is_some() {
            return;
        }
        let (tx, rx) = channel();
        let config = watcher::Config::default().labels(&self.campaign_selector());
        let stream = watcher(self.pods_api(), config).default_backoff();
        self.runtime.spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let news = match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                        WatchNews::Pod(Box::new(pod))
                    }
                    Ok(watcher::Event::Delete(pod)) => WatchNews::Deleted(Box::new(pod)),
                    Ok(watcher::Event::InitDone) => WatchNews::Listed,
                    Ok(watcher::Event::Init) => continue,
                    Err(e) => WatchNews::Error(e.to_string()),
                };
                if tx.send(news).is_err() {
                    break;
                }
            }
        });
        self.news = Some(rx);
    }

    /// After a full pod listing: the indexes adopted Jobs called finished that have no pod
    /// any more and were not reported will never be; report them lost (retried).
    pub(super) fn verify_adopted(&mut self) {
        let t = now();
        for (name, job) in self.jobs.iter_mut() {
            for n in std::mem::take(&mut job.to_verify) {
                if let Some((task_id, attempt)) = job.finish(n) {
                    let message = format!(
                        "index {n} of Job {name} ended while no driver watched, and its pod is gone without a result"
                    );
                    self.queued.push(ExecutorEvent::Finished {
                        task_id,
                        attempt,
                        outcome: AttemptOutcome::ended_without_exit(
                            ErrorClass::NodeFailure,
                            &message,
                            t,
                        ),
                    });
                }
            }
        }
    }

    /// Turn one pod's news into executor events.
    pub(super) fn on_pod(&mut self, pod: &Pod) {
        let Some(report) = read_pod(pod) else {
            return;
        };
        let Some(job) = self.jobs.get_mut(&report.job) else {
            return;
        };
        let n = report.index;
        if n >= job.tasks.len() || job.finished[n] {
            return;
        }
        let (task_id, attempt) = job.tasks[n].clone();
        match report.state {
            PodState::Waiting => {}
            PodState::Running { started_at } => {
                if !job.started[n] {
                    job.started[n] = true;
                    self.queued.push(ExecutorEvent::Started {
                        task_id,
                        attempt,
                        job_id: format!("{}_{n}", report.job),
                        pid: None,
                        at: started_at,
                    });
                }
            }
            // Kubernetes recreates the index; the attempt goes on in the new pod.
            PodState::Disrupted { .. } => {}
            PodState::Ended { outcome, result } => {
                // flow's own result knows the error class; the pod status is the fallback
                // (a kill, OOM, the deadline, a container that never ran `flow task`).
                let outcome = match result {
                    Some(own) if own.task_id == task_id && own.attempt == attempt => own.outcome,
                    _ => outcome,
                };
                // A short task can end before the watch ever saw its pod running (the real
                // kubelet reports Pending, then Failed): the attempt still needs its job id
                // (`flow logs` finds the pod by it), so it is started first.
                if !job.started[n] {
                    job.started[n] = true;
                    self.queued.push(ExecutorEvent::Started {
                        task_id: task_id.clone(),
                        attempt,
                        job_id: format!("{}_{n}", report.job),
                        pid: None,
                        at: outcome.started_at.unwrap_or_else(crate::task_runner::now),
                    });
                }
                job.finish(n);
                self.queued.push(ExecutorEvent::Finished {
                    task_id,
                    attempt,
                    outcome,
                });
            }
            PodState::Stuck { reason, message } => {
                let text = format!(
                    "pod {} cannot start: {reason}{}{message}",
                    report.pod,
                    if message.is_empty() { "" } else { ": " }
                );
                let name = report.job.clone();
                self.finish_job(&name, ErrorClass::LaunchFailed, &text);
                let _ = self.delete_jobs(&[name]);
            }
        }
    }

    /// A pod went away. If its Job went too (deleted by someone else), its unfinished tasks
    /// will never be reported: end them as cancelled.
    pub(super) fn on_pod_deleted(&mut self, pod: &Pod) {
        let Some(report) = read_pod(pod) else {
            return;
        };
        if self.jobs.get(&report.job).is_none_or(|j| j.unfinished == 0) {
            return;
        }
        // The last word of a pod deleted after it ended still counts.
        if matches!(report.state, PodState::Ended { .. }) {
            self.on_pod(pod);
        }
        let api = self.jobs_api();
        let name = report.job.clone();
        let gone = matches!(
            self.runtime.block_on(self.api.call(|| async { api.get(&name).await })),
            Err(e) if api_code(&e) == Some(404)
        );
        if gone {
            self.finish_job(
                &report.job,
                ErrorClass::Cancelled,
                &format!("Job {} was deleted", report.job),
            );
        }
    }

    /// Report every unfinished task of a Job as ended with `class`.
    pub(super) fn finish_job(&mut self, name: &str, class: ErrorClass, message: &str) {
        let Some(job) = self.jobs.get_mut(name) else {
            return;
        };
        let t = now();
        for n in 0..job.tasks.len() {
            if let Some((task_id, attempt)) = job.finish(n) {
                self.queued.push(ExecutorEvent::Finished {
                    task_id,
                    attempt,
                    outcome: AttemptOutcome::ended_without_exit(class, message, t),
                });
            }
        }
    }

    /// The logs of the pods that ran completion index `index` of Job `job`, oldest first (a
    /// disrupted pod's replacement comes after it). These hold what `flow task` itself said;
    /// the task's stdout and stderr are files on the volume.
    pub fn pod_logs(
        &self,
        job: &str,
        index: usize,
    ) -> Result<Vec<(String, String)>, ExecutorError> {
        let api = self.pods_api();
        let selector = format!(
            "{}={job},{}={index}",
            crate::kubernetes::pod_report::JOB_NAME,
            crate::kubernetes::pod_report::COMPLETION_INDEX
        );
        let params = ListParams::default().labels(&selector);
        let mut pods = self
            .runtime
            .block_on(self.api.call(|| async { api.list(&params).await }))
            .map_err(|e| backend(format!("listing the pods of Job {job}: {e}")))?
            .items;
        pods.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let mut logs = Vec::new();
        for pod in pods {
            let name = pod.metadata.name.unwrap_or_default();
            let log = self
                .runtime
                .block_on(
                    self.api
                        .call(|| async { api.logs(&name, &LogParams::default()).await }),
                )
                .map_err(|e| backend(format!("log of pod {name}: {e}")))?;
            logs.push((name, log));
        }
        Ok(logs)
    }
}
