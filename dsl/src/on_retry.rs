//! Escalation of resources on retry: a task that hit its wall-clock limit (`walltime`) or
//! its memory limit (`out-of-memory`) gets more of that resource on the next attempt,
//! within a cap. Written in a step's execution settings (or the machine's or campaign's
//! `defaults.execution`) as `on_retry: {time: x2, mem: x1.5, max_time: 24h, max_mem: 256G}`.
//!
//! The loader reads the block into [`OnRetry`] (errors located at the entry); the executors
//! apply it (`flow_executors::escalation::escalate`).

use crate::quantity::{parse_duration, parse_memory_mb};
use serde::{Deserialize, Deserializer, Serialize};
use std::time::Duration;

/// How resources grow when an attempt fails for lack of them. Nothing grows by default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnRetry {
    /// Factor applied to the wall-clock limit after a `walltime` failure (`time: x2`).
    #[serde(default, rename(deserialize = "time"), deserialize_with = "factor")]
    pub time_factor: Option<f64>,
    /// Factor applied to the memory after an `out-of-memory` failure (`mem: x1.5`).
    #[serde(default, rename(deserialize = "mem"), deserialize_with = "factor")]
    pub mem_factor: Option<f64>,
    /// Upper bound of the escalated wall-clock limit (`max_time: 24h`).
    #[serde(default, deserialize_with = "duration")]
    pub max_time: Option<Duration>,
    /// Upper bound of the escalated memory, MiB (`max_mem: 256G`; MiB when a bare number).
    #[serde(default, rename(deserialize = "max_mem"), deserialize_with = "memory")]
    pub max_mem_mb: Option<u64>,
}

/// `x2`, `x1.5` (also `2`, `*2`): at least 1.
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

/// A duration as text (`24h`) or whole seconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Seconds(s)) => Ok(Some(Duration::from_secs(s))),
        Some(Raw::Text(t)) => parse_duration(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// An amount of memory as text (`64G`) or MiB.
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

    #[test]
    fn policy_parsing() {
        let p: OnRetry = serde_json::from_str(r#"{"time": 3, "max_mem": "64G"}"#).unwrap();
        assert_eq!(p.time_factor, Some(3.0));
        assert_eq!(p.max_mem_mb, Some(65536));
        assert!(serde_json::from_str::<OnRetry>(r#"{"time": "x0.5"}"#).is_err());
        assert!(serde_json::from_str::<OnRetry>(r#"{"tme": "x2"}"#).is_err());
        assert_eq!(parse_memory_mb("500M").unwrap(), 500);
        assert_eq!(parse_memory_mb("1.5G").unwrap(), 1536);
        assert_eq!(parse_memory_mb("4000").unwrap(), 4000);
        assert!(parse_memory_mb("lots").is_err());
        let p: OnRetry =
            serde_json::from_str(r#"{"time": "x2", "mem": "x1.5", "max_time": "24h"}"#).unwrap();
        assert_eq!(p.mem_factor, Some(1.5));
        assert_eq!(p.max_time, Some(Duration::from_secs(24 * 3600)));
    }
}
