//! The live dashboard, `/api/status`, `/metrics`, `--metrics-file` and `--events`, seen
//! from outside as an operator (and Prometheus, and a browser) would.

use crate::harness::*;
use catraca_sim::{FaultRates, SimConfig};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Parses Prometheus text with a real parser, after checking each line's shape: a
/// `# HELP` / `# TYPE` pair before every family, and `name{labels} value` samples.
fn scrape(text: &str) -> prometheus_parse::Scrape {
    let mut typed = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split(' ');
            typed.insert(words.next().unwrap().to_string());
            let kind = words.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
        } else if line.starts_with("# HELP ") {
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family), "{name} has no # TYPE before it");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        }
    }
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text parses")
}

fn sample(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {metric} {labels:?}"));
    match &found.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        other => panic!("{metric} is {other:?}"),
    }
}

/// What a scrape must hold for `devices`: every series of every device, consistent.
fn check_metrics(text: &str, devices: &[String], operations: u64) -> prometheus_parse::Scrape {
    let scrape = scrape(text);
    assert_eq!(
        sample(&scrape, "catraca_operations", &[]),
        operations as f64
    );
    for device in devices {
        let d = device.as_str();
        for outcome in [
            "registered",
            "updated",
            "unchanged",
            "skipped_cache",
            "failed",
        ] {
            sample(
                &scrape,
                "catraca_pairs_total",
                &[("device", d), ("outcome", outcome)],
            );
        }
        sample(&scrape, "catraca_requests_in_flight", &[("device", d)]);
        sample(&scrape, "catraca_retries_total", &[("device", d)]);
        let requests = sample(&scrape, "catraca_requests_total", &[("device", d)]);
        let breaker: f64 = ["ok", "open", "half-open"]
            .iter()
            .map(|s| {
                sample(
                    &scrape,
                    "catraca_breaker_state",
                    &[("device", d), ("state", s)],
                )
            })
            .sum();
        assert_eq!(breaker, 1.0, "exactly one breaker state per device");
        let histogram = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "catraca_request_duration_seconds" && s.labels.get("device") == Some(d)
            })
            .unwrap_or_else(|| panic!("no latency histogram for {d}"));
        let prometheus_parse::Value::Histogram(buckets) = &histogram.value else {
            panic!("not a histogram: {histogram:?}");
        };
        assert!(buckets.len() > 10);
        assert!(
            buckets.windows(2).all(|w| w[0].count <= w[1].count),
            "cumulative"
        );
        let all = buckets.last().unwrap();
        assert!(all.less_than.is_infinite());
        let count = sample(
            &scrape,
            "catraca_request_duration_seconds_count",
            &[("device", d)],
        );
        assert_eq!(all.count, count);
        assert!(
            count <= requests && requests > 0.0,
            "{d}: {count} <= {requests}"
        );
    }
    scrape
}

fn status(base: &str) -> Value {
    let (code, body) = get(&format!("{base}api/status"));
    assert_eq!(code, 200);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/status is not JSON ({e}): {body}"))
}

/// Every line of an events file, parsed; checks the keys of each.
fn events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("the events file exists");
    text.lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("an events line is not JSON ({e}): {line}"));
            for key in [
                "time",
                "device",
                "registration_hash",
                "outcome",
                "attempts",
                "latency_ms",
                "error",
            ] {
                assert!(event.get(key).is_some(), "no {key} in {line}");
            }
            event
        })
        .collect()
}

#[test]
fn status_metrics_events_and_the_metrics_file_agree_on_a_finished_run() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let rows = people(20);
    let metrics_file = sandbox.path("textfile/catraca.prom");
    std::fs::create_dir_all(metrics_file.parent().unwrap()).unwrap();
    let events_file = sandbox.path("events.jsonl");
    let mut run = sandbox
        .enroll(&rows)
        .args(&["--cache", "none", "--json"])
        .args(&["--dashboard", "127.0.0.1:0", "--dashboard-linger", "60s"])
        .args(&["--metrics-file", metrics_file.to_str().unwrap()])
        .args(&["--events", events_file.to_str().unwrap()])
        .devices(&fleet)
        .spawn();
    let base = run.wait_for_line("dashboard: ", Duration::from_secs(30));
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    // The run ends; the dashboard lingers on the final numbers.
    let until = Instant::now() + Duration::from_secs(30);
    let last = loop {
        let s = status(&base);
        if s["phase"] == "finished" {
            break s;
        }
        assert!(Instant::now() < until, "the run did not finish: {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(last["operations"], 40);
    assert_eq!(last["done"], 40);
    assert_eq!(last["totals"]["registered"], 40);
    assert_eq!(last["eta_s"], Value::Null);
    let names: Vec<String> = last["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = fleet
        .urls()
        .iter()
        .map(|u| u.trim_start_matches("http://").to_string())
        .collect();
    assert_eq!(names, expected);
    for d in last["devices"].as_array().unwrap() {
        assert_eq!(d["done"], 20);
        assert_eq!(d["in_flight"], 0);
        assert_eq!(d["breaker"], "ok");
        assert!(d["requests"].as_u64().unwrap() > 0);
        assert!(d["latency_p50_ms"].as_u64().is_some());
    }

    let (code, text) = get(&format!("{base}metrics"));
    assert_eq!(code, 200);
    let scrape = check_metrics(&text, &names, 40);
    assert_eq!(
        sample(
            &scrape,
            "catraca_pairs_total",
            &[("device", &names[1]), ("outcome", "registered")]
        ),
        20.0
    );
    assert_eq!(sample(&scrape, "catraca_run_finished", &[]), 1.0);
    let file = std::fs::read_to_string(&metrics_file).expect("--metrics-file was written");
    check_metrics(&file, &names, 40);
    assert!(file.contains("catraca_run_finished 1"));

    // Read-only and nothing else.
    let (code, _) = get(&format!("{base}nothing-here"));
    assert_eq!(code, 404);
    let (code, page) = get(&base);
    assert_eq!(code, 200);
    assert!(page.contains("/api/status"));

    // Ctrl-C ends the linger; the run itself had finished: status 0.
    std::thread::sleep(Duration::from_millis(200));
    run.signal(libc::SIGINT);
    let ran = run.finish(Duration::from_secs(20));
    ran.expect_code(0);
    assert_eq!(ran.report()["registered"], 40, "{}", ran.shown);

    let lines = events(&events_file);
    assert_eq!(lines.len(), 40, "one line per pair");
    let mut per_person: HashMap<&str, HashSet<&str>> = HashMap::new();
    for e in &lines {
        assert_eq!(e["outcome"], "registered");
        assert!(e["attempts"].as_u64().unwrap() >= 1);
        assert!(e["latency_ms"].as_u64().is_some());
        assert_eq!(e["error"], Value::Null);
        per_person
            .entry(e["registration_hash"].as_str().unwrap())
            .or_default()
            .insert(e["device"].as_str().unwrap());
    }
    assert_eq!(per_person.len(), 20, "one hash per person");
    assert!(per_person.values().all(|d| d.len() == 2), "on both devices");
    let text = std::fs::read_to_string(&events_file).unwrap();
    for row in &rows {
        assert!(
            !text.contains(&row.registration),
            "a raw registration is in the events file"
        );
    }
}

#[test]
fn a_dashboard_address_in_use_stops_the_run_before_anything_is_sent() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let ran = sandbox
        .enroll(&people(3))
        .args(&["--cache", "none", "--dashboard", &addr])
        .devices(&fleet)
        .run();
    ran.expect_code(2);
    assert!(ran.stderr.contains(&addr), "{}", ran.shown);
    assert_eq!(fleet.devices[0].stats().total, 0, "{}", ran.shown);
}

pub fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "this test needs headless Chromium, and none is installed: run .ci/run, which installs it (apt-get install chromium) and then runs the tests"
    );
}

/// Runs headless Chromium on `url` with `extra` arguments; its stdout. Bounded: killed
/// after 60 s.
pub fn browse(browser: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1400,760",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let until = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The `data-*` attributes the page keeps on `<body>`: what it drew last.
fn body_attribute(dom: &str, name: &str) -> String {
    let body = &dom[dom.find("<body").expect("a <body>")..];
    let body = &body[..body.find('>').unwrap()];
    let start = body
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        + name.len()
        + 2;
    body[start..start + body[start..].find('"').unwrap()].to_string()
}

#[test]
fn the_dashboard_shows_a_run_in_progress_in_a_browser() {
    let browser = chromium();
    let sandbox = Sandbox::new();
    // Slow enough that the run outlives the browser's visits; interrupted at the end.
    let fleet = fleet(
        3,
        SimConfig {
            latency: Duration::from_millis(60),
            ..SimConfig::default()
        },
    );
    let rows = people(300);
    // Two copies of one person on the second device: catraca will not guess which is
    // right, so the dashboard has a failure to list. A few 503s show retries.
    fleet.devices[1].insert_user(&rows[2].registration, "Cópia A");
    fleet.devices[1].insert_user(&rows[2].registration, "Cópia B");
    fleet.devices[2].set_faults(FaultRates {
        status_503: 0.05,
        ..FaultRates::default()
    });
    let names = ["portaria-norte", "portaria-sul", "academia"];
    let devices: String = fleet
        .urls()
        .iter()
        .zip(names)
        .map(|(url, name)| format!("[[device]]\nname = \"{name}\"\nurl = \"{url}\"\n"))
        .collect();
    let devices = sandbox.write("devices.toml", devices);
    let events_file = sandbox.path("events.jsonl");
    let mut run = sandbox
        .enroll(&rows)
        .args(&["--cache", "none", "--json"])
        .args(&["--batch-size", "1", "--max-in-flight", "1"])
        .args(&["--dashboard", "127.0.0.1:0"])
        .args(&["--events", events_file.to_str().unwrap()])
        .args(&["--devices", devices.to_str().unwrap()])
        .spawn();
    let base = run.wait_for_line("dashboard: ", Duration::from_secs(30));
    let until = Instant::now() + Duration::from_secs(30);
    while status(&base)["recent_failures"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < until,
            "no failure shown: {}",
            status(&base)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let first = browse(
        &browser,
        &base,
        &["--virtual-time-budget=2000", "--dump-dom"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let second = browse(
        &browser,
        &base,
        &["--virtual-time-budget=2000", "--dump-dom"],
    );
    for dom in [&first, &second] {
        assert_eq!(body_attribute(dom, "data-phase"), "running", "{dom}");
        for name in names {
            assert!(dom.contains(name), "{name} is not on the page:\n{dom}");
        }
        assert_eq!(dom.matches("<tr class=\"device\">").count(), 3, "{dom}");
        assert!(
            dom.contains(&rows[2].registration),
            "the failure is listed:\n{dom}"
        );
    }
    let seen = |dom: &str| body_attribute(dom, "data-done").parse::<u64>().unwrap();
    assert!(
        seen(&second) > seen(&first),
        "the progress did not advance: {} then {}",
        seen(&first),
        seen(&second)
    );

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let shot = format!("--screenshot={}", screenshot.display());
    browse(&browser, &base, &["--virtual-time-budget=2000", &shot]);
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    if std::env::var_os("CATRACA_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
        std::fs::write(docs, &png).unwrap();
    }

    // Ctrl-C: in-flight requests finish, the rest are reported as not sent; every pair
    // still has its one line in the events file.
    run.signal(libc::SIGINT);
    let ran = run.finish(Duration::from_secs(30));
    ran.expect_code(130);
    let report = ran.report();
    assert_eq!(report["interrupted"], true);
    let lines = events(&events_file);
    assert_eq!(lines.len(), 900, "one line per pair, sent or not");
    let failed = lines.iter().filter(|e| e["outcome"] == "failed").count() as u64;
    assert_eq!(failed, report["failed"].as_u64().unwrap());
    assert!(lines
        .iter()
        .any(|e| e["outcome"] == "failed" && e["attempts"] == 0 && e["latency_ms"].is_null()));
}

#[test]
fn the_demo_serves_its_first_pass_and_lingers() {
    let sandbox = Sandbox::new();
    let mut run = sandbox
        .catraca(&[
            "demo",
            "--latency-ms",
            "0",
            "--dashboard",
            "127.0.0.1:0",
            "--dashboard-linger",
            "60s",
        ])
        .spawn();
    let lingering = run.wait_for_line("dashboard: ", Duration::from_secs(30));
    let base = lingering.split(' ').next().unwrap().to_string();
    // "stays up" is printed once both passes are done.
    run.wait_for_line(
        &format!("dashboard: {base} stays up"),
        Duration::from_secs(60),
    );
    let s = status(&base);
    assert_eq!(s["phase"], "finished", "{s}");
    assert_eq!(s["done"], 500, "{s}");
    assert_eq!(s["totals"]["registered"], 500, "the first pass: {s}");
    run.signal(libc::SIGINT);
    run.finish(Duration::from_secs(20)).expect_code(0);
}
