//! Returns: recording a return, planning what becomes of returned items
//! (`qm_domain::returns`), the merchant's decisions, and return rates.
//!
//! `returnsPlanRun` plans every graded unit of the open returns (those not yet decided) as one
//! day's batch: a disposition and a returns-handling location each, within each location's daily
//! capacity, the rest held. The run replaces the open proposals of earlier runs. Approving a
//! disposition receives the units at its location: a restock (as new or open-box) adds them to
//! that location's stock with a ledger movement (pushed to a connected store like any change
//! made here); every approval emits `return.disposition_decided`. A return whose lines are all
//! decided is closed (unless it is a store's, whose status follows the store).
//!
//! Terms come from `returns_policies`: the tenant's (recovery terms per disposition, transport
//! per km, the hold cost, the days of cover below which a restock is preferred, default
//! processing costs) and each location's (daily capacity, the dispositions it performs and their
//! costs). Without a policy, warehouses handle returns ([`DEFAULT_CAPACITY`] a day) and stores do
//! not.

use std::collections::{BTreeMap, HashMap, HashSet};

use qm_domain::returns::{self as engine, Disposition, Grade, Item, Location, Terms, rates};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::entities::{
    Dec, location, order, order_line, product, return_, return_disposition, return_line, returns_policy, returns_run,
    stock_level, supplier_item, variant,
};
use crate::db::{Db, Scoped, TxMode, repo};
use crate::graphql::errors::{Outcome, UserError, UserErrorCode};
use crate::graphql::types::gid;
use crate::services::{allocation, lookup};

/// Items a day a warehouse processes when no policy says.
pub const DEFAULT_CAPACITY: i32 = 500;
/// The most dispositions one approval or rejection decides.
pub const MAX_DECISIONS: usize = 250;
/// Return rates behind the anomaly alert: the last this many days.
pub const ANOMALY_WINDOW_DAYS: i64 = 90;
/// The anomaly test's family-wise significance level and the sales a SKU needs to be tested.
pub const ANOMALY_ALPHA: f64 = 0.01;
pub const ANOMALY_MIN_SOLD: u64 = 30;
/// Return statuses whose lines still wait for a decision.
const OPEN_RETURNS: [&str; 3] = ["requested", "open", "received"];

// ---------------------------------------------------------------------------------------------
// Policies

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyFields {
    pub capacity: Option<i32>,
    pub processing: Option<BTreeMap<Disposition, Decimal>>,
    pub terms: Option<BTreeMap<Disposition, Terms>>,
    pub transport_cost_per_km: Option<Decimal>,
    pub hold_cost: Option<Decimal>,
    pub restock_cover_days: Option<Decimal>,
}

/// Processing cost per item of each disposition when no policy sets them.
pub fn default_processing() -> BTreeMap<Disposition, Decimal> {
    [
        (Disposition::RestockNew, 200),
        (Disposition::OpenBox, 300),
        (Disposition::Refurbish, 1200),
        (Disposition::ReturnToVendor, 400),
        (Disposition::Liquidate, 100),
        (Disposition::Recycle, 50),
    ]
    .into_iter()
    .map(|(d, c)| (d, Decimal::new(c, 2)))
    .collect()
}

/// What each disposition recovers when no policy says: restock grade A as new, open-box A and B
/// at 75 %, refurbish B and C (70 %, 80 % succeed), the supplier credits 90 % of its cost,
/// liquidators pay 15 %, recycling 2 %.
pub fn default_terms() -> BTreeMap<Disposition, Terms> {
    let t = |rate: i64, yield_rate: Option<i64>, grades: &[Grade]| Terms {
        recovery_rate: Decimal::new(rate, 2),
        yield_rate: yield_rate.map(|y| Decimal::new(y, 2)),
        grades: grades.to_vec(),
    };
    BTreeMap::from([
        (Disposition::RestockNew, t(100, None, &[Grade::A])),
        (Disposition::OpenBox, t(75, None, &[Grade::A, Grade::B])),
        (Disposition::Refurbish, t(70, Some(80), &[Grade::B, Grade::C])),
        (Disposition::ReturnToVendor, t(90, None, &[])),
        (Disposition::Liquidate, t(15, None, &[])),
        (Disposition::Recycle, t(2, None, &[])),
    ])
}

impl PolicyFields {
    pub fn of(m: &returns_policy::Model) -> Self {
        Self {
            capacity: m.capacity,
            processing: m.processing.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok()),
            terms: m.terms.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok()),
            transport_cost_per_km: m.transport_cost_per_km.map(|d| d.0),
            hold_cost: m.hold_cost.map(|d| d.0),
            restock_cover_days: m.restock_cover_days.map(|d| d.0),
        }
    }

    pub fn validate(&self, tenant_scope: bool) -> Vec<UserError> {
        let mut errors = Vec::new();
        if self.capacity.is_some_and(|c| !(0..=1_000_000).contains(&c)) {
            errors.push(UserError::invalid(&["input", "capacity"], "capacity is 0 to 1,000,000 items a day"));
        }
        let max = Decimal::from(allocation::MAX_AMOUNT);
        if self.processing.as_ref().is_some_and(|p| p.values().any(|c| *c < Decimal::ZERO || *c > max)) {
            errors.push(UserError::invalid(&["input", "processing"], format!("processing costs are 0 to {max}")));
        }
        if let Some(terms) = &self.terms {
            if !tenant_scope {
                errors.push(UserError::invalid(
                    &["input", "terms"],
                    "recovery terms are the tenant's: leave locationId out",
                ));
            }
            for (d, t) in terms {
                let bad_rate = t.recovery_rate < Decimal::ZERO || t.recovery_rate > Decimal::ONE;
                let bad_yield = t.yield_rate.is_some_and(|y| y <= Decimal::ZERO || y > Decimal::ONE);
                if bad_rate || bad_yield {
                    errors.push(UserError::invalid(
                        &["input", "terms", d.as_str()],
                        "recovery rates are 0 to 1 and yields above 0 up to 1",
                    ));
                }
            }
        }
        for (name, v, most) in [
            ("transportCostPerKm", self.transport_cost_per_km, max),
            ("holdCost", self.hold_cost, max),
            ("restockCoverDays", self.restock_cover_days, Decimal::from(3650)),
        ] {
            if v.is_some_and(|d| d < Decimal::ZERO || d > most) {
                errors.push(UserError::invalid(&["input", name], format!("{name} is 0 to {most}")));
            }
            if !tenant_scope && v.is_some() {
                errors.push(UserError::invalid(
                    &["input", name],
                    format!("{name} is the tenant's: leave locationId out"),
                ));
            }
        }
        errors
    }
}

pub async fn policies(s: &Scoped) -> Result<Vec<returns_policy::Model>, DbErr> {
    repo::find::<returns_policy::Entity>(s).order_by_asc(returns_policy::Column::ScopeKey).all(&s.tx).await
}

/// Sets the tenant's returns policy (`location` `None`) or a location's, replacing its fields.
pub async fn upsert_policy(
    db: &Db,
    p: &Principal,
    location: Option<Option<Uuid>>,
    fields: PolicyFields,
) -> Result<Outcome<returns_policy::Model>, DbErr> {
    let errors = fields.validate(location.is_none());
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let key = match lookup::location_scope(&s, location).await? {
        Ok(k) => k,
        Err(e) => return Ok(Err(vec![e])),
    };
    let existing = repo::find::<returns_policy::Entity>(&s)
        .filter(returns_policy::Column::ScopeKey.eq(key.clone()))
        .one(&s.tx)
        .await?;
    let row = returns_policy::Model {
        tenant_id: s.tenant(),
        id: existing.as_ref().map_or_else(Uuid::now_v7, |e| e.id),
        scope_key: key,
        capacity: fields.capacity,
        processing: fields.processing.as_ref().map(|v| json!(v)),
        terms: fields.terms.as_ref().map(|v| json!(v)),
        transport_cost_per_km: fields.transport_cost_per_km.map(Dec),
        hold_cost: fields.hold_cost.map(Dec),
        restock_cover_days: fields.restock_cover_days.map(Dec),
        updated_by: p.subject.clone(),
        updated_at: repo::now(),
    };
    let am = returns_policy::ActiveModel::from(row.clone());
    if existing.is_some() {
        sea_orm::ActiveModelTrait::update(sea_orm::ActiveModelTrait::reset_all(am), &s.tx).await?;
    } else {
        returns_policy::Entity::insert(am).exec_without_returning(&s.tx).await?;
    }
    s.commit().await?;
    Ok(Ok(row))
}

// ---------------------------------------------------------------------------------------------
// Recording a return

pub struct ReturnLineRequest {
    pub sku: String,
    pub quantity: i64,
    /// `A`–`D`; `None`: not inspected yet (not planned until graded).
    pub grade: Option<Grade>,
}

pub struct ReturnRequest {
    pub order_id: Option<Uuid>,
    pub reason: String,
    pub lines: Vec<ReturnLineRequest>,
}

/// Records a return of an order's units (at most what was ordered less what earlier returns took).
pub async fn create(db: &Db, p: &Principal, req: &ReturnRequest) -> Result<Outcome<return_::Model>, DbErr> {
    let reason = req.reason.trim();
    if reason.is_empty() || reason.len() > 255 {
        return Ok(Err(vec![UserError::invalid(&["input", "reason"], "a reason is 1 to 255 characters")]));
    }
    if req.lines.is_empty() || req.lines.len() > 250 {
        return Ok(Err(vec![UserError::invalid(&["input", "lines"], "a return has 1 to 250 lines")]));
    }
    crate::services::stock::retrying!(db, p, |s| {
        let Some(o) = (match req.order_id {
            Some(id) => lookup::order(s, id).await?,
            None => None,
        }) else {
            return Ok(Err(vec![UserError::not_found(&["input", "orderId"], "order")]));
        };
        if o.status != "fulfilled" {
            return Ok(Err(vec![UserError::new(
                &["input", "orderId"],
                UserErrorCode::InvalidState,
                format!("a {} order has nothing to return: it has not shipped", o.status),
            )]));
        }
        let ordered =
            repo::find::<order_line::Entity>(s).filter(order_line::Column::OrderId.eq(o.id)).all(&s.tx).await?;
        let earlier: Vec<Uuid> = repo::find::<return_::Entity>(s)
            .filter(return_::Column::OrderId.eq(o.id))
            .filter(return_::Column::Status.is_not_in(["cancelled", "declined"]))
            .all(&s.tx)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut left: HashMap<Uuid, i64> = HashMap::new();
        for l in &ordered {
            *left.entry(l.variant_id).or_default() += i64::from(l.quantity);
        }
        for l in repo::find_in::<return_line::Entity, _>(s, return_line::Column::ReturnId, earlier, "uuid", &[]).await?
        {
            *left.entry(l.variant_id).or_default() -= i64::from(l.quantity);
        }
        let mut rows = Vec::with_capacity(req.lines.len());
        let mut errors = Vec::new();
        let now = repo::now();
        let ret = return_::Model {
            tenant_id: s.tenant(),
            id: Uuid::now_v7(),
            order_id: o.id,
            status: "open".into(),
            reason: reason.to_owned(),
            created_at: now,
            updated_at: now,
        };
        for (i, l) in req.lines.iter().enumerate() {
            let at = i.to_string();
            let Some(v) = lookup::variant_by_sku(s, &l.sku).await? else {
                errors.push(UserError::not_found(&["input", "lines", &at, "sku"], "sku"));
                continue;
            };
            let room = left.entry(v.id).or_default();
            if l.quantity <= 0 || l.quantity > *room {
                errors.push(UserError::invalid(
                    &["input", "lines", &at, "quantity"],
                    format!("1 to {} units of {} can still be returned from this order", (*room).max(0), l.sku),
                ));
                continue;
            }
            *room -= l.quantity;
            rows.push(return_line::Model {
                tenant_id: s.tenant(),
                id: Uuid::now_v7(),
                return_id: ret.id,
                variant_id: v.id,
                quantity: i32::try_from(l.quantity).unwrap_or(i32::MAX),
                condition: l.grade.map_or("unknown", grade_str).into(),
            });
        }
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        return_::Entity::insert(return_::ActiveModel::from(ret.clone())).exec_without_returning(&s.tx).await?;
        return_line::Entity::insert_many(rows.into_iter().map(return_line::ActiveModel::from))
            .exec_without_returning(&s.tx)
            .await?;
        crate::services::sync::export::queue_return(s, ret.id, ret.order_id, "created").await?;
        Ok(Ok(ret))
    })
}

/// Grades returned lines on inspection (a store's returns arrive ungraded): all or none; a
/// line with units already approved keeps its grade.
pub async fn grade(
    db: &Db,
    p: &Principal,
    lines: &[(Option<Uuid>, Grade)],
) -> Result<Outcome<Vec<return_line::Model>>, DbErr> {
    if lines.is_empty() || lines.len() > MAX_DECISIONS {
        return Ok(Err(vec![UserError::invalid(&["input", "lines"], format!("1 to {MAX_DECISIONS} lines"))]));
    }
    crate::services::stock::retrying!(db, p, |s| {
        let mut out = Vec::with_capacity(lines.len());
        let mut errors = Vec::new();
        for (i, (id, g)) in lines.iter().enumerate() {
            let at = ["input", "lines", &i.to_string(), "id"];
            let found = match id {
                Some(id) => {
                    repo::find::<return_line::Entity>(s)
                        .filter(return_line::Column::Id.eq(*id))
                        .lock_exclusive()
                        .one(&s.tx)
                        .await?
                }
                None => None,
            };
            let Some(line) = found else {
                errors.push(UserError::not_found(&at, "return line"));
                continue;
            };
            if approved_units(s, &[line.id]).await?.get(&line.id).copied().unwrap_or(0) > 0 {
                errors.push(UserError::new(&at, UserErrorCode::InvalidState, "units of the line are already received"));
                continue;
            }
            out.push(return_line::Model { condition: grade_str(*g).into(), ..line });
        }
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        for l in &out {
            return_line::Entity::update_many()
                .col_expr(return_line::Column::Condition, l.condition.clone().into())
                .filter(return_line::Column::TenantId.eq(s.tenant()))
                .filter(return_line::Column::Id.eq(l.id))
                .exec(&s.tx)
                .await?;
        }
        // Graded on inspection: the units are back, for the order books the order went to.
        let mut returns: Vec<Uuid> = out.iter().map(|l| l.return_id).collect();
        returns.sort_unstable();
        returns.dedup();
        for r in repo::find::<return_::Entity>(s).filter(return_::Column::Id.is_in(returns)).all(&s.tx).await? {
            crate::services::sync::export::queue_return(s, r.id, r.order_id, "graded").await?;
        }
        Ok(Ok(out))
    })
}

pub fn grade_str(g: Grade) -> &'static str {
    match g {
        Grade::A => "A",
        Grade::B => "B",
        Grade::C => "C",
        Grade::D => "D",
    }
}

pub fn grade_of(raw: &str) -> Option<Grade> {
    match raw {
        "A" => Some(Grade::A),
        "B" => Some(Grade::B),
        "C" => Some(Grade::C),
        "D" => Some(Grade::D),
        _ => None,
    }
}

pub fn disposition_of(raw: &str) -> Option<Disposition> {
    Disposition::ALL.into_iter().find(|d| d.as_str() == raw)
}

// ---------------------------------------------------------------------------------------------
// Planning

/// A return line, a disposition (none: held) and a location (by index).
type LineOutcome = (Uuid, Option<Disposition>, Option<usize>);

/// The units of a line with one outcome, summed.
#[derive(Default)]
struct Group {
    first: usize,
    quantity: usize,
    recovery: Decimal,
    processing: Decimal,
    transport: Decimal,
    net: Decimal,
}

/// One returned unit waiting for a decision.
struct Unit {
    line: return_line::Model,
    sku: String,
    grade: Grade,
}

/// Plans the open returns: one run, its dispositions replacing the open proposals of earlier runs.
#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn plan(db: &Db, p: &Principal) -> Result<returns_run::Model, DbErr> {
    let s = db.scoped(p.tenant_id, TxMode::Read).await?;
    let (problem, units, ungraded, location_ids, approved_then) = gather(&s).await?;
    s.commit().await?;
    let solved = tokio::task::spawn_blocking(move || {
        let plan = engine::solve(&problem, &engine::SolveOptions::default());
        (problem, plan)
    })
    .await
    .map_err(|e| DbErr::Custom(format!("returns solver: {e}")))?;
    let (problem, plan) = solved;
    let plan = plan.map_err(|e| DbErr::Custom(format!("returns plan input: {e}")))?;
    let s = db.scoped(p.tenant_id, TxMode::Write).await?;
    let now = repo::now();
    let run = returns_run::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        requested_by: p.subject.clone(),
        method: match plan.method {
            engine::Method::Milp => "milp",
            _ => "greedy",
        }
        .into(),
        items_total: i32::try_from(problem.items.len()).unwrap_or(i32::MAX),
        held_total: i32::try_from(plan.decisions.iter().filter(|d| d.disposition.is_none()).count())
            .unwrap_or(i32::MAX),
        ungraded_total: i32::try_from(ungraded).unwrap_or(i32::MAX),
        objective: Dec(plan.objective),
        bound: Dec(plan.bound),
        gap: plan.gap,
        created_at: now,
    };
    returns_run::Entity::insert(returns_run::ActiveModel::from(run.clone())).exec_without_returning(&s.tx).await?;
    return_disposition::Entity::update_many()
        .col_expr(return_disposition::Column::Status, "superseded".into())
        .filter(return_disposition::Column::TenantId.eq(s.tenant()))
        .filter(return_disposition::Column::Status.is_in(["proposed", "held"]))
        .exec(&s.tx)
        .await?;
    // A line with units approved since the plan was read is left to the next run.
    let line_ids: Vec<Uuid> = units.iter().map(|u| u.line.id).collect::<HashSet<_>>().into_iter().collect();
    let approved_now = approved_units(&s, &line_ids).await?;
    let changed = |line: &Uuid| approved_now.get(line) != approved_then.get(line);
    // Units of a line with the same outcome become one row.
    let mut groups: BTreeMap<LineOutcome, Group> = BTreeMap::new();
    for (k, (u, d)) in units.iter().zip(&plan.decisions).enumerate() {
        if changed(&u.line.id) {
            continue;
        }
        let loc = d.location.as_ref().and_then(|l| problem.locations.iter().position(|x| &x.id == l));
        let g = groups.entry((u.line.id, d.disposition, loc)).or_insert(Group { first: k, ..Group::default() });
        g.quantity += 1;
        g.recovery += d.expected_recovery;
        g.processing += d.processing_cost;
        g.transport += d.transport_cost;
        g.net += d.net;
    }
    let mut rows = Vec::with_capacity(groups.len());
    for ((_, disposition, loc), g) in groups {
        let u = &units[g.first];
        rows.push(return_disposition::ActiveModel::from(return_disposition::Model {
            tenant_id: s.tenant(),
            id: Uuid::now_v7(),
            run_id: run.id,
            return_id: u.line.return_id,
            return_line_id: u.line.id,
            variant_id: u.line.variant_id,
            sku: u.sku.clone(),
            quantity: i32::try_from(g.quantity).unwrap_or(i32::MAX),
            grade: grade_str(u.grade).into(),
            disposition: disposition.map(|d| d.as_str().to_owned()),
            location_id: loc.map(|i| location_ids[i]),
            status: if disposition.is_some() { "proposed" } else { "held" }.into(),
            expected_recovery: Dec(g.recovery),
            processing_cost: Dec(g.processing),
            transport_cost: Dec(g.transport),
            net: Dec(g.net),
            decided_by: None,
            decided_at: None,
            created_at: now,
        }));
    }
    for chunk in rows.chunks(500) {
        return_disposition::Entity::insert_many(chunk.to_vec()).exec_without_returning(&s.tx).await?;
    }
    check_anomalies(&s).await?;
    s.commit().await?;
    Ok(run)
}

/// Units of each line that already have an approved disposition.
async fn approved_units(s: &Scoped, lines: &[Uuid]) -> Result<HashMap<Uuid, i32>, DbErr> {
    let mut out = HashMap::new();
    for chunk in lines.chunks(500) {
        let approved = [(return_disposition::Column::Status, "approved".into())];
        for d in repo::find_in::<return_disposition::Entity, _>(
            s,
            return_disposition::Column::ReturnLineId,
            chunk.to_vec(),
            "uuid",
            &approved,
        )
        .await?
        {
            *out.entry(d.return_line_id).or_insert(0) += d.quantity;
        }
    }
    Ok(out)
}

/// The batch, its units, the ungraded units left out, the locations' ids, and the units of each
/// line already approved when it was read.
type Gathered = (engine::Problem, Vec<Unit>, usize, Vec<Uuid>, HashMap<Uuid, i32>);

/// The day's batch: every graded unit of the open returns' undecided lines, the returns-handling
/// locations and the terms.
async fn gather(s: &Scoped) -> Result<Gathered, DbErr> {
    let mut tenant = PolicyFields::default();
    let mut at: HashMap<Uuid, PolicyFields> = HashMap::new();
    for row in policies(s).await? {
        if row.scope_key.is_empty() {
            tenant = PolicyFields::of(&row);
        } else if let Ok(id) = row.scope_key.parse() {
            at.insert(id, PolicyFields::of(&row));
        }
    }
    let returns = repo::find::<return_::Entity>(s)
        .filter(return_::Column::Status.is_in(OPEN_RETURNS))
        .order_by_asc(return_::Column::CreatedAt)
        .all(&s.tx)
        .await?;
    let return_ids: Vec<Uuid> = returns.iter().map(|r| r.id).collect();
    let order_of: HashMap<Uuid, Uuid> = returns.iter().map(|r| (r.id, r.order_id)).collect();
    let mut lines = Vec::new();
    for chunk in return_ids.chunks(500) {
        lines.extend(
            repo::find_in::<return_line::Entity, _>(s, return_line::Column::ReturnId, chunk.to_vec(), "uuid", &[])
                .await?,
        );
    }
    // Units already approved are received; the rest of a line (held, rejected) is planned again.
    let approved = approved_units(s, &lines.iter().map(|l| l.id).collect::<Vec<_>>()).await?;
    lines.retain(|l| l.quantity > approved.get(&l.id).copied().unwrap_or(0));
    let mut variants: Vec<Uuid> = lines.iter().map(|l| l.variant_id).collect();
    variants.sort_unstable();
    variants.dedup();
    let found = repo::find_in::<variant::Entity, _>(s, variant::Column::Id, variants.clone(), "uuid", &[]).await?;
    let by_variant: HashMap<Uuid, variant::Model> = found.into_iter().map(|v| (v.id, v)).collect();
    let costs = vendor_costs(s, &variants).await?;
    let locations = repo::find::<location::Entity>(s).order_by_asc(location::Column::Code).all(&s.tx).await?;
    let order_ids: Vec<Uuid> = order_of.values().copied().collect::<HashSet<_>>().into_iter().collect();
    let mut orders: HashMap<Uuid, order::Model> = HashMap::new();
    for chunk in order_ids.chunks(500) {
        for o in repo::find_in::<order::Entity, _>(s, order::Column::Id, chunk.to_vec(), "uuid", &[]).await? {
            orders.insert(o.id, o);
        }
    }
    let terms = tenant.terms.clone().unwrap_or_else(default_terms);
    let processing_default = tenant.processing.clone().unwrap_or_else(default_processing);
    // Returns-handling locations.
    let mut sites = Vec::new();
    let mut site_ids = Vec::new();
    for l in &locations {
        let own = at.get(&l.id);
        let capacity = own.and_then(|p| p.capacity).unwrap_or(if l.kind == "store" { 0 } else { DEFAULT_CAPACITY });
        let (Some(lat), Some(lon)) = (l.latitude, l.longitude) else { continue };
        if capacity <= 0 {
            continue;
        }
        let processing = own.and_then(|p| p.processing.clone()).unwrap_or_else(|| processing_default.clone());
        sites.push(Location {
            id: l.id.to_string(),
            lat,
            lon,
            capacity: u32::try_from(capacity).unwrap_or(0),
            dispositions: processing.into_iter().filter(|(d, _)| terms.contains_key(d)).collect(),
        });
        site_ids.push(l.id);
    }
    // Where restocking is wanted: below the cover target a unit restocked there is worth a share
    // of its value more (the shortfall's share of the target, a quarter of the value at most).
    let cover_target = tenant.restock_cover_days.unwrap_or(Decimal::from(14)).to_f64().unwrap_or(14.0);
    let rates = allocation::demand_rates(s, &variants).await?;
    let levels =
        repo::find_in::<stock_level::Entity, _>(s, stock_level::Column::VariantId, variants.clone(), "uuid", &[])
            .await?;
    let available: HashMap<(Uuid, Uuid), i64> =
        levels.iter().map(|x| ((x.variant_id, x.location_id), x.on_hand - x.reserved)).collect();
    let mut bonus_share: HashMap<(Uuid, Uuid), f64> = HashMap::new();
    for id in &site_ids {
        for v in &variants {
            let rate = rates.get(&(*v, *id)).copied().unwrap_or(0.0);
            if rate <= 0.0 || cover_target <= 0.0 {
                continue;
            }
            let available = available.get(&(*v, *id)).copied().unwrap_or(0);
            let cover = available.max(0) as f64 / rate;
            if cover < cover_target {
                bonus_share.insert((*v, *id), 0.25 * (cover_target - cover) / cover_target);
            }
        }
    }
    let vendor_rate = terms.get(&Disposition::ReturnToVendor).map(|t| t.recovery_rate);
    let mut items = Vec::new();
    let mut units = Vec::new();
    let mut ungraded = 0usize;
    for l in &lines {
        let Some(v) = by_variant.get(&l.variant_id) else { continue };
        let Some(grade) = grade_of(&l.condition) else {
            ungraded += usize::try_from(l.quantity.max(0)).unwrap_or(0);
            continue;
        };
        let o = order_of.get(&l.return_id).and_then(|id| orders.get(id));
        // The customer's address, else the location that shipped the order.
        let point = o.and_then(|o| allocation::ship_to_point(o.ship_to.as_ref())).or_else(|| {
            let from = locations.iter().find(|x| Some(x.id) == o.map(|o| o.location_id))?;
            Some((from.latitude?, from.longitude?))
        });
        let Some((lat, lon)) = point.or(sites.first().map(|s| (s.lat, s.lon))) else { continue };
        let restock_bonus: BTreeMap<String, Decimal> = site_ids
            .iter()
            .filter_map(|id| {
                let share = bonus_share.get(&(v.id, *id))?;
                Some((id.to_string(), (v.price.0 * Decimal::from_f64(*share)?).round_dp(2)))
            })
            .collect();
        for k in 0..(l.quantity - approved.get(&l.id).copied().unwrap_or(0)).max(0) {
            items.push(Item {
                id: format!("{}:{k}", l.id),
                sku: v.sku.clone(),
                value: v.price.0,
                grade,
                reason: String::new(),
                lat,
                lon,
                vendor_credit: vendor_rate.and_then(|r| costs.get(&v.id).map(|c| (*c * r).round_dp(2))),
                restock_bonus: restock_bonus.clone(),
            });
            units.push(Unit { line: l.clone(), sku: v.sku.clone(), grade });
        }
    }
    let problem = engine::Problem {
        items,
        locations: sites,
        dispositions: terms,
        transport_cost_per_km: tenant.transport_cost_per_km.unwrap_or(Decimal::new(1, 2)),
        hold_cost: tenant.hold_cost.unwrap_or(Decimal::ONE),
    };
    Ok((problem, units, ungraded, site_ids, approved))
}

/// Each variant's cheapest supplier cost (what a supplier credits a unit sent back against).
async fn vendor_costs(s: &Scoped, variants: &[Uuid]) -> Result<HashMap<Uuid, Decimal>, DbErr> {
    let mut out: HashMap<Uuid, Decimal> = HashMap::new();
    for i in
        repo::find_in::<supplier_item::Entity, _>(s, supplier_item::Column::VariantId, variants.to_vec(), "uuid", &[])
            .await?
    {
        out.entry(i.variant_id).and_modify(|c| *c = (*c).min(i.unit_cost.0)).or_insert(i.unit_cost.0);
    }
    Ok(out)
}

pub async fn run_by_id(s: &Scoped, id: Uuid) -> Result<Option<returns_run::Model>, DbErr> {
    repo::find::<returns_run::Entity>(s).filter(returns_run::Column::Id.eq(id)).one(&s.tx).await
}

pub async fn disposition_by_id(s: &Scoped, id: Uuid) -> Result<Option<return_disposition::Model>, DbErr> {
    repo::find::<return_disposition::Entity>(s).filter(return_disposition::Column::Id.eq(id)).one(&s.tx).await
}

// ---------------------------------------------------------------------------------------------
// Decisions

/// Approves (`approve`) or rejects proposed dispositions, all or none. Deciding again the same way
/// changes nothing.
#[tracing::instrument(skip_all, fields(tenant = %p.tenant_id))]
pub async fn decide(
    db: &Db,
    p: &Principal,
    ids: &[Option<Uuid>],
    approve: bool,
) -> Result<Outcome<Vec<return_disposition::Model>>, DbErr> {
    if ids.is_empty() || ids.len() > MAX_DECISIONS {
        return Ok(Err(vec![UserError::invalid(&["input", "ids"], format!("1 to {MAX_DECISIONS} dispositions"))]));
    }
    let (to, other) = if approve { ("approved", "rejected") } else { ("rejected", "approved") };
    crate::services::stock::retrying!(db, p, |s| {
        let mut found = Vec::with_capacity(ids.len());
        let mut errors = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let at = ["input", "ids", &i.to_string()];
            let d = match id {
                Some(id) => disposition_by_id(s, *id).await?,
                None => None,
            };
            match d {
                None => errors.push(UserError::not_found(&at, "return disposition")),
                Some(d) if d.status == "proposed" || d.status == to => found.push(d),
                Some(d) => errors.push(UserError::new(
                    &at,
                    UserErrorCode::InvalidState,
                    match d.status.as_str() {
                        "held" => "a held item waits for capacity: plan again".to_owned(),
                        s if s == other => format!("the disposition was already {other}"),
                        s => format!("a {s} disposition cannot be {to}"),
                    },
                )),
            }
        }
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        let now = repo::now();
        let mut out = Vec::with_capacity(found.len());
        let mut touched = HashSet::new();
        for (i, d) in found.into_iter().enumerate() {
            if d.status == to {
                out.push(d);
                continue;
            }
            let at = ["input", "ids", &i.to_string()];
            // The line's row lock serialises decisions on it: never more approved than returned
            // (two runs' proposals for one line cannot both be received).
            let line = repo::find::<return_line::Entity>(s)
                .filter(return_line::Column::Id.eq(d.return_line_id))
                .lock_exclusive()
                .one(&s.tx)
                .await?;
            if approve {
                let approved: i32 = repo::find::<return_disposition::Entity>(s)
                    .filter(return_disposition::Column::ReturnLineId.eq(d.return_line_id))
                    .filter(return_disposition::Column::Status.eq("approved"))
                    .all(&s.tx)
                    .await?
                    .iter()
                    .map(|x| x.quantity)
                    .sum();
                if line.as_ref().is_none_or(|l| approved + d.quantity > l.quantity) {
                    return Ok(Err(vec![UserError::new(
                        &at,
                        UserErrorCode::InvalidState,
                        "the line's returned units already have their dispositions: plan again",
                    )]));
                }
            }
            let res = return_disposition::Entity::update_many()
                .col_expr(return_disposition::Column::Status, to.into())
                .col_expr(return_disposition::Column::DecidedBy, Some(p.subject.clone()).into())
                .col_expr(return_disposition::Column::DecidedAt, Some(now).into())
                .filter(return_disposition::Column::TenantId.eq(s.tenant()))
                .filter(return_disposition::Column::Id.eq(d.id))
                .filter(return_disposition::Column::Status.eq("proposed"))
                .exec(&s.tx)
                .await?;
            if res.rows_affected != 1 {
                // Decided or superseded since it was read: nothing of this decision stays.
                return Ok(Err(vec![UserError::new(
                    &at,
                    UserErrorCode::InvalidState,
                    "the disposition was decided or replaced by a new plan meanwhile",
                )]));
            }
            let d = return_disposition::Model {
                status: to.into(),
                decided_by: Some(p.subject.clone()),
                decided_at: Some(now),
                ..d
            };
            if approve {
                apply(s, &d).await?;
                touched.insert(d.return_id);
            }
            out.push(d);
        }
        for r in touched {
            close_if_decided(s, r).await?;
        }
        Ok(Ok(out))
    })
}

/// Receives an approved disposition's units: restocked ones join the location's stock.
async fn apply(s: &Scoped, d: &return_disposition::Model) -> Result<(), DbErr> {
    let disposition = d.disposition.as_deref().and_then(disposition_of);
    let ret = repo::find::<return_::Entity>(s).filter(return_::Column::Id.eq(d.return_id)).one(&s.tx).await?;
    if let (Some(disp), Some(location_id)) = (disposition, d.location_id)
        && disp.restocks()
    {
        let q = i64::from(d.quantity);
        repo::ensure_stock_level(s, d.variant_id, location_id).await?;
        if !repo::change_stock(s, d.variant_id, location_id, q, 0).await? {
            return Err(DbErr::Custom("restocking a return failed its stock guard".into()));
        }
        let reason = match disp {
            Disposition::OpenBox => "return restocked as open-box",
            _ => "return restocked as new",
        };
        let key = format!("return-disposition:{}", d.id);
        let movement = repo::append_movement(
            s,
            repo::NewMovement {
                variant_id: d.variant_id,
                location_id,
                kind: "return",
                delta_on_hand: q,
                delta_reserved: 0,
                reason,
                reference: &d.return_id.to_string(),
                idempotency_key: Some(&key),
            },
        )
        .await?;
        crate::services::sync::queue_push(s, &movement).await?;
    }
    let data = json!({
        "returnId": gid("Return", d.return_id).0,
        "orderId": ret.as_ref().map(|r| gid("Order", r.order_id).0),
        "dispositionId": gid("ReturnDisposition", d.id).0,
        "sku": d.sku,
        "quantity": d.quantity,
        "grade": d.grade,
        "disposition": d.disposition,
        "locationId": d.location_id.map(|l| gid("Location", l).0),
        "expectedRecovery": d.expected_recovery.0.to_string(),
        "net": d.net.0.to_string(),
    });
    crate::events::emit(s, "return.disposition_decided", data).await?;
    Ok(())
}

/// Closes a return of ours once every unit of every line has an approved disposition.
async fn close_if_decided(s: &Scoped, return_id: Uuid) -> Result<(), DbErr> {
    let Some(r) = repo::find::<return_::Entity>(s).filter(return_::Column::Id.eq(return_id)).one(&s.tx).await? else {
        return Ok(());
    };
    if crate::services::sync::orders::is_mirrored(s, r.order_id).await? || r.status == "closed" {
        return Ok(());
    }
    let lines = repo::find::<return_line::Entity>(s).filter(return_line::Column::ReturnId.eq(r.id)).all(&s.tx).await?;
    let approved = repo::find::<return_disposition::Entity>(s)
        .filter(return_disposition::Column::ReturnId.eq(r.id))
        .filter(return_disposition::Column::Status.eq("approved"))
        .all(&s.tx)
        .await?;
    let done = lines
        .iter()
        .all(|l| approved.iter().filter(|d| d.return_line_id == l.id).map(|d| d.quantity).sum::<i32>() >= l.quantity);
    if done {
        return_::Entity::update_many()
            .col_expr(return_::Column::Status, "closed".into())
            .col_expr(return_::Column::UpdatedAt, repo::now().into())
            .filter(return_::Column::TenantId.eq(s.tenant()))
            .filter(return_::Column::Id.eq(r.id))
            .exec(&s.tx)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rates

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Sku,
    Category,
    Reason,
    Channel,
}

/// The return rate of one group over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub key: String,
    pub sold: u64,
    pub returned: u64,
    pub rate: f64,
    /// SKUs only: tested against the rest of its category.
    pub anomaly: Option<rates::Anomaly>,
}

/// Units sold (orders placed in the window, not cancelled) and returned (returns opened in the
/// window, not cancelled or declined), grouped. A reason's rate is over every unit sold.
pub async fn rates_of(
    s: &Scoped,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    group: GroupBy,
) -> Result<Vec<Rate>, DbErr> {
    let orders = repo::find::<order::Entity>(s)
        .filter(order::Column::CreatedAt.gte(from))
        .filter(order::Column::CreatedAt.lt(to))
        .filter(order::Column::Status.ne("cancelled"))
        .all(&s.tx)
        .await?;
    let returns = repo::find::<return_::Entity>(s)
        .filter(return_::Column::CreatedAt.gte(from))
        .filter(return_::Column::CreatedAt.lt(to))
        .filter(return_::Column::Status.is_not_in(["cancelled", "declined"]))
        .all(&s.tx)
        .await?;
    let mut order_ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    order_ids.extend(returns.iter().map(|r| r.order_id));
    order_ids.sort_unstable();
    order_ids.dedup();
    let channels = crate::services::sync::orders::channels(s, &order_ids).await?;
    let channel = |o: Uuid| channels.get(&o).cloned().unwrap_or_else(|| "api".into());
    let mut sold_lines = Vec::new();
    for chunk in orders.iter().map(|o| o.id).collect::<Vec<_>>().chunks(500) {
        sold_lines.extend(
            repo::find_in::<order_line::Entity, _>(s, order_line::Column::OrderId, chunk.to_vec(), "uuid", &[]).await?,
        );
    }
    let mut returned_lines = Vec::new();
    for chunk in returns.iter().map(|r| r.id).collect::<Vec<_>>().chunks(500) {
        returned_lines.extend(
            repo::find_in::<return_line::Entity, _>(s, return_line::Column::ReturnId, chunk.to_vec(), "uuid", &[])
                .await?,
        );
    }
    let mut variants: Vec<Uuid> =
        sold_lines.iter().map(|l| l.variant_id).chain(returned_lines.iter().map(|l| l.variant_id)).collect();
    variants.sort_unstable();
    variants.dedup();
    let mut var: HashMap<Uuid, variant::Model> = HashMap::new();
    for chunk in variants.chunks(500) {
        for v in repo::find_in::<variant::Entity, _>(s, variant::Column::Id, chunk.to_vec(), "uuid", &[]).await? {
            var.insert(v.id, v);
        }
    }
    let mut product_ids: Vec<Uuid> = var.values().map(|v| v.product_id).collect();
    product_ids.sort_unstable();
    product_ids.dedup();
    let mut categories: HashMap<Uuid, String> = HashMap::new();
    for chunk in product_ids.chunks(500) {
        for p in repo::find_in::<product::Entity, _>(s, product::Column::Id, chunk.to_vec(), "uuid", &[]).await? {
            categories.insert(p.id, p.category);
        }
    }
    let sku = |v: Uuid| var.get(&v).map_or_else(|| v.to_string(), |x| x.sku.clone());
    let category = |v: Uuid| var.get(&v).and_then(|x| categories.get(&x.product_id)).cloned().unwrap_or_default();
    let reason_of: HashMap<Uuid, (&str, Uuid)> =
        returns.iter().map(|r| (r.id, (r.reason.as_str(), r.order_id))).collect();
    let mut sold: BTreeMap<String, u64> = BTreeMap::new();
    let mut returned: BTreeMap<String, u64> = BTreeMap::new();
    let mut total_sold = 0u64;
    for l in &sold_lines {
        let n = u64::try_from(l.quantity.max(0)).unwrap_or(0);
        total_sold += n;
        let key = match group {
            GroupBy::Sku => sku(l.variant_id),
            GroupBy::Category => category(l.variant_id),
            GroupBy::Channel => channel(l.order_id),
            GroupBy::Reason => continue,
        };
        *sold.entry(key).or_default() += n;
    }
    for l in &returned_lines {
        let n = u64::try_from(l.quantity.max(0)).unwrap_or(0);
        let Some((reason, order_id)) = reason_of.get(&l.return_id) else { continue };
        let key = match group {
            GroupBy::Sku => sku(l.variant_id),
            GroupBy::Category => category(l.variant_id),
            GroupBy::Channel => channel(*order_id),
            GroupBy::Reason => (*reason).to_owned(),
        };
        *returned.entry(key).or_default() += n;
    }
    let mut keys: Vec<String> = sold.keys().chain(returned.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    let anomalies: HashMap<String, rates::Anomaly> = if group == GroupBy::Sku {
        let counts: Vec<rates::Count> = var
            .values()
            .map(|v| rates::Count {
                sku: v.sku.clone(),
                category: category(v.id),
                sold: sold.get(&v.sku).copied().unwrap_or(0),
                returned: returned.get(&v.sku).copied().unwrap_or(0),
            })
            .collect();
        rates::anomalies(&counts, ANOMALY_ALPHA, ANOMALY_MIN_SOLD).into_iter().map(|a| (a.sku.clone(), a)).collect()
    } else {
        HashMap::new()
    };
    Ok(keys
        .into_iter()
        .map(|key| {
            let s = if group == GroupBy::Reason { total_sold } else { sold.get(&key).copied().unwrap_or(0) };
            let r = returned.get(&key).copied().unwrap_or(0);
            Rate { anomaly: anomalies.get(&key).cloned(), rate: rates::rate(s, r), key, sold: s, returned: r }
        })
        .collect())
}

/// Raises a `return_rate_high` alert for each SKU returned anomalously often over the last
/// [`ANOMALY_WINDOW_DAYS`] days, at most once a week per SKU.
async fn check_anomalies(s: &Scoped) -> Result<(), DbErr> {
    use crate::alerts::{Raised, RuleKind};
    use crate::db::entities::alert;
    let now = repo::now();
    let from = now - chrono::Duration::days(ANOMALY_WINDOW_DAYS);
    let flagged: Vec<Rate> =
        rates_of(s, from, now, GroupBy::Sku).await?.into_iter().filter(|r| r.anomaly.is_some()).collect();
    if flagged.is_empty() {
        return Ok(());
    }
    let recent: HashSet<Uuid> = repo::find::<alert::Entity>(s)
        .filter(alert::Column::Kind.eq(RuleKind::ReturnRateHigh.as_str()))
        .filter(alert::Column::FiredAt.gte(now - chrono::Duration::days(7)))
        .all(&s.tx)
        .await?
        .into_iter()
        .filter_map(|a| a.variant_id)
        .collect();
    for r in flagged {
        let Some(a) = &r.anomaly else { continue };
        let Some(v) = lookup::variant_by_sku(s, &r.key).await? else { continue };
        if recent.contains(&v.id) {
            continue;
        }
        let lines = vec![
            format!("SKU: {}", a.sku),
            format!("Category: {}", a.category),
            format!(
                "Returned {} of {} sold in the last {ANOMALY_WINDOW_DAYS} days ({:.1} %)",
                a.returned,
                a.sold,
                a.rate * 100.0
            ),
            format!("The rest of the category: {:.1} %", a.category_rate * 100.0),
            format!(
                "Chance of this many returns at the category's rate: {:.2e} (tested at {:.2e})",
                a.p_value, a.threshold
            ),
        ];
        crate::alerts::raise(s, RuleKind::ReturnRateHigh, || Raised {
            subject: format!("Return rate anomalously high: {} ({:.1} %)", a.sku, a.rate * 100.0),
            lines: lines.clone(),
            variant_id: Some(v.id),
            location_id: None,
        })
        .await?;
    }
    Ok(())
}
