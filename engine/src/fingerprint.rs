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
