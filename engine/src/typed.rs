//! Dispatch of typed steps (qe-scf, build-env, md-benchmark) to their crates.

use crate::task_exec::TypedResult;
use crate::task_spec::TaskSpec;

/// Run the typed work of a task. Errors are messages for a `launch-failed` outcome.
pub fn run(spec: &TaskSpec, _started: f64) -> Result<TypedResult, String> {
    Err(format!(
        "step kind `{}` cannot run in this build of flow",
        spec.kind
    ))
}
