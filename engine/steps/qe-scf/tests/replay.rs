//! Recorded pw.x outputs of rare failures (CPU time exceeded, Cholesky/S-matrix, memory)
//! drive the classifier, the policy and the runner without pw.x: `tests/data/qe/fake-pw.sh`
//! replays one recorded output per attempt.

use flow_qe_scf::input::prepare_structure;
use flow_qe_scf::plan::effective_policy;
use flow_qe_scf::policy::{History, Restart};
use flow_qe_scf::run::{run_structure, RunOptions, StructureOutcome};
use flow_qe_scf::structure::parse_extxyz;
use flow_qe_scf::{Failure, Settings};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../tests/data/qe")
}

const SI: &str = "2\nLattice=\"0.0 2.715 2.715 2.715 0.0 2.715 2.715 2.715 0.0\"\nSi 0.0 0.0 0.0\nSi 1.40 1.35 1.33\n";

/// Runs one structure with fake pw.x replaying `script` (see fake-pw.sh).
fn replay(
    recovery: Value,
    script: &str,
    workdir: &Path,
) -> (StructureOutcome, Vec<flow_qe_scf::AttemptRecord>) {
    let settings = Settings::from_json(&json!({
        "structures": "x.extxyz",
        "pseudopotentials": {"family": "qe-debian", "dir": "/nonexistent"},
        "ecutwfc": 18,
        "recovery": recovery
    }))
    .unwrap();
    let policy = effective_policy(&settings, Path::new("/")).unwrap();
    let prep = prepare_structure(
        &settings,
        &policy,
        parse_extxyz(SI).unwrap().remove(0),
        "si",
        Path::new("/"),
        1,
        false,
    )
    .unwrap();
    let options = RunOptions {
        pw_command: data_dir().join("fake-pw.sh").display().to_string(),
        env: vec![("FAKE_PW_SCRIPT".into(), script.into())],
        ..Default::default()
    };
    let mut seen = vec![];
    let outcome = run_structure(
        &prep,
        &policy,
        workdir,
        History::default(),
        &options,
        &mut |a| seen.push(a.clone()),
    )
    .unwrap();
    (outcome, seen)
}

#[test]
fn cpu_time_exceeded_restarts_from_the_outdir() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = replay(
        json!("default"),
        "si_max_cpu_time:255 si_scf_ok:0",
        dir.path(),
    );
    assert!(
        matches!(outcome, StructureOutcome::Success(_)),
        "{outcome:?}"
    );
    assert_eq!(seen[0].failure, Some(Failure::Walltime));
    assert_eq!(seen[0].exit_code, Some(255));
    assert_eq!(seen[1].restart, Restart::Full);
    let pw_in = std::fs::read_to_string(dir.path().join("attempt-01/pw.in")).unwrap();
    assert!(pw_in.contains("restart_mode = 'restart'"), "{pw_in}");
    // the previous attempt's scratch was copied in, then removed from where it was
    assert!(dir.path().join("attempt-01/out/pwscf.save").is_dir());
    assert!(!dir.path().join("attempt-00/out").exists());
}

#[test]
fn cholesky_then_success_with_cg() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = replay(
        json!("default"),
        "fe_s_matrix_not_positive_definite:45 si_scf_ok:0",
        dir.path(),
    );
    let StructureOutcome::Success(r) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(seen[0].failure, Some(Failure::Diagonalization));
    assert_eq!(r.final_parameters["diagonalization"], json!("cg"));
}

#[test]
fn a_persistent_failure_ends_after_max_attempts_and_the_next_structure_still_runs() {
    let stubborn = json!({"name": "stubborn", "max_attempts": 5, "initial": {"mixing_beta": 0.7},
        "handlers": [{"match": "diagonalization", "set": {"mixing_beta": {"multiply": 0.8}}, "max_uses": 10}]});
    let dir = tempfile::tempdir().unwrap();
    let mut outcomes = vec![];
    for (name, script) in [
        ("bad", "fe_s_matrix_not_positive_definite:45"),
        ("good", "si_scf_ok:0"),
    ] {
        outcomes.push(replay(stubborn.clone(), script, &dir.path().join(name)));
    }
    let (bad, seen) = &outcomes[0];
    let StructureOutcome::Fatal(report) = bad else {
        panic!("{bad:?}")
    };
    assert_eq!(seen.len(), 5);
    assert_eq!(report.attempts.len(), 5);
    assert!(report.reason.contains("5 attempts"), "{}", report.reason);
    assert!(seen
        .iter()
        .all(|a| a.failure == Some(Failure::Diagonalization)));
    let betas: Vec<f64> = seen
        .iter()
        .map(|a| a.parameters["mixing_beta"].as_f64().unwrap())
        .collect();
    assert!(betas.windows(2).all(|w| w[1] < w[0]), "{betas:?}");
    assert!(matches!(outcomes[1].0, StructureOutcome::Success(_)));
}

#[test]
fn memory_exhaustion_is_out_of_memory_and_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = replay(
        json!("default"),
        "si_memory_allocation_failed:1",
        dir.path(),
    );
    assert!(matches!(outcome, StructureOutcome::Fatal(_)));
    assert_eq!(
        seen[0].error_class.map(|c| c.as_str()),
        Some("out-of-memory")
    );
}

#[test]
fn non_converged_scf_is_not_a_success_even_with_job_done() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = replay(
        json!("default"),
        "si_scf_not_converged:0 si_scf_ok:0",
        dir.path(),
    );
    assert_eq!(seen[0].failure, Some(Failure::ScfNotConverged));
    let StructureOutcome::Success(r) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(r.final_mixing_beta, Some(0.3));
}

#[test]
fn a_missing_pw_x_is_a_launch_failure() {
    let settings = Settings::from_json(&json!({
        "structures": "x.extxyz", "pseudopotentials": {"family": "qe-debian"}, "ecutwfc": 18,
        "pw_command": "/nonexistent/pw.x"
    }))
    .unwrap();
    let policy = effective_policy(&settings, Path::new("/")).unwrap();
    let prep = prepare_structure(
        &settings,
        &policy,
        parse_extxyz(SI).unwrap().remove(0),
        "si",
        Path::new("/"),
        1,
        false,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions::from_settings(&settings);
    let outcome = run_structure(
        &prep,
        &policy,
        dir.path(),
        History::default(),
        &options,
        &mut |_| {},
    )
    .unwrap();
    let StructureOutcome::Fatal(report) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(report.attempts[0].failure, Some(Failure::LaunchFailed));
    assert!(report.to_string().contains("/nonexistent/pw.x"));
}
