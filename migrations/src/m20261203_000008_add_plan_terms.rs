//! Terms and limits the replenishment plan honours: on the supplier a fixed cost per line
//! ordered, a spend limit and a unit capacity per plan; all-units price breaks on each supplier
//! item; the volume of one unit of a variant and the volume a location holds (in whatever unit
//! the tenant uses for both). Decimals are canonical decimal text, as everywhere; existing rows
//! get no limits, no line cost, no breaks and no volumes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, column) in the order they are added; SQLite adds one column per statement.
fn columns() -> Vec<(&'static str, ColumnDef)> {
    vec![
        ("suppliers", ColumnDef::new("order_line_cost").string().not_null().default("0").to_owned()),
        ("suppliers", ColumnDef::new("plan_budget").string().null().to_owned()),
        ("suppliers", ColumnDef::new("plan_capacity_units").integer().null().to_owned()),
        // [{"min_qty": 100, "unit_cost": "9.50"}, …], ascending by min_qty.
        ("supplier_items", ColumnDef::new("price_breaks").json().not_null().default("[]").to_owned()),
        ("variants", ColumnDef::new("unit_volume").double().null().to_owned()),
        ("locations", ColumnDef::new("capacity_volume").double().null().to_owned()),
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
