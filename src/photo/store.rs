//! Fitted photos for the drivers, made when a batch is about to be sent and shared by
//! every device of the run.
//!
//! Memory stays bounded whatever the number of participants: a photo is read and
//! fitted only when a driver is about to send it, at most [`MAX_FITTING`] photos are
//! decoded at once (a decoded phone photo is tens of MB), and the last [`KEPT`] fitted
//! photos are kept (about 70 KB each, so under 20 MB), keyed by their version. Devices
//! progress through the same people at about the same pace, so a photo fitted for one
//! device is usually still kept when the next device asks for it: fitted once per run,
//! not once per device. When it has been dropped it is fitted again, to the same bytes.

use super::fit::{self, Fitted};
use super::{Photo, PhotoFit, PhotoVersion};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Fitted photos kept for other devices: 256 x at most 70 KB = under 18 MB.
pub const KEPT: usize = 256;

/// Photos decoded at once at most: one per core. Fitting is CPU-bound, so more would
/// only add decoded images in memory (a 12-megapixel photo is 36 MB of pixels).
pub static MAX_FITTING: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
});

/// The photo a device gets, or why there is none.
pub type FitResult = Result<Arc<Fitted>, String>;

/// Makes and keeps fitted photos for one run.
pub struct Fitter {
    mode: PhotoFit,
    kept: Mutex<VecDeque<(PhotoVersion, FitResult)>>,
    fitting: Mutex<usize>,
    slot_free: Condvar,
    fitted: AtomicU64,
}

impl std::fmt::Debug for Fitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fitter({:?})", self.mode)
    }
}

impl Default for Fitter {
    fn default() -> Fitter {
        Fitter::new(PhotoFit::default())
    }
}

impl Fitter {
    pub fn new(mode: PhotoFit) -> Fitter {
        Fitter {
            mode,
            kept: Mutex::new(VecDeque::with_capacity(KEPT)),
            fitting: Mutex::new(0),
            slot_free: Condvar::new(),
            fitted: AtomicU64::new(0),
        }
    }

    /// How photos are prepared.
    pub fn mode(&self) -> PhotoFit {
        self.mode
    }

    /// Photos read and fitted so far (a photo dropped and fitted again counts twice).
    pub fn fitted_count(&self) -> u64 {
        self.fitted.load(Ordering::Relaxed)
    }

    /// The photo to send for `photo`: fitted (or as given with `--photo-fit none`), or
    /// why it cannot be used.
    pub fn get(&self, photo: &Photo) -> FitResult {
        let Some(version) = photo.version else {
            return Err(format!(
                "photo {} was not checked before the run",
                photo.path.display()
            ));
        };
        if let Some(found) = self.kept(version) {
            return found;
        }
        let result = {
            let _slot = self.slot();
            // Another thread may have fitted it while this one waited.
            if let Some(found) = self.kept(version) {
                return found;
            }
            self.fitted.fetch_add(1, Ordering::Relaxed);
            self.make(photo).map(Arc::new)
        };
        // Only photos of a canonical size are kept: a file sent as given may be a 4 MB
        // phone photo, and 256 of those would not be a small cache.
        if result
            .as_ref()
            .map_or(true, |f| f.jpeg.len() <= fit::MAX_BYTES)
        {
            let mut kept = self.kept.lock().expect("kept lock");
            if kept.len() == KEPT {
                kept.pop_front();
            }
            kept.push_back((version, result.clone()));
        }
        result
    }

    fn kept(&self, version: PhotoVersion) -> Option<FitResult> {
        let kept = self.kept.lock().expect("kept lock");
        kept.iter()
            .rev()
            .find(|(v, _)| *v == version)
            .map(|(_, r)| r.clone())
    }

    fn make(&self, photo: &Photo) -> Result<Fitted, String> {
        let source = std::fs::read(&photo.path)
            .map_err(|e| format!("photo {} cannot be read ({e})", photo.path.display()))?;
        match self.mode {
            PhotoFit::Canonical => fit::fit(&source),
            PhotoFit::None => {
                let (width, height) = image::ImageReader::new(std::io::Cursor::new(&source))
                    .with_guessed_format()
                    .ok()
                    .and_then(|r| r.into_dimensions().ok())
                    .unwrap_or((0, 0));
                Ok(Fitted {
                    jpeg: source,
                    width,
                    height,
                })
            }
        }
    }

    /// Waits for one of the [`MAX_FITTING`] decoding slots.
    fn slot(&self) -> Slot<'_> {
        let mut busy = self.fitting.lock().expect("fitting lock");
        while *busy >= *MAX_FITTING {
            busy = self.slot_free.wait(busy).expect("fitting lock");
        }
        *busy += 1;
        Slot(self)
    }
}

struct Slot<'a>(&'a Fitter);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.fitting.lock().expect("fitting lock") -= 1;
        self.0.slot_free.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::photo::{PhotoOrigin, PhotoVersion};

    fn photo(dir: &std::path::Path, seed: u64) -> Photo {
        let path = dir.join(format!("{seed}.jpg"));
        let bytes = catraca_sim::test_photo::TestPhoto::new(120, 160)
            .seed(seed)
            .build();
        std::fs::write(&path, &bytes).unwrap();
        let sha: [u8; 32] =
            sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes)).into();
        Photo {
            path,
            origin: PhotoOrigin::Directory,
            version: Some(PhotoVersion::of(&sha, PhotoFit::Canonical)),
        }
    }

    #[test]
    fn a_photo_asked_by_several_devices_is_fitted_once_and_the_kept_ones_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let fitter = Fitter::default();
        let first = photo(dir.path(), 1);
        let a = fitter.get(&first).unwrap();
        let b = fitter.get(&first).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(fitter.fitted_count(), 1);
        for seed in 2..(KEPT as u64 + 3) {
            fitter.get(&photo(dir.path(), seed)).unwrap();
        }
        assert_eq!(fitter.kept.lock().unwrap().len(), KEPT);
        // The first was dropped: asked again, it is fitted again, to the same bytes.
        let again = fitter.get(&first).unwrap();
        assert_eq!(fitter.fitted_count(), KEPT as u64 + 3);
        assert_eq!(again.jpeg, a.jpeg);
    }
}
