//! Flags, the environment and the settings file become one command's configuration.
//!
//! Each value's precedence is decided here, once: a flag given on the command line,
//! then the environment (`CATRACA_CACHE`, `REDIS_URL`), then `catraca.toml`, then the
//! built-in default (the constant that the flag's help names, with its reasoning next
//! to it). The parsed flags are read, never edited. Everything that can be checked
//! before a device is contacted is checked here: the devices file and credentials, the
//! cache named, the certificate authority file, the output paths.

use super::{
    AgentArgs, CheckArgs, Cli, Command, DemoArgs, EnrollArgs, LearnCardArgs, PublishArgs,
    QueueArgs, RunArgs, TlsArgs, WatchArgs,
};
use crate::cache::choice::CacheChoice;
use crate::commands::agent::AgentConfig;
use crate::commands::check::CheckConfig;
use crate::commands::demo::DemoConfig;
use crate::commands::enroll::{EnrollConfig, Mode, WatchConfig};
use crate::commands::learn_card::{self, LearnCardConfig};
use crate::commands::publish::PublishConfig;
use crate::commands::status::StatusConfig;
use crate::commands::Invocation;
use crate::config::{self, DeviceConfig, TlsOptions};
use crate::device::http::Timeouts;
use crate::engine::RemovalOptions;
use crate::enroll::RunConfig;
use crate::output_files::{self, OutputFile};
use crate::participants::Source;
use crate::queue::split::{PruneOptions, SplitOptions};
use crate::queue::{Names, MAX_JOB_PEOPLE};
use crate::reporter::Verbosity;
use crate::settings::{parse_duration, Settings, DEFAULT_FILE};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a value may come from besides its flag.
struct Sources<'a> {
    settings: &'a Settings,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Whether the flag with this id was given (on the command line), not left at its
    /// default.
    given: &'a dyn Fn(&str) -> bool,
}

/// The command of `cli`, resolved against `settings` and the environment (`env`);
/// `matches` tells which flags were given.
pub fn invocation(
    cli: Cli,
    matches: &ArgMatches,
    settings: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Invocation> {
    let verbosity = cli.verbosity();
    let sub = matches.subcommand().map(|(_, m)| m);
    let given = |id: &str| {
        sub.is_some_and(|m| {
            matches!(
                m.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
    };
    let sources = Sources {
        settings,
        env,
        given: &given,
    };
    let enroll = |args, mode| -> anyhow::Result<Invocation> {
        Ok(Invocation::Enroll(EnrollConfig::resolve(
            args, mode, verbosity, &sources,
        )?))
    };
    match cli.command {
        Command::Enroll(args) => enroll(args, Mode::Enroll),
        Command::Plan(args) => enroll(args, Mode::Plan),
        Command::Remove(args) => enroll(args, Mode::Remove),
        Command::Demo(args) => Ok(Invocation::Demo(DemoConfig::resolve(
            args, verbosity, &sources,
        ))),
        Command::Simulate(args) => Ok(Invocation::Simulate(args)),
        Command::Bench(args) => Ok(Invocation::Bench(args)),
        Command::Check(args) => Ok(Invocation::Check(CheckConfig::resolve(args, &sources)?)),
        Command::LearnCard(args) => Ok(Invocation::LearnCard(LearnCardConfig::resolve(
            args, &sources,
        )?)),
        Command::Publish(args) => Ok(Invocation::Publish(PublishConfig::resolve(
            args, verbosity,
        )?)),
        Command::Agent(args) => Ok(Invocation::Agent(AgentConfig::resolve(
            args, verbosity, &sources,
        )?)),
        Command::Status(args) => Ok(Invocation::Status(StatusConfig {
            names: queue_names(&args.queue)?,
            queue: args.queue.queue,
            run: args.run,
            wait: args.wait || args.dashboard.is_some(),
            json: args.json,
            dashboard: args.dashboard,
            verbosity,
        })),
        Command::Completions(args) => {
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "catraca", &mut script);
            Ok(Invocation::Print(
                String::from_utf8_lossy(&script).into_owned(),
            ))
        }
    }
}

impl EnrollConfig {
    /// `enroll`, `plan` or `remove` (`mode`) with `args`, ready to run.
    fn resolve(
        args: EnrollArgs,
        mode: Mode,
        verbosity: Verbosity,
        sources: &Sources<'_>,
    ) -> anyhow::Result<EnrollConfig> {
        let settings = sources.settings;
        let dry_run = mode == Mode::Plan;
        if mode == Mode::Remove && args.life.any() {
            anyhow::bail!(
                "catraca remove takes no --prune, --expire, --verify or --reconcile: it removes the people of --users from every device"
            );
        }
        let mut run = RunConfig::resolve(&args.run, sources);
        run.photos = crate::photo::PhotoOptions {
            fit: args.photos.photo_fit,
            match_faces: args.photos.photo_match,
        };
        let devices = load_devices(
            args.devices.as_deref(),
            &args.device_urls,
            &run,
            &args.tls,
            args.trace_http.as_deref(),
            sources,
        )?;
        let cache_path = match &settings.cache_path {
            Some(path) if !(sources.given)("cache_path") => path.clone(),
            _ => args.cache_path.clone(),
        };
        let cache = CacheChoice::pick(
            args.cache.as_deref(),
            settings.cache.as_deref(),
            sources.env,
            cache_path,
        )?;
        let watch = WatchConfig::resolve(&args.watch, sources);
        let failed = args.failed.filter(|_| !dry_run);
        let outputs: Vec<OutputFile> = [
            ("--report", &args.report),
            ("--failed", &failed),
            ("--metrics-file", &watch.metrics_file),
            ("--events", &watch.events),
        ]
        .into_iter()
        .filter_map(|(flag, path)| path.as_deref().map(|p| OutputFile::new(flag, p)))
        .collect();
        output_files::check_all(&outputs)?;
        Ok(EnrollConfig {
            mode,
            verbosity,
            users: Source::from_arg(&args.users),
            photos_dir: args.photos.photos,
            devices,
            run,
            cache,
            skip_cache: args.skip_cache,
            report: args.report,
            json: args.json,
            failed,
            watch,
            max_failures: args.max_failures,
            removal: RemovalOptions {
                prune: args.life.prune,
                prune_unmanaged: args.life.prune_unmanaged,
                max_remove: args.life.max_remove,
                expire: args.life.expire,
                remove_listed: mode == Mode::Remove,
                ..RemovalOptions::default()
            },
            verify: args.life.verify.filter(|_| !dry_run),
            reconcile: args.life.reconcile,
        })
    }
}

/// The key names under `--queue-prefix`, which ends up in every key name: checked as a
/// site name is.
fn queue_names(queue: &QueueArgs) -> anyhow::Result<Names> {
    if !config::valid_site(&queue.queue_prefix) {
        anyhow::bail!(
            "--queue-prefix {:?}: a prefix is letters, digits, '-', '_' and '.' only (at most 64)",
            queue.queue_prefix
        );
    }
    Ok(Names::new(&queue.queue_prefix))
}

impl PublishConfig {
    fn resolve(args: PublishArgs, verbosity: Verbosity) -> anyhow::Result<PublishConfig> {
        if !(1..=MAX_JOB_PEOPLE).contains(&args.job_size) {
            anyhow::bail!(
                "--job-size {}: give 1 to {MAX_JOB_PEOPLE} people per job ({MAX_JOB_PEOPLE} is a device's limit for one lookup)",
                args.job_size
            );
        }
        Ok(PublishConfig {
            users: Source::from_arg(&args.users),
            fleet: args.devices,
            names: queue_names(&args.queue)?,
            queue: args.queue.queue,
            split: SplitOptions {
                job_people: args.job_size,
                expire: args.expire,
                prune: args.prune.then_some(PruneOptions {
                    unmanaged: args.prune_unmanaged,
                    max_remove: args.max_remove,
                }),
            },
            verbosity,
        })
    }
}

impl AgentConfig {
    fn resolve(
        args: AgentArgs,
        verbosity: Verbosity,
        sources: &Sources<'_>,
    ) -> anyhow::Result<AgentConfig> {
        if !config::valid_site(&args.site) {
            anyhow::bail!("--site: {}", config::site_rule(&args.site));
        }
        if args.claim_after < Duration::from_secs(1) {
            anyhow::bail!(
                "--claim-after {:?}: give at least 1s (a job needs time to run before another agent may take it over)",
                args.claim_after
            );
        }
        let run = RunConfig::resolve(&args.run, sources);
        let devices = load_devices(Some(&args.devices), &[], &run, &args.tls, None, sources)?;
        // A site's file may list devices of other sites (one file for a whole region):
        // this agent reaches only its own, and those of no named site.
        let (devices, elsewhere): (Vec<DeviceConfig>, Vec<DeviceConfig>) = devices
            .into_iter()
            .partition(|d| d.site.as_deref().is_none_or(|s| s == args.site));
        for device in &elsewhere {
            log::warn!(
                "device {} is at site {}, not {}: this agent leaves it to that site's agents",
                device.name,
                device.site.as_deref().unwrap_or_default(),
                args.site
            );
        }
        if devices.is_empty() {
            anyhow::bail!(
                "{}: no device of site {}: give the devices of this site (site = \"{}\", or no site)",
                args.devices.display(),
                args.site,
                args.site
            );
        }
        let devices_count = devices.len();
        let settings = sources.settings;
        if let Some(path) = args
            .metrics_file
            .as_deref()
            .or(settings.metrics_file.as_deref())
        {
            output_files::check_all(&[OutputFile::new("--metrics-file", path)])?;
        }
        let cache_path = match &settings.cache_path {
            Some(path) if !(sources.given)("cache_path") => path.clone(),
            _ => args.cache_path.clone(),
        };
        let cache = CacheChoice::pick(
            args.cache.as_deref(),
            settings.cache.as_deref(),
            sources.env,
            cache_path,
        )?;
        Ok(AgentConfig {
            names: queue_names(&args.queue)?,
            queue: args.queue.queue,
            name: args
                .name
                .unwrap_or_else(crate::commands::agent::default_name),
            site: args.site,
            devices,
            devices_file: args.devices.display().to_string(),
            run,
            cache,
            skip_cache: args.skip_cache,
            claim_after: args.claim_after,
            once: args.once,
            jobs: args.jobs.map_or(devices_count, NonZeroUsize::get),
            dashboard: args.dashboard.or(settings.dashboard.clone()),
            metrics_file: args.metrics_file.or(settings.metrics_file.clone()),
            verbosity,
        })
    }
}

impl RunConfig {
    /// A flag given wins, then the settings file, then the flag's default.
    fn resolve(run: &RunArgs, sources: &Sources<'_>) -> RunConfig {
        let settings = sources.settings;
        fn pick<T: Clone>(given: bool, flag: &T, file: &Option<T>) -> T {
            match file {
                Some(value) if !given => value.clone(),
                _ => flag.clone(),
            }
        }
        let given = sources.given;
        let seconds = |s: u64| Duration::from_secs(s.max(1));
        RunConfig {
            threads: pick(given("threads"), &run.threads, &settings.threads),
            sequential: run.sequential,
            batch_size: pick(given("batch_size"), &run.batch_size, &settings.batch_size),
            max_in_flight: pick(
                given("max_in_flight"),
                &run.max_in_flight,
                &settings.max_in_flight,
            ),
            rate: run.rate.or(settings.rate),
            timeouts: Timeouts {
                connect: seconds(pick(
                    given("connect_timeout"),
                    &run.connect_timeout,
                    &settings.connect_timeout,
                )),
                request: seconds(pick(given("timeout"), &run.timeout, &settings.timeout)),
            },
            retries: pick(given("retries"), &run.retries, &settings.retries),
            photos: crate::photo::PhotoOptions::default(),
        }
    }
}

impl WatchConfig {
    fn resolve(watch: &WatchArgs, sources: &Sources<'_>) -> WatchConfig {
        let settings = sources.settings;
        // The file's linger was checked when the file was read.
        let file_linger = settings
            .dashboard_linger
            .as_deref()
            .and_then(|text| parse_duration(text).ok());
        WatchConfig {
            dashboard: watch.dashboard.clone().or(settings.dashboard.clone()),
            dashboard_linger: match file_linger {
                Some(linger) if !(sources.given)("dashboard_linger") => linger,
                _ => watch.dashboard_linger,
            },
            metrics_file: watch.metrics_file.clone().or(settings.metrics_file.clone()),
            events: watch.events.clone(),
        }
    }
}

impl DemoConfig {
    fn resolve(args: DemoArgs, verbosity: Verbosity, sources: &Sources<'_>) -> DemoConfig {
        DemoConfig {
            latency: Duration::from_millis(args.latency_ms),
            run: RunConfig::resolve(&args.run, sources),
            watch: WatchConfig {
                dashboard: args.dashboard,
                dashboard_linger: args.dashboard_linger,
                ..WatchConfig::default()
            },
            verbosity,
        }
    }
}

impl CheckConfig {
    fn resolve(args: CheckArgs, sources: &Sources<'_>) -> anyhow::Result<CheckConfig> {
        let devices = load_devices(
            args.devices.as_deref(),
            &args.device_urls,
            &one_request_at_a_time(),
            &args.tls,
            args.trace_http.as_deref(),
            sources,
        )?;
        Ok(CheckConfig {
            devices,
            timeouts: Timeouts {
                connect: Duration::from_secs(args.connect_timeout.max(1)),
                request: Duration::from_secs(args.timeout.max(1)),
            },
            json: args.json,
        })
    }
}

impl LearnCardConfig {
    /// `--device` names a device of `--devices` (else of the settings file's
    /// `devices`), or is a device URL when there is no devices file.
    fn resolve(args: LearnCardArgs, sources: &Sources<'_>) -> anyhow::Result<LearnCardConfig> {
        let file = args.devices.clone().or_else(|| {
            (!args.device.contains("://"))
                .then(|| sources.settings.devices.clone())
                .flatten()
        });
        let one_device = one_request_at_a_time();
        let device = match &file {
            Some(file) => learn_card::find_device(
                load_devices(
                    Some(file),
                    &[],
                    &one_device,
                    &args.tls,
                    args.trace_http.as_deref(),
                    sources,
                )?,
                &args.device,
                file,
            )?,
            None => load_devices(
                None,
                std::slice::from_ref(&args.device),
                &one_device,
                &args.tls,
                args.trace_http.as_deref(),
                sources,
            )?
            .into_iter()
            .next()
            .expect("one --device URL"),
        };
        Ok(LearnCardConfig {
            device,
            card: args.card,
            timeout: args.timeout,
            json: args.json,
        })
    }
}

/// The run of a command that sends one request at a time (`check`, `learn-card`): the
/// devices' in-flight limits and rates do not matter to it.
fn one_request_at_a_time() -> RunConfig {
    RunConfig {
        max_in_flight: std::num::NonZeroUsize::MIN,
        ..RunConfig::default()
    }
}

/// The devices of `--devices FILE` (else the settings file's `devices`, when no
/// `--device` is given either) and `--device URL`s, with their credentials, and the
/// run's defaults for what an entry does not set. Warns of unchecked certificates.
fn load_devices(
    file: Option<&Path>,
    urls: &[String],
    run: &RunConfig,
    tls: &TlsArgs,
    trace_http: Option<&Path>,
    sources: &Sources<'_>,
) -> anyhow::Result<Vec<DeviceConfig>> {
    let settings = sources.settings;
    let file: Option<PathBuf> = match file {
        Some(path) => Some(path.to_path_buf()),
        None if urls.is_empty() => settings.devices.clone(),
        None => None,
    };
    let (mut devices, warnings) = config::load_devices(
        file.as_deref(),
        urls,
        run.max_in_flight.get(),
        run.rate,
        &tls_options(tls, settings)?,
        sources.env,
    )?;
    config::trace_devices(&mut devices, trace_http)?;
    for warning in warnings {
        log::warn!("{warning}");
    }
    config::warn_insecure(&devices);
    Ok(devices)
}

/// The trust given to https devices that pin no certificate: `--insecure-tls`, and the
/// authorities of `--ca-cert` (else the settings file's `ca_cert`).
fn tls_options(tls: &TlsArgs, settings: &Settings) -> anyhow::Result<TlsOptions> {
    let authority = match (&tls.ca_cert, &settings.ca_cert) {
        (Some(path), _) => Some((path.clone(), "--ca-cert".to_string())),
        (None, Some(path)) => Some((
            path.clone(),
            format!(
                "ca_cert in {}",
                settings
                    .path
                    .as_deref()
                    .unwrap_or(Path::new(DEFAULT_FILE))
                    .display()
            ),
        )),
        (None, None) => None,
    };
    let extra_authorities = match authority {
        Some((path, origin)) => {
            crate::device::tls::read_ca_file(&path, &origin).map_err(anyhow::Error::msg)?
        }
        None => Vec::new(),
    };
    Ok(TlsOptions {
        insecure: tls.insecure_tls,
        extra_authorities,
    })
}
