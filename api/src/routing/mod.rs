//! Route planning at the edge: the offline `quartermaster route` command over benchmark
//! instances (the solver is `qm_domain::routing`).

pub mod cli;
