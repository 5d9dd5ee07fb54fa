//! Dynamic pricing outside the database: the `quartermaster pricing` command and its files.

pub mod cli;
pub mod io;
