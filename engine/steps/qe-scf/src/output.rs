//! Results from pw.x's text output (and the band occupations from its XML), in eV and Å,
//! and the sanity checks a result must pass before it counts.
//!
//! Units: 1 Ry = 13.605691930242388 eV, 1 Bohr = 0.52917720859 Å: the CODATA 2006 values
//! pw.x 6.x itself uses (`RYTOEV`, `BOHR_RADIUS_ANGS`). ASE's espresso reader uses CODATA
//! 2006 too (agreement to 2e-10 relative); CODATA 2018 would differ by 8e-8.
//!
//! **Stress sign convention**: pw.x prints the stress with the sign of a pressure
//! (positive = compressed, wants to expand; P = trace/3). flow reports it with ASE's
//! convention, σ = (1/V) ∂E/∂ε, the opposite sign: `stress = −(pw.x stress)`, in eV/Å³.
//! It is converted from pw.x's Ry/Bohr³ columns (8 significant digits; the kbar columns
//! are the same tensor with 0.01 kbar resolution, 1 kbar = 0.1 GPa = 6.2415e-4 eV/Å³).

use crate::failure::Failure;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// eV per Rydberg.
pub const RY_EV: f64 = 13.605_691_930_242_388;
/// Å per Bohr.
pub const BOHR_ANG: f64 = 0.529_177_208_59;
/// eV/Å per Ry/Bohr.
pub const RY_PER_BOHR_EV_PER_ANG: f64 = RY_EV / BOHR_ANG;
/// eV/Å³ per Ry/Bohr³.
pub const RY_PER_BOHR3_EV_PER_ANG3: f64 = RY_EV / (BOHR_ANG * BOHR_ANG * BOHR_ANG);

/// What one successful pw.x SCF produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScfOutput {
    /// Total energy (the last `!` line; F = E − TS under smearing), eV.
    pub energy_ev: f64,
    /// Force on each atom, eV/Å.
    pub forces_ev_per_ang: Vec<[f64; 3]>,
    /// Stress tensor, eV/Å³, ASE sign convention (see the module doc).
    pub stress_ev_per_ang3: Option<[[f64; 3]; 3]>,
    /// Pressure as pw.x printed it, kbar (positive = compressed).
    pub pressure_kbar: Option<f64>,
    /// pw.x's own wall time, seconds.
    pub wall_seconds: Option<f64>,
    /// SCF iterations to convergence.
    pub scf_iterations: Option<u32>,
    /// Number of Kohn–Sham states (`nbnd`) pw.x used.
    pub nbnd: Option<u32>,
    /// Total magnetisation, Bohr magnetons per cell (spin-polarised runs).
    pub total_magnetization: Option<f64>,
}

/// Output that does not contain a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

struct Patterns {
    energy: Regex,
    natoms: Regex,
    force: Regex,
    wall: Regex,
    iterations: Regex,
    nbnd: Regex,
    magnetization: Regex,
    pressure: Regex,
    alat: Regex,
    axis: Regex,
    site: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).unwrap_or_else(|e| unreachable!("static regex {s}: {e}"));
        Patterns {
            energy: re(r"(?m)^!\s+total energy\s+=\s+(\S+)\s+Ry"),
            natoms: re(r"number of atoms/cell\s+=\s+(\d+)"),
            force: re(r"^\s*atom\s+(\d+)\s+type\s+\d+\s+force\s+=\s+(\S+)\s+(\S+)\s+(\S+)"),
            wall: re(r"(?m)^\s*PWSCF\s+:.*CPU\s+(.*?)\s*WALL"),
            iterations: re(r"convergence has been achieved in\s+(\d+)\s+iterations"),
            nbnd: re(r"number of Kohn-Sham states=\s+(\d+)"),
            magnetization: re(r"(?m)^\s*total magnetization\s+=\s+(\S+)\s+Bohr mag/cell"),
            pressure: re(r"total\s+stress\s+\(Ry/bohr\*\*3\)\s+\(kbar\)\s+P=\s*(\S+)"),
            alat: re(r"lattice parameter \(alat\)\s+=\s+(\S+)\s+a\.u\."),
            axis: re(r"a\((\d)\) = \(\s*(\S+)\s+(\S+)\s+(\S+)\s*\)"),
            site: re(r"(?m)^\s+\d+\s+(\S+)\s+tau\(\s*\d+\) = \("),
        }
    })
}

/// Parses a number the way Fortran prints it (`1.0D-03` too); `*****` overflow → NaN.
fn fnum(s: &str) -> f64 {
    if s.starts_with('*') {
        return f64::NAN;
    }
    s.replace(['D', 'd'], "e").parse().unwrap_or(f64::NAN)
}

/// Parses pw.x's "1m 2.34s" / "0.12s" / "1h 2m" / "2d 3h 4m" durations.
pub fn parse_duration(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut any = false;
    for tok in text.split_whitespace() {
        let (num, unit) = tok.split_at(tok.find(|c: char| c.is_ascii_alphabetic())?);
        let v: f64 = num.parse().ok()?;
        total += v * match unit {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return None,
        };
        any = true;
    }
    any.then_some(total)
}

/// Values pw.x reported even when the attempt failed (for edits like `nbnd ×1.5`).
pub fn observed_values(stdout: &str) -> crate::params::Params {
    let mut out = crate::params::Params::new();
    if let Some(n) = patterns()
        .nbnd
        .captures(stdout)
        .and_then(|c| c[1].parse::<u32>().ok())
    {
        out.insert("nbnd".into(), serde_json::Value::from(n));
    }
    out
}

/// Extracts the result of a finished SCF. Errors when the energy or the forces are
/// missing (the caller classifies that as incomplete output).
pub fn parse_pw_output(stdout: &str) -> Result<ScfOutput, ParseError> {
    let p = patterns();
    let energy_ry = p
        .energy
        .captures_iter(stdout)
        .last()
        .map(|c| fnum(&c[1]))
        .ok_or_else(|| ParseError("no `!    total energy` line".into()))?;
    let nat: usize = p
        .natoms
        .captures(stdout)
        .and_then(|c| c[1].parse().ok())
        .ok_or_else(|| ParseError("no `number of atoms/cell` line".into()))?;
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines
        .iter()
        .rposition(|l| l.contains("Forces acting on atoms"))
        .ok_or_else(|| ParseError("no forces block (tprnfor)".into()))?;
    let mut forces = vec![[f64::NAN; 3]; nat];
    let mut seen = 0;
    for l in &lines[header + 1..] {
        if seen == nat {
            break;
        }
        if let Some(c) = p.force.captures(l) {
            let i: usize = c[1].parse().unwrap_or(0);
            if i >= 1 && i <= nat {
                forces[i - 1] = [
                    fnum(&c[2]) * RY_PER_BOHR_EV_PER_ANG,
                    fnum(&c[3]) * RY_PER_BOHR_EV_PER_ANG,
                    fnum(&c[4]) * RY_PER_BOHR_EV_PER_ANG,
                ];
                seen += 1;
            }
        }
    }
    if seen < nat {
        return Err(ParseError(format!(
            "forces block has {seen} of {nat} atoms"
        )));
    }
    let mut stress = None;
    let mut pressure = None;
    if let Some(s) = lines.iter().rposition(|l| p.pressure.is_match(l)) {
        pressure = p.pressure.captures(lines[s]).map(|c| fnum(&c[1]));
        let mut t = [[0.0; 3]; 3];
        let mut ok = true;
        for (i, row) in t.iter_mut().enumerate() {
            let cols: Vec<f64> = lines
                .get(s + 1 + i)
                .map_or(vec![], |l| l.split_whitespace().map(fnum).collect());
            if cols.len() < 3 {
                ok = false;
                break;
            }
            for (j, x) in row.iter_mut().enumerate() {
                *x = -cols[j] * RY_PER_BOHR3_EV_PER_ANG3;
            }
        }
        if ok {
            stress = Some(t);
        }
    }
    Ok(ScfOutput {
        energy_ev: energy_ry * RY_EV,
        forces_ev_per_ang: forces,
        stress_ev_per_ang3: stress,
        pressure_kbar: pressure,
        wall_seconds: p
            .wall
            .captures_iter(stdout)
            .last()
            .and_then(|c| parse_duration(&c[1])),
        scf_iterations: p
            .iterations
            .captures_iter(stdout)
            .last()
            .and_then(|c| c[1].parse().ok()),
        nbnd: p.nbnd.captures(stdout).and_then(|c| c[1].parse().ok()),
        total_magnetization: p
            .magnetization
            .captures_iter(stdout)
            .last()
            .map(|c| fnum(&c[1])),
    })
}

/// Largest difference, Å, between a cell vector component sent and the one pw.x printed
/// (pw.x prints alat with 4 decimals in Bohr and the vectors with 6 in alat units: a few
/// 1e-5 Å of rounding for any cell).
pub const CELL_TOLERANCE_ANG: f64 = 1e-3;

/// Checks that pw.x's output describes `sent`: the same atom count, the same species in
/// the same order, the same cell to [`CELL_TOLERANCE_ANG`]. A stale output, a wrong
/// working directory or a reused scratch fails here instead of being stored. The error
/// says what differs.
pub fn check_structure(stdout: &str, sent: &crate::structure::Structure) -> Result<(), String> {
    let p = patterns();
    let nat: usize = p
        .natoms
        .captures(stdout)
        .and_then(|c| c[1].parse().ok())
        .ok_or("no `number of atoms/cell` line")?;
    if nat != sent.symbols.len() {
        return Err(format!(
            "the output describes {nat} atoms, the structure sent has {}",
            sent.symbols.len()
        ));
    }
    let species: Vec<&str> = p
        .site
        .captures_iter(stdout)
        .map(|c| c.get(1).map_or("", |m| m.as_str()))
        .take(nat)
        .collect();
    if species.len() == nat {
        if let Some(i) = (0..nat).find(|&i| species[i] != sent.symbols[i]) {
            return Err(format!(
                "atom {} is {} in the output, {} in the structure sent",
                i + 1,
                species[i],
                sent.symbols[i]
            ));
        }
    } else {
        return Err(format!(
            "the output lists {} of {nat} atomic positions",
            species.len()
        ));
    }
    let alat = p
        .alat
        .captures(stdout)
        .map(|c| fnum(&c[1]))
        .ok_or("no `lattice parameter (alat)` line")?;
    let vectors: Vec<[f64; 3]> = p
        .axis
        .captures_iter(stdout)
        .take(3)
        .map(|c| {
            [
                fnum(&c[2]) * alat * BOHR_ANG,
                fnum(&c[3]) * alat * BOHR_ANG,
                fnum(&c[4]) * alat * BOHR_ANG,
            ]
        })
        .collect();
    if vectors.len() < 3 {
        return Err("the output has no `crystal axes` block".into());
    }
    for (i, (got, want)) in vectors.iter().zip(&sent.cell).enumerate() {
        // NaN (an overflowed `*****` field) must fail, not vanish in `max`
        let diff = (0..3)
            .map(|j| (got[j] - want[j]).abs())
            .fold(
                0.0,
                |m: f64, d| if d.is_nan() { f64::NAN } else { m.max(d) },
            );
        if diff.is_nan() || diff > CELL_TOLERANCE_ANG {
            return Err(format!(
                "cell vector a({}) is ({:.5}, {:.5}, {:.5}) Å in the output, ({:.5}, {:.5}, {:.5}) Å in the structure sent",
                i + 1,
                got[0],
                got[1],
                got[2],
                want[0],
                want[1],
                want[2]
            ));
        }
    }
    Ok(())
}

/// Rejects non-physical results: NaN/infinite energy, forces or stress, or any |force|
/// above `max_force` (eV/Å). Returns the failure and why.
pub fn sanitize(out: &ScfOutput, max_force: f64) -> Result<(), (Failure, String)> {
    if !out.energy_ev.is_finite() {
        return Err((Failure::Unphysical, format!("energy is {}", out.energy_ev)));
    }
    for (i, f) in out.forces_ev_per_ang.iter().enumerate() {
        let norm = (f[0] * f[0] + f[1] * f[1] + f[2] * f[2]).sqrt();
        if !norm.is_finite() {
            return Err((
                Failure::Unphysical,
                format!("force on atom {} is not a number", i + 1),
            ));
        }
        if norm > max_force {
            return Err((
                Failure::Unphysical,
                format!(
                    "|force| on atom {} is {norm:.1} eV/Å, above the limit {max_force} eV/Å",
                    i + 1
                ),
            ));
        }
    }
    if let Some(s) = out.stress_ev_per_ang3 {
        if s.iter().flatten().any(|x| !x.is_finite()) {
            return Err((Failure::Unphysical, "stress is not a number".into()));
        }
    }
    Ok(())
}

/// The largest occupation (0..1) of the highest band over k-points and spins, from
/// pw.x's XML (`outdir/prefix.xml`), when the run used smearing; `None` for fixed
/// occupations or an XML without bands. Above ~0.005 the run needs more bands.
pub fn highest_band_occupation(xml: &str) -> Option<f64> {
    if !xml.contains("<occupations_kind>smearing</occupations_kind>") {
        return None;
    }
    let lsda = xml.contains("<lsda>true</lsda>");
    let mut worst: Option<f64> = None;
    let mut rest = xml;
    while let Some(start) = rest.find("<occupations size=") {
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else {
            break;
        };
        let Some(close) = after.find("</occupations>") else {
            break;
        };
        let values: Vec<f64> = after[open_end + 1..close]
            .split_whitespace()
            .map(fnum)
            .collect();
        let tails: Vec<f64> = if lsda && values.len() >= 2 && values.len().is_multiple_of(2) {
            vec![values[values.len() / 2 - 1], values[values.len() - 1]]
        } else {
            values.last().copied().into_iter().collect()
        };
        for t in tails {
            worst = Some(worst.map_or(t, |w: f64| w.max(t)));
        }
        rest = &after[close..];
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> String {
        let path = format!(
            "{}/../../../tests/data/qe/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn si_values_and_units() {
        assert!((RY_PER_BOHR_EV_PER_ANG - 25.711_031_596_570_35).abs() < 1e-10);
        let o = parse_pw_output(&data("si_scf_ok.out")).unwrap();
        assert!((o.energy_ev - (-15.79717886 * RY_EV)).abs() < 1e-9);
        assert!((o.forces_ev_per_ang[0][0] - 0.02324152 * RY_PER_BOHR_EV_PER_ANG).abs() < 1e-8);
        assert!((o.forces_ev_per_ang[1][2] - 0.01481455 * RY_PER_BOHR_EV_PER_ANG).abs() < 1e-8);
        let s = o.stress_ev_per_ang3.unwrap();
        // pw.x: -0.00005067 Ry/bohr³ = -7.45 kbar; ASE convention flips the sign.
        assert!((s[0][0] - 0.00005067 * RY_PER_BOHR3_EV_PER_ANG3).abs() < 1e-12);
        let kbar_in_ev = 7.45 * 0.1 / 160.217_663_4;
        assert!(
            (s[0][0] - kbar_in_ev).abs() < 0.01 * kbar_in_ev,
            "kbar and Ry/bohr³ columns agree"
        );
        assert_eq!(o.pressure_kbar, Some(-6.88));
        assert_eq!(o.scf_iterations, Some(4));
        assert_eq!(o.nbnd, Some(4));
        assert_eq!(o.wall_seconds, Some(0.12));
        assert_eq!(o.total_magnetization, None);
    }

    #[test]
    fn smeared_fe_forces() {
        let o = parse_pw_output(&data("fe_paro_ok.out")).unwrap();
        assert!((o.energy_ev - (-111.32115069 * RY_EV)).abs() < 1e-8);
        assert!(o.forces_ev_per_ang[0][0] < -180.0);
    }

    #[test]
    fn missing_result_is_an_error() {
        assert!(parse_pw_output(&data("si_scf_not_converged.out")).is_err());
        assert!(parse_pw_output(&data("fe_buffered_abort_truncated.out")).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0.12s"), Some(0.12));
        assert_eq!(parse_duration("1m 2.50s"), Some(62.5));
        assert_eq!(parse_duration("1h 2m"), Some(3720.0));
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn sanitation() {
        let mut o = parse_pw_output(&data("si_scf_ok.out")).unwrap();
        assert!(sanitize(&o, 1000.0).is_ok());
        assert_eq!(sanitize(&o, 0.1).unwrap_err().0, Failure::Unphysical);
        o.forces_ev_per_ang[1][0] = f64::NAN;
        let (f, why) = sanitize(&o, 1000.0).unwrap_err();
        assert_eq!(f, Failure::Unphysical);
        assert!(why.contains("atom 2"), "{why}");
        let overflow =
            data("si_scf_ok.out").replace("0.02324152   -0.00254476", "**********   -0.00254476");
        let o = parse_pw_output(&overflow).unwrap();
        assert!(sanitize(&o, 1000.0).is_err());
    }

    #[test]
    fn highest_band() {
        let xml = "<occupations_kind>smearing</occupations_kind><ks_energies><occupations size=\"4\">1.0 0.9 0.2 0.01</occupations></ks_energies>\
                   <ks_energies><occupations size=\"4\">1.0 1.0 0.1 0.0</occupations></ks_energies>";
        assert_eq!(highest_band_occupation(xml), Some(0.01));
        let lsda = "<lsda>true</lsda><occupations_kind>smearing</occupations_kind><occupations size=\"4\">1 0.3 1 0.0</occupations>";
        assert_eq!(highest_band_occupation(lsda), Some(0.3));
        assert_eq!(
            highest_band_occupation("<occupations_kind>fixed</occupations_kind>"),
            None
        );
    }

    #[test]
    fn observed_nbnd() {
        assert_eq!(
            observed_values(&data("si_scf_not_converged.out"))["nbnd"],
            serde_json::json!(4)
        );
    }
}
