//! The SHA-256 fingerprint of a simulated device's certificate, shown as operators read
//! it off a device's page and pin it with `tls_fingerprint` (`sha256:AB:CD:...`, the
//! form `openssl x509 -fingerprint -sha256` prints and catraca reads).

use sha2::{Digest, Sha256};
use std::fmt;

/// The SHA-256 digest of a certificate's DER bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The 32 bytes of the digest.
    pub fn bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Display for Fingerprint {
    /// `sha256:AB:CD:...`: upper-case hex bytes joined by colons.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_the_sha256_of_the_der_as_colon_separated_upper_case_hex() {
        // SHA-256 of the empty input, a value anyone can check with `sha256sum`.
        let shown = Fingerprint::of(b"").to_string();
        assert_eq!(
            shown,
            "sha256:E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:\
             27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }
}
