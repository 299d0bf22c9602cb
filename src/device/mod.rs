//! Device drivers: how catraca talks to each turnstile family.
pub mod controlid;
