//! The global model: one ridge regression across all of a tenant's series, on scale-free
//! features (recent means and the last few periods, same-season values, demand frequency,
//! horizon, the series' own lift on frequent off/on days such as weekdays or SNAP days, the last
//! period's demand when it held a rare event and, per occasional flag, its excess over the periods
//! before when that flag was on in it, so a holiday peak is not taken for the new level)
//! and known-in-advance covariates (calendar, retail events, price, promotions). Direct
//! multi-horizon: each forecast step is predicted from what was known at the origin, so forecasts
//! never feed back and cannot explode.

/// One series as the global model sees it.
#[derive(Debug, Clone, Copy)]
pub struct Panel<'a> {
    /// Demand history, oldest first.
    pub y: &'a [f64],
    /// Known covariates, one row per period of the history and then of the horizon (or empty).
    pub exog: &'a [Vec<f64>],
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GlobalModel {
    coef: Vec<f64>,
    mean: Vec<f64>,
    sd: Vec<f64>,
    horizon: usize,
    season: usize,
    exog_width: usize,
    /// The off/on covariates that are on often enough for each series to show its own lift.
    #[serde(default)]
    frequent: Vec<usize>,
    /// The off/on covariates on in under 2 % of periods (events): the last period's demand when
    /// one was on in it is a feature, so an event's peak is not taken for the new level. Models
    /// stored before it have none and no such feature.
    #[serde(default)]
    events: Vec<usize>,
    /// The frequent off/on covariates on in under 5 % of periods (occasional: in weekly data, a
    /// yearly event counted three times or more). The last period's excess over the periods
    /// before it, when one was on in it, is a feature: a week after Mother's Day forecast from
    /// its peak would carry it, and a week after Easter (no peak for most goods) must not be
    /// read as one. Models stored before it have none and no such feature.
    #[serde(default)]
    occasional: Vec<usize>,
    /// The excess is a feature per occasional flag: what follows Christmas week (a slump) says
    /// nothing of what follows Mother's Day week (the usual level), and which of their weeks are
    /// among the training origins changes from one fit to the next. Models stored before it
    /// have one excess feature for all the flags.
    #[serde(default)]
    after_each: bool,
}

const WINDOWS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];
/// Training origins reach back this many horizons.
const RECENT: usize = 16;
/// Huber threshold in scale units (one typical period-to-period change), and reweighting rounds.
const HUBER_DELTA: f64 = 1.0;
const HUBER_ROUNDS: usize = 4;
/// Ridge penalty on standardised features.
const LAMBDA: f64 = 10.0;

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
}

/// The divisor that makes a series scale-free at `origin`: the root mean squared one-step change
/// (the RMSSE scale, so the fit minimises the metric), or the mean level for a flat series.
fn scale(y: &[f64], origin: usize) -> f64 {
    let y = &y[..origin];
    let start = y.iter().position(|v| *v != 0.0).unwrap_or(y.len());
    let d = &y[start..];
    if d.len() >= 2 {
        let msd = d.windows(2).map(|w| (w[1] - w[0]).powi(2)).sum::<f64>() / (d.len() - 1) as f64;
        if msd > 0.0 {
            return msd.sqrt();
        }
    }
    mean(y)
}

/// What the model corrects: the mean of the last `horizon` periods. With little evidence the
/// ridge penalty pulls the forecast to it, not to the panel's average.
fn baseline(y: &[f64], origin: usize, horizon: usize) -> f64 {
    mean(&y[origin - horizon.max(1).min(origin)..origin])
}

fn width(season: usize, exog: usize, flags: &Flags) -> usize {
    let after = usize::from(!flags.events.is_empty()) + flags.occasional.len();
    WINDOWS.len() + if season > 1 { 6 } else { 0 } + 5 + exog + lags(season) + after
}

/// The last periods before the origin that are features one by one: a quarter of a season.
fn lags(season: usize) -> usize {
    season / 4
}

/// The off/on covariates of a panel, by how often they are on.
struct Flags {
    /// On in 2 % to 50 % of the rows: each series shows its own lift on them.
    frequent: Vec<usize>,
    /// On in under 2 % of the rows, but some (such as a holiday week in daily data).
    events: Vec<usize>,
    /// The frequent ones on in under 5 % of the rows (see [`GlobalModel::occasional`]).
    occasional: Vec<usize>,
}

/// Columns that are 0 or 1 in every row, by the share of rows they are 1 in.
fn flags(panels: &[Panel<'_>], width: usize) -> Flags {
    let (mut on, mut binary, mut rows) = (vec![0usize; width], vec![true; width], 0usize);
    for row in panels.iter().flat_map(|p| p.exog) {
        rows += 1;
        for (j, v) in row.iter().enumerate().take(width) {
            if *v == 1.0 {
                on[j] += 1;
            } else if *v != 0.0 {
                binary[j] = false;
            }
        }
    }
    let frequent: Vec<usize> = (0..width).filter(|j| binary[*j] && 50 * on[*j] >= rows && 2 * on[*j] <= rows).collect();
    let occasional = frequent.iter().copied().filter(|j| 20 * on[*j] < rows).collect();
    let events = (0..width).filter(|j| binary[*j] && on[*j] > 0 && 50 * on[*j] < rows).collect();
    Flags { frequent, events, occasional }
}

/// The panel's columns that mark events, rare or occasional (see [`GlobalModel::events`] and
/// [`GlobalModel::occasional`]): the calendar the per-series models cannot read.
pub(crate) fn event_columns(panels: &[Panel<'_>]) -> Vec<usize> {
    let Flags { mut events, occasional, .. } = flags(panels, exog_width(panels));
    events.extend(occasional);
    events.sort_unstable();
    events
}

/// How many covariates the panel's rows have.
fn exog_width(panels: &[Panel<'_>]) -> usize {
    panels.iter().find_map(|p| p.exog.first().map(Vec::len)).unwrap_or(0)
}

/// Whether one of the `events` columns is on in period `t` of `p`.
pub(crate) fn event_on(p: &Panel<'_>, events: &[usize], t: usize) -> bool {
    p.exog.get(t).is_some_and(|r| events.iter().any(|j| r.get(*j) == Some(&1.0)))
}

/// How many periods back a series' own lift is measured over.
const LIFT_WINDOW: usize = 365;

/// This series' own lift of each frequent flag (mean demand when on over mean demand when off,
/// over the last LIFT_WINDOW periods before `origin`), 1 where too few periods show it. Measured
/// once per origin; [`features`] multiplies those of the flags on at the period forecast.
fn own_lifts(p: &Panel<'_>, frequent: &[usize], origin: usize) -> Vec<f64> {
    frequent
        .iter()
        .map(|j| {
            let (mut on, mut n_on, mut off, mut n_off) = (0.0, 0usize, 0.0, 0usize);
            for u in origin.saturating_sub(LIFT_WINDOW)..origin {
                if p.exog.get(u).and_then(|r| r.get(*j)) == Some(&1.0) {
                    on += p.y[u];
                    n_on += 1;
                } else {
                    off += p.y[u];
                    n_off += 1;
                }
            }
            if n_on >= 3 && n_off >= 3 && off > 0.0 {
                ((on / n_on as f64) / (off / n_off as f64)).min(10.0)
            } else {
                1.0
            }
        })
        .collect()
}

/// What a series' features at one origin share across the forecast steps: the scale, its own
/// lifts and the features that do not depend on the step (already divided by the scale).
struct AtOrigin {
    scale: f64,
    lifts: Vec<f64>,
    /// Mean of the last w periods for each of [`WINDOWS`].
    windows: [f64; WINDOWS.len()],
    /// The mean of the last horizon before the origin (unscaled) and a season earlier.
    now: f64,
    season_ago: Option<f64>,
    /// Share of recent periods with demand, and periods since the last demand (in 4 horizons).
    frequency: f64,
    since: f64,
    lags: Vec<f64>,
    /// The last period's demand if an event was on in it, else 0 (see [`GlobalModel::events`]);
    /// none when the model has no event flags.
    after_event: Option<f64>,
    /// The last period's demand less the mean of the (up to) 4 before it if an occasional flag
    /// was on in it, else 0: one per occasional flag (one for all in models stored before
    /// [`GlobalModel::after_each`]).
    after_occasional: Vec<f64>,
}

impl AtOrigin {
    fn new(p: &Panel<'_>, shape: &Shape<'_>, origin: usize) -> Self {
        let Shape { horizon, season, frequent, events, occasional, after_each } = *shape;
        let s = scale(p.y, origin);
        let y = &p.y[..origin];
        let windows = WINDOWS.map(|w| mean(&y[origin - w.min(origin)..]) / s);
        let season_ago = origin
            .checked_sub(season)
            .filter(|then| season > 1 && *then >= horizon)
            .map(|then| baseline(p.y, then, horizon));
        let recent = &y[origin - (4 * horizon).max(12).min(origin)..];
        let frequency = recent.iter().filter(|v| **v > 0.0).count() as f64 / recent.len().max(1) as f64;
        let since = y.iter().rev().position(|v| *v > 0.0).unwrap_or(origin) as f64;
        AtOrigin {
            scale: s,
            lifts: own_lifts(p, frequent, origin),
            windows,
            now: baseline(p.y, origin, horizon),
            season_ago,
            frequency,
            since: (since / (4 * horizon) as f64).min(2.0),
            lags: (1..=lags(season)).map(|l| origin.checked_sub(l).map_or(0.0, |i| y[i]) / s).collect(),
            after_event: after_flag(p, events, origin, |u| y[u] / s),
            after_occasional: {
                let excess = |u: usize| {
                    let before = &y[u.saturating_sub(4)..u];
                    if before.is_empty() { 0.0 } else { (y[u] - mean(before)) / s }
                };
                if after_each {
                    occasional.iter().flat_map(|j| after_flag(p, std::slice::from_ref(j), origin, excess)).collect()
                } else {
                    after_flag(p, occasional, origin, excess).into_iter().collect()
                }
            },
        }
    }
}

/// A feature of the period just before `origin`: `value` of it when one of `flags` was on in it,
/// else 0; none when there are no such flags.
fn after_flag(p: &Panel<'_>, flags: &[usize], origin: usize, value: impl Fn(usize) -> f64) -> Option<f64> {
    (!flags.is_empty()).then(|| origin.checked_sub(1).filter(|u| event_on(p, flags, *u)).map_or(0.0, value))
}

/// What the features of a model depend on besides the series.
#[derive(Clone, Copy)]
struct Shape<'a> {
    horizon: usize,
    season: usize,
    frequent: &'a [usize],
    events: &'a [usize],
    occasional: &'a [usize],
    after_each: bool,
}

/// Features for forecasting period `origin + step` from the history before `origin`, divided by
/// the scale. Pushes onto `out`.
fn features(p: &Panel<'_>, shape: &Shape<'_>, at: &AtOrigin, origin: usize, step: usize, out: &mut Vec<f64>) {
    let Shape { horizon, season, frequent, .. } = *shape;
    let s = at.scale;
    let y = &p.y[..origin];
    out.extend_from_slice(&at.windows);
    if season > 1 {
        let t = origin + step;
        let lags: Vec<f64> = (1..)
            .map(|j| t.checked_sub(j * season))
            .take_while(Option::is_some)
            .flatten()
            .filter(|i| *i < origin)
            .take(4)
            .map(|i| y[i])
            .collect();
        let first = lags.first().copied().unwrap_or_else(|| mean(y));
        out.push(first / s);
        out.push(if lags.len() >= 2 { mean(&lags[..2]) } else { first } / s);
        out.push(if lags.is_empty() { first } else { mean(&lags) } / s);
        // Last season's value at this phase, moved to today's level: the seasonal naive forecast
        // adjusted for growth (the level before the origin now and one season earlier).
        let now = at.now;
        let adjusted = match (t.checked_sub(season), at.season_ago) {
            (Some(ly), Some(before)) if ly < origin => {
                if before > 0.0 {
                    y[ly] * (now / before).min(10.0)
                } else {
                    now
                }
            }
            _ => now,
        };
        out.push(adjusted / s);
        // The same phase a season ago, a period either side: yearly peaks drift by a week.
        let at = |i: Option<usize>| i.filter(|i| *i < origin).map(|i| y[i]);
        let near = [at(t.checked_sub(season + 1)), at(t.checked_sub(season)), at((t + 1).checked_sub(season))];
        let known: Vec<f64> = near.iter().flatten().copied().collect();
        let peak = known.iter().copied().fold(first, f64::max);
        out.push(peak / s);
        out.push(if known.is_empty() { first } else { mean(&known) } / s);
    }
    out.push(at.frequency);
    out.push(at.since);
    out.push((step + 1) as f64 / horizon as f64);
    out.extend_from_slice(&at.lags);
    out.push(at.now / s);
    let lift: f64 = p.exog.get(origin + step).map_or(1.0, |row| {
        frequent.iter().zip(&at.lifts).filter(|(j, _)| row.get(**j) == Some(&1.0)).map(|(_, l)| l).product()
    });
    out.push(at.now * lift / s);
    out.extend(at.after_event);
    out.extend_from_slice(&at.after_occasional);
    if let Some(row) = p.exog.get(origin + step) {
        out.extend_from_slice(row);
    }
}

/// Weighted raw moments of sparse rows and their targets: Σw, Σw·z, Σw·x, Σw·x·x' (lower
/// triangle), Σw·x·z.
#[derive(Clone)]
struct Moments {
    w_sum: f64,
    wz: f64,
    wx: Vec<f64>,
    wxx: Vec<f64>,
    wxz: Vec<f64>,
}

impl Moments {
    fn new(k: usize) -> Self {
        Moments { w_sum: 0.0, wz: 0.0, wx: vec![0.0; k], wxx: vec![0.0; k * k], wxz: vec![0.0; k] }
    }

    fn add(&mut self, r: &[(usize, f64)], z: f64, w: f64) {
        let k = self.wx.len();
        self.w_sum += w;
        self.wz += w * z;
        for (ai, (a, va)) in r.iter().enumerate() {
            let wa = w * va;
            self.wx[*a] += wa;
            self.wxz[*a] += wa * z;
            for (b, vb) in &r[..=ai] {
                self.wxx[a * k + b] += wa * vb;
            }
        }
    }
}

/// Solves the symmetric positive-definite system `a x = b` (Cholesky); `None` if not SPD.
pub(crate) fn solve_spd(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / d;
        }
    }
    for i in 0..n {
        let mut v = b[i];
        for k in 0..i {
            v -= a[i * n + k] * b[k];
        }
        b[i] = v / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut v = b[i];
        for k in i + 1..n {
            v -= a[k * n + i] * b[k];
        }
        b[i] = v / a[i * n + i];
    }
    Some(b)
}

/// Fits the model on rolling origins whose targets all lie before `end` periods from each
/// series' end (0 = use everything). `None` when there is too little data.
pub fn fit(panels: &[Panel<'_>], horizon: usize, season: usize, holdback: usize) -> Option<GlobalModel> {
    let exog_width = exog_width(panels);
    let flags = flags(panels, exog_width);
    let k = width(season, exog_width, &flags);
    let Flags { frequent, events, occasional } = flags;
    let shape =
        Shape { horizon, season, frequent: &frequent, events: &events, occasional: &occasional, after_each: true };
    let stride = (horizon / 2).max(1);
    let min_history = 12;
    let mut samples: Vec<(usize, usize, usize)> = Vec::new();
    for (i, p) in panels.iter().enumerate() {
        let n = p.y.len().saturating_sub(holdback);
        if n < min_history + horizon {
            continue;
        }
        // Recent origins only: the relation between recent and coming demand drifts.
        let oldest = min_history.max(n.saturating_sub(RECENT * horizon));
        let mut origin = n - horizon;
        loop {
            for step in 0..horizon {
                samples.push((i, origin, step));
            }
            if origin < oldest + stride {
                break;
            }
            origin -= stride;
        }
    }
    if samples.len() < 10 * (k + 1) {
        return None;
    }
    // Rows are kept sparse (most covariates are off-on indicators, mostly off) and accumulated
    // into X'WX unstandardised; the standardised normal equations follow algebraically.
    let mut row = Vec::with_capacity(k);
    let mut sum = vec![0.0; k];
    let mut sq = vec![0.0; k];
    let mut rows: Vec<(Vec<(usize, f64)>, f64)> = Vec::with_capacity(samples.len());
    // Samples come origin by origin: what the steps of one origin share is made once.
    let mut at: Option<((usize, usize), AtOrigin)> = None;
    for (i, origin, step) in samples {
        let p = &panels[i];
        if at.as_ref().is_none_or(|(key, _)| *key != (i, origin)) {
            at = Some(((i, origin), AtOrigin::new(p, &shape, origin)));
        }
        let Some((_, here)) = &at else { continue };
        let s = here.scale;
        let exog_missing = !p.exog.is_empty() && p.exog.len() <= origin + step;
        if s <= 0.0 || exog_missing {
            continue;
        }
        row.clear();
        features(p, &shape, here, origin, step, &mut row);
        if row.len() != k {
            continue;
        }
        for (j, v) in row.iter().enumerate() {
            sum[j] += v;
            sq[j] += v * v;
        }
        let base = here.now / s;
        let sparse = row.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(j, v)| (j, *v)).collect();
        rows.push((sparse, p.y[origin + step] / s - base));
    }
    let count = rows.len() as f64;
    if count < 10.0 * (k + 1) as f64 {
        return None;
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
    let sd: Vec<f64> = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| (q / count - m * m).max(0.0).sqrt())
        .map(|s| if s > 1e-9 { s } else { 1.0 })
        .collect();
    let d = k + 1;
    // Huber loss by iteratively reweighted ridge: a shared shock (a holiday in some series' past)
    // must not pull every forecast. Huber weights are 1 for most rows: each round's moments are
    // those of all rows at weight 1 (made once) less (1 − w) times those of the down-weighted rows.
    let mut all = Moments::new(k);
    for (r, z) in &rows {
        all.add(r, *z, 1.0);
    }
    let mut weights = vec![1.0; rows.len()];
    let mut coef = vec![0.0; d];
    for round in 0..HUBER_ROUNDS {
        let mut m = all.clone();
        for ((r, z), w) in rows.iter().zip(&weights) {
            if *w < 1.0 {
                m.add(r, *z, w - 1.0);
            }
        }
        let Moments { w_sum, wz, wx, wxx, wxz } = m;
        // The same moments of the standardised features with a leading intercept.
        let mut xtx = vec![0.0; d * d];
        let mut xtz = vec![0.0; d];
        xtx[0] = w_sum;
        xtz[0] = wz;
        for a in 0..k {
            let (ma, sa) = (mean[a], sd[a]);
            let centred = (wx[a] - w_sum * ma) / sa;
            xtx[(a + 1) * d] = centred;
            xtx[a + 1] = centred;
            xtz[a + 1] = (wxz[a] - ma * wz) / sa;
            for b in 0..=a {
                let (mb, sb) = (mean[b], sd[b]);
                let v = (wxx[a * k + b] - ma * wx[b] - mb * wx[a] + w_sum * ma * mb) / (sa * sb);
                xtx[(a + 1) * d + b + 1] = v;
                xtx[(b + 1) * d + a + 1] = v;
            }
            xtx[(a + 1) * d + a + 1] += LAMBDA;
        }
        coef = solve_spd(xtx, xtz, d)?;
        if round + 1 < HUBER_ROUNDS {
            // Σ c_j (x_j − μ_j)/σ_j = c_0 − Σ c_j μ_j/σ_j + Σ_{x_j ≠ 0} (c_j/σ_j) x_j.
            let slope: Vec<f64> = (0..k).map(|j| coef[j + 1] / sd[j]).collect();
            let offset = coef[0] - (0..k).map(|j| slope[j] * mean[j]).sum::<f64>();
            for ((r, z), w) in rows.iter().zip(weights.iter_mut()) {
                let fit = offset + r.iter().map(|(j, v)| slope[*j] * v).sum::<f64>();
                let e = (z - fit).abs();
                *w = if e <= HUBER_DELTA { 1.0 } else { HUBER_DELTA / e };
            }
        }
    }
    Some(GlobalModel { coef, mean, sd, horizon, season, exog_width, frequent, events, occasional, after_each: true })
}

impl GlobalModel {
    /// Forecasts `horizon` periods after `origin` (normally the history's end).
    pub fn predict(&self, p: &Panel<'_>, origin: usize) -> Option<Vec<f64>> {
        if origin == 0 || origin > p.y.len() {
            return None;
        }
        let shape = Shape {
            horizon: self.horizon,
            season: self.season,
            frequent: &self.frequent,
            events: &self.events,
            occasional: &self.occasional,
            after_each: self.after_each,
        };
        let at = AtOrigin::new(p, &shape, origin);
        let s = at.scale;
        if s <= 0.0 {
            return Some(vec![0.0; self.horizon]);
        }
        let mut row = Vec::new();
        let mut out = Vec::with_capacity(self.horizon);
        for step in 0..self.horizon {
            row.clear();
            features(p, &shape, &at, origin, step, &mut row);
            if row.len() != self.mean.len() || (self.exog_width > 0 && p.exog.len() <= origin + step) {
                return None;
            }
            let base = at.now / s;
            let z = base
                + self.coef[0]
                + row.iter().enumerate().map(|(j, v)| self.coef[j + 1] * (v - self.mean[j]) / self.sd[j]).sum::<f64>();
            out.push((z * s).max(0.0));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        // [4 2; 2 3] x = [2; 1] -> x = [0.5, 0].
        let x = solve_spd(vec![4.0, 2.0, 2.0, 3.0], vec![2.0, 1.0], 2).expect("spd");
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
    }

    /// One flag (weekends), opposite effects: a shop that sells double on weekends and an
    /// office supplier that sells half. One shared coefficient cannot serve both; each series'
    /// own lift can.
    #[test]
    fn each_series_keeps_its_own_lift_on_a_shared_flag() {
        let (n, h) = (300, 14);
        let weekend = |t: usize| t % 7 >= 5;
        let exog: Vec<Vec<f64>> = (0..n + h).map(|t| vec![f64::from(u8::from(weekend(t)))]).collect();
        let series = |base: f64, lift: f64| -> Vec<f64> {
            (0..n).map(|t| base * if weekend(t) { lift } else { 1.0 } + (t % 3) as f64).collect()
        };
        let ys = [series(40.0, 2.0), series(60.0, 0.5), series(30.0, 2.0), series(80.0, 0.5)];
        let panels: Vec<Panel<'_>> = ys.iter().map(|y| Panel { y, exog: &exog }).collect();
        let model = fit(&panels, h, 1, 0).expect("fits");
        for (i, (base, lift)) in [(40.0, 2.0), (60.0, 0.5)].into_iter().enumerate() {
            let f = model.predict(&panels[i], n).expect("predicts");
            for (step, v) in f.iter().enumerate() {
                let want = base * if weekend(n + step) { lift } else { 1.0 } + 1.0;
                assert!((v - want).abs() / want < 0.1, "series {i} step {step}: {v} vs {want}");
            }
        }
    }

    /// Demand moves to a new level now and then, so the last period tells the level, and triples
    /// in a rare event period (1 in 60): right after one, the forecast stays at the level. Without
    /// the event flag the same history carries much of the peak into the next periods.
    #[test]
    fn an_event_peak_is_not_taken_for_the_new_level() {
        let (n, h) = (600, 4);
        let event = |i: usize, t: usize| (t + 7 * i).is_multiple_of(60);
        let level = |i: usize, t: usize| 20.0 + ((t / 25 * 37 + i * 11) % 17) as f64 * 3.0;
        let ys: Vec<Vec<f64>> = (0..12)
            .map(|i| {
                (0..n).map(|t| level(i, t) * if event(i, t) { 3.0 } else { 1.0 } + ((t * 7 + i) % 3) as f64).collect()
            })
            .collect();
        let flagged: Vec<Vec<Vec<f64>>> =
            (0..12).map(|i| (0..n + h).map(|t| vec![f64::from(u8::from(event(i, t)))]).collect()).collect();
        let unflagged: Vec<Vec<f64>> = vec![vec![0.0]; n + h];
        // Forecast series 0 from just after its last event.
        let origin = (0..n).rev().find(|t| event(0, *t)).expect("an event") + 1;
        let with: Vec<Panel<'_>> = ys.iter().zip(&flagged).map(|(y, e)| Panel { y, exog: e }).collect();
        let without: Vec<Panel<'_>> = ys.iter().map(|y| Panel { y, exog: &unflagged }).collect();
        let model = fit(&with, h, 1, 0).expect("fits");
        assert!(!model.events.is_empty(), "the flag is on in under 2 % of periods");
        let usual = level(0, origin) + 1.0;
        let f = model.predict(&with[0], origin).expect("predicts");
        assert!(f.iter().all(|v| (v - usual).abs() < 0.15 * usual), "level {usual}, after the event: {f:?}");
        let plain = fit(&without, h, 1, 0).expect("fits");
        let g = plain.predict(&without[0], origin).expect("predicts");
        assert!(g[0] > f[0] + 0.15 * usual, "without the flag the peak carries over: {g:?} vs {f:?}");
    }

    /// An occasional flag (on in 1 period of 29, such as a yearly event in weekly data): for
    /// half the series demand triples in its periods, for the others nothing happens. Right
    /// after one, the forecast stays at the level either way: the peak is not carried, and a
    /// flagged period without a peak is not read as one.
    #[test]
    fn after_an_occasional_flag_the_forecast_stays_at_the_level() {
        let (n, h) = (600, 4);
        let flag = |i: usize, t: usize| (t + 7 * i).is_multiple_of(29);
        let lift = |i: usize| if i.is_multiple_of(2) { 3.0 } else { 1.0 };
        let level = |i: usize, t: usize| 20.0 + ((t / 25 * 37 + i * 11) % 17) as f64 * 3.0;
        let ys: Vec<Vec<f64>> = (0..12)
            .map(|i| {
                (0..n)
                    .map(|t| level(i, t) * if flag(i, t) { lift(i) } else { 1.0 } + ((t * 7 + i) % 3) as f64)
                    .collect()
            })
            .collect();
        let exog: Vec<Vec<Vec<f64>>> =
            (0..12).map(|i| (0..n + h).map(|t| vec![f64::from(u8::from(flag(i, t)))]).collect()).collect();
        let panels: Vec<Panel<'_>> = ys.iter().zip(&exog).map(|(y, e)| Panel { y, exog: e }).collect();
        let model = fit(&panels, h, 1, 0).expect("fits");
        assert_eq!((model.events.len(), model.occasional.len()), (0, 1), "on in 1 of 29 periods");
        for i in [0, 1] {
            let origin = (0..n).rev().find(|t| flag(i, *t)).expect("a flagged period") + 1;
            let usual = level(i, origin) + 1.0;
            let f = model.predict(&panels[i], origin).expect("predicts");
            assert!(
                f.iter().all(|v| (v - usual).abs() < 0.15 * usual),
                "series {i}: level {usual}, after the flag: {f:?}"
            );
        }
        // A model stored before the sequel was a feature per flag has one for all of them: with
        // one flag the same, so it loads and forecasts alike.
        let mut stored = serde_json::to_value(&model).expect("serialises");
        stored.as_object_mut().expect("an object").remove("after_each");
        let old: GlobalModel = serde_json::from_value(stored).expect("a stored model loads");
        assert!(!old.after_each);
        let origin = (0..n).rev().find(|t| flag(0, *t)).expect("a flagged period") + 1;
        assert_eq!(old.predict(&panels[0], origin), model.predict(&panels[0], origin));
    }

    /// Two occasional flags with the same peak and opposite sequels: after the first (think
    /// Christmas week) demand slumps to a third of the level for the next periods, after the
    /// second (Mother's Day week) it is back at the level. Each sequel is learnt from its own
    /// flag's weeks (with one slope for both, the slump was forecast at 0.7 of the level).
    #[test]
    fn what_follows_one_occasional_flag_is_not_taken_for_what_follows_another() {
        let (n, h) = (600, 4);
        let at = |i: usize, t: usize, phase: usize| (t + 7 * i + phase).is_multiple_of(29);
        let (slump, back) = (|i, t| at(i, t, 0), |i, t| at(i, t, 14));
        let level = |i: usize, t: usize| 20.0 + ((t / 25 * 37 + i * 11) % 17) as f64 * 3.0;
        let after_slump = |i: usize, t: usize| (1..=h).any(|k| t >= k && slump(i, t - k));
        let demand = |i: usize, t: usize| {
            let factor = if slump(i, t) || back(i, t) {
                3.0
            } else if after_slump(i, t) {
                1.0 / 3.0
            } else {
                1.0
            };
            level(i, t) * factor + ((t * 7 + i) % 3) as f64
        };
        let ys: Vec<Vec<f64>> = (0..12).map(|i| (0..n).map(|t| demand(i, t)).collect()).collect();
        let exog: Vec<Vec<Vec<f64>>> = (0..12)
            .map(|i| {
                (0..n + h).map(|t| vec![f64::from(u8::from(slump(i, t))), f64::from(u8::from(back(i, t)))]).collect()
            })
            .collect();
        let panels: Vec<Panel<'_>> = ys.iter().zip(&exog).map(|(y, e)| Panel { y, exog: e }).collect();
        let model = fit(&panels, h, 1, 0).expect("fits");
        assert_eq!(model.occasional.len(), 2, "each on in 1 of 29 periods");
        for i in [0, 1] {
            let origin = (0..n - h).rev().find(|t| back(i, *t)).expect("a flagged period") + 1;
            let usual = level(i, origin) + 1.0;
            let f = model.predict(&panels[i], origin).expect("predicts");
            assert!(f.iter().all(|v| (v - usual).abs() < 0.15 * usual), "series {i}: level {usual}, after: {f:?}");
            let origin = (0..n - h).rev().find(|t| slump(i, *t)).expect("a flagged period") + 1;
            let usual = level(i, origin) + 1.0;
            let f = model.predict(&panels[i], origin).expect("predicts");
            assert!(f.iter().all(|v| *v < 0.6 * usual), "series {i}: level {usual}, after the slump's flag: {f:?}");
        }
    }

    #[test]
    fn a_shared_pattern_is_learnt_across_series_of_different_sizes() {
        // Weekly pattern with a known weekend lift in exog; three series at different scales.
        let n = 200;
        let h = 14;
        let exog: Vec<Vec<f64>> = (0..n + h).map(|t| vec![if t % 7 >= 5 { 1.0 } else { 0.0 }]).collect();
        let ys: Vec<Vec<f64>> = [5.0, 50.0, 500.0]
            .iter()
            .map(|base| (0..n).map(|t| base * if t % 7 >= 5 { 2.0 } else { 1.0 }).collect())
            .collect();
        let panels: Vec<Panel<'_>> = ys.iter().map(|y| Panel { y, exog: &exog }).collect();
        let model = fit(&panels, h, 7, 0).expect("fits");
        let f = model.predict(&panels[1], n).expect("predicts");
        for (step, v) in f.iter().enumerate() {
            let want = if (n + step) % 7 >= 5 { 100.0 } else { 50.0 };
            assert!((v - want).abs() / want < 0.05, "step {step}: {v} vs {want}");
        }
    }
}
