//! Many sites, one list: the work queue between the central office and the site agents,
//! on Redis Streams with consumer groups.
//!
//! ```text
//!  central office                     central Redis                      site "campinas"
//!  catraca publish ──XADD jobs──► catraca:campinas:jobs ──XREADGROUP──► catraca agent (x N)
//!    (CSV + fleet.toml)            (group "agents")      ◄──XACK──────   same engine, drivers,
//!                                                                        breaker, local cache
//!  catraca status ◄──XRANGE──── catraca:run:{id}:results ◄──XADD──────  one entry per job
//! ```
//!
//! Redis is the queue engine, not a home-made one: a job stays *pending* for the agent
//! that read it until that agent acknowledges it, and an agent that died leaves it
//! pending; after `--claim-after` of silence another agent of the site takes it over
//! with XAUTOCLAIM. An agent acknowledges a job only in the same MULTI/EXEC that appends
//! the job's outcomes to the run's results stream, so either both land or neither: an
//! acknowledged job always has its outcomes, and a job whose outcomes were lost is still
//! pending and is done again. Doing a job again is safe because every plan reads the
//! device before writing (a person already there is `unchanged`), and `status` counts a
//! job once even if two agents reported it (a slow agent whose job was claimed).
//!
//! What the central Redis holds: the jobs (registrations and names, because the devices
//! need them: names travel in the job), the runs (counts and device names), the results
//! (counts per category, and the registration and reason of each failed pair), and when
//! each agent was last seen. No key name holds a registration, and no URL or password of
//! a device ever leaves its site: the agents read them from their own devices file.

pub mod link;
pub mod split;
pub mod tally;
pub mod wire;

/// The default first part of every key: the stream names of the README
/// (`catraca:{site}:jobs`). Tests, and several fleets on one Redis, give their own.
pub const DEFAULT_PREFIX: &str = "catraca";

/// The consumer group every agent of a site joins: one group per site stream, so each
/// job goes to exactly one agent of its site.
pub const GROUP: &str = "agents";

/// The most people in one job: a device's limit for one lookup (`engine::PLAN_CHUNK`),
/// so a job is one plan of the engine on its device.
pub const MAX_JOB_PEOPLE: usize = crate::engine::PLAN_CHUNK;

/// The names of the queue's keys under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_string(),
        }
    }

    /// The stream of one site's jobs.
    pub fn jobs(&self, site: &str) -> String {
        format!("{}:{site}:jobs", self.prefix)
    }

    /// One run's record (a JSON [`wire::RunRecord`]), written once by `publish`.
    pub fn run(&self, run: &str) -> String {
        format!("{}:run:{run}", self.prefix)
    }

    /// One run's results stream: one entry per finished job.
    pub fn results(&self, run: &str) -> String {
        format!("{}:run:{run}:results", self.prefix)
    }

    /// The id of the last run published, for `status` without `--run`.
    pub fn latest(&self) -> String {
        format!("{}:runs:latest", self.prefix)
    }

    /// The lease of one device of a site: held by the one agent running a job on it.
    pub fn lease(&self, site: &str, device: &str) -> String {
        // A device name may hold any character: hex keeps the key name plain.
        let device: String = device.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{}:{site}:lease:{device}", self.prefix)
    }

    /// The hash of every agent's last heartbeat: field `site/name`, value Unix ms.
    pub fn agents(&self) -> String {
        format!("{}:agents", self.prefix)
    }
}

/// Milliseconds since the Unix epoch, as the queue records times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_names_are_the_readmes() {
        let names = Names::new(DEFAULT_PREFIX);
        assert_eq!(names.jobs("campinas"), "catraca:campinas:jobs");
        assert_eq!(names.results("ab12"), "catraca:run:ab12:results");
    }
}
