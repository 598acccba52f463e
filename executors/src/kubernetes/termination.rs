//! The result a pod hands back in its container's termination message.
//!
//! `flow task run-manifest` writes it to `$FLOW_TERMINATION_MESSAGE` (the container's
//! `terminationMessagePath`); the kubelet copies it into the pod status, where the driver
//! reads it through the API without touching the campaign volume. The kubelet keeps at most
//! 4096 bytes, so [`encode`] shortens the message text until the document fits. The outcome
//! it carries is a result document ([`crate::result_document`]) under `outcome`.

use crate::launch::AttemptOutcome;
use serde::{Deserialize, Serialize};

/// Most bytes the kubelet keeps of a termination message.
pub const MAX_TERMINATION_MESSAGE_BYTES: usize = 4096;

/// Schema tag, so a message written by something else is never mistaken for a result.
pub const SCHEMA: &str = "flow-pod-result/1";

/// What one pod reports: which attempt it ran and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodResult {
    pub schema: String,
    pub task_id: String,
    pub attempt: u32,
    pub outcome: AttemptOutcome,
}

/// The compact JSON of a result, at most [`MAX_TERMINATION_MESSAGE_BYTES`] bytes: the
/// outcome's message is cut (at a character boundary, marked with `…`) when needed. `None`
/// only when even an empty message does not fit (a task id of kilobytes).
pub fn encode(task_id: &str, attempt: u32, outcome: &AttemptOutcome) -> Option<String> {
    let mut result = PodResult {
        schema: SCHEMA.to_string(),
        task_id: task_id.to_string(),
        attempt,
        outcome: outcome.clone(),
    };
    let text = serde_json::to_string(&result).ok()?;
    if text.len() <= MAX_TERMINATION_MESSAGE_BYTES {
        return Some(text);
    }
    let message = result.outcome.message.take().unwrap_or_default();
    let bare = serde_json::to_string(&result).ok()?;
    // Room for the message: what is left, less the quotes, the key, and escaping headroom.
    let room = MAX_TERMINATION_MESSAGE_BYTES.checked_sub(bare.len() + 32)?;
    let mut cut = String::new();
    let mut used = 0;
    for c in message.chars() {
        // What the character costs inside a JSON string.
        let cost = match c {
            '"' | '\\' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        };
        if used + cost + '…'.len_utf8() > room {
            cut.push('…');
            break;
        }
        used += cost;
        cut.push(c);
    }
    result.outcome.message = Some(cut);
    let text = serde_json::to_string(&result).ok()?;
    (text.len() <= MAX_TERMINATION_MESSAGE_BYTES).then_some(text)
}

/// Read a termination message back; `None` when it is not a flow result (empty, a log tail
/// from `FallbackToLogsOnError`, another schema).
///
/// The outcome inside is read by the one rule of [`crate::result_document`].
pub fn decode(message: &str) -> Option<PodResult> {
    let doc: serde_json::Value = serde_json::from_str(message.trim()).ok()?;
    if doc.get("schema").and_then(|s| s.as_str()) != Some(SCHEMA) {
        return None;
    }
    Some(PodResult {
        schema: SCHEMA.to_string(),
        task_id: doc.get("task_id")?.as_str()?.to_string(),
        attempt: u32::try_from(doc.get("attempt")?.as_u64()?).ok()?,
        outcome: crate::result_document::outcome_of(doc.get("outcome")?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow_dsl::error_class::ErrorClass;

    fn outcome(message: &str) -> AttemptOutcome {
        AttemptOutcome {
            exit_code: Some(3),
            signal: None,
            error_class: Some(ErrorClass::NonzeroExit),
            message: Some(message.to_string()),
            started_at: Some(1.5),
            ended_at: Some(2.5),
            usage: None,
        }
    }

    #[test]
    fn a_small_result_round_trips_unchanged() {
        let text = encode("mocks/r0001", 2, &outcome("exit status 3")).unwrap();
        let back = decode(&text).unwrap();
        assert_eq!(back.task_id, "mocks/r0001");
        assert_eq!(back.attempt, 2);
        assert_eq!(back.outcome, outcome("exit status 3"));
    }

    #[test]
    fn a_long_message_is_cut_to_fit_the_kubelet_limit() {
        for filler in ["x", "é", "\u{1}", "\"", "日本"] {
            let long = filler.repeat(10_000);
            let text = encode("t", 1, &outcome(&long)).unwrap();
            assert!(
                text.len() <= MAX_TERMINATION_MESSAGE_BYTES,
                "{filler}: {}",
                text.len()
            );
            let back = decode(&text).unwrap();
            let message = back.outcome.message.unwrap();
            assert!(message.ends_with('…'), "{filler}");
            // Most of the room is used, whatever the escaping costs.
            assert!(text.len() > 3500, "{filler}: only {} bytes", text.len());
            assert!(message.chars().count() > 500, "{filler}");
            assert_eq!(back.outcome.exit_code, Some(3));
        }
    }

    #[test]
    fn log_tails_and_other_documents_are_not_results() {
        assert!(decode("").is_none());
        assert!(decode("Traceback (most recent call last):").is_none());
        assert!(decode(r#"{"schema":"other/1","task_id":"t","attempt":1,"outcome":{}}"#).is_none());
    }
}
