//! The whole life of a list: prune, expire, remove, verify, reconcile and card moves,
//! against simulated devices of every kind over real HTTP, checking what they hold.

use crate::harness::*;
use catraca_sim::{Fleet, Kind, SimConfig, SimDevice};

fn all_kinds() -> Fleet {
    mixed_fleet(
        &[
            (Kind::Controlid, 1),
            (Kind::Hikvision, 1),
            (Kind::Intelbras, 1),
        ],
        SimConfig::default(),
    )
}

fn keys(device: &SimDevice) -> Vec<String> {
    let mut keys: Vec<String> = device.people().into_iter().map(|p| p.key).collect();
    keys.sort();
    keys
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Rows whose windows are all in the future (the harness's end in 2026).
fn current_people(count: usize) -> Vec<Row> {
    let mut rows = people(count);
    for r in &mut rows {
        if let Some((b, e)) = r.window.as_mut() {
            *b = now() - 86_400;
            *e = now() + 30 * 86_400;
        }
    }
    rows
}

#[test]
fn prune_removes_exactly_the_people_dropped_from_the_csv_and_nobody_enrolled_by_others() {
    let sandbox = Sandbox::new();
    let fleet = all_kinds();
    let rows = current_people(40);
    sandbox
        .enroll(&rows)
        .args(&["--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run()
        .expect_code(0);
    // Put there by another system: never catraca's to remove.
    fleet.devices[0].insert_user("7770001", "Cadastro da Portaria");

    // Two people leave the list (5%, under the 10% floor).
    let kept: Vec<Row> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 7)
        .map(|(_, r)| r.clone())
        .collect();
    let before = writes(&fleet);
    let plan = sandbox
        .with_users("plan", &kept)
        .args(&["--prune", "--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    plan.expect_code(0);
    assert_eq!(
        writes(&fleet),
        before,
        "plan wrote to a device\n{}",
        plan.shown
    );
    let planned = plan.report();
    assert_eq!(planned["removed"], 6, "{}", plan.shown);
    for d in 0..3 {
        assert_eq!(planned["per_device"][d]["removed"], 2, "{}", plan.shown);
    }

    let enroll = sandbox
        .enroll(&kept)
        .args(&["--prune", "--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    enroll.expect_code(0);
    let done = enroll.report();
    for key in [
        "operations",
        "registered",
        "updated",
        "unchanged",
        "skipped_cache",
        "failed",
        "removed",
    ] {
        assert_eq!(planned[key], done[key], "{key}\n{}", enroll.shown);
    }
    let counted: u64 = [
        "registered",
        "updated",
        "unchanged",
        "skipped_cache",
        "failed",
        "removed",
    ]
    .iter()
    .map(|k| done[k].as_u64().unwrap())
    .sum();
    assert_eq!(
        counted,
        done["operations"].as_u64().unwrap(),
        "{}",
        enroll.shown
    );

    // The Control iD device keeps the stranger; everyone else holds exactly the list.
    let controlid = &fleet.devices[0];
    let stranger: Vec<_> = controlid
        .users()
        .into_iter()
        .filter(|u| u.registration == "7770001")
        .collect();
    assert_eq!(stranger.len(), 1, "the stranger was pruned");
    assert!(requests(controlid, "destroy_without_where") == 0);
    assert_eq!(controlid.users().len(), kept.len() + 1);
    for device in &fleet.devices[1..] {
        assert_people(device, &kept);
    }
    // The removed people's cards and links went with them.
    let ids: Vec<i64> = controlid.users().iter().map(|u| u.id).collect();
    assert!(controlid.cards().iter().all(|c| ids.contains(&c.user_id)));
    assert!(controlid.user_groups().iter().all(|(u, _)| ids.contains(u)));

    // Listed again, they come back (their cache entries left with them).
    let again = sandbox
        .enroll(&rows)
        .args(&["--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    again.expect_code(0);
    assert_eq!(again.report()["registered"], 6, "{}", again.shown);
    for device in &fleet.devices[1..] {
        assert_people(device, &rows);
    }

    // --prune-unmanaged takes the stranger too.
    let unmanaged = sandbox
        .enroll(&rows)
        .args(&["--prune", "--prune-unmanaged", "--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    unmanaged.expect_code(0);
    assert_eq!(unmanaged.report()["removed"], 1, "{}", unmanaged.shown);
    assert_holds_exactly(controlid, &rows);
}

#[test]
fn prune_refuses_a_large_drop_with_a_clear_message_and_removes_nothing() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let rows = current_people(20);
    sandbox
        .enroll(&rows)
        .embedded_cache()
        .devices(&fleet)
        .run()
        .expect_code(0);

    let half = &rows[..10];
    let before = writes(&fleet);
    for command in ["plan", "enroll"] {
        let refused = sandbox
            .with_users(command, half)
            .args(&["--prune"])
            .embedded_cache()
            .devices(&fleet)
            .run();
        refused.expect_code(2);
        assert!(
            refused.stderr.contains("would remove 10 of its 20 people")
                && refused.stderr.contains(&fleet.devices[0].url())
                && refused.stderr.contains("--max-remove"),
            "{}",
            refused.shown
        );
    }
    assert_eq!(writes(&fleet), before, "something was written");
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }

    // An empty list is refused too, before any device is contacted.
    let empty = sandbox.write("empty.csv", "registration,name\n");
    let refused = sandbox
        .catraca(&["enroll", "--users", empty.to_str().unwrap(), "--prune"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("no participants"),
        "{}",
        refused.shown
    );
    assert_eq!(writes(&fleet), before);

    // Raised explicitly, the drop goes through.
    let raised = sandbox
        .enroll(half)
        .args(&["--prune", "--max-remove", "50%", "--json"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    raised.expect_code(0);
    assert_eq!(raised.report()["removed"], 20, "{}", raised.shown);
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows[..10]);
    }
}

#[test]
fn expired_people_are_removed_and_a_purged_person_relisted_comes_back() {
    let sandbox = Sandbox::new();
    let fleet = all_kinds();
    let mut rows = current_people(6);
    rows[1].window = Some((now() - 10 * 86_400, now() - 86_400));
    sandbox
        .enroll(&rows)
        .embedded_cache()
        .kinded_devices(&fleet)
        .run()
        .expect_code(0);
    for device in &fleet.devices {
        assert!(keys(device).contains(&rows[1].registration));
    }

    let expire = sandbox
        .enroll(&rows)
        .args(&["--expire", "--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    expire.expect_code(0);
    let report = expire.report();
    assert_eq!(report["removed"], 3, "{}", expire.shown);
    counts_add_up(&report);
    assert_eq!(report["operations"], 5 * 3 + 3, "{}", expire.shown);
    let left: Vec<Row> = rows
        .iter()
        .filter(|r| r.registration != rows[1].registration)
        .cloned()
        .collect();
    for device in &fleet.devices[1..] {
        assert_people(device, &left);
    }
    assert_holds_exactly(&fleet.devices[0], &left);

    // Relisted with a new window, the person is enrolled again.
    rows[1].window = Some((now() - 86_400, now() + 86_400));
    let back = sandbox
        .enroll(&rows)
        .args(&["--expire", "--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    back.expect_code(0);
    assert_eq!(back.report()["registered"], 3, "{}", back.shown);

    // A device that purged someone by itself: the cache says done, but a new window
    // changes the fingerprint, so the device is asked and the person re-created.
    for device in &fleet.devices {
        device.purge(&rows[1].registration);
    }
    rows[1].window = Some((now() - 86_400, now() + 2 * 86_400));
    let recreated = sandbox
        .enroll(&rows)
        .args(&["--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    recreated.expect_code(0);
    assert_eq!(recreated.report()["registered"], 3, "{}", recreated.shown);
    for device in &fleet.devices[1..] {
        assert_people(device, &rows);
    }
    assert_holds_exactly(&fleet.devices[0], &rows);
}

#[test]
fn verify_finds_a_person_the_device_answered_ok_for_without_storing() {
    let sandbox = Sandbox::new();
    let fleet = all_kinds();
    let rows = current_people(12);
    // Person 1 has no card and no group: nothing after the create would notice.
    for device in &fleet.devices {
        device.drop_silently(&rows[1].registration);
    }
    let run = sandbox
        .enroll(&rows)
        .args(&["--verify", "100%", "--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    run.expect_code(1);
    let report = run.report();
    // Intelbras reads back every write itself (a 200 proves nothing there): its pair
    // failed before --verify, which reads the other 35.
    assert_eq!(report["verified"], 35, "{}", run.shown);
    assert_eq!(report["failed"], 3, "{}", run.shown);
    assert_eq!(report["registered"], 33, "{}", run.shown);
    let failures = report["failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .all(|f| f["registration"] == rows[1].registration.as_str()
                && f["error"].as_str().unwrap().contains("does not hold")),
        "{}",
        run.shown
    );
    // The cache forgot them: the next run writes them again.
    let again = sandbox
        .enroll(&rows)
        .args(&["--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    again.expect_code(0);
    assert_eq!(again.report()["registered"], 3, "{}", again.shown);
    for device in &fleet.devices[1..] {
        assert_people(device, &rows);
    }
}

#[test]
fn a_silent_drop_rate_on_the_simulator_is_caught_by_a_full_verify() {
    let sandbox = Sandbox::new();
    let fleet = fleet(
        1,
        SimConfig {
            silent_drop: 0.2,
            seed: 7,
            ..SimConfig::default()
        },
    );
    let mut rows = current_people(30);
    for r in &mut rows {
        r.card = None;
        r.group = None;
    }
    let run = sandbox
        .enroll(&rows)
        .args(&["--verify", "100%", "--json"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    let dropped = fleet.devices[0]
        .stats()
        .faults
        .get("silent_drop")
        .copied()
        .unwrap_or(0);
    assert!(dropped > 0, "the seed dropped nobody");
    assert_eq!(run.report()["failed"], dropped, "{}", run.shown);
    assert_eq!(fleet.devices[0].users().len() as u64, 30 - dropped);
}

#[test]
fn a_card_swap_ends_with_each_card_on_its_new_owner() {
    let sandbox = Sandbox::new();
    let fleet = all_kinds();
    let mut rows = current_people(7);
    // People 0, 3 and 6 have cards.
    sandbox
        .enroll(&rows)
        .embedded_cache()
        .kinded_devices(&fleet)
        .run()
        .expect_code(0);
    let (a, b) = (rows[0].card, rows[3].card);
    rows[0].card = b;
    rows[3].card = a;
    // And one card moves from person 6 (left without one) to someone who had none.
    rows[1].card = rows[6].card.take();
    // One person per write, so the two sides of the swap are separate jobs.
    let run = sandbox
        .enroll(&rows)
        .args(&["--batch-size", "1", "--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    run.expect_code(0);
    // Each card on its new owner, and person 6, whose card the CSV took away, holds none.
    for device in &fleet.devices[1..] {
        assert_people(device, &rows);
    }
    assert_holds_exactly(&fleet.devices[0], &rows);
}

#[test]
fn a_card_owned_by_someone_else_is_a_conflict_naming_both() {
    let sandbox = Sandbox::new();
    let fleet = all_kinds();
    let mut rows = current_people(4);
    sandbox
        .enroll(&rows)
        .embedded_cache()
        .kinded_devices(&fleet)
        .run()
        .expect_code(0);
    // Person 0 leaves the list (not pruned) and person 1 claims their card.
    rows[1].card = rows[0].card;
    let run = sandbox
        .enroll(&rows[1..])
        .args(&["--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    run.expect_code(1);
    let report = run.report();
    assert_eq!(report["failed"], 3, "{}", run.shown);
    for failure in report["failures"].as_array().unwrap() {
        let error = failure["error"].as_str().unwrap();
        assert_eq!(failure["registration"], rows[1].registration.as_str());
        assert!(error.contains(&rows[0].registration), "{}", run.shown);
        assert!(error.contains(&rows[1].registration), "{}", run.shown);
    }
    // Never taken over.
    for device in &fleet.devices {
        let owner = device
            .people()
            .into_iter()
            .find(|p| p.key == rows[0].registration)
            .unwrap();
        assert_eq!(owner.cards.len(), 1, "{}", device.name());
    }
}

#[test]
fn remove_takes_the_listed_people_off_every_device() {
    let sandbox = Sandbox::new();
    let fleet = all_kinds();
    let rows = current_people(10);
    sandbox
        .enroll(&rows)
        .embedded_cache()
        .kinded_devices(&fleet)
        .run()
        .expect_code(0);
    let events = sandbox.path("events.jsonl");
    let run = sandbox
        .with_users("remove", &rows[..4])
        .args(&["--json", "--events", events.to_str().unwrap()])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    run.expect_code(0);
    let report = run.report();
    assert_eq!(report["removed"], 12, "{}", run.shown);
    assert_eq!(report["skipped_cache"], 0, "{}", run.shown);
    counts_add_up(&report);
    assert_eq!(report["operations"], 12, "{}", run.shown);
    // One event line per removal, without the registration in clear.
    let lines = std::fs::read_to_string(&events).unwrap();
    assert_eq!(
        lines.matches("\"outcome\":\"removed\"").count(),
        12,
        "{lines}"
    );
    assert!(!lines.contains(&rows[0].registration), "{lines}");
    for device in &fleet.devices[1..] {
        assert_people(device, &rows[4..]);
    }
    assert_holds_exactly(&fleet.devices[0], &rows[4..]);
    // Their cache entries went with them: enrolling the full list brings them back.
    let back = sandbox
        .enroll(&rows)
        .args(&["--json"])
        .embedded_cache()
        .kinded_devices(&fleet)
        .run();
    back.expect_code(0);
    assert_eq!(back.report()["registered"], 12, "{}", back.shown);
}

#[test]
fn reconcile_ignores_the_cache_and_restores_what_the_device_lost() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let rows = current_people(8);
    sandbox
        .enroll(&rows)
        .embedded_cache()
        .devices(&fleet)
        .run()
        .expect_code(0);
    fleet.devices[0].purge(&rows[2].registration);
    let trusting = sandbox
        .enroll(&rows)
        .args(&["--json"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    assert_eq!(trusting.report()["skipped_cache"], 8, "{}", trusting.shown);
    let reconciled = sandbox
        .enroll(&rows)
        .args(&["--reconcile", "--json"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    reconciled.expect_code(0);
    let report = reconciled.report();
    assert_eq!(report["registered"], 1, "{}", reconciled.shown);
    assert_eq!(report["unchanged"], 7, "{}", reconciled.shown);
    assert_holds_exactly(&fleet.devices[0], &rows);
}

#[test]
fn a_control_id_device_is_listed_page_by_page() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let device = &fleet.devices[0];
    // 2,500 people put there by another system: three pages of 1,000.
    for i in 0..2_500 {
        device.insert_user(&format!("9{i:06}"), &format!("Visitante {i}"));
    }
    let rows = current_people(3);
    let before = writes(&fleet);
    let plan = sandbox
        .with_users("plan", &rows)
        .args(&["--prune", "--prune-unmanaged"])
        .args(&["--max-remove", "100%", "--json"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    plan.expect_code(0);
    assert_eq!(plan.report()["removed"], 2_500, "{}", plan.shown);
    assert_eq!(writes(&fleet), before);
    // Managed pruning removes none of them: catraca never enrolled them.
    let managed = sandbox
        .enroll(&rows)
        .args(&["--prune", "--json"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    managed.expect_code(0);
    assert_eq!(managed.report()["removed"], 0, "{}", managed.shown);
    assert_eq!(device.users().len(), 2_503);
}

#[test]
fn remove_needs_only_a_list_of_registrations() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let rows = current_people(6);
    let users = sandbox.write("p.csv", csv(&rows));
    sandbox
        .catraca(&["enroll", "--users", users.to_str().unwrap()])
        .embedded_cache()
        .devices(&fleet)
        .run()
        .expect_code(0);
    // One column, as exported from a list of who left, piped in.
    let leaving = format!(
        "Matrícula\n{}\n{}\n",
        rows[1].registration, rows[4].registration
    );
    let run = sandbox
        .catraca(&["remove", "--users", "-", "--json"])
        .stdin(leaving.clone())
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(0);
    assert_eq!(run.report()["removed"], 2, "{}", run.shown);
    let staying: Vec<Row> = [0, 2, 3, 5].iter().map(|&i| rows[i].clone()).collect();
    assert_holds_exactly(&fleet.devices[0], &staying);
    // Enrolling still needs names: the same list is refused before anything is sent.
    let requests_before = fleet.devices[0].stats().total;
    let refused = sandbox
        .catraca(&["enroll", "--users", "-"])
        .stdin(leaving)
        .embedded_cache()
        .devices(&fleet)
        .run();
    refused.expect_code(2);
    assert!(
        refused
            .stderr
            .contains("<stdin> line 1, field name: the header has no name column"),
        "{}",
        refused.shown
    );
    assert_eq!(fleet.devices[0].stats().total, requests_before);
}
