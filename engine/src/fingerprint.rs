//! Fingerprints of what a task produced: how a consumer knows its input changed.

/// The product fingerprint of a file: size, mtime and inode.
pub fn file_product(path: &std::path::Path) -> std::io::Result<String> {
    let f = flow_mock_generation::FileFingerprint::of(path)?;
    Ok(format!(
        "file:{}:{}:{}",
        f.size_bytes,
        f.modified_unix_ns,
        f.inode.unwrap_or(0)
    ))
}

/// Why a file's product changed in a way its task did not make: its size or modification
/// time differ (truncated, rewritten, replaced). `None` when only the inode changed (a
/// directory copied or moved with its times kept). Both are [`file_product`]s.
pub fn rewritten(recorded: &str, now: &str) -> Option<String> {
    let fields = |p: &str| {
        let mut parts = p.strip_prefix("file:")?.split(':');
        Some((parts.next()?.to_string(), parts.next()?.to_string()))
    };
    match (fields(recorded), fields(now)) {
        (Some((size_a, _)), Some((size_b, _))) if size_a != size_b => {
            Some(format!("{size_a} bytes then, {size_b} now"))
        }
        (Some((_, time_a)), Some((_, time_b))) if time_a != time_b => Some("modified since".into()),
        (Some(_), Some(_)) => None,
        _ => Some("its fingerprint differs".into()),
    }
}
