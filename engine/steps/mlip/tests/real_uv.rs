//! build-env and md-benchmark against the real `uv`, CPython and ASE (EMT).
//! Needs `uv` on PATH and PyPI reachable: run `scripts/deps/uv.sh` first.

use std::path::{Path, PathBuf};
use std::process::Command;

use flow_mlip::env_root::COMPLETION_MARKER;
use flow_mlip::gate::Percent;
use flow_mlip::md_benchmark::{MdSettings, SystemSettings};
use flow_mlip::{
    available_environments, build_environment, list_environments, parse_model_string,
    run_md_benchmark, task_environment, BenchmarkRun, BuildAction, BuildOptions, EnvRoot,
    EnvironmentFile, GateDecision, GateSettings, MdBenchmarkSettings, Verdict,
};

fn require_uv() {
    let ok = Command::new("uv")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "`uv` is not on PATH: these tests build real environments; run `bash scripts/deps/uv.sh` first");
}

fn recipe(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../recipes/environments")
        .join(format!("{name}.py"))
}

fn env_dirs(root: &EnvRoot) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.envs_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn files_named_lock(root: &EnvRoot) -> usize {
    std::fs::read_dir(root.envs_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".lock")
        })
        .count()
}

#[test]
fn emt_env_builds_is_reused_and_runs_an_md_benchmark_with_a_gate() {
    require_uv();
    let tmp = tempfile::tempdir().unwrap();
    let root = EnvRoot::new(tmp.path().join("root"));
    let file = EnvironmentFile::load(&recipe("emt")).unwrap();
    let options = BuildOptions::default();

    let first = build_environment(&root, &file, &options).unwrap();
    assert_eq!(first.action, BuildAction::Built);
    assert!(first.env_dir.join(COMPLETION_MARKER).is_file());
    assert!(first.env_dir.starts_with(root.envs_dir()));
    assert!(
        root.environment_file("emt").is_file(),
        "the environment file is copied into the root"
    );
    assert!(
        root.uv_cache().read_dir().unwrap().next().is_some(),
        "uv used the root's cache"
    );
    let ase = Command::new(first.python())
        .args(["-c", "import ase; print(ase.__version__)"])
        .output()
        .unwrap();
    assert!(
        ase.status.success(),
        "{}",
        String::from_utf8_lossy(&ase.stderr)
    );

    let second = build_environment(&root, &file, &options).unwrap();
    assert_eq!(second.action, BuildAction::Reused, "same hash: no rebuild");
    assert_eq!(second.env_dir, first.env_dir);
    assert_eq!(second.marker.built_unix, first.marker.built_unix);
    assert!(second.seconds < first.seconds);
    eprintln!(
        "emt env: built in {:.2} s, reused in {:.3} s",
        first.seconds, second.seconds
    );

    // A half-built env (no marker) is never used: it is rebuilt.
    std::fs::remove_file(first.env_dir.join(COMPLETION_MARKER)).unwrap();
    let rebuilt = build_environment(&root, &file, &options).unwrap();
    assert_eq!(rebuilt.action, BuildAction::Built);
    assert_eq!(env_dirs(&root), vec![first.env_dir.clone()]);

    let (located, marker) = flow_mlip::locate_built_environment(&root, "emt").unwrap();
    assert_eq!(located, rebuilt.env_dir);
    assert_eq!(marker.hash, rebuilt.hash.to_string());
    assert!(matches!(
        flow_mlip::locate_built_environment(&root, "mace"),
        Err(flow_mlip::MlipError::NotBuilt { .. })
    ));

    let listing = list_environments(&root);
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].builds.len(), 1);
    assert!(listing[0].builds[0].1.is_some());

    // md-benchmark: model string -> env, then the driver with the env's python.
    let spec = parse_model_string("emt", &available_environments(&root)).unwrap();
    assert_eq!(spec.environment, "emt");
    let settings = MdBenchmarkSettings {
        model: "emt".into(),
        system: SystemSettings {
            element: "Cu".into(),
            atoms: 108,
        },
        md: MdSettings {
            steps: 60,
            warmup_steps: 5,
            timestep_fs: 1.0,
            temperature_k: 300.0,
        },
        repeats: 3,
        device: "cpu".into(),
        seed: 7,
        // Thresholds that no overhead can meet: the gate must stop.
        gate: GateSettings {
            pass_below: Percent(-1000.0),
            marginal_below: Percent(-1000.0),
            ..GateSettings::default()
        },
    };
    let env = task_environment(
        &root,
        &rebuilt.env_dir,
        std::env::var("PATH").ok().as_deref(),
    );
    let work = tmp.path().join("task");
    let env_file = rebuilt.env_dir.join(flow_mlip::env_root::ENVIRONMENT_COPY);
    let outcome = run_md_benchmark(&BenchmarkRun {
        python: &rebuilt.python(),
        environment_file: &env_file,
        model: &spec.model,
        device: "cpu",
        settings: &settings,
        work_dir: &work,
        env: &env,
    })
    .unwrap();
    eprintln!("{}", outcome.summary());
    let r = &outcome.result;
    assert_eq!(r.atoms, 108);
    assert_eq!(r.steps, 60);
    assert_eq!((r.direct_s.len(), r.ipc_s.len()), (3, 3));
    assert_eq!(r.calculator, "EMT");
    assert!(r.direct_median_s > 0.0 && r.ipc_median_s > 0.0);
    // Same seed, same forces: both modes follow the same trajectory up to float noise.
    assert!(
        (r.final_energy_direct - r.final_energy_ipc).abs() < 1e-4,
        "{r:?}"
    );
    assert!(
        r.energy_drift_direct < 0.01 && r.energy_drift_ipc < 0.01,
        "NVE energy drift too large: {r:?}"
    );
    assert_eq!(outcome.verdict, Verdict::Fail);
    match &outcome.decision {
        GateDecision::Stop(message) => {
            assert!(
                message.starts_with("blocked by gate: md-benchmark FAIL"),
                "{message}"
            );
            assert!(message.contains("108 atoms, 60 steps"), "{message}");
        }
        other => panic!("a forced FAIL must stop downstream steps, got {other:?}"),
    }
    assert!(work.join("md-benchmark.json").is_file());
}

#[test]
fn two_concurrent_builds_produce_one_env() {
    require_uv();
    let tmp = tempfile::tempdir().unwrap();
    let root = EnvRoot::new(tmp.path().join("root"));
    let file = EnvironmentFile::load(&recipe("emt")).unwrap();
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| build_environment(&root, &file, &BuildOptions::default())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let mut actions: Vec<BuildAction> = results.iter().map(|r| r.action).collect();
    actions.sort_by_key(|a| *a == BuildAction::Reused);
    assert_eq!(actions, vec![BuildAction::Built, BuildAction::Reused]);
    assert_eq!(results[0].env_dir, results[1].env_dir);
    assert_eq!(env_dirs(&root).len(), 1);
    assert_eq!(files_named_lock(&root), 0, "the lock is released");
}

#[test]
fn an_unknown_model_lists_the_root_environments() {
    let tmp = tempfile::tempdir().unwrap();
    let root = EnvRoot::new(tmp.path());
    std::fs::create_dir_all(root.environments_dir()).unwrap();
    for name in ["emt", "chgnet"] {
        std::fs::copy(recipe(name), root.environment_file(name)).unwrap();
    }
    let err = parse_model_string("mace-medium", &available_environments(&root)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model `mace-medium` names no known environment; available: chgnet, emt"
    );
}

#[test]
fn every_recipe_environment_file_parses() {
    for name in ["emt", "chgnet", "mace"] {
        let f = EnvironmentFile::load(&recipe(name)).unwrap();
        assert_eq!(f.name, name);
        assert_eq!(f.minimum_python.version.to_string(), "3.10");
        assert!(
            f.metadata.dependencies.iter().any(|d| d.starts_with("ase")),
            "{name}"
        );
    }
}

#[test]
fn a_python_the_machine_lacks_is_a_clear_error() {
    require_uv();
    let tmp = tempfile::tempdir().unwrap();
    let root = EnvRoot::new(tmp.path().join("root"));
    let path = tmp.path().join("future.py");
    std::fs::write(&path, "# /// script\n# requires-python = \">=3.99\"\n# dependencies = []\n# ///\ndef setup(model, device):\n    pass\n").unwrap();
    let file = EnvironmentFile::load(&path).unwrap();
    let err = build_environment(&root, &file, &BuildOptions::default()).unwrap_err();
    assert!(
        matches!(err, flow_mlip::MlipError::PythonNotFound { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("no Python 3.99 (or >=3.99) interpreter was found"),
        "{text}"
    );
    assert_eq!(err.class(), flow_dsl::error_class::ErrorClass::LaunchFailed);
    assert!(flow_mlip::available_environments(&root).contains(&"future".to_string()));
}

#[test]
fn uv_can_be_bootstrapped_into_the_root_and_doctor_sees_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = EnvRoot::new(tmp.path().join("root"));
    let uv = flow_mlip::bootstrap_uv(&root, "python3").unwrap();
    assert_eq!(uv, root.bootstrapped_uv());
    let out = Command::new(&uv).arg("--version").output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("uv "));
    assert_eq!(
        flow_mlip::find_uv(&root).unwrap().file_name(),
        uv.file_name()
    );
    // Idempotent: a second bootstrap returns the same uv without reinstalling.
    assert_eq!(
        flow_mlip::bootstrap_uv(&root, "/nonexistent/python3").unwrap(),
        uv
    );

    let checks = flow_mlip::doctor(&root);
    let status = |n: &str| checks.iter().find(|c| c.name == n).unwrap().status;
    use flow_mlip::env_catalog::CheckStatus;
    assert_eq!(status("uv"), CheckStatus::Ok);
    assert_eq!(status("root writable"), CheckStatus::Ok);
    assert_eq!(
        status("python interpreters"),
        CheckStatus::Ok,
        "{}",
        flow_mlip::render_doctor(&checks)
    );
}

/// Set in the child processes of `two_processes_building_at_once_produce_one_env`.
const CHILD_ROOT_VAR: &str = "FLOW_MLIP_TEST_CHILD_BUILD_ROOT";

#[test]
fn two_processes_building_at_once_produce_one_env() {
    if let Ok(root) = std::env::var(CHILD_ROOT_VAR) {
        // Child: one builder process, as a Slurm array task on another node would be.
        let file = EnvironmentFile::load(&recipe("emt")).unwrap();
        let outcome =
            build_environment(&EnvRoot::new(root), &file, &BuildOptions::default()).unwrap();
        println!(
            "CHILD-RESULT {:?} {}",
            outcome.action,
            outcome.env_dir.display()
        );
        return;
    }
    require_uv();
    let tmp = tempfile::tempdir().unwrap();
    let root = EnvRoot::new(tmp.path().join("root"));
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "two_processes_building_at_once_produce_one_env",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ROOT_VAR, root.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut results: Vec<String> = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // libtest may print `test NAME ... ` on the same line before our output.
        let start = stdout
            .find("CHILD-RESULT ")
            .unwrap_or_else(|| panic!("no result from the child:\n{stdout}"));
        results.push(
            stdout[start..]
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        );
    }
    results.sort();
    assert!(results[0].starts_with("CHILD-RESULT Built "), "{results:?}");
    assert!(
        results[1].starts_with("CHILD-RESULT Reused "),
        "{results:?}"
    );
    assert_eq!(
        results[0]["CHILD-RESULT Built ".len()..],
        results[1]["CHILD-RESULT Reused ".len()..]
    );
    assert_eq!(env_dirs(&root).len(), 1);
    assert_eq!(files_named_lock(&root), 0, "the lock is released");
}
