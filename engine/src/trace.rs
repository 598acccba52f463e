//! `flow trace`: one row per attempt (Nextflow's trace.txt is the model), read from the
//! state database, with what each attempt asked for (from the plan) beside what it used
//! (from the executor's measurement).
//!
//! Pure over data: [`trace_rows`] turns attempt records and the plan into rows; rendering
//! to TSV or JSON is separate. The `flow trace` command opens the database read-only.

use crate::compile::Plan;
use crate::state::AttemptRecord;
use crate::task_state::TaskState;
use flow_executors::ResourceUsage;
use serde::Serialize;
use std::collections::HashMap;

/// One attempt of one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceRow {
    pub task_id: String,
    pub step: String,
    /// Position of the task in its step.
    pub index: u64,
    /// The task's parameters as written (`{"realization": "3", ...}`).
    pub params: serde_json::Value,
    /// 1-based.
    pub attempt: u32,
    pub executor: String,
    /// The backend's id of the job (`local:PGID`, `123_4` for Slurm array element 4, a
    /// Kubernetes Job and index); `batch:KEY` while none was reported.
    pub job_id: Option<String>,
    /// `succeeded`, `failed`, `cancelled`, `running`, or `lost` (its driver stopped before
    /// it ended; the task was re-queued without counting a retry).
    pub state: String,
    pub error_class: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Unix seconds.
    pub submitted: Option<f64>,
    pub started: Option<f64>,
    pub ended: Option<f64>,
    /// `ended - started`, seconds.
    pub duration_s: Option<f64>,
    /// Peak resident set size, MiB.
    pub peak_rss_mib: Option<f64>,
    /// User + system CPU seconds of the attempt's process tree.
    pub cpu_s: Option<f64>,
    /// Where `peak_rss_mib`/`cpu_s` come from: `rusage`, `sacct`; none when not measured.
    pub usage_source: Option<String>,
    /// What the attempt asked for (after `on_retry` escalation): total cores, MiB (none:
    /// unspecified), wall-clock seconds (none: no limit).
    pub requested_cpus: Option<u32>,
    pub requested_mem_mib: Option<u64>,
    pub requested_time_s: Option<f64>,
    pub message: Option<String>,
}

/// The state of one attempt, from its record.
fn attempt_state(r: &AttemptRecord, latest: bool) -> &'static str {
    match (r.ended, r.error_class.as_deref()) {
        (None, _) if latest && r.task_state == TaskState::Running => "running",
        (None, _) => "lost",
        (Some(_), None) => "succeeded",
        (Some(_), Some("cancelled")) => "cancelled",
        (Some(_), Some(_)) => "failed",
    }
}

/// Rows of every attempt, in the order of the records (by step, task, attempt). `plan`
/// supplies the requested resources; without it (or for a step no longer in it) they are
/// left empty.
pub fn trace_rows(records: &[AttemptRecord], plan: Option<&Plan>) -> Vec<TraceRow> {
    let steps: HashMap<&str, usize> = plan
        .map(|p| {
            p.campaign
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.as_str(), i))
                .collect()
        })
        .unwrap_or_default();
    let mut latest: HashMap<&str, u32> = HashMap::new();
    for r in records {
        let e = latest.entry(r.task_id.as_str()).or_default();
        *e = (*e).max(r.attempt);
    }
    // Escalation level of each attempt: walltime/OOM failures of the earlier ones.
    let mut level: HashMap<&str, (u32, u32)> = HashMap::new();
    let mut rows = Vec::with_capacity(records.len());
    for r in records {
        let lvl = level.entry(r.task_id.as_str()).or_default();
        let escalation = *lvl;
        match r.error_class.as_deref() {
            Some("walltime") => lvl.0 += 1,
            Some("out-of-memory") => lvl.1 += 1,
            _ => {}
        }
        let requested = plan.zip(steps.get(r.step.as_str())).map(|(p, &i)| {
            crate::attempt_launch::escalated_resources(&p.campaign.steps[i], escalation)
        });
        let usage: Option<ResourceUsage> = r
            .usage
            .as_deref()
            .and_then(|u| serde_json::from_str(u).ok());
        let is_latest = latest.get(r.task_id.as_str()) == Some(&r.attempt);
        rows.push(TraceRow {
            task_id: r.task_id.clone(),
            step: r.step.clone(),
            index: r.index,
            params: serde_json::from_str(&r.params)
                .unwrap_or_else(|_| serde_json::Value::Object(Default::default())),
            attempt: r.attempt,
            executor: r.executor.clone(),
            job_id: r.job_id.clone(),
            state: attempt_state(r, is_latest).to_string(),
            error_class: r.error_class.clone(),
            exit_code: r.exit_code,
            signal: r.signal,
            submitted: r.submitted,
            started: r.started,
            ended: r.ended,
            duration_s: match (r.started, r.ended) {
                (Some(s), Some(e)) => Some((e - s).max(0.0)),
                _ => None,
            },
            peak_rss_mib: usage
                .as_ref()
                .and_then(|u| u.max_rss_kib)
                .map(|k| k as f64 / 1024.0),
            cpu_s: usage.as_ref().and_then(ResourceUsage::cpu_s),
            usage_source: usage.map(|u| u.source),
            requested_cpus: requested.as_ref().map(|q| q.total_cpus()),
            requested_mem_mib: requested
                .as_ref()
                .map(|q| q.total_mem_mb())
                .filter(|m| *m > 0),
            requested_time_s: requested
                .as_ref()
                .and_then(|q| q.time_limit)
                .map(|t| t.as_secs_f64()),
            message: r.message.clone(),
        });
    }
    rows
}

/// The TSV columns, in order.
pub const TSV_COLUMNS: &[&str] = &[
    "task_id",
    "step",
    "index",
    "params",
    "attempt",
    "executor",
    "job_id",
    "state",
    "error_class",
    "exit_code",
    "submit",
    "start",
    "end",
    "duration_s",
    "peak_rss_mib",
    "cpu_s",
    "requested_cpus",
    "requested_mem_mib",
    "requested_time_s",
];

/// A Unix time as ISO 8601 UTC with milliseconds (`2026-12-02T07:10:00.123Z`).
pub fn iso_utc(unix: f64) -> String {
    let millis = (unix * 1000.0).round() as i64;
    let (secs, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
    let (y, m, d, hh, mm, ss) = crate::time_text::civil_utc(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
}

/// A TSV field: tabs and newlines would break the table, so they become spaces; empty for
/// unknown values.
fn field(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

/// Render rows as TSV with a header line.
pub fn tsv(rows: &[TraceRow]) -> String {
    let mut out = TSV_COLUMNS.join("\t");
    out.push('\n');
    let num = |v: Option<f64>, digits: usize| v.map_or(String::new(), |v| format!("{v:.digits$}"));
    for r in rows {
        let params = match &r.params {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        let cells = [
            r.task_id.clone(),
            r.step.clone(),
            r.index.to_string(),
            params,
            r.attempt.to_string(),
            r.executor.clone(),
            r.job_id.clone().unwrap_or_default(),
            r.state.clone(),
            r.error_class.clone().unwrap_or_default(),
            r.exit_code.map_or(String::new(), |c| c.to_string()),
            r.submitted.map(iso_utc).unwrap_or_default(),
            r.started.map(iso_utc).unwrap_or_default(),
            r.ended.map(iso_utc).unwrap_or_default(),
            num(r.duration_s, 3),
            num(r.peak_rss_mib, 1),
            num(r.cpu_s, 3),
            r.requested_cpus.map_or(String::new(), |c| c.to_string()),
            r.requested_mem_mib.map_or(String::new(), |c| c.to_string()),
            num(r.requested_time_s, 0),
        ];
        let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
        out.push_str(&line.join("\t"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(task: &str, attempt: u32, class: Option<&str>, ended: Option<f64>) -> AttemptRecord {
        AttemptRecord {
            task_id: task.into(),
            step: "s".into(),
            index: 0,
            params: r#"{"x":"1"}"#.into(),
            task_state: TaskState::Succeeded,
            attempt,
            executor: "local".into(),
            job_id: Some("local:12".into()),
            submitted: Some(10.0),
            started: Some(11.0),
            ended,
            exit_code: Some(if class.is_some() { 1 } else { 0 }),
            signal: None,
            error_class: class.map(str::to_string),
            message: None,
            details: None,
            usage: Some(
                r#"{"max_rss_kib":2048,"user_cpu_s":1.5,"system_cpu_s":0.5,"source":"rusage"}"#
                    .into(),
            ),
        }
    }

    #[test]
    fn rows_carry_state_duration_and_usage() {
        let records = [
            record("a", 1, Some("nonzero-exit"), Some(12.0)),
            record("a", 2, None, Some(14.5)),
            record("b", 1, None, None),
        ];
        let rows = trace_rows(&records, None);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].state, "failed");
        assert_eq!(rows[1].state, "succeeded");
        assert_eq!(rows[1].duration_s, Some(3.5));
        assert_eq!(rows[1].peak_rss_mib, Some(2.0));
        assert_eq!(rows[1].cpu_s, Some(2.0));
        // Not ended and its task is not running: its driver lost it.
        assert_eq!(rows[2].state, "lost");
        let text = tsv(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].split('\t').count(), TSV_COLUMNS.len());
        assert!(lines[2].contains("\tx=1\t"), "{}", lines[2]);
        assert!(
            lines[2].contains("1970-01-01T00:00:11.000Z"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(1_795_000_000.25), "2026-11-18T11:06:40.250Z");
    }
}
