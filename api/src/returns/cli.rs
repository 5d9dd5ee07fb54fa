//! `quartermaster returns-plan`: a day's returned items planned offline from a JSON file (no
//! database): a disposition and a destination per item, within each location's capacity.

use std::path::PathBuf;

use qm_domain::returns::{self, Plan, Problem, SolveOptions};
use serde_json::json;

use crate::json_io::{self, JsonIoError};

/// The arguments of `quartermaster returns-plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReturnsPlanArgs {
    /// The batch (README "Returns offline"): items, locations, dispositions.
    #[arg(long)]
    pub input: PathBuf,
    /// Where the plan goes (`-`: standard output).
    #[arg(long)]
    pub output: PathBuf,
    /// Plan greedily (best net value first) instead of solving exactly.
    #[arg(long)]
    pub greedy: bool,
}

/// Reads, plans and writes; the plan is returned for the summary.
pub fn run(args: &ReturnsPlanArgs) -> Result<Plan, JsonIoError> {
    let problem: Problem = json_io::read(&args.input)?;
    let plan = if args.greedy { returns::greedy(&problem) } else { returns::solve(&problem, &SolveOptions::default()) }
        .map_err(|e| JsonIoError::input(&args.input, e))?;
    let out = json!({
        "method": plan.method,
        "objective": plan.objective.to_string(),
        "bound": plan.bound.to_string(),
        "gap": plan.gap,
        "items": plan.decisions.iter().map(|d| json!({
            "id": d.item,
            "disposition": d.disposition.map_or("hold", |x| x.as_str()),
            "location": d.location,
            "expected_recovery": d.expected_recovery.to_string(),
            "processing_cost": d.processing_cost.to_string(),
            "transport_cost": d.transport_cost.to_string(),
            "net": d.net.to_string(),
        })).collect::<Vec<_>>(),
    });
    json_io::write(&args.output, &out)?;
    Ok(plan)
}
