//! Parsing of `squeue --noheader --format=SQUEUE_FORMAT` output.

use super::array_indices::{parse_array_indices, parse_throttle};
use super::job_state::SlurmJobState;

/// The squeue format flow asks for: raw job id, array job id, array task id(s), state,
/// pending reason, then the comment last (so a stray `|` in a foreign comment cannot shift
/// the fields).
pub const SQUEUE_FORMAT: &str = "%A|%F|%K|%T|%r|%k";

/// One squeue line: a single job, one running array element, or an array's pending rest.
#[derive(Debug, Clone, PartialEq)]
pub struct SqueueRow {
    pub job_id: String,
    /// The array's job id (equal to `job_id` for plain jobs).
    pub array_job_id: String,
    /// The array indices this line stands for (empty for a plain job).
    pub indices: Vec<u32>,
    pub throttle: Option<u32>,
    pub state: SlurmJobState,
    /// Why a pending job waits (`Priority`, `Resources`, `BadConstraints`...).
    pub reason: String,
    pub comment: String,
}

/// Whether a pending job's reason means it will never start without someone changing the
/// job or the cluster (a limit it exceeds, a dependency that can no longer be met, an
/// account or QOS it may not use). Such jobs are cancelled and reported as rejected rather
/// than left waiting forever; passing reasons (`Priority`, `Resources`, `QOSMaxJobsPerUserLimit`,
/// `ReqNodeNotAvail`, held jobs...) are not in this list.
pub fn pending_reason_is_permanent(reason: &str) -> bool {
    const PERMANENT: [&str; 14] = [
        "BadConstraints",
        "DependencyNeverSatisfied",
        "InvalidAccount",
        "InvalidQOS",
        "AccountNotAllowed",
        "QOSNotAllowed",
        "PartitionTimeLimit",
        "PartitionNodeLimit",
        "AssocMaxWallDurationPerJobLimit",
        "QOSMaxWallDurationPerJobLimit",
        "AssocMaxNodesPerJobLimit",
        "QOSMaxNodePerJobLimit",
        "AssocMaxCpuPerJobLimit",
        "QOSMaxCpuPerJobLimit",
    ];
    PERMANENT.contains(&reason.trim())
}

/// Parse squeue output; lines that do not have the expected shape are returned as errors
/// (with the line) and skipped by callers that log them.
pub fn parse_squeue(output: &str) -> (Vec<SqueueRow>, Vec<String>) {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.splitn(6, '|').collect();
        let [job_id, array_job_id, tasks, state, reason, comment] = fields.as_slice() else {
            bad.push(line.to_string());
            continue;
        };
        let Some(indices) = parse_array_indices(tasks) else {
            bad.push(line.to_string());
            continue;
        };
        let array_job_id = match array_job_id.trim() {
            "" | "N/A" => job_id.trim(),
            id => id,
        };
        rows.push(SqueueRow {
            job_id: job_id.trim().to_string(),
            array_job_id: array_job_id.to_string(),
            indices,
            throttle: parse_throttle(tasks),
            state: SlurmJobState::parse(state),
            reason: reason.trim().to_string(),
            comment: comment.trim().to_string(),
        });
    }
    (rows, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_squeue_lines() {
        // As printed by slurm-wlm 22.05 for an array with two running elements.
        let text = "1|1|0-5%3|PENDING|JobArrayTaskLimit|flow1:c:s:b:h\n6|1|4|RUNNING|None|flow1:c:s:b:h\n8|8|N/A|PENDING|DependencyNeverSatisfied|(null)\n";
        let (rows, bad) = parse_squeue(text);
        assert!(bad.is_empty());
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].indices, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(rows[0].throttle, Some(3));
        assert_eq!(rows[1].array_job_id, "1");
        assert_eq!(rows[1].indices, vec![4]);
        assert_eq!(rows[1].state, SlurmJobState::Running);
        assert!(rows[2].indices.is_empty());
        assert_eq!(rows[2].comment, "(null)");
        assert_eq!(rows[0].reason, "JobArrayTaskLimit");
        assert!(pending_reason_is_permanent(&rows[2].reason));
        assert!(!pending_reason_is_permanent(&rows[0].reason));
        assert!(!pending_reason_is_permanent("Priority"));
    }

    #[test]
    fn comments_with_separators_stay_whole() {
        let (rows, _) = parse_squeue("9|9|N/A|RUNNING|None|a|b c\n");
        assert_eq!(rows[0].comment, "a|b c");
    }

    #[test]
    fn malformed_lines_are_reported() {
        let (rows, bad) = parse_squeue("garbage\n1|1|x-y|PENDING|None|c\n");
        assert!(rows.is_empty());
        assert_eq!(bad.len(), 2);
    }
}
