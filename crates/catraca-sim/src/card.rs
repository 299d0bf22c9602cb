//! The cards a simulated reader is shown and the strings it makes of them, written
//! apart from catraca's `card.rs` on purpose: the simulator plays the reader from the
//! vendors' evidence (`docs/field-evidence.md`, section 4), so a slip in catraca's
//! card formats shows up as a refused swipe instead of being mirrored here.
//!
//! A card is a Wiegand pair `F,N` or a plain number, as printed on it. An [`Encoding`]
//! is one way a reader reports it: Control iD's value `F * 2^32 + N`, the decimal or
//! upper-case hex of the 24 Wiegand-26 bits, or a plain number in decimal or hex.

use std::fmt;

/// A card as printed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Card {
    /// A Wiegand `facility,number` pair.
    Wiegand { facility: u32, number: u32 },
    /// A plain card number.
    Number(u64),
}

impl Card {
    /// `43,3012` (blanks around the comma allowed) or `2821060`; the error completes
    /// "card X ...".
    pub fn parse(text: &str) -> Result<Card, String> {
        let text = text.trim();
        let number = |part: &str, what: &str| {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{text:?} is not a card: write F,N or a number"));
            }
            part.parse::<u64>()
                .map_err(|_| format!("{text:?} has a {what} too large"))
        };
        match text.split_once(',') {
            Some((facility, rest)) => {
                let narrow = |value: u64, what: &str| {
                    u32::try_from(value).map_err(|_| format!("{text:?} has a {what} too large"))
                };
                Ok(Card::Wiegand {
                    facility: narrow(number(facility, "facility")?, "facility")?,
                    number: narrow(number(rest, "card number")?, "card number")?,
                })
            }
            None => Ok(Card::Number(number(text, "card number")?)),
        }
    }

    /// The 24 bits a Wiegand-26 reader sends, `(F << 16) | N`; `None` for a plain number
    /// or a pair beyond 8 bits of facility or 16 of number.
    fn wiegand26(self) -> Option<u32> {
        match self {
            Card::Wiegand { facility, number } if facility < 1 << 8 && number < 1 << 16 => {
                Some((facility << 16) | number)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Card {
    /// As printed: `43,3012` or `2821060`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Card::Wiegand { facility, number } => write!(f, "{facility},{number}"),
            Card::Number(number) => write!(f, "{number}"),
        }
    }
}

/// How a reader writes a card; the names are those of catraca's `card_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Control iD `cards.value`: `F * 2^32 + N`; a plain number as is.
    Controlid,
    /// The decimal of the 24 Wiegand-26 bits (Hikvision); a plain number as is.
    W26,
    /// Upper-case hex of the 24 bits, an even number of digits (Intelbras/Dahua); a plain
    /// number in upper-case hex.
    W26Hex,
    /// A plain number in decimal; a pair cannot be read.
    Decimal,
    /// A plain number in upper-case hex; a pair cannot be read.
    Hex,
}

impl Encoding {
    pub const ALL: [Encoding; 5] = [
        Encoding::Controlid,
        Encoding::W26,
        Encoding::W26Hex,
        Encoding::Decimal,
        Encoding::Hex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Controlid => "controlid",
            Encoding::W26 => "w26",
            Encoding::W26Hex => "w26-hex",
            Encoding::Decimal => "decimal",
            Encoding::Hex => "hex",
        }
    }

    pub fn from_name(name: &str) -> Option<Encoding> {
        Encoding::ALL.into_iter().find(|e| e.name() == name)
    }

    /// `controlid, w26, w26-hex, decimal, hex`.
    pub fn names() -> String {
        Encoding::ALL.map(Encoding::name).join(", ")
    }

    /// What a vendor's reader reports out of the box.
    pub fn of(kind: crate::Kind) -> Encoding {
        match kind {
            crate::Kind::Controlid => Encoding::Controlid,
            crate::Kind::Hikvision => Encoding::W26,
            crate::Kind::Intelbras => Encoding::W26Hex,
        }
    }

    /// The string this reader produces for `card`, unpadded; `None` when it cannot read it.
    pub fn read(self, card: Card) -> Option<String> {
        match (self, card) {
            (Encoding::Controlid, Card::Wiegand { facility, number }) => {
                Some((u64::from(facility) * (1 << 32) + u64::from(number)).to_string())
            }
            (Encoding::Controlid | Encoding::W26 | Encoding::Decimal, Card::Number(n)) => {
                Some(n.to_string())
            }
            (Encoding::W26, pair) => pair.wiegand26().map(|bits| bits.to_string()),
            (Encoding::W26Hex, pair @ Card::Wiegand { .. }) => pair.wiegand26().map(|bits| {
                let hex = format!("{bits:X}");
                if hex.len() % 2 == 1 {
                    format!("0{hex}")
                } else {
                    hex
                }
            }),
            (Encoding::W26Hex | Encoding::Hex, Card::Number(n)) => Some(format!("{n:X}")),
            (Encoding::Decimal | Encoding::Hex, Card::Wiegand { .. }) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_parse_as_printed() {
        assert_eq!(
            Card::parse(" 43 , 3012 "),
            Ok(Card::Wiegand {
                facility: 43,
                number: 3012
            })
        );
        assert_eq!(Card::parse("2821060"), Ok(Card::Number(2_821_060)));
        assert!(Card::parse("+5").is_err());
        assert!(Card::parse("4294967296,1").is_err());
        assert!(Card::parse("a,b").is_err());
        assert_eq!(Card::parse("43,3012").unwrap().to_string(), "43,3012");
    }

    #[test]
    fn each_encoding_reads_pairs_and_numbers_from_the_evidence() {
        let pair = Card::Wiegand {
            facility: 43,
            number: 3012,
        };
        // 43 * 2^32 + 3012; (43 << 16) | 3012 = 2821060 = 0x2B0BC4.
        assert_eq!(Encoding::Controlid.read(pair).unwrap(), "184683596740");
        assert_eq!(Encoding::W26.read(pair).unwrap(), "2821060");
        assert_eq!(Encoding::W26Hex.read(pair).unwrap(), "2B0BC4");
        assert_eq!(Encoding::Decimal.read(pair), None);
        assert_eq!(Encoding::Hex.read(pair), None);
        let small = Card::Wiegand {
            facility: 1,
            number: 2,
        };
        assert_eq!(Encoding::W26Hex.read(small).unwrap(), "010002");
        let beyond = Card::Wiegand {
            facility: 256,
            number: 1,
        };
        assert_eq!(Encoding::W26.read(beyond), None);
        assert_eq!(Encoding::Controlid.read(beyond).unwrap(), "1099511627777");
        assert_eq!(Encoding::Hex.read(Card::Number(255)).unwrap(), "FF");
        assert_eq!(Encoding::W26.read(Card::Number(7)).unwrap(), "7");
    }
}
