//! One driver per campaign, whatever `--state-dir` says: a lock file in the campaign
//! directory (`metadata/driver.lock`), created with `O_EXCL`.
//!
//! `O_CREAT|O_EXCL` is atomic on local file systems and on NFSv3+/Lustre/GPFS, where
//! `flock` may only lock on one node. The file holds the holder's host, pid, start and
//! heartbeat (JSON, rewritten through a rename every few seconds). A lock whose holder is
//! gone (same host, pid not running) or silent for [`STALE_AFTER`] is taken over: renamed
//! aside (one renamer wins), checked to be the lock that was judged stale, and created anew
//! with `O_EXCL` (one creator wins).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A lock silent this long is taken over even if its holder looks alive elsewhere (the
/// database lease's limit: one judgement, `state::driver_alive`).
pub const STALE_AFTER: Duration = crate::state::LEASE_STALE_AFTER;

/// What a lock file says.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
    pub started: f64,
    pub heartbeat: f64,
}

impl LockHolder {
    /// Whether this holder still drives: on this host a live process, elsewhere a fresh
    /// heartbeat.
    pub fn alive(&self, host: &str, now: f64) -> bool {
        crate::state::driver_alive(&self.host, self.pid, self.heartbeat, host, now)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("campaign is being run by pid {} on {} (lock {}, last heartbeat {:.0} s ago); wait for it or stop it with `flow cancel`", .holder.pid, .holder.host, .path.display(), .age)]
    Held {
        holder: LockHolder,
        path: PathBuf,
        age: f64,
    },
    #[error("cannot take the driver lock {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct CampaignLock {
    path: PathBuf,
    holder: LockHolder,
}

/// Read a lock file (None when absent or unreadable).
pub fn read(path: &Path) -> Option<LockHolder> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn create_exclusive(path: &Path, holder: &LockHolder) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(serde_json::to_string(holder).unwrap_or_default().as_bytes())?;
    f.sync_all()
}

impl CampaignLock {
    /// Take the lock at `path`, or say who holds it. Returns a note when a stale lock was
    /// taken over.
    pub fn acquire(
        path: &Path,
        host: &str,
        pid: u32,
        now: f64,
    ) -> Result<(CampaignLock, Option<String>), LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let holder = LockHolder {
            host: host.to_string(),
            pid,
            started: now,
            heartbeat: now,
        };
        let mut note = None;
        for _ in 0..3 {
            match create_exclusive(path, &holder) {
                Ok(()) => {
                    return Ok((
                        CampaignLock {
                            path: path.to_path_buf(),
                            holder,
                        },
                        note,
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
            let Some(old) = read(path) else {
                // Being written (or garbage): garbage older than the stale limit goes.
                let age = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .unwrap_or_default();
                if age > STALE_AFTER {
                    let _ = std::fs::remove_file(path);
                } else {
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            };
            if old.host == host && old.pid == pid {
                // Our own (a re-acquire in the same process).
                return Ok((
                    CampaignLock {
                        path: path.to_path_buf(),
                        holder,
                    },
                    None,
                ));
            }
            if old.alive(host, now) {
                return Err(LockError::Held {
                    age: now - old.heartbeat,
                    holder: old,
                    path: path.to_path_buf(),
                });
            }
            // Take over: move it aside (one renamer wins) and check it was the stale one.
            let aside = path.with_extension(format!("stale-{host}-{pid}"));
            if std::fs::rename(path, &aside).is_ok() {
                let moved = read(&aside);
                if moved.as_ref() != Some(&old) {
                    // Someone else's fresh lock: put it back (fails if yet another exists).
                    let _ = std::fs::hard_link(&aside, path);
                    let _ = std::fs::remove_file(&aside);
                    continue;
                }
                let _ = std::fs::remove_file(&aside);
                note = Some(if old.host == host {
                    format!(
                        "taking over the lock of driver pid {} on {}, which is no longer running",
                        old.pid, old.host
                    )
                } else {
                    format!(
                        "taking over the lock of driver pid {} on {}: no heartbeat for {:.0} s",
                        old.pid,
                        old.host,
                        now - old.heartbeat
                    )
                });
            }
        }
        match read(path) {
            Some(h) => Err(LockError::Held {
                age: now - h.heartbeat,
                holder: h,
                path: path.to_path_buf(),
            }),
            None => Err(io(std::io::Error::other("the lock file keeps changing"))),
        }
    }

    /// Refresh the heartbeat (written beside and renamed over: readers never see half).
    pub fn heartbeat(&mut self, now: f64) {
        self.holder.heartbeat = now;
        let tmp = self
            .path
            .with_extension(format!("beat-{}", self.holder.pid));
        if std::fs::write(
            &tmp,
            serde_json::to_string(&self.holder).unwrap_or_default(),
        )
        .is_ok()
        {
            // Only while it is still ours (a takeover after a long stall replaced it).
            if read(&self.path)
                .is_some_and(|h| h.pid == self.holder.pid && h.host == self.holder.host)
            {
                let _ = std::fs::rename(&tmp, &self.path);
            } else {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CampaignLock {
    fn drop(&mut self) {
        if read(&self.path).is_some_and(|h| h.pid == self.holder.pid && h.host == self.holder.host)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metadata/driver.lock");
        let me = std::process::id();
        let (lock, note) = CampaignLock::acquire(&p, "h", me, 100.0).unwrap();
        assert!(note.is_none());
        assert_eq!(read(&p).unwrap().pid, me);
        // Another live process on this host (pid 1 always exists) is refused.
        std::fs::remove_file(&p).unwrap();
        create_exclusive(
            &p,
            &LockHolder {
                host: "h".into(),
                pid: 1,
                started: 0.0,
                heartbeat: 100.0,
            },
        )
        .unwrap();
        let err = CampaignLock::acquire(&p, "h", me + 1, 101.0).unwrap_err();
        assert!(err.to_string().contains("pid 1 on h"), "{err}");
        std::fs::remove_file(&p).unwrap();
        drop(lock); // Not ours any more: nothing removed, no panic.
        assert!(!p.exists());
    }

    #[test]
    fn a_dead_or_silent_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("driver.lock");
        // A pid that is not running on this host.
        let dead = LockHolder {
            host: "h".into(),
            pid: u32::MAX - 7,
            started: 0.0,
            heartbeat: 0.0,
        };
        create_exclusive(&p, &dead).unwrap();
        let (lock, note) = CampaignLock::acquire(&p, "h", 42, 10.0).unwrap();
        assert!(note.unwrap().contains("no longer running"));
        assert_eq!(read(&p).unwrap().pid, 42);
        drop(lock);
        assert!(!p.exists());
        // Another host, silent for longer than STALE_AFTER.
        let silent = LockHolder {
            host: "other".into(),
            pid: 5,
            started: 0.0,
            heartbeat: 0.0,
        };
        create_exclusive(&p, &silent).unwrap();
        let (_lock, note) = CampaignLock::acquire(&p, "h", 43, 1000.0).unwrap();
        assert!(note.unwrap().contains("no heartbeat"));
        // Another host, fresh: refused.
        let fresh = LockHolder {
            host: "other".into(),
            pid: 6,
            started: 0.0,
            heartbeat: 990.0,
        };
        let q = dir.path().join("q.lock");
        create_exclusive(&q, &fresh).unwrap();
        assert!(CampaignLock::acquire(&q, "h", 44, 1000.0).is_err());
    }
}
