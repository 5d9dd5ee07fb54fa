//! How a replenishment run calibrated its policy's spread (issue 5):
//! `replenishment_runs.calibration`, JSON `{days, series, bias, factor, achieved, target}`; null
//! when the run planned with the forecast's spread as it is (no forecast model yet, or too little
//! history).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("replenishment_runs")
                    .add_column(ColumnDef::new("calibration").json().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("replenishment_runs").drop_column("calibration").to_owned()).await
    }
}
