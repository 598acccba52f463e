//! The md-benchmark verdict and the gate it puts on downstream steps. Pure.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// PASS / MARGINAL / FAIL of an IPC overhead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Overhead below `pass_below`.
    Pass,
    /// Overhead below `marginal_below`.
    Marginal,
    /// Anything else.
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Marginal => "MARGINAL",
            Verdict::Fail => "FAIL",
        })
    }
}

/// A percentage written as `5%`, `"5%"`, `5` or `5.0` in YAML.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let value = match Raw::deserialize(d)? {
            Raw::Number(n) => n,
            Raw::Text(t) => t
                .trim()
                .trim_end_matches('%')
                .trim()
                .parse::<f64>()
                .map_err(|_| {
                    serde::de::Error::custom(format!("`{t}` is not a percentage (write e.g. `5%`)"))
                })?,
        };
        // Negative thresholds are allowed: `pass_below: -100%` makes every run FAIL (used to
        // test that a stopped gate blocks downstream steps).
        if !value.is_finite() {
            return Err(serde::de::Error::custom(format!(
                "{value} is not a finite percentage"
            )));
        }
        Ok(Percent(value))
    }
}

/// What a gate does with a MARGINAL or FAIL verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateAction {
    /// Let downstream steps run, with a warning.
    Warn,
    /// Block downstream steps and exit non-zero.
    Stop,
}

/// The `gate:` settings of an md-benchmark step. Defaults: PASS below 5 %, MARGINAL below 10 %,
/// warn on MARGINAL, stop on FAIL.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default)]
pub struct GateSettings {
    /// Overheads below this are PASS.
    pub pass_below: Percent,
    /// Overheads below this (and not PASS) are MARGINAL.
    pub marginal_below: Percent,
    /// What MARGINAL does downstream.
    pub on_marginal: GateAction,
    /// What FAIL does downstream.
    pub on_fail: GateAction,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            pass_below: Percent(5.0),
            marginal_below: Percent(10.0),
            on_marginal: GateAction::Warn,
            on_fail: GateAction::Stop,
        }
    }
}

/// Classifies an overhead in percent. A negative overhead (IPC faster, i.e. noise) is PASS;
/// a NaN is FAIL. If `marginal_below < pass_below` there is no MARGINAL band.
pub fn verdict(overhead_percent: f64, gate: &GateSettings) -> Verdict {
    if overhead_percent.is_nan() {
        Verdict::Fail
    } else if overhead_percent < gate.pass_below.0 {
        Verdict::Pass
    } else if overhead_percent < gate.marginal_below.0 {
        Verdict::Marginal
    } else {
        Verdict::Fail
    }
}

/// What the engine does with the steps downstream of a benchmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision", content = "message")]
pub enum GateDecision {
    /// Run them.
    Continue,
    /// Run them, and show this warning (in the log and `flow status`).
    Warn(String),
    /// Mark them `blocked by gate` with this message (it holds the figures) and exit non-zero.
    Stop(String),
}

/// Decides the gate from the verdict and policy. `figures` is the one-line summary of the
/// measurement (see `BenchmarkOutcome::summary`) that goes into any message.
pub fn gate_decision(verdict: Verdict, gate: &GateSettings, figures: &str) -> GateDecision {
    let action = match verdict {
        Verdict::Pass => return GateDecision::Continue,
        Verdict::Marginal => gate.on_marginal,
        Verdict::Fail => gate.on_fail,
    };
    let bands = format!(
        "PASS < {}%, MARGINAL < {}%",
        gate.pass_below.0, gate.marginal_below.0
    );
    match action {
        GateAction::Warn => GateDecision::Warn(format!(
            "md-benchmark {verdict} ({bands}), continuing: {figures}"
        )),
        GateAction::Stop => GateDecision::Stop(format!(
            "blocked by gate: md-benchmark {verdict} ({bands}): {figures}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_bands() {
        let g = GateSettings::default();
        assert_eq!(verdict(-1.0, &g), Verdict::Pass);
        assert_eq!(verdict(2.9, &g), Verdict::Pass);
        assert_eq!(verdict(5.0, &g), Verdict::Marginal);
        assert_eq!(verdict(9.99, &g), Verdict::Marginal);
        assert_eq!(verdict(10.0, &g), Verdict::Fail);
        assert_eq!(verdict(f64::NAN, &g), Verdict::Fail);
    }

    #[test]
    fn decisions() {
        let g = GateSettings::default();
        assert_eq!(
            gate_decision(Verdict::Pass, &g, "x"),
            GateDecision::Continue
        );
        match gate_decision(Verdict::Marginal, &g, "7.0%") {
            GateDecision::Warn(m) => assert!(m.contains("MARGINAL") && m.contains("7.0%"), "{m}"),
            other => panic!("{other:?}"),
        }
        match gate_decision(Verdict::Fail, &g, "12%") {
            GateDecision::Stop(m) => {
                assert!(m.starts_with("blocked by gate") && m.contains("12%"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let lenient = GateSettings {
            on_fail: GateAction::Warn,
            on_marginal: GateAction::Stop,
            ..g
        };
        assert!(matches!(
            gate_decision(Verdict::Fail, &lenient, ""),
            GateDecision::Warn(_)
        ));
        assert!(matches!(
            gate_decision(Verdict::Marginal, &lenient, ""),
            GateDecision::Stop(_)
        ));
    }

    #[test]
    fn percent_forms() {
        let g: GateSettings = serde_json::from_str(
            r#"{"pass_below": "2.5%", "marginal_below": 8, "on_fail": "warn"}"#,
        )
        .unwrap();
        assert_eq!(g.pass_below, Percent(2.5));
        assert_eq!(g.marginal_below, Percent(8.0));
        assert_eq!(g.on_fail, GateAction::Warn);
        assert_eq!(g.on_marginal, GateAction::Warn);
        assert!(serde_json::from_str::<GateSettings>(r#"{"pass_below": "five"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<GateSettings>(r#"{"pass_below": "-100%"}"#)
                .unwrap()
                .pass_below,
            Percent(-100.0)
        );
    }
}
