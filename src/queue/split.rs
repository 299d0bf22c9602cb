//! How `publish` cuts one list into per-site work: every person on every device of the
//! fleet, one job per device and chunk of people, and the run's id.
//!
//! The run id is a hash of the work itself: each device (site, name) with the
//! registration and fingerprint of each of its people, and the options that change
//! what a job does. The same list published twice is the same run, so `publish` can
//! tell that it has nothing to add. People are taken in registration order, so a CSV
//! whose rows were merely reordered is the same run too.

use super::wire::{JobView, PruneJob, RunDevice, RunRecord};
use crate::config::FleetDevice;
use crate::person::Person;
use crate::stop::FailureLimit;
use sha2::{Digest, Sha256};

/// What changes the jobs of a run besides the people and the devices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitOptions {
    /// People per job, at most [`super::MAX_JOB_PEOPLE`].
    pub job_people: usize,
    /// `--expire`.
    pub expire: bool,
    /// `--prune`: one prune job per device, queued before its people.
    pub prune: Option<PruneOptions>,
}

/// `--prune`'s rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneOptions {
    /// `--prune-unmanaged`.
    pub unmanaged: bool,
    /// `--max-remove`.
    pub max_remove: FailureLimit,
}

/// A run cut into jobs: its record, and each site's work, whose jobs are made one at a
/// time by [`Split::for_each_job`] (a run of 100,000 people on 10 devices is a million
/// person entries: they are written out as they are made, never all held as values).
#[derive(Debug)]
pub struct Split<'p> {
    pub record: RunRecord,
    sites: Vec<SiteWork<'p>>,
    /// The people in registration order, cut into shares of `chunk` people.
    ordered: Vec<&'p Person>,
    chunk: usize,
    expire: bool,
    prune: Option<PruneJob>,
}

/// One site's devices, in the fleet file's order.
#[derive(Debug)]
struct SiteWork<'p> {
    site: String,
    devices: Vec<&'p str>,
}

impl Split<'_> {
    /// Each job as `(site, job JSON)`, in the order they are queued: per site, the prune
    /// jobs first (removals free cards for the participants who now hold them, when they
    /// run first), then each share of the people on each device in turn (devices
    /// interleaved, so a site's agents work on all its devices at once).
    pub fn for_each_job(&self, mut job: impl FnMut(&str, String)) {
        let json = |view: &JobView<'_>| serde_json::to_string(view).expect("a job is JSON");
        for work in &self.sites {
            let site = work.site.as_str();
            if let Some(prune) = &self.prune {
                for device in &work.devices {
                    job(
                        site,
                        json(&JobView {
                            run: &self.record.id,
                            id: &format!("{site}/{device}/prune"),
                            site,
                            device,
                            expire: false,
                            people: &[],
                            prune: Some(prune),
                        }),
                    );
                }
            }
            for (part, people) in self.ordered.chunks(self.chunk).enumerate() {
                for device in &work.devices {
                    job(
                        site,
                        json(&JobView {
                            run: &self.record.id,
                            id: &format!("{site}/{device}/{part}"),
                            site,
                            device,
                            expire: self.expire,
                            people,
                            prune: None,
                        }),
                    );
                }
            }
        }
    }

    /// The sites, in the order the fleet file first names them.
    pub fn sites(&self) -> impl Iterator<Item = &str> {
        self.sites.iter().map(|w| w.site.as_str())
    }
}

/// Cuts `people` on every device of `fleet` into jobs; `published_ms` starts the run's
/// clock.
pub fn split<'p>(
    people: &'p [Person],
    fleet: &'p [FleetDevice],
    options: SplitOptions,
    published_ms: u64,
) -> Split<'p> {
    let chunk = options.job_people.clamp(1, super::MAX_JOB_PEOPLE);
    let mut ordered: Vec<&Person> = people.iter().collect();
    ordered.sort_by(|a, b| a.registration.cmp(&b.registration));
    let id = run_id(&ordered, fleet, options, chunk);
    let mut sites: Vec<SiteWork<'p>> = Vec::new();
    for device in fleet {
        match sites.iter_mut().find(|w| w.site == device.site) {
            Some(work) => work.devices.push(&device.name),
            None => sites.push(SiteWork {
                site: device.site.clone(),
                devices: vec![&device.name],
            }),
        }
    }
    let parts = ordered.len().div_ceil(chunk);
    let record = RunRecord {
        id,
        published_ms,
        participants: people.len() as u64,
        expire: options.expire,
        devices: fleet
            .iter()
            .map(|d| RunDevice {
                name: d.name.clone(),
                site: d.site.clone(),
                kind: d.kind,
                people: people.len() as u64,
                jobs: (parts + usize::from(options.prune.is_some())) as u64,
            })
            .collect(),
    };
    Split {
        record,
        sites,
        prune: options.prune.map(|prune| PruneJob {
            keep: ordered.iter().map(|p| p.registration.clone()).collect(),
            unmanaged: prune.unmanaged,
            max_remove: prune.max_remove.to_string(),
        }),
        ordered,
        chunk,
        expire: options.expire,
    }
}

/// 16 hex digits of SHA-256 over the work: enough that two different lists never meet
/// (2^64), short enough to type in `status --run`.
fn run_id(
    people: &[&Person],
    fleet: &[FleetDevice],
    options: SplitOptions,
    chunk: usize,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("catraca-run v1\0{chunk}\0{}\0", options.expire));
    if let Some(prune) = options.prune {
        hasher.update(format!(
            "prune\0{}\0{}\0",
            prune.unmanaged, prune.max_remove
        ));
    }
    for device in fleet {
        hasher.update(format!(
            "device\0{}\0{}\0{}\0{}\0",
            device.site,
            device.name,
            device.kind,
            device.cards.fingerprint_salt()
        ));
    }
    for person in people {
        hasher.update(format!(
            "person\0{}\0{}\0",
            person.registration,
            person.fingerprint()
        ));
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::CardRule;
    use crate::queue::wire::Job;
    use crate::vendor::Kind;

    fn person(registration: &str, name: &str) -> Person {
        Person {
            registration: registration.into(),
            name: name.into(),
            card: None,
            cards_listed: false,
            begin: None,
            end: None,
            group: None,
            line: 2,
            photo: None,
        }
    }

    fn device(name: &str, site: &str) -> FleetDevice {
        FleetDevice {
            name: name.into(),
            site: site.into(),
            kind: Kind::Controlid,
            cards: CardRule::vendor_default(Kind::Controlid),
        }
    }

    const OPTIONS: SplitOptions = SplitOptions {
        job_people: 2,
        expire: false,
        prune: None,
    };

    /// The jobs of `split` as the agents read them, by site, in queue order.
    fn jobs(split: &Split<'_>) -> Vec<(String, Job)> {
        let mut jobs = Vec::new();
        split.for_each_job(|site, json| {
            jobs.push((
                site.to_string(),
                serde_json::from_str(&json).expect("a Job"),
            ));
        });
        jobs
    }

    #[test]
    fn every_person_reaches_every_device_of_every_site_in_chunks() {
        let people: Vec<Person> = (0..5).map(|i| person(&format!("{i}"), "x")).collect();
        let fleet = [device("a1", "a"), device("a2", "a"), device("b1", "b")];
        let split = split(&people, &fleet, OPTIONS, 0);
        assert_eq!(split.sites().collect::<Vec<_>>(), ["a", "b"]);
        let all = jobs(&split);
        assert_eq!(all.len(), 9);
        let jobs: Vec<Job> = all
            .into_iter()
            .filter(|(site, _)| site == "a")
            .map(|(_, job)| job)
            .collect();
        assert_eq!(jobs.len(), 6, "3 chunks x 2 devices");
        assert!(jobs
            .iter()
            .all(|j| j.run == split.record.id && j.site == "a"));
        assert_eq!(jobs[0].id, "a/a1/0");
        assert_eq!(jobs[0].device, "a1");
        assert_eq!(jobs[1].device, "a2", "devices interleaved");
        assert!(jobs.iter().all(|j| j.people.len() <= 2));
        let on_a1: usize = jobs
            .iter()
            .filter(|j| j.device == "a1")
            .map(|j| j.people.len())
            .sum();
        assert_eq!(on_a1, 5);
        assert_eq!(split.record.jobs(), 9);
    }

    #[test]
    fn the_run_id_depends_on_the_work_only() {
        let fleet = [device("a1", "a")];
        let people = [person("1", "Ana"), person("2", "Bia")];
        let reordered = [person("2", "Bia"), person("1", "Ana")];
        let renamed = [person("1", "Ana"), person("2", "Bea")];
        let id = |people: &[Person], options| split(people, &fleet, options, 0).record.id;
        assert_eq!(id(&people, OPTIONS), id(&reordered, OPTIONS));
        assert_ne!(id(&people, OPTIONS), id(&renamed, OPTIONS));
        let expire = SplitOptions {
            expire: true,
            ..OPTIONS
        };
        assert_ne!(id(&people, OPTIONS), id(&people, expire));
        let prune = SplitOptions {
            prune: Some(PruneOptions {
                unmanaged: false,
                max_remove: FailureLimit::Percent(10.0),
            }),
            ..OPTIONS
        };
        assert_ne!(id(&people, OPTIONS), id(&people, prune));
        let split = split(&people, &fleet, prune, 0);
        let jobs: Vec<Job> = jobs(&split).into_iter().map(|(_, job)| job).collect();
        assert_eq!(jobs[0].id, "a/a1/prune", "the prune job goes first");
        assert_eq!(jobs[1].people, people, "then the people, whole");
        assert_eq!(jobs[0].prune.as_ref().unwrap().keep, ["1", "2"]);
        assert!(jobs[0].people.is_empty());
        assert_eq!(split.record.jobs(), 2);
        assert_eq!(id(&people, OPTIONS).len(), 16);
    }
}
