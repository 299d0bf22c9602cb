//! `catraca check`: the preflight before the doors open. Contacts every configured device
//! at once (one thread each) and prints one line per device: reachable, login accepted,
//! firmware and model where the vendor's API tells them, people stored, clock drift
//! against this machine, round-trip time. Exit status 0 when every device is ready,
//! 1 otherwise, 2 for a configuration error (nothing contacted).
//!
//! It sends only reads: a login, one `session_is_valid`, and pages of user ids. Nothing
//! is retried (a preflight reports what it sees, quickly) and a refused login is never
//! repeated, as in a run.

use crate::config::DeviceConfig;
use crate::device::http::Timeouts;
use crate::device::tls::TlsTrust;
use crate::device::RetryPolicy;
use crate::device::{DeviceError, DeviceFacts};
use crate::exit::Exit;
use crate::i18n::{t, tr, Msg};
use crate::style::{paint, Color};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// A clock further off than this makes validity windows (begin / end of access) start
/// and end at the wrong time: 5 minutes, well beyond what NTP leaves and what a guard at
/// the door would notice.
pub const CLOCK_DRIFT_WARNING: Duration = Duration::from_secs(5 * 60);

/// What was found about one device. JSON keys are stable.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceCheck {
    pub name: String,
    pub url: String,
    /// The device answered over HTTP.
    pub reachable: bool,
    /// The login was accepted; null when it could not be tried.
    pub login_ok: Option<bool>,
    pub firmware: Option<String>,
    pub model: Option<String>,
    pub people: Option<u64>,
    /// Device clock minus this machine's, in seconds; null when the device does not say.
    pub clock_drift_s: Option<i64>,
    pub round_trip_ms: Option<f64>,
    /// Reachable and login accepted (what the driver could read, it read).
    pub ready: bool,
    /// Why it is not ready.
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// The SHA-256 fingerprint of the certificate an https device presented (trusted
    /// or not); null for http devices or when no handshake got that far.
    pub certificate: Option<String>,
    /// How that certificate is trusted: `pinned`, `authority` or `unchecked`
    /// (`--insecure-tls`); null for http devices.
    pub certificate_trust: Option<&'static str>,
    /// How the device's reader writes cards (`card_format`, with `card_pad`).
    pub card_format: String,
    /// Whether `card_format` is set in the devices file (else the vendor's default).
    pub card_format_set: bool,
    /// What the driver learned of the firmware: generation, limits, Digest nonce uses.
    pub learned: Vec<String>,
}

impl DeviceCheck {
    fn of(device: &DeviceConfig, result: Result<DeviceFacts, DeviceError>) -> DeviceCheck {
        let mut check = DeviceCheck {
            name: device.name.clone(),
            url: device.url.clone(),
            reachable: false,
            login_ok: None,
            firmware: None,
            model: None,
            people: None,
            clock_drift_s: None,
            round_trip_ms: None,
            ready: false,
            error: None,
            warnings: Vec::new(),
            certificate: None,
            certificate_trust: device
                .url
                .starts_with("https://")
                .then_some(match device.tls {
                    TlsTrust::Pinned(_) => "pinned",
                    TlsTrust::Authorities { .. } => "authority",
                    TlsTrust::Insecure => "unchecked",
                }),
            card_format: device.cards.describe(),
            card_format_set: device.cards.explicit,
            learned: Vec::new(),
        };
        if !device.cards.explicit && !crate::card::CardFormat::default_is_certain(device.kind) {
            check.warnings.push(tr(
                Msg::CheckCardsUncertain,
                &[
                    ("format", &check.card_format),
                    ("kind", &device.kind),
                    ("name", &device.name),
                ],
            ));
        }
        match result {
            Ok(facts) => {
                check.reachable = true;
                check.login_ok = Some(true);
                check.firmware = facts.firmware;
                check.model = facts.model;
                check.people = facts.people;
                check.round_trip_ms = facts
                    .round_trip
                    .map(|rtt| (rtt.as_secs_f64() * 10_000.0).round() / 10.0);
                check.clock_drift_s = facts.clock.map(|c| c.drift_seconds());
                check.ready = true;
                if let Some(drift) = check.clock_drift_s {
                    if drift.unsigned_abs() > CLOCK_DRIFT_WARNING.as_secs() {
                        check.warnings.push(tr(
                            Msg::CheckClockOff,
                            &[("off", &human_seconds(drift.unsigned_abs()))],
                        ));
                    }
                }
            }
            Err(error) => {
                // Reachable means it answered: the breaker's own test of that.
                check.reachable = !crate::device::breaker::is_no_answer(&error);
                if matches!(error, DeviceError::LoginRefused { .. }) {
                    check.login_ok = Some(false);
                }
                check.error = Some(error.to_string());
            }
        }
        check
    }
}

fn human_seconds(seconds: u64) -> String {
    match seconds {
        0..=119 => format!("{seconds} s"),
        120..=7199 => format!("{} min", seconds / 60),
        _ => format!("{:.1} h", seconds as f64 / 3600.0),
    }
}

/// Checks every device in parallel; results in the order of the configuration.
pub fn check_devices(devices: &[DeviceConfig], timeouts: Timeouts) -> Vec<DeviceCheck> {
    let no_retries = RetryPolicy {
        retries: 0,
        ..RetryPolicy::default()
    };
    std::thread::scope(|scope| {
        let running: Vec<_> = devices
            .iter()
            .map(|device| {
                let retry = no_retries.clone();
                scope.spawn(move || {
                    let driver = device.connect(timeouts, retry);
                    let mut check = DeviceCheck::of(device, driver.inspect());
                    if check.ready {
                        check.learned = driver.learned();
                        check.learned.push(driver.face_facts());
                    }
                    check.certificate = driver.telemetry().certificate().map(|f| f.to_string());
                    check
                })
            })
            .collect();
        running
            .into_iter()
            .zip(devices)
            .map(|(thread, device)| {
                thread.join().unwrap_or_else(|_| {
                    DeviceCheck::of(
                        device,
                        Err(DeviceError::Internal("the check panicked".into())),
                    )
                })
            })
            .collect()
    })
}

/// The table `catraca check` prints, the status coloured when `color`.
pub fn to_text(checks: &[DeviceCheck], color: bool) -> String {
    let yes_no = |b: bool| t(if b { Msg::CheckYes } else { Msg::CheckNo });
    let rows: Vec<[String; 9]> = checks
        .iter()
        .map(|c| {
            [
                c.name.clone(),
                yes_no(c.reachable).to_string(),
                match c.login_ok {
                    Some(true) => t(Msg::CheckLoginOk).into(),
                    Some(false) => t(Msg::CheckLoginRefused).into(),
                    None => "-".into(),
                },
                match (&c.firmware, &c.model) {
                    (None, None) if c.reachable => t(Msg::CheckNotReported).into(),
                    (None, None) => "-".into(),
                    (f, m) => format!(
                        "{} / {}",
                        f.as_deref().unwrap_or("?"),
                        m.as_deref().unwrap_or("?")
                    ),
                },
                match c.people {
                    Some(p) => p.to_string(),
                    None if c.ready => t(Msg::CheckNotReported).into(),
                    None => "-".into(),
                },
                match c.clock_drift_s {
                    Some(d) => format!("{d:+} s"),
                    None if c.ready => t(Msg::CheckNotReported).into(),
                    None => "-".into(),
                },
                c.round_trip_ms
                    .map_or("-".into(), |ms| format!("{ms:.1} ms")),
                tr(
                    if c.card_format_set {
                        Msg::CheckCardsSet
                    } else {
                        Msg::CheckCardsDefault
                    },
                    &[("format", &c.card_format)],
                ),
                t(if c.ready && c.warnings.is_empty() {
                    Msg::CheckReady
                } else if c.ready {
                    Msg::CheckReadyWarning
                } else {
                    Msg::CheckNotReady
                })
                .into(),
            ]
        })
        .collect();
    let header = [
        Msg::ColDevice,
        Msg::CheckColReachable,
        Msg::CheckColLogin,
        Msg::CheckColFirmware,
        Msg::CheckColPeople,
        Msg::CheckColClock,
        Msg::CheckColRoundTrip,
        Msg::CheckColCards,
        Msg::CheckColStatus,
    ]
    .map(t);
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            // Names and words left, numbers right.
            // The status after padding, so colour codes do not count as width.
            let shown = match i {
                8 if *cell == t(Msg::CheckReady) => paint(cell, Color::Green, color),
                8 if *cell == t(Msg::CheckReadyWarning) => paint(cell, Color::Yellow, color),
                8 if *cell == t(Msg::CheckNotReady) => paint(cell, Color::Red, color),
                _ => cell.clone(),
            };
            if (4..=6).contains(&i) {
                let _ = write!(text, "{}{shown}  ", " ".repeat(pad));
            } else {
                let _ = write!(text, "{shown}{}  ", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&mut out, &header.map(String::from));
    for row in &rows {
        line(&mut out, row);
    }
    let mut notes = String::new();
    for c in checks {
        if let (Some(certificate), Some(trust), true) =
            (&c.certificate, c.certificate_trust, c.ready)
        {
            let how = t(match trust {
                "pinned" => Msg::CheckCertPinned,
                "authority" => Msg::CheckCertAuthority,
                _ => Msg::CheckCertUnchecked,
            });
            let _ = writeln!(
                notes,
                "  {} ({}): {}",
                c.name,
                c.url,
                tr(
                    Msg::CheckCertificate,
                    &[("fingerprint", certificate), ("how", &how)]
                )
            );
        }
        if let Some(error) = &c.error {
            let _ = writeln!(notes, "  {} ({}): {error}", c.name, c.url);
        }
        for learned in &c.learned {
            let _ = writeln!(notes, "  {} ({}): {learned}", c.name, c.url);
        }
        for warning in &c.warnings {
            let _ = writeln!(
                notes,
                "  {} ({}): {}: {warning}",
                c.name,
                c.url,
                t(Msg::CheckWarning)
            );
        }
    }
    if !notes.is_empty() {
        let _ = write!(out, "\n{notes}");
    }
    let ready = checks.iter().filter(|c| c.ready).count();
    let _ = writeln!(
        out,
        "\n{}{}",
        tr(
            Msg::CheckSummary,
            &[("ready", &ready), ("total", &checks.len())]
        ),
        if ready == checks.len() {
            ""
        } else {
            t(Msg::CheckFixOthers)
        }
    );
    out
}

/// What `catraca check` needs, resolved from its flags.
#[derive(Debug)]
pub struct CheckConfig {
    /// The devices to contact, with their credentials and trust.
    pub devices: Vec<DeviceConfig>,
    /// Default: [`DEFAULT_TIMEOUT`] for answers, [`Timeouts::default`]'s for connecting.
    pub timeouts: Timeouts,
    /// The results as JSON on stdout instead of the table.
    pub json: bool,
}

/// How long a preflight waits for each answer: 10 s, the vendor SDK's own timeout. A
/// preflight must not hang on a device that is off, and needs no bulk loads.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `catraca check`.
pub fn run(config: CheckConfig) -> anyhow::Result<Exit> {
    let checks = check_devices(&config.devices, config.timeouts);
    let text = if config.json {
        serde_json::to_string_pretty(&checks)? + "\n"
    } else {
        to_text(&checks, crate::style::stdout_enabled())
    };
    crate::stdout::print_stdout(&text)?;
    Ok(if checks.iter().all(|c| c.ready) {
        Exit::Done
    } else {
        Exit::SomeFailed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Kind;
    use crate::device::ClockReading;
    use crate::device::Credentials;
    use std::time::SystemTime;

    fn device() -> DeviceConfig {
        DeviceConfig {
            name: "portaria-1".into(),
            url: "http://10.0.0.5".into(),
            kind: Kind::Controlid,
            site: None,
            max_in_flight: 1,
            rate: None,
            nonce_uses: None,
            long_names: None,
            credentials: Credentials {
                login: "admin".into(),
                password: "x".into(),
                source: "test".into(),
            },
            tls: Default::default(),
            cards: crate::card::CardRule::vendor_default(Kind::Controlid),
            trace: None,
            faces: None,
        }
    }

    #[test]
    fn a_clock_more_than_five_minutes_off_is_a_warning_not_a_failure() {
        let local = SystemTime::now();
        let facts = |offset: Duration| DeviceFacts {
            people: Some(3),
            clock: Some(ClockReading {
                device: local - offset,
                local,
            }),
            round_trip: Some(Duration::from_millis(3)),
            ..DeviceFacts::default()
        };
        let close = DeviceCheck::of(&device(), Ok(facts(Duration::from_secs(240))));
        assert_eq!(close.clock_drift_s, Some(-240));
        assert!(close.ready && close.warnings.is_empty());
        let far = DeviceCheck::of(&device(), Ok(facts(Duration::from_secs(2 * 3600))));
        assert_eq!(far.clock_drift_s, Some(-7200));
        assert!(far.ready);
        assert!(far.warnings[0].contains("2.0 h"), "{:?}", far.warnings);
        assert!(to_text(std::slice::from_ref(&far), false).contains("ready (warning)"));
        assert!(to_text(&[far], true).contains("\x1b[33mready (warning)\x1b[0m"));
    }

    #[test]
    fn a_refused_login_is_reachable_but_not_ready() {
        let refused = DeviceCheck::of(
            &device(),
            Err(DeviceError::LoginRefused {
                status: 401,
                message: "Invalid login or password".into(),
                hint: "CATRACA_PASSWORD".into(),
            }),
        );
        assert!(refused.reachable && !refused.ready);
        assert_eq!(refused.login_ok, Some(false));
        let down = DeviceCheck::of(
            &device(),
            Err(DeviceError::Unreachable("connection refused".into())),
        );
        assert!(!down.reachable && down.login_ok.is_none());
    }
}
