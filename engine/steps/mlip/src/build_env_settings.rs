//! The kind-specific settings of a build-env step (see `schemas/steps/build-env.schema.json`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a build-env step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOn {
    /// Where the driver runs (login nodes reach package indexes; compute nodes often do not).
    #[default]
    Driver,
    /// As an ordinary task on a compute node.
    Compute,
}

/// Settings of a build-env step. Unknown fields (the common step fields) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct BuildEnvSettings {
    /// An environment name (`mace`: `{root}/environments/mace.py`, else the recipe library's
    /// `recipes/environments/mace.py`) or a path to an environment file.
    pub environment: String,
    /// The environment root; overrides the machine recipe's `root`.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Where the build runs.
    #[serde(default)]
    pub run_on: RunOn,
    /// Let uv download a Python when the machine has none that fits.
    #[serde(default)]
    pub allow_python_download: bool,
}

/// The build-env step's `Settings` (the name every step crate exposes).
pub type Settings = BuildEnvSettings;

impl BuildEnvSettings {
    /// Whether `environment` is a path rather than a name.
    pub fn environment_is_path(&self) -> bool {
        self.environment.contains('/') || self.environment.ends_with(".py")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_step_json() {
        let s: BuildEnvSettings =
            serde_json::from_str(r#"{"kind": "build-env", "environment": "mace", "needs": []}"#)
                .unwrap();
        assert_eq!(s.environment, "mace");
        assert_eq!(s.run_on, RunOn::Driver);
        assert!(!s.environment_is_path());
        let s: BuildEnvSettings = serde_json::from_str(
            r#"{"environment": "envs/my.py", "root": "/r", "run_on": "compute"}"#,
        )
        .unwrap();
        assert!(s.environment_is_path());
        assert_eq!(s.run_on, RunOn::Compute);
        assert!(serde_json::from_str::<BuildEnvSettings>(
            r#"{"environment": "x", "run_on": "login"}"#
        )
        .is_err());
    }
}
