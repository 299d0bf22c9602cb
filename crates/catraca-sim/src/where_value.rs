//! A request's `where`, read as a `serde_json::Value` would be but with its texts
//! borrowed from the body when they can be.
//!
//! A load by 999 registrations gave the simulator 999 `String`s to allocate, hash into
//! the condition and free again, on every one of the hundred loads per device in W2.
//! Here a text without escapes stays a slice of the request body (a `Cow`), and the
//! condition looks it up as it is. Everything else reads exactly as a `Value`: objects
//! are sorted maps in which a repeated key keeps its last value, a float becomes
//! `null` when JSON cannot hold it, and a malformed body is refused by the same parser
//! in the same words (the tests compare the two readings).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WhereValue<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Text(Cow<'a, str>),
    Array(Vec<WhereValue<'a>>),
    Object(BTreeMap<String, WhereValue<'a>>),
}

/// For conditions built in code (`json!`).
impl From<Value> for WhereValue<'static> {
    fn from(value: Value) -> WhereValue<'static> {
        match value {
            Value::Null => WhereValue::Null,
            Value::Bool(b) => WhereValue::Bool(b),
            Value::Number(n) => WhereValue::Number(n),
            Value::String(s) => WhereValue::Text(Cow::Owned(s)),
            Value::Array(values) => {
                WhereValue::Array(values.into_iter().map(WhereValue::from).collect())
            }
            Value::Object(map) => WhereValue::Object(
                map.into_iter()
                    .map(|(key, value)| (key, WhereValue::from(value)))
                    .collect(),
            ),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WhereValue<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WhereVisitor(std::marker::PhantomData))
    }
}

struct WhereVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for WhereVisitor<'a> {
    type Value = WhereValue<'a>;

    // What `Value` says.
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<WhereValue<'a>, E> {
        Ok(WhereValue::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<WhereValue<'a>, E> {
        Ok(WhereValue::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<WhereValue<'a>, E> {
        Ok(WhereValue::Number(n.into()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<WhereValue<'a>, E> {
        Ok(Number::from_f64(f).map_or(WhereValue::Null, WhereValue::Number))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<WhereValue<'a>, E> {
        Ok(WhereValue::Text(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<WhereValue<'a>, E> {
        Ok(WhereValue::Text(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<WhereValue<'a>, E> {
        Ok(WhereValue::Text(Cow::Owned(s)))
    }
    fn visit_none<E>(self) -> Result<WhereValue<'a>, E> {
        Ok(WhereValue::Null)
    }
    fn visit_unit<E>(self) -> Result<WhereValue<'a>, E> {
        Ok(WhereValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<WhereValue<'a>, D::Error> {
        Deserialize::deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WhereValue<'a>, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(value) = seq.next_element()? {
            values.push(value);
        }
        Ok(WhereValue::Array(values))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WhereValue<'a>, A::Error> {
        let mut object = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value()?;
            object.insert(key, value);
        }
        Ok(WhereValue::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read straight from a body, a `where` is what a `Value` converted would be, and
    /// a bad one fails in the same words.
    #[test]
    fn a_where_reads_as_a_value_would() {
        let bodies = [
            r#"{"users": {"registration": ["1", "2", "caf\u00e9", "a\"b"]}}"#,
            r#"{"users": {"id": [1, -2, 18446744073709551615, 1.5, 2.0, -1e300]}}"#,
            r#"{"users": {"id": 1, "id": 2}, "cards": null, "b": [true, false, {}]}"#,
            r#"{"z": {"y": {"x": [[], [null]]}}, "a": "\ud83d\ude00"}"#,
            r#"null"#,
            r#"-0"#,
            r#""text""#,
            r#"[]"#,
        ];
        for body in bodies {
            let value: Value = serde_json::from_str(body).unwrap();
            let direct: WhereValue = serde_json::from_str(body).unwrap();
            assert_eq!(direct, WhereValue::from(value.clone()), "{body}");
            let from_slice: WhereValue = serde_json::from_slice(body.as_bytes()).unwrap();
            assert_eq!(from_slice, WhereValue::from(value), "{body}");
        }
        for bad in [
            r#"{"users": {"id": [1, 2,]}}"#,
            r#"{"users": {"id": 1e999}}"#,
            r#"{"users": "\ud800"}"#,
            r#"{"users" {"id": 1}}"#,
            r#"{1: 2}"#,
            r#"[1, 2"#,
            "",
        ] {
            let value = serde_json::from_str::<Value>(bad).unwrap_err();
            let direct = serde_json::from_str::<WhereValue>(bad).unwrap_err();
            assert_eq!(direct.to_string(), value.to_string(), "{bad}");
        }
    }

    #[test]
    fn a_text_without_escapes_is_borrowed_from_the_body() {
        let body = r#"["plain", "esc\"aped"]"#;
        let WhereValue::Array(values) = serde_json::from_str(body).unwrap() else {
            panic!("an array")
        };
        assert!(matches!(
            values[0],
            WhereValue::Text(Cow::Borrowed("plain"))
        ));
        assert!(matches!(&values[1], WhereValue::Text(Cow::Owned(s)) if s == "esc\"aped"));
    }
}
