//! Recovery after a crash: what a dead driver left behind, fed to the core as ordinary
//! events.
//!
//! For every task recorded as running when the driver starts:
//! - a result file of its attempt exists, or a line in the local executor's result journals
//!   (`Layout::result_journals`): it finished while nobody watched; the result goes
//!   through the same post-processing (output validation, publishing, fingerprint) as any
//!   attempt, and the core decides (`CampaignCore::ended`);
//! - its job is still in the batch scheduler (Slurm, Kubernetes): adopted, its events come;
//! - its processes still run on this machine (the recorded process group, or any process
//!   whose environment carries its `FLOW_TASK_ID`/`FLOW_ATTEMPT`): killed, then the result
//!   file is looked for again (it may have finished meanwhile);
//! - otherwise it was lost with its driver and runs again without counting a retry.

use crate::attempt_end::ended_attempt;
use crate::campaign_core::CampaignCore;
use crate::compile::Plan;
use crate::layout::Layout;
use crate::state::TaskRow;
use crate::step_kind::runs_on_driver;
use crate::task_state::TaskState;
use flow_dsl::model::ExecutorKind;
use flow_executors::task_runner::{group_alive, now, read_result};
use flow_executors::JobRef;
use std::collections::HashMap;
use std::time::Duration;

/// What recovery did, for the person watching.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    /// Results ingested of attempts that ended while no driver ran.
    pub ingested: usize,
    /// Attempts still held by the backend (adopted).
    pub adopted: usize,
    /// Leftover process groups killed.
    pub killed: usize,
    /// Attempts lost with their driver, to run again.
    pub requeued: usize,
}

/// Settle every running task of `core` (see the module documentation).
pub fn recover(
    plan: &Plan,
    layout: &Layout,
    core: &mut CampaignCore,
    rows: &HashMap<String, TaskRow>,
    adopted: &[JobRef],
) -> Recovered {
    let campaign = plan.campaign;
    let mut out = Recovered::default();
    let mut orphans: Option<HashMap<(String, u32), Vec<u32>>> = None;
    // What shell launches of the local executor recorded (read again after kills).
    let journals = || flow_executors::local::read_result_journals(&layout.result_journals());
    let mut journaled = journals();
    let running: Vec<usize> = (0..core.tasks().len())
        .filter(|&n| core.task(n).state == TaskState::Running)
        .collect();
    for n in running {
        let t = core.task(n).clone();
        let step = &campaign.steps[t.step];
        let result_path = layout.result_file(&step.name, t.index, &t.id, t.attempts);
        if let Some(outcome) = read_result(&result_path) {
            ingest(plan, layout, core, n, outcome, &result_path);
            out.ingested += 1;
            continue;
        }
        if let Some(outcome) = journaled.remove(&(t.id.clone(), t.attempts)) {
            ingest(plan, layout, core, n, outcome, &result_path);
            out.ingested += 1;
            continue;
        }
        let row = rows.get(&t.id);
        let job = row.and_then(|r| r.job_id.clone()).unwrap_or_default();
        let in_adopted_job = adopted.iter().any(|j| {
            let batch_match = job.strip_prefix("batch:").is_some_and(|key| {
                j.step == step.name
                    && (j.batch_key == key || j.batch_key.starts_with(&format!("{key}.")))
            });
            batch_match || job == j.job_id || job.starts_with(&format!("{}_", j.job_id))
        });
        if in_adopted_job && !runs_on_driver(step) {
            out.adopted += 1;
            continue;
        }
        let mut groups: Vec<u32> = row.and_then(|r| r.pid).into_iter().collect();
        if plan.executor == ExecutorKind::Local || runs_on_driver(step) {
            let found = orphans.get_or_insert_with(local_task_processes);
            groups.extend(
                found
                    .get(&(t.id.clone(), t.attempts))
                    .into_iter()
                    .flatten()
                    .copied(),
            );
        }
        groups.sort_unstable();
        groups.dedup();
        let mut killed = false;
        for pgid in groups {
            if group_alive(pgid) {
                flow_executors::process_group::kill_tree(pgid, libc::SIGTERM);
                std::thread::sleep(Duration::from_millis(200));
                flow_executors::process_group::kill_tree(pgid, libc::SIGKILL);
                killed = true;
                out.killed += 1;
            }
        }
        if killed {
            journaled = journals();
            let found =
                read_result(&result_path).or_else(|| journaled.remove(&(t.id.clone(), t.attempts)));
            if let Some(outcome) = found {
                ingest(plan, layout, core, n, outcome, &result_path);
                out.ingested += 1;
                continue;
            }
        }
        core.lost(
            n,
            t.attempts,
            "re-queued: its driver stopped before it finished",
        );
        out.requeued += 1;
    }
    out
}

/// Feed a result found on disk to the core, after the step's checks. A result file of a
/// command step holds only the exit status: its end time is the file's mtime.
fn ingest(
    plan: &Plan,
    layout: &Layout,
    core: &mut CampaignCore,
    n: usize,
    mut outcome: flow_executors::AttemptOutcome,
    result_path: &std::path::Path,
) {
    let t = core.task(n).clone();
    if outcome.ended_at.is_none() {
        outcome.ended_at = std::fs::metadata(result_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
            .or_else(|| Some(now()));
    }
    let ended = ended_attempt(plan, layout, t.step, t.index, &t.id, t.attempts, outcome);
    core.ended(n, t.attempts, ended, now());
}

/// Process groups of task attempts running on this machine, by (task id, attempt), found
/// through the `FLOW_TASK_ID`/`FLOW_ATTEMPT` variables every task starts with. Read from
/// /proc only when a restarted driver has attempts to recover.
pub fn local_task_processes() -> HashMap<(String, u32), Vec<u32>> {
    let mut out: HashMap<(String, u32), Vec<u32>> = HashMap::new();
    for pid in flow_executors::process_group::all_pids() {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let mut task = None;
        let mut attempt = None;
        for var in environ.split(|b| *b == 0) {
            if let Some(v) = var.strip_prefix(b"FLOW_TASK_ID=") {
                task = Some(String::from_utf8_lossy(v).into_owned());
            } else if let Some(v) = var.strip_prefix(b"FLOW_ATTEMPT=") {
                attempt = std::str::from_utf8(v)
                    .ok()
                    .and_then(|t| t.parse::<u32>().ok());
            }
        }
        let (Some(task), Some(attempt)) = (task, attempt) else {
            continue;
        };
        if let Some(stat) = flow_executors::process_group::proc_stat(pid) {
            out.entry((task, attempt)).or_default().push(stat.pgrp);
        }
    }
    out
}
