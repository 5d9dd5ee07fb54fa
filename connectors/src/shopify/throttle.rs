//! Shopify's calculated-cost rate limit: a leaky bucket per app and shop holding up to
//! `maximumAvailable` points and refilling at `restoreRate` points a second. Every answer states
//! the bucket (`extensions.cost.throttleStatus`); a [`Bucket`] remembers it, so the connector
//! waits *before* sending a query the bucket cannot pay for, instead of being throttled.
//! [`classify`] turns an answer (either status, THROTTLED in an HTTP 200 or as 429/503 with
//! `Retry-After`, over-cost queries, refused credentials) into data or a typed error.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::ProviderError;

/// `extensions.cost` of a GraphQL answer.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    pub requested_query_cost: f64,
    /// `null` when the query was not run (throttled).
    pub actual_query_cost: Option<f64>,
    pub throttle_status: ThrottleStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

impl ThrottleStatus {
    /// Seconds until `cost` points are available, at the restore rate (0 when they are now).
    fn seconds_until(&self, cost: f64) -> f64 {
        let short = cost - self.currently_available;
        if short <= 0.0 {
            0.0
        } else if self.restore_rate > 0.0 {
            short / self.restore_rate
        } else {
            1.0
        }
    }
}

/// The bucket of one shop as last seen, refilling as time passes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bucket {
    seen: Option<(ThrottleStatus, DateTime<Utc>)>,
}

impl Bucket {
    /// Remembers the state an answer reported at `at`.
    pub fn observe(&mut self, status: ThrottleStatus, at: DateTime<Utc>) {
        self.seen = Some((status, at));
    }

    /// The state as last known (observed, or estimated when a query was sent) and when.
    pub fn last_seen(&self) -> Option<(ThrottleStatus, DateTime<Utc>)> {
        self.seen
    }

    /// The state now: what was seen, refilled since (never above the maximum).
    pub fn now(&self, now: DateTime<Utc>) -> Option<ThrottleStatus> {
        self.seen.map(|(s, at)| {
            let elapsed = (now - at).to_std().map_or(0.0, |d| d.as_secs_f64());
            ThrottleStatus {
                currently_available: (s.currently_available + elapsed * s.restore_rate).min(s.maximum_available),
                ..s
            }
        })
    }

    /// How long to wait before sending a query expected to cost `cost` points. Nothing is known
    /// before the first answer: no wait. A query dearer than the whole bucket can never run.
    pub fn wait_before(&self, cost: f64, now: DateTime<Utc>) -> Result<Duration, ProviderError> {
        let Some(s) = self.now(now) else { return Ok(Duration::ZERO) };
        if cost > s.maximum_available {
            return Err(ProviderError::TooCostly { requested: cost, maximum: s.maximum_available });
        }
        Ok(Duration::from_secs_f64(s.seconds_until(cost)))
    }

    /// Spends `cost` points at `now`, before the answer says what the query really cost, so
    /// callers sharing the bucket do not all send at once.
    pub fn take(&mut self, cost: f64, now: DateTime<Utc>) {
        if let Some(mut s) = self.now(now) {
            s.currently_available -= cost;
            self.seen = Some((s, now));
        }
    }
}

impl Bucket {
    /// Gives back points taken for a query that never reached the bucket (a network failure, an
    /// error answer that states no bucket).
    pub fn refund(&mut self, cost: f64, now: DateTime<Utc>) {
        self.take(-cost, now);
    }
}

/// A GraphQL answer that ran: its `data` and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub data: serde_json::Value,
    pub cost: Option<Cost>,
}

/// When a 429/503 says to come back: `Retry-After` in seconds, else a second.
fn retry_after(header: Option<&str>) -> Duration {
    header
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(Duration::from_secs(1), Duration::from_secs_f64)
}

fn cost_of(body: &serde_json::Value) -> Option<Cost> {
    serde_json::from_value(body.get("extensions")?.get("cost")?.clone()).ok()
}

/// Reads one answer of the Admin GraphQL API (HTTP `status`, its `Retry-After` header, the body,
/// parsed once): the bucket it reports, whatever else it says (a THROTTLED answer states it
/// too), and its data or typed error.
pub fn classify(
    status: u16,
    retry_after_header: Option<&str>,
    body: &[u8],
) -> (Option<ThrottleStatus>, Result<Answer, ProviderError>) {
    let text = || String::from_utf8_lossy(body).chars().take(300).collect::<String>();
    let failed = |e: ProviderError| (None, Err(e));
    match status {
        401 | 403 => return failed(ProviderError::Unauthorized(text())),
        429 | 503 => return failed(ProviderError::RateLimited { retry_after: retry_after(retry_after_header) }),
        500..=599 => return failed(ProviderError::Transient(format!("HTTP {status}: {}", text()))),
        200..=299 => {}
        _ => return failed(ProviderError::Permanent(format!("HTTP {status}: {}", text()))),
    }
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return failed(ProviderError::Decode(format!("not JSON ({e}): {}", text()))),
    };
    let cost = cost_of(&value);
    (cost.map(|c| c.throttle_status), answer(value, cost, text))
}

/// The data of a parsed 2xx answer, or the error its `errors` name.
fn answer(
    mut value: serde_json::Value,
    cost: Option<Cost>,
    text: impl Fn() -> String,
) -> Result<Answer, ProviderError> {
    if let Some(errors) = value.get("errors").and_then(|e| e.as_array()).filter(|e| !e.is_empty()) {
        let code = |e: &serde_json::Value| e["extensions"]["code"].as_str().map(str::to_owned);
        if errors.iter().any(|e| code(e).as_deref() == Some("THROTTLED")) {
            let wait = cost.map_or(1.0, |c| c.throttle_status.seconds_until(c.requested_query_cost));
            return Err(ProviderError::RateLimited { retry_after: Duration::from_secs_f64(wait) });
        }
        if let Some(e) = errors.iter().find(|e| code(e).as_deref() == Some("MAX_COST_EXCEEDED")) {
            let ext = &e["extensions"];
            return Err(ProviderError::TooCostly {
                requested: ext["cost"].as_f64().unwrap_or(f64::INFINITY),
                maximum: ext["maxCost"].as_f64().unwrap_or(1000.0),
            });
        }
        if errors.iter().any(|e| code(e).as_deref() == Some("ACCESS_DENIED")) {
            return Err(ProviderError::Unauthorized(text()));
        }
        let messages: Vec<&str> = errors.iter().filter_map(|e| e["message"].as_str()).collect();
        // "This product is currently being modified. Please try again later."
        if errors.iter().any(|e| code(e).as_deref() == Some("TOO_MANY_PARALLEL_REQUESTS_FOR_THIS_PRODUCT")) {
            return Err(ProviderError::Transient(messages.join("; ")));
        }
        return Err(ProviderError::Permanent(messages.join("; ")));
    }
    // Taken, not cloned: a page's data is the bulk of the answer.
    let data = value.get_mut("data").map(serde_json::Value::take);
    let data = data.ok_or_else(|| ProviderError::Decode("no data and no errors".into()))?;
    Ok(Answer { data, cost })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + secs, 0).expect("time")
    }

    fn status(available: f64) -> ThrottleStatus {
        ThrottleStatus { maximum_available: 1000.0, currently_available: available, restore_rate: 50.0 }
    }

    #[test]
    fn the_bucket_refills_and_says_how_long_to_wait_before_sending() {
        let mut b = Bucket::default();
        assert_eq!(b.wait_before(500.0, at(0)), Ok(Duration::ZERO), "nothing known yet");
        b.observe(status(100.0), at(0));
        // 500 points with 100 there and 50 a second coming: 8 s now, 6 s two seconds later.
        assert_eq!(b.wait_before(500.0, at(0)), Ok(Duration::from_secs(8)));
        assert_eq!(b.wait_before(500.0, at(2)), Ok(Duration::from_secs(6)));
        assert_eq!(b.wait_before(50.0, at(0)), Ok(Duration::ZERO));
        // Never above the maximum, however long it rested.
        assert_eq!(b.now(at(3600)).map(|s| s.currently_available), Some(1000.0));
        // Spending before the answer: the next caller waits for what the first one took.
        b.observe(status(300.0), at(10));
        b.take(300.0, at(10));
        assert_eq!(b.wait_before(100.0, at(10)), Ok(Duration::from_secs(2)));
        assert_eq!(b.wait_before(1500.0, at(10)), Err(ProviderError::TooCostly { requested: 1500.0, maximum: 1000.0 }));
    }

    #[test]
    fn a_successful_answer_carries_its_data_and_cost() {
        let body = br#"{"data":{"shop":{"name":"Shop Name"}},"extensions":{"cost":{"requestedQueryCost":2,"actualQueryCost":2,"throttleStatus":{"maximumAvailable":1000,"currentlyAvailable":998,"restoreRate":50}}}}"#;
        let a = classify(200, None, body).1.expect("answer");
        assert_eq!(a.data["shop"]["name"], "Shop Name");
        let cost = a.cost.expect("cost");
        assert_eq!((cost.requested_query_cost, cost.actual_query_cost), (2.0, Some(2.0)));
        assert_eq!(cost.throttle_status.currently_available, 998.0);
    }

    #[test]
    fn throttled_in_either_form_says_when_to_retry() {
        // HTTP 200 with THROTTLED: 752 wanted, 666 there, 50 a second -> 1.72 s.
        let body = br#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}],"extensions":{"cost":{"requestedQueryCost":752,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":666,"restoreRate":50.0}}}}"#;
        match classify(200, None, body).1 {
            Err(ProviderError::RateLimited { retry_after }) => {
                assert!((retry_after.as_secs_f64() - 1.72).abs() < 1e-9, "{retry_after:?}")
            }
            other => panic!("{other:?}"),
        }
        let too_many = br#"{"errors":"Exceeded 2 calls per second for api client."}"#;
        assert_eq!(
            classify(429, Some("2.0"), too_many).1,
            Err(ProviderError::RateLimited { retry_after: Duration::from_secs(2) })
        );
        assert_eq!(
            classify(503, None, b"busy").1,
            Err(ProviderError::RateLimited { retry_after: Duration::from_secs(1) })
        );
    }

    #[test]
    fn over_cost_refused_credentials_and_garbage_are_typed() {
        let body = br#"{"errors":[{"message":"Query cost is 1512, which exceeds the single query max cost limit (1000).","extensions":{"code":"MAX_COST_EXCEEDED","cost":1512,"maxCost":1000}}]}"#;
        assert_eq!(classify(200, None, body).1, Err(ProviderError::TooCostly { requested: 1512.0, maximum: 1000.0 }));
        assert!(matches!(
            classify(401, None, br#"{"errors":"[API] Invalid API key"}"#).1,
            Err(ProviderError::Unauthorized(_))
        ));
        assert!(matches!(classify(502, None, b"bad gateway").1, Err(ProviderError::Transient(_))));
        assert!(matches!(classify(404, None, b"no such shop").1, Err(ProviderError::Permanent(_))));
        assert!(matches!(classify(200, None, b"<html>").1, Err(ProviderError::Decode(_))));
        let invalid = br#"{"errors":[{"message":"Field 'nope' doesn't exist on type 'Shop'","extensions":{"code":"undefinedField"}}]}"#;
        assert_eq!(
            classify(200, None, invalid).1,
            Err(ProviderError::Permanent("Field 'nope' doesn't exist on type 'Shop'".into()))
        );
        assert!(ProviderError::RateLimited { retry_after: Duration::ZERO }.is_retryable());
        assert!(!ProviderError::Permanent(String::new()).is_retryable());
        // A product another request is changing: try again later.
        let busy = br#"{"errors":[{"message":"This product is currently being modified. Please try again later.","extensions":{"code":"TOO_MANY_PARALLEL_REQUESTS_FOR_THIS_PRODUCT"}}],"data":{"productVariantsBulkUpdate":null}}"#;
        assert_eq!(
            classify(200, None, busy).1,
            Err(ProviderError::Transient("This product is currently being modified. Please try again later.".into()))
        );
    }
}
