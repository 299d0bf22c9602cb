//! The live status of a run: what the dashboard, `/api/status` and `/metrics` show while
//! the run goes, and what `--metrics-file` writes at its end.
//!
//! The reporter thread stays the one owner of the counts: through [`LivePublisher`] (a
//! reporter [`Watch`]) it publishes a copy of them after each batch of outcomes, with
//! the failures of that batch, into [`LiveStatus`] behind a short lock. Readers take a
//! [`Status`] snapshot, which adds each device's request telemetry (in flight, latency,
//! retries, breaker, last error) read directly from its [`DeviceTelemetry`] atomics.
//! Nothing here slows a worker: workers never touch it.

use crate::device::telemetry::{DeviceTelemetry, Histogram};
use crate::device::DeviceInfo;
use crate::engine::Enrollment;
use crate::report::Counts;
use crate::reporter::{Settled, Watch};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How many failures the dashboard lists: the most recent ones; the report has them all.
pub const RECENT_FAILURES: usize = 20;

/// The rate (and so the ETA) is measured over this much recent time: long enough to
/// smooth batches of 100 pairs landing at once, short enough to follow a device that
/// slows down.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Where a run is. A run halted by `--max-failures` ends `Interrupted` too: it stopped
/// before every pair was tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Running,
    Finished,
    Interrupted,
}

/// A failed pair, as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RecentFailure {
    /// RFC 3339, UTC.
    pub time: String,
    pub device: String,
    pub registration: String,
    pub error: String,
}

struct Progress {
    per_device: Vec<Counts>,
    /// Operations per device, once the reporter said they differ from the participants
    /// (removals, people leaving).
    operations: Option<Vec<u64>>,
    done: u64,
    recent_failures: VecDeque<RecentFailure>,
    /// (when, pairs done then), over the last `RATE_WINDOW`.
    samples: VecDeque<(Instant, u64)>,
    phase: Phase,
    finished_after: Option<Duration>,
}

/// The published state of one run, shared by the reporter (writer) and the dashboard.
pub struct LiveStatus {
    started: Instant,
    started_at: SystemTime,
    participants: u64,
    /// The run's devices, by index, and their request telemetry.
    devices: Arc<[DeviceInfo]>,
    telemetry: Vec<Arc<DeviceTelemetry>>,
    /// Each device's site, in the central view of a run of many sites (`catraca status
    /// --dashboard`), where the devices are out of reach and their telemetry unknown.
    sites: Vec<Option<String>>,
    progress: Mutex<Progress>,
}

/// One device's line of the status.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    pub name: String,
    pub url: String,
    /// Its site, in the central view of a run of many sites; there the request
    /// figures (in flight, latency, retries, breaker) are not known and stay at zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Pairs of this device (every participant).
    pub operations: u64,
    /// Pairs of this device finished so far, in any category.
    pub done: u64,
    #[serde(flatten)]
    pub counts: Counts,
    pub in_flight: u64,
    pub requests: u64,
    pub retries: u64,
    /// Face photos the device stored, and those refused (see `device::faces`).
    pub photos_sent: u64,
    pub photos_refused: u64,
    /// Upper bound of the latency bucket holding the median, in ms; null before the
    /// first answer or beyond the last bucket.
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
    /// `ok`, `open` or `half-open`.
    pub breaker: &'static str,
    pub last_error: Option<String>,
    /// The whole histogram, for `/metrics`.
    #[serde(skip)]
    pub latency: Histogram,
}

/// A snapshot of the run: the body of `/api/status` (keys are a stable interface).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// `running`, `finished`, or `interrupted` (Ctrl-C, or halted by `--max-failures`).
    pub phase: Phase,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub elapsed_ms: u64,
    pub participants: u64,
    pub operations: u64,
    pub done: u64,
    /// Pairs per second over the last 10 s (over the whole run once it ended).
    pub rate_per_s: f64,
    /// Seconds left at that rate; null when nothing moves or the run ended.
    pub eta_s: Option<f64>,
    pub totals: Counts,
    pub devices: Vec<DeviceStatus>,
    /// The most recent failures, newest first (at most 20).
    pub recent_failures: Vec<RecentFailure>,
}

impl LiveStatus {
    /// A run of `participants` people on `devices` (with each one's telemetry),
    /// starting now.
    pub fn new(
        participants: usize,
        devices: Arc<[DeviceInfo]>,
        telemetry: Vec<Arc<DeviceTelemetry>>,
    ) -> Arc<LiveStatus> {
        let started = Instant::now();
        Arc::new(LiveStatus {
            started,
            started_at: SystemTime::now(),
            participants: participants as u64,
            progress: Mutex::new(Progress {
                per_device: vec![Counts::default(); devices.len()],
                operations: None,
                done: 0,
                recent_failures: VecDeque::new(),
                samples: VecDeque::from([(started, 0)]),
                phase: Phase::Running,
                finished_after: None,
            }),
            sites: vec![None; devices.len()],
            devices,
            telemetry,
        })
    }

    /// The central view of a run of many sites: `devices` at `sites` (one each), whose
    /// requests are made elsewhere, by the agents.
    pub fn for_fleet(
        participants: usize,
        devices: Arc<[DeviceInfo]>,
        sites: Vec<String>,
    ) -> Arc<LiveStatus> {
        let telemetry = devices.iter().map(|_| Arc::default()).collect();
        let mut live = LiveStatus::new(participants, devices, telemetry);
        Arc::get_mut(&mut live).expect("not shared yet").sites =
            sites.into_iter().map(Some).collect();
        live
    }

    /// Shows `error` as device number `device`'s last error.
    pub fn set_last_error(&self, device: usize, error: &str) {
        self.telemetry[device].set_last_error(error);
    }

    /// The live status of a run of `participants` on `targets`.
    pub fn for_run(enrollment: &Enrollment<'_>) -> Arc<LiveStatus> {
        LiveStatus::new(
            enrollment.people.len(),
            enrollment.devices(),
            enrollment
                .targets
                .iter()
                .map(|t| t.device.telemetry())
                .collect(),
        )
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        // A panicking reader must not blind the dashboard for the rest of the run.
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the reporter's counts after a batch, with the batch's failures.
    pub fn publish(&self, per_device: &[Counts], done: u64, failures: Vec<RecentFailure>) {
        let now = Instant::now();
        let mut progress = self.progress();
        progress.per_device.clone_from_slice(per_device);
        progress.done = done;
        for failure in failures {
            progress.recent_failures.push_front(failure);
        }
        progress.recent_failures.truncate(RECENT_FAILURES);
        progress.samples.push_back((now, done));
        while progress.samples.len() > 2 && now.duration_since(progress.samples[1].0) >= RATE_WINDOW
        {
            progress.samples.pop_front();
        }
    }

    /// Sets each device's operations (see [`Watch::operations`]).
    pub fn set_operations(&self, per_device: &[u64]) {
        self.progress().operations = Some(per_device.to_vec());
    }

    /// Marks the run as ended (the dashboard may linger on the final numbers).
    pub fn finish(&self, interrupted: bool) {
        let mut progress = self.progress();
        progress.phase = if interrupted {
            Phase::Interrupted
        } else {
            Phase::Finished
        };
        progress.finished_after = Some(self.started.elapsed());
    }

    /// The run as it is now.
    pub fn status(&self) -> Status {
        let now = Instant::now();
        let progress = self.progress();
        let device_operations = |d: usize| {
            progress
                .operations
                .as_ref()
                .map_or(self.participants, |o| o[d])
        };
        let operations = (0..self.devices.len()).map(device_operations).sum::<u64>();
        let elapsed = progress
            .finished_after
            .unwrap_or_else(|| now.duration_since(self.started));
        let rate_per_s = match progress.phase {
            Phase::Running => {
                // Over the window: from the oldest sample kept to now.
                let (since, done_then) = progress.samples.front().copied().unwrap_or((now, 0));
                let span = now.duration_since(since).as_secs_f64();
                if span > 0.5 {
                    (progress.done - done_then) as f64 / span
                } else {
                    0.0
                }
            }
            _ => progress.done as f64 / elapsed.as_secs_f64().max(0.001),
        };
        let remaining = operations.saturating_sub(progress.done);
        let eta_s = (progress.phase == Phase::Running && rate_per_s > 0.0)
            .then(|| remaining as f64 / rate_per_s);
        let mut totals = Counts::default();
        let devices = self
            .devices
            .iter()
            .zip(&progress.per_device)
            .enumerate()
            .map(|(d, (device, counts))| {
                totals += counts;
                let t = &self.telemetry[d];
                let latency = t.latency();
                let quantile = |q: f64| latency.quantile_ms(q).filter(|&ms| ms != u64::MAX);
                DeviceStatus {
                    name: device.name.clone(),
                    url: device.url.clone(),
                    site: self.sites[d].clone(),
                    operations: device_operations(d),
                    done: counts.total(),
                    counts: counts.clone(),
                    in_flight: t.in_flight.load(std::sync::atomic::Ordering::Relaxed),
                    requests: t.requests.load(std::sync::atomic::Ordering::Relaxed),
                    retries: t.retries.load(std::sync::atomic::Ordering::Relaxed),
                    photos_sent: t.photos_sent.load(std::sync::atomic::Ordering::Relaxed),
                    photos_refused: t.photos_refused.load(std::sync::atomic::Ordering::Relaxed),
                    latency_p50_ms: quantile(0.5),
                    latency_p95_ms: quantile(0.95),
                    breaker: t.breaker().label(),
                    last_error: t.last_error(),
                    latency,
                }
            })
            .collect();
        Status {
            phase: progress.phase,
            started_at: rfc3339(self.started_at),
            elapsed_ms: elapsed.as_millis() as u64,
            participants: self.participants,
            operations,
            done: progress.done,
            rate_per_s: (rate_per_s * 10.0).round() / 10.0,
            eta_s: eta_s.map(|s| s.round()),
            totals,
            devices,
            recent_failures: progress.recent_failures.iter().cloned().collect(),
        }
    }
}

/// A time as RFC 3339 in UTC with milliseconds, e.g. `2026-11-28T15:04:05.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The reporter's side of the live status: collects a batch's failures, publishes the
/// counts once per batch.
pub struct LivePublisher {
    live: Arc<LiveStatus>,
    failures: Vec<RecentFailure>,
}

impl LivePublisher {
    pub fn new(live: Arc<LiveStatus>) -> LivePublisher {
        LivePublisher {
            live,
            failures: Vec::new(),
        }
    }
}

impl Watch for LivePublisher {
    fn settled(&mut self, settled: &Settled<'_>) {
        let Some(error) = settled.error else { return };
        // Only the last few of a batch can be shown: keep the reporter quick when a
        // device fails a thousand pairs at once.
        if self.failures.len() >= RECENT_FAILURES {
            self.failures.remove(0);
        }
        self.failures.push(RecentFailure {
            time: rfc3339(SystemTime::now()),
            device: self.live.devices[settled.device].name.clone(),
            registration: settled.registration.unwrap_or_default().to_string(),
            error: error.to_string(),
        });
    }

    fn batch(&mut self, per_device: &[Counts], done: u64) {
        self.live
            .publish(per_device, done, std::mem::take(&mut self.failures));
    }

    fn operations(&mut self, per_device: &[u64]) {
        self.live.set_operations(per_device);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(devices: usize) -> Arc<LiveStatus> {
        LiveStatus::new(
            10,
            (0..devices)
                .map(|i| {
                    DeviceInfo::new(
                        &format!("d{i}"),
                        &format!("http://127.0.0.1:{}", 9000 + i),
                        crate::vendor::Kind::Controlid,
                    )
                })
                .collect(),
            (0..devices).map(|_| Arc::default()).collect(),
        )
    }

    #[test]
    fn the_status_adds_up_the_published_counts() {
        let live = live(2);
        let counts = [
            Counts {
                registered: 3,
                failed: 1,
                ..Counts::default()
            },
            Counts {
                skipped_cache: 10,
                ..Counts::default()
            },
        ];
        let failure = RecentFailure {
            time: rfc3339(SystemTime::now()),
            device: "d0".into(),
            registration: "A-1".into(),
            error: "boom".into(),
        };
        live.publish(&counts, 14, vec![failure]);
        let status = live.status();
        assert_eq!(status.operations, 20);
        assert_eq!(status.done, 14);
        assert_eq!(status.totals.total(), 14);
        assert_eq!(status.devices[0].done, 4);
        assert_eq!(status.devices[1].done, 10);
        assert_eq!(status.devices[0].breaker, "ok");
        assert_eq!(status.recent_failures[0].registration, "A-1");
        assert_eq!(status.phase, Phase::Running);
        live.finish(false);
        let status = live.status();
        assert_eq!(status.phase, Phase::Finished);
        assert_eq!(status.eta_s, None);
    }

    #[test]
    fn removals_change_the_operations_and_count_as_done() {
        let live = live(2);
        // Device 0 prunes 3 people; device 1 lost 2 expired people from its pairs.
        live.set_operations(&[13, 8]);
        let counts = [
            Counts {
                registered: 10,
                removed: 3,
                ..Counts::default()
            },
            Counts {
                unchanged: 8,
                ..Counts::default()
            },
        ];
        live.publish(&counts, 21, Vec::new());
        let status = live.status();
        assert_eq!(status.operations, 21);
        assert_eq!(status.devices[0].operations, 13);
        assert_eq!(status.devices[0].done, 13);
        assert_eq!(status.totals.removed, 3);
        assert_eq!(status.totals.total(), 21);
    }

    #[test]
    fn only_the_most_recent_failures_are_kept_newest_first() {
        let live = live(1);
        let failures = (0..30)
            .map(|i| RecentFailure {
                time: String::new(),
                device: "d0".into(),
                registration: format!("A-{i}"),
                error: "x".into(),
            })
            .collect();
        live.publish(&[Counts::default()], 30, failures);
        let status = live.status();
        assert_eq!(status.recent_failures.len(), RECENT_FAILURES);
        assert_eq!(status.recent_failures[0].registration, "A-29");
    }
}
