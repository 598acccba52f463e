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

use super::api::{api_code, Api};
use super::job_manifest::{
    batch_job_name, batch_manifest, manifest_file_name, render_batch_with_hash,
    ANNOTATION_MANIFEST, ANNOTATION_MANIFEST_HASH, LABEL_BATCH, LABEL_CAMPAIGN, LABEL_STEP,
};
use super::names::label_value;
use super::pod_report::{read_pod, PodState};
use crate::batching::{rebalance_throttles, throttle_for_new_array, ArrayLoad, ThrottleDecision};
use crate::launch::{AttemptOutcome, Batch, ExecutorEvent, JobRef};
use crate::manifest::{parse_manifest, write_atomically};
use crate::task_runner::now;
use crate::{Executor, ExecutorError};
use flow_dsl::error_class::ErrorClass;
use flow_dsl::machine_settings::KubernetesSettings;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Duration;

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

/// One Job this driver watches: completion index N runs `tasks[N]`.
#[derive(Debug)]
struct TrackedJob {
    step: String,
    /// Order of creation or adoption (older Jobs get freed capacity first).
    seq: u64,
    /// The Job's `spec.parallelism`: its share of the step's `max_running`.
    parallelism: u32,
    tasks: Vec<(String, u32)>,
    started: Vec<bool>,
    finished: Vec<bool>,
    unfinished: usize,
    /// Indexes the Job's status called finished when it was adopted: if the first full
    /// listing of pods has none for them (garbage-collected while no driver ran), they
    /// are reported lost instead of awaited forever.
    to_verify: Vec<usize>,
}

impl TrackedJob {
    fn new(step: String, seq: u64, parallelism: u32, tasks: Vec<(String, u32)>) -> Self {
        let n = tasks.len();
        TrackedJob {
            step,
            seq,
            parallelism,
            tasks,
            started: vec![false; n],
            finished: vec![false; n],
            unfinished: n,
            to_verify: Vec::new(),
        }
    }

    /// Mark index `n` finished; its (task, attempt) when it was not already.
    fn finish(&mut self, n: usize) -> Option<(String, u32)> {
        if n >= self.tasks.len() || self.finished[n] {
            return None;
        }
        self.finished[n] = true;
        self.unfinished -= 1;
        Some(self.tasks[n].clone())
    }

    fn load(&self) -> ArrayLoad {
        ArrayLoad {
            throttle: self.parallelism,
            remaining: self.unfinished as u32,
        }
    }
}

/// A batch whose step has no free share of `max_running` yet: its manifest is written,
/// its Job is created once capacity frees.
#[derive(Debug)]
struct HeldBatch {
    batch: Batch,
    hash: String,
    manifest: PathBuf,
}

/// What the watch task hands the driver thread.
enum WatchNews {
    Pod(Box<Pod>),
    Deleted(Box<Pod>),
    /// A full listing (initial or after 410 Gone) was delivered.
    Listed,
    Error(String),
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

    /// Start the one watch of this campaign's pods, once.
    fn ensure_watch(&mut self) {
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

    /// Create the Job, or adopt the one with the same name and manifest. Returns the
    /// parallelism of the Job that exists now.
    fn create_or_adopt(&self, job: Job, manifest_hash: &str) -> Result<u32, ExecutorError> {
        let api = self.jobs_api();
        let name = job.metadata.name.clone().unwrap_or_default();
        let created = self.runtime.block_on(
            self.api
                .call(|| async { api.create(&PostParams::default(), &job).await }),
        );
        match created {
            Ok(job) => Ok(parallelism_of(&job)),
            Err(e) if api_code(&e) == Some(409) => {
                let existing = self
                    .runtime
                    .block_on(self.api.call(|| async { api.get(&name).await }))
                    .map_err(|e| backend(format!("reading existing Job {name}: {e}")))?;
                let hash = existing
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_MANIFEST_HASH));
                if hash.map(String::as_str) != Some(manifest_hash) {
                    return Err(ExecutorError::SubmitRejected {
                        backend: BACKEND.into(),
                        message: format!(
                            "Job {name} already exists in namespace {} and is not this batch (manifest {} there, {manifest_hash} here)",
                            self.namespace(),
                            hash.map_or("unknown", |h| h.as_str())
                        ),
                    });
                }
                Ok(parallelism_of(&existing))
            }
            Err(e) if matches!(api_code(&e), Some(400 | 403 | 422)) => {
                Err(ExecutorError::SubmitRejected {
                    backend: BACKEND.into(),
                    message: format!("creating Job {name}: {e}"),
                })
            }
            Err(e) => Err(backend(format!("creating Job {name}: {e}"))),
        }
    }

    /// The parallelism a new Job of this batch may have now, or `None` when its step's
    /// `max_running` is taken by the step's Jobs already created.
    fn share_for(&self, batch: &Batch) -> Option<u32> {
        let len = batch.tasks.len() as u32;
        let loads = self.loads(&batch.step);
        match throttle_for_new_array(self.caps.get(&batch.step).copied(), &loads, len) {
            ThrottleDecision::Submit(share) => Some(share.unwrap_or(len).min(len).max(1)),
            ThrottleDecision::Wait => None,
        }
    }

    /// The step's live Jobs, oldest first: (name, load).
    fn live_jobs(&self, step: &str) -> Vec<(String, ArrayLoad)> {
        let mut live: Vec<(&String, &TrackedJob)> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.step == step && j.unfinished > 0)
            .collect();
        live.sort_by_key(|(_, j)| j.seq);
        live.into_iter()
            .map(|(name, j)| (name.clone(), j.load()))
            .collect()
    }

    fn loads(&self, step: &str) -> Vec<ArrayLoad> {
        self.live_jobs(step).into_iter().map(|(_, l)| l).collect()
    }

    /// Render and create (or adopt) the Job of a batch with this parallelism, and track it.
    fn create(&mut self, held: &HeldBatch, parallelism: u32) -> Result<(), ExecutorError> {
        let mut batch = held.batch.clone();
        batch.max_running = Some(parallelism);
        let job_type = self
            .campaign
            .step_job_types
            .get(&batch.step)
            .cloned()
            .flatten();
        let documents = render_batch_with_hash(
            &self.campaign.campaign_tag,
            &batch,
            job_type.as_deref(),
            &self.campaign.settings,
            &held.manifest.display().to_string(),
            &self.campaign.settings.flow_binary,
            &held.hash,
        )
        .map_err(|e| ExecutorError::SubmitRejected {
            backend: BACKEND.into(),
            message: e.to_string(),
        })?;
        for document in documents {
            let job: Job = serde_json::from_value(document)
                .map_err(|e| backend(format!("rendered Job does not parse: {e}")))?;
            let name = job.metadata.name.clone().unwrap_or_default();
            let parallelism = self.create_or_adopt(job, &held.hash)?;
            let tasks = batch
                .tasks
                .iter()
                .map(|t| (t.task_id.clone(), t.attempt))
                .collect();
            let seq = self.next_seq;
            self.next_seq += 1;
            self.jobs
                .entry(name)
                .or_insert_with(|| TrackedJob::new(batch.step.clone(), seq, parallelism, tasks));
        }
        Ok(())
    }

    /// Hand the capacity that finished tasks freed to held batches (in order), else to the
    /// step's live Jobs (oldest first, by raising their parallelism).
    fn share_capacity(&mut self) {
        let mut waiting_steps: Vec<String> = Vec::new();
        let mut still_held = VecDeque::new();
        while let Some(held) = self.held.pop_front() {
            let step = held.batch.step.clone();
            if waiting_steps.contains(&step) {
                still_held.push_back(held);
                continue;
            }
            match self.share_for(&held.batch) {
                Some(parallelism) => match self.create(&held, parallelism) {
                    Ok(()) => {}
                    Err(e @ ExecutorError::SubmitRejected { .. }) => {
                        self.report_unsubmitted(
                            &held.batch,
                            ErrorClass::SubmitRejected,
                            &e.to_string(),
                        );
                    }
                    Err(e) => {
                        // The API is not answering (retries exhausted): keep the batch and
                        // try again at the next poll.
                        eprintln!("kubernetes: {e} (will try again)");
                        waiting_steps.push(step);
                        still_held.push_back(held);
                    }
                },
                None => {
                    waiting_steps.push(step);
                    still_held.push_back(held);
                }
            }
        }
        self.held = still_held;
        let steps: Vec<(String, u32)> = self
            .caps
            .iter()
            .filter(|(step, _)| !waiting_steps.contains(step))
            .map(|(s, c)| (s.clone(), *c))
            .collect();
        for (step, cap) in steps {
            let live = self.live_jobs(&step);
            let loads: Vec<ArrayLoad> = live.iter().map(|(_, l)| *l).collect();
            for (i, parallelism) in rebalance_throttles(cap, &loads) {
                let name = &live[i].0;
                let api = self.jobs_api();
                let patch = Patch::Merge(serde_json::json!({"spec": {"parallelism": parallelism}}));
                let patched = self.runtime.block_on(
                    self.api
                        .call(|| async { api.patch(name, &PatchParams::default(), &patch).await }),
                );
                match patched {
                    Ok(_) => {
                        if let Some(job) = self.jobs.get_mut(name) {
                            job.parallelism = parallelism;
                        }
                    }
                    Err(e) => eprintln!("kubernetes: raising the parallelism of Job {name}: {e}"),
                }
            }
        }
    }

    /// End the tasks of a batch that never became a Job.
    fn report_unsubmitted(&mut self, batch: &Batch, class: ErrorClass, message: &str) {
        let t = now();
        for task in &batch.tasks {
            self.queued.push(ExecutorEvent::Finished {
                task_id: task.task_id.clone(),
                attempt: task.attempt,
                outcome: AttemptOutcome::ended_without_exit(class, message, t),
            });
        }
    }

    /// After a full pod listing: the indexes adopted Jobs called finished that have no pod
    /// any more and were not reported will never be; report them lost (retried).
    fn verify_adopted(&mut self) {
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
    fn on_pod(&mut self, pod: &Pod) {
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
    fn on_pod_deleted(&mut self, pod: &Pod) {
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
    fn finish_job(&mut self, name: &str, class: ErrorClass, message: &str) {
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

    fn delete_jobs(&self, names: &[String]) -> Result<(), ExecutorError> {
        let api = self.jobs_api();
        for name in names {
            let deleted = self.runtime.block_on(
                self.api
                    .call(|| async { api.delete(name, &DeleteParams::background()).await }),
            );
            match deleted {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(backend(format!("deleting Job {name}: {e}"))),
            }
        }
        Ok(())
    }

    /// This campaign's Jobs as the API server has them.
    ///
    /// The label names the campaign (`<version>_<name>`); two directories holding a campaign
    /// of the same name and version in one namespace share it. A Job belongs to *this*
    /// campaign only if its manifest lies under this campaign's manifest directory, so one
    /// never adopts nor deletes the other's Jobs.
    fn campaign_jobs(&self) -> Result<Vec<Job>, ExecutorError> {
        let api = self.jobs_api();
        let params = ListParams::default().labels(&self.campaign_selector());
        let jobs = self
            .runtime
            .block_on(self.api.call(|| async { api.list(&params).await }))
            .map(|list| list.items)
            .map_err(|e| backend(format!("listing Jobs: {e}")))?;
        let ours = |job: &Job| {
            annotation(job, ANNOTATION_MANIFEST)
                .is_some_and(|m| Path::new(m).starts_with(&self.campaign.manifest_dir))
        };
        Ok(jobs.into_iter().filter(ours).collect())
    }

    /// Delete every Job of this campaign (and, in the background, their pods), whether or
    /// not this driver knows them: `flow cancel` when no driver runs. Returns how many.
    pub fn delete_campaign_jobs(&mut self) -> Result<usize, ExecutorError> {
        let names: Vec<String> = self
            .campaign_jobs()?
            .into_iter()
            .filter_map(|j| j.metadata.name)
            .collect();
        self.delete_jobs(&names)?;
        Ok(names.len())
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
            super::pod_report::JOB_NAME,
            super::pod_report::COMPLETION_INDEX
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

fn parallelism_of(job: &Job) -> u32 {
    job.spec
        .as_ref()
        .and_then(|s| s.parallelism)
        .map_or(1, |p| p.max(0) as u32)
}

/// Completion indexes in Kubernetes' interval form (`"0-3,5"`).
fn parse_indexes(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            out.extend(a..=b.min(a + 1_000_000));
        }
    }
    out
}

fn annotation<'a>(job: &'a Job, key: &str) -> Option<&'a str> {
    job.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
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
