//! The exit status contract, documented in `--help` and the README:
//! 0 every pair is on its device, 1 some pairs failed, 2 usage / configuration / input
//! error (nothing was sent), 130 interrupted by Ctrl-C or SIGTERM.

use crate::report::Report;

/// How a `catraca` process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Done = 0,
    SomeFailed = 1,
    Usage = 2,
    Interrupted = 130,
}

impl Exit {
    /// The status a finished run ends with: an interruption outranks failures.
    pub fn of(report: &Report) -> Exit {
        if report.interrupted && report.halted.is_none() {
            Exit::Interrupted
        } else if report.totals.failed > 0 {
            Exit::SomeFailed
        } else {
            Exit::Done
        }
    }

    /// The worse of two statuses (used by the demo, which runs twice).
    pub fn merge(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Done => 0,
            Exit::SomeFailed => 1,
            Exit::Usage => 2,
            Exit::Interrupted => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The text `--help` shows about exit statuses.
pub const EXIT_STATUS_HELP: &str = "Exit status:
  0    every person is on every device
  1    some person-on-device pairs failed (listed in the report)
  2    usage, configuration or input error, or a --prune past --max-remove:
       nothing was sent to any device
  130  interrupted (Ctrl-C or SIGTERM): the partial report was printed";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_the_worse_status() {
        assert_eq!(Exit::Done.merge(Exit::SomeFailed), Exit::SomeFailed);
        assert_eq!(Exit::Interrupted.merge(Exit::SomeFailed), Exit::Interrupted);
        assert_eq!(Exit::Usage.merge(Exit::Done), Exit::Usage);
        assert_eq!(Exit::Interrupted.code(), 130);
    }
}
