//! `catraca bench` at a tiny size, so the benchmark the README quotes cannot rot. It
//! asserts that its numbers add up, never a time: times depend on the machine.

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
    for group in ["W1 one per request", "W1 batched", "W2", "W3", "startup"] {
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
        assert_eq!(number(row, "failed"), 0.0, "{name}");
        assert_eq!(
            number(row, "users_on_devices"),
            pairs,
            "{name}: every person exactly once on every device"
        );
        assert!(
            (number(row, "requests_per_pair") * pairs - requests).abs() < 1e-6,
            "{name}: requests per pair is requests over pairs"
        );
        if name.starts_with("W3") {
            assert_eq!(number(row, "skipped_cache"), pairs, "{name}");
            assert_eq!(requests, 0.0, "{name}: all cached, nothing sent");
        } else {
            assert_eq!(number(row, "registered"), pairs, "{name}");
            // A login and a load per device at least, and at least one create per device.
            let devices = number(row, "devices");
            assert!(number(row, "creates") >= devices, "{name}");
            assert!(requests >= 3.0 * devices, "{name}");
        }
        if name.starts_with("W1 one per request") {
            // One person per request: one create per pair, plus a login and a load per device.
            assert_eq!(number(row, "creates"), pairs, "{name}");
            assert_eq!(requests, pairs + 2.0 * number(row, "devices"), "{name}");
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
    let simulator = &results["simulator"];
    assert!(number(simulator, "requests") > 0.0, "{simulator}");
}
