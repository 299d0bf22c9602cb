//! `--trace-http` and the firmware fixtures: what real devices answered (or what a run
//! recorded), fed through the drivers' own parsers.

use crate::harness::*;
use catraca::device::auth_answer::{parse_challenge, pick_digest, UserCheck};
use catraca::device::hikvision_firmware::{reason, Limits};
use catraca::device::intelbras_answers::{field, find_token, name_of, records};
use catraca_sim::{IntelbrasFirmware, Kind, SimConfig};
use serde_json::Value;
use std::path::Path;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

fn body(line: &Value) -> &[u8] {
    line["response_body"].as_str().unwrap_or("").as_bytes()
}

fn texts(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Checks one recorded answer against what its `expect` says the parsers must read.
fn check(line: &Value, expect: &Value) {
    let shown = line["target"].as_str().unwrap_or("?");
    if let Some(n) = expect.get("records").and_then(Value::as_u64) {
        let found = records(body(line));
        assert_eq!(found.len() as u64, n, "{shown}");
        let column = |name: &str| -> Vec<&str> { found.iter().map(|r| field(r, name)).collect() };
        if let Some(ids) = expect.get("UserID") {
            assert_eq!(column("UserID"), texts(ids), "{shown}");
        }
        if let Some(cards) = expect.get("CardNo") {
            assert_eq!(column("CardNo"), texts(cards), "{shown}");
        }
        if let Some(names) = expect.get("names") {
            let got: Vec<&str> = found.iter().map(name_of).collect();
            assert_eq!(got, texts(names), "{shown}");
        }
    }
    if let Some(token) = expect.get("token") {
        let found = find_token(body(line));
        match token.as_str() {
            None => assert_eq!(found, None, "{shown}"),
            Some(token) => {
                let (got, total) = found.unwrap_or_else(|| panic!("{shown}: no token"));
                assert_eq!(got, token, "{shown}");
                assert_eq!(total, expect["total"].as_u64(), "{shown}");
            }
        }
    }
    if let Some(realm) = expect.get("digest_realm").and_then(Value::as_str) {
        let headers = line["response_headers"].as_array().expect("headers");
        let offered = headers
            .iter()
            .filter(|h| h[0].as_str() == Some("www-authenticate"))
            .filter_map(|h| h[1].as_str());
        let digest = pick_digest(offered).unwrap_or_else(|| panic!("{shown}: no Digest"));
        let challenge = parse_challenge(&digest).unwrap_or_else(|| panic!("{shown}: {digest}"));
        assert_eq!(challenge.realm, realm, "{shown}");
    }
    if let Some(want) = expect.get("user_check") {
        let got = UserCheck::parse(body(line)).unwrap_or_else(|| panic!("{shown}: no userCheck"));
        assert_eq!(
            got,
            UserCheck {
                retries_left: want["retries_left"].as_u64().map(|n| n as u32),
                locked: want["locked"].as_bool().unwrap(),
                unlock_in: want["unlock_in"].as_u64(),
            },
            "{shown}"
        );
    }
    if let Some(want) = expect.get("limits") {
        let got = Limits::read(Some(body(line)), None);
        assert!(got.reported, "{shown}");
        assert_eq!(
            got.employee_max as u64,
            want["employee_max"].as_u64().unwrap()
        );
        assert_eq!(got.name_max as u64, want["name_max"].as_u64().unwrap());
        assert_eq!(got.max_records, want["max_records"].as_u64());
        assert_eq!(
            got.search_page as u64,
            want["search_page"].as_u64().unwrap()
        );
        assert_eq!(got.list_size as u64, want["list_size"].as_u64().unwrap());
    }
    if let Some(want) = expect.get("access_limits") {
        let got = Limits::read(None, Some(body(line)));
        assert_eq!(
            got.employee_digits_only,
            want["employee_digits_only"].as_bool().unwrap(),
            "{shown}"
        );
        assert_eq!(
            got.detail_delete,
            want["detail_delete"].as_bool(),
            "{shown}"
        );
    }
    if let Some(words) = expect.get("reason").and_then(Value::as_str) {
        let parsed: Value = serde_json::from_slice(body(line)).expect("an ISAPI error body");
        let sub = parsed["subStatusCode"].as_str().expect("a subStatusCode");
        let why = reason(sub).unwrap_or_else(|| panic!("{shown}: no reason for {sub}"));
        assert!(why.contains(words), "{shown}: {why}");
    }
}

#[test]
fn every_firmware_fixture_answer_goes_through_the_driver_parsers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/firmware");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("the fixtures directory") {
        let path = entry.expect("an entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        for line in lines(&path) {
            let expect = line.get("expect").cloned().unwrap_or(Value::Null);
            assert!(
                !expect.is_null(),
                "{}: a fixture line says what to expect",
                path.display()
            );
            check(&line, &expect);
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} fixture answers");
}

#[test]
fn trace_http_records_every_exchange_without_secrets() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[
            (Kind::Controlid, 1),
            (Kind::Hikvision, 1),
            (Kind::Intelbras, 1),
        ],
        SimConfig {
            intelbras_firmware: IntelbrasFirmware::V2,
            nonce_uses: Some(2),
            ..SimConfig::default()
        },
    );
    let rows = people(12);
    let trace = sandbox.path("trace.jsonl");
    let ran = sandbox
        .enroll(&rows)
        .args(&[
            "--json",
            "--cache",
            "none",
            "--trace-http",
            trace.to_str().unwrap(),
        ])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(0);
    let text = std::fs::read_to_string(&trace).expect("a trace");
    let sent: u64 = fleet.devices.iter().map(|d| d.stats().total).sum();
    let recorded = lines(&trace);
    assert_eq!(recorded.len() as u64, sent, "one line per exchange");
    assert!(!text.contains(PASSWORD), "the password is in the trace");
    assert!(
        !text.to_ascii_lowercase().contains("authorization"),
        "{text}"
    );
    let logins: Vec<&Value> = recorded
        .iter()
        .filter(|l| l["target"].as_str().unwrap().starts_with("/login.fcgi"))
        .collect();
    assert!(!logins.is_empty());
    for login in logins {
        assert!(login["request_body"].as_str().unwrap().contains("REDACTED"));
        assert!(login["response_body"]
            .as_str()
            .unwrap()
            .contains("REDACTED"));
    }
    for line in &recorded {
        let target = line["target"].as_str().unwrap();
        if target.contains("session=") {
            assert!(target.contains("session=REDACTED"), "{target}");
        }
        // A recorded Intelbras list reads back through the driver's parser.
        if target.starts_with("/cgi-bin/AccessUser.cgi?action=list") && line["status"] == 200 {
            let found = records(body(line));
            assert!(
                found.iter().all(|r| !field(r, "UserID").is_empty()),
                "{target}"
            );
        }
    }
    // A 401 carries its challenge: what a bug report about Digest needs.
    assert!(recorded.iter().any(|l| l["status"] == 401
        && l["response_headers"]
            .to_string()
            .contains("www-authenticate")));

    let checked = sandbox.path("check.jsonl");
    let check = sandbox
        .catraca(&["check", "--trace-http", checked.to_str().unwrap()])
        .kinded_devices(&fleet)
        .run();
    check.expect_code(0);
    assert!(!lines(&checked).is_empty(), "{}", check.shown);
}
