//! Participants' face photos: where they come from, how they are checked before a run,
//! and the one canonical JPEG every facial device gets.
//!
//! A photo is named by the CSV's `photo` column (`foto`, `face`), relative to the CSV's
//! folder (to the current directory when the CSV comes on stdin), or found as
//! `DIR/<registration>.jpg|.jpeg|.png` with `--photos DIR`; the column wins. Every photo
//! is checked at start-up like the rest of the CSV ([`source`]): a missing, unreadable
//! or non-image file stops the run with exit 2 before anything is sent. That check
//! reads each file once to hash it and parses only its header; pixels are decoded
//! later, when the person's batch is about to be sent ([`store::Fitter`]), so a run
//! never holds more than a bounded number of images.
//!
//! A photo's [`PhotoVersion`] is the SHA-256 of its source bytes and of the fitting
//! settings. Fitting ([`fit`]) is deterministic, so the same source and settings always
//! give the same fitted bytes: the version names the fitted photo without fitting it.
//! That is what lets the cache skip an unchanged photo at cache-check time, without
//! decoding 100,000 images, and what Control iD stores as the photo's `timestamp`
//! ([`PhotoVersion::controlid_timestamp`]), so a device tells by itself whether it
//! holds this photo, even with `--skip-cache` or a lost cache. A change to the fitting
//! code changes [`fit::FIT_ID`], and so every version: photos are sent again once.

pub mod fit;
pub mod source;
pub mod store;

use crate::vendor::Kind;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

/// How a photo is prepared before it is sent (`--photo-fit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PhotoFit {
    /// EXIF orientation applied, metadata stripped, framed to portrait 3:4, scaled to at
    /// most 480x640, baseline JPEG 4:2:0 of at most 70 KB: one photo every family takes.
    #[default]
    Canonical,
    /// The file exactly as given: the devices judge it.
    None,
}

/// What a run does with photos, from the flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhotoOptions {
    pub fit: PhotoFit,
    /// `--photo-match`: Control iD refuses a face already enrolled for another person
    /// (`match=1`). Off by default, as the vendor recommends for mass enrollment: it is
    /// slower, and two people may look alike.
    pub match_faces: bool,
}

/// Where a participant's photo path came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhotoOrigin {
    /// The CSV's photo column, as its header writes it.
    Column(Arc<str>),
    /// `--photos DIR`.
    Directory,
}

/// A participant's photo file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// The file (relative paths of the column already joined to the CSV's folder).
    pub path: PathBuf,
    pub origin: PhotoOrigin,
    /// Known once [`source::check`] has read the file; `None` before.
    pub version: Option<PhotoVersion>,
}

impl Photo {
    /// A photo named by the CSV, not read yet.
    pub fn named(path: PathBuf, origin: PhotoOrigin) -> Photo {
        Photo {
            path,
            origin,
            version: None,
        }
    }
}

/// The identity of the photo a device gets: the SHA-256 of the source file's bytes and
/// of the fitting settings (see the module's opening).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhotoVersion(pub [u8; 32]);

impl std::fmt::Debug for PhotoVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PhotoVersion({:016x})", self.as_u64())
    }
}

impl PhotoVersion {
    /// The version of a source whose bytes hash to `source_sha256`, fitted as `fit` says.
    pub fn of(source_sha256: &[u8; 32], fit: PhotoFit) -> PhotoVersion {
        let mut hasher = Sha256::new();
        hasher.update(b"catraca-photo\0");
        match fit {
            PhotoFit::Canonical => hasher.update(fit::FIT_ID.as_bytes()),
            PhotoFit::None => hasher.update(b"as-given"),
        }
        hasher.update([0]);
        hasher.update(source_sha256);
        PhotoVersion(hasher.finalize().into())
    }

    /// The first 8 bytes, for the cache fingerprint of a pair.
    pub fn as_u64(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("32 bytes"))
    }

    /// The `timestamp` catraca sends with a photo to a Control iD device, which keeps it
    /// and returns it (`users.image_timestamp`): a later run compares it and skips a photo
    /// the device already holds. It is a version, not a time: derived from the photo's
    /// identity, so any machine, with or without a cache, sends the same number for the
    /// same photo. It lies between 2001-09-09 and 2023-07-14, so it is a valid past Unix
    /// time for the device (its screen shows that date as the photo's enrollment); two
    /// different photos of one person share it with a chance of 1 in 7 x 10^8.
    pub fn controlid_timestamp(&self) -> i64 {
        const FIRST: u64 = 1_000_000_000;
        const SPAN: u64 = 690_000_000;
        (FIRST + self.as_u64() % SPAN) as i64
    }
}

/// A family's documented limits for the photo it stores (docs/face-api.md, section 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaceLimits {
    /// The smallest picture the family models, width and height in pixels.
    pub min_width: u32,
    pub min_height: u32,
    /// Where the limit comes from, for the failure's reason.
    pub why: &'static str,
}

impl FaceLimits {
    /// The limits of `kind`'s facial terminals.
    pub fn of(kind: Kind) -> FaceLimits {
        match kind {
            // No pixel minimum is documented; a face narrower than 60 px is refused
            // ("Face too distant", code 5), so a picture narrower cannot hold one.
            Kind::Controlid => FaceLimits {
                min_width: 60,
                min_height: 80,
                why: "Control iD refuses faces narrower than 60 px",
            },
            // Longest side under ~400 px failed modeling in the field.
            Kind::Hikvision => FaceLimits {
                min_width: 300,
                min_height: 400,
                why: "Hikvision does not model a photo whose long side is under 400 px",
            },
            // 150x300 to 600x1200 (W x H) per the vendor's API.
            Kind::Intelbras => FaceLimits {
                min_width: 150,
                min_height: 300,
                why: "Intelbras takes photos from 150x300 to 600x1200",
            },
        }
    }

    /// Why a fitted photo of `width` x `height` cannot go to this family, if it cannot.
    pub fn refuse(&self, width: u32, height: u32) -> Option<String> {
        (width < self.min_width || height < self.min_height).then(|| {
            format!(
                "photo too small: {width}x{height} after fitting, under {}x{} ({}); send a larger photo",
                self.min_width, self.min_height, self.why
            )
        })
    }
}

/// What every driver of a run shares for photos: the one [`store::Fitter`] (so a photo
/// is fitted once for all devices) and the options.
#[derive(Debug, Clone, Default)]
pub struct PhotoRun {
    pub fitter: Arc<store::Fitter>,
    pub options: PhotoOptions,
}

impl PhotoRun {
    pub fn new(options: PhotoOptions) -> PhotoRun {
        PhotoRun {
            fitter: Arc::new(store::Fitter::new(options.fit)),
            options,
        }
    }
}
