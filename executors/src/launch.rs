//! The data that crosses the executor boundary: what to launch, and what happened.

use flow_dsl::error_class::ErrorClass;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Resources of every task in a batch, resolved from the machine's job type and overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU cores per MPI rank (Slurm `--cpus-per-task`); a task has
    /// `cpus × tasks_per_node × nodes` cores in all ([`Resources::total_cpus`]).
    pub cpus: u32,
    /// GPUs per node.
    pub gpus: u32,
    /// Memory per node, in MiB (0: unspecified).
    pub mem_mb: u64,
    /// Scheduler wall-clock limit of one task.
    pub time_limit: Option<Duration>,
    pub nodes: Option<u32>,
    pub tasks_per_node: Option<u32>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub constraint: Option<String>,
    /// Extra scheduler options, passed through verbatim (each one quoted).
    pub extra: Vec<String>,
}

impl Resources {
    /// Cores one task occupies in all (at least 1).
    pub fn total_cpus(&self) -> u32 {
        self.cpus.max(1) * self.tasks_per_node.unwrap_or(1).max(1) * self.nodes.unwrap_or(1).max(1)
    }
    /// GPUs one task occupies in all.
    pub fn total_gpus(&self) -> u32 {
        self.gpus * self.nodes.unwrap_or(1).max(1)
    }
    /// Memory one task occupies in all, MiB.
    pub fn total_mem_mb(&self) -> u64 {
        self.mem_mb * self.nodes.unwrap_or(1).max(1) as u64
    }
}

/// One attempt of one task, ready to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLaunch {
    pub task_id: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Program and arguments, never passed through a shell by the executor itself.
    pub argv: Vec<String>,
    /// Extra environment variables (FLOW_TASK_ID, FLOW_SEED, ...).
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    /// Where the attempt's result (JSON, written atomically) ends up. When `writes_result`
    /// is false the executor arranges for it to be written (the local executor wraps the
    /// command so the exit status lands there even if the driver has died).
    pub result_path: PathBuf,
    pub writes_result: bool,
    /// The launch is a shell whose EXIT trap appends the exit status, as one JSON line with
    /// the task id and attempt, to `$FLOW_RESULT_FILE` (command kinds). Such a line needs no
    /// file of its own: the local executor points the variable at its worker's result
    /// journal ([`crate::local::read_result_journals`]); other executors at `result_path`.
    #[serde(default)]
    pub status_by_trap: bool,
    /// flow's own per-task timeout: the process group is killed when it expires.
    pub timeout: Option<Duration>,
}

/// Attempts of one step submitted together (one Slurm array, one Kubernetes Job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub campaign: String,
    pub step: String,
    /// Stable name of this batch within the step (e.g. `mocks-b0003`).
    pub batch_key: String,
    pub resources: Resources,
    /// Step-wide cap on running tasks (each backend enforces it its own way).
    pub max_running: Option<u32>,
    pub tasks: Vec<TaskLaunch>,
}

/// A job the backend created: one per local task, one per Slurm array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    pub job_id: String,
    pub step: String,
    pub batch_key: String,
}

/// What an attempt used, as measured where it ran.
///
/// Locally and inside `flow task run-manifest` (Slurm array elements, pods) the figures are
/// `wait4`'s rusage of the attempt's process tree: CPU time summed over every process that
/// was waited for, and the peak resident set size of the largest one (Linux's `ru_maxrss`
/// semantics, not the sum). On Slurm, sacct's MaxRSS/TotalCPU replace them when accounting
/// answers for that element.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// Peak resident set size, KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_kib: Option<u64>,
    /// User CPU seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_cpu_s: Option<f64>,
    /// System CPU seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_cpu_s: Option<f64>,
    /// Where the figures come from: `rusage` or `sacct`.
    pub source: String,
    /// The peak memory of the process that spawned the attempt, KiB, when that was the
    /// driver: Linux carries a spawner's high-water mark across `exec` into the child's
    /// `ru_maxrss`, so `max_rss_kib` is never below it and a smaller task reads as this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawner_rss_kib: Option<u64>,
}

impl ResourceUsage {
    /// User + system CPU seconds, when known.
    pub fn cpu_s(&self) -> Option<f64> {
        match (self.user_cpu_s, self.system_cpu_s) {
            (None, None) => None,
            (u, s) => Some(u.unwrap_or(0.0) + s.unwrap_or(0.0)),
        }
    }

    /// From a `struct rusage` filled by `wait4`/`getrusage` (Linux: `ru_maxrss` in KiB).
    pub fn from_rusage(ru: &libc::rusage) -> ResourceUsage {
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        ResourceUsage {
            max_rss_kib: Some(ru.ru_maxrss.max(0) as u64),
            user_cpu_s: Some(secs(ru.ru_utime)),
            system_cpu_s: Some(secs(ru.ru_stime)),
            source: "rusage".into(),
            spawner_rss_kib: None,
        }
    }

    /// This process's own peak resident set size, KiB (`getrusage(RUSAGE_SELF)`).
    pub fn own_peak_rss_kib() -> Option<u64> {
        // SAFETY: zeroed rusage is valid; getrusage only writes it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        (r == 0).then_some(ru.ru_maxrss.max(0) as u64)
    }
}

/// What happened to an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptOutcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// None when the attempt succeeded as far as the executor can tell.
    pub error_class: Option<ErrorClass>,
    pub message: Option<String>,
    /// Unix seconds.
    pub started_at: Option<f64>,
    pub ended_at: Option<f64>,
    /// Peak memory and CPU time, where the executor could measure them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ResourceUsage>,
}

impl AttemptOutcome {
    /// An attempt that ended without an exit status of its own: never submitted, cancelled,
    /// lost with its node or pod.
    pub fn ended_without_exit(class: ErrorClass, message: &str, at: f64) -> Self {
        AttemptOutcome {
            exit_code: None,
            signal: None,
            error_class: Some(class),
            message: Some(message.to_string()),
            started_at: None,
            ended_at: Some(at),
            usage: None,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.error_class.is_none()
    }
}

/// News from an executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExecutorEvent {
    Started {
        task_id: String,
        attempt: u32,
        job_id: String,
        /// Local process (and process group) id, recorded so a restarted driver can find it.
        pid: Option<u32>,
        at: f64,
    },
    Finished {
        task_id: String,
        attempt: u32,
        outcome: AttemptOutcome,
    },
    /// Something about the campaign's submissions the user should hear about once (not a
    /// task's end): e.g. `submit-limit` when the scheduler refuses submissions for a
    /// per-user/QOS limit and the executor adapted its window. The engine prints it and
    /// records it as an event of that kind.
    Notice {
        /// A short stable name (`submit-limit`), the state database's event kind.
        kind: String,
        /// One line for people: what happened, how the executor adapted, what to change.
        message: String,
    },
}
