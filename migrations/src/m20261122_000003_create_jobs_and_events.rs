//! Durable jobs, the event outbox, and webhook endpoints with their delivery log.
//!
//! `jobs` is claimed across tenants by workers, so besides its tenant-led key it has one claim
//! index led by `status` (like `api_keys.key_hash`, a documented exception). On PostgreSQL its
//! policy also admits a transaction that declares itself a worker (`app.worker = 'on'`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TABLES: &[&str] =
    &["events", "jobs", "job_schedules", "webhook_endpoints", "webhook_messages", "webhook_attempts"];

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
    ColumnDef::new(name).integer().not_null().default(0).to_owned()
}
fn opt_int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).integer().null().to_owned()
}
fn ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}
fn opt_ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().to_owned()
}

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

fn index(table: &'static str, name: &str, cols: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(table).if_not_exists();
    for c in cols {
        i.col(*c);
    }
    if unique {
        i.unique();
    }
    i.to_owned()
}

fn tables() -> Vec<TableCreateStatement> {
    vec![
        table(
            "events",
            &["id"],
            vec![
                uuid("id"),
                text("event_type"),
                int("version"),
                ColumnDef::new("payload").json().not_null().to_owned(),
                ts("occurred_at"),
            ],
        ),
        table(
            "jobs",
            &["id"],
            vec![
                uuid("id"),
                text("queue"),
                text("kind"),
                ColumnDef::new("payload").json().not_null().to_owned(),
                text("status"),
                int("attempts"),
                int("max_attempts"),
                ts("run_at"),
                opt_ts("locked_until"),
                opt_text("locked_by"),
                opt_text("last_error"),
                opt_text("dedup_key"),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        table(
            "job_schedules",
            &["name"],
            vec![
                text("name"),
                text("kind"),
                ColumnDef::new("payload").json().not_null().to_owned(),
                int("interval_seconds"),
                ts("next_run_at"),
                ts("updated_at"),
            ],
        ),
        table(
            "webhook_endpoints",
            &["id"],
            vec![
                uuid("id"),
                text("url"),
                text("description"),
                text("event_types"),
                text("secret"),
                opt_text("previous_secret"),
                opt_ts("previous_secret_expires_at"),
                text("status"),
                opt_ts("failing_since"),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        table(
            "webhook_messages",
            &["id"],
            vec![
                uuid("id"),
                uuid("endpoint_id"),
                opt_uuid("event_id"),
                text("event_type"),
                ColumnDef::new("body").text().not_null().to_owned(),
                text("status"),
                int("attempts"),
                opt_ts("next_attempt_at"),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        table(
            "webhook_attempts",
            &["id"],
            vec![
                uuid("id"),
                uuid("message_id"),
                uuid("endpoint_id"),
                opt_int("status_code"),
                int("latency_ms"),
                text("response_excerpt"),
                opt_text("error"),
                ts("attempted_at"),
            ],
        ),
    ]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        index("events", "ix_events_time", &["tenant_id", "occurred_at"], false),
        // The claim index: workers look across tenants for due, ready jobs.
        index("jobs", "ix_jobs_claim", &["status", "queue", "run_at"], false),
        index("jobs", "ix_jobs_tenant_status", &["tenant_id", "status"], false),
        index("jobs", "ux_jobs_dedup", &["tenant_id", "dedup_key"], true),
        index("job_schedules", "ix_job_schedules_due", &["next_run_at"], false),
        index("webhook_messages", "ix_webhook_messages_endpoint", &["tenant_id", "endpoint_id", "created_at"], false),
        index("webhook_messages", "ux_webhook_messages_event", &["tenant_id", "endpoint_id", "event_id"], true),
        index("webhook_attempts", "ix_webhook_attempts_message", &["tenant_id", "message_id", "attempted_at"], false),
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
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            let tenant = format!("NULLIF(current_setting('{}', true), '')::uuid", crate::TENANT_SETTING);
            for table in TABLES {
                let worker = if matches!(*table, "jobs" | "job_schedules") {
                    format!(" OR current_setting('{}', true) = 'on'", crate::WORKER_SETTING)
                } else {
                    String::new()
                };
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
                     ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
                     CREATE POLICY tenant_isolation ON {table}
                       USING (tenant_id = {tenant}{worker}) WITH CHECK (tenant_id = {tenant}{worker});"
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
