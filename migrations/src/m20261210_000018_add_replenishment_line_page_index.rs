//! Paging a plan's lines (issue 5): `replenishmentLines` reads one run's lines in id order a page
//! at a time, so `ix_replenishment_lines_run_id` leads with the run and ends with the id, and a
//! page is read off the index however many lines the run has. It replaces
//! `ix_replenishment_lines_run` (tenant and run only), a prefix of it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "replenishment_lines";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_replenishment_lines_run_id")
                    .table(TABLE)
                    .col("tenant_id")
                    .col("run_id")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager.drop_index(Index::drop().name("ix_replenishment_lines_run").table(TABLE).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_replenishment_lines_run")
                    .table(TABLE)
                    .col("tenant_id")
                    .col("run_id")
                    .to_owned(),
            )
            .await?;
        manager.drop_index(Index::drop().name("ix_replenishment_lines_run_id").table(TABLE).to_owned()).await
    }
}
