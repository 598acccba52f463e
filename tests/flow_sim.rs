//! `flow-sim` end to end: the built binary, the real campaign core, a real SQLite state
//! store and the simulated Slurm.

use serde_json::Value;
use std::process::Command;

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flow-sim"))
        .args(args)
        .output()
        .expect("flow-sim runs")
}

fn sim_json(seed: &str) -> Value {
    let out = sim(&[
        "--tasks",
        "2000",
        "--array-size",
        "100",
        "--fail",
        "0.05",
        "--preempt",
        "0.01",
        "--seed",
        seed,
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "flow-sim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing or not a count in {v}"))
}

#[test]
fn every_task_ends_and_sbatch_calls_follow_arrays_not_tasks() {
    let v = sim_json("7");
    for key in [
        "tasks",
        "succeeded",
        "failed",
        "driver_cpu_s",
        "peak_rss_mb",
        "sbatch_calls",
        "squeue_calls",
        "state_db_mb",
        "simulated_hours",
        "wall_s",
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    assert_eq!(n(&v, "tasks"), 2000);
    assert_eq!(n(&v, "succeeded") + n(&v, "failed"), 2000);
    assert_eq!(n(&v, "blocked"), 0);
    // 5% exit 1 and 1% preempted: attempts and retries happened, and with 2 retries a few
    // tasks (5%^3 ~ 1 in 8000) at most fail for good.
    assert!(n(&v, "exited_1") > 50, "{v}");
    assert!(n(&v, "preempted") > 5, "{v}");
    assert!(n(&v, "retries") >= n(&v, "exited_1") - n(&v, "failed") * 3);
    assert_eq!(
        n(&v, "attempts"),
        2000 + n(&v, "retries") + n(&v, "infrastructure_retries")
    );
    // O(arrays): 20 arrays for first attempts; a retry goes out when its delay ends, in
    // an array with the retries due at the same turn, so at most one call per retried
    // attempt on top. Three rounds (first attempt, two retries) times a small factor, and
    // far below one call per task.
    let sbatch = n(&v, "sbatch_calls");
    let retried = n(&v, "retries") + n(&v, "infrastructure_retries");
    assert!(sbatch >= 20, "{v}");
    assert!(sbatch <= 20 + retried, "{v}");
    assert!(
        sbatch <= 20 * 3 * 4,
        "sbatch calls {sbatch} not O(arrays): {v}"
    );
    assert!(sbatch * 5 <= 2000, "{v}");
    assert!(n(&v, "squeue_calls") > 0);
    assert!(v["state_db_mb"].as_f64().unwrap() > 0.0);
    assert!(v["simulated_hours"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_mb"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let key = |v: &Value| {
        (
            n(v, "succeeded"),
            n(v, "failed"),
            n(v, "sbatch_calls"),
            n(v, "squeue_calls"),
            n(v, "attempts"),
            v["simulated_hours"].as_f64().unwrap().to_bits(),
        )
    };
    let a = sim_json("7");
    let b = sim_json("7");
    assert_eq!(key(&a), key(&b));
    // Another seed draws other failures (attempts and the clock differ).
    let c = sim_json("8");
    assert_ne!(key(&a), key(&c));
}

#[test]
fn bad_flags_exit_2_with_usage() {
    for args in [
        &["--tasks", "10", "--fail", "1.5"][..],
        &["--tasks", "0"][..],
        &["--tasks", "10", "--output", "yaml"][..],
        &["--tasks", "10", "--queue-wait", "normal:3"][..],
        &["--array-size", "10"][..],
        &["--tasks", "10", "--fail", "0.6", "--preempt", "0.6"][..],
    ] {
        let out = sim(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{args:?}: {err}");
    }
    let out = sim(&["--tasks", "10", "--fail", "0.6", "--preempt", "0.6"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}

#[test]
fn text_output_is_a_readable_summary() {
    let out = sim(&["--tasks", "300", "--array-size", "50", "--seed", "3"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("300 task(s) in 1 step(s): 300 succeeded, 0 failed"),
        "{text}"
    );
    assert!(
        text.contains("6 sbatch call(s) (arrays of at most 50)"),
        "{text}"
    );
}

#[test]
fn chained_steps_run_in_turn() {
    let out = sim(&[
        "--tasks",
        "500",
        "--steps",
        "3",
        "--array-size",
        "100",
        "--fail",
        "0.02",
        "--seed",
        "5",
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(n(&v, "tasks"), 1500);
    assert_eq!(n(&v, "succeeded") + n(&v, "failed"), 1500);
    assert!(n(&v, "sbatch_calls") >= 15);
}

#[test]
fn a_run_that_cannot_end_exits_1() {
    // Ends the cluster never reports leave attempts in flight: the simulator must say so
    // rather than print a result.
    let out = sim(&[
        "--tasks",
        "500",
        "--array-size",
        "100",
        "--lose-reports",
        "0.01",
        "--seed",
        "2",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in flight"), "{err}");
}
