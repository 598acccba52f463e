//! The loading pipeline: campaign file -> machine recipe -> schema checks -> merge ->
//! typed [`Campaign`]. Reports every problem it can find, each located.

use crate::array::{
    ArraySpec, Combine, ExtraElements, ParamKind, ParamList, ParamValue, ParamValues,
};
use crate::diagnostic::{did_you_mean, Diagnostic, Diagnostics};
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
    let machine = build_machine(&machine_root, &machine_source, &mut diags);

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
    let m = build_machine(&root, &source, &mut diags);
    diags.into_result().map(|_| m)
}

fn build_machine(root: &Node, source: &str, diags: &mut Diagnostics) -> Machine {
    let m = root.get("machine").unwrap_or(root);
    let s = |p: &str| m.at_pointer(p).and_then(Node::scalar_text);
    let u = |p: &str| {
        m.at_pointer(p).and_then(|n| match n.value {
            Value::Int(i) if i >= 0 => Some(i as u64),
            _ => None,
        })
    };
    let submit_rate = match m.at_pointer("/slurm/submit_rate") {
        Some(n) => parse_rate(n.as_str().unwrap_or_default()).unwrap_or_else(|e| {
            diags.push(Diagnostic::at(&n.span, "machine.slurm.submit_rate", e));
            2.0
        }),
        None => 2.0,
    };
    let poll_interval = duration_at(
        m,
        "/slurm/poll_interval",
        "machine.slurm.poll_interval",
        diags,
    )
    .unwrap_or(Duration::from_secs(15));
    let local_mem_mb = m
        .at_pointer("/local/mem")
        .and_then(|n| memory_of(n, "machine.local.mem", diags));
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
        slurm: SlurmSettings {
            account: s("/slurm/account"),
            max_array_size: u("/slurm/max_array_size").unwrap_or(1000),
            max_submitted: u("/slurm/max_submitted"),
            submit_rate,
            poll_interval,
            template: s("/slurm/template"),
        },
        kubernetes: m
            .get("kubernetes")
            .map_or(serde_json::Value::Null, Node::to_json),
        setup: Setup {
            modules: strings(m.at_pointer("/setup/modules")),
            commands: strings(m.at_pointer("/setup/commands")),
            env: env_pairs(m.at_pointer("/setup/env")),
        },
        job_type_names: m
            .get("job_types")
            .and_then(Node::as_map)
            .map(|e| e.iter().map(|(k, _)| k.name.clone()).collect())
            .unwrap_or_default(),
        unverified: strings(m.get("unverified")),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let (n, unit) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not a rate like 2/s"))?;
    let n: f64 = n
        .parse()
        .map_err(|_| format!("`{text}` is not a rate like 2/s"))?;
    match unit {
        "s" => Ok(n),
        "m" | "min" => Ok(n / 60.0),
        _ => Err(format!("`{text}`: the unit must be /s or /m")),
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

fn duration_at(
    node: &Node,
    pointer: &str,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    let n = node.at_pointer(pointer)?;
    duration_of(n, field, diags)
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

fn factor_of(n: &Node) -> Option<f64> {
    n.as_str()?.strip_prefix('x')?.parse().ok()
}

fn subset(node: &Node, keys: &[&str]) -> Node {
    let entries = node
        .as_map()
        .map(|e| {
            e.iter()
                .filter(|(k, _)| keys.contains(&k.name.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Node::new(Value::Map(entries), node.span.clone())
}

fn without(node: &Node, key: &str) -> Node {
    let entries = node
        .as_map()
        .map(|e| e.iter().filter(|(k, _)| k.name != key).cloned().collect())
        .unwrap_or_default();
    Node::new(Value::Map(entries), node.span.clone())
}

fn build_step(
    key: &Key,
    node: &Node,
    defaults: &Node,
    job_types: Option<&Node>,
    machine: &Machine,
    max_tasks: u64,
    diags: &mut Diagnostics,
) -> Option<Step> {
    let name = key.name.clone();
    let field = |f: &str| format!("steps.{name}.{f}");
    let kind = StepKind::parse(node.get("kind")?.as_str()?)?;
    let effective = merge(defaults, &subset(node, &["execution", "resources", "env"]));

    // Resources: the job type from the machine, then field-by-field overrides.
    let empty = Node::new(Value::Map(vec![]), node.span.clone());
    let declared = effective.get("resources").unwrap_or(&empty);
    let mut job_type_name = None;
    let resources_node = match declared.get("job_type") {
        Some(jt) => {
            let jt_name = jt.as_str().unwrap_or_default().to_string();
            job_type_name = Some(jt_name.clone());
            match job_types.and_then(|j| j.get(&jt_name)) {
                Some(shape) => merge(shape, &without(declared, "job_type")),
                None => {
                    let mut d = Diagnostic::at(
                        &jt.span,
                        field("resources.job_type"),
                        format!("machine `{}` has no job type `{jt_name}`", machine.name),
                    )
                    .expected(format!("one of {}", machine.job_type_names.join(", ")));
                    if let Some(best) =
                        did_you_mean(&jt_name, machine.job_type_names.iter().map(String::as_str))
                    {
                        d = d.help(format!("did you mean `{best}`?"));
                    }
                    diags.push(d);
                    without(declared, "job_type")
                }
            }
        }
        None => declared.clone(),
    };
    let r = &resources_node;
    check_sbatch_values(r, &field("resources"), diags);
    if kind == StepKind::MdBenchmark {
        check_gate(node, &field("gate"), diags);
    }
    let rs = |k: &str| r.get(k).and_then(Node::scalar_text);
    let ru = |k: &str, dflt: u32| match r.get(k).map(|n| &n.value) {
        Some(Value::Int(i)) => *i as u32,
        _ => dflt,
    };
    let resources = JobShape {
        job_type: job_type_name,
        partition: rs("partition"),
        account: rs("account").or_else(|| machine.slurm.account.clone()),
        qos: rs("qos"),
        constraint: rs("constraint"),
        nodes: ru("nodes", 1),
        tasks_per_node: ru("tasks_per_node", 1),
        cpus_per_task: ru("cpus_per_task", 1),
        gpus_per_node: ru("gpus_per_node", 0),
        mem_mb: r
            .get("mem")
            .and_then(|n| memory_of(n, &field("resources.mem"), diags)),
        time: r
            .get("time")
            .and_then(|n| duration_of(n, &field("resources.time"), diags)),
        extra: strings(r.get("extra")),
    };

    let e = effective.get("execution").unwrap_or(&empty);
    let eu = |k: &str| match e.get(k).map(|n| &n.value) {
        Some(Value::Int(i)) if *i >= 0 => Some(*i as u64),
        _ => None,
    };
    let backoff = e.get("retry_backoff");
    let bo_dur = |k: &str, d: Duration, diags: &mut Diagnostics| {
        backoff
            .and_then(|b| b.get(k))
            .and_then(|n| duration_of(n, &field(&format!("execution.retry_backoff.{k}")), diags))
            .unwrap_or(d)
    };
    let retry_backoff = RetryBackoff {
        initial: bo_dur("initial", Duration::from_secs(10), diags),
        multiplier: backoff
            .and_then(|b| b.get("multiplier"))
            .and_then(|n| n.scalar_text())
            .and_then(|t| t.parse().ok())
            .unwrap_or(2.0),
        max: bo_dur("max", Duration::from_secs(3600), diags),
        jitter: !matches!(
            backoff.and_then(|b| b.get("jitter")).map(|n| &n.value),
            Some(Value::Bool(false))
        ),
    };
    let on_retry_node = e.get("on_retry");
    let on_retry = OnRetry {
        time_factor: on_retry_node
            .and_then(|n| n.get("time"))
            .and_then(factor_of),
        mem_factor: on_retry_node.and_then(|n| n.get("mem")).and_then(factor_of),
        max_time: on_retry_node
            .and_then(|n| n.get("max_time"))
            .and_then(|n| duration_of(n, &field("execution.on_retry.max_time"), diags)),
        max_mem_mb: on_retry_node
            .and_then(|n| n.get("max_mem"))
            .and_then(|n| memory_of(n, &field("execution.on_retry.max_mem"), diags)),
    };
    let execution = Execution {
        max_retries: eu("max_retries").unwrap_or(0) as u32,
        retry_backoff,
        timeout: e
            .get("timeout")
            .and_then(|n| duration_of(n, &field("execution.timeout"), diags)),
        batch_size: eu("batch_size"),
        max_running: eu("max_running").map(|v| v as u32),
        max_infrastructure_retries: eu("max_infrastructure_retries").unwrap_or(5) as u32,
        on_retry,
        max_log_bytes: e
            .get("max_log_size")
            .and_then(|n| memory_of(n, &field("execution.max_log_size"), diags))
            .map(|mb| mb.saturating_mul(1024 * 1024).max(1024 * 1024)),
    };

    let needs = node
        .get("needs")
        .and_then(Node::as_seq)
        .map(|items| {
            items
                .iter()
                .filter_map(|n| n.as_str().map(|s| (s.to_string(), n.span.clone())))
                .collect()
        })
        .unwrap_or_default();
    let condition = match node.get("condition").and_then(Node::as_str) {
        Some("all-completed") => Condition::AllCompleted,
        _ => Condition::AllSucceeded,
    };
    let array = node.get("array").and_then(|a| {
        let at = node.key("array").map_or(&a.span, |k| &k.span);
        parse_array(a, at, &field("array"), max_tasks, diags)
    });
    let template = |k: &str| {
        node.get(k).and_then(|n| {
            n.as_str().map(|t| Template {
                text: t.to_string(),
                span: n.span.clone(),
                field: field(k),
            })
        })
    };

    let mut provenance = Vec::new();
    let mut list = Vec::new();
    leaves("", &effective, &mut list);
    let mut res_list = Vec::new();
    leaves("resources", &resources_node, &mut res_list);
    for (path, value, n) in list
        .into_iter()
        .filter(|(p, _, _)| !p.starts_with("resources"))
        .chain(res_list)
    {
        provenance.push(Provenance {
            path,
            value,
            span: Some(n),
        });
    }
    let mut own = Vec::new();
    for (k, v) in node.as_map().unwrap_or_default() {
        if !["execution", "resources", "env"].contains(&k.name.as_str()) {
            leaves(&k.name, v, &mut own);
        }
    }
    for (path, value, n) in own {
        provenance.push(Provenance {
            path,
            value,
            span: Some(n),
        });
    }
    let explicit = |p: &str| provenance.iter().any(|x: &Provenance| x.path == p);
    let mut builtin = Vec::new();
    if !explicit("execution.max_retries") {
        builtin.push(("execution.max_retries", "0".to_string()));
    }
    if !explicit("execution.timeout") {
        builtin.push(("execution.timeout", "none".to_string()));
    }
    if !explicit("condition") {
        builtin.push(("condition", "all-succeeded".to_string()));
    }
    for (path, value) in builtin {
        provenance.push(Provenance {
            path: path.to_string(),
            value,
            span: None,
        });
    }

    let adaptive = if kind == StepKind::Adaptive {
        match flow_adaptive::AdaptiveSettings::from_json(&node.to_json()) {
            Ok(settings) => Some(settings),
            Err(e) => {
                let span = &node_along(node, &e.field);
                diags.push(Diagnostic::at(span, field(&e.field), e.message));
                None
            }
        }
    } else {
        None
    };

    Some(Step {
        name: name.clone(),
        kind,
        description: node.get("description").and_then(Node::scalar_text),
        span: key.span.clone(),
        needs,
        condition,
        array,
        execution,
        resources,
        env: env_pairs(effective.get("env")),
        command: template("command"),
        output: template("output"),
        inputs: strings(node.get("inputs")),
        workdir: node.get("workdir").and_then(Node::scalar_text),
        uses_environment: if kind.runs_user_command() {
            node.get("environment").and_then(Node::scalar_text)
        } else {
            None
        },
        settings: settings_json(node),
        node: node.clone(),
        adaptive,
        provenance,
    })
}

/// The step's fields as JSON for the typed step crates, without `array:`: a task gets its
/// own parameters, and the list may hold millions of values, which every task's launch
/// would otherwise carry (task ids never hashed it either).
fn settings_json(node: &Node) -> serde_json::Value {
    match node.as_map() {
        Some(entries) => serde_json::Value::Object(
            entries
                .iter()
                .filter(|(k, _)| k.name != "array")
                .map(|(k, v)| (k.name.clone(), v.to_json()))
                .collect(),
        ),
        None => node.to_json(),
    }
}

/// Where the deepest node along a field path is (`space.beta.uniform`, `space.model[1]`),
/// for locating errors of typed settings.
fn node_along(node: &Node, path: &str) -> Span {
    let (part, rest) = match path.split_once('.') {
        Some((part, rest)) => (part, Some(rest)),
        None => (path, None),
    };
    let (key, index) = match part.split_once('[') {
        Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (part, None),
    };
    let Some(next) = node.get(key) else {
        return node.span.clone();
    };
    let next = match index {
        // An item of a compact list is built: the rest of the way is inside it.
        Some(i) => match next.as_seq().and_then(|items| items.get(i)) {
            Some(item) => item,
            None => return next.span.clone(),
        },
        None => std::borrow::Cow::Borrowed(next),
    };
    match rest {
        Some(rest) => node_along(&next, rest),
        None => next.span.clone(),
    }
}

fn param_value(n: &Node) -> ParamValue {
    let kind = match n.value {
        Value::Int(_) => ParamKind::Int,
        Value::Float { .. } => ParamKind::Float,
        Value::Bool(_) => ParamKind::Bool,
        _ => ParamKind::Str,
    };
    ParamValue {
        text: n.scalar_text().unwrap_or_default(),
        kind,
    }
}

/// Why an array element cannot be a parameter value, if it cannot.
fn bad_element(item: &Node) -> Option<&'static str> {
    match &item.value {
        Value::Float { value, text } if value.is_nan() => {
            let _ = text;
            Some("is not a number (NaN): it equals nothing, so output names and exclusions cannot use it")
        }
        Value::Float { value, .. } if value.is_infinite() => Some(
            "is infinite (or too large for a 64-bit float): output names and commands would read `inf`",
        ),
        Value::Str(s) if s.contains('\0') => Some("contains a NUL character, which no command or file name can hold"),
        _ => None,
    }
}

/// A value as errors show it: control characters escaped, at most 60 characters.
fn shown_text(text: &str) -> String {
    let cut: String = text.chars().take(60).collect();
    let escaped: String = cut.escape_debug().collect();
    if cut.len() < text.len() {
        format!("{escaped}...")
    } else {
        escaped
    }
}

fn parse_values(n: &Node, field: &str, diags: &mut Diagnostics) -> Option<ParamValues> {
    if let Some(items) = n.as_seq() {
        let mut ok = true;
        if let Some(list) = items.scalars() {
            // The loaded list is the parameter's values: checked in place, never copied.
            for i in 0..list.len() {
                let suspect = match list.kind(i) {
                    ScalarKind::Float => true,
                    ScalarKind::Str => list.text(i).contains('\0'),
                    _ => false,
                };
                let item = if suspect { list.node(i) } else { continue };
                if let Some(why) = bad_element(&item) {
                    diags.push(
                        Diagnostic::at(
                            &item.span,
                            format!("{field}[{i}]"),
                            format!("`{}` {why}", shown_text(list.text(i))),
                        )
                        .expected("a finite number, a string, or a boolean"),
                    );
                    ok = false;
                }
            }
            return ok.then(|| ParamValues::List(ParamList::from_scalars(Arc::clone(list))));
        }
        for (i, item) in items.iter().enumerate() {
            if let Some(why) = bad_element(&item) {
                diags.push(
                    Diagnostic::at(
                        &item.span,
                        format!("{field}[{i}]"),
                        format!(
                            "`{}` {why}",
                            shown_text(&item.scalar_text().unwrap_or_default())
                        ),
                    )
                    .expected("a finite number, a string, or a boolean"),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        return Some(ParamValues::List(ParamList::from_values(
            items.iter().map(|item| param_value(&item)).collect(),
        )));
    }
    let range = n.get("range")?.as_seq()?;
    let mut ints: Vec<i64> = Vec::new();
    for (i, r) in range.iter().enumerate() {
        let role = ["start", "stop", "step"].get(i).copied().unwrap_or("bound");
        match r.value {
            Value::Int(v) => ints.push(v),
            _ => {
                let text = r.scalar_text().unwrap_or_default();
                let why = if matches!(r.value, Value::Float { .. })
                    && text
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '-' || c == '+')
                {
                    "is outside the 64-bit integer range"
                } else if r.scalar_text().is_none() {
                    "is a list or a map, not an integer"
                } else {
                    "is not an integer"
                };
                diags.push(
                    Diagnostic::at(
                        &r.span,
                        format!("{field}.range"),
                        format!("the range {role} `{text}` {why}"),
                    )
                    .expected(format!(
                        "a whole number from {} to {}, written without a decimal point or exponent",
                        i64::MIN,
                        i64::MAX
                    )),
                );
            }
        }
    }
    let (start, stop, step) = match ints.as_slice() {
        [a, b] if range.len() == 2 => (*a, *b, 1),
        [a, b, c] if range.len() == 3 => (*a, *b, *c),
        _ => return None,
    };
    if step == 0 {
        diags.push(Diagnostic::at(
            &n.span,
            field,
            "a range step of 0 never ends",
        ));
        return None;
    }
    let values = ParamValues::Range { start, stop, step };
    if values.is_empty() {
        diags.push(Diagnostic::at(
            &n.span,
            field,
            format!("the range [{start}, {stop}) is empty (the stop value is excluded)"),
        ));
        return None;
    }
    Some(values)
}

fn parse_array(
    node: &Node,
    at: &Span,
    field: &str,
    max_tasks: u64,
    diags: &mut Diagnostics,
) -> Option<ArraySpec> {
    let entries = node.as_map()?;
    let mut params = Vec::new();
    let mut combine = Combine::Product;
    let mut include = None;
    let mut exclude = None;
    for (k, v) in entries {
        match k.name.as_str() {
            "zip" => {
                combine = Combine::Zip;
                let mut len = None;
                for (zk, zv) in v.as_map().unwrap_or_default() {
                    let values = parse_values(zv, &format!("{field}.zip.{}", zk.name), diags)?;
                    if let Some(l) = len {
                        if l != values.len() {
                            diags.push(
                                Diagnostic::at(
                                    &zv.span,
                                    format!("{field}.zip.{}", zk.name),
                                    format!(
                                        "has {} values, but the first zipped list has {l}",
                                        values.len()
                                    ),
                                )
                                .expected("lists of equal length"),
                            );
                        }
                    }
                    len = Some(values.len());
                    params.push((zk.name.clone(), values));
                }
            }
            "include" => include = Some(v),
            "exclude" => exclude = Some(v),
            name => {
                if let Some(values) = parse_values(v, &format!("{field}.{name}"), diags) {
                    params.push((name.to_string(), values));
                }
            }
        }
    }
    if combine == Combine::Zip
        && entries
            .iter()
            .any(|(k, _)| !["zip", "include", "exclude"].contains(&k.name.as_str()))
    {
        diags.push(Diagnostic::at(
            &node.span,
            field,
            "an array is either `zip:` or named parameters, not both",
        ));
        return None;
    }
    let declared = entries
        .iter()
        .any(|(k, _)| !["include", "exclude"].contains(&k.name.as_str()));
    if params.is_empty() {
        if !declared {
            diags.push(Diagnostic::at(
                &node.span,
                field,
                "the array has no parameters",
            ));
        }
        return None;
    }
    let mut spec = ArraySpec {
        params,
        combine,
        selection: None,
        extra: Default::default(),
    };
    // The count comes from the sizes alone: nothing is enumerated before it is known.
    let count = spec.base_len_u128();
    if count > max_tasks as u128 {
        let sizes: Vec<String> = spec
            .params
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.len()))
            .collect();
        let how = match spec.combine {
            Combine::Product => "the product of",
            Combine::Zip => "zipped from",
        };
        diags.push(
            Diagnostic::at(
                at,
                field,
                format!(
                    "the array has {count} tasks ({how} {}), more than campaign.max_tasks ({max_tasks})",
                    sizes.join(", ")
                ),
            )
            .help("split the campaign, or raise `campaign.max_tasks` if this many tasks are meant"),
        );
        return None;
    }
    let names: Vec<String> = spec.params.iter().map(|(n, _)| n.clone()).collect();
    let element_of =
        |m: &Node, what: &str, diags: &mut Diagnostics| -> Option<Vec<(String, ParamValue)>> {
            let map = m.as_map()?;
            for (k, _) in map {
                if !names.contains(&k.name) {
                    let mut d = Diagnostic::at(
                        &k.span,
                        format!("{field}.{what}"),
                        format!("`{}` is not a parameter of this array", k.name),
                    )
                    .expected(format!("one of {}", names.join(", ")));
                    if let Some(best) = did_you_mean(&k.name, names.iter().map(String::as_str)) {
                        d = d.help(format!("did you mean `{best}`?"));
                    }
                    diags.push(d);
                    return None;
                }
            }
            Some(
                map.iter()
                    .map(|(k, v)| (k.name.clone(), param_value(v)))
                    .collect(),
            )
        };
    if let Some(ex) = exclude {
        let patterns: Vec<Vec<(String, ParamValue)>> = ex
            .as_seq()
            .into_iter()
            .flat_map(|s| s.iter())
            .filter_map(|m| element_of(&m, "exclude", diags))
            .collect();
        // Patterns grouped by the parameters they set, each group a set of value keys: an
        // element is looked up once per group, not compared with every pattern.
        let mut groups: Vec<(Vec<usize>, HashSet<Vec<ValueKey>>)> = Vec::new();
        for p in &patterns {
            let mut cols: Vec<usize> = p
                .iter()
                .filter_map(|(k, _)| names.iter().position(|n| n == k))
                .collect();
            cols.sort_unstable();
            let key: Vec<ValueKey> = cols
                .iter()
                .filter_map(|c| p.iter().find(|(k, _)| *k == names[*c]))
                .map(|(_, v)| value_key(v))
                .collect();
            match groups.iter_mut().find(|(c, _)| *c == cols) {
                Some((_, set)) => {
                    set.insert(key);
                }
                None => groups.push((cols, HashSet::from([key]))),
            }
        }
        let keep: Vec<u64> = (0..spec.base_len())
            .filter(|i| {
                let el = spec.base_element(*i);
                !groups.iter().any(|(cols, set)| {
                    let key: Vec<ValueKey> = cols.iter().map(|c| value_key(&el[*c].1)).collect();
                    set.contains(&key)
                })
            })
            .collect();
        spec.selection = Some(keep);
    }
    if let Some(inc) = include {
        // An element's values in the order of the parameters, when it sets every one.
        let ordered = |m: &Node, diags: &mut Diagnostics| -> Option<Vec<ParamValue>> {
            let el = element_of(m, "include", diags)?;
            if el.len() != names.len() {
                diags.push(
                    Diagnostic::at(
                        &m.span,
                        format!("{field}.include"),
                        "an included element must set every parameter",
                    )
                    .expected(names.join(", ")),
                );
                return None;
            }
            Some(
                names
                    .iter()
                    .map(|n| {
                        el.iter()
                            .find(|(k, _)| k == n)
                            .map_or_else(|| ParamValue::int(0), |(_, v)| v.clone())
                    })
                    .collect(),
            )
        };
        let items = || inc.as_seq().into_iter().flat_map(|s| s.iter());
        let copy = |diags: &mut Diagnostics, extra: &mut ExtraElements| {
            for m in items() {
                if let Some(values) = ordered(&m, diags) {
                    if !extra.push(&values) {
                        diags.push(Diagnostic::at(
                            &m.span,
                            format!("{field}.include"),
                            "the included elements hold more than 4 GiB of text",
                        ));
                        break;
                    }
                }
            }
            extra.shrink_to_fit();
        };
        match inc.as_seq().and_then(Seq::maps) {
            // A list of maps of scalars, each a whole element: the elements as loaded,
            // read in place, not copied.
            Some(maps) => {
                let errors_before = diags.len();
                for m in items() {
                    let _ = ordered(&m, diags);
                }
                if diags.len() == errors_before {
                    spec.extra = ExtraElements::from_maps(Arc::clone(maps), names.clone());
                } else {
                    copy(&mut Diagnostics::default(), &mut spec.extra);
                }
            }
            None => copy(diags, &mut spec.extra),
        }
    }
    Some(spec)
}

/// A parameter value as `exclude:` compares it, as a hash key: numbers by value (`1.0` is
/// `1`, `-0` is `0`), any other text (`NaN` included) as written (the test below checks it
/// against the comparison it replaced).
#[derive(Debug, PartialEq, Eq, Hash)]
enum ValueKey {
    Number(u64),
    Text(String),
}

fn value_key(v: &ParamValue) -> ValueKey {
    match v.text.parse::<f64>() {
        Ok(x) if !x.is_nan() => ValueKey::Number(if x == 0.0 { 0 } else { x.to_bits() }),
        _ => ValueKey::Text(v.text.clone()),
    }
}

fn check_needs(steps: &[Step], diags: &mut Diagnostics) {
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    let mut graph = petgraph::graph::DiGraph::<usize, ()>::new();
    let idx: Vec<_> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
    for (i, step) in steps.iter().enumerate() {
        for (need, span) in &step.needs {
            match names.iter().position(|n| n == need) {
                Some(j) => {
                    graph.add_edge(idx[j], idx[i], ());
                }
                None => {
                    let mut d = Diagnostic::at(
                        span,
                        format!("steps.{}.needs", step.name),
                        format!("unknown step `{need}`"),
                    )
                    .expected(format!("one of {}", names.join(", ")));
                    if let Some(best) = did_you_mean(need, names.iter().copied()) {
                        d = d.help(format!("did you mean `{best}`?"));
                    }
                    diags.push(d);
                }
            }
        }
    }
    for scc in petgraph::algo::tarjan_scc(&graph) {
        let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
        if scc.len() > 1 || self_loop {
            let mut members: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
            members.sort();
            let first = &steps[members[0]];
            let cycle: Vec<&str> = members.iter().map(|i| steps[*i].name.as_str()).collect();
            // Point at the entry of `needs` that closes the cycle, not at the first entry.
            let span = first
                .needs
                .iter()
                .find(|(n, _)| cycle.contains(&n.as_str()))
                .or(first.needs.first())
                .map_or(&first.span, |(_, s)| s);
            diags.push(
                Diagnostic::at(
                    span,
                    format!("steps.{}.needs", first.name),
                    format!(
                        "steps depend on each other in a cycle: {} -> {}",
                        cycle.join(" -> "),
                        cycle[0]
                    ),
                )
                .help("remove one of these `needs` entries"),
            );
        }
    }
}

/// The variables a task's templates see: builtins, its parameters, and for the command
/// the output path. Values here are the plan-time sample used for checking.
pub fn sample_template_data(step: &Step) -> serde_json::Map<String, serde_json::Value> {
    let mut data = serde_json::Map::new();
    data.insert("task_id".into(), "0123456789abcdef".into());
    data.insert("seed".into(), 1u64.into());
    data.insert("index".into(), 0.into());
    data.insert("step".into(), step.name.clone().into());
    data.insert("campaign_dir".into(), "/campaign".into());
    data.insert("base_dir".into(), "/campaign-file-dir".into());
    if let Some(array) = &step.array {
        if !array.is_empty() {
            for (k, v) in array.element(0) {
                data.insert(k, v.to_json());
            }
        }
    }
    if let Some(adaptive) = &step.adaptive {
        for (k, v) in adaptive.space.example() {
            data.insert(k, v);
        }
        data.insert("param_id".into(), "0123456789abcdef".into());
        data.insert("replicate".into(), 0.into());
    }
    if step.kind == StepKind::QeScf {
        data.insert("structure".into(), "structure.extxyz".into());
        data.insert("structure_digest".into(), "0123456789abcdef".into());
    }
    data
}

/// Control characters (line breaks, tabs, escapes) and Unicode direction controls, which
/// make a file name display as something it is not.
pub fn is_unsafe_name_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn describe_char(c: char) -> String {
    match c {
        '\n' => "a line break".to_string(),
        '\r' => "a carriage return".to_string(),
        '\t' => "a tab".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("the direction control U+{:04X}", c as u32),
    }
}

/// NUL is refused in every string of a file: no command, variable or file name can hold it.
fn check_strings(node: &Node, field: &str, diags: &mut Diagnostics) {
    match &node.value {
        Value::Str(s) if s.contains('\0') => diags.push(
            Diagnostic::at(&node.span, field, "the text contains a NUL character")
                .expected("text without NUL (`\\0`) characters"),
        ),
        Value::Seq(items) => match (items.scalars(), items.maps()) {
            (Some(list), _) => {
                for i in 0..list.len() {
                    if list.kind(i) == ScalarKind::Str && list.text(i).contains('\0') {
                        check_strings(&list.node(i), &format!("{field}[{i}]"), diags);
                    }
                }
            }
            (None, Some(maps)) => {
                let values = maps.values();
                for i in 0..maps.len() {
                    if maps.entries(i).any(|e| {
                        maps.name(e).contains('\0')
                            || (values.kind(e) == ScalarKind::Str && values.text(e).contains('\0'))
                    }) {
                        check_strings(&maps.node(i), &format!("{field}[{i}]"), diags);
                    }
                }
            }
            (None, None) => {
                for (i, item) in items.iter().enumerate() {
                    check_strings(&item, &format!("{field}[{i}]"), diags);
                }
            }
        },
        Value::Map(entries) => {
            for (k, v) in entries {
                let f = if field.is_empty() {
                    k.name.clone()
                } else {
                    format!("{field}.{}", k.name)
                };
                if k.name.contains('\0') {
                    diags.push(Diagnostic::at(
                        &k.span,
                        &f,
                        "the key contains a NUL character",
                    ));
                }
                check_strings(v, &f, diags);
            }
        }
        _ => {}
    }
}

/// Values written into `#SBATCH` lines (partition, account, qos, constraint, extra) must not
/// hold a line break or another control character: it would end the line and start another.
fn check_sbatch_values(node: &Node, field: &str, diags: &mut Diagnostics) {
    let mut check = |n: &Node, f: String| {
        if let Some(text) = n.as_str() {
            if let Some(c) = text.chars().find(|c| c.is_control()) {
                diags.push(
                    Diagnostic::at(
                        &n.span,
                        f,
                        format!(
                            "the value `{}` holds {}, which would end its #SBATCH line and start another",
                            shown_text(text),
                            describe_char(c)
                        ),
                    )
                    .expected("one line of printable text"),
                );
            }
        }
    };
    let mut visit = |shape: &Node, prefix: &str| {
        for key in ["partition", "account", "qos", "constraint"] {
            if let Some(n) = shape.get(key) {
                check(n, format!("{prefix}.{key}"));
            }
        }
        for (i, n) in shape
            .get("extra")
            .and_then(Node::as_seq)
            .into_iter()
            .flat_map(|s| s.iter())
            .enumerate()
        {
            check(&n, format!("{prefix}.extra[{i}]"));
        }
    };
    if field == "machine" {
        let m = node.get("machine").unwrap_or(node);
        if let Some(slurm) = m.get("slurm") {
            visit(slurm, "machine.slurm");
        }
        for (k, shape) in m
            .get("job_types")
            .and_then(Node::as_map)
            .unwrap_or_default()
        {
            visit(shape, &format!("machine.job_types.{}", k.name));
        }
    } else {
        visit(node, field);
    }
}

/// A percentage as the md-benchmark gate takes it: `5%`, "5%" or 5.
fn percent_of(n: &Node) -> Option<f64> {
    match &n.value {
        Value::Int(i) => Some(*i as f64),
        Value::Float { value, .. } => Some(*value),
        Value::Str(s) => s.trim().trim_end_matches('%').trim().parse().ok(),
        _ => None,
    }
}

/// `pass_below` above `marginal_below` would leave no MARGINAL band and make the gate read
/// differently from what it says.
fn check_gate(step: &Node, field: &str, diags: &mut Diagnostics) {
    let Some(gate) = step.get("gate") else {
        return;
    };
    let pass = gate.get("pass_below");
    let marginal = gate.get("marginal_below");
    let p = pass.and_then(percent_of).unwrap_or(5.0);
    let m = marginal.and_then(percent_of).unwrap_or(10.0);
    if p > m {
        let at = pass.or(marginal).map_or(&gate.span, |n| &n.span);
        diags.push(
            Diagnostic::at(
                at,
                format!("{field}.pass_below"),
                format!("pass_below ({p}%) is above marginal_below ({m}%)"),
            )
            .expected("pass_below at most marginal_below (PASS below the first, MARGINAL below the second)"),
        );
    }
}

/// Whether a rendered output path stays inside the campaign directory.
pub fn is_confined(rendered: &str) -> bool {
    let p = Path::new(rendered);
    !rendered.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn check_templates(step: &Step, diags: &mut Diagnostics) {
    if step.node.get("array").is_some() && step.array.is_none() {
        // The array itself is wrong (reported): its parameters are unknown here.
        return;
    }
    if step.kind == StepKind::Adaptive {
        let Some(out) = &step.output else { return };
        for var in ["param_id", "replicate"] {
            if !out.text.contains(var) {
                diags.push(
                    Diagnostic::at(
                        &out.span,
                        &out.field,
                        format!("the output path does not use `{{{{{var}}}}}`: two evaluations would write the same file"),
                    )
                    .expected("a path with {{param_id}} and {{replicate}}, e.g. trials/{{param_id}}/r{{replicate}}.json"),
                );
            }
        }
        if step.adaptive.is_none() {
            // The settings are wrong (reported): the space's variables are unknown here.
            return;
        }
    }
    let mut data = sample_template_data(step);
    if let Some(out) = &step.output {
        let text = &out.text;
        if text.starts_with('/') || text.starts_with('~') {
            diags.push(
                Diagnostic::at(
                    &out.span,
                    &out.field,
                    "the output path is absolute; outputs must stay inside the campaign directory",
                )
                .expected("a path relative to the campaign directory"),
            );
        } else if text.split('/').any(|seg| seg == "..") {
            diags.push(Diagnostic::at(
                &out.span,
                &out.field,
                "the output path climbs out of the campaign directory with `..`",
            ));
        } else {
            // Parameter values that end up in the path must not carry separators: checked
            // once per distinct value, not once per task.
            if let Some(c) = text.chars().find(|c| is_unsafe_name_char(*c)) {
                diags.push(
                    Diagnostic::at(
                        &out.span,
                        &out.field,
                        format!(
                            "the output path contains {}, which file names must not hold",
                            describe_char(c)
                        ),
                    )
                    .expected("printable characters without line breaks or direction controls"),
                );
            }
            if let Some(array) = &step.array {
                for (name, values) in &array.params {
                    if !text.contains(name.as_str()) {
                        continue;
                    }
                    if let Some((bad, c)) = values.texts().find_map(|(text, _)| {
                        text.chars()
                            .find(|c| is_unsafe_name_char(*c))
                            .map(|c| (text.to_string(), c))
                    }) {
                        diags.push(Diagnostic::at(
                            &out.span,
                            &out.field,
                            format!(
                                "parameter `{name}` has the value `{}`, which holds {}: file names must not",
                                shown_text(&bad),
                                describe_char(c)
                            ),
                        ));
                        continue;
                    }
                    if let Some((bad, _)) = values.texts().find(|(text, kind)| {
                        *kind == ParamKind::Str
                            && (text.contains('/') || text == ".." || text.is_empty())
                    }) {
                        diags.push(Diagnostic::at(&out.span, &out.field, format!("parameter `{name}` has the value `{bad}`, which would leave the campaign directory or name no file")));
                    }
                }
            }
            match render(
                TemplateKind::Path,
                text,
                &serde_json::Value::Object(data.clone()),
            ) {
                Ok(rendered) if !is_confined(&rendered) => diags.push(Diagnostic::at(
                    &out.span,
                    &out.field,
                    format!("the output path `{rendered}` leaves the campaign directory"),
                )),
                Ok(_) => {}
                Err(e) => diags.push(Diagnostic::at(&out.span, &out.field, e)),
            }
        }
        data.insert("output".into(), "catalogs/output.tmp".into());
    }
    if let Some(cmd) = &step.command {
        if let Err(e) = render(
            TemplateKind::Command,
            &cmd.text,
            &serde_json::Value::Object(data),
        ) {
            diags.push(Diagnostic::at(&cmd.span, &cmd.field, e));
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

#[cfg(test)]
mod exclude_tests {
    use super::*;

    /// How `exclude:` compared two values before it used keys.
    fn same_value(a: &ParamValue, b: &ParamValue) -> bool {
        if a.text == b.text {
            return true;
        }
        match (a.text.parse::<f64>(), b.text.parse::<f64>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }

    #[test]
    fn value_keys_are_equal_exactly_when_values_are_the_same() {
        let texts = [
            "1", "1.0", "1e0", "01", "+1", "-0", "0", "0.0", "NaN", "nan", "inf", "infinity",
            "-inf", "abc", "", "1_000", "1000", "1e3", "0x10",
        ];
        for a in texts {
            for b in texts {
                let (a, b) = (
                    ParamValue {
                        text: a.into(),
                        kind: ParamKind::Str,
                    },
                    ParamValue {
                        text: b.into(),
                        kind: ParamKind::Str,
                    },
                );
                assert_eq!(
                    value_key(&a) == value_key(&b),
                    same_value(&a, &b),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn many_exclusions_cost_one_lookup_per_element() {
        let dir = tempfile::tempdir().unwrap();
        let patterns: Vec<String> = (0..2000).map(|k| format!("{{i: {}}}", k * 7)).collect();
        let text = format!(
            "campaign: {{name: c, version: v1, machine: local}}\nsteps:\n  a:\n    kind: command\n    command: echo {{{{i}}}} {{{{z}}}}\n    array:\n      i: {{range: [0, 200000]}}\n      z: [0.5, 1.0]\n      exclude: [{}, {{i: 1, z: 1}}, {{z: '0.50'}}]\n",
            patterns.join(", ")
        );
        let started = std::time::Instant::now();
        let c = load_campaign_text("c.yaml", &text, dir.path()).unwrap();
        let array = c.steps[0].array.as_ref().unwrap();
        // z 0.5 is excluded ('0.50' is the same number), then i = 0, 7, ... 13993 and (1, 1.0).
        assert_eq!(array.len(), 200_000 - 2000 - 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
}
