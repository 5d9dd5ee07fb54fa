//! Replenishment: runs and their plans, approval into purchase orders and transfers, issuing and
//! receiving purchase orders, shipping and receiving transfers.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, QueryFilter};
use uuid::Uuid;

use super::pagination::{Window, connection};
use super::types::{Location, PurchaseOrder, Supplier, Variant, filter_gid, gid, loaders, parse_gid, stored_names};
use super::{ApiError, CtxExt, UserError, read_tx};
use crate::db::entities::{replenishment_line, replenishment_run, transfer};
use crate::db::repo;
use crate::services::replenish as service;
use crate::services::runs;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReplenishmentRunStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

stored_names!(ReplenishmentRunStatus, "replenishment run status" {
    Queued => "queued",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
});

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReplenishmentMethod {
    /// The mixed-integer program, solved exactly.
    Milp,
    /// The greedy plan (very large coupled plans), with its gap to the LP bound.
    Greedy,
}

/// A tenant-wide plan: what to buy and what to move so every SKU × location reaches its
/// order-up-to level for the fill-rate target.
#[derive(Clone)]
pub struct ReplenishmentRun(pub replenishment_run::Model);

#[Object]
impl ReplenishmentRun {
    pub async fn id(&self) -> ID {
        gid("ReplenishmentRun", self.0.id)
    }
    async fn status(&self) -> Result<ReplenishmentRunStatus, ApiError> {
        ReplenishmentRunStatus::stored(&self.0.status)
    }
    /// `forecast` when a forecast run queued it, else the subject that asked for it.
    async fn requested_by(&self) -> &str {
        &self.0.requested_by
    }
    async fn method(&self) -> Option<ReplenishmentMethod> {
        match self.0.method.as_deref() {
            Some("milp") => Some(ReplenishmentMethod::Milp),
            Some("greedy") => Some(ReplenishmentMethod::Greedy),
            _ => None,
        }
    }
    /// Purchases, order costs and transfers of every line.
    async fn cost(&self) -> Option<Decimal> {
        self.0.cost.map(|d| d.0)
    }
    /// Relative gap between the plan and the LP relaxation's bound (0 for an exact plan).
    async fn gap(&self) -> Option<f64> {
        Some(qm_domain::replenish::plan::relative_gap(self.0.objective?.0, self.0.lower_bound?))
    }
    /// SKU × locations planned.
    async fn series_total(&self) -> i32 {
        self.0.series_total
    }
    /// SKU × locations the plan leaves below their order-up-to level (no supplier, or a limit).
    async fn short_total(&self) -> i32 {
        self.0.short_total
    }
    async fn lines_total(&self) -> i32 {
        self.0.lines_total
    }
    /// Why a FAILED run failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// How the run calibrated its policy's spread on the recent past; null when it planned with
    /// the forecast's spread as it is (no forecast model yet, or too little history).
    async fn calibration(&self) -> Option<SpreadCalibration> {
        serde_json::from_value(self.0.calibration.clone()?).ok()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// The plan's lines, by SKU.
    #[graphql(complexity = "10 * child_complexity")]
    async fn lines(&self, ctx: &Context<'_>) -> Result<Vec<ReplenishmentLine>, ApiError> {
        let mut lines = loaders(ctx)?.lines_of_replenishment_run.load_one(self.0.id).await?.unwrap_or_default();
        lines.sort_by(|a, b| (&a.sku, a.id).cmp(&(&b.sku, b.id)));
        Ok(lines.into_iter().map(ReplenishmentLine).collect())
    }
}

/// The factor a run put on the forecast's spread and the lead time's: the one with which its
/// policy, replayed over the last `days` days (each day's review forecasting from the days before
/// it only, orders arriving after a lead time drawn from the supplier's, unmet demand lost),
/// reached the service target there. The forecast's band is honest about the forecast; the factor
/// is what that band means for stock, learnt from the tenant's own past.
#[derive(SimpleObject, serde::Serialize, serde::Deserialize)]
pub struct SpreadCalibration {
    /// Days replayed.
    pub days: i32,
    /// SKU × locations replayed: those with 56 days of history before the window (an even
    /// sample of at most 500).
    #[graphql(name = "seriesCount")]
    pub series: i32,
    /// The forecasts' over-forecast there (their sum over the demand that came, less 1), taken
    /// out before the replay.
    pub bias: f64,
    /// The factor on the spread of demand and lead time every line's safety stock uses.
    pub factor: f64,
    /// The service level the policy reached there with it...
    pub achieved: f64,
    /// ...for this target (the mean of the SKU × locations' targets).
    pub target: f64,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReplenishmentLineKind {
    Buy,
    Transfer,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReplenishmentLineStatus {
    Proposed,
    Approved,
}

stored_names!(ReplenishmentLineKind, "replenishment line kind" {
    Buy => "buy",
    Transfer => "transfer",
});

stored_names!(ReplenishmentLineStatus, "replenishment line status" {
    Proposed => "proposed",
    Approved => "approved",
});

/// One line of a plan: a purchase from a supplier, or a transfer from another location.
#[derive(Clone)]
pub struct ReplenishmentLine(pub replenishment_line::Model);

#[Object]
impl ReplenishmentLine {
    pub async fn id(&self) -> ID {
        gid("ReplenishmentLine", self.0.id)
    }
    async fn kind(&self) -> Result<ReplenishmentLineKind, ApiError> {
        ReplenishmentLineKind::stored(&self.0.kind)
    }
    async fn status(&self) -> Result<ReplenishmentLineStatus, ApiError> {
        ReplenishmentLineStatus::stored(&self.0.status)
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn variant(&self, ctx: &Context<'_>) -> Result<Option<Variant>, ApiError> {
        Ok(loaders(ctx)?.variant.load_one(self.0.variant_id).await?.map(Variant))
    }
    /// Where the goods go.
    async fn location(&self, ctx: &Context<'_>) -> Result<Option<Location>, ApiError> {
        Ok(loaders(ctx)?.location.load_one(self.0.location_id).await?.map(Location))
    }
    /// The supplier of a BUY line.
    async fn supplier(&self, ctx: &Context<'_>) -> Result<Option<Supplier>, ApiError> {
        match self.0.supplier_id {
            Some(id) => Ok(loaders(ctx)?.supplier.load_one(id).await?.map(Supplier)),
            None => Ok(None),
        }
    }
    /// The source of a TRANSFER line.
    #[graphql(name = "fromLocation")]
    async fn source_location(&self, ctx: &Context<'_>) -> Result<Option<Location>, ApiError> {
        match self.0.from_location_id {
            Some(id) => Ok(loaders(ctx)?.location.load_one(id).await?.map(Location)),
            None => Ok(None),
        }
    }
    async fn quantity(&self) -> i32 {
        self.0.quantity
    }
    async fn unit_cost(&self) -> Decimal {
        self.0.unit_cost.0
    }
    async fn cost(&self) -> Decimal {
        self.0.cost.0
    }
    async fn currency_code(&self) -> &str {
        &self.0.currency
    }
    /// The fill rate the destination can expect once this plan arrives.
    async fn expected_service_level(&self) -> f64 {
        self.0.expected_service_level
    }
    /// Why this quantity, in a sentence.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// The numbers behind the quantity: forecast over the lead time (with the lead time, its
    /// spread and the review period in days), safety stock by cause, order-up-to level,
    /// inventory position, rounding, shortfall, and under `plan` what the whole plan does at this
    /// SKU × location (bought, transferred in and out, position after).
    async fn explanation(&self) -> Json<serde_json::Value> {
        Json(self.0.explanation.clone())
    }
    async fn purchase_order_id(&self) -> Option<ID> {
        self.0.purchase_order_id.map(|id| gid("PurchaseOrder", id))
    }
    /// The draft purchase order an approved BUY line went into (as it is now: issued, received…).
    async fn purchase_order(&self, ctx: &Context<'_>) -> Result<Option<PurchaseOrder>, ApiError> {
        match self.0.purchase_order_id {
            Some(id) => Ok(loaders(ctx)?.purchase_order.load_one(id).await?.map(PurchaseOrder)),
            None => Ok(None),
        }
    }
    async fn transfer_id(&self) -> Option<ID> {
        self.0.transfer_id.map(|id| gid("Transfer", id))
    }
    /// The transfer an approved TRANSFER line made (as it is now: in transit, received…).
    async fn transfer(&self, ctx: &Context<'_>) -> Result<Option<Transfer>, ApiError> {
        match self.0.transfer_id {
            Some(id) => Ok(loaders(ctx)?.transfer.load_one(id).await?.map(Transfer)),
            None => Ok(None),
        }
    }
}

/// Where a transfer is in its life.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum TransferStatus {
    /// Approved from a plan: awaiting `transferShip`.
    Draft,
    /// Shipped (its units left the origin): awaiting `transferReceive`.
    InTransit,
    /// Received at its destination.
    Received,
    /// Moved at once (`stockTransfer`).
    Completed,
    /// Withdrawn before it shipped (`transferCancel`).
    Cancelled,
}

stored_names!(TransferStatus, "transfer status" {
    Draft => "draft",
    InTransit => "in_transit",
    Received => "received",
    Completed => "completed",
    Cancelled => "cancelled",
});

/// Stock moving from one location to another.
#[derive(Clone)]
pub struct Transfer(pub transfer::Model);

#[Object]
impl Transfer {
    pub async fn id(&self) -> ID {
        gid("Transfer", self.0.id)
    }
    async fn status(&self) -> Result<TransferStatus, ApiError> {
        TransferStatus::stored(&self.0.status)
    }
    /// Why it was cancelled.
    async fn status_reason(&self) -> Option<&str> {
        self.0.status_reason.as_deref()
    }
    /// The replenishment run whose approved plan made it; null for one moved at once
    /// (`stockTransfer`).
    async fn replenishment_run_id(&self) -> Option<ID> {
        self.0.replenishment_run_id.map(|r| gid("ReplenishmentRun", r))
    }
    async fn quantity(&self) -> i32 {
        self.0.quantity
    }
    async fn variant(&self, ctx: &Context<'_>) -> Result<Option<Variant>, ApiError> {
        Ok(loaders(ctx)?.variant.load_one(self.0.variant_id).await?.map(Variant))
    }
    #[graphql(name = "fromLocation")]
    async fn source_location(&self, ctx: &Context<'_>) -> Result<Option<Location>, ApiError> {
        Ok(loaders(ctx)?.location.load_one(self.0.from_location_id).await?.map(Location))
    }
    async fn to_location(&self, ctx: &Context<'_>) -> Result<Option<Location>, ApiError> {
        Ok(loaders(ctx)?.location.load_one(self.0.to_location_id).await?.map(Location))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn shipped_at(&self) -> Option<DateTime<Utc>> {
        self.0.shipped_at
    }
    async fn received_at(&self) -> Option<DateTime<Utc>> {
        self.0.received_at
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ServiceLevelKind {
    /// Share of demand served from stock.
    FillRate,
    /// Probability of no stockout in a replenishment cycle.
    Cycle,
}

/// The tenant's service targets: the default, per ABC class (by forecast value: A the items
/// making up 80 % of it, B the next 15 %, C the rest), per SKU; and what a transfer costs.
pub struct ReplenishmentSettings(pub service::Settings);

#[Object]
impl ReplenishmentSettings {
    async fn service_level_kind(&self) -> ServiceLevelKind {
        if self.0.fill_rate { ServiceLevelKind::FillRate } else { ServiceLevelKind::Cycle }
    }
    /// The default target, strictly between 0 and 1.
    async fn target_service_level(&self) -> f64 {
        self.0.target
    }
    async fn class_a_target(&self) -> Option<f64> {
        self.0.class_targets[0]
    }
    async fn class_b_target(&self) -> Option<f64> {
        self.0.class_targets[1]
    }
    async fn class_c_target(&self) -> Option<f64> {
        self.0.class_targets[2]
    }
    /// What moving one unit between two locations costs.
    async fn transfer_unit_cost(&self) -> Decimal {
        self.0.transfer_unit_cost
    }
    /// The most one plan spends across all suppliers; null: no limit.
    async fn plan_budget(&self) -> Option<Decimal> {
        self.0.plan_budget
    }
    /// SKUs with a target of their own (it wins over the class and the default).
    /// Lanes whose transfer cost differs from `transferUnitCost`.
    async fn lane_costs(&self) -> Vec<ReplenishmentLaneCost> {
        self.0
            .lane_costs
            .iter()
            .map(|((from, to), cost)| ReplenishmentLaneCost {
                from_location_id: gid("Location", *from),
                to_location_id: gid("Location", *to),
                unit_cost: *cost,
            })
            .collect()
    }
    async fn sku_targets(&self, ctx: &Context<'_>) -> Result<Vec<ReplenishmentSkuTarget>, ApiError> {
        let ids: Vec<Uuid> = self.0.sku_targets.keys().copied().collect();
        let variants = loaders(ctx)?.variant.load_many(ids).await?;
        let mut out: Vec<ReplenishmentSkuTarget> = self
            .0
            .sku_targets
            .iter()
            .filter_map(|(id, t)| {
                variants.get(id).map(|v| ReplenishmentSkuTarget { sku: v.sku.clone(), target_service_level: *t })
            })
            .collect();
        out.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(out)
    }
}

#[derive(SimpleObject)]
pub struct ReplenishmentSkuTarget {
    pub sku: String,
    pub target_service_level: f64,
}

/// A lane with its own transfer cost.
#[derive(SimpleObject)]
pub struct ReplenishmentLaneCost {
    pub from_location_id: ID,
    pub to_location_id: ID,
    pub unit_cost: Decimal,
}

#[derive(Default)]
pub struct ReplenishmentQuery;

#[Object]
impl ReplenishmentQuery {
    /// Replenishment runs, oldest first (`last: 10` for the latest).
    async fn replenishment_runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, ReplenishmentRun>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let page =
            repo::page(&s, repo::find::<replenishment_run::Entity>(&s), replenishment_run::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, ReplenishmentRun))
    }

    /// A replenishment run and its plan: `runId`, or the latest completed run; null when none.
    async fn replenishment_plan(
        &self,
        ctx: &Context<'_>,
        run_id: Option<ID>,
    ) -> Result<Option<ReplenishmentRun>, ApiError> {
        let p = ctx.reader()?;
        let s = read_tx(ctx, p).await?;
        let run = match run_id {
            Some(id) => match parse_gid(&id, "ReplenishmentRun") {
                Some(id) => runs::by_id::<replenishment_run::Entity>(&s, id).await?,
                None => None,
            },
            None => runs::latest_completed::<replenishment_run::Entity>(&s).await?,
        };
        s.commit().await?;
        Ok(run.map(ReplenishmentRun))
    }

    /// A plan's lines a page at a time, in the plan's order (by SKU): `runId`'s, or the latest
    /// completed run's (none when there is none); with `status`, `kind`, `sku`, `supplierId` (BUY
    /// lines from that supplier) or `locationId` (lines whose goods go there), those only. What a
    /// buyer reviews before approving some lines; `replenishmentPlan { lines }` holds all of them.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)]
    async fn replenishment_lines(
        &self,
        ctx: &Context<'_>,
        run_id: Option<ID>,
        status: Option<ReplenishmentLineStatus>,
        kind: Option<ReplenishmentLineKind>,
        sku: Option<String>,
        supplier_id: Option<ID>,
        location_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, ReplenishmentLine>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let run = match run_id {
            Some(id) => parse_gid(&id, "ReplenishmentRun"),
            None => runs::latest_completed::<replenishment_run::Entity>(&s).await?.map(|r| r.id),
        };
        // No run, or an ID of another kind (or tenant): nothing matches.
        let mut q = repo::find::<replenishment_line::Entity>(&s)
            .filter(replenishment_line::Column::RunId.eq(run.unwrap_or_default()));
        if let Some(st) = status {
            q = q.filter(replenishment_line::Column::Status.eq(st.as_str()));
        }
        if let Some(k) = kind {
            q = q.filter(replenishment_line::Column::Kind.eq(k.as_str()));
        }
        if let Some(sku) = sku {
            q = q.filter(replenishment_line::Column::Sku.eq(sku));
        }
        q = filter_gid(q, replenishment_line::Column::SupplierId, supplier_id.as_ref(), "Supplier");
        q = filter_gid(q, replenishment_line::Column::LocationId, location_id.as_ref(), "Location");
        let page = repo::page(&s, q, replenishment_line::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, ReplenishmentLine))
    }

    /// The tenant's service targets and transfer cost (the defaults until set).
    async fn replenishment_settings(&self, ctx: &Context<'_>) -> Result<ReplenishmentSettings, ApiError> {
        let p = ctx.reader()?;
        let s = read_tx(ctx, p).await?;
        let settings = service::settings(&s).await?;
        s.commit().await?;
        Ok(ReplenishmentSettings(settings))
    }

    /// Transfers, oldest first: with `status`, those in it (`DRAFT`: approved from a plan,
    /// awaiting `transferShip`; `IN_TRANSIT`: awaiting `transferReceive`); with `fromLocationId`
    /// or `toLocationId`, those leaving or reaching that location.
    #[graphql(complexity = "first.or(last).unwrap_or(0).max(0) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)]
    async fn transfers(
        &self,
        ctx: &Context<'_>,
        status: Option<TransferStatus>,
        from_location_id: Option<ID>,
        to_location_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Transfer>, ApiError> {
        let p = ctx.reader()?;
        let args = Window::new(first, after, last, before).args::<Uuid>()?;
        let s = read_tx(ctx, p).await?;
        let mut q = repo::find::<transfer::Entity>(&s);
        if let Some(st) = status {
            q = q.filter(transfer::Column::Status.eq(st.as_str()));
        }
        q = filter_gid(q, transfer::Column::FromLocationId, from_location_id.as_ref(), "Location");
        q = filter_gid(q, transfer::Column::ToLocationId, to_location_id.as_ref(), "Location");
        let page = repo::page(&s, q, transfer::Column::Id, &args).await?;
        s.commit().await?;
        Ok(connection(page, |m| m.id, Transfer))
    }

    /// A transfer by its ID; null when there is none.
    async fn transfer(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Transfer>, ApiError> {
        let p = ctx.reader()?;
        let Some(id) = parse_gid(&id, "Transfer") else { return Ok(None) };
        let s = read_tx(ctx, p).await?;
        let t = service::transfer_by_id(&s, id).await?;
        s.commit().await?;
        Ok(t.map(Transfer))
    }
}

#[derive(SimpleObject)]
pub struct ReplenishmentRunPayload {
    /// The run queued (or the one already queued or running).
    pub replenishment_run: Option<ReplenishmentRun>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ReplenishmentPlanApproveInput {
    pub run_id: ID,
    /// The lines to approve; all of the run's lines when absent.
    pub line_ids: Option<Vec<ID>>,
}

#[derive(SimpleObject)]
pub struct ReplenishmentPlanApprovePayload {
    /// Draft purchase orders, one per supplier and location.
    pub purchase_orders: Vec<PurchaseOrder>,
    /// Draft transfers.
    pub transfers: Vec<Transfer>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct PurchaseOrderIssueInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct PurchaseOrderPayload {
    pub purchase_order: Option<PurchaseOrder>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct PurchaseOrderReceiveLineInput {
    pub line_id: ID,
    pub quantity: i32,
}

#[derive(InputObject)]
pub struct PurchaseOrderReceiveInput {
    pub purchase_order_id: ID,
    pub lines: Vec<PurchaseOrderReceiveLineInput>,
    /// A retried receipt with the same key returns the first result instead of receiving twice.
    pub idempotency_key: Option<String>,
}

#[derive(InputObject)]
pub struct PurchaseOrderCancelInput {
    pub id: ID,
    /// Why (1 to 1000 characters): kept on the order, and sent to the supplier with
    /// `purchase_order.cancelled` when the order had been issued.
    pub reason: String,
}

#[derive(InputObject)]
pub struct TransferMoveInput {
    pub id: ID,
}

#[derive(InputObject)]
pub struct TransferCancelInput {
    pub id: ID,
    /// Why (1 to 1000 characters): kept on the transfer and in `transfer.cancelled`.
    pub reason: String,
}

#[derive(SimpleObject)]
pub struct TransferPayload {
    pub transfer: Option<Transfer>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ReplenishmentSettingsSetInput {
    #[graphql(default_with = "ServiceLevelKind::FillRate")]
    pub service_level_kind: ServiceLevelKind,
    /// The default target, strictly between 0 and 1 (e.g. 0.95).
    pub target_service_level: f64,
    /// Targets per ABC class; a class without one uses the default.
    pub class_a_target: Option<f64>,
    pub class_b_target: Option<f64>,
    pub class_c_target: Option<f64>,
    /// What moving one unit between two locations costs (default 0.50).
    pub transfer_unit_cost: Option<Decimal>,
    /// The most one plan spends across all suppliers (each supplier's own `planBudget` applies
    /// as well); null: no limit.
    pub plan_budget: Option<Decimal>,
}

#[derive(SimpleObject)]
pub struct ReplenishmentSettingsPayload {
    pub replenishment_settings: Option<ReplenishmentSettings>,
    pub user_errors: Vec<UserError>,
}

impl From<crate::graphql::errors::Outcome<service::Settings>> for ReplenishmentSettingsPayload {
    fn from(outcome: crate::graphql::errors::Outcome<service::Settings>) -> Self {
        match outcome {
            Ok(s) => Self { replenishment_settings: Some(ReplenishmentSettings(s)), user_errors: vec![] },
            Err(user_errors) => Self { replenishment_settings: None, user_errors },
        }
    }
}

#[derive(InputObject)]
pub struct ReplenishmentLaneCostSetInput {
    pub from_location_id: ID,
    pub to_location_id: ID,
    /// What moving one unit from the first to the second location costs; null removes the
    /// lane's own cost (the tenant's `transferUnitCost` applies again).
    pub unit_cost: Option<Decimal>,
}

#[derive(InputObject)]
pub struct ReplenishmentSkuTargetSetInput {
    pub sku: String,
    /// The SKU's own target, strictly between 0 and 1; null removes it.
    pub target_service_level: Option<f64>,
}

#[derive(Default)]
pub struct ReplenishmentMutation;

#[Object]
impl ReplenishmentMutation {
    /// Plans replenishment now from the latest forecasts (runs also follow every forecast run).
    async fn replenishment_run(&self, ctx: &Context<'_>) -> Result<ReplenishmentRunPayload, ApiError> {
        let p = ctx.operator()?;
        if let Some(busy) = super::queue_full(ctx, p).await? {
            return Ok(ReplenishmentRunPayload { replenishment_run: None, user_errors: vec![busy] });
        }
        let run = service::request_run(ctx.db(), p).await?;
        Ok(ReplenishmentRunPayload { replenishment_run: Some(ReplenishmentRun(run)), user_errors: vec![] })
    }

    /// Replaces the tenant's service targets and transfer cost; the next run plans with them.
    async fn replenishment_settings_set(
        &self,
        ctx: &Context<'_>,
        input: ReplenishmentSettingsSetInput,
    ) -> Result<ReplenishmentSettingsPayload, ApiError> {
        let p = ctx.operator()?;
        let new = service::Settings {
            fill_rate: input.service_level_kind == ServiceLevelKind::FillRate,
            target: input.target_service_level,
            class_targets: [input.class_a_target, input.class_b_target, input.class_c_target],
            transfer_unit_cost: input.transfer_unit_cost.unwrap_or_else(service::default_transfer_unit_cost),
            sku_targets: Default::default(),
            lane_costs: Default::default(),
            plan_budget: input.plan_budget,
        };
        Ok(service::set_settings(ctx.db(), p, &new).await?.into())
    }

    /// Sets one SKU's service target (null removes it); it wins over its class and the default.
    async fn replenishment_sku_target_set(
        &self,
        ctx: &Context<'_>,
        input: ReplenishmentSkuTargetSetInput,
    ) -> Result<ReplenishmentSettingsPayload, ApiError> {
        let p = ctx.operator()?;
        Ok(service::set_sku_target(ctx.db(), p, &input.sku, input.target_service_level).await?.into())
    }

    /// Sets the cost of moving a unit along one lane (from one location to another), where it
    /// differs from the tenant's `transferUnitCost`; null removes it.
    async fn replenishment_lane_cost_set(
        &self,
        ctx: &Context<'_>,
        input: ReplenishmentLaneCostSetInput,
    ) -> Result<ReplenishmentSettingsPayload, ApiError> {
        let p = ctx.operator()?;
        let from = parse_gid(&input.from_location_id, "Location");
        let to = parse_gid(&input.to_location_id, "Location");
        Ok(service::set_lane_cost(ctx.db(), p, from, to, input.unit_cost).await?.into())
    }

    /// Approves lines of the latest plan: buys become draft purchase orders, transfers draft
    /// transfers (`transfer.created`). Nothing is sent until a purchase order is issued.
    async fn replenishment_plan_approve(
        &self,
        ctx: &Context<'_>,
        input: ReplenishmentPlanApproveInput,
    ) -> Result<ReplenishmentPlanApprovePayload, ApiError> {
        let p = ctx.operator()?;
        let run_id = parse_gid(&input.run_id, "ReplenishmentRun");
        let line_ids: Option<Vec<Option<Uuid>>> =
            input.line_ids.map(|ids| ids.iter().map(|id| parse_gid(id, "ReplenishmentLine")).collect());
        Ok(match service::approve(ctx.db(), p, run_id, line_ids).await? {
            Ok(a) => ReplenishmentPlanApprovePayload {
                purchase_orders: a.purchase_orders.into_iter().map(PurchaseOrder).collect(),
                transfers: a.transfers.into_iter().map(Transfer).collect(),
                user_errors: vec![],
            },
            Err(user_errors) => {
                ReplenishmentPlanApprovePayload { purchase_orders: vec![], transfers: vec![], user_errors }
            }
        })
    }

    /// Issues a draft purchase order to its supplier (`purchase_order.issued`).
    async fn purchase_order_issue(
        &self,
        ctx: &Context<'_>,
        input: PurchaseOrderIssueInput,
    ) -> Result<PurchaseOrderPayload, ApiError> {
        let p = ctx.operator()?;
        let id = parse_gid(&input.id, "PurchaseOrder");
        Ok(match service::issue_purchase_order(ctx.db(), p, id).await? {
            Ok(po) => PurchaseOrderPayload { purchase_order: Some(PurchaseOrder(po)), user_errors: vec![] },
            Err(user_errors) => PurchaseOrderPayload { purchase_order: None, user_errors },
        })
    }

    /// Cancels a purchase order the supplier has not shipped: a draft, or an issued or
    /// acknowledged order (`purchase_order.cancelled` tells the supplier). Its units no longer
    /// count as on order, so the next replenishment run plans them again. Cancelling it again
    /// changes nothing; a shipped or received order cannot be cancelled.
    async fn purchase_order_cancel(
        &self,
        ctx: &Context<'_>,
        input: PurchaseOrderCancelInput,
    ) -> Result<PurchaseOrderPayload, ApiError> {
        let p = ctx.operator()?;
        let id = parse_gid(&input.id, "PurchaseOrder");
        Ok(match service::cancel_purchase_order(ctx.db(), p, id, &input.reason).await? {
            Ok(po) => PurchaseOrderPayload { purchase_order: Some(PurchaseOrder(po)), user_errors: vec![] },
            Err(user_errors) => PurchaseOrderPayload { purchase_order: None, user_errors },
        })
    }

    /// Receives goods against an issued purchase order, in part or in full; stock and the ledger
    /// go up by what arrived.
    async fn purchase_order_receive(
        &self,
        ctx: &Context<'_>,
        input: PurchaseOrderReceiveInput,
    ) -> Result<PurchaseOrderPayload, ApiError> {
        let p = ctx.operator()?;
        let req = service::ReceiveRequest {
            purchase_order_id: parse_gid(&input.purchase_order_id, "PurchaseOrder"),
            lines: input
                .lines
                .iter()
                .map(|l| (parse_gid(&l.line_id, "PurchaseOrderLine"), i64::from(l.quantity)))
                .collect(),
            idempotency_key: input.idempotency_key,
            by: p.subject.clone(),
        };
        Ok(match service::receive_purchase_order(ctx.db(), p, &req).await? {
            Ok(po) => PurchaseOrderPayload { purchase_order: Some(PurchaseOrder(po)), user_errors: vec![] },
            Err(user_errors) => PurchaseOrderPayload { purchase_order: None, user_errors },
        })
    }

    /// Ships a draft transfer: the units leave the source.
    async fn transfer_ship(&self, ctx: &Context<'_>, input: TransferMoveInput) -> Result<TransferPayload, ApiError> {
        let p = ctx.operator()?;
        let id = parse_gid(&input.id, "Transfer");
        Ok(match service::ship_transfer(ctx.db(), p, id).await? {
            Ok(t) => TransferPayload { transfer: Some(Transfer(t)), user_errors: vec![] },
            Err(user_errors) => TransferPayload { transfer: None, user_errors },
        })
    }

    /// Receives a shipped transfer: the units arrive at the destination.
    async fn transfer_receive(&self, ctx: &Context<'_>, input: TransferMoveInput) -> Result<TransferPayload, ApiError> {
        let p = ctx.operator()?;
        let id = parse_gid(&input.id, "Transfer");
        Ok(match service::receive_transfer(ctx.db(), p, id).await? {
            Ok(t) => TransferPayload { transfer: Some(Transfer(t)), user_errors: vec![] },
            Err(user_errors) => TransferPayload { transfer: None, user_errors },
        })
    }

    /// Cancels a draft transfer (`transfer.cancelled`): its units no longer count as on their way
    /// to the destination nor as spoken for at the source. Cancelling it again changes nothing;
    /// a shipped transfer cannot be cancelled (receive it).
    async fn transfer_cancel(
        &self,
        ctx: &Context<'_>,
        input: TransferCancelInput,
    ) -> Result<TransferPayload, ApiError> {
        let p = ctx.operator()?;
        let id = parse_gid(&input.id, "Transfer");
        Ok(match service::cancel_transfer(ctx.db(), p, id, &input.reason).await? {
            Ok(t) => TransferPayload { transfer: Some(Transfer(t)), user_errors: vec![] },
            Err(user_errors) => TransferPayload { transfer: None, user_errors },
        })
    }
}
