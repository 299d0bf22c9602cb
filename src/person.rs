//! A participant as catraca understands it, after the CSV has been read and validated.
//!
//! `Person` is vendor-neutral: cards are kept as the Wiegand pair or plain number the
//! operator wrote, validity windows as Unix seconds, and each driver encodes them in its
//! device's own format (cards through the device's `card_format`, see `card.rs`). The
//! fingerprint is what the cache stores for a person-on-device pair: when any field a
//! device holds changes, the fingerprint changes and the pair is sent again (the engine
//! also mixes in the device's card rule, so a new `card_format` resends the cards).

use sha2::{Digest, Sha256};

/// An access card as written in the CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Card {
    /// A Wiegand `facility,number` pair.
    Wiegand { facility: u32, number: u32 },
    /// A plain card number.
    Number(u64),
}

impl Card {
    /// The value a Control iD device stores: `facility * 2^32 + number`, or the plain number.
    pub fn controlid_value(self) -> u64 {
        match self {
            Card::Wiegand { facility, number } => (u64::from(facility) << 32) + u64::from(number),
            Card::Number(n) => n,
        }
    }
}

impl std::fmt::Display for Card {
    /// As an operator writes it in the CSV: `123,45678` or `4012345678`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Card::Wiegand { facility, number } => write!(f, "{facility},{number}"),
            Card::Number(number) => write!(f, "{number}"),
        }
    }
}

/// One participant: a row of the CSV. Serialized only into a job of `catraca publish`
/// (the name travels with the job because the device needs it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Person {
    /// The key on every device (Control iD `registration`, Hikvision `employeeNo`).
    pub registration: String,
    pub name: String,
    pub card: Option<Card>,
    /// Whether the CSV has a card column. With one, a person without a card there holds
    /// none on the devices (a card taken away is removed from the device); without one,
    /// the cards on the devices are left alone.
    pub cards_listed: bool,
    /// Start of the validity window, Unix seconds; `None` means no limit.
    pub begin: Option<i64>,
    /// End of the validity window, Unix seconds; `None` means no limit.
    pub end: Option<i64>,
    /// Name of the access group the person belongs to.
    pub group: Option<String>,
    /// The line of the CSV this person came from (1-based, the header is line 1).
    pub line: usize,
    /// The face photo, for facial devices; not part of [`Person::fingerprint`] (the
    /// engine mixes its version into the fingerprint on facial devices only). Never in a
    /// queued job: `catraca publish` refuses a list with photos.
    #[serde(skip)]
    pub photo: Option<crate::photo::Photo>,
}

impl Person {
    /// Whether the devices must hold exactly this person's card (or none).
    pub fn card_is_managed(&self) -> bool {
        self.card.is_some() || self.cards_listed
    }

    /// A stable digest of every field a device holds for this person. Two runs of any
    /// version of catraca give the same fingerprint for the same data, so the cache stays
    /// valid across upgrades; the `v1` prefix changes if the encoding ever must.
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(b"v1\0");
        for field in [
            self.registration.as_str(),
            self.name.as_str(),
            &self
                .card
                .map(|c| c.controlid_value().to_string())
                .unwrap_or_default(),
            &self.begin.map(|t| t.to_string()).unwrap_or_default(),
            &self.end.map(|t| t.to_string()).unwrap_or_default(),
            self.group.as_deref().unwrap_or(""),
        ] {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
        let digest = hasher.finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> Person {
        Person {
            registration: "A-1001".into(),
            name: "Ana Souza".into(),
            card: Some(Card::Wiegand {
                facility: 123,
                number: 45678,
            }),
            cards_listed: true,
            begin: None,
            end: None,
            group: None,
            line: 2,
            photo: None,
        }
    }

    #[test]
    fn wiegand_pair_is_encoded_as_the_vendor_documents() {
        assert_eq!(ana().card.unwrap().controlid_value(), 528_281_023_086);
    }

    #[test]
    fn fingerprint_changes_with_any_device_field_but_not_the_line() {
        let base = ana();
        let mut moved = ana();
        moved.line = 40;
        assert_eq!(base.fingerprint(), moved.fingerprint());
        let mut renamed = ana();
        renamed.name = "Ana S. Souza".into();
        assert_ne!(base.fingerprint(), renamed.fingerprint());
        let mut expires = ana();
        expires.end = Some(1_800_000_000);
        assert_ne!(base.fingerprint(), expires.fingerprint());
        let mut no_card = ana();
        no_card.card = None;
        assert_ne!(base.fingerprint(), no_card.fingerprint());
    }
}
