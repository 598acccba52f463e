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
    replay_with(
        json!({"recovery": recovery}),
        script,
        workdir,
        History::default(),
    )
}

/// `replay` with more step settings and a history to resume from.
fn replay_with(
    extra: Value,
    script: &str,
    workdir: &Path,
    history: History,
) -> (StructureOutcome, Vec<flow_qe_scf::AttemptRecord>) {
    let mut step = json!({
        "structures": "x.extxyz",
        "pseudopotentials": {"family": "qe-debian", "dir": "/nonexistent"},
        "ecutwfc": 18,
    });
    for (k, v) in extra.as_object().unwrap() {
        step[k] = v.clone();
    }
    let settings = Settings::from_json(&step).unwrap();
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
        ..RunOptions::from_settings(&settings)
    };
    let mut seen = vec![];
    let outcome = run_structure(&prep, &policy, workdir, history, &options, &mut |a| {
        seen.push(a.clone())
    })
    .unwrap();
    (outcome, seen)
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn too_many_pools_rerun_with_half_the_pools() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = replay_with(
        json!({"pools": 4}),
        "si_npools_out_of_range:1 si_npools_out_of_range:1 si_scf_ok:0",
        dir.path(),
        History::default(),
    );
    assert!(
        matches!(outcome, StructureOutcome::Success(_)),
        "{outcome:?}"
    );
    assert_eq!(seen[0].failure, Some(Failure::Parallelization));
    let args: Vec<String> = (0..3)
        .map(|i| read(dir.path().join(format!("attempt-{i:02}/pw.args"))))
        .collect();
    assert!(args[0].contains("-nk 4"), "{args:?}");
    assert!(args[1].contains("-nk 2"), "{args:?}");
    assert!(
        !args[2].contains("-nk"),
        "one pool: no -nk at all: {args:?}"
    );
    assert!(!read(dir.path().join("attempt-01/pw.in")).contains("npools"));
}

#[test]
fn a_kill_during_the_save_write_never_restarts_from_that_save() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = replay(
        json!("default"),
        "si_walltime_kill_during_write:sig15 si_scf_ok:0",
        dir.path(),
    );
    assert!(
        matches!(outcome, StructureOutcome::Success(_)),
        "{outcome:?}"
    );
    assert_eq!(seen[0].failure, Some(Failure::WalltimeDuringWrite));
    assert_eq!(
        seen[0].error_class.map(|c| c.as_str()),
        Some("walltime"),
        "the engine escalates time on it"
    );
    assert_eq!(seen[1].restart, Restart::FromScratch);
    let pw_in = read(dir.path().join("attempt-01/pw.in"));
    assert!(
        !pw_in.contains("restart_mode") && !pw_in.contains("startingpot"),
        "{pw_in}"
    );
}

#[test]
fn the_allocation_ending_during_the_save_write_resumes_from_scratch() {
    // flow's own deadline kills pw.x after "Writing output data file": the allocation ends
    // (Interrupted, class walltime: the engine retries with more time) and the next one
    // starts from scratch, not from the half-written save
    let settings = Settings::from_json(&json!({
        "structures": "x.extxyz",
        "pseudopotentials": {"family": "qe-debian", "dir": "/nonexistent"},
        "ecutwfc": 18,
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
    let options = RunOptions {
        pw_command: data_dir().join("fake-pw.sh").display().to_string(),
        env: vec![(
            "FAKE_PW_SCRIPT".into(),
            "si_walltime_kill_during_write:hang si_scf_ok:0".into(),
        )],
        deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(2)),
        min_attempt_time: std::time::Duration::ZERO,
        ..Default::default()
    };
    let mut seen = vec![];
    let outcome = run_structure(
        &prep,
        &policy,
        dir.path(),
        History::default(),
        &options,
        &mut |a| seen.push(a.clone()),
    )
    .unwrap();
    let StructureOutcome::Interrupted { history, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(seen[0].failure, Some(Failure::WalltimeDuringWrite));
    assert_eq!(seen[0].error_class.map(|c| c.as_str()), Some("walltime"));
    // the next allocation
    let options = RunOptions {
        deadline: None,
        ..options
    };
    let outcome = run_structure(&prep, &policy, dir.path(), history, &options, &mut |a| {
        seen.push(a.clone())
    })
    .unwrap();
    assert!(
        matches!(outcome, StructureOutcome::Success(_)),
        "{outcome:?}"
    );
    assert_eq!(seen[1].restart, Restart::FromScratch);
    let pw_in = read(dir.path().join("attempt-01/pw.in"));
    assert!(!pw_in.contains("restart_mode"), "{pw_in}");
}

#[test]
fn a_clean_max_seconds_stop_still_restarts_fully_after_resuming() {
    // an allocation ended after the clean stop; the next one resumes the history
    let dir = tempfile::tempdir().unwrap();
    let (_, seen) = replay_with(
        json!({"max_attempts": 1}),
        "si_max_cpu_time:255",
        dir.path(),
        History::default(),
    );
    assert_eq!(seen[0].failure, Some(Failure::Walltime));
    let history = History {
        initial: Default::default(),
        attempts: seen,
    };
    let (outcome, seen) = replay_with(
        json!({}),
        "si_max_cpu_time:255 si_scf_ok:0",
        dir.path(),
        history,
    );
    assert!(
        matches!(outcome, StructureOutcome::Success(_)),
        "{outcome:?}"
    );
    assert_eq!(seen[0].restart, Restart::Full);
}

#[test]
fn a_crash_file_alone_is_read_and_classified() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = replay(
        json!("default"),
        "si_crash_only_cholesky:1 si_scf_ok:0",
        dir.path(),
    );
    let StructureOutcome::Success(r) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(seen[0].failure, Some(Failure::Diagonalization));
    assert!(
        seen[0].message.as_deref().unwrap().contains("from CRASH"),
        "{:?}",
        seen[0].message
    );
    assert_eq!(r.final_parameters["diagonalization"], json!("cg"));
}

#[test]
fn a_complete_output_with_a_nonzero_exit_keeps_the_result_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = replay(
        json!("default"),
        "si_scf_ok:1:mpi_teardown_noise",
        dir.path(),
    );
    let StructureOutcome::Success(r) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].exit_code, Some(1));
    assert_eq!(r.warnings.len(), 1);
    assert!(
        r.warnings[0].contains("exited with status 1"),
        "{:?}",
        r.warnings
    );
}

#[test]
fn an_output_of_another_cell_is_never_stored_and_its_scratch_goes() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = replay(json!("default"), "si_stale_other_cell:0", dir.path());
    let StructureOutcome::Fatal(report) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(seen[0].failure, Some(Failure::StructureMismatch));
    let message = seen[0].message.clone().unwrap();
    assert!(
        message.contains("attempt-00/pw.out") && message.contains("cell vector a(1)"),
        "{message}"
    );
    assert!(report.reason.contains("cell vector"), "{}", report.reason);
    let out = dir.path().join("attempt-00/out");
    assert!(!out.join("pwscf.wfc1").exists());
    assert!(!out.join("pwscf.save/wfc1.dat").exists());
    assert!(!out.join("pwscf.save/charge-density.dat").exists());
    assert!(
        dir.path().join("attempt-00/pw.out").exists(),
        "the evidence stays"
    );
}

#[test]
fn keep_scratch_on_failure_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, _) = replay_with(
        json!({"keep": {"scratch_on_failure": true}}),
        "si_exx_dexx_negative:1",
        dir.path(),
        History::default(),
    );
    let StructureOutcome::Fatal(report) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        report.reason.contains("dexx is negative"),
        "pw.x's own message: {}",
        report.reason
    );
    assert!(dir
        .path()
        .join("attempt-00/out/pwscf.save/charge-density.dat")
        .exists());
}

#[test]
fn an_interrupted_run_is_retried_once_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = replay(
        json!("default"),
        "si_node_failure:1 si_scf_ok:0",
        dir.path(),
    );
    assert!(
        matches!(outcome, StructureOutcome::Success(_)),
        "{outcome:?}"
    );
    assert_eq!(seen[0].failure, Some(Failure::Interrupted));
    assert_eq!(seen[1].handler.as_deref(), Some("retry-interrupted"));
    let dir = tempfile::tempdir().unwrap();
    let (outcome, seen) = replay(json!("default"), "si_node_failure:1", dir.path());
    assert!(matches!(outcome, StructureOutcome::Fatal(_)), "{outcome:?}");
    assert_eq!(seen.len(), 2);
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
