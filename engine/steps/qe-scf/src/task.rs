//! One qe-scf task as `flow task exec` runs it: load the structure, prepare, run the
//! policy, and write the outcome atomically into the task directory.
//!
//! Files written in `task_dir`: `attempt-NN/` (per attempt), and exactly one of
//! `result.json` ([`crate::results::ScfResult`]), `fatal.json` ([`FatalReport`]) or
//! `interrupted.json` ([`History`], to resume from in the next allocation).

use crate::error::QeError;
use crate::input::prepare_structure;
use crate::plan::{effective_policy, StructureRef};
use crate::policy::{AttemptRecord, FatalReport, History};
use crate::results::write_result_json;
use crate::run::{run_structure, RunOptions, StructureOutcome};
use crate::settings::Settings;
use crate::structure::{read_structures, Structure, StructureError};
use std::path::Path;

/// Reads the structure a [`StructureRef`] names (its file, its frame).
pub fn load_structure(r: &StructureRef) -> Result<Structure, QeError> {
    let mut frames = read_structures(&r.path)?;
    if r.frame >= frames.len() {
        return Err(QeError::Structure(StructureError::Ase {
            path: r.path.clone(),
            message: format!("frame {} requested, the file has {}", r.frame, frames.len()),
        }));
    }
    Ok(frames.swap_remove(r.frame))
}

/// Runs one structure's task end to end. `history` is what an earlier allocation left
/// (empty for a first run); `options.ranks` is the MPI rank count of `options.launcher`.
/// `on_attempt` sees every attempt as it finishes (persist it). The outcome is also
/// written to `task_dir` (see the module doc); previous outcome files are replaced.
pub fn run_task(
    settings: &Settings,
    base_dir: &Path,
    structure: &StructureRef,
    task_dir: &Path,
    history: History,
    options: &RunOptions,
    on_attempt: &mut dyn FnMut(&AttemptRecord),
) -> Result<StructureOutcome, QeError> {
    let policy = effective_policy(settings, base_dir)?;
    let s = load_structure(structure)?;
    let prep = prepare_structure(
        settings,
        &policy,
        s,
        &structure.name,
        base_dir,
        options.ranks,
        true,
    )?;
    std::fs::create_dir_all(task_dir).map_err(QeError::io("creating", task_dir))?;
    for stale in ["result.json", "fatal.json", "interrupted.json"] {
        let _ = std::fs::remove_file(task_dir.join(stale));
    }
    let outcome = run_structure(&prep, &policy, task_dir, history, options, on_attempt)?;
    match &outcome {
        StructureOutcome::Success(r) => write_result_json(r, &task_dir.join("result.json"))?,
        StructureOutcome::Fatal(report) => write_json(report, &task_dir.join("fatal.json"))?,
        StructureOutcome::Interrupted { history, .. } => {
            write_json(history, &task_dir.join("interrupted.json"))?
        }
    }
    Ok(outcome)
}

fn write_json<T: serde::Serialize>(value: &T, path: &Path) -> Result<(), QeError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| QeError::Io {
        action: "serialising",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n").map_err(QeError::io("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(QeError::io("renaming into place", path))
}

/// Reads a `fatal.json` written by [`run_task`].
pub fn read_fatal_report(path: &Path) -> Result<FatalReport, QeError> {
    let text = std::fs::read_to_string(path).map_err(QeError::io("reading", path))?;
    serde_json::from_str(&text).map_err(|e| QeError::Io {
        action: "parsing",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })
}

/// The engine gave up on a task whose last allocation ended mid-policy (its retries are
/// spent): its `interrupted.json` history becomes a `fatal.json` saying why, so the
/// results table and the user see a failure with every attempt, as for a policy's own
/// give-up. Returns whether one was written (not when there is no interrupted history or a
/// `fatal.json` already exists). The history stays: `flow retry` resumes it.
pub fn give_up_interrupted(
    task_dir: &Path,
    structure: &str,
    reason: &str,
) -> Result<bool, QeError> {
    let interrupted = task_dir.join("interrupted.json");
    let fatal = task_dir.join("fatal.json");
    if fatal.exists() || !interrupted.exists() {
        return Ok(false);
    }
    let text =
        std::fs::read_to_string(&interrupted).map_err(QeError::io("reading", &interrupted))?;
    let history: History = serde_json::from_str(&text).map_err(|e| QeError::Io {
        action: "parsing",
        path: interrupted.clone(),
        source: std::io::Error::other(e),
    })?;
    let report = FatalReport {
        structure: structure.to_string(),
        reason: reason.to_string(),
        attempts: history.attempts,
    };
    write_json(&report, &fatal)?;
    Ok(true)
}

#[cfg(test)]
mod give_up_tests {
    use super::*;

    #[test]
    fn an_interrupted_history_becomes_a_fatal_report_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!give_up_interrupted(dir.path(), "si", "why").unwrap());
        std::fs::write(
            dir.path().join("interrupted.json"),
            r#"{"initial": {}, "attempts": []}"#,
        )
        .unwrap();
        assert!(give_up_interrupted(dir.path(), "si", "out of time").unwrap());
        let report = read_fatal_report(&dir.path().join("fatal.json")).unwrap();
        assert_eq!(
            (report.structure.as_str(), report.reason.as_str()),
            ("si", "out of time")
        );
        assert!(!give_up_interrupted(dir.path(), "si", "again").unwrap());
        assert!(dir.path().join("interrupted.json").exists());
    }
}
