//! `flow retry FILE [--step S] [--failed]`: re-queue the current tasks that failed, were
//! blocked or cancelled (never versions superseded by an edit).

use super::common::{load, print_json};
use super::report::no_such_step;
use super::{CommandResult, FlowError};
use crate::cli::OutputFormat;
use crate::compile::compile;
use crate::layout::Layout;
use crate::scheduler::state_location;
use crate::state::StateStore;
use crate::task_state::TaskState;
use std::path::{Path, PathBuf};

pub fn retry(
    file: &Path,
    step: Option<String>,
    failed_only: bool,
    state_dir: Option<PathBuf>,
    output: OutputFormat,
) -> CommandResult {
    let campaign = load(file)?;
    if let Some(s) = &step {
        if campaign.step(s).is_none() {
            return Err(no_such_step(file, &campaign, s));
        }
    }
    let layout = Layout::new(&campaign.campaign_dir);
    let (db, _) = state_location(&layout, state_dir.as_ref());
    if !db.exists() {
        return Err(FlowError::msg(format!(
            "campaign {} has not run yet",
            campaign.name
        )));
    }
    let mut store = StateStore::open(&db)?;
    let states: &[TaskState] = if failed_only {
        &[TaskState::Failed]
    } else {
        &[TaskState::Failed, TaskState::Blocked, TaskState::Cancelled]
    };
    // Only the tasks of the campaign as it is now: versions superseded by an edit are
    // history, not work.
    let plan = compile(&campaign, None)?;
    let ids: Vec<String> = plan
        .order
        .iter()
        .filter(|&&i| step.as_deref().is_none_or(|s| campaign.steps[i].name == s))
        .flat_map(|&i| plan.tasks(i).map(|t| t.id))
        .collect();
    let n = store.requeue_ids(states, &ids, flow_executors::task_runner::now())?;
    if output == OutputFormat::Json {
        print_json(&serde_json::json!({
            "campaign": campaign.name,
            "requeued": n,
            "step": step,
            "states": states.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "re-queued {n} task(s); run `flow run {}` to execute them",
            file.display()
        );
    }
    Ok(0)
}
