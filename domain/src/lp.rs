//! The mixed-integer solver behind good_lp: HiGHS with the `highs` feature (one thread, a node
//! limit, so a result is the same every time), else the pure-Rust microlp.

/// HiGHS explores at most this many branch-and-bound nodes; the best solution found by then is
/// kept.
#[cfg(feature = "highs")]
pub const HIGHS_MAX_NODES: i32 = 20_000;

/// The solver: HiGHS with the `highs` feature, on one thread so results are deterministic.
#[cfg(feature = "highs")]
pub fn solver(problem: good_lp::variable::UnsolvedProblem) -> good_lp::solvers::highs::HighsProblem {
    good_lp::highs(problem).set_threads(1).set_option("mip_max_nodes", HIGHS_MAX_NODES)
}

/// The solver: the pure-Rust microlp.
#[cfg(not(feature = "highs"))]
pub fn solver(problem: good_lp::variable::UnsolvedProblem) -> good_lp::solvers::microlp::MicroLpProblem {
    good_lp::microlp(problem)
}
