//! `quartermaster forecast`: forecasts a CSV of demand history offline, no database needed.

use std::path::PathBuf;

use anyhow::Context;
use qm_domain::forecast::{Config, forecast_series, impute_censored};

use super::io::{self, Freq, OutRow};

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
    // Checked now so a bad file fails before any work; the covariates feed the global model.
    let _future = match &args.future {
        Some(p) => Some(io::read_future(p, &history, args.horizon)?),
        None => None,
    };
    let mut cfg = Config::new(args.horizon, season);
    cfg.quantiles = args.quantiles.clone();
    let mut rows = Vec::with_capacity(history.series.len() * args.horizon);
    for s in &history.series {
        let y = impute_censored(&s.quantity, &s.censored, season);
        let f = forecast_series(&y, &cfg);
        let mut date = s.start;
        for _ in 0..s.quantity.len() {
            date = history.freq.next(date).context("date out of range")?;
        }
        for step in 0..args.horizon {
            rows.push((
                s.id.as_str(),
                date,
                f.point[step],
                f.quantiles.iter().map(|q| q[step]).collect(),
                f.model.as_str(),
            ));
            date = history.freq.next(date).context("date out of range")?;
        }
    }
    let count = rows.len();
    let out_rows = rows.into_iter().map(|(series_id, date, forecast, quantiles, model)| OutRow {
        series_id,
        date,
        forecast,
        quantiles,
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
