//! Route planning at the edge: the offline `quartermaster route` command over benchmark
//! instances, road durations and distances for the service (`roads`: OSRM or great-circle, cached
//! per tenant), and the wall-clock budget both give the solver (`qm_domain::routing`).

pub mod cli;
pub mod roads;

use std::time::{Duration, Instant};

use qm_domain::routing::problem::Problem;
use qm_domain::routing::search::{self, Budget, Options};
use qm_domain::routing::solution::Solution;

/// Stops at a wall-clock limit or an iteration count. With a count, the search's progress (its
/// annealing temperature) follows the count alone, so a seed gives the same plan on a slow
/// machine as on a fast one, as long as the time limit does not stop it first.
pub struct Limit {
    started: Instant,
    limit: Duration,
    iterations: Option<u64>,
    /// Iterations done so far.
    pub done: u64,
}

impl Limit {
    pub fn new(limit: Duration, iterations: Option<u64>) -> Self {
        Limit { started: Instant::now(), limit, iterations, done: 0 }
    }
}

impl Budget for Limit {
    fn progress(&mut self, iteration: u64) -> Option<f64> {
        self.done = iteration;
        let time = self.started.elapsed().as_secs_f64() / self.limit.as_secs_f64().max(1e-9);
        let progress = self.iterations.map_or(time, |n| iteration as f64 / n.max(1) as f64);
        (progress < 1.0 && time < 1.0).then_some(progress)
    }
}

/// Solves `p` with `threads` independent searches in parallel, seeded `seed`, `seed + 1`, …, each
/// within `limit` (and `iterations`): the plan serving the most stops wins, then the cheapest,
/// then the lowest seed. Thread 0 is the single-threaded search, so more threads never give a
/// worse plan for the same budget, and with an iteration count the result is the same every run.
/// Returns the plan and the iterations done by all threads together.
pub fn solve_on(p: &Problem, seed: u64, threads: usize, limit: Duration, iterations: Option<u64>) -> (Solution, u64) {
    let run = |k: u64| {
        let mut budget = Limit::new(limit, iterations);
        let plan = search::solve(p, Options { seed: seed.wrapping_add(k), ..Options::default() }, &mut budget);
        (plan, budget.done)
    };
    let results: Vec<(Solution, u64)> = if threads <= 1 {
        vec![run(0)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads as u64).map(|k| scope.spawn(move || run(k))).collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        })
    };
    let done = results.iter().map(|(_, n)| n).sum();
    let best = results
        .into_iter()
        .min_by_key(|(plan, _)| (plan.unassigned.len(), plan.cost(p)))
        .map(|(plan, _)| plan)
        .unwrap_or_default();
    (best, done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qm_domain::routing::instance::{self, Format, Rounding};

    /// Twelve customers around a depot, two vehicles of capacity 30.
    fn problem() -> Problem {
        let mut text = String::from(
            "T\nVEHICLE\nNUMBER CAPACITY\n2 30\nCUSTOMER\nCUST NO. XCOORD. YCOORD. DEMAND READY TIME DUE DATE SERVICE TIME\n0 50 50 0 0 1000 0\n",
        );
        for i in 1..=12u32 {
            let (x, y) = ((i * 37) % 100, (i * 61) % 100);
            text.push_str(&format!("{i} {x} {y} 5 0 1000 1\n"));
        }
        instance::parse(&text, Format::Solomon).expect("instance").problem(Rounding::Trunc1)
    }

    #[test]
    fn more_threads_never_plan_worse_and_a_count_repeats() {
        let p = problem();
        let limit = Duration::from_secs(600);
        let (one, _) = solve_on(&p, 3, 1, limit, Some(300));
        let (two, done) = solve_on(&p, 3, 2, limit, Some(300));
        assert_eq!(done, 600, "both threads ran their count");
        assert!((two.unassigned.len(), two.cost(&p)) <= (one.unassigned.len(), one.cost(&p)));
        assert_eq!(solve_on(&p, 3, 2, limit, Some(300)).0, two, "the same seed and count give the same plan");
    }
}
