//! One enrollment run, wired together: the engine on its pool, the reporter on its
//! thread, the channel between them. Shared by `catraca enroll`, the demo and the
//! benchmark, so all three measure and show the same code.

use crate::cache::{Cache, KeySecret};
use crate::engine::{Engine, EngineOptions, Target};
use crate::person::Person;
use crate::report::Report;
use crate::reporter::{Reporter, Verbosity, Watch};
use crate::stop::{FailureLimit, Stop};
use std::time::Instant;

/// Room for this many batches of outcomes between the workers and the reporter: enough
/// that workers never wait on a reporter that is printing, small enough to bound memory.
const EVENT_QUEUE: usize = 1024;

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
            for (line, target) in report.per_device.iter_mut().zip(&self.targets) {
                line.names_truncated = target.device.names_truncated();
            }
            report.interrupted = stop.interrupted();
            report.halted = stop.halt_reason();
            report.dry_run = self.options.dry_run;
            report.duration_ms = started.elapsed().as_millis() as u64;
            Ok(report)
        })
    }
}
