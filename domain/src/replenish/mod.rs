//! Replenishment. `policy` turns a forecast and a supplier's lead time into safety stock, a
//! reorder point, an order-up-to level and the quantity to order now, each number explained.
//! Pure and deterministic.

pub mod policy;

pub use policy::{Explanation, Policy, PolicyError, PolicyInput, ServiceTarget, policy};
