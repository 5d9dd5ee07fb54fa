//! What replenishment and alerts need from a forecast: the demand over a lead time as a
//! distribution, and when projected stock runs out.

use super::engine::{normal_quantile, poisson_quantile};

/// Period `t` of a per-period forecast, its last period repeating beyond it (0 when empty).
pub fn at_or_last(v: &[f64], t: usize) -> f64 {
    v.get(t.min(v.len().saturating_sub(1))).copied().unwrap_or(0.0)
}

/// Each period's standard deviation of demand read off its `lower`–`upper` quantile band (levels
/// `band`) as a normal's: the band's width over the width of the same band of a standard normal.
pub fn sd_from_band(lower: &[f64], upper: &[f64], band: (f64, f64)) -> Vec<f64> {
    let width = normal_quantile(band.1) - normal_quantile(band.0);
    if width <= 0.0 {
        return vec![0.0; lower.len().min(upper.len())];
    }
    lower.iter().zip(upper).map(|(lo, hi)| ((hi - lo) / width).max(0.0)).collect()
}

/// The `tau` quantile of total demand over the first `periods` forecast periods.
///
/// Regular demand: the summed point forecast plus a normal spread, each period's standard
/// deviation read off its `lower`–`upper` quantile band (levels `band`), periods independent.
/// Sporadic demand: a Poisson count with the summed mean, since a few units either come or not.
/// `periods` beyond the forecast repeat its last period.
pub fn lead_time_quantile(
    point: &[f64],
    lower: &[f64],
    upper: &[f64],
    band: (f64, f64),
    periods: usize,
    sporadic: bool,
    tau: f64,
) -> f64 {
    if point.is_empty() || periods == 0 {
        return 0.0;
    }
    let at = at_or_last;
    let mean: f64 = (0..periods).map(|t| at(point, t).max(0.0)).sum();
    if sporadic {
        return poisson_quantile(mean, tau);
    }
    let sd = sd_from_band(lower, upper, band);
    let variance: f64 = (0..periods).map(|t| at(&sd, t).powi(2)).sum();
    (mean + normal_quantile(tau) * variance.sqrt()).max(0.0)
}

/// The first period (0-based) after which projected stock is below zero: `available` now, plus
/// `receipts[t]` arriving in period t, minus `demand[t]`. `None` when it lasts the whole forecast.
pub fn first_stockout(available: f64, receipts: &[f64], demand: &[f64]) -> Option<usize> {
    let mut stock = available;
    for (t, d) in demand.iter().enumerate() {
        stock += receipts.get(t).copied().unwrap_or(0.0) - d.max(0.0);
        if stock < 0.0 {
            return Some(t);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_time_demand_of_regular_demand_is_the_sum_plus_a_normal_spread() {
        // 10 a day, band 0.1–0.9 of ±2.5631 (sd 1): over 4 days mean 40, sd 2.
        let z = normal_quantile(0.9);
        let (p, lo, hi) = ([10.0; 7], [10.0 - z; 7], [10.0 + z; 7]);
        let median = lead_time_quantile(&p, &lo, &hi, (0.1, 0.9), 4, false, 0.5);
        assert!((median - 40.0).abs() < 1e-9, "{median}");
        let q95 = lead_time_quantile(&p, &lo, &hi, (0.1, 0.9), 4, false, 0.95);
        assert!((q95 - (40.0 + 1.644854 * 2.0)).abs() < 1e-4, "{q95}");
        // Past the forecast the last period repeats: 10 days is 100.
        assert!((lead_time_quantile(&p, &lo, &hi, (0.1, 0.9), 10, false, 0.5) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn lead_time_demand_of_sporadic_demand_is_a_count() {
        // 0.25 a period over 4 periods: Poisson(1); P(≤2) = 0.920 ≥ 0.9.
        let p = [0.25; 4];
        assert_eq!(lead_time_quantile(&p, &p, &p, (0.1, 0.9), 4, true, 0.9), 2.0);
        assert_eq!(lead_time_quantile(&[], &[], &[], (0.1, 0.9), 4, false, 0.9), 0.0);
    }

    #[test]
    fn stock_runs_out_when_demand_outlasts_stock_and_receipts() {
        assert_eq!(first_stockout(10.0, &[], &[4.0, 4.0, 4.0]), Some(2));
        assert_eq!(first_stockout(10.0, &[0.0, 5.0], &[4.0, 4.0, 4.0, 4.0]), Some(3));
        assert_eq!(first_stockout(3.0, &[], &[0.1; 28]), None);
        assert_eq!(first_stockout(0.0, &[], &[0.0, 0.5]), Some(1));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// At service levels of one half and above (below it, a longer and so more uncertain
        /// interval can lower a quantile), more days or a higher level never need less stock, and
        /// never a negative amount.
        #[test]
        fn lead_time_demand_grows_with_days_and_service_level(
            point in proptest::collection::vec(0.0f64..100.0, 1..30),
            spread in 0.0f64..20.0,
            days in 1usize..40,
            sporadic in any::<bool>(),
            tau in 0.5f64..0.98,
        ) {
            let lower: Vec<f64> = point.iter().map(|p| (p - spread).max(0.0)).collect();
            let upper: Vec<f64> = point.iter().map(|p| p + spread).collect();
            let q = |d: usize, t: f64| lead_time_quantile(&point, &lower, &upper, (0.1, 0.9), d, sporadic, t);
            let base = q(days, tau);
            prop_assert!(base.is_finite() && base >= 0.0);
            prop_assert!(q(days, tau + 0.01) >= base - 1e-9);
            prop_assert!(q(days + 1, tau) >= base - 1e-9);
        }
    }
}
