//! Validation and defaulting on create, as the API server's admission does
//! (a small, useful subset).

use crate::kinds::Kind;
use crate::status::ApiError;
use crate::store::{name_of, uid_of};
use serde_json::{json, Value};

/// Rejects objects a real API server would reject (422), in the subset that
/// catches manifest bugs: names, containers, Job restart policy and modes.
pub fn validate(kind: Kind, object: &Value) -> Result<(), ApiError> {
    let name = name_of(object);
    let invalid = |cause: String| Err(ApiError::invalid(kind, name, &cause));
    let generate = object
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() && generate.is_empty() {
        return invalid("metadata.name: Required value: name or generateName is required".into());
    }
    if !name.is_empty() && !dns_subdomain(name) {
        return invalid(format!(
            "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
        ));
    }
    if let Some(labels) = object.pointer("/metadata/labels") {
        let ok = labels.as_object().is_some_and(|m| {
            m.values()
                .all(|v| v.as_str().is_some_and(|s| s.len() <= 63))
        });
        if !ok {
            return invalid("metadata.labels: Invalid value: label values must be strings of at most 63 characters".into());
        }
    }
    match kind {
        Kind::ConfigMap => Ok(()),
        Kind::Pod => validate_pod_spec(object.get("spec"), "spec").or_else(invalid),
        Kind::Job => validate_job(object).or_else(invalid),
    }
}

fn dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn validate_pod_spec(spec: Option<&Value>, at: &str) -> Result<(), String> {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| format!("{at}.containers: Required value"))?;
    for (i, c) in containers.iter().enumerate() {
        for field in ["name", "image"] {
            if c.get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!("{at}.containers[{i}].{field}: Required value"));
            }
        }
    }
    Ok(())
}

fn validate_job(job: &Value) -> Result<(), String> {
    let spec = job.get("spec").ok_or("spec: Required value")?;
    validate_pod_spec(spec.pointer("/template/spec"), "spec.template.spec")?;
    let restart = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str);
    if !matches!(restart, Some("Never" | "OnFailure")) {
        return Err(format!(
            "spec.template.spec.restartPolicy: {}: supported values: \"OnFailure\", \"Never\"",
            restart.map_or("Required value".into(), |r| format!(
                "Unsupported value: {r:?}"
            ))
        ));
    }
    if spec.get("podFailurePolicy").is_some() && restart != Some("Never") {
        return Err(
            "spec.podFailurePolicy: Invalid value: only allowed with restartPolicy Never".into(),
        );
    }
    let mode = spec.get("completionMode").and_then(Value::as_str);
    if mode == Some("Indexed") && spec.get("completions").and_then(Value::as_i64).is_none() {
        return Err("spec.completions: Required value: when completion mode is Indexed".into());
    }
    if mode != Some("Indexed") && spec.get("backoffLimitPerIndex").is_some() {
        return Err(
            "spec.backoffLimitPerIndex: Invalid value: requires indexed completion mode".into(),
        );
    }
    for field in [
        "completions",
        "parallelism",
        "backoffLimitPerIndex",
        "ttlSecondsAfterFinished",
    ] {
        if spec
            .get(field)
            .and_then(Value::as_i64)
            .is_some_and(|n| n < 0)
        {
            return Err(format!(
                "spec.{field}: Invalid value: must be greater than or equal to 0"
            ));
        }
    }
    Ok(())
}

fn default_containers(spec: &mut Value) {
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for c in containers {
            if c.get("terminationMessagePath").is_none() {
                c["terminationMessagePath"] = json!("/dev/termination-log");
            }
            if c.get("terminationMessagePolicy").is_none() {
                c["terminationMessagePolicy"] = json!("File");
            }
        }
    }
}

/// Defaults applied after metadata is stamped (uid known).
pub fn default(kind: Kind, object: &mut Value) {
    match kind {
        Kind::ConfigMap => {}
        Kind::Pod => {
            if let Some(spec) = object.get_mut("spec") {
                default_containers(spec);
                if spec.get("restartPolicy").is_none() {
                    spec["restartPolicy"] = json!("Always");
                }
            }
            object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        Kind::Job => {
            let (name, uid) = (name_of(object).to_string(), uid_of(object).to_string());
            let spec = &mut object["spec"];
            if spec.get("parallelism").is_none() {
                spec["parallelism"] = json!(1);
            }
            if spec.get("completions").is_none() {
                spec["completions"] = json!(1);
            }
            spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
            let template = &mut spec["template"];
            if !template.get("metadata").is_some_and(Value::is_object) {
                template["metadata"] = json!({});
            }
            if !template["metadata"]
                .get("labels")
                .is_some_and(Value::is_object)
            {
                template["metadata"]["labels"] = json!({});
            }
            let labels = &mut template["metadata"]["labels"];
            for (k, v) in [
                ("batch.kubernetes.io/controller-uid", &uid),
                ("batch.kubernetes.io/job-name", &name),
                ("controller-uid", &uid),
                ("job-name", &name),
            ] {
                labels[k] = json!(v);
            }
            if let Some(pod_spec) = template.get_mut("spec") {
                default_containers(pod_spec);
            }
            object["status"] = json!({});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(restart: &str) -> Value {
        json!({"metadata": {"name": "j"}, "spec": {"completions": 2, "completionMode": "Indexed",
            "template": {"spec": {"restartPolicy": restart, "containers": [{"name": "main", "image": "x"}]}}}})
    }

    #[test]
    fn job_validation() {
        assert!(validate(Kind::Job, &job("Never")).is_ok());
        let err = validate(Kind::Job, &job("Always")).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.contains("restartPolicy"), "{}", err.message);
        assert!(validate(Kind::Pod, &json!({"metadata": {"name": "Bad_Name"}})).is_err());
        assert!(validate(Kind::ConfigMap, &json!({"metadata": {}})).is_err());
    }
}
