//! Parameter arrays: named parameters combined as a product (default) or a zip, with
//! optional include/exclude lists. Elements are computed on demand from an index, so a
//! million-element array costs no memory until its elements are asked for.

use crate::node::{MapList, ScalarKind, ScalarList};
use serde::Serialize;
use std::borrow::Cow;
use std::sync::Arc;

/// One parameter value, kept as the user wrote it (`1.000` stays `1.000`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamValue {
    pub text: String,
    #[serde(skip)]
    pub kind: ParamKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParamKind {
    Int,
    Float,
    #[default]
    Str,
    Bool,
}

impl ParamValue {
    pub fn int(i: i64) -> ParamValue {
        ParamValue {
            text: i.to_string(),
            kind: ParamKind::Int,
        }
    }
    /// JSON form for templates: numbers stay numbers (so helpers can format them).
    pub fn to_json(&self) -> serde_json::Value {
        match self.kind {
            ParamKind::Int => self
                .text
                .parse::<i64>()
                .map_or_else(|_| self.text.clone().into(), Into::into),
            ParamKind::Float => serde_json::Value::String(self.text.clone()),
            ParamKind::Bool => (self.text == "true").into(),
            ParamKind::Str => self.text.clone().into(),
        }
    }
}

/// The values of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValues {
    /// `start..stop` by `step` (stop excluded).
    Range {
        start: i64,
        stop: i64,
        step: i64,
    },
    List(ParamList),
}

/// The values of a listed parameter: the list of scalars the loader read, shared with the
/// document (a million values cost no second copy), or values made in code.
#[derive(Clone)]
pub struct ParamList(ListItems);

#[derive(Clone)]
enum ListItems {
    Loaded(Arc<ScalarList>),
    /// The texts in one buffer, with where each ends and its kind.
    Packed {
        text: String,
        ends: Vec<u32>,
        kinds: Vec<ParamKind>,
    },
}

impl Default for ParamList {
    fn default() -> ParamList {
        ParamList(ListItems::Packed {
            text: String::new(),
            ends: Vec::new(),
            kinds: Vec::new(),
        })
    }
}

impl ParamList {
    /// A packed list of these values.
    pub fn from_values(values: Vec<ParamValue>) -> ParamList {
        let mut list = ParamList::default();
        for v in &values {
            // Values come from files of at most 64 MiB (aliases copy at most 64 MiB more).
            let _ = list.push(v);
        }
        list
    }

    /// Append a value (a loaded list is copied into a packed one first). False, and
    /// nothing appended, when the texts would pass 4 GiB.
    pub fn push(&mut self, value: &ParamValue) -> bool {
        if let ListItems::Loaded(_) = self.0 {
            *self = ParamList::from_values((0..self.len()).map(|i| self.get(i)).collect());
        }
        let ListItems::Packed { text, ends, kinds } = &mut self.0 else {
            return false;
        };
        let Ok(end) = u32::try_from(text.len() + value.text.len()) else {
            return false;
        };
        text.push_str(&value.text);
        ends.push(end);
        kinds.push(value.kind);
        true
    }

    /// Keep the first `n` values of a packed list.
    pub(crate) fn truncate(&mut self, n: usize) {
        if let ListItems::Packed { text, ends, kinds } = &mut self.0 {
            if n < ends.len() {
                text.truncate(if n == 0 { 0 } else { ends[n - 1] as usize });
                ends.truncate(n);
                kinds.truncate(n);
            }
        }
    }

    /// Release the spare capacity left by growing.
    pub fn shrink_to_fit(&mut self) {
        if let ListItems::Packed { text, ends, kinds } = &mut self.0 {
            text.shrink_to_fit();
            ends.shrink_to_fit();
            kinds.shrink_to_fit();
        }
    }

    /// The items of a loaded list (a null item is the empty string).
    pub fn from_scalars(list: Arc<ScalarList>) -> ParamList {
        ParamList(ListItems::Loaded(list))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            ListItems::Loaded(list) => list.len(),
            ListItems::Packed { ends, .. } => ends.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i`'s text. Panics when `i` is out of range.
    pub fn text(&self, i: usize) -> &str {
        match &self.0 {
            ListItems::Loaded(list) => list.text(i),
            ListItems::Packed { text, ends, .. } => {
                let start = if i == 0 { 0 } else { ends[i - 1] as usize };
                &text[start..ends[i] as usize]
            }
        }
    }

    /// Value `i`'s kind. Panics when `i` is out of range.
    pub fn kind(&self, i: usize) -> ParamKind {
        match &self.0 {
            ListItems::Loaded(list) => param_kind(list.kind(i)),
            ListItems::Packed { kinds, .. } => kinds[i],
        }
    }

    /// Value `i`. Panics when `i` is out of range.
    pub fn get(&self, i: usize) -> ParamValue {
        ParamValue {
            text: self.text(i).to_string(),
            kind: self.kind(i),
        }
    }
}

impl PartialEq for ParamList {
    fn eq(&self, other: &ParamList) -> bool {
        self.len() == other.len()
            && (0..self.len())
                .all(|i| self.text(i) == other.text(i) && self.kind(i) == other.kind(i))
    }
}

impl std::fmt::Debug for ParamList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries((0..self.len()).map(|i| self.get(i)))
            .finish()
    }
}

impl ParamValues {
    pub fn len(&self) -> u64 {
        match self {
            ParamValues::Range { start, stop, step } => {
                // i128: `stop - start` of extreme bounds does not fit an i64.
                let span = if *step > 0 && stop > start {
                    (*stop as i128 - *start as i128) as u128
                } else if *step < 0 && start > stop {
                    (*start as i128 - *stop as i128) as u128
                } else {
                    0
                };
                let n = span.div_ceil(step.unsigned_abs() as u128);
                u64::try_from(n).unwrap_or(u64::MAX)
            }
            ParamValues::List(v) => v.len() as u64,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn get(&self, i: u64) -> ParamValue {
        match self {
            ParamValues::Range { start, step, .. } => {
                ParamValue::int((*start as i128 + *step as i128 * i as i128) as i64)
            }
            ParamValues::List(v) => v.get(i as usize),
        }
    }
    /// Every value's text and kind, without copying a listed text.
    pub fn texts(&self) -> impl Iterator<Item = (Cow<'_, str>, ParamKind)> + '_ {
        (0..self.len()).map(move |i| match self {
            ParamValues::Range { .. } => (Cow::Owned(self.get(i).text), ParamKind::Int),
            ParamValues::List(v) => (Cow::Borrowed(v.text(i as usize)), v.kind(i as usize)),
        })
    }
    /// Every distinct value (for plan-time checks that must not cost one per task).
    pub fn iter(&self) -> impl Iterator<Item = ParamValue> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
}

/// The elements `include:` adds: one value per parameter each. Either the list of maps the
/// loader read, shared with the document, or values packed in one [`ParamList`] in the order
/// of the array's parameters (a million included elements are a few texts each, not a
/// vector of named values each).
#[derive(Clone)]
pub struct ExtraElements(Extra);

#[derive(Clone)]
enum Extra {
    Packed {
        rows: usize,
        values: ParamList,
    },
    /// Each map sets every parameter, and nothing else.
    Loaded {
        maps: Arc<MapList>,
        names: Vec<String>,
    },
}

impl Default for ExtraElements {
    fn default() -> ExtraElements {
        ExtraElements(Extra::Packed {
            rows: 0,
            values: ParamList::default(),
        })
    }
}

impl ExtraElements {
    /// The maps of a loaded list, each of which sets exactly the parameters `names`.
    pub fn from_maps(maps: Arc<MapList>, names: Vec<String>) -> ExtraElements {
        ExtraElements(Extra::Loaded { maps, names })
    }

    /// Append an element: its values in the order of the array's parameters (elements from
    /// a loaded list are copied first). False, and nothing appended, when the texts would
    /// pass 4 GiB (they come from files of at most 64 MiB, whose aliases copy at most
    /// 64 MiB more).
    pub fn push(&mut self, values: &[ParamValue]) -> bool {
        if let Extra::Loaded { names, .. } = &self.0 {
            let mut packed = ExtraElements::default();
            for i in 0..self.len() {
                let row: Vec<ParamValue> = self.values_of(i, names);
                if !packed.push(&row) {
                    return false;
                }
            }
            *self = packed;
        }
        let Extra::Packed { rows, values: list } = &mut self.0 else {
            return false;
        };
        let before = list.len();
        for v in values {
            if !list.push(v) {
                list.truncate(before);
                return false;
            }
        }
        *rows += 1;
        true
    }

    /// Release the spare capacity left by growing.
    pub fn shrink_to_fit(&mut self) {
        if let Extra::Packed { values, .. } = &mut self.0 {
            values.shrink_to_fit();
        }
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Extra::Packed { rows, .. } => *rows,
            Extra::Loaded { maps, .. } => maps.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Included element `i`'s values for the parameters `names`, in their order.
    pub fn element_values(&self, i: usize, names: &[String]) -> Vec<ParamValue> {
        self.values_of(i, names)
    }

    /// Element `i`'s values for the parameters `names`, in their order.
    fn values_of(&self, i: usize, names: &[String]) -> Vec<ParamValue> {
        match &self.0 {
            Extra::Packed { values, .. } => (0..names.len())
                .map(|j| values.get(i * names.len() + j))
                .collect(),
            Extra::Loaded { maps, .. } => names
                .iter()
                .map(|name| {
                    let values = maps.values();
                    maps.entries(i).find(|e| maps.name(*e) == name).map_or_else(
                        || ParamValue::int(0),
                        |e| ParamValue {
                            text: values.text(e).to_string(),
                            kind: param_kind(values.kind(e)),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Element `i`, named after `params`. Panics when `i` is out of range.
    pub fn get(&self, i: usize, params: &[(String, ParamValues)]) -> Vec<(String, ParamValue)> {
        let names: Vec<String> = params.iter().map(|(n, _)| n.clone()).collect();
        let values = self.values_of(i, &names);
        names.into_iter().zip(values).collect()
    }

    /// Every element's values, in the order of its own parameters (for comparing).
    fn rows(&self) -> Vec<Vec<ParamValue>> {
        let names = match &self.0 {
            Extra::Loaded { names, .. } => names.clone(),
            Extra::Packed { rows, values } => {
                let width = if *rows == 0 { 0 } else { values.len() / rows };
                (0..width).map(|j| j.to_string()).collect()
            }
        };
        (0..self.len()).map(|i| self.values_of(i, &names)).collect()
    }
}

impl PartialEq for ExtraElements {
    fn eq(&self, other: &ExtraElements) -> bool {
        self.rows() == other.rows()
    }
}

impl std::fmt::Debug for ExtraElements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.rows()).finish()
    }
}

fn param_kind(kind: ScalarKind) -> ParamKind {
    match kind {
        ScalarKind::Int => ParamKind::Int,
        ScalarKind::Float => ParamKind::Float,
        ScalarKind::Bool => ParamKind::Bool,
        ScalarKind::Str | ScalarKind::Null => ParamKind::Str,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    Product,
    Zip,
}

/// A step's array: parameter names, values, how they combine, and the element selection.
#[derive(Debug, Clone, PartialEq)]
pub struct ArraySpec {
    pub params: Vec<(String, ParamValues)>,
    pub combine: Combine,
    /// When include/exclude are used: the base indices kept, in order, then extra elements.
    pub selection: Option<Vec<u64>>,
    pub extra: ExtraElements,
}

impl ArraySpec {
    /// Elements before include/exclude.
    pub fn base_len(&self) -> u64 {
        u64::try_from(self.base_len_u128()).unwrap_or(u64::MAX)
    }

    /// Elements before include/exclude, without overflow (a product of four 10^6-value
    /// ranges is 10^24): what the loader checks against `campaign.max_tasks`.
    pub fn base_len_u128(&self) -> u128 {
        match self.combine {
            Combine::Product => self
                .params
                .iter()
                .fold(1u128, |acc, (_, v)| acc.saturating_mul(v.len() as u128)),
            Combine::Zip => self.params.first().map_or(0, |(_, v)| v.len() as u128),
        }
    }

    pub fn len(&self) -> u64 {
        match &self.selection {
            Some(sel) => sel.len() as u64 + self.extra.len() as u64,
            None => self.base_len().saturating_add(self.extra.len() as u64),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn names(&self) -> Vec<&str> {
        self.params.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Element `i` of the base product/zip: the first parameter varies slowest, so
    /// `realization × redshift` lists every redshift of realization 0 first.
    pub fn base_element(&self, mut i: u64) -> Vec<(String, ParamValue)> {
        match self.combine {
            Combine::Zip => self
                .params
                .iter()
                .map(|(n, v)| (n.clone(), v.get(i)))
                .collect(),
            Combine::Product => {
                let mut out = vec![(String::new(), ParamValue::int(0)); self.params.len()];
                for (slot, (n, v)) in self.params.iter().enumerate().rev() {
                    let len = v.len().max(1);
                    out[slot] = (n.clone(), v.get(i % len));
                    i /= len;
                }
                out
            }
        }
    }

    /// Element `i` after include/exclude.
    pub fn element(&self, i: u64) -> Vec<(String, ParamValue)> {
        let base_count = match &self.selection {
            Some(sel) => sel.len() as u64,
            None => self.base_len(),
        };
        if i >= base_count {
            return self.extra.get((i - base_count) as usize, &self.params);
        }
        match &self.selection {
            Some(sel) => self.base_element(sel[i as usize]),
            None => self.base_element(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(vals: &[&str]) -> ParamValues {
        ParamValues::List(ParamList::from_values(
            vals.iter()
                .map(|t| ParamValue {
                    text: t.to_string(),
                    kind: ParamKind::Float,
                })
                .collect(),
        ))
    }

    #[test]
    fn product_is_row_major() {
        let a = ArraySpec {
            params: vec![
                (
                    "r".into(),
                    ParamValues::Range {
                        start: 0,
                        stop: 3,
                        step: 1,
                    },
                ),
                ("z".into(), list(&["1.000", "0.5"])),
            ],
            combine: Combine::Product,
            selection: None,
            extra: ExtraElements::default(),
        };
        assert_eq!(a.len(), 6);
        let e = a.element(3);
        assert_eq!((e[0].1.text.as_str(), e[1].1.text.as_str()), ("1", "0.5"));
        assert_eq!(a.element(0)[1].1.text, "1.000");
    }

    #[test]
    fn included_elements_read_the_same_loaded_or_packed() {
        let file = crate::source::SourceFile::new("c.yaml", "[{r: 1, z: '0.5'}, {z: 2.50, r: 3}]");
        let root = crate::yaml_loader::parse(&file).unwrap();
        let maps = Arc::clone(root.as_seq().unwrap().maps().unwrap());
        let params = vec![
            ("r".to_string(), list(&["0"])),
            ("z".to_string(), list(&["0"])),
        ];
        let mut loaded = ExtraElements::from_maps(maps, vec!["r".into(), "z".into()]);
        let mut packed = ExtraElements::default();
        let value = |text: &str, kind| ParamValue {
            text: text.to_string(),
            kind,
        };
        assert!(packed.push(&[value("1", ParamKind::Int), value("0.5", ParamKind::Str)]));
        assert!(packed.push(&[value("3", ParamKind::Int), value("2.50", ParamKind::Float)]));
        assert_eq!(loaded, packed);
        for i in 0..2 {
            assert_eq!(loaded.get(i, &params), packed.get(i, &params));
        }
        assert_eq!(loaded.get(1, &params)[1].1.text, "2.50");
        // Adding to a loaded list copies it first.
        let third = [value("5", ParamKind::Int), value("x", ParamKind::Str)];
        assert!(loaded.push(&third) && packed.push(&third));
        assert_eq!((loaded.len(), &loaded), (3, &packed));
    }

    #[test]
    fn ranges_count_correctly() {
        assert_eq!(
            ParamValues::Range {
                start: 0,
                stop: 2000,
                step: 1
            }
            .len(),
            2000
        );
        assert_eq!(
            ParamValues::Range {
                start: 0,
                stop: 10,
                step: 3
            }
            .len(),
            4
        );
        assert_eq!(
            ParamValues::Range {
                start: 5,
                stop: 5,
                step: 1
            }
            .len(),
            0
        );
        assert_eq!(
            ParamValues::Range {
                start: 10,
                stop: 0,
                step: -5
            }
            .len(),
            2
        );
    }
}
