//! The typed campaign: what the engine compiles. Built by [`crate::load`] from validated,
//! merged documents; every field that came from a file keeps its [`Span`].

use crate::array::ArraySpec;
pub use crate::machine_settings::{KubernetesSettings, SlurmSettings};
use crate::node::Node;
pub use crate::on_retry::OnRetry;
pub use crate::provenance::Provenance;
use crate::source::Span;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The step kinds flow knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Command,
    MockGeneration,
    BuildEnv,
    MdBenchmark,
    QeScf,
    /// An ask/tell loop (`flow_adaptive`): its tasks are created as the algorithm asks.
    Adaptive,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Command => "command",
            StepKind::MockGeneration => "mock-generation",
            StepKind::BuildEnv => "build-env",
            StepKind::MdBenchmark => "md-benchmark",
            StepKind::QeScf => "qe-scf",
            StepKind::Adaptive => "adaptive",
        }
    }
    pub fn parse(s: &str) -> Option<StepKind> {
        [
            StepKind::Command,
            StepKind::MockGeneration,
            StepKind::BuildEnv,
            StepKind::MdBenchmark,
            StepKind::QeScf,
            StepKind::Adaptive,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
    /// Kinds whose work is a shell command the user wrote.
    pub fn runs_user_command(self) -> bool {
        matches!(
            self,
            StepKind::Command | StepKind::MockGeneration | StepKind::Adaptive
        )
    }
}

/// Where tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    Local,
    Slurm,
    Kubernetes,
}

impl ExecutorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
            ExecutorKind::Kubernetes => "kubernetes",
        }
    }
    pub fn parse(s: &str) -> Option<ExecutorKind> {
        match s {
            "local" => Some(ExecutorKind::Local),
            "slurm" => Some(ExecutorKind::Slurm),
            "kubernetes" => Some(ExecutorKind::Kubernetes),
            _ => None,
        }
    }
}

/// When a step may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    AllSucceeded,
    AllCompleted,
}

/// Retry delays: `initial × multiplier^(n-1)`, capped at `max`, with optional jitter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryBackoff {
    pub initial: Duration,
    pub multiplier: f64,
    pub max: Duration,
    pub jitter: bool,
}

impl RetryBackoff {
    /// Delay before retry number `retry` (1-based), without jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = self.multiplier.powi(retry.saturating_sub(1) as i32);
        let secs = (self.initial.as_secs_f64() * factor).min(self.max.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// How a step's tasks are retried, timed out and batched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    pub max_retries: u32,
    pub retry_backoff: RetryBackoff,
    pub timeout: Option<Duration>,
    pub batch_size: Option<u64>,
    pub max_running: Option<u32>,
    pub max_infrastructure_retries: u32,
    pub on_retry: OnRetry,
    /// Bytes each of an attempt's stdout/stderr logs may reach before it is rotated
    /// (`execution.max_log_size`; `None`: the executor's default, 64 MiB).
    pub max_log_bytes: Option<u64>,
}

/// What one task asks for, after the job type and overrides are merged.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct JobShape {
    pub job_type: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub constraint: Option<String>,
    pub nodes: u32,
    pub tasks_per_node: u32,
    pub cpus_per_task: u32,
    pub gpus_per_node: u32,
    pub mem_mb: Option<u64>,
    pub time: Option<Duration>,
    pub extra: Vec<String>,
}

impl JobShape {
    /// CPU cores one task occupies in total.
    pub fn total_cpus(&self) -> u64 {
        self.nodes as u64 * self.tasks_per_node as u64 * self.cpus_per_task as u64
    }
    /// GPUs one task occupies in total.
    pub fn total_gpus(&self) -> u64 {
        self.nodes as u64 * self.gpus_per_node as u64
    }
    /// MPI ranks of one task.
    pub fn ranks(&self) -> u64 {
        self.nodes as u64 * self.tasks_per_node as u64
    }
}

/// A template string with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub text: String,
    pub span: Span,
    pub field: String,
}

/// A step of the campaign, resolved.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    pub description: Option<String>,
    pub span: Span,
    pub needs: Vec<(String, Span)>,
    pub condition: Condition,
    pub array: Option<ArraySpec>,
    pub execution: Execution,
    pub resources: JobShape,
    pub env: Vec<(String, String)>,
    pub command: Option<Template>,
    pub output: Option<Template>,
    pub inputs: Vec<String>,
    pub workdir: Option<String>,
    /// Command kinds: the build-env environment the command runs in.
    pub uses_environment: Option<String>,
    /// The step's own fields as written (kind-specific settings are read from here by the
    /// typed step crates), JSON.
    pub settings: serde_json::Value,
    /// The step node as written, for locating errors in kind-specific settings.
    pub node: Node,
    /// Adaptive steps: the loop's settings, checked at load time.
    pub adaptive: Option<flow_adaptive::AdaptiveSettings>,
    pub provenance: Vec<Provenance>,
}

/// Machine set-up applied before each task (module loads, shell lines, environment).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Setup {
    pub modules: Vec<String>,
    pub commands: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// A machine recipe, resolved.
#[derive(Debug, Clone)]
pub struct Machine {
    pub name: String,
    pub description: Option<String>,
    /// Where the recipe came from (`recipe:machines/della.yaml` or a path).
    pub source: String,
    pub executor: ExecutorKind,
    pub root: Option<String>,
    pub launcher: Option<String>,
    pub local_cpus: Option<u32>,
    pub local_gpus: Option<u32>,
    pub local_mem_mb: Option<u64>,
    /// The `slurm:` block, complete (built-in defaults where it is silent or absent), with
    /// the machine's `setup:` in its modules, set-up lines and environment.
    pub slurm: SlurmSettings,
    /// The `kubernetes:` block, when the machine has one.
    pub kubernetes: Option<KubernetesSettings>,
    pub setup: Setup,
    pub job_type_names: Vec<String>,
    pub unverified: Vec<String>,
    /// Where each `slurm:` and `kubernetes:` setting comes from (`machine.slurm.burst`, ...),
    /// built-in defaults included.
    pub provenance: Vec<Provenance>,
}

/// A campaign, resolved and ready to compile.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    /// `campaign.seed`: an optional salt mixed into every task's `{{seed}}` (change it to
    /// draw new random streams for the whole campaign; see `task_id::task_seed`).
    pub seed_salt: Option<String>,
    /// The campaign file as given.
    pub file: PathBuf,
    /// `{output}/{version}_{name}`.
    pub campaign_dir: PathBuf,
    pub machine: Machine,
    /// Steps in file order.
    pub steps: Vec<Step>,
    /// `notify:` of the campaign over the machine's; `None` when nothing is to be told.
    pub notify: Option<crate::machine_settings::notify::NotifySettings>,
    /// The resolved configuration (campaign file + machine), stored as a snapshot.
    pub snapshot: Snapshot,
}

impl Campaign {
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }
    /// Directory the campaign file is in (relative paths in the file are relative to it).
    pub fn base_dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// The resolved configuration as JSON (`{campaign_file, campaign, machine_source, machine}`,
/// what `metadata/config.json` holds), read as a `serde_json::Value` through `Deref`.
///
/// It is built the first time it is read, from the documents the campaign was loaded from:
/// `flow validate` never builds it, so a campaign holding a list of millions of values does
/// not pay 72 bytes per value for a JSON copy it does not use.
#[derive(Clone)]
pub struct Snapshot {
    documents: Arc<SnapshotDocuments>,
    json: OnceLock<serde_json::Value>,
}

struct SnapshotDocuments {
    campaign_file: String,
    campaign: Node,
    machine_source: String,
    machine: Node,
}

impl Snapshot {
    pub fn new(
        campaign_file: String,
        campaign: Node,
        machine_source: String,
        machine: Node,
    ) -> Snapshot {
        Snapshot {
            documents: Arc::new(SnapshotDocuments {
                campaign_file,
                campaign,
                machine_source,
                machine,
            }),
            json: OnceLock::new(),
        }
    }

    /// The snapshot as JSON (built on the first call).
    pub fn json(&self) -> &serde_json::Value {
        self.json.get_or_init(|| {
            let d = &self.documents;
            serde_json::json!({
                "campaign_file": d.campaign_file,
                "campaign": d.campaign.to_json(),
                "machine_source": d.machine_source,
                "machine": d.machine.to_json(),
            })
        })
    }
}

impl std::ops::Deref for Snapshot {
    type Target = serde_json::Value;

    fn deref(&self) -> &serde_json::Value {
        self.json()
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.json(), f)
    }
}
