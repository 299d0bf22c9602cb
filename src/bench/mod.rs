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
//! figure can never come from a run that did less than the job. The TLS group measures
//! the same workloads over HTTP and over HTTPS side by side and prints what HTTPS costs
//! ([`tls_cost`]).

mod measure;
mod sites;
mod tls_cost;
mod workloads;

use anyhow::{bail, Context};
use catraca_sim::{Fleet, SimConfig, SimDevice, SimTls};
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tls_cost::TlsCost;
use workloads::{CacheMode, Sizes, Transport, Workload};

pub use workloads::{participants_csv, Mix};

/// Flags of `catraca bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Tiny sizes (a few seconds in all): checks the benchmark works, measures nothing.
    #[arg(long)]
    pub quick: bool,
    /// Only these groups of workloads, comma-separated: W1, W2, W3, startup, W4, TLS,
    /// sites, sim, W5, W5-scale (the photo groups run only when named, except with
    /// --quick).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub only: Vec<String>,
    /// People of the largest scale workload (W2 also runs a tenth and a hundredth of it,
    /// W3 runs it cached). Default 100,000, on 10 devices: 1,000,000 pairs. Also the
    /// people of W5-scale (default 20,000 on 2 devices).
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
    /// The cache the measured run used: `none`, `embedded, empty`, `Redis, filled by an
    /// enroll`, ...
    pub cache: String,
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
    /// From the child's report: pairs done on a device whose record did not reach the
    /// cache.
    pub not_cached: u64,
    /// Pairs in the cache after the measured run, for a run that recorded into an
    /// empty one: every pair the report counts done must be there.
    pub cached_after: Option<u64>,
    /// People held by the devices after the run, summed over devices.
    pub users_on_devices: u64,
    /// When the last device at the workload's own latency settled its last pair, from
    /// the report's `per_device[].finished_ms` (the median over runs when repeated).
    pub fast_finished_ms: f64,
    /// When the slow device settled its last pair, for a workload that has one.
    pub slow_finished_ms: Option<f64>,
    /// `http` or `https`: how catraca spoke to the devices.
    pub transport: String,
    /// TCP connections the devices accepted during the measured run: over HTTPS, the
    /// TLS handshakes.
    pub connections: u64,
    /// W5: photos the devices received in the measured run, the requests that carried
    /// them, and their average size as stored.
    pub photos_sent: u64,
    pub photo_requests: u64,
    pub photo_kb: f64,
}

/// W4, "a slow neighbour" (issue 3): do fast devices finish as if a slow one beside
/// them were not there?
#[derive(Debug, Clone, Serialize)]
pub struct Neighbour {
    pub fast_devices: u64,
    pub fast_latency_ms: f64,
    pub slow_latency_ms: f64,
    /// When the last fast device finished, alone and beside the slow one.
    pub fast_alone_ms: f64,
    pub fast_beside_slow_ms: f64,
    /// `fast_beside_slow_ms / fast_alone_ms`: 1 when the slow device costs them nothing.
    pub ratio: f64,
    /// When the slow device finished.
    pub slow_ms: f64,
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
    neighbour: Option<Neighbour>,
    /// The TLS group's comparisons, https over http; empty when it did not run.
    tls: Vec<TlsCost>,
    simulator: Option<Throughput>,
}

/// Runs the workloads `args` asks for and prints the table (or JSON) on stdout; progress
/// goes to stderr. A failed check of a run is an error (exit status 2 with the reason).
pub fn run(args: BenchArgs) -> anyhow::Result<crate::exit::Exit> {
    if args.launcher {
        measure::serve_launcher()?;
        return Ok(crate::exit::Exit::Done);
    }
    const GROUPS: [&str; 10] = [
        "W1", "W2", "W3", "startup", "W4", "TLS", "W5", "W5-scale", "sites", "sim",
    ];
    if let Some(unknown) = args
        .only
        .iter()
        .find(|o| !GROUPS.iter().any(|g| g.eq_ignore_ascii_case(o)))
    {
        bail!(
            "--only {unknown}: not a workload group; use W1, W2, W3, startup, W4, TLS, W5, W5-scale, sites or sim"
        );
    }
    let mut sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full(100_000)
    };
    if let Some(people) = args.people {
        sizes.scale_people = people;
        sizes.face_scale_people = people;
    }
    if !sizes.faces_by_default && args.only.is_empty() {
        eprintln!("bench: W5 and W5-scale run only when asked: --only W5, W5-scale or both");
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
        neighbour: None,
        tls: Vec::new(),
        simulator: None,
    };
    let wants_sim = args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case("sim"));
    if wants_sim {
        eprintln!("bench: simulator throughput");
        results.simulator = Some(simulator_throughput(sizes.throughput_for)?);
    }
    let workloads = workloads::all(&sizes, &args.only);
    for group in workloads.chunk_by(|a, b| a.side_of.is_some() && a.side_of == b.side_of) {
        for workload in group {
            eprintln!(
                "bench: {} ({} people x {} devices)",
                workload.name, workload.people, workload.devices
            );
        }
        for row in measure_side_by_side(&mut launcher, &exe, scratch.path(), group)? {
            eprintln!(
                "bench:   {}: {:.0} ms, {:.4} requests/pair, {:.1} MB",
                row.workload, row.wall_ms, row.requests_per_pair, row.peak_rss_mb
            );
            results.rows.push(row);
        }
    }
    if args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case("sites")) {
        eprintln!("bench: sites (3 sites x 2 devices, through the queue)");
        results
            .rows
            .extend(sites::rows(&exe, scratch.path(), args.quick)?);
    }
    results.neighbour = neighbour(&results.rows, &sizes);
    results.tls = tls_cost::comparisons(&workloads, &results.rows);
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

/// The child command for one enroll run on the devices `devices` names (`--device`
/// flags or `--devices FILE`).
fn enroll_command(
    exe: &Path,
    scratch: &Path,
    csv: &Path,
    devices: &[String],
    workload: &Workload,
    cache: &[String],
    cache_key: &str,
) -> measure::Spec {
    let mut args: Vec<String> = ["-q", "enroll", "--json", "--users"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.push(csv.display().to_string());
    args.extend(devices.iter().cloned());
    args.extend(workload.flags.iter().cloned());
    if workload.faces.is_some() {
        args.push("--photos".into());
        args.push(photos_dir(scratch, workload.people).display().to_string());
    }
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

/// How the child is told about `fleet`: `--device URL` per device, or a devices file
/// written in `scratch` (with each device's certificate pinned when it speaks HTTPS).
fn device_args(
    scratch: &Path,
    fleet: &Fleet,
    transport: Transport,
    run_key: &str,
) -> anyhow::Result<Vec<String>> {
    if !transport.uses_devices_file() {
        return Ok(fleet
            .urls()
            .into_iter()
            .flat_map(|url| ["--device".to_string(), url])
            .collect());
    }
    let path = scratch.join(format!("devices-{run_key}.toml"));
    std::fs::write(&path, devices_file(fleet))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(vec!["--devices".into(), path.display().to_string()])
}

/// A devices file listing `fleet`, every HTTPS device pinned to its own certificate, as
/// an operator writes it after reading the fingerprint off each device's page.
fn devices_file(fleet: &Fleet) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    for device in &fleet.devices {
        let _ = writeln!(
            text,
            "[[device]]\nname = \"{}\"\nurl = \"{}\"\nkind = \"{}\"",
            device.name(),
            device.url(),
            device.kind()
        );
        if let Some(fingerprint) = device.fingerprint() {
            let _ = writeln!(text, "tls_fingerprint = \"{fingerprint}\"");
        }
        text.push('\n');
    }
    text
}

/// Where the photos of a face workload of `people` are: `<registration>.jpg` each.
fn photos_dir(scratch: &Path, people: usize) -> PathBuf {
    scratch.join(format!("photos-{people}"))
}

/// Distinct photos before they repeat: enough that the fitter's 256 kept photos never
/// serve a person's photo to the next person, few enough to make quickly.
const DISTINCT_PHOTOS: usize = 1000;

/// Writes a photo per person of the generated list (`2026000000.jpg`, ...): 600 x 800
/// pictures from the simulator's generator, fitted to 480 x 640, [`DISTINCT_PHOTOS`]
/// of them hard-linked in turn (the files are then cheap at 100,000 people).
fn write_photos(scratch: &Path, people: usize) -> anyhow::Result<()> {
    let dir = photos_dir(scratch, people);
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)?;
    let originals = scratch.join("photo-originals");
    std::fs::create_dir_all(&originals)?;
    for i in 0..people {
        let original = originals.join(format!("{}.jpg", i % DISTINCT_PHOTOS));
        if !original.exists() {
            let photo = catraca_sim::test_photo::TestPhoto::new(600, 800)
                .seed(i as u64 % DISTINCT_PHOTOS as u64)
                .build();
            std::fs::write(&original, photo)?;
        }
        std::fs::hard_link(&original, dir.join(format!("2026{i:06}.jpg")))
            .with_context(|| format!("linking the photo of person {i}"))?;
    }
    Ok(())
}

/// Photos received, and requests of `user_set_image_list`, over the fleet so far.
fn photo_counters(fleet: &Fleet) -> (u64, u64) {
    fleet.devices.iter().fold((0, 0), |(photos, requests), d| {
        (
            photos + d.face_stats().photos_received,
            requests + d.stats().count("user_set_image_list"),
        )
    })
}

fn random_key() -> String {
    let key: [u8; 32] = rand::random();
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Requests, `create_objects` requests and accepted connections, over the fleet so far.
fn fleet_counters(fleet: &Fleet) -> (u64, u64, u64) {
    fleet
        .devices
        .iter()
        .fold((0, 0, 0), |(all, creates, connections), d| {
            let stats = d.stats();
            (
                all + stats.total,
                creates + stats.count("create_objects"),
                connections + d.connections_accepted(),
            )
        })
}

/// Runs the workloads of `group` (one alone, or the sides of a comparison) run by run
/// in turn, each run after its unmeasured fill run for a cached workload, and checks
/// every run. A repeated workload's row shows the medians of its runs' wall times, CPU
/// times and finish times; its other figures are those of its last run.
fn measure_side_by_side(
    launcher: &mut measure::Launcher,
    exe: &Path,
    scratch: &Path,
    group: &[Workload],
) -> anyhow::Result<Vec<Row>> {
    let mut csvs = Vec::new();
    for workload in group {
        if workload.faces.is_some() {
            write_photos(scratch, workload.people)?;
        }
        let csv = scratch.join(format!("people-{}-{:?}.csv", workload.people, workload.mix));
        if !csv.exists() {
            std::fs::write(&csv, participants_csv(workload.people, workload.mix))?;
        }
        csvs.push(csv);
    }
    let rounds = group.iter().map(|w| w.repeat.max(1)).max().unwrap_or(1);
    let mut runs: Vec<Vec<Row>> = vec![Vec::new(); group.len()];
    for round in 0..rounds {
        // Every other round in the opposite order, so that neither side always runs
        // first (after a pause) or last (while the previous fleet's memory is freed).
        let mut order: Vec<usize> = (0..group.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            if round < group[i].repeat.max(1) {
                let row = measure_once(launcher, exe, scratch, &csvs[i], &group[i])?;
                runs[i].push(row);
            }
        }
    }
    Ok(runs.into_iter().map(median_row).collect())
}

/// One row for a workload's runs: the last run's, with the medians of the times.
fn median_row(runs: Vec<Row>) -> Row {
    let median = |value: fn(&Row) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(value).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let wall_ms = median(|r| r.wall_ms);
    let fast_finished_ms = median(|r| r.fast_finished_ms);
    let cpu_ms = median(|r| r.cpu_ms);
    let simulator_cpu_ms = median(|r| r.simulator_cpu_ms);
    let count = runs.len();
    let mut row = runs.into_iter().last().expect("at least one run");
    row.wall_ms = wall_ms;
    row.fast_finished_ms = fast_finished_ms;
    row.cpu_ms = cpu_ms;
    row.simulator_cpu_ms = simulator_cpu_ms;
    if count > 1 {
        row.settings = format!("{}; median of {count} runs", row.settings);
    }
    row.efficiency = row.ideal_ms.map(|ideal| ideal / row.wall_ms);
    row
}

/// One measured run of `workload` on fresh devices, checked; the devices are shut down.
fn measure_once(
    launcher: &mut measure::Launcher,
    exe: &Path,
    scratch: &Path,
    csv: &Path,
    workload: &Workload,
) -> anyhow::Result<Row> {
    let config = SimConfig {
        latency: workload.latency,
        per_object_latency: workload.per_object,
        tls: match workload.transport {
            Transport::Http | Transport::HttpDevicesFile => SimTls::Off,
            Transport::HttpsPinned => SimTls::SelfSigned,
        },
        faces: match workload.faces {
            Some(time_per_photo) => catraca_sim::SimFaces {
                time_per_photo,
                ..catraca_sim::SimFaces::on()
            },
            None => catraca_sim::SimFaces::default(),
        },
        ..SimConfig::default()
    };
    let fleet = start_fleet(workload, &config).context("starting the simulator")?;
    let key = random_key();
    let devices = device_args(scratch, &fleet, workload.transport, &key)?;
    let store = scratch.join(format!("cache-{key}.redb"));
    let redis = match workload.cache {
        CacheMode::Redis | CacheMode::RedisFilled => Some(redis_for_bench()?),
        _ => None,
    };
    let cache: Vec<String> = match workload.cache {
        CacheMode::None => vec!["--cache".into(), "none".into()],
        CacheMode::Embedded | CacheMode::EmbeddedFilled => vec![
            "--cache".into(),
            "embedded".into(),
            "--cache-path".into(),
            store.display().to_string(),
        ],
        CacheMode::Redis | CacheMode::RedisFilled => vec![
            "--cache".into(),
            redis.as_ref().expect("started above").url(),
        ],
    };
    if workload.devices_down {
        for device in &fleet.devices {
            device.set_down(true);
        }
    }
    if workload.cache.filled() {
        let fill = launcher.run(&enroll_command(
            exe, scratch, csv, &devices, workload, &cache, &key,
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
    let (before, creates_before, connections_before) = fleet_counters(&fleet);
    let (photos_before, photo_requests_before) = photo_counters(&fleet);
    let finished = launcher.run(&enroll_command(
        exe, scratch, csv, &devices, workload, &cache, &key,
    ))?;
    let (after, creates_after, connections_after) = fleet_counters(&fleet);
    let (photos_after, photo_requests_after) = photo_counters(&fleet);
    // Every pair fails when every device is down: exit status 1, as documented.
    let expected_code = i32::from(workload.devices_down);
    if finished.code != expected_code {
        bail!(
            "{}: catraca enroll ended with status {}:\n{}",
            workload.name,
            finished.code,
            finished.stderr
        );
    }
    let report = report_head(&finished.stdout).with_context(|| {
        format!(
            "{}: the report is not JSON: {:.2000}",
            workload.name, finished.stdout
        )
    })?;
    let count = |key: &str| report.get(key).and_then(Value::as_u64).unwrap_or(0);
    let cached_after = match (workload.cache, &redis) {
        (CacheMode::Embedded, _) if !workload.devices_down => Some(
            crate::cache::embedded::EmbeddedCache::open(&store)
                .and_then(|cache| cache.len())
                .with_context(|| format!("{}: reading the cache back", workload.name))?,
        ),
        // A shared Redis (no redis-server to start) holds other runs' pairs too.
        (CacheMode::Redis, Some(redis @ BenchRedis::Private(_))) => Some(
            crate::cache::redis_cache::RedisCache::open(&redis.url())
                .and_then(|cache| cache.count_keys())
                .with_context(|| format!("{}: reading the cache back", workload.name))?,
        ),
        _ => None,
    };
    let (fast_finished_ms, slow_finished_ms) = finish_times(workload, &report, &fleet)?;
    let requests = after - before;
    let pairs = workload.pairs();
    let photos_sent = photos_after - photos_before;
    let photo_requests = photo_requests_after - photo_requests_before;
    let ideal = match workload.faces {
        // The photos' modeling time: a device models the photos of one request one
        // after the other (the simulator's --face-ms each), with the requests the
        // settings allow in flight at once; devices work side by side. Requests carry
        // as many photos as this run's did (1.4 MB of base64 each).
        Some(time) if photo_requests > 0 && !time.is_zero() => {
            let per_request = photos_sent as f64 / photo_requests as f64;
            let per_device = workload.people as f64;
            let in_flight = crate::engine::DEFAULT_MAX_IN_FLIGHT as f64;
            let rounds = (per_device / per_request / in_flight).ceil();
            Some(Duration::from_secs_f64(
                rounds * per_request * time.as_secs_f64(),
            ))
        }
        Some(_) => None,
        None => workload.ideal(),
    };
    let faces: Vec<catraca_sim::SimFace> = fleet.devices.iter().flat_map(|d| d.faces()).collect();
    let photo_kb = if faces.is_empty() {
        0.0
    } else {
        faces.iter().map(|f| f.bytes as f64).sum::<f64>() / faces.len() as f64 / 1000.0
    };
    let _ = std::fs::remove_file(&store);
    drop(redis);
    let mut row = Row {
        workload: workload.name.clone(),
        settings: workload.settings(),
        cache: workload.cache.label().to_string(),
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
        not_cached: count("not_cached"),
        cached_after,
        users_on_devices: 0,
        fast_finished_ms,
        slow_finished_ms,
        transport: workload.transport.scheme().to_string(),
        connections: connections_after - connections_before,
        photos_sent,
        photo_requests,
        photo_kb,
    };
    check(workload, &mut row, &report, &fleet)?;
    fleet.shutdown();
    Ok(row)
}

/// The report's figures without its list of failures: a run where every pair fails
/// lists a million of them, which a `Value` would hold as a million maps in the
/// benchmark's own memory (where the simulated devices are measured).
fn report_head(stdout: &str) -> serde_json::Result<Value> {
    #[derive(serde::Deserialize)]
    struct Head {
        operations: u64,
        registered: u64,
        skipped_cache: u64,
        failed: u64,
        not_cached: u64,
        per_device: Value,
    }
    let head: Head = serde_json::from_str(stdout)?;
    Ok(serde_json::json!({
        "operations": head.operations,
        "registered": head.registered,
        "skipped_cache": head.skipped_cache,
        "failed": head.failed,
        "not_cached": head.not_cached,
        "per_device": head.per_device,
    }))
}

/// The workload's devices on free loopback ports, each a fresh one: `devices` at the
/// workload's latency, the last at the slow latency when there is a slow device.
fn start_fleet(workload: &Workload, config: &SimConfig) -> std::io::Result<Fleet> {
    let Some(slow) = workload.slow_device else {
        return Fleet::start(workload.devices, config);
    };
    let mut fleet = Fleet::start(workload.devices - 1, config)?;
    let name = format!("catraca-{}", workload.devices);
    let slow_config = SimConfig {
        latency: slow,
        seed: config.seed.wrapping_add(workload.devices as u64 - 1),
        ..config.clone()
    };
    fleet.devices.push(SimDevice::start(
        &name,
        ([127, 0, 0, 1], 0).into(),
        slow_config,
    )?);
    Ok(fleet)
}

/// From the report's `per_device`: when the last device at the workload's latency
/// finished, and when the slow device did (if there is one).
fn finish_times(
    workload: &Workload,
    report: &Value,
    fleet: &Fleet,
) -> anyhow::Result<(f64, Option<f64>)> {
    let per_device = report["per_device"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if per_device.len() != fleet.devices.len() {
        bail!(
            "{}: the report has {} devices, the run had {}",
            workload.name,
            per_device.len(),
            fleet.devices.len()
        );
    }
    let slow_url = workload
        .slow_device
        .and_then(|_| fleet.devices.last())
        .map(SimDevice::url);
    let is_slow = |device: &Value| {
        let url = device["url"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('/');
        slow_url
            .as_deref()
            .is_some_and(|slow| slow.trim_end_matches('/') == url)
    };
    let finished = |device: &Value| device["finished_ms"].as_f64().unwrap_or(0.0);
    let fast = per_device
        .iter()
        .filter(|d| !is_slow(d))
        .map(finished)
        .fold(0.0, f64::max);
    let slow = per_device.iter().find(|d| is_slow(d)).map(finished);
    if slow_url.is_some() && slow.is_none() {
        bail!("{}: the slow device is not in the report", workload.name);
    }
    Ok((fast, slow))
}

/// W4's figures, when both of its runs are in `rows`.
fn neighbour(rows: &[Row], sizes: &Sizes) -> Option<Neighbour> {
    let row = |name: &str| rows.iter().find(|r| r.workload == name);
    let alone = row(workloads::FAST_ALONE)?;
    let beside = row(workloads::BESIDE_SLOW)?;
    Some(Neighbour {
        fast_devices: alone.devices,
        fast_latency_ms: ms(sizes.fast_latency),
        slow_latency_ms: ms(sizes.slow_latency),
        fast_alone_ms: alone.fast_finished_ms,
        fast_beside_slow_ms: beside.fast_finished_ms,
        ratio: beside.fast_finished_ms / alone.fast_finished_ms.max(1.0),
        slow_ms: beside.slow_finished_ms.unwrap_or(0.0),
    })
}

/// A Redis of the benchmark's own, so a million keys never land in a shared one; the
/// shared one (with a key of this run alone) when no `redis-server` can be started.
enum BenchRedis {
    Private(catraca_sim::redis_server::PrivateRedis),
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
    match catraca_sim::redis_server::PrivateRedis::start() {
        Ok(server) => Ok(BenchRedis::Private(server)),
        Err(_) => Ok(BenchRedis::Shared(catraca_sim::redis_server::shared_url())),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The checks that make a figure mean something: every pair once in the report, every
/// person exactly once on every device, nothing sent when everything is cached, and
/// every device reached over the transport the row is labelled with.
fn check(workload: &Workload, row: &mut Row, report: &Value, fleet: &Fleet) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if row.operations != row.pairs {
        problems.push(format!(
            "the report counts {} operations for {} pairs",
            row.operations, row.pairs
        ));
    }
    if workload.devices_down {
        // Every pair fails, is counted and listed; nothing reaches a device.
        if row.failed != row.pairs {
            problems.push(format!(
                "{} of {} pairs failed with every device down",
                row.failed, row.pairs
            ));
        }
    } else {
        if row.failed != 0 {
            problems.push(format!("{} pairs failed", row.failed));
        }
        let expected_done = if workload.cache.filled() {
            row.skipped_cache
        } else {
            row.registered
        };
        if expected_done != row.pairs {
            problems.push(format!(
                "{} of {} pairs were {}",
                expected_done,
                row.pairs,
                if workload.cache.filled() {
                    "skipped by the cache"
                } else {
                    "registered"
                }
            ));
        }
    }
    // With photos, a cached run asks each device once whether it takes faces (its
    // fingerprints hold the photo only if it does): a login and the model question,
    // and nothing else.
    let asked = if workload.faces.is_some() {
        2 * workload.devices as u64
    } else {
        0
    };
    if workload.cache.filled() && row.requests > asked {
        problems.push(format!(
            "{} requests reached the devices although everything was cached",
            row.requests
        ));
    }
    if let Some(cached) = row.cached_after {
        // A first run: what the report counts done, less what it says was not cached.
        let done = row.registered + row.skipped_cache;
        if row.not_cached != 0 || cached != done {
            problems.push(format!(
                "the cache holds {cached} pairs after a run that did {done} ({} not cached)",
                row.not_cached
            ));
        }
    }
    problems.extend(transport_problems(workload, row, report, fleet));
    if workload.faces.is_some() {
        let expected = if workload.cache.filled() {
            0
        } else {
            row.pairs
        };
        if row.photos_sent != expected {
            problems.push(format!(
                "the devices received {} photos, {expected} expected",
                row.photos_sent
            ));
        }
        for device in &fleet.devices {
            let faces = device.faces();
            if faces.len() != workload.people || faces.iter().any(|f| f.dangling) {
                problems.push(format!(
                    "{} holds {} faces for {} people",
                    device.name(),
                    faces.len(),
                    workload.people
                ));
            }
        }
    }
    for device in &fleet.devices {
        let users = device.users();
        let distinct: HashSet<&str> = users.iter().map(|u| u.registration.as_str()).collect();
        row.users_on_devices += users.len() as u64;
        let expected = if workload.devices_down {
            0
        } else {
            workload.people
        };
        if users.len() != expected || distinct.len() != expected {
            problems.push(format!(
                "{} holds {} users ({} distinct registrations) for {} people",
                device.name(),
                users.len(),
                distinct.len(),
                expected
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}: {}", workload.name, problems.join("; "))
    }
}

/// What contradicts the row's transport: a device (in the fleet or in the report) on
/// another scheme, an HTTPS device without a certificate to pin, or requests without a
/// connection to carry them.
fn transport_problems(
    workload: &Workload,
    row: &Row,
    report: &Value,
    fleet: &Fleet,
) -> Vec<String> {
    let scheme = workload.transport.scheme();
    let prefix = format!("{scheme}://");
    let mut problems = Vec::new();
    for device in &fleet.devices {
        if !device.url().starts_with(&prefix) {
            problems.push(format!(
                "{} is {}, not {scheme}",
                device.name(),
                device.url()
            ));
        }
        if workload.transport == Transport::HttpsPinned && device.fingerprint().is_none() {
            problems.push(format!("{} has no certificate to pin", device.name()));
        }
    }
    let reported = report["per_device"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for device in reported {
        let url = device["url"].as_str().unwrap_or_default();
        if !url.starts_with(&prefix) {
            problems.push(format!("the report has {url:?}, not a {scheme} device"));
        }
    }
    if row.requests > 0 && row.connections == 0 {
        problems.push(format!(
            "{} requests arrived without a connection being accepted",
            row.requests
        ));
    }
    problems
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
        "\n| workload | cache | settings | wall | ideal | efficiency | requests/pair | requests | peak RSS | CPU | simulator CPU |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &results.rows {
        let ideal = row
            .ideal_ms
            .map_or("—".to_string(), |ms| format!("{:.0} ms", ms));
        let efficiency = row
            .efficiency
            .map_or("—".to_string(), |e| format!("{e:.2}"));
        // Not measured for the rows of many processes (`sites`).
        let peak_rss = if row.peak_rss_mb > 0.0 {
            format!("{:.1} MB", row.peak_rss_mb)
        } else {
            "—".to_string()
        };
        let _ = writeln!(
            out,
            "| {} ({} x {}) | {} | {} | {} | {} | {} | {:.4} | {} | {} | {} | {} |",
            row.workload,
            row.people,
            row.devices,
            row.cache,
            row.settings,
            duration(row.wall_ms),
            ideal,
            efficiency,
            row.requests_per_pair,
            row.requests,
            peak_rss,
            duration(row.cpu_ms),
            duration(row.simulator_cpu_ms),
        );
    }
    for line in cache_costs(&results.rows) {
        let _ = writeln!(out, "\n{line}");
    }
    for row in results.rows.iter().filter(|r| r.workload.starts_with("W5")) {
        let per_request = if row.photo_requests > 0 {
            format!(
                ", {:.1} per request",
                row.photos_sent as f64 / row.photo_requests as f64
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\n{}: {} photos sent in {} requests{per_request}, {:.1} KB each as stored; \
             {:.0} photos per CPU second of the whole run; peak RSS {:.1} MB",
            row.workload,
            row.photos_sent,
            row.photo_requests,
            row.photo_kb,
            row.people as f64 / (row.cpu_ms / 1000.0).max(1e-9),
            row.peak_rss_mb
        );
    }
    if let Some(n) = &results.neighbour {
        let _ = writeln!(
            out,
            "\nW4 a slow neighbour: the {} fast devices ({:.0} ms) finish in {} alone and in {} \
             beside one at {:.0} ms (ratio {:.2}); the slow one finishes in {}",
            n.fast_devices,
            n.fast_latency_ms,
            duration(n.fast_alone_ms),
            duration(n.fast_beside_slow_ms),
            n.slow_latency_ms,
            n.ratio,
            duration(n.slow_ms)
        );
    }
    if let Some(line) = tls_cost::line(&results.tls) {
        let _ = writeln!(out, "\n{line}");
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

/// What each cache costs W2, against the `--cache none` row of the same size in the
/// same run: wall time, CPU and peak RSS side by side (issue 14's targets are ratios).
fn cache_costs(rows: &[Row]) -> Vec<String> {
    let mut lines = Vec::new();
    for with_cache in rows
        .iter()
        .filter(|r| r.workload.starts_with("W2 scale") && r.cache != CacheMode::None.label())
    {
        let Some(none) = rows.iter().find(|r| {
            r.workload.starts_with("W2 scale")
                && r.cache == CacheMode::None.label()
                && r.people == with_cache.people
        }) else {
            continue;
        };
        lines.push(format!(
            "W2 {} x {} with cache {} against none: wall {} / {} = {:.2}x, CPU {} / {} = {:.2}x, \
             peak RSS {:.1} MB / {:.1} MB",
            with_cache.people,
            with_cache.devices,
            with_cache.cache,
            duration(with_cache.wall_ms),
            duration(none.wall_ms),
            with_cache.wall_ms / none.wall_ms.max(1.0),
            duration(with_cache.cpu_ms),
            duration(none.cpu_ms),
            with_cache.cpu_ms / none.cpu_ms.max(1.0),
            with_cache.peak_rss_mb,
            none.peak_rss_mb,
        ));
    }
    lines
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
