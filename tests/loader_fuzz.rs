//! The loader's fuzz corpus, run as a test: every example and invalid campaign, mutated
//! thousands of times (byte flips, deletions, duplications, insertions of YAML syntax),
//! through the whole loading pipeline. Nothing may panic; every error must be located.
//! (`fuzz/` holds the same target for cargo-fuzz, which needs a nightly toolchain.)

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

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
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
                Ok(Ok(_)) => {}
            }
        }
    }
    assert!(
        errors > 0,
        "no mutation was rejected: the mutator is broken"
    );
}
