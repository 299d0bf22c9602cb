//! `catraca bench` at a tiny size, so the benchmark the README quotes cannot rot. It
//! asserts that its numbers add up, never a time: times depend on the machine (a ratio
//! of times is checked against the rows it comes from, never against a bound).

use crate::harness::Sandbox;
use serde_json::Value;

fn number(row: &Value, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {row}"))
}

#[test]
fn the_quick_benchmark_runs_every_workload_and_its_numbers_add_up() {
    let sandbox = Sandbox::new();
    let run = sandbox.catraca(&["bench", "--quick", "--json"]).run();
    run.expect_code(0);
    let results: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", run.shown));
    let rows = results["rows"].as_array().expect("rows");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    for group in [
        "W1 one per request",
        "W1 batched",
        "W2",
        "W2-fail",
        "W3",
        "startup",
        "W4 fast alone",
        "W4 beside a slow one",
        "TLS scale",
        "TLS one per request",
        "W5 photos",
        "W5-rerun",
        "W5-scale",
        "sites 3 x 2 devices, 1 agent/site",
        "sites 3 x 2 devices, 2 agents/site",
        "sites 3 x 2 devices, 3 agents/site",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(group)),
            "no {group} row in {names:?}"
        );
    }
    for row in rows {
        let name = row["workload"].as_str().unwrap();
        let pairs = number(row, "pairs");
        let requests = number(row, "requests");
        assert_eq!(
            pairs,
            number(row, "people") * number(row, "devices"),
            "{name}"
        );
        assert_eq!(
            number(row, "operations"),
            pairs,
            "{name}: every pair reported once"
        );
        let cache = row["cache"].as_str().unwrap();
        let all_down = name.starts_with("W2-fail");
        if all_down {
            // Every pair failed, was counted once, and nothing reached a device.
            assert_eq!(number(row, "failed"), pairs, "{name}");
            assert_eq!(number(row, "registered"), 0.0, "{name}");
            assert_eq!(number(row, "users_on_devices"), 0.0, "{name}");
        } else {
            assert_eq!(number(row, "failed"), 0.0, "{name}");
            assert_eq!(
                number(row, "users_on_devices"),
                pairs,
                "{name}: every person exactly once on every device"
            );
        }
        if name.starts_with("W2 scale") && cache != "none" {
            // A first run into an empty cache: every pair it did is in the cache.
            assert_eq!(number(row, "cached_after"), pairs, "{name}: {row}");
            assert_eq!(number(row, "not_cached"), 0.0, "{name}");
        }
        if name.starts_with("W3") {
            assert!(cache.contains("filled by an enroll"), "{name}: {cache}");
        }
        assert!(
            (number(row, "requests_per_pair") * pairs - requests).abs() < 1e-6,
            "{name}: requests per pair is requests over pairs"
        );
        let devices = number(row, "devices");
        if name.starts_with("W5") {
            // A photo per pair sent, each under 70 KB, except by the cached rerun,
            // which only asks each device whether it takes faces.
            let rerun = name == "W5-rerun";
            let expected = if rerun { 0.0 } else { pairs };
            assert_eq!(number(row, "photos_sent"), expected, "{name}: {row}");
            assert!(number(row, "photo_kb") <= 70.0, "{name}: {row}");
            if rerun {
                assert_eq!(number(row, "skipped_cache"), pairs, "{name}");
                // A login and the model question per device.
                assert!(requests <= 2.0 * number(row, "devices"), "{name}: {row}");
                continue;
            }
        }
        if name.starts_with("W3") {
            assert_eq!(number(row, "skipped_cache"), pairs, "{name}");
            assert_eq!(requests, 0.0, "{name}: all cached, nothing sent");
        } else if all_down {
            assert_eq!(requests, 0.0, "{name}: no device answered");
        } else {
            assert_eq!(number(row, "registered"), pairs, "{name}");
            // A login and a load per device at least, and at least one create per device.
            assert!(number(row, "creates") >= devices, "{name}");
            assert!(requests >= 3.0 * devices, "{name}");
        }
        let connections = number(row, "connections");
        if all_down {
            continue;
        }
        if requests > 0.0 {
            // Every device was connected to, and no request took more than a connection.
            assert!(connections >= devices, "{name}: {row}");
            assert!(connections <= requests, "{name}: {row}");
        } else {
            assert_eq!(connections, 0.0, "{name}: nothing sent, nothing connected");
        }
        let transport = row["transport"].as_str().unwrap();
        if name.ends_with(", https") {
            assert_eq!(transport, "https", "{name}");
            assert!(
                row["settings"].as_str().unwrap().contains("pinned"),
                "{name}: {row}"
            );
        } else {
            assert_eq!(transport, "http", "{name}");
        }
        if name.starts_with("W1 one per request") || name.starts_with("TLS one per request") {
            // One person per request: one create per pair, plus a login and a load per device.
            assert_eq!(number(row, "creates"), pairs, "{name}");
            assert_eq!(requests, pairs + 2.0 * devices, "{name}");
        }
        if name.starts_with("W1") {
            let ideal = number(row, "ideal_ms");
            let efficiency = number(row, "efficiency");
            assert!(ideal > 0.0, "{name}");
            assert!(
                (efficiency - ideal / number(row, "wall_ms")).abs() < 1e-9,
                "{name}: efficiency is ideal over wall time"
            );
        }
    }
    // W4: the same people on the same fast devices, then on those plus one slow one.
    let row = |name: &str| rows.iter().find(|r| r["workload"] == name).unwrap();
    let (alone, beside) = (row("W4 fast alone"), row("W4 beside a slow one"));
    assert_eq!(number(alone, "people"), number(beside, "people"));
    assert_eq!(number(beside, "devices"), number(alone, "devices") + 1.0);
    assert!(alone["slow_finished_ms"].is_null(), "{alone}");
    for run in [alone, beside] {
        // A device's last pair settles before the process that reports it ends.
        assert!(
            number(run, "fast_finished_ms") <= number(run, "wall_ms"),
            "{run}"
        );
    }
    let neighbour = &results["neighbour"];
    assert_eq!(number(neighbour, "fast_devices"), number(alone, "devices"));
    assert_eq!(
        number(neighbour, "fast_alone_ms"),
        number(alone, "fast_finished_ms")
    );
    assert_eq!(
        number(neighbour, "fast_beside_slow_ms"),
        number(beside, "fast_finished_ms")
    );
    assert_eq!(
        number(neighbour, "slow_ms"),
        number(beside, "slow_finished_ms")
    );
    assert!(
        (number(neighbour, "ratio")
            - number(neighbour, "fast_beside_slow_ms")
                / number(neighbour, "fast_alone_ms").max(1.0))
        .abs()
            < 1e-9,
        "{neighbour}"
    );
    assert!(
        number(neighbour, "slow_ms") <= number(beside, "wall_ms"),
        "{neighbour}"
    );
    // TLS: each workload over http and over pinned https, the same job on both sides.
    let costs = results["tls"].as_array().expect("tls");
    let compared: Vec<&str> = costs
        .iter()
        .map(|c| c["workload"].as_str().unwrap())
        .collect();
    assert_eq!(compared.len(), 2, "{compared:?}");
    assert!(compared[0].starts_with("TLS scale"), "{compared:?}");
    assert_eq!(compared[1], "TLS one per request");
    for cost in costs {
        let (http, https) = (
            row(cost["http_row"].as_str().unwrap()),
            row(cost["https_row"].as_str().unwrap()),
        );
        assert_eq!(http["transport"], "http", "{cost}");
        assert_eq!(https["transport"], "https", "{cost}");
        // The same job, the same requests: only the transport differs.
        for key in [
            "people",
            "devices",
            "pairs",
            "registered",
            "users_on_devices",
            "requests",
        ] {
            assert_eq!(number(http, key), number(https, key), "{key}: {cost}");
        }
        assert_eq!(number(cost, "people"), number(https, "people"));
        assert_eq!(number(cost, "devices"), number(https, "devices"));
        for (ratio, key) in [
            ("wall_ratio", "wall_ms"),
            ("cpu_ratio", "cpu_ms"),
            ("simulator_cpu_ratio", "simulator_cpu_ms"),
        ] {
            assert!(
                (number(cost, ratio) - number(https, key) / number(http, key)).abs() < 1e-9,
                "{ratio} is https over http: {cost}"
            );
        }
        assert_eq!(number(cost, "https_requests"), number(https, "requests"));
        assert_eq!(
            number(cost, "https_handshakes"),
            number(https, "connections")
        );
    }
    // One person per request: keep-alive spares a handshake per request.
    let one_per_request = &costs[1];
    assert!(
        4.0 * number(one_per_request, "https_handshakes")
            <= number(one_per_request, "https_requests"),
        "{one_per_request}"
    );
    let simulator = &results["simulator"];
    assert!(number(simulator, "requests") > 0.0, "{simulator}");
}
