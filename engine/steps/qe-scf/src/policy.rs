//! The recovery policy as data, and the pure function that decides the next attempt.
//!
//! A policy is an ordered list of handlers. After a failed attempt, the first handler that
//! matches the failure, has uses left, and changes something, produces the next attempt's
//! parameters (edits accumulate over attempts, as in the DFT factory). No handler, or an
//! exhausted attempt budget, ends in a [`FatalReport`] listing every attempt.

use crate::failure::Failure;
use crate::params::{locate, EditResult, ParamEdit, Params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// How an attempt starts from the previous attempt's outdir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// From scratch.
    #[default]
    None,
    /// `startingpot='file'`: from the previous charge density.
    ChargeDensity,
    /// `restart_mode='restart'`: continue where pw.x stopped (after `max_seconds`).
    Full,
    /// Run again from scratch, deliberately: the previous outdir is not used (a save that
    /// may be half written, an interrupted run). Unlike `none`, allowed without edits.
    FromScratch,
}

/// One failure kind or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MatchSpec {
    /// A single failure.
    One(Failure),
    /// Any of these.
    Any(Vec<Failure>),
}

impl MatchSpec {
    /// Whether `failure` is matched.
    pub fn matches(&self, failure: Failure) -> bool {
        match self {
            MatchSpec::One(f) => *f == failure,
            MatchSpec::Any(v) => v.contains(&failure),
        }
    }

    fn label(&self) -> String {
        match self {
            MatchSpec::One(f) => f.to_string(),
            MatchSpec::Any(v) => v.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(" | "),
        }
    }
}

/// One recovery step: on `match`, apply `set` (and restart), at most `max_uses` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handler {
    /// A name for reports and the attempt history (default: `<match>-<position>`).
    #[serde(default)]
    pub name: Option<String>,
    /// The failure(s) this handler answers.
    #[serde(rename = "match")]
    pub matches: MatchSpec,
    /// Parameter edits (pw.x names; values or `{multiply|add|cycle: ...}`).
    #[serde(default)]
    pub set: BTreeMap<String, ParamEdit>,
    /// Whether the next attempt restarts from this attempt's outdir.
    #[serde(default)]
    pub restart: Restart,
    /// How many times this handler may fire for one structure (default 1).
    #[serde(default = "one")]
    pub max_uses: u32,
}

fn one() -> u32 {
    1
}

fn five() -> u32 {
    5
}

impl Handler {
    /// Whether this handler turns smearing on or changes it (removed by
    /// `allow_smearing: false`).
    pub fn changes_smearing(&self) -> bool {
        self.set.keys().any(|k| {
            let bare = k.rsplit('.').next().unwrap_or(k);
            matches!(bare, "occupations" | "smearing" | "degauss")
        })
    }
}

/// A recovery policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPolicy {
    /// Its name (`default`, `diagonalization-cycle`, `inline`).
    #[serde(default = "inline_name")]
    pub name: String,
    /// One line about it.
    #[serde(default)]
    pub description: Option<String>,
    /// Attempts per structure, the first included (default 5, as in the DFT factory).
    #[serde(default = "five")]
    pub max_attempts: u32,
    /// Parameters of attempt 0 (the step's own `parameters` override them).
    #[serde(default)]
    pub initial: Params,
    /// The handlers, in order.
    #[serde(default)]
    pub handlers: Vec<Handler>,
}

fn inline_name() -> String {
    "inline".into()
}

/// The policies shipped with flow: (name, YAML text).
pub const BUILTIN_POLICIES: [(&str, &str); 2] = [
    (
        "default",
        include_str!("../../../../recipes/policies/default.yaml"),
    ),
    (
        "diagonalization-cycle",
        include_str!("../../../../recipes/policies/diagonalization-cycle.yaml"),
    ),
];

/// How a step names its policy: a shipped name, a YAML path, a list of handlers, or a
/// whole policy object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecoverySpec {
    /// `default`, `diagonalization-cycle`, or a path to a policy YAML file.
    Named(String),
    /// Handlers only (budget 5, `mixing_beta: 0.7` first, as the default policy).
    Handlers(Vec<Handler>),
    /// A full policy.
    Policy(RecoveryPolicy),
}

impl Default for RecoverySpec {
    fn default() -> Self {
        RecoverySpec::Named("default".into())
    }
}

/// A policy that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// Not shipped and not a readable file.
    #[error("unknown recovery policy `{name}` (shipped: {known}; or give a path to a policy YAML file, or the handlers inline)")]
    Unknown {
        /// What the step said.
        name: String,
        /// Shipped names.
        known: String,
    },
    /// The policy text or structure is invalid.
    #[error("recovery policy {source_name}: {message}")]
    Invalid {
        /// The policy's file, name or `inline`.
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

impl RecoveryPolicy {
    /// Parses a policy from YAML text and validates it.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Self, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            source_name: source_name.to_string(),
            message,
        };
        let value = crate::yaml::parse_yaml(text).map_err(|e| invalid(e.to_string()))?;
        let policy: RecoveryPolicy =
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        policy.validated(source_name)
    }

    /// Resolves what a step wrote under `recovery:`; paths are relative to `base_dir`.
    pub fn from_spec(spec: &RecoverySpec, base_dir: &Path) -> Result<Self, PolicyError> {
        match spec {
            RecoverySpec::Named(name) => {
                if let Some((_, text)) = BUILTIN_POLICIES.iter().find(|(n, _)| n == name) {
                    return Self::from_yaml(text, name);
                }
                if name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml") {
                    let path = base_dir.join(name);
                    let text = flow_dsl::user_file::read_text(&path).map_err(|e| {
                        PolicyError::Invalid {
                            source_name: path.display().to_string(),
                            message: format!("cannot read: {e}"),
                        }
                    })?;
                    return Self::from_yaml(&text, &path.display().to_string());
                }
                Err(PolicyError::Unknown {
                    name: name.clone(),
                    known: BUILTIN_POLICIES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
            RecoverySpec::Handlers(handlers) => {
                let mut initial = Params::new();
                initial.insert("mixing_beta".into(), Value::from(0.7));
                RecoveryPolicy {
                    name: "inline".into(),
                    description: None,
                    max_attempts: 5,
                    initial,
                    handlers: handlers.clone(),
                }
                .validated("inline")
            }
            RecoverySpec::Policy(p) => p.clone().validated("inline"),
        }
    }

    /// Checks names and edits, and fills in handler names.
    pub fn validated(mut self, source_name: &str) -> Result<Self, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            source_name: source_name.to_string(),
            message,
        };
        if self.max_attempts == 0 {
            return Err(invalid("max_attempts must be at least 1".into()));
        }
        for key in self.initial.keys() {
            locate(key).map_err(|e| invalid(format!("initial: {e}")))?;
        }
        let mut seen = Vec::new();
        for (i, h) in self.handlers.iter_mut().enumerate() {
            let name = h
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{}", h.matches.label().replace(" | ", "-"), i + 1));
            if seen.contains(&name) {
                return Err(invalid(format!("two handlers are named `{name}`")));
            }
            for (key, edit) in &h.set {
                locate(key).map_err(|e| invalid(format!("handler `{name}`: {e}")))?;
                if let ParamEdit::Op(op) = edit {
                    op.validate()
                        .map_err(|m| invalid(format!("handler `{name}`, `{key}`: {m}")))?;
                }
            }
            if h.set.is_empty() && h.restart == Restart::None {
                return Err(invalid(format!(
                    "handler `{name}` neither sets a parameter nor restarts"
                )));
            }
            seen.push(name.clone());
            h.name = Some(name);
        }
        Ok(self)
    }

    /// This policy with the smearing handlers removed (`allow_smearing: false`).
    pub fn without_smearing(mut self) -> Self {
        self.handlers.retain(|h| !h.changes_smearing());
        self
    }

    /// The policy as readable lines, for `flow plan`.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "policy `{}`: at most {} attempts per structure{}",
            self.name,
            self.max_attempts,
            self.description
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        )];
        if !self.initial.is_empty() {
            let init: Vec<String> = self
                .initial
                .iter()
                .map(|(k, v)| format!("{k}={}", show(v)))
                .collect();
            lines.push(format!("  attempt 0: {}", init.join(", ")));
        }
        for h in &self.handlers {
            let mut actions: Vec<String> = h
                .set
                .iter()
                .map(|(k, e)| format!("{k} = {}", show_edit(e)))
                .collect();
            match h.restart {
                Restart::None => {}
                Restart::ChargeDensity => actions.push("restart from the charge density".into()),
                Restart::Full => actions.push("restart pw.x where it stopped".into()),
                Restart::FromScratch => {
                    actions.push("run again from scratch (not from the previous save)".into())
                }
            }
            let uses = if h.max_uses == 1 {
                "once".to_string()
            } else {
                format!("up to {} times", h.max_uses)
            };
            lines.push(format!(
                "  on {} → {} [{}, {uses}]",
                h.matches.label(),
                actions.join("; "),
                h.name.as_deref().unwrap_or("")
            ));
        }
        lines.push("  otherwise → give up with a report of every attempt".into());
        lines
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn show_edit(e: &ParamEdit) -> String {
    match e {
        ParamEdit::Set(v) => show(v),
        op => op.to_string(),
    }
}

/// One pw.x attempt, as recorded in the state database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// 0-based attempt number.
    pub attempt: u32,
    /// The policy parameters it ran with (without the per-attempt restart/time settings).
    pub parameters: Params,
    /// The handler that produced these parameters (none for attempt 0).
    #[serde(default)]
    pub handler: Option<String>,
    /// How it started from the previous attempt.
    #[serde(default)]
    pub restart: Restart,
    /// What went wrong; `None` for the successful attempt.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// The shared error class of `failure`.
    #[serde(default)]
    pub error_class: Option<flow_dsl::error_class::ErrorClass>,
    /// The evidence (pw.x's message).
    #[serde(default)]
    pub message: Option<String>,
    /// Exit code, when the process exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Wall time of the attempt, seconds.
    #[serde(default)]
    pub wall_seconds: f64,
    /// Values pw.x reported that edits may build on (`nbnd`).
    #[serde(default)]
    pub observed: Params,
    /// The attempt's directory.
    #[serde(default)]
    pub directory: Option<String>,
    /// What the attempt did that did not fail it (a non-zero exit after a complete output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Everything the policy needs to decide: attempt 0's parameters and the attempts so far.
/// The engine persists it; a new allocation resumes from it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct History {
    /// The parameters of attempt 0 (settings + policy `initial`).
    pub initial: Params,
    /// Attempts so far, in order.
    pub attempts: Vec<AttemptRecord>,
}

/// The next step for a structure.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Run another attempt.
    Retry {
        /// Its parameters.
        params: Params,
        /// The handler that chose them (none for attempt 0).
        handler: Option<String>,
        /// How it starts from the previous attempt.
        restart: Restart,
    },
    /// Stop: the structure cannot be computed with this policy.
    GiveUp(FatalReport),
    /// The last attempt succeeded; nothing to do.
    Done,
}

/// The `DFTFatalError`-style report: why the structure was abandoned, and every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FatalReport {
    /// The structure's name.
    pub structure: String,
    /// Why flow gave up.
    pub reason: String,
    /// Every attempt, its parameters and its error.
    pub attempts: Vec<AttemptRecord>,
}

impl fmt::Display for FatalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "qe-scf gave up on {}: {}", self.structure, self.reason)?;
        for a in &self.attempts {
            let params: Vec<String> = a
                .parameters
                .iter()
                .map(|(k, v)| format!("{k}={}", show(v)))
                .collect();
            writeln!(
                f,
                "  attempt {} [{}{}] {} ({:.1} s): {}",
                a.attempt,
                a.handler.as_deref().unwrap_or("initial"),
                match a.restart {
                    Restart::None => "",
                    Restart::ChargeDensity => ", from charge density",
                    Restart::Full => ", restarted",
                    Restart::FromScratch => ", from scratch",
                },
                a.failure.map_or("ok".to_string(), |x| x.to_string()),
                a.wall_seconds,
                a.message.as_deref().unwrap_or("")
            )?;
            writeln!(f, "    parameters: {}", params.join(", "))?;
        }
        Ok(())
    }
}

/// Decides what follows `history` under `policy`.
///
/// Empty history → attempt 0 with `history.initial`. After a success → `Done`. After a
/// failure: the first handler (in order) that matches it, has been used fewer than
/// `max_uses` times, and yields a change (a `cycle` at its end or an arithmetic edit with
/// no base value is skipped) → `Retry`, its edits applied on top of the last attempt's
/// parameters. Budget spent or no handler → `GiveUp` with the full report. Pure.
pub fn next_parameters(policy: &RecoveryPolicy, history: &History, structure: &str) -> Decision {
    let Some(last) = history.attempts.last() else {
        return Decision::Retry {
            params: history.initial.clone(),
            handler: None,
            restart: Restart::None,
        };
    };
    let Some(failure) = last.failure else {
        return Decision::Done;
    };
    let give_up = |reason: String| {
        Decision::GiveUp(FatalReport {
            structure: structure.to_string(),
            reason,
            attempts: history.attempts.clone(),
        })
    };
    if history.attempts.len() as u32 >= policy.max_attempts {
        return give_up(format!(
            "{} attempts (the policy's budget) used; the last failed with {failure}{}",
            history.attempts.len(),
            last.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    for h in &policy.handlers {
        if !h.matches.matches(failure) {
            continue;
        }
        let uses = history
            .attempts
            .iter()
            .filter(|a| a.handler.is_some() && a.handler == h.name)
            .count() as u32;
        if uses >= h.max_uses {
            continue;
        }
        let mut params = last.parameters.clone();
        let mut usable = true;
        // a change is a value other than the one pw.x ran with (set, or reported: pools)
        let mut changed = false;
        for (key, edit) in &h.set {
            let key = &crate::params::canonical(key);
            let current = params.get(key).or(last.observed.get(key)).cloned();
            match edit.apply(params.get(key), last.observed.get(key)) {
                EditResult::Value(v) => {
                    changed |= current.as_ref() != Some(&v);
                    params.insert(key.clone(), v);
                }
                EditResult::Exhausted | EditResult::NoBase => {
                    usable = false;
                    break;
                }
            }
        }
        if !usable || (!changed && h.restart == Restart::None) {
            continue;
        }
        return Decision::Retry {
            params,
            handler: h.name.clone(),
            restart: h.restart,
        };
    }
    give_up(format!(
        "no handler left for {failure} in policy `{}`{}",
        policy.name,
        last.message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    ))
}

/// Whether a result was obtained with smearing that attempt 0 did not ask for (a changed
/// training label, flagged in results).
pub fn smearing_added_by_recovery(history: &History, final_params: &Params) -> bool {
    let smearing = |p: &Params| p.get("occupations").and_then(Value::as_str) == Some("smearing");
    smearing(final_params) && !smearing(&history.initial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn default_policy() -> RecoveryPolicy {
        RecoveryPolicy::from_spec(&RecoverySpec::default(), Path::new(".")).unwrap()
    }

    fn failed(h: &mut History, d: &Decision, failure: Failure) {
        let Decision::Retry {
            params,
            handler,
            restart,
        } = d
        else {
            panic!("expected a retry, got {d:?}");
        };
        h.attempts.push(AttemptRecord {
            attempt: h.attempts.len() as u32,
            parameters: params.clone(),
            handler: handler.clone(),
            restart: *restart,
            failure: Some(failure),
            error_class: Some(failure.error_class()),
            message: None,
            exit_code: Some(2),
            wall_seconds: 1.0,
            observed: Params::new(),
            directory: None,
            warnings: vec![],
        });
    }

    fn params_of(d: &Decision) -> &Params {
        match d {
            Decision::Retry { params, .. } => params,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    fn start(policy: &RecoveryPolicy) -> History {
        History {
            initial: policy.initial.clone(),
            attempts: vec![],
        }
    }

    #[test]
    fn default_reproduces_the_dft_factory_sequence() {
        let p = default_policy();
        assert_eq!(p.max_attempts, 5);
        let mut h = start(&p);
        let d0 = next_parameters(&p, &h, "s");
        assert_eq!(params_of(&d0)["mixing_beta"], json!(0.7));
        failed(&mut h, &d0, Failure::ScfNotConverged);
        let d1 = next_parameters(&p, &h, "s");
        assert_eq!(params_of(&d1)["mixing_beta"], json!(0.3));
        failed(&mut h, &d1, Failure::ScfNotConverged);
        let d2 = next_parameters(&p, &h, "s");
        assert_eq!(params_of(&d2)["mixing_mode"], json!("local-TF"));
        assert_eq!(
            params_of(&d2)["mixing_beta"],
            json!(0.3),
            "edits accumulate"
        );
        failed(&mut h, &d2, Failure::ScfNotConverged);
        let d3 = next_parameters(&p, &h, "s");
        assert_eq!(params_of(&d3)["occupations"], json!("smearing"));
        assert_eq!(params_of(&d3)["degauss"], json!(0.02));
        assert!(smearing_added_by_recovery(&h, params_of(&d3)));
        failed(&mut h, &d3, Failure::ScfNotConverged);
        let Decision::GiveUp(report) = next_parameters(&p, &h, "s") else {
            panic!("expected give-up");
        };
        assert!(
            report
                .reason
                .contains("no handler left for scf-not-converged"),
            "{}",
            report.reason
        );
        assert_eq!(report.attempts.len(), 4);
        let text = report.to_string();
        assert!(
            text.contains("attempt 3 [smearing]") && text.contains("mixing_mode='local-TF'"),
            "{text}"
        );
    }

    #[test]
    fn cholesky_goes_to_cg_then_gives_up() {
        let p = default_policy();
        let mut h = start(&p);
        let d0 = next_parameters(&p, &h, "s");
        failed(&mut h, &d0, Failure::Diagonalization);
        let d1 = next_parameters(&p, &h, "s");
        assert_eq!(params_of(&d1)["diagonalization"], json!("cg"));
        failed(&mut h, &d1, Failure::Diagonalization);
        assert!(matches!(next_parameters(&p, &h, "s"), Decision::GiveUp(_)));
    }

    #[test]
    fn budget_ends_a_persistent_failure() {
        let mut p = default_policy();
        p.handlers.push(Handler {
            name: Some("again".into()),
            matches: MatchSpec::One(Failure::NonzeroExit),
            set: BTreeMap::new(),
            restart: Restart::ChargeDensity,
            max_uses: 100,
        });
        let mut h = start(&p);
        for _ in 0..5 {
            let d = next_parameters(&p, &h, "stubborn");
            failed(&mut h, &d, Failure::NonzeroExit);
        }
        let Decision::GiveUp(report) = next_parameters(&p, &h, "stubborn") else {
            panic!()
        };
        assert_eq!(report.attempts.len(), 5);
        assert!(report.reason.contains("budget"), "{}", report.reason);
    }

    #[test]
    fn walltime_restarts_fully() {
        let p = default_policy();
        let mut h = start(&p);
        let d0 = next_parameters(&p, &h, "s");
        failed(&mut h, &d0, Failure::Walltime);
        let Decision::Retry {
            restart, params, ..
        } = next_parameters(&p, &h, "s")
        else {
            panic!()
        };
        assert_eq!(restart, Restart::Full);
        assert_eq!(params, h.initial);
    }

    #[test]
    fn more_bands_from_the_reported_nbnd() {
        let p = default_policy();
        let mut h = start(&p);
        let d0 = next_parameters(&p, &h, "s");
        failed(&mut h, &d0, Failure::HighestBandOccupied);
        h.attempts[0].observed.insert("nbnd".into(), json!(8));
        let Decision::Retry {
            restart, params, ..
        } = next_parameters(&p, &h, "s")
        else {
            panic!()
        };
        assert_eq!(params["nbnd"], json!(12));
        assert_eq!(restart, Restart::ChargeDensity);
    }

    #[test]
    fn allow_smearing_false_removes_the_smearing_handler() {
        let p = default_policy().without_smearing();
        assert!(p.handlers.iter().all(|h| !h.changes_smearing()));
        let mut h = start(&p);
        for _ in 0..3 {
            let d = next_parameters(&p, &h, "s");
            failed(&mut h, &d, Failure::ScfNotConverged);
        }
        assert!(matches!(next_parameters(&p, &h, "s"), Decision::GiveUp(_)));
    }

    #[test]
    fn diagonalization_cycle_policy() {
        let p = RecoveryPolicy::from_spec(
            &RecoverySpec::Named("diagonalization-cycle".into()),
            Path::new("."),
        )
        .unwrap();
        let mut h = start(&p);
        let mut seen = vec![];
        loop {
            let d = next_parameters(&p, &h, "s");
            let Decision::Retry { params, .. } = &d else {
                break;
            };
            seen.push(
                params
                    .get("diagonalization")
                    .cloned()
                    .unwrap_or(json!("david")),
            );
            failed(&mut h, &d, Failure::Diagonalization);
        }
        assert_eq!(
            seen,
            vec![json!("david"), json!("ppcg"), json!("paro"), json!("cg")]
        );
    }

    #[test]
    fn inline_handlers_and_validation() {
        let spec: RecoverySpec = serde_json::from_value(json!([
            {"match": "scf-not-converged", "set": {"electron_maxstep": 200, "mixing_beta": {"multiply": 0.5}}, "max_uses": 2}
        ]))
        .unwrap();
        let p = RecoveryPolicy::from_spec(&spec, Path::new(".")).unwrap();
        assert_eq!(p.handlers[0].name.as_deref(), Some("scf-not-converged-1"));
        let mut h = start(&p);
        let d0 = next_parameters(&p, &h, "s");
        failed(&mut h, &d0, Failure::ScfNotConverged);
        let d1 = next_parameters(&p, &h, "s");
        assert_eq!(params_of(&d1)["mixing_beta"], json!(0.35));
        assert_eq!(params_of(&d1)["electron_maxstep"], json!(200));

        let bad: RecoverySpec = serde_json::from_value(
            json!([{"match": "scf-not-converged", "set": {"mixing_betta": 0.1}}]),
        )
        .unwrap();
        let e = RecoveryPolicy::from_spec(&bad, Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("mixing_betta"), "{e}");
        let unknown: Result<RecoverySpec, _> = serde_json::from_value(
            json!([{"match": "cholesky", "set": {"diagonalization": "cg"}}]),
        );
        assert!(
            unknown.is_err()
                || RecoveryPolicy::from_spec(&unknown.unwrap(), Path::new(".")).is_err()
        );
        assert!(
            RecoveryPolicy::from_spec(&RecoverySpec::Named("nope".into()), Path::new(".")).is_err()
        );
    }

    #[test]
    fn describe_is_readable() {
        let lines = default_policy().describe();
        let text = lines.join("\n");
        assert!(text.contains("at most 5 attempts"), "{text}");
        assert!(
            text.contains("on scf-not-converged → mixing_beta = 0.3"),
            "{text}"
        );
        assert!(
            text.contains("on diagonalization → diagonalization = 'cg'"),
            "{text}"
        );
    }

    #[test]
    fn resume_after_interruption_continues_the_policy() {
        let p = default_policy();
        let mut h = start(&p);
        let d0 = next_parameters(&p, &h, "s");
        failed(&mut h, &d0, Failure::ScfNotConverged);
        let d1 = next_parameters(&p, &h, "s");
        failed(&mut h, &d1, Failure::ScfNotConverged);
        let json = serde_json::to_string(&h).unwrap();
        let resumed: History = serde_json::from_str(&json).unwrap();
        assert_eq!(
            params_of(&next_parameters(&p, &resumed, "s"))["mixing_mode"],
            json!("local-TF")
        );
    }
}
