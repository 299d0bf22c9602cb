//! HTTPS devices: a self-signed certificate is trusted only when pinned or under
//! `--insecure-tls`, a site authority only through `--ca-cert` and for the names it
//! signed; a device whose certificate is refused receives nothing, not even the login.

use crate::harness::*;
use catraca_sim::{FaultRates, Fleet, Kind, SimConfig, SimTls, SiteAuthority};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn self_signed() -> SimConfig {
    SimConfig {
        tls: SimTls::SelfSigned,
        ..SimConfig::default()
    }
}

/// A devices file listing `fleet`, device `i` pinned to `pins[i]` (none when `None`).
fn devices_file(sandbox: &Sandbox, fleet: &Fleet, pins: &[Option<String>]) -> PathBuf {
    let mut text = String::new();
    for (device, pin) in fleet.devices.iter().zip(pins) {
        text.push_str(&format!(
            "[[device]]\nname = \"{}\"\nurl = \"{}\"\nkind = \"{}\"\n",
            device.name(),
            device.url(),
            device.kind()
        ));
        if let Some(pin) = pin {
            text.push_str(&format!("tls_fingerprint = \"{pin}\"\n"));
        }
    }
    sandbox.write("devices.toml", text)
}

fn fingerprint_of(fleet: &Fleet, i: usize) -> String {
    fleet.devices[i]
        .fingerprint()
        .expect("an https device has a certificate")
        .to_string()
}

fn failures_on(report: &serde_json::Value, url: &str) -> Vec<String> {
    let device = url.trim_start_matches("https://");
    report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["device"].as_str() == Some(device) || f["device"].as_str() == Some(url))
        .map(|f| f["error"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn self_signed_devices_are_refused_by_default_and_told_what_to_pin() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, self_signed());
    // Two plan jobs per device (999 people each at most), one after the other.
    let rows = people(1100);
    let run = sandbox
        .enroll(&rows)
        .args(&["--json", "-vv", "--max-in-flight", "1"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(1);
    let report = run.report();
    assert_eq!(report["registered"], 0, "{}", run.shown);
    assert_eq!(report["failed"], 2200, "{}", run.shown);
    for (i, device) in fleet.devices.iter().enumerate() {
        let errors = failures_on(&report, &device.url());
        assert_eq!(errors.len(), 1100, "{}", run.shown);
        let pin = fingerprint_of(&fleet, i);
        for error in errors {
            assert!(
                error.contains("not trusted")
                    && error.contains("self-signed")
                    && error.contains(&format!("tls_fingerprint = \"{pin}\""))
                    && error.contains("--insecure-tls"),
                "{error}"
            );
        }
        // The handshake failed before any request: the login never left catraca, and
        // the refusal was remembered rather than tried again per pair.
        assert_eq!(device.stats().total, 0, "{}", run.shown);
        assert_eq!(device.connections_accepted(), 1, "{}", run.shown);
        assert_holds_exactly(device, &[]);
    }
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));
}

#[test]
fn pinned_devices_of_every_family_get_everyone_once_and_a_rerun_skips_them() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(
        &[
            (Kind::Controlid, 1),
            (Kind::Hikvision, 1),
            (Kind::Intelbras, 1),
        ],
        self_signed(),
    );
    let pins: Vec<Option<String>> = (0..3).map(|i| Some(fingerprint_of(&fleet, i))).collect();
    let devices = devices_file(&sandbox, &fleet, &pins);
    let rows = people(60);
    let run = || {
        sandbox
            .enroll(&rows)
            .args(&["--devices", devices.to_str().unwrap(), "--json"])
            .embedded_cache()
            .run()
    };
    let first = run();
    first.expect_code(0);
    assert_eq!(first.report()["registered"], 180, "{}", first.shown);
    for device in &fleet.devices {
        assert!(device.url().starts_with("https://"));
        assert_people(device, &rows);
    }
    let second = run();
    second.expect_code(0);
    assert_eq!(second.report()["skipped_cache"], 180, "{}", second.shown);
}

#[test]
fn a_certificate_other_than_the_pinned_one_is_refused_naming_both() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, self_signed());
    let (first, second) = (fingerprint_of(&fleet, 0), fingerprint_of(&fleet, 1));
    // Device 2 is pinned to device 1's certificate, as if something else answered there.
    let devices = devices_file(
        &sandbox,
        &fleet,
        &[Some(first.clone()), Some(first.clone())],
    );
    let rows = people(25);
    let run = sandbox
        .enroll(&rows)
        .args(&["--devices", devices.to_str().unwrap(), "--json"])
        .embedded_cache()
        .run();
    run.expect_code(1);
    let report = run.report();
    assert_eq!(report["registered"], 25, "{}", run.shown);
    assert_eq!(report["failed"], 25, "{}", run.shown);
    assert_holds_exactly(&fleet.devices[0], &rows);
    assert_holds_exactly(&fleet.devices[1], &[]);
    assert_eq!(fleet.devices[1].stats().total, 0);
    for failure in report["failures"].as_array().unwrap() {
        assert_eq!(failure["device"], fleet.devices[1].name(), "{failure}");
        let error = failure["error"].as_str().unwrap();
        assert!(
            error.contains("not the pinned one")
                && error.contains(&format!("presents {second}"))
                && error.contains(&format!("tls_fingerprint is {first}")),
            "{error}"
        );
    }
}

#[test]
fn insecure_tls_accepts_any_certificate_and_says_so() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, self_signed());
    let rows = people(40);
    // Proxies exported for other tools are not used to reach devices (this one is
    // a closed port: through it, nothing would arrive).
    let run = sandbox
        .enroll(&rows)
        .args(&["--insecure-tls"])
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(0);
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }
    assert!(
        run.stderr.contains("--insecure-tls: the certificates of")
            && run.stderr.contains("are not checked"),
        "{}",
        run.shown
    );
}

#[test]
fn a_site_authority_given_with_ca_cert_is_trusted_for_the_names_it_signed() {
    let sandbox = Sandbox::new();
    let authority = Arc::new(SiteAuthority::new().unwrap());
    let ca = sandbox.write("site-ca.pem", authority.pem());
    let config = SimConfig {
        tls: SimTls::Issued(authority),
        password: PASSWORD.to_string(),
        ..SimConfig::default()
    };
    // Listening on every address, with a certificate for localhost and 127.0.0.1.
    let fleet = Fleet::start_on(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, 1, &config).unwrap();
    let device = &fleet.devices[0];
    let rows = people(20);
    let enroll = |url: &str, extra: &[&str]| {
        sandbox
            .enroll(&rows)
            .args(&["--json", "--device", url])
            .args(extra)
            .embedded_cache()
            .run()
    };

    let without = enroll(&device.url(), &[]);
    without.expect_code(1);
    let errors = failures_on(&without.report(), &device.url());
    assert_eq!(errors.len(), 20, "{}", without.shown);
    assert!(
        errors[0].contains("not signed by an authority"),
        "{}",
        errors[0]
    );

    // 127.0.0.2 reaches the same device, but the certificate does not name it.
    let other_name = device.url().replace("127.0.0.1", "127.0.0.2");
    let wrong_name = enroll(&other_name, &["--ca-cert", ca.to_str().unwrap()]);
    wrong_name.expect_code(1);
    let errors = failures_on(&wrong_name.report(), &other_name);
    assert!(
        errors[0].contains("made out for localhost, 127.0.0.1, not for 127.0.0.2"),
        "{}",
        wrong_name.shown
    );
    assert_eq!(device.stats().total, 0);

    let trusted = enroll(&device.url(), &["--ca-cert", ca.to_str().unwrap()]);
    trusted.expect_code(0);
    assert_holds_exactly(device, &rows);

    let not_pem = sandbox.write("not-a-ca.pem", "hello\n");
    let refused = enroll(&device.url(), &["--ca-cert", not_pem.to_str().unwrap()]);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("not-a-ca.pem") && refused.stderr.contains("no certificate"),
        "{}",
        refused.shown
    );

    // A site's catraca.toml can name its authority once for every command; a bad one
    // is reported as the file's, not as a flag nobody typed.
    sandbox.write("catraca.toml", "ca_cert = \"not-a-ca.pem\"\n");
    let bad = sandbox.catraca(&["check", "--device", &device.url()]).run();
    bad.expect_code(2);
    assert!(
        bad.stderr.contains("ca_cert in catraca.toml") && !bad.stderr.contains("--ca-cert"),
        "{}",
        bad.shown
    );
    sandbox.write("catraca.toml", "ca_cert = \"site-ca.pem\"\n");
    let check = sandbox.catraca(&["check", "--device", &device.url()]).run();
    check.expect_code(0);
    assert!(
        check.stdout.contains("(issued by a trusted authority)"),
        "{}",
        check.shown
    );
}

#[test]
fn tls_mistakes_in_the_configuration_are_named_before_anything_is_sent() {
    let sandbox = Sandbox::new();
    let plain = fleet(1, SimConfig::default());
    let rows = people(5);
    let enroll = |devices: &PathBuf| {
        sandbox
            .enroll(&rows)
            .args(&["--devices", devices.to_str().unwrap()])
            .embedded_cache()
            .run()
    };

    // A pin on a plain-HTTP device.
    let pinned_http = devices_file(
        &sandbox,
        &plain,
        &[Some(format!("sha256:{}", "AB:".repeat(31) + "AB"))],
    );
    let run = enroll(&pinned_http);
    run.expect_code(2);
    assert!(
        run.stderr.contains("devices.toml")
            && run.stderr.contains("tls_fingerprint is for https://"),
        "{}",
        run.shown
    );

    // A fingerprint that is not one.
    let garbled = devices_file(&sandbox, &plain, &[Some("sha256:AB:CD".into())]);
    let text = std::fs::read_to_string(&garbled)
        .unwrap()
        .replace("http://", "https://");
    std::fs::write(&garbled, text).unwrap();
    let run = enroll(&garbled);
    run.expect_code(2);
    assert!(
        run.stderr.contains("devices.toml") && run.stderr.contains("64 hex digits"),
        "{}",
        run.shown
    );
    assert_eq!(plain.devices[0].stats().total, 0);

    // https:// on a device that serves plain HTTP.
    let url = plain.devices[0].url().replace("http://", "https://");
    let run = sandbox
        .enroll(&rows)
        .args(&["--json", "--device", &url, "--insecure-tls"])
        .embedded_cache()
        .run();
    run.expect_code(1);
    let errors = failures_on(&run.report(), &url);
    assert_eq!(errors.len(), 5, "{}", run.shown);
    assert!(errors[0].contains("does not speak TLS"), "{}", errors[0]);
}

#[test]
fn faults_over_tls_are_retried_and_everyone_ends_up_once() {
    let sandbox = Sandbox::new();
    let fleet = fleet(
        2,
        SimConfig {
            tls: SimTls::SelfSigned,
            faults: FaultRates {
                status_503: 0.10,
                reset: 0.05,
                hang: 0.0,
                garbage: 0.02,
            },
            faults_after_write: true,
            session_expiry_after: Some(40),
            seed: 7,
            ..SimConfig::default()
        },
    );
    let pins: Vec<Option<String>> = (0..2).map(|i| Some(fingerprint_of(&fleet, i))).collect();
    let devices = devices_file(&sandbox, &fleet, &pins);
    let rows = people(200);
    let run = sandbox
        .enroll(&rows)
        .args(&["--devices", devices.to_str().unwrap(), "--json"])
        .args(&["--batch-size", "20", "--retries", "6"])
        .embedded_cache()
        .run();
    run.expect_code(0);
    assert_eq!(run.report()["registered"], 400, "{}", run.shown);
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }
    // The faults did strike: resets tore TLS connections down mid-answer.
    let resets: u64 = fleet
        .devices
        .iter()
        .map(|d| d.stats().faults.get("reset").copied().unwrap_or(0))
        .sum();
    assert!(resets > 0, "no reset was drawn\n{}", run.shown);
}

#[test]
fn an_https_device_down_at_the_start_is_retried_not_refused_and_gets_everyone() {
    // As `a_device_that_comes_back_mid_run_gets_everyone`, over TLS: two devices keep
    // the run going while the third is down, so it is probed until it returns.
    let sandbox = Sandbox::new();
    let fleet = fleet(
        3,
        SimConfig {
            tls: SimTls::SelfSigned,
            latency: Duration::from_millis(40),
            ..SimConfig::default()
        },
    );
    let pins: Vec<Option<String>> = (0..3).map(|i| Some(fingerprint_of(&fleet, i))).collect();
    let devices = devices_file(&sandbox, &fleet, &pins);
    // Down: connections are reset during the handshake, which must stay a transient
    // failure (the breaker's business), not a TLS refusal remembered for the run.
    fleet.devices[0].set_down(true);
    let rows = people(200);
    let running = sandbox
        .enroll(&rows)
        .args(&["--json", "--batch-size", "5", "--devices"])
        .args(&[devices.to_str().unwrap()])
        .embedded_cache()
        .spawn();
    std::thread::sleep(Duration::from_millis(1200));
    fleet.devices[0].set_down(false);
    let run = running.wait();
    run.expect_code(0);
    assert_eq!(run.report()["registered"], 600, "{}", run.shown);
    for device in &fleet.devices {
        assert_holds_exactly(device, &rows);
    }
}

#[test]
fn an_http_url_for_an_https_device_says_to_write_https() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, self_signed());
    let url = fleet.devices[0].url().replace("https://", "http://");
    let run = sandbox
        .enroll(&people(3))
        .args(&["--json", "--retries", "0", "--device", &url])
        .embedded_cache()
        .run();
    run.expect_code(1);
    let errors = failures_on(&run.report(), &url.replace("http://", "https://"));
    assert!(
        !errors.is_empty() && errors[0].contains("write its address as https://"),
        "{}",
        run.shown
    );
}

#[test]
fn check_shows_each_https_device_certificate_and_how_it_is_trusted() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, self_signed());
    let pin = fingerprint_of(&fleet, 0);
    let devices = devices_file(&sandbox, &fleet, &[Some(pin.clone()), None]);
    let run = sandbox
        .catraca(&["check", "--devices", devices.to_str().unwrap(), "--json"])
        .run();
    run.expect_code(1);
    let checks: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let checks = checks.as_array().expect("one entry per device");
    assert_eq!(checks[0]["ready"], true, "{}", run.shown);
    assert_eq!(checks[0]["certificate"], pin.as_str());
    assert_eq!(checks[0]["certificate_trust"], "pinned");
    assert_eq!(checks[1]["ready"], false, "{}", run.shown);
    assert_eq!(checks[1]["certificate"], fingerprint_of(&fleet, 1).as_str());
    assert!(
        checks[1]["error"].as_str().unwrap().contains("not trusted"),
        "{}",
        run.shown
    );

    let insecure = sandbox
        .catraca(&[
            "check",
            "--devices",
            devices.to_str().unwrap(),
            "--insecure-tls",
        ])
        .run();
    insecure.expect_code(0);
    assert!(
        insecure
            .stdout
            .contains(&format!("certificate {pin} (pinned)"))
            && insecure.stdout.contains(&format!(
                "certificate {} (not checked: --insecure-tls)",
                fingerprint_of(&fleet, 1)
            )),
        "{}",
        insecure.shown
    );
}
