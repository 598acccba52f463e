//! Building environments with real `uv` under an [`EnvRoot`]: the I/O edge of build-env.
//!
//! Atomicity: an environment is built *in place* at `{root}/envs/{name}-{hash}` and published
//! by writing the completion marker (`.flow-complete.json`, written to a temporary name and
//! renamed) as the very last step. A directory without the marker is never used, and the next
//! builder (holding the lock) deletes and rebuilds it. In-place building was chosen over
//! "relocatable venv in a temp dir, then rename" because a moved venv is only safe when made
//! with `uv venv --relocatable`, whose relative entry points still break for packages that
//! record absolute paths at install time (e.g. `.pth` files, compiled extensions' RPATHs), and
//! because on a parallel file system a multi-GB tree is cheaper to not move at all.
//!
//! Concurrency: builders take a [`BuildLock`] (O_EXCL lock file) on the env's hash, then
//! re-check the marker, so 1,000 array tasks needing one env build it once.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::build_lock::BuildLock;
use crate::env_hash::{current_platform, environment_hash, EnvHash};
use crate::env_root::{EnvRoot, COMPLETION_MARKER, ENVIRONMENT_COPY};
use crate::environment_file::EnvironmentFile;
use crate::error::{io_error, MlipError};
use crate::process::{run_checked, tail};

/// Version tag written into completion markers.
const MARKER_SCHEMA: &str = "flow-env-marker/1";

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Let uv download a CPython when none on the machine fits (off by default: clusters'
    /// login nodes may reach PyPI but a downloaded interpreter is not what admins vetted).
    pub allow_python_download: bool,
    /// A lock older than this whose holder cannot be probed (another node) is taken over.
    pub lock_stale_after: Duration,
    /// How long to wait for another builder before giving up.
    pub lock_wait: Duration,
    /// The uv to use; `None` finds it with [`find_uv`].
    pub uv: Option<PathBuf>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            allow_python_download: false,
            lock_stale_after: Duration::from_secs(2 * 3600),
            lock_wait: Duration::from_secs(3 * 3600),
            uv: None,
        }
    }
}

/// The interpreter an environment is built against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedPython {
    /// Its path, as uv found it.
    pub path: PathBuf,
    /// Implementation, lower case (`cpython`).
    pub implementation: String,
    /// Full version (`3.11.7`).
    pub version: String,
}

impl ResolvedPython {
    /// The identity hashed into the env (`cpython-3.11.7`).
    pub fn id(&self) -> String {
        format!("{}-{}", self.implementation, self.version)
    }
}

/// What a finished build records in its completion marker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionMarker {
    /// `flow-env-marker/1`.
    pub schema: String,
    /// Environment name.
    pub name: String,
    /// Environment hash (must equal the directory's).
    pub hash: String,
    /// The interpreter it was built with.
    pub python: ResolvedPython,
    /// Platform (`linux-x86_64`).
    pub platform: String,
    /// The dependencies installed.
    pub dependencies: Vec<String>,
    /// `uv --version` output.
    pub uv_version: String,
    /// When the build finished (Unix seconds).
    pub built_unix: u64,
    /// How long the build took.
    pub build_seconds: f64,
}

/// Whether a build ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildAction {
    /// The env was built now.
    Built,
    /// A complete env with the same hash existed and was reused.
    Reused,
}

/// The result of [`build_environment`].
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// Built or reused.
    pub action: BuildAction,
    /// `{root}/envs/{name}-{hash}`.
    pub env_dir: PathBuf,
    /// The env's hash.
    pub hash: EnvHash,
    /// The marker as on disk.
    pub marker: CompletionMarker,
    /// Wall time of this call (seconds), including waiting for another builder.
    pub seconds: f64,
}

impl BuildOutcome {
    /// The env's Python interpreter.
    pub fn python(&self) -> PathBuf {
        self.env_dir.join("bin").join("python")
    }
}

/// What build-env would do, for `flow plan` (no building, no lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPlan {
    /// Environment name.
    pub name: String,
    /// The hash it would have.
    pub hash: EnvHash,
    /// Where it would live.
    pub env_dir: PathBuf,
    /// The interpreter it would be built with.
    pub python: ResolvedPython,
    /// True when a complete env with this hash exists (build-env will reuse it).
    pub reusable: bool,
}

/// Finds uv: on `PATH`, then the root's bootstrapped copy. Errors: [`MlipError::UvMissing`]
/// saying how to get it.
pub fn find_uv(root: &EnvRoot) -> Result<PathBuf, MlipError> {
    find_uv_in(root, std::env::var_os("PATH").as_deref())
}

/// [`find_uv`] with an explicit `PATH` value (for callers that run tasks with their own PATH).
pub fn find_uv_in(
    root: &EnvRoot,
    path_var: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, MlipError> {
    if let Some(found) = path_var.and_then(|p| find_on_path("uv", p)) {
        return Ok(found);
    }
    let bootstrapped = root.bootstrapped_uv();
    if is_executable(&bootstrapped) {
        return Ok(bootstrapped);
    }
    Err(MlipError::UvMissing {
        tools: root.tools_dir(),
    })
}

/// Installs uv into `{root}/tools/uv-venv` with `python3 -m venv` and that venv's pip
/// (`flow env bootstrap`); returns the uv path. Needs `python3` with venv support and access
/// to PyPI. Idempotent: an existing bootstrapped uv is returned as is.
pub fn bootstrap_uv(root: &EnvRoot, python3: &str) -> Result<PathBuf, MlipError> {
    let uv = root.bootstrapped_uv();
    if is_executable(&uv) {
        return Ok(uv);
    }
    let venv = root.tools_dir().join("uv-venv");
    std::fs::create_dir_all(root.tools_dir()).map_err(io_error("creating", root.tools_dir()))?;
    run_checked(Command::new(python3).arg("-m").arg("venv").arg(&venv))?;
    run_checked(
        Command::new(venv.join("bin").join("python")).args(["-m", "pip", "install", "-q", "uv"]),
    )?;
    Ok(uv)
}

/// The command prefix for uv with flow's settings: no Python downloads unless allowed, the
/// root's cache, no inherited virtualenv.
fn uv_command(uv: &Path, root: &EnvRoot, allow_python_download: bool) -> Command {
    let mut cmd = Command::new(uv);
    cmd.env(
        "UV_PYTHON_DOWNLOADS",
        if allow_python_download {
            "automatic"
        } else {
            "never"
        },
    )
    .env("UV_CACHE_DIR", root.uv_cache())
    .env("UV_PYTHON_INSTALL_DIR", root.tools_dir().join("python"))
    .env_remove("VIRTUAL_ENV")
    .env_remove("CONDA_PREFIX");
    cmd
}

/// Finds the interpreter for `file`: uv is asked for the minimum `X.Y` first; when the machine
/// has no `X.Y`, for any interpreter satisfying the file's `requires-python` (so `>=3.10` builds
/// with the machine's 3.11 rather than failing). With downloads allowed, a missing `X.Y` is
/// installed under `{root}/tools/python`. Errors: [`MlipError::PythonNotFound`].
pub fn resolve_python(
    uv: &Path,
    root: &EnvRoot,
    file: &EnvironmentFile,
    allow_python_download: bool,
) -> Result<ResolvedPython, MlipError> {
    let minimum = file.minimum_python.version.to_string();
    let find = |request: &str| {
        run_checked(
            uv_command(uv, root, allow_python_download)
                .args(["python", "find", "--system", "--no-project", "--no-config"])
                .arg(request),
        )
    };
    let found = match find(&minimum) {
        Ok(out) => out,
        Err(first) => match find(&file.requires_python) {
            Ok(out) => out,
            Err(_) if allow_python_download => {
                run_checked(uv_command(uv, root, true).args(["python", "install", &minimum]))?;
                find(&minimum)?
            }
            Err(_) => {
                let detail = match first {
                    MlipError::CommandFailed { stderr_tail, .. } => tail(&stderr_tail, 3),
                    other => other.to_string(),
                };
                return Err(MlipError::PythonNotFound {
                    request: format!("{minimum} (or {})", file.requires_python),
                    detail,
                });
            }
        },
    };
    let path = PathBuf::from(String::from_utf8_lossy(&found.stdout).trim());
    let probe = run_checked(Command::new(&path).args([
        "-c",
        "import platform,sys;print(platform.python_implementation().lower(),'%d.%d.%d'%sys.version_info[:3])",
    ]))?;
    let text = String::from_utf8_lossy(&probe.stdout);
    let mut parts = text.split_whitespace();
    let implementation = parts.next().unwrap_or("python").to_string();
    let version = parts.next().unwrap_or("unknown").to_string();
    Ok(ResolvedPython {
        path,
        implementation,
        version,
    })
}

/// Reads the completion marker of `env_dir` if it exists, parses, and matches `hash`.
pub fn complete_marker(env_dir: &Path, hash: &EnvHash) -> Option<CompletionMarker> {
    let text = std::fs::read_to_string(env_dir.join(COMPLETION_MARKER)).ok()?;
    let marker: CompletionMarker = serde_json::from_str(&text).ok()?;
    (marker.hash == hash.as_str() && env_dir.join("bin").join("python").exists()).then_some(marker)
}

/// Computes what build-env would do for `file` under `root` (resolves the interpreter with uv,
/// builds nothing).
pub fn plan_environment(
    root: &EnvRoot,
    file: &EnvironmentFile,
    options: &BuildOptions,
) -> Result<EnvPlan, MlipError> {
    let uv = match &options.uv {
        Some(uv) => uv.clone(),
        None => find_uv(root)?,
    };
    let python = resolve_python(&uv, root, file, options.allow_python_download)?;
    let hash = environment_hash(&file.metadata.toml, &python.id(), &current_platform());
    let env_dir = root.env_dir(&file.name, &hash);
    let reusable = complete_marker(&env_dir, &hash).is_some();
    Ok(EnvPlan {
        name: file.name.clone(),
        hash,
        env_dir,
        python,
        reusable,
    })
}

/// Builds `file`'s environment under `root`, or reuses a complete one with the same hash.
///
/// Creates the root's directories as needed, copies the environment file to
/// `{root}/environments/{name}.py` (when it lives elsewhere) and to `{env}/flow_environment.py`.
/// Errors: [`MlipError::UvMissing`], [`MlipError::PythonNotFound`], [`MlipError::CommandFailed`]
/// (uv's own message, e.g. a dependency that does not resolve), [`MlipError::LockTimeout`],
/// [`MlipError::Io`].
pub fn build_environment(
    root: &EnvRoot,
    file: &EnvironmentFile,
    options: &BuildOptions,
) -> Result<BuildOutcome, MlipError> {
    let started = Instant::now();
    let uv = match &options.uv {
        Some(uv) => uv.clone(),
        None => find_uv(root)?,
    };
    for dir in [
        root.envs_dir(),
        root.uv_cache(),
        root.hf_home(),
        root.environments_dir(),
    ] {
        std::fs::create_dir_all(&dir).map_err(io_error("creating", &dir))?;
    }
    install_environment_file(root, file)?;
    let python = resolve_python(&uv, root, file, options.allow_python_download)?;
    let platform = current_platform();
    let hash = environment_hash(&file.metadata.toml, &python.id(), &platform);
    let env_dir = root.env_dir(&file.name, &hash);

    let reused = |marker: CompletionMarker| -> Result<BuildOutcome, MlipError> {
        write_atomically(&env_dir.join(ENVIRONMENT_COPY), &file.text)?;
        Ok(BuildOutcome {
            action: BuildAction::Reused,
            env_dir: env_dir.clone(),
            hash: hash.clone(),
            marker,
            seconds: started.elapsed().as_secs_f64(),
        })
    };
    if let Some(marker) = complete_marker(&env_dir, &hash) {
        return reused(marker);
    }
    let _lock = BuildLock::acquire(
        &root.lock_file(&file.name, &hash),
        options.lock_stale_after,
        options.lock_wait,
    )?;
    if let Some(marker) = complete_marker(&env_dir, &hash) {
        return reused(marker);
    }
    if env_dir.exists() {
        // A half-built env from a build that died: never used, rebuilt from scratch.
        std::fs::remove_dir_all(&env_dir).map_err(io_error("removing half-built", &env_dir))?;
    }
    run_checked(
        uv_command(&uv, root, options.allow_python_download)
            .args(["venv", "--quiet", "--no-project", "--no-config", "--python"])
            .arg(&python.path)
            .arg(&env_dir),
    )?;
    if !file.metadata.dependencies.is_empty() {
        run_checked(
            uv_command(&uv, root, options.allow_python_download)
                .args(["pip", "install", "--quiet", "--no-config", "--python"])
                .arg(env_dir.join("bin").join("python"))
                .arg("--cache-dir")
                .arg(root.uv_cache())
                .args(&file.metadata.dependencies),
        )?;
    }
    write_atomically(&env_dir.join(ENVIRONMENT_COPY), &file.text)?;
    let uv_version = run_checked(Command::new(&uv).arg("--version"))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let marker = CompletionMarker {
        schema: MARKER_SCHEMA.into(),
        name: file.name.clone(),
        hash: hash.to_string(),
        python,
        platform,
        dependencies: file.metadata.dependencies.clone(),
        uv_version,
        built_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        build_seconds: started.elapsed().as_secs_f64(),
    };
    let marker_text = serde_json::to_string_pretty(&marker).unwrap_or_default();
    write_atomically(&env_dir.join(COMPLETION_MARKER), &marker_text)?;
    Ok(BuildOutcome {
        action: BuildAction::Built,
        env_dir,
        hash,
        marker,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Copies an environment file into `{root}/environments/` unless it is already that file.
fn install_environment_file(root: &EnvRoot, file: &EnvironmentFile) -> Result<(), MlipError> {
    let target = root.environment_file(&file.name);
    let same = match (target.canonicalize(), file.path.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let current = std::fs::read_to_string(&target).ok();
    if same || current.as_deref() == Some(file.text.as_str()) {
        return Ok(());
    }
    write_atomically(&target, &file.text)
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename, so
/// readers on any node see the old content or the new, never a partial file.
pub(crate) fn write_atomically(path: &Path, text: &str) -> Result<(), MlipError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(io_error("creating a temporary file in", dir))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .map_err(io_error("writing", tmp.path().to_path_buf()))?;
    tmp.as_file()
        .sync_all()
        .map_err(io_error("syncing", path))?;
    tmp.persist(path)
        .map_err(|e| io_error("renaming into", path)(e.error))?;
    Ok(())
}

fn find_on_path(program: &str, path_var: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_uv_says_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = EnvRoot::new(dir.path());
        let err = find_uv_in(&root, Some(std::ffi::OsStr::new("/nonexistent"))).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("python3 -m pip install uv") && text.contains("flow env bootstrap"),
            "{text}"
        );
        assert_eq!(err.class(), flow_dsl::error_class::ErrorClass::LaunchFailed);
        // A bootstrapped uv under {root}/tools is found without PATH.
        let uv = root.bootstrapped_uv();
        std::fs::create_dir_all(uv.parent().unwrap()).unwrap();
        std::fs::write(&uv, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&uv, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_uv_in(&root, None).unwrap(), uv);
    }
}
