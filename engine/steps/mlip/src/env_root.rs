//! The layout of an environment root: one directory holding everything flow's ML-potential
//! environments need, so that deleting it uninstalls them.
//!
//! ```text
//! {root}/environments/*.py        environment files (PEP 723 block + setup(model, device))
//! {root}/envs/{name}-{hash}/      uv virtual environments, complete when they hold the marker
//! {root}/envs/.{name}-{hash}.lock build locks (O_EXCL files, see build_lock)
//! {root}/cache/uv                 uv's package cache (UV_CACHE_DIR)
//! {root}/cache/huggingface        model weights downloaded at first use (HF_HOME)
//! {root}/tools/                   a bootstrapped uv, when the machine has none
//! ```

use std::path::{Path, PathBuf};

use crate::env_hash::EnvHash;

/// File name, inside an environment directory, that marks a finished build.
pub const COMPLETION_MARKER: &str = ".flow-complete.json";
/// File name, inside an environment directory, of the copy of its environment file.
pub const ENVIRONMENT_COPY: &str = "flow_environment.py";

/// An environment root directory. Only computes paths; creates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRoot {
    root: PathBuf,
}

impl EnvRoot {
    /// A root at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        EnvRoot { root: root.into() }
    }

    /// Picks the root: an explicit `root:` wins over the machine recipe's `root`.
    /// Returns `None` when neither is given (the caller reports which setting is missing).
    pub fn resolve(explicit: Option<&Path>, machine_root: Option<&Path>) -> Option<Self> {
        explicit.or(machine_root).map(EnvRoot::new)
    }

    /// The root itself.
    pub fn path(&self) -> &Path {
        &self.root
    }
    /// `{root}/environments`.
    pub fn environments_dir(&self) -> PathBuf {
        self.root.join("environments")
    }
    /// `{root}/environments/{name}.py`.
    pub fn environment_file(&self, name: &str) -> PathBuf {
        self.environments_dir().join(format!("{name}.py"))
    }
    /// `{root}/envs`.
    pub fn envs_dir(&self) -> PathBuf {
        self.root.join("envs")
    }
    /// `{root}/envs/{name}-{hash}`.
    pub fn env_dir(&self, name: &str, hash: &EnvHash) -> PathBuf {
        self.envs_dir().join(format!("{name}-{hash}"))
    }
    /// `{root}/envs/.{name}-{hash}.lock`.
    pub fn lock_file(&self, name: &str, hash: &EnvHash) -> PathBuf {
        self.envs_dir().join(format!(".{name}-{hash}.lock"))
    }
    /// `{root}/cache/uv`.
    pub fn uv_cache(&self) -> PathBuf {
        self.root.join("cache").join("uv")
    }
    /// `{root}/cache/huggingface`.
    pub fn hf_home(&self) -> PathBuf {
        self.root.join("cache").join("huggingface")
    }
    /// `{root}/tools`.
    pub fn tools_dir(&self) -> PathBuf {
        self.root.join("tools")
    }
    /// Where `flow env bootstrap` puts uv: `{root}/tools/uv-venv/bin/uv`.
    pub fn bootstrapped_uv(&self) -> PathBuf {
        self.tools_dir().join("uv-venv").join("bin").join("uv")
    }
}

/// The variables every later task using environment `env_dir` of `root` runs with:
/// `VIRTUAL_ENV`, `PATH` (the env's `bin` first, then `inherited_path`), `HF_HOME`,
/// `UV_CACHE_DIR`, and `PYTHONNOUSERSITE=1` so a user's `~/.local` cannot shadow the env.
pub fn task_environment(
    root: &EnvRoot,
    env_dir: &Path,
    inherited_path: Option<&str>,
) -> Vec<(String, String)> {
    let bin = env_dir.join("bin").display().to_string();
    let path = match inherited_path {
        Some(p) if !p.is_empty() => format!("{bin}:{p}"),
        _ => bin,
    };
    vec![
        ("VIRTUAL_ENV".into(), env_dir.display().to_string()),
        ("PATH".into(), path),
        ("HF_HOME".into(), root.hf_home().display().to_string()),
        ("UV_CACHE_DIR".into(), root.uv_cache().display().to_string()),
        ("PYTHONNOUSERSITE".into(), "1".into()),
    ]
}

/// The environment names available in `root` (file stems of `{root}/environments/*.py`),
/// sorted; empty when the directory does not exist.
pub fn available_environments(root: &EnvRoot) -> Vec<String> {
    let mut names: Vec<String> = environment_files(root)
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

pub(crate) fn environment_files(root: &EnvRoot) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.environments_dir()) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let root = EnvRoot::new("/scratch/rootstock");
        let hash = EnvHash::from_hex("0123456789abcdef");
        assert_eq!(
            root.env_dir("mace", &hash),
            Path::new("/scratch/rootstock/envs/mace-0123456789abcdef")
        );
        assert_eq!(
            root.lock_file("mace", &hash),
            Path::new("/scratch/rootstock/envs/.mace-0123456789abcdef.lock")
        );
        assert_eq!(root.uv_cache(), Path::new("/scratch/rootstock/cache/uv"));
        assert_eq!(
            root.hf_home(),
            Path::new("/scratch/rootstock/cache/huggingface")
        );
        assert_eq!(
            root.environment_file("emt"),
            Path::new("/scratch/rootstock/environments/emt.py")
        );
        assert_eq!(
            root.bootstrapped_uv(),
            Path::new("/scratch/rootstock/tools/uv-venv/bin/uv")
        );
    }

    #[test]
    fn explicit_root_wins() {
        let r = EnvRoot::resolve(Some(Path::new("/a")), Some(Path::new("/b"))).unwrap();
        assert_eq!(r.path(), Path::new("/a"));
        assert_eq!(
            EnvRoot::resolve(None, Some(Path::new("/b")))
                .unwrap()
                .path(),
            Path::new("/b")
        );
        assert!(EnvRoot::resolve(None, None).is_none());
    }

    #[test]
    fn task_variables() {
        let root = EnvRoot::new("/r");
        let vars = task_environment(&root, Path::new("/r/envs/emt-1"), Some("/usr/bin"));
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/r/envs/emt-1/bin:/usr/bin"));
        assert_eq!(get("VIRTUAL_ENV"), Some("/r/envs/emt-1"));
        assert_eq!(get("HF_HOME"), Some("/r/cache/huggingface"));
        assert_eq!(get("UV_CACHE_DIR"), Some("/r/cache/uv"));
    }
}
