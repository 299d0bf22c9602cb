//! `catraca publish`: the central office cuts one participants CSV into per-site jobs
//! on the central Redis, for each site's agents (see `queue` for the whole picture).
//!
//! The CSV is read and validated exactly as `enroll` reads it, and its cards are checked
//! against the fleet's card formats: any bad row is exit 2 and nothing is published.
//! The jobs, the run's record and the "latest run" pointer are written in one MULTI/EXEC
//! guarded by WATCH on the run's key, so a run is published whole or not at all, and the
//! same list published twice (or by two offices at once) is published once.

use crate::config;
use crate::exit::Exit;
use crate::i18n::{tr, Msg};
use crate::participants::{self, Source};
use crate::queue::link::QueueLink;
use crate::queue::split::{split, SplitOptions};
use crate::queue::wire::JOB_FIELD;
use crate::queue::{now_ms, Names, GROUP};
use crate::reporter::Verbosity;
use crate::stdout::print_stdout;
use anyhow::Context;
use std::path::PathBuf;

/// Everything `publish` needs, checked.
#[derive(Debug)]
pub struct PublishConfig {
    pub users: Source,
    /// The central fleet file.
    pub fleet: PathBuf,
    /// The central Redis URL (may hold a password: only ever shown redacted).
    pub queue: String,
    pub names: Names,
    pub split: SplitOptions,
    pub verbosity: Verbosity,
}

/// Publishes the run; prints its id on stdout.
pub fn run(config: PublishConfig) -> anyhow::Result<Exit> {
    let fleet = config::load_fleet(&config.fleet)?;
    let people = participants::read(&config.users, participants::Needs::Person)?;
    refuse_photos(&config.users.display_name(), &people)?;
    let rules: Vec<_> = fleet
        .iter()
        .map(|d| (d.name.as_str(), d.kind, d.cards))
        .collect();
    let card_warnings = crate::card::check_csv_cards(&config.users.display_name(), &people, &rules)
        .map_err(anyhow::Error::msg)?;
    for warning in card_warnings {
        log::warn!("{warning}");
    }
    let mut link = QueueLink::open(&config.queue)?;
    let split = split(&people, &fleet, config.split, now_ms());
    let id = split.record.id.clone();
    let run_key = config.names.run(&id);
    let record = serde_json::to_string(&split.record)?;
    let sites: Vec<String> = split.sites().map(str::to_string).collect();
    for site in &sites {
        link.run(|c| create_group(c, &config.names.jobs(site)))?;
    }
    // The whole run in one transaction, packed once: the jobs, the run's record, the
    // pointer to the latest run.
    let latest = config.names.latest();
    let mut transaction = redis::pipe();
    transaction.atomic();
    let jobs = split.record.jobs();
    split.for_each_job(|site, job| {
        transaction
            .cmd("XADD")
            .arg(config.names.jobs(site))
            .arg("*")
            .arg(JOB_FIELD)
            .arg(job)
            .ignore();
    });
    transaction.cmd("SET").arg(&run_key).arg(&record).ignore();
    transaction.cmd("SET").arg(&latest).arg(&id).ignore();
    let published = link.run(|c| loop {
        redis::cmd("WATCH").arg(&run_key).exec(c)?;
        let exists: bool = redis::cmd("EXISTS").arg(&run_key).query(c)?;
        if exists {
            redis::cmd("UNWATCH").exec(c)?;
            return Ok(false);
        }
        // EXEC answers nil when the watched key changed: another publish of this very
        // run got there first; look again.
        let done: Option<()> = transaction.query(c)?;
        if done.is_some() {
            return Ok(true);
        }
    })?;
    if config.verbosity != Verbosity::Quiet {
        let line = if published {
            tr(
                Msg::SitesPublished,
                &[
                    ("id", &id),
                    ("jobs", &jobs),
                    ("people", &people.len()),
                    ("devices", &fleet.len()),
                    ("sites", &sites.join(", ")),
                ],
            )
        } else {
            tr(Msg::SitesAlreadyPublished, &[("id", &id)])
        };
        eprintln!("{line}");
    }
    print_stdout(&format!("{id}\n")).context("printing the run id")?;
    Ok(Exit::Done)
}

/// Creates the agents' consumer group of `stream` (and the stream), from its start, so
/// that agents see the jobs published before they first connected. Already there is fine.
pub fn create_group(connection: &mut redis::Connection, stream: &str) -> redis::RedisResult<()> {
    match redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .exec(connection)
    {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// Photos stay with the central list for now: a job carries names, not pictures (a
/// 999-person job of fitted photos would be some 60 MB in the central Redis). A list
/// with photos is refused before anything is published, rather than published without
/// its faces.
fn refuse_photos(file: &str, people: &[crate::person::Person]) -> anyhow::Result<()> {
    if let Some(person) = people.iter().find(|p| p.photo.is_some()) {
        let field = match &person.photo.as_ref().map(|p| &p.origin) {
            Some(crate::photo::PhotoOrigin::Column(name)) => name.to_string(),
            _ => "photo".to_string(),
        };
        let line = person.line.to_string();
        anyhow::bail!(tr(
            Msg::SitesNoPhotos,
            &[("file", &file), ("line", &line), ("field", &field)]
        ));
    }
    Ok(())
}
