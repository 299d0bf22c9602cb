//! The cache's group commit seen from outside: confirmed pairs wait up to a commit
//! window before they are in the cache, so these tests stretch the window (the
//! `CATRACA_TEST_COMMIT_WINDOW_MS` hook) to act inside it deterministically: a `kill -9`
//! while every confirmed pair is still waiting, and a Ctrl-C that must commit them.

use crate::harness::*;
use catraca::cache::embedded::EmbeddedCache;
use catraca::cache::group_commit::WINDOW_ENV;
use catraca::cache::redis_cache::RedisCache;
use catraca_sim::redis_server::PrivateRedis;
use catraca_sim::SimConfig;
use std::time::Duration;

/// Ten minutes: no pair is committed by the clock during these runs, only by the size
/// limit (never reached here), a Ctrl-C or the end of the run.
const NEVER: &str = "600000";

fn slow() -> SimConfig {
    SimConfig {
        latency: Duration::from_millis(15),
        ..SimConfig::default()
    }
}

#[test]
fn a_kill_between_the_devices_answers_and_the_commit_duplicates_no_one_on_the_rerun() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, slow());
    let rows = people(300);
    let command = || {
        sandbox
            .enroll(&rows)
            .args(&["--json", "--batch-size", "10"])
            .embedded_cache()
            .devices(&fleet)
    };
    let mut running = command().env(WINDOW_ENV, NEVER).spawn();
    // 40% of the pairs are done on their devices and waiting for their commit.
    running.wait_for_lines("progress: ", 4, Duration::from_secs(60));
    running.signal(libc::SIGKILL);
    let killed = running.wait();
    assert_eq!(killed.code, -1, "killed by a signal\n{}", killed.shown);
    // Let requests already inside the simulator finish before counting.
    std::thread::sleep(Duration::from_millis(300));
    let confirmed: usize = fleet.devices.iter().map(|d| d.users().len()).sum();
    assert!(
        (240..600).contains(&confirmed),
        "{confirmed} pairs on the devices"
    );
    let cache = EmbeddedCache::open(&sandbox.path("cache.redb")).unwrap();
    assert_eq!(
        cache.len().unwrap(),
        0,
        "the kill came before any commit: the window was not hit"
    );
    drop(cache);

    let again = command().run();
    again.expect_code(0);
    let report = again.report();
    counts_add_up(&report);
    // What the kill kept from the cache, the rerun found on the devices: unchanged, or
    // updated when the kill cut a batch between its users and their cards and groups.
    let count = |key: &str| report[key].as_u64().unwrap();
    assert_eq!(
        count("unchanged") + count("updated"),
        confirmed as u64,
        "{}",
        again.shown
    );
    assert!(count("unchanged") >= 200, "{}", again.shown);
    assert_eq!(
        count("registered"),
        600 - confirmed as u64,
        "{}",
        again.shown
    );
    assert_eq!(report["skipped_cache"], 0);
    assert_eq!(report["failed"], 0);
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }
    // And the rerun committed everything at its end.
    let third = command().run();
    third.expect_code(0);
    assert_eq!(third.report()["skipped_cache"], 600, "{}", third.shown);
}

#[test]
fn a_ctrl_c_commits_every_pair_the_report_counts_done() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, slow());
    let rows = people(300);
    let mut running = sandbox
        .enroll(&rows)
        .args(&["--json", "--batch-size", "10"])
        .embedded_cache()
        .devices(&fleet)
        .env(WINDOW_ENV, NEVER)
        .spawn();
    running.wait_for_lines("progress: ", 3, Duration::from_secs(60));
    running.signal(libc::SIGINT);
    let stopped = running.wait();
    stopped.expect_code(130);
    let report = stopped.report();
    counts_add_up(&report);
    assert_eq!(report["interrupted"], true);
    let done = ["registered", "updated", "unchanged", "skipped_cache"]
        .iter()
        .map(|key| report[key].as_u64().unwrap())
        .sum::<u64>();
    assert!(done > 0 && done < 600, "{}", stopped.shown);
    assert_eq!(report["not_cached"], 0);
    let cache = EmbeddedCache::open(&sandbox.path("cache.redb")).unwrap();
    assert_eq!(cache.len().unwrap(), done, "{}", stopped.shown);
}

#[test]
fn a_ctrl_c_commits_to_redis_every_pair_the_report_counts_done() {
    let redis = PrivateRedis::start().expect("redis-server starts");
    let sandbox = Sandbox::new();
    let fleet = fleet(2, slow());
    let rows = people(300);
    let mut running = sandbox
        .enroll(&rows)
        .args(&["--json", "--batch-size", "10"])
        .args(&["--cache", redis.url()])
        .devices(&fleet)
        .env(WINDOW_ENV, NEVER)
        .spawn();
    running.wait_for_lines("progress: ", 3, Duration::from_secs(60));
    running.signal(libc::SIGINT);
    let stopped = running.wait();
    stopped.expect_code(130);
    let report = stopped.report();
    counts_add_up(&report);
    let done = ["registered", "updated", "unchanged", "skipped_cache"]
        .iter()
        .map(|key| report[key].as_u64().unwrap())
        .sum::<u64>();
    assert!(done > 0 && done < 600, "{}", stopped.shown);
    assert_eq!(report["not_cached"], 0);
    let cache = RedisCache::open(redis.url()).unwrap();
    assert_eq!(cache.count_keys().unwrap(), done, "{}", stopped.shown);
}
