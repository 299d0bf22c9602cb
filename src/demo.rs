//! `catraca demo`: the whole job on embedded defaults, on any machine, in seconds.
//!
//! Starts 5 simulated Control iD turnstiles in this process on free loopback ports,
//! enrolls the shipped `data/participants.csv` (100 Brazilian participants, accents,
//! cards, groups, validity windows) with the embedded cache in a temporary directory,
//! then runs again to show that every pair is skipped, and finally reads the simulated
//! devices back to show each holds every person exactly once. No Redis, no network.

use crate::cache::embedded::EmbeddedCache;
use crate::cache::KeySecret;
use crate::cli::{emit, install_interrupt_handler, run_watched, DemoArgs, WatchArgs};
use crate::config::{DeviceConfig, Kind};
use crate::device::controlid::Credentials;
use crate::enroll::Enrollment;
use crate::exit::Exit;
use crate::participants;
use crate::reporter::Verbosity;
use crate::simulator::{Fleet, SimConfig};
use crate::stop::Stop;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The demo's participants, built into the binary so the demo runs from any directory.
const PARTICIPANTS: &[u8] = include_bytes!("../data/participants.csv");
const DEVICES: usize = 5;

pub fn run(args: DemoArgs, verbosity: Verbosity) -> anyhow::Result<Exit> {
    let people = participants::parse(PARTICIPANTS, "data/participants.csv")?;
    let config = SimConfig {
        latency: Duration::from_millis(args.latency_ms),
        ..SimConfig::default()
    };
    let fleet = Fleet::start(DEVICES, &config)?;
    let devices: Vec<DeviceConfig> = fleet
        .devices
        .iter()
        .map(|d| DeviceConfig {
            name: d.name().to_string(),
            url: d.url(),
            kind: Kind::Controlid,
            max_in_flight: args.run.max_in_flight.get(),
            rate: args.run.rate,
            nonce_uses: None,
            long_names: None,
            credentials: Credentials {
                login: config.login.clone(),
                password: config.password.clone(),
                source: "the simulator's factory default".into(),
            },
            tls: Default::default(),
            trace: None,
        })
        .collect();
    eprintln!(
        "catraca demo: {} participants, {DEVICES} simulated Control iD turnstiles ({} ms latency):",
        people.len(),
        args.latency_ms
    );
    for d in &fleet.devices {
        eprintln!("  {} {}", d.name(), d.url());
    }

    let dir = tempfile::tempdir()?;
    let cache = EmbeddedCache::open(&dir.path().join("cache.redb"))?;
    let secret = KeySecret::random();
    let stop = Arc::new(Stop::default());
    install_interrupt_handler(&stop);

    // The first pass is the one worth watching (the second is all cache hits).
    let watch = WatchArgs {
        dashboard: args.dashboard.clone(),
        dashboard_linger: args.dashboard_linger,
        ..WatchArgs::default()
    };
    let mut lingering = None;
    let mut exit = Exit::Done;
    for (pass, title) in [
        (1, "first pass: every person onto every turnstile"),
        (
            2,
            "second pass: the same list again, everything is in the cache",
        ),
    ] {
        eprintln!("\n== {title}");
        let enrollment = Enrollment {
            people: &people,
            targets: args.run.targets(&devices),
            cache: &cache,
            secret: &secret,
            options: args.run.engine_options(false),
            verbosity,
            max_failures: None,
        };
        let report = if pass == 1 {
            let (report, dashboard) = run_watched(&enrollment, &watch, &stop)?;
            lingering = Some(dashboard);
            report
        } else {
            enrollment.run(&stop)?
        };
        emit(&report, false, None)?;
        exit = exit.merge(Exit::of(&report));
        if pass == 2 && report.skipped_cache != report.operations {
            eprintln!(
                "the second pass skipped {} of {} pairs; expected all",
                report.skipped_cache, report.operations
            );
            exit = exit.merge(Exit::SomeFailed);
        }
        if exit != Exit::Done {
            break;
        }
    }

    eprintln!("\n== what the turnstiles hold now");
    for device in &fleet.devices {
        let users = device.users();
        let mut copies: HashMap<&str, usize> = HashMap::new();
        for u in &users {
            *copies.entry(u.registration.as_str()).or_default() += 1;
        }
        let duplicated = copies.values().filter(|&&n| n > 1).count();
        eprintln!(
            "  {}: {} people, {} cards, {} duplicated registrations",
            device.name(),
            users.len(),
            device.cards().len(),
            duplicated
        );
        if users.len() != people.len() || duplicated > 0 {
            exit = exit.merge(Exit::SomeFailed);
        }
    }
    if let Some(dashboard) = lingering {
        dashboard.linger(&watch, verbosity, &stop);
    }
    Ok(exit)
}
