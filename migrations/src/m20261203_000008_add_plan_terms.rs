//! Terms and limits the replenishment plan honours: on the supplier a fixed cost per line
//! ordered, a spend limit and a unit capacity per plan; all-units price breaks on each supplier
//! item; the volume of one unit of a variant and the volume a location holds (in whatever unit
//! the tenant uses for both); and the cost of moving a unit along one lane (from one location to
//! another), where it differs from the tenant's transfer cost. Decimals are canonical decimal
//! text, as everywhere; existing rows get no limits, no line cost, no breaks and no volumes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TABLES: &[&str] = &["replenishment_lanes"];

fn lanes() -> TableCreateStatement {
    let mut t = Table::create();
    t.table("replenishment_lanes").if_not_exists();
    for mut c in [
        ColumnDef::new("tenant_id").uuid().not_null().to_owned(),
        ColumnDef::new("from_location_id").uuid().not_null().to_owned(),
        ColumnDef::new("to_location_id").uuid().not_null().to_owned(),
        // Decimal text: moving one unit along the lane.
        ColumnDef::new("unit_cost").string().not_null().to_owned(),
        ColumnDef::new("updated_at").timestamp_with_time_zone().not_null().to_owned(),
    ] {
        t.col(&mut c);
    }
    t.primary_key(Index::create().col("tenant_id").col("from_location_id").col("to_location_id"));
    for (name, col) in
        [("fk_replenishment_lanes_from", "from_location_id"), ("fk_replenishment_lanes_to", "to_location_id")]
    {
        t.foreign_key(
            ForeignKey::create()
                .name(name)
                .from("replenishment_lanes", ("tenant_id", col))
                .to("locations", ("tenant_id", "id"))
                .on_delete(ForeignKeyAction::Cascade),
        );
    }
    t.to_owned()
}

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
        manager.create_table(lanes()).await?;
        crate::enable_row_level_security(manager, TABLES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("replenishment_lanes").if_exists().to_owned()).await?;
        for (table, col) in columns().into_iter().rev() {
            let name = col.get_column_name();
            manager.alter_table(Table::alter().table(table).drop_column(Alias::new(name)).to_owned()).await?;
        }
        Ok(())
    }
}
