//! Routing benchmark: solves the public instances in ../shared/data/vrp (56 Solomon VRPTW, five
//! CVRPLIB X) with `quartermaster route`'s solver (the same code, in-process, one thread) under
//! the conventions of that folder's README (Solomon: distance only, DIMACS one-decimal truncated
//! distances and travel times, fleet as in the file; X: distance only, nearest-integer
//! distances, unlimited fleet), and prints per instance the distance, vehicles, gap to the
//! best known solution and feasibility, then the mean gaps per family and budget.
//!
//! cargo run --release -p qm-tests --bin bench-routing [-- --data DIR] [--seconds 10,60] [--only PREFIX]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
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

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut data = qm_tests::TestApp::repo_root().join("../shared/data/vrp");
    let mut budgets = vec![10.0];
    let mut only: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = PathBuf::from(args.next().context("--data DIR")?),
            "--seconds" => {
                budgets = args
                    .next()
                    .context("--seconds 10,60")?
                    .split(',')
                    .map(|s| s.parse::<f64>().context("--seconds takes numbers"))
                    .collect::<anyhow::Result<_>>()?;
            }
            "--only" => only = Some(args.next().context("--only PREFIX")?),
            other => anyhow::bail!("unknown argument {other} (use --data DIR, --seconds 10,60, --only PREFIX)"),
        }
    }
    let cases: Vec<Case> =
        cases(&data)?.into_iter().filter(|c| only.as_ref().is_none_or(|p| c.name.starts_with(p.as_str()))).collect();
    anyhow::ensure!(!cases.is_empty(), "no instances (see {})", data.display());
    for seconds in budgets {
        println!("\n{seconds} s per instance, one thread");
        println!("| instance | BKS | distance (vehicles) | gap | feasible | iterations |");
        println!("|---|---|---|---|---|---|");
        let mut gaps: Vec<(&'static str, f64)> = Vec::new();
        for case in &cases {
            let (dir, file, rounding, family) = match case.format {
                Format::Solomon => ("solomon", format!("{}.txt", case.name), Rounding::Trunc1, "Solomon"),
                Format::Vrplib => ("cvrplib_x", format!("{}.vrp", case.name), Rounding::Nint, "X"),
            };
            let path = data.join("instances").join(dir).join(file);
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let inst = instance::parse(&text, case.format).with_context(|| path.display().to_string())?;
            // The solver checks every route's schedule before it answers (an infeasible route is
            // an error); a customer left out makes the plan infeasible for the benchmark.
            let outcome = solve(&inst, rounding, Duration::from_secs_f64(seconds), None, 0)?;
            let feasible = outcome.unassigned.is_empty();
            let gap = 100.0 * (outcome.distance - case.bks) / case.bks;
            gaps.push((family, if feasible { gap } else { f64::NAN }));
            println!(
                "| {} | {} | {:.1} ({}) | {gap:+.2} % | {} | {} |",
                case.name,
                case.bks,
                outcome.distance,
                outcome.routes.len(),
                if feasible { "yes" } else { "NO" },
                outcome.iterations
            );
        }
        for family in ["Solomon", "X"] {
            let of: Vec<f64> = gaps.iter().filter(|(f, _)| *f == family).map(|(_, g)| *g).collect();
            if !of.is_empty() {
                let mean = of.iter().sum::<f64>() / of.len() as f64;
                println!("mean gap {family} ({} instances) at {seconds} s: {mean:+.2} %", of.len());
            }
        }
    }
    Ok(())
}
