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

/// The process groups, other than `pgid` and this process's own, of every descendant of
/// the members of group `pgid`.
pub fn descendant_groups(pgid: u32) -> Vec<u32> {
    // (pid, parent, group) of every process.
    let mut procs: Vec<(u32, u32, u32)> = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the parenthesised name: state, ppid, pgrp.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace().skip(1);
        let (Some(ppid), Some(pgrp)) = (
            fields.next().and_then(|f| f.parse().ok()),
            fields.next().and_then(|f| f.parse().ok()),
        ) else {
            continue;
        };
        procs.push((pid, ppid, pgrp));
    }
    // SAFETY: getpgrp has no preconditions.
    let own = unsafe { libc::getpgrp() } as u32;
    let mut seen: Vec<u32> = procs.iter().filter(|p| p.2 == pgid).map(|p| p.0).collect();
    let mut groups = Vec::new();
    let mut i = 0;
    while i < seen.len() {
        let parent = seen[i];
        for &(pid, ppid, pgrp) in &procs {
            if ppid == parent && !seen.contains(&pid) {
                seen.push(pid);
                if pgrp != pgid && pgrp != own && pgrp > 1 && !groups.contains(&pgrp) {
                    groups.push(pgrp);
                }
            }
        }
        i += 1;
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
            let zombie = std::fs::read_to_string(format!("/proc/{inner}/stat"))
                .map(|s| {
                    s.rsplit_once(')')
                        .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
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
