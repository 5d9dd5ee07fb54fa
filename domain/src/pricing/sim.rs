//! A market whose demand curves are known, to measure pricing against the truth.
//!
//! Each SKU has a true curve — constant elasticity or linear, with the given elasticity at its
//! reference price — times weekly and yearly seasonality, a trend, a promotion lift and
//! overdispersed Poisson noise. Its history has the price variation merchants' data has (regular
//! price changes, promotions at a discount, a few SKUs whose price never moved) and stockout
//! days whose sales are cut short. Its reference price is the true profit-maximising price,
//! and its current price is off it by up to a quarter.
//!
//! Scenarios set the stock for the horizon against the expected demand at the current price:
//! `Normal` 1.3×, `Scarce` 0.5×, `Excess` 2× with the season ending at the end of the horizon and
//! what is left salvaged at 30 % of cost. [`play`] runs a pricing policy over the horizon, a price
//! per step, on demand drawn from the same random numbers whatever the policy, so policies differ
//! only by their prices.

use chrono::{Datelike, Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

use super::elasticity::Day;
use super::optimize::{Guardrails, Response, to_price};
use crate::sampling::standard_normal;
use crate::types::as_f64 as f;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Curve {
    ConstantElasticity,
    Linear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    Excess,
    Scarce,
    Normal,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::Excess, Scenario::Scarce, Scenario::Normal];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Excess => "excess stock",
            Self::Scarce => "scarce stock",
            Self::Normal => "normal",
        }
    }
}

/// One simulated SKU: its true demand and what a merchant would know of it.
#[derive(Debug, Clone)]
pub struct Sku {
    pub id: String,
    pub category: String,
    pub curve: Curve,
    pub scenario: Scenario,
    /// The true elasticity at the reference price.
    pub elasticity: f64,
    pub reference_price: f64,
    pub unit_cost: Decimal,
    /// Whether the history's price ever moved.
    pub varied: bool,
    pub history: Vec<Day>,
    pub current_price: Decimal,
    pub stock: f64,
    /// Days of the horizon before the season ends.
    pub season_days: Option<usize>,
    pub salvage_value: Decimal,
    base: f64,
    weekly: [f64; 7],
    yearly: (f64, f64),
    trend: f64,
    promo_lift: f64,
    noise: f64,
    seed: u64,
}

/// The truth of a SKU's curve as a [`Response`], for the oracle.
pub struct TrueResponse<'a>(pub &'a Sku);

impl Response for TrueResponse<'_> {
    fn multiplier(&self, current: f64, price: f64) -> f64 {
        let at = self.0.curve_at(current);
        if at <= 0.0 { 0.0 } else { self.0.curve_at(price) / at }
    }
}

impl Sku {
    /// Demand at `price` relative to demand at the reference price.
    pub fn curve_at(&self, price: f64) -> f64 {
        let r = price / self.reference_price;
        match self.curve {
            Curve::ConstantElasticity => r.powf(self.elasticity),
            Curve::Linear => (1.0 + self.elasticity * (r - 1.0)).max(0.0),
        }
    }

    /// The true (point) elasticity at `price`.
    pub fn elasticity_at(&self, price: f64) -> f64 {
        let r = price / self.reference_price;
        match self.curve {
            Curve::ConstantElasticity => self.elasticity,
            Curve::Linear => {
                let level = 1.0 + self.elasticity * (r - 1.0);
                if level <= 0.0 { f64::NEG_INFINITY } else { self.elasticity * r / level }
            }
        }
    }

    /// Expected units on `date` at `price` (no noise).
    pub fn mean(&self, date: NaiveDate, price: f64, promo: bool) -> f64 {
        let (amplitude, phase) = self.yearly;
        let angle = 2.0 * std::f64::consts::PI * f64::from(date.ordinal0()) / 365.25 + phase;
        let years = (date - self.start()).num_days() as f64 / 365.25;
        self.base
            * self.weekly[date.weekday().num_days_from_monday() as usize]
            * (1.0 + amplitude * angle.sin())
            * (1.0 + self.trend * years).max(0.1)
            * self.curve_at(price)
            * if promo { self.promo_lift } else { 1.0 }
    }

    /// The first day of the horizon (the day after the history).
    pub fn start(&self) -> NaiveDate {
        self.history.last().map_or(NaiveDate::MIN, |d| d.date) + Duration::days(1)
    }
}

/// The market: SKUs, the horizon in days and how often the price may change.
#[derive(Debug, Clone)]
pub struct Market {
    pub skus: Vec<Sku>,
    pub horizon: usize,
    pub step: usize,
    pub guardrails: Guardrails,
}

/// Days of history before the horizon.
pub const HISTORY_DAYS: usize = 730;

/// `n` SKUs in twelve categories, the scenarios in turn, half of each curve kind; deterministic
/// for a seed.
pub fn market(n: usize, seed: u64) -> Market {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let categories: Vec<f64> = (0..12).map(|_| rng.random_range(-3.0..-1.4)).collect();
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or(NaiveDate::MIN);
    let horizon = 56;
    let guardrails = Guardrails {
        min_margin: Decimal::new(10, 2),
        max_change_per_step: Decimal::new(15, 2),
        price_ending: Some(Decimal::new(99, 2)),
        min_advertised_price: None,
        min_expected_gain: Decimal::new(2, 2),
    };
    let skus = (0..n)
        .map(|i| {
            let category = i % categories.len();
            let elasticity = (categories[category] + 0.25 * standard_normal(&mut rng)).clamp(-5.0, -1.15);
            let reference_price = (rng.random_range(8f64.ln()..150f64.ln())).exp();
            let unit_cost = to_price(reference_price * (1.0 + elasticity) / elasticity);
            let weekday: [f64; 7] = [1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.2];
            let mut sku = Sku {
                id: format!("SKU-{i:04}"),
                category: format!("C{category:02}"),
                curve: if (i / 3) % 2 == 0 { Curve::ConstantElasticity } else { Curve::Linear },
                scenario: Scenario::ALL[i % 3],
                elasticity,
                reference_price,
                unit_cost,
                varied: i % 20 != 19,
                history: Vec::new(),
                current_price: Decimal::ZERO,
                stock: 0.0,
                season_days: None,
                salvage_value: Decimal::ZERO,
                base: rng.random_range(0.3f64.ln()..40f64.ln()).exp(),
                weekly: weekday.map(|w| w * rng.random_range(0.9..1.1)),
                yearly: (rng.random_range(0.0..0.3), rng.random_range(0.0..std::f64::consts::TAU)),
                trend: rng.random_range(-0.15..0.15),
                promo_lift: (0.15 + 0.1 * standard_normal(&mut rng)).exp(),
                noise: 0.2,
                seed: rng.random(),
            };
            let ending = |p: f64| to_price(p.floor().max(1.0) - 0.01);
            let current = ending(reference_price * rng.random_range(0.8..1.25)).max(to_price(reference_price * 0.5));
            let mut regular = if sku.varied { ending(reference_price * rng.random_range(0.8..1.2)) } else { current };
            let mut next_change = rng.random_range(21..90);
            let (mut promo_left, mut promo_depth, mut out_left) = (0usize, 0.0, 0usize);
            for t in 0..HISTORY_DAYS {
                let date = start + Duration::days(t as i64);
                if sku.varied {
                    if t == next_change {
                        regular = ending(reference_price * rng.random_range(0.8..1.2));
                        next_change += rng.random_range(21..90);
                    }
                    if t + 60 >= HISTORY_DAYS {
                        regular = current;
                    }
                    if promo_left == 0 && rng.random_bool(1.0 / 60.0) {
                        promo_left = rng.random_range(3..8);
                        promo_depth = rng.random_range(0.1..0.3);
                    }
                }
                if out_left == 0 && rng.random_bool(1.0 / 120.0) {
                    out_left = rng.random_range(2..7);
                }
                let promo = promo_left > 0;
                let price = if promo { to_price(f(regular) * (1.0 - promo_depth)) } else { regular };
                sku.history.push(Day { date, quantity: 0.0, price, promo, stockout: out_left > 0 });
                promo_left = promo_left.saturating_sub(1);
                out_left = out_left.saturating_sub(1);
            }
            // Draw the history's demand now that the SKU's start is known.
            for t in 0..HISTORY_DAYS {
                let d = &sku.history[t];
                let mean = sku.mean(d.date, f(d.price), d.promo) * noise_factor(&mut rng, sku.noise);
                let demand = f64::from(crate::sampling::poisson(&mut rng, mean));
                let cut = if d.stockout { rng.random_range(0.0..0.6) } else { 1.0 };
                sku.history[t].quantity = (demand * cut).floor();
            }
            sku.current_price = current;
            let first = sku.start();
            let expected: f64 =
                (0..horizon).map(|t| sku.mean(first + Duration::days(t as i64), f(current), false)).sum();
            let (stock, season) = match sku.scenario {
                Scenario::Normal => (1.3 * expected, None),
                Scenario::Scarce => (0.5 * expected, None),
                Scenario::Excess => (2.0 * expected, Some(horizon)),
            };
            sku.stock = stock.round();
            sku.season_days = season;
            if season.is_some() {
                sku.salvage_value = to_price(f(unit_cost) * 0.3);
            }
            sku
        })
        .collect();
    Market { skus, horizon, step: 7, guardrails }
}

/// A mean-one lognormal multiplier: day-to-day swings beyond Poisson noise.
fn noise_factor(rng: &mut impl Rng, sd: f64) -> f64 {
    (sd * standard_normal(rng) - sd * sd / 2.0).exp()
}

/// What a policy sees at the start of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct View<'a> {
    /// Days into the horizon.
    pub day: usize,
    pub date: NaiveDate,
    /// The price in force until now.
    pub price: Decimal,
    pub stock: f64,
    /// Units sold on each day of the horizon so far.
    pub sales: &'a [f64],
    /// Days left before the season ends, if it does within the horizon.
    pub season_days: Option<usize>,
}

/// What a policy realised over the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Played {
    pub units: f64,
    pub revenue: f64,
    /// (price − cost) × units, plus (salvage − cost) × what is left when the season ends.
    pub profit: f64,
}

/// Runs `policy` on one SKU over the market's horizon: it sets the price at each step; demand is
/// drawn from the SKU's own random numbers (the same for every policy).
pub fn play(market: &Market, sku: &Sku, policy: &mut dyn FnMut(&Sku, &View<'_>) -> Decimal) -> Played {
    let mut rng = ChaCha8Rng::seed_from_u64(sku.seed);
    let draws: Vec<(f64, f64)> =
        (0..market.horizon).map(|_| (noise_factor(&mut rng, sku.noise), rng.random::<f64>())).collect();
    let cost = f(sku.unit_cost);
    let mut stock = sku.stock;
    let mut price = sku.current_price;
    let mut sales = Vec::with_capacity(market.horizon);
    let mut out = Played::default();
    let start = sku.start();
    for (t, (factor, u)) in draws.into_iter().enumerate() {
        let date = start + Duration::days(t as i64);
        if t % market.step.max(1) == 0 {
            let view = View {
                day: t,
                date,
                price,
                stock,
                sales: &sales,
                season_days: sku.season_days.map(|d| d.saturating_sub(t)),
            };
            price = policy(sku, &view);
        }
        let p = f(price);
        let demand = poisson_at(sku.mean(date, p, false) * factor, u);
        let sold = demand.min(stock);
        stock -= sold;
        sales.push(sold);
        out.units += sold;
        out.revenue += p * sold;
        out.profit += (p - cost) * sold;
    }
    if sku.season_days.is_some() {
        out.profit += (f(sku.salvage_value) - cost) * stock;
    }
    out
}

/// The Poisson count at cumulative probability `u` (the inverse distribution function), so the
/// same `u` gives monotone counts in the mean: common random numbers across policies.
fn poisson_at(mean: f64, u: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean > 400.0 {
        return (mean + mean.sqrt() * crate::forecast::engine::normal_quantile(u)).round().max(0.0);
    }
    let mut p = (-mean).exp();
    let mut cdf = p;
    let mut k = 0.0;
    while cdf < u && k < 10.0 * mean + 50.0 {
        k += 1.0;
        p *= mean / k;
        cdf += p;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_market_is_deterministic_and_shaped_as_described() {
        let a = market(30, 7);
        let b = market(30, 7);
        assert_eq!(a.skus.len(), 30);
        for (x, y) in a.skus.iter().zip(&b.skus) {
            assert_eq!((x.current_price, x.stock, &x.history), (y.current_price, y.stock, &y.history));
        }
        let sku = &a.skus[0];
        assert_eq!(sku.history.len(), HISTORY_DAYS);
        assert!(sku.history.iter().any(|d| d.promo) && sku.history.iter().any(|d| d.stockout));
        assert!(!a.skus[19].varied && a.skus[19].history.iter().all(|d| d.price == a.skus[19].current_price));
        // The reference price is the true optimum: a little either side earns less.
        for sku in &a.skus {
            let profit = |p: f64| (p - f(sku.unit_cost)) * sku.curve_at(p);
            let r = sku.reference_price;
            assert!(profit(r) > profit(r * 1.02) && profit(r) > profit(r * 0.98), "{}", sku.id);
        }
    }

    #[test]
    fn policies_face_the_same_demand() {
        let m = market(6, 3);
        let sku = &m.skus[2];
        let a = play(&m, sku, &mut |s, _| s.current_price);
        let b = play(&m, sku, &mut |s, _| s.current_price);
        assert_eq!(a, b);
        // A higher price sells no more, on the same draws.
        let c = play(&m, sku, &mut |s, _| s.current_price * Decimal::new(12, 1));
        assert!(c.units <= a.units);
    }

    #[test]
    fn poisson_at_inverts_the_distribution() {
        assert_eq!(poisson_at(1.0, 0.3), 0.0);
        assert_eq!(poisson_at(1.0, 0.5), 1.0);
        assert_eq!(poisson_at(0.0, 0.9), 0.0);
        let mean: f64 = (0..1000).map(|i| poisson_at(4.0, (f64::from(i) + 0.5) / 1000.0)).sum::<f64>() / 1000.0;
        assert!((mean - 4.0).abs() < 0.05, "{mean}");
    }
}
