//! catraca: enroll every participant on every access-control turnstile, exactly once.
//!
//! The library holds everything the binary does, so that the tests, the demo and the
//! benchmark drive the same code as an operator's shell. `main.rs` only parses the
//! command line and maps the result to an exit status.
//!
//! ```text
//!  main ─► cli (flags + catraca.toml + environment) ─► commands::Invocation ─► commands::run
//!
//!  commands::enroll: CSV ─validate─► people ─cache check (bulk)─► pending pairs per device
//!                                                                        │
//!  engine: per-device queues of jobs: remove, plan (≤999 people), write (--batch-size)
//!                                                                        │
//!  rayon ThreadPool (--threads workers): a worker takes a job only from a device with a
//!  free in-flight slot and a closed breaker; blocking ureq, one agent per device
//!        │ confirmed pairs                        │ outcomes (reporter::Event)
//!        ▼                                        ▼
//!  cache writer thread (cache::group_commit):   reporter thread: the only owner of the
//!  one commit per 100 ms or 10,000 pairs        counts; progress, report, and the
//!                                               watchers (live status for the dashboard
//!                                               and /metrics, the --events file)
//! ```
//!
//! Workers never touch a counter or the terminal; every settled operation reaches the
//! reporter over a crossbeam channel and is counted there once (`reporter::Settled`).
//! The run ends when the workers are done, the cache writer has committed and the last
//! sender is dropped: then the reporter returns the report.

pub mod bench;
pub mod cache;
pub mod card;
pub mod category;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dashboard;
pub mod device;
pub mod engine;
pub mod enroll;
pub mod events;
pub mod exit;
pub mod failed;
pub mod i18n;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod output_files;
pub mod participants;
pub mod person;
pub mod photo;
pub mod queue;
pub mod report;
pub mod reporter;
pub mod settings;
pub mod stdout;
pub mod stop;
pub mod style;
pub mod vendor;
