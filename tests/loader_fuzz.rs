//! The loader's fuzz corpus, run as a test: every example and invalid campaign, mutated
//! thousands of times (byte flips, deletions, duplications, insertions of YAML syntax),
//! through the whole pipeline: load (YAML, schema, merge of tiers), and for what loads,
//! compile, template rendering of every step's first task, and the plan in text and JSON.
//! Nothing may panic; every load error must be located. `FLOW_FUZZ_ROUNDS` bounds it.
//! (`fuzz/` holds the same target for cargo-fuzz, which needs a nightly toolchain.)

mod support;
use support::Rng;

use flow_dsl::load::load_campaign;
use std::path::{Path, PathBuf};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut out = Vec::new();
    for dir in [root.join("examples"), root.join("tests/invalid")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p: PathBuf = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                out.push((
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

const TOKENS: &[&[u8]] = &[
    b":",
    b"- ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"&a ",
    b"*a",
    b"\t",
    b"\n",
    b"'",
    b"\"",
    b"{{",
    b"}}",
    b"~",
    b"---\n",
    b"\xff",
    b"\x00",
    b"needs: [x]",
    b"kind: qe-scf",
    b"range: [0, 1]",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let end = (at + rng.below(16)).min(v.len());
                v.drain(at.min(end)..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            3 if !v.is_empty() => {
                let start = rng.below(v.len());
                let end = (start + rng.below(40)).min(v.len());
                let chunk = v[start..end].to_vec();
                v.splice(at..at, chunk);
            }
            _ => v.truncate(at),
        }
    }
    v
}

#[test]
fn mutated_campaigns_never_panic_and_errors_are_located() {
    let dir = tempfile::tempdir().unwrap();
    // Relative machine files and structures the corpus refers to.
    std::fs::create_dir_all(dir.path().join("machines")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/invalid/machines/tiny.yaml"),
        dir.path().join("machines/tiny.yaml"),
    )
    .unwrap();
    let mut rng = Rng(0x5eed_f10e);
    let corpus = corpus();
    assert!(corpus.len() > 20);
    let rounds: usize = std::env::var("FLOW_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let mut errors = 0;
    let mut loaded = 0;
    for round in 0..rounds {
        for (name, bytes) in &corpus {
            let input = mutate(&mut rng, bytes);
            let path = dir.path().join(format!("m-{name}"));
            std::fs::write(&path, &input).unwrap();
            let result = std::panic::catch_unwind(|| load_campaign(&path));
            match result {
                Err(_) => panic!(
                    "the loader panicked on a mutation of {name} (round {round}); input kept at {}",
                    {
                        let keep = std::env::temp_dir().join(format!("flow-fuzz-crash-{name}"));
                        std::fs::write(&keep, &input).unwrap();
                        keep.display().to_string()
                    }
                ),
                Ok(Err(diags)) => {
                    errors += 1;
                    for d in &diags.0 {
                        let located = d.span.is_some() || d.message.starts_with("cannot read");
                        assert!(
                            located,
                            "unlocated error for a mutation of {name}: {}",
                            d.headline()
                        );
                    }
                }
                Ok(Ok(campaign)) => {
                    loaded += 1;
                    let rendered = std::panic::catch_unwind(|| render_everything(&campaign));
                    if rendered.is_err() {
                        let keep = std::env::temp_dir().join(format!("flow-fuzz-crash-{name}"));
                        std::fs::write(&keep, &input).unwrap();
                        panic!(
                            "compile or rendering panicked on a mutation of {name} (round {round}); input kept at {}",
                            keep.display()
                        );
                    }
                }
            }
        }
    }
    assert!(
        errors > 0,
        "no mutation was rejected: the mutator is broken"
    );
    assert!(
        loaded > 0,
        "no mutation loaded: compile and rendering were never reached"
    );
}

/// Compile a loaded campaign and render what `flow plan` renders: every step's first
/// task's command and output, and the plan as text and JSON. Errors are fine; panics not.
fn render_everything(campaign: &flow_dsl::model::Campaign) {
    let Ok(plan) = flow_engine::compile::compile(campaign, None) else {
        return;
    };
    for i in 0..campaign.steps.len() {
        if plan.steps[i].task_count > 0 {
            let task = plan.task(i, 0);
            let _ = flow_engine::render::command_for(&plan, i, &task, 1);
        }
    }
    let done = Default::default();
    let _ = flow_engine::plan_render::text(&plan, &done, true);
    let _ = flow_engine::plan_render::json(&plan, &done);
}

mod property {
    //! A property: no campaign built from campaign-like pieces (random names, kinds,
    //! arrays with extreme bounds, templates with helpers and broken braces, env, outputs
    //! reaching out, unicode) panics anywhere from load to rendering, and every load error
    //! is located. `PROPTEST_CASES` sets the number of cases (256 by default).
    use proptest::prelude::*;

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v}")),
            Just(".nan".to_string()),
            Just("1e309".to_string()),
            "[a-z0-9_./é🙂 -]{0,12}".prop_map(|s| format!("{s:?}")),
        ]
    }

    fn template() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-z =$;'\"`|&<>()/-]{0,8}",
            Just("{{x}}".to_string()),
            Just("{{seed}}".to_string()),
            Just("{{output}}".to_string()),
            Just("{{base_dir}}".to_string()),
            Just("{{nope}}".to_string()),
            Just("{{".to_string()),
            Just("}}".to_string()),
            (0u32..100_000).prop_map(|n| format!("{{{{pad x {n}}}}}")),
            (-5i64..100_000).prop_map(|n| format!("{{{{fixed x {n}}}}}")),
        ];
        prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
    }

    fn step() -> impl Strategy<Value = String> {
        (
            "[a-z][a-z0-9_-]{0,6}",
            prop_oneof![
                Just("command"),
                Just("mock-generation"),
                Just("build-env"),
                Just("qe-scf"),
                Just("adaptive"),
                Just("nonsense"),
            ],
            prop_oneof![
                Just(String::new()),
                (any::<i64>(), any::<i64>())
                    .prop_map(|(a, b)| format!("    array: {{x: {{range: [{a}, {b}]}}}}\n")),
                prop::collection::vec(scalar(), 0..4)
                    .prop_map(|v| format!("    array: {{x: [{}]}}\n", v.join(", "))),
            ],
            template(),
            prop::option::of(template()),
            prop::option::of(("[A-Za-z_ =]{1,10}", scalar())),
        )
            .prop_map(|(name, kind, array, command, output, env)| {
                let mut s =
                    format!("  {name}:\n    kind: {kind}\n{array}    command: {command:?}\n");
                if let Some(o) = output {
                    s.push_str(&format!("    output: {o:?}\n"));
                }
                if let Some((k, v)) = env {
                    s.push_str(&format!("    env: {{{k:?}: {v}}}\n"));
                }
                s
            })
    }

    proptest! {
        #[test]
        fn no_campaign_panics_from_load_to_rendering(steps in prop::collection::vec(step(), 1..4)) {
            let dir = tempfile::tempdir().unwrap();
            let text = format!(
                "campaign: {{name: p, version: v1, machine: local, output: out}}\nsteps:\n{}",
                steps.concat()
            );
            let path = dir.path().join("c.yaml");
            std::fs::write(&path, &text).unwrap();
            match flow_dsl::load::load_campaign(&path) {
                Ok(campaign) => super::render_everything(&campaign),
                Err(diags) => {
                    for d in &diags.0 {
                        prop_assert!(d.span.is_some(), "unlocated: {} for\n{text}", d.headline());
                    }
                }
            }
        }
    }
}
