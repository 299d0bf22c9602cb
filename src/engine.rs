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
use crate::device::{breaker, Device, DeviceError, DevicePerson, Outcome, Plan};
use crate::i18n::{self, Msg};
use crate::person::Person;
use crate::reporter::{Event, JobTiming};
use crate::stop::{FailureLimit, Stop};
use crate::telemetry;
use crossbeam_channel::Sender;
use rayon::prelude::*;
use std::collections::{HashSet, VecDeque};
use std::num::NonZeroUsize;
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
    /// What leaves the devices (`--prune`, `--expire`, `catraca remove`).
    pub removal: RemovalOptions,
    /// `--verify P%`: read back this share (0 to 1) of the pairs written in this run.
    pub verify: Option<f64>,
    /// `--reconcile`: the cache is not trusted (as `skip_cache`), and a pair found not
    /// done on the device also leaves the cache.
    pub reconcile: bool,
}

/// Who is taken off the devices, besides enrolling the CSV.
///
/// "Enrolled by catraca" is read from the cache, which already holds a record of every
/// pair a device confirmed, under a keyed hash of (device, registration): a person the
/// device holds is catraca's exactly when the hash of its registration is a key of the
/// cache. So no registration is stored in clear, nothing new is stored at all, and it
/// works the same on every vendor (Hikvision and Intelbras have no groups catraca could
/// mark people with). The price: with `--cache none`, or after the cache is lost, no one
/// on a device is known as catraca's and `--prune` removes nobody; that errs on the side
/// of keeping people (`--prune-unmanaged` removes everyone not in the CSV). A person
/// another system put on a device becomes catraca's once a CSV lists them and the pair
/// is recorded: from then on the CSV is their list.
#[derive(Debug, Clone)]
pub struct RemovalOptions {
    /// `--prune`: remove people catraca enrolled that the CSV no longer lists.
    pub prune: bool,
    /// `--prune-unmanaged`: prune people catraca did not enroll too.
    pub prune_unmanaged: bool,
    /// The safety floor of a prune: refuse the whole run when a device would lose more
    /// than this. Default 10%: a wrong or truncated CSV must not empty a device.
    pub max_remove: FailureLimit,
    /// `--expire`: people of the CSV whose `end` has passed leave the devices instead of
    /// being enrolled.
    pub expire: bool,
    /// `catraca remove`: the people given leave every device; nobody is enrolled.
    pub remove_listed: bool,
}

impl Default for RemovalOptions {
    fn default() -> Self {
        RemovalOptions {
            prune: false,
            prune_unmanaged: false,
            max_remove: FailureLimit::Percent(10.0),
            expire: false,
            remove_listed: false,
        }
    }
}

impl RemovalOptions {
    /// Whether the devices must be listed before anything is done.
    fn lists_devices(&self) -> bool {
        self.prune || self.expire || self.remove_listed
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: NonZeroUsize::new(DEFAULT_THREADS).expect("nonzero"),
            sequential: false,
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
    /// People to take off the device (pruned, expired, or listed to `catraca remove`).
    Remove {
        device: usize,
        people: Vec<DevicePerson>,
        deferrals: u32,
    },
}

impl Job {
    fn device(&self) -> usize {
        match self {
            Job::Plan { device, .. } | Job::Write { device, .. } | Job::Remove { device, .. } => {
                *device
            }
        }
    }

    /// The participants of an enrollment job (none for a removal).
    fn people(&self) -> Vec<u32> {
        match self {
            Job::Plan { people, .. } => people.clone(),
            Job::Write { work, .. } => work.iter().map(|(p, _)| *p).collect(),
            Job::Remove { .. } => Vec::new(),
        }
    }

    fn deferrals(&self) -> u32 {
        match self {
            Job::Plan { deferrals, .. }
            | Job::Write { deferrals, .. }
            | Job::Remove { deferrals, .. } => *deferrals,
        }
    }

    /// Reports every pair of the job failed with `reason` (it never ran, or panicked).
    fn fail(self, reason: &DeviceError, events: &Sender<Event>) {
        let device = self.device();
        let event = match self {
            Job::Remove { people, .. } => Event::Removed {
                device,
                outcomes: people
                    .into_iter()
                    .map(|p| (p.registration, Err(reason.clone())))
                    .collect(),
                planned: false,
            },
            other => Event::Failed {
                device,
                people: other.people(),
                error: reason.clone(),
            },
        };
        let _ = events.send(event);
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
    /// (device, person, updated) of every pair written in this run, for `--verify`.
    written: Mutex<Vec<(usize, u32, bool)>>,
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
    } else if matches!(error, DeviceError::CardTaken(_)) {
        // A card that moves between two people of the CSV is still on its old owner
        // when the new one is written first; once the old owner's job has run, a fresh
        // plan finds it free. A real conflict fails again and is reported.
        deferrals < MAX_CONFLICT_DEFERRALS
    } else {
        error.is_transient() && deferrals < MAX_ANSWERED_DEFERRALS
    }
}

/// Rounds of deferral for pairs whose card was another person's (see `worth_another_go`).
const MAX_CONFLICT_DEFERRALS: u32 = 2;

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
        let pending: Vec<Vec<u32>> = if self.options.skip_cache
            || self.options.reconcile
            || !self.cache.remembers()
            || self.cache.known_empty()
        {
            vec![staying; self.targets.len()]
        } else if self.options.sequential {
            self.check_cache_serially(&staying, &fingerprints, events)?
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
            targets: self.targets,
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
                            }))
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

        // The writer lives as long as the workers: once they are done, dropping the
        // queue makes it commit what is left, and the scope waits for that commit, so
        // the report never counts as done a pair the cache may still lose.
        std::thread::scope(|threads| {
            let records = self.start_writer(threads, events);
            let records = records.as_ref();
            if self.options.sequential {
                self.work(&scheduler, records, &fingerprints, events);
            } else {
                pool.scope(|scope| {
                    for _ in 0..self.options.threads.get() {
                        scope.spawn(|_| self.work(&scheduler, records, &fingerprints, events));
                    }
                });
            }
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

    /// Lists every device (in parallel across devices, one request at a time on each),
    /// picks who leaves each one, and checks the safety floor before anything is sent.
    /// `expired[p]` says whether person `p`'s window has ended.
    fn removals(
        &self,
        pool: &rayon::ThreadPool,
        expired: &[bool],
        events: &Sender<Event>,
    ) -> anyhow::Result<Vec<Vec<DevicePerson>>> {
        let removal = &self.options.removal;
        if removal.prune && self.people.is_empty() {
            anyhow::bail!(
                "the CSV lists nobody: --prune would remove everyone catraca enrolled; nothing was removed"
            );
        }
        let listings: Vec<Result<Vec<DevicePerson>, DeviceError>> = if self.options.sequential {
            self.targets.iter().map(|t| t.device.people()).collect()
        } else {
            pool.install(|| self.targets.par_iter().map(|t| t.device.people()).collect())
        };
        let listed: HashSet<&str> = self
            .people
            .iter()
            .map(|p| p.registration.as_str())
            .collect();
        let expired: HashSet<&str> = self
            .people
            .iter()
            .zip(expired)
            .filter(|(_, &expired)| removal.expire && expired)
            .map(|(p, _)| p.registration.as_str())
            .collect();
        let mut cache = if removal.prune && !removal.prune_unmanaged {
            Some(self.cache.connect()?)
        } else {
            None
        };
        let mut chosen = Vec::with_capacity(self.targets.len());
        let mut refusals = Vec::new();
        for (d, listing) in listings.into_iter().enumerate() {
            let device = &self.targets[d].device;
            let held = match listing {
                Ok(held) => held,
                Err(e) => {
                    log::error!("{}: could not list its people: {e}", device.name());
                    let _ = events.send(Event::ListingFailed {
                        device: d,
                        error: format!(
                            "could not list the device's people, nobody was removed from it: {e}"
                        ),
                    });
                    chosen.push(Vec::new());
                    continue;
                }
            };
            let mut leaving: Vec<DevicePerson> = Vec::new();
            let mut pruned = 0usize;
            if removal.remove_listed {
                leaving.extend(
                    held.iter()
                        .filter(|h| listed.contains(h.registration.as_str()))
                        .cloned(),
                );
            } else {
                leaving.extend(
                    held.iter()
                        .filter(|h| expired.contains(h.registration.as_str()))
                        .cloned(),
                );
                if removal.prune {
                    let gone: Vec<&DevicePerson> = held
                        .iter()
                        .filter(|h| !listed.contains(h.registration.as_str()))
                        .collect();
                    let managed: Vec<bool> = match cache.as_mut() {
                        None => vec![true; gone.len()],
                        // `--cache none`: nobody is known as catraca's.
                        Some(_) if !self.cache.remembers() => vec![false; gone.len()],
                        Some(cache) => {
                            let pairs = DeviceKeys::new(self.secret, &device.cache_id());
                            let keys: Vec<CacheKey> =
                                gone.iter().map(|h| pairs.key(&h.registration)).collect();
                            let mut found = Vec::with_capacity(keys.len());
                            for chunk in keys.chunks(CACHE_CHUNK) {
                                found.extend(cache.lookup(chunk)?.into_iter().map(|f| f.is_some()));
                            }
                            found
                        }
                    };
                    let before = leaving.len();
                    leaving.extend(
                        gone.into_iter()
                            .zip(managed)
                            .filter(|(_, managed)| *managed)
                            .map(|(h, _)| h.clone()),
                    );
                    pruned = leaving.len() - before;
                }
            }
            if removal.prune
                && removal
                    .max_remove
                    .exceeded(pruned as u64, held.len() as u64)
            {
                refusals.push(i18n::tr(
                    Msg::PruneTooMany,
                    &[
                        ("device", &device.name()),
                        ("url", &device.url()),
                        ("count", &pruned),
                        ("total", &held.len()),
                        ("limit", &removal.max_remove),
                    ],
                ));
            }
            chosen.push(leaving);
        }
        if !refusals.is_empty() {
            anyhow::bail!("{}\n{}", refusals.join("\n"), i18n::t(Msg::PruneRefused));
        }
        for (d, leaving) in chosen.iter().enumerate() {
            if leaving.is_empty() {
                continue;
            }
            let _ = events.send(Event::Operations {
                device: d,
                delta: leaving.len() as i64,
            });
            if self.options.dry_run {
                let _ = events.send(Event::Removed {
                    device: d,
                    outcomes: leaving
                        .iter()
                        .map(|p| (p.registration.clone(), Ok(())))
                        .collect(),
                    planned: true,
                });
            }
        }
        if self.options.dry_run {
            return Ok(vec![Vec::new(); self.targets.len()]);
        }
        Ok(chosen)
    }

    /// `--verify`: reads back a random `share` of the pairs written in this run; a pair
    /// the device does not hold as written (it answered OK without storing) is reported
    /// failed and leaves the cache, so the next run writes it again.
    fn verify(
        &self,
        pool: &rayon::ThreadPool,
        mut written: Vec<(usize, u32, bool)>,
        share: f64,
        events: &Sender<Event>,
    ) {
        use rand::seq::SliceRandom;
        if written.is_empty() || share <= 0.0 {
            return;
        }
        let wanted = ((written.len() as f64 * share).ceil() as usize).clamp(1, written.len());
        written.shuffle(&mut rand::rng());
        written.truncate(wanted);
        let mut by_device: Vec<Vec<(u32, bool)>> = vec![Vec::new(); self.targets.len()];
        for (d, p, updated) in written {
            by_device[d].push((p, updated));
        }
        let check = |(d, sample): (usize, &Vec<(u32, bool)>)| {
            let device = &self.targets[d].device;
            let mut cache = self.cache.connect().ok();
            for chunk in sample.chunks(PLAN_CHUNK) {
                let refs: Vec<&Person> = chunk
                    .iter()
                    .map(|(p, _)| &self.people[*p as usize])
                    .collect();
                let plans = match device.plan(&refs) {
                    Ok(plans) => plans,
                    Err(e) => {
                        log::warn!(
                            "{}: --verify could not read people back: {e}",
                            device.name()
                        );
                        continue;
                    }
                };
                let _ = events.send(Event::Verified {
                    count: chunk.len() as u64,
                });
                let missing: Vec<(u32, bool, String)> = chunk
                    .iter()
                    .zip(plans)
                    .filter_map(|(&(p, updated), plan)| match plan {
                        Plan::Unchanged { .. } => None,
                        Plan::Create => Some((
                            p,
                            updated,
                            "the device does not hold this person".to_string(),
                        )),
                        Plan::Update { changes, .. } => Some((
                            p,
                            updated,
                            format!(
                                "the device holds this person with a different {}",
                                changes.join(", ")
                            ),
                        )),
                        Plan::Ambiguous { ids } => Some((
                            p,
                            updated,
                            format!("the device holds this registration {} times", ids.len()),
                        )),
                    })
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                if let Some(cache) = cache.as_mut() {
                    let people: Vec<u32> = missing.iter().map(|(p, _, _)| *p).collect();
                    if let Err(e) = cache.forget(&self.keys(d, &people)) {
                        log::warn!("could not drop unverified pairs from the cache: {e}");
                    }
                }
                for (person, updated, why) in missing {
                    let _ = events.send(Event::VerifyFailed {
                        device: d,
                        person,
                        updated,
                        error: format!("{why}, though it answered OK to the write (--verify): run again, and check the device"),
                    });
                }
            }
        };
        if self.options.sequential {
            by_device.iter().enumerate().for_each(check);
        } else {
            pool.install(|| by_device.par_iter().enumerate().for_each(check));
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
        staying: &[u32],
        fingerprints: &[u64],
        events: &Sender<Event>,
    ) -> anyhow::Result<Vec<Vec<u32>>> {
        let chunks: Vec<(usize, &[u32])> = (0..self.targets.len())
            .flat_map(|d| staying.chunks(CACHE_CHUNK).map(move |c| (d, c)))
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
        staying: &[u32],
        fingerprints: &[u64],
        events: &Sender<Event>,
    ) -> anyhow::Result<Vec<Vec<u32>>> {
        let mut connection = self.cache.connect()?;
        let mut pending = vec![Vec::new(); self.targets.len()];
        for (device, list) in pending.iter_mut().enumerate() {
            for chunk in staying.chunks(CACHE_CHUNK) {
                list.extend(self.split_cached(
                    connection.as_mut(),
                    device,
                    chunk,
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
        people: &[u32],
        fingerprints: &[u64],
        events: &Sender<Event>,
    ) -> anyhow::Result<Vec<u32>> {
        let cached = connection.lookup(&self.keys(device, people))?;
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
        let entries: Vec<(CacheKey, u64)> = self
            .keys(device, &done)
            .into_iter()
            .zip(done.iter().map(|&p| fingerprints[p as usize]))
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
    use crate::enroll::Enrollment;
    use crate::reporter::Verbosity;

    /// A device whose driver panics on one person: the panic must cost that job's
    /// pairs, reported failed, and never hang the run.
    struct PanickingDevice {
        poison: String,
        http: crate::device::http::HttpClient,
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
                cards_listed: false,
                begin: None,
                end: None,
                group: None,
                line: i + 2,
            })
            .collect();
        let device = PanickingDevice {
            poison: "R17".into(),
            http: crate::device::http::HttpClient::new(Default::default(), 1, Default::default()),
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
