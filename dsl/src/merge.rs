//! The one place where tiers combine: machine defaults -> campaign defaults -> step.
//! Maps merge key by key (deeply); scalars and lists replace. Nodes keep their spans, so
//! every resolved value still says which file and line it came from.

use crate::node::{Node, Seq, Value};
use crate::source::Span;

/// `over` on top of `base`.
pub fn merge(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (Value::Map(b), Value::Map(o)) => {
            let mut entries = b.clone();
            for (key, value) in o {
                match entries.iter_mut().find(|(k, _)| k.name == key.name) {
                    Some((k, existing)) => {
                        *existing = merge(existing, value);
                        *k = key.clone();
                    }
                    None => entries.push((key.clone(), value.clone())),
                }
            }
            Node::new(Value::Map(entries), over.span.clone())
        }
        _ => over.clone(),
    }
}

/// Lists longer than this are shown by `flow plan --explain` as their first values, the
/// last one and their count, not whole (a list may hold millions of values).
pub const EXPLAIN_LIST_VALUES: usize = 100;

/// Every leaf of a tree as (dotted path, value text, where it is), for `flow plan --explain`.
/// A list of scalars is one leaf (`[1, 2, 3]`, abbreviated past [`EXPLAIN_LIST_VALUES`]); a
/// longer list of collections shows its first five items, its last, and how many it holds.
pub fn leaves(prefix: &str, node: &Node, out: &mut Vec<(String, String, Span)>) {
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let path = if prefix.is_empty() {
                    k.name.clone()
                } else {
                    format!("{prefix}.{}", k.name)
                };
                leaves(&path, v, out);
            }
        }
        Value::Seq(items)
            if items.scalars().is_some()
                || items
                    .nodes()
                    .is_some_and(|n| n.iter().all(|i| i.value.is_scalar())) =>
        {
            out.push((prefix.to_string(), list_text(items), node.span.clone()));
        }
        Value::Seq(items) => {
            let n = items.len();
            for i in 0..n {
                if n > EXPLAIN_LIST_VALUES && (5..n - 1).contains(&i) {
                    if i == 5 {
                        let hidden = format!("({n} values; 5 to {} not shown)", n - 2);
                        out.push((prefix.to_string(), hidden, node.span.clone()));
                    }
                    continue;
                }
                if let Some(item) = items.get(i) {
                    leaves(&format!("{prefix}.{i}"), &item, out);
                }
            }
        }
        _ => out.push((
            prefix.to_string(),
            node.scalar_text().unwrap_or_default(),
            node.span.clone(),
        )),
    }
}

/// `[a, b, c]`, or `[a, b, c, d, e, ..., z] (N values)` for a long list.
fn list_text(items: &Seq) -> String {
    let text = |i: usize| {
        items
            .get(i)
            .and_then(|n| n.scalar_text())
            .unwrap_or_default()
    };
    let n = items.len();
    if n <= EXPLAIN_LIST_VALUES {
        let all: Vec<String> = (0..n).map(text).collect();
        return format!("[{}]", all.join(", "));
    }
    let first: Vec<String> = (0..5).map(text).collect();
    format!("[{}, ..., {}] ({n} values)", first.join(", "), text(n - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;
    use crate::yaml_loader::parse;

    #[test]
    fn maps_merge_deeply_and_lists_replace() {
        let a = parse(&SourceFile::new(
            "m.yaml",
            "x: {a: 1, b: [1, 2], c: {d: 1}}\n",
        ))
        .unwrap();
        let b = parse(&SourceFile::new("c.yaml", "x: {b: [3], c: {e: 2}}\n")).unwrap();
        let m = merge(&a, &b);
        assert_eq!(m.at_pointer("/x/a").unwrap().span.file.name, "m.yaml");
        assert_eq!(m.at_pointer("/x/b").unwrap().as_seq().unwrap().len(), 1);
        assert_eq!(m.at_pointer("/x/c/d").unwrap().scalar_text().unwrap(), "1");
        assert_eq!(m.at_pointer("/x/c/e").unwrap().span.file.name, "c.yaml");
    }

    #[test]
    fn explain_shows_short_lists_whole_and_long_ones_abbreviated() {
        let long: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let maps: Vec<String> = (0..200).map(|i| format!("{{r: {i}}}")).collect();
        let text = format!(
            "a: [1, x, 2.50]\nb: [{}]\nc: [[1], 2]\nd: [{}]\n",
            long.join(", "),
            maps.join(", ")
        );
        let text = format!("{text}e: [{{a: 1, b: [2]}}, {{c: x}}]\n");
        let root = parse(&SourceFile::new("c.yaml", text)).unwrap();
        let mut out = Vec::new();
        leaves("", &root, &mut out);
        let shown: Vec<(&str, &str)> = out
            .iter()
            .map(|(p, v, _)| (p.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("a", "[1, x, 2.50]"),
                ("b", "[0, 1, 2, 3, 4, ..., 999] (1000 values)"),
                ("c.0", "[1]"),
                ("c.1", "2"),
                ("d.0.r", "0"),
                ("d.1.r", "1"),
                ("d.2.r", "2"),
                ("d.3.r", "3"),
                ("d.4.r", "4"),
                ("d", "(200 values; 5 to 198 not shown)"),
                ("d.199.r", "199"),
                ("e.0.a", "1"),
                ("e.0.b", "[2]"),
                ("e.1.c", "x"),
            ]
        );
    }
}
