//! The server side of HTTP Digest (RFC 7616, MD5, `qop=auth`) for the simulated
//! Hikvision and Intelbras devices: nonces issued in 401 challenges, responses checked
//! by recomputing them with the `digest_auth` crate (the same code the drivers sign
//! with, used the other way round), replayed `nc` values refused, nonces that age out
//! after `SimConfig::session_expiry_after` requests answered `stale=true`, and the
//! account locked after `SimConfig::lockout_after` refusals in a row, as the firmware
//! does (a locked account is refused even with the right password).
//!
//! Field firmware is stricter than the RFC (`docs/field-evidence.md`, section 2), and
//! so is this guard on demand: `SimConfig::nonce_uses` rejects a nonce's (N+1)th use
//! with a plain 401 and a fresh challenge, no `stale`, as a DS-K1T342MWX does; the lock
//! lasts `SimConfig::lockout_for` (1,800 s) and every attempt during it starts it
//! again; Basic credentials are a refused login. [`DigestGuard::user_check`] gives
//! what the Hikvision `userCheck` body of a 401 reports: logins left, and the lock.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use digest_auth::{AuthContext, AuthorizationHeader, HttpMethod, Qop, WwwAuthenticateHeader};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the device makes of a request's `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accepted,
    /// No usable credentials, or a stale nonce: answer 401 with this challenge. Not a
    /// refusal of the password.
    Challenge(String),
    /// Wrong user or password (counted toward the lockout): 401 with a new challenge.
    Refused(String),
    /// The account is locked: 401, whatever the credentials.
    Locked(String),
    /// A nonce used more than `SimConfig::nonce_uses` times: 401 with a new challenge
    /// and no `stale`, not counted as a refused login.
    Exhausted(String),
}

/// What a Hikvision `userCheck` body reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserCheck {
    /// Refused logins left before the lock (`retryLoginTime`).
    pub(crate) retries_left: u32,
    /// Seconds until the lock ends (`unlockTime`); `None` when not locked.
    pub(crate) locked_for: Option<u64>,
}

#[derive(Debug, Default)]
struct Nonce {
    uses: u64,
    seen_nc: HashSet<u32>,
}

#[derive(Debug)]
pub(crate) struct DigestGuard {
    realm: String,
    login: String,
    password: String,
    nonces: HashMap<String, Nonce>,
    rng: StdRng,
    expiry_after: Option<u64>,
    nonce_uses: Option<u64>,
    lockout_after: u32,
    lockout_for: Duration,
    locked_until: Option<Instant>,
    failures: u32,
    /// Refusals counted since the device started (for the statistics).
    pub(crate) refusals: u64,
}

impl DigestGuard {
    pub(crate) fn new(
        realm: &str,
        login: &str,
        password: &str,
        expiry_after: Option<u64>,
        lockout_after: u32,
        seed: u64,
    ) -> DigestGuard {
        DigestGuard {
            realm: realm.to_owned(),
            login: login.to_owned(),
            password: password.to_owned(),
            nonces: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
            expiry_after,
            nonce_uses: None,
            lockout_after,
            lockout_for: Duration::from_secs(1800),
            locked_until: None,
            failures: 0,
            refusals: 0,
        }
    }

    /// Rejects a nonce's (`uses` + 1)th use with a plain 401 (`None`: no limit).
    pub(crate) fn with_nonce_uses(mut self, uses: Option<u64>) -> DigestGuard {
        self.nonce_uses = uses;
        self
    }

    /// How long a lock lasts (restarted by every attempt made during it).
    pub(crate) fn with_lockout_for(mut self, lockout_for: Duration) -> DigestGuard {
        self.lockout_for = lockout_for;
        self
    }

    pub(crate) fn locked(&mut self) -> bool {
        match self.locked_until {
            Some(until) if until > Instant::now() => true,
            Some(_) => {
                // The lock ran out: a new count of attempts.
                self.locked_until = None;
                self.failures = 0;
                false
            }
            None => false,
        }
    }

    /// What the device's `userCheck` body says now.
    pub(crate) fn user_check(&mut self) -> UserCheck {
        let locked_for = self.locked().then(|| {
            self.locked_until
                .map_or(0, |u| u.saturating_duration_since(Instant::now()).as_secs())
                .max(1)
        });
        UserCheck {
            retries_left: self.lockout_after.saturating_sub(self.failures),
            locked_for,
        }
    }

    fn refuse(&mut self) -> Verdict {
        self.failures += 1;
        self.refusals += 1;
        if self.failures >= self.lockout_after {
            self.locked_until = Some(Instant::now() + self.lockout_for);
        }
        Verdict::Refused(self.challenge(false))
    }

    /// A new `WWW-Authenticate` value with a fresh nonce.
    fn challenge(&mut self, stale: bool) -> String {
        let bytes: [u8; 16] = self.rng.random();
        let nonce: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.nonces.insert(nonce.clone(), Nonce::default());
        WwwAuthenticateHeader {
            domain: None,
            realm: self.realm.clone(),
            nonce,
            opaque: None,
            stale,
            algorithm: digest_auth::Algorithm::default(),
            qop: Some(vec![Qop::AUTH]),
            userhash: false,
            // UTF-8: the only charset RFC 7616 allows a server to announce.
            charset: digest_auth::Charset::UTF8,
            nc: 0,
        }
        .to_string()
    }

    /// Checks one request. `target` is the request target as received.
    pub(crate) fn check(
        &mut self,
        method: &str,
        target: &str,
        authorization: Option<&str>,
    ) -> Verdict {
        let basic = authorization.is_some_and(|h| {
            h.trim_start()
                .get(..5)
                .is_some_and(|s| s.eq_ignore_ascii_case("basic"))
        });
        if self.locked() && authorization.is_some() {
            // An attempt during the lock starts it again, as the firmware does.
            self.refusals += 1;
            self.locked_until = Some(Instant::now() + self.lockout_for);
            return Verdict::Locked(self.challenge(false));
        }
        if basic {
            // A Digest device takes Basic as a failed login.
            return self.refuse();
        }
        let Some(header) = authorization
            .filter(|h| h.trim_start().starts_with("Digest"))
            .and_then(|h| AuthorizationHeader::parse(h).ok())
        else {
            return Verdict::Challenge(self.challenge(false));
        };
        let Some(nonce) = self.nonces.get_mut(&header.nonce) else {
            // Not ours (or forgotten): a new nonce, as for an expired one.
            return Verdict::Challenge(self.challenge(true));
        };
        if self.nonce_uses.is_some_and(|limit| nonce.uses >= limit) {
            // Kept: every later use of it is refused the same way.
            return Verdict::Exhausted(self.challenge(false));
        }
        if self.expiry_after.is_some_and(|limit| nonce.uses >= limit)
            || !nonce.seen_nc.insert(header.nc)
        {
            self.nonces.remove(&header.nonce);
            return Verdict::Challenge(self.challenge(true));
        }
        nonce.uses += 1;
        let mut expected = header.clone();
        let context = AuthContext::new_with_method(
            self.login.as_str(),
            self.password.as_str(),
            header.uri.as_str(),
            Option::<&[u8]>::None,
            HttpMethod(method.to_owned().into()),
        );
        expected.digest(&context);
        let right = header.username == self.login
            && header.realm == self.realm
            && header.uri == target
            && header.qop == Some(Qop::AUTH)
            && expected.response == header.response;
        if right {
            self.failures = 0;
            Verdict::Accepted
        } else {
            self.refuse()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(expiry: Option<u64>) -> DigestGuard {
        DigestGuard::new("DS-K1T", "admin", "s3cret", expiry, 3, 1)
    }

    fn sign(challenge: &str, password: &str, target: &str) -> (WwwAuthenticateHeader, String) {
        let mut prompt = WwwAuthenticateHeader::parse(challenge).unwrap();
        let context = AuthContext::new_with_method(
            "admin",
            password,
            target,
            Option::<&[u8]>::None,
            HttpMethod("PUT".into()),
        );
        let header = prompt.respond(&context).unwrap().to_string();
        (prompt, header)
    }

    fn first_challenge(g: &mut DigestGuard) -> String {
        match g.check("PUT", "/x?format=json", None) {
            Verdict::Challenge(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn context(password: &str) -> AuthContext<'_> {
        AuthContext::new_with_method(
            "admin",
            password,
            "/x?format=json",
            Option::<&[u8]>::None,
            HttpMethod("PUT".into()),
        )
    }

    #[test]
    fn the_right_password_is_accepted_and_the_nonce_reused_with_new_counts() {
        let mut g = guard(None);
        let challenge = first_challenge(&mut g);
        assert!(challenge.contains("qop=\"auth\"") && challenge.contains("nonce="));
        let (mut prompt, header) = sign(&challenge, "s3cret", "/x?format=json");
        assert_eq!(
            g.check("PUT", "/x?format=json", Some(&header)),
            Verdict::Accepted
        );
        // The same nonce with the next count: accepted without a new challenge.
        let next = prompt.respond(&context("s3cret")).unwrap().to_string();
        assert_eq!(
            g.check("PUT", "/x?format=json", Some(&next)),
            Verdict::Accepted
        );
        // The same header again is a replay: a fresh, stale challenge, not a refusal.
        assert!(matches!(
            g.check("PUT", "/x?format=json", Some(&header)),
            Verdict::Challenge(c) if c.contains("stale=true")
        ));
        assert_eq!(g.refusals, 0);
    }

    #[test]
    fn a_signature_for_another_target_or_method_is_refused() {
        let mut g = guard(None);
        let challenge = first_challenge(&mut g);
        let (_, header) = sign(&challenge, "s3cret", "/x?format=json");
        assert!(matches!(
            g.check("PUT", "/y?format=json", Some(&header)),
            Verdict::Refused(_)
        ));
        let challenge = first_challenge(&mut g);
        let (_, header) = sign(&challenge, "s3cret", "/x?format=json");
        assert!(matches!(
            g.check("POST", "/x?format=json", Some(&header)),
            Verdict::Refused(_)
        ));
    }

    #[test]
    fn wrong_passwords_lock_the_account_even_for_the_right_one() {
        let mut g = guard(None);
        for _ in 0..3 {
            let challenge = first_challenge(&mut g);
            let (_, header) = sign(&challenge, "wrong", "/x?format=json");
            assert!(matches!(
                g.check("PUT", "/x?format=json", Some(&header)),
                Verdict::Refused(_)
            ));
        }
        assert!(g.locked());
        let challenge = first_challenge(&mut g);
        let (_, header) = sign(&challenge, "s3cret", "/x?format=json");
        assert!(matches!(
            g.check("PUT", "/x?format=json", Some(&header)),
            Verdict::Locked(_)
        ));
        assert_eq!(g.refusals, 4);
    }

    #[test]
    fn nonces_age_out_as_stale() {
        let mut g = guard(Some(1));
        let challenge = first_challenge(&mut g);
        let (mut prompt, header) = sign(&challenge, "s3cret", "/x?format=json");
        assert_eq!(
            g.check("PUT", "/x?format=json", Some(&header)),
            Verdict::Accepted
        );
        let context = AuthContext::new_with_method(
            "admin",
            "s3cret",
            "/x?format=json",
            Option::<&[u8]>::None,
            HttpMethod("PUT".into()),
        );
        let again = prompt.respond(&context).unwrap().to_string();
        assert!(matches!(
            g.check("PUT", "/x?format=json", Some(&again)),
            Verdict::Challenge(c) if c.contains("stale=true")
        ));
        assert_eq!(g.refusals, 0);
    }
}
