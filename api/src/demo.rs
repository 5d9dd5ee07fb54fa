//! Seeding the demo tenant (slug `demo`) from the deterministic generator in `qm_domain::demo`.
//! Idempotent: if the tenant exists nothing is written. Everything goes in one transaction, so an
//! interrupted seed leaves nothing behind and the next start tries again.

use anyhow::Context;
use chrono::NaiveDate;
use qm_domain::demo::{self, DemoParams};
use sea_orm::{ActiveValue::Set, EntityTrait};
use uuid::Uuid;

use crate::db::entities::{Dec, daily_demand, location, product, stock_level, supplier, supplier_item, variant};
use crate::db::{Db, TxMode, repo};
use crate::services::tenants;

pub const DEMO_SLUG: &str = "demo";

/// What seeding did.
#[derive(Debug)]
pub struct Seeded {
    pub tenant_id: Uuid,
    pub created: bool,
    pub variants: usize,
    pub demand_rows: usize,
}

/// Seeds the demo tenant unless it exists. `end` is the last day of demand history.
pub async fn seed(db: &Db, params: &DemoParams) -> anyhow::Result<Seeded> {
    if let Some(t) = tenants::find_by_slug(db, DEMO_SLUG).await? {
        return Ok(Seeded { tenant_id: t.id, created: false, variants: 0, demand_rows: 0 });
    }
    let data = tokio::task::spawn_blocking({
        let params = *params;
        move || demo::generate(&params)
    })
    .await
    .context("generating demo data")?;
    let tenant_id = Uuid::now_v7();
    let s = db.scoped(tenant_id, TxMode::Write).await?;
    let Some(_) = tenants::create_in(&s, DEMO_SLUG, "Demo Outfitters", "owner@demo.example", "Demo Owner").await?
    else {
        anyhow::bail!("demo tenant appeared concurrently");
    };
    let now = repo::now();
    let t = s.tenant();

    let mut location_ids = Vec::new();
    for l in &data.locations {
        let id = Uuid::now_v7();
        location_ids.push(id);
        location::Entity::insert(location::ActiveModel::from(location::Model {
            tenant_id: t,
            id,
            code: l.code.into(),
            name: l.name.into(),
            kind: l.kind.as_str().into(),
            latitude: Some(l.latitude),
            longitude: Some(l.longitude),
            created_at: now,
            updated_at: now,
            capacity_volume: None,
        }))
        .exec_without_returning(&s.tx)
        .await?;
    }
    let mut supplier_ids = Vec::new();
    for sup in &data.suppliers {
        let id = Uuid::now_v7();
        supplier_ids.push(id);
        supplier::Entity::insert(supplier::ActiveModel::from(supplier::Model {
            tenant_id: t,
            id,
            name: sup.name.into(),
            email: Some(sup.email.into()),
            lead_time_mean_days: Dec(sup.lead_time_mean_days),
            lead_time_std_days: Dec(sup.lead_time_std_days),
            currency: sup.currency.into(),
            created_at: now,
            updated_at: now,
            order_line_cost: Dec(rust_decimal::Decimal::ZERO),
            plan_budget: None,
            plan_capacity_units: None,
        }))
        .exec_without_returning(&s.tx)
        .await?;
    }
    // variant_ids[product][variant]
    let mut variant_ids: Vec<Vec<Uuid>> = Vec::new();
    for p in &data.products {
        let pid = Uuid::now_v7();
        product::Entity::insert(product::ActiveModel::from(product::Model {
            tenant_id: t,
            id: pid,
            title: p.title.clone(),
            handle: p.handle.clone(),
            category: p.category.into(),
            status: "active".into(),
            created_at: now,
            updated_at: now,
        }))
        .exec_without_returning(&s.tx)
        .await?;
        let mut ids = Vec::new();
        for v in &p.variants {
            let vid = Uuid::now_v7();
            ids.push(vid);
            variant::Entity::insert(variant::ActiveModel::from(variant::Model {
                tenant_id: t,
                id: vid,
                product_id: pid,
                sku: v.sku.clone(),
                title: v.title.clone(),
                price: Dec(v.price),
                currency: "USD".into(),
                created_at: now,
                updated_at: now,
                unit_volume: None,
            }))
            .exec_without_returning(&s.tx)
            .await?;
            let sup = &data.suppliers[v.supplier];
            supplier_item::Entity::insert(supplier_item::ActiveModel::from(supplier_item::Model {
                tenant_id: t,
                supplier_id: supplier_ids[v.supplier],
                variant_id: vid,
                lead_time_mean_days: Dec(sup.lead_time_mean_days),
                lead_time_std_days: Dec(sup.lead_time_std_days),
                moq: v.moq,
                pack_size: v.pack_size,
                unit_cost: Dec(v.unit_cost),
                currency: sup.currency.into(),
                updated_at: now,
                price_breaks: serde_json::json!([]),
            }))
            .exec_without_returning(&s.tx)
            .await?;
        }
        variant_ids.push(ids);
    }
    // Opening stock goes through the ledger like every other stock change.
    for st in &data.stock {
        let (vid, lid) = (variant_ids[st.product][st.variant], location_ids[st.location]);
        stock_level::Entity::insert(stock_level::ActiveModel::from(stock_level::Model {
            tenant_id: t,
            variant_id: vid,
            location_id: lid,
            on_hand: st.on_hand,
            reserved: 0,
            inbound: 0,
            updated_at: now,
        }))
        .exec_without_returning(&s.tx)
        .await?;
        if st.on_hand > 0 {
            repo::append_movement(
                &s,
                repo::NewMovement {
                    variant_id: vid,
                    location_id: lid,
                    kind: "adjust",
                    delta_on_hand: st.on_hand,
                    delta_reserved: 0,
                    reason: "opening stock",
                    reference: "demo",
                    idempotency_key: None,
                },
            )
            .await?;
        }
    }
    for chunk in data.demand.chunks(500) {
        let rows = chunk.iter().map(|d| daily_demand::ActiveModel {
            tenant_id: Set(t),
            variant_id: Set(variant_ids[d.product][d.variant]),
            location_id: Set(location_ids[d.location]),
            day: Set(d.day),
            units: Set(d.units),
            price: Set(Dec(d.price)),
            promo: Set(d.promo),
            stockout: Set(d.stockout),
        });
        daily_demand::Entity::insert_many(rows).exec_without_returning(&s.tx).await?;
    }
    crate::alerts::insert_rule(
        &s,
        "Under a week of cover",
        crate::alerts::RuleKind::DaysOfCoverBelow,
        Some(qm_domain::alerts::StockCondition::DaysOfCoverAtOrBelow(rust_decimal::Decimal::from(7))),
        &[qm_domain::Role::Owner, qm_domain::Role::Planner],
    )
    .await?;
    crate::alerts::insert_rule(
        &s,
        "Stockout predicted within lead time",
        crate::alerts::RuleKind::StockoutPredicted,
        None,
        &[qm_domain::Role::Owner, qm_domain::Role::Planner],
    )
    .await?;
    // The first forecast runs as soon as a worker is up; then nightly.
    crate::services::forecast::queue_run(&s, crate::services::forecast::DEFAULT_HORIZON, "demo").await?;
    s.commit().await?;
    Ok(Seeded { tenant_id, created: true, variants: data.variant_count(), demand_rows: data.demand.len() })
}

/// The full demo ending yesterday (UTC).
pub fn default_params(seed: u64, today: NaiveDate) -> DemoParams {
    DemoParams::full(seed, today.pred_opt().unwrap_or(today))
}
