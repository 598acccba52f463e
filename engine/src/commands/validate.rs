//! `flow validate FILE [--output json]`.

use super::common::{print_json, warn_about_secrets};
use super::CommandResult;
use crate::cli::OutputFormat;
use crate::compile::compile_for_checks;
use flow_dsl::load::load_campaign;
use std::path::Path;

/// A diagnostic as JSON (`flow validate --output json`).
pub fn diagnostic_json(d: &flow_dsl::diagnostic::Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "file": d.span.as_ref().map(|s| s.file.name.clone()),
        "line": d.span.as_ref().map(|s| s.line),
        "column": d.span.as_ref().map(|s| s.col),
        "field": d.field,
        "message": d.message,
        "expected": d.expected,
        "help": d.help,
    })
}

pub fn validate(file: &Path, output: OutputFormat) -> CommandResult {
    let result = load_campaign(file).and_then(|campaign| {
        warn_about_secrets(&campaign);
        let plan = compile_for_checks(&campaign)?;
        Ok((
            plan.order.len(),
            plan.total_tasks(),
            campaign.machine.name.clone(),
        ))
    });
    match (output, result) {
        (OutputFormat::Text, Ok((steps, tasks, machine))) => {
            println!(
                "{}: ok ({steps} steps, {tasks} tasks, machine {machine})",
                file.display(),
            );
            Ok(0)
        }
        (OutputFormat::Text, Err(d)) => Err(d.into()),
        // The diagnostics are the document: it says what is wrong, and the exit code.
        (OutputFormat::Json, result) => {
            let ok = result.is_ok();
            let doc = match result {
                Ok((steps, tasks, machine)) => serde_json::json!({
                    "file": file.display().to_string(),
                    "ok": true,
                    "steps": steps,
                    "tasks": tasks,
                    "machine": machine,
                    "diagnostics": [],
                }),
                Err(d) => serde_json::json!({
                    "file": file.display().to_string(),
                    "ok": false,
                    "steps": null,
                    "tasks": null,
                    "machine": null,
                    "diagnostics": d.0.iter().map(diagnostic_json).collect::<Vec<_>>(),
                }),
            };
            print_json(&doc);
            Ok(i32::from(!ok))
        }
    }
}
