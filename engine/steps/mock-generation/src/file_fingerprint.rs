//! A cheap identity of a file on disk, to tell "unchanged since it was validated" without
//! opening it again.

use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Size, modification time and (on Unix) inode of a file.
///
/// A published output keeps its fingerprint through the rename to its final name. If the
/// engine stores the fingerprint of each published output, a resume can compare it with
/// [`FileFingerprint::of`] and re-validate only files whose fingerprint changed (rewritten,
/// truncated, replaced), instead of opening 40,000 files. A change that keeps size, mtime and
/// inode (an in-place rewrite that restores the mtime) is not detected by the fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFingerprint {
    /// The file's length in bytes.
    pub size_bytes: u64,
    /// Modification time in nanoseconds since the Unix epoch (0 where unknown).
    pub modified_unix_ns: u128,
    /// The inode number (Unix); `None` elsewhere.
    pub inode: Option<u64>,
}

impl FileFingerprint {
    /// Reads the fingerprint of the file at `path` (following symlinks).
    /// Fails with the I/O error when the file cannot be `stat`ed (missing, no permission).
    pub fn of(path: &Path) -> io::Result<Self> {
        Ok(Self::from_metadata(&std::fs::metadata(path)?))
    }

    /// The fingerprint described by already-read metadata.
    pub fn from_metadata(metadata: &std::fs::Metadata) -> Self {
        let modified_unix_ns = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |elapsed| elapsed.as_nanos());
        FileFingerprint {
            size_bytes: metadata.len(),
            modified_unix_ns,
            inode: inode(metadata),
        }
    }

    /// Whether the file at `path` still has this fingerprint; `false` when it is gone or
    /// cannot be `stat`ed.
    pub fn still_matches(&self, path: &Path) -> bool {
        Self::of(path).is_ok_and(|now| now == *self)
    }
}

#[cfg(unix)]
fn inode(metadata: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(metadata.ino())
}

#[cfg(not(unix))]
fn inode(_metadata: &std::fs::Metadata) -> Option<u64> {
    None
}
