//! `catraca demo`: the whole job on embedded defaults, on any machine, in seconds.
//!
//! Starts 5 simulated Control iD turnstiles in this process on free loopback ports,
//! enrolls the shipped `data/participants.csv` (100 Brazilian participants, accents,
//! cards, groups, validity windows) with the embedded cache in a temporary directory,
//! then runs again to show that every pair is skipped, and finally reads the simulated
//! devices back to show each holds every person exactly once. No Redis, no network.

use crate::cache::embedded::EmbeddedCache;
use crate::cache::KeySecret;
use crate::commands::enroll::{print_report, run_watched, WatchConfig, Watched};
use crate::config::{DeviceConfig, Kind};
use crate::device::Credentials;
use crate::engine::Enrollment;
use crate::enroll::RunConfig;
use crate::exit::Exit;
use crate::participants;
use crate::reporter::Verbosity;
use crate::stop::{install_interrupt_handler, Stop};
use catraca_sim::{Fleet, SimConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The demo's participants, built into the binary so the demo runs from any directory.
const PARTICIPANTS: &[u8] = include_bytes!("../../data/participants.csv");
const DEVICES: usize = 5;

/// What the demo needs, resolved from its flags.
#[derive(Debug)]
pub struct DemoConfig {
    /// Added by each simulated device to every answer.
    pub latency: Duration,
    pub run: RunConfig,
    /// The dashboard of the first pass, if asked for.
    pub watch: WatchConfig,
    pub verbosity: Verbosity,
}

/// Runs the demo: exit 0 when every pass did what it should.
pub fn run(args: DemoConfig) -> anyhow::Result<Exit> {
    let verbosity = args.verbosity;
    let people = participants::parse(PARTICIPANTS, "data/participants.csv")?;
    let config = SimConfig {
        latency: args.latency,
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
            site: None,
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
            cards: crate::card::CardRule::vendor_default(Kind::Controlid),
            trace: None,
            faces: None,
        })
        .collect();
    eprintln!(
        "catraca demo: {} participants, {DEVICES} simulated Control iD turnstiles ({} ms latency):",
        people.len(),
        args.latency.as_millis()
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
    let watch = args.watch.clone();
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
            stop: &stop,
        };
        let report = if pass == 1 {
            let Watched {
                report,
                dashboard,
                unwritten,
            } = run_watched(&enrollment, &watch)?;
            for error in unwritten {
                log::error!("{error:#}");
                exit = exit.merge(Exit::SomeFailed);
            }
            lingering = Some(dashboard);
            report
        } else {
            enrollment.run()?
        };
        print_report(&report, false)?;
        exit = exit.merge(Exit::of(&report));
        if pass == 2 && report.totals.skipped_cache != report.operations {
            eprintln!(
                "the second pass skipped {} of {} pairs; expected all",
                report.totals.skipped_cache, report.operations
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
