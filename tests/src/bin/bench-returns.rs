//! Returns benchmark: a day of 10,000 returned items from across the continental United States
//! and 10 returns-handling locations (capacity for about 105 % of the batch, unevenly spread),
//! generated from a seed. It plans the batch three ways and prints, for each, the time, the
//! objective (recovered value less processing and transport, less holding), and the gap to an
//! upper bound:
//! - baseline: restock grade A at the nearest location that restocks and has room, liquidate
//!   the rest at the nearest location with room (the habit the issue names);
//! - greedy: `qm_domain::returns::greedy` (best net value first over every item × location);
//! - MILP: `qm_domain::returns::solve` with no size limit (the pure-Rust microlp by default,
//!   HiGHS with `--features highs`).
//!
//! The bound is the Lagrangian bound (capacities priced) for the baseline and the greedy plan,
//! and the MILP's own optimum once it is solved (its relaxation is integral).
//!
//! cargo run --release -p qm-tests --bin bench-returns [-- --items 10000] [--locations 10] [--seed 7] [--no-milp]

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Parser;
use qm_domain::returns::{self, Disposition, Grade, Item, Location, Plan, Problem, SolveOptions, Terms};
use qm_domain::routing::geo::haversine_m;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;

const CITIES: [(&str, f64, f64); 10] = [
    ("NJ", 40.73, -74.17),
    ("ATL", 33.75, -84.39),
    ("CHI", 41.88, -87.63),
    ("DAL", 32.78, -96.80),
    ("DEN", 39.74, -104.99),
    ("PHX", 33.45, -112.07),
    ("LA", 34.05, -118.24),
    ("SEA", 47.61, -122.33),
    ("MSP", 44.98, -93.27),
    ("MIA", 25.76, -80.19),
];

fn dec(x: f64) -> Decimal {
    Decimal::from_f64(x).unwrap_or_default().round_dp(2)
}

fn problem(n: usize, l: usize, seed: u64) -> Problem {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let grades = [Grade::A, Grade::B, Grade::C, Grade::D];
    let items: Vec<Item> = (0..n)
        .map(|i| {
            // Customers cluster around the cities, a few anywhere.
            let (_, la, lo) = CITIES[rng.random_range(0..CITIES.len())];
            let (lat, lon) = (la + rng.random_range(-3.0..3.0), lo + rng.random_range(-4.0..4.0));
            let value = (rng.random_range(2.0f64..5.5)).exp();
            let g = rng.random_range(0.0..1.0);
            let grade = grades[usize::from(g > 0.45) + usize::from(g > 0.70) + usize::from(g > 0.90)];
            Item {
                id: format!("R{i}"),
                sku: format!("SKU-{}", rng.random_range(0..400)),
                value: dec(value),
                grade,
                reason: "return".into(),
                lat,
                lon,
                vendor_credit: (rng.random_range(0.0..1.0) < 0.3).then(|| dec(value * rng.random_range(0.3..0.6))),
                restock_bonus: BTreeMap::new(),
            }
        })
        .collect();
    let weights: Vec<f64> = (0..l).map(|_| rng.random_range(0.5..1.5)).collect();
    let total: f64 = weights.iter().sum();
    let locations = (0..l)
        .map(|k| {
            let (name, lat, lon) = CITIES[k % CITIES.len()];
            let all = k % 3 != 2;
            let mut dispositions =
                BTreeMap::from([(Disposition::Liquidate, dec(0.5)), (Disposition::Recycle, dec(0.3))]);
            dispositions.insert(Disposition::RestockNew, dec(1.0 + k as f64 * 0.1));
            if all {
                dispositions.insert(Disposition::OpenBox, dec(1.5));
                dispositions.insert(Disposition::Refurbish, dec(6.0 + k as f64 * 0.5));
                dispositions.insert(Disposition::ReturnToVendor, dec(0.8));
            }
            Location {
                id: format!("{name}-{k}"),
                lat,
                lon,
                capacity: (n as f64 * 1.05 * weights[k] / total).round() as u32,
                dispositions,
            }
        })
        .collect();
    let t = |rate: f64, yield_rate: Option<f64>, grades: &[Grade]| Terms {
        recovery_rate: dec(rate),
        yield_rate: yield_rate.map(dec),
        grades: grades.to_vec(),
    };
    Problem {
        items,
        locations,
        dispositions: BTreeMap::from([
            (Disposition::RestockNew, t(1.0, None, &[Grade::A])),
            (Disposition::OpenBox, t(0.75, None, &[Grade::A, Grade::B])),
            (Disposition::Refurbish, t(0.85, Some(0.8), &[Grade::B, Grade::C])),
            (Disposition::ReturnToVendor, t(0.0, None, &[])),
            (Disposition::Liquidate, t(0.15, None, &[])),
            (Disposition::Recycle, t(0.0, None, &[])),
        ]),
        transport_cost_per_km: Decimal::new(4, 3),
        hold_cost: Decimal::ONE,
    }
}

/// The habit: grade A restocked at the nearest location that restocks and has room, everything
/// else liquidated at the nearest location with room; held when none has.
fn baseline(p: &Problem) -> Vec<Option<(usize, Disposition)>> {
    let mut left: Vec<u32> = p.locations.iter().map(|l| l.capacity).collect();
    p.items
        .iter()
        .map(|it| {
            let d = if it.grade == Grade::A { Disposition::RestockNew } else { Disposition::Liquidate };
            let mut near: Vec<usize> =
                (0..p.locations.len()).filter(|&k| p.locations[k].dispositions.contains_key(&d)).collect();
            near.sort_by(|&a, &b| {
                let da = haversine_m((it.lat, it.lon), (p.locations[a].lat, p.locations[a].lon));
                let db = haversine_m((it.lat, it.lon), (p.locations[b].lat, p.locations[b].lon));
                da.total_cmp(&db)
            });
            near.into_iter().find(|&k| left[k] > 0).map(|k| {
                left[k] -= 1;
                (k, d)
            })
        })
        .collect()
}

fn row(name: &str, plan: &Plan, seconds: f64, bound: Decimal) {
    let gap = qm_domain::types::as_f64(bound - plan.objective) / qm_domain::types::as_f64(bound).abs().max(1.0);
    let held = plan.decisions.iter().filter(|d| d.disposition.is_none()).count();
    let restocked = plan.decisions.iter().filter(|d| d.disposition.is_some_and(Disposition::restocks)).count();
    println!(
        "| {name} | {seconds:.2} | {} | {restocked} | {held} | {:.2} % |",
        plan.objective.round_dp(2),
        gap * 100.0
    );
}

/// Plans a generated day of returned items three ways (baseline, greedy, MILP) and prints time,
/// objective and the gap to an upper bound.
#[derive(Parser)]
struct Args {
    /// Returned items in the batch.
    #[arg(long, default_value_t = 10_000)]
    items: usize,
    /// Returns-handling locations.
    #[arg(long, default_value_t = 10)]
    locations: usize,
    /// Seeds the generated batch.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Skip the MILP.
    #[arg(long)]
    no_milp: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (n, l, seed, milp) = (args.items, args.locations, args.seed, !args.no_milp);
    let p = problem(n, l, seed);
    let solver = if cfg!(feature = "highs") { "HiGHS" } else { "microlp" };
    println!(
        "returns: {n} items × {l} locations, seed {seed}, capacity {} in all; solver {solver}\n",
        p.locations.iter().map(|l| l.capacity).sum::<u32>()
    );

    let t = Instant::now();
    let base = returns::score(&p, &baseline(&p))?;
    let base_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let quick = returns::greedy(&p)?;
    let quick_s = t.elapsed().as_secs_f64();
    let exact = if milp {
        let t = Instant::now();
        let plan = returns::solve(&p, &SolveOptions { max_variables: usize::MAX })?;
        Some((plan, t.elapsed().as_secs_f64()))
    } else {
        None
    };
    // The tightest upper bound known: the MILP's optimum when it solved exactly, else the
    // greedy plan's Lagrangian bound.
    let bound = match &exact {
        Some((plan, _)) if plan.method == returns::Method::Milp => plan.objective,
        _ => quick.bound,
    };
    println!("| plan | seconds | objective | restocked | held | gap to the bound |");
    println!("| --- | --- | --- | --- | --- | --- |");
    row("baseline (grade A restocked nearest, the rest liquidated)", &base, base_s, bound);
    row("greedy", &quick, quick_s, bound);
    if let Some((plan, s)) = &exact {
        row(&format!("MILP ({solver}; {:?})", plan.method), plan, *s, bound);
        let lift = qm_domain::types::as_f64(plan.objective - base.objective)
            / qm_domain::types::as_f64(base.objective).abs().max(1.0);
        println!("\nMILP over the baseline: {:+.1} %", lift * 100.0);
    }
    println!(
        "bound: {} ({})",
        bound.round_dp(2),
        if exact.as_ref().is_some_and(|(p, _)| p.method == returns::Method::Milp) {
            "the MILP's optimum"
        } else {
            "Lagrangian"
        }
    );
    Ok(())
}
