//! Which cache a run uses, decided once, and opening it with the secret that keys it.
//!
//! The rule: `--cache`, else `CATRACA_CACHE`, else `REDIS_URL`, else `cache` in
//! catraca.toml, else the embedded store. The embedded store is the default because it
//! needs no server and survives a crash; Redis is for caches shared between machines.

use super::embedded::EmbeddedCache;
use super::redis_cache::{redact_url, RedisCache};
use super::{Cache, KeySecret, NoCache};
use anyhow::Context;
use std::path::{Path, PathBuf};

/// The cache of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheChoice {
    /// Remember nothing (every pair is looked up on its device).
    None,
    /// The on-disk store at this path (its key file beside it).
    Embedded(PathBuf),
    /// A Redis server, by URL (it may hold a password: shown only redacted).
    Redis(String),
}

impl CacheChoice {
    /// Applies the rule above. `flag` is `--cache`, `file` the settings file's `cache`,
    /// `env` reads the environment, `embedded_path` is where the store lives.
    pub fn pick(
        flag: Option<&str>,
        file: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        embedded_path: PathBuf,
    ) -> anyhow::Result<CacheChoice> {
        let named = flag
            .map(str::to_string)
            .or_else(|| env("CATRACA_CACHE"))
            .or_else(|| env("REDIS_URL"))
            .or_else(|| file.map(str::to_string))
            .unwrap_or_else(|| "embedded".to_string());
        match named.as_str() {
            "none" => Ok(CacheChoice::None),
            "embedded" => Ok(CacheChoice::Embedded(embedded_path)),
            url if url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis+unix://") =>
            {
                Ok(CacheChoice::Redis(url.to_string()))
            }
            other => anyhow::bail!(
                "--cache {}: not a cache; use embedded, none or a redis:// URL",
                redact_url(other)
            ),
        }
    }

    /// Opens the cache and the secret that keys it (`CATRACA_CACHE_KEY`, else a key
    /// file: beside the embedded store, or `~/.config/catraca/cache.key` for Redis).
    pub fn open(&self) -> anyhow::Result<(Box<dyn Cache>, KeySecret)> {
        let from_env = std::env::var("CATRACA_CACHE_KEY")
            .ok()
            .filter(|v| !v.is_empty());
        let secret_at = |path: &Path| -> anyhow::Result<KeySecret> {
            match &from_env {
                Some(hex) => KeySecret::from_hex(hex).context("CATRACA_CACHE_KEY"),
                None => Ok(KeySecret::load_or_create(path)?),
            }
        };
        match self {
            CacheChoice::None => Ok((Box::new(NoCache), KeySecret::random())),
            CacheChoice::Embedded(path) => {
                let cache = EmbeddedCache::open(path)?;
                let secret = secret_at(&path.with_extension("key"))?;
                Ok((Box::new(cache), secret))
            }
            CacheChoice::Redis(url) => {
                let cache = RedisCache::open(url)?;
                let key_path = dirs::config_dir()
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join("catraca")
                    .join("cache.key");
                let secret = secret_at(&key_path)?;
                Ok((Box::new(cache), secret))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_environment_then_file_then_embedded() {
        let path = PathBuf::from("/tmp/c.redb");
        let none = |_: &str| None;
        let redis = |name: &str| (name == "REDIS_URL").then(|| "redis://r:6379".to_string());
        let pick = |flag, file, env: &dyn Fn(&str) -> Option<String>| {
            CacheChoice::pick(flag, file, env, path.clone()).unwrap()
        };
        assert_eq!(pick(None, None, &none), CacheChoice::Embedded(path.clone()));
        assert_eq!(pick(None, Some("none"), &none), CacheChoice::None);
        assert_eq!(
            pick(None, Some("none"), &redis),
            CacheChoice::Redis("redis://r:6379".into())
        );
        assert_eq!(
            pick(Some("embedded"), None, &redis),
            CacheChoice::Embedded(path.clone())
        );
        let error = CacheChoice::pick(Some("redis-ish://u:secret@h"), None, &none, path.clone())
            .unwrap_err()
            .to_string();
        assert!(!error.contains("secret"), "{error}");
    }
}
