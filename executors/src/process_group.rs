//! Signals to a task's process group: every attempt runs in a group of its own
//! ([`crate::task_runner::spawn`]), so a timeout, a cancel or a recovery reaches everything
//! it started.

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
