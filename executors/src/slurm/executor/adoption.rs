//! Adoption: this campaign's jobs found in the queue by their comment tag, or named by the
//! state database, are tracked again from their submission records and manifests.

use super::arrays::*;
use super::submission::*;
use super::*;
use crate::launch::{JobRef, Resources};
use crate::manifest::parse_manifest;
use crate::slurm::job_tag::JobTag;
use crate::slurm::squeue_output::{parse_squeue, SqueueRow, SQUEUE_FORMAT};
use crate::ExecutorError;
use std::collections::HashSet;

impl SlurmExecutor {
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

    /// Track a job found in the queue or named by the engine, reading its manifest back.
    pub(super) fn adopt(
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
    pub(super) fn queued_campaign_jobs(
        &self,
    ) -> Result<Vec<(String, JobTag, Option<u32>)>, ExecutorError> {
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

    pub(super) fn squeue(&self) -> Result<Vec<SqueueRow>, ExecutorError> {
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
}
