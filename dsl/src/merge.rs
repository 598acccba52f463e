//! The one place where tiers combine: machine defaults -> campaign defaults -> step.
//! Maps merge key by key (deeply); scalars and lists replace. Nodes keep their spans, so
//! every resolved value still says which file and line it came from.

use crate::node::{Node, Value};

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

/// Every leaf of a tree as (dotted path, value text, node), for `flow plan --explain`.
pub fn leaves<'a>(prefix: &str, node: &'a Node, out: &mut Vec<(String, String, &'a Node)>) {
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
        Value::Seq(items) if items.iter().all(|i| i.scalar_text().is_some()) => {
            let text = items
                .iter()
                .map(|i| i.scalar_text().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ");
            out.push((prefix.to_string(), format!("[{text}]"), node));
        }
        Value::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                leaves(&format!("{prefix}.{i}"), v, out);
            }
        }
        _ => out.push((
            prefix.to_string(),
            node.scalar_text().unwrap_or_default(),
            node,
        )),
    }
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
}
