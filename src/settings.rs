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
//! `--insecure-tls` has no key here on purpose: accepting any certificate must be asked
//! for on the command line of the run that does it.

use crate::cli::{Cli, Command, RunArgs, TlsArgs, WatchArgs};
use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
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
            crate::cli::parse_duration(linger).map_err(|message| SettingsError::Parse {
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

    /// Fills what the command line left at its default with the file's values.
    /// `env` reads the environment (for `cache`, which `CATRACA_CACHE` / `REDIS_URL`
    /// override).
    pub fn apply(&self, cli: &mut Cli, matches: &ArgMatches, env: &dyn Fn(&str) -> Option<String>) {
        let Some((_, sub)) = matches.subcommand() else {
            return;
        };
        let unset = |id: &str| {
            !matches!(
                sub.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        match &mut cli.command {
            Command::Enroll(args) | Command::Plan(args) | Command::Remove(args) => {
                if args.devices.is_none() && args.device_urls.is_empty() {
                    args.devices.clone_from(&self.devices);
                }
                if unset("cache") && env("CATRACA_CACHE").is_none() && env("REDIS_URL").is_none() {
                    args.cache = args.cache.take().or_else(|| self.cache.clone());
                }
                if let Some(path) = self.cache_path.as_ref().filter(|_| unset("cache_path")) {
                    args.cache_path = path.clone();
                }
                self.apply_run(&mut args.run, &unset);
                self.apply_watch(&mut args.watch, &unset);
                self.apply_ca_cert(&mut args.tls);
            }
            Command::Demo(args) => self.apply_run(&mut args.run, &unset),
            Command::Check(args) => {
                if args.devices.is_none() && args.device_urls.is_empty() {
                    args.devices.clone_from(&self.devices);
                }
                self.apply_ca_cert(&mut args.tls);
            }
            Command::LearnCard(args) => {
                if args.devices.is_none() && !args.device.contains("://") {
                    args.devices.clone_from(&self.devices);
                }
                self.apply_ca_cert(&mut args.tls);
            }
            Command::Simulate(_) | Command::Completions(_) | Command::Bench(_) => {}
        }
    }

    fn apply_ca_cert(&self, tls: &mut TlsArgs) {
        if tls.ca_cert.is_none() && self.ca_cert.is_some() {
            tls.ca_cert.clone_from(&self.ca_cert);
            tls.ca_cert_origin = Some(format!(
                "ca_cert in {}",
                self.path
                    .as_deref()
                    .unwrap_or(Path::new(DEFAULT_FILE))
                    .display()
            ));
        }
    }

    fn apply_run(&self, run: &mut RunArgs, unset: &dyn Fn(&str) -> bool) {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>, free: bool) {
            if let Some(value) = value.as_ref().filter(|_| free) {
                *slot = value.clone();
            }
        }
        set(&mut run.threads, &self.threads, unset("threads"));
        set(
            &mut run.max_in_flight,
            &self.max_in_flight,
            unset("max_in_flight"),
        );
        set(&mut run.batch_size, &self.batch_size, unset("batch_size"));
        set(&mut run.timeout, &self.timeout, unset("timeout"));
        set(
            &mut run.connect_timeout,
            &self.connect_timeout,
            unset("connect_timeout"),
        );
        set(&mut run.retries, &self.retries, unset("retries"));
        if run.rate.is_none() {
            run.rate = self.rate;
        }
    }

    fn apply_watch(&self, watch: &mut WatchArgs, unset: &dyn Fn(&str) -> bool) {
        if watch.dashboard.is_none() {
            watch.dashboard.clone_from(&self.dashboard);
        }
        if let Some(linger) = self
            .dashboard_linger
            .as_deref()
            .filter(|_| unset("dashboard_linger"))
        {
            if let Ok(linger) = crate::cli::parse_duration(linger) {
                watch.dashboard_linger = linger;
            }
        }
        if watch.metrics_file.is_none() {
            watch.metrics_file.clone_from(&self.metrics_file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
