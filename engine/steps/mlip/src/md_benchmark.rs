//! md-benchmark: runs the shipped Python driver with an environment's interpreter, reads its
//! JSON result, and computes the IPC overhead and verdict.
//!
//! The pure parts ([`parse_driver_output`], [`BenchmarkOutcome::from_result`]) are tested
//! without processes; [`run_md_benchmark`] is the I/O edge.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env_build::write_atomically;
use crate::error::{io_error, MlipError};
use crate::gate::{gate_decision, verdict, GateDecision, GateSettings, Verdict};
use crate::process::{render_command, tail};

/// The driver's source, shipped inside the crate and written out at run time.
pub const DRIVER_SOURCE: &str = include_str!("../python/md_benchmark.py");
/// The file name the driver is written to.
pub const DRIVER_FILE: &str = "flow_md_benchmark.py";
/// The result schema the driver prints.
pub const RESULT_SCHEMA: &str = "flow-md-benchmark/1";

/// `system:` — the crystal simulated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default)]
pub struct SystemSettings {
    /// An fcc element ASE knows a lattice constant for (`Cu`, `Ag`, `Au`, `Al`, `Ni`, `Pd`, `Pt`).
    pub element: String,
    /// About how many atoms (the closest near-cubic supercell of the 4-atom fcc cell).
    pub atoms: u32,
}

impl Default for SystemSettings {
    fn default() -> Self {
        SystemSettings {
            element: "Cu".into(),
            atoms: 1000,
        }
    }
}

/// `md:` — the dynamics run in each mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default)]
pub struct MdSettings {
    /// VelocityVerlet steps per run.
    pub steps: u32,
    /// Untimed steps before the timed loop in each run (first calls pay for lazy set-up).
    pub warmup_steps: u32,
    /// Time step in femtoseconds.
    pub timestep_fs: f64,
    /// Maxwell–Boltzmann temperature of the start (K).
    #[serde(rename = "temperature_K", alias = "temperature_k")]
    pub temperature_k: f64,
}

impl Default for MdSettings {
    fn default() -> Self {
        MdSettings {
            steps: 5000,
            warmup_steps: 5,
            timestep_fs: 1.0,
            temperature_k: 300.0,
        }
    }
}

/// The kind-specific settings of an md-benchmark step (see
/// `schemas/steps/md-benchmark.schema.json`). Unknown fields (the common step fields) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct MdBenchmarkSettings {
    /// Model string (`mace-medium`, `chgnet`, `emt`).
    pub model: String,
    /// The crystal.
    #[serde(default)]
    pub system: SystemSettings,
    /// The dynamics.
    #[serde(default)]
    pub md: MdSettings,
    /// Runs per mode; the median is reported.
    #[serde(default = "one")]
    pub repeats: u32,
    /// `cpu`, `cuda`, `cuda:N`; `auto` picks `cuda` when the step's resources ask for GPUs.
    #[serde(default = "auto")]
    pub device: String,
    /// Seed of the Maxwell–Boltzmann velocities (run `r` uses `seed + r`).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Thresholds and what MARGINAL/FAIL do downstream.
    #[serde(default)]
    pub gate: GateSettings,
}

fn one() -> u32 {
    1
}
fn auto() -> String {
    "auto".into()
}
fn default_seed() -> u64 {
    12345
}

/// The md-benchmark step's `Settings` (the name every step crate exposes).
pub type Settings = MdBenchmarkSettings;

/// What the driver measured (its JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverResult {
    /// `flow-md-benchmark/1`.
    pub schema: String,
    /// Element simulated.
    pub element: String,
    /// Atoms actually simulated.
    pub atoms: u64,
    /// Timed steps per run.
    pub steps: u64,
    /// Untimed warm-up steps before each run.
    #[serde(default)]
    pub warmup_steps: u64,
    /// Time step (fs).
    pub timestep_fs: f64,
    /// Start temperature (K).
    #[serde(rename = "temperature_K")]
    pub temperature_k: f64,
    /// Runs per mode.
    pub repeats: u64,
    /// Model argument given to setup().
    pub model: String,
    /// Device given to setup().
    pub device: String,
    /// The calculator's class name.
    pub calculator: String,
    /// Each direct run's MD-loop seconds.
    pub direct_s: Vec<f64>,
    /// Each IPC run's MD-loop seconds.
    pub ipc_s: Vec<f64>,
    /// Median of `direct_s`.
    pub direct_median_s: f64,
    /// Median of `ipc_s`.
    pub ipc_median_s: f64,
    /// Seconds setup() took in the driver (not timed in the runs).
    pub setup_s: f64,
    /// Largest |ΔE_total| per atom over a direct run (eV), an integration sanity figure.
    #[serde(rename = "energy_drift_direct_eV_per_atom")]
    pub energy_drift_direct: f64,
    /// Same over an IPC run.
    #[serde(rename = "energy_drift_ipc_eV_per_atom")]
    pub energy_drift_ipc: f64,
    /// Final total energy per atom, direct (eV).
    #[serde(rename = "final_total_energy_direct_eV_per_atom")]
    pub final_energy_direct: f64,
    /// Final total energy per atom, IPC (eV): equal to direct up to float noise.
    #[serde(rename = "final_total_energy_ipc_eV_per_atom")]
    pub final_energy_ipc: f64,
    /// Python version of the environment.
    pub python: String,
    /// ASE version.
    pub ase: String,
    /// Host that ran it.
    pub host: String,
}

/// The stored outcome: figures, overhead, verdict and gate decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchmarkOutcome {
    /// The raw measurement.
    pub result: DriverResult,
    /// `ipc_median_s - direct_median_s`.
    pub overhead_s: f64,
    /// `100 * overhead_s / direct_median_s`.
    pub overhead_percent: f64,
    /// PASS / MARGINAL / FAIL.
    pub verdict: Verdict,
    /// What the engine does downstream.
    pub decision: GateDecision,
}

impl BenchmarkOutcome {
    /// Computes overhead, verdict and gate decision from a driver result (pure).
    /// Errors: [`MlipError::ImplausibleFigures`] for non-positive or non-finite medians.
    pub fn from_result(result: DriverResult, gate: &GateSettings) -> Result<Self, MlipError> {
        let (direct, ipc) = (result.direct_median_s, result.ipc_median_s);
        if !(direct.is_finite() && ipc.is_finite() && direct > 0.0 && ipc > 0.0) {
            return Err(MlipError::ImplausibleFigures(format!(
                "direct {direct} s, ipc {ipc} s"
            )));
        }
        let overhead_s = ipc - direct;
        let overhead_percent = 100.0 * overhead_s / direct;
        let verdict = verdict(overhead_percent, gate);
        let summary = summary_line(&result, overhead_s, overhead_percent);
        let decision = gate_decision(verdict, gate, &summary);
        Ok(BenchmarkOutcome {
            result,
            overhead_s,
            overhead_percent,
            verdict,
            decision,
        })
    }

    /// One line with the figures, for logs, `flow status` and gate messages.
    pub fn summary(&self) -> String {
        format!(
            "{} {}",
            self.verdict,
            summary_line(&self.result, self.overhead_s, self.overhead_percent)
        )
    }
}

fn summary_line(r: &DriverResult, overhead_s: f64, overhead_percent: f64) -> String {
    format!(
        "{} atoms, {} steps, median of {}: direct {:.3} s, IPC {:.3} s, overhead {:+.3} s ({:+.2}%)",
        r.atoms, r.steps, r.repeats, r.direct_median_s, r.ipc_median_s, overhead_s, overhead_percent
    )
}

/// Reads the driver's result from its stdout: the last non-empty line must be the JSON object.
/// Errors: [`MlipError::BenchmarkOutput`] quoting `stderr`'s end.
pub fn parse_driver_output(stdout: &str, stderr: &str) -> Result<DriverResult, MlipError> {
    let fail = |reason: String| MlipError::BenchmarkOutput {
        reason,
        stderr_tail: tail(stderr, 20),
    };
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| fail("empty output".into()))?;
    let result: DriverResult =
        serde_json::from_str(line).map_err(|e| fail(format!("{e} in `{line}`")))?;
    if result.schema != RESULT_SCHEMA {
        return Err(fail(format!(
            "schema `{}`, expected `{RESULT_SCHEMA}`",
            result.schema
        )));
    }
    Ok(result)
}

/// Resolves `auto` to `cuda` when the step asked for GPUs, else `cpu`; other values pass through.
pub fn resolve_device(device: &str, gpus_requested: bool) -> String {
    match device {
        "auto" if gpus_requested => "cuda".into(),
        "auto" => "cpu".into(),
        other => other.into(),
    }
}

/// Everything [`run_md_benchmark`] needs.
#[derive(Debug, Clone)]
pub struct BenchmarkRun<'a> {
    /// The environment's python (`{env}/bin/python`).
    pub python: &'a Path,
    /// The environment file providing `setup()` (`{env}/flow_environment.py`).
    pub environment_file: &'a Path,
    /// The model argument for setup().
    pub model: &'a str,
    /// Resolved device (see [`resolve_device`]).
    pub device: &'a str,
    /// The step's settings.
    pub settings: &'a MdBenchmarkSettings,
    /// A directory for the driver file and the result (the task's work dir).
    pub work_dir: &'a Path,
    /// Extra environment variables (from `env_root::task_environment`).
    pub env: &'a [(String, String)],
}

/// Writes the driver into `work_dir`, runs it, stores its stdout as `md-benchmark.json` there,
/// and returns the outcome. Errors: [`MlipError::Launch`], [`MlipError::CommandFailed`] (the
/// driver crashed: the env lacks ASE, setup() raised, ...), [`MlipError::BenchmarkOutput`],
/// [`MlipError::ImplausibleFigures`], [`MlipError::Io`].
pub fn run_md_benchmark(run: &BenchmarkRun<'_>) -> Result<BenchmarkOutcome, MlipError> {
    std::fs::create_dir_all(run.work_dir).map_err(io_error("creating", run.work_dir))?;
    let driver: PathBuf = run.work_dir.join(DRIVER_FILE);
    write_atomically(&driver, DRIVER_SOURCE)?;
    let s = run.settings;
    let mut command = Command::new(run.python);
    command
        .arg(&driver)
        .arg("--environment-file")
        .arg(run.environment_file)
        .args([
            "--model",
            run.model,
            "--device",
            run.device,
            "--element",
            &s.system.element,
        ])
        .args([
            "--atoms",
            &s.system.atoms.to_string(),
            "--steps",
            &s.md.steps.to_string(),
        ])
        .args(["--warmup-steps", &s.md.warmup_steps.to_string()])
        .args(["--timestep-fs", &s.md.timestep_fs.to_string()])
        .args(["--temperature-k", &s.md.temperature_k.to_string()])
        .args([
            "--repeats",
            &s.repeats.max(1).to_string(),
            "--seed",
            &s.seed.to_string(),
        ])
        .envs(run.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PYTHONUNBUFFERED", "1");
    let output = command.output().map_err(|source| MlipError::Launch {
        program: run.python.display().to_string(),
        source,
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(MlipError::CommandFailed {
            command: render_command(&command),
            status: output.status.to_string(),
            stderr_tail: tail(&stderr, 25),
        });
    }
    let result = parse_driver_output(&stdout, &stderr)?;
    let outcome = BenchmarkOutcome::from_result(result, &s.gate)?;
    let stored = serde_json::to_string_pretty(&outcome).unwrap_or_default();
    write_atomically(&run.work_dir.join("md-benchmark.json"), &stored)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::GateAction;

    fn sample(direct: f64, ipc: f64) -> String {
        format!(
            r#"{{"schema": "flow-md-benchmark/1", "element": "Cu", "atoms": 108, "steps": 50, "timestep_fs": 1.0,
            "temperature_K": 300.0, "repeats": 3, "model": "", "device": "cpu", "calculator": "EMT",
            "direct_s": [{direct}], "ipc_s": [{ipc}], "direct_median_s": {direct}, "ipc_median_s": {ipc},
            "setup_s": 0.01, "energy_drift_direct_eV_per_atom": 1e-5, "energy_drift_ipc_eV_per_atom": 1e-5,
            "final_total_energy_direct_eV_per_atom": 0.1, "final_total_energy_ipc_eV_per_atom": 0.1,
            "python": "3.11.7", "ase": "3.29.0", "host": "h"}}"#
        )
        .replace('\n', " ")
    }

    #[test]
    fn parses_the_last_line_and_computes_overhead() {
        let out = format!("noise\n{}\n\n", sample(2.0, 2.1));
        let r = parse_driver_output(&out, "").unwrap();
        let o = BenchmarkOutcome::from_result(r, &GateSettings::default()).unwrap();
        assert!((o.overhead_s - 0.1).abs() < 1e-9);
        assert!((o.overhead_percent - 5.0).abs() < 1e-9);
        assert_eq!(o.verdict, Verdict::Marginal);
        assert!(matches!(o.decision, GateDecision::Warn(_)));
        assert!(o.summary().starts_with("MARGINAL 108 atoms, 50 steps, median of 3: direct 2.000 s, IPC 2.100 s, overhead +0.100 s (+5.00%)"), "{}", o.summary());
    }

    #[test]
    fn forced_fail_stops() {
        let r = parse_driver_output(&sample(1.0, 1.01), "").unwrap();
        let strict = GateSettings {
            pass_below: crate::gate::Percent(0.0),
            marginal_below: crate::gate::Percent(0.0),
            ..GateSettings::default()
        };
        let o = BenchmarkOutcome::from_result(r, &strict).unwrap();
        assert_eq!(o.verdict, Verdict::Fail);
        assert!(matches!(o.decision, GateDecision::Stop(ref m) if m.contains("blocked by gate")));
        let _ = GateAction::Stop;
    }

    #[test]
    fn bad_output_is_reported() {
        assert!(matches!(
            parse_driver_output("", "Traceback"),
            Err(MlipError::BenchmarkOutput { .. })
        ));
        let err = parse_driver_output("{\"schema\": 1}", "boom").unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        let r = parse_driver_output(&sample(0.0, 1.0), "").unwrap();
        assert!(matches!(
            BenchmarkOutcome::from_result(r, &GateSettings::default()),
            Err(MlipError::ImplausibleFigures(_))
        ));
    }

    #[test]
    fn settings_from_step_json() {
        let step = r#"{"kind": "md-benchmark", "needs": ["mace-env"], "model": "mace-medium",
            "system": {"element": "Cu", "atoms": 1000}, "md": {"steps": 5000, "timestep_fs": 1.0, "temperature_K": 300},
            "gate": {"pass_below": "5%", "marginal_below": "10%", "on_marginal": "warn", "on_fail": "stop"},
            "resources": {"job_type": "gpu_intensive"}}"#;
        let s: MdBenchmarkSettings = serde_json::from_str(step).unwrap();
        assert_eq!(s.model, "mace-medium");
        assert_eq!(s.system.atoms, 1000);
        assert_eq!(s.md.temperature_k, 300.0);
        assert_eq!(s.repeats, 1);
        assert_eq!(s.device, "auto");
        assert_eq!(resolve_device(&s.device, true), "cuda");
        assert_eq!(resolve_device(&s.device, false), "cpu");
    }

    #[test]
    fn driver_is_shipped() {
        assert!(DRIVER_SOURCE.contains(RESULT_SCHEMA));
        assert!(DRIVER_SOURCE.contains("SocketIOCalculator"));
    }
}
