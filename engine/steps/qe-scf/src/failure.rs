//! What went wrong in one pw.x attempt, in this step's terms, and its shared
//! [`ErrorClass`].

use flow_dsl::error_class::ErrorClass;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A failed pw.x attempt, as recovery handlers match it. Finer than [`ErrorClass`] only
/// where the policy needs it (`highest-band-occupied`); the names are otherwise those of
/// the shared classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// "convergence NOT achieved" (pw.x still prints JOB DONE.).
    ScfNotConverged,
    /// Cholesky / S matrix / diagonalisation errors.
    Diagonalization,
    /// "Maximum CPU time exceeded": pw.x stopped cleanly at `max_seconds`.
    Walltime,
    /// Memory exhausted (allocation failure, OOM killer).
    OutOfMemory,
    /// flow's timeout killed the attempt.
    Timeout,
    /// No "JOB DONE." or unreadable results.
    IncompleteOutput,
    /// Any other non-zero exit.
    NonzeroExit,
    /// Killed by a signal flow did not send (segfault, ...).
    Signal,
    /// Results came back but are not physical (huge or NaN forces/energy).
    Unphysical,
    /// Under smearing, the highest band is occupied: more bands are needed.
    HighestBandOccupied,
    /// pw.x (or the launcher) could not be started.
    LaunchFailed,
    /// The k-point parallelisation does not fit: more pools than ranks ("invalid number of
    /// pools") or, before QE 6.6, more pools than k-points ("some nodes have no k-points").
    Parallelization,
    /// A symmetry check failed ("not orthogonal operation", "symmetry operation is not
    /// satisfied").
    Symmetry,
    /// "charge is wrong": the integrated charge is not the electron count (fixed
    /// occupations on a metal, too few bands).
    ChargeWrong,
    /// The charge-density mixing broke down (Broyden "factorization"/"DSYTRI").
    Mixing,
    /// Killed (time limit, SIGTERM) after pw.x began writing its save: the save may be half
    /// written and must not be restarted from.
    WalltimeDuringWrite,
    /// Stopped before `JOB DONE.` with no error message (exit 0 or not, empty output, a
    /// node or launcher that died, SIGTERM).
    Interrupted,
    /// The output describes another structure than the one sent (atom count, species
    /// order, cell): a stale output, a wrong working directory, a reused scratch.
    StructureMismatch,
}

impl Failure {
    /// Every failure kind, in a stable order.
    pub const ALL: [Failure; 18] = [
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

    /// The stable kebab-case name used in policies, JSON and the state database.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::ScfNotConverged => "scf-not-converged",
            Failure::Diagonalization => "diagonalization",
            Failure::Walltime => "walltime",
            Failure::OutOfMemory => "out-of-memory",
            Failure::Timeout => "timeout",
            Failure::IncompleteOutput => "incomplete-output",
            Failure::NonzeroExit => "nonzero-exit",
            Failure::Signal => "signal",
            Failure::Unphysical => "unphysical",
            Failure::HighestBandOccupied => "highest-band-occupied",
            Failure::LaunchFailed => "launch-failed",
            Failure::Parallelization => "parallelization",
            Failure::Symmetry => "symmetry",
            Failure::ChargeWrong => "charge-wrong",
            Failure::Mixing => "mixing",
            Failure::WalltimeDuringWrite => "walltime-during-write",
            Failure::Interrupted => "interrupted",
            Failure::StructureMismatch => "structure-mismatch",
        }
    }

    /// The shared error class stored by the engine (the step's finer classes map onto the
    /// nearest shared one: `parallelization` → `nonzero-exit`, `walltime-during-write` →
    /// `walltime`, `interrupted` → `incomplete-output`, ...).
    pub fn error_class(self) -> ErrorClass {
        match self {
            Failure::ScfNotConverged => ErrorClass::ScfNotConverged,
            Failure::Diagonalization => ErrorClass::Diagonalization,
            Failure::Walltime => ErrorClass::Walltime,
            Failure::OutOfMemory => ErrorClass::OutOfMemory,
            Failure::Timeout => ErrorClass::Timeout,
            Failure::IncompleteOutput => ErrorClass::IncompleteOutput,
            Failure::NonzeroExit => ErrorClass::NonzeroExit,
            Failure::Signal => ErrorClass::Signal,
            Failure::Unphysical => ErrorClass::Unphysical,
            Failure::HighestBandOccupied => ErrorClass::InvalidOutput,
            Failure::LaunchFailed => ErrorClass::LaunchFailed,
            Failure::Parallelization | Failure::Symmetry => ErrorClass::NonzeroExit,
            Failure::ChargeWrong | Failure::Mixing => ErrorClass::ScfNotConverged,
            Failure::WalltimeDuringWrite => ErrorClass::Walltime,
            Failure::Interrupted => ErrorClass::IncompleteOutput,
            Failure::StructureMismatch => ErrorClass::InvalidOutput,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Failure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Failure::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Failure::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown failure `{s}` (known: {})", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_error_classes() {
        for f in Failure::ALL {
            assert_eq!(f.as_str().parse::<Failure>().unwrap(), f);
            assert_eq!(serde_json::to_string(&f).unwrap(), format!("\"{f}\""));
            let finer = [
                Failure::HighestBandOccupied,
                Failure::Parallelization,
                Failure::Symmetry,
                Failure::ChargeWrong,
                Failure::Mixing,
                Failure::WalltimeDuringWrite,
                Failure::Interrupted,
                Failure::StructureMismatch,
            ];
            if !finer.contains(&f) {
                assert_eq!(f.error_class().as_str(), f.as_str());
            }
        }
        assert!("cholesky".parse::<Failure>().is_err());
    }
}
