//! The replenishment run whose approved plan made a transfer: `transfers.replenishment_run_id`,
//! null for one moved at once (`stockTransfer`). Transfers approved before this migration get
//! their run from the plan line that links them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMN: &str = "replenishment_run_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("transfers").add_column(ColumnDef::new(COLUMN).uuid().null()).to_owned())
            .await?;
        backfill(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("transfers").drop_column(COLUMN).to_owned()).await
    }
}

/// Each tenant's transfers take the run of the plan line they were approved from: one join (not
/// a subquery per transfer, which without an index on the lines' `transfer_id` would scan a
/// tenant's lines once per transfer). On PostgreSQL row-level security shows a statement one
/// tenant's rows, so the tenant is set for each.
async fn backfill(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    let update = format!(
        "UPDATE transfers SET {COLUMN} = l.run_id FROM replenishment_lines AS l
         WHERE l.tenant_id = transfers.tenant_id AND l.transfer_id = transfers.id AND transfers.{COLUMN} IS NULL"
    );
    if backend != DbBackend::Postgres {
        db.execute_unprepared(&update).await?;
        return Ok(());
    }
    let tenants = db.query_all_raw(Statement::from_string(backend, "SELECT id FROM tenants".to_owned())).await?;
    for row in tenants {
        let tenant: uuid::Uuid = row.try_get("", "id")?;
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT set_config($1, $2, false)",
            [crate::TENANT_SETTING.into(), tenant.to_string().into()],
        ))
        .await?;
        db.execute_unprepared(&update).await?;
    }
    db.execute_unprepared(&format!("SELECT set_config('{}', '', false)", crate::TENANT_SETTING)).await?;
    Ok(())
}
