//! YAML text -> [`Node`] tree with positions, on top of saphyr-parser's event stream.
//!
//! Stricter than YAML where silence would lose work: duplicate keys, several documents,
//! non-scalar keys and nesting deeper than [`MAX_DEPTH`] are errors, all located.
//!
//! Bounded on hostile input: only regular files are read, never more than [`MAX_BYTES`];
//! aliases may expand to at most [`MAX_ALIAS_NODES`] nodes (a "billion laughs" document is
//! refused at the alias that crosses the budget), and a document holds at most
//! [`MAX_NODES`] values, so memory stays a small multiple of the file size.

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::node::{Key, MapList, Node, ScalarList, Seq, Value};
use crate::source::{SourceFile, Span};
use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::HashMap;
use std::sync::Arc;

/// Deeper documents are rejected (a guard against stack exhaustion on hostile input).
pub const MAX_DEPTH: usize = 128;
/// Larger files are rejected before parsing (and never read past this size).
pub use crate::user_file::MAX_BYTES;
/// Nodes that aliases (`*name`) may add to a document, all aliases together.
pub const MAX_ALIAS_NODES: usize = 100_000;
/// Text that aliases may copy, all aliases together: a few thousand aliases of one long
/// string are few nodes but gigabytes.
pub const MAX_ALIAS_BYTES: usize = 64 * 1024 * 1024;
/// Values (scalars, lists, maps) in one document, aliases included.
pub const MAX_NODES: usize = 2_000_000;

pub use crate::user_file::{read_capped, ReadError};

/// Decode bytes as UTF-8, locating the first invalid byte.
pub fn decode_utf8(name: &str, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let before = &bytes[..valid];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let col = valid
                - before
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1)
                + 1;
            let file = SourceFile::new(name, String::from_utf8_lossy(bytes).into_owned());
            Err(Diagnostic::at(
                &Span::new(&file, line, col),
                "",
                "the file is not valid UTF-8",
            )
            .help("save the file as UTF-8"))
        }
    }
}

/// The items of a list being read: compact while every item is a scalar, or every item a
/// map of scalars.
enum Items {
    Empty(Arc<SourceFile>),
    Scalars(ScalarList),
    Maps(MapList),
    Nodes(Vec<Node>),
}

impl Items {
    /// Append an item. The first that does not fit the list's compact form turns the list
    /// into nodes.
    fn push(&mut self, node: Node) {
        match self {
            Items::Empty(file) => {
                let mut scalars = ScalarList::new(file);
                let mut maps = MapList::new(file);
                *self = if scalars.push(&node) {
                    Items::Scalars(scalars)
                } else if maps.push(&node) {
                    Items::Maps(maps)
                } else {
                    Items::Nodes(vec![node])
                };
            }
            Items::Scalars(list) => {
                if !list.push(&node) {
                    let mut nodes: Vec<Node> = (0..list.len()).map(|i| list.node(i)).collect();
                    nodes.push(node);
                    *self = Items::Nodes(nodes);
                }
            }
            Items::Maps(list) => {
                if !list.push(&node) {
                    let mut nodes: Vec<Node> = (0..list.len()).map(|i| list.node(i)).collect();
                    nodes.push(node);
                    *self = Items::Nodes(nodes);
                }
            }
            Items::Nodes(nodes) => nodes.push(node),
        }
    }

    /// Values held compactly (they do not count against [`MAX_NODES`]).
    fn compact_len(&self) -> usize {
        match self {
            Items::Scalars(list) => list.len(),
            Items::Maps(list) => list.value_count(),
            Items::Empty(_) | Items::Nodes(_) => 0,
        }
    }

    fn into_seq(self) -> Seq {
        match self {
            Items::Empty(_) => Seq::from_nodes(Vec::new()),
            Items::Scalars(mut list) => {
                list.shrink_to_fit();
                Seq::from_scalars(list)
            }
            Items::Maps(mut list) => {
                list.shrink_to_fit();
                Seq::from_maps(list)
            }
            Items::Nodes(mut nodes) => {
                nodes.shrink_to_fit();
                Seq::from_nodes(nodes)
            }
        }
    }
}

enum Frame {
    Seq(Span, Items, usize),
    /// Entries, the key waiting for its value, the anchor, and each key's first line (so a
    /// duplicate is found in O(1), not by scanning: maps may have 10^6 keys).
    Map(
        Span,
        Vec<(Key, Node)>,
        Option<Key>,
        usize,
        HashMap<String, usize>,
    ),
}

/// Parse one YAML document. An empty document is `Null` at 1:1.
pub fn parse(file: &Arc<SourceFile>) -> Result<Node, Diagnostics> {
    if file.text.len() > MAX_BYTES {
        return Err(Diagnostic::at(
            &Span::new(file, 1, 1),
            "",
            format!(
                "the file is {} MB, larger than flow reads ({} MB)",
                file.text.len() / 1_000_000,
                MAX_BYTES / 1_000_000
            ),
        )
        .into());
    }
    let mut parser = Parser::new_from_str(&file.text);
    let mut stack: Vec<Frame> = Vec::new();
    // Each anchored node with its size in nodes and in bytes of text (what an alias to it
    // costs).
    let mut anchors: HashMap<usize, (Node, usize, usize)> = HashMap::new();
    let mut alias_nodes = 0usize;
    let mut alias_bytes = 0usize;
    // Every value read (aliases count their whole size), and those of them held compactly in
    // lists of scalars, which do not count against MAX_NODES: their memory is bounded by the
    // file's size (about 13 bytes beside each item's text).
    let mut nodes = 0usize;
    let mut compact = 0usize;
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut errors = Diagnostics::default();

    let span_of = |m: saphyr_parser::Span| Span::new(file, m.start.line(), m.start.col() + 1);

    while let Some(next) = parser.next_event() {
        let (event, raw_span) = match next {
            Ok(ev) => ev,
            Err(e) => {
                let m = e.marker();
                let mut span = Span::new(file, m.line().max(1), m.col() + 1);
                if e.info().contains("tab") {
                    // The scanner reports a tab at the token before it: point at the tab.
                    if let Some((line, col)) = first_indenting_tab(file, span.line) {
                        span = Span::new(file, line, col);
                    }
                }
                let mut d = Diagnostic::at(&span, "", format!("invalid YAML: {}", e.info()));
                if file.line_text(span.line).is_some_and(|l| l.contains('\t')) {
                    d = d.help("YAML does not allow tabs for indentation; use spaces");
                }
                return Err(d.into());
            }
        };
        let span = span_of(raw_span);
        let event_span = span.clone();
        let completed: Option<(Node, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    errors.push(
                        Diagnostic::at(&span, "", "more than one YAML document in the file")
                            .help("remove the second `---` document or move it to its own file"),
                    );
                    return Err(errors);
                }
                None
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some((node, size, bytes)) => {
                    alias_nodes = alias_nodes.saturating_add(*size);
                    alias_bytes = alias_bytes.saturating_add(*bytes);
                    nodes = nodes.saturating_add(*size);
                    if alias_bytes > MAX_ALIAS_BYTES {
                        return Err(Diagnostic::at(
                            &span,
                            "",
                            format!(
                                "aliases copy more than {} MiB of text (an alias bomb?)",
                                MAX_ALIAS_BYTES >> 20
                            ),
                        )
                        .help("write the repeated values out, or use fewer aliases")
                        .into());
                    }
                    if alias_nodes > MAX_ALIAS_NODES {
                        return Err(Diagnostic::at(
                            &span,
                            "",
                            format!(
                                "aliases expand to more than {MAX_ALIAS_NODES} values (an alias bomb?)"
                            ),
                        )
                        .help("write the repeated values out, or use fewer nested aliases")
                        .into());
                    }
                    Some((Node::new(node.value.clone(), span), 0))
                }
                None => {
                    errors.push(Diagnostic::at(&span, "", "alias to an unknown anchor"));
                    return Err(errors);
                }
            },
            Event::Scalar(text, style, anchor, _tag) => {
                nodes += 1;
                let value = resolve_scalar(&text, style);
                Some((Node::new(value, span), anchor))
            }
            Event::SequenceStart(anchor, _) => {
                nodes += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(Diagnostic::at(
                        &span,
                        "",
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    )
                    .into());
                }
                stack.push(Frame::Seq(span, Items::Empty(Arc::clone(file)), anchor));
                None
            }
            Event::MappingStart(anchor, _) => {
                nodes += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(Diagnostic::at(
                        &span,
                        "",
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    )
                    .into());
                }
                stack.push(Frame::Map(span, Vec::new(), None, anchor, HashMap::new()));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(s, items, anchor)) => {
                    Some((Node::new(Value::Seq(items.into_seq()), s), anchor))
                }
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(s, mut entries, _, anchor, _)) => {
                    entries.shrink_to_fit();
                    Some((Node::new(Value::Map(entries), s), anchor))
                }
                _ => None,
            },
        };
        if nodes - compact > MAX_NODES {
            return Err(Diagnostic::at(
                &event_span,
                "",
                format!("the document holds more than {MAX_NODES} values"),
            )
            .help("generate long lists with `range:` or read them from files (`structures:`, `inputs:`)")
            .into());
        }
        let Some((node, anchor)) = completed else {
            continue;
        };
        if anchor != 0 {
            let size = node_count(&node);
            let bytes = text_size(&node);
            anchors.insert(anchor, (node.clone(), size, bytes));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, items, _)) => {
                compact -= items.compact_len();
                items.push(node);
                compact += items.compact_len();
            }
            Some(Frame::Map(_, entries, pending, _, seen)) => match pending.take() {
                None => {
                    let name = match &node.value {
                        Value::Str(s) => s.clone(),
                        Value::Int(_) | Value::Float { .. } | Value::Bool(_) => {
                            node.scalar_text().unwrap_or_default()
                        }
                        Value::Null => String::new(),
                        _ => {
                            errors.push(Diagnostic::at(
                                &node.span,
                                "",
                                format!(
                                    "a map key must be a plain word, found {}",
                                    node.type_name()
                                ),
                            ));
                            String::new()
                        }
                    };
                    if let Some(first_line) = seen.get(&name) {
                        errors.push(
                            Diagnostic::at(&node.span, "", format!("duplicate key `{name}`"))
                                .help(format!("`{name}` is already set at line {first_line}")),
                        );
                    } else {
                        seen.insert(name.clone(), node.span.line);
                    }
                    *pending = Some(Key {
                        name,
                        span: node.span,
                    });
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(root.unwrap_or_else(|| Node::new(Value::Null, Span::new(file, 1, 1))))
}

/// The first tab in a line's leading whitespace, at or after line `from` (1-based).
fn first_indenting_tab(file: &SourceFile, from: usize) -> Option<(usize, usize)> {
    file.text
        .lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(i, l)| {
            let lead = l.len() - l.trim_start_matches([' ', '\t']).len();
            l[..lead].find('\t').map(|c| (i + 1, c + 1))
        })
}

/// Nodes in a tree (what a copy of it costs).
fn node_count(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => match (items.nodes(), items.maps()) {
            (Some(nodes), _) => 1 + nodes.iter().map(node_count).sum::<usize>(),
            (None, Some(maps)) => 1 + maps.value_count(),
            (None, None) => 1 + items.len(),
        },
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(_, v)| 1 + node_count(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// Bytes of text in a tree: its strings, numbers as written and keys (what a copy of it
/// costs beside its nodes).
fn text_size(node: &Node) -> usize {
    match &node.value {
        Value::Str(s) => s.len(),
        Value::Float { text, .. } => text.len(),
        Value::Null | Value::Bool(_) | Value::Int(_) => 0,
        Value::Seq(items) => match (items.nodes(), items.scalars(), items.maps()) {
            (Some(nodes), _, _) => nodes.iter().map(text_size).sum(),
            (_, Some(list), _) => list.text_len(),
            (_, _, Some(maps)) => maps.text_len(),
            _ => 0,
        },
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| k.name.len() + text_size(v))
            .sum(),
    }
}

/// YAML 1.2 core schema: quoted scalars are strings; plain ones may be null, bool or numbers.
fn resolve_scalar(text: &str, style: ScalarStyle) -> Value {
    if style != ScalarStyle::Plain {
        return Value::Str(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".nan" | ".NaN" | ".NAN" => {
            return Value::Float {
                value: f64::NAN,
                text: text.to_string(),
            }
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float {
                value: f64::INFINITY,
                text: text.to_string(),
            }
        }
        "-.inf" | "-.Inf" | "-.INF" => {
            return Value::Float {
                value: f64::NEG_INFINITY,
                text: text.to_string(),
            }
        }
        _ => {}
    }
    let looks_numeric = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == '.');
    if looks_numeric {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Int(i);
        }
        let is_float_syntax = text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
            && text.chars().any(|c| c.is_ascii_digit());
        if is_float_syntax {
            if let Ok(f) = text.parse::<f64>() {
                return Value::Float {
                    value: f,
                    text: text.to_string(),
                };
            }
        }
    }
    Value::Str(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Node, Diagnostics> {
        parse(&SourceFile::new("t.yaml", text))
    }

    #[test]
    fn positions_are_one_based() {
        let n = load("a:\n  b: 1\n  c: [x, 2.50]\n").unwrap();
        let b = n.at_pointer("/a/b").unwrap();
        assert_eq!((b.span.line, b.span.col), (2, 6));
        // An item of a list of scalars is built on demand: `locate` reaches it.
        let c1 = n.locate("/a/c/1").unwrap();
        assert_eq!(c1.scalar_text().unwrap(), "2.50");
        assert_eq!((c1.span.line, c1.span.col), (3, 10));
        assert_eq!(n.key("a").unwrap().span.line, 1);
    }

    #[test]
    fn duplicate_keys_are_located_errors() {
        let e = load("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.0[0].headline(), "t.yaml:3:1: duplicate key `a`");
    }

    #[test]
    fn tabs_and_garbage_do_not_panic() {
        for text in [
            "a:\n\tb: 1\n",
            "[",
            "{a: [}",
            "- a\nb: c",
            "a: *x",
            "\u{0}",
            "---\na: 1\n---\nb: 2\n",
        ] {
            assert!(load(text).is_err(), "{text:?} should fail");
        }
        assert_eq!(load("").unwrap().value, Value::Null);
    }

    #[test]
    fn alias_bombs_are_refused_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let e = load(&text).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(
            e.0[0].headline().starts_with("t.yaml:5:")
                && e.0[0].message.contains("aliases expand to more than"),
            "{}",
            e.0[0].headline()
        );
    }

    #[test]
    fn aliases_of_long_text_are_refused_quickly() {
        let copies = vec!["*t"; 1100].join(", ");
        let text = format!("t: &t \"{}\"\nc: [{copies}]\n", "x".repeat(65536));
        let started = std::time::Instant::now();
        let e = load(&text).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // The 1,025th copy passes 64 MiB.
        let col = text
            .lines()
            .nth(1)
            .unwrap()
            .match_indices("*t")
            .nth(1024)
            .unwrap()
            .0
            + 1;
        assert_eq!(
            e.0[0].headline(),
            format!("t.yaml:2:{col}: aliases copy more than 64 MiB of text (an alias bomb?)")
        );
    }

    #[test]
    fn only_regular_files_are_read() {
        assert!(matches!(
            read_capped(std::path::Path::new("/dev/zero")),
            Err(ReadError::NotRegular("a device"))
        ));
        assert!(matches!(
            read_capped(std::path::Path::new("/")),
            Err(ReadError::NotRegular("a directory"))
        ));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(10_000);
        assert!(load(&text).is_err());
    }

    #[test]
    fn scalars_resolve_like_yaml_1_2() {
        let n = load("a: '1'\nb: 1\nc: 1.000\nd: yes\ne: ~\nf: 1e3\n").unwrap();
        assert_eq!(n.get("a").unwrap().value, Value::Str("1".into()));
        assert_eq!(n.get("b").unwrap().value, Value::Int(1));
        assert_eq!(n.get("c").unwrap().scalar_text().unwrap(), "1.000");
        assert_eq!(n.get("d").unwrap().value, Value::Str("yes".into()));
        assert_eq!(n.get("e").unwrap().value, Value::Null);
        assert!(matches!(n.get("f").unwrap().value, Value::Float { .. }));
    }

    #[test]
    fn invalid_utf8_is_located() {
        let d = decode_utf8("x.yaml", b"a: 1\nb: \xff\n".to_vec()).unwrap_err();
        assert_eq!(d.headline(), "x.yaml:2:4: the file is not valid UTF-8");
    }

    #[test]
    fn scalar_lists_read_like_nodes() {
        let text = "a: [1, 007, -2.50, .inf, x, 'y z', true, False, ~, '']\n";
        let root = load(text).unwrap();
        let seq = root.get("a").unwrap().as_seq().unwrap();
        assert!(seq.scalars().is_some(), "a list of scalars is compact");
        let texts: Vec<String> = seq.iter().map(|n| n.scalar_text().unwrap()).collect();
        assert_eq!(
            texts,
            ["1", "7", "-2.50", ".inf", "x", "y z", "true", "false", "", ""]
        );
        assert_eq!(seq.get(1).unwrap().value, Value::Int(7));
        assert!(
            matches!(seq.get(3).unwrap().value, Value::Float { value, .. } if value.is_infinite())
        );
        assert_eq!(seq.get(8).unwrap().value, Value::Null);
        assert_eq!(seq.get(9).unwrap().value, Value::Str(String::new()));
        let x = root.locate("/a/4").unwrap();
        assert_eq!(
            (x.span.line, x.span.col),
            (1, text.find(" x,").unwrap() + 2)
        );
        assert!(root.at_pointer("/a/4").is_none());
        assert!(root.locate("/a/4/0").is_none());
        assert!(root.locate("/a/10").is_none());
        assert_eq!(
            root.to_json(),
            serde_json::json!({"a": [1, 7, -2.5, ".inf", "x", "y z", true, false, null, ""]})
        );
    }

    #[test]
    fn lists_of_maps_of_scalars_read_like_nodes() {
        let text =
            "a:\n  - {r: 1, z: x}\n  - {r: 2}\n  - {}\n  - z: [1]\nb: [{r: 1}, {r: 2, s: '3'}]\n";
        let root = load(text).unwrap();
        let b = root.get("b").unwrap().as_seq().unwrap();
        assert!(b.maps().is_some(), "a list of maps of scalars is compact");
        let second = b.get(1).unwrap();
        assert_eq!(second.get("s").unwrap().value, Value::Str("3".into()));
        let s = root.locate("/b/1/s").unwrap();
        assert_eq!((s.span.line, s.span.col), (6, 23));
        assert_eq!(second.key("s").unwrap().span.col, 20);
        assert_eq!((second.span.line, second.span.col), (6, 13));
        // A map holding a list is a node: the list keeps nodes, and reads the same.
        let a = root.get("a").unwrap().as_seq().unwrap();
        assert!(a.nodes().is_some());
        assert_eq!(root.at_pointer("/a/0/z").unwrap().as_str(), Some("x"));
        assert_eq!(
            root.at_pointer("/a/3/z").unwrap().as_seq().unwrap().len(),
            1
        );
        assert_eq!(
            root.to_json(),
            serde_json::json!({"a": [{"r": 1, "z": "x"}, {"r": 2}, {}, {"z": [1]}], "b": [{"r": 1}, {"r": 2, "s": "3"}]})
        );
    }

    #[test]
    fn a_list_with_a_collection_keeps_nodes() {
        let text = "a: [1, [2], {b: 3}]\n";
        let root = load(text).unwrap();
        let seq = root.get("a").unwrap().as_seq().unwrap();
        assert_eq!(seq.nodes().map(<[Node]>::len), Some(3));
        assert_eq!(root.at_pointer("/a/0").unwrap().value, Value::Int(1));
        assert_eq!(
            root.at_pointer("/a/2/b").unwrap().span.col,
            text.find('3').unwrap() + 1
        );
    }
}
