//! Catalog upserts: locations, products with variants, suppliers with their items.
//! An upsert matches on the given id, else on the natural key (code, handle, name).

use rust_decimal::Decimal;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::stock::retrying;
use crate::auth::Principal;
use crate::db::entities::{Dec, location, product, supplier, supplier_item, variant};
use crate::db::{Db, repo};
use crate::graphql::errors::{Outcome, UserError, UserErrorCode};
use crate::services::lookup;

fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max
}

/// A product handle: 1 to 255 characters without whitespace (ours, or one a provider sends).
pub(crate) fn is_handle(h: &str) -> bool {
    text_ok(h, 255) && !h.chars().any(char::is_whitespace)
}

pub struct LocationUpsert {
    /// `Some(None)`: an ID was given but did not parse.
    pub id: Option<Option<Uuid>>,
    pub code: String,
    pub name: String,
    pub kind: &'static str,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// The volume the location holds, for replenishment plans (none: no limit).
    pub capacity_volume: Option<f64>,
}

/// A volume (of a unit or of a location) as stored: finite, not negative.
fn volume_ok(v: Option<f64>) -> bool {
    v.is_none_or(|v| v.is_finite() && (0.0..=1e12).contains(&v))
}

#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn upsert_location(db: &Db, p: &Principal, req: &LocationUpsert) -> Result<Outcome<location::Model>, DbErr> {
    if !text_ok(&req.code, 64) {
        return Ok(Err(vec![UserError::invalid(&["input", "code"], "code must be 1 to 64 characters")]));
    }
    if !text_ok(&req.name, 200) {
        return Ok(Err(vec![UserError::invalid(&["input", "name"], "name must be 1 to 200 characters")]));
    }
    if req.latitude.is_some_and(|v| !(-90.0..=90.0).contains(&v)) {
        return Ok(Err(vec![UserError::invalid(&["input", "latitude"], "latitude must be within -90..90")]));
    }
    if req.longitude.is_some_and(|v| !(-180.0..=180.0).contains(&v)) {
        return Ok(Err(vec![UserError::invalid(&["input", "longitude"], "longitude must be within -180..180")]));
    }
    if !volume_ok(req.capacity_volume) {
        return Ok(Err(vec![UserError::invalid(&["input", "capacityVolume"], "capacity must be between 0 and 1e12")]));
    }
    retrying!(db, p, |s| {
        let by_code =
            repo::find::<location::Entity>(s).filter(location::Column::Code.eq(req.code.trim())).one(&s.tx).await?;
        let existing = match req.id {
            Some(id) => {
                let Some(found) = (match id {
                    Some(id) => lookup::location(s, id).await?,
                    None => None,
                }) else {
                    return Ok(Err(vec![UserError::not_found(&["input", "id"], "location")]));
                };
                if by_code.as_ref().is_some_and(|o| o.id != found.id) {
                    return Ok(Err(vec![UserError::new(
                        &["input", "code"],
                        UserErrorCode::Taken,
                        "code is used by another location",
                    )]));
                }
                Some(found)
            }
            None => by_code,
        };
        let now = repo::now();
        let model = match existing {
            Some(e) => {
                let mut am: location::ActiveModel = e.into();
                am.code = Set(req.code.trim().to_owned());
                am.name = Set(req.name.trim().to_owned());
                am.kind = Set(req.kind.to_owned());
                am.latitude = Set(req.latitude);
                am.longitude = Set(req.longitude);
                am.capacity_volume = Set(req.capacity_volume);
                am.updated_at = Set(now);
                am.update(&s.tx).await?
            }
            None => {
                let m = location::Model {
                    tenant_id: s.tenant(),
                    id: Uuid::now_v7(),
                    code: req.code.trim().to_owned(),
                    name: req.name.trim().to_owned(),
                    kind: req.kind.to_owned(),
                    latitude: req.latitude,
                    longitude: req.longitude,
                    created_at: now,
                    updated_at: now,
                    capacity_volume: req.capacity_volume,
                };
                location::Entity::insert(location::ActiveModel::from(m.clone())).exec_without_returning(&s.tx).await?;
                m
            }
        };
        Ok(Ok(model))
    })
}

pub struct VariantUpsert {
    pub sku: String,
    pub title: String,
    pub price: Decimal,
    pub currency: String,
    /// The volume of one unit, for location capacity in replenishment plans.
    pub unit_volume: Option<f64>,
}

pub struct ProductUpsert {
    pub id: Option<Option<Uuid>>,
    pub handle: String,
    pub title: String,
    pub category: String,
    pub status: String,
    pub variants: Vec<VariantUpsert>,
}

#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn upsert_product(db: &Db, p: &Principal, req: &ProductUpsert) -> Result<Outcome<product::Model>, DbErr> {
    let mut errors = Vec::new();
    if !is_handle(&req.handle) {
        errors.push(UserError::invalid(&["input", "handle"], "handle must be 1 to 255 characters without spaces"));
    }
    if !text_ok(&req.title, 255) {
        errors.push(UserError::invalid(&["input", "title"], "title must be 1 to 255 characters"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, v) in req.variants.iter().enumerate() {
        let at = |f: &'static str| vec!["input".to_owned(), "variants".into(), i.to_string(), f.into()];
        if qm_domain::Sku::parse(&v.sku).is_err() {
            errors.push(UserError {
                field: Some(at("sku")),
                message: "sku must be 1 to 64 characters without spaces".into(),
                code: UserErrorCode::Invalid,
            });
        } else if !seen.insert(v.sku.clone()) {
            errors.push(UserError {
                field: Some(at("sku")),
                message: "sku appears twice".into(),
                code: UserErrorCode::Invalid,
            });
        }
        if qm_domain::Money::parse(v.price, &v.currency).is_err() {
            errors.push(UserError {
                field: Some(at("price")),
                message: "price must be non-negative with a three-letter ISO currency".into(),
                code: UserErrorCode::Invalid,
            });
        }
        if !volume_ok(v.unit_volume) {
            errors.push(UserError {
                field: Some(at("unitVolume")),
                message: "unit volume must be between 0 and 1e12".into(),
                code: UserErrorCode::Invalid,
            });
        }
    }
    if req.variants.len() > 250 {
        errors.push(UserError::invalid(&["input", "variants"], "at most 250 variants per product"));
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    retrying!(db, p, |s| {
        let by_handle =
            repo::find::<product::Entity>(s).filter(product::Column::Handle.eq(req.handle.as_str())).one(&s.tx).await?;
        let existing = match req.id {
            Some(id) => {
                let found = match id {
                    Some(id) => repo::find::<product::Entity>(s).filter(product::Column::Id.eq(id)).one(&s.tx).await?,
                    None => None,
                };
                let Some(found) = found else {
                    return Ok(Err(vec![UserError::not_found(&["input", "id"], "product")]));
                };
                if by_handle.as_ref().is_some_and(|o| o.id != found.id) {
                    return Ok(Err(vec![UserError::new(
                        &["input", "handle"],
                        UserErrorCode::Taken,
                        "handle is used by another product",
                    )]));
                }
                Some(found)
            }
            None => by_handle,
        };
        let now = repo::now();
        let product = match existing {
            Some(e) => {
                let mut am: product::ActiveModel = e.into();
                am.handle = Set(req.handle.clone());
                am.title = Set(req.title.trim().to_owned());
                am.category = Set(req.category.clone());
                am.status = Set(req.status.clone());
                am.updated_at = Set(now);
                am.update(&s.tx).await?
            }
            None => {
                let m = product::Model {
                    tenant_id: s.tenant(),
                    id: Uuid::now_v7(),
                    title: req.title.trim().to_owned(),
                    handle: req.handle.clone(),
                    category: req.category.clone(),
                    status: req.status.clone(),
                    created_at: now,
                    updated_at: now,
                };
                product::Entity::insert(product::ActiveModel::from(m.clone())).exec_without_returning(&s.tx).await?;
                m
            }
        };
        for (i, v) in req.variants.iter().enumerate() {
            match lookup::variant_by_sku(s, &v.sku).await? {
                Some(e) if e.product_id != product.id => {
                    return Ok(Err(vec![UserError::new(
                        &["input", "variants", &i.to_string(), "sku"],
                        UserErrorCode::Taken,
                        "sku belongs to another product",
                    )]));
                }
                Some(e) => {
                    let mut am: variant::ActiveModel = e.into();
                    am.title = Set(v.title.clone());
                    am.price = Set(Dec(v.price));
                    am.currency = Set(v.currency.clone());
                    am.unit_volume = Set(v.unit_volume);
                    am.updated_at = Set(now);
                    am.update(&s.tx).await?;
                }
                None => {
                    variant::Entity::insert(variant::ActiveModel {
                        tenant_id: Set(s.tenant()),
                        id: Set(Uuid::now_v7()),
                        product_id: Set(product.id),
                        sku: Set(v.sku.clone()),
                        title: Set(v.title.clone()),
                        price: Set(Dec(v.price)),
                        currency: Set(v.currency.clone()),
                        created_at: Set(now),
                        updated_at: Set(now),
                        unit_volume: Set(v.unit_volume),
                    })
                    .exec_without_returning(&s.tx)
                    .await?;
                }
            }
        }
        Ok(Ok(product))
    })
}

pub struct SupplierItemUpsert {
    pub sku: String,
    pub unit_cost: Decimal,
    pub moq: i32,
    pub pack_size: i32,
    pub lead_time_mean_days: Option<Decimal>,
    pub lead_time_std_days: Option<Decimal>,
    /// All-units breaks above the first unit, ascending by quantity.
    pub price_breaks: Vec<PriceBreak>,
}

/// From `min_qty` units in one order on, every unit costs `unit_cost`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PriceBreak {
    pub min_qty: i32,
    pub unit_cost: Decimal,
}

/// Each variant's cheapest supplier item (the first listed on a tie).
pub fn cheapest_items(items: &[supplier_item::Model]) -> std::collections::HashMap<Uuid, &supplier_item::Model> {
    let mut out: std::collections::HashMap<Uuid, &supplier_item::Model> = std::collections::HashMap::new();
    for i in items {
        let best = out.entry(i.variant_id).or_insert(i);
        if i.unit_cost.0 < best.unit_cost.0 {
            *best = i;
        }
    }
    out
}

/// The most price breaks one supplier item may have.
pub const MAX_PRICE_BREAKS: usize = 20;

/// The stored breaks of a supplier item (none when the column holds anything else).
pub fn price_breaks(item: &supplier_item::Model) -> Vec<PriceBreak> {
    serde_json::from_value(item.price_breaks.clone()).unwrap_or_default()
}

pub struct SupplierUpsert {
    pub id: Option<Option<Uuid>>,
    pub name: String,
    pub email: Option<String>,
    pub lead_time_mean_days: Decimal,
    pub lead_time_std_days: Decimal,
    pub currency: String,
    pub items: Vec<SupplierItemUpsert>,
    pub order_line_cost: Decimal,
    pub plan_budget: Option<Decimal>,
    pub plan_capacity_units: Option<i32>,
}

#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn upsert_supplier(db: &Db, p: &Principal, req: &SupplierUpsert) -> Result<Outcome<supplier::Model>, DbErr> {
    let mut errors = Vec::new();
    if !text_ok(&req.name, 200) {
        errors.push(UserError::invalid(&["input", "name"], "name must be 1 to 200 characters"));
    }
    if req.lead_time_mean_days.is_sign_negative() || req.lead_time_mean_days > Decimal::from(3650) {
        errors.push(UserError::invalid(&["input", "leadTimeMeanDays"], "lead time must be between 0 and 3650 days"));
    }
    if req.lead_time_std_days.is_sign_negative() || req.lead_time_std_days > Decimal::from(3650) {
        errors.push(UserError::invalid(&["input", "leadTimeStdDevDays"], "spread must be between 0 and 3650 days"));
    }
    if qm_domain::types::Currency::parse(&req.currency).is_err() {
        errors.push(UserError::invalid(&["input", "currencyCode"], "currency must be a three-letter ISO code"));
    }
    if req.order_line_cost.is_sign_negative() {
        errors.push(UserError::invalid(&["input", "orderLineCost"], "order line cost must not be negative"));
    }
    if req.plan_budget.is_some_and(|b| b.is_sign_negative()) {
        errors.push(UserError::invalid(&["input", "planBudget"], "budget must not be negative"));
    }
    if req.plan_capacity_units.is_some_and(|c| c < 0) {
        errors.push(UserError::invalid(&["input", "planCapacityUnits"], "capacity must not be negative"));
    }
    for (i, it) in req.items.iter().enumerate() {
        let idx = i.to_string();
        if it.unit_cost.is_sign_negative() {
            errors.push(UserError::invalid(&["input", "items", &idx, "unitCost"], "unit cost must not be negative"));
        }
        if it.moq < 1 || it.pack_size < 1 {
            errors.push(UserError::invalid(&["input", "items", &idx, "moq"], "moq and pack size must be at least 1"));
        }
        if it.price_breaks.len() > MAX_PRICE_BREAKS {
            errors.push(UserError::invalid(
                &["input", "items", &idx, "priceBreaks"],
                format!("at most {MAX_PRICE_BREAKS} price breaks"),
            ));
        }
        let mut previous = 1;
        for (j, b) in it.price_breaks.iter().enumerate() {
            let j = j.to_string();
            if b.min_qty <= previous {
                let msg = "break quantities must be above 1 and ascending (the unit cost applies from the first unit)";
                errors.push(UserError::invalid(&["input", "items", &idx, "priceBreaks", &j, "minQuantity"], msg));
            }
            if b.unit_cost.is_sign_negative() {
                let msg = "unit cost must not be negative";
                errors.push(UserError::invalid(&["input", "items", &idx, "priceBreaks", &j, "unitCost"], msg));
            }
            previous = b.min_qty;
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    retrying!(db, p, |s| {
        let by_name =
            repo::find::<supplier::Entity>(s).filter(supplier::Column::Name.eq(req.name.trim())).one(&s.tx).await?;
        let existing = match req.id {
            Some(id) => {
                let found = match id {
                    Some(id) => lookup::supplier(s, id).await?,
                    None => None,
                };
                let Some(found) = found else {
                    return Ok(Err(vec![UserError::not_found(&["input", "id"], "supplier")]));
                };
                if by_name.as_ref().is_some_and(|o| o.id != found.id) {
                    return Ok(Err(vec![UserError::new(
                        &["input", "name"],
                        UserErrorCode::Taken,
                        "name is used by another supplier",
                    )]));
                }
                Some(found)
            }
            None => by_name,
        };
        let now = repo::now();
        let sup = match existing {
            Some(e) => {
                let mut am: supplier::ActiveModel = e.into();
                am.name = Set(req.name.trim().to_owned());
                am.email = Set(req.email.clone());
                am.lead_time_mean_days = Set(Dec(req.lead_time_mean_days));
                am.lead_time_std_days = Set(Dec(req.lead_time_std_days));
                am.currency = Set(req.currency.clone());
                am.order_line_cost = Set(Dec(req.order_line_cost));
                am.plan_budget = Set(req.plan_budget.map(Dec));
                am.plan_capacity_units = Set(req.plan_capacity_units);
                am.updated_at = Set(now);
                am.update(&s.tx).await?
            }
            None => {
                let m = supplier::Model {
                    tenant_id: s.tenant(),
                    id: Uuid::now_v7(),
                    name: req.name.trim().to_owned(),
                    email: req.email.clone(),
                    lead_time_mean_days: Dec(req.lead_time_mean_days),
                    lead_time_std_days: Dec(req.lead_time_std_days),
                    currency: req.currency.clone(),
                    created_at: now,
                    updated_at: now,
                    order_line_cost: Dec(req.order_line_cost),
                    plan_budget: req.plan_budget.map(Dec),
                    plan_capacity_units: req.plan_capacity_units,
                };
                supplier::Entity::insert(supplier::ActiveModel::from(m.clone())).exec_without_returning(&s.tx).await?;
                m
            }
        };
        for (i, it) in req.items.iter().enumerate() {
            let Some(v) = lookup::variant_by_sku(s, &it.sku).await? else {
                return Ok(Err(vec![UserError::not_found(&["input", "items", &i.to_string(), "sku"], "sku")]));
            };
            let row = supplier_item::ActiveModel {
                tenant_id: Set(s.tenant()),
                supplier_id: Set(sup.id),
                variant_id: Set(v.id),
                lead_time_mean_days: Set(Dec(it.lead_time_mean_days.unwrap_or(req.lead_time_mean_days))),
                lead_time_std_days: Set(Dec(it.lead_time_std_days.unwrap_or(req.lead_time_std_days))),
                moq: Set(it.moq),
                pack_size: Set(it.pack_size),
                unit_cost: Set(Dec(it.unit_cost)),
                currency: Set(req.currency.clone()),
                updated_at: Set(now),
                price_breaks: Set(serde_json::json!(it.price_breaks)),
            };
            supplier_item::Entity::insert(row)
                .on_conflict(
                    sea_orm::sea_query::OnConflict::columns([
                        supplier_item::Column::TenantId,
                        supplier_item::Column::SupplierId,
                        supplier_item::Column::VariantId,
                    ])
                    .update_columns([
                        supplier_item::Column::LeadTimeMeanDays,
                        supplier_item::Column::LeadTimeStdDays,
                        supplier_item::Column::Moq,
                        supplier_item::Column::PackSize,
                        supplier_item::Column::UnitCost,
                        supplier_item::Column::Currency,
                        supplier_item::Column::UpdatedAt,
                        supplier_item::Column::PriceBreaks,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(&s.tx)
                .await?;
        }
        Ok(Ok(sup))
    })
}
