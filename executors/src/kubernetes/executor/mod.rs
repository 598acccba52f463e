//! The Kubernetes executor: batches become Indexed Jobs, one watch on this campaign's pods
//! reports what happened.
//!
//! - `submit` writes the batch's manifest to the campaign volume (the pods read line
//!   `$JOB_COMPLETION_INDEX` of it) and creates the Job. The Job name is a hash of campaign,
//!   step, batch key and manifest, so a create answered `409 AlreadyExists` (a retried POST,
//!   a driver that crashed after creating) adopts the existing Job: submission is
//!   idempotent.
//! - One `kube::runtime::watcher` on the pods labelled `flow/campaign=<campaign>` (list, then
//!   watch from the list's resourceVersion, re-list on `410 Gone`) feeds `poll`; there is no
//!   polling per task.
//! - A pod's end comes from its container's termination message (the JSON result `flow task`
//!   writes there), else from the pod status (exit code, `OOMKilled`, `DeadlineExceeded`).
//!   Disrupted pods are not ends: the Job's `podFailurePolicy` recreates the index.
//! - `list_jobs` adopts this campaign's Jobs after a driver restart, reading each Job's
//!   manifest back from the path in its `flow/manifest` annotation.
//! - `cancel` deletes Jobs with propagation `Background`.
//!
//! The trait is synchronous: the executor owns a small tokio runtime, the watch runs on it,
//! and every other call is a `block_on`.
//!
//! Files: this one holds the type, connecting and the [`Executor`] implementation; `jobs`
//! creates, adopts, holds and deletes Jobs and shares a step's `max_running` among them;
//! `watch` runs the pod watch and turns each pod's news into attempt events.

use super::api::Api;
use super::job_manifest::{
    batch_job_name, batch_manifest, manifest_file_name, ANNOTATION_MANIFEST, LABEL_BATCH,
    LABEL_CAMPAIGN, LABEL_STEP,
};
use super::names::label_value;
use crate::launch::{Batch, ExecutorEvent, JobRef};
use crate::manifest::{parse_manifest, write_atomically};
use crate::{Executor, ExecutorError};
use flow_dsl::error_class::ErrorClass;
use flow_dsl::machine_settings::KubernetesSettings;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

mod jobs;
mod watch;

use jobs::TrackedJob;
use jobs::{annotation, parallelism_of, parse_indexes, HeldBatch};
use watch::WatchNews;

const BACKEND: &str = "kubernetes";

/// What the executor needs to know about the campaign.
#[derive(Debug, Clone)]
pub struct KubernetesCampaign {
    /// The campaign's stable identity (`<version>_<name>`).
    pub campaign_tag: String,
    /// The machine's `kubernetes:` settings.
    pub settings: KubernetesSettings,
    /// Where batch manifests are written: a directory in the campaign directory, which pods
    /// see at the same path (the volume).
    pub manifest_dir: PathBuf,
    /// The machine job type of each step (picks node selector and tolerations).
    pub step_job_types: BTreeMap<String, Option<String>>,
}

pub struct KubernetesExecutor {
    runtime: tokio::runtime::Runtime,
    api: Api,
    campaign: KubernetesCampaign,
    jobs: HashMap<String, TrackedJob>,
    next_seq: u64,
    /// Step-wide `max_running` of each step that has one.
    caps: HashMap<String, u32>,
    held: VecDeque<HeldBatch>,
    news: Option<Receiver<WatchNews>>,
    queued: Vec<ExecutorEvent>,
    last_watch_error: Option<String>,
}

fn backend(message: impl Into<String>) -> ExecutorError {
    ExecutorError::Backend {
        backend: BACKEND.into(),
        message: message.into(),
    }
}

impl KubernetesExecutor {
    /// Connect (kubeconfig or in-cluster). Nothing is created until `submit`.
    pub fn connect(mut campaign: KubernetesCampaign) -> Result<Self, ExecutorError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("flow-kubernetes")
            .enable_all()
            .build()
            .map_err(|e| ExecutorError::io("starting the Kubernetes client runtime", e))?;
        let api = runtime
            .block_on(Api::connect(
                campaign.settings.context.as_deref(),
                campaign.settings.api_requests_per_second,
            ))
            .map_err(backend)?;
        if campaign.settings.server_version.is_none() {
            // Which Job fields the cluster has (per-index retries since 1.29).
            let client = api.client.clone();
            match runtime.block_on(async { client.apiserver_version().await }) {
                Ok(info) => {
                    campaign.settings.server_version =
                        Some(format!("{}.{}", info.major, info.minor))
                }
                Err(e) => eprintln!(
                    "kubernetes: cannot read the server version ({e}); assuming 1.29 or later"
                ),
            }
        }
        Ok(KubernetesExecutor {
            runtime,
            api,
            campaign,
            jobs: HashMap::new(),
            next_seq: 0,
            caps: HashMap::new(),
            held: VecDeque::new(),
            news: None,
            queued: Vec::new(),
            last_watch_error: None,
        })
    }

    fn namespace(&self) -> &str {
        &self.campaign.settings.namespace
    }

    fn campaign_selector(&self) -> String {
        format!(
            "{LABEL_CAMPAIGN}={}",
            label_value(&self.campaign.campaign_tag)
        )
    }

    fn jobs_api(&self) -> kube::Api<Job> {
        kube::Api::namespaced(self.api.client.clone(), self.namespace())
    }

    fn pods_api(&self) -> kube::Api<Pod> {
        kube::Api::namespaced(self.api.client.clone(), self.namespace())
    }
}

impl Executor for KubernetesExecutor {
    fn attempt_logs(&self, job_id: &str) -> Result<crate::AttemptLogs, ExecutorError> {
        let Some((job, index)) = job_id
            .rsplit_once('_')
            .and_then(|(job, index)| Some((job, index.parse::<usize>().ok()?)))
        else {
            return Ok(crate::AttemptLogs::default());
        };
        let logs = self.pod_logs(job, index)?;
        Ok(crate::AttemptLogs {
            source_kind: "pod".into(),
            none_left: logs
                .is_empty()
                .then(|| format!("no pod of Job {job} index {index} is left")),
            logs,
        })
    }

    fn cancel_all(&mut self) -> Result<crate::CancelledJobs, ExecutorError> {
        Ok(crate::CancelledJobs {
            jobs: self.delete_campaign_jobs()?,
            deleted: true,
        })
    }

    fn name(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities::of(flow_dsl::model::ExecutorKind::Kubernetes)
    }

    fn submit(&mut self, batch: Batch) -> Result<Vec<JobRef>, ExecutorError> {
        self.ensure_watch();
        let (text, hash) = batch_manifest(&batch).map_err(|e| backend(e.to_string()))?;
        let manifest = self
            .campaign
            .manifest_dir
            .join(&batch.step)
            .join(manifest_file_name(&batch.batch_key, &hash));
        if let Some(dir) = manifest.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ExecutorError::io(format!("creating {}", dir.display()), e))?;
        }
        write_atomically(&manifest, text.as_bytes())
            .map_err(|e| ExecutorError::io(format!("writing {}", manifest.display()), e))?;
        if let Some(cap) = batch.max_running {
            self.caps.insert(batch.step.clone(), cap.max(1));
        }
        let job_ref = JobRef {
            job_id: batch_job_name(&self.campaign.campaign_tag, &batch, &hash),
            step: batch.step.clone(),
            batch_key: batch.batch_key.clone(),
        };
        let held = HeldBatch {
            batch,
            hash,
            manifest,
        };
        // Batches of a step queue behind its held ones, so they start in order.
        let queued_behind = self.held.iter().any(|h| h.batch.step == held.batch.step);
        match self.share_for(&held.batch) {
            Some(parallelism) if !queued_behind => self.create(&held, parallelism)?,
            _ => self.held.push_back(held),
        }
        Ok(vec![job_ref])
    }

    fn poll(&mut self, max_wait: Duration) -> Result<Vec<ExecutorEvent>, ExecutorError> {
        let mut news = Vec::new();
        if let Some(rx) = &self.news {
            if self.queued.is_empty() {
                match rx.recv_timeout(max_wait) {
                    Ok(n) => news.push(n),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        return Err(backend("the pod watch stopped"))
                    }
                }
            }
            news.extend(rx.try_iter());
        } else if self.queued.is_empty() {
            std::thread::sleep(max_wait);
        }
        for item in news {
            match item {
                WatchNews::Pod(pod) => self.on_pod(&pod),
                WatchNews::Deleted(pod) => self.on_pod_deleted(&pod),
                WatchNews::Listed => self.verify_adopted(),
                WatchNews::Error(e) => {
                    // The watcher backs off and re-lists on its own; say it once per kind.
                    if self.last_watch_error.as_deref() != Some(e.as_str()) {
                        eprintln!("kubernetes: pod watch: {e} (retrying)");
                        self.last_watch_error = Some(e);
                    }
                }
            }
        }
        self.share_capacity();
        Ok(std::mem::take(&mut self.queued))
    }

    fn list_jobs(&mut self) -> Result<Vec<JobRef>, ExecutorError> {
        let mut refs = Vec::new();
        for job in self.campaign_jobs()? {
            let name = job.metadata.name.clone().unwrap_or_default();
            let (Some(step), Some(batch_key), Some(manifest)) = (
                annotation(&job, LABEL_STEP),
                annotation(&job, LABEL_BATCH),
                annotation(&job, ANNOTATION_MANIFEST),
            ) else {
                continue;
            };
            if !self.jobs.contains_key(&name) {
                // A Job whose manifest is gone or damaged cannot be followed: say so and go
                // on (its attempts, if any are still open, are retried), rather than refuse
                // to run the campaign at all.
                let tasks = match std::fs::read_to_string(manifest)
                    .map_err(|e| e.to_string())
                    .and_then(|text| parse_manifest(&text))
                {
                    Ok(launches) => launches
                        .into_iter()
                        .map(|t| (t.task_id, t.attempt))
                        .collect(),
                    Err(e) => {
                        eprintln!(
                            "kubernetes: not adopting Job {name}: its manifest {manifest} cannot be read ({e}); delete it with `kubectl delete job -n {} {name}` if it still runs",
                            self.namespace()
                        );
                        continue;
                    }
                };
                let seq = self.next_seq;
                self.next_seq += 1;
                let mut tracked =
                    TrackedJob::new(step.to_string(), seq, parallelism_of(&job), tasks);
                if let Some(status) = &job.status {
                    for text in [&status.completed_indexes, &status.failed_indexes]
                        .into_iter()
                        .flatten()
                    {
                        tracked.to_verify.extend(parse_indexes(text));
                    }
                }
                self.jobs.insert(name.clone(), tracked);
            }
            refs.push(JobRef {
                job_id: name,
                step: step.to_string(),
                batch_key: batch_key.to_string(),
            });
        }
        if !refs.is_empty() {
            self.ensure_watch();
        }
        Ok(refs)
    }

    fn cancel(&mut self, jobs: &[JobRef]) -> Result<(), ExecutorError> {
        let mut names: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
        if jobs.is_empty() {
            names = self.jobs.keys().cloned().collect();
            for job in self.campaign_jobs()? {
                if let Some(name) = job.metadata.name {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        let held: Vec<HeldBatch> = self.held.drain(..).collect();
        for h in held {
            let name = batch_job_name(&self.campaign.campaign_tag, &h.batch, &h.hash);
            if jobs.is_empty() || names.contains(&name) {
                self.report_unsubmitted(
                    &h.batch,
                    ErrorClass::Cancelled,
                    "cancelled before submission",
                );
            } else {
                self.held.push_back(h);
            }
        }
        self.delete_jobs(&names)?;
        for name in &names {
            self.finish_job(name, ErrorClass::Cancelled, "cancelled");
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.jobs.values().map(|j| j.unfinished).sum::<usize>()
            + self.held.iter().map(|h| h.batch.tasks.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::ArrayLoad;

    #[test]
    fn a_tracked_job_starts_with_every_index_unfinished() {
        let job = TrackedJob::new("s".into(), 0, 2, vec![("a".into(), 1), ("b".into(), 2)]);
        assert_eq!(job.unfinished, 2);
        assert_eq!(job.started, vec![false, false]);
        assert_eq!(job.finished, vec![false, false]);
        assert_eq!(
            job.load(),
            ArrayLoad {
                throttle: 2,
                remaining: 2
            }
        );
    }

    #[test]
    fn completion_indexes_in_interval_form() {
        assert_eq!(parse_indexes("0-3,5"), vec![0, 1, 2, 3, 5]);
        assert_eq!(parse_indexes(""), Vec::<usize>::new());
        assert_eq!(parse_indexes("7"), vec![7]);
        assert_eq!(parse_indexes("x,2"), vec![2]);
    }
}
