//! `catraca demo`, the README's first command, works on its own.

use crate::harness::Sandbox;

#[test]
fn the_demo_enrolls_100_people_on_5_turnstiles_then_skips_all_500_pairs() {
    let sandbox = Sandbox::new();
    let run = sandbox.catraca(&["demo", "--latency-ms", "1"]).run();
    run.expect_code(0);
    assert!(run.stdout.contains("registered:      500"), "{}", run.shown);
    assert!(run.stdout.contains("skipped (cache): 500"), "{}", run.shown);
    assert_eq!(run.stderr.matches("100 people").count(), 5, "{}", run.shown);
    assert!(
        run.stderr.contains("0 duplicated registrations"),
        "{}",
        run.shown
    );
}
