//! The Kubernetes executor on its own against the in-process API double: idempotent
//! submission (a create answered 409 adopts the Job that exists), one Job per batch content,
//! events reported once per attempt. Whole campaigns through the `flow` binary are in
//! `tests/kubernetes_campaign.rs`.

use flow_dsl::machine_settings::KubernetesSettings;
use flow_executors::kubernetes::{KubernetesCampaign, KubernetesExecutor};
use flow_executors::{Batch, Executor, ExecutorEvent, Resources, TaskLaunch};
use flow_kube_double::{ApiDouble, Options};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const NS: &str = "exec-test";
const JOBS: &str = "/apis/batch/v1/namespaces/exec-test/jobs";

fn launch(dir: &Path, i: usize, attempt: u32) -> TaskLaunch {
    TaskLaunch {
        task_id: format!("t{i}"),
        attempt,
        argv: vec!["true".into()],
        env: vec![("FLOW_STEP".into(), "work".into())],
        workdir: dir.to_path_buf(),
        stdout_path: dir.join(format!("t{i}.out")),
        stderr_path: dir.join(format!("t{i}.err")),
        result_path: dir.join(format!("t{i}.json")),
        writes_result: false,
        status_by_trap: false,
        timeout: None,
    }
}

fn batch(dir: &Path, attempt: u32) -> Batch {
    Batch {
        campaign: "v1_exec".into(),
        step: "work".into(),
        batch_key: "work-b00000".into(),
        resources: Resources {
            cpus: 1,
            ..Resources::default()
        },
        max_running: None,
        tasks: (0..3).map(|i| launch(dir, i, attempt)).collect(),
    }
}

/// A `flow` stand-in for the pods: exits 0 (the pod's result then comes from its status).
fn fake_flow(dir: &Path) -> String {
    let path = dir.join("fake-flow");
    // Written once: rewriting it while a pod executes it would fail that pod (ETXTBSY).
    if !path.exists() {
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path.display().to_string()
}

fn executor(dir: &Path) -> KubernetesExecutor {
    executor_with_manifests(dir, &dir.join("manifests"))
}

fn executor_with_manifests(dir: &Path, manifest_dir: &Path) -> KubernetesExecutor {
    let settings = KubernetesSettings::from_json(&json!({
        "namespace": NS,
        "image": "registry.invalid/flow:test",
        "flow_binary": fake_flow(dir),
    }))
    .unwrap();
    KubernetesExecutor::connect(KubernetesCampaign {
        campaign_tag: "v1_exec".into(),
        settings,
        manifest_dir: manifest_dir.to_path_buf(),
        step_job_types: Default::default(),
    })
    .expect("connects through KUBECONFIG")
}

/// Poll until `n` events of finished attempts arrived (or 30 s passed).
fn finished_events(ex: &mut KubernetesExecutor, n: usize) -> Vec<(String, u32, bool)> {
    let start = Instant::now();
    let mut done = Vec::new();
    while done.len() < n && start.elapsed() < Duration::from_secs(30) {
        for event in ex.poll(Duration::from_millis(200)).unwrap() {
            if let ExecutorEvent::Finished {
                task_id,
                attempt,
                outcome,
            } = event
            {
                done.push((task_id, attempt, outcome.succeeded()));
            }
        }
    }
    // Anything more would be a duplicate report.
    for event in ex.poll(Duration::from_millis(500)).unwrap() {
        if let ExecutorEvent::Finished {
            task_id, attempt, ..
        } = event
        {
            done.push((task_id, attempt, true));
        }
    }
    done.sort();
    done
}

#[test]
fn submission_is_idempotent_and_a_409_adopts_the_existing_job() {
    let double = ApiDouble::start(Options {
        namespace: NS.into(),
        run_pods: false,
        ..Options::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    double.write_kubeconfig(&d.join("kubeconfig")).unwrap();
    // The only test in this binary: no other thread reads the environment meanwhile.
    std::env::set_var("KUBECONFIG", d.join("kubeconfig"));

    let mut first = executor(d);
    let refs = first.submit(batch(d, 1)).unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(first.in_flight(), 3);
    // A second driver (as after a crash between the create and its bookkeeping) submits
    // the same batch: the create answers 409 and the Job is adopted, not duplicated.
    let mut second = executor(d);
    let again = second.submit(batch(d, 1)).unwrap();
    assert_eq!(again, refs, "the same Job");
    assert_eq!(double.count("POST", JOBS), 2);
    assert_eq!(double.jobs(NS).len(), 1);

    // The same batch key with other attempts is another batch: another Job.
    let retry = second.submit(batch(d, 2)).unwrap();
    assert_ne!(retry[0].job_id, refs[0].job_id);
    assert_eq!(double.jobs(NS).len(), 2);

    // A failing create is retried (kube-rs alone does not retry a 500).
    double.inject_failure("POST", JOBS, 500, 2);
    let mut third = executor(d);
    let mut other = batch(d, 3);
    other.batch_key = "work-b00001".into();
    third.submit(other).unwrap();
    assert_eq!(double.jobs(NS).len(), 3);
    assert_eq!(
        double.count("POST", JOBS),
        3 + 3,
        "two refused, then created"
    );

    // A restarted driver adopts all three Jobs; cancelling reports every attempt of them
    // as cancelled, once, and deletes the Jobs.
    drop((first, second, third));
    let mut restarted = executor(d);
    let adopted = restarted.list_jobs().unwrap();
    assert_eq!(adopted.len(), 3);
    assert_eq!(restarted.in_flight(), 9);
    restarted.cancel(&[]).unwrap();
    let cancelled = finished_events(&mut restarted, 9);
    assert_eq!(cancelled.len(), 9, "{cancelled:?}");
    assert!(cancelled.iter().all(|(_, _, ok)| !ok));
    assert_eq!(restarted.in_flight(), 0);
    assert!(double.wait_until(Duration::from_secs(10), |d| d.jobs(NS).is_empty()));
    drop(double);

    // With pods that run: the adopting driver hears of each attempt exactly once.
    let double = ApiDouble::start(Options {
        namespace: NS.into(),
        ..Options::default()
    })
    .unwrap();
    double.write_kubeconfig(&d.join("kubeconfig")).unwrap();
    let mut creator = executor(d);
    creator.submit(batch(d, 1)).unwrap();
    let mut adopter = executor(d);
    adopter.submit(batch(d, 1)).unwrap();
    assert_eq!(double.jobs(NS).len(), 1);
    let done = finished_events(&mut adopter, 3);
    assert_eq!(
        done,
        vec![
            ("t0".to_string(), 1, true),
            ("t1".to_string(), 1, true),
            ("t2".to_string(), 1, true)
        ]
    );
    assert_eq!(adopter.in_flight(), 0);

    // A campaign of the same name and version in another directory shares the label but
    // neither adopts nor deletes these Jobs.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut stranger = executor_with_manifests(d, &elsewhere.path().join("manifests"));
    assert!(stranger.list_jobs().unwrap().is_empty());
    assert_eq!(stranger.delete_campaign_jobs().unwrap(), 0);
    assert_eq!(double.jobs(NS).len(), 1);
    // A Job whose manifest is gone is not adopted (a warning), and the run is not refused.
    std::fs::remove_dir_all(d.join("manifests")).unwrap();
    let mut amnesiac = executor(d);
    assert!(amnesiac.list_jobs().unwrap().is_empty());
    assert_eq!(adopter.delete_campaign_jobs().unwrap(), 1);
}
