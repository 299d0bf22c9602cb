//! Real networks and fragile turnstiles: faults, dead and returning devices, rejected
//! rows, interruption, `kill -9`, a Redis that dies mid-run, and what must never leak.

use crate::harness::*;
use catraca_sim::redis_server::{self, PrivateRedis};
use catraca_sim::{FaultRates, SimConfig};
use std::time::Duration;

#[test]
fn a_fault_storm_still_ends_with_everyone_exactly_once() {
    // 10% 503s, 5% resets, 2% hangs, 1% garbage, applied after the write (answers
    // lost), sessions expiring every 50 requests.
    let rows = people(300);
    let stormy = SimConfig {
        faults: FaultRates {
            status_503: 0.10,
            reset: 0.05,
            hang: 0.02,
            garbage: 0.01,
        },
        faults_after_write: true,
        hang_for: Duration::from_secs(3),
        session_expiry_after: Some(50),
        seed: 42,
        ..SimConfig::default()
    };
    let mut requests_sent = Vec::new();
    for config in [SimConfig::default(), stormy] {
        let sandbox = Sandbox::new();
        let fleet = fleet(4, config);
        let run = sandbox
            .enroll(&rows)
            .args(&["--json", "--batch-size", "20"])
            .args(&["--timeout", "1", "--retries", "6"])
            .embedded_cache()
            .devices(&fleet)
            .run();
        run.expect_code(0);
        let report = run.report();
        counts_add_up(&report);
        assert_eq!(report["registered"], 1200, "{}", run.shown);
        for device in &fleet.devices {
            assert_holds_exactly(device, &rows);
        }
        requests_sent.push(fleet.devices.iter().map(|d| d.stats().total).sum::<u64>());
    }
    eprintln!(
        "fault storm: {} requests against {} without faults: {:.2}x the minimum",
        requests_sent[1],
        requests_sent[0],
        requests_sent[1] as f64 / requests_sent[0] as f64
    );
}

#[test]
fn a_device_down_for_the_whole_run_fails_fast_and_the_others_finish() {
    let sandbox = Sandbox::new();
    let fleet = fleet(3, SimConfig::default());
    fleet.devices[2].set_down(true);
    let rows = people(300);
    let run = sandbox
        .enroll(&rows)
        .args(&["--json", "--batch-size", "10"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(1);
    let report = run.report();
    counts_add_up(&report);
    assert_eq!(report["registered"], 600);
    assert_eq!(report["failed"], 300);
    for f in report["failures"].as_array().unwrap() {
        assert!(
            f["error"].as_str().unwrap().contains("device unreachable"),
            "{f}"
        );
    }
    assert_holds_exactly(&fleet.devices[0], &rows);
    assert_holds_exactly(&fleet.devices[1], &rows);
    // The breaker stopped the traffic: a handful of attempts and probes, not one per
    // batch of ten (30 batches) times the retries.
    let attempts = fleet.devices[2].stats().total;
    assert!(
        attempts <= 20,
        "{attempts} requests reached the dead device"
    );
}

#[test]
fn a_device_that_comes_back_mid_run_gets_everyone() {
    let sandbox = Sandbox::new();
    let slow = SimConfig {
        latency: Duration::from_millis(40),
        ..SimConfig::default()
    };
    let fleet = fleet(3, slow);
    fleet.devices[0].set_down(true);
    let rows = people(200);
    let running = sandbox
        .enroll(&rows)
        .args(&["--json", "--batch-size", "5"])
        .embedded_cache()
        .devices(&fleet)
        .spawn();
    std::thread::sleep(Duration::from_millis(1200));
    fleet.devices[0].set_down(false);
    let run = running.wait();
    run.expect_code(0);
    assert_eq!(run.report()["registered"], 600, "{}", run.shown);
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }
}

#[test]
fn one_person_the_device_rejects_does_not_fail_the_rest_of_the_batch() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let rows = people(100);
    fleet.devices[0].reject_registration(&rows[37].registration);
    let run = sandbox
        .enroll(&rows)
        .args(&["--json"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(1);
    let report = run.report();
    assert_eq!(
        (report["registered"].as_u64(), report["failed"].as_u64()),
        (Some(99), Some(1))
    );
    let failure = &report["failures"][0];
    assert_eq!(failure["registration"], rows[37].registration.as_str());
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("CHECK constraint failed"),
        "{failure}"
    );
    let mut others = rows.clone();
    others.remove(37);
    assert_holds_exactly(&fleet.devices[0], &others);
    // Split in halves: about log2(100) extra creates, not 100.
    assert!(requests(&fleet.devices[0], "create_objects") < 30);
}

#[test]
fn kill_9_at_any_point_then_the_same_command_finishes_exactly_once() {
    let rows = people(300);
    // Killed after the first, fourth and seventh progress line (10%, 40%, 70% of the
    // pairs done), not after a fixed time: on an idle machine the whole run can end
    // before a fixed moment comes.
    for (round, progress_lines) in [1usize, 4, 7].into_iter().enumerate() {
        let sandbox = Sandbox::new();
        let slow = SimConfig {
            latency: Duration::from_millis(15),
            seed: round as u64,
            ..SimConfig::default()
        };
        let fleet = fleet(3, slow);
        let command = || {
            sandbox
                .enroll(&rows)
                .args(&["--json", "--batch-size", "10"])
                .embedded_cache()
                .devices(&fleet)
        };
        let mut running = command().spawn();
        running.wait_for_lines("progress: ", progress_lines, Duration::from_secs(60));
        running.signal(libc::SIGKILL);
        let killed = running.wait();
        assert_eq!(killed.code, -1, "killed by a signal\n{}", killed.shown);
        let again = command().run();
        again.expect_code(0);
        let report = again.report();
        counts_add_up(&report);
        assert_eq!(report["failed"], 0);
        for device in &fleet.devices {
            assert_holds_exactly(device, &rows);
        }
    }
}

#[test]
fn ctrl_c_stops_reports_the_partial_run_and_a_rerun_completes() {
    let sandbox = Sandbox::new();
    let slow = SimConfig {
        latency: Duration::from_millis(30),
        ..SimConfig::default()
    };
    let fleet = fleet(2, slow);
    let rows = people(400);
    let report_file = sandbox.path("partial.json");
    let command = || {
        sandbox
            .enroll(&rows)
            .args(&["--json", "--batch-size", "5"])
            .embedded_cache()
            .devices(&fleet)
    };
    let running = command()
        .args(&["--report", report_file.to_str().unwrap()])
        .spawn();
    std::thread::sleep(Duration::from_millis(700));
    running.signal(libc::SIGINT);
    let stopped = running.wait();
    stopped.expect_code(130);
    let report = stopped.report();
    counts_add_up(&report);
    assert_eq!(report["interrupted"], true);
    let registered = report["registered"].as_u64().unwrap();
    assert!(registered > 0 && registered < 800, "{}", stopped.shown);
    assert!(stopped.stderr.contains("interrupted"), "{}", stopped.shown);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(written["registered"].as_u64(), Some(registered));
    let not_sent = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["error"].as_str().unwrap().contains("interrupted"))
        .count();
    assert_eq!(not_sent as u64, report["failed"].as_u64().unwrap());

    let rerun = command().run();
    rerun.expect_code(0);
    assert_eq!(rerun.report()["skipped_cache"].as_u64(), Some(registered));
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }
}

#[test]
fn sigterm_behaves_like_the_first_ctrl_c() {
    let sandbox = Sandbox::new();
    let slow = SimConfig {
        latency: Duration::from_millis(30),
        ..SimConfig::default()
    };
    let fleet = fleet(1, slow);
    let running = sandbox
        .enroll(&people(300))
        .args(&["--json", "--batch-size", "5"])
        .embedded_cache()
        .devices(&fleet)
        .spawn();
    std::thread::sleep(Duration::from_millis(500));
    running.signal(libc::SIGTERM);
    let stopped = running.wait();
    stopped.expect_code(130);
    counts_add_up(&stopped.report());
}

#[test]
fn redis_lost_mid_run_loses_no_device_work() {
    let mut redis = PrivateRedis::start().expect("redis-server starts");
    let sandbox = Sandbox::new();
    let slow = SimConfig {
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    };
    let fleet = fleet(2, slow);
    let rows = people(300);
    let running = sandbox
        .enroll(&rows)
        .args(&["--json", "--batch-size", "10"])
        .args(&["--cache", redis.url()])
        .devices(&fleet)
        .spawn();
    std::thread::sleep(Duration::from_millis(500));
    redis.stop();
    let run = running.wait();
    run.expect_code(0);
    let report = run.report();
    assert_eq!(report["registered"], 600, "{}", run.shown);
    assert!(report["not_cached"].as_u64().unwrap() > 0, "{}", run.shown);
    assert_eq!(
        run.stderr
            .matches("could not record results in the cache")
            .count(),
        1,
        "{}",
        run.shown
    );
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }
}

#[test]
fn max_failures_halts_a_run_that_is_clearly_going_wrong() {
    let sandbox = Sandbox::new();
    let fleet = fleet(3, SimConfig::default());
    let run = sandbox
        .enroll(&people(500))
        .args(&["--json", "--batch-size", "10", "--threads", "1"])
        .args(&["--max-failures", "5%"])
        .embedded_cache()
        .env("CATRACA_PASSWORD", "errada")
        .devices(&fleet)
        .run();
    run.expect_code(1);
    let report = run.report();
    counts_add_up(&report);
    assert!(
        report["halted"]
            .as_str()
            .unwrap()
            .contains("--max-failures 5%"),
        "{}",
        run.shown
    );
    assert!(run.stderr.contains("stopped early"), "{}", run.shown);
    let halted = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["error"].as_str().unwrap().contains("halted"))
        .count();
    assert!(
        halted > 0,
        "pairs never sent are reported as such\n{}",
        run.shown
    );
}

#[test]
fn the_failed_file_is_accepted_back_and_finishes_the_job() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let rows = people(60);
    fleet.devices[1].reject_registration(&rows[5].registration);
    fleet.devices[1].reject_registration(&rows[6].registration);
    let failed = sandbox.path("failed.csv");
    let first = sandbox
        .enroll(&rows)
        .args(&["--json", "--failed", failed.to_str().unwrap()])
        .embedded_cache()
        .devices(&fleet)
        .run();
    first.expect_code(1);
    let text = std::fs::read_to_string(&failed).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("CHECK constraint failed"), "{text}");
    // The cause is fixed (here: fresh devices that accept everyone) and the operator
    // feeds the file back: exactly the two failed people are sent.
    let fleet = crate::harness::fleet(2, SimConfig::default());
    let retry = sandbox
        .catraca(&["enroll", "--users", failed.to_str().unwrap(), "--json"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    retry.expect_code(0);
    assert_eq!(retry.report()["participants"], 2);
    assert_eq!(retry.report()["registered"], 4);
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows[5..7]);
    }
}

#[test]
fn no_output_nor_cache_holds_the_password_or_a_raw_registration() {
    let url = redis_server::shared_url();
    let secret_password = "S3nh4-Muito-Secreta";
    let rows = people(40);
    for cache in ["embedded", "redis"] {
        let sandbox = Sandbox::new();
        let config = SimConfig {
            password: secret_password.to_string(),
            faults: FaultRates {
                status_503: 0.2,
                ..Default::default()
            },
            ..SimConfig::default()
        };
        let fleet = catraca_sim::Fleet::start(2, &config).unwrap();
        fleet.devices[0].reject_registration(&rows[3].registration);
        let report = sandbox.path("report.json");
        let failed = sandbox.path("failed.csv");
        let command = sandbox
            .enroll(&rows)
            .args(&["-vv", "--report", report.to_str().unwrap()])
            .args(&["--failed", failed.to_str().unwrap()])
            .env("CATRACA_PASSWORD", secret_password);
        let command = if cache == "redis" {
            command.args(&["--cache", &url])
        } else {
            command.embedded_cache()
        };
        let run = command.devices(&fleet).run();
        run.expect_code(1);
        let mut outputs = vec![
            ("stdout", run.stdout.clone().into_bytes()),
            ("stderr", run.stderr.clone().into_bytes()),
            ("report", std::fs::read(&report).unwrap()),
            ("failed csv", std::fs::read(&failed).unwrap()),
        ];
        let mut cache_bytes = Vec::new();
        if cache == "redis" {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut con = client.get_connection().unwrap();
            let keys: Vec<String> = redis::cmd("KEYS").arg("catraca:*").query(&mut con).unwrap();
            assert!(!keys.is_empty());
            for key in keys {
                let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
                cache_bytes.extend(key.into_bytes());
                cache_bytes.extend(value);
            }
        } else {
            cache_bytes = std::fs::read(sandbox.path("cache.redb")).unwrap();
        }
        outputs.push(("cache", cache_bytes.clone()));
        for (what, bytes) in &outputs {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains(secret_password),
                "the password is in the {what} ({cache})"
            );
        }
        for row in &rows {
            let raw = row.registration.as_bytes();
            assert!(
                !cache_bytes.windows(raw.len()).any(|w| w == raw),
                "registration {} is in the {cache} cache in clear",
                row.registration
            );
        }
    }
}

#[test]
fn a_rate_limit_spaces_the_requests_to_a_device() {
    // 10 requests/s with a burst of 10: 40 people one per request need more than 40
    // requests, so at least 3 s. (A lower bound: a slow machine cannot make it fail.)
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let rows = people(40);
    let started = std::time::Instant::now();
    let run = sandbox
        .enroll(&rows)
        .args(&["--json", "--batch-size", "1", "--rate", "10"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(0);
    let sent = fleet.devices[0].stats().total;
    assert!(sent > 40);
    let floor = Duration::from_secs_f64((sent - 10) as f64 / 10.0);
    assert!(
        started.elapsed() >= floor,
        "{sent} requests in {:?}",
        started.elapsed()
    );
    assert_holds_exactly(&fleet.devices[0], &rows);
}

#[test]
fn a_create_whose_answer_was_lost_and_set_aside_still_counts_as_registered() {
    // No retries: the lost answer fails the batch at once, the engine sets it aside and
    // re-plans it, and finds the people already there (without their cards).
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    fleet.devices[0].lose_next_answer("create_objects");
    let rows = people(30);
    let run = sandbox
        .enroll(&rows)
        .args(&["--json", "--retries", "0"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(0);
    let report = run.report();
    assert_eq!(
        fleet.devices[0].stats().faults.get("reset").copied(),
        Some(1)
    );
    assert_eq!(report["registered"], 30, "{}", run.shown);
    assert_eq!(report["updated"], 0, "{}", run.shown);
    assert_holds_exactly(&fleet.devices[0], &rows);
}
