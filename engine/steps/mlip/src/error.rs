//! The errors of build-env and md-benchmark, each mapped onto flow's shared
//! [`ErrorClass`] vocabulary so that retries and `flow status` treat them uniformly.

use flow_dsl::error_class::ErrorClass;
use std::path::PathBuf;

use crate::pep723::Pep723Error;
use crate::python_requirement::RequirementError;

/// Everything that can go wrong while reading an environment file, building an
/// environment or running an MD benchmark.
#[derive(Debug, thiserror::Error)]
pub enum MlipError {
    /// The environment file's PEP 723 block is malformed.
    #[error("{path}: {source}")]
    Pep723 {
        /// The environment file.
        path: PathBuf,
        /// What is wrong, with its line.
        source: Pep723Error,
    },
    /// `requires-python` gives no usable minimum Python version.
    #[error("{path}:{line}: {source}")]
    RequiresPython {
        /// The environment file.
        path: PathBuf,
        /// 1-based line of the `requires-python` key (the block's first line when absent).
        line: usize,
        /// What is wrong, quoting the specifier.
        source: RequirementError,
    },
    /// The environment file does not define `setup(model, device)`.
    #[error("{path}: the environment file defines no `def setup(model, device)` function")]
    MissingSetup {
        /// The environment file.
        path: PathBuf,
    },
    /// A model string names an environment the root does not have.
    #[error("model `{model}` names no known environment; available: {}", available_list(.available))]
    UnknownModel {
        /// The model string as written.
        model: String,
        /// The environment names that exist.
        available: Vec<String>,
    },
    /// A build-env step names an environment that is neither in the root, nor in the recipe
    /// library, nor a file.
    #[error("environment `{name}` not found (looked in {looked_in}); available: {}", available_list(.available))]
    UnknownEnvironment {
        /// The name as written.
        name: String,
        /// Where flow looked, for the message.
        looked_in: String,
        /// The names that exist.
        available: Vec<String>,
    },
    /// No complete build of an environment exists in the root (md-benchmark before build-env).
    #[error("environment `{name}` has no complete build under {envs_dir}; add a build-env step for it to `needs`, or run `flow env warm`")]
    NotBuilt {
        /// Environment name.
        name: String,
        /// `{root}/envs`.
        envs_dir: PathBuf,
    },
    /// `uv` is neither on PATH nor bootstrapped under `{root}/tools/`.
    #[error(
        "`uv` was not found on PATH nor in {tools}; install it with `python3 -m pip install uv` \
         (see https://docs.astral.sh/uv/) or let flow put it under the root with `flow env bootstrap`"
    )]
    UvMissing {
        /// The root's tools directory that was searched too.
        tools: PathBuf,
    },
    /// No Python interpreter satisfying the environment's minimum was found.
    #[error(
        "no Python {request} interpreter was found (uv searched without downloading: {detail}); \
         install one, or allow downloads for this environment"
    )]
    PythonNotFound {
        /// What was asked for (`3.10`, `>=3.10`).
        request: String,
        /// uv's own explanation, trimmed.
        detail: String,
    },
    /// A program flow runs could not be started.
    #[error("could not start `{program}`: {source}")]
    Launch {
        /// The program.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A program flow runs exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n{stderr_tail}")]
    CommandFailed {
        /// The command line, for the user to re-run.
        command: String,
        /// Exit status as text.
        status: String,
        /// The last lines of its standard error.
        stderr_tail: String,
    },
    /// Reading or writing a file or directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What flow was doing (`creating`, `reading`, ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another builder holds the environment's lock and did not finish in time.
    #[error(
        "timed out after {waited_s:.0} s waiting for the build lock {path} (held by {holder}); \
         if that build is dead, remove the file"
    )]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// The holder as recorded in the file.
        holder: String,
        /// Seconds waited.
        waited_s: f64,
    },
    /// The MD benchmark driver printed no result flow can read.
    #[error("the md-benchmark driver printed no readable result: {reason}\n{stderr_tail}")]
    BenchmarkOutput {
        /// Why the output is unusable.
        reason: String,
        /// The last lines of its standard error.
        stderr_tail: String,
    },
    /// The benchmark's figures are not usable (zero or negative timings, NaN).
    #[error("the md-benchmark result is implausible: {0}")]
    ImplausibleFigures(String),
}

fn available_list(available: &[String]) -> String {
    if available.is_empty() {
        "none (add files to {root}/environments/)".to_string()
    } else {
        available.join(", ")
    }
}

impl MlipError {
    /// The shared class of this failure, for the retry policy and the state database.
    pub fn class(&self) -> ErrorClass {
        match self {
            // A user's file or setting is wrong: running again fails the same way.
            MlipError::Pep723 { .. }
            | MlipError::RequiresPython { .. }
            | MlipError::MissingSetup { .. }
            | MlipError::UnknownModel { .. }
            | MlipError::UnknownEnvironment { .. }
            | MlipError::NotBuilt { .. }
            | MlipError::UvMissing { .. }
            | MlipError::PythonNotFound { .. }
            | MlipError::Launch { .. } => ErrorClass::LaunchFailed,
            MlipError::CommandFailed { .. } | MlipError::Io { .. } => ErrorClass::NonzeroExit,
            MlipError::LockTimeout { .. } => ErrorClass::Timeout,
            MlipError::BenchmarkOutput { .. } => ErrorClass::IncompleteOutput,
            MlipError::ImplausibleFigures(_) => ErrorClass::Unphysical,
        }
    }
}

/// Shorthand for I/O errors with the path and action attached.
pub(crate) fn io_error(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> MlipError {
    let path = path.into();
    move |source| MlipError::Io {
        action,
        path,
        source,
    }
}
