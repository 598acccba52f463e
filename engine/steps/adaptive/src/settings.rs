//! The adaptive step's settings, read from the step as written (JSON).
//!
//! ```yaml
//! algorithm:
//!   optuna: {sampler: tpe, seed: 1, direction: minimize}   # tpe | random | cmaes
//!   environment: optuna          # the built environment whose python runs the algorithm
//!   # or, instead of `optuna:`, any program speaking the protocol:
//!   # command: python my_algorithm.py      (run with `sh -c` in the campaign file's directory)
//!   # options: {...}                       (sent in `hello`)
//!   # direction: minimize
//! space: {...}
//! trials: 64
//! batch: 8
//! replicates: 3
//! objective: {key: loss, aggregate: mean}
//! ```

use crate::objective::Aggregate;
use crate::protocol::Direction;
use crate::space::{Space, SpaceError};
use serde_json::Value;

/// Which algorithm proposes the parameter sets.
#[derive(Debug, Clone, PartialEq)]
pub enum AlgorithmSpec {
    /// Optuna through the adapter shipped with flow.
    Optuna { sampler: String, seed: Option<u64> },
    /// A program speaking the protocol, as a shell command line.
    Command { command: String },
}

/// A setting that does not fit: its field (`algorithm.optuna.sampler`) and why.
pub type SettingsError = SpaceError;

/// Everything the adaptive step needs besides the command and output templates.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveSettings {
    pub algorithm: AlgorithmSpec,
    /// The build-env environment the algorithm (and, unless the step names another, the
    /// evaluations) run in.
    pub environment: Option<String>,
    /// Sent to the algorithm in `hello` (`optuna:` block, or `algorithm.options`).
    pub options: Value,
    pub direction: Direction,
    pub space: Space,
    pub trials: u64,
    pub batch: u64,
    pub replicates: u32,
    pub objective_key: String,
    pub aggregate: Aggregate,
    /// Seconds one reply of the algorithm may take.
    pub reply_timeout_s: u64,
}

fn err(field: &str, message: impl Into<String>) -> SettingsError {
    SpaceError {
        field: field.to_string(),
        message: message.into(),
    }
}

pub const SAMPLERS: [&str; 3] = ["tpe", "random", "cmaes"];

fn direction(v: Option<&Value>, field: &str) -> Result<Direction, SettingsError> {
    match v.map(|d| d.as_str()) {
        None => Ok(Direction::Minimize),
        Some(Some("minimize")) => Ok(Direction::Minimize),
        Some(Some("maximize")) => Ok(Direction::Maximize),
        Some(_) => Err(err(field, "expected minimize or maximize")),
    }
}

fn positive(step: &Value, key: &str, default: Option<u64>) -> Result<u64, SettingsError> {
    match step.get(key) {
        None => default.ok_or_else(|| err(key, "is required")),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| err(key, format!("expected a positive integer, got {v}"))),
    }
}

impl AdaptiveSettings {
    /// Read and check the settings. Errors name the field relative to the step.
    pub fn from_json(step: &Value) -> Result<AdaptiveSettings, SettingsError> {
        let algorithm = step
            .get("algorithm")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                err(
                    "algorithm",
                    "is required: `optuna: {...}` or `command: ...`",
                )
            })?;
        let environment = match algorithm.get("environment") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => return Err(err("algorithm.environment", "expected an environment name")),
        };
        let (spec, options, dir) = match (algorithm.get("optuna"), algorithm.get("command")) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "algorithm",
                    "give either `optuna:` or `command:`, not both",
                ))
            }
            (Some(o), None) => {
                let o = o
                    .as_object()
                    .ok_or_else(|| err("algorithm.optuna", "expected a mapping"))?;
                let sampler = match o.get("sampler") {
                    None => "tpe".to_string(),
                    Some(Value::String(s)) if SAMPLERS.contains(&s.as_str()) => s.clone(),
                    Some(v) => {
                        return Err(err(
                            "algorithm.optuna.sampler",
                            format!("{v} is not one of tpe, random, cmaes"),
                        ))
                    }
                };
                let seed = match o.get("seed") {
                    None => None,
                    Some(v) => Some(v.as_u64().ok_or_else(|| {
                        err("algorithm.optuna.seed", "expected a non-negative integer")
                    })?),
                };
                let dir = direction(o.get("direction"), "algorithm.optuna.direction")?;
                if environment.is_none() {
                    return Err(err(
                        "algorithm.environment",
                        "Optuna runs in a built environment: name it here (e.g. `environment: optuna`, built by a build-env step in `needs`)",
                    ));
                }
                (
                    AlgorithmSpec::Optuna { sampler, seed },
                    Value::Object(o.clone()),
                    dir,
                )
            }
            (None, Some(Value::String(c))) if !c.trim().is_empty() => (
                AlgorithmSpec::Command { command: c.clone() },
                algorithm
                    .get("options")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({})),
                direction(algorithm.get("direction"), "algorithm.direction")?,
            ),
            (None, Some(_)) => return Err(err("algorithm.command", "expected a command line")),
            (None, None) => {
                return Err(err(
                    "algorithm",
                    "name the algorithm: `optuna: {sampler: tpe, seed: 1}` or `command: python my_algorithm.py`",
                ))
            }
        };
        let space = Space::from_json(step.get("space").unwrap_or(&Value::Null))?;
        let trials = positive(step, "trials", None)?;
        let batch = positive(step, "batch", Some(1))?;
        let replicates = positive(step, "replicates", Some(1))?;
        if replicates > 10_000 {
            return Err(err(
                "replicates",
                "at most 10000 replicates per parameter set",
            ));
        }
        let objective = step
            .get("objective")
            .and_then(Value::as_object)
            .ok_or_else(|| err("objective", "is required: `{key: loss, aggregate: mean}`"))?;
        let objective_key = match objective.get("key") {
            Some(Value::String(k)) if !k.is_empty() && !k.split('.').any(str::is_empty) => {
                k.clone()
            }
            _ => {
                return Err(err(
                    "objective.key",
                    "expected the output JSON's key (`loss`, or `metrics.loss`)",
                ))
            }
        };
        let aggregate = match objective.get("aggregate") {
            None => Aggregate::Mean,
            Some(v) => v.as_str().and_then(Aggregate::parse).ok_or_else(|| {
                err(
                    "objective.aggregate",
                    format!("{v} is not one of mean, median, min, max"),
                )
            })?,
        };
        let reply_timeout_s = match algorithm.get("timeout_s") {
            None => 600,
            Some(v) => v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                err(
                    "algorithm.timeout_s",
                    "expected a positive number of seconds",
                )
            })?,
        };
        Ok(AdaptiveSettings {
            algorithm: spec,
            environment,
            options,
            direction: dir,
            space,
            trials,
            batch: batch.min(trials),
            replicates: replicates as u32,
            objective_key,
            aggregate,
            reply_timeout_s,
        })
    }

    /// The number of asks the budget takes when every ask returns a full batch.
    pub fn batches(&self) -> u64 {
        self.trials.div_ceil(self.batch.max(1))
    }

    /// The loop's settings.
    pub fn loop_config(&self) -> crate::LoopConfig {
        crate::LoopConfig {
            trials: self.trials,
            batch: self.batch,
            replicates: self.replicates,
            aggregate: self.aggregate,
            direction: self.direction,
        }
    }

    /// One line naming the algorithm, for `flow plan`.
    pub fn describe_algorithm(&self) -> String {
        match &self.algorithm {
            AlgorithmSpec::Optuna { sampler, seed } => format!(
                "optuna {sampler} sampler, {}, {} (in environment {})",
                seed.map_or("unseeded".to_string(), |s| format!("seed {s}")),
                self.direction.as_str(),
                self.environment.as_deref().unwrap_or("?")
            ),
            AlgorithmSpec::Command { command } => format!(
                "`{command}` (flow's JSON-lines protocol), {}",
                self.direction.as_str()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step() -> Value {
        json!({
            "algorithm": {"optuna": {"sampler": "tpe", "seed": 1, "direction": "minimize"}, "environment": "optuna"},
            "space": {"beta": {"uniform": [0.1, 1.0]}},
            "trials": 64, "batch": 8, "replicates": 3,
            "objective": {"key": "loss", "aggregate": "median"},
        })
    }

    #[test]
    fn reads_the_issue_example() {
        let s = AdaptiveSettings::from_json(&step()).unwrap();
        assert_eq!(
            s.algorithm,
            AlgorithmSpec::Optuna {
                sampler: "tpe".into(),
                seed: Some(1)
            }
        );
        assert_eq!(
            (s.trials, s.batch, s.replicates, s.batches()),
            (64, 8, 3, 8)
        );
        assert_eq!(s.aggregate, Aggregate::Median);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: [(&str, Value, &str); 6] = [
            (
                "/algorithm/optuna/sampler",
                json!("grid"),
                "algorithm.optuna.sampler",
            ),
            ("/trials", json!(0), "trials"),
            ("/objective/aggregate", json!("sum"), "objective.aggregate"),
            ("/algorithm/environment", json!(3), "algorithm.environment"),
            (
                "/space/beta",
                json!({"uniform": [2, 1]}),
                "space.beta.uniform",
            ),
            (
                "/algorithm/optuna/direction",
                json!("down"),
                "algorithm.optuna.direction",
            ),
        ];
        for (pointer, value, field) in cases {
            let mut s = step();
            *s.pointer_mut(pointer).unwrap() = value;
            assert_eq!(AdaptiveSettings::from_json(&s).unwrap_err().field, field);
        }
    }
}
