//! The result file an array element leaves at its `result_path` (written atomically by
//! `flow task run-manifest`): when present it carries the real outcome of the attempt,
//! better than anything Slurm can say.
//!
//! Format: a JSON object with the fields of [`AttemptOutcome`] (`exit_code`, `signal`,
//! `error_class`, `message`, `started_at`, `ended_at`), either at the top level or under an
//! `outcome` key; other keys (`task_id`, `attempt`, ...) are ignored.

use crate::launch::AttemptOutcome;
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
#[serde(untagged)]
enum ResultDocument {
    Wrapped { outcome: AttemptOutcome },
    Flat(AttemptOutcome),
}

/// Parse a result document.
pub fn parse_result(text: &str) -> Result<AttemptOutcome, String> {
    // A task's shell writes only its exit status (`{"exit_code": 3}`): without an
    // `error_class` the status decides (serde alone would read it as a success).
    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) {
        if doc.get("outcome").is_none() && doc.get("error_class").is_none() {
            if let Some(o) = crate::task_runner::outcome_from_document(&doc) {
                return Ok(o);
            }
        }
    }
    match serde_json::from_str::<ResultDocument>(text) {
        Ok(ResultDocument::Wrapped { outcome }) | Ok(ResultDocument::Flat(outcome)) => Ok(outcome),
        Err(e) => Err(format!("unreadable result file: {e}")),
    }
}

/// Read the result at `path`: `None` when there is none yet, `Some(Err)` when it exists but
/// cannot be read or parsed (the message names the path).
pub fn read_result(path: &Path) -> Option<Result<AttemptOutcome, String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(parse_result(&text).map_err(|e| format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow_dsl::error_class::ErrorClass;

    #[test]
    fn flat_and_wrapped_results() {
        let flat = r#"{"exit_code": 3, "signal": null, "error_class": "nonzero-exit", "message": "exit 3", "started_at": 1.0, "ended_at": 2.0, "task_id": "t"}"#;
        let outcome = parse_result(flat).unwrap();
        assert_eq!(outcome.exit_code, Some(3));
        assert_eq!(outcome.error_class, Some(ErrorClass::NonzeroExit));
        let wrapped = r#"{"task_id": "t", "outcome": {"exit_code": 0, "signal": null, "error_class": null, "message": null, "started_at": null, "ended_at": null}}"#;
        assert!(parse_result(wrapped).unwrap().succeeded());
        assert!(parse_result("{").is_err());
        // What a task's shell writes: its exit status decides.
        let bare = parse_result("{\"exit_code\":3}\n").unwrap();
        assert_eq!(bare.error_class, Some(ErrorClass::NonzeroExit));
        assert!(parse_result("{\"exit_code\":0}\n").unwrap().succeeded());
        assert!(read_result(Path::new("/nonexistent/flow/result.json")).is_none());
    }
}
