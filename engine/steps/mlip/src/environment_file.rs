//! An environment file: a Python file with a PEP 723 block and a `setup(model, device)`
//! function returning an ASE calculator. Reading it is the only I/O here.

use std::path::{Path, PathBuf};

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
        let text = std::fs::read_to_string(path).map_err(io_error("reading", path))?;
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
