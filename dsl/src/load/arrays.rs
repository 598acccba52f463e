//! A step's `array:` read into an [`ArraySpec`]: lists, ranges, `zip`, `include` and
//! `exclude`, each value checked; the task count comes from the sizes alone and is capped
//! by `campaign.max_tasks`.

use super::*;
use crate::array_repeats::Repeat;

pub(super) fn param_value(n: &Node) -> ParamValue {
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
pub(super) fn bad_element(item: &Node) -> Option<&'static str> {
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

pub(super) fn parse_values(n: &Node, field: &str, diags: &mut Diagnostics) -> Option<ParamValues> {
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

pub(super) fn parse_array(
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
    if spec.is_empty() {
        diags.push(
            Diagnostic::at(
                exclude.map_or(at, |n| &n.span),
                format!("{field}.exclude"),
                "excludes every element of the array: the step would have no task",
            )
            .help("remove the step, or exclude fewer elements"),
        );
        return None;
    }
    if spec.len() > max_tasks {
        diags.push(
            Diagnostic::at(
                include.map_or(at, |n| &n.span),
                format!("{field}.include"),
                format!(
                    "with its included elements the array has {} tasks, more than campaign.max_tasks ({max_tasks})",
                    spec.len()
                ),
            )
            .help("split the campaign, or raise `campaign.max_tasks` if this many tasks are meant"),
        );
        return None;
    }
    if let Some(repeat) = crate::array_repeats::first_repeat(&spec) {
        diags.push(repeat_diagnostic(&spec, &repeat, node, field));
        return None;
    }
    Some(spec)
}

/// The located error for two elements that would be one task.
fn repeat_diagnostic(spec: &ArraySpec, repeat: &Repeat, node: &Node, field: &str) -> Diagnostic {
    use crate::array_repeats::Repeat;
    let help = "each element of an array is one task, identified by its values: remove the repeat";
    let include_item = |i: usize| {
        node.get("include")
            .and_then(|n| n.as_seq().and_then(|s| s.iter().nth(i)))
    };
    let d = match repeat {
        Repeat::InList {
            param,
            first,
            again,
        } => {
            let name = &spec.params[*param].0;
            let list = node
                .get(name)
                .or_else(|| node.get("zip").and_then(|z| z.get(name)));
            let item = list.and_then(|l| l.as_seq().and_then(|s| s.iter().nth(*again)));
            let text = spec.params[*param].1.get(*again as u64).text;
            Diagnostic::at(
                item.as_ref().map_or(&node.span, |n| &n.span),
                format!("{field}.{name}[{again}]"),
                format!(
                    "`{}` repeats the value at [{first}]: both would be the same task",
                    shown_text(&text)
                ),
            )
        }
        Repeat::Zipped { first, again } => Diagnostic::at(
            node.get("zip").map_or(&node.span, |n| &n.span),
            format!("{field}.zip"),
            format!("row {again} repeats row {first}: both would be the same task"),
        ),
        Repeat::IncludedTwice { include, first } => {
            let item = include_item(*include);
            Diagnostic::at(
                item.as_ref().map_or(&node.span, |n| &n.span),
                format!("{field}.include[{include}]"),
                format!("repeats include[{first}]: both would be the same task"),
            )
        }
        Repeat::IncludedInBase { include, base } => {
            let item = include_item(*include);
            let values: Vec<String> = spec
                .base_element(*base)
                .into_iter()
                .map(|(n, v)| format!("{n}: {}", shown_text(&v.text)))
                .collect();
            Diagnostic::at(
                item.as_ref().map_or(&node.span, |n| &n.span),
                format!("{field}.include[{include}]"),
                format!(
                    "is already an element of the array ({{{}}}): both would be the same task",
                    values.join(", ")
                ),
            )
        }
    };
    d.help(help)
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
