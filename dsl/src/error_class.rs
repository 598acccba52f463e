//! The one vocabulary of failure that every executor and every step maps onto.
//!
//! Executors (local, Slurm, Kubernetes) and typed steps (qe-scf, mock-generation, ...) each
//! see failures in their own terms: an exit status, a Slurm end state, a pw.x message. They
//! translate them into an [`ErrorClass`] so that the retry policy, `flow status` and the
//! state database speak one language. The string forms (`nonzero-exit`, `out-of-memory`, ...)
//! are stable: they are stored in SQLite and printed in JSON output.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why a task attempt did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// The command exited with a non-zero status.
    NonzeroExit,
    /// The command was killed by a signal it did not expect (not a timeout, not OOM).
    Signal,
    /// flow's per-task `timeout` expired and flow killed the process group.
    Timeout,
    /// The scheduler's wall-clock limit ended the job (Slurm TIMEOUT, QE max CPU time).
    Walltime,
    /// The kernel or the scheduler killed the task for using too much memory.
    OutOfMemory,
    /// The node running the task failed (Slurm NODE_FAIL/BOOT_FAIL, a lost pod's node).
    NodeFailure,
    /// The scheduler took the resources back (Slurm PREEMPTED, pod disruption).
    Preempted,
    /// A user or flow cancelled the task.
    Cancelled,
    /// The command succeeded but its declared output is missing or fails validation.
    InvalidOutput,
    /// A result came back but is physically implausible (huge forces, NaN).
    Unphysical,
    /// An SCF calculation stopped without reaching self-consistency.
    ScfNotConverged,
    /// Diagonalisation or Cholesky factorisation failed inside the electronic solver.
    Diagonalization,
    /// The scheduler refused the submission (bad partition, QOS limits, ...).
    SubmitRejected,
    /// The command could not be started at all (missing program, bad working directory).
    LaunchFailed,
    /// A program ended without its completion marker or with output flow cannot read.
    IncompleteOutput,
}

impl ErrorClass {
    /// Every class, in a stable order (for documentation and exhaustive tests).
    pub const ALL: [ErrorClass; 15] = [
        ErrorClass::NonzeroExit,
        ErrorClass::Signal,
        ErrorClass::Timeout,
        ErrorClass::Walltime,
        ErrorClass::OutOfMemory,
        ErrorClass::NodeFailure,
        ErrorClass::Preempted,
        ErrorClass::Cancelled,
        ErrorClass::InvalidOutput,
        ErrorClass::Unphysical,
        ErrorClass::ScfNotConverged,
        ErrorClass::Diagonalization,
        ErrorClass::SubmitRejected,
        ErrorClass::LaunchFailed,
        ErrorClass::IncompleteOutput,
    ];

    /// The stable kebab-case name stored in the state database and printed to users.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::NonzeroExit => "nonzero-exit",
            ErrorClass::Signal => "signal",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Walltime => "walltime",
            ErrorClass::OutOfMemory => "out-of-memory",
            ErrorClass::NodeFailure => "node-failure",
            ErrorClass::Preempted => "preempted",
            ErrorClass::Cancelled => "cancelled",
            ErrorClass::InvalidOutput => "invalid-output",
            ErrorClass::Unphysical => "unphysical",
            ErrorClass::ScfNotConverged => "scf-not-converged",
            ErrorClass::Diagonalization => "diagonalization",
            ErrorClass::SubmitRejected => "submit-rejected",
            ErrorClass::LaunchFailed => "launch-failed",
            ErrorClass::IncompleteOutput => "incomplete-output",
        }
    }

    /// Whether the engine retries this class by default (within `max_retries`).
    /// Cancellation, rejected submissions and programs that cannot start are not retried:
    /// running them again would fail the same way.
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            ErrorClass::Cancelled | ErrorClass::SubmitRejected | ErrorClass::LaunchFailed
        )
    }

    /// Infrastructure failures that are not the task's fault: retried without counting
    /// against `max_retries` (up to a separate cap).
    pub fn is_infrastructure(self) -> bool {
        matches!(self, ErrorClass::NodeFailure | ErrorClass::Preempted)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorClass::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown error class `{s}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for class in ErrorClass::ALL {
            assert_eq!(class.as_str().parse::<ErrorClass>().unwrap(), class);
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
        }
        assert!("oom".parse::<ErrorClass>().is_err());
    }

    #[test]
    fn infrastructure_failures_are_retryable() {
        for class in ErrorClass::ALL {
            if class.is_infrastructure() {
                assert!(class.is_retryable(), "{class}");
            }
        }
        assert!(!ErrorClass::Cancelled.is_retryable());
    }
}
