//! Vehicle routing: capacitated, with time windows (several per stop), a heterogeneous fleet,
//! service times, optional stops with a penalty, and a search budget.
//!
//! - [`problem`]: the problem as the solver sees it (integer matrices, clients, vehicle types),
//!   validated.
//! - [`solution`]: a plan, its cost, and each route's schedule (or why it cannot run).
//! - [`search`]: the solver (string-removal ruin and recreate, local search, annealing).
//! - [`geo`]: great-circle distances (planning without a road network).
//! - [`instance`]: the Solomon and VRPLIB benchmark files and their rounding conventions.
//!
//! Pure and deterministic for a seed and an iteration budget; a time budget is the caller's
//! [`search::Budget`].

pub mod geo;
pub mod instance;
pub mod problem;
pub mod search;
pub mod solution;
