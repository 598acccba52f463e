//! `flow plan` output: text for people, JSON (stable fields) for programs, DOT and Mermaid
//! for pictures of the DAG, and `--explain` for where every setting came from.

use crate::compile::Plan;
use flow_dsl::model::{ExecutorKind, Step, StepKind};
use flow_dsl::quantity::human_duration;
use serde_json::json;
use std::collections::HashMap;
use std::fmt::Write;

/// Per-step counts of tasks already finished (from the state database, when there is one).
/// Per step (by name): what is done, what will run and why (`freshness::assess`); empty
/// when the campaign has no state yet.
pub type DoneCounts = HashMap<String, crate::freshness::StepFreshness>;

/// The work of one step as the scheduler will see it.
pub struct StepSummary {
    pub submissions: u64,
    pub throttle: Option<u32>,
    pub hours_per_task: Option<f64>,
    pub core_hours: Option<f64>,
    pub gpu_hours: Option<f64>,
}

pub fn summarize(plan: &Plan, index: usize) -> StepSummary {
    let (step, planned) = plan.step(index);
    // adaptive: the budget bounds what the loop can ask (one submission per ask).
    let (most_tasks, batches) = match &step.adaptive {
        Some(a) => (a.trials * a.replicates as u64, a.batches()),
        None => (planned.task_count, planned.batches()),
    };
    let submissions = match plan.executor {
        ExecutorKind::Local => most_tasks,
        _ if crate::step_kind::runs_on_driver(step) => 0,
        _ => batches,
    };
    let hours = step
        .resources
        .time
        .or(step.execution.timeout)
        .map(|d| d.as_secs_f64() / 3600.0);
    let n = most_tasks as f64;
    StepSummary {
        submissions,
        throttle: step.execution.max_running,
        hours_per_task: hours,
        core_hours: hours.map(|h| h * n * step.resources.total_cpus() as f64),
        gpu_hours: hours.map(|h| h * n * step.resources.total_gpus() as f64),
    }
}

fn array_text(step: &Step) -> String {
    match &step.array {
        Some(a) => {
            let parts: Vec<String> = a
                .params
                .iter()
                .map(|(n, v)| format!("{n}[{}]", v.len()))
                .collect();
            let joiner = match a.combine {
                flow_dsl::array::Combine::Product => " × ",
                flow_dsl::array::Combine::Zip => " zip ",
            };
            let mut s = parts.join(joiner);
            if a.selection.is_some() || !a.extra.is_empty() {
                s.push_str(&format!(" (after include/exclude: {})", a.len()));
            }
            s
        }
        None => String::new(),
    }
}

/// The human plan.
pub fn text(plan: &Plan, done: &DoneCounts, explain: bool) -> String {
    let c = plan.campaign;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "campaign {} {} on {} ({} executor)",
        c.name,
        c.version,
        c.machine.name,
        plan.executor.as_str()
    );
    let _ = writeln!(out, "directory {}", c.campaign_dir.display());
    if explain {
        // The settings of the backend this plan runs on, built-in defaults included.
        let prefix = format!("machine.{}.", plan.executor.as_str());
        let rows: Vec<_> = c
            .machine
            .provenance
            .iter()
            .filter(|p| p.path.starts_with(&prefix))
            .collect();
        if !rows.is_empty() {
            let _ = writeln!(out, "machine settings ({}):", plan.executor.as_str());
            for p in rows {
                let _ = writeln!(out, "   {}", explained(p));
            }
        }
    }
    let evaluations: u64 = c
        .steps
        .iter()
        .filter_map(|s| s.adaptive.as_ref())
        .map(|a| a.trials * a.replicates as u64)
        .sum();
    let _ = writeln!(
        out,
        "{} steps, {} tasks{}",
        plan.order.len(),
        plan.total_tasks(),
        if evaluations > 0 {
            format!(" (adaptive steps: up to {evaluations} evaluations in all, asked as their loops run)")
        } else {
            String::new()
        }
    );
    let mut total_core = 0.0;
    let mut total_gpu = 0.0;
    let mut unknown_time = Vec::new();
    let mut total_submissions = 0;
    for (pos, &i) in plan.order.iter().enumerate() {
        let (step, planned) = plan.step(i);
        let s = summarize(plan, i);
        total_submissions += s.submissions;
        let _ = writeln!(out);
        let _ = writeln!(out, "{}. {} [{}]", pos + 1, step.name, step.kind.as_str());
        if let Some(d) = &step.description {
            let _ = writeln!(out, "   {d}");
        }
        if !step.needs.is_empty() {
            let needs: Vec<&str> = step.needs.iter().map(|(n, _)| n.as_str()).collect();
            let _ = writeln!(
                out,
                "   needs: {} ({})",
                needs.join(", "),
                match step.condition {
                    flow_dsl::model::Condition::AllSucceeded => "all succeeded",
                    flow_dsl::model::Condition::AllCompleted => "all completed",
                }
            );
        }
        let fresh = done.get(&step.name);
        let mut tasks_line = format!("   tasks: {}", planned.task_count);
        if let Some(a) = &step.adaptive {
            tasks_line = format!(
                "   tasks: up to {} evaluations ({} trials × {} replicate(s), asked by the algorithm in batches of {}); {} asked so far",
                a.trials * a.replicates as u64,
                a.trials,
                a.replicates,
                a.batch,
                plan.task_total(i)
            );
        }
        if step.array.is_some() {
            tasks_line.push_str(&format!(" = {}", array_text(step)));
        }
        if step.kind == StepKind::QeScf {
            tasks_line.push_str(" structures");
        }
        if let Some(f) = fresh {
            tasks_line.push_str(&format!(
                "; {} done (outputs checked), will be skipped; {} to run",
                f.done, f.to_run
            ));
            if !f.reasons.is_empty() {
                let reasons: Vec<String> = f
                    .reasons
                    .iter()
                    .map(|(r, n)| format!("{n} {}", r.as_str()))
                    .collect();
                tasks_line.push_str(&format!(" ({})", reasons.join(", ")));
            }
            if f.failed > 0 {
                tasks_line.push_str(&format!(
                    "; {} failed, not rerun without `flow retry`",
                    f.failed
                ));
            }
            if f.blocked > 0 {
                tasks_line.push_str(&format!("; {} will be blocked", f.blocked));
            }
        } else if step.adaptive.is_none() {
            // No state: the campaign never ran, every task is new.
            tasks_line.push_str(&format!(
                "; 0 done; {} to run ({} new)",
                planned.task_count, planned.task_count
            ));
        }
        let _ = writeln!(out, "{tasks_line}");
        if let Some(f) = fresh {
            for (id, reason, detail) in f.examples.iter().filter(|e| !e.2.is_empty()).take(3) {
                let _ = writeln!(out, "     {id}: {}: {detail}", reason.as_str());
            }
        }
        if let Some(env) = &planned.env {
            let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
            let root = env.root.as_ref().map_or("no root".to_string(), |r| {
                match home.as_ref().and_then(|h| r.strip_prefix(h).ok()) {
                    Some(rest) => format!("~/{}", rest.display()),
                    None => r.display().to_string(),
                }
            });
            let by = match env.provider {
                Some(p) if p == i => "built by this step".to_string(),
                Some(p) => format!("built by step {}", plan.campaign.steps[p].name),
                None => "pre-built in the machine's root".to_string(),
            };
            let _ = writeln!(out, "   environment: {} under {root} ({by})", env.name);
        }
        let r = &step.resources;
        let mut res = format!(
            "   resources: {}{} node(s) × {} task(s) × {} cpu(s)",
            r.job_type
                .as_ref()
                .map(|j| format!("{j}: "))
                .unwrap_or_default(),
            r.nodes,
            r.tasks_per_node,
            r.cpus_per_task
        );
        if r.gpus_per_node > 0 {
            res.push_str(&format!(", {} gpu(s)/node", r.gpus_per_node));
        }
        if let Some(m) = r.mem_mb {
            res.push_str(&format!(", {m} MiB"));
        }
        if let Some(t) = r.time {
            res.push_str(&format!(", time {}", human_duration(t)));
        }
        for (label, v) in [
            ("partition", &r.partition),
            ("qos", &r.qos),
            ("constraint", &r.constraint),
            ("account", &r.account),
        ] {
            if let Some(v) = v {
                res.push_str(&format!(", {label} {v}"));
            }
        }
        let _ = writeln!(out, "{res}");
        let e = &step.execution;
        let _ = writeln!(
            out,
            "   execution: max_retries {}, backoff {} ×{:.1} (max {}){}{}",
            e.max_retries,
            human_duration(e.retry_backoff.initial),
            e.retry_backoff.multiplier,
            human_duration(e.retry_backoff.max),
            e.timeout
                .map(|t| format!(", timeout {}", human_duration(t)))
                .unwrap_or_default(),
            e.max_running
                .map(|m| format!(", max_running {m}"))
                .unwrap_or_default(),
        );
        match plan.executor {
            ExecutorKind::Slurm | ExecutorKind::Kubernetes
                if crate::step_kind::runs_on_driver(step) =>
            {
                let _ = writeln!(out, "   submission: none, runs where the driver runs (package indexes are reachable there; `run_on: compute` to submit it)");
            }
            ExecutorKind::Local => {
                let _ = writeln!(out, "   submission: {} local process(es)", s.submissions);
            }
            ExecutorKind::Slurm => {
                let _ = writeln!(
                    out,
                    "   submission: {} sbatch call(s), arrays of at most {} task(s){}",
                    s.submissions,
                    planned.batch_size,
                    s.throttle
                        .map(|m| format!(", throttle %{m} shared across arrays"))
                        .unwrap_or_default()
                );
            }
            ExecutorKind::Kubernetes => {
                let _ = writeln!(
                    out,
                    "   submission: {} Indexed Job(s) of at most {} completion(s)",
                    s.submissions, planned.batch_size
                );
            }
        }
        match (s.core_hours, s.gpu_hours) {
            (Some(ch), Some(gh)) => {
                total_core += ch;
                total_gpu += gh;
                let gpu = if gh > 0.0 {
                    format!(", {gh:.1} GPU-hours")
                } else {
                    String::new()
                };
                let _ = writeln!(out, "   estimate: at most {ch:.1} core-hours{gpu}");
            }
            _ => unknown_time.push(step.name.clone()),
        }
        if planned.task_count > 0 && step.kind.runs_user_command() {
            let first = plan.task(i, 0);
            if let Ok(cmd) = crate::render::command_for(plan, i, &first, 1) {
                let _ = writeln!(
                    out,
                    "   first task {}: {}",
                    first.id,
                    cmd.command.lines().next().unwrap_or("")
                );
                if let Some(o) = cmd.output {
                    let _ = writeln!(out, "   first output: {o}");
                }
            }
        }
        if explain {
            let _ = writeln!(out, "   settings:");
            for p in &step.provenance {
                let _ = writeln!(out, "     {}", explained(p));
            }
        }
    }
    let _ = writeln!(out);
    let mut est =
        format!("estimate: {total_submissions} submission(s), at most {total_core:.1} core-hours");
    if total_gpu > 0.0 {
        est.push_str(&format!(", {total_gpu:.1} GPU-hours"));
    }
    if !unknown_time.is_empty() {
        est.push_str(&format!(
            " (no time limit known for: {})",
            unknown_time.join(", ")
        ));
    }
    let _ = writeln!(out, "{est}");
    out
}

/// One `--explain` line: `path = value    (file:line)`, or `(built-in)` for a value of the
/// table of built-in defaults (`flow_dsl::machine_settings::BUILTIN_DEFAULTS`).
fn explained(p: &flow_dsl::model::Provenance) -> String {
    let origin = match &p.span {
        Some(s) => format!("{}:{}", s.file.name, s.line),
        None => "built-in".to_string(),
    };
    let value = flow_dsl::secrets::shown_value(&p.path, &p.value);
    format!("{} = {value}    ({origin})", p.path)
}

/// The plan as JSON. Fields are documented in docs/plan-json.md and kept stable.
pub fn json(plan: &Plan, done: &DoneCounts) -> serde_json::Value {
    let c = plan.campaign;
    let steps: Vec<serde_json::Value> = plan
        .order
        .iter()
        .map(|&i| {
            let (step, planned) = plan.step(i);
            let s = summarize(plan, i);
            let first = (planned.task_count > 0).then(|| plan.task(i, 0));
            let r = &step.resources;
            json!({
                "name": step.name,
                "kind": step.kind.as_str(),
                "needs": step.needs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                "condition": step.condition,
                "tasks": plan.task_total(i),
                "adaptive": step.adaptive.as_ref().map(|a| json!({
                    "max_evaluations": a.trials * a.replicates as u64,
                    "trials": a.trials,
                    "batch": a.batch,
                    "replicates": a.replicates,
                    "asked": plan.task_total(i),
                })),
                "done": done.get(&step.name).map_or(0, |f| f.done),
                "to_run": done.get(&step.name).map_or(planned.task_count, |f| f.to_run),
                "reasons": done.get(&step.name).map_or_else(
                    || if planned.task_count > 0 { json!({"new": planned.task_count}) } else { json!({}) },
                    |f| json!(f.reasons),
                ),
                "failed": done.get(&step.name).map_or(0, |f| f.failed),
                "blocked": done.get(&step.name).map_or(0, |f| f.blocked),
                "environment": planned.env.as_ref().map(|e| json!({
                    "name": e.name,
                    "root": e.root.as_ref().map(|r| r.display().to_string()),
                    "provided_by": e.provider.map(|p| plan.campaign.steps[p].name.clone()),
                })),
                "array": step.array.as_ref().map(|a| a.params.iter().map(|(n, v)| json!({"name": n, "values": v.len()})).collect::<Vec<_>>()),
                "batch_size": planned.batch_size,
                "submissions": s.submissions,
                "max_running": step.execution.max_running,
                "resources": {
                    "job_type": r.job_type, "nodes": r.nodes, "tasks_per_node": r.tasks_per_node,
                    "cpus_per_task": r.cpus_per_task, "gpus_per_node": r.gpus_per_node,
                    "mem_mb": r.mem_mb, "time_s": r.time.map(|t| t.as_secs()),
                    "partition": r.partition, "qos": r.qos, "constraint": r.constraint, "account": r.account,
                },
                "execution": {
                    "max_retries": step.execution.max_retries,
                    "timeout_s": step.execution.timeout.map(|t| t.as_secs()),
                    "backoff_initial_s": step.execution.retry_backoff.initial.as_secs_f64(),
                    "backoff_multiplier": step.execution.retry_backoff.multiplier,
                },
                "estimate": {"core_hours": s.core_hours, "gpu_hours": s.gpu_hours},
                "first_task": first.map(|t| json!({"id": t.id, "seed": t.seed, "params": t.params.iter().map(|(k, v)| (k.clone(), json!(v.text))).collect::<serde_json::Map<_, _>>()})),
            })
        })
        .collect();
    json!({
        "format": "flow-plan-v1",
        "task_id_scheme": crate::task_id::SCHEME,
        "campaign": {"name": c.name, "version": c.version, "directory": c.campaign_dir.display().to_string()},
        "machine": {"name": c.machine.name, "source": c.machine.source},
        "executor": plan.executor.as_str(),
        "total_tasks": plan.total_tasks(),
        "steps": steps,
    })
}

fn label(plan: &Plan, i: usize) -> String {
    let (step, planned) = plan.step(i);
    format!(
        "{}\\n{} · {} task(s)",
        step.name,
        step.kind.as_str(),
        planned.task_count
    )
}

/// Graphviz DOT.
pub fn dot(plan: &Plan) -> String {
    let mut out =
        String::from("digraph campaign {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
    for &i in &plan.order {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\"];",
            plan.campaign.steps[i].name,
            label(plan, i)
        );
    }
    for &i in &plan.order {
        for u in &plan.steps[i].upstream {
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\";",
                plan.campaign.steps[*u].name, plan.campaign.steps[i].name
            );
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart.
pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    let id = |i: usize| format!("s{i}");
    for &i in &plan.order {
        let (step, planned) = plan.step(i);
        let _ = writeln!(
            out,
            "  {}[\"{}<br/>{} · {} task(s)\"]",
            id(i),
            step.name,
            step.kind.as_str(),
            planned.task_count
        );
    }
    for &i in &plan.order {
        for u in &plan.steps[i].upstream {
            let _ = writeln!(out, "  {} --> {}", id(*u), id(i));
        }
    }
    out
}

/// Text for a terminal: control characters (other than newline and tab) and the
/// bidirectional-override characters are written as escapes (`\u{1b}`), so a value in a
/// campaign file cannot move the cursor, recolour the screen or reorder what is shown.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod terminal_tests {
    #[test]
    fn escapes_and_bidi_controls_are_shown_escaped() {
        assert_eq!(super::terminal_safe("a\nb\tc"), "a\nb\tc");
        assert_eq!(
            super::terminal_safe("x\u{1b}[2Jy\u{202e}z\r"),
            "x\\u{1b}[2Jy\\u{202e}z\\u{d}"
        );
    }
}
