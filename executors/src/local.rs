//! The local executor: task attempts as processes on this machine, within a pool of CPU,
//! GPU and memory slots.
//!
//! Design for throughput: the driver talks to a fixed set of worker threads through a
//! queue; each worker spawns one process at a time (in its own process group), blocks in
//! `wait`, and reports. Timeouts are enforced by [`crate::timeout`] (one thread kills the
//! process groups past their deadline), so no worker polls. No second process is spent on a wrapper: the result file that lets
//! a restarted driver ingest work finished while it was dead is written by the task's own
//! shell (see the engine's launch builder) or by `flow task exec`.

use crate::launch::{AttemptOutcome, Batch, ExecutorEvent, JobRef, Resources, TaskLaunch};
use crate::process_group::kill_group;
use crate::task_runner::{now, outcome_of, spawn, wait_with_usage};
use crate::{Executor, ExecutorError};
use flow_dsl::error_class::ErrorClass;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Slots of the local machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalCapacity {
    pub cpus: u32,
    pub gpus: u32,
    /// MiB; None: memory is not accounted.
    pub mem_mb: Option<u64>,
}

struct Queued {
    launch: TaskLaunch,
    resources: Resources,
    step: String,
    step_cap: Option<u32>,
}

#[derive(Default)]
struct Pool {
    queue: VecDeque<Queued>,
    free_cpus: u32,
    free_gpus: Vec<u32>,
    free_mem: Option<u64>,
    running_per_step: BTreeMap<String, u32>,
    shutdown: bool,
    /// Process groups of running attempts, by task id.
    running: BTreeMap<String, u32>,
}

struct Shared {
    pool: Mutex<Pool>,
    wake: Condvar,
    cancelled: Mutex<HashSet<u32>>,
}

/// See the module documentation.
pub struct LocalExecutor {
    shared: Arc<Shared>,
    events: Receiver<ExecutorEvent>,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
    capacity: LocalCapacity,
}

impl LocalExecutor {
    pub fn new(capacity: LocalCapacity) -> LocalExecutor {
        LocalExecutor::start(capacity, None)
    }

    /// A local executor whose shell launches ([`TaskLaunch::status_by_trap`]) record their
    /// exit status in per-worker journals under `dir` (`<driver pid>-w<worker>.jsonl`, one
    /// JSON line per ended attempt) instead of a file per attempt: one file fewer to create
    /// per task, and still there for the next driver when this one dies mid-run.
    pub fn with_result_journal(capacity: LocalCapacity, dir: PathBuf) -> LocalExecutor {
        LocalExecutor::start(capacity, Some(dir))
    }

    fn start(capacity: LocalCapacity, journal_dir: Option<PathBuf>) -> LocalExecutor {
        let shared = Arc::new(Shared {
            pool: Mutex::new(Pool {
                free_cpus: capacity.cpus,
                free_gpus: (0..capacity.gpus).collect(),
                free_mem: capacity.mem_mb,
                ..Pool::default()
            }),
            wake: Condvar::new(),
            cancelled: Mutex::new(HashSet::new()),
        });
        let (tx, rx) = channel();
        let workers = (0..capacity.cpus.max(1))
            .map(|i| {
                let shared = Arc::clone(&shared);
                let tx = tx.clone();
                let journal = journal_dir
                    .as_ref()
                    .map(|d| d.join(format!("{}-w{i}.jsonl", std::process::id())));
                std::thread::spawn(move || worker(shared, tx, journal))
            })
            .collect();
        LocalExecutor {
            shared,
            events: rx,
            workers,
            in_flight: 0,
            capacity,
        }
    }

    pub fn capacity(&self) -> LocalCapacity {
        self.capacity
    }

    /// Whether a task with these resources can ever run here.
    pub fn fits(&self, r: &Resources) -> bool {
        r.total_cpus() <= self.capacity.cpus
            && r.total_gpus() <= self.capacity.gpus
            && self.capacity.mem_mb.is_none_or(|m| r.total_mem_mb() <= m)
    }
}

/// The exit statuses recorded in the result journals under `dir`, by (task id, attempt):
/// what attempts of shell launches ended with while no driver was there to reap them. A
/// line cut short (its shell killed mid-write) is skipped: that attempt runs again. The
/// end time of an attempt is its journal's modification time (no later than the next line).
pub fn read_result_journals(dir: &Path) -> HashMap<(String, u32), AttemptOutcome> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64());
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let (Some(task), Some(attempt)) = (
                doc.get("task_id").and_then(|v| v.as_str()),
                doc.get("attempt").and_then(|v| v.as_u64()),
            ) else {
                continue;
            };
            if let Ok(mut outcome) = crate::result_document::outcome_of(&doc) {
                outcome.ended_at = outcome.ended_at.or(modified);
                out.insert((task.to_string(), attempt as u32), outcome);
            }
        }
    }
    out
}

/// Remove the result journals under `dir` (a driver that ended with nothing in flight has
/// committed every line of them).
pub fn remove_result_journals(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "jsonl") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn worker(shared: Arc<Shared>, tx: Sender<ExecutorEvent>, journal: Option<PathBuf>) {
    // One writer at a time: a worker runs one attempt at a time, and each driver process
    // has journals of its own (a dead driver's orphans may still append to theirs).
    if let Some(dir) = journal.as_ref().and_then(|j| j.parent()) {
        let _ = std::fs::create_dir_all(dir);
    }
    loop {
        // Take the first queued attempt whose resources are free.
        let (job, gpus) = {
            let mut pool = lock(&shared.pool);
            loop {
                if pool.shutdown {
                    return;
                }
                let pos = pool.queue.iter().position(|q| {
                    let cpus = q.resources.total_cpus();
                    let step_ok = q.step_cap.is_none_or(|cap| {
                        pool.running_per_step.get(&q.step).copied().unwrap_or(0) < cap
                    });
                    step_ok
                        && cpus <= pool.free_cpus
                        && q.resources.total_gpus() as usize <= pool.free_gpus.len()
                        && pool
                            .free_mem
                            .is_none_or(|m| q.resources.total_mem_mb() <= m)
                });
                if let Some(pos) = pos {
                    let job = pool.queue.remove(pos).expect("position is in range");
                    pool.free_cpus -= job.resources.total_cpus();
                    let n = job.resources.total_gpus() as usize;
                    let gpus: Vec<u32> = pool.free_gpus.drain(..n).collect();
                    if let Some(m) = pool.free_mem.as_mut() {
                        *m -= job.resources.total_mem_mb();
                    }
                    *pool.running_per_step.entry(job.step.clone()).or_default() += 1;
                    break (job, gpus);
                }
                pool = shared.wake.wait(pool).unwrap_or_else(|p| p.into_inner());
            }
        };
        let launch = &job.launch;
        let mut extra = Vec::new();
        if job.resources.total_gpus() > 0 {
            let ids: Vec<String> = gpus.iter().map(u32::to_string).collect();
            extra.push(("CUDA_VISIBLE_DEVICES".to_string(), ids.join(",")));
        }
        if let (true, Some(j)) = (launch.status_by_trap, &journal) {
            extra.push(("FLOW_RESULT_FILE".to_string(), j.display().to_string()));
        }
        let started = now();
        let oom_before = crate::task_runner::oom_kill_count();
        let spawner_rss_kib = crate::launch::ResourceUsage::own_peak_rss_kib();
        let outcome = match spawn(launch, &extra) {
            Ok(child) => {
                let pgid = child.id();
                lock(&shared.pool)
                    .running
                    .insert(launch.task_id.clone(), pgid);
                let _ = tx.send(ExecutorEvent::Started {
                    task_id: launch.task_id.clone(),
                    attempt: launch.attempt,
                    job_id: format!("local:{pgid}"),
                    pid: Some(pgid),
                    at: started,
                });
                if let Some(t) = launch.timeout {
                    crate::timeout::arm(pgid, t);
                }
                // wait4, not Child::wait: the rusage of the task's process tree comes back
                // with its exit status.
                let status = wait_with_usage(pgid, false);
                drop(child);
                // Anything the task left behind in its group goes with it.
                kill_group(pgid, libc::SIGKILL);
                let timed_out = crate::timeout::disarm(pgid);
                let cancelled = lock(&shared.cancelled).remove(&pgid);
                lock(&shared.pool).running.remove(&launch.task_id);
                match status {
                    Ok(Some((status, usage))) => AttemptOutcome {
                        usage: Some(crate::launch::ResourceUsage {
                            spawner_rss_kib,
                            ..usage
                        }),
                        ..outcome_of(status, timed_out, cancelled, started, oom_before)
                    },
                    Ok(None) => AttemptOutcome {
                        exit_code: None,
                        signal: None,
                        error_class: Some(ErrorClass::LaunchFailed),
                        message: Some("wait4 returned without a status".into()),
                        started_at: Some(started),
                        ended_at: Some(now()),
                        usage: None,
                    },
                    Err(e) => AttemptOutcome {
                        exit_code: None,
                        signal: None,
                        error_class: Some(ErrorClass::LaunchFailed),
                        message: Some(format!("waiting for the process failed: {e}")),
                        started_at: Some(started),
                        ended_at: Some(now()),
                        usage: None,
                    },
                }
            }
            Err(e) => AttemptOutcome {
                exit_code: None,
                signal: None,
                error_class: Some(ErrorClass::LaunchFailed),
                message: Some(format!(
                    "cannot start `{}`: {e}",
                    launch.argv.first().cloned().unwrap_or_default()
                )),
                started_at: Some(started),
                ended_at: Some(now()),
                usage: None,
            },
        };
        {
            let mut pool = lock(&shared.pool);
            pool.free_cpus += job.resources.total_cpus();
            pool.free_gpus.extend(gpus);
            if let Some(m) = pool.free_mem.as_mut() {
                *m += job.resources.total_mem_mb();
            }
            if let Some(c) = pool.running_per_step.get_mut(&job.step) {
                *c = c.saturating_sub(1);
            }
        }
        shared.wake.notify_all();
        let _ = tx.send(ExecutorEvent::Finished {
            task_id: launch.task_id.clone(),
            attempt: launch.attempt,
            outcome,
        });
    }
}

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities::of(flow_dsl::model::ExecutorKind::Local)
    }

    fn submit(&mut self, batch: Batch) -> Result<Vec<JobRef>, ExecutorError> {
        if !self.fits(&batch.resources) {
            return Err(ExecutorError::SubmitRejected {
                backend: "local".into(),
                message: format!(
                    "step {} asks for {} CPU(s), {} GPU(s), {} MiB per task; this machine has {} CPU(s), {} GPU(s)",
                    batch.step, batch.resources.total_cpus(), batch.resources.total_gpus(), batch.resources.total_mem_mb(), self.capacity.cpus, self.capacity.gpus
                ),
            });
        }
        let n = batch.tasks.len();
        {
            let mut pool = lock(&self.shared.pool);
            for launch in batch.tasks {
                pool.queue.push_back(Queued {
                    launch,
                    resources: batch.resources.clone(),
                    step: batch.step.clone(),
                    step_cap: batch.max_running,
                });
            }
        }
        self.in_flight += n;
        self.shared.wake.notify_all();
        Ok(vec![JobRef {
            job_id: format!("local:{}", batch.batch_key),
            step: batch.step,
            batch_key: batch.batch_key,
        }])
    }

    fn poll(&mut self, max_wait: Duration) -> Result<Vec<ExecutorEvent>, ExecutorError> {
        let mut out = Vec::new();
        match self.events.recv_timeout(max_wait) {
            Ok(ev) => out.push(ev),
            Err(RecvTimeoutError::Timeout) => return Ok(out),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(ExecutorError::Backend {
                    backend: "local".into(),
                    message: "all workers stopped".into(),
                })
            }
        }
        while let Ok(ev) = self.events.try_recv() {
            out.push(ev);
        }
        for ev in &out {
            if matches!(ev, ExecutorEvent::Finished { .. }) {
                self.in_flight = self.in_flight.saturating_sub(1);
            }
        }
        Ok(out)
    }

    fn list_jobs(&mut self) -> Result<Vec<JobRef>, ExecutorError> {
        // Local processes do not survive as jobs the driver could re-attach to; the engine
        // finds them by their recorded process groups instead.
        Ok(Vec::new())
    }

    fn cancel(&mut self, _jobs: &[JobRef]) -> Result<(), ExecutorError> {
        let (queued, running): (Vec<Queued>, Vec<u32>) = {
            let mut pool = lock(&self.shared.pool);
            (
                pool.queue.drain(..).collect(),
                pool.running.values().copied().collect(),
            )
        };
        {
            let mut c = lock(&self.shared.cancelled);
            for pgid in &running {
                c.insert(*pgid);
            }
        }
        for pgid in &running {
            crate::process_group::kill_tree(*pgid, libc::SIGTERM);
        }
        let shared = Arc::clone(&self.shared);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(5));
            for pgid in running {
                if lock(&shared.cancelled).contains(&pgid) {
                    crate::process_group::kill_tree(pgid, libc::SIGKILL);
                }
            }
        });
        // Queued attempts never started: report them cancelled right away.
        let (tx, rx) = channel();
        for q in queued {
            let _ = tx.send(ExecutorEvent::Finished {
                task_id: q.launch.task_id.clone(),
                attempt: q.launch.attempt,
                outcome: AttemptOutcome {
                    exit_code: None,
                    signal: None,
                    error_class: Some(ErrorClass::Cancelled),
                    message: Some("cancelled before it started".into()),
                    started_at: None,
                    ended_at: Some(now()),
                    usage: None,
                },
            });
        }
        drop(tx);
        let mut pending: Vec<ExecutorEvent> = rx.into_iter().collect();
        // Re-inject through a forwarding thread so poll() sees them in order.
        if !pending.is_empty() {
            let (ftx, frx) = channel();
            let old = std::mem::replace(&mut self.events, frx);
            for ev in pending.drain(..) {
                let _ = ftx.send(ev);
            }
            std::thread::spawn(move || {
                for ev in old {
                    if ftx.send(ev).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }
}

impl Drop for LocalExecutor {
    fn drop(&mut self) {
        lock(&self.shared.pool).shutdown = true;
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            // Workers blocked in wait() on a long task are not joined: the process exits.
            if w.is_finished() {
                let _ = w.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_journals_give_each_ended_attempt_and_skip_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("10-w0.jsonl"),
            "{\"task_id\":\"a\",\"attempt\":1,\"exit_code\":0}\n{\"task_id\":\"b\",\"attempt\":2,\"exit_code\":3}\n{\"task_id\":\"c\",\"att",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("11-w1.jsonl"),
            "{\"task_id\":\"d\",\"attempt\":1,\"exit_code\":0}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "{\"task_id\":\"e\"}\n").unwrap();
        let found = read_result_journals(dir.path());
        let mut keys: Vec<_> = found.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [("a".into(), 1), ("b".into(), 2), ("d".into(), 1)] as [(String, u32); 3]
        );
        assert!(found[&("a".into(), 1)].succeeded());
        let b = &found[&("b".into(), 2)];
        assert_eq!((b.exit_code, b.succeeded()), (Some(3), false));
        assert!(
            b.ended_at.is_some(),
            "the journal's mtime stands for the end"
        );
        remove_result_journals(dir.path());
        assert!(read_result_journals(dir.path()).is_empty());
        assert!(dir.path().join("notes.txt").exists());
    }
    use std::path::Path;
    use std::time::Instant;

    fn launch(dir: &Path, id: &str, script: &str, timeout: Option<Duration>) -> TaskLaunch {
        TaskLaunch {
            task_id: id.into(),
            attempt: 1,
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![],
            workdir: dir.to_path_buf(),
            stdout_path: dir.join(format!("{id}.out")),
            stderr_path: dir.join(format!("{id}.err")),
            result_path: dir.join(format!("{id}.json")),
            writes_result: false,
            status_by_trap: false,
            timeout,
        }
    }

    fn batch(tasks: Vec<TaskLaunch>, cpus: u32, max_running: Option<u32>) -> Batch {
        Batch {
            campaign: "c".into(),
            step: "s".into(),
            batch_key: "s-b0".into(),
            resources: Resources {
                cpus,
                ..Resources::default()
            },
            max_running,
            tasks,
        }
    }

    fn drain(ex: &mut LocalExecutor) -> Vec<(String, AttemptOutcome)> {
        let mut done = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while ex.in_flight() > 0 && Instant::now() < deadline {
            for ev in ex.poll(Duration::from_millis(200)).unwrap() {
                if let ExecutorEvent::Finished {
                    task_id, outcome, ..
                } = ev
                {
                    done.push((task_id, outcome));
                }
            }
        }
        done
    }

    #[test]
    fn runs_many_tasks_and_reports_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut ex = LocalExecutor::new(LocalCapacity {
            cpus: 2,
            gpus: 0,
            mem_mb: None,
        });
        let tasks = (0..50)
            .map(|i| {
                launch(
                    dir.path(),
                    &format!("t{i}"),
                    if i % 10 == 0 { "exit 1" } else { "true" },
                    None,
                )
            })
            .collect();
        ex.submit(batch(tasks, 1, None)).unwrap();
        let done = drain(&mut ex);
        assert_eq!(done.len(), 50);
        assert_eq!(done.iter().filter(|(_, o)| !o.succeeded()).count(), 5);
    }

    #[test]
    fn max_running_caps_concurrency() {
        let dir = tempfile::tempdir().unwrap();
        let mut ex = LocalExecutor::new(LocalCapacity {
            cpus: 2,
            gpus: 0,
            mem_mb: None,
        });
        let marker = dir.path().join("concurrent");
        let script = format!(
            "mkdir {m} 2>/dev/null || exit 9; sleep 0.1; rmdir {m}",
            m = marker.display()
        );
        let tasks = (0..6)
            .map(|i| launch(dir.path(), &format!("t{i}"), &script, None))
            .collect();
        ex.submit(batch(tasks, 1, Some(1))).unwrap();
        let done = drain(&mut ex);
        assert!(
            done.iter().all(|(_, o)| o.succeeded()),
            "two tasks overlapped: {done:?}"
        );
    }

    #[test]
    fn timeouts_and_oversized_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let mut ex = LocalExecutor::new(LocalCapacity {
            cpus: 2,
            gpus: 0,
            mem_mb: None,
        });
        ex.submit(batch(
            vec![launch(
                dir.path(),
                "slow",
                "sleep 20",
                Some(Duration::from_millis(200)),
            )],
            1,
            None,
        ))
        .unwrap();
        let done = drain(&mut ex);
        assert_eq!(done[0].1.error_class, Some(ErrorClass::Timeout));
        assert!(ex
            .submit(batch(
                vec![launch(dir.path(), "big", "true", None)],
                64,
                None
            ))
            .is_err());
    }
}
