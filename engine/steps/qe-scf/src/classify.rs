//! Classifies a finished pw.x attempt from its stdout, stderr, `CRASH` file and exit
//! status.
//!
//! The table below was built from real pw.x 6.7 output (recorded in `tests/data/qe/`, whose
//! README says which files are real and which were assembled after QE 6.x–7.x source text).
//! Order matters: a non-converged SCF exits 2 but still prints `JOB DONE.`, so the patterns
//! are consulted before the completion marker and the exit status; a complete output
//! (`JOB DONE.`, an energy, forces) is then a success whatever the exit status (MPI
//! teardown noise), which [`exit_warning`] reports.
//!
//! pw.x writes an error of a rank other than 0 only to `CRASH` in its working directory
//! (non-root ranks' stdout is `/dev/null`): the CRASH text is classified like stdout.

use crate::failure::Failure;
use regex::Regex;
use std::sync::OnceLock;

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ExitInfo {
    /// The exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// flow's timeout expired and flow killed it.
    pub timed_out: bool,
}

/// A failure and the line(s) that show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// What went wrong.
    pub failure: Failure,
    /// The evidence: pw.x's own error message (its `%%%%` block or CRASH entry) or the
    /// matching line.
    pub message: String,
}

/// The pattern table: (failure, regex). Consulted in order on stdout, CRASH, then stderr.
pub const PATTERNS: &[(Failure, &str)] = &[
    (
        Failure::OutOfMemory,
        r"(?i)out of memory|oom-kill|oom_kill|cannot allocate memory|memory allocation failed|error allocating|std::bad_alloc",
    ),
    (Failure::Walltime, r"Maximum CPU time exceeded"),
    // QE >= 6.6 only *informs* "suboptimal parallelization: some nodes have no k-points"
    // and runs on: the message must start the line to be the (older) error.
    (
        Failure::Parallelization,
        r"(?m)^\s*some nodes have no k-points|invalid number of pools|nks = 0 for some nodes",
    ),
    (
        Failure::Symmetry,
        r"not orthogonal operation|symmetry operation is not satisfied|original symmetry operations not satisfied",
    ),
    (Failure::ChargeWrong, r"charge is wrong"),
    (
        Failure::Diagonalization,
        r"(?i)problems computing cholesky|S matrix not positive definite|error in diagonalization|Error in routine [crp]diaghg|Error in routine cdiagh|from [crp]diaghg? +: error|dsygvd failed|zhegvd failed|too many bands are not converged|\[Q, R\] = qr\(X, 0\) failed|Cholesky failed in invchol|eigenvectors failed to converge",
    ),
    (
        Failure::Mixing,
        r"Error in routine broyden|from broyden +: error",
    ),
    (Failure::ScfNotConverged, r"convergence NOT achieved"),
];

fn compiled() -> &'static Vec<(Failure, Regex)> {
    static TABLE: OnceLock<Vec<(Failure, Regex)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        PATTERNS
            .iter()
            .filter_map(|(f, p)| Regex::new(p).ok().map(|r| (*f, r)))
            .collect()
    })
}

/// pw.x's completion marker.
pub const JOB_DONE: &str = "JOB DONE.";

/// What pw.x prints when it starts writing its save directory (6.x, then 7.x wording).
pub const WRITING_SAVE: [&str; 2] = ["Writing output data file", "Writing all to output data dir"];

/// The `%%%%` error block pw.x prints on a hard error, as one line
/// (`Error in routine rdiaghg (45): S matrix not positive definite`).
pub fn error_block(stdout: &str) -> Option<String> {
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with("%%%%%%"))?;
    let body: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with("%%%%%%"))
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    if body.is_empty() {
        None
    } else {
        Some(body.join(" "))
    }
}

/// The first entry of a `CRASH` file, in the words of stdout's error block:
/// `Error in routine read_wfc (2): cannot open restart file ... (rank 1, from CRASH)`.
pub fn crash_entry(crash: &str) -> Option<String> {
    let block = error_block(crash)?;
    let re = crash_re();
    match re.captures(&block) {
        Some(c) => Some(format!(
            "Error in routine {} ({}): {} (rank {}, from CRASH)",
            &c[2],
            &c[3],
            c[4].trim(),
            &c[1]
        )),
        None => Some(format!("{block} (from CRASH)")),
    }
}

fn crash_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"task #\s*(\d+)\s+from\s+(\S+)\s*:\s*error #\s*(-?\d+)\s*(.*)")
            .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    })
}

/// Whether stdout shows a finished calculation: `JOB DONE.`, a total energy and forces.
pub fn output_complete(stdout: &str) -> bool {
    stdout.contains(JOB_DONE)
        && stdout.contains("!    total energy")
        && stdout.contains("Forces acting on atoms")
}

/// Whether pw.x had begun writing its save directory.
pub fn save_write_started(stdout: &str) -> bool {
    WRITING_SAVE.iter().any(|w| stdout.contains(w))
}

fn killed(exit: ExitInfo) -> bool {
    let by = |s: i32| {
        matches!(
            s,
            libc::SIGTERM | libc::SIGKILL | libc::SIGINT | libc::SIGHUP
        )
    };
    exit.signal.is_some_and(by) || exit.code.is_some_and(|c| c > 128 && by(c - 128))
}

/// Lines a launcher prints when a node or the launcher itself went away.
const NODE_LOST: &[&str] = &[
    "Node failure",
    "lost communication with a remote daemon",
    "ORTE has lost communication",
    "An ORTE daemon has unexpectedly failed",
    "srun: error: Node failure",
    "Job step aborted",
    "DUE TO NODE FAILURE",
];

/// Classifies an attempt from stdout, stderr and the exit status (no CRASH file).
pub fn classify(stdout: &str, stderr: &str, exit: ExitInfo) -> Option<Classified> {
    classify_attempt(stdout, stderr, "", exit)
}

/// Classifies an attempt. `None` means pw.x reports success: no failure pattern and a
/// complete output (whatever the exit status; see [`exit_warning`]), or exit 0 with
/// `JOB DONE.` printed. Result checks (parsing, structure, sanitation, band occupation)
/// come after this and may still fail the attempt.
///
/// Precedence: flow's timeout; a kill after the save write began (`walltime-during-write`);
/// the pattern table (stdout, CRASH, stderr); a complete output; pw.x's own error block or
/// CRASH entry (`nonzero-exit`, with pw.x's message); signals and 128+N exit codes
/// (SIGKILL → out-of-memory, SIGTERM/SIGINT/SIGHUP → interrupted, others → signal); an
/// MPI_ABORT whose message was lost (`nonzero-exit`); no `JOB DONE.` (`interrupted`).
pub fn classify_attempt(
    stdout: &str,
    stderr: &str,
    crash: &str,
    exit: ExitInfo,
) -> Option<Classified> {
    let found = |failure, message: String| Some(Classified { failure, message });
    if exit.timed_out {
        return found(Failure::Timeout, "killed by flow's timeout".into());
    }
    let done = stdout.contains(JOB_DONE);
    if !done && save_write_started(stdout) && killed(exit) {
        return found(
            Failure::WalltimeDuringWrite,
            format!(
                "{} while pw.x was writing its save (no `{JOB_DONE}`): the save may be half written",
                kill_text(exit)
            ),
        );
    }
    let own = error_block(stdout).or_else(|| crash_entry(crash));
    for (failure, re) in compiled() {
        for text in [stdout, crash, stderr] {
            if let Some(m) = re.find(text) {
                let message = own.clone().unwrap_or_else(|| line_of(text, m.start()));
                return found(*failure, message);
            }
        }
    }
    if own.is_none() && output_complete(stdout) {
        return None;
    }
    if let Some(message) = own {
        // pw.x's own words, not "exit status 1"; it detected the error itself, so a
        // launcher's kill of the other ranks afterwards (srun: 137) does not decide
        return found(Failure::NonzeroExit, message);
    }
    if let Some(sig) = exit.signal {
        return Some(signal_class(sig, &format!("killed by signal {sig}")));
    }
    match exit.code {
        // 128+N as reported by launchers (mpirun, srun) and shells.
        Some(c) if c > 128 && c < 160 => {
            return Some(signal_class(
                c - 128,
                &format!("exit status {c} (signal {})", c - 128),
            ))
        }
        _ => {}
    }
    if let Some(line) = stderr.lines().find(|l| l.contains("MPI_ABORT was invoked")) {
        return found(
            Failure::NonzeroExit,
            format!(
                "{}{} (pw.x's message was lost: no error block in stdout and no CRASH file)",
                exit.code
                    .map_or(String::new(), |c| format!("exit status {c}: ")),
                line.trim()
            ),
        );
    }
    if !done {
        let why = stderr
            .lines()
            .find(|l| NODE_LOST.iter().any(|n| l.contains(n)))
            .map(|l| format!("; the launcher says: {}", l.trim()))
            .unwrap_or_default();
        let output = if stdout.trim().is_empty() {
            "empty output".to_string()
        } else {
            format!(
                "output ends with `{}`",
                last_line(stdout).unwrap_or_default()
            )
        };
        return found(
            Failure::Interrupted,
            format!(
                "pw.x stopped before `{JOB_DONE}` without an error message ({}, {output}{why})",
                exit.code
                    .map_or("no exit status".to_string(), |c| format!("exit status {c}"))
            ),
        );
    }
    match exit.code {
        Some(c) if c != 0 => found(
            Failure::NonzeroExit,
            format!("exit status {c} after `{JOB_DONE}` without a complete result"),
        ),
        _ => None,
    }
}

fn signal_class(sig: i32, what: &str) -> Classified {
    match sig {
        libc::SIGKILL => Classified {
            failure: Failure::OutOfMemory,
            message: format!("{what} (SIGKILL not sent by flow: the kernel's or scheduler's OOM killer)"),
        },
        libc::SIGTERM | libc::SIGINT | libc::SIGHUP => Classified {
            failure: Failure::Interrupted,
            message: format!("{what} before pw.x finished (not by flow: a scheduler, an administrator, a dying node)"),
        },
        _ => Classified {
            failure: Failure::Signal,
            message: what.to_string(),
        },
    }
}

fn kill_text(exit: ExitInfo) -> String {
    match (exit.signal, exit.code) {
        (Some(s), _) => format!("killed by signal {s}"),
        (None, Some(c)) => format!("exit status {c} (signal {})", c - 128),
        _ => "killed".into(),
    }
}

/// For an attempt [`classify_attempt`] let through: the warning to record when its exit
/// status was not 0 (the output decided: the result is kept).
pub fn exit_warning(exit: ExitInfo) -> Option<String> {
    let status = match (exit.code, exit.signal) {
        (_, Some(s)) => format!("was killed by signal {s}"),
        (Some(c), None) if c != 0 => format!("exited with status {c}"),
        _ => return None,
    };
    Some(format!(
        "pw.x {status} after a complete output (`{JOB_DONE}`, energy, forces): the result is kept"
    ))
}

fn line_of(text: &str, at: usize) -> String {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    text[start..end].trim().to_string()
}

fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
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

    fn code(c: i32) -> ExitInfo {
        ExitInfo {
            code: Some(c),
            ..Default::default()
        }
    }

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(compiled().len(), PATTERNS.len());
    }

    #[test]
    fn success_is_none() {
        assert_eq!(classify(&data("si_scf_ok.out"), "", code(0)), None);
        assert_eq!(classify(&data("fe_paro_ok.out"), "", code(0)), None);
    }

    #[test]
    fn scf_not_converged_despite_job_done() {
        let out = data("si_scf_not_converged.out");
        assert!(out.contains(JOB_DONE));
        let c = classify(&out, &data("si_scf_not_converged.err"), code(2)).unwrap();
        assert_eq!(c.failure, Failure::ScfNotConverged);
        assert!(
            c.message
                .contains("convergence NOT achieved after   2 iterations"),
            "{}",
            c.message
        );
        // even if a launcher swallowed the exit status
        assert_eq!(
            classify(&out, "", code(0)).unwrap().failure,
            Failure::ScfNotConverged
        );
    }

    #[test]
    fn s_matrix_is_diagonalization() {
        let c = classify(&data("fe_s_matrix_not_positive_definite.out"), "", code(45)).unwrap();
        assert_eq!(c.failure, Failure::Diagonalization);
        assert_eq!(
            c.message,
            "Error in routine rdiaghg (45): S matrix not positive definite"
        );
    }

    #[test]
    fn ppcg_dsygvd_is_diagonalization() {
        let c = classify(&data("fe_ppcg_dsygvd_failed.out"), "", code(1)).unwrap();
        assert_eq!(c.failure, Failure::Diagonalization);
        assert!(c.message.contains("ppcg"), "{}", c.message);
    }

    #[test]
    fn cholesky_text_is_diagonalization() {
        let out = " %%%%%%%%%%\n     Error in routine cdiaghg (3):\n     problems computing cholesky\n %%%%%%%%%%\n";
        assert_eq!(
            classify(out, "", code(1)).unwrap().failure,
            Failure::Diagonalization
        );
    }

    #[test]
    fn max_cpu_time_is_walltime() {
        let c = classify(
            &data("si_max_cpu_time.out"),
            &data("si_max_cpu_time.err"),
            code(255),
        )
        .unwrap();
        assert_eq!(c.failure, Failure::Walltime);
    }

    #[test]
    fn allocation_failure_is_oom() {
        let c = classify(
            &data("si_memory_allocation_failed.out"),
            &data("si_memory_allocation_failed.err"),
            code(1),
        )
        .unwrap();
        assert_eq!(c.failure, Failure::OutOfMemory);
    }

    #[test]
    fn sigkill_and_137_are_oom() {
        let killed = ExitInfo {
            signal: Some(9),
            ..Default::default()
        };
        assert_eq!(
            classify("", "", killed).unwrap().failure,
            Failure::OutOfMemory
        );
        assert_eq!(
            classify("", "", code(137)).unwrap().failure,
            Failure::OutOfMemory
        );
        assert_eq!(
            classify("", "slurmstepd: error: Detected 1 oom_kill event", code(1))
                .unwrap()
                .failure,
            Failure::OutOfMemory
        );
    }

    #[test]
    fn segfault_is_signal() {
        let out = data("fe_cg_segfault.out");
        let segv = ExitInfo {
            signal: Some(11),
            ..Default::default()
        };
        assert_eq!(classify(&out, "", segv).unwrap().failure, Failure::Signal);
        assert_eq!(
            classify(&out, "", code(139)).unwrap().failure,
            Failure::Signal
        );
    }

    #[test]
    fn timeout_wins() {
        let t = ExitInfo {
            signal: Some(9),
            timed_out: true,
            code: None,
        };
        assert_eq!(
            classify(&data("si_scf_ok.out"), "", t).unwrap().failure,
            Failure::Timeout
        );
    }

    #[test]
    fn missing_job_done_without_an_error_is_interrupted() {
        // was `incomplete-output` before the `interrupted` class existed (issue 14);
        // `incomplete-output` now means JOB DONE. with results that cannot be parsed
        let c = classify(&data("fe_buffered_abort_truncated.out"), "", code(0)).unwrap();
        assert_eq!(c.failure, Failure::Interrupted);
        assert!(c.message.contains("exit status 0"), "{}", c.message);
        let c = classify("", "", code(0)).unwrap();
        assert_eq!(c.failure, Failure::Interrupted);
        assert!(c.message.contains("empty output"), "{}", c.message);
    }

    #[test]
    fn job_done_without_results_passes_to_the_parser() {
        // classify lets it through; run.rs's parse then fails it as incomplete-output
        let out = "     Program PWSCF v.6.7MaX starts\n   JOB DONE.\n";
        assert_eq!(classify(out, "", code(0)), None);
        assert!(crate::output::parse_pw_output(out).is_err());
    }

    #[test]
    fn a_complete_output_with_a_nonzero_exit_is_kept_with_a_warning() {
        let out = data("si_scf_ok.out");
        assert_eq!(classify(&out, "", code(1)), None);
        let w = exit_warning(code(1)).unwrap();
        assert!(w.contains("status 1") && w.contains("kept"), "{w}");
        assert_eq!(exit_warning(code(0)), None);
        // but not when the output says the SCF did not converge (exit 2, JOB DONE. printed)
        assert!(classify(&data("si_scf_not_converged.out"), "", code(2)).is_some());
    }

    #[test]
    fn the_suboptimal_pools_notice_of_qe_6_6_is_not_an_error() {
        let out = data("si_suboptimal_pools_ok.out");
        assert!(out.contains("suboptimal parallelization: some nodes have no k-points"));
        assert_eq!(classify(&out, "", code(0)), None);
    }

    #[test]
    fn pw_x_own_error_beats_the_launchers_kill_of_the_other_ranks() {
        let out = " %%%%%%%%%%%\n     Error in routine exx_div_check (1):\n     G_par is not a reciprocal lattice vector\n %%%%%%%%%%%\n";
        let c = classify(out, "srun: error: task 1: Killed", code(137)).unwrap();
        assert_eq!(c.failure, Failure::NonzeroExit);
        assert!(
            c.message.starts_with("Error in routine exx_div_check"),
            "{}",
            c.message
        );
    }

    #[test]
    fn crash_entries_read_like_error_blocks() {
        let e = crash_entry(&data("si_crash_only_read_wfc.crash")).unwrap();
        assert_eq!(
            e,
            "Error in routine read_wfc (2): cannot open restart file ./out/pwscf.save/wfc2 for reading (rank 1, from CRASH)"
        );
        assert_eq!(crash_entry(""), None);
    }

    #[test]
    fn other_errors_are_nonzero_exit_with_the_block() {
        let out = " %%%%%%%%%%%\n     Error in routine check_atoms (1):\n     atoms #   1 and #   2 overlap!\n %%%%%%%%%%%\n";
        let c = classify(out, "", code(1)).unwrap();
        assert_eq!(c.failure, Failure::NonzeroExit);
        assert!(c.message.contains("check_atoms"), "{}", c.message);
        let c = classify(
            &data("fe_buffered_abort_truncated.out"),
            &data("mpi_abort.err"),
            code(45),
        )
        .unwrap();
        assert_eq!(c.failure, Failure::NonzeroExit);
    }
}
