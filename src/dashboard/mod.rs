//! The live dashboard: a small synchronous HTTP server on its own thread (tiny_http, no
//! async runtime) that serves, during a run and for `--dashboard-linger` after it:
//!
//! - `/` a self-contained page (`page.html`, built into the binary: no CDN, works
//!   offline) that reads `/api/status` every second and draws progress, rate, ETA, one
//!   row per device and the most recent failures;
//! - `/api/status` the [`Status`](crate::live::Status) snapshot as JSON, for scripts too;
//! - `/metrics` the same in Prometheus text format.
//!
//! It is read-only: only `GET` and `HEAD`, nothing that changes the run. It listens on
//! loopback unless another address is given explicitly, because the failures it lists
//! carry registrations.

use crate::live::LiveStatus;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;
use tiny_http::{Header, Method, Request, Response, Server};

/// The page, built into the binary.
pub const PAGE: &str = include_str!("page.html");

/// The dashboard's port when `--dashboard` names none: 8787, free on most machines and
/// easy to remember.
pub const DEFAULT_PORT: u16 = 8787;

/// Why the dashboard could not start; the run does not start either (exit status 2).
#[derive(Debug, Error)]
pub enum DashboardError {
    #[error("--dashboard {given}: not an address; write PORT, HOST:PORT or IP:PORT, e.g. 127.0.0.1:8787")]
    BadAddress { given: String },
    #[error("--dashboard: cannot listen on {addr}: {reason}; choose another port, e.g. --dashboard 127.0.0.1:0 for any free one")]
    Bind { addr: SocketAddr, reason: String },
}

/// Reads a `--dashboard` value: `PORT` (on loopback), `HOST:PORT` or `IP:PORT`.
pub fn parse_address(given: &str) -> Result<SocketAddr, DashboardError> {
    let bad = || DashboardError::BadAddress {
        given: given.to_string(),
    };
    let given = given.trim();
    if let Ok(port) = given.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    given
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

/// A running dashboard. Dropping it stops the server and joins its thread.
pub struct Dashboard {
    server: Arc<Server>,
    addr: SocketAddr,
    quit: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dashboard {
    /// Binds `addr` (before the run starts, so a taken port stops the run at once) and
    /// serves `live` from a thread of its own.
    pub fn start(addr: SocketAddr, live: Arc<LiveStatus>) -> Result<Dashboard, DashboardError> {
        let server = Server::http(addr).map_err(|e| DashboardError::Bind {
            addr,
            reason: e.to_string(),
        })?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| DashboardError::Bind {
                addr,
                reason: "not an IP listener".into(),
            })?;
        let server = Arc::new(server);
        let quit = Arc::new(AtomicBool::new(false));
        let thread = {
            let server = Arc::clone(&server);
            let quit = Arc::clone(&quit);
            std::thread::Builder::new()
                .name("catraca-dashboard".into())
                .spawn(move || {
                    // `recv_timeout` rather than `incoming_requests`: the loop sees `quit`
                    // even if `unblock` races with a request.
                    while !quit.load(Ordering::SeqCst) {
                        match server.recv_timeout(Duration::from_millis(200)) {
                            Ok(Some(request)) => answer(request, &live),
                            Ok(None) => {}
                            Err(e) => {
                                log::debug!("dashboard: {e}");
                                break;
                            }
                        }
                    }
                })
                .expect("a thread can be spawned")
        };
        Ok(Dashboard {
            server,
            addr: bound,
            quit,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the real port when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL, e.g. `http://127.0.0.1:8787/` (loopback shown for 0.0.0.0).
    pub fn url(&self) -> String {
        let mut shown = self.addr;
        if shown.ip().is_unspecified() {
            shown.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        format!("http://{shown}/")
    }

    /// Keeps serving the final numbers for `linger`, or until `stopped` says so (Ctrl-C).
    pub fn linger(&self, linger: Duration, stopped: &dyn Fn() -> bool) {
        let until = Instant::now() + linger;
        while Instant::now() < until && !stopped() {
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The page as served: in Portuguese when `pt`, with the report's categories (keys and
/// labels in both languages) written into its script.
pub fn page(pt: bool) -> String {
    use crate::category::Category;
    use crate::i18n::Lang;
    let categories: Vec<serde_json::Value> = Category::ALL
        .iter()
        .map(|c| {
            serde_json::json!({
                "key": c.key(),
                "en": c.label(false).template(Lang::En),
                "pt-BR": c.label(false).template(Lang::PtBr),
            })
        })
        .collect();
    let page = PAGE.replacen(
        "/*categories*/[]",
        &serde_json::Value::from(categories).to_string(),
        1,
    );
    if pt {
        page.replacen("<html lang=\"en\">", "<html lang=\"pt-BR\">", 1)
    } else {
        page
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn answer(request: Request, live: &LiveStatus) {
    let path = request.url().split('?').next().unwrap_or("/").to_string();
    let (status, content_type, body) = match (request.method(), path.as_str()) {
        (Method::Get | Method::Head, "/" | "/index.html") => {
            (200, "text/html; charset=utf-8", page(crate::i18n::is_pt()))
        }
        (Method::Get | Method::Head, "/api/status") => {
            let body = serde_json::to_string(&live.status()).unwrap_or_else(|_| "{}".into());
            (200, "application/json", body)
        }
        (Method::Get | Method::Head, "/metrics") => (
            200,
            crate::metrics::CONTENT_TYPE,
            crate::metrics::render(&live.status()),
        ),
        (Method::Get | Method::Head, _) => (404, "text/plain; charset=utf-8", "not found\n".into()),
        _ => (
            405,
            "text/plain; charset=utf-8",
            "read-only: GET or HEAD\n".into(),
        ),
    };
    let mut response = Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"));
    if status == 405 {
        response = response.with_header(header("Allow", "GET, HEAD"));
    }
    if let Err(e) = request.respond(response) {
        log::debug!("dashboard: answering {path}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_page_has_every_category_with_its_labels() {
        let page = page(true);
        assert!(!page.contains("/*categories*/"));
        assert!(page.contains("<html lang=\"pt-BR\">"));
        for category in crate::category::Category::ALL {
            assert!(page.contains(&format!("\"key\":\"{}\"", category.key())));
        }
        assert!(page.contains("pulados (cache)") && page.contains("removed"));
    }

    #[test]
    fn a_bare_port_means_loopback() {
        assert_eq!(
            parse_address("8787").unwrap(),
            "127.0.0.1:8787".parse().unwrap()
        );
        assert_eq!(
            parse_address("0.0.0.0:9000").unwrap(),
            "0.0.0.0:9000".parse().unwrap()
        );
        assert!(parse_address("nowhere").is_err());
    }

    #[test]
    fn the_page_needs_nothing_from_outside() {
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://") && !PAGE.contains("//cdn"));
        assert!(PAGE.contains("/api/status"));
    }
}
