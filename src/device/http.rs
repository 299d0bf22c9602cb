//! The HTTP client every driver uses: one `ureq` agent per device, explicit timeouts,
//! a keep-alive pool sized to the device's in-flight limit, and transport errors turned
//! into [`DeviceError`]s that say whether a retry makes sense.
//!
//! ureq's defaults are no timeouts at all and three idle connections per host; a
//! turnstile that stops answering would hold a worker forever, so both are set here.
//! Status codes are not errors at this layer: drivers read them, because device APIs
//! put their own messages in 4xx bodies.

use super::DeviceError;
use crate::telemetry::DeviceTelemetry;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
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

/// A status code and body, as the device sent them.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A device's HTTP client. Cheap to share between threads (the agent is a handle).
pub struct HttpClient {
    agent: Agent,
    timeouts: Timeouts,
    telemetry: Arc<DeviceTelemetry>,
}

impl HttpClient {
    /// A client keeping at most `max_idle` idle connections to the device: one per
    /// request allowed in flight, so connections are reused, never re-opened per call.
    pub fn new(timeouts: Timeouts, max_idle: usize) -> HttpClient {
        let telemetry = Arc::new(DeviceTelemetry::default());
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.request))
            .max_idle_connections_per_host(max_idle.max(1))
            .max_idle_connections(max_idle.max(1))
            .max_redirects(0)
            .user_agent(concat!("catraca/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = Agent::with_parts(
            config,
            DefaultConnector::default(),
            LiteralFirstResolver::default(),
        );
        HttpClient {
            agent,
            timeouts,
            telemetry,
        }
    }

    /// What this client measured: requests, latency, in flight, last error.
    pub fn telemetry(&self) -> &Arc<DeviceTelemetry> {
        &self.telemetry
    }

    /// POSTs a JSON body and reads the whole answer (so the connection returns to the pool).
    pub fn post_json(&self, url: &str, body: &[u8]) -> Result<Answer, DeviceError> {
        let _measured = self.telemetry.start_request();
        let result = self.exchange(url, body);
        match &result {
            Err(e) => self.telemetry.set_last_error(&e.to_string()),
            Ok(answer) if answer.status >= 400 => self
                .telemetry
                .set_last_error(&format!("HTTP {}", answer.status)),
            Ok(_) => {}
        }
        result
    }

    fn exchange(&self, url: &str, body: &[u8]) -> Result<Answer, DeviceError> {
        let mut response = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| self.classify(e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| self.classify(e))?;
        Ok(Answer { status, body })
    }

    fn classify(&self, error: ureq::Error) -> DeviceError {
        use ureq::Error as E;
        match error {
            E::Timeout(_) => DeviceError::Timeout(self.timeouts.request.as_secs()),
            E::HostNotFound => DeviceError::Unreachable("host not found".into()),
            E::ConnectionFailed => DeviceError::Unreachable("connection failed".into()),
            E::Io(e) => self.classify_io(&e),
            E::Protocol(e) => DeviceError::ConnectionLost(format!("broken HTTP answer: {e}")),
            E::BadUri(uri) => DeviceError::Unreachable(format!("bad URL {uri}")),
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
        assert!(resolve("http://localhost:8001/")
            .iter()
            .all(|a| a.port() == 8001));
    }
}
