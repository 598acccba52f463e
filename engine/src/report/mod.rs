//! `flow report`: one self-contained HTML page about a campaign, readable while it runs.
//!
//! - [`data`] gathers what to show from the state database (opened read-only: the report
//!   never blocks or changes a running driver) and files under the campaign directory;
//! - [`svg`] draws the DAG, the timeline (binned above `MAX_TIMELINE_BARS` attempts, so a
//!   40,000-task campaign stays a few hundred kilobytes) and histograms;
//! - [`html`] writes the page: inline CSS, SVG and a few lines of script, nothing fetched.

pub mod data;
pub mod html;
pub mod svg;

use crate::compile::Plan;
use crate::layout::Layout;
use crate::state::StateStore;

/// The report page of a campaign, as of `now`.
pub fn render(
    plan: &Plan,
    layout: &Layout,
    store: &StateStore,
    now: f64,
) -> anyhow::Result<String> {
    let data = data::collect(plan, layout, store, now)?;
    Ok(html::render(&data))
}
