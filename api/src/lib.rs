//! The Quartermaster application: HTTP and GraphQL shell, auth, tenancy, persistence, CLI.
//!
//! Invariants: tenancy is enforced by types. Resolvers get a `Principal` from the request, open a
//! `Scoped` transaction for its tenant, and every repository query starts from `repo::find`, which
//! filters by that tenant. No resolver accepts a tenant id. On PostgreSQL row-level security is the
//! second wall. Engines in `qm_domain` are called from services, never with IO inside them.

pub mod alerts;
pub mod allocation;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod contracts;
pub mod db;
pub mod demo;
pub mod events;
pub mod forecast;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod json_io;
pub mod layered;
pub mod live;
pub mod metrics;
pub mod pricing;
pub mod replenish;
pub mod returns;
pub mod routing;
pub mod services;
pub mod state;
pub mod telemetry;
pub mod webhooks;
