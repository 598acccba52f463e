//! One file per step kind: what a kind adds to a plain task, behind [`StepBehaviour`].
//!
//! Everything every kind shares (the launch of an attempt, templating, the state, the
//! core's rules) lives elsewhere; a kind's file holds only its own part: the typed work it
//! runs inside `flow task exec`, the checks after an attempt (outputs validated and
//! published, objectives read), the gate its results decide, what its consumers depend on,
//! what a recorded success must still have on disk, and extra `flow plan` text.
//!
//! Adding a step kind is one file here and one arm in [`of`] (plus its schema under
//! `schemas/steps/` and its variant of `flow_dsl::model::StepKind`).

use crate::campaign_core::GateEffect;
use crate::compile::{Plan, PlannedTask};
use crate::layout::Layout;
use crate::task_spec::TaskSpec;
use flow_dsl::error_class::ErrorClass;
use flow_dsl::model::{Step, StepKind};
use flow_executors::AttemptOutcome;

pub mod adaptive;
pub mod build_env;
pub mod command;
pub mod md_benchmark;
pub mod mock_generation;
pub mod qe_scf;

/// The behaviour of a step kind. Every method has the plain task's answer as its default.
pub trait StepBehaviour: Sync {
    /// `flow task exec`: run the typed work of a task (kinds that do not run the user's
    /// shell command). `None`: the kind has no typed work.
    fn run_typed(&self, _spec: &TaskSpec, _started: f64) -> Option<Result<TypedResult, String>> {
        None
    }

    /// After an attempt that succeeded by its exit status: validate and publish what it
    /// made. Returns the outcome as it counts and the details to store with the attempt
    /// (`details`: those of the attempt's own result document, if any).
    fn check_success(
        &self,
        _attempt: &Attempt,
        outcome: AttemptOutcome,
        details: Option<String>,
    ) -> (AttemptOutcome, Option<String>) {
        (outcome, details)
    }

    /// After every ended attempt, successful or not (side records such as a results table).
    fn after_attempt(&self, _attempt: &Attempt) {}

    /// After the engine gave the task up for good (its last attempt failed with no retry
    /// left): what the kind records of a failure it did not decide itself.
    fn after_final_failure(&self, _attempt: &Attempt, _message: &str) {}

    /// What an ended attempt decides for the steps that depend on this one.
    fn gate(&self, _details: Option<&serde_json::Value>, _succeeded: bool) -> GateEffect {
        GateEffect::None
    }

    /// What the consumers of a success depend on when its details name no output file.
    /// By default the attempt itself: its effects are unknown, so every rerun is a change.
    fn product(
        &self,
        _details: Option<&serde_json::Value>,
        task_id: &str,
        attempt: u32,
    ) -> Option<String> {
        Some(format!("run:{task_id}:{attempt}"))
    }

    /// Whether a rerun of the step changes what its consumers consumed (false for a kind
    /// whose product survives a rerun).
    fn rerun_changes_product(&self) -> bool {
        true
    }

    /// A recorded success's own evidence on disk, for kinds that keep one apart from a
    /// declared output. `None`: check the declared output (if any).
    fn check_recorded(
        &self,
        _plan: &Plan,
        _step_index: usize,
        _index: u64,
        _details: Option<&serde_json::Value>,
        _verify: bool,
    ) -> Option<RecordedCheck> {
        None
    }

    /// Whether [`Self::revalidate_output`] checks an output's contents, so that an output
    /// rewritten since its success still counts when it validates (mock catalogs). Without
    /// such a check, an output whose size or modification time changed was not made by
    /// its task and the task runs again.
    fn validates_output_contents(&self) -> bool {
        false
    }

    /// Re-validate a declared output that changed since its success (or with `--verify`).
    fn revalidate_output(
        &self,
        _plan: &Plan,
        _step_index: usize,
        _task: &PlannedTask,
        _path: &std::path::Path,
    ) -> Result<(), String> {
        Ok(())
    }

    /// Extra `flow plan` text of the step; `shown` names the item to show (qe-scf: a
    /// structure), `None` for the first.
    fn plan_details(
        &self,
        _plan: &Plan,
        _step_index: usize,
        _shown: Option<&str>,
    ) -> Option<String> {
        None
    }

    /// Whether the step's tasks run on the driver's machine whatever the executor.
    fn runs_on_driver(&self, _step: &Step) -> bool {
        false
    }
}

/// The behaviour of a kind: the one place that matches on every kind.
pub fn of(kind: StepKind) -> &'static dyn StepBehaviour {
    match kind {
        StepKind::Command => &command::Command,
        StepKind::MockGeneration => &mock_generation::MockGeneration,
        StepKind::BuildEnv => &build_env::BuildEnv,
        StepKind::MdBenchmark => &md_benchmark::MdBenchmark,
        StepKind::QeScf => &qe_scf::QeScf,
        StepKind::Adaptive => &adaptive::Adaptive,
    }
}

/// Whether a step's tasks run on the driver's machine whatever the executor.
pub fn runs_on_driver(step: &Step) -> bool {
    of(step.kind).runs_on_driver(step)
}

/// One ended attempt of one task, as a step kind sees it.
pub struct Attempt<'a, 'c> {
    pub plan: &'a Plan<'c>,
    pub layout: &'a Layout,
    pub step_index: usize,
    pub index: u64,
    pub task_id: &'a str,
    pub attempt: u32,
}

impl Attempt<'_, '_> {
    pub fn step(&self) -> &Step {
        &self.plan.campaign.steps[self.step_index]
    }

    pub fn task(&self) -> PlannedTask {
        self.plan.task(self.step_index, self.index)
    }
}

/// A typed step's answer (`flow task exec`): the outcome, and details stored with the
/// attempt.
pub struct TypedResult {
    pub outcome: AttemptOutcome,
    pub details: serde_json::Value,
    /// The step already retried on its own terms (qe-scf's policy): the engine must not.
    pub final_failure: bool,
}

/// The outcome of typed work that ended now: succeeded without a class, failed with one.
pub fn typed_outcome(
    class: Option<ErrorClass>,
    message: Option<String>,
    started: f64,
) -> AttemptOutcome {
    AttemptOutcome {
        exit_code: Some(if class.is_none() { 0 } else { 1 }),
        signal: None,
        error_class: class,
        message,
        started_at: Some(started),
        ended_at: Some(flow_executors::task_runner::now()),
        usage: None,
    }
}

/// What a recorded success still has on disk (`freshness::check_output`).
#[derive(Debug, Clone, PartialEq)]
pub enum RecordedCheck {
    /// Still there, as recorded.
    Kept,
    Missing(String),
    Invalid(String),
}

/// The outcome of an attempt whose output failed its check.
pub fn invalid(outcome: &AttemptOutcome, message: String) -> AttemptOutcome {
    AttemptOutcome {
        error_class: Some(ErrorClass::InvalidOutput),
        message: Some(message),
        ..outcome.clone()
    }
}
