//! `flow trace` and `flow report`: read-only views of a campaign's state database.

use super::common::{load, open_state, print_json};
use super::{CommandResult, FlowError};
use crate::cli::OutputFormat;
use crate::compile::compile;
use crate::layout::{write_atomic, Layout};
use crate::state::StateStore;
use std::path::{Path, PathBuf};

/// Load the campaign and open its state read-only.
fn open(
    file: &Path,
    state_dir: Option<&PathBuf>,
) -> Result<(flow_dsl::model::Campaign, Layout, StateStore), FlowError> {
    let campaign = load(file)?;
    let layout = Layout::new(&campaign.campaign_dir);
    let store = open_state(&campaign, state_dir)?;
    Ok((campaign, layout, store))
}

/// The error for a `--step` the campaign does not have.
pub fn no_such_step(file: &Path, campaign: &flow_dsl::model::Campaign, step: &str) -> FlowError {
    let names: Vec<&str> = campaign.steps.iter().map(|s| s.name.as_str()).collect();
    FlowError::msg(format!(
        "no step `{step}` in {} (steps: {})",
        file.display(),
        names.join(", ")
    ))
}

/// `flow trace FILE [--step S] [--output json]`.
pub fn trace(
    file: &Path,
    step: Option<&str>,
    output: OutputFormat,
    state_dir: Option<&PathBuf>,
) -> CommandResult {
    let (campaign, _layout, store) = open(file, state_dir)?;
    if let Some(s) = step {
        if campaign.step(s).is_none() {
            return Err(no_such_step(file, &campaign, s));
        }
    }
    let plan = compile(&campaign, None).ok();
    let records = store.attempt_records()?;
    let mut rows = crate::trace::trace_rows(&records, plan.as_ref());
    if let Some(s) = step {
        rows.retain(|r| r.step == s);
    }
    match output {
        OutputFormat::Text => print!("{}", crate::trace::tsv(&rows)),
        OutputFormat::Json => print_json(&serde_json::json!({
            "campaign": {"name": campaign.name, "version": campaign.version},
            "attempts": rows,
        })),
    }
    Ok(0)
}

/// `flow report FILE [-o report.html]`.
pub fn report(file: &Path, out: Option<&Path>, state_dir: Option<&PathBuf>) -> CommandResult {
    let (campaign, layout, store) = open(file, state_dir)?;
    let plan = compile(&campaign, None)?;
    let html = crate::report::render(&plan, &layout, &store, flow_executors::task_runner::now())?;
    // The default place is the campaign's own `qa/`, which must stay inside it; a path
    // given with -o is the user's choice.
    let path = match out {
        Some(p) => p.to_path_buf(),
        None => crate::confined_path::layout_path(
            &layout.campaign_dir,
            &layout.qa().join("report.html"),
        )
        .map_err(FlowError::msg)?,
    };
    write_atomic(&path, html.as_bytes())
        .map_err(|e| FlowError::msg(format!("cannot write {}: {e}", path.display())))?;
    println!(
        "wrote {} ({:.0} KiB)",
        path.display(),
        html.len() as f64 / 1024.0
    );
    Ok(0)
}
