//! Every call to a Slurm command goes through [`SlurmCli`]: it waits for the shared rate
//! limiter, runs the program without a shell, and retries transient failures
//! ("Socket timed out", "Resource temporarily unavailable", "Unexpected message") with
//! jittered exponential backoff.

use crate::rate_limit::RateLimiter;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a finished Slurm command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A Slurm command that could not be run or kept failing.
#[derive(Debug, thiserror::Error)]
pub enum SlurmCommandError {
    #[error("cannot run `{program}`: {source} (is Slurm installed and on PATH?)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` kept failing with a transient error after {attempts} attempts: {stderr}")]
    TransientExhausted {
        command: String,
        attempts: u32,
        stderr: String,
    },
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransientRetry {
    /// Total attempts, the first included (at least 1).
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for TransientRetry {
    fn default() -> Self {
        TransientRetry {
            attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Whether Slurm's message describes a passing condition (an overloaded or restarting
/// slurmctld) rather than a real refusal.
pub fn is_transient(stderr: &str) -> bool {
    const MARKERS: [&str; 7] = [
        "Socket timed out",
        "Resource temporarily unavailable",
        "Unexpected message",
        "Unable to contact slurm controller",
        "Connection refused",
        "Transport endpoint is not connected",
        "slurm_receive_msg: Zero Bytes were transmitted or received",
    ];
    MARKERS.iter().any(|m| stderr.contains(m))
}

/// Delay before retry number `retry` (1-based): `base * 2^(retry-1)` capped at `max`, then
/// scaled by `jitter` in [0, 1) to a value in [50 %, 100 %) of that ("equal jitter"), so
/// many drivers do not retry in step.
pub fn backoff_delay(retry: u32, policy: &TransientRetry, jitter: f64) -> Duration {
    let exponent = retry.saturating_sub(1).min(20);
    let full = policy
        .base_delay
        .saturating_mul(1u32 << exponent)
        .min(policy.max_delay);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// Runs Slurm commands: rate-limited, transient failures retried, calls counted.
/// With `FLOW_SLURM_TRACE` set in the environment every call is printed on stderr.
#[derive(Debug, Clone)]
pub struct SlurmCli {
    limiter: RateLimiter,
    retry: TransientRetry,
    bin_dir: Option<PathBuf>,
    calls: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl SlurmCli {
    /// Commands are looked up in `bin_dir` when given, on `PATH` otherwise.
    pub fn new(limiter: RateLimiter, retry: TransientRetry, bin_dir: Option<PathBuf>) -> Self {
        SlurmCli {
            limiter,
            retry,
            bin_dir,
            calls: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Run `program args...` (no shell), with `SLURM_TIME_FORMAT=%s` so times are Unix
    /// seconds. A non-zero exit that is not transient is returned
    /// as an output with `success == false` for the caller to interpret; transient failures
    /// are retried, and an error is returned when they persist or the program cannot start.
    pub fn run(&self, program: &str, args: &[String]) -> Result<CommandOutput, SlurmCommandError> {
        let path = match &self.bin_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let attempts = self.retry.attempts.max(1);
        let mut last_stderr = String::new();
        for attempt in 1..=attempts {
            self.limiter.acquire();
            self.count(program);
            if std::env::var_os("FLOW_SLURM_TRACE").is_some() {
                eprintln!("slurm call: {program} {args:?}");
            }
            let output = Command::new(&path)
                .args(args)
                .env("SLURM_TIME_FORMAT", "%s")
                .output()
                .map_err(|source| SlurmCommandError::Spawn {
                    program: path.display().to_string(),
                    source,
                })?;
            let result = CommandOutput {
                success: output.status.success(),
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            };
            if result.success || !is_transient(&result.stderr) {
                return Ok(result);
            }
            last_stderr = result.stderr.trim().to_string();
            if attempt < attempts {
                std::thread::sleep(backoff_delay(attempt, &self.retry, fastrand::f64()));
            }
        }
        Err(SlurmCommandError::TransientExhausted {
            command: format!("{program} {}", args.join(" ")),
            attempts,
            stderr: last_stderr,
        })
    }

    /// How many times each program was called (attempts included), e.g. `{"sbatch": 40}`.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        match self.calls.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn count(&self, program: &str) {
        let mut calls = match self.calls.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *calls.entry(program.to_string()).or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_messages() {
        assert!(is_transient(
            "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"
        ));
        assert!(is_transient(
            "squeue: error: Resource temporarily unavailable"
        ));
        assert!(is_transient(
            "slurm_load_jobs error: Unexpected message received"
        ));
        assert!(!is_transient(
            "sbatch: error: Batch job submission failed: Invalid partition name specified"
        ));
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let policy = TransientRetry {
            attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
        };
        assert_eq!(backoff_delay(1, &policy, 0.0), Duration::from_millis(500));
        assert_eq!(backoff_delay(1, &policy, 1.0), Duration::from_secs(1));
        assert_eq!(backoff_delay(3, &policy, 1.0), Duration::from_secs(4));
        assert_eq!(backoff_delay(8, &policy, 1.0), Duration::from_secs(10));
        assert_eq!(backoff_delay(8, &policy, 0.0), Duration::from_secs(5));
    }
}
