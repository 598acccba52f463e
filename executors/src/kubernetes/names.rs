//! Names and label values that Kubernetes accepts: a deterministic DNS-1123 Job name from
//! campaign, step and batch, and label values squeezed into the 63-character label syntax.
//!
//! The Job name is a pure function of (campaign, step, batch key), so a driver that crashed
//! after a create and submits the same batch again meets `409 AlreadyExists` for the same name
//! and can adopt the Job instead of creating a second one.

/// Longest Job name this module produces. Kubernetes allows 63 for the name itself, but pods
/// of an Indexed Job are named `<job>-<index>-<5 random>`, so a shorter name keeps pod names
/// and the `batch.kubernetes.io/job-name` label readable and whole.
pub const MAX_JOB_NAME_LEN: usize = 47;

/// Longest label value Kubernetes accepts.
pub const MAX_LABEL_VALUE_LEN: usize = 63;

/// Hex digits of the BLAKE3 hash kept in Job names (64 bits: collisions are not a concern
/// for the batches of one namespace).
const NAME_HASH_HEX: usize = 16;

/// Hex digits of the hash appended to a label value that had to be altered.
const LABEL_HASH_HEX: usize = 8;

/// The Job name of one batch: `flow-<step slug>-<16 hex digits>`, where the hex digits are
/// the BLAKE3 hash of campaign, step and batch key (each length-prefixed, so no two triples
/// collide by concatenation) and the slug is the step name lowered to `[a-z0-9-]`, cut to
/// fit. Always a valid DNS-1123 label of at most [`MAX_JOB_NAME_LEN`] characters.
pub fn job_name(campaign: &str, step: &str, batch_key: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in [campaign, step, batch_key] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let hash = hasher.finalize().to_hex();
    let hash = &hash[..NAME_HASH_HEX];
    let room = MAX_JOB_NAME_LEN - "flow-".len() - 1 - NAME_HASH_HEX;
    let slug = dns_slug(step, room);
    if slug.is_empty() {
        format!("flow-{hash}")
    } else {
        format!("flow-{slug}-{hash}")
    }
}

/// `text` lowered to `[a-z0-9-]` (every other character, and runs of them, become one `-`),
/// without leading or trailing `-`, at most `max_len` characters.
fn dns_slug(text: &str, max_len: usize) -> String {
    let mut slug = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_matches('-').chars().take(max_len).collect();
    slug.trim_end_matches('-').to_string()
}

/// True when `value` is a valid label value: empty, or at most 63 characters of
/// `[A-Za-z0-9._-]` that begin and end with an alphanumeric character.
pub fn is_valid_label_value(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let bytes = value.as_bytes();
    value.len() <= MAX_LABEL_VALUE_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// `value` as a label value: unchanged when it is already valid; otherwise every character
/// outside `[A-Za-z0-9._-]` becomes `_`, the ends are trimmed to alphanumerics, the result is
/// cut to fit, and `-` plus 8 hex digits of the original's hash are appended, so two values
/// that differ only in the removed characters keep different labels. The full value belongs
/// in an annotation, which has no such limit.
pub fn label_value(value: &str) -> String {
    if is_valid_label_value(value) {
        return value.to_string();
    }
    let hash = blake3::hash(value.as_bytes()).to_hex();
    let hash = &hash[..LABEL_HASH_HEX];
    let cleaned = crate::safe_name::safe_chars(value);
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let room = MAX_LABEL_VALUE_LEN - 1 - LABEL_HASH_HEX;
    let head: String = cleaned.chars().take(room).collect();
    let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if head.is_empty() {
        hash.to_string()
    } else {
        format!("{head}-{hash}")
    }
}

/// True when `name` is a DNS-1123 label (namespaces, volume and container names): 1 to 63
/// characters of `[a-z0-9-]`, beginning and ending with an alphanumeric character.
pub fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// True when `name` is a DNS-1123 subdomain (Secret, ConfigMap, ServiceAccount and claim
/// names): at most 253 characters, dot-separated DNS-1123 labels.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_deterministic_valid_and_distinct() {
        let a = job_name("v1.0_first-run", "mocks", "mocks-b0003");
        assert_eq!(a, job_name("v1.0_first-run", "mocks", "mocks-b0003"));
        assert!(a.starts_with("flow-mocks-"), "{a}");
        assert!(is_dns1123_label(&a), "{a}");
        assert_ne!(a, job_name("v1.0_first-run", "mocks", "mocks-b0004"));
        assert_ne!(a, job_name("v1.1_first-run", "mocks", "mocks-b0003"));
        // Length-prefixed parts: moving a character between parts changes the name.
        assert_ne!(job_name("ab", "c", "d"), job_name("a", "bc", "d"));
    }

    #[test]
    fn job_names_of_awkward_steps_stay_within_limits() {
        for step in [
            "",
            "---",
            "Étape_Ünicode",
            "UPPER_case.step",
            &"very-long-step-name-".repeat(10),
            "x-",
        ] {
            let name = job_name("c", step, "b");
            assert!(is_dns1123_label(&name), "{step:?} -> {name:?}");
            assert!(name.len() <= MAX_JOB_NAME_LEN, "{name}");
        }
        assert!(job_name("c", "UPPER_case.step", "b").starts_with("flow-upper-case-step-"));
    }

    #[test]
    fn valid_label_values_are_kept() {
        for v in ["", "mocks", "v1.0_first-production-run", "a", "A-b_c.9"] {
            assert_eq!(label_value(v), v);
        }
    }

    #[test]
    fn invalid_label_values_are_sanitised_and_stay_distinct() {
        let long = "r".repeat(100);
        for v in [
            "my campaign",
            "-leading",
            "trailing.",
            "ünï",
            "a/b:c",
            long.as_str(),
            "!!!",
        ] {
            let l = label_value(v);
            assert!(is_valid_label_value(&l), "{v:?} -> {l:?}");
            assert!(!l.is_empty());
        }
        assert_ne!(label_value("a b"), label_value("a/b"));
        assert_eq!(label_value("my campaign"), label_value("my campaign"));
        assert!(label_value("my campaign").starts_with("my_campaign-"));
        assert_eq!(label_value(&long).len(), MAX_LABEL_VALUE_LEN);
    }

    #[test]
    fn dns_names() {
        assert!(is_dns1123_label("flow"));
        assert!(!is_dns1123_label("Flow"));
        assert!(!is_dns1123_label("-flow"));
        assert!(!is_dns1123_label(""));
        assert!(is_dns1123_subdomain("flow-campaigns.v1"));
        assert!(!is_dns1123_subdomain("flow..x"));
    }
}
