//! Final records of array elements, from `scontrol --oneliner show job`, `sacct --parsable2`
//! and the `jobcomp/filetxt` completion file: whichever source answers, the executor sees
//! the same [`ElementRecord`].

use super::array_indices::parse_array_indices;
use super::job_state::{SlurmExitCode, SlurmJobState};
use super::sacct_usage::{element_usage, LineUsage};
use crate::launch::ResourceUsage;
use std::collections::HashMap;

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
    /// What the element used, from sacct's MaxRSS/UserCPU/SystemCPU/TotalCPU of its steps
    /// (scontrol and jobcomp do not say).
    pub usage: Option<ResourceUsage>,
    /// Whether sacct has the final record of the element's `.batch` step: then its usage
    /// figures are complete (slurmdbd is written asynchronously, the step's record may
    /// arrive after the allocation's).
    pub steps_ended: bool,
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
        usage: None,
        steps_ended: false,
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

/// The sacct fields flow asks for, in order (`--parsable2 --noheader`, steps included).
pub const SACCT_FORMAT: &str = "JobID,State,ExitCode,Start,End,MaxRSS,UserCPU,SystemCPU,TotalCPU";

/// Records from `sacct -n -P -o SACCT_FORMAT`. `JobID` is `123` (plain job), `123_4`
/// (array element) or `123_[5-9]` (elements that never started); lines of steps
/// (`123_4.batch`, `123_4.extern`, `123_4.0`) give the element's usage: the largest MaxRSS of
/// its steps and the CPU time (see [`element_usage`]). Lines with the five first fields only
/// (an older format) are read too, without usage.
pub fn parse_sacct(output: &str) -> Vec<ElementRecord> {
    let mut records = Vec::new();
    let mut steps: HashMap<(String, Option<u32>), (Vec<LineUsage>, bool)> = HashMap::new();
    let mut allocations: Vec<LineUsage> = Vec::new();
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('|').collect();
        let [job_id, state, exit, start, end, ..] = fields.as_slice() else {
            continue;
        };
        let field = |i: usize| fields.get(i).copied().unwrap_or("");
        let usage = LineUsage::parse(field(5), field(6), field(7), field(8));
        let (element_id, step) = match job_id.split_once('.') {
            Some((element, step)) => (element, Some(step)),
            None => (*job_id, None),
        };
        let (array_job_id, indices) = match element_id.split_once('_') {
            Some((id, tasks)) => match parse_array_indices(tasks) {
                Some(indices) => (id, indices),
                None => continue,
            },
            None => (element_id, Vec::new()),
        };
        if let Some(step) = step {
            // A step of one started element (never of a `[5-9]` range).
            let key = (array_job_id.to_string(), indices.first().copied());
            let entry = steps.entry(key).or_default();
            entry.0.push(usage);
            if step == "batch" && SlurmJobState::parse(state).is_final() {
                entry.1 = true;
            }
            continue;
        }
        let base = ElementRecord {
            array_job_id: array_job_id.to_string(),
            index: None,
            state: SlurmJobState::parse(state),
            exit: SlurmExitCode::parse(exit).unwrap_or_default(),
            started_at: epoch(Some(start)),
            ended_at: epoch(Some(end)),
            reason: None,
            usage: None,
            steps_ended: false,
        };
        if indices.is_empty() {
            records.push(base);
            allocations.push(usage);
        } else {
            for i in indices {
                records.push(ElementRecord {
                    index: Some(i),
                    ..base.clone()
                });
                allocations.push(usage);
            }
        }
    }
    for (record, allocation) in records.iter_mut().zip(&allocations) {
        let key = (record.array_job_id.clone(), record.index);
        let (element_steps, ended) = steps
            .get(&key)
            .map(|(s, e)| (s.as_slice(), *e))
            .unwrap_or((&[], false));
        record.usage = element_usage(allocation, element_steps);
        record.steps_ended = ended;
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

    #[test]
    fn sacct_usage_of_steps() {
        // As sacct 22.05 prints it with jobacct_gather/linux (steps after the allocation).
        let text = "130_0|COMPLETED|0:0|10|14||00:01.200|00:00.300|00:01.500\n\
130_0.batch|COMPLETED|0:0|10|14|153772K|00:01.190|00:00.290|00:01.480\n\
130_0.extern|COMPLETED|0:0|10|14|912K|00:00.010|00:00.010|00:00.020\n\
130_1|RUNNING|0:0|10|Unknown||00:00:00|00:00:00|00:00:00\n\
130_1.batch|RUNNING|0:0|10|Unknown|||||\n\
131|COMPLETED|0:0|10|12|||||\n";
        let records = parse_sacct(text);
        assert_eq!(records.len(), 3);
        let done = &records[0];
        assert_eq!((done.array_job_id.as_str(), done.index), ("130", Some(0)));
        assert!(done.steps_ended);
        let usage = done.usage.as_ref().expect("usage");
        assert_eq!(usage.max_rss_kib, Some(153_772));
        assert!((usage.cpu_s().unwrap() - 1.5).abs() < 1e-9);
        assert_eq!(usage.source, "sacct");
        // Still running: its batch step has not ended.
        assert!(!records[1].steps_ended);
        // A plain job without steps or figures.
        assert_eq!(records[2].index, None);
        assert_eq!(records[2].usage, None);
        assert!(!records[2].steps_ended);
    }
}
