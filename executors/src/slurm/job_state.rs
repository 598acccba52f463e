//! Slurm job states and their meaning for flow: which are final, and which [`ErrorClass`]
//! each end state maps to.

use flow_dsl::error_class::ErrorClass;

/// A Slurm job (or array element) state, as squeue `%T`, scontrol `JobState=` and sacct
/// `State` print it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SlurmJobState {
    Pending,
    Running,
    Configuring,
    Completing,
    Suspended,
    /// Requeued, held, resizing, signaling, staging out, stopped: alive, not finished.
    OtherActive(String),
    Completed,
    Failed,
    Timeout,
    OutOfMemory,
    NodeFail,
    Preempted,
    Cancelled,
    BootFail,
    Deadline,
    Revoked,
    SpecialExit,
    /// A state this version of flow does not know; treated as still active.
    Unknown(String),
}

impl SlurmJobState {
    /// Parse a state word. Accepts sacct's `CANCELLED by 1234` and squeue's short codes
    /// (`PD`, `R`, `CG`, `CD`, `F`, `TO`, `OOM`, `NF`, `PR`, `CA`, `BF`, `DL`).
    pub fn parse(text: &str) -> SlurmJobState {
        let word = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+');
        match word {
            "PENDING" | "PD" => SlurmJobState::Pending,
            "RUNNING" | "R" => SlurmJobState::Running,
            "CONFIGURING" | "CF" => SlurmJobState::Configuring,
            "COMPLETING" | "CG" => SlurmJobState::Completing,
            "SUSPENDED" | "S" => SlurmJobState::Suspended,
            "COMPLETED" | "CD" => SlurmJobState::Completed,
            "FAILED" | "F" => SlurmJobState::Failed,
            "TIMEOUT" | "TO" => SlurmJobState::Timeout,
            "OUT_OF_MEMORY" | "OOM" => SlurmJobState::OutOfMemory,
            "NODE_FAIL" | "NF" => SlurmJobState::NodeFail,
            "PREEMPTED" | "PR" => SlurmJobState::Preempted,
            "CANCELLED" | "CA" => SlurmJobState::Cancelled,
            "BOOT_FAIL" | "BF" => SlurmJobState::BootFail,
            "DEADLINE" | "DL" => SlurmJobState::Deadline,
            "REVOKED" | "RV" => SlurmJobState::Revoked,
            "SPECIAL_EXIT" | "SE" => SlurmJobState::SpecialExit,
            "REQUEUED" | "RQ" | "REQUEUE_FED" | "RF" | "REQUEUE_HOLD" | "RH" | "RESIZING"
            | "RS" | "SIGNALING" | "SI" | "STAGE_OUT" | "SO" | "STOPPED" | "ST"
            | "RESV_DEL_HOLD" | "RD" => SlurmJobState::OtherActive(word.to_string()),
            other => SlurmJobState::Unknown(other.to_string()),
        }
    }

    /// Whether the job has ended for good (flow runs with `--no-requeue`, so a final state
    /// is final).
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            SlurmJobState::Pending
                | SlurmJobState::Running
                | SlurmJobState::Configuring
                | SlurmJobState::Completing
                | SlurmJobState::Suspended
                | SlurmJobState::OtherActive(_)
                | SlurmJobState::Unknown(_)
        )
    }

    /// Whether the job is (or was just) executing on a node.
    pub fn has_started(&self) -> bool {
        matches!(
            self,
            SlurmJobState::Running | SlurmJobState::Completing | SlurmJobState::Suspended
        ) || (self.is_final() && !matches!(self, SlurmJobState::Cancelled))
    }

    /// The state word as Slurm spells it.
    pub fn as_str(&self) -> &str {
        match self {
            SlurmJobState::Pending => "PENDING",
            SlurmJobState::Running => "RUNNING",
            SlurmJobState::Configuring => "CONFIGURING",
            SlurmJobState::Completing => "COMPLETING",
            SlurmJobState::Suspended => "SUSPENDED",
            SlurmJobState::OtherActive(s) | SlurmJobState::Unknown(s) => s,
            SlurmJobState::Completed => "COMPLETED",
            SlurmJobState::Failed => "FAILED",
            SlurmJobState::Timeout => "TIMEOUT",
            SlurmJobState::OutOfMemory => "OUT_OF_MEMORY",
            SlurmJobState::NodeFail => "NODE_FAIL",
            SlurmJobState::Preempted => "PREEMPTED",
            SlurmJobState::Cancelled => "CANCELLED",
            SlurmJobState::BootFail => "BOOT_FAIL",
            SlurmJobState::Deadline => "DEADLINE",
            SlurmJobState::Revoked => "REVOKED",
            SlurmJobState::SpecialExit => "SPECIAL_EXIT",
        }
    }
}

/// Slurm's `ExitCode=E:S` (exit status, then the signal that ended the job, 0 if none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlurmExitCode {
    pub exit: i32,
    pub signal: i32,
}

impl SlurmExitCode {
    /// Parse `E:S` or a bare `E`; `None` for anything else.
    pub fn parse(text: &str) -> Option<SlurmExitCode> {
        let text = text.trim();
        let (exit, signal) = text.split_once(':').unwrap_or((text, "0"));
        Some(SlurmExitCode {
            exit: exit.parse().ok()?,
            signal: signal.parse().ok()?,
        })
    }
}

/// The class of a finished job, from its end state and exit code; `None` means success.
///
/// COMPLETED → success; FAILED → `launch-failed` for exit 126/127 (the batch script could not
/// start flow), `signal` when a signal ended it, `nonzero-exit` otherwise; TIMEOUT →
/// `walltime`; OUT_OF_MEMORY → `out-of-memory`; NODE_FAIL and BOOT_FAIL → `node-failure`;
/// PREEMPTED → `preempted`; CANCELLED, DEADLINE (Slurm dropped the job because it could not
/// finish before its `--deadline`) and REVOKED → `cancelled`; SPECIAL_EXIT → `nonzero-exit`.
/// A state that is not final has no class yet: callers ask [`SlurmJobState::is_final`] first;
/// here it is reported as `incomplete-output` so that nothing is ever taken for success.
pub fn classify_end(state: &SlurmJobState, exit: SlurmExitCode) -> Option<ErrorClass> {
    match state {
        SlurmJobState::Completed if exit.exit == 0 && exit.signal == 0 => None,
        SlurmJobState::Completed => Some(ErrorClass::NonzeroExit),
        SlurmJobState::Failed => Some(match (exit.exit, exit.signal) {
            (126 | 127, _) => ErrorClass::LaunchFailed,
            (_, s) if s != 0 => ErrorClass::Signal,
            _ => ErrorClass::NonzeroExit,
        }),
        SlurmJobState::Timeout => Some(ErrorClass::Walltime),
        SlurmJobState::OutOfMemory => Some(ErrorClass::OutOfMemory),
        SlurmJobState::NodeFail | SlurmJobState::BootFail => Some(ErrorClass::NodeFailure),
        SlurmJobState::Preempted => Some(ErrorClass::Preempted),
        SlurmJobState::Cancelled | SlurmJobState::Deadline | SlurmJobState::Revoked => {
            Some(ErrorClass::Cancelled)
        }
        SlurmJobState::SpecialExit => Some(ErrorClass::NonzeroExit),
        SlurmJobState::Pending
        | SlurmJobState::Running
        | SlurmJobState::Configuring
        | SlurmJobState::Completing
        | SlurmJobState::Suspended
        | SlurmJobState::OtherActive(_)
        | SlurmJobState::Unknown(_) => Some(ErrorClass::IncompleteOutput),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(exit: i32, signal: i32) -> SlurmExitCode {
        SlurmExitCode { exit, signal }
    }

    #[test]
    fn every_end_state_has_a_class() {
        let cases = [
            ("COMPLETED", code(0, 0), None),
            ("FAILED", code(3, 0), Some(ErrorClass::NonzeroExit)),
            ("FAILED", code(127, 0), Some(ErrorClass::LaunchFailed)),
            ("FAILED", code(0, 9), Some(ErrorClass::Signal)),
            ("TIMEOUT", code(0, 0), Some(ErrorClass::Walltime)),
            ("OUT_OF_MEMORY", code(0, 125), Some(ErrorClass::OutOfMemory)),
            ("NODE_FAIL", code(0, 0), Some(ErrorClass::NodeFailure)),
            ("PREEMPTED", code(0, 0), Some(ErrorClass::Preempted)),
            ("CANCELLED by 0", code(0, 15), Some(ErrorClass::Cancelled)),
            ("BOOT_FAIL", code(0, 0), Some(ErrorClass::NodeFailure)),
            ("DEADLINE", code(0, 0), Some(ErrorClass::Cancelled)),
        ];
        for (text, exit, expected) in cases {
            let state = SlurmJobState::parse(text);
            assert!(state.is_final(), "{text}");
            assert_eq!(classify_end(&state, exit), expected, "{text}");
        }
    }

    #[test]
    fn active_states_are_not_final() {
        for text in [
            "PENDING",
            "RUNNING",
            "COMPLETING",
            "CONFIGURING",
            "REQUEUED",
            "R",
            "PD",
            "WEIRD",
        ] {
            assert!(!SlurmJobState::parse(text).is_final(), "{text}");
        }
    }

    #[test]
    fn exit_codes_parse() {
        assert_eq!(SlurmExitCode::parse("3:0"), Some(code(3, 0)));
        assert_eq!(SlurmExitCode::parse("0:15"), Some(code(0, 15)));
        assert_eq!(SlurmExitCode::parse("2"), Some(code(2, 0)));
        assert_eq!(SlurmExitCode::parse(""), None);
    }
}
