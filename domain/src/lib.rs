//! Quartermaster's pure core: domain types, the engines (forecasting, replenishment policy), the stock
//! ledger's hash chain and the demo data generator.
//!
//! Invariants: this crate does no IO, spawns no tasks, reads no clock, environment or global RNG.
//! Everything it needs comes in through arguments (`now`, a `seed`, per-tenant parameters),
//! so the same inputs always give the same outputs.
//! It depends on no other workspace crate and on no IO crate; `tests/` checks that edge.

pub mod alerts;
pub mod allocation;
pub mod contracts;
pub mod demo;
pub mod forecast;
pub mod ledger;
pub mod lp;
pub mod pricing;
pub mod replenish;
pub mod returns;
pub mod routing;
pub mod sampling;
pub mod types;

pub use types::{Money, Qty, Role, Sku, TypeError};
