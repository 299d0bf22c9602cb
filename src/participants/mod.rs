//! Reading the participants CSV into validated [`Person`]s, all or nothing.
//!
//! The whole file is checked before anything reaches a device, and the first problem stops
//! the run with the file, the line (1-based, the header is line 1, blank lines and line
//! breaks inside quoted values counted) and the field as the file names it, plus how to
//! fix it. The file may be UTF-8 (with or without a BOM) or Windows-1252, which is what
//! Excel in Brazil saves; fields may be separated by `,` or `;`, whichever the header line
//! uses more. Columns are found by their header in English or Portuguese, in any case and
//! with or without accents: `registration`/`matricula`/`codigo` and `name`/`nome` are
//! required; `card`/`cartao`, `begin`/`inicio`, `end`/`fim` and `group`/`grupo` are
//! optional; any other column is ignored with a warning.
//!
//! Dates and times without an offset (`01/03/2025 08:00`, `2025-03-01T08:00`) are read in
//! the local time zone of the machine running catraca, so run it on a machine set to the
//! turnstiles' zone, or write an offset (`2025-03-01T08:00-03:00`). A date without a time
//! covers the whole day: `begin` starts at 00:00:00 and `end` stops at 23:59:59.

// An `InputError` is built at most once, to end the run, so its size (128 bytes of strings
// a caller can match on) costs nothing worth boxing them for.
#![allow(clippy::result_large_err)]

mod error;
mod header;
mod text;
mod value;

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;

use csv::StringRecord;

pub use error::InputError;

use crate::person::Person;
use crate::photo::{self, Photo, PhotoFit, PhotoOrigin};
use header::Columns;
use value::Bound;

/// The longest registration accepted, in bytes of UTF-8 (an accented letter takes 2). The
/// registration is a person's key on every device, so one bound, checked before anything
/// is sent, keeps a file from failing on some devices and not others.
pub const MAX_REGISTRATION_BYTES: usize = 32;

/// Where the participants come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Stdin,
}

impl Source {
    /// A command-line argument: `-` means standard input, anything else a path.
    pub fn from_arg(arg: &str) -> Source {
        if arg == "-" {
            Source::Stdin
        } else {
            Source::File(PathBuf::from(arg))
        }
    }

    /// The name messages use: the path as given, or `<stdin>`.
    pub fn display_name(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Stdin => "<stdin>".to_owned(),
        }
    }
}

/// A card as the CSV writes it (`123,45678` or `4012345678`), for the command line and
/// the simulator's swipe control; the error completes `"<value>" …`.
pub fn parse_card(text: &str) -> Result<crate::person::Card, &'static str> {
    value::card(text.trim())
}

/// What a command needs of each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A whole person: a registration and a name at least (enroll, plan).
    Person,
    /// A registration only (`catraca remove`: who leaves); a name is read when there
    /// is a column for it, and may be empty.
    Registration,
}

/// Reads all of `source`, then parses it as [`parse_for`] does.
pub fn read(source: &Source, needs: Needs) -> Result<Vec<Person>, InputError> {
    let file = source.display_name();
    let bytes = match source {
        Source::File(path) => std::fs::read(path),
        Source::Stdin => {
            let mut bytes = Vec::new();
            io::stdin().lock().read_to_end(&mut bytes).map(|_| bytes)
        }
    }
    .map_err(|error| InputError::Read {
        file: file.clone(),
        error,
    })?;
    let mut people = parse_for(&bytes, &file, needs)?;
    // The photo column is relative to the CSV's folder; on stdin, to the current one.
    // `join` keeps an absolute path as it is.
    if let Source::File(path) = source {
        if let Some(base) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            for photo in people.iter_mut().filter_map(|p| p.photo.as_mut()) {
                photo.path = base.join(&photo.path);
            }
        }
    }
    Ok(people)
}

/// Gives the people without a photo in the CSV their `--photos DIR/<registration>.jpg`
/// (`.jpeg`, `.png`) when there is one, then reads and checks every photo (see
/// `photo::source`): the first bad one, in file order, is the error. `file` names the
/// CSV in messages. Returns how many people have a photo.
pub fn check_photos(
    people: &mut [Person],
    file: &str,
    photos_dir: Option<&std::path::Path>,
    fit: PhotoFit,
) -> Result<usize, photo::source::PhotoError> {
    use rayon::prelude::*;
    if let Some(dir) = photos_dir {
        people
            .par_iter_mut()
            .filter(|p| p.photo.is_none())
            .for_each(|p| p.photo = photo::source::find_in_directory(dir, &p.registration));
    }
    let photos: Vec<(usize, &mut Photo)> = people
        .iter_mut()
        .filter_map(|p| p.photo.as_mut().map(|photo| (p.line, photo)))
        .collect();
    let count = photos.len();
    photo::source::check(photos, fit, file)?;
    Ok(count)
}

/// Validates the participants file `bytes` and returns one [`Person`] per row, in file
/// order. `file` names the file in error messages.
///
/// Each row is checked as it is read; repeated registrations and cards are looked for
/// once every row is known good, so a malformed row is reported before a repeat that
/// comes earlier in the file.
pub fn parse(bytes: &[u8], file: &str) -> Result<Vec<Person>, InputError> {
    parse_for(bytes, file, Needs::Person)
}

/// [`parse`], asking of each row only what `needs` says.
pub fn parse_for(bytes: &[u8], file: &str, needs: Needs) -> Result<Vec<Person>, InputError> {
    let text = text::decode(bytes, file)?;
    let delimiter = text::sniff_delimiter(&text);
    log::debug!("{file}: fields separated by '{}'", char::from(delimiter));
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        // The header is read as a row so that its line is known and a ragged row gets our
        // message, with its line, rather than the csv crate's.
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = StringRecord::new();

    if !next_row(&mut reader, &mut record, file)? {
        return Err(InputError::Empty { file: file.into() });
    }
    let header_line = line_of(&record, &text);
    let columns = Columns::from_header(&record, file, header_line, needs)?;

    let mut people = Vec::new();
    while next_row(&mut reader, &mut record, file)? {
        let line = line_of(&record, &text);
        if record.len() != columns.width() {
            return Err(InputError::FieldCount {
                file: file.into(),
                line,
                found: record.len(),
                expected: columns.width(),
                header_line,
                hint: if delimiter == b',' {
                    "a value with a comma in it must be in quotes, like a card \"123,45678\""
                } else {
                    "look for a stray or missing ';' (a value with a ';' in it must be in quotes)"
                },
            });
        }
        people.push(
            Row {
                file,
                line,
                columns: &columns,
                record: &record,
                needs,
            }
            .person()?,
        );
    }
    if people.is_empty() {
        return Err(InputError::NoRows {
            file: file.into(),
            header_line,
        });
    }
    check_unique(&people, &columns, file)?;
    Ok(people)
}

/// Reads the next row that has anything in it into `record`. Rows of empty fields (`;;;;`,
/// as Excel writes for a cleared row) count as blank lines.
fn next_row(
    reader: &mut csv::Reader<&[u8]>,
    record: &mut StringRecord,
    file: &str,
) -> Result<bool, InputError> {
    loop {
        let more = reader
            .read_record(record)
            .map_err(|error| InputError::Malformed {
                file: file.into(),
                line: error
                    .position()
                    .map_or(0, |position| position.line() as usize),
                error,
            })?;
        if !more || record.iter().any(|field| !field.trim().is_empty()) {
            return Ok(more);
        }
    }
}

/// The physical line a record starts on. The csv reader places a record where the
/// previous one ended, before any blank lines it skipped, so those are counted here.
fn line_of(record: &StringRecord, text: &str) -> usize {
    let position = record
        .position()
        .expect("the csv reader sets the position of every record it reads");
    let skipped_newlines = text.as_bytes()[position.byte() as usize..]
        .iter()
        .take_while(|&&b| b == b'\n' || b == b'\r')
        .filter(|&&b| b == b'\n')
        .count();
    position.line() as usize + skipped_newlines
}

/// One row being turned into a [`Person`], with what its messages need.
struct Row<'a> {
    file: &'a str,
    line: usize,
    columns: &'a Columns,
    record: &'a StringRecord,
    needs: Needs,
}

impl Row<'_> {
    fn person(&self) -> Result<Person, InputError> {
        let registration = self.registration()?;
        let name = match self.columns.name {
            Some(index) => self.value(index),
            None => "",
        };
        if name.is_empty() && self.needs == Needs::Person {
            let index = self.columns.name.expect("a person needs a name column");
            return Err(self.missing(index, "name"));
        }
        let card = match self.optional(self.columns.card) {
            Some((index, written)) => {
                Some(value::card(written).map_err(|problem| InputError::BadCard {
                    file: self.file.into(),
                    line: self.line,
                    field: self.columns.header(index).into(),
                    value: written.into(),
                    problem,
                })?)
            }
            None => None,
        };
        let begin = self.instant(self.columns.begin, Bound::Begin)?;
        let end = self.instant(self.columns.end, Bound::End)?;
        if let (Some((begin_index, begin_at)), Some((end_index, end_at))) = (begin, end) {
            if begin_at > end_at {
                return Err(InputError::EndBeforeBegin {
                    file: self.file.into(),
                    line: self.line,
                    begin_field: self.columns.header(begin_index).into(),
                    begin: self.value(begin_index).into(),
                    end_field: self.columns.header(end_index).into(),
                    end: self.value(end_index).into(),
                });
            }
        }
        Ok(Person {
            registration: registration.to_owned(),
            name: name.to_owned(),
            card,
            cards_listed: self.columns.card.is_some(),
            begin: begin.map(|(_, at)| at),
            end: end.map(|(_, at)| at),
            group: self
                .optional(self.columns.group)
                .map(|(_, group)| group.to_owned()),
            line: self.line,
            photo: self.optional(self.columns.photo).map(|(index, path)| {
                Photo::named(
                    PathBuf::from(path),
                    PhotoOrigin::Column(self.columns.header(index).into()),
                )
            }),
        })
    }

    fn registration(&self) -> Result<&str, InputError> {
        let index = self.columns.registration;
        let registration = self.value(index);
        if registration.is_empty() {
            return Err(self.missing(index, "registration (the key on every device)"));
        }
        if registration.len() > MAX_REGISTRATION_BYTES {
            return Err(InputError::RegistrationTooLong {
                file: self.file.into(),
                line: self.line,
                field: self.columns.header(index).into(),
                value: registration.into(),
                length: registration.len(),
            });
        }
        if registration.chars().any(char::is_control) {
            return Err(InputError::ControlCharacter {
                file: self.file.into(),
                line: self.line,
                field: self.columns.header(index).into(),
                value: registration.into(),
            });
        }
        Ok(registration)
    }

    /// The instant in column `index`, if the file has that column and it is filled in.
    fn instant(
        &self,
        index: Option<usize>,
        bound: Bound,
    ) -> Result<Option<(usize, i64)>, InputError> {
        let Some((index, written)) = self.optional(index) else {
            return Ok(None);
        };
        match value::instant(written, bound) {
            Ok(at) => Ok(Some((index, at))),
            Err(problem) => Err(InputError::BadDate {
                file: self.file.into(),
                line: self.line,
                field: self.columns.header(index).into(),
                value: written.into(),
                problem,
            }),
        }
    }

    /// The trimmed value of column `index`, which every row has (rows are checked against
    /// the header's width first).
    fn value(&self, index: usize) -> &str {
        self.record[index].trim()
    }

    /// The trimmed value of an optional column, `None` when the column is absent or empty.
    fn optional(&self, index: Option<usize>) -> Option<(usize, &str)> {
        let index = index?;
        let value = self.value(index);
        (!value.is_empty()).then_some((index, value))
    }

    fn missing(&self, index: usize, what: &'static str) -> InputError {
        InputError::MissingValue {
            file: self.file.into(),
            line: self.line,
            field: self.columns.header(index).into(),
            what,
        }
    }
}

/// Finds the first person, in file order, whose registration or card an earlier person
/// already has. Keys borrow from `people`, so nothing is copied.
fn check_unique(people: &[Person], columns: &Columns, file: &str) -> Result<(), InputError> {
    let mut registrations: HashMap<&str, usize> = HashMap::with_capacity(people.len());
    // Keyed by the value a device stores, so `0,5` and `5`, one card to a Control iD
    // device, are caught too.
    let mut cards: HashMap<u64, &Person> = HashMap::new();
    for person in people {
        if let Some(first_line) = registrations.insert(&person.registration, person.line) {
            return Err(InputError::DuplicateRegistration {
                file: file.into(),
                line: person.line,
                field: columns.header(columns.registration).into(),
                value: person.registration.clone(),
                first_line,
            });
        }
        let (Some(card), Some(card_column)) = (person.card, columns.card) else {
            continue;
        };
        if let Some(first) = cards.insert(card.controlid_value(), person) {
            let first_card = first.card.expect("only people with a card are in the map");
            return Err(InputError::DuplicateCard {
                file: file.into(),
                line: person.line,
                field: columns.header(card_column).into(),
                card,
                first_line: first.line,
                first_registration: first.registration.clone(),
                first_card,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
