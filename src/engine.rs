//! The enrollment engine: every person on every device, on a dedicated thread pool.
//!
//! The shape is the one the system we replace had (a Piscina pool of workers) made
//! sound: a rayon `ThreadPool` of `--threads` workers, each with its own cache
//! connection, takes jobs from per-device queues; results travel over a crossbeam
//! channel to the one reporter thread that owns every counter. Work per device is a
//! pipeline of two kinds of job: a *plan* job reads up to 999 people from the device
//! (one `IN` list) and turns into *write* jobs of `--batch-size` people, or fewer when
//! the device's driver says it takes fewer per request (Hikvision 1, Intelbras 10). A worker only
//! takes a job from a device with a free in-flight slot, so a slow device never holds
//! threads that other devices could use, and no device ever sees more than its
//! `max_in_flight` requests at once.
//!
//! A pair is recorded in the cache only after the device confirmed it. A job whose
//! worker panics reports all its pairs failed; it never hangs the run.

use crate::cache::{Cache, CacheConnection, CacheKey, DeviceKeys, KeySecret};
use crate::device::{breaker, Device, DeviceError, Outcome, Plan};
use crate::person::Person;
use crate::reporter::{Event, JobTiming};
use crate::stop::{FailureLimit, Stop};
use crate::telemetry;
use crossbeam_channel::Sender;
use rayon::prelude::*;
use std::collections::{HashSet, VecDeque};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The most people one plan job reads from a device: the device's limit for an `IN` list.
pub const PLAN_CHUNK: usize = 999;

/// Worker threads unless `--threads` says otherwise: 10, as the system we replace.
/// With device latency, threads bound the requests in flight: 10 keep the old table's
/// 5 devices x 2 slots full (`catraca bench`, W1 one per request: efficiency 0.96 of
/// the ideal that 10 in flight allow). Without latency the run is CPU-bound and more
/// threads buy nothing on 2 cores: W2 (100,000 x 10, batch 250; one run each on this
/// shared 2-core machine) took 10.5 s with 4 threads, 7.0 s with 10 and 8.0 s with 20.
pub const DEFAULT_THREADS: usize = 10;

/// People per create request unless `--batch-size` says otherwise: 250, the largest
/// batch in the vendor's own examples. A batch costs three writes (users, cards, group
/// links) whatever its size, so at 100 a run needed 0.031 requests per pair (W2,
/// 100,000 x 10) and at 250 it needs 0.013, in the same wall time. 250 users are about
/// 25 KB of JSON, far below the 2 MB a device's web server takes, and at 1 ms per object
/// a quarter of a second of device work, far below the 30 s timeout; a bad row is
/// isolated in 8 halvings instead of 7.
pub const DEFAULT_BATCH_SIZE: usize = 250;

/// Requests in flight per device unless `--max-in-flight` or the devices file says
/// otherwise: 2. Control iD's small lighttpd drops connections under bursts
/// (docs/controlid-api.md: keep one or two in flight per device); the simulator cannot
/// tell us more than the field notes do, so the benchmark does not move this. Two let
/// a device's next request arrive while it answers the last, which is what W1's
/// one-per-request efficiency (0.96) measures.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 2;

/// Cache lookups are made in chunks of this many keys: one round trip each.
const CACHE_CHUNK: usize = 1000;

/// How the work is spread.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Worker threads. Default [`DEFAULT_THREADS`] (10), as the system we replace:
    /// enough to keep 5 devices with 2 requests in flight each busy.
    pub threads: NonZeroUsize,
    /// No pool: every job in the calling thread, one after another.
    pub sequential: bool,
    /// People per create request. Default [`DEFAULT_BATCH_SIZE`] (250): one request
    /// instead of 250, well under the 2 MB body the device's web server handles, and
    /// the vendor's own examples use 50 to 250.
    pub batch_size: NonZeroUsize,
    /// Do not trust the cache for skipping (results are still recorded).
    pub skip_cache: bool,
    /// `catraca plan`: read the devices and report what each pair needs; write nothing
    /// to any device nor to the cache.
    pub dry_run: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: NonZeroUsize::new(DEFAULT_THREADS).expect("nonzero"),
            sequential: false,
            batch_size: NonZeroUsize::new(DEFAULT_BATCH_SIZE).expect("nonzero"),
            skip_cache: false,
            dry_run: false,
        }
    }
}

/// A device and the most requests it may see at once.
pub struct Target {
    pub device: Arc<dyn Device>,
    pub max_in_flight: usize,
}

/// Everything a run needs.
pub struct Engine<'a> {
    pub people: &'a [Person],
    pub targets: &'a [Target],
    pub cache: &'a dyn Cache,
    pub secret: &'a KeySecret,
    pub options: &'a EngineOptions,
    /// Set on the first Ctrl-C or by `--max-failures`: no new job starts; pairs not
    /// sent are reported so.
    pub stop: &'a Stop,
    /// Halt the run when failures pass this limit.
    pub max_failures: Option<FailureLimit>,
}

/// How often a job may be set aside because its device did not answer, before its pairs
/// are reported failed. With the breaker's cool-downs (0.25 s doubling to 4 s) this rides
/// out a device that is gone for about 20 s, e.g. a reboot.
const MAX_DEFERRALS: u32 = 8;

enum Job {
    Plan {
        device: usize,
        people: Vec<u32>,
        deferrals: u32,
    },
    Write {
        device: usize,
        work: Vec<(u32, Plan)>,
        deferrals: u32,
    },
}

impl Job {
    fn device(&self) -> usize {
        match self {
            Job::Plan { device, .. } | Job::Write { device, .. } => *device,
        }
    }

    fn people(&self) -> Vec<u32> {
        match self {
            Job::Plan { people, .. } => people.clone(),
            Job::Write { work, .. } => work.iter().map(|(p, _)| *p).collect(),
        }
    }

    fn deferrals(&self) -> u32 {
        match self {
            Job::Plan { deferrals, .. } | Job::Write { deferrals, .. } => *deferrals,
        }
    }
}

struct DeviceQueue {
    jobs: VecDeque<Job>,
    in_flight: usize,
    limit: usize,
}

struct QueueState {
    devices: Vec<DeviceQueue>,
    running: usize,
    next: usize,
    /// Jobs of devices that stayed unreachable when nothing else was left to do.
    given_up: Vec<Job>,
}

/// Per-device job queues; hands a worker the next job of a device with a free slot and
/// a closed (or probing) breaker.
struct Scheduler<'a> {
    targets: &'a [Target],
    /// Pairs reported failed so far, for `--max-failures`.
    failed: AtomicU64,
    /// (device, person) whose create was sent, then deferred: see `count_earlier_creates`.
    created_then_deferred: Mutex<HashSet<(usize, u32)>>,
    state: Mutex<QueueState>,
    changed: Condvar,
}

impl Scheduler<'_> {
    fn next_job(&self, stop: &Stop) -> Option<Job> {
        let mut state = self.state.lock().expect("scheduler lock");
        loop {
            if stop.is_set() {
                return None;
            }
            let count = state.devices.len();
            let mut wake_at: Option<Instant> = None;
            for offset in 0..count {
                let d = (state.next + offset) % count;
                let queue = &state.devices[d];
                if queue.in_flight >= queue.limit || queue.jobs.is_empty() {
                    continue;
                }
                if let Some(until) = self.targets[d].device.breaker().blocked_until() {
                    wake_at = Some(wake_at.map_or(until, |w: Instant| w.min(until)));
                    continue;
                }
                let queue = &mut state.devices[d];
                let job = queue.jobs.pop_front().expect("checked non-empty");
                queue.in_flight += 1;
                state.running += 1;
                state.next = (d + 1) % count;
                return Some(job);
            }
            if state.running == 0 {
                if wake_at.is_some() && !self.blocked_devices_gave_up(&state) {
                    // Nothing else to do: wait for the breaker's next probe.
                } else {
                    let drained: Vec<Job> = state
                        .devices
                        .iter_mut()
                        .flat_map(|q| q.jobs.drain(..))
                        .collect();
                    state.given_up.extend(drained);
                    self.changed.notify_all();
                    return None;
                }
            }
            state = match wake_at {
                Some(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    self.changed
                        .wait_timeout(state, wait.max(Duration::from_millis(1)))
                        .expect("scheduler lock")
                        .0
                }
                None => self.changed.wait(state).expect("scheduler lock"),
            };
        }
    }

    /// Whether every device still holding jobs has failed enough probes that waiting
    /// longer, with nothing else to do, would only delay the report.
    fn blocked_devices_gave_up(&self, state: &QueueState) -> bool {
        state
            .devices
            .iter()
            .enumerate()
            .filter(|(_, q)| !q.jobs.is_empty())
            .all(|(d, _)| self.targets[d].device.breaker().failed_probes() >= GIVE_UP_AFTER_PROBES)
    }

    /// Keeps the report honest across deferrals: a person whose create was sent in this
    /// run and then set aside (answer lost, card failed) is found on the device by the
    /// next round's plan, which would call it updated or unchanged; it was registered by
    /// this run, and is counted so. Only deferred creates are remembered: a handful, not
    /// one entry per pair.
    fn count_earlier_creates(
        &self,
        device: usize,
        job: &Job,
        later: &[(u32, Outcome)],
        outcomes: &mut [(u32, Outcome)],
    ) {
        let mut created = self.created_then_deferred.lock().expect("creates lock");
        if let Job::Write { work, .. } = job {
            for (p, _) in later {
                if work.iter().any(|(q, plan)| q == p && *plan == Plan::Create) {
                    created.insert((device, *p));
                }
            }
        }
        if created.is_empty() {
            return;
        }
        for (p, outcome) in outcomes.iter_mut() {
            if matches!(outcome, Outcome::Updated | Outcome::Unchanged)
                && created.remove(&(device, *p))
            {
                *outcome = Outcome::Registered;
            }
        }
    }

    /// Ends a job: its follow-ups go first in the device's queue (their plan is fresh),
    /// a deferred job last (it waits for the device to recover).
    fn finish(&self, device: usize, follow_ups: Vec<Job>, deferred: Option<Job>) {
        let mut state = self.state.lock().expect("scheduler lock");
        let queue = &mut state.devices[device];
        queue.in_flight -= 1;
        for job in follow_ups.into_iter().rev() {
            queue.jobs.push_front(job);
        }
        queue.jobs.extend(deferred);
        state.running -= 1;
        self.changed.notify_all();
    }

    /// Jobs never run: left by a stop, or given up on an unreachable device.
    fn remaining(&self) -> (Vec<Job>, Vec<Job>) {
        let mut state = self.state.lock().expect("scheduler lock");
        let left = state
            .devices
            .iter_mut()
            .flat_map(|q| q.jobs.drain(..))
            .collect();
        (left, std::mem::take(&mut state.given_up))
    }
}

/// With nothing else left to do, an unreachable device gets this many failed probes
/// (about 0.75 s with the breaker's cool-downs) before its pairs are reported.
const GIVE_UP_AFTER_PROBES: u32 = 2;

/// Whether a pair that failed with `error` is set aside and tried again later (always
/// with a fresh plan: a write may have landed before its answer was lost, so it is
/// never repeated blindly). A device that did not answer gets many chances (it may be
/// rebooting; its breaker keeps the traffic down); one that answered with a passing
/// error (503, garbage) after all its retries gets two more rounds.
fn worth_another_go(error: &DeviceError, deferrals: u32) -> bool {
    if breaker::is_no_answer(error) {
        deferrals < MAX_DEFERRALS
    } else {
        error.is_transient() && deferrals < MAX_ANSWERED_DEFERRALS
    }
}

/// Rounds of deferral for pairs whose device answered with a transient error.
const MAX_ANSWERED_DEFERRALS: u32 = 2;

impl Engine<'_> {
    /// Runs every pair, sending each outcome to `events`. Returns when all pairs are
    /// reported (or, after a stop, when the jobs in progress finished).
    pub fn run(&self, events: &Sender<Event>) -> anyhow::Result<()> {
        let fingerprints: Vec<u64> = self.people.iter().map(Person::fingerprint).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(if self.options.sequential {
                1
            } else {
                self.options.threads.get()
            })
            .thread_name(|i| format!("catraca-worker-{i}"))
            .build()?;

        let pending = if self.options.skip_cache || !self.cache.remembers() {
            self.targets
                .iter()
                .map(|_| (0..self.people.len() as u32).collect())
                .collect()
        } else if self.options.sequential {
            self.check_cache_serially(&fingerprints, events)?
        } else {
            pool.install(|| self.check_cache(&fingerprints, events))?
        };

        let scheduler = Scheduler {
            targets: self.targets,
            failed: AtomicU64::new(0),
            created_then_deferred: Mutex::new(HashSet::new()),
            state: Mutex::new(QueueState {
                devices: self
                    .targets
                    .iter()
                    .zip(pending)
                    .enumerate()
                    .map(|(d, (target, people))| DeviceQueue {
                        jobs: people
                            .chunks(PLAN_CHUNK)
                            .map(|c| Job::Plan {
                                device: d,
                                people: c.to_vec(),
                                deferrals: 0,
                            })
                            .collect(),
                        in_flight: 0,
                        limit: if self.options.sequential {
                            1
                        } else {
                            target.max_in_flight.max(1)
                        },
                    })
                    .collect(),
                running: 0,
                next: 0,
                given_up: Vec::new(),
            }),
            changed: Condvar::new(),
        };

        if self.options.sequential {
            self.work(&scheduler, &fingerprints, events);
        } else {
            pool.scope(|scope| {
                for _ in 0..self.options.threads.get() {
                    scope.spawn(|_| self.work(&scheduler, &fingerprints, events));
                }
            });
        }

        let (left, given_up) = scheduler.remaining();
        for (job, unreachable) in left
            .into_iter()
            .map(|j| (j, false))
            .chain(given_up.into_iter().map(|j| (j, true)))
        {
            let device = job.device();
            let reason = if unreachable {
                self.targets[device].device.breaker().unreachable_error()
            } else if self.stop.halt_reason().is_some() {
                DeviceError::Halted
            } else {
                DeviceError::Interrupted
            };
            let outcomes = job
                .people()
                .into_iter()
                .map(|p| (p, Outcome::Failed(reason.clone())))
                .collect();
            let _ = events.send(Event::Pairs {
                device,
                outcomes,
                timing: None,
            });
        }
        Ok(())
    }

    fn keys(&self, device: usize, people: &[u32]) -> Vec<CacheKey> {
        let keys = DeviceKeys::new(self.secret, &self.targets[device].device.cache_id());
        people
            .iter()
            .map(|&p| keys.key(&self.people[p as usize].registration))
            .collect()
    }

    /// Splits each device's people into skipped (cached with the same fingerprint) and
    /// pending, on the pool, each task with its own cache connection.
    fn check_cache(
        &self,
        fingerprints: &[u64],
        events: &Sender<Event>,
    ) -> anyhow::Result<Vec<Vec<u32>>> {
        let total = self.people.len() as u32;
        let chunks: Vec<(usize, Range<u32>)> = (0..self.targets.len())
            .flat_map(|d| {
                (0..total)
                    .step_by(CACHE_CHUNK)
                    .map(move |start| (d, start..(start + CACHE_CHUNK as u32).min(total)))
            })
            .collect();
        let results: Vec<anyhow::Result<(usize, Vec<u32>)>> = chunks
            .into_par_iter()
            .map_init(
                || self.cache.connect(),
                |connection, (device, people)| {
                    let connection = connection.as_mut().map_err(|e| anyhow::anyhow!("{e}"))?;
                    self.split_cached(connection.as_mut(), device, people, fingerprints, events)
                        .map(|pending| (device, pending))
                },
            )
            .collect();
        let mut pending = vec![Vec::new(); self.targets.len()];
        for result in results {
            let (device, people) = result?;
            pending[device].extend(people);
        }
        Ok(pending)
    }

    fn check_cache_serially(
        &self,
        fingerprints: &[u64],
        events: &Sender<Event>,
    ) -> anyhow::Result<Vec<Vec<u32>>> {
        let mut connection = self.cache.connect()?;
        let total = self.people.len() as u32;
        let mut pending = vec![Vec::new(); self.targets.len()];
        for (device, list) in pending.iter_mut().enumerate() {
            for start in (0..total).step_by(CACHE_CHUNK) {
                let range = start..(start + CACHE_CHUNK as u32).min(total);
                list.extend(self.split_cached(
                    connection.as_mut(),
                    device,
                    range,
                    fingerprints,
                    events,
                )?);
            }
        }
        Ok(pending)
    }

    fn split_cached(
        &self,
        connection: &mut dyn CacheConnection,
        device: usize,
        people: Range<u32>,
        fingerprints: &[u64],
        events: &Sender<Event>,
    ) -> anyhow::Result<Vec<u32>> {
        let people: Vec<u32> = people.collect();
        let cached = connection.lookup(&self.keys(device, &people))?;
        let mut pending = Vec::new();
        let mut skipped = Vec::new();
        for (&p, cached) in people.iter().zip(cached) {
            if cached == Some(fingerprints[p as usize]) {
                skipped.push((p, Outcome::SkippedCache));
            } else {
                pending.push(p);
            }
        }
        if !skipped.is_empty() {
            let _ = events.send(Event::Pairs {
                device,
                outcomes: skipped,
                timing: None,
            });
        }
        Ok(pending)
    }

    /// One worker: takes jobs until there are none, with its own cache connection.
    fn work(&self, scheduler: &Scheduler<'_>, fingerprints: &[u64], events: &Sender<Event>) {
        let mut cache = match self.cache.connect() {
            Ok(c) => Some(c),
            Err(e) => {
                let _ = events.send(Event::CacheUnavailable(e.to_string()));
                None
            }
        };
        while let Some(job) = scheduler.next_job(self.stop) {
            let device = job.device();
            let retries_before = telemetry::retries_on_this_thread();
            let began = Instant::now();
            let (outcomes, follow_ups) = match catch_unwind(AssertUnwindSafe(|| self.run_job(&job)))
            {
                Ok(done) => done,
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a worker panicked".into());
                    let failed = DeviceError::Internal(format!("worker panicked: {message}"));
                    let outcomes = job
                        .people()
                        .into_iter()
                        .map(|p| (p, Outcome::Failed(failed.clone())))
                        .collect();
                    (outcomes, Vec::new())
                }
            };
            let deferrals = job.deferrals();
            let (later, mut outcomes): (Vec<_>, Vec<_>) =
                outcomes.into_iter().partition(|(_, o)| {
                    !self.stop.is_set()
                        && matches!(o, Outcome::Failed(e) if worth_another_go(e, deferrals))
                });
            scheduler.count_earlier_creates(device, &job, &later, &mut outcomes);
            let deferred = (!later.is_empty()).then(|| {
                log::debug!(
                    "{}: {} people failed for a passing reason; they will be tried again later",
                    self.targets[device].device.name(),
                    later.len()
                );
                Job::Plan {
                    device,
                    people: later.into_iter().map(|(p, _)| p).collect(),
                    deferrals: deferrals + 1,
                }
            });
            let timing = JobTiming {
                elapsed: began.elapsed(),
                attempts: 1 + (telemetry::retries_on_this_thread() - retries_before) as u32,
            };
            self.record(cache.as_mut(), device, &outcomes, fingerprints, events);
            self.check_failure_limit(scheduler, &outcomes);
            if !outcomes.is_empty() {
                let _ = events.send(Event::Pairs {
                    device,
                    outcomes,
                    timing: Some(timing),
                });
            }
            scheduler.finish(device, follow_ups, deferred);
        }
    }

    /// Halts the run (`--max-failures`) as soon as failures pass the limit, before the
    /// worker takes another job: the reporter thread may lag behind, the limit must not.
    fn check_failure_limit(&self, scheduler: &Scheduler<'_>, outcomes: &[(u32, Outcome)]) {
        let Some(limit) = self.max_failures else {
            return;
        };
        let new = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .count() as u64;
        let failed = scheduler.failed.fetch_add(new, AtomicOrdering::SeqCst) + new;
        let operations = self.people.len() as u64 * self.targets.len() as u64;
        if limit.exceeded(failed, operations) && !self.stop.is_set() {
            let reason = format!(
                "{failed} pairs failed, more than --max-failures {limit}: stopped early; fix the cause and run again"
            );
            log::error!("{reason}");
            self.stop.halt(reason);
        }
    }

    fn run_job(&self, job: &Job) -> (Vec<(u32, Outcome)>, Vec<Job>) {
        match job {
            Job::Plan {
                device,
                people,
                deferrals,
            } => {
                let refs: Vec<&Person> = people.iter().map(|&p| &self.people[p as usize]).collect();
                match self.targets[*device].device.plan(&refs) {
                    Err(e) => (
                        people
                            .iter()
                            .map(|&p| (p, Outcome::Failed(e.clone())))
                            .collect(),
                        Vec::new(),
                    ),
                    Ok(plans) if self.options.dry_run => (
                        people
                            .iter()
                            .zip(plans)
                            .map(|(&p, plan)| (p, Outcome::Planned(plan)))
                            .collect(),
                        Vec::new(),
                    ),
                    Ok(plans) => {
                        let mut unchanged = Vec::new();
                        let mut writes = Vec::new();
                        for (&p, plan) in people.iter().zip(plans) {
                            match plan {
                                Plan::Unchanged { .. } => unchanged.push((p, Outcome::Unchanged)),
                                other => writes.push((p, other)),
                            }
                        }
                        // Some devices take fewer people per request than asked for.
                        let device_max = self.targets[*device].device.max_batch().max(1);
                        let batch = self.options.batch_size.get().min(device_max);
                        let mut follow_ups = Vec::new();
                        while !writes.is_empty() {
                            let rest = writes.split_off(batch.min(writes.len()));
                            follow_ups.push(Job::Write {
                                deferrals: *deferrals,
                                device: *device,
                                work: std::mem::replace(&mut writes, rest),
                            });
                        }
                        (unchanged, follow_ups)
                    }
                }
            }
            Job::Write { device, work, .. } => {
                let refs: Vec<(&Person, Plan)> = work
                    .iter()
                    .map(|(p, plan)| (&self.people[*p as usize], plan.clone()))
                    .collect();
                let outcomes = self.targets[*device].device.apply(&refs);
                (
                    work.iter().map(|(p, _)| *p).zip(outcomes).collect(),
                    Vec::new(),
                )
            }
        }
    }

    /// Records the confirmed pairs of one job in one cache round trip.
    fn record(
        &self,
        cache: Option<&mut Box<dyn CacheConnection>>,
        device: usize,
        outcomes: &[(u32, Outcome)],
        fingerprints: &[u64],
        events: &Sender<Event>,
    ) {
        let done: Vec<u32> = outcomes
            .iter()
            .filter(|(_, o)| o.is_done())
            .map(|(p, _)| *p)
            .collect();
        if done.is_empty() || !self.cache.remembers() {
            return;
        }
        let Some(cache) = cache else {
            let _ = events.send(Event::NotCached {
                count: done.len(),
                error: "no cache connection".into(),
            });
            return;
        };
        let entries: Vec<(CacheKey, u64)> = self
            .keys(device, &done)
            .into_iter()
            .zip(done.iter().map(|&p| fingerprints[p as usize]))
            .collect();
        if let Err(e) = cache.record(&entries) {
            let _ = events.send(Event::NotCached {
                count: done.len(),
                error: e.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::NoCache;
    use crate::device::breaker::Breaker;
    use crate::enroll::Enrollment;
    use crate::reporter::Verbosity;
    use crate::telemetry::DeviceTelemetry;

    /// A device whose driver panics on one person: the panic must cost that job's
    /// pairs, reported failed, and never hang the run.
    struct PanickingDevice {
        poison: String,
        breaker: Breaker,
        telemetry: Arc<DeviceTelemetry>,
    }

    impl Device for PanickingDevice {
        fn name(&self) -> &str {
            "fake"
        }
        fn url(&self) -> &str {
            "http://fake"
        }
        fn kind(&self) -> &'static str {
            "fake"
        }
        fn profile(&self) -> &'static crate::device::Profile {
            &crate::device::controlid::PROFILE
        }
        fn breaker(&self) -> &Breaker {
            &self.breaker
        }
        fn telemetry(&self) -> Arc<DeviceTelemetry> {
            Arc::clone(&self.telemetry)
        }
        fn plan(&self, people: &[&Person]) -> Result<Vec<Plan>, DeviceError> {
            Ok(people.iter().map(|_| Plan::Create).collect())
        }
        fn apply(&self, work: &[(&Person, Plan)]) -> Vec<Outcome> {
            if work.iter().any(|(p, _)| p.registration == self.poison) {
                panic!("driver bug on {}", self.poison);
            }
            work.iter().map(|_| Outcome::Registered).collect()
        }
    }

    #[test]
    fn a_panicking_worker_fails_its_pairs_and_never_hangs_the_run() {
        let people: Vec<Person> = (0..50)
            .map(|i| Person {
                registration: format!("R{i}"),
                name: format!("P{i}"),
                card: None,
                begin: None,
                end: None,
                group: None,
                line: i + 2,
            })
            .collect();
        let telemetry = Arc::new(DeviceTelemetry::default());
        let device = PanickingDevice {
            poison: "R17".into(),
            breaker: Breaker::new(5, Arc::clone(&telemetry)),
            telemetry,
        };
        let stop = Stop::default();
        let report = Enrollment {
            people: &people,
            targets: vec![Target {
                device: Arc::new(device),
                max_in_flight: 2,
            }],
            cache: &NoCache,
            secret: &KeySecret::random(),
            options: EngineOptions {
                batch_size: NonZeroUsize::new(10).unwrap(),
                ..EngineOptions::default()
            },
            verbosity: Verbosity::Quiet,
            max_failures: None,
        }
        .run(&stop)
        .unwrap();
        assert_eq!(report.registered, 40);
        assert_eq!(report.failed, 10);
        assert!(report
            .failures
            .iter()
            .all(|f| f.error.contains("worker panicked: driver bug on R17")));
    }
}
