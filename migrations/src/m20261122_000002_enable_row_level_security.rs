//! Row-level security on PostgreSQL: the second wall behind the application's tenant filter.
//!
//! Each tenant table gets `ENABLE` and `FORCE ROW LEVEL SECURITY` and one policy comparing `tenant_id`
//! with the transaction-local setting `app.tenant_id`. `NULLIF(…, '')` matters: on a pooled connection
//! a finished transaction-local setting reads back as `''`, and with no tenant set every query sees
//! no rows (it fails closed). SQLite has no RLS, so this migration does nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Every tenant-owned table, in creation order.
pub const TENANT_TABLES: &[&str] = &[
    "users",
    "api_keys",
    "locations",
    "products",
    "variants",
    "suppliers",
    "supplier_items",
    "stock_levels",
    "ledger_heads",
    "stock_movements",
    "orders",
    "order_lines",
    "reservations",
    "shipments",
    "shipment_events",
    "returns",
    "return_lines",
    "purchase_orders",
    "purchase_order_lines",
    "transfers",
    "daily_demand",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        let tenant = format!("NULLIF(current_setting('{}', true), '')::uuid", crate::TENANT_SETTING);
        for table in TENANT_TABLES {
            db.execute_unprepared(&format!(
                "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
                 CREATE POLICY tenant_isolation ON {table}
                   USING (tenant_id = {tenant}) WITH CHECK (tenant_id = {tenant});"
            ))
            .await?;
        }
        db.execute_unprepared(&format!(
            "CREATE POLICY api_key_lookup ON api_keys FOR SELECT
               USING (key_hash = NULLIF(current_setting('{}', true), ''));",
            crate::API_KEY_HASH_SETTING
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("DROP POLICY IF EXISTS api_key_lookup ON api_keys;").await?;
        for table in TENANT_TABLES {
            db.execute_unprepared(&format!(
                "DROP POLICY IF EXISTS tenant_isolation ON {table};
                 ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
                 ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
            ))
            .await?;
        }
        Ok(())
    }
}
