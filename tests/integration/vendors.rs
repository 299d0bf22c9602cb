//! Mixed fleets: Control iD, Hikvision and Intelbras devices in one `catraca enroll`,
//! and what each Digest driver does when its device refuses, is busy or is full.

use crate::harness::*;
use catraca_sim::{FaultRates, Kind, SimConfig};

fn counts(report: &serde_json::Value) -> [u64; 5] {
    [
        "registered",
        "updated",
        "unchanged",
        "skipped_cache",
        "failed",
    ]
    .map(|k| report[k].as_u64().unwrap_or_else(|| panic!("no {k}")))
}

const MIXED: [(Kind, usize); 3] = [
    (Kind::Controlid, 2),
    (Kind::Hikvision, 2),
    (Kind::Intelbras, 2),
];

#[test]
fn a_mixed_fleet_gets_everyone_once_then_skips_then_modifies_a_changed_person() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(&MIXED, SimConfig::default());
    let mut rows = people(150);
    let run = |rows: &[Row]| {
        sandbox
            .enroll(rows)
            .args(&["--json"])
            .embedded_cache()
            .kinded_devices(&fleet)
            .run()
    };

    let first = run(&rows);
    first.expect_code(0);
    let report = first.report();
    assert_eq!(counts(&report), [900, 0, 0, 0, 0], "{}", first.shown);
    let kinds: Vec<&str> = report["per_device"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "controlid",
            "controlid",
            "hikvision",
            "hikvision",
            "intelbras",
            "intelbras"
        ]
    );
    for device in &fleet.devices {
        assert_people(device, &rows);
        match device.kind() {
            // One person per request on Hikvision, ten on Intelbras.
            Kind::Hikvision => assert_eq!(requests(device, "user_record"), 150),
            Kind::Intelbras => assert_eq!(requests(device, "user_insertMulti"), 15),
            Kind::Controlid => {}
        }
    }

    let before: Vec<u64> = fleet.devices.iter().map(|d| d.stats().total).collect();
    let second = run(&rows);
    second.expect_code(0);
    assert_eq!(
        counts(&second.report()),
        [0, 0, 0, 900, 0],
        "{}",
        second.shown
    );
    let after: Vec<u64> = fleet.devices.iter().map(|d| d.stats().total).collect();
    assert_eq!(before, after, "a cached run contacts no device");

    // A new name, a new card and a new window, on three people.
    rows[4].name = "Maria Renomeada".into();
    rows[6].card = Some((9, 9_999));
    rows[10].window = Some((1_785_000_000, 1_795_000_000));
    let third = run(&rows);
    third.expect_code(0);
    assert_eq!(
        counts(&third.report()),
        [0, 18, 0, 882, 0],
        "{}",
        third.shown
    );
    for device in &fleet.devices {
        assert_people(device, &rows);
    }
}

fn digest_fleet(config: SimConfig) -> catraca_sim::Fleet {
    mixed_fleet(&[(Kind::Hikvision, 1), (Kind::Intelbras, 1)], config)
}

#[test]
fn a_wrong_password_is_tried_once_then_never_again() {
    let sandbox = Sandbox::new();
    let fleet = digest_fleet(SimConfig::default());
    let ran = sandbox
        .enroll(&people(30))
        .args(&["--json", "--cache", "none"])
        .env("CATRACA_PASSWORD", "not-the-password")
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["failed"], 60, "{}", ran.shown);
    assert!(
        report["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("login refused"),
        "{}",
        ran.shown
    );
    for device in &fleet.devices {
        assert_eq!(
            requests(device, "auth_refused"),
            1,
            "{} ({})",
            device.name(),
            device.kind()
        );
        assert_eq!(requests(device, "auth_locked"), 0);
        assert!(device.people().is_empty());
    }
}

#[test]
fn people_already_there_are_modified_not_duplicated_even_when_answers_are_lost() {
    let sandbox = Sandbox::new();
    let fleet = digest_fleet(SimConfig {
        faults: FaultRates {
            reset: 0.2,
            ..FaultRates::default()
        },
        faults_after_write: true,
        seed: 11,
        ..SimConfig::default()
    });
    let mut rows = people(30);
    let run = |rows: &[Row]| {
        sandbox
            .enroll(rows)
            .args(&["--json", "--cache", "none", "--retries", "8"])
            .kinded_devices(&fleet)
            .run()
    };
    let first = run(&rows);
    first.expect_code(0);
    for device in &fleet.devices {
        assert_people(device, &rows);
    }
    for row in rows.iter_mut().take(10) {
        row.name.push_str(" Filho");
    }
    let second = run(&rows);
    second.expect_code(0);
    assert_eq!(
        counts(&second.report()),
        [0, 20, 40, 0, 0],
        "{}",
        second.shown
    );
    for device in &fleet.devices {
        assert_people(device, &rows);
        assert!(
            device.stats().faults.values().sum::<u64>() > 0,
            "no fault was shown"
        );
    }
}

#[test]
fn a_busy_device_is_retried() {
    let sandbox = Sandbox::new();
    let fleet = digest_fleet(SimConfig::default());
    for device in &fleet.devices {
        device.busy_next(3);
    }
    let rows = people(12);
    let ran = sandbox
        .enroll(&rows)
        .args(&["--json", "--cache", "none"])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(0);
    assert_eq!(counts(&ran.report()), [24, 0, 0, 0, 0], "{}", ran.shown);
    for device in &fleet.devices {
        assert_eq!(device.stats().faults.get("503"), Some(&3));
        assert_people(device, &rows);
    }
}

#[test]
fn a_full_hikvision_device_is_stopped_with_a_clear_error() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[(Kind::Hikvision, 1)],
        SimConfig {
            capacity: Some(5),
            ..SimConfig::default()
        },
    );
    let ran = sandbox
        .enroll(&people(20))
        .args(&["--json", "--cache", "none"])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["registered"], 5, "{}", ran.shown);
    assert_eq!(report["failed"], 15, "{}", ran.shown);
    for failure in report["failures"].as_array().unwrap() {
        let error = failure["error"].as_str().unwrap();
        assert!(
            error.contains("device full") && error.contains("userExceedLimit"),
            "{error}"
        );
    }
    let device = &fleet.devices[0];
    assert_eq!(device.people().len(), 5);
    // The refusal that said "full", and at most one more already in flight.
    assert!(
        requests(device, "user_record") <= 7,
        "{}",
        requests(device, "user_record")
    );
}

#[test]
fn the_simulated_batch_limits_hold_and_the_drivers_respect_them() {
    let sandbox = Sandbox::new();
    let fleet = digest_fleet(SimConfig::default());
    let rows = people(25);
    let ran = sandbox
        .enroll(&rows)
        .args(&["--json", "--cache", "none", "--batch-size", "500"])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(0);
    let (hikvision, intelbras) = (&fleet.devices[0], &fleet.devices[1]);
    assert_eq!(requests(hikvision, "user_record"), 25);
    assert_eq!(requests(intelbras, "user_insertMulti"), 3);
    // Cards follow their people: one call per write job of ten.
    assert_eq!(requests(intelbras, "card_insertMulti"), 3);
    for device in &fleet.devices {
        assert_people(device, &rows);
    }
}

#[test]
fn a_create_whose_answer_was_lost_becomes_a_modify_not_a_second_copy() {
    let sandbox = Sandbox::new();
    let fleet = digest_fleet(SimConfig::default());
    let (hikvision, intelbras) = (&fleet.devices[0], &fleet.devices[1]);
    hikvision.lose_next_answer("user_record");
    intelbras.lose_next_answer("user_insertMulti");
    let rows = people(6);
    let ran = sandbox
        .enroll(&rows)
        .args(&["--json", "--cache", "none"])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(0);
    assert_eq!(counts(&ran.report()), [12, 0, 0, 0, 0], "{}", ran.shown);
    for device in &fleet.devices {
        assert_people(device, &rows);
        assert_eq!(device.stats().faults.get("reset"), Some(&1));
    }
    // Hikvision: the repeated Record met employeeNoAlreadyExist and became a Modify.
    assert_eq!(requests(hikvision, "user_record"), 7);
    assert_eq!(requests(hikvision, "user_modify"), 1);
    // Intelbras: the batch was listed, found stored, and written with updateMulti.
    assert_eq!(requests(intelbras, "user_insertMulti"), 1);
    assert_eq!(requests(intelbras, "user_updateMulti"), 1);
}
