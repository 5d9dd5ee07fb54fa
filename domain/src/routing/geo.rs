//! Great-circle distances, for planning when no road network is configured.

/// The mean Earth radius in metres (IUGG).
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Metres along the great circle between two points given as (latitude, longitude) in degrees.
pub fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        assert_eq!(haversine_m((43.7, 7.4), (43.7, 7.4)), 0.0);
        // One degree of latitude is about 111.2 km on the mean sphere.
        assert!((haversine_m((0.0, 0.0), (1.0, 0.0)) - 111_195.0).abs() < 1.0);
        // Paris to London, about 343.5 km along the great circle.
        let d = haversine_m((48.8566, 2.3522), (51.5074, -0.1278));
        assert!((d - 343_500.0).abs() < 1_000.0, "{d}");
        // Symmetric.
        assert_eq!(haversine_m((43.73, 7.42), (43.74, 7.43)), haversine_m((43.74, 7.43), (43.73, 7.42)));
    }
}
