//! Order allocation at the edge: the offline `quartermaster allocate` command (`cli.rs`); the
//! optimisation is `qm_domain::allocation`.

pub mod cli;
