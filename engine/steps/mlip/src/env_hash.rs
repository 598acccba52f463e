//! The identity of a built environment: a hash of what defines its content (the environment
//! file's PEP 723 block, the resolved Python interpreter version, the platform). Pure.
//!
//! The setup code below the block is deliberately not hashed: editing `setup()` does not
//! change what uv installs, and the env keeps a fresh copy of the file for every build-env run.

use std::fmt;

/// Version of the hash recipe; bump it when the inputs change so old envs are not reused.
const HASH_SCHEME: &str = "flow-env-hash/1";

/// A 16-hex-digit environment hash, as used in `{root}/envs/{name}-{hash}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvHash(String);

impl EnvHash {
    /// Wraps an existing hex string (e.g. read back from a directory name).
    pub fn from_hex(hex: &str) -> Self {
        EnvHash(hex.to_string())
    }
    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The platform an environment is built for (`linux-x86_64`), since wheels differ by it.
pub fn current_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// Hashes the PEP 723 block's TOML, the resolved interpreter (e.g. `cpython-3.11.7`) and the
/// platform. Line endings and trailing whitespace in the block do not matter.
pub fn environment_hash(block_toml: &str, resolved_python: &str, platform: &str) -> EnvHash {
    let normalized: Vec<&str> = block_toml
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    let mut hasher = blake3::Hasher::new();
    for part in [
        HASH_SCHEME,
        &normalized.join("\n"),
        resolved_python,
        platform,
    ] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    EnvHash(hasher.finalize().to_hex()[..16].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &str = "requires-python = \">=3.10\"\ndependencies = [\"ase\"]\n";

    #[test]
    fn stable_across_runs_and_versions_of_flow() {
        // A fixed value: if this changes, every user's environments rebuild. Bump HASH_SCHEME on purpose only.
        let h = environment_hash(BLOCK, "cpython-3.11.7", "linux-x86_64");
        assert_eq!(h.as_str().len(), 16);
        assert_eq!(h, environment_hash(BLOCK, "cpython-3.11.7", "linux-x86_64"));
        assert_eq!(h.as_str(), PINNED);
    }

    const PINNED: &str = "ce2e5f09a5c601c3";

    #[test]
    fn whitespace_insensitive_content_sensitive() {
        let base = environment_hash(BLOCK, "cpython-3.11.7", "linux-x86_64");
        let crlf = BLOCK.replace('\n', "  \r\n");
        assert_eq!(
            base,
            environment_hash(&crlf, "cpython-3.11.7", "linux-x86_64")
        );
        assert_ne!(
            base,
            environment_hash(
                "dependencies = [\"ase\", \"numpy\"]",
                "cpython-3.11.7",
                "linux-x86_64"
            )
        );
        assert_ne!(
            base,
            environment_hash(BLOCK, "cpython-3.12.1", "linux-x86_64")
        );
        assert_ne!(
            base,
            environment_hash(BLOCK, "cpython-3.11.7", "linux-aarch64")
        );
    }
}
