//! HTTPS to devices: how a device's certificate is trusted, and the ureq connector that
//! runs the TLS handshake with that trust.
//!
//! A turnstile that speaks HTTPS nearly always presents a self-signed certificate made
//! by its firmware, for no name that could be checked. catraca trusts such a device only
//! when told to: by pinning the SHA-256 fingerprint of its certificate (`tls_fingerprint`
//! in the devices file: that certificate and no other is accepted, whatever its names
//! and dates), or by `--insecure-tls` (any certificate: the traffic is encrypted, the
//! device is not authenticated). Otherwise the certificate must chain to an authority
//! this machine trusts (the system store, plus `--ca-cert`) and be made out for the host
//! in the device's URL.
//!
//! ureq 3 has no hook for a certificate verifier of one's own, so this module has its
//! own [`Connector`], modelled on ureq's `RustlsConnector`: ureq's chain opens the TCP
//! connection, the handshake and the verifier are ours. A refusal carries the
//! fingerprint the device presented, so the error can tell the operator what to pin once
//! they have compared it with the one the device itself shows.

use crate::i18n::{t, tr, Msg};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::DigitallySignedStruct;
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection};
use rustls::{OtherError, RootCertStore, SignatureScheme, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// The SHA-256 digest of a certificate (its DER bytes), as `openssl x509 -fingerprint
/// -sha256` prints it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    /// `sha256:AB:CD:...`: the colon-separated hex that device web pages and openssl show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = String;

    /// Reads 64 hex digits, with or without colons or spaces, with or without a
    /// `sha256:` prefix; openssl's whole `sha256 Fingerprint=AB:...` line is taken too.
    fn from_str(text: &str) -> Result<Fingerprint, String> {
        let trimmed = text.trim();
        let lower = trimmed.to_ascii_lowercase();
        let digits = ["sha256 fingerprint=", "sha256:", "sha-256:", "sha256="]
            .iter()
            .find_map(|prefix| lower.strip_prefix(prefix))
            .unwrap_or(&lower);
        let hex: Vec<u8> = digits
            .bytes()
            .filter(|b| !matches!(b, b':' | b' ' | b'-'))
            .collect();
        let invalid = || {
            format!(
                "{trimmed:?} is not a SHA-256 certificate fingerprint: give its 64 hex digits, \
                 e.g. sha256:AB:CD:...:EF, as `openssl x509 -noout -fingerprint -sha256` prints them"
            )
        };
        if hex.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Fingerprint(bytes))
    }
}

/// Which certificates a device may present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// One signed by an authority of the system store or of `extra` (`--ca-cert`), made
    /// out for the host in the device's URL, and in date.
    Authorities {
        extra: Arc<[CertificateDer<'static>]>,
    },
    /// Exactly one of these certificates (more than one while a device's certificate is
    /// being replaced); names and dates are not looked at.
    Pinned(Vec<Fingerprint>),
    /// Any certificate (`--insecure-tls`): encrypted, not authenticated.
    Insecure,
}

impl Default for TlsTrust {
    fn default() -> TlsTrust {
        TlsTrust::Authorities {
            extra: Arc::from(Vec::new()),
        }
    }
}

/// Reads the certificates of a PEM file, refusing a file with none. `origin` says where
/// the file was named (`--ca-cert`, or `ca_cert` in a settings file).
pub fn read_ca_file(path: &Path, origin: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{origin} {}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{origin} {}: no certificate in it: give a PEM file with -----BEGIN CERTIFICATE----- blocks",
            path.display()
        ));
    }
    Ok(certificates)
}

/// Why a device's certificate was refused, with the fingerprint it presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRefused {
    pub presented: Fingerprint,
    pub reason: Refusal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not one of the pinned certificates.
    NotPinned(Vec<Fingerprint>),
    /// Not trusted by any authority, or not for this host, or out of date.
    Untrusted(String),
}

impl fmt::Display for CertificateRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let presented = self.presented.to_string();
        let text = match &self.reason {
            Refusal::NotPinned(pinned) => {
                let pinned = pinned
                    .iter()
                    .map(Fingerprint::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                tr(
                    Msg::TlsNotPinned,
                    &[("presented", &presented), ("pinned", &pinned)],
                )
            }
            Refusal::Untrusted(reason) => tr(
                Msg::TlsUntrusted,
                &[("reason", reason), ("presented", &presented)],
            ),
        };
        f.write_str(&text)
    }
}

impl std::error::Error for CertificateRefused {}

/// A TLS handshake that cannot succeed by trying again: the device's answer to it
/// will be the same until someone changes the device or catraca's trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    Refused(CertificateRefused),
    /// No certificate problem, but no TLS either: a device serving plain HTTP on the
    /// port, a protocol version or cipher catraca does not speak, an alert.
    Handshake(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::Refused(refused) => refused.fmt(f),
            TlsFailure::Handshake(reason) => {
                f.write_str(&tr(Msg::TlsHandshake, &[("reason", reason)]))
            }
        }
    }
}

impl std::error::Error for TlsFailure {}

/// The system's certificate authorities, read once per process (and only when a device
/// without a pin or `--insecure-tls` is reached over HTTPS).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            log::debug!("system certificate store: {error}");
        }
        found.certs
    })
}

/// How one handshake's certificate is judged.
#[derive(Debug)]
enum Judge {
    Anything,
    Pinned(Vec<Fingerprint>),
    Authorities(Arc<WebPkiServerVerifier>),
    /// Neither the system store nor `--ca-cert` holds an authority.
    NoAuthorities,
}

/// rustls' verifier hook, judging the certificate as the device's [`TlsTrust`] says and
/// always checking that the device holds the certificate's key.
#[derive(Debug)]
struct DeviceVerifier {
    judge: Judge,
    algorithms: WebPkiSupportedAlgorithms,
    /// The certificate of the last handshake, for `catraca check` to show.
    presented: Arc<Mutex<Option<Fingerprint>>>,
}

impl ServerCertVerifier for DeviceVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of(end_entity);
        *self.presented.lock().unwrap_or_else(|e| e.into_inner()) = Some(presented);
        let refuse = |reason: Refusal| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                CertificateRefused { presented, reason },
            ))))
        };
        match &self.judge {
            Judge::Anything => Ok(ServerCertVerified::assertion()),
            Judge::Pinned(pinned) if pinned.contains(&presented) => {
                Ok(ServerCertVerified::assertion())
            }
            Judge::Pinned(pinned) => Err(refuse(Refusal::NotPinned(pinned.clone()))),
            Judge::NoAuthorities => Err(refuse(Refusal::Untrusted(format!(
                "{}; {}",
                t(Msg::TlsUnknownIssuer),
                t(Msg::TlsNoAuthorities)
            )))),
            Judge::Authorities(webpki) => webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(|e| refuse(Refusal::Untrusted(explain(&e, server_name)))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A certificate error in words an operator can act on.
fn explain(error: &rustls::Error, server_name: &ServerName<'_>) -> String {
    let host = server_name.to_str();
    match error {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                t(Msg::TlsUnknownIssuer).to_string()
            }
            CertificateError::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
                tr(
                    Msg::TlsWrongNameShown,
                    &[
                        ("host", &host),
                        (
                            "names",
                            &presented
                                .iter()
                                .map(|name| plain_name(name))
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                    ],
                )
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                tr(Msg::TlsWrongName, &[("host", &host)])
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                t(Msg::TlsExpired).to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                t(Msg::TlsNotYetValid).to_string()
            }
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}

/// A name as webpki lists it (`DnsName("a.b")`, `IpAddress(10.0.0.5)`), as written
/// in a URL.
fn plain_name(listed: &str) -> &str {
    listed
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| {
            listed
                .strip_prefix("IpAddress(")
                .and_then(|n| n.strip_suffix(')'))
        })
        .unwrap_or(listed)
}

/// The ureq connector wrapping a device's TCP connections in TLS (https URLs only).
#[derive(Debug)]
pub struct DeviceTlsConnector {
    trust: TlsTrust,
    config: OnceLock<Arc<ClientConfig>>,
    presented: Arc<Mutex<Option<Fingerprint>>>,
}

impl DeviceTlsConnector {
    /// A connector trusting what `trust` says, writing the fingerprint of every
    /// certificate presented to it in `presented`.
    pub fn new(trust: TlsTrust, presented: Arc<Mutex<Option<Fingerprint>>>) -> DeviceTlsConnector {
        DeviceTlsConnector {
            trust,
            config: OnceLock::new(),
            presented,
        }
    }

    fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(self.config.get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let judge = match &self.trust {
                TlsTrust::Insecure => Judge::Anything,
                TlsTrust::Pinned(pinned) => Judge::Pinned(pinned.clone()),
                TlsTrust::Authorities { extra } => {
                    let mut roots = RootCertStore::empty();
                    let system = system_roots().iter().cloned();
                    let (added, ignored) =
                        roots.add_parsable_certificates(system.chain(extra.iter().cloned()));
                    log::debug!("TLS: {added} certificate authorities ({ignored} unusable)");
                    match WebPkiServerVerifier::builder_with_provider(
                        Arc::new(roots),
                        Arc::clone(&provider),
                    )
                    .build()
                    {
                        Ok(webpki) => Judge::Authorities(webpki),
                        Err(_) => Judge::NoAuthorities,
                    }
                }
            };
            let verifier = DeviceVerifier {
                judge,
                algorithms: provider.signature_verification_algorithms,
                presented: Arc::clone(&self.presented),
            };
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports TLS 1.2 and 1.3")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            Arc::new(config)
        }))
    }
}

impl<In: Transport> Connector<In> for DeviceTlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .authority()
            .map(|a| a.host())
            .unwrap_or_default();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            ureq::Error::Other(Box::new(TlsFailure::Handshake(format!(
                "{host:?} is not a host name TLS can check ({e})"
            ))))
        })?;
        let mut connection = ClientConnection::new(self.client_config(), name)
            .map_err(|e| ureq::Error::Other(Box::new(TlsFailure::Handshake(e.to_string()))))?;
        let boxed: Box<dyn Transport> = Box::new(transport);
        let mut socket = TransportAdapter::new(boxed, details.current_time.clone());
        socket.set_timeout(details.timeout);
        connection
            .complete_io(&mut socket)
            .map_err(handshake_error)?;
        Ok(Some(Either::B(TlsTransport {
            buffers: LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            ),
            stream: StreamOwned::new(connection, socket),
        })))
    }
}

/// A failed handshake as ureq should see it: a refused certificate, a peer that does
/// not speak TLS, or no version or cipher in common becomes a [`TlsFailure`] (final);
/// anything else is an I/O error (a reset, a timeout or a stray alert during the
/// handshake is worth another try).
fn handshake_error(error: io::Error) -> ureq::Error {
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match tls {
        Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(cause)))) => {
            match cause.downcast_ref::<CertificateRefused>() {
                Some(refused) => ureq::Error::Other(Box::new(TlsFailure::Refused(refused.clone()))),
                None => ureq::Error::Other(Box::new(TlsFailure::Handshake(cause.to_string()))),
            }
        }
        Some(e @ rustls::Error::InvalidMessage(_)) => ureq::Error::Other(Box::new(
            TlsFailure::Handshake(tr(Msg::TlsNotTls, &[("reason", &e)])),
        )),
        Some(
            e @ (rustls::Error::PeerIncompatible(_)
            | rustls::Error::AlertReceived(
                AlertDescription::ProtocolVersion
                | AlertDescription::HandshakeFailure
                | AlertDescription::InsufficientSecurity,
            )),
        ) => ureq::Error::Other(Box::new(TlsFailure::Handshake(tr(
            Msg::TlsNothingInCommon,
            &[("reason", &e)],
        )))),
        // Any other alert (an `internal_error` from a device short of memory, say) may
        // not come again: an I/O error, retried like a reset.
        Some(other) => ureq::Error::Io(io::Error::other(format!("TLS handshake: {other}"))),
        None => ureq::Error::from(error),
    }
}

/// A TLS connection to a device, as ureq reads and writes it.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_as_openssl_and_device_pages_write_them() {
        let fingerprint = Fingerprint::of(b"a certificate");
        let shown = fingerprint.to_string();
        assert!(shown.starts_with("sha256:"), "{shown}");
        assert_eq!(shown.len(), "sha256:".len() + 32 * 3 - 1);
        let bare_hex: String = shown["sha256:".len()..].replace(':', "").to_lowercase();
        for written in [
            shown.clone(),
            shown.to_lowercase(),
            bare_hex.clone(),
            format!("sha256 Fingerprint={}", &shown["sha256:".len()..]),
            format!("  SHA256:{bare_hex}  "),
            shown["sha256:".len()..].replace(':', " "),
        ] {
            assert_eq!(written.parse::<Fingerprint>(), Ok(fingerprint), "{written}");
        }
    }

    #[test]
    fn certificate_names_read_as_urls_write_them() {
        assert_eq!(plain_name("DnsName(\"catraca.local\")"), "catraca.local");
        assert_eq!(plain_name("IpAddress(10.0.0.5)"), "10.0.0.5");
        assert_eq!(plain_name("something else"), "something else");
    }

    #[test]
    fn a_wrong_fingerprint_is_refused_with_what_to_write() {
        for wrong in [
            "",
            "sha1:AB:CD",
            &"ab".repeat(31),
            &"zz".repeat(32),
            &"ab".repeat(33),
        ] {
            let error = wrong.parse::<Fingerprint>().unwrap_err();
            assert!(error.contains("64 hex digits"), "{error}");
        }
    }
}
