//! Supplier contracts at the edge: the offline ledger check (`verify.rs`); the rules, their
//! evaluation and the ledger's chain are `qm_domain::contracts`.

pub mod verify;
