//! What an ended attempt means, the same for every step kind: its own result document read
//! (typed kinds know better than an exit status why they failed), the kind's checks
//! (`step_kind`), its gate and its product, ready to feed `CampaignCore::ended`.

use crate::campaign_core::EndedAttempt;
use crate::compile::Plan;
use crate::layout::Layout;
use crate::step_kind::{self, Attempt};
use flow_dsl::error_class::ErrorClass;
use flow_executors::AttemptOutcome;

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
    let step = &plan.campaign.steps[step_index];
    let kind = step_kind::of(step.kind);
    let a = Attempt {
        plan,
        layout,
        step_index,
        index,
        task_id,
        attempt,
    };
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
    let doc_details: Option<serde_json::Value> = result_doc.and_then(|v| v.get("details").cloned());
    let gate = kind.gate(doc_details.as_ref(), outcome.succeeded());
    let doc_details_text = doc_details.as_ref().map(|d| d.to_string());
    let (outcome, details) = if outcome.succeeded() {
        kind.check_success(&a, outcome, doc_details_text)
    } else {
        (outcome, doc_details_text)
    };
    kind.after_attempt(&a);
    let product = if outcome.succeeded() {
        product_of(plan, step_index, task_id, attempt, details.as_deref())
    } else {
        None
    };
    EndedAttempt {
        cancelled_elsewhere: outcome.error_class == Some(ErrorClass::Cancelled),
        final_failure: final_failure && !outcome.succeeded(),
        outcome,
        details,
        gate,
        product,
    }
}

/// The product fingerprint of a successful attempt: what its consumers depend on. A
/// declared output's file fingerprint, or what the kind says (`StepBehaviour::product`).
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
    step_kind::of(step.kind).product(d.as_ref(), task_id, attempt)
}
