//! Adaptive steps end to end through the `flow` binary: a custom-protocol algorithm written
//! here, a failing replicate, the budget, real Optuna (from PyPI, in a uv environment built
//! by the campaign's build-env step), determinism of two runs, and kill -9 of the driver at
//! random moments followed by a resume.

mod support;
use support::*;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// A custom algorithm speaking flow's protocol: proposes x = 0, 1, 2, ... in order, logs
/// every request (with its pid) to algo.log.
const CUSTOM_ALGORITHM: &str = r#"
import json, os, sys
log = open(os.environ["ALGO_LOG"], "a")
nxt = 0
told = set()
for line in sys.stdin:
    msg = json.loads(line)
    log.write(f"{os.getpid()} {msg['op']} {json.dumps(msg.get('trials', msg.get('n')))}\n"); log.flush()
    op = msg["op"]
    if op == "close": break
    if op == "hello": print(json.dumps({"ok": True, "name": "counter"}))
    elif op == "finished": print(json.dumps({"ok": True, "finished": False}))
    elif op == "ask":
        if "replay" in msg:
            out = msg["replay"]; nxt += len(out)
        else:
            out = [{"x": nxt + i} for i in range(msg["n"])]; nxt += msg["n"]
        print(json.dumps({"ok": True, "trials": [{"params": p} for p in out]}))
    elif op == "tell":
        for t in msg["trials"]:
            if t["trial"] in told:
                print(json.dumps({"ok": False, "error": f"trial {t['trial']} told twice"})); break
            told.add(t["trial"])
        else:
            print(json.dumps({"ok": True}))
    sys.stdout.flush()
"#;

fn custom_campaign(dir: &Path) {
    std::fs::write(dir.join("algo.py"), CUSTOM_ALGORITHM).unwrap();
    // x = 4, replicate 1 fails for good; the loss is (x - 3)^2 + replicate.
    std::fs::write(
        dir.join("eval.sh"),
        "x=$1; r=$2; out=$3\nif [ \"$x\" = 4 ] && [ \"$r\" = 1 ]; then exit 3; fi\necho \"$x $r\" >> \"$(dirname \"$0\")/ledger\"\nprintf '{\"loss\": %d, \"note\": \"x=%s\"}' $(( (x-3)*(x-3) + r )) \"$x\" > \"$out\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("c.yaml"),
        format!(
            "campaign: {{name: custom, version: v1, machine: local, output: campaigns}}\nsteps:\n  search:\n    kind: adaptive\n    algorithm:\n      command: ALGO_LOG={log} python3 algo.py\n    space:\n      x: {{int: [0, 100]}}\n    trials: 7\n    batch: 3\n    replicates: 2\n    execution: {{max_retries: 1, retry_backoff: {{initial: 0s}}}}\n    command: sh {{{{base_dir}}}}/eval.sh {{{{x}}}} {{{{replicate}}}} {{{{output}}}}\n    output: trials/{{{{param_id}}}}/r{{{{replicate}}}}.json\n    objective: {{key: loss, aggregate: mean}}\n",
            log = dir.join("algo.log").display()
        ),
    )
    .unwrap();
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

fn status_json(dir: &Path, file: &str) -> serde_json::Value {
    let out = flow(dir, &["status", file, "--output", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

#[test]
fn custom_algorithm_failing_replicate_and_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    custom_campaign(dir);
    let out = flow(dir, &["run", "c.yaml"]);
    // The failing replicate fails its task (and so the run), not the loop.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let campaign_dir = dir.join("campaigns/v1_custom");
    let rows = read_csv(&campaign_dir.join("trials.csv"));
    // Budget: 7 trials in asks of 3, 3, 1; all told.
    assert_eq!(rows.len(), 7);
    let xs: Vec<&str> = rows.iter().map(|r| r["x"].as_str()).collect();
    assert_eq!(xs, ["0", "1", "2", "3", "4", "5", "6"]);
    for r in &rows {
        let expected = if r["x"] == "4" { "failed" } else { "complete" };
        assert_eq!(r["state"], expected, "{r:?}");
    }
    assert_eq!(rows[3]["loss"], "0.5"); // x = 3: mean of 0 and 1
    let log = std::fs::read_to_string(dir.join("algo.log")).unwrap();
    // One long-lived process for the whole loop; each trial told once; asks of 3, 3, 1.
    let pids: HashSet<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(pids.len(), 1, "{log}");
    let asks: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ask "))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(asks, ["3", "3", "1"], "{log}");
    let s = status_json(dir, "c.yaml");
    let a = &s["steps"][0]["adaptive"];
    assert_eq!(a["trials_done"], 6, "{s}");
    assert_eq!(a["trials_failed"], 1);
    assert_eq!(a["best"]["params"]["x"], 3);
    assert_eq!(a["best"]["loss"], 0.5);
    // Run again: nothing is evaluated or told again, and the algorithm is not even started.
    let ledger = std::fs::read_to_string(dir.join("ledger")).unwrap();
    let before = log.lines().count();
    let _ = flow(dir, &["run", "c.yaml"]);
    assert_eq!(std::fs::read_to_string(dir.join("ledger")).unwrap(), ledger);
    let log = std::fs::read_to_string(dir.join("algo.log")).unwrap();
    assert_eq!(log.lines().count(), before, "{log}");
}

fn optuna_campaign(dir: &Path, version: &str) {
    copy_dir(
        &root().join("examples/calibration"),
        &dir.join("calibration"),
    );
    let text = std::fs::read_to_string(root().join("examples/calibration.yaml"))
        .unwrap()
        .replace("version: v1", &format!("version: {version}"))
        // A little slower per evaluation, so that kills land inside the loop.
        .replace(
            "command: >-\n      python",
            "command: >-\n      sleep 0.2 && python",
        );
    std::fs::write(dir.join(format!("{version}.yaml")), text).unwrap();
}

fn param_ids(csv: &Path) -> Vec<String> {
    read_csv(csv)
        .into_iter()
        .map(|r| r["param_id"].clone())
        .collect()
}

#[test]
fn optuna_kill_9_resume_and_determinism() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    optuna_campaign(dir, "a");
    optuna_campaign(dir, "b");
    optuna_campaign(dir, "chaos");
    // Two uninterrupted runs ask the same parameter sets in the same order.
    assert_ok(&flow(dir, &["run", "a.yaml"]));
    // Once the algorithm's environment is built, `flow plan` shows the first batch the
    // seeded algorithm will ask (asked without committing anything).
    let plan = flow(dir, &["plan", "b.yaml"]);
    assert_ok(&plan);
    let plan_text = text(&plan.stdout);
    assert!(
        plan_text.contains("first batch, as the algorithm proposes it now (6 parameter set(s)"),
        "{plan_text}"
    );
    let previewed: Vec<String> = plan_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("param_id "))
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect();
    assert!(
        !dir.join("campaigns/b_sir-calibration/metadata/state.db")
            .exists(),
        "plan wrote state"
    );
    assert_ok(&flow(dir, &["run", "b.yaml"]));
    let a = param_ids(&dir.join("campaigns/a_sir-calibration/trials.csv"));
    let b = param_ids(&dir.join("campaigns/b_sir-calibration/trials.csv"));
    assert_eq!(a.len(), 24);
    assert_eq!(a, b);
    assert_eq!(previewed, a[..6].to_vec(), "{plan_text}");

    // kill -9 at pseudo-random moments, then resume until done.
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut kills = 0;
    for _ in 0..8 {
        let mut child = flow_cmd(dir, &["run", "chaos.yaml"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(300 + rng % 1200));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        kills += 1;
    }
    let out = flow(dir, &["run", "chaos.yaml"]);
    assert_ok(&out);
    assert!(
        kills >= 2,
        "the loop ended before the driver was killed twice"
    );
    let campaign_dir = dir.join("campaigns/chaos_sir-calibration");
    // Every (param_id, replicate) evaluated, none succeeded twice.
    let (store, tasks) = campaign_state(&campaign_dir);
    let evaluations: Vec<_> = tasks.values().filter(|t| t.step == "calibrate").collect();
    assert_eq!(evaluations.len(), 48);
    for t in &evaluations {
        let ok = store
            .attempts(&t.id)
            .unwrap()
            .iter()
            .filter(|a| a.exit_code == Some(0) && a.error_class.is_none())
            .count();
        assert_eq!(ok, 1, "task {} succeeded {ok} times", t.id);
    }
    // Exact replay: the interrupted run asked what the uninterrupted ones asked.
    let rows = read_csv(&campaign_dir.join("trials.csv"));
    let chaos: Vec<String> = rows.iter().map(|r| r["param_id"].clone()).collect();
    assert_eq!(chaos, a, "after {kills} kills");
    // The best loss of status is the best of the trials table.
    let best_csv = rows
        .iter()
        .filter(|r| r["state"] == "complete")
        .map(|r| r["loss"].parse::<f64>().unwrap())
        .fold(f64::INFINITY, f64::min);
    let s = status_json(dir, "chaos.yaml");
    let adaptive = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["name"] == "calibrate")
        .unwrap()["adaptive"]
        .clone();
    assert_eq!(adaptive["trials_done"], 24, "{adaptive}");
    assert_eq!(adaptive["best"]["loss"].as_f64().unwrap(), best_csv);
}
