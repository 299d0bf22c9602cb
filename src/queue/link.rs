//! One process's connection to the central Redis, for `publish`, `agent` and `status`.
//!
//! The URL may carry a password (`redis://:PASSWORD@central:6379/0`) and `rediss://`
//! asks for TLS (rustls; the system's authorities, or those of the PEM file that
//! `SSL_CERT_FILE` names): it is shown only redacted, in every message. A failed request drops the connection, so the next one reconnects and a
//! reply still in flight is never read as the answer to another request. An agent runs
//! for months: [`QueueLink::patiently`] retries a request with backoff until Redis
//! answers again (a restart, a network cut), telling the operator once when it is lost
//! and once when it is back, so no outcome is dropped on the way.

use crate::cache::redis_cache::{client_for, connect_with_timeouts, explain, redact_url};
use redis::{Client, Connection, RedisResult};
use std::time::Duration;
use thiserror::Error;

/// How long to wait for a TCP connection to the central Redis. Two seconds, as the
/// cache: a Redis on a WAN answers in far less, and a lost one should be retried soon.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one request may wait for its answer. Longer than the agents' blocking read
/// (`BLOCK`, one second), which the server holds open on purpose, with room for a slow
/// WAN; a Redis silent for longer is lost and the link reconnects.
const READ_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first wait before retrying a lost Redis, doubled each time up to
/// [`MAX_BACKOFF`]: a restart takes a second or two, a network cut longer, and hundreds
/// of agents must not hammer a Redis that is coming back.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What went wrong with the queue; the URL is always redacted.
#[derive(Debug, Error)]
pub enum QueueError {
    #[error("--queue {url}: {message}")]
    Redis {
        url: String,
        message: String,
        /// Whether Redis could not be reached (down, restarting, the network): worth
        /// waiting for, unlike a wrong URL or password.
        unreachable: bool,
    },
}

impl QueueError {
    fn unreachable(&self) -> bool {
        match self {
            QueueError::Redis { unreachable, .. } => *unreachable,
        }
    }
}

/// A connection to the queue's Redis that reconnects after any failure.
pub struct QueueLink {
    client: Client,
    /// The URL with its password replaced by `***`: the only form in messages.
    url: String,
    connection: Option<Connection>,
}

impl QueueLink {
    /// Checks `url`, connects and sends PING, so a wrong address or password is
    /// reported before anything else is done.
    pub fn open(url: &str) -> Result<QueueLink, QueueError> {
        let redacted = redact_url(url);
        let client = client_for(url).map_err(|err| QueueError::Redis {
            url: redacted.clone(),
            message: format!(
                "is not a usable Redis URL ({}): expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or rediss://...",
                explain(&err)
            ),
            unreachable: false,
        })?;
        let mut link = QueueLink {
            client,
            url: redacted,
            connection: None,
        };
        link.run(|c| redis::cmd("PING").query::<String>(c))?;
        Ok(link)
    }

    /// [`QueueLink::open`] for a process that runs for months (an agent): a Redis that
    /// cannot be reached yet (the box booted before the network, Redis restarts) is
    /// waited for with backoff, as a lost one is later; a wrong URL or password is still
    /// an error at once.
    pub fn open_patiently(url: &str, give_up: &dyn Fn() -> bool) -> Result<QueueLink, QueueError> {
        let mut wait = FIRST_BACKOFF;
        let mut warned = false;
        loop {
            match QueueLink::open(url) {
                Err(err) if err.unreachable() && !give_up() => {
                    if !warned {
                        log::warn!("{err}; waiting until it answers");
                        warned = true;
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
                other => return other,
            }
        }
    }

    /// The URL, redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A second, independent connection to the same Redis (for another thread).
    pub fn another(&self) -> QueueLink {
        QueueLink {
            client: self.client.clone(),
            url: self.url.clone(),
            connection: None,
        }
    }

    /// Sends one request, once. On failure the connection is dropped (the next request
    /// reconnects).
    pub fn run<T>(
        &mut self,
        request: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, QueueError> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self.connection.insert(
                connect_with_timeouts(&self.client, CONNECT_TIMEOUT, READ_WRITE_TIMEOUT)
                    .map_err(|err| self.error(&err))?,
            ),
        };
        request(connection).map_err(|err| {
            self.connection = None;
            self.error(&err)
        })
    }

    /// Sends `request` until it succeeds, waiting longer after each failure (0.2 s
    /// doubling to 5 s): a lost Redis delays the work, never loses it. Gives up only
    /// when `give_up` says so (a second Ctrl-C exits the process anyway), with the last
    /// error.
    pub fn patiently<T>(
        &mut self,
        what: &str,
        give_up: &dyn Fn() -> bool,
        mut request: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, QueueError> {
        let mut wait = FIRST_BACKOFF;
        let mut warned = false;
        loop {
            match self.run(&mut request) {
                Ok(answer) => {
                    if warned {
                        log::warn!("the queue at {} answers again ({what})", self.url);
                    }
                    return Ok(answer);
                }
                Err(err) if give_up() => return Err(err),
                Err(err) => {
                    if !warned {
                        log::warn!("{err}; retrying until it answers ({what})");
                        warned = true;
                    } else {
                        log::debug!("{err}; retrying ({what})");
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn error(&self, err: &redis::RedisError) -> QueueError {
        QueueError::Redis {
            url: self.url.clone(),
            message: explain(err),
            unreachable: err.is_io_error()
                || err.is_timeout()
                || err.is_connection_refusal()
                || err.is_connection_dropped(),
        }
    }
}
