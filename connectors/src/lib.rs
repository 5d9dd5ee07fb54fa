//! Inbound adapters, one module per provider (Shopify, NetSuite, 3PLs): HTTP clients, wire types
//! shaped exactly like the provider's payloads, mapping to `qm_domain` types, paging, throttling
//! and webhook verification.
//!
//! Boundary: this crate depends on `qm-domain` only, never on `qm-integrations` or `qm-api`, and
//! reads no environment or global state (constructors take a config struct). The connector
//! framework arrives with issue #6; until then the crate is intentionally empty.
