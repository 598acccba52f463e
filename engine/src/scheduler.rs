//! The driver: a thin loop around the campaign core.
//!
//! At start it loads the state, checks every recorded success against the disk
//! (`freshness`), builds the [`CampaignCore`], and lets `recovery` settle what a dead
//! driver left running. Then, every turn: tick the core (it hands out batches), build each
//! launch (I/O: rendered commands, spec files), commit the core's changes, submit; poll the
//! executors; post-process each ended attempt (output validation, publishing, typed
//! results: I/O) and feed it to the core; commit in groups. Every decision is the core's.

use crate::attempt_end::ended_attempt;
use crate::attempt_launch::{build_launch, escalated_resources};
use crate::campaign_core::{CampaignCore, CoreStep, CoreTask, Notice};
use crate::campaign_lock::CampaignLock;
use crate::compile::{compile, Plan};
use crate::freshness::{check_output, params_json, OutputCheck};
use crate::layout::{write_atomic, Layout};
use crate::notify::{notify_attempt, Counts, Failure, Notifier};
use crate::progress::{Progress, ProgressRow};
use crate::state::{self, Change, StateStore};
use crate::step_kind::{self, md_benchmark::GateRecord};
use crate::task_id::SCHEME;
use crate::task_state::{RetryCounters, TaskState};
use anyhow::{anyhow, bail, Context, Result};
use flow_dsl::error_class::ErrorClass;
use flow_dsl::model::{Campaign, ExecutorKind};
use flow_executors::local::{LocalCapacity, LocalExecutor};
use flow_executors::task_runner::now;
use flow_executors::{Batch, Executor, ExecutorEvent, TaskLaunch};
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

/// A campaign has one state. When it already has one elsewhere than `db_path` (a new
/// `--state-dir`, or none given after one was), running would start an empty state and
/// redo finished work: refuse, and say how to move it. A state moved by hand to
/// `db_path` is taken as it is.
fn refuse_a_second_state(layout: &Layout, db_path: &std::path::Path) -> Result<()> {
    let recorded = std::fs::read_to_string(layout.state_pointer())
        .ok()
        .map(|t| PathBuf::from(t.trim()));
    let current = recorded.unwrap_or_else(|| layout.default_state_db());
    let holds_state = |p: &std::path::Path| std::fs::metadata(p).is_ok_and(|m| m.len() > 0);
    if current != db_path && holds_state(&current) && !holds_state(db_path) {
        bail!(
            "this campaign's state is {}; running with the state at {} would start an empty state and redo finished work. Run without --state-dir (or with the directory it was started with), or move the state first (the file and its -wal and -shm companions): mv {}* {}/",
            current.display(),
            db_path.display(),
            current.display(),
            db_path.parent().unwrap_or(db_path).display()
        );
    }
    Ok(())
}

/// Run a campaign to the end (or until interrupted).
pub fn run(campaign: &Campaign, opts: &RunOptions) -> Result<RunSummary> {
    // From the first moment: a SIGTERM while the state is created stops the run cleanly.
    install_signal_handlers();
    let plan = compile(campaign, opts.executor).map_err(|d| anyhow!("{d}"))?;
    let layout = Layout::new(&campaign.campaign_dir);
    layout.check_confined().map_err(|e| anyhow!("{e}"))?;
    for dir in [layout.metadata(), layout.logs(), layout.qa()] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // What flow keeps of the configuration shows no secret (`flow_dsl::secrets`).
    let snapshot = serde_json::to_vec_pretty(&flow_dsl::secrets::masked(&campaign.snapshot))?;
    write_atomic(&layout.config_snapshot(), &snapshot)
        .context("cannot write the config snapshot")?;

    let (db_path, note) = state_location(&layout, opts.state_dir.as_ref());
    if let Some(note) = &note {
        eprintln!("note: {note}");
    }
    let pid = std::process::id();
    let host = state::hostname();
    // The lock in the campaign directory first: two drivers given two `--state-dir`s
    // still meet here.
    let (mut lock, note) = CampaignLock::acquire(&layout.driver_lock(), &host, pid, now())?;
    if let Some(msg) = note {
        eprintln!("note: {msg}");
    }
    refuse_a_second_state(&layout, &db_path)?;
    // Where the state is, recorded only by the driver that holds the campaign.
    if db_path != layout.default_state_db() {
        write_atomic(
            &layout.state_pointer(),
            db_path.display().to_string().as_bytes(),
        )?;
    } else {
        let _ = std::fs::remove_file(layout.state_pointer());
    }
    let mut store = StateStore::open(&db_path)?;
    if let Some(msg) = store.acquire_lease(&host, pid, now())? {
        eprintln!("note: {msg}");
    }
    let _ = std::fs::remove_file(layout.cancel_request());
    let result = drive(&plan, &layout, &mut store, &mut lock, opts, pid);
    let _ = store.release_lease(pid);
    drop(lock);
    result
}

/// How long a stopping driver waits for its attempts to report before it leaves them to
/// the next run's recovery.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// The core's view of a plan's steps.
pub fn core_steps(plan: &Plan) -> Vec<CoreStep> {
    plan.campaign
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| CoreStep {
            name: step.name.clone(),
            upstream: plan.steps[i].upstream.clone(),
            condition: step.condition,
            execution: step.execution.clone(),
            per_batch: match plan.executor {
                ExecutorKind::Local => usize::MAX,
                _ => plan.steps[i].batch_size as usize,
            },
            batch_size: plan.steps[i].batch_size,
            on_driver: plan.executor != ExecutorKind::Local && step_kind::runs_on_driver(step),
        })
        .collect()
}

/// How many attempts the executor may hold at once: local, a multiple of the cores; Slurm,
/// the machine's `slurm.max_submitted`; Kubernetes, its `kubernetes.max_submitted` (never
/// the Slurm block's).
pub(crate) fn window(plan: &Plan) -> usize {
    let limit = match plan.executor {
        ExecutorKind::Local => {
            let (cpus, _, _) = crate::compile::local_capacity(plan.campaign);
            return (cpus as usize * 32).max(64);
        }
        ExecutorKind::Slurm => plan.campaign.machine.slurm.max_submitted.map(u64::from),
        ExecutorKind::Kubernetes => plan
            .campaign
            .machine
            .kubernetes
            .as_ref()
            .and_then(|k| k.max_submitted),
    };
    limit.unwrap_or(u64::MAX).clamp(1, 1_000_000) as usize
}

fn drive(
    plan: &Plan,
    layout: &Layout,
    store: &mut StateStore,
    lock: &mut CampaignLock,
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
    for &i in &plan.order {
        let (step, planned) = plan.step(i);
        store.upsert_step(
            &step.name,
            step.kind.as_str(),
            planned.task_count,
            &planned.digest.to_hex(),
        )?;
    }

    // The plan's tasks, as the core sees them; new ones inserted in one transaction.
    let rows = store.load_tasks()?;
    let escalations = store.escalation_counts()?;
    let details = store.success_details()?;
    let mut new_rows: Vec<(String, String, u64, String, String)> = Vec::new();
    let mut tasks: Vec<CoreTask> = Vec::with_capacity(plan.total_tasks() as usize);
    let mut changes: Vec<Change> = Vec::new();
    let mut redone = 0usize;
    // adaptive: the evaluations of committed asks are tasks like any other (their rows
    // were inserted with their ask); registering them puts them in the plan.
    let (mut adaptive, _) = crate::adaptive_step::AdaptiveSteps::load(plan, store)?;
    for i in 0..campaign.steps.len() {
        let work = serde_json::to_string(&plan.steps[i].components)?;
        for t in plan.tasks(i) {
            let mut task = CoreTask::new(t.id.clone(), i, t.index);
            let Some(r) = rows.get(&t.id) else {
                new_rows.push((
                    t.id.clone(),
                    campaign.steps[i].name.clone(),
                    t.index,
                    params_json(&t.params),
                    work.clone(),
                ));
                tasks.push(task);
                continue;
            };
            task.state = r.state;
            task.attempts = r.attempts;
            task.counters = RetryCounters {
                retries: r.retries,
                infrastructure_retries: r.infra_retries,
            };
            task.escalation = escalations.get(&t.id).copied().unwrap_or((0, 0));
            task.not_before = r.not_before;
            task.product = r.product.clone();
            task.consumed = r.consumed.clone();
            task.adopted = r.state == TaskState::Running;
            if r.state == TaskState::Succeeded {
                // Done means verified: the output is still there and valid.
                let d = details
                    .get(&t.id)
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok());
                task.gate_stop = GateRecord::stop_message(d.as_ref());
                match check_output(plan, i, t.index, r.product.as_deref(), d.as_ref(), false) {
                    OutputCheck::Missing(reason) | OutputCheck::Invalid(reason) => {
                        task.state = TaskState::Pending;
                        task.gate_stop = None;
                        redone += 1;
                        if !opts.quiet && redone <= 20 {
                            eprintln!("redoing {}/{}: {reason}", campaign.steps[i].name, t.id);
                        }
                        changes.push(Change::SetState {
                            task_id: t.id.clone(),
                            state: TaskState::Pending,
                            message: Some(format!("re-queued: {reason}")),
                        });
                    }
                    OutputCheck::Present {
                        product,
                        changed: true,
                    } => {
                        task.product = Some(product.clone());
                        changes.push(Change::Product {
                            task_id: t.id.clone(),
                            product,
                        });
                    }
                    _ => {}
                }
            }
            tasks.push(task);
        }
    }
    if redone > 20 && !opts.quiet {
        eprintln!("... and {} more outputs to redo", redone - 20);
    }
    store.insert_tasks(
        new_rows
            .iter()
            .map(|(id, st, idx, p, w)| (id.as_str(), st.as_str(), *idx, p.clone(), w.clone())),
    )?;
    store.apply(&changes, now())?;
    changes.clear();

    let mut executor = crate::backend::executor_for(plan)?;
    // A batch scheduler may still hold jobs of a dead driver: adopt them, never resubmit.
    let adopted: Vec<flow_executors::JobRef> = if plan.executor == ExecutorKind::Local {
        Vec::new()
    } else {
        executor.list_jobs()?
    };
    let mut core = CampaignCore::new(
        core_steps(plan),
        plan.order.clone(),
        tasks,
        executor.name(),
        now(),
    );
    for i in 0..campaign.steps.len() {
        core.set_open_ended(i, adaptive.open_ended(i));
    }
    let recovered = crate::recovery::recover(plan, layout, &mut core, &rows, &adopted);
    drop(rows);
    store.apply(&core.take_changes(), now())?;
    if recovered.ingested > 0 && !opts.quiet {
        eprintln!(
            "recovered {} result(s) of tasks that finished while no driver was running",
            recovered.ingested
        );
    }
    if recovered.killed > 0 {
        store.apply(
            &[Change::Event {
                task_id: None,
                kind: "killed-orphan".into(),
                detail: format!("{} process group(s) of a previous driver", recovered.killed),
            }],
            now(),
        )?;
    }

    install_signal_handlers();
    // Steps that run where the driver runs (build-env: login nodes reach package indexes,
    // compute nodes often do not) use a local executor beside the campaign's.
    let mut driver_executor: Option<LocalExecutor> = None;
    let mut reporter = Progress::new(plan, opts.plain_progress, opts.quiet);
    // notify: the campaign starts (webhook/command of `notify:`; never blocks).
    let mut notifier = Notifier::for_campaign(campaign, layout.metadata().join("notify.log"));
    {
        let rows = progress_rows(plan, &core);
        notifier.start(
            &rows
                .iter()
                .map(|r| (r.step.clone(), r.total))
                .collect::<Vec<_>>(),
            Counts::of_rows(&rows),
        );
    }
    let window = window(plan);
    let mut last_beat = Instant::now();
    let mut last_commit = Instant::now();
    let mut stop_started: Option<Instant> = None;
    let mut last_snapshot = Instant::now() - Duration::from_secs(60);
    let mut summary = RunSummary::default();

    loop {
        // adaptive: each loop whose step may run tells what ended and asks for more; the
        // outcomes it reads are committed before any tell that depends on them.
        for &i in &plan.order {
            if core.cancelling() || !core.growing(i) {
                continue;
            }
            if core.pending_changes() > 0 {
                store.apply(&core.take_changes(), now())?;
                last_commit = Instant::now();
            }
            let new = adaptive.advance(plan, layout, store, i, &|id| {
                core.slot_of(id).map(|n| core.task(n).state)
            })?;
            for t in new {
                core.add_task(CoreTask::new(t.id, t.step, t.index));
            }
            core.set_open_ended(i, adaptive.open_ended(i));
            let step_busy = core
                .step_slots(i)
                .iter()
                .any(|&n| !core.task(n).state.is_final());
            if core.growing(i) && !step_busy {
                bail!(
                    "step {}: its loop waits for evaluations but none is pending or running (the committed history and the tasks disagree; `flow status` shows them)",
                    campaign.steps[i].name
                );
            }
        }
        let t = now();
        for sub in core.tick(t, window) {
            let step = &campaign.steps[sub.step];
            let mut launches: Vec<TaskLaunch> = Vec::with_capacity(sub.tasks.len());
            let mut in_batch: Vec<(usize, u32)> = Vec::with_capacity(sub.tasks.len());
            // The resources after `on_retry`, once per submission: the scheduler gets them,
            // and a typed step's deadline follows their time limit.
            let resources = escalated_resources(step, sub.level);
            let limit = resources.time_limit;
            for &(slot, attempt) in &sub.tasks {
                let task = core.task(slot);
                match build_launch(plan, layout, sub.step, task.index, &task.id, attempt, limit) {
                    Ok(launch) => {
                        launches.push(launch);
                        in_batch.push((slot, attempt));
                    }
                    Err(message) => core.launch_failed(slot, attempt, message, now()),
                }
            }
            // The launch is on disk before the task can start: a crash right after submit
            // finds it `running` and looks for its result instead of starting it again.
            store.apply(&core.take_changes(), now())?;
            last_commit = Instant::now();
            if launches.is_empty() {
                continue;
            }
            let batch = Batch {
                campaign: format!("{}_{}", campaign.version, campaign.name),
                step: step.name.clone(),
                batch_key: sub.batch_key.clone(),
                resources,
                max_running: step.execution.max_running,
                tasks: launches,
            };
            let submitted = if sub.on_driver {
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
                core.submit_failed(&in_batch, class, &e.to_string(), now());
            }
        }

        // Group commit: outcomes are also in result files on disk, so a crash between two
        // commits loses nothing (recovery ingests them); committing every few hundred
        // milliseconds keeps SQLite from capping throughput.
        if core.pending_changes() > 0
            && (last_commit.elapsed() >= COMMIT_INTERVAL || core.pending_changes() >= 5000)
        {
            last_commit = Instant::now();
            store.apply(&core.take_changes(), now())?;
        }
        if core.finished() {
            // Steps left blocked: their successes that consumed changed outputs are not done.
            core.settle();
            store.apply(&core.take_changes(), now())?;
            break;
        }
        if stop_started.is_some_and(|s| s.elapsed() > STOP_GRACE) {
            reporter.note(&format!(
                "stopping without waiting longer: {} attempt(s) did not report within {} s; the next `flow run` recovers them",
                core.in_flight(),
                STOP_GRACE.as_secs()
            ));
            break;
        }

        let max_wait = match core.next_due() {
            Some(due) => Duration::from_secs_f64((due - now()).clamp(0.001, 0.25)),
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
        let wait = if events.is_empty() {
            max_wait
        } else {
            Duration::ZERO
        };
        events.extend(executor.poll(wait)?);
        for ev in events {
            match ev {
                ExecutorEvent::Started {
                    task_id,
                    attempt,
                    job_id,
                    pid,
                    at,
                } => {
                    if let Some(slot) = core.slot_of(&task_id) {
                        core.started(slot, attempt, job_id, pid, at);
                    }
                }
                ExecutorEvent::Finished {
                    task_id,
                    attempt,
                    outcome,
                } => {
                    let Some(slot) = core.slot_of(&task_id) else {
                        continue;
                    };
                    let task = core.task(slot);
                    if task.attempts != attempt || task.state != TaskState::Running {
                        continue; // A stale report of an older attempt.
                    }
                    let (i, index) = (task.step, task.index);
                    let ended = ended_attempt(plan, layout, i, index, &task_id, attempt, outcome);
                    if let Some(info) = ended
                        .details
                        .as_deref()
                        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                        .and_then(|d| d.get("step_info").cloned())
                    {
                        merge_step_info(store, &campaign.steps[i].name, &info)?;
                    }
                    // notify: what this attempt's end may tell (gate decision, failure).
                    let told = notifier.enabled().then(|| ended.clone());
                    let message = ended.outcome.message.clone().unwrap_or_default();
                    let decision = core.ended(slot, attempt, ended, now());
                    if core.task(slot).state == TaskState::Failed {
                        let step = &campaign.steps[i];
                        step_kind::of(step.kind).after_final_failure(
                            &step_kind::Attempt {
                                plan,
                                layout,
                                step_index: i,
                                index,
                                task_id: &task_id,
                                attempt,
                            },
                            &message,
                        );
                    }
                    if let (Some(decision), Some(told)) = (decision, told) {
                        notify_attempt(
                            &mut notifier,
                            &campaign.steps[i].name,
                            &task_id,
                            &decision,
                            &told,
                            || Counts::of_rows(&progress_rows(plan, &core)),
                        );
                    }
                    summary.ran += 1;
                }
                // Once per executor (e.g. sbatch refusing for a QOS submit limit): shown in
                // progress, kept as an event for `flow status` and `flow report`.
                ExecutorEvent::Notice { kind, message } => {
                    reporter.note(&format!("{}: {message}", executor.name()));
                    store.apply(
                        &[Change::Event {
                            task_id: None,
                            kind,
                            detail: message,
                        }],
                        now(),
                    )?;
                }
            }
        }
        for notice in core.take_notices() {
            reporter.note(&match notice {
                Notice::GateStop { step, message } => {
                    format!("gate of step {step} stops its dependents: {message}")
                }
                Notice::GateWarn { step, message } => format!("step {step}: {message}"),
                Notice::GateCleared { step } => {
                    format!("gate of step {step} passes now: its dependents may run")
                }
                Notice::Stale { step, tasks } => format!(
                    "step {step}: {tasks} task(s) are stale (an upstream output they consumed was redone) and run again"
                ),
            });
        }

        if !core.cancelling()
            && (INTERRUPTED.load(Ordering::SeqCst) || layout.cancel_request().exists())
        {
            summary.interrupted = true;
            stop_started = Some(Instant::now());
            reporter.note("stopping: running tasks get SIGTERM, then SIGKILL after a grace period");
            core.cancel();
            let _ = executor.cancel(&[]);
            if let Some(local) = driver_executor.as_mut() {
                let _ = local.cancel(&[]);
            }
            let _ = std::fs::remove_file(layout.cancel_request());
        }
        if last_beat.elapsed() > Duration::from_secs(2) {
            store.heartbeat(pid, now())?;
            lock.heartbeat(now());
            last_beat = Instant::now();
        }
        if last_snapshot.elapsed() > Duration::from_secs(5) {
            write_status_snapshot(plan, layout, &core);
            last_snapshot = Instant::now();
        }
        if reporter.due() {
            reporter.update(&progress_rows(plan, &core));
        }
    }
    adaptive.close();
    store.apply(&core.take_changes(), now())?;
    if core.in_flight() == 0 {
        // Every status they hold is committed now (recovery's too): nothing to keep.
        flow_executors::local::remove_result_journals(&layout.result_journals());
    }
    write_status_snapshot(plan, layout, &core);
    reporter.finish(&progress_rows(plan, &core));
    for (i, step) in campaign.steps.iter().enumerate() {
        if step.kind == flow_dsl::model::StepKind::QeScf && core.counts(i).succeeded > 0 {
            let succeeded = core
                .tasks()
                .iter()
                .filter(|s| s.step == i && s.state == TaskState::Succeeded);
            let dirs = succeeded.map(|s| layout.work_dir(&step.name, s.index, &s.id));
            match step_kind::qe_scf::write_aggregate(layout, &step.name, dirs) {
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

    summary.interrupted |= core.in_flight() > 0;
    for i in 0..campaign.steps.len() {
        let c = core.counts(i);
        summary.total += c.total;
        summary.succeeded += c.succeeded;
        summary.failed += c.failed;
        summary.blocked += c.blocked;
        summary.cancelled += c.cancelled;
        summary.skipped += c.skipped;
    }
    let current: std::collections::HashSet<&str> =
        core.tasks().iter().map(|t| t.id.as_str()).collect();
    for row in store.load_tasks()?.into_values() {
        if row.state == TaskState::Failed && current.contains(row.id.as_str()) {
            summary.failures.push((
                row.id,
                row.step,
                row.error_class.unwrap_or_default(),
                row.message.unwrap_or_default(),
            ));
        }
    }
    summary.failures.sort();
    // notify: the campaign ended (waits a bounded time for queued messages).
    notifier.end(
        Counts::of_rows(&progress_rows(plan, &core)),
        summary.interrupted,
        &summary
            .failures
            .iter()
            .map(|(task, step, class, message)| Failure {
                step: step.clone(),
                task: task.clone(),
                class: class.clone(),
                message: message.clone(),
            })
            .collect::<Vec<_>>(),
    );
    Ok(summary)
}

fn merge_step_info(store: &StateStore, step: &str, info: &serde_json::Value) -> Result<()> {
    let mut merged = store
        .step_info()?
        .remove(step)
        .unwrap_or_else(|| serde_json::json!({}));
    if let (Some(m), Some(new)) = (merged.as_object_mut(), info.as_object()) {
        for (k, v) in new {
            m.insert(k.clone(), v.clone());
        }
        // The gate's decision lives with its task now, not in the step.
        m.remove("gate_stop");
    }
    store.set_step_info(step, &merged)?;
    Ok(())
}

/// The progress display's rows.
pub fn progress_rows(plan: &Plan, core: &CampaignCore) -> Vec<ProgressRow> {
    plan.order
        .iter()
        .map(|&i| {
            let c = core.counts(i);
            ProgressRow {
                step: plan.campaign.steps[i].name.clone(),
                total: c.total,
                succeeded: c.succeeded,
                failed: c.failed,
                blocked: c.blocked,
                cancelled: c.cancelled,
                running: c.running,
                submitted: c.submitted,
                pending: c.pending(),
            }
        })
        .collect()
}

/// A small JSON file beside the campaign that `flow status` can read without touching the
/// database (needed when the database is on another machine's local disk).
fn write_status_snapshot(plan: &Plan, layout: &Layout, core: &CampaignCore) {
    let doc = serde_json::json!({
        "written_at": now(),
        "steps": progress_rows(plan, core),
    });
    let _ = write_atomic(&layout.status_snapshot(), doc.to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_window(machine: &str) -> usize {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.yaml"), machine).unwrap();
        let campaign = flow_dsl::load::load_campaign_text(
            "c.yaml",
            "campaign: {name: w, version: v1, machine: m.yaml, output: out}\nsteps:\n  a: {kind: command, command: 'true'}\n",
            dir.path(),
        )
        .unwrap();
        let plan = compile(&campaign, None).unwrap();
        window(&plan)
    }

    #[test]
    fn each_backend_takes_its_own_window() {
        let both = "  slurm: {max_submitted: 7}\n  kubernetes: {namespace: ns, image: img, max_submitted: 40}\n";
        let kube = format!("machine:\n  name: k\n  executor: kubernetes\n{both}");
        assert_eq!(plan_window(&kube), 40, "Kubernetes reads its own block");
        let slurm = format!("machine:\n  name: s\n  executor: slurm\n{both}");
        assert_eq!(plan_window(&slurm), 7);
        let kube_unset = "machine:\n  name: k\n  executor: kubernetes\n  slurm: {max_submitted: 7}\n  kubernetes: {namespace: ns, image: img}\n";
        assert_eq!(
            plan_window(kube_unset),
            1_000_000,
            "never the Slurm block's"
        );
    }
}
