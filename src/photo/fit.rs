//! The canonical photo: one JPEG that every facial family takes (docs/face-api.md,
//! section 0), made the same way every time.
//!
//! The source (JPEG or PNG) is decoded with the `image` crate (JPEG and PNG only), its
//! EXIF orientation applied (rotated phone photos are not modeled by Hikvision), then
//! framed to portrait 3:4: a wider picture loses its sides (centred crop), a taller one
//! gets white bands at its sides, so the head is never cut. A frame taller than
//! [`MAX_HEIGHT`] is scaled down to [`MAX_WIDTH`] x [`MAX_HEIGHT`]; a smaller one is never
//! scaled up (enlarging does not make a face a device can model: a photo too small for
//! a family fails on that family's devices, see [`super::FaceLimits`]). It is encoded
//! by `jpeg-encoder` as baseline JPEG, YCbCr 4:2:0 (Hikvision refuses some 4:4:4 and
//! progressive encodes), with no EXIF, comment or other metadata, at the highest quality
//! of [`QUALITIES`] that stays under [`MAX_BYTES`]; if even the lowest does not, the
//! picture is scaled down by a tenth and tried again.
//!
//! Same input, same bytes: the decoder, the resize filter and the encoder are pure
//! integer or float code without randomness, and `jpeg-encoder` runs without its SIMD
//! paths. The bytes may still differ on another CPU architecture; the photo's version
//! does not depend on them (it hashes the source, see the parent module).

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use std::io::Cursor;

/// Names the fitting below: part of every photo's version, so changing any constant or
/// step here must change it (photos are then sent again, once).
pub const FIT_ID: &str = "fit-v1 3:4 480x640 70000B q85-25 baseline-420";

/// The largest canonical photo: 480 x 640, portrait 3:4. Inside every family's range
/// (Intelbras 150x300 to 600x1200, Hikvision long side >= 400), and about the 500x500
/// Intelbras recommends.
pub const MAX_WIDTH: u32 = 480;
pub const MAX_HEIGHT: u32 = 640;

/// At most 70,000 bytes: under the strictest limit of any facial family (Dahua ASI
/// < 75 KB, Intelbras 100 KB, Hikvision 200 KB, Control iD 2 MB). The same photo goes to
/// every family, so adding a device of another family never changes it.
pub const MAX_BYTES: usize = 70_000;

/// JPEG qualities tried in turn; 85 keeps a face sharp (Control iD refuses low
/// sharpness), 25 is where faces start to blur.
pub const QUALITIES: [u8; 7] = [85, 75, 65, 55, 45, 35, 25];

/// The most bytes the decoder may allocate for one source: a 50-megapixel phone photo
/// (200 MB of RGBA) and no more, so a hostile file cannot exhaust memory.
const MAX_DECODE_ALLOC: u64 = 200 * 1024 * 1024;

/// A canonical photo, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Fits `source` (the bytes of a JPEG or PNG file). The error says why the photo cannot
/// be used, for the reason of the person's failed pairs.
pub fn fit(source: &[u8]) -> Result<Fitted, String> {
    let mut reader = ImageReader::new(Cursor::new(source))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the photo: {e}"))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("not a readable JPEG or PNG: {e}"))?;
    // A file without EXIF, or with an unreadable one, is taken as it stands.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder)
        .map_err(|e| format!("not a readable JPEG or PNG: {e}"))?;
    image.apply_orientation(orientation);
    let framed = frame(image.into_rgb8());
    let (mut width, mut height) = framed.dimensions();
    if height > MAX_HEIGHT {
        (width, height) = (MAX_WIDTH, MAX_HEIGHT);
    }
    loop {
        let scaled = if (width, height) == framed.dimensions() {
            None
        } else {
            Some(image::imageops::resize(
                &framed,
                width,
                height,
                image::imageops::FilterType::Triangle,
            ))
        };
        let pixels = scaled.as_ref().unwrap_or(&framed);
        for quality in QUALITIES {
            let jpeg = encode(pixels, quality)?;
            if jpeg.len() <= MAX_BYTES {
                return Ok(Fitted {
                    jpeg,
                    width,
                    height,
                });
            }
        }
        if width < 30 {
            return Err("the photo does not fit in 70 KB at any size".into());
        }
        // A tenth smaller, keeping 3:4 (height a multiple of 4).
        height = (height * 9 / 10) / 4 * 4;
        width = height * 3 / 4;
    }
}

/// `image` framed to portrait 3:4: the sides of a wider picture cropped (centred), a
/// taller one padded with white at both sides.
fn frame(image: RgbImage) -> RgbImage {
    let (w, h) = image.dimensions();
    // Width for 3:4 at this height, rounded to the nearest pixel.
    let wanted = ((u64::from(h) * 3 + 2) / 4).max(1) as u32;
    if wanted == w {
        image
    } else if wanted < w {
        image::imageops::crop_imm(&image, (w - wanted) / 2, 0, wanted, h).to_image()
    } else {
        let mut padded = RgbImage::from_pixel(wanted, h, image::Rgb([255, 255, 255]));
        image::imageops::replace(&mut padded, &image, i64::from((wanted - w) / 2), 0);
        padded
    }
}

/// Baseline JPEG, YCbCr 4:2:0, no metadata.
fn encode(pixels: &RgbImage, quality: u8) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(MAX_BYTES);
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    encoder.set_progressive(false);
    let (w, h) = pixels.dimensions();
    encoder
        .encode(
            pixels.as_raw(),
            u16::try_from(w).map_err(|_| "photo wider than 65535 px")?,
            u16::try_from(h).map_err(|_| "photo taller than 65535 px")?,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(|e| format!("cannot encode the fitted photo: {e}"))?;
    Ok(out)
}

/// The sampling factors (horizontal, vertical) of each component of a baseline JPEG, and
/// whether it is baseline (SOF0), read from its start-of-frame marker. For tests and
/// for checking a photo sent as given.
pub fn jpeg_frame(jpeg: &[u8]) -> Option<(bool, Vec<(u8, u8)>)> {
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xFF {
            return None;
        }
        let marker = jpeg[i + 1];
        let length = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
            let segment = jpeg.get(i + 4..i + 2 + length)?;
            let components = usize::from(*segment.get(5)?);
            let factors = (0..components)
                .map(|c| {
                    let packed = *segment.get(6 + c * 3 + 1)?;
                    Some((packed >> 4, packed & 0x0F))
                })
                .collect::<Option<Vec<_>>>()?;
            return Some((marker == 0xC0, factors));
        }
        i += 2 + length;
    }
    None
}

/// Every marker of `jpeg` before its image data, for tests that look for metadata.
pub fn jpeg_markers(jpeg: &[u8]) -> Vec<u8> {
    let mut markers = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        markers.push(marker);
        if marker == 0xDA {
            break;
        }
        i += 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
    }
    markers
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A noisy, smoothly varying picture (JPEG compresses it like a photo, not like a
    /// flat colour).
    fn picture(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let n = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 40;
            image::Rgb([
                ((x * 255 / width) as u8).saturating_add(n as u8),
                ((y * 255 / height) as u8).saturating_add(n as u8),
                (((x + y) % 256) as u8),
            ])
        })
    }

    fn png(image: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_big_landscape_photo_becomes_a_baseline_420_portrait_under_70_kb_and_always_the_same() {
        let source = png(&picture(1600, 1200));
        let fitted = fit(&source).unwrap();
        assert_eq!((fitted.width, fitted.height), (480, 640));
        assert!(fitted.jpeg.len() <= MAX_BYTES, "{}", fitted.jpeg.len());
        let (baseline, factors) = jpeg_frame(&fitted.jpeg).unwrap();
        assert!(baseline);
        assert_eq!(factors, vec![(2, 2), (1, 1), (1, 1)], "4:2:0");
        // No EXIF (APP1), no comment (COM): JFIF, tables, frame, scan.
        let markers = jpeg_markers(&fitted.jpeg);
        assert!(
            !markers.contains(&0xE1) && !markers.contains(&0xFE),
            "{markers:x?}"
        );
        assert_eq!(fit(&source).unwrap(), fitted, "deterministic");
        let decoded = image::load_from_memory(&fitted.jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (480, 640));
    }

    #[test]
    fn a_tall_photo_is_padded_and_a_small_one_is_not_enlarged() {
        let fitted = fit(&png(&picture(200, 400))).unwrap();
        assert_eq!((fitted.width, fitted.height), (300, 400));
        let fitted = fit(&png(&picture(120, 160))).unwrap();
        assert_eq!((fitted.width, fitted.height), (120, 160));
    }

    #[test]
    fn the_exif_orientation_is_applied_before_framing() {
        use catraca_sim::test_photo::TestPhoto;
        // The same pixels, once stored on their side with EXIF orientation 6 (rotate
        // 90 degrees clockwise to view), once already rotated, without EXIF.
        let lying = TestPhoto::new(640, 480).seed(5).quality(95);
        let with_exif = lying.clone().exif_orientation(6).build();
        let upright = image::load_from_memory(&lying.build()).unwrap().rotate90();
        let upright = png(&upright.to_rgb8());
        let fitted = fit(&with_exif).unwrap();
        assert_eq!((fitted.width, fitted.height), (480, 640));
        assert_eq!(fitted, fit(&upright).unwrap());
        assert!(!jpeg_markers(&fitted.jpeg).contains(&0xE1), "EXIF stripped");
    }

    #[test]
    fn a_file_that_is_not_an_image_is_refused_with_a_reason() {
        let error = fit(b"hello, not a photo").unwrap_err();
        assert!(error.contains("not a readable JPEG or PNG"), "{error}");
    }
}
