//! Kubernetes: a batch of task attempts as a `batch/v1` Indexed Job.
//!
//! This session's part is the manifests, as pure functions: [`KubernetesConfig`] (the
//! machine's `kubernetes:` block) and [`render_batch`] (one batch → one Job). Each pod runs
//! `flow task run-manifest <manifest> $(JOB_COMPLETION_INDEX)` against the batch manifest on
//! the campaign volume. No client exists yet: creating, watching, adopting (409) and
//! cancelling Jobs is future work (see `docs/kubernetes.md`).
//!
//! - `config`: the `kubernetes:` block (namespace, image, volume, placement, secret refs).
//! - `names`: deterministic DNS-1123 Job names and label values.
//! - `job_manifest`: the Job document.

pub mod config;
pub mod job_manifest;
pub mod names;

pub use config::KubernetesConfig;
pub use job_manifest::{render_batch, ManifestError};
