//! Every failure class: how a recorded (or assembled) pw.x output is classified, and the
//! first thing the default policy does about it. `tests/data/qe/README.md` says which
//! outputs are real pw.x 6.7 runs and which were assembled after QE 6.x–7.x source text.

use flow_qe_scf::classify::{classify_attempt, ExitInfo};
use flow_qe_scf::output::{check_structure, parse_pw_output};
use flow_qe_scf::params::Params;
use flow_qe_scf::policy::{next_parameters, AttemptRecord, Decision, History, Restart};
use flow_qe_scf::policy::{RecoveryPolicy, RecoverySpec};
use flow_qe_scf::structure::parse_extxyz;
use flow_qe_scf::Failure;
use serde_json::{json, Value};
use std::path::Path;

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../tests/data/qe")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn opt(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        data(name)
    }
}

fn code(c: i32) -> ExitInfo {
    ExitInfo {
        code: Some(c),
        ..Default::default()
    }
}

fn signal(s: i32) -> ExitInfo {
    ExitInfo {
        signal: Some(s),
        ..Default::default()
    }
}

/// Classifies (stdout file, stderr file, CRASH file, exit); "" for none.
fn class_of(out: &str, err: &str, crash: &str, exit: ExitInfo) -> (Failure, String) {
    let c = classify_attempt(&opt(out), &opt(err), &opt(crash), exit)
        .unwrap_or_else(|| panic!("{out}: classified as a success"));
    (c.failure, c.message)
}

fn default_policy() -> RecoveryPolicy {
    RecoveryPolicy::from_spec(&RecoverySpec::default(), Path::new(".")).unwrap()
}

/// Attempt 0 as the factory runs it: the policy's initial parameters and `nosym`.
fn factory_initial(policy: &RecoveryPolicy) -> Params {
    let mut p = policy.initial.clone();
    p.insert("nosym".into(), json!(true));
    p
}

/// The default policy's decision after one attempt that failed with `failure`.
fn first_action(failure: Failure, initial: Params, observed: Params, message: &str) -> Decision {
    let policy = default_policy();
    let history = History {
        initial: initial.clone(),
        attempts: vec![AttemptRecord {
            attempt: 0,
            parameters: initial,
            handler: None,
            restart: Restart::None,
            failure: Some(failure),
            error_class: Some(failure.error_class()),
            message: Some(message.to_string()),
            exit_code: Some(1),
            wall_seconds: 1.0,
            observed,
            directory: None,
            warnings: vec![],
        }],
    };
    next_parameters(&policy, &history, "si")
}

/// Asserts a retry by `handler` that changes exactly `changes` and restarts as `restart`.
fn assert_retry(d: &Decision, handler: &str, changes: &[(&str, Value)], restart: Restart) {
    let Decision::Retry {
        params,
        handler: h,
        restart: r,
    } = d
    else {
        panic!("expected a retry by {handler}, got {d:?}");
    };
    assert_eq!(h.as_deref(), Some(handler), "{d:?}");
    assert_eq!(*r, restart, "{d:?}");
    let base = factory_initial(&default_policy());
    for (k, v) in changes {
        assert_eq!(params.get(*k), Some(v), "{k} in {params:?}");
    }
    let changed: Vec<&String> = params
        .iter()
        .filter(|(k, v)| base.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        changed.len(),
        changes
            .iter()
            .filter(|(k, v)| base.get(*k) != Some(v))
            .count(),
        "only {changes:?} change: {params:?}"
    );
}

fn assert_gives_up(d: &Decision, needle: &str) {
    let Decision::GiveUp(report) = d else {
        panic!("expected a give-up, got {d:?}");
    };
    assert!(
        report.reason.contains(needle),
        "`{needle}` not in the reason: {}",
        report.reason
    );
}

fn act(failure: Failure, message: &str) -> Decision {
    let p = default_policy();
    first_action(failure, factory_initial(&p), Params::new(), message)
}

#[test]
fn scf_not_converged_lowers_mixing_beta() {
    let (f, m) = class_of(
        "si_scf_not_converged.out",
        "si_scf_not_converged.err",
        "",
        code(2),
    );
    assert_eq!(f, Failure::ScfNotConverged);
    assert_retry(
        &act(f, &m),
        "lower-mixing-beta",
        &[("mixing_beta", json!(0.3))],
        Restart::None,
    );
}

#[test]
fn diagonalization_failures_go_to_cg() {
    for (out, err, crash, exit) in [
        // real: rdiaghg S matrix; real: ppcg dsygvd
        ("fe_s_matrix_not_positive_definite.out", "", "", code(45)),
        ("fe_ppcg_dsygvd_failed.out", "", "", code(1)),
        // assembled: ParO's WRITE + bare STOP exits 0 with no error block
        ("si_paro_qr_failed.out", "", "", code(0)),
        // assembled: rank 1's Cholesky failure, only in CRASH
        (
            "si_crash_only_cholesky.out",
            "si_crash_only_cholesky.err",
            "si_crash_only_cholesky.crash",
            code(1),
        ),
    ] {
        let (f, m) = class_of(out, err, crash, exit);
        assert_eq!(f, Failure::Diagonalization, "{out}: {m}");
        assert_retry(
            &act(f, &m),
            "cholesky-cg",
            &[("diagonalization", json!("cg"))],
            Restart::None,
        );
    }
    let (_, m) = class_of(
        "si_crash_only_cholesky.out",
        "",
        "si_crash_only_cholesky.crash",
        code(1),
    );
    assert_eq!(
        m,
        "Error in routine cdiaghg (3): problems computing cholesky (rank 1, from CRASH)"
    );
}

#[test]
fn a_clean_max_seconds_stop_restarts_from_the_save() {
    let (f, m) = class_of("si_max_cpu_time.out", "si_max_cpu_time.err", "", code(255));
    assert_eq!(f, Failure::Walltime);
    assert_retry(&act(f, &m), "restart-after-max-seconds", &[], Restart::Full);
}

#[test]
fn a_kill_during_the_save_write_starts_from_scratch() {
    // real: SIGTERM right after "Writing output data file" (energy and forces printed,
    // no JOB DONE, data-file-schema.xml left empty)
    let out = data("si_walltime_kill_during_write.out");
    assert!(parse_pw_output(&out).is_ok(), "the numbers are all there");
    for exit in [signal(15), code(143), signal(9)] {
        let (f, m) = class_of("si_walltime_kill_during_write.out", "", "", exit);
        assert_eq!(f, Failure::WalltimeDuringWrite, "{exit:?}");
        assert!(m.contains("half written"), "{m}");
        assert_retry(
            &act(f, &m),
            "from-scratch-after-kill-during-write",
            &[],
            Restart::FromScratch,
        );
    }
    // a kill that is not a kill (exit 1 with that output) is no walltime
    let (f, _) = class_of("si_walltime_kill_during_write.out", "", "", code(1));
    assert_eq!(f, Failure::Interrupted);
}

#[test]
fn memory_exhaustion_gives_up() {
    let (f, m) = class_of(
        "si_memory_allocation_failed.out",
        "si_memory_allocation_failed.err",
        "",
        code(1),
    );
    assert_eq!(f, Failure::OutOfMemory);
    assert_gives_up(&act(f, &m), "no handler left for out-of-memory");
}

#[test]
fn flows_timeout_gives_up() {
    let exit = ExitInfo {
        timed_out: true,
        signal: Some(9),
        code: None,
    };
    let (f, m) = class_of("si_scf_ok.out", "", "", exit);
    assert_eq!(f, Failure::Timeout);
    assert_gives_up(&act(f, &m), "no handler left for timeout");
}

#[test]
fn incomplete_output_is_job_done_without_results_and_gives_up() {
    let out = "     Program PWSCF v.6.7MaX starts\n   JOB DONE.\n";
    assert_eq!(classify_attempt(out, "", "", code(0)), None);
    assert!(parse_pw_output(out).is_err());
    assert_gives_up(
        &act(Failure::IncompleteOutput, "no `!    total energy` line"),
        "no handler left for incomplete-output",
    );
}

#[test]
fn interrupted_runs_get_one_retry_from_scratch() {
    for (out, err, exit, needle) in [
        // real: truncated by an MPI abort, exit status lost
        (
            "fe_buffered_abort_truncated.out",
            "",
            code(0),
            "exit status 0",
        ),
        ("", "", code(1), "empty output"),
        ("", "", code(0), "empty output"),
        // assembled: srun's node failure
        (
            "si_node_failure.out",
            "si_node_failure.err",
            code(1),
            "Node failure",
        ),
        ("si_scf_not_converged.out", "", signal(15), "signal 15"),
    ] {
        let (f, m) = class_of(out, err, "", exit);
        let f = if out == "si_scf_not_converged.out" {
            // its pattern wins over the signal: check the signal alone
            let (g, n) = class_of("", "", "", exit);
            assert!(n.contains(needle), "{n}");
            g
        } else {
            assert!(m.contains(needle), "{out}: {m}");
            f
        };
        assert_eq!(f, Failure::Interrupted, "{out} {exit:?}");
        assert_retry(
            &act(f, "interrupted"),
            "retry-interrupted",
            &[],
            Restart::FromScratch,
        );
    }
    // once only
    let p = default_policy();
    let mut h = History {
        initial: factory_initial(&p),
        attempts: vec![],
    };
    for handler in [None, Some("retry-interrupted".to_string())] {
        h.attempts.push(AttemptRecord {
            attempt: h.attempts.len() as u32,
            parameters: factory_initial(&p),
            handler,
            restart: Restart::FromScratch,
            failure: Some(Failure::Interrupted),
            error_class: None,
            message: Some("empty output".into()),
            exit_code: Some(0),
            wall_seconds: 0.0,
            observed: Params::new(),
            directory: None,
            warnings: vec![],
        });
    }
    assert_gives_up(&next_parameters(&p, &h, "si"), "empty output");
}

#[test]
fn errors_retrying_cannot_fix_give_up_with_pw_x_own_message() {
    for (out, err, crash, needle) in [
        // assembled: EXX
        (
            "si_exx_dexx_negative.out",
            "",
            "",
            "Error in routine electrons (1): dexx is negative!",
        ),
        // real: rank 1 could not read its restart file; stdout has no error at all
        (
            "si_crash_only_read_wfc.out",
            "si_crash_only_read_wfc.err",
            "si_crash_only_read_wfc.crash",
            "Error in routine read_wfc (2): cannot open restart file",
        ),
    ] {
        let (f, m) = class_of(out, err, crash, code(1));
        assert_eq!(f, Failure::NonzeroExit, "{out}");
        assert!(m.starts_with(needle), "{m}");
        assert!(!m.contains("exit status"), "{m}");
        assert_gives_up(&act(f, &m), needle);
    }
}

#[test]
fn a_segfault_gives_up() {
    let (f, m) = class_of("fe_cg_segfault.out", "", "", signal(11));
    assert_eq!(f, Failure::Signal);
    assert_gives_up(&act(f, &m), "no handler left for signal");
}

#[test]
fn unphysical_results_give_up() {
    let out = parse_pw_output(&data("si_scf_ok.out")).unwrap();
    let (f, why) = flow_qe_scf::output::sanitize(&out, 0.1).unwrap_err();
    assert_eq!(f, Failure::Unphysical);
    assert_gives_up(&act(f, &why), "above the limit");
}

#[test]
fn an_occupied_highest_band_gets_more_bands() {
    let p = default_policy();
    let mut observed = Params::new();
    observed.insert("nbnd".into(), json!(8));
    let d = first_action(
        Failure::HighestBandOccupied,
        factory_initial(&p),
        observed,
        "occupied",
    );
    assert_retry(
        &d,
        "more-bands",
        &[("nbnd", json!(12))],
        Restart::ChargeDensity,
    );
}

#[test]
fn a_missing_pw_x_gives_up() {
    assert_gives_up(
        &act(Failure::LaunchFailed, "cannot start `pw.x`"),
        "cannot start",
    );
}

#[test]
fn too_many_pools_halve_npools() {
    for (out, err, crash) in [
        // real: mpirun -np 2 pw.x -nk 4 (QE 6.7: "invalid number of pools, out of range")
        (
            "si_npools_out_of_range.out",
            "si_npools_out_of_range.err",
            "si_npools_out_of_range.crash",
        ),
        // the same, only the CRASH file left (stdout empty)
        (
            "",
            "si_npools_out_of_range.err",
            "si_npools_out_of_range.crash",
        ),
        // assembled: QE <= 6.5's divide_et_impera error
        ("si_divide_et_impera_no_kpoints.out", "", ""),
    ] {
        let (f, m) = class_of(out, err, crash, code(1));
        assert_eq!(f, Failure::Parallelization, "{out}: {m}");
        let p = default_policy();
        let mut observed = Params::new();
        observed.insert("npools".into(), json!(4));
        let d = first_action(f, factory_initial(&p), observed, &m);
        assert_retry(&d, "fewer-pools", &[("npools", json!(2))], Restart::None);
    }
    // at one pool there is nothing left to halve
    let p = default_policy();
    let mut observed = Params::new();
    observed.insert("npools".into(), json!(1));
    let d = first_action(Failure::Parallelization, factory_initial(&p), observed, "x");
    assert!(matches!(d, Decision::GiveUp(_)), "{d:?}");
}

#[test]
fn symmetry_errors_turn_symmetry_off() {
    // assembled: checkallsym (real pw.x 6.7 disables symmetry on the distorted cells we
    // tried instead of failing: si_distorted_cell_symmetry_disabled_ok.out)
    let (f, m) = class_of("si_checkallsym_not_orthogonal.out", "", "", code(1));
    assert_eq!(f, Failure::Symmetry);
    // the factory runs nosym already: no-inversion comes next
    assert_retry(
        &act(f, &m),
        "no-symmetry-no-inversion",
        &[("nosym", json!(true)), ("noinv", json!(true))],
        Restart::None,
    );
    // a step with `nosym: false`: symmetry off first
    let p = default_policy();
    let mut initial = p.initial.clone();
    initial.insert("nosym".into(), json!(false));
    let d = first_action(f, initial, Params::new(), &m);
    let Decision::Retry {
        params, handler, ..
    } = d
    else {
        panic!()
    };
    assert_eq!(handler.as_deref(), Some("no-symmetry"));
    assert_eq!(params["nosym"], json!(true));
    assert!(!params.contains_key("noinv"));
    let ok = data("si_distorted_cell_symmetry_disabled_ok.out");
    assert!(ok.contains("symmetries are disabled"));
    assert_eq!(classify_attempt(&ok, "", "", code(0)), None);
}

#[test]
fn a_wrong_charge_turns_smearing_on_then_adds_bands() {
    let (f, m) = class_of("si_charge_is_wrong.out", "", "", code(1));
    assert_eq!(f, Failure::ChargeWrong);
    assert_eq!(
        m,
        "Error in routine electrons (1): charge is wrong: smearing is needed"
    );
    assert_retry(
        &act(f, &m),
        "charge-wrong-smearing",
        &[
            ("occupations", json!("smearing")),
            ("smearing", json!("mv")),
            ("degauss", json!(0.01)),
        ],
        Restart::None,
    );
    // already smeared (a metal): more bands
    let p = default_policy();
    let mut initial = factory_initial(&p);
    initial.insert("occupations".into(), json!("smearing"));
    initial.insert("smearing".into(), json!("gaussian"));
    initial.insert("degauss".into(), json!(0.02));
    let mut observed = Params::new();
    observed.insert("nbnd".into(), json!(10));
    let Decision::Retry {
        params, handler, ..
    } = first_action(f, initial, observed, &m)
    else {
        panic!()
    };
    assert_eq!(handler.as_deref(), Some("charge-wrong-more-bands"));
    assert_eq!(params["nbnd"], json!(15));
    assert_eq!(
        params["smearing"],
        json!("gaussian"),
        "the step's smearing stays"
    );
}

#[test]
fn a_broyden_breakdown_halves_the_mixing_beta() {
    let (f, m) = class_of("si_broyden_factorization.out", "", "", code(1));
    assert_eq!(f, Failure::Mixing);
    assert_eq!(m, "Error in routine broyden (1): factorization");
    assert_retry(
        &act(f, &m),
        "mixing-lower-beta",
        &[("mixing_beta", json!(0.35))],
        Restart::None,
    );
}

#[test]
fn an_output_of_another_structure_is_a_located_failure() {
    let si = parse_extxyz("2\nLattice=\"0.0 2.715 2.715 2.715 0.0 2.715 2.715 2.715 0.0\"\nSi 0.0 0.0 0.0\nSi 1.40 1.35 1.33\n").unwrap().remove(0);
    assert_eq!(check_structure(&data("si_scf_ok.out"), &si), Ok(()));
    let stale = data("si_stale_other_cell.out");
    assert_eq!(classify_attempt(&stale, "", "", code(0)), None);
    let why = check_structure(&stale, &si).unwrap_err();
    assert!(why.contains("cell vector a(1)"), "{why}");
    let mut three = si.clone();
    three.symbols.push("Si".into());
    three.positions.push([0.5; 3]);
    let why = check_structure(&data("si_scf_ok.out"), &three).unwrap_err();
    assert!(why.contains("2 atoms") && why.contains("has 3"), "{why}");
    let mut other = si.clone();
    other.symbols[1] = "Ge".into();
    let why = check_structure(&data("si_scf_ok.out"), &other).unwrap_err();
    assert!(why.contains("atom 2 is Si in the output, Ge"), "{why}");
    assert_gives_up(
        &act(Failure::StructureMismatch, &why),
        "no handler left for structure-mismatch",
    );
}

#[test]
fn a_complete_output_with_a_nonzero_exit_is_a_success() {
    let out = data("si_scf_ok.out");
    for exit in [code(1), code(255), signal(11)] {
        assert_eq!(
            classify_attempt(&out, &data("mpi_teardown_noise.err"), "", exit),
            None,
            "{exit:?}"
        );
    }
}

#[test]
fn every_class_is_covered_here() {
    // the list this file tests; a new class must be added to it (and tested above)
    let tested = [
        Failure::ScfNotConverged,
        Failure::Diagonalization,
        Failure::Walltime,
        Failure::OutOfMemory,
        Failure::Timeout,
        Failure::IncompleteOutput,
        Failure::NonzeroExit,
        Failure::Signal,
        Failure::Unphysical,
        Failure::HighestBandOccupied,
        Failure::LaunchFailed,
        Failure::Parallelization,
        Failure::Symmetry,
        Failure::ChargeWrong,
        Failure::Mixing,
        Failure::WalltimeDuringWrite,
        Failure::Interrupted,
        Failure::StructureMismatch,
    ];
    assert_eq!(tested.len(), Failure::ALL.len());
    for f in Failure::ALL {
        assert!(tested.contains(&f), "{f} has no test in tests/classes.rs");
    }
}
