//! Dynamic pricing: recommendations from each variant's price response, reviewed by the merchant.
//!
//! A run (`pricing.run`, queued when a forecast run completes and by `pricingRun`) reads every
//! variant's daily demand across its locations (price, promotion, stockout), its supplier cost,
//! its stock with what is on order and in transit, the stored forecasts and the tenant's pricing
//! policies; estimates elasticities (shrunk toward each category), prices each variant within its
//! guardrails (`qm_domain::pricing`) and stores one recommendation per variant with the numbers
//! behind it. A recommendation that changes the price is `proposed` (`price.recommended`); one
//! that keeps it is `held`, with the reason. A new run supersedes the previous run's open ones.
//! Approving sets the variant's price (`price.changed`) and sends it to every store the variant
//! is linked to (`connector.price`); rejecting records the decision. Nothing changes unapproved.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use qm_domain::pricing::{self, Binding, Day, Estimate, Guardrails, Position, Priced};
use qm_domain::types::{amount_text, as_f64};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::entities::{
    Dec, price_recommendation, pricing_policy, pricing_run, product, stock_level, supplier_item, variant,
};
use crate::db::{Db, Scoped, TxMode, repo};
use crate::graphql::errors::{Outcome, UserError, UserErrorCode};
use crate::graphql::types::gid;
use crate::jobs::worker::{Handler, JobError, Registry};
use crate::jobs::{self, NewJob};
use crate::services::runs;
use crate::state::AppState;

pub const RUN: &str = "pricing.run";
/// Days a run plans for unless asked otherwise.
pub const DEFAULT_HORIZON: usize = 28;
/// Days of demand history an estimate reads (two years: a yearly season is seen twice).
const HISTORY_DAYS: u64 = 730;
/// The most recommendations one approval or rejection decides.
pub const MAX_DECISIONS: usize = 250;

pub fn register(r: Registry) -> Registry {
    r.with(RUN, RunJob)
}

// ---------------------------------------------------------------------------------------------
// Policies

/// Guardrails as a policy sets them: a field left `None` takes the wider scope's value (variant,
/// then category, then tenant, then the defaults of [`Guardrails`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyFields {
    pub min_margin: Option<Decimal>,
    pub max_change_per_step: Option<Decimal>,
    pub price_ending: Option<Decimal>,
    pub min_advertised_price: Option<Decimal>,
    pub min_expected_gain: Option<Decimal>,
    /// The end of the selling season: what is left then is worth `salvage_value` a unit.
    pub season_end: Option<NaiveDate>,
    pub salvage_value: Option<Decimal>,
}

impl PolicyFields {
    pub fn of(m: &pricing_policy::Model) -> Self {
        Self {
            min_margin: m.min_margin.map(|d| d.0),
            max_change_per_step: m.max_change_per_step.map(|d| d.0),
            price_ending: m.price_ending.map(|d| d.0),
            min_advertised_price: m.min_advertised_price.map(|d| d.0),
            min_expected_gain: m.min_expected_gain.map(|d| d.0),
            season_end: m.season_end,
            salvage_value: m.salvage_value.map(|d| d.0),
        }
    }

    /// These fields where set, `wider`'s elsewhere.
    fn over(&self, wider: &PolicyFields) -> PolicyFields {
        PolicyFields {
            min_margin: self.min_margin.or(wider.min_margin),
            max_change_per_step: self.max_change_per_step.or(wider.max_change_per_step),
            price_ending: self.price_ending.or(wider.price_ending),
            min_advertised_price: self.min_advertised_price.or(wider.min_advertised_price),
            min_expected_gain: self.min_expected_gain.or(wider.min_expected_gain),
            season_end: self.season_end.or(wider.season_end),
            salvage_value: self.salvage_value.or(wider.salvage_value),
        }
    }

    /// The guardrails, with the defaults where unset.
    pub fn guardrails(&self) -> Guardrails {
        let d = Guardrails::default();
        Guardrails {
            min_margin: self.min_margin.unwrap_or(d.min_margin),
            max_change_per_step: self.max_change_per_step.unwrap_or(d.max_change_per_step),
            price_ending: self.price_ending.or(d.price_ending),
            min_advertised_price: self.min_advertised_price.or(d.min_advertised_price),
            min_expected_gain: self.min_expected_gain.unwrap_or(d.min_expected_gain),
        }
    }
}

/// Where a policy applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tenant,
    Category(String),
    /// A variant, by SKU as asked (its id once found).
    Sku(String),
}

/// Every policy of the tenant: the tenant's, then categories and variants by key.
pub async fn policies(s: &Scoped) -> Result<Vec<pricing_policy::Model>, DbErr> {
    let mut rows = repo::find::<pricing_policy::Entity>(s).all(&s.tx).await?;
    let rank = |scope: &str| match scope {
        "tenant" => 0,
        "category" => 1,
        _ => 2,
    };
    rows.sort_by(|a, b| (rank(&a.scope), &a.scope_key).cmp(&(rank(&b.scope), &b.scope_key)));
    Ok(rows)
}

/// The policies in force, by scope.
#[derive(Debug, Default)]
struct Policies {
    tenant: PolicyFields,
    categories: HashMap<String, PolicyFields>,
    variants: HashMap<Uuid, PolicyFields>,
}

impl Policies {
    fn from_rows(rows: &[pricing_policy::Model]) -> Self {
        let mut out = Policies::default();
        for r in rows {
            let fields = PolicyFields::of(r);
            match r.scope.as_str() {
                "tenant" => out.tenant = fields,
                "category" => {
                    out.categories.insert(r.scope_key.clone(), fields);
                }
                _ => {
                    if let Ok(id) = r.scope_key.parse() {
                        out.variants.insert(id, fields);
                    }
                }
            }
        }
        out
    }

    fn for_variant(&self, variant: Uuid, category: &str) -> PolicyFields {
        let none = PolicyFields::default();
        let category = self.categories.get(category).unwrap_or(&none).over(&self.tenant);
        self.variants.get(&variant).unwrap_or(&none).over(&category)
    }
}

/// The input field of each guardrail.
fn field_of(e: &pricing::GuardrailError) -> &'static str {
    use pricing::GuardrailError as E;
    match e {
        E::MinMargin(_) => "minMargin",
        E::MaxChange(_) => "maxChangePerStep",
        E::PriceEnding(_) => "priceEnding",
        E::MinAdvertisedPrice(_) => "minAdvertisedPrice",
        E::MinExpectedGain(_) => "minExpectedGain",
    }
}

/// Sets the policy of one scope (replacing its fields; a `None` field takes the wider scope's).
pub async fn upsert_policy(
    db: &Db,
    p: &Principal,
    scope: Scope,
    fields: PolicyFields,
) -> Result<Outcome<pricing_policy::Model>, DbErr> {
    if let Err(e) = fields.guardrails().validate() {
        return Ok(Err(vec![UserError::invalid(&["input", field_of(&e)], e.to_string())]));
    }
    if fields.salvage_value.is_some_and(|v| v.is_sign_negative() && !v.is_zero()) {
        return Ok(Err(vec![UserError::invalid(&["input", "salvageValue"], "the salvage value must not be negative")]));
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let (scope_name, key) = match resolve_scope(&s, &scope).await? {
        Ok(k) => k,
        Err(e) => return Ok(Err(vec![e])),
    };
    let existing = repo::find::<pricing_policy::Entity>(&s)
        .filter(pricing_policy::Column::Scope.eq(scope_name))
        .filter(pricing_policy::Column::ScopeKey.eq(key.clone()))
        .one(&s.tx)
        .await?;
    let row = pricing_policy::Model {
        tenant_id: s.tenant(),
        id: existing.as_ref().map_or_else(Uuid::now_v7, |e| e.id),
        scope: scope_name.to_owned(),
        scope_key: key,
        min_margin: fields.min_margin.map(Dec),
        max_change_per_step: fields.max_change_per_step.map(Dec),
        price_ending: fields.price_ending.map(Dec),
        min_advertised_price: fields.min_advertised_price.map(Dec),
        min_expected_gain: fields.min_expected_gain.map(Dec),
        season_end: fields.season_end,
        salvage_value: fields.salvage_value.map(Dec),
        updated_by: p.subject.clone(),
        updated_at: repo::now(),
    };
    let am = pricing_policy::ActiveModel::from(row.clone());
    if existing.is_some() {
        sea_orm::ActiveModelTrait::update(sea_orm::ActiveModelTrait::reset_all(am), &s.tx).await?;
    } else {
        pricing_policy::Entity::insert(am).exec_without_returning(&s.tx).await?;
    }
    s.commit().await?;
    Ok(Ok(row))
}

/// Removes the policy of one scope (the wider scope's fields apply again); the policy removed,
/// `None` when the scope had none.
pub async fn delete_policy(db: &Db, p: &Principal, scope: Scope) -> Result<Outcome<Option<Uuid>>, DbErr> {
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let (scope_name, key) = match resolve_scope(&s, &scope).await? {
        Ok(k) => k,
        Err(e) => return Ok(Err(vec![e])),
    };
    let existing = repo::find::<pricing_policy::Entity>(&s)
        .filter(pricing_policy::Column::Scope.eq(scope_name))
        .filter(pricing_policy::Column::ScopeKey.eq(key))
        .one(&s.tx)
        .await?;
    if let Some(e) = &existing {
        pricing_policy::Entity::delete_many()
            .filter(pricing_policy::Column::TenantId.eq(s.tenant()))
            .filter(pricing_policy::Column::Id.eq(e.id))
            .exec(&s.tx)
            .await?;
    }
    s.commit().await?;
    Ok(Ok(existing.map(|e| e.id)))
}

/// A scope as stored: its name and key.
async fn resolve_scope(s: &Scoped, scope: &Scope) -> Result<Result<(&'static str, String), UserError>, DbErr> {
    Ok(match scope {
        Scope::Tenant => Ok(("tenant", String::new())),
        Scope::Category(c) if c.trim().is_empty() || c.len() > 255 => {
            Err(UserError::invalid(&["input", "category"], "a category is 1 to 255 characters"))
        }
        Scope::Category(c) => Ok(("category", c.trim().to_owned())),
        Scope::Sku(sku) => match crate::services::lookup::variant_by_sku(s, sku).await? {
            Some(v) => Ok(("variant", v.id.to_string())),
            None => Err(UserError::not_found(&["input", "sku"], "variant")),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Runs

/// Records a queued run and enqueues its job, in the caller's transaction. After a forecast run
/// at most one pricing run is queued for it, however often this is called.
pub async fn queue_run(
    s: &Scoped,
    by: &str,
    forecast_run_id: Option<Uuid>,
    horizon: usize,
) -> Result<Option<pricing_run::Model>, DbErr> {
    let run = pricing_run::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        status: "queued".into(),
        requested_by: by.to_owned(),
        forecast_run_id,
        horizon_days: i32::try_from(horizon).unwrap_or(i32::MAX),
        skus_total: 0,
        proposed_total: 0,
        held_total: 0,
        error: None,
        created_at: repo::now(),
        started_at: None,
        finished_at: None,
    };
    let mut job = NewJob::new(RUN, json!({ "run_id": run.id }));
    job.dedup_key = Some(match forecast_run_id {
        Some(f) => format!("{RUN}:after:{f}"),
        None => format!("{RUN}:{}", run.id),
    });
    if jobs::enqueue(s, job).await?.is_none() {
        return Ok(None);
    }
    pricing_run::Entity::insert(pricing_run::ActiveModel::from(run.clone())).exec_without_returning(&s.tx).await?;
    Ok(Some(run))
}

/// Queues a run for `horizon` days, or returns the one already queued or running.
pub async fn request_run(db: &Db, p: &Principal, horizon: usize) -> Result<Outcome<pricing_run::Model>, DbErr> {
    if !(1..=pricing::MAX_DAYS).contains(&horizon) {
        return Ok(Err(vec![UserError::invalid(
            &["input", "horizonDays"],
            format!("the horizon is 1 to {} days", pricing::MAX_DAYS),
        )]));
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    if let Some(run) = runs::active::<pricing_run::Entity>(&s).await? {
        s.commit().await?;
        return Ok(Ok(run));
    }
    let run = queue_run(&s, &p.subject, None, horizon).await?.ok_or_else(|| DbErr::Custom("run not queued".into()))?;
    s.commit().await?;
    Ok(Ok(run))
}

pub async fn recommendation_by_id(s: &Scoped, id: Uuid) -> Result<Option<price_recommendation::Model>, DbErr> {
    repo::find::<price_recommendation::Entity>(s).filter(price_recommendation::Column::Id.eq(id)).one(&s.tx).await
}

/// One variant's stock across the network.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Stock {
    on_hand: i64,
    reserved: i64,
    on_order: i64,
    in_transit: i64,
}

impl Stock {
    /// What can be sold: available on hand plus what is on its way in.
    fn sellable(&self) -> i64 {
        (self.on_hand - self.reserved).max(0) + self.on_order + self.in_transit
    }
}

/// What a run reads.
struct Gathered {
    start: NaiveDate,
    horizon: usize,
    variants: Vec<variant::Model>,
    categories: HashMap<Uuid, String>,
    unit_costs: HashMap<Uuid, Decimal>,
    stock: HashMap<Uuid, Stock>,
    /// The locations each variant sold at within the history's window.
    sold_at: HashMap<Uuid, Vec<Uuid>>,
    /// Units a day from `start`, summed over the variant's locations, where every location it
    /// sold at has a forecast.
    forecasts: HashMap<Uuid, Vec<f64>>,
    policies: Policies,
}

/// The first day of a run's history window.
fn history_from(start: NaiveDate) -> NaiveDate {
    start.checked_sub_days(Days::new(HISTORY_DAYS)).unwrap_or(start)
}

/// Everything a run reads but the demand history, which [`estimate_chunk`] reads a chunk of
/// variants at a time.
async fn gather(s: &Scoped, horizon: usize) -> Result<Gathered, DbErr> {
    use crate::db::entities::daily_demand::{Column as D, Entity as DailyDemand};
    use sea_orm::QuerySelect;
    let start = crate::services::forecast::first_day(s).await?;
    let pairs: Vec<(Uuid, Uuid)> = repo::find::<DailyDemand>(s)
        .select_only()
        .columns([D::VariantId, D::LocationId])
        .filter(D::Day.gte(history_from(start)))
        .filter(D::Day.lt(start))
        .distinct()
        .into_tuple()
        .all(&s.tx)
        .await?;
    let mut sold_at: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (v, l) in pairs {
        sold_at.entry(v).or_default().push(l);
    }

    let mut per_location: HashMap<Uuid, HashMap<Uuid, Vec<f64>>> = HashMap::new();
    for (r, point) in crate::services::forecast::with_overrides_all(s).await? {
        let Ok(offset) = usize::try_from((start - r.first_day).num_days()) else { continue };
        if offset < point.len() {
            per_location.entry(r.variant_id).or_default().insert(r.location_id, point[offset..].to_vec());
        }
    }
    let forecasts = per_location
        .into_iter()
        .filter(|(v, locs)| sold_at.get(v).is_none_or(|sold| sold.iter().all(|l| locs.contains_key(l))))
        .map(|(v, locs)| {
            let len = locs.values().map(Vec::len).min().unwrap_or(0);
            (v, (0..len).map(|t| locs.values().map(|f| f[t]).sum()).collect())
        })
        .collect();

    let items = repo::find::<supplier_item::Entity>(s).all(&s.tx).await?;
    let unit_costs: HashMap<Uuid, Decimal> =
        crate::services::catalog::cheapest_items(&items).into_iter().map(|(v, i)| (v, i.unit_cost.0)).collect();
    let mut stock: HashMap<Uuid, Stock> = HashMap::new();
    for l in repo::find::<stock_level::Entity>(s).all(&s.tx).await? {
        let st = stock.entry(l.variant_id).or_default();
        st.on_hand += l.on_hand;
        st.reserved += l.reserved;
    }
    let supply = crate::services::replenish::supply(s).await?;
    for ((v, _), q) in &supply.on_order {
        stock.entry(*v).or_default().on_order += q;
    }
    // In transit between our locations: left one, not yet at the other. Draft transfers are
    // still on hand where they are.
    for ((v, _), q) in &supply.inbound {
        stock.entry(*v).or_default().in_transit += q;
    }
    for ((v, _), q) in &supply.committed {
        stock.entry(*v).or_default().in_transit -= q;
    }
    let categories =
        repo::find::<product::Entity>(s).all(&s.tx).await?.into_iter().map(|p| (p.id, p.category)).collect();
    let mut variants = repo::find::<variant::Entity>(s).all(&s.tx).await?;
    variants.sort_by(|a, b| a.sku.cmp(&b.sku));
    let policies = Policies::from_rows(&policies(s).await?);
    Ok(Gathered { start, horizon, variants, categories, unit_costs, stock, sold_at, forecasts, policies })
}

/// Variants whose history one transaction reads and one blocking task estimates: a tenant's
/// whole history is never in memory at once.
const CHUNK: usize = 500;

/// A variant's estimate, with the last weeks of its history (the baseline of last resort).
struct Estimated {
    estimate: Estimate,
    recent: Vec<Day>,
}

/// The variants a run prices: with some sales in the window and a supplier cost.
fn priceable(g: &Gathered) -> Vec<Uuid> {
    g.variants
        .iter()
        .filter(|v| g.sold_at.contains_key(&v.id) && g.unit_costs.contains_key(&v.id))
        .map(|v| v.id)
        .collect()
}

/// Reads the demand history of `variants` (summed over their locations) and estimates each one's
/// elasticity, on a blocking thread.
async fn estimate_chunk(
    state: &AppState,
    tenant: Uuid,
    g: &Gathered,
    variants: &[Uuid],
) -> Result<Vec<(Uuid, Estimated)>, JobError> {
    let keys: Vec<(Uuid, Uuid)> =
        variants.iter().flat_map(|v| g.sold_at.get(v).into_iter().flatten().map(move |l| (*v, *l))).collect();
    let s = state.db.scoped(tenant, TxMode::Read).await?;
    let rows = crate::services::forecast::demand_history(&s, Some(&keys), history_from(g.start), g.start).await?;
    s.commit().await?;
    let mut by_day: HashMap<Uuid, BTreeMap<NaiveDate, Day>> = HashMap::new();
    for ((variant_id, _), days) in rows {
        // The query reads every pair of the chunk's variants and locations: only the chunk's.
        if !variants.contains(&variant_id) {
            continue;
        }
        let series = by_day.entry(variant_id).or_default();
        for d in days {
            // A day without a known price says nothing about the response to price.
            let Some(price) = d.price else { continue };
            let day =
                series.entry(d.day).or_insert(Day { date: d.day, quantity: 0.0, price, promo: false, stockout: false });
            day.quantity += f64::from(d.units.max(0));
            day.promo |= d.promo;
            // Sales at the other locations understate the day's demand.
            day.stockout |= d.stockout;
        }
    }
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            by_day
                .into_iter()
                .filter(|(_, days)| !days.is_empty())
                .map(|(v, days)| {
                    let days: Vec<Day> = days.into_values().collect();
                    let estimate = pricing::estimate(&days);
                    let recent = days[days.len().saturating_sub(RECENT_DAYS)..].to_vec();
                    (v, Estimated { estimate, recent })
                })
                .collect()
        })
    })
    .await
    .map_err(|e| JobError::Retry(format!("pricing task: {e}")))
}

/// Days of history kept beside an estimate (enough for the recent mean of four weeks without
/// stockouts).
const RECENT_DAYS: usize = 56;

/// A recommendation ready to store.
struct RecOut {
    variant_id: Uuid,
    sku: String,
    currency: String,
    current_price: Decimal,
    unit_cost: Decimal,
    priced: Priced,
    elasticity: Option<f64>,
    elasticity_se: Option<f64>,
    confidence: &'static str,
    reason: String,
    explanation: serde_json::Value,
}

impl RecOut {
    fn proposed(&self) -> bool {
        self.priced.recommendation.price != self.current_price
    }
}

/// An estimate of money (the model's), to the cent: `3432.00`, not `3432`.
fn money(v: f64) -> String {
    amount_text(pricing::to_price(v))
}

/// The recommendation's reason in a sentence.
fn sentence(r: &Priced, est: &Estimate, current: Decimal, fields: &PolicyFields, g: &Guardrails, stock: i64) -> String {
    let rec = &r.recommendation;
    let guard = match rec.binding {
        Binding::ProfitOptimum => "the most profitable price".to_owned(),
        Binding::MaxChangePerStep => {
            format!("limited to a change of {} % a step", (g.max_change_per_step * Decimal::ONE_HUNDRED).normalize())
        }
        Binding::MinMargin => {
            format!("held up by the minimum margin of {} %", (g.min_margin * Decimal::ONE_HUNDRED).normalize())
        }
        Binding::MinAdvertisedPrice => {
            format!("held up by the minimum advertised price {}", g.min_advertised_price.unwrap_or_default())
        }
        Binding::Stock => format!("priced to sell the {stock} units on hand and on their way, not more"),
        Binding::SeasonEnd => format!(
            "marked down to sell before the season ends on {}",
            fields.season_end.map_or_else(String::new, |d| d.to_string())
        ),
        Binding::PriceEnding => format!("the nearest price ending in {}", g.price_ending.unwrap_or_default()),
        Binding::MinExpectedGain => format!(
            "a change would add less than {} % to expected profit",
            (g.min_expected_gain * Decimal::ONE_HUNDRED).normalize()
        ),
        Binding::LowConfidence => match &est.shortfall {
            Some(why) => format!("no elasticity to price on: {}", why.describe()),
            None => "no elasticity to price on".to_owned(),
        },
    };
    let elasticity = match (est.elasticity_at(as_f64(current)), est.se_at(as_f64(current))) {
        (Some(e), Some(se)) => format!(", elasticity {e:.2} ± {se:.2} ({} confidence)", est.confidence.as_str()),
        _ => String::new(),
    };
    if rec.price == current {
        format!(
            "Keep {current}: {guard}; over {} days expect {:.0} units and {} gross profit{elasticity}",
            r.days,
            rec.current.units,
            money(rec.current.profit)
        )
    } else {
        let change = (rec.price - current) / current * Decimal::ONE_HUNDRED;
        format!(
            "{current} → {} ({:+.1} %), {guard}: over {} days expected units {:.0} → {:.0}, gross profit {} → {}{elasticity}",
            rec.price,
            change,
            r.days,
            rec.current.units,
            rec.recommended.units,
            money(rec.current.profit),
            money(rec.recommended.profit)
        )
    }
}

/// Shrinks the estimates toward their categories and prices each variant: pure computing, off
/// the async runtime.
fn compute(g: &Gathered, mut estimated: HashMap<Uuid, Estimated>) -> Vec<RecOut> {
    // Only variants with a cost (the margin guardrail needs it) and some sales history.
    let mut priced: Vec<(&variant::Model, Vec<Day>, Decimal)> = Vec::new();
    let mut estimates: Vec<Estimate> = Vec::new();
    for v in &g.variants {
        let (Some(e), Some(cost)) = (estimated.remove(&v.id), g.unit_costs.get(&v.id)) else { continue };
        priced.push((v, e.recent, *cost));
        estimates.push(e.estimate);
    }
    let category = |v: &variant::Model| g.categories.get(&v.product_id).map_or("", String::as_str);
    let cats: Vec<Option<&str>> = priced.iter().map(|(v, _, _)| Some(category(v)).filter(|c| !c.is_empty())).collect();
    pricing::shrink(&mut estimates, &cats);
    priced
        .iter()
        .zip(&estimates)
        .map(|((v, history, unit_cost), est)| {
            let fields = g.policies.for_variant(v.id, category(v));
            let guardrails = fields.guardrails();
            let stock = g.stock.get(&v.id).copied().unwrap_or_default();
            let position = Position {
                current_price: v.price.0,
                unit_cost: *unit_cost,
                stock: stock.sellable() as f64,
                salvage_value: fields.salvage_value.unwrap_or_default(),
                season_end: fields.season_end,
            };
            let forecast = g.forecasts.get(&v.id).map(Vec::as_slice);
            let priced = pricing::price_sku(est, history, &position, g.start, g.horizon, forecast, &guardrails);
            let current = as_f64(v.price.0);
            let reason = sentence(&priced, est, v.price.0, &fields, &guardrails, stock.sellable());
            let explanation = json!({
                "elasticity": est.elasticity_at(current),
                "elasticitySe": est.se_at(current),
                "ownElasticity": est.own.map(|o| o.0),
                "ownElasticitySe": est.own.map(|o| o.1),
                "categoryWeight": est.category_weight,
                "category": category(v),
                "curvature": est.curvature,
                "confidence": est.confidence.as_str(),
                "shortfall": est.shortfall,
                "daysOfHistory": est.days,
                "baseline": priced.baseline.as_str(),
                "startsOn": g.start.to_string(),
                "days": priced.days,
                "unitCost": unit_cost.to_string(),
                "stock": {
                    "onHand": stock.on_hand,
                    "reserved": stock.reserved,
                    "onOrder": stock.on_order,
                    "inTransit": stock.in_transit,
                    "sellable": stock.sellable(),
                },
                "guardrails": {
                    "minMargin": guardrails.min_margin.to_string(),
                    "maxChangePerStep": guardrails.max_change_per_step.to_string(),
                    "priceEnding": guardrails.price_ending.map(|d| d.to_string()),
                    "minAdvertisedPrice": guardrails.min_advertised_price.map(|d| d.to_string()),
                    "minExpectedGain": guardrails.min_expected_gain.to_string(),
                    "seasonEnd": fields.season_end.map(|d| d.to_string()),
                    "salvageValue": fields.salvage_value.map(|d| d.to_string()),
                },
                "binding": priced.recommendation.binding.as_str(),
                "reason": priced.reason,
            });
            RecOut {
                variant_id: v.id,
                sku: v.sku.clone(),
                currency: v.currency.clone(),
                current_price: v.price.0,
                unit_cost: *unit_cost,
                elasticity: est.elasticity_at(current),
                elasticity_se: est.se_at(current),
                confidence: est.confidence.as_str(),
                priced,
                reason,
                explanation,
            }
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct RunPayload {
    run_id: Uuid,
}

struct RunJob;

#[async_trait::async_trait]
impl Handler for RunJob {
    async fn run(&self, state: &AppState, job: &crate::db::entities::job::Model) -> Result<(), JobError> {
        let payload: RunPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad pricing.run payload: {e}")))?;
        let Some(run) = runs::begin::<pricing_run::Entity>(&state.db, job.tenant_id, payload.run_id).await? else {
            return Ok(());
        };
        let horizon = usize::try_from(run.horizon_days).unwrap_or(DEFAULT_HORIZON).clamp(1, pricing::MAX_DAYS);
        let s = state.db.scoped(job.tenant_id, TxMode::Read).await?;
        let gathered = gather(&s, horizon).await?;
        s.commit().await?;
        let skus_total = gathered.variants.len();
        let mut estimated = HashMap::new();
        for chunk in priceable(&gathered).chunks(CHUNK) {
            estimated.extend(estimate_chunk(state, job.tenant_id, &gathered, chunk).await?);
        }
        let span = tracing::Span::current();
        let recs = tokio::task::spawn_blocking(move || span.in_scope(|| compute(&gathered, estimated)))
            .await
            .map_err(|e| JobError::Retry(format!("pricing task: {e}")))?;
        // One transaction stores the recommendations, supersedes the previous run's open ones and
        // completes the run, so a retry starts clean and a reader never sees two open sets.
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        price_recommendation::Entity::delete_many()
            .filter(price_recommendation::Column::TenantId.eq(s.tenant()))
            .filter(price_recommendation::Column::RunId.eq(run.id))
            .exec(&s.tx)
            .await?;
        price_recommendation::Entity::update_many()
            .filter(price_recommendation::Column::TenantId.eq(s.tenant()))
            .filter(price_recommendation::Column::Status.is_in(["proposed", "held"]))
            .col_expr(price_recommendation::Column::Status, Expr::value("superseded"))
            .exec(&s.tx)
            .await?;
        let now = repo::now();
        let rows: Vec<price_recommendation::Model> = recs
            .iter()
            .map(|r| {
                let rec = &r.priced.recommendation;
                price_recommendation::Model {
                    tenant_id: s.tenant(),
                    id: Uuid::now_v7(),
                    run_id: run.id,
                    variant_id: r.variant_id,
                    sku: r.sku.clone(),
                    status: if r.proposed() { "proposed" } else { "held" }.into(),
                    current_price: Dec(r.current_price),
                    recommended_price: Dec(rec.price),
                    currency: r.currency.clone(),
                    unit_cost: Some(Dec(r.unit_cost)),
                    elasticity: r.elasticity,
                    elasticity_se: r.elasticity_se,
                    confidence: r.confidence.into(),
                    expected_units_current: rec.current.units,
                    expected_units_recommended: rec.recommended.units,
                    expected_profit_current: Dec(pricing::to_price(rec.current.profit)),
                    expected_profit_recommended: Dec(pricing::to_price(rec.recommended.profit)),
                    binding: rec.binding.as_str().into(),
                    reason: r.reason.clone(),
                    explanation: r.explanation.clone(),
                    decided_by: None,
                    decided_at: None,
                    created_at: now,
                }
            })
            .collect();
        for chunk in rows.chunks(200) {
            price_recommendation::Entity::insert_many(
                chunk.iter().cloned().map(price_recommendation::ActiveModel::from),
            )
            .exec_without_returning(&s.tx)
            .await?;
        }
        let proposed = rows.iter().filter(|r| r.status == "proposed").count();
        for r in rows.iter().filter(|r| r.status == "proposed") {
            crate::events::emit(&s, "price.recommended", recommendation_event(r)).await?;
        }
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let completed = runs::finishing::<pricing_run::Entity>(&s, run.id, "completed")
            .col_expr(pricing_run::Column::SkusTotal, Expr::value(count(skus_total)))
            .col_expr(pricing_run::Column::ProposedTotal, Expr::value(count(proposed)))
            .col_expr(pricing_run::Column::HeldTotal, Expr::value(count(rows.len() - proposed)))
            .exec(&s.tx)
            .await?;
        if completed.rows_affected == 0 {
            // Failed as stale meanwhile: nothing of it is kept (the transaction is dropped).
            tracing::warn!(run = %run.id, "pricing run no longer running; its recommendations are not kept");
            return Ok(());
        }
        s.commit().await?;
        tracing::info!(run = %run.id, proposed, held = rows.len() - proposed, "pricing run completed");
        Ok(())
    }

    async fn dead(&self, state: &AppState, job: &crate::db::entities::job::Model, error: &str) -> Result<(), JobError> {
        if let Ok(payload) = serde_json::from_value::<RunPayload>(job.payload.clone()) {
            runs::job_died::<pricing_run::Entity>(&state.db, job.tenant_id, payload.run_id, error).await?;
        }
        Ok(())
    }
}

fn recommendation_event(r: &price_recommendation::Model) -> serde_json::Value {
    json!({
        "priceRecommendationId": gid("PriceRecommendation", r.id).0,
        "pricingRunId": gid("PricingRun", r.run_id).0,
        "variantId": gid("Variant", r.variant_id).0,
        "sku": r.sku,
        "currentPrice": r.current_price.0.to_string(),
        "recommendedPrice": r.recommended_price.0.to_string(),
        "currencyCode": r.currency,
        "binding": r.binding,
        "expectedProfitChange": (r.expected_profit_recommended.0 - r.expected_profit_current.0).to_string(),
        "expectedProfitCurrent": r.expected_profit_current.0.to_string(),
        "expectedProfitRecommended": r.expected_profit_recommended.0.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Decisions

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    fn status(self) -> &'static str {
        match self {
            Self::Approve => "approved",
            Self::Reject => "rejected",
        }
    }
}

/// Approves or rejects proposed recommendations, all or none. Approving sets each variant's
/// price (`price.changed`) and queues sending it to the stores the variant is linked to. Deciding
/// again the same way returns the recommendations as they are, changing nothing.
pub async fn decide(
    db: &Db,
    p: &Principal,
    ids: &[Option<Uuid>],
    decision: Decision,
) -> Result<Outcome<Vec<price_recommendation::Model>>, DbErr> {
    if ids.is_empty() || ids.len() > MAX_DECISIONS {
        return Ok(Err(vec![UserError::invalid(
            &["input", "ids"],
            format!("give 1 to {MAX_DECISIONS} recommendation IDs"),
        )]));
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let known: Vec<Uuid> = ids.iter().flatten().copied().collect();
    let found: HashMap<Uuid, price_recommendation::Model> =
        repo::find_in::<price_recommendation::Entity, _>(&s, price_recommendation::Column::Id, known, "uuid", &[])
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
    let variant_ids: Vec<Uuid> = found.values().map(|r| r.variant_id).collect();
    let variants: HashMap<Uuid, variant::Model> =
        repo::find_in::<variant::Entity, _>(&s, variant::Column::Id, variant_ids, "uuid", &[])
            .await?
            .into_iter()
            .map(|v| (v.id, v))
            .collect();
    let mut errors = Vec::new();
    let mut chosen: Vec<&price_recommendation::Model> = Vec::new();
    let mut to_decide: Vec<&price_recommendation::Model> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let at = i.to_string();
        let field = ["input", "ids", at.as_str()];
        let Some(r) = id.and_then(|id| found.get(&id)) else {
            errors.push(UserError::not_found(&field, "price recommendation"));
            continue;
        };
        chosen.push(r);
        let state = |m: &str| UserError::new(&field, UserErrorCode::InvalidState, m);
        match r.status.as_str() {
            s if s == decision.status() => {}
            "proposed" => match (decision, variants.get(&r.variant_id)) {
                (Decision::Approve, None) => errors.push(state("the variant no longer exists")),
                (Decision::Approve, Some(v)) if v.price.0 != r.current_price.0 => errors.push(state(&format!(
                    "the price changed to {} since this recommendation (from {}): run pricing again",
                    v.price.0, r.current_price.0
                ))),
                _ => to_decide.push(r),
            },
            "held" => errors.push(state("it keeps the current price: there is nothing to decide")),
            "superseded" => errors.push(state("a newer pricing run replaced it")),
            other => errors.push(state(&format!("it was {other} already"))),
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let now = repo::now();
    let ids_decided: Vec<Uuid> = to_decide.iter().map(|r| r.id).collect();
    if !ids_decided.is_empty() {
        let done = price_recommendation::Entity::update_many()
            .filter(price_recommendation::Column::TenantId.eq(s.tenant()))
            .filter(price_recommendation::Column::Id.is_in(ids_decided.clone()))
            .filter(price_recommendation::Column::Status.eq("proposed"))
            .col_expr(price_recommendation::Column::Status, Expr::value(decision.status()))
            .col_expr(price_recommendation::Column::DecidedBy, Expr::value(p.subject.clone()))
            .col_expr(price_recommendation::Column::DecidedAt, Expr::value(now))
            .exec(&s.tx)
            .await?;
        // Another request decided some of them since they were read (PostgreSQL re-checks the
        // status after waiting for it): nothing here is applied, so nothing happens twice.
        if done.rows_affected != ids_decided.len() as u64 {
            return Ok(Err(vec![UserError::new(
                &["input", "ids"],
                UserErrorCode::InvalidState,
                "another request decided some of these recommendations at the same time: read them again",
            )]));
        }
    }
    if decision == Decision::Approve && !to_decide.is_empty() {
        for r in &to_decide {
            let Some(v) = variants.get(&r.variant_id) else { continue };
            let mut am: variant::ActiveModel = v.clone().into();
            am.price = Set(r.recommended_price);
            am.updated_at = Set(now);
            sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
            crate::events::emit(
                &s,
                "price.changed",
                json!({
                    "variantId": gid("Variant", v.id).0,
                    "sku": v.sku,
                    "previousPrice": r.current_price.0.to_string(),
                    "price": r.recommended_price.0.to_string(),
                    "currencyCode": v.currency,
                    "priceRecommendationId": gid("PriceRecommendation", r.id).0,
                    "changedBy": p.subject,
                }),
            )
            .await?;
        }
        let approved: Vec<(Uuid, Uuid, Uuid, Decimal)> = to_decide
            .iter()
            .filter_map(|r| Some((r.id, r.variant_id, variants.get(&r.variant_id)?.product_id, r.recommended_price.0)))
            .collect();
        crate::services::sync::prices::queue_prices(&s, &approved).await?;
    }
    let out: Vec<price_recommendation::Model> = match recommendations_by_id(&s, &chosen).await? {
        Some(v) => v,
        None => return Err(DbErr::Custom("a decided recommendation vanished".into())),
    };
    s.commit().await?;
    Ok(Ok(out))
}

/// `chosen` as stored now, in the same order.
async fn recommendations_by_id(
    s: &Scoped,
    chosen: &[&price_recommendation::Model],
) -> Result<Option<Vec<price_recommendation::Model>>, DbErr> {
    let ids: Vec<Uuid> = chosen.iter().map(|r| r.id).collect();
    let now: HashMap<Uuid, price_recommendation::Model> =
        repo::find_in::<price_recommendation::Entity, _>(s, price_recommendation::Column::Id, ids, "uuid", &[])
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
    Ok(chosen.iter().map(|r| now.get(&r.id).cloned()).collect())
}

/// The latest approved recommendation of each of `variants`: what a store should show.
pub async fn latest_approved(s: &Scoped, variants: &[Uuid]) -> Result<HashMap<Uuid, Uuid>, DbErr> {
    let rows = repo::find::<price_recommendation::Entity>(s)
        .filter(price_recommendation::Column::VariantId.is_in(variants.to_vec()))
        .filter(price_recommendation::Column::Status.eq("approved"))
        .order_by_asc(price_recommendation::Column::DecidedAt)
        .order_by_asc(price_recommendation::Column::Id)
        .all(&s.tx)
        .await?;
    Ok(rows.into_iter().map(|r| (r.variant_id, r.id)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: i64, scale: u32) -> Option<Decimal> {
        Some(Decimal::new(v, scale))
    }

    #[test]
    fn the_narrowest_scope_wins_field_by_field() {
        let variant = Uuid::now_v7();
        let row = |scope: &str, key: &str, f: PolicyFields| pricing_policy::Model {
            tenant_id: Uuid::nil(),
            id: Uuid::now_v7(),
            scope: scope.into(),
            scope_key: key.into(),
            min_margin: f.min_margin.map(Dec),
            max_change_per_step: f.max_change_per_step.map(Dec),
            price_ending: f.price_ending.map(Dec),
            min_advertised_price: f.min_advertised_price.map(Dec),
            min_expected_gain: f.min_expected_gain.map(Dec),
            season_end: f.season_end,
            salvage_value: f.salvage_value.map(Dec),
            updated_by: "t".into(),
            updated_at: repo::now(),
        };
        let policies = Policies::from_rows(&[
            row("tenant", "", PolicyFields { min_margin: d(20, 2), price_ending: d(99, 2), ..Default::default() }),
            row(
                "category",
                "Apparel",
                PolicyFields { min_margin: d(30, 2), max_change_per_step: d(5, 2), ..Default::default() },
            ),
            row("variant", &variant.to_string(), PolicyFields { max_change_per_step: d(15, 2), ..Default::default() }),
        ]);
        let g = policies.for_variant(variant, "Apparel").guardrails();
        assert_eq!(
            (g.min_margin, g.max_change_per_step, g.price_ending),
            (Decimal::new(30, 2), Decimal::new(15, 2), d(99, 2))
        );
        let other = policies.for_variant(Uuid::now_v7(), "Apparel").guardrails();
        assert_eq!(other.max_change_per_step, Decimal::new(5, 2));
        let elsewhere = policies.for_variant(Uuid::now_v7(), "Home").guardrails();
        assert_eq!(
            (elsewhere.min_margin, elsewhere.max_change_per_step, elsewhere.min_expected_gain),
            (Decimal::new(20, 2), Guardrails::default().max_change_per_step, Guardrails::default().min_expected_gain)
        );
    }

    #[test]
    fn amounts_in_reasons_keep_their_cents() {
        assert_eq!((money(3432.0), money(0.5), money(12.004)), ("3432.00".into(), "0.50".into(), "12.00".into()));
    }

    #[test]
    fn sellable_stock_counts_what_is_on_its_way_and_not_what_is_promised() {
        let st = Stock { on_hand: 10, reserved: 4, on_order: 5, in_transit: 2 };
        assert_eq!(st.sellable(), 13);
        assert_eq!(Stock { on_hand: 1, reserved: 4, ..Default::default() }.sellable(), 0);
    }
}
