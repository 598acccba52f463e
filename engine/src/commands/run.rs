//! `flow run FILE [--detach] [--reset-state]`.

use super::common::{load, warn_about_secrets};
use super::{CommandResult, FlowError};
use crate::cli::ExecutorArg;
use crate::layout::Layout;
use crate::scheduler::{self, state_location, RunOptions};
use flow_dsl::model::ExecutorKind;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

pub fn run_campaign(
    file: &Path,
    executor: Option<ExecutorKind>,
    state_dir: Option<PathBuf>,
) -> CommandResult {
    let campaign = load(file)?;
    warn_about_secrets(&campaign);
    let opts = RunOptions {
        executor,
        state_dir,
        plain_progress: !std::io::stderr().is_terminal(),
        quiet: false,
    };
    let summary = scheduler::run(&campaign, &opts)?;
    println!(
        "{}: {} succeeded ({} already done), {} failed, {} blocked, {} cancelled of {} tasks",
        campaign.name,
        summary.succeeded,
        summary.skipped,
        summary.failed,
        summary.blocked,
        summary.cancelled,
        summary.total
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
    Ok(i32::from(!summary.ok()))
}

/// `flow run --detach`: the driver as a process of its own session, its output in the
/// campaign's driver log.
pub fn detach_run(
    file: &Path,
    executor: Option<ExecutorArg>,
    state_dir: Option<PathBuf>,
) -> CommandResult {
    use std::os::unix::process::CommandExt;
    let campaign = load(file)?;
    let layout = Layout::new(&campaign.campaign_dir);
    std::fs::create_dir_all(layout.metadata()).map_err(|e| {
        FlowError::msg(format!(
            "cannot create {}: {e}",
            layout.metadata().display()
        ))
    })?;
    let exe = std::env::current_exe()
        .map_err(|e| FlowError::msg(format!("cannot find the flow binary: {e}")))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(layout.driver_log())
        .map_err(|e| {
            FlowError::msg(format!(
                "cannot open {}: {e}",
                layout.driver_log().display()
            ))
        })?;
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
    let child = cmd
        .spawn()
        .map_err(|e| FlowError::msg(format!("cannot start the driver: {e}")))?;
    let _ = std::fs::write(layout.driver_pid(), format!("{}\n", child.id()));
    println!(
        "driver running as pid {} (log: {}); follow it with `flow status {} --watch`",
        child.id(),
        layout.driver_log().display(),
        file.display()
    );
    Ok(0)
}

/// `flow run --reset-state`: set the state database aside, if there is one.
pub fn reset_state_db(file: &Path, state_dir: Option<&PathBuf>) -> Result<(), FlowError> {
    let campaign = load(file)?;
    let layout = Layout::new(&campaign.campaign_dir);
    let (db, _) = state_location(&layout, state_dir);
    if let Some(aside) = crate::state::set_aside(&db)? {
        eprintln!(
            "note: the state database {} was set aside as {}; the state starts over",
            db.display(),
            aside.display()
        );
    }
    Ok(())
}
