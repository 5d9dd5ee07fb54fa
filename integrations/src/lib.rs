//! Outbound channels and infrastructure clients: job retry policy, webhook signing and delivery
//! (Standard Webhooks), and later e-mail (lettre) and the OSRM client.
//!
//! Boundary: this crate depends on `qm-domain` only among workspace crates, never on
//! `qm-connectors` or `qm-api`, and reads no environment or global state (constructors take a
//! config struct).

pub mod retry;
pub mod webhooks;
