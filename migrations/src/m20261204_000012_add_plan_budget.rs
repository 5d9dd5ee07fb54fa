//! A budget for a whole replenishment plan (issue 5): `replenishment_settings.plan_budget`, the
//! most one plan spends across all suppliers (canonical decimal text; null: no limit), beside
//! each supplier's own `plan_budget`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("replenishment_settings")
                    .add_column(ColumnDef::new("plan_budget").text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("replenishment_settings").drop_column("plan_budget").to_owned()).await
    }
}
