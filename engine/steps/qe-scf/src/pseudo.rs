//! Pseudopotential families: a table element → UPF file (+ suggested cutoffs), as YAML.
//!
//! The shipped families (`recipes/pseudopotentials/*.yaml`) are embedded in the binary, so
//! an installed `flow` works anywhere; a family can also be loaded from a file path.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One element's entry in a family.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PseudoEntry {
    /// The UPF file name inside the family's directory.
    pub file: String,
    /// Suggested wavefunction cutoff, Ry.
    #[serde(default)]
    pub ecutwfc: Option<f64>,
    /// Suggested charge-density cutoff, Ry (4 × ecutwfc when absent).
    #[serde(default)]
    pub ecutrho: Option<f64>,
    /// The file's md5 checksum as the published table gives it (documentation: not checked
    /// at run time).
    #[serde(default)]
    pub md5: Option<String>,
}

/// A pseudopotential family.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PseudoFamily {
    /// The family's name (`qe-debian`, `sssp-efficiency-1.1`).
    pub family: String,
    /// One line about it.
    #[serde(default)]
    pub description: Option<String>,
    /// The exchange-correlation functional its files were generated with.
    #[serde(default)]
    pub functional: Option<String>,
    /// Where the files are when the step gives no `dir`.
    #[serde(default)]
    pub default_dir: Option<PathBuf>,
    /// Where to get the files, for a family that ships none (said when `dir` is missing).
    #[serde(default)]
    pub files_from: Option<String>,
    /// Where the table itself was checked against (a published copy).
    #[serde(default)]
    pub source: Option<String>,
    /// Element symbol → entry.
    pub elements: BTreeMap<String, PseudoEntry>,
}

/// The families shipped with flow: (name, YAML text).
pub const BUILTIN_FAMILIES: [(&str, &str); 3] = [
    (
        "qe-debian",
        include_str!("../../../../recipes/pseudopotentials/qe-debian.yaml"),
    ),
    (
        "sssp-efficiency-1.1",
        include_str!("../../../../recipes/pseudopotentials/sssp-efficiency-1.1.yaml"),
    ),
    (
        "sssp-efficiency-1.3",
        include_str!("../../../../recipes/pseudopotentials/sssp-efficiency-1.3.yaml"),
    ),
];

/// Why pseudopotentials could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum PseudoError {
    /// Neither a shipped family nor a readable file.
    #[error("unknown pseudopotential family `{name}` (shipped: {known}; or give a path to a family YAML file)")]
    UnknownFamily {
        /// What the step said.
        name: String,
        /// The shipped names.
        known: String,
    },
    /// The family file exists but is not a valid family.
    #[error("pseudopotential family {source_name}: {message}")]
    Invalid {
        /// The file or shipped name.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// The structure has an element the family does not cover.
    #[error(
        "element {element} is not in pseudopotential family `{family}` (it covers: {covered})"
    )]
    MissingElement {
        /// The element.
        element: String,
        /// The family.
        family: String,
        /// The elements it has.
        covered: String,
    },
    /// A file's header names another element than the one it is used for.
    #[error("pseudopotential for {element} in family `{family}`: {} is a pseudopotential for {found}, not {element}", path.display())]
    WrongElement {
        element: String,
        family: String,
        path: PathBuf,
        found: String,
    },
    /// A file's header names another functional than the family's.
    #[error("pseudopotential for {element} in family `{family}`: {} was generated with {found}, but the family is {expected}; pw.x would compute with {found}", path.display())]
    WrongFunctional {
        element: String,
        family: String,
        path: PathBuf,
        found: String,
        expected: String,
    },
    /// The family names a file that is not in the directory.
    #[error("pseudopotential for {element} in family `{family}`: file {} does not exist", path.display())]
    MissingFile {
        /// The element.
        element: String,
        /// The family.
        family: String,
        /// The full path looked for.
        path: PathBuf,
    },
    /// No directory given and the family has no default.
    #[error("pseudopotential family `{family}` has no default directory: set `pseudopotentials.dir` to your copy of its files{}", files_from.as_ref().map(|f| format!(" ({f})")).unwrap_or_default())]
    NoDirectory {
        /// The family.
        family: String,
        /// Where the files come from, when the family says.
        files_from: Option<String>,
    },
}

impl PseudoFamily {
    /// Parses a family from YAML text; `source_name` is used in errors.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Self, PseudoError> {
        let invalid = |message: String| PseudoError::Invalid {
            source_name: source_name.to_string(),
            message,
        };
        let value = crate::yaml::parse_yaml(text).map_err(|e| invalid(e.to_string()))?;
        let family: PseudoFamily =
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        for (el, entry) in &family.elements {
            if !crate::elements::is_element(el) {
                return Err(invalid(format!("`{el}` is not an element symbol")));
            }
            if entry.file.contains('/') {
                return Err(invalid(format!(
                    "{el}: `{}` must be a file name, not a path",
                    entry.file
                )));
            }
        }
        Ok(family)
    }

    /// A shipped family by name, or a family YAML file: a name containing `/` or ending in
    /// `.yaml`/`.yml` is a path, relative to `base_dir`.
    pub fn load(name_or_path: &str, base_dir: &Path) -> Result<Self, PseudoError> {
        if let Some((_, text)) = BUILTIN_FAMILIES.iter().find(|(n, _)| *n == name_or_path) {
            return Self::from_yaml(text, name_or_path);
        }
        let looks_like_path = name_or_path.contains('/')
            || name_or_path.ends_with(".yaml")
            || name_or_path.ends_with(".yml");
        if looks_like_path {
            let path = base_dir.join(name_or_path);
            let text = flow_dsl::user_file::read_text(&path).map_err(|e| PseudoError::Invalid {
                source_name: path.display().to_string(),
                message: format!("cannot read: {e}"),
            })?;
            return Self::from_yaml(&text, &path.display().to_string());
        }
        Err(PseudoError::UnknownFamily {
            name: name_or_path.to_string(),
            known: BUILTIN_FAMILIES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// The file at `path` must say it is for `element`, and be generated with the family's
    /// functional when both are known. A header flow cannot read passes: pw.x reads it.
    fn check_header(&self, element: &str, path: &Path) -> Result<(), PseudoError> {
        use crate::upf_header::{classify, read_identity, Functional};
        let Ok(id) = read_identity(path) else {
            return Ok(());
        };
        if let Some(found) = id.element {
            if !found.eq_ignore_ascii_case(element) {
                return Err(PseudoError::WrongElement {
                    element: element.to_string(),
                    family: self.family.clone(),
                    path: path.to_path_buf(),
                    found,
                });
            }
        }
        let expected = self.functional.as_deref().map(classify);
        if let (Some(Functional::Known(found)), Some(Functional::Known(expected))) =
            (id.functional, expected)
        {
            if found != expected {
                return Err(PseudoError::WrongFunctional {
                    element: element.to_string(),
                    family: self.family.clone(),
                    path: path.to_path_buf(),
                    found: found.to_string(),
                    expected: expected.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Chooses a file per element and the cutoffs (the largest suggested over the
    /// elements). `dir` overrides the family's default directory; `overrides` replace the
    /// family's file for some elements. With `check_files`, every file must exist and its
    /// header must name its element and the family's functional.
    pub fn resolve(
        &self,
        elements: &[String],
        dir: Option<&Path>,
        overrides: &BTreeMap<String, String>,
        check_files: bool,
    ) -> Result<ResolvedPseudos, PseudoError> {
        let dir = dir
            .map(Path::to_path_buf)
            .or_else(|| self.default_dir.clone())
            .ok_or_else(|| PseudoError::NoDirectory {
                files_from: self.files_from.clone(),
                family: self.family.clone(),
            })?;
        let mut files = Vec::new();
        let (mut wfc, mut rho) = (None::<f64>, None::<f64>);
        for el in elements {
            let entry = self.elements.get(el);
            let file = match (overrides.get(el), entry) {
                (Some(f), _) => f.clone(),
                (None, Some(e)) => e.file.clone(),
                (None, None) => {
                    return Err(PseudoError::MissingElement {
                        element: el.clone(),
                        family: self.family.clone(),
                        covered: self.elements.keys().cloned().collect::<Vec<_>>().join(" "),
                    })
                }
            };
            if check_files && !dir.join(&file).is_file() {
                return Err(PseudoError::MissingFile {
                    element: el.clone(),
                    family: self.family.clone(),
                    path: dir.join(&file),
                });
            }
            if check_files {
                self.check_header(el, &dir.join(&file))?;
            }
            if let Some(e) = entry {
                if let Some(w) = e.ecutwfc {
                    wfc = Some(wfc.map_or(w, |x| x.max(w)));
                    let r = e.ecutrho.unwrap_or(4.0 * w);
                    rho = Some(rho.map_or(r, |x| x.max(r)));
                }
            }
            files.push((el.clone(), file));
        }
        Ok(ResolvedPseudos {
            family: self.family.clone(),
            dir,
            files,
            ecutwfc: wfc,
            ecutrho: rho,
        })
    }
}

/// The pseudopotentials chosen for one structure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResolvedPseudos {
    /// The family they come from.
    pub family: String,
    /// `pseudo_dir`.
    pub dir: PathBuf,
    /// (element, file name), in species order.
    pub files: Vec<(String, String)>,
    /// Largest suggested ecutwfc over the elements, Ry.
    pub ecutwfc: Option<f64>,
    /// Largest suggested ecutrho over the elements, Ry.
    pub ecutrho: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn els(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shipped_families_parse() {
        for (name, _) in BUILTIN_FAMILIES {
            let f = PseudoFamily::load(name, Path::new(".")).unwrap();
            assert_eq!(f.family, name);
            assert!(f.elements.contains_key("Si"));
        }
    }

    #[test]
    fn sssp_tables_carry_checksums_and_say_where_they_came_from() {
        let v11 = PseudoFamily::load("sssp-efficiency-1.1", Path::new(".")).unwrap();
        let v13 = PseudoFamily::load("sssp-efficiency-1.3", Path::new(".")).unwrap();
        for f in [&v11, &v13] {
            assert_eq!(f.elements.len(), 45);
            assert!(f.elements.values().all(|e| e
                .md5
                .as_ref()
                .is_some_and(|m| m.len() == 32 && m.chars().all(|c| c.is_ascii_hexdigit()))));
            assert!(f
                .source
                .as_deref()
                .unwrap_or("")
                .contains("aiida-wannier90-workflows"));
            assert!(f
                .files_from
                .as_deref()
                .unwrap_or("")
                .contains("materialscloud.org"));
            assert!(f.default_dir.is_none());
        }
        assert_eq!(v11.elements["Si"].file, "Si.pbe-n-rrkjus_psl.1.0.0.UPF");
        assert_eq!(
            v11.elements["Si"].md5.as_deref(),
            Some("0b0bb1205258b0d07b9f9672cf965d36")
        );
        assert_eq!(
            v13.elements["Cu"].file,
            "Cu.paw.z_11.ld1.psl.v1.0.0-low.upf"
        );
        // 1.3 ships no cutoffs (none could be checked): the step must give them
        assert!(v13.elements.values().all(|e| e.ecutwfc.is_none()));
        let r = v13
            .resolve(
                &["Si".to_string()],
                Some(Path::new("/pp")),
                &BTreeMap::new(),
                false,
            )
            .unwrap();
        assert_eq!(r.ecutwfc, None);
    }

    #[test]
    fn cutoffs_are_the_largest() {
        let f = PseudoFamily::load("sssp-efficiency-1.1", Path::new(".")).unwrap();
        let r = f
            .resolve(
                &els(&["Si", "O"]),
                Some(Path::new("/p")),
                &BTreeMap::new(),
                false,
            )
            .unwrap();
        assert_eq!(r.ecutwfc, Some(50.0));
        assert_eq!(r.ecutrho, Some(400.0));
        assert_eq!(
            r.files[0],
            ("Si".into(), "Si.pbe-n-rrkjus_psl.1.0.0.UPF".into())
        );
    }

    #[test]
    fn missing_element_names_both() {
        let f = PseudoFamily::load("qe-debian", Path::new(".")).unwrap();
        let e = f
            .resolve(&els(&["Si", "Xe"]), None, &BTreeMap::new(), false)
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("Xe") && msg.contains("qe-debian"), "{msg}");
    }

    #[test]
    fn missing_file_names_element_and_path() {
        let f = PseudoFamily::load("sssp-efficiency-1.1", Path::new(".")).unwrap();
        let e = f
            .resolve(
                &els(&["Fe"]),
                Some(Path::new("/nonexistent")),
                &BTreeMap::new(),
                true,
            )
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("Fe") && msg.contains("/nonexistent/Fe.pbe-spn-kjpaw_psl.0.2.1.UPF"),
            "{msg}"
        );
        let e = f
            .resolve(&els(&["Fe"]), None, &BTreeMap::new(), false)
            .unwrap_err();
        assert!(matches!(e, PseudoError::NoDirectory { .. }));
    }

    #[test]
    fn unknown_family_lists_shipped() {
        let e = PseudoFamily::load("sssp", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("qe-debian"), "{e}");
    }

    #[test]
    fn family_from_file_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.yaml"),
            "family: mine\nelements:\n  Cu: {file: Cu.UPF, ecutwfc: 40}\n",
        )
        .unwrap();
        let f = PseudoFamily::load("mine.yaml", dir.path()).unwrap();
        let mut o = BTreeMap::new();
        o.insert("Cu".to_string(), "Cu.other.UPF".to_string());
        let r = f
            .resolve(&els(&["Cu"]), Some(dir.path()), &o, false)
            .unwrap();
        assert_eq!(r.files[0].1, "Cu.other.UPF");
        assert_eq!(r.ecutrho, Some(160.0));
        let bad =
            PseudoFamily::from_yaml("family: x\nelements:\n  Qq: {file: a}\n", "x").unwrap_err();
        assert!(bad.to_string().contains("Qq"));
    }
}
