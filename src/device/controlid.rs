//! The Control iD driver (iDBlock turnstiles, iDAccess, iDFlex, iDFace): sessions over
//! `login.fcgi`, objects through `load_objects` / `create_objects` / `modify_objects` /
//! `destroy_objects`, as described in `docs/controlid-api.md`.
//!
//! The device does not enforce unique registrations, so this driver is what keeps every
//! person on it exactly once: it always loads people by registration before creating
//! them, creates only the missing ones, and after a write whose answer was lost (timeout,
//! reset, garbage) it loads them again before repeating anything. A batch the device
//! rejects is split in halves until the person it objects to is isolated, so one bad
//! row does not fail a hundred good ones. One session is shared by all threads; a 401
//! mid-run triggers one re-login, not one per thread, and a refused login is never
//! repeated (it can lock the account).

use super::http::{percent_encode, HttpClient};
use super::plan_diff::{self, DiffRules, Held, HeldWindow};
use super::{
    card_string, CardFormat, CardRule, ClockReading, Credentials, Device, DeviceError, DeviceFacts,
    DeviceInfo, DevicePerson, Outcome, Plan, Profile, RetryPolicy, ValidityEncoding,
};
use crate::i18n::{tr, Msg};
use crate::person::{Card, Person};
use crate::vendor::Kind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

mod photos;

/// The most values the device accepts in one `where ... IN` list.
const MAX_IN_LIST: usize = 999;

/// Users per page when listing a device: one `load_objects` with `limit` / `offset`,
/// about 60 kB of JSON, well inside the 30 s the field uses for loads.
const LIST_PAGE: usize = 1000;

/// What Control iD does differently (docs/controlid-api.md).
pub static PROFILE: Profile = Profile {
    kind: Kind::Controlid,
    // No documented limit; a write job never holds more than the 999 people one plan job
    // loads, so this changes nothing and says so.
    max_batch: MAX_IN_LIST,

    validity: ValidityEncoding::UnixSeconds,
};

enum Session {
    None,
    Active { token: String, generation: u64 },
    Refused(DeviceError),
}

/// A Control iD device.
pub struct ControlIdDevice {
    endpoint: DeviceInfo,
    credentials: Credentials,
    http: HttpClient,
    retry: RetryPolicy,
    session: Mutex<Session>,
    generation: Mutex<u64>,
    /// Group name -> id on this device, or `None` when planning found it missing (so
    /// later plan chunks do not look it up again; creating it still looks first). The
    /// lock is held while a group is created so two threads never create it twice.
    groups: Mutex<HashMap<String, Option<i64>>>,
    cards: CardRule,
    /// The device refused an object-form list on a non-id column: such lookups go
    /// one value at a time.
    lists_refused: AtomicBool,
    /// Face photos: whether the device takes them, the run's fitter, the counts.
    faces: super::faces::Faces,
    /// Whether users loads give `image_timestamp` (older firmware lacks it: photo
    /// versions are then read with `user_list_images.fcgi`); probed once.
    image_timestamps: std::sync::OnceLock<bool>,
}

#[derive(Debug, Deserialize)]
struct RemoteUser {
    id: i64,
    registration: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    begin_time: i64,
    #[serde(default)]
    end_time: i64,
    /// The photo's timestamp (0: none), when asked for.
    #[serde(default)]
    image_timestamp: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct RemoteCard {
    id: i64,
    value: u64,
    user_id: i64,
}

#[derive(Debug, Deserialize)]
struct RemoteLink {
    user_id: i64,
    group_id: i64,
}

#[derive(Debug, Deserialize)]
struct RemoteGroup {
    id: i64,
    name: String,
}

impl ControlIdDevice {
    /// A driver for the device at `url` (no trailing slash, no credentials in it).
    /// `max_in_flight` sizes the keep-alive pool.
    pub fn new(
        name: &str,
        url: &str,
        credentials: Credentials,
        http: HttpClient,
        retry: RetryPolicy,
    ) -> ControlIdDevice {
        ControlIdDevice {
            endpoint: DeviceInfo::new(name, url, Kind::Controlid),
            credentials,
            http,
            retry,
            session: Mutex::new(Session::None),
            generation: Mutex::new(0),
            groups: Mutex::new(HashMap::new()),
            cards: CardRule::vendor_default(crate::vendor::Kind::Controlid),
            lists_refused: AtomicBool::new(false),
            faces: Default::default(),
            image_timestamps: std::sync::OnceLock::new(),
        }
    }

    /// Sends photos as `faces` says (the run's fitter, the devices file's `faces`).
    pub fn with_faces(mut self, faces: super::faces::Faces) -> ControlIdDevice {
        self.faces = faces;
        self
    }

    /// Writes cards as `cards` says (`card_format`) instead of the default.
    pub fn with_cards(mut self, cards: CardRule) -> ControlIdDevice {
        self.cards = cards;
        self
    }

    /// `catraca learn-card`: asks the device to read the next card on its reader
    /// (`remote_enroll`, type `card`, `save: false`: nothing is stored) and waits for
    /// it; `None` when the device's own wait ended without a card.
    pub fn read_next_card(&self) -> Result<Option<u64>, DeviceError> {
        let body = json!({"type": "card", "user_id": 0, "save": false, "sync": true});
        match self.call("remote_enroll", &body) {
            Ok(answer) => Ok(answer.get("card_value").and_then(Value::as_u64)),
            Err(DeviceError::Rejected { status: 408, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The `cards.value` this device stores for `card`, or the failure of the pair.
    fn card_value(&self, card: Card) -> Result<u64, DeviceError> {
        // The device's own format, unpadded (Control iD takes no padding): the value is
        // the number itself, without formatting it as text and parsing it back for every
        // person with a card (6% of a large first enrollment's CPU).
        if self.cards.format == CardFormat::Controlid && self.cards.pad == 0 {
            return Ok(card.controlid_value());
        }
        let text = card_string(&self.cards, &self.endpoint.name, card)?;
        // The rule refuses anything beyond 64 bits (its `CardLimit::U64`).
        text.parse().map_err(|_| {
            DeviceError::Internal(format!("card value {text} passed the 64-bit check"))
        })
    }

    /// Logs in (once for all threads) and returns the token and its generation.
    fn session(&self) -> Result<(String, u64), DeviceError> {
        let mut slot = self.session.lock().expect("session lock");
        match &*slot {
            Session::Active { token, generation } => Ok((token.clone(), *generation)),
            Session::Refused(e) => Err(e.clone()),
            Session::None => {
                let token = match self.login() {
                    Ok(token) => token,
                    Err(refused @ DeviceError::LoginRefused { .. }) => {
                        // Every other thread now fails fast with the same reason: a
                        // refused login repeated per thread can lock the account.
                        *slot = Session::Refused(refused.clone());
                        return Err(refused);
                    }
                    Err(other) => return Err(other),
                };
                let generation = {
                    let mut g = self.generation.lock().expect("generation lock");
                    *g += 1;
                    *g
                };
                *slot = Session::Active {
                    token: token.clone(),
                    generation,
                };
                Ok((token, generation))
            }
        }
    }

    /// Drops the session of `generation` after the device said it is no longer valid,
    /// unless another thread already replaced it.
    fn invalidate(&self, generation: u64) {
        let mut slot = self.session.lock().expect("session lock");
        if let Session::Active { generation: g, .. } = &*slot {
            if *g == generation {
                *slot = Session::None;
            }
        }
    }

    fn login(&self) -> Result<String, DeviceError> {
        let body = json!({"login": self.credentials.login, "password": self.credentials.password});
        let answer = self.http.post_json(
            &format!("{}/login.fcgi", self.endpoint.url),
            body.to_string().as_bytes(),
        )?;
        let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let session = parsed.get("session").and_then(Value::as_str);
        match (answer.status, session) {
            (200..=299, Some(token)) if !token.is_empty() => {
                log::debug!("{}: logged in", self.endpoint.name);
                Ok(token.to_string())
            }
            (429 | 500..=599, _) => Err(DeviceError::Busy {
                status: answer.status,
                retry_after: answer.retry_after,
            }),
            (200..=299, None) if parsed.is_null() => Err(DeviceError::InvalidAnswer(
                "login answer is not JSON".into(),
            )),
            (status, _) => Err(DeviceError::LoginRefused {
                status,
                message: device_message(&parsed, "no session in the answer"),
                hint: format!(
                    "the login and password for this device ({})",
                    self.credentials.source
                ),
            }),
        }
    }

    /// One call with the shared session; a 401/403 drops the session, logs in again once
    /// (shared by every thread that saw it) and repeats the call once.
    fn call<B: Serialize + ?Sized>(&self, command: &str, body: &B) -> Result<Value, DeviceError> {
        self.call_query(command, "", body)
    }

    /// [`Self::call`] with `query` (`a=1&b=2`, already encoded) after the session.
    fn call_query<B: Serialize + ?Sized>(
        &self,
        command: &str,
        query: &str,
        body: &B,
    ) -> Result<Value, DeviceError> {
        // Straight to bytes: no `Display` machinery, no intermediate `Value` tree.
        let payload = serde_json::to_vec(body)
            .map_err(|e| DeviceError::Internal(format!("{command}: cannot encode ({e})")))?;
        let mut relogged = false;
        loop {
            let (token, generation) = self.session()?;
            let url = format!(
                "{}/{command}.fcgi?session={}{}{query}",
                self.endpoint.url,
                percent_encode(&token),
                if query.is_empty() { "" } else { "&" }
            );
            self.retry.budget.count_request();
            let answer = self.http.post_json(&url, &payload)?;
            match answer.status {
                401 | 403 if !relogged => {
                    log::debug!("{}: session refused, logging in again", self.endpoint.name);
                    self.invalidate(generation);
                    relogged = true;
                }
                // Refused again with a session just issued: not an expired session but
                // a command this account may not run (the device's `Invalid access
                // level for command ...`). Logging in again would not change it.
                401 => {
                    let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                    return Err(DeviceError::Rejected {
                        status: 401,
                        message: format!(
                            "invalid access level: {} refused again after a fresh login ({}); give this account the administrator level on the device",
                            command,
                            device_message(&parsed, "no reason given")
                        ),
                    });
                }
                200..=299 => {
                    if answer.body.iter().all(u8::is_ascii_whitespace) {
                        return Ok(Value::Null);
                    }
                    return serde_json::from_slice(&answer.body).map_err(|e| {
                        DeviceError::InvalidAnswer(format!("{command}: body is not JSON ({e})"))
                    });
                }
                429 | 500..=599 => {
                    return Err(DeviceError::Busy {
                        status: answer.status,
                        retry_after: answer.retry_after,
                    })
                }
                status => {
                    let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                    return Err(DeviceError::Rejected {
                        status,
                        message: device_message(&parsed, &format!("{command} refused")),
                    });
                }
            }
        }
    }

    /// `call`, repeated with backoff while it fails for a transient reason. Only for calls
    /// that are safe to repeat (reads, modifications by id, unique links).
    fn call_idempotent<B: Serialize + ?Sized>(
        &self,
        command: &str,
        body: &B,
    ) -> Result<Value, DeviceError> {
        let mut attempt = 0;
        loop {
            match self.call(command, body) {
                Err(e) if self.retry.may_retry(&e, attempt, self.http.breaker()) => {
                    log::debug!("{}: {command} failed ({e}), retrying", self.endpoint.name);
                    self.retry.pause(attempt, &e, self.http.telemetry());
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Rows of `object` whose `column` is one of `values`. The object-form list
    /// (`{"where":{object:{column:[...]}}}`) is documented for `id` columns only; where
    /// a device refuses it on another column (400), the lookup falls back to one
    /// equality query per value, slow but certain, and remembers that for the device
    /// (field-evidence.md, 5.1 and 5.4). Rows outside the list (a filter the device
    /// did not apply) are dropped, whatever the form.
    fn load<T: for<'de> Deserialize<'de>, V: Serialize>(
        &self,
        object: &str,
        fields: &[&str],
        column: &str,
        values: &[V],
    ) -> Result<Vec<T>, DeviceError> {
        let mut rows = Vec::new();
        let one_by_one = column != "id" && self.lists_refused.load(Ordering::Relaxed);
        if one_by_one {
            for value in values {
                let body =
                    json!({"object": object, "fields": fields, "where": {object: {column: value}}});
                rows.extend(self.load_rows(object, &body)?);
            }
        } else {
            for chunk in values.chunks(MAX_IN_LIST) {
                match self.load_chunk(object, fields, column, chunk) {
                    Ok(found) => rows.extend(found),
                    Err(DeviceError::Rejected {
                        status: 400,
                        message,
                    }) if column != "id" => {
                        log::info!(
                            "{}: a list on {object}.{column} was refused ({message}); looking values up one by one",
                            self.endpoint.name
                        );
                        self.lists_refused.store(true, Ordering::Relaxed);
                        return self.load(object, fields, column, values);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        // Rows outside the list are dropped (a device that ignored the `where`). By JSON
        // text: `Value` has no hash, and a linear search is quadratic in 999s. Only when
        // rows came back: a first enrollment's loads find nobody, and this set of every
        // value asked was most of their cost.
        if !rows.is_empty() {
            let asked: HashSet<String> = values
                .iter()
                .filter_map(|v| serde_json::to_string(v).ok())
                .collect();
            rows.retain(|row: &Value| {
                row.get(column)
                    .is_some_and(|v| asked.contains(&v.to_string()))
            });
        }
        rows.into_iter()
            .map(|row| {
                serde_json::from_value(row)
                    .map_err(|e| DeviceError::InvalidAnswer(format!("load of {object}: {e}")))
            })
            .collect()
    }

    fn load_chunk<V: Serialize>(
        &self,
        object: &str,
        fields: &[&str],
        column: &str,
        chunk: &[V],
    ) -> Result<Vec<Value>, DeviceError> {
        let body = LoadBody {
            object,
            fields,
            filter: [(object, [(column, chunk)].into())].into(),
        };
        self.load_rows(object, &body)
    }

    fn load_rows<B: Serialize>(&self, object: &str, body: &B) -> Result<Vec<Value>, DeviceError> {
        let mut answer = self.call_idempotent("load_objects", body)?;
        match answer.get_mut(object).map(Value::take) {
            Some(Value::Array(rows)) => Ok(rows),
            _ => Err(DeviceError::InvalidAnswer(format!(
                "load of {object}: no list"
            ))),
        }
    }

    fn load_users(&self, registrations: &[&str]) -> Result<Vec<RemoteUser>, DeviceError> {
        self.load(
            "users",
            &["id", "registration", "name", "begin_time", "end_time"],
            "registration",
            registrations,
        )
    }

    /// The users of `registrations` and, when photos matter for this chunk, the photos
    /// they hold (user id -> timestamp): from `image_timestamp` in the same load, or
    /// from `user_list_images` on firmware without it.
    fn load_users_for_plan(
        &self,
        registrations: &[&str],
        people: &[&Person],
    ) -> Result<(Vec<RemoteUser>, Option<photos::HeldPhotos>), DeviceError> {
        if !self.photos_matter(people)? {
            return Ok((self.load_users(registrations)?, None));
        }
        if self.image_timestamps_given()? {
            let users: Vec<RemoteUser> = self.load(
                "users",
                &[
                    "id",
                    "registration",
                    "name",
                    "begin_time",
                    "end_time",
                    "image_timestamp",
                ],
                "registration",
                registrations,
            )?;
            let held = users
                .iter()
                .filter(|u| u.image_timestamp.unwrap_or(0) != 0)
                .map(|u| (u.id, u.image_timestamp))
                .collect();
            return Ok((users, Some(held)));
        }
        let users = self.load_users(registrations)?;
        Ok((users, Some(self.listed_photos()?)))
    }

    /// Whether users loads give `image_timestamp`: asked once with a load by id (which
    /// every firmware takes as a list, so a refusal can only be the column's).
    fn image_timestamps_given(&self) -> Result<bool, DeviceError> {
        if let Some(given) = self.image_timestamps.get() {
            return Ok(*given);
        }
        let given = match self.load_chunk("users", &["id", "image_timestamp"], "id", &[0i64]) {
            Ok(_) => true,
            Err(DeviceError::Rejected { status: 400, .. }) => {
                log::info!(
                    "{}: users have no image_timestamp (older firmware): photos are listed with user_list_images",
                    self.endpoint.name
                );
                false
            }
            Err(e) => return Err(e),
        };
        Ok(*self.image_timestamps.get_or_init(|| given))
    }

    fn load_cards_of(&self, user_ids: &[i64]) -> Result<Vec<RemoteCard>, DeviceError> {
        self.load("cards", &["id", "value", "user_id"], "user_id", user_ids)
    }

    /// The group's id on this device; with `create`, creates a missing group.
    fn group_id(&self, name: &str, create: bool) -> Result<Option<i64>, DeviceError> {
        let mut groups = self.groups.lock().expect("groups lock");
        match groups.get(name) {
            Some(Some(id)) => return Ok(Some(*id)),
            Some(None) if !create => return Ok(None),
            _ => {}
        }
        let found: Vec<RemoteGroup> = self.load("groups", &["id", "name"], "name", &[name])?;
        if let Some(group) = found.iter().min_by_key(|g| g.id) {
            groups.insert(group.name.clone(), Some(group.id));
            return Ok(Some(group.id));
        }
        if !create {
            groups.insert(name.to_string(), None);
            return Ok(None);
        }
        // Retried like any write: a lost answer is looked up before the group is sent
        // again, and a failure that did not land (a refused re-login, a 503) is simply
        // tried again rather than failing the link of whoever asked first.
        let body = json!({"object": "groups", "values": [{"name": name}]});
        let mut attempt = 0;
        let id = loop {
            match self.call("create_objects", &body) {
                Ok(answer) => break first_id(&answer)?,
                Err(e) if self.retry.may_retry(&e, attempt, self.http.breaker()) => {
                    self.retry.pause(attempt, &e, self.http.telemetry());
                    attempt += 1;
                    if e.write_may_have_landed() {
                        let found: Vec<RemoteGroup> =
                            self.load("groups", &["id", "name"], "name", &[name])?;
                        if let Some(g) = found.iter().min_by_key(|g| g.id) {
                            break g.id;
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        };
        groups.insert(name.to_string(), Some(id));
        Ok(Some(id))
    }

    /// How many users the device holds, read in pages of ids (`limit` / `offset`).
    fn count_users(&self) -> Result<u64, DeviceError> {
        const PAGE: usize = 1000;
        let mut total = 0u64;
        loop {
            let body = json!({
                "object": "users",
                "fields": ["id"],
                "order": ["ascending", "id"],
                "limit": PAGE,
                "offset": total,
            });
            let answer = self.call_idempotent("load_objects", &body)?;
            let page = answer
                .get("users")
                .and_then(Value::as_array)
                .ok_or_else(|| DeviceError::InvalidAnswer("load of users: no list".into()))?
                .len();
            total += page as u64;
            if page < PAGE {
                return Ok(total);
            }
        }
    }

    /// Creates users; one result per person, in order. Lost answers are reconciled by
    /// loading; rejected batches are split until the rejected person is isolated.
    fn create_users(&self, people: &[&Person]) -> Vec<Result<i64, DeviceError>> {
        let mut results: Vec<Option<Result<i64, DeviceError>>> = vec![None; people.len()];
        let mut pending: Vec<usize> = (0..people.len()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            let batch: Vec<&Person> = pending.iter().map(|&i| people[i]).collect();
            let values: Vec<NewUser> = batch.iter().map(|p| NewUser::of(p)).collect();
            let body = CreateBody {
                object: "users",
                values: &values,
            };
            match self
                .call("create_objects", &body)
                .and_then(|a| ids_of(&a, batch.len()))
            {
                Ok(ids) => {
                    for (&i, id) in pending.iter().zip(ids) {
                        results[i] = Some(Ok(id));
                    }
                    pending.clear();
                }
                Err(DeviceError::Rejected { message, .. }) if batch.len() > 1 => {
                    log::debug!(
                        "{}: batch of {} refused ({message}); splitting it",
                        self.endpoint.name,
                        batch.len()
                    );
                    let (left, right) = pending.split_at(pending.len() / 2);
                    for half in [left, right] {
                        let sub: Vec<&Person> = half.iter().map(|&i| people[i]).collect();
                        for (&i, r) in half.iter().zip(self.create_users(&sub)) {
                            results[i] = Some(r);
                        }
                    }
                    pending.clear();
                }
                Err(e) if self.retry.may_retry(&e, attempt, self.http.breaker()) => {
                    attempt += 1;
                    self.retry.pause(attempt - 1, &e, self.http.telemetry());
                    if e.write_may_have_landed() {
                        // The device may hold them already: look before writing again.
                        match self.find_created(&batch) {
                            Ok(found) => {
                                pending.retain(|&i| {
                                    match found.get(people[i].registration.as_str()) {
                                        Some(&id) => {
                                            results[i] = Some(Ok(id));
                                            false
                                        }
                                        None => true,
                                    }
                                });
                            }
                            Err(load_error) => {
                                for &i in &pending {
                                    results[i] = Some(Err(load_error.clone()));
                                }
                                pending.clear();
                            }
                        }
                    }
                }
                Err(e) => {
                    for &i in &pending {
                        results[i] = Some(Err(e.clone()));
                    }
                    pending.clear();
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every person gets a result"))
            .collect()
    }

    /// Registration -> id for the people of `batch` the device now holds.
    fn find_created(&self, batch: &[&Person]) -> Result<HashMap<String, i64>, DeviceError> {
        let registrations: Vec<&str> = batch.iter().map(|p| p.registration.as_str()).collect();
        let users = self.load_users(&registrations)?;
        Ok(users.into_iter().map(|u| (u.registration, u.id)).collect())
    }

    /// Gives each (user, card) its card: removes the user's other cards first, then creates
    /// the missing ones in one request (split when refused).
    fn put_cards(&self, wanted: &[(i64, u64)], replace: &[i64]) -> Vec<Result<(), DeviceError>> {
        if !replace.is_empty() {
            let desired: HashMap<i64, u64> = wanted.iter().copied().collect();
            let stale: Vec<i64> = match self.load_cards_of(replace) {
                Ok(cards) => cards
                    .iter()
                    .filter(|c| desired.get(&c.user_id) != Some(&c.value))
                    .map(|c| c.id)
                    .collect(),
                Err(e) => return vec![Err(e); wanted.len()],
            };
            if !stale.is_empty() {
                let body = json!({"object": "cards", "where": {"cards": {"id": stale}}});
                if let Err(e) = self.call_idempotent("destroy_objects", &body) {
                    return vec![Err(e); wanted.len()];
                }
            }
        }
        // Only users whose card changed can already hold one of the wanted cards.
        self.create_cards(wanted, !replace.is_empty())
    }

    /// Creates the cards of `wanted`. With `look_first`, loads them by value first so
    /// that cards already in place (a replaced card kept, a lost answer) are not re-sent
    /// and a card held by someone else is a conflict at once. Without it (cards of users
    /// just created, which hold none), sends them straight away, saving a request per
    /// batch; a refused card is then looked up on its own, which ends the same way.
    fn create_cards(
        &self,
        wanted: &[(i64, u64)],
        look_first: bool,
    ) -> Vec<Result<(), DeviceError>> {
        if wanted.is_empty() {
            return Vec::new();
        }
        let mut results: Vec<Option<Result<(), DeviceError>>> = vec![None; wanted.len()];
        let mut to_create = Vec::new();
        if look_first {
            let values: Vec<u64> = wanted.iter().map(|(_, v)| *v).collect();
            let existing: Vec<RemoteCard> =
                match self.load("cards", &["id", "value", "user_id"], "value", &values) {
                    Ok(cards) => cards,
                    Err(e) => return vec![Err(e); wanted.len()],
                };
            let owner_of: HashMap<u64, i64> =
                existing.iter().map(|c| (c.value, c.user_id)).collect();
            for (i, (user, value)) in wanted.iter().enumerate() {
                match owner_of.get(value) {
                    Some(owner) if owner == user => results[i] = Some(Ok(())),
                    Some(owner) => results[i] = Some(Err(self.card_conflict(*value, *owner))),
                    None => to_create.push(i),
                }
            }
        } else {
            to_create.extend(0..wanted.len());
        }
        let mut attempt = 0;
        while !to_create.is_empty() {
            let values: Vec<NewCard> = to_create
                .iter()
                .map(|&i| NewCard {
                    value: wanted[i].1,
                    user_id: wanted[i].0,
                })
                .collect();
            let body = CreateBody {
                object: "cards",
                values: &values,
            };
            match self.call("create_objects", &body) {
                Ok(_) => {
                    for &i in &to_create {
                        results[i] = Some(Ok(()));
                    }
                    to_create.clear();
                }
                Err(DeviceError::Rejected { .. }) if to_create.len() > 1 => {
                    let (left, right) = to_create.split_at(to_create.len() / 2);
                    for half in [left, right] {
                        let sub: Vec<(i64, u64)> = half.iter().map(|&i| wanted[i]).collect();
                        for (&i, r) in half.iter().zip(self.create_cards(&sub, look_first)) {
                            results[i] = Some(r);
                        }
                    }
                    to_create.clear();
                }
                Err(DeviceError::Rejected { message, .. })
                    if !look_first && message.to_lowercase().contains("unique") =>
                {
                    // Already there: ours (a lost answer) or someone else's (a conflict).
                    let i = to_create[0];
                    results[i] = self.create_cards(&[wanted[i]], true).pop();
                    to_create.clear();
                }
                Err(e) if self.retry.may_retry(&e, attempt, self.http.breaker()) => {
                    self.retry.pause(attempt, &e, self.http.telemetry());
                    attempt += 1;
                    if e.write_may_have_landed() {
                        let sub: Vec<(i64, u64)> = to_create.iter().map(|&i| wanted[i]).collect();
                        for (&i, r) in to_create.iter().zip(self.create_cards(&sub, true)) {
                            results[i] = Some(r);
                        }
                        to_create.clear();
                    }
                }
                Err(e) => {
                    for &i in &to_create {
                        results[i] = Some(Err(e.clone()));
                    }
                    to_create.clear();
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every card gets a result"))
            .collect()
    }

    fn card_conflict(&self, value: u64, owner: i64) -> DeviceError {
        let owner_name = self
            .load::<RemoteUser, i64>(
                "users",
                &["id", "registration", "name", "begin_time", "end_time"],
                "id",
                &[owner],
            )
            .ok()
            .and_then(|users| users.into_iter().next())
            .map(|u| u.registration)
            .unwrap_or_else(|| format!("(id {owner})"));
        DeviceError::CardTaken(tr(
            Msg::WhyCardOwned,
            &[("card", &value), ("owner", &owner_name)],
        ))
    }

    /// Destroys the rows of `object` whose `column` is one of `values`, 999 at a time.
    /// Never sends a destroy without `where` (that deletes every row): an empty list
    /// sends nothing. Safe to repeat, so retried like a read.
    fn destroy_where(&self, object: &str, column: &str, values: &[i64]) -> Result<(), DeviceError> {
        for chunk in values.chunks(MAX_IN_LIST).filter(|c| !c.is_empty()) {
            let body = json!({"object": object, "where": {object: {column: chunk}}});
            self.call_idempotent("destroy_objects", &body)?;
        }
        Ok(())
    }

    /// Links each user to its group; a link that already exists counts as done.
    fn put_links(&self, links: &[(i64, i64)]) -> Vec<Result<(), DeviceError>> {
        if links.is_empty() {
            return Vec::new();
        }
        let values: Vec<NewLink> = links
            .iter()
            .map(|&(user_id, group_id)| NewLink { user_id, group_id })
            .collect();
        match self.call_idempotent(
            "create_objects",
            &CreateBody {
                object: "user_groups",
                values: &values,
            },
        ) {
            Ok(_) => vec![Ok(()); links.len()],
            Err(DeviceError::Rejected { message, .. })
                if message.to_lowercase().contains("unique") && links.len() == 1 =>
            {
                vec![Ok(())]
            }
            Err(DeviceError::Rejected { .. }) if links.len() > 1 => {
                let (left, right) = links.split_at(links.len() / 2);
                let mut out = self.put_links(left);
                out.extend(self.put_links(right));
                out
            }
            Err(e) => vec![Err(e); links.len()],
        }
    }
}

impl Device for ControlIdDevice {
    fn endpoint(&self) -> &DeviceInfo {
        &self.endpoint
    }

    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn cards(&self) -> CardRule {
        self.cards
    }

    fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Logs in, times three `session_is_valid` calls (the fastest gives the round trip,
    /// and its `Date` header the device's clock, like ping's minimum) and counts the
    /// users page by page. The documented API has no call for the firmware or the
    /// model, so they stay unknown.
    fn learned(&self) -> Vec<String> {
        // A lookup of one registration nobody has tells which `where` form works.
        let probe: Result<Vec<RemoteUser>, DeviceError> = self.load(
            "users",
            &["id", "registration"],
            "registration",
            &["catraca-check-probe"],
        );
        match probe {
            Err(e) => vec![format!("where lists not probed: {e}")],
            Ok(_) if self.lists_refused.load(Ordering::Relaxed) => vec![
                "where lists: refused on registration (id columns only); lookups go one value at a time".into(),
            ],
            Ok(_) => vec!["where lists: taken on registration (lookups in lists of up to 999)".into()],
        }
    }

    fn inspect(&self) -> Result<DeviceFacts, DeviceError> {
        let (token, _) = self.session()?;
        let url = format!(
            "{}/session_is_valid.fcgi?session={}",
            self.endpoint.url,
            percent_encode(&token)
        );
        let mut fastest: Option<(Duration, Option<ClockReading>)> = None;
        for _ in 0..3 {
            let sent = SystemTime::now();
            let began = Instant::now();
            let answer = self.http.post_json(&url, b"{}")?;
            let round_trip = began.elapsed();
            match answer.status {
                200..=299 => {}
                429 | 500..=599 => {
                    return Err(DeviceError::Busy {
                        status: answer.status,
                        retry_after: answer.retry_after,
                    })
                }
                status => {
                    let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                    return Err(DeviceError::Rejected {
                        status,
                        message: device_message(&parsed, "session_is_valid refused"),
                    });
                }
            }
            if fastest.is_none_or(|(best, _)| round_trip < best) {
                let clock = answer.date.map(|device| ClockReading {
                    // The header is truncated to the second: half a second is its
                    // expected error.
                    device: device + Duration::from_millis(500),
                    local: sent + round_trip / 2,
                });
                fastest = Some((round_trip, clock));
            }
        }
        let (round_trip, clock) = fastest.expect("three calls were made");
        Ok(DeviceFacts {
            people: Some(self.count_users()?),
            firmware: None,
            model: None,
            clock,
            round_trip: Some(round_trip),
        })
    }

    fn plan(&self, people: &[&Person]) -> Result<Vec<Plan>, DeviceError> {
        let registrations: Vec<&str> = people.iter().map(|p| p.registration.as_str()).collect();
        let (users, held_photos) = self.load_users_for_plan(&registrations, people)?;
        let mut by_registration: HashMap<&str, Vec<&RemoteUser>> = HashMap::new();
        for user in &users {
            by_registration
                .entry(user.registration.as_str())
                .or_default()
                .push(user);
        }
        // People the device holds exactly once: their cards and links are compared too.
        let held_once: Vec<(&Person, i64)> = people
            .iter()
            .filter_map(|p| match by_registration.get(p.registration.as_str()) {
                Some(found) if found.len() == 1 => Some((*p, found[0].id)),
                _ => None,
            })
            .collect();
        let single_ids: Vec<i64> = held_once.iter().map(|(_, id)| *id).collect();
        let with_card: Vec<i64> = held_once
            .iter()
            .filter(|(p, _)| p.card_is_managed())
            .map(|(_, id)| *id)
            .collect();
        let mut cards_of: HashMap<i64, Vec<u64>> = HashMap::new();
        if !with_card.is_empty() {
            for card in self.load_cards_of(&with_card)? {
                cards_of.entry(card.user_id).or_default().push(card.value);
            }
        }
        let mut links: HashSet<(i64, i64)> = HashSet::new();
        let mut group_ids: HashMap<&str, Option<i64>> = HashMap::new();
        if people.iter().any(|p| p.group.is_some()) && !single_ids.is_empty() {
            let found: Vec<RemoteLink> = self.load(
                "user_groups",
                &["user_id", "group_id"],
                "user_id",
                &single_ids,
            )?;
            links.extend(found.iter().map(|l| (l.user_id, l.group_id)));
        }
        for person in people {
            if let Some(group) = person.group.as_deref() {
                if !group_ids.contains_key(group) {
                    group_ids.insert(group, self.group_id(group, false)?);
                }
            }
        }

        let rules = DiffRules {
            cards: self.cards,
            validity: PROFILE.validity,
            name_max: None,
        };
        Ok(people
            .iter()
            .map(|person| {
                let found = by_registration
                    .get(person.registration.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let copies: Vec<Held> = found
                    .iter()
                    .map(|user| Held {
                        id: user.id,
                        name: user.name.clone(),
                        window: HeldWindow {
                            begin: user.begin_time.to_string(),
                            end: user.end_time.to_string(),
                            enabled: None,
                        },
                        cards: cards_of
                            .get(&user.id)
                            .into_iter()
                            .flatten()
                            .map(u64::to_string)
                            .collect(),
                        // Among the groups this chunk asks for, those the user is linked to.
                        groups: Some(
                            group_ids
                                .iter()
                                .filter(|(_, id)| id.is_some_and(|g| links.contains(&(user.id, g))))
                                .map(|(name, _)| name.to_string())
                                .collect(),
                        ),
                    })
                    .collect();
                let plan = plan_diff::plan(person, &copies, &rules);
                Self::with_photo(plan, person, held_photos.as_ref())
            })
            .collect())
    }

    fn people(&self) -> Result<Vec<DevicePerson>, DeviceError> {
        #[derive(Deserialize)]
        struct Listed {
            id: i64,
            registration: String,
        }
        let mut people = Vec::new();
        loop {
            let body = json!({
                "object": "users",
                "fields": ["id", "registration"],
                "order": ["ascending", "id"],
                "limit": LIST_PAGE,
                "offset": people.len(),
            });
            let answer = self.call_idempotent("load_objects", &body)?;
            let page: Vec<Listed> = answer
                .get("users")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| DeviceError::InvalidAnswer(format!("listing users: {e}")))?
                .ok_or_else(|| DeviceError::InvalidAnswer("listing users: no list".into()))?;
            let last = page.len() < LIST_PAGE;
            people.extend(page.into_iter().map(|u| DevicePerson {
                registration: u.registration,
                id: u.id,
            }));
            if last {
                return Ok(people);
            }
        }
    }

    fn remove(&self, people: &[&DevicePerson]) -> Vec<Result<(), DeviceError>> {
        // Children first: foreign keys are enforced, and whether the device deletes a
        // user's cards and links with it is unknown (docs/controlid-api.md).
        let ids: Vec<i64> = people.iter().map(|p| p.id).collect();
        // A photo outlives its user on the device: it goes first.
        let photos = match self.faces_taken() {
            Ok(true) => self.destroy_photos(&ids),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        let result = photos
            .and_then(|()| self.destroy_where("cards", "user_id", &ids))
            .and_then(|()| self.destroy_where("user_groups", "user_id", &ids))
            .and_then(|()| self.destroy_where("users", "id", &ids));
        vec![result; people.len()]
    }

    fn apply(&self, work: &[(&Person, Plan)]) -> Vec<Outcome> {
        let mut failed: Vec<Option<DeviceError>> = work
            .iter()
            .map(|(person, _)| person.card.and_then(|c| self.card_value(c).err()))
            .collect();
        let mut user_ids: Vec<Option<i64>> = vec![None; work.len()];

        // 1. Users that are missing: created in one request.
        let creating: Vec<usize> = (0..work.len())
            .filter(|&i| work[i].1 == Plan::Create && failed[i].is_none())
            .collect();
        if !creating.is_empty() {
            let people: Vec<&Person> = creating.iter().map(|&i| work[i].0).collect();
            for (&i, result) in creating.iter().zip(self.create_users(&people)) {
                match result {
                    Ok(id) => user_ids[i] = Some(id),
                    Err(e) => failed[i] = Some(e),
                }
            }
        }

        // 2. Users whose name or validity changed: one modify each (the API takes one
        //    `values` object per call).
        let mut replacing_cards = Vec::new();
        for (i, (person, plan)) in work.iter().enumerate() {
            if failed[i].is_some() {
                continue;
            }
            match plan {
                Plan::Update { id, changes } => {
                    user_ids[i] = Some(*id);
                    if changes.contains(&"card") {
                        replacing_cards.push(*id);
                    }
                    if changes.iter().any(|c| *c == "name" || *c == "validity") {
                        let body = json!({
                            "object": "users",
                            "values": {"name": person.name, "begin_time": person.begin.unwrap_or(0), "end_time": person.end.unwrap_or(0)},
                            "where": {"users": {"id": id}},
                        });
                        if let Err(e) = self.call_idempotent("modify_objects", &body) {
                            failed[i] = Some(e);
                        }
                    }
                }
                Plan::Unchanged { id } => user_ids[i] = Some(*id),
                Plan::Ambiguous { ids } => {
                    failed[i] = Some(DeviceError::Conflict(tr(
                        Msg::WhyAmbiguous,
                        &[
                            ("registration", &person.registration),
                            ("count", &ids.len()),
                            (
                                "ids",
                                &ids.iter()
                                    .map(i64::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            ),
                        ],
                    )))
                }
                Plan::Create => {}
            }
        }

        // 3. Cards taken away in the CSV go first: a card moving to another person of
        //    this batch is then free for them.
        let losing: Vec<usize> = (0..work.len())
            .filter(|&i| {
                failed[i].is_none()
                    && work[i].0.card.is_none()
                    && matches!(&work[i].1, Plan::Update { changes, .. } if changes.contains(&"card"))
            })
            .collect();
        if !losing.is_empty() {
            let ids: Vec<i64> = losing.iter().filter_map(|&i| user_ids[i]).collect();
            if let Err(e) = self.destroy_where("cards", "user_id", &ids) {
                for &i in &losing {
                    failed[i] = Some(e.clone());
                }
            }
        }

        // 4. Cards, for people created or whose card changed.
        let mut card_work = Vec::new();
        for (i, (person, plan)) in work.iter().enumerate() {
            let needs_card = match plan {
                Plan::Create => true,
                Plan::Update { changes, .. } => changes.contains(&"card"),
                _ => false,
            };
            if let (true, None, Some(id), Some(card)) =
                (needs_card, &failed[i], user_ids[i], person.card)
            {
                card_work.push((i, id, card));
            }
        }
        if !card_work.is_empty() {
            let wanted: Vec<(i64, u64)> = card_work
                .iter()
                .map(|(_, id, c)| (*id, self.card_value(*c).unwrap_or_default()))
                .collect();
            for ((i, _, _), result) in card_work
                .iter()
                .zip(self.put_cards(&wanted, &replacing_cards))
            {
                failed[*i] = match result {
                    Ok(()) => continue,
                    Err(DeviceError::CardTaken(why)) => Some(DeviceError::CardTaken(tr(
                        Msg::WhyCardWanted,
                        &[("registration", &work[*i].0.registration), ("why", &why)],
                    ))),
                    Err(e) => Some(e),
                };
            }
        }

        // 5. Group links.
        let mut link_work = Vec::new();
        for (i, (person, plan)) in work.iter().enumerate() {
            let needs_link = match plan {
                Plan::Create => true,
                Plan::Update { changes, .. } => changes.contains(&"group"),
                _ => false,
            };
            if let (true, None, Some(id), Some(group)) =
                (needs_link, &failed[i], user_ids[i], person.group.as_deref())
            {
                match self.group_id(group, true) {
                    Ok(Some(gid)) => link_work.push((i, id, gid)),
                    Ok(None) => unreachable!("group_id creates missing groups"),
                    Err(e) => failed[i] = Some(e),
                }
            }
        }
        if !link_work.is_empty() {
            let links: Vec<(i64, i64)> = link_work.iter().map(|(_, u, g)| (*u, *g)).collect();
            for ((i, _, _), result) in link_work.iter().zip(self.put_links(&links)) {
                if let Err(e) = result {
                    failed[*i] = Some(e);
                }
            }
        }

        // 6. Photos, once the user exists with its card: for people created or whose
        //    photo differs (planned only on a device that takes faces).
        let wants_photo = |i: usize| {
            work[i].0.photo.is_some()
                && match &work[i].1 {
                    Plan::Create => true,
                    Plan::Update { changes, .. } => changes.contains(&"photo"),
                    _ => false,
                }
        };
        let photo_people: Vec<usize> = (0..work.len())
            .filter(|&i| failed[i].is_none() && user_ids[i].is_some() && wants_photo(i))
            .collect();
        if !photo_people.is_empty() {
            match self.faces_taken() {
                Ok(false) => {}
                Err(e) => {
                    for &i in &photo_people {
                        failed[i] = Some(e.clone());
                    }
                }
                Ok(true) => {
                    let photo_work: Vec<(usize, i64, &Person)> = photo_people
                        .iter()
                        .map(|&i| (i, user_ids[i].expect("filtered"), work[i].0))
                        .collect();
                    for ((i, _, _), result) in photo_work.iter().zip(self.put_photos(&photo_work)) {
                        if let Err(e) = result {
                            failed[*i] = Some(e);
                        }
                    }
                }
            }
        }

        work.iter()
            .zip(failed)
            .map(|((_, plan), failure)| Outcome::of_write(plan, failure))
            .collect()
    }

    fn takes_faces(&self) -> Result<bool, DeviceError> {
        self.faces_taken()
    }

    fn face_facts(&self) -> String {
        match self.faces_taken() {
            Ok(true) => match self.listed_photos() {
                Ok(held) => format!(
                    "faces: taken; {} photos held (capacity not reported by the device)",
                    held.len()
                ),
                Err(e) => format!("faces: taken; photos not counted ({e})"),
            },
            Ok(false) => {
                "faces: not taken (set faces = true in the devices file if it reads faces)".into()
            }
            Err(e) => format!("faces: could not ask ({e})"),
        }
    }
}

/// The request bodies sent in bulk, serialised straight from these: a `json!` tree per
/// person cost more CPU than everything else catraca does per pair (`catraca bench`).
#[derive(Serialize)]
struct CreateBody<'a, T> {
    object: &'a str,
    values: &'a [T],
}

#[derive(Serialize)]
struct LoadBody<'a, V> {
    object: &'a str,
    fields: &'a [&'a str],
    /// `{object: {column: [values]}}`.
    #[serde(rename = "where")]
    filter: BTreeMap<&'a str, BTreeMap<&'a str, &'a [V]>>,
}

#[derive(Serialize)]
struct NewUser<'a> {
    registration: &'a str,
    name: &'a str,
    begin_time: i64,
    end_time: i64,
}

impl NewUser<'_> {
    fn of(person: &Person) -> NewUser<'_> {
        NewUser {
            registration: &person.registration,
            name: &person.name,
            begin_time: person.begin.unwrap_or(0),
            end_time: person.end.unwrap_or(0),
        }
    }
}

#[derive(Serialize)]
struct NewCard {
    value: u64,
    user_id: i64,
}

#[derive(Serialize)]
struct NewLink {
    user_id: i64,
    group_id: i64,
}

fn ids_of(answer: &Value, expected: usize) -> Result<Vec<i64>, DeviceError> {
    let ids: Vec<i64> = answer
        .get("ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    if ids.len() == expected {
        Ok(ids)
    } else {
        Err(DeviceError::InvalidAnswer(format!(
            "create answered {} ids for {expected} people",
            ids.len()
        )))
    }
}

fn first_id(answer: &Value) -> Result<i64, DeviceError> {
    ids_of(answer, 1).map(|ids| ids[0])
}

fn device_message(body: &Value, fallback: &str) -> String {
    body.get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| fallback.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_are_escaped_for_the_query_string() {
        assert_eq!(percent_encode("q/Ac+f=="), "q%2FAc%2Bf%3D%3D");
    }
}
