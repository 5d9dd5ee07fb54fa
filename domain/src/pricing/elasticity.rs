//! How demand responds to price, per SKU, from daily history.
//!
//! A Poisson regression with a log link (iteratively reweighted least squares on linfa's linear
//! regression) of daily units on
//! the log of the price, a promotion flag, a linear trend, the day of the week and one yearly
//! harmonic (when the history spans a year): the coefficient of the log price is the elasticity
//! at the mean historical price, controlled for the rest. A square of the log price is kept when
//! it is significantly negative: demand that falls faster as the price rises (a linear demand
//! curve does) has an elasticity that grows with the price, and pricing on one constant number
//! would misjudge it. Days marked as stockouts are left out (their sales are a floor on
//! demand, not demand). Standard errors come from the Fisher information at the fit, inflated by
//! the Pearson dispersion when the counts vary more than Poisson.
//!
//! Sparse SKUs borrow strength from their category ([`shrink`]): a random-effects mean of the
//! category's estimates (DerSimonian–Laird) and each SKU's estimate pulled toward it by the ratio
//! of their precisions. Without enough price variation there is no estimate at all: the engine
//! says why instead of inventing a number.

use chrono::{Datelike, NaiveDate};
use linfa::prelude::{Dataset, Fit};
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};
use rust_decimal::Decimal;

use crate::types::as_f64;

/// One day of a SKU's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    pub date: NaiveDate,
    pub quantity: f64,
    pub price: Decimal,
    pub promo: bool,
    /// Demand was not observed in full (the SKU ran out): the day is censored.
    pub stockout: bool,
}

/// How far an estimate can be relied on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// No estimate, or one too uncertain to price on: the price stays.
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// Why a SKU has no usable estimate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shortfall {
    /// Fewer uncensored days than [`MIN_DAYS`].
    TooLittleHistory { days: usize },
    /// No units sold on any uncensored day.
    NoSales,
    /// The log price varies less than [`MIN_PRICE_SPREAD`] apart from promotions.
    TooLittlePriceVariation { spread: f64 },
    /// Demand does not fall as the price rises (the estimate is zero or positive).
    NotDecreasing { estimate: f64 },
    /// The standard error is above [`MAX_SE_MEDIUM`].
    TooUncertain { se: f64 },
    /// The regression did not converge to a finite fit.
    NoFit,
}

impl Shortfall {
    pub fn describe(&self) -> String {
        match self {
            Self::TooLittleHistory { days } => format!("only {days} uncensored days of history (at least {MIN_DAYS})"),
            Self::NoSales => "no sales in the history".into(),
            Self::TooLittlePriceVariation { spread } => {
                format!("too little price variation (log-price spread {spread:.3}, at least {MIN_PRICE_SPREAD})")
            }
            Self::NotDecreasing { estimate } => format!("demand does not fall as price rises (estimate {estimate:.2})"),
            Self::TooUncertain { se } => format!("elasticity too uncertain (standard error {se:.2})"),
            Self::NoFit => "the demand regression did not converge".into(),
        }
    }
}

/// Fewer uncensored days than this give no estimate.
pub const MIN_DAYS: usize = 28;
/// The least spread (standard deviation) of the log price within promotion and regular days.
pub const MIN_PRICE_SPREAD: f64 = 0.02;
/// Standard errors up to this are high confidence.
pub const MAX_SE_HIGH: f64 = 0.25;
/// Standard errors up to this are medium confidence; above it the estimate is not priced on.
pub const MAX_SE_MEDIUM: f64 = 0.6;
/// The least between-SKU spread assumed within a category, so one consistent category does not
/// flatten its SKUs onto its mean.
pub const MIN_CATEGORY_SPREAD: f64 = 0.1;

/// The fitted demand model of one SKU: expected units on a date at a price.
#[derive(Debug, Clone, PartialEq)]
pub struct DemandModel {
    intercept: f64,
    /// Coefficient of the centred log price (0 when the price did not vary).
    price: f64,
    /// Coefficient of its square (0, or negative when demand falls faster at higher prices).
    curvature: f64,
    mean_log_price: f64,
    promo: f64,
    trend: f64,
    weekday: [f64; 7],
    yearly: Option<(f64, f64)>,
    last: NaiveDate,
}

impl DemandModel {
    /// Expected units on `date` at `price` without a promotion, under the fitted elasticity.
    /// The trend is held at its level on the last day of history (not extrapolated).
    pub fn expected(&self, date: NaiveDate, price: f64) -> f64 {
        self.expected_with(date, price, self.price)
    }

    /// The multiplier a promotion brought on top of its price (1 without promotions in the history).
    pub fn promo_lift(&self) -> f64 {
        self.promo.exp()
    }

    /// The same with another elasticity at the mean historical price (a shrunk one).
    pub fn expected_with(&self, date: NaiveDate, price: f64, elasticity: f64) -> f64 {
        let trend = self.trend * years_before(date.min(self.last), self.last);
        let x = Features::of(date, self.yearly.is_some());
        let d = price.max(1e-9).ln() - self.mean_log_price;
        let mut eta = self.intercept + elasticity * d + self.curvature * d * d + trend;
        eta += self.weekday[x.weekday];
        if let (Some((s, c)), Some((xs, xc))) = (self.yearly, x.yearly) {
            eta += s * xs + c * xc;
        }
        eta.min(50.0).exp()
    }
}

/// One SKU's estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The elasticity at the mean historical price to price on (after shrinkage), negative;
    /// `None` when there is none. [`Estimate::elasticity_at`] gives it at another price.
    pub elasticity: Option<f64>,
    pub se: Option<f64>,
    /// How the elasticity changes with the log price: ε(p) = elasticity + 2 × curvature × (ln p −
    /// mean ln p); 0 unless significantly negative.
    pub curvature: f64,
    /// Variance of the curvature and its covariance with the elasticity.
    curvature_var: (f64, f64),
    /// The SKU's own estimate and standard error before shrinkage.
    pub own: Option<(f64, f64)>,
    /// The share of [`Estimate::elasticity`] taken from the category's mean (0 = its own).
    pub category_weight: f64,
    pub confidence: Confidence,
    pub shortfall: Option<Shortfall>,
    /// The demand model for expected units (present whenever a fit was possible).
    pub model: Option<DemandModel>,
    /// Uncensored days used.
    pub days: usize,
}

impl Estimate {
    fn without(shortfall: Shortfall, days: usize, model: Option<DemandModel>) -> Self {
        Self {
            elasticity: None,
            se: None,
            own: None,
            curvature: 0.0,
            curvature_var: (0.0, 0.0),
            category_weight: 0.0,
            confidence: Confidence::Low,
            shortfall: Some(shortfall),
            model,
            days,
        }
    }

    /// Sets the confidence from the final estimate and its standard error.
    fn judge(&mut self) {
        let (Some(e), Some(se)) = (self.elasticity, self.se) else {
            self.confidence = Confidence::Low;
            return;
        };
        (self.confidence, self.shortfall) = if e >= 0.0 {
            (Confidence::Low, Some(Shortfall::NotDecreasing { estimate: e }))
        } else if se <= MAX_SE_HIGH {
            (Confidence::High, None)
        } else if se <= MAX_SE_MEDIUM {
            (Confidence::Medium, None)
        } else {
            (Confidence::Low, Some(Shortfall::TooUncertain { se }))
        };
    }

    /// How demand responds to price, when the estimate is good enough to price on.
    pub fn usable(&self) -> Option<PriceResponse> {
        let e = self.elasticity.filter(|_| self.confidence != Confidence::Low)?;
        let mean_log_price = self.model.as_ref().map_or(0.0, |m| m.mean_log_price);
        Some(PriceResponse { elasticity: e, curvature: self.curvature, mean_log_price })
    }

    fn offset(&self, price: f64) -> f64 {
        self.model.as_ref().map_or(0.0, |m| price.max(1e-9).ln() - m.mean_log_price)
    }

    /// The (point) elasticity at `price`.
    pub fn elasticity_at(&self, price: f64) -> Option<f64> {
        Some(self.elasticity? + 2.0 * self.curvature * self.offset(price))
    }

    /// The standard error of [`Estimate::elasticity_at`].
    pub fn se_at(&self, price: f64) -> Option<f64> {
        let se = self.se?;
        let d = 2.0 * self.offset(price);
        let (var_c, cov) = self.curvature_var;
        Some((se * se + d * d * var_c + 2.0 * d * cov).max(0.0).sqrt())
    }
}

/// Demand's response to price from an estimate: log demand moves by elasticity × Δln p plus
/// curvature × Δ(ln p − mean ln p)².
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceResponse {
    pub elasticity: f64,
    pub curvature: f64,
    pub mean_log_price: f64,
}

impl super::optimize::Response for PriceResponse {
    fn multiplier(&self, current: f64, price: f64) -> f64 {
        let (a, b) = (current.max(1e-9).ln() - self.mean_log_price, price.max(1e-9).ln() - self.mean_log_price);
        (self.elasticity * (b - a) + self.curvature * (b * b - a * a)).clamp(-50.0, 50.0).exp()
    }
}

fn years_before(date: NaiveDate, last: NaiveDate) -> f64 {
    (date - last).num_days() as f64 / 365.25
}

struct Features {
    weekday: usize,
    yearly: Option<(f64, f64)>,
}

impl Features {
    fn of(date: NaiveDate, yearly: bool) -> Self {
        let angle = 2.0 * std::f64::consts::PI * f64::from(date.ordinal0()) / 365.25;
        Self {
            weekday: date.weekday().num_days_from_monday() as usize,
            yearly: yearly.then(|| (angle.sin(), angle.cos())),
        }
    }
}

fn ln_price(d: &Day) -> f64 {
    as_f64(d.price).max(1e-9).ln()
}

/// The spread of the log price apart from promotions: the pooled standard deviation within
/// promotion days and within regular days.
pub fn price_spread(days: &[Day]) -> f64 {
    let mut ss = 0.0;
    let mut n = 0usize;
    let mut groups = 0usize;
    for promo in [false, true] {
        let logs: Vec<f64> = days.iter().filter(|d| d.promo == promo && !d.stockout).map(ln_price).collect();
        if logs.is_empty() {
            continue;
        }
        groups += 1;
        let mean = logs.iter().sum::<f64>() / logs.len() as f64;
        ss += logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>();
        n += logs.len();
    }
    if n <= groups { 0.0 } else { (ss / (n - groups) as f64).sqrt() }
}

/// Estimates one SKU's elasticity and demand model from its daily history (any order; stockout
/// days are left out). Shrinkage toward a category is a second step, [`shrink`].
pub fn estimate(days: &[Day]) -> Estimate {
    let used: Vec<&Day> = days.iter().filter(|d| !d.stockout && d.price > Decimal::ZERO).collect();
    if used.len() < MIN_DAYS {
        return Estimate::without(Shortfall::TooLittleHistory { days: used.len() }, used.len(), None);
    }
    if used.iter().all(|d| d.quantity <= 0.0) {
        return Estimate::without(Shortfall::NoSales, used.len(), None);
    }
    let spread = price_spread(days);
    if spread < MIN_PRICE_SPREAD {
        let model = fit(&used, Terms::Level).map(|f| f.model);
        return Estimate::without(Shortfall::TooLittlePriceVariation { spread }, used.len(), model);
    }
    // The curvature stays when it is negative by more than two standard errors.
    let curved = fit(&used, Terms::Curved).filter(|f| f.model.curvature + 2.0 * f.curvature_var.0.sqrt() < 0.0);
    let Some(fit) = curved.or_else(|| fit(&used, Terms::Linear)) else {
        return Estimate::without(Shortfall::NoFit, used.len(), None);
    };
    let e = fit.model.price;
    let mut out = Estimate {
        elasticity: Some(e),
        se: Some(fit.price_se),
        own: Some((e, fit.price_se)),
        curvature: fit.model.curvature,
        curvature_var: fit.curvature_var,
        category_weight: 0.0,
        confidence: Confidence::Low,
        shortfall: None,
        model: Some(fit.model),
        days: used.len(),
    };
    out.judge();
    out
}

struct Fitted {
    model: DemandModel,
    price_se: f64,
    /// Variance of the curvature, covariance with the price coefficient.
    curvature_var: (f64, f64),
}

/// The price terms of a fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terms {
    /// No price term (the price did not vary): the demand level only.
    Level,
    Linear,
    /// Log price and its square.
    Curved,
}

fn fit(days: &[&Day], terms: Terms) -> Option<Fitted> {
    let with_price = terms != Terms::Level;
    let curved = terms == Terms::Curved;
    let first = days.iter().map(|d| d.date).min()?;
    let last = days.iter().map(|d| d.date).max()?;
    let yearly = (last - first).num_days() >= 365;
    let promo = days.iter().any(|d| d.promo) && days.iter().any(|d| !d.promo);
    let mean_log_price = days.iter().map(|d| ln_price(d)).sum::<f64>() / days.len() as f64;
    // Columns: [log price], [promo], trend, weekday 1..6 (Monday is the base), [sin, cos].
    let mut columns = usize::from(with_price) + usize::from(curved) + usize::from(promo) + 1 + 6;
    if yearly {
        columns += 2;
    }
    let mut x = Array2::<f64>::zeros((days.len(), columns));
    let mut y = Array1::<f64>::zeros(days.len());
    for (i, d) in days.iter().enumerate() {
        let f = Features::of(d.date, yearly);
        let mut c = 0;
        let mut put = |v: f64| {
            x[[i, c]] = v;
            c += 1;
        };
        if with_price {
            put(ln_price(d) - mean_log_price);
        }
        if curved {
            put((ln_price(d) - mean_log_price).powi(2));
        }
        if promo {
            put(if d.promo { 1.0 } else { 0.0 });
        }
        put(years_before(d.date, last));
        for w in 1..7 {
            put(if f.weekday == w { 1.0 } else { 0.0 });
        }
        if let Some((s, co)) = f.yearly {
            put(s);
            put(co);
        }
        y[i] = d.quantity;
    }
    let (intercept, coef) = poisson_irls(&x, &y)?;
    // Fisher information of (intercept, coefficients) at the fit, and the Pearson dispersion.
    let k = columns + 1;
    let mut info = vec![0.0; k * k];
    let mut pearson = 0.0;
    let mut row = vec![0.0; k];
    for i in 0..days.len() {
        row[0] = 1.0;
        for j in 0..columns {
            row[j + 1] = x[[i, j]];
        }
        let eta: f64 = intercept + (0..columns).map(|j| coef[j] * x[[i, j]]).sum::<f64>();
        let mu = eta.min(50.0).exp().max(1e-12);
        pearson += (y[i] - mu).powi(2) / mu;
        for a in 0..k {
            for b in 0..=a {
                info[a * k + b] += mu * row[a] * row[b];
            }
        }
    }
    for a in 0..k {
        for b in a + 1..k {
            info[a * k + b] = info[b * k + a];
        }
    }
    let dispersion = (pearson / (days.len().saturating_sub(k)).max(1) as f64).max(1.0);
    // Columns 1 and 2 of the inverse information: the price terms' variances and covariance.
    let inverse_column = |j: usize| {
        let mut unit = vec![0.0; k];
        unit[j] = 1.0;
        crate::forecast::global::solve_spd(info.clone(), unit, k)
    };
    let price_se = if with_price { (dispersion * inverse_column(1)?[1]).max(0.0).sqrt() } else { 0.0 };
    let curvature_var = if curved {
        let col = inverse_column(2)?;
        (dispersion * col[2].max(0.0), dispersion * col[1])
    } else {
        (0.0, 0.0)
    };
    let mut c = coef.into_iter();
    let price = if with_price { c.next()? } else { 0.0 };
    let curvature = if curved { c.next()? } else { 0.0 };
    let promo = if promo { c.next()? } else { 0.0 };
    let trend = c.next()?;
    let mut weekday = [0.0; 7];
    for w in weekday.iter_mut().skip(1) {
        *w = c.next()?;
    }
    let yearly = if yearly { Some((c.next()?, c.next()?)) } else { None };
    Some(Fitted {
        model: DemandModel { intercept, price, curvature, mean_log_price, promo, trend, weekday, yearly, last },
        price_se,
        curvature_var,
    })
}

/// A Poisson regression with a log link by iteratively reweighted least squares, each step a
/// linfa least-squares fit of the working response on the rows scaled by the square root of the
/// weights (the intercept is an explicit column). Converges in a handful of steps where a
/// gradient method on the deviance needs hundreds. The intercept and the coefficients.
fn poisson_irls(x: &Array2<f64>, y: &Array1<f64>) -> Option<(f64, Vec<f64>)> {
    let (n, k) = x.dim();
    let mean = y.sum() / n as f64;
    let mut beta = vec![0.0; k + 1];
    beta[0] = mean.max(1e-9).ln();
    let mut eta: Vec<f64> = vec![beta[0]; n];
    for _ in 0..MAX_IRLS_STEPS {
        let mut a = Array2::<f64>::zeros((n, k + 1));
        let mut b = Array1::<f64>::zeros(n);
        for i in 0..n {
            let mu = eta[i].clamp(-30.0, 30.0).exp();
            let w = mu.sqrt();
            a[[i, 0]] = w;
            for j in 0..k {
                a[[i, j + 1]] = w * x[[i, j]];
            }
            b[i] = w * (eta[i] + (y[i] - mu) / mu);
        }
        let next = LinearRegression::new().with_intercept(false).fit(&Dataset::new(a, b)).ok()?;
        let next: Vec<f64> = next.params().to_vec();
        if next.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let change = next.iter().zip(&beta).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        beta = next;
        for (i, e) in eta.iter_mut().enumerate() {
            *e = beta[0] + (0..k).map(|j| beta[j + 1] * x[[i, j]]).sum::<f64>();
        }
        if change < 1e-9 {
            break;
        }
    }
    let intercept = beta[0];
    Some((intercept, beta.split_off(1)))
}

/// Enough for a Poisson fit from the mean; each step roughly doubles the correct digits.
const MAX_IRLS_STEPS: usize = 30;

/// Pulls each estimate toward its category's mean, weighted by the precisions: the category
/// mean is a random-effects (DerSimonian–Laird) mean of the SKUs' own estimates, with a
/// between-SKU spread of at least [`MIN_CATEGORY_SPREAD`]. Categories with fewer than three
/// estimates, and SKUs without a category, keep their own. SKUs without an estimate stay
/// without one: a category does not stand in for a SKU's missing price variation.
pub fn shrink(estimates: &mut [Estimate], categories: &[Option<&str>]) {
    let mut by_category: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, c) in categories.iter().enumerate() {
        if let (Some(c), Some(_)) = (c, estimates.get(i).and_then(|e| e.own)) {
            by_category.entry(c).or_default().push(i);
        }
    }
    for members in by_category.values() {
        if members.len() < 3 {
            continue;
        }
        let own: Vec<(f64, f64)> =
            members.iter().filter_map(|i| estimates[*i].own).map(|(e, se)| (e, se.max(1e-6))).collect();
        let w: Vec<f64> = own.iter().map(|(_, se)| 1.0 / (se * se)).collect();
        let sw: f64 = w.iter().sum();
        let fixed = own.iter().zip(&w).map(|((e, _), w)| e * w).sum::<f64>() / sw;
        let q: f64 = own.iter().zip(&w).map(|((e, _), w)| w * (e - fixed).powi(2)).sum();
        let sw2: f64 = w.iter().map(|w| w * w).sum();
        let tau2 = ((q - (own.len() - 1) as f64) / (sw - sw2 / sw)).max(MIN_CATEGORY_SPREAD.powi(2));
        let rw: Vec<f64> = own.iter().map(|(_, se)| 1.0 / (se * se + tau2)).collect();
        let mean = own.iter().zip(&rw).map(|((e, _), w)| e * w).sum::<f64>() / rw.iter().sum::<f64>();
        for (i, (e, se)) in members.iter().zip(own) {
            let (p_own, p_cat) = (1.0 / (se * se), 1.0 / tau2);
            let est = &mut estimates[*i];
            est.elasticity = Some((e * p_own + mean * p_cat) / (p_own + p_cat));
            est.se = Some((1.0 / (p_own + p_cat)).sqrt());
            est.category_weight = p_cat / (p_own + p_cat);
            est.judge();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn history(elasticity: f64, base: f64, vary: bool, seed: u64) -> Vec<Day> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let start = NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
        (0..400)
            .map(|t| {
                let price = if vary { [10.0, 11.0, 9.0, 12.0][(t / 30) % 4] } else { 10.0 };
                let date = start + chrono::Duration::days(t as i64);
                let weekend = if date.weekday().num_days_from_monday() >= 5 { 1.5 } else { 1.0 };
                let mean = base * weekend * (price / 10.0f64).powf(elasticity);
                Day {
                    date,
                    quantity: f64::from(crate::sampling::poisson(&mut rng, mean)),
                    price: Decimal::from_f64_retain(price).expect("price").round_dp(2),
                    promo: false,
                    stockout: false,
                }
            })
            .collect()
    }

    #[test]
    fn recovers_a_known_elasticity_with_its_standard_error() {
        let est = estimate(&history(-2.0, 20.0, true, 1));
        let (e, se) = est.own.expect("estimate");
        assert!((e + 2.0).abs() < 3.0 * se && se < 0.15, "{e} ± {se}");
        assert_eq!(est.confidence, Confidence::High);
        let model = est.model.expect("model");
        // A Monday at 10.00: the base of 20 a day.
        let monday = NaiveDate::from_ymd_opt(2026, 2, 2).expect("date");
        let units = model.expected(monday, 10.0);
        assert!((units - 20.0).abs() < 2.0, "{units}");
        assert!(model.expected(monday, 12.0) < units);
    }

    #[test]
    fn no_price_variation_gives_no_number() {
        let est = estimate(&history(-2.0, 20.0, false, 2));
        assert_eq!(est.elasticity, None);
        assert_eq!(est.confidence, Confidence::Low);
        assert!(matches!(est.shortfall, Some(Shortfall::TooLittlePriceVariation { .. })));
        assert!(est.model.is_some(), "the demand level is still known");
    }

    #[test]
    fn stockout_days_are_censored_not_zeros() {
        let mut days = history(-2.0, 20.0, true, 3);
        // Mark the high-price months as sold out with zero sales: read as zeros they would make
        // demand look far more elastic.
        for d in days.iter_mut().filter(|d| d.price == Decimal::new(1200, 2)) {
            d.quantity = 0.0;
            d.stockout = true;
        }
        let (e, se) = estimate(&days).own.expect("estimate");
        assert!((e + 2.0).abs() < 3.0 * se, "{e} ± {se}");
    }

    #[test]
    fn short_or_empty_histories_say_why() {
        let days = history(-2.0, 20.0, true, 4);
        assert!(matches!(estimate(&days[..10]).shortfall, Some(Shortfall::TooLittleHistory { days: 10 })));
        let zero: Vec<Day> = days.iter().map(|d| Day { quantity: 0.0, ..d.clone() }).collect();
        assert_eq!(estimate(&zero).shortfall, Some(Shortfall::NoSales));
    }

    #[test]
    fn sparse_skus_borrow_from_their_category() {
        let mut estimates: Vec<Estimate> =
            (0..5).map(|s| estimate(&history(-2.0, if s == 0 { 0.4 } else { 30.0 }, true, 10 + s))).collect();
        let sparse_before = estimates[0].own.expect("sparse").1;
        let cats = vec![Some("shoes"); 5];
        shrink(&mut estimates, &cats);
        let sparse = &estimates[0];
        assert!(sparse.category_weight > estimates[1].category_weight);
        assert!(sparse.se.expect("se") < sparse_before);
        assert!((sparse.elasticity.expect("e") + 2.0).abs() < 0.5, "{:?}", sparse.elasticity);
    }
}
