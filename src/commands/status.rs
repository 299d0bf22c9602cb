//! `catraca status`: the central office's view of a run of many sites, added up from the
//! run's results stream into the report `enroll` prints (see `queue::tally`), with the
//! totals of each site, the jobs still pending and the agents seen.
//!
//! `--wait` polls until every job of the run has its result and exits as `enroll`
//! would (0, 1, or 130 when interrupted while waiting). A Redis that goes away while
//! waiting is waited for too.

use crate::dashboard::Dashboard;
use crate::device::DeviceInfo;
use crate::exit::Exit;
use crate::i18n::{tr, Msg};
use crate::live::{LiveStatus, RecentFailure};
use crate::queue::link::QueueLink;
use crate::queue::tally::{tally, RunStatus};
use crate::queue::wire::{JobResult, RunRecord, RESULT_FIELD};
use crate::queue::{now_ms, Names};
use crate::report::Counts;
use crate::reporter::Verbosity;
use crate::stdout::print_stdout;
use crate::stop::{install_interrupt_handler, Stop};
use redis::streams::StreamRangeReply;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// How often `--wait` reads the results: often enough that a script goes on within a
/// second of the end, rarely enough that a hundred waiting scripts do not load Redis.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Results read per round trip.
const RESULTS_PER_READ: usize = 1_000;

/// Everything `status` needs.
#[derive(Debug)]
pub struct StatusConfig {
    pub queue: String,
    pub names: Names,
    /// The run; `None`: the last one published.
    pub run: Option<String>,
    pub wait: bool,
    pub json: bool,
    /// Serve the fleet's live dashboard here while waiting.
    pub dashboard: Option<String>,
    pub verbosity: Verbosity,
}

/// Shows (or waits for) the run.
pub fn run(config: StatusConfig) -> anyhow::Result<Exit> {
    let mut link = QueueLink::open(&config.queue)?;
    let id = match &config.run {
        Some(id) => id.clone(),
        None => {
            let latest: Option<String> =
                link.run(|c| redis::cmd("GET").arg(config.names.latest()).query(c))?;
            latest.ok_or_else(|| {
                anyhow::anyhow!(
                    "no run was published on {} (under the prefix of --queue-prefix): run catraca publish first, or give --run ID",
                    link.url()
                )
            })?
        }
    };
    let stop = Arc::new(Stop::default());
    if config.wait {
        install_interrupt_handler(&stop);
    }
    let mut results = Vec::new();
    let mut after = "-".to_string();
    let mut watching: Option<(Arc<LiveStatus>, Dashboard, usize)> = None;
    let mut told = false;
    // Publish writes a run's record once and never changes it: read it once.
    let never = || false;
    let record: Option<String> = link.patiently("reading the run", &never, |c| {
        redis::cmd("GET").arg(config.names.run(&id)).query(c)
    })?;
    let record: RunRecord = match record {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| anyhow::anyhow!("run {id}: its record cannot be read ({e})"))?,
        None => anyhow::bail!(
            "no run {id} on {}: check the id that catraca publish printed, and --queue-prefix",
            link.url()
        ),
    };
    let status = loop {
        read_new_results(
            &mut link,
            &config.names.results(&id),
            &mut after,
            &mut results,
        )?;
        let agents: Vec<(String, u64)> = link.patiently("reading the agents", &never, |c| {
            redis::cmd("HGETALL").arg(config.names.agents()).query(c)
        })?;
        let status = tally(&record, &results, &agents, now_ms());
        if let Some(addr) = &config.dashboard {
            if watching.is_none() {
                let live = LiveStatus::for_fleet(
                    record.participants as usize,
                    record
                        .devices
                        .iter()
                        .map(|d| DeviceInfo::new(&d.name, "", d.kind))
                        .collect(),
                    record.devices.iter().map(|d| d.site.clone()).collect(),
                );
                let dashboard =
                    Dashboard::start(crate::dashboard::parse_address(addr)?, Arc::clone(&live))?;
                eprintln!("{}", tr(Msg::DashboardAt, &[("url", &dashboard.url())]));
                watching = Some((live, dashboard, 0));
            }
            let (live, _, shown) = watching.as_mut().expect("started above");
            show(live, &status, shown);
        }
        if status.complete || !config.wait || stop.is_set() {
            break status;
        }
        if !told && config.verbosity != Verbosity::Quiet {
            told = true;
            eprintln!(
                "{}",
                tr(
                    Msg::StatusWaiting,
                    &[
                        ("id", &id),
                        ("pending", &status.jobs.pending),
                        ("total", &status.jobs.total)
                    ]
                )
            );
        }
        std::thread::sleep(WAIT_POLL);
    };
    let mut status = status;
    status.report.interrupted = !status.complete && stop.is_set();
    if let Some((live, dashboard, _)) = watching {
        live.finish(status.report.interrupted);
        drop(dashboard);
    }
    if config.json {
        let mut out = serde_json::to_string_pretty(&status)?;
        out.push('\n');
        print_stdout(&out)?;
    } else {
        print_stdout(&to_text(&status))?;
    }
    Ok(Exit::of(&status.report))
}

/// Publishes `status` to the fleet's live view; `shown` counts the failures already
/// published (each is shown once, as it arrives).
fn show(live: &LiveStatus, status: &RunStatus, shown: &mut usize) {
    let report = &status.report;
    let per_device: Vec<Counts> = report.per_device.iter().map(|d| d.counts.clone()).collect();
    live.set_operations(&status.per_device_operations);
    let fresh = &report.failures[(*shown).min(report.failures.len())..];
    *shown = report.failures.len();
    let index = |name: &str| report.per_device.iter().position(|d| d.name == name);
    for failure in fresh {
        if let Some(d) = index(&failure.device) {
            live.set_last_error(d, &failure.error);
        }
    }
    let recent = fresh
        .iter()
        .rev()
        .take(crate::live::RECENT_FAILURES)
        .map(|f| RecentFailure {
            time: crate::live::rfc3339(std::time::SystemTime::now()),
            device: f.device.to_string(),
            registration: f.registration.to_string(),
            error: f.error.to_string(),
        })
        .collect();
    live.publish(&per_device, report.totals.total(), recent);
}

/// Appends the results after `after` (an exclusive stream id, `-` for all) to `results`.
fn read_new_results(
    link: &mut QueueLink,
    stream: &str,
    after: &mut String,
    results: &mut Vec<JobResult>,
) -> anyhow::Result<()> {
    loop {
        let start = if after == "-" {
            "-".to_string()
        } else {
            format!("({after}")
        };
        let page: StreamRangeReply = link.patiently("reading the results", &|| false, |c| {
            redis::cmd("XRANGE")
                .arg(stream)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(RESULTS_PER_READ)
                .query(c)
        })?;
        let read = page.ids.len();
        for entry in page.ids {
            *after = entry.id.clone();
            match entry.get::<String>(RESULT_FIELD) {
                Some(json) => match serde_json::from_str::<JobResult>(&json) {
                    Ok(result) => results.push(result),
                    Err(e) => log::warn!("{stream} {}: not a job result ({e})", entry.id),
                },
                None => log::warn!("{stream} {}: no {RESULT_FIELD} field", entry.id),
            }
        }
        if read < RESULTS_PER_READ {
            return Ok(());
        }
    }
}

/// The human summary: the report as `enroll` prints it, then the sites, jobs and agents.
fn to_text(status: &RunStatus) -> String {
    let mut out = status.report.to_text_styled(crate::style::stdout_enabled());
    let run = if status.complete {
        Msg::StatusRunDone
    } else {
        Msg::StatusRunGoing
    };
    let _ = writeln!(
        out,
        "\n{}",
        tr(
            run,
            &[
                ("id", &status.run),
                ("done", &status.jobs.done),
                ("total", &status.jobs.total)
            ]
        )
    );
    for site in &status.per_site {
        let _ = writeln!(
            out,
            "  {}",
            tr(
                Msg::StatusSite,
                &[
                    ("site", &site.site),
                    ("devices", &site.devices),
                    ("operations", &site.operations),
                    ("registered", &site.counts.registered),
                    ("updated", &site.counts.updated),
                    ("unchanged", &site.counts.unchanged),
                    ("skipped", &site.counts.skipped_cache),
                    ("failed", &site.counts.failed),
                    ("removed", &site.counts.removed),
                    ("pending", &site.jobs.pending),
                ],
            )
        );
    }
    for device in &status.report.per_device {
        if device.counts.failed > 0 {
            let _ = writeln!(
                out,
                "  {}",
                tr(
                    Msg::StatusDeviceFailed,
                    &[
                        ("device", &device.name),
                        ("site", &device.site.as_deref().unwrap_or("-")),
                        ("failed", &device.counts.failed),
                    ],
                )
            );
        }
    }
    if status.agents.is_empty() {
        let _ = writeln!(out, "{}", tr(Msg::StatusNoAgents, &[]));
    }
    for agent in &status.agents {
        let _ = writeln!(
            out,
            "{}",
            tr(
                Msg::StatusAgent,
                &[
                    ("name", &agent.name),
                    ("site", &agent.site),
                    ("time", &agent.last_heartbeat),
                    ("seconds", &agent.seconds_ago),
                ],
            )
        );
    }
    out
}
