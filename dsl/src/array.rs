//! Parameter arrays: named parameters combined as a product (default) or a zip, with
//! optional include/exclude lists. Elements are computed on demand from an index, so a
//! million-element array costs no memory until its elements are asked for.

use serde::Serialize;

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
    List(Vec<ParamValue>),
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
            ParamValues::List(v) => v[i as usize].clone(),
        }
    }
    /// Every distinct value (for plan-time checks that must not cost one per task).
    pub fn iter(&self) -> impl Iterator<Item = ParamValue> + '_ {
        (0..self.len()).map(move |i| self.get(i))
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
    pub extra: Vec<Vec<(String, ParamValue)>>,
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
            return self.extra[(i - base_count) as usize].clone();
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
        ParamValues::List(
            vals.iter()
                .map(|t| ParamValue {
                    text: t.to_string(),
                    kind: ParamKind::Float,
                })
                .collect(),
        )
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
            extra: vec![],
        };
        assert_eq!(a.len(), 6);
        let e = a.element(3);
        assert_eq!((e[0].1.text.as_str(), e[1].1.text.as_str()), ("1", "0.5"));
        assert_eq!(a.element(0)[1].1.text, "1.000");
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
