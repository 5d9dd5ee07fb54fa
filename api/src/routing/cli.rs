//! `quartermaster route`: solves a benchmark routing instance offline (no database) and writes
//! the plan as JSON (and, with `--sol`, in the CVRPLIB solution layout on standard output).

use std::path::PathBuf;
use std::time::Duration;

use super::solve_on;
use anyhow::Context;
use qm_domain::routing::instance::{self, Format, Instance, Rounding};
use qm_domain::routing::solution::{Solution, schedule};

/// The arguments of `quartermaster route`.
#[derive(Debug, Clone, clap::Args)]
pub struct RouteArgs {
    /// The instance file.
    #[arg(long)]
    pub instance: PathBuf,
    /// `solomon` (VRPTW text layout) or `vrplib` (CVRPLIB/TSPLIB, EUC_2D).
    #[arg(long)]
    pub format: String,
    /// How arc lengths are rounded: `none` (exact doubles), `trunc1` (one decimal, truncated:
    /// DIMACS), `nint` (nearest integer: TSPLIB EUC_2D).
    #[arg(long)]
    pub rounding: String,
    /// Seconds to search.
    #[arg(long = "time-limit")]
    pub time_limit: f64,
    /// Stop after this many iterations if the time limit has not come first (with a seed, the
    /// same plan every run).
    #[arg(long)]
    pub iterations: Option<u64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Independent searches run in parallel (seeds `seed`, `seed + 1`, …); the best plan wins.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Where to write {"distance", "vehicles", "routes"}; `-` for standard output.
    #[arg(long)]
    pub output: PathBuf,
    /// Also print the routes as `Route #k: …` lines and `Cost …` on standard output.
    #[arg(long)]
    pub sol: bool,
}

/// What a run found, for the caller to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub name: String,
    /// The plan's distance under the instance's rounding.
    pub distance: f64,
    /// Routes as customer numbers (as in the file; the depot left out).
    pub routes: Vec<Vec<u64>>,
    /// Customers no vehicle could serve.
    pub unassigned: Vec<u64>,
    pub iterations: u64,
}

fn parse_format(s: &str) -> anyhow::Result<Format> {
    match s {
        "solomon" => Ok(Format::Solomon),
        "vrplib" => Ok(Format::Vrplib),
        other => anyhow::bail!("--format {other:?}: use solomon or vrplib"),
    }
}

fn parse_rounding(s: &str) -> anyhow::Result<Rounding> {
    match s {
        "none" => Ok(Rounding::None),
        "trunc1" => Ok(Rounding::Trunc1),
        "nint" => Ok(Rounding::Nint),
        other => anyhow::bail!("--rounding {other:?}: use none, trunc1 or nint"),
    }
}

/// Solves `instance` under `rounding` within `limit` (and `iterations`, if given) on `threads`
/// independent searches.
pub fn solve(
    instance: &Instance,
    rounding: Rounding,
    limit: Duration,
    iterations: Option<u64>,
    seed: u64,
    threads: usize,
) -> anyhow::Result<Outcome> {
    let problem = instance.problem(rounding);
    problem.validate().context("the instance")?;
    let (plan, done): (Solution, u64) = solve_on(&problem, seed, threads, limit, iterations);
    for r in &plan.routes {
        schedule(&problem, r).map_err(|e| anyhow::anyhow!("internal error: a planned route cannot run: {e}"))?;
    }
    let routes: Vec<Vec<u64>> =
        plan.routes.iter().map(|r| r.visits.iter().map(|c| instance.number(*c)).collect()).collect();
    let distance = match rounding {
        // Exact doubles from the coordinates, not the solver's integers.
        Rounding::None => plan
            .routes
            .iter()
            .map(|r| {
                let stops: Vec<usize> = std::iter::once(0).chain(r.visits.iter().map(|c| c + 1)).chain([0]).collect();
                stops.windows(2).map(|w| instance.length(w[0], w[1])).sum::<f64>()
            })
            .sum(),
        other => plan.distance(&problem) as f64 / other.scale() as f64,
    };
    Ok(Outcome {
        name: instance.name.clone(),
        distance,
        routes,
        unassigned: plan.unassigned.iter().map(|c| instance.number(*c)).collect(),
        iterations: done,
    })
}

pub fn run(args: &RouteArgs) -> anyhow::Result<Outcome> {
    let format = parse_format(&args.format)?;
    let rounding = parse_rounding(&args.rounding)?;
    anyhow::ensure!(
        args.time_limit.is_finite() && args.time_limit > 0.0 && args.time_limit <= 86_400.0,
        "--time-limit must be a number of seconds between 0 and 86400"
    );
    let text =
        std::fs::read_to_string(&args.instance).with_context(|| format!("cannot read {}", args.instance.display()))?;
    let instance = instance::parse(&text, format).with_context(|| format!("{}", args.instance.display()))?;
    anyhow::ensure!((1..=256).contains(&args.threads), "--threads must be between 1 and 256");
    let limit = Duration::from_secs_f64(args.time_limit);
    let outcome = solve(&instance, rounding, limit, args.iterations, args.seed, args.threads)?;
    let json = serde_json::json!({
        "instance": outcome.name,
        "distance": outcome.distance,
        "vehicles": outcome.routes.len(),
        "routes": outcome.routes,
        "unassigned": outcome.unassigned,
    });
    let text = format!("{json}\n");
    if args.output.as_os_str() == "-" {
        print!("{text}");
    } else {
        std::fs::write(&args.output, text).with_context(|| format!("cannot write {}", args.output.display()))?;
    }
    if args.sol {
        print!("{}", sol_lines(&outcome));
    }
    Ok(outcome)
}

/// The routes in the CVRPLIB solution layout.
pub fn sol_lines(o: &Outcome) -> String {
    let mut out = String::new();
    for (k, r) in o.routes.iter().enumerate() {
        let stops: Vec<String> = r.iter().map(u64::to_string).collect();
        out.push_str(&format!("Route #{}: {}\n", k + 1, stops.join(" ")));
    }
    out.push_str(&format!("Cost {}\n", o.distance));
    out
}
