//! Running one [`TaskLaunch`] to completion: the body of `flow task run-manifest` inside a
//! Slurm array element or a pod, and of every local worker.
//!
//! The process gets its own process group (so a timeout or a cancel kills everything it
//! started), stdout and stderr go to the attempt's log files, and the outcome is written
//! to `result_path` by atomic rename, so a reader never sees half a result.
//!
//! Logs are bounded: while the process lives, a watcher thread checks each log every
//! 250 ms and, past the limit (`FLOW_LOG_LIMIT` in the launch's environment, from the
//! step's `execution.max_log_size`; [`DEFAULT_LOG_LIMIT`] otherwise), copies it to
//! `<log>.1` (replacing an older part) and truncates it; the task keeps appending (the log
//! is opened `O_APPEND`). A log never holds much more than the limit plus 250 ms of output,
//! and the disk holds at most about twice the limit per stream.

use crate::launch::{AttemptOutcome, TaskLaunch};
use flow_dsl::error_class::ErrorClass;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The launch environment variable that carries a step's log limit in bytes.
pub const LOG_LIMIT_VAR: &str = "FLOW_LOG_LIMIT";
/// Bytes a log may reach before it is rotated, when the step does not say.
pub const DEFAULT_LOG_LIMIT: u64 = 64 * 1024 * 1024;

/// The log limit of a launch.
pub fn log_limit(launch: &TaskLaunch) -> u64 {
    launch
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == LOG_LIMIT_VAR)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(DEFAULT_LOG_LIMIT)
}

/// Rotate `path` when it is larger than `limit`: its content becomes `<path>.1` and it
/// starts again empty, with a line saying so. Returns whether it rotated.
pub fn rotate_log(path: &Path, limit: u64) -> std::io::Result<bool> {
    let len = fs::metadata(path)?.len();
    if len <= limit {
        return Ok(false);
    }
    let mut old = path.as_os_str().to_os_string();
    old.push(".1");
    fs::copy(path, &old)?;
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(0)?;
    let mut f = OpenOptions::new().append(true).open(path)?;
    writeln!(
        f,
        "[flow: this log passed {limit} bytes; the part before is in {}]",
        Path::new(&old).display()
    )?;
    Ok(true)
}

/// Watch the logs of process `pid` until it is gone, rotating them past `limit`.
fn watch_logs(pid: u32, paths: [std::path::PathBuf; 2], limit: u64) {
    let _ = std::thread::Builder::new()
        .name("flow-log-limit".into())
        .spawn(move || loop {
            // SAFETY: kill(2) with signal 0 only checks that the process exists.
            let alive = unsafe { libc::kill(pid as i32, 0) } == 0;
            for p in &paths {
                let _ = rotate_log(p, limit);
            }
            if !alive {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        });
}

fn open_log(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Start the launch's process in its own process group with its logs attached.
pub fn spawn(launch: &TaskLaunch, extra_env: &[(String, String)]) -> std::io::Result<Child> {
    let (program, args) = launch
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"))?;
    fs::create_dir_all(&launch.workdir)?;
    let stdout = open_log(&launch.stdout_path)?;
    let stderr = open_log(&launch.stderr_path)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&launch.workdir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .env("FLOW_TASK_ID", &launch.task_id)
        .env("FLOW_ATTEMPT", launch.attempt.to_string())
        .env("FLOW_RESULT_FILE", &launch.result_path);
    for (k, v) in launch.env.iter().chain(extra_env) {
        cmd.env(k, v);
    }
    let child = cmd.spawn()?;
    watch_logs(
        child.id(),
        [launch.stdout_path.clone(), launch.stderr_path.clone()],
        log_limit(launch),
    );
    Ok(child)
}

/// Signal a whole process group (negative pid); errors (already gone) are ignored.
pub fn kill_group(pgid: u32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
        unsafe {
            libc::kill(-(pgid as i32), signal);
        }
    }
}

/// Whether a process group still has members.
pub fn group_alive(pgid: u32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(-(pgid as i32), 0) == 0 }
}

/// Translate an exit status into an outcome.
pub fn outcome_of(
    status: ExitStatus,
    timed_out: bool,
    cancelled: bool,
    started: f64,
) -> AttemptOutcome {
    let (error_class, message) = if cancelled {
        (Some(ErrorClass::Cancelled), Some("cancelled".to_string()))
    } else if timed_out {
        (
            Some(ErrorClass::Timeout),
            Some("killed after its timeout".to_string()),
        )
    } else if let Some(sig) = status.signal() {
        let class = if sig == libc::SIGKILL {
            // An unexpected SIGKILL is most often the kernel's OOM killer.
            ErrorClass::OutOfMemory
        } else {
            ErrorClass::Signal
        };
        (Some(class), Some(format!("killed by signal {sig}")))
    } else if status.code() == Some(0) {
        (None, None)
    } else {
        let code = status.code().unwrap_or(-1);
        let class = match code {
            126 | 127 => ErrorClass::LaunchFailed,
            137 => ErrorClass::OutOfMemory,
            _ => ErrorClass::NonzeroExit,
        };
        (Some(class), Some(format!("exit status {code}")))
    };
    AttemptOutcome {
        exit_code: status.code(),
        signal: status.signal(),
        error_class,
        message,
        started_at: Some(started),
        ended_at: Some(now()),
    }
}

/// Write an outcome as JSON to `path` by temp file + rename.
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

/// Read a result file; `None` when absent or unreadable (e.g. written by a shell trap
/// that was interrupted). A shell-written result carries only `exit_code`.
pub fn read_result(path: &Path) -> Option<AttemptOutcome> {
    let text = fs::read_to_string(path).ok()?;
    if !text.ends_with('\n') {
        return None;
    }
    if let Ok(o) = serde_json::from_str::<AttemptOutcome>(&text) {
        return Some(o);
    }
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let code = v.get("exit_code")?.as_i64()? as i32;
    Some(AttemptOutcome {
        exit_code: Some(code),
        signal: None,
        error_class: (code != 0).then_some(ErrorClass::NonzeroExit),
        message: (code != 0).then(|| format!("exit status {code}")),
        started_at: None,
        ended_at: None,
    })
}

/// Run a launch to completion in this process (blocking), honour its timeout, write its
/// result file, and return the outcome.
pub fn run_to_completion(launch: &TaskLaunch) -> AttemptOutcome {
    let started = now();
    let mut child = match spawn(launch, &[]) {
        Ok(c) => c,
        Err(e) => {
            let outcome = AttemptOutcome {
                exit_code: None,
                signal: None,
                error_class: Some(ErrorClass::LaunchFailed),
                message: Some(format!("cannot start {:?}: {e}", launch.argv.first())),
                started_at: Some(started),
                ended_at: Some(now()),
            };
            let _ = write_result(&launch.result_path, &outcome);
            return outcome;
        }
    };
    let pgid = child.id();
    let deadline = launch.timeout.map(|t| std::time::Instant::now() + t);
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(_) => break ExitStatus::from_raw(1 << 8),
        }
        if let Some(d) = deadline {
            if std::time::Instant::now() >= d && !timed_out {
                timed_out = true;
                kill_group(pgid, libc::SIGTERM);
                std::thread::sleep(Duration::from_millis(500));
                kill_group(pgid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    kill_group(pgid, libc::SIGKILL);
    let outcome = outcome_of(status, timed_out, false, started);
    let _ = write_result(&launch.result_path, &outcome);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(dir: &Path, script: &str, timeout: Option<Duration>) -> TaskLaunch {
        TaskLaunch {
            task_id: "t1".into(),
            attempt: 1,
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![("GREETING".into(), "hi there".into())],
            workdir: dir.to_path_buf(),
            stdout_path: dir.join("logs/out"),
            stderr_path: dir.join("logs/err"),
            result_path: dir.join("results/t1.json"),
            writes_result: false,
            timeout,
        }
    }

    #[test]
    fn runs_and_records_success_and_failure() {
        let dir = tempfile::tempdir().unwrap();
        let o = run_to_completion(&launch(dir.path(), "echo \"$GREETING\"", None));
        assert!(o.succeeded(), "{o:?}");
        assert_eq!(
            fs::read_to_string(dir.path().join("logs/out")).unwrap(),
            "hi there\n"
        );
        assert_eq!(
            read_result(&dir.path().join("results/t1.json"))
                .unwrap()
                .exit_code,
            Some(0)
        );
        let o = run_to_completion(&launch(dir.path(), "exit 3", None));
        assert_eq!(o.error_class, Some(ErrorClass::NonzeroExit));
        assert_eq!(o.exit_code, Some(3));
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = std::time::Instant::now();
        let o = run_to_completion(&launch(
            dir.path(),
            "sleep 30 & sleep 30; wait",
            Some(Duration::from_millis(300)),
        ));
        assert_eq!(o.error_class, Some(ErrorClass::Timeout));
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn logs_past_their_limit_are_rotated() {
        let dir = tempfile::tempdir().unwrap();
        // 3 MB in 64 KiB writes over about a second, with a 1 MiB limit.
        let mut l = launch(
            dir.path(),
            "i=0; while [ $i -lt 48 ]; do head -c 65536 /dev/zero | tr '\\0' x; i=$((i+1)); sleep 0.02; done",
            None,
        );
        l.env
            .push((LOG_LIMIT_VAR.into(), (1024 * 1024).to_string()));
        let o = run_to_completion(&l);
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        std::thread::sleep(Duration::from_millis(400));
        let out = fs::metadata(dir.path().join("logs/out")).unwrap().len();
        let part = fs::metadata(dir.path().join("logs/out.1")).unwrap().len();
        assert!(out <= 2 * 1024 * 1024, "the log holds {out} bytes");
        assert!(part <= 2 * 1024 * 1024, "the old part holds {part} bytes");
        assert!(fs::read_to_string(dir.path().join("logs/out"))
            .unwrap()
            .starts_with("[flow: this log passed 1048576 bytes"));
    }

    #[test]
    fn missing_program_is_launch_failed() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = launch(dir.path(), "", None);
        l.argv = vec!["/nonexistent/program".into()];
        assert_eq!(
            run_to_completion(&l).error_class,
            Some(ErrorClass::LaunchFailed)
        );
    }
}
