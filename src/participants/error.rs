//! Everything that can be wrong with a participants file, said so the operator can fix it.
//!
//! Every message names the file, then the line and the field (as the header writes it)
//! where there is one, says what is wrong, and ends with how to fix it:
//! `participants.csv line 9, field registration: "A-1001" is already on line 3: each person
//! must appear once`.

use std::io;

use super::MAX_REGISTRATION_BYTES;
use crate::person::Card;

/// Why the participants file cannot be used. Every message names the file, and the line
/// and field where there is one, then says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {file}: {error}: check the path and that the file is readable")]
    Read { file: String, error: io::Error },

    #[error(
        "{file} is UTF-16 text, which catraca does not read: \
         save it from the spreadsheet as \"CSV UTF-8\" or \"CSV (separado por vírgulas)\""
    )]
    Utf16 { file: String },

    #[error(
        "{file} has no participants: the file is empty: \
         write a header line (matricula;nome;cartao;inicio;fim;grupo) and one line per person"
    )]
    Empty { file: String },

    #[error(
        "{file} has no participants: nothing follows the header on line {header_line}: \
         add one line per person below it"
    )]
    NoRows { file: String, header_line: usize },

    #[error("{file} line {line}: {error}: check the quotes around this line")]
    Malformed {
        file: String,
        line: usize,
        error: csv::Error,
    },

    #[error(
        "{file} line {line}, field {column}: the header has no {column} column: \
         add one named {accepted} (the header has {found})"
    )]
    MissingColumn {
        file: String,
        line: usize,
        column: &'static str,
        accepted: String,
        found: String,
    },

    #[error(
        "{file} line {line}, field {second}: columns \"{first}\" and \"{second}\" both hold the {column}: \
         keep only one of them"
    )]
    DuplicateColumn {
        file: String,
        line: usize,
        column: &'static str,
        first: String,
        second: String,
    },

    #[error(
        "{file} line {line}: the row has {found} fields but the header on line {header_line} \
         has {expected}: {hint}"
    )]
    FieldCount {
        file: String,
        line: usize,
        found: usize,
        expected: usize,
        header_line: usize,
        hint: &'static str,
    },

    #[error("{file} line {line}, field {field}: is empty: every person needs a {what}")]
    MissingValue {
        file: String,
        line: usize,
        field: String,
        what: &'static str,
    },

    #[error(
        "{file} line {line}, field {field}: \"{value}\" is {length} bytes long: \
         catraca accepts at most {MAX_REGISTRATION_BYTES} (an accented letter takes 2): shorten it"
    )]
    RegistrationTooLong {
        file: String,
        line: usize,
        field: String,
        value: String,
        length: usize,
    },

    #[error(
        "{file} line {line}, field {field}: {value:?} has a control character in it \
         (a tab, or a line break inside quotes): remove it"
    )]
    ControlCharacter {
        file: String,
        line: usize,
        field: String,
        value: String,
    },

    #[error(
        "{file} line {line}, field {field}: \"{value}\" {problem}: write a Wiegand card as \
         facility,number (123,45678, in quotes if the file separates fields with commas) \
         or a plain card number (4012345678)"
    )]
    BadCard {
        file: String,
        line: usize,
        field: String,
        value: String,
        problem: &'static str,
    },

    #[error(
        "{file} line {line}, field {field}: \"{value}\" {problem}: write the date as \
         2025-03-01 or 01/03/2025, optionally with a time (08:00 or 08:00:00) \
         and an offset from UTC (-03:00 or Z)"
    )]
    BadDate {
        file: String,
        line: usize,
        field: String,
        value: String,
        problem: &'static str,
    },

    #[error(
        "{file} line {line}, field {end_field}: \"{end}\" comes before \"{begin}\" in field \
         {begin_field}: access would end before it begins; swap them or correct the wrong one"
    )]
    EndBeforeBegin {
        file: String,
        line: usize,
        begin_field: String,
        begin: String,
        end_field: String,
        end: String,
    },

    #[error(
        "{file} line {line}, field {field}: \"{value}\" is already on line {first_line}: \
         each person must appear once"
    )]
    DuplicateRegistration {
        file: String,
        line: usize,
        field: String,
        value: String,
        first_line: usize,
    },

    #[error(
        "{file} line {line}, field {field}: card {} is already on line {first_line} \
         (registration {first_registration}{}): a device opens for one person per card; \
         give each person their own card or leave the field empty",
        card_text(*card),
        written_differently(*card, *first_card)
    )]
    DuplicateCard {
        file: String,
        line: usize,
        field: String,
        card: Card,
        first_line: usize,
        first_registration: String,
        first_card: Card,
    },
}

/// Explains a repeat the operator cannot see because the two cards are written differently.
fn written_differently(card: Card, first_card: Card) -> String {
    if card == first_card {
        String::new()
    } else {
        format!(
            ", written {}, the same number on a device",
            card_text(first_card)
        )
    }
}

/// A card as an operator writes it.
fn card_text(card: Card) -> String {
    match card {
        Card::Wiegand { facility, number } => format!("{facility},{number}"),
        Card::Number(number) => number.to_string(),
    }
}
