//! Forecast accuracy, as defined by the benchmark protocol (data/forecast README) and the M5.
//!
//! `train` is the history the forecast was made from, `actual` and `forecast` the held-out
//! periods. Scaled metrics return `None` when the in-sample scale is zero.

/// Mean absolute scaled error: mean |y - f| over the mean absolute one-step change in `train`.
pub fn mase(train: &[f64], actual: &[f64], forecast: &[f64]) -> Option<f64> {
    let scale = mean(train.windows(2).map(|w| (w[1] - w[0]).abs()))?;
    (scale > 0.0).then(|| mean(actual.iter().zip(forecast).map(|(y, f)| (y - f).abs())).unwrap_or(0.0) / scale)
}

/// Root mean squared scaled error (M5): the scale is the mean squared one-step change from the
/// first non-zero demand on.
pub fn rmsse(train: &[f64], actual: &[f64], forecast: &[f64]) -> Option<f64> {
    let start = train.iter().position(|v| *v != 0.0)?;
    let scale = mean(train[start..].windows(2).map(|w| (w[1] - w[0]).powi(2)))?;
    (scale > 0.0).then(|| {
        let mse = mean(actual.iter().zip(forecast).map(|(y, f)| (y - f).powi(2))).unwrap_or(0.0);
        (mse / scale).sqrt()
    })
}

/// Pinball (quantile) loss of `quantile` at level `tau`, averaged over periods.
pub fn pinball(actual: &[f64], quantile: &[f64], tau: f64) -> f64 {
    mean(actual.iter().zip(quantile).map(|(y, q)| if y >= q { tau * (y - q) } else { (1.0 - tau) * (q - y) }))
        .unwrap_or(0.0)
}

/// Sums pooled over many series: WAPE = Σ|y - f| / Σy, bias = Σ(f - y) / Σy.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pooled {
    pub abs_error: f64,
    pub error: f64,
    pub actual: f64,
}

impl Pooled {
    pub fn add(&mut self, actual: &[f64], forecast: &[f64]) {
        for (y, f) in actual.iter().zip(forecast) {
            self.abs_error += (y - f).abs();
            self.error += f - y;
            self.actual += y;
        }
    }

    pub fn wape(&self) -> Option<f64> {
        (self.actual > 0.0).then(|| self.abs_error / self.actual)
    }

    pub fn bias(&self) -> Option<f64> {
        (self.actual > 0.0).then(|| self.error / self.actual)
    }
}

/// The mean of `values` (`None` when empty).
pub fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// The median of `values` (`None` when empty).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) { (v[mid - 1] + v[mid]) / 2.0 } else { v[mid] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values() {
        let train = [1.0, 3.0, 2.0, 4.0];
        // One-step changes 2, 1, 2: MAE scale 5/3; squared 4, 1, 4: MSE scale 3.
        let (y, f) = ([3.0, 5.0], [4.0, 4.0]);
        assert!((mase(&train, &y, &f).unwrap() - 0.6).abs() < 1e-12);
        assert!((rmsse(&train, &y, &f).unwrap() - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // The RMSSE scale starts at the first non-zero value.
        assert_eq!(rmsse(&[0.0, 0.0, 2.0, 2.0], &[1.0], &[1.0]), None);
        assert!((pinball(&[10.0, 0.0], &[8.0, 2.0], 0.9) - (0.9 * 2.0 + 0.1 * 2.0) / 2.0).abs() < 1e-12);
        let mut p = Pooled::default();
        p.add(&[2.0, 2.0], &[3.0, 2.0]);
        assert_eq!((p.wape(), p.bias()), (Some(0.25), Some(0.25)));
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
