//! `command`: the user's shell command. A declared `output:` must exist after a success;
//! its file fingerprint is what consumers depend on.

use super::{invalid, Attempt, StepBehaviour};
use flow_executors::AttemptOutcome;

pub struct Command;

impl StepBehaviour for Command {
    fn check_success(
        &self,
        a: &Attempt,
        outcome: AttemptOutcome,
        details: Option<String>,
    ) -> (AttemptOutcome, Option<String>) {
        if a.step().output.is_none() {
            return (outcome, details);
        }
        let task = a.task();
        let data = crate::render::template_data(a.plan, a.step_index, &task);
        if let Ok(Some((out, _))) =
            crate::render::output_for(a.plan, a.step_index, &task, &data, a.attempt)
        {
            let path = a.plan.campaign.campaign_dir.join(&out);
            if !path.exists() {
                let message = format!(
                    "the command exited 0 but its output {} does not exist",
                    path.display()
                );
                return (invalid(&outcome, message), details);
            }
            if let Some(why) =
                crate::confined_path::leaves_campaign(&a.plan.campaign.campaign_dir, &path)
            {
                let message = format!("the command exited 0 but its output {out} {why}");
                return (invalid(&outcome, message), details);
            }
            let fingerprint = flow_mock_generation::FileFingerprint::of(&path).ok();
            let details =
                serde_json::json!({"output": out, "fingerprint": fingerprint}).to_string();
            return (outcome, Some(details));
        }
        (outcome, details)
    }
}
