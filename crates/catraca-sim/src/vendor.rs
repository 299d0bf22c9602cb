//! The three device families the simulator plays, by the names the devices file,
//! `catraca simulate --kind` and `--devices controlid:3,...` use. The simulator's own
//! enum, so the crate stands without the product; catraca converts to and from its
//! `vendor::Kind`, which keeps the same names.

use serde::Serialize;

/// The device families a [`crate::SimDevice`] can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Control iD (iDBlock, iDAccess, iDFlex, iDFace): sessions, batches of hundreds.
    Controlid,
    /// Hikvision ISAPI (DS-K1T, DS-K2): Digest, one person per request.
    Hikvision,
    /// Intelbras (SS 3530/5530, CT 3000) and Dahua: Digest, ten people per request.
    Intelbras,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Controlid, Kind::Hikvision, Kind::Intelbras];

    /// The name in a devices file, `--kind` and `--devices`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Controlid => "controlid",
            Kind::Hikvision => "hikvision",
            Kind::Intelbras => "intelbras",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
