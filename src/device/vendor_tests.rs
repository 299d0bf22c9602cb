//! The Hikvision and Intelbras simulators (`catraca_sim`) as a driver meets them: real
//! HTTP on loopback, real Digest (signed by the drivers' own client), one behaviour per
//! test. Here in the product, not in the simulator's crate, because they drive catraca's
//! client: the simulator does not depend on the product.

use std::net::{Ipv4Addr, SocketAddr};

use serde_json::{json, Value};

use catraca_sim::{IntelbrasFirmware, Kind, SimConfig, SimDevice};

use crate::device::digest::DigestClient;
use crate::device::http::{HttpClient, Timeouts};
use crate::device::{Credentials, DeviceError, RetryPolicy};

fn device(kind: Kind, config: SimConfig) -> SimDevice {
    SimDevice::start_kind(
        "test",
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        kind,
        config,
    )
    .unwrap()
}

fn client(device: &SimDevice, password: &str) -> DigestClient {
    DigestClient::new(
        "test",
        &device.url(),
        Credentials {
            login: "admin".into(),
            password: password.into(),
            source: "the test".into(),
        },
        HttpClient::new(Timeouts::default(), 2, Default::default()),
        RetryPolicy {
            retries: 0,
            ..RetryPolicy::default()
        },
    )
}

/// Sends and returns (status, body as text).
fn send(client: &DigestClient, method: &str, target: &str, body: Option<&Value>) -> (u16, String) {
    let text = body.map(Value::to_string);
    let answer = client
        .send(
            method,
            target,
            text.as_deref().map(|t| ("application/json", t.as_bytes())),
        )
        .expect("an answer");
    (
        answer.status,
        String::from_utf8_lossy(&answer.body).into_owned(),
    )
}

fn isapi(client: &DigestClient, method: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, text) = send(client, method, &format!("{path}?format=json"), Some(&body));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn user(employee: &str, name: &str) -> Value {
    json!({"employeeNo": employee, "name": name, "userType": "normal",
        "Valid": {"enable": true, "beginTime": "2026-01-01T00:00:00", "endTime": "2026-12-31T23:59:59", "timeType": "local"}})
}

const RECORD: &str = "/ISAPI/AccessControl/UserInfo/Record";

#[test]
fn a_request_without_credentials_gets_a_digest_challenge() {
    let device = device(Kind::Hikvision, SimConfig::default());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .post(format!("{}{RECORD}?format=json", device.url()))
        .send("{}")
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Digest ") && challenge.contains("qop=\"auth\""),
        "{challenge}"
    );
    assert!(device.people().is_empty());
}

#[test]
fn hikvision_takes_one_person_per_request_and_keys_them_by_employee_no() {
    let device = device(Kind::Hikvision, SimConfig::default());
    let c = client(&device, "admin");
    let (status, body) = isapi(
        &c,
        "POST",
        RECORD,
        json!({"UserInfo": [user("1", "A"), user("2", "B")]}),
    );
    assert_eq!(
        (status, body["statusCode"].as_i64()),
        (400, Some(6)),
        "{body}"
    );
    assert!(device.people().is_empty(), "a refused array stores nothing");
    let (status, body) = isapi(&c, "POST", RECORD, json!({"UserInfo": user("1", "A")}));
    assert_eq!(
        (status, body["statusCode"].as_i64()),
        (200, Some(1)),
        "{body}"
    );
    let (status, body) = isapi(&c, "POST", RECORD, json!({"UserInfo": user("1", "A2")}));
    assert_eq!(
        (status, body["subStatusCode"].as_str()),
        (400, Some("employeeNoAlreadyExist"))
    );
    let (_, body) = isapi(
        &c,
        "PUT",
        "/ISAPI/AccessControl/UserInfo/Modify",
        json!({"UserInfo": user("9", "Z")}),
    );
    assert_eq!(body["subStatusCode"], "employeeNoNotExist");
    let (_, body) = isapi(
        &c,
        "POST",
        "/ISAPI/AccessControl/CardInfo/Record",
        json!({"CardInfo": {"employeeNo": "9", "cardNo": "123", "cardType": "normalCard"}}),
    );
    assert_eq!(body["subStatusCode"], "employeeNoNotExist");
    let card = json!({"CardInfo": {"employeeNo": "1", "cardNo": "123", "cardType": "normalCard"}});
    assert_eq!(
        isapi(
            &c,
            "POST",
            "/ISAPI/AccessControl/CardInfo/Record",
            card.clone()
        )
        .0,
        200
    );
    let (_, body) = isapi(&c, "POST", "/ISAPI/AccessControl/CardInfo/Record", card);
    assert_eq!(body["subStatusCode"], "cardNoAlreadyExist");
    let people = device.people();
    assert_eq!(people.len(), 1);
    assert_eq!(
        (people[0].cards.clone(), people[0].begin.as_str()),
        (vec!["123".to_string()], "2026-01-01T00:00:00")
    );
}

#[test]
fn hikvision_searches_page_by_thirty() {
    let device = device(Kind::Hikvision, SimConfig::default());
    let c = client(&device, "admin");
    for i in 0..35 {
        assert_eq!(
            isapi(
                &c,
                "POST",
                RECORD,
                json!({"UserInfo": user(&i.to_string(), "P")})
            )
            .0,
            200
        );
    }
    let search = |position: usize| {
        isapi(
            &c,
            "POST",
            "/ISAPI/AccessControl/UserInfo/Search",
            json!({"UserInfoSearchCond": {
            "searchID": "s", "searchResultPosition": position, "maxResults": 100}}),
        )
        .1
    };
    let first = &search(0)["UserInfoSearch"];
    assert_eq!(
        (
            first["responseStatusStrg"].as_str(),
            first["numOfMatches"].as_u64()
        ),
        (Some("MORE"), Some(30))
    );
    let last = &search(30)["UserInfoSearch"];
    assert_eq!(
        (
            last["responseStatusStrg"].as_str(),
            last["numOfMatches"].as_u64()
        ),
        (Some("OK"), Some(5))
    );
    let none = isapi(&c, "POST", "/ISAPI/AccessControl/UserInfo/Search", json!({"UserInfoSearchCond": {
        "searchID": "t", "searchResultPosition": 0, "maxResults": 30, "EmployeeNoList": [{"employeeNo": "x"}]}})).1;
    assert_eq!(none["UserInfoSearch"]["responseStatusStrg"], "NO MATCH");
}

#[test]
fn a_full_hikvision_says_user_exceed_limit_and_a_busy_one_status_code_2() {
    let device = device(
        Kind::Hikvision,
        SimConfig {
            capacity: Some(1),
            ..SimConfig::default()
        },
    );
    let c = client(&device, "admin");
    assert_eq!(
        isapi(&c, "POST", RECORD, json!({"UserInfo": user("1", "A")})).0,
        200
    );
    let (status, body) = isapi(&c, "POST", RECORD, json!({"UserInfo": user("2", "B")}));
    assert_eq!(
        (status, body["subStatusCode"].as_str()),
        (400, Some("userExceedLimit"))
    );
    device.busy_next(1);
    let (status, body) = isapi(&c, "POST", RECORD, json!({"UserInfo": user("1", "A")}));
    assert_eq!(
        (status, body["statusCode"].as_i64()),
        (503, Some(2)),
        "{body}"
    );
}

fn users(ids: std::ops::Range<u32>) -> Value {
    let list: Vec<Value> = ids
        .map(|i| {
            json!({"UserID": i.to_string(), "UserName": format!("P{i}"), "UserType": 0,
            "ValidFrom": "2026-01-01 00:00:00", "ValidTo": "2026-12-31 23:59:59"})
        })
        .collect();
    json!({ "UserList": list })
}

const INSERT: &str = "/cgi-bin/AccessUser.cgi?action=insertMulti";
const BAD_REQUEST: &str = "Error\r\nBad Request!\r\n";

#[test]
fn intelbras_takes_ten_users_a_call_and_answers_in_plain_text() {
    let device = device(Kind::Intelbras, SimConfig::default());
    let c = client(&device, "admin");
    assert_eq!(
        send(&c, "POST", INSERT, Some(&users(0..11))),
        (400, BAD_REQUEST.into())
    );
    assert!(device.people().is_empty(), "a refused call stores nothing");
    assert_eq!(
        send(&c, "POST", INSERT, Some(&users(0..10))),
        (200, "OK\r\n".into())
    );
    assert_eq!(
        send(&c, "POST", INSERT, Some(&users(9..12))).0,
        400,
        "9 is there"
    );
    let update = "/cgi-bin/AccessUser.cgi?action=updateMulti";
    assert_eq!(
        send(&c, "POST", update, Some(&users(9..12))).0,
        400,
        "11 is not"
    );
    assert_eq!(send(&c, "POST", update, Some(&users(5..9))).0, 200);
    let (status, list) = send(
        &c,
        "GET",
        "/cgi-bin/AccessUser.cgi?action=list&UserIDList%5B0%5D=3",
        None,
    );
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        (status, list["UserList"][0]["UserName"].as_str()),
        (200, Some("P3"))
    );
    let cards = "/cgi-bin/AccessCard.cgi?action=insertMulti";
    let card = |user: &str, no: &str| json!({"CardList": [{"UserID": user, "CardNo": no, "CardType": 0, "CardStatus": 0}]});
    assert_eq!(
        send(&c, "POST", cards, Some(&card("3", "12ea3004"))).0,
        400,
        "lowercase hex"
    );
    assert_eq!(
        send(&c, "POST", cards, Some(&card("77", "12EA3004"))).0,
        400,
        "no such user"
    );
    assert_eq!(send(&c, "POST", cards, Some(&card("3", "12EA3004"))).0, 200);
    assert_eq!(
        send(&c, "POST", cards, Some(&card("4", "12EA3004"))).0,
        400,
        "duplicate card"
    );
    assert_eq!(
        send(&c, "GET", "/cgi-bin/AccessUser.cgi?action=frobnicate", None).0,
        501
    );
    let three = device.people().into_iter().find(|p| p.key == "3").unwrap();
    assert_eq!(three.cards, ["12EA3004"]);
    assert_eq!(
        (three.begin.as_str(), three.end.as_str()),
        ("2026-01-01 00:00:00", "2026-12-31 23:59:59")
    );
}

#[test]
fn a_wrong_password_is_refused_once_then_the_client_stops_asking() {
    for kind in [Kind::Hikvision, Kind::Intelbras] {
        let device = device(
            kind,
            SimConfig {
                lockout_after: 3,
                ..SimConfig::default()
            },
        );
        let c = client(&device, "wrong");
        let first = c
            .send("GET", "/cgi-bin/AccessUser.cgi?action=list", None)
            .err()
            .expect("refused");
        assert!(matches!(first, DeviceError::LoginRefused { .. }), "{first}");
        let sent = device.stats().total;
        let again = c
            .send("GET", "/cgi-bin/AccessUser.cgi?action=list", None)
            .err()
            .expect("refused");
        assert_eq!(again, first);
        assert_eq!(device.stats().total, sent, "{kind}: nothing more is sent");
        assert_eq!(device.stats().count("auth_refused"), 1, "{kind}");
        assert_eq!(
            device.stats().count("auth_locked"),
            0,
            "{kind}: the account is not locked"
        );
    }
}

#[test]
fn a_nonce_is_renewed_before_the_devices_limit_without_any_refusal() {
    for kind in [Kind::Hikvision, Kind::Intelbras] {
        let device = device(
            kind,
            SimConfig {
                nonce_uses: Some(2),
                offer_basic: true,
                ..SimConfig::default()
            },
        );
        let c = client(&device, "admin");
        for _ in 0..9 {
            assert_eq!(
                send(&c, "GET", "/cgi-bin/AccessUser.cgi?action=count", None).0,
                if kind == Kind::Hikvision { 404 } else { 501 },
                "{kind}"
            );
        }
        let stats = device.stats();
        assert_eq!(stats.count("nonce_exhausted"), 0, "{kind}");
        assert_eq!(stats.count("auth_refused"), 0, "{kind}");
        // 9 signed requests, 2 per nonce: 5 challenges fetched without credentials.
        assert_eq!(stats.total, 9 + 5, "{kind}");
        let facts = c.nonce_facts();
        assert_eq!((facts.limit, facts.most_uses_accepted), (2, 2));
        assert_eq!((facts.challenges, facts.exhausted), (5, 0));
    }
}

#[test]
fn a_nonce_refused_before_the_clients_limit_is_renewed_not_taken_for_a_wrong_password() {
    let device = device(
        Kind::Hikvision,
        SimConfig {
            nonce_uses: Some(1),
            ..SimConfig::default()
        },
    );
    let mut c = client(&device, "admin");
    c.set_nonce_uses(3);
    for _ in 0..6 {
        assert_eq!(
            send(
                &c,
                "GET",
                "/ISAPI/AccessControl/UserInfo/capabilities?format=json",
                None
            )
            .0,
            200
        );
    }
    let stats = device.stats();
    assert!(stats.count("nonce_exhausted") > 0);
    assert_eq!(stats.count("auth_refused"), 0);
    assert!(c.nonce_facts().exhausted > 0);
}

#[test]
fn a_locked_account_is_named_with_its_minutes_and_nothing_more_is_sent() {
    let device = device(
        Kind::Hikvision,
        SimConfig {
            lockout_after: 1,
            ..SimConfig::default()
        },
    );
    // Another client (a colleague with an old password) locks the account.
    assert!(client(&device, "old")
        .send(
            "GET",
            "/ISAPI/AccessControl/UserInfo/capabilities?format=json",
            None
        )
        .is_err());
    let c = client(&device, "admin");
    let locked = c
        .send(
            "GET",
            "/ISAPI/AccessControl/UserInfo/capabilities?format=json",
            None,
        )
        .err()
        .expect("locked");
    assert!(
        locked
            .to_string()
            .contains("device test: account locked for 30 min"),
        "{locked}"
    );
    let sent = device.stats().total;
    assert!(c
        .send(
            "GET",
            "/ISAPI/AccessControl/UserInfo/capabilities?format=json",
            None
        )
        .is_err());
    assert_eq!(device.stats().total, sent, "nothing more is sent");
    // The challenge's userCheck said `lock`: no credentials were sent, so the lock was
    // not started again.
    assert_eq!(device.stats().count("auth_locked"), 0);
}

#[test]
fn stale_nonces_are_renewed_without_counting_as_refusals() {
    let device = device(
        Kind::Intelbras,
        SimConfig {
            session_expiry_after: Some(2),
            ..SimConfig::default()
        },
    );
    let c = client(&device, "admin");
    for _ in 0..7 {
        assert_eq!(
            send(&c, "GET", "/cgi-bin/AccessUser.cgi?action=list", None).0,
            200
        );
    }
    assert_eq!(device.stats().count("auth_refused"), 0);
    assert_eq!(
        device.stats().count("user_list"),
        7 + 1 + 3,
        "first challenge and three renewals"
    );
}

fn intelbras_with(firmware: IntelbrasFirmware) -> (SimDevice, DigestClient) {
    let device = device(
        Kind::Intelbras,
        SimConfig {
            intelbras_firmware: firmware,
            ..SimConfig::default()
        },
    );
    let c = client(&device, "admin");
    let users = json!({"UserList": [
        {"UserID": "1001", "UserName": "Ana Souza", "ValidFrom": "2026-01-01 00:00:00", "ValidTo": "2026-12-31 23:59:59"},
        {"UserID": "1002", "UserName": "Bia", "ValidFrom": "2026-01-01 00:00:00", "ValidTo": "2026-12-31 23:59:59"},
    ]});
    let cards = json!({"CardList": [{"UserID": "1001", "CardNo": "2B0BC4"}]});
    assert_eq!(
        send(
            &c,
            "POST",
            "/cgi-bin/AccessUser.cgi?action=insertMulti",
            Some(&users)
        )
        .0,
        200
    );
    assert_eq!(
        send(
            &c,
            "POST",
            "/cgi-bin/AccessCard.cgi?action=insertMulti",
            Some(&cards)
        )
        .0,
        200
    );
    (device, c)
}

#[test]
fn intelbras_2x_lists_in_flat_text_and_has_no_searches() {
    let (device, c) = intelbras_with(IntelbrasFirmware::V2);
    let (status, users) = send(&c, "GET", "/cgi-bin/AccessUser.cgi?action=list", None);
    assert_eq!(status, 200);
    assert!(users.starts_with("found=2\r\nrecords[0]."), "{users}");
    assert!(
        users.contains("records[0].UserName=Ana Souza\r\n"),
        "{users}"
    );
    let (_, cards) = send(
        &c,
        "GET",
        "/cgi-bin/AccessCard.cgi?action=list&UserIDList[0]=1001",
        None,
    );
    assert!(!cards.contains("found="), "{cards}");
    assert!(cards.contains("Cards[0].CardNo=2B0BC4"), "{cards}");
    assert_eq!(
        send(&c, "GET", "/cgi-bin/AccessUser.cgi?action=startFind", None).0,
        501
    );
    assert_eq!(device.open_searches(), 0);
}

#[test]
fn intelbras_3x_searches_with_tokens_and_refuses_an_unfiltered_list() {
    let (device, c) = intelbras_with(IntelbrasFirmware::V3);
    let (status, body) = send(&c, "GET", "/cgi-bin/AccessUser.cgi?action=list", None);
    assert_eq!((status, body.as_str()), (400, "Error\r\nBad Request!\r\n"));
    let (_, start) = send(&c, "GET", "/cgi-bin/AccessUser.cgi?action=startFind", None);
    let start: Value = serde_json::from_str(&start).unwrap();
    assert_eq!(start["Total"], 2);
    let token = start["Token"].to_string();
    assert_eq!(device.open_searches(), 1);
    let (_, page) = send(
        &c,
        "GET",
        &format!("/cgi-bin/AccessUser.cgi?action=doFind&Token={token}&Offset=1&Count=100"),
        None,
    );
    let page: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["Info"][0]["UserID"], "1002");
    assert_eq!(
        send(
            &c,
            "GET",
            &format!("/cgi-bin/AccessUser.cgi?action=stopFind&Token={token}"),
            None
        )
        .0,
        200
    );
    assert_eq!(device.open_searches(), 0);
    let (_, cards) = send(
        &c,
        "GET",
        "/cgi-bin/AccessCard.cgi?action=startFind&Condition.UserID=1002",
        None,
    );
    assert!(cards.contains("\"Total\":0"), "{cards}");
}

#[test]
fn both_intelbras_firmware_answer_ok_to_clearing_a_card_and_keep_it() {
    for firmware in [IntelbrasFirmware::V2, IntelbrasFirmware::V3] {
        let (device, c) = intelbras_with(firmware);
        let clear = json!({"CardList": [{"UserID": "1001", "CardNo": ""}]});
        assert_eq!(
            send(
                &c,
                "POST",
                "/cgi-bin/AccessCard.cgi?action=updateMulti",
                Some(&clear)
            ),
            (200, "OK\r\n".to_string())
        );
        let ana = device
            .people()
            .into_iter()
            .find(|p| p.key == "1001")
            .unwrap();
        assert_eq!(ana.cards, ["2B0BC4"], "{firmware:?}");
    }
}

#[test]
fn a_used_up_nonce_refused_without_a_challenge_is_renewed_by_asking_again() {
    let device = device(
        Kind::Hikvision,
        SimConfig {
            nonce_uses: Some(1),
            exhausted_without_challenge: true,
            ..SimConfig::default()
        },
    );
    let mut c = client(&device, "admin");
    c.set_nonce_uses(2);
    for _ in 0..6 {
        assert_eq!(
            send(
                &c,
                "GET",
                "/ISAPI/AccessControl/UserInfo/capabilities?format=json",
                None
            )
            .0,
            200
        );
    }
    let stats = device.stats();
    assert!(stats.count("nonce_exhausted") > 0);
    assert_eq!(stats.count("auth_refused"), 0);
}
