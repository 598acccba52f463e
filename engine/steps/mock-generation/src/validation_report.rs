//! What a successful validation saw: the result of [`crate::validate_output`].

use crate::file_fingerprint::FileFingerprint;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The facts about a valid output file, for the state database and `flow status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The file validated (after [`crate::publish`], its final name).
    pub file: PathBuf,
    /// Size, mtime and inode when it was validated; see [`FileFingerprint`].
    pub fingerprint: FileFingerprint,
    /// Each required dataset with its shape, in the spec's order.
    pub datasets: Vec<DatasetSummary>,
    /// The required groups, all present.
    pub groups: Vec<String>,
    /// The expected attributes, all present with their expected values (the spec's keys).
    pub attributes: Vec<String>,
}

/// A required dataset as found in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// The path as written in the spec.
    pub path: String,
    /// Its dimensions; the first is the row count.
    pub shape: Vec<u64>,
}

impl DatasetSummary {
    /// The first dimension (the row count); `None` for a scalar.
    pub fn rows(&self) -> Option<u64> {
        self.shape.first().copied()
    }
}
