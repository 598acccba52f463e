//! The Slurm executor: batches of task attempts become Slurm job arrays.
//!
//! Pure cores, each in its own module and tested without processes: [`script`] (the sbatch
//! script from the handlebars template), [`array_indices`] (`--array` values and the index
//! lists Slurm prints), [`squeue_output`] and [`job_records`] (squeue, scontrol, sacct and
//! jobcomp parsing), [`sacct_usage`] (MaxRSS and CPU times of sacct's step records),
//! [`job_state`] (every Slurm end state to an `ErrorClass`), [`slurm_cli`] (one rate limiter
//! for every Slurm call, transient-failure retries). [`executor`] puts them together behind
//! the `Executor` trait. What the Kubernetes backend uses too lives beside this module:
//! [`crate::batching`] (array sizes, the `max_submitted` window, the step-wide
//! `max_running` shared through `%` throttles), [`crate::manifest`] (one `TaskLaunch` per
//! array index), [`crate::rate_limit`], [`crate::escalation`] (more time or memory on retry)
//! and [`crate::result_document`].
//!
//! How the engine uses it: build a [`SlurmExecutor`] from the machine's typed Slurm
//! settings (`flow_dsl::machine_settings::SlurmSettings`, parsed and defaulted by the DSL)
//! and the campaign's `logs/` directory and flow binary ([`SlurmPaths`]); `preview` gives
//! `flow plan` the exact scripts; `submit`, `poll`, `list_jobs` (adoption after a crash),
//! `track` (re-attach a job id from the state database), `cancel` and `in_flight` run the
//! campaign; [`crate::escalation::escalate`] computes the resources of a retry after
//! `walltime` or `out-of-memory`. Each array element runs
//! `<flow> task run-manifest <manifest> <index>`, which must write the attempt's
//! `AttemptOutcome` as JSON to its `result_path` (see [`crate::result_document`]).
//!
//! Tested against real daemons by `executors/tests/slurm_executor.rs`
//! (`scripts/slurm-dev.sh up` first).

pub mod array_indices;
pub mod executor;
pub mod job_records;
pub mod job_state;
pub mod job_tag;
pub mod quote;
pub mod sacct_usage;
pub mod script;
pub mod slurm_cli;
pub mod squeue_output;
pub mod submission_record;
pub mod time_format;

pub use executor::{ArrayPreview, SlurmExecutor, SlurmPaths};
