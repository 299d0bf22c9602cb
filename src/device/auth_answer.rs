//! What a Digest device's 401 says, read as field devices write it
//! (`docs/field-evidence.md`, section 2): the Digest challenge among several
//! `WWW-Authenticate` headers (a device set to "digest/basic" also offers Basic, which
//! catraca never sends: Basic to a Digest device is a refused login that counts toward
//! the lock), its scheme and algorithm in any case, and the Hikvision `userCheck` body
//! that tells a wrong password (`retryLoginTime` counting down) and a locked account
//! (`lockStatus` `lock`, `unlockTime` seconds) from a nonce the device no longer takes.

use digest_auth::WwwAuthenticateHeader;

/// The first `WWW-Authenticate` value whose scheme is Digest (any case), if any.
pub fn pick_digest<'a>(headers: impl Iterator<Item = &'a str>) -> Option<String> {
    headers
        .filter(|h| scheme_is_digest(h))
        .map(str::to_string)
        .next()
}

fn scheme_is_digest(header: &str) -> bool {
    let header = header.trim_start();
    header
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("digest"))
        && header[6..].starts_with(|c: char| c.is_ascii_whitespace())
}

/// Parses a Digest challenge written in any case: `digest ... algorithm=md5` is the
/// same challenge as `Digest ... algorithm="MD5"` (the `digest_auth` crate only reads
/// the second). `None` when it is not Digest or lacks realm or nonce.
pub fn parse_challenge(header: &str) -> Option<WwwAuthenticateHeader> {
    if !scheme_is_digest(header) {
        return None;
    }
    let params = &header.trim_start()[6..];
    let lower = params.to_ascii_lowercase();
    let mut normalized = String::from("Digest");
    match lower.find("algorithm=") {
        Some(at) => {
            let start = at + "algorithm=".len();
            let quoted = params[start..].starts_with('"');
            let value_start = start + usize::from(quoted);
            let value_end = params[value_start..]
                .find(|c: char| {
                    if quoted {
                        c == '"'
                    } else {
                        c == ',' || c.is_whitespace()
                    }
                })
                .map_or(params.len(), |n| value_start + n);
            let value = params[value_start..value_end].to_ascii_uppercase();
            // The crate spells the session variants `MD5-sess`, `SHA-256-sess`.
            let value = value.replace("-SESS", "-sess");
            normalized.push_str(&params[..value_start]);
            normalized.push_str(&value);
            normalized.push_str(&params[value_end..]);
        }
        None => normalized.push_str(params),
    }
    WwwAuthenticateHeader::parse(&normalized).ok()
}

/// The Hikvision `userCheck` body of a 401, where the device sends one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserCheck {
    /// `retryLoginTime`: refused logins left before the account locks.
    pub retries_left: Option<u32>,
    /// `lockStatus` is exactly `lock` (`unlock` contains the word too).
    pub locked: bool,
    /// `unlockTime`: seconds until the lock ends.
    pub unlock_in: Option<u64>,
}

impl UserCheck {
    /// Reads the body of a 401; `None` when it is no `userCheck` (Intelbras, an empty
    /// body, an ISAPI `ResponseStatus`).
    pub fn parse(body: &[u8]) -> Option<UserCheck> {
        let text = std::str::from_utf8(body).ok()?;
        if !text.contains("<userCheck") {
            return None;
        }
        let element = |name: &str| -> Option<&str> {
            let open = format!("<{name}>");
            let start = text.find(&open)? + open.len();
            let end = text[start..].find('<')? + start;
            Some(text[start..end].trim())
        };
        Some(UserCheck {
            retries_left: element("retryLoginTime").and_then(|v| v.parse().ok()),
            locked: element("lockStatus") == Some("lock"),
            unlock_in: element("unlockTime").and_then(|v| v.parse().ok()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_picked_among_several_headers_and_basic_never() {
        let headers = [
            r#"Basic realm="DS-6E392E44""#,
            r#"Digest realm="DS-6E392E44", nonce="abc", qop="auth""#,
        ];
        assert_eq!(
            pick_digest(headers.into_iter()).as_deref(),
            Some(headers[1])
        );
        assert_eq!(pick_digest([headers[0]].into_iter()), None);
        assert_eq!(
            pick_digest([r#"DIGEST realm="x", nonce="n""#].into_iter()).as_deref(),
            Some(r#"DIGEST realm="x", nonce="n""#)
        );
        assert_eq!(pick_digest([r#"Digestive realm="x""#].into_iter()), None);
    }

    #[test]
    fn scheme_and_algorithm_are_read_in_any_case() {
        let header = r#"digest realm="ds-6e392e44", domain="::", qop="auth", nonce="4e6a:1700000000", opaque="", algorithm="md5", stale="FALSE""#;
        let parsed = parse_challenge(header).expect("parsed");
        assert_eq!(parsed.realm, "ds-6e392e44");
        assert_eq!(parsed.nonce, "4e6a:1700000000");
        assert_eq!(parsed.opaque.as_deref(), Some(""));
        assert!(!parsed.stale);
        let plain = parse_challenge(r#"Digest realm="r", nonce="n", algorithm=Md5, qop="auth""#)
            .expect("unquoted algorithm");
        assert_eq!(plain.algorithm.to_string(), "MD5");
        assert!(parse_challenge(r#"Basic realm="r""#).is_none());
    }

    #[test]
    fn user_check_tells_a_countdown_from_a_lock() {
        let counting = br#"<userCheck version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">
 <statusValue>401</statusValue><statusString>Unauthorized</statusString>
 <isActivated>true</isActivated>
 <lockStatus>unlock</lockStatus><unlockTime>0</unlockTime>
 <retryLoginTime>4</retryLoginTime></userCheck>"#;
        assert_eq!(
            UserCheck::parse(counting),
            Some(UserCheck {
                retries_left: Some(4),
                locked: false,
                unlock_in: Some(0)
            })
        );
        let locked = br#"<userCheck><lockStatus>lock</lockStatus><unlockTime>1800</unlockTime><retryLoginTime>0</retryLoginTime></userCheck>"#;
        let check = UserCheck::parse(locked).unwrap();
        assert!(check.locked);
        assert_eq!(check.unlock_in, Some(1800));
        assert_eq!(UserCheck::parse(b"Error\r\nBad Request!\r\n"), None);
    }
}
