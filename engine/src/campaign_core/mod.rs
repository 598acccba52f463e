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

mod digests;
mod events;
mod slot_index;
mod types;

pub use digests::{consumed_digest_of, jitter_unit, product_digest};
#[cfg(test)]
use slot_index::id_hash;
use slot_index::SlotIndex;
pub use types::*;

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
    /// Staleness checked while the step is blocked (its stale successes are blocked too).
    blocked_checked: bool,
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
                    .map(|t| format!(" (first failed task {})", t.id))
                    .unwrap_or_default();
                // No counts: they grow after the message is written (`flow status` has them).
                return Some(format!(
                    "blocked: upstream step {name} did not succeed{failed_task}"
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
                if !self.state[i].blocked_checked {
                    self.block_stale(i, &reason);
                }
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

    /// At the end of a run: every step that is blocked has its stale successes blocked too
    /// (a step blocked without ready tasks is never visited by [`Self::tick`]).
    pub fn settle(&mut self) {
        for oi in 0..self.order.len() {
            let i = self.order[oi];
            if self.state[i].blocked_checked {
                continue;
            }
            if let Some(reason) = self.blocking_reason(i) {
                self.block_stale(i, &reason);
            }
        }
    }

    /// A blocked step's successes whose upstream changed are not done either: what they
    /// consumed is gone or being redone, and the step cannot run to replace them. They are
    /// blocked with the step's reason (a later run reruns them once the upstream succeeds).
    fn block_stale(&mut self, i: usize, reason: &str) {
        self.state[i].blocked_checked = true;
        if self.steps[i].upstream.is_empty() {
            return;
        }
        let now_digest = self.consumed_digest(i);
        let message = format!("{reason}; its earlier success consumed outputs that changed since");
        self.unsettle_stale(i, &now_digest, TaskState::Blocked, &message);
    }

    /// Compare the step's succeeded tasks with what they consumed; stale ones run again.
    fn check_staleness(&mut self, i: usize) {
        self.state[i].checked = true;
        if self.steps[i].upstream.is_empty() {
            return;
        }
        let now_digest = self.consumed_digest(i);
        self.state[i].consumed_now = Some(now_digest.clone());
        let stale = self.unsettle_stale(
            i,
            &now_digest,
            TaskState::Pending,
            "re-queued: upstream changed (an output it consumed was redone)",
        );
        if stale > 0 {
            self.notices.push(Notice::Stale {
                step: self.steps[i].name.clone(),
                tasks: stale,
            });
        }
    }

    /// Move step `i`'s successes whose consumed digest differs from `now_digest` (the
    /// upstream's now) to `to` (pending: queued again; blocked: the step cannot run) with
    /// `message`. A success recorded without what it consumed (an older flow) is kept.
    /// Returns how many moved.
    fn unsettle_stale(&mut self, i: usize, now_digest: &str, to: TaskState, message: &str) -> u64 {
        let mut moved = 0;
        for k in 0..self.state[i].slots.len() {
            let n = self.state[i].slots[k];
            let t = &self.tasks[n];
            if t.state != TaskState::Succeeded
                || t.consumed.as_deref().is_none_or(|c| c == now_digest)
            {
                continue;
            }
            moved += 1;
            let t = &mut self.tasks[n];
            t.state = to;
            t.gate_stop = None;
            let s = &mut self.state[i];
            s.counts.succeeded -= 1;
            s.counts.skipped = s.counts.skipped.saturating_sub(1);
            match to {
                TaskState::Blocked => s.counts.blocked += 1,
                _ => s.ready.push_back(n),
            }
            if s.gate.as_ref().is_some_and(|(g, _)| *g == n) {
                s.gate = None;
            }
            self.changes.push(Change::SetState {
                task_id: self.tasks[n].id.clone(),
                state: to,
                message: Some(message.to_string()),
            });
        }
        moved
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
}

#[cfg(test)]
mod tests;
