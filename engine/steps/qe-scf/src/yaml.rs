//! A small YAML → `serde_json::Value` loader for this crate's data files (pseudopotential
//! families, recovery policies), built on the workspace's `saphyr-parser` event stream so the
//! step needs no YAML crate of its own.
//!
//! Scalars follow the YAML 1.2 core schema: plain `null`/`~`/empty → null, `true`/`false` →
//! bool, integers and floats → numbers, everything else (and every quoted scalar) → string.
//! Anchors and aliases are resolved. Only the first document of the stream is read.

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// A YAML text that could not be turned into a value: the message and the 1-based line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlError {
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column of the problem.
    pub column: usize,
    /// What went wrong.
    pub message: String,
}

enum Frame {
    Seq(Vec<Value>, usize),
    Map(Map<String, Value>, Option<String>, usize),
}

/// Parses `text` into a JSON value. An empty document is `Value::Null`.
///
/// Fails on YAML syntax errors and on mapping keys that are not scalars.
pub fn parse_yaml(text: &str) -> Result<Value, YamlError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Value> = HashMap::new();
    let mut result: Option<Value> = None;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| YamlError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        let (line, column) = (span.start.line(), span.start.col() + 1);
        let complete: Option<(Value, usize)> = match event {
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(Vec::new(), anchor));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(Map::new(), None, anchor));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => Some((Value::Array(items), anchor)),
                _ => return Err(err(line, column, "unbalanced sequence end")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(map, None, anchor)) => Some((Value::Object(map), anchor)),
                _ => return Err(err(line, column, "mapping key without a value")),
            },
            Event::Scalar(text, style, anchor, _) => Some((scalar(&text, style), anchor)),
            Event::Alias(id) => match anchors.get(&id) {
                Some(v) => Some((v.clone(), 0)),
                None => return Err(err(line, column, "alias to an unknown anchor")),
            },
            Event::DocumentEnd => {
                if result.is_some() {
                    break;
                }
                None
            }
            _ => None,
        };
        if let Some((value, anchor)) = complete {
            if anchor != 0 {
                anchors.insert(anchor, value.clone());
            }
            match stack.last_mut() {
                None => {
                    result = Some(value);
                }
                Some(Frame::Seq(items, _)) => items.push(value),
                Some(Frame::Map(map, key, _)) => match key.take() {
                    None => {
                        let k = match value {
                            Value::String(s) => s,
                            Value::Number(n) => n.to_string(),
                            Value::Bool(b) => b.to_string(),
                            Value::Null => "null".to_string(),
                            _ => return Err(err(line, column, "mapping keys must be scalars")),
                        };
                        *key = Some(k);
                    }
                    Some(k) => {
                        map.insert(k, value);
                    }
                },
            }
        }
    }
    Ok(result.unwrap_or(Value::Null))
}

fn err(line: usize, column: usize, message: &str) -> YamlError {
    YamlError {
        line,
        column,
        message: message.to_string(),
    }
}

fn scalar(text: &str, style: ScalarStyle) -> Value {
    if style != ScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_lists_and_scalars() {
        let v = parse_yaml(
            "a: 1\nb: [x, 'y', 2.5]\nc:\n  d: true\n  e: ~\n  f: \"0.7\"\ng: local-TF\nh: 1.0e-8\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "b": ["x", "y", 2.5], "c": {"d": true, "e": null, "f": "0.7"},
                   "g": "local-TF", "h": 1.0e-8})
        );
    }

    #[test]
    fn anchors_resolve() {
        let v = parse_yaml("a: &x {k: 1}\nb: *x\n").unwrap();
        assert_eq!(v, json!({"a": {"k": 1}, "b": {"k": 1}}));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = parse_yaml("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line >= 1, "{e}");
    }

    #[test]
    fn empty_is_null() {
        assert_eq!(parse_yaml("").unwrap(), Value::Null);
    }
}
