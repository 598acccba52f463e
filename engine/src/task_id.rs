//! Stable task identity.
//!
//! A task's id is a hash of what defines its work, never of where or how it is scheduled:
//!
//! counted: the hash scheme version; the step kind; the command and output templates; the
//! kind-specific settings (everything in the step except the scheduling fields below); the
//! step's `env`; the contents of plan-time input files; the hash of the environment file of
//! the environment the step runs in (or builds); the task's parameters (as written); and the
//! ids of every upstream task (chained through a per-step digest, so a change upstream
//! reaches every downstream id). Templates with a task's parameters determine the rendered
//! command, so hashing both is hashing the command after templating. The built-in values a
//! template may use count when it uses them (`template_uses`): with `{{seed}}`, the
//! campaign name, step name and `campaign.seed` salt (the seed's inputs besides the
//! parameters); with `{{index}}`, the task's index; with `{{step}}`, the step's name. So a
//! new salt, a renamed step or an index shifted by a removed element reruns exactly the
//! tasks whose command changed (scheme v3).
//!
//! What a task consumed from its `needs` (the fingerprints of the upstream outputs at the
//! time it ran) is not part of the id, which must be known before upstream runs: it is
//! recorded with each success (`tasks.consumed`) and compared on every plan and resume
//! (`freshness`): a changed upstream output makes the consumer stale.
//!
//! not counted: `execution` (retries, backoff, timeout, batch_size, max_running),
//! `resources` (job type, partition, time, memory, ...), `needs`/`condition` themselves
//! (the upstream ids already are), `description`, the machine and the executor.
//!
//! The seed ([`task_seed`]) is not derived from the id: it hashes the campaign name, the
//! step name, the task's parameter values and the optional `campaign.seed` salt — never
//! command text, settings, resources, batch size, executor or machine — so editing a
//! command reruns the step with the same random streams.
//!
//! [`SCHEME`] names the scheme: a change to what is hashed must bump it, and the state
//! database records it, so an upgrade of flow never silently changes every id.

use flow_dsl::array::ParamValue;
use flow_dsl::model::Step;

/// The version of the task-id scheme. Stored in each campaign's state.
pub const SCHEME: &str = "flow-task-v3";

/// Fields of a step that schedule work but do not define it.
pub const SCHEDULING_FIELDS: &[&str] = &[
    "execution",
    "resources",
    "needs",
    "condition",
    "description",
];

/// Which built-in per-task values a step's templates (command, output, env, settings)
/// use: each one used is part of the task's identity, since it changes what the task runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TemplateUses {
    /// `{{seed}}`: its campaign name, step name and `campaign.seed` salt count.
    pub seed: bool,
    /// `{{index}}`: the task's position in its array counts.
    pub index: bool,
    /// `{{step}}`: the step's name counts.
    pub step: bool,
}

/// What `step`'s templates use, read from every `{{...}}` of its settings (over-counting a
/// word inside a helper call only makes an id more specific).
pub fn template_uses(step: &Step) -> TemplateUses {
    let mut work = step.settings.clone();
    if let Some(obj) = work.as_object_mut() {
        obj.remove("array");
        obj.remove("description");
    }
    let text = work.to_string();
    let mut uses = TemplateUses::default();
    let mut rest = text.as_str();
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}").unwrap_or(after.len());
        for word in after[..close].split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            match word {
                "seed" => uses.seed = true,
                "index" => uses.index = true,
                "step" => uses.step = true,
                _ => {}
            }
        }
        rest = &after[close..];
    }
    uses
}

/// Digest of what one step's tasks share: kind, templates, settings, inputs, upstream,
/// and what the seed or the step name add when the templates use them (`uses`, from
/// [`template_uses`]; `campaign` is the campaign's name, `salt` its `campaign.seed`).
pub fn step_work_digest(
    step: &Step,
    input_digest: &str,
    upstream_digest: &str,
    env_digest: &str,
    campaign: &str,
    salt: Option<&str>,
    uses: TemplateUses,
) -> blake3::Hash {
    let mut work = step.settings.clone();
    if let Some(obj) = work.as_object_mut() {
        for f in SCHEDULING_FIELDS {
            obj.remove(*f);
        }
        // The array itself is not hashed: each task hashes its own parameters, so adding
        // elements to an array leaves the existing ids alone.
        obj.remove("array");
    }
    let mut h = blake3::Hasher::new();
    h.update(SCHEME.as_bytes());
    h.update(b"\0kind\0");
    h.update(step.kind.as_str().as_bytes());
    h.update(b"\0work\0");
    h.update(canonical_json(&work).as_bytes());
    h.update(b"\0inputs\0");
    h.update(input_digest.as_bytes());
    h.update(b"\0upstream\0");
    h.update(upstream_digest.as_bytes());
    h.update(b"\0environment\0");
    h.update(env_digest.as_bytes());
    if uses.seed {
        // The seed is campaign, step, salt and the parameters (already hashed per task).
        for part in [
            "\0seed\0",
            campaign,
            "\0",
            &step.name,
            "\0",
            salt.unwrap_or(""),
        ] {
            h.update(part.as_bytes());
        }
    }
    if uses.step {
        h.update(b"\0step\0");
        h.update(step.name.as_bytes());
    }
    h.finalize()
}

/// Digest of a step's own work (kind, templates, settings) without inputs, upstream or
/// environment: compared between runs to say "command/settings changed".
pub fn settings_digest(step: &Step) -> String {
    let mut work = step.settings.clone();
    if let Some(obj) = work.as_object_mut() {
        for f in SCHEDULING_FIELDS {
            obj.remove(*f);
        }
        obj.remove("array");
    }
    blake3::hash(format!("{}\0{}", step.kind.as_str(), canonical_json(&work)).as_bytes()).to_hex()
        [..16]
        .to_string()
}

/// JSON with object keys sorted, so field order in the YAML never changes an id.
pub fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String((*k).clone()),
                        canonical_json(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

/// The id of one task: 20 hex digits (80 bits) of blake3 over the step digest and the
/// task's parameters.
///
/// `index` is the task's position in its array when the step's templates use `{{index}}`
/// (removing an element before it then changes what it runs), `None` otherwise.
pub fn task_id(
    step_digest: &blake3::Hash,
    params: &[(String, ParamValue)],
    index: Option<u64>,
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(step_digest.as_bytes());
    if let Some(i) = index {
        h.update(b"index=");
        h.update(&i.to_le_bytes());
        h.update(b"\0");
    }
    for (k, v) in params {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.text.as_bytes());
        h.update(b"\0");
    }
    let hex = h.finalize().to_hex();
    hex[..20].to_string()
}

/// The deterministic per-task seed (u64): campaign name, step name, the task's parameter
/// values (name and text as written) and the optional campaign-level salt. Nothing else.
pub fn task_seed(
    campaign: &str,
    step: &str,
    params: &[(String, ParamValue)],
    salt: Option<&str>,
) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"flow-seed-v2\0");
    for part in [campaign, step, salt.unwrap_or("")] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    for (k, v) in params {
        // qe-scf's structure digest identifies content, not the task's parameters.
        if k == "structure_digest" {
            continue;
        }
        h.update(&(k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update(&(v.text.len() as u64).to_le_bytes());
        h.update(v.text.as_bytes());
    }
    let h = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b) >> 1 // keep it positive for languages without u64 (numpy seeds, JSON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":{"c":3,"d":2},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }

    #[test]
    fn ids_depend_on_parameters_and_seeds_are_stable() {
        let d = blake3::hash(b"x");
        let a = task_id(&d, &[("r".into(), ParamValue::int(1))], None);
        let b = task_id(&d, &[("r".into(), ParamValue::int(2))], None);
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
    }

    #[test]
    fn seeds_depend_on_campaign_step_params_and_salt_only() {
        let p1 = [("r".to_string(), ParamValue::int(1))];
        let p2 = [("r".to_string(), ParamValue::int(2))];
        let s = task_seed("c", "mocks", &p1, None);
        assert_eq!(s, task_seed("c", "mocks", &p1, None));
        assert_ne!(s, task_seed("c", "mocks", &p2, None));
        assert_ne!(s, task_seed("c", "other", &p1, None));
        assert_ne!(s, task_seed("d", "mocks", &p1, None));
        assert_ne!(s, task_seed("c", "mocks", &p1, Some("2")));
        // Boundaries are length-prefixed: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            task_seed("ab", "c", &[], None),
            task_seed("a", "bc", &[], None)
        );
        assert!(s < (1 << 63));
    }
}
