//! Forecasting a whole panel of series: a per-series model, the global model across all of them,
//! or the two averaged, whichever backtested best for its demand class.
//!
//! The per-series model is chosen per demand class too: the candidate with the least scaled
//! backtest error over all series of the class (rolling origins), which is far more reliable
//! than what a few origins of one series say. Then, on each of the last four horizons, the
//! per-series models and the global model are fitted on what came before it and forecast it,
//! and the option with the least scaled squared error per class (smooth or sporadic demand)
//! wins: one horizon alone may be a quiet or a freak stretch of the year. Quantiles come from
//! the same held-out errors, divided by each series' root mean squared one-step change and
//! pooled per class (split conformal), so an erratic series gets a wider band than a steady one
//! of the same level. The periods an event is on in have a band of their own, from the held-out
//! event periods' errors: a holiday week is forecast less surely than a usual one, and the
//! policies built on the band hold more stock for it. It is centred as the usual band is (the
//! point forecast says where, the event periods' errors how surely): which events fell in the
//! held-out periods (Christmas, under-forecast) says little of the next one's bias.
//!
//! The per-series models cannot read the calendar: they see the periods of events (a holiday in
//! daily data; in weekly data also a yearly event such as Mother's Day) filled in as stockouts
//! are, and an event's own period is the global model's alone, in the average and, when the
//! panel has events, also where the per-series model was chosen.
//!
//! Two steps, so a service can fit once and forecast series one at a time: [`fit_panel`] makes a
//! [`PanelModel`] (serialisable: the global models, the choice per class, the residual quantiles)
//! and [`apply`] forecasts one series with it. [`forecast_panel`] does both.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::engine::{
    Config, Model, SeriesForecast, empirical_quantiles, forecast_series, forecast_series_as, impute_censored,
};
use super::global::{self, GlobalModel, Panel};
use super::metrics;

/// How a series' forecast was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Blend {
    Local,
    Global,
    Average,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PanelForecast {
    pub series: SeriesForecast,
    pub blend: Blend,
    /// The per-series model is the one chosen for the whole demand class.
    pub class_choice: bool,
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

    /// Why this model: the demand class, the choice for the class, and the per-series contest.
    pub fn reason(&self) -> String {
        let s = &self.series;
        let class = s.class.as_str();
        let names = || s.candidates.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join(", ");
        let local = match s.candidates.as_slice() {
            [] => format!("{} (too little history to compare models)", s.model.as_str()),
            [only] => format!("{} (the only candidate)", only.0.as_str()),
            _ if self.class_choice => format!(
                "{} had the least backtest error across the series of this demand class among {}",
                s.model.as_str(),
                names()
            ),
            _ => format!("{} had the least backtest error among {}", s.model.as_str(), names()),
        };
        match self.blend {
            Blend::Local => format!("{class} demand; per-series model: {local}"),
            Blend::Global => format!(
                "{class} demand; the global model across all series forecast the held-out periods of {class_group} series better than per-series models",
                class_group = if s.class.is_sporadic() { "sporadic" } else { "regular" }
            ),
            Blend::Average => format!(
                "{class} demand; the average of the global model and the per-series model forecast the held-out periods of {class_group} series best; {local}",
                class_group = if s.class.is_sporadic() { "sporadic" } else { "regular" }
            ),
        }
    }
}

/// Held-out accuracy of one series: the method as chosen, refitted without the last `horizon`
/// periods and compared with them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Holdout {
    pub periods: usize,
    /// Σ|y − f|, Σ(f − y) and Σy, to pool WAPE and bias over many series.
    pub abs_error: f64,
    pub error: f64,
    pub actual: f64,
    pub wape: Option<f64>,
    pub bias: Option<f64>,
    pub mase: Option<f64>,
    /// Mean pinball loss over the quantile levels and periods, in units.
    pub pinball: Option<f64>,
}

/// What [`fit_panel`] learnt from the whole panel; [`apply`] uses it series by series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PanelModel {
    pub horizon: usize,
    pub season: usize,
    /// The global model fitted without the last `horizon` periods (for held-out accuracy).
    validation: Option<GlobalModel>,
    /// The global model fitted on everything (present when some class uses it).
    global: Option<GlobalModel>,
    /// The choice for regular and for sporadic demand.
    pub smooth: Blend,
    pub sporadic: Blend,
    /// The per-series model for regular and for sporadic demand (when the class had series to
    /// judge by).
    pub smooth_model: Option<Model>,
    pub sporadic_model: Option<Model>,
    /// The covariates that mark events (see [`usual_history`]); none in models stored before.
    #[serde(default)]
    events: Vec<usize>,
    /// Scale-free held-out residuals of the chosen blend per class, as 201 quantiles (0 %, 0.5 %, …, 100 %):
    /// errors over the series' root mean squared one-step change (so each series' band is as wide
    /// as its own demand is erratic), or, in models stored before `residuals_in_scale`, over its
    /// recent level.
    smooth_residuals: Vec<f64>,
    sporadic_residuals: Vec<f64>,
    #[serde(default)]
    residuals_in_scale: bool,
    /// The same of the held-out periods an event was on in, per class, moved to the usual band's
    /// median; empty when the class had too few such periods (they are pooled with the others
    /// then) and in models stored before.
    #[serde(default)]
    smooth_event_residuals: Vec<f64>,
    #[serde(default)]
    sporadic_event_residuals: Vec<f64>,
}

/// The choice between per-series and global models is made on this many held-out horizons
/// before the end (one would be a single, possibly quiet or freak, stretch of the year).
const VALIDATION_ORIGINS: usize = 4;

/// The most a chosen option may have over- or under-forecast the held-out horizons, pooled over
/// the class (a fraction of demand).
const MAX_BIAS: f64 = 0.10;

/// How many points of the residual distribution a model keeps.
const RESIDUAL_GRID: usize = 201;

/// The fewest held-out event periods of a class whose errors make a band of their own.
const MIN_EVENT_RESIDUALS: usize = 100;

/// Held-out errors of one option, in usual periods and in periods an event was on in.
#[derive(Default)]
struct Residuals {
    usual: Vec<f64>,
    event: Vec<f64>,
}

impl Residuals {
    /// The usual band's grid and the event periods' (see [`PanelModel::smooth_event_residuals`]).
    fn grids(&self) -> (Vec<f64>, Vec<f64>) {
        if self.event.len() < MIN_EVENT_RESIDUALS || self.usual.is_empty() {
            return (grid(&[self.usual.as_slice(), &self.event].concat()), Vec::new());
        }
        let (usual, event) = (grid(&self.usual), grid(&self.event));
        let shift = usual[RESIDUAL_GRID / 2] - event[RESIDUAL_GRID / 2];
        let event = event.iter().map(|v| v + shift).collect();
        (usual, event)
    }
}

fn grid(residuals: &[f64]) -> Vec<f64> {
    if residuals.is_empty() {
        return Vec::new();
    }
    let taus: Vec<f64> = (0..RESIDUAL_GRID).map(|i| i as f64 / (RESIDUAL_GRID - 1) as f64).collect();
    empirical_quantiles(residuals, &taus)
}

/// The forecast of `blend` from `origin` of `p`, from the per-series model's and (when there is
/// one) the global model's. In any blend, where an event is on in a forecast period the global
/// model stands alone: the per-series model cannot see the calendar.
fn combine(
    blend: Blend,
    p: &Panel<'_>,
    origin: usize,
    local: &[f64],
    global: Option<&[f64]>,
    events: &[usize],
) -> Vec<f64> {
    let Some(global) = global else { return local.to_vec() };
    let pick = |i: usize, (a, b): (&f64, &f64)| match blend {
        Blend::Global => *b,
        _ if global::event_on(p, events, origin + i) => *b,
        Blend::Local => *a,
        Blend::Average => (a + b) / 2.0,
    };
    local.iter().zip(global).enumerate().map(|(i, ab)| pick(i, ab)).collect()
}

/// The history the per-series models see: the periods an event was on in (see [`GlobalModel`]'s
/// events) are filled as stockouts are ([`impute_censored`], season `m`), so those models
/// forecast the usual level and season, not an event's peak; the calendar is the global model's
/// to read.
pub fn usual_history<'a>(p: &Panel<'a>, events: &[usize], m: usize) -> Cow<'a, [f64]> {
    if events.is_empty() {
        return Cow::Borrowed(p.y);
    }
    let on: Vec<bool> = (0..p.y.len()).map(|t| global::event_on(p, events, t)).collect();
    if on.contains(&true) { Cow::Owned(impute_censored(p.y, &on, m)) } else { Cow::Borrowed(p.y) }
}

/// Whether a forecast of `blend` needs the global model: any but a per-series one, and that too
/// when the panel has `events` (their periods are the global model's).
fn uses_global(blend: Blend, events: &[usize]) -> bool {
    blend != Blend::Local || !events.is_empty()
}

/// Mean squared one-step change: the RMSSE scale (1 when flat).
fn sq_scale(y: &[f64]) -> f64 {
    let start = y.iter().position(|v| *v != 0.0).unwrap_or(0);
    let d: Vec<f64> = y[start..].windows(2).map(|w| (w[1] - w[0]).powi(2)).collect();
    let s = if d.is_empty() { 0.0 } else { d.iter().sum::<f64>() / d.len() as f64 };
    if s > 0.0 { s } else { 1.0 }
}

/// The mean of the last `4 h` periods before `end`: a series' recent level.
fn recent_mean(y: &[f64], end: usize, h: usize) -> f64 {
    let w = &y[end.saturating_sub(4 * h)..end];
    w.iter().sum::<f64>() / w.len().max(1) as f64
}

/// Per-series forecasts of every series (on [`usual_history`]), as [`fit_panel`] and [`apply`]
/// take them.
pub fn locals(panels: &[Panel<'_>], cfg: &Config) -> Vec<SeriesForecast> {
    let events = global::event_columns(panels);
    panels.iter().map(|p| forecast_series(&usual_history(p, &events, cfg.season), cfg)).collect()
}

/// The per-series model of least scaled backtest error (root mean squared error over the RMSSE
/// scale, averaged over series) for the series of each class; a model must be a candidate of at
/// least half of them.
fn class_models(panels: &[Panel<'_>], locals: &[SeriesForecast]) -> [Option<Model>; 2] {
    let mut out = [None, None];
    for (slot, sporadic) in out.iter_mut().zip([false, true]) {
        let mut scores: BTreeMap<Model, (f64, usize)> = BTreeMap::new();
        let mut members = 0usize;
        for (p, local) in panels.iter().zip(locals) {
            if local.class.is_sporadic() != sporadic || local.candidates.is_empty() || local.backtest_mae.is_none() {
                continue;
            }
            members += 1;
            let scale = sq_scale(p.y);
            for (model, mse) in &local.candidates {
                let e = scores.entry(*model).or_default();
                e.0 += (mse / scale).sqrt();
                e.1 += 1;
            }
        }
        *slot = scores
            .into_iter()
            .filter(|(_, (_, n))| 2 * n >= members && *n > 0)
            .map(|(model, (sum, n))| (model, sum / n as f64))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .map(|(model, _)| model);
    }
    out
}

/// Learns from the whole panel which forecast to use per demand class, and fits the global model.
/// `locals[i]` is `forecast_series` of `panels[i]`.
pub fn fit_panel(panels: &[Panel<'_>], locals: &[SeriesForecast], cfg: &Config) -> PanelModel {
    let h = cfg.horizon;
    let m = cfg.season.max(1);
    let [smooth_model, sporadic_model] = class_models(panels, locals);
    let model_of = |local: &SeriesForecast| {
        let class_model = if local.class.is_sporadic() { sporadic_model } else { smooth_model };
        class_model.filter(|c| local.candidates.iter().any(|(m, _)| m == c)).unwrap_or(local.model)
    };
    // The global model as it was `j` horizons ago, for j = 1..=k: each forecasts the horizon
    // after its own end, as the per-series models do.
    let k = VALIDATION_ORIGINS;
    let mut models: Vec<Option<GlobalModel>> = (1..=k).map(|j| global::fit(panels, h, m, j * h)).collect();
    let events = global::event_columns(panels);
    // Held-out forecasts of the last k·h periods by each option, h at a time, per series.
    let mut scores: BTreeMap<(bool, Blend), (f64, usize)> = BTreeMap::new();
    let mut pooled: BTreeMap<(bool, Blend), metrics::Pooled> = BTreeMap::new();
    let mut residuals: BTreeMap<(bool, Blend), Residuals> = BTreeMap::new();
    for (p, local) in panels.iter().zip(locals) {
        let n = p.y.len();
        let sporadic = local.class.is_sporadic();
        let model = model_of(local);
        let usual = usual_history(p, &events, m);
        for (j, origin) in
            (1..=k).rev().filter_map(|j| n.checked_sub(j * h).map(|o| (j, o))).filter(|(_, o)| *o >= m.max(4) + h)
        {
            let actual = &p.y[origin..origin + h];
            let local_f = model.run(&usual[..origin], h, m);
            let global_f = models[j - 1].as_ref().and_then(|g| g.predict(p, origin));
            let scale = sq_scale(&p.y[..origin]);
            let unit = scale.sqrt();
            // Which held-out periods an event was on in, the same for every option.
            let on: Vec<bool> = (0..h).map(|i| global::event_on(p, &events, origin + i)).collect();
            for blend in [Blend::Local, Blend::Global, Blend::Average] {
                if blend != Blend::Local && global_f.is_none() {
                    continue;
                }
                let f = combine(blend, p, origin, &local_f, global_f.as_deref(), &events);
                let sse: f64 = actual.iter().zip(&f).map(|(a, b)| (a - b).powi(2)).sum();
                let e = scores.entry((sporadic, blend)).or_default();
                e.0 += (sse / h as f64 / scale).sqrt();
                e.1 += 1;
                pooled.entry((sporadic, blend)).or_default().add(actual, &f);
                let r = residuals.entry((sporadic, blend)).or_default();
                for ((a, b), on) in actual.iter().zip(&f).zip(&on) {
                    let pool = if *on { &mut r.event } else { &mut r.usual };
                    pool.push((a - b) / unit);
                }
            }
        }
    }
    // The least scaled error among the options whose pooled bias is within MAX_BIAS (squared
    // error rewards forecasting too little for sporadic demand, where zero often scores best),
    // or the least biased when none is.
    let best = |sporadic: bool| {
        let options: Vec<(Blend, f64, f64)> = [Blend::Local, Blend::Global, Blend::Average]
            .into_iter()
            .filter_map(|b| {
                let (s, n) = scores.get(&(sporadic, b))?;
                let bias = pooled.get(&(sporadic, b)).and_then(metrics::Pooled::bias).unwrap_or(0.0).abs();
                Some((b, s / (*n).max(1) as f64, bias))
            })
            .collect();
        let within = options.iter().filter(|o| !sporadic || o.2 <= MAX_BIAS).min_by(|a, b| a.1.total_cmp(&b.1));
        within.or_else(|| options.iter().min_by(|a, b| a.2.total_cmp(&b.2))).map_or(Blend::Local, |o| o.0)
    };
    let (smooth, sporadic) = (best(false), best(true));
    let needed = uses_global(smooth, &events) || uses_global(sporadic, &events);
    let global = if needed { global::fit(panels, h, m, 0) } else { None };
    let kept =
        |sporadic: bool, blend: Blend| residuals.get(&(sporadic, blend)).map(Residuals::grids).unwrap_or_default();
    let (smooth_residuals, smooth_event_residuals) = kept(false, smooth);
    let (sporadic_residuals, sporadic_event_residuals) = kept(true, sporadic);
    PanelModel {
        horizon: h,
        season: m,
        smooth_residuals,
        sporadic_residuals,
        smooth_event_residuals,
        sporadic_event_residuals,
        validation: models.swap_remove(0),
        events,
        residuals_in_scale: true,
        global,
        smooth,
        sporadic,
        smooth_model,
        sporadic_model,
    }
}

impl PanelModel {
    fn choice(&self, sporadic: bool) -> (Blend, &[f64]) {
        if sporadic { (self.sporadic, &self.sporadic_residuals) } else { (self.smooth, &self.smooth_residuals) }
    }

    fn event_residuals(&self, sporadic: bool) -> &[f64] {
        if sporadic { &self.sporadic_event_residuals } else { &self.smooth_event_residuals }
    }

    fn class_model(&self, sporadic: bool) -> Option<Model> {
        if sporadic { self.sporadic_model } else { self.smooth_model }
    }
}

/// Forecasts one series with a fitted panel model; `local` is `forecast_series` of its
/// [`usual_history`] (it is made again with the class's model when that differs and is a
/// candidate).
pub fn apply(model: &PanelModel, p: &Panel<'_>, local: SeriesForecast, cfg: &Config) -> PanelForecast {
    apply_with(model, model.global.as_ref(), p, local, cfg)
}

/// [`apply`] with the global model `global`.
fn apply_with(
    model: &PanelModel,
    global: Option<&GlobalModel>,
    p: &Panel<'_>,
    mut local: SeriesForecast,
    cfg: &Config,
) -> PanelForecast {
    let sporadic = local.class.is_sporadic();
    let class_model = model.class_model(sporadic).filter(|c| local.candidates.iter().any(|(m, _)| m == c));
    if let Some(c) = class_model
        && c != local.model
    {
        local = forecast_series_as(&usual_history(p, &model.events, cfg.season), cfg, Some(c));
    }
    let class_choice = class_model.is_some_and(|c| c == local.model);
    let (blend, residuals) = model.choice(sporadic);
    let global_f = uses_global(blend, &model.events).then(|| global?.predict(p, p.y.len())).flatten();
    // Zero for a series that stopped selling: no spread then.
    let unit = || {
        let level = recent_mean(p.y, p.y.len(), cfg.horizon);
        if level > 0.0 && model.residuals_in_scale { sq_scale(p.y).sqrt() } else { level }
    };
    let blend = match global_f {
        Some(g) => {
            let point = combine(blend, p, p.y.len(), &local.point, Some(&g), &model.events);
            if blend == Blend::Local {
                // The per-series band moves with the point where the global model stands in.
                for q in &mut local.quantiles {
                    for (v, (new, old)) in q.iter_mut().zip(point.iter().zip(&local.point)) {
                        *v = (*v + new - old).max(0.0);
                    }
                }
            } else {
                local.quantiles = conformal(&point, residuals, unit(), &cfg.quantiles);
            }
            let events = model.event_residuals(sporadic);
            let n = p.y.len();
            // Only a model with an event band looks for event periods ahead.
            let on: Vec<usize> = if events.is_empty() {
                Vec::new()
            } else {
                (0..point.len()).filter(|t| global::event_on(p, &model.events, n + t)).collect()
            };
            if !on.is_empty() {
                let band = conformal(&point, events, unit(), &cfg.quantiles);
                for (q, b) in local.quantiles.iter_mut().zip(&band) {
                    for t in &on {
                        q[*t] = b[*t];
                    }
                }
            }
            local.point = point;
            blend
        }
        None => Blend::Local,
    };
    PanelForecast { series: local, blend, class_choice }
}

/// Held-out accuracy of `forecast` (made by [`apply`]): the same method refitted without the last
/// `horizon` periods, its quantiles offset from the point as the final forecast's are. `None`
/// when the history is too short to hold anything out.
pub fn holdout(model: &PanelModel, p: &Panel<'_>, forecast: &PanelForecast, cfg: &Config) -> Option<Holdout> {
    held_out(model, p, &usual_history(p, &model.events, cfg.season), forecast, cfg)
}

/// [`holdout`] with the series' [`usual_history`] already at hand.
fn held_out(
    model: &PanelModel,
    p: &Panel<'_>,
    usual: &[f64],
    forecast: &PanelForecast,
    cfg: &Config,
) -> Option<Holdout> {
    let (h, m) = (cfg.horizon, cfg.season.max(1));
    let n = p.y.len();
    if n < h + 2 * m.max(4) {
        return None;
    }
    let origin = n - h;
    let local = || forecast.series.model.run(&usual[..origin], h, m);
    let global =
        uses_global(forecast.blend, &model.events).then(|| model.validation.as_ref()?.predict(p, origin)).flatten();
    let point: Vec<f64> = match (forecast.blend, global) {
        (Blend::Global, Some(g)) => g,
        (Blend::Global | Blend::Average, None) => return None,
        (b, g) => combine(b, p, origin, &local(), g.as_deref(), &model.events),
    }
    .into_iter()
    .map(|v| v.max(0.0))
    .collect();
    let actual = &p.y[origin..];
    let mut pooled = metrics::Pooled::default();
    pooled.add(actual, &point);
    let losses: Vec<f64> = cfg
        .quantiles
        .iter()
        .zip(&forecast.series.quantiles)
        .map(|(tau, q)| {
            let shifted: Vec<f64> =
                point.iter().enumerate().map(|(i, f)| (f + q[i] - forecast.series.point[i]).max(0.0)).collect();
            metrics::pinball(actual, &shifted, *tau)
        })
        .collect();
    Some(Holdout {
        periods: h,
        abs_error: pooled.abs_error,
        error: pooled.error,
        actual: pooled.actual,
        wape: pooled.wape(),
        bias: pooled.bias(),
        mase: metrics::mase(&p.y[..origin], actual, &point),
        pinball: (!losses.is_empty()).then(|| losses.iter().sum::<f64>() / losses.len() as f64),
    })
}

/// Forecasts one series with a fitted panel model, and measures the same method on its held-out
/// last `horizon` periods.
pub fn forecast_one(model: &PanelModel, p: &Panel<'_>, cfg: &Config) -> (PanelForecast, Option<Holdout>) {
    let usual = usual_history(p, &model.events, cfg.season);
    let f = forecast_usual(model, p, &usual, cfg);
    let h = held_out(model, p, &usual, &f, cfg);
    (f, h)
}

/// Forecasts one series as [`forecast_one`] does, without measuring it, and with the global model
/// fitted without the panel's last `horizon` periods (the one [`holdout`] measures) where there is
/// one: a review in the past (`p.y` cut there, `p.exog` reaching past the cut by the horizon)
/// within those periods forecasts as it would have then, not with a model that has seen what came
/// after it.
pub fn forecast_before_holdout(model: &PanelModel, p: &Panel<'_>, cfg: &Config) -> PanelForecast {
    let usual = usual_history(p, &model.events, cfg.season);
    let global = model.validation.as_ref().or(model.global.as_ref());
    apply_with(model, global, p, local_forecast(model, &usual, cfg), cfg)
}

fn forecast_usual(model: &PanelModel, p: &Panel<'_>, usual: &[f64], cfg: &Config) -> PanelForecast {
    apply(model, p, local_forecast(model, usual, cfg), cfg)
}

/// The per-series forecast, by the model chosen for the series' demand class.
fn local_forecast(model: &PanelModel, usual: &[f64], cfg: &Config) -> SeriesForecast {
    let prefer = model.class_model(super::classify::classify(usual).is_sporadic());
    forecast_series_as(usual, cfg, prefer)
}

/// Forecasts every series of the panel.
pub fn forecast_panel(panels: &[Panel<'_>], cfg: &Config) -> Vec<PanelForecast> {
    let locals = locals(panels, cfg);
    let model = fit_panel(panels, &locals, cfg);
    panels.iter().zip(locals).map(|(p, local)| apply(&model, p, local, cfg)).collect()
}

/// Quantiles from pooled scale-free residuals, times the series' `unit`; ordered and non-negative.
fn conformal(point: &[f64], residuals: &[f64], unit: f64, levels: &[f64]) -> Vec<Vec<f64>> {
    let offsets: Vec<f64> = empirical_quantiles(residuals, levels).iter().map(|q| q * unit).collect();
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
    use crate::forecast::DemandClass;

    /// The class's model is the one with the least error over all its series, even where one
    /// series' own backtest (a few origins) narrowly preferred another.
    #[test]
    fn the_per_series_model_is_chosen_across_the_class() {
        let y: Vec<f64> = (0..40).map(|t| f64::from(t % 3 + 1)).collect();
        let panels: Vec<Panel<'_>> = (0..3).map(|_| Panel { y: &y, exog: &[] }).collect();
        let series = |candidates: Vec<(Model, f64)>| SeriesForecast {
            point: vec![1.0; 4],
            quantiles: vec![],
            model: candidates[0].0,
            class: DemandClass::Smooth,
            backtest_mae: Some(1.0),
            candidates,
        };
        let locals = vec![
            series(vec![(Model::Ses, 1.0), (Model::DampedTrend, 4.0)]),
            series(vec![(Model::Ses, 1.0), (Model::DampedTrend, 4.0)]),
            series(vec![(Model::DampedTrend, 0.9), (Model::Ses, 1.0)]),
        ];
        assert_eq!(class_models(&panels, &locals), [Some(Model::Ses), None]);
        // And the series whose own backtest preferred the damped trend is forecast with SES.
        let model = fit_panel(&panels, &locals, &Config::new(4, 1));
        let f = apply(&model, &panels[2], locals[2].clone(), &Config::new(4, 1));
        assert_eq!((f.series.model, f.class_choice), (Model::Ses, true));
        let named = f.reason().contains("across the series of this demand class");
        assert!(named || f.blend == Blend::Global, "{}", f.reason());
    }

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

    /// A review within the held-out periods forecasts with the global model fitted without them:
    /// what the held-out accuracy measured, not the final model, which has seen the periods it
    /// would be forecasting.
    #[test]
    fn a_review_in_the_held_out_periods_forecasts_with_the_model_that_did_not_see_them() {
        let (n, h) = (160, 14);
        let promo = |t: usize| t % 10 == 3;
        // Promotions lift threefold, and fivefold in the last h periods.
        let lift = |t: usize| match (promo(t), t >= n - h) {
            (false, _) => 1.0,
            (true, false) => 3.0,
            (true, true) => 5.0,
        };
        let exog: Vec<Vec<f64>> = (0..n + h).map(|t| vec![f64::from(u8::from(promo(t)))]).collect();
        let ys: Vec<Vec<f64>> =
            [8.0, 40.0, 200.0, 90.0].iter().map(|base| (0..n).map(|t| base * lift(t)).collect()).collect();
        let panels: Vec<Panel<'_>> = ys.iter().map(|y| Panel { y, exog: &exog }).collect();
        let cfg = Config::new(h, 1);
        let model = fit_panel(&panels, &locals(&panels, &cfg), &cfg);
        let mut checked = 0;
        for p in &panels {
            let (f, holdout) = forecast_one(&model, p, &cfg);
            let holdout = holdout.expect("held out");
            if f.blend != Blend::Global {
                continue;
            }
            let cut = Panel { y: &p.y[..n - h], exog: p.exog };
            let review = forecast_before_holdout(&model, &cut, &cfg).series.point;
            let abs: f64 = p.y[n - h..].iter().zip(&review).map(|(y, f)| (y - f).abs()).sum();
            assert!((abs - holdout.abs_error).abs() < 1e-6 * holdout.actual, "{abs} against {holdout:?}");
            let (seen, _) = forecast_one(&model, &cut, &cfg);
            let promoted = (0..h).find(|s| promo(n - h + s)).expect("a promotion");
            assert!(
                seen.series.point[promoted] > review[promoted] * 1.01,
                "{:?} against {review:?}",
                seen.series.point
            );
            checked += 1;
        }
        assert!(checked > 0, "the global model forecasts some series");
    }

    /// Residuals are pooled in units of each series' own one-step change: of two series at the
    /// same level, the erratic one gets the wider band.
    #[test]
    fn an_erratic_series_gets_a_wider_band_than_a_steady_one_of_the_same_level() {
        let noise = |t: usize, k: usize| ((t * 7 + k * 3) % 5) as f64 - 2.0;
        let ys: Vec<Vec<f64>> = (0..8)
            .map(|k| (0..80).map(|t| 20.0 + noise(t, k) * if k % 2 == 0 { 0.5 } else { 4.0 }).collect())
            .collect();
        let panels: Vec<Panel<'_>> = ys.iter().map(|y| Panel { y, exog: &[] }).collect();
        let mut cfg = Config::new(4, 1);
        cfg.quantiles = vec![0.1, 0.9];
        let out = forecast_panel(&panels, &cfg);
        let width = |f: &PanelForecast| f.series.quantiles[1][0] - f.series.quantiles[0][0];
        let (steady, erratic) = (width(&out[0]), width(&out[1]));
        assert!(erratic > 3.0 * steady, "steady {steady}, erratic {erratic}");
    }

    /// Events lift demand by anything from half to three times, usual periods barely move: an
    /// event's period gets the band of the held-out event periods, wider than a usual period's,
    /// and centred as the class's usual band is.
    #[test]
    fn an_event_period_gets_the_band_of_held_out_event_periods() {
        let (n, h, k) = (300, 25, 30);
        let event = |i: usize, t: usize| (t + 7 * i).is_multiple_of(25);
        let lift = |i: usize, t: usize| [0.5, 3.0, 1.0, 2.5, 1.5][(t / 25 + i) % 5];
        let ys: Vec<Vec<f64>> = (0..k)
            .map(|i| {
                let base = 40.0 + (i % 4) as f64 * 10.0;
                (0..n).map(|t| base * if event(i, t) { lift(i, t) } else { 1.0 } + ((t * 7 + i) % 3) as f64).collect()
            })
            .collect();
        let exog: Vec<Vec<Vec<f64>>> =
            (0..k).map(|i| (0..n + h).map(|t| vec![f64::from(u8::from(event(i, t)))]).collect()).collect();
        let panels: Vec<Panel<'_>> = ys.iter().zip(&exog).map(|(y, e)| Panel { y, exog: e }).collect();
        let mut cfg = Config::new(h, 1);
        cfg.quantiles = vec![0.1, 0.5, 0.9];
        let model = fit_panel(&panels, &locals(&panels, &cfg), &cfg);
        assert!(!model.smooth_event_residuals.is_empty(), "4 held-out event periods in each of {k} series");
        let f = forecast_one(&model, &panels[0], &cfg).0.series;
        let on = (0..h).find(|t| event(0, n + t)).expect("an event ahead");
        let off = (0..h).find(|t| !event(0, n + t)).expect("a usual period ahead");
        let width = |t: usize| f.quantiles[2][t] - f.quantiles[0][t];
        assert!(width(on) > 3.0 * width(off), "event {}, usual {}", width(on), width(off));
        // Centred where the class's usual band is: its median error, in the series' unit.
        let usual = model.smooth_residuals[RESIDUAL_GRID / 2] * sq_scale(&ys[0]).sqrt();
        let centre = f.quantiles[1][on] - f.point[on];
        assert!((centre - usual).abs() < 1e-9, "event {centre}, usual {usual}");
    }

    /// The per-series models see an event's period at the level before it, so a forecast made
    /// just after an event does not carry its peak; in an average, the event's own period is the
    /// global model's alone.
    #[test]
    fn per_series_models_do_not_see_events() {
        let n = 60;
        let exog: Vec<Vec<f64>> = (0..n + 4).map(|t| vec![f64::from(u8::from(t == n - 1 || t == n + 2))]).collect();
        let y: Vec<f64> = (0..n).map(|t| if t == n - 1 { 90.0 } else { 10.0 + (t % 2) as f64 }).collect();
        let p = Panel { y: &y, exog: &exog };
        let usual = usual_history(&p, &[0], 2);
        assert_eq!(usual[n - 1], y[n - 3], "the same phase a season before");
        assert_eq!(usual[..n - 1], y[..n - 1]);
        assert!(matches!(usual_history(&p, &[], 2), Cow::Borrowed(_)));
        let ses = Model::Ses.run(&usual, 4, 1);
        assert!(ses.iter().all(|v| (*v - 10.5).abs() < 1.0), "{ses:?}");
        let (local, global) = ([10.0; 4], [12.0, 12.0, 30.0, 12.0]);
        assert_eq!(combine(Blend::Average, &p, n, &local, Some(&global), &[0]), [11.0, 11.0, 30.0, 11.0]);
        assert_eq!(combine(Blend::Average, &p, n, &local, Some(&global), &[]), [11.0, 11.0, 20.0, 11.0]);
        // The per-series forecast too leaves the event's period to the global model.
        assert_eq!(combine(Blend::Local, &p, n, &local, Some(&global), &[0]), [10.0, 10.0, 30.0, 10.0]);
        assert_eq!(combine(Blend::Local, &p, n, &local, None, &[0]), local);
    }
}
