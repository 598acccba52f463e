//! The 40,000-task campaign shape, planned without Slurm: arrays of 1,000 give 40 sbatch
//! scripts, and the manifests are one line per task.

use flow_dsl::machine_settings::SlurmSettings;
use flow_executors::slurm::{SlurmExecutor, SlurmPaths};
use flow_executors::{Batch, Resources, TaskLaunch};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[test]
fn forty_thousand_tasks_plan_as_forty_arrays() {
    let root = PathBuf::from("/scratch/campaigns/v1.0_mocks");
    let tasks: Vec<TaskLaunch> = (0..40_000)
        .map(|i| {
            let dir = root.join(format!("catalogs/r{:04}", i / 20));
            TaskLaunch {
                task_id: format!("{i:040x}"),
                attempt: 1,
                argv: vec![
                    "python".into(),
                    "scripts/generate_single_mock.py".into(),
                    "--real".into(),
                    (i / 20).to_string(),
                    "--z".into(),
                    format!("{:.3}", 0.5 + 0.1 * f64::from(i % 20)),
                ],
                env: vec![("FLOW_SEED".into(), i.to_string())],
                workdir: root.clone(),
                stdout_path: root.join(format!("logs/mocks/{i}.out")),
                stderr_path: root.join(format!("logs/mocks/{i}.err")),
                result_path: dir.join(format!("{i}.result.json")),
                writes_result: false,
                status_by_trap: false,
                timeout: Some(Duration::from_secs(2 * 3600)),
            }
        })
        .collect();
    let config = SlurmSettings {
        max_submitted: Some(5000),
        ..SlurmSettings::default()
    };
    let executor = SlurmExecutor::new(
        "v1.0_mocks",
        config,
        SlurmPaths {
            logs_dir: root.join("logs"),
            flow_binary: PathBuf::from("/opt/flow/bin/flow"),
        },
    )
    .expect("executor");
    let batch = Batch {
        campaign: "v1.0_mocks".into(),
        step: "mocks".into(),
        batch_key: "mocks".into(),
        resources: Resources {
            cpus: 1,
            mem_mb: 4000,
            time_limit: Some(Duration::from_secs(2 * 3600)),
            partition: Some("cpu".into()),
            ..Resources::default()
        },
        max_running: Some(200),
        tasks,
    };
    let start = Instant::now();
    let previews = executor.preview(&batch).expect("preview");
    eprintln!(
        "planned 40,000 tasks into {} arrays in {:?}",
        previews.len(),
        start.elapsed()
    );
    assert_eq!(previews.len(), 40);
    assert!(previews.iter().all(|p| p.tasks.len() == 1000));
    assert!(previews[39].script.contains("#SBATCH --array=0-999%200\n"));
    let mut keys: Vec<_> = previews.iter().map(|p| p.batch_key.clone()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 40);
}
