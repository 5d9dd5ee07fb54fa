//! Inbound ShipBob webhooks. Current subscriptions follow Standard Webhooks: `webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{raw
//! body}">` keyed with the base64-decoded secret after `whsec_`, and the topic in
//! `x-webhook-topic`. Legacy (1.0/2.0) subscriptions are unsigned and refused. The same
//! verification as our own outbound deliveries (`qm_integrations::webhooks`); `webhook-id` is the
//! de-duplication key, and a delivery older or newer than [`TOLERANCE`] is refused as a replay.

use std::time::Duration;

use qm_integrations::webhooks::{self, WebhookError};

/// How far a delivery's timestamp may be from now.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// A verified delivery's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The de-duplication key (the same on every retry).
    pub id: String,
    pub timestamp: i64,
    /// `order.shipped`, `order.shipment.delivered`, `return.completed`, …
    pub topic: String,
}

/// Verifies a delivery against the subscription's `whsec_` secret; `header` looks a header up
/// by name, case-insensitively.
pub fn verify<'a>(
    secret: &str,
    header: &impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
    now: i64,
) -> Result<Delivery, WebhookError> {
    let (Some(id), Some(ts), Some(sig)) =
        (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"))
    else {
        return Err(WebhookError::BadHeaders);
    };
    webhooks::verify(secret, id, ts, sig, body, now, TOLERANCE)?;
    Ok(Delivery {
        id: id.to_owned(),
        timestamp: ts.trim().parse().map_err(|_| WebhookError::BadHeaders)?,
        topic: header("x-webhook-topic").unwrap_or_default().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_cXVhcnRlcm1hc3Rlci1zaGlwYm9iLXRlc3Qtc2VjcmV0LTMyYg==";
    const BODY: &str = r#"{"order_id":731000123,"shipment_id":88000042,"tracking":{"carrier":"UPS","tracking_number":"1Z999AA10123456784"},"updated_at":"2026-01-15T15:04:05.1234567Z"}"#;
    /// Computed with the `standardwebhooks` 1.1.0 Python package (the reference implementation):
    /// `Webhook(SECRET).sign("msg_qm_test_0001", 1800000000, BODY)`.
    const SIGNATURE: &str = "v1,Kbq2Ycl2YxtYNPPDNdAf/iIaoNL689vhesO3iXYAzbM=";

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> impl Fn(&str) -> Option<&'a str> {
        move |name: &str| match name.to_ascii_lowercase().as_str() {
            "webhook-id" => Some(id),
            "webhook-timestamp" => Some(ts),
            "webhook-signature" => Some(sig),
            "x-webhook-topic" => Some("order.shipped"),
            _ => None,
        }
    }

    #[test]
    fn a_delivery_signed_by_the_reference_library_verifies() {
        let d = verify(SECRET, &headers("msg_qm_test_0001", "1800000000", SIGNATURE), BODY.as_bytes(), 1_800_000_060)
            .expect("verified");
        assert_eq!(
            d,
            Delivery { id: "msg_qm_test_0001".into(), timestamp: 1_800_000_000, topic: "order.shipped".into() }
        );
    }

    #[test]
    fn tampered_stale_unsigned_or_wrongly_keyed_deliveries_are_refused() {
        let now = 1_800_000_060;
        let flipped = BODY.replacen("731000123", "731000124", 1);
        let signed = headers("msg_qm_test_0001", "1800000000", SIGNATURE);
        let verify_at = |secret: &str, body: &str, at: i64| verify(secret, &signed, body.as_bytes(), at);
        assert_eq!(verify_at(SECRET, &flipped, now), Err(WebhookError::BadSignature), "one byte of the body changed");
        // The same JSON written again (spaced, as a framework re-serialises it) is another body.
        let value: serde_json::Value = serde_json::from_str(BODY).expect("JSON");
        let reserialised = serde_json::to_string_pretty(&value).expect("JSON");
        assert_eq!(verify_at(SECRET, &reserialised, now), Err(WebhookError::BadSignature), "a re-serialised body");
        assert_eq!(verify_at(SECRET, BODY, now + 600), Err(WebhookError::StaleTimestamp), "a replay ten minutes on");
        let other = "whsec_b3RoZXItc2VjcmV0LW9mLTMyLWJ5dGVzLWZvci10ZXN0";
        assert_eq!(verify_at(other, BODY, now), Err(WebhookError::BadSignature), "another subscription's secret");
        let other_id = headers("msg_qm_test_0002", "1800000000", SIGNATURE);
        assert_eq!(verify(SECRET, &other_id, BODY.as_bytes(), now), Err(WebhookError::BadSignature), "another id");
        let unsigned = |_: &str| -> Option<&'static str> { None };
        assert_eq!(verify(SECRET, &unsigned, BODY.as_bytes(), now), Err(WebhookError::BadHeaders), "a legacy delivery");
    }

    /// The contract's published vector, when the shared contracts are beside the checkout (as in
    /// CI); a user's clone has none.
    #[test]
    fn the_contracts_vector_verifies_when_it_is_available() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/contracts/shipbob/webhooks");
        let Ok(text) = std::fs::read_to_string(dir.join("signature_vector.json")) else { return };
        let v: serde_json::Value = serde_json::from_str(&text).expect("vector JSON");
        let s = |k: &str| v[k].as_str().expect(k).to_owned();
        let body = std::fs::read(dir.join(s("raw_body_file"))).expect("body");
        let (id, ts, sig) = (s("webhook_id"), s("webhook_timestamp"), s("expected_webhook_signature"));
        let now: i64 = ts.parse().expect("timestamp");
        let header = |name: &str| match name {
            "webhook-id" => Some(id.as_str()),
            "webhook-timestamp" => Some(ts.as_str()),
            "webhook-signature" => Some(sig.as_str()),
            _ => None,
        };
        verify(&s("secret"), &header, &body, now).expect("the vector verifies");
    }
}
