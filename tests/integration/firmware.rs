//! Firmware as field devices ship it (`docs/field-evidence.md`), played by the
//! simulators' profiles and met by the real binary: Digest nonces that wear out after
//! two uses, accounts that lock, and two `WWW-Authenticate` headers.

use crate::harness::*;
use catraca::device::digest::DigestClient;
use catraca::device::http::{HttpClient, Timeouts};
use catraca::device::{Credentials, RetryPolicy};
use catraca_sim::{Fleet, HikFirmware, IntelbrasFirmware, Kind, SimConfig, SimDevice};

/// A devices file naming every device of `fleet` by kind, with `extra` lines in each.
fn devices_file(sandbox: &Sandbox, fleet: &Fleet, extra: &str) -> String {
    let mut text = String::new();
    for device in &fleet.devices {
        text.push_str(&format!(
            "[[device]]\nname = \"{}\"\nurl = \"{}\"\nkind = \"{}\"\n{extra}\n",
            device.name(),
            device.url(),
            device.kind()
        ));
    }
    sandbox
        .write("devices.toml", text)
        .to_str()
        .expect("a UTF-8 path")
        .to_string()
}

/// The strict Digest profile: a nonce's third use refused without `stale`, Basic
/// offered beside Digest, and the lock after 7 refused logins.
fn strict_digest() -> SimConfig {
    SimConfig {
        nonce_uses: Some(2),
        offer_basic: true,
        ..SimConfig::default()
    }
}

#[test]
fn a_thousand_people_on_devices_that_refuse_a_nonces_third_use_cost_no_refused_login() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[(Kind::Hikvision, 1), (Kind::Intelbras, 1)],
        strict_digest(),
    );
    let rows = people(1000);
    let file = devices_file(&sandbox, &fleet, "max_in_flight = 2\nnonce_uses = 2");
    let ran = sandbox
        .enroll(&rows)
        .args(&["--json", "--cache", "none", "--devices", &file])
        .run();
    ran.expect_code(0);
    let report = ran.report();
    assert_eq!(report["registered"], 2000, "{}", ran.shown);
    assert_eq!(report["failed"], 0, "{}", ran.shown);
    for device in &fleet.devices {
        assert_people(device, &rows);
        for event in ["auth_refused", "auth_locked", "nonce_exhausted"] {
            assert_eq!(
                requests(device, event),
                0,
                "{} ({}): {event}",
                device.name(),
                device.kind()
            );
        }
    }
}

fn client(device: &SimDevice, password: &str) -> DigestClient {
    DigestClient::new(
        "colleague",
        &device.url(),
        Credentials {
            login: "admin".into(),
            password: password.into(),
            source: "a colleague's script".into(),
        },
        HttpClient::new(Timeouts::default(), 1, Default::default()),
        RetryPolicy::default(),
    )
}

#[test]
fn a_locked_account_stops_its_device_at_once_and_the_others_go_on() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(&[(Kind::Hikvision, 2)], strict_digest());
    let locked = &fleet.devices[0];
    // A colleague's script with an old password: each refusal it does not stop at
    // counts, and the 7th locks the account for 30 minutes.
    for _ in 0..7 {
        let _ = client(locked, "old-password").send(
            "GET",
            "/ISAPI/AccessControl/UserInfo/capabilities?format=json",
            None,
        );
    }
    assert_eq!(requests(locked, "auth_refused"), 7);
    let before = locked.stats().total;

    let rows = people(150);
    let ran = sandbox
        .enroll(&rows)
        .args(&["--json", "--cache", "none"])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["registered"], 150, "{}", ran.shown);
    assert_eq!(report["failed"], 150, "{}", ran.shown);
    // A device given by URL is named by its host and port.
    let name = locked.url().trim_start_matches("http://").to_string();
    let failures = report["failures"].as_array().unwrap();
    assert!(
        failures.iter().all(|f| f["device"] == name.as_str()
            && f["error"]
                .as_str()
                .unwrap()
                .contains(&format!("device {name}: account locked for 30 min"))),
        "{}",
        ran.shown
    );
    // One request without credentials learnt of the lock; nothing was signed, so the
    // lock was not started again.
    assert_eq!(locked.stats().total, before + 1, "{}", ran.shown);
    assert_eq!(requests(locked, "auth_locked"), 0);
    assert!(locked.people().is_empty());
    assert_people(&fleet.devices[1], &rows);
}

#[test]
fn a_wrong_password_costs_one_refused_login_per_device() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[(Kind::Hikvision, 1), (Kind::Intelbras, 1)],
        strict_digest(),
    );
    let ran = sandbox
        .enroll(&people(30))
        .args(&["--json", "--cache", "none"])
        .env("CATRACA_PASSWORD", "not-the-password")
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["failed"], 60, "{}", ran.shown);
    let error = report["failures"][0]["error"].as_str().unwrap();
    assert!(error.contains("login refused"), "{}", ran.shown);
    for device in &fleet.devices {
        assert_eq!(requests(device, "auth_refused"), 1, "{}", device.kind());
        assert!(device.people().is_empty());
    }
    // The Hikvision userCheck says how many attempts are left before the lock.
    assert!(
        report["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["error"].as_str().unwrap().contains("6 attempts left")),
        "{}",
        ran.shown
    );
}

#[test]
fn a_mixed_run_on_the_strict_digest_profile_lands_everyone_once() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[
            (Kind::Controlid, 1),
            (Kind::Hikvision, 1),
            (Kind::Intelbras, 1),
        ],
        strict_digest(),
    );
    let mut rows = people(150);
    let run = |rows: &[Row]| {
        sandbox
            .enroll(rows)
            .args(&["--json", "--cache", "none"])
            .kinded_devices(&fleet)
            .run()
    };
    let first = run(&rows);
    first.expect_code(0);
    assert_eq!(first.report()["registered"], 450, "{}", first.shown);
    rows[3].name = "Nome Trocado".into();
    rows[9].card = Some((7, 4242));
    let second = run(&rows);
    second.expect_code(0);
    let report = second.report();
    assert_eq!(
        (report["updated"].as_u64(), report["unchanged"].as_u64()),
        (Some(6), Some(444)),
        "{}",
        second.shown
    );
    for device in &fleet.devices {
        assert_people(device, &rows);
        assert_eq!(requests(device, "auth_refused"), 0);
        assert_eq!(requests(device, "nonce_exhausted"), 0);
    }
}

fn intelbras(firmware: IntelbrasFirmware) -> Fleet {
    mixed_fleet(
        &[(Kind::Intelbras, 1)],
        SimConfig {
            intelbras_firmware: firmware,
            ..strict_digest()
        },
    )
}

#[test]
fn intelbras_2x_and_3x_get_everyone_once_are_updated_and_pruned() {
    for firmware in [
        IntelbrasFirmware::V2,
        IntelbrasFirmware::V3,
        IntelbrasFirmware::V3Strict,
    ] {
        let sandbox = Sandbox::new();
        let fleet = intelbras(firmware);
        let device = &fleet.devices[0];
        let mut rows = people(150);
        let run = |rows: &[Row], extra: &[&str]| {
            sandbox
                .enroll(rows)
                .args(&["--json", "--cache", "none"])
                .args(extra)
                .kinded_devices(&fleet)
                .run()
        };
        let first = run(&rows, &[]);
        first.expect_code(0);
        assert_eq!(
            first.report()["registered"],
            150,
            "{firmware:?}: {}",
            first.shown
        );
        assert_people(device, &rows);

        rows[1].name = "Nome Novo".into();
        rows[3].card = Some((42, 4242));
        rows[6].card = None;
        let second = run(&rows, &[]);
        second.expect_code(0);
        let report = second.report();
        assert_eq!(
            (report["updated"].as_u64(), report["unchanged"].as_u64()),
            (Some(3), Some(147)),
            "{firmware:?}: {}",
            second.shown
        );
        assert_people(device, &rows);

        // Listing the whole device: startFind/doFind/stopFind on 3.x, list on 2.x.
        rows.truncate(140);
        let third = run(
            &rows,
            &["--prune", "--prune-unmanaged", "--max-remove", "20"],
        );
        third.expect_code(0);
        assert_eq!(
            third.report()["removed"],
            10,
            "{firmware:?}: {}",
            third.shown
        );
        assert_people(device, &rows);

        match firmware {
            IntelbrasFirmware::V3 | IntelbrasFirmware::V3Strict => {
                assert!(requests(device, "user_doFind") > 0, "{firmware:?}");
                assert!(requests(device, "card_startFind") > 0, "{firmware:?}");
                assert_eq!(
                    requests(device, "user_startFind") + requests(device, "card_startFind"),
                    requests(device, "user_stopFind") + requests(device, "card_stopFind"),
                    "every search is stopped"
                );
                assert_eq!(device.open_searches(), 0);
                if firmware == IntelbrasFirmware::V3Strict {
                    // No list at all: every person was looked up by a search.
                    assert!(requests(device, "user_startFind") > 150, "{firmware:?}");
                }
            }
            _ => assert_eq!(requests(device, "user_doFind"), 0),
        }
        for event in ["auth_refused", "nonce_exhausted"] {
            assert_eq!(requests(device, event), 0, "{firmware:?}: {event}");
        }
    }
}

#[test]
fn a_write_the_device_answers_ok_and_ignores_is_failed_not_counted_done() {
    for firmware in [
        IntelbrasFirmware::V2,
        IntelbrasFirmware::V3,
        IntelbrasFirmware::V3Strict,
    ] {
        let sandbox = Sandbox::new();
        let fleet = intelbras(firmware);
        let device = &fleet.devices[0];
        let rows = people(20);
        device.drop_silently(&rows[7].registration);
        let ran = sandbox
            .enroll(&rows)
            .args(&["--json", "--cache", "none"])
            .kinded_devices(&fleet)
            .run();
        ran.expect_code(1);
        let report = ran.report();
        assert_eq!(report["registered"], 19, "{firmware:?}: {}", ran.shown);
        assert_eq!(report["failed"], 1, "{firmware:?}: {}", ran.shown);
        assert_eq!(
            report["failures"][0]["registration"],
            rows[7].registration.as_str()
        );
        let error = report["failures"][0]["error"].as_str().unwrap();
        assert!(
            error.contains("answered OK but, read back, does not hold"),
            "{error}"
        );
        let mut held = rows.clone();
        held.remove(7);
        assert_people(device, &held);
    }
}

fn hikvision(firmware: HikFirmware) -> Fleet {
    mixed_fleet(
        &[(Kind::Hikvision, 1)],
        SimConfig {
            hikvision_firmware: firmware,
            ..strict_digest()
        },
    )
}

/// `name` cut to `max` UTF-8 bytes at a character boundary, as the device holds it.
fn cut(name: &str, max: usize) -> String {
    let mut end = max.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

#[test]
fn long_names_are_cut_to_the_devices_limit_counted_once_and_not_rewritten() {
    let sandbox = Sandbox::new();
    let fleet = hikvision(HikFirmware {
        name_max: 20,
        ..HikFirmware::default()
    });
    let device = &fleet.devices[0];
    let rows = people(150);
    let long = rows.iter().filter(|r| r.name.len() > 20).count() as u64;
    assert!(long > 10, "the test needs long names");
    let run = || {
        sandbox
            .enroll(&rows)
            .args(&["--json", "--cache", "none"])
            .kinded_devices(&fleet)
            .run()
    };
    let first = run();
    first.expect_code(0);
    let report = first.report();
    assert_eq!(report["registered"], 150, "{}", first.shown);
    assert_eq!(
        report["per_device"][0]["names_truncated"], long,
        "{}",
        first.shown
    );
    let held: Vec<Row> = rows
        .iter()
        .map(|r| Row {
            name: cut(&r.name, 20),
            ..r.clone()
        })
        .collect();
    assert_people(device, &held);

    // The plan compares the cut name: nothing is rewritten.
    let records = requests(device, "user_record") + requests(device, "user_modify");
    let second = run();
    second.expect_code(0);
    let report = second.report();
    assert_eq!(report["unchanged"], 150, "{}", second.shown);
    assert_eq!(report["per_device"][0]["names_truncated"], 0);
    assert_eq!(
        requests(device, "user_record") + requests(device, "user_modify"),
        records
    );
}

#[test]
fn long_names_fail_when_the_device_file_says_so_and_the_others_go_on() {
    let sandbox = Sandbox::new();
    let fleet = hikvision(HikFirmware {
        name_max: 20,
        ..HikFirmware::default()
    });
    let rows = people(30);
    let file = devices_file(&sandbox, &fleet, "long_names = \"fail\"");
    let ran = sandbox
        .enroll(&rows)
        .args(&["--json", "--cache", "none", "--devices", &file])
        .run();
    ran.expect_code(1);
    let report = ran.report();
    let (short, long): (Vec<Row>, Vec<Row>) =
        rows.iter().cloned().partition(|r| r.name.len() <= 20);
    assert_eq!(report["registered"], short.len() as u64, "{}", ran.shown);
    assert_eq!(report["failed"], long.len() as u64, "{}", ran.shown);
    for failure in report["failures"].as_array().unwrap() {
        let error = failure["error"].as_str().unwrap();
        assert!(
            error.contains("this device takes at most 20") && error.contains("long_names"),
            "{error}"
        );
    }
    assert_people(&fleet.devices[0], &short);
}

#[test]
fn a_registration_the_device_cannot_take_fails_naming_the_limit_before_sending() {
    let sandbox = Sandbox::new();
    let fleet = hikvision(HikFirmware {
        employee_digits_only: true,
        ..HikFirmware::default()
    });
    let device = &fleet.devices[0];
    let mut rows = people(150);
    rows[4].registration = "A1001".into();
    let ran = sandbox
        .enroll(&rows)
        .args(&["--json", "--cache", "none"])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["registered"], 149, "{}", ran.shown);
    assert_eq!(report["failed"], 1, "{}", ran.shown);
    assert_eq!(report["failures"][0]["registration"], "A1001");
    assert!(
        report["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("this device takes digits only"),
        "{}",
        ran.shown
    );
    // Refused before sending: the device never saw it.
    assert_eq!(requests(device, "user_record"), 149);
    rows.remove(4);
    assert_people(device, &rows);
}

#[test]
fn firmware_without_detail_delete_removes_with_the_legacy_call() {
    let sandbox = Sandbox::new();
    let fleet = hikvision(HikFirmware {
        legacy_delete: true,
        ..HikFirmware::default()
    });
    let device = &fleet.devices[0];
    let mut rows = people(150);
    let run = |rows: &[Row], extra: &[&str]| {
        sandbox
            .enroll(rows)
            .args(&["--json", "--cache", "none"])
            .args(extra)
            .kinded_devices(&fleet)
            .run()
    };
    run(&rows, &[]).expect_code(0);
    rows.truncate(125);
    let pruned = run(
        &rows,
        &["--prune", "--prune-unmanaged", "--max-remove", "30"],
    );
    pruned.expect_code(0);
    assert_eq!(pruned.report()["removed"], 25, "{}", pruned.shown);
    assert_people(device, &rows);
    assert_eq!(requests(device, "user_delete"), 0);
    // 25 people in lists of at most 20.
    assert_eq!(requests(device, "user_delete_legacy"), 2);
}

#[test]
fn control_id_firmware_taking_lists_on_id_only_is_read_one_value_at_a_time() {
    let sandbox = Sandbox::new();
    let fleet = fleet(
        1,
        SimConfig {
            id_lists_only: true,
            ..SimConfig::default()
        },
    );
    let device = &fleet.devices[0];
    let mut rows = people(150);
    let run = |rows: &[Row]| {
        sandbox
            .enroll(rows)
            .args(&["--json", "--cache", "none"])
            .devices(&fleet)
            .run()
    };
    let first = run(&rows);
    first.expect_code(0);
    assert_eq!(first.report()["registered"], 150, "{}", first.shown);
    assert_holds_exactly(device, &rows);
    rows[2].name = "Outro Nome".into();
    rows[5].card = Some((3, 3333));
    let second = run(&rows);
    second.expect_code(0);
    let report = second.report();
    assert_eq!(
        (report["updated"].as_u64(), report["unchanged"].as_u64()),
        (Some(2), Some(148)),
        "{}",
        second.shown
    );
    assert_holds_exactly(device, &rows);
    // Every registration was looked up on its own after the first refusal.
    assert!(requests(device, "load_objects") > 300);
    let check = sandbox.catraca(&["check"]).devices(&fleet).run();
    check.expect_code(0);
    assert!(
        check
            .stdout
            .contains("where lists: refused on registration"),
        "{}",
        check.shown
    );
}

#[test]
fn a_command_refused_again_after_a_fresh_login_is_an_access_level_not_a_session() {
    let sandbox = Sandbox::new();
    let fleet = fleet(
        1,
        SimConfig {
            denied_commands: vec!["modify_objects".into()],
            ..SimConfig::default()
        },
    );
    let device = &fleet.devices[0];
    let mut rows = people(20);
    let run = |rows: &[Row]| {
        sandbox
            .enroll(rows)
            .args(&["--json", "--cache", "none"])
            .devices(&fleet)
            .run()
    };
    run(&rows).expect_code(0);
    rows[3].name = "Nome Mudado".into();
    let logins = requests(device, "login");
    let ran = run(&rows);
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["failed"], 1, "{}", ran.shown);
    let error = report["failures"][0]["error"].as_str().unwrap();
    assert!(error.contains("invalid access level"), "{error}");
    assert!(
        error.contains("Invalid access level for command modify_objects"),
        "{error}"
    );
    // One login for the run, one re-login after the first 401, then no loop.
    assert_eq!(requests(device, "login") - logins, 2, "{}", ran.shown);
}

#[test]
fn check_shows_the_generation_limits_and_nonce_uses_it_learned() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[(Kind::Hikvision, 1), (Kind::Intelbras, 1)],
        SimConfig {
            intelbras_firmware: IntelbrasFirmware::V3,
            hikvision_firmware: HikFirmware {
                name_max: 32,
                legacy_delete: true,
                ..HikFirmware::default()
            },
            ..strict_digest()
        },
    );
    let ran = sandbox
        .catraca(&["check", "--json"])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(0);
    let checks: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    let learned = |i: usize| checks[i]["learned"].to_string();
    assert!(
        learned(0).contains("name at most 32 bytes"),
        "{}",
        ran.shown
    );
    assert!(
        learned(0).contains("UserInfo/Delete (legacy)"),
        "{}",
        ran.shown
    );
    assert!(learned(0).contains("model DS-K1T671M"), "{}", ran.shown);
    assert!(
        learned(1).contains("firmware generation 3.x"),
        "{}",
        ran.shown
    );
    assert!(learned(1).contains("version=3.002") || learned(1).contains("software version 3.002"));
    for i in 0..2 {
        assert!(
            learned(i).contains("renewed after 2 uses; the device accepted up to"),
            "{}",
            ran.shown
        );
    }
    let text = sandbox.catraca(&["check"]).kinded_devices(&fleet).run();
    text.expect_code(0);
    assert!(
        text.stdout.contains("firmware generation 3.x"),
        "{}",
        text.shown
    );

    let help = sandbox.catraca(&["simulate", "--help"]).run();
    help.expect_code(0);
    for flag in [
        "--nonce-uses 2",
        "--firmware 2",
        "--firmware 3",
        "--legacy-delete",
        "--name-max 32",
    ] {
        assert!(help.stdout.contains(flag), "{flag}: {}", help.shown);
    }
}

#[test]
fn firmware_without_capabilities_gets_the_documented_limits_and_digits_only_is_learned() {
    let sandbox = Sandbox::new();
    let fleet = hikvision(HikFirmware {
        no_capabilities: true,
        employee_digits_only: true,
        name_max: 32,
        ..HikFirmware::default()
    });
    let device = &fleet.devices[0];
    let mut rows = people(150);
    rows[4].registration = "A1001".into();
    rows[90].registration = "A1002".into();
    rows[7].name = "Maria da Conceição Gonçalves de Magalhães".into();
    let ran = sandbox
        .enroll(&rows)
        .args(&["--json", "--cache", "none", "--sequential"])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["registered"], 148, "{}", ran.shown);
    assert_eq!(report["failed"], 2, "{}", ran.shown);
    for failure in report["failures"].as_array().unwrap() {
        let error = failure["error"].as_str().unwrap();
        assert!(error.contains("this device takes digits only"), "{error}");
    }
    // The first non-digit registration was refused by the device; the second was not
    // sent (one refused Record in all).
    assert_eq!(requests(device, "user_record"), 149, "{}", ran.shown);
    // No capabilities: names are cut to the documented 32 bytes.
    assert_eq!(
        report["per_device"][0]["names_truncated"], 1,
        "{}",
        ran.shown
    );
    let held: Vec<Row> = rows
        .iter()
        .filter(|r| r.registration.starts_with("2026"))
        .map(|r| Row {
            name: cut(&r.name, 32),
            ..r.clone()
        })
        .collect();
    assert_people(device, &held);
}
