//! What the three drivers share for face photos: whether the device takes them, the
//! photo to send a person (fitted once for the whole run, checked against the family's
//! limits), and the count of photos sent and refused.
//!
//! Whether a device takes faces is the devices file's `faces = true|false` when it says;
//! otherwise the driver asks the device once (Control iD its model, Hikvision its face
//! library's capabilities, Intelbras its face capability) and keeps the answer. A
//! device that could not be asked is asked again on the next job: its pairs fail (or
//! wait) with the reason meanwhile, and a photo is never silently dropped. A device that
//! takes no faces never gets a photo call, not even a listing.
//!
//! Photos sent and refused are counted in the device's [`DeviceTelemetry`], which the
//! report, the live status, the dashboard and `/metrics` all read.

use super::telemetry::DeviceTelemetry;
use super::DeviceError;
use crate::photo::fit::Fitted;
use crate::photo::{FaceLimits, Photo, PhotoFit, PhotoRun};
use crate::vendor::Kind;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// One device's face support and counters.
#[derive(Debug, Default)]
pub struct Faces {
    pub run: PhotoRun,
    /// The devices file's `faces`, if it says.
    configured: Option<bool>,
    /// What the device answered, once asked.
    answered: Mutex<Option<bool>>,
    /// The device's telemetry, where photos sent and refused are counted.
    telemetry: Arc<DeviceTelemetry>,
}

impl Faces {
    pub fn new(run: PhotoRun, configured: Option<bool>, telemetry: Arc<DeviceTelemetry>) -> Faces {
        Faces {
            run,
            configured,
            answered: Mutex::new(None),
            telemetry,
        }
    }

    /// Whether the device takes faces: the devices file, else `ask` (once, kept).
    pub fn takes(
        &self,
        ask: impl FnOnce() -> Result<bool, DeviceError>,
    ) -> Result<bool, DeviceError> {
        if let Some(configured) = self.configured {
            return Ok(configured);
        }
        let mut answered = self.answered.lock().expect("faces lock");
        if let Some(answer) = *answered {
            return Ok(answer);
        }
        let answer = ask()?;
        *answered = Some(answer);
        Ok(answer)
    }

    /// The bytes to send for `photo` to a device of `kind`, or why the person cannot have
    /// this photo there (counted as refused).
    pub fn photo_for(&self, photo: &Photo, kind: Kind) -> Result<Arc<Fitted>, DeviceError> {
        let fitted = self.run.fitter.get(photo).map_err(|why| self.refuse(why))?;
        if self.run.options.fit == PhotoFit::Canonical {
            if let Some(why) = FaceLimits::of(kind).refuse(fitted.width, fitted.height) {
                return Err(self.refuse(why));
            }
        }
        Ok(fitted)
    }

    /// A photo that could not go to the device: counted, and the pair's failure.
    pub fn refuse(&self, why: String) -> DeviceError {
        self.telemetry
            .photos_refused
            .fetch_add(1, Ordering::Relaxed);
        DeviceError::PhotoRefused(why)
    }

    /// A photo the device stored.
    pub fn count_sent(&self) {
        self.telemetry.photos_sent.fetch_add(1, Ordering::Relaxed);
    }
}
