//! Supplier contracts: terms and `when … then …` rules that fire by themselves.
//!
//! `rules` reads a contract document (JSON) and checks it, naming each problem by its path;
//! `eval` decides what the rules do given the state Quartermaster holds, deterministically, and
//! remembers what fired so that a condition that stays true acts once; `ledger` chains every
//! contract event and signs checkpoints of the chain's head. Pure: the service reads the state,
//! evaluates, and writes what fired with the purchase orders and ledger events.

pub mod eval;
pub mod ledger;
pub mod rules;

pub use eval::{ApprovedLine, Effect, Fired, PoStatus, Position, PurchaseOrder, State, Subject, evaluate};
pub use rules::{
    Action, Condition, Document, Item, PriceBreak, Quantity, Reference, Rule, RuleError, Terms, parse, path_parts,
    validate,
};

#[cfg(test)]
mod tests;
