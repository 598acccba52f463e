//! Why an output file was refused: the error of [`crate::validate_output`].

use flow_dsl::error_class::ErrorClass;
use std::fmt;
use std::path::PathBuf;

/// An output file that does not meet its [`crate::ValidationSpec`].
///
/// Carries the file and every problem found (a file that cannot be opened has exactly one).
/// Displays as `invalid output FILE: PROBLEM; PROBLEM`. Its class is always
/// [`ErrorClass::InvalidOutput`], which the engine retries.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid output {}: {}", file.display(), ProblemList(problems))]
pub struct OutputInvalid {
    /// The file that was checked.
    pub file: PathBuf,
    /// What is wrong with it, in the order checked; never empty.
    pub problems: Vec<OutputProblem>,
}

impl OutputInvalid {
    /// The error class the engine records: always [`ErrorClass::InvalidOutput`].
    pub fn error_class(&self) -> ErrorClass {
        ErrorClass::InvalidOutput
    }
}

/// One thing wrong with an output file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OutputProblem {
    /// Nothing exists at the path.
    #[error("the file does not exist")]
    MissingFile,
    /// The path is a directory or another non-regular file.
    #[error("it is not a regular file (found a {found})")]
    NotARegularFile { found: String },
    /// The file has zero bytes.
    #[error("the file is empty (0 bytes)")]
    EmptyFile,
    /// No HDF5 signature at any offset where HDF5 puts one.
    #[error("not an HDF5 file (no HDF5 signature in its {size_bytes} bytes)")]
    NotHdf5 { size_bytes: u64 },
    /// HDF5 reports that the file is shorter than its own metadata says.
    #[error("the file is truncated ({size_bytes} bytes on disk; HDF5: {detail})")]
    Truncated { size_bytes: u64, detail: String },
    /// The file has an HDF5 signature but the library cannot open it.
    #[error("HDF5 cannot open the file ({size_bytes} bytes): {detail}")]
    Unopenable { size_bytes: u64, detail: String },
    /// The operating system refused to read the file (permissions, I/O error).
    #[error("cannot read the file: {detail}")]
    Unreadable { detail: String },
    /// A required dataset does not exist.
    #[error("dataset `{path}` is missing")]
    MissingDataset { path: String },
    /// A required group does not exist.
    #[error("group `{path}` is missing")]
    MissingGroup { path: String },
    /// A required path exists but is the wrong kind of object.
    #[error("`{path}` is a {found}, expected a {expected}")]
    WrongObjectKind {
        path: String,
        expected: String,
        found: String,
    },
    /// A required dataset has no elements (a zero-length dimension).
    #[error("dataset `{path}` is empty (shape {shape:?})")]
    EmptyDataset { path: String, shape: Vec<u64> },
    /// A required dataset has a null dataspace: no elements at all.
    #[error("dataset `{path}` is empty (null dataspace)")]
    NullDataset { path: String },
    /// A required dataset has a shape but no storage: it was created and never written
    /// (typical of a writer killed between creating and filling it).
    #[error("dataset `{path}` (shape {shape:?}) was never written (no storage allocated)")]
    UnwrittenDataset { path: String, shape: Vec<u64> },
    /// A required dataset has fewer rows (first dimension) than `min_rows`.
    #[error("dataset `{path}` has {rows} rows, fewer than min_rows {min_rows}")]
    TooFewRows {
        path: String,
        rows: u64,
        min_rows: u64,
    },
    /// `min_rows` is set but a required dataset is a scalar (it has no rows).
    #[error("dataset `{path}` is a scalar, it has no rows (min_rows {min_rows})")]
    ScalarDataset { path: String, min_rows: u64 },
    /// An expected attribute does not exist on its object.
    #[error("attribute `{name}` is missing on `{object}`")]
    MissingAttribute { object: String, name: String },
    /// An expected attribute's object does not exist.
    #[error("attribute `{name}` cannot be checked: object `{object}` is missing")]
    MissingAttributeOwner { object: String, name: String },
    /// An expected attribute has another value.
    #[error("attribute `{name}` on `{object}` is {found}, expected {expected}")]
    AttributeMismatch {
        object: String,
        name: String,
        expected: String,
        found: String,
    },
    /// An `attributes:` key that names no attribute.
    #[error("{0}")]
    BadAttributeKey(String),
    /// An object or attribute exists but HDF5 cannot read it (dangling link, corrupt header).
    #[error("cannot read `{path}`: {detail}")]
    ObjectUnreadable { path: String, detail: String },
}

struct ProblemList<'a>(&'a [OutputProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_the_file_and_every_problem() {
        let error = OutputInvalid {
            file: PathBuf::from("catalogs/r0001/mock_z1.000.hdf5"),
            problems: vec![
                OutputProblem::MissingDataset {
                    path: "galaxies/mass".into(),
                },
                OutputProblem::TooFewRows {
                    path: "galaxies/pos".into(),
                    rows: 0,
                    min_rows: 1,
                },
            ],
        };
        assert_eq!(
            error.to_string(),
            "invalid output catalogs/r0001/mock_z1.000.hdf5: dataset `galaxies/mass` is missing; \
             dataset `galaxies/pos` has 0 rows, fewer than min_rows 1"
        );
        assert_eq!(error.error_class(), ErrorClass::InvalidOutput);
    }
}
