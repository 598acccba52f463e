//! The `qe-scf` step's own settings (the kind-specific fields of a campaign step; see
//! `schemas/steps/qe-scf.schema.json`). Unknown fields are ignored: the common step fields
//! (`kind`, `needs`, `resources`, ...) arrive in the same object.

use crate::params::{locate, Params};
use crate::policy::RecoverySpec;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The kind-specific settings of a `qe-scf` step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Settings {
    /// Structure files: a path or glob, or a list of them (relative to the campaign file).
    pub structures: StructureSources,
    /// Which pseudopotentials to use.
    pub pseudopotentials: PseudoSettings,
    /// Brillouin-zone sampling (default: spacing 0.15 Å⁻¹).
    #[serde(default)]
    pub kpoints: KpointSettings,
    /// Wavefunction cutoff (Ry); default: the largest the family suggests for the elements.
    #[serde(default)]
    pub ecutwfc: Option<f64>,
    /// Charge-density cutoff (Ry); default: the family's suggestion (its dual × ecutwfc).
    #[serde(default)]
    pub ecutrho: Option<f64>,
    /// Disable symmetry (`nosym`), default true: training data keeps every geometry as is.
    #[serde(default = "yes")]
    pub nosym: bool,
    /// Smearing asked for from the start (metals). Without it, occupations are fixed,
    /// except with Fe/Co/Ni, which get Marzari–Vanderbilt 0.01 Ry.
    #[serde(default)]
    pub smearing: Option<SmearingSettings>,
    /// starting_magnetization per element, overriding the defaults (Fe 0.5, Co 0.4, Ni 0.3).
    #[serde(default)]
    pub starting_magnetization: BTreeMap<String, f64>,
    /// Extra pw.x parameters for every attempt (pw.x names, or `namelist.name`).
    #[serde(default)]
    pub parameters: Params,
    /// The recovery policy: `default`, `diagonalization-cycle`, a file, or inline.
    #[serde(default)]
    pub recovery: RecoverySpec,
    /// Whether recovery may turn smearing on (false for insulators).
    #[serde(default = "yes")]
    pub allow_smearing: bool,
    /// Overrides the policy's attempt budget.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Largest acceptable |force| on any atom, eV/Å (default 1000).
    #[serde(default = "thousand")]
    pub max_force: f64,
    /// The pw.x program (default `pw.x`).
    #[serde(default = "pw_x")]
    pub pw_command: String,
    /// k-point pools (`-nk`); default: chosen from the ranks and k-points.
    #[serde(default)]
    pub pools: Option<u32>,
    /// What to keep after success.
    #[serde(default)]
    pub keep: KeepSettings,
}

fn yes() -> bool {
    true
}
fn thousand() -> f64 {
    1000.0
}
fn pw_x() -> String {
    "pw.x".into()
}

/// One pattern or several.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum StructureSources {
    /// One path or glob.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl StructureSources {
    /// The patterns, in order.
    pub fn patterns(&self) -> Vec<String> {
        match self {
            StructureSources::One(s) => vec![s.clone()],
            StructureSources::Many(v) => v.clone(),
        }
    }
}

/// Pseudopotential choice.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct PseudoSettings {
    /// A shipped family (`qe-debian`, `sssp-efficiency-1.1`) or a family YAML path.
    pub family: String,
    /// The directory holding the files (default: the family's own, if it has one).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Per-element file overrides.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// k-point sampling.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct KpointSettings {
    /// Reciprocal spacing in Å⁻¹ (2π included): N_i = max(1, ⌊|b_i|/spacing⌋).
    #[serde(default)]
    pub spacing: Option<f64>,
    /// Γ only (pw.x's gamma tricks).
    #[serde(default)]
    pub gamma: bool,
    /// An explicit grid.
    #[serde(default)]
    pub grid: Option<[u32; 3]>,
}

impl Default for KpointSettings {
    fn default() -> Self {
        KpointSettings {
            spacing: Some(0.15),
            gamma: false,
            grid: None,
        }
    }
}

/// Smearing asked for by the step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct SmearingSettings {
    /// pw.x's `smearing` (`mv`, `gaussian`, `fd`, `mp`), default `mv`.
    #[serde(default = "mv", rename = "type")]
    pub kind: String,
    /// Width, Ry (default 0.01).
    #[serde(default = "hundredth")]
    pub degauss: f64,
}

fn mv() -> String {
    "mv".into()
}
fn hundredth() -> f64 {
    0.01
}

/// What stays on disk after a structure ends.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct KeepSettings {
    /// Keep `charge-density.dat` after success (default false).
    #[serde(default)]
    pub charge_density: bool,
    /// Keep the last attempt's scratch (wavefunctions, mixing files, charge density) of a
    /// structure the policy gave up on (default false: removed; `fatal.json` stays).
    #[serde(default)]
    pub scratch_on_failure: bool,
}

/// Settings that are well-formed JSON but make no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("qe-scf settings, `{field}`: {message}")]
pub struct SettingsError {
    /// The offending field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Settings {
    /// Deserialises the step's JSON object and checks the values.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, SettingsError> {
        let s: Settings = serde_json::from_value(value.clone()).map_err(|e| SettingsError {
            field: "(step)".into(),
            message: e.to_string(),
        })?;
        s.validate()?;
        Ok(s)
    }

    /// Checks ranges and parameter names.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |field: &str, message: String| SettingsError {
            field: field.into(),
            message,
        };
        if let Some(sp) = self.kpoints.spacing {
            if !(sp > 0.0 && sp.is_finite()) {
                return Err(bad(
                    "kpoints.spacing",
                    format!("must be a positive number of Å⁻¹, got {sp}"),
                ));
            }
        }
        if let Some(g) = self.kpoints.grid {
            if g.contains(&0) {
                return Err(bad("kpoints.grid", "every entry must be at least 1".into()));
            }
        }
        for (f, v) in [("ecutwfc", self.ecutwfc), ("ecutrho", self.ecutrho)] {
            if let Some(x) = v {
                if !(x > 0.0 && x.is_finite()) {
                    return Err(bad(f, format!("must be positive (Ry), got {x}")));
                }
            }
        }
        if self.max_force.is_nan() || self.max_force <= 0.0 {
            return Err(bad("max_force", "must be positive (eV/Å)".into()));
        }
        if self.max_attempts == Some(0) {
            return Err(bad("max_attempts", "must be at least 1".into()));
        }
        if self.pools == Some(0) {
            return Err(bad("pools", "must be at least 1".into()));
        }
        for (key, value) in &self.parameters {
            locate(key).map_err(|e| bad(&format!("parameters.{key}"), e.to_string()))?;
            crate::params::fortran_value(key, value)
                .map_err(|e| bad(&format!("parameters.{key}"), e.to_string()))?;
        }
        if self.structures.patterns().is_empty() {
            return Err(bad("structures", "no structure files given".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_step_with_common_fields() {
        let s = Settings::from_json(&json!({
            "kind": "qe-scf", "needs": [], "resources": {"job_type": "cpu"},
            "structures": "structures/*.extxyz",
            "pseudopotentials": {"family": "sssp-efficiency-1.1", "dir": "/pseudo"},
        }))
        .unwrap();
        assert_eq!(s.kpoints.spacing, Some(0.15));
        assert!(s.nosym && s.allow_smearing);
        assert_eq!(s.max_force, 1000.0);
        assert_eq!(s.recovery, RecoverySpec::Named("default".into()));
        assert_eq!(s.pw_command, "pw.x");
    }

    #[test]
    fn inline_recovery_and_parameters() {
        let s = Settings::from_json(&json!({
            "structures": ["a.extxyz", "b/POSCAR"],
            "pseudopotentials": {"family": "qe-debian"},
            "kpoints": {"gamma": true},
            "parameters": {"conv_thr": 1e-8, "system.lda_plus_u": false},
            "recovery": [{"match": "scf-not-converged", "set": {"mixing_beta": 0.2}}],
            "allow_smearing": false
        }))
        .unwrap();
        assert!(matches!(s.recovery, RecoverySpec::Handlers(_)));
        assert_eq!(s.structures.patterns().len(), 2);
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = Settings::from_json(&json!({
            "structures": "a.xyz", "pseudopotentials": {"family": "qe-debian"},
            "kpoints": {"spacing": -1}
        }))
        .unwrap_err();
        assert_eq!(e.field, "kpoints.spacing");
        let e = Settings::from_json(&json!({
            "structures": "a.xyz", "pseudopotentials": {"family": "qe-debian"},
            "parameters": {"outdir": "/tmp"}
        }))
        .unwrap_err();
        assert_eq!(e.field, "parameters.outdir");
    }
}
