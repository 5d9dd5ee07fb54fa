//! A thin client for OSRM's HTTP API (`osrm-routed`): the table service (durations and
//! distances between points, asked in blocks above the server's table limit, a few at once, and
//! how far each point lies from the road it joins).
//!
//! Written here rather than taken from the `osrm_client` crate: that crate brings a second HTTP
//! stack (reqwest 0.11 with OpenSSL) beside ours, holds coordinates as `f32` (about a metre off
//! at these latitudes), cannot decode OSRM's error bodies (so `NoSegment` or `TooBig` would
//! arrive as a decoding failure), and defaults to a public server. Two endpoints of plain JSON
//! are less code than wrapping it.

use std::ops::Range;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;

/// Table requests in flight at once for one matrix.
const IN_FLIGHT: usize = 4;

/// One table request under way: the blocks it asks for and their part of the table.
type Block<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(Range<usize>, Range<usize>, Table), OsrmError>> + Send + 'a>,
>;

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

    /// A finite latitude within ±90° and longitude within ±180°.
    pub fn is_valid(&self) -> bool {
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
        let blocks: Vec<Range<usize>> = (0..n).step_by(block).map(|s| s..(s + block).min(n)).collect();
        // Boxed as `Send` futures up front: a closure making them inside the stream would not be
        // `Send` for every lifetime, which callers in `async_trait` handlers need.
        let requests: Vec<Block<'_>> = blocks
            .iter()
            .flat_map(|from| blocks.iter().map(move |to| (from.clone(), to.clone())))
            .map(|(from, to)| -> Block<'_> { Box::pin(self.table_block(points, from, to)) })
            .collect();
        let mut answers = futures_util::stream::iter(requests).buffer_unordered(IN_FLIGHT);
        while let Some(answer) = answers.next().await {
            let (from, to, a) = answer?;
            for (r, i) in from.clone().enumerate() {
                table.snapped[i] = a.snapped[r];
                for (c, j) in to.clone().enumerate() {
                    table.durations[i][j] = a.durations[r][c];
                    table.distances[i][j] = a.distances[r][c];
                }
            }
        }
        Ok(table)
    }

    /// Durations and distances from the points in `from` to those in `to` (a `from` × `to`
    /// table), in one request.
    async fn table_block(
        &self,
        points: &[Point],
        from: Range<usize>,
        to: Range<usize>,
    ) -> Result<(Range<usize>, Range<usize>, Table), OsrmError> {
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
        Ok((from, to, Table { durations, distances, snapped: snapped.iter().map(|w| w.distance).collect() }))
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
}

#[derive(Deserialize)]
struct Waypoint {
    /// Metres from the point asked about to the road.
    distance: f64,
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

    /// A server on loopback answering every request with `status` and `body`.
    fn answering(status: &'static str, body: &'static str) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let reply =
                    format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        url
    }

    #[tokio::test]
    async fn osrm_refusals_keep_their_code_and_outages_are_transient() {
        let points = [Point::new(43.73, 7.42), Point::new(43.74, 7.43)];
        let url = answering("400 Bad Request", r#"{"code":"NoSegment","message":"Could not find a matching segment"}"#);
        let err = Osrm::new(&url, "driving", 100, Duration::from_secs(5)).unwrap().table(&points).await.unwrap_err();
        assert_eq!(
            err,
            OsrmError::Refused { code: "NoSegment".into(), message: "Could not find a matching segment".into() }
        );
        assert!(!err.is_transient());
        let url = answering("503 Service Unavailable", "busy");
        let err = Osrm::new(&url, "driving", 100, Duration::from_secs(5)).unwrap().table(&points).await.unwrap_err();
        assert_eq!(err, OsrmError::Http { status: 503 });
        assert!(err.is_transient());
        // A table whose size is not the request's is refused rather than misread.
        let url =
            answering("200 OK", r#"{"code":"Ok","durations":[[0]],"distances":[[0]],"sources":[{"distance":1}]}"#);
        let err = Osrm::new(&url, "driving", 100, Duration::from_secs(5)).unwrap().table(&points).await.unwrap_err();
        assert!(matches!(err, OsrmError::Decode(_)), "{err:?}");
    }

    #[tokio::test]
    async fn an_invalid_point_is_refused_before_sending() {
        let osrm = Osrm::new("http://127.0.0.1:9", "driving", 100, Duration::from_secs(1)).unwrap();
        let err = osrm.table(&[Point::new(43.7, 7.4), Point::new(91.0, 7.4)]).await.unwrap_err();
        assert_eq!(err, OsrmError::InvalidPoint(1));
    }
}
