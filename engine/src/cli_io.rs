//! What every command does first: load the campaign (diagnostics printed once, the exit
//! code returned), open its state read-only, print a JSON document.

use crate::layout::Layout;
use crate::scheduler::state_location;
use crate::state::StateStore;
use flow_dsl::load::load_campaign;
use flow_dsl::model::Campaign;
use std::path::{Path, PathBuf};

/// Load a campaign file; diagnostics are printed, the exit code returned.
pub fn load(file: &Path) -> Result<Campaign, i32> {
    load_campaign(file).map_err(|d| {
        eprint!("{d}");
        eprintln!();
        1
    })
}

/// Say, on stderr, where a campaign writes a secret into a file (`validate`, `plan` and
/// `run`: the commands that read a campaign to check or start it, not every reader).
pub fn warn_about_secrets(campaign: &Campaign) {
    for w in flow_dsl::secrets::literal_secret_warnings(campaign) {
        eprintln!("{w}");
    }
}

/// Open a campaign's state read-only; errors are printed, the exit code returned.
pub fn open_state(campaign: &Campaign, state_dir: Option<&PathBuf>) -> Result<StateStore, i32> {
    let layout = Layout::new(&campaign.campaign_dir);
    let (db, _) = state_location(&layout, state_dir);
    if !db.exists() {
        eprintln!(
            "error: campaign {} has not run yet (no state at {}); start it with `flow run`",
            campaign.name,
            db.display()
        );
        return Err(1);
    }
    StateStore::open_readonly(&db).map_err(|e| {
        eprintln!("error: {e}");
        1
    })
}

/// Print one JSON document on stdout.
pub fn print_json(doc: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(doc).unwrap_or_default());
}
