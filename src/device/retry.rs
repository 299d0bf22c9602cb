//! When and how long to wait before trying a failed request again.
//!
//! Only transient failures are retried (the device did not answer, answered 5xx/429, or
//! sent garbage); refused logins and validation errors never are. Backoff is
//! exponential with full jitter, so threads that failed together do not come back
//! together, and a `Retry-After` from the device is honoured. A run-wide budget caps
//! retries at a fraction of the requests made, so a dying device cannot multiply the
//! traffic on a building's network: past it, failures stand and are reported.

use super::breaker::Breaker;
use super::DeviceError;
use crate::device::telemetry::DeviceTelemetry;
use crate::i18n::{tr, Msg};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Retries always allowed, before the ratio applies: a short run with a few
/// hiccups must not fail for lack of budget.
const BUDGET_FLOOR: u64 = 100;
/// Retries allowed per request made, beyond the floor. 0.25: a device may need a quarter
/// more traffic than the minimum; a run needing more is failing, not unlucky.
const BUDGET_RATIO: f64 = 0.25;
/// The longest wait before a retry, whatever the backoff or the device asks for.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Run-wide count of requests and retries, shared by every device of a run.
#[derive(Debug, Default)]
pub struct RetryBudget {
    requests: AtomicU64,
    retries: AtomicU64,
    warned: AtomicBool,
}

impl RetryBudget {
    /// Counts a request about to be sent (first tries and retries alike).
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn try_spend(&self) -> bool {
        let allowed =
            BUDGET_FLOOR + (self.requests.load(Ordering::Relaxed) as f64 * BUDGET_RATIO) as u64;
        let spent = self.retries.fetch_add(1, Ordering::Relaxed);
        if spent < allowed {
            return true;
        }
        self.retries.fetch_sub(1, Ordering::Relaxed);
        if !self.warned.swap(true, Ordering::Relaxed) {
            let requests = self.requests.load(Ordering::Relaxed);
            log::warn!(
                "{}",
                tr(
                    Msg::WarnRetryBudget,
                    &[("spent", &spent), ("requests", &requests)]
                )
            );
        }
        false
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// How hard to try a call that failed for a transient reason.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts after the first one. Default 3.
    pub retries: u32,
    /// First backoff; doubles per attempt, with full jitter. Default 100 ms.
    pub base_delay: Duration,
    /// Shared by all devices of a run.
    pub budget: Arc<RetryBudget>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            base_delay: Duration::from_millis(100),
            budget: Arc::new(RetryBudget::default()),
        }
    }
}

impl RetryPolicy {
    /// Whether attempt number `attempt` (0 = the first retry) may happen.
    pub fn allows(&self, attempt: u32) -> bool {
        attempt < self.retries && self.budget.try_spend()
    }

    /// Whether a call that failed with `error` is worth attempt number `attempt`:
    /// transient, within the retry count and the run's budget, and the device not
    /// declared unreachable by its breaker (which answers for it then). Every driver
    /// asks this one question.
    pub fn may_retry(&self, error: &DeviceError, attempt: u32, breaker: &Breaker) -> bool {
        error.is_transient() && !breaker.is_tripped() && self.allows(attempt)
    }

    /// Sleeps before retry `attempt` after `error`: full jitter over an exponential
    /// ceiling, or what the device asked for in `Retry-After` if that is longer.
    pub fn pause(&self, attempt: u32, error: &DeviceError, telemetry: &DeviceTelemetry) {
        telemetry.count_retry();
        let asked = asked_wait(error);
        let ceiling = self.base_delay.saturating_mul(1 << attempt.min(8));
        let millis = ceiling.as_millis().max(1) as u64;
        let jittered = Duration::from_millis(rand::random_range(0..=millis));
        std::thread::sleep(jittered.max(asked.unwrap_or_default()).min(MAX_PAUSE));
    }
}

/// How long the device asked us to wait before trying again (`Retry-After`), if it did.
fn asked_wait(error: &DeviceError) -> Option<Duration> {
    match error {
        DeviceError::Busy {
            retry_after: Some(seconds),
            ..
        } => Some(Duration::from_secs(*seconds)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_has_a_floor_then_follows_the_traffic() {
        let budget = RetryBudget::default();
        for _ in 0..BUDGET_FLOOR {
            assert!(budget.try_spend());
        }
        assert!(!budget.try_spend(), "no traffic, no more retries");
        for _ in 0..40 {
            budget.count_request();
        }
        assert_eq!((0..20).filter(|_| budget.try_spend()).count(), 10);
        assert_eq!(budget.retries(), BUDGET_FLOOR + 10);
    }

    #[test]
    fn retry_after_is_honoured_as_a_floor() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let started = std::time::Instant::now();
        let busy = DeviceError::Busy {
            status: 503,
            retry_after: Some(1),
        };
        policy.pause(0, &busy, &DeviceTelemetry::default());
        assert!(started.elapsed() >= Duration::from_secs(1));
    }
}
