//! Order allocation benchmark: 5,000 orders of 1 to 3 lines from across the continental United
//! States and 8 shipping locations (three of them stores that ship online orders), 300 SKUs
//! each stocked at three locations (1.5 times the batch's demand, unevenly), and stores' stock protected
//! for their walk-in demand; generated from a seed. It allocates the batch three ways and
//! prints the time, the cost (shipping, handling, splits, expected stockouts, unfilled units),
//! the split rate and the ship-from-store share, and the gap to the LP bound (the linear
//! relaxation of the batch program):
//! - baseline: each line from the nearest location that still has its stock (the habit the
//!   issue names);
//! - greedy: order by order, each allocated exactly on the stock the ones before left;
//! - MILP: the whole batch at once (the pure-Rust microlp by default, HiGHS with
//!   `--features highs`), skipped with `--no-milp`.
//!
//! cargo run --release -p qm-tests --bin bench-allocate [-- --orders 5000] [--locations 8] [--seed 11] [--no-milp] [--no-bound]

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Parser;
use qm_domain::allocation::{self, Band, Line, Order, Plan, Problem, Protection, Site, SolveOptions};
use qm_domain::routing::geo::haversine_m;
use qm_domain::types::as_f64 as f;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

const CITIES: [(&str, f64, f64); 8] = [
    ("NJ", 40.73, -74.17),
    ("ATL", 33.75, -84.39),
    ("CHI", 41.88, -87.63),
    ("DAL", 32.78, -96.80),
    ("DEN", 39.74, -104.99),
    ("LA", 34.05, -118.24),
    ("SEA", 47.61, -122.33),
    ("MIA", 25.76, -80.19),
];

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

fn problem(n: usize, l: usize, seed: u64) -> Problem {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let skus = 300usize;
    let orders: Vec<Order> = (0..n)
        .map(|i| {
            let (_, la, lo) = CITIES[rng.random_range(0..CITIES.len())];
            let lines = (0..rng.random_range(1..=3))
                .map(|_| Line { sku: format!("SKU-{}", rng.random_range(0..skus)), quantity: rng.random_range(1..=2) })
                .collect();
            Order {
                id: format!("O{i}"),
                lines,
                lat: la + rng.random_range(-4.0..4.0),
                lon: lo + rng.random_range(-5.0..5.0),
                pinned: None,
            }
        })
        .collect();
    let mut demand: BTreeMap<String, u32> = BTreeMap::new();
    for o in &orders {
        for line in &o.lines {
            *demand.entry(line.sku.clone()).or_default() += line.quantity;
        }
    }
    let bands = vec![
        Band { max_km: 150.0, parcel: cents(450), unit: cents(20) },
        Band { max_km: 600.0, parcel: cents(650), unit: cents(35) },
        Band { max_km: 1500.0, parcel: cents(850), unit: cents(50) },
        Band { max_km: 5000.0, parcel: cents(1150), unit: cents(75) },
    ];
    // Each SKU is stocked at three locations, 1.5 times the batch's demand in all, unevenly.
    let mut stock: Vec<BTreeMap<String, u32>> = vec![BTreeMap::new(); l];
    for (sku, d) in &demand {
        let mut at: Vec<usize> = (0..l).collect();
        for k in 0..at.len() {
            let j = rng.random_range(k..at.len());
            at.swap(k, j);
        }
        let shares: Vec<f64> = (0..3.min(l)).map(|_| rng.random_range(0.3..1.7)).collect();
        let total: f64 = shares.iter().sum();
        for (k, share) in at.iter().zip(&shares) {
            let units = (f64::from(*d) * 1.5 * share / total).ceil() as u32;
            stock[*k].insert(sku.clone(), units);
        }
    }
    let sites = (0..l)
        .map(|k| {
            let (name, lat, lon) = CITIES[k % CITIES.len()];
            let store = k >= l.saturating_sub(3);
            let stock = std::mem::take(&mut stock[k]);
            let protect = if store {
                stock
                    .iter()
                    .map(|(sku, units)| {
                        (sku.clone(), Protection { demand: f64::from(*units) * 0.6, stockout_cost: cents(1500) })
                    })
                    .collect()
            } else {
                BTreeMap::new()
            };
            Site {
                id: format!("{name}-{}", if store { "STORE" } else { "DC" }),
                lat,
                lon,
                store,
                ship_from_store: store,
                handling_per_parcel: if store { cents(250) } else { cents(120) },
                handling_per_unit: cents(15),
                bands: bands.clone(),
                stock,
                protect,
            }
        })
        .collect();
    Problem { orders, sites, split_cost: cents(300), unfilled_cost: Decimal::from(60) }
}

/// The habit: each line from the nearest location that may ship it and still has the stock.
fn baseline(p: &Problem) -> Vec<Vec<Option<usize>>> {
    let mut left: Vec<BTreeMap<String, u32>> = p.sites.iter().map(|s| s.stock.clone()).collect();
    p.orders
        .iter()
        .map(|o| {
            let mut near: Vec<usize> = (0..p.sites.len())
                .filter(|&s| {
                    let site = &p.sites[s];
                    let km = haversine_m((o.lat, o.lon), (site.lat, site.lon)) / 1000.0;
                    (!site.store || site.ship_from_store) && site.bands.iter().any(|b| km <= b.max_km)
                })
                .collect();
            near.sort_by(|&a, &b| {
                let da = haversine_m((o.lat, o.lon), (p.sites[a].lat, p.sites[a].lon));
                let db = haversine_m((o.lat, o.lon), (p.sites[b].lat, p.sites[b].lon));
                da.total_cmp(&db)
            });
            o.lines
                .iter()
                .map(|line| {
                    let s = near
                        .iter()
                        .copied()
                        .find(|&s| left[s].get(&line.sku).copied().unwrap_or(0) >= line.quantity)?;
                    if let Some(u) = left[s].get_mut(&line.sku) {
                        *u -= line.quantity;
                    }
                    Some(s)
                })
                .collect()
        })
        .collect()
}

fn row(name: &str, p: &Problem, plan: &Plan, seconds: f64, bound: Option<Decimal>) {
    let orders = plan.allocations.len().max(1) as f64;
    let split = plan.allocations.iter().filter(|a| a.parcels > 1).count() as f64 / orders;
    let stores: BTreeMap<&str, bool> = p.sites.iter().map(|s| (s.id.as_str(), s.store)).collect();
    let (mut lines, mut from_store) = (0usize, 0usize);
    for a in &plan.allocations {
        for s in a.lines.iter().flatten() {
            lines += 1;
            from_store += usize::from(stores.get(s.as_str()).copied().unwrap_or(false));
        }
    }
    let sum = |g: fn(&allocation::Allocation) -> Decimal| plan.allocations.iter().map(g).sum::<Decimal>();
    let gap =
        bound.map_or_else(|| "—".to_owned(), |b| format!("{:.2} %", f(plan.cost - b) / f(b).abs().max(1.0) * 100.0));
    println!(
        "| {name} | {seconds:.2} | {} | {:.2} | {} | {} | {:.1} % | {:.1} % | {gap} |",
        plan.cost.round_dp(2),
        f(sum(|a| a.shipping)) / orders,
        sum(|a| a.stockout_risk).round_dp(2),
        sum(|a| a.unfilled).round_dp(2),
        split * 100.0,
        from_store as f64 / lines.max(1) as f64 * 100.0,
    );
}

/// Allocates a generated batch of orders three ways (baseline, greedy, MILP) and prints time,
/// cost, split rate, ship-from-store share and the gap to the LP bound.
#[derive(Parser)]
struct Args {
    /// Orders in the batch.
    #[arg(long, default_value_t = 5_000)]
    orders: usize,
    /// Shipping locations.
    #[arg(long, default_value_t = 8)]
    locations: usize,
    /// Seeds the generated batch.
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// Skip the MILP.
    #[arg(long)]
    no_milp: bool,
    /// Skip the LP bound.
    #[arg(long)]
    no_bound: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (n, l, seed) = (args.orders, args.locations, args.seed);
    let (milp, with_bound) = (!args.no_milp, !args.no_bound);
    let p = problem(n, l, seed);
    let solver = if cfg!(feature = "highs") { "HiGHS" } else { "microlp" };
    let lines: usize = p.orders.iter().map(|o| o.lines.len()).sum();
    println!("allocation: {n} orders ({lines} lines) × {l} locations, seed {seed}; solver {solver}\n");

    let t = Instant::now();
    let bound = if with_bound { allocation::lower_bound(&p)? } else { None };
    let bound_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let base = allocation::score(&p, &baseline(&p))?;
    let base_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let quick = allocation::greedy(&p, &SolveOptions::default())?;
    let quick_s = t.elapsed().as_secs_f64();
    println!(
        "| plan | seconds | cost | shipping per order | expected stockouts | unfilled | split rate | ship-from-store share | gap to the LP bound |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    row("baseline (nearest location with stock)", &p, &base, base_s, bound);
    row("greedy (order by order, each exact)", &p, &quick, quick_s, bound);
    if milp {
        let t = Instant::now();
        let plan = allocation::solve(&p, &SolveOptions { max_variables: usize::MAX, ..SolveOptions::default() })?;
        row(&format!("MILP ({solver}; {:?})", plan.method), &p, &plan, t.elapsed().as_secs_f64(), bound);
        println!(
            "\nMILP against the baseline: {:.1} % less cost",
            f(base.cost - plan.cost) / f(base.cost).max(1.0) * 100.0
        );
    }
    match bound {
        Some(b) => println!("LP bound: {} ({bound_s:.1} s)", b.round_dp(2)),
        None if with_bound => println!("LP bound: the solver did not finish"),
        None => {}
    }
    Ok(())
}
