//! Jobs through the API: create or adopt a batch's Indexed Job, hold batches whose step's
//! `max_running` has no room and share capacity as tasks end (new Jobs first, then the
//! parallelism of live ones), find and delete this campaign's Jobs.

use super::*;
use crate::batching::{rebalance_throttles, throttle_for_new_array, ArrayLoad, ThrottleDecision};
use crate::kubernetes::api::api_code;
use crate::kubernetes::job_manifest::{
    render_batch_with_hash, ANNOTATION_MANIFEST, ANNOTATION_MANIFEST_HASH,
};
use crate::launch::{AttemptOutcome, Batch, ExecutorEvent};
use crate::task_runner::now;
use crate::ExecutorError;
use flow_dsl::error_class::ErrorClass;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
/// One Job this driver watches: completion index N runs `tasks[N]`.
#[derive(Debug)]
pub(super) struct TrackedJob {
    pub(super) step: String,
    /// Order of creation or adoption (older Jobs get freed capacity first).
    pub(super) seq: u64,
    /// The Job's `spec.parallelism`: its share of the step's `max_running`.
    pub(super) parallelism: u32,
    pub(super) tasks: Vec<(String, u32)>,
    pub(super) started: Vec<bool>,
    pub(super) finished: Vec<bool>,
    pub(super) unfinished: usize,
    /// Indexes the Job's status called finished when it was adopted: if the first full
    /// listing of pods has none for them (garbage-collected while no driver ran), they
    /// are reported lost instead of awaited forever.
    pub(super) to_verify: Vec<usize>,
}

impl TrackedJob {
    pub(super) fn new(step: String, seq: u64, parallelism: u32, tasks: Vec<(String, u32)>) -> Self {
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
    pub(super) fn finish(&mut self, n: usize) -> Option<(String, u32)> {
        if n >= self.tasks.len() || self.finished[n] {
            return None;
        }
        self.finished[n] = true;
        self.unfinished -= 1;
        Some(self.tasks[n].clone())
    }

    pub(super) fn load(&self) -> ArrayLoad {
        ArrayLoad {
            throttle: self.parallelism,
            remaining: self.unfinished as u32,
        }
    }
}

/// A batch whose step has no free share of `max_running` yet: its manifest is written,
/// its Job is created once capacity frees.
#[derive(Debug)]
pub(super) struct HeldBatch {
    pub(super) batch: Batch,
    pub(super) hash: String,
    pub(super) manifest: PathBuf,
}

impl KubernetesExecutor {
    /// Create the Job, or adopt the one with the same name and manifest. Returns the
    /// parallelism of the Job that exists now.
    pub(super) fn create_or_adopt(
        &self,
        job: Job,
        manifest_hash: &str,
    ) -> Result<u32, ExecutorError> {
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
    pub(super) fn share_for(&self, batch: &Batch) -> Option<u32> {
        let len = batch.tasks.len() as u32;
        let loads = self.loads(&batch.step);
        match throttle_for_new_array(self.caps.get(&batch.step).copied(), &loads, len) {
            ThrottleDecision::Submit(share) => Some(share.unwrap_or(len).min(len).max(1)),
            ThrottleDecision::Wait => None,
        }
    }

    /// The step's live Jobs, oldest first: (name, load).
    pub(super) fn live_jobs(&self, step: &str) -> Vec<(String, ArrayLoad)> {
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

    pub(super) fn loads(&self, step: &str) -> Vec<ArrayLoad> {
        self.live_jobs(step).into_iter().map(|(_, l)| l).collect()
    }

    /// Render and create (or adopt) the Job of a batch with this parallelism, and track it.
    pub(super) fn create(
        &mut self,
        held: &HeldBatch,
        parallelism: u32,
    ) -> Result<(), ExecutorError> {
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
    pub(super) fn share_capacity(&mut self) {
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
    pub(super) fn report_unsubmitted(&mut self, batch: &Batch, class: ErrorClass, message: &str) {
        let t = now();
        for task in &batch.tasks {
            self.queued.push(ExecutorEvent::Finished {
                task_id: task.task_id.clone(),
                attempt: task.attempt,
                outcome: AttemptOutcome::ended_without_exit(class, message, t),
            });
        }
    }

    pub(super) fn delete_jobs(&self, names: &[String]) -> Result<(), ExecutorError> {
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
    pub(super) fn campaign_jobs(&self) -> Result<Vec<Job>, ExecutorError> {
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
}

pub(super) fn parallelism_of(job: &Job) -> u32 {
    job.spec
        .as_ref()
        .and_then(|s| s.parallelism)
        .map_or(1, |p| p.max(0) as u32)
}

/// Completion indexes in Kubernetes' interval form (`"0-3,5"`).
pub(super) fn parse_indexes(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            out.extend(a..=b.min(a + 1_000_000));
        }
    }
    out
}

pub(super) fn annotation<'a>(job: &'a Job, key: &str) -> Option<&'a str> {
    job.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}
