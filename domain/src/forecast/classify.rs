//! Demand classification (Syntetos–Boylan): how often demand occurs (ADI) and how much its size
//! varies when it does (CV²).

/// The Syntetos–Boylan cut-offs.
pub const ADI_CUT: f64 = 1.32;
pub const CV2_CUT: f64 = 0.49;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DemandClass {
    /// Regular demand of steady size.
    Smooth,
    /// Regular demand of varying size.
    Erratic,
    /// Sporadic demand of steady size.
    Intermittent,
    /// Sporadic demand of varying size.
    Lumpy,
}

impl DemandClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DemandClass::Smooth => "smooth",
            DemandClass::Erratic => "erratic",
            DemandClass::Intermittent => "intermittent",
            DemandClass::Lumpy => "lumpy",
        }
    }

    /// Sporadic demand (ADI at or above the cut-off).
    pub fn is_sporadic(self) -> bool {
        matches!(self, DemandClass::Intermittent | DemandClass::Lumpy)
    }
}

/// Average demand interval: periods per period with demand (infinite when there is none).
pub fn adi(y: &[f64]) -> f64 {
    let nonzero = y.iter().filter(|v| **v > 0.0).count();
    if nonzero == 0 { f64::INFINITY } else { y.len() as f64 / nonzero as f64 }
}

/// Squared coefficient of variation of the non-zero demand sizes (0 with fewer than two).
pub fn cv2(y: &[f64]) -> f64 {
    let sizes: Vec<f64> = y.iter().copied().filter(|v| *v > 0.0).collect();
    if sizes.len() < 2 {
        return 0.0;
    }
    let n = sizes.len() as f64;
    let mean = sizes.iter().sum::<f64>() / n;
    let var = sizes.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    var / (mean * mean)
}

pub fn classify(y: &[f64]) -> DemandClass {
    match (adi(y) >= ADI_CUT, cv2(y) >= CV2_CUT) {
        (false, false) => DemandClass::Smooth,
        (false, true) => DemandClass::Erratic,
        (true, false) => DemandClass::Intermittent,
        (true, true) => DemandClass::Lumpy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_quadrants() {
        assert_eq!(classify(&[5.0, 6.0, 5.0, 4.0, 5.0]), DemandClass::Smooth);
        assert_eq!(classify(&[1.0, 9.0, 1.0, 12.0, 2.0]), DemandClass::Erratic);
        assert_eq!(classify(&[0.0, 3.0, 0.0, 0.0, 3.0, 0.0]), DemandClass::Intermittent);
        assert_eq!(classify(&[0.0, 1.0, 0.0, 0.0, 20.0, 0.0]), DemandClass::Lumpy);
        assert_eq!(adi(&[0.0, 2.0, 0.0, 2.0]), 2.0);
        assert!(adi(&[0.0, 0.0]).is_infinite());
        // Sizes 1 and 3: mean 2, variance 1, CV² 0.25.
        assert!((cv2(&[1.0, 0.0, 3.0]) - 0.25).abs() < 1e-12);
    }
}
