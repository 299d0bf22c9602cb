//! `catraca status`: a run's results stream added up into the report `enroll` prints
//! (same JSON keys, each device with its site), plus what only a run of many sites has:
//! totals per site, the jobs still pending, and the agents seen.
//!
//! A job is counted once, by its first result: a job that a slow agent and the agent
//! that claimed it both finished has two results that say the same thing (the second
//! found the people already there), and counting both would count its pairs twice.

use super::wire::{JobResult, RunRecord};
use crate::report::{Counts, DeviceReport, Failure, Report};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The status of a run: the report and the fleet's view of it.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    /// The run's id.
    pub run: String,
    /// Whether every job of the run has its result.
    pub complete: bool,
    pub jobs: JobCounts,
    #[serde(flatten)]
    pub report: Report,
    pub per_site: Vec<SiteStatus>,
    pub agents: Vec<AgentSeen>,
    /// Each device's operations, in the report's device order (the dashboard's
    /// progress bars).
    #[serde(skip)]
    pub per_device_operations: Vec<u64>,
}

/// The run's jobs.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct JobCounts {
    pub total: u64,
    pub done: u64,
    /// Not done yet: waiting for an agent, or being worked on.
    pub pending: u64,
}

/// One site's totals.
#[derive(Debug, Clone, Serialize)]
pub struct SiteStatus {
    pub site: String,
    pub devices: u64,
    pub operations: u64,
    #[serde(flatten)]
    pub counts: Counts,
    pub jobs: JobCounts,
}

/// An agent, and when it last said it was alive.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgentSeen {
    pub site: String,
    pub name: String,
    /// RFC 3339, UTC.
    pub last_heartbeat: String,
    pub seconds_ago: u64,
}

/// Adds up `results` (in stream order) for the run `record`; `agents` are the
/// heartbeats (`site/name` and Unix ms) of the agents of its sites, `now_ms` the time.
pub fn tally(
    record: &RunRecord,
    results: &[JobResult],
    agents: &[(String, u64)],
    now_ms: u64,
) -> RunStatus {
    let mut seen = HashSet::new();
    let firsts: Vec<&JobResult> = results
        .iter()
        .filter(|r| seen.insert(r.job.as_str()))
        .collect();
    let index: HashMap<&str, usize> = record
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let devices = record.devices.len();
    let mut counts = vec![Counts::default(); devices];
    let mut operations: Vec<u64> = record.devices.iter().map(|d| d.people).collect();
    let mut jobs_done = vec![0u64; devices];
    let mut finished = vec![0u64; devices];
    let mut failures = Vec::new();
    let mut last = 0;
    for result in &firsts {
        let Some(&d) = index.get(result.device.as_str()) else {
            continue;
        };
        counts[d] += &result.category_counts();
        // The job's people were counted as operations; its result says what they became.
        operations[d] = operations[d] - result.people.min(operations[d]) + result.operations;
        jobs_done[d] += 1;
        finished[d] = finished[d].max(result.finished_ms);
        last = last.max(result.finished_ms);
        let device: Arc<str> = Arc::from(result.device.as_str());
        failures.extend(result.failures.iter().map(|f| Failure {
            registration: Arc::from(f.registration.as_str()),
            device: Arc::clone(&device),
            error: Arc::from(f.error.as_str()),
        }));
    }
    let total_jobs = record.jobs();
    let done_jobs: u64 = jobs_done.iter().sum();
    let complete = done_jobs >= total_jobs;
    let since_start = |t: u64| t.saturating_sub(record.published_ms);
    let per_device: Vec<DeviceReport> = record
        .devices
        .iter()
        .enumerate()
        .map(|(d, device)| DeviceReport {
            name: device.name.clone(),
            // The URL stays at the site: the central office never knows it.
            url: String::new(),
            site: Some(device.site.clone()),
            kind: device.kind,
            finished_ms: if finished[d] > 0 {
                since_start(finished[d])
            } else {
                0
            },
            counts: counts[d].clone(),
            names_truncated: 0,
            // A queued run carries no photos: `publish` refuses a list with them.
            photos_sent: 0,
            photos_refused: 0,
        })
        .collect();
    let mut totals = Counts::default();
    for c in &counts {
        totals += c;
    }
    let mut per_site: Vec<SiteStatus> = Vec::new();
    for (d, device) in record.devices.iter().enumerate() {
        let at = match per_site.iter().position(|s| s.site == device.site) {
            Some(at) => at,
            None => {
                per_site.push(SiteStatus {
                    site: device.site.clone(),
                    devices: 0,
                    operations: 0,
                    counts: Counts::default(),
                    jobs: JobCounts::default(),
                });
                per_site.len() - 1
            }
        };
        let site = &mut per_site[at];
        site.devices += 1;
        site.operations += operations[d];
        site.counts += &counts[d];
        site.jobs.total += device.jobs;
        site.jobs.done += jobs_done[d];
        site.jobs.pending = site.jobs.total - site.jobs.done.min(site.jobs.total);
    }
    let sites: HashSet<&str> = record.devices.iter().map(|d| d.site.as_str()).collect();
    let mut agents: Vec<AgentSeen> = agents
        .iter()
        .filter_map(|(who, at)| {
            let (site, name) = who.split_once('/')?;
            sites.contains(site).then(|| AgentSeen {
                site: site.to_string(),
                name: name.to_string(),
                last_heartbeat: chrono::DateTime::from_timestamp_millis(*at as i64)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default(),
                seconds_ago: now_ms.saturating_sub(*at) / 1000,
            })
        })
        .collect();
    agents.sort_by(|a, b| (&a.site, &a.name).cmp(&(&b.site, &b.name)));
    let report = Report {
        participants: record.participants,
        devices: devices as u64,
        operations: operations.iter().sum::<u64>(),
        totals,
        duration_ms: since_start(if complete { last } else { now_ms }),
        cache: "each site's agents keep their own".to_string(),
        per_device,
        failures,
        ..Report::empty()
    };
    RunStatus {
        run: record.id.clone(),
        complete,
        jobs: JobCounts {
            total: total_jobs,
            done: done_jobs,
            pending: total_jobs - done_jobs.min(total_jobs),
        },
        report,
        per_site,
        agents,
        per_device_operations: operations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::wire::{PairFailure, RunDevice};
    use crate::vendor::Kind;

    fn record() -> RunRecord {
        let device = |name: &str, site: &str| RunDevice {
            name: name.into(),
            site: site.into(),
            kind: Kind::Controlid,
            people: 4,
            jobs: 2,
        };
        RunRecord {
            id: "r".into(),
            published_ms: 1_000,
            participants: 4,
            expire: false,
            devices: vec![device("a1", "a"), device("b1", "b")],
        }
    }

    fn result(job: &str, device: &str, registered: u64, failed: &[&str]) -> JobResult {
        let counts = Counts {
            registered,
            failed: failed.len() as u64,
            ..Counts::default()
        };
        JobResult {
            job: job.into(),
            site: device[..1].into(),
            device: device.into(),
            agent: "x".into(),
            people: 2,
            operations: 2,
            counts: JobResult::counts_of(&counts),
            failures: failed
                .iter()
                .map(|r| PairFailure {
                    registration: r.to_string(),
                    error: "down".into(),
                })
                .collect(),
            finished_ms: 3_000,
        }
    }

    #[test]
    fn a_job_reported_twice_counts_once_and_the_run_adds_up() {
        let results = [
            result("a/a1/0", "a1", 2, &[]),
            result("a/a1/0", "a1", 0, &[]),
            result("a/a1/1", "a1", 1, &["9"]),
            result("b/b1/0", "b1", 2, &[]),
        ];
        let status = tally(&record(), &results, &[("a/agent-1".into(), 2_000)], 5_000);
        assert!(!status.complete);
        assert_eq!(
            status.jobs,
            JobCounts {
                total: 4,
                done: 3,
                pending: 1
            }
        );
        assert_eq!(status.report.operations, 8);
        assert_eq!(status.report.totals.registered, 5);
        assert_eq!(status.report.failures.len(), 1);
        assert_eq!(status.per_site[0].counts.total(), 4);
        assert_eq!(status.per_site[1].jobs.pending, 1);
        assert_eq!(status.agents[0].seconds_ago, 3);

        let done = [results.as_slice(), &[result("b/b1/1", "b1", 2, &[])]].concat();
        let status = tally(&record(), &done, &[], 5_000);
        assert!(status.complete);
        assert_eq!(status.report.totals.total(), status.report.operations);
        assert_eq!(status.report.duration_ms, 2_000);
    }
}
