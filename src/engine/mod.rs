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
//! A pair is recorded in the cache only after the device confirmed it: the worker hands
//! it to the one cache writer, which commits in groups (`cache::group_commit`) and has
//! committed everything by the time `run` returns. A job whose worker panics reports all
//! its pairs failed; it never hangs the run.
//!
//! What leaves the devices (`--prune`, `--expire`, `catraca remove`) is decided before
//! anything is sent: every device is listed (in parallel across devices, one request at
//! a time on each), the people leaving each are chosen (see [`RemovalOptions`]) and the
//! safety floor of a prune is checked; then *remove* jobs go first in each device's
//! queue, sharing the pool, the in-flight limits, the breaker and the reporter with the
//! enrollment. A removed pair leaves the cache. `--verify` reads back a sample of the
//! pairs written once all jobs are done.

use crate::cache::group_commit::{self, RecordQueue};
use crate::cache::{Cache, CacheConnection, CacheKey, DeviceKeys, KeySecret};
use crate::device::telemetry;
use crate::device::{card_string, Device, DeviceError, DeviceInfo, DevicePerson, Outcome, Plan};
use crate::i18n::{self, Msg};
use crate::person::Person;
use crate::reporter::{Event, JobTiming, Verbosity};
use crate::stop::{FailureLimit, Stop};
use crossbeam_channel::Sender;
use rayon::prelude::*;
use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

mod removal;
mod scheduler;
mod verify;

pub use removal::RemovalOptions;
use scheduler::{worth_another_go, DeviceQueue, Job, QueueState, Scheduler};

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

/// Mixed into the fingerprint of a pair whose photo counts, so that the same person
/// with and without a photo never share a fingerprint.
const PHOTO_SALT: u64 = 0x70_68_6F_74_6F_5F_76_31; // "photo_v1"

/// Cache lookups are made in chunks of this many keys: one round trip each.
const CACHE_CHUNK: usize = 1000;

/// How the work is spread.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Worker threads. Default [`DEFAULT_THREADS`] (10), as the system we replace:
    /// enough to keep 5 devices with 2 requests in flight each busy.
    pub threads: NonZeroUsize,
    /// People per create request. Default [`DEFAULT_BATCH_SIZE`] (250): one request
    /// instead of 250, well under the 2 MB body the device's web server handles, and
    /// the vendor's own examples use 50 to 250.
    pub batch_size: NonZeroUsize,
    /// Do not trust the cache for skipping (results are still recorded).
    pub skip_cache: bool,
    /// `catraca plan`: read the devices and report what each pair needs; write nothing
    /// to any device nor to the cache.
    pub dry_run: bool,
    /// What leaves the devices (`--prune`, `--expire`, `catraca remove`).
    pub removal: RemovalOptions,
    /// `--verify P%`: read back this share (0 to 1) of the pairs written in this run.
    pub verify: Option<f64>,
    /// `--reconcile`: the cache is not trusted (as `skip_cache`), and a pair found not
    /// done on the device also leaves the cache.
    pub reconcile: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: NonZeroUsize::new(DEFAULT_THREADS).expect("nonzero"),
            batch_size: NonZeroUsize::new(DEFAULT_BATCH_SIZE).expect("nonzero"),
            skip_cache: false,
            dry_run: false,
            removal: RemovalOptions::default(),
            verify: None,
            reconcile: false,
        }
    }
}

/// A device and the most requests it may see at once.
pub struct Target {
    pub device: Arc<dyn Device>,
    pub max_in_flight: usize,
}

/// Everything one run needs: who, on which devices, with which cache and options.
/// [`Enrollment::run`] (in `enroll.rs`) wires it to the reporter; the methods here are
/// the engine that does the work.
pub struct Enrollment<'a> {
    pub people: &'a [Person],
    pub targets: Vec<Target>,
    pub cache: &'a dyn Cache,
    pub secret: &'a KeySecret,
    pub options: EngineOptions,
    pub verbosity: Verbosity,
    /// Halt the run when failures pass this limit.
    pub max_failures: Option<FailureLimit>,
    /// Set on the first Ctrl-C or by `--max-failures`: no new job starts; pairs not
    /// sent are reported so.
    pub stop: &'a Stop,
}

impl Enrollment<'_> {
    /// The run's devices, in target order, as the reporter, the live status and the
    /// events file name them: a list of the drivers' own endpoints (their one
    /// definition), made once per reader at set-up.
    pub fn devices(&self) -> Arc<[DeviceInfo]> {
        self.targets
            .iter()
            .map(|t| t.device.endpoint().clone())
            .collect()
    }
}

impl Enrollment<'_> {
    /// Runs every pair, sending each outcome to `events`. Returns when all pairs are
    /// reported (or, after a stop, when the jobs in progress finished).
    pub fn run_jobs(&self, events: &Sender<Event>) -> anyhow::Result<()> {
        let fingerprints: Vec<u64> = self.people.iter().map(Person::fingerprint).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.options.threads.get())
            .thread_name(|i| format!("catraca-worker-{i}"))
            .build()?;

        let now = chrono::Utc::now().timestamp();
        let expired: Vec<bool> = self
            .people
            .iter()
            .map(|p| p.end.is_some_and(|end| end < now))
            .collect();
        let removals = if self.options.removal.lists_devices() {
            self.removals(&pool, &expired, events)?
        } else {
            vec![Vec::new(); self.targets.len()]
        };
        let leaving = |p: u32| {
            self.options.removal.remove_listed
                || (self.options.removal.expire && expired[p as usize])
        };
        let not_enrolled = (0..self.people.len() as u32)
            .filter(|&p| leaving(p))
            .count();
        if not_enrolled > 0 {
            for device in 0..self.targets.len() {
                let _ = events.send(Event::Operations {
                    device,
                    delta: -(not_enrolled as i64),
                });
            }
        }

        // Only the people who stay are looked up in the cache: a leaving person's pair
        // is a removal, never also a "skipped (cache)".
        let staying: Vec<u32> = (0..self.people.len() as u32)
            .filter(|&p| !leaving(p))
            .collect();
        let staying = self.refuse_cards_beyond_devices(&staying, events);
        let pending: Vec<Vec<u32>> = if self.options.skip_cache
            || self.options.reconcile
            || !self.cache.remembers()
            || self.cache.known_empty()
        {
            staying
        } else {
            pool.install(|| self.check_cache(&staying, &fingerprints, events))?
        };
        let removal_batch = |d: usize| {
            self.options
                .batch_size
                .get()
                .min(self.targets[d].device.max_remove_batch())
                .max(1)
        };

        let scheduler = Scheduler {
            targets: &self.targets,
            failed: AtomicU64::new(0),
            written: Mutex::new(Vec::new()),
            created_then_deferred: Mutex::new(HashSet::new()),
            state: Mutex::new(QueueState {
                devices: self
                    .targets
                    .iter()
                    .zip(pending)
                    .zip(removals)
                    .enumerate()
                    .map(|(d, ((target, people), removals))| DeviceQueue {
                        // Removals first: a card that leaves with a pruned person is free
                        // for the participant who now holds it.
                        jobs: removals
                            .chunks(removal_batch(d))
                            .map(|c| Job::Remove {
                                device: d,
                                people: c.to_vec(),
                                deferrals: 0,
                            })
                            .chain(people.chunks(PLAN_CHUNK).map(|c| Job::Plan {
                                device: d,
                                people: c.to_vec(),
                                deferrals: 0,
                                after_others: false,
                            }))
                            .collect(),
                        in_flight: 0,
                        limit: target.max_in_flight.max(1),
                    })
                    .collect(),
                running: 0,
                next: 0,
                given_up: Vec::new(),
            }),
            changed: Condvar::new(),
        };

        // The writer lives as long as the workers: once they are done, dropping the
        // queue makes it commit what is left, and the scope waits for that commit, so
        // the report never counts as done a pair the cache may still lose.
        std::thread::scope(|threads| {
            let records = self.start_writer(threads, events);
            let records = records.as_ref();
            pool.scope(|scope| {
                for _ in 0..self.options.threads.get() {
                    scope.spawn(|_| self.work(&scheduler, records, &fingerprints, events));
                }
            });
        });

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
            job.fail(&reason, events);
        }

        if let (Some(share), false) = (self.options.verify, self.stop.is_set()) {
            let written = std::mem::take(&mut *scheduler.written.lock().expect("written lock"));
            self.verify(&pool, written, share, events);
        }
        Ok(())
    }

    /// Starts the cache writer, unless nothing is recorded (`--cache none`, `catraca
    /// plan`). Without a connection for it, confirmed pairs are counted as not cached.
    fn start_writer<'scope>(
        &'scope self,
        threads: &'scope std::thread::Scope<'scope, '_>,
        events: &'scope Sender<Event>,
    ) -> Option<RecordQueue> {
        if !self.cache.remembers() || self.options.dry_run {
            return None;
        }
        match self.cache.connect() {
            Ok(connection) => Some(group_commit::start(
                threads,
                connection,
                group_commit::commit_window(),
                self.stop,
                events,
            )),
            Err(e) => {
                let _ = events.send(Event::CacheUnavailable(e.to_string()));
                None
            }
        }
    }

    /// Fails, before anything is sent, each pair whose card its device cannot take
    /// (beyond its `card_format` or its card field), and returns who stays on each device.
    fn refuse_cards_beyond_devices(
        &self,
        staying: &[u32],
        events: &Sender<Event>,
    ) -> Vec<Vec<u32>> {
        self.targets
            .iter()
            .enumerate()
            .map(|(device, target)| {
                let rule = target.device.cards();
                if rule.takes_every_card() {
                    return staying.to_vec();
                }
                let mut refused = Vec::new();
                let kept = staying
                    .iter()
                    .copied()
                    .filter(|&p| {
                        let card = self.people[p as usize].card;
                        match card.map(|c| card_string(&rule, target.device.name(), c)) {
                            Some(Err(why)) => {
                                refused.push((p, Outcome::Failed(why)));
                                false
                            }
                            _ => true,
                        }
                    })
                    .collect();
                if !refused.is_empty() {
                    let _ = events.send(Event::Pairs {
                        device,
                        outcomes: refused,
                        timing: None,
                    });
                }
                kept
            })
            .collect()
    }

    /// What the cache holds for person `p` on `device` once confirmed: the person's
    /// fingerprint, changed by the device's card rule when the person has a card, so
    /// that a new `card_format` sends the card again, and on a device that takes faces
    /// (`faces`) by the photo's version, so that a new photo is sent again (and only to
    /// facial devices). The version names the fitted photo without fitting it (see
    /// `photo`).
    fn fingerprint_on(&self, device: usize, p: u32, fingerprints: &[u64], faces: bool) -> u64 {
        let person = &self.people[p as usize];
        let mut fingerprint = fingerprints[p as usize];
        if person.card.is_some() {
            fingerprint ^= self.targets[device].device.cards().fingerprint_salt();
        }
        if let (true, Some(version)) = (faces, person.photo.as_ref().and_then(|p| p.version)) {
            // Rotated so that a photo never cancels a card salt it happens to equal.
            fingerprint ^= version.as_u64().rotate_left(17) ^ PHOTO_SALT;
        }
        fingerprint
    }

    /// Whether the fingerprints of `people` on `device` hold their photos: the device
    /// takes faces and someone has a photo. Asks the device (once per run) only then;
    /// `None` when it could not be asked (nothing can be skipped). Both fingerprints
    /// cannot simply be accepted without asking: a person enrolled without a photo and
    /// listed now with one would be skipped, and the photo never sent.
    fn photos_count_on(&self, device: usize, people: &[u32]) -> Option<bool> {
        if !people
            .iter()
            .any(|&p| self.people[p as usize].photo.is_some())
        {
            return Some(false);
        }
        match self.targets[device].device.takes_faces() {
            Ok(faces) => Some(faces),
            Err(e) => {
                log::debug!(
                    "{}: cannot tell whether it takes faces ({e}): nothing skipped by the cache",
                    self.targets[device].device.name()
                );
                None
            }
        }
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
        staying: &[Vec<u32>],
        fingerprints: &[u64],
        events: &Sender<Event>,
    ) -> anyhow::Result<Vec<Vec<u32>>> {
        let chunks: Vec<(usize, &[u32])> = (0..self.targets.len())
            .flat_map(|d| staying[d].chunks(CACHE_CHUNK).map(move |c| (d, c)))
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

    fn split_cached(
        &self,
        connection: &mut dyn CacheConnection,
        device: usize,
        people: &[u32],
        fingerprints: &[u64],
        events: &Sender<Event>,
    ) -> anyhow::Result<Vec<u32>> {
        let Some(faces) = self.photos_count_on(device, people) else {
            return Ok(people.to_vec());
        };
        let cached = connection.lookup(&self.keys(device, people))?;
        let mut pending = Vec::new();
        let mut skipped = Vec::new();
        for (&p, cached) in people.iter().zip(cached) {
            if cached == Some(self.fingerprint_on(device, p, fingerprints, faces)) {
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

    /// One worker: takes jobs until there are none, with its own cache connection for
    /// what leaves the cache, and the writer's queue for what enters it.
    fn work(
        &self,
        scheduler: &Scheduler<'_>,
        records: Option<&RecordQueue>,
        fingerprints: &[u64],
        events: &Sender<Event>,
    ) {
        let mut cache = match self.cache.connect() {
            Ok(c) => Some(c),
            Err(e) => {
                let _ = events.send(Event::CacheUnavailable(e.to_string()));
                None
            }
        };
        while let Some(job) = scheduler.next_job(self.stop) {
            let device = job.device();
            if let Job::Remove {
                people, deferrals, ..
            } = job
            {
                let deferred = self.remove(cache.as_mut(), device, people, deferrals, events);
                scheduler.finish(device, Vec::new(), deferred);
                continue;
            }
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
            let after_others = later
                .iter()
                .any(|(_, o)| matches!(o, Outcome::Failed(DeviceError::CardTaken(_))));
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
                    after_others,
                }
            });
            let timing = JobTiming {
                elapsed: began.elapsed(),
                attempts: 1 + (telemetry::retries_on_this_thread() - retries_before) as u32,
            };
            self.record(
                cache.as_mut(),
                records,
                device,
                &outcomes,
                fingerprints,
                events,
            );
            if self.options.verify.is_some() {
                scheduler
                    .written
                    .lock()
                    .expect("written lock")
                    .extend(outcomes.iter().filter_map(|(p, o)| match o {
                        Outcome::Registered => Some((device, *p, false)),
                        Outcome::Updated => Some((device, *p, true)),
                        _ => None,
                    }));
            }
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

    /// Runs one removal job: the people leave the device, then the cache. People that
    /// failed for a passing reason come back as a later job.
    fn remove(
        &self,
        cache: Option<&mut Box<dyn CacheConnection>>,
        device: usize,
        people: Vec<DevicePerson>,
        deferrals: u32,
        events: &Sender<Event>,
    ) -> Option<Job> {
        let target = &self.targets[device].device;
        let refs: Vec<&DevicePerson> = people.iter().collect();
        let results =
            catch_unwind(AssertUnwindSafe(|| target.remove(&refs))).unwrap_or_else(|_| {
                vec![
                    Err(DeviceError::Internal(
                        "worker panicked removing people".into()
                    ));
                    people.len()
                ]
            });
        let mut later = Vec::new();
        let mut outcomes = Vec::new();
        for (person, result) in people.into_iter().zip(results) {
            match result {
                Err(e) if !self.stop.is_set() && worth_another_go(&e, deferrals) => {
                    later.push(person)
                }
                other => outcomes.push((person.registration, other)),
            }
        }
        let pairs = DeviceKeys::new(self.secret, &target.cache_id());
        let gone: Vec<CacheKey> = outcomes
            .iter()
            .filter(|(_, r)| r.is_ok() && self.cache.remembers())
            .map(|(registration, _)| pairs.key(registration))
            .collect();
        if let (Some(cache), false) = (cache, gone.is_empty()) {
            if let Err(e) = cache.forget(&gone) {
                // The device is right, the cache is not: a person listed again with the
                // same data would be skipped as done.
                log::warn!(
                    "{}: removed people are still in the cache ({e}): if they are listed again, run with --reconcile",
                    target.name()
                );
            }
        }
        if !outcomes.is_empty() {
            let _ = events.send(Event::Removed {
                device,
                outcomes,
                planned: false,
            });
        }
        (!later.is_empty()).then(|| Job::Remove {
            device,
            people: later,
            deferrals: deferrals + 1,
        })
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
            let reason = i18n::tr(Msg::WarnHalted, &[("failed", &failed), ("limit", &limit)]);
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
                ..
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
            Job::Remove { .. } => unreachable!("removal jobs are run by Engine::remove"),
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

    /// Hands the confirmed pairs of one job to the cache writer.
    fn record(
        &self,
        cache: Option<&mut Box<dyn CacheConnection>>,
        records: Option<&RecordQueue>,
        device: usize,
        outcomes: &[(u32, Outcome)],
        fingerprints: &[u64],
        events: &Sender<Event>,
    ) {
        if self.options.reconcile {
            // The cache may vouch for a pair the device does not hold: it must not.
            let failed: Vec<u32> = outcomes
                .iter()
                .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
                .map(|(p, _)| *p)
                .collect();
            if let (Some(cache), false) = (cache, failed.is_empty()) {
                let _ = cache.forget(&self.keys(device, &failed));
            }
        }
        let done: Vec<u32> = outcomes
            .iter()
            .filter(|(_, o)| o.is_done())
            .map(|(p, _)| *p)
            .collect();
        if done.is_empty() || !self.cache.remembers() {
            return;
        }
        let Some(records) = records else {
            let _ = events.send(Event::NotCached {
                count: done.len(),
                error: "no cache connection".into(),
            });
            return;
        };
        // A photo was sent (or found) only where the device takes faces: asked by now.
        let faces = self.photos_count_on(device, &done).unwrap_or(false);
        let entries: Vec<(CacheKey, u64)> = self
            .keys(device, &done)
            .into_iter()
            .zip(
                done.iter()
                    .map(|&p| self.fingerprint_on(device, p, fingerprints, faces)),
            )
            .collect();
        if let Err(lost) = records.record(entries) {
            let _ = events.send(Event::NotCached {
                count: lost.len(),
                error: "the cache writer stopped".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::NoCache;
    use crate::reporter::Verbosity;
    use std::time::Duration;

    /// A device that creates everyone and answers each write with `answer`: the
    /// drivers' misbehaviours the engine must survive, played in memory.
    struct WritingDevice<F> {
        answer: F,
        endpoint: DeviceInfo,
        http: crate::device::http::HttpClient,
    }

    impl<F: Fn(&Person) -> Outcome + Send + Sync> WritingDevice<F> {
        fn new(answer: F) -> WritingDevice<F> {
            WritingDevice {
                answer,
                endpoint: DeviceInfo::new("fake", "http://fake", crate::vendor::Kind::Controlid),
                http: crate::device::http::HttpClient::new(
                    Default::default(),
                    1,
                    Default::default(),
                ),
            }
        }
    }

    impl<F: Fn(&Person) -> Outcome + Send + Sync> Device for WritingDevice<F> {
        fn endpoint(&self) -> &DeviceInfo {
            &self.endpoint
        }
        fn profile(&self) -> &'static crate::device::Profile {
            &crate::device::controlid::PROFILE
        }
        fn http(&self) -> &crate::device::http::HttpClient {
            &self.http
        }
        fn plan(&self, people: &[&Person]) -> Result<Vec<Plan>, DeviceError> {
            Ok(people.iter().map(|_| Plan::Create).collect())
        }
        fn people(&self) -> Result<Vec<crate::device::DevicePerson>, DeviceError> {
            Ok(Vec::new())
        }
        fn remove(&self, people: &[&crate::device::DevicePerson]) -> Vec<Result<(), DeviceError>> {
            vec![Ok(()); people.len()]
        }
        fn apply(&self, work: &[(&Person, Plan)]) -> Vec<Outcome> {
            work.iter().map(|(p, _)| (self.answer)(p)).collect()
        }
    }

    #[test]
    fn a_panicking_worker_fails_its_pairs_and_never_hangs_the_run() {
        let people: Vec<Person> = (0..50)
            .map(|i| Person {
                registration: format!("R{i}"),
                name: format!("P{i}"),
                card: None,
                cards_listed: false,
                begin: None,
                end: None,
                group: None,
                line: i + 2,
                photo: None,
            })
            .collect();
        // A driver bug on one person: the panic must cost that job's pairs, reported
        // failed, and never hang the run.
        let device = WritingDevice::new(|p: &Person| {
            if p.registration == "R17" {
                panic!("driver bug on R17");
            }
            Outcome::Registered
        });
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
            stop: &stop,
        }
        .run()
        .unwrap();
        assert_eq!(report.totals.registered, 40);
        assert_eq!(report.totals.failed, 10);
        assert!(report
            .failures
            .iter()
            .all(|f| f.error.contains("worker panicked: driver bug on R17")));
    }

    #[test]
    fn a_card_moving_between_two_people_waits_for_the_slow_side_instead_of_failing() {
        let people = people(2);
        // R0 wants the card R1 gives up, and R1's write is slow: R0's write is refused
        // (`CardTaken`) until R1's has finished.
        let refusals = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let refused = refusals.clone();
        let freed = std::sync::atomic::AtomicBool::new(false);
        let device = Arc::new(WritingDevice::new(move |p: &Person| {
            use std::sync::atomic::Ordering;
            if p.registration == "R1" {
                std::thread::sleep(Duration::from_millis(300));
                freed.store(true, Ordering::SeqCst);
                Outcome::Registered
            } else if freed.load(Ordering::SeqCst) {
                Outcome::Registered
            } else {
                refused.fetch_add(1, Ordering::SeqCst);
                Outcome::Failed(DeviceError::CardTaken("card 7 belongs to R1".into()))
            }
        }));
        // One person per write and two in flight: R0's write and R1's slow one run
        // together, R0's is refused at once. Its retry must wait for R1's write rather
        // than spend its deferrals while R1 is still in flight.
        let report = Enrollment {
            people: &people,
            targets: vec![Target {
                device,
                max_in_flight: 2,
            }],
            cache: &NoCache,
            secret: &KeySecret::random(),
            options: EngineOptions {
                batch_size: NonZeroUsize::new(1).unwrap(),
                ..EngineOptions::default()
            },
            verbosity: Verbosity::Quiet,
            max_failures: None,
            stop: &Stop::default(),
        }
        .run()
        .unwrap();
        assert_eq!(report.totals.failed, 0, "{:?}", report.failures);
        assert_eq!(report.totals.registered, 2);
        // Refused at most once, while R1 was in flight (none if R1 ran first); never again.
        assert!(refusals.load(std::sync::atomic::Ordering::SeqCst) <= 1);
    }

    /// A device played in memory: it can be down until some moment, it counts the
    /// requests it is asked at once, and it holds people. Every call goes through the
    /// device's breaker as a real driver's HTTP client does.
    struct ScriptedDevice {
        endpoint: DeviceInfo,
        http: crate::device::http::HttpClient,
        /// Until then, every call goes unanswered.
        down_until: Option<Instant>,
        /// People already on the device (for listings).
        held: Vec<crate::device::DevicePerson>,
        in_flight: std::sync::atomic::AtomicUsize,
        peak_in_flight: std::sync::atomic::AtomicUsize,
        calls: std::sync::atomic::AtomicUsize,
        removed: Mutex<Vec<String>>,
    }

    impl ScriptedDevice {
        fn new(name: &str) -> ScriptedDevice {
            ScriptedDevice {
                endpoint: DeviceInfo::new(name, "http://scripted", crate::vendor::Kind::Controlid),
                http: crate::device::http::HttpClient::new(
                    Default::default(),
                    1,
                    Default::default(),
                ),
                down_until: None,
                held: Vec::new(),
                in_flight: Default::default(),
                peak_in_flight: Default::default(),
                calls: Default::default(),
                removed: Mutex::new(Vec::new()),
            }
        }

        /// One request: through the breaker, counted while it lasts.
        fn call(&self) -> Result<(), DeviceError> {
            use std::sync::atomic::Ordering::SeqCst;
            let breaker = self.http.breaker();
            breaker.admit()?;
            self.calls.fetch_add(1, SeqCst);
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.peak_in_flight.fetch_max(now, SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            self.in_flight.fetch_sub(1, SeqCst);
            if self.down_until.is_some_and(|until| Instant::now() < until) {
                let error = DeviceError::Unreachable("connection refused".into());
                breaker.record(false, Some(&error));
                return Err(error);
            }
            breaker.record(true, None);
            Ok(())
        }
    }

    impl Device for ScriptedDevice {
        fn endpoint(&self) -> &DeviceInfo {
            &self.endpoint
        }
        fn profile(&self) -> &'static crate::device::Profile {
            &crate::device::controlid::PROFILE
        }
        fn http(&self) -> &crate::device::http::HttpClient {
            &self.http
        }
        fn plan(&self, people: &[&Person]) -> Result<Vec<Plan>, DeviceError> {
            self.call()?;
            Ok(people.iter().map(|_| Plan::Create).collect())
        }
        fn apply(&self, work: &[(&Person, Plan)]) -> Vec<Outcome> {
            match self.call() {
                Ok(()) => work.iter().map(|_| Outcome::Registered).collect(),
                Err(e) => work.iter().map(|_| Outcome::Failed(e.clone())).collect(),
            }
        }
        fn people(&self) -> Result<Vec<crate::device::DevicePerson>, DeviceError> {
            self.call()?;
            Ok(self.held.clone())
        }
        fn remove(&self, people: &[&crate::device::DevicePerson]) -> Vec<Result<(), DeviceError>> {
            let answer = self.call();
            let mut removed = self.removed.lock().unwrap();
            people
                .iter()
                .map(|p| {
                    answer.clone()?;
                    removed.push(p.registration.clone());
                    Ok(())
                })
                .collect()
        }
    }

    fn people(count: usize) -> Vec<Person> {
        (0..count)
            .map(|i| Person {
                registration: format!("R{i}"),
                name: format!("P{i}"),
                card: None,
                cards_listed: false,
                begin: None,
                end: None,
                group: None,
                line: i + 2,
                photo: None,
            })
            .collect()
    }

    /// Runs `people` on `devices` (with their in-flight limits) with `options`.
    fn run_on(
        people: &[Person],
        devices: Vec<(Arc<ScriptedDevice>, usize)>,
        options: EngineOptions,
    ) -> anyhow::Result<crate::report::Report> {
        Enrollment {
            people,
            targets: devices
                .into_iter()
                .map(|(device, max_in_flight)| Target {
                    device,
                    max_in_flight,
                })
                .collect(),
            cache: &NoCache,
            secret: &KeySecret::random(),
            options,
            verbosity: Verbosity::Quiet,
            max_failures: None,
            stop: &Stop::default(),
        }
        .run()
    }

    fn small_batches() -> EngineOptions {
        EngineOptions {
            batch_size: NonZeroUsize::new(5).unwrap(),
            threads: NonZeroUsize::new(10).unwrap(),
            ..EngineOptions::default()
        }
    }

    #[test]
    fn no_device_sees_more_requests_at_once_than_its_limit() {
        use std::sync::atomic::Ordering::SeqCst;
        let people = people(120);
        let (a, b) = (
            Arc::new(ScriptedDevice::new("a")),
            Arc::new(ScriptedDevice::new("b")),
        );
        let report = run_on(
            &people,
            vec![(Arc::clone(&a), 3), (Arc::clone(&b), 1)],
            small_batches(),
        )
        .unwrap();
        assert_eq!(report.totals.registered, 240);
        assert!(
            a.peak_in_flight.load(SeqCst) <= 3,
            "{}",
            a.peak_in_flight.load(SeqCst)
        );
        assert_eq!(b.peak_in_flight.load(SeqCst), 1);
        // --sequential is one thread with one request in flight per device
        // (RunConfig makes it so; the engine has no branch of its own for it).
        let c = Arc::new(ScriptedDevice::new("c"));
        let sequential = crate::enroll::RunConfig {
            sequential: true,
            batch_size: NonZeroUsize::new(5).unwrap(),
            ..Default::default()
        };
        let options = sequential.engine_options(false);
        assert_eq!(options.threads.get(), 1);
        let limit = sequential.in_flight(3);
        assert_eq!(limit, 1);
        let report = run_on(&people, vec![(Arc::clone(&c), limit)], options).unwrap();
        assert_eq!(report.totals.registered, 120);
        assert_eq!(c.peak_in_flight.load(SeqCst), 1);
    }

    #[test]
    fn a_device_that_stops_answering_is_set_aside_and_finished_when_it_returns() {
        use std::sync::atomic::Ordering::SeqCst;
        let people = people(60);
        let mut down = ScriptedDevice::new("rebooting");
        down.down_until = Some(Instant::now() + Duration::from_millis(600));
        let down = Arc::new(down);
        let up = Arc::new(ScriptedDevice::new("up"));
        let report = run_on(
            &people,
            vec![(Arc::clone(&down), 2), (Arc::clone(&up), 2)],
            small_batches(),
        )
        .unwrap();
        assert_eq!(report.totals.registered, 120, "{:?}", report.failures);
        assert_eq!(report.totals.failed, 0);
        // The breaker kept the traffic down while the device was away: a few requests
        // to open it and one probe per cool-down, not one per job.
        let calls = down.calls.load(SeqCst);
        assert!(calls < 40, "{calls} calls");
    }

    #[test]
    fn a_device_that_never_answers_is_given_up_and_its_pairs_fail_with_the_reason() {
        use std::sync::atomic::Ordering::SeqCst;
        let people = people(40);
        let mut gone = ScriptedDevice::new("gone");
        gone.down_until = Some(Instant::now() + Duration::from_secs(3600));
        let gone = Arc::new(gone);
        let up = Arc::new(ScriptedDevice::new("up"));
        let report = run_on(
            &people,
            vec![(Arc::clone(&gone), 2), (Arc::clone(&up), 2)],
            small_batches(),
        )
        .unwrap();
        assert_eq!(report.per_device[1].counts.registered, 40);
        assert_eq!(report.per_device[0].counts.failed, 40);
        assert!(report
            .failures
            .iter()
            .all(|f| &*f.device == "gone" && f.error.contains("unreachable")));
        assert!(gone.calls.load(SeqCst) < 20, "{}", gone.calls.load(SeqCst));
    }

    #[test]
    fn prune_refuses_a_device_that_would_lose_more_than_the_floor_and_removes_nobody() {
        let people = people(20);
        let holding = |extra: usize| {
            let mut device = ScriptedDevice::new("portaria");
            device.held = (0..20 + extra)
                .map(|i| crate::device::DevicePerson {
                    registration: format!("R{i}"),
                    id: i as i64 + 1,
                })
                .collect();
            Arc::new(device)
        };
        let prune = EngineOptions {
            removal: RemovalOptions {
                prune: true,
                prune_unmanaged: true,
                ..RemovalOptions::default()
            },
            ..small_batches()
        };
        // 5 of 25 is 20%, past the default floor of 10%.
        let over = holding(5);
        let error = run_on(&people, vec![(Arc::clone(&over), 2)], prune.clone())
            .unwrap_err()
            .to_string();
        assert!(error.contains("portaria"), "{error}");
        assert!(over.removed.lock().unwrap().is_empty());
        // 2 of 22 is 9%: they go.
        let under = holding(2);
        let report = run_on(&people, vec![(Arc::clone(&under), 2)], prune).unwrap();
        assert_eq!(report.totals.removed, 2);
        let mut removed = under.removed.lock().unwrap().clone();
        removed.sort();
        assert_eq!(removed, ["R20", "R21"]);
    }
}
