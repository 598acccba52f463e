//! Final records of array elements, from `scontrol --oneliner show job`, `sacct --parsable2`
//! and the `jobcomp/filetxt` completion file: whichever source answers, the executor sees
//! the same [`ElementRecord`].

use super::array_indices::parse_array_indices;
use super::job_state::{SlurmExitCode, SlurmJobState};

/// What Slurm says about one array element (or a plain job, `index == None`).
#[derive(Debug, Clone, PartialEq)]
pub struct ElementRecord {
    pub array_job_id: String,
    pub index: Option<u32>,
    pub state: SlurmJobState,
    pub exit: SlurmExitCode,
    /// Unix seconds, when the source gives them as such (`SLURM_TIME_FORMAT=%s`).
    pub started_at: Option<f64>,
    pub ended_at: Option<f64>,
    pub reason: Option<String>,
}

/// Split one `Key=Value Key=Value` line (scontrol `-o`, jobcomp filetxt) into pairs. Values
/// may contain blanks (`JobName=my job`): a word without `=` continues the previous value.
pub fn split_key_values(line: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for word in line.split(' ') {
        let key_like = word.split_once('=').filter(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/:_".contains(c))
        });
        match (key_like, pairs.last_mut()) {
            (Some((k, v)), _) => pairs.push((k.to_string(), v.to_string())),
            (None, Some(last)) => {
                last.1.push(' ');
                last.1.push_str(word);
            }
            (None, None) => {}
        }
    }
    for pair in &mut pairs {
        pair.1 = pair.1.trim_end().to_string();
    }
    pairs
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn epoch(text: Option<&str>) -> Option<f64> {
    text.and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
}

/// Records from `scontrol --oneliner show job <id>` (one line per job or array element).
/// A line standing for several pending elements (`ArrayTaskId=5-9%2`) yields one record per
/// index, all PENDING.
pub fn parse_scontrol_jobs(output: &str) -> Vec<ElementRecord> {
    output
        .lines()
        .filter(|l| l.contains("JobId="))
        .flat_map(|line| records_from_pairs(&split_key_values(line)))
        .collect()
}

/// Records from the `jobcomp/filetxt` completion file (same `Key=Value` shape as scontrol).
/// Times there are local calendar times, not epochs, and are left out.
pub fn parse_jobcomp(text: &str) -> Vec<ElementRecord> {
    text.lines()
        .filter(|l| l.starts_with("JobId="))
        .flat_map(|line| {
            let mut pairs = split_key_values(line);
            pairs.retain(|(k, _)| k != "StartTime" && k != "EndTime");
            records_from_pairs(&pairs)
        })
        .collect()
}

fn records_from_pairs(pairs: &[(String, String)]) -> Vec<ElementRecord> {
    let Some(job_id) = value(pairs, "JobId") else {
        return Vec::new();
    };
    let array_job_id = match value(pairs, "ArrayJobId") {
        Some(id) if !id.is_empty() && id != "(null)" && id != "0" => id,
        _ => job_id,
    };
    let indices = value(pairs, "ArrayTaskId")
        .and_then(parse_array_indices)
        .unwrap_or_default();
    let base = ElementRecord {
        array_job_id: array_job_id.to_string(),
        index: None,
        state: SlurmJobState::parse(value(pairs, "JobState").unwrap_or("")),
        exit: value(pairs, "ExitCode")
            .and_then(SlurmExitCode::parse)
            .unwrap_or_default(),
        started_at: epoch(value(pairs, "StartTime")),
        ended_at: epoch(value(pairs, "EndTime")),
        reason: value(pairs, "Reason")
            .filter(|r| !r.is_empty() && *r != "None")
            .map(str::to_string),
    };
    if indices.is_empty() {
        return vec![base];
    }
    indices
        .into_iter()
        .map(|i| ElementRecord {
            index: Some(i),
            ..base.clone()
        })
        .collect()
}

/// The sacct fields flow asks for, in order (`--parsable2 --noheader --allocations`).
pub const SACCT_FORMAT: &str = "JobID,State,ExitCode,Start,End";

/// Records from `sacct -X -n -P -o SACCT_FORMAT`. `JobID` is `123` (plain job), `123_4`
/// (array element) or `123_[5-9]` (elements that never started).
pub fn parse_sacct(output: &str) -> Vec<ElementRecord> {
    let mut records = Vec::new();
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('|').collect();
        let [job_id, state, exit, start, end, ..] = fields.as_slice() else {
            continue;
        };
        if job_id.contains('.') {
            continue; // a job step (batch, extern), not the allocation
        }
        let (array_job_id, indices) = match job_id.split_once('_') {
            Some((id, tasks)) => match parse_array_indices(tasks) {
                Some(indices) => (id, indices),
                None => continue,
            },
            None => (*job_id, Vec::new()),
        };
        let base = ElementRecord {
            array_job_id: array_job_id.to_string(),
            index: None,
            state: SlurmJobState::parse(state),
            exit: SlurmExitCode::parse(exit).unwrap_or_default(),
            started_at: epoch(Some(start)),
            ended_at: epoch(Some(end)),
            reason: None,
        };
        if indices.is_empty() {
            records.push(base);
        } else {
            records.extend(indices.into_iter().map(|i| ElementRecord {
                index: Some(i),
                ..base.clone()
            }));
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::job_state::classify_end;
    use flow_dsl::error_class::ErrorClass;

    const SCONTROL: &str = "JobId=6 ArrayJobId=1 ArrayTaskId=4 ArrayTaskThrottle=3 JobName=we ird'name UserId=root(0) JobState=CANCELLED Reason=None Dependency=(null) ExitCode=0:15 StartTime=1795876185 EndTime=1795876186 Comment=flow1:c:s:b:h  StdErr=/tmp/a b/1_4.out
JobId=5 ArrayJobId=1 ArrayTaskId=3 JobName=x JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0 StartTime=1795876185 EndTime=1795876185
JobId=1 ArrayJobId=1 ArrayTaskId=7-9%3 JobName=x JobState=PENDING Reason=JobArrayTaskLimit ExitCode=0:0 StartTime=Unknown EndTime=Unknown
";

    #[test]
    fn scontrol_records() {
        let records = parse_scontrol_jobs(SCONTROL);
        assert_eq!(records.len(), 5);
        assert_eq!(records[0].index, Some(4));
        assert_eq!(records[0].state, SlurmJobState::Cancelled);
        assert_eq!(
            records[0].exit,
            SlurmExitCode {
                exit: 0,
                signal: 15
            }
        );
        assert_eq!(records[0].started_at, Some(1_795_876_185.0));
        assert_eq!(records[0].reason, None);
        assert_eq!(
            classify_end(&records[1].state, records[1].exit),
            Some(ErrorClass::NonzeroExit)
        );
        assert_eq!(records[1].reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!(
            records[2..].iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![Some(7), Some(8), Some(9)]
        );
        assert_eq!(records[2].state, SlurmJobState::Pending);
    }

    #[test]
    fn values_with_blanks_survive() {
        let pairs = split_key_values("JobId=6 JobName=we ird'name StdErr=/tmp/a b/1_4.out Power=");
        assert_eq!(value(&pairs, "JobName"), Some("we ird'name"));
        assert_eq!(value(&pairs, "StdErr"), Some("/tmp/a b/1_4.out"));
        assert_eq!(value(&pairs, "Power"), Some(""));
    }

    #[test]
    fn jobcomp_records() {
        // As written by jobcomp/filetxt in slurm-wlm 22.05.
        let text = "JobId=6 UserId=root(0) GroupId=root(0) Name=flow-test JobState=CANCELLED Partition=debug TimeLimit=1 StartTime=2026-11-28T14:29:47 EndTime=2026-11-28T14:29:49 NodeList=localhost NodeCnt=1 ProcCnt=1 WorkDir=/tmp/sl ReservationName= Tres=cpu=1,mem=500M,node=1,billing=1 Account= QOS= WcKey= Cluster=unknown SubmitTime=2026-11-28T14:29:45 EligibleTime=2026-11-28T14:29:47 ArrayJobId=1 ArrayTaskId=4 DerivedExitCode=0:0 ExitCode=0:0 \nJobId=9 UserId=root(0) Name=plain JobState=TIMEOUT ExitCode=0:1 \n";
        let records = parse_jobcomp(text);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].array_job_id, "1");
        assert_eq!(records[0].index, Some(4));
        assert_eq!(records[0].state, SlurmJobState::Cancelled);
        assert_eq!(records[0].started_at, None);
        assert_eq!(records[1].array_job_id, "9");
        assert_eq!(records[1].index, None);
        assert_eq!(records[1].state, SlurmJobState::Timeout);
    }

    #[test]
    fn sacct_records() {
        let text = "123_4|COMPLETED|0:0|1795876185|1795876186\n123_4.batch|COMPLETED|0:0|1|2\n123_[5-6]|CANCELLED by 0|0:0|Unknown|1795876190\n124|OUT_OF_MEMORY|0:125|1|2\n125_7|NODE_FAIL|0:0|1|2\n";
        let records = parse_sacct(text);
        assert_eq!(records.len(), 5);
        assert_eq!(records[0].array_job_id, "123");
        assert_eq!(records[0].index, Some(4));
        assert_eq!(records[1].index, Some(5));
        assert_eq!(records[1].state, SlurmJobState::Cancelled);
        assert_eq!(records[1].started_at, None);
        assert_eq!(records[3].index, None);
        assert_eq!(
            classify_end(&records[3].state, records[3].exit),
            Some(ErrorClass::OutOfMemory)
        );
        assert_eq!(
            classify_end(&records[4].state, records[4].exit),
            Some(ErrorClass::NodeFailure)
        );
    }
}
