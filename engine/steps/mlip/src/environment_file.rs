//! An environment file: a Python file with a PEP 723 block and a `setup(model, device)`
//! function returning an ASE calculator. Reading it is the only I/O here.

use std::path::{Path, PathBuf};

use crate::build_env_settings::BuildEnvSettings;
use crate::env_root::EnvRoot;
use crate::error::{io_error, MlipError};
use crate::pep723::{parse_script_metadata, ScriptMetadata};
use crate::python_requirement::{minimum_python, MinimumPython};

/// A parsed environment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFile {
    /// The environment's name: the file stem (`mace` for `mace.py`).
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// The whole text (copied into the built environment).
    pub text: String,
    /// Its PEP 723 block.
    pub metadata: ScriptMetadata,
    /// The minimum Python derived from `requires-python`.
    pub minimum_python: MinimumPython,
    /// The `requires-python` specifier as written.
    pub requires_python: String,
}

impl EnvironmentFile {
    /// Reads and checks the file at `path`. Errors: [`MlipError::Io`], [`MlipError::Pep723`],
    /// [`MlipError::RequiresPython`] (also when `requires-python` is absent), and
    /// [`MlipError::MissingSetup`].
    pub fn load(path: &Path) -> Result<Self, MlipError> {
        let text = flow_dsl::user_file::read_text(path).map_err(io_error("reading", path))?;
        Self::parse(path, text)
    }

    /// Checks already-read text as if it came from `path` (pure).
    pub fn parse(path: &Path, text: String) -> Result<Self, MlipError> {
        let metadata = parse_script_metadata(&text).map_err(|source| MlipError::Pep723 {
            path: path.to_path_buf(),
            source,
        })?;
        let (requires_python, line) = metadata
            .requires_python
            .clone()
            .unwrap_or_else(|| (String::new(), metadata.start_line));
        let minimum =
            minimum_python(&requires_python).map_err(|source| MlipError::RequiresPython {
                path: path.to_path_buf(),
                line,
                source,
            })?;
        if !defines_setup(&text) {
            return Err(MlipError::MissingSetup {
                path: path.to_path_buf(),
            });
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(EnvironmentFile {
            name,
            path: path.to_path_buf(),
            text,
            metadata,
            minimum_python: minimum,
            requires_python,
        })
    }
}

/// Finds the environment file of a build-env step: `environment` as a path (relative to
/// `base_dir`, the campaign file's directory) when it contains `/` or ends in `.py`; else
/// `{root}/environments/{name}.py`, then `{recipes_dir}/{name}.py`, then the recipe shipped in
/// the binary ([`crate::RECIPE_ENVIRONMENTS`]). Errors: [`MlipError::UnknownEnvironment`] listing
/// what exists, and the errors of [`EnvironmentFile::load`].
pub fn resolve_environment_file(
    settings: &BuildEnvSettings,
    root: &EnvRoot,
    recipes_dir: Option<&Path>,
    base_dir: &Path,
) -> Result<EnvironmentFile, MlipError> {
    if settings.environment_is_path() {
        return EnvironmentFile::load(&base_dir.join(&settings.environment));
    }
    let name = settings.environment.as_str();
    let mut candidates = vec![root.environment_file(name)];
    if let Some(dir) = recipes_dir {
        candidates.push(dir.join(format!("{name}.py")));
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return EnvironmentFile::load(found);
    }
    if let Some((_, text)) = crate::RECIPE_ENVIRONMENTS.iter().find(|(n, _)| *n == name) {
        return EnvironmentFile::parse(
            Path::new(&format!("recipes/environments/{name}.py")),
            text.to_string(),
        );
    }
    let mut available = crate::env_root::available_environments(root);
    available.extend(
        crate::RECIPE_ENVIRONMENTS
            .iter()
            .map(|(n, _)| n.to_string()),
    );
    available.sort();
    available.dedup();
    Err(MlipError::UnknownEnvironment {
        name: name.to_string(),
        looked_in: candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        available,
    })
}

fn defines_setup(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("def setup(") || l.starts_with("async def setup("))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_minimum_and_requires_setup() {
        let text = "# /// script\n# requires-python = \">=3.10\"\n# dependencies = [\"ase\"]\n# ///\ndef setup(model, device):\n    return None\n";
        let f = EnvironmentFile::parse(Path::new("/r/environments/emt.py"), text.into()).unwrap();
        assert_eq!(f.name, "emt");
        assert_eq!(f.minimum_python.version.to_string(), "3.10");

        let no_setup = text.replace("def setup", "def other");
        let err = EnvironmentFile::parse(Path::new("x.py"), no_setup).unwrap_err();
        assert!(matches!(err, MlipError::MissingSetup { .. }));
    }

    #[test]
    fn resolution_order_root_then_recipes_then_shipped() {
        let tmp = tempfile::tempdir().unwrap();
        let root = EnvRoot::new(tmp.path().join("root"));
        let settings = |e: &str| BuildEnvSettings {
            environment: e.into(),
            root: None,
            run_on: Default::default(),
            allow_python_download: false,
        };
        // Shipped recipe.
        let f = resolve_environment_file(&settings("emt"), &root, None, tmp.path()).unwrap();
        assert_eq!(f.path, Path::new("recipes/environments/emt.py"));
        // A root's own file wins.
        std::fs::create_dir_all(root.environments_dir()).unwrap();
        let own = "# /// script\n# requires-python = \">=3.11\"\n# dependencies = []\n# ///\ndef setup(m, d): pass\n";
        std::fs::write(root.environment_file("emt"), own).unwrap();
        let f = resolve_environment_file(&settings("emt"), &root, None, tmp.path()).unwrap();
        assert_eq!(f.minimum_python.version.to_string(), "3.11");
        // A path, relative to the campaign's directory.
        std::fs::write(tmp.path().join("mine.py"), own).unwrap();
        let f = resolve_environment_file(&settings("mine.py"), &root, None, tmp.path()).unwrap();
        assert_eq!(f.name, "mine");
        // Unknown: lists the root's and the shipped names.
        let err =
            resolve_environment_file(&settings("sevennet"), &root, None, tmp.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("environment `sevennet` not found"),
            "{text}"
        );
        assert!(
            text.ends_with("available: chgnet, emt, mace, optuna"),
            "{text}"
        );
    }

    #[test]
    fn requires_python_errors_are_located() {
        let text = "\n# /// script\n# dependencies = []\n# requires-python = \"<3.13\"\n# ///\ndef setup(m, d): pass\n";
        let err = EnvironmentFile::parse(Path::new("env.py"), text.into()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("env.py:4: `requires-python = \"<3.13\"` has no lower bound"),
            "{err}"
        );
        let missing = "# /// script\n# dependencies = []\n# ///\ndef setup(m, d): pass\n";
        let err = EnvironmentFile::parse(Path::new("env.py"), missing.into()).unwrap_err();
        assert!(err.to_string().starts_with("env.py:1:"), "{err}");
    }
}
