//! Demand forecasts: runs, the forecast of one SKU × location with its quantiles, accuracy and
//! reasons, accuracy across the tenant, and planners' overrides.

use std::collections::BTreeMap;

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Days, NaiveDate, Utc};
use qm_domain::forecast::{self, Holdout};
use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::catalog::opt_gid;
use super::pagination::{Window, connection};
use super::types::{gid, loaders, stored_names};
use super::{ApiError, CtxExt, UserError, read_tx};
use crate::db::entities::{daily_demand, forecast as forecast_e, forecast_override, forecast_run};
use crate::db::{Scoped, repo};
use crate::services::{forecast as service, lookup};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ForecastRunStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

stored_names!(ForecastRunStatus, "forecast run status" {
    Queued => "queued",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
});

/// A tenant-wide forecast: every SKU × location, fitted and forecast by background jobs.
pub struct ForecastRun(pub forecast_run::Model);

#[Object]
impl ForecastRun {
    async fn id(&self) -> ID {
        gid("ForecastRun", self.0.id)
    }
    async fn status(&self) -> Result<ForecastRunStatus, ApiError> {
        ForecastRunStatus::stored(&self.0.status)
    }
    /// Days forecast.
    async fn horizon(&self) -> i32 {
        self.0.horizon
    }
    /// SKU × location series in the run (known once the model is fitted).
    async fn series_total(&self) -> i32 {
        self.0.series_total
    }
    /// Series forecast so far.
    async fn series_done(&self, ctx: &Context<'_>) -> Result<i32, ApiError> {
        ctx.reader()?;
        let n = loaders(ctx)?.forecasts_of_run.load_one(self.0.id).await?.unwrap_or(0);
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
    /// `schedule` for the nightly run, else the subject that asked for it.
    async fn requested_by(&self) -> &str {
        &self.0.requested_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// Why a FAILED run failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
}

/// Accuracy on the held-out last `periods` days: the method as chosen, refitted without them.
#[derive(SimpleObject, Clone, Debug, Default)]
pub struct ForecastAccuracy {
    /// Days held out.
    pub periods: i32,
    /// Σ|actual − forecast| / Σ actual (null when nothing sold).
    pub wape: Option<f64>,
    /// Σ(forecast − actual) / Σ actual: above 0 over-forecasts.
    pub bias: Option<f64>,
    /// Mean absolute error over the mean absolute day-to-day change (below 1 beats the naive forecast).
    pub mase: Option<f64>,
    /// Mean pinball loss of the p10, p50 and p90 forecasts, in units.
    pub pinball: Option<f64>,
}

impl From<&Holdout> for ForecastAccuracy {
    fn from(h: &Holdout) -> Self {
        Self {
            periods: i32::try_from(h.periods).unwrap_or(0),
            wape: h.wape,
            bias: h.bias,
            mase: h.mase,
            pinball: h.pinball,
        }
    }
}

/// One forecast day.
#[derive(SimpleObject, Clone, Debug)]
pub struct ForecastPeriod {
    pub date: NaiveDate,
    /// The statistical forecast (mean).
    pub forecast: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    /// A planner's value for the day, if set.
    pub r#override: Option<f64>,
    /// The override where there is one, else the forecast: what plans use.
    pub r#final: f64,
}

/// One day of demand history.
#[derive(SimpleObject, Clone, Debug)]
pub struct DemandDay {
    pub date: NaiveDate,
    pub quantity: i32,
    /// Stock ran out that day: demand was censored (the forecast imputes it).
    pub stockout: bool,
    pub promo: bool,
}

/// A per-series model the backtest compared.
#[derive(SimpleObject, Clone, Debug)]
pub struct ModelScore {
    pub model: String,
    /// Mean squared error over rolling-origin backtests.
    pub backtest_mse: f64,
}

/// A planner's forecast for one day, kept beside the statistical one.
pub struct ForecastOverride(pub forecast_override::Model);

#[Object]
impl ForecastOverride {
    async fn date(&self) -> NaiveDate {
        self.0.day
    }
    async fn quantity(&self) -> f64 {
        self.0.quantity
    }
    async fn note(&self) -> &str {
        &self.0.note
    }
    async fn set_by(&self) -> &str {
        &self.0.set_by
    }
    async fn set_at(&self) -> DateTime<Utc> {
        self.0.set_at
    }
}

/// The latest forecast of one SKU at one location.
pub struct Forecast {
    row: forecast_e::Model,
    overrides: Vec<forecast_override::Model>,
}

impl Forecast {
    fn holdout(&self) -> Option<Holdout> {
        self.row.holdout.as_ref().and_then(|h| serde_json::from_value(h.clone()).ok())
    }
    fn final_values(&self) -> Vec<f64> {
        service::with_overrides(&service::point_of(&self.row), self.row.first_day, &self.overrides)
    }
}

#[Object]
impl Forecast {
    async fn sku(&self) -> &str {
        &self.row.sku
    }
    async fn variant_id(&self) -> ID {
        gid("Variant", self.row.variant_id)
    }
    async fn location_id(&self) -> ID {
        gid("Location", self.row.location_id)
    }
    async fn run_id(&self) -> ID {
        gid("ForecastRun", self.row.run_id)
    }
    /// The model used: a per-series method (`ses`, `damped_trend`, `seasonal_naive`,
    /// `seasonal_ses`, `croston`, `sba`, `tsb`, `imapa`), `global` (one model across the
    /// tenant's series) or `global+<method>` (their average).
    async fn model(&self) -> &str {
        &self.row.model
    }
    /// Syntetos–Boylan class of the demand: SMOOTH, ERRATIC, INTERMITTENT or LUMPY.
    async fn demand_class(&self) -> String {
        self.row.demand_class.to_uppercase()
    }
    /// Why this model was chosen.
    async fn reason(&self) -> &str {
        &self.row.reason
    }
    /// Every per-series candidate with its backtest error, best first.
    async fn candidates(&self) -> Vec<ModelScore> {
        serde_json::from_value::<Vec<(String, f64)>>(self.row.candidates.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(model, backtest_mse)| ModelScore { model, backtest_mse })
            .collect()
    }
    /// Accuracy on held-out days; null when the history was too short to hold any out.
    async fn accuracy(&self) -> Option<ForecastAccuracy> {
        self.holdout().as_ref().map(ForecastAccuracy::from)
    }
    /// The first forecast day.
    async fn first_date(&self) -> NaiveDate {
        self.row.first_day
    }
    /// The forecast per day with its 10 %, 50 % and 90 % quantiles and any override.
    async fn periods(&self) -> Vec<ForecastPeriod> {
        let point = service::point_of(&self.row);
        let (p10, p50, p90) = (
            service::quantile_of(&self.row, "0.1"),
            service::quantile_of(&self.row, "0.5"),
            service::quantile_of(&self.row, "0.9"),
        );
        let finals = self.final_values();
        point
            .iter()
            .enumerate()
            .map(|(t, f)| {
                let date = self.row.first_day.checked_add_days(Days::new(t as u64)).unwrap_or(self.row.first_day);
                ForecastPeriod {
                    date,
                    forecast: *f,
                    p10: p10.get(t).copied().unwrap_or(*f),
                    p50: p50.get(t).copied().unwrap_or(*f),
                    p90: p90.get(t).copied().unwrap_or(*f),
                    r#override: self.overrides.iter().find(|o| o.day == date).map(|o| o.quantity),
                    r#final: finals.get(t).copied().unwrap_or(*f),
                }
            })
            .collect()
    }
    /// The `serviceLevel` quantile of total demand over the next `days` days (a lead time):
    /// what safety stock covers. Regular demand sums the daily forecasts with their spread;
    /// sporadic demand is a count distribution. Days beyond the horizon repeat its last day.
    async fn lead_time_demand(&self, days: i32, service_level: f64) -> Result<f64, ApiError> {
        if !(1..=3650).contains(&days) {
            return Err(ApiError::BadUserInput("days must be between 1 and 3650".into()));
        }
        if !(service_level > 0.0 && service_level < 1.0) {
            return Err(ApiError::BadUserInput("serviceLevel must be strictly between 0 and 1".into()));
        }
        let sporadic = matches!(self.row.demand_class.as_str(), "intermittent" | "lumpy");
        let finals = self.final_values();
        let point = service::point_of(&self.row);
        // The spread follows the statistical forecast; an override moves the centre.
        let shift = |q: Vec<f64>| -> Vec<f64> {
            q.iter().zip(point.iter().zip(&finals)).map(|(q, (p, f))| (q + f - p).max(0.0)).collect()
        };
        let lower = shift(service::quantile_of(&self.row, "0.1"));
        let upper = shift(service::quantile_of(&self.row, "0.9"));
        let days = usize::try_from(days).unwrap_or(1);
        Ok(forecast::lead_time_quantile(&finals, &lower, &upper, (0.1, 0.9), days, sporadic, service_level))
    }
    /// The day projected stock (available plus dated inbound, minus the forecast) runs out, when
    /// that comes before an order placed now could arrive.
    async fn stockout_predicted_on(&self) -> Option<NaiveDate> {
        self.row.stockout_on
    }
    async fn overrides(&self) -> Vec<ForecastOverride> {
        self.overrides.iter().cloned().map(ForecastOverride).collect()
    }
    /// Daily demand of the last `days` days before the forecast (at most 730).
    async fn history(&self, ctx: &Context<'_>, #[graphql(default = 56)] days: i32) -> Result<Vec<DemandDay>, ApiError> {
        if !(1..=730).contains(&days) {
            return Err(ApiError::BadUserInput("days must be between 1 and 730".into()));
        }
        let p = ctx.reader()?;
        let s = read_tx(ctx, p).await?;
        let from = self
            .row
            .first_day
            .checked_sub_days(Days::new(u64::try_from(days).unwrap_or(1)))
            .unwrap_or(self.row.first_day);
        let rows = repo::find::<daily_demand::Entity>(&s)
            .filter(daily_demand::Column::VariantId.eq(self.row.variant_id))
            .filter(daily_demand::Column::LocationId.eq(self.row.location_id))
            .filter(daily_demand::Column::Day.gte(from))
            .filter(daily_demand::Column::Day.lt(self.row.first_day))
            .order_by_asc(daily_demand::Column::Day)
            .all(&s.tx)
            .await?;
        s.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| DemandDay { date: r.day, quantity: r.units, stockout: r.stockout, promo: r.promo })
            .collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
}

/// What to group accuracy by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ForecastAccuracyGroup {
    /// One row for the whole tenant.
    Tenant,
    Sku,
    Location,
    Model,
    DemandClass,
}

/// Accuracy of a group of series, pooled (WAPE, bias) or averaged (MASE, pinball).
#[derive(SimpleObject, Clone, Debug)]
pub struct ForecastAccuracyRow {
    /// The SKU, location ID, model or demand class; `all` for TENANT.
    pub key: String,
    /// Series in the group.
    pub series: i32,
    /// Series with held-out accuracy.
    pub measured: i32,
    pub wape: Option<f64>,
    pub bias: Option<f64>,
    pub mase: Option<f64>,
    pub pinball: Option<f64>,
}

#[derive(Default)]
struct Acc {
    series: i32,
    measured: i32,
    pooled: forecast::metrics::Pooled,
    mase: Vec<f64>,
    pinball: Vec<f64>,
}

#[derive(Default)]
pub struct ForecastQuery;

#[Object]
impl ForecastQuery {
    /// Forecast runs, oldest first (`last: n` for the newest).
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn forecast_runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, ForecastRun>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page = repo::page(&s, repo::find::<forecast_run::Entity>(&s), forecast_run::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, ForecastRun))
    }

    /// The latest forecast of `sku` at `locationId`; null until a run has forecast it.
    async fn forecast(&self, ctx: &Context<'_>, sku: String, location_id: ID) -> Result<Option<Forecast>, ApiError> {
        let p = ctx.reader()?;
        let Some(location_id) = super::types::parse_gid(&location_id, "Location") else { return Ok(None) };
        let s = read_tx(ctx, p).await?;
        let found = load_forecast(&s, &sku, location_id).await?;
        s.commit().await?;
        Ok(found)
    }

    /// Held-out accuracy of the latest forecasts, grouped; the weakest (highest WAPE) first.
    async fn forecast_accuracy(
        &self,
        ctx: &Context<'_>,
        group_by: ForecastAccuracyGroup,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<ForecastAccuracyRow>, ApiError> {
        if !(1..=250).contains(&first) {
            return Err(ApiError::BadUserInput("first must be between 1 and 250".into()));
        }
        let p = ctx.reader()?;
        let s = read_tx(ctx, p).await?;
        // The columns grouped on and the held-out figures only, not each forecast's arrays.
        use forecast_e::Column as C;
        let rows: Vec<(String, Uuid, String, String, Option<serde_json::Value>)> = repo::find::<forecast_e::Entity>(&s)
            .select_only()
            .columns([C::Sku, C::LocationId, C::Model, C::DemandClass, C::Holdout])
            .into_tuple()
            .all(&s.tx)
            .await?;
        s.commit().await?;
        let mut groups: BTreeMap<String, Acc> = BTreeMap::new();
        for (sku, location_id, model, demand_class, holdout) in rows {
            let key = match group_by {
                ForecastAccuracyGroup::Tenant => "all".to_owned(),
                ForecastAccuracyGroup::Sku => sku,
                ForecastAccuracyGroup::Location => gid("Location", location_id).0,
                ForecastAccuracyGroup::Model => model,
                ForecastAccuracyGroup::DemandClass => demand_class.to_uppercase(),
            };
            let acc = groups.entry(key).or_default();
            acc.series += 1;
            let Some(h) = holdout.and_then(|h| serde_json::from_value::<Holdout>(h).ok()) else {
                continue;
            };
            acc.measured += 1;
            acc.pooled.abs_error += h.abs_error;
            acc.pooled.error += h.error;
            acc.pooled.actual += h.actual;
            acc.mase.extend(h.mase);
            acc.pinball.extend(h.pinball);
        }
        let mut out: Vec<ForecastAccuracyRow> = groups
            .into_iter()
            .map(|(key, a)| ForecastAccuracyRow {
                key,
                series: a.series,
                measured: a.measured,
                wape: a.pooled.wape(),
                bias: a.pooled.bias(),
                mase: forecast::metrics::mean(a.mase.iter().copied()),
                pinball: forecast::metrics::mean(a.pinball.iter().copied()),
            })
            .collect();
        out.sort_by(|a, b| b.wape.unwrap_or(-1.0).total_cmp(&a.wape.unwrap_or(-1.0)).then(a.key.cmp(&b.key)));
        out.truncate(usize::try_from(first).unwrap_or(50));
        Ok(out)
    }
}

async fn load_forecast(s: &Scoped, sku: &str, location_id: Uuid) -> Result<Option<Forecast>, sea_orm::DbErr> {
    let Some(variant) = lookup::variant_by_sku(s, sku).await? else { return Ok(None) };
    let row = repo::find::<forecast_e::Entity>(s)
        .filter(forecast_e::Column::VariantId.eq(variant.id))
        .filter(forecast_e::Column::LocationId.eq(location_id))
        .one(&s.tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let overrides = service::overrides(s, row.variant_id, row.location_id).await?;
    Ok(Some(Forecast { row, overrides }))
}

#[derive(InputObject)]
pub struct ForecastRunInput {
    /// Days to forecast (1 to 366).
    #[graphql(default = 28)]
    pub horizon: i32,
    /// Re-forecast only this SKU, now, with the latest completed run's model (needs `locationId`).
    pub sku: Option<String>,
    pub location_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct ForecastRunPayload {
    /// The run queued (or already queued or running); for one SKU, the run whose model was used.
    pub forecast_run: Option<ForecastRun>,
    /// The new forecast, when one SKU was re-forecast.
    pub forecast: Option<Forecast>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ForecastOverrideSetInput {
    pub sku: String,
    pub location_id: ID,
    pub date: NaiveDate,
    /// Units for the day; null removes the override.
    pub quantity: Option<f64>,
    #[graphql(default)]
    pub note: String,
}

#[derive(SimpleObject)]
pub struct ForecastOverrideSetPayload {
    /// The override as stored; null when it was removed.
    pub forecast_override: Option<ForecastOverride>,
    /// The forecast with the override in place (null until a run has forecast the series).
    pub forecast: Option<Forecast>,
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct ForecastMutation;

#[Object]
impl ForecastMutation {
    /// Queues a forecast of every SKU × location (background jobs; the nightly schedule does the
    /// same), or re-forecasts one SKU at one location at once. Needs a role that may operate.
    async fn forecast_run(&self, ctx: &Context<'_>, input: ForecastRunInput) -> Result<ForecastRunPayload, ApiError> {
        let p = ctx.operator()?;
        let fail = |user_errors| ForecastRunPayload { forecast_run: None, forecast: None, user_errors };
        let Some(sku) = input.sku else {
            if input.location_id.is_some() {
                return Ok(fail(vec![UserError::invalid(&["input", "sku"], "locationId needs a sku")]));
            }
            let horizon = usize::try_from(input.horizon).unwrap_or(0);
            if let Some(busy) = super::queue_full(ctx, p).await? {
                return Ok(fail(vec![busy]));
            }
            return Ok(match service::request_run(ctx.db(), p, horizon).await? {
                Ok(run) => {
                    ForecastRunPayload { forecast_run: Some(ForecastRun(run)), forecast: None, user_errors: vec![] }
                }
                Err(e) => fail(e),
            });
        };
        let Some(location_id) = opt_gid(input.location_id.as_ref(), "Location") else {
            return Ok(fail(vec![UserError::invalid(&["input", "locationId"], "a sku needs a locationId")]));
        };
        match service::refresh(ctx.state(), p, &sku, location_id).await? {
            Err(e) => Ok(fail(e)),
            Ok(r) => Ok(ForecastRunPayload {
                forecast_run: Some(ForecastRun(r.run)),
                forecast: Some(Forecast { row: r.forecast, overrides: r.overrides }),
                user_errors: vec![],
            }),
        }
    }

    /// Sets a planner's forecast for one day of one SKU at one location (or removes it). Plans
    /// and stockout projections use it in place of the statistical forecast.
    async fn forecast_override_set(
        &self,
        ctx: &Context<'_>,
        input: ForecastOverrideSetInput,
    ) -> Result<ForecastOverrideSetPayload, ApiError> {
        let p = ctx.operator()?;
        let location_id = super::types::parse_gid(&input.location_id, "Location");
        let outcome =
            service::set_override(ctx.db(), p, &input.sku, location_id, input.date, input.quantity, &input.note)
                .await?;
        Ok(match outcome {
            Err(user_errors) => ForecastOverrideSetPayload { forecast_override: None, forecast: None, user_errors },
            Ok(row) => {
                let s = read_tx(ctx, p).await?;
                let forecast = match location_id {
                    Some(l) => load_forecast(&s, &input.sku, l).await?,
                    None => None,
                };
                s.commit().await?;
                ForecastOverrideSetPayload {
                    forecast_override: row.map(ForecastOverride),
                    forecast,
                    user_errors: vec![],
                }
            }
        })
    }
}
