//! The tag flow puts on every Slurm job (in `--comment`, and a readable `--job-name`), so a
//! restarted driver finds this campaign's jobs in squeue and adopts them.

/// Identity of one submitted array: campaign, step, batch and the hash of its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobTag {
    pub campaign: String,
    pub step: String,
    pub batch_key: String,
    /// First 16 hex digits of the manifest's BLAKE3 hash: names the manifest file.
    pub manifest_hash: String,
}

const PREFIX: &str = "flow1";

impl JobTag {
    /// The `--comment` value: `flow1:<campaign>:<step>:<batch>:<hash>`, each part
    /// percent-encoded outside `[A-Za-z0-9._-]`, so it has no blanks, quotes or colons.
    pub fn to_comment(&self) -> String {
        format!(
            "{PREFIX}:{}:{}:{}:{}",
            encode(&self.campaign),
            encode(&self.step),
            encode(&self.batch_key),
            encode(&self.manifest_hash)
        )
    }

    /// Read a comment written by [`JobTag::to_comment`]; `None` for any other comment.
    pub fn from_comment(comment: &str) -> Option<JobTag> {
        let mut parts = comment.trim().split(':');
        if parts.next()? != PREFIX {
            return None;
        }
        let tag = JobTag {
            campaign: decode(parts.next()?)?,
            step: decode(parts.next()?)?,
            batch_key: decode(parts.next()?)?,
            manifest_hash: decode(parts.next()?)?,
        };
        parts.next().is_none().then_some(tag)
    }

    /// A readable job name for squeue: `<campaign>.<batch>`, limited to safe characters.
    pub fn job_name(&self) -> String {
        let raw = format!("{}.{}", self.campaign, self.batch_key);
        crate::safe_name::safe_chars(&raw)
            .chars()
            .take(120)
            .collect()
    }
}

fn encode(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        let tag = JobTag {
            campaign: "v1.0_first run: \"x\"".into(),
            step: "mocks".into(),
            batch_key: "mocks-b0003".into(),
            manifest_hash: "0123abcd".into(),
        };
        let comment = tag.to_comment();
        assert!(!comment.contains([' ', '"', '\'']), "{comment}");
        assert_eq!(comment.matches(':').count(), 4);
        assert_eq!(JobTag::from_comment(&comment), Some(tag.clone()));
        assert_eq!(tag.job_name(), "v1.0_first_run___x_.mocks-b0003");
    }

    #[test]
    fn foreign_comments_are_ignored() {
        assert_eq!(JobTag::from_comment(""), None);
        assert_eq!(JobTag::from_comment("(null)"), None);
        assert_eq!(JobTag::from_comment("flow1:a:b"), None);
        assert_eq!(JobTag::from_comment("flow1:a:b:c:d:e"), None);
        assert_eq!(JobTag::from_comment("flow1:a:b:c:%G0"), None);
    }
}
