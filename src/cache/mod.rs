//! The cache of pairs already done: which person is on which device, with which data.
//!
//! A pair is recorded only after the device confirmed it, under a key that is a keyed
//! hash of the device and the registration (registrations can be CPF numbers: personal
//! data that must not sit in a cache in clear), and its value is the person's
//! fingerprint. A later run skips a pair whose cached fingerprint equals the person's
//! current one. Lookups and records are made in bulk: one round trip per thousand keys.
//! During a run, confirmed pairs reach the cache through one writer that commits them
//! in groups ([`group_commit`]): a crash loses at most the last 100 ms of records, which
//! the next run finds on the devices instead.
//!
//! Two media behind one trait: an embedded crash-safe store on disk (the default, no
//! server needed) and Redis (shared between machines, as the system we replace did).
//! Every worker thread opens its own [`CacheConnection`] for lookups and forgets, and
//! the writer one for records: Redis connections are not `Sync`, and the embedded store
//! hands out cheap handles.

pub mod choice;
pub mod embedded;
pub mod group_commit;
pub mod key;
pub mod redis_cache;

pub use key::{CacheKey, DeviceKeys, KeySecret};

use thiserror::Error;

/// What went wrong with the cache. Messages name the store and never hold a password.
#[derive(Debug, Error)]
pub enum CacheError {
    #[error("cache store {path}: {message}")]
    Embedded { path: String, message: String },
    #[error("redis cache at {url}: {message}")]
    Redis { url: String, message: String },
    /// The secret that keys the cache, from a key file or `CATRACA_CACHE_KEY`; `origin`
    /// names which. Never holds the secret itself.
    #[error("cache key {origin}: {message}")]
    Key { origin: String, message: String },
}

/// A cache medium: opens one connection per worker thread.
pub trait Cache: Send + Sync {
    /// A short description for logs and the report, e.g. `embedded (/home/x/.cache/catraca/cache.redb)`
    /// or `redis (redis://127.0.0.1:6379/0)`; never holds a password.
    fn describe(&self) -> String;
    /// Opens a connection for one thread.
    fn connect(&self) -> Result<Box<dyn CacheConnection>, CacheError>;
    /// Whether the medium keeps anything. When not (`--cache none`), the engine neither
    /// looks pairs up nor computes their keys: a keyed hash per pair is a second of CPU
    /// per million pairs spent on nothing.
    fn remembers(&self) -> bool {
        true
    }
    /// Whether the medium is known to hold no pair at all when the run starts (a new
    /// embedded store): then no pair can be skipped, and the engine neither computes
    /// keys nor looks them up for it (half the keyed hashes of a first run). `false`
    /// when unknown, as for a Redis shared with others.
    fn known_empty(&self) -> bool {
        false
    }
}

/// One thread's connection to the cache.
pub trait CacheConnection: Send {
    /// The cached fingerprints of `keys`, in the same order; `None` where nothing is cached.
    /// Implementations batch: at most one round trip per 1,000 keys.
    fn lookup(&mut self, keys: &[CacheKey]) -> Result<Vec<Option<u64>>, CacheError>;
    /// Records pairs the device confirmed, in one transaction or pipeline, durable when
    /// this returns (it survives `kill -9` of this process).
    fn record(&mut self, entries: &[(CacheKey, u64)]) -> Result<(), CacheError>;
    /// Drops pairs whose person left the device (removed, pruned, expired, or found
    /// missing by `--verify`), so a later run that lists them again re-creates them.
    fn forget(&mut self, keys: &[CacheKey]) -> Result<(), CacheError>;
}

/// The cache used when `--cache none`: remembers nothing, so every pair is sent.
pub struct NoCache;

impl Cache for NoCache {
    fn describe(&self) -> String {
        "none".to_string()
    }
    fn connect(&self) -> Result<Box<dyn CacheConnection>, CacheError> {
        Ok(Box::new(NoCache))
    }
    fn remembers(&self) -> bool {
        false
    }
}

impl CacheConnection for NoCache {
    fn lookup(&mut self, keys: &[CacheKey]) -> Result<Vec<Option<u64>>, CacheError> {
        Ok(vec![None; keys.len()])
    }
    fn record(&mut self, _entries: &[(CacheKey, u64)]) -> Result<(), CacheError> {
        Ok(())
    }
    fn forget(&mut self, _keys: &[CacheKey]) -> Result<(), CacheError> {
        Ok(())
    }
}
