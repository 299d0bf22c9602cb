//! Reading the card and date values of one field, already trimmed and not empty.
//!
//! Problems come back as a phrase that completes `"<value>" …` (for example `names a day
//! that does not exist`); the caller adds the file, line and field, and how to fix it.

use chrono::{LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};

use crate::person::Card;

/// A card: `facility,number` (Wiegand, both `u32`) or a plain `u64` number.
pub(super) fn card(text: &str) -> Result<Card, &'static str> {
    match text.split_once(',') {
        Some((facility, number)) => Ok(Card::Wiegand {
            facility: digits(facility.trim())
                .ok_or("is not a card number")?
                .map_err(|_| "has a facility code larger than 4294967295")?,
            number: digits(number.trim())
                .ok_or("is not a card number")?
                .map_err(|_| "has a card number larger than 4294967295")?,
        }),
        None => Ok(Card::Number(
            digits(text)
                .ok_or("is not a card number")?
                .map_err(|_| "is larger than 18446744073709551615")?,
        )),
    }
}

/// `None` when `text` is not all ASCII digits; otherwise the number, or an error when it
/// overflows `T`. (`str::parse` alone would also take a leading `+`.)
fn digits<T: std::str::FromStr>(text: &str) -> Option<Result<T, T::Err>> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse())
}

/// Which end of a validity window a date is: it decides the time of a date written alone
/// and the side taken when a local time happens twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bound {
    Begin,
    End,
}

/// Unix seconds for a date, with an optional time (`08:00`, `08:00:00`, after a space or
/// `T`) and an optional offset (`Z`, `-03:00`). Without an offset the time is this
/// machine's local time.
pub(super) fn instant(text: &str, bound: Bound) -> Result<i64, &'static str> {
    let (rest, offset_seconds) = split_offset(text)?;
    let (date_text, time_text) = match rest.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time.trim_start())),
        None => (rest, None),
    };
    if offset_seconds.is_some() && time_text.is_none() {
        return Err("has an offset but no time of day");
    }
    let date = date(date_text)?;
    let time = match (time_text, bound) {
        (Some(time_text), _) => time(time_text)?,
        // A date alone means the whole day.
        (None, Bound::Begin) => NaiveTime::MIN,
        (None, Bound::End) => NaiveTime::from_hms_opt(23, 59, 59).expect("a valid time"),
    };
    let naive = NaiveDateTime::new(date, time);
    if let Some(offset_seconds) = offset_seconds {
        return Ok(naive.and_utc().timestamp() - i64::from(offset_seconds));
    }
    match chrono::Local.from_local_datetime(&naive) {
        LocalResult::Single(at) => Ok(at.timestamp()),
        // The hour repeated when clocks go back: take the wider window, so nobody is turned
        // away during the hour the operator meant.
        LocalResult::Ambiguous(earliest, latest) => Ok(match bound {
            Bound::Begin => earliest.timestamp(),
            Bound::End => latest.timestamp(),
        }),
        LocalResult::None => {
            Err("falls in the hour this machine's clock skips for daylight saving")
        }
    }
}

/// Splits a trailing `Z` or `±hh:mm` off `text`, returning the offset east of UTC in seconds.
fn split_offset(text: &str) -> Result<(&str, Option<i32>), &'static str> {
    if let Some(rest) = text.strip_suffix(['Z', 'z']) {
        return Ok((rest, Some(0)));
    }
    let bytes = text.as_bytes();
    let Some(start) = bytes.len().checked_sub(6) else {
        return Ok((text, None));
    };
    let sign = match bytes[start] {
        b'+' => 1,
        b'-' => -1,
        _ => return Ok((text, None)),
    };
    // A date alone ends in `-03-01`, never `-03:00`: the colon tells the two apart.
    if bytes[start + 3] != b':' {
        return Ok((text, None));
    }
    let (Some(Ok(hours)), Some(Ok(minutes))) = (
        digits::<i32>(&text[start + 1..start + 3]),
        digits::<i32>(&text[start + 4..]),
    ) else {
        return Err("is not a date");
    };
    if hours > 23 || minutes > 59 {
        return Err("has an offset from UTC that does not exist");
    }
    Ok((&text[..start], Some(sign * (hours * 3600 + minutes * 60))))
}

/// `2025-03-01` or `01/03/2025`.
fn date(text: &str) -> Result<NaiveDate, &'static str> {
    let (separator, brazilian) = if text.contains('/') {
        ('/', true)
    } else {
        ('-', false)
    };
    let mut parts = text.split(separator);
    let (Some(first), Some(second), Some(third), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("is not a date");
    };
    let (year, month, day) = if brazilian {
        (third, second, first)
    } else {
        (first, second, third)
    };
    let (Some(Ok(year_number)), Some(Ok(month_number)), Some(Ok(day_number))) = (
        digits::<i32>(year),
        digits::<u32>(month),
        digits::<u32>(day),
    ) else {
        return Err("is not a date");
    };
    if month.len() > 2 || day.len() > 2 {
        return Err("is not a date");
    }
    // `01/03/25` could be 1925 or 2025; refusing beats guessing a validity window.
    if year.len() != 4 {
        return Err("has a year without four digits");
    }
    NaiveDate::from_ymd_opt(year_number, month_number, day_number)
        .ok_or("names a day that does not exist")
}

/// `08:00` or `08:00:00`.
fn time(text: &str) -> Result<NaiveTime, &'static str> {
    let mut parts = text.split(':');
    let (Some(hours), Some(minutes), seconds, None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("is not a date and time");
    };
    let field = |part: &str| match digits::<u32>(part) {
        Some(Ok(value)) if part.len() <= 2 => Ok(value),
        _ => Err("is not a date and time"),
    };
    let seconds = seconds.map_or(Ok(0), field)?;
    NaiveTime::from_hms_opt(field(hours)?, field(minutes)?, seconds)
        .ok_or("names a time of day that does not exist")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap();
        chrono::Local
            .from_local_datetime(&naive)
            .unwrap()
            .timestamp()
    }

    #[test]
    fn cards_are_wiegand_pairs_or_plain_numbers() {
        assert_eq!(
            card("123,45678"),
            Ok(Card::Wiegand {
                facility: 123,
                number: 45678
            })
        );
        assert_eq!(
            card("123 , 45678"),
            Ok(Card::Wiegand {
                facility: 123,
                number: 45678
            })
        );
        assert_eq!(
            card("4294967295,0"),
            Ok(Card::Wiegand {
                facility: u32::MAX,
                number: 0
            })
        );
        assert_eq!(card("4012345678"), Ok(Card::Number(4_012_345_678)));
        assert_eq!(card("18446744073709551615"), Ok(Card::Number(u64::MAX)));
    }

    #[test]
    fn anything_else_is_not_a_card() {
        for bad in ["12a", "+5", "-5", "1,2,3", ",5", "5,", "1.5", "0x1F", "1 2"] {
            assert_eq!(card(bad), Err("is not a card number"), "{bad}");
        }
        assert_eq!(
            card("4294967296,1"),
            Err("has a facility code larger than 4294967295")
        );
        assert_eq!(
            card("1,4294967296"),
            Err("has a card number larger than 4294967295")
        );
        assert_eq!(
            card("18446744073709551616"),
            Err("is larger than 18446744073709551615")
        );
    }

    #[test]
    fn iso_dates_with_an_offset_are_exact() {
        // 2025-03-01T08:00:00Z is 1740816000.
        for written in [
            "2025-03-01T08:00:00Z",
            "2025-03-01 08:00Z",
            "2025-03-01T05:00:00-03:00",
            "2025-03-01T05:00-03:00",
            "2025-03-01 10:30:00+02:30",
            "01/03/2025 05:00-03:00",
        ] {
            assert_eq!(
                instant(written, Bound::Begin),
                Ok(1_740_816_000),
                "{written}"
            );
        }
    }

    #[test]
    fn dates_without_an_offset_are_local_time() {
        let eight = local(2025, 3, 1, 8, 0, 0);
        for written in [
            "2025-03-01T08:00:00",
            "2025-03-01 08:00",
            "2025-03-01T08:00",
            "01/03/2025 08:00",
            "01/03/2025 08:00:00",
            "1/3/2025 8:00",
        ] {
            assert_eq!(instant(written, Bound::Begin), Ok(eight), "{written}");
        }
        assert_eq!(instant("01/03/2025 08:00:59", Bound::End), Ok(eight + 59));
    }

    #[test]
    fn a_date_alone_covers_the_whole_day() {
        let first_second = local(2025, 3, 1, 0, 0, 0);
        let last_second = local(2025, 3, 1, 23, 59, 59);
        assert_eq!(instant("2025-03-01", Bound::Begin), Ok(first_second));
        assert_eq!(instant("01/03/2025", Bound::Begin), Ok(first_second));
        assert_eq!(instant("2025-03-01", Bound::End), Ok(last_second));
        assert_eq!(instant("01/03/2025", Bound::End), Ok(last_second));
    }

    #[test]
    fn impossible_or_unreadable_dates_say_why() {
        let cases = [
            ("2025-02-30", "names a day that does not exist"),
            ("31/04/2025", "names a day that does not exist"),
            ("01/03/25", "has a year without four digits"),
            (
                "2025-03-01 24:00",
                "names a time of day that does not exist",
            ),
            (
                "2025-03-01 08:61",
                "names a time of day that does not exist",
            ),
            ("2025-03-01Z", "has an offset but no time of day"),
            (
                "2025-03-01T08:00+25:00",
                "has an offset from UTC that does not exist",
            ),
            ("amanhã", "is not a date"),
            ("2025/03/01", "is not a date"),
            ("01-03-2025x", "is not a date"),
            ("2025-03-01 8h", "is not a date and time"),
            ("2025-03-01T08:00:00.000", "is not a date and time"),
            ("2025-03-01 08:00:00:00", "is not a date and time"),
        ];
        for (written, problem) in cases {
            assert_eq!(instant(written, Bound::Begin), Err(problem), "{written}");
        }
    }
}
