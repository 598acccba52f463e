//! The YAML node tree seen as JSON by the schema validator, without a copy.
//!
//! `jsonschema` validates any representation that implements its `Json` trait; this one
//! reads [`Node`]s and the items of [`ScalarList`]s in place. A JSON copy of a document
//! costs 72 bytes per value (serde_json with `preserve_order`), more than the tree itself:
//! a 47 MB list of numbers would need 385 MB for it alone.
//!
//! What the validator sees is exactly [`Node::to_json`]: the same types (a non-finite
//! float is its text, a string), the same numbers, the same member order. The tests below
//! check it against serde_json's representation, value by value and error by error.

use crate::node::{Key, MapList, Node, ScalarKind, ScalarList, Seq, Value};
use jsonschema::json::{Array, Json, JsonNumber, Node as JsonNode, NodeIdentity, Object};
use jsonschema::types::JsonType;
use std::borrow::Cow;

/// The representation: documents of [`Node`]s.
pub struct YamlJson;

/// One value of a document: a node, an item of a list of scalars, a map of a list of maps,
/// or a property name.
#[derive(Clone, Copy)]
pub enum YamlValue<'a> {
    Node(&'a Node),
    Item(&'a ScalarList, usize),
    Row(&'a MapList, usize),
    Name(&'a str),
}

/// A number: an integer as YAML wrote it, or a finite float.
#[derive(Clone, Copy)]
pub enum YamlNumber {
    Int(i64),
    Float(f64),
}

impl Json for YamlJson {
    type Node<'a> = YamlValue<'a>;
    type PreparedKey = String;
    type StringBuffer = ();
    // A lookup scans the entries: a pass over the members never costs more.
    const KEYS_PER_LOOKUP: usize = 64;
    // Aliases are copies: no node is its own descendant.
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>((): &mut (), string: &str, f: impl FnOnce(YamlValue<'_>) -> T) -> T {
        f(YamlValue::Name(string))
    }
}

/// A value's shape, as JSON types it.
enum Shape<'a> {
    Null,
    Bool(bool),
    Number(YamlNumber),
    Str(Cow<'a, str>),
    Seq(&'a Seq),
    Map(YamlMap<'a>),
}

impl<'a> YamlValue<'a> {
    fn shape(&self) -> Shape<'a> {
        match *self {
            YamlValue::Name(s) => Shape::Str(Cow::Borrowed(s)),
            YamlValue::Node(node) => match &node.value {
                Value::Null => Shape::Null,
                Value::Bool(b) => Shape::Bool(*b),
                Value::Int(i) => Shape::Number(YamlNumber::Int(*i)),
                Value::Float { value, .. } if value.is_finite() => {
                    Shape::Number(YamlNumber::Float(*value))
                }
                Value::Float { text, .. } => Shape::Str(Cow::Borrowed(text)),
                Value::Str(s) => Shape::Str(Cow::Borrowed(s)),
                Value::Seq(items) => Shape::Seq(items),
                Value::Map(entries) => Shape::Map(YamlMap::Entries(entries)),
            },
            YamlValue::Row(list, i) => Shape::Map(YamlMap::Row(list, i)),
            YamlValue::Item(list, i) => {
                let text = list.text(i);
                match list.kind(i) {
                    ScalarKind::Null => Shape::Null,
                    ScalarKind::Bool => Shape::Bool(text == "true"),
                    ScalarKind::Int => {
                        Shape::Number(YamlNumber::Int(text.parse().unwrap_or_default()))
                    }
                    ScalarKind::Float => {
                        let value = crate::node::float_of(text);
                        if value.is_finite() {
                            Shape::Number(YamlNumber::Float(value))
                        } else {
                            Shape::Str(Cow::Borrowed(text))
                        }
                    }
                    ScalarKind::Str => Shape::Str(Cow::Borrowed(text)),
                }
            }
        }
    }
}

impl<'a> JsonNode<'a, YamlJson> for YamlValue<'a> {
    type Object = YamlMap<'a>;
    type Array = YamlSeq<'a>;
    type Number = YamlNumber;

    fn as_object(&self) -> Option<YamlMap<'a>> {
        match self.shape() {
            Shape::Map(map) => Some(map),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<YamlSeq<'a>> {
        match self.shape() {
            Shape::Seq(items) => Some(YamlSeq(items)),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self.shape() {
            Shape::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<YamlNumber> {
        match self.shape() {
            Shape::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.shape() {
            Shape::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.shape(), Shape::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.shape() {
            Shape::Null => JsonType::Null,
            Shape::Bool(_) => JsonType::Boolean,
            Shape::Number(_) => JsonType::Number,
            Shape::Str(_) => JsonType::String,
            Shape::Seq(_) => JsonType::Array,
            Shape::Map(_) => JsonType::Object,
        }
    }

    fn to_value(&self) -> Cow<'a, serde_json::Value> {
        Cow::Owned(match *self {
            YamlValue::Node(node) => node.to_json(),
            YamlValue::Item(list, i) => list.to_json(i),
            YamlValue::Row(list, i) => list.to_json(i),
            YamlValue::Name(s) => serde_json::Value::String(s.to_string()),
        })
    }

    fn identity(&self) -> Option<NodeIdentity> {
        match *self {
            YamlValue::Node(node) => Some(NodeIdentity::new(std::ptr::from_ref(node) as usize)),
            // An item has no address of its own: its list's, told apart by its index.
            YamlValue::Item(list, i) => Some(NodeIdentity::tagged(
                std::ptr::from_ref(list) as usize,
                u32::try_from(i).map_or(u32::MAX, |i| i.saturating_add(1)),
            )),
            // The low bit tells a map of a list from an item of its values (an address is
            // even).
            YamlValue::Row(list, i) => Some(NodeIdentity::tagged(
                std::ptr::from_ref(list) as usize | 1,
                u32::try_from(i).map_or(u32::MAX, |i| i.saturating_add(1)),
            )),
            YamlValue::Name(_) => None,
        }
    }
}

impl JsonNumber for YamlNumber {
    fn as_u64(&self) -> Option<u64> {
        match *self {
            YamlNumber::Int(i) => u64::try_from(i).ok(),
            YamlNumber::Float(_) => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match *self {
            YamlNumber::Int(i) => Some(i),
            YamlNumber::Float(_) => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match *self {
            YamlNumber::Int(i) => Some(i as f64),
            YamlNumber::Float(f) => Some(f),
        }
    }

    fn as_str(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_number().to_string())
    }

    fn to_number(&self) -> Cow<'_, serde_json::Number> {
        Cow::Owned(match *self {
            YamlNumber::Int(i) => serde_json::Number::from(i),
            // Only finite floats are numbers (see `YamlValue::shape`).
            YamlNumber::Float(f) => {
                serde_json::Number::from_f64(f).unwrap_or_else(|| serde_json::Number::from(0))
            }
        })
    }

    // As serde_json's numbers answer, which the validator was written against.
    fn is_integer(&self) -> bool {
        match *self {
            YamlNumber::Int(_) => true,
            YamlNumber::Float(_) => JsonNumber::is_integer(self.to_number().as_ref()),
        }
    }

    fn is_written_as_integer(&self) -> bool {
        JsonNumber::is_written_as_integer(self.to_number().as_ref())
    }
}

/// A map's entries: a node's, or those of a map of a [`MapList`].
#[derive(Clone, Copy)]
pub enum YamlMap<'a> {
    Entries(&'a [(Key, Node)]),
    Row(&'a MapList, usize),
}

impl<'a> Object<'a, YamlJson> for YamlMap<'a> {
    type Node = YamlValue<'a>;
    type MemberName = &'a str;
    type MembersIter = YamlMembers<'a>;

    fn len(&self) -> usize {
        match *self {
            YamlMap::Entries(entries) => entries.len(),
            YamlMap::Row(list, i) => list.entries(i).len(),
        }
    }

    fn get(&self, key: &String) -> Option<YamlValue<'a>> {
        self.members().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn members(&self) -> YamlMembers<'a> {
        match *self {
            YamlMap::Entries(entries) => YamlMembers::Entries(entries.iter()),
            YamlMap::Row(list, i) => YamlMembers::Row(list, list.entries(i)),
        }
    }
}

pub enum YamlMembers<'a> {
    Entries(std::slice::Iter<'a, (Key, Node)>),
    Row(&'a MapList, std::ops::Range<usize>),
}

impl<'a> Iterator for YamlMembers<'a> {
    type Item = (&'a str, YamlValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            YamlMembers::Entries(entries) => entries
                .next()
                .map(|(k, v)| (k.name.as_str(), YamlValue::Node(v))),
            YamlMembers::Row(list, entries) => {
                let list: &'a MapList = list;
                entries
                    .next()
                    .map(|e| (list.name(e), YamlValue::Item(list.values(), e)))
            }
        }
    }
}

/// A list's items.
pub struct YamlSeq<'a>(&'a Seq);

impl<'a> Array<'a, YamlJson> for YamlSeq<'a> {
    type Node = YamlValue<'a>;
    type ElementsIter = YamlItems<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn elements(&self) -> YamlItems<'a> {
        YamlItems {
            seq: self.0,
            next: 0,
        }
    }
}

pub struct YamlItems<'a> {
    seq: &'a Seq,
    next: usize,
}

impl<'a> Iterator for YamlItems<'a> {
    type Item = YamlValue<'a>;

    fn next(&mut self) -> Option<YamlValue<'a>> {
        let i = self.next;
        if i >= self.seq.len() {
            return None;
        }
        let item = match (self.seq.nodes(), self.seq.scalars(), self.seq.maps()) {
            (Some(nodes), _, _) => YamlValue::Node(&nodes[i]),
            (_, Some(list), _) => YamlValue::Item(list, i),
            (_, _, Some(list)) => YamlValue::Row(list, i),
            _ => return None,
        };
        self.next += 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.seq.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;
    use crate::yaml_loader::parse;

    fn doc(text: &str) -> Node {
        parse(&SourceFile::new("t.yaml", text)).unwrap()
    }

    #[test]
    fn the_validator_contract_holds() {
        // jsonschema's own check of a representation, on its document written as YAML.
        let root = doc(concat!(
            "string: héllo\ninteger: 42\nfloat: 1.5\nboolean: true\n'null': ~\n",
            "array: [10, 20, 30]\nduplicates: [1, {a: 1}, {a: 1}]\nobject: {nested: value}\n"
        ));
        assert_eq!(root.to_json(), jsonschema::json::conformance::document());
        jsonschema::json::conformance::assert_conformance::<YamlJson>(&YamlValue::Node(&root));
    }

    #[test]
    fn every_value_reads_as_its_json() {
        let root = doc(concat!(
            "a: [1, -7, 2.50, 1e3, .nan, -.inf, 1e309, x, '1', true, ~, '', 18446744073709551615]\n",
            "b: {c: [1, [2, {d: .inf}]], e: 9223372036854775807}\n",
            "f: [{r: 1, z: 0.5}, {r: 2, s: x}, {}, {n: ~, t: true}]\n",
        ));
        fn same(v: YamlValue<'_>, j: &serde_json::Value) {
            assert_eq!(v.to_value().as_ref(), j);
            assert_eq!(v.json_type(), jsonschema::types::JsonType::from(j));
            match j {
                serde_json::Value::Number(n) => {
                    let m = v.as_number().unwrap();
                    assert_eq!(
                        (m.as_u64(), m.as_i64(), m.as_f64()),
                        (n.as_u64(), n.as_i64(), n.as_f64())
                    );
                    assert_eq!(m.is_integer(), JsonNumber::is_integer(n));
                    assert_eq!(
                        m.is_written_as_integer(),
                        JsonNumber::is_written_as_integer(n)
                    );
                }
                serde_json::Value::String(s) => assert_eq!(v.as_string().unwrap(), s.as_str()),
                serde_json::Value::Bool(b) => assert_eq!(v.as_boolean(), Some(*b)),
                serde_json::Value::Null => assert!(v.is_null()),
                serde_json::Value::Array(items) => {
                    let a = v.as_array().unwrap();
                    assert_eq!(a.len(), items.len());
                    for (x, y) in a.elements().zip(items) {
                        same(x, y);
                    }
                }
                serde_json::Value::Object(map) => {
                    let o = v.as_object().unwrap();
                    assert_eq!(o.len(), map.len());
                    for ((k, x), (l, y)) in o.members().zip(map) {
                        assert_eq!(k, l);
                        same(x, y);
                    }
                }
            }
        }
        same(YamlValue::Node(&root), &root.to_json());
    }
}
