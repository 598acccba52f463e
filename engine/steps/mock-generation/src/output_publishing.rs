//! The publish protocol: a task's command writes its output under a temporary name in the
//! output's own directory, flow validates it and renames it to the final name only then.
//!
//! A writer killed half-way (HDF5 pre-allocates datasets, so a half-written file can look
//! complete) therefore never leaves a file under the final name, and "a file exists under
//! the final name" keeps meaning "a validated output" across crashes and resumes.
//!
//! Temporary names are hidden (`.` prefix), carry the task id and attempt number (so two
//! attempts never write the same file) and keep the final extension (h5py and other tools
//! look at it): `catalogs/r0007/mock_z1.000.hdf5` for task `3fa2`, attempt 2, is written as
//! `catalogs/r0007/.mock_z1.000.flow-tmp.3fa2.2.hdf5`.

use crate::output_invalid::OutputInvalid;
use crate::output_validation::validate_output;
use crate::validation_report::ValidationReport;
use crate::validation_spec::ValidationSpec;
use flow_dsl::error_class::ErrorClass;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// The marker between the final name's stem and the task id in a temporary name.
const TEMPORARY_MARKER: &str = ".flow-tmp.";
/// Task ids are cut to this many characters in temporary names (file names stay short).
const MAX_TASK_ID_CHARS: usize = 64;

/// Where the command of attempt `attempt` of task `task_id` writes the output that will be
/// published as `final_path`: the same directory, a hidden name, the same extension.
///
/// Characters of `task_id` other than ASCII letters, digits, `-` and `_` become `_`, and it
/// is cut to 64 characters, so the name is always a plain file name. Deterministic: the same
/// arguments give the same path. (A `final_path` without a file name, such as `/`, gives a
/// name built from `output`; publishing onto it then fails at the rename.)
pub fn temporary_output_path(final_path: &Path, task_id: &str, attempt: u32) -> PathBuf {
    let (stem, extension) = stem_and_extension(final_path);
    let mut name = OsString::from(".");
    name.push(&stem);
    name.push(TEMPORARY_MARKER);
    name.push(sanitized_task_id(task_id));
    name.push(format!(".{attempt}"));
    if let Some(extension) = extension {
        name.push(".");
        name.push(extension);
    }
    final_path.with_file_name(name)
}

/// Why an output could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The temporary file failed validation; it is left in place, under its temporary name,
    /// for inspection, and nothing is written under the final name.
    #[error("{invalid} (not published as {})", final_path.display())]
    Invalid {
        /// The final name the output would have had.
        final_path: PathBuf,
        /// What is wrong with the temporary file.
        invalid: OutputInvalid,
    },
    /// The file was valid but could not be flushed or renamed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What flow was doing (`flush to disk`, `rename to its final name`).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

impl PublishError {
    /// The class the engine records: [`ErrorClass::InvalidOutput`] for both variants (an
    /// output that cannot be put in place is, for the task, an output that is not there).
    pub fn error_class(&self) -> ErrorClass {
        ErrorClass::InvalidOutput
    }
}

/// Validates `temporary` against `spec`, flushes it to disk and renames it to `final_path`
/// in one atomic step, replacing any file already there.
///
/// `temporary` must be in the same directory as `final_path` (use
/// [`temporary_output_path`]): the rename is atomic only within one file system, and this
/// function never copies. On success the report names `final_path`. On failure nothing
/// changes under `final_path`; an invalid temporary file is kept for inspection (remove it,
/// and earlier attempts' files, with [`remove_leftover_temporaries`] once the task is done).
///
/// Durability: the file's data is flushed (`fsync`) before the rename, so after a machine
/// crash a final name never points at unwritten data. The directory is not flushed: a
/// rename lost in a crash leaves the output unpublished, and the task simply runs again.
pub fn publish(
    temporary: &Path,
    final_path: &Path,
    spec: &ValidationSpec,
) -> Result<ValidationReport, PublishError> {
    let mut report = validate_output(temporary, spec).map_err(|invalid| PublishError::Invalid {
        final_path: final_path.to_path_buf(),
        invalid,
    })?;
    let io_error = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| PublishError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::File::open(temporary)
        .and_then(|file| file.sync_all())
        .map_err(io_error("flush to disk", temporary))?;
    std::fs::rename(temporary, final_path)
        .map_err(io_error("rename to its final name", temporary))?;
    report.file = final_path.to_path_buf();
    Ok(report)
}

/// Whether `final_path` holds a published output that (still) meets `spec`: the resume
/// check. Opens the file; to skip unchanged files cheaply, compare the stored
/// [`crate::FileFingerprint`] first and call this only when it differs.
pub fn is_published_and_valid(final_path: &Path, spec: &ValidationSpec) -> bool {
    validate_output(final_path, spec).is_ok()
}

/// Removes every temporary file of task `task_id` for `final_path` (any attempt), and
/// returns the paths removed. Call it once the task is done (published, or given up), so
/// that invalid attempts kept for inspection do not pile up. Files of other tasks and other
/// outputs are never touched. Fails on the first directory or removal error other than
/// "already gone".
pub fn remove_leftover_temporaries(final_path: &Path, task_id: &str) -> io::Result<Vec<PathBuf>> {
    let directory = match final_path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if temporary_attempt(final_path, task_id, name).is_none() {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed.push(entry.path()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    removed.sort();
    Ok(removed)
}

/// The attempt number if `candidate` (a file name) is a temporary name of task `task_id`
/// for `final_path`, as made by [`temporary_output_path`].
pub fn temporary_attempt(final_path: &Path, task_id: &str, candidate: &str) -> Option<u32> {
    let (stem, extension) = stem_and_extension(final_path);
    let prefix = format!(
        ".{}{TEMPORARY_MARKER}{}.",
        stem.to_str()?,
        sanitized_task_id(task_id)
    );
    let rest = candidate.strip_prefix(&prefix)?;
    let attempt = match extension {
        Some(extension) => rest.strip_suffix(&format!(".{}", extension.to_str()?))?,
        None => rest,
    };
    if attempt.is_empty() || !attempt.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    attempt.parse().ok()
}

fn stem_and_extension(final_path: &Path) -> (OsString, Option<OsString>) {
    let stem = final_path
        .file_stem()
        .map_or_else(|| OsString::from("output"), OsString::from);
    (stem, final_path.extension().map(OsString::from))
}

fn sanitized_task_id(task_id: &str) -> String {
    let cleaned: String = task_id
        .chars()
        .take(MAX_TASK_ID_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "task".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_hidden_siblings_with_the_same_extension() {
        let final_path = Path::new("/c/v1.0_run/catalogs/r0007/mock_z1.000.hdf5");
        let temporary = temporary_output_path(final_path, "3fa2c9", 2);
        assert_eq!(
            temporary,
            Path::new("/c/v1.0_run/catalogs/r0007/.mock_z1.000.flow-tmp.3fa2c9.2.hdf5")
        );
        assert_eq!(temporary.parent(), final_path.parent());
        assert_eq!(temporary.extension(), final_path.extension());
        assert_eq!(
            temporary_output_path(Path::new("out.h5"), "t", 0),
            Path::new(".out.flow-tmp.t.0.h5")
        );
        assert_eq!(
            temporary_output_path(Path::new("dir/README"), "t", 1),
            Path::new("dir/.README.flow-tmp.t.1")
        );
    }

    #[test]
    fn attempts_and_tasks_get_distinct_names() {
        let final_path = Path::new("mock.hdf5");
        let names = [
            temporary_output_path(final_path, "a", 1),
            temporary_output_path(final_path, "a", 2),
            temporary_output_path(final_path, "b", 1),
        ];
        assert_ne!(names[0], names[1]);
        assert_ne!(names[0], names[2]);
    }

    #[test]
    fn task_ids_are_made_safe_for_file_names() {
        let temporary = temporary_output_path(Path::new("m.hdf5"), "../x y;rm -rf", 1);
        assert_eq!(temporary, Path::new(".m.flow-tmp.___x_y_rm_-rf.1.hdf5"));
        let long = "f".repeat(200);
        let name = temporary_output_path(Path::new("m.hdf5"), &long, 1);
        assert!(name.to_str().unwrap().len() < 100);
        assert_eq!(
            temporary_output_path(Path::new("m.hdf5"), "", 1),
            Path::new(".m.flow-tmp.task.1.hdf5")
        );
    }

    #[test]
    fn temporary_names_are_recognised_only_for_their_task_and_output() {
        let final_path = Path::new("catalogs/mock_z1.000.hdf5");
        let name = |task, attempt| {
            temporary_output_path(final_path, task, attempt)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            temporary_attempt(final_path, "abc", &name("abc", 3)),
            Some(3)
        );
        assert_eq!(temporary_attempt(final_path, "abc", &name("abcd", 3)), None);
        assert_eq!(
            temporary_attempt(final_path, "abc", "mock_z1.000.hdf5"),
            None
        );
        assert_eq!(
            temporary_attempt(final_path, "abc", ".mock_z1.000.flow-tmp.abc.x.hdf5"),
            None
        );
        assert_eq!(
            temporary_attempt(final_path, "abc", ".mock_z1.000.flow-tmp.abc.1.h5"),
            None
        );
        let other_output = Path::new("catalogs/mock_z1.100.hdf5");
        assert_eq!(
            temporary_attempt(other_output, "abc", &name("abc", 3)),
            None
        );
    }
}
