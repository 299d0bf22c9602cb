//! Card numbers as each device's reader reports them: the one place that turns a card of
//! the CSV (a Wiegand pair `F,N` or a plain number `X`) into the string a device stores,
//! and the one place that compares what a device holds with it.
//!
//! A badge opens the door only when the device holds the exact string its reader
//! produces for it, and the vendors disagree on that string (`docs/field-evidence.md`,
//! section 4): Control iD keeps the facility in the high 32 bits (`F * 2^32 + N`), a
//! Hikvision reader reports the decimal of the 24 Wiegand-26 bits without padding, an
//! Intelbras/Dahua controller documents upper-case hex. Writing one number everywhere
//! (what catraca did before) enrolled cards that were reported `registered` and refused
//! at the door. So each device has a [`CardRule`]: a [`CardFormat`] (`card_format` in the
//! devices file, else its vendor's default) and an optional zero padding (`card_pad`),
//! checked against the device's limits before anything is sent. `catraca learn-card`
//! reads one real swipe to confirm the rule ([`matching_rules`]).
//!
//! Comparisons are canonical ([`canonical`]): leading zeros and hex case do not make two
//! cards different, so a device holding `02821060` for a `w26` card is `unchanged`, not
//! rewritten on every run. Writes are always the exact string of the rule.

use crate::i18n::{tr, Msg};
use crate::person::Card;
use crate::vendor::Kind;
use serde::Serialize;
use std::fmt;

/// The largest facility code of a Wiegand-26 card: 8 bits.
pub const W26_MAX_FACILITY: u32 = 255;
/// The largest card number of a Wiegand-26 card: 16 bits.
pub const W26_MAX_NUMBER: u32 = 65_535;
/// The longest `cardNo` a Hikvision terminal takes (`AcsEvent` and `CardInfo`
/// capabilities: `cardNo @max 20`).
pub const HIKVISION_MAX_CHARS: usize = 20;
/// The longest padding `card_pad` accepts: beyond any card string a vendor documents
/// (Hikvision's 20 characters, a 64-bit value's 20 digits).
pub const MAX_PAD: usize = 32;

/// How a device's reader writes a card, `card_format` in the devices file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CardFormat {
    /// Control iD `cards.value`: `F * 2^32 + N`, a plain number as is.
    Controlid,
    /// The decimal of the 24 Wiegand-26 bits, `(F << 16) | N` (Hikvision); a plain
    /// number as is.
    W26,
    /// Upper-case hex of `(F << 16) | N`, padded to an even number of digits
    /// (Intelbras/Dahua); a plain number in upper-case hex.
    W26Hex,
    /// A plain number in decimal; a pair is refused (it has no single decimal).
    Decimal,
    /// A plain number in upper-case hex; a pair is refused.
    Hex,
}

impl CardFormat {
    pub const ALL: [CardFormat; 5] = [
        CardFormat::Controlid,
        CardFormat::W26,
        CardFormat::W26Hex,
        CardFormat::Decimal,
        CardFormat::Hex,
    ];

    /// The name used in the devices file and in `catraca learn-card`.
    pub fn name(self) -> &'static str {
        match self {
            CardFormat::Controlid => "controlid",
            CardFormat::W26 => "w26",
            CardFormat::W26Hex => "w26-hex",
            CardFormat::Decimal => "decimal",
            CardFormat::Hex => "hex",
        }
    }

    pub fn from_name(name: &str) -> Option<CardFormat> {
        CardFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the format writes hexadecimal (compared without regard to case).
    pub fn is_hex(self) -> bool {
        matches!(self, CardFormat::W26Hex | CardFormat::Hex)
    }

    /// What a vendor's reader reports, from the evidence: Control iD's documented value
    /// (high confidence), Hikvision's unpadded Wiegand-26 decimal (a field capture),
    /// Intelbras's documented upper-case hex of the 24 bits (low confidence: see
    /// [`CardFormat::default_is_certain`]).
    pub fn vendor_default(kind: Kind) -> CardFormat {
        match kind {
            Kind::Controlid => CardFormat::Controlid,
            Kind::Hikvision => CardFormat::W26,
            Kind::Intelbras => CardFormat::W26Hex,
        }
    }

    /// Whether the vendor's default can be trusted without a swipe. Intelbras/Dahua
    /// readers differ per door (`nCardNoConvert`) and some show `F` and `N` side by side,
    /// so until `card_format` is set a run writing pairs there warns once per device.
    pub fn default_is_certain(kind: Kind) -> bool {
        kind != Kind::Intelbras
    }

    /// Whether a device of `kind` can store what this format writes: Control iD's
    /// `cards.value` is a number, so the hex formats cannot go there.
    pub fn fits(self, kind: Kind) -> bool {
        !(kind == Kind::Controlid && self.is_hex())
    }
}

impl fmt::Display for CardFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The most a device's card field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardLimit {
    /// An unsigned 64-bit integer (Control iD `cards.value`).
    U64,
    /// A string of at most this many characters (Hikvision `cardNo`: 20).
    Chars(usize),
    /// Nothing documented (Intelbras `CardNo` is a free string).
    None,
}

impl CardLimit {
    pub fn of(kind: Kind) -> CardLimit {
        match kind {
            Kind::Controlid => CardLimit::U64,
            Kind::Hikvision => CardLimit::Chars(HIKVISION_MAX_CHARS),
            Kind::Intelbras => CardLimit::None,
        }
    }
}

/// Why a card cannot be written under a rule. Messages complete "card X cannot be
/// written on DEVICE: ..." and name the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardRefusal {
    /// A `w26` format and a pair beyond Wiegand-26.
    NotWiegand26 {
        format: CardFormat,
        facility: u32,
        number: u32,
    },
    /// `decimal` or `hex` and a pair.
    PairWithoutNumber { format: CardFormat },
    /// Longer than the device's card field.
    TooLong {
        text: String,
        max: usize,
        format: CardFormat,
    },
    /// Not an unsigned 64-bit number (Control iD).
    NotU64 { text: String },
}

impl fmt::Display for CardRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CardRefusal::NotWiegand26 {
                format,
                facility,
                number,
            } => {
                let (msg, value) = if *facility > W26_MAX_FACILITY {
                    (Msg::CardFacilityBeyondW26, facility)
                } else {
                    (Msg::CardNumberBeyondW26, number)
                };
                f.write_str(&tr(msg, &[("format", format), ("value", value)]))
            }
            CardRefusal::PairWithoutNumber { format } => {
                let msg = if format.is_hex() {
                    Msg::CardPairWithoutHex
                } else {
                    Msg::CardPairWithoutDecimal
                };
                f.write_str(&tr(msg, &[("format", format)]))
            }
            CardRefusal::TooLong { text, max, format } => f.write_str(&tr(
                Msg::CardTooLong,
                &[
                    ("format", format),
                    ("text", &format!("{text:?}")),
                    ("chars", &text.chars().count()),
                    ("max", max),
                ],
            )),
            CardRefusal::NotU64 { text } => f.write_str(&tr(Msg::CardNotU64, &[("text", text)])),
        }
    }
}

impl CardRefusal {
    /// The reason of a failed pair: `card 300,5 cannot be written on portaria-2: ...`.
    pub fn on_device(&self, card: Card, device: &str) -> String {
        tr(
            Msg::CardOnDevice,
            &[("card", &card), ("device", &device), ("why", self)],
        )
    }
}

/// How one device writes cards: its format, padding and limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardRule {
    pub format: CardFormat,
    /// Zero-pad to this many characters (`card_pad`); 0 pads nothing.
    pub pad: usize,
    /// Whether `card_format` was set in the devices file (else the vendor default).
    pub explicit: bool,
    pub limit: CardLimit,
}

impl CardRule {
    /// The vendor's default rule for a device of `kind`: no padding, not explicit.
    pub fn vendor_default(kind: Kind) -> CardRule {
        CardRule {
            format: CardFormat::vendor_default(kind),
            pad: 0,
            explicit: false,
            limit: CardLimit::of(kind),
        }
    }

    /// The rule of a device of `kind` from its `card_format` and `card_pad`; the error
    /// says what to change.
    pub fn for_device(
        kind: Kind,
        format: Option<&str>,
        pad: Option<usize>,
    ) -> Result<CardRule, String> {
        let mut rule = CardRule::vendor_default(kind);
        if let Some(name) = format {
            rule.format = CardFormat::from_name(name).ok_or_else(|| {
                tr(
                    Msg::CfgCardFormat,
                    &[("name", &format!("{name:?}")), ("names", &names())],
                )
            })?;
            rule.explicit = true;
        }
        if !rule.format.fits(kind) {
            return Err(tr(
                Msg::CfgCardHexOnNumber,
                &[("format", &rule.format), ("kind", &kind)],
            ));
        }
        if let Some(pad) = pad {
            if kind == Kind::Controlid {
                return Err(tr(Msg::CfgCardPadOnNumber, &[("kind", &kind)]));
            }
            if pad == 0 || pad > MAX_PAD {
                return Err(tr(Msg::CfgCardPad, &[("pad", &pad), ("max", &MAX_PAD)]));
            }
            rule.pad = pad;
        }
        Ok(rule)
    }

    /// Whether [`CardRule::write`] takes every card: Control iD's value unpadded has
    /// at most 20 digits (a pair fills at most 64 bits), within every device's limit.
    /// The engine then skips checking each card against this device.
    pub fn takes_every_card(&self) -> bool {
        self.format == CardFormat::Controlid && self.pad == 0
    }

    /// The exact string this device stores for `card`, or why it cannot.
    pub fn write(&self, card: Card) -> Result<String, CardRefusal> {
        let text = format_card(self.format, card)?;
        let text = pad_to(text, self.pad);
        match self.limit {
            CardLimit::Chars(max) if text.chars().count() > max => Err(CardRefusal::TooLong {
                text,
                max,
                format: self.format,
            }),
            CardLimit::U64 if text.parse::<u64>().is_err() => Err(CardRefusal::NotU64 { text }),
            _ => Ok(text),
        }
    }

    /// Whether a card the device holds is `wanted`, leading zeros and hex case aside.
    pub fn same(&self, held: &str, wanted: &str) -> bool {
        canonical(self.format, held) == canonical(self.format, wanted)
    }

    /// Whether the cards a device holds are exactly `wanted` (in any order), compared
    /// canonically.
    pub fn same_set(&self, held: &[String], wanted: &[String]) -> bool {
        let canon = |list: &[String]| {
            let mut all: Vec<String> = list.iter().map(|c| canonical(self.format, c)).collect();
            all.sort_unstable();
            all
        };
        canon(held) == canon(wanted)
    }

    /// Mixed into a cached pair's fingerprint when the person has a card, so that a
    /// device whose rule changes gets its cards sent again. 0 for Control iD's value
    /// unpadded: the one number every earlier catraca wrote, whose pairs stay cached.
    pub fn fingerprint_salt(&self) -> u64 {
        if self.format == CardFormat::Controlid && self.pad == 0 {
            return 0;
        }
        // FNV-1a: stable across versions and platforms, unlike `DefaultHasher`.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in format!("card_format={};card_pad={}", self.format, self.pad).bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    /// The lines that set this rule in the devices file.
    pub fn devices_file_lines(&self) -> String {
        let mut out = format!("card_format = \"{}\"", self.format);
        if self.pad > 0 {
            out.push_str(&format!("\ncard_pad = {}", self.pad));
        }
        out
    }

    /// `w26`, `w26-hex, card_pad 10`: the rule as `check` and `learn-card` show it.
    pub fn describe(&self) -> String {
        if self.pad > 0 {
            format!("{}, card_pad {}", self.format, self.pad)
        } else {
            self.format.name().to_string()
        }
    }
}

/// Checks the cards of a CSV against the devices before anything is sent. A card no
/// device can take is an input error naming the file and line (the first such line);
/// otherwise the warnings to print: one per Intelbras device whose format is the
/// uncertain default while the CSV has Wiegand pairs.
pub fn check_csv_cards(
    file: &str,
    people: &[crate::person::Person],
    devices: &[(&str, Kind, CardRule)],
) -> Result<Vec<String>, String> {
    // A device that takes every card (Control iD's value) leaves no card without one.
    let some_device_takes_all = devices.iter().any(|(_, _, rule)| rule.takes_every_card());
    for person in people.iter().filter(|_| !some_device_takes_all) {
        let Some(card) = person.card else { continue };
        let refusals: Vec<String> = devices
            .iter()
            .filter_map(|(name, _, rule)| {
                rule.write(card).err().map(|why| format!("{name}: {why}"))
            })
            .collect();
        if !devices.is_empty() && refusals.len() == devices.len() {
            return Err(tr(
                Msg::CardFitsNoDevice,
                &[
                    ("file", &file),
                    ("line", &person.line),
                    ("card", &card),
                    ("reasons", &refusals.join("; ")),
                ],
            ));
        }
    }
    same_card_twice(file, people, devices)?;
    let pairs = people
        .iter()
        .any(|p| matches!(p.card, Some(Card::Wiegand { .. })));
    Ok(devices
        .iter()
        .filter(|(_, kind, rule)| pairs && !rule.explicit && !CardFormat::default_is_certain(*kind))
        .map(|(name, kind, rule)| {
            tr(
                Msg::CardUncertainDefault,
                &[("name", name), ("kind", kind), ("format", &rule.format)],
            )
        })
        .collect())
}

/// Two people whose cards a device writes as one card: a pair and a plain number can
/// be the same card in a `w26` format (`43,3012` and `2821060`), which the CSV's own
/// duplicate check (by Control iD's value) cannot see. Checked once per distinct rule;
/// Control iD's value is the CSV's check already.
fn same_card_twice(
    file: &str,
    people: &[crate::person::Person],
    devices: &[(&str, Kind, CardRule)],
) -> Result<(), String> {
    let mut rules: Vec<(CardFormat, usize)> = devices
        .iter()
        .filter(|(_, _, rule)| !rule.takes_every_card())
        .map(|(_, _, rule)| (rule.format, rule.pad))
        .collect();
    rules.sort_unstable_by_key(|(format, pad)| (format.name(), *pad));
    rules.dedup();
    for (format, pad) in rules {
        let on: Vec<&str> = devices
            .iter()
            .filter(|(_, _, r)| (r.format, r.pad) == (format, pad))
            .map(|(name, _, _)| *name)
            .collect();
        let rule = devices
            .iter()
            .find(|(_, _, r)| (r.format, r.pad) == (format, pad))
            .map(|(_, _, r)| *r)
            .expect("a device has this rule");
        let mut seen: std::collections::HashMap<String, &crate::person::Person> =
            std::collections::HashMap::new();
        for person in people {
            let Some(Ok(written)) = person.card.map(|c| rule.write(c)) else {
                continue;
            };
            if let Some(first) = seen.insert(canonical(format, &written), person) {
                let first_card = first.card.expect("only people with a card are kept");
                return Err(tr(
                    Msg::CardSameOnDevice,
                    &[
                        ("file", &file),
                        ("line", &person.line),
                        ("card", &person.card.expect("has a card")),
                        ("first_card", &first_card),
                        ("first_line", &first.line),
                        ("devices", &on.join(", ")),
                        ("format", &format),
                        ("written", &written),
                    ],
                ));
            }
        }
    }
    Ok(())
}

/// Every format name, for messages.
pub fn names() -> String {
    CardFormat::ALL.map(CardFormat::name).join(", ")
}

/// `card` in `format`, unpadded.
fn format_card(format: CardFormat, card: Card) -> Result<String, CardRefusal> {
    let w26 = |facility: u32, number: u32| {
        if facility > W26_MAX_FACILITY || number > W26_MAX_NUMBER {
            Err(CardRefusal::NotWiegand26 {
                format,
                facility,
                number,
            })
        } else {
            Ok((facility << 16) | number)
        }
    };
    Ok(match (format, card) {
        (CardFormat::Controlid, Card::Wiegand { facility, number }) => {
            ((u64::from(facility) << 32) | u64::from(number)).to_string()
        }
        (CardFormat::Controlid | CardFormat::W26 | CardFormat::Decimal, Card::Number(x)) => {
            x.to_string()
        }
        (CardFormat::W26, Card::Wiegand { facility, number }) => w26(facility, number)?.to_string(),
        (CardFormat::W26Hex, Card::Wiegand { facility, number }) => {
            let hex = format!("{:X}", w26(facility, number)?);
            pad_to(hex.clone(), hex.len() + hex.len() % 2)
        }
        (CardFormat::W26Hex | CardFormat::Hex, Card::Number(x)) => format!("{x:X}"),
        (CardFormat::Decimal | CardFormat::Hex, Card::Wiegand { .. }) => {
            return Err(CardRefusal::PairWithoutNumber { format })
        }
    })
}

fn pad_to(text: String, width: usize) -> String {
    if text.len() >= width {
        text
    } else {
        format!("{}{text}", "0".repeat(width - text.len()))
    }
}

/// The form cards are compared in: surrounding blanks and leading zeros off, hex in
/// upper case (for a hex `format`). `"0"` stays `"0"`.
pub fn canonical(format: CardFormat, text: &str) -> String {
    let text = text.trim();
    let stripped = text.trim_start_matches('0');
    let kept = if stripped.is_empty() && !text.is_empty() {
        "0"
    } else {
        stripped
    };
    if format.is_hex() {
        kept.to_ascii_uppercase()
    } else {
        kept.to_string()
    }
}

/// What one format writes for a card, for `catraca learn-card` to list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub card_format: CardFormat,
    /// What the format writes, unpadded; `None` when it cannot write the card.
    pub writes: Option<String>,
    /// Why it cannot.
    pub refused: Option<String>,
}

/// What every format writes for `card` (unpadded).
pub fn candidates(card: Card) -> Vec<Candidate> {
    CardFormat::ALL
        .into_iter()
        .map(|format| match format_card(format, card) {
            Ok(text) => Candidate {
                card_format: format,
                writes: Some(text),
                refused: None,
            },
            Err(why) => Candidate {
                card_format: format,
                writes: None,
                refused: Some(why.to_string()),
            },
        })
        .collect()
}

/// The rules of a device of `kind` that write `card` exactly as its reader `reported`
/// it: each format that produces that string, with the padding that makes the length
/// match. The device compares exact strings, so case and zeros must match too. The
/// vendor's default comes first when it matches.
pub fn matching_rules(kind: Kind, card: Card, reported: &str) -> Vec<CardRule> {
    let reported = reported.trim();
    let mut found = Vec::new();
    for format in CardFormat::ALL {
        if !format.fits(kind) {
            continue;
        }
        let Ok(text) = format_card(format, card) else {
            continue;
        };
        let pad = if text == reported {
            0
        } else if reported.len() > text.len() && pad_to(text.clone(), reported.len()) == reported {
            if kind == Kind::Controlid {
                continue;
            }
            reported.len()
        } else {
            continue;
        };
        let rule = CardRule {
            format,
            pad,
            explicit: true,
            limit: CardLimit::of(kind),
        };
        if rule.write(card).as_deref() == Ok(reported) {
            found.push(rule);
        }
    }
    let default = CardFormat::vendor_default(kind);
    found.sort_by_key(|r| (r.format != default, r.pad));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRINTED: Card = Card::Wiegand {
        facility: 43,
        number: 3012,
    };

    /// The simulator's reader (`catraca_sim::Encoding`) is written apart from this file
    /// on purpose; this checks the two agree on every format, so a door the simulator
    /// opens is one a real reader of that format opens too, and a change to either that
    /// breaks the other fails here, not as a puzzling refused swipe.
    #[test]
    fn every_format_writes_what_the_simulators_reader_reads() {
        let cards = [
            PRINTED,
            Card::Wiegand {
                facility: 1,
                number: 2,
            },
            Card::Wiegand {
                facility: 255,
                number: 65_535,
            },
            Card::Wiegand {
                facility: 256,
                number: 0,
            },
            Card::Wiegand {
                facility: 0,
                number: 65_536,
            },
            Card::Wiegand {
                facility: u32::MAX,
                number: u32::MAX,
            },
            Card::Number(0),
            Card::Number(2_821_060),
            Card::Number(u64::MAX),
        ];
        for format in CardFormat::ALL {
            let reader = catraca_sim::Encoding::from_name(format.name())
                .unwrap_or_else(|| panic!("the simulator has no reader for {format}"));
            let rule = CardRule {
                format,
                pad: 0,
                explicit: true,
                limit: CardLimit::None,
            };
            for card in cards {
                let simulated = catraca_sim::Card::parse(&card.to_string()).unwrap();
                assert_eq!(
                    rule.write(card).ok(),
                    reader.read(simulated),
                    "{format} {card}"
                );
            }
        }
        assert_eq!(catraca_sim::Encoding::names(), names());
    }

    fn rule(kind: Kind, format: &str, pad: Option<usize>) -> CardRule {
        CardRule::for_device(kind, Some(format), pad).unwrap()
    }

    #[test]
    fn the_card_printed_0002821060_043_03012_in_every_format() {
        // field-evidence 4.5: one card, three devices.
        let write = |kind, format| rule(kind, format, None).write(PRINTED);
        assert_eq!(write(Kind::Controlid, "controlid").unwrap(), "184683596740");
        assert_eq!(write(Kind::Hikvision, "w26").unwrap(), "2821060");
        assert_eq!(write(Kind::Intelbras, "w26-hex").unwrap(), "2B0BC4");
        let refused = write(Kind::Intelbras, "decimal").unwrap_err().to_string();
        assert!(refused.contains("no single decimal"), "{refused}");
        assert!(write(Kind::Intelbras, "hex").is_err());
    }

    #[test]
    fn plain_numbers_are_decimal_or_upper_case_hex() {
        let x = Card::Number(0x12EA_3004);
        for format in ["controlid", "w26", "decimal"] {
            assert_eq!(
                rule(Kind::Hikvision, format, None).write(x).unwrap(),
                "317337604"
            );
        }
        for format in ["w26-hex", "hex"] {
            assert_eq!(
                rule(Kind::Intelbras, format, None).write(x).unwrap(),
                "12EA3004"
            );
        }
    }

    #[test]
    fn w26_hex_pads_to_an_even_number_of_digits_and_card_pad_to_its_length() {
        let small = Card::Wiegand {
            facility: 1,
            number: 2,
        };
        assert_eq!(
            rule(Kind::Intelbras, "w26-hex", None).write(small).unwrap(),
            "010002"
        );
        let tiny = Card::Wiegand {
            facility: 0,
            number: 10,
        };
        assert_eq!(
            rule(Kind::Intelbras, "w26-hex", None).write(tiny).unwrap(),
            "0A"
        );
        assert_eq!(
            rule(Kind::Hikvision, "w26", Some(10))
                .write(PRINTED)
                .unwrap(),
            "0002821060"
        );
        assert_eq!(
            rule(Kind::Intelbras, "w26-hex", Some(8))
                .write(PRINTED)
                .unwrap(),
            "002B0BC4"
        );
    }

    #[test]
    fn limits_name_the_format_and_the_bound() {
        let beyond = Card::Wiegand {
            facility: 256,
            number: 1,
        };
        let why = rule(Kind::Hikvision, "w26", None)
            .write(beyond)
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("facility code goes up to 255") && why.contains("256"),
            "{why}"
        );
        let number = Card::Wiegand {
            facility: 1,
            number: 65_536,
        };
        let why = rule(Kind::Intelbras, "w26-hex", None)
            .write(number)
            .unwrap_err()
            .to_string();
        assert!(why.contains("card number goes up to 65535"), "{why}");
        // The largest Wiegand-26 card fits.
        let top = Card::Wiegand {
            facility: 255,
            number: 65_535,
        };
        assert_eq!(
            rule(Kind::Hikvision, "w26", None).write(top).unwrap(),
            "16777215"
        );
        // Hikvision's 20 characters: a 20-digit number fits, padding to 21 does not.
        let big = Card::Number(u64::MAX);
        assert!(rule(Kind::Hikvision, "decimal", None).write(big).is_ok());
        let why = rule(Kind::Hikvision, "decimal", Some(21))
            .write(big)
            .unwrap_err()
            .to_string();
        assert!(why.contains("at most 20"), "{why}");
        // Control iD: any pair and any plain number fit its 64 bits, and in 20 digits.
        for kind in Kind::ALL {
            let rule = rule(kind, "controlid", None);
            assert!(rule.takes_every_card());
            assert!(rule.write(Card::Number(u64::MAX)).is_ok());
        }
        let widest = Card::Wiegand {
            facility: u32::MAX,
            number: u32::MAX,
        };
        assert_eq!(
            CardRule::vendor_default(Kind::Controlid)
                .write(widest)
                .unwrap(),
            u64::MAX.to_string()
        );
    }

    #[test]
    fn devices_file_values_are_checked_against_the_family() {
        assert_eq!(
            CardRule::for_device(Kind::Hikvision, None, None).unwrap(),
            CardRule::vendor_default(Kind::Hikvision)
        );
        let bad = CardRule::for_device(Kind::Hikvision, Some("w34"), None).unwrap_err();
        assert!(
            bad.contains("controlid, w26, w26-hex, decimal, hex"),
            "{bad}"
        );
        let hex = CardRule::for_device(Kind::Controlid, Some("hex"), None).unwrap_err();
        assert!(hex.contains("as a number"), "{hex}");
        let pad = CardRule::for_device(Kind::Controlid, None, Some(10)).unwrap_err();
        assert!(pad.contains("card_pad"), "{pad}");
        assert!(CardRule::for_device(Kind::Intelbras, None, Some(0)).is_err());
        assert!(CardRule::for_device(Kind::Intelbras, None, Some(33)).is_err());
        let explicit = CardRule::for_device(Kind::Intelbras, Some("w26-hex"), Some(8)).unwrap();
        assert!(explicit.explicit);
        assert_eq!(
            explicit.devices_file_lines(),
            "card_format = \"w26-hex\"\ncard_pad = 8"
        );
    }

    #[test]
    fn comparison_ignores_leading_zeros_and_hex_case() {
        let w26 = CardRule::vendor_default(Kind::Hikvision);
        assert!(w26.same("02821060", "2821060"));
        assert!(!w26.same("2821061", "2821060"));
        let hex = CardRule::vendor_default(Kind::Intelbras);
        assert!(hex.same("002b0bc4", "2B0BC4"));
        assert!(hex.same_set(
            &["2b0bc4".into(), "0A".into()],
            &["a".into(), "2B0BC4".into()]
        ));
        assert!(!hex.same_set(&["2B0BC4".into()], &[]));
        assert_eq!(canonical(CardFormat::W26, "000"), "0");
        // Decimal formats keep case: they never hold letters that could differ.
        assert!(!w26.same("2b", "2B"));
    }

    #[test]
    fn a_pair_and_a_number_that_are_one_card_on_a_device_are_a_csv_error() {
        let person = |line: usize, card: Card| crate::person::Person {
            registration: format!("r{line}"),
            name: "n".into(),
            card: Some(card),
            cards_listed: true,
            begin: None,
            end: None,
            group: None,
            line,
            photo: None,
        };
        let people = [
            person(2, PRINTED),
            person(3, Card::Number(7)),
            person(4, Card::Number(2_821_060)),
        ];
        let hikvision = (
            "portaria-2",
            Kind::Hikvision,
            CardRule::vendor_default(Kind::Hikvision),
        );
        let controlid = (
            "portaria-1",
            Kind::Controlid,
            CardRule::vendor_default(Kind::Controlid),
        );
        let err = check_csv_cards("p.csv", &people, &[controlid, hikvision]).unwrap_err();
        assert!(
            err.contains("p.csv line 4, field card: card \"2821060\" is the same card as \"43,3012\" on line 2 for portaria-2")
                && err.contains("writes both as 2821060"),
            "{err}"
        );
        // Control iD's value tells them apart.
        assert!(check_csv_cards("p.csv", &people, &[controlid]).is_ok());
    }

    #[test]
    fn a_swipe_tells_the_format_and_the_padding() {
        let found = |kind, reported| {
            matching_rules(kind, PRINTED, reported)
                .iter()
                .map(CardRule::describe)
                .collect::<Vec<_>>()
        };
        assert_eq!(found(Kind::Hikvision, "2821060"), ["w26"]);
        assert_eq!(found(Kind::Hikvision, "0002821060"), ["w26, card_pad 10"]);
        assert_eq!(found(Kind::Intelbras, "2B0BC4"), ["w26-hex"]);
        assert_eq!(found(Kind::Controlid, "184683596740"), ["controlid"]);
        // Another reader's forms: byte-swapped hex, F and N side by side, lower case.
        assert!(found(Kind::Intelbras, "C40B2B").is_empty());
        assert!(found(Kind::Intelbras, "4303012").is_empty());
        assert!(found(Kind::Intelbras, "2b0bc4").is_empty());
        // A plain number reads the same in three formats: the default comes first.
        let plain = matching_rules(Kind::Hikvision, Card::Number(77), "77");
        assert_eq!(plain[0].format, CardFormat::W26);
        assert_eq!(plain.len(), 3);
    }
}
