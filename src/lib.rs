//! catraca: enroll every participant on every access-control turnstile, exactly once.
//!
//! The library holds everything the binary does, so that the tests, the demo and the
//! benchmark drive the same code as an operator's shell. `main.rs` only parses the
//! command line and maps the result to an exit status.

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
pub mod report;
pub mod reporter;
pub mod settings;
pub mod simulator;
pub mod stdout;
pub mod stop;
pub mod style;
pub mod vendor;
