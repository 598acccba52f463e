//! `flow-sim`: the real campaign core and a real SQLite state store driven against a
//! simulated Slurm on a virtual clock, to see how the driver behaves at scales no test
//! machine can run (10^6 tasks).
//!
//! The loop is the driver's ([`crate::scheduler`]) minus the I/O of real tasks: the
//! tasks are inserted in the store first, the core hands out batches at every turn, their
//! `Launched` changes are committed before the batch is submitted, reports from the
//! cluster (learned at each `squeue` poll) are fed to the core, and the core's changes are
//! committed in groups (at every turn that has any, at least every 5000 changes). Turns
//! happen at each poll and when a retry delay ends; between them the simulated cluster
//! runs on its own (see [`slurm`]). Nothing sleeps.

pub mod rng;
pub mod slurm;

use crate::campaign_core::{CampaignCore, CoreStep, CoreTask, EndedAttempt};
use crate::state::StateStore;
use crate::task_state::TaskState;
use anyhow::{bail, Context, Result};
use flow_dsl::model::{Condition, Execution, OnRetry, RetryBackoff};
use rng::Dist;
use serde::Serialize;
use slurm::{micros, seconds, ClusterModel, Element, Micros, Report, SimSlurm};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Where the virtual clock starts (unix seconds; fixed so that runs are reproducible).
pub const START: f64 = 1_800_000_000.0;

/// Changes that force a commit within a turn (the driver's bound).
const COMMIT_EVERY: usize = 5000;

/// A simulated campaign and cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Tasks per step.
    pub tasks: u64,
    /// Chained steps (each needs the one before, `condition: all-completed`).
    pub steps: usize,
    pub cluster: ClusterModel,
    pub max_retries: u32,
    pub max_infrastructure_retries: u32,
    pub retry_initial: Duration,
    /// Seconds between two `squeue` polls.
    pub poll: f64,
    pub seed: u64,
}

/// Wall time spent in each part of the run (seconds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseTimes {
    /// Building the tasks and inserting them in the store.
    pub setup_s: f64,
    /// Core calls: tick, started, ended.
    pub core_s: f64,
    /// Committing changes to SQLite.
    pub store_s: f64,
    /// The simulated cluster.
    pub cluster_s: f64,
}

/// What a simulated run measured.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub tasks: u64,
    pub steps: usize,
    pub succeeded: u64,
    pub failed: u64,
    pub blocked: u64,
    pub attempts: u64,
    /// Retries that counted against `max_retries`.
    pub retries: u64,
    /// Retries after a preemption (their own cap).
    pub infrastructure_retries: u64,
    pub exited_1: u64,
    pub preempted: u64,
    pub sbatch_calls: u64,
    /// Equal to `sbatch_calls`: one call per array.
    pub arrays: u64,
    pub elements_per_array: u32,
    pub squeue_calls: u64,
    pub driver_turns: u64,
    pub commits: u64,
    pub changes_committed: u64,
    pub peak_in_queue: u64,
    pub peak_held_arrays: u64,
    pub driver_cpu_s: f64,
    pub peak_rss_mb: f64,
    /// Peak RSS once the tasks are inserted and the core and the id map built.
    pub rss_after_setup_mb: f64,
    /// `size_of::<CoreTask>()`: the core's bytes per task before its heap strings.
    pub core_task_bytes: usize,
    /// Capacity of the driver's task id -> slot map (7/8 of its buckets; each bucket holds a
    pub state_db_mb: f64,
    pub simulated_hours: f64,
    pub wall_s: f64,
    pub phases: PhaseTimes,
    pub seed: u64,
    pub array_size: u32,
    pub max_submitted: Option<u32>,
    pub slots: usize,
    pub fail: f64,
    pub preempt: f64,
    pub queue_wait: String,
    pub run_time: String,
}

fn execution(config: &SimConfig) -> Execution {
    Execution {
        max_retries: config.max_retries,
        retry_backoff: RetryBackoff {
            initial: config.retry_initial,
            multiplier: 2.0,
            max: Duration::from_secs(3600),
            jitter: true,
        },
        timeout: None,
        batch_size: None,
        max_running: None,
        max_infrastructure_retries: config.max_infrastructure_retries,
        on_retry: OnRetry::default(),
        max_log_bytes: None,
    }
}

/// The id of task `index` of step `step`.
pub fn task_id(step: usize, index: u64) -> String {
    if step == 0 {
        format!("t{index}")
    } else {
        format!("s{step}.t{index}")
    }
}

fn step_name(step: usize) -> String {
    format!("step{step}")
}

/// (user + system CPU seconds, peak RSS in MiB) of this process so far.
pub fn rusage() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (f64::NAN, f64::NAN);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // Linux reports ru_maxrss in KiB.
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        ru.ru_maxrss as f64 / 1024.0,
    )
}

fn file_mb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
}

/// Run a simulated campaign with its state in `dir` (a fresh directory).
///
/// Fails if the run ends with a task that is neither succeeded, failed nor blocked, with
/// attempts still in flight, or with a store that disagrees with the core: the simulator
/// is there to show that a run always ends.
pub fn run(config: &SimConfig, dir: &Path) -> Result<SimReport> {
    let wall = Instant::now();
    let mut phases = PhaseTimes::default();
    let db_path = dir.join("state.db");
    let mut store = StateStore::open(&db_path)?;
    let execution = execution(config);
    let steps: Vec<CoreStep> = (0..config.steps)
        .map(|k| CoreStep {
            name: step_name(k),
            upstream: if k == 0 { Vec::new() } else { vec![k - 1] },
            condition: Condition::AllCompleted,
            execution: execution.clone(),
            // The driver's per_batch on Slurm: the planned batch size, capped by
            // max_array_size.
            per_batch: config.cluster.array_size.max(1) as usize,
            batch_size: u64::from(config.cluster.array_size.max(1)),
            on_driver: false,
        })
        .collect();

    let mut tasks: Vec<CoreTask> = Vec::with_capacity((config.tasks as usize) * config.steps);
    for k in 0..config.steps {
        store.upsert_step(&step_name(k), "command", config.tasks, "sim")?;
        for index in 0..config.tasks {
            tasks.push(CoreTask::new(task_id(k, index), k, index));
        }
    }
    let names: Vec<String> = (0..config.steps).map(step_name).collect();
    let work = r#"[{"kind":"command","command":"simulated"}]"#.to_string();
    store.insert_tasks(tasks.iter().map(|t| {
        (
            t.id.as_str(),
            names[t.step].as_str(),
            t.index,
            format!(r#"{{"index":{}}}"#, t.index),
            work.clone(),
        )
    }))?;
    let mut core = CampaignCore::new(steps, (0..config.steps).collect(), tasks, "slurm", START);
    // As the driver does: the executor reports task ids, the core maps them to slots.
    phases.setup_s = wall.elapsed().as_secs_f64();
    let rss_after_setup_mb = rusage().1;

    let window = config
        .cluster
        .max_submitted
        .map_or(1_000_000, |w| w as usize);
    let start = micros(START);
    let poll = micros(config.poll).max(1);
    let mut slurm = SimSlurm::new(config.cluster.clone(), config.seed, start);
    let mut now: Micros = start;
    let mut next_poll = start + poll;
    let mut commits = 0u64;
    let mut committed = 0u64;
    let mut turns = 0u64;
    let mut attempts = 0u64;

    let mut commit = |core: &mut CampaignCore,
                      store: &mut StateStore,
                      at: Micros,
                      phases: &mut PhaseTimes|
     -> Result<()> {
        if core.pending_changes() == 0 {
            return Ok(());
        }
        let t = Instant::now();
        let changes = core.take_changes();
        store.apply(&changes, seconds(at))?;
        commits += 1;
        committed += changes.len() as u64;
        phases.store_s += t.elapsed().as_secs_f64();
        Ok(())
    };

    loop {
        turns += 1;
        let at = seconds(now);
        // The executor asks squeue only while it has jobs (or arrays waiting to go in).
        if now >= next_poll && !slurm.idle() {
            next_poll = now + poll;
            let t = Instant::now();
            let reports = slurm.poll();
            phases.cluster_s += t.elapsed().as_secs_f64();
            let mut t = Instant::now();
            for report in reports {
                match report {
                    Report::Started {
                        task_id,
                        attempt,
                        job_id,
                        at,
                    } => {
                        if let Some(slot) = core.slot_of(&task_id) {
                            core.started(slot, attempt, job_id, None, at);
                        }
                    }
                    Report::Finished {
                        task_id,
                        attempt,
                        outcome,
                    } => {
                        let Some(slot) = core.slot_of(&task_id) else {
                            continue;
                        };
                        let succeeded = outcome.succeeded();
                        let ended = EndedAttempt {
                            // What a command step records (`attempt_end::product_of`).
                            product: succeeded.then(|| format!("run:{task_id}:{attempt}")),
                            ..EndedAttempt::plain(outcome)
                        };
                        if core.ended(slot, attempt, ended, at).is_some() {
                            attempts += 1;
                        }
                    }
                }
                if core.pending_changes() >= COMMIT_EVERY {
                    phases.core_s += t.elapsed().as_secs_f64();
                    commit(&mut core, &mut store, now, &mut phases)?;
                    t = Instant::now();
                }
            }
            phases.core_s += t.elapsed().as_secs_f64();
        }

        let t = Instant::now();
        let submissions = core.tick(at, window);
        let batches: Vec<Vec<Element>> = submissions
            .iter()
            .map(|sub| {
                sub.tasks
                    .iter()
                    .map(|&(slot, attempt)| Element {
                        task_id: core.task(slot).id.clone(),
                        attempt,
                    })
                    .collect()
            })
            .collect();
        phases.core_s += t.elapsed().as_secs_f64();
        // The launches are on disk before the cluster can start them; with the turn's
        // outcomes this is the driver's group commit.
        commit(&mut core, &mut store, now, &mut phases)?;
        let t = Instant::now();
        for batch in batches {
            slurm.submit(batch);
        }
        phases.cluster_s += t.elapsed().as_secs_f64();

        if core.finished() {
            break;
        }
        // The next turn: the next poll, or a retry's delay ending before it.
        if now >= next_poll {
            next_poll = now + poll;
        }
        let mut wake = next_poll;
        if let Some(due) = core.next_due() {
            wake = wake.min(micros(due).max(now + 1));
        }
        if slurm.idle() && core.in_flight() > 0 {
            bail!(
                "the simulated cluster holds nothing but the core counts {} attempt(s) in flight",
                core.in_flight()
            );
        }
        if slurm.idle() && core.next_due().is_none() {
            bail!("nothing runs and nothing is due, but the core is not finished");
        }
        let t = Instant::now();
        slurm.advance_to(wake);
        phases.cluster_s += t.elapsed().as_secs_f64();
        now = wake;
    }
    commit(&mut core, &mut store, now, &mut phases)?;

    let mut report = SimReport {
        tasks: 0,
        steps: config.steps,
        succeeded: 0,
        failed: 0,
        blocked: 0,
        attempts,
        retries: 0,
        infrastructure_retries: 0,
        exited_1: slurm.counters.failed,
        preempted: slurm.counters.preempted,
        sbatch_calls: slurm.counters.sbatch_calls,
        arrays: slurm.counters.sbatch_calls,
        elements_per_array: slurm.elements_per_array(),
        squeue_calls: slurm.counters.squeue_calls,
        driver_turns: turns,
        commits,
        changes_committed: committed,
        peak_in_queue: slurm.counters.peak_in_queue,
        peak_held_arrays: slurm.counters.peak_held_arrays,
        driver_cpu_s: 0.0,
        peak_rss_mb: 0.0,
        rss_after_setup_mb,
        core_task_bytes: std::mem::size_of::<CoreTask>(),
        state_db_mb: 0.0,
        simulated_hours: (seconds(now) - START) / 3600.0,
        wall_s: 0.0,
        phases,
        seed: config.seed,
        array_size: config.cluster.array_size,
        max_submitted: config.cluster.max_submitted,
        slots: config.cluster.slots,
        fail: config.cluster.fail,
        preempt: config.cluster.preempt,
        queue_wait: config.cluster.queue_wait.to_string(),
        run_time: config.cluster.run_time.to_string(),
    };
    for k in 0..config.steps {
        let c = core.counts(k);
        report.tasks += c.total;
        report.succeeded += c.succeeded;
        report.failed += c.failed;
        report.blocked += c.blocked;
        if c.pending() + c.submitted + c.running + c.cancelled > 0 {
            bail!(
                "step {}: the run ended with tasks not done: {c:?}",
                step_name(k)
            );
        }
    }
    for t in core.tasks() {
        report.retries += u64::from(t.counters.retries);
        report.infrastructure_retries += u64::from(t.counters.infrastructure_retries);
    }
    if report.succeeded + report.failed + report.blocked != report.tasks {
        bail!("succeeded + failed + blocked != tasks: {report:?}");
    }
    if report.attempts != slurm.counters.elements_submitted {
        bail!(
            "{} attempts ended but {} were submitted",
            report.attempts,
            slurm.counters.elements_submitted
        );
    }
    // The store must say what the core says.
    let stored = stored_states(&db_path)?;
    let expect = [
        (TaskState::Succeeded, report.succeeded),
        (TaskState::Failed, report.failed),
        (TaskState::Blocked, report.blocked),
    ];
    for (state, n) in expect {
        let got = stored.get(state.as_str()).copied().unwrap_or(0);
        if got != n {
            bail!(
                "the store holds {got} {} task(s), the core {n}",
                state.as_str()
            );
        }
    }
    let others: u64 = stored
        .iter()
        .filter(|(s, _)| !["succeeded", "failed", "blocked"].contains(&s.as_str()))
        .map(|(_, n)| n)
        .sum();
    if others > 0 {
        bail!("the store holds {others} task(s) not done: {stored:?}");
    }
    report.state_db_mb = file_mb(&db_path) + file_mb(&dir.join("state.db-wal"));
    let (cpu, rss) = rusage();
    report.driver_cpu_s = cpu;
    report.peak_rss_mb = rss;
    report.wall_s = wall.elapsed().as_secs_f64();
    drop(store);
    Ok(report)
}

/// Tasks per state, read back from the database with a connection of its own.
fn stored_states(db: &Path) -> Result<HashMap<String, u64>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open {}", db.display()))?;
    let mut stmt = conn.prepare("SELECT state, COUNT(*) FROM tasks GROUP BY state")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (state, n) = row?;
        out.insert(state, n);
    }
    Ok(out)
}

/// The default cluster: `--array-size 1000`, `max_submitted` 10000, 2000 slots, queue waits
/// lognormal around 2 min, run times lognormal around 10 min.
pub fn default_queue_wait() -> Dist {
    Dist::LogNormal {
        median: 120.0,
        sigma: 1.0,
    }
}

pub fn default_run_time() -> Dist {
    Dist::LogNormal {
        median: 600.0,
        sigma: 0.5,
    }
}
