//! `--verify`: once every job is done, a random share of the pairs written in this run
//! is read back from its device. Some devices answer OK without storing (field evidence);
//! a pair the device does not hold as written moves from registered or updated to failed
//! and leaves the cache, so the next run writes it again.

use super::{Enrollment, PLAN_CHUNK};
use crate::device::Plan;
use crate::person::Person;
use crate::reporter::Event;
use crossbeam_channel::Sender;
use rayon::prelude::*;

impl Enrollment<'_> {
    /// `--verify`: reads back a random `share` of the pairs written in this run; a pair
    /// the device does not hold as written (it answered OK without storing) is reported
    /// failed and leaves the cache, so the next run writes it again.
    pub(super) fn verify(
        &self,
        pool: &rayon::ThreadPool,
        mut written: Vec<(usize, u32, bool)>,
        share: f64,
        events: &Sender<Event>,
    ) {
        use rand::seq::SliceRandom;
        if written.is_empty() || share <= 0.0 {
            return;
        }
        let wanted = ((written.len() as f64 * share).ceil() as usize).clamp(1, written.len());
        written.shuffle(&mut rand::rng());
        written.truncate(wanted);
        let mut by_device: Vec<Vec<(u32, bool)>> = vec![Vec::new(); self.targets.len()];
        for (d, p, updated) in written {
            by_device[d].push((p, updated));
        }
        let check = |(d, sample): (usize, &Vec<(u32, bool)>)| {
            let device = &self.targets[d].device;
            let mut cache = self.cache.connect().ok();
            for chunk in sample.chunks(PLAN_CHUNK) {
                let refs: Vec<&Person> = chunk
                    .iter()
                    .map(|(p, _)| &self.people[*p as usize])
                    .collect();
                let plans = match device.plan(&refs) {
                    Ok(plans) => plans,
                    Err(e) => {
                        log::warn!(
                            "{}: --verify could not read people back: {e}",
                            device.name()
                        );
                        continue;
                    }
                };
                let _ = events.send(Event::Verified {
                    count: chunk.len() as u64,
                });
                let missing: Vec<(u32, bool, String)> = chunk
                    .iter()
                    .zip(plans)
                    .filter_map(|(&(p, updated), plan)| match plan {
                        Plan::Unchanged { .. } => None,
                        Plan::Create => Some((
                            p,
                            updated,
                            "the device does not hold this person".to_string(),
                        )),
                        Plan::Update { changes, .. } => Some((
                            p,
                            updated,
                            format!(
                                "the device holds this person with a different {}",
                                changes.join(", ")
                            ),
                        )),
                        Plan::Ambiguous { ids } => Some((
                            p,
                            updated,
                            format!("the device holds this registration {} times", ids.len()),
                        )),
                    })
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                if let Some(cache) = cache.as_mut() {
                    let people: Vec<u32> = missing.iter().map(|(p, _, _)| *p).collect();
                    if let Err(e) = cache.forget(&self.keys(d, &people)) {
                        log::warn!("could not drop unverified pairs from the cache: {e}");
                    }
                }
                for (person, updated, why) in missing {
                    let _ = events.send(Event::VerifyFailed {
                        device: d,
                        person,
                        updated,
                        error: format!("{why}, though it answered OK to the write (--verify): run again, and check the device"),
                    });
                }
            }
        };
        pool.install(|| by_device.par_iter().enumerate().for_each(check));
    }
}
