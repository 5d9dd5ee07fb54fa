//! Returns at the edge: the offline `quartermaster returns-plan` command (`cli.rs`); the
//! optimisation is `qm_domain::returns`.

pub mod cli;
