//! Whole campaigns on the real one-node Slurm that `scripts/slurm-dev.sh up` starts:
//! arrays of the planned size, adoption of queued jobs after kill -9 of the driver (no
//! duplicate submission, no lost task), and the mock-catalog campaign with HDF5 validation.

mod support;
use support::*;

use flow_engine::task_state::TaskState;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn require_slurm() {
    let ok = Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    assert!(
        ok,
        "Slurm does not answer: run `bash scripts/slurm-dev.sh up` (as root) first"
    );
}

fn machine(dir: &Path) {
    std::fs::write(
        dir.join("machine.yaml"),
        format!(
            "machine:\n  name: dev-slurm\n  executor: slurm\n  root: {}\n  slurm: {{max_array_size: 1000, poll_interval: 2s, submit_rate: 20/s}}\n  job_types:\n    small: {{nodes: 1, tasks_per_node: 1, cpus_per_task: 1, mem: 200M, time: 10m}}\n  defaults:\n    resources: {{job_type: small}}\n",
            dir.join("rootstock").display()
        ),
    )
    .unwrap();
}

/// Distinct Slurm job ids (arrays count once) whose name starts with `prefix`.
fn submitted_jobs(prefix: &str) -> HashSet<String> {
    let out = Command::new("sacct")
        .args(["-n", "-X", "-P", "-o", "JobID,JobName", "-S", "now-2hours"])
        .output()
        .unwrap();
    assert!(out.status.success(), "sacct: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('|'))
        .filter(|(_, name)| name.starts_with(prefix))
        .map(|(id, _)| id.split('_').next().unwrap_or(id).to_string())
        .collect()
}

/// The time limits (`HH:MM:SS`) Slurm's accounting recorded for the jobs of campaign
/// `v1_<name>`, once it has `at_least` of them (records arrive asynchronously: up to 20 s).
fn time_limits_of(name: &str, at_least: usize) -> Vec<String> {
    let t = Instant::now();
    loop {
        let jobs = Command::new("sacct")
            .args([
                "-n",
                "-X",
                "-P",
                "-o",
                "JobName,Timelimit",
                "-S",
                "now-2hours",
            ])
            .output()
            .unwrap();
        let limits: Vec<String> = text(&jobs.stdout)
            .lines()
            .filter(|l| l.starts_with(&format!("v1_{name}.")))
            .map(|l| l.rsplit('|').next().unwrap_or("").to_string())
            .collect();
        if limits.len() >= at_least || t.elapsed() > Duration::from_secs(20) {
            return limits;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn unique(tag: &str) -> String {
    format!("{tag}{}", std::process::id())
}

#[test]
fn arrays_match_the_plan_and_all_tasks_complete() {
    require_slurm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    machine(d);
    let name = unique("arr");
    std::fs::write(
        d.join("c.yaml"),
        format!("campaign: {{name: {name}, version: v1, machine: machine.yaml, output: out}}\nsteps:\n  work:\n    kind: command\n    array: {{i: {{range: [0, 40]}}}}\n    command: echo {{{{i}}}} > {{{{output}}}}\n    output: data/{{{{i}}}}.txt\n    execution: {{batch_size: 10}}\n"),
    )
    .unwrap();
    let plan = flow(d, &["plan", "c.yaml"]);
    assert!(
        text(&plan.stdout).contains("4 sbatch call(s)"),
        "{}",
        text(&plan.stdout)
    );
    assert!(
        text(&plan.stdout).contains("#SBATCH --array=0-9"),
        "{}",
        text(&plan.stdout)
    );
    let out = flow(d, &["run", "c.yaml"]);
    assert_ok(&out);
    for i in 0..40 {
        assert_eq!(
            std::fs::read_to_string(d.join(format!("out/v1_{name}/data/{i}.txt")))
                .unwrap()
                .trim(),
            i.to_string()
        );
    }
    // Accounting records arrive asynchronously: give slurmdbd a moment.
    let t = Instant::now();
    while submitted_jobs(&format!("v1_{name}.")).len() < 4 && t.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(submitted_jobs(&format!("v1_{name}.")).len(), 4);
}

#[test]
fn kill_9_of_the_driver_adopts_queued_arrays_without_resubmitting() {
    require_slurm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    machine(d);
    let name = unique("adopt");
    std::fs::write(
        d.join("c.yaml"),
        format!("campaign: {{name: {name}, version: v1, machine: machine.yaml, output: out}}\nsteps:\n  work:\n    kind: command\n    array: {{i: {{range: [0, 24]}}}}\n    command: sleep 3; echo {{{{i}}}} >> ../../ledger\n    execution: {{batch_size: 12, max_running: 6}}\n"),
    )
    .unwrap();
    let mut driver = Command::new(env!("CARGO_BIN_EXE_flow"))
        .args(["run", "c.yaml"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while submitted_jobs(&format!("v1_{name}.")).len() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "arrays never reached the queue"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    driver.kill().unwrap();
    driver.wait().unwrap();
    let before = submitted_jobs(&format!("v1_{name}."));
    let out = flow(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let after = submitted_jobs(&format!("v1_{name}."));
    assert_eq!(before, after, "arrays were submitted again after the crash");
    let ledger = std::fs::read_to_string(d.join("ledger")).unwrap();
    let mut lines: Vec<u32> = ledger.lines().map(|l| l.parse().unwrap()).collect();
    lines.sort();
    assert_eq!(
        lines,
        (0..24).collect::<Vec<_>>(),
        "a task was lost or ran twice"
    );
    let (_, rows) = campaign_state(&d.join(format!("out/v1_{name}")));
    assert!(rows.values().all(|r| r.state == TaskState::Succeeded));
}

#[test]
fn the_mock_campaign_runs_on_slurm_with_validated_catalogs() {
    require_slurm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    machine(d);
    for sub in ["environments", "mocks"] {
        let to = d.join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(root().join("examples").join(sub)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
    let text_campaign = std::fs::read_to_string(root().join("examples/test_campaign.yaml"))
        .unwrap()
        .replace("machine: local", "machine: machine.yaml")
        .replace(
            "name: covariance_test",
            &format!("name: {}", unique("mocks")),
        );
    std::fs::write(d.join("t.yaml"), text_campaign).unwrap();
    let out = flow(d, &["run", "t.yaml"]);
    assert_ok(&out);
    let campaign = std::fs::read_dir(d.join("campaigns"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let catalogs = campaign.join("catalogs");
    let count = std::fs::read_dir(&catalogs)
        .unwrap()
        .map(|r| std::fs::read_dir(r.unwrap().path()).unwrap().count())
        .sum::<usize>();
    assert_eq!(count, 30);
    assert!(campaign.join("qa/summary.json").exists());
}

#[test]
fn a_task_over_its_time_limit_is_retried_with_escalated_time_and_completes() {
    require_slurm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    machine(d);
    let name = unique("walltime");
    // Slurm's smallest limit is one minute and it enforces limits every 30 s (the kill can
    // come up to ~40 s late): the task sleeps well past that, so it is killed for sure, and
    // fits in the escalated three minutes. The test takes about four minutes.
    std::fs::write(
        d.join("c.yaml"),
        format!("campaign: {{name: {name}, version: v1, machine: machine.yaml, output: out}}\nsteps:\n  long:\n    kind: command\n    command: sleep 130; echo done > {{{{output}}}}\n    output: long.txt\n    resources: {{time: 1m}}\n    execution: {{max_retries: 1, retry_backoff: {{initial: 1s}}, on_retry: {{time: x3, max_time: 10m}}}}\n"),
    )
    .unwrap();
    let out = flow(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let (store, rows) = campaign_state(&d.join(format!("out/v1_{name}")));
    let task = rows.values().next().unwrap();
    assert_eq!((task.state, task.attempts), (TaskState::Succeeded, 2));
    let attempts = store.attempts(&task.id).unwrap();
    assert_eq!(
        attempts[0].error_class.as_deref(),
        Some("walltime"),
        "{attempts:?}"
    );
    // The second job asked Slurm for three minutes.
    let limits = time_limits_of(&name, 2);
    assert!(
        limits.contains(&"00:01:00".to_string()) && limits.contains(&"00:03:00".to_string()),
        "{limits:?}"
    );
}

#[test]
fn array_elements_cancelled_outside_flow_are_retried_and_the_campaign_completes() {
    require_slurm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    machine(d);
    let name = unique("scancel");
    std::fs::write(
        d.join("c.yaml"),
        format!("campaign: {{name: {name}, version: v1, machine: machine.yaml, output: out}}\nsteps:\n  work:\n    kind: command\n    array: {{i: {{range: [0, 6]}}}}\n    command: touch ../../started-{{{{i}}}}; sleep 6; echo {{{{i}}}} >> ../../ledger\n    execution: {{max_retries: 2, retry_backoff: {{initial: 1s}}}}\n"),
    )
    .unwrap();
    let driver = Command::new(env!("CARGO_BIN_EXE_flow"))
        .args(["run", "c.yaml"])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !(d.join("started-1").exists() && d.join("started-2").exists()) {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "elements never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // An administrator (or the user, by hand) cancels two running elements.
    // The array's id from the live queue (accounting may lag behind a running job).
    let prefix = format!("v1_{name}.");
    let array = {
        let t = Instant::now();
        loop {
            let out = Command::new("squeue")
                .args(["-h", "-o", "%F|%j"])
                .output()
                .unwrap();
            let found = text(&out.stdout)
                .lines()
                .filter_map(|l| l.split_once('|'))
                .find(|(_, job)| job.starts_with(&prefix))
                .map(|(id, _)| id.trim().to_string());
            if let Some(id) = found {
                break id;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the array is not in squeue"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    for element in [1, 2] {
        let status = Command::new("scancel")
            .arg(format!("{array}_{element}"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let out = driver.wait_with_output().unwrap();
    assert_ok(&out);
    let (_, rows) = campaign_state(&d.join(format!("out/v1_{name}")));
    assert!(rows.values().all(|r| r.state == TaskState::Succeeded));
    assert_eq!(
        rows.values().filter(|r| r.attempts == 2).count(),
        2,
        "{rows:?}"
    );
    let mut lines: Vec<u32> = std::fs::read_to_string(d.join("ledger"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    lines.sort();
    assert_eq!(lines, (0..6).collect::<Vec<_>>());
}

#[test]
fn a_qos_submit_limit_is_absorbed_and_told_once_in_progress_status_and_report() {
    require_slurm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A QOS allowing 6 queued jobs per user; only jobs asking for it count, so the other
    // tests running beside this one are not limited.
    let qos = format!("flowcamp{}", std::process::id());
    let sacctmgr = |args: &[&str]| {
        let out = Command::new("sacctmgr")
            .arg("--immediate")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sacctmgr {args:?}: {}",
            text(&out.stderr)
        );
    };
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let minus = format!("qos-={}", self.0);
            let _ = Command::new("sacctmgr")
                .args(["--immediate", "modify", "user", "root", "set", &minus])
                .output();
            let _ = Command::new("sacctmgr")
                .args(["--immediate", "delete", "qos", &self.0])
                .output();
        }
    }
    sacctmgr(&["add", "qos", &qos, "MaxSubmitJobsPerUser=6"]);
    let _cleanup = Cleanup(qos.clone());
    sacctmgr(&["modify", "user", "root", "set", &format!("qos+={qos}")]);
    let t = Instant::now();
    while !text(
        &Command::new("scontrol")
            .args(["show", "assoc_mgr", "flags=qos", &format!("qos={qos}")])
            .output()
            .unwrap()
            .stdout,
    )
    .contains(&format!("QOS={qos}("))
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "slurmctld does not know QOS {qos}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::write(
        d.join("machine.yaml"),
        format!(
            "machine:\n  name: dev-slurm\n  executor: slurm\n  root: {}\n  slurm: {{qos: {qos}, max_array_size: 4, max_submitted: 1000, poll_interval: 1s, submit_rate: 20/s, result_grace: 10s}}\n  job_types:\n    small: {{nodes: 1, tasks_per_node: 1, cpus_per_task: 1, mem: 200M, time: 10m}}\n  defaults:\n    resources: {{job_type: small}}\n",
            d.join("rootstock").display()
        ),
    )
    .unwrap();
    let name = unique("qos");
    std::fs::write(
        d.join("c.yaml"),
        format!("campaign: {{name: {name}, version: v1, machine: machine.yaml, output: out}}\nsteps:\n  work:\n    kind: command\n    array: {{i: {{range: [0, 16]}}}}\n    command: sleep 1; echo {{{{i}}}} > {{{{output}}}}\n    output: data/{{{{i}}}}.txt\n    execution: {{batch_size: 4}}\n"),
    )
    .unwrap();
    let out = flow(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let progress = text(&out.stderr);
    assert_eq!(
        progress.matches("max_submitted: 4").count(),
        1,
        "the notice comes once: {progress}"
    );
    assert!(progress.contains("job submit limit"), "{progress}");
    for i in 0..16 {
        assert!(
            d.join(format!("out/v1_{name}/data/{i}.txt")).exists(),
            "task {i}"
        );
    }
    let status = flow(d, &["status", "c.yaml"]);
    let shown = text(&status.stdout);
    assert!(shown.contains("16/16 succeeded"), "{shown}");
    assert!(
        shown.contains("note: ") && shown.contains("max_submitted: 4"),
        "{shown}"
    );
    let json = flow(d, &["status", "c.yaml", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["notes"].as_array().map(Vec::len), Some(1), "{doc}");
    let report = flow(d, &["report", "c.yaml", "-o", "report.html"]);
    assert_ok(&report);
    let html = std::fs::read_to_string(d.join("report.html")).unwrap();
    assert!(
        html.contains("max_submitted: 4"),
        "the report shows the notice"
    );
    // Every attempt has sacct's usage (the dev cluster gathers accounting).
    let trace = flow(d, &["trace", "c.yaml", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&trace.stdout).unwrap();
    let attempts = doc["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 16);
    for a in attempts {
        assert_eq!(a["usage_source"], "sacct", "{a}");
        assert!(a["peak_rss_mib"].as_f64().is_some_and(|m| m > 0.0), "{a}");
    }
}

/// qe-scf on Slurm (#12): an attempt that runs out of its allocation ends as an
/// interrupted policy, class `walltime` (it read `nonzero-exit` before, so `on_retry: time`
/// never applied), the retry asks Slurm for the escalated time, and its own deadline
/// follows it: pw.x (behind a wrapper that first sleeps past the first limit) then
/// converges. About three minutes.
#[test]
fn a_qe_scf_walltime_is_escalated_and_the_retry_converges() {
    require_slurm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    machine(d);
    let name = unique("qewall");
    std::fs::create_dir_all(d.join("structures")).unwrap();
    std::fs::copy(
        root().join("examples/structures/si2.extxyz"),
        d.join("structures/si.extxyz"),
    )
    .unwrap();
    let wrapper = d.join("slow-pw.sh");
    write_executable(&wrapper, "#!/bin/sh\nsleep 70\nexec pw.x \"$@\"\n");
    std::fs::write(
        d.join("c.yaml"),
        format!("campaign: {{name: {name}, version: v1, machine: machine.yaml, output: out}}\nsteps:\n  scf:\n    kind: qe-scf\n    structures: structures/*.extxyz\n    pseudopotentials: {{family: qe-debian}}\n    kpoints: {{spacing: 0.6}}\n    ecutwfc: 15\n    pw_command: {}\n    resources: {{time: 1m}}\n    execution: {{max_retries: 1, retry_backoff: {{initial: 1s}}, on_retry: {{time: x2}}}}\n", wrapper.display()),
    )
    .unwrap();
    let out = flow(d, &["run", "c.yaml"]);
    assert_ok(&out);
    let (store, rows) = campaign_state(&d.join(format!("out/v1_{name}")));
    let task = rows.values().next().unwrap();
    assert_eq!((task.state, task.attempts), (TaskState::Succeeded, 2));
    let attempts = store.attempts(&task.id).unwrap();
    assert_eq!(
        attempts[0].error_class.as_deref(),
        Some("walltime"),
        "{attempts:?}"
    );
    let limits = time_limits_of(&name, 2);
    assert!(
        limits.contains(&"00:01:00".to_string()) && limits.contains(&"00:02:00".to_string()),
        "{limits:?}"
    );
}
