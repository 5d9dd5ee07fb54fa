//! `quartermaster pricing`: price recommendations from a CSV of daily history and a CSV of stock,
//! offline, no database needed.
//!
//! Per series: the elasticity from the history (shrunk toward the series' category when the stock
//! file names one), expected demand over the horizon from the same demand model at the current
//! price (the last observed price), and the profit-maximising price within the policy's
//! guardrails given the stock on hand and inbound. With an end of season after the horizon the
//! numbers run to the season's end, so stock that would not sell in time is marked down now.

use std::io::Write;
use std::path::PathBuf;

use chrono::Duration;
use qm_domain::pricing::{self, Estimate, Position};
use qm_domain::types::as_f64 as f;
use rust_decimal::Decimal;

use super::io::{self, Policy};
use crate::forecast::io::{InputError, num};
use crate::layered::ParamsError;

/// The arguments of `quartermaster pricing`.
#[derive(Debug, Clone, clap::Args)]
pub struct PricingArgs {
    /// Daily history: series_id,date,quantity,price[,promo][,stockout].
    #[arg(long)]
    pub history: PathBuf,
    /// Stock per series: series_id,on_hand,inbound,unit_cost[,salvage_value][,season_end][,category].
    #[arg(long)]
    pub stock: PathBuf,
    /// Guardrails (TOML): min_margin, max_change_per_step, price_ending, min_advertised_price,
    /// and [series."ID"] tables overriding them.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Days to plan for, from the day after the history's last date.
    #[arg(long)]
    pub horizon: usize,
    /// Where to write the recommendations; `-` for standard output.
    #[arg(long)]
    pub output: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Policy(#[from] ParamsError),
    #[error("{0}")]
    Argument(String),
    #[error("{file}: {source}")]
    Output { file: String, source: std::io::Error },
}

impl PricingError {
    /// 2 for bad input (the files or the arguments), 1 when the output cannot be written.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Output { .. } => 1,
            _ => 2,
        }
    }
}

pub use qm_domain::pricing::MAX_DAYS;

/// One output row. The elasticity is the one at the current price.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub series_id: String,
    pub current_price: Decimal,
    pub recommended_price: Decimal,
    pub elasticity: Option<f64>,
    pub elasticity_se: Option<f64>,
    pub expected_units_current: f64,
    pub expected_units_recommended: f64,
    pub expected_profit_current: Decimal,
    pub expected_profit_recommended: Decimal,
    pub reason: String,
}

pub const HEADER: &str = "series_id,current_price,recommended_price,elasticity,elasticity_se,expected_units_current,expected_units_recommended,expected_profit_current,expected_profit_recommended,reason";

/// Reads, recommends and writes; the rows written.
pub fn run(args: &PricingArgs) -> Result<Vec<Row>, PricingError> {
    if !(1..=MAX_DAYS).contains(&args.horizon) {
        return Err(PricingError::Argument(format!("--horizon must be between 1 and {MAX_DAYS} days")));
    }
    let history = io::read_history(&args.history)?;
    let stock = io::read_stock(&args.stock, &history)?;
    let policy = match &args.policy {
        Some(p) => io::read_policy(p, &history)?,
        None => Policy::default(),
    };
    let rows = recommend(&history, &stock, &policy, args.horizon);
    write(args, &rows)?;
    Ok(rows)
}

/// The recommendations for every series, in id order.
pub fn recommend(
    history: &[io::Series],
    stock: &std::collections::BTreeMap<String, io::Stock>,
    policy: &Policy,
    horizon: usize,
) -> Vec<Row> {
    let start =
        history.iter().filter_map(|s| s.days.last()).map(|d| d.date).max().unwrap_or_default() + Duration::days(1);
    let mut estimates: Vec<Estimate> = history.iter().map(|s| pricing::estimate(&s.days)).collect();
    let categories: Vec<Option<&str>> =
        history.iter().map(|s| stock.get(&s.id).and_then(|st| st.category.as_deref())).collect();
    pricing::shrink(&mut estimates, &categories);
    history
        .iter()
        .zip(&estimates)
        .filter_map(|(series, est)| {
            let st = stock.get(&series.id)?;
            let current = series.days.last()?.price;
            let position = Position {
                current_price: current,
                unit_cost: st.unit_cost,
                stock: st.on_hand + st.inbound,
                salvage_value: st.salvage_value.unwrap_or_default(),
                season_end: st.season_end,
            };
            let priced =
                pricing::price_sku(est, &series.days, &position, start, horizon, None, policy.for_series(&series.id));
            let r = priced.recommendation;
            Some(Row {
                series_id: series.id.clone(),
                current_price: current,
                recommended_price: r.price,
                elasticity: est.elasticity_at(f(current)),
                elasticity_se: est.se_at(f(current)),
                expected_units_current: r.current.units,
                expected_units_recommended: r.recommended.units,
                expected_profit_current: pricing::to_price(r.current.profit),
                expected_profit_recommended: pricing::to_price(r.recommended.profit),
                reason: priced.reason,
            })
        })
        .collect()
}

fn write(args: &PricingArgs, rows: &[Row]) -> Result<(), PricingError> {
    let file = args.output.display().to_string();
    let out: Box<dyn Write> = if args.output.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&args.output)
                .map_err(|source| PricingError::Output { file: file.clone(), source })?,
        )
    };
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(out));
    let result = (|| -> csv::Result<()> {
        w.write_record(HEADER.split(','))?;
        for r in rows {
            let opt = |v: Option<f64>| v.map(num).unwrap_or_default();
            w.write_record([
                r.series_id.clone(),
                r.current_price.to_string(),
                r.recommended_price.to_string(),
                opt(r.elasticity),
                opt(r.elasticity_se),
                num(r.expected_units_current),
                num(r.expected_units_recommended),
                r.expected_profit_current.to_string(),
                r.expected_profit_recommended.to_string(),
                r.reason.clone(),
            ])?;
        }
        w.flush()?;
        Ok(())
    })();
    result.map_err(|e| PricingError::Output { file, source: std::io::Error::other(e.to_string()) })
}
