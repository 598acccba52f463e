//! `schemas/steps/qe-scf.schema.json` agrees with [`Settings`]: the same fields, every one
//! described, and the settings the tests use are valid under it.

use flow_qe_scf::Settings;
use serde_json::{json, Value};

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../schemas/steps/qe-scf.schema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn schema_lists_exactly_the_settings_fields_each_described() {
    let s = schema();
    assert_eq!(
        s["$id"],
        "https://flow.invalid/schemas/steps/qe-scf.schema.json"
    );
    assert!(
        s.get("additionalProperties").is_none(),
        "the parent schema uses unevaluatedProperties"
    );
    let props = s["properties"].as_object().unwrap();
    let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
    names.sort();
    let mut expected = vec![
        "structures",
        "pseudopotentials",
        "kpoints",
        "ecutwfc",
        "ecutrho",
        "nosym",
        "smearing",
        "starting_magnetization",
        "parameters",
        "recovery",
        "allow_smearing",
        "max_attempts",
        "max_force",
        "pw_command",
        "pools",
        "keep",
    ];
    expected.sort();
    assert_eq!(names, expected);
    for (k, v) in props {
        assert!(
            v["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{k} has no description"
        );
    }
}

#[test]
fn examples_validate_and_deserialize_alike() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let good = [
        json!({"structures": "structures/*.extxyz", "pseudopotentials": {"family": "sssp-efficiency-1.1", "dir": "/p"}, "kpoints": {"spacing": 0.15}, "recovery": "default"}),
        json!({"structures": ["a.extxyz"], "pseudopotentials": {"family": "qe-debian"}, "kpoints": {"gamma": true},
               "recovery": [{"match": "scf-not-converged", "set": {"mixing_beta": 0.2, "degauss": {"multiply": 2, "default": 0.01}}}],
               "allow_smearing": false, "parameters": {"conv_thr": 1e-8}, "keep": {"charge_density": true}}),
        json!({"structures": "x.extxyz", "pseudopotentials": {"family": "qe-debian"}, "ecutwfc": 18,
               "recovery": {"name": "test", "initial": {"mixing_beta": 0.7, "electron_maxstep": 2},
                            "handlers": [{"match": ["scf-not-converged", "diagonalization"], "set": {"mixing_beta": 0.3}, "restart": "charge-density", "max_uses": 2}]}}),
    ];
    for g in &good {
        let errors: Vec<String> = validator.iter_errors(g).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{g}: {errors:?}");
        Settings::from_json(g).unwrap();
    }
    let bad = [
        json!({"structures": "x", "pseudopotentials": {}}),
        json!({"structures": "x", "pseudopotentials": {"family": "qe-debian"}, "kpoints": {"spacing": 0}}),
        json!({"structures": "x", "pseudopotentials": {"family": "qe-debian"}, "recovery": [{"match": "cholesky", "set": {}}]}),
    ];
    for b in &bad {
        assert!(
            !validator.is_valid(b),
            "{b} should be rejected by the schema"
        );
        assert!(
            Settings::from_json(b).is_err()
                || flow_qe_scf::plan::effective_policy(
                    &Settings::from_json(b).unwrap(),
                    std::path::Path::new("/")
                )
                .is_err(),
            "{b} should be rejected by Settings"
        );
    }
}
