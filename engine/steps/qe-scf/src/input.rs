//! `pw.in` generation: a pure function of the prepared structure and an attempt's
//! parameters. Always `calculation='scf'` (never relax), `tprnfor`, `tstress`.

use crate::elements::{atomic_weight, default_starting_magnetization, MAGNETIC};
use crate::error::QeError;
use crate::kpoints::{choose_pools, grid_from_spacing, KGrid};
use crate::params::{fortran_value, locate, Namelist, Params};
use crate::policy::RecoveryPolicy;
use crate::pseudo::{PseudoFamily, ResolvedPseudos};
use crate::settings::Settings;
use crate::structure::Structure;
use serde_json::Value;
use std::path::Path;

/// pw.x's `prefix` for every attempt.
pub const PREFIX: &str = "pwscf";
/// The scratch directory inside an attempt directory.
pub const OUTDIR: &str = "out";

/// A structure with everything decided at plan time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PreparedStructure {
    /// A name for reports (file name, with `#frame` for multi-frame files).
    pub name: String,
    /// The structure.
    pub structure: Structure,
    /// Distinct elements, in `ATOMIC_SPECIES` order.
    pub species: Vec<String>,
    /// The k-point grid.
    pub kgrid: KGrid,
    /// Pseudopotentials and cutoffs.
    pub pseudos: ResolvedPseudos,
    /// starting_magnetization per species (only magnetic ones), empty when nspin=1.
    pub magnetization: Vec<(String, f64)>,
    /// `-nk` for pw.x.
    pub pools: u32,
    /// Attempt 0's parameters: cutoffs, symmetry, smearing, the policy's `initial`, then
    /// the step's `parameters`.
    pub initial: Params,
}

/// Decides everything about one structure that does not depend on the attempt.
///
/// `base_dir` resolves relative paths (family files, pseudopotential dir); `ranks` is the
/// number of MPI ranks pw.x will run with; with `check_files` every pseudopotential file
/// must exist. Errors: missing element or file (naming both), no cutoff, bad parameters.
pub fn prepare_structure(
    settings: &Settings,
    policy: &RecoveryPolicy,
    structure: Structure,
    name: &str,
    base_dir: &Path,
    ranks: u32,
    check_files: bool,
) -> Result<PreparedStructure, QeError> {
    let species = structure.species();
    let family = PseudoFamily::load(&settings.pseudopotentials.family, base_dir)?;
    let dir = settings
        .pseudopotentials
        .dir
        .as_ref()
        .map(|d| base_dir.join(d));
    let pseudos = family.resolve(
        &species,
        dir.as_deref(),
        &settings.pseudopotentials.files,
        check_files,
    )?;

    let kgrid = if settings.kpoints.gamma {
        KGrid::Gamma
    } else if let Some(g) = settings.kpoints.grid {
        KGrid::MonkhorstPack(g)
    } else {
        grid_from_spacing(&structure, settings.kpoints.spacing.unwrap_or(0.15))
    };
    let pools = settings
        .pools
        .unwrap_or_else(|| choose_pools(ranks, &kgrid));

    let magnetization: Vec<(String, f64)> = species
        .iter()
        .filter(|s| MAGNETIC.contains(&s.as_str()))
        .map(|s| {
            let m = settings
                .starting_magnetization
                .get(s)
                .copied()
                .or_else(|| default_starting_magnetization(s))
                .unwrap_or(0.5);
            (s.clone(), m)
        })
        .collect();

    let mut initial = Params::new();
    let ecutwfc = match (settings.ecutwfc, pseudos.ecutwfc) {
        (Some(w), _) | (None, Some(w)) => w,
        (None, None) => {
            return Err(QeError::NoCutoff {
                family: pseudos.family.clone(),
                elements: species.join(" "),
            })
        }
    };
    let dual = match (pseudos.ecutwfc, pseudos.ecutrho) {
        (Some(w), Some(r)) if w > 0.0 => r / w,
        _ => 4.0,
    };
    let ecutrho = settings.ecutrho.unwrap_or(ecutwfc * dual);
    initial.insert("ecutwfc".into(), number(ecutwfc));
    initial.insert("ecutrho".into(), number(ecutrho));
    initial.insert("disk_io".into(), Value::from("low"));
    if settings.nosym {
        initial.insert("nosym".into(), Value::from(true));
    }
    match (&settings.smearing, magnetization.is_empty()) {
        (Some(s), _) => {
            initial.insert("occupations".into(), Value::from("smearing"));
            initial.insert("smearing".into(), Value::from(s.kind.clone()));
            initial.insert("degauss".into(), number(s.degauss));
        }
        (None, false) => {
            initial.insert("occupations".into(), Value::from("smearing"));
            initial.insert("smearing".into(), Value::from("mv"));
            initial.insert("degauss".into(), number(0.01));
        }
        (None, true) => {}
    }
    for (k, v) in policy.initial.iter().chain(settings.parameters.iter()) {
        initial.insert(crate::params::canonical(k), v.clone());
    }
    for key in initial.keys() {
        locate(key)?;
    }
    Ok(PreparedStructure {
        name: name.to_string(),
        structure,
        species,
        kgrid,
        pseudos,
        magnetization,
        pools,
        initial,
    })
}

fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// Renders `pw.in` for one attempt. `params` are the policy parameters plus the attempt's
/// own (`restart_mode`, `startingpot`, `max_seconds`); `outdir` is written as given.
/// Parameters override the generated `nspin`/`starting_magnetization` of the same name.
pub fn render_pw_input(
    prep: &PreparedStructure,
    params: &Params,
    outdir: &str,
) -> Result<String, QeError> {
    let mut control: Vec<(String, String)> = vec![
        ("calculation".into(), "'scf'".into()),
        ("prefix".into(), format!("'{PREFIX}'")),
        (
            "outdir".into(),
            fortran_value("outdir", &Value::from(outdir))?,
        ),
        (
            "pseudo_dir".into(),
            fortran_value(
                "pseudo_dir",
                &Value::from(prep.pseudos.dir.display().to_string()),
            )?,
        ),
        ("tprnfor".into(), ".true.".into()),
        ("tstress".into(), ".true.".into()),
    ];
    let mut system: Vec<(String, String)> = vec![
        ("ibrav".into(), "0".into()),
        ("nat".into(), prep.structure.symbols.len().to_string()),
        ("ntyp".into(), prep.species.len().to_string()),
    ];
    if !prep.magnetization.is_empty() {
        system.push(("nspin".into(), "2".into()));
        for (el, m) in &prep.magnetization {
            let idx = prep
                .species
                .iter()
                .position(|s| s == el)
                .map_or(0, |i| i + 1);
            system.push((
                format!("starting_magnetization({idx})"),
                fortran_value("m", &number(*m))?,
            ));
        }
    }
    let mut electrons: Vec<(String, String)> = Vec::new();
    for (key, value) in params {
        let (nl, name) = locate(key)?;
        let list = match nl {
            Namelist::Control => &mut control,
            Namelist::System => &mut system,
            Namelist::Electrons => &mut electrons,
            // on pw.x's command line (run.rs), not in pw.in
            Namelist::CommandLine => continue,
        };
        let text = fortran_value(key, value)?;
        match list.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = text,
            None => list.push((name, text)),
        }
    }
    let mut out = String::new();
    for (nl, list) in [
        (Namelist::Control, &control),
        (Namelist::System, &system),
        (Namelist::Electrons, &electrons),
    ] {
        out.push_str(&format!("&{}\n", nl.name()));
        for (k, v) in list {
            out.push_str(&format!("  {k} = {v}\n"));
        }
        out.push_str("/\n");
    }
    out.push_str("ATOMIC_SPECIES\n");
    for (el, file) in &prep.pseudos.files {
        out.push_str(&format!(
            "  {el} {} {file}\n",
            atomic_weight(el).unwrap_or(0.0)
        ));
    }
    out.push_str("CELL_PARAMETERS angstrom\n");
    for row in &prep.structure.cell {
        out.push_str(&format!("  {:.10} {:.10} {:.10}\n", row[0], row[1], row[2]));
    }
    out.push_str("ATOMIC_POSITIONS angstrom\n");
    for (s, p) in prep.structure.symbols.iter().zip(&prep.structure.positions) {
        out.push_str(&format!("  {s} {:.10} {:.10} {:.10}\n", p[0], p[1], p[2]));
    }
    match prep.kgrid {
        KGrid::Gamma => out.push_str("K_POINTS gamma\n"),
        KGrid::MonkhorstPack([a, b, c]) => {
            out.push_str(&format!("K_POINTS automatic\n  {a} {b} {c} 0 0 0\n"))
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RecoverySpec;
    use crate::structure::parse_extxyz;
    use serde_json::json;

    fn settings(extra: serde_json::Value) -> Settings {
        let mut base =
            json!({"structures": "x.extxyz", "pseudopotentials": {"family": "qe-debian"}});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        Settings::from_json(&base).unwrap()
    }

    fn policy() -> RecoveryPolicy {
        RecoveryPolicy::from_spec(&RecoverySpec::default(), Path::new(".")).unwrap()
    }

    fn si() -> Structure {
        parse_extxyz("2\nLattice=\"0 2.715 2.715 2.715 0 2.715 2.715 2.715 0\"\nSi 0 0 0\nSi 1.3575 1.3575 1.3575\n").unwrap().remove(0)
    }

    fn fe_bcc() -> Structure {
        parse_extxyz("2\nLattice=\"2.87 0 0 0 2.87 0 0 0 2.87\"\nFe 0 0 0\nFe 1.435 1.435 1.435\n")
            .unwrap()
            .remove(0)
    }

    /// A user's `electrons.mixing_beta` is the one pw.x gets, over the policy's starting
    /// `mixing_beta: 0.7` (both were written, and pw.x read the policy's).
    /// Silicon prepared with `extra` settings, the default policy, one rank, no file checks.
    fn prepared_si(extra: serde_json::Value) -> PreparedStructure {
        prepare_structure(
            &settings(extra),
            &policy(),
            si(),
            "si",
            Path::new("/"),
            1,
            false,
        )
        .unwrap()
    }

    #[test]
    fn a_qualified_user_parameter_wins_over_the_policy_start() {
        let p = prepared_si(
            json!({"kpoints": {"spacing": 0.5}, "parameters": {"electrons.mixing_beta": 0.25}}),
        );
        assert_eq!(p.initial.get("mixing_beta"), Some(&json!(0.25)));
        assert!(!p.initial.contains_key("electrons.mixing_beta"));
        let text = render_pw_input(&p, &p.initial, "./out").unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("mixing_beta")).collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].contains("0.25"), "{text}");
    }

    #[test]
    fn si_input_has_the_fixed_settings() {
        let p = prepared_si(json!({"kpoints": {"spacing": 0.5}}));
        let text = render_pw_input(&p, &p.initial, "./out").unwrap();
        for needle in [
            "calculation = 'scf'",
            "tprnfor = .true.",
            "tstress = .true.",
            "disk_io = 'low'",
            "nosym = .true.",
            "ecutwfc = 18",
            "ecutrho = 72",
            "mixing_beta = 0.7",
            "pseudo_dir = '/usr/share/espresso/pseudo'",
            "Si 28.085 Si.pz-vbc.UPF",
            "K_POINTS automatic\n  4 4 4 0 0 0",
            "Si 1.3575000000 1.3575000000 1.3575000000",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in\n{text}");
        }
        assert!(!text.contains("nspin"));
        assert!(!text.contains("relax"));
    }

    #[test]
    fn fe_gets_nspin_2_and_magnetization() {
        let p = prepare_structure(
            &settings(json!({"ecutwfc": 25})),
            &policy(),
            fe_bcc(),
            "fe",
            Path::new("/"),
            1,
            false,
        )
        .unwrap();
        let text = render_pw_input(&p, &p.initial, "./out").unwrap();
        assert!(text.contains("nspin = 2"), "{text}");
        assert!(text.contains("starting_magnetization(1) = 0.5"), "{text}");
        assert!(text.contains("occupations = 'smearing'"), "{text}");
        assert!(
            text.contains("ecutwfc = 25") && text.contains("ecutrho = 200"),
            "family dual 8 kept: {text}"
        );
    }

    #[test]
    fn gamma_and_step_parameters_win() {
        let s = settings(
            json!({"kpoints": {"gamma": true}, "parameters": {"mixing_beta": 0.5, "electron_maxstep": 2, "nosym": false}, "nosym": true}),
        );
        let p = prepare_structure(&s, &policy(), si(), "si", Path::new("/"), 4, false).unwrap();
        assert_eq!(p.pools, 1);
        let text = render_pw_input(&p, &p.initial, "./out").unwrap();
        assert!(text.contains("K_POINTS gamma"));
        assert!(text.contains("mixing_beta = 0.5") && text.contains("electron_maxstep = 2"));
        assert!(text.contains("nosym = .false."));
        assert_eq!(text.matches("nosym").count(), 1);
    }

    #[test]
    fn pools_from_ranks() {
        let p = prepare_structure(
            &settings(json!({"kpoints": {"grid": [2, 2, 2]}})),
            &policy(),
            si(),
            "si",
            Path::new("/"),
            8,
            false,
        )
        .unwrap();
        assert_eq!(p.pools, 4);
    }

    #[test]
    fn missing_pseudo_file_is_a_plan_error() {
        let s =
            settings(json!({"pseudopotentials": {"family": "qe-debian", "dir": "/nonexistent"}}));
        let e = prepare_structure(&s, &policy(), si(), "si", Path::new("/"), 1, true).unwrap_err();
        assert!(
            e.to_string().contains("Si") && e.to_string().contains("/nonexistent/Si.pz-vbc.UPF"),
            "{e}"
        );
    }

    #[test]
    fn attempt_parameters_override() {
        let p = prepared_si(json!({}));
        let mut params = p.initial.clone();
        params.insert("restart_mode".into(), json!("restart"));
        params.insert("max_seconds".into(), json!(95.0));
        params.insert("diagonalization".into(), json!("cg"));
        let text = render_pw_input(&p, &params, "./out").unwrap();
        let control = &text[..text.find("&SYSTEM").unwrap()];
        assert!(
            control.contains("restart_mode = 'restart'") && control.contains("max_seconds = 95"),
            "{text}"
        );
        assert!(text.contains("diagonalization = 'cg'"));
    }
}
