//! Live measurements of each device, shared by the threads that talk to it and read by
//! whoever shows them (the dashboard, `/metrics`, the benchmark).
//!
//! Counters are atomics and the latency histogram sits behind a short lock, so recording
//! costs a worker next to nothing; the reporter thread keeps the per-pair outcome
//! counts, this module keeps what happens per *request*: how many are in flight, how
//! long they take, how many were retries, the last error, the breaker's state.

use crate::device::tls::Fingerprint;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

thread_local! {
    /// Retries made by this thread, on any device. Drivers retry synchronously in the
    /// worker that runs the job, so the difference across one job is that job's retries
    /// exactly, even when other jobs of the same device run at the same time.
    static RETRIES_ON_THIS_THREAD: Cell<u64> = const { Cell::new(0) };
}

/// How many retries this thread has made so far (see [`DeviceTelemetry::count_retry`]).
pub fn retries_on_this_thread() -> u64 {
    RETRIES_ON_THIS_THREAD.with(Cell::get)
}

/// Upper bounds of the latency buckets, in milliseconds (the last bucket is +Inf).
/// Spread from loopback (1 ms) to the 30 s request timeout.
pub const LATENCY_BUCKETS_MS: [u64; 14] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
];

/// A fixed-bucket latency histogram (Prometheus style: cumulative on export).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Count per bucket, not cumulative; index `LATENCY_BUCKETS_MS.len()` is +Inf.
    pub counts: [u64; LATENCY_BUCKETS_MS.len() + 1],
    pub total: u64,
    pub sum: Duration,
}

impl Histogram {
    pub fn observe(&mut self, latency: Duration) {
        let ms = latency.as_secs_f64() * 1000.0;
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound as f64)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.counts[bucket] += 1;
        self.total += 1;
        self.sum += latency;
    }

    /// The upper bound of the bucket holding the `q` quantile (0..=1), or `None` when
    /// nothing was observed. Bucket resolution is what a dashboard needs.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(LATENCY_BUCKETS_MS.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }
}

/// The state of a device's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl BreakerState {
    pub fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "ok",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// What is measured about one device during a run.
#[derive(Debug, Default)]
pub struct DeviceTelemetry {
    pub in_flight: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    /// Face photos the device stored in this run.
    pub photos_sent: AtomicU64,
    /// Face photos that could not go on the device: refused by it, or not fit for its
    /// family (too small, unreadable).
    pub photos_refused: AtomicU64,
    breaker: AtomicU8,
    latency: Mutex<Histogram>,
    last_error: Mutex<Option<String>>,
    /// The certificate an https device presented in its last TLS handshake, written by
    /// the TLS verifier itself (so even a refused one is known).
    certificate: Arc<Mutex<Option<Fingerprint>>>,
}

impl DeviceTelemetry {
    /// Marks a request as started; the guard marks it finished and records its latency.
    pub fn start_request(&self) -> RequestGuard<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            telemetry: self,
            started: std::time::Instant::now(),
        }
    }

    pub fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        RETRIES_ON_THIS_THREAD.with(|count| count.set(count.get() + 1));
    }

    /// The fingerprint of the certificate the device presented last, trusted or not;
    /// `None` before a handshake, and always for http devices.
    pub fn certificate(&self) -> Option<Fingerprint> {
        *self.certificate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the TLS verifier writes the presented certificate.
    pub fn certificate_slot(&self) -> Arc<Mutex<Option<Fingerprint>>> {
        Arc::clone(&self.certificate)
    }

    pub fn set_last_error(&self, error: &str) {
        *self.last_error.lock().expect("telemetry lock") = Some(error.to_string());
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("telemetry lock").clone()
    }

    pub fn latency(&self) -> Histogram {
        self.latency.lock().expect("telemetry lock").clone()
    }

    pub fn set_breaker(&self, state: BreakerState) {
        self.breaker.store(state as u8, Ordering::Relaxed);
    }

    pub fn breaker(&self) -> BreakerState {
        match self.breaker.load(Ordering::Relaxed) {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

/// Ends a request's measurement when dropped (also when the request failed).
pub struct RequestGuard<'a> {
    telemetry: &'a DeviceTelemetry,
    started: std::time::Instant,
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.telemetry.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.telemetry
            .latency
            .lock()
            .expect("telemetry lock")
            .observe(self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_bucket_bounds() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for _ in 0..90 {
            h.observe(Duration::from_millis(3));
        }
        for _ in 0..10 {
            h.observe(Duration::from_millis(400));
        }
        assert_eq!(h.quantile_ms(0.5), Some(5));
        assert_eq!(h.quantile_ms(0.95), Some(500));
        assert_eq!(h.total, 100);
    }

    #[test]
    fn the_guard_counts_in_flight_requests() {
        let t = DeviceTelemetry::default();
        {
            let _a = t.start_request();
            let _b = t.start_request();
            assert_eq!(t.in_flight.load(Ordering::Relaxed), 2);
        }
        assert_eq!(t.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(t.requests.load(Ordering::Relaxed), 2);
        assert_eq!(t.latency().total, 2);
    }
}
