//! `quartermaster forecast`: forecasts a CSV of demand history offline, no database needed.

use std::path::PathBuf;

use anyhow::Context;
use qm_domain::forecast::{Config, Panel, PanelForecast, calendar, forecast_panel, impute_censored};

use super::io::{self, Freq, Future, History, OutRow, STOCKOUT, Value};

/// The arguments of `quartermaster forecast`.
#[derive(Debug, Clone, clap::Args)]
pub struct ForecastArgs {
    /// History in long format: series_id,date,quantity[,covariates…].
    #[arg(long)]
    pub input: PathBuf,
    /// Periods to forecast.
    #[arg(long)]
    pub horizon: usize,
    /// D, W or M; inferred from the dates when absent.
    #[arg(long)]
    pub freq: Option<String>,
    /// Season length in periods (default 7 daily, 52 weekly, 12 monthly).
    #[arg(long)]
    pub season: Option<usize>,
    /// Quantile levels, comma-separated, each strictly between 0 and 1.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,0.9")]
    pub quantiles: Vec<f64>,
    /// Covariate values for the forecast dates: series_id,date,covariates… (same columns as the input).
    #[arg(long)]
    pub future: Option<PathBuf>,
    /// Where to write series_id,date,forecast[,q…],model; `-` for standard output.
    #[arg(long)]
    pub output: PathBuf,
}

/// What a run did, for the caller to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub series: usize,
    pub rows: usize,
}

pub fn run(args: &ForecastArgs) -> anyhow::Result<Summary> {
    anyhow::ensure!(args.horizon >= 1 && args.horizon <= 10_000, "--horizon must be between 1 and 10000");
    for q in &args.quantiles {
        anyhow::ensure!(*q > 0.0 && *q < 1.0, "--quantiles: {q} is not strictly between 0 and 1");
    }
    let freq = match &args.freq {
        Some(f) => Some(Freq::parse(f).with_context(|| format!("--freq {f:?}: use D, W or M"))?),
        None => None,
    };
    let history = io::read_history(&args.input, freq)?;
    let season = args.season.unwrap_or_else(|| history.freq.default_season());
    anyhow::ensure!(season >= 1, "--season must be at least 1");
    let future = match &args.future {
        Some(p) => Some(io::read_future(p, &history, args.horizon)?),
        None => None,
    };
    let forecasts = forecast_history(&history, future.as_ref(), args.horizon, season, &args.quantiles)?;
    let mut rows = Vec::with_capacity(history.series.len() * args.horizon);
    for (s, f) in history.series.iter().zip(&forecasts) {
        let model = f.model_name();
        let mut date = s.start;
        for _ in 0..s.quantity.len() {
            date = history.freq.next(date).context("date out of range")?;
        }
        for step in 0..args.horizon {
            rows.push((
                s.id.as_str(),
                date,
                f.series.point[step],
                f.series.quantiles.iter().map(|q| q[step]).collect::<Vec<f64>>(),
                model.clone(),
            ));
            date = history.freq.next(date).context("date out of range")?;
        }
    }
    let count = rows.len();
    let out_rows = rows.iter().map(|(series_id, date, forecast, quantiles, model)| OutRow {
        series_id,
        date: *date,
        forecast: *forecast,
        quantiles: quantiles.clone(),
        model,
    });
    if args.output.as_os_str() == "-" {
        io::write_forecasts(std::io::stdout().lock(), &args.quantiles, out_rows)?;
    } else {
        let file =
            std::fs::File::create(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
        io::write_forecasts(file, &args.quantiles, out_rows)?;
    }
    Ok(Summary { series: history.series.len(), rows: count })
}

/// Forecasts every series of `history` `horizon` periods ahead: stockout periods imputed, the
/// calendar (and the covariates, when `future` gives their values ahead) as features.
pub fn forecast_history(
    history: &History,
    future: Option<&Future>,
    horizon: usize,
    season: usize,
    quantiles: &[f64],
) -> anyhow::Result<Vec<PanelForecast>> {
    let mut cfg = Config::new(horizon, season);
    cfg.quantiles = quantiles.to_vec();
    let ys: Vec<Vec<f64>> = history.series.iter().map(|s| impute_censored(&s.quantity, &s.censored, season)).collect();
    let exogs = exog(history, future, horizon)?;
    let panels: Vec<Panel<'_>> = ys.iter().zip(&exogs).map(|(y, exog)| Panel { y, exog }).collect();
    Ok(forecast_panel(&panels, &cfg))
}

/// Known-in-advance features per series and period (history, then horizon): the calendar, and
/// the covariates when their future values are given (numeric as they are, categorical levels
/// seen at least twice as indicators). The `stockout` column is none of them: it marks the
/// periods imputed, not something known ahead.
fn exog(history: &History, future: Option<&Future>, horizon: usize) -> anyhow::Result<Vec<Vec<Vec<f64>>>> {
    let mut levels: Vec<Vec<String>> = vec![Vec::new(); history.covariates.len()];
    if future.is_some() {
        for (c, lv) in levels.iter_mut().enumerate() {
            let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
            for s in &history.series {
                for v in &s.covariates[c] {
                    if let Value::Category(name) = v {
                        *counts.entry(name.as_str()).or_default() += 1;
                    }
                }
            }
            *lv = counts.into_iter().filter(|(_, n)| *n >= 2).map(|(k, _)| k.to_owned()).take(64).collect();
        }
    }
    let numeric: Vec<bool> = (0..history.covariates.len())
        .map(|c| history.series.iter().any(|s| s.covariates[c].iter().any(|x| matches!(x, Value::Number(_)))))
        .collect();
    let stockout = history.covariates.iter().position(|c| c == STOCKOUT);
    let encode = |values: &[Value], out: &mut Vec<f64>| {
        for (c, v) in values.iter().enumerate() {
            if Some(c) == stockout {
                continue;
            }
            if numeric[c] {
                out.push(if let Value::Number(n) = v { *n } else { 0.0 });
            } else {
                for l in &levels[c] {
                    out.push(f64::from(u8::from(matches!(v, Value::Category(x) if x == l))));
                }
            }
        }
    };
    let mut all = Vec::with_capacity(history.series.len());
    for s in &history.series {
        let mut rows = Vec::with_capacity(s.quantity.len() + horizon);
        let mut date = s.start;
        let fut = future.and_then(|f| f.series.get(&s.id));
        for t in 0..s.quantity.len() + horizon {
            let mut row = calendar::features(history.freq, date);
            if let Some(fut) = fut {
                let values: Vec<Value> = if t < s.quantity.len() {
                    s.covariates.iter().map(|c| c[t].clone()).collect()
                } else {
                    fut[t - s.quantity.len()].clone()
                };
                encode(&values, &mut row);
            }
            rows.push(row);
            date = history.freq.next(date).context("date out of range")?;
        }
        all.push(rows);
    }
    Ok(all)
}
