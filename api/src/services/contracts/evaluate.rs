//! Evaluating active contracts: the state the rules read (stock, forecasts, open orders, approved
//! plan lines, what fired before) read from the database, `qm_domain::contracts::evaluate`, and
//! its effects written in the same transaction as what fired, under the ledger's head lock, so
//! two evaluations never act twice on one condition. Queued (at most once a second) after stock
//! falls, after a forecast run and after a plan approval, and every hour.
//!
//! `simulate` replays a contract over past days on the recorded demand and writes nothing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use qm_domain::contracts::{
    ApprovedLine, Document, Effect, Fired, PoStatus, Position, PurchaseOrder, State, Subject, evaluate,
};
use qm_integrations::email::{Email, escape_html};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde_json::{Value, json};
use uuid::Uuid;

use super::ledger::{self, Entry};
use crate::db::entities::{
    Dec, contract, contract_fired, contract_version, daily_demand, forecast as forecast_e, job, purchase_order,
    purchase_order_line, replenishment_line, stock_level, stock_movement,
};
use crate::db::{Scoped, TxMode, repo};
use crate::graphql::types::gid;
use crate::jobs::worker::{Handler, JobError, Registry};
use crate::jobs::{self, NewJob};
use crate::services::lookup;
use crate::services::replenish::{RECEIVABLE_PO, po_lines};
use crate::state::AppState;

pub const EVALUATE: &str = "contracts.evaluate";
/// Days of recorded demand behind a rate when there is no forecast.
const DEMAND_DAYS: i64 = crate::alerts::COVER_DEMAND_DAYS;
/// The longest `simulate` replays.
pub const MAX_SIMULATED_DAYS: i64 = 366;

pub fn register(r: Registry) -> Registry {
    r.with(EVALUATE, EvaluateJob)
}

/// Queues an evaluation of the tenant's contracts at the start of the next second (one job per
/// second however many changes ask for it; it sees every change committed by then).
pub async fn queue(s: &Scoped) -> Result<(), DbErr> {
    let next = repo::now().timestamp() + 1;
    let mut job = NewJob::new(EVALUATE, json!({}));
    job.run_at = DateTime::from_timestamp(next, 0);
    job.dedup_key = Some(format!("{EVALUATE}:{next}"));
    jobs::enqueue(s, job).await?;
    Ok(())
}

/// After a change the rules read (stock fell, a forecast run, a plan approval): queues an
/// evaluation when the tenant has an active contract.
pub async fn after_change(s: &Scoped) -> Result<(), DbErr> {
    let any = repo::find::<contract::Entity>(s)
        .select_only()
        .column(contract::Column::Id)
        .filter(contract::Column::Status.eq("active"))
        .into_tuple::<Uuid>()
        .one(&s.tx)
        .await?;
    if any.is_some() { queue(s).await } else { Ok(()) }
}

/// Evaluates every hour (time passing fires `po_unacknowledged`, `shipment_late`, `date`).
pub async fn schedule_hourly(s: &Scoped) -> Result<(), DbErr> {
    let first = repo::now() + Duration::hours(1);
    jobs::schedule(s, EVALUATE, EVALUATE, json!({}), std::time::Duration::from_secs(3600), first).await
}

/// One rule firing as applied: the contract, what fired, the purchase order it issued or acted on.
#[derive(Debug, Clone)]
pub struct Applied {
    pub contract_id: Uuid,
    pub version: i32,
    pub fired: Fired,
    pub purchase_order_id: Option<Uuid>,
}

/// An active contract with its document.
pub async fn active(s: &Scoped) -> Result<Vec<(contract::Model, contract_version::Model, Document)>, DbErr> {
    let mut out = Vec::new();
    for c in repo::find::<contract::Entity>(s).filter(contract::Column::Status.eq("active")).all(&s.tx).await? {
        let Some(n) = c.active_version else { continue };
        let Some(v) = super::version(s, c.id, n).await? else { continue };
        match qm_domain::contracts::parse(&v.document) {
            Ok(doc) => out.push((c, v, doc)),
            Err(e) => tracing::error!(contract = %c.id, errors = ?e, "stored contract document does not read"),
        }
    }
    Ok(out)
}

/// Evaluates the tenant's active contracts now and applies what fires, in the caller's write
/// transaction (holding the ledger's head lock until it commits).
pub async fn run(s: &Scoped) -> Result<Vec<Applied>, DbErr> {
    ledger::serialise(s).await?;
    let now = repo::now();
    let mut out = Vec::new();
    for (c, v, doc) in active(s).await? {
        let state = state_of(s, &c, &v, &doc, now).await?;
        let fired = evaluate(&doc, &state);
        if !fired.is_empty() {
            out.extend(apply(s, (&c, &v, &doc), &state, fired).await?);
        }
    }
    Ok(out)
}

fn po_status(s: &str) -> Option<PoStatus> {
    Some(match s {
        "issued" => PoStatus::Issued,
        "acknowledged" => PoStatus::Acknowledged,
        "shipped" | "partially_received" => PoStatus::Shipped,
        "received" => PoStatus::Received,
        "rejected" => PoStatus::Rejected,
        "cancelled" => PoStatus::Cancelled,
        _ => return None,
    })
}

/// Available units, units on order, demand a day and the forecast's stockout day of a variant
/// at a location as of `today`.
async fn position(s: &Scoped, variant_id: Uuid, location_id: Uuid, today: NaiveDate) -> Result<Position, DbErr> {
    let level = repo::find::<stock_level::Entity>(s)
        .filter(stock_level::Column::VariantId.eq(variant_id))
        .filter(stock_level::Column::LocationId.eq(location_id))
        .one(&s.tx)
        .await?;
    let available = level.map_or(0, |l| l.on_hand - l.reserved);
    let open: Vec<Uuid> = repo::find::<purchase_order::Entity>(s)
        .select_only()
        .column(purchase_order::Column::Id)
        .filter(purchase_order::Column::LocationId.eq(location_id))
        .filter(purchase_order::Column::Status.is_in(RECEIVABLE_PO))
        .into_tuple()
        .all(&s.tx)
        .await?;
    let mut on_order = 0i64;
    for chunk in open.chunks(500) {
        let rows: Vec<(i32, i32)> = repo::find::<purchase_order_line::Entity>(s)
            .select_only()
            .column(purchase_order_line::Column::Quantity)
            .column(purchase_order_line::Column::ReceivedQuantity)
            .filter(purchase_order_line::Column::VariantId.eq(variant_id))
            .filter(purchase_order_line::Column::PurchaseOrderId.is_in(chunk.to_vec()))
            .into_tuple()
            .all(&s.tx)
            .await?;
        on_order += rows.iter().map(|(q, r)| i64::from((q - r).max(0))).sum::<i64>();
    }
    let forecast = repo::find::<forecast_e::Entity>(s)
        .filter(forecast_e::Column::VariantId.eq(variant_id))
        .filter(forecast_e::Column::LocationId.eq(location_id))
        .one(&s.tx)
        .await?;
    let (daily_demand, stockout_on) = match forecast {
        Some(f) => {
            // The forecast's days from today on, four weeks of them.
            let skip = usize::try_from((today - f.first_day).num_days()).unwrap_or(0);
            let days: Vec<f64> = crate::services::forecast::point_of(&f).into_iter().skip(skip).take(28).collect();
            let mean = if days.is_empty() { 0.0 } else { days.iter().sum::<f64>() / days.len() as f64 };
            (Decimal::from_f64_retain(mean).unwrap_or_default().round_dp(4), f.stockout_on)
        }
        None => {
            let rate = crate::alerts::daily_demand(s, variant_id, location_id).await?;
            (rate, run_out(today, available, rate))
        }
    };
    Ok(Position { available, on_order, daily_demand, stockout_on })
}

/// The first day without stock at `rate` units a day.
fn run_out(today: NaiveDate, available: i64, rate: Decimal) -> Option<NaiveDate> {
    if rate <= Decimal::ZERO {
        return None;
    }
    let days = (Decimal::from(available.max(0)) / rate).floor().to_u64()?;
    today.checked_add_days(Days::new(days))
}

/// Location codes by id, each looked up once.
#[derive(Default)]
struct Codes(HashMap<Uuid, String>);

impl Codes {
    async fn get(&mut self, s: &Scoped, id: Uuid) -> Result<String, DbErr> {
        if let Some(v) = self.0.get(&id) {
            return Ok(v.clone());
        }
        let code = lookup::location(s, id).await?.map(|l| l.code).unwrap_or_default();
        self.0.insert(id, code.clone());
        Ok(code)
    }
}

/// Everything the contract's rules read, as of `now`.
async fn state_of(
    s: &Scoped,
    c: &contract::Model,
    v: &contract_version::Model,
    doc: &Document,
    now: DateTime<Utc>,
) -> Result<State, DbErr> {
    let today = now.date_naive();
    let mut stock = BTreeMap::new();
    for (sku, code) in doc.slots() {
        let (Some(var), Some(loc)) = (lookup::variant_by_sku(s, &sku).await?, super::location_by_code(s, &code).await?)
        else {
            continue;
        };
        stock.insert((sku, code), position(s, var.id, loc.id, today).await?);
    }
    let mut codes = Codes::default();
    let mut purchase_orders = Vec::new();
    let pos =
        repo::find::<purchase_order::Entity>(s).filter(purchase_order::Column::ContractId.eq(c.id)).all(&s.tx).await?;
    // Their lines in statements of at most 500 orders, not one statement per order.
    let mut lines_of: HashMap<Uuid, Vec<purchase_order_line::Model>> = HashMap::new();
    for chunk in pos.iter().map(|p| p.id).collect::<Vec<_>>().chunks(500) {
        let col = purchase_order_line::Column::PurchaseOrderId;
        for l in repo::find_in::<purchase_order_line::Entity, _>(s, col, chunk.to_vec(), "uuid", &[]).await? {
            lines_of.entry(l.purchase_order_id).or_default().push(l);
        }
    }
    let variants: Vec<Uuid> = lines_of.values().flatten().map(|l| l.variant_id).collect();
    let skus = lookup::skus(s, &variants).await?;
    for po in pos {
        let Some(status) = po_status(&po.status) else { continue };
        let Some(lines) = lines_of.get_mut(&po.id) else { continue };
        lines.sort_by_key(|l| l.id);
        let Some(first) = lines.first() else { continue };
        let issued_at = po.issued_at.unwrap_or(po.created_at);
        let lead = Days::new(u64::from(doc.terms.lead_time_days));
        purchase_orders.push(PurchaseOrder {
            id: po.id,
            sku: skus.get(&first.variant_id).cloned().unwrap_or_default(),
            location: codes.get(s, po.location_id).await?,
            quantity: lines.iter().map(|l| u32::try_from(l.quantity).unwrap_or(0)).sum(),
            value: lines.iter().map(|l| l.unit_cost.0 * Decimal::from(l.quantity)).sum(),
            status,
            issued_at,
            due_on: po
                .promised_on
                .or(po.expected_on)
                .or_else(|| issued_at.date_naive().checked_add_days(lead))
                .unwrap_or(today),
        });
    }
    let since = v.activated_at.unwrap_or(now);
    let mut approved_lines = Vec::new();
    let lines = repo::find::<replenishment_line::Entity>(s)
        .filter(replenishment_line::Column::SupplierId.eq(c.supplier_id))
        .filter(replenishment_line::Column::Kind.eq("buy"))
        .filter(replenishment_line::Column::Status.eq("approved"))
        .filter(replenishment_line::Column::ApprovedAt.gte(since))
        .all(&s.tx)
        .await?;
    for l in lines {
        approved_lines.push(ApprovedLine {
            id: l.id,
            sku: l.sku.clone(),
            location: codes.get(s, l.location_id).await?,
            quantity: u32::try_from(l.quantity).unwrap_or(0),
        });
    }
    let fired = repo::find::<contract_fired::Entity>(s)
        .filter(contract_fired::Column::ContractId.eq(c.id))
        .all(&s.tx)
        .await?
        .into_iter()
        .map(|f| ((f.rule_id, f.subject_key), f.fired_at))
        .collect();
    Ok(State { now, stock, purchase_orders, approved_lines, fired })
}

fn effect_name(e: &Effect) -> &'static str {
    match e {
        Effect::IssuePo { .. } => "issue_po",
        Effect::Remind { .. } => "send_reminder",
        Effect::Escalate { .. } => "escalate",
        Effect::Penalty { .. } => "apply_late_penalty",
        Effect::Cancel { .. } => "cancel",
    }
}

/// Writes what fired: what fired is remembered, purchase orders issued, penalties and
/// cancellations applied, reminders and escalations sent; each on the ledger and as events.
async fn apply(
    s: &Scoped,
    (c, v, doc): (&contract::Model, &contract_version::Model, &Document),
    state: &State,
    fired: Vec<Fired>,
) -> Result<Vec<Applied>, DbErr> {
    let now = state.now;
    let mut entries = Vec::new();
    let mut out = Vec::new();
    let supplier = gid("Supplier", c.supplier_id).0;
    let contract_gid = gid("Contract", c.id).0;
    for f in fired {
        contract_fired::Entity::insert(contract_fired::ActiveModel::from(contract_fired::Model {
            tenant_id: s.tenant(),
            contract_id: c.id,
            rule_id: f.rule.clone(),
            subject_key: f.subject.key(),
            version: v.version,
            fired_at: now,
        }))
        .on_conflict(
            OnConflict::columns([
                contract_fired::Column::TenantId,
                contract_fired::Column::ContractId,
                contract_fired::Column::RuleId,
                contract_fired::Column::SubjectKey,
            ])
            .update_columns([contract_fired::Column::FiredAt, contract_fired::Column::Version])
            .to_owned(),
        )
        .exec_without_returning(&s.tx)
        .await?;
        let base = json!({
            "contractId": contract_gid,
            "supplierId": supplier,
            "version": v.version,
            "rule": f.rule,
            "subject": f.subject,
        });
        let mut triggered = base.clone();
        triggered["effect"] = serde_json::to_value(&f.effect).unwrap_or(Value::Null);
        triggered["inputs"] = inputs(state, &f);
        entries.push(Entry::new(c.id, "triggered", triggered));
        let po_id = match &f.effect {
            Effect::IssuePo { sku, location, quantity, unit_price, due_on, .. } => {
                let Some(po) = issue(s, c, doc, (sku, location), (*quantity, *unit_price, *due_on), now).await? else {
                    continue;
                };
                if let Subject::Line { id } = f.subject {
                    take_line(s, id, &po).await?;
                }
                let data = crate::services::replenish::issued_data(s, &po).await?;
                let mut entry = data.clone();
                entry["rule"] = json!(f.rule);
                entries.push(Entry::new(c.id, "po_issued", entry));
                crate::events::emit(s, "purchase_order.issued", data).await?;
                Some(po.id)
            }
            Effect::Remind { po } => {
                let Some(p) = crate::services::replenish::purchase_order(s, *po).await? else { continue };
                let mut data = base.clone();
                data["purchaseOrderId"] = json!(gid("PurchaseOrder", p.id).0);
                data["number"] = json!(p.number);
                data["issuedAt"] = json!(p.issued_at);
                entries.push(Entry::new(c.id, "reminder_sent", data.clone()));
                crate::events::emit(s, "purchase_order.reminder", data).await?;
                Some(p.id)
            }
            Effect::Escalate { email, subject } => {
                let mut data = base.clone();
                data["email"] = json!(email);
                entries.push(Entry::new(c.id, "escalated", data));
                let po = match subject {
                    Subject::Po { id } => crate::services::replenish::purchase_order(s, *id).await?,
                    _ => None,
                };
                escalate(s, c, &f.rule, email, po.as_ref()).await?;
                po.map(|p| p.id)
            }
            Effect::Penalty { po, days_late, amount } => {
                let Some(p) = crate::services::replenish::purchase_order(s, *po).await? else { continue };
                let mut am: purchase_order::ActiveModel = p.clone().into();
                am.penalty_amount = Set(Some(Dec(*amount)));
                am.updated_at = Set(now);
                am.update(&s.tx).await?;
                let mut data = base.clone();
                data["purchaseOrderId"] = json!(gid("PurchaseOrder", p.id).0);
                data["number"] = json!(p.number);
                data["daysLate"] = json!(days_late);
                data["amount"] = json!(amount.to_string());
                data["currency"] = json!(p.currency);
                entries.push(Entry::new(c.id, "penalty_applied", data.clone()));
                crate::events::emit(s, "purchase_order.penalty_applied", data).await?;
                Some(p.id)
            }
            Effect::Cancel { po } => {
                let Some(p) = crate::services::replenish::purchase_order(s, *po).await? else { continue };
                let mut am: purchase_order::ActiveModel = p.clone().into();
                am.status = Set("cancelled".into());
                am.status_reason = Set(Some(format!("cancelled by the contract's rule {}", f.rule)));
                am.updated_at = Set(now);
                am.update(&s.tx).await?;
                let mut data = base.clone();
                data["purchaseOrderId"] = json!(gid("PurchaseOrder", p.id).0);
                data["number"] = json!(p.number);
                entries.push(Entry::new(c.id, "cancelled", data.clone()));
                crate::events::emit(s, "purchase_order.cancelled", data).await?;
                Some(p.id)
            }
        };
        let mut event = base;
        event["action"] = json!(effect_name(&f.effect));
        event["purchaseOrderId"] = json!(po_id.map(|id| gid("PurchaseOrder", id).0));
        crate::events::emit(s, "contract.triggered", event).await?;
        out.push(Applied { contract_id: c.id, version: v.version, fired: f, purchase_order_id: po_id });
    }
    ledger::append(s, entries).await?;
    Ok(out)
}

/// What the rule read about its subject, for the ledger: with the rule, the version's document
/// and `at`, enough to replay the decision (`qm_domain::contracts::evaluate` is deterministic).
fn inputs(state: &State, f: &Fired) -> Value {
    let mut out = json!({ "at": state.now });
    match &f.subject {
        Subject::Slot { sku, location } => {
            out["position"] = json!(state.stock.get(&(sku.clone(), location.clone())));
        }
        Subject::Po { id } => out["purchaseOrder"] = json!(state.purchase_orders.iter().find(|p| p.id == *id)),
        Subject::Line { id } => out["planLine"] = json!(state.approved_lines.iter().find(|l| l.id == *id)),
        Subject::Contract => {}
    }
    if let Effect::IssuePo { sku, location, .. } = &f.effect {
        out["position"] = json!(state.stock.get(&(sku.clone(), location.clone())));
    }
    out
}

/// Creates and issues a contract's purchase order of one line on the terms.
async fn issue(
    s: &Scoped,
    c: &contract::Model,
    doc: &Document,
    (sku, code): (&str, &str),
    (quantity, unit_price, due_on): (u32, Decimal, NaiveDate),
    now: DateTime<Utc>,
) -> Result<Option<purchase_order::Model>, DbErr> {
    let (Some(var), Some(loc)) = (lookup::variant_by_sku(s, sku).await?, super::location_by_code(s, code).await?)
    else {
        tracing::warn!(contract = %c.id, sku, location = code, "contract orders a SKU or location that no longer exists");
        return Ok(None);
    };
    let id = Uuid::now_v7();
    let po = purchase_order::Model {
        tenant_id: s.tenant(),
        id,
        number: crate::services::replenish::po_number(id, now),
        supplier_id: c.supplier_id,
        location_id: loc.id,
        status: "issued".into(),
        currency: doc.terms.currency.clone(),
        expected_on: Some(due_on),
        created_at: now,
        updated_at: now,
        issued_at: Some(now),
        contract_id: Some(c.id),
        promised_on: None,
        acknowledged_at: None,
        penalty_amount: None,
        status_reason: None,
    };
    purchase_order::Entity::insert(purchase_order::ActiveModel::from(po.clone())).exec_without_returning(&s.tx).await?;
    purchase_order_line::Entity::insert(purchase_order_line::ActiveModel::from(purchase_order_line::Model {
        tenant_id: s.tenant(),
        id: Uuid::now_v7(),
        purchase_order_id: po.id,
        variant_id: var.id,
        quantity: i32::try_from(quantity).unwrap_or(i32::MAX),
        received_quantity: 0,
        unit_cost: Dec(unit_price),
    }))
    .exec_without_returning(&s.tx)
    .await?;
    Ok(Some(po))
}

/// An approved plan line the contract ordered: it points at the contract's order, and leaves
/// the draft order its approval made (a draft left empty is cancelled), so nothing is ordered twice.
async fn take_line(s: &Scoped, line_id: Uuid, po: &purchase_order::Model) -> Result<(), DbErr> {
    let Some(line) = repo::find::<replenishment_line::Entity>(s)
        .filter(replenishment_line::Column::Id.eq(line_id))
        .one(&s.tx)
        .await?
    else {
        return Ok(());
    };
    if let Some(draft) = line.purchase_order_id
        && let Some(d) = crate::services::replenish::purchase_order(s, draft).await?
        && d.status == "draft"
    {
        purchase_order_line::Entity::delete_many()
            .filter(purchase_order_line::Column::TenantId.eq(s.tenant()))
            .filter(purchase_order_line::Column::PurchaseOrderId.eq(d.id))
            .filter(purchase_order_line::Column::VariantId.eq(line.variant_id))
            .exec(&s.tx)
            .await?;
        if po_lines(s, d.id).await?.is_empty() {
            purchase_order::Entity::update_many()
                .col_expr(purchase_order::Column::Status, Expr::value("cancelled"))
                .col_expr(
                    purchase_order::Column::StatusReason,
                    Expr::value(format!("ordered under contract as {}", po.number)),
                )
                .col_expr(purchase_order::Column::UpdatedAt, Expr::value(repo::now()))
                .filter(purchase_order::Column::TenantId.eq(s.tenant()))
                .filter(purchase_order::Column::Id.eq(d.id))
                .exec(&s.tx)
                .await?;
        }
    }
    replenishment_line::Entity::update_many()
        .col_expr(replenishment_line::Column::PurchaseOrderId, Expr::value(po.id))
        .filter(replenishment_line::Column::TenantId.eq(s.tenant()))
        .filter(replenishment_line::Column::Id.eq(line_id))
        .exec(&s.tx)
        .await?;
    Ok(())
}

/// Queues the escalation e-mail.
async fn escalate(
    s: &Scoped,
    c: &contract::Model,
    rule: &str,
    to: &str,
    po: Option<&purchase_order::Model>,
) -> Result<(), DbErr> {
    let what = po.map_or_else(|| format!("contract {}", c.name), |p| format!("purchase order {}", p.number));
    let subject = format!("[Quartermaster] Escalation: {what}");
    let mut lines = vec![format!("Contract: {}", c.name), format!("Rule: {rule}")];
    if let Some(p) = po {
        lines.push(format!("Purchase order: {} ({})", p.number, p.status));
        if let Some(at) = p.issued_at {
            lines.push(format!("Issued: {}", at.format("%Y-%m-%d %H:%M UTC")));
        }
    }
    let text = format!("{subject}\n\n{}\n", lines.join("\n"));
    let items: String = lines.iter().map(|l| format!("<li>{}</li>", escape_html(l))).collect();
    let html = format!("<!doctype html><html><body><h2>{}</h2><ul>{items}</ul></body></html>", escape_html(&subject));
    let mut job = NewJob::new(crate::alerts::SEND, json!(Email { to: to.to_owned(), subject, text, html }));
    job.dedup_key = Some(format!("contracts.escalate:{}:{rule}:{}", c.id, po.map_or(Uuid::nil(), |p| p.id)));
    jobs::enqueue(s, job).await?;
    Ok(())
}

struct EvaluateJob;

#[async_trait::async_trait]
impl Handler for EvaluateJob {
    async fn run(&self, state: &AppState, job: &job::Model) -> Result<(), JobError> {
        let s = state.db.scoped(job.tenant_id, TxMode::Write).await?;
        let applied = run(&s).await?;
        s.commit().await?;
        if !applied.is_empty() {
            tracing::info!(tenant = %job.tenant_id, fired = applied.len(), "contract rules fired");
        }
        Ok(())
    }
}

/// One thing the rules would have done on a past day.
#[derive(Debug, Clone)]
pub struct Simulated {
    pub on: NaiveDate,
    pub fired: Fired,
    /// `SIM-n` for the orders the replay issued.
    pub purchase_order: Option<String>,
}

/// What the contract's active rules (or `version`'s) would have done each day from `from` to
/// `to`: stock at each SKU and location starts as the ledger had it on `from` and follows the
/// recorded demand, less what was not in stock, plus the orders the replay issued when they
/// are due (the supplier taken to acknowledge each at once and deliver on its due date). Days
/// of cover use the four weeks of recorded demand before each day. Reads only.
pub async fn simulate(s: &Scoped, doc: &Document, (from, to): (NaiveDate, NaiveDate)) -> Result<Vec<Simulated>, DbErr> {
    struct Slot {
        key: (String, String),
        demand: BTreeMap<NaiveDate, i64>,
    }
    let start = from.and_hms_opt(0, 0, 0).map_or_else(repo::now, |t| t.and_utc());
    let mut slots = Vec::new();
    let mut stock = BTreeMap::new();
    for (sku, code) in doc.slots() {
        let (Some(var), Some(loc)) = (lookup::variant_by_sku(s, &sku).await?, super::location_by_code(s, &code).await?)
        else {
            continue;
        };
        let level = repo::find::<stock_level::Entity>(s)
            .filter(stock_level::Column::VariantId.eq(var.id))
            .filter(stock_level::Column::LocationId.eq(loc.id))
            .one(&s.tx)
            .await?;
        let now_available = level.map_or(0, |l| l.on_hand - l.reserved);
        let since: Vec<(i64, i64)> = repo::find::<stock_movement::Entity>(s)
            .select_only()
            .column(stock_movement::Column::DeltaOnHand)
            .column(stock_movement::Column::DeltaReserved)
            .filter(stock_movement::Column::VariantId.eq(var.id))
            .filter(stock_movement::Column::LocationId.eq(loc.id))
            .filter(stock_movement::Column::OccurredAt.gte(start))
            .into_tuple()
            .all(&s.tx)
            .await?;
        let available = now_available - since.iter().map(|(h, r)| h - r).sum::<i64>();
        let demand: BTreeMap<NaiveDate, i64> = repo::find::<daily_demand::Entity>(s)
            .select_only()
            .column(daily_demand::Column::Day)
            .column(daily_demand::Column::Units)
            .filter(daily_demand::Column::VariantId.eq(var.id))
            .filter(daily_demand::Column::LocationId.eq(loc.id))
            .filter(daily_demand::Column::Day.gte(from - Duration::days(DEMAND_DAYS)))
            .filter(daily_demand::Column::Day.lte(to))
            .into_tuple::<(NaiveDate, i32)>()
            .all(&s.tx)
            .await?
            .into_iter()
            .map(|(d, u)| (d, i64::from(u)))
            .collect();
        stock.insert((sku.clone(), code.clone()), Position { available, ..Position::default() });
        slots.push(Slot { key: (sku, code), demand });
    }
    let mut state =
        State { now: start, stock, purchase_orders: vec![], approved_lines: vec![], fired: BTreeMap::new() };
    let mut out = Vec::new();
    let mut issued = 0u128;
    let mut day = from;
    while day <= to {
        state.now = day.and_hms_opt(0, 0, 0).map_or(state.now, |t| t.and_utc());
        // Deliveries due by today arrive.
        for po in state.purchase_orders.iter_mut().filter(|p| p.status.is_open() && p.due_on <= day) {
            po.status = PoStatus::Received;
            if let Some(p) = state.stock.get_mut(&(po.sku.clone(), po.location.clone())) {
                p.available += i64::from(po.quantity);
                p.on_order -= i64::from(po.quantity);
            }
        }
        for slot in &slots {
            let Some(p) = state.stock.get_mut(&slot.key) else { continue };
            let past: i64 = slot.demand.range(day - Duration::days(DEMAND_DAYS)..day).map(|(_, u)| u).sum();
            p.daily_demand = Decimal::from(past) / Decimal::from(DEMAND_DAYS);
            p.stockout_on = run_out(day, p.available, p.daily_demand);
        }
        let fired = evaluate(doc, &state);
        let first = issued;
        let mut ids = (first + 1..).map(Uuid::from_u128);
        state.record(&fired, &mut ids);
        for f in fired {
            let purchase_order = matches!(f.effect, Effect::IssuePo { .. }).then(|| {
                issued += 1;
                format!("SIM-{issued}")
            });
            out.push(Simulated { on: day, fired: f, purchase_order });
        }
        for po in state.purchase_orders.iter_mut().filter(|p| p.status == PoStatus::Issued) {
            po.status = PoStatus::Acknowledged;
        }
        // Today's recorded demand leaves, as far as there is stock.
        for slot in &slots {
            if let Some(p) = state.stock.get_mut(&slot.key) {
                let sold = slot.demand.get(&day).copied().unwrap_or(0);
                p.available = (p.available - sold).max(0);
            }
        }
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    Ok(out)
}
