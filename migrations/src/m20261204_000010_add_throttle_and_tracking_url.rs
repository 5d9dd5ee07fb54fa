//! What a connector last saw of its provider's rate limit, and where a shipment can be tracked.
//!
//! `connectors.throttle`: the provider's cost bucket as last observed (`available`, `maximum`,
//! `restoreRate`, `observedAt`), written with each sync checkpoint; null until a call answered.
//! `shipments.tracking_url`: the carrier's tracking page, beside the number it already holds.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, column) in the order they are added; SQLite adds one column per statement.
fn columns() -> Vec<(&'static str, ColumnDef)> {
    vec![
        ("connectors", ColumnDef::new("throttle").json().null().to_owned()),
        ("shipments", ColumnDef::new("tracking_url").string().null().to_owned()),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, mut col) in columns() {
            manager.alter_table(Table::alter().table(table).add_column(&mut col).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, col) in columns().into_iter().rev() {
            let name = col.get_column_name();
            manager.alter_table(Table::alter().table(table).drop_column(Alias::new(name)).to_owned()).await?;
        }
        Ok(())
    }
}
