//! Simulated face detection, shared by the three families, and what a device keeps of
//! a photo it accepted (docs/face-api.md).
//!
//! A real device models a face from the pixels; the simulator decides by rules a test
//! can drive with real pictures, and nothing else: the picture must be a JPEG (or a
//! PNG) it can decode; a comment segment `catraca-sim: no-face` means there is no face,
//! `catraca-sim: same-as <registration>` means the face is that person's; an EXIF
//! orientation other than 1 leaves the face sideways and unmodelable (a rotated phone
//! photo is refused, face-api.md 2.3); a near-uniform picture (a flat grey one, the
//! Intelbras bench's no-face example) has no face either, and survives a product that
//! strips comments. Otherwise the face is the person's own. The header facts the
//! families judge (size in pixels, baseline or progressive, chroma subsampling) are
//! read here from the JPEG segments themselves, and the pixels decoded with `image`
//! ([`inspect_photo`] shows tests the same reading). The face configuration of a
//! device ([`SimFaces`], with its firmware variants) lives here too, one definition
//! for the three families.

use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The time a device takes to model one photo when nothing says otherwise: a guess
/// (no public measurement exists, face-api.md 1.7 and 2.7) in the range field clients'
/// timeouts suggest, and the default of `catraca simulate --face-ms`.
pub const DEFAULT_FACE_TIME: Duration = Duration::from_millis(300);

/// Which Control iD firmware a facial device plays (docs/face-api.md, section 6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ControlIdFaces {
    /// The current documentation: JPEG or PNG, `get_timestamp`, `users.image_timestamp`.
    #[default]
    #[value(name = "stock")]
    Stock,
    /// Firmware before `get_timestamp` (the older page, C2): `user_list_images`
    /// answers `user_ids` only, `users` has no `image_timestamp` column, requests are
    /// capped at 1 MB, and `user_set_image` takes no `timestamp` or `match` (ignored
    /// when sent).
    #[value(name = "old")]
    Old,
    /// The HID Amico OEM build (2.4.5): PNG refused with HTTP 400.
    #[value(name = "oem")]
    Oem,
}

/// Whether a simulated device takes face photos, and how (its firmware's variants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFaces {
    /// The device is a facial model. Default: off, as the card turnstiles the other
    /// tests simulate: it then refuses every face call as that family's non-facial
    /// models do (and counts it in [`FaceStats::calls`]).
    pub enabled: bool,
    /// Added to the answer of a face call for each photo in it (a list of 20 takes 20
    /// times this). Default: [`DEFAULT_FACE_TIME`].
    pub time_per_photo: Duration,
    /// Hikvision: `FDRecordDataMaxNum`, the faces the library holds; beyond it an
    /// upload is refused `exceedMaxFaceNumber`. Default: 3,000 (a DS-K1T342MFWX-E1's).
    pub capacity: usize,
    /// The Control iD firmware. Default: [`ControlIdFaces::Stock`].
    pub controlid: ControlIdFaces,
    /// Hikvision: `FDSetUp` exists (`setUp` in `supportFDFunction`). Off: 404
    /// `notSupport`, only `FaceDataRecord` adds. Default: on.
    pub hikvision_setup: bool,
    /// Hikvision: `FDSearch/Delete` works. Off: it answers statusCode 6 `Invalid
    /// Content` and only `FDDelete` removes, as on a DS-K1T341AMF. Default: on.
    pub hikvision_search_delete: bool,
    /// Hikvision: `FDLib` also lists FDID `2` = `infraredFD` (listed first), as a
    /// DS-K1T342MFWX-E1 does; faces still go to FDID 1 / `blackFD`, and any other
    /// library is refused `faceLibNotExist`. Default: off.
    pub hikvision_infrared_library: bool,
    /// Intelbras: the largest photo taken, in bytes; beyond it FailCode 286064923.
    /// Default: 100 KB (102,400), the documented limit; a Dahua ASI takes under 75 KB.
    pub intelbras_max_photo: usize,
    /// Intelbras: `AccessFace.cgi` exists. Off: `501 Not Implemented`, only
    /// `FaceInfoManager.cgi?action=add|update`. Default: on.
    pub intelbras_access_face: bool,
}

impl Default for SimFaces {
    fn default() -> SimFaces {
        SimFaces {
            enabled: false,
            time_per_photo: DEFAULT_FACE_TIME,
            capacity: 3000,
            controlid: ControlIdFaces::Stock,
            hikvision_setup: true,
            hikvision_search_delete: true,
            hikvision_infrared_library: false,
            intelbras_max_photo: 100 * 1024,
            intelbras_access_face: true,
        }
    }
}

impl SimFaces {
    /// A facial model with the documented firmware.
    pub fn on() -> SimFaces {
        SimFaces {
            enabled: true,
            ..SimFaces::default()
        }
    }

    /// The same, modeling photos in no time (for tests that count, not time).
    pub fn instant() -> SimFaces {
        SimFaces {
            time_per_photo: Duration::ZERO,
            ..SimFaces::on()
        }
    }
}

/// The comment that makes a picture faceless.
pub const NO_FACE_COMMENT: &str = "catraca-sim: no-face";
/// The comment prefix naming whose face a picture shows.
pub const SAME_AS_COMMENT: &str = "catraca-sim: same-as ";
/// Control iD: the comment prefix making the device refuse the photo with this quality
/// code (4 to 9), for tests of codes that no picture property drives.
pub const CONTROLID_ERROR_COMMENT: &str = "catraca-sim: controlid-error ";

/// Below this standard deviation of the luma (0-255) a picture is "uniform": no face.
/// A flat grey JPEG is about 0; any photo of a person is well above 20.
const UNIFORM_STDDEV: f64 = 4.0;

/// How a picture is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PhotoFormat {
    Jpeg,
    Png,
}

/// The chroma subsampling of a JPEG (its components' sampling factors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Subsampling {
    /// Y 2x2, Cb and Cr 1x1.
    S420,
    /// Y 2x1, Cb and Cr 1x1.
    S422,
    /// Every component at full resolution.
    S444,
    /// One component.
    Gray,
    /// Anything else (and every PNG).
    Other,
}

/// A picture as a device reads it.
#[derive(Debug, Clone)]
pub(crate) struct Photo {
    pub(crate) format: PhotoFormat,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// SOF2 (or another progressive SOF) rather than SOF0/SOF1.
    pub(crate) progressive: bool,
    pub(crate) subsampling: Subsampling,
    pub(crate) comments: Vec<String>,
    /// The EXIF orientation tag, when the picture carries one.
    pub(crate) orientation: Option<u16>,
    /// The luma is (almost) the same everywhere.
    pub(crate) uniform: bool,
    pub(crate) sha256: String,
    pub(crate) len: usize,
}

/// Why a picture could not be read at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Unreadable {
    #[error("not a JPEG or PNG picture")]
    NotAPicture,
    #[error("the picture's header is cut short or broken")]
    BrokenHeader,
    #[error("the picture's pixels cannot be decoded")]
    Undecodable,
}

impl Photo {
    /// Reads the header and the pixels of a picture.
    pub(crate) fn read(bytes: &[u8]) -> Result<Photo, Unreadable> {
        let mut photo = if bytes.starts_with(&[0xFF, 0xD8]) {
            read_jpeg_header(bytes)?
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            read_png_header(bytes)?
        } else {
            return Err(Unreadable::NotAPicture);
        };
        let format = match photo.format {
            PhotoFormat::Jpeg => image::ImageFormat::Jpeg,
            PhotoFormat::Png => image::ImageFormat::Png,
        };
        let decoded = image::load_from_memory_with_format(bytes, format)
            .map_err(|_| Unreadable::Undecodable)?;
        photo.uniform = luma_stddev(&decoded.to_luma8()) < UNIFORM_STDDEV;
        photo.sha256 = sha256_hex(bytes);
        photo.len = bytes.len();
        Ok(photo)
    }

    /// Whose face the picture shows, `own` being the identity of the person it is
    /// sent for; `None` when no face is found.
    pub(crate) fn face(&self, own: &str) -> Option<String> {
        if self.comments.iter().any(|c| c.trim() == NO_FACE_COMMENT) {
            return None;
        }
        if self.orientation.is_some_and(|o| o != 1) || self.uniform {
            return None;
        }
        let named = self.comments.iter().find_map(|c| {
            c.trim()
                .strip_prefix(SAME_AS_COMMENT)
                .map(|who| who.trim().to_owned())
        });
        Some(named.unwrap_or_else(|| own.to_owned()))
    }

    /// Control iD: the quality code a `catraca-sim: controlid-error N` comment asks for.
    pub(crate) fn controlid_error(&self) -> Option<u8> {
        self.comments.iter().find_map(|c| {
            c.trim()
                .strip_prefix(CONTROLID_ERROR_COMMENT)
                .and_then(|n| n.trim().parse().ok())
                .filter(|n| (4..=9).contains(n))
        })
    }
}

/// What a picture's header and pixels say, as the simulated devices read them: for
/// tests that check a photo a product prepared (size, encoding, EXIF gone) with a
/// reader that is not the product's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhotoFacts {
    pub format: PhotoFormat,
    pub width: u32,
    pub height: u32,
    /// A progressive JPEG (SOF2); false for baseline and for PNG.
    pub progressive: bool,
    pub subsampling: Subsampling,
    /// The COM segments, in order.
    pub comments: Vec<String>,
    /// The EXIF orientation tag, if the picture carries one.
    pub exif_orientation: Option<u16>,
    /// The picture is (almost) one flat colour: no face in it.
    pub uniform: bool,
    pub bytes: usize,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
}

/// Reads a JPEG or PNG as the simulated devices do; `None` if they could not.
pub fn inspect_photo(bytes: &[u8]) -> Option<PhotoFacts> {
    let photo = Photo::read(bytes).ok()?;
    Some(PhotoFacts {
        format: photo.format,
        width: photo.width,
        height: photo.height,
        progressive: photo.progressive,
        subsampling: photo.subsampling,
        comments: photo.comments,
        exif_orientation: photo.orientation,
        uniform: photo.uniform,
        bytes: photo.len,
        sha256: photo.sha256,
    })
}

/// A face a device holds.
#[derive(Debug, Clone)]
pub(crate) struct StoredFace {
    pub(crate) bytes: Vec<u8>,
    pub(crate) photo: Photo,
    /// Whose face it is (see [`Photo::face`]).
    pub(crate) identity: String,
    /// Control iD: the timestamp sent with it.
    pub(crate) timestamp: Option<i64>,
}

impl StoredFace {
    pub(crate) fn new(
        bytes: &[u8],
        photo: Photo,
        identity: String,
        timestamp: Option<i64>,
    ) -> StoredFace {
        StoredFace {
            bytes: bytes.to_vec(),
            photo,
            identity,
            timestamp,
        }
    }

    pub(crate) fn view(&self, key: &str, user_id: Option<i64>, dangling: bool) -> SimFace {
        SimFace {
            key: key.to_owned(),
            user_id,
            sha256: self.photo.sha256.clone(),
            width: self.photo.width,
            height: self.photo.height,
            format: self.photo.format,
            bytes: self.photo.len,
            identity: self.identity.clone(),
            timestamp: self.timestamp,
            dangling,
        }
    }
}

/// A face as a test sees it on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimFace {
    /// The holder's registration (Control iD), employeeNo (Hikvision) or UserID
    /// (Intelbras); Control iD: empty when the user no longer exists.
    pub key: String,
    /// Control iD: the `user_id` the photo is stored under; `None` elsewhere.
    pub user_id: Option<i64>,
    /// SHA-256 of the exact bytes received, lowercase hex.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    pub format: PhotoFormat,
    /// Size of the photo in bytes.
    pub bytes: usize,
    /// Whose face it is: the holder's key, or the registration a `same-as` comment named.
    pub identity: String,
    /// Control iD: the `timestamp` sent with the photo; `None` elsewhere.
    pub timestamp: Option<i64>,
    /// The photo outlived its person (Control iD after `destroy_objects`, Intelbras
    /// after `AccessUser removeMulti`).
    pub dangling: bool,
}

/// Face calls a device received, counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaceStats {
    /// Every face call (upload, list, search, delete, capabilities) that reached the
    /// device's API, refused ones included, on a device with or without faces. Calls
    /// turned away before it (a Digest 401, a device down or overloaded, an injected
    /// fault) are only in `SimStats`, under their request names.
    pub calls: u64,
    /// Photos that arrived in upload calls (each item of a list or batch).
    pub photos_received: u64,
    /// Of those, photos refused (no face, limits, format, ...).
    pub photos_refused: u64,
    /// Of those, photos stored.
    pub photos_stored: u64,
    /// Photos checked without storing (Control iD `user_test_image`).
    pub tested: u64,
    /// Hikvision: uploads refused because another one was in progress.
    pub busy: u64,
}

impl FaceStats {
    /// Photos the device worked on (modeled): what the per-photo time is paid for.
    pub(crate) fn modeled(&self) -> u64 {
        self.photos_received + self.tested
    }

    pub(crate) fn stored(&mut self) {
        self.photos_received += 1;
        self.photos_stored += 1;
    }

    pub(crate) fn refused(&mut self) {
        self.photos_received += 1;
        self.photos_refused += 1;
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The standard deviation of the luma, on a grid of at most about 64k samples.
fn luma_stddev(luma: &image::GrayImage) -> f64 {
    let (w, h) = luma.dimensions();
    if w == 0 || h == 0 {
        return 0.0;
    }
    let step = ((u64::from(w) * u64::from(h) / 65_536) as f64)
        .sqrt()
        .max(1.0) as u32;
    let (mut n, mut sum, mut squares) = (0.0_f64, 0.0_f64, 0.0_f64);
    for y in (0..h).step_by(step as usize) {
        for x in (0..w).step_by(step as usize) {
            let v = f64::from(luma.get_pixel(x, y)[0]);
            n += 1.0;
            sum += v;
            squares += v * v;
        }
    }
    let mean = sum / n;
    (squares / n - mean * mean).max(0.0).sqrt()
}

fn empty_photo(format: PhotoFormat) -> Photo {
    Photo {
        format,
        width: 0,
        height: 0,
        progressive: false,
        subsampling: Subsampling::Other,
        comments: Vec::new(),
        orientation: None,
        uniform: false,
        sha256: String::new(),
        len: 0,
    }
}

fn read_png_header(bytes: &[u8]) -> Result<Photo, Unreadable> {
    // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4).
    let header = bytes.get(8..24).ok_or(Unreadable::BrokenHeader)?;
    if &header[4..8] != b"IHDR" {
        return Err(Unreadable::BrokenHeader);
    }
    let number = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    Ok(Photo {
        width: number(8),
        height: number(12),
        ..empty_photo(PhotoFormat::Png)
    })
}

/// Walks the segments from SOI to SOS: frame header, comments, EXIF orientation.
fn read_jpeg_header(bytes: &[u8]) -> Result<Photo, Unreadable> {
    let mut photo = empty_photo(PhotoFormat::Jpeg);
    let mut frame = false;
    let mut at = 2;
    loop {
        let &[0xFF, marker] = bytes.get(at..at + 2).ok_or(Unreadable::BrokenHeader)? else {
            return Err(Unreadable::BrokenHeader);
        };
        at += 2;
        match marker {
            // Fill bytes, and markers without a length.
            0xFF => {
                at -= 1;
                continue;
            }
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 => return Err(Unreadable::BrokenHeader),
            _ => {}
        }
        let length = bytes
            .get(at..at + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
            .ok_or(Unreadable::BrokenHeader)?;
        let segment = bytes
            .get(at + 2..at + length)
            .filter(|_| length >= 2)
            .ok_or(Unreadable::BrokenHeader)?;
        match marker {
            0xDA => break,
            // Start of frame: baseline/extended sequential or progressive, Huffman or
            // arithmetic (C4 defines Huffman tables, C8 is reserved, CC arithmetic
            // conditioning).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                read_frame(segment, marker, &mut photo)?;
                frame = true;
            }
            0xFE => photo.comments.push(
                String::from_utf8_lossy(segment)
                    .trim_end_matches('\0')
                    .to_owned(),
            ),
            0xE1 if segment.starts_with(b"Exif\0\0") => {
                photo.orientation = exif_orientation(&segment[6..]);
            }
            _ => {}
        }
        at += length;
    }
    if !frame {
        return Err(Unreadable::BrokenHeader);
    }
    Ok(photo)
}

fn read_frame(segment: &[u8], marker: u8, photo: &mut Photo) -> Result<(), Unreadable> {
    if segment.len() < 6 {
        return Err(Unreadable::BrokenHeader);
    }
    photo.height = u32::from(u16::from_be_bytes([segment[1], segment[2]]));
    photo.width = u32::from(u16::from_be_bytes([segment[3], segment[4]]));
    photo.progressive = matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
    let count = usize::from(segment[5]);
    let factors: Vec<(u8, u8)> = (0..count)
        .filter_map(|i| segment.get(6 + 3 * i + 1))
        .map(|f| (f >> 4, f & 0x0F))
        .collect();
    if factors.len() != count {
        return Err(Unreadable::BrokenHeader);
    }
    photo.subsampling = match factors.as_slice() {
        [_] => Subsampling::Gray,
        [(2, 2), (1, 1), (1, 1)] => Subsampling::S420,
        [(2, 1), (1, 1), (1, 1)] => Subsampling::S422,
        [y, cb, cr] if y == cb && cb == cr => Subsampling::S444,
        _ => Subsampling::Other,
    };
    Ok(())
}

/// The orientation tag (0x0112) of IFD0 in a TIFF block.
fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let little = match tiff.get(0..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |at: usize| {
        let b = tiff.get(at..at + 2)?;
        Some(if little {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| {
        let b = tiff.get(at..at + 4)?;
        Some(if little {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let entries = usize::from(u16_at(ifd)?);
    (0..entries).find_map(|i| {
        let entry = ifd + 2 + 12 * i;
        (u16_at(entry)? == 0x0112).then(|| u16_at(entry + 8))?
    })
}
