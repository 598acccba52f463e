//! `flow run` on the local executor with real processes and real SQLite: resume, retries,
//! timeouts, conditions, quoting, the driver lease, cancellation, and kill -9 chaos.

mod support;
use support::*;

use flow_engine::state::StateStore;
use flow_engine::task_state::TaskState;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn db(dir: &Path, campaign: &str) -> PathBuf {
    dir.join("out").join(campaign).join("metadata/state.db")
}

fn states(dir: &Path, campaign: &str) -> HashMap<String, (String, TaskState, u32, Option<String>)> {
    let store = StateStore::open_readonly(&db(dir, campaign)).unwrap();
    store
        .load_tasks()
        .unwrap()
        .into_values()
        .map(|r| (r.id.clone(), (r.step, r.state, r.attempts, r.error_class)))
        .collect()
}

#[test]
fn runs_resumes_and_reruns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "c.yaml",
        "campaign: {name: c, version: v1, machine: local, output: out}\nsteps:\n  gen:\n    kind: command\n    array: {r: {range: [0, 6]}, z: [1.0, 0.5]}\n    command: echo {{r}} {{fixed z 3}} >> ../../ledger; echo {{seed}} > {{output}}\n    output: data/r{{pad r 2}}/z{{fixed z 3}}.txt\n  sum:\n    kind: command\n    needs: [gen]\n    command: ls data/*/*.txt | wc -l > qa/count.txt\n",
    );
    let out = flow(d, &["run", "c.yaml"]);
    assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(d.join("out/v1_c/qa/count.txt"))
            .unwrap()
            .trim(),
        "12"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("ledger"))
            .unwrap()
            .lines()
            .count(),
        12
    );
    // Again: nothing runs.
    let out = flow(d, &["run", "c.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("13 succeeded (13 already done)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("ledger"))
            .unwrap()
            .lines()
            .count(),
        12
    );
    // Seeds are per task and deterministic: distinct across tasks.
    let seeds: HashSet<String> = walk(&d.join("out/v1_c/data"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(seeds.len(), 12);
    // A deleted output is redone, alone.
    std::fs::remove_file(d.join("out/v1_c/data/r03/z0.500.txt")).unwrap();
    let out = flow(d, &["run", "c.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("is gone"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("ledger"))
            .unwrap()
            .lines()
            .count(),
        13
    );
    // Status as JSON.
    let out = flow(d, &["status", "c.yaml", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["steps"][0]["counts"]["succeeded"], 12);
}

#[test]
fn retries_timeouts_and_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "c.yaml",
        r#"campaign: {name: c, version: v1, machine: local, output: out}
defaults:
  execution: {max_retries: 2, retry_backoff: {initial: 200ms, multiplier: 2, jitter: false}}
steps:
  flaky:
    kind: command
    array: {n: [a, b]}
    command: test -f ../../m-{{n}} || { touch ../../m-{{n}}; exit 3; }
  slow:
    kind: command
    command: sleep 30
    execution: {timeout: 500ms, max_retries: 1}
  after_slow:
    kind: command
    needs: [slow]
    command: echo never
  anyway:
    kind: command
    needs: [slow]
    condition: all-completed
    command: echo anyway > qa/anyway.txt
  after_flaky:
    kind: command
    needs: [flaky]
    command: echo ok
"#,
    );
    let t = Instant::now();
    let out = flow(d, &["run", "c.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "timeouts did not fire"
    );
    let s = states(d, "v1_c");
    let by_step = |name: &str| {
        s.values()
            .filter(|v| v.0 == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    for (_, state, attempts, _) in by_step("flaky") {
        assert_eq!((state, attempts), (TaskState::Succeeded, 2));
    }
    let slow = &by_step("slow")[0];
    assert_eq!(
        (slow.1, slow.2, slow.3.as_deref()),
        (TaskState::Failed, 2, Some("timeout"))
    );
    assert_eq!(by_step("after_slow")[0].1, TaskState::Blocked);
    assert_eq!(by_step("anyway")[0].1, TaskState::Succeeded);
    assert_eq!(by_step("after_flaky")[0].1, TaskState::Succeeded);
    assert!(
        text(&out.stdout).contains("timeout"),
        "{}",
        text(&out.stdout)
    );
    // Backoff: the attempts of a flaky task are at least the initial delay apart.
    let store = StateStore::open_readonly(&db(d, "v1_c")).unwrap();
    let id = s.iter().find(|(_, v)| v.0 == "flaky").unwrap().0;
    let a = store.attempts(id).unwrap();
    assert!(a[1].started.unwrap() - a[0].ended.unwrap() >= 0.19, "{a:?}");
    // flow retry re-queues the failed and blocked ones.
    let out = flow(d, &["retry", "c.yaml", "--step", "slow"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(states(d, "v1_c")[&slow_id(&s)].1, TaskState::Pending);
    assert_eq!(
        flow(d, &["retry", "c.yaml", "--step", "nope"])
            .status
            .code(),
        Some(1)
    );
}

fn slow_id(s: &HashMap<String, (String, TaskState, u32, Option<String>)>) -> String {
    s.iter().find(|(_, v)| v.0 == "slow").unwrap().0.clone()
}

#[test]
fn parameter_values_reach_the_command_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let values = [
        "it's",
        "$(touch pwned)",
        "`touch pwned2`",
        "a; touch pwned3",
        "two\nlines",
        "\"dq\" & | > <",
        "*",
    ];
    let yaml_values: Vec<String> = values
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect();
    write(
        d,
        "c.yaml",
        &format!(
            "campaign: {{name: c, version: v1, machine: local, output: out}}\nsteps:\n  q:\n    kind: command\n    array: {{v: [{}]}}\n    command: printf '%s' {{{{v}}}} > value-{{{{index}}}}\n",
            yaml_values.join(", ")
        ),
    );
    let out = flow(d, &["run", "c.yaml"]);
    assert_ok(&out);
    for (i, v) in values.iter().enumerate() {
        let got = std::fs::read_to_string(d.join(format!("out/v1_c/value-{i}"))).unwrap();
        assert_eq!(&got, v);
    }
    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(
            !d.join("out/v1_c").join(f).exists(),
            "{f} was created: injection"
        );
    }
}

fn spawn_run(d: &Path, file: &str) -> Child {
    flow_cmd(d, &["run", file])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(path: &Path, timeout: Duration) {
    let t = Instant::now();
    while !path.exists() {
        assert!(t.elapsed() < timeout, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_driver_at_a_time_and_stale_leases_are_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "c.yaml",
        "campaign: {name: c, version: v1, machine: local, output: out}\nsteps:\n  s:\n    kind: command\n    array: {n: {range: [0, 2]}}\n    command: touch ../../started-{{n}}; sleep 3; echo {{n}} >> ../../ledger\n",
    );
    let mut first = spawn_run(d, "c.yaml");
    wait_for(&d.join("started-0"), Duration::from_secs(20));
    let second = flow(d, &["run", "c.yaml"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("is being run by pid"),
        "{}",
        text(&second.stderr)
    );
    // Status reads while the driver runs.
    let status = flow(d, &["status", "c.yaml"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    assert!(
        text(&status.stdout).contains("driver: pid"),
        "{}",
        text(&status.stdout)
    );
    // kill -9 the driver: its lease is stale (pid gone) and is taken over.
    first.kill().unwrap();
    first.wait().unwrap();
    let out = flow(d, &["run", "c.yaml"]);
    assert_ok(&out);
    assert!(
        text(&out.stderr).contains("taking over the lease"),
        "{}",
        text(&out.stderr)
    );
    // The tasks of the dead driver finished on their own and were ingested, or were
    // killed and ran once more: either way each is done, and none ran twice to completion.
    let ledger = std::fs::read_to_string(d.join("ledger")).unwrap();
    let mut lines: Vec<&str> = ledger.lines().collect();
    lines.sort();
    assert_eq!(lines, ["0", "1"], "ledger: {ledger:?}");
}

#[test]
fn an_attempt_that_ends_after_its_driver_died_is_ingested_from_the_result_journal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "j.yaml",
        "campaign: {name: j, version: v1, machine: local, output: out}\nsteps:\n  s:\n    kind: command\n    array: {n: {range: [0, 2]}}\n    command: touch ../../started-{{n}}; sleep 2; echo {{n}} >> ../../ledger\n",
    );
    let mut first = spawn_run(d, "j.yaml");
    wait_for(&d.join("started-0"), Duration::from_secs(20));
    wait_for(&d.join("started-1"), Duration::from_secs(20));
    first.kill().unwrap();
    first.wait().unwrap();
    // The orphans finish on their own; their shells append their statuses to the journal.
    let journals = d.join("out/v1_j/metadata/result-journals");
    let t = Instant::now();
    let journaled = loop {
        let text: String = std::fs::read_dir(&journals)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        if text.lines().count() == 2 {
            break text;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "journal: {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(journaled.contains(r#""exit_code":0"#), "{journaled}");
    let out = flow(d, &["run", "j.yaml"]);
    assert_ok(&out);
    // Ingested, not rerun: each task ran once.
    let ledger = std::fs::read_to_string(d.join("ledger")).unwrap();
    let mut lines: Vec<&str> = ledger.lines().collect();
    lines.sort();
    assert_eq!(lines, ["0", "1"], "ledger: {ledger:?}");
    let s = states(d, "v1_j");
    assert!(
        s.values()
            .all(|(_, state, attempts, _)| *state == TaskState::Succeeded && *attempts == 1),
        "{s:?}"
    );
    // A run that ended with nothing in flight leaves no journal behind.
    let left: Vec<_> = std::fs::read_dir(&journals).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn ctrl_c_cancels_gracefully_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "c.yaml",
        "campaign: {name: c, version: v1, machine: local, output: out}\nsteps:\n  s:\n    kind: command\n    array: {n: {range: [0, 6]}}\n    command: touch ../../started-{{n}}; sleep 2\n",
    );
    let child = spawn_run(d, "c.yaml");
    wait_for(&d.join("started-0"), Duration::from_secs(20));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let s = states(d, "v1_c");
    assert!(s.values().any(|v| v.1 == TaskState::Cancelled), "{s:?}");
    assert!(s.values().all(|v| v.1 != TaskState::Running), "{s:?}");
    let out = flow(d, &["run", "c.yaml"]);
    assert_ok(&out);
    assert!(states(d, "v1_c")
        .values()
        .all(|v| v.1 == TaskState::Succeeded));
}

#[test]
fn chaos_kill_9_never_reruns_recorded_successes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "c.yaml",
        "campaign: {name: chaos, version: v1, machine: local, output: out}\ndefaults:\n  execution: {max_retries: 3, retry_backoff: {initial: 50ms}}\nsteps:\n  work:\n    kind: command\n    array: {n: {range: [0, 300]}}\n    command: sleep 0.0$(( {{n}} % 7 )); echo {{task_id}} >> ../../ledger\n  after:\n    kind: command\n    needs: [work]\n    array: {n: {range: [0, 20]}}\n    command: echo {{task_id}} >> ../../ledger\n",
    );
    let ledger = d.join("ledger");
    let count = |path: &Path| -> HashMap<String, usize> {
        let mut m = HashMap::new();
        if let Ok(t) = std::fs::read_to_string(path) {
            for l in t.lines() {
                *m.entry(l.to_string()).or_default() += 1;
            }
        }
        m
    };
    // (task id, ledger count) of every task recorded as succeeded at each kill.
    let mut promises: Vec<(String, usize)> = Vec::new();
    let mut seed = 0x9e37_79b9_u64;
    let mut kills = 0;
    for _ in 0..20 {
        let mut child = spawn_run(d, "c.yaml");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = 150 + seed % 500;
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        if db(d, "v1_chaos").exists() {
            // Let orphans of the dead driver finish writing before reading the ledger.
            std::thread::sleep(Duration::from_millis(100));
            let counts = count(&ledger);
            for (id, v) in states(d, "v1_chaos") {
                if v.1 == TaskState::Succeeded {
                    promises.push((id.clone(), counts.get(&id).copied().unwrap_or(0)));
                }
            }
        }
    }
    assert!(
        kills >= 5,
        "the campaign finished too fast to kill it: {kills} kills"
    );
    let out = flow(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let s = states(d, "v1_chaos");
    assert_eq!(s.len(), 320);
    assert!(
        s.values().all(|v| v.1 == TaskState::Succeeded),
        "not all done"
    );
    let final_counts = count(&ledger);
    for id in s.keys() {
        assert!(
            final_counts.get(id).copied().unwrap_or(0) >= 1,
            "{id} never ran"
        );
    }
    for (id, at_kill) in &promises {
        assert_eq!(
            final_counts[id], *at_kill,
            "{id} was recorded as succeeded, then ran again"
        );
    }
}

/// The trust rules end to end: plan checks outputs and says why, a redone output makes its
/// consumer stale, seeds survive a command edit, `flow retry` counts only current tasks,
/// and a second driver with another `--state-dir` is refused by the campaign's lock.
#[test]
fn plans_tell_the_truth_and_resume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let campaign = |sleep: &str| {
        format!(
            "campaign: {{name: t, version: v1, machine: local, output: out}}\nsteps:\n  gen:\n    kind: command\n    array: {{n: {{range: [0, 3]}}}}\n    command: sleep {sleep}; echo {{{{seed}}}} > {{{{output}}}}; echo {{{{n}}}} >> ../../ledger-gen\n    output: data/n{{{{n}}}}.txt\n  qa:\n    kind: command\n    needs: [gen]\n    command: cat data/*.txt > qa/sum.txt; echo qa >> ../../ledger-qa\n"
        )
    };
    write(d, "c.yaml", &campaign("0"));
    assert_ok(&flow(d, &["run", "c.yaml"]));
    let out_dir = d.join("out/v1_t");
    let seed_before = std::fs::read_to_string(out_dir.join("data/n1.txt")).unwrap();

    // Nothing changed: the plan says so.
    let plan = text(&flow(d, &["plan", "c.yaml"]).stdout);
    assert!(
        plan.contains("3 done (outputs checked), will be skipped; 0 to run"),
        "{plan}"
    );

    // An output deleted: plan names it and its consumer; run redoes exactly those.
    std::fs::remove_file(out_dir.join("data/n1.txt")).unwrap();
    let plan = text(&flow(d, &["plan", "c.yaml"]).stdout);
    assert!(
        plan.contains("2 done (outputs checked), will be skipped; 1 to run (1 output missing)"),
        "{plan}"
    );
    assert!(
        plan.contains("0 done (outputs checked), will be skipped; 1 to run (1 upstream changed)"),
        "{plan}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&flow(d, &["plan", "c.yaml", "--format", "json"]).stdout).unwrap();
    assert_eq!(json["steps"][0]["done"], 2);
    assert_eq!(json["steps"][0]["to_run"], 1);
    assert_eq!(json["steps"][0]["reasons"]["output-missing"], 1);
    let status = text(&flow(d, &["status", "c.yaml"]).stdout);
    assert!(status.contains("2/3 succeeded"), "{status}");
    assert!(status.contains("1 output-missing"), "{status}");
    assert_ok(&flow(d, &["run", "c.yaml"]));
    let gen_runs = std::fs::read_to_string(d.join("ledger-gen")).unwrap();
    assert_eq!(gen_runs.lines().count(), 4, "{gen_runs}");
    let qa_runs = std::fs::read_to_string(d.join("ledger-qa")).unwrap();
    assert_eq!(qa_runs.lines().count(), 2, "the consumer reran: {qa_runs}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("data/n1.txt")).unwrap(),
        seed_before,
        "same seed"
    );

    // A command edit reruns the step (plan: command changed) with the same seeds.
    write(d, "c.yaml", &campaign("0.01"));
    let plan = text(&flow(d, &["plan", "c.yaml"]).stdout);
    assert!(
        plan.contains("3 to run (3 command/settings changed)"),
        "{plan}"
    );
    assert_ok(&flow(d, &["run", "c.yaml"]));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("data/n1.txt")).unwrap(),
        seed_before,
        "seeds are stable across command edits"
    );
    // `flow retry` counts the tasks of the campaign as it is, not superseded versions.
    let out = flow(d, &["retry", "c.yaml"]);
    assert!(
        text(&out.stdout).contains("re-queued 0 task(s)"),
        "{}",
        text(&out.stdout)
    );

    // A new state directory for a campaign that has a state is refused: it would start
    // an empty state and redo everything.
    write(d, "c.yaml", &campaign("3"));
    let refused = flow(d, &["run", "c.yaml", "--state-dir", "s1"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("would start an empty state and redo finished work"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!d.join("s1/state.db").exists());
    // Moved as the error says, it is taken.
    std::fs::create_dir_all(d.join("s1")).unwrap();
    for entry in std::fs::read_dir(out_dir.join("metadata")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("state.db") {
            std::fs::rename(&path, d.join("s1").join(&name)).unwrap();
        }
    }
    // Two drivers, two state directories: the campaign's lock refuses the second.
    let mut first = flow_cmd(d, &["run", "c.yaml", "--state-dir", "s1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        &out_dir.join("metadata/driver.lock"),
        Duration::from_secs(20),
    );
    let second = flow(d, &["run", "c.yaml", "--state-dir", "s2"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("is being run by pid"),
        "{}",
        text(&second.stderr)
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // The dead driver is reported as dead, not as running.
    let status = text(&flow(d, &["status", "c.yaml", "--state-dir", "s1"]).stdout);
    assert!(status.contains("driver: DEAD"), "{status}");
}

/// Done means the output is still the one its task made (#12 rule 1): an output truncated
/// or rewritten reruns its task (and its consumer); one only copied back with its times
/// kept (a new inode) does not; one replaced by a link out of the campaign directory is not
/// done, and its task is refused (#13: flow writes nothing through such a link), so its
/// consumer is blocked, not run on the foreign file.
#[test]
fn an_output_changed_after_its_success_is_redone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "c.yaml",
        "campaign: {name: c, version: v1, machine: local, output: out}\nsteps:\n  a:\n    kind: command\n    array: {i: [1, 2, 3, 4]}\n    command: echo \"hello {{i}}\" >> ../../ledger; echo \"hello {{i}}\" > {{output}}\n    output: data/a{{i}}.txt\n  b:\n    kind: command\n    needs: [a]\n    command: cat data/a*.txt > {{output}}\n    output: data/b.txt\n",
    );
    assert_ok(&flow(d, &["run", "c.yaml"]));
    let data = d.join("out/v1_c/data");
    let ledger = || std::fs::read_to_string(d.join("ledger")).unwrap();
    assert_eq!(ledger().lines().count(), 4);
    // 1: truncated. 2: rewritten with the same size. 3: copied away and back, times kept.
    // 4: replaced by a link to a file outside the campaign directory.
    std::fs::write(data.join("a1.txt"), "").unwrap();
    let old = std::fs::metadata(data.join("a2.txt"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::write(data.join("a2.txt"), "HELLO 2\n").unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(data.join("a2.txt"))
        .unwrap();
    f.set_modified(old + Duration::from_secs(1)).unwrap();
    drop(f);
    let status = std::process::Command::new("cp")
        .args(["-a", "data/a3.txt", "../a3.txt"])
        .current_dir(d.join("out/v1_c"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(data.join("a3.txt")).unwrap();
    std::process::Command::new("cp")
        .args(["-a", "../a3.txt", "data/a3.txt"])
        .current_dir(d.join("out/v1_c"))
        .status()
        .unwrap();
    std::fs::write(d.join("elsewhere.txt"), "hello 4\n").unwrap();
    std::fs::remove_file(data.join("a4.txt")).unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere.txt"), data.join("a4.txt")).unwrap();

    let plan = flow(d, &["plan", "c.yaml", "--format", "json"]);
    assert_ok(&plan);
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(json["steps"][0]["done"], 1, "{json:#}");
    assert_eq!(json["steps"][0]["to_run"], 3, "{json:#}");
    assert_eq!(json["steps"][1]["to_run"], 1, "{json:#}");

    let b_before = std::fs::read_to_string(data.join("b.txt")).unwrap();
    let out = flow(d, &["run", "c.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("changed since its task produced it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("outside the campaign directory"),
        "{stderr}"
    );
    let reran: Vec<String> = ledger().lines().skip(4).map(str::to_string).collect();
    let mut sorted = reran.clone();
    sorted.sort();
    assert_eq!(sorted, ["hello 1", "hello 2"], "{reran:?}");
    assert_eq!(
        std::fs::read_to_string(data.join("a1.txt")).unwrap(),
        "hello 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("b.txt")).unwrap(),
        b_before,
        "b must not run while one of its upstream tasks failed"
    );
    assert!(
        data.join("a4.txt").is_symlink(),
        "nothing is written through the link"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("elsewhere.txt")).unwrap(),
        "hello 4\n"
    );
    let status = flow(d, &["status", "c.yaml", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["steps"][0]["counts"]["succeeded"], 3, "{json:#}");
    assert_eq!(json["steps"][0]["counts"]["failed"], 1, "{json:#}");
    assert!(
        json["steps"][1]["counts"]["succeeded"].is_null(),
        "{json:#}"
    );
    assert_eq!(json["steps"][1]["counts"]["blocked"], 1, "{json:#}");
}

/// What a task runs is its identity (#12): a step whose command uses `{{seed}}` reruns
/// when `campaign.seed` changes or the step is renamed; one using `{{index}}` reruns the
/// tasks whose index shifted when an element is removed; a step using neither keeps its
/// work through both.
#[test]
fn seed_index_and_step_name_count_when_the_templates_use_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let campaign = |seed: &str, seeded: &str, values: &str| {
        format!(
            "campaign: {{name: c, version: v1, machine: local, output: out{seed}}}\nsteps:\n  {seeded}:\n    kind: command\n    array: {{p: [{values}]}}\n    command: echo {seeded} {{{{p}}}} >> ../../ledger; echo {{{{seed}}}} > {{{{output}}}}\n    output: s/{{{{p}}}}.txt\n  indexed:\n    kind: command\n    array: {{p: [{values}]}}\n    command: echo indexed {{{{p}}}} >> ../../ledger; echo {{{{index}}}} > {{{{output}}}}\n    output: i/{{{{p}}}}.txt\n  plain:\n    kind: command\n    array: {{p: [{values}]}}\n    command: echo plain {{{{p}}}} >> ../../ledger; echo {{{{p}}}} > {{{{output}}}}\n    output: p/{{{{p}}}}.txt\n"
        )
    };
    let ledger = || std::fs::read_to_string(d.join("ledger")).unwrap_or_default();
    let run = |text: String| {
        write(d, "c.yaml", &text);
        let before = ledger().lines().count();
        assert_ok(&flow(d, &["run", "c.yaml"]));
        let mut ran: Vec<String> = ledger().lines().skip(before).map(str::to_string).collect();
        ran.sort();
        ran
    };
    assert_eq!(run(campaign("", "seeded", "a, b, c")).len(), 9);
    assert_eq!(run(campaign("", "seeded", "a, b, c")), Vec::<String>::new());
    // A seed salt: only the step that uses {{seed}} reruns.
    assert_eq!(
        run(campaign(", seed: 7", "seeded", "a, b, c")),
        ["seeded a", "seeded b", "seeded c"]
    );
    // `a` removed: b and c have new indices, so `indexed` reruns them; nothing else runs.
    assert_eq!(
        run(campaign(", seed: 7", "seeded", "b, c")),
        ["indexed b", "indexed c"]
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out/v1_c/i/b.txt")).unwrap(),
        "0\n"
    );
    // The seeded step renamed: its seeds change, so it reruns; the others keep their work.
    assert_eq!(
        run(campaign(", seed: 7", "renamed", "b, c")),
        ["renamed b", "renamed c"]
    );
}

/// A driver stopped by SIGTERM in its first milliseconds (while the state database is
/// created) leaves either no state or a whole one: the next run always finishes (#12; a
/// 0-byte `state.db` blocked every later command before).
#[test]
fn sigterm_at_start_never_leaves_a_broken_state() {
    for delay_ms in [0u64, 2, 5, 10, 15, 20, 30, 50] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "c.yaml",
            "campaign: {name: c, version: v1, machine: local, output: out}\nsteps:\n  a:\n    kind: command\n    array: {i: [1, 2]}\n    command: echo {{i}}\n",
        );
        let child = flow_cmd(d, &["run", "c.yaml"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SAFETY: signals our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let mut child = child;
        child.wait().unwrap();
        let db = db(d, "v1_c");
        if let Ok(m) = std::fs::metadata(&db) {
            assert!(m.len() > 0, "{delay_ms} ms: a 0-byte state database");
        }
        let out = flow(d, &["run", "c.yaml"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{delay_ms} ms: {}",
            text(&out.stderr)
        );
        let status = text(&flow(d, &["status", "c.yaml"]).stdout);
        assert!(status.contains("2/2 succeeded"), "{delay_ms} ms: {status}");
    }
}

/// After kill -9 of the driver, status says the driver is dead and that its attempts
/// still run here as orphans (it said "its tasks are not running" while they ran), and
/// the next run recovers them.
#[test]
fn status_after_kill_9_names_the_orphans_still_running() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "c.yaml",
        "campaign: {name: c, version: v1, machine: local, output: out}\nsteps:\n  a:\n    kind: command\n    array: {i: [1, 2]}\n    command: sleep 3; echo {{i}} > {{output}}\n    output: o/{{i}}.txt\n",
    );
    let mut driver = flow_cmd(d, &["run", "c.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let logs = d.join("out/v1_c/logs/a");
    let started = Instant::now();
    while !logs.is_dir() || walk(&logs).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "tasks never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    driver.kill().unwrap();
    driver.wait().unwrap();
    let status = flow(d, &["status", "c.yaml"]);
    let out = text(&status.stdout);
    assert!(out.contains("driver: DEAD"), "{out}");
    assert!(
        out.contains("still run on this machine (orphaned)"),
        "{out}"
    );
    assert!(out.contains("2 orphaned"), "{out}");
    // Once the orphans have finished, plan counts them done (the next run ingests their
    // results) instead of "to run".
    let t0 = Instant::now();
    while !(d.join("out/v1_c/o/1.txt").exists() && d.join("out/v1_c/o/2.txt").exists()) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the orphans never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let plan = flow(d, &["plan", "c.yaml", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(json["steps"][0]["done"], 2, "{json:#}");
    assert_eq!(json["steps"][0]["to_run"], 0, "{json:#}");
    assert_ok(&flow(d, &["run", "c.yaml"]));
    let out = text(&flow(d, &["status", "c.yaml"]).stdout);
    assert!(out.contains("2/2 succeeded"), "{out}");
}
