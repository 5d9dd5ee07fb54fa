//! Random draws the engines and the demo generator share, from a caller's seeded generator.

use rand::Rng;

/// A standard normal draw (Box–Muller).
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Poisson sample: Knuth's method for small means, a rounded normal for large ones.
pub fn poisson(rng: &mut impl Rng, mean: f64) -> i32 {
    if mean <= 0.0 {
        return 0;
    }
    if mean < 30.0 {
        let limit = (-mean).exp();
        let mut k = 0;
        let mut p = 1.0;
        loop {
            p *= rng.random::<f64>();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
    let z = standard_normal(rng);
    (mean + z * mean.sqrt()).round().max(0.0) as i32
}
