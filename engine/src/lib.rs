//! flow's engine: compile a campaign into a plan, persist state in SQLite, schedule task
//! attempts on an executor, and the `flow` command line.

pub mod adaptive_state;
pub mod adaptive_step;
pub mod cli;
pub mod commands;
pub mod compile;
pub mod layout;
pub mod plan_render;
pub mod progress;
pub mod render;
pub mod scheduler;
pub mod state;
pub mod steps;
pub mod task_exec;
pub mod task_id;
pub mod task_spec;
pub mod task_state;
pub mod typed;
