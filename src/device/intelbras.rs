//! The Intelbras driver (SS 3530/5530, CT 3000; Dahua access controllers), as described
//! in `docs/hikvision-intelbras-api.md`: HTTP Digest, `/cgi-bin/AccessUser.cgi` and
//! `/cgi-bin/AccessCard.cgi`, at most 10 users or cards per call, answers and errors in
//! plain text (`OK`, `Error\r\nBad Request!\r\n`).
//!
//! `UserID` is unique on the device, so a repeated `insertMulti` cannot duplicate a
//! person; it fails with `Bad Request`, which is also what any other refused row gets.
//! So after a `Bad Request` (or a lost answer) the driver lists the batch: people now
//! there are written with `updateMulti`, the others are inserted again, and a batch that
//! still fails with nobody on the device is split in halves until the one refused person
//! is isolated. Cards cannot be modified: a changed card is removed, then inserted.
//!
//! Field firmware differs from the documents (`docs/field-evidence.md`, section 1),
//! so nothing is assumed: lists are read in JSON or flat `key=value` text, whichever
//! the body is (`intelbras_answers.rs`); the generation is probed once per device
//! ([`Generation`]: `startFind` answering a `Token` means 3.x), and a whole device is
//! listed with `startFind`/`doFind`/`stopFind` there (`stopFind` sent even after an
//! error), with `action=list` on 2.x; a person's cards are found per person with
//! `AccessCard.cgi?action=startFind&Condition.UserID=` on 3.x, by `UserIDList` on 2.x.
//! Whether a person is there is decided from the records that name them, never from
//! a status code (a `400` on a lookup reads as absent). And since these devices
//! answer `200 OK` to writes they ignore, every written person is read back: a pair
//! is done only when the device holds it as written.

use super::digest::DigestClient;
use super::http::{percent_encode, Answer, HttpClient};
use super::intelbras_answers::{field, find_token, name_of, records, Record};
use super::plan_diff::{self, DiffRules, Held, HeldWindow};
use super::{
    card_string, CardRule, Credentials, Device, DeviceError, DeviceInfo, DevicePerson, Outcome,
    Plan, Profile, RetryPolicy, ValidityEncoding,
};
use crate::person::Person;
use crate::vendor::Kind;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// What Intelbras does differently.
pub static PROFILE: Profile = Profile {
    kind: Kind::Intelbras,
    max_batch: MAX_PER_CALL,

    validity: ValidityEncoding::LocalSpaced,
};

/// Users or cards per call: the firmware refuses more.
pub const MAX_PER_CALL: usize = 10;

/// A cheap read where Digest challenges are fetched (see `DigestClient::with_challenge_target`).
const SOFTWARE_VERSION: &str = "/cgi-bin/magicBox.cgi?action=getSoftwareVersion";

mod photos;

const USERS: &str = "/cgi-bin/AccessUser.cgi";
const CARDS: &str = "/cgi-bin/AccessCard.cgi";

/// A plain-text answer, once transport trouble is set apart.
enum Reply {
    Ok(Vec<u8>),
    BadRequest,
}

/// `Error\r\nBad Request!\r\n` and friends, as one line.
fn error_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn classify(answer: Answer) -> Result<Reply, DeviceError> {
    let text = error_text(&answer.body);
    if text.contains("Invalid Authority") {
        return Err(DeviceError::LoginRefused {
            status: answer.status,
            message: text,
            hint: "that this device's account has the rights to manage users".into(),
        });
    }
    match answer.status {
        200..=299 if !text.starts_with("Error") => Ok(Reply::Ok(answer.body)),
        400 => Ok(Reply::BadRequest),
        429 | 500 | 502..=599 => Err(DeviceError::Busy {
            status: answer.status,
            retry_after: answer.retry_after,
        }),
        501 => Err(DeviceError::Rejected {
            status: 501,
            message: format!("{text} (this firmware lacks the call)"),
        }),
        status => Err(DeviceError::Rejected {
            status,
            message: if text.is_empty() {
                format!("HTTP {status}")
            } else {
                text
            },
        }),
    }
}

/// `name[0]=a&name[1]=b` with the brackets raw, as clients that work against the
/// devices send them (field-evidence.md, 1.5); values percent-encoded. The Digest
/// `uri=` repeats the same bytes.
fn list_query(name: &str, values: &[&str]) -> String {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("&{name}[{i}]={}", percent_encode(v)))
        .collect()
}

/// Records per `doFind` page: clients use 100 to 500 and no maximum is documented;
/// a page shorter than asked ends the search.
const FIND_PAGE: usize = 100;

/// How a device lists users and finds a person's cards, probed once per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// Firmware 2.x: `action=list`, flat text answers.
    V2,
    /// Firmware 3.x: `startFind` / `doFind` / `stopFind`, JSON answers.
    V3,
}

impl Generation {
    pub fn label(self) -> &'static str {
        match self {
            Generation::V2 => "2.x (action=list)",
            Generation::V3 => "3.x (startFind/doFind/stopFind)",
        }
    }
}

/// An Intelbras/Dahua access controller.
pub struct IntelbrasDevice {
    endpoint: DeviceInfo,
    /// The firmware answered 501 to `AccessFace.cgi`: photos go through
    /// `FaceInfoManager.cgi`, one a request.
    access_face_missing: AtomicBool,
    /// Face photos: whether the device takes them, the run's fitter, the counts.
    faces: super::faces::Faces,
    client: DigestClient,
    cards: CardRule,
    generation: OnceLock<Generation>,
    /// A 3.x device that refuses `action=list` lookups: they go by `startFind`.
    lists_refused: AtomicBool,
}

impl IntelbrasDevice {
    pub fn new(
        name: &str,
        url: &str,
        credentials: Credentials,
        http: HttpClient,
        retry: RetryPolicy,
    ) -> IntelbrasDevice {
        let endpoint = DeviceInfo::new(name, url, Kind::Intelbras);
        IntelbrasDevice {
            client: DigestClient::new(name, &endpoint.url, credentials, http, retry)
                .with_challenge_target(SOFTWARE_VERSION),
            endpoint,
            generation: OnceLock::new(),
            lists_refused: AtomicBool::new(false),
            cards: CardRule::vendor_default(crate::vendor::Kind::Intelbras),
            faces: Default::default(),
            access_face_missing: AtomicBool::new(false),
        }
    }

    /// Sends photos as `faces` says (the run's fitter, the devices file's `faces`).
    pub fn with_faces(mut self, faces: super::faces::Faces) -> IntelbrasDevice {
        self.faces = faces;
        self
    }

    /// Writes cards as `cards` says (`card_format`, `card_pad`) instead of the default.
    pub fn with_cards(mut self, cards: CardRule) -> IntelbrasDevice {
        self.cards = cards;
        self
    }

    /// `catraca learn-card`: the card records (`AccessControlCardRec`) between `start`
    /// and `end` (epoch seconds, bare `StartTime`/`EndTime` as 3.x firmware reads them),
    /// as (RecNo, CardNo), records without a card number left out.
    pub fn card_records(&self, start: i64, end: i64) -> Result<Vec<(u64, String)>, DeviceError> {
        let target = format!(
            "/cgi-bin/recordFinder.cgi?action=find&name=AccessControlCardRec&StartTime={start}&EndTime={end}&count=100"
        );
        let body = match self.get(&target)? {
            Reply::Ok(body) => body,
            Reply::BadRequest => {
                return Err(DeviceError::Rejected {
                    status: 400,
                    message: "Bad Request: the device refused the card record search".into(),
                })
            }
        };
        // Flat text, `records[n].Field=value`; the record prefix's case varies.
        let mut records: HashMap<String, (Option<u64>, String)> = HashMap::new();
        for line in String::from_utf8_lossy(&body).lines() {
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            let Some((record, field)) = key.rsplit_once('.') else {
                continue;
            };
            let entry = records.entry(record.to_ascii_lowercase()).or_default();
            match field {
                "RecNo" => entry.0 = value.trim().parse().ok(),
                "CardNo" => entry.1 = value.trim().to_string(),
                _ => {}
            }
        }
        let mut found: Vec<(u64, String)> = records
            .into_values()
            .filter_map(|(rec_no, card)| Some((rec_no?, card)).filter(|(_, c)| !c.is_empty()))
            .collect();
        found.sort();
        Ok(found)
    }

    /// The device's generation, probed on first need: a `startFind` answering a
    /// `Token` is 3.x (that search is closed at once); a refusal is 2.x.
    pub fn generation(&self) -> Result<Generation, DeviceError> {
        if let Some(known) = self.generation.get() {
            return Ok(*known);
        }
        let start = format!("{USERS}?action=startFind");
        let answer = self.client.send_idempotent("GET", &start, None, |a| {
            if matches!(a.status, 429 | 500 | 502..=599) {
                classify(a).map(|_| None)
            } else {
                Ok(Some(a))
            }
        })?;
        let probed = match answer
            .filter(|a| a.status == 200)
            .and_then(|a| find_token(&a.body))
        {
            Some((token, _)) => {
                self.stop_find(USERS, &token);
                Generation::V3
            }
            None => Generation::V2,
        };
        log::debug!("{}: firmware {}", self.endpoint.name, probed.label());
        Ok(*self.generation.get_or_init(|| probed))
    }

    fn stop_find(&self, cgi: &str, token: &str) {
        let stop = format!("{cgi}?action=stopFind&Token={}", percent_encode(token));
        if let Err(e) = self.get(&stop) {
            log::debug!("{}: {stop} failed ({e})", self.endpoint.name);
        }
    }

    /// Every record of a `startFind` (with `Condition.<key>=<value>` if given),
    /// paged with `doFind`; `stopFind` is sent whatever happens.
    fn find(&self, cgi: &str, condition: Option<(&str, &str)>) -> Result<Vec<Record>, DeviceError> {
        let filter = condition
            .map(|(k, v)| format!("&Condition.{k}={}", percent_encode(v)))
            .unwrap_or_default();
        let start = format!("{cgi}?action=startFind{filter}");
        let (token, total) = match self.get(&start)? {
            Reply::Ok(body) => find_token(&body).ok_or_else(|| {
                DeviceError::InvalidAnswer(format!("{start}: no Token in the answer"))
            })?,
            Reply::BadRequest => {
                return Err(DeviceError::Rejected {
                    status: 400,
                    message: format!("Bad Request: the device refused {start}"),
                })
            }
        };
        let pages = (|| {
            let mut found = Vec::new();
            loop {
                let page = format!(
                    "{cgi}?action=doFind&Token={}&Offset={}&Count={FIND_PAGE}",
                    percent_encode(&token),
                    found.len()
                );
                let got = match self.get(&page)? {
                    Reply::Ok(body) => records(&body),
                    Reply::BadRequest => Vec::new(),
                };
                let short = got.len() < FIND_PAGE;
                found.extend(got);
                if short || total.is_some_and(|t| found.len() as u64 >= t) {
                    return Ok(found);
                }
            }
        })();
        self.stop_find(cgi, &token);
        pages
    }

    /// The records of an `action=list` lookup; a `Bad Request` reads as none.
    fn list_records(&self, target: &str) -> Result<Vec<Record>, DeviceError> {
        Ok(match self.get(target)? {
            Reply::Ok(body) => records(&body),
            Reply::BadRequest => Vec::new(),
        })
    }

    /// Records whose `key` is one of `values`: an `action=list` by `<key>List`, or on a
    /// 3.x device that refuses lists (400 or 501, as field reports say they may), one
    /// `startFind` with `Condition.<key>` per value. Remembered per device.
    fn lookup(&self, cgi: &str, key: &str, values: &[&str]) -> Result<Vec<Record>, DeviceError> {
        let mut found = Vec::new();
        if !self.lists_refused.load(Ordering::Relaxed) {
            let mut refused = false;
            for chunk in values.chunks(MAX_PER_CALL) {
                let target = format!(
                    "{cgi}?action=list{}",
                    list_query(&format!("{key}List"), chunk)
                );
                match self.get(&target) {
                    Ok(Reply::Ok(body)) => found.extend(records(&body)),
                    Ok(Reply::BadRequest) | Err(DeviceError::Rejected { status: 501, .. })
                        if self.generation()? == Generation::V3 =>
                    {
                        refused = true;
                        break;
                    }
                    Ok(Reply::BadRequest) => {}
                    Err(e) => return Err(e),
                }
            }
            if !refused {
                return Ok(found);
            }
            log::info!(
                "{}: lists refused; looking up by startFind",
                self.endpoint.name
            );
            self.lists_refused.store(true, Ordering::Relaxed);
            found.clear();
        }
        for value in values {
            found.extend(self.find(cgi, Some((key, value)))?);
        }
        Ok(found)
    }

    /// (UserID, CardNo) of every card of these users, found as the generation allows.
    fn cards_of(&self, users: &[&str]) -> Result<Vec<(String, String)>, DeviceError> {
        let mut cards = Vec::new();
        let mut keep = |found: Vec<Record>, asked: &[&str]| {
            cards.extend(
                found
                    .iter()
                    .filter(|r| asked.contains(&field(r, "UserID")))
                    .filter(|r| !field(r, "CardNo").is_empty())
                    .map(|r| {
                        (
                            field(r, "UserID").to_string(),
                            field(r, "CardNo").to_string(),
                        )
                    }),
            );
        };
        match self.generation()? {
            Generation::V3 => {
                for user in users {
                    keep(self.find(CARDS, Some(("UserID", user)))?, &[user]);
                }
            }
            Generation::V2 => {
                for chunk in users.chunks(MAX_PER_CALL) {
                    let target = format!("{CARDS}?action=list{}", list_query("UserIDList", chunk));
                    keep(self.list_records(&target)?, chunk);
                }
            }
        }
        Ok(cards)
    }

    /// Signs at most `uses` requests with one Digest nonce (`nonce_uses` in the
    /// devices file; default [`DEFAULT_NONCE_USES`](super::digest::DEFAULT_NONCE_USES)).
    pub fn with_nonce_uses(mut self, uses: u32) -> IntelbrasDevice {
        self.client.set_nonce_uses(uses);
        self
    }

    fn get(&self, target: &str) -> Result<Reply, DeviceError> {
        self.client.send_idempotent("GET", target, None, classify)
    }

    /// A write: `Ok(true)` when the device said OK, `Ok(false)` on Bad Request, and a
    /// lost answer reported as such (the caller reconciles by listing).
    fn post(&self, target: &str, body: &Value) -> Result<bool, DeviceError> {
        let text = body.to_string();
        let mut attempt = 0;
        loop {
            let sent = self
                .client
                .send("POST", target, Some(("application/json", text.as_bytes())))
                .and_then(classify);
            match sent {
                Ok(Reply::Ok(body)) if error_text(&body) == "OK" => return Ok(true),
                // Anything else after a write is a broken answer: reconciled by listing.
                Ok(Reply::Ok(body)) => {
                    return Err(DeviceError::InvalidAnswer(format!(
                        "{target}: expected OK, got {:?}",
                        error_text(&body)
                    )))
                }
                Ok(Reply::BadRequest) => return Ok(false),
                // Refused before processing: safe to send again.
                Err(e @ (DeviceError::Busy { .. } | DeviceError::Unreachable(_)))
                    if self.client.may_retry(&e, attempt) =>
                {
                    log::debug!("{}: {target} failed ({e}), retrying", self.endpoint.name);
                    self.client.pause(attempt, &e);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes every card of these users (at most `MAX_PER_CALL`), each by number.
    fn drop_cards(&self, users: &[&str]) -> Result<(), DeviceError> {
        let cards: Vec<String> = self.cards_of(users)?.into_iter().map(|(_, c)| c).collect();
        self.remove_card_numbers(&cards)
    }

    /// Removes these cards by number, `MAX_PER_CALL` a call; a refusal fails the lot.
    fn remove_card_numbers(&self, numbers: &[String]) -> Result<(), DeviceError> {
        for chunk in numbers.chunks(MAX_PER_CALL) {
            let names: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let target = format!(
                "{CARDS}?action=removeMulti{}",
                list_query("CardNoList", &names)
            );
            self.expect_ok(&target)?;
        }
        Ok(())
    }

    /// A GET that must answer `OK` (removals: safe to repeat).
    fn expect_ok(&self, target: &str) -> Result<(), DeviceError> {
        match self.get(target)? {
            Reply::Ok(_) => Ok(()),
            Reply::BadRequest => Err(DeviceError::Rejected {
                status: 400,
                message: format!("Bad Request: the device refused {target}"),
            }),
        }
    }

    /// What the device holds for these UserIDs (cards included for `with_cards`),
    /// from the records that name them.
    fn held(&self, ids: &[&str], with_cards: bool) -> Result<HashMap<String, Held>, DeviceError> {
        let mut held = HashMap::new();
        for chunk in ids.chunks(MAX_PER_CALL) {
            for user in self.lookup(USERS, "UserID", chunk)? {
                if !chunk.contains(&field(&user, "UserID")) {
                    continue;
                }
                held.insert(
                    field(&user, "UserID").to_string(),
                    Held {
                        id: 0,
                        name: name_of(&user).to_string(),
                        window: HeldWindow {
                            begin: field(&user, "ValidFrom").to_string(),
                            end: field(&user, "ValidTo").to_string(),
                            enabled: None,
                        },
                        cards: Vec::new(),
                        groups: None,
                    },
                );
            }
        }
        if with_cards {
            let present: Vec<&str> = ids
                .iter()
                .copied()
                .filter(|i| held.contains_key(*i))
                .collect();
            for (user, card) in self.cards_of(&present)? {
                if let Some(h) = held.get_mut(&user) {
                    h.cards.push(card);
                }
            }
        }
        Ok(held)
    }

    /// (UserID, CardNo) of the cards with these numbers.
    fn cards_numbered(&self, numbers: &[&str]) -> Result<Vec<(String, String)>, DeviceError> {
        let mut found = Vec::new();
        for chunk in numbers.chunks(MAX_PER_CALL) {
            found.extend(
                self.lookup(CARDS, "CardNo", chunk)?
                    .iter()
                    .filter(|r| chunk.contains(&field(r, "CardNo")))
                    .map(|r| {
                        (
                            field(r, "UserID").to_string(),
                            field(r, "CardNo").to_string(),
                        )
                    }),
            );
        }
        Ok(found)
    }

    fn user_entry(person: &Person) -> Value {
        json!({
            "UserID": person.registration,
            "UserName": person.name,
            "UserType": 0,
            "Authority": 2,
            "Doors": [0],
            "TimeSections": [255],
            "ValidFrom": PROFILE.validity.encode(person.begin, false),
            "ValidTo": PROFILE.validity.encode(person.end, true),
        })
    }

    /// `insertMulti` (or `updateMulti`) of people already known to fit in one call.
    fn write_users(&self, action: &str, people: &[&Person]) -> Result<bool, DeviceError> {
        let list: Vec<Value> = people.iter().map(|p| Self::user_entry(p)).collect();
        self.post(
            &format!("{USERS}?action={action}"),
            &json!({"UserList": list}),
        )
    }

    /// Puts every person on the device (inserted, or updated when already there);
    /// one result per person. Split in halves until a refused person is alone.
    fn put_users(&self, people: &[&Person], update_first: bool) -> Vec<Result<(), DeviceError>> {
        if people.is_empty() {
            return Vec::new();
        }
        let first = if update_first {
            "updateMulti"
        } else {
            "insertMulti"
        };
        let refused = match self.write_users(first, people) {
            Ok(true) => return vec![Ok(()); people.len()],
            Ok(false) => true,
            // Lost, not refused: the same call again may well pass.
            Err(e) if e.write_may_have_landed() => false,
            Err(e) => return vec![Err(e); people.len()],
        };
        // Refused or lost: see who is there now, update those, insert the rest.
        let ids: Vec<&str> = people.iter().map(|p| p.registration.as_str()).collect();
        let present: HashSet<String> = match self.held(&ids, false) {
            Ok(held) => held.into_keys().collect(),
            Err(e) => return vec![Err(e); people.len()],
        };
        let (there, missing): (Vec<usize>, Vec<usize>) =
            (0..people.len()).partition(|&i| present.contains(&people[i].registration));
        let mut results: Vec<Result<(), DeviceError>> = vec![Ok(()); people.len()];
        let mut redo = |indices: &[usize], update: bool| {
            if indices.is_empty() {
                return;
            }
            let sub: Vec<&Person> = indices.iter().map(|&i| people[i]).collect();
            let outcome = if refused && sub.len() == people.len() && update == update_first {
                // The same call again would fail the same way: split it.
                self.split(&sub, update)
            } else {
                self.put_users(&sub, update)
            };
            for (&i, r) in indices.iter().zip(outcome) {
                results[i] = r;
            }
        };
        redo(&there, true);
        redo(&missing, false);
        results
    }

    fn split(&self, people: &[&Person], update: bool) -> Vec<Result<(), DeviceError>> {
        if people.len() == 1 {
            let action = if update { "updateMulti" } else { "insertMulti" };
            return vec![Err(DeviceError::Rejected {
                status: 400,
                message: format!(
                    "Bad Request: the device refused {action} of registration {} and does not say why",
                    people[0].registration
                ),
            })];
        }
        let (left, right) = people.split_at(people.len() / 2);
        let mut out = self.put_users(left, update);
        out.extend(self.put_users(right, update));
        out
    }

    /// Gives each (UserID, CardNo) its card, removing the user's other cards first for
    /// `replace`; one result per pair.
    fn put_cards(
        &self,
        wanted: &[(&str, String)],
        replace: &[&str],
    ) -> Vec<Result<(), DeviceError>> {
        if wanted.is_empty() {
            return Vec::new();
        }
        let mut kept: std::collections::HashSet<String> = std::collections::HashSet::new();
        if !replace.is_empty() {
            let desired: HashMap<&str, &str> =
                wanted.iter().map(|(u, c)| (*u, c.as_str())).collect();
            let mut stale = Vec::new();
            match self.cards_of(replace) {
                Ok(cards) => {
                    for (user, card) in cards {
                        let wanted = desired.get(user.as_str());
                        if wanted.is_some_and(|w| self.cards.same(&card, w)) {
                            // Held already, written another way (`2b0bc4`).
                            kept.insert(user);
                        } else {
                            stale.push(card);
                        }
                    }
                }
                Err(e) => return vec![Err(e); wanted.len()],
            }
            // A stale card the device refuses to remove must not stay beside the new one.
            if let Err(e) = self.remove_card_numbers(&stale) {
                return vec![Err(e); wanted.len()];
            }
        }
        let to_insert: Vec<(&str, String)> = wanted
            .iter()
            .filter(|(u, _)| !kept.contains(*u))
            .cloned()
            .collect();
        let mut inserted = Vec::with_capacity(to_insert.len());
        for chunk in to_insert.chunks(MAX_PER_CALL) {
            inserted.extend(self.insert_cards(chunk));
        }
        let mut inserted = inserted.into_iter();
        wanted
            .iter()
            .map(|(u, _)| {
                if kept.contains(*u) {
                    Ok(())
                } else {
                    inserted.next().expect("one result per card inserted")
                }
            })
            .collect()
    }

    fn insert_cards(&self, cards: &[(&str, String)]) -> Vec<Result<(), DeviceError>> {
        if cards.is_empty() {
            return Vec::new();
        }
        let list: Vec<Value> = cards
            .iter()
            .map(|(user, card)| json!({"UserID": user, "CardNo": card, "CardType": 0, "CardStatus": 0}))
            .collect();
        match self.post(
            &format!("{CARDS}?action=insertMulti"),
            &json!({"CardList": list}),
        ) {
            Ok(true) => return vec![Ok(()); cards.len()],
            Ok(false) => {}
            Err(e) if e.write_may_have_landed() => {}
            Err(e) => return vec![Err(e); cards.len()],
        }
        // Who holds these numbers now? Ours: done. Another's: a conflict. Nobody's: retry.
        let numbers: Vec<&str> = cards.iter().map(|(_, c)| c.as_str()).collect();
        let canonical = |c: &str| crate::card::canonical(self.cards.format, c);
        let owners: HashMap<String, String> = match self.cards_numbered(&numbers) {
            Ok(found) => found.into_iter().map(|(u, c)| (canonical(&c), u)).collect(),
            Err(e) => return vec![Err(e); cards.len()],
        };
        let mut results: Vec<Result<(), DeviceError>> = Vec::with_capacity(cards.len());
        let mut missing = Vec::new();
        for (i, (user, card)) in cards.iter().enumerate() {
            match owners.get(&canonical(card)) {
                Some(owner) if owner == user => results.push(Ok(())),
                Some(owner) => results.push(Err(DeviceError::CardTaken(format!(
                    "UserID {user} wants card {card}, which already belongs to UserID {owner} on this device: remove it there or fix the CSV"
                )))),
                None => {
                    results.push(Ok(()));
                    missing.push(i);
                }
            }
        }
        if missing.len() == cards.len() && cards.len() == 1 {
            // Free now but refused a moment ago: another job may have just removed it
            // from its old owner (a card moving between people). One more try says.
            let again = json!({"CardList": [
                {"UserID": cards[0].0, "CardNo": cards[0].1, "CardType": 0, "CardStatus": 0}
            ]});
            match self.post(&format!("{CARDS}?action=insertMulti"), &again) {
                Ok(true) => return vec![Ok(())],
                // The retry's answer was lost in turn: the device says whether it landed.
                Err(e) if e.write_may_have_landed() => {
                    let landed = self.cards_numbered(&numbers).map(|found| {
                        found
                            .iter()
                            .any(|(u, c)| u == cards[0].0 && *c == cards[0].1)
                    });
                    match landed {
                        Ok(true) => return vec![Ok(())],
                        Ok(false) => return vec![Err(e)],
                        Err(read) => return vec![Err(read)],
                    }
                }
                _ => {}
            }
            return vec![Err(DeviceError::Rejected {
                status: 400,
                message: format!("Bad Request: the device refused card {}", cards[0].1),
            })];
        }
        let retry: Vec<(&str, String)> = missing.iter().map(|&i| cards[i].clone()).collect();
        let outcome: Vec<Result<(), DeviceError>> = if missing.len() == cards.len() {
            let (left, right) = retry.split_at(retry.len() / 2);
            let mut out = self.insert_cards(left);
            out.extend(self.insert_cards(right));
            out
        } else {
            self.insert_cards(&retry)
        };
        for (&i, r) in missing.iter().zip(outcome) {
            results[i] = r;
        }
        results
    }
}

fn is_user_id(registration: &str) -> bool {
    !registration.is_empty() && registration.bytes().all(|b| b.is_ascii_digit())
}

impl IntelbrasDevice {
    /// How this device compares what it holds with the CSV: whole names, both ends of
    /// the window always, cards through its rule.
    fn diff_rules(&self) -> DiffRules {
        DiffRules {
            cards: self.cards,
            validity: PROFILE.validity,
            name_max: None,
        }
    }

    /// Fails every written pair the device does not hold as written (it answered OK
    /// and ignored the write, as an SS 5531 does with an update clearing `CardNo`).
    fn read_back(&self, work: &[(&Person, Plan)], failed: &mut [Option<DeviceError>]) {
        let written: Vec<usize> = (0..work.len())
            .filter(|&i| failed[i].is_none() && is_user_id(&work[i].0.registration))
            .filter(|&i| matches!(work[i].1, Plan::Create | Plan::Update { .. }))
            .collect();
        let rules = self.diff_rules();
        for chunk in written.chunks(MAX_PER_CALL) {
            let ids: Vec<&str> = chunk
                .iter()
                .map(|&i| work[i].0.registration.as_str())
                .collect();
            // A created card is managed too (`card_is_managed` holds for any card).
            let with_cards = chunk.iter().any(|&i| work[i].0.card_is_managed());
            let held = match self.held(&ids, with_cards) {
                Ok(held) => held,
                Err(e) => {
                    for &i in chunk {
                        failed[i] = Some(e.clone());
                    }
                    continue;
                }
            };
            for &i in chunk {
                let person = work[i].0;
                // The first field the device does not hold as written, by the plan diff.
                let differs = match held.get(&person.registration) {
                    None => Some("the person"),
                    Some(h) => {
                        plan_diff::changes(person, h, &rules)
                            .first()
                            .map(|field| match *field {
                                "name" => "the name",
                                "validity" => "the validity",
                                "card" => "the card",
                                _ => "the group",
                            })
                    }
                };
                if let Some(what) = differs {
                    failed[i] = Some(DeviceError::Rejected {
                        status: 200,
                        message: format!(
                            "the device answered OK but, read back, does not hold {what} written for UserID {}: it ignored the write",
                            person.registration
                        ),
                    });
                }
            }
        }
    }
}

impl Device for IntelbrasDevice {
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
        self.client.http()
    }

    fn plan(&self, people: &[&Person]) -> Result<Vec<Plan>, DeviceError> {
        let ids: Vec<&str> = people
            .iter()
            .map(|p| p.registration.as_str())
            .filter(|r| is_user_id(r))
            .collect();
        let held = self.held(&ids, people.iter().any(|p| p.card_is_managed()))?;
        let rules = self.diff_rules();
        // The device tells no version of the face it holds: a person planned at all
        // (the cache did not vouch for the pair) gets the photo again (see photos.rs).
        let photos = people.iter().any(|p| p.photo.is_some()) && self.takes_faces()?;
        Ok(people
            .iter()
            .map(|person| {
                let copies = held.get(&person.registration).map(std::slice::from_ref);
                let plan = plan_diff::plan(person, copies.unwrap_or(&[]), &rules);
                match plan {
                    Plan::Unchanged { id } if photos && person.photo.is_some() => Plan::Update {
                        id,
                        changes: vec!["photo"],
                    },
                    Plan::Update { id, mut changes } if photos && person.photo.is_some() => {
                        changes.push("photo");
                        Plan::Update { id, changes }
                    }
                    other => other,
                }
            })
            .collect())
    }

    /// 3.x: `startFind` / `doFind` pages / `stopFind`. 2.x: `action=list` without a
    /// filter, which has no paging, so the whole list comes in one answer.
    fn learned(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Ok(Reply::Ok(body)) = self.get(SOFTWARE_VERSION) {
            let text = String::from_utf8_lossy(&body);
            if let Some(version) = text.lines().find_map(|l| l.trim().strip_prefix("version=")) {
                lines.push(format!("software version {version}"));
            }
        }
        match self.generation() {
            Ok(generation) => lines.push(format!("firmware generation {}", generation.label())),
            Err(e) => lines.push(format!("firmware generation not probed: {e}")),
        }
        lines.push(self.client.nonce_facts().describe());
        lines
    }

    fn takes_faces(&self) -> Result<bool, DeviceError> {
        self.faces.takes(|| self.ask_faces())
    }

    fn people(&self) -> Result<Vec<DevicePerson>, DeviceError> {
        let found = match self.generation()? {
            Generation::V3 => self.find(USERS, None)?,
            Generation::V2 => match self.get(&format!("{USERS}?action=list"))? {
                Reply::Ok(body) => records(&body),
                Reply::BadRequest => {
                    return Err(DeviceError::Rejected {
                        status: 400,
                        message: "Bad Request listing every user (action=list)".into(),
                    })
                }
            },
        };
        let mut seen = HashSet::new();
        Ok(found
            .iter()
            .map(|u| field(u, "UserID"))
            .filter(|id| !id.is_empty() && seen.insert(id.to_string()))
            .map(|id| DevicePerson {
                registration: id.to_string(),
                id: 0,
            })
            .collect())
    }

    fn remove(&self, people: &[&DevicePerson]) -> Vec<Result<(), DeviceError>> {
        let ids: Vec<&str> = people.iter().map(|p| p.registration.as_str()).collect();
        let removed = (|| {
            for chunk in ids.chunks(MAX_PER_CALL) {
                // Faces and cards first, then the users: nothing is left behind
                // whatever the firmware does with a removed user's face and cards.
                if self.takes_faces()? {
                    self.remove_faces(chunk)?;
                }
                self.drop_cards(chunk)?;
                let target = format!(
                    "{USERS}?action=removeMulti{}",
                    list_query("UserIDList", chunk)
                );
                self.expect_ok(&target)?;
            }
            Ok(())
        })();
        vec![removed; people.len()]
    }

    fn apply(&self, work: &[(&Person, Plan)]) -> Vec<Outcome> {
        let mut failed: Vec<Option<DeviceError>> = vec![None; work.len()];
        for (i, (person, _)) in work.iter().enumerate() {
            if !is_user_id(&person.registration) {
                failed[i] = Some(DeviceError::Rejected {
                    status: 400,
                    message: format!(
                        "registration {:?} is not a number: Intelbras devices take numeric UserIDs only",
                        person.registration
                    ),
                });
            } else if let Some(Err(e)) = person
                .card
                .map(|c| card_string(&self.cards, &self.endpoint.name, c))
            {
                failed[i] = Some(e);
            }
        }
        // 1. People: missing ones inserted, changed ones updated, `MAX_PER_CALL` a call.
        for update in [false, true] {
            let indices: Vec<usize> = (0..work.len())
                .filter(|&i| failed[i].is_none())
                .filter(|&i| match &work[i].1 {
                    Plan::Create => !update,
                    Plan::Update { changes, .. } => {
                        update && changes.iter().any(|c| *c == "name" || *c == "validity")
                    }
                    _ => false,
                })
                .collect();
            for chunk in indices.chunks(MAX_PER_CALL) {
                let people: Vec<&Person> = chunk.iter().map(|&i| work[i].0).collect();
                for (&i, result) in chunk.iter().zip(self.put_users(&people, update)) {
                    if let Err(e) = result {
                        failed[i] = Some(e);
                    }
                }
            }
        }
        // 2. Cards taken away in the CSV go first: a card moving to another person of
        //    this batch is then free for them.
        let losing: Vec<usize> = (0..work.len())
            .filter(|&i| {
                failed[i].is_none()
                    && work[i].0.card.is_none()
                    && matches!(&work[i].1, Plan::Update { changes, .. } if changes.contains(&"card"))
            })
            .collect();
        for chunk in losing.chunks(MAX_PER_CALL) {
            let ids: Vec<&str> = chunk
                .iter()
                .map(|&i| work[i].0.registration.as_str())
                .collect();
            if let Err(e) = self.drop_cards(&ids) {
                for &i in chunk {
                    failed[i] = Some(e.clone());
                }
            }
        }
        // 3. Cards, for people created or whose card changed.
        let mut card_work = Vec::new();
        let mut replace = Vec::new();
        for (i, (person, plan)) in work.iter().enumerate() {
            let (needed, replacing) = match plan {
                Plan::Create => (true, false),
                Plan::Update { changes, .. } => (changes.contains(&"card"), true),
                _ => (false, false),
            };
            if needed && failed[i].is_none() && person.card.is_some() {
                card_work.push(i);
                if replacing {
                    replace.push(person.registration.as_str());
                }
            }
        }
        let wanted: Vec<(&str, String)> = card_work
            .iter()
            .map(|&i| {
                let person = work[i].0;
                let card = person.card.expect("only people with a card");
                let text = self
                    .cards
                    .write(card)
                    .expect("checked before anything was sent");
                (person.registration.as_str(), text)
            })
            .collect();
        for (&i, result) in card_work.iter().zip(self.put_cards(&wanted, &replace)) {
            if let Err(e) = result {
                failed[i] = Some(e);
            }
        }
        // 4. Photos, once the user and its card are there: new faces for people
        //    created, replaced ones for people whose photo was planned.
        let photo_work: Vec<usize> = (0..work.len())
            .filter(|&i| failed[i].is_none() && work[i].0.photo.is_some())
            .filter(|&i| match &work[i].1 {
                Plan::Create => true,
                Plan::Update { changes, .. } => changes.contains(&"photo"),
                _ => false,
            })
            .collect();
        if !photo_work.is_empty() {
            match self.takes_faces() {
                Ok(false) => {}
                Err(e) => {
                    for &i in &photo_work {
                        failed[i] = Some(e.clone());
                    }
                }
                Ok(true) => {
                    let items: Vec<(&Person, bool)> = photo_work
                        .iter()
                        .map(|&i| (work[i].0, work[i].1 != Plan::Create))
                        .collect();
                    for (&i, result) in photo_work.iter().zip(self.put_photos(&items)) {
                        if let Err(e) = result {
                            failed[i] = Some(e);
                        }
                    }
                }
            }
        }
        // 5. Read back: a 200 proves nothing on this family.
        self.read_back(work, &mut failed);
        work.iter()
            .zip(failed)
            .map(|((_, plan), failure)| Outcome::of_write(plan, failure))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
            retry_after: None,
            date: None,
            challenge: None,
        }
    }

    #[test]
    fn plain_text_errors_are_read() {
        assert!(matches!(classify(answer(200, "OK\r\n")), Ok(Reply::Ok(_))));
        assert!(matches!(
            classify(answer(400, "Error\r\nBad Request!\r\n")),
            Ok(Reply::BadRequest)
        ));
        let e = classify(answer(200, "Error\r\nInvalid Authority!\r\n"))
            .err()
            .unwrap();
        assert!(matches!(e, DeviceError::LoginRefused { .. }), "{e}");
        let e = classify(answer(501, "Error\r\nNot Implemented!"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("Not Implemented"), "{e}");
        assert!(classify(answer(503, "")).err().unwrap().is_transient());
    }

    #[test]
    fn list_queries_send_brackets_raw_and_escape_values() {
        assert_eq!(
            list_query("UserIDList", &["1001", "1 2"]),
            "&UserIDList[0]=1001&UserIDList[1]=1%202"
        );
    }
}
