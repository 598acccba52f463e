//! flow's `build-env` and `md-benchmark` steps: machine-learning-potential environments built
//! with uv under one root, and the gate that proves running the calculator out of process (IPC)
//! costs little enough.
//!
//! Pure cores: [`pep723`], [`python_requirement`], [`env_hash`], [`env_root`] (paths and task
//! variables), [`model_string`], [`gate`], the result half of [`md_benchmark`], the judging half
//! of [`build_lock`]. I/O edges: [`env_build`] (uv), [`env_catalog`] (`flow env list|warm|doctor`),
//! [`md_benchmark::run_md_benchmark`] (the Python driver).

pub mod build_env_settings;
/// `flow_mlip::build_env::Settings`: the build-env step's settings, by the common name.
pub use build_env_settings as build_env;
pub mod build_lock;
pub mod env_build;
pub mod env_catalog;
pub mod env_hash;
pub mod env_root;
pub mod environment_file;
pub mod error;
pub mod gate;
pub mod md_benchmark;
pub mod model_string;
pub mod pep723;
pub mod process;
pub mod python_requirement;

pub use build_env_settings::{BuildEnvSettings, RunOn};
pub use env_build::{
    bootstrap_uv, build_environment, find_uv, plan_environment, BuildAction, BuildOptions,
    BuildOutcome, EnvPlan,
};
pub use env_catalog::{
    doctor, list_environments, locate_built_environment, render_doctor, warm_all,
};
pub use env_root::{available_environments, task_environment, EnvRoot};
pub use environment_file::{resolve_environment_file, EnvironmentFile};
pub use error::MlipError;
pub use gate::{gate_decision, verdict, GateDecision, GateSettings, Verdict};
pub use md_benchmark::{run_md_benchmark, BenchmarkOutcome, BenchmarkRun, MdBenchmarkSettings};
pub use model_string::{parse_model_string, ModelSpec};

/// The recipe library's environment files, shipped in the binary so `flow` can seed a root.
pub const RECIPE_ENVIRONMENTS: [(&str, &str); 4] = [
    (
        "emt",
        include_str!("../../../../recipes/environments/emt.py"),
    ),
    (
        "chgnet",
        include_str!("../../../../recipes/environments/chgnet.py"),
    ),
    (
        "mace",
        include_str!("../../../../recipes/environments/mace.py"),
    ),
    (
        "optuna",
        include_str!("../../../../recipes/environments/optuna.py"),
    ),
];
