//! `quartermaster returns-plan`: a day's returned items planned offline from a JSON file (no
//! database): a disposition and a destination per item, within each location's capacity.

use std::path::PathBuf;

use qm_domain::returns::{self, Plan, Problem, SolveOptions};
use serde_json::json;

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

#[derive(Debug, thiserror::Error)]
pub enum ReturnsPlanError {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    /// Unreadable JSON or a value out of range, with where.
    #[error("{file}: {message}")]
    Input { file: String, message: String },
}

impl ReturnsPlanError {
    /// 2 for bad input (nothing is written), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ReturnsPlanError::Input { .. } => 2,
            ReturnsPlanError::Io { .. } => 1,
        }
    }
}

/// Reads, plans and writes; the plan is returned for the summary.
pub fn run(args: &ReturnsPlanArgs) -> Result<Plan, ReturnsPlanError> {
    let file = args.input.display().to_string();
    let text =
        std::fs::read_to_string(&args.input).map_err(|source| ReturnsPlanError::Io { file: file.clone(), source })?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let problem: Problem = serde_path_to_error::deserialize(de)
        .map_err(|e| ReturnsPlanError::Input { file: file.clone(), message: format!("{}: {}", e.path(), e.inner()) })?;
    let plan = if args.greedy { returns::greedy(&problem) } else { returns::solve(&problem, &SolveOptions::default()) }
        .map_err(|e| ReturnsPlanError::Input { file: file.clone(), message: e.to_string() })?;
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
    let body = serde_json::to_string_pretty(&out).unwrap_or_default() + "\n";
    if args.output.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout()
            .write_all(body.as_bytes())
            .map_err(|source| ReturnsPlanError::Io { file: "standard output".into(), source })?;
    } else {
        std::fs::write(&args.output, body)
            .map_err(|source| ReturnsPlanError::Io { file: args.output.display().to_string(), source })?;
    }
    Ok(plan)
}
