//! Route planning at the edge: the offline `quartermaster route` command over benchmark
//! instances, road durations and distances for the service (`roads`: OSRM or great-circle, cached
//! per tenant), and the wall-clock budget both give the solver (`qm_domain::routing`).

pub mod cli;
pub mod roads;

use std::time::{Duration, Instant};

use qm_domain::routing::search::Budget;

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
