//! The YAML document as flow sees it: a tree whose every node knows its source position.
//!
//! Long lists are held compactly: a list whose items are all scalars (array parameters with
//! millions of values) in a [`ScalarList`] (one text buffer and, per item, its kind, where
//! its text ends and its line and column: 13 bytes beside the text instead of a node of 56),
//! a list of maps whose values are all scalars (`include:` elements) in a [`MapList`] (about
//! 12 bytes a map and 25 an entry, instead of 270). Their items are [`Node`]s only when asked
//! for one ([`Seq::get`], [`Seq::iter`]): a list of 5 million numbers costs about 100 MB, not
//! 300 MB.

use crate::source::{SourceFile, Span};
use std::borrow::Cow;
use std::sync::Arc;

/// A map key with its position (errors about unknown keys point at the key).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// YAML 1.2 core-schema values. Numbers keep the text the user wrote, so `1.000` stays
/// `1.000` in output names.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float {
        value: f64,
        text: String,
    },
    Str(String),
    Seq(Seq),
    /// Keys in document order; duplicates are rejected at load time.
    Map(Vec<(Key, Node)>),
}

/// The items of a YAML list: nodes, or (every item a scalar) a compact [`ScalarList`].
/// Both read the same through [`Seq::len`], [`Seq::get`] and [`Seq::iter`].
#[derive(Clone)]
pub struct Seq(SeqItems);

#[derive(Clone)]
enum SeqItems {
    /// Shared like the scalars: copying a tree never copies a long list of maps.
    Nodes(Arc<Vec<Node>>),
    /// Shared: copies of the tree (merge, aliases, the typed step) and the parameter values
    /// of an array (`array::ParamValues`) all point at one list.
    Scalars(Arc<ScalarList>),
    Maps(Arc<MapList>),
}

impl Seq {
    /// A list of these nodes, kept as nodes.
    pub fn from_nodes(items: Vec<Node>) -> Seq {
        Seq(SeqItems::Nodes(Arc::new(items)))
    }

    /// A list of scalars, held compactly.
    pub fn from_scalars(list: ScalarList) -> Seq {
        Seq(SeqItems::Scalars(Arc::new(list)))
    }

    /// A list of maps of scalars, held compactly.
    pub fn from_maps(list: MapList) -> Seq {
        Seq(SeqItems::Maps(Arc::new(list)))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            SeqItems::Nodes(items) => items.len(),
            SeqItems::Scalars(list) => list.len(),
            SeqItems::Maps(list) => list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Item `i`: borrowed when the list holds nodes, built when it is compact.
    pub fn get(&self, i: usize) -> Option<Cow<'_, Node>> {
        match &self.0 {
            SeqItems::Nodes(items) => items.get(i).map(Cow::Borrowed),
            SeqItems::Scalars(list) => (i < list.len()).then(|| Cow::Owned(list.node(i))),
            SeqItems::Maps(list) => (i < list.len()).then(|| Cow::Owned(list.node(i))),
        }
    }

    /// Every item, in order (see [`Seq::get`]).
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, Node>> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// The items as nodes when the list holds nodes (neither compact form fits it).
    pub fn nodes(&self) -> Option<&[Node]> {
        match &self.0 {
            SeqItems::Nodes(items) => Some(items),
            _ => None,
        }
    }

    /// The compact form when every item is a scalar.
    pub fn scalars(&self) -> Option<&Arc<ScalarList>> {
        match &self.0 {
            SeqItems::Scalars(list) => Some(list),
            _ => None,
        }
    }

    /// The compact form when every item is a map of scalars.
    pub fn maps(&self) -> Option<&Arc<MapList>> {
        match &self.0 {
            SeqItems::Maps(list) => Some(list),
            _ => None,
        }
    }
}

impl PartialEq for Seq {
    fn eq(&self, other: &Seq) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl std::fmt::Debug for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// What a scalar of a [`ScalarList`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ScalarKind {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

/// The scalars of one list, from one file: their texts in one buffer, and per item its
/// kind, the end of its text and its 1-based line and column.
///
/// Each item's text is what [`Node::scalar_text`] says of it (`7` for `007`, `true` for
/// `True`, `1.000` for `1.000`, the string itself for strings), so the value is rebuilt
/// from the kind and the text alone.
pub struct ScalarList {
    file: Arc<SourceFile>,
    text: String,
    ends: Vec<u32>,
    kinds: Vec<ScalarKind>,
    positions: Vec<[u32; 2]>,
}

impl ScalarList {
    pub fn new(file: &Arc<SourceFile>) -> ScalarList {
        ScalarList {
            file: Arc::clone(file),
            text: String::new(),
            ends: Vec::new(),
            kinds: Vec::new(),
            positions: Vec::new(),
        }
    }

    /// Whether a node can be an item (a scalar of this list's file).
    pub fn accepts(&self, node: &Node) -> bool {
        Arc::ptr_eq(&self.file, &node.span.file) && node.value.is_scalar()
    }

    /// Append a scalar node; false (and nothing appended) when [`ScalarList::accepts`] says
    /// no, or when the texts would pass 4 GiB.
    pub fn push(&mut self, node: &Node) -> bool {
        if !self.accepts(node) {
            return false;
        }
        let (kind, text): (ScalarKind, Cow<'_, str>) = match &node.value {
            Value::Null => (ScalarKind::Null, Cow::Borrowed("")),
            Value::Bool(b) => (
                ScalarKind::Bool,
                Cow::Borrowed(if *b { "true" } else { "false" }),
            ),
            Value::Int(i) => (ScalarKind::Int, Cow::Owned(i.to_string())),
            Value::Float { text, .. } => (ScalarKind::Float, Cow::Borrowed(text)),
            Value::Str(s) => (ScalarKind::Str, Cow::Borrowed(s)),
            Value::Seq(_) | Value::Map(_) => return false,
        };
        let Ok(end) = u32::try_from(self.text.len() + text.len()) else {
            return false;
        };
        self.text.push_str(&text);
        self.ends.push(end);
        self.kinds.push(kind);
        self.positions.push(position(&node.span));
        true
    }

    /// Keep the first `n` items.
    fn truncate(&mut self, n: usize) {
        if n < self.len() {
            let end = if n == 0 { 0 } else { self.ends[n - 1] as usize };
            self.text.truncate(end);
            self.ends.truncate(n);
            self.kinds.truncate(n);
            self.positions.truncate(n);
        }
    }

    /// Release the spare capacity left by growing.
    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.kinds.shrink_to_fit();
        self.positions.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of all the items' texts.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Item `i`'s text, as [`Node::scalar_text`] gives it. Panics when `i` is out of range.
    pub fn text(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    pub fn kind(&self, i: usize) -> ScalarKind {
        self.kinds[i]
    }

    /// Where item `i` starts.
    pub fn span(&self, i: usize) -> Span {
        let [line, col] = self.positions[i];
        Span::new(&self.file, line as usize, col as usize)
    }

    /// Item `i`'s value.
    pub fn value(&self, i: usize) -> Value {
        let text = self.text(i);
        match self.kinds[i] {
            ScalarKind::Null => Value::Null,
            ScalarKind::Bool => Value::Bool(text == "true"),
            // The text was written from an i64: it parses back.
            ScalarKind::Int => Value::Int(text.parse().unwrap_or_default()),
            ScalarKind::Float => Value::Float {
                value: float_of(text),
                text: text.to_string(),
            },
            ScalarKind::Str => Value::Str(text.to_string()),
        }
    }

    /// Item `i` as a node.
    pub fn node(&self, i: usize) -> Node {
        Node::new(self.value(i), self.span(i))
    }

    /// Item `i` as JSON (like [`Node::to_json`]), without building the node.
    pub fn to_json(&self, i: usize) -> serde_json::Value {
        use serde_json::Value as J;
        let text = self.text(i);
        match self.kinds[i] {
            ScalarKind::Null => J::Null,
            ScalarKind::Bool => J::Bool(text == "true"),
            ScalarKind::Int => J::from(text.parse::<i64>().unwrap_or_default()),
            ScalarKind::Float => serde_json::Number::from_f64(float_of(text))
                .map_or_else(|| J::String(text.to_string()), J::Number),
            ScalarKind::Str => J::String(text.to_string()),
        }
    }
}

/// Maps whose values are all scalars, from one file (a list of `include:` elements): per
/// entry its key (the names kept once each) and position, the values in a [`ScalarList`],
/// and per map where its entries end and its position.
pub struct MapList {
    names: Vec<String>,
    name_ids: std::collections::HashMap<String, u32>,
    entry_names: Vec<u32>,
    key_positions: Vec<[u32; 2]>,
    values: ScalarList,
    ends: Vec<u32>,
    positions: Vec<[u32; 2]>,
}

fn position(span: &Span) -> [u32; 2] {
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    [clamp(span.line), clamp(span.col)]
}

impl MapList {
    pub fn new(file: &Arc<SourceFile>) -> MapList {
        MapList {
            names: Vec::new(),
            name_ids: std::collections::HashMap::new(),
            entry_names: Vec::new(),
            key_positions: Vec::new(),
            values: ScalarList::new(file),
            ends: Vec::new(),
            positions: Vec::new(),
        }
    }

    /// Whether a node can be an item: a map of this list's file whose values are scalars.
    pub fn accepts(&self, node: &Node) -> bool {
        let Value::Map(entries) = &node.value else {
            return false;
        };
        Arc::ptr_eq(&self.values.file, &node.span.file)
            && entries.iter().all(|(k, v)| {
                Arc::ptr_eq(&self.values.file, &k.span.file) && self.values.accepts(v)
            })
    }

    /// Append a map of scalars; false (and nothing appended) when [`MapList::accepts`] says
    /// no, or when the list would pass 2^32 entries or names.
    pub fn push(&mut self, node: &Node) -> bool {
        let Some(entries) = node.as_map().filter(|_| self.accepts(node)) else {
            return false;
        };
        let Ok(end) = u32::try_from(self.entry_names.len() + entries.len()) else {
            return false;
        };
        let values_before = self.values.len();
        for (k, v) in entries {
            let id = match self.name_ids.get(&k.name) {
                Some(id) => *id,
                None => {
                    let Ok(id) = u32::try_from(self.names.len()) else {
                        self.truncate(values_before);
                        return false;
                    };
                    self.names.push(k.name.clone());
                    self.name_ids.insert(k.name.clone(), id);
                    id
                }
            };
            if !self.values.push(v) {
                self.truncate(values_before);
                return false;
            }
            self.entry_names.push(id);
            self.key_positions.push(position(&k.span));
        }
        self.ends.push(end);
        self.positions.push(position(&node.span));
        true
    }

    /// Drop the entries of a map that could not be appended whole.
    fn truncate(&mut self, entries: usize) {
        self.entry_names.truncate(entries);
        self.key_positions.truncate(entries);
        self.values.truncate(entries);
    }

    /// Release the spare capacity left by growing, and the table that found names.
    pub fn shrink_to_fit(&mut self) {
        self.name_ids = std::collections::HashMap::new();
        self.entry_names.shrink_to_fit();
        self.key_positions.shrink_to_fit();
        self.values.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.positions.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The entries of map `i`, as indices into [`MapList::values`] and [`MapList::name`].
    pub fn entries(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        start..self.ends[i] as usize
    }

    /// Entry `e`'s key.
    pub fn name(&self, e: usize) -> &str {
        &self.names[self.entry_names[e] as usize]
    }

    /// Entry `e`'s key with its position.
    pub fn key(&self, e: usize) -> Key {
        let [line, col] = self.key_positions[e];
        Key {
            name: self.name(e).to_string(),
            span: Span::new(&self.values.file, line as usize, col as usize),
        }
    }

    /// The values of every entry, in order.
    pub fn values(&self) -> &ScalarList {
        &self.values
    }

    /// Where map `i` starts.
    pub fn span(&self, i: usize) -> Span {
        let [line, col] = self.positions[i];
        Span::new(&self.values.file, line as usize, col as usize)
    }

    /// Map `i` as a node.
    pub fn node(&self, i: usize) -> Node {
        let entries = self
            .entries(i)
            .map(|e| (self.key(e), self.values.node(e)))
            .collect();
        Node::new(Value::Map(entries), self.span(i))
    }

    /// Map `i` as JSON (like [`Node::to_json`]), without building the node.
    pub fn to_json(&self, i: usize) -> serde_json::Value {
        serde_json::Value::Object(
            self.entries(i)
                .map(|e| (self.name(e).to_string(), self.values.to_json(e)))
                .collect(),
        )
    }

    /// Bytes of all the keys and values.
    pub fn text_len(&self) -> usize {
        let keys: usize = (0..self.entry_names.len())
            .map(|e| self.name(e).len())
            .sum();
        keys + self.values.text_len()
    }

    /// Values in the list as the loader counts them: each map, key and value.
    pub fn value_count(&self) -> usize {
        self.len() + 2 * self.entry_names.len()
    }
}

/// The value of a YAML 1.2 float as the loader resolved it (`.nan`, `.inf`, `-.inf` in their
/// spellings, otherwise decimal text).
pub fn float_of(text: &str) -> f64 {
    match text {
        ".nan" | ".NaN" | ".NAN" => f64::NAN,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => f64::INFINITY,
        "-.inf" | "-.Inf" | "-.INF" => f64::NEG_INFINITY,
        _ => text.parse().unwrap_or(f64::NAN),
    }
}

impl Value {
    /// Neither a list nor a map.
    pub fn is_scalar(&self) -> bool {
        !matches!(self, Value::Seq(_) | Value::Map(_))
    }
}

impl Node {
    pub fn new(value: Value, span: Span) -> Node {
        Node { value, span }
    }

    /// The node at `key` when this is a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The key node of `key` when this is a map.
    pub fn key(&self, key: &str) -> Option<&Key> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(k, _)| k),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&Seq> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The scalar as the user wrote it (numbers keep their text); None for collections.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Null => Some(String::new()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float { text, .. } => Some(text.clone()),
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A short name of the node's type for messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float { .. } => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    /// Follow a JSON pointer (`/steps/mocks/command`) through maps and lists of nodes. An
    /// item of a list of scalars is no node in memory (see [`ScalarList`]): `at_pointer`
    /// gives None for it, [`Node::locate`] builds it.
    pub fn at_pointer(&self, pointer: &str) -> Option<&Node> {
        match self.locate(pointer)? {
            Cow::Borrowed(node) => Some(node),
            Cow::Owned(_) => None,
        }
    }

    /// Follow a JSON pointer through the tree, items of lists of scalars included.
    pub fn locate(&self, pointer: &str) -> Option<Cow<'_, Node>> {
        let mut node = self;
        let mut segments = pointer.split('/').skip(1);
        while let Some(raw) = segments.next() {
            let seg = raw.replace("~1", "/").replace("~0", "~");
            node = match &node.value {
                Value::Map(_) => node.get(&seg)?,
                Value::Seq(items) => {
                    let i = seg.parse::<usize>().ok()?;
                    match items.get(i)? {
                        Cow::Borrowed(item) => item,
                        // Built from a compact list: the rest of the way is inside it.
                        Cow::Owned(item) => {
                            let rest: String = segments.by_ref().map(|s| format!("/{s}")).collect();
                            let found = item.locate(&rest)?.into_owned();
                            return Some(Cow::Owned(found));
                        }
                    }
                }
                _ => return None,
            };
        }
        Some(Cow::Borrowed(node))
    }

    /// Convert to JSON (for schema validation and typed deserialisation).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            // JSON has no NaN or infinity: such a value is its text, and the typed checks
            // of the loader say why it cannot be used where it stands.
            Value::Float { value, text } => serde_json::Number::from_f64(*value)
                .map_or_else(|| J::String(text.clone()), J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(match &items.0 {
                SeqItems::Nodes(nodes) => nodes.iter().map(Node::to_json).collect(),
                SeqItems::Scalars(list) => (0..list.len()).map(|i| list.to_json(i)).collect(),
                SeqItems::Maps(list) => (0..list.len()).map(|i| list.to_json(i)).collect(),
            }),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}
