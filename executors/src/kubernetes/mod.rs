//! Kubernetes: a batch of task attempts as a `batch/v1` Indexed Job.
//!
//! The machine's `kubernetes:` block is parsed by the DSL
//! (`flow_dsl::machine_settings::KubernetesSettings`). Pure parts here: [`render_batch`]
//! (one batch -> one Job), `pod_report` (a pod's status -> the attempt's news) and
//! `termination` (the result a pod hands back in its termination message). The client part:
//! `api` (kube client, rate limit, retries) and `executor` ([`KubernetesExecutor`]: create
//! or adopt Jobs, one watch per campaign, cancel). Each pod runs
//! `flow task run-manifest <manifest> $(JOB_COMPLETION_INDEX)` against the batch manifest on
//! the campaign volume. See `docs/kubernetes.md` for what is verified where.
//!
//! - `names`: deterministic DNS-1123 Job names and label values.
//! - `job_manifest`: the Job document.
//! - `termination`: the pod's result document (at most 4 KiB).
//! - `pod_report`: a pod's status read as started / ended / disrupted / stuck.
//! - `api`: the client, paced and retried.
//! - `executor`: the [`crate::Executor`] implementation.

pub mod api;
pub mod executor;
pub mod job_manifest;
pub mod names;
pub mod pod_report;
pub mod termination;

pub use executor::{KubernetesCampaign, KubernetesExecutor};
pub use job_manifest::{render_batch, ManifestError};
