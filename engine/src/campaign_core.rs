//! The campaign core: every rule of a run as a state machine over data.
//!
//! `CampaignCore` holds the in-memory state of a campaign (its tasks, per-step progress,
//! the retry queue, gates) and is fed events: a clock tick (with how much the executor
//! holds), an attempt started or ended, a launch or a submission that failed, a cancel.
//! It answers with the batches to submit and records every state change in an outbox
//! ([`CampaignCore::take_changes`]) that the driver commits to SQLite. It does no I/O and
//! reads no clock of its own: the same events in the same order give the same decisions,
//! which is what lets every rule below be a unit test.
//!
//! The rules it keeps:
//! - a task is launched only when every step it needs is open (all succeeded, or all
//!   completed with `condition: all-completed`) and no gate upstream says stop;
//! - a step whose needs failed (or whose upstream gate stopped) blocks its tasks, each with
//!   the reason (the failed step and counts, or the gate's message);
//! - when a step opens, its tasks recorded as succeeded are compared with what they
//!   consumed: a changed upstream product makes them stale, and they run again;
//! - a gate's decision belongs to the benchmark task that made it: a rerun replaces it;
//! - an attempt's end is decided by [`task_state::decide`](crate::task_state::decide) (retry
//!   with backoff, infrastructure retries, final failure); a launch that cannot be built or
//!   a submission the backend refuses ends its attempts, so a run always ends;
//! - counts are exact: `running` are attempts the executor started, `submitted` those it
//!   holds but has not started, and every task is in exactly one state.

use crate::state::Change;
use crate::task_state::{decide, Decision, RetryCounters, TaskState};
use flow_dsl::error_class::ErrorClass;
use flow_dsl::model::{Condition, Execution};
use flow_executors::AttemptOutcome;
use std::collections::{BinaryHeap, VecDeque};

/// What the core needs to know of a step.
#[derive(Debug, Clone)]
pub struct CoreStep {
    pub name: String,
    /// Indices of the steps it needs.
    pub upstream: Vec<usize>,
    pub condition: Condition,
    pub execution: Execution,
    /// Most tasks in one submission (local: unbounded).
    pub per_batch: usize,
    /// The planned batch size (names batches by where their first task sits).
    pub batch_size: u64,
    /// Its tasks run on the driver's own executor (build-env).
    pub on_driver: bool,
}

/// One task as the core sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreTask {
    pub id: String,
    pub step: usize,
    pub index: u64,
    pub state: TaskState,
    pub attempts: u32,
    pub counters: RetryCounters,
    /// Failures for lack of time and of memory so far: how far `on_retry` escalates.
    pub escalation: (u32, u32),
    /// A retry waits until then (unix seconds).
    pub not_before: Option<f64>,
    /// The fingerprint of what its success produced (what consumers depend on).
    pub product: Option<String>,
    /// The digest of its upstream products when it last launched.
    pub consumed: Option<String>,
    /// md-benchmark: its success's gate said stop, with this message.
    pub gate_stop: Option<String>,
    /// `Running` and still held by the backend after a restart (adopted, not relaunched).
    pub adopted: bool,
}

impl CoreTask {
    /// A task not run yet.
    pub fn new(id: impl Into<String>, step: usize, index: u64) -> CoreTask {
        CoreTask {
            id: id.into(),
            step,
            index,
            state: TaskState::Pending,
            attempts: 0,
            counters: RetryCounters::default(),
            escalation: (0, 0),
            not_before: None,
            product: None,
            consumed: None,
            gate_stop: None,
            adopted: false,
        }
    }
}

/// A batch the driver should build and submit: `(task slot, attempt)` pairs of one step and
/// one escalation level. Their `Launched` changes are already in the outbox and must be
/// committed before the backend can start them.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub step: usize,
    pub batch_key: String,
    pub level: (u32, u32),
    pub on_driver: bool,
    pub tasks: Vec<(usize, u32)>,
}

/// What a gate (md-benchmark) decided with an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum GateEffect {
    /// Not a gate, or the attempt failed before deciding.
    None,
    Continue,
    /// MARGINAL with `on_marginal: warn`.
    Warn(String),
    /// Stop every descendant step.
    Stop(String),
}

/// An ended attempt, after the step's own checks (done by the driver: they read files).
#[derive(Debug, Clone)]
pub struct EndedAttempt {
    pub outcome: AttemptOutcome,
    /// JSON stored with the attempt.
    pub details: Option<String>,
    /// The step already retried on its own terms: do not retry.
    pub final_failure: bool,
    /// Cancelled by someone else than flow (scancel): retried like a kill.
    pub cancelled_elsewhere: bool,
    pub gate: GateEffect,
    /// Fingerprint of what a success produced.
    pub product: Option<String>,
}

impl EndedAttempt {
    /// An outcome with nothing to add.
    pub fn plain(outcome: AttemptOutcome) -> EndedAttempt {
        EndedAttempt {
            outcome,
            details: None,
            final_failure: false,
            cancelled_elsewhere: false,
            gate: GateEffect::None,
            product: None,
        }
    }
}

/// Something worth telling the person watching.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    GateStop { step: String, message: String },
    GateWarn { step: String, message: String },
    GateCleared { step: String },
    Stale { step: String, tasks: u64 },
}

/// Per-step progress.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StepCounts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub blocked: u64,
    pub cancelled: u64,
    /// Handed to the executor, not started yet.
    pub submitted: u64,
    /// Started by the executor.
    pub running: u64,
    /// Tasks that were done before this run and stayed done.
    pub skipped: u64,
    /// Attempts that ended in this run.
    pub ran: u64,
}

impl StepCounts {
    fn finals(&self) -> u64 {
        self.succeeded + self.failed + self.blocked + self.cancelled
    }
    /// Pending: waiting for upstream, a slot or a retry delay.
    pub fn pending(&self) -> u64 {
        self.total
            .saturating_sub(self.finals() + self.submitted + self.running)
    }
}

#[derive(Debug, Default)]
struct StepState {
    counts: StepCounts,
    /// Its tasks' slots (a step's tasks need not be contiguous: adaptive steps add some
    /// while the campaign runs).
    slots: Vec<usize>,
    /// Its task list may still grow (an adaptive loop that is not done): it is not complete
    /// whatever its counts say.
    open_ended: bool,
    ready: VecDeque<usize>,
    /// The gate: the task whose success said stop, and its message.
    gate: Option<(usize, String)>,
    /// Staleness checked since the step opened.
    checked: bool,
    /// Digest of the upstream products while the step is open.
    consumed_now: Option<String>,
}

/// A task waiting for its retry delay: (due time, slot); the heap pops the earliest.
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
        other
            .0
            .partial_cmp(&self.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| other.1.cmp(&self.1))
    }
}

/// Task id -> slot, in about 20 bytes a task: the map keeps a 64-bit hash of each id (a
/// `HashMap<String, usize>` of a million ids costs ~100 MB more), every hit is checked
/// against the task's own id, and the rare ids whose hash another id already took are kept
/// whole in `collided`.
#[derive(Debug, Default)]
struct SlotIndex {
    by_hash: std::collections::HashMap<u64, u32>,
    collided: std::collections::HashMap<String, usize>,
}

fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl SlotIndex {
    fn insert(&mut self, id: &str, slot: usize, tasks: &[CoreTask]) {
        match self.by_hash.entry(id_hash(id)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(slot as u32);
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                if tasks[*o.get() as usize].id != id {
                    self.collided.insert(id.to_string(), slot);
                }
            }
        }
    }

    fn get(&self, id: &str, tasks: &[CoreTask]) -> Option<usize> {
        let slot = *self.by_hash.get(&id_hash(id))? as usize;
        if tasks.get(slot).is_some_and(|t| t.id == id) {
            return Some(slot);
        }
        self.collided.get(id).copied()
    }
}

/// Count task `n` into its step as [`CampaignCore::new`] describes its initial states:
/// succeeded and failed stay (a success may hold the step's gate), an adopted running task
/// counts as submitted, anything else is pending: ready, or waiting for its `not_before`.
fn admit(
    s: &mut StepState,
    waiting: &mut BinaryHeap<Waiting>,
    n: usize,
    t: &mut CoreTask,
    now: f64,
) {
    s.slots.push(n);
    s.counts.total += 1;
    match t.state {
        TaskState::Succeeded => {
            s.counts.succeeded += 1;
            s.counts.skipped += 1;
            if let Some(m) = &t.gate_stop {
                s.gate = Some((n, m.clone()));
            }
        }
        TaskState::Failed => s.counts.failed += 1,
        // Its job is still in the backend: its events will come.
        TaskState::Running if t.adopted => s.counts.submitted += 1,
        _ => {
            t.state = TaskState::Pending;
            match t.not_before {
                Some(nb) if nb > now => waiting.push(Waiting(nb, n)),
                _ => s.ready.push_back(n),
            }
        }
    }
}

/// The campaign core (see the module documentation).
pub struct CampaignCore {
    steps: Vec<CoreStep>,
    order: Vec<usize>,
    tasks: Vec<CoreTask>,
    slots: SlotIndex,
    /// Whether each task's attempt was started (not only submitted).
    started: Vec<bool>,
    state: Vec<StepState>,
    waiting: BinaryHeap<Waiting>,
    changes: Vec<Change>,
    notices: Vec<Notice>,
    cancelling: bool,
    executor_name: String,
}

impl CampaignCore {
    /// A core over `tasks` (in any order). `order` is a topological order of the steps.
    ///
    /// Initial states: succeeded and failed tasks stay; blocked and cancelled tasks are
    /// pending again (their upstream may have been retried; a cancelled run resumes);
    /// pending tasks are ready, or wait for their `not_before`; running tasks that are not
    /// `adopted` must have been settled by recovery first (they are treated as pending).
    pub fn new(
        steps: Vec<CoreStep>,
        order: Vec<usize>,
        mut tasks: Vec<CoreTask>,
        executor_name: &str,
        now: f64,
    ) -> CampaignCore {
        let mut state: Vec<StepState> = (0..steps.len()).map(|_| StepState::default()).collect();
        let mut waiting = BinaryHeap::new();
        let started = vec![false; tasks.len()];
        for (n, t) in tasks.iter_mut().enumerate() {
            admit(&mut state[t.step], &mut waiting, n, t, now);
        }
        let mut slots = SlotIndex::default();
        slots.by_hash.reserve(tasks.len());
        for (n, t) in tasks.iter().enumerate() {
            slots.insert(&t.id, n, &tasks);
        }
        CampaignCore {
            steps,
            order,
            tasks,
            slots,
            started,
            state,
            waiting,
            changes: Vec::new(),
            notices: Vec::new(),
            cancelling: false,
            executor_name: executor_name.to_string(),
        }
    }

    /// The slot of the task with this id.
    pub fn slot_of(&self, id: &str) -> Option<usize> {
        self.slots.get(id, &self.tasks)
    }

    pub fn task(&self, slot: usize) -> &CoreTask {
        &self.tasks[slot]
    }

    pub fn tasks(&self) -> &[CoreTask] {
        &self.tasks
    }

    pub fn step(&self, i: usize) -> &CoreStep {
        &self.steps[i]
    }

    pub fn counts(&self, i: usize) -> &StepCounts {
        &self.state[i].counts
    }

    /// The state changes since the last call, for the store.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    pub fn pending_changes(&self) -> usize {
        self.changes.len()
    }

    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    pub fn cancelling(&self) -> bool {
        self.cancelling
    }

    /// Attempts handed to the executor and not ended.
    pub fn in_flight(&self) -> u64 {
        self.state
            .iter()
            .map(|s| s.counts.submitted + s.counts.running)
            .sum()
    }

    /// When the next retry delay ends, if any task waits for one.
    pub fn next_due(&self) -> Option<f64> {
        self.waiting.peek().map(|w| w.0)
    }

    /// Nothing runs and nothing more can: the run is over.
    pub fn finished(&self) -> bool {
        if self.in_flight() > 0 || !self.waiting.is_empty() {
            return false;
        }
        if self.cancelling {
            return true;
        }
        if self.order.iter().any(|&i| self.growing(i)) {
            return false;
        }
        let ready: usize = self.state.iter().map(|s| s.ready.len()).sum();
        ready == 0 || !self.any_step_can_progress()
    }

    /// Step `i` may still get tasks in this run: its list is open-ended and its needs are
    /// done (the driver asks its loop for more every turn).
    pub fn growing(&self, i: usize) -> bool {
        self.state[i].open_ended && self.upstream_open(i) && self.blocking_reason(i).is_none()
    }

    /// Mark a step's task list as open-ended (may still grow) or closed.
    pub fn set_open_ended(&mut self, i: usize, open_ended: bool) {
        self.state[i].open_ended = open_ended;
    }

    /// Add a task to a step while the campaign runs (an adaptive step's evaluation); it is
    /// ready at once. Its row must already be in the store. Returns its slot.
    pub fn add_task(&mut self, mut task: CoreTask) -> usize {
        let n = self.tasks.len();
        // No clock here: a retry delay it carries is waited for in full.
        admit(
            &mut self.state[task.step],
            &mut self.waiting,
            n,
            &mut task,
            f64::NEG_INFINITY,
        );
        let id = task.id.clone();
        self.tasks.push(task);
        self.slots.insert(&id, n, &self.tasks);
        self.started.push(false);
        n
    }

    /// The slots of step `i`'s tasks.
    pub fn step_slots(&self, i: usize) -> &[usize] {
        &self.state[i].slots
    }

    /// Whether a step's needs are all done (as its condition requires).
    pub fn upstream_open(&self, i: usize) -> bool {
        let step = &self.steps[i];
        step.upstream.iter().all(|&u| {
            if self.state[u].open_ended {
                return false;
            }
            let c = &self.state[u].counts;
            match step.condition {
                Condition::AllSucceeded => c.succeeded == c.total,
                Condition::AllCompleted => c.finals() == c.total,
            }
        })
    }

    /// Why step `i` cannot run, if it cannot.
    pub fn blocking_reason(&self, i: usize) -> Option<String> {
        let step = &self.steps[i];
        for &u in &step.upstream {
            let up = &self.state[u];
            let name = &self.steps[u].name;
            if let Some((slot, gate)) = &up.gate {
                return Some(format!(
                    "blocked by the gate of step {name} (task {}): {gate}",
                    self.tasks[*slot].id
                ));
            }
            if step.condition == Condition::AllSucceeded && up.counts.failed + up.counts.blocked > 0
            {
                let failed_task = up
                    .slots
                    .iter()
                    .map(|&n| &self.tasks[n])
                    .find(|t| t.state == TaskState::Failed)
                    .map(|t| format!("; first failed task {}", t.id))
                    .unwrap_or_default();
                return Some(format!(
                    "blocked: upstream step {name} did not succeed ({} failed, {} blocked{failed_task})",
                    up.counts.failed, up.counts.blocked
                ));
            }
            if step.condition == Condition::AllCompleted
                && up.counts.blocked == up.counts.total
                && up.counts.total > 0
            {
                return Some(format!("blocked: upstream step {name} never ran"));
            }
            // An open-ended step that cannot run will never close.
            if up.open_ended {
                if let Some(reason) = self.blocking_reason(u) {
                    return Some(format!(
                        "blocked: upstream step {name} cannot run ({reason})"
                    ));
                }
            }
        }
        None
    }

    fn any_step_can_progress(&self) -> bool {
        self.order.iter().any(|&i| {
            !self.state[i].ready.is_empty()
                && (self.upstream_open(i) || self.blocking_reason(i).is_some())
        })
    }

    /// The digest of what step `i`'s tasks consume now: every upstream step's products.
    pub fn consumed_digest(&self, i: usize) -> String {
        consumed_digest_of(self.steps[i].upstream.iter().map(|&u| {
            let s = &self.state[u];
            let tasks = s
                .slots
                .iter()
                .map(|&n| &self.tasks[n])
                .map(|t| (t.id.as_str(), t.state, t.product.as_deref()));
            (self.steps[u].name.as_str(), product_digest(tasks))
        }))
    }

    /// One turn: retries whose delay is over become ready; steps blocked by their needs
    /// block their tasks; open steps hand out batches while the executor holds fewer than
    /// `window` attempts (refilled in halves: one transaction per many tasks).
    pub fn tick(&mut self, now: f64, window: usize) -> Vec<Submission> {
        while self.waiting.peek().is_some_and(|w| w.0 <= now) {
            if let Some(Waiting(_, n)) = self.waiting.pop() {
                let step = self.tasks[n].step;
                self.state[step].ready.push_back(n);
            }
        }
        if self.cancelling {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut in_flight = self.in_flight() as usize;
        let refill = in_flight <= window / 2;
        for oi in 0..self.order.len() {
            let i = self.order[oi];
            if let Some(reason) = self.blocking_reason(i) {
                while let Some(n) = self.state[i].ready.pop_front() {
                    self.tasks[n].state = TaskState::Blocked;
                    self.state[i].counts.blocked += 1;
                    self.changes.push(Change::SetState {
                        task_id: self.tasks[n].id.clone(),
                        state: TaskState::Blocked,
                        message: Some(reason.clone()),
                    });
                }
                continue;
            }
            if !self.upstream_open(i) {
                continue;
            }
            if !self.state[i].checked {
                self.check_staleness(i);
            }
            while refill && in_flight < window && !self.state[i].ready.is_empty() {
                let take = (window - in_flight)
                    .min(self.steps[i].per_batch.max(1))
                    .min(self.state[i].ready.len());
                let submission = self.form_batch(i, take, now);
                in_flight += submission.tasks.len();
                if submission.tasks.is_empty() {
                    break;
                }
                out.push(submission);
            }
        }
        out
    }

    /// Compare the step's succeeded tasks with what they consumed; stale ones run again.
    fn check_staleness(&mut self, i: usize) {
        self.state[i].checked = true;
        if self.steps[i].upstream.is_empty() {
            return;
        }
        let now_digest = self.consumed_digest(i);
        self.state[i].consumed_now = Some(now_digest.clone());
        let mut stale = 0;
        for k in 0..self.state[i].slots.len() {
            let n = self.state[i].slots[k];
            let t = &self.tasks[n];
            if t.state != TaskState::Succeeded {
                continue;
            }
            // A success recorded without what it consumed (an older flow) is kept.
            let Some(consumed) = &t.consumed else {
                continue;
            };
            if *consumed == now_digest {
                continue;
            }
            stale += 1;
            let t = &mut self.tasks[n];
            t.state = TaskState::Pending;
            t.gate_stop = None;
            let s = &mut self.state[i];
            s.counts.succeeded -= 1;
            s.counts.skipped = s.counts.skipped.saturating_sub(1);
            s.ready.push_back(n);
            if s.gate.as_ref().is_some_and(|(g, _)| *g == n) {
                s.gate = None;
            }
            self.changes.push(Change::SetState {
                task_id: self.tasks[n].id.clone(),
                state: TaskState::Pending,
                message: Some(
                    "re-queued: upstream changed (an output it consumed was redone)".into(),
                ),
            });
        }
        if stale > 0 {
            self.notices.push(Notice::Stale {
                step: self.steps[i].name.clone(),
                tasks: stale,
            });
        }
    }

    fn form_batch(&mut self, i: usize, take: usize, now: f64) -> Submission {
        let Some(&n0) = self.state[i].ready.front() else {
            return Submission {
                step: i,
                batch_key: String::new(),
                level: (0, 0),
                on_driver: self.steps[i].on_driver,
                tasks: Vec::new(),
            };
        };
        let level = self.tasks[n0].escalation;
        let attempt0 = self.tasks[n0].attempts + 1;
        let base = format!(
            "{}-b{:05}",
            self.steps[i].name,
            self.tasks[n0].index / self.steps[i].batch_size.max(1)
        );
        let batch_key = if attempt0 > 1 {
            format!("{base}-a{attempt0}")
        } else {
            base
        };
        let consumed = if self.steps[i].upstream.is_empty() {
            None
        } else {
            Some(
                self.state[i]
                    .consumed_now
                    .clone()
                    .unwrap_or_else(|| self.consumed_digest(i)),
            )
        };
        let mut tasks = Vec::with_capacity(take);
        for _ in 0..take {
            let Some(&n) = self.state[i].ready.front() else {
                break;
            };
            // One batch holds tasks of one escalation level (same resources).
            if self.tasks[n].escalation != level {
                break;
            }
            self.state[i].ready.pop_front();
            let t = &mut self.tasks[n];
            t.attempts += 1;
            t.state = TaskState::Running;
            t.not_before = None;
            t.consumed = consumed.clone();
            t.adopted = false;
            self.started[n] = false;
            self.state[i].counts.submitted += 1;
            self.changes.push(Change::Launched {
                task_id: t.id.clone(),
                attempt: t.attempts,
                executor: self.executor_name.clone(),
                batch_key: batch_key.clone(),
                at: now,
                consumed: consumed.clone(),
            });
            tasks.push((n, t.attempts));
        }
        Submission {
            step: i,
            batch_key,
            level,
            on_driver: self.steps[i].on_driver,
            tasks,
        }
    }

    /// The executor started an attempt.
    pub fn started(
        &mut self,
        slot: usize,
        attempt: u32,
        job_id: String,
        pid: Option<u32>,
        at: f64,
    ) {
        let t = &self.tasks[slot];
        if t.attempts != attempt || t.state != TaskState::Running {
            return;
        }
        if !std::mem::replace(&mut self.started[slot], true) {
            let c = &mut self.state[t.step].counts;
            c.submitted = c.submitted.saturating_sub(1);
            c.running += 1;
        }
        self.changes.push(Change::Started {
            task_id: t.id.clone(),
            attempt,
            job_id,
            pid,
            at,
        });
    }

    /// An attempt could not be launched (its command or spec could not be built).
    pub fn launch_failed(&mut self, slot: usize, attempt: u32, message: String, now: f64) {
        let outcome = AttemptOutcome {
            exit_code: None,
            signal: None,
            error_class: Some(ErrorClass::LaunchFailed),
            message: Some(message),
            started_at: None,
            ended_at: Some(now),
            usage: None,
        };
        self.ended(slot, attempt, EndedAttempt::plain(outcome), now);
    }

    /// The backend refused a submission: each of its attempts ends with `class`.
    pub fn submit_failed(
        &mut self,
        tasks: &[(usize, u32)],
        class: ErrorClass,
        message: &str,
        now: f64,
    ) {
        for &(slot, attempt) in tasks {
            let outcome = AttemptOutcome::ended_without_exit(class, message, now);
            self.ended(slot, attempt, EndedAttempt::plain(outcome), now);
        }
    }

    /// An attempt ended. Stale reports (of an older attempt, or of a task no longer
    /// running) are ignored. Returns the decision taken, if the report counted.
    pub fn ended(
        &mut self,
        slot: usize,
        attempt: u32,
        ended: EndedAttempt,
        now: f64,
    ) -> Option<Decision> {
        let t = &self.tasks[slot];
        if t.attempts != attempt || t.state != TaskState::Running {
            return None;
        }
        let i = t.step;
        {
            let c = &mut self.state[i].counts;
            if std::mem::replace(&mut self.started[slot], false) {
                c.running = c.running.saturating_sub(1);
            } else {
                c.submitted = c.submitted.saturating_sub(1);
            }
            c.ran += 1;
        }
        let EndedAttempt {
            outcome,
            details,
            final_failure,
            cancelled_elsewhere,
            gate,
            product,
        } = ended;
        let t = &self.tasks[slot];
        let decision = if final_failure && !outcome.succeeded() {
            Decision::Failed
        } else {
            let class = if cancelled_elsewhere && !self.cancelling {
                Some(ErrorClass::Signal)
            } else {
                outcome.error_class
            };
            decide(
                class,
                t.counters,
                &self.steps[i].execution,
                jitter_unit(&t.id, t.attempts),
            )
        };
        // Nothing is retried while the run stops: the task is cancelled (a rerun resumes it).
        // An attempt our own stop killed is cancelled, not failed.
        let killed_by_stop = self.cancelling
            && matches!(
                outcome.error_class,
                Some(ErrorClass::Signal | ErrorClass::Cancelled)
            );
        let decision = match decision {
            Decision::Retry { .. } if self.cancelling => Decision::Cancelled,
            Decision::Failed if killed_by_stop => Decision::Cancelled,
            d => d,
        };
        let t = &mut self.tasks[slot];
        match outcome.error_class {
            Some(ErrorClass::Walltime) => t.escalation.0 += 1,
            Some(ErrorClass::OutOfMemory) => t.escalation.1 += 1,
            _ => {}
        }
        let mut not_before = None;
        let state = match &decision {
            Decision::Succeeded => TaskState::Succeeded,
            Decision::Failed => TaskState::Failed,
            Decision::Cancelled => TaskState::Cancelled,
            Decision::Retry { delay, counts } => {
                if *counts {
                    t.counters.retries += 1;
                } else {
                    t.counters.infrastructure_retries += 1;
                }
                not_before = Some(now + delay.as_secs_f64());
                TaskState::Pending
            }
        };
        t.state = state;
        t.not_before = not_before;
        if state == TaskState::Succeeded {
            t.product = product.clone();
        }
        let id = t.id.clone();
        // The gate belongs to this task: its new decision replaces its old one.
        if state == TaskState::Succeeded {
            let name = self.steps[i].name.clone();
            let s = &mut self.state[i];
            let had = s.gate.as_ref().is_some_and(|(g, _)| *g == slot);
            match &gate {
                GateEffect::Stop(m) => {
                    self.tasks[slot].gate_stop = Some(m.clone());
                    s.gate = Some((slot, m.clone()));
                    self.notices.push(Notice::GateStop {
                        step: name,
                        message: m.clone(),
                    });
                }
                other => {
                    self.tasks[slot].gate_stop = None;
                    if had {
                        s.gate = None;
                        self.notices
                            .push(Notice::GateCleared { step: name.clone() });
                    }
                    if let GateEffect::Warn(m) = other {
                        self.notices.push(Notice::GateWarn {
                            step: name,
                            message: m.clone(),
                        });
                    }
                }
            }
        }
        let t = &self.tasks[slot];
        self.changes.push(Change::Finished {
            task_id: id,
            attempt,
            outcome,
            state,
            retries: t.counters.retries,
            infra_retries: t.counters.infrastructure_retries,
            not_before,
            details,
            product: if state == TaskState::Succeeded {
                product
            } else {
                None
            },
        });
        let c = &mut self.state[i].counts;
        match &decision {
            Decision::Succeeded => c.succeeded += 1,
            Decision::Failed => c.failed += 1,
            Decision::Cancelled => c.cancelled += 1,
            Decision::Retry { delay, .. } => {
                self.waiting.push(Waiting(now + delay.as_secs_f64(), slot))
            }
        }
        Some(decision)
    }

    /// An attempt was lost with its driver (no result, no job, no process left): the task
    /// runs again without counting a retry.
    pub fn lost(&mut self, slot: usize, attempt: u32, message: &str) {
        let t = &mut self.tasks[slot];
        if t.attempts != attempt || t.state != TaskState::Running {
            return;
        }
        t.state = TaskState::Pending;
        t.adopted = false;
        let c = &mut self.state[t.step].counts;
        if std::mem::replace(&mut self.started[slot], false) {
            c.running = c.running.saturating_sub(1);
        } else {
            c.submitted = c.submitted.saturating_sub(1);
        }
        self.state[t.step].ready.push_back(slot);
        self.changes.push(Change::SetState {
            task_id: t.id.clone(),
            state: TaskState::Pending,
            message: Some(message.to_string()),
        });
    }

    /// Stop: nothing more is launched; tasks waiting to launch or for a retry are
    /// cancelled. Attempts in flight end through their own reports (the driver asks the
    /// executor to stop them).
    pub fn cancel(&mut self) {
        if self.cancelling {
            return;
        }
        self.cancelling = true;
        let mut slots: Vec<usize> = Vec::new();
        for s in self.state.iter_mut() {
            slots.extend(s.ready.drain(..));
        }
        while let Some(Waiting(_, n)) = self.waiting.pop() {
            slots.push(n);
        }
        for n in slots {
            let t = &mut self.tasks[n];
            t.state = TaskState::Cancelled;
            self.state[t.step].counts.cancelled += 1;
            self.changes.push(Change::SetState {
                task_id: t.id.clone(),
                state: TaskState::Cancelled,
                message: Some("cancelled".into()),
            });
        }
    }
}

/// What a step's tasks consumed: each upstream step's name and product digest, in `needs`
/// order. The one definition for the core (at launch) and `freshness` (at plan time).
pub fn consumed_digest_of<'a>(upstream: impl Iterator<Item = (&'a str, String)>) -> String {
    let mut h = blake3::Hasher::new();
    for (name, products) in upstream {
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(products.as_bytes());
    }
    h.finalize().to_hex()[..16].to_string()
}

/// The digest of a step's products: every task's id, state and product, in task order.
pub fn product_digest<'a>(
    tasks: impl Iterator<Item = (&'a str, TaskState, Option<&'a str>)>,
) -> String {
    let mut h = blake3::Hasher::new();
    for (id, state, product) in tasks {
        h.update(id.as_bytes());
        h.update(b"=");
        match (state, product) {
            (TaskState::Succeeded, Some(p)) => h.update(p.as_bytes()),
            (TaskState::Succeeded, None) => h.update(b"succeeded"),
            (s, _) => h.update(s.as_str().as_bytes()),
        };
        h.update(b"\0");
    }
    h.finalize().to_hex()[..16].to_string()
}

/// A deterministic number in [0, 1) per task attempt (jitter without a random source, so a
/// replay of the same history makes the same decisions).
pub fn jitter_unit(id: &str, attempt: u32) -> f64 {
    let h = blake3::hash(format!("{id}/{attempt}/jitter").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
#[path = "campaign_core_tests.rs"]
mod tests;
