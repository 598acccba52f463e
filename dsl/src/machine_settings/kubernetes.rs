//! The machine's `kubernetes:` block: where and how a campaign's pods run.
//!
//! ```yaml
//! kubernetes:
//!   namespace: flow
//!   image: ghcr.io/example/flow-runtime:latest
//!   image_pull_secrets: [ghcr-pull]
//!   service_account: flow-runner
//!   volume: {claim: flow-campaigns, mount_path: /campaigns}
//!   gpu_resource: nvidia.com/gpu
//!   node_selector: {kubernetes.io/os: linux}
//!   job_types:
//!     gpu_intensive:
//!       node_selector: {agentpool: gpunp}
//!       tolerations: [{key: sku, operator: Equal, value: gpu, effect: NoSchedule}]
//!   env_from: [{secret: wandb-credentials}, {config_map: flow-site-settings}]
//!   secret_env: [{name: HF_TOKEN, secret: huggingface, key: token}]
//!   ttl_seconds_after_finished: 86400
//!   backoff_limit_per_index: 0
//! ```
//!
//! Secrets appear here by name only: the manifests carry `secretRef`/`secretKeyRef`
//! references, never a value.
//!
//! Defaults come from [`super::BUILTIN_DEFAULTS`] (`machine.kubernetes.*`): the NVIDIA
//! device plugin's GPU resource, `/usr/local/bin/flow` in the image, finished Jobs kept one
//! day (long enough for a driver that was down overnight to read pod statuses; results are
//! on the volume anyway), no per-index retries (flow owns retries), 20 API requests/s.

use super::builtin_as;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The machine's `kubernetes:` block, deserialized as written (snake_case keys); complete
/// but for what has no default (`namespace` and `image` are required).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct KubernetesSettings {
    /// Namespace of every Job (a DNS-1123 label).
    pub namespace: String,
    /// Container image that has the `flow` binary and the task's software.
    pub image: String,
    /// Names of `kubernetes.io/dockerconfigjson` Secrets used to pull `image`.
    #[serde(default)]
    pub image_pull_secrets: Vec<String>,
    /// ServiceAccount the pods run as (the namespace's `default` when absent).
    #[serde(default)]
    pub service_account: Option<String>,
    /// Mount the service account token into pods. Off by default: `flow task` does not talk to
    /// the API server, and a pod without a token cannot be used against the cluster.
    #[serde(default = "default_automount")]
    pub automount_service_account_token: bool,
    /// The ReadWriteMany claim that holds the campaign directory.
    #[serde(default)]
    pub volume: Option<VolumeConfig>,
    /// Extended resource name requested for GPUs.
    #[serde(default = "default_gpu_resource")]
    pub gpu_resource: String,
    /// Node selector of every pod (a job type's selector is merged over it).
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of every pod (a job type's are added to them).
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// Placement per machine job type (`cpu_intensive`, `gpu_intensive`, ...).
    #[serde(default)]
    pub job_types: BTreeMap<String, Placement>,
    /// Whole Secrets or ConfigMaps exposed as environment variables (`envFrom`).
    #[serde(default)]
    pub env_from: Vec<EnvFromSource>,
    /// Single environment variables taken from a Secret key (`valueFrom.secretKeyRef`).
    #[serde(default)]
    pub secret_env: Vec<SecretEnvVar>,
    /// Seconds a finished Job (and its pods) is kept before Kubernetes deletes it.
    #[serde(default = "default_ttl")]
    pub ttl_seconds_after_finished: u32,
    /// Pod retries Kubernetes makes per index before the index counts as failed. 0 by
    /// default: flow owns retries (with its error classes and backoff).
    #[serde(default = "default_backoff_limit_per_index")]
    pub backoff_limit_per_index: u32,
    /// Failed indexes after which Kubernetes stops the whole Job; absent: never (every index
    /// runs, flow decides what to retry).
    #[serde(default)]
    pub max_failed_indexes: Option<u32>,
    /// Numeric user id the containers run as (the image's user when absent; it must not be
    /// root, since pods set `runAsNonRoot`).
    #[serde(default)]
    pub run_as_user: Option<i64>,
    /// Numeric group id the containers run as.
    #[serde(default)]
    pub run_as_group: Option<i64>,
    /// Group that owns the mounted volume's files (`fsGroup`).
    #[serde(default)]
    pub fs_group: Option<i64>,
    /// Path of the `flow` executable inside the image.
    #[serde(default = "default_flow_binary")]
    pub flow_binary: String,
    /// Kubeconfig context the driver uses (the current context when absent; inside a pod the
    /// in-cluster service account when no kubeconfig exists).
    #[serde(default)]
    pub context: Option<String>,
    /// Most task attempts handed to the cluster at once (pods of every Job not yet ended);
    /// absent: no limit but the steps' `max_running`. Kubernetes' own counterpart of
    /// `slurm.max_submitted`, which a Kubernetes run never reads.
    #[serde(default)]
    pub max_submitted: Option<u64>,
    /// Most tasks of one Indexed Job (its `completions`); a step's batch is at most this
    /// many tasks. Kubernetes' own counterpart of `slurm.max_array_size`, which a
    /// Kubernetes run never reads.
    #[serde(default = "default_max_job_size")]
    pub max_job_size: u32,
    /// Most API requests per second the driver makes (a token bucket shared by every call).
    #[serde(default = "default_api_requests_per_second")]
    pub api_requests_per_second: u32,
    /// The cluster's Kubernetes version (`"1.27"`). `flow run` asks the API server when it is
    /// absent; `flow plan` then assumes 1.29 or later. Before 1.29 Jobs go without
    /// `backoffLimitPerIndex`, `maxFailedIndexes` and the `FailIndex` action.
    #[serde(default)]
    pub server_version: Option<String>,
}

/// The campaign volume: a PersistentVolumeClaim mounted at the same path in every pod.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct VolumeConfig {
    /// Name of the PersistentVolumeClaim (ReadWriteMany, so pods on many nodes share it).
    pub claim: String,
    /// Absolute path where the claim is mounted in the container.
    pub mount_path: String,
}

/// Where the pods of one job type may run.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Placement {
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
}

/// A pod toleration (`operator` is `Exists` or `Equal`; `effect` is `NoSchedule`,
/// `PreferNoSchedule` or `NoExecute`, or absent for all).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Toleration {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub effect: Option<String>,
    #[serde(default)]
    pub toleration_seconds: Option<i64>,
}

/// A whole Secret or ConfigMap exposed as environment variables, by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EnvFromSource {
    /// `{secret: NAME}` → `envFrom: [{secretRef: {name: NAME}}]`.
    Secret(String),
    /// `{config_map: NAME}` → `envFrom: [{configMapRef: {name: NAME}}]`.
    ConfigMap(String),
}

/// One environment variable read from a key of a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct SecretEnvVar {
    /// Variable name in the container.
    pub name: String,
    /// Secret name.
    pub secret: String,
    /// Key within the Secret.
    pub key: String,
}

fn default_gpu_resource() -> String {
    super::builtin("machine.kubernetes.gpu_resource").to_string()
}

fn default_automount() -> bool {
    builtin_as("machine.kubernetes.automount_service_account_token").unwrap_or(false)
}

fn default_backoff_limit_per_index() -> u32 {
    builtin_as("machine.kubernetes.backoff_limit_per_index").unwrap_or(0)
}

/// `"1.27"`, `"v1.27.3"`, `"1.27+"` (as some providers report the minor) → (1, 27).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let text = text.trim().trim_start_matches('v');
    let mut parts = text.split('.');
    let major = parts.next()?.trim_end_matches('+').parse().ok()?;
    let minor_text = parts.next()?;
    let digits: String = minor_text
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, digits.parse().ok()?))
}

fn default_flow_binary() -> String {
    super::builtin("machine.kubernetes.flow_binary").to_string()
}

fn default_max_job_size() -> u32 {
    builtin_as("machine.kubernetes.max_job_size").unwrap_or(1)
}

fn default_api_requests_per_second() -> u32 {
    builtin_as("machine.kubernetes.api_requests_per_second").unwrap_or(1)
}

fn default_ttl() -> u32 {
    builtin_as("machine.kubernetes.ttl_seconds_after_finished").unwrap_or(0)
}

impl KubernetesSettings {
    /// Read the `kubernetes:` block from its JSON form, as the loader does (the loader
    /// locates what fails). Fails on a missing `namespace` or `image`, a misspelt key, or a
    /// value of the wrong type; the error names the field.
    pub fn from_json(value: &serde_json::Value) -> Result<KubernetesSettings, serde_json::Error> {
        KubernetesSettings::deserialize(value)
    }

    /// The (major, minor) of `server_version`, if it is set and reads as a version.
    pub fn server_minor(&self) -> Option<(u32, u32)> {
        parse_version(self.server_version.as_deref()?)
    }

    /// Whether Jobs may use per-index retries (`backoffLimitPerIndex`, `maxFailedIndexes`,
    /// `FailIndex`): on by default in 1.29, GA in 1.33. Unknown version: yes.
    pub fn per_index_backoff(&self) -> bool {
        self.server_minor().is_none_or(|v| v >= (1, 29))
    }

    /// Whether Jobs may carry a `podFailurePolicy` (on by default since 1.26).
    pub fn pod_failure_policy(&self) -> bool {
        self.server_minor().is_none_or(|v| v >= (1, 26))
    }

    /// Node selector and tolerations of a job type: the global ones with the job type's
    /// merged over them (selector keys replaced, tolerations appended). An unknown or absent
    /// job type gets the global placement.
    pub fn placement_for(&self, job_type: Option<&str>) -> Placement {
        let mut placement = Placement {
            node_selector: self.node_selector.clone(),
            tolerations: self.tolerations.clone(),
        };
        if let Some(specific) = job_type.and_then(|j| self.job_types.get(j)) {
            placement.node_selector.extend(
                specific
                    .node_selector
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            placement
                .tolerations
                .extend(specific.tolerations.iter().cloned());
        }
        placement
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generic_machine_block_reads_with_defaults() {
        let config = KubernetesSettings::from_json(&json!({
            "namespace": "flow",
            "image": "ghcr.io/example/flow-runtime:latest",
            "service_account": "flow-runner",
            "volume": {"claim": "flow-campaigns", "mount_path": "/campaigns"},
            "gpu_resource": "nvidia.com/gpu"
        }))
        .unwrap();
        assert_eq!(config.gpu_resource, "nvidia.com/gpu");
        assert_eq!(config.backoff_limit_per_index, 0);
        assert_eq!(config.ttl_seconds_after_finished, 86_400);
        assert!(!config.automount_service_account_token);
        assert_eq!(config.volume.unwrap().mount_path, "/campaigns");
    }

    #[test]
    fn misspelt_key_is_an_error_naming_it() {
        let err = KubernetesSettings::from_json(&json!({
            "namespace": "flow", "image": "x", "servce_account": "a"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("servce_account"), "{err}");
    }

    #[test]
    fn env_from_and_job_type_placement() {
        let config = KubernetesSettings::from_json(&json!({
            "namespace": "flow", "image": "x",
            "node_selector": {"kubernetes.io/os": "linux", "pool": "cpu"},
            "tolerations": [{"key": "spot", "operator": "Exists"}],
            "job_types": {"gpu_intensive": {
                "node_selector": {"pool": "gpu"},
                "tolerations": [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
            }},
            "env_from": [{"secret": "creds"}, {"config_map": "site"}]
        }))
        .unwrap();
        assert_eq!(
            config.env_from,
            vec![
                EnvFromSource::Secret("creds".into()),
                EnvFromSource::ConfigMap("site".into())
            ]
        );
        let gpu = config.placement_for(Some("gpu_intensive"));
        assert_eq!(gpu.node_selector["pool"], "gpu");
        assert_eq!(gpu.node_selector["kubernetes.io/os"], "linux");
        assert_eq!(gpu.tolerations.len(), 2);
        let other = config.placement_for(Some("cpu_intensive"));
        assert_eq!(other.node_selector["pool"], "cpu");
        assert_eq!(other.tolerations.len(), 1);
        assert_eq!(config.placement_for(None), other);
    }

    #[test]
    fn every_built_in_default_reads_as_the_default() {
        let base = json!({"namespace": "flow", "image": "x"});
        let defaults = KubernetesSettings::from_json(&base).unwrap();
        assert_eq!(defaults.flow_binary, "/usr/local/bin/flow");
        assert_eq!(defaults.api_requests_per_second, 20);
        assert_eq!(defaults.max_job_size, 1000);
        let mut seen = 0;
        for b in super::super::BUILTIN_DEFAULTS {
            let Some(key) = b.path.strip_prefix("machine.kubernetes.") else {
                continue;
            };
            seen += 1;
            let mut block = base.clone();
            block[key] = super::super::builtin_json(b.value);
            let read =
                KubernetesSettings::from_json(&block).unwrap_or_else(|e| panic!("{}: {e}", b.path));
            assert_eq!(read, defaults, "{}", b.path);
        }
        assert_eq!(seen, 7);
    }
}
