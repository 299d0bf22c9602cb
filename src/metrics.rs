//! The run in Prometheus' text exposition format (version 0.0.4): served at `/metrics`
//! by the dashboard during the run and written by `--metrics-file` at its end, for
//! node_exporter's textfile collector. Both come from the same [`Status`] snapshot, so
//! a scrape and the file agree with `/api/status`.
//!
//! Every series is labelled with the device's name; outcome counters use the report's
//! category names (`registered`, `updated`, `unchanged`, `skipped_cache`, `failed`,
//! `removed`).

use crate::device::telemetry::LATENCY_BUCKETS_MS;
use crate::live::{Phase, Status};
use std::fmt::Write as _;
use std::path::Path;

/// The text format's content type, for the `/metrics` answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `status` as Prometheus text.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "catraca_operations",
        "gauge",
        "Operations in this run: person-on-device pairs, plus people taken off devices.",
    );
    let _ = writeln!(out, "catraca_operations {}", status.operations);
    header(
        &mut out,
        "catraca_pairs_done",
        "gauge",
        "Pairs finished so far, in any outcome.",
    );
    let _ = writeln!(out, "catraca_pairs_done {}", status.done);
    header(
        &mut out,
        "catraca_run_finished",
        "gauge",
        "1 once the run has ended (finished or interrupted), else 0.",
    );
    let _ = writeln!(
        out,
        "catraca_run_finished {}",
        u8::from(status.phase != Phase::Running)
    );
    header(
        &mut out,
        "catraca_run_elapsed_seconds",
        "gauge",
        "Seconds since the run started (its duration once it ended).",
    );
    let _ = writeln!(
        out,
        "catraca_run_elapsed_seconds {}",
        status.elapsed_ms as f64 / 1000.0
    );

    header(
        &mut out,
        "catraca_pairs_total",
        "counter",
        "Pairs finished, by device and outcome.",
    );
    for d in &status.devices {
        let device = escape(&d.name);
        for (category, count) in d.counts.iter() {
            let outcome = category.key();
            let _ = writeln!(
                out,
                "catraca_pairs_total{{device=\"{device}\",outcome=\"{outcome}\"}} {count}"
            );
        }
    }

    header(
        &mut out,
        "catraca_requests_in_flight",
        "gauge",
        "HTTP requests to the device waiting for an answer now.",
    );
    per_device(&mut out, status, "catraca_requests_in_flight", |d| {
        d.in_flight.to_string()
    });
    header(
        &mut out,
        "catraca_requests_total",
        "counter",
        "HTTP requests sent to the device, retries included.",
    );
    per_device(&mut out, status, "catraca_requests_total", |d| {
        d.requests.to_string()
    });
    header(
        &mut out,
        "catraca_retries_total",
        "counter",
        "Requests repeated after a transient failure (timeout, reset, 503).",
    );
    per_device(&mut out, status, "catraca_retries_total", |d| {
        d.retries.to_string()
    });
    header(
        &mut out,
        "catraca_photos_total",
        "counter",
        "Face photos the device stored (result=sent) and those it refused or that did not fit its family (result=refused).",
    );
    for d in &status.devices {
        let device = escape(&d.name);
        for (result, count) in [("sent", d.photos_sent), ("refused", d.photos_refused)] {
            let _ = writeln!(
                out,
                "catraca_photos_total{{device=\"{device}\",result=\"{result}\"}} {count}"
            );
        }
    }

    header(
        &mut out,
        "catraca_breaker_state",
        "gauge",
        "The device's circuit breaker: 1 for its current state (ok, open, half-open), 0 for the others.",
    );
    for d in &status.devices {
        let device = escape(&d.name);
        for state in ["ok", "open", "half-open"] {
            let _ = writeln!(
                out,
                "catraca_breaker_state{{device=\"{device}\",state=\"{state}\"}} {}",
                u8::from(d.breaker == state)
            );
        }
    }

    header(
        &mut out,
        "catraca_request_duration_seconds",
        "histogram",
        "Time from sending a request to the device to the end of its answer.",
    );
    for d in &status.devices {
        let device = escape(&d.name);
        let mut cumulative = 0;
        for (i, count) in d.latency.counts.iter().enumerate() {
            cumulative += count;
            let le = match LATENCY_BUCKETS_MS.get(i) {
                Some(&ms) => format!("{}", ms as f64 / 1000.0),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "catraca_request_duration_seconds_bucket{{device=\"{device}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "catraca_request_duration_seconds_sum{{device=\"{device}\"}} {}",
            d.latency.sum.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "catraca_request_duration_seconds_count{{device=\"{device}\"}} {}",
            d.latency.total
        );
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn per_device(
    out: &mut String,
    status: &Status,
    name: &str,
    value: impl Fn(&crate::live::DeviceStatus) -> String,
) {
    for d in &status.devices {
        let _ = writeln!(out, "{name}{{device=\"{}\"}} {}", escape(&d.name), value(d));
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `status` to `path` as node_exporter's textfile collector expects: whole or not
/// at all (a temporary file in the same directory, then a rename), so a scrape never
/// reads half a file.
pub fn write_file(path: &Path, status: &Status) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut file, render(status).as_bytes())?;
    // A temporary file is private (0600); node_exporter usually runs as another user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
