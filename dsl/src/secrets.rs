//! Secrets written into campaign files: which variable names hold one, how flow shows
//! them (`***`), and the warning that says how to pass them instead.
//!
//! flow passes such a value to the task unchanged (it is the author's choice to write it),
//! but nothing flow prints or keeps of its own shows it: `flow plan --explain`, the config
//! snapshot in `metadata/`, the state database. What the task itself prints is the task's.

use crate::model::Campaign;

/// How a secret value is shown.
pub const MASK: &str = "***";

/// Whether an environment variable's name says it holds a secret: it contains TOKEN,
/// SECRET, PASSWORD, PASSWD, CREDENTIAL or APIKEY / API_KEY, or ends in KEY (case
/// insensitive).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "APIKEY",
        "API_KEY",
    ]
    .iter()
    .any(|w| upper.contains(w))
        || upper.ends_with("KEY")
}

/// A setting's value as flow shows it: masked when its path is `env.NAME` (or ends in
/// `.env.NAME`) with a secret name.
pub fn shown_value<'a>(path: &str, value: &'a str) -> &'a str {
    let env_name = path
        .strip_prefix("env.")
        .or_else(|| path.rsplit_once(".env.").map(|(_, n)| n));
    match env_name {
        Some(name) if is_secret_name(name) => MASK,
        _ => value,
    }
}

/// A copy of a JSON document (the campaign snapshot) with the value of every secret-named
/// variable of every `env` object masked.
pub fn masked(doc: &serde_json::Value) -> serde_json::Value {
    match doc {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("env", serde_json::Value::Object(vars)) => serde_json::Value::Object(
                            vars.iter()
                                .map(|(name, value)| {
                                    let value = if is_secret_name(name) && value.is_string() {
                                        serde_json::Value::String(MASK.into())
                                    } else {
                                        masked(value)
                                    };
                                    (name.clone(), value)
                                })
                                .collect(),
                        ),
                        _ => masked(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(masked).collect())
        }
        other => other.clone(),
    }
}

/// One warning per secret-named variable whose value is written in a campaign or machine
/// file, located at the line that holds it.
pub fn literal_secret_warnings(campaign: &Campaign) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for step in &campaign.steps {
        for p in &step.provenance {
            let Some(name) = p.path.strip_prefix("env.") else {
                continue;
            };
            if !is_secret_name(name) || p.value.is_empty() {
                continue;
            }
            let at = match &p.span {
                Some(s) => format!("{}:{}", s.file.name, s.line),
                None => continue,
            };
            // A default's line is shared by every step: say it once.
            if !seen.insert((at.clone(), name.to_string())) {
                continue;
            }
            out.push(format!(
                "warning: {at}: steps.{}.env.{name} holds a literal secret; flow passes it to the task but shows and stores it as {MASK}. Keep it out of the file: export {name} in the environment `flow run` starts from (local and Slurm tasks inherit it), or on Kubernetes name a Secret in the machine's `kubernetes.secret_env`",
                step.name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for n in [
            "API_TOKEN",
            "github_token",
            "DB_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "OPENAI_APIKEY",
            "SSH_KEY",
            "my_credentials",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in ["PATH", "OMP_NUM_THREADS", "KEYWORDS_FILE", "HOME"] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn values_and_snapshots_are_masked() {
        assert_eq!(shown_value("env.API_TOKEN", "s3cr3t"), MASK);
        assert_eq!(shown_value("machine.setup.env.DB_PASSWORD", "s3cr3t"), MASK);
        assert_eq!(shown_value("env.PATH", "/bin"), "/bin");
        assert_eq!(shown_value("command", "echo TOKEN"), "echo TOKEN");
        let doc = serde_json::json!({
            "steps": {"a": {"env": {"API_TOKEN": "s3cr3t", "PLAIN": "ok"}}},
            "machine": {"setup": {"env": {"DB_PASSWORD": "pw"}}},
        });
        let m = masked(&doc);
        assert_eq!(m["steps"]["a"]["env"]["API_TOKEN"], MASK);
        assert_eq!(m["steps"]["a"]["env"]["PLAIN"], "ok");
        assert_eq!(m["machine"]["setup"]["env"]["DB_PASSWORD"], MASK);
        assert!(!m.to_string().contains("s3cr3t"));
    }
}
