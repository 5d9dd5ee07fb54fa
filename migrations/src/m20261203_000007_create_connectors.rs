//! Connectors: one row per installed provider connection of a tenant (Shopify first), with its
//! non-secret settings in the clear and its credentials sealed (AES-256-GCM, `v1:{key id}:…`);
//! and the webhooks received from providers, one row per delivery id (retries are the same row).
//! A connector row can be read by its id alone (`app.connector_id`), as an inbound webhook names
//! its connector before the tenant is known.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TABLES: &[&str] = &["connectors", "connector_webhooks"];

fn uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().to_owned()
}
fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string().not_null().to_owned()
}
fn opt_text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string().null().to_owned()
}
fn json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json().not_null().to_owned()
}
fn ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}

fn connectors() -> TableCreateStatement {
    let mut t = Table::create();
    t.table("connectors").if_not_exists().col(uuid("tenant_id"));
    for mut c in [
        uuid("id"),
        // shopify (more kinds with issue 11).
        text("kind"),
        // active, paused or uninstalled.
        text("status"),
        // The shop (or account) this connection reaches: one installation per tenant each.
        text("external_account"),
        // Settings in the clear: API version, base URL override, location mapping.
        json("settings"),
        // Sealed credentials (access token, webhook secret); empty once uninstalled.
        text("credentials"),
        opt_text("status_reason"),
        ts("created_at"),
        ts("updated_at"),
    ] {
        t.col(&mut c);
    }
    t.primary_key(Index::create().col("tenant_id").col("id"));
    t.foreign_key(
        ForeignKey::create()
            .name("fk_connectors_tenant")
            .from("connectors", "tenant_id")
            .to("tenants", "id")
            .on_delete(ForeignKeyAction::Cascade),
    );
    t.to_owned()
}

fn webhooks() -> TableCreateStatement {
    let mut t = Table::create();
    t.table("connector_webhooks").if_not_exists().col(uuid("tenant_id"));
    for mut c in [
        uuid("connector_id"),
        // The provider's delivery id (X-Shopify-Webhook-Id): the same on every retry.
        text("webhook_id"),
        text("topic"),
        ColumnDef::new("triggered_at").timestamp_with_time_zone().null().to_owned(),
        // The body exactly as received (it is what the signature covers).
        ColumnDef::new("body").text().not_null().to_owned(),
        // received (waiting for the sync engine), applied or ignored.
        text("status"),
        ts("received_at"),
    ] {
        t.col(&mut c);
    }
    t.primary_key(Index::create().col("tenant_id").col("connector_id").col("webhook_id"));
    t.foreign_key(
        ForeignKey::create()
            .name("fk_connector_webhooks_connector")
            .from("connector_webhooks", ("tenant_id", "connector_id"))
            .to("connectors", ("tenant_id", "id"))
            .on_delete(ForeignKeyAction::Cascade),
    );
    t.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(connectors()).await?;
        manager.create_table(webhooks()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_connectors_account")
                    .table("connectors")
                    .if_not_exists()
                    .unique()
                    .col("tenant_id")
                    .col("kind")
                    .col("external_account")
                    .to_owned(),
            )
            .await?;
        crate::enable_row_level_security(manager, TABLES).await?;
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "CREATE POLICY connector_lookup ON connectors FOR SELECT
                       USING (id = NULLIF(current_setting('{}', true), '')::uuid);",
                    crate::CONNECTOR_ID_SETTING
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("connector_webhooks").if_exists().to_owned()).await?;
        manager.drop_table(Table::drop().table("connectors").if_exists().to_owned()).await?;
        Ok(())
    }
}
