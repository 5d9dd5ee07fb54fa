//! ShipStation (the shipping layer many stores use). It has two APIs with separate keys: [`v1`]
//! reads warehouses, products and shipments and takes orders, with V1's thin webhooks followed
//! safely; [`v2`] reads and sets inventory. [`webhook`] verifies V2's RSA-signed webhooks.
//!
//! Both APIs tell their rate window in `X-Rate-Limit-Limit`/`-Remaining`/`-Reset` (seconds to the
//! next window): when a window is spent the client waits for the reset before its next request
//! instead of being refused, and a `429` is waited out the same way, within the client's
//! `max_wait`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ProviderError;
use crate::wire::{text, unsent};

pub mod v1;
pub mod v2;
pub mod webhook;

/// One API key's rate window as last told, shared by its clients in this process.
#[derive(Debug, Default)]
pub struct Limits {
    /// When the spent window resets, if it is spent.
    spent_until: Mutex<Option<Instant>>,
}

impl Limits {
    /// Waits until the spent window resets, or says how long that is when past `deadline`.
    async fn wait(&self, deadline: Instant) -> Result<(), ProviderError> {
        let until = *self.spent_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(until) = until.filter(|u| *u > Instant::now()) else { return Ok(()) };
        if until > deadline {
            return Err(ProviderError::RateLimited { retry_after: until - Instant::now() });
        }
        tokio::time::sleep_until(until.into()).await;
        Ok(())
    }

    /// Notes what an answer said of the window.
    fn note(&self, status: u16, remaining: Option<u64>, reset: Option<u64>) {
        let mut spent = self.spent_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *spent = match (remaining, reset) {
            (Some(0), Some(r)) => Some(Instant::now() + Duration::from_secs(r.min(3600))),
            _ if status == 429 => Some(Instant::now() + Duration::from_secs(reset.unwrap_or(60).min(3600))),
            _ => None,
        };
    }
}

/// Sends a request with the `auth` header within the key's rate window; the answer's body when
/// ShipStation took it (`Null` for an empty one), or `None` for a status in `absent`.
#[allow(clippy::too_many_arguments)]
async fn call(
    http: &reqwest::Client,
    limits: &Limits,
    max_wait: Duration,
    auth: (&str, &str),
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
    absent: &[u16],
) -> Result<Option<Value>, ProviderError> {
    let deadline = Instant::now() + max_wait;
    loop {
        limits.wait(deadline).await?;
        let mut request = http.request(method.clone(), url).header(auth.0, auth.1);
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(|e| unsent(url, &e))?;
        let status = response.status().as_u16();
        let header = |k: &str| {
            response.headers().get(k).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok())
        };
        limits.note(status, header("x-rate-limit-remaining"), header("x-rate-limit-reset"));
        let bytes = response.bytes().await.map_err(|e| ProviderError::Transient(e.to_string()))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match status {
            s if (200..300).contains(&s) => return Ok(Some(body)),
            s if absent.contains(&s) => return Ok(None),
            429 => continue,
            401 | 403 => return Err(ProviderError::Unauthorized(format!("HTTP {status}: {}", message(&body)))),
            500..=599 => return Err(ProviderError::Transient(format!("HTTP {status}: {}", message(&body)))),
            _ => return Err(ProviderError::Permanent(format!("HTTP {status}: {}", message(&body)))),
        }
    }
}

/// An error answer's message: V1's `Message`, V2's `errors[].message`.
fn message(body: &Value) -> String {
    match body {
        Value::Object(o) => match (o.get("Message").or_else(|| o.get("message")), o.get("errors")) {
            (Some(m), _) => m.as_str().map_or_else(|| m.to_string(), str::to_owned),
            (None, Some(Value::Array(errors))) => {
                errors.iter().filter_map(|e| e["message"].as_str()).collect::<Vec<_>>().join("; ")
            }
            _ => body.to_string(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The page after `page` of a list (`{…, page, pages}`), or `None` after the last.
fn next_page(body: &Value, page: u64) -> Option<String> {
    let pages = body["pages"].as_u64().unwrap_or(0);
    (page < pages).then(|| (page + 1).to_string())
}

fn page_of(cursor: Option<&str>) -> Result<u64, ProviderError> {
    match cursor {
        None => Ok(1),
        Some(c) => c
            .parse::<u64>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| ProviderError::Permanent(format!("not a page: {c:?}"))),
    }
}
