//! Replenishment benchmark: runs `quartermaster replenish-sim` (the same code, in-process) on the
//! DEV sets in ../shared/data/forecast with a 95 % fill-rate target, lead times of 7 days (daily
//! data) or 1 period (weekly, monthly) with 30 % spread, and review every period. It prints each
//! set's summary (the policy, min/max and the textbook policy tuned to the same fill rate) and
//! checks the issue's targets: fill rate within ±1 point of 95 %, average inventory at least 20 %
//! below the tuned textbook policy. Beside each, the same policy given a perfect forecast (the
//! demand that came) against the textbook policy tuned to its fill rate: the saving that the lead
//! time's spread leaves to any forecast.
//!
//! cargo run --release -p qm-tests --bin bench-replenish [-- --data DIR] [--seed 42]
//!
//! `--seed` seeds the lead-time draws (the parameters' `seed`; 42 by default).

use std::path::PathBuf;

use clap::Parser;
use qm_api::replenish::sim::{ReplenishSimArgs, render, run};
use qm_domain::replenish::sim::Tally;

struct Set {
    name: &'static str,
    file: &'static str,
    test_periods: usize,
    freq: &'static str,
    lead_time: f64,
}

const SETS: [Set; 3] = [
    Set {
        name: "m5 store x dept (daily)",
        file: "dev_m5_storedept_daily.csv",
        test_periods: 28,
        freq: "D",
        lead_time: 7.0,
    },
    Set { name: "jewelry (weekly)", file: "dev_jewelry_weekly.csv", test_periods: 8, freq: "W", lead_time: 1.0 },
    Set { name: "carparts (monthly)", file: "dev_carparts_monthly.csv", test_periods: 6, freq: "M", lead_time: 1.0 },
];

const TARGET: f64 = 0.95;

/// Replays the DEV forecasting sets with a 95 % fill-rate target and prints each set's summary
/// against min/max and the textbook policy tuned to the same fill rate.
#[derive(Parser)]
struct Args {
    /// The DEV sets' folder (../shared/data/forecast beside the repository by default).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seeds the lead-time draws (the parameters' `seed`).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let Args { data, seed } = Args::parse();
    let data = data.unwrap_or_else(|| qm_tests::TestApp::shared_data("forecast"));
    let mut verdicts = Vec::new();
    for set in &SETS {
        let path = data.join(set.file);
        anyhow::ensure!(path.exists(), "{} is missing (see ../shared/data/forecast)", path.display());
        let dir = tempfile::tempdir()?;
        let params = dir.path().join("params.toml");
        std::fs::write(
            &params,
            format!(
                "service_level_kind = \"fill_rate\"\ntarget_service_level = {TARGET}\nlead_time_mean = {}\n\
                 lead_time_sd = {}\nreview_period = 1\nmoq = 0\npack_size = 1\nunit_cost = 1\n\
                 holding_cost_rate = 0.25\norder_cost = 0\nseed = {seed}\n",
                set.lead_time,
                0.3 * set.lead_time
            ),
        )?;
        let args = ReplenishSimArgs {
            history: path,
            params,
            test_periods: set.test_periods,
            output: dir.path().join("replay.csv"),
            freq: Some(set.freq.into()),
            season: None,
        };
        let before = qm_tests::cpu_seconds();
        let report = run(&args)?;
        let cpu = qm_tests::cpu_seconds() - before;
        println!("## {} — {} series, last {} periods ({cpu:.1} CPU-s)\n", set.name, report.series, set.test_periods);
        println!("```\n{}```\n", render(&report));
        let (ours, base) = (&report.ours().total, &report.textbook().total);
        let fill = ours.fill_rate();
        let below =
            |ours: &Tally, base: &Tally| 1.0 - ours.average_on_hand() / base.average_on_hand().max(f64::MIN_POSITIVE);
        let saving = below(ours, base);
        let perfect = &report.perfect;
        verdicts.push(format!(
            "| {} | {:.2} % | {} | {:.1} % | {} | {:.2} % / {:.1} % |",
            set.name,
            100.0 * fill,
            if (fill - TARGET).abs() <= 0.01 { "met" } else { "NOT met" },
            100.0 * saving,
            if saving >= 0.20 { "met" } else { "NOT met" },
            100.0 * perfect.result.total.fill_rate(),
            100.0 * below(&perfect.result.total, &perfect.textbook.total)
        ));
    }
    println!(
        "| set | fill rate (target 95 % ± 1) | | inventory below (b) at equal fill rate (target ≥ 20 %) | | with a perfect forecast: fill rate / below (b) |"
    );
    println!("|---|---|---|---|---|---|");
    for v in verdicts {
        println!("{v}");
    }
    Ok(())
}
