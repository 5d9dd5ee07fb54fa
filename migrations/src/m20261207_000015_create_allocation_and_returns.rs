//! Order allocation and returns optimisation (issue 10).
//!
//! `allocation_policies`: shipping terms for the whole tenant (`scope_key` empty) or one location
//! (`scope_key` its id); a null field takes the tenant's value, then the default. `order_allocations`:
//! how each order was allocated (per line location, parcels and costs), for the KPIs.
//! `returns_policies`: returns-handling terms, tenant-wide or per location like allocation.
//! `returns_runs`: one planning of the open returns; `return_dispositions`: a run's decision for a
//! return line (what becomes of its units and where they go), then what the merchant decided.
//! Decimals are canonical decimal text; `bands`, `processing` and `terms` are JSON documents in
//! the offline commands' shapes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TABLES: &[&str] =
    &["allocation_policies", "order_allocations", "returns_policies", "returns_runs", "return_dispositions"];

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
    ColumnDef::new(name).text().null().to_owned()
}
fn opt_json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json().null().to_owned()
}
fn ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}
fn opt_ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().to_owned()
}
fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).integer().not_null().default(0).to_owned()
}

fn table(name: &'static str, key: &'static str, columns: Vec<ColumnDef>) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(name).if_not_exists().col(uuid("tenant_id"));
    for mut c in columns {
        t.col(&mut c);
    }
    t.primary_key(Index::create().col("tenant_id").col(key));
    t.to_owned()
}

fn index(table: &'static str, name: &'static str, cols: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(table).if_not_exists().col("tenant_id");
    for c in cols {
        i.col(*c);
    }
    if unique {
        i.unique();
    }
    i.to_owned()
}

fn allocation_policies() -> TableCreateStatement {
    table(
        "allocation_policies",
        "id",
        vec![
            uuid("id"),
            // Empty for the tenant, else the location's id.
            text("scope_key"),
            // Tenant only: every order ships from this location.
            opt_uuid("pinned_location_id"),
            opt_text("split_cost"),
            // The share of a unit's price that a unit short where it is needed costs.
            opt_text("stockout_share"),
            opt_text("handling_per_parcel"),
            opt_text("handling_per_unit"),
            ColumnDef::new("ship_from_store").boolean().null().to_owned(),
            // [{maxKm, parcel, unit}], nearest first.
            opt_json("bands"),
            text("updated_by"),
            ts("updated_at"),
        ],
    )
}

fn order_allocations() -> TableCreateStatement {
    table(
        "order_allocations",
        "order_id",
        vec![
            uuid("order_id"),
            // exact, milp, greedy or pinned.
            text("method"),
            int("parcels"),
            text("shipping"),
            text("handling"),
            text("split"),
            text("stockout_risk"),
            text("cost"),
            // Whether a store's location ships any of it.
            ColumnDef::new("from_store").boolean().not_null().default(false).to_owned(),
            // [{lineId, locationId}].
            ColumnDef::new("lines").json().not_null().to_owned(),
            ts("allocated_at"),
        ],
    )
}

fn returns_policies() -> TableCreateStatement {
    table(
        "returns_policies",
        "id",
        vec![
            uuid("id"),
            text("scope_key"),
            // Location only: items it processes a day (a location without one handles no returns).
            ColumnDef::new("capacity").integer().null().to_owned(),
            // {disposition: processing cost per item}: the dispositions performed there.
            opt_json("processing"),
            // Tenant only: {disposition: {recoveryRate, yield, grades}}.
            opt_json("terms"),
            opt_text("transport_cost_per_km"),
            opt_text("hold_cost"),
            // Tenant only: below this many days of forecast cover a restock earns its shortfall.
            opt_text("restock_cover_days"),
            text("updated_by"),
            ts("updated_at"),
        ],
    )
}

fn returns_runs() -> TableCreateStatement {
    table(
        "returns_runs",
        "id",
        vec![
            uuid("id"),
            text("requested_by"),
            // milp or greedy.
            text("method"),
            int("items_total"),
            int("held_total"),
            int("ungraded_total"),
            text("objective"),
            text("bound"),
            ColumnDef::new("gap").double().not_null().default(0.0).to_owned(),
            ts("created_at"),
        ],
    )
}

fn return_dispositions() -> TableCreateStatement {
    table(
        "return_dispositions",
        "id",
        vec![
            uuid("id"),
            uuid("run_id"),
            uuid("return_id"),
            uuid("return_line_id"),
            uuid("variant_id"),
            text("sku"),
            int("quantity"),
            text("grade"),
            // restock_new, open_box, refurbish, return_to_vendor, liquidate, recycle; null: held.
            opt_text("disposition"),
            opt_uuid("location_id"),
            // proposed, held, approved, rejected or superseded.
            text("status"),
            text("expected_recovery"),
            text("processing_cost"),
            text("transport_cost"),
            text("net"),
            opt_text("decided_by"),
            opt_ts("decided_at"),
            ts("created_at"),
        ],
    )
}

/// The default `return_rate_high` rule for each existing tenant (new tenants get it when they are
/// created). On PostgreSQL each insert runs with the tenant set, as row-level security requires.
async fn return_rate_rules(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    use sea_orm_migration::sea_orm::{DbBackend, Statement};
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    let tenants = db.query_all_raw(Statement::from_string(backend, "SELECT id FROM tenants".to_owned())).await?;
    let now = chrono::Utc::now();
    for row in tenants {
        let tenant: uuid::Uuid = row.try_get("", "id")?;
        let values: Vec<sea_orm_migration::sea_orm::Value> = vec![
            tenant.into(),
            uuid::Uuid::now_v7().into(),
            "Return rate anomalously high".into(),
            "return_rate_high".into(),
            "owner,admin".into(),
            now.into(),
        ];
        let insert =
            "INSERT INTO alert_rules (tenant_id, id, name, kind, recipient_roles, enabled, created_at, updated_at)
                      VALUES ($1, $2, $3, $4, $5, TRUE, $6, $6)";
        if backend == DbBackend::Postgres {
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT set_config($1, $2, false)",
                [crate::TENANT_SETTING.into(), tenant.to_string().into()],
            ))
            .await?;
            db.execute_raw(Statement::from_sql_and_values(backend, insert, values)).await?;
        } else {
            db.execute_raw(Statement::from_sql_and_values(backend, insert.replace('$', "?"), values)).await?;
        }
    }
    if backend == DbBackend::Postgres {
        db.execute_unprepared(&format!("SELECT set_config('{}', '', false)", crate::TENANT_SETTING)).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [allocation_policies(), order_allocations(), returns_policies(), returns_runs(), return_dispositions()]
        {
            manager.create_table(t).await?;
        }
        for i in [
            index("allocation_policies", "ux_allocation_policies_scope", &["scope_key"], true),
            index("order_allocations", "ix_order_allocations_at", &["allocated_at"], false),
            index("returns_policies", "ux_returns_policies_scope", &["scope_key"], true),
            index("returns_runs", "ix_returns_runs_created", &["created_at"], false),
            index("return_dispositions", "ix_return_dispositions_status", &["status", "id"], false),
            index("return_dispositions", "ix_return_dispositions_line", &["return_line_id", "status"], false),
            index("return_dispositions", "ix_return_dispositions_run", &["run_id", "id"], false),
            index("returns", "ix_returns_created", &["created_at"], false),
        ] {
            manager.create_index(i).await?;
        }
        crate::enable_row_level_security(manager, TABLES).await?;
        return_rate_rules(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DELETE FROM alert_rules WHERE kind = 'return_rate_high'").await?;
        manager.drop_index(Index::drop().name("ix_returns_created").table("returns").if_exists().to_owned()).await?;
        for table in TABLES.iter().rev() {
            manager.drop_table(Table::drop().table(*table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
