//! The one error type of a `flow` command. Commands return it; `main.rs` renders it, once,
//! on stderr, and exits with its code: 1 when the campaign or input is wrong or the work
//! could not be done, 2 for a usage error found after parsing.

use std::fmt;

/// Why a command could not do its work.
#[derive(Debug)]
pub enum FlowError {
    /// Located diagnostics of a campaign or machine file (file:line:col, field, help).
    Diagnostics(flow_dsl::diagnostic::Diagnostics),
    /// Anything else, with its context: rendered `error: ...`.
    Failed(anyhow::Error),
    /// A usage error the argument parser cannot see (exit 2).
    Usage(String),
}

/// What a command that did its work exits with: 0, or 1 when the work it ran failed (a
/// task failed, a check said no): the command itself reported how.
pub type CommandResult = Result<i32, FlowError>;

impl FlowError {
    /// A failure with this message.
    pub fn msg(message: impl fmt::Display) -> FlowError {
        FlowError::Failed(anyhow::anyhow!("{message}"))
    }

    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            FlowError::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowError::Diagnostics(d) => write!(f, "{d}"),
            FlowError::Failed(e) => write!(f, "error: {e:#}"),
            FlowError::Usage(m) => write!(f, "error: {m}"),
        }
    }
}

impl std::error::Error for FlowError {}

impl From<flow_dsl::diagnostic::Diagnostics> for FlowError {
    fn from(d: flow_dsl::diagnostic::Diagnostics) -> FlowError {
        FlowError::Diagnostics(d)
    }
}

impl From<anyhow::Error> for FlowError {
    fn from(e: anyhow::Error) -> FlowError {
        FlowError::Failed(e)
    }
}

impl From<crate::state::StateError> for FlowError {
    fn from(e: crate::state::StateError) -> FlowError {
        FlowError::Failed(e.into())
    }
}

impl From<flow_executors::ExecutorError> for FlowError {
    fn from(e: flow_executors::ExecutorError) -> FlowError {
        FlowError::Failed(e.into())
    }
}

impl From<String> for FlowError {
    fn from(message: String) -> FlowError {
        FlowError::msg(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_render_with_their_exit_codes() {
        let e = FlowError::msg("no step `x`");
        assert_eq!(
            (e.to_string(), e.exit_code()),
            ("error: no step `x`".into(), 1)
        );
        let e = FlowError::Usage("--format manifests needs -o DIR".into());
        assert_eq!(e.exit_code(), 2);
        let chained = anyhow::anyhow!("disk full").context("cannot write state.db");
        assert_eq!(
            FlowError::from(chained).to_string(),
            "error: cannot write state.db: disk full"
        );
    }
}
