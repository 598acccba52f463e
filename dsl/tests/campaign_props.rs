//! Property test (#13): generated campaign-ish YAML -- random scalars (unicode, control
//! characters, huge numbers), deep nesting within the loader's limits, anchors and aliases,
//! random template strings with helpers such as `{{pad i N}}` and `{{fixed z N}}` -- goes
//! through the whole loading pipeline (`load_campaign`: read, merge, validate, parse arrays
//! and templates) and through template rendering. Nothing may panic, and every error must be
//! located (a file and a line) and name the file. `PROPTEST_CASES` sets the number of cases
//! (default here 256, which runs in seconds).

use flow_dsl::load::load_campaign;
use flow_dsl::template::{render, TemplateKind};
use proptest::prelude::*;

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1e309".to_string()),
        Just(".nan".to_string()),
        Just("18446744073709551616".to_string()),
        Just("~".to_string()),
        Just("''".to_string()),
        Just("\"\\u202e\\u0000x\"".to_string()),
        "[a-z_]{1,8}",
        "-?[0-9]{1,22}",
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        "[0-9]{1,3}(s|m|h|GB|MiB)",
    ]
}

fn template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z $;'\"`()]{0,6}",
        Just("{{i}}".to_string()),
        Just("{{output}}".to_string()),
        Just("{{seed}}".to_string()),
        Just("{{nope}}".to_string()),
        Just("{{".to_string()),
        Just("}}".to_string()),
        (0u32..100_000).prop_map(|n| format!("{{{{pad i {n}}}}}")),
        (-3i64..100_000).prop_map(|n| format!("{{{{fixed z {n}}}}}")),
        (0u32..20).prop_map(|n| format!("{{{{pad z {n}}}}}")),
        Just("{{#if i}}x{{/if}}".to_string()),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
}

/// A YAML value up to `depth` levels deep, in flow style.
fn value(depth: u32) -> BoxedStrategy<String> {
    let leaf = scalar().boxed();
    if depth == 0 {
        return leaf;
    }
    prop_oneof![
        3 => leaf,
        1 => prop::collection::vec(value(depth - 1), 0..4)
            .prop_map(|v| format!("[{}]", v.join(", "))),
        1 => prop::collection::vec(("[a-z_]{1,6}", value(depth - 1)), 0..4).prop_map(|v| {
            let items: Vec<String> = v.into_iter().map(|(k, x)| format!("{k}: {x}")).collect();
            format!("{{{}}}", items.join(", "))
        }),
    ]
    .boxed()
}

fn step() -> impl Strategy<Value = String> {
    (
        "[a-z][a-z0-9_]{0,6}",
        prop_oneof![Just("command"), Just("md-benchmark"), Just("bogus")],
        template(),
        template(),
        prop::option::of(value(2)),
        prop::option::of(("[a-z]", scalar(), scalar())),
        prop::option::of(("[A-Za-z_ =]{1,10}", scalar())),
        prop::option::of(value(4)),
    )
        .prop_map(
            |(name, kind, command, output, execution, array, env, extra)| {
                let mut s = format!(
                    "  {name}:\n    kind: {kind}\n    command: {}\n    output: {}\n",
                    serde_json::to_string(&command).unwrap(),
                    serde_json::to_string(&output).unwrap(),
                );
                if let Some(e) = execution {
                    s.push_str(&format!("    execution: {e}\n"));
                }
                if let Some((p, a, b)) = array {
                    s.push_str(&format!("    array: {{{p}: {{range: [{a}, {b}]}}}}\n"));
                }
                if let Some((k, v)) = env {
                    s.push_str(&format!(
                        "    env: {{{}: {v}}}\n",
                        serde_json::to_string(&k).unwrap()
                    ));
                }
                if let Some(x) = extra {
                    s.push_str(&format!("    resources: {x}\n"));
                }
                s
            },
        )
}

fn document() -> impl Strategy<Value = String> {
    (
        scalar(),
        prop::collection::vec(step(), 0..4),
        prop::option::of(value(3)),
        any::<bool>(),
    )
        .prop_map(|(version, steps, defaults, alias)| {
            let mut s =
                format!("campaign: {{name: p, version: {version}, machine: local, output: out}}\n");
            if let Some(d) = defaults {
                if alias {
                    s.push_str(&format!(
                        "x-base: &base {d}\ndefaults: {{execution: *base}}\n"
                    ));
                } else {
                    s.push_str(&format!("defaults: {d}\n"));
                }
            }
            s.push_str("steps:\n");
            for st in steps {
                s.push_str(&st);
            }
            s
        })
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn loading_never_panics_and_every_error_is_located(doc in document()) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, &doc).unwrap();
        if let Err(diags) = load_campaign(&file) {
            prop_assert!(!diags.0.is_empty(), "an error without a diagnostic\n{doc}");
            for d in &diags.0 {
                let span = d.span.as_ref();
                prop_assert!(
                    span.is_some_and(|s| s.line >= 1 && s.file.name.ends_with("c.yaml")),
                    "an unlocated error: {d:?}\n{doc}"
                );
            }
        }
    }

    #[test]
    fn rendering_never_panics(text in template(), i in any::<i64>(), z in any::<f64>()) {
        let data = serde_json::json!({"i": i, "z": z, "output": "o.txt", "seed": 7});
        for kind in [TemplateKind::Command, TemplateKind::Path] {
            let _ = render(kind, &text, &data);
        }
    }
}
