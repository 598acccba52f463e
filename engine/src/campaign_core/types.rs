//! The data the core is fed and answers with: steps, tasks, submissions, ended attempts,
//! notices, counts.

use super::*;

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
    pub(super) fn finals(&self) -> u64 {
        self.succeeded + self.failed + self.blocked + self.cancelled
    }
    /// Pending: waiting for upstream, a slot or a retry delay.
    pub fn pending(&self) -> u64 {
        self.total
            .saturating_sub(self.finals() + self.submitted + self.running)
    }
}
