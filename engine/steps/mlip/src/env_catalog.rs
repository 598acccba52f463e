//! What lies behind `flow env list | warm | doctor`: listing a root's environments, building
//! them all, and checking that a machine can build them.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env_build::{build_environment, find_uv, BuildOptions, BuildOutcome, CompletionMarker};
use crate::env_root::{available_environments, environment_files, EnvRoot, COMPLETION_MARKER};
use crate::environment_file::EnvironmentFile;
use crate::error::{io_error, MlipError};
use crate::process::run_checked;

/// One environment file of a root and the built envs of that name.
#[derive(Debug, Serialize)]
pub struct EnvironmentListing {
    /// Environment name.
    pub name: String,
    /// The file.
    pub file: PathBuf,
    /// `requires-python`, or the error reading the file.
    pub requires_python: Result<String, String>,
    /// Its dependencies (empty when the file is unreadable).
    pub dependencies: Vec<String>,
    /// Built env directories `{name}-{hash}` with their markers (`None`: half-built).
    pub builds: Vec<(PathBuf, Option<CompletionMarker>)>,
}

/// `flow env list`: every environment file of `root` and its builds.
pub fn list_environments(root: &EnvRoot) -> Vec<EnvironmentListing> {
    let built: Vec<PathBuf> = std::fs::read_dir(root.envs_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    environment_files(root)
        .into_iter()
        .map(|file| {
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parsed = EnvironmentFile::load(&file);
            let (requires_python, dependencies) = match &parsed {
                Ok(f) => (
                    Ok(f.requires_python.clone()),
                    f.metadata.dependencies.clone(),
                ),
                Err(e) => (Err(e.to_string()), Vec::new()),
            };
            let mut builds: Vec<(PathBuf, Option<CompletionMarker>)> = built
                .iter()
                .filter(|dir| is_build_of(dir, &name))
                .map(|dir| {
                    let marker = std::fs::read_to_string(dir.join(COMPLETION_MARKER))
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok());
                    (dir.clone(), marker)
                })
                .collect();
            builds.sort_by(|a, b| a.0.cmp(&b.0));
            EnvironmentListing {
                name,
                file,
                requires_python,
                dependencies,
                builds,
            }
        })
        .collect()
}

/// Whether `dir` is named `{name}-{16 hex digits}`.
fn is_build_of(dir: &Path, name: &str) -> bool {
    let Some(base) = dir.file_name().map(|s| s.to_string_lossy().into_owned()) else {
        return false;
    };
    match base.strip_prefix(name).and_then(|r| r.strip_prefix('-')) {
        Some(hash) => hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        None => false,
    }
}

/// The newest complete build of environment `name` in `root` (by its marker's build time):
/// what an md-benchmark step runs with. Errors: [`MlipError::NotBuilt`].
pub fn locate_built_environment(
    root: &EnvRoot,
    name: &str,
) -> Result<(PathBuf, CompletionMarker), MlipError> {
    list_environments(root)
        .into_iter()
        .filter(|l| l.name == name)
        .flat_map(|l| l.builds)
        .filter_map(|(dir, marker)| marker.map(|m| (dir, m)))
        .filter(|(dir, _)| dir.join("bin").join("python").exists())
        .max_by_key(|(_, m)| m.built_unix)
        .ok_or_else(|| MlipError::NotBuilt {
            name: name.to_string(),
            envs_dir: root.envs_dir(),
        })
}

/// `flow env warm`: builds (or reuses) every environment of `root`, one after the other.
/// One failure does not stop the others; each name comes back with its own result.
pub fn warm_all(
    root: &EnvRoot,
    options: &BuildOptions,
) -> Vec<(String, Result<BuildOutcome, MlipError>)> {
    environment_files(root)
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let result =
                EnvironmentFile::load(&path).and_then(|f| build_environment(root, &f, options));
            (name, result)
        })
        .collect()
}

/// How a doctor check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Fine.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Builds will fail until this is fixed.
    Fail,
}

/// One line of `flow env doctor`.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorCheck {
    /// What was checked (`uv`, `root writable`, ...).
    pub name: String,
    /// Outcome.
    pub status: CheckStatus,
    /// What was found, or what to do.
    pub detail: String,
}

/// Free bytes below which doctor warns (a CUDA torch env is about 6 GB).
const LOW_DISK_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// `flow env doctor`: uv present, root writable, caches, Python interpreters, disk free.
/// Never fails as a whole: each problem is a check with status `Fail` and a remedy.
pub fn doctor(root: &EnvRoot) -> Vec<DoctorCheck> {
    let mut checks = Vec::new();
    let check = |name: &str, status, detail: String| DoctorCheck {
        name: name.into(),
        status,
        detail,
    };

    let uv = find_uv(root);
    checks.push(match &uv {
        Ok(path) => {
            let version = run_checked(Command::new(path).arg("--version"))
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|e| format!("(cannot run: {e})"));
            check(
                "uv",
                CheckStatus::Ok,
                format!("{version} at {}", path.display()),
            )
        }
        Err(e) => check("uv", CheckStatus::Fail, e.to_string()),
    });

    checks.push(match probe_writable(root.path()) {
        Ok(()) => check(
            "root writable",
            CheckStatus::Ok,
            root.path().display().to_string(),
        ),
        Err(e) => check("root writable", CheckStatus::Fail, e.to_string()),
    });

    for (name, dir) in [
        ("uv cache", root.uv_cache()),
        ("huggingface cache (HF_HOME)", root.hf_home()),
    ] {
        checks.push(if dir.is_dir() {
            check(
                name,
                CheckStatus::Ok,
                format!("{} ({} entries)", dir.display(), count_entries(&dir)),
            )
        } else {
            check(
                name,
                CheckStatus::Warn,
                format!(
                    "{} does not exist yet (created by the first build)",
                    dir.display()
                ),
            )
        });
    }

    checks.push(match &uv {
        Ok(path) => match run_checked(
            Command::new(path)
                .env("UV_PYTHON_DOWNLOADS", "never")
                .args(["python", "list", "--only-installed", "--no-config"]),
        ) {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let mut found: Vec<&str> = Vec::new();
                for key in text.lines().filter_map(|l| l.split_whitespace().next()) {
                    if !found.contains(&key) {
                        found.push(key);
                    }
                }
                if found.is_empty() {
                    check(
                        "python interpreters",
                        CheckStatus::Fail,
                        "uv finds no Python on this machine".into(),
                    )
                } else {
                    check("python interpreters", CheckStatus::Ok, found.join(", "))
                }
            }
            Err(e) => check("python interpreters", CheckStatus::Warn, e.to_string()),
        },
        Err(_) => check(
            "python interpreters",
            CheckStatus::Warn,
            "not checked: uv is missing".into(),
        ),
    });

    checks.push(match free_bytes(existing_ancestor(root.path())) {
        Some(free) => {
            let status = if free < LOW_DISK_BYTES {
                CheckStatus::Warn
            } else {
                CheckStatus::Ok
            };
            check(
                "disk free",
                status,
                format!(
                    "{:.1} GiB free under {}",
                    free as f64 / 1024f64.powi(3),
                    root.path().display()
                ),
            )
        }
        None => check(
            "disk free",
            CheckStatus::Warn,
            "could not read the file system's free space".into(),
        ),
    });

    let names = available_environments(root);
    checks.push(if names.is_empty() {
        check(
            "environments",
            CheckStatus::Warn,
            format!("no *.py files in {}", root.environments_dir().display()),
        )
    } else {
        check("environments", CheckStatus::Ok, names.join(", "))
    });
    checks
}

fn probe_writable(root: &Path) -> Result<(), MlipError> {
    std::fs::create_dir_all(root).map_err(io_error("creating", root))?;
    tempfile::NamedTempFile::new_in(root)
        .map(drop)
        .map_err(io_error("writing a file in", root))
}

fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|rd| rd.count()).unwrap_or(0)
}

fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}

fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid out-pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Renders doctor checks as aligned text lines (`ok   uv  uv 0.13.9 at /usr/bin/uv`).
pub fn render_doctor(checks: &[DoctorCheck]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    checks
        .iter()
        .map(|c| {
            let status = match c.status {
                CheckStatus::Ok => "ok  ",
                CheckStatus::Warn => "warn",
                CheckStatus::Fail => "FAIL",
            };
            format!("{status}  {:width$}  {}\n", c.name, c.detail)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_directory_names() {
        assert!(is_build_of(
            Path::new("/r/envs/mace-0123456789abcdef"),
            "mace"
        ));
        assert!(!is_build_of(
            Path::new("/r/envs/mace-off-0123456789abcdef"),
            "mace"
        ));
        assert!(is_build_of(
            Path::new("/r/envs/mace-off-0123456789abcdef"),
            "mace-off"
        ));
        assert!(!is_build_of(Path::new("/r/envs/mace-xyz"), "mace"));
    }

    #[test]
    fn doctor_on_an_empty_root_reports_without_failing() {
        let dir = tempfile::tempdir().unwrap();
        let root = EnvRoot::new(dir.path().join("root"));
        let checks = doctor(&root);
        let get = |n: &str| checks.iter().find(|c| c.name == n).unwrap().status;
        assert_eq!(get("root writable"), CheckStatus::Ok);
        assert_eq!(get("uv cache"), CheckStatus::Warn);
        assert_eq!(get("environments"), CheckStatus::Warn);
        let text = render_doctor(&checks);
        assert!(text.contains("disk free"), "{text}");
    }
}
