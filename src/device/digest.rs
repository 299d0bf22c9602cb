//! HTTP Digest authentication (RFC 7616, MD5, `qop=auth`) for the devices that have no
//! session: Hikvision ISAPI and Intelbras/Dahua CGI. The hashing is the `digest_auth`
//! crate's; this module owns what the crate leaves to its user, shaped by what field
//! devices do (`docs/field-evidence.md`, section 2): they lock the account for about
//! 30 minutes after about 7 refused logins, and some reject a nonce's third use with a
//! plain 401, no `stale`, the same status as a wrong password.
//!
//! So the client counts the uses of each nonce and, before the device's limit
//! ([`DEFAULT_NONCE_USES`], configurable per device), takes a fresh challenge with a
//! request that carries no credentials: those are not logins and never count. A 401
//! is then read before anything else is sent: a `userCheck` body saying `lock` fails
//! the device with "account locked for N min" and nothing more is sent to it; a
//! `retryLoginTime` lower than before, or a refusal of a nonce's first use while the
//! credentials are unproven, is a wrong password, and the first such proof stops the
//! device; anything else is a nonce the device stopped taking, renewed and retried
//! within [`MAX_NONCE_RENEWALS`].
//!
//! Until the credentials have been accepted once (and after any unexplained 401),
//! requests go one at a time (a gate is held across the request), so a wrong password
//! costs one refusal and is told apart from a worn-out nonce. Once accepted, requests
//! run in parallel on the shared nonce, each with its own `nc`.

use super::auth_answer::{parse_challenge, UserCheck};
use super::http::{Answer, Call, HttpClient};
use super::{Credentials, DeviceError, RetryPolicy};
use digest_auth::{AuthContext, HttpMethod, WwwAuthenticateHeader};
use std::sync::{Mutex, MutexGuard};

/// Uses of one nonce before a fresh challenge is fetched. 2: a DS-K1T342MWX on
/// V4.48.40 rejects the third use (a DS-K1T323 on V4.23.41 takes about 8), and a fetch
/// without credentials costs one small request and no login attempt.
pub const DEFAULT_NONCE_USES: u32 = 2;

/// Fresh challenges one request may go through (first contact, nonces used up, stale
/// or refused) before the device is judged to be looping.
const MAX_NONCE_RENEWALS: u32 = 3;

#[derive(Default)]
struct AuthState {
    /// The last challenge; its `nc` counts the requests signed with its nonce.
    challenge: Option<WwwAuthenticateHeader>,
    /// The credentials were accepted and nothing unexplained was refused since.
    proven: bool,
    /// `retryLoginTime` of the last `userCheck` body.
    retries_left: Option<u32>,
    /// The challenge target answered without asking for credentials: challenges come
    /// from the requests themselves.
    challenge_target_open: bool,
    /// Set at the first proven refusal or lock: every later request fails with it.
    refused: Option<DeviceError>,
    observed: NonceFacts,
}

/// What the client saw of the device's nonces (shown by `catraca check`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NonceFacts {
    /// The configured uses per nonce.
    pub limit: u32,
    /// Challenges received (first contact and renewals).
    pub challenges: u64,
    /// The most signed requests one nonce carried that the device accepted.
    pub most_uses_accepted: u32,
    /// 401s on a nonce already used: the device's limit is below `limit`.
    pub exhausted: u64,
}

impl NonceFacts {
    /// One line for `catraca check`.
    pub fn describe(&self) -> String {
        format!(
            "Digest nonces: renewed after {} uses; the device accepted up to {} uses of one; {} refused before that",
            self.limit, self.most_uses_accepted, self.exhausted
        )
    }
}

/// A Digest-authenticated HTTP client for one device. Shared by all worker threads.
pub struct DigestClient {
    name: String,
    base: String,
    credentials: Credentials,
    http: HttpClient,
    retry: RetryPolicy,
    nonce_uses: u32,
    /// Where challenges are fetched without credentials (`None`: the request itself,
    /// body and all).
    challenge_target: Option<&'static str>,
    state: Mutex<AuthState>,
    /// Held across a request while the credentials are unproven.
    gate: Mutex<()>,
}

impl DigestClient {
    pub fn new(
        name: &str,
        base: &str,
        credentials: Credentials,
        http: HttpClient,
        retry: RetryPolicy,
    ) -> DigestClient {
        DigestClient {
            name: name.to_string(),
            base: base.trim_end_matches('/').to_string(),
            credentials,
            http,
            retry,
            nonce_uses: DEFAULT_NONCE_USES,
            challenge_target: None,
            state: Mutex::new(AuthState::default()),
            gate: Mutex::new(()),
        }
    }

    /// Fetches challenges with `GET target` (a cheap read of the device's own) rather
    /// than with the request itself, so a write's body is not sent to be refused.
    /// Nonces are not bound to a URI on these devices (field-evidence.md, 2.2).
    pub fn with_challenge_target(mut self, target: &'static str) -> DigestClient {
        self.challenge_target = Some(target);
        self
    }

    /// Signs at most `uses` requests with one nonce (at least 1).
    pub fn set_nonce_uses(&mut self, uses: u32) {
        self.nonce_uses = uses.max(1);
    }

    /// What was seen of the device's nonces so far.
    pub fn nonce_facts(&self) -> NonceFacts {
        NonceFacts {
            limit: self.nonce_uses,
            ..self.state().observed
        }
    }

    /// Whether a failed call is worth another attempt: transient, within the retry
    /// count and budget, and the device not declared unreachable by its breaker.
    pub fn may_retry(&self, error: &DeviceError, attempt: u32) -> bool {
        self.retry.may_retry(error, attempt, self.http.breaker())
    }

    /// Sleeps before retry `attempt`, at least as long as the device asked.
    pub fn pause(&self, attempt: u32, error: &DeviceError) {
        self.retry.pause(attempt, error, self.http.telemetry());
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    fn state(&self) -> MutexGuard<'_, AuthState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refusal(&self, message: String) -> DeviceError {
        DeviceError::LoginRefused {
            status: 401,
            message,
            hint: format!(
                "the login and password for this device ({})",
                self.credentials.source
            ),
        }
    }

    /// Sends `method target` (target: path and query, from `/`) with Digest
    /// authentication; returns any answer but a 401. After a proven refusal or a
    /// locked account, every call fails with [`DeviceError::LoginRefused`] without
    /// contacting the device.
    pub fn send(
        &self,
        method: &str,
        target: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Answer, DeviceError> {
        let url = format!("{}{target}", self.base);
        let mut renewals = 0;
        loop {
            if let Some(refused) = &self.state().refused {
                return Err(refused.clone());
            }
            let proven = self.state().proven;
            let _gate = (!proven).then(|| self.gate.lock().unwrap_or_else(|e| e.into_inner()));
            // Under the gate the state may have changed while waiting.
            let unproven = !self.state().proven;
            let (authorization, use_number) = {
                let mut state = self.state();
                if let Some(refused) = &state.refused {
                    return Err(refused.clone());
                }
                match state.challenge.as_mut() {
                    Some(challenge) if challenge.nc < self.nonce_uses => {
                        let header = self.sign(challenge, method, target)?;
                        (Some(header), challenge.nc)
                    }
                    // Used up (or never had one): ask anew, without credentials.
                    _ => {
                        state.challenge = None;
                        (None, 0)
                    }
                }
            };
            let fetch = self
                .challenge_target
                .filter(|_| authorization.is_none() && !self.state().challenge_target_open);
            self.retry.budget.count_request();
            let answer = match fetch {
                Some(fetch) => self.http.send(&Call {
                    method: "GET",
                    url: &format!("{}{fetch}", self.base),
                    body: None,
                    authorization: None,
                })?,
                None => self.http.send(&Call {
                    method,
                    url: &url,
                    body,
                    authorization: authorization.as_deref(),
                })?,
            };
            if fetch.is_some() && answer.status != 401 {
                self.state().challenge_target_open = true;
                continue;
            }
            if answer.status != 401 {
                if authorization.is_some() {
                    let mut state = self.state();
                    state.proven = true;
                    state.observed.most_uses_accepted =
                        state.observed.most_uses_accepted.max(use_number);
                }
                return Ok(answer);
            }
            let check = UserCheck::parse(&answer.body);
            let challenge = answer.challenge.as_deref().and_then(parse_challenge);
            let mut state = self.state();
            if let Some(check) = check.filter(|c| c.locked) {
                let minutes = check.unlock_in.map(|s| s.div_ceil(60)).filter(|m| *m > 0);
                let refused = self.refusal(match minutes {
                    Some(minutes) => format!(
                        "device {}: account locked for {minutes} min after refused logins; nothing more is sent to it",
                        self.name
                    ),
                    None => format!(
                        "device {}: account locked after refused logins; nothing more is sent to it",
                        self.name
                    ),
                });
                log::warn!("{}: {refused}", self.name);
                state.refused = Some(refused.clone());
                return Err(refused);
            }
            let counted_down = check
                .and_then(|c| c.retries_left)
                .zip(state.retries_left)
                .is_some_and(|(now, before)| now < before);
            if let Some(left) = check.and_then(|c| c.retries_left) {
                if state.retries_left.is_none_or(|before| left < before) && counted_down {
                    // The only warning a device gives before it locks the account.
                    log::warn!(
                        "{}: the device counts refused logins: {left} left before it locks the account",
                        self.name
                    );
                }
                state.retries_left = Some(left);
            }
            if authorization.is_some() && (counted_down || (use_number == 1 && unproven)) {
                let left = state
                    .retries_left
                    .map(|n| format!(" ({n} attempts left before the device locks the account)"))
                    .unwrap_or_default();
                let refused = self.refusal(format!(
                    "Digest authentication refused{left}; nothing more is sent to this device"
                ));
                log::debug!("{}: {refused}", self.name);
                state.refused = Some(refused.clone());
                return Err(refused);
            }
            if authorization.is_some() {
                // A nonce the device stopped taking (or a password changed mid-run,
                // which the retry, one at a time on a fresh nonce, will prove).
                state.observed.exhausted += 1;
                state.proven = false;
                log::debug!(
                    "{}: nonce refused on use {use_number}; taking a fresh one",
                    self.name
                );
            }
            state.challenge = None;
            let Some(challenge) = challenge else {
                if authorization.is_none() {
                    let refused = self.refusal(
                        "the device answered 401 without a Digest challenge (it may offer only Basic, which catraca never sends): set its web authentication to digest".into(),
                    );
                    state.refused = Some(refused.clone());
                    return Err(refused);
                }
                // Some firmware refuse a used nonce without a new challenge: the next
                // round asks for one without credentials.
                renewals += 1;
                if renewals > MAX_NONCE_RENEWALS {
                    return Err(DeviceError::InvalidAnswer(
                        "the device keeps refusing fresh Digest nonces".into(),
                    ));
                }
                continue;
            };
            renewals += 1;
            if renewals > MAX_NONCE_RENEWALS {
                return Err(DeviceError::InvalidAnswer(
                    "the device keeps answering 401 with new Digest challenges".into(),
                ));
            }
            state.observed.challenges += 1;
            state.challenge = Some(challenge);
        }
    }

    fn sign(
        &self,
        challenge: &mut WwwAuthenticateHeader,
        method: &str,
        target: &str,
    ) -> Result<String, DeviceError> {
        let context = AuthContext::new_with_method(
            self.credentials.login.as_str(),
            self.credentials.password.as_str(),
            target,
            Option::<&[u8]>::None,
            HttpMethod(method.to_string().into()),
        );
        challenge
            .respond(&context)
            .map(|header| header.to_header_string())
            .map_err(|e| DeviceError::InvalidAnswer(format!("unusable Digest challenge: {e}")))
    }

    /// `send`, repeated with backoff while it fails for a transient reason (`classify`
    /// turns an answer into the vendor's error). Only for calls safe to repeat.
    pub fn send_idempotent<T>(
        &self,
        method: &str,
        target: &str,
        body: Option<(&str, &[u8])>,
        classify: impl Fn(Answer) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        let mut attempt = 0;
        loop {
            match self.send(method, target, body).and_then(&classify) {
                Err(e) if self.may_retry(&e, attempt) => {
                    log::debug!("{}: {method} {target} failed ({e}), retrying", self.name);
                    self.pause(attempt, &e);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
