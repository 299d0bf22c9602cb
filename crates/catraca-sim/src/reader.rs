//! The card reader of a simulated device: how it writes the card it reads, the swipes it
//! has seen (granted only when the device holds the exact string the reader produced,
//! as a real controller compares), and the three ways a device lets a client learn
//! what its reader reports (`docs/field-evidence.md`, sections 4 and 6):
//!
//! - Hikvision `GET /ISAPI/AccessControl/CaptureCardInfo?format=json`: the first call
//!   puts the terminal in capture mode and answers `deviceError` (as some firmware does
//!   while it waits); after a swipe the next call answers `{"CardInfo":{"cardNo":..}}`.
//! - Control iD `POST /remote_enroll.fcgi` `{"type":"card","save":false,"sync":true}`:
//!   the answer waits for the next swipe (up to [`REMOTE_ENROLL_WAIT`]) and carries its
//!   `card_value`.
//! - Intelbras/Dahua `recordFinder.cgi?action=find&name=AccessControlCardRec`: the
//!   swipe log in flat text, oldest first, filtered by bare `StartTime` / `EndTime`
//!   (epoch seconds, device clock); `condition.StartTime` is ignored, as on 3.x firmware.
//!
//! A reader's representation is one of the encodings of `card.rs` (the simulator's own,
//! named as catraca's card formats) or one of two forms real readers produce that no
//! format writes:
//! the 24 bits' hex with its bytes swapped (Dahua `nCardNoConvert` 1) and facility and
//! number side by side in decimal (`4303012`), for tests where nothing should match.

use serde::Serialize;
use serde_json::json;
use std::time::Duration;

use crate::card::{Card, Encoding};
use crate::Kind;

use super::hikvision::Served;
use super::http::{Request, Response};

/// How long `remote_enroll` waits for a card before answering a timeout: 20 s, long
/// enough for an operator to walk to the reader, short enough that a client's request
/// timeout (catraca learn-card allows it plus 10 s) never cuts it first.
pub(crate) const REMOTE_ENROLL_WAIT: Duration = Duration::from_secs(20);

/// How a reader writes the card it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderFormat {
    /// In one encoding (named as catraca's card formats), zero-padded to `pad`
    /// characters (0: none).
    Format(Encoding, usize),
    /// The upper-case hex of the 24 Wiegand bits with the bytes in reverse order.
    SwappedHex,
    /// Facility, then the number in five digits, in decimal: `43,3012` reads `4303012`.
    SideBySide,
}

impl ReaderFormat {
    /// What a vendor's reader reports out of the box: the vendor's default format.
    pub fn of(kind: Kind) -> ReaderFormat {
        ReaderFormat::Format(Encoding::of(kind), 0)
    }

    /// `w26`, `w26-hex:8` (padded to 8), `w26-swapped` or `side-by-side`.
    pub fn parse(text: &str) -> Result<ReaderFormat, String> {
        match text {
            "w26-swapped" => return Ok(ReaderFormat::SwappedHex),
            "side-by-side" => return Ok(ReaderFormat::SideBySide),
            _ => {}
        }
        let (name, pad) = match text.split_once(':') {
            Some((name, pad)) => (
                name,
                pad.parse::<usize>()
                    .map_err(|_| format!("`{pad}` is not a length to pad to"))?,
            ),
            None => (text, 0),
        };
        let format = Encoding::from_name(name).ok_or_else(|| {
            format!(
                "`{name}` is not a reader format: {}, w26-swapped or side-by-side (a card format may end in :PAD)",
                Encoding::names()
            )
        })?;
        Ok(ReaderFormat::Format(format, pad))
    }

    /// The string the reader produces for `card`; `None` when it cannot read it (a pair
    /// beyond Wiegand-26 on a 26-bit reader, a pair on a reader of plain numbers).
    pub fn read(self, card: Card) -> Option<String> {
        let w26 = |card: Card| match card {
            Card::Wiegand { facility, number } if facility <= 255 && number <= 65_535 => {
                Some((facility, number))
            }
            _ => None,
        };
        match self {
            ReaderFormat::Format(encoding, pad) => {
                encoding.read(card).map(|text| format!("{text:0>pad$}"))
            }
            ReaderFormat::SwappedHex => w26(card).map(|(f, n)| {
                let bits = (f << 16) | n;
                format!(
                    "{:02X}{:02X}{:02X}",
                    bits & 0xFF,
                    (bits >> 8) & 0xFF,
                    bits >> 16
                )
            }),
            ReaderFormat::SideBySide => w26(card).map(|(f, n)| format!("{f}{n:05}")),
        }
    }
}

/// One card shown to a reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Swipe {
    /// The device's name.
    pub device: String,
    /// The card as printed on it (`F,N` or a number).
    pub card: String,
    /// What the reader produced; `None` when it could not read the card.
    pub read: Option<String>,
    /// Whether the door opened: the device holds exactly `read`.
    pub granted: bool,
    /// Who holds that card on the device (registration, employeeNo or UserID).
    pub holder: Option<String>,
    /// The record number (Intelbras `RecNo`), from 1.
    pub rec_no: u64,
    /// Device clock, Unix seconds.
    pub at: i64,
}

/// Hikvision's capture mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Capture {
    #[default]
    Idle,
    Waiting,
    Read(String),
}

/// A device's reader and what it has seen.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) format: ReaderFormat,
    pub(crate) swipes: Vec<Swipe>,
    capture: Capture,
    /// Whether each swipe is printed on stderr (`catraca simulate --log-swipes`).
    pub(crate) log: bool,
}

impl Reader {
    pub(crate) fn new(format: ReaderFormat, log: bool) -> Reader {
        Reader {
            format,
            swipes: Vec::new(),
            capture: Capture::Idle,
            log,
        }
    }

    /// Records a swipe whose read the device matched to `holder` (if anyone).
    pub(crate) fn record(
        &mut self,
        device: &str,
        card: Card,
        read: Option<String>,
        holder: Option<String>,
        at: i64,
    ) -> Swipe {
        if let (Capture::Waiting, Some(read)) = (&self.capture, &read) {
            self.capture = Capture::Read(read.clone());
        }
        let swipe = Swipe {
            device: device.to_owned(),
            card: card.to_string(),
            granted: holder.is_some(),
            read,
            holder,
            rec_no: self.swipes.len() as u64 + 1,
            at,
        };
        if self.log {
            eprintln!("{}", swipe_line(&swipe));
        }
        self.swipes.push(swipe.clone());
        swipe
    }

    /// Answers a learn call (`CaptureCardInfo`, `AccessControlCardRec`).
    pub(crate) fn serve(&mut self, request: &Request<'_>) -> Served {
        let response = if request.path.starts_with("/ISAPI/") {
            if request.method == "GET" {
                self.capture()
            } else {
                Response::json(
                    405,
                    b"{\"statusCode\":4,\"subStatusCode\":\"methodNotAllowed\"}".to_vec(),
                )
            }
        } else {
            let epoch = |name: &str| {
                request
                    .query_param(name)
                    .and_then(|v| v.parse::<i64>().ok())
            };
            let count = request
                .query_param("count")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(1024);
            self.card_records(epoch("StartTime"), epoch("EndTime"), count)
        };
        Served {
            response,
            created: None,
        }
    }

    /// Hikvision `CaptureCardInfo`: the card read since capture began, else capture
    /// mode and `deviceError`.
    pub(crate) fn capture(&mut self) -> Response {
        match std::mem::take(&mut self.capture) {
            Capture::Read(card_no) => Response::json(
                200,
                json!({"CardInfo": {"cardNo": card_no}})
                    .to_string()
                    .into_bytes(),
            ),
            Capture::Idle | Capture::Waiting => {
                self.capture = Capture::Waiting;
                let body = json!({
                    "statusCode": 3, "statusString": "Device Error", "subStatusCode": "deviceError",
                    "errorCode": 0x3000_0001_i64, "errorMsg": "waiting for a card",
                });
                Response::json(500, body.to_string().into_bytes())
            }
        }
    }

    /// Intelbras `recordFinder.cgi?action=find&name=AccessControlCardRec`: swipes
    /// between `start` and `end` (when both are given), at most `count`, oldest first.
    pub(crate) fn card_records(
        &self,
        start: Option<i64>,
        end: Option<i64>,
        count: usize,
    ) -> Response {
        let window = |at: i64| match (start, end) {
            (Some(start), Some(end)) => (start..=end).contains(&at),
            _ => true,
        };
        let found: Vec<&Swipe> = self
            .swipes
            .iter()
            .filter(|s| window(s.at))
            .take(count)
            .collect();
        let mut text = format!("found={}\r\n", found.len());
        for (i, swipe) in found.iter().enumerate() {
            let mut line = |field: &str, value: &str| {
                text.push_str(&format!("records[{i}].{field}={value}\r\n"));
            };
            line("CardNo", swipe.read.as_deref().unwrap_or(""));
            line("CreateTime", &swipe.at.to_string());
            line("Door", "0");
            line("ErrorCode", if swipe.granted { "0" } else { "16" });
            line("Method", "1");
            line("ReaderID", "1");
            line("RecNo", &swipe.rec_no.to_string());
            line("Status", if swipe.granted { "1" } else { "0" });
            line("Type", "Entry");
            line("UserID", swipe.holder.as_deref().unwrap_or(""));
        }
        Response::text(200, &text)
    }
}

/// `catraca-2 swipe 43,3012 read 2821060: granted (1001)`.
pub fn swipe_line(swipe: &Swipe) -> String {
    let verdict = match (&swipe.read, &swipe.holder) {
        (None, _) => "refused (the reader cannot read this card)".to_owned(),
        (Some(_), Some(holder)) => format!("granted ({holder})"),
        (Some(_), None) => "refused (no one holds this card here)".to_owned(),
    };
    format!(
        "{} swipe {} read {}: {verdict}",
        swipe.device,
        swipe.card,
        swipe.read.as_deref().unwrap_or("-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRINTED: Card = Card::Wiegand {
        facility: 43,
        number: 3012,
    };

    #[test]
    fn each_vendor_reads_the_printed_card_its_own_way() {
        let read = |kind| ReaderFormat::of(kind).read(PRINTED).unwrap();
        assert_eq!(read(Kind::Controlid), "184683596740");
        assert_eq!(read(Kind::Hikvision), "2821060");
        assert_eq!(read(Kind::Intelbras), "2B0BC4");
        let other = |text| ReaderFormat::parse(text).unwrap().read(PRINTED).unwrap();
        assert_eq!(other("w26-swapped"), "C40B2B");
        assert_eq!(other("side-by-side"), "4303012");
        assert_eq!(other("w26:10"), "0002821060");
        assert!(ReaderFormat::parse("w34").is_err());
        assert_eq!(
            ReaderFormat::of(Kind::Hikvision).read(Card::Wiegand {
                facility: 300,
                number: 1
            }),
            None
        );
    }

    #[test]
    fn capture_answers_device_error_until_a_card_is_read() {
        let mut reader = Reader::new(ReaderFormat::of(Kind::Hikvision), false);
        reader.record("d", PRINTED, Some("2821060".into()), None, 0);
        assert_eq!(
            reader.capture().status,
            500,
            "a swipe before capture is not captured"
        );
        assert_eq!(reader.capture().status, 500);
        reader.record("d", PRINTED, Some("2821060".into()), None, 1);
        let answer = reader.capture();
        assert_eq!(answer.status, 200);
        assert!(String::from_utf8_lossy(&answer.body).contains("\"cardNo\":\"2821060\""));
        assert_eq!(reader.capture().status, 500, "one card per capture");
    }
}
