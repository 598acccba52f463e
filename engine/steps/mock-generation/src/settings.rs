//! The kind-specific fields of a `mock-generation` step.

use crate::validation_spec::ValidationSpec;
use serde::Deserialize;

/// The `mock-generation` fields beyond the common step fields (`array`, `command`,
/// `output`, ... belong to the campaign schema), as in
/// `schemas/steps/mock-generation.schema.json`.
///
/// Deserialized from the whole step object: unknown fields (the common ones) are ignored.
/// Without `validate:`, outputs are still required to exist and open as HDF5.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Settings {
    /// What each output must contain before its task counts as done.
    #[serde(default)]
    pub validate: ValidationSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_validate_and_ignore_common_fields() {
        let step = serde_json::json!({
            "kind": "mock-generation",
            "needs": ["sanity"],
            "array": {"realization": {"range": [0, 2000]}, "redshift": [1.1, 1.0]},
            "command": "python generate_single_mock.py --out {{output}}",
            "output": "catalogs/r{{pad realization 4}}/mock_z{{fixed redshift 3}}.hdf5",
            "validate": {"datasets": ["galaxies/pos", "galaxies/mass"], "min_rows": 1}
        });
        let settings: Settings = serde_json::from_value(step).unwrap();
        assert_eq!(
            settings.validate.datasets,
            ["galaxies/pos", "galaxies/mass"]
        );
        assert_eq!(settings.validate.min_rows, Some(1));
    }

    #[test]
    fn validate_is_optional() {
        let settings: Settings =
            serde_json::from_value(serde_json::json!({"kind": "mock-generation"})).unwrap();
        assert_eq!(settings, Settings::default());
    }
}
