//! `catraca check`: the preflight, against simulated devices that are fine, switched
//! off, or that refuse the password.

use crate::harness::*;
use catraca_sim::{Kind, SimConfig};
use serde_json::Value;

#[test]
fn every_device_ready_is_exit_0_with_the_people_counted() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    for i in 0..1234 {
        fleet.devices[1].insert_user(&format!("R{i}"), "Someone");
    }
    let ran = sandbox.catraca(&["check", "--json"]).devices(&fleet).run();
    ran.expect_code(0);
    let checks: Value = serde_json::from_str(&ran.stdout).unwrap();
    let checks = checks.as_array().unwrap();
    assert_eq!(checks.len(), 2);
    for c in checks {
        assert_eq!(c["ready"], true, "{c}");
        assert_eq!(c["login_ok"], true);
        assert!(c["round_trip_ms"].as_f64().unwrap() > 0.0);
        // The simulator's clock is this machine's.
        assert!(c["clock_drift_s"].as_i64().unwrap().abs() <= 1, "{c}");
    }
    assert_eq!(checks[0]["people"], 0);
    assert_eq!(checks[1]["people"], 1234, "counted across pages of 1000");
    for device in &fleet.devices {
        assert_eq!(requests(device, "create_objects"), 0, "check only reads");
    }
}

#[test]
fn a_device_down_and_a_wrong_password_are_named_and_exit_1() {
    let sandbox = Sandbox::new();
    let fleet = fleet(3, SimConfig::default());
    fleet.devices[0].insert_user("A-1", "Ana");
    fleet.devices[2].set_down(true);
    let devices = sandbox.write(
        "devices.toml",
        format!(
            "[[device]]\nname = \"portaria-1\"\nurl = \"{}\"\n\n\
             [[device]]\nname = \"portaria-2\"\nurl = \"{}\"\npassword_env = \"PORTARIA_2_PASSWORD\"\n\n\
             [[device]]\nname = \"portaria-3\"\nurl = \"{}\"\n",
            fleet.devices[0].url(),
            fleet.devices[1].url(),
            fleet.devices[2].url()
        ),
    );
    let ran = sandbox
        .catraca(&["check", "--devices", devices.to_str().unwrap()])
        .env("PORTARIA_2_PASSWORD", "not-the-password")
        .run();
    ran.expect_code(1);
    let line = |name: &str| {
        ran.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}\n{}", ran.shown))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let ok = line("portaria-1");
    assert!(
        ok.starts_with("portaria-1 yes ok") && ok.ends_with("ready"),
        "{ok}"
    );
    assert!(ok.contains(" 1 "), "one person: {ok}");
    let refused = line("portaria-2");
    assert!(refused.starts_with("portaria-2 yes refused"), "{refused}");
    assert!(refused.ends_with("NOT READY"), "{refused}");
    let down = line("portaria-3");
    assert!(down.starts_with("portaria-3 no -"), "{down}");
    assert!(ran.stdout.contains("PORTARIA_2_PASSWORD"), "{}", ran.shown);
    assert!(!ran.stdout.contains("not-the-password"), "{}", ran.shown);
    // A switched-off simulator resets every connection.
    assert!(
        ran.stdout.contains("portaria-3 (http://127.0.0.1:") && ran.stdout.contains("connection"),
        "{}",
        ran.shown
    );
    assert!(ran.stdout.contains("1 of 3 devices ready"), "{}", ran.shown);
    assert_eq!(
        requests(&fleet.devices[1], "login"),
        1,
        "a refused login is never repeated"
    );
}

#[test]
fn other_vendors_are_checked_by_a_read_only_lookup() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[(Kind::Hikvision, 1), (Kind::Intelbras, 1)],
        SimConfig::default(),
    );
    let ran = sandbox
        .catraca(&["check", "--json"])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(0);
    let checks: Value = serde_json::from_str(&ran.stdout).unwrap();
    for c in checks.as_array().unwrap() {
        assert_eq!(c["ready"], true, "{c}");
        assert_eq!(
            c["people"],
            Value::Null,
            "not counted by the generic check: {c}"
        );
        assert!(c["round_trip_ms"].as_f64().is_some(), "{c}");
    }
}

#[test]
fn a_device_clock_ten_minutes_off_is_warned_about() {
    let sandbox = Sandbox::new();
    let fleet = fleet(
        2,
        SimConfig {
            clock_offset_s: 600,
            ..SimConfig::default()
        },
    );
    let ran = sandbox.catraca(&["check", "--json"]).devices(&fleet).run();
    let checks: Value = serde_json::from_str(&ran.stdout).unwrap();
    for c in checks.as_array().unwrap() {
        let drift = c["clock_drift_s"].as_i64().unwrap();
        assert!((598..=602).contains(&drift.abs()), "{c}");
        assert!(!c["warnings"].as_array().unwrap().is_empty(), "{c}");
    }
    let human = sandbox.catraca(&["check"]).devices(&fleet).run();
    assert!(
        human.stdout.contains("10 min") || human.stdout.contains("600"),
        "{}",
        human.shown
    );
    eprintln!("{}", human.stdout);
    assert_eq!(human.code, ran.code);
}
