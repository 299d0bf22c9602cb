//! One enrollment run, wired together: the engine on its pool, the reporter on its
//! thread, the channel between them. Shared by `catraca enroll`, the demo and the
//! benchmark, so all three measure and show the same code.

use crate::cache::{Cache, KeySecret};
use crate::config::DeviceConfig;
use crate::device::http::Timeouts;
use crate::device::RetryPolicy;
use crate::engine::{Engine, EngineOptions, Target};
use crate::person::Person;
use crate::report::Report;
use crate::reporter::{Reporter, Verbosity, Watch};
use crate::stop::{FailureLimit, Stop};
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
    /// One job after another in one thread.
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
        }
    }
}

impl RunConfig {
    /// The engine's options for this run's pool and batches.
    pub fn engine_options(&self, skip_cache: bool) -> EngineOptions {
        EngineOptions {
            threads: self.threads,
            sequential: self.sequential,
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

    /// Drivers for the configured devices.
    pub fn targets(&self, devices: &[DeviceConfig]) -> Vec<Target> {
        let retry = self.retry();
        devices
            .iter()
            .map(|d| Target {
                device: d.connect(self.timeouts, retry.clone()),
                max_in_flight: d.max_in_flight,
            })
            .collect()
    }
}

/// Everything one run needs.
pub struct Enrollment<'a> {
    pub people: &'a [Person],
    pub targets: Vec<Target>,
    pub cache: &'a dyn Cache,
    pub secret: &'a KeySecret,
    pub options: EngineOptions,
    pub verbosity: Verbosity,
    /// Halt the run when failures pass this limit.
    pub max_failures: Option<FailureLimit>,
}

impl Enrollment<'_> {
    /// Runs every pair and returns the report. `stop` set (first Ctrl-C) ends the run
    /// early: jobs in flight finish, the rest are reported as not sent.
    pub fn run(&self, stop: &Stop) -> anyhow::Result<Report> {
        self.run_watched(stop, &mut [])
    }

    /// [`Enrollment::run`], with `watchers` (live status, events file) following every
    /// pair on the reporter's thread.
    pub fn run_watched(
        &self,
        stop: &Stop,
        watchers: &mut [&mut (dyn Watch + Send)],
    ) -> anyhow::Result<Report> {
        let started = Instant::now();
        let (events, received) = crossbeam_channel::bounded(EVENT_QUEUE);
        let reporter = Reporter {
            people: self.people,
            devices: self
                .targets
                .iter()
                .map(|t| {
                    (
                        t.device.name().to_string(),
                        t.device.url().to_string(),
                        t.device.kind(),
                    )
                })
                .collect(),
            verbosity: self.verbosity,
            cache: self.cache.describe(),
        };
        let engine = Engine {
            people: self.people,
            targets: &self.targets,
            cache: self.cache,
            secret: self.secret,
            options: &self.options,
            stop,
            max_failures: self.max_failures,
        };
        std::thread::scope(|scope| {
            let reporting = scope.spawn(move || reporter.run_watched(received, started, watchers));
            let outcome = engine.run(&events);
            drop(events);
            let mut report = reporting
                .join()
                .expect("the reporter thread does not panic");
            outcome?;
            report.interrupted = stop.interrupted();
            report.halted = stop.halt_reason();
            report.dry_run = self.options.dry_run;
            report.duration_ms = started.elapsed().as_millis() as u64;
            Ok(report)
        })
    }
}
