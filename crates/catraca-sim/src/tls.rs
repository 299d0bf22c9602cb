//! HTTPS for simulated devices. Each device makes its own certificate when it starts,
//! as a turnstile's firmware does: self-signed (the usual case in the field, and what
//! `tls_fingerprint` and `--insecure-tls` are for), or issued by a simulated site
//! authority whose certificate can be handed to `catraca --ca-cert`.
//!
//! Certificates name `localhost` and the address the device listens on, so a client
//! that checks names against an authority accepts them on loopback.

use crate::fingerprint::Fingerprint;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

/// Whether and how simulated devices speak HTTPS.
#[derive(Debug, Clone, Default)]
pub enum SimTls {
    /// Plain HTTP, as most devices are configured.
    #[default]
    Off,
    /// HTTPS with a self-signed certificate per device.
    SelfSigned,
    /// HTTPS with a certificate per device issued by this authority.
    Issued(Arc<SiteAuthority>),
}

/// A certificate authority of a simulated site.
pub struct SiteAuthority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl SiteAuthority {
    pub fn new() -> io::Result<SiteAuthority> {
        let key = KeyPair::generate().map_err(io::Error::other)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(io::Error::other)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "catraca simulated site authority");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let certificate = params.self_signed(&key).map_err(io::Error::other)?;
        Ok(SiteAuthority {
            pem: certificate.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The authority's certificate in PEM, as `--ca-cert` reads it.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate naming `localhost` and 127.0.0.1, issued by this authority,
    /// and its private key, both in PEM (for a server other than a simulated device,
    /// such as a TLS `redis-server`).
    pub fn issue_loopback(&self) -> io::Result<(String, String)> {
        let key = KeyPair::generate().map_err(io::Error::other)?;
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(io::Error::other)?;
        let certificate = params
            .signed_by(&key, &self.issuer)
            .map_err(io::Error::other)?;
        Ok((certificate.pem(), key.serialize_pem()))
    }
}

impl fmt::Debug for SiteAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteAuthority").finish_non_exhaustive()
    }
}

/// A device's server side of TLS, and the fingerprint its certificate has.
pub(crate) struct DeviceCertificate {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) fingerprint: Fingerprint,
}

/// Makes the certificate of device `name` listening on `ip`; `None` for plain HTTP.
pub(crate) fn certificate_for(
    tls: &SimTls,
    name: &str,
    ip: IpAddr,
) -> io::Result<Option<DeviceCertificate>> {
    if matches!(tls, SimTls::Off) {
        return Ok(None);
    }
    let mut names = vec!["localhost".to_owned()];
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    } else {
        names.push("127.0.0.1".to_owned());
    }
    let key = KeyPair::generate().map_err(io::Error::other)?;
    let mut params = CertificateParams::new(names).map_err(io::Error::other)?;
    params.distinguished_name.push(DnType::CommonName, name);
    let certificate = match tls {
        SimTls::Off => unreachable!("returned above"),
        SimTls::SelfSigned => params.self_signed(&key),
        SimTls::Issued(authority) => params.signed_by(&key, &authority.issuer),
    }
    .map_err(io::Error::other)?;
    let der = certificate.der().clone();
    let fingerprint = Fingerprint::of(&der);
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(vec![der], private)
            .map_err(io::Error::other)?;
    Ok(Some(DeviceCertificate {
        config: Arc::new(config),
        fingerprint,
    }))
}
