//! Turning the bytes of a participants file into text, and finding its delimiter.
//!
//! Excel in Brazil saves "CSV" as Windows-1252 with `;` between fields; other tools write
//! UTF-8, often behind a byte-order mark, with `,`. Both arrive here, and neither should
//! make the operator convert anything first.

use std::borrow::Cow;

use encoding_rs::WINDOWS_1252;

use super::InputError;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const UTF16_LE_BOM: &[u8] = b"\xFF\xFE";
const UTF16_BE_BOM: &[u8] = b"\xFE\xFF";

/// The text of `bytes`: UTF-8 without its BOM when the bytes are valid UTF-8 (borrowed, no
/// copy), otherwise Windows-1252, which maps every byte to a character and so never fails.
pub(super) fn decode<'a>(bytes: &'a [u8], file: &str) -> Result<Cow<'a, str>, InputError> {
    // Excel's "Unicode text" export is UTF-16; decoding it as Windows-1252 would produce
    // headers full of NULs and a baffling "missing column" error, so say what it is instead.
    if bytes.starts_with(UTF16_LE_BOM) || bytes.starts_with(UTF16_BE_BOM) {
        return Err(InputError::Utf16 { file: file.into() });
    }
    let (bytes, had_bom) = match bytes.strip_prefix(UTF8_BOM) {
        Some(rest) => (rest, true),
        None => (bytes, false),
    };
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            log::debug!(
                "{file}: reading as UTF-8 ({} byte-order mark)",
                if had_bom { "with" } else { "no" }
            );
            Ok(Cow::Borrowed(text))
        }
        Err(error) => {
            log::debug!(
                "{file}: not UTF-8 ({error}), reading as Windows-1252 (Excel's encoding in Brazil)"
            );
            let (text, _had_errors) = WINDOWS_1252.decode_without_bom_handling(bytes);
            Ok(text)
        }
    }
}

/// The delimiter of the header line (the first line with anything on it): `;` when it has
/// more semicolons than commas outside quotes, `,` otherwise. A tie can only be a header
/// with neither, which fails later for want of columns whatever the delimiter is.
pub(super) fn sniff_delimiter(text: &str) -> u8 {
    let (mut commas, mut semicolons) = (0usize, 0usize);
    let mut in_quotes = false;
    let mut header_started = false;
    for byte in text.bytes() {
        match byte {
            // A doubled quote inside quotes toggles twice, so it needs no special case.
            b'"' => in_quotes = !in_quotes,
            b'\n' | b'\r' if !in_quotes => {
                if header_started {
                    break;
                }
                continue;
            }
            b',' if !in_quotes => commas += 1,
            b';' if !in_quotes => semicolons += 1,
            _ => {}
        }
        header_started = true;
    }
    if semicolons > commas {
        b';'
    } else {
        b','
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_borrowed_and_loses_its_bom() {
        let text = decode(b"\xEF\xBB\xBFmatricula;nome", "f.csv").unwrap();
        assert!(matches!(text, Cow::Borrowed("matricula;nome")));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_read_as_windows_1252() {
        let text = decode(b"Jo\xe3o Concei\xe7\xe3o \x96 Ant\xf4nio", "f.csv").unwrap();
        assert_eq!(text, "João Conceição – Antônio");
    }

    #[test]
    fn utf16_is_refused_with_a_way_out() {
        let message = decode(b"\xFF\xFEm\0a\0", "f.csv").unwrap_err().to_string();
        assert!(message.starts_with("f.csv is UTF-16"), "{message}");
        assert!(message.contains("CSV UTF-8"), "{message}");
    }

    #[test]
    fn delimiter_is_whichever_the_header_has_more_of_outside_quotes() {
        assert_eq!(sniff_delimiter("matricula;nome;cartao\n1;a;1,2\n"), b';');
        assert_eq!(sniff_delimiter("registration,name\n1;2;3;4;5\n"), b',');
        assert_eq!(sniff_delimiter("\r\n\nmatricula;nome\n"), b';');
        assert_eq!(sniff_delimiter("matricula;\"nome, completo\"\n"), b';');
        assert_eq!(sniff_delimiter("\"a;b;c\",nome,x\n"), b',');
        assert_eq!(sniff_delimiter("matricula\n"), b',');
    }
}
