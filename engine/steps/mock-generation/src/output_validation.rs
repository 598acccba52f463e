//! Checking an output file against its [`ValidationSpec`] through the HDF5 library.
//!
//! The order of checks is the order of failure a user can act on: the file exists, is a
//! regular non-empty file, carries the HDF5 signature, opens in HDF5 (a truncated file fails
//! here), then every required group, dataset and attribute is checked and all problems are
//! reported together. HDF5's own error-stack printing is turned off for the calling thread
//! first ([`crate::hdf5_error_printing`]): errors reach the user only through
//! [`OutputInvalid`].

use crate::attribute_value::StoredAttributeValue;
use crate::dataset_judgement::{judge_dataset, DatasetFacts};
use crate::file_fingerprint::FileFingerprint;
use crate::hdf5_error_printing::silence_hdf5_error_printing;
use crate::hdf5_read_only_open::open_read_only;
use crate::hdf5_signature::has_hdf5_signature;
use crate::output_invalid::{OutputInvalid, OutputProblem};
use crate::validation_report::{DatasetSummary, ValidationReport};
use crate::validation_spec::{AttributeRef, ExpectedValue, ValidationSpec};
use hdf5::dataset::Layout;
use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::LocationType;
use std::io;
use std::path::Path;

/// The longest fixed-length string attribute compared (longer ones are reported as
/// unsupported rather than truncated).
const MAX_FIXED_STRING_BYTES: usize = 1024;

/// Validates the HDF5 file at `path` against `spec`.
///
/// Succeeds with what was found when the file opens in HDF5 and every required group,
/// dataset (non-empty, written, at least `min_rows` rows) and attribute (present, equal to
/// the expected value) is there. Fails with [`OutputInvalid`] naming the file and what is
/// wrong: missing file, not a regular file, empty file, not HDF5, truncated or otherwise
/// unopenable, or the list of every missing/empty/short dataset, missing group and missing
/// or different attribute. Never panics on file contents, and prints nothing.
pub fn validate_output(
    path: &Path,
    spec: &ValidationSpec,
) -> Result<ValidationReport, OutputInvalid> {
    let invalid = |problem: OutputProblem| OutputInvalid {
        file: path.to_path_buf(),
        problems: vec![problem],
    };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(invalid(OutputProblem::MissingFile))
        }
        Err(error) => {
            return Err(invalid(OutputProblem::Unreadable {
                detail: error.to_string(),
            }))
        }
    };
    if !metadata.is_file() {
        let found = if metadata.is_dir() {
            "directory"
        } else {
            "special file"
        };
        return Err(invalid(OutputProblem::NotARegularFile {
            found: found.to_string(),
        }));
    }
    let size_bytes = metadata.len();
    if size_bytes == 0 {
        return Err(invalid(OutputProblem::EmptyFile));
    }
    match has_hdf5_signature(path, size_bytes) {
        Ok(true) => {}
        Ok(false) => return Err(invalid(OutputProblem::NotHdf5 { size_bytes })),
        Err(error) => {
            return Err(invalid(OutputProblem::Unreadable {
                detail: error.to_string(),
            }))
        }
    }
    silence_hdf5_error_printing();
    let file = open_read_only(path).map_err(|error| invalid(open_failure(&error, size_bytes)))?;

    let mut problems = Vec::new();
    for group in &spec.groups {
        check_group(&file, group, &mut problems);
    }
    let mut datasets = Vec::with_capacity(spec.datasets.len());
    for dataset in &spec.datasets {
        if let Some(summary) = check_dataset(&file, dataset, spec.min_rows, &mut problems) {
            datasets.push(summary);
        }
    }
    for (key, expected) in &spec.attributes {
        check_attribute(&file, key, expected, &mut problems);
    }
    drop(file);

    if problems.is_empty() {
        Ok(ValidationReport {
            file: path.to_path_buf(),
            fingerprint: FileFingerprint::from_metadata(&metadata),
            datasets,
            groups: spec.groups.clone(),
            attributes: spec.attributes.keys().cloned().collect(),
        })
    } else {
        Err(OutputInvalid {
            file: path.to_path_buf(),
            problems,
        })
    }
}

/// Names the failure of `H5Fopen` on a file that has the HDF5 signature.
fn open_failure(error: &hdf5::Error, size_bytes: u64) -> OutputProblem {
    let detail = error.to_string();
    if detail.contains("truncated file") {
        OutputProblem::Truncated { size_bytes, detail }
    } else {
        OutputProblem::Unopenable { size_bytes, detail }
    }
}

/// What a path in the file refers to.
enum Lookup {
    Missing,
    Found(LocationType),
    Unreadable(String),
}

fn lookup(file: &hdf5::File, path: &str) -> Lookup {
    let relative = path.trim_matches('/');
    if relative.is_empty() {
        return Lookup::Found(LocationType::Group);
    }
    // H5Lexists is false (not an error) when an intermediate group is missing too.
    if !file.link_exists(relative) {
        return Lookup::Missing;
    }
    match file.loc_type_by_name(relative) {
        Ok(kind) => Lookup::Found(kind),
        // A link that exists but resolves to nothing: dangling soft or external link.
        Err(error) => Lookup::Unreadable(error.to_string()),
    }
}

fn kind_name(kind: LocationType) -> String {
    match kind {
        LocationType::Group => "group",
        LocationType::Dataset => "dataset",
        LocationType::NamedDatatype => "named datatype",
        #[allow(unreachable_patterns)]
        _ => "object of another kind",
    }
    .to_string()
}

fn check_group(file: &hdf5::File, path: &str, problems: &mut Vec<OutputProblem>) {
    match lookup(file, path) {
        Lookup::Found(LocationType::Group) => {}
        Lookup::Found(other) => problems.push(OutputProblem::WrongObjectKind {
            path: path.to_string(),
            expected: "group".to_string(),
            found: kind_name(other),
        }),
        Lookup::Missing => problems.push(OutputProblem::MissingGroup {
            path: path.to_string(),
        }),
        Lookup::Unreadable(detail) => problems.push(OutputProblem::ObjectUnreadable {
            path: path.to_string(),
            detail,
        }),
    }
}

fn check_dataset(
    file: &hdf5::File,
    path: &str,
    min_rows: Option<u64>,
    problems: &mut Vec<OutputProblem>,
) -> Option<DatasetSummary> {
    let unreadable = |detail: String| OutputProblem::ObjectUnreadable {
        path: path.to_string(),
        detail,
    };
    match lookup(file, path) {
        Lookup::Found(LocationType::Dataset) => {}
        Lookup::Found(other) => {
            problems.push(OutputProblem::WrongObjectKind {
                path: path.to_string(),
                expected: "dataset".to_string(),
                found: kind_name(other),
            });
            return None;
        }
        Lookup::Missing => {
            problems.push(OutputProblem::MissingDataset {
                path: path.to_string(),
            });
            return None;
        }
        Lookup::Unreadable(detail) => {
            problems.push(unreadable(detail));
            return None;
        }
    }
    let dataset = match file.dataset(path.trim_matches('/')) {
        Ok(dataset) => dataset,
        Err(error) => {
            problems.push(unreadable(error.to_string()));
            return None;
        }
    };
    let space = match dataset.space() {
        Ok(space) => space,
        Err(error) => {
            problems.push(unreadable(error.to_string()));
            return None;
        }
    };
    let shape: Option<Vec<u64>> =
        (!space.is_null()).then(|| space.shape().iter().map(|&extent| extent as u64).collect());
    // Storage is only worth asking about when there are elements to store.
    let has_elements = shape
        .as_ref()
        .is_some_and(|shape| !shape.is_empty() && !shape.contains(&0));
    let facts = DatasetFacts {
        never_written: has_elements && is_unwritten(&dataset),
        shape,
    };
    match judge_dataset(path, &facts, min_rows) {
        Ok(summary) => Some(summary),
        Err(problem) => {
            problems.push(problem);
            None
        }
    }
}

/// A contiguous or chunked dataset with elements but no storage in this file was created
/// and never written. (Compact data lives in the object header; virtual and external
/// datasets keep their data elsewhere: those are not judged.)
fn is_unwritten(dataset: &hdf5::Dataset) -> bool {
    let layout = dataset.layout();
    if !matches!(layout, Layout::Contiguous | Layout::Chunked) {
        return false;
    }
    let has_external_files = dataset
        .dcpl()
        .map_or(true, |dcpl| !dcpl.external().is_empty());
    !has_external_files && dataset.storage_size() == 0
}

fn check_attribute(
    file: &hdf5::File,
    key: &str,
    expected: &ExpectedValue,
    problems: &mut Vec<OutputProblem>,
) {
    let reference = match AttributeRef::parse(key) {
        Ok(reference) => reference,
        Err(message) => {
            problems.push(OutputProblem::BadAttributeKey(message));
            return;
        }
    };
    let object = reference.object_display().to_string();
    let name = reference.name.clone();
    let owner: hdf5::Location = match &reference.object {
        None => (***file).clone(),
        Some(path) => match lookup(file, path) {
            Lookup::Found(LocationType::Group) => match file.group(path) {
                Ok(group) => (*group).clone(),
                Err(error) => {
                    problems.push(OutputProblem::ObjectUnreadable {
                        path: path.clone(),
                        detail: error.to_string(),
                    });
                    return;
                }
            },
            Lookup::Found(LocationType::Dataset) => match file.dataset(path) {
                Ok(dataset) => (**dataset).clone(),
                Err(error) => {
                    problems.push(OutputProblem::ObjectUnreadable {
                        path: path.clone(),
                        detail: error.to_string(),
                    });
                    return;
                }
            },
            Lookup::Found(other) => {
                problems.push(OutputProblem::WrongObjectKind {
                    path: path.clone(),
                    expected: "group or dataset".to_string(),
                    found: kind_name(other),
                });
                return;
            }
            Lookup::Missing => {
                problems.push(OutputProblem::MissingAttributeOwner { object, name });
                return;
            }
            Lookup::Unreadable(detail) => {
                problems.push(OutputProblem::ObjectUnreadable {
                    path: path.clone(),
                    detail,
                });
                return;
            }
        },
    };
    let attribute = match owner.attr(&name) {
        Ok(attribute) => attribute,
        Err(error) => {
            let exists = owner.attr_names().is_ok_and(|names| names.contains(&name));
            problems.push(if exists {
                OutputProblem::ObjectUnreadable {
                    path: format!("{object}@{name}"),
                    detail: error.to_string(),
                }
            } else {
                OutputProblem::MissingAttribute { object, name }
            });
            return;
        }
    };
    match read_attribute_value(&attribute) {
        Ok(found) if found.matches(expected) => {}
        Ok(found) => problems.push(OutputProblem::AttributeMismatch {
            object,
            name,
            expected: expected.to_string(),
            found: found.to_string(),
        }),
        Err(error) => problems.push(OutputProblem::ObjectUnreadable {
            path: format!("{object}@{name}"),
            detail: error.to_string(),
        }),
    }
}

/// Reads a scalar or one-element attribute; other shapes and types come back as
/// [`StoredAttributeValue::Unsupported`] with a description.
fn read_attribute_value(attribute: &hdf5::Attribute) -> hdf5::Result<StoredAttributeValue> {
    let shape = attribute.shape();
    if attribute.size() != 1 {
        return Ok(StoredAttributeValue::Unsupported(format!(
            "an array of shape {shape:?}"
        )));
    }
    let descriptor = attribute.dtype()?.to_descriptor()?;
    let value = match descriptor {
        TypeDescriptor::Integer(_) => {
            StoredAttributeValue::Integer(single(attribute.read_raw::<i64>()?)?)
        }
        TypeDescriptor::Unsigned(_) => {
            StoredAttributeValue::Unsigned(single(attribute.read_raw::<u64>()?)?)
        }
        TypeDescriptor::Float(size) => StoredAttributeValue::Float {
            value: single(attribute.read_raw::<f64>()?)?,
            bits: (size as u8).saturating_mul(8),
        },
        TypeDescriptor::Boolean => {
            StoredAttributeValue::Bool(single(attribute.read_raw::<bool>()?)?)
        }
        TypeDescriptor::VarLenUnicode => StoredAttributeValue::Text(
            single(attribute.read_raw::<VarLenUnicode>()?)?
                .as_str()
                .to_string(),
        ),
        TypeDescriptor::VarLenAscii => StoredAttributeValue::Text(
            single(attribute.read_raw::<VarLenAscii>()?)?
                .as_str()
                .to_string(),
        ),
        TypeDescriptor::FixedAscii(length) if length <= MAX_FIXED_STRING_BYTES => {
            let text = single(attribute.read_raw::<FixedAscii<MAX_FIXED_STRING_BYTES>>()?)?;
            StoredAttributeValue::Text(text.as_str().to_string())
        }
        TypeDescriptor::FixedUnicode(length) if length <= MAX_FIXED_STRING_BYTES => {
            let text = single(attribute.read_raw::<FixedUnicode<MAX_FIXED_STRING_BYTES>>()?)?;
            StoredAttributeValue::Text(text.as_str().to_string())
        }
        other => StoredAttributeValue::Unsupported(format!("a value of type {other}")),
    };
    Ok(value)
}

fn single<T>(values: Vec<T>) -> hdf5::Result<T> {
    values
        .into_iter()
        .next()
        .ok_or_else(|| hdf5::Error::from("attribute holds no value"))
}
