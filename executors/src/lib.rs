//! Executors: where task attempts run.
//!
//! Every backend implements [`Executor`]: submit a batch of task launches (an array when the
//! backend has them), observe what happened (`poll`), list this campaign's jobs so a
//! restarted driver can adopt them, cancel, and say where an attempt's logs are. What a
//! backend offers beyond that, the CLI asks [`Capabilities`] instead of comparing names.
//!
//! # Blocking
//!
//! The trait is synchronous. No call waits for a task to run: `poll` waits at most the
//! `max_wait` it is given for news. The other calls may block on the backend's own I/O,
//! each call to the backend paced by its rate limiter and a transient failure retried with
//! backoff:
//!
//! - `local`: `submit` only queues the attempts for the worker threads and returns at once;
//!   `cancel` signals process groups.
//! - `slurm`: `submit` writes the batch's manifests and runs `sbatch` for each of its arrays
//!   that fits the `max_submitted` window now (the others are submitted by later `poll`s):
//!   each call waits for a token of `submit_rate` and is retried up to `transient_attempts`
//!   times (backoff from 0.5 s, at most 30 s) while slurmctld answers with a transient
//!   error. `poll` runs at most one cycle of squeue (and sacct or scontrol) per
//!   `poll_interval`, sleeping at most `max_wait` until it is due; `list_jobs` and `cancel`
//!   run squeue and scancel the same way.
//! - `kubernetes`: `submit` writes the manifest to the campaign volume and creates the Job
//!   (when its step's `max_running` has room) through the API: each request waits for the
//!   client's rate limiter (`api_requests_per_second`) and is retried up to 6 times (backoff
//!   from 0.25 s, at most 8 s) on 429, 5xx or a failed connection. `poll` reads the pod
//!   watch, which runs on the executor's own runtime, for at most `max_wait`, then makes
//!   the API calls that freed capacity asks for (creating held Jobs, raising parallelism).
//!   Connecting reads the server's version once.
//!
//! Backends keep their own threads or runtimes inside; the driver (engine::scheduler)
//! stays a plain loop that owns the state database.

pub mod batching;
pub mod capabilities;
pub mod escalation;
pub mod kubernetes;
pub mod launch;
pub mod local;
pub mod manifest;
pub mod process_group;
pub mod rate_limit;
pub mod result_document;
pub mod safe_name;
pub mod slurm;
pub mod task_runner;
pub mod timeout;

pub use capabilities::Capabilities;
pub use launch::{
    AttemptOutcome, Batch, ExecutorEvent, JobRef, ResourceUsage, Resources, TaskLaunch,
};

use std::time::Duration;

/// Failure of the executor itself (not of a task): a scheduler that cannot be reached,
/// a submission that was refused, an I/O error writing scripts.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("{backend}: submission rejected: {message}")]
    SubmitRejected { backend: String, message: String },
    #[error("{backend}: {message}")]
    Backend { backend: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ExecutorError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ExecutorError::Io {
            context: context.into(),
            source,
        }
    }
}

/// What [`Executor::attempt_logs`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptLogs {
    /// What the sources are (`pod`).
    pub source_kind: String,
    /// (source, text), e.g. a pod's name and its log.
    pub logs: Vec<(String, String)>,
    /// Said when the backend has logs of such attempts in general but none is left of this
    /// one (a deleted pod).
    pub none_left: Option<String>,
}

/// What [`Executor::cancel_all`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelledJobs {
    /// Backend jobs stopped (Slurm jobs or arrays, Kubernetes Jobs).
    pub jobs: usize,
    /// They were deleted (Kubernetes: a Job and its pods are removed), not only cancelled.
    pub deleted: bool,
}

/// A backend that runs task attempts. See the module documentation for what each call may
/// block on.
pub trait Executor: Send {
    /// Short name (`local`, `slurm`, `kubernetes`) recorded with every attempt.
    fn name(&self) -> &'static str;

    /// What this backend offers beyond the common calls.
    fn capabilities(&self) -> Capabilities;

    /// Hand a batch of attempts to the backend. Returns one [`JobRef`] per backend job
    /// created (one for a whole Slurm array, one per task locally). Never waits for a task
    /// to run; blocks only on the backend's submission calls (module documentation).
    fn submit(&mut self, batch: Batch) -> Result<Vec<JobRef>, ExecutorError>;

    /// Wait up to `max_wait` for news and return every event observed since the last call.
    /// An empty vector means nothing happened.
    fn poll(&mut self, max_wait: Duration) -> Result<Vec<ExecutorEvent>, ExecutorError>;

    /// Jobs of this campaign that the backend still knows about (queued or running), so a
    /// restarted driver adopts them instead of submitting the same work again.
    fn list_jobs(&mut self) -> Result<Vec<JobRef>, ExecutorError>;

    /// Cancel the given jobs (all of this campaign's when `jobs` is empty).
    fn cancel(&mut self, jobs: &[JobRef]) -> Result<(), ExecutorError>;

    /// What the backend itself logged around one attempt, by source (Kubernetes: each pod
    /// of the attempt's Job index, `job_id` being `JOB_INDEX`), for `flow logs`; a
    /// message when nothing is left. By default the task's own log files say it all:
    /// nothing more.
    fn attempt_logs(&self, job_id: &str) -> Result<AttemptLogs, ExecutorError> {
        let _ = job_id;
        Ok(AttemptLogs::default())
    }

    /// Stop everything the backend holds for this campaign, whether or not this executor
    /// submitted it (`flow cancel` when no driver runs). By default: list the campaign's
    /// jobs and cancel them all.
    fn cancel_all(&mut self) -> Result<CancelledJobs, ExecutorError> {
        let jobs = self.list_jobs()?.len();
        self.cancel(&[])?;
        Ok(CancelledJobs {
            jobs,
            deleted: false,
        })
    }

    /// Number of attempts currently submitted and not yet reported finished.
    fn in_flight(&self) -> usize;
}
