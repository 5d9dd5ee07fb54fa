//! Evaluating a contract's rules against the state Quartermaster holds: deterministic (the same
//! state and time give the same actions, in the same order), and idempotent with what it fired
//! recorded ([`State::record`]): a condition that stays true fires its rule once per subject, and
//! no second purchase order is issued for a SKU at a location while one is open.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::rules::{Action, Condition, Document, Item, Quantity, Terms};

/// What a condition holds for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Subject {
    /// The contract as a whole (a date).
    Contract,
    /// A SKU at a location (by code).
    Slot { sku: String, location: String },
    /// An approved replenishment line.
    Line { id: Uuid },
    /// A purchase order of the contract.
    Po { id: Uuid },
}

impl Subject {
    /// A stable text key, for storing what fired.
    pub fn key(&self) -> String {
        match self {
            Self::Contract => "contract".into(),
            Self::Slot { sku, location } => format!("slot:{sku}@{location}"),
            Self::Line { id } => format!("line:{id}"),
            Self::Po { id } => format!("po:{id}"),
        }
    }
}

/// A SKU's stock at a location.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Position {
    /// On hand less reserved.
    pub available: i64,
    /// Open purchase orders' remaining units (this contract's and others').
    pub on_order: i64,
    /// Forecast units a day.
    pub daily_demand: Decimal,
    /// The forecast's first day without stock, if any.
    pub stockout_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoStatus {
    Issued,
    Acknowledged,
    Shipped,
    Received,
    Rejected,
    Cancelled,
}

impl PoStatus {
    /// Still on its way: a new order for the same SKU and location would double it.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Issued | Self::Acknowledged | Self::Shipped)
    }
}

/// A purchase order the contract issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseOrder {
    pub id: Uuid,
    pub sku: String,
    pub location: String,
    pub quantity: u32,
    pub value: Decimal,
    pub status: PoStatus,
    pub issued_at: DateTime<Utc>,
    /// The delivery date the supplier promised, else issue date plus the lead time.
    pub due_on: NaiveDate,
}

/// A replenishment line buying from the contract's supplier, approved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovedLine {
    pub id: Uuid,
    pub sku: String,
    pub location: String,
    pub quantity: u32,
}

/// Everything the rules read, as of `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub now: DateTime<Utc>,
    /// By (SKU, location code).
    pub stock: BTreeMap<(String, String), Position>,
    pub purchase_orders: Vec<PurchaseOrder>,
    pub approved_lines: Vec<ApprovedLine>,
    /// When each rule last fired for each subject: (rule id, subject key).
    pub fired: BTreeMap<(String, String), DateTime<Utc>>,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Effect {
    IssuePo { sku: String, location: String, quantity: u32, unit_price: Decimal, value: Decimal, due_on: NaiveDate },
    Remind { po: Uuid },
    Escalate { email: String, subject: Subject },
    Penalty { po: Uuid, days_late: i64, amount: Decimal },
    Cancel { po: Uuid },
}

/// A rule firing for a subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fired {
    pub rule: String,
    pub subject: Subject,
    pub effect: Effect,
}

impl Terms {
    fn item(&self, sku: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.sku == sku)
    }

    /// Whether the contract is in force on `day`.
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        (self.valid_from..=self.valid_to).contains(&day)
    }
}

impl Item {
    /// `wanted` units in the terms: at least the minimum, whole packs.
    pub fn order_quantity(&self, wanted: u32) -> u32 {
        let pack = self.pack_size.max(1);
        let q = wanted.max(self.moq).max(1);
        q.div_ceil(pack).saturating_mul(pack)
    }

    /// The unit price of an order of `quantity` units (all-units breaks).
    pub fn unit_price(&self, quantity: u32) -> Decimal {
        self.price_breaks
            .iter()
            .filter(|b| quantity >= b.min_quantity)
            .max_by_key(|b| b.min_quantity)
            .map_or(self.unit_price, |b| b.unit_price)
    }
}

/// The subjects `c` holds for.
fn holds(c: &Condition, doc: &Document, s: &State) -> BTreeSet<Subject> {
    let today = s.now.date_naive();
    let slot = |sku: &str, location: &str| Subject::Slot { sku: sku.to_owned(), location: location.to_owned() };
    let position = |sku: &str, location: &str| s.stock.get(&(sku.to_owned(), location.to_owned()));
    match c {
        Condition::StockBelow { sku, location, units } => {
            position(sku, location).filter(|p| p.available < *units).map(|_| slot(sku, location)).into_iter().collect()
        }
        Condition::DaysOfCoverBelow { sku, location, days } => position(sku, location)
            .filter(|p| Decimal::from(p.available.max(0)) < *days * p.daily_demand)
            .map(|_| slot(sku, location))
            .into_iter()
            .collect(),
        Condition::StockoutBeforeLeadTime { sku, location } => {
            let arrival = today + Duration::days(i64::from(doc.terms.lead_time_days));
            position(sku, location)
                .filter(|p| p.stockout_on.is_some_and(|d| d < arrival))
                .map(|_| slot(sku, location))
                .into_iter()
                .collect()
        }
        Condition::PlanLineApproved { sku } => s
            .approved_lines
            .iter()
            .filter(|l| sku.as_ref().is_none_or(|k| *k == l.sku) && doc.terms.item(&l.sku).is_some())
            .map(|l| Subject::Line { id: l.id })
            .collect(),
        Condition::PoUnacknowledged { hours } => s
            .purchase_orders
            .iter()
            .filter(|p| p.status == PoStatus::Issued && p.issued_at + Duration::hours(i64::from(*hours)) <= s.now)
            .map(|p| Subject::Po { id: p.id })
            .collect(),
        Condition::ShipmentLate { days } => s
            .purchase_orders
            .iter()
            .filter(|p| p.status.is_open() && (today - p.due_on).num_days() >= i64::from(*days))
            .map(|p| Subject::Po { id: p.id })
            .collect(),
        Condition::Date { on } => if today >= *on { vec![Subject::Contract] } else { vec![] }.into_iter().collect(),
        Condition::RuleFired { rule, hours } => s
            .fired
            .iter()
            .filter(|((r, _), at)| r == rule && **at + Duration::hours(i64::from(*hours)) <= s.now)
            .filter_map(|((_, key), _)| subject_of(key, s))
            .collect(),
        Condition::All(cs) => {
            let mut out: Option<BTreeSet<Subject>> = None;
            for c in cs {
                let h = holds(c, doc, s);
                if h.is_empty() {
                    return BTreeSet::new();
                }
                // Holding for the whole contract narrows nothing.
                if h.len() == 1 && h.contains(&Subject::Contract) {
                    continue;
                }
                out = Some(match out {
                    None => h,
                    Some(o) => o.intersection(&h).cloned().collect(),
                });
            }
            out.unwrap_or_else(|| std::iter::once(Subject::Contract).collect())
        }
        Condition::Any(cs) => cs.iter().flat_map(|c| holds(c, doc, s)).collect(),
    }
}

/// The subject a stored key names, if it still exists in `s`.
fn subject_of(key: &str, s: &State) -> Option<Subject> {
    if key == "contract" {
        return Some(Subject::Contract);
    }
    if let Some(rest) = key.strip_prefix("po:") {
        let id: Uuid = rest.parse().ok()?;
        return s.purchase_orders.iter().any(|p| p.id == id).then_some(Subject::Po { id });
    }
    if let Some(rest) = key.strip_prefix("line:") {
        return rest.parse().ok().map(|id| Subject::Line { id });
    }
    let (sku, location) = key.strip_prefix("slot:")?.split_once('@')?;
    Some(Subject::Slot { sku: sku.to_owned(), location: location.to_owned() })
}

/// What the contract's rules do now, rule by rule and subject by subject in order.
pub fn evaluate(doc: &Document, s: &State) -> Vec<Fired> {
    let today = s.now.date_naive();
    let mut out: Vec<Fired> = Vec::new();
    // SKU × location with an order open, including those issued by this evaluation.
    let mut open: BTreeSet<(String, String)> =
        s.purchase_orders.iter().filter(|p| p.status.is_open()).map(|p| (p.sku.clone(), p.location.clone())).collect();
    for rule in &doc.rules {
        for subject in holds(&rule.when, doc, s) {
            let once = !matches!(rule.then, Action::IssuePo { .. }) || matches!(subject, Subject::Line { .. });
            if once && s.fired.contains_key(&(rule.id.clone(), subject.key())) {
                continue;
            }
            let po = match &subject {
                Subject::Po { id } => s.purchase_orders.iter().find(|p| p.id == *id),
                _ => None,
            };
            let effect = match &rule.then {
                Action::IssuePo { sku, location, quantity } => {
                    if !doc.terms.valid_on(today) || open.contains(&(sku.clone(), location.clone())) {
                        continue;
                    }
                    let Some(item) = doc.terms.item(sku) else { continue };
                    let position = s.stock.get(&(sku.clone(), location.clone())).cloned().unwrap_or_default();
                    let Some(wanted) = wanted(quantity, (sku, location), &position, &subject, s) else { continue };
                    let q = item.order_quantity(wanted);
                    let unit_price = item.unit_price(q);
                    open.insert((sku.clone(), location.clone()));
                    Effect::IssuePo {
                        sku: sku.clone(),
                        location: location.clone(),
                        quantity: q,
                        unit_price,
                        value: unit_price * Decimal::from(q),
                        due_on: today + Duration::days(i64::from(doc.terms.lead_time_days)),
                    }
                }
                Action::SendReminder {} => match po {
                    Some(p) if p.status.is_open() => Effect::Remind { po: p.id },
                    _ => continue,
                },
                Action::Escalate { email } => Effect::Escalate { email: email.clone(), subject: subject.clone() },
                Action::ApplyLatePenalty {} => match (po, &doc.terms.late_penalty) {
                    (Some(p), Some(pen)) if (today - p.due_on).num_days() > 0 => {
                        let days_late = (today - p.due_on).num_days();
                        let percent = (pen.percent_per_day * Decimal::from(days_late)).min(pen.max_percent);
                        let amount = (p.value * percent / Decimal::ONE_HUNDRED).round_dp(2);
                        Effect::Penalty { po: p.id, days_late, amount }
                    }
                    _ => continue,
                },
                Action::Cancel {} => match po {
                    Some(p) if matches!(p.status, PoStatus::Issued | PoStatus::Acknowledged) => {
                        Effect::Cancel { po: p.id }
                    }
                    _ => continue,
                },
            };
            out.push(Fired { rule: rule.id.clone(), subject, effect });
        }
    }
    out
}

/// Units of `sku` at `location` wanted before rounding into the terms; `None` when none are.
fn wanted(q: &Quantity, (sku, location): (&str, &str), p: &Position, subject: &Subject, s: &State) -> Option<u32> {
    let have = p.available.max(0) + p.on_order.max(0);
    let units = match q {
        // Only a line for this SKU and location: the action says what it orders.
        Quantity::FromPlan => match subject {
            Subject::Line { id } => i64::from(
                s.approved_lines.iter().find(|l| l.id == *id && l.sku == sku && l.location == location)?.quantity,
            ),
            _ => return None,
        },
        Quantity::Fixed(n) => i64::from(*n),
        Quantity::OrderUpTo(level) => i64::from(*level) - have,
        Quantity::CoverDays(days) => (p.daily_demand * Decimal::from(*days)).ceil().to_i64().unwrap_or(i64::MAX) - have,
    };
    u32::try_from(units).ok().filter(|u| *u > 0)
}

impl State {
    /// The state after `fired` happened at `self.now`: what fired is remembered, purchase
    /// orders issued are open (with `ids` for them in order), cancelled ones closed.
    pub fn record(&mut self, fired: &[Fired], ids: &mut dyn Iterator<Item = Uuid>) {
        for f in fired {
            self.fired.insert((f.rule.clone(), f.subject.key()), self.now);
            match &f.effect {
                Effect::IssuePo { sku, location, quantity, value, due_on, .. } => {
                    let Some(id) = ids.next() else { continue };
                    self.purchase_orders.push(PurchaseOrder {
                        id,
                        sku: sku.clone(),
                        location: location.clone(),
                        quantity: *quantity,
                        value: *value,
                        status: PoStatus::Issued,
                        issued_at: self.now,
                        due_on: *due_on,
                    });
                    if let Some(p) = self.stock.get_mut(&(sku.clone(), location.clone())) {
                        p.on_order += i64::from(*quantity);
                    }
                }
                Effect::Cancel { po } => {
                    if let Some(p) = self.purchase_orders.iter_mut().find(|p| p.id == *po) {
                        p.status = PoStatus::Cancelled;
                    }
                }
                Effect::Remind { .. } | Effect::Escalate { .. } | Effect::Penalty { .. } => {}
            }
        }
    }
}
