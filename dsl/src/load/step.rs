//! One step of the campaign resolved: machine defaults, campaign defaults and the step
//! merged; the job type expanded into resources; execution settings (with the built-in
//! defaults of `machine_settings::BUILTIN_DEFAULTS`); the provenance `--explain` shows.

use super::*;

pub(super) fn subset(node: &Node, keys: &[&str]) -> Node {
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

pub(super) fn without(node: &Node, key: &str) -> Node {
    let entries = node
        .as_map()
        .map(|e| e.iter().filter(|(k, _)| k.name != key).cloned().collect())
        .unwrap_or_default();
    Node::new(Value::Map(entries), node.span.clone())
}

pub(super) fn build_step(
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
    let mut count =
        |k: &str, dflt: u32| resource_count(r, k, dflt, &field(&format!("resources.{k}")), diags);
    let (nodes, tasks_per_node) = (count("nodes", 1), count("tasks_per_node", 1));
    let (cpus_per_task, gpus_per_node) = (count("cpus_per_task", 1), count("gpus_per_node", 0));
    let rs = |k: &str| r.get(k).and_then(Node::scalar_text);
    let resources = JobShape {
        job_type: job_type_name,
        partition: rs("partition"),
        account: rs("account").or_else(|| machine.slurm.account.clone()),
        qos: rs("qos"),
        constraint: rs("constraint"),
        nodes,
        tasks_per_node,
        cpus_per_task,
        gpus_per_node,
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
    let builtin_duration =
        |path: &str| crate::quantity::parse_duration(builtin(path)).unwrap_or_default();
    let retry_backoff = RetryBackoff {
        initial: bo_dur(
            "initial",
            builtin_duration("execution.retry_backoff.initial"),
            diags,
        ),
        multiplier: backoff
            .and_then(|b| b.get("multiplier"))
            .and_then(|n| n.scalar_text())
            .and_then(|t| t.parse().ok())
            .or_else(|| builtin_as("execution.retry_backoff.multiplier"))
            .unwrap_or(1.0),
        max: bo_dur(
            "max",
            builtin_duration("execution.retry_backoff.max"),
            diags,
        ),
        jitter: match backoff.and_then(|b| b.get("jitter")).map(|n| &n.value) {
            Some(Value::Bool(b)) => *b,
            _ => builtin_as("execution.retry_backoff.jitter").unwrap_or(true),
        },
    };
    let on_retry = e
        .get("on_retry")
        .and_then(|n| {
            typed_block(
                n,
                &field("execution.on_retry"),
                &serde_json::json!({}),
                diags,
            )
        })
        .unwrap_or_default();
    let builtin_count = |path: &str| builtin_as::<u64>(path).unwrap_or_default();
    let execution = Execution {
        max_retries: eu("max_retries").unwrap_or_else(|| builtin_count("execution.max_retries"))
            as u32,
        retry_backoff,
        timeout: e
            .get("timeout")
            .and_then(|n| duration_of(n, &field("execution.timeout"), diags)),
        batch_size: eu("batch_size"),
        max_running: eu("max_running").map(|v| v as u32),
        max_infrastructure_retries: eu("max_infrastructure_retries")
            .unwrap_or_else(|| builtin_count("execution.max_infrastructure_retries"))
            as u32,
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
    let condition = match node
        .get("condition")
        .and_then(Node::as_str)
        .unwrap_or(builtin("condition"))
    {
        "all-completed" => Condition::AllCompleted,
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
    let written: Vec<String> = provenance.iter().map(|p| p.path.clone()).collect();
    let explicit = |p: &str| written.iter().any(|w| w == p);
    builtin_provenance("execution", explicit, &mut provenance);
    builtin_provenance("condition", explicit, &mut provenance);

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
pub(super) fn node_along(node: &Node, path: &str) -> Span {
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

/// A percentage as the md-benchmark gate takes it: `5%`, "5%" or 5.
pub(super) fn percent_of(n: &Node) -> Option<f64> {
    match &n.value {
        Value::Int(i) => Some(*i as f64),
        Value::Float { value, .. } => Some(*value),
        Value::Str(s) => s.trim().trim_end_matches('%').trim().parse().ok(),
        _ => None,
    }
}

/// `pass_below` above `marginal_below` would leave no MARGINAL band and make the gate read
/// differently from what it says.
pub(super) fn check_gate(step: &Node, field: &str, diags: &mut Diagnostics) {
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

/// The most nodes, tasks, CPUs or GPUs one task may ask for: anything larger is a typo, and
/// a value past 32 bits would wrap silently.
pub const MAX_RESOURCE_COUNT: i64 = 1 << 20;

/// A whole-number resource (`nodes`, `cpus_per_task`, ...): an integer in
/// `minimum..=MAX_RESOURCE_COUNT`, or `default` when absent. Anything else (a float such as
/// `1e3`, a string, a value out of range) is a located error, never a silent default.
fn resource_count(r: &Node, key: &str, default: u32, field: &str, diags: &mut Diagnostics) -> u32 {
    let minimum = i64::from(default.min(1));
    let Some(n) = r.get(key) else {
        return default;
    };
    let allowed = format!("a whole number from {minimum} to {MAX_RESOURCE_COUNT}");
    match &n.value {
        Value::Int(i) if (minimum..=MAX_RESOURCE_COUNT).contains(i) => *i as u32,
        Value::Int(i) => {
            diags.push(
                Diagnostic::at(&n.span, field, format!("{i} is out of range")).expected(allowed),
            );
            default
        }
        _ => {
            let text = n.scalar_text().unwrap_or_else(|| "this value".into());
            diags.push(
                Diagnostic::at(&n.span, field, format!("`{text}` is not a whole number"))
                    .expected(allowed),
            );
            default
        }
    }
}
