//! Escalation of resources on retry: a task that hit its wall-clock limit (TIMEOUT) or its
//! memory limit (OUT_OF_MEMORY) gets more of that resource on the next attempt, within a cap.
//! Every backend's retries go through it (the engine computes a retry's resources here).
//!
//! The policy is the step's `execution.on_retry`, [`OnRetry`], parsed by the DSL
//! (`on_retry: {time: x2, mem: x1.5, max_time: 24h, max_mem: 256G}`).

use crate::launch::Resources;
use flow_dsl::error_class::ErrorClass;
use flow_dsl::on_retry::OnRetry;
use std::time::Duration;

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
            if let (Some(factor), Some(limit)) = (policy.time_factor, previous.time_limit) {
                let mut next = Duration::from_secs_f64(limit.as_secs_f64() * factor.max(1.0));
                if let Some(cap) = policy.max_time {
                    if next >= cap {
                        next = cap.max(limit);
                        at_cap = true;
                    }
                }
                escalated = next > limit;
                resources.time_limit = Some(next);
            } else if policy.time_factor.is_some() {
                at_cap = true;
            }
        }
        ErrorClass::OutOfMemory => {
            if let Some(factor) = policy.mem_factor {
                if previous.mem_mb > 0 {
                    let mut next = (previous.mem_mb as f64 * factor.max(1.0)).ceil() as u64;
                    if let Some(cap) = policy.max_mem_mb {
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
}
