//! The Slurm executor: batches of task attempts become Slurm job arrays.
//!
//! Pure cores, each in its own module and tested without processes:
//! [`array_plan`] (array sizes, the `max_submitted` window, the step-wide `max_running`
//! shared through `%` throttles), [`script`] (the sbatch script from the handlebars
//! template), [`manifest`] (one `TaskLaunch` per array index), [`squeue_output`] and
//! [`job_records`] (squeue, scontrol, sacct and jobcomp parsing), [`sacct_usage`] (MaxRSS and
//! CPU times of sacct's step records), [`job_state`] (every Slurm
//! end state to an `ErrorClass`), [`escalation`] (more time or memory on retry),
//! [`rate_limit`] (one token bucket for every Slurm call), [`slurm_cli`] (transient-failure
//! retries). [`executor`] puts them together behind the `Executor` trait.
//!
//! How the engine uses it: build a [`SlurmExecutor`] from the machine's `slurm:` block
//! ([`SlurmConfig`], serde) and the campaign's `logs/` directory and flow binary
//! ([`SlurmPaths`]); `preview` gives `flow plan` the exact scripts; `submit`, `poll`,
//! `list_jobs` (adoption after a crash), `track` (re-attach a job id from the state
//! database), `cancel` and `in_flight` run the campaign; [`escalate`] computes the
//! resources of a retry after `walltime` or `out-of-memory`. Each array element runs
//! `<flow> task run-manifest <manifest> <index>`, which must write the attempt's
//! `AttemptOutcome` as JSON to its `result_path` (see [`result_file`]).
//!
//! Tested against real daemons by `executors/tests/slurm_executor.rs`
//! (`scripts/slurm-dev.sh up` first).

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
pub mod sacct_usage;
pub mod script;
pub mod slurm_cli;
pub mod squeue_output;
pub mod submission_record;
pub mod time_format;

pub use config::SlurmConfig;
pub use escalation::{escalate, OnRetry};
pub use executor::{ArrayPreview, SlurmExecutor, SlurmPaths};
