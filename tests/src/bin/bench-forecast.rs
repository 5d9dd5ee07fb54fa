//! Forecast benchmark: runs `quartermaster forecast` (the same code, in-process) on the DEV sets in
//! ../shared/data/forecast under their README's protocol (hold out the last H periods, one
//! origin), and prints accuracy per set and per demand class, with CPU time. The statsforecast
//! peers run on the same split in the same run (tests/bench/forecast_peers.py), in a virtualenv
//! the benchmark makes once under target/bench-venv (or the Python named by `QM_BENCH_PYTHON`;
//! `QM_BENCH_PEERS=0` skips them).
//!
//! `--origins N` also scores N − 1 earlier origins, each H periods before the last (the data
//! README's rolling origins), and prints the mean over origins per set: one origin is one
//! stretch of the year, and a change to the engine should hold on several. The peers run on
//! every origin too.
//!
//! cargo run --release -p qm-tests --bin bench-forecast [-- --data DIR] [--origins N]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use qm_api::forecast::cli::{ForecastArgs, run};
use qm_api::forecast::io::{self, History, Value};
use qm_domain::forecast::classify::classify;
use qm_domain::forecast::metrics::{Pooled, mase, mean, median, pinball, rmsse};

struct Set {
    name: &'static str,
    file: &'static str,
    horizon: usize,
    freq: &'static str,
}

const SETS: [Set; 3] = [
    Set { name: "m5 store x dept (daily)", file: "dev_m5_storedept_daily.csv", horizon: 28, freq: "D" },
    Set { name: "jewelry (weekly)", file: "dev_jewelry_weekly.csv", horizon: 8, freq: "W" },
    Set { name: "carparts (monthly)", file: "dev_carparts_monthly.csv", horizon: 6, freq: "M" },
];

const LEVELS: [f64; 3] = [0.1, 0.5, 0.9];

fn cell(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Category(c) => c.clone(),
        Value::Missing => String::new(),
    }
}

/// Writes the training part (all but the last `h` periods) and the future covariates.
fn split(history: &History, h: usize, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    use std::io::Write;
    let train = dir.join("train.csv");
    let future = dir.join("future.csv");
    let mut t = std::io::BufWriter::new(std::fs::File::create(&train)?);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&future)?);
    let extra: String = history.covariates.iter().map(|c| format!(",{c}")).collect();
    writeln!(t, "series_id,date,quantity{extra}")?;
    writeln!(f, "series_id,date{extra}")?;
    for s in &history.series {
        let mut date = s.start;
        for i in 0..s.quantity.len() {
            let covs: String = s.covariates.iter().map(|c| format!(",{}", cell(&c[i]))).collect();
            if i < s.quantity.len() - h {
                writeln!(t, "{},{date},{}{covs}", s.id, s.quantity[i])?;
            } else {
                writeln!(f, "{},{date}{covs}", s.id)?;
            }
            date = history.freq.next(date).context("date")?;
        }
    }
    t.flush()?;
    f.flush()?;
    Ok((train, future))
}

#[derive(Default)]
struct Score {
    rmsse: Vec<f64>,
    mase: Vec<f64>,
    pooled: Pooled,
    pinball: [f64; 3],
    points: usize,
    series: usize,
}

impl Score {
    fn add(&mut self, train: &[f64], actual: &[f64], point: &[f64], quantiles: &[Vec<f64>]) {
        self.series += 1;
        if let Some(v) = rmsse(train, actual, point) {
            self.rmsse.push(v);
        }
        if let Some(v) = mase(train, actual, point) {
            self.mase.push(v);
        }
        self.pooled.add(actual, point);
        for (i, tau) in LEVELS.iter().enumerate() {
            if let Some(q) = quantiles.get(i) {
                self.pinball[i] += pinball(actual, q, *tau) * actual.len() as f64;
            }
        }
        self.points += actual.len();
    }

    /// Mean RMSSE, WAPE and bias.
    fn summary(&self) -> (f64, f64, f64) {
        (
            mean(self.rmsse.iter().copied()).unwrap_or(f64::NAN),
            self.pooled.wape().unwrap_or(f64::NAN),
            self.pooled.bias().unwrap_or(f64::NAN),
        )
    }

    fn row(&self, label: &str, cpu: Option<f64>) -> String {
        let pb = |i: usize| self.pinball[i] / self.points.max(1) as f64;
        let (rmsse, wape, bias) = self.summary();
        format!(
            "| {label} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:+.3} | {:.3} | {:.3} | {:.3} | {} |",
            self.series,
            rmsse,
            mean(self.mase.iter().copied()).unwrap_or(f64::NAN),
            median(&self.mase).unwrap_or(f64::NAN),
            wape,
            bias,
            pb(0),
            pb(1),
            pb(2),
            cpu.map_or_else(|| "".into(), |c| format!("{c:.2}")),
        )
    }
}

/// Forecasts the DEV sets under their README's protocol and prints accuracy per set and demand
/// class beside the statsforecast peers (`QM_BENCH_PEERS=0` skips them).
#[derive(Parser)]
struct Args {
    /// The DEV sets' folder (../shared/data/forecast beside the repository by default).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Also score this many origins in all, each a horizon before the next.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    origins: u64,
}

fn main() -> anyhow::Result<()> {
    let Args { data, origins } = Args::parse();
    let data = data.unwrap_or_else(|| qm_tests::TestApp::shared_data("forecast"));
    let origins = usize::try_from(origins)?;
    println!(
        "| set / class | series | RMSSE | MASE mean | MASE median | WAPE | bias | pinball q0.1 | q0.5 | q0.9 | CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let peers_python = peers_python();
    let mut models_seen = Vec::new();
    let mut over_origins: Vec<(String, ByForecaster)> = Vec::new();
    for set in &SETS {
        let path = data.join(set.file);
        let whole = io::read_history(&path, io::Freq::parse(set.freq))
            .with_context(|| format!("reading {} (see ../shared/data/forecast)", path.display()))?;
        anyhow::ensure!(
            whole.series.iter().all(|s| s.quantity.len() > (origins + 1) * set.horizon),
            "--origins {origins}: {} has too few periods left to hold out {} at its earliest origin",
            set.name,
            set.horizon
        );
        let mut per_origin = ByForecaster::new();
        for back in 0..origins {
            let full = truncated(&whole, back * set.horizon);
            let label =
                if back == 0 { set.name.to_owned() } else { format!("{}, origin −{}", set.name, back * set.horizon) };
            let dir = tempfile::tempdir()?;
            let (train, future) = split(&full, set.horizon, dir.path())?;
            let output = dir.path().join("forecast.csv");
            let args = ForecastArgs {
                input: train,
                horizon: set.horizon,
                freq: Some(set.freq.into()),
                season: None,
                quantiles: LEVELS.to_vec(),
                future: if full.covariates.is_empty() { None } else { Some(future) },
                output: output.clone(),
            };
            let before = qm_tests::cpu_seconds();
            run(&args)?;
            let cpu = qm_tests::cpu_seconds() - before;
            let got = io::read_forecasts(&output)?;
            let chosen = read_models(&output)?;
            let (all, by_class) = score(&full, set.horizon, |id, date| got.get(&(id.to_owned(), date)).cloned())?;
            println!("{}", all.row(&format!("**{label}** quartermaster"), Some(cpu)));
            per_origin.entry("quartermaster".into()).or_default().push(all.summary());
            for (class, score) in &by_class {
                println!("{}", score.row(&format!("  {class}"), None));
            }
            if let Some(python) = &peers_python {
                for (model, cpu, forecasts) in peers(python, &args, set, dir.path())? {
                    let (all, by_class) = score(&full, set.horizon, |id, date| {
                        forecasts.get(&(id.to_owned(), date)).map(|f| (*f, vec![*f; LEVELS.len()]))
                    })?;
                    println!("{}", all.row(&format!("statsforecast {model}"), Some(cpu)));
                    per_origin.entry(format!("statsforecast {model}")).or_default().push(all.summary());
                    for (class, score) in &by_class {
                        println!("{}", score.row(&format!("  {class}"), None));
                    }
                }
            }
            let mut models: BTreeMap<&str, usize> = BTreeMap::new();
            for m in chosen.values() {
                *models.entry(m.as_str()).or_default() += 1;
            }
            let total = chosen.len().max(1);
            let mix: Vec<String> = models.iter().map(|(m, n)| format!("{m} {}%", n * 100 / total)).collect();
            models_seen.push(format!("{label}: {}", mix.join(", ")));
        }
        over_origins.push((set.name.to_owned(), per_origin));
    }
    println!();
    for line in models_seen {
        println!("models chosen, {line}");
    }
    if origins > 1 {
        println!();
        println!("| set | forecaster | origins | mean RMSSE | mean WAPE | mean bias |");
        println!("|---|---|---|---|---|---|");
        for (name, by_forecaster) in &over_origins {
            for (forecaster, rows) in by_forecaster {
                let n = rows.len() as f64;
                let avg = |f: fn(&(f64, f64, f64)) -> f64| rows.iter().map(f).sum::<f64>() / n;
                println!(
                    "| {name} | {forecaster} | {} | {:.4} | {:.3} | {:+.3} |",
                    rows.len(),
                    avg(|r| r.0),
                    avg(|r| r.1),
                    avg(|r| r.2)
                );
            }
        }
    }
    Ok(())
}

/// The history without its last `drop` periods (an earlier forecast origin).
fn truncated(history: &History, drop: usize) -> History {
    let mut out = history.clone();
    for s in &mut out.series {
        let n = s.quantity.len().saturating_sub(drop);
        s.quantity.truncate(n);
        s.censored.truncate(n);
        for c in &mut s.covariates {
            c.truncate(n);
        }
    }
    out
}

/// The Python that runs the peers (statsforecast; see `qm_tests::bench_python`).
fn peers_python() -> Option<String> {
    qm_tests::bench_python("statsforecast", "statsforecast")
}

type Classes = BTreeMap<&'static str, Score>;

/// Per forecaster, (RMSSE, WAPE, bias) at each origin of one set.
type ByForecaster = BTreeMap<String, Vec<(f64, f64, f64)>>;

/// Scores forecasts (point and quantiles by series and date) against the held-out periods.
fn score(
    full: &History,
    horizon: usize,
    lookup: impl Fn(&str, chrono::NaiveDate) -> Option<(f64, Vec<f64>)>,
) -> anyhow::Result<(Score, Classes)> {
    let mut all = Score::default();
    let mut by_class: Classes = BTreeMap::new();
    for s in &full.series {
        let n = s.quantity.len() - horizon;
        let (train, actual) = s.quantity.split_at(n);
        let mut date = s.start;
        for _ in 0..n {
            date = full.freq.next(date).context("date")?;
        }
        let mut point = Vec::new();
        let mut qs = vec![Vec::new(); LEVELS.len()];
        for _ in 0..horizon {
            let (p, q) = lookup(&s.id, date).with_context(|| format!("no forecast for {} on {date}", s.id))?;
            point.push(p);
            for (i, v) in q.iter().enumerate() {
                qs[i].push(*v);
            }
            date = full.freq.next(date).context("date")?;
        }
        all.add(train, actual, &point, &qs);
        let class = if classify(train).is_sporadic() { "intermittent" } else { "smooth" };
        by_class.entry(class).or_default().add(train, actual, &point, &qs);
    }
    Ok((all, by_class))
}

type PeerForecasts = BTreeMap<(String, chrono::NaiveDate), f64>;

/// Runs tests/bench/forecast_peers.py on the same training file: (model, CPU s, forecasts).
fn peers(
    python: &str,
    args: &ForecastArgs,
    set: &Set,
    dir: &Path,
) -> anyhow::Result<Vec<(String, f64, PeerForecasts)>> {
    let script = qm_tests::TestApp::repo_root().join("tests/bench/forecast_peers.py");
    let out_file = dir.join("peers.csv");
    let season = io::Freq::parse(set.freq).map_or(1, io::Freq::default_season);
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(&args.input)
        .arg(set.horizon.to_string())
        .arg(set.freq)
        .arg(season.to_string())
        .arg(&out_file)
        .output()
        .context("running the statsforecast peers")?;
    anyhow::ensure!(out.status.success(), "peers failed: {}", String::from_utf8_lossy(&out.stderr));
    let cpu: BTreeMap<String, f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("cpu")).then_some(())?;
            Some((w.next()?.to_owned(), w.next()?.parse().ok()?))
        })
        .collect();
    let mut forecasts: BTreeMap<String, PeerForecasts> = BTreeMap::new();
    let mut reader = csv::Reader::from_path(&out_file)?;
    for rec in reader.records() {
        let rec = rec?;
        let date = chrono::NaiveDate::parse_from_str(&rec[1], "%Y-%m-%d")?;
        forecasts.entry(rec[2].to_owned()).or_default().insert((rec[0].to_owned(), date), rec[3].parse()?);
    }
    Ok(forecasts.into_iter().map(|(m, f)| (m.clone(), cpu.get(&m).copied().unwrap_or(f64::NAN), f)).collect())
}

/// The model column of a forecast file, one entry per series.
fn read_models(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path)?;
    let mut out = BTreeMap::new();
    for rec in reader.records() {
        let rec = rec?;
        out.insert(rec[0].to_owned(), rec[rec.len() - 1].to_owned());
    }
    Ok(out)
}
