//! Device drivers: how catraca talks to each turnstile family.
//!
//! The engine knows nothing about vendors. It hands a driver a chunk of people to look
//! up, gets back a [`Plan`] per person (create, update, nothing to do), and hands the
//! driver batches of planned people to write. Drivers own everything vendor-specific:
//! authentication, request shapes, how "already exists" is signalled, how cards and
//! validity windows are encoded, and how a write whose answer was lost is reconciled so
//! that a retry never makes a second copy of a person. The comparison that decides the
//! plan is not theirs: each driver reads what its device holds into a
//! [`plan_diff::Held`] and [`plan_diff::plan`] decides, with the vendor's rules stated in
//! a [`plan_diff::DiffRules`]. For `--prune`, `--expire` and
//! `catraca remove`, a driver also lists everyone its device holds ([`Device::people`],
//! paged as the vendor allows) and removes people with their cards and group links
//! ([`Device::remove`]).

pub mod auth_answer;
pub mod breaker;
pub mod controlid;
pub mod credentials;
pub mod digest;
pub mod faces;
pub mod hikvision;
pub mod hikvision_firmware;
pub mod http;
pub mod intelbras;
pub mod intelbras_answers;
pub mod plan_diff;
pub mod rate;
pub mod retry;
pub mod telemetry;
pub mod tls;
pub mod trace;
#[cfg(test)]
mod vendor_tests;

pub use credentials::Credentials;
pub use retry::RetryPolicy;

pub use crate::card::{CardFormat, CardRule};
use crate::device::telemetry::DeviceTelemetry;
use crate::i18n::{t, tr, Msg};
use crate::person::Person;
use crate::vendor::Kind;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// Why one person could not be put on one device. Messages are shown to operators as the
/// reason of a failed pair, so they say what the device said and what to do about it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DeviceError {
    /// No TCP connection could be made (refused, unreachable, DNS).
    #[error("{}", tr(Msg::DevUnreachable, &[("reason", .0)]))]
    Unreachable(String),
    /// The device accepted the connection but did not answer in time.
    #[error("{}", tr(Msg::DevTimeout, &[("seconds", .0)]))]
    Timeout(u64),
    /// The connection broke in the middle of a request (reset, closed early).
    #[error("{}", tr(Msg::DevConnectionLost, &[("reason", .0)]))]
    ConnectionLost(String),
    /// TLS with the device cannot work as things stand: its certificate is not trusted
    /// or not the pinned one, or it does not speak TLS. Never retried; the client stops
    /// contacting the device after the first such failure.
    #[error("{0}")]
    Tls(tls::TlsFailure),
    /// The device refused our credentials. Never retried: it can lock the account.
    #[error("{}", tr(Msg::DevLoginRefused, &[("status", .status), ("message", .message), ("hint", .hint)]))]
    LoginRefused {
        status: u16,
        message: String,
        hint: String,
    },
    /// The device refused the request as invalid (4xx); the message is the device's own.
    #[error("{}", tr(Msg::DevRejected, &[("status", .status), ("message", .message)]))]
    Rejected { status: u16, message: String },
    /// The device answered 5xx or 429: busy or failing, worth another try later.
    #[error("{}", tr(Msg::DevBusy, &[("status", .status), ("hint", &retry_hint(*.status))]))]
    Busy {
        status: u16,
        /// Seconds the device asked us to wait (`Retry-After`), if it did.
        retry_after: Option<u64>,
    },
    /// A 2xx answer whose body is not what the protocol says.
    #[error("{}", tr(Msg::DevInvalidAnswer, &[("reason", .0)]))]
    InvalidAnswer(String),
    /// The person conflicts with data already on the device (e.g. a card owned by another).
    #[error("{0}")]
    Conflict(String),
    /// The person's card belongs to another person on the device. Never taken over; the
    /// pair gets one fresh plan late in the run (the card may be moving between two
    /// people of the CSV, its old owner not yet written), then fails with this.
    #[error("{0}")]
    CardTaken(String),
    /// The card cannot be written on this device (beyond its `card_format` or its card
    /// field); found before anything is sent, never retried.
    #[error("{0}")]
    CardRefused(String),
    /// The person cannot go on this device as it reported its limits (a registration
    /// too long, not digits on a digits-only model, a name too long with
    /// `long_names = "fail"`). Decided before sending; the others continue.
    #[error("{0}")]
    DoesNotFit(String),
    /// The person's photo could not go on this device: the device refused it (no face,
    /// blurred, the face of another person), or it does not fit the family's limits.
    /// Never retried with the same photo; the person's other data is on the device, so
    /// a later run sends only the photo.
    #[error("{}", tr(Msg::DevPhotoRefused, &[("reason", .0)]))]
    PhotoRefused(String),
    /// The device holds as many people as it can. Never retried: the driver stops
    /// sending to the device, and every later pair fails with this reason.
    #[error("{}", tr(Msg::DevFull, &[("reason", .0)]))]
    DeviceFull(String),
    /// The run was interrupted (Ctrl-C) before this pair was sent.
    #[error("{}", t(Msg::DevInterrupted))]
    Interrupted,
    /// The run halted itself (`--max-failures`) before this pair was sent.
    #[error("{}", t(Msg::DevHalted))]
    Halted,
    /// The worker handling this pair panicked; a bug in catraca, reported not hidden.
    #[error("{}", tr(Msg::DevInternal, &[("reason", .0)]))]
    Internal(String),
}

fn retry_hint(status: u16) -> &'static str {
    if status == 429 {
        t(Msg::DevTooManyRequests)
    } else {
        ""
    }
}

impl DeviceError {
    /// Whether trying again later may succeed. Refused logins and validation errors are
    /// final: repeating them only locks accounts and spams device logs.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DeviceError::Unreachable(_)
                | DeviceError::Timeout(_)
                | DeviceError::ConnectionLost(_)
                | DeviceError::Busy { .. }
                | DeviceError::InvalidAnswer(_)
        )
    }

    /// Whether a write that ended this way may have been applied by the device anyway
    /// (the answer was lost), so it must be reconciled by reading before it is repeated.
    pub fn write_may_have_landed(&self) -> bool {
        matches!(
            self,
            DeviceError::Timeout(_)
                | DeviceError::ConnectionLost(_)
                | DeviceError::InvalidAnswer(_)
        )
    }
}

/// What the device must do for one person, decided by comparing the CSV with the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Not on the device: create it (and its card and group link).
    Create,
    /// On the device with different data; `id` is the device's own key for the person.
    Update { id: i64, changes: Vec<&'static str> },
    /// On the device exactly as in the CSV.
    Unchanged { id: i64 },
    /// The device holds this registration more than once (put there by another tool);
    /// catraca will not guess which copy is right.
    Ambiguous { ids: Vec<i64> },
}

/// A person as a device holds it, found by listing the device ([`Device::people`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePerson {
    /// The person's key: Control iD `registration`, Hikvision `employeeNo`, Intelbras `UserID`.
    pub registration: String,
    /// The device's own key for this copy (Control iD `users.id`, which tells apart two
    /// copies of one registration); 0 where the registration is the only key.
    pub id: i64,
}

/// The result of one person on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Registered,
    Updated,
    Unchanged,
    SkippedCache,
    Failed(DeviceError),
    /// `catraca plan`: what the device needs, found by reading it; nothing was written.
    Planned(Plan),
}

impl Outcome {
    /// The outcome of writing a person planned as `plan`, failed with `failure` if any.
    pub fn of_write(plan: &Plan, failure: Option<DeviceError>) -> Outcome {
        match (failure, plan) {
            (Some(e), _) => Outcome::Failed(e),
            (None, Plan::Create) => Outcome::Registered,
            (None, Plan::Update { .. }) => Outcome::Updated,
            (None, _) => Outcome::Unchanged,
        }
    }

    /// Whether the device now holds the person as in the CSV (the pair may be cached).
    pub fn is_done(&self) -> bool {
        !matches!(self, Outcome::Failed(_) | Outcome::Planned(_))
    }

    /// Why the pair counts as failed, made once for the report, the events file and the
    /// dashboard; `None` when it does not fail.
    pub fn failure_reason(&self) -> Option<String> {
        match self {
            Outcome::Failed(e) => Some(e.to_string()),
            Outcome::Planned(Plan::Ambiguous { ids }) => Some(format!(
                "registration is on this device {} times: remove the extra copies there",
                ids.len()
            )),
            _ => None,
        }
    }
}

/// The string `rule` writes for `card` on device `device`, or the failure of the pair
/// naming the device and the limit.
pub fn card_string(
    rule: &CardRule,
    device: &str,
    card: crate::person::Card,
) -> Result<String, DeviceError> {
    rule.write(card)
        .map_err(|why| DeviceError::CardRefused(why.on_device(card, device)))
}

/// How the ends of a validity window are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidityEncoding {
    /// Unix seconds; 0 means no limit (Control iD `begin_time` / `end_time`).
    UnixSeconds,
    /// This machine's local time without zone, `2025-01-01T00:00:00`, inside a
    /// `Valid` object whose `enable` is false when there is no window (Hikvision).
    LocalIso,
    /// This machine's local time without zone, `2025-01-01 00:00:00` (Intelbras).
    LocalSpaced,
}

/// What a device holds when the CSV gives no begin (or no end): the widest window the
/// Hikvision and Intelbras firmware accept, which is also what their web pages write.
pub const OPEN_BEGIN: &str = "2000-01-01 00:00:00";
pub const OPEN_END: &str = "2037-12-31 23:59:59";

impl ValidityEncoding {
    /// One end of a window in this encoding; `None` is the open end (`is_end` picks which).
    /// Local times use this machine's time zone, as the device's clock does.
    pub fn encode(self, time: Option<i64>, is_end: bool) -> String {
        use chrono::TimeZone;
        if self == ValidityEncoding::UnixSeconds {
            return time.unwrap_or(0).to_string();
        }
        let spaced = match time.and_then(|t| chrono::Local.timestamp_opt(t, 0).earliest()) {
            Some(local) => local.format("%Y-%m-%d %H:%M:%S").to_string(),
            None if is_end => OPEN_END.to_string(),
            None => OPEN_BEGIN.to_string(),
        };
        match self {
            ValidityEncoding::LocalIso => spaced.replacen(' ', "T", 1),
            _ => spaced,
        }
    }
}

/// What differs between vendors, stated rather than hidden: each driver has one, the
/// engine reads `max_batch` from it, and the drivers encode cards and times through it.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// The vendor family.
    pub kind: Kind,
    /// The most people one create request may carry.
    pub max_batch: usize,
    pub validity: ValidityEncoding,
}

/// What `catraca check` learns from a device it could log in to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    /// People stored on the device.
    pub people: Option<u64>,
    /// Firmware version and model, when the vendor's API tells them.
    pub firmware: Option<String>,
    pub model: Option<String>,
    /// The device's clock and this machine's at the same moment (the middle of the
    /// request that read it), when the device tells its time.
    pub clock: Option<ClockReading>,
    /// The round trip of one trivial authenticated request.
    pub round_trip: Option<Duration>,
}

/// A device's clock next to ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    pub device: SystemTime,
    pub local: SystemTime,
}

impl ClockReading {
    /// Device minus local time, in whole seconds (positive: the device is ahead).
    pub fn drift_seconds(&self) -> i64 {
        match self.device.duration_since(self.local) {
            Ok(ahead) => ahead.as_secs_f64().round() as i64,
            Err(behind) => -(behind.duration().as_secs_f64().round() as i64),
        }
    }
}

/// A device as a run names it: the one copy of its identity that the drivers, the
/// reporter, the live status and the events file share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The operator's name for the device (from the devices file or the URL).
    pub name: String,
    /// The device's base URL, without credentials or a trailing `/`.
    pub url: String,
    pub kind: Kind,
}

impl DeviceInfo {
    pub fn new(name: &str, url: &str, kind: Kind) -> DeviceInfo {
        DeviceInfo {
            name: name.to_string(),
            url: url.trim_end_matches('/').to_string(),
            kind,
        }
    }
}

/// A turnstile, as the engine sees it. Implementations are shared by all worker threads.
pub trait Device: Send + Sync {
    /// Which device this is: name, URL, family.
    fn endpoint(&self) -> &DeviceInfo;
    /// The operator's name for the device (from the devices file or the URL).
    fn name(&self) -> &str {
        &self.endpoint().name
    }
    /// The device's base URL, without credentials.
    fn url(&self) -> &str {
        &self.endpoint().url
    }
    /// What this vendor does differently.
    fn profile(&self) -> &'static Profile;
    /// The vendor family.
    fn kind(&self) -> Kind {
        self.endpoint().kind
    }
    /// How this device writes cards: its `card_format` and `card_pad`, else the vendor's
    /// default.
    fn cards(&self) -> CardRule {
        CardRule::vendor_default(self.kind())
    }
    /// The most people one write job may hand to [`Device::apply`]: the engine cuts
    /// write jobs at `min(--batch-size, max_batch)`.
    fn max_batch(&self) -> usize {
        self.profile().max_batch
    }
    /// The HTTP client every request to the device goes through.
    fn http(&self) -> &http::HttpClient;
    /// The device's circuit breaker (the engine sets its jobs aside while it is open).
    fn breaker(&self) -> &breaker::Breaker {
        self.http().breaker()
    }
    /// Live measurements of this device's requests.
    fn telemetry(&self) -> Arc<DeviceTelemetry> {
        Arc::clone(self.http().telemetry())
    }
    /// A stable identity for cache keys: the kind and URL.
    fn cache_id(&self) -> String {
        format!("{}|{}", self.kind(), self.url())
    }
    /// Reads what the device holds for `people` and says what each needs.
    /// The whole lookup fails or succeeds together.
    fn plan(&self, people: &[&Person]) -> Result<Vec<Plan>, DeviceError>;
    /// Applies the plans (never `Unchanged`), returning one outcome per person in order.
    /// A failure of one person does not fail the others.
    fn apply(&self, work: &[(&Person, Plan)]) -> Vec<Outcome>;
    /// Everyone the device holds, read page by page with one request in flight.
    fn people(&self) -> Result<Vec<DevicePerson>, DeviceError>;
    /// The most people one [`Device::remove`] call should get (one request's worth).
    fn max_remove_batch(&self) -> usize {
        self.max_batch().max(1)
    }
    /// What the driver learned of the device's firmware so far, one short line each
    /// (generation, limits, Digest nonce uses), for `catraca check`. May ask the
    /// device what it has not asked yet. Default: nothing.
    fn learned(&self) -> Vec<String> {
        Vec::new()
    }
    /// Names this run cut to the device's limit (each person counted once).
    fn names_truncated(&self) -> u64 {
        0
    }
    /// Whether the device takes face photos (see `faces.rs`); asks the device at most
    /// once. Default: no.
    fn takes_faces(&self) -> Result<bool, DeviceError> {
        Ok(false)
    }
    /// What `catraca check` shows of faces: whether the device takes them and, where
    /// the device reports them, how many it holds and can hold.
    fn face_facts(&self) -> String {
        match self.takes_faces() {
            Ok(true) => "faces: taken".into(),
            Ok(false) => {
                "faces: not taken (set faces = true in the devices file if it reads faces)".into()
            }
            Err(e) => format!("faces: could not ask ({e})"),
        }
    }

    /// Takes these people off the device, with their cards and group links, each removed
    /// explicitly. One result per person, in order.
    fn remove(&self, people: &[&DevicePerson]) -> Vec<Result<(), DeviceError>>;
    /// Logs in and reads what `catraca check` shows: people stored, clock, round trip,
    /// firmware and model where the API tells. By default, one read-only lookup of a
    /// registration nobody has (it proves the device answers and takes the login, and
    /// gives the round trip); drivers that can tell more override it.
    fn inspect(&self) -> Result<DeviceFacts, DeviceError> {
        let probe = Person {
            registration: "catraca-check-probe".into(),
            name: "catraca check".into(),
            card: None,
            cards_listed: false,
            begin: None,
            end: None,
            group: None,
            line: 0,
            photo: None,
        };
        let began = std::time::Instant::now();
        self.plan(&[&probe])?;
        Ok(DeviceFacts {
            round_trip: Some(began.elapsed()),
            ..DeviceFacts::default()
        })
    }
}

impl fmt::Debug for dyn Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_unix_seconds_or_local_time_without_zone() {
        use chrono::TimeZone;
        let t = 1_780_000_000;
        let local = chrono::Local.timestamp_opt(t, 0).unwrap();
        assert_eq!(
            ValidityEncoding::UnixSeconds.encode(Some(t), false),
            t.to_string()
        );
        assert_eq!(ValidityEncoding::UnixSeconds.encode(None, true), "0");
        assert_eq!(
            ValidityEncoding::LocalIso.encode(Some(t), false),
            local.format("%Y-%m-%dT%H:%M:%S").to_string()
        );
        assert_eq!(
            ValidityEncoding::LocalSpaced.encode(Some(t), true),
            local.format("%Y-%m-%d %H:%M:%S").to_string()
        );
        assert_eq!(
            ValidityEncoding::LocalSpaced.encode(None, false),
            OPEN_BEGIN
        );
        assert_eq!(
            ValidityEncoding::LocalIso.encode(None, true),
            "2037-12-31T23:59:59"
        );
    }
}
