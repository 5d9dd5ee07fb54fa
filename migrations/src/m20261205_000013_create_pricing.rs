//! Dynamic pricing (issue 8).
//!
//! `pricing_policies`: guardrails for the whole tenant, one category or one variant (`scope`
//! `tenant`, `category` or `variant`; `scope_key` the category's name or the variant's id, empty
//! for the tenant); a null field takes the wider scope's value. `pricing_runs`: one pricing of
//! the tenant's catalog. `price_recommendations`: a run's price for each variant with the numbers
//! behind it, then what the merchant decided. Decimals are canonical decimal text.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TABLES: &[&str] = &["pricing_policies", "pricing_runs", "price_recommendations"];

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
fn ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}
fn opt_ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().to_owned()
}
fn real(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).double().not_null().default(0.0).to_owned()
}
fn opt_real(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).double().null().to_owned()
}
fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).integer().not_null().default(0).to_owned()
}

fn table(name: &'static str, columns: Vec<ColumnDef>) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(name).if_not_exists().col(uuid("tenant_id"));
    for mut c in columns {
        t.col(&mut c);
    }
    t.primary_key(Index::create().col("tenant_id").col("id"));
    t.to_owned()
}

fn policies() -> TableCreateStatement {
    table(
        "pricing_policies",
        vec![
            uuid("id"),
            // tenant, category or variant.
            text("scope"),
            // The category's name or the variant's id; empty for the tenant.
            text("scope_key"),
            opt_text("min_margin"),
            opt_text("max_change_per_step"),
            opt_text("price_ending"),
            opt_text("min_advertised_price"),
            opt_text("min_expected_gain"),
            ColumnDef::new("season_end").date().null().to_owned(),
            opt_text("salvage_value"),
            text("updated_by"),
            ts("updated_at"),
        ],
    )
}

fn runs() -> TableCreateStatement {
    table(
        "pricing_runs",
        vec![
            uuid("id"),
            // queued, running, completed or failed.
            text("status"),
            text("requested_by"),
            opt_uuid("forecast_run_id"),
            int("horizon_days"),
            int("skus_total"),
            // Recommendations that change a price, and those that keep it.
            int("proposed_total"),
            int("held_total"),
            opt_text("error"),
            ts("created_at"),
            opt_ts("started_at"),
            opt_ts("finished_at"),
        ],
    )
}

fn recommendations() -> TableCreateStatement {
    table(
        "price_recommendations",
        vec![
            uuid("id"),
            uuid("run_id"),
            uuid("variant_id"),
            text("sku"),
            // proposed, held, approved, rejected or superseded.
            text("status"),
            text("current_price"),
            text("recommended_price"),
            text("currency"),
            opt_text("unit_cost"),
            opt_real("elasticity"),
            opt_real("elasticity_se"),
            // high, medium or low.
            text("confidence"),
            real("expected_units_current"),
            real("expected_units_recommended"),
            text("expected_profit_current"),
            text("expected_profit_recommended"),
            // The binding constraint: profit_optimum, max_change_per_step, min_margin, ...
            text("binding"),
            text("reason"),
            ColumnDef::new("explanation").json().not_null().to_owned(),
            opt_text("decided_by"),
            opt_ts("decided_at"),
            ts("created_at"),
        ],
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(policies()).await?;
        manager.create_table(runs()).await?;
        manager.create_table(recommendations()).await?;
        for mut index in [
            Index::create()
                .name("ux_pricing_policies_scope")
                .table("pricing_policies")
                .col("tenant_id")
                .col("scope")
                .col("scope_key")
                .unique()
                .to_owned(),
            Index::create()
                .name("ix_pricing_runs_created")
                .table("pricing_runs")
                .col("tenant_id")
                .col("created_at")
                .to_owned(),
            Index::create()
                .name("ix_price_recommendations_run")
                .table("price_recommendations")
                .col("tenant_id")
                .col("run_id")
                .col("sku")
                .to_owned(),
            Index::create()
                .name("ix_price_recommendations_status")
                .table("price_recommendations")
                .col("tenant_id")
                .col("status")
                .col("id")
                .to_owned(),
            Index::create()
                .name("ix_price_recommendations_variant")
                .table("price_recommendations")
                .col("tenant_id")
                .col("variant_id")
                .col("created_at")
                .to_owned(),
        ] {
            manager.create_index(index.if_not_exists().to_owned()).await?;
        }
        crate::enable_row_level_security(manager, TABLES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["price_recommendations", "pricing_runs", "pricing_policies"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
