//! Pricing benchmark on the simulated market of `qm_domain::pricing::sim` (SKUs whose true
//! demand curves are known; see that module). Per scenario (excess stock, scarce stock, normal)
//! it plays four policies over the same eight weeks on the same demand draws, a price per week,
//! all within the same guardrails (10 % minimum margin, 15 % at most per step, .99 endings):
//! - static: the current price throughout;
//! - rule: mark down 10 % when weeks of cover (stock over the last four weeks' sales) exceed 12;
//! - Quartermaster: elasticities estimated from the two years of history (shrunk toward each
//!   category), the demand model's baseline, and the optimiser, re-run each week;
//! - oracle: the same optimiser with the true curve and the true expected demand.
//!
//! and reports the realised profit of each and ours as a share of the oracle's, then the error
//! of the recovered elasticities at the current price (a linear curve's elasticity depends on
//! the price) on SKUs whose price varied in their history.
//!
//! cargo run --release -p qm-tests --bin bench-pricing [-- --skus 600] [--seed 42]

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Duration;
use clap::Parser;
use qm_domain::pricing::optimize::Situation;
use qm_domain::pricing::sim::{self, Market, Scenario, Sku, TrueResponse, View};
use qm_domain::pricing::{Estimate, baseline, estimate, optimise, recommend, shrink};
use qm_domain::types::as_f64 as f;
use rust_decimal::Decimal;

const POLICIES: [&str; 4] = ["static", "rule", "quartermaster", "oracle"];

fn situation(sku: &Sku, view: &View<'_>, baseline: Vec<f64>) -> Situation {
    Situation {
        current_price: view.price,
        unit_cost: sku.unit_cost,
        stock: view.stock,
        baseline,
        season_days: view.season_days,
        salvage_value: sku.salvage_value,
    }
}

/// The common rule: 10 % off when the stock covers more than 12 weeks of the last four weeks'
/// sales, never below the margin floor.
fn rule(market: &Market, sku: &Sku, view: &View<'_>) -> Decimal {
    let recent: Vec<f64> =
        sku.history.iter().map(|d| d.quantity).chain(view.sales.iter().copied()).rev().take(28).collect();
    let weekly = recent.iter().sum::<f64>() / 4.0;
    let floor = sku.unit_cost * (Decimal::ONE + market.guardrails.min_margin);
    if weekly <= 0.0 || view.stock / weekly > 12.0 {
        let ending = market.guardrails.price_ending.unwrap_or_default();
        let down = (view.price * Decimal::new(9, 1) - ending).floor() + ending;
        if down >= floor {
            return down;
        }
    }
    view.price
}

/// Plays four pricing policies on a simulated market whose demand curves are known and prints
/// each one's profit against the oracle's, and the error of the recovered elasticities.
#[derive(Parser)]
struct Args {
    /// SKUs in the simulated market.
    #[arg(long, default_value_t = 600)]
    skus: usize,
    /// Seeds the market and its demand draws.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let Args { skus: n, seed } = Args::parse();
    let started = Instant::now();
    let market = sim::market(n, seed);
    let generated = started.elapsed();
    let started = Instant::now();
    let mut estimates: Vec<Estimate> = market.skus.iter().map(|s| estimate(&s.history)).collect();
    let categories: Vec<Option<&str>> = market.skus.iter().map(|s| Some(s.category.as_str())).collect();
    shrink(&mut estimates, &categories);
    let estimated = started.elapsed();

    let started = Instant::now();
    let mut profit: BTreeMap<Scenario, [f64; 4]> = BTreeMap::new();
    let mut skus: BTreeMap<Scenario, usize> = BTreeMap::new();
    for (sku, est) in market.skus.iter().zip(&estimates) {
        let played = [
            sim::play(&market, sku, &mut |s, _| s.current_price),
            sim::play(&market, sku, &mut |s, v| rule(&market, s, v)),
            sim::play(&market, sku, &mut |s, v| {
                let days = market.horizon - v.day;
                let base = baseline(est, v.date, days, f(v.price)).unwrap_or_else(|| vec![0.0; days]);
                recommend(est, &situation(s, v, base), &market.guardrails).price
            }),
            sim::play(&market, sku, &mut |s, v| {
                let days = market.horizon - v.day;
                let base = (0..days).map(|t| s.mean(v.date + Duration::days(t as i64), f(v.price), false)).collect();
                optimise(&situation(s, v, base), &market.guardrails, &TrueResponse(s)).price
            }),
        ];
        let row = profit.entry(sku.scenario).or_default();
        for (total, p) in row.iter_mut().zip(played) {
            *total += p.profit;
        }
        *skus.entry(sku.scenario).or_default() += 1;
    }
    let played = started.elapsed();

    println!(
        "pricing on the simulated market: {n} SKUs, seed {seed}, {} days of history, {} days played in steps of {}",
        sim::HISTORY_DAYS,
        market.horizon,
        market.step
    );
    println!();
    println!(
        "| scenario | SKUs | {} | ours / oracle | ours vs static | ours vs rule |",
        POLICIES.iter().map(|p| format!("{p} profit")).collect::<Vec<_>>().join(" | ")
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut all = [0.0; 4];
    for (scenario, row) in &profit {
        for (a, r) in all.iter_mut().zip(row) {
            *a += r;
        }
        print_row(scenario.as_str(), skus[scenario], row);
    }
    print_row("all", n, &all);

    // A linear curve's elasticity depends on the price: it is compared where the history
    // measured it (the history's mean log price) and, beside it, at the current price.
    let (mut at_mean, mut at_current) = (Vec::new(), Vec::new());
    let (mut varied, mut missing, mut flat_kept) = (0usize, 0usize, 0usize);
    let mut confidence: BTreeMap<&str, usize> = BTreeMap::new();
    for (sku, est) in market.skus.iter().zip(&estimates) {
        *confidence.entry(est.confidence.as_str()).or_default() += 1;
        if !sku.varied {
            flat_kept += usize::from(est.elasticity.is_none());
            continue;
        }
        varied += 1;
        let observed: Vec<f64> = sku.history.iter().filter(|d| !d.stockout).map(|d| f(d.price).ln()).collect();
        let mean_price = (observed.iter().sum::<f64>() / observed.len().max(1) as f64).exp();
        let current = f(sku.current_price);
        match (est.elasticity_at(mean_price), est.elasticity_at(current)) {
            (Some(m), Some(c)) => {
                at_mean.push((m - sku.elasticity_at(mean_price)).abs());
                at_current.push((c - sku.elasticity_at(current)).abs());
            }
            _ => missing += 1,
        }
    }
    let quantile = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN)
    };
    println!();
    println!("| elasticity recovery | at the history's mean price | at the current price |");
    println!("|---|---:|---:|");
    println!("| SKUs whose price varied | {varied} | |");
    println!("| with an estimate | {} | |", at_mean.len());
    println!("| without (said why) | {missing} | |");
    println!("| median absolute error | {:.3} | {:.3} |", quantile(&mut at_mean, 0.5), quantile(&mut at_current, 0.5));
    println!(
        "| 90th percentile absolute error | {:.3} | {:.3} |",
        quantile(&mut at_mean, 0.9),
        quantile(&mut at_current, 0.9)
    );
    println!(
        "| flat-price SKUs with no estimate | {flat_kept} of {} | |",
        market.skus.iter().filter(|s| !s.varied).count()
    );
    for (c, k) in &confidence {
        println!("| confidence {c} | {k} | |");
    }
    println!();
    println!(
        "time: market {:.2} s, estimation {:.2} s ({:.2} ms per SKU), playing four policies {:.2} s",
        generated.as_secs_f64(),
        estimated.as_secs_f64(),
        estimated.as_secs_f64() * 1000.0 / n.max(1) as f64,
        played.as_secs_f64()
    );
    Ok(())
}

fn print_row(name: &str, skus: usize, row: &[f64; 4]) {
    let pct = |a: f64, b: f64| if b.abs() > 0.0 { format!("{:+.1} %", (a / b - 1.0) * 100.0) } else { "-".into() };
    println!(
        "| {name} | {skus} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} % | {} | {} |",
        row[0],
        row[1],
        row[2],
        row[3],
        row[2] / row[3] * 100.0,
        pct(row[2], row[0]),
        pct(row[2], row[1])
    );
}
