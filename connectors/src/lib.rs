//! Inbound adapters, one module per provider (Shopify, NetSuite, 3PLs): wire types shaped exactly
//! like the provider's payloads, mapping to `qm_domain` types, paging, throttling and webhook
//! verification.
//!
//! Boundary: this crate depends on `qm-domain` only, never on `qm-integrations` or `qm-api`, and
//! reads no environment or global state (constructors take a config struct); it does no IO of
//! its own yet: the pieces here decide (verify a webhook, read a throttle state, say how long to
//! wait), and the sync engine in `api/` sends and stores.

pub mod error;
pub mod shopify;

pub use error::ProviderError;
