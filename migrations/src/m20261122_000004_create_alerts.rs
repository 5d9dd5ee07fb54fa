//! Alert rules and the alert history.
//!
//! Every existing tenant gets the default rule (a disabled webhook endpoint alerts owners and
//! admins), as new tenants do; the backfill runs before row-level security is switched on.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TABLES: &[&str] = &["alert_rules", "alerts"];

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
fn opt_big(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().to_owned()
}
fn ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}
fn opt_ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().to_owned()
}

fn table(name: &'static str, cols: Vec<ColumnDef>) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(name).if_not_exists().col(uuid("tenant_id"));
    for mut c in cols {
        t.col(&mut c);
    }
    t.primary_key(Index::create().col("tenant_id").col("id"));
    t.foreign_key(
        ForeignKey::create()
            .name(format!("fk_{name}_tenant"))
            .from(name, "tenant_id")
            .to("tenants", "id")
            .on_delete(ForeignKeyAction::Cascade),
    );
    t.to_owned()
}

fn index(table: &'static str, name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(table).if_not_exists();
    for c in cols {
        i.col(*c);
    }
    i.to_owned()
}

fn tables() -> Vec<TableCreateStatement> {
    vec![
        table(
            "alert_rules",
            vec![
                uuid("id"),
                text("name"),
                text("kind"),
                opt_text("sku"),
                opt_uuid("location_id"),
                opt_big("threshold"),
                // Decimal text, like every decimal in the schema.
                opt_text("days_of_cover"),
                text("recipient_roles"),
                ColumnDef::new("enabled").boolean().not_null().default(true).to_owned(),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        table(
            "alerts",
            vec![
                uuid("id"),
                opt_uuid("rule_id"),
                text("kind"),
                text("subject"),
                ColumnDef::new("details").json().not_null().to_owned(),
                opt_uuid("variant_id"),
                opt_uuid("location_id"),
                text("status"),
                ts("fired_at"),
                opt_ts("notified_at"),
                opt_ts("acknowledged_at"),
                opt_text("acknowledged_by"),
            ],
        ),
    ]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        index("alert_rules", "ix_alert_rules_kind", &["tenant_id", "kind"]),
        index("alerts", "ix_alerts_status", &["tenant_id", "status", "id"]),
        index("alerts", "ix_alerts_unnotified", &["tenant_id", "notified_at"]),
    ]
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
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let tenants = db.query_all_raw(Statement::from_string(backend, "SELECT id FROM tenants".to_owned())).await?;
        let now = chrono::Utc::now();
        for row in tenants {
            let tenant: uuid::Uuid = row.try_get("", "id")?;
            let sql = match backend {
                DbBackend::Postgres => {
                    "INSERT INTO alert_rules (tenant_id, id, name, kind, recipient_roles, enabled, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, TRUE, $6, $6)"
                }
                _ => {
                    "INSERT INTO alert_rules (tenant_id, id, name, kind, recipient_roles, enabled, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, TRUE, ?, ?)"
                }
            };
            let mut values: Vec<sea_orm_migration::sea_orm::Value> = vec![
                tenant.into(),
                uuid::Uuid::now_v7().into(),
                "Webhook endpoint disabled".into(),
                "webhook_endpoint_disabled".into(),
                "owner,admin".into(),
                now.into(),
            ];
            if backend != DbBackend::Postgres {
                values.push(now.into());
            }
            db.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
        }
        if backend == DbBackend::Postgres {
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
        for t in tables().iter().rev() {
            let name = t.get_table_name().cloned().ok_or_else(|| DbErr::Migration("table without name".into()))?;
            manager.drop_table(Table::drop().table(name).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
