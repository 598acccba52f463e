//! The machine's Slurm settings: the `slurm:` block of a machine recipe
//! (`slurm: {account: ..., max_array_size: 1000, submit_rate: 2/s}`) plus the module loads
//! and environment set-up every job script starts with.

use crate::rate_limit::Rate;
use super::time_format::parse_human_duration;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How a GPU request (`Resources::gpus`, GPUs per node) is written in the batch script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpuOption {
    /// `--gres=gpu:N` (GPUs per node; understood by every Slurm).
    #[default]
    Gres,
    /// `--gpus-per-node=N`.
    GpusPerNode,
}

/// Where final states come from once a job has left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountingSource {
    /// sacct when accounting works, else scontrol and the jobcomp file (decided on first use).
    #[default]
    Auto,
    Sacct,
    Scontrol,
}

/// The Slurm settings of a machine. Every field has a default, so `slurm: {}` is valid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", default)]
pub struct SlurmConfig {
    /// Default `--account` when the job type does not name one.
    pub account: Option<String>,
    /// Default `--partition` when the job type does not name one.
    pub partition: Option<String>,
    /// Default `--qos` when the job type does not name one.
    pub qos: Option<String>,
    /// Largest array flow submits (Slurm's MaxArraySize is 1001 by default).
    pub max_array_size: u32,
    /// Most array elements flow keeps in the queue at once (the site's MaxSubmitJobs,
    /// less a margin); further arrays wait for earlier ones to drain. No limit when unset.
    pub max_submitted: Option<u32>,
    /// Calls per time unit to any Slurm command (`2/s`, `30/min`).
    #[serde(deserialize_with = "rate")]
    pub submit_rate: Rate,
    /// Calls the rate limiter lets through back to back.
    pub burst: u32,
    /// Time between two polling cycles (one squeue each).
    #[serde(deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// How long an element that left the queue may take to show its result file (network
    /// file systems lag) before it is classified from Slurm's record alone.
    #[serde(deserialize_with = "duration")]
    pub result_grace: Duration,
    /// Modules loaded at the top of every job (`module load <each>`, quoted).
    pub modules: Vec<String>,
    /// Shell lines run verbatim before the task (e.g. `source /opt/site/env.sh`); these are
    /// the machine owner's code, not user data, and are not quoted.
    pub setup: Vec<String>,
    /// Environment variables exported in every job (values quoted).
    pub env: BTreeMap<String, String>,
    /// A handlebars template replacing `recipes/templates/slurm-array.sbatch.hbs`.
    pub template: Option<PathBuf>,
    pub gpu_option: GpuOption,
    pub accounting: AccountingSource,
    /// Attempts for a Slurm command failing with a transient error.
    pub transient_attempts: u32,
    /// Directory holding sbatch, squeue, ... when they are not on PATH.
    pub bin_dir: Option<PathBuf>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            account: None,
            partition: None,
            qos: None,
            max_array_size: 1000,
            max_submitted: None,
            submit_rate: Rate {
                calls: 2.0,
                per: Duration::from_secs(1),
            },
            burst: 5,
            poll_interval: Duration::from_secs(30),
            result_grace: Duration::from_secs(60),
            modules: Vec::new(),
            setup: Vec::new(),
            env: BTreeMap::new(),
            template: None,
            gpu_option: GpuOption::Gres,
            accounting: AccountingSource::Auto,
            transient_attempts: 6,
            bin_dir: None,
        }
    }
}

fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
    Rate::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_human_duration(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_block_gives_defaults() {
        let config: SlurmConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, SlurmConfig::default());
    }

    #[test]
    fn recipe_values_parse() {
        let config: SlurmConfig = serde_json::from_str(
            r#"{"account": "m4943", "max_array_size": 500, "submit_rate": "30/min",
                "poll_interval": "10s", "max_submitted": 5000, "modules": ["gcc/12"],
                "gpu_option": "gpus-per-node", "unknown_key": 1}"#,
        )
        .unwrap();
        assert_eq!(config.account.as_deref(), Some("m4943"));
        assert_eq!(config.max_array_size, 500);
        assert_eq!(config.submit_rate.calls, 30.0);
        assert_eq!(config.poll_interval, Duration::from_secs(10));
        assert_eq!(config.gpu_option, GpuOption::GpusPerNode);
        assert!(serde_json::from_str::<SlurmConfig>(r#"{"submit_rate": "fast"}"#).is_err());
    }
}
