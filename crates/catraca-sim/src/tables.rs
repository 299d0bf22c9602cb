//! The simulated device's database: four tables and the constraints a Control iD
//! device's SQLite enforces on them, nothing more.
//!
//! A real device is a small box with a SQLite file behind its web API, so this store
//! behaves like one: ids are `max(id) + 1` when omitted, `UNIQUE`, `NOT NULL` and
//! `FOREIGN KEY` are checked per row with SQLite's own messages, a failing row undoes the
//! whole statement, and `registration` is deliberately NOT unique (the device stores
//! duplicates happily; keeping people unique is catraca's job). The protocol layer
//! (`controlid.rs`) turns JSON into calls on [`Tables`]; this file knows no JSON
//! framing, only cells and rows.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

use super::row_store::RowStore;
use super::where_value::WhereValue;
use super::written::{FieldName, WriteValue, WrittenObjects, KNOWN_FIELDS};

/// The longest `IN` list a `where` may carry: the SQLite limit of the firmware's build.
pub(crate) const MAX_IN_VALUES: usize = 999;

/// One stored value. SQLite orders NULL before numbers before text, and so does the
/// derived `Ord`. Integers are `i128` so that both `i64` ids and `u64` card values fit.
/// Texts are shared: an index holds the same text as its row, for the price of a count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Cell {
    #[default]
    Null,
    Int(i128),
    Text(Arc<str>),
}

impl Cell {
    /// The integer in this cell, or 0 for anything else (what a typed reader expects).
    pub(crate) fn int(&self) -> i128 {
        match self {
            Cell::Int(n) => *n,
            _ => 0,
        }
    }

    /// `''`, shared: a user row's unset password and salt cost no allocation.
    fn empty_text() -> Cell {
        static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        Cell::Text(EMPTY.get_or_init(|| Arc::from("")).clone())
    }

    pub(crate) fn text(&self) -> &str {
        match self {
            Cell::Text(s) => s,
            _ => "",
        }
    }
}

impl serde::Serialize for Cell {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Null => serializer.serialize_unit(),
            Cell::Int(n) => match i64::try_from(*n) {
                Ok(small) => serializer.serialize_i64(small),
                // Only card values above i64::MAX get here, and they fit a u64 by construction.
                Err(_) => serializer.serialize_u64(*n as u64),
            },
            Cell::Text(s) => serializer.serialize_str(s),
        }
    }
}

/// What a column accepts; a value of another JSON type is a `datatype mismatch`.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Integer,
    /// Card values: `facility * 2^32 + number` can exceed `i64::MAX`.
    Unsigned,
    Text,
}

/// What a column holds when a created object does not mention it.
#[derive(Debug, Clone, Copy)]
enum Missing {
    Null,
    Zero,
    EmptyText,
}

#[derive(Debug)]
struct Column {
    name: &'static str,
    kind: Kind,
    not_null: bool,
    missing: Missing,
}

const fn column(name: &'static str, kind: Kind, not_null: bool, missing: Missing) -> Column {
    Column {
        name,
        kind,
        not_null,
        missing,
    }
}

#[derive(Debug)]
struct Unique {
    /// Adjacent columns, so a row's key is a slice of it: checking a row allocates nothing.
    columns: std::ops::Range<usize>,
    /// The firmware's message, verbatim: clients match on it.
    message: &'static str,
}

#[derive(Debug)]
struct ForeignKey {
    column: usize,
    parent: TableId,
}

#[derive(Debug)]
struct Schema {
    name: &'static str,
    columns: &'static [Column],
    /// Tables with an `id` column keep it first and use it as the row key, like SQLite's
    /// `INTEGER PRIMARY KEY`; `user_groups` has none and gets hidden row ids.
    has_id: bool,
    unique: &'static [Unique],
    foreign_keys: &'static [ForeignKey],
    /// Columns a load looks rows up by, with an index as the firmware's SQLite has
    /// (without them, a load by registration scans the table: at 100,000 users and a
    /// hundred loads per enrollment the simulator, not the client, would set the pace).
    indexed: &'static [usize],
}

/// The tables of a device, in the order of `Tables::tables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableId {
    Users = 0,
    Cards = 1,
    Groups = 2,
    UserGroups = 3,
}

impl TableId {
    const ALL: [TableId; 4] = [
        TableId::Users,
        TableId::Cards,
        TableId::Groups,
        TableId::UserGroups,
    ];

    pub(crate) fn from_name(name: &str) -> Option<TableId> {
        TableId::ALL.into_iter().find(|t| t.schema().name == name)
    }

    pub(crate) fn name(self) -> &'static str {
        self.schema().name
    }

    fn schema(self) -> &'static Schema {
        &SCHEMAS[self as usize]
    }
}

/// Column positions, for the typed readers in `lib.rs`.
pub(crate) mod col {
    pub(crate) const ID: usize = 0;
    pub(crate) const USER_REGISTRATION: usize = 1;
    pub(crate) const USER_NAME: usize = 2;
    pub(crate) const USER_BEGIN_TIME: usize = 5;
    pub(crate) const USER_END_TIME: usize = 6;
    pub(crate) const CARD_VALUE: usize = 1;
    pub(crate) const CARD_USER_ID: usize = 2;
    pub(crate) const GROUP_NAME: usize = 1;
    pub(crate) const LINK_USER_ID: usize = 0;
    pub(crate) const LINK_GROUP_ID: usize = 1;
}

use Kind::{Integer, Text, Unsigned};

static SCHEMAS: [Schema; 4] = [
    Schema {
        name: "users",
        columns: &[
            column("id", Integer, true, Missing::Null),
            column("registration", Text, false, Missing::EmptyText),
            column("name", Text, true, Missing::Null),
            column("password", Text, false, Missing::EmptyText),
            column("salt", Text, false, Missing::EmptyText),
            column("begin_time", Integer, false, Missing::Zero),
            column("end_time", Integer, false, Missing::Zero),
            column("user_type_id", Integer, false, Missing::Null),
        ],
        has_id: true,
        unique: &[],
        foreign_keys: &[],
        indexed: &[col::USER_REGISTRATION],
    },
    Schema {
        name: "cards",
        columns: &[
            column("id", Integer, true, Missing::Null),
            column("value", Unsigned, true, Missing::Null),
            column("user_id", Integer, true, Missing::Null),
        ],
        has_id: true,
        unique: &[Unique {
            columns: col::CARD_VALUE..col::CARD_VALUE + 1,
            message: "UNIQUE constraint failed: cards.value",
        }],
        foreign_keys: &[ForeignKey {
            column: col::CARD_USER_ID,
            parent: TableId::Users,
        }],
        indexed: &[col::CARD_VALUE, col::CARD_USER_ID],
    },
    Schema {
        name: "groups",
        columns: &[
            column("id", Integer, true, Missing::Null),
            column("name", Text, true, Missing::Null),
        ],
        has_id: true,
        unique: &[],
        foreign_keys: &[],
        indexed: &[col::GROUP_NAME],
    },
    Schema {
        name: "user_groups",
        columns: &[
            column("user_id", Integer, true, Missing::Null),
            column("group_id", Integer, true, Missing::Null),
        ],
        has_id: false,
        unique: &[Unique {
            columns: col::LINK_USER_ID..col::LINK_GROUP_ID + 1,
            message: "UNIQUE constraint failed: user_groups",
        }],
        foreign_keys: &[
            ForeignKey {
                column: col::LINK_USER_ID,
                parent: TableId::Users,
            },
            ForeignKey {
                column: col::LINK_GROUP_ID,
                parent: TableId::Groups,
            },
        ],
        indexed: &[col::LINK_USER_ID],
    },
];

/// What the device's SQLite says when a statement fails. The texts are the firmware's
/// (or SQLite's, where the firmware's are unknown): drivers match on them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DbError {
    #[error("no such table: {0}")]
    NoSuchTable(String),
    #[error("table {table} has no column named {column}")]
    NoSuchColumnToWrite { table: &'static str, column: String },
    #[error("no such column: {0}")]
    NoSuchColumn(String),
    #[error("NOT NULL constraint failed: {table}.{column}")]
    NotNull {
        table: &'static str,
        column: &'static str,
    },
    #[error("datatype mismatch: {table}.{column}")]
    DatatypeMismatch {
        table: &'static str,
        column: &'static str,
    },
    #[error("UNIQUE constraint failed: {table}.id")]
    DuplicateId { table: &'static str },
    #[error("{0}")]
    Unique(&'static str),
    #[error("constraint failed: FOREIGN KEY constraint failed")]
    ForeignKey,
    #[error("too many values in IN list: {count} (at most {MAX_IN_VALUES})")]
    TooManyValues { count: usize },
    #[error("unsupported condition on {table}.{column}: give a value or a list of values")]
    UnsupportedCondition { table: &'static str, column: String },
    #[error("unsupported where on table {found} in a call on {object}")]
    WhereOnOtherTable { object: &'static str, found: String },
    #[error("invalid order {0}: expected [\"ascending\"|\"descending\", column]")]
    InvalidOrder(String),
}

type Row = Vec<Cell>;

/// A `where` after validation: every condition must hold.
#[derive(Debug, Default)]
pub(crate) struct Filter<'a> {
    conditions: Vec<(usize, Condition<'a>)>,
}

/// One value a condition asks for, kept as the request gave it: a text stays a slice
/// of the request body where it can (or moves out of the parsed `where`) and is looked
/// up by `&str`, never copied into a `Cell`.
#[derive(Debug, PartialEq)]
enum Wanted<'a> {
    Int(i128),
    Text(Cow<'a, str>),
}

impl<'a> Wanted<'a> {
    /// How a `where` value compares to stored cells; `None` when it can never match
    /// (SQL's `= NULL`, a fractional number).
    fn from_value(value: WhereValue<'a>) -> Option<Wanted<'a>> {
        match value {
            WhereValue::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128))
                .map(Wanted::Int),
            WhereValue::Text(s) => Some(Wanted::Text(s)),
            WhereValue::Bool(b) => Some(Wanted::Int(i128::from(b))),
            WhereValue::Null | WhereValue::Array(_) | WhereValue::Object(_) => None,
        }
    }

    fn as_key(&self) -> Key<'_> {
        match self {
            Wanted::Int(n) => Key::Int(*n),
            Wanted::Text(s) => Key::Text(s),
        }
    }
}

/// A non-NULL value to look up, borrowed: what the indexes are searched by.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Key<'a> {
    Int(i128),
    Text(&'a str),
}

impl<'a> Key<'a> {
    /// The key of a stored cell; `None` for NULL, which no condition matches.
    fn of(cell: &'a Cell) -> Option<Key<'a>> {
        match cell {
            Cell::Null => None,
            Cell::Int(n) => Some(Key::Int(*n)),
            Cell::Text(s) => Some(Key::Text(s)),
        }
    }
}

/// The values of an `IN` list, split by type so that each is found by a borrowed key.
#[derive(Debug, Default)]
struct WantedSet<'a> {
    ints: FxSet<i128>,
    texts: FxSet<Cow<'a, str>>,
}

impl WantedSet<'_> {
    fn contains(&self, key: Key<'_>) -> bool {
        match key {
            Key::Int(n) => self.ints.contains(&n),
            Key::Text(s) => self.texts.contains(s),
        }
    }

    fn keys(&self) -> impl Iterator<Item = Key<'_>> {
        let ints = self.ints.iter().map(|n| Key::Int(*n));
        ints.chain(self.texts.iter().map(|s| Key::Text(s)))
    }
}

#[derive(Debug)]
enum Condition<'a> {
    Equals(Wanted<'a>),
    AnyOf(WantedSet<'a>),
    Never,
}

impl Condition<'_> {
    fn holds(&self, cell: &Cell) -> bool {
        let Some(key) = Key::of(cell) else {
            return false;
        };
        match self {
            Condition::Equals(wanted) => wanted.as_key() == key,
            Condition::AnyOf(wanted) => wanted.contains(key),
            Condition::Never => false,
        }
    }

    /// Every value the condition allows.
    fn keys(&self) -> Box<dyn Iterator<Item = Key<'_>> + '_> {
        match self {
            Condition::Equals(wanted) => Box::new(std::iter::once(wanted.as_key())),
            Condition::AnyOf(wanted) => Box::new(wanted.keys()),
            Condition::Never => Box::new(std::iter::empty()),
        }
    }
}

impl<'a> Filter<'a> {
    /// Reads `{"<table>": {"<column>": value | [values]}}`. An absent or empty `where`
    /// selects every row, as SQL would. Takes the `where` by value: a load by 999
    /// registrations moves its texts (mostly slices of the body) into the filter
    /// instead of copying them.
    pub(crate) fn parse(
        table: TableId,
        filter: Option<WhereValue<'a>>,
    ) -> Result<Filter<'a>, DbError> {
        let schema = table.schema();
        let Some(filter) = filter else {
            return Ok(Filter::default());
        };
        let WhereValue::Object(by_table) = filter else {
            return Err(DbError::UnsupportedCondition {
                table: schema.name,
                column: "where".into(),
            });
        };
        let mut conditions = Vec::new();
        for (table_name, columns) in by_table {
            if table_name != schema.name {
                return Err(DbError::WhereOnOtherTable {
                    object: schema.name,
                    found: table_name,
                });
            }
            let WhereValue::Object(columns) = columns else {
                return Err(DbError::UnsupportedCondition {
                    table: schema.name,
                    column: table_name,
                });
            };
            for (name, wanted) in columns {
                let column = column_index(schema, &name)?;
                let condition = match wanted {
                    WhereValue::Array(values) if values.len() > MAX_IN_VALUES => {
                        return Err(DbError::TooManyValues {
                            count: values.len(),
                        })
                    }
                    WhereValue::Array(values) => {
                        // Sized up front: growing would rehash.
                        let texts = values
                            .iter()
                            .filter(|v| matches!(v, WhereValue::Text(_)))
                            .count();
                        let mut wanted = WantedSet {
                            ints: FxSet::with_capacity_and_hasher(
                                values.len() - texts,
                                Default::default(),
                            ),
                            texts: FxSet::with_capacity_and_hasher(texts, Default::default()),
                        };
                        for value in values {
                            match Wanted::from_value(value) {
                                Some(Wanted::Int(n)) => {
                                    wanted.ints.insert(n);
                                }
                                Some(Wanted::Text(s)) => {
                                    wanted.texts.insert(s);
                                }
                                None => {}
                            }
                        }
                        Condition::AnyOf(wanted)
                    }
                    WhereValue::Object(_) => {
                        return Err(DbError::UnsupportedCondition {
                            table: schema.name,
                            column: name,
                        })
                    }
                    single => {
                        Wanted::from_value(single).map_or(Condition::Never, Condition::Equals)
                    }
                };
                conditions.push((column, condition));
            }
        }
        Ok(Filter { conditions })
    }

    /// True when the filter selects every row: a destroy like that empties the table.
    pub(crate) fn is_everything(&self) -> bool {
        self.conditions.is_empty()
    }

    fn matches(&self, row: &[Cell]) -> bool {
        self.conditions
            .iter()
            .all(|(column, condition)| condition.holds(&row[*column]))
    }

    /// The values a condition on `column` allows, when there is one: `None` when no
    /// condition is on that column (every value may match).
    fn wanted_on(&self, column: usize) -> Option<impl Iterator<Item = Key<'_>>> {
        self.conditions
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, condition)| condition.keys())
    }

    /// The ids named by a condition on `id`, so a lookup by id skips the table scan.
    fn candidate_ids(&self, schema: &Schema) -> Option<Vec<i64>> {
        if !schema.has_id {
            return None;
        }
        self.wanted_on(col::ID).map(|keys| {
            keys.filter_map(|key| match key {
                Key::Int(n) => i64::try_from(n).ok(),
                Key::Text(_) => None,
            })
            .collect()
        })
    }
}

/// How a load orders its rows; SQLite returns row-id order when none is given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Order {
    column: usize,
    descending: bool,
}

impl Order {
    pub(crate) fn parse(table: TableId, order: &[String]) -> Result<Order, DbError> {
        let invalid = || DbError::InvalidOrder(format!("{order:?}"));
        let [direction, column] = order else {
            return Err(invalid());
        };
        let descending = match direction.as_str() {
            "ascending" => false,
            "descending" => true,
            _ => return Err(invalid()),
        };
        let column = column_index(table.schema(), column)?;
        Ok(Order { column, descending })
    }
}

/// The columns a load returns, in the order asked for.
pub(crate) struct Projection {
    table: TableId,
    columns: Vec<usize>,
}

impl Projection {
    pub(crate) fn parse(table: TableId, fields: Option<&[String]>) -> Result<Projection, DbError> {
        let schema = table.schema();
        let columns = match fields {
            None => (0..schema.columns.len()).collect(),
            Some(fields) => fields
                .iter()
                .map(|name| column_index(schema, name))
                .collect::<Result<_, _>>()?,
        };
        Ok(Projection { table, columns })
    }
}

/// One loaded row, serialised as a JSON object of the projected columns without
/// building an intermediate `Value`.
pub(crate) struct RowView<'a> {
    projection: &'a Projection,
    row: &'a [Cell],
}

impl serde::Serialize for RowView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let columns = self.projection.table.schema().columns;
        let mut map = serializer.serialize_map(Some(self.projection.columns.len()))?;
        for &index in &self.projection.columns {
            map.serialize_entry(columns[index].name, &self.row[index])?;
        }
        map.end()
    }
}

fn column_index(schema: &Schema, name: &str) -> Result<usize, DbError> {
    schema
        .columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| DbError::NoSuchColumn(name.to_owned()))
}

/// Converts a value written into `column`, refusing the wrong type the way a typed
/// firmware layer would rather than storing it as SQLite's dynamic typing might.
fn cell_for_write(schema: &Schema, column: &Column, value: WriteValue) -> Result<Cell, DbError> {
    let mismatch = || DbError::DatatypeMismatch {
        table: schema.name,
        column: column.name,
    };
    match (column.kind, value) {
        (_, WriteValue::Null) => Ok(Cell::Null),
        (Kind::Integer, WriteValue::Number(n)) => {
            n.as_i64().map(|n| Cell::Int(n.into())).ok_or_else(mismatch)
        }
        (Kind::Unsigned, WriteValue::Number(n)) => {
            n.as_u64().map(|n| Cell::Int(n.into())).ok_or_else(mismatch)
        }
        (Kind::Text, WriteValue::Text(s)) => Ok(Cell::Text(s)),
        _ => Err(mismatch()),
    }
}

/// FxHash (rustc's hasher): the indexes hash small integers and short texts a few
/// times per stored row, and SipHash's resistance to crafted keys buys nothing in a
/// simulator on loopback while costing a large share of its time at scale.
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail));
    }
    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_u128(&mut self, n: u128) {
        self.add(n as u64);
        self.add((n >> 64) as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;
type FxSet<T> = HashSet<T, std::hash::BuildHasherDefault<FxHasher>>;

/// The rows holding one value of an indexed column: almost always one, so no `Vec`
/// until a second one arrives (registrations may repeat; card values and ids do not).
#[derive(Debug)]
enum Holders {
    One(i64),
    Many(Vec<i64>),
}

impl Holders {
    fn as_slice(&self) -> &[i64] {
        match self {
            Holders::One(id) => std::slice::from_ref(id),
            Holders::Many(ids) => ids,
        }
    }

    fn push(&mut self, row_id: i64) {
        match self {
            Holders::One(first) => *self = Holders::Many(vec![*first, row_id]),
            Holders::Many(ids) => ids.push(row_id),
        }
    }

    /// Forgets `row_id`; true when no row is left.
    fn remove(&mut self, row_id: i64) -> bool {
        match self {
            Holders::One(id) => *id == row_id,
            Holders::Many(ids) => {
                ids.retain(|&id| id != row_id);
                ids.is_empty()
            }
        }
    }
}

/// The key of a `UNIQUE` constraint: its (at most two, adjacent) columns' cells,
/// padded with NULL. Built by copying integers and counting texts, never allocating.
type UniqueKey = [Cell; 2];

fn unique_key(unique: &Unique, row: &[Cell]) -> UniqueKey {
    let mut key = UniqueKey::default();
    key[..unique.columns.len()].clone_from_slice(&row[unique.columns.clone()]);
    key
}

/// The index of one column: its integers and its texts apart, so that a condition's
/// borrowed value finds its rows (a `&str` looks up an `Arc<str>` key). NULLs are not
/// indexed: no condition matches them.
#[derive(Debug, Default)]
struct LookupIndex {
    ints: FxMap<i128, Holders>,
    texts: FxMap<Arc<str>, Holders>,
}

impl LookupIndex {
    fn get(&self, key: Key<'_>) -> Option<&Holders> {
        match key {
            Key::Int(n) => self.ints.get(&n),
            Key::Text(s) => self.texts.get(s),
        }
    }

    fn add(&mut self, cell: &Cell, row_id: i64) {
        match cell {
            Cell::Null => {}
            // One hash and one probe per entry: values rarely repeat, so the clone of
            // the text's `Arc` is nearly always kept.
            Cell::Int(n) => match self.ints.entry(*n) {
                Entry::Occupied(mut holders) => holders.get_mut().push(row_id),
                Entry::Vacant(place) => {
                    place.insert(Holders::One(row_id));
                }
            },
            Cell::Text(s) => match self.texts.entry(s.clone()) {
                Entry::Occupied(mut holders) => holders.get_mut().push(row_id),
                Entry::Vacant(place) => {
                    place.insert(Holders::One(row_id));
                }
            },
        }
    }

    fn forget(&mut self, cell: &Cell, row_id: i64) {
        match cell {
            Cell::Null => {}
            Cell::Int(n) => {
                if self.ints.get_mut(n).is_some_and(|h| h.remove(row_id)) {
                    self.ints.remove(n);
                }
            }
            Cell::Text(s) => {
                if self.texts.get_mut(&**s).is_some_and(|h| h.remove(row_id)) {
                    self.texts.remove(&**s);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Table {
    id: TableId,
    /// Keyed by row id (`id` for tables that have one): SQLite's natural order.
    rows: RowStore,
    /// One map per `UNIQUE` constraint of the schema, from the key columns to the row.
    unique_indexes: Vec<FxMap<UniqueKey, i64>>,
    /// One index per indexed column of the schema, from a value to the rows holding it.
    lookup_indexes: Vec<LookupIndex>,
    /// The column of each name of `KNOWN_FIELDS`, if this table has it: a written
    /// field finds its column without comparing names.
    known_columns: [Option<usize>; KNOWN_FIELDS.len()],
}

impl Table {
    fn new(id: TableId) -> Table {
        Table {
            id,
            rows: RowStore::new(id.schema().columns.len()),
            unique_indexes: id
                .schema()
                .unique
                .iter()
                .map(|_| FxMap::default())
                .collect(),
            lookup_indexes: id
                .schema()
                .indexed
                .iter()
                .map(|_| LookupIndex::default())
                .collect(),
            known_columns: KNOWN_FIELDS.map(|name| column_index(id.schema(), name).ok()),
        }
    }

    /// Room for `rows` more rows in the store and every index, so that a batch does not
    /// grow (and rehash) them step by step.
    fn reserve(&mut self, rows: usize) {
        let schema = self.id.schema();
        self.rows.reserve(rows);
        for index in &mut self.unique_indexes {
            index.reserve(rows);
        }
        for (&column, index) in schema.indexed.iter().zip(&mut self.lookup_indexes) {
            match schema.columns[column].kind {
                Kind::Text => index.texts.reserve(rows),
                Kind::Integer | Kind::Unsigned => index.ints.reserve(rows),
            }
        }
    }

    /// A row known to exist (matched, or just stored).
    fn row(&self, row_id: i64) -> &[Cell] {
        self.rows.get(row_id).expect("the row exists")
    }

    fn next_row_id(&self) -> i64 {
        self.rows.last_row_id().map_or(1, |id| id.saturating_add(1))
    }

    /// The `UNIQUE` constraint `row` would break, if any. SQLite lets NULLs repeat.
    fn unique_violation(&self, row: &[Cell]) -> Option<&'static str> {
        let schema = self.id.schema();
        schema
            .unique
            .iter()
            .zip(&self.unique_indexes)
            .find(|(unique, index)| {
                !row[unique.columns.clone()].contains(&Cell::Null)
                    && index.contains_key(&unique_key(unique, row))
            })
            .map(|(unique, _)| unique.message)
    }

    /// Stores a row that already passed every check but the one of its id: false (and
    /// nothing stored) when the row id is in use.
    #[must_use]
    fn put(&mut self, row_id: i64, row: impl IntoIterator<Item = Cell>) -> bool {
        let Some(row) = self.rows.insert(row_id, row) else {
            return false;
        };
        let schema = self.id.schema();
        for (unique, index) in schema.unique.iter().zip(&mut self.unique_indexes) {
            // A key with a NULL never collides (see `unique_violation`): not kept.
            if !row[unique.columns.clone()].contains(&Cell::Null) {
                index.insert(unique_key(unique, row), row_id);
            }
        }
        for (&column, index) in schema.indexed.iter().zip(&mut self.lookup_indexes) {
            index.add(&row[column], row_id);
        }
        true
    }

    fn take(&mut self, row_id: i64) -> Option<Row> {
        let row = self.rows.remove(row_id)?;
        let schema = self.id.schema();
        for (unique, index) in schema.unique.iter().zip(&mut self.unique_indexes) {
            if !row[unique.columns.clone()].contains(&Cell::Null) {
                index.remove(&unique_key(unique, &row));
            }
        }
        for (&column, index) in schema.indexed.iter().zip(&mut self.lookup_indexes) {
            index.forget(&row[column], row_id);
        }
        Some(row)
    }

    /// The rows a condition on an indexed column names, if the filter has one.
    fn indexed_candidates(&self, filter: &Filter) -> Option<Vec<i64>> {
        let schema = self.id.schema();
        schema
            .indexed
            .iter()
            .zip(&self.lookup_indexes)
            .find_map(|(&column, index)| {
                filter.wanted_on(column).map(|keys| {
                    keys.filter_map(|key| index.get(key))
                        .flat_map(Holders::as_slice)
                        .copied()
                        .collect()
                })
            })
    }

    fn matching(&self, filter: &Filter) -> Vec<i64> {
        let candidates = filter
            .candidate_ids(self.id.schema())
            .or_else(|| self.indexed_candidates(filter));
        match candidates {
            Some(mut ids) => {
                ids.sort_unstable();
                ids.dedup();
                ids.retain(|&id| self.rows.get(id).is_some_and(|row| filter.matches(row)));
                ids
            }
            None => self
                .rows
                .iter()
                .filter(|(_, row)| filter.matches(row))
                .map(|(id, _)| id)
                .collect(),
        }
    }
}

/// The whole database of one device.
#[derive(Debug)]
pub(crate) struct Tables {
    tables: [Table; 4],
}

impl Default for Tables {
    fn default() -> Tables {
        Tables {
            tables: TableId::ALL.map(Table::new),
        }
    }
}

impl Tables {
    fn table(&self, id: TableId) -> &Table {
        &self.tables[id as usize]
    }

    fn table_mut(&mut self, id: TableId) -> &mut Table {
        &mut self.tables[id as usize]
    }

    /// Every stored row of a table, in row-id order.
    pub(crate) fn rows(&self, id: TableId) -> impl Iterator<Item = &[Cell]> {
        self.table(id).rows.iter().map(|(_, row)| row)
    }

    /// Runs a load: filter, then order, then offset and limit, like
    /// `SELECT .. WHERE .. ORDER BY .. LIMIT .. OFFSET ..`.
    pub(crate) fn select<'a>(
        &'a self,
        id: TableId,
        filter: &Filter,
        order: Option<Order>,
        offset: usize,
        limit: Option<usize>,
        projection: &'a Projection,
    ) -> Vec<RowView<'a>> {
        let table = self.table(id);
        let mut row_ids = table.matching(filter);
        if let Some(order) = order {
            let key = |row_id: &i64| &table.row(*row_id)[order.column];
            // A stable sort keeps row-id order among equal keys, as SQLite tends to.
            row_ids.sort_by(|a, b| {
                let by_column = key(a).cmp(key(b));
                if order.descending {
                    by_column.reverse()
                } else {
                    by_column
                }
            });
        }
        row_ids
            .iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .map(|row_id| RowView {
                projection,
                row: table.row(*row_id),
            })
            .collect()
    }

    /// Inserts every object or none: the first bad row undoes the rows before it.
    /// Returns the ids assigned (empty for a table without an `id` column).
    pub(crate) fn insert(
        &mut self,
        id: TableId,
        objects: WrittenObjects,
    ) -> Result<Vec<i64>, DbError> {
        let mut inserted = Vec::with_capacity(objects.len());
        self.table_mut(id).reserve(objects.len());
        let (fields, ends) = objects.into_fields_and_ends();
        let mut fields = fields.into_iter();
        let mut start = 0;
        for end in ends {
            let object = fields.by_ref().take(end - start);
            start = end;
            match self.insert_one(id, object) {
                Ok(row_id) => inserted.push(row_id),
                Err(error) => {
                    let table = self.table_mut(id);
                    for row_id in inserted {
                        table.take(row_id);
                    }
                    return Err(error);
                }
            }
        }
        Ok(if id.schema().has_id {
            inserted
        } else {
            Vec::new()
        })
    }

    fn insert_one(
        &mut self,
        id: TableId,
        object: impl Iterator<Item = (FieldName, WriteValue)>,
    ) -> Result<i64, DbError> {
        let schema = id.schema();
        // Fields by column; the schemas have at most 8 columns.
        let mut written: [Option<WriteValue>; 8] = Default::default();
        // The first unknown name in a map's (sorted) order is the one reported.
        let known_columns = &self.table(id).known_columns;
        for (name, value) in object {
            let column = match name.known() {
                Some(known) => known_columns[known],
                None => column_index(schema, name.as_str()).ok(),
            };
            match column {
                Some(index) => written[index] = Some(value),
                None => {
                    return Err(DbError::NoSuchColumnToWrite {
                        table: schema.name,
                        column: name.as_str().to_owned(),
                    })
                }
            }
        }
        // Built on the stack and moved into the table's store: no allocation per row.
        let width = schema.columns.len();
        let mut cells: [Cell; 8] = Default::default();
        for ((column, value), cell) in schema.columns.iter().zip(&mut written).zip(&mut cells) {
            *cell = match value.take() {
                Some(value) => cell_for_write(schema, column, value)?,
                None => match column.missing {
                    Missing::Null => Cell::Null,
                    Missing::Zero => Cell::Int(0),
                    Missing::EmptyText => Cell::empty_text(),
                },
            };
        }
        let row = &mut cells[..width];
        let table = self.table(id);
        let row_id = if schema.has_id {
            // A NULL id means "assign one", as with SQLite's INTEGER PRIMARY KEY.
            let row_id = match row[col::ID] {
                Cell::Null => table.next_row_id(),
                Cell::Int(n) => i64::try_from(n).map_err(|_| DbError::DatatypeMismatch {
                    table: schema.name,
                    column: "id",
                })?,
                Cell::Text(_) => unreachable!("id is an integer column"),
            };
            row[col::ID] = Cell::Int(row_id.into());
            row_id
        } else {
            table.next_row_id()
        };
        self.check_row(id, row)?;
        // One search of the row ids both refuses a duplicate id and stores the row.
        if !self
            .table_mut(id)
            .put(row_id, cells.into_iter().take(width))
        {
            return Err(DbError::DuplicateId { table: schema.name });
        }
        Ok(row_id)
    }

    /// NOT NULL, then UNIQUE, then FOREIGN KEY: the order SQLite reports them in.
    /// `row` must not be in the table while it is checked.
    fn check_row(&self, id: TableId, row: &[Cell]) -> Result<(), DbError> {
        let schema = id.schema();
        for (column, cell) in schema.columns.iter().zip(row) {
            if column.not_null && *cell == Cell::Null {
                return Err(DbError::NotNull {
                    table: schema.name,
                    column: column.name,
                });
            }
        }
        if let Some(message) = self.table(id).unique_violation(row) {
            return Err(DbError::Unique(message));
        }
        for foreign_key in schema.foreign_keys {
            let parent_exists = match row[foreign_key.column] {
                Cell::Int(n) => i64::try_from(n)
                    .is_ok_and(|parent_id| self.table(foreign_key.parent).rows.contains(parent_id)),
                _ => false,
            };
            if !parent_exists {
                return Err(DbError::ForeignKey);
            }
        }
        Ok(())
    }

    /// Whether any row of another table points at one of `ids` of table `parent`.
    fn referenced(&self, parent: TableId, ids: &HashSet<i64>) -> bool {
        TableId::ALL.into_iter().any(|child| {
            child
                .schema()
                .foreign_keys
                .iter()
                .filter(|fk| fk.parent == parent)
                .any(|fk| {
                    self.rows(child).any(|row| {
                        i64::try_from(row[fk.column].int()).is_ok_and(|id| ids.contains(&id))
                    })
                })
        })
    }

    /// Applies `values` to every row `filter` selects, all or nothing. Returns how many
    /// rows changed.
    pub(crate) fn update(
        &mut self,
        id: TableId,
        filter: &Filter,
        values: &serde_json::Map<String, Value>,
    ) -> Result<usize, DbError> {
        let schema = id.schema();
        let mut assignments = Vec::with_capacity(values.len());
        for (name, value) in values {
            let index = column_index(schema, name).map_err(|_| DbError::NoSuchColumnToWrite {
                table: schema.name,
                column: name.clone(),
            })?;
            assignments.push((
                index,
                cell_for_write(schema, &schema.columns[index], value.into())?,
            ));
        }
        let row_ids = self.table(id).matching(filter);
        let changes_id = assignments
            .iter()
            .any(|(c, _)| schema.has_id && *c == col::ID);
        if changes_id {
            let moving: HashSet<i64> = row_ids.iter().copied().collect();
            if self.referenced(id, &moving) {
                return Err(DbError::ForeignKey);
            }
        }
        // (new row id, old row id, old row), to undo in reverse if a later row fails.
        let mut undo: Vec<(i64, i64, Row)> = Vec::with_capacity(row_ids.len());
        for row_id in &row_ids {
            let old = self
                .table_mut(id)
                .take(*row_id)
                .expect("matched rows exist");
            let mut new = old.clone();
            for (index, cell) in &assignments {
                new[*index] = cell.clone();
            }
            let new_id = if changes_id {
                i64::try_from(new[col::ID].int()).unwrap_or(*row_id)
            } else {
                *row_id
            };
            let failure = self.check_row(id, &new).err().or_else(|| {
                (changes_id && self.table(id).rows.contains(new_id))
                    .then_some(DbError::DuplicateId { table: schema.name })
            });
            if let Some(error) = failure {
                let table = self.table_mut(id);
                let restored = table.put(*row_id, old);
                debug_assert!(restored, "the row's id was free again");
                for (new_id, old_id, old_row) in undo.into_iter().rev() {
                    table.take(new_id);
                    let restored = table.put(old_id, old_row);
                    debug_assert!(restored, "the row's id was free again");
                }
                return Err(error);
            }
            let stored = self.table_mut(id).put(new_id, new);
            debug_assert!(stored, "the new id was checked free");
            undo.push((new_id, *row_id, old));
        }
        Ok(row_ids.len())
    }

    /// Deletes every row `filter` selects (all of them when it is empty, as the firmware
    /// does). Refuses with the foreign-key error while other rows still point at one of
    /// them: deleting a user does not cascade to its cards and links.
    pub(crate) fn delete(&mut self, id: TableId, filter: &Filter) -> Result<usize, DbError> {
        let row_ids = self.table(id).matching(filter);
        if id.schema().has_id {
            let doomed: HashSet<i64> = row_ids.iter().copied().collect();
            if self.referenced(id, &doomed) {
                return Err(DbError::ForeignKey);
            }
        }
        let table = self.table_mut(id);
        for row_id in &row_ids {
            table.take(*row_id);
        }
        Ok(row_ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects(value: Value) -> WrittenObjects {
        serde_json::from_value(value).unwrap()
    }

    fn filter(table: TableId, value: Value) -> Filter<'static> {
        Filter::parse(table, Some(value.into())).unwrap()
    }

    /// Create bodies are read without a `serde_json::Map`; a device must still see each
    /// object exactly as a map would, or its errors would change.
    #[test]
    fn a_written_object_reads_as_a_json_map_would() {
        let bodies = [
            r#"[{"name": "a", "id": 3}, {"id": 4, "name": "b"}]"#,
            r#"[{"name": "first", "name": "last", "zz": 1, "aa": [1, {"x": 2}]}]"#,
            r#"[{"value": -0, "user_id": 1.0, "id": true, "name": {"a": null}}]"#,
            r#"[{"registration": "caf\u00e9", "value": 18446744073709551615}]"#,
            r#"[{"begin_time": -5, "end_time": 1e3, "salt": null}]"#,
            r#"[]"#,
            r#"[{}, {"name": "x"}, {}]"#,
            r#"[{"value": 1, "id": 2, "value": 3, "idx": 4, "i": 5, "value": null, "id": 6}]"#,
            r#"[{"user_type_id": 1, "user_id": 2, "user": 3, "a": 4, "a": 5, "zz": 6, "": 7}]"#,
            r#"[{"group_id": 1, "user_id": 2}, {"user_id": 3, "group_id": 4, "user_id": 5}]"#,
        ];
        for body in bodies {
            let typed: WrittenObjects = serde_json::from_str(body).unwrap();
            let maps: Vec<serde_json::Map<String, Value>> = serde_json::from_str(body).unwrap();
            let via_maps = WrittenObjects::from_maps(&maps);
            assert_eq!(typed, via_maps, "{body}");
            assert_eq!(typed.len(), maps.len(), "{body}");
            for (object, map) in typed.iter().zip(&maps) {
                let names: Vec<&str> = object.names().map(FieldName::as_str).collect();
                let map_names: Vec<&str> = map.keys().map(String::as_str).collect();
                assert_eq!(names, map_names, "{body}");
            }
        }
        for bad in [
            r#"[null]"#,
            r#"["a"]"#,
            r#"[{"name": "a",}]"#,
            r#"[{"name": 1e999}]"#,
            r#"{"name": "a"}"#,
            r#"null"#,
            r#"[{"name": "a"}, 3]"#,
            r#"[{"name": "a"} {"name": "b"}]"#,
            r#"[{"name": "a"}, {"name": "b"},]"#,
        ] {
            let typed = serde_json::from_str::<WrittenObjects>(bad).unwrap_err();
            let map = serde_json::from_str::<Vec<serde_json::Map<String, Value>>>(bad).unwrap_err();
            assert_eq!(typed.to_string(), map.to_string(), "{bad}");
        }
        // The first unknown field in name order is the one reported.
        let mut db = Tables::default();
        assert_eq!(
            db.insert(
                TableId::Users,
                objects(json!([{"zz": 1, "name": "a", "ab": 2}]))
            ),
            Err(DbError::NoSuchColumnToWrite {
                table: "users",
                column: "ab".into()
            })
        );
    }

    #[test]
    fn ids_continue_after_the_highest_one() {
        let mut db = Tables::default();
        let ids = db
            .insert(
                TableId::Users,
                objects(json!([{"id": 40, "name": "a"}, {"name": "b"}])),
            )
            .unwrap();
        assert_eq!(ids, [40, 41]);
    }

    #[test]
    fn a_failed_modify_restores_every_row() {
        let mut db = Tables::default();
        db.insert(
            TableId::Users,
            objects(json!([{"name": "a"}, {"name": "b"}])),
        )
        .unwrap();
        db.insert(
            TableId::Cards,
            objects(json!([{"value": 1, "user_id": 1}, {"value": 2, "user_id": 2}])),
        )
        .unwrap();
        let all = Filter::default();
        let values = json!({"value": 7}).as_object().unwrap().clone();
        assert_eq!(
            db.update(TableId::Cards, &all, &values),
            Err(DbError::Unique("UNIQUE constraint failed: cards.value"))
        );
        let values: Vec<i128> = db
            .rows(TableId::Cards)
            .map(|r| r[col::CARD_VALUE].int())
            .collect();
        assert_eq!(values, [1, 2]);
        // The unique index was restored too: the old values still collide.
        let again = db.insert(TableId::Cards, objects(json!([{"value": 2, "user_id": 1}])));
        assert_eq!(
            again,
            Err(DbError::Unique("UNIQUE constraint failed: cards.value"))
        );
    }

    #[test]
    fn changing_a_referenced_id_is_refused() {
        let mut db = Tables::default();
        db.insert(TableId::Users, objects(json!([{"name": "a"}])))
            .unwrap();
        db.insert(TableId::Cards, objects(json!([{"value": 1, "user_id": 1}])))
            .unwrap();
        let values = json!({"id": 9}).as_object().unwrap().clone();
        let by_id = filter(TableId::Users, json!({"users": {"id": 1}}));
        assert_eq!(
            db.update(TableId::Users, &by_id, &values),
            Err(DbError::ForeignKey)
        );
    }

    #[test]
    fn card_values_above_i64_fit() {
        let mut db = Tables::default();
        db.insert(TableId::Users, objects(json!([{"name": "a"}])))
            .unwrap();
        let big = u64::MAX - 1;
        db.insert(
            TableId::Cards,
            objects(json!([{"value": big, "user_id": 1}])),
        )
        .unwrap();
        let projection = Projection::parse(TableId::Cards, None).unwrap();
        let by_value = filter(TableId::Cards, json!({"cards": {"value": big}}));
        let rows = db.select(TableId::Cards, &by_value, None, 0, None, &projection);
        let json = serde_json::to_value(&rows).unwrap();
        assert_eq!(json, json!([{"id": 1, "value": big, "user_id": 1}]));
    }

    #[test]
    fn order_offset_and_limit_page_through_rows() {
        let mut db = Tables::default();
        db.insert(
            TableId::Groups,
            objects(json!([{"name": "b"}, {"name": "c"}, {"name": "a"}])),
        )
        .unwrap();
        let projection = Projection::parse(TableId::Groups, Some(&["name".to_owned()])).unwrap();
        let order = Order::parse(TableId::Groups, &["descending".into(), "name".into()]).unwrap();
        let rows = db.select(
            TableId::Groups,
            &Filter::default(),
            Some(order),
            1,
            Some(5),
            &projection,
        );
        assert_eq!(
            serde_json::to_value(&rows).unwrap(),
            json!([{"name": "b"}, {"name": "a"}])
        );
    }

    #[test]
    fn every_schema_fits_the_fixed_sizes_rows_and_keys_are_built_in() {
        for table in TableId::ALL {
            let schema = table.schema();
            assert!(
                schema.columns.len() <= 8,
                "{}: a row is built in [Cell; 8]",
                schema.name
            );
            for unique in schema.unique {
                assert!(
                    unique.columns.len() <= 2,
                    "{}: a UniqueKey holds two",
                    schema.name
                );
            }
            for column in schema.columns {
                assert!(
                    KNOWN_FIELDS.contains(&column.name),
                    "{}.{}: written without comparing names",
                    schema.name,
                    column.name
                );
            }
        }
        assert!(
            KNOWN_FIELDS.is_sorted(),
            "known names compare as their positions"
        );
        assert!(
            KNOWN_FIELDS.len() <= 16,
            "an object's known names fit a u16"
        );
    }

    /// The indexes keep integers and texts apart; a condition still matches exactly the
    /// cells a comparison of values would, through an index or through a scan.
    #[test]
    fn conditions_match_only_values_of_the_same_type() {
        let mut db = Tables::default();
        db.insert(
            TableId::Users,
            objects(json!([
                {"id": 5, "name": "a", "registration": "5"},
                {"id": 6, "name": "b", "registration": null},
                {"id": 7, "name": "c", "registration": "x"}
            ])),
        )
        .unwrap();
        let ids = |db: &Tables, condition: Value| -> Vec<i128> {
            let projection = Projection::parse(TableId::Users, Some(&["id".to_owned()])).unwrap();
            let filter = filter(TableId::Users, json!({ "users": condition }));
            db.select(TableId::Users, &filter, None, 0, None, &projection)
                .iter()
                .map(|row| row.row[col::ID].int())
                .collect()
        };
        assert_eq!(ids(&db, json!({"registration": 5})), Vec::<i128>::new());
        assert_eq!(ids(&db, json!({"registration": "5"})), [5]);
        assert_eq!(ids(&db, json!({"registration": null})), Vec::<i128>::new());
        assert_eq!(
            ids(&db, json!({"registration": [5, "5", null, 1.5, "x"]})),
            [5, 7]
        );
        assert_eq!(ids(&db, json!({"id": "5"})), Vec::<i128>::new());
        assert_eq!(ids(&db, json!({"id": [5.0, true, "7"]})), [5]);
        assert_eq!(ids(&db, json!({"name": ["b", "c"]})), [6, 7]);
        assert_eq!(
            ids(&db, json!({"name": "b", "registration": "x"})),
            Vec::<i128>::new()
        );
        // A destroyed row leaves the indexes: its registration and id find nothing.
        let by_id = filter(TableId::Users, json!({"users": {"id": 7}}));
        assert_eq!(db.delete(TableId::Users, &by_id), Ok(1));
        assert_eq!(ids(&db, json!({"registration": "x"})), Vec::<i128>::new());
        assert_eq!(ids(&db, json!({"registration": ["x", "5"]})), [5]);
    }

    #[test]
    fn a_destroyed_link_frees_its_unique_key_and_slot() {
        let mut db = Tables::default();
        db.insert(TableId::Users, objects(json!([{"name": "a"}])))
            .unwrap();
        db.insert(TableId::Groups, objects(json!([{"name": "g"}])))
            .unwrap();
        let link = || objects(json!([{"user_id": 1, "group_id": 1}]));
        db.insert(TableId::UserGroups, link()).unwrap();
        assert_eq!(
            db.insert(TableId::UserGroups, link()),
            Err(DbError::Unique("UNIQUE constraint failed: user_groups"))
        );
        let everything = Filter::default();
        assert_eq!(db.delete(TableId::UserGroups, &everything), Ok(1));
        db.insert(TableId::UserGroups, link()).unwrap();
        let links: Vec<Vec<i128>> = db
            .rows(TableId::UserGroups)
            .map(|row| row.iter().map(Cell::int).collect())
            .collect();
        assert_eq!(links, [[1, 1]]);
    }
}
