//! The launch of an attempt, the same for every step kind: the resources it asks for
//! (after `on_retry` escalation), its environment, and its argv. Command kinds run the
//! user's shell command directly (no wrapper process): the task's own shell writes the
//! exit status to the result file from an EXIT trap, so work that finishes after the
//! driver died is still ingested. Typed kinds run `flow task exec SPEC`, which calls the
//! step's crate (`step_kind`) and writes a full result (outcome + details) atomically.

use crate::compile::Plan;
use crate::layout::{write_atomic, Layout};
use crate::render::command_for;
use crate::task_spec::TaskSpec;
use flow_dsl::error_class::ErrorClass;
use flow_dsl::model::Step;
use flow_executors::{Resources, TaskLaunch};

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
/// The line is appended with the attempt's task id (a hex digest) and number, so one file can
/// hold the statuses of many attempts (the local executor's per-worker journals).
pub const RESULT_TRAP: &str = r#"trap 'flow_rc=$?; printf "{\"task_id\":\"%s\",\"attempt\":%d,\"exit_code\":%d}\n" "$FLOW_TASK_ID" "$FLOW_ATTEMPT" "$flow_rc" >> "$FLOW_RESULT_FILE"' EXIT"#;

/// Build the launch of one attempt.
pub fn build_launch(
    plan: &Plan,
    layout: &Layout,
    step_index: usize,
    index: u64,
    task_id: &str,
    attempt: u32,
    time_limit: Option<std::time::Duration>,
) -> Result<TaskLaunch, String> {
    describe_launch(
        plan, layout, step_index, index, task_id, attempt, true, time_limit,
    )
}

/// The launch of an attempt. With `prepare`, also make what it needs on disk (directories,
/// the spec file of typed steps, no stale result); without, touch nothing (`flow plan`).
/// `time_limit` is the attempt's scheduler limit after `on_retry` escalation (`None`: the
/// step's own), which a typed step's own deadline follows.
#[allow(clippy::too_many_arguments)]
pub fn describe_launch(
    plan: &Plan,
    layout: &Layout,
    step_index: usize,
    index: u64,
    task_id: &str,
    attempt: u32,
    prepare: bool,
    time_limit: Option<std::time::Duration>,
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
            status_by_trap: true,
            timeout,
        });
    }

    // Typed steps: the driver writes everything the job needs (no re-planning in the job).
    let mut spec = TaskSpec::new(plan, layout, step_index, &task, attempt);
    if let Some(limit) = time_limit {
        spec.time_limit_s = Some(limit.as_secs_f64());
    }
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
        status_by_trap: false,
        timeout,
    })
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
