//! Demand forecasts per SKU × location.
//!
//! A run (nightly, or `forecastRun`) is two kinds of job: `forecast.run` loads every series of
//! the tenant, fits the panel model once (the global model and the choice per demand class) and
//! stores it on the run, then enqueues `forecast.chunk` jobs of [`CHUNK_SIZE`] series. Each chunk
//! forecasts its series with the stored model and measures them on held-out periods; per series,
//! one transaction stores the forecast and announces a newly predicted stockout
//! (`stock.out_predicted` and the alert rule). A chunk that runs again skips the series it stored.
//! One series can be re-forecast at once with the latest completed run's model ([`refresh`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{Days, NaiveDate};
use qm_domain::forecast::{self, Config, Freq, Holdout, Panel, PanelForecast, PanelModel, calendar};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, OnConflict, SimpleExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, JoinType, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::alerts::{self, Raised, RuleKind};
use crate::auth::Principal;
use crate::db::entities::{
    Dec, daily_demand, forecast as forecast_e, forecast_override, forecast_run, purchase_order, purchase_order_line,
    stock_level, supplier_item, variant,
};
use crate::db::{Db, Scoped, TxMode, repo};
use crate::graphql::errors::{Outcome, UserError, UserErrorCode};
use crate::graphql::types::gid;
use crate::jobs::worker::{Handler, JobError, Registry};
use crate::jobs::{self, NewJob};
use crate::services::{lookup, runs};
use crate::state::AppState;

pub const RUN: &str = "forecast.run";
pub const CHUNK: &str = "forecast.chunk";
/// Series per chunk job.
pub const CHUNK_SIZE: usize = 100;
/// Days forecast by the nightly run (the daily planning horizon).
pub const DEFAULT_HORIZON: usize = Freq::Daily.planning_horizon();
pub const MAX_HORIZON: usize = 366;
/// Daily demand repeats weekly.
const SEASON: usize = 7;
/// Days of history a forecast reads: more than the per-series models look at
/// (`forecast::engine::LOCAL_WINDOW`) and than the global model's features reach (a year for a
/// series' own weekday and promotion lifts); its training takes the origins this leaves.
const HISTORY_DAYS: u64 = 420;
/// The quantile levels every stored forecast carries.
pub const QUANTILES: [f64; 3] = [0.1, 0.5, 0.9];

pub fn register(r: Registry) -> Registry {
    r.with(RUN, RunJob).with(CHUNK, ChunkJob)
}

/// Runs the forecast every night at 02:00 UTC (created with the tenant).
pub async fn schedule_nightly(s: &Scoped) -> Result<(), DbErr> {
    let now = repo::now();
    let today_2am = now.date_naive().and_hms_opt(2, 0, 0).map(|t| t.and_utc()).unwrap_or(now);
    let first = if today_2am > now { today_2am } else { today_2am + chrono::Duration::days(1) };
    jobs::schedule(s, "forecast.nightly", RUN, json!({}), std::time::Duration::from_secs(86_400), first).await
}

/// What a run stores beside its panel model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredModel {
    /// The first forecast day (the day after the last day of history).
    pub first_day: NaiveDate,
    pub panel: PanelModel,
}

pub fn config(horizon: usize) -> Config {
    let mut cfg = Config::new(horizon, SEASON);
    cfg.quantiles = QUANTILES.to_vec();
    cfg
}

/// One SKU × location as the engine sees it.
pub struct Series {
    pub variant_id: Uuid,
    pub location_id: Uuid,
    pub sku: String,
    /// Daily demand, stockout days imputed, from the series' first day to the history's end.
    pub y: Vec<f64>,
    /// Known features per day of the history and then of the horizon.
    pub exog: Vec<Vec<f64>>,
}

impl Series {
    fn panel(&self) -> Panel<'_> {
        Panel { y: &self.y, exog: &self.exog }
    }

    /// The forecast a review `back` days before the end of the history would have made with
    /// `model`: from the days before it, the known features of the days after, and the global
    /// model fitted without the run's last horizon (for a review within it, one that has not seen
    /// what came after it).
    pub fn forecast_back(&self, model: &PanelModel, back: usize, cfg: &Config) -> PanelForecast {
        let y = &self.y[..self.y.len().saturating_sub(back)];
        forecast::forecast_before_holdout(model, &Panel { y, exog: &self.exog }, cfg)
    }
}

/// The first day to forecast: the day after the tenant's latest demand (today without any).
pub async fn first_day(s: &Scoped) -> Result<NaiveDate, DbErr> {
    let latest: Option<Option<NaiveDate>> = repo::find::<daily_demand::Entity>(s)
        .select_only()
        .column_as(daily_demand::Column::Day.max(), "latest")
        .into_tuple()
        .one(&s.tx)
        .await?;
    Ok(latest.flatten().and_then(|d| d.succ_opt()).unwrap_or_else(|| repo::now().date_naive()))
}

fn oldest_day(first_day: NaiveDate) -> NaiveDate {
    first_day.checked_sub_days(Days::new(HISTORY_DAYS)).unwrap_or(first_day)
}

/// Every SKU × location to forecast: those with stock records and those with recent demand.
/// The order is stable (by variant, then location).
pub async fn series_keys(s: &Scoped, first_day: NaiveDate) -> Result<Vec<(Uuid, Uuid)>, DbErr> {
    use daily_demand::Column as D;
    let mut keys: BTreeSet<(Uuid, Uuid)> = repo::find::<stock_level::Entity>(s)
        .select_only()
        .columns([stock_level::Column::VariantId, stock_level::Column::LocationId])
        .into_tuple::<(Uuid, Uuid)>()
        .all(&s.tx)
        .await?
        .into_iter()
        .collect();
    let with_demand: Vec<(Uuid, Uuid)> = repo::find::<daily_demand::Entity>(s)
        .select_only()
        .columns([D::VariantId, D::LocationId])
        .filter(D::Day.gte(oldest_day(first_day)))
        .distinct()
        .into_tuple()
        .all(&s.tx)
        .await?;
    keys.extend(with_demand);
    // Only series whose variant exists are forecast (and counted towards the run).
    let variants: BTreeSet<Uuid> = repo::find::<variant::Entity>(s)
        .select_only()
        .column(variant::Column::Id)
        .into_tuple::<Uuid>()
        .all(&s.tx)
        .await?
        .into_iter()
        .collect();
    Ok(keys.into_iter().filter(|k| variants.contains(&k.0)).collect())
}

/// Loads the demand history of the given SKU × locations: the [`HISTORY_DAYS`] before
/// `first_day`, with `horizon` days of future features. A series without demand yet has an
/// empty history; one whose variant is gone is left out.
pub async fn load(
    s: &Scoped,
    keys: &[(Uuid, Uuid)],
    first_day: NaiveDate,
    horizon: usize,
) -> Result<Vec<Series>, DbErr> {
    let variant_ids: BTreeSet<Uuid> = keys.iter().map(|k| k.0).collect();
    let skus: HashMap<Uuid, String> = repo::find::<variant::Entity>(s)
        .filter(variant::Column::Id.is_in(variant_ids))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|v| (v.id, v.sku))
        .collect();
    load_named(s, keys, &skus, first_day, horizon).await
}

/// [`load`] with the SKU of each variant known (`skus`).
async fn load_named(
    s: &Scoped,
    keys: &[(Uuid, Uuid)],
    skus: &HashMap<Uuid, String>,
    first_day: NaiveDate,
    horizon: usize,
) -> Result<Vec<Series>, DbErr> {
    let mut demand: BTreeMap<(Uuid, Uuid), Vec<Demand>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for (key, days) in demand_history(s, Some(keys), oldest_day(first_day), first_day).await? {
        if let Some(v) = demand.get_mut(&key) {
            *v = days;
        }
    }
    Ok(demand
        .into_iter()
        .filter_map(|((variant_id, location_id), rows)| {
            let sku = skus.get(&variant_id)?.clone();
            let (y, exog) = history(&rows, first_day, horizon);
            Some(Series { variant_id, location_id, sku, y, exog })
        })
        .collect())
}

/// Stored daily demand from `from` up to (not including) `to`, per variant × location, oldest
/// first: of the given SKU × locations (and any other pair of their variants and locations), or
/// of every series with `None`.
pub async fn demand_history(
    s: &Scoped,
    keys: Option<&[(Uuid, Uuid)]>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<BTreeMap<(Uuid, Uuid), Vec<Demand>>, DbErr> {
    use daily_demand::Column as D;
    // One row per series, its days packed into one text (a row per day costs a few µs each in
    // the drivers: most of a single re-forecast's time).
    let mut q = repo::find::<daily_demand::Entity>(s)
        .select_only()
        .columns([D::VariantId, D::LocationId])
        .column_as(packed_days(s.tx.get_database_backend()), "days")
        .filter(D::Day.lt(to))
        .filter(D::Day.gte(from));
    if let Some(keys) = keys {
        let variant_ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect::<BTreeSet<_>>().into_iter().collect();
        let location_ids: Vec<Uuid> = keys.iter().map(|k| k.1).collect::<BTreeSet<_>>().into_iter().collect();
        q = q.filter(D::VariantId.is_in(variant_ids)).filter(D::LocationId.is_in(location_ids));
    }
    let packed: Vec<(Uuid, Uuid, Option<String>)> =
        q.group_by(D::VariantId).group_by(D::LocationId).into_tuple().all(&s.tx).await?;
    packed
        .into_iter()
        .map(|(variant_id, location_id, days)| Ok(((variant_id, location_id), unpack_days(days.as_deref())?)))
        .collect()
}

/// At most this many series (an even sample of them) teach the panel model, so a run's fitting
/// job stays bounded in time and memory however large the tenant; chunks forecast every series.
const MAX_FIT_SERIES: usize = 2_000;

/// An even, deterministic sample of at most `max` keys.
pub fn even_sample(keys: &[(Uuid, Uuid)], max: usize) -> Vec<(Uuid, Uuid)> {
    let step = keys.len().div_ceil(max.max(1)).max(1);
    keys.iter().step_by(step).copied().collect()
}

/// One day of one series' demand as loaded.
pub struct Demand {
    pub day: NaiveDate,
    pub units: i32,
    /// `None` when not a positive number.
    pub price: Option<Decimal>,
    pub promo: bool,
    pub stockout: bool,
}

/// Rows packed into one text by an aggregate: each row's `columns` (SQL expressions) as text
/// (empty for null), `,` between them, `;` between rows, in no particular order; null when there
/// are no rows. Reading many small rows costs a few µs each in the drivers, one text does not.
/// Only for columns whose text holds neither separator (numbers, dates, flags).
fn packed(backend: DbBackend, columns: &[&str]) -> SimpleExpr {
    let row: Vec<String> = columns.iter().map(|c| format!("coalesce(CAST({c} AS TEXT), '')")).collect();
    let aggregate = if backend == DbBackend::Postgres { "string_agg" } else { "group_concat" };
    Expr::cust(format!("{aggregate}({}, ';')", row.join(" || ',' || ")))
}

/// The rows of a [`packed`] text.
fn records(packed: Option<&str>) -> impl Iterator<Item = &str> {
    packed.unwrap_or_default().split(';').filter(|r| !r.is_empty())
}

/// The `N` columns of one of [`records`]' rows, if it has `N` (no allocation: a history is
/// hundreds of rows, read for every series).
fn fields<const N: usize>(record: &str) -> Option<[&str; N]> {
    let mut columns = record.split(',');
    let mut out = [""; N];
    for slot in &mut out {
        *slot = columns.next()?;
    }
    columns.next().is_none().then_some(out)
}

/// A series' days of demand as one text: `day,units,price,promo,stockout` (flags as 0 or 1).
fn packed_days(backend: DbBackend) -> SimpleExpr {
    packed(
        backend,
        &[
            r#""day""#,
            r#""units""#,
            r#""price""#,
            r#"CASE WHEN "promo" THEN 1 ELSE 0 END"#,
            r#"CASE WHEN "stockout" THEN 1 ELSE 0 END"#,
        ],
    )
}

/// The days [`packed_days`] packed, oldest first. A price that is not a positive number is
/// unknown.
fn unpack_days(packed: Option<&str>) -> Result<Vec<Demand>, DbErr> {
    let flag = |v: &str| match v {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    };
    let mut days = records(packed)
        .map(|d| -> Result<Demand, DbErr> {
            let bad = || DbErr::Type(format!("unreadable day of demand {d:?}"));
            let [day, units, price, promo, stockout] = fields(d).ok_or_else(bad)?;
            Ok(Demand {
                day: day.parse().map_err(|_| bad())?,
                units: units.parse().map_err(|_| bad())?,
                price: price.parse::<Decimal>().ok().filter(|p| p.is_sign_positive() && !p.is_zero()),
                promo: flag(promo).ok_or_else(bad)?,
                stockout: flag(stockout).ok_or_else(bad)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    days.sort_unstable_by_key(|d| d.day);
    Ok(days)
}

fn history(rows: &[Demand], first_day: NaiveDate, horizon: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let start = rows.first().map_or(first_day, |r| r.day);
    let n = usize::try_from((first_day - start).num_days()).unwrap_or(0);
    let mut y = vec![0.0; n];
    let mut censored = vec![false; n];
    let mut promo = vec![0.0; n];
    let mut price: Vec<Option<f64>> = vec![None; n];
    for r in rows {
        let Ok(t) = usize::try_from((r.day - start).num_days()) else { continue };
        if t >= n {
            continue;
        }
        y[t] = f64::from(r.units.max(0));
        censored[t] = r.stockout;
        promo[t] = f64::from(u8::from(r.promo));
        price[t] = r.price.map(qm_domain::types::as_f64);
    }
    let known: Vec<f64> = price.iter().flatten().copied().collect();
    let median = forecast::metrics::median(&known).unwrap_or(1.0);
    let y = forecast::impute_censored(&y, &censored, SEASON);
    let mut exog = Vec::with_capacity(n + horizon);
    let mut last_ratio = 1.0;
    let mut day = start;
    for t in 0..n + horizon {
        let mut row = calendar::features(Freq::Daily, day);
        if t < n {
            if let Some(p) = price[t] {
                last_ratio = p / median;
            }
            row.extend([promo[t], last_ratio]);
        } else {
            row.extend([0.0, last_ratio]);
        }
        exog.push(row);
        day = day.succ_opt().unwrap_or(day);
    }
    (y, exog)
}

/// Fits the panel model on every series (CPU: call from a blocking thread).
pub fn fit(series: &[Series], cfg: &Config) -> PanelModel {
    let panels: Vec<Panel<'_>> = series.iter().map(Series::panel).collect();
    let locals = forecast::locals(&panels, cfg);
    forecast::fit_panel(&panels, &locals, cfg)
}

/// A series' forecast, ready to store.
pub struct Computed {
    pub forecast: PanelForecast,
    pub holdout: Option<Holdout>,
}

pub fn compute(model: &PanelModel, series: &[Series], cfg: &Config) -> Vec<Computed> {
    series
        .iter()
        .map(|s| {
            let (forecast, holdout) = forecast::forecast_one(model, &s.panel(), cfg);
            Computed { forecast, holdout }
        })
        .collect()
}

/// Stock, receipts and the earliest possible new receipt of one SKU × location.
struct Supply {
    available: i64,
    inbound: i64,
    /// Units arriving per forecast day.
    receipts: Vec<f64>,
    /// Days until an order placed today could arrive (the shortest supplier lead time).
    lead_days: Option<usize>,
}

/// What storing one series needs besides its forecast.
struct Standing {
    /// The stored row's run and projected stockout day, if there is a row.
    previous: Option<(Uuid, Option<NaiveDate>)>,
    supply: Supply,
    /// Whether a planner overrode any day of the series (the overrides are read only then).
    overridden: bool,
}

/// [`Standing`] in one round trip: a select of subqueries, the open order lines and the lead
/// times packed into one text each (see [`packed`]).
async fn standing(
    s: &Scoped,
    variant_id: Uuid,
    location_id: Uuid,
    first_day: NaiveDate,
    h: usize,
) -> Result<Standing, DbErr> {
    use sea_orm::QueryTrait;
    use sea_orm::sea_query::ExprTrait;

    let backend = s.tx.get_database_backend();
    let stored = |col: forecast_e::Column| {
        Expr::from(
            repo::find::<forecast_e::Entity>(s)
                .select_only()
                .column(col)
                .filter(forecast_e::Column::VariantId.eq(variant_id))
                .filter(forecast_e::Column::LocationId.eq(location_id))
                .into_query(),
        )
    };
    let available = repo::find::<stock_level::Entity>(s)
        .select_only()
        .expr(Expr::col(stock_level::Column::OnHand).sub(Expr::col(stock_level::Column::Reserved)))
        .filter(stock_level::Column::VariantId.eq(variant_id))
        .filter(stock_level::Column::LocationId.eq(location_id));
    // The open lines of this SKU on open orders for this location, with their expected day.
    let po_of_line = purchase_order_line::Entity::belongs_to(purchase_order::Entity)
        .from(purchase_order_line::Column::PurchaseOrderId)
        .to(purchase_order::Column::Id)
        .into();
    let lines = repo::find::<purchase_order_line::Entity>(s)
        .select_only()
        .expr(packed(
            backend,
            &[
                r#""purchase_order_lines"."quantity""#,
                r#""purchase_order_lines"."received_quantity""#,
                r#""purchase_orders"."expected_on""#,
            ],
        ))
        .join(JoinType::InnerJoin, po_of_line)
        .filter(purchase_order_line::Column::VariantId.eq(variant_id))
        .filter(purchase_order::Column::TenantId.eq(s.tenant()))
        .filter(purchase_order::Column::LocationId.eq(location_id))
        .filter(purchase_order::Column::Status.is_in(crate::services::replenish::RECEIVABLE_PO));
    let lead_times = repo::find::<supplier_item::Entity>(s)
        .select_only()
        .expr(packed(backend, &[r#""lead_time_mean_days""#]))
        .filter(supplier_item::Column::VariantId.eq(variant_id));
    let overridden = repo::find::<forecast_override::Entity>(s)
        .select_only()
        .expr(Expr::col(forecast_override::Column::Day).count())
        .filter(forecast_override::Column::VariantId.eq(variant_id))
        .filter(forecast_override::Column::LocationId.eq(location_id));
    let query = sea_orm::sea_query::Query::select()
        .expr_as(stored(forecast_e::Column::RunId), "run_id")
        .expr_as(stored(forecast_e::Column::StockoutOn), "stockout_on")
        .expr_as(Expr::from(available.into_query()), "available")
        .expr_as(Expr::from(lines.into_query()), "lines")
        .expr_as(Expr::from(lead_times.into_query()), "lead_times")
        .expr_as(Expr::from(overridden.into_query()), "overrides")
        .to_owned();
    let row = s.tx.query_one(&query).await?.ok_or_else(|| DbErr::RecordNotFound("standing".into()))?;
    let run: Option<Uuid> = row.try_get("", "run_id")?;
    let stockout_on: Option<NaiveDate> = row.try_get("", "stockout_on")?;
    let available: Option<i64> = row.try_get("", "available")?;
    let lines: Option<String> = row.try_get("", "lines")?;
    let lead_times: Option<String> = row.try_get("", "lead_times")?;
    let overrides: i64 = row.try_get("", "overrides")?;
    Ok(Standing {
        previous: run.map(|r| (r, stockout_on)),
        supply: supply_of(available.unwrap_or(0), lines.as_deref(), lead_times.as_deref(), first_day, h)?,
        overridden: overrides > 0,
    })
}

/// The supply [`standing`] read: `lines` packed `quantity,received,expected_on` (the day may be
/// empty), `lead_times` packed decimal days.
fn supply_of(
    available: i64,
    lines: Option<&str>,
    lead_times: Option<&str>,
    first_day: NaiveDate,
    h: usize,
) -> Result<Supply, DbErr> {
    let mut receipts = vec![0.0; h];
    let mut inbound = 0;
    for line in records(lines) {
        let bad = || DbErr::Type(format!("unreadable order line {line:?}"));
        let [quantity, received, expected_on] = fields(line).ok_or_else(bad)?;
        let quantity: i64 = quantity.parse().map_err(|_| bad())?;
        let received: i64 = received.parse().map_err(|_| bad())?;
        let open = (quantity - received).max(0);
        inbound += open;
        // Undated orders are not counted on: nobody knows when they come.
        if !expected_on.is_empty() {
            let on: NaiveDate = expected_on.parse().map_err(|_| bad())?;
            let t = usize::try_from((on - first_day).num_days().max(0)).unwrap_or(0);
            if t < h {
                receipts[t] += open as f64;
            }
        }
    }
    let lead_days = records(lead_times)
        .map(|lead| lead.parse::<Dec>().map_err(|_| DbErr::Type(format!("unreadable lead time {lead:?}"))))
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .filter_map(|days| rust_decimal::prelude::ToPrimitive::to_usize(&days.0.ceil()))
        .min();
    Ok(Supply { available, inbound, receipts, lead_days })
}

/// The overrides of one series, oldest day first.
pub async fn overrides(
    s: &Scoped,
    variant_id: Uuid,
    location_id: Uuid,
) -> Result<Vec<forecast_override::Model>, DbErr> {
    repo::find::<forecast_override::Entity>(s)
        .filter(forecast_override::Column::VariantId.eq(variant_id))
        .filter(forecast_override::Column::LocationId.eq(location_id))
        .order_by_asc(forecast_override::Column::Day)
        .all(&s.tx)
        .await
}

/// The forecast per day with planners' overrides in place of the statistical value.
pub fn with_overrides(point: &[f64], first_day: NaiveDate, overrides: &[forecast_override::Model]) -> Vec<f64> {
    let mut out = point.to_vec();
    for o in overrides {
        if let Ok(t) = usize::try_from((o.day - first_day).num_days())
            && t < out.len()
        {
            out[t] = o.quantity.max(0.0);
        }
    }
    out
}

/// Every stored forecast with its point forecast per day from its first day, planners'
/// overrides in place (what replenishment and pricing plan with).
pub async fn with_overrides_all(s: &Scoped) -> Result<Vec<(forecast_e::Model, Vec<f64>)>, DbErr> {
    let mut overrides: HashMap<(Uuid, Uuid), Vec<forecast_override::Model>> = HashMap::new();
    for o in repo::find::<forecast_override::Entity>(s).all(&s.tx).await? {
        overrides.entry((o.variant_id, o.location_id)).or_default().push(o);
    }
    Ok(repo::find::<forecast_e::Entity>(s)
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|r| {
            let own = overrides.get(&(r.variant_id, r.location_id)).map_or(&[][..], Vec::as_slice);
            let point = with_overrides(&point_of(&r), r.first_day, own);
            (r, point)
        })
        .collect())
}

/// The stored point forecast of a row.
pub fn point_of(row: &forecast_e::Model) -> Vec<f64> {
    floats(&row.forecast["point"])
}

/// The stored quantile `level` of a row (e.g. `"0.9"`).
pub fn quantile_of(row: &forecast_e::Model, level: &str) -> Vec<f64> {
    floats(&row.forecast["quantiles"][level])
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect()).unwrap_or_default()
}

/// Stores one series' forecast (replacing the previous one) and announces a newly predicted
/// stockout, in the caller's transaction. With `skip_done`, a series this run already stored is
/// left as it is (a chunk job running again).
async fn store(
    s: &Scoped,
    run_id: Uuid,
    first_day: NaiveDate,
    series: &Series,
    c: &Computed,
    skip_done: bool,
) -> Result<(forecast_e::Model, Vec<forecast_override::Model>), DbErr> {
    let this_series = || {
        repo::find::<forecast_e::Entity>(s)
            .filter(forecast_e::Column::VariantId.eq(series.variant_id))
            .filter(forecast_e::Column::LocationId.eq(series.location_id))
    };
    let f = &c.forecast.series;
    let h = f.point.len();
    // Only what deciding needs: the stored row carries the whole forecast.
    let Standing { previous, supply, overridden } =
        standing(s, series.variant_id, series.location_id, first_day, h).await?;
    if skip_done
        && previous.is_some_and(|(run, _)| run == run_id)
        && let Some(done) = this_series().one(&s.tx).await?
    {
        return Ok((done, Vec::new()));
    }
    let overrides = if overridden { overrides(s, series.variant_id, series.location_id).await? } else { Vec::new() };
    let demand = with_overrides(&f.point, first_day, &overrides);
    let next_receipt = supply.lead_days.unwrap_or(h);
    let stockout = forecast::first_stockout(supply.available as f64, &supply.receipts, &demand)
        .filter(|t| *t < next_receipt)
        .and_then(|t| first_day.checked_add_days(Days::new(t as u64)));
    let quantiles: serde_json::Map<String, serde_json::Value> =
        QUANTILES.iter().zip(&f.quantiles).map(|(l, q)| (l.to_string(), json!(q))).collect();
    let row = forecast_e::Model {
        tenant_id: s.tenant(),
        variant_id: series.variant_id,
        location_id: series.location_id,
        run_id,
        sku: series.sku.clone(),
        model: c.forecast.model_name(),
        demand_class: f.class.as_str().to_owned(),
        reason: c.forecast.reason(),
        first_day,
        forecast: json!({ "point": f.point, "quantiles": quantiles }),
        holdout: c.holdout.as_ref().map(|h| json!(h)),
        candidates: json!(f.candidates.iter().map(|(m, e)| (m.as_str(), e)).collect::<Vec<_>>()),
        stockout_on: stockout,
        created_at: repo::now(),
    };
    forecast_e::Entity::insert(forecast_e::ActiveModel::from(row.clone()))
        .on_conflict(
            OnConflict::columns([
                forecast_e::Column::TenantId,
                forecast_e::Column::VariantId,
                forecast_e::Column::LocationId,
            ])
            .update_columns([
                forecast_e::Column::RunId,
                forecast_e::Column::Sku,
                forecast_e::Column::Model,
                forecast_e::Column::DemandClass,
                forecast_e::Column::Reason,
                forecast_e::Column::FirstDay,
                forecast_e::Column::Forecast,
                forecast_e::Column::Holdout,
                forecast_e::Column::Candidates,
                forecast_e::Column::StockoutOn,
                forecast_e::Column::CreatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(&s.tx)
        .await?;
    // Announced when it becomes predicted, not again every night while it stays so.
    let newly = previous.is_none_or(|(_, stockout_on)| stockout_on.is_none());
    if let (Some(on), true) = (stockout, newly) {
        announce_stockout(s, series, &supply, on, first_day, next_receipt, &demand, run_id).await?;
    }
    Ok((row, overrides))
}

#[expect(clippy::too_many_arguments, reason = "one call site; the values are all different things")]
async fn announce_stockout(
    s: &Scoped,
    series: &Series,
    supply: &Supply,
    on: NaiveDate,
    first_day: NaiveDate,
    next_receipt: usize,
    demand: &[f64],
    run_id: Uuid,
) -> Result<(), DbErr> {
    let next_receipt_on = first_day.checked_add_days(Days::new(next_receipt as u64)).unwrap_or(first_day);
    let days = usize::try_from((on - first_day).num_days()).unwrap_or(0);
    let demand_until: f64 = demand.iter().take(days + 1).sum();
    let place = lookup::location(s, series.location_id)
        .await?
        .map_or_else(|| "an unknown location".to_owned(), |l| format!("{} ({})", l.name, l.code));
    let sku = &series.sku;
    let lines = vec![
        format!("SKU: {sku}"),
        format!("Location: {place}"),
        format!("Available: {}, inbound: {}", supply.available, supply.inbound),
        format!("Forecast demand until {on}: {demand_until:.1}"),
        format!("Projected to run out on {on}; the next possible receipt is {next_receipt_on}"),
    ];
    let (variant_id, location_id) = (series.variant_id, series.location_id);
    alerts::raise(s, RuleKind::StockoutPredicted, || Raised {
        subject: format!("Stockout predicted: {sku} at {place} on {on}"),
        lines: lines.clone(),
        variant_id: Some(variant_id),
        location_id: Some(location_id),
    })
    .await?;
    let data = json!({
        "sku": sku,
        "variantId": gid("Variant", variant_id).0,
        "locationId": gid("Location", location_id).0,
        "available": supply.available,
        "inbound": supply.inbound,
        "stockoutOn": on.to_string(),
        "nextReceiptOn": next_receipt_on.to_string(),
        "forecastUnits": format!("{demand_until:.1}"),
        "forecastRunId": gid("ForecastRun", run_id).0,
    });
    crate::events::emit(s, "stock.out_predicted", data).await?;
    Ok(())
}

/// Runs `f` on a blocking thread, keeping the current span.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, JobError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| JobError::Retry(format!("forecast task: {e}")))
}

/// Queues a tenant-wide run, or returns the one already queued or running.
pub async fn request_run(db: &Db, p: &Principal, horizon: usize) -> Result<Outcome<forecast_run::Model>, DbErr> {
    if !(1..=MAX_HORIZON).contains(&horizon) {
        return Ok(Err(vec![UserError::invalid(
            &["input", "horizon"],
            format!("horizon must be between 1 and {MAX_HORIZON} days"),
        )]));
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    // A run whose jobs died (dead-lettered chunks) is failed: it must not block every later one.
    if let Some(run) = runs::active::<forecast_run::Entity>(&s).await? {
        s.commit().await?;
        return Ok(Ok(run));
    }
    let run = queue_run(&s, horizon, &p.subject).await?;
    s.commit().await?;
    Ok(Ok(run))
}

/// Records a queued run and enqueues its job, in the caller's transaction.
pub async fn queue_run(s: &Scoped, horizon: usize, by: &str) -> Result<forecast_run::Model, DbErr> {
    let run = new_run(s, Uuid::now_v7(), horizon, by).await?;
    let mut job = NewJob::new(RUN, json!({ "run_id": run.id }));
    job.dedup_key = Some(format!("{RUN}:{}", run.id));
    jobs::enqueue(s, job).await?;
    Ok(run)
}

async fn new_run(s: &Scoped, id: Uuid, horizon: usize, by: &str) -> Result<forecast_run::Model, DbErr> {
    let run = forecast_run::Model {
        tenant_id: s.tenant(),
        id,
        status: "queued".into(),
        horizon: i32::try_from(horizon).unwrap_or(DEFAULT_HORIZON as i32),
        season: SEASON as i32,
        series_total: 0,
        requested_by: by.to_owned(),
        model: None,
        error: None,
        created_at: repo::now(),
        started_at: None,
        finished_at: None,
    };
    forecast_run::Entity::insert(forecast_run::ActiveModel::from(run.clone())).exec_without_returning(&s.tx).await?;
    Ok(run)
}

/// The runs' parsed models, by run id: a completed run's model never changes, and re-forecasting
/// one SKU should not read and parse it again each time. Holds the [`MODEL_CACHE_RUNS`] runs
/// used last (a tenant's latest run stays while the tenant is active, whatever other tenants do).
pub struct ModelCache(std::sync::Mutex<lru::LruCache<Uuid, Arc<RunModel>>>);

impl Default for ModelCache {
    fn default() -> Self {
        ModelCache(std::sync::Mutex::new(lru::LruCache::new(MODEL_CACHE_RUNS)))
    }
}

/// A run (its `model` column left out) and its parsed model.
pub struct RunModel {
    pub run: forecast_run::Model,
    pub stored: StoredModel,
}

const MODEL_CACHE_RUNS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(32).expect("not zero");

impl ModelCache {
    /// The model of completed run `id` (which the caller's tenant-scoped query found), parsed
    /// once. Only completed runs are kept: their rows no longer change.
    async fn get(&self, s: &Scoped, id: Uuid) -> Result<Option<Arc<RunModel>>, DbErr> {
        if let Some(hit) = self.0.lock().ok().and_then(|mut m| m.get(&id).cloned()) {
            return Ok(Some(hit));
        }
        let Some(mut run) = runs::by_id::<forecast_run::Entity>(s, id).await? else { return Ok(None) };
        let Some(stored) = stored_model(&run) else { return Ok(None) };
        run.model = None;
        let completed = run.status == "completed";
        let parsed = Arc::new(RunModel { run, stored });
        if let (true, Ok(mut m)) = (completed, self.0.lock()) {
            m.put(id, parsed.clone());
        }
        Ok(Some(parsed))
    }
}

fn stored_model(run: &forecast_run::Model) -> Option<StoredModel> {
    run.model.as_ref().and_then(|m| serde_json::from_value(m.clone()).ok())
}

/// The latest completed run's parsed model (see [`ModelCache`]).
pub async fn latest_model(state: &AppState, s: &Scoped) -> Result<Option<Arc<RunModel>>, DbErr> {
    let latest: Option<Uuid> = runs::completed::<forecast_run::Entity>(s)
        .select_only()
        .column(forecast_run::Column::Id)
        .into_tuple()
        .one(&s.tx)
        .await?;
    match latest {
        Some(id) => state.forecast_models.get(s, id).await,
        None => Ok(None),
    }
}

/// The series a mutation's `sku` and `locationId` name, and the latest completed run.
struct SeriesRef {
    variant_id: Uuid,
    sku: String,
    location_id: Uuid,
    /// The run whose model re-forecasts single series.
    latest_run: Option<Uuid>,
}

/// The variant and location a mutation's `sku` and `locationId` name (`NOT_FOUND` otherwise),
/// with the latest completed run: one round trip (the location and the run are subqueries).
async fn series_of(s: &Scoped, sku: &str, location_id: Option<Uuid>) -> Result<Outcome<SeriesRef>, DbErr> {
    use crate::db::entities::location;
    use sea_orm::QueryTrait;

    let location = repo::find::<location::Entity>(s)
        .select_only()
        .column(location::Column::Id)
        .filter(location::Column::Id.eq(location_id.unwrap_or_default()));
    let latest = runs::completed::<forecast_run::Entity>(s).select_only().column(forecast_run::Column::Id).limit(1);
    let found: Option<(Uuid, Option<Uuid>, Option<Uuid>)> = repo::find::<variant::Entity>(s)
        .select_only()
        .column(variant::Column::Id)
        .expr_as(Expr::from(location.into_query()), "location_id")
        .expr_as(Expr::from(latest.into_query()), "latest_run")
        .filter(variant::Column::Sku.eq(sku))
        .into_tuple()
        .one(&s.tx)
        .await?;
    let Some((variant_id, location_id, latest_run)) = found else {
        return Ok(Err(vec![UserError::not_found(&["input", "sku"], "variant")]));
    };
    let Some(location_id) = location_id else {
        return Ok(Err(vec![UserError::not_found(&["input", "locationId"], "location")]));
    };
    Ok(Ok(SeriesRef { variant_id, sku: sku.to_owned(), location_id, latest_run }))
}

/// A series re-forecast by [`refresh`].
pub struct Refreshed {
    pub forecast: forecast_e::Model,
    pub overrides: Vec<forecast_override::Model>,
    /// The run whose model made it.
    pub run: forecast_run::Model,
}

/// Re-forecasts one SKU × location now, with the latest completed run's model.
pub async fn refresh(
    state: &AppState,
    p: &Principal,
    sku: &str,
    location_id: Option<Uuid>,
) -> Result<Outcome<Refreshed>, DbErr> {
    // Only the series' forecast row (and a stockout event) is written: recomputed by every run.
    let s = state.db.scoped(p.tenant_id, TxMode::Derived).await?;
    let found = match series_of(&s, sku, location_id).await? {
        Ok(found) => found,
        Err(e) => return Ok(Err(e)),
    };
    let model = match found.latest_run {
        Some(id) => state.forecast_models.get(&s, id).await?,
        None => None,
    };
    let Some(model) = model else {
        return Ok(Err(vec![UserError::new(
            &["input", "sku"],
            UserErrorCode::InvalidState,
            "no forecast run has completed yet: run forecastRun without a SKU first",
        )]));
    };
    let RunModel { run, stored } = &*model;
    let cfg = config(stored.panel.horizon);
    let pair = [(found.variant_id, found.location_id)];
    let skus = HashMap::from([(found.variant_id, found.sku)]);
    let series = load_named(&s, &pair, &skus, stored.first_day, cfg.horizon).await?;
    let Some(one) = series.first() else {
        return Ok(Err(vec![UserError::not_found(&["input", "sku"], "demand history")]));
    };
    let computed = compute(&stored.panel, std::slice::from_ref(one), &cfg);
    let Some(c) = computed.first() else {
        return Ok(Err(vec![UserError::not_found(&["input", "sku"], "demand history")]));
    };
    let (forecast, overrides) = store(&s, run.id, stored.first_day, one, c, false).await?;
    s.commit().await?;
    Ok(Ok(Refreshed { forecast, overrides, run: run.clone() }))
}

#[derive(Debug, Serialize, Deserialize)]
struct RunPayload {
    /// Absent for the nightly schedule: the job's own id names the run then.
    run_id: Option<Uuid>,
}

struct RunJob;

#[async_trait::async_trait]
impl Handler for RunJob {
    async fn run(&self, state: &AppState, job: &crate::db::entities::job::Model) -> Result<(), JobError> {
        let payload: RunPayload = serde_json::from_value(job.payload.clone()).unwrap_or(RunPayload { run_id: None });
        let run_id = payload.run_id.unwrap_or(job.id);
        // The nightly schedule's run is recorded by its job.
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        if runs::by_id::<forecast_run::Entity>(&s, run_id).await?.is_none() {
            new_run(&s, run_id, DEFAULT_HORIZON, "schedule").await?;
        }
        s.commit().await?;
        let Some(run) = runs::begin::<forecast_run::Entity>(&state.db, job.tenant_id, run_id).await? else {
            return Ok(());
        };
        let horizon = usize::try_from(run.horizon).unwrap_or(DEFAULT_HORIZON).clamp(1, MAX_HORIZON);
        let cfg = config(horizon);
        let s = state.db.scoped(job.tenant_id, TxMode::Read).await?;
        let first_day = first_day(&s).await?;
        let pairs = series_keys(&s, first_day).await?;
        let sample = load(&s, &even_sample(&pairs, MAX_FIT_SERIES), first_day, horizon).await?;
        s.commit().await?;
        let fit_cfg = cfg.clone();
        let panel = blocking(move || fit(&sample, &fit_cfg)).await?;
        let stored = StoredModel { first_day, panel };
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        let mut am: forecast_run::ActiveModel = run.clone().into();
        am.model = Set(Some(json!(stored)));
        am.series_total = Set(i32::try_from(pairs.len()).unwrap_or(i32::MAX));
        if pairs.is_empty() {
            am.status = Set("completed".into());
            am.finished_at = Set(Some(repo::now()));
        }
        sea_orm::ActiveModelTrait::update(am, &s.tx).await?;
        for (i, chunk) in pairs.chunks(CHUNK_SIZE).enumerate() {
            let mut j = NewJob::new(CHUNK, json!({ "run_id": run.id, "series": chunk }));
            j.dedup_key = Some(format!("{CHUNK}:{}:{i}", run.id));
            jobs::enqueue(&s, j).await?;
        }
        s.commit().await?;
        tracing::info!(run = %run.id, series = pairs.len(), "forecast model fitted; chunks queued");
        Ok(())
    }

    async fn dead(&self, state: &AppState, job: &crate::db::entities::job::Model, error: &str) -> Result<(), JobError> {
        let payload: RunPayload = serde_json::from_value(job.payload.clone()).unwrap_or(RunPayload { run_id: None });
        let run_id = payload.run_id.unwrap_or(job.id);
        runs::job_died::<forecast_run::Entity>(&state.db, job.tenant_id, run_id, error).await?;
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ChunkPayload {
    run_id: Uuid,
    series: Vec<(Uuid, Uuid)>,
}

struct ChunkJob;

#[async_trait::async_trait]
impl Handler for ChunkJob {
    async fn run(&self, state: &AppState, job: &crate::db::entities::job::Model) -> Result<(), JobError> {
        let payload: ChunkPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad forecast chunk: {e}")))?;
        let s = state.db.scoped(job.tenant_id, TxMode::Read).await?;
        let run = runs::by_id::<forecast_run::Entity>(&s, payload.run_id).await?;
        let Some((run, stored)) = run.and_then(|r| stored_model(&r).map(|m| (r, m))) else {
            return Err(JobError::Permanent(format!("forecast run {} has no model", payload.run_id)));
        };
        let cfg = config(stored.panel.horizon);
        let first_day = stored.first_day;
        let series = load(&s, &payload.series, first_day, cfg.horizon).await?;
        s.commit().await?;
        let (series, computed) = blocking(move || {
            let computed = compute(&stored.panel, &series, &cfg);
            (series, computed)
        })
        .await?;
        // One short transaction per series: writers elsewhere never wait for a whole chunk.
        for (one, c) in series.iter().zip(&computed) {
            let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
            store(&s, run.id, first_day, one, c, true).await?;
            s.commit().await?;
        }
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        let done = sea_orm::PaginatorTrait::count(
            repo::find::<forecast_e::Entity>(&s).filter(forecast_e::Column::RunId.eq(run.id)),
            &s.tx,
        )
        .await?;
        if done >= u64::try_from(run.series_total).unwrap_or(0) {
            runs::finishing::<forecast_run::Entity>(&s, run.id, "completed").exec(&s.tx).await?;
            // A plan from the new forecasts (once per forecast run, however often this runs).
            crate::services::replenish::queue_run(&s, "forecast", Some(run.id)).await?;
            crate::services::pricing::queue_run(
                &s,
                "forecast",
                Some(run.id),
                crate::services::pricing::DEFAULT_HORIZON,
            )
            .await?;
            crate::services::contracts::evaluate::after_change(&s).await?;
        }
        s.commit().await?;
        Ok(())
    }

    /// A chunk that will not run again leaves its run short of series: the run fails.
    async fn dead(&self, state: &AppState, job: &crate::db::entities::job::Model, error: &str) -> Result<(), JobError> {
        if let Ok(payload) = serde_json::from_value::<ChunkPayload>(job.payload.clone()) {
            runs::job_died::<forecast_run::Entity>(&state.db, job.tenant_id, payload.run_id, error).await?;
        }
        Ok(())
    }
}

/// Sets (or, with `quantity: None`, clears) a planner's forecast for one day.
pub async fn set_override(
    db: &Db,
    p: &Principal,
    sku: &str,
    location_id: Option<Uuid>,
    day: NaiveDate,
    quantity: Option<f64>,
    note: &str,
) -> Result<Outcome<Option<forecast_override::Model>>, DbErr> {
    if let Some(q) = quantity
        && !(q.is_finite() && (0.0..=1e9).contains(&q))
    {
        return Ok(Err(vec![UserError::invalid(&["input", "quantity"], "quantity must be between 0 and 1e9")]));
    }
    if note.chars().count() > 1000 {
        return Ok(Err(vec![UserError::invalid(&["input", "note"], "note must be at most 1000 characters")]));
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let found = match series_of(&s, sku, location_id).await? {
        Ok(found) => found,
        Err(e) => return Ok(Err(e)),
    };
    let existing = forecast_override::Entity::delete_many()
        .filter(forecast_override::Column::TenantId.eq(s.tenant()))
        .filter(forecast_override::Column::VariantId.eq(found.variant_id))
        .filter(forecast_override::Column::LocationId.eq(found.location_id))
        .filter(forecast_override::Column::Day.eq(day));
    existing.exec(&s.tx).await?;
    let row = match quantity {
        None => None,
        Some(q) => {
            let row = forecast_override::Model {
                tenant_id: s.tenant(),
                variant_id: found.variant_id,
                location_id: found.location_id,
                day,
                quantity: q,
                note: note.to_owned(),
                set_by: p.subject.clone(),
                set_at: repo::now(),
            };
            forecast_override::Entity::insert(forecast_override::ActiveModel::from(row.clone()))
                .exec_without_returning(&s.tx)
                .await?;
            Some(row)
        }
    };
    s.commit().await?;
    Ok(Ok(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_days_unpack_in_date_order_and_bad_ones_are_type_errors() {
        let days = unpack_days(Some("2026-03-02,4,9.50,1,0;2026-03-01,0,0,0,1")).expect("reads");
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].day, NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"));
        assert!(days[0].stockout && !days[0].promo && days[0].price.is_none());
        assert_eq!((days[1].units, days[1].price, days[1].promo), (4, Some(Decimal::new(95, 1)), true));
        assert!(unpack_days(Some("")).expect("none").is_empty());
        assert!(unpack_days(None).expect("none").is_empty());
        for bad in [
            "2026-03-01,4,1,1",
            "2026-03-01,4,1,1,0,9",
            "2026-13-01,4,1,1,0",
            "2026-03-01,x,1,1,0",
            "2026-03-01,4,1,t,0",
        ] {
            assert!(matches!(unpack_days(Some(bad)), Err(DbErr::Type(_))), "{bad}");
        }
    }

    #[test]
    fn supply_counts_open_units_receives_dated_ones_and_takes_the_shortest_lead_time() {
        let first_day = NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
        // 10 open arriving on day 2, 5 open undated, one line fully received, one past due.
        let lines = "12,2,2026-03-03;5,0,;4,4,2026-03-02;3,1,2026-02-20";
        let supply = supply_of(7, Some(lines), Some("7.5;3;12"), first_day, 4).expect("reads");
        assert_eq!((supply.available, supply.inbound), (7, 17));
        assert_eq!(supply.receipts, vec![2.0, 0.0, 10.0, 0.0]);
        assert_eq!(supply.lead_days, Some(3));
        let none = supply_of(0, None, None, first_day, 2).expect("reads");
        assert_eq!((none.inbound, none.receipts, none.lead_days), (0, vec![0.0, 0.0], None));
        assert_eq!(supply_of(0, None, Some("2.1"), first_day, 1).expect("reads").lead_days, Some(3));
        for (lines, leads) in
            [(Some("1,0"), None), (Some("x,0,"), None), (Some("1,0,2026-02-30"), None), (None, Some("soon"))]
        {
            assert!(matches!(supply_of(0, lines, leads, first_day, 2), Err(DbErr::Type(_))), "{lines:?} {leads:?}");
        }
    }
}
