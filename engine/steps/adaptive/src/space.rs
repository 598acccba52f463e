//! The search space of an adaptive step, and the validation of every parameter set an
//! algorithm proposes against it.
//!
//! ```yaml
//! space:
//!   beta: {uniform: [0.1, 1.0]}        # a float in [lo, hi]
//!   gamma: {log_uniform: [0.01, 0.5]}  # a float in [lo, hi], sampled on a log scale; lo > 0
//!   n: {int: [1, 10]}                  # an integer in [lo, hi], both included
//!   model: [sir, seir]                 # one of these values (strings, numbers, booleans)
//! ```
//!
//! Parameters keep the order they are written in (the order of the trials table columns).

use serde_json::{Map, Value};

/// One dimension of the space.
#[derive(Debug, Clone, PartialEq)]
pub enum Dimension {
    Uniform { lo: f64, hi: f64 },
    LogUniform { lo: f64, hi: f64 },
    Int { lo: i64, hi: i64 },
    Categorical(Vec<Value>),
}

/// A search space: named dimensions in the order written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Space {
    pub params: Vec<(String, Dimension)>,
}

/// A parameter set with canonical values, in the space's order.
pub type ParamSet = Map<String, Value>;

/// A space or a proposal that does not fit it: the field (`space.beta`) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpaceError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpaceError {
    SpaceError {
        field: field.into(),
        message: message.into(),
    }
}

fn bounds(field: &str, v: &Value) -> Result<(f64, f64), SpaceError> {
    let pair = v
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| err(field, "expected two numbers [lo, hi]"))?;
    let lo = pair[0]
        .as_f64()
        .ok_or_else(|| err(field, format!("lower bound {} is not a number", pair[0])))?;
    let hi = pair[1]
        .as_f64()
        .ok_or_else(|| err(field, format!("upper bound {} is not a number", pair[1])))?;
    if !lo.is_finite() || !hi.is_finite() {
        return Err(err(field, "bounds must be finite"));
    }
    if lo >= hi {
        return Err(err(
            field,
            format!("lower bound {lo} must be below upper bound {hi}"),
        ));
    }
    Ok((lo, hi))
}

impl Space {
    /// The space from the step's `space:` mapping (JSON). Every dimension is checked.
    pub fn from_json(v: &Value) -> Result<Space, SpaceError> {
        let map = v
            .as_object()
            .ok_or_else(|| err("space", "expected a mapping of parameter names"))?;
        if map.is_empty() {
            return Err(err("space", "a search space needs at least one parameter"));
        }
        let mut params = Vec::with_capacity(map.len());
        for (name, def) in map {
            let field = format!("space.{name}");
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(err(
                    &field,
                    "parameter names are letters, digits and `_`, not starting with a digit (they are template variables)",
                ));
            }
            if matches!(
                name.as_str(),
                "param_id" | "replicate" | "seed" | "output" | "trial"
            ) {
                return Err(err(
                    &field,
                    format!("`{name}` is a template variable of every adaptive task; name the parameter differently"),
                ));
            }
            let dim = match def {
                Value::Array(values) => {
                    if values.is_empty() {
                        return Err(err(&field, "a categorical parameter needs at least one value"));
                    }
                    for (i, x) in values.iter().enumerate() {
                        if !(x.is_string() || x.is_number() || x.is_boolean()) {
                            return Err(err(
                                format!("{field}[{i}]"),
                                "categorical values are strings, numbers or booleans",
                            ));
                        }
                        if values[..i].contains(x) {
                            return Err(err(format!("{field}[{i}]"), format!("{x} is listed twice")));
                        }
                    }
                    Dimension::Categorical(values.clone())
                }
                Value::Object(o) if o.len() == 1 => {
                    let (kind, b) = o.iter().next().expect("one entry");
                    let bf = format!("{field}.{kind}");
                    match kind.as_str() {
                        "uniform" => {
                            let (lo, hi) = bounds(&bf, b)?;
                            Dimension::Uniform { lo, hi }
                        }
                        "log_uniform" => {
                            let (lo, hi) = bounds(&bf, b)?;
                            if lo <= 0.0 {
                                return Err(err(&bf, format!("a log-uniform range must be positive (got lower bound {lo})")));
                            }
                            Dimension::LogUniform { lo, hi }
                        }
                        "int" => {
                            let pair = b.as_array().filter(|a| a.len() == 2);
                            let ints = pair.and_then(|p| Some((p[0].as_i64()?, p[1].as_i64()?)));
                            let (lo, hi) = ints.ok_or_else(|| err(&bf, "expected two integers [lo, hi]"))?;
                            if lo > hi {
                                return Err(err(&bf, format!("lower bound {lo} is above upper bound {hi}")));
                            }
                            Dimension::Int { lo, hi }
                        }
                        other => {
                            return Err(err(
                                &field,
                                format!("unknown distribution `{other}`: expected uniform, log_uniform, int, or a list of values"),
                            ))
                        }
                    }
                }
                _ => {
                    return Err(err(
                        &field,
                        "expected {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, {int: [lo, hi]} or a list of values",
                    ))
                }
            };
            params.push((name.clone(), dim));
        }
        Ok(Space { params })
    }

    /// The space as the protocol sends it to an algorithm:
    /// `{"beta": {"type": "uniform", "low": 0.1, "high": 1.0}, "model": {"type":
    /// "categorical", "choices": ["sir", "seir"]}, ...}` in the space's order.
    pub fn to_protocol(&self) -> Value {
        let mut out = Map::new();
        for (name, dim) in &self.params {
            let d = match dim {
                Dimension::Uniform { lo, hi } => {
                    serde_json::json!({"type": "uniform", "low": lo, "high": hi})
                }
                Dimension::LogUniform { lo, hi } => {
                    serde_json::json!({"type": "log_uniform", "low": lo, "high": hi})
                }
                Dimension::Int { lo, hi } => {
                    serde_json::json!({"type": "int", "low": lo, "high": hi})
                }
                Dimension::Categorical(c) => {
                    serde_json::json!({"type": "categorical", "choices": c})
                }
            };
            out.insert(name.clone(), d);
        }
        Value::Object(out)
    }

    /// Check a proposed parameter set and return it with canonical values, in the space's
    /// order: floats as floats (`1` proposed for a uniform becomes `1.0`), integers as
    /// integers (`3.0` for an int becomes `3`), categorical values as written in the space.
    /// A missing or extra parameter, a value out of bounds, NaN or infinity is an error.
    pub fn canonicalize(&self, proposed: &Value) -> Result<ParamSet, SpaceError> {
        let map = proposed
            .as_object()
            .ok_or_else(|| err("params", "a parameter set is a JSON object"))?;
        for k in map.keys() {
            if !self.params.iter().any(|(n, _)| n == k) {
                return Err(err(
                    format!("params.{k}"),
                    "is not a parameter of the space",
                ));
            }
        }
        let mut out = Map::new();
        for (name, dim) in &self.params {
            let field = format!("params.{name}");
            let v = map
                .get(name)
                .ok_or_else(|| err(&field, "missing from the proposed parameter set"))?;
            let canonical = match dim {
                Dimension::Uniform { lo, hi } | Dimension::LogUniform { lo, hi } => {
                    let x = v
                        .as_f64()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| err(&field, format!("{v} is not a finite number")))?;
                    if x < *lo || x > *hi {
                        return Err(err(&field, format!("{x} is outside [{lo}, {hi}]")));
                    }
                    // -0.0 and 0.0 are the same parameter.
                    let x = if x == 0.0 { 0.0 } else { x };
                    serde_json::Number::from_f64(x)
                        .map(Value::Number)
                        .ok_or_else(|| err(&field, "not representable"))?
                }
                Dimension::Int { lo, hi } => {
                    let x = match v.as_i64() {
                        Some(i) => i,
                        None => match v.as_f64() {
                            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
                            _ => return Err(err(&field, format!("{v} is not an integer"))),
                        },
                    };
                    if x < *lo || x > *hi {
                        return Err(err(&field, format!("{x} is outside [{lo}, {hi}]")));
                    }
                    Value::from(x)
                }
                Dimension::Categorical(choices) => choices
                    .iter()
                    .find(|c| same_choice(c, v))
                    .cloned()
                    .ok_or_else(|| {
                        err(
                            &field,
                            format!("{v} is not one of {}", Value::Array(choices.clone())),
                        )
                    })?,
            };
            out.insert(name.clone(), canonical);
        }
        Ok(out)
    }

    /// A parameter set for previews (`flow plan` before the algorithm ran): the centre of
    /// each range (geometric for log-uniform), the first categorical value.
    pub fn example(&self) -> ParamSet {
        let mut out = Map::new();
        for (name, dim) in &self.params {
            let v = match dim {
                Dimension::Uniform { lo, hi } => Value::from((lo + hi) / 2.0),
                Dimension::LogUniform { lo, hi } => Value::from((lo * hi).sqrt()),
                Dimension::Int { lo, hi } => Value::from(lo + (hi - lo) / 2),
                Dimension::Categorical(c) => c[0].clone(),
            };
            out.insert(name.clone(), v);
        }
        out
    }

    /// One line per dimension, for `flow plan`.
    pub fn describe(&self) -> Vec<String> {
        self.params
            .iter()
            .map(|(name, dim)| match dim {
                Dimension::Uniform { lo, hi } => format!("{name}: uniform [{lo}, {hi}]"),
                Dimension::LogUniform { lo, hi } => format!("{name}: log-uniform [{lo}, {hi}]"),
                Dimension::Int { lo, hi } => format!("{name}: integer [{lo}, {hi}]"),
                Dimension::Categorical(c) => format!(
                    "{name}: one of {}",
                    c.iter().map(display_value).collect::<Vec<_>>().join(", ")
                ),
            })
            .collect()
    }
}

/// A categorical value as a template sees it (strings without quotes).
pub fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn same_choice(choice: &Value, v: &Value) -> bool {
    match (choice, v) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => choice == v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn space() -> Space {
        Space::from_json(&json!({
            "beta": {"uniform": [0.1, 1.0]},
            "gamma": {"log_uniform": [0.01, 0.5]},
            "n": {"int": [1, 10]},
            "model": ["sir", "seir"],
        }))
        .unwrap()
    }

    #[test]
    fn parses_every_kind_in_order() {
        let s = space();
        let names: Vec<_> = s.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["beta", "gamma", "n", "model"]);
        assert_eq!(s.params[2].1, Dimension::Int { lo: 1, hi: 10 });
    }

    #[test]
    fn bad_spaces_name_the_field() {
        let cases = [
            (json!({"b": {"uniform": [1.0, 0.1]}}), "space.b.uniform"),
            (
                json!({"b": {"log_uniform": [0.0, 1.0]}}),
                "space.b.log_uniform",
            ),
            (json!({"b": {"int": [1.5, 3]}}), "space.b.int"),
            (json!({"b": {"normal": [0, 1]}}), "space.b"),
            (json!({"b": []}), "space.b"),
            (json!({"b": ["x", "x"]}), "space.b[1]"),
            (json!({"seed": ["x"]}), "space.seed"),
            (json!({}), "space"),
            (json!({"a-b": ["x"]}), "space.a-b"),
        ];
        for (v, field) in cases {
            let e = Space::from_json(&v).unwrap_err();
            assert_eq!(e.field, field, "{v}: {e}");
        }
    }

    #[test]
    fn proposals_are_checked_and_made_canonical() {
        let s = space();
        let p = s
            .canonicalize(&json!({"model": "seir", "n": 3.0, "gamma": 0.1, "beta": 1}))
            .unwrap();
        assert_eq!(
            Value::Object(p).to_string(),
            r#"{"beta":1.0,"gamma":0.1,"n":3,"model":"seir"}"#
        );
        for bad in [
            json!({"beta": 2.0, "gamma": 0.1, "n": 3, "model": "sir"}),
            json!({"beta": 0.5, "gamma": 0.1, "n": 3.5, "model": "sir"}),
            json!({"beta": 0.5, "gamma": 0.1, "n": 3, "model": "si"}),
            json!({"beta": 0.5, "gamma": 0.1, "n": 3}),
            json!({"beta": 0.5, "gamma": 0.1, "n": 3, "model": "sir", "x": 1}),
        ] {
            assert!(s.canonicalize(&bad).is_err(), "{bad}");
        }
    }
}
