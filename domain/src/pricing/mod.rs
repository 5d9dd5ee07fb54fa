//! Dynamic pricing. `elasticity` estimates how each SKU's demand responds to its price (with its
//! standard error and a confidence, borrowing strength from the category); `optimize` picks the
//! price that maximises expected gross profit over a horizon within the merchant's guardrails,
//! saying which constraint decided it; `sim` is a market with known demand curves to measure both.
//! Pure and deterministic.

use chrono::{Duration, NaiveDate};

pub mod elasticity;
pub mod optimize;
pub mod sim;

pub use elasticity::{Confidence, Day, DemandModel, Estimate, PriceResponse, Shortfall, estimate, shrink};
pub use optimize::{
    Binding, ConstantElasticity, Expected, GuardrailError, Guardrails, Recommendation, Response, Situation, keep,
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
/// enough to price on, the current price otherwise.
pub fn recommend(est: &Estimate, situation: &Situation, guardrails: &Guardrails) -> Recommendation {
    match est.usable() {
        Some(response) => optimise(situation, guardrails, &response),
        None => keep(situation),
    }
}
