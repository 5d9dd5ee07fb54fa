//! Replenishment: runs (one tenant-wide plan each, made after a forecast run or on demand) and
//! their lines (a purchase from a supplier, or a transfer between locations, each explained),
//! which approval turns into draft purchase orders and transfers. Purchase orders get the time
//! they were issued; transfers the times they were shipped and received. Each tenant's service
//! targets (a default, per ABC class, per SKU) and transfer cost are settings of their own.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TABLES: &[&str] =
    &["replenishment_runs", "replenishment_lines", "replenishment_settings", "replenishment_sku_targets"];

fn uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().to_owned()
}
fn opt_uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().null().to_owned()
}
fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string().not_null().to_owned()
}
fn opt_text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string().null().to_owned()
}
fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).integer().not_null().to_owned()
}
fn double(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).double().not_null().to_owned()
}
fn opt_double(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).double().null().to_owned()
}
fn json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json().not_null().to_owned()
}
fn ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}
fn opt_ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().to_owned()
}

/// A tenant table keyed by `(tenant_id, id)`.
fn table(name: &'static str, cols: Vec<ColumnDef>) -> TableCreateStatement {
    keyed(name, &["id"], cols)
}

/// A tenant table keyed by `(tenant_id, <pk>…)`.
fn keyed(name: &'static str, pk: &[&'static str], cols: Vec<ColumnDef>) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(name).if_not_exists().col(uuid("tenant_id"));
    for mut c in cols {
        t.col(&mut c);
    }
    let mut key = Index::create();
    key.col("tenant_id");
    for c in pk {
        key.col(*c);
    }
    t.primary_key(&mut key);
    t.foreign_key(
        ForeignKey::create()
            .name(format!("fk_{name}_tenant"))
            .from(name, "tenant_id")
            .to("tenants", "id")
            .on_delete(ForeignKeyAction::Cascade),
    );
    t.to_owned()
}

fn tables() -> Vec<TableCreateStatement> {
    vec![
        table(
            "replenishment_runs",
            vec![
                uuid("id"),
                // queued, running, completed or failed.
                text("status"),
                text("requested_by"),
                // The forecast run whose forecasts it planned from.
                opt_uuid("forecast_run_id"),
                // milp or greedy.
                opt_text("method"),
                // Decimal text: purchases, order costs and transfers; and with shortfall penalties.
                opt_text("cost"),
                opt_text("objective"),
                opt_double("lower_bound"),
                int("lines_total"),
                int("series_total"),
                // SKU × locations left short of their order-up-to level by the plan.
                int("short_total"),
                opt_text("error"),
                ts("created_at"),
                opt_ts("started_at"),
                opt_ts("finished_at"),
            ],
        ),
        table(
            "replenishment_lines",
            vec![
                uuid("id"),
                uuid("run_id"),
                // buy or transfer.
                text("kind"),
                uuid("variant_id"),
                text("sku"),
                // Where the goods go.
                uuid("location_id"),
                opt_uuid("supplier_id"),
                opt_uuid("from_location_id"),
                int("quantity"),
                text("unit_cost"),
                text("cost"),
                text("currency"),
                // The fill rate the destination can expect once the line arrives.
                double("expected_service_level"),
                text("reason"),
                json("explanation"),
                // proposed or approved.
                text("status"),
                opt_uuid("purchase_order_id"),
                opt_uuid("transfer_id"),
                opt_ts("approved_at"),
                ts("created_at"),
            ],
        ),
        keyed(
            "replenishment_settings",
            &[],
            vec![
                // fill_rate or cycle.
                text("service_level_kind"),
                double("target_service_level"),
                // Targets per ABC class (by forecast value), when set.
                opt_double("class_a_target"),
                opt_double("class_b_target"),
                opt_double("class_c_target"),
                // Decimal text: moving one unit between two locations.
                text("transfer_unit_cost"),
                ts("updated_at"),
            ],
        ),
        keyed(
            "replenishment_sku_targets",
            &["variant_id"],
            vec![uuid("variant_id"), double("target_service_level"), ts("updated_at")],
        ),
    ]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        Index::create()
            .name("ix_replenishment_runs_created")
            .table("replenishment_runs")
            .if_not_exists()
            .col("tenant_id")
            .col("created_at")
            .to_owned(),
        Index::create()
            .name("ix_replenishment_lines_run")
            .table("replenishment_lines")
            .if_not_exists()
            .col("tenant_id")
            .col("run_id")
            .to_owned(),
        Index::create()
            .name("ix_transfers_status")
            .table("transfers")
            .if_not_exists()
            .col("tenant_id")
            .col("status")
            .to_owned(),
    ]
}

/// New nullable columns on existing tables (one per statement, as SQLite wants).
fn columns() -> Vec<TableAlterStatement> {
    vec![
        Table::alter().table("purchase_orders").add_column(opt_ts("issued_at")).to_owned(),
        Table::alter().table("transfers").add_column(opt_ts("shipped_at")).to_owned(),
        Table::alter().table("transfers").add_column(opt_ts("received_at")).to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in tables() {
            manager.create_table(t).await?;
        }
        for c in columns() {
            manager.alter_table(c).await?;
        }
        for i in indexes() {
            manager.create_index(i).await?;
        }
        crate::enable_row_level_security(manager, TABLES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("ix_transfers_status").table("transfers").if_exists().to_owned()).await?;
        for (table, column) in
            [("purchase_orders", "issued_at"), ("transfers", "shipped_at"), ("transfers", "received_at")]
        {
            manager.alter_table(Table::alter().table(table).drop_column(column).to_owned()).await?;
        }
        for t in tables().iter().rev() {
            let name = t.get_table_name().cloned().ok_or_else(|| DbErr::Migration("table without name".into()))?;
            manager.drop_table(Table::drop().table(name).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
