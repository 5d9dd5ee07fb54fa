//! A routing problem as the solver sees it: integer distances and travel times between
//! locations, clients to visit, and the fleet.
//!
//! Everything is an integer in the caller's chosen unit (the benchmark conventions scale
//! truncated or rounded Euclidean lengths to integers; the service uses metres and seconds), so
//! costs add up exactly and the search never compares floating-point sums.

use thiserror::Error;

/// A square matrix over the problem's locations, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    size: usize,
    cells: Vec<i64>,
}

impl Matrix {
    /// A `size` × `size` matrix from `cells` (row-major); `None` when the count is wrong.
    pub fn new(size: usize, cells: Vec<i64>) -> Option<Self> {
        (cells.len() == size * size).then_some(Matrix { size, cells })
    }

    /// Each cell from `f(from, to)`.
    pub fn from_fn(size: usize, f: impl Fn(usize, usize) -> i64) -> Self {
        let mut cells = Vec::with_capacity(size * size);
        for i in 0..size {
            for j in 0..size {
                cells.push(f(i, j));
            }
        }
        Matrix { size, cells }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    #[inline]
    pub fn get(&self, from: usize, to: usize) -> i64 {
        self.cells[from * self.size + to]
    }
}

/// A stop to visit: where, how much it loads, how long service takes, when it may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its row in the matrices.
    pub location: usize,
    pub demand: i64,
    pub service: i64,
    /// When service may start, as disjoint `(earliest, latest)` pairs in increasing order (a
    /// vehicle arriving before one waits); empty: any time in the vehicle's shift.
    pub windows: Vec<(i64, i64)>,
    /// `None`: the stop must be served. `Some(p)`: it may be left out, at a cost of `p`.
    pub penalty: Option<i64>,
}

/// Vehicles that are alike: `count` of them, starting and ending at `depot` within `shift`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VehicleType {
    pub count: usize,
    pub capacity: i64,
    /// The depot's row in the matrices.
    pub depot: usize,
    /// When the vehicle may leave the depot and when it must be back.
    pub shift: (i64, i64),
    /// The cost of using one vehicle at all.
    pub fixed_cost: i64,
    /// The cost of one unit of distance.
    pub unit_cost: i64,
}

/// A problem: matrices over the locations, clients, fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub distance: Matrix,
    pub duration: Matrix,
    pub clients: Vec<Client>,
    pub vehicle_types: Vec<VehicleType>,
}

/// Why a problem cannot be solved as given.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProblemError {
    #[error("the distance and duration matrices differ in size ({0} and {1})")]
    MatrixSizes(usize, usize),
    #[error("client {client} is at location {location}, outside the matrices")]
    ClientLocation { client: usize, location: usize },
    #[error("vehicle type {0} has its depot outside the matrices")]
    DepotLocation(usize),
    #[error("client {0} has a negative demand, service time or penalty")]
    Negative(usize),
    #[error("client {0} has time windows that are not increasing and disjoint")]
    Windows(usize),
    #[error("vehicle type {0} has a negative capacity or cost, or a shift ending before it starts")]
    Vehicle(usize),
    #[error("there are no vehicles")]
    NoVehicles,
    #[error("a matrix has a negative entry from {0} to {1}")]
    NegativeEntry(usize, usize),
}

impl Problem {
    /// Checks the problem is well formed (it may still have stops no vehicle can serve: those are
    /// left unassigned with a reason).
    pub fn validate(&self) -> Result<(), ProblemError> {
        let n = self.distance.size();
        if self.duration.size() != n {
            return Err(ProblemError::MatrixSizes(n, self.duration.size()));
        }
        for m in [&self.distance, &self.duration] {
            if let Some(at) = m.cells.iter().position(|c| *c < 0) {
                return Err(ProblemError::NegativeEntry(at / n, at % n));
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.location >= n {
                return Err(ProblemError::ClientLocation { client: i, location: c.location });
            }
            if c.demand < 0 || c.service < 0 || c.penalty.is_some_and(|p| p < 0) {
                return Err(ProblemError::Negative(i));
            }
            let ordered = c.windows.iter().all(|(e, l)| e <= l) && c.windows.windows(2).all(|w| w[0].1 < w[1].0);
            if !ordered {
                return Err(ProblemError::Windows(i));
            }
        }
        if self.vehicle_types.iter().all(|v| v.count == 0) {
            return Err(ProblemError::NoVehicles);
        }
        for (i, v) in self.vehicle_types.iter().enumerate() {
            if v.depot >= n {
                return Err(ProblemError::DepotLocation(i));
            }
            if v.capacity < 0 || v.fixed_cost < 0 || v.unit_cost < 0 || v.shift.1 < v.shift.0 {
                return Err(ProblemError::Vehicle(i));
            }
        }
        Ok(())
    }
}

/// The earliest service start at or after `arrival` within `windows` (none: `arrival`); `None`
/// when every window has closed.
#[inline]
pub fn earliest_start(windows: &[(i64, i64)], arrival: i64) -> Option<i64> {
    if windows.is_empty() {
        return Some(arrival);
    }
    windows.iter().find(|(_, l)| *l >= arrival).map(|(e, _)| arrival.max(*e))
}

/// The latest service start no later than `bound` within `windows` (none: `bound`); `None` when
/// no window opens by then.
#[inline]
pub fn latest_start(windows: &[(i64, i64)], bound: i64) -> Option<i64> {
    if windows.is_empty() {
        return Some(bound);
    }
    windows.iter().rev().find(|(e, _)| *e <= bound).map(|(_, l)| bound.min(*l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_starts_in_the_first_window_still_open_and_ends_in_the_last_already_open() {
        let w = [(10, 20), (40, 50)];
        assert_eq!(earliest_start(&w, 5), Some(10));
        assert_eq!(earliest_start(&w, 15), Some(15));
        assert_eq!(earliest_start(&w, 25), Some(40));
        assert_eq!(earliest_start(&w, 51), None);
        assert_eq!(latest_start(&w, 60), Some(50));
        assert_eq!(latest_start(&w, 30), Some(20));
        assert_eq!(latest_start(&w, 45), Some(45));
        assert_eq!(latest_start(&w, 5), None);
        assert_eq!(earliest_start(&[], 7), Some(7));
    }
}
