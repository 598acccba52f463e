//! flow's `adaptive` step: an algorithm proposes parameter sets (ask), the engine evaluates
//! each one `replicates` times as ordinary tasks, and the aggregated objective goes back
//! (tell), batch by batch, until the budget is spent or the algorithm says it is finished.
//!
//! This crate knows nothing of the engine. Pure cores: [`space`] (the search space and its
//! validation), [`param_id`] (canonical ids and seeds), [`protocol`] (the JSON-lines
//! messages), [`loop_state`] (the ask/tell state machine: given what is committed, what
//! happens next), [`objective`] (reading and aggregating results), [`trials`] (the trials
//! table). I/O edge: [`process`] (one long-lived algorithm process for the whole loop).

pub mod loop_state;
pub mod objective;
pub mod param_id;
pub mod process;
pub mod protocol;
pub mod settings;
pub mod space;
pub mod trials;

pub use loop_state::{Action, AdaptiveLoop, Asked, EvalKey, EvalState, LoopConfig, TellRecord};
pub use objective::{aggregate, read_objective, Aggregate, Evaluation, DIAGNOSTICS_LIMIT};
pub use param_id::{evaluation_seed, param_id};
pub use process::{AlgorithmProcess, ProcessError};
pub use protocol::{Direction, TrialResult, TrialState};
pub use settings::{AdaptiveSettings, AlgorithmSpec, SettingsError};
pub use space::{Dimension, ParamSet, Space, SpaceError};

/// The Optuna adapter shipped with flow (`recipes/adaptive/optuna_adapter.py`): it speaks
/// the protocol of [`protocol`] on stdin/stdout.
pub const OPTUNA_ADAPTER: &str = include_str!("../../../../recipes/adaptive/optuna_adapter.py");
