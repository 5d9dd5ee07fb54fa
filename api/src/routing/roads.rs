//! Road durations and distances between a plan's points: from OSRM's table service when an
//! OSRM server is configured (`osrm_url`), else great-circle distances driven at
//! `routing_speed_kmh`. Matrices are cached per tenant for an hour: a re-plan of the same stops,
//! or a second plan of the same day, asks the server nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qm_domain::routing::geo::haversine_m;
use qm_integrations::osrm::{Osrm, OsrmError, Point, Table};
use uuid::Uuid;

use crate::config::Config;

/// Where a matrix came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Osrm,
    Haversine,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Osrm => "osrm",
            Source::Haversine => "haversine",
        }
    }
}

/// Durations (s) and distances (m) between points, `None` where no road leads, and how far
/// each point is from the road it joins.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrices {
    pub source: Source,
    pub table: Table,
}

/// How long a cached matrix is used, and how many are kept per process.
const CACHE_TTL: Duration = Duration::from_secs(3600);
const CACHE_ENTRIES: usize = 256;

type CacheKey = (Uuid, Vec<(u64, u64)>);

/// The configured road source and the per-tenant cache.
pub struct Roads {
    osrm: Option<Osrm>,
    speed_kmh: f64,
    /// Points farther than this from a road are unreachable.
    pub max_snap_m: f64,
    cache: Mutex<HashMap<CacheKey, (Instant, Arc<Matrices>)>>,
}

impl Roads {
    pub fn from_config(c: &Config) -> anyhow::Result<Self> {
        let osrm = match &c.osrm_url {
            Some(url) => {
                Some(Osrm::new(url, &c.osrm_profile, c.osrm_table_limit, Duration::from_secs(c.osrm_timeout_seconds))?)
            }
            None => None,
        };
        Ok(Roads { osrm, speed_kmh: c.routing_speed_kmh, max_snap_m: c.osrm_max_snap_meters, cache: Mutex::default() })
    }

    /// The source new matrices come from.
    pub fn source(&self) -> Source {
        if self.osrm.is_some() { Source::Osrm } else { Source::Haversine }
    }

    /// The matrices between `points` for `tenant`, from the cache when it has them.
    pub async fn matrices(&self, tenant: Uuid, points: &[Point]) -> Result<Arc<Matrices>, OsrmError> {
        let key: CacheKey = (tenant, points.iter().map(|p| (p.lat.to_bits(), p.lon.to_bits())).collect());
        if let Some((at, hit)) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned())
            && at.elapsed() < CACHE_TTL
        {
            return Ok(hit);
        }
        let matrices = Arc::new(match &self.osrm {
            Some(osrm) => Matrices { source: Source::Osrm, table: osrm.table(points).await? },
            None => Matrices { source: Source::Haversine, table: great_circle(points, self.speed_kmh) },
        });
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
                if cache.len() >= CACHE_ENTRIES
                    && let Some(oldest) = cache.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone())
                {
                    cache.remove(&oldest);
                }
            }
            cache.insert(key, (Instant::now(), matrices.clone()));
        }
        Ok(matrices)
    }
}

/// Great-circle distances between `points` and the time to drive them at `speed_kmh`.
fn great_circle(points: &[Point], speed_kmh: f64) -> Table {
    let n = points.len();
    let metres_per_second = speed_kmh / 3.6;
    let mut table =
        Table { durations: vec![vec![None; n]; n], distances: vec![vec![None; n]; n], snapped: vec![0.0; n] };
    for (i, a) in points.iter().enumerate() {
        for (j, b) in points.iter().enumerate() {
            let d = haversine_m((a.lat, a.lon), (b.lat, b.lon));
            table.distances[i][j] = Some(d);
            table.durations[i][j] = Some(d / metres_per_second);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roads() -> Roads {
        let mut c = Config::for_tests(&std::env::temp_dir());
        c.osrm_url = None;
        c.routing_speed_kmh = 36.0;
        Roads::from_config(&c).expect("roads")
    }

    #[tokio::test]
    async fn without_osrm_distances_are_great_circles_at_the_configured_speed() {
        let r = roads();
        let points = [Point::new(43.7396, 7.4286), Point::new(43.7312, 7.4197)];
        let m = r.matrices(Uuid::nil(), &points).await.expect("matrices");
        assert_eq!(m.source, Source::Haversine);
        let d = m.table.distances[0][1].expect("distance");
        assert!((d - haversine_m((43.7396, 7.4286), (43.7312, 7.4197))).abs() < 1e-9);
        // 36 km/h is 10 m/s.
        assert!((m.table.durations[0][1].expect("duration") - d / 10.0).abs() < 1e-9);
        assert_eq!(m.table.durations[1][1], Some(0.0));
    }

    #[tokio::test]
    async fn matrices_are_cached_per_tenant() {
        let r = roads();
        let points = [Point::new(43.7396, 7.4286), Point::new(43.7312, 7.4197)];
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = r.matrices(a, &points).await.expect("matrices");
        let again = r.matrices(a, &points).await.expect("matrices");
        assert!(Arc::ptr_eq(&first, &again), "the same tenant and points hit the cache");
        let other = r.matrices(b, &points).await.expect("matrices");
        assert!(!Arc::ptr_eq(&first, &other), "another tenant does not share the entry");
        let moved = r.matrices(a, &points[..1]).await.expect("matrices");
        assert_eq!(moved.table.distances.len(), 1);
    }
}
