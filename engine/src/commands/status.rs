//! `flow status FILE [--watch] [--output json]`: read-only, from the state database (or
//! the driver's snapshot when the database is on another machine's disk).

use super::common::load;
use super::{CommandResult, FlowError};
use crate::cli::OutputFormat;
use crate::compile::compile;
use crate::layout::Layout;
use crate::scheduler::state_location;
use crate::state::StateStore;
use std::path::{Path, PathBuf};

pub fn status(
    file: &Path,
    output: OutputFormat,
    watch: bool,
    state_dir: Option<PathBuf>,
) -> CommandResult {
    loop {
        status_once(file, output, state_dir.as_ref())?;
        if !watch {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        if output == OutputFormat::Text {
            print!("\x1b[2J\x1b[H");
        }
    }
}

fn status_once(file: &Path, output: OutputFormat, state_dir: Option<&PathBuf>) -> CommandResult {
    let campaign = load(file)?;
    let plan = compile(&campaign, None)?;
    let layout = Layout::new(&campaign.campaign_dir);
    let (db, _) = state_location(&layout, state_dir);
    let store = match StateStore::open_readonly(&db) {
        Ok(s) if db.exists() => s,
        Err(e @ crate::state::StateError::Corrupt { .. }) => return Err(e.into()),
        _ => {
            // The database may be on another machine's disk: the driver's snapshot.
            if let Ok(text) = std::fs::read_to_string(layout.status_snapshot()) {
                println!("{}", crate::plan_render::terminal_safe(&text));
                return Ok(0);
            }
            return Err(FlowError::msg(format!(
                "campaign {} has not run yet (no state at {})",
                campaign.name,
                db.display()
            )));
        }
    };
    let now = flow_executors::task_runner::now();
    let (doc, text) = crate::status::report(&plan, &layout, &store, now)?;
    match output {
        OutputFormat::Text => print!("{}", crate::plan_render::terminal_safe(&text)),
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default())
        }
    }
    Ok(0)
}
