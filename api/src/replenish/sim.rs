//! `quartermaster replenish-sim`: replays the last N periods of a demand history against
//! Quartermaster's replenishment policy and two common baselines, offline.
//!
//! At each review the policy forecasts from the periods before that day only (the same engine as
//! `quartermaster forecast`), turns the forecast and its spread into an order-up-to level for the
//! series' service target, and orders up to it in whole packs and at least the minimum. The
//! baselines, in the same run on the same lead-time draws:
//! (a) min/max from average demand over the last year × lead time, as common ERPs set it;
//! (b) the textbook order-up-to level with normal safety stock from the sample standard deviation
//!     of the last year, its safety factor tuned until it reaches the fill rate the policy achieved,
//!     so inventories compare at equal service.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use qm_domain::forecast::classify::classify;
use qm_domain::forecast::engine::normal_quantile;
use qm_domain::replenish::sim::{self, Levels, Outcome, SimError, Stocking, Tally};
use qm_domain::replenish::{PolicyInput, policy};
use rust_decimal::Decimal;

use super::params;
use crate::forecast::cli::forecast_history;
use crate::forecast::io::{self, Freq, History, csv_field, num};

/// The arguments of `quartermaster replenish-sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplenishSimArgs {
    /// Demand history in long format: series_id,date,quantity[,covariates…] (as for `forecast`).
    #[arg(long)]
    pub history: PathBuf,
    /// Replenishment parameters (TOML; see the README).
    #[arg(long)]
    pub params: PathBuf,
    /// How many of the last periods to replay.
    #[arg(long)]
    pub test_periods: usize,
    /// Where to write series_id,date,demand,on_hand_start,order_qty,received,sales,lost; `-` for
    /// standard output.
    #[arg(long)]
    pub output: PathBuf,
    /// D, W or M; inferred from the dates when absent.
    #[arg(long)]
    pub freq: Option<String>,
    /// Season length in periods for the forecast (default 7 daily, 52 weekly, 12 monthly).
    #[arg(long)]
    pub season: Option<usize>,
}

/// What one policy achieved, overall and per demand class.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyResult {
    pub name: String,
    pub total: Tally,
    pub by_class: BTreeMap<&'static str, Tally>,
}

/// The outcome of a run: the policy first, then the baselines.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub series: usize,
    pub rows: usize,
    pub policies: Vec<PolicyResult>,
    /// The safety factor baseline (b) needed to reach the policy's fill rate.
    pub textbook_z: f64,
}

impl Report {
    pub fn ours(&self) -> &PolicyResult {
        &self.policies[0]
    }

    /// Baseline (b), the tuned textbook policy.
    pub fn textbook(&self) -> &PolicyResult {
        &self.policies[2]
    }
}

fn periods_per_year(freq: Freq) -> usize {
    match freq {
        Freq::Daily => 365,
        Freq::Weekly => 52,
        Freq::Monthly => 12,
    }
}

/// A seed per series from the parameters' seed and the series id, so a series draws the same
/// lead times whatever else is in the file.
fn series_seed(seed: u64, id: &str) -> u64 {
    // FNV-1a over the id, mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The history of `due` series cut just before each one's replay step `step`.
fn cut(history: &History, due: &[usize], steps: usize, step: usize) -> History {
    let series = due
        .iter()
        .map(|&i| {
            let s = &history.series[i];
            let origin = s.quantity.len() - steps + step;
            io::Series {
                id: s.id.clone(),
                start: s.start,
                quantity: s.quantity[..origin].to_vec(),
                covariates: s.covariates.iter().map(|c| c[..origin].to_vec()).collect(),
                censored: s.censored[..origin].to_vec(),
            }
        })
        .collect();
    History { freq: history.freq, covariates: history.covariates.clone(), series }
}

const BAND: (f64, f64) = (0.1, 0.9);

pub fn run(args: &ReplenishSimArgs) -> anyhow::Result<Report> {
    let steps = args.test_periods;
    anyhow::ensure!(steps >= 1, "--test-periods must be at least 1");
    let freq = match &args.freq {
        Some(f) => Some(Freq::parse(f).with_context(|| format!("--freq {f:?}: use D, W or M"))?),
        None => None,
    };
    let history = io::read_history(&args.history, freq)?;
    let season = args.season.unwrap_or_else(|| history.freq.default_season());
    anyhow::ensure!(season >= 1, "--season must be at least 1");
    let params = params::load(&args.params)?;
    params.check_series(history.series.iter().map(|s| s.id.as_str()))?;
    let per_year = periods_per_year(history.freq);
    let mut stocking = Vec::with_capacity(history.series.len());
    let mut targets = Vec::with_capacity(history.series.len());
    for s in &history.series {
        anyhow::ensure!(
            s.quantity.len() > steps + 1,
            "{}: series {:?} has {} periods; replaying {steps} needs at least {}",
            args.history.display(),
            s.id,
            s.quantity.len(),
            steps + 2
        );
        let (p, lead) = params.for_series(&s.id)?;
        stocking.push(Stocking {
            lead_time_mean: lead,
            lead_time_sd: p.lead_time_sd,
            review_period: p.review_period,
            moq: p.moq,
            pack_size: p.pack_size,
            unit_cost: p.unit_cost,
            holding_rate: p.holding_cost_rate / Decimal::from(per_year),
            order_cost: p.order_cost,
            seed: series_seed(p.seed, &s.id),
        });
        targets.push(p.target());
    }
    let demand: Vec<&[f64]> = history.series.iter().map(|s| s.quantity.as_slice()).collect();
    let classes: Vec<&'static str> =
        history.series.iter().map(|s| classify(&s.quantity[..s.quantity.len() - steps]).as_str()).collect();

    let band_width = normal_quantile(BAND.1) - normal_quantile(BAND.0);
    let mut forecast_error = None;
    let ours = sim::replay(&demand, &stocking, steps, &mut |step, due| {
        let horizon = due
            .iter()
            .map(|&i| {
                let s = &stocking[i];
                (s.lead_time_mean + 3.0 * s.lead_time_sd).ceil() as usize + s.review_period + 1
            })
            .max()
            .unwrap_or(1);
        let cut = cut(&history, due, steps, step);
        let forecasts = match forecast_history(&cut, None, horizon, season, &[BAND.0, 0.5, BAND.1]) {
            Ok(f) => f,
            Err(e) => {
                forecast_error = Some(e);
                return Err(SimError::Decisions { due: due.len(), got: 0 });
            }
        };
        due.iter()
            .zip(&forecasts)
            .map(|(&i, f)| {
                let s = &stocking[i];
                let q = &f.series.quantiles;
                let demand_sd = q[2].iter().zip(&q[0]).map(|(hi, lo)| ((hi - lo) / band_width).max(0.0)).collect();
                let input = PolicyInput {
                    demand: f.series.point.iter().map(|v| v.max(0.0)).collect(),
                    demand_sd,
                    lead_time_mean: s.lead_time_mean,
                    lead_time_sd: s.lead_time_sd,
                    review_period: s.review_period as f64,
                    on_hand: 0,
                    on_order: 0,
                    in_transit: 0,
                    reserved: 0,
                    moq: s.moq,
                    pack_size: s.pack_size,
                };
                let p = policy(&input, targets[i])?;
                Ok(Levels {
                    reorder_point: p.order_up_to,
                    order_up_to: p.order_up_to,
                    lead_time_demand: p.explanation.lead_time_demand,
                })
            })
            .collect()
    });
    if let Some(e) = forecast_error {
        return Err(e.context("forecasting during the replay"));
    }
    let ours = ours?;
    let min_max = sim::replay_with_window(&demand, &stocking, steps, per_year, &sim::min_max_levels)?;
    let achieved = sim::pooled(&ours).fill_rate();
    let (z, textbook) = sim::textbook_at_fill_rate(&demand, &stocking, steps, per_year, achieved)?;

    let rows = write_rows(args, &history, &ours)?;
    let result = |name: String, outcomes: &[Outcome]| {
        let mut by_class: BTreeMap<&'static str, Tally> = BTreeMap::new();
        for (o, c) in outcomes.iter().zip(&classes) {
            by_class.entry(c).or_default().add(&o.tally);
        }
        PolicyResult { name, total: sim::pooled(outcomes), by_class }
    };
    Ok(Report {
        series: history.series.len(),
        rows,
        policies: vec![
            result("quartermaster".into(), &ours),
            result("(a) min/max".into(), &min_max),
            result(format!("(b) textbook, z={z:.2}"), &textbook),
        ],
        textbook_z: z,
    })
}

fn write_rows(args: &ReplenishSimArgs, history: &History, outcomes: &[Outcome]) -> anyhow::Result<usize> {
    let out: Box<dyn Write> = if args.output.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(&args.output).with_context(|| format!("creating {}", args.output.display()))?)
    };
    let mut w = std::io::BufWriter::new(out);
    writeln!(w, "series_id,date,demand,on_hand_start,order_qty,received,sales,lost")?;
    let mut rows = 0;
    for (s, o) in history.series.iter().zip(outcomes) {
        let id = csv_field(&s.id);
        let mut date = s.start;
        let first = o.periods.first().map_or(0, |p| p.index);
        for _ in 0..first {
            date = history.freq.next(date).context("date out of range")?;
        }
        for p in &o.periods {
            writeln!(
                w,
                "{id},{date},{},{},{},{},{},{}",
                num(p.demand),
                num(p.on_hand_start),
                p.order_qty,
                num(p.received),
                num(p.sales),
                num(p.lost)
            )?;
            rows += 1;
            date = history.freq.next(date).context("date out of range")?;
        }
    }
    w.flush()?;
    Ok(rows)
}

/// The summary table: each policy overall, then per demand class, and the policy's inventory
/// against the tuned textbook baseline at the same fill rate.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "{:<28} {:<13} {:>7} {:>9} {:>8} {:>13} {:>14} {:>7} {:>13}\n",
        "policy", "class", "series", "fill rate", "cycle SL", "avg on hand", "avg value", "orders", "cost"
    );
    let line = |out: &mut String, name: &str, class: &str, t: &Tally| {
        out.push_str(&format!(
            "{:<28} {:<13} {:>7} {:>8.2}% {:>7.2}% {:>13.1} {:>14} {:>7} {:>13}\n",
            name,
            class,
            t.series,
            100.0 * t.fill_rate(),
            100.0 * t.cycle_service_level(),
            t.average_on_hand(),
            t.average_value(),
            t.orders,
            t.total_cost()
        ));
    };
    for p in &report.policies {
        line(&mut out, &p.name, "all", &p.total);
        for (class, t) in &p.by_class {
            line(&mut out, &p.name, class, t);
        }
    }
    let change = |ours: &Tally, base: &Tally| {
        let b = base.average_on_hand();
        if b > 0.0 { format!("{:+.1}%", 100.0 * (ours.average_on_hand() - b) / b) } else { "n/a".into() }
    };
    let (ours, textbook) = (report.ours(), report.textbook());
    out.push_str(&format!("\ninventory against (b) at the same fill rate: {}", change(&ours.total, &textbook.total)));
    for (class, t) in &ours.by_class {
        if let Some(b) = textbook.by_class.get(class) {
            out.push_str(&format!("; {class} {}", change(t, b)));
        }
    }
    out.push('\n');
    out
}
