//! The price that maximises expected gross profit over a horizon, within the merchant's
//! guardrails.
//!
//! Expected demand at the current price comes from the caller, day by day (a forecast, or the
//! demand model of the elasticity estimate); a [`Response`] scales it to another price. Sales are
//! capped by the stock that can be delivered (on hand plus inbound); with an end of season, only
//! the days before it sell and what is left then is worth its salvage value, so stock that would
//! not sell in time is marked down. The candidates are the prices within every guardrail on the
//! merchant's grid (a price ending such as .99, or steps of a quarter of a percent), and the
//! answer says which constraint decided it.

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};

use crate::types::as_f64 as f;

/// The merchant's guardrails for one SKU.
#[derive(Debug, Clone, PartialEq)]
pub struct Guardrails {
    /// Price ≥ unit cost × (1 + `min_margin`).
    pub min_margin: Decimal,
    /// The most one step moves the price, as a fraction of the current price.
    pub max_change_per_step: Decimal,
    /// Prices end in this fraction of a unit (0.99: 12.99, 13.99…); `None`: any cent.
    pub price_ending: Option<Decimal>,
    /// The lowest price the brand allows advertised.
    pub min_advertised_price: Option<Decimal>,
    /// The price changes only when that raises expected profit by at least this fraction: gains
    /// smaller than the estimates' uncertainty are noise, and every change costs the merchant.
    pub min_expected_gain: Decimal,
}

impl Default for Guardrails {
    fn default() -> Self {
        Self {
            min_margin: Decimal::ZERO,
            max_change_per_step: Decimal::new(10, 2),
            price_ending: None,
            min_advertised_price: None,
            min_expected_gain: Decimal::new(2, 2),
        }
    }
}

/// Why a price is invalid as a guardrail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardrailError {
    #[error("min_margin must be 0 or more, got {0}")]
    MinMargin(Decimal),
    #[error("max_change_per_step must be above 0 and at most 1, got {0}")]
    MaxChange(Decimal),
    #[error("price_ending must be at least 0 and below 1, got {0}")]
    PriceEnding(Decimal),
    #[error("min_advertised_price must be 0 or more, got {0}")]
    MinAdvertisedPrice(Decimal),
    #[error("min_expected_gain must be 0 or more, got {0}")]
    MinExpectedGain(Decimal),
}

impl Guardrails {
    pub fn validate(&self) -> Result<(), GuardrailError> {
        if self.min_margin < Decimal::ZERO {
            return Err(GuardrailError::MinMargin(self.min_margin));
        }
        if self.max_change_per_step <= Decimal::ZERO || self.max_change_per_step > Decimal::ONE {
            return Err(GuardrailError::MaxChange(self.max_change_per_step));
        }
        if let Some(e) = self.price_ending.filter(|e| *e < Decimal::ZERO || *e >= Decimal::ONE) {
            return Err(GuardrailError::PriceEnding(e));
        }
        if let Some(m) = self.min_advertised_price.filter(|m| *m < Decimal::ZERO) {
            return Err(GuardrailError::MinAdvertisedPrice(m));
        }
        if self.min_expected_gain < Decimal::ZERO {
            return Err(GuardrailError::MinExpectedGain(self.min_expected_gain));
        }
        Ok(())
    }
}

/// One SKU's position for the horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct Situation {
    pub current_price: Decimal,
    pub unit_cost: Decimal,
    /// Units that can be sold in the horizon: on hand plus inbound.
    pub stock: f64,
    /// Expected units per day at the current price, from the first day of the horizon.
    pub baseline: Vec<f64>,
    /// Days until the season ends (counted in `baseline`), after which what is left is worth
    /// `salvage_value` a unit.
    pub season_days: Option<usize>,
    pub salvage_value: Decimal,
}

/// How demand scales from the current price to another.
pub trait Response {
    /// Demand at `price` over demand at `current` (1 at the current price).
    fn multiplier(&self, current: f64, price: f64) -> f64;
}

/// Constant elasticity: demand ∝ price^elasticity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConstantElasticity(pub f64);

impl Response for ConstantElasticity {
    fn multiplier(&self, current: f64, price: f64) -> f64 {
        (price / current).powf(self.0)
    }
}

/// The constraint that decided a recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// The unconstrained best price on the grid.
    ProfitOptimum,
    /// The price would move further than one step allows.
    MaxChangePerStep,
    /// The price is held up by the minimum margin over cost.
    MinMargin,
    /// The price is held up by the minimum advertised price.
    MinAdvertisedPrice,
    /// Demand is held to the stock that can be delivered.
    Stock,
    /// Marked down to sell before the season ends.
    SeasonEnd,
    /// No price on the grid lies within the other guardrails.
    PriceEnding,
    /// The best price would not raise expected profit by the minimum expected gain: it stays.
    MinExpectedGain,
    /// No elasticity good enough to price on: the price stays.
    LowConfidence,
}

impl Binding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProfitOptimum => "profit_optimum",
            Self::MaxChangePerStep => "max_change_per_step",
            Self::MinMargin => "min_margin",
            Self::MinAdvertisedPrice => "min_advertised_price",
            Self::Stock => "stock",
            Self::SeasonEnd => "season_end",
            Self::PriceEnding => "price_ending",
            Self::MinExpectedGain => "min_expected_gain",
            Self::LowConfidence => "low_confidence",
        }
    }
}

/// Expected units sold and gross profit at one price over the horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    pub units: f64,
    /// (price − cost) × units, plus (salvage − cost) × units left at the end of the season.
    pub profit: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub price: Decimal,
    pub current: Expected,
    pub recommended: Expected,
    pub binding: Binding,
}

fn cents(d: Decimal) -> i64 {
    (d * Decimal::ONE_HUNDRED).round().to_i64().unwrap_or(0)
}

fn price_of(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

struct Model<'a> {
    s: &'a Situation,
    response: &'a dyn Response,
    current: f64,
    /// Expected demand at the current price over the days that sell.
    demand: f64,
}

impl Model<'_> {
    fn at(&self, price: f64) -> Expected {
        let cost = f(self.s.unit_cost);
        let units = (self.demand * self.response.multiplier(self.current, price).max(0.0)).min(self.s.stock.max(0.0));
        let mut profit = (price - cost) * units;
        if self.s.season_days.is_some() {
            profit += (f(self.s.salvage_value) - cost) * (self.s.stock.max(0.0) - units);
        }
        Expected { units, profit }
    }
}

/// Expected units and profit at the current price (no recommendation: low confidence).
pub fn keep(s: &Situation) -> Recommendation {
    let m = Model { s, response: &ConstantElasticity(0.0), current: f(s.current_price), demand: selling_demand(s) };
    let current = m.at(f(s.current_price));
    Recommendation { price: s.current_price, current, recommended: current, binding: Binding::LowConfidence }
}

/// The current price when there is no elasticity to price on, unless it is below the minimum
/// margin or the minimum advertised price: those are the merchant's hard limits, so the price
/// goes up to the lowest one allowed (on the grid), whatever demand does. Expected units at the
/// new price are then those at the current one (no response is known): an upper bound.
pub fn hold(s: &Situation, g: &Guardrails) -> Recommendation {
    let kept = keep(s);
    let (floor, binding) = floor_of(s, g);
    if cents(s.current_price) >= floor {
        return kept;
    }
    let price = price_of(first_at_or_above(floor, g.price_ending));
    let m = Model { s, response: &ConstantElasticity(0.0), current: f(s.current_price), demand: selling_demand(s) };
    Recommendation { price, current: kept.current, recommended: m.at(f(price)), binding }
}

/// The lowest price allowed, in cents (at least a cent), and which guardrail sets it.
fn floor_of(s: &Situation, g: &Guardrails) -> (i64, Binding) {
    let margin_floor =
        (s.unit_cost * (Decimal::ONE + g.min_margin) * Decimal::ONE_HUNDRED).ceil().to_i64().unwrap_or(0);
    let map_floor = g.min_advertised_price.map_or(0, |m| (m * Decimal::ONE_HUNDRED).ceil().to_i64().unwrap_or(0));
    let binding = if map_floor > margin_floor { Binding::MinAdvertisedPrice } else { Binding::MinMargin };
    (margin_floor.max(map_floor).max(1), binding)
}

fn selling_demand(s: &Situation) -> f64 {
    let days = s.season_days.map_or(s.baseline.len(), |d| d.min(s.baseline.len()));
    s.baseline[..days].iter().map(|d| d.max(0.0)).sum()
}

/// Prices on the grid within `[lo, hi]` cents, ascending.
fn grid(lo: i64, hi: i64, ending: Option<Decimal>, current: i64) -> Vec<i64> {
    if lo > hi {
        return Vec::new();
    }
    match ending {
        Some(e) => {
            let e = cents(e);
            let first = (lo - e).div_euclid(100) + i64::from((lo - e).rem_euclid(100) != 0);
            (first.max(0)..).map(|n| n * 100 + e).take_while(|p| *p <= hi).collect()
        }
        None => {
            let step = (current / 400).max(1);
            let mut out: Vec<i64> = (0..).map(|k| lo + k * step).take_while(|p| *p <= hi).collect();
            if out.last() != Some(&hi) {
                out.push(hi);
            }
            if (lo..=hi).contains(&current) {
                out.push(current);
                out.sort_unstable();
                out.dedup();
            }
            out
        }
    }
}

/// The smallest grid price at or above `floor` cents.
fn first_at_or_above(floor: i64, ending: Option<Decimal>) -> i64 {
    match ending {
        Some(e) => {
            let e = cents(e);
            let n = (floor - e).div_euclid(100) + i64::from((floor - e).rem_euclid(100) != 0);
            n.max(0) * 100 + e
        }
        None => floor,
    }
}

/// The best price within the guardrails; see the module.
pub fn optimise(s: &Situation, g: &Guardrails, response: &dyn Response) -> Recommendation {
    let p0 = cents(s.current_price);
    let model = Model { s, response, current: f(s.current_price), demand: selling_demand(s) };
    let current = model.at(f(s.current_price));
    let (floor, floor_binding) = floor_of(s, g);
    let step = s.current_price * g.max_change_per_step;
    let lo_step = (p0 - (step * Decimal::ONE_HUNDRED).floor().to_i64().unwrap_or(0)).max(1);
    let hi_step = p0 + (step * Decimal::ONE_HUNDRED).floor().to_i64().unwrap_or(0);
    let lo = lo_step.max(floor);
    let done = |price: i64, binding| {
        let recommended = model.at(price as f64 / 100.0);
        Recommendation { price: price_of(price), current, recommended, binding }
    };
    if floor > hi_step {
        // The floor wins over the step: the price may not stay below cost or the advertised minimum.
        return done(first_at_or_above(floor, g.price_ending), floor_binding);
    }
    let candidates = grid(lo, hi_step, g.price_ending, p0);
    let Some(best) = candidates.iter().copied().fold(None::<(i64, f64)>, |best, p| {
        let profit = model.at(p as f64 / 100.0).profit;
        match best {
            Some((b, bp)) if bp > profit + 1e-9 * bp.abs().max(1.0) => Some((b, bp)),
            Some((b, bp)) if (profit - bp).abs() <= 1e-9 * bp.abs().max(1.0) && (b - p0).abs() <= (p - p0).abs() => {
                Some((b, bp))
            }
            _ => Some((p, profit)),
        }
    }) else {
        return if (lo..=hi_step).contains(&p0) {
            done(p0, Binding::PriceEnding)
        } else {
            done(first_at_or_above(lo, g.price_ending), Binding::PriceEnding)
        };
    };
    let (price, profit) = best;
    let needed = current.profit + f(g.min_expected_gain) * current.profit.abs();
    if price != p0 && p0 >= floor && profit < needed {
        return done(p0, Binding::MinExpectedGain);
    }
    let beyond = |p: i64| model.at(p as f64 / 100.0).profit > profit + 1e-9 * profit.abs().max(1.0);
    let binding = if Some(&price) == candidates.last() && beyond(price + (price / 50).max(1)) {
        Binding::MaxChangePerStep
    } else if Some(&price) == candidates.first() && beyond(price - (price / 50).max(1)) {
        if lo == floor && floor > lo_step { floor_binding } else { Binding::MaxChangePerStep }
    } else if model.at(price as f64 * 0.98 / 100.0).units >= s.stock - 1e-9 {
        // A little lower and the stock would sell out: the price holds demand to the stock.
        Binding::Stock
    } else if s.season_days.is_some() && model.at(price as f64 / 100.0).units < s.stock - 0.5 {
        Binding::SeasonEnd
    } else {
        Binding::ProfitOptimum
    };
    done(price, binding)
}

/// `price` as a decimal with cents (for callers holding a float, e.g. the simulator).
pub fn to_price(price: f64) -> Decimal {
    Decimal::from_f64(price).unwrap_or_default().round_dp(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn situation(price: Decimal, cost: Decimal, stock: f64) -> Situation {
        Situation {
            current_price: price,
            unit_cost: cost,
            stock,
            baseline: vec![10.0; 28],
            season_days: None,
            salvage_value: Decimal::ZERO,
        }
    }

    #[test]
    fn with_ample_stock_the_optimum_is_the_closed_form() {
        // p* = c·e/(1+e): for e = −2.5 and c = 6, p* = 10.
        let g = Guardrails { max_change_per_step: Decimal::ONE, ..Guardrails::default() };
        for (e, cost, start) in [(-2.5, 6.0, 14.0), (-2.0, 5.0, 7.5), (-4.0, 30.0, 45.0), (-1.5, 2.0, 4.0)] {
            let s = situation(to_price(start), to_price(cost), f64::INFINITY);
            let r = optimise(&s, &g, &ConstantElasticity(e));
            let closed = cost * e / (1.0 + e);
            let step = (start / 400.0).max(0.01);
            assert!((f(r.price) - closed).abs() <= step + 0.005, "e={e}: {} vs {closed}", r.price);
            assert_eq!(r.binding, Binding::ProfitOptimum);
            assert!(r.recommended.profit >= r.current.profit);
        }
    }

    #[test]
    fn scarce_stock_raises_the_price_until_demand_meets_it() {
        let g = Guardrails { max_change_per_step: Decimal::new(50, 2), ..Guardrails::default() };
        // Optimum 10 with 280 units of demand there; only 150 in stock.
        let s = situation(Decimal::TEN, Decimal::new(6, 0), 150.0);
        let r = optimise(&s, &g, &ConstantElasticity(-2.5));
        assert!(r.price > Decimal::new(1200, 2), "{}", r.price);
        assert_eq!(r.binding, Binding::Stock);
        assert!((r.recommended.units - 150.0).abs() < 3.0, "{:?}", r.recommended);
    }

    #[test]
    fn excess_stock_before_the_season_ends_is_marked_down() {
        let g = Guardrails { max_change_per_step: Decimal::new(40, 2), ..Guardrails::default() };
        let mut s = situation(Decimal::TEN, Decimal::new(6, 0), 1000.0);
        s.season_days = Some(28);
        s.salvage_value = Decimal::ONE;
        let r = optimise(&s, &g, &ConstantElasticity(-2.5));
        assert!(r.price < Decimal::new(900, 2), "{}", r.price);
        assert!(r.recommended.units > r.current.units && r.recommended.profit > r.current.profit);
        // Without the season end the same stock keeps its value and the price stays at the optimum.
        s.season_days = None;
        assert_eq!(optimise(&s, &g, &ConstantElasticity(-2.5)).price, Decimal::TEN);
    }

    #[test]
    fn the_binding_guardrail_is_named() {
        let s = situation(Decimal::TEN, Decimal::new(2, 0), f64::INFINITY);
        // The optimum at e = −2.5 is 3.33; one 10 % step down reaches 9.00, and 9.99 is the
        // lowest .99 price within it.
        let g = Guardrails {
            price_ending: Some(Decimal::new(99, 2)),
            min_expected_gain: Decimal::ZERO,
            ..Guardrails::default()
        };
        let r = optimise(&s, &g, &ConstantElasticity(-2.5));
        assert_eq!((r.price, r.binding), (Decimal::new(999, 2), Binding::MaxChangePerStep));
        let g = Guardrails {
            min_margin: Decimal::new(400, 2),
            max_change_per_step: Decimal::ONE,
            min_expected_gain: Decimal::ZERO,
            ..Guardrails::default()
        };
        let r = optimise(&s, &g, &ConstantElasticity(-2.5));
        assert_eq!((r.price, r.binding), (Decimal::TEN, Binding::MinMargin));
        let g = Guardrails {
            min_advertised_price: Some(Decimal::new(950, 2)),
            max_change_per_step: Decimal::ONE,
            min_expected_gain: Decimal::ZERO,
            ..Guardrails::default()
        };
        let r = optimise(&s, &g, &ConstantElasticity(-2.5));
        assert_eq!((r.price, r.binding), (Decimal::new(950, 2), Binding::MinAdvertisedPrice));
        // A current price below the floor is raised to it, even past one step.
        let s = situation(Decimal::new(500, 2), Decimal::new(6, 0), f64::INFINITY);
        let r = optimise(&s, &Guardrails::default(), &ConstantElasticity(-2.5));
        assert_eq!((r.price, r.binding), (Decimal::new(600, 2), Binding::MinMargin));
    }

    #[test]
    fn a_small_expected_gain_leaves_the_price() {
        // At 10.20 against an optimum of 10.00 the gain is far below 2 %.
        let s = situation(Decimal::new(1020, 2), Decimal::new(6, 0), f64::INFINITY);
        let r = optimise(&s, &Guardrails::default(), &ConstantElasticity(-2.5));
        assert_eq!((r.price, r.binding), (Decimal::new(1020, 2), Binding::MinExpectedGain));
        let g = Guardrails { min_expected_gain: Decimal::ZERO, ..Guardrails::default() };
        let r = optimise(&s, &g, &ConstantElasticity(-2.5));
        assert!(r.price < Decimal::new(1010, 2) && r.recommended.profit > r.current.profit, "{r:?}");
    }

    #[test]
    fn low_confidence_keeps_the_price() {
        let s = situation(Decimal::TEN, Decimal::new(6, 0), 100.0);
        let r = keep(&s);
        assert_eq!((r.price, r.binding), (Decimal::TEN, Binding::LowConfidence));
        assert_eq!(r.current.units, 100.0);
        assert_eq!(r.current.profit, 400.0);
    }

    proptest! {
        #[test]
        fn recommendations_respect_every_guardrail(
            price in 100i64..50_000,
            cost_share in 0.1f64..0.9,
            margin in 0u32..50,
            change in 1u32..50,
            ending in prop::option::of(0u32..100),
            map_share in prop::option::of(0.5f64..1.2),
            elasticity in -6.0f64..-0.2,
            stock in prop::option::of(0.0f64..1000.0),
            season in prop::option::of(1usize..28),
            gain in 0u32..10,
        ) {
            let current = Decimal::new(price, 2);
            let cost = to_price(f(current) * cost_share);
            let g = Guardrails {
                min_margin: Decimal::new(i64::from(margin), 2),
                max_change_per_step: Decimal::new(i64::from(change), 2),
                price_ending: ending.map(|e| Decimal::new(i64::from(e), 2)),
                min_advertised_price: map_share.map(|m| to_price(f(current) * m)),
                min_expected_gain: Decimal::new(i64::from(gain), 2),
            };
            // Unlimited stock only without a season end (where every unit left would be salvaged).
            let stock = if season.is_some() { stock.unwrap_or(500.0) } else { stock.unwrap_or(f64::INFINITY) };
            let mut s = situation(current, cost, stock);
            s.season_days = season;
            let r = optimise(&s, &g, &ConstantElasticity(elasticity));
            let floor = (cost * (Decimal::ONE + g.min_margin)).max(g.min_advertised_price.unwrap_or_default());
            // Margin and advertised minimum always hold.
            prop_assert!(r.price >= floor.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToPositiveInfinity));
            if let Some(e) = g.price_ending && r.binding != Binding::PriceEnding && r.price != current {
                prop_assert_eq!(r.price.fract(), e);
            }
            // The lowest price allowed on the grid: the floor in whole cents, then up to the ending.
            let floor_cents = (floor * Decimal::ONE_HUNDRED).ceil();
            let grid_floor = match g.price_ending {
                Some(e) => {
                    let e = e * Decimal::ONE_HUNDRED;
                    (((floor_cents - e) / Decimal::ONE_HUNDRED).ceil() * Decimal::ONE_HUNDRED + e) / Decimal::ONE_HUNDRED
                }
                None => floor_cents / Decimal::ONE_HUNDRED,
            };
            // The step holds whenever the floor leaves room for it on the grid.
            if grid_floor <= current * (Decimal::ONE + g.max_change_per_step) && r.binding != Binding::PriceEnding {
                prop_assert!((r.price - current).abs() <= current * g.max_change_per_step + Decimal::new(1, 2));
                // The current price is a candidate when it lies on the grid and above the floor:
                // the recommendation then never expects less profit.
                let on_grid = g.price_ending.is_none_or(|e| current.fract() == e);
                if on_grid && current >= floor {
                    prop_assert!(r.recommended.profit >= r.current.profit - 1e-6 * r.current.profit.abs().max(1.0));
                }
                // A change is worth at least the minimum expected gain.
                if r.price != current && current >= floor {
                    let needed = r.current.profit + f(g.min_expected_gain) * r.current.profit.abs();
                    prop_assert!(r.recommended.profit >= needed - 1e-6 * needed.abs().max(1.0));
                }
            }
        }
    }
}
