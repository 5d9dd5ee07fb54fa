//! The inventory policy of one SKU at one location.
//!
//! Demand over the protection interval P = lead time + review period has mean `μ_P` (the
//! forecast summed over P; with a spread lead time each period counts with the chance that it
//! falls inside P, so a peak just past the mean lead time counts in part and the forecast's
//! weekday pattern near the order's arrival, which day it lands on being uncertain, averages
//! out) and variance `σ_P² = P·σ_d² + d̄²·v_L`: the forecast's own spread
//! per period over P periods, plus the lead time's spread times the mean demand per period.
//! With one order outstanding (continuous review, or reviews further apart than the lead time
//! spreads) `v_L = σ_L²`, the textbook term. Orders placed every R periods with independent lead
//! times overtake one another and their lateness averages out: what has arrived by a given day
//! is a sum of orders each in or not, with variance `(d̄R)²·Σ_a F(a)(1 − F(a))` over the ages a
//! of the outstanding orders (F the lead time's distribution), which for a normal lead time is
//! `d̄²·R·σ_L/√π`. So `v_L = σ_L·min(σ_L, R/√π)`.
//! Safety stock is `z·σ_P`, with `z` from the target: the normal quantile of a cycle service
//! level, or for a fill rate the least `z` whose expected shortage per cycle is `(1 − β)` of the
//! demand per cycle. With periodic review the units short in a cycle are those demanded over P
//! beyond the level less those already short before the cycle's own demand, over the lead time:
//! `σ_P·G(z) − σ_L·G((S − μ_L)/σ_L)` (G the standard normal loss function, S the order-up-to
//! level); with continuous review the first term alone. Leaving out the second term, as the
//! textbook shortcut does, overstates the shortage when a cycle is short against the lead time's
//! spread (daily review of a week's lead time) and holds too much stock. The reorder point is
//! the mean demand over the lead time plus safety stock, the order-up-to level the mean demand
//! over P plus safety stock. When the inventory position (on hand + on order + in transit −
//! reserved) is at or below the reorder point, the order brings it up to the order-up-to level,
//! rounded up to whole packs and at least the supplier's minimum.

use crate::forecast::engine::normal_quantile;
use crate::forecast::supply::at_or_last;

/// What service to plan for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceTarget {
    /// Probability of no stockout in a replenishment cycle, in (0, 1).
    Cycle(f64),
    /// Share of demand served from stock, in (0, 1).
    FillRate(f64),
}

/// Everything the policy of one SKU × location depends on. Periods are the forecast's (days for
/// the service).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyInput {
    /// Mean demand per period from now on (the forecast, overrides applied); the last period
    /// repeats beyond it.
    pub demand: Vec<f64>,
    /// Standard deviation of demand per period (for example from the forecast's p10–p90 band).
    pub demand_sd: Vec<f64>,
    /// Supplier lead time, mean and standard deviation, in periods.
    pub lead_time_mean: f64,
    pub lead_time_sd: f64,
    /// Periods between two order decisions (0: continuous review).
    pub review_period: f64,
    pub on_hand: i64,
    /// Open purchase orders not yet received.
    pub on_order: i64,
    /// Transfers shipped to this location and not yet received.
    pub in_transit: i64,
    /// Units promised to orders and not yet shipped.
    pub reserved: i64,
    /// Minimum order quantity (0 or 1: none).
    pub moq: i64,
    /// Orders come in multiples of this (0 or 1: single units).
    pub pack_size: i64,
}

impl PolicyInput {
    /// The same input with the spread of demand and of the lead time times `factor` (the
    /// calibrated factor of `super::calibrate`).
    pub fn spread_scaled(mut self, factor: f64) -> PolicyInput {
        self.demand_sd.iter_mut().for_each(|v| *v *= factor);
        self.lead_time_sd *= factor;
        self
    }
}

/// Why a policy cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("the service level {0} is not strictly between 0 and 1")]
    ServiceLevel(f64),
    #[error("the lead time must be a finite mean of 0 or more with a spread of 0 or more (got {mean} ± {sd})")]
    LeadTime { mean: f64, sd: f64 },
    #[error("the review period must be 0 or more (got {0})")]
    ReviewPeriod(f64),
    #[error("demand must be finite and not negative")]
    Demand,
    #[error("the minimum order quantity and the pack size must not be negative")]
    Rounding,
}

/// Each number of the policy and where it came from, for the people who approve it.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// Lead time plus review period, in periods.
    pub protection_periods: f64,
    /// Mean demand over the lead time, and over the lead time plus review period (each period
    /// weighted by the chance it falls inside when the lead time spreads).
    pub lead_time_demand: f64,
    pub protection_demand: f64,
    /// Standard deviation of demand over the protection interval, and over the lead time.
    pub protection_sd: f64,
    pub lead_time_sd: f64,
    /// Periods between two order decisions (0: continuous review).
    pub review_period: f64,
    /// The safety factor used.
    pub z: f64,
    /// Mean demand one order covers (a review period's worth, at least one period's).
    pub cycle_demand: f64,
    /// Safety stock split by cause (their sum is the safety stock): the forecast's uncertainty,
    /// and the lead time's.
    pub safety_from_demand: f64,
    pub safety_from_lead_time: f64,
    /// On hand + on order + in transit − reserved.
    pub inventory_position: i64,
    /// Order-up-to level minus inventory position, before rounding (0 when no order is due).
    pub unrounded_order: f64,
    /// The order was rounded up to whole packs of this size.
    pub rounded_to_pack: Option<i64>,
    /// The order was raised to the supplier's minimum.
    pub raised_to_moq: Option<i64>,
}

/// The policy and the order it asks for now.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub safety_stock: f64,
    pub reorder_point: f64,
    pub order_up_to: f64,
    /// Units to order now: 0, or a multiple of the pack size and at least the minimum.
    pub order_quantity: i64,
    pub explanation: Explanation,
}

/// The mean demand over a normal number of periods (mean `periods`, spread `sd`; negative counts
/// as none): period k counts with the expected share of it inside, E[min(max(N − k, 0), 1)], the
/// expected excess of N over k less that over k + 1 (with no spread: whole periods, the last
/// one's fraction pro rata). Past the forecast's end its last period repeats, and those shares
/// sum to the expected excess over the end, so the work is the forecast's length whatever the
/// lead time and its spread.
fn demand_within(demand: &[f64], periods: f64, sd: f64) -> f64 {
    let beyond = |k: usize| expected_excess(k as f64, periods, sd);
    let (mut sum, mut before) = (0.0, beyond(0));
    for (k, d) in demand.iter().enumerate() {
        let after = beyond(k + 1);
        sum += d * (before - after);
        before = after;
    }
    sum + at_or_last(demand, demand.len()) * before
}

/// The mean of `v` over its first `periods` entries (at least one; the last repeats).
fn mean_over(v: &[f64], periods: f64) -> f64 {
    let p = periods.max(1.0);
    demand_within(v, p, 0.0) / p
}

/// Standard normal density, distribution and loss function G(z) = φ(z) − z·(1 − Φ(z)).
fn phi(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn normal_cdf(z: f64) -> f64 {
    // Abramowitz–Stegun 26.2.17 (|error| < 7.5e-8).
    let t = 1.0 / (1.0 + 0.231_641_9 * z.abs());
    let poly =
        t * (0.319_381_530 + t * (-0.356_563_782 + t * (1.781_477_937 + t * (-1.821_255_978 + t * 1.330_274_429))));
    let upper = phi(z) * poly;
    if z >= 0.0 { 1.0 - upper } else { upper }
}

pub fn normal_loss(z: f64) -> f64 {
    (phi(z) - z * (1.0 - normal_cdf(z))).max(0.0)
}

/// Demand over the protection interval and over the lead time alone, as the policy sees it.
#[derive(Debug, Clone, Copy)]
struct Exposure {
    protection_demand: f64,
    protection_sd: f64,
    lead_time_demand: f64,
    lead_time_sd: f64,
    /// Periodic review (orders every review); continuous review when false.
    periodic: bool,
    cycle_demand: f64,
}

impl Exposure {
    /// The fill rate with the inventory position brought to `level` at each review: units short
    /// in a cycle are those demanded over the protection interval beyond `level`, less those
    /// already short before the cycle's own demand, over the lead time (normal demand).
    fn fill_rate_at(&self, level: f64) -> f64 {
        if self.cycle_demand <= 0.0 {
            return 1.0;
        }
        let mut short = expected_excess(level, self.protection_demand, self.protection_sd);
        if self.periodic {
            short -= expected_excess(level, self.lead_time_demand, self.lead_time_sd);
        }
        (1.0 - short.max(0.0) / self.cycle_demand).clamp(0.0, 1.0)
    }

    /// The safety factor on the protection spread for `target`: the normal quantile of a cycle
    /// service level, or the least factor in [−4, 6] whose level reaches the fill rate.
    fn safety_factor(&self, target: ServiceTarget) -> f64 {
        match target {
            ServiceTarget::Cycle(a) => normal_quantile(a),
            ServiceTarget::FillRate(b) => {
                let sd = self.protection_sd;
                if sd <= 0.0 {
                    return 0.0;
                }
                // The fill rate rises with the level: bisect for the first level that reaches β.
                let (mut lo, mut hi) = (-4.0, 6.0);
                for _ in 0..80 {
                    let mid = (lo + hi) / 2.0;
                    if self.fill_rate_at(self.protection_demand + mid * sd) < b { lo = mid } else { hi = mid }
                }
                hi
            }
        }
    }
}

/// Expected units of normal demand (mean `mean`, spread `sd`) above `level`: σ·G((level − μ)/σ).
fn expected_excess(level: f64, mean: f64, sd: f64) -> f64 {
    if sd > 0.0 { sd * normal_loss((level - mean) / sd) } else { (mean - level).max(0.0) }
}

impl Policy {
    /// The fill rate to expect when the inventory position is brought to `level` at each review
    /// (see the module's note); at the order-up-to level of a fill-rate target, the target.
    /// Far below the lead-time demand it falls to 0. With continuous review `level` is the
    /// reorder point and a cycle's demand one period's.
    pub fn fill_rate_at(&self, level: f64) -> f64 {
        self.explanation.exposure().fill_rate_at(level)
    }
}

impl Explanation {
    fn exposure(&self) -> Exposure {
        Exposure {
            protection_demand: self.protection_demand,
            protection_sd: self.protection_sd,
            lead_time_demand: self.lead_time_demand,
            lead_time_sd: self.lead_time_sd,
            periodic: self.review_period > 0.0,
            cycle_demand: self.cycle_demand,
        }
    }
}

/// An order and how it was rounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Order {
    /// Units: 0, or whole packs and at least the minimum.
    pub quantity: i64,
    /// The order-up-to level minus the position, before rounding (0 when no order is due).
    pub unrounded: f64,
    pub rounded_to_pack: Option<i64>,
    pub raised_to_moq: Option<i64>,
}

/// The order due at an inventory `position`: none above `reorder_point`, else up to
/// `order_up_to`, rounded up to whole packs of `pack_size` and raised to the minimum `moq`
/// (0 or 1 for either: none).
pub fn order_for(position: f64, reorder_point: f64, order_up_to: f64, moq: i64, pack_size: i64) -> Order {
    let unrounded = if position <= reorder_point { (order_up_to - position).max(0.0) } else { 0.0 };
    let mut quantity = unrounded.ceil() as i64;
    let (mut rounded_to_pack, mut raised_to_moq) = (None, None);
    if quantity > 0 {
        if pack_size > 1 && quantity % pack_size != 0 {
            quantity = (quantity / pack_size + 1) * pack_size;
            rounded_to_pack = Some(pack_size);
        }
        if moq > quantity {
            let pack = pack_size.max(1);
            quantity = (moq + pack - 1) / pack * pack;
            raised_to_moq = Some(moq);
        }
    }
    Order { quantity, unrounded, rounded_to_pack, raised_to_moq }
}

/// The policy of one SKU × location for `target`.
pub fn policy(input: &PolicyInput, target: ServiceTarget) -> Result<Policy, PolicyError> {
    let level = match target {
        ServiceTarget::Cycle(a) | ServiceTarget::FillRate(a) => a,
    };
    if !(level > 0.0 && level < 1.0) {
        return Err(PolicyError::ServiceLevel(level));
    }
    let (l, sl) = (input.lead_time_mean, input.lead_time_sd);
    if !(l.is_finite() && sl.is_finite() && l >= 0.0 && sl >= 0.0) {
        return Err(PolicyError::LeadTime { mean: l, sd: sl });
    }
    let r = input.review_period;
    if !(r.is_finite() && r >= 0.0) {
        return Err(PolicyError::ReviewPeriod(r));
    }
    if input.demand.iter().chain(&input.demand_sd).any(|v| !v.is_finite() || *v < 0.0) {
        return Err(PolicyError::Demand);
    }
    if input.moq < 0 || input.pack_size < 0 {
        return Err(PolicyError::Rounding);
    }
    let p = l + r;
    let lead_time_demand = demand_within(&input.demand, l, sl);
    let protection_demand = demand_within(&input.demand, p, sl);
    let d_bar = mean_over(&input.demand, p);
    let demand_var: Vec<f64> = input.demand_sd.iter().map(|s| s * s).collect();
    let var_demand = p * mean_over(&demand_var, p);
    let lead_spread = if r > 0.0 { sl * sl.min(r / std::f64::consts::PI.sqrt()) } else { sl * sl };
    let var_lead = d_bar * d_bar * lead_spread;
    let sd = (var_demand + var_lead).sqrt();
    let lead_time_sd = (l * mean_over(&demand_var, l) + mean_over(&input.demand, l).powi(2) * lead_spread).sqrt();
    // Demand per cycle: what one order covers (a review period's worth, at least one period's).
    let cycle_demand = d_bar * r.max(1.0);
    let exposure = Exposure {
        protection_demand,
        protection_sd: sd,
        lead_time_demand,
        lead_time_sd,
        periodic: r > 0.0,
        cycle_demand,
    };
    let z = exposure.safety_factor(target);
    let safety_stock = (z * sd).max(0.0);
    let (safety_from_demand, safety_from_lead_time) = if sd > 0.0 {
        (safety_stock * var_demand / (sd * sd), safety_stock * var_lead / (sd * sd))
    } else {
        (0.0, 0.0)
    };
    let reorder_point = lead_time_demand + safety_stock;
    let order_up_to = protection_demand + safety_stock;
    let inventory_position = input.on_hand + input.on_order + input.in_transit - input.reserved;
    // Periodic review orders at every review; continuous review once at or below the reorder point.
    let trigger = if r > 0.0 { order_up_to } else { reorder_point };
    let order = order_for(inventory_position as f64, trigger, order_up_to, input.moq, input.pack_size);
    Ok(Policy {
        safety_stock,
        reorder_point,
        order_up_to,
        order_quantity: order.quantity,
        explanation: Explanation {
            protection_periods: p,
            lead_time_demand,
            protection_demand,
            protection_sd: sd,
            lead_time_sd,
            review_period: r,
            z,
            cycle_demand,
            safety_from_demand,
            safety_from_lead_time,
            inventory_position,
            unrounded_order: order.unrounded,
            rounded_to_pack: order.rounded_to_pack,
            raised_to_moq: order.raised_to_moq,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PolicyInput {
        PolicyInput {
            demand: vec![10.0; 30],
            demand_sd: vec![3.0; 30],
            lead_time_mean: 4.0,
            lead_time_sd: 1.0,
            review_period: 0.0,
            on_hand: 20,
            on_order: 0,
            in_transit: 0,
            reserved: 0,
            moq: 0,
            pack_size: 0,
        }
    }

    #[test]
    fn cycle_service_level_by_hand() {
        // P = 4: σ² = 4·9 + 10²·1² = 136; z(0.95) = 1.644854; SS = 19.182.
        let p = policy(&input(), ServiceTarget::Cycle(0.95)).expect("policy");
        let ss = 1.644_853_6 * 136f64.sqrt();
        assert!((p.safety_stock - ss).abs() < 1e-4, "{p:?}");
        assert!((p.reorder_point - (40.0 + ss)).abs() < 1e-4);
        // Demand and lead-time shares: 36/136 and 100/136 of the safety stock.
        let e = &p.explanation;
        assert!((e.safety_from_demand - ss * 36.0 / 136.0).abs() < 1e-6);
        assert!((e.safety_from_lead_time - ss * 100.0 / 136.0).abs() < 1e-6);
        // Position 20 is below the reorder point 59.2: order up to it, 39.18 -> 40.
        assert_eq!((e.inventory_position, p.order_quantity), (20, 40));
    }

    #[test]
    fn inventory_position_counts_open_orders_transfers_and_reservations() {
        let mut i = input();
        i.on_order = 30;
        i.in_transit = 15;
        i.reserved = 5;
        let p = policy(&i, ServiceTarget::Cycle(0.95)).expect("policy");
        assert_eq!(p.explanation.inventory_position, 60);
        assert_eq!(p.order_quantity, 0, "60 is above the reorder point of 59.2");
    }

    #[test]
    fn packs_and_minimums_round_the_order_up() {
        let mut i = input();
        i.pack_size = 12;
        let p = policy(&i, ServiceTarget::Cycle(0.95)).expect("policy");
        assert_eq!((p.order_quantity, p.explanation.rounded_to_pack), (48, Some(12)));
        i.moq = 100;
        let p = policy(&i, ServiceTarget::Cycle(0.95)).expect("policy");
        assert_eq!((p.order_quantity, p.explanation.raised_to_moq), (108, Some(100)), "the minimum, in whole packs");
    }

    #[test]
    fn a_fill_rate_target_needs_less_safety_stock_the_more_an_order_covers() {
        // Fill rate: σ·G(z) = (1 − β)·Q. With σ = √136 and Q = 10·7 (weekly review) at 98 %:
        // G(z) = 1.4/11.662 = 0.12005 -> z ≈ 0.784.
        let mut i = input();
        i.review_period = 7.0;
        let weekly = policy(&i, ServiceTarget::FillRate(0.98)).expect("policy");
        // ...less what is already short before the cycle: demand over the lead time alone
        // beyond the order-up-to level.
        let e = &weekly.explanation;
        let before = e.lead_time_sd * normal_loss((weekly.order_up_to - e.lead_time_demand) / e.lead_time_sd);
        assert!((e.protection_sd * normal_loss(e.z) - before - 0.02 * 70.0).abs() < 1e-6, "{weekly:?}");
        i.review_period = 28.0;
        let monthly = policy(&i, ServiceTarget::FillRate(0.98)).expect("policy");
        assert!(monthly.explanation.z < weekly.explanation.z);
        assert!((normal_loss(0.0) - 0.398_942).abs() < 1e-5);
    }

    #[test]
    fn frequent_orders_pool_the_lead_time_spread() {
        // 10 a period, no forecast spread, lead time 7 ± 2.1. Continuous review: one order out,
        // variance 10²·2.1² = 441. Daily review: orders overtake, variance 10²·2.1/√π = 118.5.
        let mut i = input();
        (i.demand_sd, i.lead_time_mean, i.lead_time_sd) = (vec![0.0; 30], 7.0, 2.1);
        let once = policy(&i, ServiceTarget::Cycle(0.95)).expect("policy");
        assert!((once.explanation.protection_sd - 21.0).abs() < 1e-9, "{once:?}");
        i.review_period = 1.0;
        let daily = policy(&i, ServiceTarget::Cycle(0.95)).expect("policy");
        let want = (100.0 * 2.1 / std::f64::consts::PI.sqrt()).sqrt();
        assert!((daily.explanation.protection_sd - want).abs() < 1e-9, "{daily:?}");
        // Reviews far apart against the spread: the textbook term again.
        i.review_period = 30.0;
        let monthly = policy(&i, ServiceTarget::Cycle(0.95)).expect("policy");
        assert!((monthly.explanation.protection_sd - 21.0).abs() < 1e-9);
    }

    #[test]
    fn the_fill_rate_at_the_order_up_to_level_is_the_target() {
        let mut i = input();
        i.review_period = 7.0;
        let p = policy(&i, ServiceTarget::FillRate(0.98)).expect("policy");
        let at = p.fill_rate_at(p.order_up_to);
        assert!((at - 0.98).abs() < 1e-9, "{at}");
        assert!(p.fill_rate_at(p.order_up_to - 20.0) < 0.98);
        assert!(p.fill_rate_at(p.order_up_to + 20.0) > 0.98);
        // Below what the lead time alone consumes, the cycle's demand all goes unserved.
        assert!(p.fill_rate_at(10.0) < 1e-3, "{}", p.fill_rate_at(10.0));
    }

    #[test]
    fn daily_review_of_a_week_long_lead_time_counts_the_shortage_carried_into_a_cycle() {
        // 10 a day, no forecast spread, lead time 7 ± 2.1, reviewed daily, 95 % fill rate:
        // σ_P = σ_L = √(100·2.1/√π) = 10.885, μ_P = 80, μ_L = 70; the level S solves
        // σ·(G((S − 80)/σ) − G((S − 70)/σ)) = 0.05·10, so S = 93.524 (z = 1.2424). The shortcut
        // σ·G(z) = 0.5 would hold 94.105 (z = 1.2958).
        let mut i = input();
        (i.demand_sd, i.lead_time_mean, i.lead_time_sd, i.review_period) = (vec![0.0; 30], 7.0, 2.1, 1.0);
        let p = policy(&i, ServiceTarget::FillRate(0.95)).expect("policy");
        assert!((p.order_up_to - 93.524).abs() < 1e-3, "{p:?}");
        assert!((p.explanation.z - 1.2424).abs() < 1e-4, "{p:?}");
        assert!((p.fill_rate_at(p.order_up_to) - 0.95).abs() < 1e-9);
    }

    #[test]
    fn a_slow_mover_short_of_its_level_still_serves_part_of_a_cycle() {
        // 0.2 a day over ten days, reviewed daily, with the position at 1.8: the
        // shortage over the whole interval exceeds one day's demand, but most of it happens
        // before the cycle's own day, so part of that day's demand is served.
        let i = PolicyInput {
            demand: vec![0.2; 30],
            demand_sd: vec![0.15; 30],
            lead_time_mean: 9.0,
            lead_time_sd: 0.0,
            review_period: 1.0,
            ..input()
        };
        let p = policy(&i, ServiceTarget::FillRate(0.95)).expect("policy");
        let e = &p.explanation;
        let beyond = e.protection_sd * normal_loss((1.8 - e.protection_demand) / e.protection_sd);
        assert!(beyond > e.cycle_demand, "{e:?}");
        let f = p.fill_rate_at(1.8);
        assert!(f > 0.05 && f < 0.95, "{f}");
        assert!(p.fill_rate_at(2.8) > f);
    }

    #[test]
    fn a_spread_lead_time_counts_the_periods_it_may_reach_in_part() {
        // Daily review, a week's lead time: 10 a day, then 100 a day from day 9 on.
        let mut i = input();
        i.review_period = 1.0;
        i.lead_time_mean = 7.0;
        i.demand = (0..30).map(|t| if t < 9 { 10.0 } else { 100.0 }).collect();
        i.lead_time_sd = 0.0;
        let sure = policy(&i, ServiceTarget::FillRate(0.95)).expect("policy").explanation;
        assert!((sure.protection_demand - 80.0).abs() < 1e-9 && (sure.lead_time_demand - 70.0).abs() < 1e-9);
        // With 2 days either way the order may come after day 9 starts: part of the peak counts.
        i.lead_time_sd = 2.0;
        let spread = policy(&i, ServiceTarget::FillRate(0.95)).expect("policy").explanation;
        assert!(spread.protection_demand > 100.0, "{spread:?}");
        assert!(spread.lead_time_demand > 70.0 && spread.lead_time_demand < spread.protection_demand);
        // Flat demand: the spread moves no mean (but for the hundredth of a unit the normal puts
        // below a lead time of 0).
        i.demand = vec![10.0; 30];
        let flat = policy(&i, ServiceTarget::FillRate(0.95)).expect("policy").explanation;
        assert!((flat.protection_demand - 80.0).abs() < 0.01 && (flat.lead_time_demand - 70.0).abs() < 0.01);
        // A spread far past the forecast costs no more than its length: the last period repeats.
        i.lead_time_sd = 1e12;
        let wide = policy(&i, ServiceTarget::FillRate(0.95)).expect("policy").explanation;
        assert!(wide.protection_demand.is_finite() && wide.protection_demand > 80.0, "{wide:?}");
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut i = input();
        assert_eq!(policy(&i, ServiceTarget::Cycle(1.0)), Err(PolicyError::ServiceLevel(1.0)));
        i.lead_time_mean = -1.0;
        assert!(matches!(policy(&i, ServiceTarget::Cycle(0.9)), Err(PolicyError::LeadTime { .. })));
        let mut i = input();
        i.demand[3] = f64::NAN;
        assert_eq!(policy(&i, ServiceTarget::Cycle(0.9)), Err(PolicyError::Demand));
        let mut i = input();
        i.pack_size = -2;
        assert_eq!(policy(&i, ServiceTarget::Cycle(0.9)), Err(PolicyError::Rounding));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn inputs() -> impl Strategy<Value = PolicyInput> {
        (
            proptest::collection::vec(0.0f64..500.0, 1..60),
            0.0f64..100.0,
            (0.0f64..60.0, 0.0f64..10.0, 0.0f64..30.0),
            (0i64..10_000, 0i64..5_000, 0i64..5_000, 0i64..5_000),
            (0i64..500, 0i64..48),
        )
            .prop_map(
                |(demand, sd, (l, sl, r), (on_hand, on_order, in_transit, reserved), (moq, pack_size))| PolicyInput {
                    demand_sd: vec![sd; demand.len()],
                    demand,
                    lead_time_mean: l,
                    lead_time_sd: sl,
                    review_period: r,
                    on_hand,
                    on_order,
                    in_transit,
                    reserved,
                    moq,
                    pack_size,
                },
            )
    }

    proptest! {
        /// Orders are never negative, come in whole packs, respect the minimum, and an order once
        /// placed (counted as on order) is not placed again.
        #[test]
        fn orders_respect_packs_minimums_and_open_orders(i in inputs(), level in 0.5f64..0.999, fill in any::<bool>()) {
            let target = if fill { ServiceTarget::FillRate(level) } else { ServiceTarget::Cycle(level) };
            let p = policy(&i, target).expect("valid input");
            prop_assert!(p.order_quantity >= 0);
            prop_assert!(p.safety_stock >= 0.0 && p.safety_stock.is_finite());
            prop_assert!(p.reorder_point <= p.order_up_to + 1e-9);
            if p.order_quantity > 0 {
                prop_assert_eq!(p.order_quantity % i.pack_size.max(1), 0);
                prop_assert!(p.order_quantity >= i.moq);
                let mut after = i.clone();
                after.on_order += p.order_quantity;
                let again = policy(&after, target).expect("valid input");
                prop_assert_eq!(again.order_quantity, 0, "{:?} then {:?}", p, again);
            }
        }

        /// A higher service level never needs less safety stock.
        #[test]
        fn safety_stock_grows_with_the_service_level(i in inputs(), level in 0.5f64..0.98, fill in any::<bool>()) {
            let t = |a: f64| if fill { ServiceTarget::FillRate(a) } else { ServiceTarget::Cycle(a) };
            let low = policy(&i, t(level)).expect("valid").safety_stock;
            let high = policy(&i, t(level + 0.01)).expect("valid").safety_stock;
            prop_assert!(high >= low - 1e-6, "{} < {}", high, low);
        }
    }
}

/// ABC class of an item by its share of value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AbcClass {
    A,
    B,
    C,
}

impl AbcClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AbcClass::A => "A",
            AbcClass::B => "B",
            AbcClass::C => "C",
        }
    }
}

/// ABC classes by value: the items that make up the first 80 % of the total value (largest
/// first) are A, the next 15 % B, the rest C. An item straddling a boundary takes the higher class;
/// ties keep their input order. Items of no value are C.
pub fn abc_classes(values: &[f64]) -> Vec<AbcClass> {
    let total: f64 = values.iter().filter(|v| v.is_finite() && **v > 0.0).sum();
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].partial_cmp(&values[a]).unwrap_or(std::cmp::Ordering::Equal));
    let mut out = vec![AbcClass::C; values.len()];
    let mut before = 0.0;
    for i in order {
        let v = values[i];
        if !(v.is_finite() && v > 0.0) || total <= 0.0 {
            continue;
        }
        let share = before / total;
        out[i] = if share < 0.80 {
            AbcClass::A
        } else if share < 0.95 {
            AbcClass::B
        } else {
            AbcClass::C
        };
        before += v;
    }
    out
}

#[cfg(test)]
mod abc_tests {
    use super::*;

    #[test]
    fn abc_by_cumulative_value() {
        // 50, 30, 10, 5, 3, 2 of 100: A until 80 % is reached (50, 30), B to 95 % (10, 5), C.
        let v = [10.0, 50.0, 2.0, 30.0, 5.0, 3.0];
        let c = abc_classes(&v);
        assert_eq!(c, vec![AbcClass::B, AbcClass::A, AbcClass::C, AbcClass::A, AbcClass::B, AbcClass::C]);
        assert_eq!(abc_classes(&[0.0, f64::NAN]), vec![AbcClass::C, AbcClass::C]);
    }
}
