//! The machine's Slurm settings: the `slurm:` block of a machine recipe
//! (`slurm: {account: ..., max_array_size: 1000, submit_rate: 2/s}`) plus the module loads
//! and environment set-up every job script starts with (from the machine's `setup:`).
//!
//! Defaults come from [`super::BUILTIN_DEFAULTS`] (`machine.slurm.*`), so `slurm: {}` and no
//! block at all give the same complete settings.

use super::builtin_as;
use crate::quantity::{parse_duration, Rate};
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

/// The Slurm settings of a machine, complete: every field has a value (its built-in
/// default when the block does not write it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct SlurmSettings {
    /// Default `--account` when the job type does not name one.
    #[serde(default)]
    pub account: Option<String>,
    /// Default `--partition` when the job type does not name one.
    #[serde(default)]
    pub partition: Option<String>,
    /// Default `--qos` when the job type does not name one.
    #[serde(default)]
    pub qos: Option<String>,
    /// Largest array flow submits (Slurm's MaxArraySize is 1001 by default).
    #[serde(default = "default_max_array_size")]
    pub max_array_size: u32,
    /// Most array elements flow keeps in the queue at once (the site's MaxSubmitJobs,
    /// less a margin); further arrays wait for earlier ones to drain. No limit when unset.
    #[serde(default)]
    pub max_submitted: Option<u32>,
    /// Calls per time unit to any Slurm command (`2/s`, `30/min`).
    #[serde(default = "default_submit_rate", deserialize_with = "rate")]
    pub submit_rate: Rate,
    /// Calls the rate limiter lets through back to back.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Time between two polling cycles (one squeue each).
    #[serde(default = "default_poll_interval", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// How long an element that left the queue may take to show its result file (network
    /// file systems lag) before it is classified from Slurm's record alone.
    #[serde(default = "default_result_grace", deserialize_with = "duration")]
    pub result_grace: Duration,
    /// Modules loaded at the top of every job (`module load <each>`, quoted): the
    /// machine's `setup.modules`.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Shell lines run verbatim before the task (e.g. `source /opt/site/env.sh`): the
    /// machine's `setup.commands`. These are the machine owner's code, not user data, and
    /// are not quoted.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Environment variables exported in every job (values quoted): the machine's
    /// `setup.env`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A handlebars template replacing `recipes/templates/slurm-array.sbatch.hbs` (relative
    /// paths are resolved against the campaign file's directory by the loader).
    #[serde(default)]
    pub template: Option<PathBuf>,
    #[serde(default = "default_gpu_option")]
    pub gpu_option: GpuOption,
    #[serde(default = "default_accounting")]
    pub accounting: AccountingSource,
    /// Attempts for a Slurm command failing with a transient error.
    #[serde(default = "default_transient_attempts")]
    pub transient_attempts: u32,
    /// Directory holding sbatch, squeue, ... when they are not on PATH.
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
}

impl Default for SlurmSettings {
    /// The built-in settings: what `slurm: {}` gives.
    fn default() -> Self {
        SlurmSettings {
            account: None,
            partition: None,
            qos: None,
            max_array_size: default_max_array_size(),
            max_submitted: None,
            submit_rate: default_submit_rate(),
            burst: default_burst(),
            poll_interval: default_poll_interval(),
            result_grace: default_result_grace(),
            modules: Vec::new(),
            setup: Vec::new(),
            env: BTreeMap::new(),
            template: None,
            gpu_option: default_gpu_option(),
            accounting: default_accounting(),
            transient_attempts: default_transient_attempts(),
            bin_dir: None,
        }
    }
}

fn default_max_array_size() -> u32 {
    builtin_as("machine.slurm.max_array_size").unwrap_or(1)
}

fn default_submit_rate() -> Rate {
    Rate::parse(super::builtin("machine.slurm.submit_rate")).unwrap_or(Rate {
        calls: 1.0,
        per: Duration::from_secs(1),
    })
}

fn default_burst() -> u32 {
    builtin_as("machine.slurm.burst").unwrap_or(1)
}

fn default_poll_interval() -> Duration {
    parse_duration(super::builtin("machine.slurm.poll_interval")).unwrap_or_default()
}

fn default_result_grace() -> Duration {
    parse_duration(super::builtin("machine.slurm.result_grace")).unwrap_or_default()
}

fn default_gpu_option() -> GpuOption {
    builtin_as("machine.slurm.gpu_option").unwrap_or_default()
}

fn default_accounting() -> AccountingSource {
    builtin_as("machine.slurm.accounting").unwrap_or_default()
}

fn default_transient_attempts() -> u32 {
    builtin_as("machine.slurm.transient_attempts").unwrap_or(1)
}

fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
    Rate::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// A duration as the schema allows it: text (`30s`, `2m`) or a whole number of seconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_block_gives_defaults() {
        let config: SlurmSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(config, SlurmSettings::default());
        assert_eq!(config.max_array_size, 1000);
        assert_eq!(config.submit_rate, Rate::parse("2/s").unwrap());
        assert_eq!(config.burst, 5);
        assert_eq!(config.poll_interval, Duration::from_secs(30));
        assert_eq!(config.result_grace, Duration::from_secs(60));
        assert_eq!(config.gpu_option, GpuOption::Gres);
        assert_eq!(config.accounting, AccountingSource::Auto);
        assert_eq!(config.transient_attempts, 6);
    }

    #[test]
    fn every_built_in_default_reads_as_the_default() {
        let mut seen = 0;
        for b in super::super::BUILTIN_DEFAULTS {
            let Some(key) = b.path.strip_prefix("machine.slurm.") else {
                continue;
            };
            seen += 1;
            let block = serde_json::json!({ key: super::super::builtin_json(b.value) });
            let read: SlurmSettings =
                serde_json::from_value(block).unwrap_or_else(|e| panic!("{}: {e}", b.path));
            assert_eq!(read, SlurmSettings::default(), "{}", b.path);
        }
        assert_eq!(seen, 8);
    }

    #[test]
    fn recipe_values_parse() {
        let config: SlurmSettings = serde_json::from_str(
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
        assert!(serde_json::from_str::<SlurmSettings>(r#"{"submit_rate": "fast"}"#).is_err());
        let seconds: SlurmSettings = serde_json::from_str(r#"{"result_grace": 90}"#).unwrap();
        assert_eq!(seconds.result_grace, Duration::from_secs(90));
    }
}
