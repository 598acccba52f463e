//! The command line: argument parsing only; each command lives in `commands`.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "flow",
    version,
    about = "Declarative campaigns for computational science: plan, run, resume."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PlanFormat {
    Text,
    Json,
    Dot,
    Mermaid,
    /// The Kubernetes Job manifests of every batch, one JSON file each, into `-o DIR`.
    Manifests,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExecutorArg {
    Local,
    Slurm,
    Kubernetes,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, merge and schema-check a campaign; report every error with its location.
    Validate {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Compile the campaign and show what would run, without running anything.
    Plan {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Show every resolved setting and the file:line it came from.
        #[arg(long)]
        explain: bool,
        #[arg(long, value_enum)]
        executor: Option<ExecutorArg>,
        /// Directory for `--format manifests`; `--output json` (or text, dot, mermaid) is
        /// the same as `--format json`, like every other command's `--output`.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Validate every recorded output in full (HDF5 through the library), not only
        /// those whose fingerprint changed.
        #[arg(long)]
        verify: bool,
        /// Where `flow run --state-dir` keeps the state database.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// qe-scf: show this structure's pw.in and k-points (its name as `flow plan` lists
        /// it, e.g. `structures/si.extxyz` or `structures/many.extxyz#3`) instead of the first.
        #[arg(long, conflicts_with = "task")]
        structure: Option<String>,
        /// qe-scf: show the pw.in and k-points of this task's structure (a task id or a
        /// unique prefix of one).
        #[arg(long)]
        task: Option<String>,
    },
    /// Run the campaign; safe to re-run: finished tasks are never run again.
    Run {
        file: PathBuf,
        #[arg(long, value_enum)]
        executor: Option<ExecutorArg>,
        /// Keep running after the terminal closes (log and pid in metadata/).
        #[arg(long)]
        detach: bool,
        /// Directory for the state database when the campaign is on a network file system.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Set an unusable (empty or corrupt) state database aside as `state.db.corrupt-<time>`
        /// and start the state over: tasks it recorded as done run again.
        #[arg(long)]
        reset_state: bool,
    },
    /// Per-step counts by state, failures with their reason, elapsed time and ETA.
    Status {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// Refresh every few seconds until interrupted.
        #[arg(long)]
        watch: bool,
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Re-queue failed (or blocked) tasks; the next `flow run` runs them.
    Retry {
        file: PathBuf,
        #[arg(long)]
        step: Option<String>,
        /// Only failed tasks (the default: failed and blocked).
        #[arg(long)]
        failed: bool,
        #[arg(long)]
        state_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// One row per attempt: task, step, parameters, job id, state, error class, exit code,
    /// submit/start/end, duration, peak memory, CPU time, and what it requested.
    Trace {
        file: PathBuf,
        /// Only this step's attempts.
        #[arg(long)]
        step: Option<String>,
        /// `text` is tab-separated values with a header line.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Write a self-contained HTML report: step graph, timeline, durations, failures,
    /// resources used against requested, gate figures and results.
    Report {
        file: PathBuf,
        /// Where to write it (default: report.html in the campaign's qa/ directory).
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Show the logs of a task attempt (task id or a unique prefix).
    Logs {
        file: PathBuf,
        task: String,
        #[arg(long)]
        attempt: Option<u32>,
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Stop a running campaign: the driver cancels its tasks and exits.
    Cancel {
        file: PathBuf,
        #[arg(long)]
        state_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// The recipe library.
    Recipes {
        #[command(subcommand)]
        action: RecipesAction,
    },
    /// Write a commented starter campaign for a machine.
    Init {
        #[arg(long)]
        machine: String,
        /// Where to write it (default: campaign.yaml).
        #[arg(short, long, default_value = "campaign.yaml")]
        output: PathBuf,
    },
    /// Environments under a machine's shared root (build-env).
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Internal: commands run inside jobs.
    #[command(hide = true)]
    Task {
        #[command(subcommand)]
        action: TaskAction,
    },
}

#[derive(Debug, clap::Args)]
pub struct EnvTarget {
    /// The machine whose `root` to use (default: local).
    #[arg(long, default_value = "local")]
    pub machine: String,
    /// A root directory, instead of the machine's.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// `json`: one document on stdout (list and doctor).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum EnvAction {
    /// The environment files of the root and their builds.
    List(EnvTarget),
    /// Build every environment of the root that is not built yet.
    Warm(EnvTarget),
    /// Check uv, the root, its caches, Python interpreters and free disk.
    Doctor(EnvTarget),
    /// Install uv into {root}/tools/ with python3 -m pip (for machines without uv).
    Bootstrap(EnvTarget),
}

#[derive(Debug, Subcommand)]
pub enum RecipesAction {
    /// List machine recipes.
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Print a machine recipe.
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum TaskAction {
    /// Run line INDEX of a manifest written by the driver (Slurm array elements).
    RunManifest { manifest: PathBuf, index: usize },
    /// Run one launch described by a JSON file.
    RunLaunch { launch: PathBuf },
    /// Run the typed work of a task (qe-scf, build-env, md-benchmark) from its spec file.
    Exec { spec: PathBuf },
}
