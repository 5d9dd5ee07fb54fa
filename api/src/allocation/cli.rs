//! `quartermaster allocate`: orders allocated to shipping locations offline from a JSON file (no
//! database): a location per line, within each location's stock.

use std::path::PathBuf;

use qm_domain::allocation::{self, Plan, Problem, SolveOptions};
use serde_json::json;

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

#[derive(Debug, thiserror::Error)]
pub enum AllocateError {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    /// Unreadable JSON or a value out of range, with where.
    #[error("{file}: {message}")]
    Input { file: String, message: String },
}

impl AllocateError {
    /// 2 for bad input (nothing is written), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            AllocateError::Input { .. } => 2,
            AllocateError::Io { .. } => 1,
        }
    }
}

/// Reads, allocates and writes; the plan is returned for the summary.
pub fn run(args: &AllocateArgs) -> Result<Plan, AllocateError> {
    let file = args.input.display().to_string();
    let text =
        std::fs::read_to_string(&args.input).map_err(|source| AllocateError::Io { file: file.clone(), source })?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let problem: Problem = serde_path_to_error::deserialize(de)
        .map_err(|e| AllocateError::Input { file: file.clone(), message: format!("{}: {}", e.path(), e.inner()) })?;
    let opts = SolveOptions::default();
    let plan = if args.greedy { allocation::greedy(&problem, &opts) } else { allocation::solve(&problem, &opts) }
        .map_err(|e| AllocateError::Input { file: file.clone(), message: e.to_string() })?;
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
    let body = serde_json::to_string_pretty(&out).unwrap_or_default() + "\n";
    if args.output.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout()
            .write_all(body.as_bytes())
            .map_err(|source| AllocateError::Io { file: "standard output".into(), source })?;
    } else {
        std::fs::write(&args.output, body)
            .map_err(|source| AllocateError::Io { file: args.output.display().to_string(), source })?;
    }
    Ok(plan)
}
