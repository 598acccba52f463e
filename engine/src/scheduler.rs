//! The driver: one loop that owns the state database, hands ready tasks to the executor,
//! and records what comes back.
//!
//! Everything the loop decides comes from memory (loaded once from SQLite at start); the
//! database is only written, in one transaction per turn. A rerun after any interruption
//! rebuilds the same plan (task ids are stable), skips every task recorded as succeeded,
//! ingests results that finished while no driver was watching, and kills leftovers of a
//! dead driver before their tasks run again.

use crate::compile::{compile, Plan};
use crate::layout::{write_atomic, Layout};
use crate::progress::Progress;
use crate::state::{self, Change, StateStore, TaskRow};
use crate::steps::{self, Checked, StepEffect};
use crate::task_id::SCHEME;
use crate::task_state::{decide, Decision, RetryCounters, TaskState};
use anyhow::{anyhow, bail, Context, Result};
use flow_dsl::error_class::ErrorClass;
use flow_dsl::model::{Campaign, Condition, ExecutorKind};
use flow_executors::local::{LocalCapacity, LocalExecutor};
use flow_executors::task_runner::{group_alive, kill_group, now, read_result};
use flow_executors::{AttemptOutcome, Batch, Executor, ExecutorEvent, TaskLaunch};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Options of `flow run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub executor: Option<ExecutorKind>,
    pub state_dir: Option<PathBuf>,
    /// Print plain lines instead of redrawing bars (set when stdout is not a terminal).
    pub plain_progress: bool,
    pub quiet: bool,
}

/// What a run ended with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub blocked: u64,
    pub cancelled: u64,
    /// Tasks that were already done before this run.
    pub skipped: u64,
    pub ran: u64,
    pub interrupted: bool,
    /// (task id, step, class, message) of tasks that failed for good.
    pub failures: Vec<(String, String, String, String)>,
}

impl RunSummary {
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.blocked == 0 && self.cancelled == 0 && !self.interrupted
    }
}

/// Longest time a recorded outcome waits in memory before it is committed.
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Where the state database of a campaign lives, and a note when it is not beside it.
pub fn state_location(layout: &Layout, state_dir: Option<&PathBuf>) -> (PathBuf, Option<String>) {
    if let Ok(text) = std::fs::read_to_string(layout.state_pointer()) {
        let p = PathBuf::from(text.trim());
        if state_dir.is_none() {
            return (p, None);
        }
    }
    match state::network_filesystem(&layout.campaign_dir) {
        Some(fs) => {
            let base = state_dir.cloned().unwrap_or_else(|| {
                std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .unwrap_or_else(|| PathBuf::from("/tmp"))
                    .join("flow/state")
            });
            let key = blake3::hash(layout.campaign_dir.to_string_lossy().as_bytes()).to_hex();
            let path = base.join(&key[..16]).join("state.db");
            let note = format!(
                "the campaign directory is on {fs}, where SQLite locks are not reliable across nodes: the state database is kept at {} and `flow status` reads the snapshot {}",
                path.display(),
                layout.status_snapshot().display()
            );
            (path, Some(note))
        }
        None => match state_dir {
            Some(d) => (d.join("state.db"), None),
            None => (layout.default_state_db(), None),
        },
    }
}

/// One task in memory.
#[derive(Debug, Clone)]
struct Slot {
    id: String,
    step: usize,
    index: u64,
    state: TaskState,
    attempts: u32,
    counters: RetryCounters,
    /// Failures for lack of time and of memory so far: how far `on_retry` escalates.
    escalation: (u32, u32),
}

impl Slot {
    /// A task that exists in the state database (or is new, without a row).
    fn from_row(
        id: String,
        step: usize,
        index: u64,
        row: Option<&TaskRow>,
        escalation: (u32, u32),
    ) -> Slot {
        Slot {
            id,
            step,
            index,
            state: row.map_or(TaskState::Pending, |r| r.state),
            attempts: row.map_or(0, |r| r.attempts),
            counters: RetryCounters {
                retries: row.map_or(0, |r| r.retries),
                infrastructure_retries: row.map_or(0, |r| r.infra_retries),
            },
            escalation,
        }
    }
}

#[derive(Debug, Default)]
struct StepProgress {
    total: u64,
    succeeded: u64,
    failed: u64,
    blocked: u64,
    cancelled: u64,
    running: u64,
    /// Pending and ready to launch once the step is open (slot indices).
    ready: VecDeque<usize>,
    /// Set when a gate (md-benchmark) stopped everything downstream.
    gate_stop: Option<String>,
    /// adaptive: the step's tasks may still grow (its loop is not done).
    open_ended: bool,
}

impl StepProgress {
    fn finals(&self) -> u64 {
        self.succeeded + self.failed + self.blocked + self.cancelled
    }
    fn complete(&self) -> bool {
        !self.open_ended && self.finals() == self.total
    }
    fn all_succeeded(&self) -> bool {
        !self.open_ended && self.succeeded == self.total
    }
}

/// A task waiting for its retry delay: (due time, slot), ordered so that the heap pops the
/// earliest first.
#[derive(PartialEq)]
struct Waiting(f64, usize);
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Min-heap on time.
        other
            .0
            .partial_cmp(&self.0)
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

/// Process groups of task attempts running on this machine, by (task id, attempt), found
/// through the `FLOW_TASK_ID`/`FLOW_ATTEMPT` variables every task starts with. Read from
/// /proc only when a restarted driver has attempts to recover.
fn local_task_processes() -> HashMap<(String, u32), Vec<u32>> {
    let mut out: HashMap<(String, u32), Vec<u32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
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
        // Field 5 of /proc/PID/stat is the process group (after the parenthesised name).
        let pgid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|st| st.rsplit_once(')').map(|(_, rest)| rest.to_string()))
            .and_then(|rest| {
                rest.split_whitespace()
                    .nth(2)
                    .and_then(|p| p.parse::<u32>().ok())
            });
        if let Some(pgid) = pgid {
            out.entry((task, attempt)).or_default().push(pgid);
        }
    }
    out
}

/// Build the executor a run uses.
pub fn make_executor(plan: &Plan) -> Result<Box<dyn Executor>> {
    match plan.executor {
        ExecutorKind::Local => {
            let (cpus, gpus, mem_mb) = crate::compile::local_capacity(plan.campaign);
            Ok(Box::new(LocalExecutor::new(LocalCapacity {
                cpus,
                gpus,
                mem_mb,
            })))
        }
        ExecutorKind::Slurm => steps::slurm_executor(plan),
        ExecutorKind::Kubernetes => steps::kubernetes_executor(plan),
    }
}

/// Run a campaign to the end (or until interrupted).
pub fn run(campaign: &Campaign, opts: &RunOptions) -> Result<RunSummary> {
    let plan = compile(campaign, opts.executor).map_err(|d| anyhow!("{d}"))?;
    let layout = Layout::new(&campaign.campaign_dir);
    for dir in [layout.metadata(), layout.logs(), layout.qa()] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let snapshot = serde_json::to_vec_pretty(&campaign.snapshot)?;
    write_atomic(&layout.config_snapshot(), &snapshot)
        .context("cannot write the config snapshot")?;

    let (db_path, note) = state_location(&layout, opts.state_dir.as_ref());
    if let Some(note) = &note {
        eprintln!("note: {note}");
    }
    if db_path != layout.default_state_db() {
        write_atomic(
            &layout.state_pointer(),
            db_path.display().to_string().as_bytes(),
        )?;
    }
    let mut store = StateStore::open(&db_path)?;
    let pid = std::process::id();
    let host = state::hostname();
    if let Some(msg) = store.acquire_lease(&host, pid, now())? {
        eprintln!("note: {msg}");
    }
    let _ = std::fs::remove_file(layout.cancel_request());
    let result = drive(&plan, &layout, &mut store, opts, pid);
    let _ = store.release_lease(pid);
    result
}

fn drive(
    plan: &Plan,
    layout: &Layout,
    store: &mut StateStore,
    opts: &RunOptions,
    pid: u32,
) -> Result<RunSummary> {
    let campaign = plan.campaign;
    match store.meta("task_id_scheme")? {
        Some(s) if s != SCHEME => bail!(
            "this campaign's tasks were identified with scheme {s}, this flow uses {SCHEME}: running it would redo finished work. Use the flow version that started it, or start a new campaign version"
        ),
        Some(_) => {}
        None => store.set_meta("task_id_scheme", SCHEME)?,
    }
    store.set_meta(
        "campaign",
        &format!("{} {}", campaign.name, campaign.version),
    )?;

    // Tasks of the plan, in memory; new ones inserted in one transaction.
    let mut slots: Vec<Slot> = Vec::with_capacity(plan.total_tasks() as usize);
    for &i in &plan.order {
        let (step, planned) = plan.step(i);
        store.upsert_step(
            &step.name,
            step.kind.as_str(),
            planned.task_count,
            &planned.digest.to_hex(),
        )?;
    }
    let mut known = store.load_tasks()?;
    let escalations = store.escalation_counts()?;
    let mut new_rows: Vec<(String, String, u64, String)> = Vec::new();
    for i in 0..campaign.steps.len() {
        for task in plan.tasks(i) {
            let row = known.remove(&task.id);
            if row.is_none() {
                let params: serde_json::Map<String, serde_json::Value> = task
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.text.clone())))
                    .collect();
                new_rows.push((
                    task.id.clone(),
                    campaign.steps[i].name.clone(),
                    task.index,
                    serde_json::Value::Object(params).to_string(),
                ));
            }
            let (state, attempts, counters) = match &row {
                Some(r) => (
                    r.state,
                    r.attempts,
                    RetryCounters {
                        retries: r.retries,
                        infrastructure_retries: r.infra_retries,
                    },
                ),
                None => (TaskState::Pending, 0, RetryCounters::default()),
            };
            let escalation = escalations.get(&task.id).copied().unwrap_or((0, 0));
            slots.push(Slot {
                id: task.id,
                step: i,
                index: task.index,
                state,
                attempts,
                counters,
                escalation,
            });
            if let Some(r) = row {
                known.insert(r.id.clone(), r);
            }
        }
    }
    // adaptive: the evaluations of committed asks are slots like any other.
    let (mut adaptive, adaptive_slots) = crate::adaptive_step::AdaptiveSteps::load(plan, store)?;
    for s in adaptive_slots {
        let escalation = escalations.get(&s.id).copied().unwrap_or((0, 0));
        let row = known.get(&s.id);
        slots.push(Slot::from_row(
            s.id.clone(),
            s.step,
            s.index,
            row,
            escalation,
        ));
    }
    store.insert_tasks(
        new_rows
            .iter()
            .map(|(id, st, idx, p)| (id.as_str(), st.as_str(), *idx, p.clone())),
    )?;
    let mut by_id: HashMap<String, usize> = slots
        .iter()
        .enumerate()
        .map(|(n, s)| (s.id.clone(), n))
        .collect();

    let mut executor = make_executor(plan)?;
    // A batch scheduler may still hold jobs of a dead driver: adopt them, never resubmit.
    let adopted: Vec<flow_executors::JobRef> = if plan.executor == ExecutorKind::Local {
        Vec::new()
    } else {
        executor.list_jobs()?
    };
    let mut still_running: std::collections::HashSet<usize> = std::collections::HashSet::new();
    let mut orphans: Option<HashMap<(String, u32), Vec<u32>>> = None;

    // Recovery: attempts a dead driver left behind.
    let mut changes: Vec<Change> = Vec::new();
    let mut recovered = 0;
    for (n, slot) in slots.iter_mut().enumerate() {
        if slot.state != TaskState::Running {
            continue;
        }
        let s = slot.clone();
        let row: Option<&TaskRow> = known.get(&s.id);
        let step = &campaign.steps[s.step];
        let result_path = layout.result_file(&step.name, s.index, &s.id, s.attempts);
        if let Some(outcome) = read_result(&result_path) {
            // Finished while nobody watched: ingest, never rerun.
            recovered += 1;
            let checked =
                steps::post_process(plan, layout, s.step, s.index, &s.id, s.attempts, outcome);
            finish(slot, checked, campaign, &mut changes);
            continue;
        }
        let job = row.and_then(|r| r.job_id.clone()).unwrap_or_default();
        let in_adopted_job = adopted.iter().any(|j| {
            let batch_match = job.strip_prefix("batch:").is_some_and(|key| {
                j.step == step.name
                    && (j.batch_key == key || j.batch_key.starts_with(&format!("{key}.")))
            });
            batch_match || job == j.job_id || job.starts_with(&format!("{}_", j.job_id))
        });
        if in_adopted_job && !steps::runs_on_driver(step) {
            // Its job is still in the queue: its events will come from the executor.
            still_running.insert(n);
            continue;
        }
        // Its processes may still run: the recorded process group, and any process that
        // carries this attempt in its environment (the pid may not have been committed
        // before the driver died).
        let mut groups: Vec<u32> = row.and_then(|r| r.pid).into_iter().collect();
        if plan.executor == ExecutorKind::Local || steps::runs_on_driver(step) {
            let orphans = orphans.get_or_insert_with(local_task_processes);
            groups.extend(
                orphans
                    .get(&(s.id.clone(), s.attempts))
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
                kill_group(pgid, libc::SIGTERM);
                std::thread::sleep(Duration::from_millis(200));
                kill_group(pgid, libc::SIGKILL);
                killed = true;
                changes.push(Change::Event {
                    task_id: Some(s.id.clone()),
                    kind: "killed-orphan".into(),
                    detail: format!("process group {pgid} of a previous driver"),
                });
            }
        }
        if killed {
            // It may have finished between the first look and the kill.
            if let Some(outcome) = read_result(&result_path) {
                recovered += 1;
                let checked =
                    steps::post_process(plan, layout, s.step, s.index, &s.id, s.attempts, outcome);
                finish(slot, checked, campaign, &mut changes);
                continue;
            }
        }
        // Lost with its driver: run again without counting it as a retry.
        slot.state = TaskState::Pending;
        changes.push(Change::SetState {
            task_id: s.id.clone(),
            state: TaskState::Pending,
            message: Some("re-queued: its driver stopped before it finished".into()),
        });
    }
    if !changes.is_empty() {
        store.apply(&changes, now())?;
        changes.clear();
    }

    // Succeeded tasks whose outputs were deleted or corrupted since are done again.
    let details = store.success_details()?;
    for slot in slots.iter_mut().filter(|s| s.state == TaskState::Succeeded) {
        let Some(d) = details
            .get(&slot.id)
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        else {
            continue;
        };
        if let Err(reason) = steps::output_still_valid(plan, slot.step, slot.index, &d) {
            slot.state = TaskState::Pending;
            changes.push(Change::SetState {
                task_id: slot.id.clone(),
                state: TaskState::Pending,
                message: Some(format!("re-queued: {reason}")),
            });
            if !opts.quiet {
                eprintln!(
                    "redoing {}/{}: {reason}",
                    campaign.steps[slot.step].name, slot.id
                );
            }
        }
    }
    if !changes.is_empty() {
        store.apply(&changes, now())?;
        changes.clear();
    }

    let mut progress: Vec<StepProgress> = (0..campaign.steps.len())
        .map(|_| StepProgress::default())
        .collect();
    let mut waiting: BinaryHeap<Waiting> = BinaryHeap::new();
    let mut summary = RunSummary {
        total: slots.len() as u64,
        ..RunSummary::default()
    };
    let info = store.step_info()?;
    for (i, step) in campaign.steps.iter().enumerate() {
        if let Some(stop) = info
            .get(&step.name)
            .and_then(|v| v.get("gate_stop"))
            .and_then(|v| v.as_str())
        {
            progress[i].gate_stop = Some(stop.to_string());
        }
    }
    for (i, p) in progress.iter_mut().enumerate() {
        p.open_ended = adaptive.open_ended(i); // adaptive
    }
    for (n, s) in slots.iter().enumerate() {
        let p = &mut progress[s.step];
        p.total += 1;
        match s.state {
            TaskState::Succeeded => {
                p.succeeded += 1;
                summary.skipped += 1;
            }
            TaskState::Failed => p.failed += 1,
            TaskState::Blocked => p.blocked += 1,
            TaskState::Cancelled => {
                // A cancelled run is resumed by running again.
                p.ready.push_back(n);
            }
            TaskState::Running if still_running.contains(&n) => p.running += 1,
            TaskState::Pending | TaskState::Running => {
                let nb = known.get(&s.id).and_then(|r| r.not_before).unwrap_or(0.0);
                if nb > now() {
                    waiting.push(Waiting(nb, n));
                } else {
                    p.ready.push_back(n);
                }
            }
        }
    }
    for p in &mut progress {
        p.blocked = 0; // Blocked tasks are re-evaluated: their upstream may have been retried.
    }
    for (n, s) in slots.iter_mut().enumerate() {
        if s.state == TaskState::Blocked {
            s.state = TaskState::Pending;
            progress[s.step].ready.push_back(n);
        }
    }
    if recovered > 0 && !opts.quiet {
        eprintln!(
            "recovered {recovered} result(s) of tasks that finished while no driver was running"
        );
    }

    install_signal_handlers();
    // Steps that run where the driver runs (build-env: login nodes reach package indexes,
    // compute nodes often do not) use a local executor beside the campaign's.
    let mut driver_executor: Option<LocalExecutor> = None;
    let mut reporter = Progress::new(plan, opts.plain_progress, opts.quiet);
    let window = match plan.executor {
        ExecutorKind::Local => {
            let (cpus, _, _) = crate::compile::local_capacity(campaign);
            (cpus as usize * 32).max(64)
        }
        _ => campaign
            .machine
            .slurm
            .max_submitted
            .unwrap_or(u64::MAX)
            .min(1_000_000) as usize,
    };
    let mut last_beat = Instant::now();
    let mut last_commit = Instant::now();
    let mut cancelling = false;
    let mut last_snapshot = Instant::now() - Duration::from_secs(60);

    loop {
        let t = now();
        // Retries whose delay is over become ready.
        while waiting.peek().is_some_and(|w| w.0 <= t) {
            if let Some(Waiting(_, n)) = waiting.pop() {
                progress[slots[n].step].ready.push_back(n);
            }
        }

        // Steps whose dependencies failed block their tasks; open steps launch.
        if !cancelling {
            for &i in &plan.order {
                let blocked_by = blocking_reason(plan, &progress, i);
                if let Some(reason) = blocked_by {
                    let p = &mut progress[i];
                    while let Some(n) = p.ready.pop_front() {
                        slots[n].state = TaskState::Blocked;
                        p.blocked += 1;
                        changes.push(Change::SetState {
                            task_id: slots[n].id.clone(),
                            state: TaskState::Blocked,
                            message: Some(reason.clone()),
                        });
                    }
                    continue;
                }
                if !upstream_open(plan, &progress, i) {
                    continue;
                }
                if adaptive.is_adaptive(i) {
                    // adaptive: tell what ended, ask for more; new evaluations are ready.
                    let new = adaptive.advance(
                        plan,
                        layout,
                        store,
                        i,
                        &|id| by_id.get(id).map(|&n| slots[n].state),
                        &mut |s| {
                            s.apply(&changes, now())?;
                            changes.clear();
                            Ok(())
                        },
                    )?;
                    for s in new {
                        let n = slots.len();
                        by_id.insert(s.id.clone(), n);
                        slots.push(Slot::from_row(s.id, s.step, s.index, None, (0, 0)));
                        progress[i].total += 1;
                        progress[i].ready.push_back(n);
                        summary.total += 1;
                    }
                    progress[i].open_ended = adaptive.open_ended(i);
                }
                let step = &campaign.steps[i];
                let planned = &plan.steps[i];
                let per_batch = match plan.executor {
                    ExecutorKind::Local => usize::MAX,
                    _ => planned.batch_size as usize,
                };
                // Refill in halves of the window: one launch transaction per many tasks
                // rather than one per finished task.
                let refill = executor.in_flight() <= window / 2;
                while refill && !progress[i].ready.is_empty() && executor.in_flight() < window {
                    let room = window - executor.in_flight();
                    let take = room.min(per_batch).min(progress[i].ready.len());
                    let mut launches: Vec<TaskLaunch> = Vec::with_capacity(take);
                    // The batch's name: where its first task sits in the step, and which
                    // attempt (a retry batch never shares a name with the first one).
                    // One batch holds tasks of one escalation level (same resources).
                    let level = match progress[i].ready.front() {
                        Some(&n0) => slots[n0].escalation,
                        None => break,
                    };
                    let batch_key = match progress[i].ready.front() {
                        Some(&n0) => {
                            let attempt = slots[n0].attempts + 1;
                            let base = format!(
                                "{}-b{:05}",
                                step.name,
                                slots[n0].index / planned.batch_size.max(1)
                            );
                            if attempt > 1 {
                                format!("{base}-a{attempt}")
                            } else {
                                base
                            }
                        }
                        None => break,
                    };
                    for _ in 0..take {
                        if progress[i]
                            .ready
                            .front()
                            .is_some_and(|&n| slots[n].escalation != level)
                        {
                            break;
                        }
                        let Some(n) = progress[i].ready.pop_front() else {
                            break;
                        };
                        let slot = &mut slots[n];
                        slot.attempts += 1;
                        match steps::build_launch(
                            plan,
                            layout,
                            i,
                            slot.index,
                            &slot.id,
                            slot.attempts,
                        ) {
                            Ok(launch) => {
                                changes.push(Change::Launched {
                                    task_id: slot.id.clone(),
                                    attempt: slot.attempts,
                                    executor: executor.name().into(),
                                    batch_key: batch_key.clone(),
                                    at: t,
                                });
                                slot.state = TaskState::Running;
                                progress[i].running += 1;
                                launches.push(launch);
                            }
                            Err(message) => {
                                let outcome = AttemptOutcome {
                                    exit_code: None,
                                    signal: None,
                                    error_class: Some(ErrorClass::LaunchFailed),
                                    message: Some(message),
                                    started_at: Some(t),
                                    ended_at: Some(t),
                                };
                                changes.push(Change::Launched {
                                    task_id: slot.id.clone(),
                                    attempt: slot.attempts,
                                    executor: executor.name().into(),
                                    batch_key: batch_key.clone(),
                                    at: t,
                                });
                                progress[i].running += 1;
                                let done =
                                    finish(slot, Checked::plain(outcome), campaign, &mut changes);
                                account(&mut progress[i], &mut waiting, n, done);
                            }
                        }
                    }
                    if launches.is_empty() {
                        continue;
                    }
                    let batch = Batch {
                        campaign: format!("{}_{}", campaign.version, campaign.name),
                        step: step.name.clone(),
                        batch_key,
                        resources: steps::escalated_resources(step, level),
                        max_running: step.execution.max_running,
                        tasks: launches,
                    };
                    let ids: Vec<String> = batch.tasks.iter().map(|l| l.task_id.clone()).collect();
                    let on_driver =
                        plan.executor != ExecutorKind::Local && steps::runs_on_driver(step);
                    // The launch is on disk before the task can start: a crash right after
                    // submit finds it `running` and looks for its result instead of
                    // starting it a second time.
                    store.apply(&changes, now())?;
                    changes.clear();
                    last_commit = Instant::now();
                    let submitted = if on_driver {
                        driver_executor
                            .get_or_insert_with(|| {
                                let (cpus, gpus, mem_mb) = crate::compile::local_capacity(campaign);
                                LocalExecutor::new(LocalCapacity { cpus, gpus, mem_mb })
                            })
                            .submit(batch)
                    } else {
                        executor.submit(batch)
                    };
                    if let Err(e) = submitted {
                        let class = match e {
                            flow_executors::ExecutorError::SubmitRejected { .. } => {
                                ErrorClass::SubmitRejected
                            }
                            _ => ErrorClass::LaunchFailed,
                        };
                        for id in ids {
                            let n = by_id[&id];
                            let outcome = AttemptOutcome {
                                exit_code: None,
                                signal: None,
                                error_class: Some(class),
                                message: Some(e.to_string()),
                                started_at: Some(t),
                                ended_at: Some(now()),
                            };
                            let done = finish(
                                &mut slots[n],
                                Checked::plain(outcome),
                                campaign,
                                &mut changes,
                            );
                            account(&mut progress[i], &mut waiting, n, done);
                        }
                    }
                }
            }
        }

        // Group commit: outcomes are also in result files on disk, so a crash between two
        // commits loses nothing (recovery ingests them); committing every few hundred
        // milliseconds keeps SQLite from capping throughput.
        if !changes.is_empty()
            && (last_commit.elapsed() >= COMMIT_INTERVAL || changes.len() >= 5000)
        {
            last_commit = Instant::now();
            store.apply(&changes, now())?;
            changes.clear();
        }

        let running: u64 = progress.iter().map(|p| p.running).sum();
        let ready: usize = progress.iter().map(|p| p.ready.len()).sum();
        if running == 0 && (ready == 0 || cancelling) && waiting.is_empty() {
            break;
        }
        if running == 0
            && ready > 0
            && !cancelling
            && waiting.is_empty()
            && !any_step_can_progress(plan, &progress)
        {
            break;
        }

        let max_wait = match waiting.peek() {
            Some(w) => Duration::from_secs_f64((w.0 - now()).clamp(0.001, 0.25)),
            None => Duration::from_millis(250),
        };
        let mut events = Vec::new();
        if let Some(local) = driver_executor.as_mut().filter(|d| d.in_flight() > 0) {
            let wait = if executor.in_flight() > 0 {
                Duration::ZERO
            } else {
                max_wait
            };
            events.extend(local.poll(wait)?);
        }
        events.extend(executor.poll(if events.is_empty() {
            max_wait
        } else {
            Duration::ZERO
        })?);
        for ev in events {
            match ev {
                ExecutorEvent::Started {
                    task_id,
                    attempt,
                    job_id,
                    pid,
                    at,
                } => {
                    changes.push(Change::Started {
                        task_id,
                        attempt,
                        job_id,
                        pid,
                        at,
                    });
                }
                ExecutorEvent::Finished {
                    task_id,
                    attempt,
                    outcome,
                } => {
                    let Some(&n) = by_id.get(&task_id) else {
                        continue;
                    };
                    if slots[n].attempts != attempt || slots[n].state != TaskState::Running {
                        continue; // A stale report of an older attempt.
                    }
                    let i = slots[n].step;
                    progress[i].running = progress[i].running.saturating_sub(1);
                    let mut checked = steps::post_process(
                        plan,
                        layout,
                        i,
                        slots[n].index,
                        &task_id,
                        attempt,
                        outcome,
                    );
                    checked.cancelled_elsewhere =
                        !cancelling && checked.outcome.error_class == Some(ErrorClass::Cancelled);
                    let effect = checked.effect.clone();
                    if let StepEffect::GateStop(message) = &effect {
                        progress[i].gate_stop = Some(message.clone());
                        store.set_step_info(
                            &campaign.steps[i].name,
                            &serde_json::json!({"gate_stop": message}),
                        )?;
                        reporter.note(&format!(
                            "gate of step {} stops its dependents: {message}",
                            campaign.steps[i].name
                        ));
                    }
                    if let Some(info) = checked
                        .details
                        .as_deref()
                        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                        .and_then(|d| d.get("step_info").cloned())
                    {
                        let mut merged = store
                            .step_info()?
                            .remove(&campaign.steps[i].name)
                            .unwrap_or_else(|| serde_json::json!({}));
                        if let (Some(m), Some(new)) = (merged.as_object_mut(), info.as_object()) {
                            for (k, v) in new {
                                m.insert(k.clone(), v.clone());
                            }
                        }
                        store.set_step_info(&campaign.steps[i].name, &merged)?;
                    }
                    if let StepEffect::Warn(message) = &effect {
                        reporter.note(&format!("step {}: {message}", campaign.steps[i].name));
                    }
                    let done = finish(&mut slots[n], checked, campaign, &mut changes);
                    summary.ran += 1;
                    account(&mut progress[i], &mut waiting, n, done);
                }
            }
        }
        if !changes.is_empty()
            && (last_commit.elapsed() >= COMMIT_INTERVAL || changes.len() >= 5000)
        {
            last_commit = Instant::now();
            store.apply(&changes, now())?;
            changes.clear();
        }

        if !cancelling && (INTERRUPTED.load(Ordering::SeqCst) || layout.cancel_request().exists()) {
            cancelling = true;
            summary.interrupted = true;
            reporter.note("stopping: running tasks get SIGTERM, then SIGKILL after a grace period");
            let _ = executor.cancel(&[]);
            if let Some(local) = driver_executor.as_mut() {
                let _ = local.cancel(&[]);
            }
            for p in progress.iter_mut() {
                while let Some(n) = p.ready.pop_front() {
                    slots[n].state = TaskState::Cancelled;
                    p.cancelled += 1;
                    changes.push(Change::SetState {
                        task_id: slots[n].id.clone(),
                        state: TaskState::Cancelled,
                        message: Some("cancelled".into()),
                    });
                }
            }
            while let Some(Waiting(_, n)) = waiting.pop() {
                slots[n].state = TaskState::Cancelled;
                progress[slots[n].step].cancelled += 1;
                changes.push(Change::SetState {
                    task_id: slots[n].id.clone(),
                    state: TaskState::Cancelled,
                    message: Some("cancelled".into()),
                });
            }
            let _ = std::fs::remove_file(layout.cancel_request());
        }
        if last_beat.elapsed() > Duration::from_secs(2) {
            store.heartbeat(pid, now())?;
            last_beat = Instant::now();
        }
        if last_snapshot.elapsed() > Duration::from_secs(5) {
            write_status_snapshot(plan, layout, &progress);
            last_snapshot = Instant::now();
        }
        if reporter.due() {
            reporter.update(&progress_rows(plan, &progress));
        }
    }
    adaptive.close();
    store.apply(&changes, now())?;
    write_status_snapshot(plan, layout, &progress);
    reporter.finish(&progress_rows(plan, &progress));
    for (i, step) in campaign.steps.iter().enumerate() {
        if step.kind == flow_dsl::model::StepKind::QeScf && progress[i].succeeded > 0 {
            let succeeded = slots
                .iter()
                .filter(|s| s.step == i && s.state == TaskState::Succeeded);
            let dirs = succeeded.map(|s| layout.work_dir(&step.name, s.index, &s.id));
            match steps::write_qe_aggregate(layout, &step.name, dirs) {
                Ok(path) => reporter.note(&format!(
                    "step {}: energies and forces of every computed structure in {}",
                    step.name,
                    path.display()
                )),
                Err(e) => reporter.note(&format!(
                    "step {}: cannot write the aggregate extxyz: {e}",
                    step.name
                )),
            }
        }
    }

    summary.succeeded = progress.iter().map(|p| p.succeeded).sum();
    summary.failed = progress.iter().map(|p| p.failed).sum();
    summary.blocked = progress.iter().map(|p| p.blocked).sum();
    summary.cancelled = progress.iter().map(|p| p.cancelled).sum();
    for row in store.load_tasks()?.into_values() {
        if row.state == TaskState::Failed && by_id.contains_key(&row.id) {
            summary.failures.push((
                row.id,
                row.step,
                row.error_class.unwrap_or_default(),
                row.message.unwrap_or_default(),
            ));
        }
    }
    summary.failures.sort();
    Ok(summary)
}

/// Apply an attempt's outcome to a task; returns the decision.
fn finish(
    slot: &mut Slot,
    checked: Checked,
    campaign: &Campaign,
    changes: &mut Vec<Change>,
) -> Decision {
    let Checked {
        outcome,
        details,
        final_failure,
        cancelled_elsewhere,
        ..
    } = checked;
    let step = &campaign.steps[slot.step];
    let decision = if final_failure {
        Decision::Failed
    } else {
        // A task cancelled outside flow is retried as if it had been killed.
        let class = if cancelled_elsewhere {
            Some(ErrorClass::Signal)
        } else {
            outcome.error_class
        };
        decide(
            class,
            slot.counters,
            &step.execution,
            fastrand_unit(&slot.id, slot.attempts),
        )
    };
    match outcome.error_class {
        Some(ErrorClass::Walltime) => slot.escalation.0 += 1,
        Some(ErrorClass::OutOfMemory) => slot.escalation.1 += 1,
        _ => {}
    }
    let mut not_before = None;
    let state = match &decision {
        Decision::Succeeded => TaskState::Succeeded,
        Decision::Failed => TaskState::Failed,
        Decision::Cancelled => TaskState::Cancelled,
        Decision::Retry { delay, counts } => {
            if *counts {
                slot.counters.retries += 1;
            } else {
                slot.counters.infrastructure_retries += 1;
            }
            not_before = Some(now() + delay.as_secs_f64());
            TaskState::Pending
        }
    };
    slot.state = state;
    changes.push(Change::Finished {
        task_id: slot.id.clone(),
        attempt: slot.attempts,
        outcome,
        state,
        retries: slot.counters.retries,
        infra_retries: slot.counters.infrastructure_retries,
        not_before,
        details,
    });
    decision
}

/// Count a decided attempt in its step's progress; a retry waits for its delay.
fn account(p: &mut StepProgress, waiting: &mut BinaryHeap<Waiting>, n: usize, decision: Decision) {
    match decision {
        Decision::Succeeded => p.succeeded += 1,
        Decision::Failed => p.failed += 1,
        Decision::Cancelled => p.cancelled += 1,
        Decision::Retry { delay, .. } => waiting.push(Waiting(now() + delay.as_secs_f64(), n)),
    }
}

/// A deterministic number in [0, 1) per task attempt (jitter without a random source, so a
/// replay of the same history makes the same decisions).
fn fastrand_unit(id: &str, attempt: u32) -> f64 {
    let h = blake3::hash(format!("{id}/{attempt}/jitter").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

fn blocking_reason(plan: &Plan, progress: &[StepProgress], i: usize) -> Option<String> {
    let step = &plan.campaign.steps[i];
    for &u in &plan.steps[i].upstream {
        let up = &progress[u];
        let name = &plan.campaign.steps[u].name;
        if let Some(gate) = &up.gate_stop {
            return Some(format!("blocked by gate of step {name}: {gate}"));
        }
        if step.condition == Condition::AllSucceeded && up.failed + up.blocked > 0 {
            return Some(format!(
                "upstream step {name} did not succeed ({} failed, {} blocked)",
                up.failed, up.blocked
            ));
        }
        if step.condition == Condition::AllCompleted && up.blocked == up.total && up.total > 0 {
            return Some(format!("upstream step {name} never ran"));
        }
    }
    None
}

fn upstream_open(plan: &Plan, progress: &[StepProgress], i: usize) -> bool {
    let step = &plan.campaign.steps[i];
    plan.steps[i]
        .upstream
        .iter()
        .all(|&u| match step.condition {
            Condition::AllSucceeded => progress[u].all_succeeded(),
            Condition::AllCompleted => progress[u].complete(),
        })
}

fn any_step_can_progress(plan: &Plan, progress: &[StepProgress]) -> bool {
    plan.order.iter().any(|&i| {
        !progress[i].ready.is_empty()
            && (upstream_open(plan, progress, i) || blocking_reason(plan, progress, i).is_some())
    })
}

/// One row of the progress display.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgressRow {
    pub step: String,
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub blocked: u64,
    pub cancelled: u64,
    pub running: u64,
    pub queued: u64,
}

fn progress_rows(plan: &Plan, progress: &[StepProgress]) -> Vec<ProgressRow> {
    plan.order
        .iter()
        .map(|&i| {
            let p = &progress[i];
            ProgressRow {
                step: plan.campaign.steps[i].name.clone(),
                total: p.total,
                succeeded: p.succeeded,
                failed: p.failed,
                blocked: p.blocked,
                cancelled: p.cancelled,
                running: p.running,
                queued: p.total.saturating_sub(p.finals() + p.running),
            }
        })
        .collect()
}

/// A small JSON file beside the campaign that `flow status` can read without touching the
/// database (needed when the database is on another machine's local disk).
fn write_status_snapshot(plan: &Plan, layout: &Layout, progress: &[StepProgress]) {
    let doc = serde_json::json!({
        "written_at": now(),
        "steps": progress_rows(plan, progress),
    });
    let _ = write_atomic(&layout.status_snapshot(), doc.to_string().as_bytes());
}
