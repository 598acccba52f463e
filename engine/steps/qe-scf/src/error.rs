//! The step's error type: everything that stops a structure before or around pw.x (not the
//! pw.x failures themselves, which are [`crate::failure::Failure`]s handled by the policy).

use std::path::PathBuf;

/// A qe-scf error that is not a pw.x attempt failure.
#[derive(Debug, thiserror::Error)]
pub enum QeError {
    /// Invalid settings.
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    /// A structure file that cannot be read.
    #[error(transparent)]
    Structure(#[from] crate::structure::StructureError),
    /// Pseudopotentials that cannot be chosen.
    #[error(transparent)]
    Pseudo(#[from] crate::pseudo::PseudoError),
    /// A recovery policy that cannot be used.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// A parameter that cannot be written.
    #[error(transparent)]
    Param(#[from] crate::params::ParamError),
    /// No cutoff from the step or the family.
    #[error("no ecutwfc: pseudopotential family `{family}` suggests none for {elements}; set `ecutwfc` in the step")]
    NoCutoff {
        /// The family.
        family: String,
        /// The elements.
        elements: String,
    },
    /// A structure glob that is malformed.
    #[error("structures: bad pattern `{pattern}`: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// `flow plan --structure NAME` names no structure of the step.
    #[error("no structure named `{name}`; the step has {count}: {some}")]
    UnknownStructure {
        /// What was asked for.
        name: String,
        /// How many structures the step has.
        count: usize,
        /// The first few names.
        some: String,
    },
    /// The patterns match no file.
    #[error("structures: no file matches {patterns}")]
    NoStructures {
        /// The patterns, joined.
        patterns: String,
    },
    /// A file-system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What flow was doing.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl QeError {
    /// An I/O error with its action and path.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> QeError {
        let path = path.into();
        move |source| QeError::Io {
            action,
            path,
            source,
        }
    }
}
