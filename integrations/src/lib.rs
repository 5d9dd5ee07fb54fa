//! Outbound channels and infrastructure clients: webhook delivery (Standard Webhooks signing),
//! e-mail (lettre), the OSRM client and the job/outbox plumbing.
//!
//! Boundary: this crate depends on `qm-domain` only, never on `qm-connectors` or `qm-api`, and
//! reads no environment or global state (constructors take a config struct). Its first modules
//! arrive with issue #3; until then the crate is intentionally empty.
