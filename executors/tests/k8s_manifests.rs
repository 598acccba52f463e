//! Kubernetes Job manifests rendered by `flow_executors::kubernetes` validated against the
//! official Kubernetes JSON schemas (strict: unknown fields rejected) for two versions, with
//! the real `kubernetes-validate` (PyPI; `scripts/deps/k8s.sh` installs it). No API server
//! runs here: this checks the documents, not what a cluster does with them.

use flow_dsl::machine_settings::kubernetes::{EnvFromSource, SecretEnvVar};
use flow_dsl::machine_settings::KubernetesSettings;
use flow_executors::kubernetes::names::{is_dns1123_label, is_valid_label_value};
use flow_executors::kubernetes::{render_batch, ManifestError};
use flow_executors::{Batch, Resources, TaskLaunch};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Kubernetes versions every manifest must validate against.
const VERSIONS: [&str; 2] = ["1.29.0", "1.33.0"];

const MANIFEST: &str = "/campaigns/v1.0_calib/metadata/manifests/mocks-b0000.jsonl";
const FLOW: &str = "/usr/local/bin/flow";

fn launch(i: usize, timeout: Option<Duration>) -> TaskLaunch {
    TaskLaunch {
        task_id: format!("t{i:04}"),
        attempt: 1,
        argv: vec!["python".into(), "gen.py".into(), format!("--real={i}")],
        env: vec![
            ("FLOW_TASK_ID".into(), format!("t{i:04}")),
            ("FLOW_SEED".into(), (1000 + i).to_string()),
            ("FLOW_CAMPAIGN_DIR".into(), "/campaigns/v1.0_calib".into()),
            ("FLOW_STEP".into(), "mocks".into()),
        ],
        workdir: PathBuf::from("/campaigns/v1.0_calib"),
        stdout_path: PathBuf::from(format!("/campaigns/v1.0_calib/logs/t{i}.out")),
        stderr_path: PathBuf::from(format!("/campaigns/v1.0_calib/logs/t{i}.err")),
        result_path: PathBuf::from(format!("/campaigns/v1.0_calib/metadata/r/t{i}.json")),
        writes_result: false,
        status_by_trap: false,
        timeout,
    }
}

fn small_batch() -> Batch {
    Batch {
        campaign: "v1.0_calib".into(),
        step: "mocks".into(),
        batch_key: "mocks-b0000".into(),
        resources: Resources {
            cpus: 1,
            mem_mb: 2048,
            time_limit: Some(Duration::from_secs(3600)),
            ..Resources::default()
        },
        max_running: Some(2),
        tasks: (0..5)
            .map(|i| launch(i, Some(Duration::from_secs(600))))
            .collect(),
    }
}

fn gpu_batch() -> Batch {
    Batch {
        campaign: "v1.0_calib".into(),
        step: "md_benchmark".into(),
        batch_key: "md_benchmark-b0000".into(),
        resources: Resources {
            cpus: 4,
            gpus: 1,
            mem_mb: 16384,
            nodes: Some(1),
            tasks_per_node: Some(2),
            time_limit: Some(Duration::from_secs(7200)),
            ..Resources::default()
        },
        max_running: None,
        tasks: (0..3).map(|i| launch(i, None)).collect(),
    }
}

/// The `kubernetes:` block of a machine recipe file in `recipes/machines/`, read with the DSL's
/// own loader (which also validates the file against `schemas/machine.schema.json`).
fn recipe_config(file: &str) -> KubernetesSettings {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../recipes/machines")
        .join(file);
    let machine = flow_dsl::load::load_machine_recipe(&path.display().to_string())
        .unwrap_or_else(|d| panic!("{}: {d:?}", path.display()));
    machine
        .kubernetes
        .unwrap_or_else(|| panic!("{}: no kubernetes block", path.display()))
}

/// `recipes/machines/generic-k8s.yaml`, plus secret references.
fn generic_config() -> KubernetesSettings {
    let mut config = recipe_config("generic-k8s.yaml");
    config.env_from = vec![EnvFromSource::ConfigMap("flow-site-settings".into())];
    config.secret_env = vec![SecretEnvVar {
        name: "WANDB_API_KEY".into(),
        secret: "wandb".into(),
        key: "api-key".into(),
    }];
    config
}

/// `recipes/machines/aks-gpu.yaml`: a spot A100 node pool on AKS.
fn aks_gpu_config() -> KubernetesSettings {
    recipe_config("aks-gpu.yaml")
}

fn rendered() -> Vec<(&'static str, Value)> {
    let small = render_batch(
        "v1.0_calib",
        &small_batch(),
        Some("cpu_intensive"),
        &generic_config(),
        MANIFEST,
        FLOW,
    )
    .expect("small batch renders");
    let gpu = render_batch(
        "v1.0_calib",
        &gpu_batch(),
        Some("gpu_intensive"),
        &aks_gpu_config(),
        MANIFEST,
        FLOW,
    )
    .expect("gpu batch renders");
    assert_eq!(small.len(), 1);
    assert_eq!(gpu.len(), 1);
    vec![("small", small[0].clone()), ("gpu", gpu[0].clone())]
}

fn write_json(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(value).expect("serialize"))
        .expect("write manifest");
    path
}

/// Run `kubernetes-validate --strict -k VERSION FILES...`; (success, combined output).
/// Panics with an installation hint when the tool is absent.
fn kubernetes_validate(version: &str, files: &[PathBuf]) -> (bool, String) {
    let output = Command::new("kubernetes-validate")
        .args(["--strict", "-k", version])
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kubernetes-validate could not be run ({e}); it is required for these tests: \
                 run `scripts/deps/k8s.sh` (python3 -m pip install kubernetes-validate)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn rendered_jobs_validate_strictly_against_official_schemas() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files: Vec<PathBuf> = rendered()
        .iter()
        .map(|(name, job)| write_json(dir.path(), name, job))
        .collect();
    for version in VERSIONS {
        let (ok, output) = kubernetes_validate(version, &files);
        assert!(
            ok,
            "Kubernetes {version} rejected a rendered Job:\n{output}"
        );
        // One "... passed for resource job/..." line per document: a file the tool skipped would not count.
        let valid = output
            .lines()
            .filter(|l| l.contains("passed for resource job/"))
            .count();
        assert_eq!(valid, files.len(), "Kubernetes {version}:\n{output}");
    }
}

#[test]
fn misspelt_field_fails_validation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, mut job) = rendered().remove(0);
    let spec = job["spec"].as_object_mut().expect("spec object");
    let completions = spec.remove("completions").expect("completions");
    spec.insert("completionz".into(), completions);
    let file = write_json(dir.path(), "misspelt", &job);
    for version in VERSIONS {
        let (ok, output) = kubernetes_validate(version, std::slice::from_ref(&file));
        assert!(
            !ok,
            "Kubernetes {version} accepted `completionz`:\n{output}"
        );
        assert!(
            output.contains("completionz"),
            "Kubernetes {version}: the error does not name the field:\n{output}"
        );
    }
}

#[test]
fn misspelt_pod_template_field_fails_validation() {
    // activeDeadlineSeconds belongs on the pod template; a typo in its name there must fail.
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, mut job) = rendered().remove(0);
    let pod = job["spec"]["template"]["spec"]
        .as_object_mut()
        .expect("pod spec");
    let deadline = pod.remove("activeDeadlineSeconds").expect("deadline set");
    pod.insert("activeDeadlineSecond".into(), deadline);
    let file = write_json(dir.path(), "pod-typo", &job);
    let (ok, output) = kubernetes_validate(VERSIONS[1], &[file]);
    assert!(!ok, "accepted a misspelt pod field:\n{output}");
}

#[test]
fn indexed_job_shape() {
    for (name, job) in rendered() {
        let spec = &job["spec"];
        assert_eq!(job["apiVersion"], "batch/v1", "{name}");
        assert_eq!(spec["completionMode"], "Indexed", "{name}");
        assert_eq!(spec["backoffLimitPerIndex"], 0, "{name}");
        assert!(
            spec.get("activeDeadlineSeconds").is_none(),
            "{name}: never on the Job"
        );
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never", "{name}");
        let command = pod["containers"][0]["command"].as_array().expect("command");
        assert_eq!(
            command,
            &vec![
                json!(FLOW),
                json!("task"),
                json!("run-manifest"),
                json!(MANIFEST),
                json!("$(JOB_COMPLETION_INDEX)")
            ],
            "{name}"
        );
        let rules = spec["podFailurePolicy"]["rules"].as_array().expect("rules");
        assert_eq!(rules[0]["action"], "Ignore");
        assert_eq!(rules[0]["onPodConditions"][0]["type"], "DisruptionTarget");
        assert_eq!(rules[1]["action"], "FailIndex");
    }
    let jobs = rendered();
    let small = &jobs[0].1["spec"];
    assert_eq!(small["completions"], 5);
    assert_eq!(small["parallelism"], 2, "max_running caps parallelism");
    assert_eq!(small["maxFailedIndexes"], 5);
    assert_eq!(
        small["template"]["spec"]["activeDeadlineSeconds"], 660,
        "task timeout 600 s + 60 s grace"
    );
    let gpu = &jobs[1].1["spec"];
    assert_eq!(gpu["completions"], 3);
    assert_eq!(gpu["parallelism"], 3, "no max_running: all at once");
    assert_eq!(gpu["ttlSecondsAfterFinished"], 3600);
    assert_eq!(
        gpu["template"]["spec"]["activeDeadlineSeconds"], 7200,
        "no task timeout: the time limit"
    );
}

#[test]
fn resources_are_requests_equal_to_limits() {
    let jobs = rendered();
    let small = &jobs[0].1["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(small["requests"], json!({"cpu": "1", "memory": "2048Mi"}));
    assert_eq!(small["requests"], small["limits"]);
    let gpu = &jobs[1].1["spec"]["template"]["spec"]["containers"][0]["resources"];
    // 4 cpus per rank × 2 ranks; GPUs and memory per node × 1 node.
    assert_eq!(
        gpu["limits"],
        json!({"cpu": "8", "memory": "16384Mi", "nvidia.com/gpu": "1"})
    );
    assert_eq!(gpu["requests"], gpu["limits"]);
    let pod = &jobs[1].1["spec"]["template"]["spec"];
    assert_eq!(
        pod["nodeSelector"]["kubernetes.azure.com/agentpool"],
        "gpunp"
    );
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["tolerations"].as_array().map(Vec::len), Some(2));
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "acr-pull"}]));
}

#[test]
fn pods_meet_the_restricted_pod_security_standard() {
    for (name, job) in rendered() {
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        for container in pod["containers"].as_array().expect("containers") {
            let sc = &container["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{name}");
            assert_eq!(sc["runAsNonRoot"], true, "{name}");
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
            assert!(sc.get("privileged").is_none() || sc["privileged"] == false);
        }
        assert!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());
        for volume in pod["volumes"].as_array().expect("volumes") {
            assert!(volume.get("hostPath").is_none(), "{name}");
            assert!(volume.get("persistentVolumeClaim").is_some(), "{name}");
        }
    }
}

#[test]
fn names_and_labels_are_valid_and_deterministic() {
    let first = rendered();
    let second = rendered();
    for ((name, a), (_, b)) in first.iter().zip(&second) {
        assert_eq!(a, b, "{name}: rendering is deterministic");
        let job_name = a["metadata"]["name"].as_str().expect("name");
        assert!(
            is_dns1123_label(job_name) && job_name.len() <= 63,
            "{job_name}"
        );
        for labels in [
            &a["metadata"]["labels"],
            &a["spec"]["template"]["metadata"]["labels"],
        ] {
            for key in ["flow/campaign", "flow/step", "flow/batch"] {
                let value = labels[key].as_str().expect("label");
                assert!(is_valid_label_value(value), "{key}={value:?}");
            }
        }
    }
    // md_benchmark is a valid label value as written; the job name lowers it.
    assert_eq!(
        first[1].1["metadata"]["labels"]["flow/step"],
        "md_benchmark"
    );
    assert!(first[1].1["metadata"]["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("flow-md-benchmark-")));
    assert_ne!(
        first[0].1["metadata"]["name"],
        first[1].1["metadata"]["name"]
    );

    let mut awkward = small_batch();
    awkward.step = "Step with spaces/and:colons".into();
    awkward.batch_key = "b".repeat(80);
    let job = render_batch(
        "v1.0 my campaign",
        &awkward,
        None,
        &generic_config(),
        MANIFEST,
        FLOW,
    )
    .expect("renders")
    .remove(0);
    for key in ["flow/campaign", "flow/step", "flow/batch"] {
        let value = job["metadata"]["labels"][key].as_str().expect("label");
        assert!(is_valid_label_value(value), "{key}={value:?}");
    }
    // The full values are kept in annotations.
    assert_eq!(
        job["metadata"]["annotations"]["flow/step"],
        "Step with spaces/and:colons"
    );
}

#[test]
fn environment_holds_shared_flow_vars_and_secret_references_only() {
    let jobs = rendered();
    let container = &jobs[0].1["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_array().expect("env");
    let names: Vec<&str> = env.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(
        names,
        vec![
            "JOB_COMPLETION_INDEX",
            "FLOW_MANIFEST",
            "FLOW_TERMINATION_MESSAGE",
            "FLOW_CAMPAIGN_DIR",
            "FLOW_STEP",
            "WANDB_API_KEY"
        ],
        "per-task FLOW_TASK_ID/FLOW_SEED stay in the manifest"
    );
    assert_eq!(
        env[0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    assert_eq!(env[1]["value"], MANIFEST);
    // `flow task` writes its result where the kubelet reads the termination message.
    assert_eq!(env[2]["value"], container["terminationMessagePath"]);
    assert_eq!(
        container["terminationMessagePolicy"],
        "FallbackToLogsOnError"
    );
    assert_eq!(
        env[5],
        json!({"name": "WANDB_API_KEY",
               "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "api-key"}}})
    );
    assert_eq!(
        container["envFrom"],
        json!([{"configMapRef": {"name": "flow-site-settings"}}])
    );
    let gpu_container = &jobs[1].1["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        gpu_container["envFrom"],
        json!([{"secretRef": {"name": "hf-token"}}])
    );
}

#[test]
fn no_secret_value_reaches_a_manifest() {
    // A value that is only ever in a task's private environment (not a FLOW_* var shared by
    // all tasks) must not appear anywhere in the rendered documents.
    let secret = "s3cr3t-value-that-must-not-leak";
    let mut batch = small_batch();
    for task in &mut batch.tasks {
        task.env
            .push(("AWS_SECRET_ACCESS_KEY".into(), secret.into()));
    }
    batch.tasks[0]
        .env
        .push(("FLOW_PRIVATE_TOKEN".into(), secret.into()));
    let text = serde_json::to_string(
        &render_batch(
            "v1.0_calib",
            &batch,
            None,
            &generic_config(),
            MANIFEST,
            FLOW,
        )
        .expect("renders"),
    )
    .expect("serialize");
    assert!(!text.contains(secret), "secret value in manifest: {text}");
    assert!(!text.contains("AWS_SECRET_ACCESS_KEY"));
    // Secrets are referenced, by name only.
    assert!(text.contains("secretKeyRef"));
    assert!(!text.contains("\"data\"") && !text.contains("stringData"));
}

#[test]
fn dollar_signs_stay_literal() {
    let mut batch = small_batch();
    for task in &mut batch.tasks {
        task.env.push(("FLOW_PATTERN".into(), "a$(HOME)b".into()));
    }
    let job = render_batch("c", &batch, None, &generic_config(), "/m/$(x).jsonl", FLOW)
        .expect("renders")
        .remove(0);
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][3], "/m/$$(x).jsonl");
    let env = container["env"].as_array().expect("env");
    assert!(env
        .iter()
        .any(|e| e["name"] == "FLOW_PATTERN" && e["value"] == "a$$(HOME)b"));
}

#[test]
fn invalid_inputs_are_errors_naming_the_value() {
    let mut empty = small_batch();
    empty.tasks.clear();
    assert!(matches!(
        render_batch("c", &empty, None, &generic_config(), MANIFEST, FLOW),
        Err(ManifestError::EmptyBatch { .. })
    ));
    let mut config = generic_config();
    config.namespace = "Flow_NS".into();
    let err = render_batch("c", &small_batch(), None, &config, MANIFEST, FLOW).unwrap_err();
    assert!(err.to_string().contains("Flow_NS"), "{err}");
    let err = render_batch(
        "c",
        &small_batch(),
        None,
        &generic_config(),
        "rel/m.jsonl",
        FLOW,
    )
    .unwrap_err();
    assert!(matches!(err, ManifestError::RelativePath { .. }), "{err}");
    let mut bad_env = small_batch();
    for task in &mut bad_env.tasks {
        task.env.push(("FLOW_BAD-NAME".into(), "x".into()));
    }
    let err = render_batch("c", &bad_env, None, &generic_config(), MANIFEST, FLOW).unwrap_err();
    assert!(err.to_string().contains("FLOW_BAD-NAME"), "{err}");
}

#[test]
fn older_clusters_get_jobs_without_per_index_retries_that_their_schema_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    // (server version, has podFailurePolicy)
    for (version, schema, failure_policy) in
        [("1.27", "1.27.0", true), ("v1.25.16", "1.25.0", false)]
    {
        let mut config = generic_config();
        config.server_version = Some(version.into());
        assert!(!config.per_index_backoff());
        let job = render_batch("v1.0_calib", &small_batch(), None, &config, MANIFEST, FLOW)
            .expect("renders")
            .remove(0);
        let spec = &job["spec"];
        assert!(spec.get("backoffLimitPerIndex").is_none(), "{version}");
        assert!(spec.get("maxFailedIndexes").is_none(), "{version}");
        assert_eq!(spec["backoffLimit"], i64::from(i32::MAX), "{version}");
        match spec.get("podFailurePolicy") {
            Some(policy) => {
                assert!(failure_policy, "{version}");
                // Only the disruption rule: FailIndex does not exist there.
                assert_eq!(policy["rules"].as_array().unwrap().len(), 1);
                assert_eq!(policy["rules"][0]["action"], "Ignore");
            }
            None => assert!(!failure_policy, "{version}"),
        }
        let file = write_json(dir.path(), &format!("legacy-{schema}"), &job);
        let (ok, output) = kubernetes_validate(schema, &[file]);
        assert!(ok, "Kubernetes {schema} rejected the Job:\n{output}");
        // The modern Job is not valid there: the check can fail.
        let modern = render_batch(
            "v1.0_calib",
            &small_batch(),
            None,
            &generic_config(),
            MANIFEST,
            FLOW,
        )
        .unwrap()
        .remove(0);
        let file = write_json(dir.path(), &format!("modern-{schema}"), &modern);
        let (ok, output) = kubernetes_validate(schema, &[file]);
        assert!(
            !ok,
            "Kubernetes {schema} accepted per-index fields:\n{output}"
        );
    }
    let mut config = generic_config();
    config.server_version = Some("1.31+".into());
    assert!(config.per_index_backoff());
}

#[test]
fn the_in_cluster_driver_example_validates_strictly() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("examples/kubernetes/driver-in-cluster.yaml");
    for version in VERSIONS {
        let (ok, output) = kubernetes_validate(version, std::slice::from_ref(&example));
        assert!(ok, "Kubernetes {version}:\n{output}");
        let passed = output
            .lines()
            .filter(|l| l.contains("passed for resource"))
            .count();
        // ServiceAccount, Role, RoleBinding, PersistentVolumeClaim, Job.
        assert_eq!(passed, 5, "Kubernetes {version}:\n{output}");
    }
}
