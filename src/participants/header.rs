//! Which column of the participants file holds which field.
//!
//! Operators write headers in Portuguese, with or without accents and in any case
//! (`Matrícula`, `MATRICULA`, `matricula`), or in English; all of them are folded to one
//! plain form before matching. Columns catraca does not use are allowed, so a spreadsheet
//! exported with extra notes works as it is.

use csv::StringRecord;

use super::{InputError, Needs};

/// A field of [`crate::person::Person`] that a column can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Registration,
    Name,
    Card,
    Begin,
    End,
    Group,
    Photo,
}

impl Field {
    const ALL: [Field; 7] = [
        Field::Registration,
        Field::Name,
        Field::Card,
        Field::Begin,
        Field::End,
        Field::Group,
        Field::Photo,
    ];

    /// The header names accepted for this field, folded; the first is the canonical one.
    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Registration => &["registration", "matricula", "codigo"],
            Field::Name => &["name", "nome"],
            Field::Card => &["card", "cartao"],
            Field::Begin => &["begin", "inicio"],
            Field::End => &["end", "fim"],
            Field::Group => &["group", "grupo"],
            Field::Photo => &["photo", "foto", "face"],
        }
    }

    fn of_header(folded: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|field| field.names().contains(&folded))
    }
}

/// The position of every known column in a row, and the headers as the operator wrote them
/// (messages name a field the way the file does).
#[derive(Debug)]
pub(super) struct Columns {
    pub registration: usize,
    /// Always there when a whole person is needed; may be absent for `catraca remove`.
    pub name: Option<usize>,
    pub card: Option<usize>,
    pub begin: Option<usize>,
    pub end: Option<usize>,
    pub group: Option<usize>,
    /// The face photo's file, relative to the CSV's folder.
    pub photo: Option<usize>,
    headers: Vec<String>,
}

impl Columns {
    /// Maps the header record found on `line` of `file`; the name column is required
    /// when `needs` is a whole person.
    pub fn from_header(
        header: &StringRecord,
        file: &str,
        line: usize,
        needs: Needs,
    ) -> Result<Self, InputError> {
        let mut found: [Option<usize>; Field::ALL.len()] = [None; Field::ALL.len()];
        let headers: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
        let mut unknown = Vec::new();
        for (index, written) in headers.iter().enumerate() {
            let Some(field) = Field::of_header(&fold(written)) else {
                unknown.push(format!("\"{written}\" (column {})", index + 1));
                continue;
            };
            if let Some(first) = found[field as usize] {
                return Err(InputError::DuplicateColumn {
                    file: file.into(),
                    line,
                    column: field.names()[0],
                    first: headers[first].clone(),
                    second: written.clone(),
                });
            }
            found[field as usize] = Some(index);
        }
        if !unknown.is_empty() {
            log::warn!(
                "{file} line {line}: ignoring column(s) catraca does not use: {}",
                unknown.join(", ")
            );
        }
        let required = |field: Field| {
            found[field as usize].ok_or_else(|| InputError::MissingColumn {
                file: file.into(),
                line,
                column: field.names()[0],
                accepted: either(field.names()),
                found: headers
                    .iter()
                    .map(|h| format!("\"{h}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        };
        Ok(Columns {
            registration: required(Field::Registration)?,
            name: match needs {
                Needs::Person => Some(required(Field::Name)?),
                Needs::Registration => found[Field::Name as usize],
            },
            card: found[Field::Card as usize],
            begin: found[Field::Begin as usize],
            end: found[Field::End as usize],
            group: found[Field::Group as usize],
            photo: found[Field::Photo as usize],
            headers,
        })
    }

    /// How many fields every row must have.
    pub fn width(&self) -> usize {
        self.headers.len()
    }

    /// The header of column `index` as written in the file.
    pub fn header(&self, index: usize) -> &str {
        &self.headers[index]
    }
}

/// `a, b or c`.
fn either(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// `header` trimmed, lower-cased and without accents, so `Início ` matches `inicio`.
fn fold(header: &str) -> String {
    header
        .trim()
        .chars()
        // Combining marks come from decomposed text (macOS writes `í` as `i` + U+0301).
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(header: &[&str]) -> Result<Columns, InputError> {
        Columns::from_header(
            &StringRecord::from(header.to_vec()),
            "p.csv",
            1,
            Needs::Person,
        )
    }

    #[test]
    fn portuguese_headers_match_whatever_their_case_accents_and_spacing() {
        assert_eq!(fold(" MATRÍCULA "), "matricula");
        assert_eq!(fold("Cartão"), "cartao");
        assert_eq!(fold("Código"), "codigo");
        assert_eq!(fold("Ini\u{301}cio"), "inicio");
        let found =
            columns(&["Código", " NOME", "Obs", "Cartão", "Início", "Fim", "Grupo"]).unwrap();
        assert_eq!(
            (
                found.registration,
                found.name,
                found.card,
                found.begin,
                found.end,
                found.group
            ),
            (0, Some(1), Some(3), Some(4), Some(5), Some(6))
        );
        assert_eq!(found.width(), 7);
        assert_eq!(found.header(0), "Código");
    }

    #[test]
    fn optional_columns_may_be_absent() {
        let found = columns(&["name", "registration"]).unwrap();
        assert_eq!((found.registration, found.name), (1, Some(0)));
        assert_eq!(
            (found.card, found.begin, found.end, found.group),
            (None, None, None, None)
        );
    }
}
