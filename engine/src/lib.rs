//! flow's engine: compile a campaign into a plan, persist state in SQLite, schedule task
//! attempts on an executor, and the `flow` command line.

pub mod adaptive_state;
pub mod adaptive_step;
pub mod attempt_end;
pub mod attempt_launch;
pub mod backend;
pub mod campaign_core;
pub mod campaign_lock;
pub mod cli;
pub mod commands;
pub mod compile;
pub mod confined_path;
pub mod environments;
pub mod error;
pub mod fingerprint;
pub mod freshness;
pub mod layout;
pub mod notify;
pub mod plan_preview;
pub mod plan_render;
pub mod progress;
pub mod recovery;
pub mod render;
pub mod report;
pub mod scheduler;
pub mod sim;
pub mod state;
pub mod status;
pub mod step_kind;
pub mod task_exec;
pub mod task_id;
pub mod task_spec;
pub mod task_state;
pub mod time_text;
pub mod trace;
