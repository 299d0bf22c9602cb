//! `catraca enroll`, `plan` and `remove`: one resolved [`EnrollConfig`] run end to end.
//!
//! The configuration arrives whole and checked (devices, credentials, cache, output
//! paths: see `cli::resolve`). Here the participants are read and validated, the cache
//! opened, Ctrl-C wired, the run watched (dashboard, events, metrics), and the report
//! printed and written. Anything wrong before the first request is exit 2; once devices
//! were written, a file that cannot be written is exit 1, after the report.

use crate::cache::choice::CacheChoice;
use crate::config::DeviceConfig;
use crate::dashboard::{self, Dashboard};
use crate::engine::Enrollment;
use crate::engine::RemovalOptions;
use crate::enroll::RunConfig;
use crate::events::EventLog;
use crate::exit::Exit;
use crate::i18n::{self, Msg};
use crate::live::{LivePublisher, LiveStatus};
use crate::participants::{self, Source};
use crate::report::Report;
use crate::reporter::{Verbosity, Watch};
use crate::stdout::print_stdout;
use crate::stop::{install_interrupt_handler, FailureLimit, Stop};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The commands that share `enroll`'s flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Put every participant on every device.
    Enroll,
    /// Read the devices and say what enroll would do; write nothing.
    Plan,
    /// Take the listed people off every device.
    Remove,
}

/// Ways to follow a run while it goes and after.
#[derive(Debug, Clone, Default)]
pub struct WatchConfig {
    /// Serve the live dashboard on this address.
    pub dashboard: Option<String>,
    /// Keep it up this long after the run. Default: not at all.
    pub dashboard_linger: Duration,
    /// Write the final metrics here (Prometheus text).
    pub metrics_file: Option<PathBuf>,
    /// Append one JSON line per settled operation here.
    pub events: Option<PathBuf>,
}

/// Everything `enroll`, `plan` or `remove` needs, decided before any device is
/// contacted.
#[derive(Debug)]
pub struct EnrollConfig {
    pub mode: Mode,
    pub verbosity: Verbosity,
    /// The participants (or, for `remove`, the registrations) to read.
    pub users: Source,
    /// `--photos DIR`: photos named by registration.
    pub photos_dir: Option<PathBuf>,
    /// The devices, with their credentials, trust and limits.
    pub devices: Vec<DeviceConfig>,
    pub run: RunConfig,
    pub cache: CacheChoice,
    /// Do not trust the cache to skip pairs (results are still recorded).
    pub skip_cache: bool,
    /// `--report FILE`.
    pub report: Option<PathBuf>,
    /// The report as JSON on stdout.
    pub json: bool,
    /// `--failed FILE` (never with `plan`).
    pub failed: Option<PathBuf>,
    pub watch: WatchConfig,
    pub max_failures: Option<FailureLimit>,
    pub removal: RemovalOptions,
    /// `--verify` share (never with `plan`).
    pub verify: Option<f64>,
    pub reconcile: bool,
}

/// Runs `config`: the exit status of the run.
pub fn run(config: EnrollConfig) -> anyhow::Result<Exit> {
    let dry_run = config.mode == Mode::Plan;
    // Who leaves needs no name: a list of registrations is enough for `remove`.
    let needs = if config.mode == Mode::Remove {
        participants::Needs::Registration
    } else {
        participants::Needs::Person
    };
    let mut people = participants::read(&config.users, needs)?;
    if config.mode != Mode::Remove {
        let with_photo = participants::check_photos(
            &mut people,
            &config.users.display_name(),
            config.photos_dir.as_deref(),
            config.run.photos.fit,
        )?;
        if config.photos_dir.is_some() && with_photo < people.len() {
            log::warn!(
                "{} of {} participants have no photo (in the CSV or --photos): their photos on the devices are left as they are",
                people.len() - with_photo,
                people.len()
            );
        }
        let rules: Vec<_> = config
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.kind, d.cards))
            .collect();
        let card_warnings =
            crate::card::check_csv_cards(&config.users.display_name(), &people, &rules)
                .map_err(anyhow::Error::msg)?;
        for warning in card_warnings {
            log::warn!("{warning}");
        }
    }
    let (cache, secret) = config.cache.open()?;
    log::info!(
        "{} participants, {} devices, cache {}",
        people.len(),
        config.devices.len(),
        cache.describe()
    );

    let stop = Arc::new(Stop::default());
    install_interrupt_handler(&stop);
    let enrollment = Enrollment {
        people: &people,
        targets: config.run.targets(&config.devices),
        cache: cache.as_ref(),
        secret: &secret,
        options: crate::engine::EngineOptions {
            dry_run,
            removal: config.removal.clone(),
            verify: config.verify,
            reconcile: config.reconcile,
            ..config.run.engine_options(config.skip_cache)
        },
        verbosity: config.verbosity,
        max_failures: config.max_failures,
        stop: &stop,
    };
    let Watched {
        report,
        dashboard,
        mut unwritten,
    } = run_watched(&enrollment, &config.watch)?;
    // The devices were written: from here on, a file that cannot be written is reported
    // after the report, and the run ends with 1, not with 2 ("nothing was sent").
    print_report(&report, config.json)?;
    if let Some(path) = &config.report {
        unwritten.extend(write_report_file(&report, path).err());
    }
    if let Some(path) = &config.failed {
        unwritten.extend(
            crate::failed::write(path, &people, &report)
                .with_context(|| format!("--failed {}", path.display()))
                .err(),
        );
    }
    let mut exit = Exit::of(&report);
    for error in &unwritten {
        eprintln!(
            "{}",
            i18n::tr(Msg::ErrorPrefix, &[("error", &format!("{error:#}"))])
        );
        exit = exit.merge(Exit::SomeFailed);
    }
    dashboard.linger(&config.watch, enrollment.verbosity, &stop);
    Ok(exit)
}

/// A finished run, as [`run_watched`] leaves it.
pub struct Watched {
    pub report: Report,
    pub dashboard: Lingering,
    /// The files asked for that could not be written (events, metrics), each naming its
    /// flag and path: the run itself went on.
    pub unwritten: Vec<anyhow::Error>,
}

/// The dashboard of a finished run, if there is one, still serving the final numbers.
pub struct Lingering(Option<Dashboard>);

impl Lingering {
    /// Keeps the dashboard up for `--dashboard-linger` (Ctrl-C ends it), then stops it.
    pub fn linger(self, watch: &WatchConfig, verbosity: Verbosity, stop: &Stop) {
        let Some(dashboard) = self.0 else { return };
        if watch.dashboard_linger.is_zero() || stop.is_set() {
            return;
        }
        if verbosity != Verbosity::Quiet {
            eprintln!(
                "{}",
                i18n::tr(
                    Msg::DashboardLingers,
                    &[
                        ("url", &dashboard.url()),
                        ("seconds", &watch.dashboard_linger.as_secs())
                    ]
                )
            );
        }
        dashboard.linger(watch.dashboard_linger, &|| stop.is_set());
    }
}

/// Runs `enrollment` with what `watch` asks for: the dashboard bound before anything is
/// sent (a taken port is a usage error), the events file, the metrics file at the end.
pub fn run_watched(enrollment: &Enrollment<'_>, watch: &WatchConfig) -> anyhow::Result<Watched> {
    let live = LiveStatus::for_run(enrollment);
    let dashboard = match &watch.dashboard {
        Some(addr) => {
            let dashboard = Dashboard::start(dashboard::parse_address(addr)?, Arc::clone(&live))?;
            if enrollment.verbosity != Verbosity::Quiet {
                eprintln!(
                    "{}",
                    i18n::tr(Msg::DashboardAt, &[("url", &dashboard.url())])
                );
            }
            Some(dashboard)
        }
        None => None,
    };
    let mut events = match &watch.events {
        Some(path) => Some(EventLog::open(
            path,
            enrollment.devices(),
            enrollment.secret.clone(),
        )?),
        None => None,
    };
    // Nobody reads the live status without a dashboard or a metrics file: then the
    // reporter does not publish it.
    let mut publisher = (watch.dashboard.is_some() || watch.metrics_file.is_some())
        .then(|| LivePublisher::new(Arc::clone(&live)));
    let report = {
        let mut watchers: Vec<&mut (dyn Watch + Send)> = Vec::new();
        if let Some(publisher) = publisher.as_mut() {
            watchers.push(publisher);
        }
        if let Some(events) = events.as_mut() {
            watchers.push(events);
        }
        enrollment.run_watched(&mut watchers)?
    };
    live.finish(report.interrupted || report.halted.is_some());
    let mut unwritten = Vec::new();
    if let Some(events) = events {
        unwritten.extend(events.finish().err());
    }
    if let Some(path) = &watch.metrics_file {
        unwritten.extend(
            crate::metrics::write_file(path, &live.status())
                .with_context(|| format!("--metrics-file {}: writing failed", path.display()))
                .err(),
        );
    }
    Ok(Watched {
        report,
        dashboard: Lingering(dashboard),
        unwritten,
    })
}

/// Writes the report as JSON to `path` (`--report`), as it is produced.
pub fn write_report_file(report: &Report, path: &Path) -> anyhow::Result<()> {
    std::fs::File::create(path)
        .and_then(|out| report.write_json(out))
        .with_context(|| format!("--report {}: writing the report failed", path.display()))
}

/// Prints the report (human or JSON) on stdout.
pub fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        // Streamed: a report of a million failures is never one text in memory.
        return match report.write_json(std::io::stdout().lock()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        };
    }
    print_stdout(&report.to_text_styled(crate::style::stdout_enabled()))
}
