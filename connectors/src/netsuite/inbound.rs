//! Messages from the User Event script (`connectors/netsuite/suitescript/`): NetSuite has no
//! outbound webhooks, so the script POSTs each change to `POST /webhooks/netsuite/{connectorId}`
//! with `X-QM-Timestamp` (Unix seconds), `X-QM-Event-Id` (the de-duplication key: account,
//! record type, id, event and last-modified time) and `X-QM-Signature: v1=<hex HMAC-SHA256(the
//! installation's secret, "{timestamp}.{raw body}")>`. A message whose signature does not match
//! the exact bytes received, or whose timestamp is more than [`TOLERANCE`] from now, is refused.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// How far a message's timestamp may be from now.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;
pub const TOLERANCE: std::time::Duration = std::time::Duration::from_secs(TOLERANCE_SECONDS as u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("the {0} header is missing or malformed")]
    BadHeader(&'static str),
    #[error("the message is older or newer than five minutes")]
    Stale,
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the body is not a change message: {0}")]
    BadBody(String),
}

/// What one message says changed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub account: String,
    /// `item`, `sales_order`, `item_fulfillment`, `inventory`, `return_authorization`,
    /// `item_receipt`.
    pub kind: String,
    pub record_type: String,
    pub id: String,
    pub external_id: Option<String>,
    /// `create`, `edit`, `delete`, `xedit`, …
    pub event: String,
    pub last_modified: Option<String>,
}

/// A verified message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub event_id: String,
    pub timestamp: i64,
    pub change: Change,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `X-QM-Signature` value the script sends.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp.to_string(), body).finalize().into_bytes();
    format!("v1={}", tag.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Verifies a message (constant-time) and reads it; `header` looks a header up by name,
/// case-insensitively.
pub fn verify<'a>(
    secret: &[u8],
    header: &impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
    now: i64,
) -> Result<Message, InboundError> {
    let ts_raw = header("x-qm-timestamp").ok_or(InboundError::BadHeader("X-QM-Timestamp"))?.trim();
    let ts: i64 = ts_raw.parse().map_err(|_| InboundError::BadHeader("X-QM-Timestamp"))?;
    let event_id = header("x-qm-event-id").map(str::trim).filter(|e| !e.is_empty() && e.len() <= 512);
    let event_id = event_id.ok_or(InboundError::BadHeader("X-QM-Event-Id"))?;
    let given = header("x-qm-signature")
        .and_then(|s| s.trim().strip_prefix("v1="))
        .and_then(unhex)
        .ok_or(InboundError::BadHeader("X-QM-Signature"))?;
    if (now - ts).abs() > TOLERANCE_SECONDS {
        return Err(InboundError::Stale);
    }
    mac(secret, ts_raw, body).verify_slice(&given).map_err(|_| InboundError::BadSignature)?;
    let change: Change = serde_json::from_slice(body).map_err(|e| InboundError::BadBody(e.to_string()))?;
    Ok(Message { event_id: event_id.to_owned(), timestamp: ts, change })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message the script's node tests build and sign (node's HMAC, not this crate's).
    const VECTOR: &str = include_str!("../../netsuite/suitescript/test/vector.json");

    struct Vector {
        secret: String,
        timestamp: i64,
        body: String,
        event_id: String,
        signature: String,
    }

    fn vector() -> Vector {
        let v: serde_json::Value = serde_json::from_str(VECTOR).expect("vector");
        let s = |k: &str| v[k].as_str().expect(k).to_owned();
        Vector {
            secret: s("secret"),
            timestamp: v["timestamp"].as_i64().expect("timestamp"),
            body: s("body"),
            event_id: s("event_id"),
            signature: s("signature"),
        }
    }

    fn headers<'a>(ts: &'a str, id: &'a str, sig: &'a str) -> impl Fn(&str) -> Option<&'a str> {
        move |name: &str| match name {
            "x-qm-timestamp" => Some(ts),
            "x-qm-event-id" => Some(id),
            "x-qm-signature" => Some(sig),
            _ => None,
        }
    }

    #[test]
    fn the_scripts_message_verifies_and_reads() {
        let v = vector();
        let ts = v.timestamp.to_string();
        let m =
            verify(v.secret.as_bytes(), &headers(&ts, &v.event_id, &v.signature), v.body.as_bytes(), v.timestamp + 30)
                .expect("verified");
        assert_eq!(m.event_id, v.event_id);
        assert_eq!(m.change.kind, "sales_order");
        assert_eq!(m.change.id, "4711");
        assert_eq!(m.change.external_id.as_deref(), Some("shopify-1001"));
        assert_eq!(
            sign(v.secret.as_bytes(), v.timestamp, v.body.as_bytes()),
            v.signature,
            "we sign as the script does"
        );
    }

    #[test]
    fn a_tampered_replayed_stale_or_unsigned_message_is_refused() {
        let v = vector();
        let ts = v.timestamp.to_string();
        let h = headers(&ts, &v.event_id, &v.signature);
        let tampered = v.body.replacen("4711", "4712", 1);
        assert_eq!(verify(v.secret.as_bytes(), &h, tampered.as_bytes(), v.timestamp), Err(InboundError::BadSignature));
        assert_eq!(
            verify(v.secret.as_bytes(), &h, v.body.as_bytes(), v.timestamp + TOLERANCE_SECONDS + 1),
            Err(InboundError::Stale),
            "replayed six minutes later"
        );
        assert_eq!(verify(v.secret.as_bytes(), &h, v.body.as_bytes(), v.timestamp - 3600), Err(InboundError::Stale));
        assert_eq!(
            verify(b"another installation", &h, v.body.as_bytes(), v.timestamp),
            Err(InboundError::BadSignature)
        );
        let later = (v.timestamp + 1).to_string();
        let moved = headers(&later, &v.event_id, &v.signature);
        assert_eq!(
            verify(v.secret.as_bytes(), &moved, v.body.as_bytes(), v.timestamp),
            Err(InboundError::BadSignature),
            "the timestamp is signed"
        );
        let none = |_: &str| -> Option<&str> { None };
        assert_eq!(
            verify(v.secret.as_bytes(), &none, v.body.as_bytes(), v.timestamp),
            Err(InboundError::BadHeader("X-QM-Timestamp"))
        );
        let bad_sig = headers(&ts, &v.event_id, "v1=zz");
        assert_eq!(
            verify(v.secret.as_bytes(), &bad_sig, v.body.as_bytes(), v.timestamp),
            Err(InboundError::BadHeader("X-QM-Signature"))
        );
        let signed_junk = sign(v.secret.as_bytes(), v.timestamp, b"[]");
        let junk = headers(&ts, &v.event_id, &signed_junk);
        assert!(matches!(verify(v.secret.as_bytes(), &junk, b"[]", v.timestamp), Err(InboundError::BadBody(_))));
    }
}
