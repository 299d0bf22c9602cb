//! The reporter: the one thread that receives every outcome and alone prints.
//!
//! Workers never touch a counter or the terminal; they send [`Event`]s over a crossbeam
//! channel and this thread owns progress, per-device counts, the failure list and the
//! `-v` lines. Progress is an indicatif bar on a terminal and, when stderr is a file or
//! a pipe (cron, CI, `| tee`), a plain line every 10% like `progress: 50/500 (10.0%)`.

use crate::category::Category;
use crate::device::{DeviceError, DeviceInfo, Outcome, Plan};
use crate::i18n::{self, Msg};
use crate::person::Person;
use crate::report::{Counts, DeviceReport, Failure, FailureTexts, Report};
use crossbeam_channel::Receiver;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
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
    /// People of one device whose pairs all failed for one reason (never sent: the
    /// run stopped, or the device was given up on). Four bytes a pair on the channel,
    /// where [`Event::Pairs`] would carry the reason once per pair: with every device
    /// down, a million pairs fail at once, faster than they are reported.
    Failed {
        device: usize,
        people: Vec<u32>,
        error: DeviceError,
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

/// One settled operation, as the reporter tells every watcher and counts it itself:
/// its category and its reason are decided once, here.
#[derive(Debug, Clone, Copy)]
pub struct Settled<'a> {
    /// The device's number in the run.
    pub device: usize,
    /// The person's registration; `None` for the device itself (a failed listing).
    pub registration: Option<&'a str>,
    /// The person's number in the list, when the person is one of it (not for
    /// removals or a device's own failure).
    pub person: Option<u32>,
    pub category: Category,
    /// `catraca plan`: what would happen; nothing was written.
    pub planned: bool,
    /// Why it failed, as the report, the events file and the dashboard give it.
    pub error: Option<&'a str>,
    /// 1 + the retries of the job that settled it; 0 when nothing was sent for it.
    pub attempts: u32,
    /// How long that job took, when a job did.
    pub latency: Option<Duration>,
    /// `--verify` found missing a pair settled earlier in the run in this category: it
    /// moves from there to `category` (failed).
    pub revises: Option<Category>,
}

/// Follows the run as the reporter sees it, on the reporter's thread: the live status
/// of the dashboard, the events file. The reporter stays the only owner of the counts;
/// watchers get each settled operation, then the counts after each batch.
pub trait Watch {
    /// One operation settled (or, with `revises`, settled again).
    fn settled(&mut self, settled: &Settled<'_>);
    /// After each batch of pairs: the counts so far, per device, and the pairs done.
    fn batch(&mut self, per_device: &[Counts], done: u64);
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
    /// The run's devices, by index.
    pub devices: Arc<[DeviceInfo]>,
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
        let mut tally = Tally {
            per_device: vec![Counts::default(); self.devices.len()],
            failures: Vec::new(),
            texts: FailureTexts::new(
                self.people.len(),
                self.devices.iter().map(|d| d.name.clone()),
            ),
            done: 0,
        };
        let mut finished_ms = vec![0u64; self.devices.len()];
        let mut not_cached = 0u64;
        let mut warned_cache = false;
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
            // Spelled out one event at a time, so that only one event's worth of
            // reasons exists at once.
            let event = match event {
                Event::Failed {
                    device,
                    people,
                    error,
                } => Event::Pairs {
                    device,
                    outcomes: people
                        .into_iter()
                        .map(|p| (p, Outcome::Failed(error.clone())))
                        .collect(),
                    timing: None,
                },
                other => other,
            };
            match event {
                Event::Pairs {
                    device,
                    outcomes,
                    timing,
                } => {
                    finished_ms[device] = started.elapsed().as_millis() as u64;
                    for (person_index, outcome) in outcomes {
                        let person = &self.people[person_index as usize];
                        if let Outcome::Planned(Plan::Update { changes, .. }) = &outcome {
                            for field in changes {
                                *tally.per_device[device].changes.entry(field).or_default() += 1;
                            }
                        }
                        let error = outcome.failure_reason();
                        self.settle(
                            &mut tally,
                            &progress,
                            watchers,
                            Settled {
                                device,
                                registration: Some(&person.registration),
                                person: Some(person_index),
                                category: Category::of(&outcome),
                                planned: matches!(outcome, Outcome::Planned(_)),
                                error: error.as_deref(),
                                attempts: timing.map_or(0, |t| t.attempts),
                                latency: timing.map(|t| t.elapsed),
                                revises: None,
                            },
                        );
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
                    for (registration, result) in outcomes {
                        let error = result.as_ref().err().map(|e| format!("not removed: {e}"));
                        self.settle(
                            &mut tally,
                            &progress,
                            watchers,
                            Settled {
                                device,
                                registration: Some(&registration),
                                person: None,
                                category: match result {
                                    Ok(()) => Category::Removed,
                                    Err(_) => Category::Failed,
                                },
                                planned,
                                error: error.as_deref(),
                                attempts: u32::from(!planned),
                                latency: None,
                                revises: None,
                            },
                        );
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
                    self.settle(
                        &mut tally,
                        &progress,
                        watchers,
                        Settled {
                            device,
                            registration: None,
                            person: None,
                            category: Category::Failed,
                            planned: false,
                            error: Some(&error),
                            attempts: 1,
                            latency: None,
                            revises: None,
                        },
                    );
                }
                Event::Failed { .. } => unreachable!("spelled out as pairs above"),
                Event::Verified { count } => verified += count,
                Event::VerifyFailed {
                    device,
                    person,
                    updated,
                    error,
                } => self.settle(
                    &mut tally,
                    &progress,
                    watchers,
                    Settled {
                        device,
                        registration: Some(&self.people[person as usize].registration),
                        person: Some(person),
                        category: Category::Failed,
                        planned: false,
                        error: Some(&error),
                        attempts: 1,
                        latency: None,
                        revises: Some(if updated {
                            Category::Updated
                        } else {
                            Category::Registered
                        }),
                    },
                ),
            }
            for watcher in watchers.iter_mut() {
                watcher.batch(&tally.per_device, tally.done);
            }
            match &mut progress {
                Progress::Hidden => {}
                Progress::Bar(bar) => bar.set_position(tally.done),
                Progress::Lines { next_tenth } => {
                    // One line each time a tenth is crossed, even if a batch crosses two.
                    let done = tally.done;
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
        for counts in &tally.per_device {
            totals += counts;
        }
        Report {
            participants: self.people.len() as u64,
            devices: self.devices.len() as u64,
            operations,
            totals,
            verified,
            not_cached,
            dry_run: false,
            interrupted: false,
            halted: None,
            duration_ms: started.elapsed().as_millis() as u64,
            cache: self.cache,
            per_device: self
                .devices
                .iter()
                .zip(tally.per_device)
                .zip(finished_ms)
                .map(|((device, counts), finished_ms)| DeviceReport {
                    name: device.name.clone(),
                    url: device.url.clone(),
                    site: None,
                    kind: device.kind,
                    finished_ms,
                    counts,
                    names_truncated: 0,
                    photos_sent: 0,
                    photos_refused: 0,
                })
                .collect(),
            failures: tally.failures,
        }
    }

    /// Counts one settled operation everywhere it is counted: the tallies, the failure
    /// list, the `-v` line, and every watcher.
    fn settle(
        &self,
        tally: &mut Tally,
        progress: &Progress,
        watchers: &mut [&mut (dyn Watch + Send)],
        settled: Settled<'_>,
    ) {
        let counts = &mut tally.per_device[settled.device];
        counts[settled.category] += 1;
        match settled.revises {
            Some(previous) => counts[previous] = counts[previous].saturating_sub(1),
            None => tally.done += 1,
        }
        let device = &self.devices[settled.device].name;
        if let Some(error) = settled.error {
            tally.failures.push(tally.texts.failure(
                settled.person.map(|p| p as usize),
                settled.registration.unwrap_or_default(),
                settled.device,
                error,
            ));
        }
        if self.verbosity == Verbosity::Pairs {
            let label = i18n::t(settled.category.label(settled.planned));
            let reason = settled.error.map(|e| format!(": {e}")).unwrap_or_default();
            let registration = settled.registration.unwrap_or("-");
            let line = match settled.person {
                Some(p) => {
                    let name = &self.people[p as usize].name;
                    format!("{label}: {name} ({registration}) on {device}{reason}")
                }
                None => format!("{label}: {registration} from {device}{reason}"),
            };
            match progress {
                Progress::Bar(bar) => bar.println(line),
                _ => eprintln!("{line}"),
            }
        }
        for watcher in watchers.iter_mut() {
            watcher.settled(&settled);
        }
    }
}

/// What the reporter counts as operations settle.
struct Tally {
    per_device: Vec<Counts>,
    failures: Vec<Failure>,
    /// The one copy of each text the failures share.
    texts: FailureTexts,
    /// Operations settled so far (a pair settled again by `--verify` counts once).
    done: u64,
}
