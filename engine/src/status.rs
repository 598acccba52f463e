//! `flow status`: what the state and the disk say, told truthfully.
//!
//! - `succeeded` counts tasks whose success was recorded and whose outputs are still there
//!   and valid (`freshness::check_output`); a recorded success whose output is gone counts
//!   as `output-missing` (the next `flow run` redoes it);
//! - `running` are attempts the executor started, `queued` those handed to it and not
//!   started; when the driver is dead (its pid gone on this host, or no heartbeat), neither
//!   is true and they count as `interrupted`;
//! - each blocked task says by what (a failed upstream step, a gate, a cancel);
//! - elapsed time and an ETA come from the attempts' recorded times.

use crate::compile::Plan;
use crate::freshness::{check_output, OutputCheck, RunReason, Verdict};
use crate::layout::Layout;
use crate::state::{StateStore, TaskRow};
use crate::step_kind::md_benchmark::GateRecord;
use crate::task_state::TaskState;
use std::collections::BTreeMap;

/// Whether a driver runs the campaign.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverState {
    /// Never ran, or the last driver ended cleanly.
    NotRunning,
    /// Alive: on this host its pid runs; elsewhere its heartbeat is fresh.
    Running {
        host: String,
        pid: i64,
        heartbeat_age_s: f64,
    },
    /// It left its lease behind: the pid is gone on this host, or silent elsewhere.
    Dead {
        host: String,
        pid: i64,
        heartbeat_age_s: f64,
    },
}

impl DriverState {
    pub fn alive(&self) -> bool {
        matches!(self, DriverState::Running { .. })
    }

    fn json(&self) -> serde_json::Value {
        match self {
            DriverState::NotRunning => serde_json::Value::Null,
            DriverState::Running {
                host,
                pid,
                heartbeat_age_s,
            } => {
                serde_json::json!({"host": host, "pid": pid, "heartbeat_age_s": heartbeat_age_s, "alive": true})
            }
            DriverState::Dead {
                host,
                pid,
                heartbeat_age_s,
            } => {
                serde_json::json!({"host": host, "pid": pid, "heartbeat_age_s": heartbeat_age_s, "alive": false})
            }
        }
    }

    fn text(&self) -> String {
        match self {
            DriverState::NotRunning => "driver: not running".into(),
            DriverState::Running {
                host,
                pid,
                heartbeat_age_s,
            } => format!("driver: pid {pid} on {host}, running (last heartbeat {heartbeat_age_s:.0} s ago)"),
            DriverState::Dead {
                host,
                pid,
                heartbeat_age_s,
            } => format!(
                "driver: DEAD — pid {pid} on {host} is gone (last heartbeat {heartbeat_age_s:.0} s ago); nothing watches its attempts: `flow run` recovers them"
            ),
        }
    }
}

/// The driver's state from the lease in the database and the lock in the campaign
/// directory.
pub fn driver_state(store: &StateStore, layout: &Layout, now: f64) -> DriverState {
    let host = crate::state::hostname();
    let lease = store.lease().ok().flatten().or_else(|| {
        crate::campaign_lock::read(&layout.driver_lock())
            .map(|h| (h.host, h.pid as i64, h.heartbeat))
    });
    let Some((h, pid, beat)) = lease else {
        return DriverState::NotRunning;
    };
    let age = now - beat;
    if crate::state::driver_alive(&h, pid as u32, beat, &host, now) {
        DriverState::Running {
            host: h,
            pid,
            heartbeat_age_s: age,
        }
    } else {
        DriverState::Dead {
            host: h,
            pid,
            heartbeat_age_s: age,
        }
    }
}

/// The status document (`flow status --output json`) and its text rendering.
pub fn report(
    plan: &Plan,
    layout: &Layout,
    store: &StateStore,
    now: f64,
) -> Result<(serde_json::Value, String), String> {
    let campaign = plan.campaign;
    let rows = store.load_tasks().map_err(|e| e.to_string())?;
    let details = store.success_details().map_err(|e| e.to_string())?;
    let info = store.step_info().unwrap_or_default();
    let timing = store.step_timing().unwrap_or_default();
    let driver = driver_state(store, layout, now);
    // What plan would say of each task: a success whose output changed, or whose upstream
    // changed, is not counted done here either.
    let fresh = crate::freshness::assess(plan, &rows, &details, false);
    // A dead driver's attempts may outlive it: on this machine, look for their processes.
    let orphans: std::collections::HashSet<String> = match &driver {
        DriverState::Dead { host, .. } if *host == crate::state::hostname() => {
            crate::recovery::local_task_processes()
                .into_keys()
                .map(|(task, _)| task)
                .collect()
        }
        _ => Default::default(),
    };
    let mut text = format!(
        "campaign {} {} ({})\n{}\n",
        campaign.name,
        campaign.version,
        campaign.campaign_dir.display(),
        driver.text()
    );
    if let DriverState::Dead { .. } = &driver {
        let left: Vec<&TaskRow> = rows
            .values()
            .filter(|r| r.state == TaskState::Running)
            .collect();
        let here = left.iter().filter(|r| orphans.contains(&r.id)).count();
        if !left.is_empty() {
            text.push_str(&match plan.executor {
                flow_dsl::model::ExecutorKind::Local => format!(
                    "  {} attempt(s) were running when it died; {here} still run on this machine (orphaned): `flow run` stops them and ingests what finished\n",
                    left.len()
                ),
                other => format!(
                    "  {} attempt(s) were running when it died; their {} jobs may still run: `flow run` adopts them\n",
                    left.len(),
                    other.as_str()
                ),
            });
        }
    }
    // adaptive: the evaluations asked so far are tasks of their step (registered in the plan).
    let _ = crate::adaptive_step::AdaptiveSteps::load(plan, store);
    let mut steps_json = Vec::new();
    let mut campaign_first = f64::MAX;
    let mut campaign_last: f64 = 0.0;
    for &i in &plan.order {
        let step = &campaign.steps[i];
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut failures: Vec<&TaskRow> = Vec::new();
        let mut blocked_by: BTreeMap<String, u64> = BTreeMap::new();
        let mut gate: Option<serde_json::Value> = None;
        let mut missing_examples: Vec<String> = Vec::new();
        let grouped = step.array.as_ref().is_some_and(|a| a.params.len() > 1);
        let mut groups: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        let total = plan.task_total(i);
        for (k, t) in plan.tasks(i).enumerate() {
            let row = rows.get(&t.id);
            let verdict = fresh.verdicts.get(i).and_then(|v| v.get(k));
            let label: &'static str = match row {
                None => "pending",
                Some(r) => match r.state {
                    TaskState::Succeeded => {
                        let d = details
                            .get(&t.id)
                            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok());
                        if let Some(g) = GateRecord::of_details(d.as_ref()) {
                            gate = Some(serde_json::json!({
                                "task": t.id,
                                "action": g.action,
                                "message": g.message,
                                "verdict": d.as_ref().and_then(|d| d.pointer("/benchmark/verdict")),
                            }));
                        }
                        let mut missing = |m: String| {
                            if missing_examples.len() < 5 {
                                missing_examples.push(format!("{}: {m}", t.id));
                            }
                            "output-missing"
                        };
                        // The plan's verdict already checked the output; only a verdict
                        // that does not say (blocked by upstream) checks it here.
                        match verdict {
                            Some(Verdict::Done { .. }) => "succeeded",
                            Some(Verdict::Run(
                                RunReason::UpstreamChanged
                                | RunReason::SettingsChanged
                                | RunReason::EnvironmentRebuilt,
                                _,
                            )) => "stale",
                            Some(Verdict::Run(
                                RunReason::OutputMissing | RunReason::OutputInvalid,
                                m,
                            )) => missing(m.clone()),
                            _ => match check_output(
                                plan,
                                i,
                                t.index,
                                r.product.as_deref(),
                                d.as_ref(),
                                false,
                            ) {
                                OutputCheck::Missing(m) | OutputCheck::Invalid(m) => missing(m),
                                _ => "succeeded",
                            },
                        }
                    }
                    TaskState::Running if !driver.alive() && orphans.contains(&r.id) => "orphaned",
                    TaskState::Running if !driver.alive() => "interrupted",
                    TaskState::Running if r.started.is_some() => "running",
                    TaskState::Running => "queued",
                    TaskState::Pending => "pending",
                    TaskState::Failed => {
                        failures.push(r);
                        "failed"
                    }
                    TaskState::Blocked => {
                        *blocked_by
                            .entry(r.message.clone().unwrap_or_else(|| "blocked".into()))
                            .or_default() += 1;
                        "blocked"
                    }
                    TaskState::Cancelled => "cancelled",
                },
            };
            if let Some(r) = row {
                if r.state == TaskState::Pending && r.error_class.is_some() {
                    failures.push(r);
                }
            }
            *counts.entry(label).or_default() += 1;
            if grouped {
                let key = t
                    .params
                    .first()
                    .map(|(_, v)| v.text.clone())
                    .unwrap_or_default();
                let g = groups.entry(key).or_default();
                g.0 += 1;
                g.1 += u64::from(label == "succeeded");
                g.2 += u64::from(label == "failed");
            }
        }
        let done = counts.get("succeeded").copied().unwrap_or(0);
        let finals: u64 = ["succeeded", "failed", "blocked", "cancelled"]
            .iter()
            .map(|k| counts.get(k).copied().unwrap_or(0))
            .sum();
        let tm = timing.get(&step.name).cloned().unwrap_or_default();
        let running = counts.get("running").copied().unwrap_or(0);
        let elapsed = tm.first_start.map(|f| {
            let end = if driver.alive() {
                now
            } else {
                tm.last_end.unwrap_or(now)
            };
            (end - f).max(0.0)
        });
        if let Some(f) = tm.first_start {
            campaign_first = campaign_first.min(f);
        }
        if let Some(l) = tm.last_end {
            campaign_last = campaign_last.max(l);
        }
        let remaining = total.saturating_sub(finals);
        let eta = match (driver.alive(), tm.mean_success_s) {
            (true, Some(mean)) if remaining > 0 => {
                Some(mean * remaining as f64 / running.max(1) as f64)
            }
            _ => None,
        };
        let line: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        text.push_str(&format!(
            "\n{} [{}] {done}/{total} succeeded: {}{}\n",
            step.name,
            step.kind.as_str(),
            line.join(", "),
            match (elapsed, eta) {
                (Some(e), Some(eta)) =>
                    format!(" (elapsed {}, ETA {})", duration(e), duration(eta)),
                (Some(e), None) => format!(" (elapsed {})", duration(e)),
                _ => String::new(),
            }
        ));
        if grouped {
            text.push_str(&group_line(step, &groups));
        }
        for m in &missing_examples {
            text.push_str(&format!("  output missing: {m}\n"));
        }
        for (reason, n) in &blocked_by {
            text.push_str(&format!("  {n} blocked: {reason}\n"));
        }
        if let Some(g) = &gate {
            let action = g.get("action").and_then(|a| a.as_str()).unwrap_or("");
            let message = g.get("message").and_then(|a| a.as_str()).unwrap_or("");
            if action == "stop" {
                text.push_str(&format!("  gate stopped dependents: {message}\n"));
            } else if !message.is_empty() {
                text.push_str(&format!("  gate: {action}: {message}\n"));
            }
        }
        if let Some(bench) = info.get(&step.name).and_then(|v| v.get("benchmark")) {
            text.push_str(&format!("  benchmark: {bench}\n"));
        }
        let adaptive = crate::adaptive_step::status_summary(store, step);
        if let Some(a) = &adaptive {
            text.push_str(&crate::adaptive_step::status_line(a));
        }
        if let Some(line) = crate::step_kind::qe_scf::results_line(layout, step) {
            text.push_str(&line);
        }
        for f in failures.iter().take(10) {
            let stderr_head = last_stderr(layout, &step.name, f);
            text.push_str(&format!(
                "  {} {} (attempt {}): {}: {}{}\n",
                if f.state == TaskState::Failed {
                    "failed"
                } else {
                    "retrying"
                },
                f.id,
                f.attempts,
                f.error_class.clone().unwrap_or_default(),
                f.message.clone().unwrap_or_default(),
                stderr_head
                    .map(|s| format!("\n      stderr: {s}"))
                    .unwrap_or_default()
            ));
        }
        if failures.len() > 10 {
            text.push_str(&format!("  ... {} more\n", failures.len() - 10));
        }
        steps_json.push(serde_json::json!({
            "name": step.name, "kind": step.kind.as_str(), "total": total, "counts": counts,
            "failures": failures.iter().map(|f| serde_json::json!({"task": f.id, "state": f.state.as_str(), "attempts": f.attempts, "error_class": f.error_class, "message": f.message})).collect::<Vec<_>>(),
            "blocked_by": blocked_by,
            "gate": gate,
            "elapsed_s": elapsed,
            "eta_s": eta,
            "info": info.get(&step.name),
            "adaptive": adaptive,
        }));
    }
    let elapsed = (campaign_first < f64::MAX).then(|| {
        let end = if driver.alive() {
            now
        } else {
            campaign_last.max(campaign_first)
        };
        (end - campaign_first).max(0.0)
    });
    if let Some(e) = elapsed {
        text.push_str(&format!("\nelapsed {}\n", duration(e)));
    }
    // What the executor said once (a scheduler's submit limit and how flow adapted).
    let mut notes: Vec<String> = Vec::new();
    for (_, _, detail) in store.events_of_kind("submit-limit").unwrap_or_default() {
        if !notes.contains(&detail) {
            text.push_str(&format!("\nnote: {detail}\n"));
            notes.push(detail);
        }
    }
    let doc = serde_json::json!({
        "campaign": {"name": campaign.name, "version": campaign.version, "directory": campaign.campaign_dir.display().to_string()},
        "driver": driver.json(),
        "elapsed_s": elapsed,
        "steps": steps_json,
        "notes": notes,
    });
    Ok((doc, text))
}

fn group_line(step: &flow_dsl::model::Step, groups: &BTreeMap<String, (u64, u64, u64)>) -> String {
    let name = step
        .array
        .as_ref()
        .and_then(|a| a.params.first())
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    let mut incomplete: Vec<(&String, &(u64, u64, u64))> =
        groups.iter().filter(|(_, g)| g.1 < g.0).collect();
    incomplete.sort_by_key(|(k, _)| k.parse::<i64>().unwrap_or(i64::MAX));
    let complete = groups.len() - incomplete.len();
    let shown: Vec<String> = incomplete
        .iter()
        .take(8)
        .map(|(k, g)| {
            format!(
                "{k} ({}/{} done{})",
                g.1,
                g.0,
                if g.2 > 0 {
                    format!(", {} failed", g.2)
                } else {
                    String::new()
                }
            )
        })
        .collect();
    format!(
        "  by {name}: {complete} of {} complete{}{}\n",
        groups.len(),
        if shown.is_empty() {
            String::new()
        } else {
            format!("; incomplete: {}", shown.join(", "))
        },
        if incomplete.len() > 8 {
            format!(" and {} more", incomplete.len() - 8)
        } else {
            String::new()
        }
    )
}

/// `1h 02m`, `3m 05s`, `12s`.
pub fn duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The last lines of an attempt's stderr (for failures in status).
pub fn last_stderr(layout: &Layout, step: &str, row: &TaskRow) -> Option<String> {
    let (_, err) = layout.log_files(step, row.index, &row.id, row.attempts.max(1));
    let text = std::fs::read_to_string(err).ok()?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines
        .iter()
        .rev()
        .take(3)
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join(" | ");
    (!tail.is_empty()).then(|| tail.chars().take(300).collect())
}
