//! The `sites` group of `catraca bench`: one list on 3 sites of 2 simulated devices
//! each, through the central queue (`publish`, one or more `agent --once` per site,
//! `status --wait`), with more and more agents.
//!
//! Each agent runs one job at a time (`--jobs 1`), so the rows show what agents add: a
//! second agent per site doubles the jobs in flight, and a third adds nothing because
//! each device runs one job at a time (its lease) and a site has two devices: from there
//! the devices are the limit. The last row is one agent per site with its default slots
//! (one per device), which reaches the same limit from one box. The wall time runs from
//! the start of `publish` to the end of `status --wait`, every process included; CPU is
//! the sum over all of them (publish, agents, status), reaped with `wait4`. Peak RSS is
//! not given: the processes are children of the benchmark, whose size Linux would lend
//! them (see `measure`). Each run is checked like any other: the status adds up, every
//! pair registered, every person exactly once on every device.

use super::{fleet_counters, ms, participants_csv, redis_for_bench, Mix, Row};
use anyhow::{bail, Context};
use catraca_sim::{Fleet, SimConfig};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SITES: usize = 3;
const DEVICES_PER_SITE: usize = 2;

/// One configuration of agents.
struct Agents {
    per_site: usize,
    /// `--jobs` of each agent; `None`: the default (one per device).
    jobs: Option<usize>,
}

/// The rows of the group: 1, 2 and 3 agents per site of one job each, then one agent
/// per site with its default slots.
pub fn rows(exe: &Path, scratch: &Path, quick: bool) -> anyhow::Result<Vec<Row>> {
    let (people, job_size) = if quick { (30, 10) } else { (600, 100) };
    let csv = scratch.join(format!("sites-{people}.csv"));
    std::fs::write(&csv, participants_csv(people, Mix::Full))?;
    let mut rows = Vec::new();
    for agents in [
        Agents {
            per_site: 1,
            jobs: Some(1),
        },
        Agents {
            per_site: 2,
            jobs: Some(1),
        },
        Agents {
            per_site: 3,
            jobs: Some(1),
        },
        Agents {
            per_site: 1,
            jobs: None,
        },
    ] {
        let row = measure(exe, scratch, &csv, people, job_size, &agents)?;
        eprintln!(
            "bench:   {}: {:.0} ms, {:.4} requests/pair",
            row.workload, row.wall_ms, row.requests_per_pair
        );
        rows.push(row);
    }
    Ok(rows)
}

/// What the kernel charged a reaped child.
struct Reaped {
    code: i32,
    cpu: Duration,
}

/// Runs `command` to its end, reaped with `wait4` for its CPU time.
fn spawn(mut command: Command) -> anyhow::Result<u32> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting catraca")?;
    Ok(child.id())
}

fn reap(pid: u32) -> anyhow::Result<Reaped> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet reaped; both pointers are to live locals.
    let reaped = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if reaped < 0 {
        bail!("waiting for catraca: {}", std::io::Error::last_os_error());
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Reaped {
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
    })
}

fn measure(
    exe: &Path,
    scratch: &Path,
    csv: &Path,
    people: usize,
    job_size: usize,
    agents: &Agents,
) -> anyhow::Result<Row> {
    let latency = Duration::from_millis(50);
    let per_object = Duration::from_millis(1);
    let config = SimConfig {
        latency,
        per_object_latency: per_object,
        ..SimConfig::default()
    };
    let fleets: Vec<Fleet> = (0..SITES)
        .map(|_| Fleet::start(DEVICES_PER_SITE, &config))
        .collect::<Result<_, _>>()
        .context("starting the simulator")?;
    let redis = redis_for_bench()?;
    let prefix = format!("bench-{:016x}", rand::random::<u64>());
    let site = |s: usize| format!("site{s}");
    let mut fleet_file = String::new();
    for (s, fleet) in fleets.iter().enumerate() {
        let mut site_file = String::new();
        for (i, url) in fleet.urls().iter().enumerate() {
            let name = format!("{}-{}", site(s), i + 1);
            fleet_file.push_str(&format!(
                "[[device]]\nname = \"{name}\"\nsite = \"{}\"\n\n",
                site(s)
            ));
            site_file.push_str(&format!(
                "[[device]]\nname = \"{name}\"\nsite = \"{}\"\nurl = \"{url}\"\n\n",
                site(s)
            ));
        }
        std::fs::write(
            scratch.join(format!("{prefix}-{}.toml", site(s))),
            site_file,
        )?;
    }
    let fleet_path = scratch.join(format!("{prefix}-fleet.toml"));
    std::fs::write(&fleet_path, fleet_file)?;
    let catraca = |args: &[String]| {
        let mut command = Command::new(exe);
        command
            .args(["-q"])
            .args(args)
            .args(["--queue", &redis.url(), "--queue-prefix", &prefix])
            .env_remove("REDIS_URL")
            .env_remove("CATRACA_CACHE")
            .env_remove("CATRACA_PASSWORD")
            .env_remove("CATRACA_QUEUE")
            .env("CATRACA_CACHE_KEY", super::random_key())
            .current_dir(scratch);
        command
    };
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let (requests_before, creates_before, connections_before) = totals(&fleets);
    let started = Instant::now();
    let simulator_before = super::measure::own_cpu();
    let mut cpu = Duration::ZERO;
    let publish = reap(spawn(catraca(&owned(&[
        "publish",
        "--users",
        &csv.display().to_string(),
        "--devices",
        &fleet_path.display().to_string(),
        "--job-size",
        &job_size.to_string(),
    ])))?)?;
    cpu += publish.cpu;
    if publish.code != 0 {
        bail!("sites: catraca publish ended with status {}", publish.code);
    }
    let mut pids = Vec::new();
    for s in 0..SITES {
        for a in 0..agents.per_site {
            let mut args = owned(&[
                "agent",
                "--once",
                "--site",
                &site(s),
                "--devices",
                &scratch
                    .join(format!("{prefix}-{}.toml", site(s)))
                    .display()
                    .to_string(),
                "--name",
                &format!("{}-{a}", site(s)),
                "--cache",
                "embedded",
                "--cache-path",
                &scratch
                    .join(format!("{prefix}-{}-{a}.redb", site(s)))
                    .display()
                    .to_string(),
            ]);
            if let Some(jobs) = agents.jobs {
                args.extend(owned(&["--jobs", &jobs.to_string()]));
            }
            pids.push(spawn(catraca(&args))?);
        }
    }
    for pid in pids {
        let agent = reap(pid)?;
        cpu += agent.cpu;
        if agent.code != 0 {
            bail!("sites: an agent ended with status {}", agent.code);
        }
    }
    let output = catraca(&owned(&["status", "--wait", "--json"]))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("running catraca status")?;
    let wall = started.elapsed();
    // The benchmark's main thread only waited meanwhile: its CPU is the simulator's.
    let simulator_cpu = super::measure::own_cpu() - simulator_before;
    let (requests_after, creates_after, connections_after) = totals(&fleets);
    let status: Value = serde_json::from_slice(&output.stdout)
        .context("sites: catraca status did not print a JSON report")?;
    let pairs = (people * SITES * DEVICES_PER_SITE) as u64;
    let count = |key: &str| status[key].as_u64().unwrap_or(0);
    if output.status.code() != Some(0) || status["complete"] != true || count("operations") != pairs
    {
        bail!("sites: the run did not complete every pair: {status}");
    }
    let mut users_on_devices = 0;
    for fleet in &fleets {
        for device in &fleet.devices {
            let users = device.users();
            let distinct: HashSet<&str> = users.iter().map(|u| u.registration.as_str()).collect();
            if users.len() != people || distinct.len() != people {
                bail!(
                    "sites: {} holds {} people ({} distinct), expected {people}",
                    device.name(),
                    users.len(),
                    distinct.len()
                );
            }
            users_on_devices += users.len() as u64;
        }
    }
    for fleet in fleets {
        fleet.shutdown();
    }
    drop(redis);
    let requests = requests_after - requests_before;
    let name = match agents.jobs {
        Some(_) => format!(
            "sites 3 x 2 devices, {} agent{}/site",
            agents.per_site,
            if agents.per_site == 1 { "" } else { "s" }
        ),
        None => "sites 3 x 2 devices, 1 agent/site, default --jobs".to_string(),
    };
    let jobs = match agents.jobs {
        Some(jobs) => format!("--jobs {jobs}"),
        None => "--jobs 2 (one per device)".to_string(),
    };
    Ok(Row {
        workload: name,
        settings: format!(
            "publish --job-size {job_size}; agent --once {jobs}; 50 ms + 1 ms/object; wall from publish to status --wait; CPU of every process"
        ),
        cache: "each agent's embedded, empty".into(),
        people: people as u64,
        devices: (SITES * DEVICES_PER_SITE) as u64,
        pairs,
        wall_ms: ms(wall),
        ideal_ms: None,
        efficiency: None,
        photos_sent: 0,
        photo_requests: 0,
        photo_kb: 0.0,
        requests,
        creates: creates_after - creates_before,
        requests_per_pair: requests as f64 / pairs as f64,
        peak_rss_mb: 0.0,
        cpu_ms: ms(cpu),
        simulator_cpu_ms: ms(simulator_cpu),
        operations: count("operations"),
        registered: count("registered"),
        skipped_cache: count("skipped_cache"),
        failed: count("failed"),
        not_cached: count("not_cached"),
        cached_after: None,
        users_on_devices,
        fast_finished_ms: 0.0,
        slow_finished_ms: None,
        transport: "http".into(),
        connections: connections_after - connections_before,
    })
}

fn totals(fleets: &[Fleet]) -> (u64, u64, u64) {
    fleets
        .iter()
        .map(fleet_counters)
        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
}
