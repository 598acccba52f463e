//! A container's environment: `env`, `envFrom`, the downward API, Secrets
//! (from the options) and ConfigMaps (stored).

use crate::expand::expand;
use crate::kinds::Kind;
use crate::state::State;
use crate::store::{name_of, uid_of};
use serde_json::Value;
use std::collections::BTreeMap;

/// Key/value data of a Secret or ConfigMap source.
fn source(st: &State, ns: &str, is_secret: bool, name: &str) -> Option<BTreeMap<String, String>> {
    if is_secret {
        return st.options.secrets.get(name).cloned();
    }
    let cm = st.store.get(Kind::ConfigMap, ns, name)?;
    Some(
        cm.get("data")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

fn describe(is_secret: bool) -> (&'static str, &'static str) {
    if is_secret {
        ("secret", "Secret")
    } else {
        ("configmap", "ConfigMap")
    }
}

/// A downward-API `fieldPath` of the pod.
pub fn field(pod: &Value, path: &str) -> String {
    let quoted = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .map(str::to_string)
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(key) = quoted("metadata.annotations['") {
        return text(
            pod.pointer("/metadata/annotations")
                .and_then(|a| a.get(&key)),
        );
    }
    if let Some(key) = quoted("metadata.labels['") {
        return text(pod.pointer("/metadata/labels").and_then(|a| a.get(&key)));
    }
    match path {
        "metadata.name" => name_of(pod).to_string(),
        "metadata.namespace" => text(pod.pointer("/metadata/namespace")),
        "metadata.uid" => uid_of(pod).to_string(),
        "spec.nodeName" => "kube-double".into(),
        "spec.serviceAccountName" => text(pod.pointer("/spec/serviceAccountName")),
        "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
        _ => String::new(),
    }
}

/// The resolved environment, in order; `Err` is the
/// `CreateContainerConfigError` message (a missing, non-optional source).
pub fn resolve(
    st: &State,
    pod: &Value,
    container: &Value,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut vars: Vec<(String, String)> = vec![("HOSTNAME".into(), name_of(pod).to_string())];
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(name, _)| *name != k);
        vars.push((k, v));
    };
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or("");
        let (is_secret, reference) = match (from.get("secretRef"), from.get("configMapRef")) {
            (Some(r), _) => (true, r),
            (None, Some(r)) => (false, r),
            _ => continue,
        };
        let name = reference["name"].as_str().unwrap_or("");
        match source(st, ns, is_secret, name) {
            Some(data) => {
                for (k, v) in data {
                    set(&mut vars, format!("{prefix}{k}"), v);
                }
            }
            None if reference["optional"] == true => {}
            None => return Err(format!("{} \"{name}\" not found", describe(is_secret).0)),
        }
    }
    for entry in container["env"].as_array().into_iter().flatten() {
        let Some(name) = entry["name"].as_str() else {
            continue;
        };
        let value = if let Some(v) = entry.get("value").and_then(Value::as_str) {
            let snapshot = vars.clone();
            expand(v, |n| {
                snapshot
                    .iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            })
        } else if let Some(from) = entry.get("valueFrom") {
            if let Some(path) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
                field(pod, path)
            } else if let Some((is_secret, r)) = from
                .get("secretKeyRef")
                .map(|r| (true, r))
                .or_else(|| from.get("configMapKeyRef").map(|r| (false, r)))
            {
                let (src, key) = (
                    r["name"].as_str().unwrap_or(""),
                    r["key"].as_str().unwrap_or(""),
                );
                let (lower, upper) = describe(is_secret);
                match source(st, ns, is_secret, src) {
                    Some(data) => match data.get(key) {
                        Some(v) => v.clone(),
                        None if r["optional"] == true => continue,
                        None => {
                            return Err(format!("couldn't find key {key} in {upper} {ns}/{src}"))
                        }
                    },
                    None if r["optional"] == true => continue,
                    None => return Err(format!("{lower} \"{src}\" not found")),
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut vars, name.to_string(), value);
    }
    Ok(vars)
}
