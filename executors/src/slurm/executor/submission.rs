//! Submission: a batch split into arrays with their manifests (no I/O for `flow plan`'s
//! preview), the `max_submitted` window (with the limit learned from a refusal) and the
//! step's `%` throttles, then sbatch with the intent recorded first and the job id after,
//! so a driver that dies around sbatch adopts the job instead of submitting it twice.

use super::arrays::*;
use super::*;

use crate::batching::{
    array_size, fits_window, split_into_arrays, throttle_for_new_array, ArrayLoad, ThrottleDecision,
};
use crate::launch::{AttemptOutcome, Batch, ExecutorEvent, JobRef};
use crate::manifest::{manifest_hash, manifest_text, write_atomically};
use crate::slurm::job_tag::JobTag;
use crate::slurm::script::{render_script, ScriptRequest};
use crate::slurm::submission_record::{parse_sbatch_job_id, SubmissionRecord};
use crate::task_runner::now as now_unix;
use crate::ExecutorError;
use flow_dsl::error_class::ErrorClass;
use std::collections::VecDeque;
use std::path::Path;

/// What one round of submissions did.
#[derive(Debug, Default)]
pub(super) struct SubmitRound {
    pub(super) created: Vec<JobRef>,
    pub(super) rejected: Vec<(PreparedArray, ExecutorError)>,
    pub(super) failure: Option<ExecutorError>,
}

/// What sbatch did with one array.
#[derive(Debug)]
pub(super) enum Submission {
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

impl SlurmExecutor {
    /// The window in force: `max_submitted` and the learned one, whichever is smaller.
    pub(super) fn window(&self) -> Option<u64> {
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
    pub(super) fn absorb_submit_limit(&mut self, message: &str, array_len: usize) {
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

    /// Split `batch` into arrays with their manifest texts (no I/O).
    pub(super) fn plan(
        &self,
        batch: &Batch,
    ) -> Result<Vec<(PreparedArray, String)>, ExecutorError> {
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
    pub(super) fn prepare(&self, batch: &Batch) -> Result<Vec<PreparedArray>, ExecutorError> {
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

    pub(super) fn step_loads(&self, step: &str) -> Vec<ArrayLoad> {
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
    pub(super) fn submit_waiting(&mut self) -> SubmitRound {
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
    pub(super) fn already_submitted(
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
    pub(super) fn submit_array(
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

    pub(super) fn job_ref(&self, job_id: &str) -> JobRef {
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

    pub(super) fn track_prepared(
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

    pub(super) fn report_unsubmitted(
        &mut self,
        array: &PreparedArray,
        class: ErrorClass,
        message: &str,
    ) {
        for task in &array.tasks {
            self.events.push(ExecutorEvent::Finished {
                task_id: task.task_id.clone(),
                attempt: task.attempt,
                outcome: AttemptOutcome::ended_without_exit(class, message, now_unix()),
            });
        }
    }
}

pub(super) fn read_record(path: &Path) -> Result<Option<SubmissionRecord>, ExecutorError> {
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

pub(super) fn write_record(path: &Path, record: &SubmissionRecord) -> Result<(), ExecutorError> {
    let text = serde_json::to_string_pretty(record)
        .map_err(|e| backend(format!("serialising submission record: {e}")))?;
    write_atomically(path, text.as_bytes())
        .map_err(|e| ExecutorError::io(format!("writing {}", path.display()), e))
}
