//! A secret written into a campaign file (#13): the task gets it, nothing flow prints or
//! keeps shows it, and validate/plan/run say where it is and how to pass it instead.

mod support;
use support::*;

const SECRET: &str = "s3cr3t-value-4711";

#[test]
fn a_literal_secret_reaches_the_task_and_nothing_flow_prints_or_keeps() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("c.yaml"),
        format!(
            "campaign: {{name: s, version: v1, machine: local, output: out}}\nsteps:\n  a:\n    kind: command\n    env: {{API_TOKEN: {SECRET}, PLAIN: visible}}\n    command: printf '%s' \"${{#API_TOKEN}} $PLAIN\" > {{{{output}}}}\n    output: o.txt\n"
        ),
    )
    .unwrap();
    let mut printed = String::new();
    for args in [
        vec!["validate", "c.yaml"],
        vec!["validate", "c.yaml", "--output", "json"],
        vec!["plan", "c.yaml"],
        vec!["plan", "c.yaml", "--explain"],
        vec!["plan", "c.yaml", "--format", "json"],
        vec!["plan", "c.yaml", "--executor", "slurm"],
        vec!["run", "c.yaml"],
        vec!["status", "c.yaml"],
        vec!["status", "c.yaml", "--output", "json"],
        vec!["trace", "c.yaml"],
        vec!["report", "c.yaml", "-o", "report.html"],
    ] {
        let out = flow(d, &args);
        assert_ok(&out);
        printed.push_str(&text(&out.stdout));
        printed.push_str(&text(&out.stderr));
    }
    assert!(
        !printed.contains(SECRET),
        "flow printed the secret:\n{printed}"
    );
    // The task got it (its length) and the plain variable.
    let campaign = d.join("out/v1_s");
    assert_eq!(
        std::fs::read_to_string(campaign.join("o.txt")).unwrap(),
        format!("{} visible", SECRET.len())
    );
    // Explain shows where it came from, masked; the warning names file, line and field.
    let explain = text(&flow(d, &["plan", "c.yaml", "--explain"]).stdout);
    assert!(
        explain.contains("env.API_TOKEN = ***    (c.yaml:5)"),
        "{explain}"
    );
    assert!(explain.contains("env.PLAIN = visible"), "{explain}");
    let warning = text(&flow(d, &["validate", "c.yaml"]).stderr);
    assert!(
        warning.contains("warning: c.yaml:5: steps.a.env.API_TOKEN holds a literal secret"),
        "{warning}"
    );
    assert!(warning.contains("export API_TOKEN"), "{warning}");
    // Nothing flow wrote keeps it: state database (and its WAL), config snapshot, logs,
    // the report.
    let mut files = walk(&campaign);
    files.push(d.join("report.html"));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{} holds the secret",
            f.display()
        );
    }
}

/// A machine's secret-named `setup.env` value is written into the real sbatch script (the
/// job needs it) but `flow plan`, with or without `--explain`, shows it as `***`.
#[test]
fn the_plan_shows_a_machine_setup_secret_masked() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("m.yaml"),
        format!("machine:\n  name: s\n  executor: slurm\n  setup:\n    env: {{MY_API_KEY: {SECRET}, PLAIN: visible}}\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("c.yaml"),
        "campaign: {name: s, version: v1, machine: m.yaml}\nsteps:\n  a: {kind: command, command: echo hi}\n",
    )
    .unwrap();
    for args in [
        vec!["plan", "c.yaml"],
        vec!["plan", "c.yaml", "--explain"],
        vec!["plan", "c.yaml", "--format", "json"],
    ] {
        let out = flow(d, &args);
        assert_ok(&out);
        let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            !printed.contains(SECRET),
            "{args:?} shows the secret:\n{printed}"
        );
        if args.len() == 2 || args[2] == "--explain" {
            assert!(
                printed.contains("export MY_API_KEY='***'"),
                "{args:?}:\n{printed}"
            );
            assert!(
                printed.contains("export PLAIN=visible"),
                "{args:?}:\n{printed}"
            );
        }
    }
}
