//! What travels through the queue, as JSON in one field of each stream entry: a job
//! (central office to a site), a run's record, and a job's result (site back to the
//! central office). Plain JSON so that `redis-cli XRANGE` shows what is there, and so
//! that an agent of another version can still read a job or refuse it clearly.

use crate::category::Category;
use crate::person::Person;
use crate::report::Counts;
use crate::vendor::Kind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The field of a jobs-stream entry that holds the [`Job`].
pub const JOB_FIELD: &str = "job";

/// The field of a results-stream entry that holds the [`JobResult`].
pub const RESULT_FIELD: &str = "result";

/// One device's share of a run at one site: at most [`super::MAX_JOB_PEOPLE`] people,
/// who must end up on the device named `device`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The run's id.
    pub run: String,
    /// Unique in the run: `{site}/{device}/{part}`. `status` counts each job once.
    pub id: String,
    pub site: String,
    /// The device's name, as in the site's devices file.
    pub device: String,
    /// `--expire`: people whose `end` has passed leave the device instead.
    pub expire: bool,
    /// The people, names included: the device needs them. None in a prune job.
    pub people: Vec<Person>,
    /// A device's prune job (`publish --prune`), which enrolls nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneJob>,
}

/// A [`Job`] as `publish` writes it: the same JSON, made from borrowed parts, so that
/// a million person entries are never a million owned copies.
#[derive(Debug, Serialize)]
pub struct JobView<'a> {
    pub run: &'a str,
    pub id: &'a str,
    pub site: &'a str,
    pub device: &'a str,
    pub expire: bool,
    pub people: &'a [&'a Person],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<&'a PruneJob>,
}

/// What a prune job needs: the whole list's registrations (no names), which the device
/// keeps, and the prune's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneJob {
    pub keep: Vec<String>,
    /// `--prune-unmanaged`.
    pub unmanaged: bool,
    /// `--max-remove`, as written (`10%`, `50`).
    pub max_remove: String,
}

/// One device of a run, as the central fleet file names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDevice {
    pub name: String,
    pub site: String,
    pub kind: Kind,
    /// The people who must end up on it (the operations before any expire).
    pub people: u64,
    /// Its jobs.
    pub jobs: u64,
}

/// A run, as `publish` records it once: what `status` needs to know what "done" is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    /// When it was published (Unix ms): the start of the run's clock.
    pub published_ms: u64,
    pub participants: u64,
    pub expire: bool,
    pub devices: Vec<RunDevice>,
}

impl RunRecord {
    /// Every job of the run.
    pub fn jobs(&self) -> u64 {
        self.devices.iter().map(|d| d.jobs).sum()
    }
}

/// A pair that did not end on its device: the registration and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairFailure {
    pub registration: String,
    pub error: String,
}

/// What one job did, appended to the run's results stream by the agent that ran it, in
/// the same transaction that acknowledges the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// The job's id ([`Job::id`]).
    pub job: String,
    pub site: String,
    pub device: String,
    /// The agent that ran it.
    pub agent: String,
    /// The job's people.
    pub people: u64,
    /// The job's operations (its people, less those who left with `--expire`, plus
    /// the removals).
    pub operations: u64,
    /// Pairs per category, under the report's keys ([`Category::key`]).
    pub counts: BTreeMap<String, u64>,
    /// Each failed pair (as many as `counts["failed"]`).
    pub failures: Vec<PairFailure>,
    /// When the job was finished (Unix ms).
    pub finished_ms: u64,
}

/// What a job did on its device: its operations, their counts, and its failed pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub operations: u64,
    pub counts: Counts,
    pub failures: Vec<PairFailure>,
}

impl JobOutcome {
    /// Each of `registrations` failed with `error`; none (a prune job, or a job whose
    /// people cannot be read) is one failed operation, as a device that could not be
    /// listed is in `enroll`: a job that did nothing is never silent.
    pub fn all_failed(mut registrations: Vec<String>, error: &str) -> JobOutcome {
        if registrations.is_empty() {
            registrations.push(String::new());
        }
        let failures: Vec<PairFailure> = registrations
            .into_iter()
            .map(|registration| PairFailure {
                registration,
                error: error.to_string(),
            })
            .collect();
        JobOutcome {
            operations: failures.len() as u64,
            counts: Counts {
                failed: failures.len() as u64,
                ..Counts::default()
            },
            failures,
        }
    }
}

impl JobResult {
    /// The result of the job `job` (its id) of `people` people on `device` at `site`,
    /// as `agent` finished it now.
    pub fn new(
        job: &str,
        site: &str,
        device: &str,
        agent: &str,
        people: usize,
        outcome: JobOutcome,
    ) -> JobResult {
        JobResult {
            job: job.to_string(),
            site: site.to_string(),
            device: device.to_string(),
            agent: agent.to_string(),
            people: people as u64,
            operations: outcome.operations,
            counts: JobResult::counts_of(&outcome.counts),
            failures: outcome.failures,
            finished_ms: super::now_ms(),
        }
    }

    /// The counts under the report's categories (keys this version does not know are
    /// left out: a newer agent's category is not miscounted as another).
    pub fn category_counts(&self) -> Counts {
        let mut counts = Counts::default();
        for category in Category::ALL {
            counts[category] = self.counts.get(category.key()).copied().unwrap_or(0);
        }
        counts
    }

    /// `counts` in the wire form.
    pub fn counts_of(counts: &Counts) -> BTreeMap<String, u64> {
        counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| (c.key().to_string(), n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_travel_under_the_report_keys_and_come_back_whole() {
        let counts = Counts {
            registered: 3,
            failed: 2,
            skipped_cache: 1,
            ..Counts::default()
        };
        let wire = JobResult::counts_of(&counts);
        assert_eq!(wire.get("skipped_cache"), Some(&1));
        let result = JobResult {
            job: "s/d/0".into(),
            site: "s".into(),
            device: "d".into(),
            agent: "a".into(),
            people: 6,
            operations: 6,
            counts: wire,
            failures: Vec::new(),
            finished_ms: 0,
        };
        let back: JobResult =
            serde_json::from_str(&serde_json::to_string(&result).unwrap()).unwrap();
        assert_eq!(back.category_counts(), counts);
    }
}
