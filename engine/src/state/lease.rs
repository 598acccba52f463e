//! The driver's lease in the database: one writer at a time, stale leases taken over.

use super::*;

impl StateStore {
    /// Take the driver lease, or say who holds it. A lease whose holder is gone (same host,
    /// pid not running) or silent for [`LEASE_STALE_AFTER`] is taken over; the returned
    /// message says so.
    pub fn acquire_lease(
        &mut self,
        host: &str,
        pid: u32,
        now: f64,
    ) -> Result<Option<String>, StateError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql(&path))?;
        let held: Option<(String, i64, f64, f64)> = tx
            .query_row(
                "SELECT host, pid, started, heartbeat FROM lease WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(sql(&path))?;
        let mut note = None;
        if let Some((h, p, started, beat)) = held {
            let age = now - beat;
            let same_host = h == host;
            let alive = if same_host {
                p as u32 == pid || process_alive(p as u32)
            } else {
                true
            };
            if same_host && p as u32 == pid {
                // Our own lease (re-acquired).
            } else if alive && age < LEASE_STALE_AFTER.as_secs_f64() {
                return Err(StateError::LeaseHeld {
                    host: h,
                    pid: p,
                    started: format_time(started),
                    age,
                });
            } else {
                note = Some(if same_host && !alive {
                    format!("taking over the lease of driver pid {p} on {h}, which is no longer running")
                } else {
                    format!("taking over the lease of driver pid {p} on {h}: no heartbeat for {age:.0} s")
                });
            }
        }
        tx.execute(
            "INSERT INTO lease (id, host, pid, started, heartbeat) VALUES (1, ?1, ?2, ?3, ?3)
             ON CONFLICT(id) DO UPDATE SET host = excluded.host, pid = excluded.pid, started = excluded.started, heartbeat = excluded.heartbeat",
            params![host, pid, now],
        )
        .map_err(sql(&path))?;
        tx.commit().map_err(sql(&path))?;
        Ok(note)
    }

    pub fn heartbeat(&self, pid: u32, now: f64) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE lease SET heartbeat = ?1 WHERE id = 1 AND pid = ?2",
                params![now, pid],
            )
            .map(|_| ())
            .map_err(sql(&self.path))
    }

    pub fn release_lease(&self, pid: u32) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM lease WHERE id = 1 AND pid = ?1", params![pid])
            .map(|_| ())
            .map_err(sql(&self.path))
    }

    /// The lease holder if it is still a driver: on this host a running process, elsewhere
    /// one whose heartbeat is younger than [`LEASE_STALE_AFTER`]. A driver killed with -9
    /// leaves its lease behind; this says nobody is running.
    pub fn live_lease(
        &self,
        host: &str,
        now: f64,
    ) -> Result<Option<(String, i64, f64)>, StateError> {
        Ok(self
            .lease()?
            .filter(|(h, p, beat)| driver_alive(h, *p as u32, *beat, host, now)))
    }

    /// The current lease holder, if any: (host, pid, heartbeat).
    pub fn lease(&self) -> Result<Option<(String, i64, f64)>, StateError> {
        self.conn
            .query_row(
                "SELECT host, pid, heartbeat FROM lease WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql(&self.path))
    }
}

/// Whether a driver that holds a lease or lock still drives: on this host (`here`) its pid
/// runs; elsewhere its heartbeat is younger than [`LEASE_STALE_AFTER`]. The one judgement
/// for the database lease, the campaign lock and `flow status`.
pub fn driver_alive(holder_host: &str, pid: u32, heartbeat: f64, here: &str, now: f64) -> bool {
    if holder_host == here {
        process_alive(pid)
    } else {
        now - heartbeat < LEASE_STALE_AFTER.as_secs_f64()
    }
}

/// Whether a process with this pid exists on this host.
pub fn process_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    // SAFETY: signal 0 checks existence only.
    let r = unsafe { libc::kill(pid as i32, 0) };
    let exists = r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // A killed driver nobody has reaped yet (a zombie) still answers signal 0.
    exists && !is_zombie(pid)
}

/// Whether `/proc` shows the process as a zombie (state `Z`: exited, not yet reaped).
fn is_zombie(pid: u32) -> bool {
    flow_executors::process_group::proc_stat(pid).is_some_and(|s| s.state == 'Z')
}

/// This host's name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
