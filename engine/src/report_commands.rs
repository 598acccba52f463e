//! `flow trace` and `flow report`: read-only views of a campaign's state database.

use crate::cli::OutputFormat;
use crate::compile::compile;
use crate::layout::{write_atomic, Layout};
use crate::state::StateStore;
use std::path::{Path, PathBuf};

/// Load the campaign and open its state read-only; errors are printed, the code returned.
fn open(
    file: &Path,
    state_dir: Option<&PathBuf>,
) -> Result<(flow_dsl::model::Campaign, Layout, StateStore), i32> {
    let campaign = crate::cli_io::load(file)?;
    let layout = Layout::new(&campaign.campaign_dir);
    let store = crate::cli_io::open_state(&campaign, state_dir)?;
    Ok((campaign, layout, store))
}

/// `flow trace FILE [--step S] [--output json]`.
pub fn trace(
    file: &Path,
    step: Option<&str>,
    output: OutputFormat,
    state_dir: Option<&PathBuf>,
) -> i32 {
    let Ok((campaign, _layout, store)) = open(file, state_dir) else {
        return 1;
    };
    if let Some(s) = step {
        if campaign.step(s).is_none() {
            let names: Vec<&str> = campaign.steps.iter().map(|s| s.name.as_str()).collect();
            eprintln!(
                "error: no step `{s}` in {} (steps: {})",
                file.display(),
                names.join(", ")
            );
            return 1;
        }
    }
    let plan = compile(&campaign, None).ok();
    let records = match store.attempt_records() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let mut rows = crate::trace::trace_rows(&records, plan.as_ref());
    if let Some(s) = step {
        rows.retain(|r| r.step == s);
    }
    match output {
        OutputFormat::Text => print!("{}", crate::trace::tsv(&rows)),
        OutputFormat::Json => crate::cli_io::print_json(&serde_json::json!({
            "campaign": {"name": campaign.name, "version": campaign.version},
            "attempts": rows,
        })),
    }
    0
}

/// `flow report FILE [-o report.html]`.
pub fn report(file: &Path, out: Option<&Path>, state_dir: Option<&PathBuf>) -> i32 {
    let Ok((campaign, layout, store)) = open(file, state_dir) else {
        return 1;
    };
    let plan = match compile(&campaign, None) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("{d}");
            return 1;
        }
    };
    let html =
        match crate::report::render(&plan, &layout, &store, flow_executors::task_runner::now()) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e:#}");
                return 1;
            }
        };
    let path = out.map_or_else(|| layout.qa().join("report.html"), Path::to_path_buf);
    match write_atomic(&path, html.as_bytes()) {
        Ok(()) => {
            println!(
                "wrote {} ({:.0} KiB)",
                path.display(),
                html.len() as f64 / 1024.0
            );
            0
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            1
        }
    }
}
