//! Forecasting at the edges of the engine: CSV input and output, and the offline CLI.
//! The engine itself is pure, in `qm_domain::forecast`.

pub mod cli;
pub mod io;
