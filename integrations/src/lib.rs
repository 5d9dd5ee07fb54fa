//! Outbound channels and infrastructure clients: job retry policy, guarded outbound HTTP, webhook
//! signing and delivery (Standard Webhooks), e-mail over SMTP (lettre), sealing secrets at rest
//! (AES-256-GCM), and the OSRM client (road durations and distances).
//!
//! Boundary: this crate depends on `qm-domain` only among workspace crates, never on
//! `qm-connectors` or `qm-api`, and reads no environment or global state (constructors take a
//! config struct).

pub mod email;
pub mod net;
pub mod osrm;
pub mod retry;
pub mod sealing;
pub mod webhooks;
