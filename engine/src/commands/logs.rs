//! `flow logs FILE TASK [--attempt N]`: an attempt's stdout and stderr, streamed, and the
//! backend's own logs of it (through `Executor::attempt_logs`).

use super::common::{load, open_state};
use super::{CommandResult, FlowError};
use crate::compile::compile;
use crate::layout::Layout;
use std::path::{Path, PathBuf};

/// Copy a log file to stdout without holding it in memory.
fn stream_file(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let _ = std::io::copy(&mut f, &mut lock);
    true
}

pub fn logs(
    file: &Path,
    task: &str,
    attempt: Option<u32>,
    state_dir: Option<PathBuf>,
) -> CommandResult {
    let campaign = load(file)?;
    let store = open_state(&campaign, state_dir.as_ref())?;
    let ids = store.find_tasks(task)?;
    let id = match ids.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(FlowError::msg(format!(
                "no task with id `{task}` in campaign {}",
                campaign.name
            )))
        }
        many => {
            return Err(FlowError::msg(format!(
                "`{task}` is ambiguous: {}",
                many.join(", ")
            )))
        }
    };
    let rows = store.load_tasks()?;
    let row = rows.get(&id).ok_or_else(|| {
        FlowError::msg(format!(
            "task {id} is in the state database without its row"
        ))
    })?;
    let attempts = store.attempts(&id)?;
    let n = attempt.unwrap_or(row.attempts.max(1));
    if let Some(asked) = attempt {
        if asked == 0 || (asked > row.attempts && !attempts.iter().any(|a| a.attempt == asked)) {
            return Err(FlowError::msg(format!(
                "task {id} has no attempt {asked}: it has {} (attempts count from 1)",
                match row.attempts {
                    0 => "none yet".to_string(),
                    1 => "attempt 1".to_string(),
                    n => format!("attempts 1 to {n}"),
                }
            )));
        }
    }
    let layout = Layout::new(&campaign.campaign_dir);
    let (out, err) = layout.log_files(&row.step, row.index, &id, n);
    println!(
        "task {id} (step {}), attempt {n} of {}",
        row.step, row.attempts
    );
    if let Some(a) = attempts.iter().find(|a| a.attempt == n) {
        println!(
            "executor {} job {} exit {} class {} {}",
            a.executor,
            a.job_id.clone().unwrap_or_default(),
            a.exit_code
                .map_or_else(|| "-".to_string(), |c| c.to_string()),
            a.error_class.clone().unwrap_or_else(|| "-".into()),
            a.message.clone().unwrap_or_default()
        );
        for line in recovery_lines(a.details.as_deref()) {
            println!("{line}");
        }
    }
    for (label, path) in [("stdout", out), ("stderr", err)] {
        println!("--- {label} ({}) ---", path.display());
        let mut rotated = path.as_os_str().to_os_string();
        rotated.push(".1");
        let rotated = PathBuf::from(rotated);
        if rotated.exists() {
            println!(
                "(the log was rotated: the part before is in {})",
                rotated.display()
            );
        }
        if !stream_file(&path) {
            println!("(none)");
        }
    }
    // The backend's own logs say what happened around the task (Kubernetes: a failed
    // start, a deadline, `flow task`'s messages in the pods), as long as it keeps them.
    if let Some((backend, job_id)) = attempts
        .iter()
        .find(|a| {
            a.attempt == n
                && flow_executors::Capabilities::of_name(&a.executor)
                    .is_some_and(|c| c.attempt_logs)
        })
        .and_then(|a| Some((a.executor.clone(), a.job_id.clone()?)))
    {
        let logs = compile(&campaign, None)
            .map_err(|d| anyhow::anyhow!("{d}"))
            .and_then(|plan| {
                if plan.executor.as_str() != backend {
                    return Ok(flow_executors::AttemptLogs::default());
                }
                let ex = crate::backend::executor_for(&plan)?;
                Ok(ex.attempt_logs(&job_id)?)
            });
        match logs {
            Ok(found) => {
                if let Some(m) = &found.none_left {
                    println!("--- {} log: {m} ---", found.source_kind);
                }
                for (source, log) in found.logs {
                    println!("--- {} log ({source}) ---", found.source_kind);
                    print!("{log}");
                }
            }
            Err(e) => println!("--- {backend} log: unavailable ({e:#}) ---"),
        }
    }
    Ok(0)
}

/// A qe-scf attempt's runs of pw.x, one line each: what failed, which recovery handler
/// chose the next parameters, and what it changed (from the attempt's details).
fn recovery_lines(details: Option<&str>) -> Vec<String> {
    let Some(doc) = details.and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok()) else {
        return Vec::new();
    };
    let runs = doc
        .get("attempts")
        .or_else(|| doc.pointer("/fatal/attempts"))
        .and_then(|a| a.as_array());
    let Some(runs) = runs else {
        return Vec::new();
    };
    let mut previous: Option<&serde_json::Map<String, serde_json::Value>> = None;
    let mut out = Vec::new();
    for run in runs {
        let params = run.get("parameters").and_then(|p| p.as_object());
        let changed: Vec<String> = match (previous, params) {
            (Some(before), Some(now)) => now
                .iter()
                .filter(|(k, v)| before.get(*k) != Some(*v))
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            _ => Vec::new(),
        };
        let handler = run
            .get("handler")
            .and_then(|h| h.as_str())
            .map_or(String::new(), |h| format!(" after `{h}`"));
        let result = run
            .get("error_class")
            .and_then(|c| c.as_str())
            .unwrap_or("succeeded");
        let message = run
            .get("message")
            .and_then(|m| m.as_str())
            .map_or(String::new(), |m| format!(": {m}"));
        out.push(format!(
            "  pw.x run {}{handler}{}: {result}{message}",
            run.get("attempt").and_then(|a| a.as_u64()).unwrap_or(0),
            if changed.is_empty() {
                String::new()
            } else {
                format!(" (changed {})", changed.join(", "))
            }
        ));
        previous = params;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn recovery_edits_are_listed_per_run() {
        let details = r#"{"attempts": [
            {"attempt": 0, "parameters": {"mixing_beta": 0.7}, "error_class": "scf-not-converged", "message": "no convergence in 100 steps"},
            {"attempt": 1, "handler": "scf-not-converged", "parameters": {"mixing_beta": 0.3}, "error_class": null}
        ]}"#;
        let lines = super::recovery_lines(Some(details));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("pw.x run 0: scf-not-converged: no convergence"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("after `scf-not-converged` (changed mixing_beta=0.3): succeeded"),
            "{lines:?}"
        );
        assert!(super::recovery_lines(Some("{}")).is_empty());
    }
}
