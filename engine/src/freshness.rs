//! Is it done? One answer for `flow plan`, `flow status` and `flow run`.
//!
//! A task counts as done only when its success was recorded with what it produced and
//! those outputs are still there and valid: a declared output is `stat`ed and compared
//! with its recorded fingerprint (size, mtime, inode); a changed HDF5 output is validated
//! again through the HDF5 library (every output with `verify`). A task that will run says
//! why ([`RunReason`]): new, failed before, output missing, output changed or invalid,
//! command/settings changed, upstream changed, environment rebuilt, interrupted,
//! cancelled. The plan predicts staleness: a consumer of a step whose products will change
//! (it has tasks to run) will run too, as it will at run time (`campaign_core`).

use crate::campaign_core::{consumed_digest_of, product_digest};
use crate::compile::{Plan, WorkComponents};
use crate::state::TaskRow;
use crate::step_kind::RecordedCheck;
use crate::task_state::TaskState;
use flow_dsl::model::Condition;
use std::collections::{BTreeMap, HashMap};

/// Why a task will run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunReason {
    /// Never ran.
    New,
    /// Failed before and is waiting for its retry (or was re-queued by `flow retry`).
    FailedBefore,
    /// Its recorded output is gone.
    OutputMissing,
    /// Its output changed and no longer validates.
    OutputInvalid,
    /// Its command or settings (or plan-time inputs) changed.
    SettingsChanged,
    /// What it consumed from its needs changed, or will (an upstream task reruns).
    UpstreamChanged,
    /// The environment it runs in was rebuilt from a changed environment file.
    EnvironmentRebuilt,
    /// It was running when its driver stopped.
    Interrupted,
    /// The last run was cancelled before it ran.
    Cancelled,
    /// It was blocked by an upstream failure or a gate that may have changed.
    BlockedBefore,
}

impl RunReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RunReason::New => "new",
            RunReason::FailedBefore => "failed before",
            RunReason::OutputMissing => "output missing",
            RunReason::OutputInvalid => "output changed or invalid",
            RunReason::SettingsChanged => "command/settings changed",
            RunReason::UpstreamChanged => "upstream changed",
            RunReason::EnvironmentRebuilt => "environment rebuilt",
            RunReason::Interrupted => "interrupted",
            RunReason::Cancelled => "cancelled before",
            RunReason::BlockedBefore => "blocked before",
        }
    }
}

/// Where one task stands, judged from the state and the disk.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Done and verified; `product` is its current product fingerprint, `changed` when it
    /// differs from the recorded one (an output touched but still valid).
    Done {
        product: Option<String>,
        changed: bool,
    },
    /// Will run, with the reason and a detail for messages.
    Run(RunReason, String),
    /// Failed for good (reruns only with `flow retry`).
    Failed,
    /// Will be blocked: an upstream step failed (and the condition needs all succeeded).
    Blocked(String),
}

/// What an output check found.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputCheck {
    /// The step declares no output.
    NoOutput,
    /// Present; its fingerprint, and whether it differs from the recorded one.
    Present {
        product: String,
        changed: bool,
    },
    Missing(String),
    Invalid(String),
}

pub use crate::fingerprint::file_product;

/// Check a succeeded task's output against what was recorded with its success.
/// `recorded` is the product fingerprint stored with the task; `details` the success's
/// details (the output path). Costs one `stat` when nothing changed.
pub fn check_output(
    plan: &Plan,
    step_index: usize,
    index: u64,
    recorded: Option<&str>,
    details: Option<&serde_json::Value>,
    verify: bool,
) -> OutputCheck {
    let step = &plan.campaign.steps[step_index];
    let kept = |recorded: Option<&str>| match recorded {
        Some(p) => OutputCheck::Present {
            product: p.to_string(),
            changed: false,
        },
        None => OutputCheck::NoOutput,
    };
    let kind = crate::step_kind::of(step.kind);
    match kind.check_recorded(plan, step_index, index, details, verify) {
        Some(RecordedCheck::Kept) => return kept(recorded),
        Some(RecordedCheck::Missing(m)) => return OutputCheck::Missing(m),
        Some(RecordedCheck::Invalid(m)) => return OutputCheck::Invalid(m),
        None => {}
    }
    if step.output.is_none() || !step.kind.runs_user_command() {
        return OutputCheck::NoOutput;
    }
    let rel = match details
        .and_then(|d| d.get("output"))
        .and_then(|o| o.as_str())
    {
        Some(o) => o.to_string(),
        None => {
            let task = plan.task(step_index, index);
            let data = crate::render::template_data(plan, step_index, &task);
            match crate::render::output_for(plan, step_index, &task, &data, 1) {
                Ok(Some((o, _))) => o,
                Ok(None) => return OutputCheck::NoOutput,
                Err(e) => return OutputCheck::Invalid(e),
            }
        }
    };
    let path = plan.campaign.campaign_dir.join(&rel);
    if let Some(why) = crate::confined_path::leaves_campaign(&plan.campaign.campaign_dir, &path) {
        return OutputCheck::Invalid(format!("its output {rel} {why}"));
    }
    let product = match file_product(&path) {
        Ok(p) => p,
        Err(_) => return OutputCheck::Missing(format!("its output {rel} is gone")),
    };
    let changed = recorded != Some(product.as_str());
    if changed && !kind.validates_output_contents() {
        if let Some(why) = recorded.and_then(|r| crate::fingerprint::rewritten(r, &product)) {
            return OutputCheck::Invalid(format!(
                "its output {rel} changed since its task produced it ({why})"
            ));
        }
    }
    if changed || verify {
        let task = plan.task(step_index, index);
        if let Err(e) = kind.revalidate_output(plan, step_index, &task, &path) {
            return OutputCheck::Invalid(format!("its output {rel} no longer validates: {e}"));
        }
    }
    OutputCheck::Present { product, changed }
}

/// Per step: how many tasks are done, will run (by reason), failed, blocked.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StepFreshness {
    pub done: u64,
    pub to_run: u64,
    pub failed: u64,
    pub blocked: u64,
    pub reasons: BTreeMap<RunReason, u64>,
    /// Up to 5 examples: (task id, reason, detail).
    pub examples: Vec<(String, RunReason, String)>,
}

/// The whole campaign's verdicts, per step in `campaign.steps` order.
#[derive(Debug, Default)]
pub struct Freshness {
    pub steps: Vec<StepFreshness>,
    /// Verdicts of every task, per step, in task order.
    pub verdicts: Vec<Vec<Verdict>>,
}

/// Judge every task of the plan against the stored rows (`rows` by id) and the disk.
/// `details` holds the success details by task id (`StateStore::success_details`).
pub fn assess(
    plan: &Plan,
    rows: &HashMap<String, TaskRow>,
    details: &HashMap<String, String>,
    verify: bool,
) -> Freshness {
    let campaign = plan.campaign;
    let n = campaign.steps.len();
    let mut verdicts: Vec<Vec<Verdict>> = vec![Vec::new(); n];
    let mut ids: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut steps_out = vec![StepFreshness::default(); n];
    let mut will_change = vec![false; n];
    let layout = crate::layout::Layout::new(&campaign.campaign_dir);
    // The local executor's journals of ended shell launches, read once if a task is running.
    let mut journals: Option<HashMap<(String, u32), flow_executors::AttemptOutcome>> = None;
    // Rows of tasks no longer in the plan, by (step, params): what a new id replaced.
    let mut superseded: Option<HashMap<(&str, &str), &TaskRow>> = None;
    for &i in &plan.order {
        let step = &campaign.steps[i];
        let components = &plan.steps[i].components;
        let mut out = Vec::with_capacity(plan.steps[i].task_count as usize);
        let upstream_failed = plan.steps[i]
            .upstream
            .iter()
            .find(|&&u| steps_out[u].failed + steps_out[u].blocked > 0);
        let upstream_changes = plan.steps[i].upstream.iter().any(|&u| will_change[u]);
        // The consumed digest as it will be if nothing upstream reruns.
        let consumed_now = consumed_digest(plan, i, &ids, &verdicts);
        for t in plan.tasks(i) {
            let row = rows.get(&t.id);
            let verdict = match row {
                None => {
                    let sup = superseded.get_or_insert_with(|| {
                        rows.values()
                            .filter(|r| !plan_contains(plan, r))
                            .map(|r| ((r.step.as_str(), r.params.as_str()), r))
                            .collect()
                    });
                    let params = params_json(&t.params);
                    match sup.get(&(step.name.as_str(), params.as_str())) {
                        Some(old) => {
                            let reason = changed_component(old.work.as_deref(), components);
                            Verdict::Run(reason, format!("replaces task {}", old.id))
                        }
                        None => Verdict::Run(RunReason::New, String::new()),
                    }
                }
                Some(r) => match r.state {
                    TaskState::Succeeded => {
                        let d = details
                            .get(&t.id)
                            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok());
                        match check_output(
                            plan,
                            i,
                            t.index,
                            r.product.as_deref(),
                            d.as_ref(),
                            verify,
                        ) {
                            OutputCheck::Missing(m) => Verdict::Run(RunReason::OutputMissing, m),
                            OutputCheck::Invalid(m) => Verdict::Run(RunReason::OutputInvalid, m),
                            check => {
                                let (product, changed) = match check {
                                    OutputCheck::Present { product, changed } => {
                                        (Some(product), changed)
                                    }
                                    _ => (r.product.clone(), false),
                                };
                                let stale = !plan.steps[i].upstream.is_empty()
                                    && (upstream_changes
                                        || r.consumed.as_ref().is_some_and(|c| *c != consumed_now));
                                if stale && upstream_failed.is_none() {
                                    Verdict::Run(
                                        RunReason::UpstreamChanged,
                                        "an output it consumed changed or will be redone".into(),
                                    )
                                } else {
                                    Verdict::Done { product, changed }
                                }
                            }
                        }
                    }
                    TaskState::Failed => Verdict::Failed,
                    TaskState::Running => {
                        let journals = journals.get_or_insert_with(|| {
                            flow_executors::local::read_result_journals(&layout.result_journals())
                        });
                        let result = layout.result_file(&step.name, t.index, &t.id, r.attempts);
                        let finished = flow_executors::task_runner::read_result(&result)
                            .or_else(|| journals.get(&(t.id.clone(), r.attempts)).cloned());
                        match finished {
                            // It finished while nobody watched: the next run ingests it
                            // (and validates its output), nothing reruns.
                            Some(o) if o.error_class.is_none() && o.exit_code.unwrap_or(0) == 0 => {
                                match check_output(plan, i, t.index, None, None, verify) {
                                    OutputCheck::Missing(m) | OutputCheck::Invalid(m) => {
                                        Verdict::Run(RunReason::Interrupted, m)
                                    }
                                    _ => Verdict::Done {
                                        product: None,
                                        changed: false,
                                    },
                                }
                            }
                            Some(_) => Verdict::Run(
                                RunReason::Interrupted,
                                "ended unsuccessfully while its driver was down (the next run ingests it and retries it if retries remain)".into(),
                            ),
                            None => Verdict::Run(
                                RunReason::Interrupted,
                                "was running when its driver stopped (its result is ingested if it finished)".into(),
                            ),
                        }
                    }
                    TaskState::Cancelled => Verdict::Run(RunReason::Cancelled, String::new()),
                    TaskState::Blocked => Verdict::Run(RunReason::BlockedBefore, String::new()),
                    TaskState::Pending if r.attempts > 0 => Verdict::Run(
                        RunReason::FailedBefore,
                        r.message.clone().unwrap_or_default(),
                    ),
                    TaskState::Pending => Verdict::Run(RunReason::New, String::new()),
                },
            };
            // An upstream failure blocks what has not succeeded.
            let verdict = match (verdict, upstream_failed) {
                (Verdict::Run(..), Some(&u)) if step.condition == Condition::AllSucceeded => {
                    Verdict::Blocked(format!(
                        "upstream step {} did not succeed",
                        campaign.steps[u].name
                    ))
                }
                (v, _) => v,
            };
            let s = &mut steps_out[i];
            match &verdict {
                Verdict::Done { .. } => s.done += 1,
                Verdict::Run(reason, detail) => {
                    s.to_run += 1;
                    *s.reasons.entry(*reason).or_default() += 1;
                    if s.examples.len() < 5 {
                        s.examples.push((t.id.clone(), *reason, detail.clone()));
                    }
                }
                Verdict::Failed => s.failed += 1,
                Verdict::Blocked(_) => s.blocked += 1,
            }
            ids[i].push(t.id);
            out.push(verdict);
        }
        // A rerun of this step changes what its consumers consumed unless the kind's
        // product survives a rerun (a benchmark gates, it produces nothing consumed; an
        // environment rebuilt from the same file lands in the same directory).
        will_change[i] =
            steps_out[i].to_run > 0 && crate::step_kind::of(step.kind).rerun_changes_product();
        verdicts[i] = out;
    }
    Freshness {
        steps: steps_out,
        verdicts,
    }
}

/// The consumed digest of step `i` from the verdicts of its upstream steps (done tasks
/// with their current products), as `campaign_core` computes it at run time.
fn consumed_digest(
    plan: &Plan,
    i: usize,
    ids: &[Vec<String>],
    verdicts: &[Vec<Verdict>],
) -> String {
    consumed_digest_of(plan.steps[i].upstream.iter().map(|&u| {
        let items = ids[u].iter().zip(&verdicts[u]).map(|(id, v)| match v {
            Verdict::Done { product, .. } => {
                (id.as_str(), TaskState::Succeeded, product.as_deref())
            }
            Verdict::Failed => (id.as_str(), TaskState::Failed, None),
            Verdict::Blocked(_) => (id.as_str(), TaskState::Blocked, None),
            Verdict::Run(..) => (id.as_str(), TaskState::Pending, None),
        });
        (plan.campaign.steps[u].name.as_str(), product_digest(items))
    }))
}

fn plan_contains(plan: &Plan, row: &TaskRow) -> bool {
    plan.step_index(&row.step).is_some_and(|i| {
        (row.index < plan.steps[i].task_count || plan.steps[i].open_ended)
            && plan.task(i, row.index).id == row.id
    })
}

/// A task's parameters as stored (`tasks.params`).
pub fn params_json(params: &[(String, flow_dsl::array::ParamValue)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.text.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Which part of a task's identity changed since the task it replaces ran.
fn changed_component(old: Option<&str>, now: &WorkComponents) -> RunReason {
    let Some(old) = old.and_then(|o| serde_json::from_str::<WorkComponents>(o).ok()) else {
        return RunReason::SettingsChanged;
    };
    if old.environment != now.environment {
        RunReason::EnvironmentRebuilt
    } else if old.settings != now.settings || old.inputs != now.inputs {
        RunReason::SettingsChanged
    } else if old.upstream != now.upstream {
        RunReason::UpstreamChanged
    } else {
        RunReason::SettingsChanged
    }
}
