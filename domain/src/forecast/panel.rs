//! Forecasting a whole panel of series: each series' best per-series model, the global model
//! across all of them, or the two averaged, whichever backtested best for its demand class.
//!
//! The choice is made on the last `horizon` periods: per-series models and the global model are
//! fitted without them, forecast them, and the option with the least scaled squared error per
//! class (smooth or sporadic demand) wins. Quantiles come from the same held-out errors, scaled
//! per series and pooled per class (split conformal).

use std::collections::BTreeMap;

use super::engine::{Config, SeriesForecast, empirical_quantile, forecast_series};
use super::global::{self, Panel};

/// How a series' forecast was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Blend {
    Local,
    Global,
    Average,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PanelForecast {
    pub series: SeriesForecast,
    pub blend: Blend,
}

impl PanelForecast {
    /// `ses`, `global` or `global+ses`.
    pub fn model_name(&self) -> String {
        match self.blend {
            Blend::Local => self.series.model.as_str().to_owned(),
            Blend::Global => "global".to_owned(),
            Blend::Average => format!("global+{}", self.series.model.as_str()),
        }
    }
}

fn combine(blend: Blend, local: &[f64], global: &[f64]) -> Vec<f64> {
    match blend {
        Blend::Local => local.to_vec(),
        Blend::Global => global.to_vec(),
        Blend::Average => local.iter().zip(global).map(|(a, b)| (a + b) / 2.0).collect(),
    }
}

/// Mean squared one-step change: the RMSSE scale (1 when flat).
fn sq_scale(y: &[f64]) -> f64 {
    let start = y.iter().position(|v| *v != 0.0).unwrap_or(0);
    let d: Vec<f64> = y[start..].windows(2).map(|w| (w[1] - w[0]).powi(2)).collect();
    let s = if d.is_empty() { 0.0 } else { d.iter().sum::<f64>() / d.len() as f64 };
    if s > 0.0 { s } else { 1.0 }
}

/// Forecasts every series of the panel.
pub fn forecast_panel(panels: &[Panel<'_>], cfg: &Config) -> Vec<PanelForecast> {
    let h = cfg.horizon;
    let m = cfg.season.max(1);
    let locals: Vec<SeriesForecast> = panels.iter().map(|p| forecast_series(p.y, cfg)).collect();
    let validation = global::fit(panels, h, m, h);
    // Held-out forecasts of the last h periods by each option, per series.
    let mut scores: BTreeMap<(bool, Blend), (f64, usize)> = BTreeMap::new();
    let mut residuals: BTreeMap<(bool, Blend), Vec<f64>> = BTreeMap::new();
    for (p, local) in panels.iter().zip(&locals) {
        let n = p.y.len();
        if n < h + 2 * m.max(4) {
            continue;
        }
        let origin = n - h;
        let actual = &p.y[origin..];
        let local_f = local.model.run(&p.y[..origin], h, m);
        let global_f = validation.as_ref().and_then(|g| g.predict(p, origin));
        let sporadic = local.class.is_sporadic();
        let scale = sq_scale(&p.y[..origin]);
        let level = {
            let w = &p.y[origin.saturating_sub(4 * h)..origin];
            let mean = w.iter().sum::<f64>() / w.len().max(1) as f64;
            if mean > 0.0 { mean } else { 1.0 }
        };
        for blend in [Blend::Local, Blend::Global, Blend::Average] {
            let f = match (&global_f, blend) {
                (_, Blend::Local) => local_f.clone(),
                (Some(g), b) => combine(b, &local_f, g),
                (None, _) => continue,
            };
            let sse: f64 = actual.iter().zip(&f).map(|(a, b)| (a - b).powi(2)).sum();
            let e = scores.entry((sporadic, blend)).or_default();
            e.0 += (sse / h as f64 / scale).sqrt();
            e.1 += 1;
            residuals.entry((sporadic, blend)).or_default().extend(actual.iter().zip(&f).map(|(a, b)| (a - b) / level));
        }
    }
    let best = |sporadic: bool| {
        [Blend::Local, Blend::Global, Blend::Average]
            .into_iter()
            .filter_map(|b| scores.get(&(sporadic, b)).map(|(s, n)| (b, s / (*n).max(1) as f64)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(Blend::Local, |(b, _)| b)
    };
    let choice = [(false, best(false)), (true, best(true))];
    let needs_global = choice.iter().any(|(_, b)| *b != Blend::Local);
    let final_model = if needs_global { global::fit(panels, h, m, 0) } else { None };
    panels
        .iter()
        .zip(locals)
        .map(|(p, mut local)| {
            let sporadic = local.class.is_sporadic();
            let blend = choice.iter().find(|(s, _)| *s == sporadic).map_or(Blend::Local, |(_, b)| *b);
            let global_f = final_model.as_ref().and_then(|g| g.predict(p, p.y.len()));
            let (blend, point) = match (blend, global_f) {
                (Blend::Local, _) | (_, None) => (Blend::Local, local.point.clone()),
                (b, Some(g)) => (b, combine(b, &local.point, &g)),
            };
            if blend != Blend::Local {
                let res = residuals.get(&(sporadic, blend)).cloned().unwrap_or_default();
                let n = p.y.len();
                let w = &p.y[n.saturating_sub(4 * h)..];
                let level = w.iter().sum::<f64>() / w.len().max(1) as f64;
                local.quantiles = conformal(&point, &res, level, &cfg.quantiles);
                local.point = point;
            }
            PanelForecast { series: local, blend }
        })
        .collect()
}

/// Quantiles from pooled scale-free residuals, times the series' level; ordered and non-negative.
fn conformal(point: &[f64], residuals: &[f64], level: f64, levels: &[f64]) -> Vec<Vec<f64>> {
    let offsets: Vec<f64> = levels.iter().map(|tau| empirical_quantile(residuals, *tau) * level).collect();
    let mut order: Vec<usize> = (0..levels.len()).collect();
    order.sort_by(|a, b| levels[*a].total_cmp(&levels[*b]));
    let mut out = vec![Vec::with_capacity(point.len()); levels.len()];
    for p in point {
        let mut v: Vec<f64> = order.iter().map(|i| (p + offsets[*i]).max(0.0)).collect();
        v.sort_by(f64::total_cmp);
        for (i, q) in order.iter().zip(v) {
            out[*i].push(q);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Promotions (known in advance) lift every series; only the global model can see them, so
    /// it wins the held-out comparison and the forecast lifts on the promoted periods.
    #[test]
    fn the_global_model_is_chosen_when_it_backtests_better() {
        let (n, h) = (160, 14);
        let promo = |t: usize| t % 10 == 3;
        let exog: Vec<Vec<f64>> = (0..n + h).map(|t| vec![f64::from(u8::from(promo(t)))]).collect();
        let ys: Vec<Vec<f64>> = [8.0, 40.0, 200.0, 90.0]
            .iter()
            .map(|base| (0..n).map(|t| base * if promo(t) { 3.0 } else { 1.0 }).collect())
            .collect();
        let panels: Vec<Panel<'_>> = ys.iter().map(|y| Panel { y, exog: &exog }).collect();
        let out = forecast_panel(&panels, &Config::new(h, 1));
        assert_eq!(out.len(), 4);
        for f in &out {
            assert_ne!(f.blend, Blend::Local, "{}", f.model_name());
            assert!(f.series.point.iter().all(|v| v.is_finite() && *v >= 0.0));
        }
        let f = &out[1].series.point;
        let (promoted, plain) =
            ((0..h).find(|s| promo(n + s)).expect("a promo"), (0..h).find(|s| !promo(n + s)).expect("a plain day"));
        assert!(f[promoted] > 1.5 * f[plain], "{f:?}");
    }
}
