//! The scheduler: per-device queues of jobs, and who works next.
//!
//! A job is one plan (a load of up to 999 people), one write batch, or one batch of
//! removals, always of one device. A worker asks [`Scheduler::next_job`] for work and
//! gets a job of a device that has a free in-flight slot and whose breaker lets
//! requests through, taking devices in turn; a slow or unreachable device never holds a
//! thread another device could use. A job that failed for a passing reason comes back
//! at the end of its device's queue ([`worth_another_go`]); one refused because its
//! card was another person's also waits until nothing else of its device is in flight
//! (the job freeing the card may be running). A device that stays unreachable once
//! nothing else is left is given up on, its jobs reported failed.

use super::Target;
use crate::device::{breaker, DeviceError, DevicePerson, Outcome, Plan};
use crate::reporter::Event;
use crate::stop::Stop;
use crossbeam_channel::Sender;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often a job may be set aside because its device did not answer, before its pairs
/// are reported failed. With the breaker's cool-downs (0.25 s doubling to 4 s) this rides
/// out a device that is gone for about 20 s, e.g. a reboot.
const MAX_DEFERRALS: u32 = 8;

pub(super) enum Job {
    Plan {
        device: usize,
        people: Vec<u32>,
        deferrals: u32,
        /// Set on people whose card was another's: the job waits until no other job of
        /// its device is in flight, so the job that frees the card (a card moving
        /// between two people of the list) has finished before the fresh plan runs.
        /// Without it, a quick failing retry could spin against a slow job in flight
        /// and use up its deferrals, failing a swap that was about to succeed.
        after_others: bool,
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
    pub(super) fn device(&self) -> usize {
        match self {
            Job::Plan { device, .. } | Job::Write { device, .. } | Job::Remove { device, .. } => {
                *device
            }
        }
    }

    /// The participants of an enrollment job (none for a removal).
    pub(super) fn people(&self) -> Vec<u32> {
        match self {
            Job::Plan { people, .. } => people.clone(),
            Job::Write { work, .. } => work.iter().map(|(p, _)| *p).collect(),
            Job::Remove { .. } => Vec::new(),
        }
    }

    /// Whether the job must wait for its device to have nothing else in flight.
    fn waits_for_others(&self) -> bool {
        matches!(
            self,
            Job::Plan {
                after_others: true,
                ..
            }
        )
    }

    pub(super) fn deferrals(&self) -> u32 {
        match self {
            Job::Plan { deferrals, .. }
            | Job::Write { deferrals, .. }
            | Job::Remove { deferrals, .. } => *deferrals,
        }
    }

    /// Reports every pair of the job failed with `reason` (it never ran, or panicked).
    pub(super) fn fail(self, reason: &DeviceError, events: &Sender<Event>) {
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

pub(super) struct DeviceQueue {
    pub(super) jobs: VecDeque<Job>,
    pub(super) in_flight: usize,
    pub(super) limit: usize,
}

pub(super) struct QueueState {
    pub(super) devices: Vec<DeviceQueue>,
    pub(super) running: usize,
    pub(super) next: usize,
    /// Jobs of devices that stayed unreachable when nothing else was left to do.
    pub(super) given_up: Vec<Job>,
}

/// Per-device job queues; hands a worker the next job of a device with a free slot and
/// a closed (or probing) breaker.
pub(super) struct Scheduler<'a> {
    pub(super) targets: &'a [Target],
    /// Pairs reported failed so far, for `--max-failures`.
    pub(super) failed: AtomicU64,
    /// (device, person, updated) of every pair written in this run, for `--verify`.
    pub(super) written: Mutex<Vec<(usize, u32, bool)>>,
    /// (device, person) whose create was sent, then deferred: see `count_earlier_creates`.
    pub(super) created_then_deferred: Mutex<HashSet<(usize, u32)>>,
    pub(super) state: Mutex<QueueState>,
    pub(super) changed: Condvar,
}

impl Scheduler<'_> {
    pub(super) fn next_job(&self, stop: &Stop) -> Option<Job> {
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
                if queue.in_flight > 0 && queue.jobs.front().is_some_and(Job::waits_for_others) {
                    // Woken again when the jobs in flight finish (`finish` notifies).
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
    pub(super) fn blocked_devices_gave_up(&self, state: &QueueState) -> bool {
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
    pub(super) fn count_earlier_creates(
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
    pub(super) fn finish(&self, device: usize, follow_ups: Vec<Job>, deferred: Option<Job>) {
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
    pub(super) fn remaining(&self) -> (Vec<Job>, Vec<Job>) {
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
pub(super) fn worth_another_go(error: &DeviceError, deferrals: u32) -> bool {
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
