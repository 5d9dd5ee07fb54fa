//! The buy-and-transfer plan across a network: which supplier delivers how much of each SKU to
//! each location, and which stock moves between locations, so every SKU × location reaches its
//! order-up-to level at the least cost within the limits.
//!
//! A mixed-integer program (good_lp with the pure-Rust microlp solver, or HiGHS with the `highs`
//! cargo feature). Per offer (a supplier selling a SKU delivered to a location): whole packs, at least
//! the minimum when it orders at all, all-units price breaks (the whole quantity at the price of
//! the highest break it reaches), a fixed cost per order. Per transfer lane (from one location to
//! another, for any SKU both stock): whole units, at most what the source has on hand, at a cost
//! per unit. Limits: a budget per supplier and one for the whole plan, a capacity per supplier
//! (units), a volume capacity per location. What cannot be covered within them is a shortfall at
//! a penalty per unit, so a plan always exists and says what it could not do.
//!
//! Large plans (more integer variables than [`PlanOptions::max_integers`], or than
//! [`PlanOptions::max_coupled_integers`] when a budget or capacity couples the SKUs) are planned
//! greedily instead, with the gap to the LP relaxation's bound reported. The MILP plan is never worse than
//! the greedy one: both are costed the same way and the cheaper is kept.

use good_lp::{Expression, ProblemVariables, ResolutionError, Solution, SolverModel, Variable, constraint, variable};
use rust_decimal::Decimal;

use crate::lp::solver;
use crate::types::as_f64 as f;

/// Where one SKU stands at one location.
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    pub sku: usize,
    pub location: usize,
    pub on_hand: i64,
    /// On hand + on order + in transit − reserved.
    pub position: i64,
    /// The order-up-to level the policy asks for (whole units).
    pub target: i64,
    /// Volume of one unit (for location capacity).
    pub unit_volume: f64,
    /// Cost of each unit left short of the target (lost margin, or a service penalty).
    pub shortfall_penalty: Decimal,
}

/// An all-units price break: from `min_qty` units on, every unit costs `unit_price`.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceBreak {
    pub min_qty: i64,
    pub unit_price: Decimal,
}

/// A supplier selling a SKU delivered to a location.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub supplier: usize,
    pub sku: usize,
    pub location: usize,
    pub moq: i64,
    pub pack_size: i64,
    /// At least one; the first applies from the first unit.
    pub breaks: Vec<PriceBreak>,
    /// Fixed cost of ordering at all.
    pub order_cost: Decimal,
}

/// Moving stock from one location to another.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub from: usize,
    pub to: usize,
    pub unit_cost: Decimal,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SupplierLimits {
    pub budget: Option<Decimal>,
    /// Units the supplier can deliver in this plan.
    pub capacity: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocationLimits {
    /// Volume the location can hold.
    pub capacity: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanInput {
    pub needs: Vec<Need>,
    pub offers: Vec<Offer>,
    pub lanes: Vec<Lane>,
    /// Indexed by `Offer::supplier`; missing entries have no limits.
    pub suppliers: Vec<SupplierLimits>,
    /// Indexed by `Need::location`; missing entries have no limits.
    pub locations: Vec<LocationLimits>,
    /// Spend limit for the whole plan.
    pub budget: Option<Decimal>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOptions {
    /// Above this many integer variables the plan is greedy.
    pub max_integers: usize,
    /// The same when limits (budgets, capacities) couple the SKUs into one program: branch and
    /// bound then has no per-SKU structure to lean on, and its search tree grows without bound.
    pub max_coupled_integers: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        // HiGHS's branch and bound (with its node limit) copes with coupled programs as large as
        // any other; microlp's does not.
        let max_coupled_integers = if cfg!(feature = "highs") { 400 } else { 60 };
        Self { max_integers: 400, max_coupled_integers }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("offer {0} has no price")]
    NoPrice(usize),
    #[error("offer {0}: pack size, minimum and price-break quantities must not be negative, prices neither")]
    BadOffer(usize),
    #[error("need {0}: quantities and the penalty must not be negative")]
    BadNeed(usize),
    #[error("two needs for SKU {sku} at location {location}")]
    DuplicateNeed { sku: usize, location: usize },
    #[error("offer {0}: price breaks must come in increasing quantities")]
    BreakOrder(usize),
}

/// What a plan line does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Buy from offer `offer`.
    Buy { offer: usize },
    /// Move stock along lane `lane`.
    Transfer { lane: usize },
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub kind: LineKind,
    pub sku: usize,
    /// Where the goods go.
    pub location: usize,
    pub quantity: i64,
    pub unit_cost: Decimal,
    pub cost: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Milp,
    Greedy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub lines: Vec<Line>,
    /// Units short of the target per need (same order as `PlanInput::needs`).
    pub shortfall: Vec<i64>,
    /// Purchases, order costs and transfers.
    pub cost: Decimal,
    /// `cost` plus the shortfall penalties: what the plan minimises.
    pub objective: Decimal,
    pub method: Method,
    /// The LP relaxation's objective (a lower bound), when it was computed.
    pub lower_bound: Option<f64>,
}

impl Plan {
    /// The relative gap between the objective and the lower bound.
    pub fn gap(&self) -> Option<f64> {
        Some(relative_gap(self.objective, self.lower_bound?))
    }
}

/// How far `objective` is above a lower `bound`, as a share of the objective (0 when it is 0).
pub fn relative_gap(objective: Decimal, bound: f64) -> f64 {
    let obj = f(objective);
    if obj > 0.0 { ((obj - bound) / obj).max(0.0) } else { 0.0 }
}

/// The break that prices `qty` units: the last one whose minimum it reaches.
pub fn price_for(offer: &Offer, qty: i64) -> Decimal {
    offer.breaks.iter().rfind(|b| qty >= b.min_qty).or(offer.breaks.first()).map_or(Decimal::ZERO, |b| b.unit_price)
}

fn validate(input: &PlanInput) -> Result<(), PlanError> {
    for (i, o) in input.offers.iter().enumerate() {
        if o.breaks.is_empty() {
            return Err(PlanError::NoPrice(i));
        }
        let negative = o.pack_size < 0
            || o.moq < 0
            || o.order_cost.is_sign_negative() && !o.order_cost.is_zero()
            || o.breaks.iter().any(|b| b.min_qty < 0 || (b.unit_price.is_sign_negative() && !b.unit_price.is_zero()));
        if negative {
            return Err(PlanError::BadOffer(i));
        }
        if o.breaks.windows(2).any(|w| w[0].min_qty >= w[1].min_qty) {
            return Err(PlanError::BreakOrder(i));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, n) in input.needs.iter().enumerate() {
        let bad_volume = n.unit_volume.is_nan() || n.unit_volume < 0.0;
        if n.on_hand < 0 || n.target < 0 || bad_volume || n.shortfall_penalty.is_sign_negative() {
            return Err(PlanError::BadNeed(i));
        }
        if !seen.insert((n.sku, n.location)) {
            return Err(PlanError::DuplicateNeed { sku: n.sku, location: n.location });
        }
    }
    Ok(())
}

/// Index of the need for (sku, location).
fn need_index(input: &PlanInput) -> std::collections::HashMap<(usize, usize), usize> {
    input.needs.iter().enumerate().map(|(i, n)| ((n.sku, n.location), i)).collect()
}

/// The offers delivering each (sku, location), in input order.
pub fn offers_at(input: &PlanInput) -> std::collections::HashMap<(usize, usize), Vec<usize>> {
    let mut out: std::collections::HashMap<(usize, usize), Vec<usize>> = std::collections::HashMap::new();
    for (o, offer) in input.offers.iter().enumerate() {
        out.entry((offer.sku, offer.location)).or_default().push(o);
    }
    out
}

/// Transfer arcs: (lane, need at source, need at destination) for every SKU stocked at both ends.
fn arcs(input: &PlanInput) -> Vec<(usize, usize, usize)> {
    let idx = need_index(input);
    let mut out = Vec::new();
    for (l, lane) in input.lanes.iter().enumerate() {
        if lane.from == lane.to {
            continue;
        }
        for (i, n) in input.needs.iter().enumerate() {
            if n.location == lane.from
                && n.on_hand > 0
                && let Some(&j) = idx.get(&(n.sku, lane.to))
            {
                out.push((l, i, j));
            }
        }
    }
    out
}

/// Costs a set of buys and transfers, and the shortfall each need is left with.
fn assemble(input: &PlanInput, buys: &[i64], moves: &[((usize, usize, usize), i64)], method: Method) -> Plan {
    let mut lines = Vec::new();
    let mut net: Vec<i64> = input.needs.iter().map(|n| n.position).collect();
    let idx = need_index(input);
    let mut cost = Decimal::ZERO;
    for (o, &q) in buys.iter().enumerate() {
        if q <= 0 {
            continue;
        }
        let offer = &input.offers[o];
        let unit = price_for(offer, q);
        let c = unit * Decimal::from(q) + offer.order_cost;
        cost += c;
        if let Some(&i) = idx.get(&(offer.sku, offer.location)) {
            net[i] += q;
        }
        lines.push(Line {
            kind: LineKind::Buy { offer: o },
            sku: offer.sku,
            location: offer.location,
            quantity: q,
            unit_cost: unit,
            cost: c,
        });
    }
    for &((l, from, to), q) in moves {
        if q <= 0 {
            continue;
        }
        let lane = &input.lanes[l];
        let c = lane.unit_cost * Decimal::from(q);
        cost += c;
        net[from] -= q;
        net[to] += q;
        lines.push(Line {
            kind: LineKind::Transfer { lane: l },
            sku: input.needs[to].sku,
            location: lane.to,
            quantity: q,
            unit_cost: lane.unit_cost,
            cost: c,
        });
    }
    let shortfall: Vec<i64> = input.needs.iter().zip(&net).map(|(n, p)| (n.target - p).max(0)).collect();
    let penalty: Decimal =
        input.needs.iter().zip(&shortfall).map(|(n, s)| n.shortfall_penalty * Decimal::from(*s)).sum();
    Plan { lines, shortfall, cost, objective: cost + penalty, method, lower_bound: None }
}

/// Everything a plan must respect; an empty list when it does. For tests and for checking a
/// solver's answer before it is used.
pub fn violations(input: &PlanInput, plan: &Plan) -> Vec<String> {
    let mut v = Vec::new();
    let mut supplier_units: Vec<i64> = vec![0; input.suppliers.len()];
    let mut supplier_spend: Vec<Decimal> = vec![Decimal::ZERO; input.suppliers.len()];
    let mut out_of: Vec<i64> = vec![0; input.needs.len()];
    let mut volume_in: std::collections::HashMap<usize, f64> = std::collections::HashMap::new();
    let idx = need_index(input);
    let mut spend = Decimal::ZERO;
    for line in &plan.lines {
        if line.quantity <= 0 {
            v.push(format!("{line:?}: quantity not positive"));
        }
        match line.kind {
            LineKind::Buy { offer } => {
                let o = &input.offers[offer];
                if o.pack_size > 1 && line.quantity % o.pack_size != 0 {
                    v.push(format!("{line:?}: not whole packs of {}", o.pack_size));
                }
                if line.quantity < o.moq {
                    v.push(format!("{line:?}: below the minimum {}", o.moq));
                }
                if let Some(u) = supplier_units.get_mut(o.supplier) {
                    *u += line.quantity;
                }
                if let Some(s) = supplier_spend.get_mut(o.supplier) {
                    *s += line.cost;
                }
                spend += line.cost;
                let vol = idx.get(&(o.sku, o.location)).map_or(0.0, |&i| input.needs[i].unit_volume);
                *volume_in.entry(o.location).or_default() += vol * line.quantity as f64;
            }
            LineKind::Transfer { lane } => {
                let l = &input.lanes[lane];
                let from = idx.get(&(line.sku, l.from));
                match from {
                    Some(&i) => out_of[i] += line.quantity,
                    None => v.push(format!("{line:?}: nothing to move at the source")),
                }
                let vol = idx.get(&(line.sku, l.to)).map_or(0.0, |&i| input.needs[i].unit_volume);
                *volume_in.entry(l.to).or_default() += vol * line.quantity as f64;
            }
        }
    }
    for (i, n) in input.needs.iter().enumerate() {
        if out_of[i] > n.on_hand {
            v.push(format!("need {i}: moves {} out but holds {}", out_of[i], n.on_hand));
        }
    }
    for (s, lim) in input.suppliers.iter().enumerate() {
        if lim.capacity.is_some_and(|c| supplier_units[s] > c) {
            v.push(format!("supplier {s}: {} units over its capacity", supplier_units[s]));
        }
        if lim.budget.is_some_and(|b| supplier_spend[s] > b) {
            v.push(format!("supplier {s}: spend {} over its budget", supplier_spend[s]));
        }
    }
    if input.budget.is_some_and(|b| spend > b) {
        v.push(format!("spend {spend} over the plan's budget"));
    }
    for (loc, lim) in input.locations.iter().enumerate() {
        if let Some(cap) = lim.capacity {
            let now = current_volume(input, loc);
            let after = now + volume_in.get(&loc).copied().unwrap_or(0.0);
            if after > cap.max(now) + 1e-6 {
                v.push(format!("location {loc}: volume {after} over its capacity {cap}"));
            }
        }
    }
    v
}

fn current_volume(input: &PlanInput, loc: usize) -> f64 {
    input.needs.iter().filter(|n| n.location == loc).map(|n| n.unit_volume * n.position.max(0) as f64).sum()
}

/// Plans `input`: the MILP when it is small enough, else greedily with the LP bound. Without
/// budgets or capacities nothing ties one SKU's plan to another's, so each SKU is planned on its
/// own (exactly, and fast however many SKUs there are).
pub fn plan(input: &PlanInput, options: PlanOptions) -> Result<Plan, PlanError> {
    validate(input)?;
    let coupled = input.budget.is_some()
        || input.suppliers.iter().any(|s| s.budget.is_some() || s.capacity.is_some())
        || input.locations.iter().any(|l| l.capacity.is_some());
    // Each SKU's needs and offers, gathered in one pass.
    let mut parts: std::collections::BTreeMap<usize, (Vec<usize>, Vec<usize>)> = std::collections::BTreeMap::new();
    for (i, n) in input.needs.iter().enumerate() {
        parts.entry(n.sku).or_default().0.push(i);
    }
    for (o, offer) in input.offers.iter().enumerate() {
        parts.entry(offer.sku).or_default().1.push(o);
    }
    if coupled {
        // Without its limits the plan splits SKU by SKU; when that plan keeps within the limits
        // anyway it is optimal with them too (they only take plans away).
        let free = PlanInput { budget: None, suppliers: Vec::new(), locations: Vec::new(), ..input.clone() };
        let unlimited = plan(&free, options)?;
        if violations(input, &unlimited).is_empty() {
            return Ok(unlimited);
        }
        let max_integers = options.max_integers.min(options.max_coupled_integers);
        return plan_whole(input, PlanOptions { max_integers, ..options });
    }
    if parts.len() <= 1 {
        return plan_whole(input, options);
    }
    let mut merged = Plan {
        lines: Vec::new(),
        shortfall: vec![0; input.needs.len()],
        cost: Decimal::ZERO,
        objective: Decimal::ZERO,
        method: Method::Milp,
        lower_bound: Some(0.0),
    };
    for (needs, offers) in parts.into_values() {
        // Nothing short: moves and purchases could only cost, so the SKU's plan is empty.
        if needs.iter().all(|&i| input.needs[i].position >= input.needs[i].target) {
            continue;
        }
        let part = PlanInput {
            needs: needs.iter().map(|&i| input.needs[i].clone()).collect(),
            offers: offers.iter().map(|&o| input.offers[o].clone()).collect(),
            lanes: input.lanes.clone(),
            suppliers: input.suppliers.clone(),
            locations: input.locations.clone(),
            budget: None,
        };
        let p = plan_whole(&part, options)?;
        for mut line in p.lines {
            if let LineKind::Buy { offer } = line.kind {
                line.kind = LineKind::Buy { offer: offers[offer] };
            }
            merged.lines.push(line);
        }
        for (k, &i) in needs.iter().enumerate() {
            merged.shortfall[i] = p.shortfall[k];
        }
        merged.cost += p.cost;
        merged.objective += p.objective;
        if p.method == Method::Greedy {
            merged.method = Method::Greedy;
        }
        merged.lower_bound = match (merged.lower_bound, p.lower_bound) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
    Ok(merged)
}

fn plan_whole(input: &PlanInput, options: PlanOptions) -> Result<Plan, PlanError> {
    let greedy_plan = greedy(input);
    let integers: usize = input.offers.iter().map(|o| 2 + o.breaks.len()).sum::<usize>() + arcs(input).len();
    if integers > options.max_integers {
        let mut g = greedy_plan;
        g.lower_bound = solve(input, true).ok().map(|lp| lp.objective);
        return Ok(g);
    }
    match solve(input, false) {
        Ok(milp) => {
            let p = assemble(input, &milp.buys, &milp.moves, Method::Milp);
            // The greedy plan stands in should the solver ever return worse or break a limit.
            if violations(input, &p).is_empty() && p.objective <= greedy_plan.objective {
                // A search stopped at its node limit is as good as its gap to the LP bound.
                let lower_bound =
                    if milp.optimal { Some(f(p.objective)) } else { solve(input, true).ok().map(|lp| lp.objective) };
                Ok(Plan { lower_bound, ..p })
            } else {
                Ok(greedy_plan)
            }
        }
        Err(_) => Ok(greedy_plan),
    }
}

const MOVE_EPSILON: f64 = 1e-6;

type Moves = Vec<((usize, usize, usize), i64)>;

/// What [`solve`] found.
struct Solved {
    /// Units bought per offer.
    buys: Vec<i64>,
    moves: Moves,
    /// The solver's objective: the LP bound when relaxed.
    objective: f64,
    /// The solver proved it optimal (it may stop at a node limit with the best found so far).
    optimal: bool,
}

/// The MILP, or its LP relaxation with `relaxed`.
fn solve(input: &PlanInput, relaxed: bool) -> Result<Solved, ResolutionError> {
    let arcs = arcs(input);
    let idx = need_index(input);
    // A quantity bound per SKU: everything any location could want, plus the largest minimum.
    let mut sku_need: std::collections::HashMap<usize, i64> = std::collections::HashMap::new();
    for n in &input.needs {
        *sku_need.entry(n.sku).or_default() += (n.target - n.position).max(0);
    }
    let mut vars = ProblemVariables::new();
    let int = |v: good_lp::VariableDefinition| if relaxed { v } else { v.integer() };
    struct OfferVars {
        packs: Variable,
        ordered: Variable,
        segments: Vec<(Variable, Variable)>,
        big: f64,
    }
    let mut offer_vars = Vec::with_capacity(input.offers.len());
    for o in &input.offers {
        let pack = o.pack_size.max(1) as f64;
        let top_break = o.breaks.iter().map(|b| b.min_qty).max().unwrap_or(0);
        let big = (sku_need.get(&o.sku).copied().unwrap_or(0).max(o.moq).max(top_break) as f64 + pack).max(1.0);
        let packs = vars.add(int(variable().min(0.0).max((big / pack).ceil())));
        let ordered = vars.add(int(variable().min(0.0).max(1.0)));
        let segments = o
            .breaks
            .iter()
            .map(|_| (vars.add(variable().min(0.0).max(big)), vars.add(int(variable().min(0.0).max(1.0)))))
            .collect();
        offer_vars.push(OfferVars { packs, ordered, segments, big });
    }
    let move_vars: Vec<Variable> = arcs
        .iter()
        .map(|&(_, from, _)| vars.add(int(variable().min(0.0).max(input.needs[from].on_hand as f64))))
        .collect();
    let short_vars: Vec<Variable> =
        input.needs.iter().map(|n| vars.add(variable().min(0.0).max((n.target - n.position).max(0) as f64))).collect();

    let mut objective = Expression::from(0.0);
    for (o, ov) in input.offers.iter().zip(&offer_vars) {
        objective += f(o.order_cost) * ov.ordered;
        for (b, (q, _)) in o.breaks.iter().zip(&ov.segments) {
            objective += f(b.unit_price) * *q;
        }
    }
    for (&(l, _, _), m) in arcs.iter().zip(&move_vars) {
        // A hair more than the lane costs, so a free lane moves nothing for nothing.
        objective += (f(input.lanes[l].unit_cost) + MOVE_EPSILON) * *m;
    }
    for (n, s) in input.needs.iter().zip(&short_vars) {
        objective += f(n.shortfall_penalty) * *s;
    }
    let mut model = vars.minimise(objective.clone()).using(solver);

    let qty = |o: &Offer, ov: &OfferVars| o.pack_size.max(1) as f64 * ov.packs;
    for (o, ov) in input.offers.iter().zip(&offer_vars) {
        let q = qty(o, ov);
        let segments: Expression = ov.segments.iter().map(|(s, _)| *s).sum();
        let chosen: Expression = ov.segments.iter().map(|(_, z)| *z).sum();
        model.add_constraint(constraint!(q.clone() == segments));
        model.add_constraint(constraint!(chosen == ov.ordered));
        model.add_constraint(constraint!(q.clone() <= ov.big * ov.ordered));
        model.add_constraint(constraint!(q >= o.moq as f64 * ov.ordered));
        // Each segment holds the whole quantity at its break's price, within the break's range.
        for (k, (b, (s, z))) in o.breaks.iter().zip(&ov.segments).enumerate() {
            model.add_constraint(constraint!(*s >= b.min_qty as f64 * *z));
            model.add_constraint(constraint!(*s <= ov.big * *z));
            if let Some(next) = o.breaks.get(k + 1).filter(|n| n.min_qty > b.min_qty) {
                model.add_constraint(constraint!(*s <= (next.min_qty - 1) as f64 + ov.big * (1.0 - *z)));
            }
        }
    }
    // Each need reaches its target, or the gap is a shortfall.
    let mut inflow: Vec<Expression> = input.needs.iter().map(|n| Expression::from(n.position as f64)).collect();
    let mut outflow: Vec<Expression> = vec![Expression::from(0.0); input.needs.len()];
    for (o, ov) in input.offers.iter().zip(&offer_vars) {
        if let Some(&i) = idx.get(&(o.sku, o.location)) {
            inflow[i] += qty(o, ov);
        }
    }
    for (&(_, from, to), m) in arcs.iter().zip(&move_vars) {
        inflow[to] += *m;
        inflow[from] -= *m;
        outflow[from] += *m;
    }
    for (i, n) in input.needs.iter().enumerate() {
        model.add_constraint(constraint!(inflow[i].clone() + short_vars[i] >= n.target as f64));
        model.add_constraint(constraint!(outflow[i].clone() <= n.on_hand as f64));
    }
    // Supplier capacity and budgets.
    let spend_of = |o: &Offer, ov: &OfferVars| -> Expression {
        let mut e = f(o.order_cost) * ov.ordered;
        for (b, (q, _)) in o.breaks.iter().zip(&ov.segments) {
            e += f(b.unit_price) * *q;
        }
        e
    };
    for (s, lim) in input.suppliers.iter().enumerate() {
        let mine: Vec<(&Offer, &OfferVars)> =
            input.offers.iter().zip(&offer_vars).filter(|(o, _)| o.supplier == s).collect();
        if let Some(cap) = lim.capacity {
            let units: Expression = mine.iter().map(|(o, ov)| qty(o, ov)).sum();
            model.add_constraint(constraint!(units <= cap as f64));
        }
        if let Some(b) = lim.budget {
            let spend: Expression = mine.iter().map(|(o, ov)| spend_of(o, ov)).sum();
            model.add_constraint(constraint!(spend <= f(b)));
        }
    }
    if let Some(b) = input.budget {
        let spend: Expression = input.offers.iter().zip(&offer_vars).map(|(o, ov)| spend_of(o, ov)).sum();
        model.add_constraint(constraint!(spend <= f(b)));
    }
    // Location volume: what arrives within the room left (none when full). What leaves does not
    // make room: the plan does not know that it leaves before the rest arrives.
    for (loc, lim) in input.locations.iter().enumerate() {
        let Some(cap) = lim.capacity else { continue };
        let room = (cap - current_volume(input, loc)).max(0.0);
        let mut added = Expression::from(0.0);
        for (o, ov) in input.offers.iter().zip(&offer_vars) {
            if o.location == loc
                && let Some(&i) = idx.get(&(o.sku, o.location))
            {
                added += input.needs[i].unit_volume * qty(o, ov);
            }
        }
        for (&(l, _, to), m) in arcs.iter().zip(&move_vars) {
            if input.lanes[l].to == loc {
                added += input.needs[to].unit_volume * *m;
            }
        }
        model.add_constraint(constraint!(added <= room));
    }
    let solution = model.solve()?;
    let buys = input
        .offers
        .iter()
        .zip(&offer_vars)
        .map(|(o, ov)| (solution.value(ov.packs).round() as i64) * o.pack_size.max(1))
        .collect();
    let moves = arcs.iter().zip(&move_vars).map(|(a, m)| (*a, solution.value(*m).round() as i64)).collect();
    let optimal = matches!(solution.status(), good_lp::solvers::SolutionStatus::Optimal);
    Ok(Solved { buys, moves, objective: solution.eval(&objective), optimal })
}

/// The greedy plan: needs by size, each first from the cheapest transfer cheaper than buying,
/// then from the offer with the lowest cost for the rounded quantity that fits the limits.
pub fn greedy(input: &PlanInput) -> Plan {
    let arcs = arcs(input);
    let offers_at = offers_at(input);
    let mut arcs_into: Vec<Vec<usize>> = vec![Vec::new(); input.needs.len()];
    for (a, arc) in arcs.iter().enumerate() {
        arcs_into[arc.2].push(a);
    }
    let mut position: Vec<i64> = input.needs.iter().map(|n| n.position).collect();
    let mut movable: Vec<i64> = input.needs.iter().map(|n| n.on_hand.min((n.position - n.target).max(0))).collect();
    let mut volume: Vec<f64> = (0..input.locations.len()).map(|l| current_volume(input, l)).collect();
    let room = |volume: &[f64], loc: usize| -> f64 {
        match input.locations.get(loc).and_then(|l| l.capacity) {
            Some(cap) => cap - volume[loc],
            None => f64::INFINITY,
        }
    };
    let mut sup_units: Vec<i64> = vec![0; input.suppliers.len()];
    let mut sup_spend: Vec<Decimal> = vec![Decimal::ZERO; input.suppliers.len()];
    let mut spend = Decimal::ZERO;
    let mut buys = vec![0i64; input.offers.len()];
    let mut moves: Moves = Vec::new();
    let mut order: Vec<usize> = (0..input.needs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(input.needs[i].target - input.needs[i].position));
    for i in order {
        let n = &input.needs[i];
        let mut gap = n.target - position[i];
        if gap <= 0 {
            continue;
        }
        let here: &[usize] = offers_at.get(&(n.sku, n.location)).map_or(&[], Vec::as_slice);
        let cheapest_buy = here.iter().map(|&o| price_for(&input.offers[o], gap)).min().unwrap_or(n.shortfall_penalty);
        let mut lanes: Vec<&(usize, usize, usize)> = arcs_into[i].iter().map(|&a| &arcs[a]).collect();
        lanes.sort_by_key(|a| input.lanes[a.0].unit_cost);
        for &&(l, from, to) in &lanes {
            if gap <= 0 || input.lanes[l].unit_cost >= cheapest_buy.min(n.shortfall_penalty) {
                break;
            }
            let fit =
                if n.unit_volume > 0.0 { (room(&volume, n.location) / n.unit_volume).floor() as i64 } else { gap };
            let q = gap.min(movable[from]).min(fit.max(0));
            if q > 0 {
                moves.push(((l, from, to), q));
                movable[from] -= q;
                position[from] -= q;
                position[to] += q;
                gap -= q;
                if let Some(v) = volume.get_mut(n.location) {
                    *v += n.unit_volume * q as f64;
                }
            }
        }
        if gap <= 0 {
            continue;
        }
        // The offer whose rounded quantity fits and costs least per unit of the gap it covers.
        let mut best: Option<(usize, i64, Decimal)> = None;
        for &o in here {
            let offer = &input.offers[o];
            if buys[o] > 0 {
                continue;
            }
            let pack = offer.pack_size.max(1);
            let lim = input.suppliers.get(offer.supplier).cloned().unwrap_or_default();
            let mut q = (gap.max(offer.moq) + pack - 1) / pack * pack;
            // Shrink to the limits, in whole packs, never below the minimum.
            let units_left = lim.capacity.map_or(i64::MAX, |c| c - sup_units.get(offer.supplier).copied().unwrap_or(0));
            let fit =
                if n.unit_volume > 0.0 { (room(&volume, n.location) / n.unit_volume).floor() as i64 } else { i64::MAX };
            q = q.min(units_left.max(0) / pack * pack).min(fit.max(0) / pack * pack);
            let cost_of = |q: i64| price_for(offer, q) * Decimal::from(q) + offer.order_cost;
            let spend_left = |q: i64| {
                let c = cost_of(q);
                lim.budget.is_none_or(|b| sup_spend.get(offer.supplier).copied().unwrap_or_default() + c <= b)
                    && input.budget.is_none_or(|b| spend + c <= b)
            };
            while q > 0 && !spend_left(q) {
                q -= pack;
            }
            if q <= 0 || q < offer.moq {
                continue;
            }
            let covered = q.min(gap);
            let per_unit = (cost_of(q) - n.shortfall_penalty * Decimal::from(covered)) / Decimal::from(covered);
            if best.as_ref().is_none_or(|(_, _, b)| per_unit < *b) {
                best = Some((o, q, per_unit));
            }
        }
        if let Some((o, q, per_unit)) = best
            && per_unit < Decimal::ZERO
        {
            let offer = &input.offers[o];
            buys[o] = q;
            position[i] += q;
            let c = price_for(offer, q) * Decimal::from(q) + offer.order_cost;
            spend += c;
            if let Some(s) = sup_spend.get_mut(offer.supplier) {
                *s += c;
            }
            if let Some(u) = sup_units.get_mut(offer.supplier) {
                *u += q;
            }
            if let Some(v) = volume.get_mut(n.location) {
                *v += n.unit_volume * q as f64;
            }
        }
    }
    assemble(input, &buys, &moves, Method::Greedy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(sku: usize, location: usize, on_hand: i64, position: i64, target: i64, penalty: i64) -> Need {
        Need { sku, location, on_hand, position, target, unit_volume: 0.0, shortfall_penalty: Decimal::from(penalty) }
    }

    fn price(p: i64) -> Vec<PriceBreak> {
        vec![PriceBreak { min_qty: 0, unit_price: Decimal::from(p) }]
    }

    fn offer(supplier: usize, sku: usize, location: usize, unit: i64) -> Offer {
        Offer { supplier, sku, location, moq: 0, pack_size: 1, breaks: price(unit), order_cost: Decimal::ZERO }
    }

    fn buys(p: &Plan) -> Vec<(usize, i64)> {
        p.lines
            .iter()
            .filter_map(|l| match l.kind {
                LineKind::Buy { offer } => Some((offer, l.quantity)),
                LineKind::Transfer { .. } => None,
            })
            .collect()
    }

    fn transfers(p: &Plan) -> Vec<(usize, usize, i64)> {
        p.lines
            .iter()
            .filter_map(|l| match l.kind {
                LineKind::Transfer { lane } => Some((lane, l.location, l.quantity)),
                LineKind::Buy { .. } => None,
            })
            .collect()
    }

    #[test]
    fn packs_minimums_and_price_breaks() {
        // Need 37; packs of 12, minimum 24: 48 at 10.00 = 480 (36 would leave one unit short at
        // a penalty of 500). A break at 60 for 7.00 makes 60 units cost 420: the plan buys 60.
        let mut o = offer(0, 0, 0, 10);
        (o.pack_size, o.moq) = (12, 24);
        let input =
            PlanInput { needs: vec![need(0, 0, 3, 3, 40, 500)], offers: vec![o.clone()], ..PlanInput::default() };
        let p = plan(&input, PlanOptions::default()).expect("plan");
        assert_eq!((buys(&p), p.cost, p.method), (vec![(0, 48)], Decimal::from(480), Method::Milp));
        let mut cheaper = o;
        cheaper.breaks.push(PriceBreak { min_qty: 60, unit_price: Decimal::from(7) });
        let mut input = PlanInput { offers: vec![cheaper], ..input };
        let p = plan(&input, PlanOptions::default()).expect("plan");
        assert_eq!((buys(&p), p.cost), (vec![(0, 60)], Decimal::from(420)));
        assert!(violations(&input, &p).is_empty());
        // When a unit short costs less than the extra pack, the plan leaves it short and says so.
        input.needs[0].shortfall_penalty = Decimal::from(50);
        input.offers[0].breaks.truncate(1);
        let p = plan(&input, PlanOptions::default()).expect("plan");
        assert_eq!((buys(&p), p.shortfall.clone()), (vec![(0, 36)], vec![1]));
    }

    #[test]
    fn budgets_and_capacity_leave_a_shortfall_not_a_violation() {
        // Two suppliers; the cheap one can deliver 30, the plan's budget is 500.
        let input = PlanInput {
            needs: vec![need(0, 0, 0, 0, 100, 40)],
            offers: vec![offer(0, 0, 0, 4), offer(1, 0, 0, 6)],
            suppliers: vec![SupplierLimits { budget: None, capacity: Some(30) }, SupplierLimits::default()],
            budget: Some(Decimal::from(500)),
            ..PlanInput::default()
        };
        let p = plan(&input, PlanOptions::default()).expect("plan");
        // 30 × 4 = 120, then (500 − 120) / 6 = 63 more; 7 short.
        assert_eq!(buys(&p), vec![(0, 30), (1, 63)]);
        assert_eq!(p.shortfall, vec![7]);
        assert!(violations(&input, &p).is_empty());
    }

    #[test]
    fn a_dc_and_three_stores_move_stock_when_cheaper_than_buying() {
        // Location 0 is the DC, 1–3 stores. Store 1 holds 50 over its target, store 2 is 30
        // short, store 3 is 20 short. Lanes: store 1 → store 2 at 1.00, DC → stores at 0.50;
        // buying at the stores costs 8.00, at the DC 5.00. The DC has 10 spare.
        let needs = vec![
            need(0, 0, 40, 40, 30, 20),
            need(0, 1, 90, 90, 40, 20),
            need(0, 2, 10, 10, 40, 20),
            need(0, 3, 5, 5, 25, 20),
        ];
        let lanes = vec![
            Lane { from: 1, to: 2, unit_cost: Decimal::ONE },
            Lane { from: 0, to: 2, unit_cost: Decimal::new(5, 1) },
            Lane { from: 0, to: 3, unit_cost: Decimal::new(5, 1) },
        ];
        let offers = vec![offer(0, 0, 2, 8), offer(0, 0, 3, 8), offer(0, 0, 0, 5)];
        let input = PlanInput { needs, offers, lanes, ..PlanInput::default() };
        let p = plan(&input, PlanOptions::default()).expect("plan");
        assert!(violations(&input, &p).is_empty(), "{:?}", violations(&input, &p));
        let t = transfers(&p);
        // Store 2 gets 30 of store 1's excess (1.00 a unit against 8.00 to buy there). Store 3
        // gets 20 from the DC (0.50), which buys its 10 back at 5.00: 5.50 a unit beats 8.00.
        assert!(t.contains(&(0, 2, 30)), "{t:?}");
        assert!(t.contains(&(2, 3, 20)), "{t:?}");
        assert_eq!(buys(&p), vec![(2, 10)], "only the DC buys");
        assert!(p.shortfall.iter().all(|s| *s == 0));
        assert_eq!(p.cost, Decimal::from(30 + 10 + 50));
        // When moving to store 2 costs more than buying there, it buys.
        let mut input = input;
        input.lanes[0].unit_cost = Decimal::from(9);
        input.lanes[1].unit_cost = Decimal::from(9);
        let p = plan(&input, PlanOptions::default()).expect("plan");
        assert!(!transfers(&p).iter().any(|(_, to, _)| *to == 2), "{:?}", p.lines);
        assert!(buys(&p).contains(&(0, 30)));
    }

    #[test]
    fn limits_that_do_not_bind_leave_the_exact_plan_sku_by_sku() {
        let needs: Vec<Need> = (0..30).map(|s| need(s, 0, 0, 0, 10 + s as i64, 30)).collect();
        let offers: Vec<Offer> = (0..30).map(|s| offer(0, s, 0, 3)).collect();
        // A plan budget ties the SKUs together, but the plan without it spends less.
        let input = PlanInput { needs, offers, budget: Some(Decimal::from(1_000_000)), ..PlanInput::default() };
        let p = plan(&input, PlanOptions { max_integers: 10, ..PlanOptions::default() }).expect("plan");
        assert_eq!(p.method, Method::Milp);
        assert!(violations(&input, &p).is_empty());
        assert!(p.shortfall.iter().all(|s| *s == 0));
        assert_eq!(p.gap(), Some(0.0));
    }

    /// A binding supplier budget over many SKUs couples them into one program: above
    /// `max_coupled_integers` (microlp) it is planned greedily, within the budget, with its gap
    /// reported.
    #[test]
    fn a_binding_budget_over_many_skus_is_planned_within_it() {
        let needs: Vec<Need> = (0..80).map(|s| need(s, 0, 0, 0, 7 + (s % 9) as i64, 20 + (s % 7) as i64)).collect();
        let offers: Vec<Offer> = (0..80).map(|s| offer(0, s, 0, 3 + (s % 5) as i64)).collect();
        let suppliers = vec![SupplierLimits { budget: Some(Decimal::from(1_000)), capacity: None }];
        let input = PlanInput { needs, offers, suppliers, ..PlanInput::default() };
        let p = plan(&input, PlanOptions::default()).expect("plan");
        // HiGHS plans it exactly (or to its node limit), never worse than greedy.
        if cfg!(feature = "highs") {
            assert_eq!(p.method, Method::Milp);
            assert!(p.objective <= greedy(&input).objective, "{} > {}", p.objective, greedy(&input).objective);
        } else {
            assert_eq!(p.method, Method::Greedy);
        }
        assert!(violations(&input, &p).is_empty(), "{:?}", violations(&input, &p));
        assert!(p.cost <= Decimal::from(1_000) && p.cost > Decimal::from(900), "{}", p.cost);
        assert!(p.shortfall.iter().any(|s| *s > 0));
        assert!(p.gap().is_some());
    }

    /// Stock moved out of a full location does not make room there: the plan cannot count on
    /// it leaving before what it buys arrives.
    #[test]
    fn a_full_location_buys_nothing_even_while_stock_leaves_it() {
        let mut full = need(0, 0, 50, 50, 50, 100);
        full.unit_volume = 1.0;
        let mut empty = need(0, 1, 0, 0, 20, 100);
        empty.unit_volume = 1.0;
        let input = PlanInput {
            needs: vec![full, empty],
            // Only the full location can buy; moving is far cheaper than buying.
            offers: vec![offer(0, 0, 0, 5)],
            lanes: vec![Lane { from: 0, to: 1, unit_cost: Decimal::ONE }],
            locations: vec![LocationLimits { capacity: Some(50.0) }, LocationLimits { capacity: None }],
            ..PlanInput::default()
        };
        for options in [PlanOptions::default(), PlanOptions { max_integers: 0, ..PlanOptions::default() }] {
            let p = plan(&input, options).expect("plan");
            assert!(buys(&p).is_empty(), "{:?} {:?}", p.method, p.lines);
            assert!(violations(&input, &p).is_empty());
            assert_eq!(p.shortfall.iter().sum::<i64>(), 20, "{:?}", p.lines);
        }
    }

    #[test]
    fn skus_without_shared_limits_are_planned_one_by_one() {
        // 300 SKUs at two locations, each with a lane: far above the MILP's size limit as one
        // problem, yet every SKU is planned exactly.
        let mut needs = Vec::new();
        let mut offers = Vec::new();
        for s in 0..300 {
            needs.push(need(s, 0, 50, 50, 20, 30));
            needs.push(need(s, 1, 0, 0, 10 + (s % 5) as i64, 30));
            offers.push(offer(0, s, 1, 4));
        }
        let lanes = vec![Lane { from: 0, to: 1, unit_cost: Decimal::ONE }];
        let input = PlanInput { needs, offers, lanes, ..PlanInput::default() };
        let p = plan(&input, PlanOptions::default()).expect("plan");
        assert_eq!(p.method, Method::Milp);
        assert!(violations(&input, &p).is_empty());
        // Every shortage is covered by moving the spare 30 (1.00 a unit, against 4.00 to buy).
        assert!(buys(&p).is_empty(), "{:?}", &p.lines[..3]);
        assert_eq!(transfers(&p).len(), 300);
        let units: i64 = transfers(&p).iter().map(|t| t.2).sum();
        assert_eq!(units, (0..300).map(|s| 10 + (s % 5) as i64).sum::<i64>());
    }

    #[test]
    fn bad_input_is_refused() {
        let mut o = offer(0, 0, 0, 1);
        o.breaks.clear();
        let input = PlanInput { offers: vec![o], ..PlanInput::default() };
        assert_eq!(plan(&input, PlanOptions::default()), Err(PlanError::NoPrice(0)));
        let n = need(0, 0, 0, 0, 1, 1);
        let input = PlanInput { needs: vec![n.clone(), n], ..PlanInput::default() };
        assert_eq!(plan(&input, PlanOptions::default()), Err(PlanError::DuplicateNeed { sku: 0, location: 0 }));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn inputs() -> impl Strategy<Value = PlanInput> {
        let need = (0i64..60, 0i64..30, 0i64..80, 1u32..20, 0u32..3);
        let off =
            (0usize..2, 0usize..2, 0usize..3, 0i64..20, 1i64..6, 1i64..12, proptest::option::of((5i64..40, 1i64..12)));
        (
            proptest::collection::vec(need, 1..5),
            proptest::collection::vec(off, 1..5),
            proptest::collection::vec((0usize..3, 0usize..3, 1i64..6), 0..3),
            proptest::option::of(20i64..400),
            proptest::option::of(5i64..80),
            proptest::option::of(10u32..200),
        )
            .prop_map(|(needs, offers, lanes, budget, capacity, volume)| {
                let mut seen = std::collections::HashSet::new();
                let needs: Vec<Need> = needs
                    .into_iter()
                    .enumerate()
                    .filter_map(|(k, (on_hand, on_order, target, penalty, vol))| {
                        let (sku, location) = (k % 2, k % 3);
                        seen.insert((sku, location)).then(|| Need {
                            sku,
                            location,
                            on_hand,
                            position: on_hand + on_order,
                            target,
                            unit_volume: f64::from(vol),
                            shortfall_penalty: Decimal::from(penalty),
                        })
                    })
                    .collect();
                let offers = offers
                    .into_iter()
                    .map(|(supplier, sku, location, moq, pack, price, brk)| {
                        let mut breaks = vec![PriceBreak { min_qty: 0, unit_price: Decimal::from(price) }];
                        if let Some((q, p)) = brk {
                            breaks.push(PriceBreak { min_qty: q, unit_price: Decimal::from(p.min(price)) });
                        }
                        Offer { supplier, sku, location, moq, pack_size: pack, breaks, order_cost: Decimal::from(2) }
                    })
                    .collect();
                let lanes =
                    lanes.into_iter().map(|(from, to, c)| Lane { from, to, unit_cost: Decimal::from(c) }).collect();
                PlanInput {
                    needs,
                    offers,
                    lanes,
                    suppliers: vec![
                        SupplierLimits { budget: budget.map(Decimal::from), capacity },
                        SupplierLimits::default(),
                    ],
                    locations: vec![LocationLimits { capacity: volume.map(f64::from) }],
                    budget: None,
                }
            })
    }

    fn apply(input: &PlanInput, p: &Plan) -> PlanInput {
        let mut next = input.clone();
        let idx = need_index(input);
        for l in &p.lines {
            match l.kind {
                LineKind::Buy { .. } => {
                    if let Some(&i) = idx.get(&(l.sku, l.location)) {
                        next.needs[i].position += l.quantity;
                    }
                }
                LineKind::Transfer { lane } => {
                    let from = idx[&(l.sku, input.lanes[lane].from)];
                    let to = idx[&(l.sku, l.location)];
                    next.needs[from].position -= l.quantity;
                    next.needs[from].on_hand -= l.quantity;
                    next.needs[to].position += l.quantity;
                }
            }
        }
        next
    }

    proptest! {

        /// No line breaks a pack, minimum, budget or capacity; quantities are positive; the MILP
        /// is never worse than the greedy plan; once a plan is carried out (its purchases on
        /// order, its transfers made), planning again buys nothing for what it covered.
        #[test]
        fn plans_respect_every_limit(input in inputs()) {
            let p = plan(&input, PlanOptions::default()).expect("plan");
            prop_assert!(violations(&input, &p).is_empty(), "{:?}", violations(&input, &p));
            prop_assert!(p.lines.iter().all(|l| l.quantity > 0));
            let g = greedy(&input);
            prop_assert!(violations(&input, &g).is_empty(), "greedy: {:?}", violations(&input, &g));
            // plan() keeps the cheaper of the two, so the MILP answering at all means it was no worse.
            prop_assert_eq!(p.method, Method::Milp, "greedy {} beat the MILP", g.objective);
            prop_assert!(p.objective <= g.objective);
            if p.shortfall.iter().all(|s| *s == 0) {
                let again = plan(&apply(&input, &p), PlanOptions::default()).expect("plan");
                prop_assert!(again.lines.is_empty(), "{:?}", again.lines);
            }
        }
    }
}
