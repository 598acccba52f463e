//! [`SlurmExecutor`]: the I/O edge of the Slurm backend. It writes scripts and manifests,
//! calls sbatch/squeue/scontrol/sacct/scancel through one rate-limited [`SlurmCli`], and
//! turns what it sees into [`ExecutorEvent`]s. All decisions are taken by the pure modules
//! next to it.
//!
//! Files of a batch live in `<logs_dir>/<step>/<batch_key>/`: `job-<hash>.sbatch`,
//! `manifest-<hash>.jsonl`, `submission-<hash>.json` (intent, then job id) and Slurm's own
//! `slurm-%A_%a.out/.err`, where `<hash>` names the manifest's content.

use super::job_records::{
    parse_jobcomp, parse_sacct, parse_scontrol_jobs, ElementRecord, SACCT_FORMAT,
};
use super::job_state::{classify_end, SlurmJobState};
use super::job_tag::JobTag;
use super::sacct_usage::merge_usage;
use super::script::{render_script, ScriptRequest, DEFAULT_TEMPLATE};
use super::slurm_cli::{CommandOutput, SlurmCli, SlurmCommandError, TransientRetry};
use super::squeue_output::{parse_squeue, pending_reason_is_permanent, SqueueRow, SQUEUE_FORMAT};
use super::submission_record::{parse_sbatch_job_id, SubmissionRecord};
use crate::batching::{
    array_size, fits_window, rebalance_throttles, split_into_arrays, throttle_for_new_array,
    ArrayLoad, ThrottleDecision,
};
use crate::launch::{AttemptOutcome, Batch, ExecutorEvent, JobRef, Resources, TaskLaunch};
use crate::manifest::{manifest_hash, manifest_text, parse_manifest, write_atomically};
use crate::rate_limit::RateLimiter;
use crate::result_document::read_result;
use crate::task_runner::now as now_unix;
use crate::{Executor, ExecutorError};
use flow_dsl::error_class::ErrorClass;
use flow_dsl::machine_settings::slurm::{AccountingSource, SlurmSettings};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// An array ready to go to sbatch, waiting for room in the window or in the step's cap.
#[derive(Debug, Clone)]
struct PreparedArray {
    tag: JobTag,
    resources: Resources,
    max_running: Option<u32>,
    tasks: Vec<TaskLaunch>,
    batch_dir: PathBuf,
}

impl PreparedArray {
    fn manifest_path(&self) -> PathBuf {
        self.batch_dir
            .join(format!("manifest-{}.jsonl", self.tag.manifest_hash))
    }
    fn script_path(&self) -> PathBuf {
        self.batch_dir
            .join(format!("job-{}.sbatch", self.tag.manifest_hash))
    }
    fn record_path(&self) -> PathBuf {
        record_path(&self.batch_dir, &self.tag.manifest_hash)
    }
}

fn record_path(batch_dir: &Path, hash: &str) -> PathBuf {
    batch_dir.join(format!("submission-{hash}.json"))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ElementStatus {
    /// In the queue (pending or running).
    Queued,
    /// No longer in the queue since the given instant; its outcome is being established.
    Left(Instant),
    /// Reported finished.
    Done,
}

#[derive(Debug, Clone)]
struct Element {
    task_id: String,
    attempt: u32,
    result_path: PathBuf,
    status: ElementStatus,
    started: bool,
}

#[derive(Debug, Clone)]
struct TrackedArray {
    job: JobRef,
    is_array: bool,
    max_running: Option<u32>,
    throttle: Option<u32>,
    submitted_at: f64,
    elements: Vec<Element>,
}

impl TrackedArray {
    fn new(job_id: String, prepared: &PreparedArray, throttle: Option<u32>, at: f64) -> Self {
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

    fn remaining(&self) -> u32 {
        self.elements
            .iter()
            .filter(|e| e.status != ElementStatus::Done)
            .count() as u32
    }

    fn element_job_id(&self, index: usize) -> String {
        if self.is_array {
            format!("{}_{index}", self.job.job_id)
        } else {
            self.job.job_id.clone()
        }
    }
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

/// What one round of submissions did.
#[derive(Debug, Default)]
struct SubmitRound {
    created: Vec<JobRef>,
    rejected: Vec<(PreparedArray, ExecutorError)>,
    failure: Option<ExecutorError>,
}

/// What sbatch did with one array.
#[derive(Debug)]
enum Submission {
    Created(JobRef),
    /// Refused for now: the user has as many jobs queued as the site allows.
    AtSubmitLimit(String),
}

/// Whether sbatch's refusal is the site's cap on queued jobs (MaxSubmitJobs), which clears
/// as jobs finish, rather than a problem with the job itself.
pub fn is_submit_limit(message: &str) -> bool {
    [
        "job submit limit",
        "MaxSubmitJob",
        "MaxSubmitJobsPerUser",
        "QOSMaxSubmitJobPerUserLimit",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// The jobcomp/filetxt completion file, read incrementally (development clusters without
/// accounting; real clusters answer through sacct).
#[derive(Debug, Default)]
struct JobcompReader {
    /// `None` until asked; `Some(None)` when the cluster has no readable filetxt jobcomp.
    location: Option<Option<PathBuf>>,
    offset: u64,
    records: HashMap<(String, Option<u32>), ElementRecord>,
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
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
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

    /// The window in force: `max_submitted` and the learned one, whichever is smaller.
    fn window(&self) -> Option<u64> {
        match (
            self.config.max_submitted.map(u64::from),
            self.learned_window,
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// sbatch refused for a per-user/QOS submit limit with `in_queue` of this executor's
    /// elements queued: shrink the window to what Slurm accepted and, the first time, tell
    /// the engine which limit, how the window changed and which `max_submitted` avoids it.
    fn absorb_submit_limit(&mut self, message: &str, array_len: usize) {
        let in_queue = self.in_queue();
        let before = self.window();
        if in_queue > 0 {
            self.learned_window = Some(self.learned_window.map_or(in_queue, |w| w.min(in_queue)));
        }
        if self.limit_notice_sent {
            return;
        }
        self.limit_notice_sent = true;
        let before = before.map_or_else(|| "unlimited".to_string(), |w| w.to_string());
        let text = match self.learned_window {
            Some(window) => format!(
                "Slurm refused a submission: \"{message}\". flow holds the remaining arrays back and submits them as jobs drain, its submission window shrunk from {before} to {window} queued elements; set `max_submitted: {window}` (or lower) in the machine's slurm: block to avoid the refusals"
            ),
            None => format!(
                "Slurm refused a submission: \"{message}\" with none of this campaign's jobs queued (other jobs of yours count against the limit, or one array of {array_len} elements exceeds it). flow holds the array back and retries each polling cycle; lower `max_array_size` (and set `max_submitted`) in the machine's slurm: block if it never goes through"
            ),
        };
        self.events.push(ExecutorEvent::Notice {
            kind: "submit-limit".into(),
            message: text,
        });
    }

    /// Number of arrays waiting for room under `max_submitted` or the step's cap.
    pub fn waiting_arrays(&self) -> usize {
        self.waiting.len()
    }

    /// Start tracking a job this campaign submitted earlier (its id known from the state
    /// database), even if it has left the queue: its elements are then reported from their
    /// result files or Slurm's records. Fails when the job's submission record or manifest
    /// is not found under `<logs_dir>/<step>/<batch_key>/`.
    pub fn track(&mut self, job: &JobRef) -> Result<(), ExecutorError> {
        if self.arrays.iter().any(|a| a.job.job_id == job.job_id) {
            return Ok(());
        }
        let batch_dir = self.batch_dir(&job.step, &job.batch_key);
        let entries = std::fs::read_dir(&batch_dir)
            .map_err(|e| ExecutorError::io(format!("reading {}", batch_dir.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(hash) = name
                .strip_prefix("submission-")
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let Some(record) = read_record(&entry.path())? else {
                continue;
            };
            if record.job_id.as_deref() == Some(job.job_id.as_str()) {
                let tag = JobTag {
                    campaign: self.campaign.clone(),
                    step: job.step.clone(),
                    batch_key: job.batch_key.clone(),
                    manifest_hash: hash.to_string(),
                };
                return self.adopt(&job.job_id, &tag, record.throttle, record.submitted_at);
            }
        }
        Err(backend(format!(
            "no submission record of job {} in {}",
            job.job_id,
            batch_dir.display()
        )))
    }

    fn batch_dir(&self, step: &str, batch_key: &str) -> PathBuf {
        self.paths
            .logs_dir
            .join(path_component(step))
            .join(path_component(batch_key))
    }

    /// Split `batch` into arrays with their manifest texts (no I/O).
    fn plan(&self, batch: &Batch) -> Result<Vec<(PreparedArray, String)>, ExecutorError> {
        let size = array_size(None, self.config.max_array_size, self.config.max_submitted);
        let ranges = split_into_arrays(batch.tasks.len(), size);
        let single = ranges.len() == 1;
        let mut planned = Vec::with_capacity(ranges.len());
        for (i, range) in ranges.into_iter().enumerate() {
            let batch_key = if single {
                batch.batch_key.clone()
            } else {
                format!("{}.{i:03}", batch.batch_key)
            };
            let tasks = batch.tasks[range].to_vec();
            let text = manifest_text(&tasks)
                .map_err(|e| backend(format!("serialising the manifest of {batch_key}: {e}")))?;
            let tag = JobTag {
                campaign: self.campaign.clone(),
                step: batch.step.clone(),
                batch_key: batch_key.clone(),
                manifest_hash: manifest_hash(&text),
            };
            let array = PreparedArray {
                batch_dir: self.batch_dir(&batch.step, &batch_key),
                tag,
                resources: batch.resources.clone(),
                max_running: batch.max_running,
                tasks,
            };
            planned.push((array, text));
        }
        Ok(planned)
    }

    /// Write the manifest of each array of `batch`; the arrays are then ready for sbatch.
    fn prepare(&self, batch: &Batch) -> Result<Vec<PreparedArray>, ExecutorError> {
        let mut prepared = Vec::new();
        for (array, text) in self.plan(batch)? {
            std::fs::create_dir_all(&array.batch_dir).map_err(|e| {
                ExecutorError::io(format!("creating {}", array.batch_dir.display()), e)
            })?;
            let manifest = array.manifest_path();
            let unchanged = std::fs::read_to_string(&manifest).is_ok_and(|t| t == text);
            if !unchanged {
                write_atomically(&manifest, text.as_bytes()).map_err(|e| {
                    ExecutorError::io(format!("writing manifest {}", manifest.display()), e)
                })?;
            }
            prepared.push(array);
        }
        Ok(prepared)
    }

    /// What `submit(batch)` would do, without doing it (for `flow plan`): one entry per
    /// array with the exact script, as if no other array of the step were queued. Touches
    /// neither Slurm nor the file system. Errors: `SubmitRejected` when a value cannot be
    /// written into the script safely.
    pub fn preview(&self, batch: &Batch) -> Result<Vec<ArrayPreview>, ExecutorError> {
        let mut previews = Vec::new();
        let mut first_task = 0;
        for (array, _) in self.plan(batch)? {
            let len = array.tasks.len();
            let throttle = match throttle_for_new_array(array.max_running, &[], len as u32) {
                ThrottleDecision::Submit(t) if len > 1 => t,
                _ => None,
            };
            let manifest_path = array.manifest_path();
            let request = ScriptRequest {
                tag: &array.tag,
                resources: &array.resources,
                config: &self.config,
                task_count: len,
                throttle,
                batch_dir: &array.batch_dir,
                manifest: &manifest_path,
                flow_binary: &self.paths.flow_binary,
            };
            let script = render_script(&self.template, &request).map_err(|e| {
                ExecutorError::SubmitRejected {
                    backend: BACKEND.to_string(),
                    message: format!("batch {}: {e}", array.tag.batch_key),
                }
            })?;
            previews.push(ArrayPreview {
                batch_key: array.tag.batch_key.clone(),
                tasks: first_task..first_task + len,
                throttle,
                script_path: array.script_path(),
                manifest_path,
                script,
            });
            first_task += len;
        }
        Ok(previews)
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

    fn step_loads(&self, step: &str) -> Vec<ArrayLoad> {
        self.arrays
            .iter()
            .filter(|a| a.job.step == step)
            .map(|a| ArrayLoad {
                throttle: a.throttle.unwrap_or(u32::MAX),
                remaining: a.remaining(),
            })
            .collect()
    }

    /// Submit waiting arrays, oldest first, while the window has room.
    ///
    /// Returns the jobs created (or adopted) and the arrays sbatch refused, each with its
    /// `SubmitRejected` error (those arrays leave the queue). Any other failure (Slurm
    /// unreachable, I/O) stops the round, keeps the array waiting for the next attempt and is
    /// returned in the third slot.
    fn submit_waiting(&mut self) -> SubmitRound {
        let mut round = SubmitRound::default();
        let mut kept = VecDeque::new();
        while let Some(array) = self.waiting.pop_front() {
            let result = match self.already_submitted(&array) {
                Ok(Some(job)) => Ok(job),
                Ok(None) => {
                    let limit = self.window();
                    if !fits_window(self.in_queue(), array.tasks.len() as u64, limit) {
                        kept.push_back(array);
                        kept.extend(self.waiting.drain(..));
                        break;
                    }
                    let decision = if array.tasks.len() > 1 {
                        throttle_for_new_array(
                            array.max_running,
                            &self.step_loads(&array.tag.step),
                            array.tasks.len() as u32,
                        )
                    } else {
                        ThrottleDecision::Submit(None)
                    };
                    let ThrottleDecision::Submit(throttle) = decision else {
                        kept.push_back(array);
                        continue;
                    };
                    match self.submit_array(&array, throttle) {
                        Ok(Submission::Created(job)) => Ok(job),
                        Ok(Submission::AtSubmitLimit(message)) => {
                            // The site's limit is lower than `max_submitted` says: wait for
                            // the queue to drain, under the window Slurm accepted.
                            self.absorb_submit_limit(&message, array.tasks.len());
                            self.submit_limit = Some(message);
                            kept.push_back(array);
                            kept.extend(self.waiting.drain(..));
                            break;
                        }
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error),
            };
            match result {
                Ok(job) => {
                    self.submit_limit = None;
                    round.created.push(job)
                }
                Err(error @ ExecutorError::SubmitRejected { .. }) => {
                    round.rejected.push((array, error))
                }
                Err(error) => {
                    kept.push_back(array);
                    kept.extend(self.waiting.drain(..));
                    round.failure = Some(error);
                    break;
                }
            }
        }
        self.waiting = kept;
        round
    }

    /// The job of an array submitted before (by this driver or one that died): its record
    /// has the job id, or only the intent and the queue shows a job with its tag.
    fn already_submitted(
        &mut self,
        array: &PreparedArray,
    ) -> Result<Option<JobRef>, ExecutorError> {
        let record_path = array.record_path();
        let Some(record) = read_record(&record_path)? else {
            return Ok(None);
        };
        if let Some(job_id) = record.job_id {
            self.track_prepared(job_id.clone(), array, record.throttle, record.submitted_at);
            return Ok(Some(self.job_ref(&job_id)));
        }
        // Intent without job id: the driver died around sbatch. Is the job queued?
        let comment = array.tag.to_comment();
        let found = self
            .queued_campaign_jobs()?
            .into_iter()
            .find(|(_, tag, _)| tag.to_comment() == comment);
        let Some((job_id, _, throttle)) = found else {
            return Ok(None);
        };
        let record = SubmissionRecord {
            job_id: Some(job_id.clone()),
            submitted_at: Some(now_unix()),
            throttle: throttle.or(record.throttle),
            ..record
        };
        write_record(&record_path, &record)?;
        self.track_prepared(job_id.clone(), array, record.throttle, record.submitted_at);
        Ok(Some(self.job_ref(&job_id)))
    }

    /// Render the script and sbatch one array: intent recorded first, job id after.
    fn submit_array(
        &mut self,
        array: &PreparedArray,
        throttle: Option<u32>,
    ) -> Result<Submission, ExecutorError> {
        let record_path = array.record_path();
        let manifest = array.manifest_path();
        let request = ScriptRequest {
            tag: &array.tag,
            resources: &array.resources,
            config: &self.config,
            task_count: array.tasks.len(),
            throttle,
            batch_dir: &array.batch_dir,
            manifest: &manifest,
            flow_binary: &self.paths.flow_binary,
        };
        let script =
            render_script(&self.template, &request).map_err(|e| ExecutorError::SubmitRejected {
                backend: BACKEND.to_string(),
                message: format!("batch {}: {e}", array.tag.batch_key),
            })?;
        let script_path = array.script_path();
        write_atomically(&script_path, script.as_bytes())
            .map_err(|e| ExecutorError::io(format!("writing {}", script_path.display()), e))?;
        for task in &array.tasks {
            match std::fs::remove_file(&task.result_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ExecutorError::io(
                        format!("removing stale result {}", task.result_path.display()),
                        e,
                    ))
                }
            }
        }
        let mut record = SubmissionRecord {
            tag: array.tag.to_comment(),
            intent_at: now_unix(),
            job_id: None,
            submitted_at: None,
            task_count: array.tasks.len(),
            throttle,
        };
        write_record(&record_path, &record)?;
        let script_arg = script_path.to_string_lossy().into_owned();
        let output = self
            .cli
            .run("sbatch", &["--parsable".to_string(), script_arg])
            .map_err(cli_error)?;
        if !output.success {
            let _ = std::fs::remove_file(&record_path);
            // sbatch may say it in two lines (`QOSMaxSubmitJobPerUserLimit`, then `Batch job
            // submission failed: ...`): both, without the prefix.
            let message = output
                .stderr
                .lines()
                .map(|l| l.trim().trim_start_matches("sbatch: error: ").trim())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            if is_submit_limit(&message) {
                return Ok(Submission::AtSubmitLimit(message));
            }
            return Err(ExecutorError::SubmitRejected {
                backend: BACKEND.to_string(),
                message: format!("batch {}: {message}", array.tag.batch_key),
            });
        }
        let job_id = parse_sbatch_job_id(&output.stdout).ok_or_else(|| {
            backend(format!(
                "sbatch printed no job id for batch {}: {:?}",
                array.tag.batch_key, output.stdout
            ))
        })?;
        record.job_id = Some(job_id.clone());
        record.submitted_at = Some(now_unix());
        write_record(&record_path, &record)?;
        self.track_prepared(job_id.clone(), array, throttle, record.submitted_at);
        Ok(Submission::Created(self.job_ref(&job_id)))
    }

    fn job_ref(&self, job_id: &str) -> JobRef {
        self.arrays
            .iter()
            .find(|a| a.job.job_id == job_id)
            .map(|a| a.job.clone())
            .unwrap_or_else(|| JobRef {
                job_id: job_id.to_string(),
                step: String::new(),
                batch_key: String::new(),
            })
    }

    fn track_prepared(
        &mut self,
        job_id: String,
        array: &PreparedArray,
        throttle: Option<u32>,
        submitted_at: Option<f64>,
    ) {
        if self.arrays.iter().any(|a| a.job.job_id == job_id) {
            return;
        }
        let at = submitted_at.unwrap_or_else(now_unix);
        self.arrays
            .push(TrackedArray::new(job_id, array, throttle, at));
    }

    /// Track a job found in the queue or named by the engine, reading its manifest back.
    fn adopt(
        &mut self,
        job_id: &str,
        tag: &JobTag,
        throttle: Option<u32>,
        submitted_at: Option<f64>,
    ) -> Result<(), ExecutorError> {
        let batch_dir = self.batch_dir(&tag.step, &tag.batch_key);
        let manifest = batch_dir.join(format!("manifest-{}.jsonl", tag.manifest_hash));
        let text = std::fs::read_to_string(&manifest).map_err(|e| {
            ExecutorError::io(
                format!("reading manifest {} of job {job_id}", manifest.display()),
                e,
            )
        })?;
        let tasks =
            parse_manifest(&text).map_err(|e| backend(format!("{}: {e}", manifest.display())))?;
        let array = PreparedArray {
            tag: tag.clone(),
            resources: Resources::default(),
            max_running: None,
            tasks,
            batch_dir,
        };
        self.track_prepared(job_id.to_string(), &array, throttle, submitted_at);
        Ok(())
    }

    /// This campaign's jobs in the queue: (array job id, tag, throttle), one per job.
    fn queued_campaign_jobs(&self) -> Result<Vec<(String, JobTag, Option<u32>)>, ExecutorError> {
        let rows = self.squeue()?;
        let mut seen = HashSet::new();
        let mut jobs = Vec::new();
        for row in rows {
            let Some(tag) = JobTag::from_comment(&row.comment) else {
                continue;
            };
            if tag.campaign != self.campaign {
                continue;
            }
            if seen.insert(row.array_job_id.clone()) {
                jobs.push((row.array_job_id.clone(), tag, row.throttle));
            } else if let Some(throttle) = row.throttle {
                if let Some(job) = jobs.iter_mut().find(|j| j.0 == row.array_job_id) {
                    job.2 = Some(throttle);
                }
            }
        }
        Ok(jobs)
    }

    fn squeue(&self) -> Result<Vec<SqueueRow>, ExecutorError> {
        let args = [
            "--me".to_string(),
            "--noheader".to_string(),
            format!("--format={SQUEUE_FORMAT}"),
        ];
        let output = self.cli.run("squeue", &args).map_err(cli_error)?;
        if !output.success {
            return Err(failed("squeue --me", &output));
        }
        let (rows, _malformed) = parse_squeue(&output.stdout);
        Ok(rows)
    }

    /// One polling cycle: one squeue for every job, result files for elements that left the
    /// queue, one sacct (or one scontrol per array) for those without a result, throttle
    /// rebalancing, then submission of waiting arrays.
    fn cycle(&mut self) -> Result<(), ExecutorError> {
        if self.arrays.is_empty() && self.waiting.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        if !self.arrays.is_empty() {
            let rows = self.squeue()?;
            self.reject_never_starting(&rows)?;
            let mut queued: HashMap<&str, HashMap<u32, &SlurmJobState>> = HashMap::new();
            for row in &rows {
                let states = queued.entry(row.array_job_id.as_str()).or_default();
                if row.indices.is_empty() {
                    states.insert(0, &row.state);
                }
                for &index in &row.indices {
                    states.insert(index, &row.state);
                }
            }
            let at = now_unix();
            for array in &mut self.arrays {
                let states = queued.get(array.job.job_id.as_str());
                for (index, element) in array.elements.iter_mut().enumerate() {
                    if element.status == ElementStatus::Done {
                        continue;
                    }
                    match states.and_then(|s| s.get(&(index as u32))) {
                        Some(state) if !state.is_final() => {
                            element.status = ElementStatus::Queued;
                            if state.has_started() && !element.started {
                                element.started = true;
                                self.events.push(ExecutorEvent::Started {
                                    task_id: element.task_id.clone(),
                                    attempt: element.attempt,
                                    job_id: if array.is_array {
                                        format!("{}_{index}", array.job.job_id)
                                    } else {
                                        array.job.job_id.clone()
                                    },
                                    pid: None,
                                    at,
                                });
                            }
                        }
                        _ => {
                            if element.status == ElementStatus::Queued {
                                element.status = ElementStatus::Left(now);
                            }
                        }
                    }
                }
            }
        }
        self.resolve_left(now)?;
        self.arrays.retain(|a| a.remaining() > 0);
        self.rebalance()?;
        let round = self.submit_waiting();
        for (array, error) in round.rejected {
            self.report_unsubmitted(&array, ErrorClass::SubmitRejected, &error.to_string());
        }
        match round.failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Cancel pending elements of tracked jobs whose pending reason means they will never
    /// start (see [`pending_reason_is_permanent`]) and report them `submit-rejected` with
    /// Slurm's reason, instead of waiting forever.
    fn reject_never_starting(&mut self, rows: &[SqueueRow]) -> Result<(), ExecutorError> {
        for row in rows {
            if row.state != SlurmJobState::Pending || !pending_reason_is_permanent(&row.reason) {
                continue;
            }
            let Some(a) = self
                .arrays
                .iter()
                .position(|t| t.job.job_id == row.array_job_id)
            else {
                continue;
            };
            let args = ["--state=PENDING".to_string(), row.array_job_id.clone()];
            let output = self.cli.run("scancel", &args).map_err(cli_error)?;
            if !output.success && !output.stderr.contains("Invalid job id") {
                return Err(failed("scancel --state=PENDING", &output));
            }
            let array = &mut self.arrays[a];
            let indices: Vec<usize> = if row.indices.is_empty() {
                vec![0]
            } else {
                row.indices.iter().map(|&i| i as usize).collect()
            };
            for i in indices {
                let element_job = array.element_job_id(i);
                let is_array = array.is_array;
                let job_id = array.job.job_id.clone();
                let Some(element) = array.elements.get_mut(i) else {
                    continue;
                };
                if element.status == ElementStatus::Done {
                    continue;
                }
                let outcome = AttemptOutcome {
                    exit_code: None,
                    signal: None,
                    error_class: Some(ErrorClass::SubmitRejected),
                    message: Some(format!(
                        "Slurm would never start job {element_job} (pending reason {}); cancelled",
                        row.reason
                    )),
                    started_at: None,
                    ended_at: Some(now_unix()),
                    usage: None,
                };
                finish(&mut self.events, is_array, &job_id, i, element, outcome);
            }
        }
        Ok(())
    }

    fn report_unsubmitted(&mut self, array: &PreparedArray, class: ErrorClass, message: &str) {
        for task in &array.tasks {
            self.events.push(ExecutorEvent::Finished {
                task_id: task.task_id.clone(),
                attempt: task.attempt,
                outcome: AttemptOutcome::ended_without_exit(class, message, now_unix()),
            });
        }
    }

    /// Report elements that left the queue: from their result files first, then from
    /// Slurm's records; nothing waits forever.
    ///
    /// Usage: where sacct answers, every ended element (successes too) takes its MaxRSS and
    /// CPU time from sacct's record of its steps ([`merge_usage`] over the task's own rusage
    /// from the result file). sacct lags slurmctld, so an element whose result file decided
    /// it is held until sacct has its final `.batch` step record, at most `result_grace`
    /// after it left the queue; then it is reported with what is known (the rusage the job
    /// wrapper recorded, if any). All of this costs one sacct per cycle for every array with
    /// ended elements, never one call per element.
    fn resolve_left(&mut self, now: Instant) -> Result<(), ExecutorError> {
        let mut unresolved: Vec<(usize, usize)> = Vec::new();
        // Failed attempts whose cause Slurm may know better (TIMEOUT, OOM...).
        let mut failed_results: HashMap<(usize, usize), AttemptOutcome> = HashMap::new();
        // Decided by their result file, held (up to `result_grace`) for sacct's usage.
        let mut awaiting_usage: Vec<((usize, usize), AttemptOutcome)> = Vec::new();
        let want_usage =
            self.config.accounting != AccountingSource::Scontrol && self.sacct_works != Some(false);
        for (a, array) in self.arrays.iter_mut().enumerate() {
            for (i, element) in array.elements.iter_mut().enumerate() {
                if !matches!(element.status, ElementStatus::Left(_)) {
                    continue;
                }
                let outcome = match read_result(&element.result_path) {
                    None => {
                        unresolved.push((a, i));
                        continue;
                    }
                    Some(Ok(outcome)) if slurm_may_know_better(&outcome) => {
                        unresolved.push((a, i));
                        failed_results.insert((a, i), outcome);
                        continue;
                    }
                    Some(Ok(outcome)) if want_usage => {
                        awaiting_usage.push(((a, i), outcome));
                        continue;
                    }
                    Some(Ok(outcome)) => outcome,
                    Some(Err(message)) => AttemptOutcome {
                        exit_code: None,
                        signal: None,
                        error_class: Some(ErrorClass::IncompleteOutput),
                        message: Some(message),
                        started_at: None,
                        ended_at: Some(now_unix()),
                        usage: None,
                    },
                };
                finish(
                    &mut self.events,
                    array.is_array,
                    &array.job.job_id,
                    i,
                    element,
                    outcome,
                );
            }
        }
        if unresolved.is_empty() && awaiting_usage.is_empty() {
            return Ok(());
        }
        let wanted: Vec<usize> = {
            let mut arrays: Vec<usize> = unresolved
                .iter()
                .chain(awaiting_usage.iter().map(|(k, _)| k))
                .map(|(a, _)| *a)
                .collect();
            arrays.sort_unstable();
            arrays.dedup();
            arrays
        };
        let records = self.final_records(&wanted, &unresolved)?;
        let grace = self.config.result_grace;
        let sacct_answers = self.sacct_works != Some(false);
        for ((a, i), mut outcome) in awaiting_usage {
            let array = &mut self.arrays[a];
            let key = (array.job.job_id.clone(), array.is_array.then_some(i as u32));
            let element = &mut array.elements[i];
            let ElementStatus::Left(since) = element.status else {
                continue;
            };
            let record = records.get(&key);
            let complete = record.is_some_and(|r| r.state.is_final() && r.steps_ended);
            // sacct lags slurmctld: hold the end (the result file already decided it) until
            // sacct has the element's final step record, never longer than the grace.
            if sacct_answers && !complete && now.saturating_duration_since(since) < grace {
                continue;
            }
            if complete {
                outcome.usage = merge_usage(outcome.usage, record.and_then(|r| r.usage.as_ref()));
            }
            let is_array = array.is_array;
            let job_id = array.job.job_id.clone();
            finish(&mut self.events, is_array, &job_id, i, element, outcome);
        }
        let vanish_after = grace.max(self.config.poll_interval * 3);
        for (a, i) in unresolved {
            let array = &mut self.arrays[a];
            let element_job = array.element_job_id(i);
            let key = (array.job.job_id.clone(), array.is_array.then_some(i as u32));
            let element = &mut array.elements[i];
            let ElementStatus::Left(since) = element.status else {
                continue;
            };
            let waited = now.saturating_duration_since(since);
            let from_result = failed_results.remove(&(a, i));
            let outcome = match (records.get(&key), from_result) {
                (Some(record), from_result) if record.state.is_final() => {
                    let class = classify_end(&record.state, record.exit);
                    let decided_by_slurm = matches!(
                        class,
                        Some(
                            ErrorClass::Walltime
                                | ErrorClass::OutOfMemory
                                | ErrorClass::NodeFailure
                                | ErrorClass::Preempted
                                | ErrorClass::Cancelled
                        )
                    );
                    match from_result {
                        Some(result) if decided_by_slurm => {
                            let mut outcome =
                                slurm_outcome(&element_job, record, class, &element.result_path);
                            outcome.started_at = result.started_at.or(outcome.started_at);
                            outcome
                        }
                        Some(result) => result,
                        None if decided_by_slurm || waited >= grace => {
                            slurm_outcome(&element_job, record, class, &element.result_path)
                        }
                        None => continue, // the result file may still be on its way
                    }
                }
                // The task's own result says it failed, but no source has Slurm's final
                // state yet (sacct lags, or the job is still completing): Slurm may yet say
                // OUT_OF_MEMORY or TIMEOUT, which decides the retry. Wait for it up to the
                // grace period, then go by the result file.
                (_, Some(_)) if waited < grace => continue,
                (_, Some(result)) => result,
                // Slurm still sees it alive (squeue raced with it): look again next cycle.
                (Some(_), None) => continue,
                (None, None) if waited < vanish_after => continue,
                (None, None) => AttemptOutcome {
                    exit_code: None,
                    signal: None,
                    error_class: Some(ErrorClass::IncompleteOutput),
                    message: Some(format!(
                        "Slurm job {element_job} left the queue with no record in Slurm and no result file at {} (waited {}s)",
                        element.result_path.display(),
                        waited.as_secs()
                    )),
                    started_at: None,
                    ended_at: Some(now_unix()),
                    usage: None,
                },
            };
            let mut outcome = outcome;
            if let Some(record) = records.get(&key).filter(|r| r.state.is_final()) {
                outcome.usage = merge_usage(outcome.usage, record.usage.as_ref());
            }
            let is_array = array.is_array;
            let job_id = array.job.job_id.clone();
            finish(&mut self.events, is_array, &job_id, i, element, outcome);
        }
        Ok(())
    }

    /// Final records of the given arrays: sacct in one call when accounting works, else
    /// scontrol per array, then the jobcomp file for what scontrol has forgotten.
    fn final_records(
        &mut self,
        arrays: &[usize],
        unresolved: &[(usize, usize)],
    ) -> Result<HashMap<(String, Option<u32>), ElementRecord>, ExecutorError> {
        let mut records: HashMap<(String, Option<u32>), ElementRecord> = HashMap::new();
        // A final record is never replaced by a later source's non-final one: sacct lags
        // slurmctld (slurmdbd is written asynchronously), so scontrol may know the end
        // state (OUT_OF_MEMORY, TIMEOUT) while sacct still says RUNNING.
        let insert = |records: &mut HashMap<(String, Option<u32>), ElementRecord>,
                      list: Vec<ElementRecord>| {
            for r in list {
                let key = (r.array_job_id.clone(), r.index);
                let keep_old = records
                    .get(&key)
                    .is_some_and(|old: &ElementRecord| old.state.is_final() && !r.state.is_final());
                if !keep_old {
                    records.insert(key, r);
                }
            }
        };
        let ids: Vec<String> = arrays
            .iter()
            .map(|&a| self.arrays[a].job.job_id.clone())
            .collect();
        let use_sacct = match self.config.accounting {
            AccountingSource::Sacct => true,
            AccountingSource::Scontrol => false,
            AccountingSource::Auto => self.sacct_works != Some(false),
        };
        if use_sacct {
            let earliest = arrays
                .iter()
                .map(|&a| self.arrays[a].submitted_at)
                .fold(f64::INFINITY, f64::min);
            let lookback = (now_unix() - earliest).max(0.0) as u64 + 3600;
            let args = vec![
                "--noheader".to_string(),
                "--parsable2".to_string(),
                format!("--format={SACCT_FORMAT}"),
                format!("--starttime=now-{lookback}"),
                format!("--jobs={}", ids.join(",")),
            ];
            let output = self.cli.run("sacct", &args).map_err(cli_error)?;
            if output.success {
                self.sacct_works = Some(true);
                insert(&mut records, parse_sacct(&output.stdout));
            } else if self.config.accounting == AccountingSource::Sacct {
                return Err(failed("sacct", &output));
            } else {
                self.sacct_works = Some(false);
            }
        }
        let missing = |records: &HashMap<(String, Option<u32>), ElementRecord>, a: usize| {
            let array = &self.arrays[a];
            unresolved.iter().any(|&(ua, i)| {
                ua == a
                    && !records
                        .get(&(array.job.job_id.clone(), array.is_array.then_some(i as u32)))
                        .is_some_and(|r| r.state.is_final())
            })
        };
        let mut forgotten = Vec::new();
        for &a in arrays {
            if !missing(&records, a) {
                continue;
            }
            let id = self.arrays[a].job.job_id.clone();
            let args = [
                "--oneliner".to_string(),
                "show".to_string(),
                "job".to_string(),
                id,
            ];
            let output = self.cli.run("scontrol", &args).map_err(cli_error)?;
            if output.success {
                insert(&mut records, parse_scontrol_jobs(&output.stdout));
            } else if !output.stderr.contains("Invalid job id") {
                return Err(failed("scontrol show job", &output));
            }
            if missing(&records, a) {
                forgotten.push(a);
            }
        }
        if !forgotten.is_empty() {
            self.refresh_jobcomp()?;
            for &a in &forgotten {
                let array = &self.arrays[a];
                for &(ua, i) in unresolved {
                    if ua != a {
                        continue;
                    }
                    let key = (array.job.job_id.clone(), array.is_array.then_some(i as u32));
                    if let Some(record) = self.jobcomp.records.get(&key) {
                        if !records.get(&key).is_some_and(|r| r.state.is_final()) {
                            records.insert(key, record.clone());
                        }
                    }
                }
            }
        }
        Ok(records)
    }

    /// Read what was appended to the jobcomp/filetxt file since the last call.
    fn refresh_jobcomp(&mut self) -> Result<(), ExecutorError> {
        if self.jobcomp.location.is_none() {
            let output = self
                .cli
                .run("scontrol", &["show".to_string(), "config".to_string()])
                .map_err(cli_error)?;
            let mut kind = None;
            let mut location = None;
            for line in output.stdout.lines() {
                if let Some((key, value)) = line.split_once('=') {
                    match key.trim() {
                        "JobCompType" => kind = Some(value.trim().to_string()),
                        "JobCompLoc" => location = Some(PathBuf::from(value.trim())),
                        _ => {}
                    }
                }
            }
            self.jobcomp.location =
                Some(location.filter(|_| kind.as_deref() == Some("jobcomp/filetxt")));
        }
        let Some(Some(path)) = &self.jobcomp.location else {
            return Ok(());
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(_) => return Ok(()), // not readable from this host: rely on the other sources
        };
        let start = (self.jobcomp.offset as usize).min(bytes.len());
        let fresh = &bytes[start..];
        let complete = fresh.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let text = String::from_utf8_lossy(&fresh[..complete]);
        for record in parse_jobcomp(&text) {
            self.jobcomp
                .records
                .insert((record.array_job_id.clone(), record.index), record);
        }
        self.jobcomp.offset = (start + complete) as u64;
        Ok(())
    }

    /// Raise the throttles of a capped step's arrays when earlier arrays drained and no
    /// array of the step waits for submission.
    fn rebalance(&mut self) -> Result<(), ExecutorError> {
        let mut steps: Vec<(String, u32)> = Vec::new();
        for array in &self.arrays {
            if let (true, Some(cap)) = (array.is_array, array.max_running) {
                if !steps.iter().any(|(s, _)| *s == array.job.step) {
                    steps.push((array.job.step.clone(), cap));
                }
            }
        }
        for (step, cap) in steps {
            if self.waiting.iter().any(|w| w.tag.step == step) {
                continue;
            }
            let members: Vec<usize> = (0..self.arrays.len())
                .filter(|&a| self.arrays[a].job.step == step && self.arrays[a].is_array)
                .collect();
            let loads: Vec<ArrayLoad> = members
                .iter()
                .map(|&a| ArrayLoad {
                    throttle: self.arrays[a].throttle.unwrap_or(cap),
                    remaining: self.arrays[a].remaining(),
                })
                .collect();
            for (k, throttle) in rebalance_throttles(cap, &loads) {
                let a = members[k];
                let args = [
                    "update".to_string(),
                    format!("JobId={}", self.arrays[a].job.job_id),
                    format!("ArrayTaskThrottle={throttle}"),
                ];
                // scontrol refuses when no element is pending any more; raising is moot then,
                // so the new value is kept either way (and not asked for again).
                self.cli.run("scontrol", &args).map_err(cli_error)?;
                self.arrays[a].throttle = Some(throttle);
            }
        }
        Ok(())
    }
}

/// Whether Slurm may know better than a result file why the attempt failed: the task
/// exited non-zero, was killed by a signal or cancelled, and Slurm may have recorded the
/// cause (TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED...). Flow's own verdicts (its
/// timeout, invalid or unphysical output, SCF failures) stand as they are.
fn slurm_may_know_better(outcome: &AttemptOutcome) -> bool {
    outcome.signal.is_some()
        || matches!(
            outcome.error_class,
            Some(ErrorClass::NonzeroExit | ErrorClass::Signal | ErrorClass::Cancelled)
        )
}

/// The outcome of an element as Slurm recorded it (no result file, or a killed one).
fn slurm_outcome(
    element_job: &str,
    record: &ElementRecord,
    class: Option<ErrorClass>,
    result_path: &Path,
) -> AttemptOutcome {
    let (class, message) = match class {
        None => (
            ErrorClass::IncompleteOutput,
            format!(
                "Slurm job {element_job} COMPLETED but left no result file at {}",
                result_path.display()
            ),
        ),
        Some(class) => (
            class,
            format!(
                "Slurm job {element_job} ended {} (exit code {}:{}){}",
                record.state.as_str(),
                record.exit.exit,
                record.exit.signal,
                record
                    .reason
                    .as_ref()
                    .map(|r| format!(", reason {r}"))
                    .unwrap_or_default()
            ),
        ),
    };
    AttemptOutcome {
        exit_code: matches!(
            record.state,
            SlurmJobState::Completed | SlurmJobState::Failed
        )
        .then_some(record.exit.exit),
        signal: (record.exit.signal != 0).then_some(record.exit.signal),
        error_class: Some(class),
        message: Some(message),
        started_at: record.started_at,
        ended_at: record.ended_at.or_else(|| Some(now_unix())),
        usage: None,
    }
}

fn finish(
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

fn read_record(path: &Path) -> Result<Option<SubmissionRecord>, ExecutorError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            backend(format!(
                "unreadable submission record {}: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ExecutorError::io(format!("reading {}", path.display()), e)),
    }
}

fn write_record(path: &Path, record: &SubmissionRecord) -> Result<(), ExecutorError> {
    let text = serde_json::to_string_pretty(record)
        .map_err(|e| backend(format!("serialising submission record: {e}")))?;
    write_atomically(path, text.as_bytes())
        .map_err(|e| ExecutorError::io(format!("writing {}", path.display()), e))
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
