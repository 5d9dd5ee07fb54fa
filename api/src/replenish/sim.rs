//! `quartermaster replenish-sim`: replays the last N periods of a demand history against
//! Quartermaster's replenishment policy and two common baselines, offline.
//!
//! At each review the policy forecasts from the periods before that day only (the same engine as
//! `quartermaster forecast`, over at least the frequency's planning horizon, as the service's
//! nightly run does; the history's covariate columns, known in advance, are its future
//! covariates for the days ahead), turns the forecast and its spread into an order-up-to level
//! for the series' service target, and orders up to it in whole packs and at least the minimum.
//! The baselines, in the same run on the same lead-time draws:
//! (a) min/max from average demand over the last year × lead time, as common ERPs set it;
//! (b) the textbook order-up-to level with normal safety stock from the sample standard deviation
//!     of the last year, its safety factor tuned until it reaches the fill rate the policy achieved,
//!     so inventories compare at equal service.
//!
//! And a reference: the same policy given a perfect forecast (the demand that came, no spread
//! from it; the lead time's spread calibrated alike), against (b) tuned to its fill rate: how
//! much of the inventory protects against the lead time, which no forecast can take away.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use qm_domain::forecast::classify::classify;
use qm_domain::replenish::ServiceTarget;
use qm_domain::replenish::calibrate::{Calibration, Outlook, calibrate, calibration_window, replay_policy};
use qm_domain::replenish::sim::{self, Outcome, SimError, Stocking, Tally};
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
    pub calibration: Option<Calibration>,
    /// The policy with a perfect forecast, for reference.
    pub perfect: Perfect,
}

/// The policy given the demand that came as its forecast, and baseline (b) tuned to the fill
/// rate it achieved: the saving no forecast can beat under these lead times.
#[derive(Debug, Clone, PartialEq)]
pub struct Perfect {
    pub result: PolicyResult,
    pub calibration: Option<Calibration>,
    pub textbook: PolicyResult,
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

/// The history of `due` series cut just before each one's replay step `step`, and the
/// covariates of the `horizon` periods after the cut (none when the history has no covariates).
/// Covariates are known in advance (a SNAP day, an event, a planned price), as `forecast
/// --future` gives them, so a review sees those of the days it plans for; periods past the end
/// of the history have none (missing), and nor has the `stockout` column, which is what the
/// stock did, not a plan: the review forecasts demand as if none ran out.
fn cut(history: &History, due: &[usize], steps: usize, step: usize, horizon: usize) -> (History, Option<io::Future>) {
    let stockout = history.covariates.iter().position(|c| c == io::STOCKOUT);
    let mut series = Vec::with_capacity(due.len());
    let mut ahead = BTreeMap::new();
    for &i in due {
        let s = &history.series[i];
        let origin = s.quantity.len() - steps + step;
        series.push(io::Series {
            id: s.id.clone(),
            start: s.start,
            quantity: s.quantity[..origin].to_vec(),
            covariates: s.covariates.iter().map(|c| c[..origin].to_vec()).collect(),
            censored: s.censored[..origin].to_vec(),
        });
        if !history.covariates.is_empty() {
            let value = |j: usize, t: usize| s.covariates[j].get(t).filter(|_| Some(j) != stockout).cloned();
            let rows = (origin..origin + horizon)
                .map(|t| (0..s.covariates.len()).map(|j| value(j, t).unwrap_or(io::Value::Missing)).collect())
                .collect();
            ahead.insert(s.id.clone(), rows);
        }
    }
    let future = (!ahead.is_empty()).then(|| io::Future { covariates: history.covariates.clone(), series: ahead });
    (History { freq: history.freq, covariates: history.covariates.clone(), series }, future)
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

    let window = calibration_window(&demand, &targets, steps, steps);
    let before = match window {
        Some(_) => outlooks(&history, &stocking, season, steps, steps)?,
        None => Vec::new(),
    };
    let test = outlooks(&history, &stocking, season, steps, 0)?;
    let (calibration, ours) = calibrated_replay(&demand, &stocking, &targets, steps, window, before, &test)?;
    let min_max = sim::replay_with_window(&demand, &stocking, steps, per_year, &sim::min_max_levels)?;
    let achieved = sim::pooled(&ours).fill_rate();
    let (z, textbook) = sim::textbook_at_fill_rate(&demand, &stocking, steps, per_year, achieved)?;

    let freq = history.freq;
    let before = match window {
        Some(_) => perfect_outlooks(&demand, freq, &stocking, steps, steps),
        None => Vec::new(),
    };
    let test = perfect_outlooks(&demand, freq, &stocking, steps, 0);
    let (perfect_calibration, perfect) = calibrated_replay(&demand, &stocking, &targets, steps, window, before, &test)?;
    let perfect_fill = sim::pooled(&perfect).fill_rate();
    let (perfect_z, perfect_textbook) = sim::textbook_at_fill_rate(&demand, &stocking, steps, per_year, perfect_fill)?;

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
        calibration,
        perfect: Perfect {
            result: result("perfect forecast".into(), &perfect),
            calibration: perfect_calibration,
            textbook: result(format!("(b) textbook, z={perfect_z:.2}"), &perfect_textbook),
            textbook_z: perfect_z,
        },
    })
}

/// How far a review forecasts: the longest protection interval of the series `due` (lead time
/// with three spreads, review period, one more) and at least the frequency's planning horizon.
fn horizon(freq: Freq, stocking: &[Stocking], due: &[usize]) -> usize {
    due.iter()
        .map(|&i| {
            let s = &stocking[i];
            (s.lead_time_mean + 3.0 * s.lead_time_sd).ceil() as usize + s.review_period + 1
        })
        .max()
        .unwrap_or(1)
        .max(freq.planning_horizon())
}

/// The reviews of a replay (as [`outlooks`]) with a perfect forecast: the demand that came over
/// the horizon, and no spread. Periods past the end of the history, which the replay never
/// serves, repeat the mean of the last horizon's demand.
fn perfect_outlooks(
    demand: &[&[f64]],
    freq: Freq,
    stocking: &[Stocking],
    steps: usize,
    back: usize,
) -> Vec<Vec<Outlook>> {
    (0..steps)
        .map(|step| {
            let due = sim::due(stocking, step);
            let horizon = horizon(freq, stocking, &due);
            due.into_iter()
                .map(|series| {
                    let y = demand[series];
                    let origin = y.len() - steps - back + step;
                    let came = &y[origin..(origin + horizon).min(y.len())];
                    let last = &y[y.len().saturating_sub(horizon)..];
                    let level = last.iter().sum::<f64>() / last.len().max(1) as f64;
                    let mut forecast = came.to_vec();
                    forecast.resize(horizon, level);
                    Outlook { series, demand_sd: vec![0.0; horizon], demand: forecast }
                })
                .collect()
        })
        .collect()
}

/// The forecasts at every review of a replay of `steps` periods that ends `back` periods before
/// the end of each series, each from the periods before its day only, over the protection
/// interval and at least the planning horizon (a short horizon would choose between per-series
/// and global models on a few weeks of held-out data).
fn outlooks(
    history: &History,
    stocking: &[Stocking],
    season: usize,
    steps: usize,
    back: usize,
) -> anyhow::Result<Vec<Vec<Outlook>>> {
    (0..steps)
        .map(|step| {
            let due = sim::due(stocking, step);
            if due.is_empty() {
                return Ok(Vec::new());
            }
            let horizon = horizon(history.freq, stocking, &due);
            let (cut, ahead) = cut(history, &due, steps + back, step, horizon);
            let forecasts = forecast_history(&cut, ahead.as_ref(), horizon, season, &[BAND.0, 0.5, BAND.1])
                .context("forecasting during the replay")?;
            Ok(due
                .iter()
                .zip(forecasts)
                .map(|(&series, f)| {
                    let q = &f.series.quantiles;
                    Outlook::from_band(series, &f.series.point, &q[0], &q[2], BAND)
                })
                .collect())
        })
        .collect()
}

/// Replays the window from the forecasts `test`, its spread first calibrated (when `window` is
/// given) on the forecasts `before`, made at the reviews of the `steps` periods just before it
/// ([`calibrate`]: the policy learns from its own recent past how much of the spread it needs).
fn calibrated_replay(
    demand: &[&[f64]],
    stocking: &[Stocking],
    targets: &[ServiceTarget],
    steps: usize,
    window: Option<(bool, f64)>,
    mut before: Vec<Vec<Outlook>>,
    test: &[Vec<Outlook>],
) -> Result<(Option<Calibration>, Vec<Outcome>), SimError> {
    let calibration = match window {
        Some((fill, target)) => Some(calibrate(demand, stocking, targets, steps, steps, fill, target, &mut before)?),
        None => None,
    };
    let scale = calibration.map_or(1.0, |c| c.scale);
    Ok((calibration, replay_policy(demand, stocking, targets, test, steps, 0, scale)?))
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
    match report.calibration {
        Some(c) => out.push_str(&format!(
            "\ndemand and lead-time spread calibrated on the {} periods before the window (forecast bias there {:+.1}%, taken out): x{:.2} (service there {:.2}% for {:.2}%)",
            c.periods,
            100.0 * c.bias,
            c.scale,
            100.0 * c.achieved,
            100.0 * c.target
        )),
        None => out.push_str("\ndemand and lead-time spread not calibrated (series too short, or mixed service-level kinds)"),
    }
    let (ours, textbook) = (report.ours(), report.textbook());
    out.push_str(&format!("\ninventory against (b) at the same fill rate: {}", change(&ours.total, &textbook.total)));
    for (class, t) in &ours.by_class {
        if let Some(b) = textbook.by_class.get(class) {
            out.push_str(&format!("; {class} {}", change(t, b)));
        }
    }
    let unequal = |out: &mut String, ours: &Tally, textbook: &Tally| {
        let (fill, reached) = (ours.fill_rate(), textbook.fill_rate());
        if (fill - reached).abs() > 0.005 {
            out.push_str(&format!(
                "\n(b) comes no nearer than {:.2}% to {:.2}% with a safety factor from -3 to 5: the inventories are not at equal service",
                100.0 * reached,
                100.0 * fill
            ));
        }
    };
    unequal(&mut out, &ours.total, &textbook.total);
    let p = &report.perfect;
    out.push_str(&format!(
        "\nwith a perfect forecast (the demand that came, no spread from it; the lead time's spread calibrated alike{}): fill rate {:.2}%, average on hand {:.1}, against (b) at that fill rate (z={:.2}) {}: the part of the inventory no forecast takes away is the lead time's",
        p.calibration.map_or(String::new(), |c| format!(", x{:.2}", c.scale)),
        100.0 * p.result.total.fill_rate(),
        p.result.total.average_on_hand(),
        p.textbook_z,
        change(&p.result.total, &p.textbook.total)
    ));
    unequal(&mut out, &p.result.total, &p.textbook.total);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use io::Value::{Missing, Number};

    #[test]
    fn a_perfect_forecast_is_the_demand_that_came() {
        let y: Vec<f64> = (1..=10).map(f64::from).collect();
        let stocking = [Stocking {
            lead_time_mean: 1.0,
            lead_time_sd: 0.0,
            review_period: 2,
            moq: 0,
            pack_size: 1,
            unit_cost: Decimal::ONE,
            holding_rate: Decimal::ZERO,
            order_cost: Decimal::ZERO,
            seed: 1,
        }];
        let horizon = Freq::Weekly.planning_horizon();
        // The last 3 periods replayed, reviews at steps 0 and 2 (origins 7 and 9): what came,
        // then the mean of the last horizon's demand (periods 3 to 10: 6.5); no spread.
        let test = perfect_outlooks(&[&y], Freq::Weekly, &stocking, 3, 0);
        assert_eq!(test.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 0, 1]);
        let mut want = vec![8.0, 9.0, 10.0];
        want.resize(horizon, 6.5);
        assert_eq!(test[0][0].demand, want);
        assert_eq!(test[2][0].demand[..2], [10.0, 6.5]);
        assert!(test[0][0].demand_sd.iter().all(|v| *v == 0.0) && test[0][0].demand_sd.len() == horizon);
        // The window before: origins 4 and 6.
        let before = perfect_outlooks(&[&y], Freq::Weekly, &stocking, 3, 3);
        assert_eq!(before[0][0].demand[..7], [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 6.5]);
        assert_eq!(before[2][0].demand[0], 7.0);
    }

    #[test]
    fn a_review_knows_the_covariates_ahead_but_not_the_stockouts() {
        let series = io::Series {
            id: "a".into(),
            start: chrono::NaiveDate::from_ymd_opt(2026, 1, 5).expect("date"),
            quantity: vec![5.0; 6],
            covariates: vec![(0..6).map(|t| Number(f64::from(t))).collect(), vec![Number(1.0); 6]],
            censored: vec![true; 6],
        };
        let history =
            History { freq: Freq::Daily, covariates: vec!["promo".into(), io::STOCKOUT.into()], series: vec![series] };
        // Replaying the last 3 periods, step 1: the cut is after period 3, the horizon 4 periods.
        let (before, ahead) = cut(&history, &[0], 3, 1, 4);
        assert_eq!(before.series[0].quantity.len(), 4);
        assert_eq!(before.series[0].covariates[0].len(), 4);
        let ahead = ahead.expect("covariates");
        let rows = &ahead.series["a"];
        // Periods 4 and 5 from the file, 6 and 7 past its end; the stockout column never.
        assert_eq!(
            rows,
            &vec![
                vec![Number(4.0), Missing],
                vec![Number(5.0), Missing],
                vec![Missing, Missing],
                vec![Missing, Missing]
            ]
        );
        let series = history.series.into_iter().map(|s| io::Series { covariates: Vec::new(), ..s }).collect();
        let bare = History { covariates: Vec::new(), series, ..history };
        assert!(cut(&bare, &[0], 3, 1, 4).1.is_none());
    }
}
