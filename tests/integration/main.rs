//! Integration tests: the real `catraca` binary against simulated turnstiles over real
//! HTTP on loopback, and a real Redis. One test binary, as ripgrep does, with a small
//! harness in `harness.rs`.

mod bad_input;
mod bench;
mod cards;
mod check;
mod cli;
mod consistency;
mod dashboard;
mod demo;
mod enroll;
mod faces;
mod firmware;
mod group_commit;
mod harness;
mod layout;
mod life;
mod plan;
mod portuguese;
mod resilience;
mod sites;
mod tls;
mod trace;
mod vendors;
