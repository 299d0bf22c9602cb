//! Cards that open the door: each device's `card_format`, the range checks made before
//! anything is sent, and cards compared in canonical form (leading zeros, hex case).

use crate::harness::*;
use catraca_sim::{Kind, ReaderFormat, SimConfig};

/// A devices file naming each device of `fleet` (`catraca-1`, ...) with its kind, and
/// `extra` lines after the table of the device named there.
fn devices_file(sandbox: &Sandbox, fleet: &catraca_sim::Fleet, extra: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for device in &fleet.devices {
        text.push_str(&format!(
            "[[device]]\nname = \"{}\"\nurl = \"{}\"\nkind = \"{}\"\n",
            device.name(),
            device.url(),
            device.kind()
        ));
        for (name, line) in extra {
            if *name == device.name() {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    let path = sandbox.write("devices.toml", text);
    path.to_str().expect("a UTF-8 path").to_string()
}

fn row(registration: &str, card: Option<(u32, u32)>) -> Row {
    Row {
        registration: registration.into(),
        name: format!("Pessoa {registration}"),
        card,
        window: None,
        group: None,
    }
}

#[test]
fn a_pair_no_device_can_take_is_a_csv_error_naming_the_line_and_nothing_is_sent() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[(Kind::Hikvision, 1), (Kind::Intelbras, 1)],
        SimConfig::default(),
    );
    let rows = [
        row("1001", Some((43, 3012))),
        row("1002", Some((300, 5))),
        row("1003", None),
    ];
    let ran = sandbox
        .enroll(&rows)
        .args(&["--cache", "none"])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(2);
    assert!(
        ran.stderr.contains("p.csv line 3, field card")
            && ran.stderr.contains("\"300,5\" fits no device")
            && ran.stderr.contains("facility code goes up to 255"),
        "{}",
        ran.shown
    );
    for device in &fleet.devices {
        assert_eq!(device.stats().total, 0, "{} was contacted", device.name());
    }
}

#[test]
fn a_pair_one_device_cannot_take_fails_there_naming_the_device_and_the_limit() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[(Kind::Controlid, 1), (Kind::Hikvision, 1)],
        SimConfig::default(),
    );
    let devices = devices_file(&sandbox, &fleet, &[]);
    let rows = [row("1001", Some((43, 3012))), row("1002", Some((300, 5)))];
    let ran = sandbox
        .enroll(&rows)
        .args(&["--json", "--cache", "none", "--devices", &devices])
        .run();
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["registered"], 3, "{}", ran.shown);
    assert_eq!(report["failed"], 1, "{}", ran.shown);
    assert_eq!(report["per_device"][1]["failed"], 1, "{}", ran.shown);
    let failure = &report["failures"][0];
    assert_eq!(failure["registration"], "1002");
    assert_eq!(failure["device"], "catraca-2");
    let reason = failure["error"].as_str().unwrap();
    assert!(
        reason.contains("card 300,5 cannot be written on catraca-2")
            && reason.contains("facility code goes up to 255"),
        "{}",
        ran.shown
    );
    // Control iD holds both; the Hikvision only the card it can take, never 1002.
    assert_eq!(fleet.devices[0].people().len(), 2);
    let held = fleet.devices[1].people();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].cards, ["2821060"]);
}

#[test]
fn cards_held_zero_padded_or_in_lower_case_are_unchanged() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[(Kind::Hikvision, 1), (Kind::Intelbras, 1)],
        SimConfig::default(),
    );
    let rows = [
        row("1001", Some((43, 3012))),
        row("1002", Some((1, 2))),
        row("1003", None),
    ];
    let run = || {
        sandbox
            .enroll(&rows)
            .args(&["--json", "--cache", "none"])
            .kinded_devices(&fleet)
            .run()
    };
    let first = run();
    first.expect_code(0);
    assert_eq!(first.report()["registered"], 6, "{}", first.shown);
    let (hikvision, intelbras) = (&fleet.devices[0], &fleet.devices[1]);
    // Another tool rewrote the cards: padded to 10 digits, and in lower-case hex.
    hikvision.set_cards("1001", &["0002821060"]);
    hikvision.set_cards("1002", &["00065538"]);
    intelbras.set_cards("1001", &["2b0bc4"]);
    intelbras.set_cards("1002", &["00010002"]);
    let before: Vec<u64> = fleet.devices.iter().map(writes_to).collect();
    let second = run();
    second.expect_code(0);
    assert_eq!(second.report()["unchanged"], 6, "{}", second.shown);
    let after: Vec<u64> = fleet.devices.iter().map(writes_to).collect();
    assert_eq!(before, after, "nothing was written\n{}", second.shown);
    let cards_of = |d: &catraca_sim::SimDevice, key: &str| {
        d.people()
            .into_iter()
            .find(|p| p.key == key)
            .expect("still there")
            .cards
    };
    assert_eq!(cards_of(hikvision, "1001"), ["0002821060"]);
    assert_eq!(cards_of(intelbras, "1001"), ["2b0bc4"]);

    // A different card is still a change, written in the exact canonical form.
    intelbras.set_cards("1002", &["0A"]);
    let third = run();
    third.expect_code(0);
    assert_eq!(third.report()["updated"], 1, "{}", third.shown);
    assert_eq!(cards_of(intelbras, "1002"), ["010002"]);
}

#[test]
fn an_intelbras_default_format_warns_once_per_device_and_an_explicit_one_does_not() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(&[(Kind::Intelbras, 2)], SimConfig::default());
    let rows = [row("1001", Some((43, 3012))), row("1002", Some((1, 2)))];
    let devices = devices_file(
        &sandbox,
        &fleet,
        &[("catraca-2", "card_format = \"w26-hex\"")],
    );
    let ran = sandbox
        .enroll(&rows)
        .args(&["--cache", "none", "--devices", &devices])
        .run();
    ran.expect_code(0);
    let warnings: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.contains("catraca learn-card"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", ran.shown);
    assert!(warnings[0].contains("catraca-1"), "{}", ran.shown);
}

/// 60 people with Wiegand cards and 20 with plain numbers, as a CSV, with the cards as
/// the swipe control takes them.
fn wiegand_and_plain() -> (String, Vec<String>) {
    let mut csv = String::from("registration,name,card\n");
    let mut cards = Vec::new();
    for i in 0..80u64 {
        let card = if i < 60 {
            // Facilities 1 to 255 (with 0 a pair reads the same in every format),
            // numbers across the 16 bits.
            format!("{},{}", (i * 17) % 255 + 1, (i * 1097 + 3) % 65_536)
        } else {
            (4_012_345_678 + i * 7919).to_string()
        };
        csv.push_str(&format!("{},Pessoa {i},\"{card}\"\n", 3000 + i));
        cards.push(card);
    }
    (csv, cards)
}

/// Swipes every card at every device over HTTP; the swipes granted on each device.
fn swipe_all(fleet: &catraca_sim::Fleet, cards: &[String]) -> Vec<usize> {
    fleet
        .devices
        .iter()
        .map(|device| {
            cards
                .iter()
                .filter(|card| {
                    let (status, body) = get(&format!("{}/__sim/swipe?card={card}", device.url()));
                    assert_eq!(status, 200, "{body}");
                    let swipe: serde_json::Value = serde_json::from_str(&body).unwrap();
                    swipe["granted"] == true
                })
                .count()
        })
        .collect()
}

const ONE_OF_EACH: [(Kind, usize); 3] = [
    (Kind::Controlid, 1),
    (Kind::Hikvision, 1),
    (Kind::Intelbras, 1),
];

#[test]
fn every_card_enrolled_with_the_defaults_opens_every_door_of_a_mixed_fleet() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(&ONE_OF_EACH, SimConfig::default());
    let (csv, cards) = wiegand_and_plain();
    let users = sandbox.write("cards.csv", csv);
    let ran = sandbox
        .catraca(&[
            "enroll",
            "--users",
            users.to_str().unwrap(),
            "--json",
            "--cache",
            "none",
        ])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(0);
    assert_eq!(ran.report()["registered"], 240, "{}", ran.shown);
    assert_eq!(swipe_all(&fleet, &cards), [80, 80, 80]);
    // Each door let in the person who holds the card, and no one else.
    for device in &fleet.devices {
        for (i, swipe) in device.swipes().iter().enumerate() {
            assert_eq!(
                swipe.holder.as_deref(),
                Some(format!("{}", 3000 + i).as_str())
            );
        }
    }
    // The printed card 43,3012 reads as each vendor's reader reports it.
    let printed: Vec<String> = fleet
        .devices
        .iter()
        .map(|d| {
            d.swipe(catraca_sim::Card::parse("43,3012").unwrap())
                .read
                .unwrap()
        })
        .collect();
    assert_eq!(printed, ["184683596740", "2821060", "2B0BC4"]);
}

#[test]
fn a_wrong_card_format_is_refused_at_the_door() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(&ONE_OF_EACH, SimConfig::default());
    // catraca's old behaviour on the Hikvision: Control iD's value for every card.
    let devices = devices_file(
        &sandbox,
        &fleet,
        &[("catraca-2", "card_format = \"controlid\"")],
    );
    let (csv, cards) = wiegand_and_plain();
    let users = sandbox.write("cards.csv", csv);
    let ran = sandbox
        .catraca(&[
            "enroll",
            "--users",
            users.to_str().unwrap(),
            "--json",
            "--cache",
            "none",
            "--devices",
            &devices,
        ])
        .run();
    ran.expect_code(0);
    assert_eq!(ran.report()["registered"], 240, "{}", ran.shown);
    // Reported registered everywhere, yet the Hikvision refuses every Wiegand card
    // (plain numbers read the same in both formats).
    assert_eq!(swipe_all(&fleet, &cards), [80, 20, 80]);
}

#[test]
fn catraca_simulate_logs_each_swipe_granted_or_refused() {
    let sandbox = Sandbox::new();
    let mut simulate = sandbox
        .catraca(&["simulate", "--devices", "hikvision:1", "--log-swipes"])
        .env("CATRACA_SIM_PASSWORD", PASSWORD)
        .spawn();
    let line = simulate.wait_for_line("catraca-1 ", std::time::Duration::from_secs(20));
    let url = line.split_whitespace().next().unwrap().to_string();
    let users = sandbox.write("one.csv", "registration,name,card\n1001,Ana,\"43,3012\"\n");
    sandbox
        .catraca(&[
            "enroll",
            "--users",
            users.to_str().unwrap(),
            "--cache",
            "none",
            "--device",
            &format!("hikvision+{url}"),
        ])
        .run()
        .expect_code(0);
    for card in ["43,3012", "43,3013"] {
        let (status, _) = get(&format!("{url}/__sim/swipe?card={card}"));
        assert_eq!(status, 200);
    }
    simulate.wait_for_line(
        "catraca-1 swipe 43,3012 read 2821060: granted (1001)",
        std::time::Duration::from_secs(10),
    );
    simulate.wait_for_line(
        "catraca-1 swipe 43,3013 read 2821061: refused",
        std::time::Duration::from_secs(10),
    );
    simulate.signal(libc::SIGTERM);
    simulate
        .finish(std::time::Duration::from_secs(20))
        .expect_code(0);
}

/// Runs `catraca learn-card` at `device`, swiping `card` once it asks for it.
fn learn(sandbox: &Sandbox, device: &catraca_sim::SimDevice, card: &str, extra: &[&str]) -> Ran {
    let flag = format!("{}+{}", device.kind(), device.url());
    let mut args = vec![
        "learn-card",
        "--device",
        &flag,
        "--card",
        card,
        "--timeout",
        "20s",
    ];
    args.extend_from_slice(extra);
    let mut running = sandbox.catraca(&args).spawn();
    running.wait_for_line("swipe the card at", std::time::Duration::from_secs(20));
    // A device reads the cards swiped once it was asked to: as an operator would, swipe
    // after the device is waiting (Intelbras logs every swipe: any moment will do).
    // (A Digest device counts the unauthenticated challenge too: the second request is
    // the one that asks.)
    let (asked, count) = match device.kind() {
        Kind::Controlid => ("remote_enroll", 1),
        Kind::Hikvision => ("capture_card", 2),
        Kind::Intelbras => ("card_records", 1),
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while requests(device, asked) < count && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    device.swipe(catraca_sim::Card::parse(card).unwrap());
    running.finish(std::time::Duration::from_secs(30))
}

#[test]
fn learn_card_finds_each_familys_format_from_one_swipe_and_writes_nothing() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(&ONE_OF_EACH, SimConfig::default());
    let expected = [
        ("184683596740", "card_format = \"controlid\""),
        ("2821060", "card_format = \"w26\""),
        ("2B0BC4", "card_format = \"w26-hex\""),
    ];
    for (device, (read, line)) in fleet.devices.iter().zip(expected) {
        let ran = learn(&sandbox, device, "43,3012", &[]);
        ran.expect_code(0);
        assert!(
            ran.stdout.contains(&format!("read the card as {read}\n"))
                && ran.stdout.contains("card 43,3012 matches")
                && ran.stdout.contains(line),
            "{}",
            ran.shown
        );
        assert!(device.stats().created.is_empty(), "{:?}", device.stats());
        assert!(device.people().is_empty());
    }
    assert!(
        requests(&fleet.devices[1], "capture_card") >= 2,
        "polled while it waited"
    );
    assert!(requests(&fleet.devices[2], "card_records") >= 2);
}

#[test]
fn learn_card_tells_the_padding_and_exits_1_with_the_candidates_when_nothing_matches() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[(Kind::Hikvision, 1), (Kind::Intelbras, 1)],
        SimConfig::default(),
    );
    let (hikvision, intelbras) = (&fleet.devices[0], &fleet.devices[1]);
    hikvision.set_reader(ReaderFormat::parse("w26:10").unwrap());
    let ran = learn(&sandbox, hikvision, "43,3012", &["--json"]);
    ran.expect_code(0);
    let learned: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(learned["read"], "0002821060", "{}", ran.shown);
    assert_eq!(learned["current_matches"], false);
    assert_eq!(learned["matches"][0]["card_format"], "w26");
    assert_eq!(learned["matches"][0]["card_pad"], 10);

    // A Dahua door converting the card number (bytes swapped): no format writes that.
    intelbras.set_reader(ReaderFormat::SwappedHex);
    let ran = learn(&sandbox, intelbras, "43,3012", &[]);
    ran.expect_code(1);
    assert!(
        ran.stdout.contains("read the card as C40B2B")
            && ran.stdout.contains("no card_format writes card 43,3012")
            && ran.stdout.contains("w26-hex   2B0BC4")
            && ran.stdout.contains("w26       2821060")
            && ran.stdout.contains("controlid 184683596740"),
        "{}",
        ran.shown
    );
}

#[test]
fn check_shows_each_card_format_and_warns_where_the_default_is_uncertain() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[
            (Kind::Controlid, 1),
            (Kind::Hikvision, 1),
            (Kind::Intelbras, 2),
        ],
        SimConfig::default(),
    );
    let devices = devices_file(
        &sandbox,
        &fleet,
        &[("catraca-4", "card_format = \"w26-hex\"\ncard_pad = 8")],
    );
    let ran = sandbox
        .catraca(&["check", "--json", "--devices", &devices])
        .run();
    ran.expect_code(0);
    let checks: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let shown: Vec<(String, bool, usize)> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["card_format"].as_str().unwrap().to_string(),
                c["card_format_set"].as_bool().unwrap(),
                c["warnings"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("controlid".to_string(), false, 0),
            ("w26".to_string(), false, 0),
            ("w26-hex".to_string(), false, 1),
            ("w26-hex, card_pad 8".to_string(), true, 0),
        ],
        "{}",
        ran.shown
    );
    let text = sandbox.catraca(&["check", "--devices", &devices]).run();
    text.expect_code(0);
    assert!(
        text.stdout.contains("w26 (default)")
            && text.stdout.contains("w26-hex, card_pad 8 (set)")
            && text
                .stdout
                .contains("catraca learn-card --device catraca-3 --card F,N"),
        "{}",
        text.shown
    );
}

#[test]
fn cards_written_the_old_way_are_rewritten_on_the_next_run_despite_the_cache() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(&[(Kind::Hikvision, 1)], SimConfig::default());
    let rows = [row("1001", Some((43, 3012))), row("1002", None)];
    // What catraca wrote before card formats: Control iD's value, on every vendor.
    let old_way = devices_file(
        &sandbox,
        &fleet,
        &[("catraca-1", "card_format = \"controlid\"")],
    );
    let first = sandbox
        .enroll(&rows)
        .args(&["--json", "--devices", &old_way])
        .embedded_cache()
        .run();
    first.expect_code(0);
    assert_eq!(first.report()["registered"], 2, "{}", first.shown);
    let door = &fleet.devices[0];
    let card = catraca_sim::Card::parse("43,3012").unwrap();
    assert!(
        !door.swipe(card).granted,
        "the old value does not open the door"
    );

    let fixed = devices_file(&sandbox, &fleet, &[]);
    let second = sandbox
        .enroll(&rows)
        .args(&["--json", "--devices", &fixed])
        .embedded_cache()
        .run();
    second.expect_code(0);
    let report = second.report();
    // The person with a card is planned again and updated; the other stays cached.
    assert_eq!(
        (report["updated"].as_u64(), report["skipped_cache"].as_u64()),
        (Some(1), Some(1)),
        "{}",
        second.shown
    );
    assert!(door.swipe(card).granted, "{:?}", door.people());
    assert_eq!(
        door.people()
            .iter()
            .find(|p| p.key == "1001")
            .unwrap()
            .cards,
        ["2821060"]
    );
}

#[test]
fn learn_card_without_a_swipe_exits_1_and_says_so() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(&[(Kind::Hikvision, 1)], SimConfig::default());
    let flag = format!("hikvision+{}", fleet.devices[0].url());
    let ran = sandbox
        .catraca(&["learn-card", "--device", &flag, "--timeout", "2s"])
        .run();
    ran.expect_code(1);
    assert!(
        ran.stderr.contains("swipe the card at")
            && ran.stderr.contains("no card was read at")
            && ran.stdout.is_empty(),
        "{}",
        ran.shown
    );
}

#[test]
fn a_printed_pair_and_its_w26_number_for_two_people_is_a_csv_error() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[(Kind::Controlid, 1), (Kind::Hikvision, 1)],
        SimConfig::default(),
    );
    // The two numbers printed on one card, given to two people.
    let users = sandbox.write(
        "dup.csv",
        "registration,name,card\n1001,Ana,\"43,3012\"\n1002,Bia,2821060\n",
    );
    let ran = sandbox
        .catraca(&[
            "enroll",
            "--users",
            users.to_str().unwrap(),
            "--cache",
            "none",
        ])
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(2);
    assert!(
        ran.stderr.contains("dup.csv line 3, field card: card \"2821060\" is the same card as \"43,3012\" on line 2"),
        "{}",
        ran.shown
    );
    for device in &fleet.devices {
        assert_eq!(device.stats().total, 0, "nothing was sent");
    }
}

#[test]
fn learn_card_records_its_exchanges_with_trace_http_without_the_password() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(&[(Kind::Hikvision, 1)], SimConfig::default());
    let trace = sandbox.path("learn-trace.jsonl");
    let ran = learn(
        &sandbox,
        &fleet.devices[0],
        "43,3012",
        &["--trace-http", trace.to_str().unwrap()],
    );
    ran.expect_code(0);
    let text = std::fs::read_to_string(&trace).expect("--trace-http was written");
    assert!(text.contains("CaptureCardInfo"), "{text}");
    assert!(text.lines().count() >= 2, "{text}");
    assert!(!text.contains(PASSWORD), "the password is in the trace");
}
