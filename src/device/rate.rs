//! A per-device request rate limit (`--rate N`, or `rate` in the devices file): a token
//! bucket that lets a burst of up to one second's worth of requests through, then
//! spaces them out. Waiting happens outside the lock, in the thread that wants to send.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// At most `rate` requests per second on average.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    capacity: f64,
    bucket: Mutex<Bucket>,
}

impl RateLimit {
    /// A limit of `rate` requests per second (must be positive).
    pub fn new(rate: f64) -> RateLimit {
        let capacity = rate.max(1.0);
        RateLimit {
            rate,
            capacity,
            bucket: Mutex::new(Bucket {
                tokens: capacity,
                last: Instant::now(),
            }),
        }
    }

    /// Waits until a request may be sent, then takes its token.
    pub fn acquire(&self) {
        let wait = {
            let mut bucket = self.bucket.lock().expect("rate lock");
            let now = Instant::now();
            let refill = now.duration_since(bucket.last).as_secs_f64() * self.rate;
            bucket.tokens = (bucket.tokens + refill).min(self.capacity);
            bucket.last = now;
            bucket.tokens -= 1.0;
            if bucket.tokens >= 0.0 {
                Duration::ZERO
            } else {
                // The token is taken now (reserved); the debt is paid by waiting.
                Duration::from_secs_f64(-bucket.tokens / self.rate)
            }
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn requests_beyond_the_burst_are_spaced_out() {
        // 20/s with a burst of 20: 30 requests from 3 threads need at least 0.5 s.
        let limit = Arc::new(RateLimit::new(20.0));
        let started = Instant::now();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let limit = Arc::clone(&limit);
                std::thread::spawn(move || (0..10).for_each(|_| limit.acquire()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(
            started.elapsed() >= Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
    }
}
