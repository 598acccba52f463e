//! The implementation of each `flow` command. Each returns the process exit code:
//! 0 success, 1 the campaign/input is wrong or work failed, 2 usage errors (clap's).

use crate::cli::{
    Command, EnvAction, EnvTarget, ExecutorArg, OutputFormat, PlanFormat, RecipesAction, TaskAction,
};
use crate::compile::compile;
use crate::layout::Layout;
use crate::plan_render::{self, DoneCounts};
use crate::scheduler::{self, state_location, RunOptions};
use crate::state::StateStore;
use crate::task_state::TaskState;
use flow_dsl::load::load_campaign;
use flow_dsl::model::{Campaign, ExecutorKind};
use flow_dsl::recipes;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

fn executor_kind(arg: Option<ExecutorArg>) -> Option<ExecutorKind> {
    arg.map(|a| match a {
        ExecutorArg::Local => ExecutorKind::Local,
        ExecutorArg::Slurm => ExecutorKind::Slurm,
        ExecutorArg::Kubernetes => ExecutorKind::Kubernetes,
    })
}

fn load(file: &Path) -> Result<Campaign, i32> {
    load_campaign(file).map_err(|d| {
        eprint!("{d}");
        eprintln!();
        1
    })
}

/// Dispatch a parsed command line.
pub fn run(command: Command) -> i32 {
    match command {
        Command::Validate { file } => validate(&file),
        Command::Plan {
            file,
            format,
            explain,
            executor,
            output,
        } => plan(
            &file,
            format,
            explain,
            executor_kind(executor),
            output.as_deref(),
        ),
        Command::Run {
            file,
            executor,
            detach,
            state_dir,
        } => {
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
        } => retry(&file, step, failed, state_dir),
        Command::Logs {
            file,
            task,
            attempt,
            state_dir,
        } => logs(&file, &task, attempt, state_dir),
        Command::Cancel { file, state_dir } => cancel(&file, state_dir),
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

fn validate(file: &Path) -> i32 {
    let Ok(campaign) = load(file) else { return 1 };
    match compile(&campaign, None) {
        Ok(plan) => {
            println!(
                "{}: ok ({} steps, {} tasks, machine {})",
                file.display(),
                plan.order.len(),
                plan.total_tasks(),
                campaign.machine.name
            );
            0
        }
        Err(d) => {
            eprintln!("{d}");
            1
        }
    }
}

/// Per-step counts of succeeded tasks of this plan, read from the state database if any.
fn done_counts(
    campaign: &Campaign,
    plan: &crate::compile::Plan,
    state_dir: Option<&PathBuf>,
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
    let Ok(rows) = store.load_tasks() else {
        return out;
    };
    for &i in &plan.order {
        let name = &campaign.steps[i].name;
        let n = plan
            .tasks(i)
            .filter(|t| {
                rows.get(&t.id)
                    .is_some_and(|r| r.state == TaskState::Succeeded)
            })
            .count() as u64;
        out.insert(name.clone(), n);
    }
    out
}

fn plan(
    file: &Path,
    format: PlanFormat,
    explain: bool,
    executor: Option<ExecutorKind>,
    output: Option<&Path>,
) -> i32 {
    let Ok(campaign) = load(file) else { return 1 };
    let plan = match compile(&campaign, executor) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("{d}");
            return 1;
        }
    };
    let done = done_counts(&campaign, &plan, None);
    match format {
        PlanFormat::Text => {
            print!("{}", plan_render::text(&plan, &done, explain));
            print!("{}", crate::steps::plan_details(&plan));
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

fn open_state(campaign: &Campaign, state_dir: Option<&PathBuf>) -> Result<StateStore, i32> {
    let layout = Layout::new(&campaign.campaign_dir);
    let (db, _) = state_location(&layout, state_dir);
    if !db.exists() {
        eprintln!(
            "error: campaign {} has not run yet (no state at {}); start it with `flow run`",
            campaign.name,
            db.display()
        );
        return Err(1);
    }
    StateStore::open_readonly(&db).map_err(|e| {
        eprintln!("error: {e}");
        1
    })
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
    let rows = match store.load_tasks() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let info = store.step_info().unwrap_or_default();
    let lease = store.lease().ok().flatten();
    let mut steps_json = Vec::new();
    let mut text = String::new();
    let now = flow_executors::task_runner::now();
    text.push_str(&format!(
        "campaign {} {} ({})\n",
        campaign.name,
        campaign.version,
        campaign.campaign_dir.display()
    ));
    match &lease {
        Some((host, pid, beat)) => text.push_str(&format!(
            "driver: pid {pid} on {host}, last heartbeat {:.0} s ago\n",
            now - beat
        )),
        None => text.push_str("driver: not running\n"),
    }
    for &i in &plan.order {
        let step = &campaign.steps[i];
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut failures = Vec::new();
        let mut first_start = f64::MAX;
        // Arrays of several parameters: progress by the first one (e.g. by realization).
        let grouped = step.array.as_ref().is_some_and(|a| a.params.len() > 1);
        let mut groups: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        for t in plan.tasks(i) {
            let (state, row) = match rows.get(&t.id) {
                Some(r) => (r.state, Some(r)),
                None => (TaskState::Pending, None),
            };
            *counts.entry(state.as_str()).or_default() += 1;
            if grouped {
                let key = t
                    .params
                    .first()
                    .map(|(_, v)| v.text.clone())
                    .unwrap_or_default();
                let g = groups.entry(key).or_default();
                g.0 += 1;
                g.1 += u64::from(state == TaskState::Succeeded);
                g.2 += u64::from(state == TaskState::Failed);
            }
            if let Some(r) = row {
                if state == TaskState::Failed
                    || (state == TaskState::Pending && r.error_class.is_some())
                {
                    failures.push(r.clone());
                }
                if r.attempts > 0 {
                    first_start = first_start.min(r.not_before.unwrap_or(f64::MAX));
                }
            }
        }
        let total = plan.steps[i].task_count;
        let done = counts.get("succeeded").copied().unwrap_or(0);
        let line: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        text.push_str(&format!(
            "\n{} [{}] {done}/{total}: {}\n",
            step.name,
            step.kind.as_str(),
            line.join(", ")
        ));
        if grouped {
            let name = step
                .array
                .as_ref()
                .and_then(|a| a.params.first())
                .map(|(n, _)| n.clone())
                .unwrap_or_default();
            let mut incomplete: Vec<(&String, &(u64, u64, u64))> =
                groups.iter().filter(|(_, g)| g.1 < g.0).collect();
            incomplete.sort_by_key(|(k, _)| k.parse::<i64>().unwrap_or(i64::MAX));
            let complete = groups.len() - incomplete.len();
            let shown: Vec<String> = incomplete
                .iter()
                .take(8)
                .map(|(k, g)| {
                    format!(
                        "{k} ({}/{} done{})",
                        g.1,
                        g.0,
                        if g.2 > 0 {
                            format!(", {} failed", g.2)
                        } else {
                            String::new()
                        }
                    )
                })
                .collect();
            text.push_str(&format!(
                "  by {name}: {complete} of {} complete{}{}\n",
                groups.len(),
                if shown.is_empty() {
                    String::new()
                } else {
                    format!("; incomplete: {}", shown.join(", "))
                },
                if incomplete.len() > 8 {
                    format!(" and {} more", incomplete.len() - 8)
                } else {
                    String::new()
                }
            ));
        }
        if let Some(gate) = info
            .get(&step.name)
            .and_then(|v| v.get("gate_stop"))
            .and_then(|v| v.as_str())
        {
            text.push_str(&format!("  gate stopped dependents: {gate}\n"));
        }
        let adaptive = crate::adaptive_step::status_summary(&store, step);
        if let Some(a) = &adaptive {
            text.push_str(&format!(
                "  trials: {} done, {} running, {} failed of {} (budget {}){}\n",
                a["trials_done"],
                a["trials_running"],
                a["trials_failed"],
                a["trials_asked"],
                a["budget"],
                match a.get("best").filter(|b| !b.is_null()) {
                    Some(b) => format!(
                        "; best loss {} at {} ({})",
                        b["loss"],
                        b["params"],
                        b["param_id"].as_str().unwrap_or("")
                    ),
                    None => String::new(),
                }
            ));
        }
        if let Some(bench) = info.get(&step.name).and_then(|v| v.get("benchmark")) {
            text.push_str(&format!("  benchmark: {bench}\n"));
        }
        for f in failures.iter().take(10) {
            let stderr_head = last_stderr(&layout, &step.name, f);
            text.push_str(&format!(
                "  {} {} (attempt {}): {}: {}{}\n",
                if f.state == TaskState::Failed {
                    "failed"
                } else {
                    "retrying"
                },
                f.id,
                f.attempts,
                f.error_class.clone().unwrap_or_default(),
                f.message.clone().unwrap_or_default(),
                stderr_head
                    .map(|s| format!("\n      stderr: {s}"))
                    .unwrap_or_default()
            ));
        }
        if failures.len() > 10 {
            text.push_str(&format!("  ... {} more\n", failures.len() - 10));
        }
        steps_json.push(serde_json::json!({
            "name": step.name, "kind": step.kind.as_str(), "total": total, "counts": counts,
            "failures": failures.iter().map(|f| serde_json::json!({"task": f.id, "state": f.state.as_str(), "attempts": f.attempts, "error_class": f.error_class, "message": f.message})).collect::<Vec<_>>(),
            "info": info.get(&step.name),
            "adaptive": adaptive,
        }));
    }
    match output {
        OutputFormat::Text => print!("{text}"),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "campaign": {"name": campaign.name, "version": campaign.version, "directory": campaign.campaign_dir.display().to_string()},
                "driver": lease.map(|(h, p, b)| serde_json::json!({"host": h, "pid": p, "heartbeat_age_s": now - b})),
                "steps": steps_json,
            }))
            .unwrap_or_default()
        ),
    }
    0
}

fn last_stderr(layout: &Layout, step: &str, row: &crate::state::TaskRow) -> Option<String> {
    let (_, err) = layout.log_files(step, row.index, &row.id, row.attempts.max(1));
    let text = std::fs::read_to_string(err).ok()?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines
        .iter()
        .rev()
        .take(3)
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join(" | ");
    (!tail.is_empty()).then(|| tail.chars().take(300).collect())
}

fn retry(file: &Path, step: Option<String>, failed_only: bool, state_dir: Option<PathBuf>) -> i32 {
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
    match store.requeue(states, step.as_deref(), flow_executors::task_runner::now()) {
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
            "executor {} job {} exit {:?} class {} {}",
            a.executor,
            a.job_id.clone().unwrap_or_default(),
            a.exit_code,
            a.error_class.clone().unwrap_or_else(|| "-".into()),
            a.message.clone().unwrap_or_default()
        );
    }
    for (label, path) in [("stdout", out), ("stderr", err)] {
        println!("--- {label} ({}) ---", path.display());
        match std::fs::read_to_string(&path) {
            Ok(t) => print!("{t}"),
            Err(_) => println!("(none)"),
        }
    }
    // On Kubernetes the pods' own logs say what happened around the task (a failed start,
    // a deadline, `flow task`'s messages), as long as the pods exist.
    if let Some((job, index)) = attempts
        .iter()
        .find(|a| a.attempt == n && a.executor == "kubernetes")
        .and_then(|a| a.job_id.as_deref())
        .and_then(|id| id.rsplit_once('_'))
        .and_then(|(job, index)| Some((job.to_string(), index.parse::<usize>().ok()?)))
    {
        let logs = compile(&campaign, None)
            .map_err(|d| anyhow::anyhow!("{d}"))
            .and_then(|plan| crate::steps::kubernetes_executor_for(&plan))
            .and_then(|ex| Ok(ex.pod_logs(&job, index)?));
        match logs {
            Ok(logs) if logs.is_empty() => {
                println!("--- pod log: no pod of Job {job} index {index} is left ---")
            }
            Ok(logs) => {
                for (pod, log) in logs {
                    println!("--- pod log ({pod}) ---");
                    print!("{log}");
                }
            }
            Err(e) => println!("--- pod log: unavailable ({e:#}) ---"),
        }
    }
    0
}

fn cancel(file: &Path, state_dir: Option<PathBuf>) -> i32 {
    let Ok(campaign) = load(file) else { return 1 };
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
            println!("asked the driver (pid {pid} on {host}) to cancel; it stops its tasks within a few seconds");
            0
        }
        _ => {
            // No driver: cancel what the scheduler still holds for this campaign directly.
            if campaign.machine.executor == ExecutorKind::Kubernetes {
                let Ok(plan) = compile(&campaign, None) else {
                    return 1;
                };
                return match crate::steps::kubernetes_executor_for(&plan)
                    .and_then(|mut ex| Ok(ex.delete_campaign_jobs()?))
                {
                    Ok(n) => {
                        println!(
                            "no driver is running; deleted {n} Kubernetes Job(s) of campaign {} (and their pods)",
                            campaign.name
                        );
                        0
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        1
                    }
                };
            }
            if campaign.machine.executor == ExecutorKind::Slurm {
                let Ok(plan) = compile(&campaign, None) else {
                    return 1;
                };
                return match crate::steps::slurm_executor_for(&plan).and_then(|mut ex| {
                    use flow_executors::Executor;
                    let jobs = ex.list_jobs()?;
                    ex.cancel(&[])?;
                    Ok(jobs.len())
                }) {
                    Ok(n) => {
                        println!(
                            "no driver is running; cancelled {n} Slurm job(s) of campaign {}",
                            campaign.name
                        );
                        0
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        1
                    }
                };
            }
            println!("no driver is running for campaign {}", campaign.name);
            0
        }
    }
}

fn recipes_cmd(action: RecipesAction) -> i32 {
    match action {
        RecipesAction::List => {
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
        RecipesAction::Show { name } => {
            match recipes::find_machine(&name, std::env::current_dir().ok().as_deref()) {
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
            println!("root {}", root.path().display());
            let listing = flow_mlip::list_environments(&root);
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
            print!("{}", flow_mlip::render_doctor(&checks));
            let failed = checks
                .iter()
                .any(|c| matches!(c.status, flow_mlip::env_catalog::CheckStatus::Fail));
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
