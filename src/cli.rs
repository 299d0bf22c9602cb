//! The command line: flags as clap parses them, then turned into a validated run.
//!
//! Raw flags (`EnrollArgs`) become an [`Enrollment`] in one place, `prepare_enroll`,
//! where every input is checked before any device is contacted: the CSV, the devices,
//! the cache. Any problem there is exit status 2 with a message that names the file,
//! line, field or flag and says what to do.

use crate::cache::embedded::EmbeddedCache;
use crate::cache::redis_cache::{redact_url, RedisCache};
use crate::cache::{Cache, KeySecret, NoCache};
use crate::check::CheckArgs;
use crate::config::{self, DeviceConfig};
use crate::dashboard::{self, Dashboard};
use crate::device::controlid::RetryPolicy;
use crate::device::http::Timeouts;
use crate::device::tls::TlsTrust;
use crate::engine::{EngineOptions, RemovalOptions, Target};
use crate::enroll::Enrollment;
use crate::events::EventLog;
use crate::exit::{Exit, EXIT_STATUS_HELP};
use crate::i18n::{self, Msg};
use crate::live::{LivePublisher, LiveStatus};
use crate::participants::{self, Source};
use crate::report::Report;
use crate::reporter::{Verbosity, Watch};
use crate::settings::Settings;
use crate::simulator::SimulateArgs;
use crate::stop::{FailureLimit, Stop};
use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const EXAMPLES: &str = "Examples:
  catraca demo
  catraca enroll --users participants.csv --devices devices.toml
  catraca plan --users participants.csv --devices devices.toml --prune
  catraca enroll --users participants.csv --devices devices.toml --prune --expire --verify 5%
  catraca remove --users leaving.csv --devices devices.toml
  cat participants.csv | catraca enroll --users - --device http://10.0.0.5 --device http://10.0.0.6
  catraca check --devices devices.toml
  catraca enroll --users participants.csv --devices devices.toml --dashboard --events events.jsonl
  catraca simulate --devices 5 --port 8001 --latency-ms 50";

/// Enroll every participant on every access-control turnstile, fast and exactly once.
#[derive(Debug, Parser)]
#[command(name = "catraca", version, after_help = format!("{EXAMPLES}\n\n{EXIT_STATUS_HELP}"))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More output: -v prints one line per person-on-device, -vv adds debug logs.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only the final report and errors: no progress, no warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Language of messages: en or pt-BR (default: from LC_ALL / LC_MESSAGES / LANG).
    #[arg(long, global = true, value_name = "en|pt-BR")]
    pub lang: Option<String>,
    /// A settings file with defaults (threads, cache, devices, ...); default: catraca.toml
    /// in the current directory, if there is one. Flags and environment win over it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl Cli {
    /// The process's command line, with the language chosen (`--lang`, the locale, the
    /// settings file) before clap parses so `--help` follows it, and the settings file
    /// filling what the flags left at their defaults.
    pub fn from_env() -> anyhow::Result<Cli> {
        let args: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let config = i18n::flag_value(&args, "--config").map(PathBuf::from);
        let settings = Settings::load(config.as_deref());
        let file_lang = settings.as_ref().ok().and_then(|s| s.lang.clone());
        i18n::init(
            i18n::flag_value(&args, "--lang").as_deref(),
            file_lang.as_deref(),
        );
        let matches = localize(Cli::command()).get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let settings = settings?;
        settings.apply(&mut cli, &matches, &|name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        });
        if let Some(path) = &settings.path {
            log::debug!("settings from {}", path.display());
        }
        Ok(cli)
    }
}

/// The command definition with its help in the language in use (English as written in
/// the `///` comments; Portuguese from the catalogue, where clap lets us: descriptions,
/// flag help, headings, examples).
pub fn localize(cmd: clap::Command) -> clap::Command {
    if !i18n::is_pt() {
        return cmd;
    }
    fn walk(cmd: clap::Command, root: bool) -> clap::Command {
        let help_pt = |key: &str| {
            i18n::HELP_PT
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, text)| *text)
        };
        let name = cmd.get_name().to_string();
        let mut cmd = cmd
            .help_template(format!(
                "{{before-help}}{{about-with-newline}}\n{} {{usage}}\n\n{{all-args}}{{after-help}}",
                i18n::t(Msg::HelpUsage)
            ))
            .subcommand_help_heading(i18n::t(Msg::HelpCommands).trim_end_matches(':'))
            .disable_help_flag(true)
            .arg(
                clap::Arg::new("help")
                    .short('h')
                    .long("help")
                    .action(clap::ArgAction::Help)
                    .help("Mostra a ajuda")
                    .global(root),
            );
        if root {
            cmd = cmd.disable_version_flag(true).arg(
                clap::Arg::new("version")
                    .short('V')
                    .long("version")
                    .action(clap::ArgAction::Version)
                    .help("Mostra a versão"),
            );
        }
        if let Some(about) = help_pt(&format!("about:{name}")) {
            cmd = cmd.about(about.trim_end_matches('.'));
        }
        if cmd.get_after_help().is_some() {
            cmd = cmd.after_help(i18n::AFTER_HELP_PT);
        }
        let ids: Vec<String> = cmd
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        let heading: &'static str = i18n::t(Msg::HelpOptions).trim_end_matches(':');
        for id in ids {
            let text = help_pt(&format!("{name}:{id}")).or_else(|| help_pt(&id));
            cmd = cmd.mut_arg(id, |arg| {
                let arg = arg.help_heading(heading);
                match text {
                    Some(text) => arg.help(text.trim_end_matches('.')).long_help(None::<&str>),
                    None => arg,
                }
            });
        }
        let subs: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        for sub in subs {
            cmd = cmd.mut_subcommand(sub, |s| walk(s, false));
        }
        cmd
    }
    walk(cmd, true)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Put every participant of a CSV on every device.
    Enroll(EnrollArgs),
    /// Show what `enroll` would do on each device (reads the devices, writes nothing).
    Plan(EnrollArgs),
    /// Take the people of a CSV off every device (with their cards and group links); a
    /// registration column is enough.
    Remove(EnrollArgs),
    /// Enroll the shipped 100 participants on 5 simulated turnstiles, twice.
    Demo(DemoArgs),
    /// Serve simulated Control iD, Hikvision and Intelbras devices on loopback (for tests and trials).
    #[command(after_long_help = crate::simulator::PROFILES)]
    Simulate(SimulateArgs),
    /// Measure enrollments against simulated turnstiles and print one table of figures.
    Bench(crate::bench::BenchArgs),
    /// Preflight: contact every device and tell whether it is ready (exit 0) or not (1).
    Check(CheckArgs),
    /// Print the shell completion script (bash, zsh or fish) on stdout.
    Completions(CompletionsArgs),
}

/// Flags of `catraca completions`.
#[derive(Debug, Args)]
#[command(after_help = "Install, e.g.:
  catraca completions bash > ~/.local/share/bash-completion/completions/catraca
  catraca completions zsh > ~/.zfunc/_catraca      # with fpath+=(~/.zfunc) in ~/.zshrc
  catraca completions fish > ~/.config/fish/completions/catraca.fish")]
pub struct CompletionsArgs {
    /// The shell: bash, zsh or fish (elvish and powershell work too).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Flags of `catraca enroll`.
#[derive(Debug, Args)]
#[command(after_help = format!("{EXAMPLES}\n\n{EXIT_STATUS_HELP}"))]
pub struct EnrollArgs {
    /// The participants CSV (`-` reads standard input). Columns: registration/matricula,
    /// name/nome, optional card/cartao, begin/inicio, end/fim, group/grupo; `,` or `;`.
    #[arg(long, value_name = "FILE|-")]
    pub users: String,
    /// A TOML file of [[device]] tables (name, url, kind, max_in_flight, login, password_env,
    /// tls_fingerprint).
    #[arg(long, value_name = "FILE")]
    pub devices: Option<PathBuf>,
    /// A device URL, e.g. http://10.0.0.5 (Control iD) or hikvision+http://10.0.0.6,
    /// intelbras+https://10.0.0.7 (repeatable; adds to --devices).
    #[arg(long = "device", value_name = "URL")]
    pub device_urls: Vec<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Where results are remembered: `embedded` (on-disk store, see --cache-path),
    /// `none`, or a `redis://` URL. Falls back to CATRACA_CACHE, then REDIS_URL.
    #[arg(long, value_name = "embedded|none|redis://...")]
    pub cache: Option<String>,
    /// The embedded cache's file.
    #[arg(long, value_name = "FILE", default_value_os_t = EmbeddedCache::default_path())]
    pub cache_path: PathBuf,
    /// Do not trust the cache to skip pairs (results are still recorded in it).
    #[arg(long)]
    pub skip_cache: bool,
    /// Also write the final report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write every request to the devices and its answer to FILE, one JSON line each
    /// (sessions, Authorization, cookies and passwords left out; bodies cut at 64 KB),
    /// to attach to a bug report about a device catraca does not understand.
    #[arg(long, value_name = "FILE")]
    pub trace_http: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
    /// Write the people whose pairs failed to FILE, as a CSV that --users reads back
    /// (with the devices and reasons in two extra columns).
    #[arg(long, value_name = "FILE")]
    pub failed: Option<PathBuf>,
    /// Stop early (exit 1, report written) when more than N pairs, or P% of all pairs,
    /// have failed: a wrong password or a wrong CSV should not grind through everything.
    #[arg(long, value_name = "N|P%")]
    pub max_failures: Option<FailureLimit>,
    #[command(flatten)]
    pub life: LifeArgs,
}

/// How the certificates of https devices are trusted (a device's own `tls_fingerprint`
/// in the devices file always wins).
#[derive(Debug, Args, Clone, Default)]
pub struct TlsArgs {
    /// Accept any certificate from https devices that pin none (tls_fingerprint): the
    /// traffic is encrypted but the devices are not authenticated. Prefer pinning.
    #[arg(long)]
    pub insecure_tls: bool,
    /// Also trust the certificate authorities of this PEM file for https devices (a
    /// site's own authority), beside the system's.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Where `ca_cert` came from when not from the command line (a settings file).
    #[arg(skip)]
    pub ca_cert_origin: Option<String>,
}

impl TlsArgs {
    /// The trust given to https devices that pin no certificate.
    pub fn options(&self) -> anyhow::Result<config::TlsOptions> {
        let extra_authorities = match &self.ca_cert {
            Some(path) => crate::device::tls::read_ca_file(
                path,
                self.ca_cert_origin.as_deref().unwrap_or("--ca-cert"),
            )
            .map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        };
        Ok(config::TlsOptions {
            insecure: self.insecure_tls,
            extra_authorities,
        })
    }
}

/// Warns, once per run, of https devices whose certificates are not checked.
pub fn warn_insecure(devices: &[DeviceConfig]) {
    let unchecked: Vec<&str> = devices
        .iter()
        .filter(|d| d.url.starts_with("https://") && d.tls == TlsTrust::Insecure)
        .map(|d| d.name.as_str())
        .collect();
    if !unchecked.is_empty() {
        log::warn!(
            "{}",
            i18n::tr(Msg::WarnInsecureTls, &[("devices", &unchecked.join(", "))])
        );
    }
}

/// What leaves the devices, and how much of a run is checked.
#[derive(Debug, Args, Clone)]
pub struct LifeArgs {
    /// Also remove from each device the people catraca enrolled there that the CSV no
    /// longer lists (their cards and group links too). People put there by another
    /// system are left alone (see --prune-unmanaged).
    #[arg(long)]
    pub prune: bool,
    /// With --prune: remove everyone the CSV does not list, whoever enrolled them.
    #[arg(long, requires = "prune")]
    pub prune_unmanaged: bool,
    /// With --prune: refuse the whole run (exit 2, nothing removed) when a device would
    /// lose more than N people or P% of its people. 10%: a wrong or truncated CSV must
    /// not empty a device.
    #[arg(long, value_name = "N|P%", default_value = "10%", requires = "prune")]
    pub max_remove: FailureLimit,
    /// Remove the people whose `end` has passed instead of enrolling them.
    #[arg(long)]
    pub expire: bool,
    /// Read back a random P% of the pairs written in this run and report those the
    /// device does not hold (some answer OK without storing).
    #[arg(long, value_name = "P%", value_parser = parse_share)]
    pub verify: Option<f64>,
    /// Ignore the cache, read every pair from the devices, and bring both the devices
    /// and the cache to the CSV.
    #[arg(long, conflicts_with = "skip_cache")]
    pub reconcile: bool,
}

impl LifeArgs {
    fn any(&self) -> bool {
        self.prune || self.expire || self.verify.is_some() || self.reconcile
    }
}

/// `25%` or `25` -> 0.25.
fn parse_share(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!(
            "{text:?} is not a percentage: write e.g. 5% (0 to 100)"
        )),
    }
}

/// Ways to follow a run while it goes and after: dashboard, metrics, events.
#[derive(Debug, Args, Clone, Default)]
pub struct WatchArgs {
    /// Serve a live dashboard (and /api/status, /metrics) during the run, on ADDR:
    /// PORT or IP:PORT; PORT alone (or no value: 8787) listens on loopback only.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8787")]
    pub dashboard: Option<String>,
    /// Keep the dashboard up this long after the run ends (e.g. 60s, 5m; Ctrl-C ends it).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub dashboard_linger: Duration,
    /// Write the final metrics in Prometheus text format to FILE (for node_exporter's
    /// textfile collector), replacing it whole.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Append one JSON line per finished pair to FILE (time, device, registration hash,
    /// outcome, attempts, latency, error), flushed as the run goes.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
}

/// Reads `90`, `90s`, `5m`, `1h` or `500ms` as a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: write e.g. 60s, 5m or 1h"))?;
    match unit.trim() {
        "" | "s" => Ok(Duration::from_secs(number)),
        "ms" => Ok(Duration::from_millis(number)),
        "m" | "min" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        other => Err(format!(
            "{other:?} is not a unit of time: use ms, s, m or h (e.g. 60s)"
        )),
    }
}

/// How the work is spread and how patient to be with devices.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Worker threads. 10, as the system catraca replaces: enough for 5 devices with 2
    /// requests in flight each (why: `DEFAULT_THREADS` in src/engine.rs).
    #[arg(long, default_value_t = NonZeroUsize::new(crate::engine::DEFAULT_THREADS).expect("nonzero"), value_name = "N")]
    pub threads: NonZeroUsize,
    /// No thread pool: one job after another in one thread (for comparison, or devices
    /// that must not see any parallelism).
    #[arg(long)]
    pub sequential: bool,
    /// Requests in flight per device, unless its devices-file entry says otherwise. 2:
    /// these devices' small web servers drop connections under bursts (why:
    /// `DEFAULT_MAX_IN_FLIGHT` in src/engine.rs).
    #[arg(long, default_value_t = NonZeroUsize::new(crate::engine::DEFAULT_MAX_IN_FLIGHT).expect("nonzero"), value_name = "N")]
    pub max_in_flight: NonZeroUsize,
    /// Requests per second per device at most, on average (unless its devices-file entry
    /// says otherwise). Default: no limit beyond --max-in-flight.
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
    /// People per create request. 250: a batch costs 3 writes whatever its size, so
    /// 250 needs 0.013 requests per person-on-device where 100 needed 0.031, and is far
    /// below the body size the device accepts (why: `DEFAULT_BATCH_SIZE` in
    /// src/engine.rs); 1 sends one person per request as the old system did.
    #[arg(long, default_value_t = NonZeroUsize::new(crate::engine::DEFAULT_BATCH_SIZE).expect("nonzero"), value_name = "N")]
    pub batch_size: NonZeroUsize,
    /// Seconds to wait for a device's answer to one request (loads of thousands of rows
    /// take long on these devices).
    #[arg(long, default_value = "30", value_name = "SECONDS")]
    pub timeout: u64,
    /// Seconds to wait for a TCP connection to a device.
    #[arg(long, default_value = "5", value_name = "SECONDS")]
    pub connect_timeout: u64,
    /// Retries of a request that failed for a transient reason (timeout, reset, 503).
    #[arg(long, default_value = "3", value_name = "N")]
    pub retries: u32,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            threads: NonZeroUsize::new(crate::engine::DEFAULT_THREADS).expect("nonzero"),
            sequential: false,
            max_in_flight: NonZeroUsize::new(crate::engine::DEFAULT_MAX_IN_FLIGHT)
                .expect("nonzero"),
            rate: None,
            batch_size: NonZeroUsize::new(crate::engine::DEFAULT_BATCH_SIZE).expect("nonzero"),
            timeout: 30,
            connect_timeout: 5,
            retries: 3,
        }
    }
}

impl RunArgs {
    pub fn engine_options(&self, skip_cache: bool) -> EngineOptions {
        EngineOptions {
            threads: self.threads,
            sequential: self.sequential,
            batch_size: self.batch_size,
            skip_cache,
            ..EngineOptions::default()
        }
    }

    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(self.connect_timeout.max(1)),
            request: Duration::from_secs(self.timeout.max(1)),
        }
    }

    /// The retry policy of one run: every device shares its budget.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            ..RetryPolicy::default()
        }
    }

    /// Drivers for the configured devices.
    pub fn targets(&self, devices: &[DeviceConfig]) -> Vec<Target> {
        let retry = self.retry();
        devices
            .iter()
            .map(|d| Target {
                device: d.connect(self.timeouts(), retry.clone()),
                max_in_flight: d.max_in_flight,
            })
            .collect()
    }
}

/// Flags of `catraca demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated latency of each device, in milliseconds.
    #[arg(long, default_value = "20", value_name = "MS")]
    pub latency_ms: u64,
    #[command(flatten)]
    pub run: RunArgs,
    /// Serve the live dashboard of the first pass on ADDR (PORT alone, or no value:
    /// loopback 8787); try --latency-ms 100 --batch-size 1 to watch it fill up.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8787")]
    pub dashboard: Option<String>,
    /// Keep the dashboard up this long after the demo (e.g. 60s, 5m; Ctrl-C ends it).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub dashboard_linger: Duration,
}

impl Cli {
    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            _ => Verbosity::Pairs,
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let verbosity = cli.verbosity();
    match cli.command {
        Command::Enroll(args) => enroll(args, verbosity, Mode::Enroll),
        Command::Plan(args) => enroll(args, verbosity, Mode::Plan),
        Command::Remove(args) => enroll(args, verbosity, Mode::Remove),
        Command::Demo(args) => crate::demo::run(args, verbosity),
        Command::Simulate(args) => crate::simulator::run(args).map(|()| Exit::Done),
        Command::Bench(args) => crate::bench::run(args),
        Command::Check(args) => crate::check::run(args),
        Command::Completions(args) => {
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "catraca", &mut script);
            print_stdout(&String::from_utf8_lossy(&script))?;
            Ok(Exit::Done)
        }
    }
}

/// The commands that share `enroll`'s flags.
/// Gives every device the `--trace-http` file, created (or emptied) now.
pub fn trace_devices(devices: &mut [DeviceConfig], path: Option<&Path>) -> anyhow::Result<()> {
    if let Some(path) = path {
        let trace = crate::device::trace::HttpTrace::create(path).with_context(|| {
            format!(
                "--trace-http {}: cannot create it; give a file in a writable directory",
                path.display()
            )
        })?;
        let trace = Arc::new(trace);
        for device in devices.iter_mut() {
            device.trace = Some(Arc::clone(&trace));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Enroll,
    Plan,
    Remove,
}

fn enroll(args: EnrollArgs, verbosity: Verbosity, mode: Mode) -> anyhow::Result<Exit> {
    let dry_run = mode == Mode::Plan;
    if mode == Mode::Remove && args.life.any() {
        anyhow::bail!(
            "catraca remove takes no --prune, --expire, --verify or --reconcile: it removes the people of --users from every device"
        );
    }
    let source = Source::from_arg(&args.users);
    // Who leaves needs no name: a list of registrations is enough for `remove`.
    let needs = if mode == Mode::Remove {
        participants::Needs::Registration
    } else {
        participants::Needs::Person
    };
    let people = participants::read(&source, needs)?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (mut devices, warnings) = config::load_devices(
        args.devices.as_deref(),
        &args.device_urls,
        args.run.max_in_flight.get(),
        args.run.rate,
        &args.tls.options()?,
        &env,
    )?;
    trace_devices(&mut devices, args.trace_http.as_deref())?;
    for warning in warnings {
        log::warn!("{warning}");
    }
    warn_insecure(&devices);
    let cache_choice = args
        .cache
        .clone()
        .or_else(|| env("CATRACA_CACHE"))
        .or_else(|| env("REDIS_URL"))
        .unwrap_or_else(|| "embedded".to_string());
    let (cache, secret) = open_cache(&cache_choice, &args.cache_path)?;
    log::info!(
        "{} participants, {} devices, cache {}",
        people.len(),
        devices.len(),
        cache.describe()
    );

    let stop = Arc::new(Stop::default());
    install_interrupt_handler(&stop);
    let enrollment = Enrollment {
        people: &people,
        targets: args.run.targets(&devices),
        cache: cache.as_ref(),
        secret: &secret,
        options: EngineOptions {
            dry_run,
            removal: RemovalOptions {
                prune: args.life.prune,
                prune_unmanaged: args.life.prune_unmanaged,
                max_remove: args.life.max_remove,
                expire: args.life.expire,
                remove_listed: mode == Mode::Remove,
            },
            verify: args.life.verify.filter(|_| !dry_run),
            reconcile: args.life.reconcile,
            ..args.run.engine_options(args.skip_cache)
        },
        verbosity,
        max_failures: args.max_failures,
    };
    let (report, dashboard) = run_watched(&enrollment, &args.watch, &stop)?;
    if let Some(path) = args.failed.as_ref().filter(|_| !dry_run) {
        crate::failed::write(path, &people, &report)?;
    }
    emit(&report, args.json, args.report.as_deref())?;
    dashboard.linger(&args.watch, enrollment.verbosity, &stop);
    Ok(Exit::of(&report))
}

/// The dashboard of a finished run, if there is one, still serving the final numbers.
pub struct Lingering(Option<Dashboard>);

impl Lingering {
    /// Keeps the dashboard up for `--dashboard-linger` (Ctrl-C ends it), then stops it.
    pub fn linger(self, watch: &WatchArgs, verbosity: Verbosity, stop: &Stop) {
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
pub fn run_watched(
    enrollment: &Enrollment<'_>,
    watch: &WatchArgs,
    stop: &Stop,
) -> anyhow::Result<(Report, Lingering)> {
    let live = LiveStatus::for_targets(enrollment.people.len(), &enrollment.targets);
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
            enrollment
                .targets
                .iter()
                .map(|t| t.device.name().to_string())
                .collect(),
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
        enrollment.run_watched(stop, &mut watchers)?
    };
    live.finish(report.interrupted || report.halted.is_some());
    if let Some(events) = events {
        if let Err(e) = events.finish() {
            log::warn!("{e:#}");
        }
    }
    if let Some(path) = &watch.metrics_file {
        crate::metrics::write_file(path, &live.status())
            .with_context(|| format!("--metrics-file {}", path.display()))?;
    }
    Ok((report, Lingering(dashboard)))
}

/// Opens the cache named by `choice` and the secret that keys it.
pub fn open_cache(
    choice: &str,
    embedded_path: &Path,
) -> anyhow::Result<(Box<dyn Cache>, KeySecret)> {
    let from_env = std::env::var("CATRACA_CACHE_KEY")
        .ok()
        .filter(|v| !v.is_empty());
    let secret_at = |path: &Path| -> anyhow::Result<KeySecret> {
        match &from_env {
            Some(hex) => KeySecret::from_hex(hex).context("CATRACA_CACHE_KEY"),
            None => Ok(KeySecret::load_or_create(path)?),
        }
    };
    match choice {
        "none" => Ok((Box::new(NoCache), KeySecret::random())),
        "embedded" => {
            let cache = EmbeddedCache::open(embedded_path)?;
            let secret = secret_at(&embedded_path.with_extension("key"))?;
            Ok((Box::new(cache), secret))
        }
        url if url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("redis+unix://") =>
        {
            let cache = RedisCache::open(url)?;
            let key_path = dirs::config_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("catraca")
                .join("cache.key");
            let secret = secret_at(&key_path)?;
            Ok((Box::new(cache), secret))
        }
        other => anyhow::bail!(
            "--cache {}: not a cache; use embedded, none or a redis:// URL",
            redact_url(other)
        ),
    }
}

/// First Ctrl-C (or SIGTERM): stop taking new work and report. Second: exit at once.
pub fn install_interrupt_handler(stop: &Arc<Stop>) {
    let stop = Arc::clone(stop);
    let result = ctrlc::set_handler(move || {
        if stop.interrupt() {
            eprintln!("{}", i18n::t(Msg::InterruptedAgain));
            std::process::exit(Exit::Interrupted.code().into());
        }
        eprintln!("{}", i18n::t(Msg::InterruptedFirst));
    });
    if let Err(e) = result {
        log::debug!("no Ctrl-C handler: {e}");
    }
}

/// Prints the report (human or JSON) on stdout and writes the JSON file if asked.
pub fn emit(report: &Report, json: bool, file: Option<&Path>) -> anyhow::Result<()> {
    if let Some(path) = file {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    let text = if json {
        serde_json::to_string_pretty(report)? + "\n"
    } else {
        report.to_text_styled(crate::style::stdout_enabled())
    };
    print_stdout(&text)
}

/// Writes `text` on stdout; a closed pipe (`| head`) is the reader's choice, not an error.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_bare_dashboard_flag_listens_on_loopback_8787() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["catraca", "enroll", "--users", "p.csv"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).unwrap().command {
                Command::Enroll(args) => args.watch,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(parse(&[]).dashboard, None);
        let bare = parse(&["--dashboard"]);
        assert_eq!(bare.dashboard.as_deref(), Some("127.0.0.1:8787"));
        assert_eq!(bare.dashboard_linger, Duration::ZERO);
        let given = parse(&["--dashboard", "0.0.0.0:9000", "--dashboard-linger", "5m"]);
        assert_eq!(given.dashboard.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(given.dashboard_linger, Duration::from_secs(300));
    }

    #[test]
    fn durations_read_as_operators_write_them() {
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn every_flag_has_help_and_the_definition_is_consistent() {
        Cli::command().debug_assert();
        fn check(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                if arg.get_id() != "help" && arg.get_id() != "version" {
                    assert!(
                        arg.get_help().is_some(),
                        "{} --{} has no help",
                        cmd.get_name(),
                        arg.get_id()
                    );
                }
            }
            for sub in cmd.get_subcommands() {
                check(sub);
            }
        }
        check(&Cli::command());
    }

    #[test]
    fn every_flag_has_portuguese_help_meant_for_its_own_command() {
        fn check(cmd: &clap::Command) {
            let name = cmd.get_name();
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let found = i18n::HELP_PT
                    .iter()
                    .any(|(k, _)| *k == format!("{name}:{id}") || *k == id);
                assert!(found, "{name} --{id} has no Portuguese help");
            }
            for sub in cmd.get_subcommands() {
                check(sub);
            }
        }
        check(&Cli::command());
    }
}
