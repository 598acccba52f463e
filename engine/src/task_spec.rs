//! What a typed task needs to run, written by the driver next to the campaign so that a
//! job on a compute node never re-plans the campaign.

use crate::compile::{Plan, PlannedTask};
use crate::layout::Layout;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    pub kind: String,
    pub step: String,
    pub task_id: String,
    pub attempt: u32,
    pub index: u64,
    pub seed: u64,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The step's fields as written (kind-specific settings included).
    pub settings: serde_json::Value,
    pub campaign_dir: PathBuf,
    /// Directory of the campaign file (relative paths in settings are relative to it).
    pub base_dir: PathBuf,
    /// Per-task scratch directory.
    pub work_dir: PathBuf,
    pub machine: String,
    pub root: Option<String>,
    pub launcher: Option<String>,
    pub ranks: u64,
    pub cpus: u64,
    pub gpus: u64,
    /// Scheduler wall-clock limit of the task, seconds.
    pub time_limit_s: Option<f64>,
    pub result_path: PathBuf,
    /// qe-scf: the structure this task computes (the step crate's reference).
    #[serde(default)]
    pub structure: Option<serde_json::Value>,
}

impl TaskSpec {
    pub fn new(
        plan: &Plan,
        layout: &Layout,
        step_index: usize,
        task: &PlannedTask,
        attempt: u32,
    ) -> TaskSpec {
        let campaign = plan.campaign;
        let step = &campaign.steps[step_index];
        let base = campaign.base_dir();
        let base_dir = std::fs::canonicalize(&base).unwrap_or(base);
        TaskSpec {
            kind: step.kind.as_str().to_string(),
            step: step.name.clone(),
            task_id: task.id.clone(),
            attempt,
            index: task.index,
            seed: task.seed,
            params: task
                .params
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.text.clone())))
                .collect(),
            settings: step.settings.clone(),
            campaign_dir: campaign.campaign_dir.clone(),
            base_dir,
            work_dir: layout.work_dir(&step.name, task.index, &task.id),
            machine: campaign.machine.name.clone(),
            // The root of the build-env step that provides the environment (or builds it).
            root: plan.steps[step_index]
                .env
                .as_ref()
                .and_then(|b| b.root.as_ref())
                .map(|r| r.display().to_string())
                .or_else(|| campaign.machine.root.clone()),
            launcher: campaign.machine.launcher.clone(),
            ranks: step.resources.ranks(),
            cpus: step.resources.total_cpus(),
            gpus: step.resources.total_gpus(),
            time_limit_s: step
                .resources
                .time
                .or(step.execution.timeout)
                .map(|d| d.as_secs_f64()),
            result_path: layout.result_file(&step.name, task.index, &task.id, attempt),
            structure: plan.steps[step_index]
                .structure_refs
                .get(task.index as usize)
                .cloned(),
        }
    }
}
