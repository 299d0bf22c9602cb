//! The HTTP client every driver uses: one `ureq` agent per device, explicit timeouts,
//! a keep-alive pool sized to the device's in-flight limit, and transport errors turned
//! into [`DeviceError`]s that say whether a retry makes sense.
//!
//! ureq's defaults are no timeouts at all and three idle connections per host; a
//! turnstile that stops answering would hold a worker forever, so both are set here.
//! Status codes are not errors at this layer: drivers read them, because device APIs
//! put their own messages in 4xx bodies.

use super::breaker::{self, Breaker};
use super::rate::RateLimit;
use super::tls::{DeviceTlsConnector, TlsFailure, TlsTrust};
use super::trace::HttpTrace;
use super::DeviceError;
use crate::device::telemetry::DeviceTelemetry;
use crate::i18n::{t, Msg};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, NextTimeout, TcpConnector};
use ureq::Agent;

/// Timeouts for talking to one device.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect. Default 5 s: devices sit on the local network, where a connection
    /// either opens in milliseconds or the device is off.
    pub connect: Duration,
    /// A whole request, from sending to the last byte of the answer. Default 30 s: the
    /// vendor SDK uses 10 s, field teams use 30 s for loads of thousands of rows.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
        }
    }
}

/// Resolves a URL whose host is an IP address (as device URLs nearly always are) in
/// place, and hands names to ureq's own resolver.
///
/// ureq resolves the host on every request, pooled connection or not, and with a
/// timeout set its resolver does so on a new thread each time: at zero latency, a
/// thread start per request was a tenth of catraca's CPU (perf, `catraca bench` W2:
/// 1,430 `clone3` for 1,414 requests).
#[derive(Debug, Default)]
struct LiteralFirstResolver(DefaultResolver);

impl Resolver for LiteralFirstResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if let Some(authority) = uri.authority() {
            let host = authority.host();
            let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
            if let Ok(ip) = literal.unwrap_or(host).parse::<IpAddr>() {
                let https = uri.scheme_str() == Some("https");
                let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
                let mut addresses = self.empty();
                addresses.push(SocketAddr::new(ip, port));
                return Ok(addresses);
            }
        }
        self.0.resolve(uri, config, timeout)
    }
}

/// Escapes everything outside RFC 3986's unreserved set, for query values (session
/// tokens hold `/` and `+`, registrations anything).
pub(crate) fn percent_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A status code and body, as the device sent them.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// Seconds from a `Retry-After` header (the delay form; dates are ignored).
    pub retry_after: Option<u64>,
    /// The device's clock, from the `Date` header (RFC 9110: a server with a clock
    /// sends it on every answer; lighttpd does), to the second; `None` without one.
    pub date: Option<std::time::SystemTime>,
    /// The Digest `WWW-Authenticate` header of a 401 (among several, the Digest one;
    /// `None` when the device offers no Digest), for Digest devices.
    pub challenge: Option<String>,
}

/// One request as a driver builds it.
pub struct Call<'a> {
    pub method: &'a str,
    pub url: &'a str,
    /// `Content-Type` of the body; no body is sent when `None`.
    pub body: Option<(&'a str, &'a [u8])>,
    pub authorization: Option<&'a str>,
}

/// A device's HTTP client. Cheap to share between threads (the agent is a handle).
pub struct HttpClient {
    agent: Agent,
    timeouts: Timeouts,
    telemetry: Arc<DeviceTelemetry>,
    breaker: Breaker,
    rate: Option<RateLimit>,
    /// The first final TLS failure (a refused certificate, no TLS or no protocol in
    /// common), returned from then on without contacting the device: it would fail the
    /// same way every time.
    tls_failure: OnceLock<DeviceError>,
    /// `--trace-http`: where every exchange is written.
    trace: Option<Arc<HttpTrace>>,
}

impl HttpClient {
    /// A client keeping at most `max_idle` idle connections to the device: one per
    /// request allowed in flight, so connections are reused, never re-opened per call.
    /// `tls` says which certificates an https device may present.
    pub fn new(timeouts: Timeouts, max_idle: usize, tls: TlsTrust) -> HttpClient {
        let telemetry = Arc::new(DeviceTelemetry::default());
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.request))
            .max_idle_connections_per_host(max_idle.max(1))
            .max_idle_connections(max_idle.max(1))
            .max_redirects(0)
            // Straight to the device: turnstiles sit on the local network, and an
            // HTTP(S)_PROXY exported for other tools would carry their traffic (and a
            // TLS handshake meant for the device) to somewhere else.
            .proxy(None)
            .user_agent(concat!("catraca/", env!("CARGO_PKG_VERSION")))
            .build();
        // TCP, then our TLS in place of ureq's rustls.
        let tls = DeviceTlsConnector::new(tls, telemetry.certificate_slot());
        let connector = ().chain(TcpConnector::default()).chain(tls);
        let agent = Agent::with_parts(config, connector, LiteralFirstResolver::default());
        HttpClient {
            agent,
            timeouts,
            breaker: Breaker::new(breaker::DEFAULT_THRESHOLD, Arc::clone(&telemetry)),
            telemetry,
            rate: None,
            tls_failure: OnceLock::new(),
            trace: None,
        }
    }

    /// Writes every exchange of this device to `trace` (`--trace-http`).
    pub fn with_trace(mut self, trace: Option<Arc<HttpTrace>>) -> HttpClient {
        self.trace = trace;
        self
    }

    /// Limits this device to `per_second` requests per second on average.
    pub fn with_rate(mut self, per_second: Option<f64>) -> HttpClient {
        self.rate = per_second.filter(|r| *r > 0.0).map(RateLimit::new);
        self
    }

    /// The device's circuit breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// What this client measured: requests, latency, in flight, last error.
    pub fn telemetry(&self) -> &Arc<DeviceTelemetry> {
        &self.telemetry
    }

    /// POSTs a JSON body and reads the whole answer (so the connection returns to the pool).
    pub fn post_json(&self, url: &str, body: &[u8]) -> Result<Answer, DeviceError> {
        self.send(&Call {
            method: "POST",
            url,
            body: Some(("application/json", body)),
            authorization: None,
        })
    }

    /// Sends one request and reads the whole answer (so the connection returns to the pool).
    pub fn send(&self, call: &Call<'_>) -> Result<Answer, DeviceError> {
        if let Some(failure) = self.tls_failure.get() {
            return Err(failure.clone());
        }
        self.breaker.admit()?;
        if let Some(rate) = &self.rate {
            rate.acquire();
        }
        let _measured = self.telemetry.start_request();
        let began = std::time::Instant::now();
        let result = self.exchange(call);
        if let Some(trace) = &self.trace {
            trace.record(
                call.method,
                call.url,
                call.body,
                match &result {
                    Ok((answer, headers)) => Ok((answer.status, headers.clone(), &answer.body[..])),
                    Err(e) => Err(e.to_string()),
                },
                began.elapsed(),
            );
        }
        let result = result.map(|(answer, _)| answer);
        match &result {
            Err(e) if breaker::is_no_answer(e) => self.breaker.record(false, Some(e)),
            _ => self.breaker.record(true, None),
        }
        if let Err(failure @ DeviceError::Tls(_)) = &result {
            let _ = self.tls_failure.set(failure.clone());
        }
        match &result {
            Err(e) => self.telemetry.set_last_error(&e.to_string()),
            Ok(answer) if answer.status >= 400 => self
                .telemetry
                .set_last_error(&format!("HTTP {}", answer.status)),
            Ok(_) => {}
        }
        result
    }

    /// One request; the answer's headers come along only when tracing.
    fn exchange(&self, call: &Call<'_>) -> Result<(Answer, Vec<(String, String)>), DeviceError> {
        let mut request = ureq::http::Request::builder()
            .method(call.method)
            .uri(call.url);
        if let Some(authorization) = call.authorization {
            request = request.header("Authorization", authorization);
        }
        if let Some((content_type, _)) = call.body {
            request = request.header("Content-Type", content_type);
        }
        let body = call.body.map(|(_, b)| b).unwrap_or_default();
        let request = request
            .body(body)
            .map_err(|e| DeviceError::Unreachable(format!("bad request: {e}")))?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| self.classify(e, call.url))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let date = response
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .map(std::time::SystemTime::from);
        // A device set to "digest/basic" sends two headers; only Digest is ever used.
        let challenge = super::auth_answer::pick_digest(
            response
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let headers = match self.trace {
            Some(_) => response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| self.classify(e, call.url))?;
        Ok((
            Answer {
                status,
                body,
                retry_after,
                date,
                challenge,
            },
            headers,
        ))
    }

    /// A transport error as a [`DeviceError`]; `url` is the request's, for hints.
    fn classify(&self, error: ureq::Error, url: &str) -> DeviceError {
        use ureq::Error as E;
        match error {
            E::Timeout(_) => DeviceError::Timeout(self.timeouts.request.as_secs()),
            E::HostNotFound => DeviceError::Unreachable("host not found".into()),
            E::ConnectionFailed => DeviceError::Unreachable("connection failed".into()),
            E::Io(e) => self.classify_io(&e),
            // What a device serving HTTPS on the port answers a plain request with.
            E::Protocol(e) => DeviceError::ConnectionLost(format!(
                "broken HTTP answer: {e}{}",
                if url.starts_with("http://") {
                    t(Msg::HintMaybeHttps)
                } else {
                    ""
                }
            )),
            E::BadUri(uri) => DeviceError::Unreachable(format!("bad URL {uri}")),
            E::Other(other) => match other.downcast::<TlsFailure>() {
                Ok(failure) => DeviceError::Tls(*failure),
                Err(other) => DeviceError::ConnectionLost(other.to_string()),
            },
            other => DeviceError::ConnectionLost(other.to_string()),
        }
    }

    fn classify_io(&self, e: &io::Error) -> DeviceError {
        use io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => DeviceError::Unreachable("connection refused".into()),
            K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => {
                DeviceError::Unreachable(e.to_string())
            }
            K::TimedOut | K::WouldBlock => DeviceError::Timeout(self.timeouts.request.as_secs()),
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                DeviceError::ConnectionLost(e.kind().to_string())
            }
            _ => DeviceError::ConnectionLost(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(url: &str) -> Vec<SocketAddr> {
        let uri: Uri = url.parse().unwrap();
        let config = Agent::config_builder().build();
        LiteralFirstResolver::default()
            .resolve(&uri, &config, NextTimeout::default())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn ip_literals_resolve_in_place_with_the_scheme_default_port() {
        assert_eq!(
            resolve("http://10.0.0.5/login.fcgi"),
            [SocketAddr::from(([10, 0, 0, 5], 80))]
        );
        assert_eq!(
            resolve("https://10.0.0.5"),
            [SocketAddr::from(([10, 0, 0, 5], 443))]
        );
        assert_eq!(
            resolve("http://[::1]:8080/x"),
            ["[::1]:8080".parse::<SocketAddr>().unwrap()]
        );
        // A name still goes through the system resolver.
        let local = resolve("http://localhost:8001/");
        assert!(!local.is_empty() && local.iter().all(|a| a.port() == 8001));
    }
}
