//! What a Job document may hold, checked before one is rendered: the machine's
//! `kubernetes:` settings (namespace, image, names, paths, placement, user ids) and every
//! environment variable name, so a value never ends up somewhere the API server would
//! refuse it or read it as something else. Errors name the setting and what was expected.

use super::ManifestError;
use crate::kubernetes::names::{is_dns1123_label, is_dns1123_subdomain, is_valid_label_value};
use flow_dsl::machine_settings::kubernetes::{EnvFromSource, KubernetesSettings, Toleration};

pub(super) fn check_env_name(name: &str) -> Result<(), ManifestError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ManifestError::InvalidEnvName { name: name.into() })
    }
}

/// A toleration the API server would accept: operator `Exists` or `Equal` (default), no value
/// with `Exists`, a key unless `Exists` tolerates everything, a known effect, and
/// `tolerationSeconds` only with `NoExecute`. Err: (offending value, what was expected).
pub(super) fn check_toleration(t: &Toleration) -> Result<(), (String, &'static str)> {
    let operator = t.operator.as_deref().unwrap_or("Equal");
    match operator {
        "Exists" if t.value.as_deref().is_some_and(|v| !v.is_empty()) => {
            return Err((
                t.value.clone().unwrap_or_default(),
                "toleration without a value (operator Exists)",
            ))
        }
        "Exists" => {}
        "Equal" if t.key.as_deref().unwrap_or("").is_empty() => {
            return Err((String::new(), "toleration key (operator Equal)"))
        }
        "Equal" => {}
        other => return Err((other.to_string(), "toleration operator (Exists or Equal)")),
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if !is_label_key(key) {
            return Err((key.to_string(), "toleration key ([prefix/]name)"));
        }
    }
    match t.effect.as_deref() {
        None | Some("") | Some("NoSchedule") | Some("PreferNoSchedule") | Some("NoExecute") => {}
        Some(other) => {
            return Err((
                other.to_string(),
                "toleration effect (NoSchedule, PreferNoSchedule or NoExecute)",
            ))
        }
    }
    if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
        return Err((
            t.effect.clone().unwrap_or_default(),
            "effect NoExecute with toleration_seconds",
        ));
    }
    Ok(())
}

/// A label key: an optional DNS-1123 subdomain prefix and `/`, then a name of at most 63
/// characters of `[A-Za-z0-9._-]` beginning and ending with an alphanumeric character.
pub(super) fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && is_valid_label_value(name)
}

pub(super) fn require_absolute(what: &str, path: &str) -> Result<(), ManifestError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(ManifestError::RelativePath {
            what: what.into(),
            value: path.into(),
        })
    }
}

pub(super) fn check_config(config: &KubernetesSettings) -> Result<(), ManifestError> {
    let invalid = |field: &str, value: &str, expected: &str| ManifestError::InvalidConfig {
        field: field.into(),
        value: value.into(),
        expected: expected.into(),
    };
    if !is_dns1123_label(&config.namespace) {
        return Err(invalid(
            "namespace",
            &config.namespace,
            "namespace (DNS-1123 label)",
        ));
    }
    if config.image.trim().is_empty() || config.image.chars().any(char::is_whitespace) {
        return Err(invalid("image", &config.image, "image reference"));
    }
    let subdomains = config
        .image_pull_secrets
        .iter()
        .map(|n| ("image_pull_secrets", n))
        .chain(
            config
                .service_account
                .iter()
                .map(|n| ("service_account", n)),
        )
        .chain(config.volume.iter().map(|v| ("volume.claim", &v.claim)))
        .chain(config.env_from.iter().map(|s| match s {
            EnvFromSource::Secret(n) => ("env_from.secret", n),
            EnvFromSource::ConfigMap(n) => ("env_from.config_map", n),
        }))
        .chain(
            config
                .secret_env
                .iter()
                .map(|s| ("secret_env.secret", &s.secret)),
        );
    for (field, name) in subdomains {
        if !is_dns1123_subdomain(name) {
            return Err(invalid(field, name, "object name (DNS-1123 subdomain)"));
        }
    }
    if let Some(volume) = &config.volume {
        require_absolute("kubernetes.volume.mount_path", &volume.mount_path)?;
    }
    for (field, id) in [
        ("run_as_user", config.run_as_user),
        ("run_as_group", config.run_as_group),
    ] {
        if let Some(id) = id.filter(|id| *id <= 0) {
            return Err(invalid(field, &id.to_string(), "non-root id (> 0)"));
        }
    }
    let placements = std::iter::once(("", &config.node_selector, &config.tolerations)).chain(
        config
            .job_types
            .iter()
            .map(|(name, p)| (name.as_str(), &p.node_selector, &p.tolerations)),
    );
    for (job_type, selector, tolerations) in placements {
        let prefix = if job_type.is_empty() {
            String::new()
        } else {
            format!("job_types.{job_type}.")
        };
        for (key, value) in selector {
            if !is_label_key(key) {
                return Err(invalid(
                    &format!("{prefix}node_selector"),
                    key,
                    "label key ([prefix/]name)",
                ));
            }
            if !is_valid_label_value(value) || value.is_empty() {
                return Err(invalid(
                    &format!("{prefix}node_selector.{key}"),
                    value,
                    "label value",
                ));
            }
        }
        for t in tolerations {
            check_toleration(t).map_err(|(value, expected)| {
                invalid(&format!("{prefix}tolerations"), &value, expected)
            })?;
        }
    }
    if config.gpu_resource.is_empty() || !config.gpu_resource.contains('/') {
        return Err(invalid(
            "gpu_resource",
            &config.gpu_resource,
            "extended resource name (vendor/resource)",
        ));
    }
    Ok(())
}
