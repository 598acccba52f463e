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

/// Signal a task's process group and every process group its members started (a wrapper
/// that runs its program in a group of its own, as qe-scf runs pw.x, or a user's
/// `setsid`): a timeout or cancel reaches all of them, not only the task's own group.
/// Reads `/proc` once; used on timeouts, cancels and recovery, not on every exit.
pub fn kill_tree(pgid: u32, signal: i32) {
    if pgid <= 1 {
        return;
    }
    for group in descendant_groups(pgid) {
        kill_group(group, signal);
    }
    kill_group(pgid, signal);
}

/// A process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `Z` (exited, not reaped), ...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
}

/// `/proc/PID/stat` of one process, if it exists.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised name (which may hold spaces): state, ppid, pgrp.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    Some(ProcStat {
        state: fields.next()?.chars().next()?,
        ppid: fields.next()?.parse().ok()?,
        pgrp: fields.next()?.parse().ok()?,
    })
}

/// The pids of every process `/proc` lists.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// The process groups, other than `pgid` and this process's own, of every descendant of
/// the members of group `pgid`.
pub fn descendant_groups(pgid: u32) -> Vec<u32> {
    let procs: Vec<(u32, ProcStat)> = all_pids()
        .into_iter()
        .filter_map(|pid| proc_stat(pid).map(|s| (pid, s)))
        .collect();
    let mut children: std::collections::HashMap<u32, Vec<(u32, u32)>> = Default::default();
    for (pid, s) in &procs {
        children.entry(s.ppid).or_default().push((*pid, s.pgrp));
    }
    // SAFETY: getpgrp has no preconditions.
    let own = unsafe { libc::getpgrp() } as u32;
    let mut queue: Vec<u32> = procs
        .iter()
        .filter(|(_, s)| s.pgrp == pgid)
        .map(|(pid, _)| *pid)
        .collect();
    let mut seen: std::collections::HashSet<u32> = queue.iter().copied().collect();
    let mut groups = Vec::new();
    while let Some(parent) = queue.pop() {
        for &(pid, pgrp) in children.get(&parent).into_iter().flatten() {
            if !seen.insert(pid) {
                continue;
            }
            queue.push(pid);
            if pgrp != pgid && pgrp != own && pgrp > 1 && !groups.contains(&pgrp) {
                groups.push(pgrp);
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// A task whose child runs in a group of its own (as qe-scf runs pw.x under a
    /// wrapper): killing the task's tree reaches the grandchild too.
    #[test]
    fn a_tree_kill_reaches_groups_the_task_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("inner.pid");
        let script = format!(
            "setsid sh -c 'echo $$ > {}; exec sleep 60' & wait",
            pidfile.display()
        );
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id();
        let t0 = std::time::Instant::now();
        while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
            assert!(t0.elapsed().as_secs() < 10);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let inner: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        kill_tree(pgid, libc::SIGKILL);
        child.wait().unwrap();
        let t0 = std::time::Instant::now();
        // SAFETY: signal 0 only checks existence.
        while unsafe { libc::kill(inner, 0) } == 0 {
            let zombie = proc_stat(inner as u32).is_none_or(|s| s.state == 'Z');
            if zombie {
                break;
            }
            assert!(
                t0.elapsed().as_secs() < 5,
                "the grandchild in its own group survived"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
