//! One token bucket shared by every call flow makes to Slurm (sbatch, squeue, sacct,
//! scontrol, scancel), so a campaign never floods slurmctld, and by every call to the
//! Kubernetes API. The rate itself is a setting ([`flow_dsl::quantity::Rate`]).

use flow_dsl::quantity::Rate;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bucket's arithmetic, free of clocks: tokens refill at `rate`, up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucketState {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl TokenBucketState {
    /// A full bucket at `now`. `burst` is at least 1.
    pub fn new(rate: Rate, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucketState {
            tokens: burst,
            burst,
            per_second: rate.per_second(),
            last: now,
        }
    }

    /// Take one token at `now`: `Duration::ZERO` when granted, otherwise how long to wait
    /// before asking again (nothing is taken then).
    pub fn try_take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = now.max(self.last);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
        }
    }
}

/// A thread-safe token bucket; clones share the same tokens.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    state: Arc<Mutex<TokenBucketState>>,
}

impl RateLimiter {
    /// A limiter allowing `rate` on average and bursts of `burst` calls.
    pub fn new(rate: Rate, burst: u32) -> Self {
        RateLimiter {
            state: Arc::new(Mutex::new(TokenBucketState::new(
                rate,
                burst,
                Instant::now(),
            ))),
        }
    }

    /// Block until a token is available, then take it. Returns the time spent waiting.
    pub fn acquire(&self) -> Duration {
        let start = Instant::now();
        loop {
            let wait = {
                let mut state = match self.state.lock() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                state.try_take(Instant::now())
            };
            if wait.is_zero() {
                return start.elapsed();
            }
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucketState::new(Rate::parse("2/s").unwrap(), 3, start);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(start), Duration::ZERO);
        }
        let wait = bucket.try_take(start);
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert_eq!(
            bucket.try_take(start + Duration::from_millis(500)),
            Duration::ZERO
        );
        assert!(!bucket
            .try_take(start + Duration::from_millis(600))
            .is_zero());
        // Long idle periods refill only up to the burst.
        let later = start + Duration::from_secs(100);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(later), Duration::ZERO);
        }
        assert!(!bucket.try_take(later).is_zero());
    }

    #[test]
    fn shared_limiter_paces_calls() {
        let limiter = RateLimiter::new(Rate::parse("20/s").unwrap(), 1);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.clone().acquire();
        }
        // 1 immediate + 4 spaced by 50 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
    }
}
