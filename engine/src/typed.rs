//! Dispatch of typed steps (qe-scf, build-env, md-benchmark) to their crates, inside
//! `flow task exec`. Each returns the attempt's outcome and details for the state database.

use crate::task_spec::TaskSpec;
use flow_dsl::error_class::ErrorClass;
use flow_executors::task_runner::now;
use flow_executors::AttemptOutcome;
use std::time::{Duration, Instant};

/// A typed step's answer: the outcome, and details stored with the attempt.
pub struct TypedResult {
    pub outcome: AttemptOutcome,
    pub details: serde_json::Value,
    /// The step already retried on its own terms (qe-scf's policy): the engine must not.
    pub final_failure: bool,
}

fn outcome(class: Option<ErrorClass>, message: Option<String>, started: f64) -> AttemptOutcome {
    AttemptOutcome {
        exit_code: Some(if class.is_none() { 0 } else { 1 }),
        signal: None,
        error_class: class,
        message,
        started_at: Some(started),
        ended_at: Some(now()),
        usage: None,
    }
}

/// Run the typed work of a task. Errors are messages for a `launch-failed` outcome.
pub fn run(spec: &TaskSpec, started: f64) -> Result<TypedResult, String> {
    match spec.kind.as_str() {
        "qe-scf" => run_qe(spec, started),
        "build-env" => run_build_env(spec, started),
        "md-benchmark" => run_md_benchmark(spec, started),
        other => Err(format!(
            "step kind `{other}` has no typed runner in this build of flow"
        )),
    }
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

fn run_qe(spec: &TaskSpec, started: f64) -> Result<TypedResult, String> {
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
    options.deadline = spec
        .time_limit_s
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
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
            outcome: outcome(None, None, started),
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
                outcome: outcome(
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
            outcome: outcome(
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

/// The environment root of a task: the step's `root:` or the machine's, `~` expanded.
pub fn env_root(
    step_root: Option<&std::path::Path>,
    machine_root: Option<&str>,
) -> Option<flow_mlip::EnvRoot> {
    let machine = machine_root.map(|r| flow_dsl::load::expand_home(r, std::path::Path::new(".")));
    flow_mlip::EnvRoot::resolve(step_root, machine.as_deref())
}

fn mlip_failure(e: flow_mlip::MlipError, started: f64) -> TypedResult {
    TypedResult {
        outcome: outcome(Some(e.class()), Some(e.to_string()), started),
        details: serde_json::Value::Null,
        final_failure: false,
    }
}

fn run_build_env(spec: &TaskSpec, started: f64) -> Result<TypedResult, String> {
    let settings: flow_mlip::build_env::Settings =
        serde_json::from_value(spec.settings.clone()).map_err(|e| format!("settings: {e}"))?;
    let root = env_root(settings.root.as_deref(), spec.root.as_deref())
        .ok_or("no environment root: set `root:` on the step or in the machine recipe")?;
    let recipes = spec.base_dir.join("recipes");
    let file =
        match flow_mlip::resolve_environment_file(&settings, &root, Some(&recipes), &spec.base_dir)
        {
            Ok(f) => f,
            Err(e) => return Ok(mlip_failure(e, started)),
        };
    let options = flow_mlip::BuildOptions {
        allow_python_download: settings.allow_python_download,
        ..Default::default()
    };
    match flow_mlip::build_environment(&root, &file, &options) {
        Ok(built) => Ok(TypedResult {
            outcome: outcome(None, None, started),
            details: serde_json::json!({
                "environment": file.name,
                "env_dir": built.env_dir,
                "action": format!("{:?}", built.action),
                "seconds": built.seconds,
                "root": root.path(),
            }),
            final_failure: false,
        }),
        Err(e) => Ok(mlip_failure(e, started)),
    }
}

fn run_md_benchmark(spec: &TaskSpec, started: f64) -> Result<TypedResult, String> {
    let settings: flow_mlip::md_benchmark::Settings =
        serde_json::from_value(spec.settings.clone()).map_err(|e| format!("settings: {e}"))?;
    let root = env_root(None, spec.root.as_deref())
        .ok_or("no environment root: set `root:` in the machine recipe")?;
    let available = flow_mlip::available_environments(&root);
    let model = match flow_mlip::parse_model_string(&settings.model, &available) {
        Ok(m) => m,
        Err(e) => return Ok(mlip_failure(e, started)),
    };
    let (env_dir, _) = match flow_mlip::locate_built_environment(&root, &model.environment) {
        Ok(found) => found,
        Err(e) => return Ok(mlip_failure(e, started)),
    };
    let python = env_dir.join("bin/python");
    let environment_file = env_dir.join("flow_environment.py");
    let device = flow_mlip::md_benchmark::resolve_device(&settings.device, spec.gpus > 0);
    let inherited = std::env::var("PATH").ok();
    let env = flow_mlip::task_environment(&root, &env_dir, inherited.as_deref());
    let run = flow_mlip::BenchmarkRun {
        python: &python,
        environment_file: &environment_file,
        model: &model.model,
        device: &device,
        settings: &settings,
        work_dir: &spec.work_dir,
        env: &env,
    };
    match flow_mlip::run_md_benchmark(&run) {
        Ok(b) => {
            let (action, message) = match &b.decision {
                flow_mlip::GateDecision::Continue => ("continue", String::new()),
                flow_mlip::GateDecision::Warn(m) => ("warn", m.clone()),
                flow_mlip::GateDecision::Stop(m) => ("stop", m.clone()),
            };
            eprintln!("md-benchmark: {}", b.summary());
            Ok(TypedResult {
                outcome: outcome(None, None, started),
                details: serde_json::json!({
                    "benchmark": {
                        "summary": b.summary(),
                        "verdict": b.verdict.to_string(),
                        "overhead_s": b.overhead_s,
                        "overhead_percent": b.overhead_percent,
                        "result": b.result,
                    },
                    "gate": {"action": action, "message": message},
                    "step_info": {"benchmark": b.summary()},
                }),
                final_failure: false,
            })
        }
        Err(e) => Ok(mlip_failure(e, started)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
