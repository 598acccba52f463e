//! What each step kind contributes to the run: how an attempt is launched, and what is
//! checked after it ends (output validation, publishing, gates).
//!
//! Command kinds (`command`, `mock-generation`) run the user's shell command directly: no
//! wrapper process. The task's own shell writes the exit status to the result file from
//! an EXIT trap, so work that finishes after the driver died is still ingested. Typed
//! kinds (`qe-scf`, `build-env`, `md-benchmark`) run `flow task exec SPEC`, which calls the
//! step's crate and writes a full result (outcome + details) atomically.

use crate::campaign_core::{EndedAttempt, GateEffect};
use crate::compile::Plan;
use crate::layout::{write_atomic, Layout};
use crate::render::{command_for, output_for};
use crate::task_spec::TaskSpec;
use anyhow::Result;
use flow_dsl::error_class::ErrorClass;
use flow_dsl::model::{Step, StepKind};
use flow_executors::{AttemptOutcome, Executor, Resources, TaskLaunch};

/// What a finished task means for its step beyond itself.
#[derive(Debug, Clone, PartialEq)]
pub enum StepEffect {
    None,
    /// Print a warning (a MARGINAL benchmark with `on_marginal: warn`).
    Warn(String),
    /// Stop every descendant step (a gate said FAIL / MARGINAL with `stop`).
    GateStop(String),
}

/// The resources of a step's tasks after `walltime` and `oom` failures: the step's
/// `execution.on_retry` applied that many times (capped by its `max_time` / `max_mem`).
pub fn escalated_resources(step: &Step, (walltime, oom): (u32, u32)) -> Resources {
    use flow_executors::escalation::escalate;
    let policy = &step.execution.on_retry;
    let mut resources = resources_of(step);
    for _ in 0..walltime.min(16) {
        resources = escalate(&resources, policy, ErrorClass::Walltime).resources;
    }
    for _ in 0..oom.min(16) {
        resources = escalate(&resources, policy, ErrorClass::OutOfMemory).resources;
    }
    resources
}

/// Whether a step's tasks run on the driver's machine whatever the executor: build-env
/// unless the step says `run_on: compute`.
pub fn runs_on_driver(step: &Step) -> bool {
    step.kind == StepKind::BuildEnv
        && step.settings.get("run_on").and_then(|v| v.as_str()) != Some("compute")
}

/// The scheduler-facing resources of a step's tasks.
pub fn resources_of(step: &Step) -> Resources {
    let r = &step.resources;
    Resources {
        cpus: r.cpus_per_task,
        gpus: r.gpus_per_node,
        mem_mb: r.mem_mb.unwrap_or(0),
        time_limit: r.time,
        nodes: Some(r.nodes),
        tasks_per_node: Some(r.tasks_per_node),
        partition: r.partition.clone(),
        account: r.account.clone(),
        qos: r.qos.clone(),
        constraint: r.constraint.clone(),
        extra: r.extra.clone(),
    }
}

/// The shell line that records the exit status in `$FLOW_RESULT_FILE` when the task's shell
/// exits, however it exits (a kill -9 of the shell itself leaves no file: the task reruns).
pub const RESULT_TRAP: &str =
    r#"trap 'flow_rc=$?; printf "{\"exit_code\":%d}\n" "$flow_rc" > "$FLOW_RESULT_FILE"' EXIT"#;

/// Build the launch of one attempt.
pub fn build_launch(
    plan: &Plan,
    layout: &Layout,
    step_index: usize,
    index: u64,
    task_id: &str,
    attempt: u32,
) -> Result<TaskLaunch, String> {
    describe_launch(plan, layout, step_index, index, task_id, attempt, true)
}

/// The launch of an attempt. With `prepare`, also make what it needs on disk (directories,
/// the spec file of typed steps, no stale result); without, touch nothing (`flow plan`).
pub fn describe_launch(
    plan: &Plan,
    layout: &Layout,
    step_index: usize,
    index: u64,
    task_id: &str,
    attempt: u32,
    prepare: bool,
) -> Result<TaskLaunch, String> {
    let campaign = plan.campaign;
    let step = &campaign.steps[step_index];
    let task = plan.task(step_index, index);
    debug_assert_eq!(task.id, task_id);
    let result_path = layout.result_file(&step.name, index, task_id, attempt);
    let result_path = crate::confined_path::layout_path(&campaign.campaign_dir, &result_path)?;
    if prepare {
        if let Some(dir) = result_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let _ = std::fs::remove_file(&result_path);
    }
    let (stdout_path, stderr_path) = layout.log_files(&step.name, index, task_id, attempt);
    let (stdout_path, stderr_path) = (
        crate::confined_path::layout_path(&campaign.campaign_dir, &stdout_path)?,
        crate::confined_path::layout_path(&campaign.campaign_dir, &stderr_path)?,
    );
    let mut env: Vec<(String, String)> = vec![
        ("FLOW_SEED".into(), task.seed.to_string()),
        ("FLOW_STEP".into(), step.name.clone()),
        ("FLOW_INDEX".into(), index.to_string()),
        (
            "FLOW_CAMPAIGN_DIR".into(),
            campaign.campaign_dir.display().to_string(),
        ),
    ];
    env.extend(campaign.machine.setup.env.iter().cloned());
    env.extend(step.env.iter().cloned());
    env.extend(step.execution.max_log_bytes.map(|b| {
        (
            flow_executors::task_runner::LOG_LIMIT_VAR.to_string(),
            b.to_string(),
        )
    }));
    let timeout = step.execution.timeout;

    if step.kind.runs_user_command() {
        if let Some(name) = &step.uses_environment {
            match environment_variables(plan, step_index, name) {
                Ok(vars) => env.extend(vars),
                Err(e) if prepare => return Err(e),
                // At plan time the environment may not be built yet.
                Err(_) => env.push((
                    "VIRTUAL_ENV".into(),
                    format!("<environment {name}, built by its build-env step>"),
                )),
            }
        }
        let rendered = command_for(plan, step_index, &task, attempt)?;
        if let (true, Some(tmp)) = (prepare, &rendered.output_tmp) {
            let abs = crate::confined_path::output_path(campaign, step, tmp)?;
            if let Some(dir) = abs.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let _ = std::fs::remove_file(&abs);
        }
        let workdir = match &step.workdir {
            Some(w) => crate::confined_path::layout_path(
                &campaign.campaign_dir,
                &campaign.campaign_dir.join(w),
            )?,
            None => campaign.campaign_dir.clone(),
        };
        let mut script = String::with_capacity(rendered.command.len() + 128);
        script.push_str(RESULT_TRAP);
        script.push('\n');
        for line in &campaign.machine.setup.commands {
            script.push_str(line);
            script.push('\n');
        }
        script.push_str(&rendered.command);
        script.push('\n');
        return Ok(TaskLaunch {
            task_id: task_id.to_string(),
            attempt,
            argv: vec!["/bin/sh".into(), "-c".into(), script],
            env,
            workdir,
            stdout_path,
            stderr_path,
            result_path,
            writes_result: true,
            timeout,
        });
    }

    // Typed steps: the driver writes everything the job needs (no re-planning in the job).
    let spec = TaskSpec::new(plan, layout, step_index, &task, attempt);
    let spec_path = layout.spec_file(&step.name, index, task_id, attempt);
    let json = serde_json::to_vec_pretty(&spec).map_err(|e| e.to_string())?;
    if prepare {
        write_atomic(&spec_path, &json)
            .map_err(|e| format!("cannot write {}: {e}", spec_path.display()))?;
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the flow binary: {e}"))?;
    Ok(TaskLaunch {
        task_id: task_id.to_string(),
        attempt,
        argv: vec![
            exe.display().to_string(),
            "task".into(),
            "exec".into(),
            spec_path.display().to_string(),
        ],
        env,
        workdir: spec.work_dir.clone(),
        stdout_path,
        stderr_path,
        result_path,
        writes_result: true,
        timeout,
    })
}

fn invalid(outcome: &AttemptOutcome, message: String) -> AttemptOutcome {
    AttemptOutcome {
        error_class: Some(ErrorClass::InvalidOutput),
        message: Some(message),
        ..outcome.clone()
    }
}

/// Checks after an attempt: outputs validated and published, typed results read, gates.
/// Returns the outcome as it counts, details to store with the attempt, and the effect on
/// the step.
pub fn post_process(
    plan: &Plan,
    layout: &Layout,
    step_index: usize,
    index: u64,
    task_id: &str,
    attempt: u32,
    outcome: AttemptOutcome,
) -> Checked {
    let campaign = plan.campaign;
    let step = &campaign.steps[step_index];
    let result_path = layout.result_file(&step.name, index, task_id, attempt);
    // Only typed steps write more than an exit status: command kinds skip the read.
    let result_doc: Option<serde_json::Value> = if step.kind.runs_user_command() {
        None
    } else {
        std::fs::read_to_string(&result_path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    };
    let final_failure = result_doc
        .as_ref()
        .and_then(|v| v.get("final_failure"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    // A typed step's own result (written by `flow task exec`) knows better than an exit
    // status why it failed; a timeout or a kill leaves none, and the executor's word stands.
    let outcome = match result_doc
        .as_ref()
        .filter(|d| d.get("error_class").is_some())
    {
        Some(doc) => match serde_json::from_value::<AttemptOutcome>(doc.clone()) {
            Ok(own) => AttemptOutcome {
                signal: outcome.signal,
                // What the executor measured of the process tree beats the task's own word.
                usage: outcome.usage.clone().or_else(|| own.usage.clone()),
                ..own
            },
            Err(_) => outcome,
        },
        None => outcome,
    };
    let (outcome, details, effect) = check(
        plan, step_index, index, task_id, attempt, outcome, result_doc,
    );
    if step.kind == StepKind::QeScf {
        // the results table gets the structure's row as its task ends (a task that left
        // neither result.json nor fatal.json, interrupted or killed, adds none). The table
        // is a view of files that stay: failing to append must not fail the task.
        let _ = flow_qe_scf::results_table::record_task(
            &qe_results_table(layout, &step.name),
            &layout.work_dir(&step.name, index, task_id),
        );
    }
    Checked {
        final_failure: final_failure && !outcome.succeeded(),
        outcome,
        details,
        effect,
    }
}

/// Post-process an ended attempt (the step's checks: they read files) into what the core
/// is fed.
pub fn ended_attempt(
    plan: &Plan,
    layout: &Layout,
    step_index: usize,
    index: u64,
    task_id: &str,
    attempt: u32,
    outcome: AttemptOutcome,
) -> EndedAttempt {
    let checked = post_process(plan, layout, step_index, index, task_id, attempt, outcome);
    let product = if checked.outcome.succeeded() {
        product_of(
            plan,
            step_index,
            task_id,
            attempt,
            checked.details.as_deref(),
        )
    } else {
        None
    };
    let is_gate = plan.campaign.steps[step_index].kind == flow_dsl::model::StepKind::MdBenchmark;
    let gate = match &checked.effect {
        StepEffect::GateStop(m) => GateEffect::Stop(m.clone()),
        StepEffect::Warn(m) => GateEffect::Warn(m.clone()),
        // A benchmark that decided (it succeeded) and neither warns nor stops passes.
        StepEffect::None if is_gate && checked.outcome.succeeded() => GateEffect::Continue,
        StepEffect::None => GateEffect::None,
    };
    EndedAttempt {
        cancelled_elsewhere: checked.outcome.error_class == Some(ErrorClass::Cancelled),
        outcome: checked.outcome,
        details: checked.details,
        final_failure: checked.final_failure,
        gate,
        product,
    }
}

/// An attempt's outcome after the step's own checks.
#[derive(Debug, Clone)]
pub struct Checked {
    pub outcome: AttemptOutcome,
    /// JSON stored with the attempt.
    pub details: Option<String>,
    pub effect: StepEffect,
    /// The step already retried on its own terms: do not retry.
    pub final_failure: bool,
}

fn check(
    plan: &Plan,
    step_index: usize,
    index: u64,
    task_id: &str,
    attempt: u32,
    outcome: AttemptOutcome,
    result_doc: Option<serde_json::Value>,
) -> (AttemptOutcome, Option<String>, StepEffect) {
    let campaign = plan.campaign;
    let step = &campaign.steps[step_index];
    let details: Option<serde_json::Value> = result_doc.and_then(|v| v.get("details").cloned());
    let details_text = details.as_ref().map(|d| d.to_string());
    let mut effect = StepEffect::None;
    if let Some(gate) = details.as_ref().and_then(|d| d.get("gate")) {
        let message = gate
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string();
        match gate.get("action").and_then(|a| a.as_str()) {
            Some("stop") => effect = StepEffect::GateStop(message),
            Some("warn") => effect = StepEffect::Warn(message),
            _ => {}
        }
    }
    if !outcome.succeeded() {
        return (outcome, details_text, effect);
    }
    let task = plan.task(step_index, index);
    match step.kind {
        StepKind::MockGeneration => {
            let data = crate::render::template_data(plan, step_index, &task);
            let (final_rel, tmp_rel) = match output_for(plan, step_index, &task, &data, attempt) {
                Ok(Some(paths)) => paths,
                Ok(None) => return (outcome, details_text, effect),
                Err(e) => return (invalid(&outcome, e), details_text, effect),
            };
            let settings = match mock_settings(step, &data) {
                Ok(s) => s,
                Err(e) => return (invalid(&outcome, e), details_text, effect),
            };
            let (final_path, tmp_path) = match (
                crate::confined_path::output_path(campaign, step, &final_rel),
                crate::confined_path::output_path(campaign, step, &tmp_rel),
            ) {
                (Ok(f), Ok(t)) => (f, t),
                (Err(e), _) | (_, Err(e)) => return (invalid(&outcome, e), details_text, effect),
            };
            let published = if !tmp_path.exists() && final_path.exists() {
                // Ingested after a crash that happened between validation and bookkeeping:
                // the rename already happened; validate what is there, exactly as a fresh
                // output (and fingerprint it the same way).
                flow_mock_generation::validate_output(&final_path, &settings.validate)
                    .map_err(|e| e.to_string())
            } else {
                flow_mock_generation::publish(&tmp_path, &final_path, &settings.validate)
                    .map_err(|e| e.to_string())
            };
            match published {
                Ok(report) => {
                    let _ = flow_mock_generation::remove_leftover_temporaries(&final_path, task_id);
                    let fingerprint = flow_mock_generation::FileFingerprint::of(&final_path).ok();
                    let rows: Vec<serde_json::Value> = report
                        .datasets
                        .iter()
                        .map(|d| serde_json::json!({"path": d.path, "shape": d.shape}))
                        .collect();
                    let d = serde_json::json!({"output": final_rel, "fingerprint": fingerprint, "datasets": rows});
                    (outcome, Some(d.to_string()), effect)
                }
                Err(e) => (invalid(&outcome, e), details_text, effect),
            }
        }
        StepKind::Adaptive => {
            // An evaluation counts when its output holds a finite objective.
            let data = crate::render::template_data(plan, step_index, &task);
            let Some(settings) = &step.adaptive else {
                return (outcome, details_text, effect);
            };
            match output_for(plan, step_index, &task, &data, attempt) {
                Ok(Some((out, _))) => {
                    let path = campaign.campaign_dir.join(&out);
                    match flow_adaptive::read_objective(&path, &settings.objective_key) {
                        Ok(e) => {
                            let d = serde_json::json!({"output": out, "objective": e.loss, "diagnostics": e.diagnostics});
                            (outcome, Some(d.to_string()), effect)
                        }
                        Err(e) => (invalid(&outcome, e), details_text, effect),
                    }
                }
                Ok(None) => (outcome, details_text, effect),
                Err(e) => (invalid(&outcome, e), details_text, effect),
            }
        }
        StepKind::Command if step.output.is_none() => (outcome, details_text, effect),
        StepKind::Command => {
            let data = crate::render::template_data(plan, step_index, &task);
            if let Ok(Some((out, _))) = output_for(plan, step_index, &task, &data, attempt) {
                let path = campaign.campaign_dir.join(&out);
                if !path.exists() {
                    let message = format!(
                        "the command exited 0 but its output {} does not exist",
                        path.display()
                    );
                    return (invalid(&outcome, message), details_text, effect);
                }
                let fingerprint = flow_mock_generation::FileFingerprint::of(&path).ok();
                let details =
                    serde_json::json!({"output": out, "fingerprint": fingerprint}).to_string();
                return (outcome, Some(details), effect);
            }
            (outcome, details_text, effect)
        }
        _ => (outcome, details_text, effect),
    }
}

/// The product fingerprint of a successful attempt: what its consumers depend on. A
/// declared output's file fingerprint; a built environment's directory; nothing for a
/// benchmark (it gates, it produces nothing consumed); otherwise the attempt itself (its
/// effects are unknown, so every rerun counts as a change).
pub fn product_of(
    plan: &Plan,
    step_index: usize,
    task_id: &str,
    attempt: u32,
    details: Option<&str>,
) -> Option<String> {
    let step = &plan.campaign.steps[step_index];
    let d = details.and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok());
    if let Some(out) = d
        .as_ref()
        .and_then(|d| d.get("output"))
        .and_then(|o| o.as_str())
    {
        return crate::fingerprint::file_product(&plan.campaign.campaign_dir.join(out)).ok();
    }
    match step.kind {
        StepKind::MdBenchmark => None,
        StepKind::BuildEnv => d
            .as_ref()
            .and_then(|d| d.get("env_dir"))
            .map(|e| format!("env:{}", e.as_str().unwrap_or_default())),
        _ => Some(format!("run:{task_id}:{attempt}")),
    }
}

/// A mock-generation step's settings for one task: string values of `validate:` are
/// templates (`attributes: {realization: "{{realization}}"}`), rendered with the task's
/// variables.
pub(crate) fn mock_settings(
    step: &Step,
    data: &serde_json::Map<String, serde_json::Value>,
) -> Result<flow_mock_generation::Settings, String> {
    fn render_strings(
        v: &serde_json::Value,
        data: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        Ok(match v {
            serde_json::Value::String(s) if s.contains("{{") => serde_json::Value::String(
                flow_dsl::template::render(flow_dsl::template::TemplateKind::Path, s, data)?,
            ),
            serde_json::Value::Array(a) => serde_json::Value::Array(
                a.iter()
                    .map(|x| render_strings(x, data))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(o) => serde_json::Value::Object(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), render_strings(x, data)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
    let data = serde_json::Value::Object(data.clone());
    let validate = step
        .settings
        .get("validate")
        .map(|v| render_strings(v, &data))
        .transpose()?;
    let mut doc = serde_json::Map::new();
    if let Some(v) = validate {
        doc.insert("validate".into(), v);
    }
    serde_json::from_value(serde_json::Value::Object(doc))
        .map_err(|e| format!("steps.{}.validate: {e}", step.name))
}

/// Variables that put a task inside a built environment (PATH, VIRTUAL_ENV, caches), found
/// under the root of the build-env step that provides it (`environments`).
pub fn environment_variables(
    plan: &Plan,
    step_index: usize,
    name: &str,
) -> Result<Vec<(String, String)>, String> {
    crate::environments::variables(plan.campaign, plan.steps[step_index].env.as_ref(), name)
}

/// The Slurm executor of a plan: the machine's typed Slurm settings (set-up included), the
/// campaign's logs directory, and this very binary as the program each array element runs.
pub fn slurm_executor_for(plan: &Plan) -> Result<flow_executors::slurm::SlurmExecutor> {
    let campaign = plan.campaign;
    let paths = flow_executors::slurm::SlurmPaths {
        logs_dir: campaign.campaign_dir.join("logs"),
        flow_binary: std::env::current_exe()?,
    };
    let tag = format!("{}_{}", campaign.version, campaign.name);
    Ok(flow_executors::slurm::SlurmExecutor::new(
        tag,
        campaign.machine.slurm.clone(),
        paths,
    )?)
}

/// The Slurm executor for this plan.
pub fn slurm_executor(plan: &Plan) -> Result<Box<dyn Executor>> {
    Ok(Box::new(slurm_executor_for(plan)?))
}

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
            plan, &layout, step_index, i, &t.id, 1, false,
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
    let executor = slurm_executor_for(plan).map_err(|e| e.to_string())?;
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

/// qe-scf: every successful structure of a step in one extxyz file (energy, forces and
/// stress per frame) at `qa/<step>.extxyz`, for training pipelines. Rewritten after each
/// run, so structures added later appear too.
pub fn write_qe_aggregate(
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
    flow_qe_scf::results_table::compact_table(&qe_results_table(layout, step))
        .map_err(|e| e.to_string())?;
    Ok(path)
}

/// qe-scf: the results table of a step, `qa/<step>.results.csv` (one row per structure,
/// appended as each task ends; see `flow_qe_scf::results_table`).
pub fn qe_results_table(layout: &Layout, step: &str) -> std::path::PathBuf {
    layout.qa().join(format!("{step}.results.csv"))
}

/// qe-scf: the line `flow status` prints for a step's results table (converged / failed /
/// unphysical counts, energy range), if the table has rows.
pub fn qe_results_line(layout: &Layout, step: &Step) -> Option<String> {
    if step.kind != StepKind::QeScf {
        return None;
    }
    let table = qe_results_table(layout, &step.name);
    flow_qe_scf::results_table::summarize_table(&table)
        .map(|s| format!("  results: {s} ({})\n", table.display()))
}

/// The machine's `kubernetes:` settings, with the machine named in the error.
fn kubernetes_config<'p>(
    plan: &Plan<'p>,
) -> Result<&'p flow_dsl::machine_settings::KubernetesSettings, String> {
    let machine = &plan.campaign.machine;
    machine.kubernetes.as_ref().ok_or_else(|| {
        format!(
            "machine {} has no `kubernetes:` block: the kubernetes executor needs at least `namespace` and `image` (see `flow recipes show generic-k8s`)",
            machine.name
        )
    })
}

/// Where batch manifests go: in the campaign directory, which pods see at the same path on
/// the machine's volume.
fn kubernetes_manifest_dir(layout: &Layout) -> std::path::PathBuf {
    layout.metadata().join("manifests")
}

/// The Kubernetes executor of a campaign (connects to the cluster).
pub fn kubernetes_executor(plan: &Plan) -> Result<Box<dyn Executor>> {
    Ok(Box::new(kubernetes_executor_for(plan)?))
}

/// The Kubernetes executor as its concrete type (`flow cancel`, `flow logs`).
pub fn kubernetes_executor_for(
    plan: &Plan,
) -> Result<flow_executors::kubernetes::KubernetesExecutor> {
    let campaign = plan.campaign;
    let settings = kubernetes_config(plan)
        .map_err(|e| anyhow::anyhow!(e))?
        .clone();
    let layout = Layout::new(&campaign.campaign_dir);
    let target = flow_executors::kubernetes::KubernetesCampaign {
        campaign_tag: format!("{}_{}", campaign.version, campaign.name),
        settings,
        manifest_dir: kubernetes_manifest_dir(&layout),
        step_job_types: campaign
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.resources.job_type.clone()))
            .collect(),
    };
    Ok(flow_executors::kubernetes::KubernetesExecutor::connect(
        target,
    )?)
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
                plan, &layout, step_index, i, &t.id, 1, false,
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

    /// The structure to show for step `i`, or `None` for the first; `Err` when the focus
    /// names something no qe-scf step has.
    fn resolve(&self, plan: &Plan) -> Result<Option<(usize, String)>, String> {
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

/// Extra plan text for step kinds that have more to show (generated inputs, policies,
/// scheduler scripts).
pub fn plan_details(plan: &Plan) -> String {
    plan_details_for(plan, &QeFocus::First).unwrap_or_else(|e| format!("\n{e}\n"))
}

/// [`plan_details`] with the qe-scf structure to show chosen by `focus`.
pub fn plan_details_for(plan: &Plan, focus: &QeFocus) -> Result<String, String> {
    let shown = focus.resolve(plan)?;
    let mut out = String::new();
    let base = plan.campaign.base_dir();
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
        if let Some(a) = &step.adaptive {
            out.push_str(&crate::adaptive_step::plan_text(plan, i, a));
        }
        if step.kind == StepKind::QeScf {
            let ranks = step.resources.ranks().max(1) as u32;
            let text = flow_qe_scf::Settings::from_json(&step.settings)
                .map_err(|e| format!("{}: {}", e.field, e.message))
                .and_then(|s| {
                    let name = shown
                        .as_ref()
                        .filter(|(step_index, _)| *step_index == i)
                        .map(|(_, n)| n.as_str());
                    flow_qe_scf::plan::plan_summary_for(&s, &base, ranks, name)
                        .map_err(|e| e.to_string())
                });
            match text {
                Ok(summary) => out.push_str(&format!(
                    "\nstep {} ({}):\n{summary}",
                    step.name,
                    step.kind.as_str()
                )),
                Err(e) => out.push_str(&format!(
                    "\nstep {}: cannot prepare the first input: {e}\n",
                    step.name
                )),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_escalate_time_and_memory_within_their_caps() {
        let dir = tempfile::tempdir().unwrap();
        let text = "campaign: {name: e, version: v1, machine: local}\nsteps:\n  s:\n    kind: command\n    command: 'true'\n    resources: {time: 1h, mem: 1G}\n    execution: {on_retry: {time: x2, mem: x1.5, max_time: 3h, max_mem: 2G}}\n";
        let campaign = flow_dsl::load::load_campaign_text("e.yaml", text, dir.path()).unwrap();
        let step = &campaign.steps[0];
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(escalated_resources(step, (0, 0)).time_limit, Some(hour));
        assert_eq!(escalated_resources(step, (1, 0)).time_limit, Some(2 * hour));
        assert_eq!(escalated_resources(step, (2, 0)).time_limit, Some(3 * hour));
        assert_eq!(escalated_resources(step, (5, 0)).time_limit, Some(3 * hour));
        assert_eq!(escalated_resources(step, (0, 1)).mem_mb, 1536);
        assert_eq!(escalated_resources(step, (0, 3)).mem_mb, 2048);
        assert_eq!(escalated_resources(step, (1, 1)).mem_mb, 1536);
    }
}
