//! Demand forecasts: runs (one per tenant-wide forecast, with the fitted panel model), the latest
//! forecast per SKU × location with its held-out accuracy, and planners' overrides.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TABLES: &[&str] = &["forecast_runs", "forecasts", "forecast_overrides"];

fn uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().to_owned()
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
fn json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json().not_null().to_owned()
}
fn opt_json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json().null().to_owned()
}
fn date(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).date().not_null().to_owned()
}
fn opt_date(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).date().null().to_owned()
}
fn ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}
fn opt_ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().to_owned()
}

/// A tenant table keyed by `(tenant_id, <pk>…)`.
fn table(name: &'static str, pk: &[&'static str], cols: Vec<ColumnDef>) -> TableCreateStatement {
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
            "forecast_runs",
            &["id"],
            vec![
                uuid("id"),
                // queued, running, completed or failed.
                text("status"),
                int("horizon"),
                int("season"),
                int("series_total"),
                text("requested_by"),
                // The fitted panel model (global models, choice per demand class, residuals).
                opt_json("model"),
                opt_text("error"),
                ts("created_at"),
                opt_ts("started_at"),
                opt_ts("finished_at"),
            ],
        ),
        table(
            "forecasts",
            &["variant_id", "location_id"],
            vec![
                uuid("variant_id"),
                uuid("location_id"),
                uuid("run_id"),
                text("sku"),
                text("model"),
                text("demand_class"),
                text("reason"),
                date("first_day"),
                // {"point": [..], "quantiles": {"0.1": [..], ..}}
                json("forecast"),
                // Held-out accuracy: periods, abs_error, error, actual, wape, bias, mase, pinball.
                opt_json("holdout"),
                // Every per-series candidate with its backtest mean squared error, best first.
                json("candidates"),
                opt_date("stockout_on"),
                ts("created_at"),
            ],
        ),
        table(
            "forecast_overrides",
            &["variant_id", "location_id", "day"],
            vec![
                uuid("variant_id"),
                uuid("location_id"),
                date("day"),
                ColumnDef::new("quantity").double().not_null().to_owned(),
                text("note"),
                text("set_by"),
                ts("set_at"),
            ],
        ),
    ]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        Index::create()
            .name("ix_forecast_runs_created")
            .table("forecast_runs")
            .if_not_exists()
            .col("tenant_id")
            .col("created_at")
            .to_owned(),
        Index::create()
            .name("ix_forecasts_run")
            .table("forecasts")
            .if_not_exists()
            .col("tenant_id")
            .col("run_id")
            .to_owned(),
        Index::create()
            .name("ix_forecasts_sku")
            .table("forecasts")
            .if_not_exists()
            .col("tenant_id")
            .col("sku")
            .to_owned(),
    ]
}

/// Tenants that exist before forecasting arrives get the nightly forecast every new tenant gets
/// (`forecast.nightly`, a `forecast.run` job at 02:00 UTC).
async fn backfill_nightly_schedules(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    use sea_orm_migration::sea_orm::{DbBackend, Statement};
    let db = manager.get_connection();
    let now = chrono::Utc::now();
    let today_2am = now.date_naive().and_hms_opt(2, 0, 0).map(|t| t.and_utc()).unwrap_or(now);
    let first = if today_2am > now { today_2am } else { today_2am + chrono::Duration::days(1) };
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            // job_schedules is under row-level security already; the worker flag admits the rows.
            db.execute_unprepared(&format!(
                "DO $$ BEGIN
                   PERFORM set_config('{worker}', 'on', true);
                   INSERT INTO job_schedules (tenant_id, name, kind, payload, interval_seconds, next_run_at, updated_at)
                     SELECT id, 'forecast.nightly', 'forecast.run', '{{}}'::json, 86400, '{first}'::timestamptz, now()
                     FROM tenants
                   ON CONFLICT (tenant_id, name) DO NOTHING;
                   PERFORM set_config('{worker}', '', true);
                 END $$;",
                worker = crate::WORKER_SETTING,
                first = first.to_rfc3339(),
            ))
            .await?;
        }
        backend => {
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                "INSERT OR IGNORE INTO job_schedules (tenant_id, name, kind, payload, interval_seconds, next_run_at, updated_at)
                 SELECT id, 'forecast.nightly', 'forecast.run', '{}', 86400, ?, ? FROM tenants",
                [first.into(), now.into()],
            ))
            .await?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in tables() {
            manager.create_table(t).await?;
        }
        for i in indexes() {
            manager.create_index(i).await?;
        }
        // Demand is read per variant and location (forecasts, days of cover): the primary key
        // serves that. Without fresh statistics (right after a bulk load) PostgreSQL preferred
        // this index and read every variant of the location; nothing needs it.
        manager
            .drop_index(Index::drop().name("ix_daily_demand_location_day").table("daily_demand").if_exists().to_owned())
            .await?;
        backfill_nightly_schedules(manager).await?;
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::Postgres {
            let db = manager.get_connection();
            let tenant = format!("NULLIF(current_setting('{}', true), '')::uuid", crate::TENANT_SETTING);
            for table in TABLES {
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
                     ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
                     CREATE POLICY tenant_isolation ON {table}
                       USING (tenant_id = {tenant}) WITH CHECK (tenant_id = {tenant});"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_daily_demand_location_day")
                    .table("daily_demand")
                    .if_not_exists()
                    .col("tenant_id")
                    .col("location_id")
                    .col("day")
                    .to_owned(),
            )
            .await?;
        for t in tables().iter().rev() {
            let name = t.get_table_name().cloned().ok_or_else(|| DbErr::Migration("table without name".into()))?;
            manager.drop_table(Table::drop().table(name).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
