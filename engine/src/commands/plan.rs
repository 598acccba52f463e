//! `flow plan FILE`: what will run, where, with what, and what is already done (outputs
//! checked), without running or writing anything.

use super::common::{load, warn_about_secrets};
use super::{CommandResult, FlowError};
use crate::cli::PlanFormat;
use crate::compile::compile;
use crate::layout::Layout;
use crate::plan_render::{self, DoneCounts};
use crate::scheduler::state_location;
use crate::state::StateStore;
use crate::step_kind::qe_scf::QeFocus;
use flow_dsl::model::{Campaign, ExecutorKind};
use std::path::{Path, PathBuf};

/// The flags of `flow plan`.
pub struct PlanArgs<'a> {
    pub format: PlanFormat,
    pub explain: bool,
    pub executor: Option<ExecutorKind>,
    pub output: Option<&'a Path>,
    pub verify: bool,
    pub state_dir: Option<&'a PathBuf>,
    pub focus: QeFocus,
}

/// Per step: what is done (outputs checked), what will run and why, read from the state
/// database if any (read-only: planning never writes).
fn done_counts(
    campaign: &Campaign,
    plan: &crate::compile::Plan,
    state_dir: Option<&PathBuf>,
    verify: bool,
) -> DoneCounts {
    let layout = Layout::new(&campaign.campaign_dir);
    let (db, _) = state_location(&layout, state_dir);
    let mut out = DoneCounts::new();
    if !db.exists() {
        return out;
    }
    let Ok(store) = StateStore::open_readonly(&db) else {
        return out;
    };
    let (Ok(rows), Ok(details)) = (store.load_tasks(), store.success_details()) else {
        return out;
    };
    // adaptive: the evaluations asked so far are tasks of the plan too.
    let _ = crate::adaptive_step::AdaptiveSteps::load(plan, &store);
    let fresh = crate::freshness::assess(plan, &rows, &details, verify);
    for (i, f) in fresh.steps.into_iter().enumerate() {
        out.insert(campaign.steps[i].name.clone(), f);
    }
    out
}

pub fn plan(file: &Path, args: PlanArgs) -> CommandResult {
    let campaign = load(file)?;
    warn_about_secrets(&campaign);
    let plan = compile(&campaign, args.executor)?;
    let done = done_counts(&campaign, &plan, args.state_dir, args.verify);
    match args.format {
        PlanFormat::Text => {
            let details = crate::plan_preview::plan_details_for(&plan, &args.focus)?;
            let text = plan_render::text(&plan, &done, args.explain);
            print!("{}", plan_render::terminal_safe(&text));
            print!("{}", plan_render::terminal_safe(&details));
        }
        PlanFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&plan_render::json(&plan, &done)).unwrap_or_default()
        ),
        PlanFormat::Dot => print!("{}", plan_render::dot(&plan)),
        PlanFormat::Mermaid => print!("{}", plan_render::mermaid(&plan)),
        PlanFormat::Manifests => {
            let dir = args
                .output
                .ok_or_else(|| FlowError::Usage("--format manifests needs -o DIR".into()))?;
            let n = crate::plan_preview::write_kubernetes_manifests(&plan, dir)?;
            println!("wrote {n} Job manifest(s) to {}", dir.display());
        }
    }
    Ok(0)
}
