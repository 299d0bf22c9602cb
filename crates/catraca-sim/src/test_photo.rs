//! Real pictures for tests of the simulator and of the product: JPEGs (and PNGs) made
//! on the spot, so every face rule of `face.rs` and every family's limit can be driven
//! with bytes a device could receive, and nothing binary is checked in.
//!
//! A [`TestPhoto`] draws a head-and-shoulders figure on a background, both coloured
//! from its seed, with seeded grain, so that two people get two different photos and a
//! photo never looks uniform. Options add what the rules read: a `catraca-sim: no-face`
//! or `catraca-sim: same-as <registration>` comment (spliced right after SOI), an EXIF
//! orientation (an APP1 segment), progressive encoding, 4:4:4 or 4:2:2 chroma. By
//! default a photo is a baseline 4:2:0 JPEG at quality 85, like the product's canonical
//! one. [`TestPhoto::phone_photo`] is a big rotated camera picture; [`TestPhoto::flat_grey`]
//! a picture with no face that no comment-stripping can change.

use std::io::Cursor;

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::face::{CONTROLID_ERROR_COMMENT, NO_FACE_COMMENT, SAME_AS_COMMENT};

/// Chroma subsampling of a generated JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    S420,
    S422,
    S444,
}

/// A picture to generate; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPhoto {
    width: u32,
    height: u32,
    seed: u64,
    comments: Vec<String>,
    orientation: Option<u16>,
    progressive: bool,
    chroma: Chroma,
    quality: u8,
    /// Amplitude of the seeded grain, 0 to 127.
    grain: u8,
    flat: bool,
    png: bool,
}

impl TestPhoto {
    /// A `width` x `height` baseline 4:2:0 JPEG of a face, seed 0, quality 85, light grain.
    pub fn new(width: u32, height: u32) -> TestPhoto {
        TestPhoto {
            width,
            height,
            seed: 0,
            comments: Vec::new(),
            orientation: None,
            progressive: false,
            chroma: Chroma::S420,
            quality: 85,
            grain: 12,
            flat: false,
            png: false,
        }
    }

    /// Colours and grain from `seed`: different seeds give different bytes.
    pub fn seed(mut self, seed: u64) -> TestPhoto {
        self.seed = seed;
        self
    }

    /// A `catraca-sim: no-face` comment: the simulators find no face.
    pub fn no_face(self) -> TestPhoto {
        self.comment(NO_FACE_COMMENT)
    }

    /// A `catraca-sim: same-as <registration>` comment: the face is that person's.
    pub fn same_as(self, registration: &str) -> TestPhoto {
        self.comment(&format!("{SAME_AS_COMMENT}{registration}"))
    }

    /// A `catraca-sim: controlid-error <code>` comment: a Control iD simulator refuses
    /// the photo with that quality code (4 to 9).
    pub fn controlid_error(self, code: u8) -> TestPhoto {
        self.comment(&format!("{CONTROLID_ERROR_COMMENT}{code}"))
    }

    /// Any comment segment (COM), in the order given, right after SOI.
    pub fn comment(mut self, text: &str) -> TestPhoto {
        self.comments.push(text.to_owned());
        self
    }

    /// An APP1 Exif segment whose IFD0 carries this orientation tag (1 to 8).
    pub fn exif_orientation(mut self, orientation: u16) -> TestPhoto {
        self.orientation = Some(orientation);
        self
    }

    /// A progressive JPEG (SOF2).
    pub fn progressive(mut self) -> TestPhoto {
        self.progressive = true;
        self
    }

    /// No chroma subsampling (4:4:4).
    pub fn subsampling_444(mut self) -> TestPhoto {
        self.chroma = Chroma::S444;
        self
    }

    /// Horizontal chroma subsampling only (4:2:2).
    pub fn subsampling_422(mut self) -> TestPhoto {
        self.chroma = Chroma::S422;
        self
    }

    /// JPEG quality, 1 to 100.
    pub fn quality(mut self, quality: u8) -> TestPhoto {
        self.quality = quality.clamp(1, 100);
        self
    }

    /// Amplitude of the grain, 0 to 127: more grain compresses worse (bigger files).
    pub fn grain(mut self, amplitude: u8) -> TestPhoto {
        self.grain = amplitude.min(127);
        self
    }

    /// One flat grey: no face, whatever comments are kept or stripped.
    pub fn flat(mut self) -> TestPhoto {
        self.flat = true;
        self
    }

    /// A PNG instead of a JPEG (comments and orientation are not written into PNGs).
    pub fn png(mut self) -> TestPhoto {
        self.png = true;
        self
    }

    /// A flat grey JPEG of this size.
    pub fn flat_grey(width: u32, height: u32) -> Vec<u8> {
        TestPhoto::new(width, height).flat().build()
    }

    /// A camera picture as a phone stores it: 4032 x 3024 pixels lying on their side
    /// with EXIF orientation 6 (rotate 90 degrees clockwise to view), quality 92, grain:
    /// about 3.7 MB that do not compress away (under the simulators' 4 MiB body cap).
    pub fn phone_photo(seed: u64) -> Vec<u8> {
        TestPhoto::new(4032, 3024)
            .seed(seed)
            .exif_orientation(6)
            .quality(92)
            .grain(10)
            .build()
    }

    /// The picture's bytes.
    ///
    /// # Panics
    /// On a width or height of 0 or above 65,535 (JPEG's limit).
    pub fn build(&self) -> Vec<u8> {
        assert!(
            (1..=65_535).contains(&self.width) && (1..=65_535).contains(&self.height),
            "a test photo is 1 to 65,535 pixels on each side"
        );
        let pixels = self.draw();
        if self.png {
            let image = image::RgbImage::from_raw(self.width, self.height, pixels)
                .expect("the buffer holds width x height pixels");
            let mut out = Cursor::new(Vec::new());
            image
                .write_to(&mut out, image::ImageFormat::Png)
                .expect("encoding a PNG in memory cannot fail");
            return out.into_inner();
        }
        let mut jpeg = Vec::new();
        let mut encoder = Encoder::new(&mut jpeg, self.quality);
        encoder.set_sampling_factor(match self.chroma {
            Chroma::S420 => SamplingFactor::R_4_2_0,
            Chroma::S422 => SamplingFactor::R_4_2_2,
            Chroma::S444 => SamplingFactor::R_4_4_4,
        });
        encoder.set_progressive(self.progressive);
        if let Some(orientation) = self.orientation {
            encoder
                .add_exif_metadata(&exif_with_orientation(orientation))
                .expect("a one-entry EXIF block is small");
        }
        // The sides fit in u16: checked above.
        encoder
            .encode(
                &pixels,
                self.width as u16,
                self.height as u16,
                ColorType::Rgb,
            )
            .expect("encoding a JPEG in memory cannot fail");
        splice_comments(jpeg, &self.comments)
    }

    /// RGB pixels: a figure on a background, with grain.
    fn draw(&self) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        if self.flat {
            return vec![128; w * h * 3];
        }
        let mut rng = StdRng::seed_from_u64(self.seed);
        let background: [f32; 3] = [
            rng.random_range(40.0..200.0),
            rng.random_range(40.0..200.0),
            rng.random_range(40.0..200.0),
        ];
        let skin: [f32; 3] = [
            rng.random_range(150.0..235.0),
            rng.random_range(100.0..190.0),
            rng.random_range(70.0..160.0),
        ];
        let shirt: [f32; 3] = [
            rng.random_range(0.0..255.0),
            rng.random_range(0.0..255.0),
            rng.random_range(0.0..255.0),
        ];
        // The figure, in units of the shorter side, centred, head in the upper half.
        let unit = w.min(h) as f32;
        let (cx, cy) = (w as f32 / 2.0, h as f32 * 0.42);
        let (rx, ry) = (unit * 0.22, unit * 0.29);
        let eye_y = cy - ry * 0.2;
        let eye_dx = rx * 0.4;
        let eye_r = unit * 0.03;
        let grain = i32::from(self.grain);
        // A cheap generator for the grain (one draw per sample, millions of them).
        let mut state = rng.random::<u64>() | 1;
        let mut pixels = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            let (fy, vertical) = (y as f32, y as f32 / h as f32);
            for x in 0..w {
                let fx = x as f32;
                let (dx, dy) = ((fx - cx) / rx, (fy - cy) / ry);
                let in_head = dx * dx + dy * dy <= 1.0;
                let near_eye = |ex: f32| (fx - ex).powi(2) + (fy - eye_y).powi(2) <= eye_r * eye_r;
                let colour = if in_head && (near_eye(cx - eye_dx) || near_eye(cx + eye_dx)) {
                    [30.0, 25.0, 20.0]
                } else if in_head && dy > 0.45 && dy < 0.55 && dx.abs() < 0.35 {
                    [150.0, 40.0, 50.0]
                } else if in_head {
                    skin
                } else if fy > cy + ry * 1.1 && (fx - cx).abs() < unit * 0.45 {
                    shirt
                } else {
                    // A soft vertical gradient behind.
                    background.map(|c| c * (0.75 + 0.5 * vertical))
                };
                for c in colour {
                    let noise = if grain > 0 {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state % (2 * grain as u64 + 1)) as i32 - grain
                    } else {
                        0
                    };
                    pixels.push((c as i32 + noise).clamp(0, 255) as u8);
                }
            }
        }
        pixels
    }
}

/// A little-endian TIFF block with one IFD0 entry: Orientation (0x0112), SHORT.
fn exif_with_orientation(orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::with_capacity(26);
    tiff.extend_from_slice(b"II\x2a\x00");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff
}

/// `jpeg` with a COM segment per comment right after SOI.
fn splice_comments(jpeg: Vec<u8>, comments: &[String]) -> Vec<u8> {
    if comments.is_empty() {
        return jpeg;
    }
    let mut out =
        Vec::with_capacity(jpeg.len() + comments.iter().map(|c| c.len() + 4).sum::<usize>());
    out.extend_from_slice(&jpeg[..2]);
    for comment in comments {
        let length = u16::try_from(comment.len() + 2).expect("a comment under 64 KB");
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(comment.as_bytes());
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}
