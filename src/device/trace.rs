//! `--trace-http FILE`: every request to a device and its answer, one JSON line each,
//! so a user with a device we have never met can attach what it really says to a bug
//! report (and the file can become a fixture under `tests/fixtures/firmware/`).
//!
//! Nothing secret is written: the `session` of a query is redacted, `Authorization`
//! and `Cookie` headers are never recorded (only `Content-Type` is sent besides them),
//! `Set-Cookie` is left out of answers, and JSON bodies have every `password` and
//! `session` value redacted. Bodies are cut at [`MAX_BODY`] bytes, at a character
//! boundary, with `*_truncated` set. Lines are written as exchanges end, from every
//! worker thread, behind one lock; a write error is logged once and the run goes on.

use serde::Serialize;
use serde_json::Value;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Bytes of a body kept in the trace: 64 KB holds any answer a parser needs to be
/// fixed, without one device listing of thousands of people filling the disk.
pub const MAX_BODY: usize = 64 * 1024;

/// What replaces a secret.
pub const REDACTED: &str = "REDACTED";

/// One exchange, as written.
#[derive(Debug, Serialize)]
pub struct TraceLine<'a> {
    /// Unix time of the answer, in milliseconds.
    pub at_ms: u128,
    pub method: &'a str,
    /// Scheme, host and port.
    pub origin: &'a str,
    /// Path and query, `session` redacted.
    pub target: String,
    /// `None` when no answer came (the error says why).
    pub status: Option<u16>,
    pub error: Option<String>,
    pub elapsed_ms: u128,
    pub request_content_type: Option<&'a str>,
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub request_truncated: bool,
    /// Answer headers, lower-case names, without `set-cookie`.
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub response_truncated: bool,
}

/// What came back: status, headers (lower-case names) and body; or why nothing did.
pub type Traced<'a> = Result<(u16, Vec<(String, String)>, &'a [u8]), String>;

/// A trace file, shared by every device and thread of a run.
pub struct HttpTrace {
    out: Mutex<BufWriter<File>>,
    failed: AtomicBool,
}

impl std::fmt::Debug for HttpTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpTrace")
    }
}

impl HttpTrace {
    /// Creates (or empties) `path`.
    pub fn create(path: &Path) -> std::io::Result<HttpTrace> {
        Ok(HttpTrace {
            out: Mutex::new(BufWriter::new(File::create(path)?)),
            failed: AtomicBool::new(false),
        })
    }

    /// Records one exchange.
    pub fn record(
        &self,
        method: &str,
        url: &str,
        request: Option<(&str, &[u8])>,
        answer: Traced<'_>,
        elapsed: Duration,
    ) {
        let (origin, target) = split_url(url);
        let (request_body, request_truncated) = match request {
            Some((_, body)) => {
                let (text, cut) = shown_body(body);
                (Some(text), cut)
            }
            None => (None, false),
        };
        let (status, error, response_headers, response_body, response_truncated) = match answer {
            Ok((status, headers, body)) => {
                let (text, cut) = shown_body(body);
                (Some(status), None, headers, Some(text), cut)
            }
            Err(e) => (None, Some(e), Vec::new(), None, false),
        };
        let line = TraceLine {
            at_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            method,
            origin,
            target: redact_query(target),
            status,
            error,
            elapsed_ms: elapsed.as_millis(),
            request_content_type: request.map(|(t, _)| t),
            request_body,
            request_truncated,
            response_headers: response_headers
                .into_iter()
                .filter(|(name, _)| {
                    !matches!(name.as_str(), "set-cookie" | "cookie" | "authorization")
                })
                .collect(),
            response_body,
            response_truncated,
        };
        let Ok(text) = serde_json::to_string(&line) else {
            return;
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
            if !self.failed.swap(true, Ordering::Relaxed) {
                log::warn!("--trace-http: cannot write the trace ({e}); the run goes on");
            }
        }
    }
}

fn split_url(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, "/"),
    }
}

/// `session=...` in a query replaced by [`REDACTED`].
pub fn redact_query(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("session") => format!("{key}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// A body as text for the trace: secrets of a JSON body redacted, cut at [`MAX_BODY`].
fn shown_body(body: &[u8]) -> (String, bool) {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(mut parsed) => {
            redact_json(&mut parsed);
            parsed.to_string()
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    if text.len() <= MAX_BODY {
        return (text, false);
    }
    let mut end = MAX_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_string(), true)
}

fn redact_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                if lower.contains("password") || lower == "session" {
                    *inner = Value::String(REDACTED.into());
                } else {
                    redact_json(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_passwords_are_redacted_and_bodies_cut() {
        assert_eq!(
            redact_query("/load_objects.fcgi?session=q%2FAc&x=1"),
            "/load_objects.fcgi?session=REDACTED&x=1"
        );
        let (login, _) = shown_body(br#"{"login":"admin","password":"s3cret"}"#);
        assert!(
            !login.contains("s3cret") && login.contains(REDACTED),
            "{login}"
        );
        let (answer, _) = shown_body(br#"{"session":"tok"}"#);
        assert!(!answer.contains("tok"), "{answer}");
        let big = "é".repeat(MAX_BODY);
        let (cut, truncated) = shown_body(big.as_bytes());
        assert!(truncated && cut.len() <= MAX_BODY);
        assert_eq!(
            split_url("http://10.0.0.5:80/cgi-bin/x.cgi?a=1"),
            ("http://10.0.0.5:80", "/cgi-bin/x.cgi?a=1")
        );
    }
}
