//! The reporter: the one thread that receives every outcome and alone prints.
//!
//! Workers never touch a counter or the terminal; they send [`Event`]s over a crossbeam
//! channel and this thread owns progress, per-device counts, the failure list and the
//! `-v` lines. Progress is an indicatif bar on a terminal and, when stderr is a file or
//! a pipe (cron, CI, `| tee`), a plain line every 10% like `progress: 50/500 (10.0%)`.

use crate::device::{DeviceError, Outcome, Plan};
use crate::i18n::{self, Msg};
use crate::person::Person;
use crate::report::{Counts, DeviceReport, Failure, Report};
use crossbeam_channel::Receiver;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// What workers tell the reporter.
pub enum Event {
    /// Outcomes of some people (indices into the participant list) on one device.
    Pairs {
        device: usize,
        outcomes: Vec<(u32, Outcome)>,
        /// How long the job that produced them took, when a job did (not for pairs
        /// skipped by the cache or never sent).
        timing: Option<JobTiming>,
    },
    /// Pairs done on the device whose record in the cache failed.
    NotCached { count: usize, error: String },
    /// A worker could not open its cache connection.
    CacheUnavailable(String),
    /// A device's number of operations changed by `delta`: removals found on it (+),
    /// people of the CSV that leave instead of being enrolled (-).
    Operations { device: usize, delta: i64 },
    /// People taken off a device (or, `planned`, that `catraca plan` says would be), by
    /// registration. Each is one operation.
    Removed {
        device: usize,
        outcomes: Vec<(String, Result<(), DeviceError>)>,
        planned: bool,
    },
    /// A device could not be listed: nothing is removed from it. One failed operation.
    ListingFailed { device: usize, error: String },
    /// `--verify` read back this many pairs.
    Verified { count: u64 },
    /// `--verify` found a pair written in this run (registered, or `updated`) that the
    /// device does not hold as written: it moves to the failed pairs.
    VerifyFailed {
        device: usize,
        person: u32,
        updated: bool,
        error: String,
    },
}

/// How one job went, shared by every pair it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTiming {
    /// From the worker taking the job to its outcomes being known (all its requests).
    pub elapsed: Duration,
    /// 1 + the retries the driver made during the job (its transient failures).
    pub attempts: u32,
}

/// Follows the run as the reporter sees it, on the reporter's thread: the live status
/// of the dashboard, the events file. The reporter stays the only owner of the counts;
/// watchers get each pair, then the counts after each batch.
pub trait Watch {
    /// One finished pair: `person` on device number `device`.
    fn pair(
        &mut self,
        device: usize,
        person: &Person,
        outcome: &Outcome,
        timing: Option<JobTiming>,
    );
    /// After each batch of pairs: the counts so far, per device, and the pairs done.
    fn batch(&mut self, per_device: &[Counts], done: u64);
    /// One person taken off device number `device` (`planned`: `catraca plan` says it
    /// would be), or the reason it was not.
    fn removed(
        &mut self,
        _device: usize,
        _registration: &str,
        _result: &Result<(), DeviceError>,
        _planned: bool,
    ) {
    }
    /// The operations of each device changed (removals found, people leaving instead of
    /// being enrolled): the new numbers, per device.
    fn operations(&mut self, _per_device: &[u64]) {}
}

/// How much the reporter prints while the run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// No progress, only the final report and errors.
    Quiet,
    /// Progress.
    Normal,
    /// Progress and one line per pair.
    Pairs,
}

/// What the reporter needs to know about the run.
pub struct Reporter<'a> {
    pub people: &'a [Person],
    /// Name, URL and vendor family of each device, by index.
    pub devices: Vec<(String, String, &'static str)>,
    pub verbosity: Verbosity,
    pub cache: String,
}

enum Progress {
    Hidden,
    Bar(ProgressBar),
    Lines { next_tenth: u64 },
}

impl Reporter<'_> {
    /// Consumes events until every sender is gone, then returns the report.
    pub fn run(self, events: Receiver<Event>, started: Instant) -> Report {
        self.run_watched(events, started, &mut [])
    }

    /// [`Reporter::run`], telling `watchers` about every pair and batch as it goes.
    pub fn run_watched(
        self,
        events: Receiver<Event>,
        started: Instant,
        watchers: &mut [&mut (dyn Watch + Send)],
    ) -> Report {
        let mut operations = self.people.len() as u64 * self.devices.len() as u64;
        let mut verified = 0u64;
        let mut device_operations = vec![self.people.len() as u64; self.devices.len()];
        let mut per_device = vec![Counts::default(); self.devices.len()];
        let mut finished_ms = vec![0u64; self.devices.len()];
        let mut failures = Vec::new();
        let mut not_cached = 0u64;
        let mut warned_cache = false;
        let mut done = 0u64;
        let mut progress = match self.verbosity {
            Verbosity::Quiet => Progress::Hidden,
            _ if std::io::stderr().is_terminal() => {
                let bar =
                    ProgressBar::with_draw_target(Some(operations), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(i18n::t(Msg::ProgressBar))
                        .expect("valid template")
                        .with_key(
                            "rate",
                            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                                let _ = write!(
                                    w,
                                    "{}",
                                    i18n::tr(
                                        Msg::ProgressRate,
                                        &[("rate", &format!("{:.0}", state.per_sec()))]
                                    )
                                );
                            },
                        ),
                );
                Progress::Bar(bar)
            }
            _ => Progress::Lines { next_tenth: 1 },
        };

        for event in events {
            match event {
                Event::Pairs {
                    device,
                    outcomes,
                    timing,
                } => {
                    finished_ms[device] = started.elapsed().as_millis() as u64;
                    let counts = &mut per_device[device];
                    for (person, outcome) in outcomes {
                        let person = &self.people[person as usize];
                        for watcher in watchers.iter_mut() {
                            watcher.pair(device, person, &outcome, timing);
                        }
                        let (label, slot) = match &outcome {
                            Outcome::Registered => ("registered", &mut counts.registered),
                            Outcome::Updated => ("updated", &mut counts.updated),
                            Outcome::Unchanged => ("unchanged", &mut counts.unchanged),
                            Outcome::SkippedCache => ("skipped (cache)", &mut counts.skipped_cache),
                            Outcome::Failed(_) => ("failed", &mut counts.failed),
                            Outcome::Planned(plan) => match plan {
                                Plan::Create => ("would register", &mut counts.registered),
                                Plan::Update { changes, .. } => {
                                    for field in changes {
                                        *counts.changes.entry(field).or_default() += 1;
                                    }
                                    ("would update", &mut counts.updated)
                                }
                                Plan::Unchanged { .. } => ("unchanged", &mut counts.unchanged),
                                Plan::Ambiguous { .. } => ("conflict", &mut counts.failed),
                            },
                        };
                        *slot += 1;
                        done += 1;
                        if self.verbosity == Verbosity::Pairs {
                            let reason = match &outcome {
                                Outcome::Failed(e) => format!(": {e}"),
                                _ => String::new(),
                            };
                            let line = format!(
                                "{label}: {} ({}) on {}{reason}",
                                person.name, person.registration, self.devices[device].0
                            );
                            match &progress {
                                Progress::Bar(bar) => bar.println(line),
                                _ => eprintln!("{line}"),
                            }
                        }
                        let failure = match outcome {
                            Outcome::Failed(e) => Some(e.to_string()),
                            Outcome::Planned(Plan::Ambiguous { ids }) => Some(format!(
                                "registration is on this device {} times: remove the extra copies there",
                                ids.len()
                            )),
                            _ => None,
                        };
                        if let Some(error) = failure {
                            failures.push(Failure {
                                registration: person.registration.clone(),
                                device: self.devices[device].0.clone(),
                                error,
                            });
                        }
                    }
                }
                Event::NotCached { count, error } => {
                    not_cached += count as u64;
                    if !warned_cache {
                        warned_cache = true;
                        log::warn!("{}", i18n::tr(Msg::WarnNotCached, &[("error", &error)]));
                    }
                }
                Event::CacheUnavailable(error) => {
                    if !warned_cache {
                        warned_cache = true;
                        log::warn!(
                            "{}",
                            i18n::tr(Msg::WarnCacheUnavailable, &[("error", &error)])
                        );
                    }
                }
                Event::Operations { device, delta } => {
                    operations = operations.saturating_add_signed(delta);
                    device_operations[device] =
                        device_operations[device].saturating_add_signed(delta);
                    if let Progress::Bar(bar) = &progress {
                        bar.set_length(operations);
                    }
                    for watcher in watchers.iter_mut() {
                        watcher.operations(&device_operations);
                    }
                }
                Event::Removed {
                    device,
                    outcomes,
                    planned,
                } => {
                    finished_ms[device] = started.elapsed().as_millis() as u64;
                    let counts = &mut per_device[device];
                    for (registration, result) in outcomes {
                        done += 1;
                        for watcher in watchers.iter_mut() {
                            watcher.removed(device, &registration, &result, planned);
                        }
                        let label = match (&result, planned) {
                            (Ok(()), true) => "would remove",
                            (Ok(()), false) => "removed",
                            (Err(_), _) => "removal failed",
                        };
                        if self.verbosity == Verbosity::Pairs {
                            let reason = match &result {
                                Err(e) => format!(": {e}"),
                                Ok(()) => String::new(),
                            };
                            let line = format!(
                                "{label}: {registration} from {}{reason}",
                                self.devices[device].0
                            );
                            match &progress {
                                Progress::Bar(bar) => bar.println(line),
                                _ => eprintln!("{line}"),
                            }
                        }
                        match result {
                            Ok(()) => counts.removed += 1,
                            Err(e) => {
                                counts.failed += 1;
                                failures.push(Failure {
                                    registration,
                                    device: self.devices[device].0.clone(),
                                    error: format!("not removed: {e}"),
                                });
                            }
                        }
                    }
                }
                Event::ListingFailed { device, error } => {
                    // One operation more than planned: the listing itself, failed.
                    operations += 1;
                    device_operations[device] += 1;
                    if let Progress::Bar(bar) = &progress {
                        bar.set_length(operations);
                    }
                    for watcher in watchers.iter_mut() {
                        watcher.operations(&device_operations);
                    }
                    done += 1;
                    per_device[device].failed += 1;
                    failures.push(Failure {
                        registration: String::new(),
                        device: self.devices[device].0.clone(),
                        error,
                    });
                }
                Event::Verified { count } => verified += count,
                Event::VerifyFailed {
                    device,
                    person,
                    updated,
                    error,
                } => {
                    let counts = &mut per_device[device];
                    let slot = if updated {
                        &mut counts.updated
                    } else {
                        &mut counts.registered
                    };
                    *slot = slot.saturating_sub(1);
                    counts.failed += 1;
                    failures.push(Failure {
                        registration: self.people[person as usize].registration.clone(),
                        device: self.devices[device].0.clone(),
                        error,
                    });
                }
            }
            for watcher in watchers.iter_mut() {
                watcher.batch(&per_device, done);
            }
            match &mut progress {
                Progress::Hidden => {}
                Progress::Bar(bar) => bar.set_position(done),
                Progress::Lines { next_tenth } => {
                    // One line each time a tenth is crossed, even if a batch crosses two.
                    if *next_tenth <= 10 && done * 10 >= operations * *next_tenth {
                        let percent =
                            format!("{:.1}", done as f64 * 100.0 / operations.max(1) as f64);
                        eprintln!(
                            "{}",
                            i18n::tr(
                                Msg::ProgressLine,
                                &[
                                    ("done", &done),
                                    ("total", &operations),
                                    ("percent", &percent)
                                ]
                            )
                        );
                        while *next_tenth <= 10 && done * 10 >= operations * *next_tenth {
                            *next_tenth += 1;
                        }
                    }
                }
            }
        }
        if let Progress::Bar(bar) = &progress {
            bar.finish_and_clear();
        }

        let mut totals = Counts::default();
        for c in &per_device {
            totals.registered += c.registered;
            totals.updated += c.updated;
            totals.unchanged += c.unchanged;
            totals.skipped_cache += c.skipped_cache;
            totals.failed += c.failed;
            totals.removed += c.removed;
        }
        Report {
            participants: self.people.len() as u64,
            devices: self.devices.len() as u64,
            operations,
            registered: totals.registered,
            updated: totals.updated,
            unchanged: totals.unchanged,
            skipped_cache: totals.skipped_cache,
            failed: totals.failed,
            removed: totals.removed,
            verified,
            not_cached,
            dry_run: false,
            interrupted: false,
            halted: None,
            duration_ms: started.elapsed().as_millis() as u64,
            cache: self.cache,
            per_device: self
                .devices
                .into_iter()
                .zip(per_device)
                .zip(finished_ms)
                .map(|(((name, url, kind), counts), finished_ms)| DeviceReport {
                    name,
                    url,
                    kind: kind.to_string(),
                    finished_ms,
                    counts,
                    names_truncated: 0,
                })
                .collect(),
            failures,
        }
    }
}
