//! Order allocation with `qm_domain::allocation`: which location ships each line of an order.
//!
//! A new order that names no location is allocated when it is created (`orders::create`): one
//! order is searched exactly over every line's candidate locations, on the stock available
//! then. `orderAllocate` re-allocates open orders of ours (not yet shipped, not mirrored from a
//! store, which allocates its own) as one batch: a MILP over the batch when it is small enough
//! for the solver (`SolveOptions::max_variables`; the batch's cost never rises, since its current
//! allocation is one of the program's solutions), else each order in turn on what the others
//! leave, moved only when that costs less. A line is never left unreserved.
//!
//! Costs come from `allocation_policies`: the tenant's terms (a pinned location, the split cost,
//! the share of a unit's price a stockout costs, and defaults for the locations), each
//! location's own (distance bands, handling, whether a store ships online orders). A location
//! must keep serving its forecast demand until replenished (the variant's shortest supplier lead
//! time, [`DEFAULT_LEAD_DAYS`] without one): taking units it needs costs the expected stockouts.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;
use qm_domain::allocation::{self as engine, Allocation, Band, Line, Order, Protection, Site};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::entities::{
    Dec, allocation_policy, daily_demand, forecast as forecast_e, location, order, order_allocation, order_line,
    reservation, stock_level, supplier_item, variant,
};
use crate::db::{Db, Scoped, TxMode, repo};
use crate::graphql::errors::{Outcome, UserError, UserErrorCode};
use crate::graphql::types::gid;
use crate::services::lookup;

/// Days a location's stock must cover when no supplier of the variant says how long it takes.
pub const DEFAULT_LEAD_DAYS: f64 = 7.0;
/// Days of history behind a demand rate when there is no forecast.
const HISTORY_DAYS: i64 = 28;
/// The most orders one `orderAllocate` re-allocates.
pub const MAX_BATCH: usize = 5_000;
/// The most any cost a policy sets may be (in the tenant's currency).
pub const MAX_AMOUNT: i64 = 1_000_000;
/// Half the earth's circumference: a band this long reaches everywhere.
const EVERYWHERE_KM: f64 = 20_100.0;

// ---------------------------------------------------------------------------------------------
// Policies

/// Terms as a policy sets them; `None` takes the tenant's value, then the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyFields {
    /// Tenant only: every order ships from this location.
    pub pinned_location_id: Option<Uuid>,
    pub split_cost: Option<Decimal>,
    pub stockout_share: Option<Decimal>,
    pub handling_per_parcel: Option<Decimal>,
    pub handling_per_unit: Option<Decimal>,
    pub ship_from_store: Option<bool>,
    pub bands: Option<Vec<Band>>,
}

/// The terms in force at one location.
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    pub split_cost: Decimal,
    pub stockout_share: Decimal,
    pub handling_per_parcel: Decimal,
    pub handling_per_unit: Decimal,
    pub ship_from_store: bool,
    pub bands: Vec<Band>,
}

/// Parcel rates by distance when no policy sets them: local, regional, national, far.
pub fn default_bands() -> Vec<Band> {
    let band = |max_km: f64, parcel: i64, unit: i64| Band {
        max_km,
        parcel: Decimal::new(parcel, 2),
        unit: Decimal::new(unit, 2),
    };
    vec![band(50.0, 450, 50), band(300.0, 650, 75), band(1_000.0, 900, 100), band(EVERYWHERE_KM, 1_400, 150)]
}

impl PolicyFields {
    pub fn of(m: &allocation_policy::Model) -> Self {
        Self {
            pinned_location_id: m.pinned_location_id,
            split_cost: m.split_cost.map(|d| d.0),
            stockout_share: m.stockout_share.map(|d| d.0),
            handling_per_parcel: m.handling_per_parcel.map(|d| d.0),
            handling_per_unit: m.handling_per_unit.map(|d| d.0),
            ship_from_store: m.ship_from_store,
            bands: m.bands.as_ref().and_then(|b| serde_json::from_value(b.clone()).ok()),
        }
    }

    fn over(&self, wider: &PolicyFields) -> PolicyFields {
        PolicyFields {
            pinned_location_id: self.pinned_location_id.or(wider.pinned_location_id),
            split_cost: self.split_cost.or(wider.split_cost),
            stockout_share: self.stockout_share.or(wider.stockout_share),
            handling_per_parcel: self.handling_per_parcel.or(wider.handling_per_parcel),
            handling_per_unit: self.handling_per_unit.or(wider.handling_per_unit),
            ship_from_store: self.ship_from_store.or(wider.ship_from_store),
            bands: self.bands.clone().or_else(|| wider.bands.clone()),
        }
    }

    /// The terms, with the defaults where unset. Stores ship online orders unless a policy says
    /// otherwise (as a store's location does in the commerce platforms).
    pub fn terms(&self) -> Terms {
        Terms {
            split_cost: self.split_cost.unwrap_or(Decimal::new(400, 2)),
            stockout_share: self.stockout_share.unwrap_or(Decimal::new(30, 2)),
            handling_per_parcel: self.handling_per_parcel.unwrap_or(Decimal::new(150, 2)),
            handling_per_unit: self.handling_per_unit.unwrap_or(Decimal::new(25, 2)),
            ship_from_store: self.ship_from_store.unwrap_or(true),
            bands: self.bands.clone().unwrap_or_else(default_bands),
        }
    }

    /// What is wrong with these fields, each error naming its input field.
    pub fn validate(&self, tenant_scope: bool) -> Vec<UserError> {
        let mut errors = Vec::new();
        let out_of = |d: Option<Decimal>, max: i64| d.is_some_and(|d| d < Decimal::ZERO || d > Decimal::from(max));
        for (name, value, max) in [
            ("splitCost", self.split_cost, MAX_AMOUNT),
            ("stockoutShare", self.stockout_share, 100),
            ("handlingPerParcel", self.handling_per_parcel, MAX_AMOUNT),
            ("handlingPerUnit", self.handling_per_unit, MAX_AMOUNT),
        ] {
            if out_of(value, max) {
                errors.push(UserError::invalid(&["input", name], format!("{name} is 0 to {max}")));
            }
        }
        if !tenant_scope && self.pinned_location_id.is_some() {
            errors.push(UserError::invalid(
                &["input", "pinnedLocationId"],
                "a pinned location is the tenant's setting: leave locationId out",
            ));
        }
        if let Some(bands) = &self.bands {
            if bands.is_empty() || bands.len() > 20 {
                errors.push(UserError::invalid(&["input", "bands"], "1 to 20 distance bands"));
            }
            for (i, b) in bands.iter().enumerate() {
                let at = i.to_string();
                if !(b.max_km.is_finite() && b.max_km > 0.0) || (i > 0 && b.max_km <= bands[i - 1].max_km) {
                    errors.push(UserError::invalid(
                        &["input", "bands", &at, "maxKm"],
                        "bands are nearest first, each reaching farther than the one before",
                    ));
                }
                if out_of(Some(b.parcel), MAX_AMOUNT) || out_of(Some(b.unit), MAX_AMOUNT) {
                    errors.push(UserError::invalid(&["input", "bands", &at], format!("rates are 0 to {MAX_AMOUNT}")));
                }
            }
        }
        errors
    }
}

/// The tenant's policies: the tenant's first, then the locations'.
pub async fn policies(s: &Scoped) -> Result<Vec<allocation_policy::Model>, DbErr> {
    repo::find::<allocation_policy::Entity>(s).order_by_asc(allocation_policy::Column::ScopeKey).all(&s.tx).await
}

/// The tenant's terms and each location's.
struct Policies {
    tenant: PolicyFields,
    locations: HashMap<Uuid, PolicyFields>,
}

impl Policies {
    async fn load(s: &Scoped) -> Result<Self, DbErr> {
        let mut out = Policies { tenant: PolicyFields::default(), locations: HashMap::new() };
        for row in policies(s).await? {
            if row.scope_key.is_empty() {
                out.tenant = PolicyFields::of(&row);
            } else if let Ok(id) = row.scope_key.parse() {
                out.locations.insert(id, PolicyFields::of(&row));
            }
        }
        Ok(out)
    }

    fn at(&self, location: Uuid) -> Terms {
        self.locations.get(&location).map_or_else(|| self.tenant.clone(), |l| l.over(&self.tenant)).terms()
    }
}

/// Sets the tenant's policy (`location` `None`) or a location's, replacing its fields.
pub async fn upsert_policy(
    db: &Db,
    p: &Principal,
    location: Option<Option<Uuid>>,
    fields: PolicyFields,
) -> Result<Outcome<allocation_policy::Model>, DbErr> {
    let errors = fields.validate(location.is_none());
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let key = match lookup::location_scope(&s, location).await? {
        Ok(k) => k,
        Err(e) => return Ok(Err(vec![e])),
    };
    if let Some(pin) = fields.pinned_location_id
        && lookup::location(&s, pin).await?.is_none()
    {
        return Ok(Err(vec![UserError::not_found(&["input", "pinnedLocationId"], "location")]));
    }
    let existing = repo::find::<allocation_policy::Entity>(&s)
        .filter(allocation_policy::Column::ScopeKey.eq(key.clone()))
        .one(&s.tx)
        .await?;
    let row = allocation_policy::Model {
        tenant_id: s.tenant(),
        id: existing.as_ref().map_or_else(Uuid::now_v7, |e| e.id),
        scope_key: key,
        pinned_location_id: fields.pinned_location_id,
        split_cost: fields.split_cost.map(Dec),
        stockout_share: fields.stockout_share.map(Dec),
        handling_per_parcel: fields.handling_per_parcel.map(Dec),
        handling_per_unit: fields.handling_per_unit.map(Dec),
        ship_from_store: fields.ship_from_store,
        bands: fields.bands.as_ref().map(|b| json!(b)),
        updated_by: p.subject.clone(),
        updated_at: repo::now(),
    };
    let am = allocation_policy::ActiveModel::from(row.clone());
    if existing.is_some() {
        sea_orm::ActiveModelTrait::update(sea_orm::ActiveModelTrait::reset_all(am), &s.tx).await?;
    } else {
        allocation_policy::Entity::insert(am).exec_without_returning(&s.tx).await?;
    }
    s.commit().await?;
    Ok(Ok(row))
}

// ---------------------------------------------------------------------------------------------
// The network an allocation sees

/// Where an order takes delivery: its `shipTo`'s `latitude` and `longitude`, when valid.
pub fn ship_to_point(ship_to: Option<&serde_json::Value>) -> Option<(f64, f64)> {
    let num = |k: &str| ship_to.and_then(|s| s.get(k)).and_then(serde_json::Value::as_f64);
    let (lat, lon) = (num("latitude")?, num("longitude")?);
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

/// The locations as allocation sites for some variants: terms, available stock (plus what the
/// orders being re-allocated hold there) and the demand each must keep serving.
struct Network {
    sites: Vec<Site>,
    locations: Vec<location::Model>,
    split_cost: Decimal,
    pinned: Option<Uuid>,
    skus: HashMap<Uuid, String>,
}

impl Network {
    fn site_of(&self, location: Uuid) -> Option<usize> {
        self.locations.iter().position(|l| l.id == location)
    }
}

async fn network(s: &Scoped, variants: &[Uuid], held: &HashMap<(Uuid, Uuid), i64>) -> Result<Network, DbErr> {
    let policies = Policies::load(s).await?;
    let mut locations = repo::find::<location::Entity>(s).all(&s.tx).await?;
    // Ties go to warehouses, then by code.
    locations.sort_by(|a, b| (a.kind == "store", &a.code).cmp(&(b.kind == "store", &b.code)));
    let found = repo::find_in::<variant::Entity, _>(s, variant::Column::Id, variants.to_vec(), "uuid", &[]).await?;
    let skus: HashMap<Uuid, String> = found.iter().map(|v| (v.id, v.sku.clone())).collect();
    let prices: HashMap<Uuid, Decimal> = found.iter().map(|v| (v.id, v.price.0)).collect();
    let levels =
        repo::find_in::<stock_level::Entity, _>(s, stock_level::Column::VariantId, variants.to_vec(), "uuid", &[])
            .await?;
    let rates = demand_rates(s, variants).await?;
    let lead = lead_days(s, variants).await?;
    let mut sites = Vec::with_capacity(locations.len());
    for l in &locations {
        let terms = policies.at(l.id);
        let (lat, lon, bands) = match (l.latitude, l.longitude) {
            (Some(lat), Some(lon)) => (lat, lon, terms.bands.clone()),
            // Unknown distance: the farthest band's rates, wherever the order goes.
            _ => (0.0, 0.0, terms.bands.last().map(|b| Band { max_km: f64::MAX, ..b.clone() }).into_iter().collect()),
        };
        let mut stock = BTreeMap::new();
        let mut protect = BTreeMap::new();
        for level in levels.iter().filter(|x| x.location_id == l.id) {
            let Some(sku) = skus.get(&level.variant_id) else { continue };
            let own = held.get(&(level.variant_id, l.id)).copied().unwrap_or(0);
            let available = (level.on_hand - level.reserved + own).max(0);
            stock.insert(sku.clone(), u32::try_from(available).unwrap_or(u32::MAX));
            let rate = rates.get(&(level.variant_id, l.id)).copied().unwrap_or(0.0);
            if rate > 0.0 {
                let days = lead.get(&level.variant_id).copied().unwrap_or(DEFAULT_LEAD_DAYS);
                let price = prices.get(&level.variant_id).copied().unwrap_or_default();
                protect.insert(
                    sku.clone(),
                    Protection { demand: rate * days, stockout_cost: (price * terms.stockout_share).round_dp(4) },
                );
            }
        }
        sites.push(Site {
            id: l.id.to_string(),
            lat,
            lon,
            store: l.kind == "store",
            ship_from_store: terms.ship_from_store,
            handling_per_parcel: terms.handling_per_parcel,
            handling_per_unit: terms.handling_per_unit,
            bands,
            stock,
            protect,
        });
    }
    let tenant = policies.tenant.terms();
    Ok(Network { sites, locations, split_cost: tenant.split_cost, pinned: policies.tenant.pinned_location_id, skus })
}

/// Units a day each variant sells at each location: the stored forecast's mean over the next
/// days where there is one, else the last [`HISTORY_DAYS`] days' average.
pub(crate) async fn demand_rates(s: &Scoped, variants: &[Uuid]) -> Result<HashMap<(Uuid, Uuid), f64>, DbErr> {
    let today = repo::now().date_naive();
    let mut out = HashMap::new();
    let rows: Vec<(Uuid, Uuid, i32)> = repo::find::<daily_demand::Entity>(s)
        .select_only()
        .column(daily_demand::Column::VariantId)
        .column(daily_demand::Column::LocationId)
        .column(daily_demand::Column::Units)
        .filter(daily_demand::Column::VariantId.is_in(variants.iter().copied()))
        .filter(daily_demand::Column::Day.gte(today - Duration::days(HISTORY_DAYS)))
        .filter(daily_demand::Column::Day.lt(today))
        .into_tuple()
        .all(&s.tx)
        .await?;
    for (v, l, units) in rows {
        *out.entry((v, l)).or_insert(0.0) += f64::from(units.max(0)) / HISTORY_DAYS as f64;
    }
    let forecasts =
        repo::find_in::<forecast_e::Entity, _>(s, forecast_e::Column::VariantId, variants.to_vec(), "uuid", &[])
            .await?;
    for f in forecasts {
        let point = crate::services::forecast::point_of(&f);
        let from = usize::try_from((today - f.first_day).num_days()).unwrap_or(0);
        let ahead: Vec<f64> = point.iter().skip(from).take(HISTORY_DAYS as usize).copied().collect();
        if !ahead.is_empty() {
            out.insert((f.variant_id, f.location_id), ahead.iter().sum::<f64>() / ahead.len() as f64);
        }
    }
    Ok(out)
}

/// Each variant's shortest supplier lead time in days.
async fn lead_days(s: &Scoped, variants: &[Uuid]) -> Result<HashMap<Uuid, f64>, DbErr> {
    let mut out: HashMap<Uuid, f64> = HashMap::new();
    let items =
        repo::find_in::<supplier_item::Entity, _>(s, supplier_item::Column::VariantId, variants.to_vec(), "uuid", &[])
            .await?;
    for i in items {
        let days = i.lead_time_mean_days.0.to_f64().unwrap_or(DEFAULT_LEAD_DAYS).max(0.0);
        out.entry(i.variant_id).and_modify(|d| *d = d.min(days)).or_insert(days);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Allocating

/// One line to allocate.
pub struct Wanted {
    pub variant_id: Uuid,
    pub quantity: i64,
}

/// An order's allocation: the location of each line and what it costs.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub locations: Vec<Uuid>,
    pub allocation: Allocation,
    pub method: &'static str,
    pub from_store: bool,
}

fn order_of(id: String, lines: &[Wanted], net: &Network, point: Option<(f64, f64)>) -> Order {
    let (lat, lon) = point.unwrap_or((0.0, 0.0));
    Order {
        id,
        lines: lines
            .iter()
            .map(|l| Line {
                sku: net.skus.get(&l.variant_id).cloned().unwrap_or_default(),
                quantity: u32::try_from(l.quantity).unwrap_or(u32::MAX),
            })
            .collect(),
        lat,
        lon,
        pinned: net.pinned.map(|p| p.to_string()),
    }
}

/// Sites for an order without coordinates: every band reaches it at the farthest band's rates.
fn sites_without_point(sites: &[Site]) -> Vec<Site> {
    sites
        .iter()
        .map(|s| Site {
            bands: s.bands.last().map(|b| Band { max_km: f64::MAX, ..b.clone() }).into_iter().collect(),
            ..s.clone()
        })
        .collect()
}

fn chosen(net: &Network, a: Allocation, method: &'static str) -> Option<Chosen> {
    let mut locations = Vec::with_capacity(a.lines.len());
    for site in &a.lines {
        let id: Uuid = site.as_ref()?.parse().ok()?;
        locations.push(id);
    }
    let from_store = locations.iter().any(|l| net.locations.iter().any(|x| x.id == *l && x.kind == "store"));
    Some(Chosen { locations, allocation: a, method, from_store })
}

/// Allocates one order on the stock available now (plus `held`, what it holds itself): the
/// cheapest location per line, `None` when some line has no location that can ship it.
pub async fn choose(
    s: &Scoped,
    lines: &[Wanted],
    ship_to: Option<&serde_json::Value>,
    held: &HashMap<(Uuid, Uuid), i64>,
) -> Result<Option<Chosen>, DbErr> {
    Ok(choose_against(s, lines, ship_to, held, None).await?.0)
}

/// [`choose`], and what `current` (a location per line) costs on the same terms.
async fn choose_against(
    s: &Scoped,
    lines: &[Wanted],
    ship_to: Option<&serde_json::Value>,
    held: &HashMap<(Uuid, Uuid), i64>,
    current: Option<&[Uuid]>,
) -> Result<(Option<Chosen>, Option<Decimal>), DbErr> {
    let variants: Vec<Uuid> = lines.iter().map(|l| l.variant_id).collect();
    let net = network(s, &variants, held).await?;
    let point = ship_to_point(ship_to);
    let sites = if point.is_some() { net.sites.clone() } else { sites_without_point(&net.sites) };
    let problem = engine::Problem {
        orders: vec![order_of("order".into(), lines, &net, point)],
        sites,
        split_cost: net.split_cost,
        unfilled_cost: Decimal::from(1_000_000),
    };
    let method = if net.pinned.is_some() { "pinned" } else { "exact" };
    let was = current.and_then(|c| {
        let choice: Vec<Option<usize>> = c.iter().map(|l| net.site_of(*l)).collect();
        engine::score(&problem, &[choice]).ok().map(|p| p.cost)
    });
    let plan = match engine::greedy(&problem, &engine::SolveOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "allocation input refused");
            return Ok((None, was));
        }
    };
    Ok((plan.allocations.into_iter().next().and_then(|a| chosen(&net, a, method)), was))
}

/// Records an order's allocation (replacing an earlier one) and emits `order.allocated`.
pub async fn record(
    s: &Scoped,
    o: &order::Model,
    lines: &[order_line::Model],
    c: &Chosen,
    skus: &HashMap<Uuid, String>,
) -> Result<order_allocation::Model, DbErr> {
    let a = &c.allocation;
    let row = order_allocation::Model {
        tenant_id: s.tenant(),
        order_id: o.id,
        method: c.method.into(),
        parcels: i32::try_from(a.parcels).unwrap_or(i32::MAX),
        shipping: Dec(a.shipping),
        handling: Dec(a.handling),
        split: Dec(a.split),
        stockout_risk: Dec(a.stockout_risk),
        cost: Dec(a.cost),
        from_store: c.from_store,
        lines: json!(
            lines
                .iter()
                .zip(&c.locations)
                .map(|(l, at)| json!({ "lineId": l.id, "locationId": at }))
                .collect::<Vec<_>>()
        ),
        allocated_at: repo::now(),
    };
    order_allocation::Entity::delete_many()
        .filter(order_allocation::Column::TenantId.eq(s.tenant()))
        .filter(order_allocation::Column::OrderId.eq(o.id))
        .exec(&s.tx)
        .await?;
    order_allocation::Entity::insert(order_allocation::ActiveModel::from(row.clone()))
        .exec_without_returning(&s.tx)
        .await?;
    let data = json!({
        "orderId": gid("Order", o.id).0,
        "externalId": o.external_id,
        "method": c.method,
        "parcels": a.parcels,
        "shipping": a.shipping.to_string(),
        "handling": a.handling.to_string(),
        "split": a.split.to_string(),
        "stockoutRisk": a.stockout_risk.to_string(),
        "cost": a.cost.to_string(),
        "lines": lines.iter().zip(&c.locations).map(|(l, at)| json!({
            "sku": skus.get(&l.variant_id),
            "quantity": l.quantity,
            "locationId": gid("Location", *at).0,
        })).collect::<Vec<_>>(),
    });
    crate::events::emit(s, "order.allocated", data).await?;
    Ok(row)
}

// ---------------------------------------------------------------------------------------------
// Re-allocating open orders

/// What `orderAllocate` did.
#[derive(Debug, Default)]
pub struct Batch {
    /// The orders looked at, with their allocation now (changed or kept).
    pub allocations: Vec<order_allocation::Model>,
    /// Orders moved to other locations.
    pub changed: usize,
    /// `milp` when the batch was solved as one program, else `sequential`.
    pub method: &'static str,
    pub cost_before: Decimal,
    pub cost_after: Decimal,
}

/// An open order of ours being re-allocated.
struct Open {
    order: order::Model,
    lines: Vec<order_line::Model>,
    reservations: Vec<reservation::Model>,
}

impl Open {
    fn wanted(&self) -> Vec<Wanted> {
        self.lines.iter().map(|l| Wanted { variant_id: l.variant_id, quantity: i64::from(l.quantity) }).collect()
    }

    fn held(&self) -> HashMap<(Uuid, Uuid), i64> {
        let mut out = HashMap::new();
        for r in &self.reservations {
            *out.entry((r.variant_id, r.location_id)).or_insert(0) += i64::from(r.quantity);
        }
        out
    }

    /// The location of each line now.
    fn current(&self) -> Option<Vec<Uuid>> {
        self.lines
            .iter()
            .map(|l| self.reservations.iter().find(|r| r.order_line_id == l.id).map(|r| r.location_id))
            .collect()
    }
}

/// Re-allocates open orders: `ids` (each must be an open order of ours) or, with `None`, every one.
#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn reallocate(db: &Db, p: &Principal, ids: Option<&[Option<Uuid>]>) -> Result<Outcome<Batch>, DbErr> {
    if ids.is_some_and(|i| i.is_empty() || i.len() > MAX_BATCH) {
        return Ok(Err(vec![UserError::invalid(&["input", "orderIds"], format!("1 to {MAX_BATCH} orders"))]));
    }
    crate::services::stock::retrying!(db, p, |s| reallocate_in(s, ids).await)
}

async fn reallocate_in(s: &Scoped, ids: Option<&[Option<Uuid>]>) -> Result<Outcome<Batch>, DbErr> {
    let orders = match ids {
        Some(ids) => {
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                found.push(match id {
                    Some(id) => {
                        repo::find::<order::Entity>(s)
                            .filter(order::Column::Id.eq(*id))
                            .lock_exclusive()
                            .one(&s.tx)
                            .await?
                    }
                    None => None,
                });
            }
            let known: Vec<Uuid> = found.iter().flatten().map(|o| o.id).collect();
            let mirrored = crate::services::sync::orders::channels(s, &known).await?;
            let mut out = Vec::with_capacity(ids.len());
            let mut errors = Vec::new();
            for (i, o) in found.into_iter().enumerate() {
                let at = ["input", "orderIds", &i.to_string()];
                match o {
                    None => errors.push(UserError::not_found(&at, "order")),
                    Some(o) if mirrored.contains_key(&o.id) => errors.push(UserError::new(
                        &at,
                        UserErrorCode::InvalidState,
                        "the order is mirrored from the connected store, which allocates it",
                    )),
                    Some(o) if o.status != "reserved" => errors.push(UserError::new(
                        &at,
                        UserErrorCode::InvalidState,
                        format!("a {} order cannot be re-allocated", o.status),
                    )),
                    Some(o) => out.push(o),
                }
            }
            if !errors.is_empty() {
                return Ok(Err(errors));
            }
            out
        }
        None => {
            let open = repo::find::<order::Entity>(s)
                .filter(order::Column::Status.eq("reserved"))
                .order_by_asc(order::Column::CreatedAt)
                .lock_exclusive()
                .all(&s.tx)
                .await?;
            let ids: Vec<Uuid> = open.iter().map(|o| o.id).collect();
            let mirrored = crate::services::sync::orders::channels(s, &ids).await?;
            open.into_iter().filter(|o| !mirrored.contains_key(&o.id)).take(MAX_BATCH).collect()
        }
    };
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let mut lines: HashMap<Uuid, Vec<order_line::Model>> = HashMap::new();
    let mut reservations: HashMap<Uuid, Vec<reservation::Model>> = HashMap::new();
    for chunk in ids.chunks(500) {
        for l in
            repo::find_in::<order_line::Entity, _>(s, order_line::Column::OrderId, chunk.to_vec(), "uuid", &[]).await?
        {
            lines.entry(l.order_id).or_default().push(l);
        }
        let active = [(reservation::Column::Status, "active".into())];
        for r in
            repo::find_in::<reservation::Entity, _>(s, reservation::Column::OrderId, chunk.to_vec(), "uuid", &active)
                .await?
        {
            reservations.entry(r.order_id).or_default().push(r);
        }
    }
    let mut open: Vec<Open> = Vec::with_capacity(orders.len());
    for o in orders {
        let mut ls = lines.remove(&o.id).unwrap_or_default();
        ls.sort_by_key(|l| l.line_no);
        let rs = reservations.remove(&o.id).unwrap_or_default();
        let item = Open { order: o, lines: ls, reservations: rs };
        // Only an order whose every line is reserved in full is moved.
        let whole = item
            .lines
            .iter()
            .all(|l| item.reservations.iter().any(|r| r.order_line_id == l.id && r.quantity == l.quantity));
        if whole && !item.lines.is_empty() {
            open.push(item);
        }
    }
    let mut held: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    for o in &open {
        for (k, q) in o.held() {
            *held.entry(k).or_insert(0) += q;
        }
    }
    let mut variants: Vec<Uuid> = open.iter().flat_map(|o| o.lines.iter().map(|l| l.variant_id)).collect();
    variants.sort_unstable();
    variants.dedup();
    let net = network(s, &variants, &held).await?;
    let problem_orders: Vec<Order> = open
        .iter()
        .map(|o| {
            let point = ship_to_point(o.order.ship_to.as_ref());
            order_of(o.order.id.to_string(), &o.wanted(), &net, point)
        })
        .collect();
    // Orders without coordinates are priced as if every location were at its farthest band:
    // a batch has one set of sites, so they are re-allocated one by one below instead.
    let located: Vec<bool> = open.iter().map(|o| ship_to_point(o.order.ship_to.as_ref()).is_some()).collect();
    let current: Vec<Vec<Option<usize>>> =
        open.iter().map(|o| o.current().unwrap_or_default().into_iter().map(|l| net.site_of(l)).collect()).collect();
    let mut batch = Batch { method: "milp", ..Batch::default() };
    let batch_orders: Vec<usize> = (0..open.len()).filter(|i| located[*i]).collect();
    let problem = engine::Problem {
        orders: batch_orders.iter().map(|i| problem_orders[*i].clone()).collect(),
        sites: net.sites.clone(),
        split_cost: net.split_cost,
        unfilled_cost: Decimal::from(1_000_000),
    };
    let before = engine::score(&problem, &batch_orders.iter().map(|i| current[*i].clone()).collect::<Vec<_>>());
    let solved = tokio::task::spawn_blocking({
        let problem = problem.clone();
        move || engine::solve(&problem, &engine::SolveOptions::default())
    })
    .await
    .map_err(|e| DbErr::Custom(format!("allocation solver: {e}")))?;
    let milp = match solved {
        Ok(plan) if plan.method == engine::Method::Milp && plan.allocations.iter().all(|a| a.unfilled.is_zero()) => {
            Some(plan)
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "allocation batch refused");
            None
        }
    };
    let before = before.ok();
    let mut new: HashMap<usize, Chosen> = HashMap::new();
    match &milp {
        Some(plan) => {
            for (k, a) in plan.allocations.iter().enumerate() {
                let i = batch_orders[k];
                let kept = before.as_ref().map(|b| &b.allocations[k]);
                if kept.is_some_and(|b| b.lines == a.lines) {
                    continue;
                }
                if let Some(c) = chosen(&net, a.clone(), "milp") {
                    new.insert(i, c);
                }
            }
            // Release every move first, then reserve: the program respects stock as a whole.
            let moves: Vec<usize> = new.keys().copied().collect();
            for i in &moves {
                release(s, &open[*i]).await?;
            }
            for i in &moves {
                let c = &new[i];
                if !reserve(s, &open[*i], &c.locations).await? {
                    return Err(DbErr::Custom("allocation plan exceeds available stock".into()));
                }
            }
            for i in (0..open.len()).filter(|i| !located[*i]) {
                if let Some(c) = one_by_one(s, &open[i]).await? {
                    new.insert(i, c);
                }
            }
        }
        None => {
            batch.method = "sequential";
            for (i, o) in open.iter().enumerate() {
                if let Some(c) = one_by_one(s, o).await? {
                    new.insert(i, c);
                }
            }
        }
    }
    let skus = net.skus.clone();
    // The allocations of the orders that stay where they are, read in one go.
    let unmoved: Vec<Uuid> =
        open.iter().enumerate().filter(|(i, _)| !new.contains_key(i)).map(|(_, o)| o.order.id).collect();
    let mut kept: HashMap<Uuid, order_allocation::Model> = HashMap::new();
    for chunk in unmoved.chunks(500) {
        for a in repo::find_in::<order_allocation::Entity, _>(
            s,
            order_allocation::Column::OrderId,
            chunk.to_vec(),
            "uuid",
            &[],
        )
        .await?
        {
            kept.insert(a.order_id, a);
        }
    }
    for (i, o) in open.iter().enumerate() {
        let row = match new.get(&i) {
            Some(c) => {
                set_order_location(s, &o.order, c.locations[0]).await?;
                batch.changed += 1;
                record(s, &o.order, &o.lines, c, &skus).await?
            }
            None => match kept.remove(&o.order.id) {
                Some(r) => r,
                None => continue,
            },
        };
        batch.allocations.push(row);
    }
    batch.cost_before = before.map_or(Decimal::ZERO, |b| b.cost);
    batch.cost_after = batch.allocations.iter().map(|a| a.cost.0).sum();
    Ok(Ok(batch))
}

/// Re-allocates one order on what the others leave: released, allocated exactly, reserved again
/// (where it was when nothing cheaper is found). The new allocation, if it moved.
async fn one_by_one(s: &Scoped, o: &Open) -> Result<Option<Chosen>, DbErr> {
    let current = o.current();
    let (Some(c), was) =
        choose_against(s, &o.wanted(), o.order.ship_to.as_ref(), &o.held(), current.as_deref()).await?
    else {
        return Ok(None);
    };
    if Some(&c.locations) == current.as_ref() || was.is_some_and(|w| c.allocation.cost >= w) {
        return Ok(None);
    }
    release(s, o).await?;
    if !reserve(s, o, &c.locations).await? {
        return Err(DbErr::Custom("allocation exceeds available stock".into()));
    }
    Ok(Some(Chosen { method: "sequential", ..c }))
}

/// Releases what an open order holds (ledger `release` movements).
async fn release(s: &Scoped, o: &Open) -> Result<(), DbErr> {
    let reference = o.order.id.to_string();
    for r in &o.reservations {
        let q = i64::from(r.quantity);
        if !repo::change_stock(s, r.variant_id, r.location_id, 0, -q).await? {
            return Err(DbErr::Custom(format!("reservation {} exceeds reserved stock", r.id)));
        }
        repo::append_movement(
            s,
            repo::NewMovement {
                variant_id: r.variant_id,
                location_id: r.location_id,
                kind: "release",
                delta_on_hand: 0,
                delta_reserved: -q,
                reason: "order re-allocated",
                reference: &reference,
                idempotency_key: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// Reserves each line of `o` at its new location and moves its reservation there; false when a
/// location lacks the stock (nothing is then reserved by this call for that line).
async fn reserve(s: &Scoped, o: &Open, at: &[Uuid]) -> Result<bool, DbErr> {
    let reference = o.order.id.to_string();
    let now = repo::now();
    for (l, loc) in o.lines.iter().zip(at) {
        let q = i64::from(l.quantity);
        repo::ensure_stock_level(s, l.variant_id, *loc).await?;
        if !repo::change_stock(s, l.variant_id, *loc, 0, q).await? {
            return Ok(false);
        }
        reservation::Entity::update_many()
            .col_expr(reservation::Column::LocationId, (*loc).into())
            .col_expr(reservation::Column::UpdatedAt, now.into())
            .filter(reservation::Column::TenantId.eq(s.tenant()))
            .filter(reservation::Column::OrderLineId.eq(l.id))
            .filter(reservation::Column::Status.eq("active"))
            .exec(&s.tx)
            .await?;
        repo::append_movement(
            s,
            repo::NewMovement {
                variant_id: l.variant_id,
                location_id: *loc,
                kind: "reserve",
                delta_on_hand: 0,
                delta_reserved: q,
                reason: "order re-allocated",
                reference: &reference,
                idempotency_key: None,
            },
        )
        .await?;
    }
    Ok(true)
}

async fn set_order_location(s: &Scoped, o: &order::Model, location: Uuid) -> Result<(), DbErr> {
    if o.location_id != location {
        order::Entity::update_many()
            .col_expr(order::Column::LocationId, location.into())
            .col_expr(order::Column::UpdatedAt, repo::now().into())
            .filter(order::Column::TenantId.eq(s.tenant()))
            .filter(order::Column::Id.eq(o.id))
            .exec(&s.tx)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// KPIs

/// Allocation KPIs over the orders allocated in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Kpis {
    pub orders: u64,
    pub average_shipping_cost: Decimal,
    pub average_cost: Decimal,
    /// Orders shipped in more than one parcel, over orders.
    pub split_rate: f64,
    /// Orders a store ships (some of), over orders.
    pub ship_from_store_share: f64,
}

pub async fn kpis(
    s: &Scoped,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Kpis, DbErr> {
    let rows = repo::find::<order_allocation::Entity>(s)
        .filter(order_allocation::Column::AllocatedAt.gte(from))
        .filter(order_allocation::Column::AllocatedAt.lt(to))
        .all(&s.tx)
        .await?;
    let n = rows.len() as u64;
    let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let avg = |total: Decimal| if n == 0 { Decimal::ZERO } else { (total / Decimal::from(n)).round_dp(2) };
    Ok(Kpis {
        orders: n,
        average_shipping_cost: avg(rows.iter().map(|r| r.shipping.0).sum()),
        average_cost: avg(rows.iter().map(|r| r.cost.0).sum()),
        split_rate: share(rows.iter().filter(|r| r.parcels > 1).count()),
        ship_from_store_share: share(rows.iter().filter(|r| r.from_store).count()),
    })
}
