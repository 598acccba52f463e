//! One file per `flow` command. Each returns a [`CommandResult`]: the exit code of a command
//! that did its work (0, or 1 when the work failed and it said so), or the [`FlowError`]
//! that `main.rs` renders once (exit 1; 2 for usage errors clap cannot see).

use crate::cli::{Command, ExecutorArg, PlanFormat, TaskAction};
pub use crate::error::{CommandResult, FlowError};
use flow_dsl::model::ExecutorKind;
use std::path::PathBuf;

mod cancel;
pub mod common;
mod env;
mod init;
mod logs;
mod plan;
mod recipes;
mod report;
mod retry;
mod run;
mod status;
mod validate;

pub use validate::diagnostic_json;

fn executor_kind(arg: Option<ExecutorArg>) -> Option<ExecutorKind> {
    arg.map(|a| match a {
        ExecutorArg::Local => ExecutorKind::Local,
        ExecutorArg::Slurm => ExecutorKind::Slurm,
        ExecutorArg::Kubernetes => ExecutorKind::Kubernetes,
    })
}

/// Dispatch a parsed command line.
pub fn run(command: Command) -> CommandResult {
    match command {
        Command::Validate { file, output } => validate::validate(&file, output),
        Command::Plan {
            file,
            format,
            explain,
            executor,
            output,
            verify,
            state_dir,
            structure,
            task,
        } => {
            // `--output json` (text, dot, mermaid) is `--format json`; with `--format
            // manifests` the value is the directory.
            let (format, output) = plan_output_alias(format, output);
            plan::plan(
                &file,
                plan::PlanArgs {
                    format,
                    explain,
                    executor: executor_kind(executor),
                    output: output.as_deref(),
                    verify,
                    state_dir: state_dir.as_ref(),
                    focus: crate::step_kind::qe_scf::QeFocus::from_args(structure, task),
                },
            )
        }
        Command::Run {
            file,
            executor,
            detach,
            state_dir,
            reset_state,
        } => {
            if reset_state {
                run::reset_state_db(&file, state_dir.as_ref())?;
            }
            if detach {
                run::detach_run(&file, executor, state_dir)
            } else {
                run::run_campaign(&file, executor_kind(executor), state_dir)
            }
        }
        Command::Status {
            file,
            output,
            watch,
            state_dir,
        } => status::status(&file, output, watch, state_dir),
        Command::Retry {
            file,
            step,
            failed,
            state_dir,
            output,
        } => retry::retry(&file, step, failed, state_dir, output),
        Command::Trace {
            file,
            step,
            output,
            state_dir,
        } => report::trace(&file, step.as_deref(), output, state_dir.as_ref()),
        Command::Report {
            file,
            out,
            state_dir,
        } => report::report(&file, out.as_deref(), state_dir.as_ref()),
        Command::Logs {
            file,
            task,
            attempt,
            state_dir,
        } => logs::logs(&file, &task, attempt, state_dir),
        Command::Cancel {
            file,
            state_dir,
            output,
        } => cancel::cancel(&file, state_dir, output),
        Command::Recipes { action } => recipes::recipes(action),
        Command::Env { action } => env::env(action),
        Command::Init { machine, output } => init::init(&machine, &output),
        // On the node: the exit code is the task's.
        Command::Task { action } => Ok(match action {
            TaskAction::Exec { spec } => crate::task_exec::exec(&spec),
            TaskAction::RunManifest { manifest, index } => {
                crate::task_exec::run_manifest(&manifest, index)
            }
            TaskAction::RunLaunch { launch } => {
                let l = std::fs::read_to_string(&launch)
                    .map_err(|e| e.to_string())
                    .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
                    .map_err(|e| {
                        FlowError::msg(format!("flow task run-launch: {}: {e}", launch.display()))
                    })?;
                crate::task_exec::run_launch(&l)
            }
        }),
    }
}

/// `flow plan --output FORMAT`: the same as `--format FORMAT` unless the format is
/// `manifests` (then `--output` is its directory).
fn plan_output_alias(format: PlanFormat, output: Option<PathBuf>) -> (PlanFormat, Option<PathBuf>) {
    if format == PlanFormat::Manifests {
        return (format, output);
    }
    let named = match output.as_ref().and_then(|o| o.to_str()) {
        Some("json") => Some(PlanFormat::Json),
        Some("text") => Some(PlanFormat::Text),
        Some("dot") => Some(PlanFormat::Dot),
        Some("mermaid") => Some(PlanFormat::Mermaid),
        _ => None,
    };
    match named {
        Some(f) => (f, None),
        None => (format, output),
    }
}
