//! HTTP Digest authentication (RFC 7616, MD5, `qop=auth`) for the devices that have no
//! session: Hikvision ISAPI and Intelbras/Dahua CGI. The hashing is the `digest_auth`
//! crate's; this module owns what the crate leaves to its user: when to ask for a
//! challenge, reusing one nonce across threads (each request gets its own `nc`), taking
//! a new nonce when the device says the old one is stale, and above all never letting a
//! wrong password be tried more than [`MAX_AUTH_FAILURES`] times in a row, because these
//! devices lock the account after a few refusals.
//!
//! Until the credentials have been accepted once, requests go one at a time (a gate is
//! held across the request), so a wrong password costs one refusal, then one retry with
//! a fresh nonce, then nothing: every later call on the device fails at once with the
//! same reason. Once accepted, requests run in parallel; a 401 after that (password
//! changed mid-run) counts again toward the same limit.

use super::http::{Answer, Call, HttpClient};
use super::{Credentials, DeviceError, RetryPolicy};
use digest_auth::{AuthContext, HttpMethod, WwwAuthenticateHeader};
use std::sync::{Mutex, MutexGuard};

/// Consecutive refused authentications after which a driver stops talking to a device.
/// Hikvision and Dahua firmware lock the account after 3 to 7 refusals (configurable on
/// the device); two leaves room for a nonce that expired without `stale=true`.
pub const MAX_AUTH_FAILURES: u32 = 2;

/// Fresh challenges (first contact, stale nonces) one request may go through before the
/// device is judged to be looping.
const MAX_FRESH_CHALLENGES: u32 = 3;

#[derive(Default)]
struct AuthState {
    /// The last challenge; its `nc` counts the requests signed with its nonce.
    challenge: Option<WwwAuthenticateHeader>,
    /// The credentials were accepted and nothing was refused since.
    proven: bool,
    /// Refusals since the last accepted request.
    failures: u32,
    /// Set at the last allowed refusal: every later request fails with it.
    refused: Option<DeviceError>,
}

/// A Digest-authenticated HTTP client for one device. Shared by all worker threads.
pub struct DigestClient {
    name: String,
    base: String,
    credentials: Credentials,
    http: HttpClient,
    retry: RetryPolicy,
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
            state: Mutex::new(AuthState::default()),
            gate: Mutex::new(()),
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

    /// Sends `method target` (target: path and query, from `/`) with Digest
    /// authentication; returns any answer but a 401. Once refused twice in a row, every
    /// call fails with [`DeviceError::LoginRefused`] without contacting the device.
    pub fn send(
        &self,
        method: &str,
        target: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Answer, DeviceError> {
        let url = format!("{}{target}", self.base);
        let mut fresh = 0;
        loop {
            if let Some(refused) = &self.state().refused {
                return Err(refused.clone());
            }
            let proven = self.state().proven;
            let _gate = (!proven).then(|| self.gate.lock().unwrap_or_else(|e| e.into_inner()));
            let authorization = {
                let mut state = self.state();
                if let Some(refused) = &state.refused {
                    return Err(refused.clone());
                }
                match state.challenge.as_mut() {
                    Some(challenge) => Some(self.sign(challenge, method, target)?),
                    None => None,
                }
            };
            self.retry.budget.count_request();
            let answer = self.http.send(&Call {
                method,
                url: &url,
                body,
                authorization: authorization.as_deref(),
            })?;
            if answer.status != 401 {
                if authorization.is_some() {
                    let mut state = self.state();
                    state.proven = true;
                    state.failures = 0;
                }
                return Ok(answer);
            }
            let challenge = answer
                .challenge
                .as_deref()
                .filter(|h| h.trim_start().starts_with("Digest"))
                .and_then(|h| WwwAuthenticateHeader::parse(h).ok());
            let mut state = self.state();
            match challenge {
                Some(challenge) if authorization.is_none() || challenge.stale => {
                    // First contact, or the nonce aged out: not a refusal of the password.
                    fresh += 1;
                    if fresh > MAX_FRESH_CHALLENGES {
                        return Err(DeviceError::InvalidAnswer(
                            "the device keeps answering 401 with new Digest challenges".into(),
                        ));
                    }
                    state.challenge = Some(challenge);
                }
                challenge => {
                    state.failures += 1;
                    state.proven = false;
                    let no_digest = challenge.is_none();
                    if let Some(challenge) = challenge {
                        state.challenge = Some(challenge);
                    }
                    log::debug!(
                        "{}: authentication refused ({} in a row)",
                        self.name,
                        state.failures
                    );
                    if state.failures >= MAX_AUTH_FAILURES || no_digest {
                        let refused = DeviceError::LoginRefused {
                            status: 401,
                            message: if no_digest {
                                "the device answered 401 without a Digest challenge".into()
                            } else {
                                format!(
                                    "Digest authentication refused {} times in a row; stopped before the account locks",
                                    state.failures
                                )
                            },
                            hint: format!(
                                "the login and password for this device ({})",
                                self.credentials.source
                            ),
                        };
                        state.refused = Some(refused.clone());
                        return Err(refused);
                    }
                }
            }
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
