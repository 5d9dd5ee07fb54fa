//! Supplier contracts (issue 9).
//!
//! `contracts`: one agreement with a supplier; `contract_versions`: its documents (terms and
//! rules, JSON as agreed), each proposed by the tenant, accepted by the supplier, then active
//! (at most one at a time; the one before is superseded). `contract_events`: the tenant's
//! contract ledger, a hash chain (`seq` from 1, each row's `hash` over its fields, its `data` as
//! canonical JSON text and the previous row's hash); `contract_ledger_heads` its head, locked by
//! every append; `contract_checkpoints` the head at a sequence number signed with the tenant's
//! Ed25519 key (`contract_keys`, the secret sealed with the connector encryption key).
//! `contract_fired`: when each rule last fired for each subject (what keeps a condition that
//! stays true from acting twice). `purchase_order_shipments`: suppliers' advance shipping
//! notices. Purchase orders gain the contract that issued them, the supplier's promised date,
//! acknowledgement, penalty and the reason for a rejection or cancellation; webhook endpoints
//! gain the supplier they belong to (such an endpoint is sent that supplier's events only).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TABLES: &[&str] = &[
    "contracts",
    "contract_versions",
    "contract_events",
    "contract_ledger_heads",
    "contract_checkpoints",
    "contract_keys",
    "contract_fired",
    "purchase_order_shipments",
];

fn uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().to_owned()
}
fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().not_null().to_owned()
}
fn opt_text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().to_owned()
}
fn ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}
fn opt_ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().to_owned()
}
fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).integer().not_null().to_owned()
}
fn big(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

fn table(name: &'static str, key: &[&'static str], columns: Vec<ColumnDef>) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(name).if_not_exists().col(uuid("tenant_id"));
    for mut c in columns {
        t.col(&mut c);
    }
    let mut pk = Index::create();
    pk.col("tenant_id");
    for k in key {
        pk.col(*k);
    }
    t.primary_key(&mut pk);
    t.to_owned()
}

fn tables() -> Vec<TableCreateStatement> {
    vec![
        table(
            "contracts",
            &["id"],
            vec![
                uuid("id"),
                uuid("supplier_id"),
                text("name"),
                // proposed (no version active yet), active or ended.
                text("status"),
                ColumnDef::new("active_version").integer().null().to_owned(),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        table(
            "contract_versions",
            &["contract_id", "version"],
            vec![
                uuid("contract_id"),
                int("version"),
                // The document as agreed (JSON text).
                text("document"),
                // proposed, accepted, active, superseded or withdrawn.
                text("status"),
                text("created_by"),
                ts("created_at"),
                opt_text("accepted_by"),
                opt_ts("accepted_at"),
                opt_ts("activated_at"),
            ],
        ),
        table(
            "contract_events",
            &["seq"],
            vec![
                big("seq"),
                uuid("id"),
                uuid("contract_id"),
                text("kind"),
                big("occurred_at_micros"),
                // Canonical JSON text: what the hash covers.
                text("data"),
                text("prev_hash"),
                text("hash"),
            ],
        ),
        table("contract_ledger_heads", &[], vec![big("seq"), text("hash")]),
        table(
            "contract_checkpoints",
            &["seq"],
            vec![big("seq"), text("head_hash"), big("signed_at_micros"), text("signature")],
        ),
        table("contract_keys", &[], vec![text("public_key"), text("sealed_secret"), ts("created_at")]),
        table(
            "contract_fired",
            &["contract_id", "rule_id", "subject_key"],
            vec![uuid("contract_id"), text("rule_id"), text("subject_key"), int("version"), ts("fired_at")],
        ),
        table(
            "purchase_order_shipments",
            &["id"],
            vec![
                uuid("id"),
                uuid("purchase_order_id"),
                text("carrier"),
                text("tracking_number"),
                // [{"lineId": uuid, "quantity": n}]
                ColumnDef::new("lines").json().not_null().to_owned(),
                ts("shipped_at"),
                ColumnDef::new("expected_on").date().null().to_owned(),
                text("created_by"),
                ts("created_at"),
            ],
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in tables() {
            manager.create_table(t).await?;
        }
        for c in [
            ColumnDef::new("contract_id").uuid().null().to_owned(),
            ColumnDef::new("promised_on").date().null().to_owned(),
            ColumnDef::new("acknowledged_at").timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new("penalty_amount").text().null().to_owned(),
            ColumnDef::new("status_reason").text().null().to_owned(),
        ] {
            let mut c = c;
            manager.alter_table(Table::alter().table("purchase_orders").add_column(&mut c).to_owned()).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("webhook_endpoints")
                    .add_column(ColumnDef::new("supplier_id").uuid().null())
                    .to_owned(),
            )
            .await?;
        for mut index in [
            Index::create()
                .name("ix_contracts_supplier")
                .table("contracts")
                .col("tenant_id")
                .col("supplier_id")
                .col("id")
                .to_owned(),
            Index::create()
                .name("ux_contract_events_id")
                .table("contract_events")
                .col("tenant_id")
                .col("id")
                .unique()
                .to_owned(),
            Index::create()
                .name("ix_contract_events_contract")
                .table("contract_events")
                .col("tenant_id")
                .col("contract_id")
                .col("seq")
                .to_owned(),
            Index::create()
                .name("ux_po_shipments_tracking")
                .table("purchase_order_shipments")
                .col("tenant_id")
                .col("purchase_order_id")
                .col("tracking_number")
                .unique()
                .to_owned(),
            Index::create()
                .name("ix_purchase_orders_contract")
                .table("purchase_orders")
                .col("tenant_id")
                .col("contract_id")
                .to_owned(),
        ] {
            manager.create_index(index.if_not_exists().to_owned()).await?;
        }
        crate::enable_row_level_security(manager, TABLES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop().name("ix_purchase_orders_contract").table("purchase_orders").if_exists().to_owned(),
            )
            .await?;
        for col in ["contract_id", "promised_on", "acknowledged_at", "penalty_amount", "status_reason"] {
            manager.alter_table(Table::alter().table("purchase_orders").drop_column(col).to_owned()).await?;
        }
        manager.alter_table(Table::alter().table("webhook_endpoints").drop_column("supplier_id").to_owned()).await?;
        for t in TABLES.iter().rev() {
            manager.drop_table(Table::drop().table(*t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
