//! A build lock that works across the nodes of a shared file system.
//!
//! `flock` may be node-local on Lustre/GPFS, so the lock is a file created with `O_EXCL`
//! (atomic on NFSv3+, Lustre and GPFS) holding the holder's host, pid and start time. A lock is
//! stale when its holder is on this host and its pid is gone, or when it is older than
//! `stale_after` (a holder on another node cannot be probed). Takeover renames the stale file to
//! a unique name, checks that what it moved is the file it judged stale (restoring it otherwise)
//! and retries the exclusive create, so two takers cannot both win.

use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{io_error, MlipError};

/// Who holds a lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Host name of the holder.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// Seconds since the Unix epoch when the lock was taken.
    pub since_unix: u64,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} since unix time {}",
            self.pid, self.host, self.since_unix
        )
    }
}

/// What to do about an existing lock (pure decision; see [`judge_lock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// The holder may still be working: wait.
    Live,
    /// The holder is gone or the lock is too old: take it over.
    Stale,
}

/// Decides whether a lock is stale. `holder` is `None` when the file could not be parsed (a
/// holder that crashed mid-write): then only age counts, measured from `file_age`.
/// `pid_alive` is consulted only for holders on `this_host`.
pub fn judge_lock(
    holder: Option<&LockHolder>,
    file_age: Duration,
    now_unix: u64,
    this_host: &str,
    stale_after: Duration,
    pid_alive: impl Fn(u32) -> bool,
) -> LockState {
    let age = match holder {
        Some(h) => {
            if h.host == this_host && !pid_alive(h.pid) {
                return LockState::Stale;
            }
            Duration::from_secs(now_unix.saturating_sub(h.since_unix))
        }
        None => file_age,
    };
    if age > stale_after {
        LockState::Stale
    } else {
        LockState::Live
    }
}

/// A held lock; the file is removed when this is dropped.
#[derive(Debug)]
pub struct BuildLock {
    path: PathBuf,
    holder: LockHolder,
}

impl BuildLock {
    /// Takes the lock at `path`, waiting (polling every 200 ms) while a live holder has it, and
    /// taking over stale locks. Errors: [`MlipError::LockTimeout`] after `wait_for`, and
    /// [`MlipError::Io`] when the directory is not writable.
    pub fn acquire(
        path: &Path,
        stale_after: Duration,
        wait_for: Duration,
    ) -> Result<BuildLock, MlipError> {
        let started = Instant::now();
        let holder = LockHolder {
            host: host_name(),
            pid: std::process::id(),
            since_unix: now_unix(),
        };
        let content = serde_json::to_string(&holder).unwrap_or_default();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    file.write_all(content.as_bytes())
                        .map_err(io_error("writing lock", path))?;
                    file.sync_all().map_err(io_error("syncing lock", path))?;
                    return Ok(BuildLock {
                        path: path.to_path_buf(),
                        holder,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error("creating lock", path)(e)),
            }
            let Some((seen_text, seen)) = read_lock(path) else {
                continue;
            };
            let age = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            let state = judge_lock(
                seen.as_ref(),
                age,
                now_unix(),
                &holder.host,
                stale_after,
                pid_alive,
            );
            if state == LockState::Stale {
                take_over(path, &seen_text);
                continue;
            }
            if started.elapsed() >= wait_for {
                return Err(MlipError::LockTimeout {
                    path: path.to_path_buf(),
                    holder: seen
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "an unreadable holder".into()),
                    waited_s: started.elapsed().as_secs_f64(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Who holds it (this process).
    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        // Remove only our own lock: after a takeover the file may belong to someone else.
        if let Some((_, Some(h))) = read_lock(&self.path) {
            if h == self.holder {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Reads a lock file: `None` when it vanished meanwhile, `Some((text, None))` when unparsable.
fn read_lock(path: &Path) -> Option<(String, Option<LockHolder>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let holder = serde_json::from_str(&text).ok();
    Some((text, holder))
}

fn take_over(path: &Path, stale_text: &str) {
    let aside = path.with_extension(format!("stale-{}-{}", std::process::id(), now_nanos()));
    if std::fs::rename(path, &aside).is_err() {
        return; // someone else moved it first; retry the create
    }
    let moved = std::fs::read_to_string(&aside).unwrap_or_default();
    if moved != stale_text {
        // We moved a fresh lock another taker had just created: put it back if the slot is free.
        let _ = std::fs::hard_link(&aside, path);
    }
    let _ = std::fs::remove_file(&aside);
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// This machine's host name (`unknown-host` if the system will not say).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates when it fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission; it sends nothing.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(host: &str, pid: u32, since: u64) -> LockHolder {
        LockHolder {
            host: host.into(),
            pid,
            since_unix: since,
        }
    }
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn judging() {
        let alive = |_| true;
        let dead = |_| false;
        let h = holder("n1", 7, 1000);
        assert_eq!(
            judge_lock(Some(&h), Duration::ZERO, 1010, "n1", HOUR, alive),
            LockState::Live
        );
        assert_eq!(
            judge_lock(Some(&h), Duration::ZERO, 1010, "n1", HOUR, dead),
            LockState::Stale
        );
        // Another node's holder is never probed, only aged.
        assert_eq!(
            judge_lock(Some(&h), Duration::ZERO, 1010, "n2", HOUR, dead),
            LockState::Live
        );
        assert_eq!(
            judge_lock(Some(&h), Duration::ZERO, 1000 + 3601, "n2", HOUR, alive),
            LockState::Stale
        );
        assert_eq!(
            judge_lock(None, Duration::from_secs(5), 0, "n1", HOUR, alive),
            LockState::Live
        );
        assert_eq!(
            judge_lock(None, 2 * HOUR, 0, "n1", HOUR, alive),
            LockState::Stale
        );
    }

    #[test]
    fn exclusive_then_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let lock = BuildLock::acquire(&path, HOUR, Duration::ZERO).unwrap();
        assert!(path.exists());
        let second = BuildLock::acquire(&path, HOUR, Duration::from_millis(300));
        assert!(
            matches!(second, Err(MlipError::LockTimeout { .. })),
            "{second:?}"
        );
        drop(lock);
        assert!(!path.exists());
        BuildLock::acquire(&path, HOUR, Duration::ZERO).unwrap();
    }

    #[test]
    fn stale_lock_of_a_dead_local_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        // A pid far above pid_max cannot be alive.
        let dead = holder(&host_name(), 999_999_999, now_unix());
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        let lock = BuildLock::acquire(&path, HOUR, Duration::ZERO).unwrap();
        assert_eq!(lock.holder().pid, std::process::id());
        let on_disk: LockHolder =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(&on_disk, lock.holder());
    }

    #[test]
    fn old_lock_from_another_node_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        std::fs::write(
            &path,
            serde_json::to_string(&holder("other-node", 1, 0)).unwrap(),
        )
        .unwrap();
        BuildLock::acquire(&path, HOUR, Duration::ZERO).unwrap();
    }
}
