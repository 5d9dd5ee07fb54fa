//! Per-series forecasting methods. Each takes a history (oldest first, non-negative) and a horizon
//! and returns `h` forecasts; none reads anything else, so each is deterministic.

/// Smoothing weights tried when a method fits its own (one-step squared error, first wins ties).
const ALPHAS: [f64; 20] =
    [0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99];

/// Repeats the last `m` values (`m` = 1 is the naive method). Empty history forecasts zero.
pub fn seasonal_naive(y: &[f64], h: usize, m: usize) -> Vec<f64> {
    let m = m.max(1);
    if y.is_empty() {
        return vec![0.0; h];
    }
    if y.len() < m {
        return vec![*y.last().unwrap_or(&0.0); h];
    }
    let last = &y[y.len() - m..];
    (0..h).map(|i| last[i % m]).collect()
}

/// Simple exponential smoothing with weight `alpha`, level started at the first value.
/// Returns the final level and the sum of squared one-step errors.
pub fn ses_run(y: &[f64], alpha: f64) -> (f64, f64) {
    let Some(first) = y.first() else { return (0.0, 0.0) };
    let mut level = *first;
    let mut sse = 0.0;
    for v in &y[1..] {
        let e = v - level;
        sse += e * e;
        level += alpha * e;
    }
    (level, sse)
}

/// The index of the least value, the first among equals (what a grid search keeps); `None` when
/// none is finite.
fn first_least(sse: &[f64]) -> Option<usize> {
    let mut best = (f64::INFINITY, None);
    for (k, v) in sse.iter().enumerate() {
        if *v < best.0 {
            best = (*v, Some(k));
        }
    }
    best.1
}

/// [`ses_run`] for every weight of [`ALPHAS`] in one pass over `y`: the recursions are
/// independent, so running them side by side lets the CPU overlap them (each step of one waits on
/// its previous step). The same arithmetic in the same order as `ses_run`, so the same numbers.
/// Returns the final level of the weight with the least one-step squared error.
fn ses_fit(y: &[f64]) -> f64 {
    let Some(first) = y.first() else { return 0.0 };
    let mut level = [*first; ALPHAS.len()];
    let mut sse = [0.0; ALPHAS.len()];
    for v in &y[1..] {
        for k in 0..ALPHAS.len() {
            let e = v - level[k];
            sse[k] += e * e;
            level[k] += ALPHAS[k] * e;
        }
    }
    level[first_least(&sse).unwrap_or(0)]
}

/// Simple exponential smoothing with a fitted weight: a flat forecast at the final level.
pub fn ses(y: &[f64], h: usize) -> Vec<f64> {
    vec![ses_fit(y).max(0.0); h]
}

/// Additive damped trend (Gardner & McKenzie). Returns the forecast and its one-step SSE.
pub fn damped_trend_run(y: &[f64], h: usize, alpha: f64, beta: f64, phi: f64) -> (Vec<f64>, f64) {
    if y.len() < 2 {
        return (seasonal_naive(y, h, 1), 0.0);
    }
    let mut level = y[0];
    let mut trend = y[1] - y[0];
    let mut sse = 0.0;
    for v in &y[1..] {
        let fit = level + phi * trend;
        let e = v - fit;
        sse += e * e;
        let new_level = fit + alpha * e;
        trend = phi * trend + alpha * beta * e;
        level = new_level;
    }
    (damped_path(level, trend, phi, h), sse)
}

/// The damped trend's forecast `h` periods on from its final level and trend, at zero or above.
fn damped_path(level: f64, trend: f64, phi: f64, h: usize) -> Vec<f64> {
    let mut damp = 0.0;
    let mut p = 1.0;
    (0..h)
        .map(|_| {
            p *= phi;
            damp += p;
            (level + damp * trend).max(0.0)
        })
        .collect()
}

const DAMPED_ALPHAS: [f64; 6] = [0.05, 0.1, 0.2, 0.35, 0.6, 0.9];
const DAMPED_BETAS: [f64; 3] = [0.01, 0.05, 0.2];
const DAMPED_PHIS: [f64; 3] = [0.85, 0.95, 0.98];
const DAMPED_GRID: usize = DAMPED_ALPHAS.len() * DAMPED_BETAS.len() * DAMPED_PHIS.len();

/// Damped trend with weights fitted by grid search on one-step squared error. Every grid point's
/// recursion runs side by side in one pass (as [`damped_trend_run`] would, one at a time: the
/// same arithmetic in the same order), and the first with the least error forecasts.
pub fn damped_trend(y: &[f64], h: usize) -> Vec<f64> {
    if y.len() < 2 {
        return seasonal_naive(y, h, 1);
    }
    // Grid point k: alpha-major, then beta, then phi (the order of the search one at a time).
    let (nb, np) = (DAMPED_BETAS.len(), DAMPED_PHIS.len());
    let alpha: [f64; DAMPED_GRID] = std::array::from_fn(|k| DAMPED_ALPHAS[k / (nb * np)]);
    // `alpha * beta * e` in damped_trend_run is (alpha * beta) * e.
    let alpha_beta: [f64; DAMPED_GRID] = std::array::from_fn(|k| alpha[k] * DAMPED_BETAS[k / np % nb]);
    let phi: [f64; DAMPED_GRID] = std::array::from_fn(|k| DAMPED_PHIS[k % np]);
    let mut level = [y[0]; DAMPED_GRID];
    let mut trend = [y[1] - y[0]; DAMPED_GRID];
    let mut sse = [0.0; DAMPED_GRID];
    for v in &y[1..] {
        for k in 0..DAMPED_GRID {
            let fit = level[k] + phi[k] * trend[k];
            let e = v - fit;
            sse[k] += e * e;
            level[k] = fit + alpha[k] * e;
            trend[k] = phi[k] * trend[k] + alpha_beta[k] * e;
        }
    }
    match first_least(&sse) {
        Some(k) => damped_path(level[k], trend[k], phi[k], h),
        None => damped_trend_run(y, h, 0.3, 0.1, 0.9).0,
    }
}

/// Croston's method with weight `alpha` on sizes and intervals; `debias` applies the
/// Syntetos–Boylan approximation (SBA) factor 1 - alpha/2.
pub fn croston(y: &[f64], h: usize, alpha: f64, debias: bool) -> Vec<f64> {
    let mut size: Option<f64> = None;
    let mut interval = 1.0;
    let mut since = 0.0;
    for v in y {
        since += 1.0;
        if *v > 0.0 {
            match size {
                None => {
                    size = Some(*v);
                    interval = since;
                }
                Some(z) => {
                    size = Some(z + alpha * (v - z));
                    interval += alpha * (since - interval);
                }
            }
            since = 0.0;
        }
    }
    let rate = size.map_or(0.0, |z| z / interval);
    let factor = if debias { 1.0 - alpha / 2.0 } else { 1.0 };
    vec![rate * factor; h]
}

/// Teunter–Syntetos–Babai: a demand probability updated every period (weight `alpha_p`) and a
/// size updated when demand occurs (weight `alpha_z`). Returns the rate and its one-step SSE.
pub fn tsb_run(y: &[f64], alpha_z: f64, alpha_p: f64) -> (f64, f64) {
    let Some(first_demand) = y.iter().position(|v| *v > 0.0) else { return (0.0, 0.0) };
    let mut p = 1.0 / crate::forecast::classify::adi(y).max(1.0);
    let mut z = y[first_demand];
    let mut sse = 0.0;
    for v in &y[first_demand + 1..] {
        let e = v - p * z;
        sse += e * e;
        if *v > 0.0 {
            p += alpha_p * (1.0 - p);
            z += alpha_z * (v - z);
        } else {
            p -= alpha_p * p;
        }
    }
    (p * z, sse)
}

const TSB_WEIGHTS: [f64; 6] = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5];
const TSB_GRID: usize = TSB_WEIGHTS.len() * TSB_WEIGHTS.len();

/// TSB with weights fitted by grid search (size weight major), every grid point's recursion side
/// by side in one pass, as [`tsb_run`] runs each.
pub fn tsb(y: &[f64], h: usize) -> Vec<f64> {
    let Some(first_demand) = y.iter().position(|v| *v > 0.0) else { return vec![0.0; h] };
    let alpha_z: [f64; TSB_GRID] = std::array::from_fn(|k| TSB_WEIGHTS[k / TSB_WEIGHTS.len()]);
    let alpha_p: [f64; TSB_GRID] = std::array::from_fn(|k| TSB_WEIGHTS[k % TSB_WEIGHTS.len()]);
    let mut p = [1.0 / crate::forecast::classify::adi(y).max(1.0); TSB_GRID];
    let mut z = [y[first_demand]; TSB_GRID];
    let mut sse = [0.0; TSB_GRID];
    for v in &y[first_demand + 1..] {
        for k in 0..TSB_GRID {
            let e = v - p[k] * z[k];
            sse[k] += e * e;
        }
        if *v > 0.0 {
            for k in 0..TSB_GRID {
                p[k] += alpha_p[k] * (1.0 - p[k]);
                z[k] += alpha_z[k] * (v - z[k]);
            }
        } else {
            for k in 0..TSB_GRID {
                p[k] -= alpha_p[k] * p[k];
            }
        }
    }
    let rate = first_least(&sse).map_or(0.0, |k| p[k] * z[k]);
    vec![rate.max(0.0); h]
}

/// ADIDA: sums over non-overlapping buckets of `k` periods (aligned to the end), SES on the
/// bucket totals, spread evenly back over `k` periods.
pub fn adida(y: &[f64], h: usize, k: usize) -> Vec<f64> {
    let k = k.max(1);
    let buckets: Vec<f64> = y[y.len() % k..].chunks(k).map(|c| c.iter().sum()).collect();
    if buckets.is_empty() {
        return vec![0.0; h];
    }
    let level = ses(&buckets, 1)[0];
    vec![level / k as f64; h]
}

/// IMAPA: the mean of ADIDA forecasts over bucket sizes 1 to the series' mean demand interval.
pub fn imapa(y: &[f64], h: usize) -> Vec<f64> {
    let adi = crate::forecast::classify::adi(y);
    let max_k = if adi.is_finite() { (adi.round() as usize).clamp(1, y.len().max(1)) } else { 1 };
    let mut out = vec![0.0; h];
    for k in 1..=max_k {
        for (o, v) in out.iter_mut().zip(adida(y, h, k)) {
            *o += v / max_k as f64;
        }
    }
    out
}

/// Multiplicative seasonal indices for season length `m`, from ratios to a centred moving
/// average, normalised to mean 1. All ones when there are fewer than two full seasons or the
/// series has no level to divide by.
pub fn seasonal_indices(y: &[f64], m: usize) -> Vec<f64> {
    let n = y.len();
    if m < 2 || n < 2 * m {
        return vec![1.0; m.max(1)];
    }
    let mut sums = vec![0.0; m];
    let mut counts = vec![0usize; m];
    let half = m / 2;
    for t in half..n.saturating_sub(half) {
        let window = if m.is_multiple_of(2) {
            // 2×m moving average for even seasons.
            if t + half >= n {
                continue;
            }
            (y[t - half..t + half].iter().sum::<f64>() + y[t - half + 1..=t + half].iter().sum::<f64>())
                / (2.0 * m as f64)
        } else {
            y[t - half..=t + half].iter().sum::<f64>() / m as f64
        };
        if window > 0.0 {
            sums[t % m] += y[t] / window;
            counts[t % m] += 1;
        }
    }
    if counts.contains(&0) {
        return vec![1.0; m];
    }
    let raw: Vec<f64> = sums.iter().zip(&counts).map(|(s, c)| s / *c as f64).collect();
    let mean = raw.iter().sum::<f64>() / m as f64;
    if mean <= 0.0 { vec![1.0; m] } else { raw.iter().map(|r| r / mean).collect() }
}

/// SES on the seasonally adjusted series, re-seasonalised: for a stable seasonal pattern.
pub fn seasonal_ses(y: &[f64], h: usize, m: usize) -> Vec<f64> {
    let idx = seasonal_indices(y, m);
    let n = y.len();
    let adjusted: Vec<f64> =
        y.iter().enumerate().map(|(t, v)| if idx[t % m] > 0.0 { v / idx[t % m] } else { *v }).collect();
    let level = ses(&adjusted, 1)[0];
    (0..h).map(|i| (level * idx[(n + i) % m]).max(0.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    }

    #[test]
    fn seasonal_naive_repeats_the_last_season() {
        assert_eq!(seasonal_naive(&[1.0, 2.0, 3.0, 4.0, 5.0], 4, 2), vec![4.0, 5.0, 4.0, 5.0]);
        assert_eq!(seasonal_naive(&[7.0], 2, 3), vec![7.0, 7.0]);
        assert_eq!(seasonal_naive(&[], 1, 1), vec![0.0]);
    }

    #[test]
    fn ses_follows_its_recursion() {
        // l0 = 10; e1 = 2 -> l1 = 11; e2 = -3 -> l2 = 9.5 (alpha 0.5).
        let (level, sse) = ses_run(&[10.0, 12.0, 8.0], 0.5);
        assert!((level - 9.5).abs() < 1e-12);
        assert!((sse - 13.0).abs() < 1e-12);
    }

    #[test]
    fn croston_and_sba_on_a_hand_computed_series() {
        // Demands 4 (after 2 periods) and 2 (after 3): size 4 -> 4 + 0.5(2-4) = 3,
        // interval 2 -> 2 + 0.5(3-2) = 2.5; rate 1.2, SBA 1.2 * 0.75 = 0.9.
        let y = [0.0, 4.0, 0.0, 0.0, 2.0];
        assert!(close(&croston(&y, 2, 0.5, false), &[1.2, 1.2]));
        assert!(close(&croston(&y, 1, 0.5, true), &[0.9]));
    }

    #[test]
    fn tsb_follows_its_recursion() {
        // ADI 2 -> p0 = 0.5; z0 = 4 at t=1. t=2 (0): p = 0.25; t=3 (2): p = 0.625, z = 3.
        let (rate, _) = tsb_run(&[0.0, 4.0, 0.0, 2.0], 0.5, 0.5);
        assert!((rate - 1.875).abs() < 1e-12);
    }

    #[test]
    fn adida_aggregates_from_the_end() {
        // Buckets of 2 from the end: [1+3, 0+4] = [4, 4]; SES of a constant is that constant.
        assert!(close(&adida(&[9.0, 1.0, 3.0, 0.0, 4.0], 2, 2), &[2.0, 2.0]));
    }

    #[test]
    fn seasonal_indices_recover_a_clean_pattern() {
        let y: Vec<f64> = (0..28).map(|t| if t % 7 == 5 { 20.0 } else { 10.0 }).collect();
        let idx = seasonal_indices(&y, 7);
        assert!((idx[5] / idx[0] - 2.0).abs() < 1e-9, "{idx:?}");
        let f = seasonal_ses(&y, 7, 7);
        assert!((f[5] / f[0] - 2.0).abs() < 1e-9, "{f:?}");
    }
}

#[cfg(test)]
mod grid_properties {
    use super::*;
    use proptest::prelude::*;

    /// Fits each grid point on its own, as the methods did before running them side by side.
    fn one_at_a_time(y: &[f64], h: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut best = (f64::INFINITY, ALPHAS[0]);
        for a in ALPHAS {
            let (_, sse) = ses_run(y, a);
            if sse < best.0 {
                best = (sse, a);
            }
        }
        let ses_f = vec![ses_run(y, best.1).0.max(0.0); h];
        let mut best = (f64::INFINITY, 0.3, 0.1, 0.9);
        for alpha in DAMPED_ALPHAS {
            for beta in DAMPED_BETAS {
                for phi in DAMPED_PHIS {
                    let (_, sse) = damped_trend_run(y, 0, alpha, beta, phi);
                    if sse < best.0 {
                        best = (sse, alpha, beta, phi);
                    }
                }
            }
        }
        let damped = damped_trend_run(y, h, best.1, best.2, best.3).0;
        let mut best = (f64::INFINITY, 0.0);
        for az in TSB_WEIGHTS {
            for ap in TSB_WEIGHTS {
                let (rate, sse) = tsb_run(y, az, ap);
                if sse < best.0 {
                    best = (sse, rate);
                }
            }
        }
        (ses_f, damped, vec![best.1.max(0.0); h])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The side-by-side grid searches give exactly (bit for bit) what fitting each grid
        /// point on its own gives, zero-heavy and smooth histories alike.
        #[test]
        fn side_by_side_grid_searches_equal_one_at_a_time(
            y in proptest::collection::vec(prop_oneof![Just(0.0), 0.0f64..1e4], 0..120),
            h in 1usize..10,
        ) {
            let (ses_f, damped, tsb_f) = one_at_a_time(&y, h);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&ses(&y, h)), bits(&ses_f));
            prop_assert_eq!(bits(&damped_trend(&y, h)), bits(&damped));
            prop_assert_eq!(bits(&tsb(&y, h)), bits(&tsb_f));
        }
    }
}
