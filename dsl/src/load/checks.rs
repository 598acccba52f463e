//! The checks of a whole campaign once its steps are read: `needs` (unknown steps,
//! cycles), templates against a sample task, output paths confined to the campaign
//! directory, NUL characters anywhere, and values that would break an `#SBATCH` line.

use super::*;

pub(super) fn check_needs(steps: &[Step], diags: &mut Diagnostics) {
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

pub(super) fn describe_char(c: char) -> String {
    match c {
        '\n' => "a line break".to_string(),
        '\r' => "a carriage return".to_string(),
        '\t' => "a tab".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("the direction control U+{:04X}", c as u32),
    }
}

/// NUL is refused in every string of a file: no command, variable or file name can hold it.
pub(super) fn check_strings(node: &Node, field: &str, diags: &mut Diagnostics) {
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
pub(super) fn check_sbatch_values(node: &Node, field: &str, diags: &mut Diagnostics) {
    let problems = std::cell::RefCell::new(Vec::new());
    let check_extra = |n: &Node, f: String| {
        if let Some(why) = n.as_str().and_then(extra_option_problem) {
            problems.borrow_mut().push(
                Diagnostic::at(&n.span, f, why).expected(
                    "a scheduler option such as `--exclusive` or `--gres=gpu:a100:1`, other than those flow sets",
                ),
            );
        }
    };
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
            check_extra(&n, format!("{prefix}.extra[{i}]"));
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
    diags.0.extend(problems.into_inner());
}

/// Variables a shell or the dynamic loader acts on before the task's command runs:
/// `BASH_ENV` and `ENV` name a file a shell sources (code), `SHELLOPTS`/`BASHOPTS`/`PS4`
/// change how it runs (`PS4` with xtrace expands `$(...)`), `IFS` how it splits words,
/// `LD_PRELOAD`/`LD_AUDIT` what the loader injects into every program. A campaign never
/// needs to set them; a templated value in one would run as code. (`PATH` and
/// `LD_LIBRARY_PATH` stay allowed: they choose programs, they do not run text.)
pub const RESERVED_ENV_NAMES: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    "PROMPT_COMMAND",
    "BASH_FUNC",
    "LD_PRELOAD",
    "LD_AUDIT",
];

/// Refuse `env:` names a shell or the loader would act on (see [`RESERVED_ENV_NAMES`]).
pub(super) fn check_env_names(node: Option<&Node>, field: &str, diags: &mut Diagnostics) {
    for (key, _) in node.and_then(Node::as_map).unwrap_or_default() {
        let name = key.name.as_str();
        let reserved = RESERVED_ENV_NAMES.contains(&name) || name.starts_with("BASH_FUNC_");
        if reserved {
            diags.push(
                Diagnostic::at(
                    &key.span,
                    format!("{field}.{name}"),
                    format!(
                        "`{name}` is not allowed in `env:`: the shell or the dynamic loader acts on it before the task's command runs"
                    ),
                )
                .expected("a variable for the task itself")
                .help("set up the task's environment with the machine's `setup.modules` or `setup.commands`, or an `environment:`"),
            );
        }
    }
}

/// The sbatch options flow sets itself, for its array, logs and bookkeeping: an `extra`
/// line may not set them (it would redirect logs out of the campaign directory, or change
/// the array the driver tracks).
pub const FLOW_SBATCH_OPTIONS: &[(&str, Option<char>)] = &[
    ("array", Some('a')),
    ("output", Some('o')),
    ("error", Some('e')),
    ("input", Some('i')),
    ("chdir", Some('D')),
    ("job-name", Some('J')),
    ("comment", None),
    ("wrap", None),
    ("parsable", None),
    ("open-mode", None),
];

/// Why one `extra` line cannot be passed to the scheduler, if it cannot.
pub fn extra_option_problem(line: &str) -> Option<String> {
    let t = line.trim();
    if !t.starts_with('-') {
        return Some(format!(
            "`{}` is not an option (it does not start with `-`)",
            shown_text(t)
        ));
    }
    let managed = |name: &str| {
        format!(
            "`{}` sets `--{name}`, which flow sets itself",
            shown_text(t)
        )
    };
    if let Some(long) = t.strip_prefix("--") {
        let name = long.split(['=', ' ']).next().unwrap_or("");
        // sbatch takes any unambiguous abbreviation of a long option (`--out=`).
        if let Some((full, _)) = FLOW_SBATCH_OPTIONS
            .iter()
            .find(|(full, _)| !name.is_empty() && full.starts_with(name))
        {
            return Some(managed(full));
        }
        return None;
    }
    let short = t[1..].chars().next()?;
    FLOW_SBATCH_OPTIONS
        .iter()
        .find(|(_, s)| *s == Some(short))
        .map(|(full, _)| managed(full))
}

/// A value as errors show it: control characters escaped, at most 60 characters.
pub(super) fn shown_text(text: &str) -> String {
    let cut: String = text.chars().take(60).collect();
    let escaped: String = cut.escape_debug().collect();
    if cut.len() < text.len() {
        format!("{escaped}...")
    } else {
        escaped
    }
}

/// Whether a rendered output path stays inside the campaign directory.
pub fn is_confined(rendered: &str) -> bool {
    let p = Path::new(rendered);
    !rendered.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The campaign directory's entries flow itself writes: a task output may not be one of
/// them or lie beneath them.
pub const RESERVED_DIRS: &[&str] = &["metadata", "logs", "work"];

/// Why a confined output path is still not a task's to write: it names the campaign
/// directory itself, or lies in a directory flow keeps (state, logs, work directories).
pub fn reserved_reason(rendered: &str) -> Option<String> {
    let mut normal = Path::new(rendered).components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
        _ => None,
    });
    match normal.next() {
        None => Some("names the campaign directory itself, not a file in it".to_string()),
        Some(first) if RESERVED_DIRS.contains(&first.as_str()) => Some(format!(
            "lies in `{first}/`, which flow keeps for its own {}",
            match first.as_str() {
                "metadata" => "state database and records",
                "logs" => "task logs",
                _ => "work directories",
            }
        )),
        Some(_) => None,
    }
}

pub(super) fn check_templates(step: &Step, diags: &mut Diagnostics) {
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
                    // A range's values are integers: digits and a sign, nothing to refuse
                    // (and a range of 10^8 costs nothing to check).
                    if !text.contains(name.as_str())
                        || matches!(values, crate::array::ParamValues::Range { .. })
                    {
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
                Ok(rendered) => {
                    if let Some(why) = reserved_reason(&rendered) {
                        diags.push(
                            Diagnostic::at(
                                &out.span,
                                &out.field,
                                format!("the output path `{}` {why}", shown_text(&rendered)),
                            )
                            .expected(format!(
                                "a file path in the campaign directory outside {}",
                                RESERVED_DIRS
                                    .iter()
                                    .map(|d| format!("`{d}/`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        );
                    }
                }
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
