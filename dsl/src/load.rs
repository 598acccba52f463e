//! The loading pipeline: campaign file -> machine recipe -> schema checks -> merge ->
//! typed [`Campaign`]. Reports every problem it can find, each located.
//!
//! This file reads the files and the machine (its typed settings are
//! [`crate::machine_settings`]); `step` resolves each step, `arrays` its `array:`, `checks`
//! what is checked across the campaign.

use crate::array::{
    ArraySpec, Combine, ExtraElements, ParamKind, ParamList, ParamValue, ParamValues,
};
use crate::diagnostic::{did_you_mean, Diagnostic, Diagnostics};
use crate::machine_settings::{
    block_provenance, builtin, builtin_as, builtin_provenance, typed_block,
};
use crate::merge::{leaves, merge};
use crate::model::*;
use crate::node::{Key, Node, ScalarKind, Seq, Value};
use crate::quantity::{parse_duration, parse_memory_mb};
use crate::recipes;
use crate::schema::{self, DocumentKind};
use crate::source::{SourceFile, Span};
use crate::template::{render, TemplateKind};
use crate::yaml_loader;
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod arrays;
mod checks;
#[cfg(test)]
mod settings_tests;
mod step;

use arrays::*;
use checks::*;
pub use checks::{is_confined, is_unsafe_name_char, sample_template_data, RESERVED_DIRS};
use step::*;

/// Tasks one step's array may have unless `campaign.max_tasks` says otherwise.
pub const DEFAULT_MAX_TASKS: u64 = 100_000_000;

/// Template variables every task has, besides its array parameters.
pub const BUILTIN_VARIABLES: &[&str] = &[
    "task_id",
    "seed",
    "index",
    "step",
    "campaign_dir",
    "base_dir",
];

/// Read and parse one YAML file into a node tree (regular files of at most 64 MiB only).
pub fn read_yaml(path: &Path) -> Result<Node, Diagnostics> {
    let name = path.display().to_string();
    let bytes = yaml_loader::read_capped(path).map_err(|e| {
        Diagnostics::from(Diagnostic::new(
            None,
            "",
            format!("cannot read {name}: {e}"),
        ))
    })?;
    let text = yaml_loader::decode_utf8(&name, bytes)?;
    yaml_loader::parse(&SourceFile::new(name, text))
}

/// Whether `bytes` look like a machine file: the first line that is not blank, a comment,
/// a directive or `---` starts with the top-level key `machine:`. Anything else (a
/// credentials file, `/etc/shadow`, a `.env`) is refused before a line of it could be quoted.
pub fn looks_like_machine_file(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| {
            let t = l.trim_ascii();
            !(t.is_empty() || t.starts_with(b"#") || t.starts_with(b"%") || t == b"---")
        })
        .is_some_and(|l| {
            let l = l.strip_prefix(b"--- ").unwrap_or(l);
            l.starts_with(b"machine:")
                || l.starts_with(b"\"machine\":")
                || l.starts_with(b"'machine':")
        })
}

/// Load, validate and resolve a campaign file.
pub fn load_campaign(path: &Path) -> Result<Campaign, Diagnostics> {
    let root = read_yaml(path)?;
    if root.value == Value::Null {
        return Err(Diagnostic::at(&root.span, "", "the file is empty")
            .expected("a campaign: `campaign:`, `steps:` and optionally `defaults:`")
            .help("`flow init --machine local` writes a starter campaign")
            .into());
    }
    // Schema errors do not stop the pass: the checks below (needs, cycles, templates, job
    // types) still run on what is readable, so the user sees every problem at once.
    let schema_errors = match schema::validate(DocumentKind::Campaign, &root) {
        Ok(()) => Diagnostics::default(),
        Err(d)
            if root
                .get("campaign")
                .and_then(|c| c.get("machine"))
                .and_then(Node::as_str)
                .is_some()
                && root.get("steps").and_then(Node::as_map).is_some() =>
        {
            d
        }
        Err(d) => return Err(d),
    };
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    // Everything a task sees is absolute: tasks run in other directories than the driver.
    let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
    let base_dir = normalize(&base_dir);

    let machine_node_ref = root.at_pointer("/campaign/machine").unwrap_or(&root);
    let machine_ref = machine_node_ref.as_str().unwrap_or_default().to_string();
    let (machine_root, machine_source) = load_machine(&machine_ref, machine_node_ref, &base_dir)?;
    let mut diags = schema_errors;
    let machine = build_machine(&machine_root, &machine_source, Some(&base_dir), &mut diags);

    let text = |p: &str| {
        root.at_pointer(p)
            .and_then(Node::as_str)
            .map(str::to_string)
    };
    let name = text("/campaign/name").unwrap_or_default();
    let version = text("/campaign/version").unwrap_or_default();
    let output = match text("/campaign/output") {
        Some(o) => expand_home(&o, &base_dir),
        None => base_dir.join("campaigns"),
    };
    let campaign_dir = normalize(&output.join(format!("{version}_{name}")));

    // Defaults: machine tier, then campaign tier.
    let empty = Node::new(Value::Map(vec![]), root.span.clone());
    let machine_defaults = machine_root
        .at_pointer("/machine/defaults")
        .unwrap_or(&empty);
    let campaign_defaults = root.get("defaults").unwrap_or(&empty);
    let defaults = merge(machine_defaults, campaign_defaults);
    let job_types = machine_root.at_pointer("/machine/job_types");

    let max_tasks = match root.at_pointer("/campaign/max_tasks").map(|n| &n.value) {
        Some(Value::Int(n)) if *n > 0 => *n as u64,
        _ => DEFAULT_MAX_TASKS,
    };
    check_strings(&root, "", &mut diags);
    check_strings(&machine_root, "", &mut diags);
    check_sbatch_values(&machine_root, "machine", &mut diags);
    check_env_names(root.at_pointer("/defaults/env"), "defaults.env", &mut diags);
    check_env_names(
        machine_root.at_pointer("/machine/defaults/env"),
        "machine.defaults.env",
        &mut diags,
    );
    check_env_names(
        machine_root.at_pointer("/machine/setup/env"),
        "machine.setup.env",
        &mut diags,
    );
    for (key, node) in root.get("steps").and_then(Node::as_map).unwrap_or_default() {
        check_env_names(
            node.get("env"),
            &format!("steps.{}.env", key.name),
            &mut diags,
        );
    }

    let mut steps = Vec::new();
    if let Some(entries) = root.get("steps").and_then(Node::as_map) {
        for (key, node) in entries {
            if let Some(step) = build_step(
                key, node, &defaults, job_types, &machine, max_tasks, &mut diags,
            ) {
                steps.push(step);
            }
        }
    }
    let notify = crate::machine_settings::notify::notify_settings(
        machine_root.at_pointer("/machine/notify"),
        root.get("notify"),
        &mut diags,
    );
    check_needs(&steps, &mut diags);
    for step in &steps {
        check_templates(step, &mut diags);
    }
    diags.0.sort_by(|a, b| {
        let key = |d: &Diagnostic| {
            d.span
                .as_ref()
                .map(|s| (s.file.name.clone(), s.line, s.col))
        };
        key(a).cmp(&key(b))
    });
    // The schema and the typed checks may both object to one value: keep the first word.
    diags.0.dedup_by(|a, b| {
        // Several missing fields of one map share a position and a field: all stay.
        a.span == b.span
            && a.field == b.field
            && !(a.message.starts_with("missing required field")
                && b.message.starts_with("missing required field"))
    });
    diags.into_result()?;

    let description = text("/campaign/description");
    let seed_salt = root
        .at_pointer("/campaign/seed")
        .and_then(Node::scalar_text);
    // The documents themselves become the snapshot: nothing is copied.
    let snapshot = Snapshot::new(
        path.display().to_string(),
        root,
        machine_source,
        machine_root,
    );
    Ok(Campaign {
        name,
        version,
        description,
        seed_salt,
        file: base_dir.join(path.file_name().unwrap_or_default()),
        campaign_dir,
        machine,
        steps,
        notify,
        snapshot,
    })
}

/// Remove `.` components (and `..` after a normal component) without touching the disk.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A path as users write it in YAML: `~/x` is under `$HOME`, a relative path is relative to
/// `base`, an absolute one stays.
pub fn expand_home(p: &str, base: &Path) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// Resolve `campaign.machine`: a path (contains `/` or ends in `.yaml`) or a recipe name.
pub fn load_machine(
    reference: &str,
    at: &Node,
    base_dir: &Path,
) -> Result<(Node, String), Diagnostics> {
    let is_path =
        reference.contains('/') || reference.ends_with(".yaml") || reference.ends_with(".yml");
    let root = if is_path {
        let path = expand_home(reference, base_dir);
        let bytes = yaml_loader::read_capped(&path).map_err(|e| {
            let why = match e {
                yaml_loader::ReadError::Io(_) => String::new(),
                other => format!(": {other}"),
            };
            Diagnostics::from(Diagnostic::at(
                &at.span,
                "campaign.machine",
                format!("cannot read machine file `{reference}` (paths are relative to the campaign file){why}"),
            ))
        })?;
        if !looks_like_machine_file(&bytes) {
            return Err(Diagnostic::at(
                &at.span,
                "campaign.machine",
                format!("`{reference}` is not a machine file: its first key is not `machine:` (flow shows nothing of its contents)"),
            )
            .expected("a YAML file that starts with `machine:`, or a recipe name")
            .into());
        }
        let name = path.display().to_string();
        let text = yaml_loader::decode_utf8(&name, bytes)?;
        let node = yaml_loader::parse(&SourceFile::new(name, text))?;
        (node, path.display().to_string())
    } else {
        let found = recipes::find_machine(reference, Some(base_dir)).ok_or_else(|| {
            let names = recipes::machine_names(Some(base_dir));
            let mut d = Diagnostic::at(
                &at.span,
                "campaign.machine",
                format!("no machine recipe named `{reference}`"),
            )
            .expected(format!(
                "one of {}, or a path to a machine file",
                names.join(", ")
            ));
            if let Some(best) = did_you_mean(reference, names.iter().map(String::as_str)) {
                d = d.help(format!("did you mean `{best}`?"));
            }
            Diagnostics::from(d)
        })?;
        let node = yaml_loader::parse(&SourceFile::new(found.source.clone(), found.text))?;
        (node, found.source)
    };
    schema::validate(DocumentKind::Machine, &root.0)?;
    Ok(root)
}

/// Parse a machine recipe as a standalone file (for `flow recipes show` and tests).
pub fn load_machine_recipe(name: &str) -> Result<Machine, Diagnostics> {
    let dummy = SourceFile::new("<command line>", name);
    let at = Node::new(Value::Str(name.into()), Span::new(&dummy, 1, 1));
    let (root, source) = load_machine(name, &at, Path::new("."))?;
    let mut diags = Diagnostics::default();
    let m = build_machine(&root, &source, None, &mut diags);
    diags.into_result().map(|_| m)
}

/// A machine's `slurm.template` must be a regular file flow can read and a template that
/// compiles. The error says where in the template it fails, never what the template's line
/// holds (it is not a campaign file, and may be anything).
fn check_sbatch_template(path: &Path, node: &Node, diags: &mut Diagnostics) {
    let field = "machine.slurm.template";
    let text = match crate::user_file::read_text(path) {
        Ok(text) => text,
        Err(e) => {
            diags.push(Diagnostic::at(
                &node.span,
                field,
                format!("cannot read the sbatch template {}: {e}", path.display()),
            ));
            return;
        }
    };
    if let Err(e) = handlebars::Template::compile(&text) {
        let at = e
            .pos()
            .map_or(String::new(), |(l, c)| format!(" at line {l}, column {c}"));
        diags.push(Diagnostic::at(
            &node.span,
            field,
            format!(
                "the sbatch template {} is not a valid handlebars template{at}: {}",
                path.display(),
                e.reason()
            ),
        ));
    }
}

/// The typed machine. `base_dir` (the campaign file's directory) resolves a relative
/// `slurm.template`; `None` leaves it as written (`flow recipes show`).
fn build_machine(
    root: &Node,
    source: &str,
    base_dir: Option<&Path>,
    diags: &mut Diagnostics,
) -> Machine {
    let m = root.get("machine").unwrap_or(root);
    let s = |p: &str| m.at_pointer(p).and_then(Node::scalar_text);
    let u = |p: &str| {
        m.at_pointer(p).and_then(|n| match n.value {
            Value::Int(i) if i >= 0 => Some(i as u64),
            _ => None,
        })
    };
    let local_mem_mb = m
        .at_pointer("/local/mem")
        .and_then(|n| memory_of(n, "machine.local.mem", diags));
    let setup = Setup {
        modules: strings(m.at_pointer("/setup/modules")),
        commands: strings(m.at_pointer("/setup/commands")),
        env: env_pairs(m.at_pointer("/setup/env")),
    };
    let mut provenance = Vec::new();
    let slurm_node = m.get("slurm");
    let mut slurm: SlurmSettings = slurm_node
        .and_then(|n| typed_block(n, "machine.slurm", &serde_json::json!({}), diags))
        .unwrap_or_default();
    block_provenance("machine.slurm", slurm_node, &mut provenance);
    slurm.modules.extend(setup.modules.iter().cloned());
    slurm.setup.extend(setup.commands.iter().cloned());
    for (k, v) in &setup.env {
        slurm.env.insert(k.clone(), v.clone());
    }
    if let (Some(t), Some(base)) = (&slurm.template, base_dir) {
        let path = base.join(t);
        if let Some(node) = m.at_pointer("/slurm/template") {
            check_sbatch_template(&path, node, diags);
        }
        slurm.template = Some(path);
    }
    let kubernetes_node = m.get("kubernetes");
    let kubernetes: Option<KubernetesSettings> = kubernetes_node.and_then(|n| {
        // What the type needs besides the entry being tried (the schema requires both).
        let base = serde_json::json!({"namespace": "-", "image": "-"});
        typed_block(n, "machine.kubernetes", &base, diags)
    });
    if kubernetes_node.is_some() {
        block_provenance("machine.kubernetes", kubernetes_node, &mut provenance);
    }
    Machine {
        name: s("/name").unwrap_or_default(),
        description: s("/description"),
        source: source.to_string(),
        executor: s("/executor")
            .and_then(|e| ExecutorKind::parse(&e))
            .unwrap_or(ExecutorKind::Local),
        root: s("/root"),
        launcher: s("/launcher").filter(|l| l != "none"),
        local_cpus: u("/local/cpus").map(|v| v as u32),
        local_gpus: u("/local/gpus").map(|v| v as u32),
        local_mem_mb,
        slurm,
        kubernetes,
        setup,
        job_type_names: m
            .get("job_types")
            .and_then(Node::as_map)
            .map(|e| e.iter().map(|(k, _)| k.name.clone()).collect())
            .unwrap_or_default(),
        unverified: strings(m.get("unverified")),
        provenance,
    }
}

fn strings(node: Option<&Node>) -> Vec<String> {
    node.and_then(Node::as_seq)
        .map(|items| items.iter().filter_map(|n| n.scalar_text()).collect())
        .unwrap_or_default()
}

fn env_pairs(node: Option<&Node>) -> Vec<(String, String)> {
    node.and_then(Node::as_map)
        .map(|e| {
            e.iter()
                .map(|(k, v)| (k.name.clone(), v.scalar_text().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

fn duration_of(n: &Node, field: &str, diags: &mut Diagnostics) -> Option<Duration> {
    match parse_duration(&n.scalar_text().unwrap_or_default()) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.push(
                Diagnostic::at(&n.span, field, e).expected("a duration such as 90s, 10m, 2h"),
            );
            None
        }
    }
}

fn memory_of(n: &Node, field: &str, diags: &mut Diagnostics) -> Option<u64> {
    match parse_memory_mb(&n.scalar_text().unwrap_or_default()) {
        Ok(v) => Some(v),
        Err(e) => {
            diags.push(Diagnostic::at(&n.span, field, e).expected("an amount such as 500M or 32G"));
            None
        }
    }
}

/// Used by tests and `flow init`: load a campaign from text as if it were a file.
pub fn load_campaign_text(name: &str, text: &str, dir: &Path) -> Result<Campaign, Diagnostics> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| {
        Diagnostics::from(Diagnostic::new(
            None,
            "",
            format!("cannot write {}: {e}", path.display()),
        ))
    })?;
    load_campaign(&path)
}

#[cfg(test)]
mod adaptive_tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"campaign: {name: cal, version: v1, machine: local}
steps:
  opt-env: {kind: build-env, environment: optuna}
  calibrate:
    kind: adaptive
    needs: [opt-env]
    algorithm:
      optuna: {sampler: tpe, seed: 1, direction: minimize}
      environment: optuna
    space:
      beta: {uniform: [0.1, 1.0]}
      gamma: {log_uniform: [0.01, 0.5]}
      n: {int: [1, 10]}
      model: [sir, seir]
    trials: 64
    batch: 8
    replicates: 3
    command: python sim.py --beta {{beta}} --gamma {{gamma}} --n {{n}} --model {{model}} --seed {{seed}} --out {{output}}
    output: trials/{{param_id}}/r{{replicate}}.json
    objective: {key: loss, aggregate: mean}
"#;

    #[test]
    fn the_issue_example_loads_with_its_typed_settings() {
        let dir = tempfile_dir();
        let c = load_campaign_text("c.yaml", ISSUE_EXAMPLE, dir.path()).unwrap();
        let step = c.step("calibrate").unwrap();
        assert_eq!(step.kind, StepKind::Adaptive);
        let a = step.adaptive.as_ref().unwrap();
        assert_eq!((a.trials, a.batch, a.replicates), (64, 8, 3));
        assert_eq!(a.space.params.len(), 4);
        assert_eq!(a.environment.as_deref(), Some("optuna"));
    }

    #[test]
    fn unknown_template_variables_and_arrays_are_located_errors() {
        let dir = tempfile_dir();
        let text = ISSUE_EXAMPLE.replace("--n {{n}}", "--n {{m}}");
        let e = load_campaign_text("c.yaml", &text, dir.path()).unwrap_err();
        assert!(e.to_string().contains("steps.calibrate.command"), "{e}");
        let text = ISSUE_EXAMPLE.replace(
            "    trials: 64\n",
            "    trials: 64\n    array: {x: [1, 2]}\n",
        );
        assert!(load_campaign_text("c.yaml", &text, dir.path()).is_err());
    }

    /// A directory of the test's own: tests run in parallel threads of one process, and
    /// `load_campaign_text` writes the campaign file into it.
    fn tempfile_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }
}
