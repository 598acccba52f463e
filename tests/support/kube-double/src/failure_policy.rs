//! `spec.podFailurePolicy` of a Job: which action applies to a failed pod.

use serde_json::Value;

/// What the Job controller does with a failed pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Recreate the index; the failure does not count.
    Ignore,
    /// The index fails for good.
    FailIndex,
    /// The whole Job fails.
    FailJob,
    /// Count against `backoffLimitPerIndex` (also: no rule matched).
    Count,
}

/// The action of the first rule of `policy` (the `podFailurePolicy` object)
/// that matches `pod`, with the rule's position; `Count` when none matches.
pub fn evaluate(policy: Option<&Value>, pod: &Value) -> (Action, Option<usize>) {
    let rules = policy
        .and_then(|p| p.get("rules"))
        .and_then(Value::as_array);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        if rule_matches(rule, pod) {
            let action = match rule.get("action").and_then(Value::as_str) {
                Some("Ignore") => Action::Ignore,
                Some("FailIndex") => Action::FailIndex,
                Some("FailJob") => Action::FailJob,
                _ => Action::Count,
            };
            return (action, Some(i));
        }
    }
    (Action::Count, None)
}

fn rule_matches(rule: &Value, pod: &Value) -> bool {
    if let Some(codes) = rule.get("onExitCodes") {
        let container = codes.get("containerName").and_then(Value::as_str);
        let values: Vec<i64> = codes
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        let not_in = codes.get("operator").and_then(Value::as_str) == Some("NotIn");
        let statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array);
        return statuses.into_iter().flatten().any(|cs| {
            if container.is_some_and(|c| cs.get("name").and_then(Value::as_str) != Some(c)) {
                return false;
            }
            let Some(code) = cs
                .pointer("/state/terminated/exitCode")
                .and_then(Value::as_i64)
            else {
                return false;
            };
            code != 0 && (values.contains(&code) != not_in)
        });
    }
    if let Some(wanted) = rule.get("onPodConditions").and_then(Value::as_array) {
        let conditions = pod.pointer("/status/conditions").and_then(Value::as_array);
        return wanted.iter().any(|w| {
            let kind = w.get("type").and_then(Value::as_str);
            // Defaults to "True"; k8s-openapi sends "" when the field was left out.
            let status = w
                .get("status")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("True");
            conditions.into_iter().flatten().any(|c| {
                c.get("type").and_then(Value::as_str) == kind
                    && c.get("status").and_then(Value::as_str) == Some(status)
            })
        });
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failed_pod(code: i64, conditions: Value) -> Value {
        json!({"status": {"phase": "Failed", "conditions": conditions,
            "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": code}}}]}})
    }

    fn policy() -> Value {
        json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "FailIndex", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
        ]})
    }

    #[test]
    fn first_matching_rule_wins() {
        let disrupted = failed_pod(137, json!([{"type": "DisruptionTarget", "status": "True"}]));
        assert_eq!(
            evaluate(Some(&policy()), &disrupted),
            (Action::Ignore, Some(0))
        );
        let mut empty_status = policy();
        empty_status["rules"][0]["onPodConditions"][0]["status"] = json!("");
        assert_eq!(
            evaluate(Some(&empty_status), &disrupted),
            (Action::Ignore, Some(0))
        );
        assert_eq!(
            evaluate(Some(&policy()), &failed_pod(42, json!([]))),
            (Action::FailJob, Some(1))
        );
        assert_eq!(
            evaluate(Some(&policy()), &failed_pod(7, json!([]))),
            (Action::FailIndex, Some(2))
        );
        assert_eq!(
            evaluate(Some(&policy()), &failed_pod(1, json!([]))),
            (Action::Count, None)
        );
        assert_eq!(
            evaluate(None, &failed_pod(1, json!([]))),
            (Action::Count, None)
        );
    }

    #[test]
    fn condition_status_and_container_name_must_match() {
        let p = json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "False"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "other", "operator": "In", "values": [3]}},
        ]});
        let pod = failed_pod(3, json!([{"type": "DisruptionTarget", "status": "True"}]));
        assert_eq!(evaluate(Some(&p), &pod), (Action::Count, None));
    }
}
