//! The implementation of each `flow` command. Each returns the process exit code:
//! 0 success, 1 the campaign/input is wrong or work failed, 2 usage errors (clap's).

use crate::cli::{
    Command, EnvAction, EnvTarget, ExecutorArg, OutputFormat, PlanFormat, RecipesAction, TaskAction,
};
use crate::cli_io::{load, open_state, print_json};
use crate::compile::compile;
use crate::layout::Layout;
use crate::plan_render::{self, DoneCounts};
use crate::scheduler::{self, state_location, RunOptions};
use crate::state::StateStore;
use crate::task_state::TaskState;
use flow_dsl::load::load_campaign;
use flow_dsl::model::{Campaign, ExecutorKind};
use flow_dsl::recipes;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

fn executor_kind(arg: Option<ExecutorArg>) -> Option<ExecutorKind> {
    arg.map(|a| match a {
        ExecutorArg::Local => ExecutorKind::Local,
        ExecutorArg::Slurm => ExecutorKind::Slurm,
        ExecutorArg::Kubernetes => ExecutorKind::Kubernetes,
    })
}

/// Dispatch a parsed command line.
pub fn run(command: Command) -> i32 {
    match command {
        Command::Validate { file, output } => validate(&file, output),
        Command::Plan {
            file,
            format,
            explain,
            executor,
            output,
            verify,
            state_dir,
            structure,
            task,
        } => {
            // `--output json` (text, dot, mermaid) is `--format json`; with `--format
            // manifests` the value is the directory.
            let (format, output) = plan_output_alias(format, output);
            plan(
                &file,
                format,
                explain,
                executor_kind(executor),
                output.as_deref(),
                verify,
                state_dir.as_ref(),
                crate::steps::QeFocus::from_args(structure, task),
            )
        }
        Command::Run {
            file,
            executor,
            detach,
            state_dir,
            reset_state,
        } => {
            if reset_state {
                if let Err(code) = reset_state_db(&file, state_dir.as_ref()) {
                    return code;
                }
            }
            if detach {
                detach_run(&file, executor, state_dir)
            } else {
                run_campaign(&file, executor_kind(executor), state_dir)
            }
        }
        Command::Status {
            file,
            output,
            watch,
            state_dir,
        } => status(&file, output, watch, state_dir),
        Command::Retry {
            file,
            step,
            failed,
            state_dir,
            output,
        } => retry(&file, step, failed, state_dir, output),
        Command::Trace {
            file,
            step,
            output,
            state_dir,
        } => crate::report_commands::trace(&file, step.as_deref(), output, state_dir.as_ref()),
        Command::Report {
            file,
            out,
            state_dir,
        } => crate::report_commands::report(&file, out.as_deref(), state_dir.as_ref()),
        Command::Logs {
            file,
            task,
            attempt,
            state_dir,
        } => logs(&file, &task, attempt, state_dir),
        Command::Cancel {
            file,
            state_dir,
            output,
        } => cancel(&file, state_dir, output),
        Command::Recipes { action } => recipes_cmd(action),
        Command::Env { action } => env_cmd(action),
        Command::Init { machine, output } => init(&machine, &output),
        Command::Task { action } => match action {
            TaskAction::Exec { spec } => crate::task_exec::exec(&spec),
            TaskAction::RunManifest { manifest, index } => {
                crate::task_exec::run_manifest(&manifest, index)
            }
            TaskAction::RunLaunch { launch } => match std::fs::read_to_string(&launch)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            {
                Ok(l) => crate::task_exec::run_launch(&l),
                Err(e) => {
                    eprintln!("flow task run-launch: {}: {e}", launch.display());
                    1
                }
            },
        },
    }
}

/// `flow plan --output FORMAT`: the same as `--format FORMAT` unless the format is
/// `manifests` (then `--output` is its directory).
fn plan_output_alias(format: PlanFormat, output: Option<PathBuf>) -> (PlanFormat, Option<PathBuf>) {
    if format == PlanFormat::Manifests {
        return (format, output);
    }
    let named = match output.as_ref().and_then(|o| o.to_str()) {
        Some("json") => Some(PlanFormat::Json),
        Some("text") => Some(PlanFormat::Text),
        Some("dot") => Some(PlanFormat::Dot),
        Some("mermaid") => Some(PlanFormat::Mermaid),
        _ => None,
    };
    match named {
        Some(f) => (f, None),
        None => (format, output),
    }
}

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

fn validate(file: &Path, output: OutputFormat) -> i32 {
    let result = load_campaign(file).and_then(|campaign| {
        crate::cli_io::warn_about_secrets(&campaign);
        let plan = compile(&campaign, None)?;
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
            0
        }
        (OutputFormat::Text, Err(d)) => {
            eprint!("{d}");
            eprintln!();
            1
        }
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
            i32::from(!ok)
        }
    }
}

/// Per step: what is done (outputs checked), what will run and why, read from the state
/// database if any (read-only: planning never writes).
fn done_counts(
    campaign: &Campaign,
    plan: &crate::compile::Plan,
    state_dir: Option<&PathBuf>,
    verify: bool,
) -> DoneCounts {
    let layout = Layout::new(&campaign.campaign_dir);
    let (db, _) = state_location(&layout, state_dir);
    let mut out = DoneCounts::new();
    if !db.exists() {
        return out;
    }
    let Ok(store) = StateStore::open_readonly(&db) else {
        return out;
    };
    let (Ok(rows), Ok(details)) = (store.load_tasks(), store.success_details()) else {
        return out;
    };
    // adaptive: the evaluations asked so far are tasks of the plan too.
    let _ = crate::adaptive_step::AdaptiveSteps::load(plan, &store);
    let fresh = crate::freshness::assess(plan, &rows, &details, verify);
    for (i, f) in fresh.steps.into_iter().enumerate() {
        out.insert(campaign.steps[i].name.clone(), f);
    }
    out
}

#[allow(clippy::too_many_arguments)] // one per `flow plan` flag
fn plan(
    file: &Path,
    format: PlanFormat,
    explain: bool,
    executor: Option<ExecutorKind>,
    output: Option<&Path>,
    verify: bool,
    state_dir: Option<&PathBuf>,
    focus: crate::steps::QeFocus,
) -> i32 {
    let Ok(campaign) = load(file) else { return 1 };
    crate::cli_io::warn_about_secrets(&campaign);
    let plan = match compile(&campaign, executor) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("{d}");
            return 1;
        }
    };
    let done = done_counts(&campaign, &plan, state_dir, verify);
    match format {
        PlanFormat::Text => {
            let details = match crate::steps::plan_details_for(&plan, &focus) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            };
            print!("{}", plan_render::text(&plan, &done, explain));
            print!("{details}");
        }
        PlanFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&plan_render::json(&plan, &done)).unwrap_or_default()
        ),
        PlanFormat::Dot => print!("{}", plan_render::dot(&plan)),
        PlanFormat::Mermaid => print!("{}", plan_render::mermaid(&plan)),
        PlanFormat::Manifests => {
            let Some(dir) = output else {
                eprintln!("error: --format manifests needs -o DIR");
                return 2;
            };
            match crate::steps::write_kubernetes_manifests(&plan, dir) {
                Ok(n) => println!("wrote {n} Job manifest(s) to {}", dir.display()),
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            }
        }
    }
    0
}

fn run_campaign(file: &Path, executor: Option<ExecutorKind>, state_dir: Option<PathBuf>) -> i32 {
    let Ok(campaign) = load(file) else { return 1 };
    crate::cli_io::warn_about_secrets(&campaign);
    let opts = RunOptions {
        executor,
        state_dir,
        plain_progress: !std::io::stderr().is_terminal(),
        quiet: false,
    };
    match scheduler::run(&campaign, &opts) {
        Ok(summary) => {
            println!(
                "{}: {} succeeded ({} already done), {} failed, {} blocked, {} cancelled of {} tasks",
                campaign.name, summary.succeeded, summary.skipped, summary.failed, summary.blocked, summary.cancelled, summary.total
            );
            for (id, step, class, msg) in summary.failures.iter().take(20) {
                println!(
                    "  failed {step}/{id}: {class}: {msg}   (flow logs {} {id})",
                    file.display()
                );
            }
            if summary.failures.len() > 20 {
                println!(
                    "  ... and {} more (flow status {})",
                    summary.failures.len() - 20,
                    file.display()
                );
            }
            if summary.ok() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

fn detach_run(file: &Path, executor: Option<ExecutorArg>, state_dir: Option<PathBuf>) -> i32 {
    use std::os::unix::process::CommandExt;
    let Ok(campaign) = load(file) else { return 1 };
    let layout = Layout::new(&campaign.campaign_dir);
    if let Err(e) = std::fs::create_dir_all(layout.metadata()) {
        eprintln!("error: cannot create {}: {e}", layout.metadata().display());
        return 1;
    }
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("error: cannot find the flow binary");
        return 1;
    };
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(layout.driver_log())
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", layout.driver_log().display());
            return 1;
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run").arg(file);
    if let Some(e) = executor {
        cmd.arg("--executor").arg(format!("{e:?}").to_lowercase());
    }
    if let Some(d) = state_dir {
        cmd.arg("--state-dir").arg(d);
    }
    let err = log.try_clone();
    cmd.stdin(std::process::Stdio::null()).stdout(log);
    if let Ok(err) = err {
        cmd.stderr(err);
    }
    // SAFETY: setsid in the child before exec detaches it from the terminal's session.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(child) => {
            let _ = std::fs::write(layout.driver_pid(), format!("{}\n", child.id()));
            println!(
                "driver running as pid {} (log: {}); follow it with `flow status {} --watch`",
                child.id(),
                layout.driver_log().display(),
                file.display()
            );
            0
        }
        Err(e) => {
            eprintln!("error: cannot start the driver: {e}");
            1
        }
    }
}

/// `flow run --reset-state`: set the state database aside, if there is one.
fn reset_state_db(file: &Path, state_dir: Option<&PathBuf>) -> Result<(), i32> {
    let campaign = load(file).map_err(|_| 1)?;
    let layout = Layout::new(&campaign.campaign_dir);
    let (db, _) = state_location(&layout, state_dir);
    match crate::state::set_aside(&db) {
        Ok(Some(aside)) => {
            eprintln!(
                "note: the state database {} was set aside as {}; the state starts over",
                db.display(),
                aside.display()
            );
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            eprintln!("error: {e}");
            Err(1)
        }
    }
}

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

fn status(file: &Path, output: OutputFormat, watch: bool, state_dir: Option<PathBuf>) -> i32 {
    loop {
        let code = status_once(file, output, state_dir.as_ref());
        if !watch || code != 0 {
            return code;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        if output == OutputFormat::Text {
            print!("\x1b[2J\x1b[H");
        }
    }
}

fn status_once(file: &Path, output: OutputFormat, state_dir: Option<&PathBuf>) -> i32 {
    let Ok(campaign) = load(file) else { return 1 };
    let plan = match compile(&campaign, None) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("{d}");
            return 1;
        }
    };
    let layout = Layout::new(&campaign.campaign_dir);
    let (db, _) = state_location(&layout, state_dir);
    let store = match StateStore::open_readonly(&db) {
        Ok(s) if db.exists() => s,
        Err(e @ crate::state::StateError::Corrupt { .. }) => {
            eprintln!("error: {e}");
            return 1;
        }
        _ => {
            // The database may be on another machine's disk: the driver's snapshot.
            if let Ok(text) = std::fs::read_to_string(layout.status_snapshot()) {
                println!("{text}");
                return 0;
            }
            eprintln!(
                "error: campaign {} has not run yet (no state at {})",
                campaign.name,
                db.display()
            );
            return 1;
        }
    };
    let now = flow_executors::task_runner::now();
    let (doc, text) = match crate::status::report(&plan, &layout, &store, now) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    match output {
        OutputFormat::Text => print!("{text}"),
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default())
        }
    }
    0
}

fn retry(
    file: &Path,
    step: Option<String>,
    failed_only: bool,
    state_dir: Option<PathBuf>,
    output: OutputFormat,
) -> i32 {
    let Ok(campaign) = load(file) else { return 1 };
    if let Some(s) = &step {
        if campaign.step(s).is_none() {
            let names: Vec<&str> = campaign.steps.iter().map(|s| s.name.as_str()).collect();
            eprintln!(
                "error: no step `{s}` in {} (steps: {})",
                file.display(),
                names.join(", ")
            );
            return 1;
        }
    }
    let layout = Layout::new(&campaign.campaign_dir);
    let (db, _) = state_location(&layout, state_dir.as_ref());
    if !db.exists() {
        eprintln!("error: campaign {} has not run yet", campaign.name);
        return 1;
    }
    let mut store = match StateStore::open(&db) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let states: &[TaskState] = if failed_only {
        &[TaskState::Failed]
    } else {
        &[TaskState::Failed, TaskState::Blocked, TaskState::Cancelled]
    };
    // Only the tasks of the campaign as it is now: versions superseded by an edit are
    // history, not work.
    let plan = match compile(&campaign, None) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("{d}");
            return 1;
        }
    };
    let ids: Vec<String> = plan
        .order
        .iter()
        .filter(|&&i| step.as_deref().is_none_or(|s| campaign.steps[i].name == s))
        .flat_map(|&i| plan.tasks(i).map(|t| t.id))
        .collect();
    match store.requeue_ids(states, &ids, flow_executors::task_runner::now()) {
        Ok(n) if output == OutputFormat::Json => {
            print_json(&serde_json::json!({
                "campaign": campaign.name,
                "requeued": n,
                "step": step,
                "states": states.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            }));
            0
        }
        Ok(n) => {
            println!(
                "re-queued {n} task(s); run `flow run {}` to execute them",
                file.display()
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn logs(file: &Path, task: &str, attempt: Option<u32>, state_dir: Option<PathBuf>) -> i32 {
    let Ok(campaign) = load(file) else { return 1 };
    let Ok(store) = open_state(&campaign, state_dir.as_ref()) else {
        return 1;
    };
    let ids = store.find_tasks(task).unwrap_or_default();
    let id = match ids.as_slice() {
        [one] => one.clone(),
        [] => {
            eprintln!(
                "error: no task with id `{task}` in campaign {}",
                campaign.name
            );
            return 1;
        }
        many => {
            eprintln!("error: `{task}` is ambiguous: {}", many.join(", "));
            return 1;
        }
    };
    let rows = store.load_tasks().unwrap_or_default();
    let Some(row) = rows.get(&id) else { return 1 };
    let attempts = store.attempts(&id).unwrap_or_default();
    let n = attempt.unwrap_or(row.attempts.max(1));
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
                let ex = scheduler::make_executor(&plan)?;
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
    0
}

fn cancel(file: &Path, state_dir: Option<PathBuf>, output: OutputFormat) -> i32 {
    let Ok(campaign) = load(file) else { return 1 };
    // What was done, in words or as one JSON document (`action`: asked-driver,
    // deleted-jobs, cancelled-jobs, nothing-running).
    let say =
        |action: &str, text: String, driver: Option<(&str, i64)>, jobs: Option<usize>| match output
        {
            OutputFormat::Text => println!("{text}"),
            OutputFormat::Json => print_json(&serde_json::json!({
                "campaign": campaign.name,
                "action": action,
                "driver": driver.map(|(host, pid)| serde_json::json!({"host": host, "pid": pid})),
                "jobs": jobs,
                "message": text,
            })),
        };
    let Ok(store) = open_state(&campaign, state_dir.as_ref()) else {
        return 1;
    };
    let layout = Layout::new(&campaign.campaign_dir);
    let here = crate::state::hostname();
    match store.live_lease(&here, flow_executors::task_runner::now()) {
        Ok(Some((host, pid, _))) => {
            if let Err(e) = std::fs::write(layout.cancel_request(), b"cancel\n") {
                eprintln!(
                    "error: cannot write {}: {e}",
                    layout.cancel_request().display()
                );
                return 1;
            }
            say(
                "asked-driver",
                format!("asked the driver (pid {pid} on {host}) to cancel; it stops its tasks within a few seconds"),
                Some((host.as_str(), pid)),
                None,
            );
            0
        }
        _ => {
            // No driver: cancel what the backend still holds for this campaign directly.
            if flow_executors::Capabilities::of(campaign.machine.executor).jobs_outlive_driver {
                let Ok(plan) = compile(&campaign, None) else {
                    return 1;
                };
                return match scheduler::make_executor(&plan)
                    .and_then(|mut ex| Ok((ex.capabilities(), ex.cancel_all()?)))
                {
                    Ok((capabilities, done)) => {
                        let (action, verb) = match done.deleted {
                            true => ("deleted-jobs", "deleted"),
                            false => ("cancelled-jobs", "cancelled"),
                        };
                        say(
                            action,
                            format!(
                                "no driver is running; {verb} {} {}(s) of campaign {}{}",
                                done.jobs,
                                capabilities.job_noun,
                                campaign.name,
                                if done.deleted {
                                    " (and their pods)"
                                } else {
                                    ""
                                }
                            ),
                            None,
                            Some(done.jobs),
                        );
                        0
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        1
                    }
                };
            }
            say(
                "nothing-running",
                format!("no driver is running for campaign {}", campaign.name),
                None,
                None,
            );
            0
        }
    }
}

fn recipes_cmd(action: RecipesAction) -> i32 {
    match action {
        RecipesAction::List {
            output: OutputFormat::Json,
        } => {
            let cwd = std::env::current_dir().ok();
            let list: Vec<serde_json::Value> = recipes::machine_names(cwd.as_deref())
                .into_iter()
                .map(|name| {
                    let source = recipes::find_machine(&name, cwd.as_deref()).map(|f| f.source);
                    match flow_dsl::load::load_machine_recipe(&name) {
                        Ok(m) => serde_json::json!({
                            "name": name,
                            "executor": m.executor.as_str(),
                            "description": m.description,
                            "source": source,
                            "valid": true,
                        }),
                        Err(_) => serde_json::json!({
                            "name": name,
                            "executor": null,
                            "description": null,
                            "source": source,
                            "valid": false,
                        }),
                    }
                })
                .collect();
            print_json(&serde_json::json!({ "recipes": list }));
            0
        }
        RecipesAction::List { .. } => {
            let cwd = std::env::current_dir().ok();
            for name in recipes::machine_names(cwd.as_deref()) {
                match flow_dsl::load::load_machine_recipe(&name) {
                    Ok(m) => println!(
                        "{name:<16} {:<11} {}",
                        m.executor.as_str(),
                        m.description.unwrap_or_default()
                    ),
                    Err(_) => println!("{name:<16} (invalid recipe: flow recipes show {name})"),
                }
            }
            0
        }
        RecipesAction::Show { name, output } => {
            match recipes::find_machine(&name, std::env::current_dir().ok().as_deref()) {
                Some(found) if output == OutputFormat::Json => {
                    print_json(&serde_json::json!({
                        "name": name,
                        "source": found.source,
                        "text": found.text,
                    }));
                    0
                }
                Some(found) => {
                    println!("# {}", found.source);
                    print!("{}", found.text);
                    0
                }
                None => {
                    eprintln!("error: no machine recipe named `{name}` (flow recipes list)");
                    1
                }
            }
        }
    }
}

fn env_root_of(target: &EnvTarget) -> Result<flow_mlip::EnvRoot, i32> {
    if let Some(root) = &target.root {
        return Ok(flow_mlip::EnvRoot::new(root.clone()));
    }
    let machine = flow_dsl::load::load_machine_recipe(&target.machine).map_err(|d| {
        eprintln!("{d}");
        1
    })?;
    crate::typed::env_root(None, machine.root.as_deref()).ok_or_else(|| {
        eprintln!(
            "error: machine `{}` has no `root`; pass --root DIR",
            machine.name
        );
        1
    })
}

fn env_cmd(action: EnvAction) -> i32 {
    match action {
        EnvAction::List(t) => {
            let Ok(root) = env_root_of(&t) else { return 1 };
            let listing = flow_mlip::list_environments(&root);
            if t.output == OutputFormat::Json {
                let envs: Vec<serde_json::Value> = listing
                    .iter()
                    .map(|env| {
                        serde_json::json!({
                            "name": env.name,
                            "file": env.file.display().to_string(),
                            "requires_python": env.requires_python.as_ref().ok(),
                            "error": env.requires_python.as_ref().err(),
                            "dependencies": env.dependencies,
                            "builds": env.builds.iter().map(|(dir, marker)| serde_json::json!({
                                "dir": dir.display().to_string(),
                                "complete": marker.is_some(),
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                print_json(&serde_json::json!({
                    "root": root.path().display().to_string(),
                    "environments": envs,
                }));
                return 0;
            }
            println!("root {}", root.path().display());
            if listing.is_empty() {
                println!(
                    "no environment files in {}/environments",
                    root.path().display()
                );
            }
            for env in listing {
                let python = env
                    .requires_python
                    .unwrap_or_else(|e| format!("unreadable: {e}"));
                println!(
                    "{:<12} requires-python {python}; {}",
                    env.name,
                    env.dependencies.join(", ")
                );
                for (dir, marker) in env.builds {
                    println!(
                        "    {} ({})",
                        dir.display(),
                        if marker.is_some() {
                            "complete"
                        } else {
                            "half-built: will be rebuilt"
                        }
                    );
                }
            }
            0
        }
        EnvAction::Warm(t) => {
            let Ok(root) = env_root_of(&t) else { return 1 };
            let mut code = 0;
            for (name, result) in flow_mlip::warm_all(&root, &flow_mlip::BuildOptions::default()) {
                match result {
                    Ok(b) => println!(
                        "{name}: {:?} {} ({:.1} s)",
                        b.action,
                        b.env_dir.display(),
                        b.seconds
                    ),
                    Err(e) => {
                        eprintln!("{name}: {e}");
                        code = 1;
                    }
                }
            }
            code
        }
        EnvAction::Doctor(t) => {
            let Ok(root) = env_root_of(&t) else { return 1 };
            let checks = flow_mlip::doctor(&root);
            let failed = checks
                .iter()
                .any(|c| matches!(c.status, flow_mlip::env_catalog::CheckStatus::Fail));
            match t.output {
                OutputFormat::Text => print!("{}", flow_mlip::render_doctor(&checks)),
                OutputFormat::Json => print_json(&serde_json::json!({
                    "root": root.path().display().to_string(),
                    "ok": !failed,
                    "checks": checks,
                })),
            }
            i32::from(failed)
        }
        EnvAction::Bootstrap(t) => {
            let Ok(root) = env_root_of(&t) else { return 1 };
            match flow_mlip::bootstrap_uv(&root, "python3") {
                Ok(uv) => {
                    println!("uv ready at {}", uv.display());
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
    }
}

fn init(machine: &str, output: &Path) -> i32 {
    let Some(found) = recipes::find_machine(machine, std::env::current_dir().ok().as_deref())
    else {
        let names = recipes::machine_names(None);
        eprintln!(
            "error: no machine recipe named `{machine}` (known: {})",
            names.join(", ")
        );
        return 1;
    };
    if output.exists() {
        eprintln!(
            "error: {} already exists; choose another name with -o",
            output.display()
        );
        return 1;
    }
    let template = r#"# yaml-language-server: $schema=https://flow.invalid/schemas/campaign.schema.json
# A starter campaign for machine `MACHINE` (SOURCE).
# `flow validate FILE` checks it, `flow plan FILE` shows what would run, `flow run FILE` runs it.
campaign:
  name: my-campaign
  version: v1.0
  machine: MACHINE
  output: campaigns          # -> campaigns/v1.0_my-campaign/

# Settings every step starts from (the machine's defaults apply underneath).
defaults:
  execution: {max_retries: 2, retry_backoff: {initial: 30s, multiplier: 2}, timeout: 1h}

steps:
  # An array: one task per realization x redshift; values are shell-quoted in commands.
  hello:
    kind: command
    array: {realization: {range: [0, 4]}, redshift: [1.0, 0.5]}
    command: echo realization {{realization}} at z={{fixed redshift 3}} seed {{seed}} > {{output}}
    output: hello/r{{pad realization 4}}_z{{fixed redshift 3}}.txt
  # Runs once every hello task has succeeded.
  summary:
    kind: command
    needs: [hello]
    command: cat hello/*.txt | wc -l > qa/hello-count.txt
"#;
    let text = template
        .replace("MACHINE", machine)
        .replace("SOURCE", &found.source)
        .replace("FILE", &output.display().to_string());
    match std::fs::write(output, text) {
        Ok(()) => {
            println!(
                "wrote {}; next: flow plan {}",
                output.display(),
                output.display()
            );
            0
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", output.display());
            1
        }
    }
}
