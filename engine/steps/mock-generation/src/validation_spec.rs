//! What a `mock-generation` step requires of each output file (its `validate:` field).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The requirements an HDF5 output must meet before its task counts as done.
///
/// Deserialized from the step's `validate:` object (`schemas/steps/mock-generation.schema.json`):
/// ```yaml
/// validate:
///   datasets: [galaxies/pos, galaxies/mass]
///   groups: [galaxies]
///   attributes: {realization: 7, redshift: 1.0, "galaxies/pos@units": Mpc/h}
///   min_rows: 1
/// ```
/// Every field is optional; the empty spec still requires that the file exists and opens
/// as HDF5. Object paths are relative to the file's root group (a leading `/` is allowed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ValidationSpec {
    /// Datasets that must exist and hold at least one element (and `min_rows` rows).
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Groups that must exist.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Attributes that must exist with the given value. The key is an attribute name on
    /// the root group (`realization`) or `OBJECT_PATH@NAME` for an attribute of a group or
    /// dataset (`galaxies/pos@units`); see [`AttributeRef::parse`].
    #[serde(default)]
    pub attributes: IndexMap<String, ExpectedValue>,
    /// The smallest acceptable first dimension of every dataset in `datasets`.
    #[serde(default)]
    pub min_rows: Option<u64>,
}

/// Where an expected attribute lives: on an object (root group when `object` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeRef {
    /// The group or dataset path, `None` for the root group.
    pub object: Option<String>,
    /// The attribute's name.
    pub name: String,
}

impl AttributeRef {
    /// Parses an `attributes:` key: `NAME` (root group) or `OBJECT_PATH@NAME`, split at the
    /// last `@`. An object path of `/` or empty means the root group.
    ///
    /// Fails (with a message fit for the user) when the attribute name is empty.
    pub fn parse(key: &str) -> Result<Self, String> {
        let (object, name) = match key.rsplit_once('@') {
            Some((object, name)) => {
                let object = object.trim_matches('/');
                ((!object.is_empty()).then(|| object.to_string()), name)
            }
            None => (None, key),
        };
        if name.is_empty() {
            return Err(format!(
                "attribute key `{key}` has no attribute name (expected NAME or OBJECT_PATH@NAME)"
            ));
        }
        Ok(AttributeRef {
            object,
            name: name.to_string(),
        })
    }

    /// The object path as shown to users: `/` for the root group.
    pub fn object_display(&self) -> &str {
        self.object.as_deref().unwrap_or("/")
    }
}

/// An expected attribute value as written in the campaign file.
///
/// Matching against the stored value is lenient about representation, strict about value:
/// see [`crate::attribute_value::StoredAttributeValue::matches`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExpectedValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer or a float (`7`, `1.0`).
    Number(serde_json::Number),
    /// A string (`Mpc/h`, or a number rendered by a template such as `"1.000"`).
    Text(String),
}

impl fmt::Display for ExpectedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedValue::Bool(value) => write!(f, "{value}"),
            ExpectedValue::Number(value) => write!(f, "{value}"),
            ExpectedValue::Text(value) => write!(f, "{value:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_keys_name_the_root_or_an_object() {
        assert_eq!(
            AttributeRef::parse("realization").unwrap(),
            AttributeRef {
                object: None,
                name: "realization".into()
            }
        );
        let on_dataset = AttributeRef::parse("galaxies/pos@units").unwrap();
        assert_eq!(on_dataset.object.as_deref(), Some("galaxies/pos"));
        assert_eq!(on_dataset.name, "units");
        assert_eq!(AttributeRef::parse("/@redshift").unwrap().object, None);
        assert_eq!(
            AttributeRef::parse("/galaxies/@n")
                .unwrap()
                .object
                .as_deref(),
            Some("galaxies")
        );
        // The last `@` splits, so an object name may contain one.
        let odd = AttributeRef::parse("a@b@c").unwrap();
        assert_eq!(
            (odd.object.as_deref(), odd.name.as_str()),
            (Some("a@b"), "c")
        );
        assert!(AttributeRef::parse("galaxies@").is_err());
        assert!(AttributeRef::parse("").is_err());
    }

    #[test]
    fn spec_deserializes_from_the_validate_field() {
        let spec: ValidationSpec = serde_json::from_value(serde_json::json!({
            "datasets": ["galaxies/pos"],
            "attributes": {"realization": 7, "redshift": "1.000", "ok": true},
            "min_rows": 10
        }))
        .unwrap();
        assert_eq!(spec.datasets, vec!["galaxies/pos".to_string()]);
        assert!(spec.groups.is_empty());
        assert_eq!(spec.min_rows, Some(10));
        assert_eq!(
            spec.attributes.get("redshift"),
            Some(&ExpectedValue::Text("1.000".into()))
        );
        assert_eq!(spec.attributes.get("ok"), Some(&ExpectedValue::Bool(true)));
        assert!(matches!(
            spec.attributes.get("realization"),
            Some(ExpectedValue::Number(_))
        ));
    }

    #[test]
    fn unknown_keys_inside_validate_are_rejected() {
        let error = serde_json::from_value::<ValidationSpec>(serde_json::json!({
            "dataset": ["galaxies/pos"]
        }))
        .unwrap_err();
        assert!(error.to_string().contains("dataset"), "{error}");
    }
}
