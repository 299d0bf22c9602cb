//! `catraca simulate`: runs a fleet of simulated devices until Ctrl-C or SIGTERM, for
//! demos, manual testing and benchmarks against something that behaves like the field.
//!
//! Raw flags are validated into a [`SimConfig`] in one step (so a bad flag is reported
//! before any port is opened), the fleet is started, one line per device goes to
//! stderr, and the command waits for a signal. The password comes from the
//! environment, never from a flag, so it does not show in `ps`.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::Context;

use super::{
    ControlIdFaces, FaultRates, Fleet, HikFirmware, IntelbrasFirmware, Kind, Overload, SimConfig,
    SimFaces, SimTls, SiteAuthority,
};

/// The devices of `--devices`: counts, each of a family or (`None`) of `--kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSpec(pub Vec<(Option<Kind>, NonZeroUsize)>);

impl FleetSpec {
    pub fn total(&self) -> usize {
        self.0.iter().map(|(_, n)| n.get()).sum()
    }

    /// Each family with its count, `--kind` standing in where none was named.
    pub fn kinds(&self, default: Kind) -> Vec<(Kind, usize)> {
        self.0
            .iter()
            .map(|(kind, n)| (kind.unwrap_or(default), n.get()))
            .collect()
    }
}

fn parse_fleet(text: &str) -> Result<FleetSpec, String> {
    let count = |n: &str| {
        n.trim()
            .parse::<NonZeroUsize>()
            .map_err(|_| format!("`{n}` is not a number of devices: give 1 or more"))
    };
    if !text.contains(':') {
        return Ok(FleetSpec(vec![(None, count(text)?)]));
    }
    text.split(',')
        .map(|part| {
            let (kind, n) = part.split_once(':').ok_or_else(|| {
                format!("`{part}`: write KIND:N, e.g. controlid:3,hikvision:2,intelbras:2")
            })?;
            let kind = Kind::from_name(kind.trim()).ok_or_else(|| {
                format!("`{kind}` is not a device family: controlid, hikvision or intelbras")
            })?;
            Ok((Some(kind), count(n)?))
        })
        .collect::<Result<_, String>>()
        .map(FleetSpec)
}

/// The firmware profiles, shown after `catraca simulate --help` (and in the README).
pub const PROFILES: &str = "Firmware profiles (docs/field-evidence.md), one flag each, combinable:
  --kind hikvision --nonce-uses 2     a DS-K1T342MWX: a nonce's third use is refused, no stale
  --kind hikvision --nonce-uses 8     a DS-K1T323: about 8 uses of a nonce
  --exhausted-without-challenge       with --nonce-uses: that 401 comes without a challenge
  --offer-basic                       web authentication \"digest/basic\": Basic offered first
  --name-max 32                       older Hikvision models: names of at most 32 bytes
  --employee-digits-only              Hikvision models taking numeric employeeNo only
  --legacy-delete                     Hikvision without UserInfoDetail/Delete (UserInfo/Delete)
  --no-capabilities                   older Hikvision firmware without capabilities calls
  --kind intelbras --firmware 2       Intelbras/Dahua 2.x: flat key=value lists, no startFind
  --kind intelbras --firmware 3       Intelbras/Dahua 3.x: JSON, startFind/doFind/stopFind
  --kind intelbras --firmware 3-strict  3.x refusing every action=list: only searches
  --id-lists-only                     Control iD firmware taking where lists on id only
  --deny-command modify_objects       a Control iD account without the rights for a command
  --faces                             facial models (iDFace, MinMoe, SS 3530 MF...): photos taken
  --faces --non-facial 2              device 2 is a card model: face calls refused, and counted
  --faces --controlid-faces old       Control iD before get_timestamp and users.image_timestamp
  --faces --controlid-faces oem       HID Amico OEM build: PNG refused with 400
  --faces --no-face-setup             Hikvision without FDSetUp: FaceDataRecord adds, nothing replaces
  --faces --no-fdsearch-delete        a DS-K1T341AMF: FDSearch/Delete refused, only FDDelete removes
  --faces --infrared-library          a DS-K1T342MFWX-E1: FDLib lists infraredFD (FDID 2) before blackFD
  --faces --face-capacity 500         Hikvision FDRecordDataMaxNum: then exceedMaxFaceNumber
  --faces --intelbras-max-photo-kb 75  a Dahua ASI: photos under 75 KB (FailCode 286064923 beyond)
  --faces --no-access-face            Intelbras without AccessFace.cgi: FaceInfoManager add/update
Always: Hikvision and Intelbras lock the account for 1,800 s after 7 refused logins
(userCheck bodies on Hikvision), and Intelbras ignores an update clearing CardNo.";

/// The environment variable holding the simulated devices' password.
pub const PASSWORD_ENV: &str = "CATRACA_SIM_PASSWORD";

/// Flags of `catraca simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// How many devices to simulate, named catraca-1, catraca-2, ...: N devices of
    /// --kind, or a mixed fleet such as controlid:3,hikvision:2,intelbras:2
    #[arg(long, value_name = "N|KIND:N,...", default_value = "5", value_parser = parse_fleet)]
    pub devices: FleetSpec,

    /// The family of the devices when --devices is a plain number
    #[arg(long, value_enum, value_name = "KIND", default_value_t = Kind::Controlid)]
    pub kind: Kind,

    /// Hikvision and Intelbras: the most people a device stores (Hikvision then answers userExceedLimit)
    #[arg(long, value_name = "N")]
    pub capacity: Option<usize>,

    /// First port: devices listen on P, P+1, ...; 0 picks free ports
    #[arg(long, value_name = "P", default_value_t = 0)]
    pub port: u16,

    /// Address to listen on
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,

    /// Latency added to every request, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,

    /// Extra latency per object beyond the first in a write, and per 100 rows loaded, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub per_object_latency_ms: u64,

    /// At most C requests handled at once per device; more are refused as --overload says
    #[arg(long, value_name = "C")]
    pub max_in_flight: Option<NonZeroUsize>,

    /// How a device refuses requests beyond --max-in-flight
    #[arg(long, value_enum, value_name = "HOW", default_value_t = Overload::Busy503)]
    pub overload: Overload,

    /// Share of requests answered 503 before processing (0 to 1)
    #[arg(long = "fail-503", value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_503: f64,

    /// Share of requests whose connection is reset (0 to 1)
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_reset: f64,

    /// Share of requests left without an answer for --hang-secs, then closed (0 to 1)
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_hang: f64,

    /// Share of requests answered 200 with a body that is not JSON (0 to 1)
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_garbage: f64,

    /// Share of created people the device answers OK for but does not store (0 to 1)
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_silent_drop: f64,

    /// Resets, hangs and garbage strike after a write was applied, so its answer is lost
    #[arg(long)]
    pub faults_after_write: bool,

    /// How long a hung request stays silent before its connection is closed, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub hang_secs: u64,

    /// A session becomes invalid after N requests made with it
    #[arg(long, value_name = "N")]
    pub session_expiry: Option<u64>,

    /// Hikvision and Intelbras firmware profile: the (N+1)th use of a Digest nonce is
    /// answered 401 with a fresh challenge and no stale (a DS-K1T342MWX: 2)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub nonce_uses: Option<u64>,

    /// Intelbras firmware profile: 2 (flat key=value lists, no startFind), 3 (JSON,
    /// startFind/doFind/stopFind, no unfiltered list) or 3-strict (no action=list at
    /// all); all answer a bare Bad Request and ignore an update clearing CardNo.
    /// Default: the API as documented
    #[arg(long, value_enum, value_name = "2|3|3-strict", default_value_t = IntelbrasFirmware::Documented, hide_default_value = true)]
    pub firmware: IntelbrasFirmware,

    /// Hikvision firmware profile: the most name bytes a device takes (its
    /// capabilities' name.@max; longer names are refused badJsonContent)
    #[arg(long, value_name = "BYTES", default_value_t = 128)]
    pub name_max: usize,

    /// Hikvision firmware profile: employeeNo takes digits only (characterType number)
    #[arg(long)]
    pub employee_digits_only: bool,

    /// Hikvision firmware profile: no UserInfoDetail/Delete, only the legacy UserInfo/Delete
    #[arg(long)]
    pub legacy_delete: bool,

    /// Hikvision firmware profile: no capabilities calls (404), as on older firmware
    #[arg(long)]
    pub no_capabilities: bool,

    /// Control iD firmware profile: a where list is taken on id columns only (a list
    /// on registration is refused 400, as only id lists are documented)
    #[arg(long)]
    pub id_lists_only: bool,

    /// Control iD: the account may not run COMMAND (e.g. destroy_objects): 401 Invalid
    /// access level, even after a fresh login; repeat for several
    #[arg(long = "deny-command", value_name = "COMMAND")]
    pub deny_command: Vec<String>,

    /// Hikvision and Intelbras firmware profile: the 401 refusing a used-up nonce
    /// (--nonce-uses) carries no WWW-Authenticate header, as one terminal sends it
    #[arg(long, requires = "nonce_uses")]
    pub exhausted_without_challenge: bool,

    /// Hikvision and Intelbras: 401s offer Basic before Digest, as a device set to
    /// "digest/basic" does (Basic credentials are refused logins)
    #[arg(long)]
    pub offer_basic: bool,

    /// The devices are facial models: they take face photos (each family's calls and
    /// limits); without it they are card models that refuse every face call
    #[arg(long)]
    pub faces: bool,

    /// Time a facial device takes to model each photo of a face call, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = super::DEFAULT_FACE_TIME.as_millis() as u64)]
    pub face_ms: u64,

    /// With --faces, device I (from 1) is a card model all the same; repeat for several
    #[arg(long = "non-facial", value_name = "I", requires = "faces")]
    pub non_facial: Vec<usize>,

    /// Control iD face firmware: stock (as documented), old (no get_timestamp, no
    /// users.image_timestamp) or oem (HID Amico: PNG refused with 400)
    #[arg(long, value_enum, value_name = "stock|old|oem", default_value_t = ControlIdFaces::Stock)]
    pub controlid_faces: ControlIdFaces,

    /// Hikvision face firmware: no FDSetUp (404 notSupport, no setUp in the
    /// capabilities): faces are added with FaceDataRecord, never replaced
    #[arg(long, requires = "faces")]
    pub no_face_setup: bool,

    /// Hikvision face firmware: FDSearch/Delete answers statusCode 6 Invalid Content and
    /// only FDDelete removes a face, as on a DS-K1T341AMF
    #[arg(long, requires = "faces")]
    pub no_fdsearch_delete: bool,

    /// Hikvision face firmware: FDLib also lists an infraredFD library (FDID 2), first,
    /// as a DS-K1T342MFWX-E1 does; faces go to blackFD (FDID 1) all the same
    #[arg(long, requires = "faces")]
    pub infrared_library: bool,

    /// Intelbras: the largest face photo taken, in KB (1,024 bytes); beyond it FailCode
    /// 286064923 (a Dahua ASI: 75)
    #[arg(long, value_name = "KB", default_value_t = 100)]
    pub intelbras_max_photo_kb: usize,

    /// Intelbras face firmware: no AccessFace.cgi (501 Not Implemented): faces go one
    /// at a time through FaceInfoManager.cgi?action=add|update
    #[arg(long, requires = "faces")]
    pub no_access_face: bool,

    /// Hikvision: the faces a device's library holds (FDRecordDataMaxNum); beyond it an
    /// upload is refused exceedMaxFaceNumber
    #[arg(long, value_name = "N", default_value_t = SimFaces::default().capacity)]
    pub face_capacity: usize,

    /// Device I (from 1) is down: its connections are reset; repeat for several
    #[arg(long = "down", value_name = "I")]
    pub down: Vec<usize>,

    /// Seed of the fault draws and session tokens; device I uses seed + I - 1
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    pub seed: u64,

    /// Login the devices accept; their password is read from CATRACA_SIM_PASSWORD, else admin
    #[arg(long, value_name = "LOGIN", default_value = "admin")]
    pub login: String,
    /// Seconds the devices' clocks run ahead of this machine's (negative: behind)
    #[arg(
        long,
        default_value = "0",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub clock_offset_secs: i64,

    /// Serve HTTPS, each device with a self-signed certificate of its own (its
    /// fingerprint is printed, for tls_fingerprint)
    #[arg(long)]
    pub tls: bool,

    /// How every device's card reader writes a card: a card format (controlid, w26,
    /// w26-hex, decimal, hex, optionally :PAD), w26-swapped or side-by-side; default: as
    /// each vendor's readers do
    #[arg(long, value_name = "FORMAT", value_parser = super::ReaderFormat::parse)]
    pub reader: Option<super::ReaderFormat>,

    /// Print each card swiped (POST /__sim/swipe?card=F,N on a device) as granted or refused
    #[arg(long)]
    pub log_swipes: bool,

    /// Serve HTTPS with certificates issued by a new site authority, whose certificate
    /// is written to FILE (for catraca --ca-cert FILE)
    #[arg(long, value_name = "FILE", conflicts_with = "tls")]
    pub tls_authority: Option<std::path::PathBuf>,
}

/// Flag combinations that parse but make no sense, each naming the flag to fix.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimulateError {
    #[error("--down {index}: there is no device {index}; devices are numbered 1 to {devices}")]
    NoSuchDevice { index: usize, devices: usize },
    #[error(
        "--non-facial {index}: there is no device {index}; devices are numbered 1 to {devices}"
    )]
    NoSuchCardModel { index: usize, devices: usize },
    #[error(
        "--fail-503, --fail-reset, --fail-hang and --fail-garbage add up to {sum}: they are \
         shares of the same requests and must add up to at most 1"
    )]
    RatesAboveOne { sum: f64 },
    #[error("--port {port} with --devices {devices} runs past port 65535: pick a lower --port")]
    PortsOverflow { port: u16, devices: usize },
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate: give a number from 0 to 1, such as 0.05"
        )),
    }
}

impl SimulateArgs {
    /// Checks the flags together and builds the devices' configuration.
    pub fn config(&self, password: String) -> Result<SimConfig, SimulateError> {
        let devices = self.devices.total();
        if let Some(&index) = self.non_facial.iter().find(|&&i| i == 0 || i > devices) {
            return Err(SimulateError::NoSuchCardModel { index, devices });
        }
        if let Some(&index) = self.down.iter().find(|&&i| i == 0 || i > devices) {
            return Err(SimulateError::NoSuchDevice { index, devices });
        }
        let faults = FaultRates {
            status_503: self.fail_503,
            reset: self.fail_reset,
            hang: self.fail_hang,
            garbage: self.fail_garbage,
        };
        let sum = faults.status_503 + faults.reset + faults.hang + faults.garbage;
        // A little slack so that 0.1 + 0.2 + 0.7 passes despite floating point.
        if sum > 1.0 + 1e-9 {
            return Err(SimulateError::RatesAboveOne { sum });
        }
        if self.port != 0 && usize::from(self.port) + devices - 1 > usize::from(u16::MAX) {
            return Err(SimulateError::PortsOverflow {
                port: self.port,
                devices,
            });
        }
        Ok(SimConfig {
            latency: Duration::from_millis(self.latency_ms),
            per_object_latency: Duration::from_millis(self.per_object_latency_ms),
            max_in_flight: self.max_in_flight.map(NonZeroUsize::get),
            overload: self.overload,
            faults,
            faults_after_write: self.faults_after_write,
            silent_drop: self.fail_silent_drop,
            hang_for: Duration::from_secs(self.hang_secs),
            session_expiry_after: self.session_expiry,
            nonce_uses: self.nonce_uses,
            exhausted_without_challenge: self.exhausted_without_challenge,
            intelbras_firmware: self.firmware,
            id_lists_only: self.id_lists_only,
            denied_commands: self.deny_command.clone(),
            faces: SimFaces {
                enabled: self.faces,
                time_per_photo: Duration::from_millis(self.face_ms),
                controlid: self.controlid_faces,
                capacity: self.face_capacity,
                hikvision_setup: !self.no_face_setup,
                hikvision_search_delete: !self.no_fdsearch_delete,
                hikvision_infrared_library: self.infrared_library,
                intelbras_access_face: !self.no_access_face,
                intelbras_max_photo: self.intelbras_max_photo_kb * 1024,
            },
            hikvision_firmware: HikFirmware {
                name_max: self.name_max,
                employee_digits_only: self.employee_digits_only,
                legacy_delete: self.legacy_delete,
                no_capabilities: self.no_capabilities,
            },
            offer_basic: self.offer_basic,
            login: self.login.clone(),
            password,
            seed: self.seed,
            capacity: self.capacity,
            clock_offset_s: self.clock_offset_secs,
            reader: self.reader,
            log_swipes: self.log_swipes,
            tls: if self.tls {
                SimTls::SelfSigned
            } else {
                SimTls::Off
            },
            ..SimConfig::default()
        })
    }
}

/// Starts the fleet the flags describe: devices switched off (`--down`) and card
/// models among facial ones (`--non-facial`) included.
fn start_fleet(args: &SimulateArgs, config: &SimConfig) -> anyhow::Result<Fleet> {
    let kinds = args.devices.kinds(args.kind);
    let fleet = Fleet::start_mixed_on(args.bind, args.port, &kinds, config).with_context(|| {
        format!(
            "could not listen on {}:{} for {} devices: is the port taken? try another --port, or 0",
            args.bind,
            args.port,
            args.devices.total()
        )
    })?;
    for &index in &args.down {
        fleet.devices[index - 1].set_down(true);
    }
    for &index in &args.non_facial {
        fleet.devices[index - 1].set_facial(false);
    }
    Ok(fleet)
}

/// Runs the fleet until Ctrl-C or SIGTERM, then shuts it down and returns.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let password = std::env::var(PASSWORD_ENV).unwrap_or_else(|_| "admin".to_owned());
    let mut config = args.config(password)?;
    if let Some(path) = &args.tls_authority {
        let authority = SiteAuthority::new().context("could not make a site authority")?;
        std::fs::write(path, authority.pem())
            .with_context(|| format!("--tls-authority {}: cannot write it", path.display()))?;
        eprintln!("site authority certificate written to {}", path.display());
        config.tls = SimTls::Issued(std::sync::Arc::new(authority));
    }
    let (signal_tx, signal_rx) = crossbeam_channel::bounded(1);
    ctrlc::set_handler(move || {
        // A second signal while stopping finds the channel full; stopping is quick.
        let _ = signal_tx.try_send(());
    })
    .context("could not install the Ctrl-C/SIGTERM handler")?;
    let fleet = start_fleet(&args, &config)?;
    for (index, device) in fleet.devices.iter().enumerate() {
        let down = if args.down.contains(&(index + 1)) {
            " down"
        } else {
            ""
        };
        let facial = if args.faces && !args.non_facial.contains(&(index + 1)) {
            " facial"
        } else {
            ""
        };
        let certificate = device
            .fingerprint()
            .map(|f| format!(" certificate {f}"))
            .unwrap_or_default();
        eprintln!(
            "{} {} ({}){facial}{down}{certificate}",
            device.name(),
            device.url(),
            device.kind()
        );
    }
    eprintln!("simulating {} devices; Ctrl-C to stop", fleet.devices.len());
    let _ = signal_rx.recv();
    eprintln!("stopping");
    fleet.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        simulate: SimulateArgs,
    }

    fn parse(args: &[&str]) -> Result<SimulateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("simulate").chain(args.iter().copied()))
            .map(|c| c.simulate)
    }

    #[test]
    fn every_flag_has_help() {
        let command = Cli::command();
        command.clone().debug_assert();
        for arg in command.get_arguments() {
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
        }
    }

    #[test]
    fn flags_become_a_config() {
        let args = parse(&[
            "--devices",
            "3",
            "--latency-ms",
            "20",
            "--max-in-flight",
            "2",
            "--overload",
            "reset",
            "--fail-503",
            "0.1",
            "--fail-reset",
            "0.05",
            "--faults-after-write",
            "--fail-silent-drop",
            "0.02",
            "--session-expiry",
            "50",
            "--down",
            "2",
            "--seed",
            "9",
        ])
        .unwrap();
        let config = args.config("secret".into()).unwrap();
        assert_eq!(config.latency, Duration::from_millis(20));
        assert_eq!(config.max_in_flight, Some(2));
        assert_eq!(config.overload, Overload::Reset);
        assert_eq!(config.faults.status_503, 0.1);
        assert!(config.faults_after_write);
        assert_eq!(config.silent_drop, 0.02);
        assert_eq!(config.session_expiry_after, Some(50));
        assert_eq!(
            (config.login.as_str(), config.password.as_str()),
            ("admin", "secret")
        );
        assert_eq!(config.seed, 9);
    }

    #[test]
    fn face_flags_become_the_faces_config() {
        let plain = parse(&[]).unwrap().config(String::new()).unwrap();
        assert!(!plain.faces.enabled, "card models unless --faces");
        assert_eq!(plain.faces.time_per_photo, Duration::from_millis(300));
        let args = parse(&[
            "--devices",
            "3",
            "--faces",
            "--face-ms",
            "50",
            "--non-facial",
            "2",
            "--controlid-faces",
            "oem",
            "--no-face-setup",
            "--no-fdsearch-delete",
            "--face-capacity",
            "12",
            "--no-access-face",
            "--infrared-library",
            "--intelbras-max-photo-kb",
            "75",
        ])
        .unwrap();
        assert_eq!(args.non_facial, [2]);
        let config = args.config(String::new()).unwrap();
        assert!(config.faces.enabled);
        assert_eq!(config.faces.time_per_photo, Duration::from_millis(50));
        assert_eq!(config.faces.controlid, ControlIdFaces::Oem);
        assert!(!config.faces.hikvision_setup && !config.faces.hikvision_search_delete);
        assert_eq!(config.faces.capacity, 12);
        assert_eq!(config.faces.intelbras_max_photo, 75 * 1024);
        assert_eq!(plain.faces.intelbras_max_photo, 100 * 1024);
        assert!(config.faces.hikvision_infrared_library && !plain.faces.hikvision_infrared_library);
        assert!(!config.faces.intelbras_access_face && plain.faces.intelbras_access_face);
        assert!(plain.faces.hikvision_setup && plain.faces.hikvision_search_delete);
        let beyond = parse(&["--devices", "3", "--faces", "--non-facial", "4"]).unwrap();
        assert_eq!(
            beyond.config(String::new()).unwrap_err(),
            SimulateError::NoSuchCardModel {
                index: 4,
                devices: 3
            }
        );
        assert!(parse(&["--non-facial", "1"]).is_err(), "needs --faces");
    }

    /// The model each device reports: facial ones but the `--non-facial` one.
    #[test]
    fn non_facial_devices_among_facial_ones_are_card_models() {
        let args = parse(&["--devices", "3", "--faces", "--non-facial", "2"]).unwrap();
        let fleet = start_fleet(&args, &args.config("admin".into()).unwrap()).unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let models: Vec<String> = fleet
            .urls()
            .iter()
            .map(|url| {
                let login: serde_json::Value = agent
                    .post(format!("{url}/login.fcgi"))
                    .send(r#"{"login":"admin","password":"admin"}"#)
                    .unwrap()
                    .body_mut()
                    .read_json()
                    .unwrap();
                let session = login["session"]
                    .as_str()
                    .unwrap()
                    .replace('/', "%2F")
                    .replace('+', "%2B");
                let info: serde_json::Value = agent
                    .post(format!("{url}/system_information.fcgi?session={session}"))
                    .send("{}")
                    .unwrap()
                    .body_mut()
                    .read_json()
                    .unwrap();
                info["model"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(models, ["iDFace", "iDBlock", "iDFace"]);
        fleet.shutdown();
    }

    #[test]
    fn fleets_are_a_number_of_one_kind_or_a_mix() {
        let plain = parse(&["--devices", "3", "--kind", "intelbras"]).unwrap();
        assert_eq!(plain.devices.kinds(plain.kind), [(Kind::Intelbras, 3)]);
        let mixed = parse(&["--devices", "controlid:3,hikvision:2,intelbras:2"]).unwrap();
        assert_eq!(
            mixed.devices.kinds(mixed.kind),
            [
                (Kind::Controlid, 3),
                (Kind::Hikvision, 2),
                (Kind::Intelbras, 2)
            ]
        );
        assert_eq!(mixed.devices.total(), 7);
        assert!(parse(&["--devices", "zkteco:2"]).is_err());
        assert!(parse(&["--devices", "hikvision:0"]).is_err());
    }

    #[test]
    fn nonsense_is_refused_with_the_flag_named() {
        assert!(parse(&["--fail-hang", "1.5"]).is_err());
        assert!(parse(&["--devices", "0"]).is_err());
        let down = parse(&["--devices", "2", "--down", "3"]).unwrap();
        assert_eq!(
            down.config(String::new()).unwrap_err(),
            SimulateError::NoSuchDevice {
                index: 3,
                devices: 2
            }
        );
        let rates = parse(&["--fail-503", "0.6", "--fail-reset", "0.6"]).unwrap();
        assert!(rates
            .config(String::new())
            .unwrap_err()
            .to_string()
            .contains("--fail-503"));
        let ports = parse(&["--port", "65535", "--devices", "2"]).unwrap();
        assert!(matches!(
            ports.config(String::new()),
            Err(SimulateError::PortsOverflow { .. })
        ));
    }
}
