//! The contract document: terms and `when … then …` rules, read from JSON and checked.
//!
//! Reading names the offending element by its path (`rules[1].when.stock_below.units`) for an
//! unknown field or a wrong type; checking then finds what a type cannot say: a rule on a SKU the
//! terms do not cover, a rule following one that does not exist, rules that follow each other in
//! a cycle, quantities and prices out of range, dates the wrong way round.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A contract's terms and rules, as the parties agreed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub terms: Terms,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// ISO 4217 code of every price.
    pub currency: String,
    pub items: Vec<Item>,
    /// Days from a purchase order to its delivery.
    pub lead_time_days: u32,
    /// As agreed, e.g. "net 30".
    #[serde(default)]
    pub payment_terms: String,
    /// What a late delivery costs the supplier.
    #[serde(default)]
    pub late_penalty: Option<LatePenalty>,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
}

/// One SKU the contract covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub sku: String,
    pub unit_price: Decimal,
    /// All-units quantity breaks: from `min_quantity` in one order, every unit costs `unit_price`.
    #[serde(default)]
    pub price_breaks: Vec<PriceBreak>,
    #[serde(default = "one")]
    pub moq: u32,
    #[serde(default = "one")]
    pub pack_size: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBreak {
    pub min_quantity: u32,
    pub unit_price: Decimal,
}

/// A share of the order's value per day late, up to a cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatePenalty {
    pub percent_per_day: Decimal,
    pub max_percent: Decimal,
}

/// `when` the condition holds, `then` the action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique within the contract; names the rule in events and in `rule_fired`.
    pub id: String,
    pub when: Condition,
    pub then: Action,
}

/// What a rule waits for. Stock and cover are per SKU at a location (by its code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Available units (on hand less reserved) below `units`.
    StockBelow { sku: String, location: String, units: i64 },
    /// Available units cover fewer than `days` of forecast demand.
    DaysOfCoverBelow { sku: String, location: String, days: Decimal },
    /// The forecast runs the SKU out at the location before an order placed now would arrive.
    StockoutBeforeLeadTime { sku: String, location: String },
    /// A replenishment plan line buying the SKU (any covered SKU without one) from this
    /// supplier was approved.
    PlanLineApproved {
        #[serde(default)]
        sku: Option<String>,
    },
    /// A purchase order of this contract is not acknowledged `hours` after it was issued.
    PoUnacknowledged { hours: u32 },
    /// A shipment of a purchase order of this contract is `days` past its promised date.
    ShipmentLate { days: u32 },
    /// From this date on.
    Date { on: NaiveDate },
    /// `hours` after the rule `rule` fired for the same purchase order (or at all).
    RuleFired {
        rule: String,
        #[serde(default)]
        hours: u32,
    },
    /// Every one of them.
    All(Vec<Condition>),
    /// At least one of them.
    Any(Vec<Condition>),
}

/// How many units a purchase order asks for, always rounded into the terms (at least the MOQ,
/// whole packs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Quantity {
    /// The approved replenishment line's quantity (with `plan_line_approved`).
    FromPlan,
    Fixed(u32),
    /// Up to this many units available plus on order at the location.
    OrderUpTo(u32),
    /// Enough for this many days of forecast demand beyond what is available and on order.
    CoverDays(u32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Issues a purchase order for the SKU to the location on the contract's terms.
    IssuePo { sku: String, location: String, quantity: Quantity },
    /// Reminds the supplier of the purchase order the condition is about.
    SendReminder {},
    /// E-mails `email` about the purchase order the condition is about.
    Escalate { email: String },
    /// Applies the terms' late penalty to the late purchase order.
    ApplyLatePenalty {},
    /// Cancels the purchase order the condition is about.
    Cancel {},
}

/// One problem of a document: where (a path like `rules[0].when.stock_below.sku`) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RuleError {
    pub path: String,
    pub message: String,
}

impl RuleError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

/// Reads and checks a contract document from JSON.
pub fn parse(json: &str) -> Result<Document, Vec<RuleError>> {
    let de = &mut serde_json::Deserializer::from_str(json);
    let doc: Document = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // serde_json appends " at line L column C"; the path says where already.
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        vec![RuleError::new(if path == "." { String::new() } else { path }, message)]
    })?;
    validate(&doc)?;
    Ok(doc)
}

/// Checks what the types cannot: every problem, each with its path.
pub fn validate(doc: &Document) -> Result<(), Vec<RuleError>> {
    let mut errors = Vec::new();
    let t = &doc.terms;
    if t.currency.len() != 3 || !t.currency.chars().all(|c| c.is_ascii_uppercase()) {
        errors.push(RuleError::new("terms.currency", "a three-letter ISO 4217 code, e.g. USD"));
    }
    if t.valid_to < t.valid_from {
        errors.push(RuleError::new("terms.valid_to", "the contract ends before it starts"));
    }
    if t.items.is_empty() {
        errors.push(RuleError::new("terms.items", "a contract covers at least one SKU"));
    }
    if let Some(p) = &t.late_penalty
        && (p.percent_per_day < Decimal::ZERO || p.max_percent < Decimal::ZERO || p.max_percent > Decimal::ONE_HUNDRED)
    {
        errors.push(RuleError::new("terms.late_penalty", "percentages are 0 to 100"));
    }
    let mut skus = BTreeSet::new();
    for (i, item) in t.items.iter().enumerate() {
        let at = |f: &str| format!("terms.items[{i}].{f}");
        if item.sku.trim().is_empty() {
            errors.push(RuleError::new(at("sku"), "a SKU is required"));
        } else if !skus.insert(item.sku.as_str()) {
            errors.push(RuleError::new(at("sku"), format!("{} is listed twice", item.sku)));
        }
        if item.unit_price <= Decimal::ZERO {
            errors.push(RuleError::new(at("unit_price"), "a price is above zero"));
        }
        if item.moq == 0 {
            errors.push(RuleError::new(at("moq"), "the minimum order is at least 1"));
        }
        if item.pack_size == 0 {
            errors.push(RuleError::new(at("pack_size"), "a pack holds at least 1 unit"));
        }
        let mut last = 0;
        for (j, b) in item.price_breaks.iter().enumerate() {
            if b.min_quantity <= last {
                errors.push(RuleError::new(
                    format!("terms.items[{i}].price_breaks[{j}].min_quantity"),
                    "breaks go up in quantity, each above 1",
                ));
            }
            if b.unit_price <= Decimal::ZERO {
                errors.push(RuleError::new(
                    format!("terms.items[{i}].price_breaks[{j}].unit_price"),
                    "a price is above zero",
                ));
            }
            last = b.min_quantity.max(last);
        }
    }
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in doc.rules.iter().enumerate() {
        if r.id.trim().is_empty() {
            errors.push(RuleError::new(format!("rules[{i}].id"), "a rule has an id"));
        } else if ids.insert(r.id.as_str(), i).is_some() {
            errors.push(RuleError::new(format!("rules[{i}].id"), format!("{} is used by another rule", r.id)));
        }
    }
    for (i, r) in doc.rules.iter().enumerate() {
        check_condition(&r.when, &format!("rules[{i}].when"), &skus, &ids, &mut errors);
        check_action(&r.then, &format!("rules[{i}].then"), &skus, doc, &mut errors);
        let on_po = match r.then {
            Action::SendReminder {} => Some("send_reminder"),
            Action::ApplyLatePenalty {} => Some("apply_late_penalty"),
            Action::Cancel {} => Some("cancel"),
            _ => None,
        };
        if let Some(name) = on_po.filter(|_| !names_po(&r.when)) {
            errors.push(RuleError::new(
                format!("rules[{i}].then.{name}"),
                "acts on a purchase order: the condition must be about one (po_unacknowledged, shipment_late, or rule_fired)",
            ));
        }
    }
    if let Some((i, path)) = cycle(doc, &ids) {
        errors.push(RuleError::new(
            format!("rules[{i}].when"),
            format!("rules follow each other in a cycle: {}", path.join(" → ")),
        ));
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

fn check_sku(sku: &str, path: String, skus: &BTreeSet<&str>, errors: &mut Vec<RuleError>) {
    if !skus.contains(sku) {
        errors.push(RuleError::new(path, format!("{sku} is not covered by the contract's terms")));
    }
}

fn check_location(location: &str, path: String, errors: &mut Vec<RuleError>) {
    if location.trim().is_empty() {
        errors.push(RuleError::new(path, "a location code is required"));
    }
}

fn check_condition(
    c: &Condition,
    path: &str,
    skus: &BTreeSet<&str>,
    ids: &BTreeMap<&str, usize>,
    errors: &mut Vec<RuleError>,
) {
    match c {
        Condition::StockBelow { sku, location, units } => {
            check_sku(sku, format!("{path}.stock_below.sku"), skus, errors);
            check_location(location, format!("{path}.stock_below.location"), errors);
            if *units < 0 {
                errors.push(RuleError::new(format!("{path}.stock_below.units"), "a threshold is 0 or more"));
            }
        }
        Condition::DaysOfCoverBelow { sku, location, days } => {
            check_sku(sku, format!("{path}.days_of_cover_below.sku"), skus, errors);
            check_location(location, format!("{path}.days_of_cover_below.location"), errors);
            if *days <= Decimal::ZERO {
                errors.push(RuleError::new(format!("{path}.days_of_cover_below.days"), "a number of days above 0"));
            }
        }
        Condition::StockoutBeforeLeadTime { sku, location } => {
            check_sku(sku, format!("{path}.stockout_before_lead_time.sku"), skus, errors);
            check_location(location, format!("{path}.stockout_before_lead_time.location"), errors);
        }
        Condition::PlanLineApproved { sku: Some(sku) } => {
            check_sku(sku, format!("{path}.plan_line_approved.sku"), skus, errors);
        }
        Condition::PlanLineApproved { sku: None } | Condition::Date { .. } => {}
        Condition::PoUnacknowledged { hours } => {
            if *hours == 0 {
                errors.push(RuleError::new(format!("{path}.po_unacknowledged.hours"), "at least 1 hour"));
            }
        }
        Condition::ShipmentLate { days } => {
            if *days == 0 {
                errors.push(RuleError::new(format!("{path}.shipment_late.days"), "at least 1 day"));
            }
        }
        Condition::RuleFired { rule, .. } => {
            if !ids.contains_key(rule.as_str()) {
                errors.push(RuleError::new(format!("{path}.rule_fired.rule"), format!("no rule has the id {rule}")));
            }
        }
        Condition::All(cs) | Condition::Any(cs) => {
            let name = if matches!(c, Condition::All(_)) { "all" } else { "any" };
            if cs.is_empty() {
                errors.push(RuleError::new(format!("{path}.{name}"), "at least one condition"));
            }
            for (i, c) in cs.iter().enumerate() {
                check_condition(c, &format!("{path}.{name}[{i}]"), skus, ids, errors);
            }
        }
    }
}

fn check_action(a: &Action, path: &str, skus: &BTreeSet<&str>, doc: &Document, errors: &mut Vec<RuleError>) {
    match a {
        Action::IssuePo { sku, location, quantity } => {
            check_sku(sku, format!("{path}.issue_po.sku"), skus, errors);
            check_location(location, format!("{path}.issue_po.location"), errors);
            if matches!(quantity, Quantity::Fixed(0) | Quantity::OrderUpTo(0) | Quantity::CoverDays(0)) {
                errors.push(RuleError::new(format!("{path}.issue_po.quantity"), "a quantity above 0"));
            }
        }
        Action::Escalate { email } => {
            let ok = email.split_once('@').is_some_and(|(a, d)| !a.is_empty() && d.contains('.'));
            if !ok {
                errors.push(RuleError::new(format!("{path}.escalate.email"), "an e-mail address"));
            }
        }
        Action::ApplyLatePenalty {} if doc.terms.late_penalty.is_none() => {
            errors.push(RuleError::new(format!("{path}.apply_late_penalty"), "the terms set no late penalty"));
        }
        Action::ApplyLatePenalty {} | Action::SendReminder {} | Action::Cancel {} => {}
    }
}

/// A name a document uses for something the tenant holds: a SKU or a location code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    Sku(String),
    Location(String),
}

impl Document {
    /// Every SKU and location code the document names, each with its path (as in
    /// [`RuleError`]), in document order.
    pub fn references(&self) -> Vec<(String, Reference)> {
        let mut out = Vec::new();
        for (i, item) in self.terms.items.iter().enumerate() {
            out.push((format!("terms.items[{i}].sku"), Reference::Sku(item.sku.clone())));
        }
        fn walk(c: &Condition, path: &str, out: &mut Vec<(String, Reference)>) {
            match c {
                Condition::StockBelow { sku, location, .. }
                | Condition::DaysOfCoverBelow { sku, location, .. }
                | Condition::StockoutBeforeLeadTime { sku, location } => {
                    let name = match c {
                        Condition::StockBelow { .. } => "stock_below",
                        Condition::DaysOfCoverBelow { .. } => "days_of_cover_below",
                        _ => "stockout_before_lead_time",
                    };
                    out.push((format!("{path}.{name}.sku"), Reference::Sku(sku.clone())));
                    out.push((format!("{path}.{name}.location"), Reference::Location(location.clone())));
                }
                Condition::All(cs) | Condition::Any(cs) => {
                    let name = if matches!(c, Condition::All(_)) { "all" } else { "any" };
                    for (i, c) in cs.iter().enumerate() {
                        walk(c, &format!("{path}.{name}[{i}]"), out);
                    }
                }
                _ => {}
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            walk(&r.when, &format!("rules[{i}].when"), &mut out);
            if let Action::IssuePo { sku, location, .. } = &r.then {
                out.push((format!("rules[{i}].then.issue_po.sku"), Reference::Sku(sku.clone())));
                out.push((format!("rules[{i}].then.issue_po.location"), Reference::Location(location.clone())));
            }
        }
        out
    }

    /// The (SKU, location code) pairs the rules read or order.
    pub fn slots(&self) -> BTreeSet<(String, String)> {
        let refs = self.references();
        let mut out = BTreeSet::new();
        for pair in refs.windows(2) {
            if let [(a, Reference::Sku(sku)), (b, Reference::Location(loc))] = pair
                && a.rsplit_once('.').map(|x| x.0) == b.rsplit_once('.').map(|x| x.0)
            {
                out.insert((sku.clone(), loc.clone()));
            }
        }
        out
    }
}

/// A path like `rules[1].when.all[0].stock_below.sku` as its parts: `rules`, `1`, `when`, `all`,
/// `0`, `stock_below`, `sku`.
pub fn path_parts(path: &str) -> Vec<String> {
    path.split(['.', '[', ']']).filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

/// Whether a condition can hold for a purchase order.
fn names_po(c: &Condition) -> bool {
    match c {
        Condition::PoUnacknowledged { .. } | Condition::ShipmentLate { .. } | Condition::RuleFired { .. } => true,
        Condition::All(cs) | Condition::Any(cs) => cs.iter().any(names_po),
        _ => false,
    }
}

/// The rules a condition follows (`rule_fired`), anywhere inside it.
pub(crate) fn follows(c: &Condition) -> Vec<&str> {
    match c {
        Condition::RuleFired { rule, .. } => vec![rule.as_str()],
        Condition::All(cs) | Condition::Any(cs) => cs.iter().flat_map(follows).collect(),
        _ => Vec::new(),
    }
}

/// A cycle of rules following each other: the index of a rule on it and the ids around it.
fn cycle(doc: &Document, ids: &BTreeMap<&str, usize>) -> Option<(usize, Vec<String>)> {
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state = vec![0u8; doc.rules.len()];
    fn visit(
        i: usize,
        doc: &Document,
        ids: &BTreeMap<&str, usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[i] = 1;
        path.push(i);
        for next in follows(&doc.rules[i].when).into_iter().filter_map(|id| ids.get(id).copied()) {
            if state[next] == 1 {
                let from = path.iter().position(|&p| p == next).unwrap_or(0);
                let mut found = path[from..].to_vec();
                found.push(next);
                return Some(found);
            }
            if state[next] == 0
                && let Some(c) = visit(next, doc, ids, state, path)
            {
                return Some(c);
            }
        }
        path.pop();
        state[i] = 2;
        None
    }
    for i in 0..doc.rules.len() {
        if state[i] == 0
            && let Some(c) = visit(i, doc, ids, &mut state, &mut Vec::new())
        {
            let names = c.iter().map(|&r| doc.rules[r].id.clone()).collect();
            return Some((c[0], names));
        }
    }
    None
}
