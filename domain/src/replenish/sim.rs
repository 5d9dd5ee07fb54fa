//! Replaying demand against an inventory policy, period by period: at each review the policy
//! sets its levels from what was known before that period, orders arrive after a sampled lead
//! time, demand is served from stock and what cannot be served is lost.
//!
//! Within one period: goods due arrive (and can be sold in that period), then the review (if it
//! is one) orders up to the policy's level, then demand is served. A lead time of 0 periods
//! arrives at once. The replay starts warm, as if the policy had run before: at each review
//! before it had ordered a review period's mean demand, each order with its own lead-time draw;
//! those not yet arrived are in the pipeline (an evenly arriving one would make the first lead
//! time of the replay safer than the rest), and on hand is the first order-up-to level less them
//! and less the demand sold since the last review, which the first review orders back.
//!
//! Deterministic: lead times come from a generator seeded per series; the warm start draws the
//! same number of times whatever the policy, and then the k-th order of a series gets the k-th
//! draw, so policies compared on one seed meet the same supplier.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;

use super::policy::order_for;
use crate::sampling::standard_normal;

/// How one series is stocked.
#[derive(Debug, Clone, PartialEq)]
pub struct Stocking {
    /// Supplier lead time in periods: mean and standard deviation.
    pub lead_time_mean: f64,
    pub lead_time_sd: f64,
    /// Periods from one review to the next (1: every period).
    pub review_period: usize,
    /// Minimum order quantity and pack size (0 or 1: none).
    pub moq: i64,
    pub pack_size: i64,
    pub unit_cost: Decimal,
    /// Holding cost per unit and period as a share of the unit cost.
    pub holding_rate: Decimal,
    pub order_cost: Decimal,
    /// Seeds this series' lead-time draws.
    pub seed: u64,
}

/// Why a replay cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("series {series}: it has {len} periods, fewer than the {needed} the replay needs")]
    TooShort { series: usize, len: usize, needed: usize },
    #[error("series {series}: the review period must be 1 or more periods")]
    ReviewPeriod { series: usize },
    #[error("series {series}: the lead time must be finite and not negative")]
    LeadTime { series: usize },
    #[error("series {series}: demand must be finite and not negative")]
    Demand { series: usize },
    #[error("the policy gave {got} decisions for {due} series under review")]
    Decisions { due: usize, got: usize },
    #[error(transparent)]
    Policy(#[from] super::policy::PolicyError),
}

/// The levels a policy sets at one review of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    /// Order when the inventory position (on hand + on order) is at or below this...
    pub reorder_point: f64,
    /// ...up to this level.
    pub order_up_to: f64,
    /// Mean demand over the lead time (for the warm start).
    pub lead_time_demand: f64,
}

/// A policy's decisions at one review step: the levels of each series under review, in order.
pub type Decide<'a> = dyn FnMut(usize, &[usize]) -> Result<Vec<Levels>, SimError> + 'a;

/// One replayed period of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    /// Index into the series' periods.
    pub index: usize,
    pub demand: f64,
    /// On hand at the start of the period, before receipts.
    pub on_hand_start: f64,
    pub order_qty: i64,
    pub received: f64,
    pub sales: f64,
    pub lost: f64,
}

/// Pooled results; the ratios are over everything added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub series: usize,
    pub periods: usize,
    pub demand: f64,
    pub sales: f64,
    pub lost: f64,
    /// Sum over periods of the units on hand at the end of the period.
    pub on_hand: f64,
    /// The same in money (units × unit cost).
    pub value: Decimal,
    pub holding_cost: Decimal,
    pub ordering_cost: Decimal,
    pub orders: usize,
    /// Review cycles (a review and the periods up to the next), and those without lost sales.
    pub cycles: usize,
    pub cycles_met: usize,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.series += other.series;
        self.periods += other.periods;
        self.demand += other.demand;
        self.sales += other.sales;
        self.lost += other.lost;
        self.on_hand += other.on_hand;
        self.value += other.value;
        self.holding_cost += other.holding_cost;
        self.ordering_cost += other.ordering_cost;
        self.orders += other.orders;
        self.cycles += other.cycles;
        self.cycles_met += other.cycles_met;
    }

    /// Share of demand served from stock (1 when there was no demand).
    pub fn fill_rate(&self) -> f64 {
        if self.demand > 0.0 { self.sales / self.demand } else { 1.0 }
    }

    /// Share of review cycles without a lost sale.
    pub fn cycle_service_level(&self) -> f64 {
        if self.cycles > 0 { self.cycles_met as f64 / self.cycles as f64 } else { 1.0 }
    }

    /// Units on hand on an average period, summed over the series.
    pub fn average_on_hand(&self) -> f64 {
        if self.periods > 0 { self.on_hand * self.series as f64 / self.periods as f64 } else { 0.0 }
    }

    /// The same in money.
    pub fn average_value(&self) -> Decimal {
        if self.periods > 0 {
            (self.value * Decimal::from(self.series) / Decimal::from(self.periods)).round_dp(2)
        } else {
            Decimal::ZERO
        }
    }

    pub fn total_cost(&self) -> Decimal {
        (self.holding_cost + self.ordering_cost).round_dp(2)
    }
}

/// One series' replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub periods: Vec<Period>,
    pub tally: Tally,
}

struct State {
    on_hand: f64,
    on_order: f64,
    arrivals: Vec<f64>,
    rng: ChaCha8Rng,
    cycle_open: bool,
    cycle_lost: bool,
    outcome: Outcome,
}

fn money(v: f64) -> Decimal {
    Decimal::from_f64(v).unwrap_or_default()
}

/// A lead time in whole periods: the mean plus a normal spread, rounded, never negative.
fn draw_lead_time(rng: &mut ChaCha8Rng, s: &Stocking) -> usize {
    let z = standard_normal(rng);
    (s.lead_time_mean + s.lead_time_sd * z).round().max(0.0) as usize
}

/// The series under review at replay step `step` (0-based): those whose review period divides it.
pub fn due(stocking: &[Stocking], step: usize) -> Vec<usize> {
    (0..stocking.len()).filter(|i| step.is_multiple_of(stocking[*i].review_period)).collect()
}

/// Replays the last `steps` periods of every series. At each review `decide(step, due)` gets
/// the replay step (0-based) and the series under review, and returns their levels in that
/// order, using only periods before `len - steps + step` of each series.
pub fn replay(
    demand: &[&[f64]],
    stocking: &[Stocking],
    steps: usize,
    decide: &mut Decide<'_>,
) -> Result<Vec<Outcome>, SimError> {
    for (i, (y, s)) in demand.iter().zip(stocking).enumerate() {
        if y.len() <= steps {
            return Err(SimError::TooShort { series: i, len: y.len(), needed: steps + 1 });
        }
        if s.review_period == 0 {
            return Err(SimError::ReviewPeriod { series: i });
        }
        let lt_ok = s.lead_time_mean.is_finite() && s.lead_time_sd.is_finite();
        if !lt_ok || s.lead_time_mean < 0.0 || s.lead_time_sd < 0.0 {
            return Err(SimError::LeadTime { series: i });
        }
        if y.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(SimError::Demand { series: i });
        }
    }
    let mut states: Vec<State> = stocking
        .iter()
        .map(|s| State {
            on_hand: 0.0,
            on_order: 0.0,
            arrivals: vec![0.0; steps],
            rng: ChaCha8Rng::seed_from_u64(s.seed),
            cycle_open: false,
            cycle_lost: false,
            outcome: Outcome { periods: Vec::with_capacity(steps), tally: Tally { series: 1, ..Tally::default() } },
        })
        .collect();
    let mut levels: Vec<Option<Levels>> = vec![None; demand.len()];
    for step in 0..steps {
        let due = due(stocking, step);
        levels.iter_mut().for_each(|l| *l = None);
        if !due.is_empty() {
            let decided = decide(step, &due)?;
            if decided.len() != due.len() {
                return Err(SimError::Decisions { due: due.len(), got: decided.len() });
            }
            for (i, l) in due.iter().zip(decided) {
                levels[*i] = Some(l);
            }
        }
        for (i, st) in states.iter_mut().enumerate() {
            let s = &stocking[i];
            if step == 0
                && let Some(l) = levels[i]
            {
                warm_start(st, s, &l);
            }
            let index = demand[i].len() - steps + step;
            let d = demand[i][index];
            let on_hand_start = st.on_hand;
            let mut received = st.arrivals[step];
            st.on_order -= received;
            st.on_hand += received;
            let mut order_qty = 0;
            if let Some(l) = levels[i] {
                let t = &mut st.outcome.tally;
                if st.cycle_open {
                    t.cycles += 1;
                    t.cycles_met += usize::from(!st.cycle_lost);
                }
                (st.cycle_open, st.cycle_lost) = (true, false);
                let order = order_for(st.on_hand + st.on_order, l.reorder_point, l.order_up_to, s.moq, s.pack_size);
                if order.quantity > 0 {
                    order_qty = order.quantity;
                    t.orders += 1;
                    t.ordering_cost += s.order_cost;
                    let q = order.quantity as f64;
                    match draw_lead_time(&mut st.rng, s) {
                        0 => {
                            st.on_hand += q;
                            received += q;
                        }
                        lt => {
                            st.on_order += q;
                            if let Some(slot) = st.arrivals.get_mut(step + lt) {
                                *slot += q;
                            }
                        }
                    }
                }
            }
            let sales = d.min(st.on_hand).max(0.0);
            let lost = d - sales;
            st.on_hand -= sales;
            st.cycle_lost |= lost > 0.0;
            let t = &mut st.outcome.tally;
            t.periods += 1;
            t.demand += d;
            t.sales += sales;
            t.lost += lost;
            t.on_hand += st.on_hand;
            let value = money(st.on_hand) * s.unit_cost;
            t.value += value;
            t.holding_cost += value * s.holding_rate;
            st.outcome.periods.push(Period { index, demand: d, on_hand_start, order_qty, received, sales, lost });
        }
    }
    Ok(states
        .into_iter()
        .map(|mut st| {
            if st.cycle_open {
                st.outcome.tally.cycles += 1;
                st.outcome.tally.cycles_met += usize::from(!st.cycle_lost);
            }
            st.outcome
        })
        .collect())
}

/// As if the policy had run before: at each review before the replay it ordered the mean demand
/// of a review period (the lead-time demand per period, in whole units), each order with its own
/// lead-time draw; those not yet arrived are in the pipeline. The last of those reviews was one
/// review period before the first step, and its demand has been sold since, so on hand is the
/// order-up-to level less the pipeline and less that demand: the first review orders it back,
/// as every later one does. (Leaving it on hand would hold one review period's demand more than
/// the policy ever holds, for a lead time, whatever the policy: a share of every inventory the
/// replay reports that no policy earned.) Orders overtake one another as they do during the
/// replay, so the pipeline is as uncertain on the first day as later.
fn warm_start(st: &mut State, s: &Stocking, l: &Levels) {
    let ages = (s.lead_time_mean + 4.0 * s.lead_time_sd).ceil() as usize;
    let per_period = if s.lead_time_mean > 0.0 { l.lead_time_demand.max(0.0) / s.lead_time_mean } else { 0.0 };
    let review = s.review_period.max(1);
    let mut outstanding = 0.0;
    for age in (review..=ages).step_by(review) {
        // Whole units, the fractions carried: the orders up to `age` hold round(age · mean).
        let q = (per_period * age as f64).round() - (per_period * (age - review) as f64).round();
        // Placed `age` periods before the first step, it arrives at step `lead_time − age`.
        let lead_time = draw_lead_time(&mut st.rng, s);
        if q > 0.0 && lead_time >= age {
            outstanding += q;
            if let Some(slot) = st.arrivals.get_mut(lead_time - age) {
                *slot += q;
            }
        }
    }
    st.on_order = outstanding;
    st.on_hand = (l.order_up_to - outstanding - (per_period * review as f64).round()).max(0.0).round();
}

fn mean_sd(window: &[f64]) -> (f64, f64) {
    if window.is_empty() {
        return (0.0, 0.0);
    }
    let n = window.len() as f64;
    let mean = window.iter().sum::<f64>() / n;
    let var = if window.len() > 1 { window.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Baseline (a), min/max as common ERPs set it from average demand `d̄` over `window`: reorder at
/// a lead time's average demand (min = d̄·L), order up to twice that, and at least a review
/// period's demand above min.
pub fn min_max_levels(window: &[f64], s: &Stocking) -> Levels {
    let (mean, _) = mean_sd(window);
    let min = mean * s.lead_time_mean;
    let max = (2.0 * min).max(min + mean * s.review_period as f64);
    Levels { reorder_point: min, order_up_to: max, lead_time_demand: min }
}

/// Baseline (b), the textbook periodic-review policy: the mean `d̄` and sample standard deviation
/// `σ` of demand over `window`, protection interval P = L + R, and normal safety stock
/// `z·√(P·σ² + d̄²·σ_L²)` (negative for z below 0: the factor is what a tuning moves).
pub fn textbook_levels(window: &[f64], s: &Stocking, z: f64) -> Levels {
    let (mean, sd) = mean_sd(window);
    let p = s.lead_time_mean + s.review_period as f64;
    let spread = (p * sd * sd + mean * mean * s.lead_time_sd * s.lead_time_sd).sqrt();
    let order_up_to = (mean * p + z * spread).max(0.0);
    Levels { reorder_point: order_up_to, order_up_to, lead_time_demand: mean * s.lead_time_mean }
}

/// Replays `rule` with levels from a trailing `window` of periods before each review.
pub fn replay_with_window(
    demand: &[&[f64]],
    stocking: &[Stocking],
    steps: usize,
    window: usize,
    rule: &dyn Fn(&[f64], &Stocking) -> Levels,
) -> Result<Vec<Outcome>, SimError> {
    replay(demand, stocking, steps, &mut |step, due| {
        due.iter()
            .map(|&i| {
                let origin = demand[i].len() - steps + step;
                Ok(rule(&demand[i][origin.saturating_sub(window)..origin], &stocking[i]))
            })
            .collect()
    })
}

/// Pools the tallies of `outcomes`.
pub fn pooled<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Tally {
    let mut t = Tally::default();
    for o in outcomes {
        t.add(&o.tally);
    }
    t
}

/// Baseline (b) with the safety factor `z` that reaches `fill_rate` pooled over all series (as
/// near as a bisection over z in [−3, 5] gets), so inventories compare at equal service.
pub fn textbook_at_fill_rate(
    demand: &[&[f64]],
    stocking: &[Stocking],
    steps: usize,
    window: usize,
    fill_rate: f64,
) -> Result<(f64, Vec<Outcome>), SimError> {
    let run = |z: f64| replay_with_window(demand, stocking, steps, window, &|w, s| textbook_levels(w, s, z));
    let (mut lo, mut hi) = (-3.0f64, 5.0f64);
    let mut best: Option<(f64, f64, Vec<Outcome>)> = None;
    for _ in 0..30 {
        let mid = (lo + hi) / 2.0;
        let out = run(mid)?;
        let achieved = pooled(&out).fill_rate();
        let gap = (achieved - fill_rate).abs();
        if best.as_ref().is_none_or(|(g, _, _)| gap < *g) {
            best = Some((gap, mid, out));
        }
        if achieved < fill_rate {
            lo = mid
        } else {
            hi = mid
        }
        if hi - lo < 1e-4 {
            break;
        }
    }
    match best {
        Some((_, z, out)) => Ok((z, out)),
        None => Ok((lo, run(lo)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stocking(lead: f64) -> Stocking {
        Stocking {
            lead_time_mean: lead,
            lead_time_sd: 0.0,
            review_period: 1,
            moq: 0,
            pack_size: 0,
            unit_cost: Decimal::from(2),
            holding_rate: Decimal::new(1, 2),
            order_cost: Decimal::from(5),
            seed: 7,
        }
    }

    fn fixed(levels: Levels) -> impl FnMut(usize, &[usize]) -> Result<Vec<Levels>, SimError> {
        move |_, due| Ok(vec![levels; due.len()])
    }

    #[test]
    fn a_replay_by_hand() {
        // Lead time 2, order up to 10 at or below 10, lead-time demand 4: the orders of the two
        // periods before (2 each) arrive in the first two periods, and the last period's demand
        // (2) has been sold since the last review: on hand 10 − 4 − 2 = 4.
        let y = [9.0, 9.0, 3.0, 3.0, 8.0, 0.0];
        let lv = Levels { reorder_point: 10.0, order_up_to: 10.0, lead_time_demand: 4.0 };
        let out = replay(&[&y], &[stocking(2.0)], 4, &mut fixed(lv)).expect("replay");
        let p = &out[0].periods;
        // Step 0: 4 + 2 arrive = 6; position 6 + 2 on order = 8: order 2 (arrives at step 2);
        // sell 3 → 3.
        assert_eq!((p[0].on_hand_start, p[0].received, p[0].order_qty, p[0].sales), (4.0, 2.0, 2, 3.0));
        // Step 1: 3 + 2 = 5, position 7: order 3 (arrives at step 3); sell 3 → 2.
        assert_eq!((p[1].on_hand_start, p[1].received, p[1].order_qty, p[1].sales), (3.0, 2.0, 3, 3.0));
        // Step 2: 2 + 2 = 4, position 7: order 3 (arrives at step 4, past the end); demand 8:
        // sell 4, lose 4.
        assert_eq!((p[2].received, p[2].order_qty, p[2].sales, p[2].lost), (2.0, 3, 4.0, 4.0));
        // Step 3: 0 + 3 arrive, position 6: order 4; no demand → 3 on hand.
        assert_eq!((p[3].received, p[3].order_qty, p[3].sales), (3.0, 4, 0.0));
        let t = &out[0].tally;
        assert_eq!((t.demand, t.sales, t.lost, t.orders), (14.0, 10.0, 4.0, 4));
        assert!((t.fill_rate() - 10.0 / 14.0).abs() < 1e-12);
        // End-of-period on hand 3, 2, 0, 3: 8 unit-periods, 2 per period; one cycle of four lost.
        assert_eq!(t.on_hand, 8.0);
        assert_eq!(t.average_on_hand(), 2.0);
        assert_eq!((t.cycles, t.cycles_met), (4, 3));
        assert_eq!(t.ordering_cost, Decimal::from(20));
        assert_eq!(t.holding_cost, Decimal::new(16, 2), "8 unit-periods at 2.00 and 1 %");
    }

    #[test]
    fn a_warm_start_is_the_policy_s_steady_state() {
        // 10 a period, a lead time of 4, a review every 3 periods, up to 70 (the protection
        // interval's demand): the policy that had run before holds 10, 30 ordered 3 periods ago is
        // due at step 1, and the first review orders the 30 sold since. From the first step the
        // stock cycles as it always would: no unit lost, none held beyond the cycle.
        let y = vec![10.0; 40];
        let mut s = stocking(4.0);
        s.review_period = 3;
        let lv = Levels { reorder_point: 70.0, order_up_to: 70.0, lead_time_demand: 40.0 };
        let out = replay(&[&y], &[s], 30, &mut fixed(lv)).expect("replay");
        let p = &out[0].periods;
        assert_eq!((p[0].on_hand_start, p[0].order_qty, p[1].received), (10.0, 30, 30.0));
        let end: Vec<f64> = p.iter().map(|p| p.on_hand_start + p.received - p.sales).collect();
        let cycle = [0.0, 20.0, 10.0];
        assert!(end.iter().enumerate().all(|(k, v)| *v == cycle[k % 3]), "{end:?}");
        assert!(p.iter().enumerate().all(|(k, p)| p.lost == 0.0 && p.order_qty == if k % 3 == 0 { 30 } else { 0 }));
    }

    #[test]
    fn the_warm_start_pipeline_has_the_lead_times_spread() {
        // 10 a period over a lead time of 4 ± 1.5: the orders of the periods before the replay
        // arrive over the first steps with gaps and bunches, as later ones do; on hand plus the
        // pipeline is the order-up-to level less the last period's demand (no reorder above 0 and
        // no demand in the replay, so no new orders).
        let y = vec![0.0; 40];
        let mut s = stocking(4.0);
        s.lead_time_sd = 1.5;
        let lv = Levels { reorder_point: 0.0, order_up_to: 60.0, lead_time_demand: 40.0 };
        let out = replay(&[&y], &[s.clone()], 30, &mut fixed(lv)).expect("replay");
        let p = &out[0].periods;
        let pipeline: f64 = p.iter().map(|p| p.received).sum();
        assert!(p.iter().all(|p| p.order_qty == 0));
        assert!((p[0].on_hand_start + pipeline - 50.0).abs() < 1e-9, "{p:?}");
        // Some arrive later than the mean lead time (an even pipeline would be in by step 4).
        assert!(p.iter().skip(4).any(|p| p.received > 0.0), "{p:?}");
        // The same draws on the same seed.
        assert_eq!(replay(&[&y], &[s], 30, &mut fixed(lv)).expect("replay"), out);
    }

    #[test]
    fn packs_minimums_and_lead_times_of_zero() {
        let y = [0.0, 0.0, 5.0, 5.0, 5.0];
        let mut s = stocking(0.0);
        (s.pack_size, s.moq) = (4, 10);
        let lv = Levels { reorder_point: 2.0, order_up_to: 6.0, lead_time_demand: 0.0 };
        let out = replay(&[&y], &[s], 3, &mut fixed(lv)).expect("replay");
        let p = &out[0].periods;
        // Warm start on hand 6; sell 5 → 1; step 1: position 1 ≤ 2: order 5 → 12 (MOQ 10 in
        // packs of 4), arriving at once.
        assert_eq!((p[0].on_hand_start, p[0].order_qty), (6.0, 0));
        assert_eq!((p[1].order_qty, p[1].received, p[1].sales), (12, 12.0, 5.0));
        assert_eq!(p[2].on_hand_start, 8.0);
    }

    #[test]
    fn the_same_seed_gives_the_same_lead_times_whatever_else_runs() {
        let y: Vec<f64> = (0..60).map(|t| f64::from(t % 7)).collect();
        let mut s = stocking(3.0);
        s.lead_time_sd = 1.5;
        let lv = Levels { reorder_point: 20.0, order_up_to: 20.0, lead_time_demand: 9.0 };
        let a = replay(&[&y], std::slice::from_ref(&s), 40, &mut fixed(lv)).expect("replay");
        let b = replay(&[&y, &y], &[s.clone(), s], 40, &mut fixed(lv)).expect("replay");
        assert_eq!(a[0], b[0]);
        assert_eq!(b[0], b[1]);
    }

    #[test]
    fn bad_input_is_refused() {
        let y = [1.0, 2.0];
        let lv = Levels { reorder_point: 1.0, order_up_to: 1.0, lead_time_demand: 0.0 };
        assert!(matches!(replay(&[&y], &[stocking(1.0)], 2, &mut fixed(lv)), Err(SimError::TooShort { .. })));
        let mut s = stocking(1.0);
        s.review_period = 0;
        assert_eq!(replay(&[&y], &[s], 1, &mut fixed(lv)), Err(SimError::ReviewPeriod { series: 0 }));
        let bad = [1.0, f64::NAN, 1.0];
        assert_eq!(replay(&[&bad], &[stocking(1.0)], 1, &mut fixed(lv)), Err(SimError::Demand { series: 0 }));
        let mut wrong = |_: usize, _: &[usize]| Ok(vec![]);
        assert_eq!(replay(&[&y], &[stocking(1.0)], 1, &mut wrong), Err(SimError::Decisions { due: 1, got: 0 }));
    }

    #[test]
    fn baselines_by_hand() {
        let w = [4.0, 6.0, 4.0, 6.0];
        let s = stocking(3.0);
        // d̄ = 5: min 15, max 30.
        let a = min_max_levels(&w, &s);
        assert_eq!((a.reorder_point, a.order_up_to), (15.0, 30.0));
        // σ = √(4/3); P = 4: S = 20 + z·σ·2.
        let b = textbook_levels(&w, &s, 1.0);
        let want = 20.0 + (4.0f64 / 3.0).sqrt() * 2.0;
        assert!((b.order_up_to - want).abs() < 1e-4, "{b:?}");
    }

    #[test]
    fn the_textbook_baseline_is_tuned_to_a_fill_rate() {
        // A noisy but steady series: the tuned z reaches the asked fill rate closely.
        let y: Vec<f64> = (0..400).map(|t| f64::from((t * 7919 % 13) as u32)).collect();
        let mut s = stocking(2.0);
        s.lead_time_sd = 0.6;
        let (z, out) = textbook_at_fill_rate(&[&y], &[s], 300, 60, 0.95).expect("tuned");
        let fill = pooled(&out).fill_rate();
        assert!((fill - 0.95).abs() < 0.01, "z {z}: fill rate {fill}");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Stock never goes negative, sales never exceed demand, every unit is accounted for, and
        /// orders respect packs and minimums.
        #[test]
        fn stock_balances(
            y in proptest::collection::vec(0u32..50, 10..80),
            lead in 0.0f64..6.0, sd in 0.0f64..2.0, review in 1usize..5,
            moq in 0i64..30, pack in 0i64..8, up_to in 0.0f64..200.0, seed in any::<u64>(),
        ) {
            let y: Vec<f64> = y.into_iter().map(f64::from).collect();
            let s = Stocking {
                lead_time_mean: lead, lead_time_sd: sd, review_period: review, moq, pack_size: pack,
                unit_cost: Decimal::ONE, holding_rate: Decimal::ZERO, order_cost: Decimal::ZERO, seed,
            };
            let lv = Levels { reorder_point: up_to * 0.6, order_up_to: up_to, lead_time_demand: up_to * 0.3 };
            let steps = y.len() - 1;
            let out = replay(&[&y], &[s], steps, &mut |_, due| Ok(vec![lv; due.len()])).expect("replay");
            let mut on_hand = out[0].periods[0].on_hand_start;
            for p in &out[0].periods {
                prop_assert!((p.on_hand_start - on_hand).abs() < 1e-9);
                prop_assert!(p.sales >= 0.0 && p.sales <= p.demand && p.lost >= 0.0);
                prop_assert!((p.sales + p.lost - p.demand).abs() < 1e-9);
                on_hand = p.on_hand_start + p.received - p.sales;
                prop_assert!(on_hand >= 0.0);
                if p.order_qty > 0 {
                    prop_assert_eq!(p.order_qty % pack.max(1), 0);
                    prop_assert!(p.order_qty >= moq);
                }
            }
        }
    }
}
