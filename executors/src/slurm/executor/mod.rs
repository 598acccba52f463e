//! [`SlurmExecutor`]: the I/O edge of the Slurm backend. It writes scripts and manifests,
//! calls sbatch/squeue/scontrol/sacct/scancel through one rate-limited [`SlurmCli`], and
//! turns what it sees into [`ExecutorEvent`]s. All decisions are taken by the pure modules
//! next to it.
//!
//! Files of a batch live in `<logs_dir>/<step>/<batch_key>/`: `job-<hash>.sbatch`,
//! `manifest-<hash>.jsonl`, `submission-<hash>.json` (intent, then job id) and Slurm's own
//! `slurm-%A_%a.out/.err`, where `<hash>` names the manifest's content.
//!
//! The executor is one type whose methods sit with their concern: `submission` (arrays,
//! manifests, the window and throttles, sbatch, `flow plan`'s preview), `polling` (squeue,
//! the end of each element from its result file or Slurm's records, throttle rebalancing),
//! `adoption` (jobs of this campaign found in the queue or named by the state database),
//! `arrays` (what is tracked per array and element); this file holds the type and the
//! [`Executor`] implementation.

use super::script::DEFAULT_TEMPLATE;
use super::slurm_cli::{CommandOutput, SlurmCli, SlurmCommandError, TransientRetry};
use crate::launch::{Batch, ExecutorEvent, JobRef};
use crate::rate_limit::RateLimiter;
use crate::{Executor, ExecutorError};
use flow_dsl::error_class::ErrorClass;
use flow_dsl::machine_settings::slurm::SlurmSettings;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod adoption;
mod arrays;
mod polling;
mod submission;

use arrays::{PreparedArray, TrackedArray};
use polling::JobcompReader;
pub use submission::is_submit_limit;

const BACKEND: &str = "slurm";

/// Where a campaign's Slurm files go and which flow binary the jobs run.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmPaths {
    /// The campaign's `logs/` directory; each batch gets `<logs_dir>/<step>/<batch_key>/`.
    /// It must be on a file system the compute nodes see.
    pub logs_dir: PathBuf,
    /// The program each array element runs as
    /// `<flow_binary> task run-manifest <manifest> <array index>`.
    pub flow_binary: PathBuf,
}

/// One array as `flow plan` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayPreview {
    /// The array's batch key (`<batch_key>.NNN` when the batch is split).
    pub batch_key: String,
    /// Which of the batch's tasks it runs (array index = position - start).
    pub tasks: std::ops::Range<usize>,
    pub throttle: Option<u32>,
    pub script_path: PathBuf,
    pub manifest_path: PathBuf,
    /// The exact batch script.
    pub script: String,
}

/// Runs task attempts as Slurm job arrays. See the module documentation for the layout of
/// its files and `shared/notes/slurm.md` for the cluster it was tested on.
///
/// Failure modes: a Slurm command that cannot be started or keeps failing transiently is an
/// [`ExecutorError::Backend`]; sbatch refusing a job is [`ExecutorError::SubmitRejected`]
/// with Slurm's message; file system errors are [`ExecutorError::Io`] naming the path.
/// Task failures are never errors: they arrive as `Finished` events with an error class.
pub struct SlurmExecutor {
    campaign: String,
    config: SlurmSettings,
    paths: SlurmPaths,
    template: String,
    cli: SlurmCli,
    arrays: Vec<TrackedArray>,
    waiting: VecDeque<PreparedArray>,
    events: Vec<ExecutorEvent>,
    next_cycle: Instant,
    /// Whether sacct answers (decided on first use in `AccountingSource::Auto`).
    sacct_works: Option<bool>,
    jobcomp: JobcompReader,
    /// sbatch's last "submit limit reached" message, while arrays wait because of it.
    submit_limit: Option<String>,
    /// The window Slurm accepted: elements this executor had in the queue when sbatch
    /// refused for a per-user/QOS submit limit. Arrays wait until they fit under it (and
    /// `max_submitted`), so sbatch is not refused again and again.
    learned_window: Option<u64>,
    /// Whether the submit-limit notice was sent (once per executor).
    limit_notice_sent: bool,
}

fn path_component(text: &str) -> String {
    let cleaned = crate::safe_name::safe_chars(text);
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

fn backend(message: impl Into<String>) -> ExecutorError {
    ExecutorError::Backend {
        backend: BACKEND.to_string(),
        message: message.into(),
    }
}

fn cli_error(error: SlurmCommandError) -> ExecutorError {
    backend(error.to_string())
}

fn failed(command: &str, output: &CommandOutput) -> ExecutorError {
    backend(format!(
        "`{command}` failed (exit {}): {}",
        output
            .code
            .map_or_else(|| "by signal".to_string(), |c| c.to_string()),
        output.stderr.trim()
    ))
}

impl SlurmExecutor {
    /// An executor for `campaign` (the tag put on every job; jobs of other campaigns are
    /// never touched). Reads the machine's template override when configured.
    pub fn new(
        campaign: impl Into<String>,
        config: SlurmSettings,
        paths: SlurmPaths,
    ) -> Result<Self, ExecutorError> {
        let template = match &config.template {
            Some(path) => flow_dsl::user_file::read_text(path).map_err(|e| {
                ExecutorError::io(format!("reading sbatch template {}", path.display()), e)
            })?,
            None => DEFAULT_TEMPLATE.to_string(),
        };
        let limiter = RateLimiter::new(config.submit_rate, config.burst);
        let retry = TransientRetry {
            attempts: config.transient_attempts.max(1),
            ..TransientRetry::default()
        };
        let cli = SlurmCli::new(limiter, retry, config.bin_dir.clone());
        Ok(SlurmExecutor {
            campaign: campaign.into(),
            config,
            paths,
            template,
            cli,
            arrays: Vec::new(),
            waiting: VecDeque::new(),
            events: Vec::new(),
            next_cycle: Instant::now(),
            sacct_works: None,
            jobcomp: JobcompReader::default(),
            submit_limit: None,
            learned_window: None,
            limit_notice_sent: false,
        })
    }

    /// Calls made to each Slurm command so far (`{"sbatch": 40, "squeue": 12, ...}`).
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.cli.call_counts()
    }

    /// Jobs currently tracked (submitted or adopted, not yet fully reported).
    pub fn tracked_jobs(&self) -> Vec<JobRef> {
        self.arrays.iter().map(|a| a.job.clone()).collect()
    }

    /// Slurm's message when arrays wait because the site's cap on queued jobs was hit
    /// (`max_submitted` is set higher than the site allows); `None` otherwise.
    pub fn submit_limit_message(&self) -> Option<&str> {
        self.submit_limit.as_deref()
    }

    /// The submission window learned from a submit-limit refusal (elements in the queue
    /// when sbatch refused), when it is below `max_submitted`.
    pub fn learned_window(&self) -> Option<u64> {
        self.learned_window
    }

    /// Number of arrays waiting for room under `max_submitted` or the step's cap.
    pub fn waiting_arrays(&self) -> usize {
        self.waiting.len()
    }

    fn batch_dir(&self, step: &str, batch_key: &str) -> PathBuf {
        self.paths
            .logs_dir
            .join(path_component(step))
            .join(path_component(batch_key))
    }

    /// Slurm's own stdout and stderr files of a job (array element `index`, or the plain
    /// job when `None`), for `flow logs`. The task's own logs are its `stdout_path` and
    /// `stderr_path`; these hold what happened around it (module loads, Slurm's messages).
    pub fn slurm_log_paths(&self, job: &JobRef, index: Option<u32>) -> (PathBuf, PathBuf) {
        let dir = self.batch_dir(&job.step, &job.batch_key);
        let stem = match index {
            Some(i) => format!("slurm-{}_{i}", job.job_id),
            None => format!("slurm-{}", job.job_id),
        };
        (
            dir.join(format!("{stem}.out")),
            dir.join(format!("{stem}.err")),
        )
    }

    /// Elements flow has in the queue now (unfinished elements of tracked arrays).
    fn in_queue(&self) -> u64 {
        self.arrays.iter().map(|a| u64::from(a.remaining())).sum()
    }
}

impl Executor for SlurmExecutor {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities::of(flow_dsl::model::ExecutorKind::Slurm)
    }

    /// Writes each array's manifest, then submits as many arrays as the window and the
    /// step's cap allow; the others are submitted by later `poll`s as the queue drains.
    /// Returns the jobs created now. A batch larger than the array size becomes several
    /// arrays keyed `<batch_key>.000`, `.001`, ... Submitting the same tasks again (same
    /// batch key and manifest) adopts the earlier job instead of calling sbatch.
    ///
    /// Errors: `SubmitRejected` with Slurm's message when sbatch refuses an array of this
    /// batch (or its script cannot be written safely); `Backend`/`Io` when Slurm or the file
    /// system fails. Either way none of the batch stays waiting; arrays of it that were
    /// already submitted are reported by `poll` and adopted on the next submit.
    fn submit(&mut self, batch: Batch) -> Result<Vec<JobRef>, ExecutorError> {
        if batch.tasks.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = self.prepare(&batch)?;
        let keys: HashSet<String> = prepared.iter().map(|p| p.tag.batch_key.clone()).collect();
        self.waiting.extend(prepared);
        let round = self.submit_waiting();
        let ours = |w: &PreparedArray| w.tag.step == batch.step && keys.contains(&w.tag.batch_key);
        let mut error_for_caller = None;
        for (array, error) in round.rejected {
            if ours(&array) {
                error_for_caller.get_or_insert(error);
            } else {
                let message = error.to_string();
                self.report_unsubmitted(&array, ErrorClass::SubmitRejected, &message);
            }
        }
        if let Some(failure) = round.failure {
            error_for_caller.get_or_insert(failure);
        }
        if let Some(error) = error_for_caller {
            // The caller hears about this batch through the error, so none of it stays
            // waiting; arrays of it already submitted are adopted (not resubmitted) when the
            // caller submits the batch again.
            self.waiting.retain(|w| !ours(w));
            return Err(error);
        }
        Ok(round
            .created
            .into_iter()
            .filter(|j| j.step == batch.step && keys.contains(&j.batch_key))
            .collect())
    }

    /// Runs at most one polling cycle per `poll_interval` (sleeping up to `max_wait` for
    /// it) and returns the events gathered. Cost per cycle: one squeue, plus one sacct for
    /// the arrays with elements that left the queue (their final states and usage), or
    /// without accounting one scontrol per array with elements that left the queue without
    /// a result. A `Notice` comes once when sbatch refuses for a per-user/QOS submit limit.
    fn poll(&mut self, max_wait: Duration) -> Result<Vec<ExecutorEvent>, ExecutorError> {
        if self.events.is_empty() {
            let now = Instant::now();
            if self.next_cycle > now {
                let wait = (self.next_cycle - now).min(max_wait);
                std::thread::sleep(wait);
            }
            if Instant::now() >= self.next_cycle {
                self.next_cycle = Instant::now() + self.config.poll_interval;
                self.cycle()?;
            }
        }
        Ok(std::mem::take(&mut self.events))
    }

    /// This campaign's jobs in the queue (found by their comment tag). Each is adopted:
    /// tracked from its manifest and reported by later polls, never submitted again.
    fn list_jobs(&mut self) -> Result<Vec<JobRef>, ExecutorError> {
        let mut jobs = Vec::new();
        for (job_id, tag, throttle) in self.queued_campaign_jobs()? {
            if !self.arrays.iter().any(|a| a.job.job_id == job_id) {
                self.adopt(&job_id, &tag, throttle, None)?;
            }
            jobs.push(JobRef {
                job_id,
                step: tag.step,
                batch_key: tag.batch_key,
            });
        }
        Ok(jobs)
    }

    /// scancel the given jobs (array ids, or `<id>_<index>` elements), or all of this
    /// campaign's jobs when `jobs` is empty, which also drops waiting arrays (their tasks
    /// are reported cancelled). Cancelled elements are reported by later polls.
    fn cancel(&mut self, jobs: &[JobRef]) -> Result<(), ExecutorError> {
        let mut ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
        if jobs.is_empty() {
            let waiting: Vec<PreparedArray> = self.waiting.drain(..).collect();
            for array in &waiting {
                self.report_unsubmitted(
                    array,
                    ErrorClass::Cancelled,
                    "cancelled before submission",
                );
            }
            ids = self.arrays.iter().map(|a| a.job.job_id.clone()).collect();
            for (job_id, _, _) in self.queued_campaign_jobs()? {
                if !ids.contains(&job_id) {
                    ids.push(job_id);
                }
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let output = self.cli.run("scancel", &ids).map_err(cli_error)?;
        let harmless = output.stderr.lines().all(|l| {
            l.contains("Invalid job id") || l.contains("already completed") || l.trim().is_empty()
        });
        if !output.success && !harmless {
            return Err(failed("scancel", &output));
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.in_queue() as usize + self.waiting.iter().map(|w| w.tasks.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::{Resources, TaskLaunch};
    use std::path::Path;

    fn task(i: usize) -> TaskLaunch {
        TaskLaunch {
            task_id: format!("t{i}"),
            attempt: 1,
            argv: vec!["true".into()],
            env: Vec::new(),
            workdir: PathBuf::from("/w"),
            stdout_path: PathBuf::from("/w/o"),
            stderr_path: PathBuf::from("/w/e"),
            result_path: PathBuf::from(format!("/w/r{i}.json")),
            writes_result: false,
            status_by_trap: false,
            timeout: None,
        }
    }

    #[test]
    fn submit_limits_are_recognised() {
        assert!(is_submit_limit(
            "Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)"
        ));
        assert!(!is_submit_limit(
            "Batch job submission failed: Invalid partition name specified"
        ));
    }

    #[test]
    fn preview_splits_batches_and_renders_scripts_without_io() {
        let config = SlurmSettings {
            max_array_size: 1000,
            ..SlurmSettings::default()
        };
        let paths = SlurmPaths {
            logs_dir: PathBuf::from("/nonexistent/campaign/logs"),
            flow_binary: PathBuf::from("/opt/flow/bin/flow"),
        };
        let executor = SlurmExecutor::new("v1.0_mocks", config, paths).expect("executor");
        let batch = Batch {
            campaign: "v1.0_mocks".into(),
            step: "mocks".into(),
            batch_key: "mocks-b0000".into(),
            resources: Resources::default(),
            max_running: Some(200),
            tasks: (0..2500).map(task).collect(),
        };
        let previews = executor.preview(&batch).expect("preview");
        assert_eq!(previews.len(), 3);
        assert_eq!(previews[2].tasks, 2000..2500);
        assert_eq!(previews[0].batch_key, "mocks-b0000.000");
        assert!(previews[0].script.contains("#SBATCH --array=0-999%200\n"));
        assert!(previews[2].script.contains("#SBATCH --array=0-499%200\n"));
        assert!(previews[1]
            .manifest_path
            .starts_with("/nonexistent/campaign/logs/mocks/mocks-b0000.001"));
        assert!(!Path::new("/nonexistent").exists());
        let job = JobRef {
            job_id: "77".into(),
            step: "mocks".into(),
            batch_key: "mocks-b0000.001".into(),
        };
        let (out, err) = executor.slurm_log_paths(&job, Some(5));
        assert_eq!(
            out,
            PathBuf::from("/nonexistent/campaign/logs/mocks/mocks-b0000.001/slurm-77_5.out")
        );
        assert!(err.ends_with("slurm-77_5.err"));
    }

    #[test]
    fn path_components_are_safe() {
        assert_eq!(path_component("mocks-b0001"), "mocks-b0001");
        assert_eq!(path_component("a/b c"), "a_b_c");
        assert_eq!(path_component(".."), "_..");
        assert_eq!(path_component(""), "_");
    }
}
