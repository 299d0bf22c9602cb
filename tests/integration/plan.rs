//! `catraca plan`: what enroll would do, read from the devices, with nothing written.

use crate::harness::*;
use catraca_sim::SimConfig;

#[test]
fn plan_numbers_equal_what_the_following_enroll_does_and_nothing_is_written() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let mut rows = people(60);
    sandbox
        .enroll(&rows[..50])
        .args(&["--json"])
        .embedded_cache()
        .devices(&fleet)
        .run()
        .expect_code(0);
    rows[3].name = "Nome Novo".into();
    rows[4].name = "Outro Nome".into();
    rows[6].card = Some((300, 1));

    for cache in [&[][..], &["--skip-cache"][..]] {
        let before = writes(&fleet);
        let plan = sandbox
            .with_users("plan", &rows)
            .args(&["--json"])
            .embedded_cache()
            .args(cache)
            .devices(&fleet)
            .run();
        plan.expect_code(0);
        assert_eq!(
            writes(&fleet),
            before,
            "plan wrote to a device\n{}",
            plan.shown
        );
        let planned = plan.report();
        assert_eq!(planned["dry_run"], true);
        assert_eq!(planned["registered"], 20, "{}", plan.shown);
        assert_eq!(planned["updated"], 6, "{}", plan.shown);
        assert_eq!(
            planned["per_device"][0]["changes"]["name"], 2,
            "{}",
            plan.shown
        );
        assert_eq!(
            planned["per_device"][0]["changes"]["card"], 1,
            "{}",
            plan.shown
        );
        if cache.is_empty() {
            assert_eq!(planned["skipped_cache"], 94);
        } else {
            assert_eq!(planned["unchanged"], 94);
        }
        // A second plan says the same: the first wrote nothing, not even to the cache.
        let again = sandbox
            .with_users("plan", &rows)
            .args(&["--json"])
            .embedded_cache()
            .args(cache)
            .devices(&fleet)
            .run();
        assert_eq!(again.report()["registered"], planned["registered"]);
    }

    let plan = sandbox
        .with_users("plan", &rows)
        .args(&["--json"])
        .embedded_cache()
        .devices(&fleet)
        .run()
        .report();
    let enroll = sandbox
        .enroll(&rows)
        .args(&["--json"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    enroll.expect_code(0);
    let done = enroll.report();
    for key in [
        "registered",
        "updated",
        "unchanged",
        "skipped_cache",
        "failed",
    ] {
        assert_eq!(plan[key], done[key], "{key}\n{}", enroll.shown);
    }
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }

    // With --prune: 5 of the 60 leave the list (8%, under the 10% floor).
    let kept = &rows[5..];
    let before = writes(&fleet);
    let plan = sandbox
        .with_users("plan", kept)
        .args(&["--prune", "--json"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    plan.expect_code(0);
    assert_eq!(writes(&fleet), before, "plan --prune wrote\n{}", plan.shown);
    let planned = plan.report();
    assert_eq!(planned["removed"], 10, "{}", plan.shown);
    let enroll = sandbox
        .enroll(kept)
        .args(&["--prune", "--json"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    enroll.expect_code(0);
    let done = enroll.report();
    for key in std::iter::once("operations").chain(CATEGORIES) {
        assert_eq!(planned[key], done[key], "{key}\n{}", enroll.shown);
    }
    for device in &fleet.devices {
        assert_holds_exactly(device, kept);
    }
}

#[test]
fn the_human_plan_says_nothing_was_written() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let run = sandbox
        .with_users("plan", &people(5))
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(0);
    assert!(run.stdout.contains("would register:  5"), "{}", run.shown);
    assert!(run.stdout.contains("nothing was written"), "{}", run.shown);
    assert!(fleet.devices[0].users().is_empty());
}
