//! `quartermaster allocate`: orders allocated to shipping locations offline from a JSON file (no
//! database): a location per line, within each location's stock.

use std::path::PathBuf;

use qm_domain::allocation::{self, Plan, Problem, SolveOptions};
use serde_json::json;

use crate::json_io::{self, JsonIoError};

/// The arguments of `quartermaster allocate`.
#[derive(Debug, Clone, clap::Args)]
pub struct AllocateArgs {
    /// The orders and locations (README "Allocation offline").
    #[arg(long)]
    pub input: PathBuf,
    /// Where the allocation goes (`-`: standard output).
    #[arg(long)]
    pub output: PathBuf,
    /// Allocate order by order (each exactly, on the stock the ones before left) instead of
    /// the whole batch at once.
    #[arg(long)]
    pub greedy: bool,
}

/// Reads, allocates and writes; the plan is returned for the summary.
pub fn run(args: &AllocateArgs) -> Result<Plan, JsonIoError> {
    let problem: Problem = json_io::read(&args.input)?;
    let opts = SolveOptions::default();
    let plan = if args.greedy { allocation::greedy(&problem, &opts) } else { allocation::solve(&problem, &opts) }
        .map_err(|e| JsonIoError::input(&args.input, e))?;
    let out = json!({
        "method": plan.method,
        "cost": plan.cost.to_string(),
        "orders": plan.allocations.iter().map(|a| json!({
            "id": a.order,
            "lines": a.lines,
            "parcels": a.parcels,
            "shipping": a.shipping.to_string(),
            "handling": a.handling.to_string(),
            "split": a.split.to_string(),
            "stockout_risk": a.stockout_risk.to_string(),
            "unfilled": a.unfilled.to_string(),
            "cost": a.cost.to_string(),
        })).collect::<Vec<_>>(),
    });
    json_io::write(&args.output, &out)?;
    Ok(plan)
}
