//! `build-env`: build a uv environment from a PEP 723 file under the environment root
//! (`flow_mlip`). Runs on the driver's machine unless `run_on: compute`; its product is the
//! environment directory, which a rebuild from the same file does not change.

use super::{typed_outcome, RecordedCheck, StepBehaviour, TypedResult};
use crate::compile::Plan;
use crate::task_spec::TaskSpec;
use flow_dsl::model::Step;

pub struct BuildEnv;

impl StepBehaviour for BuildEnv {
    fn run_typed(&self, spec: &TaskSpec, started: f64) -> Option<Result<TypedResult, String>> {
        Some(run(spec, started))
    }

    fn product(
        &self,
        details: Option<&serde_json::Value>,
        _task_id: &str,
        _attempt: u32,
    ) -> Option<String> {
        details
            .and_then(|d| d.get("env_dir"))
            .map(|e| format!("env:{}", e.as_str().unwrap_or_default()))
    }

    fn rerun_changes_product(&self) -> bool {
        false
    }

    /// The environment it built must still be there.
    fn check_recorded(
        &self,
        _plan: &Plan,
        _step_index: usize,
        _index: u64,
        details: Option<&serde_json::Value>,
        _verify: bool,
    ) -> Option<RecordedCheck> {
        let env_dir = details
            .and_then(|d| d.get("env_dir"))
            .and_then(|e| e.as_str());
        Some(match env_dir {
            Some(dir) if !std::path::Path::new(dir).is_dir() => {
                RecordedCheck::Missing(format!("the environment it built ({dir}) is gone"))
            }
            _ => RecordedCheck::Kept,
        })
    }

    fn runs_on_driver(&self, step: &Step) -> bool {
        step.settings.get("run_on").and_then(|v| v.as_str()) != Some("compute")
    }
}

/// The environment root of a task: the step's `root:` or the machine's, `~` expanded.
pub fn env_root(
    step_root: Option<&std::path::Path>,
    machine_root: Option<&str>,
) -> Option<flow_mlip::EnvRoot> {
    let machine = machine_root.map(|r| flow_dsl::load::expand_home(r, std::path::Path::new(".")));
    flow_mlip::EnvRoot::resolve(step_root, machine.as_deref())
}

/// A failure of the environment crate as a typed result.
pub fn mlip_failure(e: flow_mlip::MlipError, started: f64) -> TypedResult {
    TypedResult {
        outcome: typed_outcome(Some(e.class()), Some(e.to_string()), started),
        details: serde_json::Value::Null,
        final_failure: false,
    }
}

fn run(spec: &TaskSpec, started: f64) -> Result<TypedResult, String> {
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
            outcome: typed_outcome(None, None, started),
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
