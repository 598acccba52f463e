//! `adaptive`: an evaluation of an ask/tell loop is the user's command; it counts when its
//! output holds a finite objective. The loop itself is driven by `adaptive_step`.

use super::{invalid, Attempt, StepBehaviour};
use crate::compile::Plan;
use crate::render::output_for;
use flow_executors::AttemptOutcome;

pub struct Adaptive;

impl StepBehaviour for Adaptive {
    fn check_success(
        &self,
        a: &Attempt,
        outcome: AttemptOutcome,
        details: Option<String>,
    ) -> (AttemptOutcome, Option<String>) {
        let Some(settings) = &a.step().adaptive else {
            return (outcome, details);
        };
        let task = a.task();
        let data = crate::render::template_data(a.plan, a.step_index, &task);
        match output_for(a.plan, a.step_index, &task, &data, a.attempt) {
            Ok(Some((out, _))) => {
                let path = a.plan.campaign.campaign_dir.join(&out);
                match flow_adaptive::read_objective(&path, &settings.objective_key) {
                    Ok(e) => {
                        let d = serde_json::json!({"output": out, "objective": e.loss, "diagnostics": e.diagnostics});
                        (outcome, Some(d.to_string()))
                    }
                    Err(e) => (invalid(&outcome, e), details),
                }
            }
            Ok(None) => (outcome, details),
            Err(e) => (invalid(&outcome, e), details),
        }
    }

    fn plan_details(&self, plan: &Plan, step_index: usize, _shown: Option<&str>) -> Option<String> {
        let settings = plan.campaign.steps[step_index].adaptive.as_ref()?;
        Some(crate::adaptive_step::plan_text(plan, step_index, settings))
    }
}
