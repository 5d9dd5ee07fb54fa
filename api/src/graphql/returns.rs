//! Order allocation (policies, re-allocation, KPIs) and returns (recording, planning,
//! dispositions and their decisions, return rates).

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use qm_domain::allocation::Band;
use qm_domain::returns::{Disposition as D, Grade as G, Terms};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, QueryFilter};
use uuid::Uuid;

use super::pagination::{Window, connection};
use super::types::{Location, Order, Return, Variant, filter_gid, gid, loaders, parse_gid, stored_names};
use super::{ApiError, CtxExt, UserError, read_tx};
use crate::db::entities::{allocation_policy, order_allocation, return_disposition, returns_policy, returns_run};
use crate::db::repo;
use crate::services::{allocation, returns};

// ---------------------------------------------------------------------------------------------
// Allocation

/// A distance band: orders up to `maxKm` away pay `parcel` a parcel and `unit` a unit.
#[derive(SimpleObject, Clone)]
pub struct ShippingBand {
    pub max_km: f64,
    pub parcel: Decimal,
    pub unit: Decimal,
}

#[derive(InputObject)]
pub struct ShippingBandInput {
    pub max_km: f64,
    pub parcel: Decimal,
    /// Default 0.
    pub unit: Option<Decimal>,
}

/// Shipping terms of the tenant (no location) or one location. A null field takes the tenant's
/// value, then the default (bands 50/300/1,000 km and beyond at 4.50/6.50/9.00/14.00 a parcel and
/// 0.50–1.50 a unit, handling 1.50 a parcel and 0.25 a unit, split 4.00 a parcel beyond the first,
/// a stockout costing 30 % of the unit's price, stores shipping online orders).
pub struct AllocationPolicy(pub allocation_policy::Model);

#[Object]
impl AllocationPolicy {
    async fn id(&self) -> ID {
        gid("AllocationPolicy", self.0.id)
    }
    /// The location whose terms these are; null for the tenant's.
    async fn location(&self, ctx: &Context<'_>) -> Result<Option<Location>, ApiError> {
        match self.0.scope_key.parse::<Uuid>() {
            Ok(id) => Ok(loaders(ctx)?.location.load_one(id).await?.map(Location)),
            Err(_) => Ok(None),
        }
    }
    /// Tenant only: every order ships from this location.
    async fn pinned_location(&self, ctx: &Context<'_>) -> Result<Option<Location>, ApiError> {
        match self.0.pinned_location_id {
            Some(id) => Ok(loaders(ctx)?.location.load_one(id).await?.map(Location)),
            None => Ok(None),
        }
    }
    async fn split_cost(&self) -> Option<Decimal> {
        self.0.split_cost.map(|d| d.0)
    }
    async fn stockout_share(&self) -> Option<Decimal> {
        self.0.stockout_share.map(|d| d.0)
    }
    async fn handling_per_parcel(&self) -> Option<Decimal> {
        self.0.handling_per_parcel.map(|d| d.0)
    }
    async fn handling_per_unit(&self) -> Option<Decimal> {
        self.0.handling_per_unit.map(|d| d.0)
    }
    async fn ship_from_store(&self) -> Option<bool> {
        self.0.ship_from_store
    }
    async fn bands(&self) -> Option<Vec<ShippingBand>> {
        let bands: Vec<Band> = serde_json::from_value(self.0.bands.clone()?).ok()?;
        Some(bands.into_iter().map(|b| ShippingBand { max_km: b.max_km, parcel: b.parcel, unit: b.unit }).collect())
    }
    async fn updated_by(&self) -> &str {
        &self.0.updated_by
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Where one line of an order ships from.
#[derive(SimpleObject)]
pub struct AllocatedLine {
    pub line_id: ID,
    pub location_id: ID,
}

/// How an order was allocated and what that costs.
pub struct OrderAllocation(pub order_allocation::Model);

#[Object]
impl OrderAllocation {
    async fn order(&self, ctx: &Context<'_>) -> Result<Option<Order>, ApiError> {
        Ok(loaders(ctx)?.order.load_one(self.0.order_id).await?.map(Order))
    }
    /// EXACT (one order searched exactly), PINNED (the tenant's pinned location), MILP (a
    /// re-allocated batch) or SEQUENTIAL (re-allocated one by one).
    async fn method(&self) -> String {
        self.0.method.to_uppercase()
    }
    /// Locations it ships from.
    async fn parcels(&self) -> i32 {
        self.0.parcels
    }
    async fn shipping(&self) -> Decimal {
        self.0.shipping.0
    }
    async fn handling(&self) -> Decimal {
        self.0.handling.0
    }
    async fn split(&self) -> Decimal {
        self.0.split.0
    }
    /// Expected cost of the stockouts the units cause where they are still needed.
    async fn stockout_risk(&self) -> Decimal {
        self.0.stockout_risk.0
    }
    async fn cost(&self) -> Decimal {
        self.0.cost.0
    }
    async fn from_store(&self) -> bool {
        self.0.from_store
    }
    async fn lines(&self) -> Vec<AllocatedLine> {
        let get =
            |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).and_then(|x| x.parse::<Uuid>().ok());
        self.0
            .lines
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| {
                        Some(AllocatedLine {
                            line_id: gid("OrderLine", get(l, "lineId")?),
                            location_id: gid("Location", get(l, "locationId")?),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    async fn allocated_at(&self) -> DateTime<Utc> {
        self.0.allocated_at
    }
}

/// Allocation KPIs over the orders allocated in a window.
#[derive(SimpleObject)]
pub struct AllocationKpis {
    pub orders: u64,
    pub average_shipping_cost: Decimal,
    pub average_cost: Decimal,
    /// Orders shipped in more than one parcel, as a share of the orders.
    pub split_rate: f64,
    /// Orders a store ships (some of), as a share of the orders.
    pub ship_from_store_share: f64,
}

/// A window of time: from (inclusive) to (exclusive).
#[derive(InputObject)]
pub struct TimeWindowInput {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

fn window(w: Option<TimeWindowInput>, default_days: i64) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let (from, to) = match w {
        Some(w) => (w.from, w.to),
        None => {
            let now = repo::now();
            (now - chrono::Duration::days(default_days), now)
        }
    };
    if from >= to || to - from > chrono::Duration::days(3_660) {
        return Err(ApiError::BadUserInput("the window runs forward, at most ten years".into()));
    }
    Ok((from, to))
}

// ---------------------------------------------------------------------------------------------
// Returns

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "qm_domain::returns::Disposition")]
pub enum ReturnDispositionKind {
    RestockNew,
    OpenBox,
    Refurbish,
    ReturnToVendor,
    Liquidate,
    Recycle,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "qm_domain::returns::Grade")]
pub enum ReturnGrade {
    A,
    B,
    C,
    D,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReturnDispositionStatus {
    /// Awaiting a decision.
    Proposed,
    /// No capacity today (or waiting is cheaper): the next run plans it again.
    Held,
    Approved,
    Rejected,
    /// A later run replaced it.
    Superseded,
}

stored_names!(ReturnDispositionStatus, "return disposition status" {
    Proposed => "proposed",
    Held => "held",
    Approved => "approved",
    Rejected => "rejected",
    Superseded => "superseded",
});

/// One planning of the open returns.
#[derive(Clone)]
pub struct ReturnsRun(pub returns_run::Model);

#[Object]
impl ReturnsRun {
    pub async fn id(&self) -> ID {
        gid("ReturnsRun", self.0.id)
    }
    async fn requested_by(&self) -> &str {
        &self.0.requested_by
    }
    /// MILP (solved exactly) or GREEDY (a batch too large for the solver).
    async fn method(&self) -> String {
        self.0.method.to_uppercase()
    }
    /// Returned units planned.
    async fn items_total(&self) -> i32 {
        self.0.items_total
    }
    /// Units held for another day.
    async fn held_total(&self) -> i32 {
        self.0.held_total
    }
    /// Units left out because their grade is not known yet.
    async fn ungraded_total(&self) -> i32 {
        self.0.ungraded_total
    }
    /// Recovered value less processing, transport and hold costs.
    async fn objective(&self) -> Decimal {
        self.0.objective.0
    }
    /// An upper bound on the objective (the objective itself when solved exactly).
    async fn bound(&self) -> Decimal {
        self.0.bound.0
    }
    /// (bound − objective) / |bound|.
    async fn gap(&self) -> f64 {
        self.0.gap
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// What becomes of some units of a returned line, and where they go.
#[derive(Clone)]
pub struct ReturnDisposition(pub return_disposition::Model);

#[Object]
impl ReturnDisposition {
    pub async fn id(&self) -> ID {
        gid("ReturnDisposition", self.0.id)
    }
    async fn run_id(&self) -> ID {
        gid("ReturnsRun", self.0.run_id)
    }
    async fn return_id(&self) -> ID {
        gid("Return", self.0.return_id)
    }
    async fn return_line_id(&self) -> ID {
        gid("ReturnLine", self.0.return_line_id)
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn variant(&self, ctx: &Context<'_>) -> Result<Option<Variant>, ApiError> {
        Ok(loaders(ctx)?.variant.load_one(self.0.variant_id).await?.map(Variant))
    }
    async fn quantity(&self) -> i32 {
        self.0.quantity
    }
    async fn grade(&self) -> Option<ReturnGrade> {
        returns::grade_of(&self.0.grade).map(Into::into)
    }
    /// Null for held units.
    async fn disposition(&self) -> Option<ReturnDispositionKind> {
        self.0.disposition.as_deref().and_then(returns::disposition_of).map(Into::into)
    }
    /// The returns-handling location the units go to; null for held units.
    async fn location(&self, ctx: &Context<'_>) -> Result<Option<Location>, ApiError> {
        match self.0.location_id {
            Some(id) => Ok(loaders(ctx)?.location.load_one(id).await?.map(Location)),
            None => Ok(None),
        }
    }
    async fn status(&self) -> Result<ReturnDispositionStatus, ApiError> {
        ReturnDispositionStatus::stored(&self.0.status)
    }
    async fn expected_recovery(&self) -> Decimal {
        self.0.expected_recovery.0
    }
    async fn processing_cost(&self) -> Decimal {
        self.0.processing_cost.0
    }
    async fn transport_cost(&self) -> Decimal {
        self.0.transport_cost.0
    }
    /// Recovery less costs (less the hold cost for held units).
    async fn net(&self) -> Decimal {
        self.0.net.0
    }
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

/// A disposition's processing cost at a location (or the tenant's default).
#[derive(SimpleObject, Clone)]
pub struct DispositionCost {
    pub disposition: ReturnDispositionKind,
    pub cost: Decimal,
}

#[derive(InputObject)]
pub struct DispositionCostInput {
    pub disposition: ReturnDispositionKind,
    pub cost: Decimal,
}

/// What a disposition recovers: `recoveryRate` of the item's value (for RETURN_TO_VENDOR, of
/// the supplier's unit cost), `yield` the share a refurbishment makes sellable, for `grades`
/// (empty: every grade).
#[derive(SimpleObject, Clone)]
pub struct DispositionTerms {
    pub disposition: ReturnDispositionKind,
    pub recovery_rate: Decimal,
    #[graphql(name = "yield")]
    pub yield_rate: Option<Decimal>,
    pub grades: Vec<ReturnGrade>,
}

#[derive(InputObject)]
pub struct DispositionTermsInput {
    pub disposition: ReturnDispositionKind,
    pub recovery_rate: Decimal,
    #[graphql(name = "yield")]
    pub yield_rate: Option<Decimal>,
    /// Empty or absent: every grade.
    pub grades: Option<Vec<ReturnGrade>>,
}

/// Returns-handling terms of the tenant (no location) or one location.
pub struct ReturnsPolicy(pub returns_policy::Model);

#[Object]
impl ReturnsPolicy {
    async fn id(&self) -> ID {
        gid("ReturnsPolicy", self.0.id)
    }
    async fn location(&self, ctx: &Context<'_>) -> Result<Option<Location>, ApiError> {
        match self.0.scope_key.parse::<Uuid>() {
            Ok(id) => Ok(loaders(ctx)?.location.load_one(id).await?.map(Location)),
            Err(_) => Ok(None),
        }
    }
    /// Items a day (default 500 at a warehouse, 0 at a store).
    async fn capacity(&self) -> Option<i32> {
        self.0.capacity
    }
    /// The dispositions performed, with their processing costs.
    async fn processing(&self) -> Option<Vec<DispositionCost>> {
        let f = returns::PolicyFields::of(&self.0);
        f.processing.map(|m| m.into_iter().map(|(d, cost)| DispositionCost { disposition: d.into(), cost }).collect())
    }
    async fn terms(&self) -> Option<Vec<DispositionTerms>> {
        let f = returns::PolicyFields::of(&self.0);
        f.terms.map(|m| {
            m.into_iter()
                .map(|(d, t)| DispositionTerms {
                    disposition: d.into(),
                    recovery_rate: t.recovery_rate,
                    yield_rate: t.yield_rate,
                    grades: t.grades.into_iter().map(Into::into).collect(),
                })
                .collect()
        })
    }
    async fn transport_cost_per_km(&self) -> Option<Decimal> {
        self.0.transport_cost_per_km.map(|d| d.0)
    }
    async fn hold_cost(&self) -> Option<Decimal> {
        self.0.hold_cost.map(|d| d.0)
    }
    async fn restock_cover_days(&self) -> Option<Decimal> {
        self.0.restock_cover_days.map(|d| d.0)
    }
    async fn updated_by(&self) -> &str {
        &self.0.updated_by
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReturnRateGroup {
    Sku,
    Category,
    Reason,
    /// The channel of the order: the connector's kind (`shopify`, …) or `api`.
    Channel,
}

/// The return rate of one group over the window.
#[derive(SimpleObject)]
pub struct ReturnRate {
    /// The SKU, category, reason or channel.
    pub key: String,
    /// Units sold (for a reason: every unit sold).
    pub sold: u64,
    pub returned: u64,
    /// Returned over sold (0 with nothing sold).
    pub rate: f64,
    /// SKU only: returned significantly more than the rest of its category (exact binomial
    /// test, Bonferroni across the SKUs with at least 30 sold, family-wise level 1 %).
    pub anomalous: bool,
    pub p_value: Option<f64>,
    pub category_rate: Option<f64>,
}

#[derive(Default)]
pub struct ReturnsQuery;

#[Object]
impl ReturnsQuery {
    /// The allocation policies: the tenant's, then each location's.
    async fn allocation_policies(&self, ctx: &Context<'_>) -> Result<Vec<AllocationPolicy>, ApiError> {
        let p = ctx.reader()?;
        let s = read_tx(ctx, p).await?;
        let rows = allocation::policies(&s).await?;
        s.commit().await?;
        Ok(rows.into_iter().map(AllocationPolicy).collect())
    }

    /// Allocation KPIs over orders allocated in `window` (default: the last 30 days).
    async fn allocation_kpis(
        &self,
        ctx: &Context<'_>,
        window: Option<TimeWindowInput>,
    ) -> Result<AllocationKpis, ApiError> {
        let p = ctx.reader()?;
        let (from, to) = self::window(window, 30)?;
        let s = read_tx(ctx, p).await?;
        let k = allocation::kpis(&s, from, to).await?;
        s.commit().await?;
        Ok(AllocationKpis {
            orders: k.orders,
            average_shipping_cost: k.average_shipping_cost,
            average_cost: k.average_cost,
            split_rate: k.split_rate,
            ship_from_store_share: k.ship_from_store_share,
        })
    }

    /// The returns policies: the tenant's, then each location's.
    async fn returns_policies(&self, ctx: &Context<'_>) -> Result<Vec<ReturnsPolicy>, ApiError> {
        let p = ctx.reader()?;
        let s = read_tx(ctx, p).await?;
        let rows = returns::policies(&s).await?;
        s.commit().await?;
        Ok(rows.into_iter().map(ReturnsPolicy).collect())
    }

    /// Returns plan runs, oldest first (`last: 10` for the latest).
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    async fn returns_runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, ReturnsRun>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page = repo::page(&s, repo::find::<returns_run::Entity>(&s), returns_run::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, ReturnsRun))
    }

    /// Return dispositions, oldest first: with `status`, those in it (PROPOSED: awaiting a
    /// decision); with `runId`, one run's.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)]
    async fn return_dispositions(
        &self,
        ctx: &Context<'_>,
        status: Option<ReturnDispositionStatus>,
        run_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, ReturnDisposition>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<return_disposition::Entity>(&s);
        if let Some(st) = status {
            q = q.filter(return_disposition::Column::Status.eq(st.as_str()));
        }
        q = filter_gid(q, return_disposition::Column::RunId, run_id.as_ref(), "ReturnsRun");
        let page = repo::page(&s, q, return_disposition::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, ReturnDisposition))
    }

    /// Return rates over `window` (default: the last 90 days) by SKU, category, reason or channel.
    async fn return_rates(
        &self,
        ctx: &Context<'_>,
        window: Option<TimeWindowInput>,
        group_by: ReturnRateGroup,
    ) -> Result<Vec<ReturnRate>, ApiError> {
        let p = ctx.reader()?;
        let (from, to) = self::window(window, returns::ANOMALY_WINDOW_DAYS)?;
        let group = match group_by {
            ReturnRateGroup::Sku => returns::GroupBy::Sku,
            ReturnRateGroup::Category => returns::GroupBy::Category,
            ReturnRateGroup::Reason => returns::GroupBy::Reason,
            ReturnRateGroup::Channel => returns::GroupBy::Channel,
        };
        let s = read_tx(ctx, p).await?;
        let rows = returns::rates_of(&s, from, to, group).await?;
        s.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| ReturnRate {
                anomalous: r.anomaly.is_some(),
                p_value: r.anomaly.as_ref().map(|a| a.p_value),
                category_rate: r.anomaly.as_ref().map(|a| a.category_rate),
                key: r.key,
                sold: r.sold,
                returned: r.returned,
                rate: r.rate,
            })
            .collect())
    }
}

/// The tenant's terms (no `locationId`) or one location's; every field replaces the stored one.
#[derive(InputObject)]
pub struct AllocationPolicyUpsertInput {
    pub location_id: Option<ID>,
    /// Tenant only: ship every order from this location.
    pub pinned_location_id: Option<ID>,
    /// Each parcel beyond an order's first; 0 or more.
    pub split_cost: Option<Decimal>,
    /// The share of a unit's price that a unit short where it is needed costs; 0 or more.
    pub stockout_share: Option<Decimal>,
    pub handling_per_parcel: Option<Decimal>,
    pub handling_per_unit: Option<Decimal>,
    /// Whether a store's location ships online orders.
    pub ship_from_store: Option<bool>,
    /// Nearest first; farther than the last band the location does not ship.
    pub bands: Option<Vec<ShippingBandInput>>,
}

#[derive(SimpleObject)]
pub struct AllocationPolicyPayload {
    pub allocation_policy: Option<AllocationPolicy>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject, Default)]
pub struct OrderAllocateInput {
    /// Open orders to re-allocate (1 to 5,000); absent: every open order of ours.
    pub order_ids: Option<Vec<ID>>,
}

#[derive(SimpleObject)]
pub struct OrderAllocatePayload {
    /// Each order looked at, with its allocation now.
    pub allocations: Vec<OrderAllocation>,
    /// Orders moved.
    pub reallocated: i32,
    /// MILP (the batch as one program) or SEQUENTIAL (one order at a time).
    pub method: Option<String>,
    /// What the batch cost as it was, and costs now.
    pub cost_before: Option<Decimal>,
    pub cost_after: Option<Decimal>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ReturnsPolicyUpsertInput {
    pub location_id: Option<ID>,
    /// Items a day the location processes (0: none).
    pub capacity: Option<i32>,
    /// The dispositions performed there (the tenant's: the default for locations), with costs.
    pub processing: Option<Vec<DispositionCostInput>>,
    /// Tenant only.
    pub terms: Option<Vec<DispositionTermsInput>>,
    /// Tenant only: moving an item a kilometre.
    pub transport_cost_per_km: Option<Decimal>,
    /// Tenant only: leaving an item unprocessed a day.
    pub hold_cost: Option<Decimal>,
    /// Tenant only: below this many days of forecast cover a restock is preferred (default 14).
    pub restock_cover_days: Option<Decimal>,
}

#[derive(SimpleObject)]
pub struct ReturnsPolicyPayload {
    pub returns_policy: Option<ReturnsPolicy>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ReturnLineInput {
    pub sku: String,
    pub quantity: i32,
    /// The condition on inspection; absent: not inspected (not planned until graded).
    pub grade: Option<ReturnGrade>,
}

#[derive(InputObject)]
pub struct ReturnCreateInput {
    /// A fulfilled order.
    pub order_id: ID,
    pub reason: String,
    pub lines: Vec<ReturnLineInput>,
}

#[derive(SimpleObject)]
pub struct ReturnCreatePayload {
    #[graphql(name = "return")]
    pub return_: Option<Return>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ReturnLineGradeInput {
    pub id: ID,
    pub grade: ReturnGrade,
}

#[derive(InputObject)]
pub struct ReturnGradeInput {
    /// 1 to 250 return lines; all are graded or none.
    pub lines: Vec<ReturnLineGradeInput>,
}

#[derive(SimpleObject)]
pub struct ReturnGradePayload {
    pub return_lines: Vec<super::types::ReturnLine>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct ReturnsPlanRunPayload {
    pub returns_run: Option<ReturnsRun>,
    /// The run's dispositions (PROPOSED and HELD).
    pub dispositions: Vec<ReturnDisposition>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ReturnDispositionDecisionInput {
    /// PROPOSED dispositions (1 to 250); all are decided or none.
    pub ids: Vec<ID>,
}

#[derive(SimpleObject)]
pub struct ReturnDispositionsPayload {
    pub return_dispositions: Vec<ReturnDisposition>,
    pub user_errors: Vec<UserError>,
}

fn decided(outcome: crate::graphql::errors::Outcome<Vec<return_disposition::Model>>) -> ReturnDispositionsPayload {
    match outcome {
        Ok(rows) => ReturnDispositionsPayload {
            return_dispositions: rows.into_iter().map(ReturnDisposition).collect(),
            user_errors: vec![],
        },
        Err(user_errors) => ReturnDispositionsPayload { return_dispositions: vec![], user_errors },
    }
}

/// `Some(None)` for an ID given that is not a location's.
fn location_arg(id: Option<&ID>) -> Option<Option<Uuid>> {
    id.map(|id| parse_gid(id, "Location"))
}

#[derive(Default)]
pub struct ReturnsMutation;

#[Object]
impl ReturnsMutation {
    /// Sets the shipping terms of the tenant or a location; orders allocated from now on use them.
    async fn allocation_policy_upsert(
        &self,
        ctx: &Context<'_>,
        input: AllocationPolicyUpsertInput,
    ) -> Result<AllocationPolicyPayload, ApiError> {
        let p = ctx.operator()?;
        let pinned = match input.pinned_location_id.as_ref().map(|id| parse_gid(id, "Location")) {
            Some(None) => {
                let e = UserError::not_found(&["input", "pinnedLocationId"], "location");
                return Ok(AllocationPolicyPayload { allocation_policy: None, user_errors: vec![e] });
            }
            Some(Some(id)) => Some(id),
            None => None,
        };
        let fields = allocation::PolicyFields {
            pinned_location_id: pinned,
            split_cost: input.split_cost,
            stockout_share: input.stockout_share,
            handling_per_parcel: input.handling_per_parcel,
            handling_per_unit: input.handling_per_unit,
            ship_from_store: input.ship_from_store,
            bands: input.bands.map(|b| {
                b.into_iter()
                    .map(|b| Band { max_km: b.max_km, parcel: b.parcel, unit: b.unit.unwrap_or_default() })
                    .collect()
            }),
        };
        let location = location_arg(input.location_id.as_ref());
        Ok(match allocation::upsert_policy(ctx.db(), p, location, fields).await? {
            Ok(m) => AllocationPolicyPayload { allocation_policy: Some(AllocationPolicy(m)), user_errors: vec![] },
            Err(user_errors) => AllocationPolicyPayload { allocation_policy: None, user_errors },
        })
    }

    /// Re-allocates open orders of ours (not mirrored from a store) as one batch, moving their
    /// reservations (ledger `release` and `reserve` movements) and emitting `order.allocated` for
    /// each order moved.
    async fn order_allocate(
        &self,
        ctx: &Context<'_>,
        input: Option<OrderAllocateInput>,
    ) -> Result<OrderAllocatePayload, ApiError> {
        let p = ctx.operator()?;
        let ids: Option<Vec<Option<Uuid>>> =
            input.and_then(|i| i.order_ids).map(|ids| ids.iter().map(|id| parse_gid(id, "Order")).collect());
        Ok(match allocation::reallocate(ctx.db(), p, ids.as_deref()).await? {
            Ok(b) => OrderAllocatePayload {
                reallocated: i32::try_from(b.changed).unwrap_or(i32::MAX),
                method: Some(b.method.to_uppercase()),
                cost_before: Some(b.cost_before),
                cost_after: Some(b.cost_after),
                allocations: b.allocations.into_iter().map(OrderAllocation).collect(),
                user_errors: vec![],
            },
            Err(user_errors) => OrderAllocatePayload {
                allocations: vec![],
                reallocated: 0,
                method: None,
                cost_before: None,
                cost_after: None,
                user_errors,
            },
        })
    }

    /// Sets the returns-handling terms of the tenant or a location; the next plan uses them.
    async fn returns_policy_upsert(
        &self,
        ctx: &Context<'_>,
        input: ReturnsPolicyUpsertInput,
    ) -> Result<ReturnsPolicyPayload, ApiError> {
        let p = ctx.operator()?;
        let fields = returns::PolicyFields {
            capacity: input.capacity,
            processing: input.processing.map(|v| v.into_iter().map(|c| (D::from(c.disposition), c.cost)).collect()),
            terms: input.terms.map(|v| {
                v.into_iter()
                    .map(|t| {
                        let terms = Terms {
                            recovery_rate: t.recovery_rate,
                            yield_rate: t.yield_rate,
                            grades: t.grades.unwrap_or_default().into_iter().map(G::from).collect(),
                        };
                        (D::from(t.disposition), terms)
                    })
                    .collect()
            }),
            transport_cost_per_km: input.transport_cost_per_km,
            hold_cost: input.hold_cost,
            restock_cover_days: input.restock_cover_days,
        };
        let location = location_arg(input.location_id.as_ref());
        Ok(match returns::upsert_policy(ctx.db(), p, location, fields).await? {
            Ok(m) => ReturnsPolicyPayload { returns_policy: Some(ReturnsPolicy(m)), user_errors: vec![] },
            Err(user_errors) => ReturnsPolicyPayload { returns_policy: None, user_errors },
        })
    }

    /// Records a return of a fulfilled order's units, graded on inspection.
    async fn return_create(
        &self,
        ctx: &Context<'_>,
        input: ReturnCreateInput,
    ) -> Result<ReturnCreatePayload, ApiError> {
        let p = ctx.operator()?;
        let req = returns::ReturnRequest {
            order_id: parse_gid(&input.order_id, "Order"),
            reason: input.reason,
            lines: input
                .lines
                .into_iter()
                .map(|l| returns::ReturnLineRequest {
                    sku: l.sku,
                    quantity: i64::from(l.quantity),
                    grade: l.grade.map(G::from),
                })
                .collect(),
        };
        Ok(match returns::create(ctx.db(), p, &req).await? {
            Ok(r) => ReturnCreatePayload { return_: Some(Return(r)), user_errors: vec![] },
            Err(user_errors) => ReturnCreatePayload { return_: None, user_errors },
        })
    }

    /// Grades returned lines on inspection (`A` as new to `D` broken); a store's returns arrive
    /// ungraded and are planned once graded. Planning uses the grade of the next run.
    async fn return_grade(&self, ctx: &Context<'_>, input: ReturnGradeInput) -> Result<ReturnGradePayload, ApiError> {
        let p = ctx.operator()?;
        let lines: Vec<(Option<Uuid>, G)> =
            input.lines.iter().map(|l| (parse_gid(&l.id, "ReturnLine"), G::from(l.grade))).collect();
        Ok(match returns::grade(ctx.db(), p, &lines).await? {
            Ok(rows) => ReturnGradePayload {
                return_lines: rows.into_iter().map(super::types::ReturnLine).collect(),
                user_errors: vec![],
            },
            Err(user_errors) => ReturnGradePayload { return_lines: vec![], user_errors },
        })
    }

    /// Plans the open returns' graded units as one day's batch: a disposition and a location
    /// each within capacities (PROPOSED) or held (HELD), replacing earlier open proposals; checks
    /// return rates for anomalies (`RETURN_RATE_HIGH` alerts).
    async fn returns_plan_run(&self, ctx: &Context<'_>) -> Result<ReturnsPlanRunPayload, ApiError> {
        let p = ctx.operator()?;
        let run = returns::plan(ctx.db(), p).await?;
        let s = read_tx(ctx, p).await?;
        let rows = repo::find::<return_disposition::Entity>(&s)
            .filter(return_disposition::Column::RunId.eq(run.id))
            .all(&s.tx)
            .await?;
        s.commit().await?;
        Ok(ReturnsPlanRunPayload {
            returns_run: Some(ReturnsRun(run)),
            dispositions: rows.into_iter().map(ReturnDisposition).collect(),
            user_errors: vec![],
        })
    }

    /// Approves proposed dispositions: the units are received at their location (restocked
    /// ones join its stock with a ledger movement) and `return.disposition_decided` is emitted.
    async fn return_disposition_approve(
        &self,
        ctx: &Context<'_>,
        input: ReturnDispositionDecisionInput,
    ) -> Result<ReturnDispositionsPayload, ApiError> {
        let p = ctx.operator()?;
        let ids: Vec<Option<Uuid>> = input.ids.iter().map(|id| parse_gid(id, "ReturnDisposition")).collect();
        Ok(decided(returns::decide(ctx.db(), p, &ids, true).await?))
    }

    /// Rejects proposed dispositions: their units are planned again by the next run.
    async fn return_disposition_reject(
        &self,
        ctx: &Context<'_>,
        input: ReturnDispositionDecisionInput,
    ) -> Result<ReturnDispositionsPayload, ApiError> {
        let p = ctx.operator()?;
        let ids: Vec<Option<Uuid>> = input.ids.iter().map(|id| parse_gid(id, "ReturnDisposition")).collect();
        Ok(decided(returns::decide(ctx.db(), p, &ids, false).await?))
    }
}
