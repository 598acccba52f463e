//! Tests against the real pw.x (Debian's quantum-espresso; `scripts/deps/qe.sh` installs
//! it with the pseudopotentials and ASE). They fail, with a message saying so, when pw.x,
//! the pseudopotentials or ASE are missing.

use flow_qe_scf::input::{prepare_structure, PreparedStructure};
use flow_qe_scf::plan::effective_policy;
use flow_qe_scf::policy::{AttemptRecord, History, Restart};
use flow_qe_scf::results::{write_extxyz, ScfResult};
use flow_qe_scf::run::{run_structure, RunOptions, StructureOutcome};
use flow_qe_scf::structure::parse_extxyz;
use flow_qe_scf::{Failure, RecoveryPolicy, Settings};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PSEUDO_DIR: &str = "/usr/share/espresso/pseudo";

fn require_pw_x() {
    let found = Command::new("sh")
        .arg("-c")
        .arg("command -v pw.x")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "pw.x is not on PATH: these tests need Quantum ESPRESSO (run scripts/deps/qe.sh)"
    );
    assert!(
        Path::new(PSEUDO_DIR).join("Si.pz-vbc.UPF").is_file(),
        "{PSEUDO_DIR}/Si.pz-vbc.UPF is missing: install quantum-espresso-data (scripts/deps/qe.sh)"
    );
}

fn settings(v: Value) -> Settings {
    let mut base =
        json!({"structures": "unused.extxyz", "pseudopotentials": {"family": "qe-debian"}});
    if let (Some(b), Some(e)) = (base.as_object_mut(), v.as_object()) {
        for (k, x) in e {
            b.insert(k.clone(), x.clone());
        }
    }
    Settings::from_json(&base).unwrap()
}

fn prepare(s: &Settings, xyz: &str, name: &str) -> (PreparedStructure, RecoveryPolicy) {
    let policy = effective_policy(s, Path::new("/")).unwrap();
    let structure = parse_extxyz(xyz).unwrap().remove(0);
    let prep = prepare_structure(s, &policy, structure, name, Path::new("/"), 1, true).unwrap();
    (prep, policy)
}

const SI: &str = "2\nLattice=\"0.0 2.715 2.715 2.715 0.0 2.715 2.715 2.715 0.0\" Properties=species:S:1:pos:R:3\nSi 0.0 0.0 0.0\nSi 1.40 1.35 1.33\n";

fn run(
    prep: &PreparedStructure,
    policy: &RecoveryPolicy,
    dir: &Path,
    history: History,
    options: &RunOptions,
) -> (StructureOutcome, Vec<AttemptRecord>) {
    let mut seen = Vec::new();
    let outcome = run_structure(prep, policy, dir, history, options, &mut |a| {
        seen.push(a.clone())
    })
    .unwrap();
    (outcome, seen)
}

fn success(outcome: StructureOutcome) -> ScfResult {
    match outcome {
        StructureOutcome::Success(r) => *r,
        other => panic!("expected success, got {other:?}"),
    }
}

/// ASE's espresso reader on a pw.x output: energy (eV), forces (eV/Å), stress (eV/Å³).
fn ase_read(pw_out: &Path) -> Value {
    let script = "import json, sys\nfrom ase.io import read\na = read(sys.argv[1], format='espresso-out')\n\
print(json.dumps({'energy': a.get_potential_energy(), 'forces': a.get_forces().tolist(), 'stress': a.get_stress(voigt=False).tolist()}))";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(pw_out)
        .output()
        .expect("python3 must be installed for the ASE cross-check");
    assert!(
        out.status.success(),
        "ASE could not read {} (install ASE: scripts/deps/qe.sh): {}",
        pw_out.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn si_scf_succeeds_and_matches_ase() {
    require_pw_x();
    let s = settings(json!({"ecutwfc": 18, "kpoints": {"grid": [3, 3, 3]}}));
    let (prep, policy) = prepare(&s, SI, "si");
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = run(
        &prep,
        &policy,
        dir.path(),
        History::default(),
        &RunOptions::default(),
    );
    let r = success(outcome);
    assert_eq!(seen.len(), 1);
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.final_mixing_beta, Some(0.7));
    assert!(!r.smearing_added_by_recovery);
    let attempt = dir.path().join("attempt-00");
    let pw_in = std::fs::read_to_string(attempt.join("pw.in")).unwrap();
    assert!(
        pw_in.contains("calculation = 'scf'")
            && pw_in.contains("nosym = .true.")
            && pw_in.contains("disk_io = 'low'")
    );

    let ase = ase_read(&attempt.join("pw.out"));
    let e = ase["energy"].as_f64().unwrap();
    assert!(
        (r.energy_ev - e).abs() < 1e-6,
        "energy {} vs ASE {e}",
        r.energy_ev
    );
    assert!(
        (r.energy_ev - (-15.797_178_86 * 13.605_691_93)).abs() < 1e-3,
        "Si energy near the recorded value: {}",
        r.energy_ev
    );
    for i in 0..2 {
        for k in 0..3 {
            let f = ase["forces"][i][k].as_f64().unwrap();
            assert!(
                (r.forces_ev_per_ang[i][k] - f).abs() < 1e-6,
                "force[{i}][{k}] {} vs ASE {f}",
                r.forces_ev_per_ang[i][k]
            );
        }
    }
    let stress = r.stress_ev_per_ang3.expect("stress");
    for i in 0..3 {
        for k in 0..3 {
            let x = ase["stress"][i][k].as_f64().unwrap();
            assert!(
                (stress[i][k] - x).abs() < 1e-8,
                "stress[{i}][{k}] {} vs ASE {x}",
                stress[i][k]
            );
        }
    }

    // scratch removed after success, inputs and outputs kept
    assert!(attempt.join("pw.out").is_file() && attempt.join("out/pwscf.xml").is_file());
    let save = attempt.join("out/pwscf.save");
    let bulky: Vec<String> = std::fs::read_dir(&save)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("wfc") || n.starts_with("charge-density"))
        .collect();
    assert!(bulky.is_empty(), "scratch left: {bulky:?}");

    // the aggregate extxyz reads back in ASE with the same energy and forces
    let xyz = dir.path().join("all.extxyz");
    write_extxyz(
        std::slice::from_ref(&r),
        std::fs::File::create(&xyz).unwrap(),
    )
    .unwrap();
    let check = "import sys\nfrom ase.io import read\na = read(sys.argv[1], index=':')[0]\nprint(a.get_potential_energy(), a.get_forces()[1][2], a.info.get('smearing_added_by_recovery'))";
    let out = Command::new("python3")
        .arg("-c")
        .arg(check)
        .arg(&xyz)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let parts: Vec<&str> = text.split_whitespace().collect();
    assert!(
        (parts[0].parse::<f64>().unwrap() - r.energy_ev).abs() < 1e-6,
        "{text}"
    );
    assert!(
        (parts[1].parse::<f64>().unwrap() - r.forces_ev_per_ang[1][2]).abs() < 1e-6,
        "{text}"
    );
    assert_eq!(parts[2], "False", "{text}");
}

#[test]
fn fe_bcc_gets_nspin_2_and_runs() {
    require_pw_x();
    let fe = "1\nLattice=\"-1.435 1.435 1.435 1.435 -1.435 1.435 1.435 1.435 -1.435\"\nFe 0 0 0\n";
    let s = settings(json!({"ecutwfc": 20, "ecutrho": 160, "kpoints": {"grid": [2, 2, 2]}}));
    let (prep, policy) = prepare(&s, fe, "fe-bcc");
    let dir = tempfile::tempdir().unwrap();
    let (outcome, _) = run(
        &prep,
        &policy,
        dir.path(),
        History::default(),
        &RunOptions::default(),
    );
    let r = success(outcome);
    let pw_in = std::fs::read_to_string(dir.path().join("attempt-00/pw.in")).unwrap();
    assert!(
        pw_in.contains("nspin = 2") && pw_in.contains("starting_magnetization(1) = 0.5"),
        "{pw_in}"
    );
    let m = r
        .total_magnetization
        .expect("spin-polarised output reports a magnetisation");
    assert!(m > 1.0, "bcc Fe is ferromagnetic: {m} Bohr mag/cell");
    assert!(r.energy_ev.is_finite());
}

#[test]
fn a_real_scf_failure_recovers_through_the_policy() {
    require_pw_x();
    // attempt 0 is made to fail for real (electron_maxstep 2); the handler lifts the limit
    let s = settings(json!({
        "ecutwfc": 18, "kpoints": {"grid": [3, 3, 3]},
        "recovery": {"name": "test", "initial": {"mixing_beta": 0.7, "electron_maxstep": 2},
                     "handlers": [{"match": "scf-not-converged", "set": {"mixing_beta": 0.3, "electron_maxstep": 100}}]}
    }));
    let (prep, policy) = prepare(&s, SI, "si");
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = run(
        &prep,
        &policy,
        dir.path(),
        History::default(),
        &RunOptions::default(),
    );
    let r = success(outcome);
    assert_eq!(
        seen.len(),
        2,
        "both attempts reach the callback (the engine's DB)"
    );
    assert_eq!(seen[0].failure, Some(Failure::ScfNotConverged));
    assert_eq!(
        seen[0].error_class.map(|c| c.as_str()),
        Some("scf-not-converged")
    );
    assert_eq!(seen[0].exit_code, Some(2));
    assert!(seen[0]
        .message
        .as_deref()
        .unwrap_or("")
        .contains("convergence NOT achieved"));
    assert_eq!(seen[1].failure, None);
    assert_eq!(seen[1].handler.as_deref(), Some("scf-not-converged-1"));
    assert_eq!(r.final_mixing_beta, Some(0.3));
    assert_eq!(r.final_parameters["electron_maxstep"], json!(100));
    assert_eq!(r.attempts, seen);
    // the failed attempt's scratch is gone once the next attempt has run
    assert!(!dir.path().join("attempt-00/out").exists());
    assert!(dir.path().join("attempt-00/pw.out").is_file());
}

const FE_PAIR: &str = "2\nLattice=\"2.87 0 0 0 2.87 0 0 0 2.87\"\nFe 0 0 0\nFe 0.8 0 0\n";

fn fe_pair_settings(recovery: &str) -> Settings {
    settings(json!({
        "ecutwfc": 20, "ecutrho": 160, "kpoints": {"gamma": true},
        "smearing": {"type": "gaussian", "degauss": 0.02},
        "recovery": recovery
    }))
}

#[test]
fn diagonalization_failures_cycle_eigensolvers_for_real() {
    require_pw_x();
    // Two Fe atoms 0.8 Å apart: Davidson fails ("S matrix not positive definite"), PPCG
    // fails ("dsygvd failed"), ParO converges (pw.x 6.7).
    let (prep, policy) = prepare(
        &fe_pair_settings("diagonalization-cycle"),
        FE_PAIR,
        "fe-pair",
    );
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = run(
        &prep,
        &policy,
        dir.path(),
        History::default(),
        &RunOptions::default(),
    );
    let kinds: Vec<(Option<Failure>, Option<Value>)> = seen
        .iter()
        .map(|a| (a.failure, a.parameters.get("diagonalization").cloned()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (Some(Failure::Diagonalization), None),
            (Some(Failure::Diagonalization), Some(json!("ppcg"))),
            (None, Some(json!("paro"))),
        ],
        "{seen:#?}"
    );
    let r = success(outcome);
    assert!(
        r.forces_ev_per_ang[0][0].abs() > 10.0,
        "compressed pair pushes apart: {:?}",
        r.forces_ev_per_ang
    );
}

#[test]
fn a_persistently_failing_structure_ends_in_the_fatal_report() {
    require_pw_x();
    // default policy: Cholesky → cg; pw.x 6.7's cg crashes on this structure, and no
    // handler answers a crash: the report lists both attempts.
    let (prep, policy) = prepare(&fe_pair_settings("default"), FE_PAIR, "fe-pair");
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = run(
        &prep,
        &policy,
        dir.path(),
        History::default(),
        &RunOptions::default(),
    );
    let StructureOutcome::Fatal(report) = outcome else {
        panic!("expected the fatal report, got {outcome:?}");
    };
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].failure, Some(Failure::Diagonalization));
    assert_eq!(seen[1].parameters["diagonalization"], json!("cg"));
    assert!(seen[1].failure.is_some());
    let text = report.to_string();
    assert!(text.contains("qe-scf gave up on fe-pair"), "{text}");
    assert!(text.contains("S matrix not positive definite"), "{text}");
    assert!(text.contains("diagonalization='cg'"), "{text}");
}

#[test]
fn max_seconds_stops_pw_x_and_the_next_allocation_restarts_it() {
    require_pw_x();
    // 8x8x8 k-points: a full SCF takes several times the 1 s pw.x is given, also on a
    // fast, quiet machine (6x6x6 with 2 s once finished in 2.2 s, before pw.x looked).
    let s = settings(json!({"ecutwfc": 30, "kpoints": {"grid": [8, 8, 8]}}));
    let (prep, policy) = prepare(&s, SI, "si");
    let dir = tempfile::tempdir().unwrap();
    // first allocation: 8 s left, pw.x gets max_seconds = 1 and stops cleanly after more
    // than 1 s; the 7 s an attempt needs are then not left, so the structure is
    // interrupted, not failed
    let options = RunOptions {
        deadline: Some(Instant::now() + Duration::from_secs(8)),
        max_seconds_fraction: 0.15,
        min_attempt_time: Duration::from_secs(7),
        ..Default::default()
    };
    let (outcome, seen) = run(&prep, &policy, dir.path(), History::default(), &options);
    let StructureOutcome::Interrupted { history, .. } = outcome else {
        panic!("expected an interruption, got {outcome:?}");
    };
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].failure, Some(Failure::Walltime), "{seen:#?}");
    let pw_in = std::fs::read_to_string(dir.path().join("attempt-00/pw.in")).unwrap();
    assert!(pw_in.contains("max_seconds = 1"), "{pw_in}");

    // second allocation resumes the policy from the persisted history: a real restart
    let history: History = serde_json::from_str(&serde_json::to_string(&history).unwrap()).unwrap();
    let (outcome, seen) = run(&prep, &policy, dir.path(), history, &RunOptions::default());
    let r = success(outcome);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].restart, Restart::Full);
    assert_eq!(
        seen[0].handler.as_deref(),
        Some("restart-after-max-seconds")
    );
    let pw_in = std::fs::read_to_string(dir.path().join("attempt-01/pw.in")).unwrap();
    assert!(pw_in.contains("restart_mode = 'restart'"), "{pw_in}");
    let pw_out = std::fs::read_to_string(dir.path().join("attempt-01/pw.out")).unwrap();
    assert!(
        pw_out.contains("Starting wfcs from file"),
        "pw.x restarted from the saved wavefunctions"
    );
    assert_eq!(r.attempts.len(), 2);
    assert!(r.energy_ev < -200.0);
}

#[test]
fn an_occupied_highest_band_gets_more_bands_from_the_charge_density() {
    require_pw_x();
    // bcc Fe with 5 bands: its majority spin fills them all, so the highest band is
    // occupied; the default policy multiplies nbnd by 1.5 and restarts from the density.
    let fe = "1\nLattice=\"-1.435 1.435 1.435 1.435 -1.435 1.435 1.435 1.435 -1.435\"\nFe 0 0 0\n";
    let s = settings(
        json!({"ecutwfc": 20, "ecutrho": 160, "kpoints": {"grid": [2, 2, 2]}, "parameters": {"nbnd": 5}}),
    );
    let (prep, policy) = prepare(&s, fe, "fe-bcc");
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = run(
        &prep,
        &policy,
        dir.path(),
        History::default(),
        &RunOptions::default(),
    );
    assert_eq!(
        seen[0].failure,
        Some(Failure::HighestBandOccupied),
        "{seen:#?}"
    );
    assert_eq!(
        seen[0].error_class.map(|c| c.as_str()),
        Some("invalid-output")
    );
    let r = success(outcome);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].restart, Restart::ChargeDensity);
    assert_eq!(r.final_parameters["nbnd"], json!(8));
    let pw_in = std::fs::read_to_string(dir.path().join("attempt-01/pw.in")).unwrap();
    assert!(
        pw_in.contains("startingpot = 'file'") && pw_in.contains("nbnd = 8"),
        "{pw_in}"
    );
    let pw_out = std::fs::read_to_string(dir.path().join("attempt-01/pw.out")).unwrap();
    assert!(
        pw_out.contains("The initial density is read from file"),
        "restarted from the charge density"
    );
}

#[test]
fn a_task_from_a_cif_file_through_ase_writes_its_result() {
    require_pw_x();
    let dir = tempfile::tempdir().unwrap();
    let cif = "data_Si\n_cell_length_a 5.43\n_cell_length_b 5.43\n_cell_length_c 5.43\n_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n\
_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n\
Si1 Si 0.0 0.0 0.0\nSi2 Si 0.0 0.5 0.5\nSi3 Si 0.5 0.0 0.5\nSi4 Si 0.5 0.5 0.0\n\
Si5 Si 0.25 0.25 0.25\nSi6 Si 0.25 0.75 0.75\nSi7 Si 0.75 0.25 0.75\nSi8 Si 0.75 0.75 0.25\n";
    std::fs::write(dir.path().join("si.cif"), cif).unwrap();
    let s = Settings::from_json(&json!({
        "structures": "*.cif", "pseudopotentials": {"family": "qe-debian"},
        "ecutwfc": 12, "kpoints": {"gamma": true}
    }))
    .unwrap();
    let refs = flow_qe_scf::plan::expand_structures(&s, dir.path())
        .expect("ASE reads the CIF (scripts/deps/qe.sh installs ASE)");
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].1.symbols.len(), 8);
    let task_dir = dir.path().join("task");
    let outcome = flow_qe_scf::task::run_task(
        &s,
        dir.path(),
        &refs[0].0,
        &task_dir,
        History::default(),
        &RunOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let r = success(outcome);
    let written = flow_qe_scf::results::read_result_json(&task_dir.join("result.json")).unwrap();
    assert_eq!(written, r);
    assert_eq!(written.structure, "si.cif");
    assert!(!task_dir.join("fatal.json").exists());
}

#[test]
fn two_mpi_ranks_through_mpirun_use_two_pools() {
    require_pw_x();
    let s = settings(json!({"ecutwfc": 18, "kpoints": {"grid": [3, 3, 3]}}));
    let policy = effective_policy(&s, Path::new("/")).unwrap();
    let prep = prepare_structure(
        &s,
        &policy,
        parse_extxyz(SI).unwrap().remove(0),
        "si",
        Path::new("/"),
        2,
        true,
    )
    .unwrap();
    assert_eq!(prep.pools, 2);
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        launcher: vec![
            "mpirun".into(),
            "-np".into(),
            "2".into(),
            "--oversubscribe".into(),
        ],
        ranks: 2,
        env: vec![
            ("OMPI_ALLOW_RUN_AS_ROOT".into(), "1".into()),
            ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM".into(), "1".into()),
        ],
        ..Default::default()
    };
    let (outcome, _) = run(&prep, &policy, dir.path(), History::default(), &options);
    let r = success(outcome);
    let pw_out = std::fs::read_to_string(dir.path().join("attempt-00/pw.out")).unwrap();
    assert!(
        pw_out.contains("running on        2 processors")
            || pw_out.contains("running on     2 processors"),
        "two ranks"
    );
    assert!(
        pw_out.contains("K-points division:     npool     =       2"),
        "two pools"
    );
    assert!(
        (r.energy_ev - (-15.797_178_86 * 13.605_691_93)).abs() < 1e-3,
        "same energy in parallel: {}",
        r.energy_ev
    );
}

fn mpirun_two_ranks() -> RunOptions {
    RunOptions {
        launcher: vec![
            "mpirun".into(),
            "-np".into(),
            "2".into(),
            "--oversubscribe".into(),
        ],
        ranks: 2,
        env: vec![
            ("OMPI_ALLOW_RUN_AS_ROOT".into(), "1".into()),
            ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM".into(), "1".into()),
        ],
        ..Default::default()
    }
}

#[test]
fn more_pools_than_ranks_recover_by_halving_the_pools_for_real() {
    require_pw_x();
    let s = settings(json!({"ecutwfc": 18, "kpoints": {"grid": [2, 1, 1]}, "pools": 4}));
    let (prep, policy) = prepare(&s, SI, "si");
    assert_eq!(prep.pools, 4);
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = run(
        &prep,
        &policy,
        dir.path(),
        History::default(),
        &mpirun_two_ranks(),
    );
    assert_eq!(seen[0].failure, Some(Failure::Parallelization), "{seen:?}");
    assert!(
        seen[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("invalid number of pools"),
        "{:?}",
        seen[0].message
    );
    assert_eq!(seen[1].parameters["npools"], json!(2));
    success(outcome);
    let pw_out = std::fs::read_to_string(dir.path().join("attempt-01/pw.out")).unwrap();
    assert!(
        pw_out.contains("npool     =       2"),
        "two pools the second time"
    );
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        total += if p.is_dir() {
            dir_bytes(&p)
        } else {
            e.metadata().map(|m| m.len()).unwrap_or(0)
        };
    }
    total
}

#[test]
fn a_structure_given_up_on_leaves_its_report_not_its_scratch() {
    require_pw_x();
    let mut sizes = vec![];
    for keep in [true, false] {
        let s = settings(json!({
            "ecutwfc": 18, "kpoints": {"grid": [3, 3, 3]},
            "parameters": {"electron_maxstep": 1}, "max_attempts": 1,
            "keep": {"scratch_on_failure": keep}
        }));
        let (prep, policy) = prepare(&s, SI, "si");
        let dir = tempfile::tempdir().unwrap();
        let (outcome, _) = run(
            &prep,
            &policy,
            dir.path(),
            History::default(),
            &RunOptions::from_settings(&s),
        );
        let StructureOutcome::Fatal(report) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(report.attempts[0].failure, Some(Failure::ScfNotConverged));
        assert!(
            report.reason.contains("convergence NOT achieved"),
            "{}",
            report.reason
        );
        sizes.push(dir_bytes(dir.path()));
    }
    eprintln!(
        "failed Si2 3x3x3 task directory: {} bytes with its scratch, {} bytes without",
        sizes[0], sizes[1]
    );
    assert!(sizes[1] < sizes[0] / 4, "{sizes:?}");
    assert!(sizes[1] < 200_000, "{sizes:?}");
}
