//! The Hikvision ISAPI driver (DS-K1T terminals, DS-K2 controllers), as described in
//! `docs/hikvision-intelbras-api.md`: HTTP Digest on every request, ONE person per
//! create, `employeeNo` as the unique key.
//!
//! Idempotence comes from the device itself: `employeeNo` is unique there, so a create
//! that is repeated (after a lost answer, or because another run got there first) is
//! answered `employeeNoAlreadyExist` and turns into a `Modify`. That makes every call of
//! this driver safe to repeat, and a transient failure (timeout, reset, `Device Busy`
//! = statusCode 2) is simply retried with backoff. Cards are written after the person,
//! as the device requires; a card is a key of its own (`cardNo`), so changing a
//! person's card deletes the old number and records the new one. `userExceedLimit`
//! means the device is full: the driver remembers it and fails every later pair at
//! once instead of sending more people to a device that cannot take them.
//!
//! Limits differ by model, so they are read from the device once
//! (`hikvision_firmware.rs`): each person is checked before sending (a registration
//! the device cannot take fails that pair, naming the limit), a name too long is cut
//! at a character boundary and counted (or refused, with `long_names = "fail"`), and
//! the plan compares the cut name, so it is not rewritten on every run. Searches and
//! deletions go in lists of the device's size; people are deleted with
//! `UserInfoDetail/Delete` + `DeleteProcess` where the device has them, else with the
//! legacy `UserInfo/Delete`.

use super::digest::DigestClient;
use super::hikvision_firmware::{self, Limits, LongNames};
use super::http::{Answer, HttpClient};
use super::plan_diff::{self, cut_name, DiffRules, Held, HeldWindow};
use super::{
    card_string, CardRule, Credentials, Device, DeviceError, DeviceInfo, DevicePerson, Outcome,
    Plan, Profile, RetryPolicy, ValidityEncoding,
};
use crate::person::Person;
use crate::vendor::Kind;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// What Hikvision does differently.
pub static PROFILE: Profile = Profile {
    kind: Kind::Hikvision,
    max_batch: 1,

    validity: ValidityEncoding::LocalIso,
};

/// A cheap read where Digest challenges are fetched (see `DigestClient::with_challenge_target`).
const DEVICE_INFO: &str = "/ISAPI/System/deviceInfo";

/// employeeNos per search when the device has not told (see `hikvision_firmware.rs`).
const SEARCH_PAGE: usize = hikvision_firmware::DEFAULT_LIST_SIZE;

/// How often a deletion's progress is polled (every 0.2 s) before giving up on it.
const DELETE_POLLS: usize = 150;

const JSON: &str = "application/json";

mod photos;

/// What the device answered, once transport trouble and busy/full are set apart.
enum Reply {
    Ok(Value),
    /// A refusal with the device's reason (`subStatusCode`).
    Refused {
        status: u16,
        sub: String,
        message: String,
    },
}

impl Reply {
    fn refused_as(sub: &str, candidates: &[&str]) -> bool {
        candidates.iter().any(|c| sub.eq_ignore_ascii_case(c))
    }

    /// The payload, or the refusal as a final error.
    fn into_value(self) -> Result<Value, DeviceError> {
        match self {
            Reply::Ok(v) => Ok(v),
            Reply::Refused {
                status, message, ..
            } => Err(DeviceError::Rejected { status, message }),
        }
    }
}

/// Reads an ISAPI answer: `{"statusCode":N,"statusString":..,"subStatusCode":..,"errorMsg":..}`.
fn classify(answer: Answer) -> Result<Reply, DeviceError> {
    let parsed: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let field = |name: &str| -> String {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_default()
    };
    let status_code = parsed
        .as_ref()
        .and_then(|v| v.get("statusCode"))
        .and_then(Value::as_i64);
    let sub = field("subStatusCode");
    if status_code == Some(2) {
        return Err(DeviceError::Busy {
            status: answer.status,
            retry_after: answer.retry_after,
        });
    }
    if sub.eq_ignore_ascii_case("userExceedLimit") {
        return Err(DeviceError::DeviceFull(format!(
            "the device answered {} (userExceedLimit)",
            answer.status
        )));
    }
    match (answer.status, status_code) {
        (200..=299, None | Some(1)) => match parsed {
            Some(v) => Ok(Reply::Ok(v)),
            None if answer.body.iter().all(u8::is_ascii_whitespace) => Ok(Reply::Ok(Value::Null)),
            None => Err(DeviceError::InvalidAnswer("the answer is not JSON".into())),
        },
        (429 | 500..=599, None) => Err(DeviceError::Busy {
            status: answer.status,
            retry_after: answer.retry_after,
        }),
        (status, _) => {
            let detail = [field("statusString"), sub.clone(), field("errorMsg")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            let detail = if detail.is_empty() {
                format!("HTTP {status}")
            } else {
                detail
            };
            Ok(Reply::Refused {
                status,
                message: match hikvision_firmware::reason(&sub) {
                    Some(reason) => format!("{reason} ({detail})"),
                    None => detail,
                },
                sub,
            })
        }
    }
}

/// A Hikvision ISAPI device.
pub struct HikvisionDevice {
    endpoint: DeviceInfo,
    /// Face photos: whether the device takes them, the run's fitter, the counts.
    faces: super::faces::Faces,
    client: DigestClient,
    /// Set when the device said it is full: every later pair fails with it.
    full: Mutex<Option<DeviceError>>,
    searches: AtomicU64,
    cards: CardRule,
    limits: OnceLock<Limits>,
    long_names: LongNames,
    /// Registrations whose name this run cut.
    truncated: Mutex<HashSet<String>>,
    /// The device refused a non-digit `employeeNo` (`badJsonContent`, `employeeNo`).
    digits_only_seen: AtomicBool,
    /// `FDLib/capabilities`, read once: `None` for a terminal without faces.
    face_library: OnceLock<Option<photos::FaceLibrary>>,
    /// Held while a face is uploaded: one at a time per terminal.
    uploading: Mutex<()>,
    /// Set when the face library said it is full: later photos fail with it.
    faces_full: OnceLock<String>,
}

impl HikvisionDevice {
    pub fn new(
        name: &str,
        url: &str,
        credentials: Credentials,
        http: HttpClient,
        retry: RetryPolicy,
    ) -> HikvisionDevice {
        let endpoint = DeviceInfo::new(name, url, Kind::Hikvision);
        HikvisionDevice {
            client: DigestClient::new(name, &endpoint.url, credentials, http, retry)
                .with_challenge_target(DEVICE_INFO),
            endpoint,
            full: Mutex::new(None),
            searches: AtomicU64::new(0),
            limits: OnceLock::new(),
            long_names: LongNames::Cut,
            truncated: Mutex::new(HashSet::new()),
            digits_only_seen: AtomicBool::new(false),
            cards: CardRule::vendor_default(crate::vendor::Kind::Hikvision),
            faces: Default::default(),
            face_library: OnceLock::new(),
            uploading: Mutex::new(()),
            faces_full: OnceLock::new(),
        }
    }

    /// Sends photos as `faces` says (the run's fitter, the devices file's `faces`).
    pub fn with_faces(mut self, faces: super::faces::Faces) -> HikvisionDevice {
        self.faces = faces;
        self
    }

    /// Writes cards as `cards` says (`card_format`, `card_pad`) instead of the default.
    pub fn with_cards(mut self, cards: CardRule) -> HikvisionDevice {
        self.cards = cards;
        self
    }

    /// `catraca learn-card`: one poll of `CaptureCardInfo`, which puts the terminal in
    /// capture mode; the card number once a card was read, `None` while it waits (some
    /// firmware answer `deviceError` meanwhile).
    pub fn capture_card(&self) -> Result<Option<String>, DeviceError> {
        match self.call(
            "GET",
            "/ISAPI/AccessControl/CaptureCardInfo?format=json",
            None,
        )? {
            Reply::Ok(found) => Ok(found["CardInfo"]["cardNo"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_string)),
            Reply::Refused { sub, .. } if Reply::refused_as(&sub, &["deviceError"]) => Ok(None),
            refused => refused.into_value().map(|_| None),
        }
    }

    /// What to do with names longer than the device takes (`long_names`).
    pub fn with_long_names(mut self, long_names: LongNames) -> HikvisionDevice {
        self.long_names = long_names;
        self
    }

    /// The device's limits, read once from its capabilities (fallbacks where it does
    /// not answer them).
    pub fn limits(&self) -> Result<Limits, DeviceError> {
        if let Some(known) = self.limits.get() {
            return Ok(*known);
        }
        let read = |path: &str| -> Result<Option<Vec<u8>>, DeviceError> {
            self.client
                .send_idempotent("GET", &format!("{path}?format=json"), None, |a| {
                    match a.status {
                        200 => Ok(Some(a.body)),
                        429 | 500..=599 => classify(a).map(|_| None),
                        _ => Ok(None),
                    }
                })
        };
        let user_info = read("/ISAPI/AccessControl/UserInfo/capabilities")?;
        let access = read("/ISAPI/AccessControl/capabilities")?;
        let limits = Limits::read(user_info.as_deref(), access.as_deref());
        log::debug!("{}: limits {limits:?}", self.endpoint.name);
        Ok(*self.limits.get_or_init(|| limits))
    }

    /// The name as this device will hold it: cut to its limit (or refused, with
    /// `long_names = "fail"`).
    fn fitted_name<'a>(&self, person: &'a Person, limits: &Limits) -> Result<&'a str, DeviceError> {
        let cut = cut_name(&person.name, limits.name_max);
        if cut.len() < person.name.len() && self.long_names == LongNames::Fail {
            return Err(DeviceError::DoesNotFit(format!(
                "the name of registration {} has {} bytes; this device takes at most {} (name, from its capabilities; long_names = \"fail\")",
                person.registration,
                person.name.len(),
                limits.name_max
            )));
        }
        Ok(cut)
    }

    /// Signs at most `uses` requests with one Digest nonce (`nonce_uses` in the
    /// devices file; default [`DEFAULT_NONCE_USES`](super::digest::DEFAULT_NONCE_USES)).
    pub fn with_nonce_uses(mut self, uses: u32) -> HikvisionDevice {
        self.client.set_nonce_uses(uses);
        self
    }

    fn check_full(&self) -> Result<(), DeviceError> {
        match &*self.full.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(full) => Err(full.clone()),
            None => Ok(()),
        }
    }

    /// One ISAPI call, retried while transient (every call here is safe to repeat).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, DeviceError> {
        let text = body.map(Value::to_string);
        let target = format!("{path}?format=json");
        let result = self.client.send_idempotent(
            method,
            &target,
            text.as_deref().map(|t| (JSON, t.as_bytes())),
            classify,
        );
        if let Err(full @ DeviceError::DeviceFull(_)) = &result {
            log::warn!("{}: {full}; nothing more is sent to it", self.endpoint.name);
            *self.full.lock().unwrap_or_else(|e| e.into_inner()) = Some(full.clone());
        }
        result
    }

    fn search_id(&self) -> String {
        format!("catraca-{}", self.searches.fetch_add(1, Ordering::Relaxed))
    }

    /// Pages through `/<what>/Search` for the given employeeNos; returns every row.
    fn search(
        &self,
        what: &str,
        cond: &str,
        result: &str,
        list: &str,
        employees: &[&str],
    ) -> Result<Vec<Value>, DeviceError> {
        let limits = self.limits()?;
        let mut rows = Vec::new();
        for chunk in employees.chunks(limits.list_size.min(limits.search_page)) {
            let id = self.search_id();
            let mut position = 0;
            loop {
                let body = json!({cond: {
                    "searchID": id,
                    "searchResultPosition": position,
                    "maxResults": limits.search_page,
                    "EmployeeNoList": chunk.iter().map(|e| json!({"employeeNo": e})).collect::<Vec<_>>(),
                }});
                let answer = self
                    .call(
                        "POST",
                        &format!("/ISAPI/AccessControl/{what}/Search"),
                        Some(&body),
                    )?
                    .into_value()?;
                let found = answer.get(result).ok_or_else(|| {
                    DeviceError::InvalidAnswer(format!("{what} search: no {result}"))
                })?;
                let page = found
                    .get(list)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                position += page.len();
                rows.extend(page.clone());
                let more = found.get("responseStatusStrg").and_then(Value::as_str) == Some("MORE");
                if !more || page.is_empty() {
                    break;
                }
            }
        }
        Ok(rows)
    }

    fn held(
        &self,
        people: &[&str],
        with_cards: &[&str],
    ) -> Result<HashMap<String, Held>, DeviceError> {
        let mut held: HashMap<String, Held> = HashMap::new();
        for user in self.search(
            "UserInfo",
            "UserInfoSearchCond",
            "UserInfoSearch",
            "UserInfo",
            people,
        )? {
            let text =
                |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let valid = user.get("Valid").cloned().unwrap_or(Value::Null);
            held.insert(
                text(&user, "employeeNo"),
                Held {
                    id: 0,
                    name: text(&user, "name"),
                    window: HeldWindow {
                        begin: text(&valid, "beginTime"),
                        end: text(&valid, "endTime"),
                        enabled: Some(
                            valid
                                .get("enable")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                        ),
                    },
                    cards: Vec::new(),
                    groups: None,
                },
            );
        }
        let with_cards: Vec<&str> = with_cards
            .iter()
            .copied()
            .filter(|e| held.contains_key(*e))
            .collect();
        if !with_cards.is_empty() {
            for card in self.search(
                "CardInfo",
                "CardInfoSearchCond",
                "CardInfoSearch",
                "CardInfo",
                &with_cards,
            )? {
                let employee = card.get("employeeNo").and_then(Value::as_str).unwrap_or("");
                let number = card.get("cardNo").and_then(Value::as_str).unwrap_or("");
                if let Some(h) = held.get_mut(employee) {
                    h.cards.push(number.to_string());
                }
            }
        }
        Ok(held)
    }

    fn user_info(person: &Person, name: &str) -> Value {
        // `Valid` is disabled when the CSV gives no window.
        let valid = HeldWindow::written(person, PROFILE.validity, true);
        json!({"UserInfo": {
            "employeeNo": person.registration,
            "name": name,
            "userType": "normal",
            "Valid": {"enable": valid.enabled, "beginTime": valid.begin, "endTime": valid.end, "timeType": "local"},
            "doorRight": "1",
            "RightPlan": [{"doorNo": 1, "planTemplateNo": "1"}],
        }})
    }

    /// Creates the person; one that is already there is modified instead.
    fn create(&self, person: &Person, name: &str) -> Result<(), DeviceError> {
        let body = Self::user_info(person, name);
        match self.call("POST", "/ISAPI/AccessControl/UserInfo/Record", Some(&body))? {
            Reply::Ok(_) => Ok(()),
            Reply::Refused { sub, .. }
                if Reply::refused_as(
                    &sub,
                    &["employeeNoAlreadyExist", "deviceUserAlreadyExist"],
                ) =>
            {
                log::debug!(
                    "{}: {} already there, modifying",
                    self.endpoint.name,
                    person.registration
                );
                self.modify(person, name)
            }
            Reply::Refused { sub, message, .. }
                if sub.eq_ignore_ascii_case("badJsonContent")
                    && message.contains("employeeNo")
                    && !person.registration.bytes().all(|b| b.is_ascii_digit()) =>
            {
                // Some terminals take digits only and say so only this way
                // (field-evidence.md, 3.2): remembered, so the next ones are not sent.
                self.digits_only_seen.store(true, Ordering::Relaxed);
                Err(DeviceError::DoesNotFit(format!(
                    "registration {:?} is not all digits; this device takes digits only (it refused employeeNo: {message})",
                    person.registration
                )))
            }
            refused => refused.into_value().map(drop),
        }
    }

    /// Why this registration cannot go on the device: its reported limits, or a
    /// digits-only refusal seen earlier in the run.
    fn refuse_employee(&self, limits: &Limits, employee: &str) -> Option<String> {
        limits.refuse_employee(employee).or_else(|| {
            (self.digits_only_seen.load(Ordering::Relaxed)
                && !employee.bytes().all(|b| b.is_ascii_digit()))
            .then(|| {
                format!(
                    "registration {employee:?} is not all digits; this device takes digits only (it refused another such employeeNo in this run)"
                )
            })
        })
    }

    /// Modifies the person; one that is gone is created instead.
    fn modify(&self, person: &Person, name: &str) -> Result<(), DeviceError> {
        let body = Self::user_info(person, name);
        match self.call("PUT", "/ISAPI/AccessControl/UserInfo/Modify", Some(&body))? {
            Reply::Ok(_) => Ok(()),
            Reply::Refused { sub, .. } if Reply::refused_as(&sub, &["employeeNoNotExist"]) => {
                match self.call("POST", "/ISAPI/AccessControl/UserInfo/Record", Some(&body))? {
                    Reply::Ok(_) => Ok(()),
                    refused => refused.into_value().map(drop),
                }
            }
            refused => refused.into_value().map(drop),
        }
    }

    /// Deletes every card the person holds (the CSV took their card away).
    fn drop_cards(&self, person: &Person) -> Result<(), DeviceError> {
        let employee = person.registration.as_str();
        let held = self.held(&[employee], &[employee])?;
        let cards: Vec<Value> = held
            .get(employee)
            .map(|h| h.cards.iter().map(|c| json!({"cardNo": c})).collect())
            .unwrap_or_default();
        if !cards.is_empty() {
            let body = json!({"CardInfoDelCond": {"CardNoList": cards}});
            self.call("PUT", "/ISAPI/AccessControl/CardInfo/Delete", Some(&body))?
                .into_value()?;
        }
        Ok(())
    }

    /// Leaves the person with exactly `card`: other numbers deleted, this one recorded.
    fn put_card(&self, person: &Person, card: &str, replace: bool) -> Result<(), DeviceError> {
        let employee = person.registration.as_str();
        if replace {
            let held = self.held(&[employee], &[employee])?;
            let held = held
                .get(employee)
                .map(|h| h.cards.as_slice())
                .unwrap_or(&[]);
            let stale: Vec<Value> = held
                .iter()
                .filter(|c| !self.cards.same(c, card))
                .map(|c| json!({"cardNo": c}))
                .collect();
            if !stale.is_empty() {
                let body = json!({"CardInfoDelCond": {"CardNoList": stale}});
                self.call("PUT", "/ISAPI/AccessControl/CardInfo/Delete", Some(&body))?
                    .into_value()?;
            }
            if held.iter().any(|c| self.cards.same(c, card)) {
                // Held already, written another way (`02821060`): the same card.
                return Ok(());
            }
        }
        let body =
            json!({"CardInfo": {"employeeNo": employee, "cardNo": card, "cardType": "normalCard"}});
        match self.call("POST", "/ISAPI/AccessControl/CardInfo/Record", Some(&body))? {
            Reply::Ok(_) => Ok(()),
            Reply::Refused { sub, .. }
                if Reply::refused_as(&sub, &["cardNoAlreadyExist", "duplicateCardNo"]) =>
            {
                // Ours already (a repeated call), or another person's: the device knows.
                let body = json!({"CardInfoSearchCond": {
                    "searchID": self.search_id(), "searchResultPosition": 0, "maxResults": SEARCH_PAGE,
                    "CardNoList": [{"cardNo": card}],
                }});
                let found = self
                    .call("POST", "/ISAPI/AccessControl/CardInfo/Search", Some(&body))?
                    .into_value()?;
                let owner = found["CardInfoSearch"]["CardInfo"]
                    .as_array()
                    .and_then(|cards| cards.first())
                    .and_then(|c| c.get("employeeNo"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if owner == employee {
                    Ok(())
                } else {
                    Err(DeviceError::CardTaken(format!(
                        "employeeNo {employee} wants card {card}, which already belongs to employeeNo {owner} on this device: remove it there or fix the CSV"
                    )))
                }
            }
            refused => refused.into_value().map(drop),
        }
    }

    fn apply_one(&self, person: &Person, plan: &Plan) -> Result<Outcome, DeviceError> {
        self.check_full()?;
        let limits = self.limits()?;
        if let Some(refusal) = self.refuse_employee(&limits, &person.registration) {
            return Err(DeviceError::DoesNotFit(refusal));
        }
        let name = self.fitted_name(person, &limits)?;
        let card = person
            .card
            .map(|c| card_string(&self.cards, &self.endpoint.name, c))
            .transpose()?;
        let outcome = self.write_one(person, plan, name, card)?;
        if name.len() < person.name.len() {
            self.truncated
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(person.registration.clone());
        }
        // The face once the person exists with its card.
        let wants_photo = match plan {
            Plan::Create => true,
            Plan::Update { changes, .. } => changes.contains(&"photo"),
            _ => false,
        };
        if wants_photo && person.photo.is_some() && self.takes_faces()? {
            self.put_face(person)?;
        }
        Ok(outcome)
    }

    fn write_one(
        &self,
        person: &Person,
        plan: &Plan,
        name: &str,
        card: Option<String>,
    ) -> Result<Outcome, DeviceError> {
        match plan {
            Plan::Create => {
                self.create(person, name)?;
                if let Some(card) = &card {
                    self.put_card(person, card, false)?;
                }
                Ok(Outcome::Registered)
            }
            Plan::Update { changes, .. } => {
                if changes.iter().any(|c| *c == "name" || *c == "validity") {
                    self.modify(person, name)?;
                }
                match (changes.contains(&"card"), &card) {
                    (true, Some(card)) => self.put_card(person, card, true)?,
                    (true, None) => self.drop_cards(person)?,
                    _ => {}
                }
                Ok(Outcome::Updated)
            }
            Plan::Unchanged { .. } => Ok(Outcome::Unchanged),
            Plan::Ambiguous { .. } => Err(DeviceError::Internal(
                "a Hikvision device cannot hold an employeeNo twice".into(),
            )),
        }
    }
}

impl HikvisionDevice {
    /// `UserInfoDetail/Delete`, then `DeleteProcess` polled to its end; `None` when the
    /// firmware does not have the call (404 or `notSupport`).
    fn delete_detail(
        &self,
        list: &[Value],
    ) -> Result<Option<Result<(), DeviceError>>, DeviceError> {
        let body = json!({"UserInfoDetail": {"mode": "byEmployeeNo", "EmployeeNoList": list}});
        match self.call(
            "PUT",
            "/ISAPI/AccessControl/UserInfoDetail/Delete",
            Some(&body),
        )? {
            Reply::Ok(_) => {}
            Reply::Refused { status, sub, .. }
                if status == 404 || sub.eq_ignore_ascii_case("notSupport") =>
            {
                return Ok(None)
            }
            refused => return Ok(Some(refused.into_value().map(drop))),
        }
        for _ in 0..DELETE_POLLS {
            let answer = self
                .call(
                    "GET",
                    "/ISAPI/AccessControl/UserInfoDetail/DeleteProcess",
                    None,
                )?
                .into_value()?;
            match answer["UserInfoDetailDeleteProcess"]["status"].as_str() {
                Some("success") => return Ok(Some(Ok(()))),
                Some("failed") => {
                    return Ok(Some(Err(DeviceError::Rejected {
                        status: 200,
                        message: "the device says the deletion failed (DeleteProcess)".into(),
                    })))
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(200)),
            }
        }
        Ok(Some(Err(DeviceError::InvalidAnswer(
            "the deletion did not finish in time (DeleteProcess still processing)".into(),
        ))))
    }
}

impl Device for HikvisionDevice {
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
        self.check_full()?;
        let limits = self.limits()?;
        // A registration the device cannot take is not searched for (the search could
        // be refused as a whole); it is planned as a create and fails before sending.
        let fits = |p: &&&Person| self.refuse_employee(&limits, &p.registration).is_none();
        let employees: Vec<&str> = people
            .iter()
            .filter(fits)
            .map(|p| p.registration.as_str())
            .collect();
        let with_cards: Vec<&str> = people
            .iter()
            .filter(fits)
            .filter(|p| p.card_is_managed())
            .map(|p| p.registration.as_str())
            .collect();
        let held = self.held(&employees, &with_cards)?;
        let rules = DiffRules {
            cards: self.cards,
            validity: PROFILE.validity,
            // The name as the device would hold it: a cut name is not rewritten.
            name_max: match self.long_names {
                LongNames::Cut => Some(limits.name_max),
                LongNames::Fail => None,
            },
        };
        // The terminal tells no version of the face it holds: a person planned at all
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

    /// One delete list of people, as the device sizes it (at most 20: bigger deletes
    /// time out on a DS-K1T323): their cards are found in one search too.
    fn max_remove_batch(&self) -> usize {
        // Asked before any request: limits not yet read leave the default (a cached
        // run must not contact the device), and `remove` cuts to the device's size.
        let list = self.limits.get().map_or(SEARCH_PAGE, |l| l.list_size);
        list.min(hikvision_firmware::MAX_DELETE_BATCH)
    }

    fn learned(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Ok(answer) = self.client.send_idempotent("GET", DEVICE_INFO, None, Ok) {
            let text = String::from_utf8_lossy(&answer.body);
            let element = |name: &str| {
                let open = format!("<{name}>");
                let start = text.find(&open)? + open.len();
                let end = text[start..].find('<')? + start;
                Some(text[start..end].trim().to_string())
            };
            if let (Some(model), Some(firmware)) = (element("model"), element("firmwareVersion")) {
                lines.push(format!("model {model}, firmware {firmware}"));
            }
        }
        match self.limits() {
            Ok(l) => lines.push(format!(
                "limits{}: employeeNo at most {} characters{}, name at most {} bytes, {} people, lists of {}, delete with {}",
                if l.reported { "" } else { " (not reported: documented defaults)" },
                l.employee_max,
                if l.employee_digits_only { " (digits only)" } else { "" },
                l.name_max,
                l.max_records.map_or("? ".to_string(), |n| n.to_string()),
                l.list_size,
                match l.detail_delete {
                    Some(false) => "UserInfo/Delete (legacy)",
                    Some(true) => "UserInfoDetail/Delete",
                    None => "UserInfoDetail/Delete, else UserInfo/Delete",
                }
            )),
            Err(e) => lines.push(format!("limits not read: {e}")),
        }
        lines.push(self.client.nonce_facts().describe());
        lines
    }

    fn takes_faces(&self) -> Result<bool, DeviceError> {
        self.faces.takes(|| Ok(self.face_library()?.is_some()))
    }

    fn face_facts(&self) -> String {
        match self.face_library() {
            Ok(Some(library)) => format!(
                "faces: taken ({}); face library capacity {}",
                if library.setup {
                    "FDSetUp"
                } else {
                    "no FDSetUp: FaceDataRecord, delete and add to replace"
                },
                library
                    .capacity
                    .map_or("not reported".to_string(), |c| c.to_string())
            ),
            Ok(None) => "faces: not taken (no face library)".into(),
            Err(e) => format!("faces: could not ask ({e})"),
        }
    }

    fn names_truncated(&self) -> u64 {
        self.truncated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u64
    }

    fn people(&self) -> Result<Vec<DevicePerson>, DeviceError> {
        let id = self.search_id();
        let mut people = Vec::new();
        loop {
            let body = json!({"UserInfoSearchCond": {
                "searchID": id,
                "searchResultPosition": people.len(),
                "maxResults": SEARCH_PAGE,
            }});
            let answer = self
                .call("POST", "/ISAPI/AccessControl/UserInfo/Search", Some(&body))?
                .into_value()?;
            let found = answer.get("UserInfoSearch").ok_or_else(|| {
                DeviceError::InvalidAnswer("user listing: no UserInfoSearch".into())
            })?;
            let page = found
                .get("UserInfo")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            people.extend(page.iter().map(|u| {
                DevicePerson {
                    registration: u
                        .get("employeeNo")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    id: 0,
                }
            }));
            let more = found.get("responseStatusStrg").and_then(Value::as_str) == Some("MORE");
            if !more || page.is_empty() {
                return Ok(people);
            }
        }
    }

    /// Cards by number (`CardInfo/Delete`), then the people: `UserInfoDetail/Delete`
    /// (its end polled on `DeleteProcess`) where the firmware has it, else the legacy
    /// `UserInfo/Delete`.
    fn remove(&self, people: &[&DevicePerson]) -> Vec<Result<(), DeviceError>> {
        let employees: Vec<&str> = people.iter().map(|p| p.registration.as_str()).collect();
        let removed = (|| {
            let held = self.held(&employees, &employees)?;
            let cards: Vec<Value> = held
                .values()
                .flat_map(|h| h.cards.iter().map(|c| json!({"cardNo": c})))
                .collect();
            if !cards.is_empty() {
                let body = json!({"CardInfoDelCond": {"CardNoList": cards}});
                self.call("PUT", "/ISAPI/AccessControl/CardInfo/Delete", Some(&body))?
                    .into_value()?;
            }
            let limits = self.limits()?;
            for chunk in
                employees.chunks(limits.list_size.min(hikvision_firmware::MAX_DELETE_BATCH))
            {
                let list: Vec<Value> = chunk.iter().map(|e| json!({"employeeNo": e})).collect();
                if limits.detail_delete != Some(false) {
                    match self.delete_detail(&list)? {
                        Some(done) => {
                            done?;
                            continue;
                        }
                        // Not on this firmware: the legacy call below.
                        None => {
                            log::debug!("{}: no UserInfoDetail/Delete here", self.endpoint.name)
                        }
                    }
                }
                let body = json!({"UserInfoDelCond": {"EmployeeNoList": list}});
                self.call("PUT", "/ISAPI/AccessControl/UserInfo/Delete", Some(&body))?
                    .into_value()?;
            }
            Ok(())
        })();
        vec![removed; people.len()]
    }

    fn apply(&self, work: &[(&Person, Plan)]) -> Vec<Outcome> {
        work.iter()
            .map(|(person, plan)| self.apply_one(person, plan).unwrap_or_else(Outcome::Failed))
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
    fn device_busy_is_transient_whatever_the_http_status() {
        for status in [200, 400, 503] {
            let e = classify(answer(
                status,
                r#"{"statusCode":2,"statusString":"Device Busy"}"#,
            ))
            .err()
            .unwrap();
            assert!(e.is_transient(), "{status}: {e}");
        }
    }

    #[test]
    fn a_full_device_is_final_and_says_so() {
        let e = classify(answer(
            400,
            r#"{"statusCode":6,"statusString":"Invalid Content","subStatusCode":"userExceedLimit"}"#,
        ))
        .err()
        .unwrap();
        assert!(matches!(e, DeviceError::DeviceFull(_)));
        assert!(!e.is_transient());
        assert!(e.to_string().contains("userExceedLimit"), "{e}");
    }

    #[test]
    fn refusals_keep_the_sub_status() {
        match classify(answer(
            400,
            r#"{"statusCode":6,"statusString":"Invalid Content","subStatusCode":"employeeNoAlreadyExist","errorMsg":"x"}"#,
        )) {
            Ok(Reply::Refused { sub, message, .. }) => {
                assert_eq!(sub, "employeeNoAlreadyExist");
                assert!(message.contains("Invalid Content"), "{message}");
            }
            _ => panic!("not a refusal"),
        }
        assert!(matches!(
            classify(answer(200, r#"{"statusCode":1,"statusString":"OK"}"#)),
            Ok(Reply::Ok(_))
        ));
        assert!(matches!(
            classify(answer(200, "{\"statusCo")),
            Err(DeviceError::InvalidAnswer(_))
        ));
    }
}
