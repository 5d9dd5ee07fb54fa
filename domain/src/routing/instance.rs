//! Benchmark instances: the Solomon VRPTW text layout and the VRPLIB (TSPLIB) CVRP layout, read
//! from text (the caller reads the file), and turned into a [`Problem`] under one of the
//! benchmark rounding conventions.

use thiserror::Error;

use super::problem::{Client, Matrix, Problem, VehicleType};

/// The layout of an instance file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Solomon,
    Vrplib,
}

/// How a Euclidean length becomes an arc's distance and travel time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Exact doubles (kept as integers of 1/1000 inside the solver: distances rounded, travel
    /// times rounded up, so a plan feasible inside is feasible exactly).
    None,
    /// Truncated to one decimal (DIMACS VRPTW convention).
    Trunc1,
    /// Rounded to the nearest integer (TSPLIB `EUC_2D`).
    Nint,
}

impl Rounding {
    /// How many solver units make one unit of the instance.
    pub fn scale(self) -> i64 {
        match self {
            Rounding::None => 1000,
            Rounding::Trunc1 => 10,
            Rounding::Nint => 1,
        }
    }

    /// An arc's distance in solver units.
    pub fn distance(self, d: f64) -> i64 {
        match self {
            Rounding::None => (d * 1000.0).round() as i64,
            Rounding::Trunc1 => (d * 10.0 + 1e-9).floor() as i64,
            Rounding::Nint => (d + 0.5).floor() as i64,
        }
    }

    /// An arc's travel time in solver units.
    pub fn duration(self, d: f64) -> i64 {
        match self {
            Rounding::None => (d * 1000.0 - 1e-6).ceil() as i64,
            other => other.distance(d),
        }
    }
}

/// One node of an instance: the depot (index 0) or a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The number the file gives it (customer numbers in output are these).
    pub number: u64,
    pub x: f64,
    pub y: f64,
    pub demand: i64,
    pub ready: i64,
    pub due: i64,
    pub service: i64,
}

/// An instance as read: nodes (the depot first), vehicles and their capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub name: String,
    pub nodes: Vec<Node>,
    /// `None`: as many vehicles as needed.
    pub vehicles: Option<usize>,
    pub capacity: i64,
}

/// What is wrong with an instance file, and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InstanceError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn at(line: usize, message: impl Into<String>) -> InstanceError {
    InstanceError::Line { line, message: message.into() }
}

/// Reads an instance in `format` from its text.
pub fn parse(text: &str, format: Format) -> Result<Instance, InstanceError> {
    let instance = match format {
        Format::Solomon => solomon(text)?,
        Format::Vrplib => vrplib(text)?,
    };
    check(&instance)?;
    Ok(instance)
}

fn check(i: &Instance) -> Result<(), InstanceError> {
    if i.nodes.len() < 2 {
        return Err(InstanceError::Invalid("the instance has no customers".into()));
    }
    if i.capacity <= 0 {
        return Err(InstanceError::Invalid("the vehicle capacity must be positive".into()));
    }
    for n in &i.nodes {
        if n.demand < 0 {
            return Err(InstanceError::Invalid(format!("customer {} has a negative demand", n.number)));
        }
        if n.service < 0 || n.ready > n.due {
            return Err(InstanceError::Invalid(format!(
                "customer {} has a negative service time or a window that closes before it opens",
                n.number
            )));
        }
        if !(n.x.is_finite() && n.y.is_finite()) {
            return Err(InstanceError::Invalid(format!("customer {} has no usable coordinates", n.number)));
        }
    }
    let mut numbers: Vec<u64> = i.nodes.iter().map(|n| n.number).collect();
    numbers.sort_unstable();
    if numbers.windows(2).any(|w| w[0] == w[1]) {
        return Err(InstanceError::Invalid("two nodes have the same number".into()));
    }
    Ok(())
}

fn numbers<T: std::str::FromStr>(line: usize, text: &str, want: usize) -> Result<Vec<T>, InstanceError> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != want {
        return Err(at(line, format!("expected {want} numbers, found {}", fields.len())));
    }
    fields.iter().map(|f| f.parse::<T>().map_err(|_| at(line, format!("{f:?} is not a number")))).collect()
}

fn solomon(text: &str) -> Result<Instance, InstanceError> {
    let mut lines = text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())).filter(|(_, l)| !l.is_empty());
    let (_, name) = lines.next().ok_or_else(|| InstanceError::Invalid("the file is empty".into()))?;
    let mut expect = |word: &str| -> Result<(), InstanceError> {
        match lines.next() {
            Some((_, l)) if l.to_ascii_uppercase().starts_with(word) => Ok(()),
            Some((n, l)) => Err(at(n, format!("expected {word}, found {l:?}"))),
            None => Err(InstanceError::Invalid(format!("the file ends before {word}"))),
        }
    };
    expect("VEHICLE")?;
    expect("NUMBER")?;
    let (n, fleet) = lines.next().ok_or_else(|| InstanceError::Invalid("no vehicle line".into()))?;
    let fleet: Vec<i64> = numbers(n, fleet, 2)?;
    if fleet[0] <= 0 {
        return Err(at(n, "the number of vehicles must be positive"));
    }
    let mut lines = lines.skip_while(|(_, l)| !l.to_ascii_uppercase().starts_with("CUST NO")).skip(1);
    let mut nodes = Vec::new();
    for (n, l) in lines.by_ref() {
        let v: Vec<f64> = numbers(n, l, 7)?;
        if v.iter().enumerate().any(|(k, x)| k != 1 && k != 2 && x.fract() != 0.0) {
            return Err(at(n, "customer numbers, demands and times are integers"));
        }
        if v[0] < 0.0 {
            return Err(at(n, "a negative customer number"));
        }
        nodes.push(Node {
            number: v[0] as u64,
            x: v[1],
            y: v[2],
            demand: v[3] as i64,
            ready: v[4] as i64,
            due: v[5] as i64,
            service: v[6] as i64,
        });
    }
    if nodes.first().is_none_or(|d| d.number != 0) {
        return Err(InstanceError::Invalid("the customer table does not start with the depot (number 0)".into()));
    }
    Ok(Instance { name: name.to_owned(), nodes, vehicles: Some(fleet[0] as usize), capacity: fleet[1] })
}

fn vrplib(text: &str) -> Result<Instance, InstanceError> {
    let mut name = String::new();
    let mut capacity = None;
    let mut dimension = None;
    let mut coords: Vec<(u64, f64, f64)> = Vec::new();
    let mut demands: Vec<(u64, i64)> = Vec::new();
    let mut depots: Vec<i64> = Vec::new();
    let mut section = "";
    for (n, raw) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
        if raw.is_empty() {
            continue;
        }
        if raw == "EOF" {
            break;
        }
        if let Some((key, value)) = raw.split_once(':') {
            let value = value.trim();
            match key.trim() {
                "NAME" => name = value.to_owned(),
                "CAPACITY" => capacity = Some(value.parse::<i64>().map_err(|_| at(n, "CAPACITY is not a number"))?),
                "DIMENSION" => {
                    dimension = Some(value.parse::<usize>().map_err(|_| at(n, "DIMENSION is not a number"))?)
                }
                "EDGE_WEIGHT_TYPE" if value != "EUC_2D" => {
                    return Err(at(n, format!("EDGE_WEIGHT_TYPE {value} is not supported (EUC_2D is)")));
                }
                _ => {}
            }
            section = "";
            continue;
        }
        match raw {
            "NODE_COORD_SECTION" | "DEMAND_SECTION" | "DEPOT_SECTION" => {
                section = raw;
                continue;
            }
            _ => {}
        }
        match section {
            "NODE_COORD_SECTION" => {
                let v: Vec<f64> = numbers(n, raw, 3)?;
                coords.push((v[0] as u64, v[1], v[2]));
            }
            "DEMAND_SECTION" => {
                let v: Vec<i64> = numbers(n, raw, 2)?;
                demands.push((v[0] as u64, v[1]));
            }
            "DEPOT_SECTION" => depots.push(raw.parse::<i64>().map_err(|_| at(n, "a depot is a node number"))?),
            _ => return Err(at(n, format!("unexpected line {raw:?}"))),
        }
    }
    let capacity = capacity.ok_or_else(|| InstanceError::Invalid("no CAPACITY".into()))?;
    if dimension.is_some_and(|d| d != coords.len() || d != demands.len()) {
        return Err(InstanceError::Invalid("DIMENSION differs from the number of coordinates or demands".into()));
    }
    let depot = match depots.as_slice() {
        [d, -1] | [d] if *d > 0 => *d as u64,
        _ => return Err(InstanceError::Invalid("exactly one depot is supported".into())),
    };
    let mut depot_node = None;
    let mut nodes = vec![];
    for (number, x, y) in coords {
        let demand = demands
            .iter()
            .find(|(k, _)| *k == number)
            .map(|(_, d)| *d)
            .ok_or_else(|| InstanceError::Invalid(format!("node {number} has no demand")))?;
        let node = Node { number: 0, x, y, demand, ready: 0, due: i64::MAX / 4, service: 0 };
        if number == depot {
            depot_node = Some(node);
        } else {
            // Customers are numbered 1, 2, … in file order, as in CVRPLIB solution files (the
            // node number less one when the depot is node 1).
            nodes.push(Node { number: nodes.len() as u64 + 1, ..node });
        }
    }
    let depot = depot_node.ok_or_else(|| InstanceError::Invalid("the depot has no coordinates".into()))?;
    nodes.insert(0, depot);
    Ok(Instance { name, nodes, vehicles: None, capacity })
}

impl Instance {
    /// The Euclidean length between nodes `i` and `j`.
    pub fn length(&self, i: usize, j: usize) -> f64 {
        let (a, b) = (&self.nodes[i], &self.nodes[j]);
        (a.x - b.x).hypot(a.y - b.y)
    }

    /// The problem under `rounding`: locations are the nodes, the depot first; clients are the
    /// customers in file order; one vehicle type (as many as the customers when unlimited).
    pub fn problem(&self, rounding: Rounding) -> Problem {
        let n = self.nodes.len();
        let scale = rounding.scale();
        let distance = Matrix::from_fn(n, |i, j| if i == j { 0 } else { rounding.distance(self.length(i, j)) });
        let duration = Matrix::from_fn(n, |i, j| if i == j { 0 } else { rounding.duration(self.length(i, j)) });
        let scaled = |t: i64| t.saturating_mul(scale);
        let clients = self.nodes[1..]
            .iter()
            .enumerate()
            .map(|(k, c)| Client {
                location: k + 1,
                demand: c.demand,
                service: scaled(c.service),
                windows: vec![(scaled(c.ready), scaled(c.due))],
                penalty: None,
            })
            .collect();
        let depot = &self.nodes[0];
        let vehicle_types = vec![VehicleType {
            count: self.vehicles.unwrap_or(n - 1),
            capacity: self.capacity,
            depot: 0,
            shift: (scaled(depot.ready), scaled(depot.due)),
            fixed_cost: 0,
            unit_cost: 1,
        }];
        Problem { distance, duration, clients, vehicle_types }
    }

    /// The customer numbers of client indices.
    pub fn number(&self, client: usize) -> u64 {
        self.nodes[client + 1].number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOLOMON: &str = "TINY\n\nVEHICLE\nNUMBER     CAPACITY\n  2         10\n\nCUSTOMER\nCUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME\n\n    0      0         0          0          0       100          0\n    1      3         4          5          0        50         10\n    2      6         8          5         20        60         10\n";

    #[test]
    fn a_solomon_file_reads_with_its_depot_fleet_and_windows() {
        let i = parse(SOLOMON, Format::Solomon).expect("parses");
        assert_eq!((i.name.as_str(), i.vehicles, i.capacity, i.nodes.len()), ("TINY", Some(2), 10, 3));
        assert_eq!(i.nodes[2], Node { number: 2, x: 6.0, y: 8.0, demand: 5, ready: 20, due: 60, service: 10 });
        let p = i.problem(Rounding::Trunc1);
        assert_eq!(p.distance.get(0, 2), 100);
        assert_eq!(p.clients[1].windows, vec![(200, 600)]);
        assert_eq!(p.vehicle_types[0].shift, (0, 1000));
    }

    #[test]
    fn each_rounding_convention_gives_its_length() {
        let d = 2.0_f64.sqrt() * 10.0; // 14.142…
        assert_eq!(Rounding::Trunc1.distance(d), 141);
        assert_eq!(Rounding::Nint.distance(d), 14);
        assert_eq!(Rounding::Nint.distance(14.5), 15);
        assert_eq!(Rounding::None.distance(d), 14142);
        assert_eq!(Rounding::None.duration(d), 14143);
        assert_eq!(Rounding::Trunc1.distance(0.3 * 3.0), 9, "0.9 truncates to 0.9, not 0.8");
    }

    #[test]
    fn a_vrplib_file_reads_with_the_depot_first_and_customers_numbered_after_it() {
        let text = "NAME : t\nTYPE : CVRP\nDIMENSION : 3\nEDGE_WEIGHT_TYPE : EUC_2D\nCAPACITY : 10\nNODE_COORD_SECTION\n1 0 0\n2 3 4\n3 6 8\nDEMAND_SECTION\n1 0\n2 4\n3 6\nDEPOT_SECTION\n1\n-1\nEOF\n";
        let i = parse(text, Format::Vrplib).expect("parses");
        assert_eq!(i.nodes.iter().map(|n| n.number).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!((i.vehicles, i.nodes[2].demand), (None, 6));
        assert_eq!(i.problem(Rounding::Nint).distance.get(1, 2), 5);
    }

    #[test]
    fn bad_files_say_where_and_what() {
        let bad = SOLOMON.replace("    2      6         8          5", "    2      6         8         -5");
        assert_eq!(
            parse(&bad, Format::Solomon),
            Err(InstanceError::Invalid("customer 2 has a negative demand".into()))
        );
        let bad = SOLOMON.replace("20        60", "2x        60");
        assert!(matches!(parse(&bad, Format::Solomon), Err(InstanceError::Line { line: 12, .. })), "{bad}");
        assert!(parse("", Format::Solomon).is_err());
        assert!(parse("NAME : t\nCAPACITY : 1\nEOF\n", Format::Vrplib).is_err());
    }
}
