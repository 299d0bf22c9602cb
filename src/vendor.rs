//! The three device families catraca speaks to, as the devices file, `--device
//! KIND+URL`, the simulator and the report name them. A leaf: it imports nothing of the
//! crate, so the card formats, the configuration and the drivers can all use it. The
//! simulator (`catraca_sim`) has its own enum of the same names; `From` goes both ways.

use serde::Deserialize;

/// The device families catraca can drive.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, clap::ValueEnum,
)]
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

    /// The name used in the devices file, `--device KIND+URL` and the simulator.
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

impl From<catraca_sim::Kind> for Kind {
    fn from(kind: catraca_sim::Kind) -> Kind {
        match kind {
            catraca_sim::Kind::Controlid => Kind::Controlid,
            catraca_sim::Kind::Hikvision => Kind::Hikvision,
            catraca_sim::Kind::Intelbras => Kind::Intelbras,
        }
    }
}

impl From<Kind> for catraca_sim::Kind {
    fn from(kind: Kind) -> catraca_sim::Kind {
        match kind {
            Kind::Controlid => catraca_sim::Kind::Controlid,
            Kind::Hikvision => catraca_sim::Kind::Hikvision,
            Kind::Intelbras => catraca_sim::Kind::Intelbras,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulators_kinds_are_ours_by_name() {
        for kind in Kind::ALL {
            let simulated = catraca_sim::Kind::from(kind);
            assert_eq!(simulated.name(), kind.name());
            assert_eq!(Kind::from(simulated), kind);
        }
        assert_eq!(catraca_sim::Kind::ALL.len(), Kind::ALL.len());
    }
}
