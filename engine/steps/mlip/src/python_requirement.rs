//! The minimum Python `major.minor` an environment needs, derived from its `requires-python`
//! specifier with pep440_rs. Pure.
//!
//! Lower bounds (`>=`, `~=`, `==`, `==X.*`, `===`, `>`) each give a candidate `major.minor`;
//! the highest wins. `>X.Y` gives `X.Y` and is flagged as an approximation (strictly greater
//! than `X.Y` still admits `X.Y.1`). A specifier with no lower bound is an error: flow would
//! have to guess which interpreter to build against.

use pep440_rs::{Operator, VersionSpecifiers};
use std::fmt;
use std::str::FromStr;

/// A Python `major.minor` to build an environment against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PythonMinor {
    /// Major version (3).
    pub major: u64,
    /// Minor version (10 for 3.10).
    pub minor: u64,
}

impl fmt::Display for PythonMinor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The minimum derived from a specifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimumPython {
    /// The version to ask uv for.
    pub version: PythonMinor,
    /// True when the bound was exclusive (`>3.10`), so the figure is a close approximation.
    pub approximate: bool,
}

/// Why no minimum could be derived. Both variants quote the specifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequirementError {
    /// The text is not a PEP 440 version specifier.
    #[error("`requires-python = \"{specifier}\"` is not a valid version specifier: {message}")]
    Invalid {
        /// The specifier as written.
        specifier: String,
        /// pep440_rs's message.
        message: String,
    },
    /// The specifier has no lower bound (`<3.13`, `!=3.9`).
    #[error(
        "`requires-python = \"{specifier}\"` has no lower bound; write one such as `>=3.10` so flow knows which Python to build with"
    )]
    NoLowerBound {
        /// The specifier as written.
        specifier: String,
    },
}

/// Derives the minimum `major.minor` from a `requires-python` specifier.
///
/// Errors: [`RequirementError::Invalid`] for text pep440_rs rejects, and
/// [`RequirementError::NoLowerBound`] when no clause bounds the version from below.
pub fn minimum_python(specifier: &str) -> Result<MinimumPython, RequirementError> {
    let parsed = VersionSpecifiers::from_str(specifier).map_err(|e| RequirementError::Invalid {
        specifier: specifier.to_string(),
        message: e.to_string().lines().next().unwrap_or_default().to_string(),
    })?;
    let mut best: Option<MinimumPython> = None;
    for clause in parsed.iter() {
        let approximate = match clause.operator() {
            Operator::GreaterThan => true,
            Operator::GreaterThanEqual
            | Operator::TildeEqual
            | Operator::Equal
            | Operator::EqualStar
            | Operator::ExactEqual => false,
            Operator::LessThan
            | Operator::LessThanEqual
            | Operator::NotEqual
            | Operator::NotEqualStar => continue,
        };
        let release = clause.version().release();
        let version = PythonMinor {
            major: release.first().copied().unwrap_or(0),
            minor: release.get(1).copied().unwrap_or(0),
        };
        let candidate = MinimumPython {
            version,
            approximate,
        };
        best = match best {
            Some(current) if current.version >= candidate.version => Some(current),
            _ => Some(candidate),
        };
    }
    best.ok_or_else(|| RequirementError::NoLowerBound {
        specifier: specifier.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn min(spec: &str) -> (String, bool) {
        let m = minimum_python(spec).unwrap();
        (m.version.to_string(), m.approximate)
    }

    #[test]
    fn the_issue_table() {
        assert_eq!(min(">=3.10"), ("3.10".into(), false));
        assert_eq!(min(">=3.10,<3.13"), ("3.10".into(), false));
        assert_eq!(min("~=3.10"), ("3.10".into(), false));
        assert_eq!(min(">=3.10.0"), ("3.10".into(), false));
        assert_eq!(min("==3.11.*"), ("3.11".into(), false));
        assert_eq!(min(">3.10"), ("3.10".into(), true));
    }

    #[test]
    fn more_cases() {
        assert_eq!(min("<3.13, >=3.9"), ("3.9".into(), false));
        assert_eq!(min(">=3.9,>=3.11"), ("3.11".into(), false));
        assert_eq!(min("==3.12.1"), ("3.12".into(), false));
        assert_eq!(min(">=3"), ("3.0".into(), false));
    }

    #[test]
    fn no_lower_bound_quotes_the_specifier() {
        let err = minimum_python("<3.13").unwrap_err();
        assert_eq!(
            err,
            RequirementError::NoLowerBound {
                specifier: "<3.13".into()
            }
        );
        assert!(err.to_string().contains("\"<3.13\""), "{err}");
        assert!(matches!(
            minimum_python("!=3.9"),
            Err(RequirementError::NoLowerBound { .. })
        ));
    }

    #[test]
    fn garbage_quotes_the_specifier() {
        for bad in ["python 3", "latest", ">=three"] {
            let err = minimum_python(bad).unwrap_err();
            assert!(
                matches!(err, RequirementError::Invalid { .. }),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
