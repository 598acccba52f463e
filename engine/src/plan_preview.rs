//! What `flow plan` shows beyond the plan itself, without touching anything: per step the
//! exact sbatch script of its first Slurm array, its first Kubernetes Job (or all of them,
//! `--format manifests`), and what its kind adds (`step_kind::StepBehaviour::plan_details`).

use crate::attempt_launch::{describe_launch, resources_of};
use crate::backend::{kubernetes_config, kubernetes_manifest_dir, slurm_preview_executor};
use crate::compile::Plan;
use crate::layout::{write_atomic, Layout};
use crate::step_kind::{self, qe_scf::QeFocus, runs_on_driver};

/// The first batch of each step as Slurm would get it: the exact sbatch script.
fn slurm_preview(plan: &Plan, step_index: usize) -> Result<String, String> {
    let campaign = plan.campaign;
    let step = &campaign.steps[step_index];
    let planned = &plan.steps[step_index];
    let layout = Layout::new(&campaign.campaign_dir);
    let n = planned.batch_size.min(planned.task_count);
    let mut tasks = Vec::new();
    for i in 0..n {
        let t = plan.task(step_index, i);
        tasks.push(describe_launch(
            plan, &layout, step_index, i, &t.id, 1, false, None,
        )?);
    }
    let batch = flow_executors::Batch {
        campaign: format!("{}_{}", campaign.version, campaign.name),
        step: step.name.clone(),
        batch_key: format!("{}-b{:05}", step.name, 0),
        resources: resources_of(step),
        max_running: step.execution.max_running,
        tasks,
    };
    let executor = slurm_preview_executor(plan).map_err(|e| e.to_string())?;
    let previews = executor.preview(&batch).map_err(|e| e.to_string())?;
    let first = previews.first().ok_or("no array")?;
    Ok(format!(
        "first array of step {} ({} of {} tasks, throttle {}), {}:\n{}",
        step.name,
        first.tasks.len(),
        planned.task_count,
        first
            .throttle
            .map_or("none".to_string(), |t| format!("%{t}")),
        first.script_path.display(),
        first.script
    ))
}

/// The Job manifests of every batch of a step (Kubernetes), without touching anything.
fn kubernetes_jobs(
    plan: &Plan,
    step_index: usize,
    only_first: bool,
) -> Result<Vec<serde_json::Value>, String> {
    let campaign = plan.campaign;
    let step = &campaign.steps[step_index];
    let planned = &plan.steps[step_index];
    let config = kubernetes_config(plan)?;
    let layout = Layout::new(&campaign.campaign_dir);
    let tag = format!("{}_{}", campaign.version, campaign.name);
    let size = planned.batch_size.max(1);
    let mut jobs = Vec::new();
    let mut start = 0;
    // Planned tasks, or an adaptive step's registered evaluations (indices from 0).
    let count = plan.task_total(step_index);
    while start < count {
        let end = (start + size).min(count);
        let mut tasks = Vec::new();
        for i in start..end {
            let t = plan.task(step_index, i);
            tasks.push(describe_launch(
                plan, &layout, step_index, i, &t.id, 1, false, None,
            )?);
        }
        let batch_key = format!("{}-b{:05}", step.name, start / size);
        let batch = flow_executors::Batch {
            campaign: tag.clone(),
            step: step.name.clone(),
            batch_key,
            resources: resources_of(step),
            max_running: step.execution.max_running,
            tasks,
        };
        // The same file the executor writes at submission (named by the manifest's hash).
        let (_, hash) = flow_executors::kubernetes::job_manifest::batch_manifest(&batch)
            .map_err(|e| format!("step {}: {e}", step.name))?;
        let manifest = kubernetes_manifest_dir(&layout).join(&step.name).join(
            flow_executors::kubernetes::job_manifest::manifest_file_name(&batch.batch_key, &hash),
        );
        let rendered = flow_executors::kubernetes::job_manifest::render_batch_with_hash(
            &tag,
            &batch,
            step.resources.job_type.as_deref(),
            config,
            &manifest.display().to_string(),
            &config.flow_binary,
            &hash,
        )
        .map_err(|e| format!("step {}: {e}", step.name))?;
        jobs.extend(rendered);
        if only_first {
            break;
        }
        start = end;
    }
    Ok(jobs)
}

/// `flow plan --format manifests -o DIR`: one JSON file per Job, named after the Job.
pub fn write_kubernetes_manifests(plan: &Plan, dir: &std::path::Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut n = 0;
    for &i in &plan.order {
        // adaptive: the first batch's Job (its evaluations exist only once asked).
        if let Some(a) = &plan.campaign.steps[i].adaptive {
            crate::adaptive_step::register_first_batch(plan, i, a);
        }
        if plan.task_total(i) == 0 || runs_on_driver(&plan.campaign.steps[i]) {
            continue;
        }
        for job in kubernetes_jobs(plan, i, false)? {
            let name = job
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or("job")
                .to_string();
            let path = dir.join(format!("{name}.json"));
            let text = serde_json::to_string_pretty(&job).map_err(|e| e.to_string())?;
            write_atomic(&path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Extra plan text for step kinds that have more to show (generated inputs, policies,
/// scheduler scripts).
pub fn plan_details(plan: &Plan) -> String {
    plan_details_for(plan, &QeFocus::First).unwrap_or_else(|e| format!("\n{e}\n"))
}

/// [`plan_details`] with the qe-scf structure to show chosen by `focus`.
pub fn plan_details_for(plan: &Plan, focus: &QeFocus) -> Result<String, String> {
    let shown = focus.resolve(plan)?;
    let mut out = String::new();
    for &i in &plan.order {
        let step = &plan.campaign.steps[i];
        if plan.executor == flow_dsl::model::ExecutorKind::Slurm
            && plan.steps[i].task_count > 0
            && !runs_on_driver(step)
        {
            match slurm_preview(plan, i) {
                Ok(text) => out.push_str(&format!("\n{text}")),
                Err(e) => out.push_str(&format!(
                    "\nstep {}: cannot render the sbatch script: {e}\n",
                    step.name
                )),
            }
        }
        if plan.executor == flow_dsl::model::ExecutorKind::Kubernetes
            && plan.steps[i].task_count > 0
            && !runs_on_driver(step)
        {
            match kubernetes_jobs(plan, i, true) {
                Ok(jobs) => {
                    for job in jobs {
                        out.push_str(&format!(
                            "\nfirst Job of step {} (all of them: flow plan --format manifests -o DIR):\n{}\n",
                            step.name,
                            serde_json::to_string_pretty(&job).unwrap_or_default()
                        ));
                    }
                }
                Err(e) => out.push_str(&format!(
                    "\nstep {}: cannot render the Job: {e}\n",
                    step.name
                )),
            }
        }
        let shown_here = shown
            .as_ref()
            .filter(|(step_index, _)| *step_index == i)
            .map(|(_, name)| name.as_str());
        if let Some(text) = step_kind::of(step.kind).plan_details(plan, i, shown_here) {
            out.push_str(&text);
        }
    }
    Ok(out)
}
