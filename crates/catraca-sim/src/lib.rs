//! Simulated turnstiles (Control iD, Hikvision ISAPI, Intelbras) over real HTTP on
//! loopback: the target of every test, of the demo and of the benchmark.
//!
//! A [`SimDevice`] is one device: its own port, its own tables behind one lock (a real
//! device is a small SQLite box that serves one statement at a time), and the bad
//! habits of the real thing on demand: latency, an in-flight limit, random 503s,
//! resets, hangs and garbage, lost answers after a write, expiring sessions, and being
//! switched off. A [`Fleet`] is several of them, of one kind or mixed. The protocols
//! live in `controlid.rs` over `tables.rs` (rows in `row_store.rs`, create bodies read
//! by `written.rs`), `hikvision.rs` and `intelbras.rs` (both
//! behind the Digest of `digest.rs`), the misbehaviour in `faults.rs`, the transport in
//! `http.rs`, and the `catraca simulate` command in `cli.rs`; this file ties them into
//! one request path per kind (faults and latency shared) and offers the typed views
//! tests assert on: Control iD tables, and [`SimPerson`]s in each vendor's notation.
//! Face photos (issue 15) are `SimConfig::faces`: each family's calls live beside its
//! protocol (`controlid_faces.rs`, `hikvision_faces.rs`, `intelbras_faces.rs`), the
//! simulated detection in `face.rs`, and the JPEGs tests send come from
//! [`test_photo`]; [`SimDevice::faces`] and [`SimDevice::face_stats`] show the result.
//! One fault path serves every kind: `fault_before_work` before the device works,
//! `answer_when_due` after it.
//!
//! The crate stands apart from catraca (`crates/catraca-sim`, which the product depends
//! on for `demo`, `simulate` and `bench`, and its tests through this public API): it has
//! its own [`Kind`], [`Fingerprint`] and card reader ([`Card`], [`Encoding`] in
//! `card.rs`, written apart from catraca's card formats so a bug there is not mirrored
//! here), and it holds [`redis_server`], the Redis the tests and the benchmark use.

mod card;
mod cli;
mod controlid;
mod controlid_faces;
mod digest;
mod face;
mod faults;
mod fingerprint;
mod hikvision;
mod hikvision_faces;
mod http;
mod intelbras;
mod intelbras_faces;
mod intelbras_firmware;
mod reader;
pub mod redis_server;
mod row_store;
mod tables;
pub mod test_photo;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faces;
mod tls;
mod vendor;
mod where_value;
mod written;

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Map, Value};

pub use card::{Card, Encoding};
pub use cli::{run, SimulateArgs, SimulateError, PASSWORD_ENV, PROFILES};
pub use face::{
    inspect_photo, ControlIdFaces, FaceStats, PhotoFacts, PhotoFormat, SimFace, SimFaces,
    Subsampling, CONTROLID_ERROR_COMMENT, DEFAULT_FACE_TIME, NO_FACE_COMMENT, SAME_AS_COMMENT,
};
pub use faults::{FaultRates, Overload};
pub use fingerprint::Fingerprint;
pub use hikvision::HikFirmware;
pub use intelbras_firmware::IntelbrasFirmware;
pub use reader::{swipe_line, ReaderFormat, Swipe};
pub use tls::{SimTls, SiteAuthority};
pub use vendor::Kind;

use controlid::{Command, ControlIdDevice};
use digest::{DigestGuard, Verdict};
use faults::{Fault, FaultDice, InFlight};
use hikvision::HikvisionApi;
use http::{Handler, Reply, Request, Response, Server, StopSignal};
use intelbras::IntelbrasApi;
use tables::{col, Cell, TableId};
use written::WrittenObjects;

/// How simulated devices behave. The default is a perfect device: no latency, no
/// limit, no faults, sessions that never expire, login `admin` / `admin`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Added to every request before it is answered. Default: zero.
    pub latency: Duration,
    /// Added per object beyond the first that a create, modify or destroy writes, and
    /// per 100 rows a load returns: big calls are slower on a device. Default: zero.
    pub per_object_latency: Duration,
    /// At most this many requests handled at once; more are refused as `overload`
    /// says. Idle keep-alive connections do not count. Default: no limit.
    pub max_in_flight: Option<usize>,
    /// How a request beyond `max_in_flight` is refused. Default: 503.
    pub overload: Overload,
    /// Random faults per request. Default: none.
    pub faults: FaultRates,
    /// Resets, hangs and garbage strike after the request was applied, so a write is
    /// stored but its answer lost. A 503 always comes before processing. Default: off.
    pub faults_after_write: bool,
    /// How long a hang lasts before the connection is closed. Default: 30 s, beyond
    /// the 10 s timeout of the vendor's SDK, as a real stall is.
    pub hang_for: Duration,
    /// A session becomes invalid after this many requests made with it. Default: never
    /// (the real lifetime is undocumented; drivers must cope with either).
    pub session_expiry_after: Option<u64>,
    /// Default: `admin`, the factory login.
    pub login: String,
    /// Default: `admin`, the factory password.
    pub password: String,
    /// Seeds the fault draws and session tokens; a fleet gives device `i` (from 0)
    /// `seed + i`. Default: 0.
    pub seed: u64,
    /// Hikvision and Intelbras: the most people the device stores; beyond it Hikvision
    /// answers `userExceedLimit`, Intelbras `Bad Request`. Default: no limit.
    pub capacity: Option<usize>,
    /// Hikvision and Intelbras: refused Digest authentications in a row that lock the
    /// account (then even the right password is refused). Default: 7, as a DS-K1T323
    /// on V4.23.41 does (field-evidence.md, 2.4).
    pub lockout_after: u32,
    /// How long a locked account stays locked; every attempt during the lock starts it
    /// again. Default: 1,800 s, the `unlockTime` a biometric terminal reported.
    pub lockout_for: Duration,
    /// Hikvision and Intelbras: the (N+1)th use of a Digest nonce is answered 401 with
    /// a fresh challenge and no `stale`, as a DS-K1T342MWX rejects the third use
    /// (N = 2). Default: no limit.
    pub nonce_uses: Option<u64>,
    /// Hikvision and Intelbras: the 401 refusing a used-up nonce (`nonce_uses`) has no
    /// `WWW-Authenticate` header, as one terminal sends it: the client must ask for a
    /// challenge again. Default: it carries one.
    pub exhausted_without_challenge: bool,
    /// Hikvision and Intelbras: 401s carry a Basic challenge before the Digest one, as
    /// a device set to "digest/basic" sends. Default: Digest only.
    pub offer_basic: bool,
    /// Share (0 to 1) of the people a create stores that the device drops at once while
    /// answering OK, as field devices are known to do: only reading back finds them
    /// missing (`--verify`). Drawn per person, apart from the request faults. Default: 0.
    pub silent_drop: f64,
    /// Seconds the device's clock is ahead of this machine's (negative: behind), as its
    /// answers' `Date` header shows: validity windows go wrong on such a device, and
    /// `catraca check` warns above 5 minutes. Default: 0.
    pub clock_offset_s: i64,
    /// Plain HTTP, or HTTPS with a certificate of the device's own. Default: HTTP.
    pub tls: SimTls,
    /// How the device's card reader writes a card. Default (`None`): as its vendor's
    /// readers do (Control iD value, Hikvision `w26` decimal, Intelbras `w26-hex`).
    pub reader: Option<ReaderFormat>,
    /// Print each swipe on stderr, granted or refused. Default: off.
    pub log_swipes: bool,
    /// The Intelbras firmware played (see `intelbras_firmware.rs`). Default: the API
    /// as documented.
    pub intelbras_firmware: IntelbrasFirmware,
    /// The Hikvision model's limits and calls. Default: see [`HikFirmware`].
    pub hikvision_firmware: HikFirmware,
    /// Control iD: an object-form `where` list is taken on `id` columns only (a list
    /// on `registration` is a 400), the only form vendor material shows. Default: any.
    pub id_lists_only: bool,
    /// Control iD: commands the account may not run, answered 401 `Invalid access
    /// level for command X` even right after a login. Default: none.
    pub denied_commands: Vec<String>,
    /// Face photos: off by default (a card turnstile); see [`SimFaces`].
    pub faces: SimFaces,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            latency: Duration::ZERO,
            per_object_latency: Duration::ZERO,
            max_in_flight: None,
            overload: Overload::default(),
            faults: FaultRates::default(),
            faults_after_write: false,
            hang_for: Duration::from_secs(30),
            session_expiry_after: None,
            login: "admin".to_owned(),
            password: "admin".to_owned(),
            seed: 0,
            capacity: None,
            lockout_after: 7,
            lockout_for: Duration::from_secs(1800),
            nonce_uses: None,
            exhausted_without_challenge: false,
            offer_basic: false,
            silent_drop: 0.0,
            clock_offset_s: 0,
            tls: SimTls::Off,
            reader: None,
            log_swipes: false,
            intelbras_firmware: IntelbrasFirmware::Documented,
            hikvision_firmware: HikFirmware::default(),
            id_lists_only: false,
            denied_commands: Vec::new(),
            faces: SimFaces::default(),
        }
    }
}

/// A row of `users` as stored; a missing time reads as 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimUser {
    pub id: i64,
    pub registration: String,
    pub name: String,
    pub begin_time: i64,
    pub end_time: i64,
}

/// A row of `cards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimCard {
    pub id: i64,
    pub value: u64,
    pub user_id: i64,
}

/// A row of `groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimGroup {
    pub id: i64,
    pub name: String,
}

/// What a device has been asked, counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SimStats {
    /// Every request but `/_sim/state`, refused ones included.
    pub total: u64,
    /// Requests by command name (`login`, `load_objects`, `create_objects`, ...);
    /// `refused` for those turned away while down or overloaded; `unknown` for paths
    /// that name no command; `destroy_without_where` and `modify_without_where` for
    /// calls that matched every row of a table.
    pub requests: BTreeMap<String, u64>,
    /// Objects created, by table.
    pub created: BTreeMap<String, u64>,
    /// Faults shown, by kind: `503`, `reset`, `hang`, `garbage`.
    pub faults: BTreeMap<String, u64>,
}

impl SimStats {
    /// How many requests had this name (see [`SimStats::requests`]); 0 if none.
    pub fn count(&self, name: &str) -> u64 {
        self.requests.get(name).copied().unwrap_or(0)
    }
}

/// The counters, keyed by static names so counting allocates nothing.
#[derive(Debug, Default)]
struct Tally {
    total: u64,
    requests: BTreeMap<&'static str, u64>,
    created: BTreeMap<&'static str, u64>,
    faults: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn add(counts: &mut BTreeMap<&'static str, u64>, name: &'static str, n: u64) {
        *counts.entry(name).or_default() += n;
    }

    fn request(&mut self, name: &'static str) {
        self.total += 1;
        Tally::add(&mut self.requests, name, 1);
    }

    /// Counts a notable event among the requests without adding to the total.
    fn request_event(&mut self, name: &'static str) {
        Tally::add(&mut self.requests, name, 1);
    }

    fn snapshot(&self) -> SimStats {
        let owned = |counts: &BTreeMap<&'static str, u64>| {
            counts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        SimStats {
            total: self.total,
            requests: owned(&self.requests),
            created: owned(&self.created),
            faults: owned(&self.faults),
        }
    }
}

/// The protocol a device speaks, with its data.
#[derive(Debug)]
enum Protocol {
    /// Boxed: its tables and indexes make it the largest by far.
    ControlId(Box<ControlIdDevice>),
    Hikvision(HikvisionApi, DigestGuard),
    Intelbras(IntelbrasApi, DigestGuard),
}

/// One person as a device holds it, whatever the vendor, each field in the vendor's own
/// notation: Control iD cards as decimal `value`s and validity as Unix seconds (`"0"`:
/// no limit); Hikvision cards as `cardNo` and validity as `Valid.beginTime/endTime`
/// (both empty when `Valid.enable` is false); Intelbras cards as `CardNo` (uppercase
/// hex) and validity as `ValidFrom` / `ValidTo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimPerson {
    /// `registration`, `employeeNo` or `UserID`.
    pub key: String,
    pub name: String,
    pub cards: Vec<String>,
    pub begin: String,
    pub end: String,
}

/// Everything behind the device's one lock.
#[derive(Debug)]
struct DeviceState {
    device: Protocol,
    tally: Tally,
    dice: FaultDice,
    /// Requests still to be answered "busy" (see [`SimDevice::busy_next`]).
    busy_next: u64,
    /// Request names whose next authenticated call is applied but its answer lost
    /// (see [`SimDevice::lose_next_answer`]).
    lose_next: Vec<String>,
    /// People whose next creation is answered OK and not stored
    /// (see [`SimDevice::drop_silently`]).
    drop_next: BTreeSet<String>,
    /// `SimConfig::silent_drop`, and the draws for it.
    drop_rate: f64,
    drop_rng: StdRng,
    /// The card reader and the swipes it has seen.
    reader: reader::Reader,
}

impl DeviceState {
    /// Whether creates must be watched for people to drop silently.
    fn drops_people(&self) -> bool {
        self.drop_rate > 0.0 || !self.drop_next.is_empty()
    }

    /// The keys of everyone the device holds.
    fn keys(&self) -> BTreeSet<String> {
        match &self.device {
            Protocol::ControlId(device) => users(&device.tables)
                .into_iter()
                .map(|u| u.registration)
                .collect(),
            Protocol::Hikvision(api, _) => api.users.keys().cloned().collect(),
            Protocol::Intelbras(api, _) => api.users.keys().cloned().collect(),
        }
    }

    /// Drops, with their cards and links, the people stored since `before` that are
    /// marked (or drawn) to be dropped: the answer already says OK.
    fn drop_new_people(&mut self, before: &BTreeSet<String>) {
        let created: Vec<String> = self.keys().difference(before).cloned().collect();
        for key in created {
            let marked = self.drop_next.remove(&key);
            let drawn = self.drop_rate > 0.0 && self.drop_rng.random::<f64>() < self.drop_rate;
            if !(marked || drawn) {
                continue;
            }
            Tally::add(&mut self.tally.faults, "silent_drop", 1);
            self.purge(&key);
        }
    }

    /// Deletes a person with their cards and group links.
    fn purge(&mut self, key: &str) {
        match &mut self.device {
            Protocol::ControlId(device) => {
                let ids: Vec<i64> = users(&device.tables)
                    .into_iter()
                    .filter(|u| u.registration == key)
                    .map(|u| u.id)
                    .collect();
                if ids.is_empty() {
                    return;
                }
                for (table, column) in [
                    (TableId::Cards, "user_id"),
                    (TableId::UserGroups, "user_id"),
                    (TableId::Users, "id"),
                ] {
                    let condition = json!({ table.name(): { column: ids } });
                    if let Ok(filter) = tables::Filter::parse(table, Some(condition.into())) {
                        let _ = device.tables.delete(table, &filter);
                    }
                }
            }
            Protocol::Hikvision(api, _) => {
                api.users.remove(key);
                api.cards.retain(|_, e| e != key);
                api.face_store.remove(key);
            }
            Protocol::Intelbras(api, _) => {
                api.users.remove(key);
                api.cards.retain(|_, u| u != key);
            }
        }
    }

    /// Who holds exactly this card string (Control iD: this value) on the device.
    fn holder_of(&self, read: &str) -> Option<String> {
        match &self.device {
            Protocol::ControlId(device) => {
                let value: u64 = read.parse().ok()?;
                let owner = cards(&device.tables)
                    .into_iter()
                    .find(|c| c.value == value)?
                    .user_id;
                users(&device.tables)
                    .into_iter()
                    .find(|u| u.id == owner)
                    .map(|u| u.registration)
            }
            Protocol::Hikvision(api, _) => api.cards.get(read).cloned(),
            Protocol::Intelbras(api, _) => api.cards.get(read).cloned(),
        }
    }

    /// A card shown to the reader at `at` (device clock).
    fn swipe(&mut self, device: &str, card: Card, at: i64) -> Swipe {
        let read = self.reader.format.read(card);
        let holder = read.as_deref().and_then(|r| self.holder_of(r));
        self.reader.record(device, card, read, holder, at)
    }

    /// Every face the device holds, in key order (Control iD: in user id order).
    fn faces(&self) -> Vec<SimFace> {
        match &self.device {
            Protocol::ControlId(device) => device
                .face_store
                .iter()
                .map(|(id, face)| {
                    let key = device.registration_or_empty(*id);
                    face.view(&key, Some(*id), !device.user_exists(*id))
                })
                .collect(),
            Protocol::Hikvision(api, _) => api
                .face_store
                .iter()
                .map(|(key, face)| face.view(key, None, !api.users.contains_key(key)))
                .collect(),
            Protocol::Intelbras(api, _) => api
                .face_store
                .iter()
                .map(|(key, face)| face.view(key, None, !api.users.contains_key(key)))
                .collect(),
        }
    }

    fn face_stats(&self) -> FaceStats {
        match &self.device {
            Protocol::ControlId(device) => device.face_stats.clone(),
            Protocol::Hikvision(api, _) => api.face_stats.clone(),
            Protocol::Intelbras(api, _) => api.face_stats.clone(),
        }
    }

    fn controlid(&self) -> Option<&ControlIdDevice> {
        match &self.device {
            Protocol::ControlId(device) => Some(device),
            _ => None,
        }
    }

    fn people(&self) -> Vec<SimPerson> {
        match &self.device {
            Protocol::ControlId(device) => {
                let cards = cards(&device.tables);
                users(&device.tables)
                    .into_iter()
                    .map(|u| SimPerson {
                        cards: cards
                            .iter()
                            .filter(|c| c.user_id == u.id)
                            .map(|c| c.value.to_string())
                            .collect(),
                        key: u.registration,
                        name: u.name,
                        begin: u.begin_time.to_string(),
                        end: u.end_time.to_string(),
                    })
                    .collect()
            }
            Protocol::Hikvision(api, _) => api
                .users
                .values()
                .map(|u| {
                    let enabled = u.valid.get("enable").and_then(Value::as_bool) == Some(true);
                    let time = |k: &str| match (enabled, u.valid.get(k).and_then(Value::as_str)) {
                        (true, Some(t)) => t.to_owned(),
                        _ => String::new(),
                    };
                    SimPerson {
                        key: u.employee_no.clone(),
                        name: u.name.clone(),
                        cards: api
                            .cards
                            .iter()
                            .filter(|(_, e)| **e == u.employee_no)
                            .map(|(c, _)| c.clone())
                            .collect(),
                        begin: time("beginTime"),
                        end: time("endTime"),
                    }
                })
                .collect(),
            Protocol::Intelbras(api, _) => api
                .users
                .values()
                .map(|u| SimPerson {
                    key: u.user_id.clone(),
                    name: u.name.clone(),
                    cards: api
                        .cards
                        .iter()
                        .filter(|(_, id)| **id == u.user_id)
                        .map(|(c, _)| c.clone())
                        .collect(),
                    begin: u.valid_from.clone(),
                    end: u.valid_to.clone(),
                })
                .collect(),
        }
    }
}

/// The request path of one device, shared by its connection threads.
#[derive(Debug)]
struct DeviceHandler {
    name: String,
    kind: Kind,
    config: SimConfig,
    state: Mutex<DeviceState>,
    down: AtomicBool,
    in_flight: InFlight,
    stop: Arc<StopSignal>,
    /// Woken at every swipe, for a `remote_enroll` waiting on the reader.
    card_read: Condvar,
    /// A Hikvision face upload is being worked on.
    face_upload: AtomicBool,
}

/// What a fault-injected broken answer looks like: a body cut short.
const GARBAGE: &[u8] = b"{\"ids\":[17,\"regist";

/// Keeps silent-drop draws apart from fault draws made with the same seed.
const DROP_SEED_SALT: u64 = 0x5113_7d20_9000_0001;

/// Keeps session tokens apart from fault draws made with the same seed.
const TOKEN_SEED_SALT: u64 = 0x70c3_e5ee_d5a1_7000;

impl DeviceState {
    /// The fault for this request: a pending "busy" first, then the dice.
    fn roll(&mut self) -> Option<Fault> {
        if self.busy_next > 0 {
            self.busy_next -= 1;
            return Some(Fault::Busy503);
        }
        self.dice.roll()
    }

    /// After a call the device accepted: its answer is lost (a reset) when a test asked
    /// for it ([`SimDevice::lose_next_answer`]) and no fault already replaces it.
    fn lose_answer_if_asked(&mut self, request: &str, fault: &mut Option<Fault>) {
        if fault.is_some() {
            return;
        }
        if let Some(i) = self.lose_next.iter().position(|n| n == request) {
            self.lose_next.remove(i);
            Tally::add(&mut self.tally.faults, Fault::Reset.name(), 1);
            *fault = Some(Fault::Reset);
        }
    }
}

impl DeviceHandler {
    fn state(&self) -> MutexGuard<'_, DeviceState> {
        // A panicking request thread must not take the device down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refuse(&self) {
        self.state().tally.request("refused");
    }

    /// Waits until `delay` has passed since the request was received; false when the
    /// server is stopping instead.
    fn wait_answer_due(&self, received: Instant, delay: Duration) -> bool {
        !self.stop.sleep(delay.saturating_sub(received.elapsed()))
    }

    /// The one fault path of every kind, before the device works on a request: draws its
    /// fault. A 503, or any fault while `faults_after_write` is off, is served here, the
    /// write never made: `Err` holds the reply. Otherwise the work goes on, with the
    /// fault (if any) to show once the write is stored.
    fn fault_before_work<'a>(
        &self,
        mut state: MutexGuard<'a, DeviceState>,
        received: Instant,
    ) -> Result<(MutexGuard<'a, DeviceState>, Option<Fault>), Reply> {
        let Some(fault) = state.roll() else {
            return Ok((state, None));
        };
        Tally::add(&mut state.tally.faults, fault.name(), 1);
        if fault != Fault::Busy503 && self.config.faults_after_write {
            return Ok((state, Some(fault)));
        }
        drop(state);
        // A reset or a hang cuts in before any answer is prepared; a 503 or a broken
        // answer takes the usual time to arrive.
        let answers = matches!(fault, Fault::Busy503 | Fault::Garbage);
        if answers && !self.wait_answer_due(received, self.config.latency) {
            return Err(Reply::Close);
        }
        Err(self.misbehave(fault))
    }

    /// The end of every kind's request path: `response`, or the fault that replaces it
    /// (the write is stored, only its answer is lost), once `delay` has passed since the
    /// request was received.
    fn answer_when_due(
        &self,
        received: Instant,
        delay: Duration,
        fault: Option<Fault>,
        response: Response,
    ) -> Reply {
        if !self.wait_answer_due(received, delay) {
            return Reply::Close;
        }
        match fault {
            Some(fault) => self.misbehave(fault),
            None => Reply::Answer(response),
        }
    }

    /// Shows a fault at once; the caller has already waited whatever latency precedes it.
    fn misbehave(&self, fault: Fault) -> Reply {
        match fault {
            Fault::Reset => Reply::Reset,
            Fault::Hang => {
                self.stop.sleep(self.config.hang_for);
                Reply::Close
            }
            Fault::Busy503 => Reply::Answer(match self.kind {
                Kind::Controlid => http::error_response(503),
                Kind::Hikvision => hikvision::busy(),
                Kind::Intelbras => intelbras::busy(),
            }),
            Fault::Garbage => Reply::Answer(Response::json(200, GARBAGE.to_vec())),
        }
    }

    fn state_json(&self) -> Vec<u8> {
        let state = self.state();
        let Some(device) = state.controlid() else {
            let body = json!({
                "name": self.name,
                "kind": self.kind.name(),
                "people": state.people(),
                "faces": state.faces(),
                "face_stats": state.face_stats(),
                "stats": state.tally.snapshot(),
            });
            return body.to_string().into_bytes();
        };
        let tables = &device.tables;
        let links: Vec<Value> = user_groups(tables)
            .into_iter()
            .map(|(user_id, group_id)| json!({"user_id": user_id, "group_id": group_id}))
            .collect();
        let body = json!({
            "name": self.name,
            "users": users(tables),
            "cards": cards(tables),
            "groups": groups(tables),
            "user_groups": links,
            "faces": state.faces(),
            "face_stats": state.face_stats(),
            "stats": state.tally.snapshot(),
        });
        body.to_string().into_bytes()
    }
}

impl Handler for DeviceHandler {
    fn accepting(&self) -> bool {
        !self.down.load(Ordering::Acquire)
    }

    fn clock_offset_s(&self) -> i64 {
        self.config.clock_offset_s
    }

    fn handle(&self, request: &Request<'_>) -> Reply {
        // The simulator's own window: not part of the device, so never faulty or counted.
        if request.path == "/_sim/state" {
            return Reply::Answer(Response::json(200, self.state_json()));
        }
        if request.path == "/__sim/swipe" {
            return Reply::Answer(self.swipe_control(request));
        }
        if !self.accepting() {
            self.refuse();
            return Reply::Reset;
        }
        let Some(_slot) = self.in_flight.enter() else {
            self.refuse();
            return match self.config.overload {
                Overload::Busy503 => Reply::Answer(http::error_response(503)),
                Overload::Reset => Reply::Reset,
            };
        };
        let received = Instant::now();
        if self.kind != Kind::Controlid {
            return self.handle_digest(request, received);
        }
        if request.path == "/remote_enroll.fcgi" {
            return Reply::Answer(self.remote_enroll(request));
        }
        if let Some(command) = controlid_faces::FaceCommand::from_path(request.path) {
            return self.handle_controlid_face(command, request, received);
        }
        let Some(command) = Command::from_path(request.path) else {
            self.state().tally.request("unknown");
            let body = json!({"error": format!("Unknown command {}", request.path), "code": 1});
            return Reply::Answer(Response::json(404, body.to_string().into_bytes()));
        };
        if request.method != "POST" {
            self.state().tally.request(command.name());
            return Reply::Answer(http::error_response(405));
        }
        let session = request.query_param("session");

        let mut state = self.state();
        state.tally.request(command.name());
        let (mut state, mut fault) = match self.fault_before_work(state, received) {
            Ok(going_on) => going_on,
            Err(reply) => return reply,
        };
        let watched =
            (command == Command::CreateObjects && state.drops_people()).then(|| state.keys());
        let Protocol::ControlId(device) = &mut state.device else {
            unreachable!("only Control iD devices take this path")
        };
        let answer = device.call(command, session.as_deref(), request.body);
        if let Some(before) = watched {
            state.drop_new_people(&before);
        }
        if let Some((table, count)) = answer.created {
            Tally::add(&mut state.tally.created, table, count);
        }
        if answer.status == 200 {
            state.lose_answer_if_asked(command.name(), &mut fault);
        }
        if answer.without_where {
            match command {
                Command::DestroyObjects => state.tally.request_event("destroy_without_where"),
                Command::ModifyObjects => state.tally.request_event("modify_without_where"),
                _ => {}
            }
        }
        drop(state);

        // Latency is served outside the lock: other connections keep the device busy
        // meanwhile, as a device's web server queues while SQLite works.
        let extra = u32::try_from(answer.extra_work).unwrap_or(u32::MAX);
        let delay = (self.config.per_object_latency.saturating_mul(extra))
            .saturating_add(self.config.latency);
        let response = Response::json(answer.status, answer.body);
        self.answer_when_due(received, delay, fault, response)
    }
}

impl DeviceHandler {
    /// A Control iD face call: the same faults and latency as any call, plus the time
    /// to model each photo it carried.
    fn handle_controlid_face(
        &self,
        command: controlid_faces::FaceCommand,
        request: &Request<'_>,
        received: Instant,
    ) -> Reply {
        let mut state = self.state();
        state.tally.request(command.name());
        if !command.takes(request.method) {
            if let Protocol::ControlId(device) = &mut state.device {
                device.face_stats.calls += 1;
            }
            return Reply::Answer(http::error_response(405));
        }
        let (mut state, mut fault) = match self.fault_before_work(state, received) {
            Ok(going_on) => going_on,
            Err(reply) => return reply,
        };
        let Protocol::ControlId(device) = &mut state.device else {
            unreachable!("only Control iD devices take this path")
        };
        let before = device.face_stats.modeled();
        let response = device.face_call(command, request);
        let photos = device.face_stats.modeled() - before;
        if response.status == 200 {
            state.lose_answer_if_asked(command.name(), &mut fault);
        }
        drop(state);
        let delay = self.face_delay(photos).saturating_add(self.config.latency);
        self.answer_when_due(received, delay, fault, response)
    }

    /// The time to model `photos` photos.
    fn face_delay(&self, photos: u64) -> Duration {
        let photos = u32::try_from(photos).unwrap_or(u32::MAX);
        self.config.faces.time_per_photo.saturating_mul(photos)
    }

    /// A Hikvision or Intelbras request: Digest first, then the vendor's API, with the
    /// same faults and latency as a Control iD request.
    fn handle_digest(&self, request: &Request<'_>, received: Instant) -> Reply {
        let action = request.query_param("action");
        let name = match (reader_route(self.kind, request), self.kind) {
            (Some(name), _) => name,
            (None, Kind::Hikvision) => hikvision::route_name(request.path),
            _ => intelbras::route_name(request.path, action.as_deref()),
        };
        let mut state = self.state();
        state.tally.request(name);
        let (mut state, mut fault) = match self.fault_before_work(state, received) {
            Ok(going_on) => going_on,
            Err(reply) => return reply,
        };
        let target = request.target();
        let watched = state.drops_people().then(|| state.keys());
        let photos_before = state.face_stats().modeled();
        let upload = self.kind == Kind::Hikvision && hikvision_faces::is_upload(name);
        // Held until the answer is due: one face upload at a time.
        let mut upload_slot = None;
        let state_now = &mut *state;
        let learning = reader_route(self.kind, request);
        let verdict = match &mut state_now.device {
            Protocol::Hikvision(_, guard) | Protocol::Intelbras(_, guard) => {
                guard.check(request.method, &target, request.authorization)
            }
            Protocol::ControlId(_) => unreachable!("Control iD devices take the session path"),
        };
        let (api_answer, verdict) = match (verdict, &mut state_now.device) {
            (Verdict::Accepted, _) if learning.is_some() => {
                (Some(state_now.reader.serve(request)), None)
            }
            (Verdict::Accepted, Protocol::Hikvision(api, _)) if upload && api.faces.enabled => {
                match UploadSlot::take(&self.face_upload) {
                    Some(slot) => {
                        upload_slot = Some(slot);
                        (Some(api.call_request(request)), None)
                    }
                    None => {
                        api.face_stats.calls += 1;
                        api.face_stats.busy += 1;
                        let busy = hikvision::Served {
                            response: hikvision::busy(),
                            created: None,
                        };
                        (Some(busy), None)
                    }
                }
            }
            (Verdict::Accepted, Protocol::Hikvision(api, _)) => {
                (Some(api.call_request(request)), None)
            }
            (Verdict::Accepted, Protocol::Intelbras(api, _)) => (Some(api.call(request)), None),
            (Verdict::Accepted, Protocol::ControlId(_)) => unreachable!("checked above"),
            (refused, _) => (None, Some(refused)),
        };
        if let Some(before) = watched {
            state.drop_new_people(&before);
        }
        let photos = state.face_stats().modeled() - photos_before;
        let response = match (api_answer, verdict) {
            (Some(served), _) => {
                if let Some((table, count)) = served.created {
                    Tally::add(&mut state.tally.created, table, count);
                }
                state.lose_answer_if_asked(name, &mut fault);
                served.response
            }
            (None, Some(verdict)) => {
                let exhausted = matches!(verdict, Verdict::Exhausted(_));
                let challenge = match verdict {
                    Verdict::Challenge(c) => c,
                    Verdict::Exhausted(c) => {
                        state.tally.request_event("nonce_exhausted");
                        c
                    }
                    Verdict::Refused(c) => {
                        state.tally.request_event("auth_refused");
                        c
                    }
                    Verdict::Locked(c) => {
                        state.tally.request_event("auth_locked");
                        c
                    }
                    Verdict::Accepted => unreachable!("accepted requests are served"),
                };
                let mut response = match &mut state.device {
                    Protocol::Hikvision(_, guard) => hikvision::unauthorized(guard.user_check()),
                    _ => intelbras::unauthorized(),
                };
                if exhausted && self.config.exhausted_without_challenge {
                    // No header at all: nothing to sign with.
                } else if self.config.offer_basic {
                    response
                        .challenges
                        .push(format!("Basic realm=\"{}\"", challenge_realm(&challenge)));
                }
                if !(exhausted && self.config.exhausted_without_challenge) {
                    response.challenges.push(challenge);
                }
                response
            }
            (None, None) => unreachable!("a request is served or refused"),
        };
        drop(state);
        let delay = self.face_delay(photos).saturating_add(self.config.latency);
        let reply = self.answer_when_due(received, delay, fault, response);
        drop(upload_slot);
        reply
    }
}

/// The one face upload a Hikvision terminal works on; freed on drop.
struct UploadSlot<'a>(&'a AtomicBool);

impl<'a> UploadSlot<'a> {
    fn take(busy: &'a AtomicBool) -> Option<UploadSlot<'a>> {
        (!busy.swap(true, Ordering::AcqRel)).then_some(UploadSlot(busy))
    }
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The statistics name of a request the reader answers (a learn call), if it is one.
fn reader_route(kind: Kind, request: &Request<'_>) -> Option<&'static str> {
    match (kind, request.path) {
        (Kind::Hikvision, "/ISAPI/AccessControl/CaptureCardInfo") => Some("capture_card"),
        (Kind::Intelbras, "/cgi-bin/recordFinder.cgi")
            if request.query_param("action").as_deref() == Some("find")
                && request.query_param("name").as_deref() == Some("AccessControlCardRec") =>
        {
            Some("card_records")
        }
        _ => None,
    }
}

impl DeviceHandler {
    /// The device's clock, Unix seconds.
    fn device_now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.config.clock_offset_s
    }

    /// `/__sim/swipe?card=43,3012`: shows a card to the reader. Not part of the device
    /// (never faulty nor counted); answers the [`Swipe`] as JSON.
    fn swipe_control(&self, request: &Request<'_>) -> Response {
        let Some(card) = request
            .query_param("card")
            .and_then(|text| Card::parse(&text).ok())
        else {
            let body = json!({"error": "give card=F,N or card=NUMBER"});
            return Response::json(400, body.to_string().into_bytes());
        };
        let swipe = self.swipe(card);
        Response::json(200, serde_json::to_vec(&swipe).unwrap_or_default())
    }

    fn swipe(&self, card: Card) -> Swipe {
        let at = self.device_now();
        let swipe = self.state().swipe(&self.name, card, at);
        self.card_read.notify_all();
        swipe
    }

    /// Control iD `remote_enroll.fcgi` with `type: card`: waits for the next swipe and
    /// answers its `card_value`. Nothing is stored (catraca sends `save: false`; the
    /// simulator stores nothing either way).
    fn remote_enroll(&self, request: &Request<'_>) -> Response {
        let error = |status: u16, message: &str| {
            let body = json!({"error": message, "code": 1});
            Response::json(status, body.to_string().into_bytes())
        };
        let session = request.query_param("session");
        let mut state = self.state();
        state.tally.request("remote_enroll");
        let Protocol::ControlId(device) = &mut state.device else {
            unreachable!("only Control iD devices take this path")
        };
        if !device.session_valid(session.as_deref()) {
            return error(401, "Invalid session");
        }
        let body: Option<Value> = serde_json::from_slice(request.body).ok();
        if body
            .as_ref()
            .and_then(|b| b.get("type"))
            .and_then(Value::as_str)
            != Some("card")
        {
            return error(400, "Invalid type: this device enrolls type card");
        }
        let seen = state.reader.swipes.len();
        let deadline = Instant::now() + reader::REMOTE_ENROLL_WAIT;
        loop {
            if let Some(swipe) = state.reader.swipes[seen..]
                .iter()
                .find(|s| s.read.is_some())
            {
                let value: Value = swipe
                    .read
                    .as_deref()
                    .and_then(|r| r.parse::<u64>().ok())
                    .map_or(Value::Null, Value::from);
                return Response::json(200, json!({"card_value": value}).to_string().into_bytes());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stop.is_raised() {
                return error(408, "Timeout: no card was read");
            }
            // Short waits, so that a stopping server is never held up.
            state = self
                .card_read
                .wait_timeout(state, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The realm of a Digest challenge, for the Basic one offered beside it.
fn challenge_realm(challenge: &str) -> &str {
    challenge
        .split("realm=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
}

fn id(cell: &Cell) -> i64 {
    i64::try_from(cell.int()).unwrap_or_default()
}

fn users(tables: &tables::Tables) -> Vec<SimUser> {
    tables
        .rows(TableId::Users)
        .map(|row| SimUser {
            id: id(&row[col::ID]),
            registration: row[col::USER_REGISTRATION].text().to_owned(),
            name: row[col::USER_NAME].text().to_owned(),
            begin_time: id(&row[col::USER_BEGIN_TIME]),
            end_time: id(&row[col::USER_END_TIME]),
        })
        .collect()
}

fn cards(tables: &tables::Tables) -> Vec<SimCard> {
    tables
        .rows(TableId::Cards)
        .map(|row| SimCard {
            id: id(&row[col::ID]),
            value: u64::try_from(row[col::CARD_VALUE].int()).unwrap_or_default(),
            user_id: id(&row[col::CARD_USER_ID]),
        })
        .collect()
}

fn groups(tables: &tables::Tables) -> Vec<SimGroup> {
    tables
        .rows(TableId::Groups)
        .map(|row| SimGroup {
            id: id(&row[col::ID]),
            name: row[col::GROUP_NAME].text().to_owned(),
        })
        .collect()
}

fn user_groups(tables: &tables::Tables) -> Vec<(i64, i64)> {
    tables
        .rows(TableId::UserGroups)
        .map(|row| (id(&row[col::LINK_USER_ID]), id(&row[col::LINK_GROUP_ID])))
        .collect()
}

/// One simulated turnstile, serving until [`SimDevice::shutdown`] or drop.
pub struct SimDevice {
    handler: Arc<DeviceHandler>,
    server: Server,
    url: String,
    fingerprint: Option<Fingerprint>,
}

impl std::fmt::Debug for SimDevice {
    /// Name and address only: the tables can hold thousands of rows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDevice")
            .field("name", &self.handler.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl SimDevice {
    /// Starts a Control iD device listening on `addr` (port 0 picks a free port).
    pub fn start(name: &str, addr: SocketAddr, config: SimConfig) -> io::Result<SimDevice> {
        SimDevice::start_kind(name, addr, Kind::Controlid, config)
    }

    /// Starts a device of `kind` listening on `addr` (port 0 picks a free port).
    /// `session_expiry_after` ages Digest nonces out on Hikvision and Intelbras.
    pub fn start_kind(
        name: &str,
        addr: SocketAddr,
        kind: Kind,
        config: SimConfig,
    ) -> io::Result<SimDevice> {
        let stop = Arc::new(StopSignal::default());
        let certificate = tls::certificate_for(&config.tls, name, addr.ip())?;
        let guard = |realm: &str| {
            DigestGuard::new(
                realm,
                &config.login,
                &config.password,
                config.session_expiry_after,
                config.lockout_after,
                config.seed ^ TOKEN_SEED_SALT,
            )
            .with_nonce_uses(config.nonce_uses)
            .with_lockout_for(config.lockout_for)
        };
        let device = match kind {
            Kind::Controlid => {
                let mut device = ControlIdDevice::new(
                    &config.login,
                    &config.password,
                    config.session_expiry_after,
                    config.seed ^ TOKEN_SEED_SALT,
                );
                device.id_lists_only = config.id_lists_only;
                device.denied = config.denied_commands.clone();
                device.faces = config.faces.clone();
                Protocol::ControlId(Box::new(device))
            }
            Kind::Hikvision => Protocol::Hikvision(
                HikvisionApi {
                    capacity: config.capacity,
                    firmware: config.hikvision_firmware,
                    faces: config.faces.clone(),
                    ..HikvisionApi::default()
                },
                guard("DS-K1T671M"),
            ),
            Kind::Intelbras => Protocol::Intelbras(
                IntelbrasApi {
                    capacity: config.capacity,
                    firmware: config.intelbras_firmware,
                    faces: config.faces.clone(),
                    ..IntelbrasApi::default()
                },
                guard("Login to SS3530"),
            ),
        };
        let state = DeviceState {
            device,
            tally: Tally::default(),
            dice: FaultDice::new(config.faults, config.seed),
            busy_next: 0,
            lose_next: Vec::new(),
            drop_next: BTreeSet::new(),
            drop_rate: config.silent_drop,
            drop_rng: StdRng::seed_from_u64(config.seed ^ DROP_SEED_SALT),
            reader: reader::Reader::new(
                config.reader.unwrap_or(ReaderFormat::of(kind)),
                config.log_swipes,
            ),
        };
        let handler = Arc::new(DeviceHandler {
            name: name.to_owned(),
            kind,
            in_flight: InFlight::new(config.max_in_flight),
            config,
            state: Mutex::new(state),
            down: AtomicBool::new(false),
            stop: stop.clone(),
            card_read: Condvar::new(),
            face_upload: AtomicBool::new(false),
        });
        let server = Server::start(
            addr,
            handler.clone(),
            stop,
            name,
            certificate.as_ref().map(|c| Arc::clone(&c.config)),
        )?;
        let mut reachable = server.local_addr();
        if reachable.ip().is_unspecified() {
            reachable.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let scheme = if certificate.is_some() {
            "https"
        } else {
            "http"
        };
        Ok(SimDevice {
            handler,
            server,
            url: format!("{scheme}://{reachable}"),
            fingerprint: certificate.map(|c| c.fingerprint),
        })
    }

    pub fn name(&self) -> &str {
        &self.handler.name
    }

    /// The SHA-256 fingerprint of the device's certificate; `None` over plain HTTP.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.fingerprint
    }

    /// The base URL, such as `http://127.0.0.1:8001` (loopback when bound to all
    /// interfaces).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// TCP connections the device has accepted so far; over HTTPS, each one began with
    /// a TLS handshake.
    pub fn connections_accepted(&self) -> u64 {
        self.server.connections_accepted()
    }

    /// Switches the device off or on. While down, new connections are reset at once
    /// and open ones are closed after their current request.
    pub fn set_down(&self, down: bool) {
        self.handler.down.store(down, Ordering::Release);
    }

    /// Changes the fault rates from the next request on: a test can log in on a
    /// healthy device and then make it faulty.
    pub fn set_faults(&self, faults: FaultRates) {
        self.handler.state().dice.set_rates(faults);
    }

    /// The vendor family this device simulates.
    pub fn kind(&self) -> Kind {
        self.handler.kind
    }

    /// Everyone the device holds, in the vendor's notation (see [`SimPerson`]).
    pub fn people(&self) -> Vec<SimPerson> {
        self.handler.state().people()
    }

    /// The next `count` requests (after any still pending) are answered as the device
    /// answers when busy: Hikvision `Device Busy` (statusCode 2), 503 otherwise.
    pub fn busy_next(&self, count: u64) {
        self.handler.state().busy_next += count;
    }

    /// The next accepted request named `request` (as in the statistics, e.g.
    /// `create_objects`, `user_record`, `user_insertMulti`) is applied, then its
    /// connection is reset: the write is stored, its answer lost.
    pub fn lose_next_answer(&self, request: &str) {
        self.handler.state().lose_next.push(request.to_owned());
    }

    /// The next creation of this person (registration, employeeNo or UserID) is
    /// answered as usual and not stored: a device that "answers OK without storing".
    pub fn drop_silently(&self, key: &str) {
        self.handler.state().drop_next.insert(key.to_owned());
    }

    /// Deletes a person (with cards and links) as the device does by itself, e.g. when a
    /// validity window has passed.
    pub fn purge(&self, key: &str) {
        self.handler.state().purge(key);
    }

    /// Hikvision and Intelbras: the person `key` holds exactly `cards`, stored as written,
    /// as another tool or the device's own web page would have put them (zero-padded or
    /// lower-case forms that the API would refuse included).
    pub fn set_cards(&self, key: &str, cards: &[&str]) {
        let mut state = self.handler.state();
        let held = match &mut state.device {
            Protocol::Hikvision(api, _) => &mut api.cards,
            Protocol::Intelbras(api, _) => &mut api.cards,
            Protocol::ControlId(_) => panic!("set_cards is for Hikvision and Intelbras devices"),
        };
        held.retain(|_, owner| owner != key);
        for card in cards {
            held.insert((*card).to_owned(), key.to_owned());
        }
    }

    /// Shows `card` to the device's reader: granted when the device holds exactly the
    /// string the reader produces (as `/__sim/swipe?card=` does over HTTP).
    pub fn swipe(&self, card: Card) -> Swipe {
        self.handler.swipe(card)
    }

    /// Every swipe so far, oldest first.
    pub fn swipes(&self) -> Vec<Swipe> {
        self.handler.state().reader.swipes.clone()
    }

    /// Changes how the reader writes cards, as an installer reconfiguring it would.
    pub fn set_reader(&self, format: ReaderFormat) {
        self.handler.state().reader.format = format;
    }

    /// Control iD `users` rows (empty for other kinds).
    pub fn users(&self) -> Vec<SimUser> {
        self.handler
            .state()
            .controlid()
            .map(|d| users(&d.tables))
            .unwrap_or_default()
    }

    pub fn cards(&self) -> Vec<SimCard> {
        self.handler
            .state()
            .controlid()
            .map(|d| cards(&d.tables))
            .unwrap_or_default()
    }

    pub fn groups(&self) -> Vec<SimGroup> {
        self.handler
            .state()
            .controlid()
            .map(|d| groups(&d.tables))
            .unwrap_or_default()
    }

    /// `(user_id, group_id)` pairs.
    pub fn user_groups(&self) -> Vec<(i64, i64)> {
        self.handler
            .state()
            .controlid()
            .map(|d| user_groups(&d.tables))
            .unwrap_or_default()
    }

    pub fn stats(&self) -> SimStats {
        self.handler.state().tally.snapshot()
    }

    /// Every face the device holds, dangling ones included (see [`SimFace`]), in key
    /// order (Control iD: in user id order).
    pub fn faces(&self) -> Vec<SimFace> {
        self.handler.state().faces()
    }

    /// The face of the person `key` (registration, employeeNo or UserID), if it has one.
    pub fn face(&self, key: &str) -> Option<SimFace> {
        self.faces()
            .into_iter()
            .find(|f| f.key == key && !f.dangling)
    }

    /// Face calls, photos received, refused and stored, since the device started.
    pub fn face_stats(&self) -> FaceStats {
        self.handler.state().face_stats()
    }

    /// Makes the device a facial model (faces taken) or a card model (every face call
    /// refused as that family's non-facial models do, and counted).
    pub fn set_facial(&self, facial: bool) {
        match &mut self.handler.state().device {
            Protocol::ControlId(device) => device.faces.enabled = facial,
            Protocol::Hikvision(api, _) => api.faces.enabled = facial,
            Protocol::Intelbras(api, _) => api.faces.enabled = facial,
        }
    }

    /// Stores `photo` as the face of the person `key` directly, as another tool (or
    /// the device's own screen) would have, with no check but that it is a readable
    /// picture; Control iD: with this `timestamp` (the person must exist).
    ///
    /// # Panics
    /// When `photo` is not a readable JPEG or PNG, or a Control iD person is missing.
    pub fn put_face(&self, key: &str, photo: &[u8], timestamp: Option<i64>) {
        let read = face::Photo::read(photo).expect("put_face takes a readable JPEG or PNG");
        let stored = face::StoredFace::new(photo, read, key.to_owned(), timestamp);
        let mut state = self.handler.state();
        match &mut state.device {
            Protocol::ControlId(device) => {
                let id = users(&device.tables)
                    .into_iter()
                    .find(|u| u.registration == key)
                    .map(|u| u.id)
                    .expect("put_face on Control iD needs the person stored first");
                device.face_store.insert(id, stored);
            }
            Protocol::Hikvision(api, _) => api.store_face(key.to_owned(), stored),
            Protocol::Intelbras(api, _) => {
                api.face_store.insert(key.to_owned(), stored);
            }
        }
    }

    /// Removes the face of the person `key`, as someone at the device would.
    pub fn remove_face(&self, key: &str) {
        let mut state = self.handler.state();
        match &mut state.device {
            Protocol::ControlId(device) => {
                let ids: Vec<i64> = users(&device.tables)
                    .into_iter()
                    .filter(|u| u.registration == key)
                    .map(|u| u.id)
                    .collect();
                device.face_store.retain(|id, _| !ids.contains(id));
            }
            Protocol::Hikvision(api, _) => {
                api.face_store.remove(key);
            }
            Protocol::Intelbras(api, _) => {
                api.face_store.remove(key);
            }
        }
    }

    /// Intelbras 3.x: searches started with `startFind` and never stopped (0 elsewhere).
    pub fn open_searches(&self) -> usize {
        match &self.handler.state().device {
            Protocol::Intelbras(api, _) => api.finds.open(),
            _ => 0,
        }
    }

    /// Stores a user directly, as another system (or an earlier, sloppier tool) would
    /// have; registrations are not unique, so this can seed a duplicate. Returns its id.
    pub fn insert_user(&self, registration: &str, name: &str) -> i64 {
        let mut user = Map::new();
        user.insert("registration".into(), registration.into());
        user.insert("name".into(), name.into());
        let mut state = self.handler.state();
        let Protocol::ControlId(device) = &mut state.device else {
            panic!("insert_user is for Control iD devices");
        };
        let ids = device
            .tables
            .insert(TableId::Users, WrittenObjects::from_maps([&user]))
            .expect("a user with a registration and a name always fits");
        ids[0]
    }

    /// Makes the device refuse any create of a user with this registration, as firmware
    /// does with a row it objects to: the whole request fails with a 400 and stores
    /// nothing (a bad row among good ones, for tests of batch splitting).
    pub fn reject_registration(&self, registration: &str) {
        let mut state = self.handler.state();
        let Protocol::ControlId(device) = &mut state.device else {
            panic!("reject_registration is for Control iD devices");
        };
        device.rejected.insert(registration.to_owned());
    }

    /// Stops listening, closes every connection (hung ones included) and waits for
    /// the connection threads. Dropping the device does the same.
    pub fn shutdown(mut self) {
        self.server.stop();
    }
}

/// Several devices, named `catraca-1`, `catraca-2`, ...
#[derive(Debug)]
pub struct Fleet {
    pub devices: Vec<SimDevice>,
}

impl Fleet {
    /// Starts `count` devices on free loopback ports.
    pub fn start(count: usize, config: &SimConfig) -> io::Result<Fleet> {
        Fleet::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, count, config)
    }

    /// Starts `count` devices on `ip`, at `first_port`, `first_port + 1`, ... (all on
    /// free ports when `first_port` is 0). Device `i` (from 0) draws with `seed + i`.
    pub fn start_on(
        ip: IpAddr,
        first_port: u16,
        count: usize,
        config: &SimConfig,
    ) -> io::Result<Fleet> {
        Fleet::start_mixed_on(ip, first_port, &[(Kind::Controlid, count)], config)
    }

    /// Starts `count` devices of each kind, in order, on free loopback ports, named
    /// `catraca-1`, `catraca-2`, ... across the whole fleet.
    pub fn start_mixed(kinds: &[(Kind, usize)], config: &SimConfig) -> io::Result<Fleet> {
        Fleet::start_mixed_on(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, kinds, config)
    }

    /// [`Fleet::start_mixed`] on `ip` from `first_port` (0: free ports).
    pub fn start_mixed_on(
        ip: IpAddr,
        first_port: u16,
        kinds: &[(Kind, usize)],
        config: &SimConfig,
    ) -> io::Result<Fleet> {
        let each: Vec<Kind> = kinds
            .iter()
            .flat_map(|&(kind, count)| std::iter::repeat_n(kind, count))
            .collect();
        let devices = each
            .iter()
            .enumerate()
            .map(|(index, &kind)| {
                let port = if first_port == 0 {
                    0
                } else {
                    u16::try_from(usize::from(first_port) + index).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidInput, "device ports run past 65535")
                    })?
                };
                let config = SimConfig {
                    seed: config.seed.wrapping_add(index as u64),
                    ..config.clone()
                };
                SimDevice::start_kind(
                    &format!("catraca-{}", index + 1),
                    SocketAddr::new(ip, port),
                    kind,
                    config,
                )
            })
            .collect::<io::Result<_>>()?;
        Ok(Fleet { devices })
    }

    pub fn urls(&self) -> Vec<String> {
        self.devices.iter().map(SimDevice::url).collect()
    }

    /// `KIND+URL` of each device, as `catraca enroll --device` takes them.
    pub fn device_flags(&self) -> Vec<String> {
        self.devices
            .iter()
            .map(|d| format!("{}+{}", d.kind(), d.url()))
            .collect()
    }

    /// Shuts every device down.
    pub fn shutdown(self) {
        self.devices.into_iter().for_each(SimDevice::shutdown);
    }
}
