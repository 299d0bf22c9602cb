//! What HTTPS costs: the TLS group's workloads, each measured over plain HTTP and over
//! HTTPS (self-signed devices, each pinned), set against each other.
//!
//! A comparison is the pair of rows whose workloads share a [`Workload::side_of`]. Its
//! ratios are HTTPS over HTTP: of the wall time, of catraca's own CPU time (the client
//! side of TLS: handshakes, the pinning verifier, encryption of every request and
//! decryption of every answer) and of the simulator's CPU time (the devices' side of the
//! same work, which a real turnstile pays on its own processor). The handshakes are
//! the connections the HTTPS devices accepted: keep-alive is what keeps them few.

use super::workloads::{Transport, Workload};
use super::Row;
use serde::Serialize;
use std::fmt::Write as _;

/// One comparison of the TLS group, HTTPS over HTTP.
#[derive(Debug, Clone, Serialize)]
pub struct TlsCost {
    /// What both sides ran, such as `TLS scale 10000`.
    pub workload: String,
    pub people: u64,
    pub devices: u64,
    /// The rows of the two sides (their `workload` names).
    pub http_row: String,
    pub https_row: String,
    /// `https_row.wall_ms / http_row.wall_ms`.
    pub wall_ratio: f64,
    /// `https_row.cpu_ms / http_row.cpu_ms`: catraca's own CPU.
    pub cpu_ratio: f64,
    /// `https_row.simulator_cpu_ms / http_row.simulator_cpu_ms`: the devices' side.
    pub simulator_cpu_ratio: f64,
    /// Requests the HTTPS devices received, and the TLS handshakes (connections) that
    /// carried them.
    pub https_requests: u64,
    pub https_handshakes: u64,
}

/// The comparisons among `rows`, measured from `workloads` (in the same order; a
/// comparison missing a side is left out).
pub fn comparisons(workloads: &[Workload], rows: &[Row]) -> Vec<TlsCost> {
    let side = |comparison: &str, transport: Transport| {
        workloads
            .iter()
            .zip(rows)
            .find(|(w, _)| w.side_of.as_deref() == Some(comparison) && w.transport == transport)
            .map(|(_, row)| row)
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut costs = Vec::new();
    for comparison in workloads.iter().filter_map(|w| w.side_of.as_deref()) {
        if seen.contains(&comparison) {
            continue;
        }
        seen.push(comparison);
        let http = side(comparison, Transport::HttpDevicesFile);
        let https = side(comparison, Transport::HttpsPinned);
        if let (Some(http), Some(https)) = (http, https) {
            costs.push(TlsCost {
                workload: comparison.to_string(),
                people: https.people,
                devices: https.devices,
                http_row: http.workload.clone(),
                https_row: https.workload.clone(),
                wall_ratio: ratio(https.wall_ms, http.wall_ms),
                cpu_ratio: ratio(https.cpu_ms, http.cpu_ms),
                simulator_cpu_ratio: ratio(https.simulator_cpu_ms, http.simulator_cpu_ms),
                https_requests: https.requests,
                https_handshakes: https.connections,
            });
        }
    }
    costs
}

/// `over / under`, or 0 when there is nothing to divide by (a run too short to charge).
fn ratio(over: f64, under: f64) -> f64 {
    if under > 0.0 {
        over / under
    } else {
        0.0
    }
}

/// The line printed after the table, or nothing when the TLS group did not run.
pub fn line(costs: &[TlsCost]) -> Option<String> {
    if costs.is_empty() {
        return None;
    }
    let mut out = String::from(
        "TLS, https over http (self-signed devices, each pinned in the devices file):",
    );
    for (i, cost) in costs.iter().enumerate() {
        let _ = write!(
            out,
            "{} {} ({} x {}): wall {:.2}, catraca CPU {:.2} (simulator CPU {:.2}; {} TLS connections for {} requests)",
            if i == 0 { "" } else { ";" },
            cost.workload,
            cost.people,
            cost.devices,
            cost.wall_ratio,
            cost.cpu_ratio,
            cost.simulator_cpu_ratio,
            cost.https_handshakes,
            cost.https_requests,
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::workloads::{all, Sizes};

    fn row(workload: &Workload, wall_ms: f64, cpu_ms: f64, connections: u64) -> Row {
        Row {
            workload: workload.name.clone(),
            settings: workload.settings(),
            cache: workload.cache.label().to_string(),
            people: workload.people as u64,
            devices: workload.devices as u64,
            pairs: workload.pairs(),
            wall_ms,
            ideal_ms: None,
            efficiency: None,
            requests: 100,
            creates: 90,
            requests_per_pair: 100.0 / workload.pairs() as f64,
            peak_rss_mb: 10.0,
            cpu_ms,
            simulator_cpu_ms: cpu_ms * 2.0,
            operations: workload.pairs(),
            registered: workload.pairs(),
            skipped_cache: 0,
            failed: 0,
            not_cached: 0,
            cached_after: None,
            users_on_devices: workload.pairs(),
            fast_finished_ms: wall_ms,
            slow_finished_ms: None,
            transport: workload.transport.scheme().to_string(),
            connections,
            photos_sent: 0,
            photo_requests: 0,
            photo_kb: 0.0,
        }
    }

    #[test]
    fn each_comparison_is_https_over_http_of_its_own_two_rows() {
        let workloads = all(&Sizes::quick(), &["W1".into(), "TLS".into()]);
        let rows: Vec<Row> = workloads
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let https = w.transport == Transport::HttpsPinned;
                let scale = if https { 1.5 } else { 1.0 };
                row(w, 100.0 * (i + 1) as f64 * scale, 40.0 * scale, 4)
            })
            .collect();
        let costs = comparisons(&workloads, &rows);
        assert_eq!(costs.len(), 2, "{costs:?}");
        assert_eq!(costs[0].workload, "TLS scale 30");
        assert_eq!(costs[0].http_row, "TLS scale 30, http");
        assert_eq!(costs[0].https_row, "TLS scale 30, https");
        // W1's two rows come first: the scale comparison is rows 3 and 4.
        assert!((costs[0].wall_ratio - 4.0 * 1.5 / 3.0).abs() < 1e-9);
        assert!((costs[0].cpu_ratio - 1.5).abs() < 1e-9);
        assert!((costs[0].simulator_cpu_ratio - 1.5).abs() < 1e-9);
        assert_eq!(
            (costs[1].https_handshakes, costs[1].https_requests),
            (4, 100)
        );
        let line = line(&costs).unwrap();
        assert!(
            line.contains("TLS scale 30 (30 x 3): wall 2.00, catraca CPU 1.50")
                && line.contains("; TLS one per request (20 x 2)"),
            "{line}"
        );
        assert_eq!(super::line(&[]), None);
    }
}
