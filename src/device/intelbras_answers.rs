//! Intelbras/Dahua list answers in both shapes field firmware sends
//! (`docs/field-evidence.md`, section 1): JSON (`UserList`, `CardList`, `Info` of a
//! `doFind`) and flat `key=value` text (`records[0].UserID=1001`, `Records[n]`,
//! `Cards[n]`, a `found=` line or none, keys that may be missing, `\r\n` line ends).
//! The shape is read from the body, never assumed from the firmware version: one
//! reader turns either into [`Record`]s, field name to text, array fields as
//! `Doors[0]`. Which records answer the question is the caller's business: a filter
//! can be silently ignored, so callers keep only the records whose `UserID` (or
//! `CardNo`) they asked for.

use serde_json::Value;
use std::collections::BTreeMap;

/// One record of a list: field name (as the device spells it) to its text.
pub type Record = BTreeMap<String, String>;

/// The arrays of records a JSON answer may carry, by the names clients have met.
const JSON_LISTS: [&str; 6] = [
    "UserList", "CardList", "Info", "Cards", "records", "Records",
];

/// Every record of a list answer, JSON or flat text. An empty body, `found=0`, an
/// empty list or a body in neither shape all read as no record.
pub fn records(body: &[u8]) -> Vec<Record> {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(parsed) = serde_json::from_str::<Value>(trimmed) {
            return json_records(&parsed);
        }
    }
    flat_records(&text)
}

fn json_records(parsed: &Value) -> Vec<Record> {
    // Some answers wrap the list in `params` (the RPC2 shape).
    let root = parsed.get("params").unwrap_or(parsed);
    let Some(list) = JSON_LISTS
        .iter()
        .find_map(|key| root.get(key).and_then(Value::as_array))
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_object)
        .map(|object| {
            let mut record = Record::new();
            for (key, value) in object {
                match value {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            record.insert(format!("{key}[{i}]"), scalar(item));
                        }
                    }
                    other => {
                        record.insert(key.clone(), scalar(other));
                    }
                }
            }
            record
        })
        .collect()
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `<prefix>[<n>].<Field>=<value>` lines, split on the first `=`; the prefix in any
/// case, lines without an index (`found=`, `totalCount=`) skipped.
fn flat_records(text: &str) -> Vec<Record> {
    let mut by_index: BTreeMap<usize, Record> = BTreeMap::new();
    for line in text.split(['\r', '\n']) {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let Some((head, field)) = key.trim().split_once("].") else {
            continue;
        };
        let Some((prefix, index)) = head.split_once('[') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_alphabetic()) {
            continue;
        }
        by_index
            .entry(index)
            .or_default()
            .insert(field.to_string(), value.to_string());
    }
    by_index.into_values().collect()
}

/// `Token` and `Total` of a `startFind` answer (JSON, or flat `Token=` lines).
pub fn find_token(body: &[u8]) -> Option<(String, Option<u64>)> {
    let text = String::from_utf8_lossy(body);
    if let Ok(parsed) = serde_json::from_str::<Value>(text.trim()) {
        let root = parsed.get("params").unwrap_or(&parsed);
        let token = root.get("Token").map(scalar).filter(|t| !t.is_empty())?;
        let total = root.get("Total").and_then(Value::as_u64);
        return Some((token, total));
    }
    let value = |name: &str| {
        text.split(['\r', '\n'])
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let token = value("Token").filter(|t| !t.is_empty())?;
    Some((token, value("Total").and_then(|t| t.parse().ok())))
}

/// A record's field, `""` when the key is missing.
pub fn field<'a>(record: &'a Record, name: &str) -> &'a str {
    record.get(name).map(String::as_str).unwrap_or("")
}

/// The name of a user or card record: `UserName`, else `CardName`.
pub fn name_of(record: &Record) -> &str {
    record
        .get("UserName")
        .or_else(|| record.get("CardName"))
        .map(String::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_text_with_any_prefix_missing_keys_and_crlf() {
        let body = b"found=2\r\nrecords[0].UserID=1001\r\nrecords[0].UserName=Ana = Souza\r\nrecords[0].CardNo=\r\nRecords[1].UserID=1002\r\nrecords[1].Doors[0]=0\r\n";
        let got = records(body);
        assert_eq!(got.len(), 2);
        assert_eq!(field(&got[0], "UserID"), "1001");
        assert_eq!(name_of(&got[0]), "Ana = Souza", "split on the first `=`");
        assert_eq!(field(&got[0], "CardNo"), "");
        assert_eq!(field(&got[1], "UserID"), "1002");
        assert_eq!(field(&got[1], "Doors[0]"), "0");
        assert_eq!(field(&got[1], "UserName"), "", "a missing key is allowed");
        let cards =
            records(b"Cards[0].CardNo=2B0BC4\nCards[0].UserID=1001\nCards[0].CardName=Ana\n");
        assert_eq!(field(&cards[0], "CardNo"), "2B0BC4");
        assert_eq!(name_of(&cards[0]), "Ana");
    }

    #[test]
    fn json_lists_under_any_known_key() {
        let users = records(
            br#"{"UserList":[{"UserID":"1001","UserName":"Ana","Doors":[0],"UserType":0}]}"#,
        );
        assert_eq!(field(&users[0], "UserID"), "1001");
        assert_eq!(field(&users[0], "Doors[0]"), "0");
        assert_eq!(field(&users[0], "UserType"), "0");
        let found = records(br#"{"Info":[{"UserID":"7","UserName":"Bia"}],"Found":1}"#);
        assert_eq!(name_of(&found[0]), "Bia");
    }

    #[test]
    fn absence_in_every_shape_is_no_record() {
        for body in [
            &b""[..],
            b"found=0\r\n",
            br#"{"UserList":[]}"#,
            br#"{"Info":[]}"#,
            b"Error\r\nBad Request!\r\n",
        ] {
            assert!(
                records(body).is_empty(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn find_tokens_in_json_or_text() {
        assert_eq!(
            find_token(br#"{"Token":1234,"Total":57}"#),
            Some(("1234".into(), Some(57)))
        );
        assert_eq!(
            find_token(b"Token=99\r\nTotal=3\r\n"),
            Some(("99".into(), Some(3)))
        );
        assert_eq!(find_token(b"Error\r\nNot Implemented!\r\n"), None);
    }
}
