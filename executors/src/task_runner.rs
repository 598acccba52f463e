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

use crate::launch::{AttemptOutcome, ResourceUsage, TaskLaunch};
pub use crate::process_group::{group_alive, kill_group};
pub use crate::result_document::{add_usage_to_result, write_result};
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

/// A process whose logs are watched, and its limit.
struct Watched {
    pid: u32,
    paths: [std::path::PathBuf; 2],
    limit: u64,
}

/// The processes whose logs the one watcher thread rotates.
static WATCHED: std::sync::Mutex<Vec<Watched>> = std::sync::Mutex::new(Vec::new());
static WATCHER: std::sync::Once = std::sync::Once::new();

/// Watch the logs of process `pid` until it is gone, rotating them past `limit`. One
/// thread of the process watches every task's logs every 250 ms (a thread per task would
/// cost a thread start per task and hundreds of sleeping threads).
fn watch_logs(pid: u32, paths: [std::path::PathBuf; 2], limit: u64) {
    if let Ok(mut w) = WATCHED.lock() {
        w.push(Watched { pid, paths, limit });
    }
    WATCHER.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("flow-log-limit".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_millis(250));
                let watched: Vec<(u32, [std::path::PathBuf; 2], u64)> = match WATCHED.lock() {
                    Ok(w) => w
                        .iter()
                        .map(|w| (w.pid, w.paths.clone(), w.limit))
                        .collect(),
                    Err(_) => return,
                };
                let mut gone = Vec::new();
                for (pid, paths, limit) in &watched {
                    // SAFETY: kill(2) with signal 0 only checks that the process exists.
                    let alive = unsafe { libc::kill(*pid as i32, 0) } == 0;
                    for p in paths {
                        let _ = rotate_log(p, *limit);
                    }
                    if !alive {
                        gone.push((*pid, paths[0].clone()));
                    }
                }
                if let Ok(mut w) = WATCHED.lock() {
                    w.retain(|w| {
                        !gone
                            .iter()
                            .any(|(pid, p)| *pid == w.pid && *p == w.paths[0])
                    });
                }
            });
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

/// Reap `pid` with `wait4` and return its exit status and the rusage of its process tree
/// (the process and every descendant it waited for). Blocks unless `nohang`, in which case
/// `Ok(None)` means it is still running. Only for a child that nothing else reaps: after
/// this, `std::process::Child::wait` on it would fail.
pub fn wait_with_usage(
    pid: u32,
    nohang: bool,
) -> std::io::Result<Option<(ExitStatus, ResourceUsage)>> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: zeroed rusage is a valid value; wait4 writes status and rusage only.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if nohang { libc::WNOHANG } else { 0 };
        // SAFETY: plain syscall on our own child with pointers to live locals.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, flags, &mut ru) };
        if r == pid as libc::pid_t {
            return Ok(Some((
                ExitStatus::from_raw(status),
                ResourceUsage::from_rusage(&ru),
            )));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// How many processes the kernel's out-of-memory killer has killed in this process's
/// memory cgroup and below, when the system says: cgroup v2 `memory.events`, or v1
/// `memory.oom_control` (where a container sees its own cgroup as the mount's root).
pub fn oom_kill_count() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let counter = |file: String, key: &str| {
        std::fs::read_to_string(file).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|n| n.trim().parse().ok())
        })
    };
    let v1 = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    });
    if let Some(path) = v1 {
        return counter(
            format!("/sys/fs/cgroup/memory{path}/memory.oom_control"),
            "oom_kill ",
        )
        .or_else(|| {
            counter(
                "/sys/fs/cgroup/memory/memory.oom_control".into(),
                "oom_kill ",
            )
        });
    }
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    counter(
        format!(
            "/sys/fs/cgroup{}/memory.events",
            path.trim().trim_end_matches('/')
        ),
        "oom_kill ",
    )
}

/// An attempt killed by SIGKILL (or a shell reporting 137): the out-of-memory killer only
/// when the cgroup's OOM count rose while it ran (`oom_before`, taken at its start);
/// otherwise a signal, said without guessing.
fn sigkill_class(oom_before: Option<u64>) -> (ErrorClass, &'static str) {
    match (oom_before, oom_kill_count()) {
        (Some(before), Some(after)) if after > before => (
            ErrorClass::OutOfMemory,
            " (the kernel's out-of-memory killer: its cgroup counted an OOM kill while it ran)",
        ),
        (Some(_), Some(_)) => (
            ErrorClass::Signal,
            " (SIGKILL, not from the out-of-memory killer: its cgroup counted no OOM kill)",
        ),
        _ => (
            ErrorClass::Signal,
            " (SIGKILL: sent by a process, or the kernel's out-of-memory killer; this system does not say which)",
        ),
    }
}

/// Translate an exit status into an outcome. `oom_before` is [`oom_kill_count`] when the
/// attempt started.
pub fn outcome_of(
    status: ExitStatus,
    timed_out: bool,
    cancelled: bool,
    started: f64,
    oom_before: Option<u64>,
) -> AttemptOutcome {
    let (error_class, message) = if cancelled {
        (Some(ErrorClass::Cancelled), Some("cancelled".to_string()))
    } else if timed_out {
        (
            Some(ErrorClass::Timeout),
            Some("killed after its timeout".to_string()),
        )
    } else if let Some(sig) = status.signal() {
        let (class, why) = if sig == libc::SIGKILL {
            sigkill_class(oom_before)
        } else {
            (ErrorClass::Signal, "")
        };
        (Some(class), Some(format!("killed by signal {sig}{why}")))
    } else if status.code() == Some(0) {
        (None, None)
    } else {
        let code = status.code().unwrap_or(-1);
        let (class, why) = match code {
            126 | 127 => (ErrorClass::LaunchFailed, ""),
            137 => match sigkill_class(oom_before) {
                (ErrorClass::OutOfMemory, why) => (ErrorClass::OutOfMemory, why),
                // A shell's 137 with no OOM kill counted: its program was killed by a signal.
                (_, why) => (ErrorClass::NonzeroExit, why),
            },
            _ => (ErrorClass::NonzeroExit, ""),
        };
        (Some(class), Some(format!("exit status {code}{why}")))
    };
    AttemptOutcome {
        exit_code: status.code(),
        signal: status.signal(),
        error_class,
        message,
        started_at: Some(started),
        ended_at: Some(now()),
        usage: None,
    }
}

/// The outcome in a result file, if it is complete and a result (the rule is
/// [`crate::result_document`]'s); `None` when absent, still being written, or unreadable.
pub fn read_result(path: &Path) -> Option<AttemptOutcome> {
    crate::result_document::read_result(path)?.ok()
}

/// Run a launch to completion in this process (blocking), honour its timeout (through
/// [`crate::timeout`]), write its result file, and return the outcome.
pub fn run_to_completion(launch: &TaskLaunch) -> AttemptOutcome {
    let started = now();
    let oom_before = oom_kill_count();
    let spawner_rss_kib = ResourceUsage::own_peak_rss_kib();
    let child = match spawn(launch, &[]) {
        Ok(c) => c,
        Err(e) => {
            let outcome = AttemptOutcome {
                exit_code: None,
                signal: None,
                error_class: Some(ErrorClass::LaunchFailed),
                message: Some(format!(
                    "cannot start {}: {e}",
                    launch.argv.first().map_or("(no program)", String::as_str)
                )),
                started_at: Some(started),
                ended_at: Some(now()),
                usage: None,
            };
            let _ = write_result(&launch.result_path, &outcome);
            return outcome;
        }
    };
    let pgid = child.id();
    if let Some(t) = launch.timeout {
        crate::timeout::arm(pgid, t);
    }
    let waited = wait_with_usage(pgid, false);
    let timed_out = crate::timeout::disarm(pgid);
    let (status, usage) = match waited {
        Ok(Some((status, usage))) => (
            status,
            Some(ResourceUsage {
                spawner_rss_kib,
                ..usage
            }),
        ),
        Ok(None) | Err(_) => (ExitStatus::from_raw(1 << 8), None),
    };
    kill_group(pgid, libc::SIGKILL);
    drop(child); // reaped by wait4 above
    let mut outcome = outcome_of(status, timed_out, false, started, oom_before);
    outcome.usage = usage;
    // A program that writes its own result (flow's typed runner: a qe-scf policy that ran
    // out of time says `walltime`, with its details) keeps it; the exit status would say
    // only "exit status 1". flow's own timeout, which killed it, still decides.
    if launch.writes_result && !launch.status_by_trap && !timed_out {
        if let Some(own) = read_result(&launch.result_path) {
            if let Some(u) = &outcome.usage {
                let _ = crate::result_document::add_usage_to_result(&launch.result_path, u);
            }
            return AttemptOutcome {
                usage: own.usage.clone().or(outcome.usage),
                ..own
            };
        }
    }
    let _ = write_result(&launch.result_path, &outcome);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program that writes its own result (flow's typed runner) keeps it: the exit
    /// status does not overwrite its class and details (a qe-scf walltime read as
    /// "nonzero-exit" under Slurm before).
    #[test]
    fn a_result_the_program_wrote_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = launch(dir.path(), "true", None);
        let own = r#"{"exit_code":null,"signal":null,"error_class":"walltime","message":"the allocation ended mid-policy","started_at":1.0,"ended_at":2.0,"details":{"interrupted":"x"}}"#;
        l.argv = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!(
                "mkdir -p results; printf '%s\\n' '{own}' > {}; exit 1",
                l.result_path.display()
            ),
        ];
        l.writes_result = true;
        l.status_by_trap = false;
        let outcome = run_to_completion(&l);
        assert_eq!(
            outcome.error_class,
            Some(ErrorClass::Walltime),
            "{outcome:?}"
        );
        let text = std::fs::read_to_string(&l.result_path).unwrap();
        assert!(text.contains("\"interrupted\""), "{text}");
        assert!(text.contains("\"usage\""), "{text}");
    }

    /// A SIGKILL that no OOM kill explains is a signal, not "out of memory" (a task killed
    /// by `kill -9` was reported as OOM before).
    #[test]
    fn a_sigkill_without_an_oom_kill_is_a_signal() {
        let dir = tempfile::tempdir().unwrap();
        let l = launch(dir.path(), "kill -9 $$", None);
        let outcome = run_to_completion(&l);
        assert_eq!(outcome.signal, Some(libc::SIGKILL), "{outcome:?}");
        assert_eq!(outcome.error_class, Some(ErrorClass::Signal), "{outcome:?}");
        assert!(
            outcome.message.as_deref().unwrap_or("").contains("SIGKILL"),
            "{outcome:?}"
        );
        if oom_kill_count().is_none() {
            eprintln!("note: this system reports no OOM count; the message says so");
        }
    }

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
            status_by_trap: false,
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
    fn a_shell_written_exit_status_reads_as_a_failure_with_or_without_usage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        fs::write(&path, "{\"exit_code\":3}\n").unwrap();
        let o = read_result(&path).unwrap();
        assert_eq!(o.error_class, Some(ErrorClass::NonzeroExit), "{o:?}");
        let usage = ResourceUsage {
            max_rss_kib: Some(1024),
            user_cpu_s: Some(0.5),
            system_cpu_s: Some(0.25),
            source: "rusage".into(),
            spawner_rss_kib: None,
        };
        add_usage_to_result(&path, &usage).unwrap();
        let o = read_result(&path).unwrap();
        assert_eq!(o.error_class, Some(ErrorClass::NonzeroExit), "{o:?}");
        assert_eq!(o.exit_code, Some(3));
        assert_eq!(o.usage, Some(usage));
        fs::write(&path, "{\"exit_code\":0}\n").unwrap();
        assert!(read_result(&path).unwrap().succeeded());
    }

    #[test]
    fn peak_memory_and_cpu_time_of_the_process_tree_are_measured() {
        let dir = tempfile::tempdir().unwrap();
        // A grandchild (python under sh) touches 200 MiB and burns some CPU.
        let script = "python3 -c 'n = 200 * 1024 * 1024; b = bytearray(n); b[::4096] = b\"x\" * (n // 4096); sum(range(3000000))'; true";
        let o = run_to_completion(&launch(dir.path(), script, None));
        assert!(o.succeeded(), "{o:?}");
        let usage = o.usage.expect("usage measured");
        let mib = usage.max_rss_kib.unwrap() as f64 / 1024.0;
        assert!((200.0..400.0).contains(&mib), "peak {mib} MiB for 200 MiB");
        assert!(usage.cpu_s().unwrap() > 0.05, "{usage:?}");
        assert_eq!(usage.source, "rusage");
        // The result file carries it too (what Slurm and pods hand back).
        let back = read_result(&dir.path().join("results/t1.json")).unwrap();
        assert_eq!(back.usage.unwrap().max_rss_kib, usage.max_rss_kib);
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
