//! Dynamic pricing: runs, their recommendations with the numbers behind each, approval and
//! rejection, and the guardrails per tenant, category or SKU.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, QueryFilter};
use uuid::Uuid;

use super::pagination::{Window, connection};
use super::types::{Variant, filter_gid, gid, loaders, parse_gid, stored_names};
use super::{ApiError, CtxExt, UserError, read_tx};
use crate::db::entities::{price_recommendation, pricing_policy, pricing_run};
use crate::db::repo;
use crate::services::pricing as service;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PricingRunStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

stored_names!(PricingRunStatus, "pricing run status" {
    Queued => "queued",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
});

/// One pricing of the tenant's catalog: a recommendation per variant with sales history and a
/// supplier cost.
#[derive(Clone)]
pub struct PricingRun(pub pricing_run::Model);

#[Object]
impl PricingRun {
    pub async fn id(&self) -> ID {
        gid("PricingRun", self.0.id)
    }
    async fn status(&self) -> Result<PricingRunStatus, ApiError> {
        PricingRunStatus::stored(&self.0.status)
    }
    /// `forecast` when a forecast run queued it, else the subject that asked for it.
    async fn requested_by(&self) -> &str {
        &self.0.requested_by
    }
    /// Days the expected profit is counted over (to the season's end where that is later).
    async fn horizon_days(&self) -> i32 {
        self.0.horizon_days
    }
    /// Variants of the catalog; those without sales history or a supplier cost get no
    /// recommendation.
    async fn skus_total(&self) -> i32 {
        self.0.skus_total
    }
    /// Recommendations that change a price (PROPOSED when the run completed).
    async fn proposed_total(&self) -> i32 {
        self.0.proposed_total
    }
    /// Recommendations that keep the price (HELD), each with its reason.
    async fn held_total(&self) -> i32 {
        self.0.held_total
    }
    /// Why a FAILED run failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
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
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PriceRecommendationStatus {
    /// A new price awaiting the merchant's decision.
    Proposed,
    /// The price stays (see `binding` and `reason`); nothing to decide.
    Held,
    Approved,
    Rejected,
    /// A newer run replaced it before a decision.
    Superseded,
}

stored_names!(PriceRecommendationStatus, "price recommendation status" {
    Proposed => "proposed",
    Held => "held",
    Approved => "approved",
    Rejected => "rejected",
    Superseded => "superseded",
});

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PricingConfidence {
    /// Standard error of the elasticity at most 0.25.
    High,
    /// At most 0.6.
    Medium,
    /// No elasticity, or one too uncertain to price on: the price stays.
    Low,
}

/// The constraint that decided a recommended price.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PriceBinding {
    /// The most profitable price on the grid, no guardrail in the way.
    ProfitOptimum,
    /// The price would move further than one step allows.
    MaxChangePerStep,
    /// Held up by the minimum margin over the unit cost.
    MinMargin,
    /// Held up by the minimum advertised price.
    MinAdvertisedPrice,
    /// Priced to sell the stock on hand and on its way, not more.
    Stock,
    /// Marked down to sell before the season ends.
    SeasonEnd,
    /// No price with the required ending lies within the other guardrails.
    PriceEnding,
    /// A change would not raise expected profit by the minimum expected gain.
    MinExpectedGain,
    /// No elasticity good enough to price on.
    LowConfidence,
}

impl PriceBinding {
    fn of(s: &str) -> Self {
        match s {
            "max_change_per_step" => Self::MaxChangePerStep,
            "min_margin" => Self::MinMargin,
            "min_advertised_price" => Self::MinAdvertisedPrice,
            "stock" => Self::Stock,
            "season_end" => Self::SeasonEnd,
            "price_ending" => Self::PriceEnding,
            "min_expected_gain" => Self::MinExpectedGain,
            "low_confidence" => Self::LowConfidence,
            _ => Self::ProfitOptimum,
        }
    }
}

/// A run's price for one variant, with the estimate, the expected outcome at the current and
/// the recommended price, and the constraint that decided it.
#[derive(Clone)]
pub struct PriceRecommendation(pub price_recommendation::Model);

#[Object]
impl PriceRecommendation {
    pub async fn id(&self) -> ID {
        gid("PriceRecommendation", self.0.id)
    }
    async fn status(&self) -> Result<PriceRecommendationStatus, ApiError> {
        PriceRecommendationStatus::stored(&self.0.status)
    }
    async fn pricing_run_id(&self) -> ID {
        gid("PricingRun", self.0.run_id)
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn variant(&self, ctx: &Context<'_>) -> Result<Option<Variant>, ApiError> {
        Ok(loaders(ctx)?.variant.load_one(self.0.variant_id).await?.map(Variant))
    }
    /// The variant's price when the run read it.
    async fn current_price(&self) -> Decimal {
        self.0.current_price.0
    }
    async fn recommended_price(&self) -> Decimal {
        self.0.recommended_price.0
    }
    async fn currency_code(&self) -> &str {
        &self.0.currency
    }
    /// The cheapest supplier's cost of a unit.
    async fn unit_cost(&self) -> Option<Decimal> {
        self.0.unit_cost.map(|d| d.0)
    }
    /// Demand's elasticity to price at the current price (negative: -2 means 1 % dearer sells
    /// about 2 % less); null when the history cannot tell.
    async fn elasticity(&self) -> Option<f64> {
        self.0.elasticity
    }
    async fn elasticity_se(&self) -> Option<f64> {
        self.0.elasticity_se
    }
    async fn confidence(&self) -> PricingConfidence {
        match self.0.confidence.as_str() {
            "high" => PricingConfidence::High,
            "medium" => PricingConfidence::Medium,
            _ => PricingConfidence::Low,
        }
    }
    /// Over the run's horizon (or to the season's end).
    async fn expected_units_current(&self) -> f64 {
        self.0.expected_units_current
    }
    async fn expected_units_recommended(&self) -> f64 {
        self.0.expected_units_recommended
    }
    /// Gross profit: (price − unit cost) × units, plus (salvage − cost) × units left at the end
    /// of a season.
    async fn expected_profit_current(&self) -> Decimal {
        self.0.expected_profit_current.0
    }
    async fn expected_profit_recommended(&self) -> Decimal {
        self.0.expected_profit_recommended.0
    }
    async fn binding(&self) -> PriceBinding {
        PriceBinding::of(&self.0.binding)
    }
    /// Why this price, in a sentence.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// The numbers behind it: the elasticity (own and the category's share), confidence or why
    /// there is none, days of history, where expected demand came from, stock on hand and on its
    /// way, unit cost, the guardrails in force.
    async fn explanation(&self) -> Json<serde_json::Value> {
        Json(self.0.explanation.clone())
    }
    /// Who approved or rejected it.
    async fn decided_by(&self) -> Option<&str> {
        self.0.decided_by.as_deref()
    }
    async fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.0.decided_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PricingPolicyScope {
    Tenant,
    Category,
    Variant,
}

/// Guardrails for the whole tenant, a category or a variant. A null field takes the wider
/// scope's value (variant, then category, then tenant, then the default).
pub struct PricingPolicy(pub pricing_policy::Model);

#[Object]
impl PricingPolicy {
    async fn id(&self) -> ID {
        gid("PricingPolicy", self.0.id)
    }
    async fn scope(&self) -> PricingPolicyScope {
        match self.0.scope.as_str() {
            "category" => PricingPolicyScope::Category,
            "variant" => PricingPolicyScope::Variant,
            _ => PricingPolicyScope::Tenant,
        }
    }
    /// The category of a CATEGORY policy.
    async fn category(&self) -> Option<&str> {
        (self.0.scope == "category").then_some(self.0.scope_key.as_str())
    }
    /// The variant of a VARIANT policy.
    async fn variant(&self, ctx: &Context<'_>) -> Result<Option<Variant>, ApiError> {
        match self.0.scope_key.parse::<Uuid>() {
            Ok(id) if self.0.scope == "variant" => Ok(loaders(ctx)?.variant.load_one(id).await?.map(Variant)),
            _ => Ok(None),
        }
    }
    /// Price ≥ unit cost × (1 + minMargin). Default 0.
    async fn min_margin(&self) -> Option<Decimal> {
        self.0.min_margin.map(|d| d.0)
    }
    /// The most one run moves a price, as a fraction of it. Default 0.10.
    async fn max_change_per_step(&self) -> Option<Decimal> {
        self.0.max_change_per_step.map(|d| d.0)
    }
    /// Prices end in this fraction of a unit (0.99: 12.99, 13.99…). Default: any cent.
    async fn price_ending(&self) -> Option<Decimal> {
        self.0.price_ending.map(|d| d.0)
    }
    async fn min_advertised_price(&self) -> Option<Decimal> {
        self.0.min_advertised_price.map(|d| d.0)
    }
    /// The price changes only when that raises expected profit by this fraction. Default 0.02.
    async fn min_expected_gain(&self) -> Option<Decimal> {
        self.0.min_expected_gain.map(|d| d.0)
    }
    /// The last day of the selling season: stock that would not sell by then is marked down.
    async fn season_end(&self) -> Option<NaiveDate> {
        self.0.season_end
    }
    /// What a unit left after the season is worth.
    async fn salvage_value(&self) -> Option<Decimal> {
        self.0.salvage_value.map(|d| d.0)
    }
    async fn updated_by(&self) -> &str {
        &self.0.updated_by
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(Default)]
pub struct PricingQuery;

#[Object]
impl PricingQuery {
    /// Pricing runs, oldest first (`last: 10` for the latest).
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn pricing_runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, PricingRun>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page = repo::page(&s, repo::find::<pricing_run::Entity>(&s), pricing_run::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, PricingRun))
    }

    /// Price recommendations, oldest first: with `status`, those in it (PROPOSED: awaiting a
    /// decision); with `runId`, one run's; with `sku`, one variant's.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)]
    async fn price_recommendations(
        &self,
        ctx: &Context<'_>,
        status: Option<PriceRecommendationStatus>,
        run_id: Option<ID>,
        sku: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, PriceRecommendation>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<price_recommendation::Entity>(&s);
        if let Some(st) = status {
            q = q.filter(price_recommendation::Column::Status.eq(st.as_str()));
        }
        q = filter_gid(q, price_recommendation::Column::RunId, run_id.as_ref(), "PricingRun");
        if let Some(sku) = sku {
            q = q.filter(price_recommendation::Column::Sku.eq(sku));
        }
        let page = repo::page(&s, q, price_recommendation::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, PriceRecommendation))
    }

    /// The tenant's pricing policies: the tenant's own, then per category and per variant.
    async fn pricing_policies(&self, ctx: &Context<'_>) -> Result<Vec<PricingPolicy>, ApiError> {
        let p = ctx.reader()?;
        let s = read_tx(ctx, p).await?;
        let rows = service::policies(&s).await?;
        s.commit().await?;
        Ok(rows.into_iter().map(PricingPolicy).collect())
    }
}

#[derive(InputObject, Default)]
pub struct PricingRunInput {
    /// Days to count expected profit over (1 to 366; default 28). Stock with an end of season
    /// after it is counted to the season's end.
    pub horizon_days: Option<i32>,
}

#[derive(SimpleObject)]
pub struct PricingRunPayload {
    /// The run queued (or the one already queued or running).
    pub pricing_run: Option<PricingRun>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct PriceRecommendationDecisionInput {
    /// PROPOSED recommendations of the latest run (1 to 250); all are decided or none.
    pub ids: Vec<ID>,
}

#[derive(SimpleObject)]
pub struct PriceRecommendationsPayload {
    pub price_recommendations: Vec<PriceRecommendation>,
    pub user_errors: Vec<UserError>,
}

/// Which policy: a SKU's, a category's, or (neither given) the tenant's.
#[derive(InputObject)]
pub struct PricingPolicyUpsertInput {
    pub sku: Option<String>,
    pub category: Option<String>,
    /// Price ≥ unit cost × (1 + minMargin); 0 or more.
    pub min_margin: Option<Decimal>,
    /// The most one run moves a price, as a fraction of it: above 0, at most 1.
    pub max_change_per_step: Option<Decimal>,
    /// Prices end in this fraction of a unit (e.g. 0.99): at least 0, below 1.
    pub price_ending: Option<Decimal>,
    pub min_advertised_price: Option<Decimal>,
    /// The least relative gain in expected profit worth a change; 0 or more.
    pub min_expected_gain: Option<Decimal>,
    pub season_end: Option<NaiveDate>,
    pub salvage_value: Option<Decimal>,
}

#[derive(SimpleObject)]
pub struct PricingPolicyPayload {
    pub pricing_policy: Option<PricingPolicy>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct PricingPolicyDeleteInput {
    pub sku: Option<String>,
    pub category: Option<String>,
}

#[derive(SimpleObject)]
pub struct PricingPolicyDeletePayload {
    /// The policy removed; null when the scope had none.
    pub deleted_pricing_policy_id: Option<ID>,
    pub user_errors: Vec<UserError>,
}

/// The scope named by `sku` or `category` (neither: the tenant).
fn scope_of(sku: Option<String>, category: Option<String>) -> Result<service::Scope, UserError> {
    match (sku, category) {
        (Some(_), Some(_)) => Err(UserError::invalid(&["input", "category"], "give a SKU or a category, not both")),
        (Some(sku), None) => Ok(service::Scope::Sku(sku)),
        (None, Some(c)) => Ok(service::Scope::Category(c)),
        (None, None) => Ok(service::Scope::Tenant),
    }
}

fn decided(outcome: crate::graphql::errors::Outcome<Vec<price_recommendation::Model>>) -> PriceRecommendationsPayload {
    match outcome {
        Ok(rows) => PriceRecommendationsPayload {
            price_recommendations: rows.into_iter().map(PriceRecommendation).collect(),
            user_errors: vec![],
        },
        Err(user_errors) => PriceRecommendationsPayload { price_recommendations: vec![], user_errors },
    }
}

#[derive(Default)]
pub struct PricingMutation;

#[Object]
impl PricingMutation {
    /// Prices the catalog now (runs also follow every forecast run): a recommendation per
    /// variant, PROPOSED where the price should change (`price.recommended`), HELD where not.
    async fn pricing_run(
        &self,
        ctx: &Context<'_>,
        input: Option<PricingRunInput>,
    ) -> Result<PricingRunPayload, ApiError> {
        let p = ctx.operator()?;
        let horizon =
            input.and_then(|i| i.horizon_days).map_or(service::DEFAULT_HORIZON, |d| usize::try_from(d).unwrap_or(0));
        if let Some(busy) = super::queue_full(ctx, p).await? {
            return Ok(PricingRunPayload { pricing_run: None, user_errors: vec![busy] });
        }
        Ok(match service::request_run(ctx.db(), p, horizon).await? {
            Ok(run) => PricingRunPayload { pricing_run: Some(PricingRun(run)), user_errors: vec![] },
            Err(user_errors) => PricingRunPayload { pricing_run: None, user_errors },
        })
    }

    /// Approves proposed recommendations: each variant takes its recommended price
    /// (`price.changed`), sent to every store it is linked to.
    async fn price_recommendation_approve(
        &self,
        ctx: &Context<'_>,
        input: PriceRecommendationDecisionInput,
    ) -> Result<PriceRecommendationsPayload, ApiError> {
        let p = ctx.operator()?;
        let ids: Vec<Option<Uuid>> = input.ids.iter().map(|id| parse_gid(id, "PriceRecommendation")).collect();
        Ok(decided(service::decide(ctx.db(), p, &ids, service::Decision::Approve).await?))
    }

    /// Rejects proposed recommendations: the prices stay.
    async fn price_recommendation_reject(
        &self,
        ctx: &Context<'_>,
        input: PriceRecommendationDecisionInput,
    ) -> Result<PriceRecommendationsPayload, ApiError> {
        let p = ctx.operator()?;
        let ids: Vec<Option<Uuid>> = input.ids.iter().map(|id| parse_gid(id, "PriceRecommendation")).collect();
        Ok(decided(service::decide(ctx.db(), p, &ids, service::Decision::Reject).await?))
    }

    /// Sets the guardrails of the tenant, a category or a SKU; the next run prices with them.
    async fn pricing_policy_upsert(
        &self,
        ctx: &Context<'_>,
        input: PricingPolicyUpsertInput,
    ) -> Result<PricingPolicyPayload, ApiError> {
        let p = ctx.operator()?;
        let scope = match scope_of(input.sku, input.category) {
            Ok(s) => s,
            Err(e) => return Ok(PricingPolicyPayload { pricing_policy: None, user_errors: vec![e] }),
        };
        let fields = service::PolicyFields {
            min_margin: input.min_margin,
            max_change_per_step: input.max_change_per_step,
            price_ending: input.price_ending,
            min_advertised_price: input.min_advertised_price,
            min_expected_gain: input.min_expected_gain,
            season_end: input.season_end,
            salvage_value: input.salvage_value,
        };
        Ok(match service::upsert_policy(ctx.db(), p, scope, fields).await? {
            Ok(m) => PricingPolicyPayload { pricing_policy: Some(PricingPolicy(m)), user_errors: vec![] },
            Err(user_errors) => PricingPolicyPayload { pricing_policy: None, user_errors },
        })
    }

    /// Removes the guardrails of the tenant, a category or a SKU (the wider ones apply again).
    async fn pricing_policy_delete(
        &self,
        ctx: &Context<'_>,
        input: PricingPolicyDeleteInput,
    ) -> Result<PricingPolicyDeletePayload, ApiError> {
        let p = ctx.operator()?;
        let scope = match scope_of(input.sku, input.category) {
            Ok(s) => s,
            Err(e) => return Ok(PricingPolicyDeletePayload { deleted_pricing_policy_id: None, user_errors: vec![e] }),
        };
        Ok(match service::delete_policy(ctx.db(), p, scope).await? {
            Ok(id) => PricingPolicyDeletePayload {
                deleted_pricing_policy_id: id.map(|id| gid("PricingPolicy", id)),
                user_errors: vec![],
            },
            Err(user_errors) => PricingPolicyDeletePayload { deleted_pricing_policy_id: None, user_errors },
        })
    }
}
