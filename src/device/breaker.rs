//! A circuit breaker per device, so a turnstile that is off or unplugged costs seconds,
//! not a timeout per person.
//!
//! Every request asks [`Breaker::admit`] first and reports whether the device answered
//! at all ([`Breaker::record`]; any HTTP answer, even a 503, proves it is there). After
//! `threshold` consecutive requests without an answer (refused, reset, timed out) the
//! breaker opens: requests fail at once with "device unreachable" until a cool-down has
//! passed; then one probe request is let through (half-open). An answer closes the
//! breaker and the device is back in the run; another failure reopens it with a longer
//! cool-down. The engine reads [`Breaker::blocked_until`] to set the device's jobs aside
//! while it is open instead of burning them.

use super::DeviceError;
use crate::device::telemetry::{BreakerState, DeviceTelemetry};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Consecutive requests without an answer that open the breaker. 5: more than one burst
/// of dropped connections from a busy device's small web server, few enough that a dead
/// device costs only a handful of requests.
pub const DEFAULT_THRESHOLD: u32 = 5;
/// First cool-down; doubles after each failed probe up to `MAX_COOLDOWN`. Short, because
/// a probe is one cheap request and a device back from a reboot should rejoin quickly.
const FIRST_COOLDOWN: Duration = Duration::from_millis(250);
const MAX_COOLDOWN: Duration = Duration::from_secs(4);

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    cooldown: Duration,
    probe_in_flight: bool,
    failed_probes: u32,
    last_failure: Option<String>,
}

/// One device's breaker. Shared by all threads talking to the device.
#[derive(Debug)]
pub struct Breaker {
    inner: Mutex<Inner>,
    threshold: u32,
    telemetry: Arc<DeviceTelemetry>,
}

impl Breaker {
    pub fn new(threshold: u32, telemetry: Arc<DeviceTelemetry>) -> Breaker {
        Breaker {
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                open_until: None,
                cooldown: FIRST_COOLDOWN,
                probe_in_flight: false,
                failed_probes: 0,
                last_failure: None,
            }),
            threshold: threshold.max(1),
            telemetry,
        }
    }

    /// Whether a request may be sent now.
    pub fn admit(&self) -> Result<(), DeviceError> {
        let mut inner = self.inner.lock().expect("breaker lock");
        match inner.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open => {
                if inner.open_until.is_some_and(|t| Instant::now() < t) {
                    Err(self.open_error(&inner))
                } else {
                    inner.state = BreakerState::HalfOpen;
                    inner.probe_in_flight = true;
                    self.telemetry.set_breaker(BreakerState::HalfOpen);
                    Ok(())
                }
            }
            BreakerState::HalfOpen => {
                if inner.probe_in_flight {
                    Err(self.open_error(&inner))
                } else {
                    inner.probe_in_flight = true;
                    Ok(())
                }
            }
        }
    }

    /// Records the end of an admitted request: `answered` is false when the device did
    /// not answer at all (connection refused, reset, timeout).
    pub fn record(&self, answered: bool, failure: Option<&DeviceError>) {
        let mut inner = self.inner.lock().expect("breaker lock");
        let was_probe = inner.state == BreakerState::HalfOpen;
        inner.probe_in_flight = false;
        if answered {
            if inner.state != BreakerState::Closed {
                log::info!("device answers again: back in the run");
            }
            inner.state = BreakerState::Closed;
            inner.consecutive_failures = 0;
            inner.failed_probes = 0;
            inner.cooldown = FIRST_COOLDOWN;
            inner.open_until = None;
            self.telemetry.set_breaker(BreakerState::Closed);
            return;
        }
        inner.consecutive_failures += 1;
        inner.last_failure = failure.map(ToString::to_string);
        if was_probe || inner.consecutive_failures >= self.threshold {
            if was_probe {
                inner.failed_probes += 1;
                inner.cooldown = (inner.cooldown * 2).min(MAX_COOLDOWN);
            }
            inner.state = BreakerState::Open;
            inner.open_until = Some(Instant::now() + inner.cooldown);
            self.telemetry.set_breaker(BreakerState::Open);
        }
    }

    /// While open and cooling down: when the next probe may go. `None` when requests
    /// may be sent (closed, or ready for a probe).
    pub fn blocked_until(&self) -> Option<Instant> {
        let inner = self.inner.lock().expect("breaker lock");
        match inner.state {
            BreakerState::Open => inner.open_until.filter(|t| Instant::now() < *t),
            BreakerState::HalfOpen if inner.probe_in_flight => {
                Some(Instant::now() + Duration::from_millis(20))
            }
            _ => None,
        }
    }

    /// Probes that failed since the breaker last closed.
    pub fn failed_probes(&self) -> u32 {
        self.inner.lock().expect("breaker lock").failed_probes
    }

    /// Whether the breaker is not closed (open or probing).
    pub fn is_tripped(&self) -> bool {
        self.inner.lock().expect("breaker lock").state != BreakerState::Closed
    }

    /// The error pairs of an unreachable device fail with.
    pub fn unreachable_error(&self) -> DeviceError {
        self.open_error(&self.inner.lock().expect("breaker lock"))
    }

    fn open_error(&self, inner: &Inner) -> DeviceError {
        DeviceError::Unreachable(format!(
            "device unreachable ({} requests in a row got no answer; last: {})",
            inner.consecutive_failures.max(self.threshold),
            inner.last_failure.as_deref().unwrap_or("no answer")
        ))
    }
}

/// Whether an error means the device did not answer at all (as opposed to answering
/// with an error, which proves it is there).
pub fn is_no_answer(error: &DeviceError) -> bool {
    matches!(
        error,
        DeviceError::Unreachable(_) | DeviceError::Timeout(_) | DeviceError::ConnectionLost(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(3, Arc::new(DeviceTelemetry::default()))
    }

    #[test]
    fn opens_after_consecutive_failures_and_fails_fast() {
        let b = breaker();
        let lost = DeviceError::Unreachable("connection refused".into());
        for _ in 0..2 {
            b.admit().unwrap();
            b.record(false, Some(&lost));
        }
        assert!(!b.is_tripped());
        b.admit().unwrap();
        b.record(false, Some(&lost));
        assert!(b.is_tripped());
        let err = b.admit().unwrap_err().to_string();
        assert!(
            err.contains("unreachable") && err.contains("connection refused"),
            "{err}"
        );
        assert!(b.blocked_until().is_some());
    }

    #[test]
    fn an_answer_resets_the_count() {
        let b = breaker();
        let lost = DeviceError::Timeout(30);
        for _ in 0..10 {
            b.admit().unwrap();
            b.record(false, Some(&lost));
            b.admit().unwrap_or(());
            b.record(true, None);
        }
        assert!(!b.is_tripped());
    }

    #[test]
    fn one_probe_after_the_cooldown_closes_it_again() {
        let b = breaker();
        let lost = DeviceError::Unreachable("refused".into());
        for _ in 0..3 {
            b.admit().unwrap();
            b.record(false, Some(&lost));
        }
        std::thread::sleep(FIRST_COOLDOWN + Duration::from_millis(20));
        b.admit().expect("the probe is let through");
        assert!(b.admit().is_err(), "only one probe at a time");
        b.record(true, None);
        assert!(!b.is_tripped());
        b.admit().unwrap();
    }
}
