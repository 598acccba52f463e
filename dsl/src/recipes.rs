//! The recipe library: machine recipes embedded in the binary, extended by a directory
//! (`$FLOW_RECIPES`, or `recipes/` beside the campaign file). A file in a directory wins
//! over the embedded recipe of the same name.

use std::path::{Path, PathBuf};

/// Machine recipes shipped inside the binary: (name, text).
pub const EMBEDDED_MACHINES: &[(&str, &str)] = &[
    ("local", include_str!("../../recipes/machines/local.yaml")),
    ("della", include_str!("../../recipes/machines/della.yaml")),
    (
        "perlmutter",
        include_str!("../../recipes/machines/perlmutter.yaml"),
    ),
    (
        "generic-slurm",
        include_str!("../../recipes/machines/generic-slurm.yaml"),
    ),
    (
        "generic-k8s",
        include_str!("../../recipes/machines/generic-k8s.yaml"),
    ),
    (
        "aks-gpu",
        include_str!("../../recipes/machines/aks-gpu.yaml"),
    ),
];

/// A machine recipe found by name: its display name and text.
#[derive(Debug, Clone)]
pub struct FoundRecipe {
    pub source: String,
    pub text: String,
}

/// Directories searched before the embedded library, in order.
pub fn recipe_dirs(campaign_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = campaign_dir {
        dirs.push(d.join("recipes"));
    }
    if let Some(env) = std::env::var_os("FLOW_RECIPES") {
        dirs.push(PathBuf::from(env));
    }
    dirs
}

/// Find a machine recipe by name.
pub fn find_machine(name: &str, campaign_dir: Option<&Path>) -> Option<FoundRecipe> {
    for dir in recipe_dirs(campaign_dir) {
        let path = dir.join("machines").join(format!("{name}.yaml"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Some(FoundRecipe {
                source: path.display().to_string(),
                text,
            });
        }
    }
    EMBEDDED_MACHINES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| FoundRecipe {
            source: format!("recipe:machines/{n}.yaml"),
            text: text.to_string(),
        })
}

/// Names of every machine recipe reachable from here (directories and embedded).
pub fn machine_names(campaign_dir: Option<&Path>) -> Vec<String> {
    let mut names: Vec<String> = EMBEDDED_MACHINES
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    for dir in recipe_dirs(campaign_dir) {
        if let Ok(entries) = std::fs::read_dir(dir.join("machines")) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "yaml") {
                    if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                        if !names.iter().any(|n| n == stem) {
                            names.push(stem.to_string());
                        }
                    }
                }
            }
        }
    }
    names.sort();
    names
}
