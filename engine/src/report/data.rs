//! What the report shows, gathered from the state database (read-only) and files under the
//! campaign directory (stderr logs of failed attempts). Plain data: [`super::html`] renders
//! it, tests inspect it.

use crate::compile::Plan;
use crate::layout::Layout;
use crate::state::{AttemptRecord, StateStore, TaskRow};
use crate::task_state::TaskState;
use crate::trace::{trace_rows, TraceRow};
use std::collections::{BTreeMap, HashMap};

/// At most this many attempts are drawn one by one in the timeline; above it the timeline
/// shows, per step, how many attempts ran in each of [`TIMELINE_BINS`] time bins.
pub const MAX_TIMELINE_BARS: usize = 1500;
/// Time bins of the aggregated timeline.
pub const TIMELINE_BINS: usize = 200;
/// Bins of each duration histogram.
pub const DURATION_BINS: usize = 24;
/// Failed attempts quoted (with their first stderr lines) per step and error class.
pub const EXAMPLES_PER_CLASS: usize = 3;
/// First lines of stderr quoted per example.
pub const STDERR_LINES: usize = 6;
/// Rows of the qe-scf structures table.
pub const MAX_QE_ROWS: usize = 200;

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub campaign: String,
    pub version: String,
    pub directory: String,
    pub machine: String,
    pub executor: String,
    pub generated_at: f64,
    /// Driver lease: (host, pid, heartbeat age s) when one is alive.
    pub driver: Option<(String, i64, f64)>,
    pub steps: Vec<StepReport>,
    pub timeline: Timeline,
    pub total_attempts: usize,
    /// Things a person should know once (scheduler refusals and how flow adapted).
    pub notes: Vec<String>,
}

/// One step.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub name: String,
    pub kind: String,
    pub needs: Vec<String>,
    pub total: u64,
    /// Tasks by state (`pending`, `running`, `succeeded`, `failed`, `blocked`, `cancelled`).
    pub counts: BTreeMap<String, u64>,
    pub attempts: u64,
    /// Attempts after the first, over all tasks.
    pub retries: u64,
    pub durations: DurationStats,
    pub failures: Vec<ClassFailures>,
    pub resources: ResourceSummary,
    /// A message that blocked the step's tasks (gate, failed upstream), if any.
    pub blocked_reason: Option<String>,
    pub benchmark: Option<serde_json::Value>,
    pub qe: Option<QeSummary>,
    pub info: Option<serde_json::Value>,
}

/// Durations of ended attempts.
#[derive(Debug, Clone, Default)]
pub struct DurationStats {
    pub count: usize,
    pub min: f64,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
    /// Histogram over [0, max]: (succeeded, failed) per bin.
    pub bins: Vec<(u64, u64)>,
}

/// Failed attempts of one error class.
#[derive(Debug, Clone)]
pub struct ClassFailures {
    pub class: String,
    pub attempts: u64,
    /// Tasks whose final state is failed with this class.
    pub final_tasks: u64,
    pub examples: Vec<FailureExample>,
}

#[derive(Debug, Clone)]
pub struct FailureExample {
    pub task_id: String,
    pub attempt: u32,
    pub message: String,
    pub stderr_head: Vec<String>,
}

/// Measured use against what was asked.
#[derive(Debug, Clone, Default)]
pub struct ResourceSummary {
    pub requested_cpus: Option<u32>,
    pub requested_mem_mib: Option<u64>,
    pub requested_time_s: Option<f64>,
    /// Attempts with measurements.
    pub measured: usize,
    pub peak_rss_median_mib: Option<f64>,
    pub peak_rss_max_mib: Option<f64>,
    pub cpu_median_s: Option<f64>,
    /// Median of cpu time / (duration × requested cores).
    pub cpu_efficiency_median: Option<f64>,
    pub duration_max_s: Option<f64>,
    /// Advice on `mem:`/`time:` in words.
    pub advice: Vec<String>,
}

/// qe-scf results.
#[derive(Debug, Clone, Default)]
pub struct QeSummary {
    pub converged: u64,
    pub unphysical: u64,
    /// Failed for good, by class (unphysical included).
    pub failed_by_class: BTreeMap<String, u64>,
    pub energy_min_ev: Option<f64>,
    pub energy_max_ev: Option<f64>,
    pub energy_per_atom_min_ev: Option<f64>,
    pub energy_per_atom_max_ev: Option<f64>,
    pub rows: Vec<QeRow>,
}

#[derive(Debug, Clone)]
pub struct QeRow {
    pub structure: String,
    pub formula: String,
    pub atoms: usize,
    pub energy_ev: f64,
    pub max_force_ev_per_ang: f64,
    pub wall_s: f64,
    pub attempts: usize,
}

/// The Gantt chart's content.
#[derive(Debug, Clone)]
pub enum Timeline {
    Empty,
    /// Every attempt: step (index into steps), lane within the step, submit, start, end,
    /// state, task id and attempt.
    Bars {
        t0: f64,
        t1: f64,
        lanes: Vec<usize>,
        bars: Vec<Bar>,
    },
    /// Per step, attempts running in each time bin (mean concurrency) and failures that
    /// ended in it.
    Binned {
        t0: f64,
        t1: f64,
        running: Vec<Vec<f64>>,
        failed: Vec<Vec<u64>>,
    },
}

#[derive(Debug, Clone)]
pub struct Bar {
    pub step: usize,
    pub lane: usize,
    pub submitted: f64,
    pub started: f64,
    pub ended: f64,
    pub state: String,
    pub label: String,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(quantile(&values, 0.5))
}

/// The first non-empty lines of an attempt's stderr (at most [`STDERR_LINES`], each cut at
/// 300 characters); empty when there is no log.
pub fn stderr_head(
    layout: &Layout,
    step: &str,
    index: u64,
    task: &str,
    attempt: u32,
) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let (_, err) = layout.log_files(step, index, task, attempt);
    let Ok(file) = std::fs::File::open(err) else {
        return Vec::new();
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.trim().is_empty())
        .take(STDERR_LINES)
        .map(|l| l.chars().take(300).collect())
        .collect()
}

fn durations(rows: &[&TraceRow]) -> DurationStats {
    let ended: Vec<(f64, bool)> = rows
        .iter()
        .filter_map(|r| r.duration_s.map(|d| (d, r.state == "succeeded")))
        .collect();
    if ended.is_empty() {
        return DurationStats::default();
    }
    let mut sorted: Vec<f64> = ended.iter().map(|(d, _)| *d).collect();
    sorted.sort_by(f64::total_cmp);
    let max = *sorted.last().unwrap_or(&0.0);
    let mut bins = vec![(0u64, 0u64); DURATION_BINS];
    for (d, ok) in &ended {
        let b = if max > 0.0 {
            ((d / max) * DURATION_BINS as f64).floor() as usize
        } else {
            0
        }
        .min(DURATION_BINS - 1);
        if *ok {
            bins[b].0 += 1;
        } else {
            bins[b].1 += 1;
        }
    }
    DurationStats {
        count: sorted.len(),
        min: sorted[0],
        median: quantile(&sorted, 0.5),
        p95: quantile(&sorted, 0.95),
        max,
        bins,
    }
}

fn resources(rows: &[&TraceRow], first: Option<&TraceRow>) -> ResourceSummary {
    let mut s = ResourceSummary {
        requested_cpus: first.and_then(|r| r.requested_cpus),
        requested_mem_mib: first.and_then(|r| r.requested_mem_mib),
        requested_time_s: first.and_then(|r| r.requested_time_s),
        ..ResourceSummary::default()
    };
    let measured: Vec<&&TraceRow> = rows
        .iter()
        .filter(|r| r.peak_rss_mib.is_some() || r.cpu_s.is_some())
        .collect();
    s.measured = measured.len();
    let rss: Vec<f64> = measured.iter().filter_map(|r| r.peak_rss_mib).collect();
    s.peak_rss_max_mib = rss.iter().copied().reduce(f64::max);
    s.peak_rss_median_mib = median(rss);
    s.cpu_median_s = median(measured.iter().filter_map(|r| r.cpu_s).collect());
    s.cpu_efficiency_median = median(
        measured
            .iter()
            .filter_map(|r| {
                let (cpu, d, n) = (r.cpu_s?, r.duration_s?, r.requested_cpus?);
                (d > 0.0).then(|| cpu / (d * n.max(1) as f64))
            })
            .collect(),
    );
    s.duration_max_s = rows
        .iter()
        .filter(|r| r.state == "succeeded")
        .filter_map(|r| r.duration_s)
        .reduce(f64::max);
    if let (Some(peak), Some(asked)) = (s.peak_rss_max_mib, s.requested_mem_mib) {
        let suggest = ((peak * 1.25) / 64.0).ceil() * 64.0;
        if peak > asked as f64 {
            s.advice.push(format!(
                "peak memory {peak:.0} MiB is above the {asked} MiB requested: set mem: {suggest:.0}M"
            ));
        } else if peak * 3.0 < asked as f64 && asked > 256 {
            s.advice.push(format!(
                "peak memory {peak:.0} MiB is under a third of the {asked} MiB requested: mem: {suggest:.0}M would do"
            ));
        }
    }
    if let (Some(longest), Some(limit)) = (s.duration_max_s, s.requested_time_s) {
        if longest * 4.0 < limit && limit > 600.0 {
            let suggest = (longest * 2.0 / 60.0).ceil().max(1.0);
            s.advice.push(format!(
                "the longest successful attempt took {longest:.0} s of {limit:.0} s allowed: time: {suggest:.0}m would do"
            ));
        }
    }
    if let Some(eff) = s.cpu_efficiency_median {
        if eff < 0.5 && s.requested_cpus.unwrap_or(1) > 1 {
            s.advice.push(format!(
                "median CPU use is {:.0}% of the {} cores requested: fewer cores would do",
                eff * 100.0,
                s.requested_cpus.unwrap_or(1)
            ));
        }
    }
    s
}

fn failures(
    layout: &Layout,
    rows: &[&TraceRow],
    tasks: &HashMap<String, TaskRow>,
) -> Vec<ClassFailures> {
    let mut by_class: BTreeMap<String, ClassFailures> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.state == "failed") {
        let class = r.error_class.clone().unwrap_or_else(|| "unknown".into());
        let entry = by_class
            .entry(class.clone())
            .or_insert_with(|| ClassFailures {
                class,
                attempts: 0,
                final_tasks: 0,
                examples: Vec::new(),
            });
        entry.attempts += 1;
        if entry.examples.len() < EXAMPLES_PER_CLASS {
            entry.examples.push(FailureExample {
                task_id: r.task_id.clone(),
                attempt: r.attempt,
                message: r.message.clone().unwrap_or_default(),
                stderr_head: stderr_head(layout, &r.step, r.index, &r.task_id, r.attempt),
            });
        }
    }
    let step = rows.first().map(|r| r.step.as_str()).unwrap_or_default();
    for t in tasks
        .values()
        .filter(|t| t.step == step && t.state == TaskState::Failed)
    {
        let class = t.error_class.clone().unwrap_or_else(|| "unknown".into());
        if let Some(c) = by_class.get_mut(&class) {
            c.final_tasks += 1;
        }
    }
    let mut out: Vec<ClassFailures> = by_class.into_values().collect();
    out.sort_by(|a, b| b.attempts.cmp(&a.attempts).then(a.class.cmp(&b.class)));
    out
}

fn qe_summary(
    step: &str,
    records: &[&AttemptRecord],
    tasks: &HashMap<String, TaskRow>,
) -> QeSummary {
    let mut q = QeSummary::default();
    let mut attempts: HashMap<&str, usize> = HashMap::new();
    for r in records {
        *attempts.entry(r.task_id.as_str()).or_default() += 1;
    }
    for t in tasks.values().filter(|t| t.step == step) {
        match t.state {
            TaskState::Succeeded => q.converged += 1,
            TaskState::Failed => {
                let class = t.error_class.clone().unwrap_or_else(|| "unknown".into());
                if class == "unphysical" {
                    q.unphysical += 1;
                }
                *q.failed_by_class.entry(class).or_default() += 1;
            }
            _ => {}
        }
    }
    for r in records.iter().filter(|r| {
        r.error_class.is_none()
            && r.ended.is_some()
            && tasks
                .get(&r.task_id)
                .is_some_and(|t| t.state == TaskState::Succeeded && t.attempts == r.attempt)
    }) {
        let Some(result) = r
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|d| d.get("result").cloned())
        else {
            continue;
        };
        let Some(energy) = result.get("energy_ev").and_then(|v| v.as_f64()) else {
            continue;
        };
        let atoms = result
            .get("symbols")
            .and_then(|v| v.as_array())
            .map_or(0, Vec::len);
        let max_force = result
            .get("forces_ev_per_ang")
            .and_then(|v| v.as_array())
            .map(|forces| {
                forces
                    .iter()
                    .filter_map(|f| f.as_array())
                    .map(|f| {
                        f.iter()
                            .filter_map(|c| c.as_f64())
                            .map(|c| c * c)
                            .sum::<f64>()
                            .sqrt()
                    })
                    .fold(0.0, f64::max)
            })
            .unwrap_or(0.0);
        let min_max = |cur: &mut Option<f64>, v: f64, pick: fn(f64, f64) -> f64| {
            *cur = Some(cur.map_or(v, |c| pick(c, v)));
        };
        min_max(&mut q.energy_min_ev, energy, f64::min);
        min_max(&mut q.energy_max_ev, energy, f64::max);
        if atoms > 0 {
            let per = energy / atoms as f64;
            min_max(&mut q.energy_per_atom_min_ev, per, f64::min);
            min_max(&mut q.energy_per_atom_max_ev, per, f64::max);
        }
        if q.rows.len() < MAX_QE_ROWS {
            q.rows.push(QeRow {
                structure: result
                    .get("structure")
                    .and_then(|v| v.as_str())
                    .unwrap_or(&r.task_id)
                    .to_string(),
                formula: result
                    .get("formula")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string(),
                atoms,
                energy_ev: energy,
                max_force_ev_per_ang: max_force,
                wall_s: result
                    .get("wall_seconds")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0),
                attempts: attempts.get(r.task_id.as_str()).copied().unwrap_or(1),
            });
        }
    }
    q.rows.sort_by(|a, b| a.structure.cmp(&b.structure));
    q
}

fn timeline(
    rows: &[TraceRow],
    step_of: &HashMap<&str, usize>,
    n_steps: usize,
    now: f64,
) -> Timeline {
    let spans: Vec<(usize, f64, f64, f64, &TraceRow)> = rows
        .iter()
        .filter_map(|r| {
            let step = *step_of.get(r.step.as_str())?;
            let started = r.started.or(r.submitted)?;
            let submitted = r.submitted.unwrap_or(started).min(started);
            let ended = r
                .ended
                .unwrap_or(if r.state == "running" { now } else { started });
            Some((step, submitted, started, ended.max(started), r))
        })
        .collect();
    if spans.is_empty() {
        return Timeline::Empty;
    }
    let t0 = spans.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
    let t1 = spans
        .iter()
        .map(|s| s.3)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(t0 + 1e-3);
    if spans.len() <= MAX_TIMELINE_BARS {
        // Greedy lanes per step: an attempt takes the first lane free at its submission.
        let mut lane_ends: Vec<Vec<f64>> = vec![Vec::new(); n_steps];
        let mut ordered = spans.clone();
        ordered.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut bars = Vec::with_capacity(ordered.len());
        for (step, submitted, started, ended, r) in ordered {
            let ends = &mut lane_ends[step];
            let lane = match ends.iter().position(|&e| e <= submitted) {
                Some(l) => l,
                None => {
                    ends.push(0.0);
                    ends.len() - 1
                }
            };
            ends[lane] = ended;
            bars.push(Bar {
                step,
                lane,
                submitted,
                started,
                ended,
                state: r.state.clone(),
                label: format!("{} attempt {}", r.task_id, r.attempt),
            });
        }
        let lanes = lane_ends.iter().map(|l| l.len()).collect();
        return Timeline::Bars {
            t0,
            t1,
            lanes,
            bars,
        };
    }
    let width = (t1 - t0) / TIMELINE_BINS as f64;
    let mut running = vec![vec![0.0; TIMELINE_BINS]; n_steps];
    let mut failed = vec![vec![0u64; TIMELINE_BINS]; n_steps];
    for (step, _, started, ended, r) in &spans {
        // Time-weighted: each bin gets the fraction of its width the attempt ran.
        let first = (((started - t0) / width).floor() as usize).min(TIMELINE_BINS - 1);
        let last = (((ended - t0) / width).floor() as usize).min(TIMELINE_BINS - 1);
        for (b, slot) in running[*step]
            .iter_mut()
            .enumerate()
            .take(last + 1)
            .skip(first)
        {
            let lo = t0 + b as f64 * width;
            let hi = lo + width;
            let overlap = (ended.min(hi) - started.max(lo)).max(0.0);
            *slot += overlap / width;
        }
        if r.state == "failed" {
            failed[*step][last] += 1;
        }
    }
    Timeline::Binned {
        t0,
        t1,
        running,
        failed,
    }
}

/// Gather the report of a campaign.
pub fn collect(
    plan: &Plan,
    layout: &Layout,
    store: &StateStore,
    now: f64,
) -> anyhow::Result<ReportData> {
    let campaign = plan.campaign;
    let records = store.attempt_records()?;
    let tasks = store.load_tasks()?;
    let info = store.step_info().unwrap_or_default();
    let rows = trace_rows(&records, Some(plan));
    let step_of: HashMap<&str, usize> = plan
        .order
        .iter()
        .enumerate()
        .map(|(pos, &i)| (campaign.steps[i].name.as_str(), pos))
        .collect();
    let mut by_step: Vec<Vec<&TraceRow>> = vec![Vec::new(); plan.order.len()];
    let mut records_by_step: Vec<Vec<&AttemptRecord>> = vec![Vec::new(); plan.order.len()];
    for (r, rec) in rows.iter().zip(&records) {
        if let Some(&pos) = step_of.get(r.step.as_str()) {
            by_step[pos].push(r);
            records_by_step[pos].push(rec);
        }
    }
    let mut steps = Vec::with_capacity(plan.order.len());
    for (pos, &i) in plan.order.iter().enumerate() {
        let step = &campaign.steps[i];
        let planned = &plan.steps[i];
        let mut counts: BTreeMap<String, u64> = TaskState::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        let mut in_db = 0;
        let mut blocked_reason = None;
        for t in tasks.values().filter(|t| t.step == step.name) {
            in_db += 1;
            *counts.entry(t.state.as_str().to_string()).or_default() += 1;
            if t.state == TaskState::Blocked && blocked_reason.is_none() {
                blocked_reason = t.message.clone();
            }
        }
        *counts.entry("pending".into()).or_default() += planned.task_count.saturating_sub(in_db);
        let step_rows = &by_step[pos];
        let attempts = step_rows.len() as u64;
        let mut tasks_seen: HashMap<&str, ()> = HashMap::new();
        for r in step_rows {
            tasks_seen.insert(r.task_id.as_str(), ());
        }
        let first_attempt = step_rows.iter().find(|r| r.attempt == 1).copied();
        let benchmark = records_by_step[pos]
            .iter()
            .rev()
            .filter_map(|r| r.details.as_deref())
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .find_map(|d| d.get("benchmark").cloned());
        let qe = (step.kind == flow_dsl::model::StepKind::QeScf)
            .then(|| qe_summary(&step.name, &records_by_step[pos], &tasks));
        steps.push(StepReport {
            name: step.name.clone(),
            kind: step.kind.as_str().to_string(),
            needs: step.needs.iter().map(|(n, _)| n.clone()).collect(),
            total: planned.task_count,
            counts,
            attempts,
            retries: attempts.saturating_sub(tasks_seen.len() as u64),
            durations: durations(step_rows),
            failures: failures(layout, step_rows, &tasks),
            resources: resources(step_rows, first_attempt),
            blocked_reason,
            benchmark,
            qe,
            info: info.get(&step.name).cloned(),
        });
    }
    let mut notes = Vec::new();
    for (_, _, detail) in store.events_of_kind("submit-limit").unwrap_or_default() {
        if !notes.contains(&detail) {
            notes.push(detail);
        }
    }
    let timeline = timeline(&rows, &step_of, plan.order.len(), now);
    let driver = store
        .live_lease(&crate::state::hostname(), now)
        .ok()
        .flatten()
        .map(|(h, p, beat)| (h, p, now - beat));
    Ok(ReportData {
        campaign: campaign.name.clone(),
        version: campaign.version.clone(),
        directory: campaign.campaign_dir.display().to_string(),
        machine: campaign.machine.name.clone(),
        executor: plan.executor.as_str().to_string(),
        generated_at: now,
        driver,
        steps,
        timeline,
        total_attempts: rows.len(),
        notes,
    })
}
