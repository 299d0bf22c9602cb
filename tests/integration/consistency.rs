//! One run, four outputs: the report, the events file, `/api/status` and `/metrics`
//! (or `--metrics-file`) must give the same counts, per device and category, whatever
//! the run went through: failures, `--verify` finding a pair missing, a `plan` that
//! finds a registration twice, removals, an interruption.

use crate::harness::*;
use catraca_sim::SimConfig;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// Counts per device name, per category.
type Tally = BTreeMap<String, BTreeMap<&'static str, u64>>;

fn empty_tally(devices: &[String]) -> Tally {
    devices
        .iter()
        .map(|d| (d.clone(), CATEGORIES.iter().map(|c| (*c, 0)).collect()))
        .collect()
}

/// The counts of a JSON device list (the report's `per_device`, the status' `devices`).
fn from_device_list(list: &Value) -> Tally {
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let counts = CATEGORIES
                .iter()
                .map(|c| {
                    (
                        *c,
                        d[*c].as_u64().unwrap_or_else(|| panic!("no {c} in {d}")),
                    )
                })
                .collect();
            (d["name"].as_str().unwrap().to_string(), counts)
        })
        .collect()
}

/// The category of an events-file outcome (a plan's `would_*` count as the report
/// counts them).
fn category(outcome: &str) -> &'static str {
    match outcome {
        "registered" | "would_register" => "registered",
        "updated" | "would_update" => "updated",
        "unchanged" => "unchanged",
        "skipped_cache" => "skipped_cache",
        "failed" => "failed",
        "removed" | "would_remove" => "removed",
        other => panic!("unknown outcome {other}"),
    }
}

/// The events file's counts: the last line of each pair is its outcome; a line with no
/// registration (a device that could not be listed) counts on its own. A failed line
/// must carry its reason.
fn from_events(path: &Path, devices: &[String]) -> Tally {
    let text = std::fs::read_to_string(path).expect("the events file exists");
    let mut last: HashMap<(String, String), &'static str> = HashMap::new();
    let mut tally = empty_tally(devices);
    for line in text.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let outcome = category(event["outcome"].as_str().unwrap());
        if outcome == "failed" {
            assert!(
                event["error"].is_string(),
                "a failure without its reason: {line}"
            );
        }
        let device = event["device"].as_str().unwrap().to_string();
        match event["registration_hash"].as_str() {
            Some(hash) => {
                last.insert((device, hash.to_string()), outcome);
            }
            None => *tally.get_mut(&device).unwrap().get_mut(outcome).unwrap() += 1,
        }
    }
    for ((device, _), outcome) in last {
        *tally.get_mut(&device).unwrap().get_mut(outcome).unwrap() += 1;
    }
    tally
}

/// `catraca_pairs_total` of a Prometheus text, per device and outcome.
fn from_metrics(text: &str, devices: &[String]) -> Tally {
    let mut tally = empty_tally(devices);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("catraca_pairs_total{device=\"") else {
            continue;
        };
        let (device, rest) = rest.split_once("\",outcome=\"").unwrap();
        let (outcome, value) = rest.split_once("\"} ").unwrap();
        let slot = tally.get_mut(device).unwrap().get_mut(category(outcome));
        *slot.unwrap() = value.parse().unwrap();
    }
    tally
}

/// Runs `command` with every output on, waits for the lingering dashboard, and checks
/// that the four outputs agree; the report and the final `/api/status`.
fn run_and_compare(sandbox: &Sandbox, command: TestCommand, expected_code: i32) -> (Value, Value) {
    let events = sandbox.path(&format!("events-{}.jsonl", rand::random::<u32>()));
    let metrics = sandbox.path("catraca.prom");
    let mut run = command
        .args(&[
            "--json",
            "--dashboard",
            "127.0.0.1:0",
            "--dashboard-linger",
            "60s",
        ])
        .args(&["--events", events.to_str().unwrap()])
        .args(&["--metrics-file", metrics.to_str().unwrap()])
        .spawn();
    let base = run.wait_for_line("dashboard: ", Duration::from_secs(30));
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let (code, body) = get(&format!("{base}api/status"));
        assert_eq!(code, 200, "{body}");
        let status: Value = serde_json::from_str(&body).unwrap();
        if status["phase"] != "running" {
            break status;
        }
        assert!(Instant::now() < until, "the run did not end: {status}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The metrics file is written just after the phase changes: wait for the linger's
    // line, the second that starts with "dashboard: ".
    run.wait_for_lines("dashboard: ", 2, Duration::from_secs(30));
    let (code, scraped) = get(&format!("{base}metrics"));
    assert_eq!(code, 200);
    run.signal(libc::SIGINT);
    let ran = run.finish(Duration::from_secs(30));
    ran.expect_code(expected_code);
    let report = ran.report();
    counts_add_up(&report);

    let from_report = from_device_list(&report["per_device"]);
    let devices: Vec<String> = from_report.keys().cloned().collect();
    let file = std::fs::read_to_string(&metrics).expect("--metrics-file was written");
    for (output, tally) in [
        ("/api/status", from_device_list(&status["devices"])),
        ("the events file", from_events(&events, &devices)),
        ("/metrics", from_metrics(&scraped, &devices)),
        ("--metrics-file", from_metrics(&file, &devices)),
    ] {
        assert_eq!(
            tally, from_report,
            "{output} disagrees with the report\n{}",
            ran.shown
        );
    }
    assert_eq!(status["done"], report["operations"], "{}", ran.shown);
    (report, status)
}

/// Whether the dashboard lists a failure whose reason contains `reason`.
fn dashboard_lists(status: &Value, reason: &str) -> bool {
    status["recent_failures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["error"].as_str().unwrap().contains(reason))
}

#[test]
fn every_output_counts_failures_verify_removals_and_a_cached_rerun_alike() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let rows = people(30);
    sandbox
        .enroll(&rows)
        .embedded_cache()
        .devices(&fleet)
        .run()
        .expect_code(0);
    // Two people leave (removed), one is refused by device 1 (failed), and one on
    // device 0 is dropped by the device while it answers OK, which only --verify sees.
    let kept: Vec<Row> = rows[2..].to_vec();
    fleet.devices[0].purge(&kept[5].registration);
    fleet.devices[1].purge(&kept[6].registration);
    fleet.devices[0].drop_silently(&kept[5].registration);
    fleet.devices[1].reject_registration(&kept[6].registration);
    let (first, status) = run_and_compare(
        &sandbox,
        sandbox
            .enroll(&kept)
            .args(&["--prune", "--verify", "100%", "--reconcile"])
            .embedded_cache()
            .devices(&fleet),
        1,
    );
    assert_eq!(first["removed"], 4, "two people off two devices: {first}");
    assert_eq!(first["failed"], 2, "{first}");
    assert_eq!(first["failures"].as_array().unwrap().len(), 2, "{first}");
    assert!(dashboard_lists(&status, "does not hold"), "{status}");
    // The same again, from the cache: skipped pairs, and the two failures tried again.
    let (again, _) = run_and_compare(
        &sandbox,
        sandbox.enroll(&kept).embedded_cache().devices(&fleet),
        1,
    );
    assert_eq!(again["skipped_cache"], 2 * 28 - 2, "{again}");
}

#[test]
fn every_output_counts_a_registration_found_twice_by_plan_alike() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let rows = people(10);
    // Another tool left the same registration twice on device 0.
    fleet.devices[0].insert_user(&rows[4].registration, &rows[4].name);
    fleet.devices[0].insert_user(&rows[4].registration, &rows[4].name);
    let (report, status) = run_and_compare(
        &sandbox,
        sandbox
            .with_users("plan", &rows)
            .args(&["--cache", "none"])
            .devices(&fleet),
        1,
    );
    assert_eq!(report["failed"], 1, "{report}");
    assert!(
        report["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("2 times"),
        "{report}"
    );
    assert!(dashboard_lists(&status, "2 times"), "{status}");
}

#[test]
fn every_output_counts_an_interrupted_run_alike() {
    let sandbox = Sandbox::new();
    let fleet = fleet(
        2,
        SimConfig {
            latency: Duration::from_millis(30),
            ..SimConfig::default()
        },
    );
    let rows = people(400);
    let events = sandbox.path("events.jsonl");
    let metrics = sandbox.path("catraca.prom");
    let mut run = sandbox
        .enroll(&rows)
        .args(&[
            "--json",
            "--cache",
            "none",
            "--batch-size",
            "10",
            "--threads",
            "2",
        ])
        .args(&["--events", events.to_str().unwrap()])
        .args(&["--metrics-file", metrics.to_str().unwrap()])
        .devices(&fleet)
        .spawn();
    run.wait_for_line("progress: ", Duration::from_secs(60));
    run.signal(libc::SIGINT);
    let ran = run.finish(Duration::from_secs(60));
    ran.expect_code(130);
    let report = ran.report();
    assert_eq!(report["interrupted"], true, "{}", ran.shown);
    counts_add_up(&report);
    let from_report = from_device_list(&report["per_device"]);
    let devices: Vec<String> = from_report.keys().cloned().collect();
    let file = std::fs::read_to_string(&metrics).expect("--metrics-file was written");
    assert_eq!(from_metrics(&file, &devices), from_report, "{}", ran.shown);
    assert_eq!(from_events(&events, &devices), from_report, "{}", ran.shown);
    assert!(file.contains("catraca_run_finished 1"), "{file}");
}
