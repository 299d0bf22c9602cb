//! The simulator as a driver meets it: real HTTP over loopback with a ureq client,
//! one behaviour per test, each on its own device and port so they run in parallel.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

fn device(config: SimConfig) -> SimDevice {
    SimDevice::start("test", SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).unwrap()
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// Every byte but letters and digits as `%XX`: stricter than needed, never wrong.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A client of one device with the habits a driver should have.
struct Client {
    agent: ureq::Agent,
    base: String,
    session: String,
}

impl Client {
    fn new(device: &SimDevice) -> Client {
        Client::with_timeout(device, Duration::from_secs(5))
    }

    fn with_timeout(device: &SimDevice, timeout: Duration) -> Client {
        Client {
            agent: agent(timeout),
            base: device.url(),
            session: String::new(),
        }
    }

    /// Posts raw text; a transport failure (reset, timeout) is the `Err`.
    fn post_raw(&self, path: &str, body: &str) -> Result<(u16, String), ureq::Error> {
        let mut response = self
            .agent
            .post(format!("{}{path}", self.base))
            .content_type("application/json")
            .send(body)?;
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_to_string()?))
    }

    fn try_call(&self, command: &str, body: &Value) -> Result<(u16, String), ureq::Error> {
        let path = format!("/{command}.fcgi?session={}", encode(&self.session));
        self.post_raw(&path, &body.to_string())
    }

    /// A call that must get an answer; the body is parsed as JSON (null when empty).
    fn call(&self, command: &str, body: Value) -> (u16, Value) {
        let (status, text) = self.try_call(command, &body).expect("an answer");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"))
        };
        (status, json)
    }

    fn login(&mut self) -> &mut Client {
        let (status, body) = self
            .post_raw("/login.fcgi", r#"{"login":"admin","password":"admin"}"#)
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        self.session = body["session"].as_str().unwrap().to_owned();
        self
    }

    fn create(&self, object: &str, values: Value) -> (u16, Value) {
        self.call(
            "create_objects",
            json!({"object": object, "values": values}),
        )
    }

    fn load(&self, request: Value) -> Vec<Value> {
        let object = request["object"].as_str().unwrap().to_owned();
        let (status, body) = self.call("load_objects", request);
        assert_eq!(status, 200, "{body}");
        body[object].as_array().unwrap().clone()
    }
}

fn error_of(answer: (u16, Value)) -> (u16, String) {
    assert_eq!(answer.1["code"], 1, "{}", answer.1);
    (answer.0, answer.1["error"].as_str().unwrap().to_owned())
}

fn slow(latency_ms: u64) -> SimConfig {
    SimConfig {
        latency: Duration::from_millis(latency_ms),
        ..SimConfig::default()
    }
}

#[test]
fn login_gives_a_session_and_wrong_credentials_get_401() {
    let device = device(SimConfig::default());
    let mut client = Client::new(&device);
    client.login();
    assert_eq!(client.session.len(), 24);
    let (status, body) = client.call("session_is_valid", json!({}));
    assert_eq!((status, body), (200, json!({"session_is_valid": true})));

    let (status, body) = client
        .post_raw("/login.fcgi", r#"{"login":"admin","password":"nope"}"#)
        .unwrap();
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "Invalid login or password", "code": 1})
    );

    assert_eq!(client.call("logout", json!({})), (200, Value::Null));
    let (status, body) = client.call("load_objects", json!({"object": "users"}));
    assert_eq!(
        (status, body),
        (401, json!({"error": "Invalid session", "code": 1}))
    );
    assert_eq!(device.stats().count("login"), 2);
}

#[test]
fn tokens_carry_slash_and_plus_and_work_only_url_encoded() {
    let device = device(SimConfig::default());
    let mut client = Client::new(&device);
    let (mut slash, mut plus) = (false, false);
    for _ in 0..300 {
        client.login();
        let token = client.session.clone();
        if token.contains('/') {
            slash = true;
            assert_eq!(
                client.call("session_is_valid", json!({})).1["session_is_valid"],
                true
            );
        }
        if token.contains('+') {
            plus = true;
            let raw = client
                .post_raw(
                    &format!("/load_objects.fcgi?session={token}"),
                    r#"{"object":"users"}"#,
                )
                .unwrap();
            assert_eq!(raw.0, 401, "an unencoded + reads as a space");
            assert_eq!(
                client.call("load_objects", json!({"object": "users"})).0,
                200
            );
        }
        if slash && plus {
            return;
        }
    }
    panic!("300 tokens without both / and +: the alphabet is wrong");
}

#[test]
fn created_users_load_back_through_an_in_list() {
    let device = device(SimConfig::default());
    let mut client = Client::new(&device);
    client.login();
    let people = json!([
        {"registration": "A-1001", "name": "Ana Souza", "begin_time": 0, "end_time": 0},
        {"registration": "A-1002", "name": "Bruno Lima", "begin_time": 10, "end_time": 20},
        {"registration": "A-1003", "name": "Caio Prado", "begin_time": 0, "end_time": 0},
    ]);
    let (status, body) = client.create("users", people);
    assert_eq!((status, body), (200, json!({"ids": [1, 2, 3]})));

    let rows = client.load(json!({
        "object": "users",
        "fields": ["id", "registration", "name", "begin_time", "end_time"],
        "where": {"users": {"registration": ["A-1002", "A-1003", "Z-9"]}},
    }));
    assert_eq!(
        rows,
        [
            json!({"id": 2, "registration": "A-1002", "name": "Bruno Lima", "begin_time": 10, "end_time": 20}),
            json!({"id": 3, "registration": "A-1003", "name": "Caio Prado", "begin_time": 0, "end_time": 0}),
        ]
    );
    let by_id =
        client.load(json!({"object": "users", "fields": ["name"], "where": {"users": {"id": 1}}}));
    assert_eq!(by_id, [json!({"name": "Ana Souza"})]);
    let none =
        client.load(json!({"object": "users", "where": {"users": {"registration": "nobody"}}}));
    assert!(none.is_empty());
    let page = client.load(json!({"object": "users", "fields": ["id"], "order": ["descending", "id"], "limit": 2, "offset": 1}));
    assert_eq!(page, [json!({"id": 2}), json!({"id": 1})]);
    assert_eq!(device.stats().created["users"], 3);
    assert_eq!(device.users()[1].name, "Bruno Lima");
}

#[test]
fn duplicate_registrations_are_stored() {
    let device = device(SimConfig::default());
    let seeded = device.insert_user("A-1", "Put There Before");
    let mut client = Client::new(&device);
    client.login();
    let (status, body) = client.create("users", json!([{"registration": "A-1", "name": "Ana"}]));
    assert_eq!((status, body), (200, json!({"ids": [seeded + 1]})));
    let rows = client.load(json!({"object": "users", "where": {"users": {"registration": "A-1"}}}));
    assert_eq!(rows.len(), 2);
}

#[test]
fn a_bad_row_fails_the_whole_batch_and_stores_nothing() {
    let device = device(SimConfig::default());
    let mut client = Client::new(&device);
    client.login();
    client.create("users", json!([{"name": "Ana"}]));
    client.create("cards", json!([{"value": 528281023086u64, "user_id": 1}]));

    let taken_value = client.create(
        "cards",
        json!([{"value": 1, "user_id": 1}, {"value": 528281023086u64, "user_id": 1}]),
    );
    assert_eq!(
        error_of(taken_value),
        (400, "UNIQUE constraint failed: cards.value".into())
    );
    let repeated_in_batch = client.create(
        "cards",
        json!([{"value": 5, "user_id": 1}, {"value": 5, "user_id": 1}]),
    );
    assert_eq!(
        error_of(repeated_in_batch).1,
        "UNIQUE constraint failed: cards.value"
    );
    let missing_user = client.create(
        "cards",
        json!([{"value": 2, "user_id": 1}, {"value": 3, "user_id": 99}]),
    );
    assert_eq!(
        error_of(missing_user),
        (
            400,
            "constraint failed: FOREIGN KEY constraint failed".into()
        )
    );
    let no_name = client.create("users", json!([{"name": "Bia"}, {"name": null}]));
    assert_eq!(
        error_of(no_name),
        (400, "NOT NULL constraint failed: users.name".into())
    );
    let wrong_type = client.create("users", json!([{"name": 7}]));
    assert_eq!(error_of(wrong_type).1, "datatype mismatch: users.name");

    assert_eq!(device.cards().len(), 1);
    assert_eq!(device.users().len(), 1);

    client.create("groups", json!([{"name": "Staff"}]));
    assert_eq!(
        client
            .create("user_groups", json!([{"user_id": 1, "group_id": 1}]))
            .0,
        200
    );
    let again = client.create("user_groups", json!([{"user_id": 1, "group_id": 1}]));
    assert_eq!(error_of(again).1, "UNIQUE constraint failed: user_groups");
    assert_eq!(device.user_groups(), [(1, 1)]);
}

#[test]
fn objects_with_different_fields_are_refused() {
    let device = device(SimConfig::default());
    let mut client = Client::new(&device);
    client.login();
    let mixed = client.create(
        "users",
        json!([{"name": "Ana"}, {"name": "Bia", "registration": "B"}]),
    );
    let (status, message) = error_of(mixed);
    assert_eq!(status, 400);
    assert!(message.contains("same fields"), "{message}");
    assert!(device.users().is_empty());
}

#[test]
fn modify_changes_the_rows_where_selects() {
    let device = device(SimConfig::default());
    let mut client = Client::new(&device);
    client.login();
    client.create(
        "users",
        json!([{"name": "Ana"}, {"name": "Bia"}, {"name": "Caio"}]),
    );
    let (status, body) = client.call(
        "modify_objects",
        json!({"object": "users", "values": {"name": "Ana S. Souza", "end_time": 99}, "where": {"users": {"id": [1, 3]}}}),
    );
    assert_eq!((status, body), (200, json!({"changes": 2})));
    let names: Vec<_> = device
        .users()
        .into_iter()
        .map(|u| (u.name, u.end_time))
        .collect();
    assert_eq!(
        names,
        [
            ("Ana S. Souza".into(), 99),
            ("Bia".into(), 0),
            ("Ana S. Souza".into(), 99)
        ]
    );

    client.create(
        "cards",
        json!([{"value": 1, "user_id": 1}, {"value": 2, "user_id": 2}]),
    );
    let clash = client.call(
        "modify_objects",
        json!({"object": "cards", "values": {"value": 1}, "where": {"cards": {"id": 2}}}),
    );
    assert_eq!(error_of(clash).1, "UNIQUE constraint failed: cards.value");
    assert_eq!(device.cards()[1].value, 2);
}

#[test]
fn destroy_deletes_what_where_selects_and_refuses_users_still_referenced() {
    let device = device(SimConfig::default());
    let mut client = Client::new(&device);
    client.login();
    client.create(
        "users",
        json!([{"name": "Ana"}, {"name": "Bia"}, {"name": "Caio"}]),
    );
    client.create("cards", json!([{"value": 7, "user_id": 1}]));

    let referenced = client.call(
        "destroy_objects",
        json!({"object": "users", "where": {"users": {"id": [1, 2]}}}),
    );
    assert_eq!(
        error_of(referenced).1,
        "constraint failed: FOREIGN KEY constraint failed"
    );
    assert_eq!(device.users().len(), 3);

    let (status, body) = client.call(
        "destroy_objects",
        json!({"object": "users", "where": {"users": {"id": [2, 3]}}}),
    );
    assert_eq!((status, body), (200, json!({"changes": 2})));
    assert_eq!(device.stats().count("destroy_without_where"), 0);

    let (status, body) = client.call("destroy_objects", json!({"object": "cards"}));
    assert_eq!((status, body), (200, json!({"changes": 1})));
    assert_eq!(device.stats().count("destroy_without_where"), 1);
    assert!(device.cards().is_empty());
    assert_eq!(device.users().len(), 1);
}

#[test]
fn an_in_list_over_999_values_is_refused() {
    let device = device(SimConfig::default());
    let mut client = Client::new(&device);
    client.login();
    let registrations: Vec<String> = (0..1000).map(|i| format!("R-{i}")).collect();
    let too_many = client.call(
        "load_objects",
        json!({"object": "users", "where": {"users": {"registration": registrations}}}),
    );
    let (status, message) = error_of(too_many);
    assert_eq!(status, 400);
    assert!(message.contains("too many values in IN list"), "{message}");
    let just_fits = client.load(
        json!({"object": "users", "where": {"users": {"registration": &registrations[..999]}}}),
    );
    assert!(just_fits.is_empty());
}

#[test]
fn bad_requests_get_400_and_unknown_commands_404() {
    let device = device(SimConfig::default());
    let mut client = Client::new(&device);
    client.login();
    let path = format!("/load_objects.fcgi?session={}", encode(&client.session));
    let (status, body) = client.post_raw(&path, "{not json").unwrap();
    assert_eq!(status, 400, "{body}");
    let unknown_table = client.call("load_objects", json!({"object": "people"}));
    assert_eq!(
        error_of(unknown_table),
        (400, "no such table: people".into())
    );
    let unknown_column = client.call(
        "load_objects",
        json!({"object": "users", "fields": ["age"]}),
    );
    assert_eq!(error_of(unknown_column).1, "no such column: age");
    let (status, _) = client.post_raw("/reboot.fcgi", "{}").unwrap();
    assert_eq!(status, 404);
    assert_eq!(device.stats().count("unknown"), 1);
}

#[test]
fn a_session_expires_after_k_requests_and_a_new_login_works() {
    let device = device(SimConfig {
        session_expiry_after: Some(3),
        ..SimConfig::default()
    });
    let mut client = Client::new(&device);
    client.login();
    for _ in 0..3 {
        assert_eq!(
            client.call("load_objects", json!({"object": "users"})).0,
            200
        );
    }
    let expired = client.call("load_objects", json!({"object": "users"}));
    assert_eq!(error_of(expired), (401, "Invalid session".into()));
    client.login();
    assert_eq!(
        client.call("load_objects", json!({"object": "users"})).0,
        200
    );
}

/// Sends `count` loads at once, each from its own client, and returns what each got.
fn burst(device: &SimDevice, count: usize) -> Vec<Result<u16, String>> {
    let mut client = Client::new(device);
    client.login();
    let session = Arc::new(client.session.clone());
    let start = Arc::new(Barrier::new(count));
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let (session, start, base) = (session.clone(), start.clone(), device.url());
            thread::spawn(move || {
                let client = Client {
                    agent: agent(Duration::from_secs(5)),
                    base,
                    session: (*session).clone(),
                };
                start.wait();
                client
                    .try_call("load_objects", &json!({"object": "users"}))
                    .map(|(status, _)| status)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn requests_beyond_max_in_flight_get_503() {
    let device = device(SimConfig {
        max_in_flight: Some(1),
        ..slow(300)
    });
    let results = burst(&device, 4);
    assert!(results.contains(&Ok(200)), "{results:?}");
    assert!(results.contains(&Ok(503)), "{results:?}");
    assert!(device.stats().count("refused") >= 1);
}

#[test]
fn requests_beyond_max_in_flight_are_reset_when_so_configured() {
    let device = device(SimConfig {
        max_in_flight: Some(1),
        overload: Overload::Reset,
        ..slow(300)
    });
    let results = burst(&device, 4);
    assert!(results.contains(&Ok(200)), "{results:?}");
    assert!(results.iter().any(Result::is_err), "{results:?}");
}

/// A device with a logged-in client, made faulty afterwards so the login got through.
fn faulty(faults: FaultRates, after_write: bool) -> (SimDevice, Client) {
    let device = device(SimConfig {
        faults_after_write: after_write,
        hang_for: Duration::from_secs(10),
        ..SimConfig::default()
    });
    let mut client = Client::with_timeout(&device, Duration::from_millis(300));
    client.login();
    device.set_faults(faults);
    (device, client)
}

fn create_ana(client: &Client) -> Result<(u16, String), ureq::Error> {
    client.try_call(
        "create_objects",
        &json!({"object": "users", "values": [{"name": "Ana"}]}),
    )
}

#[test]
fn fault_503_refuses_before_processing() {
    let (device, client) = faulty(
        FaultRates {
            status_503: 1.0,
            ..FaultRates::default()
        },
        true,
    );
    let (status, _) = create_ana(&client).unwrap();
    assert_eq!(status, 503);
    assert!(device.users().is_empty(), "a 503 never applies the write");
    assert_eq!(device.stats().faults["503"], 1);
}

#[test]
fn fault_reset_breaks_the_connection_and_applies_nothing() {
    let (device, client) = faulty(
        FaultRates {
            reset: 1.0,
            ..FaultRates::default()
        },
        false,
    );
    assert!(create_ana(&client).is_err());
    assert!(device.users().is_empty());
}

#[test]
fn fault_garbage_answers_200_with_invalid_json() {
    let (_device, client) = faulty(
        FaultRates {
            garbage: 1.0,
            ..FaultRates::default()
        },
        false,
    );
    let (status, body) = create_ana(&client).unwrap();
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
}

#[test]
fn fault_hang_outlasts_the_client_timeout_and_shutdown_cuts_it_short() {
    let (device, client) = faulty(
        FaultRates {
            hang: 1.0,
            ..FaultRates::default()
        },
        false,
    );
    let started = Instant::now();
    assert!(create_ana(&client).is_err(), "the client times out");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let stopping = Instant::now();
    device.shutdown();
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "shutdown waited out the hang"
    );
}

#[test]
fn faults_after_write_store_the_write_and_lose_the_answer() {
    for fault in [
        FaultRates {
            reset: 1.0,
            ..FaultRates::default()
        },
        FaultRates {
            hang: 1.0,
            ..FaultRates::default()
        },
        FaultRates {
            garbage: 1.0,
            ..FaultRates::default()
        },
    ] {
        let (device, client) = faulty(fault, true);
        let answer = create_ana(&client);
        let lost = match &answer {
            Err(_) => true,
            Ok((_, body)) => serde_json::from_str::<Value>(body).is_err(),
        };
        assert!(lost, "{fault:?}: {answer:?}");
        assert_eq!(device.users().len(), 1, "{fault:?}: the write was applied");
    }
}

#[test]
fn a_device_that_is_down_refuses_then_comes_back() {
    let device = device(SimConfig::default());
    let mut client = Client::new(&device);
    client.login();
    device.set_down(true);
    assert!(client
        .try_call("load_objects", &json!({"object": "users"}))
        .is_err());
    assert!(client
        .try_call("load_objects", &json!({"object": "users"}))
        .is_err());
    device.set_down(false);
    assert_eq!(
        client.call("load_objects", json!({"object": "users"})).0,
        200
    );
    assert!(device.stats().count("refused") >= 1);
}

#[test]
fn accepted_connections_are_counted_once_however_many_requests_they_carry() {
    let device = device(SimConfig::default());
    assert_eq!(device.connections_accepted(), 0);
    let mut first = Client::new(&device);
    first.login();
    for _ in 0..3 {
        assert_eq!(
            first.call("load_objects", json!({"object": "users"})).0,
            200
        );
    }
    assert_eq!(
        device.connections_accepted(),
        1,
        "keep-alive: one connection"
    );
    Client::new(&device).login();
    assert_eq!(device.connections_accepted(), 2);
    device.set_down(true);
    assert!(Client::new(&device)
        .try_call("load_objects", &json!({"object": "users"}))
        .is_err());
    assert_eq!(
        device.connections_accepted(),
        2,
        "reset while down: not counted"
    );
}

#[test]
fn latency_is_added_and_per_object_latency_grows_with_the_batch() {
    let device = device(SimConfig {
        per_object_latency: Duration::from_millis(20),
        ..slow(50)
    });
    let mut client = Client::new(&device);
    client.login();
    let started = Instant::now();
    client.create("users", json!([{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}, {"name": "e"}, {"name": "f"}]));
    assert!(
        started.elapsed() >= Duration::from_millis(50 + 5 * 20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn sim_state_shows_tables_and_stats_without_counting_itself() {
    let device = device(SimConfig {
        faults: FaultRates {
            status_503: 1.0,
            ..FaultRates::default()
        },
        ..SimConfig::default()
    });
    device.insert_user("A-1", "Ana");
    let client = Client::new(&device);
    let _ = client.post_raw("/login.fcgi", "{}");
    let mut response = client
        .agent
        .get(format!("{}/_sim/state", device.url()))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let state: Value = response.body_mut().read_json().unwrap();
    assert_eq!(state["name"], "test");
    assert_eq!(state["users"][0]["registration"], "A-1");
    assert_eq!(state["cards"], json!([]));
    assert_eq!(state["user_groups"], json!([]));
    assert_eq!(state["stats"]["total"], 1);
    assert_eq!(state["stats"]["faults"]["503"], 1);
    assert_eq!(device.stats().total, 1);
}

#[test]
fn a_fleet_runs_named_devices_on_distinct_ports() {
    let fleet = Fleet::start(3, &SimConfig::default()).unwrap();
    let names: Vec<_> = fleet.devices.iter().map(SimDevice::name).collect();
    assert_eq!(names, ["catraca-1", "catraca-2", "catraca-3"]);
    let mut urls = fleet.urls();
    assert!(urls.iter().all(|u| u.starts_with("http://127.0.0.1:")));
    urls.dedup();
    assert_eq!(urls.len(), 3);
    for device in &fleet.devices {
        Client::new(device).login();
    }
    fleet.shutdown();
}

/// Throughput of small keep-alive requests. Run pinned to one core:
/// `taskset -c 0 cargo test --release -p catraca-sim tests::throughput -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn throughput_of_small_requests() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    let device = device(SimConfig::default());
    for i in 0..1000 {
        device.insert_user(&format!("R-{i}"), "Someone");
    }
    let mut client = Client::new(&device);
    client.login();
    let body = r#"{"object":"users","where":{"users":{"id":17}}}"#;
    let request = format!(
        "POST /load_objects.fcgi?session={} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        encode(&client.session),
        body.len()
    );
    let run_for = Duration::from_secs(3);
    let connections = 4;
    let handles: Vec<_> = (0..connections)
        .map(|_| {
            let (request, addr) = (request.clone(), device.addr());
            thread::spawn(move || {
                let stream = TcpStream::connect(addr).unwrap();
                stream.set_nodelay(true).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let (mut line, mut body, mut done) = (String::new(), Vec::new(), 0u64);
                let started = Instant::now();
                while started.elapsed() < run_for {
                    writer.write_all(request.as_bytes()).unwrap();
                    let mut length = 0;
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(value) = line.strip_prefix("Content-Length: ") {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    body.resize(length, 0);
                    reader.read_exact(&mut body).unwrap();
                    assert!(body.starts_with(b"{\"users\":[{\"id\":17"));
                    done += 1;
                }
                done
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let rate = total as f64 / run_for.as_secs_f64();
    eprintln!(
        "{total} requests in {run_for:?} over {connections} connections: {rate:.0} requests/s"
    );
}
