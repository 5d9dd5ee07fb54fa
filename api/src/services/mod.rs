//! Application services: load through repositories, decide, write, all inside one tenant transaction.
//! Resolvers stay thin and call these; connectors and jobs will call them too.

pub mod alerts;
pub mod allocation;
pub mod catalog;
pub mod connectors;
pub mod contracts;
pub mod forecast;
pub mod lookup;
pub mod orders;
pub mod pricing;
pub mod replenish;
pub mod reseal;
pub mod returns;
pub mod routing;
pub mod runs;
pub mod stock;
pub mod sync;
pub mod tenants;
