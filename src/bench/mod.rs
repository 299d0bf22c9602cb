//! `catraca bench`: the performance claims of the README, measured again on any machine.
//!
//! The benchmark hosts the simulated Control iD devices in its own process, on loopback,
//! and runs the real binary (`catraca enroll --json`, this very executable) against them
//! as a child per workload, so a figure covers what an operator's shell would see:
//! process start, CSV parsing, cache, HTTP, report. It prints one table: wall time, the
//! ideal the simulator's latency allows and the efficiency against it, requests per
//! person-on-device pair (from the simulator's own counters), the child's peak RSS and
//! CPU time, and the CPU the simulator spent serving it. Every run is checked as it is
//! measured (every pair reported once, devices holding each person exactly once,
//! nothing sent when all is cached); a failed check fails the benchmark, so a fast
//! figure can never come from a run that did less than the job.

mod measure;
mod workloads;

use crate::simulator::{Fleet, SimConfig, SimDevice};
use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};
use workloads::{CacheMode, Sizes, Workload};

pub use workloads::{participants_csv, Mix};

/// Flags of `catraca bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Tiny sizes (a few seconds in all): checks the benchmark works, measures nothing.
    #[arg(long)]
    pub quick: bool,
    /// Only these groups of workloads, comma-separated: W1, W2, W3, startup, sim.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub only: Vec<String>,
    /// People of the largest scale workload (W2 also runs a tenth and a hundredth of it,
    /// W3 runs it cached). Default 100,000, on 10 devices: 1,000,000 pairs.
    #[arg(long, value_name = "N")]
    pub people: Option<usize>,
    /// Print the rows as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Internal: serve as the small process that starts and measures the children.
    #[arg(long, hide = true)]
    pub launcher: bool,
}

/// One measured line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub workload: String,
    pub settings: String,
    pub people: u64,
    pub devices: u64,
    pub pairs: u64,
    pub wall_ms: f64,
    pub ideal_ms: Option<f64>,
    pub efficiency: Option<f64>,
    /// Requests the simulated devices received during the measured run.
    pub requests: u64,
    /// Of those, `create_objects` requests.
    pub creates: u64,
    pub requests_per_pair: f64,
    pub peak_rss_mb: f64,
    pub cpu_ms: f64,
    /// CPU time the simulator used while serving the run.
    pub simulator_cpu_ms: f64,
    /// From the child's report.
    pub operations: u64,
    pub registered: u64,
    pub skipped_cache: u64,
    pub failed: u64,
    /// People held by the devices after the run, summed over devices.
    pub users_on_devices: u64,
}

/// The simulator's own speed, measured apart from catraca.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub clients: usize,
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub simulator_cpu_seconds: f64,
    /// Requests per second of simulator CPU: its rate on one core.
    pub requests_per_cpu_second: f64,
}

#[derive(Debug, Serialize)]
struct Results {
    date: String,
    machine: String,
    /// `/proc/loadavg` before and after: the machine may be shared.
    load_before: String,
    load_after: String,
    rows: Vec<Row>,
    simulator: Option<Throughput>,
}

/// Runs the workloads `args` asks for and prints the table (or JSON) on stdout; progress
/// goes to stderr. A failed check of a run is an error (exit status 2 with the reason).
pub fn run(args: BenchArgs) -> anyhow::Result<crate::exit::Exit> {
    if args.launcher {
        measure::serve_launcher()?;
        return Ok(crate::exit::Exit::Done);
    }
    const GROUPS: [&str; 5] = ["W1", "W2", "W3", "startup", "sim"];
    if let Some(unknown) = args
        .only
        .iter()
        .find(|o| !GROUPS.iter().any(|g| g.eq_ignore_ascii_case(o)))
    {
        bail!("--only {unknown}: not a workload group; use W1, W2, W3, startup or sim");
    }
    let mut sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full(100_000)
    };
    if let Some(people) = args.people {
        sizes.scale_people = people;
    }
    let exe = std::env::current_exe().context("finding the catraca executable")?;
    let mut launcher = measure::Launcher::start(&exe).context("starting the launcher")?;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let mut results = Results {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        machine: machine(),
        load_before: load_average(),
        load_after: String::new(),
        rows: Vec::new(),
        simulator: None,
    };
    let wants_sim = args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case("sim"));
    if wants_sim {
        eprintln!("bench: simulator throughput");
        results.simulator = Some(simulator_throughput(sizes.throughput_for)?);
    }
    for workload in workloads::all(&sizes, &args.only) {
        eprintln!(
            "bench: {} ({} people x {} devices)",
            workload.name, workload.people, workload.devices
        );
        let row = measure_workload(&mut launcher, &exe, scratch.path(), &workload)?;
        eprintln!(
            "bench:   {:.0} ms, {:.4} requests/pair, {:.1} MB",
            row.wall_ms, row.requests_per_pair, row.peak_rss_mb
        );
        results.rows.push(row);
    }
    results.load_after = load_average();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", table(&results));
    }
    Ok(crate::exit::Exit::Done)
}

/// The 1, 5 and 15 minute load averages, or `?` where `/proc` is not there.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// `CPU model, N cores, Linux x.y` from /proc, as far as it can tell.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| format!(", Linux {}", k.trim()))
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!(", {} GB RAM", kb / 1024 / 1024))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores{memory}{kernel}")
}

/// The child command for one enroll run against `fleet`.
fn enroll_command(
    exe: &Path,
    scratch: &Path,
    csv: &Path,
    fleet: &Fleet,
    workload: &Workload,
    cache: &[String],
    cache_key: &str,
) -> measure::Spec {
    let mut args: Vec<String> = ["-q", "enroll", "--json", "--users"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.push(csv.display().to_string());
    for url in fleet.urls() {
        args.push("--device".into());
        args.push(url);
    }
    args.extend(workload.flags.iter().cloned());
    args.extend(cache.iter().cloned());
    measure::Spec {
        program: exe.to_path_buf(),
        args,
        env_remove: [
            "REDIS_URL",
            "CATRACA_CACHE",
            "RUST_LOG",
            "CATRACA_PASSWORD",
            "CATRACA_LOGIN",
        ]
        .iter()
        .map(|v| v.to_string())
        .collect(),
        env_set: vec![("CATRACA_CACHE_KEY".into(), cache_key.into())],
        stdout: scratch.join("child.stdout"),
        stderr: scratch.join("child.stderr"),
        current_dir: scratch.to_path_buf(),
    }
}

fn random_key() -> String {
    let key: [u8; 32] = rand::random();
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn total_requests(fleet: &Fleet) -> (u64, u64) {
    fleet.devices.iter().fold((0, 0), |(all, creates), d| {
        let stats = d.stats();
        (all + stats.total, creates + stats.count("create_objects"))
    })
}

/// Runs one workload (after its unmeasured fill run, for a cached one) and checks it.
fn measure_workload(
    launcher: &mut measure::Launcher,
    exe: &Path,
    scratch: &Path,
    workload: &Workload,
) -> anyhow::Result<Row> {
    let csv = scratch.join(format!("people-{}-{:?}.csv", workload.people, workload.mix));
    if !csv.exists() {
        std::fs::write(&csv, participants_csv(workload.people, workload.mix))?;
    }
    let config = SimConfig {
        latency: workload.latency,
        per_object_latency: workload.per_object,
        ..SimConfig::default()
    };
    let mut walls = Vec::new();
    let mut last = None;
    for _ in 0..workload.repeat.max(1) {
        let measured = measure_once(launcher, exe, scratch, &csv, workload, &config)?;
        walls.push(measured.0.wall_ms);
        last = Some(measured);
    }
    let (mut row, fleet) = last.expect("at least one run");
    walls.sort_by(f64::total_cmp);
    row.wall_ms = walls[walls.len() / 2];
    if walls.len() > 1 {
        row.settings = format!("{}; median of {} runs", row.settings, walls.len());
    }
    if let Some(ideal) = row.ideal_ms {
        row.efficiency = Some(ideal / row.wall_ms);
    }
    check(workload, &mut row, &fleet)?;
    fleet.shutdown();
    Ok(row)
}

fn measure_once(
    launcher: &mut measure::Launcher,
    exe: &Path,
    scratch: &Path,
    csv: &Path,
    workload: &Workload,
    config: &SimConfig,
) -> anyhow::Result<(Row, Fleet)> {
    let fleet = Fleet::start(workload.devices, config).context("starting the simulator")?;
    let key = random_key();
    let store = scratch.join(format!("cache-{key}.redb"));
    let redis = match workload.cache {
        CacheMode::RedisFilled => Some(redis_for_bench()?),
        _ => None,
    };
    let cache: Vec<String> = match workload.cache {
        CacheMode::None => vec!["--cache".into(), "none".into()],
        CacheMode::EmbeddedFilled => vec![
            "--cache".into(),
            "embedded".into(),
            "--cache-path".into(),
            store.display().to_string(),
        ],
        CacheMode::RedisFilled => vec![
            "--cache".into(),
            redis.as_ref().expect("started above").url(),
        ],
    };
    if workload.cache != CacheMode::None {
        let fill = launcher.run(&enroll_command(
            exe, scratch, csv, &fleet, workload, &cache, &key,
        ))?;
        if fill.code != 0 {
            bail!(
                "{}: the run that fills the cache failed ({}):\n{}",
                workload.name,
                fill.code,
                fill.stderr
            );
        }
    }
    let (before, creates_before) = total_requests(&fleet);
    let finished = launcher.run(&enroll_command(
        exe, scratch, csv, &fleet, workload, &cache, &key,
    ))?;
    let (after, creates_after) = total_requests(&fleet);
    if finished.code != 0 {
        bail!(
            "{}: catraca enroll ended with status {}:\n{}",
            workload.name,
            finished.code,
            finished.stderr
        );
    }
    let report: Value = serde_json::from_str(&finished.stdout).with_context(|| {
        format!(
            "{}: the report is not JSON: {}",
            workload.name, finished.stdout
        )
    })?;
    let count = |key: &str| report.get(key).and_then(Value::as_u64).unwrap_or(0);
    let requests = after - before;
    let pairs = workload.pairs();
    let ideal = workload.ideal();
    if workload.cache == CacheMode::EmbeddedFilled {
        let _ = std::fs::remove_file(&store);
    }
    drop(redis);
    let row = Row {
        workload: workload.name.clone(),
        settings: workload.settings(),
        people: workload.people as u64,
        devices: workload.devices as u64,
        pairs,
        wall_ms: ms(finished.usage.wall),
        ideal_ms: ideal.map(ms),
        efficiency: None,
        requests,
        creates: creates_after - creates_before,
        requests_per_pair: requests as f64 / pairs.max(1) as f64,
        peak_rss_mb: finished.usage.peak_rss as f64 / 1_000_000.0,
        cpu_ms: ms(finished.usage.cpu),
        simulator_cpu_ms: ms(finished.own_cpu),
        operations: count("operations"),
        registered: count("registered"),
        skipped_cache: count("skipped_cache"),
        failed: count("failed"),
        users_on_devices: 0,
    };
    Ok((row, fleet))
}

/// A Redis of the benchmark's own, so a million keys never land in a shared one; the
/// shared one (with a key of this run alone) when no `redis-server` can be started.
enum BenchRedis {
    Private(crate::cache::redis_server::PrivateRedis),
    Shared(String),
}

impl BenchRedis {
    fn url(&self) -> String {
        match self {
            BenchRedis::Private(server) => server.url().to_string(),
            BenchRedis::Shared(url) => url.clone(),
        }
    }
}

fn redis_for_bench() -> anyhow::Result<BenchRedis> {
    match crate::cache::redis_server::PrivateRedis::start() {
        Ok(server) => Ok(BenchRedis::Private(server)),
        Err(_) => Ok(BenchRedis::Shared(crate::cache::redis_server::shared_url())),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The checks that make a figure mean something: every pair once in the report, every
/// person exactly once on every device, and nothing sent when everything is cached.
fn check(workload: &Workload, row: &mut Row, fleet: &Fleet) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if row.operations != row.pairs {
        problems.push(format!(
            "the report counts {} operations for {} pairs",
            row.operations, row.pairs
        ));
    }
    if row.failed != 0 {
        problems.push(format!("{} pairs failed", row.failed));
    }
    let expected_done = match workload.cache {
        CacheMode::None => row.registered,
        _ => row.skipped_cache,
    };
    if expected_done != row.pairs {
        problems.push(format!(
            "{} of {} pairs were {}",
            expected_done,
            row.pairs,
            if workload.cache == CacheMode::None {
                "registered"
            } else {
                "skipped by the cache"
            }
        ));
    }
    if workload.cache != CacheMode::None && row.requests != 0 {
        problems.push(format!(
            "{} requests reached the devices although everything was cached",
            row.requests
        ));
    }
    for device in &fleet.devices {
        let users = device.users();
        let distinct: HashSet<&str> = users.iter().map(|u| u.registration.as_str()).collect();
        row.users_on_devices += users.len() as u64;
        if users.len() != workload.people || distinct.len() != workload.people {
            problems.push(format!(
                "{} holds {} users ({} distinct registrations) for {} people",
                device.name(),
                users.len(),
                distinct.len(),
                workload.people
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}: {}", workload.name, problems.join("; "))
    }
}

/// Keep-alive clients hammer one simulated device with a tiny `load_objects` for
/// `duration`; the simulator's rate per CPU second is its speed on one core.
fn simulator_throughput(duration: Duration) -> anyhow::Result<Throughput> {
    const CLIENTS: usize = 4;
    const NAME: &str = "simspeed";
    let device = SimDevice::start(NAME, ([127, 0, 0, 1], 0).into(), SimConfig::default())?;
    device.insert_user("2026000001", "Ana Souza");
    let url = device.url();
    let agent = |_: usize| -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into()
    };
    let login: Value = agent(0)
        .post(&format!("{url}/login.fcgi"))
        .send_json(serde_json::json!({"login": "admin", "password": "admin"}))?
        .body_mut()
        .read_json()?;
    let session = login["session"].as_str().unwrap_or_default().to_string();
    let target = format!(
        "{url}/load_objects.fcgi?session={}",
        session.replace('/', "%2F").replace('+', "%2B")
    );
    let body = br#"{"object":"users","fields":["id","registration"],"where":{"users":{"id":1}}}"#;
    let cpu_before = measure::threads_cpu(NAME);
    let started = Instant::now();
    let deadline = started + duration;
    let clients: Vec<(u64, ureq::Agent)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (agent, target) = (agent(i), &target);
                scope.spawn(move || {
                    let mut count = 0u64;
                    while Instant::now() < deadline {
                        let ok = agent
                            .post(target)
                            .header("Content-Type", "application/json")
                            .send(&body[..])
                            .ok()
                            .and_then(|mut r| r.body_mut().read_to_vec().ok().map(|_| r.status()))
                            .is_some_and(|s| s == 200);
                        count += u64::from(ok);
                    }
                    (count, agent)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client threads do not panic"))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    // Read while the connections (and so the simulator's threads) are still alive.
    let cpu = measure::threads_cpu(NAME).saturating_sub(cpu_before);
    let requests: u64 = clients.iter().map(|(n, _)| n).sum();
    drop(clients);
    device.shutdown();
    let cpu_seconds = cpu.as_secs_f64();
    Ok(Throughput {
        clients: CLIENTS,
        requests,
        seconds,
        requests_per_second: requests as f64 / seconds,
        simulator_cpu_seconds: cpu_seconds,
        requests_per_cpu_second: if cpu_seconds > 0.0 {
            requests as f64 / cpu_seconds
        } else {
            0.0
        },
    })
}

/// The results as a Markdown table (readable as is in a terminal).
fn table(results: &Results) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "catraca bench, {}, {}", results.date, results.machine);
    let _ = writeln!(
        out,
        "load average {} before, {} after (other work on the machine slows every figure)",
        results.load_before, results.load_after
    );
    let _ = writeln!(
        out,
        "\n| workload | settings | wall | ideal | efficiency | requests/pair | requests | peak RSS | CPU | simulator CPU |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &results.rows {
        let ideal = row
            .ideal_ms
            .map_or("—".to_string(), |ms| format!("{:.0} ms", ms));
        let efficiency = row
            .efficiency
            .map_or("—".to_string(), |e| format!("{e:.2}"));
        let _ = writeln!(
            out,
            "| {} ({} x {}) | {} | {} | {} | {} | {:.4} | {} | {:.1} MB | {} | {} |",
            row.workload,
            row.people,
            row.devices,
            row.settings,
            duration(row.wall_ms),
            ideal,
            efficiency,
            row.requests_per_pair,
            row.requests,
            row.peak_rss_mb,
            duration(row.cpu_ms),
            duration(row.simulator_cpu_ms),
        );
    }
    if let Some(t) = &results.simulator {
        let _ = writeln!(
            out,
            "\nsimulator: {:.0} requests/s with {} keep-alive clients on this machine; \
             {:.0} requests per CPU second (one core), {} requests in {:.2} s",
            t.requests_per_second, t.clients, t.requests_per_cpu_second, t.requests, t.seconds
        );
    }
    out
}

fn duration(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}
