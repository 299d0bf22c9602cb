//! Device drivers: how catraca talks to each turnstile family.
//!
//! The engine knows nothing about vendors. It hands a driver a chunk of people to look
//! up, gets back a [`Plan`] per person (create, update, nothing to do), and hands the
//! driver batches of planned people to write. Drivers own everything vendor-specific:
//! authentication, request shapes, how "already exists" is signalled, how cards and
//! validity windows are encoded, and how a write whose answer was lost is reconciled so
//! that a retry never makes a second copy of a person.

pub mod breaker;
pub mod controlid;
pub mod http;
pub mod rate;
pub mod retry;

use crate::i18n::{t, tr, Msg};
use crate::person::Person;
use crate::telemetry::DeviceTelemetry;
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
    /// Whether the device now holds the person as in the CSV (the pair may be cached).
    pub fn is_done(&self) -> bool {
        !matches!(self, Outcome::Failed(_) | Outcome::Planned(_))
    }
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

/// A turnstile, as the engine sees it. Implementations are shared by all worker threads.
pub trait Device: Send + Sync {
    /// The operator's name for the device (from the devices file or the URL).
    fn name(&self) -> &str;
    /// The device's base URL, without credentials.
    fn url(&self) -> &str;
    /// The vendor family, e.g. `controlid`.
    fn kind(&self) -> &'static str;
    /// The device's circuit breaker (the engine sets its jobs aside while it is open).
    fn breaker(&self) -> &breaker::Breaker;
    /// Live measurements of this device's requests.
    fn telemetry(&self) -> Arc<DeviceTelemetry>;
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
    /// Logs in and reads what `catraca check` shows: people stored, clock, round trip,
    /// firmware and model where the API tells. Drivers without it say so.
    fn inspect(&self) -> Result<DeviceFacts, DeviceError> {
        Err(DeviceError::Internal(format!(
            "catraca check cannot inspect {} devices yet",
            self.kind()
        )))
    }
}

impl fmt::Debug for dyn Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.url())
    }
}
