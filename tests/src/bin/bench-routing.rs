//! Routing benchmark: solves the public instances in ../shared/data/vrp (56 Solomon VRPTW, five
//! CVRPLIB X) with `quartermaster route`'s solver (the same code, in-process, one thread) under
//! the conventions of that folder's README (Solomon: distance only, DIMACS one-decimal truncated
//! distances and travel times, fleet as in the file; X: distance only, nearest-integer
//! distances, unlimited fleet), and prints per instance the distance, vehicles, gap to the
//! best known solution and feasibility, then the mean gaps per family and budget. In the same
//! run PyVRP (tests/bench/routing_peers.py, in a virtualenv the benchmark makes once under
//! target/bench-venv; `QM_BENCH_PYTHON` names another, `QM_BENCH_PEERS=0` skips it) solves each
//! instance with the same budget, one thread, for the side-by-side.
//!
//! With `--construction` it times the construction alone (the first plan the search starts
//! from, what an interactive caller gets at once) per instance instead, with its gap.
//!
//! cargo run --release -p qm-tests --bin bench-routing [-- --data DIR] [--seconds 10,60] [--only PREFIX[,PREFIX…]] [--construction]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use qm_api::routing::cli::solve;
use qm_domain::routing::instance::{self, Format, Rounding};

struct Case {
    name: String,
    format: Format,
    bks: f64,
}

fn cases(data: &std::path::Path) -> anyhow::Result<Vec<Case>> {
    let path = data.join("bks.csv");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (format, objective) = (f.get(1).copied(), f.get(2).copied());
        let format = match (format, objective) {
            (Some("solomon"), Some("distance_dimacs_trunc1")) => Format::Solomon,
            (Some("vrplib"), Some("distance_nint")) => Format::Vrplib,
            _ => continue,
        };
        let bks: f64 = f.get(3).and_then(|v| v.parse().ok()).with_context(|| format!("bks.csv: {line}"))?;
        out.push(Case { name: f[0].to_owned(), format, bks });
    }
    Ok(out)
}

/// Solves the public VRP instances with the route solver beside PyVRP (`QM_BENCH_PEERS=0` skips
/// it) and prints distance, vehicles and the gap to the best known solution per instance.
#[derive(Parser)]
struct Args {
    /// The instances' folder (../shared/data/vrp beside the repository by default).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Time budgets per instance in seconds, comma-separated; one run per budget.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    seconds: Vec<f64>,
    /// Only the instances whose names start with one of these prefixes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Time the construction alone (the first plan) per instance instead.
    #[arg(long)]
    construction: bool,
}

fn main() -> anyhow::Result<()> {
    let Args { data, seconds: budgets, only, construction } = Args::parse();
    let data = data.unwrap_or_else(|| qm_tests::TestApp::shared_data("vrp"));
    let cases: Vec<Case> = cases(&data)?
        .into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|p| c.name.starts_with(p.as_str())))
        .collect();
    anyhow::ensure!(!cases.is_empty(), "no instances (see {})", data.display());
    if construction {
        return construct(&data, &cases);
    }
    let python = qm_tests::bench_python("pyvrp", "pyvrp");
    for seconds in budgets {
        println!("\n{seconds} s per instance, one thread");
        println!("| instance | BKS | distance (vehicles) | gap | feasible | iterations | PyVRP (vehicles) | gap |");
        println!("|---|---|---|---|---|---|---|---|");
        let mut gaps: Vec<(&'static str, f64)> = Vec::new();
        let mut peer_gaps: Vec<(&'static str, f64)> = Vec::new();
        for case in &cases {
            let (path, inst, rounding, family) = load(&data, case)?;
            // The solver checks every route's schedule before it answers (an infeasible route is
            // an error); a customer left out makes the plan infeasible for the benchmark.
            let outcome = solve(&inst, rounding, Duration::from_secs_f64(seconds), None, 0, 1)?;
            let feasible = outcome.unassigned.is_empty();
            let gap = 100.0 * (outcome.distance - case.bks) / case.bks;
            gaps.push((family, if feasible { gap } else { f64::NAN }));
            let peer = match &python {
                Some(py) => match pyvrp(py, &path, case.format, seconds) {
                    Ok((distance, vehicles, true)) => {
                        let gap = 100.0 * (distance - case.bks) / case.bks;
                        peer_gaps.push((family, gap));
                        format!("{distance:.1} ({vehicles}) | {gap:+.2} %")
                    }
                    Ok((distance, vehicles, false)) => {
                        peer_gaps.push((family, f64::NAN));
                        format!("{distance:.1} ({vehicles}) infeasible | –")
                    }
                    Err(e) => format!("failed: {e} | –"),
                },
                None => "– | –".to_owned(),
            };
            println!(
                "| {} | {} | {:.1} ({}) | {gap:+.2} % | {} | {} | {peer} |",
                case.name,
                case.bks,
                outcome.distance,
                outcome.routes.len(),
                if feasible { "yes" } else { "NO" },
                outcome.iterations
            );
        }
        for family in ["Solomon", "X"] {
            let mean = |all: &[(&str, f64)]| {
                let of: Vec<f64> = all.iter().filter(|(f, _)| *f == family).map(|(_, g)| *g).collect();
                (!of.is_empty()).then(|| (of.iter().sum::<f64>() / of.len() as f64, of.len()))
            };
            if let Some((ours, n)) = mean(&gaps) {
                print!("mean gap {family} ({n} instances) at {seconds} s: {ours:+.2} %");
                match mean(&peer_gaps) {
                    Some((theirs, _)) => {
                        println!("; PyVRP {theirs:+.2} %; ours - PyVRP = {:+.2} points", ours - theirs)
                    }
                    None => println!(),
                }
            }
        }
    }
    Ok(())
}

/// The instance file of `case`, parsed, with its rounding and family.
fn load(data: &std::path::Path, case: &Case) -> anyhow::Result<(PathBuf, instance::Instance, Rounding, &'static str)> {
    let (dir, file, rounding, family) = match case.format {
        Format::Solomon => ("solomon", format!("{}.txt", case.name), Rounding::Trunc1, "Solomon"),
        Format::Vrplib => ("cvrplib_x", format!("{}.vrp", case.name), Rounding::Nint, "X"),
    };
    let path = data.join("instances").join(dir).join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let inst = instance::parse(&text, case.format).with_context(|| path.display().to_string())?;
    Ok((path, inst, rounding, family))
}

/// The construction alone per instance: wall time, distance and gap (best of three timings).
fn construct(data: &std::path::Path, cases: &[Case]) -> anyhow::Result<()> {
    println!("\nconstruction only (no search), one thread");
    println!("| instance | customers | ms | distance (vehicles) | gap | all served |");
    println!("|---|---|---|---|---|---|");
    let mut rows: Vec<(&'static str, f64, f64)> = Vec::new();
    for case in cases {
        let (_, inst, rounding, family) = load(data, case)?;
        let mut best = f64::INFINITY;
        let mut outcome = None;
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let o = solve(&inst, rounding, Duration::from_secs(600), Some(0), 0, 1)?;
            best = best.min(started.elapsed().as_secs_f64() * 1000.0);
            outcome = Some(o);
        }
        let o = outcome.context("three runs")?;
        let gap = 100.0 * (o.distance - case.bks) / case.bks;
        let customers = inst.problem(rounding).clients.len();
        println!(
            "| {} | {customers} | {best:.1} | {:.1} ({}) | {gap:+.1} % | {} |",
            case.name,
            o.distance,
            o.routes.len(),
            if o.unassigned.is_empty() { "yes" } else { "NO" }
        );
        rows.push((family, best, gap));
    }
    for family in ["Solomon", "X"] {
        let of: Vec<&(&str, f64, f64)> = rows.iter().filter(|r| r.0 == family).collect();
        if of.is_empty() {
            continue;
        }
        let n = of.len() as f64;
        let max_ms = of.iter().map(|r| r.1).fold(0.0, f64::max);
        println!(
            "{family} ({} instances): mean {:.1} ms (at most {max_ms:.1} ms), mean gap {:+.1} %",
            of.len(),
            of.iter().map(|r| r.1).sum::<f64>() / n,
            of.iter().map(|r| r.2).sum::<f64>() / n
        );
    }
    Ok(())
}

/// PyVRP on `path` for `seconds`: (distance, vehicles, feasible).
fn pyvrp(python: &str, path: &std::path::Path, format: Format, seconds: f64) -> anyhow::Result<(f64, usize, bool)> {
    let script = qm_tests::TestApp::repo_root().join("tests/bench/routing_peers.py");
    let format = match format {
        Format::Solomon => "solomon",
        Format::Vrplib => "vrplib",
    };
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(path)
        .arg(format)
        .arg(seconds.to_string())
        .output()
        .context("running PyVRP")?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    let value = |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1)).copied();
    let distance = value("distance").and_then(|v| v.parse().ok()).context("no distance from PyVRP")?;
    let vehicles = value("vehicles").and_then(|v| v.parse().ok()).context("no vehicles from PyVRP")?;
    Ok((distance, vehicles, value("feasible") == Some("1")))
}
