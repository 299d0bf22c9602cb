//! What leaves the devices (`--prune`, `--expire`, `catraca remove`), decided before
//! anything is sent: every device is listed (in parallel across devices, one request at
//! a time on each), the people leaving each are chosen ([`choose_leaving`], a pure
//! choice over the listing and the cache's answers) and the safety floor of a prune is
//! checked for every device. Only then do the removal jobs go first in each device's
//! queue.

use super::{Enrollment, CACHE_CHUNK};
use crate::cache::{CacheKey, DeviceKeys};
use crate::device::{DeviceError, DevicePerson};
use crate::i18n::{self, Msg};
use crate::reporter::Event;
use crate::stop::FailureLimit;
use crossbeam_channel::Sender;
use rayon::prelude::*;
use std::collections::HashSet;

/// Who is taken off the devices, besides enrolling the CSV.
///
/// "Enrolled by catraca" is read from the cache, which already holds a record of every
/// pair a device confirmed, under a keyed hash of (device, registration): a person the
/// device holds is catraca's exactly when the hash of its registration is a key of the
/// cache. So no registration is stored in clear, nothing new is stored at all, and it
/// works the same on every vendor (Hikvision and Intelbras have no groups catraca could
/// mark people with). The price: with `--cache none`, or after the cache is lost, no one
/// on a device is known as catraca's and `--prune` removes nobody; that errs on the side
/// of keeping people (`--prune-unmanaged` removes everyone not in the CSV). A person
/// another system put on a device becomes catraca's once a CSV lists them and the pair
/// is recorded: from then on the CSV is their list.
#[derive(Debug, Clone)]
pub struct RemovalOptions {
    /// `--prune`: remove people catraca enrolled that the CSV no longer lists.
    pub prune: bool,
    /// `--prune-unmanaged`: prune people catraca did not enroll too.
    pub prune_unmanaged: bool,
    /// The safety floor of a prune: refuse the whole run when a device would lose more
    /// than this. Default 10%: a wrong or truncated CSV must not empty a device.
    pub max_remove: FailureLimit,
    /// `--expire`: people of the CSV whose `end` has passed leave the devices instead of
    /// being enrolled.
    pub expire: bool,
    /// `catraca remove`: the people given leave every device; nobody is enrolled.
    pub remove_listed: bool,
    /// Registrations the list holds besides the run's people, which a prune keeps: a
    /// device's prune job of `catraca publish` carries the whole list this way, without
    /// the names, while its people come in other jobs.
    pub also_listed: std::sync::Arc<[String]>,
}

impl Default for RemovalOptions {
    fn default() -> Self {
        RemovalOptions {
            prune: false,
            prune_unmanaged: false,
            max_remove: FailureLimit::Percent(10.0),
            expire: false,
            remove_listed: false,
            also_listed: std::sync::Arc::from(Vec::new()),
        }
    }
}

impl RemovalOptions {
    /// Whether the devices must be listed before anything is done.
    pub(super) fn lists_devices(&self) -> bool {
        self.prune || self.expire || self.remove_listed
    }
}

impl Enrollment<'_> {
    /// Lists every device (in parallel across devices, one request at a time on each),
    /// picks who leaves each one, and checks the safety floor before anything is sent.
    /// `expired[p]` says whether person `p`'s window has ended.
    pub(super) fn removals(
        &self,
        pool: &rayon::ThreadPool,
        expired: &[bool],
        events: &Sender<Event>,
    ) -> anyhow::Result<Vec<Vec<DevicePerson>>> {
        let removal = &self.options.removal;
        if removal.prune && self.people.is_empty() && removal.also_listed.is_empty() {
            anyhow::bail!(
                "the CSV lists nobody: --prune would remove everyone catraca enrolled; nothing was removed"
            );
        }
        let listings: Vec<Result<Vec<DevicePerson>, DeviceError>> =
            pool.install(|| self.targets.par_iter().map(|t| t.device.people()).collect());
        let listed: HashSet<&str> = self
            .people
            .iter()
            .map(|p| p.registration.as_str())
            .chain(removal.also_listed.iter().map(String::as_str))
            .collect();
        let expired: HashSet<&str> = self
            .people
            .iter()
            .zip(expired)
            .filter(|(_, &expired)| removal.expire && expired)
            .map(|(p, _)| p.registration.as_str())
            .collect();
        let mut cache = if removal.prune && !removal.prune_unmanaged {
            Some(self.cache.connect()?)
        } else {
            None
        };
        let mut chosen = Vec::with_capacity(self.targets.len());
        let mut refusals = Vec::new();
        for (d, listing) in listings.into_iter().enumerate() {
            let device = &self.targets[d].device;
            let held = match listing {
                Ok(held) => held,
                Err(e) => {
                    log::error!("{}: could not list its people: {e}", device.name());
                    let _ = events.send(Event::ListingFailed {
                        device: d,
                        error: format!(
                            "could not list the device's people, nobody was removed from it: {e}"
                        ),
                    });
                    chosen.push(Vec::new());
                    continue;
                }
            };
            // Which of the people the CSV does not list catraca enrolled: asked of the
            // cache only for them, and only for a prune that spares the others.
            let unlisted = if removal.prune && !removal.remove_listed {
                unlisted(&held, &listed)
            } else {
                Vec::new()
            };
            let managed: Vec<bool> = match cache.as_mut() {
                None => vec![true; unlisted.len()],
                // `--cache none`: nobody is known as catraca's.
                Some(_) if !self.cache.remembers() => vec![false; unlisted.len()],
                Some(cache) => {
                    let pairs = DeviceKeys::new(self.secret, &device.cache_id());
                    let keys: Vec<CacheKey> = unlisted
                        .iter()
                        .map(|h| pairs.key(&h.registration))
                        .collect();
                    let mut found = Vec::with_capacity(keys.len());
                    for chunk in keys.chunks(CACHE_CHUNK) {
                        found.extend(cache.lookup(chunk)?.into_iter().map(|f| f.is_some()));
                    }
                    found
                }
            };
            let Leaving {
                people: leaving,
                pruned,
                over_floor,
            } = choose_leaving(removal, &held, &listed, &expired, &managed);
            if over_floor {
                refusals.push(i18n::tr(
                    Msg::PruneTooMany,
                    &[
                        ("device", &device.name()),
                        ("url", &device.url()),
                        ("count", &pruned),
                        ("total", &held.len()),
                        ("limit", &removal.max_remove),
                    ],
                ));
            }
            chosen.push(leaving);
        }
        if !refusals.is_empty() {
            anyhow::bail!("{}\n{}", refusals.join("\n"), i18n::t(Msg::PruneRefused));
        }
        for (d, leaving) in chosen.iter().enumerate() {
            if leaving.is_empty() {
                continue;
            }
            let _ = events.send(Event::Operations {
                device: d,
                delta: leaving.len() as i64,
            });
            if self.options.dry_run {
                let _ = events.send(Event::Removed {
                    device: d,
                    outcomes: leaving
                        .iter()
                        .map(|p| (p.registration.clone(), Ok(())))
                        .collect(),
                    planned: true,
                });
            }
        }
        if self.options.dry_run {
            return Ok(vec![Vec::new(); self.targets.len()]);
        }
        Ok(chosen)
    }
}

/// Who leaves one device, and whether that is past the prune's floor.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Leaving {
    pub people: Vec<DevicePerson>,
    /// How many of them leave because of `--prune` (the floor counts only these).
    pub pruned: usize,
    /// The prune would take more of the device than `max_remove` allows.
    pub over_floor: bool,
}

/// The people of `held` that the CSV (`listed`) does not list, in the device's order.
pub(super) fn unlisted<'h>(
    held: &'h [DevicePerson],
    listed: &HashSet<&str>,
) -> Vec<&'h DevicePerson> {
    held.iter()
        .filter(|h| !listed.contains(h.registration.as_str()))
        .collect()
}

/// The removal policy, as a pure choice over one device's listing: `catraca remove`
/// takes the listed people; otherwise the expired ones leave, and with `--prune` the
/// unlisted ones that catraca enrolled (`managed`, one flag per [`unlisted`] person, in
/// its order; all of them with `--prune-unmanaged`). A person is chosen once.
pub(super) fn choose_leaving(
    removal: &RemovalOptions,
    held: &[DevicePerson],
    listed: &HashSet<&str>,
    expired: &HashSet<&str>,
    managed: &[bool],
) -> Leaving {
    if removal.remove_listed {
        let people: Vec<DevicePerson> = held
            .iter()
            .filter(|h| listed.contains(h.registration.as_str()))
            .cloned()
            .collect();
        return Leaving {
            people,
            pruned: 0,
            over_floor: false,
        };
    }
    let mut people: Vec<DevicePerson> = held
        .iter()
        .filter(|h| expired.contains(h.registration.as_str()))
        .cloned()
        .collect();
    let mut pruned = 0;
    if removal.prune {
        for (person, &managed) in unlisted(held, listed).into_iter().zip(managed) {
            if managed || removal.prune_unmanaged {
                people.push(person.clone());
                pruned += 1;
            }
        }
    }
    Leaving {
        people,
        pruned,
        over_floor: removal.prune
            && removal
                .max_remove
                .exceeded(pruned as u64, held.len() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(registrations: &[&str]) -> Vec<DevicePerson> {
        registrations
            .iter()
            .enumerate()
            .map(|(i, r)| DevicePerson {
                registration: r.to_string(),
                id: i as i64 + 1,
            })
            .collect()
    }

    fn registrations(leaving: &Leaving) -> Vec<&str> {
        leaving
            .people
            .iter()
            .map(|p| p.registration.as_str())
            .collect()
    }

    #[test]
    fn prune_takes_only_the_unlisted_people_catraca_enrolled() {
        let device = held(&[
            "a", "b", "stranger", "gone", "c", "d", "e", "f", "g", "h", "i", "j",
        ]);
        let listed: HashSet<&str> = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"].into();
        let prune = RemovalOptions {
            prune: true,
            ..RemovalOptions::default()
        };
        // "stranger" was put there by another system; "gone" was catraca's.
        let leaving = choose_leaving(&prune, &device, &listed, &HashSet::new(), &[false, true]);
        assert_eq!(registrations(&leaving), ["gone"]);
        assert_eq!(leaving.pruned, 1);
        assert!(!leaving.over_floor, "1 of 12 is under 10%");
        let unmanaged = RemovalOptions {
            prune_unmanaged: true,
            ..prune.clone()
        };
        let leaving = choose_leaving(
            &unmanaged,
            &device,
            &listed,
            &HashSet::new(),
            &[false, true],
        );
        assert_eq!(registrations(&leaving), ["stranger", "gone"]);
        assert!(leaving.over_floor, "2 of 12 is past 10%");
    }

    #[test]
    fn the_floor_counts_pruned_people_only_and_expiry_needs_no_prune() {
        let device = held(&["a", "b", "c", "old"]);
        let listed: HashSet<&str> = ["a", "b", "c", "old"].into();
        let expired: HashSet<&str> = ["old"].into();
        let expire = RemovalOptions {
            expire: true,
            ..RemovalOptions::default()
        };
        let leaving = choose_leaving(&expire, &device, &listed, &expired, &[]);
        assert_eq!(registrations(&leaving), ["old"]);
        assert_eq!((leaving.pruned, leaving.over_floor), (0, false));
    }

    #[test]
    fn remove_takes_exactly_the_listed_people() {
        let device = held(&["a", "b", "c"]);
        let listed: HashSet<&str> = ["b", "z"].into();
        let remove = RemovalOptions {
            remove_listed: true,
            ..RemovalOptions::default()
        };
        let leaving = choose_leaving(&remove, &device, &listed, &HashSet::new(), &[]);
        assert_eq!(registrations(&leaving), ["b"]);
    }
}
