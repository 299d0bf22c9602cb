//! Stopping a run early, for either of two reasons: the operator asked (Ctrl-C,
//! SIGTERM: exit 130) or the run halted itself because failures passed
//! `--max-failures` (exit 1). Either way no new job starts, the jobs in flight finish
//! and are recorded, and the pairs never sent are reported with the reason.

use crate::exit::Exit;
use crate::i18n::{self, Msg};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Shared by the signal handler, the reporter and every worker.
#[derive(Debug, Default)]
pub struct Stop {
    requested: AtomicBool,
    halted: Mutex<Option<String>>,
}

impl Stop {
    /// Whether workers must stop taking new jobs.
    pub fn is_set(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// The operator's stop; returns whether a stop had already been asked for.
    pub fn interrupt(&self) -> bool {
        self.requested.swap(true, Ordering::SeqCst)
    }

    /// The run's own stop, with the reason shown in the report.
    pub fn halt(&self, reason: String) {
        let mut halted = self.halted.lock().expect("stop lock");
        if halted.is_none() {
            *halted = Some(reason);
        }
        self.requested.store(true, Ordering::SeqCst);
    }

    pub fn halt_reason(&self) -> Option<String> {
        self.halted.lock().expect("stop lock").clone()
    }

    /// Stopped by the operator (and not by the run itself).
    pub fn interrupted(&self) -> bool {
        self.is_set() && self.halt_reason().is_none()
    }
}

/// `--max-failures`: a number of failed pairs, or a percentage of all pairs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FailureLimit {
    Count(u64),
    Percent(f64),
}

impl FailureLimit {
    /// Whether `failed` of `operations` pairs is past the limit.
    pub fn exceeded(self, failed: u64, operations: u64) -> bool {
        match self {
            FailureLimit::Count(n) => failed > n,
            FailureLimit::Percent(p) => {
                operations > 0 && failed as f64 * 100.0 / operations as f64 > p
            }
        }
    }
}

impl FromStr for FailureLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("{s:?} is not a limit: write a number of pairs (50) or a percentage (5%)");
        match s.trim().strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if (0.0..=100.0).contains(&p) {
                    Ok(FailureLimit::Percent(p))
                } else {
                    Err(bad())
                }
            }
            None => s.trim().parse().map(FailureLimit::Count).map_err(|_| bad()),
        }
    }
}

impl std::fmt::Display for FailureLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureLimit::Count(n) => write!(f, "{n}"),
            FailureLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// First Ctrl-C (or SIGTERM): stop taking new work and report. Second: exit at once.
pub fn install_interrupt_handler(stop: &Arc<Stop>) {
    let stop = Arc::clone(stop);
    let result = ctrlc::set_handler(move || {
        if stop.interrupt() {
            eprintln!("{}", i18n::t(Msg::InterruptedAgain));
            std::process::exit(Exit::Interrupted.code().into());
        }
        eprintln!("{}", i18n::t(Msg::InterruptedFirst));
    });
    if let Err(e) = result {
        log::debug!("no Ctrl-C handler: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_compare() {
        assert_eq!("50".parse(), Ok(FailureLimit::Count(50)));
        assert_eq!("5%".parse(), Ok(FailureLimit::Percent(5.0)));
        assert!("cinco".parse::<FailureLimit>().is_err());
        assert!("120%".parse::<FailureLimit>().is_err());
        assert!(FailureLimit::Count(2).exceeded(3, 100));
        assert!(!FailureLimit::Count(3).exceeded(3, 100));
        assert!(FailureLimit::Percent(5.0).exceeded(6, 100));
        assert!(!FailureLimit::Percent(5.0).exceeded(5, 100));
    }

    #[test]
    fn a_halt_is_not_an_interruption() {
        let stop = Stop::default();
        stop.halt("too many failures".into());
        assert!(stop.is_set() && !stop.interrupted());
        let stop = Stop::default();
        assert!(!stop.interrupt());
        assert!(stop.interrupt());
        assert!(stop.interrupted());
    }
}
