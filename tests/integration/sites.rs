//! Many sites: `publish` on a real Redis, `agent`s per site against simulated fleets,
//! `status` adding it up. Every test has its own key prefix, so tests share one Redis.

use crate::harness::{
    assert_holds_exactly, counts_add_up, fleet, people, Ran, Row, Running, Sandbox, TestCommand,
};
use catraca_sim::redis_server::{self, PrivateRedis};
use catraca_sim::{Fleet, SimConfig, SiteAuthority};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Long enough for any test's agents on this 2-core machine, short of hanging CI.
const FINISH: Duration = Duration::from_secs(90);

/// A fleet of sites, each with its own simulated devices, and one queue prefix.
struct Sites {
    sandbox: Sandbox,
    prefix: String,
    queue: String,
    sites: Vec<(String, Fleet)>,
    /// `SSL_CERT_FILE` for every command: the authority of a TLS queue.
    trust: Option<String>,
}

impl Sites {
    /// `count` sites of `devices` devices each, on the shared Redis.
    fn new(count: usize, devices: usize, config: SimConfig) -> Sites {
        Sites::on(redis_server::shared_url(), count, devices, config)
    }

    fn on(queue: String, count: usize, devices: usize, config: SimConfig) -> Sites {
        let tag: u64 = rand::random();
        Sites {
            sandbox: Sandbox::new(),
            prefix: format!("test-{tag:016x}"),
            queue,
            sites: (0..count)
                .map(|s| (format!("site{s}"), fleet(devices, config.clone())))
                .collect(),
            trust: None,
        }
    }

    fn device_name(site: &str, i: usize) -> String {
        format!("{site}-{}", i + 1)
    }

    /// The central fleet file: every device by name and site, no URL, no password;
    /// `extra` adds lines.
    fn fleet_file(&self, extra: &str) -> String {
        let mut toml = String::new();
        for (site, fleet) in &self.sites {
            for i in 0..fleet.devices.len() {
                toml.push_str(&format!(
                    "[[device]]\nname = \"{}\"\nsite = \"{site}\"\n\n",
                    Sites::device_name(site, i)
                ));
            }
        }
        toml.push_str(extra);
        self.sandbox.write("fleet.toml", toml).display().to_string()
    }

    /// Site number `s`'s own devices file, with the URLs.
    fn site_file(&self, s: usize) -> String {
        let (site, fleet) = &self.sites[s];
        let mut toml = String::new();
        for (i, url) in fleet.urls().iter().enumerate() {
            toml.push_str(&format!(
                "[[device]]\nname = \"{}\"\nsite = \"{site}\"\nurl = \"{url}\"\n\n",
                Sites::device_name(site, i)
            ));
        }
        self.sandbox
            .write(&format!("{site}.toml"), toml)
            .display()
            .to_string()
    }

    /// `catraca publish` of `rows` with `args`.
    fn publish(&self, rows: &[Row], args: &[&str]) -> Ran {
        let fleet = self.fleet_file("");
        self.on_queue(self.sandbox.with_users("publish", rows))
            .args(&["--devices", &fleet])
            .args(args)
            .run()
    }

    /// `command` on this test's queue and prefix.
    fn on_queue(&self, command: TestCommand) -> TestCommand {
        let command = command.args(&["--queue", &self.queue, "--queue-prefix", &self.prefix]);
        match &self.trust {
            Some(authority) => command.env("SSL_CERT_FILE", authority),
            None => command,
        }
    }

    /// An agent of site `s` named `name`, started, with its own embedded cache.
    fn agent(&self, s: usize, name: &str, args: &[&str]) -> Running {
        let devices = self.site_file(s);
        let cache = self.sandbox.path(&format!("{name}.redb"));
        self.on_queue(self.sandbox.catraca(&[
            "agent",
            "--site",
            &self.sites[s].0,
            "--devices",
            &devices,
        ]))
        .args(&["--name", name, "--cache", "embedded"])
        .args(&["--cache-path", cache.to_str().unwrap()])
        .args(args)
        .spawn()
    }

    /// `catraca status --run RUN --json` with `args`.
    fn status(&self, run: &str, args: &[&str]) -> Ran {
        self.on_queue(self.sandbox.catraca(&["status", "--run", run, "--json"]))
            .args(args)
            .run()
    }

    fn redis(&self) -> redis::Connection {
        let client = redis::Client::open(self.queue.as_str()).unwrap();
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        connection
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        connection
    }

    fn jobs_stream(&self, s: usize) -> String {
        format!("{}:{}:jobs", self.prefix, self.sites[s].0)
    }

    /// Jobs of site `s` delivered to an agent and not acknowledged (all agents, or the
    /// one named `agent`).
    fn pending(&self, redis: &mut redis::Connection, s: usize, agent: Option<&str>) -> usize {
        let mut command = redis::cmd("XPENDING");
        command
            .arg(self.jobs_stream(s))
            .arg("agents")
            .arg("-")
            .arg("+")
            .arg(10_000);
        if let Some(agent) = agent {
            command.arg(agent);
        }
        let entries: Vec<redis::Value> = command.query(redis).unwrap();
        entries.len()
    }

    /// Results the agent `agent` stored for run `run`.
    fn results_by(&self, redis: &mut redis::Connection, run: &str, agent: &str) -> usize {
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{}:run:{run}:results", self.prefix))
            .arg("-")
            .arg("+")
            .query(redis)
            .unwrap();
        entries
            .ids
            .iter()
            .filter(|e| {
                e.get::<String>("result")
                    .is_some_and(|r| r.contains(&format!("\"agent\":\"{agent}\"")))
            })
            .count()
    }
}

fn run_id(ran: &Ran) -> String {
    ran.expect_code(0);
    let id = ran.stdout.trim().to_string();
    assert_eq!(id.len(), 16, "a run id on stdout\n{}", ran.shown);
    id
}

/// Each site's devices hold every row exactly once.
fn every_device_holds(sites: &Sites, rows: &[Row]) {
    for (_, fleet) in &sites.sites {
        for device in &fleet.devices {
            assert_holds_exactly(device, rows);
        }
    }
}

fn slow(latency_ms: u64) -> SimConfig {
    SimConfig {
        latency: Duration::from_millis(latency_ms),
        ..SimConfig::default()
    }
}

#[test]
fn three_sites_two_agents_each_one_killed_every_person_once_everywhere() {
    let sites = Sites::new(3, 2, slow(30));
    let rows = people(300);
    let run = run_id(&sites.publish(&rows, &["--job-size", "25"]));
    let agent = |s: usize, name: &str| {
        sites.agent(
            s,
            &format!("site{s}-{name}"),
            &["--once", "--claim-after", "2s"],
        )
    };
    // site0-b starts once site0-a is dead, so that site0-a surely holds jobs when it
    // is killed (a race between the two could leave it none to hold).
    let mut victim = agent(0, "a");
    let mut agents: Vec<Running> = (1..3)
        .flat_map(|s| [agent(s, "a"), agent(s, "b")])
        .collect();
    // SIGKILL site0-a once it has finished a job and holds two more (one per slot): mid-run,
    // and even if one is acknowledged in the instant before the kill, one is held. One
    // connection for all the polling: a new one per look, hundreds a second, filled
    // the machine's ephemeral ports on a loaded run, and an agent could not connect.
    let mut redis = sites.redis();
    let until = Instant::now() + FINISH;
    loop {
        if sites.results_by(&mut redis, &run, "site0-a") >= 1
            && sites.pending(&mut redis, 0, Some("site0-a")) >= 2
        {
            break;
        }
        assert!(
            Instant::now() < until && victim.child.try_wait().unwrap().is_none(),
            "site0-a never held a job after finishing one"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    victim.signal(libc::SIGKILL);
    assert_eq!(
        victim.child.wait().unwrap().code(),
        None,
        "killed by a signal"
    );
    assert!(
        sites.pending(&mut redis, 0, Some("site0-a")) >= 1,
        "it died holding jobs"
    );
    agents.insert(0, agent(0, "b"));
    let finished: Vec<Ran> = agents.into_iter().map(|a| a.finish(FINISH)).collect();
    for ran in &finished {
        ran.expect_code(0);
    }
    assert!(
        finished[0].stderr.contains("took over job"),
        "the other agent of site0 claims the killed agent's job\n{}",
        finished[0].shown
    );

    let status = sites.status(&run, &["--wait"]);
    status.expect_code(0);
    let report = status.report();
    counts_add_up(&report);
    assert_eq!(report["operations"], 300 * 6, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    // A person the killed agent had half written (created, card not yet linked) is
    // `updated` by the agent that took its job over.
    let done: u64 = ["registered", "updated", "unchanged"]
        .iter()
        .map(|k| report[k].as_u64().unwrap())
        .sum();
    assert_eq!(done, 300 * 6, "{report}");
    assert_eq!(report["complete"], true);
    assert_eq!(report["jobs"]["pending"], 0);
    assert_eq!(report["per_site"].as_array().unwrap().len(), 3);
    for site in report["per_site"].as_array().unwrap() {
        assert_eq!(site["operations"], 600, "{site}");
    }
    // Each device under its own site (names are `<site>-<n>`).
    for device in report["per_device"].as_array().unwrap() {
        let name = device["name"].as_str().unwrap();
        let site = name.rsplit_once('-').unwrap().0;
        assert_eq!(device["site"], site, "{device}");
    }
    assert_eq!(report["agents"].as_array().unwrap().len(), 6, "{report}");
    every_device_holds(&sites, &rows);
}

#[test]
fn publishing_the_same_list_twice_is_one_run_and_no_new_jobs() {
    let sites = Sites::new(2, 1, SimConfig::default());
    let rows = people(30);
    let first = sites.publish(&rows, &["--job-size", "10"]);
    let run = run_id(&first);
    let length = |s: usize| -> u64 {
        redis::cmd("XLEN")
            .arg(sites.jobs_stream(s))
            .query(&mut sites.redis())
            .unwrap()
    };
    assert_eq!((length(0), length(1)), (3, 3));
    let second = sites.publish(&rows, &["--job-size", "10"]);
    assert_eq!(run_id(&second), run);
    assert!(
        second.stderr.contains("already published"),
        "{}",
        second.shown
    );
    assert_eq!((length(0), length(1)), (3, 3));
    // Another list is another run.
    let other = sites.publish(&rows[..29], &["--job-size", "10"]);
    assert_ne!(run_id(&other), run);
}

#[test]
fn a_bad_row_publishes_nothing() {
    let sites = Sites::new(1, 1, SimConfig::default());
    let mut rows = people(5);
    rows[3].registration = rows[1].registration.clone();
    let ran = sites.publish(&rows, &[]);
    ran.expect_code(2);
    assert!(ran.stderr.contains("line 5"), "{}", ran.shown);
    let length: u64 = redis::cmd("XLEN")
        .arg(sites.jobs_stream(0))
        .query(&mut sites.redis())
        .unwrap();
    assert_eq!(length, 0);
}

#[test]
fn a_list_with_photos_publishes_nothing_and_says_why() {
    let sites = Sites::new(1, 1, SimConfig::default());
    let rows = people(3);
    let photo = catraca_sim::test_photo::TestPhoto::new(480, 640).build();
    sites.sandbox.write("a.jpg", photo);
    let mut text = String::from("registration,name,foto\n");
    for (i, row) in rows.iter().enumerate() {
        let cell = if i == 1 { "a.jpg" } else { "" };
        text.push_str(&format!("{},{},{cell}\n", row.registration, row.name));
    }
    let users = sites.sandbox.write("p.csv", text);
    let fleet = sites.fleet_file("");
    let ran = sites
        .on_queue(
            sites
                .sandbox
                .catraca(&["publish", "--users", users.to_str().unwrap()]),
        )
        .args(&["--devices", &fleet])
        .run();
    ran.expect_code(2);
    // The person with the photo (line 3) and the column as the CSV names it.
    assert!(ran.stderr.contains("line 3"), "{}", ran.shown);
    assert!(ran.stderr.contains("foto"), "{}", ran.shown);
    assert!(ran.stderr.contains("photos do not travel"), "{}", ran.shown);
    let length: u64 = redis::cmd("XLEN")
        .arg(sites.jobs_stream(0))
        .query(&mut sites.redis())
        .unwrap();
    assert_eq!(length, 0);
}

#[test]
fn a_device_down_at_one_site_fails_only_its_own_pairs() {
    let sites = Sites::new(2, 2, SimConfig::default());
    sites.sites[1].1.devices[1].set_down(true);
    let rows = people(40);
    let run = run_id(&sites.publish(&rows, &["--job-size", "20"]));
    let agents: Vec<Running> = (0..2)
        .map(|s| {
            sites.agent(
                s,
                &format!("site{s}-a"),
                &["--once", "--retries", "0", "--connect-timeout", "1"],
            )
        })
        .collect();
    let ran: Vec<Ran> = agents.into_iter().map(|a| a.finish(FINISH)).collect();
    ran[0].expect_code(0);
    ran[1].expect_code(1);
    let status = sites.status(&run, &["--wait"]);
    status.expect_code(1);
    let report = status.report();
    counts_add_up(&report);
    assert_eq!(report["failed"], 40, "{report}");
    let failures = report["failures"].as_array().unwrap();
    assert!(
        failures.iter().all(|f| f["device"] == "site1-2"),
        "{report}"
    );
    for (s, i) in [(0, 0), (0, 1), (1, 0)] {
        assert_holds_exactly(&sites.sites[s].1.devices[i], &rows);
    }
    let text = sites
        .on_queue(sites.sandbox.catraca(&["status", "--run", &run]))
        .run();
    text.expect_code(1);
    assert!(
        text.stdout
            .contains("device site1-2 (site site1): 40 failed"),
        "{}",
        text.shown
    );
}

#[test]
fn a_job_for_a_device_the_agent_lacks_fails_its_pairs_with_the_reason() {
    let sites = Sites::new(1, 1, SimConfig::default());
    let rows = people(12);
    let fleet = sites.fleet_file("[[device]]\nname = \"site0-ghost\"\nsite = \"site0\"\n");
    let run = run_id(
        &sites
            .on_queue(sites.sandbox.with_users("publish", &rows))
            .args(&["--devices", &fleet])
            .run(),
    );
    let ran = sites.agent(0, "site0-a", &["--once"]).finish(FINISH);
    ran.expect_code(1);
    let status = sites.status(&run, &["--wait"]);
    status.expect_code(1);
    let report = status.report();
    counts_add_up(&report);
    assert_eq!(report["failed"], 12);
    assert_eq!(report["registered"], 12);
    for failure in report["failures"].as_array().unwrap() {
        assert_eq!(failure["device"], "site0-ghost");
        assert!(
            failure["error"]
                .as_str()
                .unwrap()
                .contains("device site0-ghost is not configured at site site0"),
            "{failure}"
        );
    }
    assert_holds_exactly(&sites.sites[0].1.devices[0], &rows);
}

#[test]
fn sigterm_finishes_the_jobs_in_flight_and_leaves_none_pending() {
    let sites = Sites::new(1, 2, slow(20));
    let rows = people(120);
    let run = run_id(&sites.publish(&rows, &["--job-size", "10"]));
    let mut agent = sites.agent(0, "site0-a", &[]);
    agent.wait_for_line("job ", FINISH);
    agent.signal(libc::SIGTERM);
    let ran = agent.finish(FINISH);
    ran.expect_code(0);
    assert_eq!(
        sites.pending(&mut sites.redis(), 0, None),
        0,
        "{}",
        ran.shown
    );
    let done: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("job "))
        .collect();
    assert!(done.len() < 24, "stopped before the end\n{}", ran.shown);
    // Another agent does the rest.
    sites
        .agent(0, "site0-b", &["--once"])
        .finish(FINISH)
        .expect_code(0);
    let status = sites.status(&run, &["--wait"]);
    status.expect_code(0);
    counts_add_up(&status.report());
    every_device_holds(&sites, &rows);
}

#[test]
fn a_redis_restarted_mid_run_still_completes_the_run_exactly_once() {
    let mut redis = PrivateRedis::start_persistent().expect("redis-server starts");
    let sites = Sites::on(redis.url().to_string(), 1, 2, slow(20));
    let rows = people(120);
    let run = run_id(&sites.publish(&rows, &["--job-size", "10"]));
    let mut agent = sites.agent(0, "site0-a", &["--once", "--claim-after", "2s"]);
    agent.wait_for_line("job ", FINISH);
    redis.restart().expect("redis-server restarts");
    let ran = agent.finish(FINISH);
    ran.expect_code(0);
    assert!(
        ran.stderr.contains("retrying until it answers") && ran.stderr.contains("answers again"),
        "the agent lost Redis mid-run and got it back\n{}",
        ran.shown
    );
    let status = sites.status(&run, &["--wait"]);
    status.expect_code(0);
    let report: Value = status.report();
    counts_add_up(&report);
    assert_eq!(report["operations"], 240);
    assert_eq!(report["jobs"]["done"], 24);
    every_device_holds(&sites, &rows);
}

#[test]
fn a_password_in_the_queue_url_never_shows() {
    let sandbox = Sandbox::new();
    let closed = sandbox
        .catraca(&["status", "--queue", "redis://:hunter2-secret@127.0.0.1:1/0"])
        .run();
    closed.expect_code(2);
    assert!(!closed.stderr.contains("hunter2"), "{}", closed.shown);
    assert!(
        closed.stderr.contains("redis://:***@127.0.0.1:1/0"),
        "{}",
        closed.shown
    );
    // A real Redis that wants no password refuses the one given: still never shown.
    let url = redis_server::shared_url().replacen("redis://", "redis://:hunter2-secret@", 1);
    let sites = Sites::on(url, 1, 1, SimConfig::default());
    let refused = sites.publish(&people(3), &[]);
    refused.expect_code(2);
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.shown);
    assert!(refused.stderr.contains(":***@"), "{}", refused.shown);
}

#[test]
fn a_prune_travels_as_one_job_per_device_and_keeps_the_floor() {
    let sites = Sites::new(1, 1, SimConfig::default());
    let rows = people(20);
    let first = run_id(&sites.publish(&rows, &[]));
    sites
        .agent(0, "site0-a", &["--once"])
        .finish(FINISH)
        .expect_code(0);
    sites.status(&first, &["--wait"]).expect_code(0);

    // One leaves (5%, under the floor): the prune job, first in the stream, takes them
    // off, and nobody else.
    let pruned = run_id(&sites.publish(&rows[..19], &["--prune", "--job-size", "10"]));
    sites
        .agent(0, "site0-a", &["--once"])
        .finish(FINISH)
        .expect_code(0);
    let status = sites.status(&pruned, &["--wait"]);
    status.expect_code(0);
    let report = status.report();
    counts_add_up(&report);
    assert_eq!(report["removed"], 1, "{report}");
    assert_eq!(report["operations"], 20, "{report}");
    assert_eq!(report["jobs"]["total"], 3, "a prune job and two of people");
    assert_holds_exactly(&sites.sites[0].1.devices[0], &rows[..19]);

    // Fourteen of nineteen is past the 10% floor: nobody leaves, and the prune job
    // fails with the reason.
    let refused = run_id(&sites.publish(&rows[..5], &["--prune"]));
    sites
        .agent(0, "site0-a", &["--once"])
        .finish(FINISH)
        .expect_code(1);
    let status = sites.status(&refused, &["--wait"]);
    status.expect_code(1);
    let report = status.report();
    counts_add_up(&report);
    assert_eq!(report["failed"], 1, "{report}");
    assert_eq!(report["removed"], 0, "{report}");
    let error = report["failures"][0]["error"].as_str().unwrap();
    assert!(error.contains("--max-remove"), "{error}");
    assert_holds_exactly(&sites.sites[0].1.devices[0], &rows[..19]);
}

#[test]
fn an_agent_serves_its_dashboard_and_writes_its_metrics_file() {
    let sites = Sites::new(1, 2, SimConfig::default());
    let rows = people(20);
    let run = run_id(&sites.publish(&rows, &["--job-size", "10"]));
    let metrics = sites.sandbox.path("agent.prom");
    let mut agent = sites.agent(
        0,
        "site0-a",
        &[
            "--dashboard",
            "127.0.0.1:0",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    let base = agent.wait_for_line("dashboard: ", FINISH);
    sites.status(&run, &["--wait"]).expect_code(0);
    // The result is stored before the agent counts it: wait for the count.
    let until = Instant::now() + FINISH;
    let status: Value = loop {
        let (code, body) = crate::harness::get(&format!("{}api/status", base.trim()));
        assert_eq!(code, 200);
        let status: Value = serde_json::from_str(&body).unwrap();
        if status["totals"]["registered"] == 40 || Instant::now() > until {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["totals"]["registered"], 40, "{status}");
    assert_eq!(status["operations"], 40, "{status}");
    let names: Vec<&str> = status["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["site0-1", "site0-2"]);
    agent.signal(libc::SIGTERM);
    agent.finish(FINISH).expect_code(0);
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains("catraca_pairs_total{device=\"site0-2\",outcome=\"registered\"} 20"),
        "{text}"
    );
    assert!(text.contains("catraca_run_finished 1"), "{text}");
}

#[test]
fn status_serves_the_fleet_dashboard_one_row_per_site() {
    let browser = crate::dashboard::chromium();
    let sites = Sites::new(2, 2, SimConfig::default());
    let rows = people(20);
    let run = run_id(&sites.publish(&rows, &["--job-size", "10"]));
    let mut watching = sites
        .on_queue(sites.sandbox.catraca(&["status", "--run", &run, "--json"]))
        .args(&["--dashboard", "127.0.0.1:0"])
        .spawn();
    let base = watching.wait_for_line("dashboard: ", FINISH);
    let api = |path: &str| crate::harness::get(&format!("{}{path}", base.trim())).1;

    // Site 0 finishes, site 1 has not started: the view shows both, as they are.
    sites
        .agent(0, "site0-a", &["--once"])
        .finish(FINISH)
        .expect_code(0);
    let until = Instant::now() + FINISH;
    let status: Value = loop {
        let status: Value = serde_json::from_str(&api("api/status")).unwrap();
        if status["done"] == 40 || Instant::now() > until {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["done"], 40, "{status}");
    assert_eq!(status["operations"], 80, "{status}");
    assert_eq!(status["phase"], "running", "{status}");
    let devices = status["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 4);
    for device in devices {
        let registered = if device["site"] == "site0" { 20 } else { 0 };
        assert_eq!(device["registered"], registered, "{device}");
    }
    let metrics = api("metrics");
    assert!(
        metrics.contains("catraca_pairs_total{device=\"site0-2\",outcome=\"registered\"} 20"),
        "{metrics}"
    );
    let dom = crate::dashboard::browse(
        &browser,
        &base,
        &["--virtual-time-budget=2000", "--dump-dom"],
    );
    assert_eq!(dom.matches("<tr class=\"site\"").count(), 2, "{dom}");
    assert!(dom.contains("▸ site0") && dom.contains("▸ site1"), "{dom}");
    assert_eq!(
        dom.matches("<tr class=\"device\"").count(),
        0,
        "sites start closed:\n{dom}"
    );

    sites
        .agent(1, "site1-a", &["--once"])
        .finish(FINISH)
        .expect_code(0);
    let ran = watching.finish(FINISH);
    ran.expect_code(0);
    counts_add_up(&ran.report());
    every_device_holds(&sites, &rows);
}

#[test]
fn status_wait_interrupted_exits_130_with_the_partial_report() {
    let sites = Sites::new(1, 1, SimConfig::default());
    let run = run_id(&sites.publish(&people(5), &[]));
    // No agent runs: the run cannot end, and Ctrl-C ends the wait.
    let mut waiting = sites
        .on_queue(
            sites
                .sandbox
                .catraca(&["status", "--run", &run, "--json", "--wait"]),
        )
        .spawn();
    waiting.wait_for_line(&format!("run {run}: waiting for 1 of 1 jobs"), FINISH);
    waiting.signal(libc::SIGINT);
    let ran = waiting.finish(FINISH);
    ran.expect_code(130);
    let report = ran.report();
    assert_eq!(report["interrupted"], true, "{report}");
    assert_eq!(report["complete"], false, "{report}");
    assert_eq!(report["jobs"]["pending"], 1, "{report}");
}

#[test]
fn the_queue_speaks_tls_with_rediss() {
    let authority = SiteAuthority::new().unwrap();
    let redis = PrivateRedis::start_tls(&authority).expect("redis-server starts with TLS");
    let mut sites = Sites::on(redis.tls_url().unwrap(), 1, 1, SimConfig::default());
    let rows = people(10);
    // An authority the system does not know: refused, with the way out.
    let refused = sites.publish(&rows, &[]);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("TLS certificate was refused")
            && refused.stderr.contains("SSL_CERT_FILE"),
        "{}",
        refused.shown
    );
    let authority_file = sites.sandbox.write("ca.pem", authority.pem());
    sites.trust = Some(authority_file.display().to_string());
    let run = run_id(&sites.publish(&rows, &[]));
    sites
        .agent(0, "site0-a", &["--once"])
        .finish(FINISH)
        .expect_code(0);
    let status = sites.status(&run, &["--wait"]);
    status.expect_code(0);
    counts_add_up(&status.report());
    every_device_holds(&sites, &rows);
}

#[test]
fn expire_travels_in_the_jobs_and_takes_the_expired_off() {
    let sites = Sites::new(1, 1, SimConfig::default());
    let now = chrono::Utc::now().timestamp();
    let mut rows = people(20);
    // Three windows ended yesterday; the others end next year.
    for (i, row) in rows.iter_mut().enumerate() {
        row.window = Some(if i < 3 {
            (now - 10 * 86_400, now - 86_400)
        } else {
            (now - 86_400, now + 365 * 86_400)
        });
    }
    let (expired, staying): (Vec<Row>, Vec<Row>) = rows
        .iter()
        .cloned()
        .partition(|r| r.window.is_some_and(|(_, end)| end < now));
    assert_eq!(expired.len(), 3);
    let first = run_id(&sites.publish(&rows, &[]));
    sites
        .agent(0, "site0-a", &["--once"])
        .finish(FINISH)
        .expect_code(0);
    sites.status(&first, &["--wait"]).expect_code(0);
    assert_holds_exactly(&sites.sites[0].1.devices[0], &rows);

    let expiring = run_id(&sites.publish(&rows, &["--expire"]));
    assert_ne!(expiring, first, "--expire is part of the run");
    sites
        .agent(0, "site0-a", &["--once"])
        .finish(FINISH)
        .expect_code(0);
    let status = sites.status(&expiring, &["--wait"]);
    status.expect_code(0);
    let report = status.report();
    counts_add_up(&report);
    assert_eq!(report["removed"], expired.len(), "{report}");
    assert_holds_exactly(&sites.sites[0].1.devices[0], &staying);
}

#[test]
fn a_job_the_agent_cannot_read_fails_its_pairs_and_never_blocks_the_stream() {
    let sites = Sites::new(1, 1, SimConfig::default());
    let rows = people(6);
    let run = run_id(&sites.publish(&rows, &["--job-size", "3"]));
    // A newer publisher's job: a person shaped as this agent does not know.
    let stream = sites.jobs_stream(0);
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query(&mut sites.redis())
        .unwrap();
    let first = &entries.ids[0];
    let mut job: Value = serde_json::from_str(&first.get::<String>("job").unwrap()).unwrap();
    for person in job["people"].as_array_mut().unwrap() {
        person["name"] = serde_json::json!({"given": "Ana", "family": "Souza"});
    }
    let mut redis = sites.redis();
    let _: () = redis::cmd("XDEL")
        .arg(&stream)
        .arg(&first.id)
        .query(&mut redis)
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("job")
        .arg(job.to_string())
        .query(&mut redis)
        .unwrap();
    sites
        .agent(0, "site0-a", &["--once"])
        .finish(FINISH)
        .expect_code(1);
    let status = sites.status(&run, &["--wait"]);
    status.expect_code(1);
    let report = status.report();
    counts_add_up(&report);
    assert_eq!(report["failed"], 3, "{report}");
    assert_eq!(report["registered"], 3, "{report}");
    assert!(
        report["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not a job this agent can read"),
        "{report}"
    );
}

#[test]
fn the_many_sites_commands_speak_portuguese() {
    let sites = Sites::new(1, 1, SimConfig::default());
    let rows = people(4);
    let published = sites.publish(&rows, &["--lang", "pt-BR"]);
    let run = run_id(&published);
    assert!(
        published.stderr.contains(&format!(
            "execução {run} publicada: 1 trabalhos para 4 pessoas"
        )),
        "{}",
        published.shown
    );
    let agent = sites
        .agent(0, "site0-a", &["--once", "--lang", "pt-BR"])
        .finish(FINISH);
    agent.expect_code(0);
    assert!(
        agent
            .stderr
            .contains("trabalho site0/site0-1/0 (4 pessoas em site0-1): 4 cadastradas"),
        "{}",
        agent.shown
    );
    let status = sites
        .on_queue(
            sites
                .sandbox
                .catraca(&["status", "--run", &run, "--lang", "pt-BR"]),
        )
        .run();
    status.expect_code(0);
    assert!(
        status
            .stdout
            .contains(&format!("execução {run}: 1 de 1 trabalhos feitos")),
        "{}",
        status.shown
    );
}

#[test]
fn status_shows_the_latest_run_by_default_and_refuses_an_unknown_one() {
    let sites = Sites::new(1, 1, SimConfig::default());
    let nothing = sites
        .on_queue(sites.sandbox.catraca(&["status", "--json"]))
        .run();
    nothing.expect_code(2);
    assert!(
        nothing.stderr.contains("run catraca publish first"),
        "{}",
        nothing.shown
    );
    let first = run_id(&sites.publish(&people(3), &[]));
    let second = run_id(&sites.publish(&people(4), &[]));
    assert_ne!(first, second);
    let latest = sites
        .on_queue(sites.sandbox.catraca(&["status", "--json"]))
        .run();
    latest.expect_code(0);
    assert_eq!(latest.report()["run"], second.as_str());
    assert_eq!(latest.report()["participants"], 4);
    let unknown = sites.status("0123456789abcdef", &[]);
    unknown.expect_code(2);
    assert!(
        unknown.stderr.contains("no run 0123456789abcdef"),
        "{}",
        unknown.shown
    );
}

#[test]
fn an_agent_started_while_redis_is_down_waits_for_it() {
    let mut redis = PrivateRedis::start_persistent().expect("redis-server starts");
    let sites = Sites::on(redis.url().to_string(), 1, 1, SimConfig::default());
    let rows = people(8);
    let run = run_id(&sites.publish(&rows, &[]));
    redis.stop();
    let mut agent = sites.agent(0, "site0-a", &["--once"]);
    let waiting = agent.wait_for_line("[WARN ] --queue ", FINISH);
    assert!(waiting.contains("waiting until it answers"), "{waiting}");
    redis.restart().expect("redis-server starts again");
    agent.finish(FINISH).expect_code(0);
    sites.status(&run, &["--wait"]).expect_code(0);
    assert_holds_exactly(&sites.sites[0].1.devices[0], &rows);
}
