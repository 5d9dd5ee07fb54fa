use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().to_owned()
}
fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string().not_null().to_owned()
}
fn opt_text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string().null().to_owned()
}
fn big(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().default(0).to_owned()
}
fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).integer().not_null().to_owned()
}
fn ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}
fn opt_ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().to_owned()
}
fn boolean(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).boolean().not_null().default(false).to_owned()
}
/// Decimals are canonical text on both backends (see the crate docs).
fn dec(name: &'static str) -> ColumnDef {
    text(name)
}
fn double(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).double().null().to_owned()
}

/// A tenant-owned table: `tenant_id` first, then the columns, keyed by `(tenant_id, <pk>…)`.
fn tenant_table(name: &'static str, pk: &[&'static str], cols: Vec<ColumnDef>) -> TableCreateStatement {
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

/// An index led by `tenant_id`.
fn tenant_index(table: &'static str, name: &str, cols: &[&'static str], unique: bool) -> IndexCreateStatement {
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

pub fn tables() -> Vec<TableCreateStatement> {
    vec![
        tenant_table("users", &["id"], vec![uuid("id"), text("email"), text("name"), text("roles"), ts("created_at")]),
        tenant_table(
            "api_keys",
            &["id"],
            vec![
                uuid("id"),
                text("name"),
                text("prefix"),
                text("key_hash"),
                text("roles"),
                ColumnDef::new("supplier_id").uuid().null().to_owned(),
                ts("created_at"),
                opt_ts("expires_at"),
                opt_ts("last_used_at"),
                opt_ts("revoked_at"),
            ],
        ),
        tenant_table(
            "locations",
            &["id"],
            vec![
                uuid("id"),
                text("code"),
                text("name"),
                text("kind"),
                double("latitude"),
                double("longitude"),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        tenant_table(
            "products",
            &["id"],
            vec![
                uuid("id"),
                text("title"),
                text("handle"),
                text("category"),
                text("status"),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        tenant_table(
            "variants",
            &["id"],
            vec![
                uuid("id"),
                uuid("product_id"),
                text("sku"),
                text("title"),
                dec("price"),
                text("currency"),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        tenant_table(
            "suppliers",
            &["id"],
            vec![
                uuid("id"),
                text("name"),
                opt_text("email"),
                dec("lead_time_mean_days"),
                dec("lead_time_std_days"),
                text("currency"),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        tenant_table(
            "supplier_items",
            &["supplier_id", "variant_id"],
            vec![
                uuid("supplier_id"),
                uuid("variant_id"),
                dec("lead_time_mean_days"),
                dec("lead_time_std_days"),
                int("moq"),
                int("pack_size"),
                dec("unit_cost"),
                text("currency"),
                ts("updated_at"),
            ],
        ),
        tenant_table(
            "stock_levels",
            &["variant_id", "location_id"],
            vec![
                uuid("variant_id"),
                uuid("location_id"),
                big("on_hand"),
                big("reserved"),
                big("inbound"),
                ts("updated_at"),
            ],
        ),
        tenant_table("ledger_heads", &[], vec![big("seq"), text("hash")]),
        tenant_table(
            "stock_movements",
            &["seq"],
            vec![
                ColumnDef::new("seq").big_integer().not_null().to_owned(),
                uuid("id"),
                uuid("variant_id"),
                uuid("location_id"),
                text("kind"),
                big("delta_on_hand"),
                big("delta_reserved"),
                text("reason"),
                text("reference"),
                opt_text("idempotency_key"),
                ts("occurred_at"),
                text("prev_hash"),
                text("hash"),
            ],
        ),
        tenant_table(
            "orders",
            &["id"],
            vec![
                uuid("id"),
                text("external_id"),
                uuid("location_id"),
                text("status"),
                ColumnDef::new("ship_to").json().null().to_owned(),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        tenant_table(
            "order_lines",
            &["id"],
            vec![uuid("id"), uuid("order_id"), uuid("variant_id"), int("quantity"), int("line_no")],
        ),
        tenant_table(
            "reservations",
            &["id"],
            vec![
                uuid("id"),
                uuid("order_id"),
                uuid("order_line_id"),
                uuid("variant_id"),
                uuid("location_id"),
                int("quantity"),
                text("status"),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        tenant_table(
            "shipments",
            &["id"],
            vec![
                uuid("id"),
                uuid("order_id"),
                uuid("location_id"),
                text("status"),
                opt_text("carrier"),
                opt_text("tracking_number"),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        tenant_table(
            "shipment_events",
            &["id"],
            vec![uuid("id"), uuid("shipment_id"), text("status"), text("description"), ts("occurred_at")],
        ),
        tenant_table(
            "returns",
            &["id"],
            vec![uuid("id"), uuid("order_id"), text("status"), text("reason"), ts("created_at"), ts("updated_at")],
        ),
        tenant_table(
            "return_lines",
            &["id"],
            vec![uuid("id"), uuid("return_id"), uuid("variant_id"), int("quantity"), text("condition")],
        ),
        tenant_table(
            "purchase_orders",
            &["id"],
            vec![
                uuid("id"),
                text("number"),
                uuid("supplier_id"),
                uuid("location_id"),
                text("status"),
                text("currency"),
                ColumnDef::new("expected_on").date().null().to_owned(),
                ts("created_at"),
                ts("updated_at"),
            ],
        ),
        tenant_table(
            "purchase_order_lines",
            &["id"],
            vec![
                uuid("id"),
                uuid("purchase_order_id"),
                uuid("variant_id"),
                int("quantity"),
                int("received_quantity"),
                dec("unit_cost"),
            ],
        ),
        tenant_table(
            "transfers",
            &["id"],
            vec![
                uuid("id"),
                uuid("variant_id"),
                uuid("from_location_id"),
                uuid("to_location_id"),
                int("quantity"),
                text("status"),
                opt_text("idempotency_key"),
                ts("created_at"),
            ],
        ),
        tenant_table(
            "daily_demand",
            &["variant_id", "location_id", "day"],
            vec![
                uuid("variant_id"),
                uuid("location_id"),
                ColumnDef::new("day").date().not_null().to_owned(),
                int("units"),
                dec("price"),
                boolean("promo"),
                boolean("stockout"),
            ],
        ),
    ]
}

pub fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        tenant_index("users", "ux_users_email", &["email"], true),
        tenant_index("api_keys", "ix_api_keys_created", &["created_at"], false),
        tenant_index("locations", "ux_locations_code", &["code"], true),
        tenant_index("products", "ux_products_handle", &["handle"], true),
        tenant_index("variants", "ux_variants_sku", &["sku"], true),
        tenant_index("variants", "ix_variants_product", &["product_id", "id"], false),
        tenant_index("suppliers", "ux_suppliers_name", &["name"], true),
        tenant_index("supplier_items", "ix_supplier_items_variant", &["variant_id"], false),
        tenant_index("stock_levels", "ix_stock_levels_location", &["location_id", "variant_id"], false),
        tenant_index("stock_movements", "ux_stock_movements_id", &["id"], true),
        tenant_index("stock_movements", "ux_stock_movements_idem", &["idempotency_key"], true),
        tenant_index("stock_movements", "ix_stock_movements_variant", &["variant_id", "seq"], false),
        tenant_index("orders", "ux_orders_external_id", &["external_id"], true),
        tenant_index("order_lines", "ix_order_lines_order", &["order_id", "line_no"], false),
        tenant_index("reservations", "ix_reservations_order", &["order_id"], false),
        tenant_index("shipments", "ix_shipments_order", &["order_id"], false),
        tenant_index("shipment_events", "ix_shipment_events_shipment", &["shipment_id", "occurred_at"], false),
        tenant_index("returns", "ix_returns_order", &["order_id"], false),
        tenant_index("return_lines", "ix_return_lines_return", &["return_id"], false),
        tenant_index("purchase_orders", "ux_purchase_orders_number", &["number"], true),
        tenant_index("purchase_orders", "ix_purchase_orders_supplier", &["supplier_id", "id"], false),
        tenant_index("purchase_order_lines", "ix_po_lines_po", &["purchase_order_id"], false),
        tenant_index("transfers", "ux_transfers_idem", &["idempotency_key"], true),
        tenant_index("daily_demand", "ix_daily_demand_location_day", &["location_id", "day"], false),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tenants")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(text("slug").unique_key())
                    .col(text("name"))
                    .col(ts("created_at"))
                    .to_owned(),
            )
            .await?;
        for t in tables() {
            manager.create_table(t).await?;
        }
        for i in indexes() {
            manager.create_index(i).await?;
        }
        // API keys are looked up by hash before the tenant is known: the one global index.
        manager
            .create_index(
                Index::create()
                    .name("ux_api_keys_hash")
                    .table("api_keys")
                    .if_not_exists()
                    .col("key_hash")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in tables().iter().rev() {
            let name = t.get_table_name().cloned().ok_or_else(|| DbErr::Migration("table without name".into()))?;
            manager.drop_table(Table::drop().table(name).if_exists().to_owned()).await?;
        }
        manager.drop_table(Table::drop().table("tenants").if_exists().to_owned()).await
    }
}
