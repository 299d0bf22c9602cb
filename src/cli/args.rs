//! The flags of every command, as clap parses them, with their help (English here,
//! Portuguese in the i18n catalogue). Nothing here is validated or defaulted from the
//! settings file or the environment: that is `resolve`'s one job.

use crate::cache::embedded::EmbeddedCache;
use crate::device::http::Timeouts;
use crate::device::RetryPolicy;
use crate::exit::EXIT_STATUS_HELP;
use crate::person::Card;
use crate::settings::parse_duration;
use crate::stop::FailureLimit;
use clap::Args;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use super::EXAMPLES;

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
    /// name/nome, optional card/cartao, begin/inicio, end/fim, group/grupo, photo/foto;
    /// `,` or `;`.
    #[arg(long, value_name = "FILE|-")]
    pub users: String,
    /// A TOML file of [[device]] tables (name, url, kind, max_in_flight, login, password_env,
    /// tls_fingerprint, card_format, card_pad, faces).
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
    #[command(flatten)]
    pub photos: PhotoArgs,
}

/// Face photos, for facial devices (see the README's "Faces").
#[derive(Debug, Args, Clone, Default)]
pub struct PhotoArgs {
    /// A folder of face photos named by registration: DIR/<registration>.jpg, .jpeg or
    /// .png. The CSV's photo/foto/face column wins where it names a file.
    #[arg(long, value_name = "DIR")]
    pub photos: Option<PathBuf>,
    /// How photos are prepared: `canonical` (default: EXIF orientation applied, metadata
    /// stripped, portrait 3:4, at most 480x640, baseline JPEG 4:2:0 under 70 KB, which
    /// every family takes) or `none` (each file sent exactly as given).
    #[arg(
        long,
        value_enum,
        value_name = "canonical|none",
        default_value = "canonical"
    )]
    pub photo_fit: crate::photo::PhotoFit,
    /// Control iD: refuse a photo whose face is already enrolled for another person
    /// (slower; off by default, as the vendor recommends for mass enrollment).
    #[arg(long)]
    pub photo_match: bool,
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
    /// Whether any flag of the list's life was given (`remove` takes none).
    pub fn any(&self) -> bool {
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
    #[arg(long, default_value_t = Timeouts::default().request.as_secs(), value_name = "SECONDS")]
    pub timeout: u64,
    /// Seconds to wait for a TCP connection to a device.
    #[arg(long, default_value_t = Timeouts::default().connect.as_secs(), value_name = "SECONDS")]
    pub connect_timeout: u64,
    /// Retries of a request that failed for a transient reason (timeout, reset, 503).
    #[arg(long, default_value_t = RetryPolicy::default().retries, value_name = "N")]
    pub retries: u32,
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

/// Flags of `catraca check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A TOML file of [[device]] tables, as for `catraca enroll`.
    #[arg(long, value_name = "FILE")]
    pub devices: Option<PathBuf>,
    /// A device URL, e.g. http://10.0.0.5 or https://10.0.0.5 (repeatable; adds to --devices).
    #[arg(long = "device", value_name = "URL")]
    pub device_urls: Vec<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Seconds to wait for each answer. 10, the vendor SDK's own timeout: a preflight
    /// must not hang on a device that is off, and needs no bulk loads.
    #[arg(long, default_value_t = crate::commands::check::DEFAULT_TIMEOUT.as_secs(), value_name = "SECONDS")]
    pub timeout: u64,
    /// Seconds to wait for a TCP connection.
    #[arg(long, default_value_t = Timeouts::default().connect.as_secs(), value_name = "SECONDS")]
    pub connect_timeout: u64,
    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write every request to the devices and its answer to FILE, one JSON line each
    /// (sessions, Authorization, cookies and passwords left out; bodies cut at 64 KB),
    /// to attach to a bug report about a device catraca does not understand.
    #[arg(long, value_name = "FILE")]
    pub trace_http: Option<PathBuf>,
}

/// Flags of `catraca learn-card`.
#[derive(Debug, Args)]
#[command(after_help = "Exit status:
  0    the card was read (and, with --card, a card_format writes it as read)
  1    no card_format writes it as read, no card was read in time, or the device failed
  2    usage or configuration error")]
pub struct LearnCardArgs {
    /// The device to read from: its name in --devices, or a device URL such as
    /// hikvision+http://10.0.0.6 when there is no devices file.
    #[arg(long, value_name = "NAME|URL")]
    pub device: String,
    /// A TOML file of [[device]] tables, as for `catraca enroll`.
    #[arg(long, value_name = "FILE")]
    pub devices: Option<PathBuf>,
    /// The number printed on the card you will swipe (`F,N` or a number): learn-card
    /// then tells which card_format (and card_pad) turns it into what the device read.
    #[arg(long, value_name = "F,N|NUMBER", value_parser = parse_card)]
    pub card: Option<Card>,
    /// How long to wait for the swipe (e.g. 60s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the result as JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write every request to the devices and its answer to FILE, one JSON line each
    /// (sessions, Authorization, cookies and passwords left out; bodies cut at 64 KB),
    /// to attach to a bug report about a device catraca does not understand.
    #[arg(long, value_name = "FILE")]
    pub trace_http: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

fn parse_card(text: &str) -> Result<Card, String> {
    crate::participants::parse_card(text).map_err(|problem| {
        format!("\"{text}\" {problem}: write the card as printed, 123,45678 or 4012345678")
    })
}

/// Where the work queue of many sites is: the central Redis and the prefix of its keys.
#[derive(Debug, Args, Clone)]
pub struct QueueArgs {
    /// The central Redis that holds the jobs and results: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB],
    /// or rediss://... for TLS. Falls back to CATRACA_QUEUE. Shown only with its password redacted.
    #[arg(
        long,
        value_name = "redis://...",
        env = "CATRACA_QUEUE",
        hide_env_values = true
    )]
    pub queue: String,
    /// The first part of every key (`catraca:{site}:jobs`): several fleets, or tests, can
    /// share one Redis under different prefixes.
    #[arg(long, value_name = "PREFIX", default_value = crate::queue::DEFAULT_PREFIX)]
    pub queue_prefix: String,
}

/// Flags of `catraca publish`.
#[derive(Debug, Args)]
#[command(
    after_help = "Prints the run id on stdout. Publishing the same list again is the same run: nothing is added.

Exit status:
  0    published (or already published)
  2    usage, configuration or input error: nothing was published"
)]
pub struct PublishArgs {
    /// The participants CSV (`-` reads standard input), as for `catraca enroll`.
    #[arg(long, value_name = "FILE|-")]
    pub users: String,
    /// The central fleet file: a [[device]] table per device with its name and site (and
    /// kind, card_format when not the defaults); no URL or password needed.
    #[arg(long, value_name = "FILE")]
    pub devices: PathBuf,
    #[command(flatten)]
    pub queue: QueueArgs,
    /// People per job, at most 999 (a device's limit for one lookup): smaller jobs spread
    /// a site's work over more agents.
    #[arg(long, value_name = "N", default_value_t = crate::queue::MAX_JOB_PEOPLE)]
    pub job_size: usize,
    /// People whose `end` has passed leave the devices instead of being enrolled.
    #[arg(long)]
    pub expire: bool,
    /// Also remove from each device the people catraca enrolled there that the CSV no
    /// longer lists: one prune job per device, with the whole list's registrations.
    #[arg(long)]
    pub prune: bool,
    /// With --prune: remove everyone the CSV does not list, whoever enrolled them.
    #[arg(long, requires = "prune")]
    pub prune_unmanaged: bool,
    /// With --prune: a device that would lose more than N people or P% of its people
    /// loses nobody (its prune job fails, with the reason). 10%: a wrong or truncated CSV
    /// must not empty a device.
    #[arg(long, value_name = "N|P%", default_value = "10%", requires = "prune")]
    pub max_remove: FailureLimit,
}

/// Flags of `catraca agent`.
#[derive(Debug, Args)]
#[command(after_help = "Exit status:
  0    stopped by SIGTERM or Ctrl-C after finishing and acknowledging its jobs, or
       (--once) every job it ran ended with every pair on its device
  1    (--once) some pairs of its jobs failed
  2    usage or configuration error
  130  a second Ctrl-C or SIGTERM: stopped at once (its unfinished jobs go to another agent)")]
pub struct AgentArgs {
    #[command(flatten)]
    pub queue: QueueArgs,
    /// This agent's site: it does the jobs of `{prefix}:{site}:jobs`.
    #[arg(long, value_name = "SITE")]
    pub site: String,
    /// This site's devices file, with URLs and credentials, as for `catraca enroll`.
    #[arg(long, value_name = "FILE")]
    pub devices: PathBuf,
    /// This agent's name among the site's agents (its consumer name). Default: the
    /// host name and the process id.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Take over a job another agent of the site has held this long without finishing
    /// it (it died): 60s by default, far more than a job of 999 people takes (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub claim_after: Duration,
    /// Exit once the site's stream has nothing pending, with enroll's exit status.
    #[arg(long)]
    pub once: bool,
    /// Jobs this agent runs at once. Default: one per device of the site, so one box
    /// keeps every device busy (a device never runs two jobs at once, whatever the agents).
    #[arg(long, value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Where this agent remembers results: `embedded` (on-disk store, see --cache-path),
    /// `none`, or a `redis://` URL of the site. Falls back to CATRACA_CACHE.
    #[arg(long, value_name = "embedded|none|redis://...")]
    pub cache: Option<String>,
    /// The embedded cache's file.
    #[arg(long, value_name = "FILE", default_value_os_t = EmbeddedCache::default_path())]
    pub cache_path: PathBuf,
    /// Do not trust the cache to skip pairs (results are still recorded in it).
    #[arg(long)]
    pub skip_cache: bool,
    /// Serve this agent's live dashboard (and /api/status, /metrics) on ADDR: PORT or
    /// IP:PORT; PORT alone (or no value: 8787) listens on loopback only. Its counts add
    /// up the jobs this agent finished; each device's requests, latency and breaker are live.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8787")]
    pub dashboard: Option<String>,
    /// Write this agent's metrics in Prometheus text format to FILE after every job and
    /// at exit (for node_exporter's textfile collector), replacing it whole.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// Flags of `catraca status`.
#[derive(Debug, Args)]
#[command(after_help = "Exit status:
  0    every pair of the run is on its device (or, without --wait, none failed so far)
  1    some pairs failed (listed in the report)
  2    usage error, or no such run
  130  interrupted while waiting")]
pub struct StatusArgs {
    #[command(flatten)]
    pub queue: QueueArgs,
    /// The run to show (the id `publish` printed). Default: the last run published.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Wait until every job of the run is done, then exit as enroll would.
    #[arg(long)]
    pub wait: bool,
    /// Print the report as JSON on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// Serve the whole fleet's live dashboard (and /api/status, /metrics) on ADDR, one
    /// row per site that opens into its devices, while waiting for the run (implies
    /// --wait). PORT alone (or no value: 8787) listens on loopback only.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8787")]
    pub dashboard: Option<String>,
}
