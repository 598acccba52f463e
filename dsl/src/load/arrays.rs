//! A step's `array:` read into an [`ArraySpec`]: lists, ranges, `zip`, `include` and
//! `exclude`, each value checked; the task count comes from the sizes alone and is capped
//! by `campaign.max_tasks`.

use super::*;

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
        for (i, item) in items.iter().enumerate() {
            if let Some(why) = bad_element(item) {
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
        return Some(ParamValues::List(items.iter().map(param_value).collect()));
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
        extra: Vec::new(),
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
            .unwrap_or_default()
            .iter()
            .filter_map(|m| element_of(m, "exclude", diags))
            .collect();
        let keep: Vec<u64> = (0..spec.base_len())
            .filter(|i| {
                let el = spec.base_element(*i);
                !patterns.iter().any(|p| {
                    p.iter()
                        .all(|(k, v)| el.iter().any(|(ek, ev)| ek == k && same_value(ev, v)))
                })
            })
            .collect();
        spec.selection = Some(keep);
    }
    if let Some(inc) = include {
        for m in inc.as_seq().unwrap_or_default() {
            if let Some(el) = element_of(m, "include", diags) {
                if el.len() != names.len() {
                    diags.push(
                        Diagnostic::at(
                            &m.span,
                            format!("{field}.include"),
                            "an included element must set every parameter",
                        )
                        .expected(names.join(", ")),
                    );
                    continue;
                }
                let ordered = names
                    .iter()
                    .map(|n| {
                        el.iter()
                            .find(|(k, _)| k == n)
                            .cloned()
                            .unwrap_or_else(|| (n.clone(), ParamValue::int(0)))
                    })
                    .collect();
                spec.extra.push(ordered);
            }
        }
    }
    Some(spec)
}

pub(super) fn same_value(a: &ParamValue, b: &ParamValue) -> bool {
    if a.text == b.text {
        return true;
    }
    match (a.text.parse::<f64>(), b.text.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
