//! What the executor tracks: arrays prepared for sbatch (their manifest written), arrays
//! in the queue with one [`Element`] per task, and how an element's end becomes events.

use crate::launch::{AttemptOutcome, ExecutorEvent, JobRef, Resources, TaskLaunch};
use crate::slurm::job_tag::JobTag;
use crate::task_runner::now as now_unix;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// An array ready to go to sbatch, waiting for room in the window or in the step's cap.
#[derive(Debug, Clone)]
pub(super) struct PreparedArray {
    pub(super) tag: JobTag,
    pub(super) resources: Resources,
    pub(super) max_running: Option<u32>,
    pub(super) tasks: Vec<TaskLaunch>,
    pub(super) batch_dir: PathBuf,
}

impl PreparedArray {
    pub(super) fn manifest_path(&self) -> PathBuf {
        self.batch_dir
            .join(format!("manifest-{}.jsonl", self.tag.manifest_hash))
    }
    pub(super) fn script_path(&self) -> PathBuf {
        self.batch_dir
            .join(format!("job-{}.sbatch", self.tag.manifest_hash))
    }
    pub(super) fn record_path(&self) -> PathBuf {
        record_path(&self.batch_dir, &self.tag.manifest_hash)
    }
}

pub(super) fn record_path(batch_dir: &Path, hash: &str) -> PathBuf {
    batch_dir.join(format!("submission-{hash}.json"))
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ElementStatus {
    /// In the queue (pending or running).
    Queued,
    /// No longer in the queue since the given instant; its outcome is being established.
    Left(Instant),
    /// Reported finished.
    Done,
}

#[derive(Debug, Clone)]
pub(super) struct Element {
    pub(super) task_id: String,
    pub(super) attempt: u32,
    pub(super) result_path: PathBuf,
    pub(super) status: ElementStatus,
    pub(super) started: bool,
}

#[derive(Debug, Clone)]
pub(super) struct TrackedArray {
    pub(super) job: JobRef,
    pub(super) is_array: bool,
    pub(super) max_running: Option<u32>,
    pub(super) throttle: Option<u32>,
    pub(super) submitted_at: f64,
    pub(super) elements: Vec<Element>,
}

impl TrackedArray {
    pub(super) fn new(
        job_id: String,
        prepared: &PreparedArray,
        throttle: Option<u32>,
        at: f64,
    ) -> Self {
        TrackedArray {
            job: JobRef {
                job_id,
                step: prepared.tag.step.clone(),
                batch_key: prepared.tag.batch_key.clone(),
            },
            is_array: prepared.tasks.len() > 1,
            max_running: prepared.max_running,
            throttle,
            submitted_at: at,
            elements: prepared
                .tasks
                .iter()
                .map(|t| Element {
                    task_id: t.task_id.clone(),
                    attempt: t.attempt,
                    result_path: t.result_path.clone(),
                    status: ElementStatus::Queued,
                    started: false,
                })
                .collect(),
        }
    }

    pub(super) fn remaining(&self) -> u32 {
        self.elements
            .iter()
            .filter(|e| e.status != ElementStatus::Done)
            .count() as u32
    }

    pub(super) fn element_job_id(&self, index: usize) -> String {
        if self.is_array {
            format!("{}_{index}", self.job.job_id)
        } else {
            self.job.job_id.clone()
        }
    }
}

pub(super) fn finish(
    events: &mut Vec<ExecutorEvent>,
    is_array: bool,
    job_id: &str,
    index: usize,
    element: &mut Element,
    outcome: AttemptOutcome,
) {
    if !element.started && outcome.started_at.is_some() {
        element.started = true;
        events.push(ExecutorEvent::Started {
            task_id: element.task_id.clone(),
            attempt: element.attempt,
            job_id: if is_array {
                format!("{job_id}_{index}")
            } else {
                job_id.to_string()
            },
            pid: None,
            at: outcome.started_at.unwrap_or_else(now_unix),
        });
    }
    element.status = ElementStatus::Done;
    events.push(ExecutorEvent::Finished {
        task_id: element.task_id.clone(),
        attempt: element.attempt,
        outcome,
    });
}
