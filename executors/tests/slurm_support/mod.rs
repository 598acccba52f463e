//! Shared helpers of the tests that drive the real Slurm daemons (scripts/slurm-dev.sh up).

#![allow(dead_code)]

use flow_dsl::machine_settings::SlurmSettings;
use flow_dsl::quantity::Rate;
use flow_executors::slurm::{SlurmExecutor, SlurmPaths};
use flow_executors::{AttemptOutcome, Batch, Executor, ExecutorEvent, Resources, TaskLaunch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Panic with instructions unless a Slurm controller answers and a node is usable.
pub fn require_slurm() {
    // A node finishing another test's job (`comp`) or briefly between states is usable a
    // moment later: wait for one (up to 60 s) rather than fail on a transient state.
    let started = std::time::Instant::now();
    loop {
        match node_states() {
            Some(states) if usable(&states) => break,
            Some(_) if started.elapsed() < std::time::Duration::from_secs(60) => {
                std::thread::sleep(std::time::Duration::from_millis(500))
            }
            _ => break,
        }
    }
    check_slurm();
}

fn node_states() -> Option<String> {
    let o = Command::new("sinfo")
        .args(["--noheader", "--format=%t"])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn usable(states: &str) -> bool {
    states.lines().any(|s| {
        ["idle", "mix", "alloc", "comp"]
            .iter()
            .any(|ok| s.starts_with(ok))
    })
}

fn check_slurm() {
    let output = Command::new("sinfo")
        .args(["--noheader", "--format=%t"])
        .output();
    let states = match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => panic!(
            "Slurm is not answering (sinfo: {}). Start the development cluster with \
             `scripts/slurm-dev.sh up` (as root) before running these tests.",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "sinfo cannot be run ({e}). Install Slurm with `scripts/deps/slurm.sh` and start \
             it with `scripts/slurm-dev.sh up` before running these tests."
        ),
    };
    assert!(
        usable(&states),
        "no usable Slurm node (sinfo says {states:?}); run `scripts/slurm-dev.sh up`"
    );
    let jq = Command::new("jq").arg("--version").output();
    assert!(
        jq.is_ok_and(|o| o.status.success()),
        "jq is missing (the run-manifest stand-in needs it): run scripts/deps/slurm.sh"
    );
}

/// The shell stand-in for `flow task run-manifest`.
pub fn stand_in() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slurm_support/run-manifest.sh")
}

/// A configuration for fast tests: quick polling, a generous rate limit.
pub fn test_config() -> SlurmSettings {
    SlurmSettings {
        poll_interval: Duration::from_millis(500),
        result_grace: Duration::from_secs(10),
        submit_rate: Rate::parse("20/s").expect("valid rate"),
        burst: 10,
        ..SlurmSettings::default()
    }
}

pub fn executor(campaign: &str, dir: &Path, config: SlurmSettings) -> SlurmExecutor {
    SlurmExecutor::new(
        campaign,
        config,
        SlurmPaths {
            logs_dir: dir.join("logs"),
            flow_binary: stand_in(),
        },
    )
    .expect("executor")
}

/// A unique campaign name per test run, so runs never adopt each other's jobs.
pub fn campaign_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("test-{test}-{}-{nanos}", std::process::id())
}

pub fn launch(dir: &Path, id: &str, attempt: u32, argv: &[&str]) -> TaskLaunch {
    let task_dir = dir.join("tasks").join(id);
    TaskLaunch {
        task_id: id.to_string(),
        attempt,
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("FLOW_SEED".to_string(), "7".to_string())],
        workdir: task_dir.clone(),
        stdout_path: task_dir.join(format!("attempt{attempt}.out")),
        stderr_path: task_dir.join(format!("attempt{attempt}.err")),
        result_path: task_dir.join(format!("attempt{attempt}.result.json")),
        writes_result: false,
        status_by_trap: false,
        timeout: None,
    }
}

pub fn batch(campaign: &str, step: &str, key: &str, tasks: Vec<TaskLaunch>) -> Batch {
    Batch {
        campaign: campaign.to_string(),
        step: step.to_string(),
        batch_key: key.to_string(),
        resources: Resources {
            cpus: 1,
            mem_mb: 100,
            time_limit: Some(Duration::from_secs(600)),
            ..Resources::default()
        },
        max_running: None,
        tasks,
    }
}

/// What polling saw: each task's outcome, and which tasks were reported started.
#[derive(Debug, Default)]
pub struct Observed {
    pub finished: BTreeMap<String, AttemptOutcome>,
    pub started: BTreeMap<String, String>,
    pub duplicate_finishes: usize,
    /// `Notice` events: (kind, message).
    pub notices: Vec<(String, String)>,
}

/// One poll, its events recorded.
pub fn poll_once(executor: &mut SlurmExecutor, observed: &mut Observed) {
    for event in executor.poll(Duration::from_secs(1)).expect("poll") {
        match event {
            ExecutorEvent::Started {
                task_id, job_id, ..
            } => {
                observed.started.insert(task_id, job_id);
            }
            ExecutorEvent::Finished {
                task_id, outcome, ..
            } => {
                if observed.finished.insert(task_id, outcome).is_some() {
                    observed.duplicate_finishes += 1;
                }
            }
            ExecutorEvent::Notice { kind, message } => {
                observed.notices.push((kind, message));
            }
        }
    }
}

/// Poll until `expected` tasks have finished or `limit` passes (then panic with what is
/// missing).
pub fn poll_until_finished(
    executor: &mut SlurmExecutor,
    expected: usize,
    limit: Duration,
    observed: &mut Observed,
) {
    let start = Instant::now();
    while observed.finished.len() < expected {
        assert!(
            start.elapsed() < limit,
            "only {} of {expected} tasks finished within {limit:?}; in flight: {}; seen: {:?}",
            observed.finished.len(),
            executor.in_flight(),
            observed.finished.keys().collect::<Vec<_>>()
        );
        poll_once(executor, observed);
    }
}

/// Cancels whatever a test leaves in the queue (after a failed assertion too), through a
/// fresh executor that finds the campaign's jobs by their tag.
pub struct CleanupGuard {
    pub campaign: String,
    pub dir: PathBuf,
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        let mut executor = executor(&self.campaign, &self.dir, test_config());
        let _ = executor.cancel(&[]);
    }
}
