//! Label selectors as the API server parses them from `?labelSelector=`.
//!
//! Supported: `k=v`, `k==v`, `k!=v`, `k` (exists), `!k` (does not exist),
//! `k in (a,b)`, `k notin (a,b)`, comma separated (all must hold).

use serde_json::Value;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses the `labelSelector` query value; `Err` carries a message for a 400.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(Selector { requirements });
        }
        for term in split_top_level(text) {
            requirements.push(parse_term(term.trim()).ok_or_else(|| {
                format!("unable to parse requirement: invalid label selector term {term:?}")
            })?);
        }
        Ok(Selector { requirements })
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        self.requirements.iter().all(|r| {
            let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
            match r {
                Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
                Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
                Requirement::Exists(k) => get(k).is_some(),
                Requirement::NotExists(k) => get(k).is_none(),
                Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
                Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            }
        })
    }
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_term(term: &str) -> Option<Requirement> {
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        return valid_key(key).then(|| Requirement::NotExists(key.to_string()));
    }
    if let Some(open) = term.find('(') {
        let close = term.strip_suffix(')')?;
        let mut head = term[..open].split_whitespace();
        let (key, op) = (head.next()?, head.next()?);
        if head.next().is_some() || !valid_key(key) {
            return None;
        }
        let values: Vec<String> = close[open + 1..]
            .split(',')
            .map(|v| v.trim().to_string())
            .collect();
        if values.iter().any(|v| !valid_value(v)) {
            return None;
        }
        return match op {
            "in" => Some(Requirement::In(key.to_string(), values)),
            "notin" => Some(Requirement::NotIn(key.to_string(), values)),
            _ => None,
        };
    }
    let (key, value, negated) = if let Some((k, v)) = term.split_once("!=") {
        (k, v, true)
    } else if let Some((k, v)) = term.split_once("==") {
        (k, v, false)
    } else if let Some((k, v)) = term.split_once('=') {
        (k, v, false)
    } else {
        return valid_key(term).then(|| Requirement::Exists(term.to_string()));
    };
    let (key, value) = (key.trim(), value.trim());
    if !valid_key(key) || !valid_value(value) {
        return None;
    }
    Some(if negated {
        Requirement::NotEquals(key.into(), value.into())
    } else {
        Requirement::Equals(key.into(), value.into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    #[test]
    fn equality_inequality_and_existence() {
        let o = obj(json!({"app": "flow", "tier": "a"}));
        assert!(Selector::parse("app=flow").unwrap().matches_object(&o));
        assert!(Selector::parse("app==flow,tier")
            .unwrap()
            .matches_object(&o));
        assert!(!Selector::parse("app!=flow").unwrap().matches_object(&o));
        assert!(Selector::parse("app!=other").unwrap().matches_object(&o));
        assert!(!Selector::parse("missing").unwrap().matches_object(&o));
        assert!(Selector::parse("!missing").unwrap().matches_object(&o));
        assert!(Selector::parse("").unwrap().matches_object(&o));
        assert!(Selector::parse("x!=y").unwrap().matches_object(&json!({})));
    }

    #[test]
    fn set_based() {
        let o = obj(json!({"app": "flow"}));
        assert!(Selector::parse("app in (x, flow),app")
            .unwrap()
            .matches_object(&o));
        assert!(!Selector::parse("app notin (flow)")
            .unwrap()
            .matches_object(&o));
        assert!(Selector::parse("tier notin (a)")
            .unwrap()
            .matches_object(&o));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Selector::parse("a=b,,c").is_err());
        assert!(Selector::parse("a b").is_err());
        assert!(Selector::parse("a=(b").is_err());
    }
}
