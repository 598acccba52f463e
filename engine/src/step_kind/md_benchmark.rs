//! `md-benchmark`: direct vs. i-PI MD through `flow_mlip`, and the PASS/MARGINAL/FAIL gate.
//! The gate is written with the attempt's details as a [`GateRecord`] and read back as one
//! (the driver, `flow status`): one type, one place. A benchmark produces nothing its
//! dependents consume; it decides whether they run.

use super::build_env::{env_root, mlip_failure};
use super::{typed_outcome, StepBehaviour, TypedResult};
use crate::campaign_core::GateEffect;
use crate::task_spec::TaskSpec;
use serde::{Deserialize, Serialize};

pub struct MdBenchmark;

/// What the gate of a benchmark decided, as stored in the attempt's details (`"gate"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    pub action: GateAction,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateAction {
    Continue,
    Warn,
    Stop,
}

impl GateRecord {
    pub fn of_decision(decision: &flow_mlip::GateDecision) -> GateRecord {
        let (action, message) = match decision {
            flow_mlip::GateDecision::Continue => (GateAction::Continue, String::new()),
            flow_mlip::GateDecision::Warn(m) => (GateAction::Warn, m.clone()),
            flow_mlip::GateDecision::Stop(m) => (GateAction::Stop, m.clone()),
        };
        GateRecord { action, message }
    }

    /// The gate recorded in an attempt's details, if any.
    pub fn of_details(details: Option<&serde_json::Value>) -> Option<GateRecord> {
        serde_json::from_value(details?.get("gate")?.clone()).ok()
    }

    /// The message of a gate that said stop.
    pub fn stop_message(details: Option<&serde_json::Value>) -> Option<String> {
        GateRecord::of_details(details)
            .filter(|g| g.action == GateAction::Stop)
            .map(|g| g.message)
    }
}

impl StepBehaviour for MdBenchmark {
    fn run_typed(&self, spec: &TaskSpec, started: f64) -> Option<Result<TypedResult, String>> {
        Some(run(spec, started))
    }

    /// A benchmark that decided (it succeeded) and neither warns nor stops passes.
    fn gate(&self, details: Option<&serde_json::Value>, succeeded: bool) -> GateEffect {
        match GateRecord::of_details(details) {
            Some(GateRecord {
                action: GateAction::Stop,
                message,
            }) => GateEffect::Stop(message),
            Some(GateRecord {
                action: GateAction::Warn,
                message,
            }) => GateEffect::Warn(message),
            _ if succeeded => GateEffect::Continue,
            _ => GateEffect::None,
        }
    }

    fn product(
        &self,
        _details: Option<&serde_json::Value>,
        _task_id: &str,
        _attempt: u32,
    ) -> Option<String> {
        None
    }

    fn rerun_changes_product(&self) -> bool {
        false
    }
}

fn run(spec: &TaskSpec, started: f64) -> Result<TypedResult, String> {
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
            eprintln!("md-benchmark: {}", b.summary());
            Ok(TypedResult {
                outcome: typed_outcome(None, None, started),
                details: serde_json::json!({
                    "benchmark": {
                        "summary": b.summary(),
                        "verdict": b.verdict.to_string(),
                        "overhead_s": b.overhead_s,
                        "overhead_percent": b.overhead_percent,
                        "result": b.result,
                    },
                    "gate": GateRecord::of_decision(&b.decision),
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
    fn a_gate_reads_back_as_it_was_written() {
        for decision in [
            flow_mlip::GateDecision::Continue,
            flow_mlip::GateDecision::Warn("marginal".into()),
            flow_mlip::GateDecision::Stop("fail".into()),
        ] {
            let record = GateRecord::of_decision(&decision);
            let details = serde_json::json!({ "gate": record });
            assert_eq!(GateRecord::of_details(Some(&details)), Some(record));
        }
        // what earlier versions stored
        let old = serde_json::json!({"gate": {"action": "stop", "message": "FAIL: 40 %"}});
        assert_eq!(
            GateRecord::stop_message(Some(&old)).as_deref(),
            Some("FAIL: 40 %")
        );
        let effect = MdBenchmark.gate(Some(&old), true);
        assert_eq!(effect, GateEffect::Stop("FAIL: 40 %".into()));
        let pass = serde_json::json!({"gate": {"action": "continue", "message": ""}});
        assert_eq!(MdBenchmark.gate(Some(&pass), true), GateEffect::Continue);
        assert_eq!(MdBenchmark.gate(None, false), GateEffect::None);
    }
}
