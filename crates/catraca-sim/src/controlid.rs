//! The Control iD access API as one simulated device speaks it: sessions and the
//! `*_objects.fcgi` calls over the tables of `tables.rs`.
//!
//! This is the part a driver is written against, so it copies the documented device
//! (docs/controlid-api.md) down to the error texts and picks a fixed behaviour where the
//! real one is unknown: 401 for a bad login or session, 400 with a SQLite-style message
//! for a bad statement, 200 `{"changes":n}` for modify and destroy. Transport concerns
//! (latency, faults, overload) are not here; `lib.rs` wraps them around a call.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::face::{FaceStats, SimFaces, StoredFace};
use super::tables::{DbError, Filter, Order, Projection, TableId, Tables};
use super::where_value::WhereValue;
use super::written::{FieldName, WrittenObjects};

/// The calls a device answers, named by the path `/<name>.fcgi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Login,
    Logout,
    SessionIsValid,
    LoadObjects,
    CreateObjects,
    ModifyObjects,
    DestroyObjects,
    SystemInformation,
}

impl Command {
    const ALL: [Command; 8] = [
        Command::Login,
        Command::Logout,
        Command::SessionIsValid,
        Command::LoadObjects,
        Command::CreateObjects,
        Command::ModifyObjects,
        Command::DestroyObjects,
        Command::SystemInformation,
    ];

    pub(crate) fn from_path(path: &str) -> Option<Command> {
        let name = path.strip_prefix('/')?.strip_suffix(".fcgi")?;
        Command::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The name used in the path and in the request statistics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Command::Login => "login",
            Command::Logout => "logout",
            Command::SessionIsValid => "session_is_valid",
            Command::LoadObjects => "load_objects",
            Command::CreateObjects => "create_objects",
            Command::ModifyObjects => "modify_objects",
            Command::DestroyObjects => "destroy_objects",
            Command::SystemInformation => "system_information",
        }
    }
}

/// Why a call failed, worded as the device words it; the status goes with the kind.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("Invalid login or password")]
    BadCredentials,
    #[error("Invalid session")]
    InvalidSession,
    #[error("invalid request body: {0}")]
    BadBody(#[from] serde_json::Error),
    #[error(
        "every object in values must carry the same fields: object {index} differs from object 0"
    )]
    MixedFields { index: usize },
    #[error("CHECK constraint failed: users.registration ({0})")]
    Rejected(String),
    #[error("Invalid access level for command {0}")]
    AccessLevel(&'static str),
    #[error("a list of values is only taken on an id column, not on {0}")]
    ListOnColumn(String),
    #[error(transparent)]
    Statement(#[from] DbError),
}

impl CallError {
    fn status(&self) -> u16 {
        match self {
            CallError::BadCredentials | CallError::InvalidSession | CallError::AccessLevel(_) => {
                401
            }
            CallError::ListOnColumn(_) => 400,
            CallError::BadBody(_)
            | CallError::MixedFields { .. }
            | CallError::Rejected(_)
            | CallError::Statement(_) => 400,
        }
    }
}

/// What a call produced, plus what the caller needs for latency and statistics.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// Objects beyond the first written, or hundreds of rows loaded: what makes a big
    /// call slower than a small one on a real device.
    pub(crate) extra_work: u64,
    /// Rows created, and in which table, for the per-table creation counts.
    pub(crate) created: Option<(&'static str, u64)>,
    /// A modify or destroy that had no condition and so touched every row.
    pub(crate) without_where: bool,
}

impl Answer {
    fn ok(body: Vec<u8>) -> Answer {
        Answer {
            status: 200,
            body,
            extra_work: 0,
            created: None,
            without_where: false,
        }
    }

    fn failed(error: &CallError) -> Answer {
        let body = json!({"error": error.to_string(), "code": 1});
        Answer {
            status: error.status(),
            ..Answer::ok(body.to_string().into_bytes())
        }
    }
}

#[derive(Deserialize)]
struct Credentials {
    login: String,
    password: String,
}

#[derive(Deserialize)]
struct LoadRequest<'a> {
    object: String,
    fields: Option<Vec<String>>,
    #[serde(rename = "where", borrow)]
    filter: Option<WhereValue<'a>>,
    limit: Option<usize>,
    offset: Option<usize>,
    order: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct CreateRequest {
    object: String,
    values: WrittenObjects,
}

#[derive(serde::Serialize)]
struct Ids {
    ids: Vec<i64>,
}

#[derive(Deserialize)]
struct ModifyRequest<'a> {
    object: String,
    values: Map<String, Value>,
    #[serde(rename = "where", borrow)]
    filter: Option<WhereValue<'a>>,
}

#[derive(Deserialize)]
struct DestroyRequest<'a> {
    object: String,
    #[serde(rename = "where", borrow)]
    filter: Option<WhereValue<'a>>,
}

/// Reads a request body exactly as `serde_json::from_slice` would (same values, same
/// errors), but checks UTF-8 once for the whole body rather than once per string: on a
/// create of 250 users the per-string checks were a tenth of the simulator's time.
fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        // Let the slice reader find (and word) the error where it finds it.
        Err(_) => serde_json::from_slice(body),
    }
}

/// The computed column of `users` giving the photo's timestamp (docs/face-api.md 1.5).
const IMAGE_TIMESTAMP: &str = "image_timestamp";

/// Session tokens draw from the base64 alphabet, `/` and `+` included, like the
/// firmware's: a client that does not URL-encode the token gets 401 sooner or later.
const TOKEN_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const TOKEN_LENGTH: usize = 24;

/// `object.column` of a `where` that gives a list of values on a column other than `id`.
fn list_on_non_id_column(body: &[u8]) -> Option<String> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    let tables = parsed.get("where")?.as_object()?;
    tables.iter().find_map(|(table, columns)| {
        columns.as_object()?.iter().find_map(|(column, value)| {
            (column != "id" && value.is_array()).then(|| format!("{table}.{column}"))
        })
    })
}

/// One device's state as its API sees it.
#[derive(Debug)]
pub(crate) struct ControlIdDevice {
    pub(crate) tables: Tables,
    /// Open sessions and how many requests each has made.
    sessions: HashMap<String, u64>,
    token_rng: StdRng,
    login: String,
    password: String,
    session_expiry_after: Option<u64>,
    /// Registrations whose creation is refused (see `SimDevice::reject_registration`).
    pub(crate) rejected: std::collections::HashSet<String>,
    /// Firmware that takes an object-form list in `where` on `id` columns only (the
    /// only form vendor material shows): a list on another column is a 400.
    pub(crate) id_lists_only: bool,
    /// Commands this account may not run: 401 `Invalid access level for command X`,
    /// whatever the session.
    pub(crate) denied: Vec<String>,
    /// Whether the model takes faces, and its firmware (see `controlid_faces.rs`).
    pub(crate) faces: SimFaces,
    /// Photos by `user_id`; they outlive their user, as on the device.
    pub(crate) face_store: BTreeMap<i64, StoredFace>,
    pub(crate) face_stats: FaceStats,
}

impl ControlIdDevice {
    pub(crate) fn new(
        login: &str,
        password: &str,
        session_expiry_after: Option<u64>,
        seed: u64,
    ) -> ControlIdDevice {
        ControlIdDevice {
            tables: Tables::default(),
            sessions: HashMap::new(),
            token_rng: StdRng::seed_from_u64(seed),
            login: login.to_owned(),
            password: password.to_owned(),
            session_expiry_after,
            rejected: Default::default(),
            id_lists_only: false,
            denied: Vec::new(),
            faces: SimFaces::default(),
            face_store: BTreeMap::new(),
            face_stats: FaceStats::default(),
        }
    }

    /// Answers one call. `session` is the decoded `session` query parameter.
    pub(crate) fn call(&mut self, command: Command, session: Option<&str>, body: &[u8]) -> Answer {
        let result = match command {
            Command::Login => self.login(body),
            Command::SessionIsValid => {
                let valid = self.use_session(session).is_ok();
                Ok(Answer::ok(
                    json!({"session_is_valid": valid}).to_string().into_bytes(),
                ))
            }
            Command::Logout => self.use_session(session).map(|()| {
                if let Some(token) = session {
                    self.sessions.remove(token);
                }
                Answer::ok(Vec::new())
            }),
            object_call if self.denied.iter().any(|d| d == object_call.name()) => self
                .use_session(session)
                .and_then(|()| Err(CallError::AccessLevel(object_call.name()))),
            object_call => self.use_session(session).and_then(|()| match object_call {
                Command::LoadObjects => self.load(body),
                Command::CreateObjects => self.create(body),
                Command::ModifyObjects => self.modify(body),
                Command::DestroyObjects => self.destroy(body),
                Command::SystemInformation => Ok(self.system_information()),
                _ => unreachable!("session calls are handled above"),
            }),
        };
        result.unwrap_or_else(|error| Answer::failed(&error))
    }

    fn login(&mut self, body: &[u8]) -> Result<Answer, CallError> {
        let credentials: Credentials = parse_body(body)?;
        if credentials.login != self.login || credentials.password != self.password {
            return Err(CallError::BadCredentials);
        }
        let token: String = (0..TOKEN_LENGTH)
            .map(|_| char::from(TOKEN_ALPHABET[self.token_rng.random_range(0..64)]))
            .collect();
        let body = json!({"session": token}).to_string().into_bytes();
        self.sessions.insert(token, 0);
        Ok(Answer::ok(body))
    }

    /// Counts one request against the session; a session that has made its allowed
    /// number of requests is forgotten, as an expired one is on a device.
    /// Whether `session` is open, counting the request that uses it (`remote_enroll`).
    pub(crate) fn session_valid(&mut self, session: Option<&str>) -> bool {
        self.use_session(session).is_ok()
    }

    fn use_session(&mut self, session: Option<&str>) -> Result<(), CallError> {
        let token = session.ok_or(CallError::InvalidSession)?;
        let uses = self
            .sessions
            .get_mut(token)
            .ok_or(CallError::InvalidSession)?;
        if self
            .session_expiry_after
            .is_some_and(|limit| *uses >= limit)
        {
            self.sessions.remove(token);
            return Err(CallError::InvalidSession);
        }
        *uses += 1;
        Ok(())
    }

    fn table(object: &str) -> Result<TableId, CallError> {
        TableId::from_name(object).ok_or_else(|| DbError::NoSuchTable(object.to_owned()).into())
    }

    fn load(&self, body: &[u8]) -> Result<Answer, CallError> {
        if self.id_lists_only {
            if let Some(column) = list_on_non_id_column(body) {
                return Err(CallError::ListOnColumn(column));
            }
        }
        let mut request: LoadRequest = parse_body(body)?;
        let table = Self::table(&request.object)?;
        // Every column (no `fields`) includes it, as on the device.
        let image_timestamps = table == TableId::Users
            && self.has_image_timestamps()
            && request
                .fields
                .as_ref()
                .is_none_or(|f| f.iter().any(|n| n == IMAGE_TIMESTAMP));
        let mut dropped_id = false;
        if let Some(fields) = request.fields.as_mut().filter(|_| image_timestamps) {
            fields.retain(|n| n != IMAGE_TIMESTAMP);
            if !fields.iter().any(|n| n == "id") {
                fields.push("id".to_owned());
                dropped_id = true;
            }
        }
        let filter = Filter::parse(table, request.filter)?;
        let projection = Projection::parse(table, request.fields.as_deref())?;
        let order = request
            .order
            .as_deref()
            .map(|o| Order::parse(table, o))
            .transpose()?;
        let rows = self.tables.select(
            table,
            &filter,
            order,
            request.offset.unwrap_or(0),
            request.limit,
            &projection,
        );
        if image_timestamps {
            return self.with_image_timestamps(serde_json::to_value(&rows)?, dropped_id);
        }
        let mut body = Vec::with_capacity(64 + rows.len() * 96);
        body.extend_from_slice(b"{\"");
        body.extend_from_slice(table.name().as_bytes());
        body.extend_from_slice(b"\":");
        serde_json::to_writer(&mut body, &rows)?;
        body.push(b'}');
        Ok(Answer {
            extra_work: rows.len() as u64 / 100,
            ..Answer::ok(body)
        })
    }

    /// `users` rows with `image_timestamp` added (the photo's timestamp, 0 without
    /// one), and `id` dropped again when only added to find the photo.
    fn with_image_timestamps(&self, mut rows: Value, drop_id: bool) -> Result<Answer, CallError> {
        let count = rows.as_array().map_or(0, Vec::len);
        for row in rows.as_array_mut().into_iter().flatten() {
            let Value::Object(row) = row else { continue };
            let id = row.get("id").and_then(Value::as_i64).unwrap_or_default();
            row.insert(IMAGE_TIMESTAMP.into(), self.image_timestamp(id).into());
            if drop_id {
                row.remove("id");
            }
        }
        Ok(Answer {
            extra_work: count as u64 / 100,
            ..Answer::ok(serde_json::to_vec(&json!({ "users": rows }))?)
        })
    }

    /// `system_information.fcgi`: the model tells a facial device from a card one.
    fn system_information(&self) -> Answer {
        let model = if self.faces.enabled {
            "iDFace"
        } else {
            "iDBlock"
        };
        let body = json!({
            "serial": "0M0000/000001", "version": "6.13.1", "model": model,
            "online": false, "uptime": {"days": 0, "hours": 1, "minutes": 0, "seconds": 0},
        });
        Answer::ok(body.to_string().into_bytes())
    }

    fn create(&mut self, body: &[u8]) -> Result<Answer, CallError> {
        let request: CreateRequest = parse_body(body)?;
        let table = Self::table(&request.object)?;
        {
            let mut objects = request.values.iter();
            if let Some(first) = objects.next() {
                let names: Vec<&FieldName> = first.names().collect();
                if let Some(index) = objects.position(|o| !o.names().eq(names.iter().copied())) {
                    return Err(CallError::MixedFields { index: index + 1 });
                }
            }
        }
        if request.object == "users" {
            let refused = request.values.iter().find_map(|v| {
                v.text("registration")
                    .filter(|r| self.rejected.contains(*r))
            });
            if let Some(registration) = refused {
                return Err(CallError::Rejected(registration.to_owned()));
            }
        }
        let created = request.values.len() as u64;
        let ids = self.tables.insert(table, request.values)?;
        Ok(Answer {
            extra_work: created.saturating_sub(1),
            created: Some((table.name(), created)),
            ..Answer::ok(serde_json::to_vec(&Ids { ids })?)
        })
    }

    fn modify(&mut self, body: &[u8]) -> Result<Answer, CallError> {
        let request: ModifyRequest = parse_body(body)?;
        let table = Self::table(&request.object)?;
        let filter = Filter::parse(table, request.filter)?;
        let changes = self.tables.update(table, &filter, &request.values)?;
        Ok(Self::changed(changes, filter.is_everything()))
    }

    fn destroy(&mut self, body: &[u8]) -> Result<Answer, CallError> {
        let request: DestroyRequest = parse_body(body)?;
        let table = Self::table(&request.object)?;
        let filter = Filter::parse(table, request.filter)?;
        let changes = self.tables.delete(table, &filter)?;
        Ok(Self::changed(changes, filter.is_everything()))
    }

    fn changed(changes: usize, without_where: bool) -> Answer {
        Answer {
            extra_work: (changes as u64).saturating_sub(1),
            without_where,
            ..Answer::ok(json!({ "changes": changes }).to_string().into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse_body` is only a faster road to `from_slice`: same values, same errors.
    #[test]
    fn a_body_parses_as_from_slice_would() {
        let bodies: [&[u8]; 9] = [
            br#"{"object":"users","values":[{"name":"Jo\xc3\xa3o","registration":"1"}]}"#,
            br#"{"object":"users","values":[{"name":"a\u00e9\n"}]}"#,
            br#"{"object":"users","values":[{"name":"\xff"}]}"#,
            b"{\"object\":\"users\",\xff\"values\":[]}",
            br#"{"object":"users","values":[{"name":"\ud800"}]}"#,
            br#"{"object":"users","values":{}}"#,
            br#"{"object":"users"}"#,
            br#"{"object":"users","values":[],}"#,
            b"",
        ];
        for body in bodies {
            let fast = parse_body::<CreateRequest>(body).map(|r| (r.object, r.values));
            let slow = serde_json::from_slice::<CreateRequest>(body).map(|r| (r.object, r.values));
            match (fast, slow) {
                (Ok(fast), Ok(slow)) => assert_eq!(fast, slow),
                (Err(fast), Err(slow)) => assert_eq!(fast.to_string(), slow.to_string()),
                (fast, slow) => panic!("{body:?}: {fast:?} but {slow:?}"),
            }
        }
    }
}
