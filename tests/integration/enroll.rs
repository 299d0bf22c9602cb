//! `catraca enroll` end to end: device state, counts, exit codes, cache media.

use crate::harness::*;
use catraca_sim::redis_server;
use catraca_sim::SimConfig;

fn counts(report: &serde_json::Value) -> [u64; 6] {
    [
        "registered",
        "updated",
        "unchanged",
        "skipped_cache",
        "failed",
        "operations",
    ]
    .map(|k| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("report has no {k}"))
    })
}

/// The core promise, with a given cache medium: 200 people on 3 devices exactly once,
/// then a second run that skips all 600 pairs without sending anything.
fn enroll_twice(cache_args: &[&str]) {
    let sandbox = Sandbox::new();
    let fleet = fleet(3, SimConfig::default());
    let rows = people(200);
    let report_file = sandbox.path("report.json");

    let first = sandbox
        .enroll(&rows)
        .args(&["--json", "--report", report_file.to_str().unwrap()])
        .args(cache_args)
        .devices(&fleet)
        .run();
    first.expect_code(0);
    let report = first.report();
    assert_eq!(counts(&report), [600, 0, 0, 0, 0, 600], "{}", first.shown);
    assert_eq!(report["participants"], 200);
    assert_eq!(report["devices"], 3);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(written["registered"], 600);
    assert_eq!(written["per_device"].as_array().unwrap().len(), 3);
    assert_eq!(written["per_device"][0]["registered"], 200);
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }
    let before: Vec<u64> = fleet.devices.iter().map(|d| d.stats().total).collect();

    let second = sandbox
        .enroll(&rows)
        .args(&["--json"])
        .args(cache_args)
        .devices(&fleet)
        .run();
    second.expect_code(0);
    assert_eq!(
        counts(&second.report()),
        [0, 0, 0, 600, 0, 600],
        "{}",
        second.shown
    );
    let after: Vec<u64> = fleet.devices.iter().map(|d| d.stats().total).collect();
    assert_eq!(
        before, after,
        "a fully cached run must not contact any device"
    );
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }
}

#[test]
fn enrolls_everyone_exactly_once_then_skips_everything_with_the_embedded_cache() {
    let sandbox_cache = tempfile::tempdir().unwrap();
    let path = sandbox_cache.path().join("store.redb");
    enroll_twice(&[
        "--cache",
        "embedded",
        "--cache-path",
        path.to_str().unwrap(),
    ]);
}

#[test]
fn enrolls_everyone_exactly_once_then_skips_everything_with_redis() {
    let url = redis_server::shared_url();
    enroll_twice(&["--cache", &url]);
}

#[test]
fn redis_url_from_the_environment_is_used_when_no_cache_flag_is_given() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let rows = people(5);
    let run = || {
        sandbox
            .enroll(&rows)
            .args(&["--json"])
            .env("REDIS_URL", &redis_server::shared_url())
            .devices(&fleet)
            .run()
    };
    run().expect_code(0);
    let second = run();
    second.expect_code(0);
    assert_eq!(second.report()["skipped_cache"], 5);
    assert!(second.report()["cache"]
        .as_str()
        .unwrap()
        .starts_with("redis"));
}

#[test]
fn skipping_the_cache_never_duplicates_people() {
    skipping_the_cache_never_duplicates_people_with(None);
    skipping_the_cache_never_duplicates_people_with(Some(redis_server::shared_url()));
}

fn skipping_the_cache_never_duplicates_people_with(redis: Option<String>) {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let rows = people(120);
    sandbox
        .enroll(&rows)
        .args(&["--json"])
        .cache_in(redis.as_deref())
        .devices(&fleet)
        .run()
        .expect_code(0);
    let created: Vec<u64> = fleet
        .devices
        .iter()
        .map(|d| d.stats().created["users"])
        .collect();
    assert_eq!(created, [120, 120]);
    for skip_it in [true, false] {
        let command = sandbox.enroll(&rows).args(&["--json"]);
        let command = if skip_it {
            command.cache_in(redis.as_deref()).args(&["--skip-cache"])
        } else {
            command.args(&["--cache", "none"])
        };
        let again = command.devices(&fleet).run();
        again.expect_code(0);
        assert_eq!(
            counts(&again.report()),
            [0, 0, 240, 0, 0, 240],
            "{}",
            again.shown
        );
    }
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
        // Not one more person was created by the runs that did not trust the cache.
        assert_eq!(device.stats().created["users"], 120);
    }
}

#[test]
fn a_changed_name_is_modified_and_everyone_else_skipped() {
    a_changed_name_is_modified_with(None);
    a_changed_name_is_modified_with(Some(redis_server::shared_url()));
}

fn a_changed_name_is_modified_with(redis: Option<String>) {
    let with_cache = |command: TestCommand| command.cache_in(redis.as_deref());
    let sandbox = Sandbox::new();
    let fleet = fleet(3, SimConfig::default());
    let mut rows = people(50);
    with_cache(sandbox.enroll(&rows).args(&["--json"]))
        .devices(&fleet)
        .run()
        .expect_code(0);
    rows[7].name = "Maria da Conceição Renomeada".to_string();
    rows[9].card = Some((200, 99));
    let run = with_cache(sandbox.enroll(&rows).args(&["--json"]))
        .devices(&fleet)
        .run();
    run.expect_code(0);
    assert_eq!(
        counts(&run.report()),
        [0, 6, 0, 144, 0, 150],
        "{}",
        run.shown
    );
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }
}

#[test]
fn sequential_one_thread_and_sixteen_threads_end_in_the_same_state() {
    let rows = people(150);
    let mut states = Vec::new();
    for mode in [
        &["--sequential"][..],
        &["--threads", "1"],
        &["--threads", "16"],
        &["--batch-size", "1"],
    ] {
        let sandbox = Sandbox::new();
        let fleet = fleet(2, SimConfig::default());
        let run = sandbox
            .enroll(&rows)
            .args(&["--json", "--cache", "none"])
            .args(mode)
            .devices(&fleet)
            .run();
        run.expect_code(0);
        assert_eq!(run.report()["registered"], 300, "{}", run.shown);
        for device in &fleet.devices {
            assert_holds_exactly(device, &rows);
        }
        if mode == ["--batch-size", "1"] {
            // One person per create request, as the old system did.
            assert_eq!(
                fleet.devices[0]
                    .stats()
                    .created
                    .get("users")
                    .copied()
                    .unwrap_or(0),
                150
            );
            assert!(requests(&fleet.devices[0], "create_objects") >= 150);
        } else {
            assert!(requests(&fleet.devices[0], "create_objects") < 20);
        }
        states.push(fleet.devices.iter().map(state_of).collect::<Vec<_>>());
    }
    assert!(states.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn participants_can_come_from_standard_input() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let rows = people(30);
    let run = sandbox
        .catraca(&["enroll", "--users", "-", "--json"])
        .embedded_cache()
        .devices(&fleet)
        .stdin(csv(&rows))
        .run();
    run.expect_code(0);
    assert_eq!(run.report()["registered"], 60);
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }
}

#[test]
fn a_down_device_fails_its_pairs_and_the_others_finish() {
    let sandbox = Sandbox::new();
    let fleet = fleet(3, SimConfig::default());
    fleet.devices[1].set_down(true);
    let rows = people(40);
    let run = sandbox
        .enroll(&rows)
        .args(&["--json", "--retries", "1"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(1);
    let report = run.report();
    assert_eq!(counts(&report), [80, 0, 0, 0, 40, 120], "{}", run.shown);
    let down_name = fleet.devices[1].name();
    let down_url = fleet.devices[1].url();
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 40);
    for f in failures {
        assert_eq!(
            f["device"].as_str(),
            Some(down_url.trim_start_matches("http://")),
            "{f}"
        );
        assert!(
            f["error"].as_str().unwrap().contains("unreachable")
                || f["error"].as_str().unwrap().contains("connection"),
            "{f}"
        );
    }
    let _ = down_name;
    assert_holds_exactly(&fleet.devices[0], &rows);
    assert_holds_exactly(&fleet.devices[2], &rows);
}

#[test]
fn a_wrong_password_is_reported_naming_the_device_and_never_shown() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let wrong = "senha-errada-123";
    let report_file = sandbox.path("r.json");
    let run = sandbox
        .enroll(&people(10))
        .args(&["-vv", "--report", report_file.to_str().unwrap()])
        .embedded_cache()
        .env("CATRACA_PASSWORD", wrong)
        .devices(&fleet)
        .run();
    run.expect_code(1);
    let first_name = fleet.urls()[0].trim_start_matches("http://").to_string();
    assert!(run.stdout.contains("login refused"), "{}", run.shown);
    assert!(run.stdout.contains(&first_name), "{}", run.shown);
    assert!(run.stdout.contains("CATRACA_PASSWORD"), "{}", run.shown);
    let written = std::fs::read_to_string(&report_file).unwrap();
    for text in [&run.stdout, &run.stderr, &written] {
        assert!(!text.contains(wrong), "the password leaked:\n{}", run.shown);
        assert!(
            !text.contains(PASSWORD),
            "the password leaked:\n{}",
            run.shown
        );
    }
    // One refused login per device, never one per thread or per batch.
    for device in &fleet.devices {
        assert_eq!(requests(device, "login"), 1);
        assert!(device.users().is_empty());
    }
}

#[test]
fn lost_answers_and_expiring_sessions_never_make_duplicates() {
    // Writes applied, then the answer lost (reset or garbage) on a fifth of requests,
    // and sessions that expire every 7 requests: the driver must look before it writes
    // again and log in again once, and still end with everyone exactly once.
    let sandbox = Sandbox::new();
    let config = SimConfig {
        faults: catraca_sim::FaultRates {
            reset: 0.12,
            garbage: 0.08,
            ..Default::default()
        },
        faults_after_write: true,
        session_expiry_after: Some(7),
        seed: 7,
        ..SimConfig::default()
    };
    let fleet = fleet(2, config);
    let rows = people(150);
    let run = sandbox
        .enroll(&rows)
        .args(&["--json", "--batch-size", "10", "--retries", "10"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(0);
    assert_eq!(run.report()["registered"], 300, "{}", run.shown);
    for device in &fleet.devices {
        let stats = device.stats();
        assert!(
            stats.faults.values().sum::<u64>() > 5,
            "faults were injected: {stats:?}"
        );
        assert!(
            stats.count("login") > 2,
            "sessions expired and were renewed: {stats:?}"
        );
        assert_holds_exactly(device, &rows);
    }
}

#[test]
fn windows_1252_with_semicolons_and_portuguese_headers_keeps_the_accents() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    // "Matrícula;Nome;Cartão" and "João Conceição" in Windows-1252, as Excel saves them.
    let bytes = b"Matr\xedcula;Nome;Cart\xe3o;Grupo\r\n77;Jo\xe3o Concei\xe7\xe3o;123,45678;Funcion\xe1rios\r\n".to_vec();
    let run = sandbox
        .catraca(&["enroll", "--users", "-", "--json"])
        .embedded_cache()
        .devices(&fleet)
        .stdin(bytes)
        .run();
    run.expect_code(0);
    let users = fleet.devices[0].users();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].name, "João Conceição");
    assert_eq!(fleet.devices[0].cards()[0].value, 528_281_023_086);
    assert_eq!(fleet.devices[0].groups()[0].name, "Funcionários");
}

#[test]
fn progress_lines_and_per_pair_lines_go_to_stderr() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let run = sandbox
        .enroll(&people(20))
        .args(&["-v", "--batch-size", "2"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(0);
    assert!(
        run.stderr.contains("progress: 40/40 (100.0%)"),
        "{}",
        run.shown
    );
    let progress_lines = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .count();
    assert!((2..=10).contains(&progress_lines), "{}", run.shown);
    assert_eq!(
        run.stderr.matches("registered: ").count(),
        40,
        "{}",
        run.shown
    );
    assert!(
        run.stderr
            .contains("registered: João Gonçalves 0 (2026000000) on"),
        "{}",
        run.shown
    );
    // The human summary is the command's output.
    assert!(run.stdout.contains("registered:      40"), "{}", run.shown);
}

#[test]
fn a_missing_group_is_looked_up_once_while_planning_then_created_once() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    // Three plan chunks of at most 999 people, everyone in one group the device lacks.
    let rows: Vec<Row> = people(2100)
        .into_iter()
        .map(|row| Row {
            card: None,
            group: Some("Visitantes".into()),
            ..row
        })
        .collect();
    let run = sandbox
        .enroll(&rows)
        .args(&["--json", "--cache", "none"])
        .devices(&fleet)
        .run();
    run.expect_code(0);
    assert_holds_exactly(&fleet.devices[0], &rows);
    // Loads: the users of each chunk (3), the group while planning (1, not once per
    // chunk), and the group once more just before creating it.
    assert_eq!(
        requests(&fleet.devices[0], "load_objects"),
        5,
        "{}",
        run.shown
    );
}
