//! Dynamic pricing. `elasticity` estimates how each SKU's demand responds to its price (with its
//! standard error and a confidence, borrowing strength from the category); `optimize` picks the
//! price that maximises expected gross profit over a horizon within the merchant's guardrails,
//! saying which constraint decided it; `sim` is a market with known demand curves to measure both.
//! Pure and deterministic.

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;

use crate::types::as_f64;

pub mod elasticity;
pub mod optimize;
pub mod sim;

pub use elasticity::{Confidence, Day, DemandModel, Estimate, PriceResponse, Shortfall, estimate, shrink};
pub use optimize::{
    Binding, ConstantElasticity, Expected, GuardrailError, Guardrails, Recommendation, Response, Situation, hold, keep,
    optimise, to_price,
};

/// Expected units per day at `price` for `days` days from `start`, from an estimate's demand
/// model at its final (shrunk) elasticity; `None` without a model.
pub fn baseline(est: &Estimate, start: NaiveDate, days: usize, price: f64) -> Option<Vec<f64>> {
    let model = est.model.as_ref()?;
    let e = est.elasticity.unwrap_or(0.0);
    Some((0..days).map(|t| model.expected_with(start + Duration::days(t as i64), price, e)).collect())
}

/// The recommendation for one SKU: the profit-maximising price when its elasticity is good
/// enough to price on, the current price otherwise (raised to the floor when below it).
pub fn recommend(est: &Estimate, situation: &Situation, guardrails: &Guardrails) -> Recommendation {
    match est.usable() {
        Some(response) => optimise(situation, guardrails, &response),
        None => hold(situation, guardrails),
    }
}

/// The most days a recommendation looks ahead (the horizon, or the season's end).
pub const MAX_DAYS: usize = 366;

/// One SKU's position, beside its history and estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub current_price: Decimal,
    pub unit_cost: Decimal,
    /// Units that can be sold: available on hand plus inbound.
    pub stock: f64,
    /// What a unit left at the end of the season is worth.
    pub salvage_value: Decimal,
    pub season_end: Option<NaiveDate>,
}

/// Where the expected demand at the current price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineSource {
    /// The demand forecast (extended by the demand model past its horizon).
    Forecast,
    /// The elasticity estimate's demand model (trend, weekday, season, at the current price).
    DemandModel,
    /// The mean of the last four weeks (too little history for a model).
    RecentMean,
}

impl BaselineSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forecast => "forecast",
            Self::DemandModel => "demand_model",
            Self::RecentMean => "recent_mean",
        }
    }
}

/// A SKU priced: the recommendation, why in a word (the binding constraint, or
/// `low_confidence: ` and the estimate's shortfall), over how many days, from which baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Priced {
    pub recommendation: Recommendation,
    pub reason: String,
    pub days: usize,
    pub baseline: BaselineSource,
}

/// Prices one SKU from `start` for `horizon` days (to the season's end when that is later, at
/// most [`MAX_DAYS`]). Expected demand at the current price is `forecast` (units a day from
/// `start`) where given, else the estimate's demand model, else the recent daily mean.
pub fn price_sku(
    est: &Estimate,
    history: &[Day],
    position: &Position,
    start: NaiveDate,
    horizon: usize,
    forecast: Option<&[f64]>,
    guardrails: &Guardrails,
) -> Priced {
    let season_days = position.season_end.map(|end| usize::try_from((end - start).num_days() + 1).unwrap_or(0));
    let days = season_days.map_or(horizon, |d| d.clamp(horizon, MAX_DAYS)).max(1);
    let modelled = baseline(est, start, days, as_f64(position.current_price));
    let (baseline, source) = match (forecast.filter(|f| !f.is_empty()), modelled) {
        (Some(f), modelled) => {
            let mut out: Vec<f64> = f.iter().take(days).map(|d| d.max(0.0)).collect();
            let tail = &f[f.len().saturating_sub(7)..];
            let tail_mean = tail.iter().sum::<f64>() / tail.len() as f64;
            while out.len() < days {
                out.push(modelled.as_ref().map_or(tail_mean, |m| m[out.len()]));
            }
            (out, BaselineSource::Forecast)
        }
        (None, Some(m)) => (m, BaselineSource::DemandModel),
        (None, None) => {
            let recent: Vec<f64> = history.iter().rev().filter(|d| !d.stockout).take(28).map(|d| d.quantity).collect();
            (vec![recent.iter().sum::<f64>() / recent.len().max(1) as f64; days], BaselineSource::RecentMean)
        }
    };
    let situation = Situation {
        current_price: position.current_price,
        unit_cost: position.unit_cost,
        stock: position.stock.max(0.0),
        baseline,
        season_days,
        salvage_value: position.salvage_value,
    };
    let recommendation = recommend(est, &situation, guardrails);
    let reason = match (&est.shortfall, recommendation.binding) {
        (Some(why), Binding::LowConfidence) => format!("low_confidence: {}", why.describe()),
        (_, binding) => binding.as_str().to_owned(),
    };
    Priced { recommendation, reason, days, baseline: source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(days: usize, price: impl Fn(usize) -> Decimal, units: impl Fn(usize) -> f64) -> Vec<Day> {
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
        (0..days)
            .map(|t| Day {
                date: start + Duration::days(t as i64),
                quantity: units(t),
                price: price(t),
                promo: false,
                stockout: false,
            })
            .collect()
    }

    fn position(price: Decimal) -> Position {
        Position {
            current_price: price,
            unit_cost: Decimal::new(5, 0),
            stock: 1e9,
            salvage_value: Decimal::ZERO,
            season_end: None,
        }
    }

    #[test]
    fn a_forecast_is_the_baseline_and_the_model_carries_it_past_its_end() {
        // Demand halves when the price doubles (elasticity -1) around 10 units a day at 10.
        let h = history(
            200,
            |t| if t % 14 < 7 { Decimal::new(10, 0) } else { Decimal::new(12, 0) },
            |t| if t % 14 < 7 { 10.0 } else { 10.0 * (10.0f64 / 12.0).powf(1.0) },
        );
        let est = estimate(&h);
        let start = h.last().map(|d| d.date + Duration::days(1)).expect("history");
        let p = position(Decimal::new(10, 0));
        let forecast = [20.0; 7];
        let with = price_sku(&est, &h, &p, start, 28, Some(&forecast), &Guardrails::default());
        let without = price_sku(&est, &h, &p, start, 28, None, &Guardrails::default());
        assert_eq!(with.baseline, BaselineSource::Forecast);
        assert_eq!(without.baseline, BaselineSource::DemandModel);
        assert_eq!(with.days, 28);
        // 7 forecast days at 20 and 21 model days at about 10.
        let expected = 7.0 * 20.0 + 21.0 * 10.0;
        assert!((with.recommendation.current.units - expected).abs() < 10.0, "{:?}", with.recommendation.current);
        assert!((without.recommendation.current.units - 280.0).abs() < 10.0, "{:?}", without.recommendation.current);
    }

    #[test]
    fn without_price_variation_the_price_stays_and_says_why() {
        let h = history(200, |_| Decimal::new(10, 0), |t| (t % 5) as f64);
        let est = estimate(&h);
        let start = h.last().map(|d| d.date + Duration::days(1)).expect("history");
        let priced = price_sku(&est, &h, &position(Decimal::new(10, 0)), start, 28, None, &Guardrails::default());
        assert_eq!(priced.recommendation.price, Decimal::new(10, 0));
        assert_eq!(priced.recommendation.binding, Binding::LowConfidence);
        assert!(priced.reason.starts_with("low_confidence: too little price variation"), "{}", priced.reason);
    }

    #[test]
    fn without_an_elasticity_a_price_below_the_floor_still_rises_to_it() {
        let h = history(200, |_| Decimal::new(10, 0), |t| (t % 5) as f64);
        let est = estimate(&h);
        let start = h.last().map(|d| d.date + Duration::days(1)).expect("history");
        let mut p = position(Decimal::new(10, 0));
        p.unit_cost = Decimal::new(9, 0);
        let g = Guardrails {
            min_margin: Decimal::new(2, 1),
            price_ending: Some(Decimal::new(99, 2)),
            ..Guardrails::default()
        };
        let priced = price_sku(&est, &h, &p, start, 28, None, &g);
        // 9 × 1.2 = 10.80: the first .99 price at or above it.
        assert_eq!(priced.recommendation.price, Decimal::new(1099, 2));
        assert_eq!(priced.recommendation.binding, Binding::MinMargin);
        assert_eq!(priced.reason, "min_margin");
        let map = Guardrails { min_advertised_price: Some(Decimal::new(12, 0)), ..Guardrails::default() };
        let priced = price_sku(&est, &h, &position(Decimal::new(10, 0)), start, 28, None, &map);
        assert_eq!(
            (priced.recommendation.price, priced.recommendation.binding),
            (Decimal::new(12, 0), Binding::MinAdvertisedPrice)
        );
    }

    #[test]
    fn a_season_end_after_the_horizon_lengthens_it() {
        let h = history(10, |_| Decimal::new(10, 0), |_| 1.0);
        let est = estimate(&h);
        let start = h.last().map(|d| d.date + Duration::days(1)).expect("history");
        let mut p = position(Decimal::new(10, 0));
        p.season_end = Some(start + Duration::days(59));
        let priced = price_sku(&est, &h, &p, start, 28, None, &Guardrails::default());
        assert_eq!(priced.days, 60);
        assert_eq!(priced.baseline, BaselineSource::RecentMean);
        assert!((priced.recommendation.current.units - 60.0).abs() < 1e-9);
    }
}
