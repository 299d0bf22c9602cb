//! Fitted photos for the drivers, made when a batch is about to be sent and shared by
//! every device of the run.
//!
//! Memory stays bounded whatever the number of participants: a photo is read and
//! fitted only when a driver is about to send it, at most [`MAX_FITTING`] photos are
//! decoded at once (a decoded phone photo is tens of MB), and the last [`KEPT`] fitted
//! photos are kept (about 70 KB each, so under 20 MB), keyed by their version. Devices
//! progress through the same people at about the same pace, so a photo fitted for one
//! device is usually still kept when the next device asks for it, and a device asking
//! for a photo another is fitting waits for it: fitted once per run, not once per
//! device. When it has been dropped it is fitted again, to the same bytes.

use super::fit::{self, Fitted};
use super::{Photo, PhotoFit, PhotoVersion};
use std::collections::{HashSet, VecDeque};
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
    state: Mutex<State>,
    changed: Condvar,
    fitted: AtomicU64,
}

#[derive(Default)]
struct State {
    kept: VecDeque<(PhotoVersion, FitResult)>,
    /// Photos being fitted now: a second device asking for one waits for it rather
    /// than fitting it again (devices reach the same people at about the same time).
    fitting: HashSet<PhotoVersion>,
    /// Decoding slots in use, at most [`MAX_FITTING`].
    busy: usize,
}

impl State {
    fn kept(&self, version: PhotoVersion) -> Option<FitResult> {
        self.kept
            .iter()
            .rev()
            .find(|(v, _)| *v == version)
            .map(|(_, r)| r.clone())
    }
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
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            fitted: AtomicU64::new(0),
        }
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
        {
            let mut state = self.state.lock().expect("fitter lock");
            loop {
                if let Some(found) = state.kept(version) {
                    return found;
                }
                if !state.fitting.contains(&version) && state.busy < *MAX_FITTING {
                    break;
                }
                state = self.changed.wait(state).expect("fitter lock");
            }
            state.fitting.insert(version);
            state.busy += 1;
        }
        self.fitted.fetch_add(1, Ordering::Relaxed);
        let result = self.make(photo).map(Arc::new);
        let mut state = self.state.lock().expect("fitter lock");
        state.busy -= 1;
        state.fitting.remove(&version);
        // Only photos of a canonical size are kept: a file sent as given may be a 4 MB
        // phone photo, and 256 of those would not be a small cache.
        if result
            .as_ref()
            .map_or(true, |f| f.jpeg.len() <= fit::MAX_BYTES)
        {
            if state.kept.len() == KEPT {
                state.kept.pop_front();
            }
            state.kept.push_back((version, result.clone()));
        }
        drop(state);
        self.changed.notify_all();
        result
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
}

impl Drop for Fitter {
    fn drop(&mut self) {
        let fitted = self.fitted_count();
        if fitted > 0 {
            log::debug!("photos fitted in this run: {fitted}");
        }
    }
}

/// Makes the C allocator hand big blocks back to the system when freed, once per
/// process. A decoded photo is megabytes; glibc raises its mmap threshold after such a
/// block is freed, so later ones come from each worker thread's own heap and stay
/// there: W5-scale's peak RSS was set by ten threads' heaps, each grown to a few
/// decodes (142 MB for 3,000 people on 2 devices; 77 MB with this). A fixed threshold
/// of 256 KiB keeps every image buffer in its own mapping, returned when dropped. The
/// smaller blocks (a source file, a fitted photo, its base64) still spread over one heap
/// per thread; two heaps for the run's threads took W5-scale at 9,000 people from 90.7
/// to 80.1 MB in the same wall time (85 s and 88 s on a shared machine; 69.9 MB with
/// `GLIBC_TUNABLES=glibc.malloc.arena_max=2`, which applies from the process's start).
/// Called when a
/// run has photos (`source::check`): runs without them keep the allocator's defaults.
pub fn return_big_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes the allocator's tuning, once, before photos are
        // decoded.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
            libc::mallopt(libc::M_ARENA_MAX, 2);
        });
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
        // Asked by several threads at once: fitted once, the others wait for it.
        let results: Vec<FitResult> = std::thread::scope(|scope| {
            let asking: Vec<_> = (0..4).map(|_| scope.spawn(|| fitter.get(&first))).collect();
            asking.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(fitter.fitted_count(), 1);
        let a = results[0].clone().unwrap();
        assert!(results.iter().all(|r| Arc::ptr_eq(r.as_ref().unwrap(), &a)));
        for seed in 2..(KEPT as u64 + 3) {
            fitter.get(&photo(dir.path(), seed)).unwrap();
        }
        assert_eq!(fitter.state.lock().unwrap().kept.len(), KEPT);
        // The first was dropped: asked again, it is fitted again, to the same bytes.
        let again = fitter.get(&first).unwrap();
        assert_eq!(fitter.fitted_count(), KEPT as u64 + 3);
        assert_eq!(again.jpeg, a.jpeg);
    }
}
