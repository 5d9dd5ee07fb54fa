//! The database schema: one sea-orm-migration set for SQLite and PostgreSQL.
//!
//! Invariants: migrations are explicit `Table::create()` statements and never import entity code;
//! a merged migration is never edited; every tenant-owned table leads its primary key and its
//! indexes with `tenant_id`; PostgreSQL-only statements (row-level security) check the backend.
//! Decimals are stored as canonical decimal text so both backends round-trip them exactly.

#![expect(
    elided_lifetimes_in_paths,
    reason = "async_trait rejects the explicit lifetime MigrationTrait is declared without"
)]

use sea_orm_migration::prelude::*;

mod m20261122_000001_create_core;
mod m20261122_000002_enable_row_level_security;
mod m20261122_000003_create_jobs_and_events;
mod m20261122_000004_create_alerts;
mod m20261203_000005_create_forecasts;
mod m20261203_000006_create_replenishment;
mod m20261203_000007_create_connectors;
mod m20261203_000008_add_plan_terms;
mod m20261204_000009_create_sync;
mod m20261204_000010_add_throttle_and_tracking_url;
mod m20261204_000011_create_route_plans;
mod m20261204_000012_add_plan_budget;
mod m20261205_000013_create_pricing;
mod m20261206_000014_create_contracts;
mod m20261207_000015_create_allocation_and_returns;
mod m20261208_000016_add_job_queue_indexes;
mod m20261209_000017_add_spread_calibration;
mod m20261210_000018_add_replenishment_line_page_index;
mod m20261211_000019_add_transfer_status_reason;
mod m20261212_000020_add_transfer_replenishment_run;

pub use m20261122_000002_enable_row_level_security::TENANT_TABLES;
/// Tenant tables added with the job system; row-level security covers them too.
pub use m20261122_000003_create_jobs_and_events::TABLES as JOB_TABLES;
/// Tenant tables of alert rules and alerts.
pub use m20261122_000004_create_alerts::TABLES as ALERT_TABLES;
/// Tenant tables of forecasts.
pub use m20261203_000005_create_forecasts::TABLES as FORECAST_TABLES;
/// Tenant tables of replenishment runs and their lines.
pub use m20261203_000006_create_replenishment::TABLES as REPLENISHMENT_TABLES;
/// Tenant tables of connectors.
pub use m20261203_000007_create_connectors::TABLES as CONNECTOR_TABLES;
/// Tenant tables of replenishment terms added later (lane costs).
pub use m20261203_000008_add_plan_terms::TABLES as PLAN_TERMS_TABLES;
/// Tenant tables of the sync engine (runs, cursors, provider ids).
pub use m20261204_000009_create_sync::TABLES as SYNC_TABLES;
/// Tenant tables of route plans, their routes and stops.
pub use m20261204_000011_create_route_plans::TABLES as ROUTE_PLAN_TABLES;
/// Tenant tables of pricing policies, runs and recommendations.
pub use m20261205_000013_create_pricing::TABLES as PRICING_TABLES;
/// Tenant tables of supplier contracts, their ledger and advance shipping notices.
pub use m20261206_000014_create_contracts::TABLES as CONTRACT_TABLES;
/// Tenant tables of allocation and returns policies, order allocations and returns plans.
pub use m20261207_000015_create_allocation_and_returns::TABLES as RETURNS_TABLES;

/// The setting that carries the current tenant inside a PostgreSQL transaction.
pub const TENANT_SETTING: &str = "app.tenant_id";
/// The setting a worker's claim transaction sets to see every tenant's jobs.
pub const WORKER_SETTING: &str = "app.worker";
/// The setting that lets an authentication transaction see the one API key whose hash it presents.
pub const API_KEY_HASH_SETTING: &str = "app.api_key_hash";
/// The setting that lets an inbound webhook's transaction read the one connector it names.
pub const CONNECTOR_ID_SETTING: &str = "app.connector_id";

/// Enables row-level security on `tables` (PostgreSQL; nothing on SQLite): each row is seen and
/// written only by transactions whose tenant setting names its tenant. Migrations from 000006 on
/// call this; earlier ones spell it out (a merged migration is never edited).
pub(crate) async fn enable_row_level_security(manager: &SchemaManager<'_>, tables: &[&str]) -> Result<(), DbErr> {
    if manager.get_database_backend() != sea_orm_migration::sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    let db = manager.get_connection();
    let tenant = format!("NULLIF(current_setting('{TENANT_SETTING}', true), '')::uuid");
    for table in tables {
        db.execute_unprepared(&format!(
            "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
             ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
             CREATE POLICY tenant_isolation ON {table}
               USING (tenant_id = {tenant}) WITH CHECK (tenant_id = {tenant});"
        ))
        .await?;
    }
    Ok(())
}

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_core::Migration),
            Box::new(m20261122_000002_enable_row_level_security::Migration),
            Box::new(m20261122_000003_create_jobs_and_events::Migration),
            Box::new(m20261122_000004_create_alerts::Migration),
            Box::new(m20261203_000005_create_forecasts::Migration),
            Box::new(m20261203_000006_create_replenishment::Migration),
            Box::new(m20261203_000007_create_connectors::Migration),
            Box::new(m20261203_000008_add_plan_terms::Migration),
            Box::new(m20261204_000009_create_sync::Migration),
            Box::new(m20261204_000010_add_throttle_and_tracking_url::Migration),
            Box::new(m20261204_000011_create_route_plans::Migration),
            Box::new(m20261204_000012_add_plan_budget::Migration),
            Box::new(m20261205_000013_create_pricing::Migration),
            Box::new(m20261206_000014_create_contracts::Migration),
            Box::new(m20261207_000015_create_allocation_and_returns::Migration),
            Box::new(m20261208_000016_add_job_queue_indexes::Migration),
            Box::new(m20261209_000017_add_spread_calibration::Migration),
            Box::new(m20261210_000018_add_replenishment_line_page_index::Migration),
            Box::new(m20261211_000019_add_transfer_status_reason::Migration),
            Box::new(m20261212_000020_add_transfer_replenishment_run::Migration),
        ]
    }
}
