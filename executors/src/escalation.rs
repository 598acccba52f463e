//! Escalation of resources on retry: a task that hit its wall-clock limit (TIMEOUT) or its
//! memory limit (OUT_OF_MEMORY) gets more of that resource on the next attempt, within a cap.
//!
//! Written in a step's execution settings as
//! `on_retry: {time: x2, mem: x1.5, max_time: 24h, max_mem: 256G}`.

use crate::slurm::time_format::parse_human_duration;
use crate::launch::Resources;
use flow_dsl::error_class::ErrorClass;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// How resources grow when an attempt fails for lack of them.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct OnRetry {
    /// Factor applied to the wall-clock limit after a `walltime` failure (`x2` or `2`).
    #[serde(default, deserialize_with = "factor")]
    pub time: Option<f64>,
    /// Factor applied to the memory after an `out-of-memory` failure (`x1.5` or `1.5`).
    #[serde(default, deserialize_with = "factor")]
    pub mem: Option<f64>,
    /// Upper bound of the escalated wall-clock limit (`24h`, `1-00:00:00`).
    #[serde(default, deserialize_with = "duration")]
    pub max_time: Option<Duration>,
    /// Upper bound of the escalated memory (`256G`, `64000M`; MiB when a bare number).
    #[serde(default, deserialize_with = "memory")]
    pub max_mem: Option<u64>,
}

/// The resources for the next attempt and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub resources: Resources,
    /// The limit grew.
    pub escalated: bool,
    /// The limit wanted to grow but the cap (or the absence of a known limit) stopped it.
    pub at_cap: bool,
}

/// Resources for the attempt after one that failed with `class`. Only `walltime` (time)
/// and `out-of-memory` (mem) escalate, and only when the policy has a factor for them and
/// the failed attempt had a limit to scale; every other class returns the resources as they
/// were. Factors below 1 are treated as 1; results are capped by `max_time` / `max_mem`.
pub fn escalate(previous: &Resources, policy: &OnRetry, class: ErrorClass) -> Escalation {
    let mut resources = previous.clone();
    let mut escalated = false;
    let mut at_cap = false;
    match class {
        ErrorClass::Walltime => {
            if let (Some(factor), Some(limit)) = (policy.time, previous.time_limit) {
                let mut next = Duration::from_secs_f64(limit.as_secs_f64() * factor.max(1.0));
                if let Some(cap) = policy.max_time {
                    if next >= cap {
                        next = cap.max(limit);
                        at_cap = true;
                    }
                }
                escalated = next > limit;
                resources.time_limit = Some(next);
            } else if policy.time.is_some() {
                at_cap = true;
            }
        }
        ErrorClass::OutOfMemory => {
            if let Some(factor) = policy.mem {
                if previous.mem_mb > 0 {
                    let mut next = (previous.mem_mb as f64 * factor.max(1.0)).ceil() as u64;
                    if let Some(cap) = policy.max_mem {
                        if next >= cap {
                            next = cap.max(previous.mem_mb);
                            at_cap = true;
                        }
                    }
                    escalated = next > previous.mem_mb;
                    resources.mem_mb = next;
                } else {
                    at_cap = true;
                }
            }
        }
        _ => {}
    }
    Escalation {
        resources,
        escalated,
        at_cap,
    }
}

/// Parse a memory size as Slurm's `--mem` takes it: a number with an optional `K`, `M`, `G`
/// or `T` suffix (binary units; bare numbers are MiB). Returns MiB.
pub fn parse_memory_mb(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let bad = || format!("unreadable memory size `{text}` (expected e.g. 4000, 500M, 32G)");
    let upper = trimmed.to_ascii_uppercase();
    let upper = upper.trim_end_matches('B').trim_end_matches('I');
    let (number, scale) = match upper.chars().last() {
        Some('K') => (&upper[..upper.len() - 1], 1.0 / 1024.0),
        Some('M') => (&upper[..upper.len() - 1], 1.0),
        Some('G') => (&upper[..upper.len() - 1], 1024.0),
        Some('T') => (&upper[..upper.len() - 1], 1024.0 * 1024.0),
        Some(c) if c.is_ascii_digit() => (upper, 1.0),
        _ => return Err(bad()),
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad());
    }
    Ok((value * scale).ceil() as u64)
}

fn factor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    let value = match Option::<Raw>::deserialize(d)? {
        None => return Ok(None),
        Some(Raw::Number(n)) => n,
        Some(Raw::Text(t)) => t
            .trim()
            .trim_start_matches(['x', 'X', '*'])
            .parse()
            .map_err(|_| {
                serde::de::Error::custom(format!("`{t}` is not a factor like x2 or x1.5"))
            })?,
    };
    if !(value.is_finite() && value >= 1.0) {
        return Err(serde::de::Error::custom(format!(
            "escalation factor {value} must be at least 1"
        )));
    }
    Ok(Some(value))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|t| parse_human_duration(&t).map_err(serde::de::Error::custom))
        .transpose()
}

fn memory<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Number(n)) => Ok(Some(n)),
        Some(Raw::Text(t)) => parse_memory_mb(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OnRetry {
        serde_json::from_str(r#"{"time": "x2", "mem": "x1.5", "max_time": "24h"}"#).unwrap()
    }

    fn resources(hours: u64, mem_mb: u64) -> Resources {
        Resources {
            time_limit: Some(Duration::from_secs(hours * 3600)),
            mem_mb,
            ..Resources::default()
        }
    }

    #[test]
    fn walltime_doubles_time_until_the_cap() {
        let e = escalate(&resources(2, 1000), &policy(), ErrorClass::Walltime);
        assert!(e.escalated);
        assert_eq!(e.resources.time_limit, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(e.resources.mem_mb, 1000);

        let e = escalate(&resources(16, 1000), &policy(), ErrorClass::Walltime);
        assert_eq!(e.resources.time_limit, Some(Duration::from_secs(24 * 3600)));
        assert!(e.escalated && e.at_cap);

        let e = escalate(&resources(24, 1000), &policy(), ErrorClass::Walltime);
        assert!(!e.escalated && e.at_cap);
    }

    #[test]
    fn out_of_memory_grows_memory() {
        let e = escalate(&resources(2, 1000), &policy(), ErrorClass::OutOfMemory);
        assert_eq!(e.resources.mem_mb, 1500);
        assert_eq!(e.resources.time_limit, Some(Duration::from_secs(7200)));
        assert!(e.escalated && !e.at_cap);
    }

    #[test]
    fn other_classes_change_nothing() {
        for class in [
            ErrorClass::NonzeroExit,
            ErrorClass::NodeFailure,
            ErrorClass::Cancelled,
        ] {
            let e = escalate(&resources(2, 1000), &policy(), class);
            assert_eq!(e.resources, resources(2, 1000));
            assert!(!e.escalated && !e.at_cap);
        }
    }

    #[test]
    fn policy_parsing() {
        let p: OnRetry = serde_json::from_str(r#"{"time": 3, "max_mem": "64G"}"#).unwrap();
        assert_eq!(p.time, Some(3.0));
        assert_eq!(p.max_mem, Some(65536));
        assert!(serde_json::from_str::<OnRetry>(r#"{"time": "x0.5"}"#).is_err());
        assert!(serde_json::from_str::<OnRetry>(r#"{"tme": "x2"}"#).is_err());
        assert_eq!(parse_memory_mb("500M").unwrap(), 500);
        assert_eq!(parse_memory_mb("1.5G").unwrap(), 1536);
        assert_eq!(parse_memory_mb("4000").unwrap(), 4000);
        assert!(parse_memory_mb("lots").is_err());
    }
}
