//! Chaos over every step kind, end to end with the real tools (#12): a campaign with a
//! command step with outputs, a mock-generation step (HDF5 validated), an md-benchmark gate
//! (ASE, EMT) with a dependent, and a qe-scf step (real pw.x), plus a consumer of the
//! command and mock outputs. Across rounds the driver is killed -9 at pseudo-random moments,
//! outputs are deleted and corrupted between runs, the gate is relaxed and a command is
//! edited. After every completed resume:
//! - `flow status --output json` agrees with the ground truth read from disk (every step's
//!   succeeded count is the number of its outputs that exist and validate; nothing is shown
//!   running or queued when no driver runs);
//! - no success that was verified before the run ran again (its attempts are unchanged),
//!   except the tasks whose outputs the round damaged, their consumers, and what an edit
//!   changed;
//! - every output exists and validates.
//!
//! Needs uv, HDF5 and pw.x (`scripts/test.sh` installs them); fails, not skips, without.

mod support;
use support::*;

use flow_engine::task_state::TaskState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The campaign of a round: the gate's `pass_below` and `marginal_below`, and `gen`'s sleep
/// (a command edit).
fn campaign(gate: (&str, &str), gen_sleep: &str) -> String {
    let (gate_pass_below, gate_marginal_below) = gate;
    format!(
        r#"campaign: {{name: chaos, version: v1, machine: machine.yaml, output: campaigns}}
defaults:
  execution: {{max_retries: 1, retry_backoff: {{initial: 0s}}, timeout: 5m}}
steps:
  emt-env: {{kind: build-env, environment: emt}}
  mock-env: {{kind: build-env, environment: environments/mocks.py}}
  gen:
    kind: command
    array: {{n: {{range: [0, 12]}}}}
    command: sleep {gen_sleep}; echo "{{{{n}}}} {{{{seed}}}}" > {{{{output}}}}
    output: data/n{{{{n}}}}.txt
  mocks:
    kind: mock-generation
    needs: [mock-env]
    environment: mocks
    array:
      realization: {{range: [0, 3]}}
      redshift: [1.0, 2.0]
    command: >-
      python {{{{base_dir}}}}/mocks/generate_single_mock.py
      --real {{{{realization}}}} --z {{{{redshift}}}} --seed {{{{seed}}}} --rows 200 --out {{{{output}}}}
    output: catalogs/r{{{{realization}}}}/z{{{{fixed redshift 1}}}}.hdf5
    validate:
      datasets: [galaxies/pos, galaxies/mass]
      min_rows: 1
  sanity:
    kind: md-benchmark
    needs: [emt-env]
    model: emt
    system: {{element: Cu, atoms: 32}}
    md: {{steps: 20, warmup_steps: 2}}
    gate: {{pass_below: {gate_pass_below}, marginal_below: {gate_marginal_below}, on_fail: stop}}
  production:
    kind: command
    needs: [sanity]
    command: echo produced > {{{{output}}}}
    output: qa/production.txt
  scf:
    kind: qe-scf
    structures: structures/si2*.extxyz
    pseudopotentials: {{family: qe-debian}}
    kpoints: {{spacing: 0.6}}
    ecutwfc: 15
    recovery: default
  qa:
    kind: command
    needs: [gen, mocks]
    command: cat data/*.txt > {{{{output}}}}; ls catalogs/*/*.hdf5 | wc -l >> {{{{output}}}}
    output: qa/summary.txt
"#
    )
}

/// A gate no benchmark passes (FAIL: its dependents stop), and one every benchmark passes.
const STRICT: (&str, &str) = ("-1000%", "-999%");
const RELAXED: (&str, &str) = ("1000%", "2000%");

struct Chaos {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    campaign_dir: PathBuf,
    rng: Rng,
}

/// What the state says of a step's tasks: id -> (state, attempts).
type Snapshot = HashMap<String, (String, TaskState, u32)>;

impl Chaos {
    fn new(seed: u64) -> Chaos {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        for sub in ["environments", "mocks"] {
            copy_dir(&root().join("examples").join(sub), &dir.join(sub));
        }
        std::fs::create_dir_all(dir.join("structures")).unwrap();
        for s in ["si2.extxyz", "si2_strained.extxyz"] {
            std::fs::copy(
                root().join("examples/structures").join(s),
                dir.join("structures").join(s),
            )
            .unwrap();
        }
        std::fs::write(
            dir.join("machine.yaml"),
            format!(
                "machine:\n  name: sandbox\n  executor: local\n  root: {}\n  local: {{cpus: 2}}\n  job_types:\n    cpu_intensive: {{cpus_per_task: 1, time: 1h}}\n  defaults:\n    resources: {{job_type: cpu_intensive}}\n",
                dir.join("rootstock").display()
            ),
        )
        .unwrap();
        let campaign_dir = dir.join("campaigns/v1_chaos");
        Chaos {
            _tmp: tmp,
            dir,
            campaign_dir,
            rng: Rng(seed),
        }
    }

    fn write(&self, yaml: &str) {
        std::fs::write(self.dir.join("c.yaml"), yaml).unwrap();
    }

    /// Start `flow run` and kill -9 it after a pseudo-random moment, `kills` times (fewer
    /// when a run ends first); then run to the end. Returns the final run's exit code and
    /// what it printed.
    fn run_with_kills(&mut self, kills: usize) -> (i32, String) {
        for _ in 0..kills {
            let wait = Duration::from_millis(400 + self.rng.below(3000) as u64);
            let mut child = flow_cmd(&self.dir, &["run", "c.yaml"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let start = Instant::now();
            while start.elapsed() < wait {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if child.try_wait().unwrap().is_none() {
                // SAFETY: kill(2) on the child we spawned.
                unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            }
            let _ = child.wait();
            // Right after a kill no driver runs: status must not show work in flight.
            if self.campaign_dir.join("metadata/state.db").exists() {
                let s = self.status();
                for step in s["steps"].as_array().unwrap() {
                    for k in ["running", "queued"] {
                        assert!(
                            step["counts"].get(k).is_none(),
                            "after kill -9, step {} shows {k}: {s}",
                            step["name"]
                        );
                    }
                }
            }
        }
        let out = flow(&self.dir, &["run", "c.yaml"]);
        (
            out.status.code().unwrap_or(-1),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    }

    fn status(&self) -> serde_json::Value {
        let out = flow(&self.dir, &["status", "c.yaml", "--output", "json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)))
    }

    fn snapshot(&self) -> Snapshot {
        let (_, rows) = campaign_state(&self.campaign_dir);
        rows.into_values()
            .map(|r| (r.id.clone(), (r.step.clone(), r.state, r.attempts)))
            .collect()
    }

    fn succeeded_counts(&self) -> BTreeMap<String, u64> {
        let s = self.status();
        s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|st| {
                (
                    st["name"].as_str().unwrap().to_string(),
                    st["counts"]["succeeded"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    fn gen_outputs(&self) -> Vec<PathBuf> {
        (0..12)
            .map(|n| self.campaign_dir.join(format!("data/n{n}.txt")))
            .collect()
    }

    fn mock_outputs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for r in 0..3 {
            for z in ["1.0", "2.0"] {
                out.push(self.campaign_dir.join(format!("catalogs/r{r}/z{z}.hdf5")));
            }
        }
        out
    }

    fn scf_results(&self) -> Vec<PathBuf> {
        walk(&self.campaign_dir.join("work/scf"))
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|f| f == "result.json"))
            .collect()
    }

    /// The ground truth from disk, per step: how many outputs exist and validate.
    fn truth(&self, gate_passes: bool) -> BTreeMap<String, u64> {
        let gen = self
            .gen_outputs()
            .iter()
            .enumerate()
            .filter(|(n, p)| {
                std::fs::read_to_string(p)
                    .is_ok_and(|t| t.split_whitespace().next() == Some(&n.to_string()))
            })
            .count() as u64;
        let mocks = self.mock_outputs().iter().filter(|p| valid_hdf5(p)).count() as u64;
        let scf = self
            .scf_results()
            .iter()
            .filter(|p| {
                std::fs::read_to_string(p)
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .and_then(|v| v.get("energy_ev").and_then(|e| e.as_f64()))
                    .is_some()
            })
            .count() as u64;
        let production = u64::from(
            std::fs::read_to_string(self.campaign_dir.join("qa/production.txt"))
                .is_ok_and(|t| t.trim() == "produced"),
        );
        let qa = u64::from(
            std::fs::read_to_string(self.campaign_dir.join("qa/summary.txt"))
                .is_ok_and(|t| t.lines().count() == 13 && t.trim_end().ends_with('6')),
        );
        let mut truth = BTreeMap::new();
        truth.insert("emt-env".to_string(), 1);
        truth.insert("mock-env".to_string(), 1);
        truth.insert("gen".to_string(), gen);
        truth.insert("mocks".to_string(), mocks);
        // The benchmark task succeeds whatever its gate decides (the gate stops dependents).
        truth.insert("sanity".to_string(), 1);
        truth.insert(
            "production".to_string(),
            if gate_passes { production } else { 0 },
        );
        truth.insert("scf".to_string(), scf);
        truth.insert("qa".to_string(), qa);
        truth
    }

    /// Every task that was succeeded before and is not in `exempt` still has its attempts.
    fn assert_no_verified_success_reran(&self, before: &Snapshot, exempt: &HashSet<String>) {
        let after = self.snapshot();
        for (id, (step, state, attempts)) in before {
            if *state != TaskState::Succeeded || exempt.contains(id) {
                continue;
            }
            let Some((_, now_state, now_attempts)) = after.get(id) else {
                continue; // superseded by an edit (a new id)
            };
            assert_eq!(
                (now_state, now_attempts),
                (state, attempts),
                "verified success {step}/{id} ran again"
            );
        }
    }

    /// Task ids of a step, from the state.
    fn ids_of(&self, step: &str) -> HashSet<String> {
        self.snapshot()
            .into_iter()
            .filter(|(_, (s, _, _))| s == step)
            .map(|(id, _)| id)
            .collect()
    }

    /// The id of the task whose output is `path` (gen: by `n`; mocks: by params).
    fn gen_id(&self, n: usize) -> String {
        let (_, rows) = campaign_state(&self.campaign_dir);
        rows.into_values()
            .find(|r| {
                r.step == "gen"
                    && r.state == TaskState::Succeeded
                    && serde_json::from_str::<serde_json::Value>(&r.params)
                        .is_ok_and(|p| p["n"].as_str() == Some(n.to_string().as_str()))
            })
            .map(|r| r.id)
            .unwrap()
    }

    fn check_round(&self, round: &str, gate_passes: bool) {
        let shown = self.succeeded_counts();
        let truth = self.truth(gate_passes);
        assert_eq!(shown, truth, "round {round}: status vs disk");
        let s = self.status();
        assert!(s["driver"]["alive"] != true, "round {round}: {s}");
    }
}

/// An HDF5 file as the mock step writes it: the signature and the datasets.
fn valid_hdf5(path: &Path) -> bool {
    let Ok(file) = hdf5::File::open(path) else {
        return false;
    };
    ["galaxies/pos", "galaxies/mass"]
        .iter()
        .all(|d| file.dataset(d).is_ok_and(|ds| ds.size() > 0))
}

#[test]
fn kills_damage_gate_relaxing_and_edits_never_lose_or_redo_verified_work() {
    let seed = std::env::var("FLOW_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_u64);
    eprintln!("chaos seed {seed} (FLOW_CHAOS_SEED to replay)");
    let mut c = Chaos::new(seed);

    // Round 1: a strict gate (FAIL stops production); kills while everything runs.
    c.write(&campaign(STRICT, "0.3"));
    let (code, out) = c.run_with_kills(3);
    assert_eq!(
        code, 1,
        "a gate that stops its dependent makes the run exit 1: {out}"
    );
    c.check_round("1", false);
    let (_, rows) = campaign_state(&c.campaign_dir);
    let production = rows.values().find(|r| r.step == "production").unwrap();
    assert_eq!(production.state, TaskState::Blocked, "{production:?}");

    // Round 2: delete two command outputs, corrupt a catalog, delete an SCF result.
    let before = c.snapshot();
    let mut exempt: HashSet<String> = HashSet::new();
    let a = c.rng.below(12);
    let b = (a + 1 + c.rng.below(11)) % 12;
    for n in [a, b] {
        exempt.insert(c.gen_id(n));
        std::fs::remove_file(&c.gen_outputs()[n]).unwrap();
    }
    let mock = c.mock_outputs()[c.rng.below(6)].clone();
    let len = std::fs::metadata(&mock).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&mock).unwrap();
    f.set_len(len / 3).unwrap();
    drop(f);
    exempt.extend(c.ids_of("mocks")); // which one is damaged: checked through the truth
    let scf = c.scf_results();
    std::fs::remove_file(&scf[c.rng.below(scf.len())]).unwrap();
    exempt.extend(c.ids_of("scf"));
    exempt.extend(c.ids_of("qa")); // consumes gen and mocks: stale
    let plan = text(&flow(&c.dir, &["plan", "c.yaml"]).stdout);
    assert!(plan.contains("2 output missing"), "{plan}");
    let (code, out) = c.run_with_kills(2);
    assert_eq!(code, 1, "{out}");
    c.check_round("2", false);
    c.assert_no_verified_success_reran(&before, &exempt);
    // Exactly one mock task and one scf task ran again.
    let after = c.snapshot();
    for step in ["mocks", "scf"] {
        let reran = before
            .iter()
            .filter(|(id, (s, _, n))| s == step && after.get(*id).is_some_and(|a| a.2 > *n))
            .count();
        assert_eq!(reran, 1, "{step}: {reran} tasks ran again");
    }

    // Round 3: relax the gate: the benchmark reruns (its thresholds changed), PASSes, and
    // production runs; nothing else reruns.
    let before = c.snapshot();
    c.write(&campaign(RELAXED, "0.3"));
    let (code, out) = c.run_with_kills(1);
    assert_eq!(code, 0, "a passing gate lets the campaign succeed: {out}");
    c.check_round("3", true);
    c.assert_no_verified_success_reran(&before, &HashSet::new());

    // Round 4: edit gen's command: gen reruns (new ids), seeds stay, qa reruns.
    let seeds_before: Vec<String> = c
        .gen_outputs()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let before = c.snapshot();
    c.write(&campaign(RELAXED, "0.1"));
    let plan = text(&flow(&c.dir, &["plan", "c.yaml"]).stdout);
    assert!(plan.contains("12 command/settings changed"), "{plan}");
    let (code, out) = c.run_with_kills(2);
    assert_eq!(code, 0, "{out}");
    c.check_round("4", true);
    let mut exempt = c.ids_of("qa");
    exempt.extend(before.keys().filter(|id| before[*id].0 == "gen").cloned());
    c.assert_no_verified_success_reran(&before, &exempt);
    let seeds_after: Vec<String> = c
        .gen_outputs()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(
        seeds_before, seeds_after,
        "a command edit changed the seeds"
    );
    // A last run has nothing to do.
    let out = flow(&c.dir, &["run", "c.yaml"]);
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("25 succeeded (25 already done)"),
        "{}",
        text(&out.stdout)
    );
}
