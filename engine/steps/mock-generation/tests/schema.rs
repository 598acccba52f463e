//! `schemas/steps/mock-generation.schema.json` and [`Settings`] describe the same fields.

use flow_mock_generation::{Settings, ValidationSpec};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../schemas/steps/mock-generation.schema.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read the schema"))
        .expect("the schema is JSON")
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn the_schema_is_a_kind_specific_object_schema_with_descriptions() {
    let schema = schema();
    assert_eq!(
        schema["$id"],
        "https://flow.invalid/schemas/steps/mock-generation.schema.json"
    );
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema.get("additionalProperties").is_none());
    assert_eq!(
        keys(&schema["properties"]),
        BTreeSet::from(["validate".to_string()])
    );
    let validate = &schema["properties"]["validate"];
    assert!(validate["description"].is_string());
    for (name, property) in validate["properties"].as_object().unwrap() {
        assert!(
            property["description"].is_string(),
            "`{name}` has no description"
        );
    }
    let spec_fields = serde_json::to_value(ValidationSpec::default()).unwrap();
    assert_eq!(keys(&validate["properties"]), keys(&spec_fields));
}

#[test]
fn what_the_schema_accepts_the_settings_read_and_what_it_refuses_they_refuse() {
    let validator = jsonschema::validator_for(&schema()).expect("a valid JSON Schema");
    let accepted = [
        json!({}),
        json!({"validate": {}}),
        json!({"validate": {
            "datasets": ["galaxies/pos", "galaxies/mass"],
            "groups": ["galaxies"],
            "attributes": {"realization": "{{realization}}", "redshift": 1.0, "galaxies/pos@units": "Mpc/h", "ok": true},
            "min_rows": 1
        }}),
    ];
    for document in accepted {
        assert!(validator.is_valid(&document), "schema refused {document}");
        serde_json::from_value::<Settings>(document.clone())
            .unwrap_or_else(|error| panic!("Settings refused {document}: {error}"));
    }
    let refused = [
        json!({"validate": {"dataset": ["galaxies/pos"]}}),
        json!({"validate": {"datasets": "galaxies/pos"}}),
        json!({"validate": {"min_rows": -1}}),
        json!({"validate": {"min_rows": 1.5}}),
        json!({"validate": {"attributes": {"realization": [1, 2]}}}),
    ];
    for document in refused {
        assert!(!validator.is_valid(&document), "schema accepted {document}");
        assert!(
            serde_json::from_value::<Settings>(document.clone()).is_err(),
            "Settings accepted {document}"
        );
    }
    // Checked by the schema only (the validator reports these per file instead).
    for document in [
        json!({"validate": {"datasets": ["/"]}}),
        json!({"validate": {"attributes": {"galaxies@": 1}}}),
    ] {
        assert!(!validator.is_valid(&document), "schema accepted {document}");
    }
}
