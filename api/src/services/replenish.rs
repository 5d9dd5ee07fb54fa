//! Replenishment: what to buy and what to move, and the purchase orders and transfers that follow.
//!
//! A run (`replenish.run`, queued when a forecast run completes and by `replenishmentRun`) reads
//! every forecast SKU × location with its stock, open purchase orders (draft ones included: they
//! are approved plans), transfers on their way, reservations and supplier terms; sets each one's
//! order-up-to level for the tenant's fill-rate target (`qm_domain::replenish::policy`), plans
//! purchases and transfers across the network (`qm_domain::replenish::plan`) and stores the lines,
//! each with its reason and the numbers behind it. Approving lines makes draft purchase orders
//! (one per supplier and location) and draft transfers; issuing, receiving, shipping and receiving
//! transfers are separate steps, so a merchant reviews before anything leaves.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Days;
use qm_domain::forecast::sd_from_band;
use qm_domain::replenish::calibrate::{Calibration, Outlook, calibrate, calibration_window};
use qm_domain::replenish::plan::{
    self, Lane, LineKind, LocationLimits, Need, Offer, PlanInput, PlanOptions, PriceBreak, SupplierLimits,
};
use qm_domain::replenish::sim::{self, Stocking};
use qm_domain::replenish::{AbcClass, Policy, PolicyInput, ServiceTarget, abc_classes, order_for, policy};
use qm_domain::types::amount_text;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::entities::{
    Dec, location, purchase_order, purchase_order_line, replenishment_lane, replenishment_line, replenishment_run,
    replenishment_settings, replenishment_sku_target, stock_level, supplier, supplier_item, transfer, variant,
};
use crate::db::{Db, Scoped, TxMode, repo};
use crate::graphql::errors::{Outcome, UserError, UserErrorCode};
use crate::graphql::replenish::SpreadCalibration;
use crate::graphql::types::gid;
use crate::jobs::worker::{Handler, JobError, Registry};
use crate::jobs::{self, NewJob};
use crate::services::forecast::{self as forecasting, quantile_of};
use crate::services::stock::{MAX_UNITS, OnHandChange, change_on_hand, check_key, retrying};
use crate::services::{catalog, runs};
use crate::state::AppState;

pub const RUN: &str = "replenish.run";
/// The service target of a tenant without settings: a 95 % fill rate.
pub const DEFAULT_TARGET: f64 = 0.95;
/// Days between two plans (one a night, after the forecast).
const REVIEW_DAYS: f64 = 1.0;
/// What moving one unit between two locations costs without settings, in the SKU's currency.
pub fn default_transfer_unit_cost() -> Decimal {
    Decimal::new(50, 2)
}
/// Days of forecast that value an item for its ABC class.
const ABC_DAYS: usize = 28;
/// The run calibrates its policy's spread on the reviews of this many days before today...
const CALIBRATION_DAYS: usize = 28;
/// ...on the series with at least this many days of history before them, an even sample of at
/// most [`CALIBRATION_SERIES`] (the factor is pooled over them: a sample teaches it as well, and
/// keeps a large tenant's run bounded in time and memory).
const CALIBRATION_HISTORY_DAYS: usize = 56;
const CALIBRATION_SERIES: usize = 500;

/// A tenant's service targets: by default, per ABC class, per SKU; and the cost of a transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub fill_rate: bool,
    pub target: f64,
    pub class_targets: [Option<f64>; 3],
    pub transfer_unit_cost: Decimal,
    /// Per variant.
    pub sku_targets: HashMap<Uuid, f64>,
    /// The cost of moving a unit from one location to another, where it is not `transfer_unit_cost`.
    pub lane_costs: BTreeMap<(Uuid, Uuid), Decimal>,
    /// The most one plan spends across all suppliers.
    pub plan_budget: Option<Decimal>,
}

impl Settings {
    fn from_row(
        row: Option<replenishment_settings::Model>,
        skus: Vec<replenishment_sku_target::Model>,
        lanes: Vec<replenishment_lane::Model>,
    ) -> Settings {
        let sku_targets = skus.into_iter().map(|t| (t.variant_id, t.target_service_level)).collect();
        let lane_costs = lanes.into_iter().map(|l| ((l.from_location_id, l.to_location_id), l.unit_cost.0)).collect();
        match row {
            Some(r) => Settings {
                fill_rate: r.service_level_kind != "cycle",
                target: r.target_service_level,
                class_targets: [r.class_a_target, r.class_b_target, r.class_c_target],
                transfer_unit_cost: r.transfer_unit_cost.0,
                sku_targets,
                lane_costs,
                plan_budget: r.plan_budget.map(|b| b.0),
            },
            None => Settings {
                fill_rate: true,
                target: DEFAULT_TARGET,
                class_targets: [None; 3],
                transfer_unit_cost: default_transfer_unit_cost(),
                sku_targets,
                lane_costs,
                plan_budget: None,
            },
        }
    }

    /// The target of a variant of ABC class `class`, and where it comes from.
    fn target_for(&self, variant: Uuid, class: AbcClass) -> (f64, TargetSource) {
        if let Some(t) = self.sku_targets.get(&variant) {
            return (*t, TargetSource::Sku);
        }
        let i = match class {
            AbcClass::A => 0,
            AbcClass::B => 1,
            AbcClass::C => 2,
        };
        match self.class_targets[i] {
            Some(t) => (t, TargetSource::Class(class)),
            None => (self.target, TargetSource::Default),
        }
    }

    /// What moving one unit from `from` to `to` costs.
    fn lane_cost(&self, from: Uuid, to: Uuid) -> Decimal {
        self.lane_costs.get(&(from, to)).copied().unwrap_or(self.transfer_unit_cost)
    }

    fn kind(&self) -> &'static str {
        if self.fill_rate { "fill rate" } else { "cycle service level" }
    }
}

/// Which setting gave a SKU its service target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetSource {
    Sku,
    Class(AbcClass),
    Default,
}

impl TargetSource {
    /// As the line's explanation names it.
    fn as_str(self) -> &'static str {
        match self {
            TargetSource::Sku => "sku",
            TargetSource::Class(AbcClass::A) => "class A",
            TargetSource::Class(AbcClass::B) => "class B",
            TargetSource::Class(AbcClass::C) => "class C",
            TargetSource::Default => "tenant",
        }
    }
}

/// The tenant's settings (the defaults until set).
pub async fn settings(s: &Scoped) -> Result<Settings, DbErr> {
    let row = repo::find::<replenishment_settings::Entity>(s).one(&s.tx).await?;
    let skus = repo::find::<replenishment_sku_target::Entity>(s).all(&s.tx).await?;
    let lanes = repo::find::<replenishment_lane::Entity>(s).all(&s.tx).await?;
    Ok(Settings::from_row(row, skus, lanes))
}

/// `0.955` as `95.5`, `0.95` as `95`.
fn percent(level: f64) -> String {
    one_decimal(100.0 * level)
}

/// `2.14` as `2.1`, `7.0` as `7`.
fn one_decimal(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_owned)
}

fn valid_level(v: f64) -> bool {
    v > 0.0 && v < 1.0
}

/// Replaces the tenant's service targets and transfer cost.
pub async fn set_settings(db: &Db, p: &Principal, new: &Settings) -> Result<Outcome<Settings>, DbErr> {
    if !valid_level(new.target) {
        return Ok(Err(vec![UserError::invalid(
            &["input", "targetServiceLevel"],
            "the target must be strictly between 0 and 1 (e.g. 0.95)",
        )]));
    }
    for (t, name) in new.class_targets.iter().zip(["classATarget", "classBTarget", "classCTarget"]) {
        if t.is_some_and(|t| !valid_level(t)) {
            return Ok(Err(vec![UserError::invalid(&["input", name], "the target must be strictly between 0 and 1")]));
        }
    }
    if new.transfer_unit_cost.is_sign_negative() && !new.transfer_unit_cost.is_zero() {
        return Ok(Err(vec![UserError::invalid(&["input", "transferUnitCost"], "the cost must not be negative")]));
    }
    if new.plan_budget.is_some_and(|b| b.is_sign_negative() && !b.is_zero()) {
        return Ok(Err(vec![UserError::invalid(&["input", "planBudget"], "the budget must not be negative")]));
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let row = replenishment_settings::Model {
        tenant_id: s.tenant(),
        service_level_kind: if new.fill_rate { "fill_rate" } else { "cycle" }.into(),
        target_service_level: new.target,
        class_a_target: new.class_targets[0],
        class_b_target: new.class_targets[1],
        class_c_target: new.class_targets[2],
        transfer_unit_cost: Dec(new.transfer_unit_cost),
        updated_at: repo::now(),
        plan_budget: new.plan_budget.map(Dec),
    };
    use sea_orm::sea_query::OnConflict;
    replenishment_settings::Entity::insert(replenishment_settings::ActiveModel::from(row))
        .on_conflict(
            OnConflict::column(replenishment_settings::Column::TenantId)
                .update_columns([
                    replenishment_settings::Column::ServiceLevelKind,
                    replenishment_settings::Column::TargetServiceLevel,
                    replenishment_settings::Column::ClassATarget,
                    replenishment_settings::Column::ClassBTarget,
                    replenishment_settings::Column::ClassCTarget,
                    replenishment_settings::Column::TransferUnitCost,
                    replenishment_settings::Column::UpdatedAt,
                    replenishment_settings::Column::PlanBudget,
                ])
                .to_owned(),
        )
        .exec_without_returning(&s.tx)
        .await?;
    let out = settings(&s).await?;
    s.commit().await?;
    Ok(Ok(out))
}

/// Sets (or with `None` removes) the cost of moving a unit from one location to another; lanes
/// without their own cost use the tenant's `transfer_unit_cost`.
pub async fn set_lane_cost(
    db: &Db,
    p: &Principal,
    from: Option<Uuid>,
    to: Option<Uuid>,
    cost: Option<Decimal>,
) -> Result<Outcome<Settings>, DbErr> {
    if cost.is_some_and(|c| c.is_sign_negative() && !c.is_zero()) {
        return Ok(Err(vec![UserError::invalid(&["input", "unitCost"], "the cost must not be negative")]));
    }
    if from.is_some() && from == to {
        return Ok(Err(vec![UserError::invalid(&["input", "toLocationId"], "a lane joins two different locations")]));
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let mut ends = Vec::with_capacity(2);
    for (id, field) in [(from, "fromLocationId"), (to, "toLocationId")] {
        match id {
            Some(id) if crate::services::lookup::location(&s, id).await?.is_some() => ends.push(id),
            _ => return Ok(Err(vec![UserError::not_found(&["input", field], "location")])),
        }
    }
    let (from, to) = (ends[0], ends[1]);
    replenishment_lane::Entity::delete_many()
        .filter(replenishment_lane::Column::TenantId.eq(s.tenant()))
        .filter(replenishment_lane::Column::FromLocationId.eq(from))
        .filter(replenishment_lane::Column::ToLocationId.eq(to))
        .exec(&s.tx)
        .await?;
    if let Some(c) = cost {
        let row = replenishment_lane::Model {
            tenant_id: s.tenant(),
            from_location_id: from,
            to_location_id: to,
            unit_cost: Dec(c),
            updated_at: repo::now(),
        };
        replenishment_lane::Entity::insert(replenishment_lane::ActiveModel::from(row))
            .exec_without_returning(&s.tx)
            .await?;
    }
    let out = settings(&s).await?;
    s.commit().await?;
    Ok(Ok(out))
}

/// Sets (or with `None` removes) the service target of one SKU.
pub async fn set_sku_target(
    db: &Db,
    p: &Principal,
    sku: &str,
    target: Option<f64>,
) -> Result<Outcome<Settings>, DbErr> {
    if target.is_some_and(|t| !valid_level(t)) {
        return Ok(Err(vec![UserError::invalid(
            &["input", "targetServiceLevel"],
            "the target must be strictly between 0 and 1 (e.g. 0.98)",
        )]));
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let Some(variant) = crate::services::lookup::variant_by_sku(&s, sku).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "sku"], "variant")]));
    };
    replenishment_sku_target::Entity::delete_many()
        .filter(replenishment_sku_target::Column::TenantId.eq(s.tenant()))
        .filter(replenishment_sku_target::Column::VariantId.eq(variant.id))
        .exec(&s.tx)
        .await?;
    if let Some(t) = target {
        let row = replenishment_sku_target::Model {
            tenant_id: s.tenant(),
            variant_id: variant.id,
            target_service_level: t,
            updated_at: repo::now(),
        };
        replenishment_sku_target::Entity::insert(replenishment_sku_target::ActiveModel::from(row))
            .exec_without_returning(&s.tx)
            .await?;
    }
    let out = settings(&s).await?;
    s.commit().await?;
    Ok(Ok(out))
}
/// Purchase orders that can still receive goods: issued, acknowledged or shipped by the
/// supplier, partly received.
pub const RECEIVABLE_PO: [&str; 4] = ["issued", "acknowledged", "shipped", "partially_received"];
/// Purchase orders whose open quantities count as on order: approved (draft) and receivable.
pub const OPEN_PO: [&str; 5] = ["draft", "issued", "acknowledged", "shipped", "partially_received"];
pub fn register(r: Registry) -> Registry {
    r.with(RUN, RunJob)
}

/// Records a queued run and enqueues its job, in the caller's transaction. After a forecast run
/// at most one replenishment run is queued for it, however often this is called.
pub async fn queue_run(
    s: &Scoped,
    by: &str,
    forecast_run_id: Option<Uuid>,
) -> Result<Option<replenishment_run::Model>, DbErr> {
    let run = replenishment_run::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        status: "queued".into(),
        requested_by: by.to_owned(),
        forecast_run_id,
        method: None,
        cost: None,
        objective: None,
        lower_bound: None,
        lines_total: 0,
        series_total: 0,
        short_total: 0,
        error: None,
        created_at: repo::now(),
        started_at: None,
        finished_at: None,
        calibration: None,
    };
    let mut job = NewJob::new(RUN, json!({ "run_id": run.id }));
    job.dedup_key = Some(match forecast_run_id {
        Some(f) => format!("{RUN}:after:{f}"),
        None => format!("{RUN}:{}", run.id),
    });
    if jobs::enqueue(s, job).await?.is_none() {
        return Ok(None);
    }
    replenishment_run::Entity::insert(replenishment_run::ActiveModel::from(run.clone()))
        .exec_without_returning(&s.tx)
        .await?;
    Ok(Some(run))
}

/// Queues a run, or returns the one already queued or running.
pub async fn request_run(db: &Db, p: &Principal) -> Result<replenishment_run::Model, DbErr> {
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    if let Some(run) = runs::active::<replenishment_run::Entity>(&s).await? {
        s.commit().await?;
        return Ok(run);
    }
    let run = queue_run(&s, &p.subject, None).await?.ok_or_else(|| DbErr::Custom("run not queued".into()))?;
    s.commit().await?;
    Ok(run)
}

pub async fn lines_of(s: &Scoped, run_id: Uuid) -> Result<Vec<replenishment_line::Model>, DbErr> {
    repo::find::<replenishment_line::Entity>(s)
        .filter(replenishment_line::Column::RunId.eq(run_id))
        .order_by_asc(replenishment_line::Column::Sku)
        .order_by_asc(replenishment_line::Column::Id)
        .all(&s.tx)
        .await
}

/// Stock on its way, per variant × location.
pub struct Supply {
    /// Open quantities of open purchase orders (draft ones included: they are approved plans).
    pub on_order: HashMap<(Uuid, Uuid), i64>,
    /// Transfers to a location not yet received (draft or in transit).
    pub inbound: HashMap<(Uuid, Uuid), i64>,
    /// Draft transfers out of a location (approved, not yet shipped: still on hand there).
    pub committed: HashMap<(Uuid, Uuid), i64>,
}

/// Stock on order and in transfer.
pub async fn supply(s: &Scoped) -> Result<Supply, DbErr> {
    let pos: HashMap<Uuid, purchase_order::Model> = repo::find::<purchase_order::Entity>(s)
        .filter(purchase_order::Column::Status.is_in(OPEN_PO))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let mut on_order: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    if !pos.is_empty() {
        let lines = repo::find::<purchase_order_line::Entity>(s)
            .filter(purchase_order_line::Column::PurchaseOrderId.is_in(pos.keys().copied().collect::<Vec<_>>()))
            .all(&s.tx)
            .await?;
        for l in lines {
            if let Some(po) = pos.get(&l.purchase_order_id) {
                *on_order.entry((l.variant_id, po.location_id)).or_default() +=
                    i64::from((l.quantity - l.received_quantity).max(0));
            }
        }
    }
    let mut inbound: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    let mut committed: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    for t in repo::find::<transfer::Entity>(s)
        .filter(transfer::Column::Status.is_in(["draft", "in_transit"]))
        .all(&s.tx)
        .await?
    {
        *inbound.entry((t.variant_id, t.to_location_id)).or_default() += i64::from(t.quantity);
        if t.status == "draft" {
            *committed.entry((t.variant_id, t.from_location_id)).or_default() += i64::from(t.quantity);
        }
    }
    Ok(Supply { on_order, inbound, committed })
}

/// What a run reads.
struct Gathered {
    series: Vec<SeriesIn>,
    stock: HashMap<(Uuid, Uuid), (i64, i64)>,
    on_order: HashMap<(Uuid, Uuid), i64>,
    /// Transfers to a location not yet received (draft or in transit).
    inbound: HashMap<(Uuid, Uuid), i64>,
    /// Draft transfers out of a location (approved, not yet shipped).
    committed: HashMap<(Uuid, Uuid), i64>,
    items: Vec<supplier_item::Model>,
    suppliers: HashMap<Uuid, supplier::Model>,
    variants: HashMap<Uuid, variant::Model>,
    locations: HashMap<Uuid, location::Model>,
    settings: Settings,
    /// The latest forecast model and the series' demand histories, to calibrate the spread.
    past: Option<Past>,
}

struct Past {
    model: std::sync::Arc<forecasting::RunModel>,
    series: Vec<forecasting::Series>,
}

struct SeriesIn {
    variant_id: Uuid,
    location_id: Uuid,
    demand: Vec<f64>,
    demand_sd: Vec<f64>,
}

async fn gather(state: &AppState, s: &Scoped) -> Result<Gathered, DbErr> {
    let series: Vec<SeriesIn> = forecasting::with_overrides_all(s)
        .await?
        .into_iter()
        .map(|(r, demand)| {
            let demand_sd = sd_from_band(&quantile_of(&r, "0.1"), &quantile_of(&r, "0.9"), (0.1, 0.9));
            SeriesIn { variant_id: r.variant_id, location_id: r.location_id, demand, demand_sd }
        })
        .collect();
    let stock = repo::find::<stock_level::Entity>(s)
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|l| ((l.variant_id, l.location_id), (l.on_hand, l.reserved)))
        .collect();
    let Supply { on_order, inbound, committed } = supply(s).await?;
    let items = repo::find::<supplier_item::Entity>(s).all(&s.tx).await?;
    let suppliers = repo::find::<supplier::Entity>(s).all(&s.tx).await?.into_iter().map(|x| (x.id, x)).collect();
    let variants = repo::find::<variant::Entity>(s).all(&s.tx).await?.into_iter().map(|x| (x.id, x)).collect();
    let locations = repo::find::<location::Entity>(s).all(&s.tx).await?.into_iter().map(|x| (x.id, x)).collect();
    let settings = settings(s).await?;
    let past = match forecasting::latest_model(state, s).await? {
        Some(model) => {
            // In key order, so every run samples the same series.
            let keys: BTreeSet<(Uuid, Uuid)> = series.iter().map(|sr| (sr.variant_id, sr.location_id)).collect();
            let keys = forecasting::even_sample(&keys.into_iter().collect::<Vec<_>>(), CALIBRATION_SERIES);
            let first_day = model.stored.first_day;
            let series = forecasting::load(s, &keys, first_day, model.stored.panel.horizon).await?;
            Some(Past { model, series })
        }
        None => None,
    };
    Ok(Gathered { series, stock, on_order, inbound, committed, items, suppliers, variants, locations, settings, past })
}

/// The policy's spread calibrated on the reviews of the last [`CALIBRATION_DAYS`] days
/// (`qm_domain::replenish::calibrate`): each series with enough history is forecast as the
/// review on each of those days would have (the latest run's model, the days before only), its
/// policy replayed over them on its supplier's lead time and terms, and the factor on the spread
/// of demand and lead time found with which the policy reached its target there, pooled.
/// `None` when there is no model yet, no series with the history for it, or the replay fails
/// (the run then plans with the forecast's spread as it is).
fn calibrate_spread(
    g: &Gathered,
    cheapest: &HashMap<Uuid, &supplier_item::Model>,
    target_of: &HashMap<(Uuid, Uuid), ServiceTarget>,
) -> Option<(Calibration, usize)> {
    let past = g.past.as_ref()?;
    let series: Vec<&forecasting::Series> = past
        .series
        .iter()
        .filter(|sr| {
            sr.y.len() >= CALIBRATION_DAYS + CALIBRATION_HISTORY_DAYS
                && target_of.contains_key(&(sr.variant_id, sr.location_id))
        })
        .collect();
    let demand: Vec<&[f64]> = series.iter().map(|sr| sr.y.as_slice()).collect();
    let targets: Vec<ServiceTarget> = series.iter().map(|sr| target_of[&(sr.variant_id, sr.location_id)]).collect();
    let (fill, target) = calibration_window(&demand, &targets, CALIBRATION_DAYS, 0)?;
    let stocking: Vec<Stocking> = series
        .iter()
        .map(|sr| {
            let item = cheapest.get(&sr.variant_id).copied();
            let (lead_time_mean, lead_time_sd) = lead_time(item);
            Stocking {
                lead_time_mean,
                lead_time_sd,
                review_period: REVIEW_DAYS as usize,
                moq: item.map_or(0, |i| i64::from(i.moq.max(0))),
                pack_size: item.map_or(1, |i| i64::from(i.pack_size.max(1))),
                unit_cost: item.map_or(Decimal::ZERO, |i| i.unit_cost.0),
                holding_rate: Decimal::ZERO,
                order_cost: Decimal::ZERO,
                seed: lead_time_seed(sr.variant_id, sr.location_id),
            }
        })
        .collect();
    let started = std::time::Instant::now();
    let panel = &past.model.stored.panel;
    let cfg = forecasting::config(panel.horizon);
    let mut window: Vec<Vec<Outlook>> = (0..CALIBRATION_DAYS)
        .map(|step| {
            sim::due(&stocking, step)
                .into_iter()
                .map(|i| {
                    let f = series[i].forecast_back(panel, CALIBRATION_DAYS - step, &cfg).series;
                    let band = (forecasting::QUANTILES[0], forecasting::QUANTILES[2]);
                    Outlook::from_band(i, &f.point, &f.quantiles[0], &f.quantiles[2], band)
                })
                .collect()
        })
        .collect();
    match calibrate(&demand, &stocking, &targets, CALIBRATION_DAYS, 0, fill, target, &mut window) {
        Ok(c) => {
            tracing::info!(
                factor = c.scale,
                achieved = c.achieved,
                target = c.target,
                bias = c.bias,
                series = series.len(),
                ms = started.elapsed().as_millis() as u64,
                "replenishment spread calibrated"
            );
            Some((c, series.len()))
        }
        Err(e) => {
            tracing::warn!(error = %e, "calibrating the replenishment policy's spread failed; planning with the forecast's");
            None
        }
    }
}

/// The lead time a variant's policy plans with, mean and spread in days: its cheapest supplier
/// item's, or a day without spread when it has none.
fn lead_time(item: Option<&supplier_item::Model>) -> (f64, f64) {
    item.map_or((1.0, 0.0), |i| (f(i.lead_time_mean_days), f(i.lead_time_std_days)))
}

/// Seeds a series' lead-time draws in the calibration, the same on every run.
fn lead_time_seed(variant: Uuid, location: Uuid) -> u64 {
    let (v, l) = (variant.as_u64_pair(), location.as_u64_pair());
    v.0 ^ v.1.rotate_left(17) ^ l.0.rotate_left(31) ^ l.1.rotate_left(47)
}

/// What a plan brings to one SKU × location and takes from it.
#[derive(Debug, Clone, Default)]
struct Flows {
    bought: i64,
    /// Transfers in, by the location they come from, and out, by the one they go to.
    moved_in: Vec<(Uuid, i64)>,
    moved_out: Vec<(Uuid, i64)>,
}

impl Flows {
    fn units(moves: &[(Uuid, i64)]) -> i64 {
        moves.iter().map(|(_, q)| q).sum()
    }

    fn net(&self) -> i64 {
        self.bought + Flows::units(&self.moved_in) - Flows::units(&self.moved_out)
    }
}

/// A line ready to store.
struct LineOut {
    kind: &'static str,
    variant_id: Uuid,
    sku: String,
    location_id: Uuid,
    supplier_id: Option<Uuid>,
    from_location_id: Option<Uuid>,
    quantity: i64,
    unit_cost: Decimal,
    cost: Decimal,
    currency: String,
    expected_service_level: f64,
    reason: String,
    explanation: serde_json::Value,
}

struct Planned {
    lines: Vec<LineOut>,
    method: &'static str,
    cost: Decimal,
    objective: Decimal,
    lower_bound: Option<f64>,
    series_total: usize,
    short_total: usize,
    /// How the spread was calibrated (the run's `calibration`).
    calibration: Option<SpreadCalibration>,
}

fn f(d: Dec) -> f64 {
    d.0.to_f64().unwrap_or(0.0)
}

/// One SKU × location as the plan sees it.
struct Slot {
    variant_id: Uuid,
    location_id: Uuid,
    policy: Policy,
    /// The supplier's lead time the policy planned with, mean and spread in days (before the
    /// calibrated factor).
    lead_time: (f64, f64),
    target_level: f64,
    target_from: TargetSource,
    class: AbcClass,
    on_hand: i64,
    on_order: i64,
    in_transit: i64,
    reserved: i64,
    position: i64,
    target: i64,
}

/// Policies, the plan and its lines: pure computing, off the async runtime.
fn compute(g: &Gathered) -> Result<Planned, String> {
    // Each variant's supplier items; the cheapest sets the lead time its policy plans with.
    let mut items_of: HashMap<Uuid, Vec<&supplier_item::Model>> = HashMap::new();
    for i in &g.items {
        items_of.entry(i.variant_id).or_default().push(i);
    }
    let cheapest = catalog::cheapest_items(&g.items);
    // ABC classes by forecast value over the next four weeks, per variant across locations.
    let mut value: BTreeMap<Uuid, f64> = BTreeMap::new();
    for sr in &g.series {
        let price = g.variants.get(&sr.variant_id).map_or(0.0, |v| f(v.price));
        *value.entry(sr.variant_id).or_default() += sr.demand.iter().take(ABC_DAYS).sum::<f64>() * price;
    }
    let values: Vec<f64> = value.values().copied().collect();
    let classes: HashMap<Uuid, AbcClass> = value.keys().copied().zip(abc_classes(&values)).collect();
    let class_of = |variant: Uuid| classes.get(&variant).copied().unwrap_or(AbcClass::C);
    let service = |level: f64| {
        if g.settings.fill_rate { ServiceTarget::FillRate(level) } else { ServiceTarget::Cycle(level) }
    };
    let target_of: HashMap<(Uuid, Uuid), ServiceTarget> = g
        .series
        .iter()
        .map(|sr| {
            ((sr.variant_id, sr.location_id), service(g.settings.target_for(sr.variant_id, class_of(sr.variant_id)).0))
        })
        .collect();
    let calibration = calibrate_spread(g, &cheapest, &target_of);
    let scale = calibration.map_or(1.0, |(c, _)| c.scale);
    let mut slots = Vec::with_capacity(g.series.len());
    for sr in &g.series {
        let key = (sr.variant_id, sr.location_id);
        let (on_hand, reserved) = g.stock.get(&key).copied().unwrap_or((0, 0));
        let on_order = g.on_order.get(&key).copied().unwrap_or(0);
        let in_transit = g.inbound.get(&key).copied().unwrap_or(0);
        let committed = g.committed.get(&key).copied().unwrap_or(0);
        let (lead_time_mean, lead_time_sd) = lead_time(cheapest.get(&sr.variant_id).copied());
        let input = PolicyInput {
            demand: sr.demand.clone(),
            demand_sd: sr.demand_sd.clone(),
            lead_time_mean,
            lead_time_sd,
            review_period: REVIEW_DAYS,
            on_hand,
            on_order,
            in_transit,
            reserved: reserved + committed,
            moq: 0,
            pack_size: 0,
        }
        .spread_scaled(scale);
        let class = class_of(sr.variant_id);
        let (target_level, target_from) = g.settings.target_for(sr.variant_id, class);
        let policy = policy(&input, service(target_level)).map_err(|e| e.to_string())?;
        let position = policy.explanation.inventory_position;
        let target = policy.order_up_to.ceil() as i64;
        slots.push(Slot {
            variant_id: sr.variant_id,
            location_id: sr.location_id,
            policy,
            lead_time: (lead_time_mean, lead_time_sd),
            target_level,
            target_from,
            class,
            on_hand: (on_hand - reserved - committed).max(0),
            on_order,
            in_transit,
            reserved: reserved + committed,
            position,
            target,
        });
    }
    // Dense indices for the plan.
    let mut sku_ix: BTreeMap<Uuid, usize> = BTreeMap::new();
    let mut loc_ix: BTreeMap<Uuid, usize> = BTreeMap::new();
    for sl in &slots {
        let n = sku_ix.len();
        sku_ix.entry(sl.variant_id).or_insert(n);
        let n = loc_ix.len();
        loc_ix.entry(sl.location_id).or_insert(n);
    }
    let loc_ids: Vec<Uuid> = {
        let mut v = vec![Uuid::nil(); loc_ix.len()];
        for (id, i) in &loc_ix {
            v[*i] = *id;
        }
        v
    };
    let mut supplier_ix: BTreeMap<Uuid, usize> = BTreeMap::new();
    let mut offers = Vec::new();
    let mut offer_items: Vec<&supplier_item::Model> = Vec::new();
    let needs: Vec<Need> = slots
        .iter()
        .map(|sl| Need {
            sku: sku_ix[&sl.variant_id],
            location: loc_ix[&sl.location_id],
            on_hand: sl.on_hand,
            position: sl.position,
            target: sl.target,
            unit_volume: g.variants.get(&sl.variant_id).and_then(|v| v.unit_volume).unwrap_or(0.0),
            shortfall_penalty: g.variants.get(&sl.variant_id).map_or(Decimal::ZERO, |v| v.price.0),
        })
        .collect();
    for sl in &slots {
        for &item in items_of.get(&sl.variant_id).map_or(&[][..], Vec::as_slice) {
            let n = supplier_ix.len();
            let supplier = *supplier_ix.entry(item.supplier_id).or_insert(n);
            offers.push(Offer {
                supplier,
                sku: sku_ix[&sl.variant_id],
                location: loc_ix[&sl.location_id],
                moq: i64::from(item.moq.max(0)),
                pack_size: i64::from(item.pack_size.max(1)),
                breaks: std::iter::once(PriceBreak { min_qty: 0, unit_price: item.unit_cost.0 })
                    .chain(
                        catalog::price_breaks(item)
                            .into_iter()
                            .map(|b| PriceBreak { min_qty: i64::from(b.min_qty), unit_price: b.unit_cost }),
                    )
                    .collect(),
                order_cost: g.suppliers.get(&item.supplier_id).map_or(Decimal::ZERO, |x| x.order_line_cost.0),
            });
            offer_items.push(item);
        }
    }
    let mut lanes = Vec::new();
    for from in 0..loc_ids.len() {
        for to in 0..loc_ids.len() {
            if from != to {
                lanes.push(Lane { from, to, unit_cost: g.settings.lane_cost(loc_ids[from], loc_ids[to]) });
            }
        }
    }
    let mut supplier_limits = vec![SupplierLimits::default(); supplier_ix.len()];
    for (id, &i) in &supplier_ix {
        if let Some(x) = g.suppliers.get(id) {
            supplier_limits[i] =
                SupplierLimits { budget: x.plan_budget.map(|b| b.0), capacity: x.plan_capacity_units.map(i64::from) };
        }
    }
    let locations: Vec<LocationLimits> = loc_ids
        .iter()
        .map(|id| LocationLimits { capacity: g.locations.get(id).and_then(|l| l.capacity_volume) })
        .collect();
    let input =
        PlanInput { needs, offers, lanes, suppliers: supplier_limits, locations, budget: g.settings.plan_budget };
    let planned = plan::plan(&input, PlanOptions::default()).map_err(|e| e.to_string())?;
    // What the plan brings to and takes from each need, and where it then stands.
    let need_at: HashMap<(usize, usize), usize> =
        input.needs.iter().enumerate().map(|(i, n)| ((n.sku, n.location), i)).collect();
    let mut flows = vec![Flows::default(); slots.len()];
    for l in &planned.lines {
        let here = need_at.get(&(l.sku, l.location)).copied();
        match (l.kind, here) {
            (LineKind::Buy { .. }, Some(i)) => flows[i].bought += l.quantity,
            (LineKind::Buy { .. }, None) => {}
            (LineKind::Transfer { lane }, _) => {
                let from = input.lanes[lane].from;
                if let Some(i) = here {
                    flows[i].moved_in.push((loc_ids[from], l.quantity));
                }
                if let Some(&j) = need_at.get(&(l.sku, from)) {
                    flows[j].moved_out.push((loc_ids[l.location], l.quantity));
                }
            }
        }
    }
    let after: Vec<i64> = slots.iter().zip(&flows).map(|(sl, f)| sl.position + f.net()).collect();
    let offers_at = plan::offers_at(&input);
    let spread = calibration.map_or_else(String::new, |(c, _)| {
        format!("; the forecast's and the lead time's spread ×{:.2}, as the last {} days needed", c.scale, c.periods)
    });
    let name_of = |id: Uuid| g.locations.get(&id).map_or_else(|| id.to_string(), |l| l.code.clone());
    let mut lines = Vec::with_capacity(planned.lines.len());
    for l in &planned.lines {
        let Some(&i) = need_at.get(&(l.sku, l.location)) else { continue };
        let sl = &slots[i];
        let e = &sl.policy.explanation;
        let sku = g.variants.get(&sl.variant_id).map_or_else(String::new, |v| v.sku.clone());
        let lead = match sl.lead_time {
            (mean, sd) if sd > 0.0 => format!(
                "{} ± {} days, each day counted with the chance it falls within it,",
                one_decimal(mean),
                one_decimal(sd)
            ),
            (mean, _) => format!("{} days", one_decimal(mean)),
        };
        let over = format!("a lead time of {lead} and a {}-day review", one_decimal(REVIEW_DAYS));
        let base = format!(
            "Order-up-to {} = {:.0} forecast over {:.0} days ({over}) + {:.0} safety stock for a {} % {} ({}{spread}); position {} (on hand {}, on order {}, in transit {}, reserved {})",
            sl.target,
            e.protection_demand,
            e.protection_periods,
            sl.policy.safety_stock,
            percent(sl.target_level),
            g.settings.kind(),
            match sl.target_from {
                TargetSource::Sku => "this SKU's target".to_owned(),
                TargetSource::Default => format!("class {}, the default target", sl.class.as_str()),
                TargetSource::Class(c) => format!("the class {} target", c.as_str()),
            },
            sl.position,
            sl.on_hand + sl.reserved,
            sl.on_order,
            sl.in_transit,
            sl.reserved
        );
        let need = (sl.target - sl.position).max(0);
        let f = &flows[i];
        // Units moved, and what to say of them: "from A" for one lane, ": 7 from A, 2 from B" for more.
        let moves = |v: &[(Uuid, i64)], way: &str| -> (i64, String) {
            let said = match v {
                [(at, _)] => format!(" {way} {}", name_of(*at)),
                _ => {
                    let each: Vec<String> = v.iter().map(|(at, q)| format!("{q} {way} {}", name_of(*at))).collect();
                    format!(": {}", each.join(", "))
                }
            };
            (Flows::units(v), said)
        };
        let (moved_in, moved_out) = (moves(&f.moved_in, "from"), moves(&f.moved_out, "to"));
        let mut explanation = json!({
            "spreadFactor": scale,
            "serviceLevelKind": if g.settings.fill_rate { "FILL_RATE" } else { "CYCLE" },
            "targetServiceLevel": sl.target_level,
            "targetFrom": sl.target_from.as_str(),
            "abcClass": sl.class.as_str(),
            "orderUpTo": sl.target,
            "reorderPoint": sl.policy.reorder_point,
            "safetyStock": sl.policy.safety_stock,
            "forecastOverLeadTime": e.lead_time_demand,
            "forecastOverProtection": e.protection_demand,
            "protectionDays": e.protection_periods,
            "leadTimeMeanDays": sl.lead_time.0,
            "leadTimeStdDevDays": sl.lead_time.1,
            "reviewDays": REVIEW_DAYS,
            "protectionSd": e.protection_sd,
            "z": e.z,
            "safetyFromDemand": e.safety_from_demand,
            "safetyFromLeadTime": e.safety_from_lead_time,
            "position": {
                "onHand": sl.on_hand + sl.reserved,
                "onOrder": sl.on_order,
                "inTransit": sl.in_transit,
                "reserved": sl.reserved,
                "total": sl.position,
            },
            "need": need,
            "quantity": l.quantity,
            "shortfall": planned.shortfall[i],
            "plan": {
                "bought": f.bought,
                "transferredIn": moved_in.0,
                "transferredOut": moved_out.0,
                "positionAfter": after[i],
            },
        });
        let expected = sl.policy.fill_rate_at(after[i] as f64);
        let line = match l.kind {
            LineKind::Buy { offer } => {
                let item = offer_items[offer];
                let o = &input.offers[offer];
                let supplier_name = g.suppliers.get(&item.supplier_id).map_or("the supplier", |x| x.name.as_str());
                let money = |d: Decimal| format!("{} {}", amount_text(d), item.currency);
                let mut why = format!("{base}; buy {} from {supplier_name} at {}", l.quantity, money(l.unit_cost));
                if let Some(b) = o.breaks.iter().skip(1).rfind(|b| l.quantity >= b.min_qty) {
                    why.push_str(&format!(" (the price from {} units, not {})", b.min_qty, money(item.unit_cost.0)));
                }
                let lim = input.suppliers.get(o.supplier);
                let limits: Vec<String> = [
                    lim.and_then(|x| x.budget).map(|_| format!("{supplier_name}'s plan budget")),
                    lim.and_then(|x| x.capacity).map(|_| format!("{supplier_name}'s plan capacity")),
                    input.budget.map(|_| "the plan's budget".to_owned()),
                    input
                        .locations
                        .get(o.location)
                        .and_then(|l| l.capacity)
                        .map(|_| "the location's volume".to_owned()),
                ]
                .into_iter()
                .flatten()
                .collect();
                if planned.shortfall[i] > 0 && !limits.is_empty() {
                    why.push_str(&format!(
                        "; {} short of the target within {}",
                        planned.shortfall[i],
                        limits.join(" and ")
                    ));
                }
                let rounded_need = order_for(0.0, 0.0, need as f64, o.moq, o.pack_size).quantity;
                if l.quantity > need && l.quantity <= rounded_need {
                    why.push_str(&format!(
                        " (the need of {need} rounded up to packs of {} and a minimum of {})",
                        o.pack_size, o.moq
                    ));
                }
                if moved_in.0 > 0 {
                    let verb = if moved_in.0 == 1 { "comes" } else { "come" };
                    why.push_str(&format!("; {} more {verb} by transfer{}", moved_in.0, moved_in.1));
                }
                if moved_out.0 > 0 {
                    let verb = if moved_out.0 == 1 { "goes" } else { "go" };
                    why.push_str(&format!("; {} {verb} on by transfer{}", moved_out.0, moved_out.1));
                }
                explanation["packSize"] = json!(o.pack_size);
                explanation["moq"] = json!(o.moq);
                explanation["priceBreaks"] = json!(
                    o.breaks
                        .iter()
                        .map(|b| json!({ "minQuantity": b.min_qty, "unitCost": b.unit_price.to_string() }))
                        .collect::<Vec<_>>()
                );
                LineOut {
                    kind: "buy",
                    variant_id: sl.variant_id,
                    sku,
                    location_id: sl.location_id,
                    supplier_id: Some(item.supplier_id),
                    from_location_id: None,
                    quantity: l.quantity,
                    unit_cost: l.unit_cost,
                    cost: l.cost,
                    currency: item.currency.clone(),
                    expected_service_level: expected,
                    reason: why,
                    explanation,
                }
            }
            LineKind::Transfer { lane } => {
                let from_ix = input.lanes[lane].from;
                let from = loc_ids[from_ix];
                let source =
                    need_at.get(&(l.sku, from_ix)).map(|&j| (slots[j].position - slots[j].target, flows[j].bought));
                let holding = match source {
                    Some((spare, bought)) if bought > 0 => format!(
                        "holding {} above its own order-up-to level, {} with the {bought} this plan buys for it",
                        spare.max(0),
                        (spare + bought).max(0)
                    ),
                    Some((spare, _)) => format!("holding {} above its own order-up-to level", spare.max(0)),
                    None => "which has no forecast of its own for it".to_owned(),
                };
                let buy = offers_at
                    .get(&(l.sku, l.location))
                    .and_then(|os| os.iter().map(|&o| plan::price_for(&input.offers[o], l.quantity)).min());
                let mut why = format!(
                    "{base}; move {} from {} ({holding}) at {} a unit{}",
                    l.quantity,
                    name_of(from),
                    l.unit_cost,
                    buy.map_or_else(
                        || ", no supplier sells it here".to_owned(),
                        |b| format!(" instead of buying at {b}")
                    )
                );
                if f.bought > 0 {
                    why.push_str(&format!("; {} more bought here", f.bought));
                }
                explanation["from"] = json!(gid("Location", from).0);
                explanation["transferUnitCost"] = json!(l.unit_cost.to_string());
                LineOut {
                    kind: "transfer",
                    variant_id: sl.variant_id,
                    sku,
                    location_id: sl.location_id,
                    supplier_id: None,
                    from_location_id: Some(from),
                    quantity: l.quantity,
                    unit_cost: l.unit_cost,
                    cost: l.cost,
                    currency: g.variants.get(&sl.variant_id).map_or_else(|| "USD".to_owned(), |v| v.currency.clone()),
                    expected_service_level: expected,
                    reason: why,
                    explanation,
                }
            }
        };
        lines.push(line);
    }
    // By SKU (each SKU's lines in the plan's order): the lines' ids are made in this order, so a
    // page of `replenishmentLines` (by id) lists them as the plan does.
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    Ok(Planned {
        lines,
        method: match planned.method {
            plan::Method::Milp => "milp",
            plan::Method::Greedy => "greedy",
        },
        cost: planned.cost,
        objective: planned.objective,
        lower_bound: planned.lower_bound,
        series_total: slots.len(),
        short_total: planned.shortfall.iter().filter(|s| **s > 0).count(),
        calibration: calibration.map(|(c, series)| SpreadCalibration {
            days: i32::try_from(c.periods).unwrap_or(i32::MAX),
            series: i32::try_from(series).unwrap_or(i32::MAX),
            bias: c.bias,
            factor: c.scale,
            achieved: c.achieved,
            target: c.target,
        }),
    })
}

/// Completes a run with the plan's figures: false when it is no longer running (failed as stale).
async fn complete(s: &Scoped, id: Uuid, p: &Planned) -> Result<bool, DbErr> {
    let done = runs::finishing::<replenishment_run::Entity>(s, id, "completed")
        .col_expr(replenishment_run::Column::Method, Expr::value(p.method))
        .col_expr(replenishment_run::Column::Cost, Expr::value(Dec(p.cost).to_string()))
        .col_expr(replenishment_run::Column::Objective, Expr::value(Dec(p.objective).to_string()))
        .col_expr(replenishment_run::Column::LowerBound, Expr::value(p.lower_bound))
        .col_expr(replenishment_run::Column::LinesTotal, Expr::value(i32::try_from(p.lines.len()).unwrap_or(i32::MAX)))
        .col_expr(
            replenishment_run::Column::SeriesTotal,
            Expr::value(i32::try_from(p.series_total).unwrap_or(i32::MAX)),
        )
        .col_expr(replenishment_run::Column::ShortTotal, Expr::value(i32::try_from(p.short_total).unwrap_or(i32::MAX)))
        .col_expr(
            replenishment_run::Column::Calibration,
            Expr::value(p.calibration.as_ref().and_then(|c| serde_json::to_value(c).ok())),
        )
        .exec(&s.tx)
        .await?;
    Ok(done.rows_affected > 0)
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
            .map_err(|e| JobError::Permanent(format!("bad replenish.run payload: {e}")))?;
        let Some(run) = runs::begin::<replenishment_run::Entity>(&state.db, job.tenant_id, payload.run_id).await?
        else {
            return Ok(());
        };
        let s = state.db.scoped(job.tenant_id, TxMode::Read).await?;
        let gathered = gather(state, &s).await?;
        s.commit().await?;
        let span = tracing::Span::current();
        let planned = tokio::task::spawn_blocking(move || span.in_scope(|| compute(&gathered)))
            .await
            .map_err(|e| JobError::Retry(format!("replenishment task: {e}")))?;
        // One transaction replaces the run's lines and completes it, so a retry starts clean.
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        replenishment_line::Entity::delete_many()
            .filter(replenishment_line::Column::TenantId.eq(s.tenant()))
            .filter(replenishment_line::Column::RunId.eq(run.id))
            .exec(&s.tx)
            .await?;
        match &planned {
            Ok(p) => {
                let now = repo::now();
                let rows: Vec<replenishment_line::ActiveModel> = p
                    .lines
                    .iter()
                    .map(|l| {
                        replenishment_line::ActiveModel::from(replenishment_line::Model {
                            tenant_id: s.tenant(),
                            id: Uuid::now_v7(),
                            run_id: run.id,
                            kind: l.kind.to_owned(),
                            variant_id: l.variant_id,
                            sku: l.sku.clone(),
                            location_id: l.location_id,
                            supplier_id: l.supplier_id,
                            from_location_id: l.from_location_id,
                            quantity: i32::try_from(l.quantity).unwrap_or(i32::MAX),
                            unit_cost: Dec(l.unit_cost),
                            cost: Dec(l.cost),
                            currency: l.currency.clone(),
                            expected_service_level: l.expected_service_level,
                            reason: l.reason.clone(),
                            explanation: l.explanation.clone(),
                            status: "proposed".into(),
                            purchase_order_id: None,
                            transfer_id: None,
                            approved_at: None,
                            created_at: now,
                        })
                    })
                    .collect();
                // A few hundred rows a statement, within every backend's limit on bound values.
                for chunk in rows.chunks(500) {
                    replenishment_line::Entity::insert_many(chunk.to_vec()).exec_without_returning(&s.tx).await?;
                }
                if !complete(&s, run.id, p).await? {
                    // Failed as stale meanwhile: its lines are not kept (the transaction is dropped).
                    tracing::warn!(run = %run.id, "replenishment run no longer running; its lines are not kept");
                    return Ok(());
                }
                tracing::info!(run = %run.id, lines = p.lines.len(), method = p.method, "replenishment planned");
            }
            Err(e) => {
                runs::fail::<replenishment_run::Entity>(&s, run.id, e).await?;
                tracing::warn!(run = %run.id, error = %e, "replenishment run failed");
            }
        }
        s.commit().await?;
        Ok(())
    }

    async fn dead(&self, state: &AppState, job: &crate::db::entities::job::Model, error: &str) -> Result<(), JobError> {
        if let Ok(payload) = serde_json::from_value::<RunPayload>(job.payload.clone()) {
            runs::job_died::<replenishment_run::Entity>(&state.db, job.tenant_id, payload.run_id, error).await?;
        }
        Ok(())
    }
}

/// What approving lines made.
pub struct Approved {
    pub purchase_orders: Vec<purchase_order::Model>,
    pub transfers: Vec<transfer::Model>,
}

/// Approves lines of a run (all of them when `line_ids` is `None`): buys become draft purchase
/// orders, one per supplier and location, transfers draft transfers (`transfer.created`).
/// Approving again returns what the first approval made.
pub async fn approve(
    db: &Db,
    p: &Principal,
    run_id: Option<Uuid>,
    line_ids: Option<Vec<Option<Uuid>>>,
) -> Result<Outcome<Approved>, DbErr> {
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let run = match run_id {
        Some(id) => runs::by_id::<replenishment_run::Entity>(&s, id).await?,
        None => None,
    };
    let Some(run) = run else {
        return Ok(Err(vec![UserError::not_found(&["input", "runId"], "replenishment run")]));
    };
    if run.status != "completed" {
        return Ok(Err(vec![UserError::new(
            &["input", "runId"],
            UserErrorCode::InvalidState,
            "this run has not completed",
        )]));
    }
    if runs::latest_completed::<replenishment_run::Entity>(&s).await?.is_some_and(|l| l.id != run.id) {
        return Ok(Err(vec![UserError::new(
            &["input", "runId"],
            UserErrorCode::InvalidState,
            "a newer plan exists: approve lines of the latest run",
        )]));
    }
    let all = lines_of(&s, run.id).await?;
    let chosen: Vec<&replenishment_line::Model> = match &line_ids {
        None => all.iter().collect(),
        Some(ids) => {
            let mut out = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                match id.and_then(|id| all.iter().find(|l| l.id == id)) {
                    Some(l) => out.push(l),
                    None => {
                        return Ok(Err(vec![UserError::not_found(
                            &["input", "lineIds", &i.to_string()],
                            "replenishment line",
                        )]));
                    }
                }
            }
            out
        }
    };
    let now = repo::now();
    let mut po_ids: Vec<Uuid> = chosen.iter().filter_map(|l| l.purchase_order_id).collect();
    let mut transfer_ids: Vec<Uuid> = chosen.iter().filter_map(|l| l.transfer_id).collect();
    // New purchase orders, one per supplier and location.
    let mut groups: BTreeMap<(Uuid, Uuid), Vec<&replenishment_line::Model>> = BTreeMap::new();
    for l in chosen.iter().filter(|l| l.status == "proposed" && l.kind == "buy") {
        if let Some(sup) = l.supplier_id {
            groups.entry((sup, l.location_id)).or_default().push(l);
        }
    }
    for ((supplier_id, location_id), lines) in groups {
        let id = Uuid::now_v7();
        let po = purchase_order::Model {
            tenant_id: s.tenant(),
            id,
            number: po_number(id, now),
            supplier_id,
            location_id,
            status: "draft".into(),
            currency: lines.first().map_or_else(|| "USD".into(), |l| l.currency.clone()),
            expected_on: None,
            created_at: now,
            updated_at: now,
            issued_at: None,
            contract_id: None,
            promised_on: None,
            acknowledged_at: None,
            penalty_amount: None,
            status_reason: None,
        };
        purchase_order::Entity::insert(purchase_order::ActiveModel::from(po)).exec_without_returning(&s.tx).await?;
        let po_lines: Vec<purchase_order_line::ActiveModel> = lines
            .iter()
            .map(|l| {
                purchase_order_line::ActiveModel::from(purchase_order_line::Model {
                    tenant_id: s.tenant(),
                    id: Uuid::now_v7(),
                    purchase_order_id: id,
                    variant_id: l.variant_id,
                    quantity: l.quantity,
                    received_quantity: 0,
                    unit_cost: l.unit_cost,
                })
            })
            .collect();
        purchase_order_line::Entity::insert_many(po_lines).exec_without_returning(&s.tx).await?;
        mark(&s, lines.iter().map(|l| l.id).collect(), Some(id), None).await?;
        po_ids.push(id);
    }
    for l in chosen.iter().filter(|l| l.status == "proposed" && l.kind == "transfer") {
        let Some(from) = l.from_location_id else { continue };
        let t = transfer::Model {
            tenant_id: s.tenant(),
            id: Uuid::now_v7(),
            variant_id: l.variant_id,
            from_location_id: from,
            to_location_id: l.location_id,
            quantity: l.quantity,
            status: "draft".into(),
            idempotency_key: None,
            created_at: now,
            shipped_at: None,
            received_at: None,
            status_reason: None,
            replenishment_run_id: Some(run.id),
        };
        transfer::Entity::insert(transfer::ActiveModel::from(t.clone())).exec_without_returning(&s.tx).await?;
        mark(&s, vec![l.id], None, Some(t.id)).await?;
        crate::events::emit(&s, "transfer.created", transfer_event(&t, &l.sku)).await?;
        transfer_ids.push(t.id);
    }
    po_ids.sort();
    po_ids.dedup();
    transfer_ids.sort();
    transfer_ids.dedup();
    let purchase_orders = if po_ids.is_empty() {
        Vec::new()
    } else {
        repo::find::<purchase_order::Entity>(&s)
            .filter(purchase_order::Column::Id.is_in(po_ids))
            .order_by_asc(purchase_order::Column::Id)
            .all(&s.tx)
            .await?
    };
    let transfers = if transfer_ids.is_empty() {
        Vec::new()
    } else {
        repo::find::<transfer::Entity>(&s)
            .filter(transfer::Column::Id.is_in(transfer_ids))
            .order_by_asc(transfer::Column::Id)
            .all(&s.tx)
            .await?
    };
    crate::services::contracts::evaluate::after_change(&s).await?;
    s.commit().await?;
    Ok(Ok(Approved { purchase_orders, transfers }))
}

/// Marks `lines` approved, pointing at the purchase order or transfer made of them.
async fn mark(s: &Scoped, lines: Vec<Uuid>, po: Option<Uuid>, transfer: Option<Uuid>) -> Result<(), DbErr> {
    replenishment_line::Entity::update_many()
        .filter(replenishment_line::Column::TenantId.eq(s.tenant()))
        .filter(replenishment_line::Column::Id.is_in(lines))
        .col_expr(replenishment_line::Column::Status, Expr::value("approved"))
        .col_expr(replenishment_line::Column::ApprovedAt, Expr::value(repo::now()))
        .col_expr(replenishment_line::Column::PurchaseOrderId, Expr::value(po))
        .col_expr(replenishment_line::Column::TransferId, Expr::value(transfer))
        .exec(&s.tx)
        .await?;
    Ok(())
}

fn transfer_event(t: &transfer::Model, sku: &str) -> serde_json::Value {
    json!({
        "transferId": gid("Transfer", t.id).0,
        "sku": sku,
        "fromLocationId": gid("Location", t.from_location_id).0,
        "toLocationId": gid("Location", t.to_location_id).0,
        "quantity": t.quantity,
        "status": t.status,
        "replenishmentRunId": t.replenishment_run_id.map(|r| gid("ReplenishmentRun", r).0),
    })
}

pub async fn purchase_order(s: &Scoped, id: Uuid) -> Result<Option<purchase_order::Model>, DbErr> {
    repo::find::<purchase_order::Entity>(s).filter(purchase_order::Column::Id.eq(id)).one(&s.tx).await
}

pub async fn transfer_by_id(s: &Scoped, id: Uuid) -> Result<Option<transfer::Model>, DbErr> {
    repo::find::<transfer::Entity>(s).filter(transfer::Column::Id.eq(id)).one(&s.tx).await
}

/// A purchase order read to change its status: locked for the rest of the transaction, so two
/// requests (issue and cancel, say) act one after the other on what the first left.
async fn purchase_order_for_update(s: &Scoped, id: Option<Uuid>) -> Result<Option<purchase_order::Model>, DbErr> {
    let Some(id) = id else { return Ok(None) };
    repo::find::<purchase_order::Entity>(s).filter(purchase_order::Column::Id.eq(id)).lock_exclusive().one(&s.tx).await
}

/// A transfer read to change its status, locked as [`purchase_order_for_update`].
async fn transfer_for_update(s: &Scoped, id: Option<Uuid>) -> Result<Option<transfer::Model>, DbErr> {
    let Some(id) = id else { return Ok(None) };
    repo::find::<transfer::Entity>(s).filter(transfer::Column::Id.eq(id)).lock_exclusive().one(&s.tx).await
}

/// Why a purchase order or transfer changed status (a cancellation, a supplier's rejection):
/// 1 to 1000 characters, trimmed.
pub(crate) fn status_reason(reason: &str) -> Result<&str, Vec<UserError>> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(vec![UserError::invalid(&["input", "reason"], "a reason of 1 to 1000 characters")]);
    }
    Ok(reason)
}

/// Cancels a purchase order the supplier has not shipped: a draft (nothing was sent), or an
/// issued or acknowledged order, which the supplier is told of (`purchase_order.cancelled`, and
/// the contract's ledger for an order a contract issued; a 3PL expecting the goods is told to
/// withdraw its receiving order). Its units no longer count as on order, so the next
/// replenishment run plans them again. Cancelling a cancelled order changes nothing.
pub async fn cancel_purchase_order(
    db: &Db,
    p: &Principal,
    id: Option<Uuid>,
    reason: &str,
) -> Result<Outcome<purchase_order::Model>, DbErr> {
    let reason = match status_reason(reason) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    // The ledger's lock before the order's, as supplier actions and receipts take them.
    crate::services::contracts::ledger::serialise(&s).await?;
    let Some(po) = purchase_order_for_update(&s, id).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "id"], "purchase order")]));
    };
    let told = match po.status.as_str() {
        "draft" => false,
        "issued" | "acknowledged" => true,
        "cancelled" => {
            s.commit().await?;
            return Ok(Ok(po));
        }
        other => {
            let why = match other {
                "shipped" | "partially_received" => ": receive what arrives",
                _ => "",
            };
            return Ok(Err(vec![UserError::new(
                &["input", "id"],
                UserErrorCode::InvalidState,
                format!("a {} purchase order cannot be cancelled{why}", other.replace('_', " ")),
            )]));
        }
    };
    let mut am: purchase_order::ActiveModel = po.into();
    am.status = Set("cancelled".into());
    am.status_reason = Set(Some(reason.to_owned()));
    am.updated_at = Set(repo::now());
    let po = sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
    if told {
        let mut data = crate::services::contracts::supplier::po_data(&po, &p.subject);
        data["reason"] = json!(reason);
        crate::services::contracts::supplier::record(&s, &po, "purchase_order.cancelled", "cancelled", data).await?;
        // A 3PL told to expect the goods (ShipBob's receiving order) is told they will not come.
        crate::services::sync::inbound::queue_cancel(&s, &po).await?;
    }
    s.commit().await?;
    Ok(Ok(po))
}

/// Cancels a draft transfer (approved, not shipped): its units no longer count as on their way
/// to the destination nor as spoken for at the source (`transfer.cancelled`). A shipped transfer
/// cannot be cancelled (receive it, or transfer the units back). Cancelling a cancelled transfer
/// changes nothing.
pub async fn cancel_transfer(
    db: &Db,
    p: &Principal,
    id: Option<Uuid>,
    reason: &str,
) -> Result<Outcome<transfer::Model>, DbErr> {
    let reason = match status_reason(reason) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let Some(t) = transfer_for_update(&s, id).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "id"], "transfer")]));
    };
    match t.status.as_str() {
        "draft" => {}
        "cancelled" => {
            s.commit().await?;
            return Ok(Ok(t));
        }
        other => {
            return Ok(Err(vec![UserError::new(
                &["input", "id"],
                UserErrorCode::InvalidState,
                match other {
                    "in_transit" => "a transfer in transit cannot be cancelled: receive it".to_owned(),
                    other => format!("a {other} transfer cannot be cancelled"),
                },
            )]));
        }
    }
    let mut am: transfer::ActiveModel = t.into();
    am.status = Set("cancelled".into());
    am.status_reason = Set(Some(reason.to_owned()));
    let t = sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
    let sku = crate::services::lookup::variant(&s, t.variant_id).await?.map(|v| v.sku).unwrap_or_default();
    let mut data = transfer_event(&t, &sku);
    data["by"] = json!(p.subject);
    data["reason"] = json!(reason);
    crate::events::emit(&s, "transfer.cancelled", data).await?;
    s.commit().await?;
    Ok(Ok(t))
}

/// A purchase order's number: `PO-<date>-<the id's last 8 hex digits>`.
pub fn po_number(id: Uuid, at: chrono::DateTime<chrono::Utc>) -> String {
    let simple = id.simple().to_string();
    format!("PO-{}-{}", at.format("%Y%m%d"), &simple[simple.len() - 8..]).to_uppercase()
}

/// The `purchase_order.issued` payload of `po`: its supplier, location, lines and dates.
pub async fn issued_data(s: &Scoped, po: &purchase_order::Model) -> Result<serde_json::Value, DbErr> {
    let lines = po_lines(s, po.id).await?;
    let skus = crate::services::lookup::skus(s, &lines.iter().map(|l| l.variant_id).collect::<Vec<_>>()).await?;
    Ok(json!({
        "purchaseOrderId": gid("PurchaseOrder", po.id).0,
        "number": po.number,
        "supplierId": gid("Supplier", po.supplier_id).0,
        "locationId": gid("Location", po.location_id).0,
        "contractId": po.contract_id.map(|c| gid("Contract", c).0),
        "currency": po.currency,
        "expectedOn": po.expected_on,
        "lines": lines.iter().map(|l| json!({
            "lineId": gid("PurchaseOrderLine", l.id).0,
            "sku": skus.get(&l.variant_id),
            "quantity": l.quantity,
            "unitCost": l.unit_cost.to_string(),
        })).collect::<Vec<_>>(),
    }))
}

pub async fn po_lines(s: &Scoped, po: Uuid) -> Result<Vec<purchase_order_line::Model>, DbErr> {
    repo::find::<purchase_order_line::Entity>(s)
        .filter(purchase_order_line::Column::PurchaseOrderId.eq(po))
        .order_by_asc(purchase_order_line::Column::Id)
        .all(&s.tx)
        .await
}

/// Issues a draft purchase order to its supplier (`purchase_order.issued`); it is then expected
/// after the supplier's lead time. Issuing an issued order changes nothing.
pub async fn issue_purchase_order(
    db: &Db,
    p: &Principal,
    id: Option<Uuid>,
) -> Result<Outcome<purchase_order::Model>, DbErr> {
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let Some(po) = purchase_order_for_update(&s, id).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "id"], "purchase order")]));
    };
    match po.status.as_str() {
        "draft" => {}
        "issued" | "acknowledged" | "shipped" | "partially_received" | "received" => {
            s.commit().await?;
            return Ok(Ok(po));
        }
        other => {
            return Ok(Err(vec![UserError::new(
                &["input", "id"],
                UserErrorCode::InvalidState,
                format!("a {other} purchase order cannot be issued"),
            )]));
        }
    }
    let supplier = crate::services::lookup::supplier(&s, po.supplier_id).await?;
    let now = repo::now();
    let lead_days = supplier.as_ref().and_then(|x| x.lead_time_mean_days.0.ceil().to_u64()).unwrap_or(0);
    let expected_on = now.date_naive().checked_add_days(Days::new(lead_days));
    let mut am: purchase_order::ActiveModel = po.clone().into();
    am.status = Set("issued".into());
    am.issued_at = Set(Some(now));
    am.updated_at = Set(now);
    am.expected_on = Set(expected_on);
    let po = sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
    let data = issued_data(&s, &po).await?;
    crate::events::emit(&s, "purchase_order.issued", data).await?;
    // Bound for a 3PL's warehouse: it is told what to expect.
    crate::services::sync::inbound::queue_receiving(&s, &po).await?;
    s.commit().await?;
    Ok(Ok(po))
}

pub struct ReceiveRequest {
    pub purchase_order_id: Option<Uuid>,
    /// Line (`None` when the ID did not parse) and units received.
    pub lines: Vec<(Option<Uuid>, i64)>,
    pub idempotency_key: Option<String>,
    /// Who received: the subject of the principal, or the 3PL whose warehouse counted the goods.
    pub by: String,
}

/// Receives goods against an issued purchase order, in part or in full: stock and the ledger go up
/// by what arrived, the order becomes partly received or received. With an idempotency key a
/// retried receipt returns the order as the first one left it.
pub async fn receive_purchase_order(
    db: &Db,
    p: &Principal,
    req: &ReceiveRequest,
) -> Result<Outcome<purchase_order::Model>, DbErr> {
    if req.lines.is_empty() {
        return Ok(Err(vec![UserError::invalid(&["input", "lines"], "receive at least one line")]));
    }
    for (i, (_, q)) in req.lines.iter().enumerate() {
        if *q <= 0 || *q > MAX_UNITS {
            return Ok(Err(vec![UserError::invalid(
                &["input", "lines", &i.to_string(), "quantity"],
                "quantity must be positive",
            )]));
        }
    }
    if let Err(e) = check_key(req.idempotency_key.as_deref(), &["input", "idempotencyKey"]) {
        return Ok(Err(vec![e]));
    }
    retrying!(db, p, |s| receive_in(s, req).await)
}

pub(crate) async fn receive_in(s: &Scoped, req: &ReceiveRequest) -> Result<Outcome<purchase_order::Model>, DbErr> {
    use crate::db::entities::stock_movement;
    // The ledger's lock before the order's, as supplier actions and cancellations take them: a
    // contract's order's receipt is appended to its ledger, and a receipt and a cancellation of
    // one order act one after the other.
    crate::services::contracts::ledger::serialise(s).await?;
    let Some(po) = purchase_order_for_update(s, req.purchase_order_id).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "purchaseOrderId"], "purchase order")]));
    };
    let key_of = |i: usize| req.idempotency_key.as_ref().map(|k| format!("{k}#{i}"));
    if let Some(first) = key_of(0) {
        let previous = repo::find::<stock_movement::Entity>(s)
            .filter(stock_movement::Column::IdempotencyKey.eq(first))
            .one(&s.tx)
            .await?;
        if let Some(m) = previous {
            if m.kind != "receipt" || m.reference != po.number {
                return Ok(Err(vec![UserError::new(
                    &["input", "idempotencyKey"],
                    UserErrorCode::IdempotencyKeyReused,
                    "this idempotency key was used for a different change",
                )]));
            }
            return Ok(Ok(po));
        }
    }
    if !RECEIVABLE_PO.contains(&po.status.as_str()) {
        return Ok(Err(vec![UserError::new(
            &["input", "purchaseOrderId"],
            UserErrorCode::InvalidState,
            match po.status.as_str() {
                "draft" => "issue the purchase order before receiving against it".to_owned(),
                other => format!("a {other} purchase order cannot receive goods"),
            },
        )]));
    }
    let mut lines = po_lines(s, po.id).await?;
    let mut wanted: HashMap<Uuid, i64> = HashMap::new();
    for (i, (id, q)) in req.lines.iter().enumerate() {
        let Some(line) = id.and_then(|id| lines.iter().find(|l| l.id == id)) else {
            return Ok(Err(vec![UserError::not_found(
                &["input", "lines", &i.to_string(), "lineId"],
                "purchase order line",
            )]));
        };
        let total = wanted.entry(line.id).or_default();
        *total += q;
        let open = i64::from(line.quantity - line.received_quantity);
        if *total > open {
            return Ok(Err(vec![UserError::invalid(
                &["input", "lines", &i.to_string(), "quantity"],
                format!("only {open} units of this line are still open"),
            )]));
        }
    }
    let mut told = Vec::with_capacity(req.lines.len());
    for (i, (id, q)) in req.lines.iter().enumerate() {
        let Some(line) = id.and_then(|id| lines.iter_mut().find(|l| l.id == id)) else { continue };
        line.received_quantity += i32::try_from(*q).unwrap_or(i32::MAX);
        purchase_order_line::Entity::update_many()
            .filter(purchase_order_line::Column::TenantId.eq(s.tenant()))
            .filter(purchase_order_line::Column::Id.eq(line.id))
            .col_expr(purchase_order_line::Column::ReceivedQuantity, Expr::value(line.received_quantity))
            .exec(&s.tx)
            .await?;
        let key = key_of(i);
        let sku = crate::services::lookup::variant(s, line.variant_id).await?.map(|v| v.sku).unwrap_or_default();
        let change = OnHandChange {
            sku: &sku,
            variant_id: line.variant_id,
            location_id: po.location_id,
            delta: *q,
            kind: "receipt",
            reason: "purchase_order",
            reference: &po.number,
            idempotency_key: key.as_deref(),
        };
        // A receipt only adds stock, so the guard cannot refuse it.
        change_on_hand(s, change).await?;
        told.push(json!({
            "lineId": gid("PurchaseOrderLine", line.id).0,
            "sku": sku,
            "quantity": q,
            "receivedQuantity": line.received_quantity,
            "orderedQuantity": line.quantity,
        }));
    }
    let done = lines.iter().all(|l| l.received_quantity >= l.quantity);
    let mut am: purchase_order::ActiveModel = po.into();
    am.status = Set(if done { "received" } else { "partially_received" }.into());
    am.updated_at = Set(repo::now());
    let po = sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
    let mut data = crate::services::contracts::supplier::po_data(&po, &req.by);
    data["locationId"] = json!(gid("Location", po.location_id).0);
    data["status"] = json!(po.status);
    data["lines"] = json!(told);
    crate::events::emit(s, "purchase_order.received", data).await?;
    crate::services::contracts::supplier::received(s, &po, &req.lines).await?;
    Ok(Ok(po))
}

/// Ships a draft transfer: the units leave the source now (ledger `transfer_out`). Shipping a
/// shipped transfer changes nothing.
pub async fn ship_transfer(db: &Db, p: &Principal, id: Option<Uuid>) -> Result<Outcome<transfer::Model>, DbErr> {
    retrying!(db, p, |s| move_transfer(s, id, true).await)
}

/// Receives a shipped transfer: the units arrive at the destination (ledger `transfer_in`).
/// Receiving a received transfer changes nothing.
pub async fn receive_transfer(db: &Db, p: &Principal, id: Option<Uuid>) -> Result<Outcome<transfer::Model>, DbErr> {
    retrying!(db, p, |s| move_transfer(s, id, false).await)
}

async fn move_transfer(s: &Scoped, id: Option<Uuid>, ship: bool) -> Result<Outcome<transfer::Model>, DbErr> {
    let Some(t) = transfer_for_update(s, id).await? else {
        return Ok(Err(vec![UserError::not_found(&["input", "id"], "transfer")]));
    };
    let (from_status, to_status) = if ship { ("draft", "in_transit") } else { ("in_transit", "received") };
    let already = if ship { ["in_transit", "received", "completed"] } else { ["received", "completed", "-"] };
    if already.contains(&t.status.as_str()) {
        return Ok(Ok(t));
    }
    if t.status != from_status {
        return Ok(Err(vec![UserError::new(
            &["input", "id"],
            UserErrorCode::InvalidState,
            if ship { "only a draft transfer can ship" } else { "ship the transfer before receiving it" },
        )]));
    }
    let (location, delta, kind) = if ship {
        (t.from_location_id, -i64::from(t.quantity), "transfer_out")
    } else {
        (t.to_location_id, i64::from(t.quantity), "transfer_in")
    };
    let reference = t.id.to_string();
    let sku = crate::services::lookup::variant(s, t.variant_id).await?.map(|v| v.sku).unwrap_or_default();
    let change = OnHandChange {
        sku: &sku,
        variant_id: t.variant_id,
        location_id: location,
        delta,
        kind,
        reason: "transfer",
        reference: &reference,
        idempotency_key: None,
    };
    if change_on_hand(s, change).await?.is_none() {
        return Ok(Err(vec![UserError::new(
            &["input", "id"],
            UserErrorCode::InsufficientStock,
            "not enough available stock at the source",
        )]));
    }
    let mut am: transfer::ActiveModel = t.clone().into();
    am.status = Set(to_status.into());
    let now = repo::now();
    if ship {
        am.shipped_at = Set(Some(now));
    } else {
        am.received_at = Set(Some(now));
    }
    let t = sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
    let mut data = transfer_event(&t, &sku);
    data[if ship { "shippedAt" } else { "receivedAt" }] = json!(now);
    crate::events::emit(s, if ship { "transfer.shipped" } else { "transfer.received" }, data).await?;
    Ok(Ok(t))
}
