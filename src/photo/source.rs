//! Finding and checking every participant's photo before anything is sent.
//!
//! The CSV's photo column wins; else, with `--photos DIR`, `DIR/<registration>` with
//! the first of the extensions in [`EXTENSIONS`] that exists; else the person has no
//! photo (their photo on the devices, if any, is left alone). Each photo file is read
//! once (in parallel, one file per thread at a time, so memory stays that of a few
//! files), hashed for its [`PhotoVersion`], and its header parsed: a file that is
//! missing, unreadable, not a JPEG or PNG, or without pixels stops the run with exit 2,
//! naming the CSV, the line, the field and the file. Only the header is parsed: a file
//! whose header is sound but whose data is broken is found when it is fitted, and fails
//! that person's pairs on facial devices with the reason (decoding 100,000 photos at
//! start-up would cost minutes before the first request).

use super::{Photo, PhotoFit, PhotoOrigin, PhotoVersion};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Cursor;
use std::path::Path;
use thiserror::Error;

/// Extensions looked for under `--photos DIR`, in this order.
pub const EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "JPG", "JPEG", "PNG"];

/// A photo that cannot be used: the run stops before anything is sent.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{csv} line {line}, {origin}: photo {path}: {problem}: {hint}")]
pub struct PhotoError {
    pub csv: String,
    pub line: usize,
    /// `field photo` or `--photos`.
    pub origin: String,
    pub path: String,
    pub problem: String,
    pub hint: &'static str,
}

/// The photo `DIR/<registration>.jpg` (or another of [`EXTENSIONS`]) when `dir` has
/// one.
pub fn find_in_directory(dir: &Path, registration: &str) -> Option<Photo> {
    EXTENSIONS
        .iter()
        .map(|ext| dir.join(format!("{registration}.{ext}")))
        .find(|path| path.is_file())
        .map(|path| Photo::named(path, PhotoOrigin::Directory))
}

/// Reads and checks every photo (each with the CSV line of its person) and sets its
/// version; the first bad photo in file order is the error. `csv` names the
/// participants file in messages.
pub fn check(photos: Vec<(usize, &mut Photo)>, fit: PhotoFit, csv: &str) -> Result<(), PhotoError> {
    if !photos.is_empty() {
        super::store::return_big_blocks_to_the_system();
    }
    let results: Vec<Result<(), PhotoError>> = photos
        .into_par_iter()
        .map(|(line, photo)| match read(&photo.path) {
            Ok(sha256) => {
                photo.version = Some(PhotoVersion::of(&sha256, fit));
                Ok(())
            }
            Err((problem, hint)) => Err(PhotoError {
                csv: csv.to_string(),
                line,
                origin: match &photo.origin {
                    PhotoOrigin::Column(header) => format!("field {header}"),
                    PhotoOrigin::Directory => "--photos".to_string(),
                },
                path: photo.path.display().to_string(),
                problem,
                hint,
            }),
        })
        .collect();
    results.into_iter().collect()
}

/// The SHA-256 of the file at `path` once its header shows a JPEG or PNG with pixels;
/// else what is wrong and how to fix it.
fn read(path: &Path) -> Result<[u8; 32], (String, &'static str)> {
    let bytes = std::fs::read(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "fix the path (relative paths start at the CSV's folder) or add the file"
        } else {
            "check the file's permissions"
        };
        (format!("cannot be read ({e})"), hint)
    })?;
    let not_an_image = "export it as JPEG or PNG";
    let reader = image::ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| (format!("cannot be read ({e})"), not_an_image))?;
    match reader.format() {
        Some(image::ImageFormat::Jpeg | image::ImageFormat::Png) => {}
        Some(other) => return Err((format!("is {other:?}, not JPEG or PNG"), not_an_image)),
        None => {
            return Err((
                "is not an image (neither JPEG nor PNG)".into(),
                not_an_image,
            ))
        }
    }
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| (format!("is not a readable image ({e})"), not_an_image))?;
    if width == 0 || height == 0 {
        return Err((format!("has no pixels ({width}x{height})"), not_an_image));
    }
    Ok(Sha256::digest(&bytes).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn photo(path: PathBuf) -> Photo {
        Photo::named(path, PhotoOrigin::Column("foto".into()))
    }

    fn check_one(path: PathBuf) -> Result<Photo, PhotoError> {
        let mut one = photo(path);
        check(vec![(7, &mut one)], PhotoFit::Canonical, "p.csv")?;
        Ok(one)
    }

    #[test]
    fn a_missing_a_non_image_and_an_empty_file_each_stop_the_run_naming_line_field_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = check_one(dir.path().join("ana.jpg"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("p.csv line 7, field foto: photo ")
                && missing.contains("ana.jpg: cannot be read")
                && missing.contains("fix the path"),
            "{missing}"
        );
        let text = dir.path().join("notes.jpg");
        std::fs::write(&text, "not a photo at all").unwrap();
        let not_image = check_one(text).unwrap_err().to_string();
        assert!(not_image.contains("is not an image"), "{not_image}");
        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        assert!(check_one(empty).is_err());
    }

    #[test]
    fn a_good_photo_gets_a_version_from_its_bytes_and_the_fit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ana.png");
        image::RgbImage::from_pixel(30, 40, image::Rgb([1, 2, 3]))
            .save(&path)
            .unwrap();
        let checked = check_one(path.clone()).unwrap();
        let version = checked.version.unwrap();
        assert_eq!(check_one(path.clone()).unwrap().version, Some(version));
        let mut as_given = photo(path);
        check(vec![(2, &mut as_given)], PhotoFit::None, "p.csv").unwrap();
        assert_ne!(
            as_given.version,
            Some(version),
            "the fit is part of the version"
        );
        let ts = version.controlid_timestamp();
        assert!((1_000_000_000..1_690_000_000).contains(&ts), "{ts}");
    }

    #[test]
    fn a_photos_folder_is_searched_by_registration_and_extension() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("A-2.jpeg"), b"x").unwrap();
        std::fs::write(dir.path().join("A-3.PNG"), b"x").unwrap();
        assert!(find_in_directory(dir.path(), "A-1").is_none());
        assert!(find_in_directory(dir.path(), "A-2")
            .unwrap()
            .path
            .ends_with("A-2.jpeg"));
        assert!(find_in_directory(dir.path(), "A-3").is_some());
    }
}
