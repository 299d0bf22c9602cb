//! `catraca learn-card`: one real swipe tells how a device's reader writes cards, before
//! a big enrollment writes thousands of them in a format the door then refuses.
//!
//! The device is asked to read the next card, each vendor its own way
//! (`docs/field-evidence.md`, sections 4 and 6): Hikvision `CaptureCardInfo`, polled
//! while the terminal answers `deviceError`; Control iD `remote_enroll` (type `card`,
//! `save: false`); Intelbras/Dahua the newest `AccessControlCardRec` record after the
//! command started (records are numbered, so "newer than the last one before the
//! prompt" does not depend on the device's clock). Nothing is ever written to the device.
//! With `--card`, the number printed on that card, the formats of `card.rs` are tried
//! and the one (with its padding) that writes exactly what the reader reported is the
//! line to add to the devices file; exit 0. When none does, exit 1 with what each format
//! would have written. A device that reads nothing before `--timeout` is exit 1 too.

use crate::card::{self, Candidate, CardRule};
use crate::config::{DeviceConfig, Kind};
use crate::device::controlid::ControlIdDevice;
use crate::device::hikvision::HikvisionDevice;
use crate::device::http::{HttpClient, Timeouts};
use crate::device::intelbras::IntelbrasDevice;
use crate::device::DeviceError;
use crate::device::RetryPolicy;
use crate::exit::Exit;
use crate::i18n::{tr, Msg};
use crate::person::Card;
use crate::stdout::print_stdout;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How often a device is asked again while it waits for a card: every second, the
/// shortest interval the field clients use (field-evidence 6.4: 1 to 2 s).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Records this much older than the prompt still count as "before" on Intelbras: the
/// search window only bounds the answer, the record numbers decide (an hour either way
/// covers any clock a `catraca check` would not already flag).
const RECORD_WINDOW_S: i64 = 3600;

/// What `learn-card` found. JSON keys are stable.
#[derive(Debug, Clone, Serialize)]
pub struct Learned {
    pub device: String,
    pub kind: Kind,
    /// Exactly what the device reported for the card.
    pub read: String,
    /// The card as printed (`--card`), if given.
    pub card: Option<String>,
    /// The device's card format now, and whether the devices file sets it.
    pub current: FormatShown,
    /// Whether the current format writes the card as the device read it.
    pub current_matches: Option<bool>,
    /// The formats that write it exactly so, the best first (`--card` only).
    pub matches: Vec<FormatShown>,
    /// What each format would have written (`--card` only).
    pub candidates: Vec<Candidate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FormatShown {
    pub card_format: card::CardFormat,
    /// 0: no padding.
    pub card_pad: usize,
    pub explicit: bool,
}

impl From<CardRule> for FormatShown {
    fn from(rule: CardRule) -> FormatShown {
        FormatShown {
            card_format: rule.format,
            card_pad: rule.pad,
            explicit: rule.explicit,
        }
    }
}

/// What `catraca learn-card` needs, resolved from its flags.
#[derive(Debug)]
pub struct LearnCardConfig {
    /// The device to read from, with its credentials and card rule.
    pub device: DeviceConfig,
    /// The number printed on the card, to find the format that writes it as read.
    pub card: Option<Card>,
    /// How long to wait for the swipe.
    pub timeout: Duration,
    /// The result as JSON on stdout.
    pub json: bool,
}

/// Runs `catraca learn-card`.
pub fn run(config: LearnCardConfig) -> anyhow::Result<Exit> {
    let device = config.device;
    let read = match read_one_card(&device, config.timeout) {
        Ok(Some(read)) => read,
        Err(error) => {
            // The device, not the command line, is at fault: exit 1, as `check` does.
            eprintln!(
                "{}",
                tr(Msg::ErrorPrefix, &[("error", &format!("{error:#}"))])
            );
            return Ok(Exit::SomeFailed);
        }
        Ok(None) => {
            eprintln!(
                "no card was read at {} within {}s: swipe it while the command waits (or give a longer --timeout)",
                device.name,
                config.timeout.as_secs()
            );
            return Ok(Exit::SomeFailed);
        }
    };
    let learned = learned(&device, read, config.card);
    let found = config.card.is_none() || !learned.matches.is_empty();
    if config.json {
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&learned)?))?;
    } else {
        print_stdout(&to_text(&learned))?;
    }
    Ok(if found { Exit::Done } else { Exit::SomeFailed })
}

/// The device named `wanted` among `devices` (loaded from `file`).
pub fn find_device(
    devices: Vec<DeviceConfig>,
    wanted: &str,
    file: &std::path::Path,
) -> anyhow::Result<DeviceConfig> {
    let names: Vec<String> = devices.iter().map(|d| d.name.clone()).collect();
    devices
        .into_iter()
        .find(|d| d.name == wanted)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--device {wanted}: no device of that name in {}; its devices are {}",
                file.display(),
                names.join(", ")
            )
        })
}

/// Asks the device for the next card read on its reader, waiting up to `timeout`.
fn read_one_card(device: &DeviceConfig, timeout: Duration) -> anyhow::Result<Option<String>> {
    let deadline = Instant::now() + timeout;
    // Control iD's `remote_enroll` answers only once a card was read (or its own wait
    // ended): the request may take the whole wait.
    let timeouts = Timeouts {
        connect: Duration::from_secs(5),
        request: timeout + Duration::from_secs(10),
    };
    let http = HttpClient::new(timeouts, 1, device.tls.clone()).with_trace(device.trace.clone());
    let no_retries = RetryPolicy {
        retries: 0,
        ..RetryPolicy::default()
    };
    let credentials = device.credentials.clone();
    let failed = |e: DeviceError| anyhow::anyhow!("device {} ({}): {e}", device.name, device.url);
    let (name, url) = (device.name.as_str(), device.url.as_str());
    let prompt = || eprintln!("swipe the card at {name} now");
    match device.kind {
        Kind::Hikvision => {
            let driver = HikvisionDevice::new(name, url, credentials, http, no_retries);
            // The first poll puts the terminal in capture mode, and on firmware that
            // holds the answer until a card comes it does not return: prompt before it.
            prompt();
            loop {
                if let Some(card) = driver.capture_card().map_err(failed)? {
                    return Ok(Some(card));
                }
                if !wait_before_next_poll(deadline) {
                    return Ok(None);
                }
            }
        }
        Kind::Controlid => {
            let driver = ControlIdDevice::new(name, url, credentials, http, no_retries);
            prompt();
            while Instant::now() < deadline {
                match driver.read_next_card() {
                    Ok(Some(value)) => return Ok(Some(value.to_string())),
                    Ok(None) => {}
                    // Still waiting for a card when our own deadline passed.
                    Err(DeviceError::Timeout(_)) => return Ok(None),
                    Err(e) => return Err(failed(e)),
                }
            }
            Ok(None)
        }
        Kind::Intelbras => {
            let driver = IntelbrasDevice::new(name, url, credentials, http, no_retries);
            let window = |now: i64| (now - RECORD_WINDOW_S, now + RECORD_WINDOW_S);
            let started = chrono::Utc::now().timestamp();
            let (from, to) = window(started);
            let before = driver
                .card_records(from, to)
                .map_err(failed)?
                .last()
                .map_or(0, |(rec_no, _)| *rec_no);
            prompt();
            loop {
                let (_, to) = window(chrono::Utc::now().timestamp());
                let newest = driver
                    .card_records(from, to)
                    .map_err(failed)?
                    .into_iter()
                    .rfind(|(rec_no, _)| *rec_no > before);
                if let Some((_, card)) = newest {
                    return Ok(Some(card));
                }
                if !wait_before_next_poll(deadline) {
                    return Ok(None);
                }
            }
        }
    }
}

/// Sleeps [`POLL_EVERY`] (less near the deadline); false once the deadline has passed.
fn wait_before_next_poll(deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return false;
    }
    std::thread::sleep(left.min(POLL_EVERY));
    true
}

fn learned(device: &DeviceConfig, read: String, card: Option<Card>) -> Learned {
    let (matches, candidates, current_matches) = match card {
        Some(card) => (
            card::matching_rules(device.kind, card, &read)
                .into_iter()
                .map(FormatShown::from)
                .collect(),
            card::candidates(card),
            Some(device.cards.write(card).as_deref() == Ok(read.as_str())),
        ),
        None => (Vec::new(), Vec::new(), None),
    };
    Learned {
        device: device.name.clone(),
        kind: device.kind,
        read,
        card: card.map(|c| c.to_string()),
        current: device.cards.into(),
        current_matches,
        matches,
        candidates,
    }
}

fn rule_of(shown: &FormatShown) -> CardRule {
    CardRule {
        format: shown.card_format,
        pad: shown.card_pad,
        explicit: shown.explicit,
        limit: card::CardLimit::None,
    }
}

/// What `learn-card` prints without `--json`.
pub fn to_text(learned: &Learned) -> String {
    let current = rule_of(&learned.current).describe();
    let setting = if learned.current.explicit {
        format!("card_format {current} (set in the devices file)")
    } else {
        format!("card_format {current} (the {} default)", learned.kind)
    };
    let mut out = format!("{} read the card as {}\n", learned.device, learned.read);
    let Some(card) = &learned.card else {
        out.push_str(&format!(
            "{} now writes cards as {setting}; give --card with the number printed on the card to check it\n",
            learned.device
        ));
        return out;
    };
    if learned.current_matches == Some(true) {
        out.push_str(&format!(
            "card {card} matches: {setting} writes it as the reader reads it\n"
        ));
        if !learned.current.explicit {
            out.push_str("to make it explicit (and silence the warning on Intelbras), add to its [[device]] table:\n");
            out.push_str(&format!(
                "{}\n",
                rule_of(&learned.current).devices_file_lines()
            ));
        }
        return out;
    }
    match learned.matches.first() {
        Some(best) => {
            out.push_str(&format!(
                "card {card} is written as the reader reads it by card_format {}; {} now uses {setting}\n",
                rule_of(best).describe(),
                learned.device
            ));
            out.push_str(&format!(
                "add to the [[device]] table of {} in the devices file:\n{}\n",
                learned.device,
                rule_of(best).devices_file_lines()
            ));
        }
        None => {
            out.push_str(&format!(
                "no card_format writes card {card} as {}: the reader is configured in a way catraca cannot write (a byte-swapping or side-by-side conversion?); each format would write:\n",
                learned.read
            ));
            for candidate in &learned.candidates {
                let written = match (&candidate.writes, &candidate.refused) {
                    (Some(text), _) => text.clone(),
                    (None, Some(why)) => format!("(cannot: {why})"),
                    (None, None) => "-".into(),
                };
                out.push_str(&format!(
                    "  {:<9} {written}\n",
                    candidate.card_format.name()
                ));
            }
            out.push_str("check the card's printed number, or set the reader to report Wiegand-26 as its vendor documents\n");
        }
    }
    out
}
