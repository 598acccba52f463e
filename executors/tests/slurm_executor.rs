//! The Slurm executor against the real daemons of `scripts/slurm-dev.sh up`.
//! These tests fail (they do not skip) when Slurm does not answer.

mod slurm_support;

use flow_dsl::error_class::ErrorClass;
use flow_dsl::machine_settings::slurm::AccountingSource;
use flow_dsl::on_retry::OnRetry;
use flow_executors::escalation::escalate;
use flow_executors::{Executor, ExecutorError, JobRef};
use slurm_support::*;
use std::process::Command;
use std::time::Duration;

/// Elements of an array as the accounting database recorded them.
fn sacct_elements(job_id: &str) -> usize {
    let output = Command::new("sacct")
        .args([
            "--noheader",
            "--parsable2",
            "--allocations",
            "--format=JobID",
            "--starttime=now-3600",
            "--jobs",
            job_id,
        ])
        .output()
        .expect("sacct");
    assert!(
        output.status.success(),
        "sacct failed ({}); scripts/slurm-dev.sh up runs slurmdbd unless FLOW_SLURM_DEV_ACCOUNTING=0",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("{job_id}_")))
        .count()
}

/// Running array elements of a campaign right now, from squeue.
fn running_elements(campaign: &str) -> usize {
    let output = Command::new("squeue")
        .args(["--me", "--noheader", "--states=RUNNING", "--format=%k"])
        .output()
        .expect("squeue");
    let prefix = format!("flow1:{campaign}:");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .count()
}

#[test]
fn a_200_task_array_completes_with_the_planned_submissions() {
    require_slurm();
    let dir = tempfile::tempdir().expect("tempdir");
    let campaign = campaign_name("array200");
    let _cleanup = CleanupGuard {
        campaign: campaign.clone(),
        dir: dir.path().to_path_buf(),
    };
    let mut config = test_config();
    config.max_array_size = 100;
    let mut executor = executor(&campaign, dir.path(), config);

    let tasks = (0..200)
        .map(|i| {
            let id = format!("mock-{i:03}");
            launch(
                dir.path(),
                &id,
                1,
                &[
                    "/bin/sh",
                    "-c",
                    "echo \"$FLOW_TASK_ID $FLOW_SEED\" > done.txt",
                ],
            )
        })
        .collect::<Vec<_>>();
    let mut b = batch(&campaign, "mocks", "mocks-b0000", tasks);
    // Below the 12 CPUs the dev node advertises, so the cap (not the node) is the limit.
    b.max_running = Some(8);
    let jobs = executor.submit(b).expect("submit");

    // The step-wide cap of 8 is taken by the first array (%8); the second waits until the
    // first has drained below 8 remaining, then takes the free share.
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(executor.waiting_arrays(), 1);
    assert_eq!(executor.call_counts().get("sbatch"), Some(&1));
    let started = std::time::Instant::now();
    let mut observed = Observed::default();
    let mut most_running = 0;
    while observed.finished.len() < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "only {} of 200 finished",
            observed.finished.len()
        );
        poll_once(&mut executor, &mut observed);
        most_running = most_running.max(running_elements(&campaign));
    }
    // Sampled once per poll: the step never ran more than its cap.
    assert!(most_running <= 8, "{most_running} elements ran at once");
    assert!(most_running > 0);
    eprintln!(
        "200 tasks in {:.1}s, at most {most_running} running at a poll; Slurm calls: {:?}",
        started.elapsed().as_secs_f64(),
        executor.call_counts()
    );

    assert_eq!(observed.duplicate_finishes, 0);
    for (task, outcome) in &observed.finished {
        assert!(outcome.succeeded(), "{task}: {outcome:?}");
        let written = std::fs::read_to_string(dir.path().join("tasks").join(task).join("done.txt"))
            .expect("task output");
        assert_eq!(written.trim(), format!("{task} 7"));
    }
    assert_eq!(observed.started.len(), 200);
    assert_eq!(
        executor.call_counts().get("sbatch"),
        Some(&2),
        "no further submissions"
    );
    assert_eq!(executor.in_flight(), 0);
    // ceil(200 / 100) = 2 arrays in Slurm, 100 elements each, each with a throttle whose
    // share of the cap never exceeded 8.
    let mut throttles = Vec::new();
    for key in ["mocks-b0000.000", "mocks-b0000.001"] {
        let batch_dir = dir.path().join("logs/mocks").join(key);
        let record = std::fs::read_dir(&batch_dir)
            .expect("batch dir")
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("submission-"))
            .expect("submission record");
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(record.path()).expect("read"))
                .expect("json");
        let job_id = record["job_id"].as_str().expect("job id").to_string();
        // slurmdbd receives records asynchronously: give it a moment to catch up.
        let start = std::time::Instant::now();
        while sacct_elements(&job_id) < 100 && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_secs(1));
        }
        assert_eq!(sacct_elements(&job_id), 100, "elements of job {job_id}");
        throttles.push(record["throttle"].as_u64().expect("throttle"));
        let script = std::fs::read_dir(&batch_dir)
            .expect("batch dir")
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".sbatch"))
            .expect("script");
        let text = std::fs::read_to_string(script.path()).expect("read script");
        assert!(text.contains("#SBATCH --no-requeue"), "{text}");
        assert!(
            text.contains(&format!(
                "#SBATCH --array=0-99%{}",
                throttles.last().unwrap_or(&0)
            )),
            "{text}"
        );
    }
    assert_eq!(throttles[0], 8);
    assert!((1..=8).contains(&throttles[1]), "{throttles:?}");
}

#[test]
fn the_window_holds_arrays_back_until_earlier_ones_drain() {
    require_slurm();
    let dir = tempfile::tempdir().expect("tempdir");
    let campaign = campaign_name("window");
    let _cleanup = CleanupGuard {
        campaign: campaign.clone(),
        dir: dir.path().to_path_buf(),
    };
    let mut config = test_config();
    config.max_array_size = 10;
    config.max_submitted = Some(10);
    let mut executor = executor(&campaign, dir.path(), config);
    let tasks = (0..30)
        .map(|i| launch(dir.path(), &format!("w{i:02}"), 1, &["sleep", "1"]))
        .collect();
    let jobs = executor
        .submit(batch(&campaign, "win", "win-b0", tasks))
        .expect("submit");
    assert_eq!(jobs.len(), 1, "only one array of 10 fits a window of 10");
    assert_eq!(executor.waiting_arrays(), 2);
    assert_eq!(executor.in_flight(), 30);
    let mut observed = Observed::default();
    poll_until_finished(&mut executor, 30, Duration::from_secs(180), &mut observed);
    assert!(
        observed.finished.values().all(|o| o.succeeded()),
        "{observed:?}"
    );
    assert_eq!(executor.call_counts().get("sbatch"), Some(&3));
}

#[test]
fn scancelled_elements_are_reported_cancelled_from_sacct() {
    scancelled_elements_are_reported_cancelled(AccountingSource::Sacct);
}

#[test]
fn scancelled_elements_are_reported_cancelled_from_scontrol() {
    scancelled_elements_are_reported_cancelled(AccountingSource::Scontrol);
}

/// Final states come from `source`: sacct (slurmdbd, as on real clusters) or scontrol
/// (clusters without accounting).
fn scancelled_elements_are_reported_cancelled(source: AccountingSource) {
    require_slurm();
    let dir = tempfile::tempdir().expect("tempdir");
    let campaign = campaign_name(&format!("scancel-{source:?}"));
    let _cleanup = CleanupGuard {
        campaign: campaign.clone(),
        dir: dir.path().to_path_buf(),
    };
    let mut config = test_config();
    config.accounting = source;
    let mut executor = executor(&campaign, dir.path(), config);
    let tasks = (0..6)
        .map(|i| {
            let seconds = if i == 1 || i == 3 { "300" } else { "1" };
            launch(dir.path(), &format!("c{i}"), 1, &["sleep", seconds])
        })
        .collect();
    let jobs = executor
        .submit(batch(&campaign, "cancel", "cancel-b0", tasks))
        .expect("submit");
    let array = &jobs[0].job_id;

    let mut observed = Observed::default();
    let start = std::time::Instant::now();
    while !(observed.started.contains_key("c1") && observed.started.contains_key("c3")) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "c1 and c3 never started"
        );
        poll_once(&mut executor, &mut observed);
    }
    let status = Command::new("scancel")
        .args([format!("{array}_1"), format!("{array}_3")])
        .status()
        .expect("scancel");
    assert!(status.success());
    poll_until_finished(&mut executor, 6, Duration::from_secs(120), &mut observed);
    for (task, outcome) in &observed.finished {
        if task == "c1" || task == "c3" {
            assert_eq!(
                outcome.error_class,
                Some(ErrorClass::Cancelled),
                "{task}: {outcome:?}"
            );
            let message = outcome.message.as_deref().unwrap_or("");
            assert!(message.contains("CANCELLED"), "{message}");
        } else {
            assert!(outcome.succeeded(), "{task}: {outcome:?}");
        }
    }
    let sacct_calls = executor.call_counts().get("sacct").copied().unwrap_or(0);
    match source {
        AccountingSource::Sacct => assert!(sacct_calls > 0, "sacct was never asked"),
        _ => assert_eq!(sacct_calls, 0),
    }
}

#[test]
fn a_task_over_its_time_limit_is_walltime_and_succeeds_with_escalated_time() {
    require_slurm();
    let dir = tempfile::tempdir().expect("tempdir");
    let campaign = campaign_name("walltime");
    let _cleanup = CleanupGuard {
        campaign: campaign.clone(),
        dir: dir.path().to_path_buf(),
    };
    let mut executor = executor(&campaign, dir.path(), test_config());
    // Slurm's smallest limit is one minute, enforced by a check every 30 s: a 100 s task is
    // killed between 60 and 90 s, and fits in the escalated two minutes.
    let mut first = batch(
        &campaign,
        "slow",
        "slow-b0-a1",
        vec![launch(dir.path(), "slow", 1, &["sleep", "100"])],
    );
    first.resources.time_limit = Some(Duration::from_secs(60));
    let resources = first.resources.clone();
    executor.submit(first).expect("submit");
    let mut observed = Observed::default();
    poll_until_finished(&mut executor, 1, Duration::from_secs(180), &mut observed);
    let outcome = &observed.finished["slow"];
    assert_eq!(
        outcome.error_class,
        Some(ErrorClass::Walltime),
        "{outcome:?}"
    );
    assert!(
        outcome.message.as_deref().unwrap_or("").contains("TIMEOUT"),
        "{outcome:?}"
    );

    // The engine's retry: escalate time per `on_retry`, submit attempt 2.
    let policy: OnRetry =
        serde_json::from_str(r#"{"time": "x2", "max_time": "24h"}"#).expect("policy");
    let escalation = escalate(&resources, &policy, ErrorClass::Walltime);
    assert!(escalation.escalated);
    assert_eq!(
        escalation.resources.time_limit,
        Some(Duration::from_secs(120))
    );
    let mut second = batch(
        &campaign,
        "slow",
        "slow-b0-a2",
        vec![launch(dir.path(), "slow", 2, &["sleep", "100"])],
    );
    second.resources = escalation.resources;
    executor.submit(second).expect("resubmit");
    let mut observed = Observed::default();
    poll_until_finished(&mut executor, 1, Duration::from_secs(180), &mut observed);
    assert!(
        observed.finished["slow"].succeeded(),
        "{:?}",
        observed.finished["slow"]
    );
}

#[test]
fn a_second_executor_adopts_jobs_without_resubmitting() {
    require_slurm();
    let dir = tempfile::tempdir().expect("tempdir");
    let campaign = campaign_name("adopt");
    let _cleanup = CleanupGuard {
        campaign: campaign.clone(),
        dir: dir.path().to_path_buf(),
    };
    let tasks: Vec<_> = (0..20)
        .map(|i| launch(dir.path(), &format!("a{i:02}"), 1, &["sleep", "2"]))
        .collect();
    let mut b = batch(&campaign, "adopt", "adopt-b0", tasks);
    b.max_running = Some(4);
    let submitted: Vec<JobRef> = {
        let mut first = executor(&campaign, dir.path(), test_config());
        let jobs = first.submit(b.clone()).expect("submit");
        assert_eq!(first.call_counts().get("sbatch"), Some(&1));
        jobs
        // `first` is dropped here without polling: the driver "crashed".
    };

    let mut second = executor(&campaign, dir.path(), test_config());
    let listed = second.list_jobs().expect("list_jobs");
    assert_eq!(listed, submitted, "the queued array is found by its tag");
    // Submitting the same batch again adopts the job instead of calling sbatch.
    let again = second.submit(b).expect("idempotent submit");
    assert_eq!(again, submitted);
    assert_eq!(
        second.call_counts().get("sbatch"),
        None,
        "no duplicate submission"
    );

    let mut observed = Observed::default();
    poll_until_finished(&mut second, 20, Duration::from_secs(120), &mut observed);
    assert!(
        observed.finished.values().all(|o| o.succeeded()),
        "{observed:?}"
    );
    assert_eq!(second.call_counts().get("sbatch"), None);

    // A third instance, after the array has finished, re-attaches by job id.
    let mut third = executor(&campaign, dir.path(), test_config());
    assert!(third.list_jobs().expect("list").is_empty());
    third.track(&submitted[0]).expect("track");
    let mut observed = Observed::default();
    poll_until_finished(&mut third, 20, Duration::from_secs(60), &mut observed);
    assert!(observed.finished.values().all(|o| o.succeeded()));
}

#[test]
fn parameter_values_survive_quoting_into_the_job() {
    require_slurm();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("camp aign's dir");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let campaign = campaign_name("quoting");
    let _cleanup = CleanupGuard {
        campaign: campaign.clone(),
        dir: dir.clone(),
    };
    let mut config = test_config();
    config.env.insert(
        "FLOW_TEST_MACHINE".into(),
        "$(echo no) 'single' \"double\" `x`".into(),
    );
    let mut executor = executor(&campaign, &dir, config);
    let values = [
        "two words",
        "it's",
        "\"double\"",
        "$(touch pwned)",
        "`touch pwned2`",
        "$HOME",
        "*",
        "back\\slash",
        "new\nline",
        "; exit 3",
        "",
    ];
    let mut argv = vec![
        "/bin/sh",
        "-c",
        "printf '%s\\0' \"$@\" \"$FLOW_TEST_MACHINE\" > args.bin",
        "sh",
    ];
    argv.extend(values);
    let task = launch(&dir, "quoted", 1, &argv);
    executor
        .submit(batch(&campaign, "quote", "quote-b0", vec![task]))
        .expect("submit");
    let mut observed = Observed::default();
    poll_until_finished(&mut executor, 1, Duration::from_secs(60), &mut observed);
    assert!(observed.finished["quoted"].succeeded(), "{observed:?}");
    let bytes = std::fs::read(dir.join("tasks/quoted/args.bin")).expect("args");
    let text = String::from_utf8(bytes).expect("utf8");
    let got: Vec<&str> = text.split('\0').collect();
    let mut expected: Vec<&str> = values.to_vec();
    expected.push("$(echo no) 'single' \"double\" `x`");
    expected.push(""); // after the trailing NUL
    assert_eq!(got, expected);
    assert!(!dir.join("tasks/quoted/pwned").exists());
    assert!(!dir.join("tasks/quoted/pwned2").exists());
}

#[test]
fn a_bad_partition_is_rejected_with_slurms_message() {
    require_slurm();
    let dir = tempfile::tempdir().expect("tempdir");
    let campaign = campaign_name("reject");
    let mut executor = executor(&campaign, dir.path(), test_config());
    let mut b = batch(
        &campaign,
        "bad",
        "bad-b0",
        vec![launch(dir.path(), "t", 1, &["true"])],
    );
    b.resources.partition = Some("no-such-partition".into());
    match executor.submit(b) {
        Err(ExecutorError::SubmitRejected { message, .. }) => {
            assert!(message.contains("Invalid partition"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(executor.in_flight(), 0);
}

#[test]
fn a_job_that_can_never_start_is_rejected_not_left_waiting() {
    require_slurm();
    let dir = tempfile::tempdir().expect("tempdir");
    let campaign = campaign_name("never");
    let _cleanup = CleanupGuard {
        campaign: campaign.clone(),
        dir: dir.path().to_path_buf(),
    };
    // A job that fails, and a batch that depends on its success: Slurm keeps the batch
    // pending with reason DependencyNeverSatisfied, forever.
    let output = Command::new("sbatch")
        .args(["--parsable", "--output=/dev/null", "--wrap=exit 1"])
        .output()
        .expect("sbatch");
    assert!(output.status.success());
    let failing = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let start = std::time::Instant::now();
    loop {
        let out = Command::new("squeue")
            .args(["--noheader", "--jobs", &failing])
            .output()
            .expect("squeue");
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "job {failing} never ended"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut executor = executor(&campaign, dir.path(), test_config());
    let tasks = (0..3)
        .map(|i| launch(dir.path(), &format!("n{i}"), 1, &["true"]))
        .collect();
    let mut b = batch(&campaign, "never", "never-b0", tasks);
    b.resources.extra = vec![format!("--dependency=afterok:{failing}")];
    executor.submit(b).expect("submit");
    let mut observed = Observed::default();
    poll_until_finished(&mut executor, 3, Duration::from_secs(60), &mut observed);
    for (task, outcome) in &observed.finished {
        assert_eq!(
            outcome.error_class,
            Some(ErrorClass::SubmitRejected),
            "{task}: {outcome:?}"
        );
        let message = outcome.message.as_deref().unwrap_or("");
        assert!(message.contains("DependencyNeverSatisfied"), "{message}");
    }
    assert_eq!(executor.in_flight(), 0);
}

/// Whether the cluster enforces memory limits (scripts/slurm-dev.sh enables cgroups where
/// the cgroup v1 memory controller exists).
fn memory_is_enforced() -> bool {
    let output = Command::new("scontrol")
        .args(["show", "config"])
        .output()
        .expect("scontrol show config");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|l| l.starts_with("TaskPlugin") && l.contains("task/cgroup"))
}

#[test]
fn a_task_over_its_memory_is_out_of_memory_and_succeeds_with_escalated_memory() {
    require_slurm();
    assert!(
        memory_is_enforced(),
        "this Slurm does not enforce memory (TaskPlugin lacks task/cgroup); \
         scripts/slurm-dev.sh up enables it where the cgroup v1 memory controller is mounted"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let campaign = campaign_name("oom");
    let _cleanup = CleanupGuard {
        campaign: campaign.clone(),
        dir: dir.path().to_path_buf(),
    };
    let mut executor = executor(&campaign, dir.path(), test_config());
    // `tail` keeps the last "line" of its input in memory: 150 MiB without a newline.
    let hog = ["/bin/sh", "-c", "head -c 150M /dev/zero | tail > /dev/null"];
    let mut first = batch(
        &campaign,
        "hog",
        "hog-b0-a1",
        vec![launch(dir.path(), "hog", 1, &hog)],
    );
    first.resources.mem_mb = 100;
    let resources = first.resources.clone();
    executor.submit(first).expect("submit");
    let mut observed = Observed::default();
    poll_until_finished(&mut executor, 1, Duration::from_secs(120), &mut observed);
    let outcome = &observed.finished["hog"];
    assert_eq!(
        outcome.error_class,
        Some(ErrorClass::OutOfMemory),
        "{outcome:?}"
    );
    assert!(
        outcome
            .message
            .as_deref()
            .unwrap_or("")
            .contains("OUT_OF_MEMORY"),
        "{outcome:?}"
    );

    let policy: OnRetry =
        serde_json::from_str(r#"{"mem": "x2", "max_mem": "1G"}"#).expect("policy");
    let escalation = escalate(&resources, &policy, ErrorClass::OutOfMemory);
    assert_eq!(escalation.resources.mem_mb, 200);
    let mut second = batch(
        &campaign,
        "hog",
        "hog-b0-a2",
        vec![launch(dir.path(), "hog", 2, &hog)],
    );
    second.resources = escalation.resources;
    executor.submit(second).expect("resubmit");
    let mut observed = Observed::default();
    poll_until_finished(&mut executor, 1, Duration::from_secs(120), &mut observed);
    assert!(
        observed.finished["hog"].succeeded(),
        "{:?}",
        observed.finished["hog"]
    );
}

#[test]
fn a_job_scontrol_has_forgotten_is_read_from_the_jobcomp_file() {
    require_slurm();
    let dir = tempfile::tempdir().expect("tempdir");
    let campaign = campaign_name("jobcomp");
    let _cleanup = CleanupGuard {
        campaign: campaign.clone(),
        dir: dir.path().to_path_buf(),
    };
    let mut config = test_config();
    config.accounting = AccountingSource::Scontrol; // a cluster without sacct
    let tasks = vec![
        launch(dir.path(), "quick", 1, &["true"]),
        launch(dir.path(), "long", 1, &["sleep", "300"]),
    ];
    let job = {
        let mut first = executor(&campaign, dir.path(), config.clone());
        let jobs = first
            .submit(batch(&campaign, "comp", "comp-b0", tasks))
            .expect("submit");
        let mut observed = Observed::default();
        let start = std::time::Instant::now();
        while !observed.started.contains_key("long") {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "long never started"
            );
            poll_once(&mut first, &mut observed);
        }
        jobs[0].clone()
        // The driver dies here.
    };
    let status = Command::new("scancel")
        .arg(format!("{}_1", job.job_id))
        .status()
        .expect("scancel");
    assert!(status.success());
    // Wait until scontrol no longer knows the array (MinJobAge, 30 s on the dev cluster).
    let start = std::time::Instant::now();
    loop {
        let output = Command::new("scontrol")
            .args(["show", "job", &job.job_id])
            .output()
            .expect("scontrol");
        if !output.status.success() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "scontrol still knows job {} after 240 s (MinJobAge too long?)",
            job.job_id
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let mut second = executor(&campaign, dir.path(), config);
    second.track(&job).expect("track");
    let mut observed = Observed::default();
    poll_until_finished(&mut second, 2, Duration::from_secs(60), &mut observed);
    assert!(observed.finished["quick"].succeeded(), "{observed:?}");
    let long = &observed.finished["long"];
    assert_eq!(long.error_class, Some(ErrorClass::Cancelled), "{long:?}");
    assert!(
        long.message.as_deref().unwrap_or("").contains("CANCELLED"),
        "{long:?}"
    );
    assert_eq!(second.call_counts().get("sacct"), None);
}

/// Whether sacct answers on this cluster (`scripts/slurm-dev.sh up` runs slurmdbd unless
/// FLOW_SLURM_DEV_ACCOUNTING=0).
fn accounting_works() -> bool {
    Command::new("sacct")
        .args([
            "--noheader",
            "--parsable2",
            "--format=JobID",
            "--starttime=now-60",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn sacct_reports_peak_memory_and_cpu_time_of_every_element() {
    require_slurm();
    assert!(
        accounting_works(),
        "sacct does not answer; scripts/slurm-dev.sh up runs slurmdbd unless FLOW_SLURM_DEV_ACCOUNTING=0"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let campaign = campaign_name("usage");
    let _cleanup = CleanupGuard {
        campaign: campaign.clone(),
        dir: dir.path().to_path_buf(),
    };
    let mut executor = executor(&campaign, dir.path(), test_config());
    // 150 MiB in one string (vec zero-fills it, so every page is touched), some CPU, then
    // held for 3 s: jobacct_gather samples each second on the dev cluster.
    const HOLD: &str =
        "my $x = ''; vec($x, (150 << 20) - 1, 8) = 1; my $i = 0; $i++ while $i < 2e7; sleep 3";
    let tasks = vec![
        launch(dir.path(), "big-0", 1, &["perl", "-e", HOLD]),
        launch(dir.path(), "big-1", 1, &["perl", "-e", HOLD]),
        launch(dir.path(), "small", 1, &["true"]),
    ];
    let mut b = batch(&campaign, "usage", "usage-b0", tasks);
    b.resources.mem_mb = 600;
    executor.submit(b).expect("submit");
    let mut observed = Observed::default();
    poll_until_finished(&mut executor, 3, Duration::from_secs(120), &mut observed);
    let truth_kib = 150.0 * 1024.0;
    for task in ["big-0", "big-1"] {
        let outcome = &observed.finished[task];
        assert!(outcome.succeeded(), "{task}: {outcome:?}");
        let usage = outcome.usage.as_ref().expect("usage from sacct");
        assert_eq!(usage.source, "sacct", "{usage:?}");
        let rss = usage.max_rss_kib.expect("MaxRSS") as f64;
        assert!(
            (0.5 * truth_kib..=3.0 * truth_kib).contains(&rss),
            "{task}: peak RSS {rss} KiB, truth {truth_kib} KiB"
        );
        let cpu = usage.cpu_s().expect("CPU time");
        assert!(cpu > 0.0, "{task}: {usage:?}");
        eprintln!("{task}: sacct MaxRSS {rss} KiB (truth {truth_kib}), CPU {cpu:.3} s");
    }
    // A success that used next to nothing still has its record.
    let small = &observed.finished["small"];
    assert!(small.succeeded(), "{small:?}");
    assert_eq!(
        small.usage.as_ref().map(|u| u.source.as_str()),
        Some("sacct")
    );
    // One sacct per polling cycle at most, never one per element.
    let polls = executor.call_counts().get("squeue").copied().unwrap_or(0);
    let saccts = executor.call_counts().get("sacct").copied().unwrap_or(0);
    assert!(saccts <= polls, "{:?}", executor.call_counts());
}

/// A QOS with `MaxSubmitJobsPerUser`, allowed to root's association, removed on drop. Only
/// jobs asking for it (`--qos`) count against its limit, so parallel tests are unaffected.
struct SubmitLimitQos {
    name: String,
}

impl SubmitLimitQos {
    fn create(max_submit: u32) -> Self {
        let name = format!("flowlimit{}", std::process::id());
        let sacctmgr = |args: &[&str]| {
            let output = Command::new("sacctmgr")
                .arg("--immediate")
                .args(args)
                .output()
                .expect("sacctmgr");
            assert!(
                output.status.success(),
                "sacctmgr {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let qos = SubmitLimitQos { name: name.clone() };
        sacctmgr(&[
            "add",
            "qos",
            &name,
            &format!("MaxSubmitJobsPerUser={max_submit}"),
        ]);
        sacctmgr(&["modify", "user", "root", "set", &format!("qos+={name}")]);
        // slurmdbd pushes the change to slurmctld; wait until it knows the QOS.
        let start = std::time::Instant::now();
        loop {
            let output = Command::new("scontrol")
                .args(["show", "assoc_mgr", "flags=qos", &format!("qos={name}")])
                .output()
                .expect("scontrol");
            if String::from_utf8_lossy(&output.stdout).contains(&format!("QOS={name}(")) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "slurmctld does not know QOS {name} (is AccountingStorageEnforce=limits,qos set? run scripts/slurm-dev.sh up)"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        qos
    }
}

impl Drop for SubmitLimitQos {
    fn drop(&mut self) {
        let qos_minus = format!("qos-={}", self.name);
        let _ = Command::new("sacctmgr")
            .args(["--immediate", "modify", "user", "root", "set", &qos_minus])
            .output();
        let _ = Command::new("sacctmgr")
            .args(["--immediate", "delete", "qos", &self.name])
            .output();
    }
}

#[test]
fn a_qos_submit_limit_holds_arrays_back_shrinks_the_window_and_says_so_once() {
    require_slurm();
    assert!(
        accounting_works(),
        "QOS limits need slurmdbd (scripts/slurm-dev.sh up)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let campaign = campaign_name("qoslimit");
    let _cleanup = CleanupGuard {
        campaign: campaign.clone(),
        dir: dir.path().to_path_buf(),
    };
    let qos = SubmitLimitQos::create(6);
    let mut config = test_config();
    config.qos = Some(qos.name.clone());
    config.max_array_size = 4;
    config.max_submitted = Some(1000); // far above what the QOS allows
    let mut executor = executor(&campaign, dir.path(), config);
    let mut observed = Observed::default();
    for b in 0..4 {
        let tasks = (0..4)
            .map(|i| launch(dir.path(), &format!("q{b}-{i}"), 1, &["sleep", "2"]))
            .collect();
        // Refusals for the limit are absorbed: no error, the arrays wait.
        executor
            .submit(batch(&campaign, "qos", &format!("qos-b{b}"), tasks))
            .expect("submit is not failed by a submit limit");
    }
    assert_eq!(
        executor.tracked_jobs().len(),
        1,
        "only 4 of 6 fit, the next 4 not"
    );
    assert_eq!(executor.learned_window(), Some(4));
    assert!(executor.submit_limit_message().is_some());
    poll_until_finished(&mut executor, 16, Duration::from_secs(180), &mut observed);
    for (task, outcome) in &observed.finished {
        assert!(outcome.succeeded(), "{task}: {outcome:?}");
    }
    // The notice is collected by the first poll (the refusal came during submit).
    assert_eq!(observed.notices.len(), 1, "{:?}", observed.notices);
    let (kind, message) = &observed.notices[0];
    assert_eq!(kind, "submit-limit");
    assert!(
        message.contains("QOSMaxSubmitJobPerUserLimit") || message.contains("job submit limit"),
        "{message}"
    );
    assert!(message.contains("from 1000 to 4"), "{message}");
    assert!(message.contains("max_submitted: 4"), "{message}");
    // With the window shrunk, sbatch is not refused again and again: 4 arrays and about
    // one refusal (another when Slurm still counts a completing job).
    let sbatch = executor.call_counts().get("sbatch").copied().unwrap_or(0);
    eprintln!("qos limit: {sbatch} sbatch calls for 4 arrays; notice: {message}");
    assert!(sbatch <= 7, "{sbatch} sbatch calls");
}
