//! Replenishment. `policy` turns a forecast and a supplier's lead time into safety stock, a
//! reorder point, an order-up-to level and the quantity to order now, each number explained;
//! `sim` replays demand against a policy and the usual baselines to measure what it achieves;
//! `calibrate` learns from such a replay of the recent past how much of its spread the policy needs.
//! Pure and deterministic.

pub mod calibrate;
pub mod plan;
pub mod policy;
pub mod sim;

pub use policy::{
    AbcClass, Explanation, Order, Policy, PolicyError, PolicyInput, ServiceTarget, abc_classes, order_for, policy,
};
