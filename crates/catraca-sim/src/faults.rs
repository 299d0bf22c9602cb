//! The ways a simulated device misbehaves on purpose: random per-request faults drawn
//! from a seeded generator, and the in-flight limit that refuses bursts.
//!
//! Field devices drop connections under bursts, stall, and now and then send a broken
//! answer; a driver is only trustworthy once it has met all of these. Seeding the
//! generator per device makes a faulty run repeatable (the same seed gives the same
//! sequence of faults for the same sequence of requests).

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Per-request probabilities, each from 0 to 1, of the faults a device can show.
/// They are shares of one draw, so their sum should not exceed 1. Default: all zero.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    /// Answer `503 Service Unavailable` without processing the request.
    pub status_503: f64,
    /// Reset the connection: the client reads "connection reset by peer".
    pub reset: f64,
    /// Say nothing for `SimConfig::hang_for`, then close the connection.
    pub hang: f64,
    /// Answer 200 with a body that is not valid JSON.
    pub garbage: f64,
}

impl FaultRates {
    fn any(&self) -> bool {
        self.status_503 + self.reset + self.hang + self.garbage > 0.0
    }
}

/// What the device does when it is handed more requests than it can hold at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Overload {
    /// Answer `503 Service Unavailable` at once (lighttpd's behaviour when it is
    /// configured with a connection limit). The default.
    #[default]
    #[value(name = "busy")]
    Busy503,
    /// Reset the connection, as field notes report for bursts against small devices.
    Reset,
}

/// One fault chosen for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Busy503,
    Reset,
    Hang,
    Garbage,
}

impl Fault {
    /// The name under which the fault is counted in the statistics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::Busy503 => "503",
            Fault::Reset => "reset",
            Fault::Hang => "hang",
            Fault::Garbage => "garbage",
        }
    }
}

/// Draws the fault, if any, for each request of one device.
#[derive(Debug)]
pub(crate) struct FaultDice {
    rng: StdRng,
    rates: FaultRates,
}

impl FaultDice {
    pub(crate) fn new(rates: FaultRates, seed: u64) -> FaultDice {
        FaultDice {
            rng: StdRng::seed_from_u64(seed),
            rates,
        }
    }

    pub(crate) fn set_rates(&mut self, rates: FaultRates) {
        self.rates = rates;
    }

    /// One uniform draw split into consecutive shares, so a rate of 1 always fires.
    pub(crate) fn roll(&mut self) -> Option<Fault> {
        if !self.rates.any() {
            return None;
        }
        let draw: f64 = self.rng.random();
        let FaultRates {
            status_503,
            reset,
            hang,
            garbage,
        } = self.rates;
        let shares = [
            (status_503, Fault::Busy503),
            (reset, Fault::Reset),
            (hang, Fault::Hang),
            (garbage, Fault::Garbage),
        ];
        let mut bound = 0.0;
        shares.into_iter().find_map(|(rate, fault)| {
            bound += rate;
            (draw < bound).then_some(fault)
        })
    }
}

/// Counts requests being handled (not idle connections) against an optional limit.
#[derive(Debug)]
pub(crate) struct InFlight {
    current: AtomicUsize,
    limit: Option<usize>,
}

/// A taken place among the requests in flight; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct InFlightSlot<'a>(&'a AtomicUsize);

impl Drop for InFlightSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    pub(crate) fn new(limit: Option<usize>) -> InFlight {
        InFlight {
            current: AtomicUsize::new(0),
            limit,
        }
    }

    /// A place for one more request, or `None` when the limit is reached.
    pub(crate) fn enter(&self) -> Option<InFlightSlot<'_>> {
        let before = self.current.fetch_add(1, Ordering::AcqRel);
        let slot = InFlightSlot(&self.current);
        match self.limit {
            Some(limit) if before >= limit => None,
            _ => Some(slot),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_of_one_always_fires_and_zero_never() {
        let mut dice = FaultDice::new(
            FaultRates {
                hang: 1.0,
                ..FaultRates::default()
            },
            7,
        );
        assert!((0..1000).all(|_| dice.roll() == Some(Fault::Hang)));
        dice.set_rates(FaultRates::default());
        assert!((0..1000).all(|_| dice.roll().is_none()));
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let rates = FaultRates {
            status_503: 0.2,
            reset: 0.2,
            ..FaultRates::default()
        };
        let draws = |seed| {
            let mut dice = FaultDice::new(rates, seed);
            (0..200).map(|_| dice.roll()).collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert_ne!(draws(3), draws(4));
        let resets = draws(3)
            .iter()
            .filter(|f| **f == Some(Fault::Reset))
            .count();
        assert!(
            (20..=60).contains(&resets),
            "{resets} resets in 200 draws at 20%"
        );
    }

    #[test]
    fn the_in_flight_limit_frees_places_when_requests_end() {
        let in_flight = InFlight::new(Some(1));
        let first = in_flight.enter();
        assert!(first.is_some());
        assert!(in_flight.enter().is_none());
        drop(first);
        assert!(in_flight.enter().is_some());
    }
}
