//! A thin client for OSRM's HTTP API (`osrm-routed`): the table service (durations and
//! distances between points, chunked above the server's table limit) and the nearest service.
//!
//! Written here rather than taken from the `osrm_client` crate: that crate brings a second HTTP
//! stack (reqwest 0.11 with OpenSSL) beside ours, holds coordinates as `f32` (about a metre off
//! at these latitudes), cannot decode OSRM's error bodies (so `NoSegment` or `TooBig` would
//! arrive as a decoding failure), and defaults to a public server. Two endpoints of plain JSON
//! are less code than wrapping it.

use std::time::Duration;

use serde::Deserialize;

/// A point as OSRM takes it: longitude and latitude in degrees (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub lon: f64,
    pub lat: f64,
}

impl Point {
    pub fn new(lat: f64, lon: f64) -> Self {
        Point { lon, lat }
    }

    fn is_valid(&self) -> bool {
        self.lat.is_finite() && self.lon.is_finite() && self.lat.abs() <= 90.0 && self.lon.abs() <= 180.0
    }
}

/// Durations (seconds) and distances (metres) from every point to every point, `None` where
/// the road network has no route; and how far each point lies from the road it was snapped to.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub durations: Vec<Vec<Option<f64>>>,
    pub distances: Vec<Vec<Option<f64>>>,
    /// Metres from each point to where OSRM joined it to the road network.
    pub snapped: Vec<f64>,
}

/// The road position nearest to a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Nearest {
    pub location: Point,
    /// Metres from the point asked about.
    pub distance: f64,
    /// The street's name, empty when it has none.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OsrmError {
    /// OSRM refused the request with one of its codes (`NoSegment`, `TooBig`, `InvalidQuery`,
    /// `InvalidOptions`, `NoTable`, …).
    #[error("OSRM answered {code}: {message}")]
    Refused { code: String, message: String },
    #[error("point {0} is not a valid latitude and longitude")]
    InvalidPoint(usize),
    #[error("OSRM answered HTTP {status}")]
    Http { status: u16 },
    #[error("OSRM did not answer within {0:?}")]
    Timeout(Duration),
    #[error("OSRM could not be reached: {0}")]
    Transport(String),
    #[error("OSRM's answer could not be read: {0}")]
    Decode(String),
}

impl OsrmError {
    /// Worth trying again later (the server is down, overloaded or slow), as opposed to a
    /// request it will always refuse.
    pub fn is_transient(&self) -> bool {
        match self {
            OsrmError::Timeout(_) | OsrmError::Transport(_) => true,
            OsrmError::Http { status } => *status == 429 || *status >= 500,
            OsrmError::Refused { .. } | OsrmError::InvalidPoint(_) | OsrmError::Decode(_) => false,
        }
    }
}

/// An OSRM server.
#[derive(Debug, Clone)]
pub struct Osrm {
    http: reqwest::Client,
    base: String,
    profile: String,
    table_limit: usize,
    timeout: Duration,
}

impl Osrm {
    /// A client for the server at `base` (e.g. `http://osrm:5000`) and `profile` (`driving`),
    /// sending at most `table_limit` points per table request (the server's `--max-table-size`;
    /// osrm-routed's default is 100) and waiting `timeout` per request.
    pub fn new(base: &str, profile: &str, table_limit: usize, timeout: Duration) -> Result<Self, OsrmError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OsrmError::Transport(e.to_string()))?;
        Ok(Osrm {
            http,
            base: base.trim_end_matches('/').to_owned(),
            profile: profile.to_owned(),
            table_limit: table_limit.max(2),
            timeout,
        })
    }

    /// Durations and distances between all `points`, in as many requests as the table limit
    /// needs (blocks of half the limit as sources against blocks as destinations).
    pub async fn table(&self, points: &[Point]) -> Result<Table, OsrmError> {
        if let Some(bad) = points.iter().position(|p| !p.is_valid()) {
            return Err(OsrmError::InvalidPoint(bad));
        }
        let n = points.len();
        let mut table =
            Table { durations: vec![vec![None; n]; n], distances: vec![vec![None; n]; n], snapped: vec![0.0; n] };
        if n == 0 {
            return Ok(table);
        }
        let block = if n <= self.table_limit { n } else { self.table_limit / 2 };
        let blocks: Vec<std::ops::Range<usize>> = (0..n).step_by(block).map(|s| s..(s + block).min(n)).collect();
        for from in &blocks {
            for to in &blocks {
                self.table_block(points, from.clone(), to.clone(), &mut table).await?;
            }
        }
        Ok(table)
    }

    async fn table_block(
        &self,
        points: &[Point],
        from: std::ops::Range<usize>,
        to: std::ops::Range<usize>,
        into: &mut Table,
    ) -> Result<(), OsrmError> {
        // The request's coordinates: the sources, then the destinations not among them.
        let mut coords: Vec<usize> = from.clone().collect();
        let extra: Vec<usize> = to.clone().filter(|i| !from.contains(i)).collect();
        coords.extend(&extra);
        let position = |i: usize| coords.iter().position(|c| *c == i).unwrap_or(0);
        let sources: Vec<String> = from.clone().map(|i| position(i).to_string()).collect();
        let destinations: Vec<String> = to.clone().map(|i| position(i).to_string()).collect();
        let whole = from == (0..points.len()) && to == (0..points.len());
        let mut url = format!(
            "{}/table/v1/{}/{}?annotations=duration,distance",
            self.base,
            self.profile,
            joined(points, &coords)
        );
        if !whole {
            url.push_str(&format!("&sources={}&destinations={}", sources.join(";"), destinations.join(";")));
        }
        let answer = self.get(&url).await?;
        let durations = answer.durations.ok_or_else(|| OsrmError::Decode("no durations".into()))?;
        let distances = answer.distances.ok_or_else(|| OsrmError::Decode("no distances".into()))?;
        let snapped = answer.sources.ok_or_else(|| OsrmError::Decode("no sources".into()))?;
        let fits = |m: &Vec<Vec<Option<f64>>>| m.len() == from.len() && m.iter().all(|r| r.len() == to.len());
        if !fits(&durations) || !fits(&distances) || snapped.len() != from.len() {
            return Err(OsrmError::Decode("the table's size differs from the request".into()));
        }
        for (r, i) in from.clone().enumerate() {
            into.snapped[i] = snapped[r].distance;
            for (c, j) in to.clone().enumerate() {
                into.durations[i][j] = durations[r][c];
                into.distances[i][j] = distances[r][c];
            }
        }
        Ok(())
    }

    /// The road position nearest to `point`.
    pub async fn nearest(&self, point: Point) -> Result<Nearest, OsrmError> {
        if !point.is_valid() {
            return Err(OsrmError::InvalidPoint(0));
        }
        let url = format!("{}/nearest/v1/{}/{}?number=1", self.base, self.profile, joined(&[point], &[0]));
        let answer = self.get(&url).await?;
        let w = answer
            .waypoints
            .and_then(|w| w.into_iter().next())
            .ok_or_else(|| OsrmError::Decode("no waypoint".into()))?;
        Ok(Nearest { location: Point { lon: w.location[0], lat: w.location[1] }, distance: w.distance, name: w.name })
    }

    async fn get(&self, url: &str) -> Result<Answer, OsrmError> {
        let response = self.http.get(url).send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.transport(&e))?;
        // OSRM's refusals are JSON with a code, under HTTP 400 (or 200 for some services).
        match serde_json::from_slice::<Answer>(&body) {
            Ok(a) if a.code == "Ok" && status.is_success() => Ok(a),
            Ok(a) => Err(OsrmError::Refused { code: a.code, message: a.message.unwrap_or_default() }),
            Err(_) if !status.is_success() => Err(OsrmError::Http { status: status.as_u16() }),
            Err(e) => Err(OsrmError::Decode(e.to_string())),
        }
    }

    fn transport(&self, e: &reqwest::Error) -> OsrmError {
        if e.is_timeout() { OsrmError::Timeout(self.timeout) } else { OsrmError::Transport(crate::net::chain(e)) }
    }
}

/// `lon,lat;lon,lat…` of `points` at `indices`, six decimals (about 0.1 m).
fn joined(points: &[Point], indices: &[usize]) -> String {
    indices.iter().map(|i| format!("{:.6},{:.6}", points[*i].lon, points[*i].lat)).collect::<Vec<_>>().join(";")
}

#[derive(Deserialize)]
struct Answer {
    code: String,
    message: Option<String>,
    durations: Option<Vec<Vec<Option<f64>>>>,
    distances: Option<Vec<Vec<Option<f64>>>>,
    sources: Option<Vec<Waypoint>>,
    waypoints: Option<Vec<Waypoint>>,
}

#[derive(Deserialize)]
struct Waypoint {
    location: [f64; 2],
    distance: f64,
    #[serde(default)]
    name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_written_longitude_first() {
        let p = [Point::new(43.7396, 7.4286), Point::new(43.7312, 7.4197)];
        assert_eq!(joined(&p, &[1, 0]), "7.419700,43.731200;7.428600,43.739600");
    }

    #[test]
    fn refusals_are_not_transient_and_outages_are() {
        assert!(!OsrmError::Refused { code: "NoSegment".into(), message: String::new() }.is_transient());
        assert!(OsrmError::Http { status: 503 }.is_transient());
        assert!(!OsrmError::Http { status: 404 }.is_transient());
        assert!(OsrmError::Timeout(Duration::from_secs(1)).is_transient());
    }

    #[tokio::test]
    async fn an_invalid_point_is_refused_before_sending() {
        let osrm = Osrm::new("http://127.0.0.1:9", "driving", 100, Duration::from_secs(1)).unwrap();
        let err = osrm.table(&[Point::new(43.7, 7.4), Point::new(91.0, 7.4)]).await.unwrap_err();
        assert_eq!(err, OsrmError::InvalidPoint(1));
    }
}
