//! Order allocation: which location ships each line of an order.
//!
//! A line ships whole from one location. The cost of an allocation is, per parcel (each
//! location an order ships from), the shipping rate of its distance band (per parcel and per
//! unit) and the location's handling (per parcel and per unit), a split cost per parcel beyond
//! the first, and the expected cost of the stockouts the units cause where they are still
//! needed: with the demand a location must keep serving until it is replenished as a Poisson
//! mean μ and `s` units on hand, the k-th unit taken costs `stockout_cost × P(D > s − k)`. A
//! line no location can ship costs `unfilled_cost` a unit.
//!
//! One order is allocated exactly by a search over each line's candidate locations (bounded;
//! greedy past it). A batch of orders sharing stock is a mixed-integer program (good_lp; the
//! stockout cost as a convex piecewise-linear function of the units taken), with a greedy
//! fallback past a size or when the solver fails; the greedy plan allocates orders one after
//! the other, each exactly, on the stock the ones before left.

use std::collections::{BTreeMap, BTreeSet};

use good_lp::{Expression, Solution, SolverModel, constraint, variable, variables};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::{Deserialize, Serialize};

use crate::routing::geo::haversine_m;
use crate::types::as_f64 as f;

#[cfg(test)]
mod tests;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: String,
    pub lines: Vec<Line>,
    /// Ship-to.
    pub lat: f64,
    pub lon: f64,
    /// Ship only from this location (a tenant setting or the customer's choice).
    #[serde(default)]
    pub pinned: Option<String>,
}

/// A distance band's rate: up to `max_km`, per parcel and per unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub max_km: f64,
    pub parcel: Decimal,
    #[serde(default)]
    pub unit: Decimal,
}

/// What shipping one unit away costs the location: its stock is needed for this demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protection {
    /// Expected units it must still serve until it is replenished.
    pub demand: f64,
    /// What a unit it is then short costs.
    pub stockout_cost: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    /// A store: it ships online orders only with `ship_from_store`.
    #[serde(default)]
    pub store: bool,
    #[serde(default)]
    pub ship_from_store: bool,
    #[serde(default)]
    pub handling_per_parcel: Decimal,
    #[serde(default)]
    pub handling_per_unit: Decimal,
    /// Rates by distance, nearest band first; farther than the last it does not ship.
    pub bands: Vec<Band>,
    /// Available units by SKU.
    pub stock: BTreeMap<String, u32>,
    #[serde(default)]
    pub protect: BTreeMap<String, Protection>,
}

impl Site {
    fn ships_online(&self) -> bool {
        !self.store || self.ship_from_store
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    pub orders: Vec<Order>,
    pub sites: Vec<Site>,
    /// Each parcel beyond an order's first.
    #[serde(default)]
    pub split_cost: Decimal,
    /// A unit no location can ship.
    #[serde(default = "unfilled")]
    pub unfilled_cost: Decimal,
}

fn unfilled() -> Decimal {
    Decimal::from(1000)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("orders[{0}]: {1}")]
    Order(usize, String),
    #[error("sites[{0}]: {1}")]
    Site(usize, String),
}

/// Where each line of an order ships from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    pub order: String,
    /// Per line, the site's id; `None`: no site can ship it.
    pub lines: Vec<Option<String>>,
    pub parcels: usize,
    pub shipping: Decimal,
    pub handling: Decimal,
    pub split: Decimal,
    pub stockout_risk: Decimal,
    pub unfilled: Decimal,
    pub cost: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Milp,
    Greedy,
    /// Decided elsewhere and scored by [`score`].
    Given,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub allocations: Vec<Allocation>,
    pub cost: Decimal,
    pub method: Method,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolveOptions {
    /// Above this many line × site candidates a batch is allocated greedily.
    pub max_variables: usize,
    /// One order's exact search explores at most this many partial allocations.
    pub max_search: usize,
}

impl Default for SolveOptions {
    fn default() -> Self {
        // microlp's branch and bound on a batch of 120 orders × 8 locations (about 600
        // candidates) takes seconds and grows steeply; HiGHS solves 5,000 orders.
        Self { max_variables: if cfg!(feature = "highs") { 100_000 } else { 400 }, max_search: 200_000 }
    }
}

fn check(p: &Problem) -> Result<(), AllocationError> {
    let mut ids = BTreeSet::new();
    for (i, s) in p.sites.iter().enumerate() {
        if s.id.is_empty() || !ids.insert(s.id.as_str()) {
            return Err(AllocationError::Site(i, format!("id {:?} is empty or used twice", s.id)));
        }
        if s.bands
            .iter()
            .any(|b| b.parcel < Decimal::ZERO || b.unit < Decimal::ZERO || b.max_km.is_nan() || b.max_km < 0.0)
        {
            return Err(AllocationError::Site(i, "bands have a distance and rates of 0 or more".into()));
        }
        if s.handling_per_parcel < Decimal::ZERO || s.handling_per_unit < Decimal::ZERO {
            return Err(AllocationError::Site(i, "handling costs are 0 or more".into()));
        }
        if s.protect.values().any(|pr| pr.demand.is_nan() || pr.demand < 0.0 || pr.stockout_cost < Decimal::ZERO) {
            return Err(AllocationError::Site(i, "protected demand and stockout costs are 0 or more".into()));
        }
    }
    let mut ids = BTreeSet::new();
    for (i, o) in p.orders.iter().enumerate() {
        if o.id.is_empty() || !ids.insert(o.id.as_str()) {
            return Err(AllocationError::Order(i, format!("id {:?} is empty or used twice", o.id)));
        }
        if o.lines.is_empty() || o.lines.iter().any(|l| l.quantity == 0) {
            return Err(AllocationError::Order(i, "an order has lines of 1 unit or more".into()));
        }
        if let Some(pin) = &o.pinned
            && !p.sites.iter().any(|s| &s.id == pin)
        {
            return Err(AllocationError::Order(i, format!("pinned to {pin}, which is not a site")));
        }
        if !(-90.0..=90.0).contains(&o.lat) || !(-180.0..=180.0).contains(&o.lon) {
            return Err(AllocationError::Order(i, "lat and lon are coordinates in degrees".into()));
        }
    }
    Ok(())
}

/// P(D > x) for D ~ Poisson(mu).
fn tail(mu: f64, x: i64) -> f64 {
    if x < 0 {
        return 1.0;
    }
    if mu <= 0.0 {
        return 0.0;
    }
    let mut term = (-mu).exp();
    let mut cdf = term;
    for k in 1..=x {
        term *= mu / k as f64;
        cdf += term;
        if cdf >= 1.0 {
            return 0.0;
        }
    }
    (1.0 - cdf).max(0.0)
}

/// What taking units `taken + 1 ..= taken + k` of `sku` from `site` costs in expected stockouts.
fn protection(site: &Site, sku: &str, taken: u32, k: u32) -> Decimal {
    let Some(pr) = site.protect.get(sku) else { return Decimal::ZERO };
    let stock = i64::from(site.stock.get(sku).copied().unwrap_or(0));
    let c = f(pr.stockout_cost);
    let cost: f64 = (taken + 1..=taken + k).map(|j| c * tail(pr.demand, stock - i64::from(j))).sum();
    Decimal::from_f64(cost).unwrap_or_default().round_dp(4)
}

/// The band rate from `site` to `o`, if it ships that far.
fn band<'a>(site: &'a Site, o: &Order) -> Option<&'a Band> {
    let km = haversine_m((o.lat, o.lon), (site.lat, site.lon)) / 1000.0;
    site.bands.iter().find(|b| km <= b.max_km)
}

/// The sites that may ship order `o` at all.
fn eligible(p: &Problem, o: &Order) -> Vec<usize> {
    (0..p.sites.len())
        .filter(|&s| {
            let site = &p.sites[s];
            o.pinned.as_ref().map_or(site.ships_online(), |pin| *pin == site.id) && band(site, o).is_some()
        })
        .collect()
}

/// The cost of order `o` shipped as `choice` (a site index per line), units of each site × SKU
/// already taken by earlier orders in `taken`.
fn cost_of(p: &Problem, o: &Order, choice: &[Option<usize>], taken: &BTreeMap<(usize, String), u32>) -> Allocation {
    let mut per_site: BTreeMap<usize, u32> = BTreeMap::new();
    let mut here: BTreeMap<(usize, &str), u32> = BTreeMap::new();
    let mut unfilled = Decimal::ZERO;
    for (line, c) in o.lines.iter().zip(choice) {
        match c {
            Some(s) => {
                *per_site.entry(*s).or_default() += line.quantity;
                *here.entry((*s, line.sku.as_str())).or_default() += line.quantity;
            }
            None => unfilled += p.unfilled_cost * Decimal::from(line.quantity),
        }
    }
    let (mut shipping, mut handling, mut risk) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for (&s, &units) in &per_site {
        let site = &p.sites[s];
        let b = band(site, o);
        shipping += b.map_or(Decimal::ZERO, |b| b.parcel + b.unit * Decimal::from(units));
        handling += site.handling_per_parcel + site.handling_per_unit * Decimal::from(units);
    }
    for (&(s, sku), &k) in &here {
        let before = taken.get(&(s, sku.to_owned())).copied().unwrap_or(0);
        risk += protection(&p.sites[s], sku, before, k);
    }
    let parcels = per_site.len();
    let split = p.split_cost * Decimal::from(parcels.saturating_sub(1));
    Allocation {
        order: o.id.clone(),
        lines: choice.iter().map(|c| c.map(|s| p.sites[s].id.clone())).collect(),
        parcels,
        shipping,
        handling,
        split,
        stockout_risk: risk,
        unfilled,
        cost: shipping + handling + split + risk + unfilled,
    }
}

fn left_of(p: &Problem, s: usize, sku: &str, taken: &BTreeMap<(usize, String), u32>) -> u32 {
    p.sites[s]
        .stock
        .get(sku)
        .copied()
        .unwrap_or(0)
        .saturating_sub(taken.get(&(s, sku.to_owned())).copied().unwrap_or(0))
}

/// The cheapest allocation of one order on the stock left after `taken`: a depth-first search
/// over each line's candidates, cheapest-looking first, pruned by the best found; past
/// `max_search` steps the best found so far (at least the greedy one) is kept.
fn best_for(p: &Problem, o: &Order, taken: &BTreeMap<(usize, String), u32>, max_search: usize) -> Vec<Option<usize>> {
    let sites = eligible(p, o);
    let n = o.lines.len();
    // Greedy start: each line at its cheapest site with stock, given the lines before.
    let mut start: Vec<Option<usize>> = Vec::with_capacity(n);
    let mut used: BTreeMap<(usize, String), u32> = taken.clone();
    for line in &o.lines {
        let pick =
            sites.iter().copied().filter(|&s| left_of(p, s, &line.sku, &used) >= line.quantity).min_by(|&a, &b| {
                let mut ca = start.clone();
                ca.push(Some(a));
                let mut cb = start.clone();
                cb.push(Some(b));
                let partial = Order { lines: o.lines[..ca.len()].to_vec(), ..o.clone() };
                cost_of(p, &partial, &ca, taken).cost.cmp(&cost_of(p, &partial, &cb, taken).cost).then(a.cmp(&b))
            });
        if let Some(s) = pick {
            *used.entry((s, line.sku.clone())).or_default() += line.quantity;
        }
        start.push(pick);
    }
    let best = (cost_of(p, o, &start, taken).cost, start);
    let mut search = Search {
        p,
        o,
        sites: &sites,
        taken,
        used: taken.clone(),
        current: Vec::with_capacity(n),
        best,
        steps: 0,
        limit: max_search,
    };
    search.go();
    search.best.1
}

/// The depth-first search of [`best_for`].
struct Search<'a> {
    p: &'a Problem,
    o: &'a Order,
    sites: &'a [usize],
    taken: &'a BTreeMap<(usize, String), u32>,
    /// `taken` plus the lines placed so far.
    used: BTreeMap<(usize, String), u32>,
    current: Vec<Option<usize>>,
    best: (Decimal, Vec<Option<usize>>),
    steps: usize,
    limit: usize,
}

impl Search<'_> {
    fn go(&mut self) {
        self.steps += 1;
        if self.steps > self.limit {
            return;
        }
        let (p, o) = (self.p, self.o);
        let i = self.current.len();
        if i == o.lines.len() {
            let c = cost_of(p, o, &self.current, self.taken).cost;
            if c < self.best.0 {
                self.best = (c, self.current.clone());
            }
            return;
        }
        // A lower bound of what is decided so far: costs only grow with more lines.
        let partial = Order { lines: o.lines[..i].to_vec(), ..o.clone() };
        if i > 0 && cost_of(p, &partial, &self.current, self.taken).cost >= self.best.0 {
            return;
        }
        let line = &o.lines[i];
        for &s in self.sites {
            if left_of(p, s, &line.sku, &self.used) >= line.quantity {
                *self.used.entry((s, line.sku.clone())).or_default() += line.quantity;
                self.current.push(Some(s));
                self.go();
                self.current.pop();
                *self.used.entry((s, line.sku.clone())).or_default() -= line.quantity;
            }
        }
        // Unfilled, at its cost (never cheaper unless that cost is below shipping).
        self.current.push(None);
        self.go();
        self.current.pop();
    }
}

fn take(o: &Order, choice: &[Option<usize>], taken: &mut BTreeMap<(usize, String), u32>) {
    for (line, c) in o.lines.iter().zip(choice) {
        if let Some(s) = c {
            *taken.entry((*s, line.sku.clone())).or_default() += line.quantity;
        }
    }
}

fn plan_of(p: &Problem, choices: &[Vec<Option<usize>>], method: Method) -> Plan {
    let mut taken = BTreeMap::new();
    let mut allocations = Vec::with_capacity(p.orders.len());
    for (o, c) in p.orders.iter().zip(choices) {
        allocations.push(cost_of(p, o, c, &taken));
        take(o, c, &mut taken);
    }
    let cost = allocations.iter().map(|a| a.cost).sum();
    Plan { allocations, cost, method }
}

/// Orders one after the other, each allocated exactly on the stock the ones before left.
pub fn greedy(p: &Problem, o: &SolveOptions) -> Result<Plan, AllocationError> {
    check(p)?;
    Ok(plan_of(p, &greedy_choices(p, o), Method::Greedy))
}

fn greedy_choices(p: &Problem, opts: &SolveOptions) -> Vec<Vec<Option<usize>>> {
    let mut taken = BTreeMap::new();
    p.orders
        .iter()
        .map(|o| {
            let c = best_for(p, o, &taken, opts.max_search);
            take(o, &c, &mut taken);
            c
        })
        .collect()
}

/// Scores allocations made elsewhere (a site index per line, `None` unfilled); refuses a site
/// that may not ship the order or has not the stock.
pub fn score(p: &Problem, choices: &[Vec<Option<usize>>]) -> Result<Plan, AllocationError> {
    check(p)?;
    let mut taken = BTreeMap::new();
    for (i, (o, c)) in p.orders.iter().zip(choices).enumerate() {
        if c.len() != o.lines.len() {
            return Err(AllocationError::Order(i, "one site per line".into()));
        }
        let sites = eligible(p, o);
        for (line, s) in o.lines.iter().zip(c) {
            if let Some(s) = s {
                if !sites.contains(s) || left_of(p, *s, &line.sku, &taken) < line.quantity {
                    return Err(AllocationError::Order(
                        i,
                        format!("site {s} cannot ship {} × {}", line.quantity, line.sku),
                    ));
                }
                *taken.entry((*s, line.sku.clone())).or_default() += line.quantity;
            }
        }
    }
    Ok(plan_of(p, choices, Method::Given))
}

/// The allocation of every order: a MILP up to `o.max_variables` candidates, else greedy.
pub fn solve(p: &Problem, o: &SolveOptions) -> Result<Plan, AllocationError> {
    check(p)?;
    let candidates: usize = p
        .orders
        .iter()
        .map(|ord| {
            let sites = eligible(p, ord);
            ord.lines
                .iter()
                .map(|l| {
                    sites.iter().filter(|&&s| p.sites[s].stock.get(&l.sku).copied().unwrap_or(0) >= l.quantity).count()
                })
                .sum::<usize>()
        })
        .sum();
    let greedy = plan_of(p, &greedy_choices(p, o), Method::Greedy);
    if candidates <= o.max_variables
        && let Some((choices, _)) = milp(p, false)
    {
        let exact = plan_of(p, &choices, Method::Milp);
        // The solver's tolerances can leave it a hair worse than the greedy plan.
        if exact.cost <= greedy.cost {
            return Ok(exact);
        }
    }
    Ok(greedy)
}

/// A lower bound on the cost of any allocation of the batch: the linear relaxation of the
/// program [`solve`] solves (the stockout cost by segments, as there). `None` if the solver fails.
pub fn lower_bound(p: &Problem) -> Result<Option<Decimal>, AllocationError> {
    check(p)?;
    Ok(milp(p, true).and_then(|(_, v)| Decimal::from_f64(v)).map(|d| d.round_dp(4)))
}

/// Segments of the stockout cost of taking units from a site × SKU: (units, cost per unit),
/// cheapest first (the cost per unit grows with the units taken).
fn segments(site: &Site, sku: &str, upto: u32) -> Vec<(f64, f64)> {
    if upto == 0 {
        return Vec::new();
    }
    let Some(pr) = site.protect.get(sku) else { return vec![(f64::from(upto), 0.0)] };
    let stock = i64::from(site.stock.get(sku).copied().unwrap_or(0));
    let c = f(pr.stockout_cost);
    // Exact per unit for small draws, else eight equal segments at their mean marginal cost.
    let pieces = upto.min(8);
    let width = f64::from(upto) / f64::from(pieces);
    (0..pieces)
        .map(|k| {
            let lo = (f64::from(k) * width).round() as u32;
            let hi = (f64::from(k + 1) * width).round() as u32;
            let units = f64::from(hi - lo);
            let mean = if hi > lo {
                (lo + 1..=hi).map(|j| c * tail(pr.demand, stock - i64::from(j))).sum::<f64>() / units
            } else {
                0.0
            };
            (units, mean)
        })
        .collect()
}

/// The batch program; `relaxed`: its linear relaxation. The choices and the objective.
fn milp(p: &Problem, relaxed: bool) -> Option<(Vec<Vec<Option<usize>>>, f64)> {
    let binary = || if relaxed { variable().min(0.0).max(1.0) } else { variable().binary() };
    let mut vars = variables!();
    let mut objective = Expression::from(0.0);
    // y[o][l]: (site, variable) candidates; u[o][l]: unfilled; z[o]: (site, variable) parcels.
    let mut y: Vec<Vec<Vec<(usize, variable::Variable)>>> = Vec::new();
    let mut z: Vec<Vec<(usize, variable::Variable)>> = Vec::new();
    let mut constraints = Vec::new();
    let mut drawn: BTreeMap<(usize, String), Expression> = BTreeMap::new();
    let mut demand: BTreeMap<(usize, String), u32> = BTreeMap::new();
    for o in &p.orders {
        let sites = eligible(p, o);
        let parcels: Vec<(usize, variable::Variable)> = sites.iter().map(|&s| (s, vars.add(binary()))).collect();
        let mut count = Expression::from(0.0);
        for &(s, zv) in &parcels {
            let site = &p.sites[s];
            let b = band(site, o)?;
            objective += (f(b.parcel) + f(site.handling_per_parcel) + f(p.split_cost)) * zv;
            count += zv;
        }
        // The first parcel is not a split: `ships` is 1 when the order has a parcel at all (a
        // line shipping makes its parcel count, `y ≤ z`), and takes one split cost back.
        let ships = vars.add(binary());
        objective -= f(p.split_cost) * ships;
        constraints.push(constraint!(ships <= count));
        let mut ys = Vec::new();
        for line in &o.lines {
            let mut cands = Vec::new();
            let mut one = Expression::from(0.0);
            for &(s, zv) in &parcels {
                let site = &p.sites[s];
                if site.stock.get(&line.sku).copied().unwrap_or(0) < line.quantity {
                    continue;
                }
                let yv = vars.add(binary());
                let q = f64::from(line.quantity);
                let b = band(site, o)?;
                objective += (f(b.unit) + f(site.handling_per_unit)) * q * yv;
                constraints.push(constraint!(yv <= zv));
                *drawn.entry((s, line.sku.clone())).or_insert_with(|| Expression::from(0.0)) += q * yv;
                *demand.entry((s, line.sku.clone())).or_default() += line.quantity;
                one += yv;
                cands.push((s, yv));
            }
            let uv = vars.add(binary());
            objective += f(p.unfilled_cost) * f64::from(line.quantity) * uv;
            one += uv;
            constraints.push(constraint!(one == 1.0));
            ys.push(cands);
        }
        y.push(ys);
        z.push(parcels);
    }
    // Stock, and the stockout cost as convex segments of the units drawn.
    for ((s, sku), e) in drawn {
        let site = &p.sites[s];
        let stock = f64::from(site.stock.get(&sku).copied().unwrap_or(0));
        let upto = demand.get(&(s, sku.clone())).copied().unwrap_or(0).min(site.stock.get(&sku).copied().unwrap_or(0));
        let mut covered = Expression::from(0.0);
        for (units, per_unit) in segments(site, &sku, upto) {
            let w = vars.add(variable().min(0.0).max(units));
            objective += per_unit * w;
            covered += w;
        }
        constraints.push(constraint!(e.clone() <= stock));
        constraints.push(constraint!(e <= covered));
    }
    let mut model = crate::lp::solver(vars.minimise(objective.clone()));
    for c in constraints {
        model = model.with(c);
    }
    let solution = model.solve().ok()?;
    let value = solution.eval(&objective);
    let choices = y
        .iter()
        .map(|ys| {
            ys.iter().map(|cands| cands.iter().find(|(_, v)| solution.value(*v) > 0.5).map(|(s, _)| *s)).collect()
        })
        .collect();
    Some((choices, value))
}
