//! The structured event log of `--events FILE`: one JSON line per finished pair,
//! appended and flushed after each batch as the run goes, so a crash or a `kill -9`
//! still leaves every pair that was reported before it.
//!
//! A line looks like
//! `{"time":"2026-11-28T15:04:05.123Z","device":"portaria-1","registration_hash":"9f…",
//! "outcome":"registered","attempts":1,"latency_ms":184,"error":null}`:
//!
//! - `registration_hash` is [`KeySecret::registration_hash`]: an HMAC of the
//!   registration alone with the run's cache key, never the registration (it can be a
//!   CPF number). The same person has the same hash on every device, and in every run
//!   that shares the key (`CATRACA_CACHE_KEY` or the key file; `--cache none` draws a
//!   new key per run).
//! - `outcome` is a report category: `registered`, `updated`, `unchanged`,
//!   `skipped_cache`, `failed`, and `removed` for a person taken off a device
//!   (`--prune`, `--expire`, `catraca remove`; a removal that failed is `failed`).
//! - `attempts` is 1 + the retries of the job that finished the pair (a job is one load
//!   of up to 999 people or one write batch, so the pairs of a batch share it); 0 when
//!   no request was made for the pair (skipped by the cache, or not sent because the
//!   run was interrupted).
//! - `latency_ms` is how long that job took, all its requests included; null with 0
//!   attempts.
//! - `error` is the reason of a `failed` line, as the report gives it; null otherwise.
//!
//! Each pair has one line, with two exceptions, so that the file always adds up to the
//! report: a pair that `--verify` then finds missing from its device gets a second line,
//! `failed`, and the last line of a pair is its outcome; a device that could not be
//! listed for removals gets one `failed` line with a null `registration_hash`.

use crate::cache::KeySecret;
use crate::device::DeviceInfo;
use crate::live::rfc3339;
use crate::report::Counts;
use crate::reporter::{Settled, Watch};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// One line of the file.
#[derive(Debug, Serialize)]
struct Line<'a> {
    time: String,
    device: &'a str,
    /// Null for a line about the device itself (a failed listing).
    registration_hash: Option<String>,
    outcome: &'static str,
    attempts: u32,
    latency_ms: Option<u64>,
    error: Option<&'a str>,
}

/// The open events file, written by the reporter thread.
pub struct EventLog {
    path: PathBuf,
    out: BufWriter<File>,
    devices: Arc<[DeviceInfo]>,
    secret: KeySecret,
    /// The first write error; later lines are dropped, the run goes on.
    error: Option<std::io::Error>,
}

impl EventLog {
    /// Opens `path` for appending (created if missing), before anything is sent.
    pub fn open(
        path: &Path,
        devices: Arc<[DeviceInfo]>,
        secret: KeySecret,
    ) -> anyhow::Result<EventLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("--events {}: cannot open it: {e}", path.display()))?;
        Ok(EventLog {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            devices,
            secret,
            error: None,
        })
    }

    /// Flushes what is left; the first write error of the run, if any.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.flush();
        match self.error {
            Some(e) => Err(anyhow::anyhow!(
                "--events {}: writing failed ({e}); the file lacks some pairs",
                self.path.display()
            )),
            None => Ok(()),
        }
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.out.flush() {
                self.error = Some(e);
            }
        }
    }
}

impl Watch for EventLog {
    fn settled(&mut self, settled: &Settled<'_>) {
        if self.error.is_some() {
            return;
        }
        let line = Line {
            time: rfc3339(SystemTime::now()),
            device: &self.devices[settled.device].name,
            registration_hash: settled
                .registration
                .map(|r| self.secret.registration_hash(r)),
            outcome: if settled.planned {
                settled.category.planned_key()
            } else {
                settled.category.key()
            },
            attempts: settled.attempts,
            latency_ms: settled.latency.map(|l| l.as_millis() as u64),
            error: settled.error,
        };
        let written = serde_json::to_writer(&mut self.out, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        if let Err(e) = written {
            log::warn!(
                "--events {}: cannot write ({e}); the run goes on without it",
                self.path.display()
            );
            self.error = Some(e);
        }
    }

    fn batch(&mut self, _: &[Counts], _: u64) {
        self.flush();
    }
}
