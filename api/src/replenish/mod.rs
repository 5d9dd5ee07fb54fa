//! Replenishment at the edges of the engine: offline parameters (TOML) and the replay CLI.
//! The policy and the replay are pure, in `qm_domain::replenish`.

pub mod params;
pub mod sim;
