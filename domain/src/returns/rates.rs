//! Return rates and the SKUs whose rate is anomalously high for their category.
//!
//! A SKU is tested against the rest of its category (the category's returns and sales without
//! the SKU's own): under the category's rate p, the chance of at least as many returns in its
//! sales is the binomial upper tail P(X ≥ returned | n = sold, p). It is flagged when that
//! chance is below `alpha` divided by the number of SKUs tested (Bonferroni: with hundreds of
//! SKUs, some would fall below `alpha` by luck alone).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Units sold and returned of one SKU in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub sku: String,
    pub category: String,
    pub sold: u64,
    pub returned: u64,
}

/// A SKU returned more than its category can explain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub sku: String,
    pub category: String,
    pub sold: u64,
    pub returned: u64,
    pub rate: f64,
    /// The rest of the category's rate.
    pub category_rate: f64,
    /// P(at least this many returns | the category's rate).
    pub p_value: f64,
    /// The level each SKU was tested at (`alpha` / SKUs tested).
    pub threshold: f64,
}

/// Returns over sales, 0 without sales.
pub fn rate(sold: u64, returned: u64) -> f64 {
    if sold == 0 { 0.0 } else { returned as f64 / sold as f64 }
}

/// ln C(n, k).
fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

fn ln_factorial(n: u64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    if n < 256 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    // Stirling's series, accurate to ~1e-10 from here on.
    let x = n as f64;
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x) - 1.0 / (360.0 * x.powi(3))
}

/// P(X ≥ k) for X ~ Binomial(n, p).
pub fn binomial_upper_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let terms = (k..=n).map(|i| ln_choose(n, i) + i as f64 * lp + (n - i) as f64 * lq);
    // Sum in log space from the largest term.
    let logs: Vec<f64> = terms.collect();
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if top == f64::NEG_INFINITY {
        return 0.0;
    }
    (top.exp() * logs.iter().map(|l| (l - top).exp()).sum::<f64>()).min(1.0)
}

/// The SKUs with at least `min_sold` sales whose return rate is significantly above the rest of
/// their category's, at family-wise level `alpha`; most significant first.
pub fn anomalies(counts: &[Count], alpha: f64, min_sold: u64) -> Vec<Anomaly> {
    let mut by_category: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for c in counts {
        let e = by_category.entry(c.category.as_str()).or_default();
        e.0 += c.sold;
        e.1 += c.returned;
    }
    let tested: Vec<&Count> = counts.iter().filter(|c| c.sold >= min_sold).collect();
    if tested.is_empty() {
        return Vec::new();
    }
    let threshold = alpha / tested.len() as f64;
    let mut out: Vec<Anomaly> = tested
        .into_iter()
        .filter_map(|c| {
            let (sold, returned) = by_category.get(c.category.as_str()).copied().unwrap_or_default();
            let (rest_sold, rest_returned) = (sold - c.sold, returned.saturating_sub(c.returned));
            if rest_sold == 0 {
                return None;
            }
            let category_rate = rate(rest_sold, rest_returned);
            let own = rate(c.sold, c.returned.min(c.sold));
            if own <= category_rate {
                return None;
            }
            let p_value = binomial_upper_tail(c.sold, c.returned.min(c.sold), category_rate);
            (p_value < threshold).then(|| Anomaly {
                sku: c.sku.clone(),
                category: c.category.clone(),
                sold: c.sold,
                returned: c.returned,
                rate: own,
                category_rate,
                p_value,
                threshold,
            })
        })
        .collect();
    out.sort_by(|a, b| a.p_value.total_cmp(&b.p_value).then_with(|| a.sku.cmp(&b.sku)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(sku: &str, category: &str, sold: u64, returned: u64) -> Count {
        Count { sku: sku.into(), category: category.into(), sold, returned }
    }

    #[test]
    fn the_binomial_tail_matches_known_values() {
        // P(X ≥ 1 | n = 1, p) = p; P(X ≥ 0) = 1; a fair coin, 10 tosses, at least 8 heads = 56/1024.
        assert!((binomial_upper_tail(1, 1, 0.3) - 0.3).abs() < 1e-12);
        assert_eq!(binomial_upper_tail(10, 0, 0.5), 1.0);
        assert!((binomial_upper_tail(10, 8, 0.5) - 56.0 / 1024.0).abs() < 1e-12);
        // Large n: the tail beyond the mean by 5 standard deviations is about 3e-7.
        let t = binomial_upper_tail(100_000, 10_000 + 5 * 95, 0.1);
        assert!(t > 1e-8 && t < 1e-6, "{t}");
    }

    #[test]
    fn a_sku_returned_far_more_than_its_category_is_flagged_and_noise_is_not() {
        let mut counts: Vec<Count> = (0..50).map(|i| count(&format!("TEE-{i}"), "Apparel", 200, 20)).collect();
        counts.push(count("TEE-BAD", "Apparel", 200, 60));
        counts.push(count("TEE-MEH", "Apparel", 200, 28));
        counts.push(count("TEE-NEW", "Apparel", 5, 4));
        counts.push(count("MUG", "Home", 300, 90));
        let found = anomalies(&counts, 0.05, 30);
        let skus: Vec<&str> = found.iter().map(|a| a.sku.as_str()).collect();
        assert_eq!(skus, ["TEE-BAD"], "{found:?}");
        let a = &found[0];
        assert!((a.rate - 0.3).abs() < 1e-12 && (a.category_rate - 0.1).abs() < 0.002);
        assert!(a.p_value < a.threshold && (a.threshold - 0.05 / 53.0).abs() < 1e-15);
        // A category of one SKU has nothing to compare with; too few sales are not tested.
        assert!(anomalies(&[count("MUG", "Home", 300, 90)], 0.05, 30).is_empty());
        assert!(anomalies(&[count("A", "X", 10, 9), count("B", "X", 1000, 10)], 0.05, 30).is_empty());
    }

    #[test]
    fn skus_at_their_categorys_rate_are_never_flagged() {
        let counts: Vec<Count> = (0..500).map(|i| count(&format!("S{i}"), "C", 100 + i, (100 + i) / 8)).collect();
        assert!(anomalies(&counts, 0.05, 30).is_empty());
    }
}
