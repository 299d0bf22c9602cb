//! `catraca.toml`: defaults for a site, so the operator's command line stays short.
//!
//! The file is `--config FILE`, else `catraca.toml` in the current directory when there
//! is one. It may set what the flags set; precedence is flags > environment > file >
//! built-in defaults (a flag given on the command line always wins; `CATRACA_CACHE` /
//! `REDIS_URL` and the locale variables beat the file's `cache` and `lang`). Paths in
//! the file are relative to the file. Unknown keys are refused, so a typo does not
//! silently fall back to a default.
//!
//! ```toml
//! devices = "devices.toml"
//! threads = 10
//! max_in_flight = 2
//! batch_size = 100
//! timeout = 30
//! connect_timeout = 5
//! retries = 3
//! rate = 20
//! cache = "redis://127.0.0.1:6379/0"   # or "embedded", "none"
//! cache_path = "cache.redb"
//! lang = "pt-BR"
//! dashboard = "127.0.0.1:8787"
//! dashboard_linger = "60s"
//! metrics_file = "/var/lib/node_exporter/textfile/catraca.prom"
//! ca_cert = "site-ca.pem"   # the site's certificate authority, for https devices
//! ```
//!
//! The file is read here; the command line turns it into a run's configuration
//! (`cli::resolve`), where each value's precedence is decided once.
//!
//! `--insecure-tls` has no key here on purpose: accepting any certificate must be asked
//! for on the command line of the run that does it.

use serde::Deserialize;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// The file looked for in the current directory when `--config` is not given.
pub const DEFAULT_FILE: &str = "catraca.toml";

/// What is wrong with the configuration file.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("--config {path}: cannot read it: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

/// The settings a `catraca.toml` may hold; each is optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub devices: Option<PathBuf>,
    pub threads: Option<NonZeroUsize>,
    pub max_in_flight: Option<NonZeroUsize>,
    pub batch_size: Option<NonZeroUsize>,
    pub timeout: Option<u64>,
    pub connect_timeout: Option<u64>,
    pub retries: Option<u32>,
    pub rate: Option<f64>,
    pub cache: Option<String>,
    pub cache_path: Option<PathBuf>,
    pub lang: Option<String>,
    pub dashboard: Option<String>,
    pub dashboard_linger: Option<String>,
    pub metrics_file: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    /// Where the settings came from (not a key of the file).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

impl Settings {
    /// Reads `explicit` (`--config`), else `./catraca.toml` if it exists, else nothing.
    pub fn load(explicit: Option<&Path>) -> Result<Settings, SettingsError> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => {
                let here = PathBuf::from(DEFAULT_FILE);
                if !here.is_file() {
                    return Ok(Settings::default());
                }
                here
            }
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|error| SettingsError::Read {
            path: shown.clone(),
            error,
        })?;
        let mut settings: Settings = toml::from_str(&text).map_err(|e| SettingsError::Parse {
            path: shown.clone(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if let Some(linger) = &settings.dashboard_linger {
            parse_duration(linger).map_err(|message| SettingsError::Parse {
                path: shown.clone(),
                message: format!("dashboard_linger: {message}"),
            })?;
        }
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let resolve = |p: &mut Option<PathBuf>| {
            if let Some(p) = p {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        };
        resolve(&mut settings.devices);
        resolve(&mut settings.cache_path);
        resolve(&mut settings.metrics_file);
        resolve(&mut settings.ca_cert);
        settings.path = Some(path);
        Ok(settings)
    }
}

/// Reads `90`, `90s`, `5m`, `1h` or `500ms` as a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: write e.g. 60s, 5m or 1h"))?;
    match unit.trim() {
        "" | "s" => Ok(Duration::from_secs(number)),
        "ms" => Ok(Duration::from_millis(number)),
        "m" | "min" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        other => Err(format!(
            "{other:?} is not a unit of time: use ms, s, m or h (e.g. 60s)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_operators_write_them() {
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn unknown_keys_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catraca.toml");
        std::fs::write(&path, "thread = 4\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("catraca.toml") && err.contains("thread"),
            "{err}"
        );
        std::fs::write(&path, "threads = 4\ndevices = \"d.toml\"\n").unwrap();
        let settings = Settings::load(Some(&path)).unwrap();
        assert_eq!(settings.threads.unwrap().get(), 4);
        assert_eq!(settings.devices.unwrap(), dir.path().join("d.toml"));
        assert!(Settings::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
