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

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

/// The longest `IN` list a `where` may carry: the SQLite limit of the firmware's build.
pub(crate) const MAX_IN_VALUES: usize = 999;

/// One stored value. SQLite orders NULL before numbers before text, and so does the
/// derived `Ord`. Integers are `i128` so that both `i64` ids and `u64` card values fit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Cell {
    Null,
    Int(i128),
    Text(String),
}

impl Cell {
    /// The integer in this cell, or 0 for anything else (what a typed reader expects).
    pub(crate) fn int(&self) -> i128 {
        match self {
            Cell::Int(n) => *n,
            _ => 0,
        }
    }

    pub(crate) fn text(&self) -> &str {
        match self {
            Cell::Text(s) => s,
            _ => "",
        }
    }

    /// How a `where` value compares to stored cells; `None` when it can never match
    /// (SQL's `= NULL`, a fractional number).
    fn from_condition(value: &Value) -> Option<Cell> {
        match value {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128))
                .map(Cell::Int),
            Value::String(s) => Some(Cell::Text(s.clone())),
            Value::Bool(b) => Some(Cell::Int(i128::from(*b))),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
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
    columns: &'static [usize],
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

/// Column positions, for the typed readers in `mod.rs`.
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
            columns: &[col::CARD_VALUE],
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
            columns: &[col::LINK_USER_ID, col::LINK_GROUP_ID],
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
pub(crate) struct Filter {
    conditions: Vec<(usize, Condition)>,
}

#[derive(Debug)]
enum Condition {
    Equals(Cell),
    AnyOf(HashSet<Cell>),
    Never,
}

impl Condition {
    fn holds(&self, cell: &Cell) -> bool {
        match self {
            Condition::Equals(wanted) => wanted == cell,
            Condition::AnyOf(wanted) => wanted.contains(cell),
            Condition::Never => false,
        }
    }
}

impl Filter {
    /// Reads `{"<table>": {"<column>": value | [values]}}`. An absent or empty `where`
    /// selects every row, as SQL would.
    pub(crate) fn parse(table: TableId, filter: Option<&Value>) -> Result<Filter, DbError> {
        let schema = table.schema();
        let Some(filter) = filter else {
            return Ok(Filter::default());
        };
        let Value::Object(by_table) = filter else {
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
                    found: table_name.clone(),
                });
            }
            let Value::Object(columns) = columns else {
                return Err(DbError::UnsupportedCondition {
                    table: schema.name,
                    column: table_name.clone(),
                });
            };
            for (name, wanted) in columns {
                let column = column_index(schema, name)?;
                let condition = match wanted {
                    Value::Array(values) if values.len() > MAX_IN_VALUES => {
                        return Err(DbError::TooManyValues {
                            count: values.len(),
                        })
                    }
                    Value::Array(values) => {
                        Condition::AnyOf(values.iter().filter_map(Cell::from_condition).collect())
                    }
                    Value::Object(_) => {
                        return Err(DbError::UnsupportedCondition {
                            table: schema.name,
                            column: name.clone(),
                        })
                    }
                    single => {
                        Cell::from_condition(single).map_or(Condition::Never, Condition::Equals)
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
    fn wanted_on(&self, column: usize) -> Option<Vec<&Cell>> {
        self.conditions
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, condition)| match condition {
                Condition::Equals(cell) => vec![cell],
                Condition::AnyOf(cells) => cells.iter().collect(),
                Condition::Never => Vec::new(),
            })
    }

    /// The ids named by a condition on `id`, so a lookup by id skips the table scan.
    fn candidate_ids(&self, schema: &Schema) -> Option<Vec<i64>> {
        if !schema.has_id {
            return None;
        }
        let ids = |cells: &mut dyn Iterator<Item = &Cell>| {
            cells
                .filter_map(|cell| match cell {
                    Cell::Int(n) => i64::try_from(*n).ok(),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        self.conditions
            .iter()
            .find(|(column, _)| *column == col::ID)
            .map(|(_, condition)| match condition {
                Condition::Equals(cell) => ids(&mut std::iter::once(cell)),
                Condition::AnyOf(cells) => ids(&mut cells.iter()),
                Condition::Never => Vec::new(),
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

/// Converts a JSON value written into `column`, refusing the wrong type the way a typed
/// firmware layer would rather than storing it as SQLite's dynamic typing might.
fn cell_for_write(schema: &Schema, column: &Column, value: &Value) -> Result<Cell, DbError> {
    let mismatch = || DbError::DatatypeMismatch {
        table: schema.name,
        column: column.name,
    };
    match (column.kind, value) {
        (_, Value::Null) => Ok(Cell::Null),
        (Kind::Integer, Value::Number(n)) => {
            n.as_i64().map(|n| Cell::Int(n.into())).ok_or_else(mismatch)
        }
        (Kind::Unsigned, Value::Number(n)) => {
            n.as_u64().map(|n| Cell::Int(n.into())).ok_or_else(mismatch)
        }
        (Kind::Text, Value::String(s)) => Ok(Cell::Text(s.clone())),
        _ => Err(mismatch()),
    }
}

#[derive(Debug)]
struct Table {
    id: TableId,
    /// Keyed by row id (`id` for tables that have one): SQLite's natural order.
    rows: BTreeMap<i64, Row>,
    /// One map per `UNIQUE` constraint of the schema, from the key columns to the row.
    unique_indexes: Vec<HashMap<Vec<Cell>, i64>>,
    /// One map per indexed column of the schema, from a value to the rows holding it.
    lookup_indexes: Vec<HashMap<Cell, Vec<i64>>>,
}

impl Table {
    fn new(id: TableId) -> Table {
        Table {
            id,
            rows: BTreeMap::new(),
            unique_indexes: id.schema().unique.iter().map(|_| HashMap::new()).collect(),
            lookup_indexes: id.schema().indexed.iter().map(|_| HashMap::new()).collect(),
        }
    }

    fn next_row_id(&self) -> i64 {
        self.rows
            .last_key_value()
            .map_or(1, |(id, _)| id.saturating_add(1))
    }

    fn unique_key(unique: &Unique, row: &[Cell]) -> Vec<Cell> {
        unique.columns.iter().map(|&c| row[c].clone()).collect()
    }

    /// The `UNIQUE` constraint `row` would break, if any. SQLite lets NULLs repeat.
    fn unique_violation(&self, row: &[Cell]) -> Option<&'static str> {
        let schema = self.id.schema();
        schema
            .unique
            .iter()
            .zip(&self.unique_indexes)
            .find(|(unique, index)| {
                let key = Table::unique_key(unique, row);
                !key.contains(&Cell::Null) && index.contains_key(&key)
            })
            .map(|(unique, _)| unique.message)
    }

    /// Stores a row that already passed every check.
    fn put(&mut self, row_id: i64, row: Row) {
        let schema = self.id.schema();
        for (unique, index) in schema.unique.iter().zip(&mut self.unique_indexes) {
            index.insert(Table::unique_key(unique, &row), row_id);
        }
        for (&column, index) in schema.indexed.iter().zip(&mut self.lookup_indexes) {
            index.entry(row[column].clone()).or_default().push(row_id);
        }
        self.rows.insert(row_id, row);
    }

    fn take(&mut self, row_id: i64) -> Option<Row> {
        let row = self.rows.remove(&row_id)?;
        let schema = self.id.schema();
        for (unique, index) in schema.unique.iter().zip(&mut self.unique_indexes) {
            index.remove(&Table::unique_key(unique, &row));
        }
        for (&column, index) in schema.indexed.iter().zip(&mut self.lookup_indexes) {
            if let Some(holders) = index.get_mut(&row[column]) {
                holders.retain(|&id| id != row_id);
                if holders.is_empty() {
                    index.remove(&row[column]);
                }
            }
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
                filter.wanted_on(column).map(|cells| {
                    cells
                        .into_iter()
                        .filter_map(|cell| index.get(cell))
                        .flatten()
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
                ids.retain(|id| self.rows.get(id).is_some_and(|row| filter.matches(row)));
                ids
            }
            None => self
                .rows
                .iter()
                .filter(|(_, row)| filter.matches(row))
                .map(|(id, _)| *id)
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
        self.table(id).rows.values().map(Vec::as_slice)
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
            let key = |row_id: &i64| &table.rows[row_id][order.column];
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
                row: &table.rows[row_id],
            })
            .collect()
    }

    /// Inserts every object or none: the first bad row undoes the rows before it.
    /// Returns the ids assigned (empty for a table without an `id` column).
    pub(crate) fn insert(
        &mut self,
        id: TableId,
        objects: &[serde_json::Map<String, Value>],
    ) -> Result<Vec<i64>, DbError> {
        let mut inserted = Vec::with_capacity(objects.len());
        for object in objects {
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
        object: &serde_json::Map<String, Value>,
    ) -> Result<i64, DbError> {
        let schema = id.schema();
        if let Some(unknown) = object.keys().find(|k| column_index(schema, k).is_err()) {
            return Err(DbError::NoSuchColumnToWrite {
                table: schema.name,
                column: unknown.clone(),
            });
        }
        let mut row = Vec::with_capacity(schema.columns.len());
        for column in schema.columns {
            let cell = match object.get(column.name) {
                Some(value) => cell_for_write(schema, column, value)?,
                None => match column.missing {
                    Missing::Null => Cell::Null,
                    Missing::Zero => Cell::Int(0),
                    Missing::EmptyText => Cell::Text(String::new()),
                },
            };
            row.push(cell);
        }
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
        self.check_row(id, &row)?;
        if schema.has_id && self.table(id).rows.contains_key(&row_id) {
            return Err(DbError::DuplicateId { table: schema.name });
        }
        self.table_mut(id).put(row_id, row);
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
                Cell::Int(n) => i64::try_from(n).is_ok_and(|parent_id| {
                    self.table(foreign_key.parent).rows.contains_key(&parent_id)
                }),
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
                cell_for_write(schema, &schema.columns[index], value)?,
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
                (changes_id && self.table(id).rows.contains_key(&new_id))
                    .then_some(DbError::DuplicateId { table: schema.name })
            });
            if let Some(error) = failure {
                let table = self.table_mut(id);
                table.put(*row_id, old);
                for (new_id, old_id, old_row) in undo.into_iter().rev() {
                    table.take(new_id);
                    table.put(old_id, old_row);
                }
                return Err(error);
            }
            self.table_mut(id).put(new_id, new);
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

    fn objects(value: Value) -> Vec<serde_json::Map<String, Value>> {
        serde_json::from_value(value).unwrap()
    }

    fn filter(table: TableId, value: Value) -> Filter {
        Filter::parse(table, Some(&value)).unwrap()
    }

    #[test]
    fn ids_continue_after_the_highest_one() {
        let mut db = Tables::default();
        let ids = db
            .insert(
                TableId::Users,
                &objects(json!([{"id": 40, "name": "a"}, {"name": "b"}])),
            )
            .unwrap();
        assert_eq!(ids, [40, 41]);
    }

    #[test]
    fn a_failed_modify_restores_every_row() {
        let mut db = Tables::default();
        db.insert(
            TableId::Users,
            &objects(json!([{"name": "a"}, {"name": "b"}])),
        )
        .unwrap();
        db.insert(
            TableId::Cards,
            &objects(json!([{"value": 1, "user_id": 1}, {"value": 2, "user_id": 2}])),
        )
        .unwrap();
        let all = Filter::default();
        let values = objects(json!([{"value": 7}])).remove(0);
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
        let again = db.insert(
            TableId::Cards,
            &objects(json!([{"value": 2, "user_id": 1}])),
        );
        assert_eq!(
            again,
            Err(DbError::Unique("UNIQUE constraint failed: cards.value"))
        );
    }

    #[test]
    fn changing_a_referenced_id_is_refused() {
        let mut db = Tables::default();
        db.insert(TableId::Users, &objects(json!([{"name": "a"}])))
            .unwrap();
        db.insert(
            TableId::Cards,
            &objects(json!([{"value": 1, "user_id": 1}])),
        )
        .unwrap();
        let values = objects(json!([{"id": 9}])).remove(0);
        let by_id = filter(TableId::Users, json!({"users": {"id": 1}}));
        assert_eq!(
            db.update(TableId::Users, &by_id, &values),
            Err(DbError::ForeignKey)
        );
    }

    #[test]
    fn card_values_above_i64_fit() {
        let mut db = Tables::default();
        db.insert(TableId::Users, &objects(json!([{"name": "a"}])))
            .unwrap();
        let big = u64::MAX - 1;
        db.insert(
            TableId::Cards,
            &objects(json!([{"value": big, "user_id": 1}])),
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
            &objects(json!([{"name": "b"}, {"name": "c"}, {"name": "a"}])),
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
}
