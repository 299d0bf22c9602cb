//! catraca: enroll every participant on every access-control turnstile, exactly once.
//!
//! The library holds everything the binary does, so that the tests, the demo and the
//! benchmark drive the same code as an operator's shell.

pub mod cache;
pub mod device;
pub mod participants;
pub mod person;
pub mod simulator;
