//! Polling: one squeue per cycle, then the end of every element that left the queue from
//! its result file ([`crate::result_document`]) or Slurm's records (sacct, else scontrol
//! and the jobcomp file), usage from sacct, and the throttles raised as arrays drain.

use super::arrays::*;
use super::*;
use crate::batching::{rebalance_throttles, ArrayLoad};
use crate::launch::{AttemptOutcome, ExecutorEvent};
use crate::result_document::read_result;
use crate::slurm::job_records::{
    parse_jobcomp, parse_sacct, parse_scontrol_jobs, ElementRecord, SACCT_FORMAT,
};
use crate::slurm::job_state::{classify_end, SlurmJobState};
use crate::slurm::sacct_usage::merge_usage;
use crate::slurm::squeue_output::{pending_reason_is_permanent, SqueueRow};
use crate::task_runner::now as now_unix;
use crate::ExecutorError;
use flow_dsl::error_class::ErrorClass;
use flow_dsl::machine_settings::slurm::AccountingSource;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The jobcomp/filetxt completion file, read incrementally (development clusters without
/// accounting; real clusters answer through sacct).
#[derive(Debug, Default)]
pub(super) struct JobcompReader {
    /// `None` until asked; `Some(None)` when the cluster has no readable filetxt jobcomp.
    pub(super) location: Option<Option<PathBuf>>,
    pub(super) offset: u64,
    pub(super) records: HashMap<(String, Option<u32>), ElementRecord>,
}

impl SlurmExecutor {
    /// One polling cycle: one squeue for every job, result files for elements that left the
    /// queue, one sacct (or one scontrol per array) for those without a result, throttle
    /// rebalancing, then submission of waiting arrays.
    pub(super) fn cycle(&mut self) -> Result<(), ExecutorError> {
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
    pub(super) fn reject_never_starting(
        &mut self,
        rows: &[SqueueRow],
    ) -> Result<(), ExecutorError> {
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
    pub(super) fn resolve_left(&mut self, now: Instant) -> Result<(), ExecutorError> {
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
    pub(super) fn final_records(
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
    pub(super) fn refresh_jobcomp(&mut self) -> Result<(), ExecutorError> {
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
    pub(super) fn rebalance(&mut self) -> Result<(), ExecutorError> {
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
pub(super) fn slurm_may_know_better(outcome: &AttemptOutcome) -> bool {
    outcome.signal.is_some()
        || matches!(
            outcome.error_class,
            Some(ErrorClass::NonzeroExit | ErrorClass::Signal | ErrorClass::Cancelled)
        )
}

/// The outcome of an element as Slurm recorded it (no result file, or a killed one).
pub(super) fn slurm_outcome(
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
