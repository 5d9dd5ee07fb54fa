//! Choosing and running a model per series: classify the demand, backtest the candidates of its
//! class on rolling origins, forecast with the one that erred least, and turn the backtest errors
//! into quantiles (split-conformal: forecast plus the empirical error quantile).

use super::classify::{DemandClass, classify};
use super::methods;

/// How much lower (as a fraction) a challenger's backtest error must be than the simplest model's.
const CHALLENGER_MARGIN: f64 = 0.9;
/// Per-series models see at most this many of the latest periods (over a year of days): older
/// demand says little about the level and trend now, and costs time on every fit.
pub const LOCAL_WINDOW: usize = 400;

/// A per-series model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Model {
    SeasonalNaive,
    Ses,
    DampedTrend,
    SeasonalSes,
    Croston,
    Sba,
    Tsb,
    Imapa,
}

impl Model {
    pub fn as_str(self) -> &'static str {
        match self {
            Model::SeasonalNaive => "seasonal_naive",
            Model::Ses => "ses",
            Model::DampedTrend => "damped_trend",
            Model::SeasonalSes => "seasonal_ses",
            Model::Croston => "croston",
            Model::Sba => "sba",
            Model::Tsb => "tsb",
            Model::Imapa => "imapa",
        }
    }

    /// Forecasts `h` periods from the last [`LOCAL_WINDOW`] periods of `y`, season length `m`.
    pub fn run(self, y: &[f64], h: usize, m: usize) -> Vec<f64> {
        let y = &y[y.len().saturating_sub(LOCAL_WINDOW)..];
        match self {
            Model::SeasonalNaive => methods::seasonal_naive(y, h, m),
            Model::Ses => methods::ses(y, h),
            Model::DampedTrend => methods::damped_trend(y, h),
            Model::SeasonalSes => methods::seasonal_ses(y, h, m),
            Model::Croston => methods::croston(y, h, 0.1, false),
            Model::Sba => methods::croston(y, h, 0.1, true),
            Model::Tsb => methods::tsb(y, h),
            Model::Imapa => methods::imapa(y, h),
        }
    }
}

/// What to forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub horizon: usize,
    /// Season length in periods (7 daily, 52 weekly, 12 monthly; 1 for none).
    pub season: usize,
    /// Quantile levels to produce, each in (0, 1).
    pub quantiles: Vec<f64>,
    /// How many rolling origins to backtest on (fewer when the history is short).
    pub origins: usize,
}

impl Config {
    pub fn new(horizon: usize, season: usize) -> Self {
        Self { horizon, season: season.max(1), quantiles: vec![0.1, 0.5, 0.9], origins: 3 }
    }
}

/// A series' forecast and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesForecast {
    pub point: Vec<f64>,
    /// One vector per requested level, in the order requested; ordered across levels per period.
    pub quantiles: Vec<Vec<f64>>,
    pub model: Model,
    pub class: DemandClass,
    /// The chosen model's mean absolute backtest error (`None` when the history was too short).
    pub backtest_mae: Option<f64>,
    /// Every candidate's backtest mean squared error, best first.
    pub candidates: Vec<(Model, f64)>,
}

fn candidates(class: DemandClass, n: usize, m: usize) -> Vec<Model> {
    let seasonal = m > 1 && n >= 2 * m;
    if class.is_sporadic() {
        vec![Model::Sba, Model::Tsb, Model::Imapa, Model::Ses]
    } else {
        let mut c = vec![Model::Ses, Model::DampedTrend];
        if seasonal {
            c.extend([Model::SeasonalNaive, Model::SeasonalSes]);
        }
        c
    }
}

/// Replaces censored periods (stockouts: demand unseen, not zero) with what the uncensored
/// history says: the mean of up to four earlier uncensored values in the same season phase, or
/// the last uncensored value.
pub fn impute_censored(y: &[f64], censored: &[bool], m: usize) -> Vec<f64> {
    let m = m.max(1);
    let mut out = y.to_vec();
    for t in 0..y.len() {
        if !censored.get(t).copied().unwrap_or(false) {
            continue;
        }
        let same_phase: Vec<f64> = (1..=4)
            .filter_map(|k| t.checked_sub(k * m))
            .filter(|s| !censored.get(*s).copied().unwrap_or(false))
            .map(|s| out[s])
            .collect();
        out[t] = if same_phase.is_empty() {
            (0..t).rev().find(|s| !censored.get(*s).copied().unwrap_or(false)).map_or(y[t], |s| out[s])
        } else {
            same_phase.iter().sum::<f64>() / same_phase.len() as f64
        };
    }
    out
}

/// Forecasts one series (oldest first; negative values are treated as zero), with the model of
/// least backtest error among its class's candidates.
pub fn forecast_series(y: &[f64], cfg: &Config) -> SeriesForecast {
    forecast_series_as(y, cfg, None)
}

/// Like [`forecast_series`], but uses `prefer` when it is among the series' candidates (a choice
/// made for the whole demand class across many series, which a few backtest origins of one
/// series cannot overrule reliably).
pub fn forecast_series_as(y: &[f64], cfg: &Config, prefer: Option<Model>) -> SeriesForecast {
    let y: Vec<f64> = y.iter().map(|v| if v.is_finite() { v.max(0.0) } else { 0.0 }).collect();
    let (h, m) = (cfg.horizon, cfg.season.max(1));
    let class = classify(&y);
    let models = candidates(class, y.len(), m);
    // Rolling origins, newest last; each needs some history before it.
    let min_train = (2 * m).max(4).min(y.len());
    let origins: Vec<usize> =
        (1..=cfg.origins).rev().filter_map(|k| y.len().checked_sub(k * h)).filter(|o| *o >= min_train).collect();
    let mut scored: Vec<(Model, f64, f64, Vec<Vec<f64>>)> = models
        .iter()
        .map(|model| {
            let mut se = 0.0;
            let mut ae = 0.0;
            let mut count = 0usize;
            // errors[step] = actual - forecast at that step, over all origins.
            let mut errors = vec![Vec::new(); h];
            for o in &origins {
                let f = model.run(&y[..*o], h, m);
                for (step, (a, p)) in y[*o..(*o + h).min(y.len())].iter().zip(&f).enumerate() {
                    se += (a - p).powi(2);
                    ae += (a - p).abs();
                    count += 1;
                    errors[step].push(a - p);
                }
            }
            let n = count.max(1) as f64;
            (*model, se / n, ae / n, errors)
        })
        .collect();
    // A model beyond the first candidate (the simplest of its class) must beat it clearly in the
    // backtest: a few origins are noisy, and a wrong trend or season costs more than it saves.
    let simplest = models.first().copied();
    let bar = scored.iter().find(|s| Some(s.0) == simplest).map_or(f64::INFINITY, |s| s.1) * CHALLENGER_MARGIN;
    let eligible = |s: &(Model, f64, f64, Vec<Vec<f64>>)| Some(s.0) == simplest || s.1 <= bar;
    scored.sort_by(|a, b| eligible(b).cmp(&eligible(a)).then(a.1.total_cmp(&b.1)).then(a.0.cmp(&b.0)));
    if let Some(i) = prefer.and_then(|p| scored.iter().position(|s| s.0 == p)) {
        let preferred = scored.remove(i);
        scored.insert(0, preferred);
    }
    let (model, _, mae, errors) = scored.first().cloned().unwrap_or((Model::Ses, 0.0, 0.0, vec![Vec::new(); h]));
    let point: Vec<f64> = model.run(&y, h, m).into_iter().map(|v| v.max(0.0)).collect();
    let quantiles = quantiles(&point, &errors, &cfg.quantiles);
    SeriesForecast {
        point,
        quantiles,
        model,
        class,
        backtest_mae: (!origins.is_empty()).then_some(mae),
        candidates: scored.iter().map(|(m, mse, _, _)| (*m, *mse)).collect(),
    }
}

/// Split-conformal quantiles: the point forecast plus the empirical quantile of the backtest
/// errors (pooled over steps when a step has few); Poisson around the point when there are too
/// few errors at all. Clipped at zero and ordered across levels.
fn quantiles(point: &[f64], errors: &[Vec<f64>], levels: &[f64]) -> Vec<Vec<f64>> {
    let pooled: Vec<f64> = errors.iter().flatten().copied().collect();
    let mut order: Vec<usize> = (0..levels.len()).collect();
    order.sort_by(|a, b| levels[*a].total_cmp(&levels[*b]));
    let mut out = vec![Vec::with_capacity(point.len()); levels.len()];
    for (step, p) in point.iter().enumerate() {
        let errs = errors.get(step).filter(|e| e.len() >= 8).unwrap_or(&pooled);
        let taus: Vec<f64> = order.iter().map(|i| levels[*i]).collect();
        let mut values: Vec<f64> = if errs.len() >= 8 {
            empirical_quantiles(errs, &taus).iter().map(|e| (p + e).max(0.0)).collect()
        } else {
            taus.iter().map(|tau| poisson_quantile(*p, *tau).max(0.0)).collect()
        };
        // Ordered across levels, whatever the errors say.
        values.sort_by(f64::total_cmp);
        for (i, v) in order.iter().zip(values) {
            out[*i].push(v);
        }
    }
    out
}

/// The `tau` quantile of `values` with linear interpolation (type 7).
pub fn empirical_quantile(values: &[f64], tau: f64) -> f64 {
    empirical_quantiles(values, &[tau])[0]
}

/// [`empirical_quantile`] at each of `taus`, sorting `values` once.
pub fn empirical_quantiles(values: &[f64], taus: &[f64]) -> Vec<f64> {
    if values.is_empty() {
        return vec![0.0; taus.len()];
    }
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    taus.iter()
        .map(|tau| {
            let pos = tau.clamp(0.0, 1.0) * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        })
        .collect()
}

/// The smallest k with P(X ≤ k) ≥ tau for X ~ Poisson(mean); a normal approximation for large means.
pub fn poisson_quantile(mean: f64, tau: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean > 50.0 {
        return (mean + normal_quantile(tau) * mean.sqrt()).max(0.0);
    }
    let mut pmf = (-mean).exp();
    let mut cdf = pmf;
    let mut k = 0.0;
    while cdf < tau && k < 10_000.0 {
        k += 1.0;
        pmf *= mean / k;
        cdf += pmf;
    }
    k
}

/// The standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seasonal_series_gets_a_seasonal_model() {
        let y: Vec<f64> = (0..140).map(|t| if t % 7 >= 5 { 30.0 } else { 10.0 }).collect();
        let f = forecast_series(&y, &Config::new(14, 7));
        assert!(matches!(f.model, Model::SeasonalNaive | Model::SeasonalSes), "{:?}", f.candidates);
        assert!((f.point[5] - 30.0).abs() < 1e-6 && (f.point[0] - 10.0).abs() < 1e-6, "{:?}", f.point);
        assert_eq!(f.class, DemandClass::Smooth);
    }

    #[test]
    fn sporadic_demand_gets_an_intermittent_method() {
        let y: Vec<f64> = (0..48).map(|t| if t % 4 == 0 { 2.0 } else { 0.0 }).collect();
        let f = forecast_series(&y, &Config::new(6, 12));
        assert!(f.class.is_sporadic());
        assert!(matches!(f.model, Model::Sba | Model::Tsb | Model::Imapa | Model::Ses), "{:?}", f.model);
        assert!(f.point.iter().all(|v| (v - 0.5).abs() < 0.15), "about one unit every two periods: {:?}", f.point);
    }

    #[test]
    fn censored_periods_are_filled_from_the_same_phase() {
        let y = [5.0, 1.0, 5.0, 1.0, 0.0, 1.0];
        let c = [false, false, false, false, true, false];
        assert_eq!(impute_censored(&y, &c, 2), vec![5.0, 1.0, 5.0, 1.0, 5.0, 1.0]);
    }

    #[test]
    fn distribution_helpers() {
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        // Poisson(1): P(0)=0.368, P(≤1)=0.736, P(≤2)=0.920.
        assert_eq!(poisson_quantile(1.0, 0.9), 2.0);
        assert_eq!(poisson_quantile(1.0, 0.3), 0.0);
        assert!((empirical_quantile(&[1.0, 2.0, 3.0, 4.0], 0.5) - 2.5).abs() < 1e-12);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any non-negative history, any horizon and season: finite, non-negative forecasts and
        /// quantiles ordered by level.
        #[test]
        fn forecasts_are_finite_non_negative_and_ordered(
            y in proptest::collection::vec(prop_oneof![Just(0.0), 0.0f64..1e6], 0..80),
            h in 1usize..20,
            m in 1usize..13,
        ) {
            let f = forecast_series(&y, &Config::new(h, m));
            prop_assert_eq!(f.point.len(), h);
            prop_assert!(f.point.iter().all(|v| v.is_finite() && *v >= 0.0), "{:?}", f.point);
            for step in 0..h {
                let q: Vec<f64> = f.quantiles.iter().map(|q| q[step]).collect();
                prop_assert!(q.iter().all(|v| v.is_finite() && *v >= 0.0), "{:?}", q);
                prop_assert!(q.windows(2).all(|w| w[0] <= w[1]), "{:?}", q);
            }
        }
    }
}
