//! One batch of task attempts as a `batch/v1` Indexed Job.
//!
//! Completion index N runs line N of the batch's manifest (the file the Slurm executor also
//! writes, see [`crate::manifest`]): the pod's command is
//! `flow task run-manifest <manifest> $(JOB_COMPLETION_INDEX)`, so a pod never re-plans.
//! Everything here is a pure function of its inputs; nothing talks to a cluster. What the
//! settings and variable names must satisfy first is `checks`.

use super::names::{job_name, label_value};
use crate::launch::{Batch, TaskLaunch};
use flow_dsl::machine_settings::kubernetes::{EnvFromSource, KubernetesSettings, Toleration};
use serde_json::{json, Map, Value};
use std::time::Duration;

mod checks;

use checks::{check_config, check_env_name, require_absolute};

/// Name of the one container in every pod (podFailurePolicy rules refer to it).
pub const CONTAINER_NAME: &str = "task";

/// Name of the campaign volume in the pod spec.
pub const VOLUME_NAME: &str = "campaign";

/// Label keys on every Job and pod template.
pub const LABEL_CAMPAIGN: &str = "flow/campaign";
pub const LABEL_STEP: &str = "flow/step";
pub const LABEL_BATCH: &str = "flow/batch";

/// Annotation holding the manifest path in the pod (labels are too short for paths).
pub const ANNOTATION_MANIFEST: &str = "flow/manifest";

/// Annotation holding the hash of the batch's manifest (which tasks, which attempts).
pub const ANNOTATION_MANIFEST_HASH: &str = "flow/manifest-hash";

/// Where the kubelet puts the container's termination message, and the variable that tells
/// `flow task run-manifest` to write its result there (Kubernetes' default path).
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
pub const TERMINATION_MESSAGE_ENV: &str = "FLOW_TERMINATION_MESSAGE";

/// The Job-wide `backoffLimit` on clusters without per-index limits (the largest int32).
pub const LEGACY_BACKOFF_LIMIT: i64 = i32::MAX as i64;

/// Most completions one Indexed Job may have when `backoffLimitPerIndex` is set.
pub const MAX_COMPLETIONS: usize = 100_000;

/// Seconds added to flow's own per-task timeout for the pod's `activeDeadlineSeconds`, so that
/// `flow task` kills the command and records a `timeout` result before Kubernetes kills the
/// pod (the deadline also counts image pull and start-up).
pub const DEADLINE_GRACE_SECONDS: u64 = 60;

/// Why a batch could not be rendered. Every variant names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("batch {batch_key}: no tasks to render")]
    EmptyBatch { batch_key: String },
    #[error("batch {batch_key}: {count} tasks exceed the {MAX_COMPLETIONS} completions of one Indexed Job")]
    TooManyTasks { batch_key: String, count: usize },
    #[error("kubernetes.{field}: {value:?} is not a valid {expected}")]
    InvalidConfig {
        field: String,
        value: String,
        expected: String,
    },
    #[error("environment variable {name:?} is not a valid name (letters, digits and _, not starting with a digit)")]
    InvalidEnvName { name: String },
    #[error("{what}: {value:?} must be an absolute path")]
    RelativePath { what: String, value: String },
}

/// The batch's manifest (line N: the launch of completion index N) and its hash. The hash
/// is part of the Job name and of the manifest's file name, so two batches with the same key
/// but other tasks or attempts never share a Job, and the same batch submitted twice does.
pub fn batch_manifest(batch: &Batch) -> Result<(String, String), ManifestError> {
    let text =
        crate::manifest::manifest_text(&batch.tasks).map_err(|e| ManifestError::InvalidConfig {
            field: "tasks".into(),
            value: batch.batch_key.clone(),
            expected: format!("serializable launch ({e})"),
        })?;
    let hash = crate::manifest::manifest_hash(&text);
    Ok((text, hash))
}

/// File name of a batch's manifest: `<batch key>-<manifest hash>.jsonl`.
pub fn manifest_file_name(batch_key: &str, manifest_hash: &str) -> String {
    format!("{batch_key}-{manifest_hash}.jsonl")
}

/// The Job name of a batch: see [`job_name`]; the batch's identity is its key and the hash
/// of its manifest.
pub fn batch_job_name(campaign_tag: &str, batch: &Batch, manifest_hash: &str) -> String {
    job_name(
        campaign_tag,
        &batch.step,
        &format!("{}#{manifest_hash}", batch.batch_key),
    )
}

/// Render the Kubernetes objects of one batch: today exactly one `batch/v1` Job.
///
/// - `campaign_tag`: the campaign's stable identity (`<version>_<name>`), hashed into the Job
///   name and put in the `flow/campaign` label.
/// - `job_type`: the machine job type the step's resources came from, which picks the node
///   selector and tolerations (`None`: the global ones).
/// - `manifest_path_in_pod`: where the batch's manifest lies inside the pod (on the volume).
/// - `flow_binary_in_pod`: the `flow` executable inside the image.
///
/// The Job: `completionMode: Indexed`, one completion per task, `parallelism` =
/// min(tasks, `max_running`), `backoffLimitPerIndex` and `maxFailedIndexes` from the config,
/// a `podFailurePolicy` that ignores disruptions (DisruptionTarget) and fails the index on any
/// other non-zero exit, `ttlSecondsAfterFinished`, and on the pod template
/// `activeDeadlineSeconds` (the longest task timeout plus [`DEADLINE_GRACE_SECONDS`], else the
/// resources' time limit), `restartPolicy: Never`, requests = limits for cpu, memory and GPUs,
/// and the restricted Pod Security Standard. Environment: the `FLOW_*` variables that all
/// tasks share, `FLOW_MANIFEST`, `JOB_COMPLETION_INDEX` from the downward API, and Secret
/// references from the config; never a secret value, and never a variable that differs
/// between tasks (those come from the manifest).
///
/// Fails on an empty batch, more than [`MAX_COMPLETIONS`] tasks, a namespace, secret, claim
/// or account name Kubernetes would reject, an empty image, a relative mount or manifest path,
/// or an invalid environment variable name.
pub fn render_batch(
    campaign_tag: &str,
    batch: &Batch,
    job_type: Option<&str>,
    config: &KubernetesSettings,
    manifest_path_in_pod: &str,
    flow_binary_in_pod: &str,
) -> Result<Vec<Value>, ManifestError> {
    let (_, manifest_hash) = batch_manifest(batch)?;
    render_batch_with_hash(
        campaign_tag,
        batch,
        job_type,
        config,
        manifest_path_in_pod,
        flow_binary_in_pod,
        &manifest_hash,
    )
}

/// [`render_batch`] for a caller that already has the batch's manifest hash (it wrote the
/// manifest): the launches are not serialized a second time.
pub fn render_batch_with_hash(
    campaign_tag: &str,
    batch: &Batch,
    job_type: Option<&str>,
    config: &KubernetesSettings,
    manifest_path_in_pod: &str,
    flow_binary_in_pod: &str,
    manifest_hash: &str,
) -> Result<Vec<Value>, ManifestError> {
    check_config(config)?;
    let tasks = batch.tasks.len();
    if tasks == 0 {
        return Err(ManifestError::EmptyBatch {
            batch_key: batch.batch_key.clone(),
        });
    }
    if tasks > MAX_COMPLETIONS {
        return Err(ManifestError::TooManyTasks {
            batch_key: batch.batch_key.clone(),
            count: tasks,
        });
    }
    require_absolute("manifest path in the pod", manifest_path_in_pod)?;

    let labels = json!({
        LABEL_CAMPAIGN: label_value(campaign_tag),
        LABEL_STEP: label_value(&batch.step),
        LABEL_BATCH: label_value(&batch.batch_key),
    });
    let annotations = json!({
        LABEL_CAMPAIGN: campaign_tag,
        LABEL_STEP: batch.step,
        LABEL_BATCH: batch.batch_key,
        ANNOTATION_MANIFEST: manifest_path_in_pod,
        ANNOTATION_MANIFEST_HASH: manifest_hash,
    });
    let parallelism = batch
        .max_running
        .map(|cap| (cap.max(1) as usize).min(tasks))
        .unwrap_or(tasks);

    let mut job_spec = Map::new();
    job_spec.insert("completionMode".into(), json!("Indexed"));
    job_spec.insert("completions".into(), json!(tasks));
    job_spec.insert("parallelism".into(), json!(parallelism));
    if config.per_index_backoff() {
        job_spec.insert(
            "backoffLimitPerIndex".into(),
            json!(config.backoff_limit_per_index),
        );
        let max_failed = config
            .max_failed_indexes
            .map(|m| (m as usize).min(tasks))
            .unwrap_or(tasks);
        job_spec.insert("maxFailedIndexes".into(), json!(max_failed));
    } else {
        // No per-index limit before 1.29: Kubernetes reruns a failed index until this
        // Job-wide limit, and the rerun finds the attempt's result on the volume and exits
        // at once (`flow task run-manifest`); flow retries with a new attempt in a new Job.
        job_spec.insert("backoffLimit".into(), json!(LEGACY_BACKOFF_LIMIT));
    }
    if config.pod_failure_policy() {
        job_spec.insert(
            "podFailurePolicy".into(),
            pod_failure_policy(config.per_index_backoff()),
        );
    }
    job_spec.insert(
        "ttlSecondsAfterFinished".into(),
        json!(config.ttl_seconds_after_finished),
    );
    job_spec.insert(
        "template".into(),
        json!({
            "metadata": {"labels": labels, "annotations": annotations},
            "spec": pod_spec(batch, job_type, config, manifest_path_in_pod, flow_binary_in_pod)?,
        }),
    );

    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": batch_job_name(campaign_tag, batch, manifest_hash),
            "namespace": config.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": Value::Object(job_spec),
    });
    Ok(vec![job])
}

/// Disruptions (node drain, preemption, eviction) are ignored: the index is recreated and
/// does not count against `backoffLimitPerIndex` (nor, in flow, against `max_retries`). Any
/// other non-zero exit of the task container fails the index at once (where the cluster has
/// `FailIndex`); flow retries it.
fn pod_failure_policy(fail_index: bool) -> Value {
    let mut rules = vec![json!({
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]
    })];
    if fail_index {
        rules.push(json!({
            "action": "FailIndex",
            "onExitCodes": {
                "containerName": CONTAINER_NAME,
                "operator": "NotIn",
                "values": [0]
            }
        }));
    }
    json!({ "rules": rules })
}

fn pod_spec(
    batch: &Batch,
    job_type: Option<&str>,
    config: &KubernetesSettings,
    manifest_path_in_pod: &str,
    flow_binary_in_pod: &str,
) -> Result<Value, ManifestError> {
    let placement = config.placement_for(job_type);
    let mut spec = Map::new();
    spec.insert("restartPolicy".into(), json!("Never"));
    if let Some(deadline) = active_deadline_seconds(batch) {
        spec.insert("activeDeadlineSeconds".into(), json!(deadline));
    }
    if let Some(account) = &config.service_account {
        spec.insert("serviceAccountName".into(), json!(account));
    }
    spec.insert(
        "automountServiceAccountToken".into(),
        json!(config.automount_service_account_token),
    );
    if !config.image_pull_secrets.is_empty() {
        let secrets: Vec<Value> = config
            .image_pull_secrets
            .iter()
            .map(|name| json!({"name": name}))
            .collect();
        spec.insert("imagePullSecrets".into(), Value::Array(secrets));
    }
    if !placement.node_selector.is_empty() {
        spec.insert("nodeSelector".into(), json!(placement.node_selector));
    }
    if !placement.tolerations.is_empty() {
        let tolerations: Vec<Value> = placement.tolerations.iter().map(toleration).collect();
        spec.insert("tolerations".into(), Value::Array(tolerations));
    }
    spec.insert("securityContext".into(), pod_security_context(config));
    if let Some(volume) = &config.volume {
        spec.insert(
            "volumes".into(),
            json!([{
                "name": VOLUME_NAME,
                "persistentVolumeClaim": {"claimName": volume.claim}
            }]),
        );
    }
    spec.insert(
        "containers".into(),
        json!([container(
            batch,
            config,
            manifest_path_in_pod,
            flow_binary_in_pod
        )?]),
    );
    Ok(Value::Object(spec))
}

fn container(
    batch: &Batch,
    config: &KubernetesSettings,
    manifest_path_in_pod: &str,
    flow_binary_in_pod: &str,
) -> Result<Value, ManifestError> {
    let mut container = Map::new();
    container.insert("name".into(), json!(CONTAINER_NAME));
    container.insert("image".into(), json!(config.image));
    container.insert(
        "command".into(),
        json!([
            escape_variable_refs(flow_binary_in_pod),
            "task",
            "run-manifest",
            escape_variable_refs(manifest_path_in_pod),
            "$(JOB_COMPLETION_INDEX)",
        ]),
    );
    container.insert(
        "env".into(),
        Value::Array(environment(&batch.tasks, config, manifest_path_in_pod)?),
    );
    if !config.env_from.is_empty() {
        let sources: Vec<Value> = config
            .env_from
            .iter()
            .map(|source| match source {
                EnvFromSource::Secret(name) => json!({"secretRef": {"name": name}}),
                EnvFromSource::ConfigMap(name) => json!({"configMapRef": {"name": name}}),
            })
            .collect();
        container.insert("envFrom".into(), Value::Array(sources));
    }
    // The result of `flow task` comes back in the pod status (under the kubelet's 4 KiB
    // limit); without one, the end of the log says what went wrong.
    container.insert(
        "terminationMessagePath".into(),
        json!(TERMINATION_MESSAGE_PATH),
    );
    container.insert(
        "terminationMessagePolicy".into(),
        json!("FallbackToLogsOnError"),
    );
    container.insert("resources".into(), resources(batch, config));
    container.insert("securityContext".into(), container_security_context());
    if let Some(volume) = &config.volume {
        container.insert(
            "volumeMounts".into(),
            json!([{"name": VOLUME_NAME, "mountPath": volume.mount_path}]),
        );
    }
    Ok(Value::Object(container))
}

/// Requests equal limits (Guaranteed QoS when every resource is set): cpu in whole cores,
/// memory in MiB when known, GPUs under the configured resource name when any.
fn resources(batch: &Batch, config: &KubernetesSettings) -> Value {
    let r = &batch.resources;
    let mut amounts = Map::new();
    amounts.insert("cpu".into(), json!(r.total_cpus().to_string()));
    if r.total_mem_mb() > 0 {
        amounts.insert("memory".into(), json!(format!("{}Mi", r.total_mem_mb())));
    }
    if r.total_gpus() > 0 {
        amounts.insert(
            config.gpu_resource.clone(),
            json!(r.total_gpus().to_string()),
        );
    }
    let amounts = Value::Object(amounts);
    json!({"requests": amounts, "limits": amounts})
}

/// The pod-level part of the restricted Pod Security Standard.
fn pod_security_context(config: &KubernetesSettings) -> Value {
    let mut context = Map::new();
    context.insert("runAsNonRoot".into(), json!(true));
    if let Some(uid) = config.run_as_user {
        context.insert("runAsUser".into(), json!(uid));
    }
    if let Some(gid) = config.run_as_group {
        context.insert("runAsGroup".into(), json!(gid));
    }
    if let Some(gid) = config.fs_group {
        context.insert("fsGroup".into(), json!(gid));
    }
    context.insert("seccompProfile".into(), json!({"type": "RuntimeDefault"}));
    Value::Object(context)
}

/// The container-level part of the restricted Pod Security Standard.
fn container_security_context() -> Value {
    json!({
        "runAsNonRoot": true,
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The container's `env`: `JOB_COMPLETION_INDEX` (downward API), `FLOW_MANIFEST`, the
/// `FLOW_*` variables with the same value in every task (sorted by name), then the Secret key
/// references of the config. Values are literal: `$(` is escaped so Kubernetes does not
/// expand it.
fn environment(
    tasks: &[TaskLaunch],
    config: &KubernetesSettings,
    manifest_path_in_pod: &str,
) -> Result<Vec<Value>, ManifestError> {
    let mut env = vec![
        json!({
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
            }}
        }),
        json!({"name": "FLOW_MANIFEST", "value": escape_variable_refs(manifest_path_in_pod)}),
        json!({"name": TERMINATION_MESSAGE_ENV, "value": TERMINATION_MESSAGE_PATH}),
    ];
    for (name, value) in shared_flow_env(tasks) {
        if name == "FLOW_MANIFEST" {
            continue;
        }
        check_env_name(&name)?;
        env.push(json!({"name": name, "value": escape_variable_refs(&value)}));
    }
    for var in &config.secret_env {
        check_env_name(&var.name)?;
        env.push(json!({
            "name": var.name,
            "valueFrom": {"secretKeyRef": {"name": var.secret, "key": var.key}}
        }));
    }
    Ok(env)
}

/// `FLOW_*` variables present with one value in every task, sorted by name. Per-task ones
/// (`FLOW_TASK_ID`, `FLOW_SEED`, ...) differ and stay in the manifest.
fn shared_flow_env(tasks: &[TaskLaunch]) -> Vec<(String, String)> {
    let Some((first, rest)) = tasks.split_first() else {
        return Vec::new();
    };
    let mut shared: Vec<(String, String)> = first
        .env
        .iter()
        .filter(|(name, _)| name.starts_with("FLOW_"))
        .filter(|(name, value)| {
            rest.iter()
                .all(|t| t.env.iter().any(|(n, v)| n == name && v == value))
        })
        .cloned()
        .collect();
    shared.sort();
    shared.dedup_by(|a, b| a.0 == b.0);
    shared
}

/// The pod deadline: the longest task timeout plus the grace, else the batch's time limit.
fn active_deadline_seconds(batch: &Batch) -> Option<u64> {
    let longest_timeout = batch.tasks.iter().filter_map(|t| t.timeout).max();
    match longest_timeout {
        Some(timeout) => Some(whole_seconds(timeout) + DEADLINE_GRACE_SECONDS),
        None => batch.resources.time_limit.map(whole_seconds),
    }
}

fn whole_seconds(duration: Duration) -> u64 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.max(1)
}

fn toleration(t: &Toleration) -> Value {
    let mut out = Map::new();
    if let Some(key) = &t.key {
        out.insert("key".into(), json!(key));
    }
    if let Some(operator) = &t.operator {
        out.insert("operator".into(), json!(operator));
    }
    if let Some(value) = &t.value {
        out.insert("value".into(), json!(value));
    }
    if let Some(effect) = &t.effect {
        out.insert("effect".into(), json!(effect));
    }
    if let Some(seconds) = t.toleration_seconds {
        out.insert("tolerationSeconds".into(), json!(seconds));
    }
    Value::Object(out)
}

/// Kubernetes expands `$(NAME)` in command, args and env values; `$$` is a literal `$`.
/// Doubling every `$` keeps a literal value literal.
fn escape_variable_refs(text: &str) -> String {
    text.replace('$', "$$")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::Resources;
    use std::path::PathBuf;

    fn task(id: &str, env: &[(&str, &str)], timeout: Option<u64>) -> TaskLaunch {
        TaskLaunch {
            task_id: id.into(),
            attempt: 1,
            argv: vec!["true".into()],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            workdir: PathBuf::from("/w"),
            stdout_path: PathBuf::from("/w/o"),
            stderr_path: PathBuf::from("/w/e"),
            result_path: PathBuf::from("/w/r.json"),
            writes_result: false,
            status_by_trap: false,
            timeout: timeout.map(Duration::from_secs),
        }
    }

    fn batch(tasks: Vec<TaskLaunch>) -> Batch {
        Batch {
            campaign: "c".into(),
            step: "s".into(),
            batch_key: "s-b0000".into(),
            resources: Resources::default(),
            max_running: None,
            tasks,
        }
    }

    fn config() -> KubernetesSettings {
        KubernetesSettings::from_json(&json!({"namespace": "flow", "image": "img:1"})).unwrap()
    }

    #[test]
    fn only_flow_vars_shared_by_every_task_are_kept() {
        let tasks = vec![
            task(
                "a",
                &[("FLOW_DIR", "/c"), ("FLOW_SEED", "1"), ("HOME", "/h")],
                None,
            ),
            task(
                "b",
                &[("FLOW_SEED", "2"), ("FLOW_DIR", "/c"), ("HOME", "/h")],
                None,
            ),
        ];
        assert_eq!(
            shared_flow_env(&tasks),
            vec![("FLOW_DIR".to_string(), "/c".to_string())]
        );
        assert!(shared_flow_env(&[]).is_empty());
    }

    #[test]
    fn deadline_is_longest_timeout_plus_grace_else_time_limit() {
        let mut b = batch(vec![task("a", &[], Some(10)), task("b", &[], Some(300))]);
        assert_eq!(active_deadline_seconds(&b), Some(360));
        b.tasks = vec![task("a", &[], None)];
        assert_eq!(active_deadline_seconds(&b), None);
        b.resources.time_limit = Some(Duration::from_millis(1500));
        assert_eq!(active_deadline_seconds(&b), Some(2), "rounded up");
    }

    #[test]
    fn parallelism_is_capped_by_tasks_and_max_running() {
        let tasks: Vec<TaskLaunch> = (0..4).map(|i| task(&i.to_string(), &[], None)).collect();
        let mut b = batch(tasks);
        let render = |b: &Batch| render_batch("c", b, None, &config(), "/m", "flow").unwrap();
        assert_eq!(render(&b)[0]["spec"]["parallelism"], 4);
        b.max_running = Some(100);
        assert_eq!(render(&b)[0]["spec"]["parallelism"], 4);
        b.max_running = Some(3);
        assert_eq!(render(&b)[0]["spec"]["parallelism"], 3);
        b.max_running = Some(0);
        assert_eq!(
            render(&b)[0]["spec"]["parallelism"],
            1,
            "never a paused Job"
        );
    }

    #[test]
    fn minimal_config_renders_without_optional_parts() {
        let job = render_batch(
            "c",
            &batch(vec![task("a", &[], None)]),
            None,
            &config(),
            "/m",
            "flow",
        )
        .unwrap()
        .remove(0);
        let pod = &job["spec"]["template"]["spec"];
        for absent in [
            "volumes",
            "nodeSelector",
            "tolerations",
            "imagePullSecrets",
            "serviceAccountName",
            "activeDeadlineSeconds",
        ] {
            assert!(pod.get(absent).is_none(), "{absent}");
        }
        let container = &pod["containers"][0];
        assert!(container.get("volumeMounts").is_none());
        assert!(container.get("envFrom").is_none());
        assert_eq!(container["resources"]["limits"], json!({"cpu": "1"}));
        assert_eq!(job["metadata"]["namespace"], "flow");
    }

    #[test]
    fn bad_config_names_are_rejected() {
        let mut c = config();
        c.image_pull_secrets = vec!["Bad_Name".into()];
        let err = render_batch(
            "c",
            &batch(vec![task("a", &[], None)]),
            None,
            &c,
            "/m",
            "flow",
        )
        .unwrap_err();
        assert!(err.to_string().contains("image_pull_secrets"), "{err}");
        let mut c = config();
        c.gpu_resource = "gpu".into();
        assert!(render_batch(
            "c",
            &batch(vec![task("a", &[], None)]),
            None,
            &c,
            "/m",
            "flow"
        )
        .is_err());
        let mut c = config();
        c.image = " ".into();
        assert!(render_batch(
            "c",
            &batch(vec![task("a", &[], None)]),
            None,
            &c,
            "/m",
            "flow"
        )
        .is_err());
    }

    #[test]
    fn placement_and_user_ids_are_checked() {
        let one = || batch(vec![task("a", &[], None)]);
        let render = |c: &KubernetesSettings| render_batch("c", &one(), None, c, "/m", "flow");
        let with = |v: serde_json::Value| {
            let mut base = json!({"namespace": "flow", "image": "img:1"});
            base.as_object_mut()
                .unwrap()
                .extend(v.as_object().unwrap().clone());
            KubernetesSettings::from_json(&base).unwrap()
        };
        let good = with(json!({
            "node_selector": {"kubernetes.azure.com/agentpool": "gpunp"},
            "tolerations": [
                {"operator": "Exists"},
                {"key": "sku", "value": "gpu", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "toleration_seconds": 30}
            ],
            "run_as_user": 1000
        }));
        assert!(render(&good).is_ok(), "{:?}", render(&good));
        for (bad, names) in [
            (json!({"run_as_user": 0}), "run_as_user"),
            (json!({"node_selector": {"bad key!": "x"}}), "bad key!"),
            (json!({"node_selector": {"pool": "has space"}}), "has space"),
            (
                json!({"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
                "\"v\"",
            ),
            (
                json!({"tolerations": [{"key": "k", "operator": "Equals"}]}),
                "Equals",
            ),
            (
                json!({"tolerations": [{"key": "k", "effect": "NoScheduel"}]}),
                "NoScheduel",
            ),
            (
                json!({"tolerations": [{"key": "k", "effect": "NoSchedule", "toleration_seconds": 5}]}),
                "NoExecute",
            ),
            (
                json!({"job_types": {"gpu": {"tolerations": [{"value": "x"}]}}}),
                "job_types.gpu",
            ),
        ] {
            let err = render(&with(bad.clone())).expect_err(&bad.to_string());
            assert!(err.to_string().contains(names), "{bad}: {err}");
        }
    }

    #[test]
    fn too_many_tasks_for_one_job() {
        let tasks = vec![task("a", &[], None); MAX_COMPLETIONS + 1];
        let err = render_batch("c", &batch(tasks), None, &config(), "/m", "flow").unwrap_err();
        assert!(
            matches!(err, ManifestError::TooManyTasks { count, .. } if count == MAX_COMPLETIONS + 1)
        );
    }
}
