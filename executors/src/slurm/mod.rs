//! The Slurm executor: batches of task attempts become Slurm job arrays.
//!
//! Pure cores, each in its own module and tested without processes:
//! [`array_plan`] (array sizes, the `max_submitted` window, the step-wide `max_running`
//! shared through `%` throttles), [`script`] (the sbatch script from the handlebars
//! template), [`manifest`] (one `TaskLaunch` per array index), [`squeue_output`] and
//! [`job_records`] (squeue, scontrol, sacct and jobcomp parsing), [`job_state`] (every Slurm
//! end state to an `ErrorClass`), [`escalation`] (more time or memory on retry),
//! [`rate_limit`] (one token bucket for every Slurm call), [`slurm_cli`] (transient-failure
//! retries). [`executor`] puts them together behind the `Executor` trait.

pub mod array_indices;
pub mod array_plan;
pub mod config;
pub mod escalation;
pub mod executor;
pub mod job_records;
pub mod job_state;
pub mod job_tag;
pub mod manifest;
pub mod quote;
pub mod rate_limit;
pub mod result_file;
pub mod script;
pub mod slurm_cli;
pub mod squeue_output;
pub mod submission_record;
pub mod time_format;

pub use config::SlurmConfig;
pub use escalation::{escalate, OnRetry};
pub use executor::{ArrayPreview, SlurmExecutor, SlurmPaths};
