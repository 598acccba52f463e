//! What every command does first: load the campaign, open its state read-only, print a
//! JSON document. Errors are returned, never printed here.

use crate::error::FlowError;
use crate::layout::Layout;
use crate::scheduler::state_location;
use crate::state::StateStore;
use flow_dsl::load::load_campaign;
use flow_dsl::model::Campaign;
use std::path::{Path, PathBuf};

/// Load a campaign file.
pub fn load(file: &Path) -> Result<Campaign, FlowError> {
    Ok(load_campaign(file)?)
}

/// Load and compile a campaign file.
pub fn load_plan(
    campaign: &Campaign,
    executor: Option<flow_dsl::model::ExecutorKind>,
) -> Result<crate::compile::Plan<'_>, FlowError> {
    Ok(crate::compile::compile(campaign, executor)?)
}

/// Say, on stderr, where a campaign writes a secret into a file (`validate`, `plan` and
/// `run`: the commands that read a campaign to check or start it, not every reader).
pub fn warn_about_secrets(campaign: &Campaign) {
    for w in flow_dsl::secrets::literal_secret_warnings(campaign) {
        eprintln!("{w}");
    }
}

/// Open a campaign's state read-only.
pub fn open_state(
    campaign: &Campaign,
    state_dir: Option<&PathBuf>,
) -> Result<StateStore, FlowError> {
    let layout = Layout::new(&campaign.campaign_dir);
    let (db, _) = state_location(&layout, state_dir);
    if !db.exists() {
        return Err(FlowError::msg(format!(
            "campaign {} has not run yet (no state at {}); start it with `flow run`",
            campaign.name,
            db.display()
        )));
    }
    Ok(StateStore::open_readonly(&db)?)
}

/// Print one JSON document on stdout.
pub fn print_json(doc: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(doc).unwrap_or_default());
}
