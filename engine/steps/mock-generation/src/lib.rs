//! The `mock-generation` step of flow: HDF5 output validation and the publish protocol.
//!
//! A `mock-generation` step is an array of tasks, each writing one HDF5 catalog. This crate
//! decides whether such a catalog counts as done:
//!
//! - [`validate_output`] opens the file through the HDF5 library and checks it against the
//!   step's [`ValidationSpec`] (required groups and datasets, non-empty datasets, `min_rows`,
//!   expected attribute values). Failures are [`OutputInvalid`] values naming the file and
//!   every problem; their class is [`flow_dsl::error_class::ErrorClass::InvalidOutput`].
//! - [`temporary_output_path`] names where a task's command writes (what `{{output}}`
//!   resolves to for the command), and [`publish`] validates that file and renames it to the
//!   final name atomically, so a killed writer never leaves a file under the final name.
//! - [`is_published_and_valid`] and [`FileFingerprint`] serve resume checks.
//!
//! The step's kind-specific fields are [`Settings`]
//! (`schemas/steps/mock-generation.schema.json`).

pub mod attribute_value;
pub mod dataset_judgement;
pub mod file_fingerprint;
pub mod hdf5_error_printing;
mod hdf5_read_only_open;
pub mod hdf5_signature;
pub mod output_invalid;
pub mod output_publishing;
pub mod output_validation;
pub mod settings;
pub mod validation_report;
pub mod validation_spec;

pub use file_fingerprint::FileFingerprint;
pub use hdf5_error_printing::silence_hdf5_error_printing;
pub use output_invalid::{OutputInvalid, OutputProblem};
pub use output_publishing::{
    is_published_and_valid, publish, remove_leftover_temporaries, temporary_output_path,
    PublishError,
};
pub use output_validation::validate_output;
pub use settings::Settings;
pub use validation_report::{DatasetSummary, ValidationReport};
pub use validation_spec::{AttributeRef, ExpectedValue, ValidationSpec};
