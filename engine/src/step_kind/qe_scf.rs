//! `qe-scf`: one Quantum ESPRESSO SCF per structure through `flow_qe_scf` (inputs, the
//! failure classifier, the recovery policy, sanitised results). A success leaves
//! `result.json` in the task's work directory; every ended task adds its row to the step's
//! results table, and the run ends with the step's extxyz aggregate.

use super::{typed_outcome, Attempt, RecordedCheck, StepBehaviour, TypedResult};
use crate::compile::Plan;
use crate::layout::{write_atomic, Layout};
use crate::task_spec::TaskSpec;
use flow_dsl::error_class::ErrorClass;
use flow_dsl::model::{Step, StepKind};
use std::time::{Duration, Instant};

pub struct QeScf;

impl StepBehaviour for QeScf {
    fn run_typed(&self, spec: &TaskSpec, started: f64) -> Option<Result<TypedResult, String>> {
        Some(run(spec, started))
    }

    /// The results table gets the structure's row as its task ends (a task that left
    /// neither result.json nor fatal.json, interrupted or killed, adds none). The table is
    /// a view of files that stay: failing to append must not fail the task.
    /// A task whose allocation ran out on its last allowed attempt ends with a `fatal.json`
    /// (from its interrupted history) and a results-table row, like a policy's give-up.
    fn after_final_failure(&self, a: &Attempt, message: &str) {
        let step = a.step();
        let work_dir = a.layout.work_dir(&step.name, a.index, a.task_id);
        let structure = a.plan.steps[a.step_index]
            .structures
            .get(a.index as usize)
            .cloned()
            .unwrap_or_else(|| a.task_id.to_string());
        let reason = format!("no retry left after attempt {}: {message}", a.attempt);
        if let Ok(true) = flow_qe_scf::task::give_up_interrupted(&work_dir, &structure, &reason) {
            let _ = flow_qe_scf::results_table::record_task(
                &results_table(a.layout, &step.name),
                &work_dir,
            );
        }
    }

    fn after_attempt(&self, a: &Attempt) {
        let step = a.step();
        let _ = flow_qe_scf::results_table::record_task(
            &results_table(a.layout, &step.name),
            &a.layout.work_dir(&step.name, a.index, a.task_id),
        );
    }

    /// What a success leaves is the result document in its work directory.
    fn check_recorded(
        &self,
        plan: &Plan,
        step_index: usize,
        index: u64,
        _details: Option<&serde_json::Value>,
        verify: bool,
    ) -> Option<RecordedCheck> {
        let step = &plan.campaign.steps[step_index];
        let task = plan.task(step_index, index);
        let layout = Layout::new(&plan.campaign.campaign_dir);
        let path = layout
            .work_dir(&step.name, index, &task.id)
            .join("result.json");
        let rel = path
            .strip_prefix(&plan.campaign.campaign_dir)
            .unwrap_or(&path)
            .to_path_buf();
        if !path.is_file() {
            return Some(RecordedCheck::Missing(format!(
                "its result {} is gone",
                rel.display()
            )));
        }
        if verify {
            if let Err(e) = flow_qe_scf::results::read_result_json(&path) {
                return Some(RecordedCheck::Invalid(format!(
                    "its result {} no longer reads: {e}",
                    rel.display()
                )));
            }
        }
        Some(RecordedCheck::Kept)
    }

    /// The first `pw.in` (or that of the structure shown) and the k-points per class.
    fn plan_details(&self, plan: &Plan, step_index: usize, shown: Option<&str>) -> Option<String> {
        let step = &plan.campaign.steps[step_index];
        let ranks = step.resources.ranks().max(1) as u32;
        let base = plan.campaign.base_dir();
        let text = flow_qe_scf::Settings::from_json(&step.settings)
            .map_err(|e| format!("{}: {}", e.field, e.message))
            .and_then(|s| {
                flow_qe_scf::plan::plan_summary_for(&s, &base, ranks, shown)
                    .map_err(|e| e.to_string())
            });
        Some(match text {
            Ok(summary) => format!("\nstep {} ({}):\n{summary}", step.name, step.kind.as_str()),
            Err(e) => format!(
                "\nstep {}: cannot prepare the first input: {e}\n",
                step.name
            ),
        })
    }
}

/// Which qe-scf structure `flow plan` shows (`--structure NAME` / `--task ID`); default: the
/// first of each step.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum QeFocus {
    #[default]
    First,
    Structure(String),
    Task(String),
}

impl QeFocus {
    pub fn from_args(structure: Option<String>, task: Option<String>) -> QeFocus {
        match (structure, task) {
            (Some(s), _) => QeFocus::Structure(s),
            (None, Some(t)) => QeFocus::Task(t),
            _ => QeFocus::First,
        }
    }

    /// The step and structure to show, or `None` for the first of each; `Err` when the
    /// focus names something no qe-scf step has.
    pub fn resolve(&self, plan: &Plan) -> Result<Option<(usize, String)>, String> {
        let qe_steps = || {
            plan.order
                .iter()
                .copied()
                .filter(|&i| plan.campaign.steps[i].kind == StepKind::QeScf)
        };
        match self {
            QeFocus::First => Ok(None),
            QeFocus::Structure(name) => qe_steps()
                .find(|&i| plan.steps[i].structures.iter().any(|s| s == name))
                .map(|i| Some((i, name.clone())))
                .ok_or_else(|| {
                    let some: Vec<&str> = qe_steps()
                        .flat_map(|i| plan.steps[i].structures.iter().map(String::as_str))
                        .take(5)
                        .collect();
                    format!(
                        "--structure {name}: no qe-scf step has a structure of that name (some: {})",
                        if some.is_empty() { "none".to_string() } else { some.join(", ") }
                    )
                }),
            QeFocus::Task(id) => {
                let mut found = Vec::new();
                for i in qe_steps() {
                    for t in 0..plan.steps[i].task_count {
                        if plan.task(i, t).id.starts_with(id.as_str()) {
                            found.push((i, plan.steps[i].structures[t as usize].clone()));
                        }
                    }
                }
                match found.len() {
                    1 => Ok(found.pop()),
                    0 => Err(format!("--task {id}: no qe-scf task has that id")),
                    n => Err(format!(
                        "--task {id}: {n} qe-scf tasks start with it; give more of the id"
                    )),
                }
            }
        }
    }
}

/// Every successful structure of a step in one extxyz file (energy, forces and stress per
/// frame) at `qa/<step>.extxyz`, for training pipelines. Rewritten after each run, so
/// structures added later appear too.
pub fn write_aggregate(
    layout: &Layout,
    step: &str,
    task_dirs: impl Iterator<Item = std::path::PathBuf>,
) -> Result<std::path::PathBuf, String> {
    let mut results = Vec::new();
    for dir in task_dirs {
        let file = dir.join("result.json");
        results.push(flow_qe_scf::results::read_result_json(&file).map_err(|e| e.to_string())?);
    }
    results.sort_by(|a, b| a.structure.cmp(&b.structure));
    let mut bytes = Vec::new();
    flow_qe_scf::results::write_extxyz(&results, &mut bytes).map_err(|e| e.to_string())?;
    let path = layout.qa().join(format!("{step}.extxyz"));
    write_atomic(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    // one row per structure again (rows were appended as tasks ended)
    flow_qe_scf::results_table::compact_table(&results_table(layout, step))
        .map_err(|e| e.to_string())?;
    Ok(path)
}

/// The results table of a step, `qa/<step>.results.csv` (one row per structure, appended
/// as each task ends; see `flow_qe_scf::results_table`).
pub fn results_table(layout: &Layout, step: &str) -> std::path::PathBuf {
    layout.qa().join(format!("{step}.results.csv"))
}

/// The line `flow status` prints for a step's results table (converged / failed /
/// unphysical counts, energy range), if the step is qe-scf and its table has rows.
pub fn results_line(layout: &Layout, step: &Step) -> Option<String> {
    if step.kind != StepKind::QeScf {
        return None;
    }
    let table = results_table(layout, &step.name);
    flow_qe_scf::results_table::summarize_table(&table)
        .map(|s| format!("  results: {s} ({})\n", table.display()))
}

/// The machine's launcher as an argv prefix: `srun`, `mpirun -np {{ranks}}`, or none.
pub fn launcher_argv(launcher: Option<&str>, ranks: u64) -> Vec<String> {
    match launcher {
        None | Some("none") | Some("") => Vec::new(),
        Some(l) => l
            .replace("{{ranks}}", &ranks.to_string())
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    }
}

fn run(spec: &TaskSpec, started: f64) -> Result<TypedResult, String> {
    use flow_qe_scf::run::{RunOptions, StructureOutcome};
    let settings = flow_qe_scf::Settings::from_json(&spec.settings)
        .map_err(|e| format!("{}: {}", e.field, e.message))?;
    let structure: flow_qe_scf::plan::StructureRef = spec
        .structure
        .clone()
        .ok_or("the task spec names no structure")
        .and_then(|v| {
            serde_json::from_value(v).map_err(|_| "the task spec's structure is unreadable")
        })?;
    let mut options = RunOptions::from_settings(&settings);
    let ranks = spec.ranks.max(1);
    options.launcher = launcher_argv(spec.launcher.as_deref(), ranks);
    if options.launcher.is_empty() && ranks > 1 {
        options.launcher = launcher_argv(Some("mpirun -np {{ranks}}"), ranks);
    }
    options.ranks = ranks as u32;
    // The scheduler's clock started before this process did (queue to start, the job's
    // setup) and it kills a little after its limit: flow's own deadline comes first, by a
    // margin, so a walltime ends as an interrupted policy (class walltime, resumed and
    // escalated by `on_retry`), not as a pw.x killed from outside.
    options.deadline = spec
        .time_limit_s
        .map(|s| Instant::now() + Duration::from_secs_f64((s - deadline_margin_s(s)).max(1.0)));
    options.env = vec![
        ("OMPI_ALLOW_RUN_AS_ROOT".into(), "1".into()),
        ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM".into(), "1".into()),
    ];
    // An earlier allocation that ran out of time left its history: resume the policy.
    let history = match std::fs::read_to_string(spec.work_dir.join("interrupted.json")) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_default(),
        Err(_) => Default::default(),
    };
    let mut attempts = Vec::new();
    let result = flow_qe_scf::task::run_task(
        &settings,
        &spec.base_dir,
        &structure,
        &spec.work_dir,
        history,
        &options,
        &mut |a| {
            attempts.push(serde_json::to_value(a).unwrap_or_default());
            eprintln!(
                "qe-scf {}: attempt {} {}",
                structure.name,
                a.attempt,
                a.error_class
                    .map_or("succeeded".to_string(), |c| c.to_string())
            );
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(match result {
        StructureOutcome::Success(r) => TypedResult {
            outcome: typed_outcome(None, None, started),
            details: serde_json::json!({"result": *r, "attempts": attempts, "result_file": spec.work_dir.join("result.json")}),
            final_failure: false,
        },
        StructureOutcome::Fatal(report) => {
            let class = report
                .attempts
                .last()
                .and_then(|a| a.error_class)
                .unwrap_or(ErrorClass::NonzeroExit);
            TypedResult {
                outcome: typed_outcome(
                    Some(class),
                    Some(format!(
                        "qe-scf gave up after {} attempt(s): {}",
                        report.attempts.len(),
                        report.reason
                    )),
                    started,
                ),
                details: serde_json::json!({"fatal": report, "attempts": attempts}),
                // The recovery policy already retried: the engine must not start it over.
                final_failure: true,
            }
        }
        StructureOutcome::Interrupted { reason, .. } => TypedResult {
            outcome: typed_outcome(
                Some(ErrorClass::Walltime),
                Some(format!(
                    "the allocation ended mid-policy ({reason}); the next attempt resumes it"
                )),
                started,
            ),
            details: serde_json::json!({"interrupted": reason, "attempts": attempts}),
            final_failure: false,
        },
    })
}

/// Seconds before the scheduler's limit that flow's own deadline falls: 10% of the limit,
/// at least 5 s, at most 120 s.
fn deadline_margin_s(limit_s: f64) -> f64 {
    (limit_s * 0.1).clamp(5.0, 120.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_margin_is_bounded() {
        assert_eq!(deadline_margin_s(60.0), 6.0);
        assert_eq!(deadline_margin_s(10.0), 5.0);
        assert_eq!(deadline_margin_s(86_400.0), 120.0);
    }

    #[test]
    fn launchers() {
        assert!(launcher_argv(None, 4).is_empty());
        assert_eq!(launcher_argv(Some("srun"), 4), ["srun"]);
        assert_eq!(
            launcher_argv(Some("mpirun -np {{ranks}}"), 4),
            ["mpirun", "-np", "4"]
        );
    }
}
