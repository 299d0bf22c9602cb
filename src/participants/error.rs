//! Everything that can be wrong with a participants file, said so the operator can fix it.
//!
//! Every message names the file, then the line and the field (as the header writes it)
//! where there is one, says what is wrong, and ends with how to fix it:
//! `participants.csv line 9, field registration: "A-1001" is already on line 3: each person
//! must appear once`.

use std::fmt;
use std::io;

use super::MAX_REGISTRATION_BYTES;
use crate::i18n::{fragment, tr, Msg};
use crate::person::Card;

/// Why the participants file cannot be used. Every message names the file, and the line
/// and field where there is one, then says how to fix it.
#[derive(Debug)]
pub enum InputError {
    Read {
        file: String,
        error: io::Error,
    },

    Utf16 {
        file: String,
    },

    Empty {
        file: String,
    },

    NoRows {
        file: String,
        header_line: usize,
    },

    Malformed {
        file: String,
        line: usize,
        error: csv::Error,
    },

    MissingColumn {
        file: String,
        line: usize,
        column: &'static str,
        accepted: String,
        found: String,
    },

    DuplicateColumn {
        file: String,
        line: usize,
        column: &'static str,
        first: String,
        second: String,
    },

    FieldCount {
        file: String,
        line: usize,
        found: usize,
        expected: usize,
        header_line: usize,
        hint: &'static str,
    },

    MissingValue {
        file: String,
        line: usize,
        field: String,
        what: &'static str,
    },

    RegistrationTooLong {
        file: String,
        line: usize,
        field: String,
        value: String,
        length: usize,
    },

    ControlCharacter {
        file: String,
        line: usize,
        field: String,
        value: String,
    },

    BadCard {
        file: String,
        line: usize,
        field: String,
        value: String,
        problem: &'static str,
    },

    BadDate {
        file: String,
        line: usize,
        field: String,
        value: String,
        problem: &'static str,
    },

    EndBeforeBegin {
        file: String,
        line: usize,
        begin_field: String,
        begin: String,
        end_field: String,
        end: String,
    },

    DuplicateRegistration {
        file: String,
        line: usize,
        field: String,
        value: String,
        first_line: usize,
    },

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
        tr(
            Msg::CsvWrittenDifferently,
            &[("card", &card_text(first_card))],
        )
    }
}

impl std::error::Error for InputError {}

impl fmt::Display for InputError {
    /// The message from the catalogue, in the operator's language.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use InputError as E;
        let text = match self {
            E::Read { file, error } => tr(Msg::CsvRead, &[("file", file), ("error", error)]),
            E::Utf16 { file } => tr(Msg::CsvUtf16, &[("file", file)]),
            E::Empty { file } => tr(Msg::CsvEmpty, &[("file", file)]),
            E::NoRows { file, header_line } => tr(
                Msg::CsvNoRows,
                &[("file", file), ("header_line", header_line)],
            ),
            E::Malformed { file, line, error } => tr(
                Msg::CsvMalformed,
                &[("file", file), ("line", line), ("error", error)],
            ),
            E::MissingColumn {
                file,
                line,
                column,
                accepted,
                found,
            } => tr(
                Msg::CsvMissingColumn,
                &[
                    ("file", file),
                    ("line", line),
                    ("column", column),
                    ("accepted", accepted),
                    ("found", found),
                ],
            ),
            E::DuplicateColumn {
                file,
                line,
                column,
                first,
                second,
            } => tr(
                Msg::CsvDuplicateColumn,
                &[
                    ("file", file),
                    ("line", line),
                    ("column", column),
                    ("first", first),
                    ("second", second),
                ],
            ),
            E::FieldCount {
                file,
                line,
                found,
                expected,
                header_line,
                hint,
            } => tr(
                Msg::CsvFieldCount,
                &[
                    ("file", file),
                    ("line", line),
                    ("found", found),
                    ("expected", expected),
                    ("header_line", header_line),
                    ("hint", &fragment(hint)),
                ],
            ),
            E::MissingValue {
                file,
                line,
                field,
                what,
            } => tr(
                Msg::CsvMissingValue,
                &[
                    ("file", file),
                    ("line", line),
                    ("field", field),
                    ("what", &fragment(what)),
                ],
            ),
            E::RegistrationTooLong {
                file,
                line,
                field,
                value,
                length,
            } => tr(
                Msg::CsvRegistrationTooLong,
                &[
                    ("file", file),
                    ("line", line),
                    ("field", field),
                    ("value", value),
                    ("length", length),
                    ("max", &MAX_REGISTRATION_BYTES),
                ],
            ),
            E::ControlCharacter {
                file,
                line,
                field,
                value,
            } => tr(
                Msg::CsvControlCharacter,
                &[
                    ("file", file),
                    ("line", line),
                    ("field", field),
                    ("value", &format!("{value:?}")),
                ],
            ),
            E::BadCard {
                file,
                line,
                field,
                value,
                problem,
            } => tr(
                Msg::CsvBadCard,
                &[
                    ("file", file),
                    ("line", line),
                    ("field", field),
                    ("value", value),
                    ("problem", &fragment(problem)),
                ],
            ),
            E::BadDate {
                file,
                line,
                field,
                value,
                problem,
            } => tr(
                Msg::CsvBadDate,
                &[
                    ("file", file),
                    ("line", line),
                    ("field", field),
                    ("value", value),
                    ("problem", &fragment(problem)),
                ],
            ),
            E::EndBeforeBegin {
                file,
                line,
                begin_field,
                begin,
                end_field,
                end,
            } => tr(
                Msg::CsvEndBeforeBegin,
                &[
                    ("file", file),
                    ("line", line),
                    ("begin_field", begin_field),
                    ("begin", begin),
                    ("end_field", end_field),
                    ("end", end),
                ],
            ),
            E::DuplicateRegistration {
                file,
                line,
                field,
                value,
                first_line,
            } => tr(
                Msg::CsvDuplicateRegistration,
                &[
                    ("file", file),
                    ("line", line),
                    ("field", field),
                    ("value", value),
                    ("first_line", first_line),
                ],
            ),
            E::DuplicateCard {
                file,
                line,
                field,
                card,
                first_line,
                first_registration,
                first_card,
            } => tr(
                Msg::CsvDuplicateCard,
                &[
                    ("file", file),
                    ("line", line),
                    ("field", field),
                    ("card", &card_text(*card)),
                    ("first_line", first_line),
                    ("first_registration", first_registration),
                    ("written", &written_differently(*card, *first_card)),
                ],
            ),
        };
        f.write_str(&text)
    }
}

/// A card as an operator writes it.
fn card_text(card: Card) -> String {
    match card {
        Card::Wiegand { facility, number } => format!("{facility},{number}"),
        Card::Number(number) => number.to_string(),
    }
}
