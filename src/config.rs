//! Which devices to enroll on, and with which credentials: the `--devices` TOML file and
//! repeated `--device [KIND+]URL` flags, validated into [`DeviceConfig`]s before anything is
//! sent.
//!
//! A password never comes from the command line (shell history, `ps`): it comes from
//! the variable a device's `password_env` names, else `CATRACA_PASSWORD`, else the
//! factory default `admin` with a warning. URLs with credentials in them are refused.
//!
//! ```toml
//! [[device]]
//! name = "portaria-1"
//! url = "http://10.0.0.5"
//! kind = "controlid"          # the default; or "hikvision", "intelbras"
//! max_in_flight = 2           # optional, else --max-in-flight
//! rate = 20                   # optional requests/s, else --rate (no limit)
//! nonce_uses = 2              # Hikvision, Intelbras: uses of one Digest nonce (default 2)
//! long_names = "cut"          # Hikvision: cut names to the device's limit, or "fail"
//! login = "operador"          # optional, else CATRACA_LOGIN, else admin
//! password_env = "PORTARIA_PASSWORD"  # or: password_file = "/etc/catraca/portaria.pw" (mode 600)
//!
//! [[device]]
//! url = "https://10.0.0.6"    # a self-signed certificate: pin it (or run --insecure-tls)
//! tls_fingerprint = "sha256:AB:CD:...:EF"   # or a list, while a certificate is replaced
//! kind = "intelbras"
//! card_format = "w26-hex"     # how its reader writes cards (see `card.rs`); else the vendor's
//! card_pad = 8                # optional: zero-pad cards to 8 characters
//! faces = true                # takes face photos; omitted: the driver asks the device
//! ```
//!
//! An `https://` device is trusted as [`TlsTrust`] says: its pinned fingerprints when it
//! has some, else anything under `--insecure-tls`, else the certificate authorities of
//! the system and `--ca-cert`.

use crate::card::CardRule;
use crate::device::controlid::ControlIdDevice;
use crate::device::digest::DEFAULT_NONCE_USES;
use crate::device::faces::Faces;
use crate::device::hikvision::HikvisionDevice;
use crate::device::hikvision_firmware::LongNames;
use crate::device::http::{HttpClient, Timeouts};
use crate::device::intelbras::IntelbrasDevice;
use crate::device::tls::{Fingerprint, TlsTrust};
use crate::device::trace::HttpTrace;
use crate::device::Device;
use crate::device::{Credentials, RetryPolicy};
use crate::i18n::{t, tr, Msg};
use crate::photo::PhotoRun;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Factory credentials of Control iD devices, used when nothing else is configured.
const FACTORY_LOGIN: &str = "admin";
const FACTORY_PASSWORD: &str = "admin";

/// What is wrong with the device configuration; every message says how to fix it.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{}", tr(Msg::CfgRead, &[("path", .path), ("error", .source)]))]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", tr(Msg::CfgParse, &[("path", .path), ("message", .message)]))]
    Parse { path: String, message: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("{}", t(Msg::CfgNoDevices))]
    NoDevices,
}

pub use crate::vendor::Kind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevicesFile {
    #[serde(default)]
    device: Vec<DeviceEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceEntry {
    name: Option<String>,
    /// Optional only in a central fleet file (`catraca publish`), which names devices
    /// without reaching them; every file that reaches devices needs it.
    url: Option<String>,
    site: Option<String>,
    kind: Option<Kind>,
    max_in_flight: Option<usize>,
    rate: Option<f64>,
    nonce_uses: Option<u32>,
    long_names: Option<LongNames>,
    login: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    tls_fingerprint: Option<Fingerprints>,
    card_format: Option<String>,
    card_pad: Option<usize>,
    faces: Option<bool>,
}

/// `tls_fingerprint`: one fingerprint, or a list of them.
#[derive(Debug)]
struct Fingerprints(Vec<String>);

impl<'de> Deserialize<'de> for Fingerprints {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Expecting;
        impl<'de> serde::de::Visitor<'de> for Expecting {
            type Value = Fingerprints;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a certificate fingerprint in quotes, \"sha256:AB:CD:...\", or a list of them",
                )
            }
            fn visit_str<E: serde::de::Error>(self, one: &str) -> Result<Fingerprints, E> {
                Ok(Fingerprints(vec![one.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Fingerprints, A::Error> {
                let mut all = Vec::new();
                while let Some(one) = seq.next_element::<String>()? {
                    all.push(one);
                }
                Ok(Fingerprints(all))
            }
        }
        deserializer.deserialize_any(Expecting)
    }
}

/// How certificates of https devices are trusted when a device pins none.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `--insecure-tls`: accept any certificate.
    pub insecure: bool,
    /// `--ca-cert`: authorities trusted beside the system's.
    pub extra_authorities: Vec<rustls_pki_types::CertificateDer<'static>>,
}

/// One device, ready to connect to.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    pub name: String,
    pub url: String,
    pub kind: Kind,
    /// The site whose private network the device is on (`site = "campinas"`), for
    /// `catraca publish` and `catraca agent`; `None` for a device of no named site.
    pub site: Option<String>,
    pub max_in_flight: usize,
    /// Requests per second at most, on average (`None`: as fast as `max_in_flight` allows).
    pub rate: Option<f64>,
    /// Digest devices: requests signed with one nonce before a fresh challenge is
    /// fetched (`nonce_uses`; `None`: the driver's default, 2).
    pub nonce_uses: Option<u32>,
    /// Hikvision: names longer than the device takes are cut (the default) or fail.
    pub long_names: Option<LongNames>,
    pub credentials: Credentials,
    /// Which certificates the device may present (used for https URLs only).
    pub tls: TlsTrust,
    /// How the device's reader writes cards (`card_format`, `card_pad`).
    pub cards: CardRule,
    /// `--trace-http`: where its exchanges are written (`None`: nowhere).
    pub trace: Option<Arc<HttpTrace>>,
    /// `faces = true|false`: whether it takes face photos; `None`: the driver asks it.
    pub faces: Option<bool>,
}

impl DeviceConfig {
    /// The driver for this device, without photos to send (`check`).
    pub fn connect(&self, timeouts: Timeouts, retry: RetryPolicy) -> Arc<dyn Device> {
        self.connect_for(timeouts, retry, &PhotoRun::default())
    }

    /// The driver for this device in a run whose photos `photos` prepares.
    pub fn connect_for(
        &self,
        timeouts: Timeouts,
        retry: RetryPolicy,
        photos: &PhotoRun,
    ) -> Arc<dyn Device> {
        let (name, url, credentials) = (&self.name, &self.url, self.credentials.clone());
        let http = HttpClient::new(timeouts, self.max_in_flight, self.tls.clone())
            .with_rate(self.rate)
            .with_trace(self.trace.clone());
        let faces = Faces::new(photos.clone(), self.faces, Arc::clone(http.telemetry()));
        match self.kind {
            Kind::Controlid => Arc::new(
                ControlIdDevice::new(name, url, credentials, http, retry)
                    .with_cards(self.cards)
                    .with_faces(faces),
            ),
            Kind::Hikvision => Arc::new(
                HikvisionDevice::new(name, url, credentials, http, retry)
                    .with_cards(self.cards)
                    .with_nonce_uses(self.nonce_uses.unwrap_or(DEFAULT_NONCE_USES))
                    .with_long_names(self.long_names.unwrap_or_default())
                    .with_faces(faces),
            ),
            Kind::Intelbras => Arc::new(
                IntelbrasDevice::new(name, url, credentials, http, retry)
                    .with_cards(self.cards)
                    .with_nonce_uses(self.nonce_uses.unwrap_or(DEFAULT_NONCE_USES))
                    .with_faces(faces),
            ),
        }
    }
}

/// Reads the devices file (if any) and the `--device` URLs into validated devices.
/// `env` reads an environment variable (injected so tests do not touch the process's).
/// Warnings (factory password in use) are returned for the caller to log.
pub fn load_devices(
    file: Option<&Path>,
    urls: &[String],
    default_max_in_flight: usize,
    default_rate: Option<f64>,
    tls: &TlsOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<DeviceConfig>, Vec<String>), ConfigError> {
    let mut entries: Vec<(String, DeviceEntry)> = Vec::new();
    if let Some(path) = file {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let parsed: DevicesFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: shown.clone(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if parsed.device.is_empty() {
            return Err(ConfigError::Parse {
                path: shown,
                message: t(Msg::CfgNoTables).into(),
            });
        }
        for (i, entry) in parsed.device.into_iter().enumerate() {
            entries.push((
                tr(Msg::CfgEntry, &[("path", &shown), ("number", &(i + 1))]),
                entry,
            ));
        }
    }
    for url in urls {
        // `hikvision+http://...` names the family; a plain URL is Control iD.
        let (kind, url) = match url.split_once("+http") {
            Some((kind, rest)) if !kind.contains('/') => match Kind::from_name(kind) {
                Some(kind) => (Some(kind), format!("http{rest}")),
                None => {
                    return Err(ConfigError::Invalid {
                        origin: "--device".into(),
                        message: tr(Msg::CfgBadFamily, &[("kind", &format!("{kind:?}"))]),
                    })
                }
            },
            _ => (None, url.clone()),
        };
        entries.push((
            "--device".to_string(),
            DeviceEntry {
                name: None,
                url: Some(url),
                site: None,
                kind,
                max_in_flight: None,
                rate: None,
                nonce_uses: None,
                long_names: None,
                login: None,
                password_env: None,
                password_file: None,
                tls_fingerprint: None,
                card_format: None,
                card_pad: None,
                faces: None,
            },
        ));
    }
    if entries.is_empty() {
        return Err(ConfigError::NoDevices);
    }

    let mut warnings = Vec::new();
    let mut names = HashSet::new();
    let mut seen_urls = HashSet::new();
    let mut devices = Vec::new();
    for (origin, entry) in entries {
        let invalid = |message: String| ConfigError::Invalid {
            origin: origin.clone(),
            message,
        };
        let Some(url) = entry.url.as_deref() else {
            return Err(invalid(
                "no url: a devices file that catraca reaches devices with gives each [[device]] its url = \"http://...\" (only the central fleet file of catraca publish may leave it out)".into(),
            ));
        };
        let url = validate_url(url).map_err(invalid)?;
        let name = entry
            .name
            .clone()
            .unwrap_or_else(|| host_of(&url).to_string());
        if name.trim().is_empty() {
            return Err(invalid(t(Msg::CfgEmptyName).into()));
        }
        if !names.insert(name.clone()) {
            return Err(invalid(tr(
                Msg::CfgDuplicateName,
                &[("name", &format!("{name:?}"))],
            )));
        }
        if !seen_urls.insert(url.clone()) {
            return Err(invalid(tr(Msg::CfgDuplicateUrl, &[("url", &url)])));
        }
        let max_in_flight = entry.max_in_flight.unwrap_or(default_max_in_flight);
        if max_in_flight == 0 {
            return Err(invalid(t(Msg::CfgMaxInFlight).into()));
        }
        let rate = entry.rate.or(default_rate);
        if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return Err(invalid(t(Msg::CfgRate).into()));
        }
        if entry.nonce_uses == Some(0) {
            return Err(invalid(
                "nonce_uses = 0: a Digest nonce must sign at least 1 request; give 1 or more (2 suits most Hikvision terminals)".into(),
            ));
        }
        let pinned: Vec<Fingerprint> = match &entry.tls_fingerprint {
            None => Vec::new(),
            Some(Fingerprints(written)) if written.is_empty() => {
                return Err(invalid(t(Msg::CfgNoFingerprints).into()));
            }
            Some(Fingerprints(written)) => written
                .iter()
                .map(|one| one.parse::<Fingerprint>())
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
        };
        if !pinned.is_empty() && !url.starts_with("https://") {
            return Err(invalid(tr(Msg::CfgFingerprintHttp, &[("url", &url)])));
        }
        let trust = if !pinned.is_empty() {
            TlsTrust::Pinned(pinned)
        } else if tls.insecure {
            TlsTrust::Insecure
        } else {
            TlsTrust::Authorities {
                extra: Arc::from(tls.extra_authorities.clone()),
            }
        };
        let login = entry
            .login
            .clone()
            .or_else(|| env("CATRACA_LOGIN"))
            .unwrap_or_else(|| FACTORY_LOGIN.to_string());
        if entry.password_env.is_some() && entry.password_file.is_some() {
            return Err(invalid(t(Msg::CfgBothPasswords).into()));
        }
        let (password, source) = match &entry.password_env {
            None if entry.password_file.is_some() => {
                let path = entry.password_file.as_deref().expect("checked");
                (
                    read_password_file(path).map_err(invalid)?,
                    format!("{} (password_file of device {name})", path.display()),
                )
            }
            Some(var) => match env(var) {
                Some(p) => (p, format!("{var} (password_env of device {name})")),
                None => return Err(invalid(tr(Msg::CfgPasswordEnvUnset, &[("var", var)]))),
            },
            None => match env("CATRACA_PASSWORD") {
                Some(p) => (p, "CATRACA_PASSWORD".to_string()),
                None => {
                    warnings.push(tr(
                        Msg::CfgFactoryPassword,
                        &[
                            ("name", &name),
                            ("login", &FACTORY_LOGIN),
                            ("password", &FACTORY_PASSWORD),
                        ],
                    ));
                    (
                        FACTORY_PASSWORD.to_string(),
                        "CATRACA_PASSWORD (not set: the factory default was used)".to_string(),
                    )
                }
            },
        };
        let kind = entry.kind.unwrap_or(Kind::Controlid);
        let cards = CardRule::for_device(kind, entry.card_format.as_deref(), entry.card_pad)
            .map_err(|why| invalid(format!("device {name}: {why}")))?;
        let site = entry.site.clone();
        if site.as_deref().is_some_and(|s| !valid_site(s)) {
            return Err(invalid(site_rule(site.as_deref().unwrap_or_default())));
        }
        devices.push(DeviceConfig {
            name,
            url,
            kind,
            site,
            max_in_flight,
            rate,
            nonce_uses: entry.nonce_uses,
            long_names: entry.long_names,
            credentials: Credentials {
                login,
                password,
                source,
            },
            tls: trust,
            cards,
            trace: None,
            faces: entry.faces,
        });
    }
    Ok((devices, warnings))
}

/// One device of the central fleet file of `catraca publish`: who it is and where,
/// never how to reach it (no URL or password needs to leave its site).
#[derive(Debug, Clone)]
pub struct FleetDevice {
    pub name: String,
    pub site: String,
    pub kind: Kind,
    /// How its reader writes cards: publish checks the CSV's cards as enroll does.
    pub cards: CardRule,
}

/// Reads the central fleet file: every `[[device]]` with its `name` and `site` (and
/// `kind`, `card_format`, `card_pad` when not the defaults). URLs and credentials may
/// be there or not; they are not read.
pub fn load_fleet(path: &Path) -> Result<Vec<FleetDevice>, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    let parsed: DevicesFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: shown.clone(),
        message: e.to_string().trim_end().to_string(),
    })?;
    if parsed.device.is_empty() {
        return Err(ConfigError::Parse {
            path: shown,
            message: t(Msg::CfgNoTables).into(),
        });
    }
    let mut names = HashSet::new();
    let mut fleet = Vec::new();
    for (i, entry) in parsed.device.into_iter().enumerate() {
        let invalid = |message: String| ConfigError::Invalid {
            origin: tr(Msg::CfgEntry, &[("path", &shown), ("number", &(i + 1))]),
            message,
        };
        let Some(name) = entry.name.filter(|n| !n.trim().is_empty()) else {
            return Err(invalid(
                "no name: the fleet file names every device (name = \"portaria-1\"), as its site's devices file does".into(),
            ));
        };
        let Some(site) = entry.site else {
            return Err(invalid(format!(
                "device {name} has no site: give it site = \"...\", the --site of the agent that reaches it"
            )));
        };
        if !valid_site(&site) {
            return Err(invalid(site_rule(&site)));
        }
        if !names.insert(name.clone()) {
            return Err(invalid(tr(
                Msg::CfgDuplicateName,
                &[("name", &format!("{name:?}"))],
            )));
        }
        let kind = entry.kind.unwrap_or(Kind::Controlid);
        let cards = CardRule::for_device(kind, entry.card_format.as_deref(), entry.card_pad)
            .map_err(|why| invalid(format!("device {name}: {why}")))?;
        fleet.push(FleetDevice {
            name,
            site,
            kind,
            cards,
        });
    }
    Ok(fleet)
}

/// Whether `site` can name a site: it becomes part of Redis key names
/// (`catraca:{site}:jobs`), so letters, digits, `-`, `_` and `.` only.
pub fn valid_site(site: &str) -> bool {
    !site.is_empty()
        && site.len() <= 64
        && site
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What is wrong with a site name that is not [`valid_site`].
pub fn site_rule(site: &str) -> String {
    format!(
        "site {site:?}: a site is named with letters, digits, '-', '_' and '.' only (at most 64), e.g. site = \"campinas\""
    )
}

/// Reads a password from a file that only its owner can read: a password in a file
/// others can read is as good as published.
fn read_password_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let failed = |e: std::io::Error| tr(Msg::CfgPasswordFile, &[("path", &shown), ("error", &e)]);
    let metadata = std::fs::metadata(path).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(tr(
                Msg::CfgPasswordFileOpen,
                &[("path", &shown), ("mode", &format!("{:o}", mode & 0o777))],
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    let text = std::fs::read_to_string(path).map_err(failed)?;
    let password = text.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(tr(Msg::CfgPasswordFileEmpty, &[("path", &shown)]));
    }
    Ok(password)
}

/// Checks a device URL and returns it without a trailing slash. The URL is never echoed
/// back when it holds credentials.
fn validate_url(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(tr(Msg::CfgNotUrl, &[("url", &format!("{url:?}"))]));
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err(t(Msg::CfgUrlCredentials).into());
    }
    if authority.is_empty() {
        return Err(tr(Msg::CfgNoHost, &[("url", &format!("{url:?}"))]));
    }
    Ok(url.to_string())
}

fn host_of(url: &str) -> &str {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or(url)
}

/// Gives every device the `--trace-http` file, created (or emptied) now.
pub fn trace_devices(devices: &mut [DeviceConfig], path: Option<&Path>) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(path) = path {
        let trace = crate::device::trace::HttpTrace::create(path).with_context(|| {
            format!(
                "--trace-http {}: cannot create it; give a file in a writable directory",
                path.display()
            )
        })?;
        let trace = Arc::new(trace);
        for device in devices.iter_mut() {
            device.trace = Some(Arc::clone(&trace));
        }
    }
    Ok(())
}

/// Warns, once per run, of https devices whose certificates are not checked.
pub fn warn_insecure(devices: &[DeviceConfig]) {
    let unchecked: Vec<&str> = devices
        .iter()
        .filter(|d| d.url.starts_with("https://") && d.tls == TlsTrust::Insecure)
        .map(|d| d.name.as_str())
        .collect();
    if !unchecked.is_empty() {
        log::warn!(
            "{}",
            tr(Msg::WarnInsecureTls, &[("devices", &unchecked.join(", "))])
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::CardFormat;
    use std::collections::HashMap;

    /// `load_devices` on `--device` URLs alone, with the default limits and trust.
    fn from_urls(
        urls: &[String],
        vars: &[(&str, &str)],
    ) -> Result<(Vec<DeviceConfig>, Vec<String>), ConfigError> {
        load_devices(None, urls, 2, None, &TlsOptions::default(), &env_of(vars))
    }

    /// `load_devices` on a devices file alone, with the default limits and trust.
    fn from_file(
        path: &Path,
        vars: &[(&str, &str)],
    ) -> Result<(Vec<DeviceConfig>, Vec<String>), ConfigError> {
        load_devices(
            Some(path),
            &[],
            2,
            None,
            &TlsOptions::default(),
            &env_of(vars),
        )
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn device_urls_get_names_and_the_environment_password() {
        let (devices, warnings) = load_devices(
            None,
            &["http://10.0.0.5/".into(), "http://10.0.0.6:8080".into()],
            2,
            Some(5.0),
            &TlsOptions::default(),
            &env_of(&[("CATRACA_PASSWORD", "s3cret")]),
        )
        .unwrap();
        assert!(warnings.is_empty());
        assert_eq!(devices[0].name, "10.0.0.5");
        assert_eq!(devices[0].url, "http://10.0.0.5");
        assert_eq!(devices[1].name, "10.0.0.6:8080");
        assert_eq!(devices[1].credentials.password, "s3cret");
        assert_eq!(devices[1].credentials.login, "admin");
        assert_eq!(devices[1].rate, Some(5.0));
    }

    #[test]
    fn a_device_flag_can_name_its_family() {
        let (devices, _) = from_urls(
            &[
                "hikvision+http://10.0.0.7".into(),
                "intelbras+http://10.0.0.8".into(),
                "http://10.0.0.9".into(),
                "hikvision+https://10.0.0.10".into(),
            ],
            &[("CATRACA_PASSWORD", "x")],
        )
        .unwrap();
        let kinds: Vec<Kind> = devices.iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Hikvision,
                Kind::Intelbras,
                Kind::Controlid,
                Kind::Hikvision
            ]
        );
        assert_eq!(devices[0].url, "http://10.0.0.7");
        assert_eq!(devices[3].url, "https://10.0.0.10");
        let err = from_urls(&["zkteco+http://a".into()], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a device family"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.toml");
        std::fs::write(
            &path,
            "[[device]]\nurl = \"http://a\"\nkind = \"intelbras\"\n",
        )
        .unwrap();
        let (devices, _) = from_file(&path, &[]).unwrap();
        assert_eq!(devices[0].kind, Kind::Intelbras);
        assert_eq!(
            devices[0]
                .connect(Timeouts::default(), RetryPolicy::default())
                .kind(),
            Kind::Intelbras
        );
    }

    #[test]
    fn card_formats_come_from_the_file_else_the_vendor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.toml");
        std::fs::write(
            &path,
            "[[device]]\nurl = \"http://a\"\nkind = \"intelbras\"\ncard_format = \"w26\"\ncard_pad = 10\n\
             [[device]]\nurl = \"http://b\"\nkind = \"hikvision\"\n",
        )
        .unwrap();
        let (devices, _) = from_file(&path, &[]).unwrap();
        assert_eq!(devices[0].cards.format, CardFormat::W26);
        assert_eq!(
            (devices[0].cards.pad, devices[0].cards.explicit),
            (10, true)
        );
        assert_eq!(devices[1].cards, CardRule::vendor_default(Kind::Hikvision));
        std::fs::write(
            &path,
            "[[device]]\nname = \"portaria-1\"\nurl = \"http://a\"\ncard_format = \"w26-hex\"\n",
        )
        .unwrap();
        let err = from_file(&path, &[]).unwrap_err().to_string();
        assert!(
            err.contains("devices.toml")
                && err.contains("portaria-1")
                && err.contains("as a number"),
            "{err}"
        );
    }

    #[test]
    fn factory_password_is_used_with_a_warning() {
        let (devices, warnings) = from_urls(&["http://10.0.0.5".into()], &[]).unwrap();
        assert_eq!(devices[0].credentials.password, "admin");
        assert!(warnings[0].contains("factory default"));
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_echoing_them() {
        let err = from_urls(&["http://admin:hunter2@10.0.0.5".into()], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("must not hold credentials"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn devices_file_with_password_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.toml");
        std::fs::write(
            &path,
            "[[device]]\nname = \"portaria-1\"\nurl = \"http://10.0.0.5\"\nmax_in_flight = 1\nlogin = \"op\"\npassword_env = \"PORTARIA_PW\"\n",
        )
        .unwrap();
        let (devices, _) = from_file(&path, &[("PORTARIA_PW", "x")]).unwrap();
        assert_eq!(devices[0].name, "portaria-1");
        assert_eq!(devices[0].max_in_flight, 1);
        assert_eq!(devices[0].credentials.login, "op");
        let err = from_file(&path, &[]).unwrap_err().to_string();
        assert!(
            err.contains("PORTARIA_PW") && err.contains("not set"),
            "{err}"
        );
    }

    #[test]
    fn bad_devices_files_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.toml");
        std::fs::write(&path, "[[device]]\nurl = \"http://a\"\nmax_in_fligth = 3\n").unwrap();
        let err = from_file(&path, &[]).unwrap_err().to_string();
        assert!(
            err.contains("devices.toml") && err.contains("max_in_fligth"),
            "{err}"
        );
        std::fs::write(&path, "[[device]]\nname = \"a\"\nurl = \"http://a\"\n[[device]]\nname = \"a\"\nurl = \"http://b\"\n").unwrap();
        let err = from_file(&path, &[]).unwrap_err().to_string();
        assert!(err.contains("unique"), "{err}");
        assert!(matches!(from_urls(&[], &[]), Err(ConfigError::NoDevices)));
    }

    #[test]
    fn a_password_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("portaria.pw");
        std::fs::write(&secret, "senha-do-arquivo\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let devices = dir.path().join("devices.toml");
        std::fs::write(
            &devices,
            format!(
                "[[device]]\nurl = \"http://a\"\npassword_file = \"{}\"\n",
                secret.display()
            ),
        )
        .unwrap();
        let err = from_file(&devices, &[]).unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && !err.contains("senha-do-arquivo"),
            "{err}"
        );
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (loaded, warnings) = from_file(&devices, &[]).unwrap();
        assert_eq!(loaded[0].credentials.password, "senha-do-arquivo");
        assert!(warnings.is_empty());
    }

    #[test]
    fn https_devices_get_their_pins_else_the_run_wide_trust() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.toml");
        let (a, b) = ("AB:".repeat(31) + "AB", "cd".repeat(32));
        std::fs::write(
            &path,
            format!(
                "[[device]]\nurl = \"https://10.0.0.5\"\ntls_fingerprint = \"sha256:{a}\"\n\
                 [[device]]\nurl = \"https://10.0.0.6\"\ntls_fingerprint = [\"{a}\", \"{b}\"]\n\
                 [[device]]\nurl = \"https://10.0.0.7\"\n"
            ),
        )
        .unwrap();
        let load = |tls: &TlsOptions| load_devices(Some(&path), &[], 2, None, tls, &env_of(&[]));
        let (devices, _) = load(&TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        })
        .unwrap();
        let (pin_a, pin_b): (Fingerprint, Fingerprint) = (a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(devices[0].tls, TlsTrust::Pinned(vec![pin_a]));
        assert_eq!(devices[1].tls, TlsTrust::Pinned(vec![pin_a, pin_b]));
        // A pin wins over --insecure-tls; a device without one takes it.
        assert_eq!(devices[2].tls, TlsTrust::Insecure);
        assert_eq!(devices[2].name, "10.0.0.7");
        let (devices, _) = load(&TlsOptions::default()).unwrap();
        assert!(matches!(devices[2].tls, TlsTrust::Authorities { .. }));
    }

    #[test]
    fn a_pin_list_must_pin_something_and_a_pin_must_be_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.toml");
        std::fs::write(
            &path,
            "[[device]]\nurl = \"https://10.0.0.5\"\ntls_fingerprint = []\n",
        )
        .unwrap();
        let err = from_file(&path, &[]).unwrap_err().to_string();
        assert!(
            err.contains("devices.toml") && err.contains("pins nothing"),
            "{err}"
        );
        std::fs::write(
            &path,
            "[[device]]\nurl = \"https://10.0.0.5\"\ntls_fingerprint = 5\n",
        )
        .unwrap();
        let err = from_file(&path, &[]).unwrap_err().to_string();
        assert!(
            err.contains("devices.toml") && err.contains("a certificate fingerprint in quotes"),
            "{err}"
        );
    }
}
