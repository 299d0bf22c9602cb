//! `catraca agent`: a site's box does its site's jobs from the central Redis, with the
//! same engine, drivers, breakers, rate limits and local cache as `enroll` (see `queue`
//! for the whole picture).
//!
//! The agent joins its site stream's consumer group under its own name and runs
//! `--jobs` *slots* (by default one per device of the site): each slot takes a job (first one that a dead agent
//! left pending longer than `--claim-after`, with XAUTOCLAIM; else a new one, with
//! XREADGROUP), runs it as an [`Enrollment`] of the job's people on its one device, and
//! then, in one MULTI/EXEC, appends the job's result to the run's results stream and
//! acknowledges the job. The drivers live as long as the agent, so a device's session,
//! breaker and rate limit carry from one job to the next.
//!
//! Jobs of one device run one at a time, across all the agents of the site: a job
//! first takes the device's *lease* in Redis (`SET NX PX`, its name as the value). So
//! the device never sees more than its `max_in_flight` requests however many agents
//! there are, and two agents never both create a missing access group on it (the
//! integration test that kills an agent found a person linked to two groups of one
//! name before the lease existed). A killed agent's lease lapses after
//! `--claim-after`, as its jobs do.
//!
//! A heartbeat thread records the agent in the agents hash, renews its leases, and
//! re-claims the jobs it is working on (XCLAIM with JUSTID resets their idle time), so
//! a long job is never taken over from a live agent; an agent killed stops all three,
//! and its jobs go to another agent of the site after `--claim-after`.
//!
//! SIGTERM or Ctrl-C: no new job is taken; the jobs in flight run to their end (the
//! engine is not told to stop), are acknowledged, and the agent exits 0. A second
//! signal exits at once (130): those jobs stay pending and another agent does them.

use crate::cache::choice::CacheChoice;
use crate::cache::{Cache, KeySecret};
use crate::config::DeviceConfig;
use crate::dashboard::Dashboard;
use crate::device::Device;
use crate::engine::{EngineOptions, Enrollment, RemovalOptions, Target};
use crate::enroll::RunConfig;
use crate::exit::Exit;
use crate::i18n::{tr, Msg};
use crate::live::{LiveStatus, RecentFailure};
use crate::queue::link::{QueueError, QueueLink};
use crate::queue::wire::{Job, JobOutcome, JobResult, PairFailure, JOB_FIELD, RESULT_FIELD};
use crate::queue::{now_ms, Names, GROUP};
use crate::report::Counts;
use crate::reporter::Verbosity;
use crate::stop::{install_interrupt_handler, Stop};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one read for new jobs waits on the server. One second: SIGTERM is noticed
/// within it, and an idle agent costs Redis one request a second.
const READ_BLOCK: Duration = Duration::from_secs(1);

/// The same for `--once`, which must notice soon that the site has nothing left: a
/// tenth of a second, ten requests a second while others finish the last jobs.
const READ_BLOCK_ONCE: Duration = Duration::from_millis(100);

/// How often a slot asks again for a device's lease that another agent holds: that
/// agent's job takes seconds, and a site has a handful of agents.
const LEASE_POLL: Duration = Duration::from_millis(50);

/// Renews a lease only for its holder (compare and expire, atomically).
const RENEW_LEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// Releases a lease only for its holder (compare and delete, atomically).
const RELEASE_LEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// The most often the heartbeat runs; it runs more often when `--claim-after` is short
/// (three beats per claim-after), so a live agent's jobs are never idle long enough to
/// be claimed.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// Everything `agent` needs, checked.
#[derive(Debug)]
pub struct AgentConfig {
    pub queue: String,
    pub names: Names,
    pub site: String,
    /// This agent's consumer name.
    pub name: String,
    /// The site's devices, with their credentials.
    pub devices: Vec<DeviceConfig>,
    /// Where the devices file is, for messages.
    pub devices_file: String,
    pub run: RunConfig,
    pub cache: CacheChoice,
    pub skip_cache: bool,
    pub claim_after: Duration,
    pub once: bool,
    /// Jobs run at once (slots). Default: the site's devices.
    pub jobs: usize,
    /// Serve the agent's live dashboard on this address.
    pub dashboard: Option<String>,
    /// Write the agent's metrics here after every job and at exit.
    pub metrics_file: Option<std::path::PathBuf>,
    pub verbosity: Verbosity,
}

/// One site's devices, connected once for the agent's whole life.
struct SiteDevices {
    by_name: HashMap<String, (Arc<dyn Device>, usize)>,
    /// Each device's number in the live status.
    index: HashMap<String, usize>,
    /// One job at a time per device.
    busy: HashMap<String, Mutex<()>>,
}

/// What the slots share.
struct Shared<'a> {
    config: &'a AgentConfig,
    stream: String,
    devices: SiteDevices,
    cache: &'a dyn Cache,
    secret: &'a KeySecret,
    /// SIGTERM / Ctrl-C: take no new job.
    stop: &'a Stop,
    /// Jobs being worked on (stream ids), re-claimed by the heartbeat.
    held: Mutex<HashSet<String>>,
    /// The lease keys of the devices this agent is working on, renewed by the heartbeat.
    leases: Mutex<HashSet<String>>,
    /// Whether any pair of this agent's jobs failed (`--once`'s exit status).
    failed: AtomicBool,
    /// Set when every slot has ended: the heartbeat ends too.
    slots_done: AtomicBool,
    /// What the dashboard and the metrics file show, when asked for.
    live: Option<Arc<LiveStatus>>,
    /// The agent's counts so far, per device: the jobs it finished.
    done: Mutex<AgentCounts>,
}

/// The counts of the jobs an agent finished, per device of its site.
struct AgentCounts {
    per_device: Vec<Counts>,
    operations: Vec<u64>,
    pairs: u64,
}

/// Runs the agent until SIGTERM (or, `--once`, until the site has nothing pending).
pub fn run(config: AgentConfig) -> anyhow::Result<Exit> {
    let stop = Arc::new(Stop::default());
    install_interrupt_handler(&stop);
    let mut link = QueueLink::open_patiently(&config.queue, &|| stop.is_set())?;
    let stream = config.names.jobs(&config.site);
    link.patiently("joining the site's group", &|| stop.is_set(), |c| {
        super::publish::create_group(c, &stream)
    })?;
    let (cache, secret) = config.cache.open()?;
    let targets = config.run.targets(&config.devices);
    let live = (config.dashboard.is_some() || config.metrics_file.is_some()).then(|| {
        LiveStatus::new(
            0,
            targets
                .iter()
                .map(|t| t.device.endpoint().clone())
                .collect(),
            targets.iter().map(|t| t.device.telemetry()).collect(),
        )
    });
    let dashboard = match (&config.dashboard, &live) {
        (Some(addr), Some(live)) => {
            let dashboard =
                Dashboard::start(crate::dashboard::parse_address(addr)?, Arc::clone(live))?;
            if config.verbosity != Verbosity::Quiet {
                eprintln!("{}", tr(Msg::DashboardAt, &[("url", &dashboard.url())]));
            }
            Some(dashboard)
        }
        _ => None,
    };
    let devices = SiteDevices {
        index: config
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), i))
            .collect(),
        busy: config
            .devices
            .iter()
            .map(|d| (d.name.clone(), Mutex::new(())))
            .collect(),
        by_name: config
            .devices
            .iter()
            .zip(targets)
            .map(|(d, t)| (d.name.clone(), (t.device, t.max_in_flight)))
            .collect(),
    };
    if config.verbosity != Verbosity::Quiet {
        eprintln!(
            "{}",
            tr(
                Msg::AgentStarted,
                &[
                    ("name", &config.name),
                    ("site", &config.site),
                    ("devices", &config.devices.len()),
                    ("queue", &link.url()),
                    ("stream", &stream),
                    ("cache", &cache.describe()),
                ],
            )
        );
    }
    let shared = Shared {
        config: &config,
        stream,
        devices,
        cache: cache.as_ref(),
        secret: &secret,
        stop: &stop,
        held: Mutex::new(HashSet::new()),
        leases: Mutex::new(HashSet::new()),
        failed: AtomicBool::new(false),
        slots_done: AtomicBool::new(false),
        live,
        done: Mutex::new(AgentCounts {
            per_device: vec![Counts::default(); config.devices.len()],
            operations: vec![0; config.devices.len()],
            pairs: 0,
        }),
    };
    let slots = config.jobs.max(1);
    let outcome: anyhow::Result<()> = std::thread::scope(|scope| {
        let heartbeat = {
            let mut link = link.another();
            let shared = &shared;
            scope.spawn(move || shared.heartbeat(&mut link))
        };
        let workers: Vec<_> = (0..slots)
            .map(|_| {
                let mut link = link.another();
                let shared = &shared;
                scope.spawn(move || shared.slot(&mut link))
            })
            .collect();
        let mut outcome = Ok(());
        for worker in workers {
            let result = worker.join().expect("an agent slot does not panic");
            if outcome.is_ok() {
                outcome = result.map_err(anyhow::Error::from);
            }
        }
        shared.slots_done.store(true, Ordering::SeqCst);
        heartbeat.join().expect("the heartbeat does not panic");
        outcome
    });
    if let Some(live) = &shared.live {
        live.finish(stop.is_set());
        shared.write_metrics();
    }
    drop(dashboard);
    outcome?;
    if config.verbosity != Verbosity::Quiet {
        eprintln!(
            "{}",
            tr(
                Msg::AgentStopped,
                &[("name", &config.name), ("site", &config.site)]
            )
        );
    }
    Ok(if shared.failed.load(Ordering::SeqCst) && !stop.is_set() {
        Exit::SomeFailed
    } else {
        Exit::Done
    })
}

impl Shared<'_> {
    /// One slot: takes jobs until told to stop (or, `--once`, until nothing is pending).
    fn slot(&self, link: &mut QueueLink) -> Result<(), QueueError> {
        let never = || false;
        loop {
            if self.stop.is_set() {
                return Ok(());
            }
            let entry = match self.claim_abandoned(link)? {
                Some(entry) => Some(entry),
                None => self.read_new(link)?,
            };
            let Some(entry) = entry else {
                if self.config.once && self.nothing_pending(link)? {
                    return Ok(());
                }
                continue;
            };
            self.held
                .lock()
                .expect("held lock")
                .insert(entry.id.clone());
            let finished = self.run_entry(link, &entry)?;
            let result = finished
                .as_ref()
                .map(|r| serde_json::to_string(r).expect("a result"));
            let results_stream = self
                .job_run(&entry)
                .map(|run| self.config.names.results(&run));
            // Only after its results are stored is a job acknowledged, in one
            // transaction: both land or neither.
            link.patiently("storing a job's results", &never, |c| {
                let mut transaction = redis::pipe();
                transaction.atomic();
                if let (Some(result), Some(results)) = (&result, &results_stream) {
                    transaction
                        .cmd("XADD")
                        .arg(results)
                        .arg("*")
                        .arg(RESULT_FIELD)
                        .arg(result)
                        .ignore();
                }
                transaction
                    .cmd("XACK")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg(&entry.id)
                    .ignore();
                transaction.query::<()>(c)
            })?;
            self.held.lock().expect("held lock").remove(&entry.id);
            if let Some(finished) = &finished {
                if finished.category_counts().failed > 0 {
                    self.failed.store(true, Ordering::SeqCst);
                }
                self.count(finished);
            }
        }
    }

    /// Adds a finished job to the agent's counts, and shows them (dashboard, metrics
    /// file).
    fn count(&self, result: &JobResult) {
        let Some(live) = &self.live else { return };
        let Some(&d) = self.devices.index.get(&result.device) else {
            return;
        };
        {
            let mut done = self.done.lock().expect("counts lock");
            let counts = result.category_counts();
            done.pairs += counts.total();
            done.per_device[d] += &counts;
            done.operations[d] += result.operations;
            live.set_operations(&done.operations);
            let failures = result
                .failures
                .iter()
                .rev()
                .take(crate::live::RECENT_FAILURES)
                .map(|f| RecentFailure {
                    time: crate::live::rfc3339(std::time::SystemTime::now()),
                    device: result.device.clone(),
                    registration: f.registration.clone(),
                    error: f.error.clone(),
                })
                .collect();
            live.publish(&done.per_device, done.pairs, failures);
        }
        self.write_metrics();
    }

    /// Writes the metrics file, if one was asked for; a failure is a warning, the
    /// agent goes on.
    fn write_metrics(&self) {
        if let (Some(path), Some(live)) = (&self.config.metrics_file, &self.live) {
            if let Err(e) = crate::metrics::write_file(path, &live.status()) {
                log::warn!("--metrics-file {}: writing failed: {e}", path.display());
            }
        }
    }

    /// A job another agent of the site held for `--claim-after` without finishing it.
    fn claim_abandoned(&self, link: &mut QueueLink) -> Result<Option<StreamId>, QueueError> {
        let reply: StreamAutoClaimReply =
            link.patiently("claiming abandoned jobs", &|| false, |c| {
                redis::cmd("XAUTOCLAIM")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg(&self.config.name)
                    .arg(self.config.claim_after.as_millis() as u64)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(1)
                    .query(c)
            })?;
        let claimed = reply.claimed.into_iter().next();
        if let Some(entry) = &claimed {
            log::warn!(
                "{}",
                tr(
                    Msg::AgentTookOver,
                    &[
                        ("name", &self.config.name),
                        ("entry", &entry.id),
                        ("site", &self.config.site),
                        ("seconds", &self.config.claim_after.as_secs_f64()),
                    ],
                )
            );
        }
        Ok(claimed)
    }

    /// A job no agent has had yet, waiting for one up to [`READ_BLOCK`].
    fn read_new(&self, link: &mut QueueLink) -> Result<Option<StreamId>, QueueError> {
        let block = if self.config.once {
            READ_BLOCK_ONCE
        } else {
            READ_BLOCK
        };
        let reply: Option<StreamReadReply> = link.patiently("reading jobs", &|| false, |c| {
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&self.config.name)
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(block.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(">")
                .query(c)
        })?;
        Ok(reply.and_then(|r| r.keys.into_iter().next()?.ids.into_iter().next()))
    }

    /// Whether the site's stream has no job waiting and none pending with any agent.
    fn nothing_pending(&self, link: &mut QueueLink) -> Result<bool, QueueError> {
        let (pending, lag): (u64, Option<u64>) =
            link.patiently("counting pending jobs", &|| false, |c| {
                let summary: redis::Value = redis::cmd("XPENDING")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .query(c)?;
                let pending = match &summary {
                    redis::Value::Array(items) => match items.first() {
                        Some(redis::Value::Int(n)) => *n as u64,
                        _ => 0,
                    },
                    _ => 0,
                };
                let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(&self.stream)
                    .query(c)?;
                let lag = groups
                    .iter()
                    .find(|g| {
                        matches!(g.get("name"), Some(v) if redis::from_redis_value_ref::<String>(v).ok().as_deref() == Some(GROUP))
                    })
                    .and_then(|g| g.get("lag"))
                    .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok());
                Ok((pending, lag))
            })?;
        // An unknown lag (entries deleted from the stream) is checked by a read instead:
        // the caller's next XREADGROUP returns any job still waiting.
        Ok(pending == 0 && lag.unwrap_or(0) == 0)
    }

    /// The result of a job whose people this agent cannot read, when at least its
    /// header (run, id, device) can be: each registration found fails with `error`.
    fn unreadable(&self, json: &str, error: &str) -> Option<JobResult> {
        #[derive(serde::Deserialize)]
        struct Header {
            id: String,
            site: String,
            device: String,
            #[serde(default)]
            people: Vec<serde_json::Value>,
        }
        let header: Header = serde_json::from_str(json).ok()?;
        let registrations: Vec<String> = header
            .people
            .iter()
            .map(|p| p["registration"].as_str().unwrap_or_default().to_string())
            .collect();
        Some(JobResult::new(
            &header.id,
            &header.site,
            &header.device,
            &self.config.name,
            header.people.len(),
            JobOutcome::all_failed(registrations, error),
        ))
    }

    /// The run of a stream entry, when it can be read.
    fn job_run(&self, entry: &StreamId) -> Option<String> {
        let json = entry.get::<String>(JOB_FIELD)?;
        #[derive(serde::Deserialize)]
        struct RunOnly {
            run: String,
        }
        serde_json::from_str::<RunOnly>(&json).ok().map(|r| r.run)
    }

    /// Runs the job of one stream entry: its result, or `None` for an entry that is
    /// not a job at all (acknowledged all the same, so it never blocks the stream).
    fn run_entry(
        &self,
        link: &mut QueueLink,
        entry: &StreamId,
    ) -> Result<Option<JobResult>, QueueError> {
        let job = match entry
            .get::<String>(JOB_FIELD)
            .map(|j| serde_json::from_str::<Job>(&j))
        {
            Some(Ok(job)) => job,
            Some(Err(e)) => {
                let error = format!(
                    "not a job this agent can read ({e}): is this agent older than the catraca that published it? Upgrade it, then publish again"
                );
                log::error!("{} {}: {error}", self.stream, entry.id);
                // Its pairs fail with the reason, so that the run can end and say why.
                return Ok(entry
                    .get::<String>(JOB_FIELD)
                    .and_then(|json| self.unreadable(&json, &error)));
            }
            None => {
                log::error!(
                    "{} {}: no {JOB_FIELD} field; acknowledged",
                    self.stream,
                    entry.id
                );
                return Ok(None);
            }
        };
        let began = Instant::now();
        let outcome = match self.devices.by_name.get(&job.device) {
            None => one_failure(
                &job,
                tr(
                    Msg::AgentDeviceMissing,
                    &[
                        ("device", &job.device),
                        ("site", &self.config.site),
                        ("file", &self.config.devices_file),
                    ],
                ),
            ),
            Some((device, max_in_flight)) => {
                let _one_job_here = self.devices.busy[&job.device]
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let lease = self.lease(link, &job.device)?;
                let done = self.enroll(&job, device, *max_in_flight);
                self.release(link, &lease)?;
                done
            }
        };
        if self.config.verbosity != Verbosity::Quiet {
            eprintln!(
                "{}",
                tr(
                    Msg::AgentJob,
                    &[
                        ("job", &job.id),
                        ("people", &job.people.len()),
                        ("device", &job.device),
                        ("registered", &outcome.counts.registered),
                        ("updated", &outcome.counts.updated),
                        ("unchanged", &outcome.counts.unchanged),
                        ("skipped", &outcome.counts.skipped_cache),
                        ("failed", &outcome.counts.failed),
                        ("removed", &outcome.counts.removed),
                        ("seconds", &format!("{:.2}", began.elapsed().as_secs_f64())),
                    ],
                )
            );
        }
        Ok(Some(JobResult::new(
            &job.id,
            &job.site,
            &job.device,
            &self.config.name,
            job.people.len(),
            outcome,
        )))
    }

    /// Waits until this agent holds `device`'s lease (no other agent of the site runs
    /// a job on it); returns the lease's key.
    fn lease(&self, link: &mut QueueLink, device: &str) -> Result<String, QueueError> {
        let key = self.config.names.lease(&self.config.site, device);
        let ttl = self.config.claim_after.as_millis() as u64;
        loop {
            let taken: Option<String> =
                link.patiently("taking a device's lease", &|| false, |c| {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&self.config.name)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl)
                        .query(c)
                })?;
            if taken.is_some() {
                self.leases.lock().expect("leases lock").insert(key.clone());
                return Ok(key);
            }
            std::thread::sleep(LEASE_POLL);
        }
    }

    /// Gives a device's lease back, if this agent still holds it.
    fn release(&self, link: &mut QueueLink, key: &str) -> Result<(), QueueError> {
        self.leases.lock().expect("leases lock").remove(key);
        link.patiently("giving a device's lease back", &|| false, |c| {
            redis::cmd("EVAL")
                .arg(RELEASE_LEASE)
                .arg(1)
                .arg(key)
                .arg(&self.config.name)
                .query::<i64>(c)
        })?;
        Ok(())
    }

    /// The job's people on its device, through the engine `enroll` uses.
    fn enroll(&self, job: &Job, device: &Arc<dyn Device>, max_in_flight: usize) -> JobOutcome {
        // The engine's own stop is never set: a job taken is finished, even after
        // SIGTERM, so that it can be acknowledged.
        let finish_every_job = Stop::default();
        let removal = match &job.prune {
            None => RemovalOptions {
                expire: job.expire,
                ..RemovalOptions::default()
            },
            Some(prune) => match prune.max_remove.parse() {
                Ok(max_remove) => RemovalOptions {
                    prune: true,
                    prune_unmanaged: prune.unmanaged,
                    max_remove,
                    also_listed: Arc::from(prune.keep.clone()),
                    ..RemovalOptions::default()
                },
                Err(why) => return one_failure(job, format!("its max_remove {why}")),
            },
        };
        let enrollment = Enrollment {
            people: &job.people,
            targets: vec![Target {
                device: Arc::clone(device),
                max_in_flight,
            }],
            cache: self.cache,
            secret: self.secret,
            options: EngineOptions {
                removal,
                ..self.config.run.engine_options(self.config.skip_cache)
            },
            verbosity: Verbosity::Quiet,
            max_failures: None,
            stop: &finish_every_job,
        };
        match enrollment.run() {
            Ok(report) => JobOutcome {
                operations: report.operations,
                counts: report.totals.clone(),
                failures: report
                    .failures
                    .iter()
                    .map(|f| PairFailure {
                        registration: f.registration.to_string(),
                        error: f.error.to_string(),
                    })
                    .collect(),
            },
            // The engine's refusal ends "nothing was removed nor enrolled", true of an
            // enroll; here the people's own jobs run anyway, so only its first line is
            // the reason.
            Err(e) if job.prune.is_some() => one_failure(
                job,
                format!(
                    "{}; nobody was removed from it: check that the CSV is the whole list, or publish again with a higher --max-remove (e.g. 100%) if these removals are meant",
                    format!("{e:#}").lines().next().unwrap_or_default()
                ),
            ),
            Err(e) => one_failure(job, format!("{e:#}")),
        }
    }

    /// Until every slot ended: records the agent's heartbeat and keeps its jobs claimed.
    fn heartbeat(&self, link: &mut QueueLink) {
        let every = (self.config.claim_after / 3).min(HEARTBEAT_EVERY);
        let who = format!("{}/{}", self.config.site, self.config.name);
        let mut next = Instant::now();
        while !self.slots_done.load(Ordering::SeqCst) {
            if Instant::now() >= next {
                next = Instant::now() + every;
                let held: Vec<String> = self
                    .held
                    .lock()
                    .expect("held lock")
                    .iter()
                    .cloned()
                    .collect();
                let leases: Vec<String> = self
                    .leases
                    .lock()
                    .expect("leases lock")
                    .iter()
                    .cloned()
                    .collect();
                let beat = link.run(|c| {
                    let mut beat = redis::pipe();
                    beat.cmd("HSET")
                        .arg(self.config.names.agents())
                        .arg(&who)
                        .arg(now_ms())
                        .ignore();
                    for lease in &leases {
                        beat.cmd("EVAL")
                            .arg(RENEW_LEASE)
                            .arg(1)
                            .arg(lease)
                            .arg(&self.config.name)
                            .arg(self.config.claim_after.as_millis() as u64)
                            .ignore();
                    }
                    if !held.is_empty() {
                        beat.cmd("XCLAIM")
                            .arg(&self.stream)
                            .arg(GROUP)
                            .arg(&self.config.name)
                            .arg(0)
                            .arg(&held)
                            .arg("JUSTID")
                            .ignore();
                    }
                    beat.query::<()>(c)
                });
                if let Err(e) = beat {
                    log::debug!("heartbeat: {e}");
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A job that could not run (a prune past `--max-remove`, say): each of its people
/// fails with `why` (see [`JobOutcome::all_failed`]).
fn one_failure(job: &Job, why: String) -> JobOutcome {
    let error = format!("the job {} could not run: {why}", job.id);
    log::error!("{error}");
    let registrations = job.people.iter().map(|p| p.registration.clone()).collect();
    JobOutcome::all_failed(registrations, &error)
}

/// This machine's name and this process's id: a consumer name no other running agent
/// has.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "agent".to_string());
    format!("{host}-{}", std::process::id())
}
