//! The one timeout enforcer: flow's own per-task timeout (`TaskLaunch::timeout`,
//! `execution.timeout`), for the local executor's workers and for `flow task run-manifest`
//! (Slurm array elements, Kubernetes pods), which both run attempts through
//! [`crate::task_runner::spawn`].
//!
//! The rule: when an attempt's timeout expires, its process group gets SIGTERM, then
//! SIGKILL [`KILL_GRACE`] later if the attempt has not been reaped by then (the attempt's
//! waiter calls [`disarm`] as soon as `wait` returns); the attempt is then a `timeout`,
//! whatever its exit status says. Deadlines are checked every [`TICK`] by one thread per
//! process, started on first use, so no waiter polls and no thread is spent per task.

use crate::process_group::kill_tree;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Time between SIGTERM and SIGKILL for an attempt past its timeout.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How often deadlines are checked (how late a timeout may fire).
pub const TICK: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Deadline {
    pgid: u32,
    at: Instant,
    /// When SIGTERM was sent.
    fired: Option<Instant>,
    killed: bool,
}

static DEADLINES: Mutex<Vec<Deadline>> = Mutex::new(Vec::new());
static ENFORCER: Once = Once::new();

fn deadlines() -> std::sync::MutexGuard<'static, Vec<Deadline>> {
    DEADLINES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kill process group `pgid` when `timeout` has passed (see the module documentation).
/// Call [`disarm`] once the attempt was reaped.
pub fn arm(pgid: u32, timeout: Duration) {
    deadlines().push(Deadline {
        pgid,
        at: Instant::now() + timeout,
        fired: None,
        killed: false,
    });
    ENFORCER.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("flow-timeouts".into())
            .spawn(|| loop {
                std::thread::sleep(TICK);
                enforce(Instant::now());
            });
    });
}

/// Stop watching process group `pgid`. Returns whether its timeout fired (the attempt is
/// then a `timeout`). Harmless for a group that was never armed.
pub fn disarm(pgid: u32) -> bool {
    let mut d = deadlines();
    let fired = d.iter().any(|x| x.pgid == pgid && x.fired.is_some());
    d.retain(|x| x.pgid != pgid);
    fired
}

/// One round of the enforcer at `now`: SIGTERM to groups past their deadline, SIGKILL to
/// those still armed [`KILL_GRACE`] after it.
fn enforce(now: Instant) {
    let mut term = Vec::new();
    let mut kill = Vec::new();
    for d in deadlines().iter_mut() {
        match d.fired {
            None if d.at <= now => {
                d.fired = Some(now);
                term.push(d.pgid);
            }
            Some(at) if !d.killed && now.saturating_duration_since(at) >= KILL_GRACE => {
                d.killed = true;
                kill.push(d.pgid);
            }
            _ => {}
        }
    }
    for pgid in term {
        kill_tree(pgid, libc::SIGTERM);
    }
    for pgid in kill {
        kill_tree(pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_group::kill_group;
    use std::os::unix::process::CommandExt;

    #[test]
    fn a_group_that_ignores_sigterm_is_killed_after_the_grace() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "trap '' TERM; sleep 30 & sleep 30; wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id();
        let t0 = Instant::now();
        arm(pgid, Duration::from_millis(100));
        let status = child.wait().unwrap();
        let waited = t0.elapsed();
        assert!(disarm(pgid), "the timeout fired");
        assert!(!status.success());
        assert!(
            waited >= KILL_GRACE && waited < KILL_GRACE + Duration::from_secs(5),
            "killed after {waited:?}"
        );
        kill_group(pgid, libc::SIGKILL);
    }

    #[test]
    fn a_disarmed_group_is_left_alone() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 0.5"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id();
        arm(pgid, Duration::from_secs(60));
        assert!(child.wait().unwrap().success());
        assert!(!disarm(pgid));
        assert!(!disarm(pgid), "disarming twice is harmless");
    }
}
