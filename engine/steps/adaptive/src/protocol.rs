//! The JSON-lines protocol between flow and an algorithm (documented in `docs/adaptive.md`).
//!
//! flow writes one JSON object per line to the algorithm's stdin and reads exactly one JSON
//! object per line back from its stdout (anything else the algorithm prints goes to stderr).
//! Every reply has `"ok": true`, or `"ok": false` with an `"error"` message.
//!
//! | request | reply |
//! |---|---|
//! | `{"op":"hello","protocol":1,"space":{..},"direction":"minimize","options":{..}}` | `{"ok":true,"name":"..."}` |
//! | `{"op":"ask","n":8,"first_trial":16}` | `{"ok":true,"trials":[{"params":{..}}, ..]}` (at most `n`) |
//! | `{"op":"ask","n":8,"first_trial":16,"replay":[{..},..]}` | the same; the algorithm must take these as its proposals |
//! | `{"op":"tell","trials":[{"trial":16,"param_id":"..","params":{..},"state":"complete","loss":0.3,"losses":[..]}]}` | `{"ok":true}` |
//! | `{"op":"finished"}` | `{"ok":true,"finished":false}` |
//! | `{"op":"close"}` | none: the algorithm exits |
//!
//! A failed trial is told with `"state":"failed"`, no `loss`, and a `"reason"`.
//! On resume flow starts a fresh process and replays the history before anything new: the
//! same `hello`, then each committed ask with `replay` (the parameter sets flow committed
//! then) and each committed tell, in their original order. A seeded algorithm that
//! re-derives the same proposals ends in the very state of an uninterrupted run.

use crate::space::ParamSet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The protocol version flow speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Whether the objective is minimised or maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Minimize,
    Maximize,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }
    /// Whether loss `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }
}

/// How a trial ended, as told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    Complete,
    Failed,
}

impl TrialState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Complete => "complete",
            TrialState::Failed => "failed",
        }
    }
}

/// The result of one trial, as told to the algorithm and committed before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// 0-based position of the trial in ask order.
    pub trial: u64,
    pub param_id: String,
    pub params: ParamSet,
    pub state: TrialState,
    /// The aggregated objective (complete trials).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub loss: Option<f64>,
    /// Each replicate's objective, in replicate order (complete trials).
    #[serde(default)]
    pub losses: Vec<f64>,
    /// Why it failed (failed trials).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

pub fn hello(space: &Value, direction: Direction, options: &Value) -> Value {
    json!({"op": "hello", "protocol": PROTOCOL_VERSION, "space": space,
           "direction": direction.as_str(), "options": options})
}

pub fn ask(n: u64, first_trial: u64, replay: Option<&[ParamSet]>) -> Value {
    let mut v = json!({"op": "ask", "n": n, "first_trial": first_trial});
    if let Some(r) = replay {
        v["replay"] = Value::Array(r.iter().cloned().map(Value::Object).collect());
    }
    v
}

pub fn tell(results: &[TrialResult]) -> Value {
    json!({"op": "tell", "trials": results})
}

pub fn finished() -> Value {
    json!({"op": "finished"})
}

pub fn close() -> Value {
    json!({"op": "close"})
}

/// A reply's error, if it says `"ok": false` (or is not an object with `ok`).
pub fn reply_error(reply: &Value) -> Option<String> {
    match reply.get("ok").and_then(Value::as_bool) {
        Some(true) => None,
        Some(false) => Some(
            reply
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("the algorithm reported an error without a message")
                .to_string(),
        ),
        None => Some(format!("a reply without \"ok\": {reply}")),
    }
}

/// The parameter sets of an `ask` reply (unchecked: see [`crate::Space::canonicalize`]).
pub fn asked_params(reply: &Value, n: u64) -> Result<Vec<Value>, String> {
    if let Some(e) = reply_error(reply) {
        return Err(e);
    }
    let trials = reply
        .get("trials")
        .and_then(Value::as_array)
        .ok_or("the reply to ask has no \"trials\" list")?;
    if trials.len() as u64 > n {
        return Err(format!(
            "asked for {n} parameter sets, the algorithm returned {}",
            trials.len()
        ));
    }
    trials
        .iter()
        .map(|t| {
            t.get("params")
                .cloned()
                .ok_or_else(|| format!("a trial without \"params\": {t}"))
        })
        .collect()
}

/// The answer to `finished`.
pub fn is_finished(reply: &Value) -> Result<bool, String> {
    if let Some(e) = reply_error(reply) {
        return Err(e);
    }
    reply
        .get("finished")
        .and_then(Value::as_bool)
        .ok_or_else(|| format!("the reply to finished has no boolean \"finished\": {reply}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_each() {
        let r = TrialResult {
            trial: 3,
            param_id: "abc".into(),
            params: serde_json::from_str(r#"{"x":1.0}"#).unwrap(),
            state: TrialState::Failed,
            loss: None,
            losses: vec![],
            reason: Some("replicate 1: nonzero-exit".into()),
        };
        let text = tell(&[r]).to_string();
        assert!(!text.contains('\n'));
        assert_eq!(
            text,
            r#"{"op":"tell","trials":[{"trial":3,"param_id":"abc","params":{"x":1.0},"state":"failed","losses":[],"reason":"replicate 1: nonzero-exit"}]}"#
        );
    }

    #[test]
    fn replies_are_checked() {
        assert_eq!(
            asked_params(&json!({"ok": true, "trials": [{"params": {"x": 1}}]}), 2).unwrap(),
            vec![json!({"x": 1})]
        );
        assert!(asked_params(&json!({"ok": true, "trials": [{}, {}, {}]}), 2).is_err());
        assert_eq!(
            asked_params(&json!({"ok": false, "error": "boom"}), 2).unwrap_err(),
            "boom"
        );
        assert!(is_finished(&json!({"ok": true, "finished": true})).unwrap());
        assert!(is_finished(&json!({"ok": true})).is_err());
    }
}
