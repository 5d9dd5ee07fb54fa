//! Retry schedules. Pure functions: the caller supplies the jitter (a number in `0.0..1.0`).

use std::time::Duration;

/// Delay before the next try of a job that has failed `attempts` times: exponential from 1 s,
/// capped at 1 h, with up to 20 % jitter subtracted so retries of many jobs spread out.
pub fn job_backoff(attempts: u32, jitter: f64) -> Duration {
    let base = 2f64.powi(attempts.saturating_sub(1).min(12) as i32).min(3600.0);
    Duration::from_secs_f64(base * (1.0 - 0.2 * jitter.clamp(0.0, 1.0)))
}

/// Svix's webhook schedule: the delay before each retry after the first attempt.
pub const WEBHOOK_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// Delay before webhook attempt number `attempts + 1`, or `None` when the schedule is exhausted.
/// Jitter adds up to 10 %; a receiver's `Retry-After` wins when it asks for longer.
pub fn webhook_delay(attempts: u32, jitter: f64, retry_after: Option<Duration>) -> Option<Duration> {
    let base = *WEBHOOK_SCHEDULE.get(attempts.checked_sub(1)? as usize)?;
    let jittered = base.mul_f64(1.0 + 0.1 * jitter.clamp(0.0, 1.0));
    Some(retry_after.map_or(jittered, |r| r.max(jittered)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_backoff_grows_and_is_capped() {
        assert_eq!(job_backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(job_backoff(4, 0.0), Duration::from_secs(8));
        assert_eq!(job_backoff(40, 0.0), Duration::from_secs(3600));
        assert!(job_backoff(4, 1.0) < job_backoff(4, 0.0));
    }

    #[test]
    fn webhooks_follow_the_svix_schedule_then_stop() {
        assert_eq!(webhook_delay(1, 0.0, None), Some(Duration::from_secs(5)));
        assert_eq!(webhook_delay(2, 0.0, None), Some(Duration::from_secs(300)));
        assert_eq!(webhook_delay(7, 0.0, None), Some(Duration::from_secs(36_000)));
        assert_eq!(webhook_delay(8, 0.0, None), None);
        assert_eq!(webhook_delay(0, 0.0, None), None);
        assert_eq!(webhook_delay(1, 0.0, Some(Duration::from_secs(60))), Some(Duration::from_secs(60)));
        assert_eq!(webhook_delay(2, 0.0, Some(Duration::from_secs(1))), Some(Duration::from_secs(300)));
    }
}
