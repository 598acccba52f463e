//! Plan time: which structures a step covers (one task each), and what `flow plan` shows
//! for the step (the first structure's `pw.in`, k-grid, pools, pseudopotentials, policy).

use crate::error::QeError;
use crate::input::{prepare_structure, render_pw_input, PreparedStructure, OUTDIR};
use crate::policy::RecoveryPolicy;
use crate::settings::Settings;
use crate::structure::{read_structures, Structure};
use std::fmt;
use std::path::{Path, PathBuf};

/// One structure of the step: a file and, for multi-frame files, the frame.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StructureRef {
    /// The file, as matched (relative to the campaign directory when the pattern was).
    pub path: PathBuf,
    /// 0-based frame in the file.
    pub frame: usize,
    /// `path` for single-frame files, `path#frame` otherwise. Stable: usable in task ids.
    pub name: String,
}

/// The structures the step's patterns match, in pattern order then sorted path order,
/// each frame of a multi-frame file separately. Adding files adds structures; existing
/// names do not change.
///
/// Errors: a malformed pattern, no match at all, or a file that cannot be read.
pub fn expand_structures(
    settings: &Settings,
    base_dir: &Path,
) -> Result<Vec<(StructureRef, Structure)>, QeError> {
    let mut out = Vec::new();
    let patterns = settings.structures.patterns();
    for pattern in &patterns {
        // the campaign directory is taken literally, only the pattern is a glob
        let full_text = if Path::new(pattern).is_absolute() {
            pattern.clone()
        } else {
            let base = glob::Pattern::escape(&base_dir.to_string_lossy());
            format!("{}/{pattern}", base.trim_end_matches('/'))
        };
        let mut paths: Vec<PathBuf> = glob::glob(&full_text)
            .map_err(|e| QeError::Pattern {
                pattern: pattern.clone(),
                message: e.to_string(),
            })?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let frames = read_structures(&path)?;
            let shown = path
                .strip_prefix(base_dir)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| path.clone());
            let many = frames.len() > 1;
            for (i, s) in frames.into_iter().enumerate() {
                let name = if many {
                    format!("{}#{i}", shown.display())
                } else {
                    shown.display().to_string()
                };
                out.push((
                    StructureRef {
                        path: path.clone(),
                        frame: i,
                        name,
                    },
                    s,
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(QeError::NoStructures {
            patterns: patterns.join(", "),
        });
    }
    Ok(out)
}

/// Checks, without reading any structure, that the step's pseudopotential family can be
/// found and has a directory (the step's `dir` or the family's default): a family shipped
/// as a table only (SSSP) without `dir` is an error that says where its files come from.
/// `flow validate` reports it at `pseudopotentials:`. Returns the family, for
/// [`check_elements`].
pub fn check_pseudopotentials(
    settings: &Settings,
    base_dir: &Path,
) -> Result<crate::pseudo::PseudoFamily, QeError> {
    let family = crate::pseudo::PseudoFamily::load(&settings.pseudopotentials.family, base_dir)?;
    if settings.pseudopotentials.dir.is_none() && family.default_dir.is_none() {
        return Err(crate::pseudo::PseudoError::NoDirectory {
            family: family.family,
            files_from: family.files_from,
        }
        .into());
    }
    Ok(family)
}

/// Every element of `structures` has a file in `family` (or the step's `files`), the file
/// exists, and its header names that element and the family's functional (files only where
/// the directory exists here). Each element is checked once, however many structures hold it.
pub fn check_elements<'a>(
    settings: &Settings,
    base_dir: &Path,
    family: &crate::pseudo::PseudoFamily,
    structures: impl IntoIterator<Item = &'a Structure>,
) -> Result<(), QeError> {
    let mut elements: Vec<String> = Vec::new();
    for s in structures {
        for e in s.species() {
            if !elements.contains(&e) {
                elements.push(e);
            }
        }
    }
    let dir = settings
        .pseudopotentials
        .dir
        .as_ref()
        .map(|d| base_dir.join(d));
    // Files are checked where their directory is on this machine: a campaign validated
    // on a laptop for a cluster's directory gets the element coverage checked only.
    let on_this_machine = dir
        .clone()
        .or_else(|| family.default_dir.clone())
        .is_some_and(|d| d.is_dir());
    family.resolve(
        &elements,
        dir.as_deref(),
        &settings.pseudopotentials.files,
        on_this_machine,
    )?;
    Ok(())
}

/// The policy a step uses: its `recovery`, with `allow_smearing` and `max_attempts`
/// applied.
pub fn effective_policy(settings: &Settings, base_dir: &Path) -> Result<RecoveryPolicy, QeError> {
    let mut policy = RecoveryPolicy::from_spec(&settings.recovery, base_dir)?;
    if !settings.allow_smearing {
        policy = policy.without_smearing();
    }
    if let Some(n) = settings.max_attempts {
        policy.max_attempts = n;
    }
    Ok(policy)
}

/// Structures of a step that pw.x treats alike for k-points: the same elements, atom count
/// and grid.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KpointClass {
    /// The elements, in order of first appearance (`Fe`, `Si O`).
    pub elements: String,
    /// Atoms per cell.
    pub atoms: usize,
    /// The grid (`4x4x4`, `gamma`).
    pub kgrid: String,
    /// Points of the full grid.
    pub grid_points: u32,
    /// The k-points pw.x computes: with `nosym`, time reversal still pairs k and −k
    /// ([`crate::kpoints::KGrid::nosym_kpoints`]); with symmetry on, at most that.
    pub kpoints: u32,
    /// Whether symmetry is off (the factory's default): `kpoints` is then exact.
    pub nosym: bool,
    /// How many structures.
    pub structures: usize,
    /// The first of them.
    pub example: String,
}

/// What `flow plan` prints for a qe-scf step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlanSummary {
    /// How many structures (tasks).
    pub structures: usize,
    /// The structure shown (the first, or the one asked for with `--structure`/`--task`).
    pub first_structure: String,
    /// Whether it was asked for (not just the first).
    pub selected: bool,
    /// Its `pw.in` for attempt 0.
    pub pw_in: String,
    /// Its k-point grid.
    pub kgrid: String,
    /// Its k-point count (see [`KpointClass::kpoints`]).
    pub kpoints: u32,
    /// Its `-nk`.
    pub pools: u32,
    /// Pseudopotential family and files.
    pub pseudopotentials: Vec<(String, String)>,
    /// The family's name.
    pub pseudo_family: String,
    /// The policy as readable lines.
    pub policy: Vec<String>,
    /// Grid and k-point count per structure class, largest count first.
    pub kpoint_classes: Vec<KpointClass>,
}

/// Classes beyond this many are summarised in one line.
pub const SHOWN_CLASSES: usize = 12;

impl fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "qe-scf: {} structure(s); {}: {}",
            self.structures,
            if self.selected { "shown" } else { "first" },
            self.first_structure
        )?;
        writeln!(
            f,
            "  k-points: {} ({} k-point(s))   pools (-nk): {}",
            self.kgrid, self.kpoints, self.pools
        )?;
        if self.kpoint_classes.len() > 1 || self.structures > 1 {
            writeln!(f, "  k-points per structure class (elements, atoms, grid):")?;
            for c in self.kpoint_classes.iter().take(SHOWN_CLASSES) {
                writeln!(
                    f,
                    "    {} ×{} atoms, {}: {}{} k-point(s) of {} grid points; {} structure(s), e.g. {}",
                    c.elements,
                    c.atoms,
                    c.kgrid,
                    if c.nosym { "" } else { "at most " },
                    c.kpoints,
                    c.grid_points,
                    c.structures,
                    c.example
                )?;
            }
            if self.kpoint_classes.len() > SHOWN_CLASSES {
                let rest = &self.kpoint_classes[SHOWN_CLASSES..];
                writeln!(
                    f,
                    "    ... {} more class(es), {} structure(s)",
                    rest.len(),
                    rest.iter().map(|c| c.structures).sum::<usize>()
                )?;
            }
        }
        let files: Vec<String> = self
            .pseudopotentials
            .iter()
            .map(|(e, p)| format!("{e}: {p}"))
            .collect();
        writeln!(
            f,
            "  pseudopotentials ({}): {}",
            self.pseudo_family,
            files.join(", ")
        )?;
        writeln!(f, "  recovery:")?;
        for l in &self.policy {
            writeln!(f, "    {l}")?;
        }
        writeln!(f, "  pw.in (attempt 0):")?;
        for l in self.pw_in.lines() {
            writeln!(f, "    {l}")?;
        }
        Ok(())
    }
}

/// Prepares one structure the way a task will (pseudopotential files checked).
pub fn prepare(
    settings: &Settings,
    policy: &RecoveryPolicy,
    r: &StructureRef,
    s: Structure,
    base_dir: &Path,
    ranks: u32,
) -> Result<PreparedStructure, QeError> {
    prepare_structure(settings, policy, s, &r.name, base_dir, ranks, true)
}

/// The plan-time summary, showing the first structure. Every structure is prepared, so a
/// missing pseudopotential for any of them is reported now, not at run time.
pub fn plan_summary(
    settings: &Settings,
    base_dir: &Path,
    ranks: u32,
) -> Result<PlanSummary, QeError> {
    plan_summary_for(settings, base_dir, ranks, None)
}

/// The plan-time summary showing the structure named `shown` (its exact name); `None`:
/// the first. Errors when no structure has that name (the message lists some).
pub fn plan_summary_for(
    settings: &Settings,
    base_dir: &Path,
    ranks: u32,
    shown: Option<&str>,
) -> Result<PlanSummary, QeError> {
    settings.validate()?;
    let policy = effective_policy(settings, base_dir)?;
    let structures = expand_structures(settings, base_dir)?;
    let mut picked = None;
    let mut classes: Vec<KpointClass> = Vec::new();
    for (r, s) in &structures {
        let prep = prepare(settings, &policy, r, s.clone(), base_dir, ranks)?;
        let nosym = prep.initial.get("nosym").and_then(|v| v.as_bool()) == Some(true);
        let (elements, atoms, kgrid) =
            (prep.species.join(" "), s.symbols.len(), prep.kgrid.label());
        match classes
            .iter_mut()
            .find(|c| c.elements == elements && c.atoms == atoms && c.kgrid == kgrid)
        {
            Some(c) => c.structures += 1,
            None => classes.push(KpointClass {
                elements,
                atoms,
                kgrid,
                grid_points: prep.kgrid.total_points(),
                kpoints: prep.kgrid.nosym_kpoints(),
                nosym,
                structures: 1,
                example: r.name.clone(),
            }),
        }
        let wanted = match shown {
            Some(name) => r.name == name,
            None => picked.is_none(),
        };
        if wanted && picked.is_none() {
            picked = Some(prep);
        }
    }
    let Some(prep) = picked else {
        let names: Vec<&str> = structures
            .iter()
            .take(5)
            .map(|(r, _)| r.name.as_str())
            .collect();
        return Err(QeError::UnknownStructure {
            name: shown.unwrap_or("").to_string(),
            count: structures.len(),
            some: format!(
                "{}{}",
                names.join(", "),
                if structures.len() > 5 { ", ..." } else { "" }
            ),
        });
    };
    classes.sort_by(|a, b| {
        b.kpoints
            .cmp(&a.kpoints)
            .then(b.structures.cmp(&a.structures))
    });
    Ok(PlanSummary {
        structures: structures.len(),
        first_structure: prep.name.clone(),
        selected: shown.is_some(),
        pw_in: render_pw_input(&prep, &prep.initial, &format!("./{OUTDIR}"))?,
        kgrid: prep.kgrid.label(),
        kpoints: prep.kgrid.nosym_kpoints(),
        pools: prep.pools,
        pseudopotentials: prep.pseudos.files.clone(),
        pseudo_family: prep.pseudos.family.clone(),
        policy: policy.describe(),
        kpoint_classes: classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expands_globs_and_frames_and_summarises() {
        let dir = tempfile::tempdir().unwrap();
        let sdir = dir.path().join("structures");
        std::fs::create_dir_all(&sdir).unwrap();
        let frame = "2\nLattice=\"0 2.715 2.715 2.715 0 2.715 2.715 2.715 0\"\nSi 0 0 0\nSi 1.3575 1.3575 1.3575\n";
        std::fs::write(sdir.join("b.extxyz"), format!("{frame}{frame}")).unwrap();
        std::fs::write(sdir.join("a.extxyz"), frame).unwrap();
        std::fs::create_dir_all(dir.path().join("pp")).unwrap();
        std::fs::write(dir.path().join("pp/Si.pz-vbc.UPF"), "").unwrap();
        let settings = Settings::from_json(&json!({
            "structures": "structures/*.extxyz",
            "pseudopotentials": {"family": "qe-debian", "dir": "pp"},
            "kpoints": {"spacing": 0.5},
            "allow_smearing": false
        }))
        .unwrap();
        let list = expand_structures(&settings, dir.path()).unwrap();
        let names: Vec<&str> = list.iter().map(|(r, _)| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "structures/a.extxyz",
                "structures/b.extxyz#0",
                "structures/b.extxyz#1"
            ]
        );
        let summary = plan_summary(&settings, dir.path(), 4).unwrap();
        assert_eq!(summary.structures, 3);
        assert_eq!(summary.kpoints, 36, "4x4x4 with nosym: (64 + 8)/2 k-points");
        assert_eq!(summary.kpoint_classes.len(), 1);
        assert_eq!(summary.kpoint_classes[0].structures, 3);
        let shown =
            plan_summary_for(&settings, dir.path(), 4, Some("structures/b.extxyz#1")).unwrap();
        assert!(shown.selected && shown.first_structure == "structures/b.extxyz#1");
        assert!(shown.to_string().contains("shown: structures/b.extxyz#1"));
        let e = plan_summary_for(&settings, dir.path(), 4, Some("nope"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no structure named `nope`") && e.contains("structures/a.extxyz"),
            "{e}"
        );
        assert_eq!(summary.kgrid, "4x4x4");
        assert_eq!(summary.pools, 4);
        let text = summary.to_string();
        assert!(
            text.contains("calculation = 'scf'") && text.contains("Si: Si.pz-vbc.UPF"),
            "{text}"
        );
        assert!(
            text.contains("on scf-not-converged → mixing_beta = 0.3"),
            "{text}"
        );
        assert!(
            !text.contains("occupations = 'smearing'"),
            "allow_smearing: false removes it:\n{text}"
        );
    }

    #[test]
    fn a_table_only_family_without_dir_is_an_error_saying_where_files_come_from() {
        let s = Settings::from_json(&json!({
            "structures": "x.extxyz",
            "pseudopotentials": {"family": "sssp-efficiency-1.1"}
        }))
        .unwrap();
        let e = check_pseudopotentials(&s, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sssp-efficiency-1.1") && e.contains("pseudopotentials.dir"),
            "{e}"
        );
        assert!(e.contains("materialscloud.org"), "{e}");
        let with_dir = Settings::from_json(&json!({
            "structures": "x.extxyz",
            "pseudopotentials": {"family": "sssp-efficiency-1.1", "dir": "/pp"}
        }))
        .unwrap();
        assert!(check_pseudopotentials(&with_dir, Path::new("/")).is_ok());
        let debian = Settings::from_json(&json!({
            "structures": "x.extxyz", "pseudopotentials": {"family": "qe-debian"}
        }))
        .unwrap();
        assert!(check_pseudopotentials(&debian, Path::new("/")).is_ok());
    }

    #[test]
    fn the_campaign_directory_is_not_a_glob() {
        let dir = tempfile::tempdir().unwrap();
        let camp = dir.path().join("run[1]");
        std::fs::create_dir_all(&camp).unwrap();
        std::fs::write(
            camp.join("cu.extxyz"),
            "1\nLattice=\"3 0 0 0 3 0 0 0 3\"\nCu 0 0 0\n",
        )
        .unwrap();
        let settings = Settings::from_json(&json!({
            "structures": "*.extxyz",
            "pseudopotentials": {"family": "qe-debian"}
        }))
        .unwrap();
        let list = expand_structures(&settings, &camp).unwrap();
        assert_eq!(list[0].0.name, "cu.extxyz");
    }

    #[test]
    fn no_match_and_missing_pseudo_are_plan_errors() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::from_json(&json!({
            "structures": "nothing/*.extxyz",
            "pseudopotentials": {"family": "qe-debian", "dir": "pp"}
        }))
        .unwrap();
        assert!(matches!(
            expand_structures(&settings, dir.path()),
            Err(QeError::NoStructures { .. })
        ));
        std::fs::write(
            dir.path().join("cu.extxyz"),
            "1\nLattice=\"3 0 0 0 3 0 0 0 3\"\nCu 0 0 0\n",
        )
        .unwrap();
        let settings = Settings::from_json(&json!({
            "structures": "cu.extxyz",
            "pseudopotentials": {"family": "qe-debian", "dir": "pp"}
        }))
        .unwrap();
        let e = plan_summary(&settings, dir.path(), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Cu") && e.contains("Cu.pz-d-rrkjus.UPF"), "{e}");
    }
}
