//! Classifies a finished pw.x attempt from its stdout, stderr and exit status.
//!
//! The table below was built from real pw.x 6.7 output (recorded in `tests/data/qe/`).
//! Order matters: a non-converged SCF exits 2 but still prints `JOB DONE.`, so the patterns
//! are consulted before the completion marker and the exit status.

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
    /// The evidence: the matching line or pw.x's error block.
    pub message: String,
}

/// The pattern table: (failure, regex). Consulted in order on stdout then stderr.
pub const PATTERNS: &[(Failure, &str)] = &[
    (
        Failure::OutOfMemory,
        r"(?i)out of memory|oom-kill|oom_kill|cannot allocate memory|memory allocation failed|error allocating|std::bad_alloc",
    ),
    (Failure::Walltime, r"Maximum CPU time exceeded"),
    (
        Failure::Diagonalization,
        r"(?i)problems computing cholesky|S matrix not positive definite|error in diagonalization|Error in routine [crp]diaghg|Error in routine cdiagh|dsygvd failed|zhegvd failed|too many bands are not converged",
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

/// Classifies an attempt. `None` means the process reports success: exit 0 (or no code),
/// no failure pattern, and `JOB DONE.` printed. Result checks (parsing, sanitation, band
/// occupation) come after this and may still fail the attempt.
pub fn classify(stdout: &str, stderr: &str, exit: ExitInfo) -> Option<Classified> {
    if exit.timed_out {
        return Some(Classified {
            failure: Failure::Timeout,
            message: "killed by flow's timeout".into(),
        });
    }
    for (failure, re) in compiled() {
        for text in [stdout, stderr] {
            if let Some(m) = re.find(text) {
                let message = error_block(stdout).unwrap_or_else(|| line_of(text, m.start()));
                return Some(Classified {
                    failure: *failure,
                    message,
                });
            }
        }
    }
    if let Some(sig) = exit.signal {
        let failure = if sig == libc::SIGKILL {
            Failure::OutOfMemory
        } else {
            Failure::Signal
        };
        let note = if sig == libc::SIGKILL {
            " (SIGKILL not sent by flow: the kernel's or scheduler's OOM killer)"
        } else {
            ""
        };
        return Some(Classified {
            failure,
            message: format!("killed by signal {sig}{note}"),
        });
    }
    match exit.code {
        // 128+9 and 128+11 as reported by launchers (mpirun, srun) and shells.
        Some(137) => {
            return Some(Classified {
                failure: Failure::OutOfMemory,
                message: "exit status 137 (SIGKILL: OOM killer)".into(),
            })
        }
        Some(c) if c > 128 && c < 160 => {
            return Some(Classified {
                failure: Failure::Signal,
                message: format!("exit status {c} (signal {})", c - 128),
            })
        }
        Some(c) if c != 0 => {
            let detail =
                error_block(stdout).unwrap_or_else(|| last_line(stderr).unwrap_or_default());
            return Some(Classified {
                failure: Failure::NonzeroExit,
                message: format!("exit status {c}: {detail}")
                    .trim_end_matches(": ")
                    .to_string(),
            });
        }
        _ => {}
    }
    if !stdout.contains(JOB_DONE) {
        return Some(Classified {
            failure: Failure::IncompleteOutput,
            message: format!("pw.x output has no `{JOB_DONE}`"),
        });
    }
    None
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
    fn missing_job_done_is_incomplete() {
        let c = classify(&data("fe_buffered_abort_truncated.out"), "", code(0)).unwrap();
        assert_eq!(c.failure, Failure::IncompleteOutput);
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
