//! Running pw.x attempts for one structure: the I/O edge of the step.
//!
//! Attempts run one after another in `workdir/attempt-NN/` (`pw.in`, `pw.out`, `pw.err`,
//! scratch in `out/`), through a launcher prefix (none, `mpirun -np N`, `srun`), each with
//! a timeout that kills its whole process group. With a deadline (the task's time limit),
//! `max_seconds` is set to 95% of the time left so pw.x stops cleanly, and the policy's
//! `restart: full` handler continues the calculation from that attempt's outdir. The
//! policy decides every next attempt ([`crate::policy::next_parameters`]); each finished
//! attempt is handed to a callback so the engine can persist it, and a run can resume
//! from a persisted [`History`].

use crate::classify::{classify_attempt, exit_warning, save_write_started, ExitInfo, JOB_DONE};
use crate::error::QeError;
use crate::failure::Failure;
use crate::input::{render_pw_input, PreparedStructure, OUTDIR, PREFIX};
use crate::output::{
    check_structure, highest_band_occupation, observed_values, parse_pw_output, sanitize,
};
use crate::params::Params;
use crate::policy::{
    next_parameters, smearing_added_by_recovery, AttemptRecord, Decision, FatalReport, History,
    RecoveryPolicy, Restart,
};
use crate::results::ScfResult;
use serde_json::Value;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Default fraction of the remaining time given to pw.x as `max_seconds`.
pub const MAX_SECONDS_FRACTION: f64 = 0.95;
/// Highest-band occupation above which an attempt needs more bands.
pub const BAND_OCCUPATION_LIMIT: f64 = 0.005;

/// How attempts are run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// Launcher argv prefix: empty, `["mpirun", "-np", "4"]`, `["srun"]`.
    pub launcher: Vec<String>,
    /// MPI ranks the launcher starts (used to choose `-nk` when a task is prepared).
    pub ranks: u32,
    /// The pw.x program.
    pub pw_command: String,
    /// When the task's allocation ends, if it does.
    pub deadline: Option<Instant>,
    /// A limit per attempt, besides the deadline.
    pub attempt_timeout: Option<Duration>,
    /// Do not start an attempt with less time than this before the deadline.
    pub min_attempt_time: Duration,
    /// Fraction of the time left given to pw.x as `max_seconds` (default 0.95). pw.x checks
    /// it between SCF iterations, so the rest must cover one iteration plus writing files.
    pub max_seconds_fraction: f64,
    /// Largest acceptable |force|, eV/Å.
    pub max_force: f64,
    /// Keep `charge-density.dat` after success.
    pub keep_charge_density: bool,
    /// Keep the last attempt's scratch (wavefunctions, mixing files, charge density) of a
    /// structure the policy gave up on; by default it is removed.
    pub keep_failed_scratch: bool,
    /// Extra environment for pw.x.
    pub env: Vec<(String, String)>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            launcher: vec![],
            ranks: 1,
            pw_command: "pw.x".into(),
            deadline: None,
            attempt_timeout: None,
            min_attempt_time: Duration::from_secs(30),
            max_seconds_fraction: MAX_SECONDS_FRACTION,
            max_force: 1000.0,
            keep_charge_density: false,
            keep_failed_scratch: false,
            env: vec![],
        }
    }
}

impl RunOptions {
    /// Options from the step settings (launcher, ranks and deadline come from the engine).
    pub fn from_settings(settings: &crate::Settings) -> Self {
        RunOptions {
            pw_command: settings.pw_command.clone(),
            max_force: settings.max_force,
            keep_charge_density: settings.keep.charge_density,
            keep_failed_scratch: settings.keep.scratch_on_failure,
            ..Default::default()
        }
    }
}

/// How a structure ended in this call.
#[derive(Debug, Clone, PartialEq)]
pub enum StructureOutcome {
    /// Energy, forces and stress.
    Success(Box<ScfResult>),
    /// The policy gave up.
    Fatal(FatalReport),
    /// The allocation's time ran out before the policy finished; resume from `history`.
    Interrupted {
        /// Everything so far (already handed to the callback attempt by attempt).
        history: History,
        /// Why it stopped.
        reason: String,
    },
}

/// Runs the policy for one structure until success, give-up, or the deadline.
///
/// `history` is empty for a fresh structure (its `initial` is then taken from `prep`) or
/// the persisted history of an earlier allocation. `on_attempt` is called after every
/// attempt. Errors only for things that are not pw.x failures (cannot create directories,
/// cannot render the input); pw.x failures, including a pw.x that cannot start, are
/// attempts classified and handed to the policy.
pub fn run_structure(
    prep: &PreparedStructure,
    policy: &RecoveryPolicy,
    workdir: &Path,
    mut history: History,
    options: &RunOptions,
    on_attempt: &mut dyn FnMut(&AttemptRecord),
) -> Result<StructureOutcome, QeError> {
    if history.initial.is_empty() {
        // attempt 0's parameters follow from the settings alone: a caller that persisted
        // only the attempts gets the same value back
        history.initial = prep.initial.clone();
    }
    std::fs::create_dir_all(workdir).map_err(QeError::io("creating", workdir))?;
    loop {
        let (params, handler, restart) = match next_parameters(policy, &history, &prep.name) {
            Decision::Retry {
                params,
                handler,
                restart,
            } => (params, handler, restart),
            Decision::GiveUp(report) => {
                // fatal.json keeps every attempt's parameters and message; the bulky
                // scratch of the last attempt (earlier ones are gone already) goes
                if !options.keep_failed_scratch {
                    if let Some(d) = history.attempts.last().and_then(|a| a.directory.as_ref()) {
                        remove_scratch(&Path::new(d).join(OUTDIR), false)?;
                    }
                }
                return Ok(StructureOutcome::Fatal(report));
            }
            Decision::Done => return finish_from_history(prep, &history, options),
        };
        let remaining = options
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        if let Some(rem) = remaining {
            if rem < options.min_attempt_time {
                return Ok(StructureOutcome::Interrupted {
                    history,
                    reason: format!(
                        "{:.0} s left in the allocation, less than the {} s an attempt needs",
                        rem.as_secs_f64(),
                        options.min_attempt_time.as_secs()
                    ),
                });
            }
        }
        let n = history.attempts.len() as u32;
        let dir = workdir.join(format!("attempt-{n:02}"));
        if dir.exists() {
            // a half-run attempt from an allocation that ended abruptly
            std::fs::remove_dir_all(&dir).map_err(QeError::io("clearing", &dir))?;
        }
        std::fs::create_dir_all(dir.join(OUTDIR))
            .map_err(QeError::io("creating", dir.join(OUTDIR)))?;

        let mut run_params = params.clone();
        let mut restart = restart;
        if matches!(restart, Restart::ChargeDensity | Restart::Full) {
            let previous = history
                .attempts
                .last()
                .and_then(|a| a.directory.clone())
                .map(PathBuf::from);
            match previous.filter(|p| p.join(OUTDIR).join(format!("{PREFIX}.save")).is_dir()) {
                Some(prev) => {
                    copy_dir(&prev.join(OUTDIR), &dir.join(OUTDIR))?;
                    match restart {
                        Restart::Full => {
                            run_params.insert("restart_mode".into(), Value::from("restart"))
                        }
                        _ => run_params.insert("startingpot".into(), Value::from("file")),
                    };
                }
                None => restart = Restart::None,
            }
        }
        let mut kill_after = options.attempt_timeout;
        if let Some(rem) = remaining {
            let secs = (rem.as_secs_f64() * options.max_seconds_fraction)
                .floor()
                .max(1.0);
            run_params.insert("max_seconds".into(), Value::from(secs as i64));
            kill_after = Some(kill_after.map_or(rem, |t| t.min(rem)));
        }
        let input = render_pw_input(prep, &run_params, &format!("./{OUTDIR}"))?;
        std::fs::write(dir.join("pw.in"), &input)
            .map_err(QeError::io("writing", dir.join("pw.in")))?;

        // `npools` in the parameters (a policy halving -nk) overrides the planned pools
        let pools = params
            .get("npools")
            .and_then(Value::as_u64)
            .map_or(prep.pools, |n| n.clamp(1, u32::MAX as u64) as u32);
        let mut argv = options.launcher.clone();
        argv.push(options.pw_command.clone());
        if pools > 1 {
            argv.extend(["-nk".to_string(), pools.to_string()]);
        }
        argv.extend(["-in".to_string(), "pw.in".to_string()]);
        let started = Instant::now();
        let exec = execute(&argv, &dir, kill_after, &options.env);
        let wall = started.elapsed().as_secs_f64();

        let stdout = read_lossy(&dir.join("pw.out"));
        let stderr = read_lossy(&dir.join("pw.err"));
        // a non-root rank's error is only in CRASH
        let crash = read_lossy(&dir.join("CRASH"));
        let mut observed = observed_values(&stdout);
        observed.insert("npools".into(), Value::from(pools));
        let mut record = AttemptRecord {
            attempt: n,
            parameters: params.clone(),
            handler,
            restart,
            failure: None,
            error_class: None,
            message: None,
            exit_code: None,
            wall_seconds: wall,
            observed,
            directory: Some(dir.display().to_string()),
            warnings: vec![],
        };
        let mut parsed = None;
        let deadline_kill;
        match exec {
            Err(e) => {
                deadline_kill = false;
                record.failure = Some(Failure::LaunchFailed);
                record.message = Some(format!("cannot start `{}`: {e}", argv.join(" ")));
            }
            Ok(exit) => {
                record.exit_code = exit.code;
                deadline_kill = exit.timed_out && remaining.is_some() && kill_after == remaining;
                match classify_attempt(&stdout, &stderr, &crash, exit) {
                    Some(_)
                        if deadline_kill
                            && save_write_started(&stdout)
                            && !stdout.contains(JOB_DONE) =>
                    {
                        record.failure = Some(Failure::WalltimeDuringWrite);
                        record.message = Some("killed at the allocation's time limit while pw.x was writing its save (no `JOB DONE.`): the next attempt starts from scratch".into());
                    }
                    Some(c) => {
                        record.failure = Some(if deadline_kill {
                            Failure::Walltime
                        } else {
                            c.failure
                        });
                        record.message = Some(if deadline_kill {
                            "killed at the allocation's time limit".into()
                        } else {
                            c.message
                        });
                    }
                    None => match check_result(prep, &stdout, &dir, &params, options.max_force) {
                        Ok(out) => {
                            record.warnings.extend(exit_warning(exit));
                            parsed = Some(out);
                        }
                        Err((f, why)) => {
                            record.failure = Some(f);
                            record.message = Some(why);
                        }
                    },
                }
            }
        }
        record.error_class = record.failure.map(Failure::error_class);
        on_attempt(&record);
        history.attempts.push(record);
        // earlier attempts' scratch has served its purpose (the restart copied it)
        for a in &history.attempts[..history.attempts.len() - 1] {
            if let Some(d) = &a.directory {
                let _ = std::fs::remove_dir_all(Path::new(d).join(OUTDIR));
            }
        }
        if let Some(out) = parsed {
            remove_scratch(&dir.join(OUTDIR), options.keep_charge_density)?;
            let smeared = smearing_added_by_recovery(&history, &params);
            return Ok(StructureOutcome::Success(Box::new(ScfResult::new(
                prep,
                out,
                params,
                smeared,
                history.attempts,
            ))));
        }
        if deadline_kill {
            return Ok(StructureOutcome::Interrupted {
                history,
                reason: "the allocation's time limit was reached during an attempt".into(),
            });
        }
    }
}

/// Parses and checks a run that pw.x reports as successful: the result must describe the
/// structure that was sent ([`check_structure`]) and be physical ([`sanitize`]).
fn check_result(
    prep: &PreparedStructure,
    stdout: &str,
    dir: &Path,
    params: &Params,
    max_force: f64,
) -> Result<crate::output::ScfOutput, (Failure, String)> {
    let out = parse_pw_output(stdout).map_err(|e| (Failure::IncompleteOutput, e.0))?;
    check_structure(stdout, &prep.structure).map_err(|why| {
        (
            Failure::StructureMismatch,
            format!("{}: {why}", dir.join("pw.out").display()),
        )
    })?;
    sanitize(&out, max_force)?;
    if params.get("occupations").and_then(Value::as_str) == Some("smearing") {
        let xml = read_lossy(&dir.join(OUTDIR).join(format!("{PREFIX}.xml")));
        if let Some(occ) = highest_band_occupation(&xml) {
            if occ > BAND_OCCUPATION_LIMIT {
                return Err((
                    Failure::HighestBandOccupied,
                    format!("the highest band is occupied ({occ:.4} > {BAND_OCCUPATION_LIMIT}) with nbnd = {}", out.nbnd.map_or("?".into(), |n| n.to_string())),
                ));
            }
        }
    }
    Ok(out)
}

/// The last attempt succeeded in an earlier call whose result was not collected: rebuild
/// the result from its directory.
fn finish_from_history(
    prep: &PreparedStructure,
    history: &History,
    options: &RunOptions,
) -> Result<StructureOutcome, QeError> {
    let last = history.attempts.last();
    let dir = last.and_then(|a| a.directory.clone()).map(PathBuf::from);
    let stdout = dir
        .as_ref()
        .map(|d| read_lossy(&d.join("pw.out")))
        .unwrap_or_default();
    let params = last.map(|a| a.parameters.clone()).unwrap_or_default();
    match parse_pw_output(&stdout) {
        Ok(out)
            if sanitize(&out, options.max_force).is_ok()
                && check_structure(&stdout, &prep.structure).is_ok() =>
        {
            let smeared = smearing_added_by_recovery(history, &params);
            Ok(StructureOutcome::Success(Box::new(ScfResult::new(
                prep,
                out,
                params,
                smeared,
                history.attempts.clone(),
            ))))
        }
        _ => Ok(StructureOutcome::Fatal(FatalReport {
            structure: prep.name.clone(),
            reason:
                "the history says the last attempt succeeded, but its output is gone or unreadable"
                    .into(),
            attempts: history.attempts.clone(),
        })),
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Runs `argv` in `dir` in its own process group, stdout/stderr to `pw.out`/`pw.err`,
/// stdin closed; after `timeout`, SIGTERM to the group, then SIGKILL 3 s later.
pub fn execute(
    argv: &[String],
    dir: &Path,
    timeout: Option<Duration>,
    env: &[(String, String)],
) -> std::io::Result<ExitInfo> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(File::create(dir.join("pw.out"))?)
        .stderr(File::create(dir.join("pw.err"))?)
        // gfortran buffers stdout; an MPI_ABORT after an error would lose pw.x's message
        .env("GFORTRAN_UNBUFFERED_PRECONNECTED", "y")
        .process_group(0);
    // pw.x runs in its own process group (so a timeout can kill all its ranks); should
    // flow die instead, the kernel kills the launcher with it rather than leaving it behind.
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    if std::env::var_os("OMP_NUM_THREADS").is_none() {
        cmd.env("OMP_NUM_THREADS", "1");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let pgid = child.id() as libc::pid_t;
    let started = Instant::now();
    let mut timed_out = false;
    let mut term_sent: Option<Instant> = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Some(t) = timeout {
            if started.elapsed() >= t {
                match term_sent {
                    None => {
                        timed_out = true;
                        // SAFETY: kill(2) on our own child's process group; no memory involved.
                        unsafe { libc::kill(-pgid, libc::SIGTERM) };
                        term_sent = Some(Instant::now());
                    }
                    Some(at) if at.elapsed() >= Duration::from_secs(3) => {
                        // SAFETY: as above.
                        unsafe { libc::kill(-pgid, libc::SIGKILL) };
                    }
                    _ => {}
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if timed_out {
        // make sure no grandchild (MPI ranks) survives the leader
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    Ok(ExitInfo {
        code: status.code(),
        signal: status.signal(),
        timed_out,
    })
}

/// Removes pw.x's bulky scratch from an outdir: `*.wfc*`, `*.mix*`, `*.hub*`, the
/// wavefunction files in `*.save`, and the charge density unless kept. The XML and the
/// pseudopotential copies stay.
pub fn remove_scratch(outdir: &Path, keep_charge_density: bool) -> Result<(), QeError> {
    let entries = match std::fs::read_dir(outdir) {
        Ok(e) => e,
        Err(_) => return Ok(()),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() && name.ends_with(".save") {
            for inner in std::fs::read_dir(&path)
                .map_err(QeError::io("listing", &path))?
                .flatten()
            {
                let n = inner.file_name().to_string_lossy().into_owned();
                let wavefunction =
                    n.starts_with("wfc") && (n.ends_with(".dat") || n.ends_with(".hdf5"));
                let density = n.starts_with("charge-density") && !keep_charge_density;
                if wavefunction || density {
                    std::fs::remove_file(inner.path())
                        .map_err(QeError::io("removing", inner.path()))?;
                }
            }
        } else if name.contains(".wfc") || name.contains(".mix") || name.contains(".hub") {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(QeError::io("removing", &path))?;
            } else {
                std::fs::remove_file(&path).map_err(QeError::io("removing", &path))?;
            }
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), QeError> {
    std::fs::create_dir_all(to).map_err(QeError::io("creating", to))?;
    for entry in std::fs::read_dir(from)
        .map_err(QeError::io("listing", from))?
        .flatten()
    {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(QeError::io("copying to", &target))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;

    #[test]
    fn execute_times_out_and_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let argv: Vec<String> = ["sh", "-c", "sleep 30 & sleep 30"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = Instant::now();
        let exit = execute(&argv, dir.path(), Some(Duration::from_millis(200)), &[]).unwrap();
        assert!(exit.timed_out);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(classify("", "", exit).unwrap().failure, Failure::Timeout);
    }

    #[test]
    fn execute_reports_exit_codes_and_missing_programs() {
        let dir = tempfile::tempdir().unwrap();
        let argv: Vec<String> = ["sh", "-c", "echo hi; echo err >&2; exit 3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let exit = execute(&argv, dir.path(), None, &[]).unwrap();
        assert_eq!(exit.code, Some(3));
        assert_eq!(read_lossy(&dir.path().join("pw.out")), "hi\n");
        assert_eq!(read_lossy(&dir.path().join("pw.err")), "err\n");
        assert!(execute(&["/nonexistent/pw.x".to_string()], dir.path(), None, &[]).is_err());
    }

    #[test]
    fn scratch_removal_keeps_small_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::create_dir_all(out.join("pwscf.save")).unwrap();
        for f in [
            "pwscf.wfc1",
            "pwscf.mix1",
            "pwscf.hub1",
            "pwscf.xml",
            "pwscf.save/wfc1.dat",
            "pwscf.save/charge-density.dat",
            "pwscf.save/data-file-schema.xml",
        ] {
            std::fs::write(out.join(f), "x").unwrap();
        }
        remove_scratch(out, true).unwrap();
        assert!(
            !out.join("pwscf.wfc1").exists()
                && !out.join("pwscf.mix1").exists()
                && !out.join("pwscf.hub1").exists()
        );
        assert!(!out.join("pwscf.save/wfc1.dat").exists());
        assert!(out.join("pwscf.save/charge-density.dat").exists());
        assert!(
            out.join("pwscf.xml").exists() && out.join("pwscf.save/data-file-schema.xml").exists()
        );
        remove_scratch(out, false).unwrap();
        assert!(!out.join("pwscf.save/charge-density.dat").exists());
    }
}
