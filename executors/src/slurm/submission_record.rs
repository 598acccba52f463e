//! The record of one submission, kept next to the batch script: the intent is written
//! before sbatch runs and the job id after, so a driver that died in between can tell
//! "maybe submitted" (look for the tag in the queue) from "never submitted".

use serde::{Deserialize, Serialize};

/// Contents of `submission-<manifest hash>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmissionRecord {
    /// The job's `--comment` tag.
    pub tag: String,
    /// Unix seconds when sbatch was about to run.
    pub intent_at: f64,
    /// Slurm's job id, once sbatch answered.
    pub job_id: Option<String>,
    pub submitted_at: Option<f64>,
    /// Number of array elements (1 for a plain job).
    pub task_count: usize,
    /// The `%` throttle the array was submitted with.
    pub throttle: Option<u32>,
}

/// Parse the job id printed by `sbatch --parsable` (`123` or `123;cluster`).
pub fn parse_sbatch_job_id(stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_ids() {
        assert_eq!(parse_sbatch_job_id("123\n"), Some("123".into()));
        assert_eq!(parse_sbatch_job_id("123;della\n"), Some("123".into()));
        assert_eq!(parse_sbatch_job_id("Submitted batch job 5"), None);
        assert_eq!(parse_sbatch_job_id(""), None);
    }
}
