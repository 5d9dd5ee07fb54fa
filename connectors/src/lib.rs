//! Inbound adapters, one module per provider (Shopify, NetSuite, 3PLs): wire types shaped exactly
//! like the provider's payloads, mapping to `qm_domain` types, paging, throttling and webhook
//! verification.
//!
//! Boundary: this crate depends on `qm-domain`, and on `qm-integrations` for its guarded outbound
//! HTTP only (`net`: an admin's base URL must not reach the server's own network); never on
//! `qm-api`, and it reads no environment or global state (constructors take a config struct).
//! The pure pieces decide (verify a webhook, read a throttle state, say how long to wait); the
//! clients (e.g. [`shopify::client`]) talk HTTP and implement the capability traits of
//! [`source`]; the sync engine in `api/` drives them and stores what they read.

pub mod error;
pub mod netsuite;
pub mod shipbob;
pub mod shipstation;
pub mod shopify;
pub mod source;
pub mod time;
mod wire;

pub use error::ProviderError;
