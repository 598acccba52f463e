//! The calls flow makes to the Kubernetes API, each under one rate limiter and retried with
//! jittered exponential backoff on answers that say "later" (429, 5xx) or on a connection
//! that failed. Everything else (404, 409, 422, ...) goes back to the caller at once.

use crate::rate_limit::RateLimiter;
use flow_dsl::quantity::Rate;
use std::future::Future;
use std::time::Duration;

/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 6;
/// First backoff; doubled per attempt, jittered by ±50 %, capped at [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The status code of an API answer, when the error is one.
pub fn api_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Whether trying the same call again may succeed: throttling, a server error, or the
/// connection itself.
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The wait before attempt `attempt + 1` (attempt counts from 1).
pub fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
        .min(MAX_BACKOFF);
    base.mul_f64(0.5 + fastrand::f64())
}

/// Builds the client and paces every call.
#[derive(Clone)]
pub struct Api {
    pub client: kube::Client,
    limiter: RateLimiter,
}

impl Api {
    /// A client from the kubeconfig (`KUBECONFIG`, else `~/.kube/config`; `context` picks
    /// one), else the in-cluster service account.
    pub async fn connect(context: Option<&str>, requests_per_second: u32) -> Result<Api, String> {
        let config = match context {
            Some(context) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                context: Some(context.to_string()),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("kubeconfig context {context:?}: {e}"))?,
            None => kube::Config::infer().await.map_err(|e| {
                format!(
                    "no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {e}"
                )
            })?,
        };
        let client =
            kube::Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))?;
        let rate = Rate {
            calls: f64::from(requests_per_second.max(1)),
            per: Duration::from_secs(1),
        };
        Ok(Api {
            client,
            limiter: RateLimiter::new(rate, requests_per_second.max(1)),
        })
    }

    /// Run `call` under the limiter, retrying transient failures.
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut attempt = 1;
        loop {
            self.limiter.acquire();
            match call().await {
                Err(e) if is_transient(&e) && attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stops_at_the_cap() {
        for attempt in 1..=12 {
            let nominal = FIRST_BACKOFF
                .saturating_mul(1 << (attempt - 1).min(10))
                .min(MAX_BACKOFF);
            let wait = backoff(attempt);
            assert!(wait >= nominal.mul_f64(0.5) && wait <= nominal.mul_f64(1.5));
        }
    }

    #[test]
    fn only_throttling_and_server_errors_are_retried() {
        let api = |code| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("x", "y").with_code(code),
            ))
        };
        assert!(is_transient(&api(429)));
        assert!(is_transient(&api(500)));
        assert!(is_transient(&api(503)));
        assert!(!is_transient(&api(409)));
        assert!(!is_transient(&api(404)));
        assert!(!is_transient(&api(422)));
    }
}
