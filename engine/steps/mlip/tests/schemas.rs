//! The step schemas and the `Settings` structs describe the same fields.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

use flow_mlip::{BuildEnvSettings, MdBenchmarkSettings};

fn schema(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../schemas/steps")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn check_descriptions(props: &Value) {
    for (name, prop) in props.as_object().unwrap() {
        assert!(
            prop.get("description").is_some(),
            "property `{name}` has no description"
        );
        if let Some(nested) = prop.get("properties") {
            check_descriptions(nested);
        }
    }
}

#[test]
fn md_benchmark_schema_matches_settings() {
    let s = schema("md-benchmark.schema.json");
    assert_eq!(
        s["$id"],
        "https://flow.invalid/schemas/steps/md-benchmark.schema.json"
    );
    assert!(s.get("additionalProperties").is_none());
    check_descriptions(&s["properties"]);
    let settings: MdBenchmarkSettings = serde_json::from_str(r#"{"model": "emt"}"#).unwrap();
    let json = serde_json::to_value(&settings).unwrap();
    assert_eq!(keys(&s["properties"]), keys(&json));
    for nested in ["system", "md", "gate"] {
        assert_eq!(
            keys(&s["properties"][nested]["properties"]),
            keys(&json[nested]),
            "{nested}"
        );
    }
}

#[test]
fn build_env_schema_matches_settings() {
    let s = schema("build-env.schema.json");
    assert_eq!(
        s["$id"],
        "https://flow.invalid/schemas/steps/build-env.schema.json"
    );
    assert!(s.get("additionalProperties").is_none());
    check_descriptions(&s["properties"]);
    let settings: BuildEnvSettings =
        serde_json::from_str(r#"{"environment": "emt", "root": "/r"}"#).unwrap();
    assert_eq!(
        keys(&s["properties"]),
        keys(&serde_json::to_value(&settings).unwrap())
    );
}
