//! `flow task exec SPEC` and `flow task run-manifest MANIFEST INDEX`: the code that runs on
//! the node where a task runs. It writes the attempt's result atomically to the result
//! path named in the spec/launch; the driver ingests it.

use crate::step_kind::TypedResult;
use crate::task_spec::TaskSpec;
use flow_dsl::error_class::ErrorClass;
use flow_executors::task_runner::{now, run_to_completion, write_result};
use flow_executors::{AttemptOutcome, TaskLaunch};
use std::io::{BufRead, BufReader};
use std::path::Path;

fn failure(class: ErrorClass, message: String, started: f64) -> TypedResult {
    TypedResult {
        outcome: AttemptOutcome {
            exit_code: None,
            signal: None,
            error_class: Some(class),
            message: Some(message),
            started_at: Some(started),
            ended_at: Some(now()),
            usage: None,
        },
        details: serde_json::Value::Null,
        final_failure: false,
    }
}

/// The typed work of a task, by its step kind (`step_kind`). Errors are messages for a
/// `launch-failed` outcome.
fn run_typed(spec: &TaskSpec, started: f64) -> Result<TypedResult, String> {
    flow_dsl::model::StepKind::parse(&spec.kind)
        .and_then(|kind| crate::step_kind::of(kind).run_typed(spec, started))
        .unwrap_or_else(|| {
            Err(format!(
                "step kind `{}` has no typed runner in this build of flow",
                spec.kind
            ))
        })
}

/// Run a typed task from its spec file; returns the process exit code.
pub fn exec(spec_path: &Path) -> i32 {
    let started = now();
    let spec: TaskSpec = match std::fs::read_to_string(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flow task exec: cannot read {}: {e}", spec_path.display());
            return 1;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&spec.work_dir) {
        eprintln!(
            "flow task exec: cannot create {}: {e}",
            spec.work_dir.display()
        );
    }
    let result =
        run_typed(&spec, started).unwrap_or_else(|e| failure(ErrorClass::LaunchFailed, e, started));
    let doc = serde_json::json!({
        "exit_code": result.outcome.exit_code,
        "signal": result.outcome.signal,
        "error_class": result.outcome.error_class,
        "message": result.outcome.message,
        "started_at": result.outcome.started_at,
        "ended_at": result.outcome.ended_at,
        "details": result.details,
        "final_failure": result.final_failure,
    });
    let tmp = spec.result_path.with_extension("json.tmp");
    let write = std::fs::create_dir_all(spec.result_path.parent().unwrap_or(Path::new(".")))
        .and_then(|_| std::fs::write(&tmp, format!("{doc}\n")))
        .and_then(|_| std::fs::rename(&tmp, &spec.result_path));
    if let Err(e) = write {
        eprintln!(
            "flow task exec: cannot write the result {}: {e}",
            spec.result_path.display()
        );
        return 1;
    }
    if let Some(m) = &result.outcome.message {
        eprintln!("flow task exec: {m}");
    }
    if result.outcome.succeeded() {
        0
    } else {
        1
    }
}

/// Run line `index` (0-based) of a manifest of JSON launches.
pub fn run_manifest(manifest: &Path, index: usize) -> i32 {
    let file = match std::fs::File::open(manifest) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "flow task run-manifest: cannot open {}: {e}",
                manifest.display()
            );
            return 1;
        }
    };
    let Some(Ok(line)) = BufReader::new(file).lines().nth(index) else {
        eprintln!(
            "flow task run-manifest: {} has no line {index}",
            manifest.display()
        );
        return 1;
    };
    match serde_json::from_str::<TaskLaunch>(&line) {
        Ok(launch) => run_launch(&launch),
        Err(e) => {
            eprintln!(
                "flow task run-manifest: line {index} of {} is not a launch: {e}",
                manifest.display()
            );
            1
        }
    }
}

/// Run one launch in the foreground and write its result.
pub fn run_launch(launch: &TaskLaunch) -> i32 {
    // A pod that Kubernetes started again for an index whose attempt already ended (a
    // cluster without per-index retries reruns failed indexes): the attempt is decided and
    // flow retries it with a new attempt of its own. Hand back the same result, run nothing.
    if std::env::var_os(flow_executors::kubernetes::job_manifest::TERMINATION_MESSAGE_ENV).is_some()
    {
        if let Some(done) = flow_executors::task_runner::read_result(&launch.result_path) {
            eprintln!(
                "flow task: attempt {} of {} already has a result ({}); not running it again",
                launch.attempt,
                launch.task_id,
                launch.result_path.display()
            );
            write_termination_message(launch, &done);
            return 0;
        }
    }
    let outcome = run_to_completion(launch);
    let mut own = if launch.writes_result {
        flow_executors::task_runner::read_result(&launch.result_path)
    } else {
        None
    };
    match (&mut own, &outcome.usage) {
        // The task wrote its own result (a shell's exit status, a typed step's document):
        // what it used, measured here, is added to it.
        (Some(own), Some(usage)) if own.usage.is_none() => {
            if flow_executors::task_runner::add_usage_to_result(&launch.result_path, usage).is_ok()
            {
                own.usage = Some(usage.clone());
            }
        }
        (Some(_), _) => {}
        (None, _) => {
            let _ = write_result(&launch.result_path, &outcome);
        }
    }
    write_termination_message(launch, own.as_ref().unwrap_or(&outcome));
    outcome.exit_code.unwrap_or(1)
}

/// In a Kubernetes pod, hand the result to the kubelet as the container's termination
/// message (`$FLOW_TERMINATION_MESSAGE`), so the driver reads it from the pod status. The
/// result file on the volume stays the record that survives the pod.
fn write_termination_message(launch: &TaskLaunch, outcome: &AttemptOutcome) {
    use flow_executors::kubernetes::{job_manifest::TERMINATION_MESSAGE_ENV, termination};
    let Some(path) = std::env::var_os(TERMINATION_MESSAGE_ENV) else {
        return;
    };
    if let Some(text) = termination::encode(&launch.task_id, launch.attempt, outcome) {
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!(
                "flow task: cannot write the termination message to {}: {e}",
                Path::new(&path).display()
            );
        }
    }
}
