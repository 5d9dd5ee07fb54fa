//! The sync engine's state (issue 6): runs with their position, so a run killed halfway goes on
//! from its last checkpoint; per connector × resource the high-water mark of the provider's
//! `updated_at` that the next incremental sync starts from; and the provider's ids stored beside
//! ours, so every record is applied as an upsert keyed by the provider's id, with the provider's
//! version of it (its `updated_at`) to tell a stale delivery from a newer one.
//!
//! Also an index the replenishment and forecast reads wanted (open purchase order lines by
//! variant), and every existing tenant gets the default "Connector sync failed" alert rule that
//! new tenants start with.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TABLES: &[&str] = &["sync_runs", "sync_cursors", "external_refs"];

fn uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().to_owned()
}
fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string().not_null().to_owned()
}
fn opt_text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().to_owned()
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
fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().default(0).to_owned()
}

fn connector_fk(table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_connector"))
        .from(table, ("tenant_id", "connector_id"))
        .to("connectors", ("tenant_id", "id"))
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn runs() -> TableCreateStatement {
    let mut t = Table::create();
    t.table("sync_runs").if_not_exists().col(uuid("tenant_id"));
    for mut c in [
        uuid("id"),
        uuid("connector_id"),
        // ["locations", "catalog", "inventory", …] in the order they run.
        json("resources"),
        // A full sync reads everything; otherwise only what changed since the last one.
        ColumnDef::new("full_sync").boolean().not_null().to_owned(),
        // manual, schedule or webhook.
        text("trigger"),
        // queued, running, completed or failed.
        text("status"),
        // The checkpoint: {"resource": …, "cursor": …, "since": …, "started": …, "done": […]}.
        json("position"),
        // Per resource: {"applied": n, "unchanged": n, "problems": n}.
        json("counts"),
        // The first problems: [{"resource", "externalId", "message"}].
        json("problems"),
        int("problem_count"),
        opt_text("error"),
        ts("created_at"),
        opt_ts("started_at"),
        opt_ts("finished_at"),
    ] {
        t.col(&mut c);
    }
    t.primary_key(Index::create().col("tenant_id").col("id"));
    t.foreign_key(&mut connector_fk("sync_runs"));
    t.to_owned()
}

fn cursors() -> TableCreateStatement {
    let mut t = Table::create();
    t.table("sync_cursors").if_not_exists().col(uuid("tenant_id"));
    for mut c in [
        uuid("connector_id"),
        text("resource"),
        // The newest provider `updated_at` a completed sync saw: the next incremental sync starts there.
        opt_ts("since"),
        opt_ts("last_synced_at"),
        ColumnDef::new("last_run_id").uuid().null().to_owned(),
        opt_text("last_error"),
        int("error_count"),
        ts("updated_at"),
    ] {
        t.col(&mut c);
    }
    t.primary_key(Index::create().col("tenant_id").col("connector_id").col("resource"));
    t.foreign_key(&mut connector_fk("sync_cursors"));
    t.to_owned()
}

fn refs() -> TableCreateStatement {
    let mut t = Table::create();
    t.table("external_refs").if_not_exists().col(uuid("tenant_id"));
    for mut c in [
        uuid("connector_id"),
        // location, product, variant, inventory_item, inventory_level.
        text("kind"),
        // The provider's id, exactly as it gives it (a GID string).
        text("external_id"),
        // Our row it is (for inventory levels: the variant).
        uuid("local_id"),
        // The provider's `updated_at` of the version applied last.
        opt_ts("version"),
        // Whatever else the connector needs to remember (for a level, our location).
        ColumnDef::new("extra").uuid().null().to_owned(),
        ts("updated_at"),
    ] {
        t.col(&mut c);
    }
    t.primary_key(Index::create().col("tenant_id").col("connector_id").col("kind").col("external_id"));
    t.foreign_key(&mut connector_fk("external_refs"));
    t.to_owned()
}

/// The default `sync_failed` rule for each existing tenant. On PostgreSQL each insert runs with the
/// tenant set, as row-level security (forced, so also for the owner) requires.
async fn sync_failed_rules(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
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
            "Connector sync failed".into(),
            "sync_failed".into(),
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
            // SQLite numbers parameters the same way with `?N`.
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
        manager.create_table(runs()).await?;
        manager.create_table(cursors()).await?;
        manager.create_table(refs()).await?;
        for mut index in [
            Index::create()
                .name("ix_sync_runs_connector")
                .table("sync_runs")
                .col("tenant_id")
                .col("connector_id")
                .col("created_at")
                .to_owned(),
            // Which provider record holds one of ours. Only (tenant, ours): an index sharing the
            // primary key's (tenant, connector, kind) prefix was chosen by PostgreSQL for lookups
            // by provider id before statistics existed, scanning every row of the kind.
            Index::create()
                .name("ix_external_refs_local")
                .table("external_refs")
                .col("tenant_id")
                .col("local_id")
                .to_owned(),
            Index::create()
                .name("ix_purchase_order_lines_variant")
                .table("purchase_order_lines")
                .col("tenant_id")
                .col("variant_id")
                .to_owned(),
        ] {
            manager.create_index(index.if_not_exists().to_owned()).await?;
        }
        crate::enable_row_level_security(manager, TABLES).await?;
        sync_failed_rules(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DELETE FROM alert_rules WHERE kind = 'sync_failed'").await?;
        manager
            .drop_index(Index::drop().name("ix_purchase_order_lines_variant").table("purchase_order_lines").to_owned())
            .await?;
        for table in ["external_refs", "sync_cursors", "sync_runs"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
