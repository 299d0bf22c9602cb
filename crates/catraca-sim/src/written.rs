//! The objects of a create's `values`, read straight from the request body into one
//! flat list of fields for the whole batch.
//!
//! A create of 250 users used to cost a `Vec` per object (and, before that, a
//! `serde_json::Map` and a `Value` per field); here every object's fields land in one
//! shared `Vec`, so a batch costs a handful of allocations besides its texts. Each
//! object still reads exactly as a JSON map would: fields sorted by name, the last of a
//! repeated name winning, and a malformed body refused in the same words (the tests in
//! `tables.rs` compare the two readings).

use std::ops::Range;
use std::sync::Arc;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One value of a written object, as much of the JSON as a column can take.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WriteValue {
    Null,
    Number(serde_json::Number),
    /// Read straight into the shared form a stored cell keeps.
    Text(Arc<str>),
    /// A boolean, array or object: no column takes one (`datatype mismatch`).
    Other,
}

impl From<&Value> for WriteValue {
    fn from(value: &Value) -> WriteValue {
        match value {
            Value::Null => WriteValue::Null,
            Value::Number(n) => WriteValue::Number(n.clone()),
            Value::String(s) => WriteValue::Text(s.as_str().into()),
            Value::Bool(_) | Value::Array(_) | Value::Object(_) => WriteValue::Other,
        }
    }
}

impl<'de> serde::Deserialize<'de> for WriteValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WriteValueVisitor)
    }
}

struct WriteValueVisitor;

impl<'de> Visitor<'de> for WriteValueVisitor {
    type Value = WriteValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_unit<E>(self) -> Result<WriteValue, E> {
        Ok(WriteValue::Null)
    }
    fn visit_none<E>(self) -> Result<WriteValue, E> {
        Ok(WriteValue::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<WriteValue, E> {
        Ok(WriteValue::Other)
    }
    fn visit_i64<E>(self, n: i64) -> Result<WriteValue, E> {
        // `Number::from` keeps a non-negative i64 as an unsigned one, as `Value` does.
        Ok(WriteValue::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<WriteValue, E> {
        Ok(WriteValue::Number(n.into()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<WriteValue, E> {
        Ok(serde_json::Number::from_f64(f).map_or(WriteValue::Null, WriteValue::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<WriteValue, E> {
        Ok(WriteValue::Text(s.into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WriteValue, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(WriteValue::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WriteValue, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(WriteValue::Other)
    }
}

/// Every column name of every table: a field with one of these names costs no
/// allocation to read, and compares as a small number. In byte order, so that two
/// known names compare as their positions do (a batch's objects are sorted by name).
pub(crate) const KNOWN_FIELDS: [&str; 11] = [
    "begin_time",
    "end_time",
    "group_id",
    "id",
    "name",
    "password",
    "registration",
    "salt",
    "user_id",
    "user_type_id",
    "value",
];

/// A field name as written: usually a column name of some table (by its position in
/// `KNOWN_FIELDS`), else kept as sent. A name has exactly one representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldName {
    Known(u8),
    Other(String),
}

/// Names compare as their texts do, known ones without reading them.
impl Ord for FieldName {
    fn cmp(&self, other: &FieldName) -> std::cmp::Ordering {
        match (self, other) {
            (FieldName::Known(a), FieldName::Known(b)) => a.cmp(b),
            _ => self.as_str().cmp(other.as_str()),
        }
    }
}

impl PartialOrd for FieldName {
    fn partial_cmp(&self, other: &FieldName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl FieldName {
    fn of(name: &str) -> FieldName {
        match KNOWN_FIELDS.iter().position(|known| *known == name) {
            Some(index) => FieldName::Known(index as u8),
            None => FieldName::Other(name.to_owned()),
        }
    }

    /// The position in `KNOWN_FIELDS` of a known name.
    pub(crate) fn known(&self) -> Option<usize> {
        match self {
            FieldName::Known(index) => Some(usize::from(*index)),
            FieldName::Other(_) => None,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            FieldName::Known(index) => KNOWN_FIELDS[usize::from(*index)],
            FieldName::Other(name) => name,
        }
    }
}

impl<'de> serde::Deserialize<'de> for FieldName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = FieldName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, name: &str) -> Result<FieldName, E> {
                Ok(FieldName::of(name))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// One object of a batch: its fields, sorted by name, without repeats.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WrittenObject<'a> {
    fields: &'a [(FieldName, WriteValue)],
}

impl<'a> WrittenObject<'a> {
    /// The field names, in the order a JSON map lists them (sorted).
    pub(crate) fn names(&self) -> impl Iterator<Item = &'a FieldName> {
        self.fields.iter().map(|(name, _)| name)
    }

    /// The text of a field, when it is written as text.
    pub(crate) fn text(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, value)| match value {
                WriteValue::Text(text) => Some(&**text),
                _ => None,
            })
    }
}

/// Every object of a create's `values`, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct WrittenObjects {
    /// The fields of all objects, one object after the other.
    fields: Vec<(FieldName, WriteValue)>,
    /// Where each object's fields end in `fields`; each starts where the previous ends.
    ends: Vec<usize>,
}

impl WrittenObjects {
    /// The batch as JSON maps would give it (for objects built in code).
    pub(crate) fn from_maps<'m>(
        maps: impl IntoIterator<Item = &'m serde_json::Map<String, Value>>,
    ) -> WrittenObjects {
        let mut objects = WrittenObjects::default();
        for map in maps {
            let start = objects.fields.len();
            let mut known = 0;
            for (name, value) in map {
                objects.set(start, &mut known, FieldName::of(name), value.into());
            }
            objects.finish_object(start);
        }
        objects
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    fn range(&self, index: usize) -> Range<usize> {
        let start = index
            .checked_sub(1)
            .map_or(0, |previous| self.ends[previous]);
        start..self.ends[index]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = WrittenObject<'_>> {
        (0..self.len()).map(|index| WrittenObject {
            fields: &self.fields[self.range(index)],
        })
    }

    /// The fields of all objects one after the other, and where each object's end:
    /// what an insert consumes, moving the values instead of copying them.
    pub(crate) fn into_fields_and_ends(self) -> (Vec<(FieldName, WriteValue)>, Vec<usize>) {
        (self.fields, self.ends)
    }

    /// Sets a field of the object that starts at `start`: a repeated name overwrites.
    /// `known` holds a bit per known name the object already has, so that a new known
    /// name (nearly every field) is pushed without looking through the others.
    fn set(&mut self, start: usize, known: &mut u16, name: FieldName, value: WriteValue) {
        if let Some(index) = name.known() {
            let bit = 1 << index;
            if *known & bit == 0 {
                *known |= bit;
                self.fields.push((name, value));
                return;
            }
        }
        match self.fields[start..].iter_mut().find(|(n, _)| *n == name) {
            Some((_, slot)) => *slot = value,
            None => self.fields.push((name, value)),
        }
    }

    /// Closes the object that starts at `start`, sorting its fields as a map does.
    fn finish_object(&mut self, start: usize) {
        self.fields[start..].sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.ends.push(self.fields.len());
    }
}

impl<'de> serde::Deserialize<'de> for WrittenObjects {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ObjectsVisitor)
    }
}

struct ObjectsVisitor;

impl<'de> Visitor<'de> for ObjectsVisitor {
    type Value = WrittenObjects;

    // What a `Vec` says, so a malformed body is refused in the same words.
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WrittenObjects, A::Error> {
        // Bounded like serde's own `Vec`: a size hint is a hint, not a promise.
        // JSON gives no hint: start at a typical batch (250 people of about 4 fields)
        // rather than growing through every power of two.
        let objects_hint = seq.size_hint().unwrap_or(256).min(4096);
        let mut objects = WrittenObjects {
            fields: Vec::with_capacity(objects_hint * 4),
            ends: Vec::with_capacity(objects_hint),
        };
        while seq.next_element_seed(ObjectSeed(&mut objects))?.is_some() {}
        Ok(objects)
    }
}

/// Reads one object of the batch into the shared list.
struct ObjectSeed<'a>(&'a mut WrittenObjects);

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();

    // What `serde_json::Map` says, so a malformed body is refused in the same words.
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        let start = self.0.fields.len();
        self.0.finish_object(start);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let start = self.0.fields.len();
        let mut known = 0;
        while let Some((name, value)) = map.next_entry::<FieldName, WriteValue>()? {
            self.0.set(start, &mut known, name, value);
        }
        self.0.finish_object(start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_reads_as_its_position() {
        for (index, name) in KNOWN_FIELDS.iter().enumerate() {
            assert_eq!(FieldName::of(name), FieldName::Known(index as u8), "{name}");
        }
        assert_eq!(FieldName::of("ids"), FieldName::Other("ids".into()));
    }

    /// Every order of up to five names, known or not, comes out as a map sorts it.
    #[test]
    fn an_object_s_fields_come_out_in_map_order_whatever_the_order_sent() {
        fn orders(names: &[&'static str]) -> Vec<Vec<&'static str>> {
            if names.is_empty() {
                return vec![Vec::new()];
            }
            let mut all = Vec::new();
            for (i, first) in names.iter().enumerate() {
                let mut rest = names.to_vec();
                rest.remove(i);
                for mut order in orders(&rest) {
                    order.insert(0, first);
                    all.push(order);
                }
            }
            all
        }
        let sets: [&[&str]; 4] = [
            &["value", "id", "name", "registration", "begin_time"],
            &["user_id", "group_id"],
            &["user_type_id", "salt", "zz", "id", "a"],
            &["value"],
        ];
        for set in sets {
            for order in orders(set) {
                let fields: Vec<String> = order
                    .iter()
                    .enumerate()
                    .map(|(n, name)| format!("{name:?}: {n}"))
                    .collect();
                let body = format!("[{{{}}}]", fields.join(", "));
                let typed: WrittenObjects = serde_json::from_str(&body).unwrap();
                let maps: Vec<serde_json::Map<String, Value>> =
                    serde_json::from_str(&body).unwrap();
                assert_eq!(typed, WrittenObjects::from_maps(&maps), "{body}");
                let names: Vec<&str> = typed
                    .iter()
                    .next()
                    .unwrap()
                    .names()
                    .map(FieldName::as_str)
                    .collect();
                let map_names: Vec<&str> = maps[0].keys().map(String::as_str).collect();
                assert_eq!(names, map_names, "{body}");
            }
        }
    }

    #[test]
    fn names_compare_as_their_texts() {
        let mut texts: Vec<&str> = KNOWN_FIELDS.to_vec();
        texts.extend(["", "a", "i", "idx", "user", "user_idz", "zz", "Name", "ü"]);
        for a in &texts {
            for b in &texts {
                let (name_a, name_b) = (FieldName::of(a), FieldName::of(b));
                assert_eq!(name_a.cmp(&name_b), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(name_a == name_b, a == b, "{a:?} against {b:?}");
            }
        }
    }
}
