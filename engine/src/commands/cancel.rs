//! `flow cancel FILE`: ask the running driver to cancel, or, with no driver, cancel what the
//! backend still holds for this campaign (through `Executor::cancel_all`).

use super::common::{load, open_state, print_json};
use super::{CommandResult, FlowError};
use crate::cli::OutputFormat;
use crate::compile::compile;
use crate::layout::Layout;
use std::path::{Path, PathBuf};

pub fn cancel(file: &Path, state_dir: Option<PathBuf>, output: OutputFormat) -> CommandResult {
    let campaign = load(file)?;
    // What was done, in words or as one JSON document (`action`: asked-driver,
    // deleted-jobs, cancelled-jobs, nothing-running).
    let say =
        |action: &str, text: String, driver: Option<(&str, i64)>, jobs: Option<usize>| match output
        {
            OutputFormat::Text => println!("{text}"),
            OutputFormat::Json => print_json(&serde_json::json!({
                "campaign": campaign.name,
                "action": action,
                "driver": driver.map(|(host, pid)| serde_json::json!({"host": host, "pid": pid})),
                "jobs": jobs,
                "message": text,
            })),
        };
    let store = open_state(&campaign, state_dir.as_ref())?;
    let layout = Layout::new(&campaign.campaign_dir);
    let here = crate::state::hostname();
    match store.live_lease(&here, flow_executors::task_runner::now()) {
        Ok(Some((host, pid, _))) => {
            std::fs::write(layout.cancel_request(), b"cancel\n").map_err(|e| {
                FlowError::msg(format!(
                    "cannot write {}: {e}",
                    layout.cancel_request().display()
                ))
            })?;
            say(
                "asked-driver",
                format!("asked the driver (pid {pid} on {host}) to cancel; it stops its tasks within a few seconds"),
                Some((host.as_str(), pid)),
                None,
            );
            Ok(0)
        }
        _ => {
            // No driver: cancel what the backend still holds for this campaign directly.
            if flow_executors::Capabilities::of(campaign.machine.executor).jobs_outlive_driver {
                let plan = compile(&campaign, None)?;
                let mut ex = crate::backend::executor_for(&plan)?;
                let capabilities = ex.capabilities();
                let done = ex.cancel_all()?;
                let (action, verb) = match done.deleted {
                    true => ("deleted-jobs", "deleted"),
                    false => ("cancelled-jobs", "cancelled"),
                };
                say(
                    action,
                    format!(
                        "no driver is running; {verb} {} {}(s) of campaign {}{}",
                        done.jobs,
                        capabilities.job_noun,
                        campaign.name,
                        if done.deleted {
                            " (and their pods)"
                        } else {
                            ""
                        }
                    ),
                    None,
                    Some(done.jobs),
                );
                return Ok(0);
            }
            say(
                "nothing-running",
                format!("no driver is running for campaign {}", campaign.name),
                None,
                None,
            );
            Ok(0)
        }
    }
}
