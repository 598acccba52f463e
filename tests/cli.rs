//! The `flow` binary as users meet it: exact error output for every invalid campaign in
//! `tests/invalid/`, plan output of the examples, exit codes.

mod support;
use support::*;

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn every_invalid_campaign_has_its_exact_located_error() {
    let dir = root().join("tests/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus shrank: {}", files.len());
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let out = flow(&dir, &["validate", &name]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: exit code; stderr:\n{}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("{name}:")) || stderr.contains("recipe:"),
            "{name}: the error does not name the file:\n{stderr}"
        );
        insta::assert_snapshot!(name.trim_end_matches(".yaml").to_string(), stderr);
    }
}

#[test]
fn hostile_inputs_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("utf8.yaml", b"campaign: {name: \xff\xfe}\n".to_vec()),
        ("nul.yaml", b"\x00\x00\x00".to_vec()),
        ("deep.yaml", "[".repeat(100_000).into_bytes()),
        ("anchors.yaml", b"a: &a [*a]\n".to_vec()),
        ("binary.yaml", (0..=255u8).cycle().take(10_000).collect()),
        ("scalar.yaml", b"just a string\n".to_vec()),
        ("numbers.yaml", b"campaign: {name: 1, version: 2, machine: 3}\nsteps: {a: {kind: command, command: 5}}\n".to_vec()),
    ];
    for (name, bytes) in cases {
        std::fs::write(dir.path().join(name), bytes).unwrap();
        let out = flow(dir.path(), &["validate", name]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("panicked"),
            "{name} panicked: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(name),
            "{name}: error does not name the file: {}",
            text(&out.stderr)
        );
    }
    // 50 MB of valid-looking YAML: parsed or refused, in either case no panic.
    let big = dir.path().join("big.yaml");
    let mut body = String::from("campaign: {name: big, version: v1, machine: local}\nsteps:\n  a: {kind: command, command: echo}\nscience:\n");
    let line =
        "  k0000000: \"0123456789012345678901234567890123456789012345678901234567890123456789\"\n";
    let mut i = 0u64;
    while body.len() < 50_000_000 {
        body.push_str(&line.replace("0000000", &format!("{i:07}")));
        i += 1;
    }
    std::fs::write(&big, body).unwrap();
    let out = flow(dir.path(), &["validate", "big.yaml"]);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn usage_errors_exit_2_and_missing_files_exit_1() {
    let dir = root();
    assert_eq!(flow(&dir, &["frobnicate"]).status.code(), Some(2));
    assert_eq!(flow(&dir, &["plan"]).status.code(), Some(2));
    assert_eq!(
        flow(&dir, &["plan", "x.yaml", "--format", "svg"])
            .status
            .code(),
        Some(2)
    );
    let out = flow(&dir, &["validate", "no/such/campaign.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read no/such/campaign.yaml"),
        "{}",
        text(&out.stderr)
    );
}

fn filter_paths(s: &str, examples: &Path) -> String {
    let s = s
        .replace(&examples.display().to_string(), "[EXAMPLES]")
        .replace(&root().display().to_string(), "[ROOT]");
    // Slurm job tags hash the manifest, which holds absolute paths of this checkout.
    let tag = regex::Regex::new(r"(job-|manifest-|:)[0-9a-f]{16}\b").unwrap();
    tag.replace_all(&s, "${1}[HASH]").into_owned()
}

#[test]
fn plans_of_the_examples() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("examples");
    copy_dir(&root().join("examples"), &dir);
    // An empty home: no environment is built under the machines' roots (`~/...`), so
    // nothing a test run elsewhere built (the calibration examples' Optuna environment,
    // whose algorithm plan would ask for the first batch) changes these plans.
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let flow = |dir: &std::path::Path, args: &[&str]| {
        let mut c = flow_cmd(dir, args);
        if args[1].starts_with("calibration") {
            c.env("HOME", &home);
        }
        c.output().expect("the flow binary runs")
    };
    for example in [
        "quickstart.yaml",
        "campaign_v1.0.yaml",
        "dft_factory.yaml",
        "mlip_sanity.yaml",
        "test_campaign.yaml",
        "calibration.yaml",
        "calibration_aks.yaml",
    ] {
        let out = flow(&dir, &["plan", example]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{example}: {}",
            text(&out.stderr)
        );
        let stem = example.trim_end_matches(".yaml").replace('.', "_");
        insta::assert_snapshot!(
            format!("plan_{stem}"),
            filter_paths(&text(&out.stdout), &dir)
        );
        let out = flow(&dir, &["plan", example, "--format", "json"]);
        assert_eq!(out.status.code(), Some(0));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["format"], "flow-plan-v1");
        insta::assert_snapshot!(
            format!("plan_json_{stem}"),
            filter_paths(&text(&out.stdout), &dir).replace(&home.display().to_string(), "~")
        );
    }
}

#[test]
fn plans_are_reproducible_and_dag_formats_render() {
    let dir = root().join("examples");
    let a = flow(&dir, &["plan", "campaign_v1.0.yaml", "--format", "json"]);
    let b = flow(&dir, &["plan", "campaign_v1.0.yaml", "--format", "json"]);
    assert_eq!(a.stdout, b.stdout);
    let dot = text(&flow(&dir, &["plan", "campaign_v1.0.yaml", "--format", "dot"]).stdout);
    assert!(
        dot.starts_with("digraph campaign {") && dot.contains("->"),
        "{dot}"
    );
    let mermaid = text(&flow(&dir, &["plan", "campaign_v1.0.yaml", "--format", "mermaid"]).stdout);
    assert!(
        mermaid.starts_with("flowchart LR") && mermaid.contains("-->"),
        "{mermaid}"
    );
    let explain = text(&flow(&dir, &["plan", "campaign_v1.0.yaml", "--explain"]).stdout);
    assert!(
        explain.contains("recipe:machines/perlmutter.yaml:"),
        "{explain}"
    );
    assert!(explain.contains("campaign_v1.0.yaml:"), "{explain}");
}

#[test]
fn recipes_and_init() {
    let out = flow(&root(), &["recipes", "list"]);
    let listing = text(&out.stdout);
    for name in [
        "local",
        "della",
        "perlmutter",
        "generic-slurm",
        "generic-k8s",
    ] {
        assert!(listing.contains(name), "{listing}");
    }
    assert!(text(&flow(&root(), &["recipes", "show", "della"]).stdout)
        .contains("/scratch/gpfs/SHARED/rootstock"));
    assert_eq!(
        flow(&root(), &["recipes", "show", "nowhere"]).status.code(),
        Some(1)
    );
    let dir = tempfile::tempdir().unwrap();
    let out = flow(dir.path(), &["init", "--machine", "della", "-o", "c.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = flow(dir.path(), &["validate", "c.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the starter campaign is invalid: {}",
        text(&out.stderr)
    );
}

#[test]
fn kubernetes_manifests_of_every_batch_validate_against_the_official_schema() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("c.yaml"),
        "campaign: {name: calib, version: v1, machine: generic-k8s, output: /campaigns}\nsteps:\n  sims:\n    kind: command\n    array: {seed: {range: [0, 2500]}}\n    command: python /opt/model/run.py --seed {{seed}} --out {{output}}\n    output: runs/s{{pad seed 5}}.json\n    execution: {batch_size: 1000, max_running: 300, timeout: 30m}\n",
    )
    .unwrap();
    let out = flow(d, &["plan", "c.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"completionMode\": \"Indexed\""),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        flow(d, &["plan", "c.yaml", "--format", "manifests"])
            .status
            .code(),
        Some(2)
    );
    let out = flow(d, &["plan", "c.yaml", "--format", "manifests", "-o", "m"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let files: Vec<PathBuf> = std::fs::read_dir(d.join("m"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 3, "2,500 tasks in Jobs of 1,000");
    // An adaptive step's first batch (an example set here: no Optuna is built under this
    // home) is a Job like any other, and passes the same checks.
    copy_dir(&root().join("examples"), &d.join("examples"));
    let home = d.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = flow_cmd(
        &d.join("examples"),
        &[
            "plan",
            "calibration_aks.yaml",
            "--format",
            "manifests",
            "-o",
            "../m-aks",
        ],
    )
    .env("HOME", &home)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let aks: Vec<PathBuf> = std::fs::read_dir(d.join("m-aks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(aks.len(), 1, "the calibrate step's first batch: {aks:?}");
    let job: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&aks[0]).unwrap()).unwrap();
    assert_eq!(job["spec"]["completions"], 2, "one set x 2 replicates");
    for f in files.iter().chain(&aks) {
        let check = Command::new("kubernetes-validate")
            .args(["--strict", "-k", "1.33.0"])
            .arg(f)
            .output()
            .expect("kubernetes-validate is installed by scripts/deps/k8s.sh");
        assert!(
            check.status.success(),
            "{}: {}{}",
            f.display(),
            text(&check.stdout),
            text(&check.stderr)
        );
    }
}

/// `flow plan` and `flow status` show a description or value holding terminal escapes or
/// direction overrides escaped, never raw (#13).
#[test]
fn plan_text_shows_control_characters_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("c.yaml"),
        "campaign: {name: t, version: v1, machine: local, description: \"x\\e[2Jy\\u202ez\"}\nsteps:\n  a: {kind: command, description: \"red \\e[31m\", array: {p: [\"a\\e[1mb\"]}, command: \"echo {{p}}\"}\n",
    )
    .unwrap();
    let out = flow(tmp.path(), &["plan", "c.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{202e}'),
        "{stdout:?}"
    );
    assert!(stdout.contains("\\u{1b}"), "{stdout}");
}

/// `flow logs --attempt N` for an attempt the task never had is an error, exit 1.
#[test]
fn logs_of_an_attempt_that_does_not_exist_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("c.yaml"),
        "campaign: {name: t, version: v1, machine: local, output: out}\nsteps:\n  a: {kind: command, command: echo hi}\n",
    )
    .unwrap();
    assert_ok(&flow(tmp.path(), &["run", "c.yaml"]));
    let status = flow(tmp.path(), &["status", "c.yaml", "--output", "json"]);
    assert_ok(&status);
    let store = flow_engine::state::StateStore::open_readonly(
        &tmp.path().join("out/v1_t/metadata/state.db"),
    )
    .unwrap();
    let id = store.load_tasks().unwrap().into_keys().next().unwrap();
    let ok = flow(tmp.path(), &["logs", "c.yaml", &id, "--attempt", "1"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    let bad = flow(tmp.path(), &["logs", "c.yaml", &id, "--attempt", "7"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("has no attempt 7"),
        "{}",
        text(&bad.stderr)
    );
}
