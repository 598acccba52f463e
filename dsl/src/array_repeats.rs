//! Two elements of one array with the same parameter values would be two tasks with one
//! id: the second would never run on its own, and a run could wait on it for ever. This
//! finds the first such pair without enumerating a product: a product repeats exactly when
//! one of its lists repeats a value; a zip when two rows are equal; an `include` when it
//! repeats another or an element the base keeps. Values are compared as the task sees
//! them, by text (`1` and `"1"` are the same task).
//!
//! Cost: a 32-bit hash per listed value (or zip row, or included element), sorted; only the
//! texts whose hash occurs twice are compared. Placing included elements in the base takes
//! an 8-byte index (hash and position) per base value, built only when there are some.

use crate::array::{ArraySpec, Combine, ParamValues};
use std::borrow::Cow;
use std::hash::BuildHasher;

/// Where the first repeated element is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repeat {
    /// Parameter `param`'s list holds the same value at `first` and `again`.
    InList {
        param: usize,
        first: usize,
        again: usize,
    },
    /// Rows `first` and `again` of a zip are equal.
    Zipped { first: u64, again: u64 },
    /// Included element `include` equals an earlier included element.
    IncludedTwice { include: usize, first: usize },
    /// Included element `include` equals base element `base` (which the array keeps).
    IncludedInBase { include: usize, base: u64 },
}

/// The first repeated element of `spec`, if any.
pub fn first_repeat(spec: &ArraySpec) -> Option<Repeat> {
    if spec.combine == Combine::Zip && spec.params.iter().any(|(_, v)| v.len() != spec.base_len()) {
        // Zipped lists of unequal lengths are reported as such; their rows are undefined.
        return None;
    }
    // Indices for looking values up are only needed to place included elements.
    let lists: Vec<Option<TextIndex>> = spec
        .params
        .iter()
        .map(|(_, v)| match v {
            ParamValues::List(l) if !spec.extra.is_empty() => {
                Some(TextIndex::new(l.len(), |i| Cow::Borrowed(l.text(i))))
            }
            _ => None,
        })
        .collect();
    let zip_key = |i: usize| {
        Cow::Owned(row_key(
            spec.params.iter().map(|(_, v)| v.get(i as u64).text),
        ))
    };
    let rows = spec.base_len() as usize;
    match spec.combine {
        Combine::Product => {
            for (param, (_, values)) in spec.params.iter().enumerate() {
                let ParamValues::List(l) = values else {
                    continue;
                };
                if let Some((first, again)) = list_repeat(l.len(), |i| Cow::Borrowed(l.text(i))) {
                    return Some(Repeat::InList {
                        param,
                        first,
                        again,
                    });
                }
            }
        }
        Combine::Zip => {
            if let Some((first, again)) = list_repeat(rows, zip_key) {
                return Some(Repeat::Zipped {
                    first: first as u64,
                    again: again as u64,
                });
            }
        }
    }
    let extra = &spec.extra;
    if extra.is_empty() {
        return None;
    }
    // Where included elements would stand in the base: indices of the zip's rows.
    let zip_index = (spec.combine == Combine::Zip).then(|| TextIndex::new(rows, zip_key));
    let names: Vec<String> = spec.params.iter().map(|(n, _)| n.clone()).collect();
    let included = |i: usize| extra.element_values(i, &names);
    let include_key = |i: usize| Cow::Owned(row_key(included(i).into_iter().map(|v| v.text)));
    if let Some((first, again)) = list_repeat(extra.len(), include_key) {
        return Some(Repeat::IncludedTwice {
            include: again,
            first,
        });
    }
    for include in 0..extra.len() {
        let values = included(include);
        let base = match spec.combine {
            Combine::Product => {
                let mut index: u128 = 0;
                let mut found = true;
                for (p, (_, v)) in spec.params.iter().enumerate() {
                    let text = &values[p].text;
                    let position = match (v, &lists[p]) {
                        (ParamValues::Range { start, stop, step }, _) => {
                            range_position(*start, *stop, *step, text)
                        }
                        (ParamValues::List(l), Some(ix)) => ix
                            .position(text, |i| Cow::Borrowed(l.text(i)))
                            .map(|p| p as u64),
                        _ => None,
                    };
                    match position {
                        Some(pos) => index = index * v.len() as u128 + pos as u128,
                        None => {
                            found = false;
                            break;
                        }
                    }
                }
                found.then_some(index as u64)
            }
            Combine::Zip => {
                let key = row_key(values.iter().map(|v| v.text.clone()));
                zip_index
                    .as_ref()
                    .and_then(|rows| rows.position(&key, zip_key))
                    .map(|p| p as u64)
            }
        };
        let kept = |b: u64| {
            spec.selection
                .as_ref()
                .is_none_or(|sel| sel.binary_search(&b).is_ok())
        };
        if let Some(base) = base.filter(|b| kept(*b)) {
            return Some(Repeat::IncludedInBase { include, base });
        }
    }
    None
}

/// One text per row: the values joined by a separator no YAML scalar flow accepts holds
/// (NUL is refused in values).
fn row_key(texts: impl Iterator<Item = String>) -> String {
    texts.collect::<Vec<_>>().join("\0")
}

/// Position of integer `text` in `start..stop` by `step`.
fn range_position(start: i64, stop: i64, step: i64, text: &str) -> Option<u64> {
    let v: i128 = text.parse::<i64>().ok()?.into();
    let (start, stop, step) = (i128::from(start), i128::from(stop), i128::from(step));
    let inside = if step > 0 {
        v >= start && v < stop
    } else {
        v <= start && v > stop
    };
    (inside && (v - start) % step == 0).then(|| ((v - start) / step) as u64)
}

/// The first repeat among `n` texts with 4 bytes per text: their 32-bit hashes sorted
/// find the few hashes that occur twice, and only the texts with those hashes are compared.
fn list_repeat<'a>(n: usize, text: impl Fn(usize) -> Cow<'a, str>) -> Option<(usize, usize)> {
    let hasher = std::collections::hash_map::RandomState::new();
    let hash = |i: usize| hash32(&hasher, &text(i)) as u32;
    let mut hashes: Vec<u32> = (0..n).map(hash).collect();
    hashes.sort_unstable();
    let twice: std::collections::HashSet<u32> = hashes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    drop(hashes);
    if twice.is_empty() {
        return None;
    }
    // Texts with a shared hash, by hash, in index order.
    let mut groups: std::collections::HashMap<u32, Vec<usize>> = Default::default();
    for i in 0..n {
        let h = hash(i);
        if !twice.contains(&h) {
            continue;
        }
        let group = groups.entry(h).or_default();
        if let Some(&first) = group.iter().find(|&&d| text(d) == text(i)) {
            // Indices ascend: the first repeat met is the one with the smallest later index.
            return Some((first, i));
        }
        group.push(i);
    }
    None
}

/// Sorted `(hash << 32) | index` of `n` texts.
struct TextIndex {
    entries: Vec<u64>,
    hasher: std::collections::hash_map::RandomState,
}

impl TextIndex {
    fn new<'a>(n: usize, text: impl Fn(usize) -> Cow<'a, str>) -> TextIndex {
        let hasher = std::collections::hash_map::RandomState::new();
        let mut entries: Vec<u64> = (0..n.min(u32::MAX as usize))
            .map(|i| (hash32(&hasher, &text(i)) << 32) | i as u64)
            .collect();
        entries.sort_unstable();
        TextIndex { entries, hasher }
    }

    /// The index of `wanted` among the texts, if it is one of them.
    fn position<'a>(&self, wanted: &str, text: impl Fn(usize) -> Cow<'a, str>) -> Option<usize> {
        let hash = hash32(&self.hasher, wanted);
        let from = self.entries.partition_point(|e| (e >> 32) < hash);
        self.entries[from..]
            .iter()
            .take_while(|e| *e >> 32 == hash)
            .map(|e| (*e & 0xffff_ffff) as usize)
            .find(|i| text(*i) == wanted)
    }
}

fn hash32(hasher: &std::collections::hash_map::RandomState, text: &str) -> u64 {
    hasher.hash_one(text) >> 32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::{ExtraElements, ParamList, ParamValue};

    fn list(texts: &[&str]) -> ParamValues {
        ParamValues::List(ParamList::from_values(
            texts.iter().map(|t| text_value(t)).collect(),
        ))
    }

    fn text_value(t: &str) -> ParamValue {
        ParamValue {
            text: t.to_string(),
            kind: crate::array::ParamKind::Str,
        }
    }

    fn spec(params: Vec<(&str, ParamValues)>, combine: Combine) -> ArraySpec {
        ArraySpec {
            params: params
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
            combine,
            selection: None,
            extra: ExtraElements::default(),
        }
    }

    #[test]
    fn a_repeated_list_value_is_found_and_distinct_values_are_not() {
        let s = spec(
            vec![("p", list(&["a", "b", "c", "b", "a"]))],
            Combine::Product,
        );
        assert_eq!(
            first_repeat(&s),
            Some(Repeat::InList {
                param: 0,
                first: 1,
                again: 3
            })
        );
        let s = spec(vec![("p", list(&["1", "2", "10", "01"]))], Combine::Product);
        assert_eq!(first_repeat(&s), None);
        let all_same: Vec<String> = vec!["x".to_string(); 200_000];
        let refs: Vec<&str> = all_same.iter().map(String::as_str).collect();
        let s = spec(vec![("p", list(&refs))], Combine::Product);
        assert!(matches!(
            first_repeat(&s),
            Some(Repeat::InList {
                first: 0,
                again: 1,
                ..
            })
        ));
    }

    #[test]
    fn zips_repeat_by_row_and_includes_by_element() {
        let s = spec(
            vec![("a", list(&["1", "1", "2"])), ("b", list(&["x", "y", "x"]))],
            Combine::Zip,
        );
        assert_eq!(first_repeat(&s), None);
        let s = spec(
            vec![("a", list(&["1", "2", "1"])), ("b", list(&["x", "y", "x"]))],
            Combine::Zip,
        );
        assert_eq!(
            first_repeat(&s),
            Some(Repeat::Zipped { first: 0, again: 2 })
        );

        let mut s = spec(
            vec![
                (
                    "i",
                    ParamValues::Range {
                        start: 0,
                        stop: 10,
                        step: 2,
                    },
                ),
                ("z", list(&["0.5", "1.0"])),
            ],
            Combine::Product,
        );
        s.extra.push(&[text_value("3"), text_value("0.5")]);
        assert_eq!(first_repeat(&s), None, "3 is not in the range");
        s.extra.push(&[text_value("4"), text_value("1.0")]);
        assert_eq!(
            first_repeat(&s),
            Some(Repeat::IncludedInBase {
                include: 1,
                base: 5
            })
        );
        s.selection = Some(vec![0, 1, 2, 3, 4, 6, 7, 8, 9]);
        assert_eq!(
            first_repeat(&s),
            None,
            "an excluded element may be included back"
        );
        s.extra.push(&[text_value("3"), text_value("0.5")]);
        assert_eq!(
            first_repeat(&s),
            Some(Repeat::IncludedTwice {
                include: 2,
                first: 0
            })
        );
    }
}
