//! A machine's typed settings, parsed once, here: the `slurm:` block ([`SlurmSettings`]),
//! the `kubernetes:` block ([`KubernetesSettings`]), `notify:` (the campaign's over the
//! machine's, [`notify::NotifySettings`]), and the one table of built-in defaults
//! ([`BUILTIN_DEFAULTS`]) that fills in what the files leave out. The engine and the
//! executors receive these types inside the [`crate::model::Machine`]; nothing else reads
//! these blocks.
//!
//! `flow plan --explain` shows every resolved setting with its origin: the file and line
//! it was written at, or "built-in" for a value of the table ([`crate::model::Provenance`]
//! without a span).
//!
//! Each block is checked by the machine schema first; what the schema cannot say (a rate
//! of `0/s`, a factor below 1) is a located error at the entry here ([`typed_block`]).

pub mod kubernetes;
pub mod notify;
pub mod slurm;

pub use kubernetes::KubernetesSettings;
pub use slurm::SlurmSettings;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::merge::leaves;
use crate::node::Node;
use crate::provenance::Provenance;
use serde::de::DeserializeOwned;

/// One built-in default: the setting's dotted path and its value as a file would write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinDefault {
    pub path: &'static str,
    pub value: &'static str,
}

const fn d(path: &'static str, value: &'static str) -> BuiltinDefault {
    BuiltinDefault { path, value }
}

/// Every built-in default of flow's settings. The typed settings take their defaults from
/// here and `--explain` shows these entries as "built-in"; a setting without an entry has
/// no default (it is unset, or required).
pub const BUILTIN_DEFAULTS: &[BuiltinDefault] = &[
    // Slurm (`machine.slurm`).
    d("machine.slurm.max_array_size", "1000"),
    d("machine.slurm.submit_rate", "2/s"),
    d("machine.slurm.burst", "5"),
    d("machine.slurm.poll_interval", "30s"),
    d("machine.slurm.result_grace", "60s"),
    d("machine.slurm.gpu_option", "gres"),
    d("machine.slurm.accounting", "auto"),
    d("machine.slurm.transient_attempts", "6"),
    // Kubernetes (`machine.kubernetes`).
    d(
        "machine.kubernetes.automount_service_account_token",
        "false",
    ),
    d("machine.kubernetes.gpu_resource", "nvidia.com/gpu"),
    d("machine.kubernetes.ttl_seconds_after_finished", "86400"),
    d("machine.kubernetes.backoff_limit_per_index", "0"),
    d("machine.kubernetes.flow_binary", "/usr/local/bin/flow"),
    d("machine.kubernetes.api_requests_per_second", "20"),
    d("machine.kubernetes.max_job_size", "1000"),
    // A step's execution (`execution`, after machine and campaign defaults).
    d("execution.max_retries", "0"),
    d("execution.timeout", "none"),
    d("execution.max_infrastructure_retries", "5"),
    d("execution.retry_backoff.initial", "10s"),
    d("execution.retry_backoff.multiplier", "2"),
    d("execution.retry_backoff.max", "1h"),
    d("execution.retry_backoff.jitter", "true"),
    d("condition", "all-succeeded"),
];

/// The built-in value of `path` as written in [`BUILTIN_DEFAULTS`]; empty when the table
/// has none (the table's tests check that every default the code asks for is there).
pub fn builtin(path: &str) -> &'static str {
    BUILTIN_DEFAULTS
        .iter()
        .find(|b| b.path == path)
        .map_or("", |b| b.value)
}

/// The built-in value of `path` read as `T` the way a file's value is read (numbers,
/// booleans and text as JSON): the typed settings' serde defaults.
pub(crate) fn builtin_as<T: DeserializeOwned>(path: &str) -> Option<T> {
    serde_json::from_value(builtin_json(builtin(path))).ok()
}

/// A table value as the JSON a YAML file would give for it.
fn builtin_json(text: &str) -> serde_json::Value {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v,
        _ => serde_json::Value::String(text.to_string()),
    }
}

/// Read a schema-checked block into its typed settings. What fails is reported at the
/// entry that makes it fail (each entry is tried alone on top of `base`, the least the
/// type needs besides it), else at the block.
pub(crate) fn typed_block<T: DeserializeOwned>(
    node: &Node,
    field: &str,
    base: &serde_json::Value,
    diags: &mut Diagnostics,
) -> Option<T> {
    let error = match serde_json::from_value::<T>(node.to_json()) {
        Ok(settings) => return Some(settings),
        Err(e) => e.to_string(),
    };
    for (key, value) in node.as_map().unwrap_or_default() {
        let mut alone = base.clone();
        if let Some(map) = alone.as_object_mut() {
            map.insert(key.name.clone(), value.to_json());
        }
        if let Err(e) = serde_json::from_value::<T>(alone) {
            diags.push(Diagnostic::at(
                &value.span,
                format!("{field}.{}", key.name),
                e.to_string(),
            ));
            return None;
        }
    }
    diags.push(Diagnostic::at(&node.span, field, error));
    None
}

/// Where each setting of a block comes from: every value the block writes (with its
/// span), then each built-in default under `prefix` it does not write (no span).
pub(crate) fn block_provenance(prefix: &str, node: Option<&Node>, out: &mut Vec<Provenance>) {
    let mut written = Vec::new();
    if let Some(node) = node {
        leaves(prefix, node, &mut written);
    }
    for (path, value, n) in &written {
        out.push(Provenance {
            path: path.clone(),
            value: value.clone(),
            span: Some(n.clone()),
        });
    }
    builtin_provenance(prefix, |p| written.iter().any(|(w, _, _)| w == p), out);
}

/// The built-in defaults under `prefix` (a path or its parent) that `is_set` says were not
/// written, as provenance without a span.
pub(crate) fn builtin_provenance(
    prefix: &str,
    is_set: impl Fn(&str) -> bool,
    out: &mut Vec<Provenance>,
) {
    for b in BUILTIN_DEFAULTS {
        let under = b.path == prefix
            || b.path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'));
        if under && !is_set(b.path) {
            out.push(Provenance {
                path: b.path.to_string(),
                value: b.value.to_string(),
                span: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;
    use crate::yaml_loader::parse;

    #[test]
    fn the_table_has_each_path_once() {
        for (i, a) in BUILTIN_DEFAULTS.iter().enumerate() {
            assert!(
                BUILTIN_DEFAULTS[i + 1..].iter().all(|b| b.path != a.path),
                "{} twice",
                a.path
            );
            assert!(!a.value.is_empty(), "{}", a.path);
        }
    }

    #[test]
    fn a_failing_entry_is_located() {
        let root = parse(&SourceFile::new(
            "m.yaml",
            "slurm:\n  burst: 3\n  submit_rate: 0/s\n",
        ))
        .unwrap();
        let block = root.get("slurm").unwrap();
        let mut diags = Diagnostics::default();
        let got: Option<SlurmSettings> =
            typed_block(block, "machine.slurm", &serde_json::json!({}), &mut diags);
        assert!(got.is_none());
        let d = &diags.0[0];
        assert_eq!(d.field, "machine.slurm.submit_rate");
        assert_eq!(d.span.as_ref().map(|s| s.line), Some(3));
        assert!(d.message.contains("0/s"), "{}", d.message);
    }

    #[test]
    fn provenance_says_what_was_written_and_what_is_built_in() {
        let root = parse(&SourceFile::new("m.yaml", "slurm:\n  burst: 3\n")).unwrap();
        let mut out = Vec::new();
        block_provenance("machine.slurm", root.get("slurm"), &mut out);
        let burst = out
            .iter()
            .find(|p| p.path == "machine.slurm.burst")
            .unwrap();
        assert_eq!((burst.value.as_str(), burst.span.is_some()), ("3", true));
        assert_eq!(
            out.iter()
                .filter(|p| p.path == "machine.slurm.burst")
                .count(),
            1
        );
        let rate = out
            .iter()
            .find(|p| p.path == "machine.slurm.submit_rate")
            .unwrap();
        assert_eq!((rate.value.as_str(), rate.span.is_none()), ("2/s", true));
        assert!(out.iter().all(|p| p.path.starts_with("machine.slurm.")));
    }
}
