//! The result document: what an attempt leaves at its `result_path`, read the same way by
//! every backend (the local executor's recovery, Slurm after an element left the queue,
//! `flow task run-manifest` in a pod) and by the pod's termination message
//! ([`crate::kubernetes::termination`] wraps the same outcome). When present it carries the
//! real outcome of the attempt, better than anything a scheduler can say.
//!
//! The one rule:
//!
//! - A result document is one JSON object followed by a newline, written whole: by a
//!   temporary file renamed over the path ([`write_result`], [`add_usage_to_result`],
//!   `flow task exec`), or in one write by the task's own shell
//!   (`{"task_id":..,"attempt":N,"exit_code":N}\n` appended by its EXIT trap). The local
//!   executor's result journals hold such documents, one per line
//!   ([`crate::local::read_result_journals`]).
//! - Its outcome is the object itself or, when it has one, its `outcome` member; other keys
//!   (`task_id`, `attempt`, `details`, ...) are ignored. An outcome with an `error_class`
//!   key (`null` on success) is a full [`AttemptOutcome`]. One without it is an exit status
//!   (`{"exit_code": N}`, perhaps with `started_at`, `ended_at`, `usage`): the status
//!   decides, 0 succeeded and anything else `nonzero-exit` (serde alone would read a
//!   missing class as a success). Anything else is not a result.
//! - A file that is absent, or does not end in a newline yet (a shell interrupted while it
//!   wrote), is not there yet: [`read_result`] gives `None`. A complete file that is not a
//!   result is an error naming the path.

use crate::launch::{AttemptOutcome, ResourceUsage};
use flow_dsl::error_class::ErrorClass;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// The outcome a result document (already parsed as JSON) carries; see the module
/// documentation for the rule. Errors say what the document lacks.
pub fn outcome_of(doc: &serde_json::Value) -> Result<AttemptOutcome, String> {
    let outcome = doc.get("outcome").unwrap_or(doc);
    if !outcome.is_object() {
        return Err("a result is a JSON object".into());
    }
    if outcome.get("error_class").is_some() {
        return serde_json::from_value::<AttemptOutcome>(outcome.clone())
            .map_err(|e| format!("unreadable result: {e}"));
    }
    let code = outcome
        .get("exit_code")
        .and_then(serde_json::Value::as_i64)
        .ok_or("a result has an `error_class` or an `exit_code`")? as i32;
    Ok(AttemptOutcome {
        exit_code: Some(code),
        signal: None,
        error_class: (code != 0).then_some(ErrorClass::NonzeroExit),
        message: (code != 0).then(|| format!("exit status {code}")),
        started_at: outcome.get("started_at").and_then(|t| t.as_f64()),
        ended_at: outcome.get("ended_at").and_then(|t| t.as_f64()),
        usage: outcome
            .get("usage")
            .and_then(|u| serde_json::from_value(u.clone()).ok()),
    })
}

/// Parse a result document's text (its final newline is not required here).
pub fn parse_result(text: &str) -> Result<AttemptOutcome, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("unreadable result file: {e}"))?;
    outcome_of(&doc)
}

/// Read the result at `path`: `None` when there is none yet (absent, or not ended by its
/// newline), `Some(Err)` when it is complete but cannot be read or is not a result (the
/// message names the path).
pub fn read_result(path: &Path) -> Option<Result<AttemptOutcome, String>> {
    match fs::read_to_string(path) {
        Ok(text) if !text.ends_with('\n') => None,
        Ok(text) => Some(parse_result(&text).map_err(|e| format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(format!("{}: {e}", path.display()))),
    }
}

/// Write an outcome as a result document to `path` (temporary file, then rename).
pub fn write_result(path: &Path, outcome: &AttemptOutcome) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(
        serde_json::to_string(outcome)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// Add `usage` to a result document that lacks it (the exit status a task's shell wrote, or
/// a typed step's own result), keeping every other field; atomic like [`write_result`].
pub fn add_usage_to_result(path: &Path, usage: &ResourceUsage) -> std::io::Result<()> {
    let text = fs::read_to_string(path)?;
    let mut doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let Some(map) = doc.as_object_mut() else {
        return Ok(());
    };
    if map.get("usage").is_some_and(|u| !u.is_null()) {
        return Ok(());
    }
    map.insert(
        "usage".into(),
        serde_json::to_value(usage).unwrap_or_default(),
    );
    let tmp = path.with_extension("json.usage.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(doc.to_string().as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    fs::rename(&tmp, path)
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

    #[test]
    fn a_document_without_class_or_status_is_not_a_success() {
        assert!(parse_result(r#"{"task_id": "t"}"#).is_err());
        assert!(parse_result(r#"{"outcome": {"exit_code": 4}}"#)
            .is_ok_and(|o| o.error_class == Some(ErrorClass::NonzeroExit)));
        assert!(parse_result("[1]").is_err());
    }

    #[test]
    fn a_file_is_a_result_once_its_newline_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        fs::write(&path, "{\"exit_code\":").unwrap();
        assert!(
            read_result(&path).is_none(),
            "half a document is not there yet"
        );
        fs::write(&path, "{\"exit_code\":0}").unwrap();
        assert!(read_result(&path).is_none());
        fs::write(&path, "{\"exit_code\":0}\n").unwrap();
        assert!(read_result(&path).unwrap().unwrap().succeeded());
        fs::write(&path, "garbage\n").unwrap();
        let e = read_result(&path).unwrap().unwrap_err();
        assert!(e.contains("r.json"), "{e}");
    }
}
