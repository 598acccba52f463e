//! Results per structure (JSON) and the aggregate extended XYZ for training pipelines.

use crate::output::ScfOutput;
use crate::params::Params;
use crate::policy::AttemptRecord;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// The sign convention of [`ScfResult::stress_ev_per_ang3`], stated in every result.
pub const STRESS_CONVENTION: &str =
    "eV/A^3, ASE convention: sigma = (1/V) dE/d(strain), i.e. minus the stress pw.x prints (pw.x: positive = compressed)";

/// A structure's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScfResult {
    /// The structure's name (file, `#frame` for multi-frame files).
    pub structure: String,
    /// Its formula.
    pub formula: String,
    /// Chemical symbols.
    pub symbols: Vec<String>,
    /// Positions, Å.
    pub positions: Vec<[f64; 3]>,
    /// Cell, Å.
    pub cell: [[f64; 3]; 3],
    /// Total energy, eV.
    pub energy_ev: f64,
    /// Forces, eV/Å.
    pub forces_ev_per_ang: Vec<[f64; 3]>,
    /// Stress, eV/Å³ (see `stress_convention`).
    pub stress_ev_per_ang3: Option<[[f64; 3]; 3]>,
    /// The stress sign convention, in words.
    pub stress_convention: String,
    /// Pressure as pw.x printed it, kbar.
    pub pressure_kbar: Option<f64>,
    /// Wall time of all attempts together, seconds.
    pub wall_seconds: f64,
    /// The k-point grid (`4x4x4`, `gamma`).
    pub kgrid: String,
    /// `-nk` used.
    pub pools: u32,
    /// The pseudopotential family.
    pub pseudo_family: String,
    /// (element, file).
    pub pseudopotentials: Vec<(String, String)>,
    /// The policy parameters of the successful attempt.
    pub final_parameters: Params,
    /// `mixing_beta` of the successful attempt.
    pub final_mixing_beta: Option<f64>,
    /// True when smearing was turned on by recovery, not asked for by the input: the label
    /// is then a smeared free energy.
    pub smearing_added_by_recovery: bool,
    /// SCF iterations of the successful attempt.
    pub scf_iterations: Option<u32>,
    /// Total magnetisation, Bohr magnetons per cell.
    pub total_magnetization: Option<f64>,
    /// Every attempt, the successful one last.
    pub attempts: Vec<AttemptRecord>,
    /// What the successful attempt did that did not fail it (pw.x exited non-zero after a
    /// complete output: the exit status is recorded here, the result kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl ScfResult {
    /// Assembles a result from the prepared structure, the parsed output and the history.
    pub fn new(
        prep: &crate::input::PreparedStructure,
        out: ScfOutput,
        final_parameters: Params,
        smearing_added_by_recovery: bool,
        attempts: Vec<AttemptRecord>,
    ) -> Self {
        ScfResult {
            structure: prep.name.clone(),
            formula: prep.structure.formula(),
            symbols: prep.structure.symbols.clone(),
            positions: prep.structure.positions.clone(),
            cell: prep.structure.cell,
            energy_ev: out.energy_ev,
            forces_ev_per_ang: out.forces_ev_per_ang,
            stress_ev_per_ang3: out.stress_ev_per_ang3,
            stress_convention: STRESS_CONVENTION.into(),
            pressure_kbar: out.pressure_kbar,
            wall_seconds: attempts.iter().map(|a| a.wall_seconds).sum(),
            kgrid: prep.kgrid.label(),
            pools: prep.pools,
            pseudo_family: prep.pseudos.family.clone(),
            pseudopotentials: prep.pseudos.files.clone(),
            final_mixing_beta: final_parameters.get("mixing_beta").and_then(|v| v.as_f64()),
            final_parameters,
            smearing_added_by_recovery,
            scf_iterations: out.scf_iterations,
            total_magnetization: out.total_magnetization,
            warnings: attempts
                .last()
                .map(|a| a.warnings.clone())
                .unwrap_or_default(),
            attempts,
        }
    }
}

/// Writes `result` as pretty JSON to `path`, atomically (temporary file + rename).
pub fn write_result_json(result: &ScfResult, path: &Path) -> Result<(), crate::QeError> {
    let text = serde_json::to_string_pretty(result).map_err(|e| crate::QeError::Io {
        action: "serialising result for",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n").map_err(crate::QeError::io("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(crate::QeError::io("renaming into place", path))
}

/// Reads a result written by [`write_result_json`].
pub fn read_result_json(path: &Path) -> Result<ScfResult, crate::QeError> {
    let text = std::fs::read_to_string(path).map_err(crate::QeError::io("reading", path))?;
    serde_json::from_str(&text).map_err(|e| crate::QeError::Io {
        action: "parsing result",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })
}

/// Writes the results as one extended XYZ, one frame per structure, readable by
/// `ase.io.read(path, index=':')`: per-atom `forces` (eV/Å), and per frame `energy` (eV),
/// `stress` (9 values, eV/Å³, ASE convention), `structure`, `smearing_added_by_recovery`,
/// `final_mixing_beta` and `pbc`.
pub fn write_extxyz<W: Write>(results: &[ScfResult], mut w: W) -> std::io::Result<()> {
    for r in results {
        writeln!(w, "{}", r.symbols.len())?;
        let lattice: Vec<String> = r
            .cell
            .iter()
            .flatten()
            .map(|x| format!("{x:.10}"))
            .collect();
        let mut info = format!(
            "Lattice=\"{}\" Properties=species:S:1:pos:R:3:forces:R:3 energy={:.10} pbc=\"T T T\"",
            lattice.join(" "),
            r.energy_ev
        );
        if let Some(s) = r.stress_ev_per_ang3 {
            let v: Vec<String> = s.iter().flatten().map(|x| format!("{x:.10e}")).collect();
            info.push_str(&format!(" stress=\"{}\"", v.join(" ")));
        }
        let safe_name: String = r
            .structure
            .chars()
            .map(|c| {
                if c == '"' || c.is_whitespace() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        info.push_str(&format!(
            " structure=\"{safe_name}\" smearing_added_by_recovery={}",
            if r.smearing_added_by_recovery {
                "T"
            } else {
                "F"
            }
        ));
        if let Some(b) = r.final_mixing_beta {
            info.push_str(&format!(" final_mixing_beta={b}"));
        }
        writeln!(w, "{info}")?;
        for ((s, p), f) in r.symbols.iter().zip(&r.positions).zip(&r.forces_ev_per_ang) {
            writeln!(
                w,
                "{s:<2} {:16.10} {:16.10} {:16.10} {:16.10} {:16.10} {:16.10}",
                p[0], p[1], p[2], f[0], f[1], f[2]
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> ScfResult {
        ScfResult {
            structure: "si two.extxyz".into(),
            formula: "Si2".into(),
            symbols: vec!["Si".into(), "Si".into()],
            positions: vec![[0.0; 3], [1.0, 1.0, 1.0]],
            cell: [[0.0, 2.7, 2.7], [2.7, 0.0, 2.7], [2.7, 2.7, 0.0]],
            energy_ev: -214.9,
            forces_ev_per_ang: vec![[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]],
            stress_ev_per_ang3: Some([[1e-3, 0.0, 0.0], [0.0, 1e-3, 0.0], [0.0, 0.0, 1e-3]]),
            stress_convention: STRESS_CONVENTION.into(),
            pressure_kbar: Some(-1.6),
            wall_seconds: 1.0,
            kgrid: "3x3x3".into(),
            pools: 1,
            pseudo_family: "qe-debian".into(),
            pseudopotentials: vec![("Si".into(), "Si.pz-vbc.UPF".into())],
            final_parameters: Params::new(),
            final_mixing_beta: Some(0.3),
            smearing_added_by_recovery: true,
            scf_iterations: Some(5),
            total_magnetization: None,
            attempts: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn extxyz_frame() {
        let mut buf = Vec::new();
        write_extxyz(&[result(), result()], &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.lines().count(), 8);
        let comment = text.lines().nth(1).unwrap();
        assert!(comment.contains("energy=-214.9000000000"), "{comment}");
        assert!(
            comment.contains("smearing_added_by_recovery=T")
                && comment.contains("structure=\"si_two.extxyz\"")
        );
        // our own reader reads it back
        let frames = crate::structure::parse_extxyz(&text).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].positions[1], [1.0, 1.0, 1.0]);
    }

    #[test]
    fn json_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_result_json(&result(), &path).unwrap();
        assert_eq!(read_result_json(&path).unwrap(), result());
    }
}
