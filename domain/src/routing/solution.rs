//! A plan and what it costs: routes of client indices per vehicle, the stops left out, and each
//! route's schedule (when service starts at each stop, distance, duration, load).

use super::problem::{Problem, earliest_start};

/// One vehicle's tour: the clients it visits in order (indices into `Problem::clients`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub vehicle_type: usize,
    pub visits: Vec<usize>,
}

/// A plan: the routes used and the clients no route serves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Solution {
    pub routes: Vec<Route>,
    pub unassigned: Vec<usize>,
}

/// When a route runs: service start at each visit, departure and return, and its totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Service start at each visit, in order.
    pub starts: Vec<i64>,
    /// When the vehicle leaves the depot (as late as it can without changing any start) and
    /// when it is back.
    pub departure: i64,
    pub back: i64,
    pub distance: i64,
    pub load: i64,
}

/// Why a route cannot run as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Infeasible {
    #[error("the route carries {load}, more than the vehicle's {capacity}")]
    Capacity { load: i64, capacity: i64 },
    #[error("client {0} is reached after its last time window closes")]
    Late(usize),
    #[error("the vehicle is back at {back}, after its shift ends at {end}")]
    Shift { back: i64, end: i64 },
    #[error("client {0} is visited twice or is not a client")]
    Visit(usize),
}

/// The schedule of `route`, or why it cannot run.
pub fn schedule(p: &Problem, route: &Route) -> Result<Schedule, Infeasible> {
    let v = &p.vehicle_types[route.vehicle_type];
    let load: i64 = route.visits.iter().map(|c| p.clients.get(*c).map_or(0, |c| c.demand)).sum();
    if load > v.capacity {
        return Err(Infeasible::Capacity { load, capacity: v.capacity });
    }
    let (mut at, mut time, mut distance) = (v.depot, v.shift.0, 0);
    let mut starts = Vec::with_capacity(route.visits.len());
    for &c in &route.visits {
        let client = p.clients.get(c).ok_or(Infeasible::Visit(c))?;
        let arrival = time + p.duration.get(at, client.location);
        let start = earliest_start(&client.windows, arrival).ok_or(Infeasible::Late(c))?;
        starts.push(start);
        distance += p.distance.get(at, client.location);
        time = start + client.service;
        at = client.location;
    }
    let back = time + p.duration.get(at, v.depot);
    distance += p.distance.get(at, v.depot);
    if back > v.shift.1 {
        return Err(Infeasible::Shift { back, end: v.shift.1 });
    }
    let departure = match (route.visits.first(), starts.first()) {
        (Some(&c), Some(&s)) => s - p.duration.get(v.depot, p.clients[c].location),
        _ => v.shift.0,
    };
    Ok(Schedule { starts, departure, back, distance, load })
}

/// Why a plan leaves a client out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unserved {
    /// Its demand exceeds every vehicle's capacity.
    Capacity,
    /// No vehicle can serve it within its time windows and be back before its shift ends, even
    /// on a route of its own.
    TimeWindow,
    /// It is optional and serving it costs more than its penalty.
    Optional,
    /// It could be served on its own, but the fleet has no room left for it.
    NoRoom,
}

/// Why `client` is left out of a plan, judged from the client alone against each vehicle type.
pub fn why_unassigned(p: &Problem, client: usize) -> Unserved {
    let c = &p.clients[client];
    let fleet = || p.vehicle_types.iter().enumerate().filter(|(_, v)| v.count > 0);
    if fleet().all(|(_, v)| c.demand > v.capacity) {
        return Unserved::Capacity;
    }
    let alone = fleet()
        .filter(|(_, v)| c.demand <= v.capacity)
        .any(|(t, _)| schedule(p, &Route { vehicle_type: t, visits: vec![client] }).is_ok());
    match (alone, c.penalty) {
        (false, _) => Unserved::TimeWindow,
        (true, Some(_)) => Unserved::Optional,
        (true, None) => Unserved::NoRoom,
    }
}

impl Solution {
    /// What the plan costs: each route's fixed cost and distance at its unit cost, each optional
    /// client left out at its penalty (required ones left out are not priced: see `unassigned`).
    pub fn cost(&self, p: &Problem) -> i64 {
        let routes: i64 = self
            .routes
            .iter()
            .filter(|r| !r.visits.is_empty())
            .map(|r| {
                let v = &p.vehicle_types[r.vehicle_type];
                v.fixed_cost + v.unit_cost * route_distance(p, r)
            })
            .sum();
        routes + self.unassigned.iter().filter_map(|c| p.clients[*c].penalty).sum::<i64>()
    }

    /// The total distance driven.
    pub fn distance(&self, p: &Problem) -> i64 {
        self.routes.iter().filter(|r| !r.visits.is_empty()).map(|r| route_distance(p, r)).sum()
    }
}

fn route_distance(p: &Problem, r: &Route) -> i64 {
    let depot = p.vehicle_types[r.vehicle_type].depot;
    let mut at = depot;
    let mut d = 0;
    for &c in &r.visits {
        let next = p.clients[c].location;
        d += p.distance.get(at, next);
        at = next;
    }
    d + p.distance.get(at, depot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::problem::{Client, Matrix, VehicleType};

    /// The depot at 0 and one client at 10 on a line; one vehicle of capacity 5, shift 0..100.
    fn one(client: Client, vehicles: usize) -> Problem {
        let m = Matrix::from_fn(2, |i, j| if i == j { 0 } else { 10 });
        Problem {
            distance: m.clone(),
            duration: m,
            clients: vec![client],
            vehicle_types: vec![VehicleType {
                count: vehicles,
                capacity: 5,
                depot: 0,
                shift: (0, 100),
                fixed_cost: 0,
                unit_cost: 1,
            }],
        }
    }

    fn client(demand: i64, windows: Vec<(i64, i64)>, penalty: Option<i64>) -> Client {
        Client { location: 1, demand, service: 5, windows, penalty }
    }

    #[test]
    fn reasons_for_leaving_a_client_out() {
        assert_eq!(why_unassigned(&one(client(6, vec![], None), 1), 0), Unserved::Capacity);
        // Reached at 10 at the earliest: a window closing at 9 cannot be met.
        assert_eq!(why_unassigned(&one(client(1, vec![(0, 9)], None), 1), 0), Unserved::TimeWindow);
        // Served at 95, back at 110: after the shift.
        assert_eq!(why_unassigned(&one(client(1, vec![(95, 99)], None), 1), 0), Unserved::TimeWindow);
        assert_eq!(why_unassigned(&one(client(1, vec![(0, 50)], Some(3)), 1), 0), Unserved::Optional);
        assert_eq!(why_unassigned(&one(client(1, vec![], None), 1), 0), Unserved::NoRoom);
        // A vehicle type with no vehicles does not count.
        assert_eq!(why_unassigned(&one(client(1, vec![], None), 0), 0), Unserved::Capacity);
    }
}
