//! Every `--output json` document parses and matches the JSON Schema that docs/json.md
//! gives for it (the schemas are read from the page itself, so the documentation and the
//! code cannot drift apart).

mod support;
use support::*;

use std::collections::HashMap;
use std::path::Path;

/// The ```json schema:NAME blocks of docs/json.md.
fn documented_schemas() -> HashMap<String, serde_json::Value> {
    let page = std::fs::read_to_string(root().join("docs/json.md")).unwrap();
    let mut out = HashMap::new();
    let mut rest = page.as_str();
    while let Some(start) = rest.find("```json schema:") {
        let after = &rest[start + "```json schema:".len()..];
        let (name, body) = after.split_once('\n').unwrap();
        let end = body.find("```").unwrap();
        let schema: serde_json::Value = serde_json::from_str(&body[..end])
            .unwrap_or_else(|e| panic!("schema {name} in docs/json.md: {e}"));
        out.insert(name.trim().to_string(), schema);
        rest = &body[end..];
    }
    out
}

fn check(
    schemas: &HashMap<String, serde_json::Value>,
    name: &str,
    stdout: &[u8],
) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {}", text(stdout)));
    let schema = schemas
        .get(name)
        .unwrap_or_else(|| panic!("docs/json.md documents no `{name}`"));
    let validator = jsonschema::validator_for(schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} does not match docs/json.md: {errors:?}\n{doc:#}"
    );
    doc
}

fn machine(dir: &Path) {
    std::fs::write(
        dir.join("machine.yaml"),
        format!(
            "machine:\n  name: sandbox\n  executor: local\n  root: {}\n  local: {{cpus: 2}}\n",
            dir.join("rootstock").display()
        ),
    )
    .unwrap();
}

#[test]
fn every_json_document_matches_its_documented_shape() {
    let schemas = documented_schemas();
    for name in [
        "validate",
        "trace",
        "retry",
        "cancel",
        "recipes-list",
        "recipes-show",
        "env-list",
        "env-doctor",
        "notify-event",
    ] {
        assert!(schemas.contains_key(name), "docs/json.md lacks {name}");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    machine(d);
    std::fs::write(
        d.join("c.yaml"),
        "campaign: {name: js, version: v1, machine: machine.yaml, output: campaigns}\ndefaults:\n  execution: {max_retries: 0}\nsteps:\n  a: {kind: command, array: {i: [1, 2]}, command: 'test {{i}} -eq 1'}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("bad.yaml"),
        "campaign: {name: js, version: v1, machine: machine.yaml}\nsteps:\n  a: {kind: command, comand: 'true'}\n",
    )
    .unwrap();

    let ok = flow(d, &["validate", "c.yaml", "--output", "json"]);
    assert_eq!(ok.status.code(), Some(0));
    let doc = check(&schemas, "validate", &ok.stdout);
    assert_eq!(
        (doc["ok"].as_bool(), doc["tasks"].as_u64()),
        (Some(true), Some(2))
    );
    let bad = flow(d, &["validate", "bad.yaml", "--output", "json"]);
    assert_eq!(bad.status.code(), Some(1));
    let doc = check(&schemas, "validate", &bad.stdout);
    let typo = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["field"] == "steps.a.comand")
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(
        (typo["line"].as_u64(), typo["column"].as_u64()),
        (Some(3), Some(22))
    );
    assert_eq!(typo["help"], "did you mean `command`?");

    let run = flow(d, &["run", "c.yaml"]);
    assert_eq!(run.status.code(), Some(1));
    let trace = flow(d, &["trace", "c.yaml", "--output", "json"]);
    assert_ok(&trace);
    let doc = check(&schemas, "trace", &trace.stdout);
    assert_eq!(doc["attempts"].as_array().unwrap().len(), 2);

    let retry = flow(d, &["retry", "c.yaml", "--output", "json"]);
    assert_ok(&retry);
    assert_eq!(check(&schemas, "retry", &retry.stdout)["requeued"], 1);
    let cancel = flow(d, &["cancel", "c.yaml", "--output", "json"]);
    assert_ok(&cancel);
    assert_eq!(
        check(&schemas, "cancel", &cancel.stdout)["action"],
        "nothing-running"
    );

    let list = flow(d, &["recipes", "list", "--output", "json"]);
    assert_ok(&list);
    let doc = check(&schemas, "recipes-list", &list.stdout);
    assert!(doc["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "della"));
    let show = flow(d, &["recipes", "show", "della", "--output", "json"]);
    assert_ok(&show);
    assert!(check(&schemas, "recipes-show", &show.stdout)["text"]
        .as_str()
        .unwrap()
        .contains("della"));

    let root_dir = d.join("rootstock");
    std::fs::create_dir_all(root_dir.join("environments")).unwrap();
    std::fs::copy(
        root().join("recipes/environments/emt.py"),
        root_dir.join("environments/emt.py"),
    )
    .unwrap();
    let root_arg = root_dir.display().to_string();
    let envs = flow(d, &["env", "list", "--root", &root_arg, "--output", "json"]);
    assert_ok(&envs);
    let doc = check(&schemas, "env-list", &envs.stdout);
    assert_eq!(doc["environments"][0]["name"], "emt");
    let doctor = flow(
        d,
        &["env", "doctor", "--root", &root_arg, "--output", "json"],
    );
    let doc = check(&schemas, "env-doctor", &doctor.stdout);
    assert_eq!(
        doctor.status.code(),
        Some(i32::from(!doc["ok"].as_bool().unwrap()))
    );

    // plan: --output json is --format json.
    let a = flow(d, &["plan", "c.yaml", "--output", "json"]);
    let b = flow(d, &["plan", "c.yaml", "--format", "json"]);
    assert_ok(&a);
    assert_eq!(text(&a.stdout), text(&b.stdout));
    serde_json::from_slice::<serde_json::Value>(&a.stdout).unwrap();

    // Notification events, as a notify command receives them on stdin.
    let events = d.join("events.jsonl");
    std::fs::write(
        d.join("n.yaml"),
        format!("campaign: {{name: jn, version: v1, machine: machine.yaml, output: campaigns}}\nnotify: {{command: 'cat >> {e}; echo >> {e}'}}\ndefaults:\n  execution: {{max_retries: 0}}\nsteps:\n  a: {{kind: command, command: 'exit 1'}}\n", e = events.display()),
    )
    .unwrap();
    assert_eq!(flow(d, &["run", "n.yaml"]).status.code(), Some(1));
    let lines: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in lines {
        check(&schemas, "notify-event", line.as_bytes());
    }
}
