//! Returns optimisation: for a day's returned items, a disposition and a returns-handling
//! location each, maximising what is recovered less processing and transport, within each
//! location's daily capacity.
//!
//! Each item either goes to one location for one disposition, or waits (`hold`, at a cost per
//! item, when capacity runs out or every option loses more than waiting). A location's capacity
//! counts items whatever their disposition, so for an item and a location only the most valuable
//! disposition allowed there matters: the program is a transportation problem (items × locations
//! with capacities), whose linear relaxation has integral optima. It is solved as a mixed-integer
//! program with good_lp (HiGHS with the `highs` feature, else the pure-Rust microlp) up to
//! [`SolveOptions::max_variables`]; larger batches are planned greedily (best net value first)
//! and the gap is reported against a Lagrangian upper bound (capacities priced by subgradient
//! steps), which bounds the optimum from above like the LP bound does.

use std::collections::{BTreeMap, BTreeSet};

use good_lp::{Expression, Solution, SolverModel, constraint, variable, variables};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::{Deserialize, Serialize};

use crate::routing::geo::haversine_m;
use crate::types::as_f64 as f;

pub mod rates;

#[cfg(test)]
mod tests;

/// What becomes of a returned item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Back on the shelf as new.
    RestockNew,
    /// Sold again as open-box, at a discount.
    OpenBox,
    /// Repaired, then sold; only a share succeeds (`yield`).
    Refurbish,
    /// Sent back to the supplier for its credit (only where it takes the item back).
    ReturnToVendor,
    /// Sold to a liquidator at a fraction of its value.
    Liquidate,
    Recycle,
}

impl Disposition {
    pub const ALL: [Disposition; 6] = [
        Disposition::RestockNew,
        Disposition::OpenBox,
        Disposition::Refurbish,
        Disposition::ReturnToVendor,
        Disposition::Liquidate,
        Disposition::Recycle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::RestockNew => "restock_new",
            Disposition::OpenBox => "open_box",
            Disposition::Refurbish => "refurbish",
            Disposition::ReturnToVendor => "return_to_vendor",
            Disposition::Liquidate => "liquidate",
            Disposition::Recycle => "recycle",
        }
    }

    /// Whether the item goes back into sellable stock.
    pub fn restocks(self) -> bool {
        matches!(self, Disposition::RestockNew | Disposition::OpenBox)
    }
}

/// The condition an item came back in: A as new, B opened or lightly used, C used or damaged,
/// D broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Grade {
    A,
    B,
    C,
    D,
}

/// One returned item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: String,
    pub sku: String,
    /// Its value as new (what restocking it recovers).
    pub value: Decimal,
    pub grade: Grade,
    #[serde(default)]
    pub reason: String,
    /// Where it ships from (the customer).
    pub lat: f64,
    pub lon: f64,
    /// What the supplier credits for it back; absent: the supplier does not take it.
    #[serde(default)]
    pub vendor_credit: Option<Decimal>,
    /// The extra worth of restocking it at a location whose stock of the SKU runs short (by
    /// location id): the service derives it from forecast days of cover.
    #[serde(default)]
    pub restock_bonus: BTreeMap<String, Decimal>,
}

/// A returns-handling location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    /// Items it can process a day.
    pub capacity: u32,
    /// The dispositions it performs, each with its processing cost per item.
    pub dispositions: BTreeMap<Disposition, Decimal>,
}

/// What a disposition recovers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// The share of the item's value it recovers (ignored for `return_to_vendor`, which
    /// recovers the vendor's credit).
    #[serde(default)]
    pub recovery_rate: Decimal,
    /// `refurbish`: the share of items that come out sellable (default 1).
    #[serde(default, rename = "yield")]
    pub yield_rate: Option<Decimal>,
    /// The grades it applies to; empty: all.
    #[serde(default)]
    pub grades: Vec<Grade>,
}

/// A day's batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    pub items: Vec<Item>,
    pub locations: Vec<Location>,
    pub dispositions: BTreeMap<Disposition, Terms>,
    /// Moving one item one kilometre (great-circle) to a location.
    #[serde(default)]
    pub transport_cost_per_km: Decimal,
    /// What leaving an item unprocessed for a day costs (default 1).
    #[serde(default = "one")]
    pub hold_cost: Decimal,
}

fn one() -> Decimal {
    Decimal::ONE
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnsError {
    #[error("items[{0}]: {1}")]
    Item(usize, String),
    #[error("locations[{0}]: {1}")]
    Location(usize, String),
    #[error("dispositions.{0}: {1}")]
    Terms(&'static str, String),
    #[error("{0}")]
    Problem(String),
}

/// One item's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub item: String,
    /// `None`: held for another day.
    pub disposition: Option<Disposition>,
    pub location: Option<String>,
    pub expected_recovery: Decimal,
    pub processing_cost: Decimal,
    pub transport_cost: Decimal,
    /// Recovery less costs (less the hold cost for a held item).
    pub net: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Milp,
    Greedy,
    /// Decided elsewhere and scored by [`score`].
    Given,
}

/// The plan for a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// In the order of the items.
    pub decisions: Vec<Decision>,
    /// The sum of the decisions' net values.
    pub objective: Decimal,
    pub method: Method,
    /// An upper bound on the objective (the optimum itself for the MILP).
    pub bound: Decimal,
    /// (bound − objective) / max(|bound|, 1).
    pub gap: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolveOptions {
    /// Above this many item × location options the batch is planned greedily.
    pub max_variables: usize,
}

impl Default for SolveOptions {
    fn default() -> Self {
        // microlp's simplex slows down steeply past a few thousand columns; HiGHS does not.
        Self { max_variables: if cfg!(feature = "highs") { 200_000 } else { 3_000 } }
    }
}

/// The best way to process an item at a location.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    location: usize,
    disposition: Disposition,
    recovery: Decimal,
    processing: Decimal,
    transport: Decimal,
    net: Decimal,
}

fn check(p: &Problem) -> Result<(), ReturnsError> {
    let unit = |d: Decimal| (Decimal::ZERO..=Decimal::ONE).contains(&d);
    for (d, t) in &p.dispositions {
        if !unit(t.recovery_rate) {
            return Err(ReturnsError::Terms(d.as_str(), "recovery_rate is between 0 and 1".into()));
        }
        if t.yield_rate.is_some_and(|y| !unit(y)) {
            return Err(ReturnsError::Terms(d.as_str(), "yield is between 0 and 1".into()));
        }
    }
    let mut ids = BTreeSet::new();
    for (i, it) in p.items.iter().enumerate() {
        if it.id.is_empty() || !ids.insert(it.id.as_str()) {
            return Err(ReturnsError::Item(i, format!("id {:?} is empty or used twice", it.id)));
        }
        if it.value < Decimal::ZERO || it.vendor_credit.is_some_and(|c| c < Decimal::ZERO) {
            return Err(ReturnsError::Item(i, "value and vendor_credit are 0 or more".into()));
        }
        if !(-90.0..=90.0).contains(&it.lat) || !(-180.0..=180.0).contains(&it.lon) {
            return Err(ReturnsError::Item(i, "lat and lon are coordinates in degrees".into()));
        }
    }
    let mut ids = BTreeSet::new();
    for (i, l) in p.locations.iter().enumerate() {
        if l.id.is_empty() || !ids.insert(l.id.as_str()) {
            return Err(ReturnsError::Location(i, format!("id {:?} is empty or used twice", l.id)));
        }
        if l.dispositions.values().any(|c| *c < Decimal::ZERO) {
            return Err(ReturnsError::Location(i, "processing costs are 0 or more".into()));
        }
        if !(-90.0..=90.0).contains(&l.lat) || !(-180.0..=180.0).contains(&l.lon) {
            return Err(ReturnsError::Location(i, "lat and lon are coordinates in degrees".into()));
        }
    }
    if p.transport_cost_per_km < Decimal::ZERO || p.hold_cost < Decimal::ZERO {
        return Err(ReturnsError::Problem("transport_cost_per_km and hold_cost are 0 or more".into()));
    }
    Ok(())
}

/// What `d` recovers from `it`, if it applies.
fn recovery(p: &Problem, it: &Item, d: Disposition) -> Option<Decimal> {
    let t = p.dispositions.get(&d)?;
    if !t.grades.is_empty() && !t.grades.contains(&it.grade) {
        return None;
    }
    Some(match d {
        Disposition::ReturnToVendor => it.vendor_credit?,
        Disposition::Refurbish => it.value * t.recovery_rate * t.yield_rate.unwrap_or(Decimal::ONE),
        _ => it.value * t.recovery_rate,
    })
}

/// Moving `it` to `loc`: great-circle kilometres at the cost per kilometre.
fn transport(p: &Problem, it: &Item, loc: &Location) -> Decimal {
    let km = haversine_m((it.lat, it.lon), (loc.lat, loc.lon)) / 1000.0;
    (Decimal::from_f64(km).unwrap_or_default() * p.transport_cost_per_km).round_dp(4)
}

/// For each item, the best disposition at each location that performs one for it.
fn options(p: &Problem) -> Vec<Vec<Candidate>> {
    p.items
        .iter()
        .map(|it| {
            p.locations
                .iter()
                .enumerate()
                .filter_map(|(l, loc)| {
                    let transport = transport(p, it, loc);
                    Disposition::ALL
                        .iter()
                        .filter_map(|&d| {
                            let processing = *loc.dispositions.get(&d)?;
                            let mut recovered = recovery(p, it, d)?;
                            if d.restocks() {
                                recovered += it.restock_bonus.get(&loc.id).copied().unwrap_or_default();
                            }
                            let net = recovered - processing - transport;
                            Some(Candidate {
                                location: l,
                                disposition: d,
                                recovery: recovered,
                                processing,
                                transport,
                                net,
                            })
                        })
                        // The first of equals, in the dispositions' order.
                        .fold(None, |best: Option<Candidate>, o| match best {
                            Some(b) if b.net >= o.net => Some(b),
                            _ => Some(o),
                        })
                })
                .collect()
        })
        .collect()
}

fn decision(it: &Item, o: Option<&Candidate>, p: &Problem) -> Decision {
    match o {
        Some(o) => Decision {
            item: it.id.clone(),
            disposition: Some(o.disposition),
            location: Some(p.locations[o.location].id.clone()),
            expected_recovery: o.recovery,
            processing_cost: o.processing,
            transport_cost: o.transport,
            net: o.net,
        },
        None => Decision {
            item: it.id.clone(),
            disposition: None,
            location: None,
            expected_recovery: Decimal::ZERO,
            processing_cost: Decimal::ZERO,
            transport_cost: Decimal::ZERO,
            net: -p.hold_cost,
        },
    }
}

/// Scores decisions made elsewhere (a location index and a disposition per item, `None` to
/// hold): what each recovers and costs, the total, and the gap to the Lagrangian bound. Refuses
/// a disposition the location does not perform or the grade does not allow, and a location
/// over its capacity.
pub fn score(p: &Problem, picks: &[Option<(usize, Disposition)>]) -> Result<Plan, ReturnsError> {
    check(p)?;
    if picks.len() != p.items.len() {
        return Err(ReturnsError::Problem(format!("{} decisions for {} items", picks.len(), p.items.len())));
    }
    let mut used = vec![0u32; p.locations.len()];
    let mut decisions = Vec::with_capacity(p.items.len());
    for (i, (it, pick)) in p.items.iter().zip(picks).enumerate() {
        let Some((l, d)) = *pick else {
            decisions.push(decision(it, None, p));
            continue;
        };
        let loc = p.locations.get(l).ok_or_else(|| ReturnsError::Item(i, format!("no location {l}")))?;
        let (Some(processing), Some(mut recovered)) = (loc.dispositions.get(&d).copied(), recovery(p, it, d)) else {
            return Err(ReturnsError::Item(i, format!("{} cannot {} it", loc.id, d.as_str())));
        };
        used[l] += 1;
        if used[l] > loc.capacity {
            return Err(ReturnsError::Location(l, "over its capacity".into()));
        }
        if d.restocks() {
            recovered += it.restock_bonus.get(&loc.id).copied().unwrap_or_default();
        }
        let transport = transport(p, it, loc);
        let o = Candidate {
            location: l,
            disposition: d,
            recovery: recovered,
            processing,
            transport,
            net: recovered - processing - transport,
        };
        decisions.push(decision(it, Some(&o), p));
    }
    let objective: Decimal = decisions.iter().map(|d| d.net).sum();
    let bound = lagrangian_bound(p, &options(p)).max(objective);
    let gap = f(bound - objective) / f(bound).abs().max(1.0);
    Ok(Plan { decisions, objective, method: Method::Given, bound, gap })
}

/// The greedy plan: options by net value, best first, while the item is free and its location
/// has room; an option worse than holding is not taken.
pub fn greedy(p: &Problem) -> Result<Plan, ReturnsError> {
    check(p)?;
    let opts = options(p);
    let choice = greedy_choice(p, &opts);
    Ok(finish(p, &opts, &choice, Method::Greedy))
}

fn greedy_choice(p: &Problem, opts: &[Vec<Candidate>]) -> Vec<Option<usize>> {
    let mut all: Vec<(usize, usize)> =
        opts.iter().enumerate().flat_map(|(i, os)| (0..os.len()).map(move |k| (i, k))).collect();
    all.sort_by(|a, b| opts[b.0][b.1].net.cmp(&opts[a.0][a.1].net).then(a.cmp(b)));
    let mut left: Vec<u32> = p.locations.iter().map(|l| l.capacity).collect();
    let mut choice = vec![None; opts.len()];
    for (i, k) in all {
        let o = &opts[i][k];
        if choice[i].is_none() && left[o.location] > 0 && o.net > -p.hold_cost {
            choice[i] = Some(k);
            left[o.location] -= 1;
        }
    }
    choice
}

fn finish(p: &Problem, opts: &[Vec<Candidate>], choice: &[Option<usize>], method: Method) -> Plan {
    let decisions: Vec<Decision> =
        p.items.iter().zip(choice).enumerate().map(|(i, (it, c))| decision(it, c.map(|k| &opts[i][k]), p)).collect();
    let objective: Decimal = decisions.iter().map(|d| d.net).sum();
    // The MILP's optimum is its own bound (the relaxation is integral).
    let bound = if method == Method::Milp { objective } else { lagrangian_bound(p, opts).max(objective) };
    let gap = f(bound - objective) / f(bound).abs().max(1.0);
    Plan { decisions, objective, method, bound, gap }
}

/// An upper bound on the best objective: with capacity prices λ ≥ 0, each item takes its best
/// option net of its location's price (or holds), plus Σ λ × capacity. Prices follow
/// subgradient steps; the least bound seen is kept.
fn lagrangian_bound(p: &Problem, opts: &[Vec<Candidate>]) -> Decimal {
    let hold = -f(p.hold_cost);
    let cap: Vec<f64> = p.locations.iter().map(|l| f64::from(l.capacity)).collect();
    let mut lambda = vec![0.0f64; cap.len()];
    let mut best = f64::INFINITY;
    let scale = opts.iter().flatten().map(|o| f(o.net).abs()).fold(1.0f64, f64::max);
    for step in 0..200 {
        let mut used = vec![0.0f64; cap.len()];
        let mut value: f64 = lambda.iter().zip(&cap).map(|(l, c)| l * c).sum();
        for os in opts {
            let pick = os
                .iter()
                .map(|o| (f(o.net) - lambda[o.location], o.location))
                .fold((hold, None), |b, (v, l)| if v > b.0 { (v, Some(l)) } else { b });
            value += pick.0;
            if let Some(l) = pick.1 {
                used[l] += 1.0;
            }
        }
        best = best.min(value);
        let t = scale / (1.0 + step as f64);
        let mut moved = false;
        for l in 0..cap.len() {
            let next = (lambda[l] + t * (used[l] - cap[l]) / (1.0 + cap[l])).max(0.0);
            moved |= (next - lambda[l]).abs() > 1e-12;
            lambda[l] = next;
        }
        if !moved {
            break;
        }
    }
    Decimal::from_f64(best).unwrap_or(Decimal::MAX).round_dp(4)
}

/// The plan: exact (mixed-integer program) up to `o.max_variables` options, greedy beyond or
/// if the solver fails.
pub fn solve(p: &Problem, o: &SolveOptions) -> Result<Plan, ReturnsError> {
    check(p)?;
    let opts = options(p);
    let n: usize = opts.iter().map(Vec::len).sum();
    if n <= o.max_variables
        && let Some(choice) = milp(p, &opts)
    {
        return Ok(finish(p, &opts, &choice, Method::Milp));
    }
    let choice = greedy_choice(p, &opts);
    Ok(finish(p, &opts, &choice, Method::Greedy))
}

fn milp(p: &Problem, opts: &[Vec<Candidate>]) -> Option<Vec<Option<usize>>> {
    let mut vars = variables!();
    let x: Vec<Vec<variable::Variable>> =
        opts.iter().map(|os| os.iter().map(|_| vars.add(variable().binary())).collect()).collect();
    let hold: Vec<variable::Variable> = opts.iter().map(|_| vars.add(variable().binary())).collect();
    let mut objective = Expression::from(0.0);
    for (i, os) in opts.iter().enumerate() {
        for (k, o) in os.iter().enumerate() {
            objective += f(o.net) * x[i][k];
        }
        objective -= f(p.hold_cost) * hold[i];
    }
    let mut model = crate::lp::solver(vars.maximise(objective));
    let mut per_location: Vec<Expression> = vec![Expression::from(0.0); p.locations.len()];
    for (i, os) in opts.iter().enumerate() {
        let mut one = Expression::from(hold[i]);
        for (k, o) in os.iter().enumerate() {
            one += x[i][k];
            per_location[o.location] += x[i][k];
        }
        model = model.with(constraint!(one == 1.0));
    }
    for (l, e) in per_location.into_iter().enumerate() {
        model = model.with(constraint!(e <= f64::from(p.locations[l].capacity)));
    }
    let solution = model.solve().ok()?;
    Some(x.iter().map(|xs| xs.iter().position(|v| solution.value(*v) > 0.5)).collect())
}
