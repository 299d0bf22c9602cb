//! One enrollment run, wired together: the engine on its pool, the reporter on its
//! thread, the channel between them. Shared by `catraca enroll`, the demo and the
//! benchmark, so all three measure and show the same code.

use crate::config::DeviceConfig;
use crate::device::http::Timeouts;
use crate::device::RetryPolicy;
use crate::engine::{EngineOptions, Enrollment, Target};
use crate::report::Report;
use crate::reporter::{Reporter, Watch};
use std::num::NonZeroUsize;
use std::time::Instant;

/// Room for this many batches of outcomes between the workers and the reporter: enough
/// that workers never wait on a reporter that is printing, small enough to bound memory.
const EVENT_QUEUE: usize = 1024;

/// How the work of a run is spread and how patient it is with devices, once flags,
/// settings file and defaults are resolved. The defaults are the constants they name:
/// each is written, with its reasoning, in one place.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Worker threads. Default [`crate::engine::DEFAULT_THREADS`].
    pub threads: NonZeroUsize,
    /// `--sequential`: one job after another, in one worker thread with one request in
    /// flight per device; no separate code path in the engine.
    pub sequential: bool,
    /// People per create request. Default [`crate::engine::DEFAULT_BATCH_SIZE`].
    pub batch_size: NonZeroUsize,
    /// Requests in flight per device whose entry sets none. Default
    /// [`crate::engine::DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: NonZeroUsize,
    /// Requests per second per device whose entry sets none. Default: no limit.
    pub rate: Option<f64>,
    /// Default [`Timeouts::default`].
    pub timeouts: Timeouts,
    /// Retries of a transiently failed request. Default [`RetryPolicy::default`].
    pub retries: u32,
    /// How photos are fitted and matched (`--photo-fit`, `--photo-match`).
    pub photos: crate::photo::PhotoOptions,
}

impl Default for RunConfig {
    fn default() -> Self {
        let nonzero = |n| NonZeroUsize::new(n).expect("nonzero default");
        RunConfig {
            threads: nonzero(crate::engine::DEFAULT_THREADS),
            sequential: false,
            batch_size: nonzero(crate::engine::DEFAULT_BATCH_SIZE),
            max_in_flight: nonzero(crate::engine::DEFAULT_MAX_IN_FLIGHT),
            rate: None,
            timeouts: Timeouts::default(),
            retries: RetryPolicy::default().retries,
            photos: crate::photo::PhotoOptions::default(),
        }
    }
}

impl RunConfig {
    /// The engine's options for this run's pool and batches.
    pub fn engine_options(&self, skip_cache: bool) -> EngineOptions {
        EngineOptions {
            // --sequential: one worker thread (and see `in_flight`).
            threads: if self.sequential {
                NonZeroUsize::MIN
            } else {
                self.threads
            },
            batch_size: self.batch_size,
            skip_cache,
            ..EngineOptions::default()
        }
    }

    /// The retry policy of one run: every device shares its budget.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            ..RetryPolicy::default()
        }
    }

    /// The requests a device whose limit is `device_limit` may have in flight: one with
    /// `--sequential`.
    pub fn in_flight(&self, device_limit: usize) -> usize {
        if self.sequential {
            1
        } else {
            device_limit
        }
    }

    /// Drivers for the configured devices.
    pub fn targets(&self, devices: &[DeviceConfig]) -> Vec<Target> {
        let retry = self.retry();
        // One fitter for the run: a photo is fitted once for every device.
        let photos = crate::photo::PhotoRun::new(self.photos);
        devices
            .iter()
            .map(|d| Target {
                device: d.connect_for(self.timeouts, retry.clone(), &photos),
                max_in_flight: self.in_flight(d.max_in_flight),
            })
            .collect()
    }
}

impl Enrollment<'_> {
    /// Runs every pair and returns the report. `stop` set (first Ctrl-C) ends the run
    /// early: jobs in flight finish, the rest are reported as not sent.
    pub fn run(&self) -> anyhow::Result<Report> {
        self.run_watched(&mut [])
    }

    /// [`Enrollment::run`], with `watchers` (live status, events file) following every
    /// pair on the reporter's thread.
    pub fn run_watched(&self, watchers: &mut [&mut (dyn Watch + Send)]) -> anyhow::Result<Report> {
        let stop = self.stop;
        let started = Instant::now();
        let (events, received) = crossbeam_channel::bounded(EVENT_QUEUE);
        let reporter = Reporter {
            people: self.people,
            devices: self.devices(),
            verbosity: self.verbosity,
            cache: self.cache.describe(),
        };
        std::thread::scope(|scope| {
            let reporting = scope.spawn(move || reporter.run_watched(received, started, watchers));
            let outcome = self.run_jobs(&events);
            drop(events);
            let mut report = reporting
                .join()
                .expect("the reporter thread does not panic");
            outcome?;
            for (line, target) in report.per_device.iter_mut().zip(&self.targets) {
                line.names_truncated = target.device.names_truncated();
                let telemetry = target.device.telemetry();
                line.photos_sent = telemetry
                    .photos_sent
                    .load(std::sync::atomic::Ordering::Relaxed);
                line.photos_refused = telemetry
                    .photos_refused
                    .load(std::sync::atomic::Ordering::Relaxed);
            }
            report.interrupted = stop.interrupted();
            report.halted = stop.halt_reason();
            report.dry_run = self.options.dry_run;
            report.duration_ms = started.elapsed().as_millis() as u64;
            Ok(report)
        })
    }
}
