//! `mock-generation`: the user's command writes an HDF5 file to a temporary name; after a
//! success flow validates it through the HDF5 library and publishes it by rename
//! (`flow_mock_generation`). A recorded output whose fingerprint changed is re-validated.

use super::{invalid, Attempt, StepBehaviour};
use crate::compile::{Plan, PlannedTask};
use crate::render::output_for;
use flow_dsl::model::Step;
use flow_executors::AttemptOutcome;

pub struct MockGeneration;

impl StepBehaviour for MockGeneration {
    fn check_success(
        &self,
        a: &Attempt,
        outcome: AttemptOutcome,
        details: Option<String>,
    ) -> (AttemptOutcome, Option<String>) {
        let (plan, step) = (a.plan, a.step());
        let campaign = plan.campaign;
        let task = a.task();
        let data = crate::render::template_data(plan, a.step_index, &task);
        let (final_rel, tmp_rel) = match output_for(plan, a.step_index, &task, &data, a.attempt) {
            Ok(Some(paths)) => paths,
            Ok(None) => return (outcome, details),
            Err(e) => return (invalid(&outcome, e), details),
        };
        let settings = match settings(step, &data) {
            Ok(s) => s,
            Err(e) => return (invalid(&outcome, e), details),
        };
        let (final_path, tmp_path) = match (
            crate::confined_path::output_path(campaign, step, &final_rel),
            crate::confined_path::output_path(campaign, step, &tmp_rel),
        ) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return (invalid(&outcome, e), details),
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
                let _ = flow_mock_generation::remove_leftover_temporaries(&final_path, a.task_id);
                let fingerprint = flow_mock_generation::FileFingerprint::of(&final_path).ok();
                let rows: Vec<serde_json::Value> = report
                    .datasets
                    .iter()
                    .map(|d| serde_json::json!({"path": d.path, "shape": d.shape}))
                    .collect();
                let d = serde_json::json!({"output": final_rel, "fingerprint": fingerprint, "datasets": rows});
                (outcome, Some(d.to_string()))
            }
            Err(e) => (invalid(&outcome, e), details),
        }
    }

    fn validates_output_contents(&self) -> bool {
        true
    }

    fn revalidate_output(
        &self,
        plan: &Plan,
        step_index: usize,
        task: &PlannedTask,
        path: &std::path::Path,
    ) -> Result<(), String> {
        let data = crate::render::template_data(plan, step_index, task);
        let settings = settings(&plan.campaign.steps[step_index], &data)?;
        flow_mock_generation::validate_output(path, &settings.validate)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// A mock-generation step's settings for one task: string values of `validate:` are
/// templates (`attributes: {realization: "{{realization}}"}`), rendered with the task's
/// variables.
pub fn settings(
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
