//! The pure core of a task's life: states, and what an attempt's outcome leads to.
//! No I/O here; the scheduler applies these decisions and the state store persists them.

use flow_dsl::error_class::ErrorClass;
use flow_dsl::model::Execution;
use std::time::Duration;

/// Where a task stands. Stored as text in the state database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskState {
    /// Waiting for its dependencies, a slot, or a retry delay.
    Pending,
    /// Handed to the executor.
    Running,
    Succeeded,
    /// Failed for good (retries exhausted or not retryable).
    Failed,
    /// Will not run because an upstream step failed or a gate stopped the campaign.
    Blocked,
    /// Stopped by the user.
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 6] = [
        TaskState::Pending,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Blocked,
        TaskState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Blocked => "blocked",
            TaskState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Succeeded, failed, blocked or cancelled: nothing more will happen without `flow retry`.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Blocked | TaskState::Cancelled
        )
    }
}

/// What the scheduler does after an attempt ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Succeeded,
    /// Run again after `delay`. `counts` says whether it used one of `max_retries`.
    Retry {
        delay: Duration,
        counts: bool,
    },
    Failed,
    Cancelled,
}

/// Counters a task carries between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryCounters {
    /// Retries that counted against `max_retries`.
    pub retries: u32,
    /// Retries after node failures/preemptions (their own cap).
    pub infrastructure_retries: u32,
}

/// Decide what follows an attempt with error class `class` (None: success).
/// `jitter` is a number in [0, 1) supplied by the caller (pure: no randomness here).
pub fn decide(
    class: Option<ErrorClass>,
    counters: RetryCounters,
    execution: &Execution,
    jitter: f64,
) -> Decision {
    let Some(class) = class else {
        return Decision::Succeeded;
    };
    if class == ErrorClass::Cancelled {
        return Decision::Cancelled;
    }
    if !class.is_retryable() {
        return Decision::Failed;
    }
    if class.is_infrastructure()
        && counters.infrastructure_retries < execution.max_infrastructure_retries
    {
        return Decision::Retry {
            delay: Duration::from_secs(1),
            counts: false,
        };
    }
    if counters.retries >= execution.max_retries {
        return Decision::Failed;
    }
    let base = execution.retry_backoff.delay(counters.retries + 1);
    let delay = if execution.retry_backoff.jitter {
        // "Equal jitter": half the delay fixed, half random, so retries of a batch that
        // failed together do not stampede back together.
        base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    } else {
        base
    };
    Decision::Retry {
        delay,
        counts: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow_dsl::model::{OnRetry, RetryBackoff};

    fn execution(max_retries: u32, jitter: bool) -> Execution {
        Execution {
            max_retries,
            retry_backoff: RetryBackoff {
                initial: Duration::from_secs(10),
                multiplier: 2.0,
                max: Duration::from_secs(60),
                jitter,
            },
            timeout: None,
            batch_size: None,
            max_running: None,
            max_infrastructure_retries: 2,
            on_retry: OnRetry::default(),
            max_log_bytes: None,
        }
    }

    #[test]
    fn success_and_exhaustion() {
        let e = execution(2, false);
        assert_eq!(
            decide(None, RetryCounters::default(), &e, 0.0),
            Decision::Succeeded
        );
        let c = |r| RetryCounters {
            retries: r,
            infrastructure_retries: 0,
        };
        assert_eq!(
            decide(Some(ErrorClass::NonzeroExit), c(0), &e, 0.0),
            Decision::Retry {
                delay: Duration::from_secs(10),
                counts: true
            }
        );
        assert_eq!(
            decide(Some(ErrorClass::NonzeroExit), c(1), &e, 0.0),
            Decision::Retry {
                delay: Duration::from_secs(20),
                counts: true
            }
        );
        assert_eq!(
            decide(Some(ErrorClass::NonzeroExit), c(2), &e, 0.0),
            Decision::Failed
        );
    }

    #[test]
    fn backoff_is_capped_and_jittered_within_bounds() {
        let e = execution(10, true);
        let c = RetryCounters {
            retries: 5,
            infrastructure_retries: 0,
        };
        for j in [0.0, 0.5, 0.999] {
            match decide(Some(ErrorClass::Timeout), c, &e, j) {
                Decision::Retry { delay, .. } => {
                    assert!(delay >= Duration::from_secs(30) && delay <= Duration::from_secs(60))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn infrastructure_failures_do_not_count_until_their_cap() {
        let e = execution(0, false);
        let c = RetryCounters {
            retries: 0,
            infrastructure_retries: 0,
        };
        assert_eq!(
            decide(Some(ErrorClass::NodeFailure), c, &e, 0.0),
            Decision::Retry {
                delay: Duration::from_secs(1),
                counts: false
            }
        );
        let c = RetryCounters {
            retries: 0,
            infrastructure_retries: 2,
        };
        assert_eq!(
            decide(Some(ErrorClass::Preempted), c, &e, 0.0),
            Decision::Failed
        );
    }

    #[test]
    fn cancellation_and_unretryable_classes() {
        let e = execution(5, false);
        assert_eq!(
            decide(
                Some(ErrorClass::Cancelled),
                RetryCounters::default(),
                &e,
                0.0
            ),
            Decision::Cancelled
        );
        assert_eq!(
            decide(
                Some(ErrorClass::LaunchFailed),
                RetryCounters::default(),
                &e,
                0.0
            ),
            Decision::Failed
        );
    }
}
