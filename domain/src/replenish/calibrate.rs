//! Calibrating the policy's spread on its own recent past.
//!
//! The forecast's band is honest about the forecast, and the policy's safety factor about
//! backordered demand; neither says how stock runs out when unmet demand is lost, when orders
//! overtake one another, or how far a band of one period's demand speaks for the sum over a lead
//! time. So the policy learns one factor on the spread of demand and of the lead time by
//! replaying a window of recent periods with the forecasts that were made at each review there:
//! the factor with which it reaches its service target in that window, pooled over the series.
//! `replenish-sim` calibrates on the window before the one it replays; the service's
//! replenishment run on the days before today.

use super::policy::{PolicyInput, ServiceTarget, policy};
use super::sim::{self, Levels, Outcome, SimError, Stocking};
use crate::forecast::{metrics, sd_from_band};

/// The forecast at one review of one series: demand per period from the review on, and each
/// period's standard deviation.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlook {
    /// Index of the series.
    pub series: usize,
    pub demand: Vec<f64>,
    pub demand_sd: Vec<f64>,
}

impl Outlook {
    /// Series `series`' outlook from a forecast: its point (below zero read as zero) and each
    /// period's spread read off its `lower`–`upper` quantiles of levels `band`.
    pub fn from_band(series: usize, point: &[f64], lower: &[f64], upper: &[f64], band: (f64, f64)) -> Outlook {
        Outlook {
            series,
            demand: point.iter().map(|v| v.max(0.0)).collect(),
            demand_sd: sd_from_band(lower, upper, band),
        }
    }
}

/// The forecasts of a replay: at each step, one [`Outlook`] per series under review (those of
/// [`sim::due`]), in that order.
pub type Outlooks = Vec<Vec<Outlook>>;

/// How the policy's spread was calibrated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Periods replayed.
    pub periods: usize,
    /// The forecasts' pooled over-forecast there (their one-period-ahead sum over the demand
    /// that came, less 1), taken out before the replay.
    pub bias: f64,
    /// The factor on the spread of demand and lead time that met the target there.
    pub scale: f64,
    /// The service achieved there with it (fill rate, or cycle service level).
    pub achieved: f64,
    pub target: f64,
}

/// Whether the series allow calibrating on the `steps` periods that end `back` periods before
/// their end, and then the kind of target (fill rate or not) and the mean target: `None` when a
/// series is too short for it or the targets mix fill-rate and cycle service levels.
pub fn calibration_window(
    demand: &[&[f64]],
    targets: &[ServiceTarget],
    steps: usize,
    back: usize,
) -> Option<(bool, f64)> {
    let fill = matches!(targets.first(), Some(ServiceTarget::FillRate(_)));
    let same_kind = targets.iter().all(|t| matches!(t, ServiceTarget::FillRate(_)) == fill);
    if targets.is_empty() || !same_kind || demand.iter().any(|y| y.len() <= steps + back + 1) {
        return None;
    }
    let target = targets
        .iter()
        .map(|t| match t {
            ServiceTarget::FillRate(a) | ServiceTarget::Cycle(a) => *a,
        })
        .sum::<f64>()
        / targets.len() as f64;
    Some((fill, target))
}

/// Replays the policy over `steps` periods ending `back` periods before the end, from the
/// forecasts in `outlooks`, the spread of demand and of the lead time scaled by `scale`.
pub fn replay_policy(
    demand: &[&[f64]],
    stocking: &[Stocking],
    targets: &[ServiceTarget],
    outlooks: &[Vec<Outlook>],
    steps: usize,
    back: usize,
    scale: f64,
) -> Result<Vec<Outcome>, SimError> {
    let demand: Vec<&[f64]> = demand.iter().map(|y| &y[..y.len() - back]).collect();
    sim::replay(&demand, stocking, steps, &mut |step, due| {
        let at = &outlooks[step];
        if at.len() != due.len() {
            return Err(SimError::Decisions { due: due.len(), got: at.len() });
        }
        at.iter()
            .map(|o| {
                let s = &stocking[o.series];
                let input = PolicyInput {
                    demand: o.demand.clone(),
                    demand_sd: o.demand_sd.clone(),
                    lead_time_mean: s.lead_time_mean,
                    lead_time_sd: s.lead_time_sd,
                    review_period: s.review_period as f64,
                    on_hand: 0,
                    on_order: 0,
                    in_transit: 0,
                    reserved: 0,
                    moq: s.moq,
                    pack_size: s.pack_size,
                }
                .spread_scaled(scale);
                let p = policy(&input, targets[o.series])?;
                Ok(Levels {
                    reorder_point: p.order_up_to,
                    order_up_to: p.order_up_to,
                    lead_time_demand: p.explanation.lead_time_demand,
                })
            })
            .collect()
    })
}

/// The factor on the spread of demand (the forecast's band) and of the lead time with which the
/// policy, replayed on the `steps` periods ending `back` periods before the end from the
/// forecasts `window` made at their reviews, reaches `target` there (pooled over the series; a
/// fill rate when `fill`, else a cycle service level).
///
/// The window's forecasts are first scaled to the demand that came (one factor for all series):
/// a window the forecast over-shot by a quarter (the weeks after a season) would otherwise teach
/// that a fifth of the spread serves, and the periods after it are not over-shot alike. What is
/// learnt is the spread the policy needs with forecasts right on average. The factor lies
/// between a fifth and five times the spread.
#[allow(clippy::too_many_arguments)]
pub fn calibrate(
    demand: &[&[f64]],
    stocking: &[Stocking],
    targets: &[ServiceTarget],
    steps: usize,
    back: usize,
    fill: bool,
    target: f64,
    window: &mut [Vec<Outlook>],
) -> Result<Calibration, SimError> {
    let mut pooled = metrics::Pooled::default();
    for (step, due) in window.iter().enumerate() {
        for o in due {
            let y = demand[o.series];
            pooled.add(&[y[y.len() - back - steps + step]], &[o.demand.first().copied().unwrap_or(0.0)]);
        }
    }
    // The forecasts were (1 + bias) times the demand that came; none to take out when nothing
    // was forecast or nothing came.
    let bias = pooled.bias().filter(|b| *b > -1.0).unwrap_or(0.0);
    for o in window.iter_mut().flatten() {
        o.demand.iter_mut().chain(o.demand_sd.iter_mut()).for_each(|v| *v /= 1.0 + bias);
    }
    let window: &[Vec<Outlook>] = window;
    let achieved = |scale: f64| -> Result<f64, SimError> {
        let t = sim::pooled(&replay_policy(demand, stocking, targets, window, steps, back, scale)?);
        Ok(if fill { t.fill_rate() } else { t.cycle_service_level() })
    };
    // Bisection on the logarithm of the factor, between a fifth and five times the spread.
    let (mut lo, mut hi) = (0.2f64.ln(), 5f64.ln());
    let at_one = achieved(1.0)?;
    let mut best = ((at_one - target).abs(), 1.0, at_one);
    for _ in 0..14 {
        let mid = (lo + hi) / 2.0;
        let a = achieved(mid.exp())?;
        if (a - target).abs() < best.0 {
            best = ((a - target).abs(), mid.exp(), a);
        }
        if a < target { lo = mid } else { hi = mid }
    }
    Ok(Calibration { periods: steps, bias, scale: best.1, achieved: best.2, target })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rust_decimal::Decimal;

    use super::*;
    use crate::sampling::standard_normal;

    const STEPS: usize = 60;

    /// Twenty series of 100 ± 20 a period (normal, drawn), lead time 3, a review each period.
    fn setting() -> (Vec<Vec<f64>>, Vec<Stocking>) {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let demand = (0..20)
            .map(|_| (0..2 * STEPS + 10).map(|_| (100.0 + 20.0 * standard_normal(&mut rng)).max(0.0).round()).collect())
            .collect();
        let stocking = (0..20)
            .map(|i| Stocking {
                lead_time_mean: 3.0,
                lead_time_sd: 0.0,
                review_period: 1,
                moq: 0,
                pack_size: 1,
                unit_cost: Decimal::ONE,
                holding_rate: Decimal::ZERO,
                order_cost: Decimal::ZERO,
                seed: i,
            })
            .collect();
        (demand, stocking)
    }

    /// The forecast at every review: the true mean times `level`, a band of `sd` a period.
    fn outlooks(n: usize, level: f64, sd: f64) -> Vec<Vec<Outlook>> {
        (0..STEPS)
            .map(|_| {
                (0..n)
                    .map(|series| Outlook { series, demand: vec![100.0 * level; 10], demand_sd: vec![sd; 10] })
                    .collect()
            })
            .collect()
    }

    fn fill_rate(
        demand: &[&[f64]],
        stocking: &[Stocking],
        targets: &[ServiceTarget],
        o: &[Vec<Outlook>],
        scale: f64,
    ) -> f64 {
        sim::pooled(&replay_policy(demand, stocking, targets, o, STEPS, 0, scale).expect("replay")).fill_rate()
    }

    /// Whatever band the forecast states, the factor finds the spread the policy needs there:
    /// a band far too wide and one far too narrow learn factors that give the same spread, and with
    /// it the policy reaches the target on the window, where at either band as stated it would not.
    #[test]
    fn the_factor_makes_the_window_reach_its_target() {
        let (demand, stocking) = setting();
        let demand: Vec<&[f64]> = demand.iter().map(Vec::as_slice).collect();
        let targets = vec![ServiceTarget::FillRate(0.95); demand.len()];
        let (fill, target) = calibration_window(&demand, &targets, STEPS, 0).expect("long enough");
        assert!(fill && (target - 0.95).abs() < 1e-12);
        let mut needed = Vec::new();
        for sd in [40.0, 3.0] {
            let mut window = outlooks(demand.len(), 1.0, sd);
            let c = calibrate(&demand, &stocking, &targets, STEPS, 0, fill, target, &mut window).expect("calibrate");
            assert_eq!(c.periods, STEPS);
            assert!(c.bias.abs() < 0.02, "{c:?}");
            assert!((c.achieved - 0.95).abs() < 0.005, "{c:?}");
            let scaled = fill_rate(&demand, &stocking, &targets, &window, c.scale);
            assert!((scaled - c.achieved).abs() < 1e-12);
            needed.push((sd * c.scale, fill_rate(&demand, &stocking, &targets, &window, 1.0)));
        }
        // ...the same spread from either band (within a tenth)...
        assert!((needed[0].0 / needed[1].0 - 1.0).abs() < 0.1, "{needed:?}");
        // ...which the wide band over-shoots and the narrow one falls short of.
        assert!(needed[0].1 > 0.96 && needed[1].1 < 0.95, "{needed:?}");
    }

    /// Forecasts a quarter too high are scaled to the demand that came before the factor is
    /// learnt, so the factor is the one a right forecast needs, not a smaller one.
    #[test]
    fn the_window_s_bias_is_taken_out_first() {
        let (demand, stocking) = setting();
        let demand: Vec<&[f64]> = demand.iter().map(Vec::as_slice).collect();
        let targets = vec![ServiceTarget::FillRate(0.95); demand.len()];
        let right =
            calibrate(&demand, &stocking, &targets, STEPS, 0, true, 0.95, &mut outlooks(demand.len(), 1.0, 20.0))
                .expect("calibrate");
        let high =
            calibrate(&demand, &stocking, &targets, STEPS, 0, true, 0.95, &mut outlooks(demand.len(), 1.25, 25.0))
                .expect("calibrate");
        assert!((high.bias - 0.25).abs() < 0.02, "{high:?}");
        assert!((high.scale - right.scale).abs() < 0.05 * right.scale, "{high:?} against {right:?}");
    }

    /// A window that ends before the series' end replays those periods, not the last ones; a
    /// series too short for it, or targets of both kinds, leave the spread uncalibrated.
    #[test]
    fn the_window_is_where_it_is_asked_for() {
        let y: Vec<f64> = (0..10).map(f64::from).collect();
        let fill = [ServiceTarget::FillRate(0.9)];
        assert_eq!(calibration_window(&[&y], &fill, 4, 5), None);
        assert_eq!(calibration_window(&[&y], &fill, 4, 4), Some((true, 0.9)));
        let both = [ServiceTarget::FillRate(0.9), ServiceTarget::Cycle(0.9)];
        assert_eq!(calibration_window(&[&y, &y], &both, 2, 0), None);
        assert_eq!(calibration_window(&[], &[], 2, 0), None);
        // The bias is measured on the window's own periods: 4, 5, 6, 7 forecast as 8, 10, 12, 14.
        let stocking = setting().1.into_iter().take(1).collect::<Vec<_>>();
        let mut window: Vec<Vec<Outlook>> = (0..4)
            .map(|step| vec![Outlook { series: 0, demand: vec![2.0 * (4 + step) as f64; 5], demand_sd: vec![1.0; 5] }])
            .collect();
        let c = calibrate(&[&y], &stocking, &fill, 4, 2, true, 0.9, &mut window).expect("calibrate");
        assert!((c.bias - 1.0).abs() < 1e-12, "{c:?}");
        assert_eq!(window[0][0].demand[0], 4.0);
    }
}
