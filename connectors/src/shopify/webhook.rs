//! Inbound Shopify webhooks: `X-Shopify-Hmac-Sha256` is `base64(HMAC-SHA256(key = the app's
//! client secret, message = the raw body bytes))`. The body must be verified exactly as received:
//! Shopify escapes `/` as `\/`, so re-serialising parsed JSON changes the bytes and breaks the
//! signature. Comparison is constant-time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a webhook is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the {0} header is not valid")]
    BadHeader(&'static str),
    #[error("the signature does not match the body")]
    BadSignature,
}

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Shopify-Hmac-Sha256";

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(body);
    m
}

/// The `X-Shopify-Hmac-Sha256` value for `body` (what Shopify, or a mock of it, sends).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    STANDARD.encode(mac(secret, body).finalize().into_bytes())
}

/// Checks `signature` (the header, base64) against the raw `body`, in constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> Result<(), WebhookError> {
    let given = STANDARD.decode(signature.trim()).map_err(|_| WebhookError::BadSignature)?;
    mac(secret, body).verify_slice(&given).map_err(|_| WebhookError::BadSignature)
}

/// The headers of one delivery that the receiver acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `products/update`, `inventory_levels/update`, `app/uninstalled`, …
    pub topic: String,
    pub shop_domain: String,
    /// The same on every retry of one delivery: the de-duplication key.
    pub webhook_id: String,
    /// Shared by every subscription fired for one event.
    pub event_id: Option<String>,
    /// The API version of the payload's representation.
    pub api_version: Option<String>,
    /// When Shopify fired it: orders deliveries that carry no `updated_at`.
    pub triggered_at: Option<DateTime<Utc>>,
}

/// Verifies a delivery and reads its headers. `header` looks a header up by name
/// (case-insensitively, as HTTP headers are).
pub fn receive<'a>(
    secret: &[u8],
    body: &[u8],
    header: impl Fn(&str) -> Option<&'a str>,
) -> Result<Delivery, WebhookError> {
    let required = |name: &'static str| {
        header(name).map(str::trim).filter(|v| !v.is_empty()).ok_or(WebhookError::MissingHeader(name))
    };
    verify(secret, body, required(SIGNATURE_HEADER)?)?;
    let triggered_at = match header("X-Shopify-Triggered-At").map(str::trim).filter(|v| !v.is_empty()) {
        Some(raw) => Some(
            DateTime::parse_from_rfc3339(raw)
                .map_err(|_| WebhookError::BadHeader("X-Shopify-Triggered-At"))?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let optional = |name: &str| header(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(Delivery {
        topic: required("X-Shopify-Topic")?.to_owned(),
        shop_domain: required("X-Shopify-Shop-Domain")?.to_owned(),
        webhook_id: required("X-Shopify-Webhook-Id")?.to_owned(),
        event_id: optional("X-Shopify-Event-Id"),
        api_version: optional("X-Shopify-API-Version"),
        triggered_at,
    })
}

/// What a delivery is about, for the topics the sync engine applies. The payload (the REST
/// representation, a snapshot that may be older than the shop's state when it arrives) only says
/// which record changed: the engine reads that record's current state back, so deliveries arriving
/// out of order or twice end in the newest state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `inventory_levels/update` (and `connect`/`disconnect`): one item at one location.
    Level { inventory_item_id: String, location_id: String },
    /// `products/create` and `products/update`: a product and its variants.
    Product { product_id: String },
    /// `orders/*` (the order's id) and `fulfillments/*` (its `order_id`): an order with its
    /// lines and fulfilments.
    Order { order_id: String },
    /// `app/uninstalled`, handled when received.
    Uninstalled,
    /// A topic this version does not apply (returns and refunds: not synced yet).
    Other,
}

/// A numeric REST id (kept exact: serde_json reads integers without going through `f64`) or a
/// numeric string, as a global id of `kind`.
fn rest_gid(body: &serde_json::Value, key: &str, kind: &str) -> Option<String> {
    let v = body.get(key)?;
    let n = v.as_u64().or_else(|| v.as_str()?.parse().ok())?;
    Some(format!("gid://shopify/{kind}/{n}"))
}

/// Reads what a delivery of `topic` is about from its raw body.
pub fn subject(topic: &str, body: &[u8]) -> Result<Subject, crate::ProviderError> {
    let bad = |m: &str| crate::ProviderError::Decode(format!("{topic} webhook: {m}"));
    let parse = || serde_json::from_slice::<serde_json::Value>(body).map_err(|e| bad(&format!("not JSON ({e})")));
    match topic {
        "inventory_levels/update" | "inventory_levels/connect" | "inventory_levels/disconnect" => {
            let v = parse()?;
            Ok(Subject::Level {
                inventory_item_id: rest_gid(&v, "inventory_item_id", "InventoryItem")
                    .ok_or_else(|| bad("no inventory_item_id"))?,
                location_id: rest_gid(&v, "location_id", "Location").ok_or_else(|| bad("no location_id"))?,
            })
        }
        "products/create" | "products/update" => {
            let v = parse()?;
            Ok(Subject::Product { product_id: rest_gid(&v, "id", "Product").ok_or_else(|| bad("no id"))? })
        }
        "orders/create"
        | "orders/updated"
        | "orders/cancelled"
        | "orders/fulfilled"
        | "orders/partially_fulfilled"
        | "orders/paid" => {
            let v = parse()?;
            Ok(Subject::Order { order_id: rest_gid(&v, "id", "Order").ok_or_else(|| bad("no id"))? })
        }
        "fulfillments/create" | "fulfillments/update" => {
            let v = parse()?;
            Ok(Subject::Order { order_id: rest_gid(&v, "order_id", "Order").ok_or_else(|| bad("no order_id"))? })
        }
        "refunds/create" => {
            let v = parse()?;
            Ok(Subject::Order { order_id: rest_gid(&v, "order_id", "Order").ok_or_else(|| bad("no order_id"))? })
        }
        t if t.starts_with("returns/") => {
            // The return's order, nested (`order.id`) or flat (`order_id`).
            let v = parse()?;
            let order =
                v.get("order").and_then(|o| rest_gid(o, "id", "Order")).or_else(|| rest_gid(&v, "order_id", "Order"));
            Ok(Subject::Order { order_id: order.ok_or_else(|| bad("no order"))? })
        }
        "app/uninstalled" => Ok(Subject::Uninstalled),
        _ => Ok(Subject::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_names_its_record_with_ids_above_two_to_the_53_exact() {
        let body = br#"{"inventory_item_id":820982911946154508,"location_id":905684977,"available":1,"updated_at":"2026-01-15T10:00:00-05:00"}"#;
        assert_eq!(
            subject("inventory_levels/update", body),
            Ok(Subject::Level {
                inventory_item_id: "gid://shopify/InventoryItem/820982911946154508".into(),
                location_id: "gid://shopify/Location/905684977".into(),
            })
        );
        assert_eq!(
            subject("products/update", br#"{"id":632910392,"title":"IPod Nano - 8GB"}"#),
            Ok(Subject::Product { product_id: "gid://shopify/Product/632910392".into() })
        );
        assert_eq!(
            subject("orders/updated", br##"{"id":820982911946154508,"name":"#1001"}"##),
            Ok(Subject::Order { order_id: "gid://shopify/Order/820982911946154508".into() })
        );
        assert_eq!(
            subject("fulfillments/create", br#"{"id":255858046,"order_id":450789469}"#),
            Ok(Subject::Order { order_id: "gid://shopify/Order/450789469".into() })
        );
        assert_eq!(
            subject("refunds/create", br#"{"id":509562969,"order_id":450789469}"#),
            Ok(Subject::Order { order_id: "gid://shopify/Order/450789469".into() })
        );
        assert_eq!(
            subject("returns/close", br#"{"id":945000954,"order":{"id":450789469,"admin_graphql_api_id":"gid:\/\/shopify\/Order\/450789469"}}"#),
            Ok(Subject::Order { order_id: "gid://shopify/Order/450789469".into() })
        );
        assert!(matches!(subject("returns/request", b"{}"), Err(crate::ProviderError::Decode(_))));
        assert_eq!(subject("shop/update", b"{}"), Ok(Subject::Other));
        assert!(matches!(subject("products/update", b"{}"), Err(crate::ProviderError::Decode(_))));
        assert!(matches!(subject("inventory_levels/update", b"<xml>"), Err(crate::ProviderError::Decode(_))));
    }

    /// Shopify's own test vector (shopify-app-js, `webhooks/__tests__/validate.test.ts`).
    const SDK_SECRET: &[u8] = b"test_secret_key";
    const SDK_BODY: &[u8] = br#"{"foo": "bar"}"#;
    const SDK_HMAC: &str = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=";

    /// A compact body the way Shopify sends it: `/` escaped as `\/`.
    const BODY: &[u8] = br#"{"id":820982911946154508,"title":"Tee","handle":"tee","image":"https:\/\/cdn.example\/t.png","updated_at":"2026-03-02T10:15:00-05:00"}"#;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    #[test]
    fn shopifys_own_vector_is_accepted() {
        assert_eq!(verify(SDK_SECRET, SDK_BODY, SDK_HMAC), Ok(()));
        assert_eq!(sign(SDK_SECRET, SDK_BODY), SDK_HMAC);
    }

    #[test]
    fn tampering_a_re_serialised_body_and_the_wrong_secret_are_refused() {
        let good = sign(b"hush", BODY);
        assert_eq!(verify(b"hush", BODY, &good), Ok(()));
        let mut flipped = BODY.to_vec();
        flipped[10] ^= 1;
        assert_eq!(verify(b"hush", &flipped, &good), Err(WebhookError::BadSignature));
        // Parsing and writing the JSON again unescapes `\/`: other bytes, so refused.
        let value: serde_json::Value = serde_json::from_slice(BODY).expect("json");
        let rewritten = serde_json::to_vec(&value).expect("json");
        assert_ne!(rewritten, BODY);
        assert_eq!(verify(b"hush", &rewritten, &good), Err(WebhookError::BadSignature));
        assert_eq!(verify(b"other", BODY, &good), Err(WebhookError::BadSignature));
        assert_eq!(verify(b"hush", BODY, "not base64!"), Err(WebhookError::BadSignature));
        assert_eq!(verify(b"hush", BODY, ""), Err(WebhookError::BadSignature));
    }

    #[test]
    fn a_delivery_is_read_from_its_headers() {
        let sig = sign(b"hush", BODY);
        let pairs = [
            ("x-shopify-topic", "products/update"),
            ("X-Shopify-Hmac-Sha256", sig.as_str()),
            ("X-Shopify-Shop-Domain", "example-shop.myshopify.com"),
            ("X-Shopify-API-Version", "2026-01"),
            ("X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
            ("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
            ("X-Shopify-Triggered-At", "2026-01-15T10:00:00.123456789-05:00"),
        ];
        let d = receive(b"hush", BODY, headers(&pairs)).expect("valid");
        assert_eq!(d.topic, "products/update");
        assert_eq!(d.webhook_id, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
        assert_eq!(d.api_version.as_deref(), Some("2026-01"));
        let utc = DateTime::parse_from_rfc3339("2026-01-15T15:00:00.123456789Z").expect("time");
        assert_eq!(d.triggered_at, Some(utc.with_timezone(&Utc)));
        // Without a signature, or a webhook id, nothing is applied.
        assert_eq!(
            receive(b"hush", BODY, headers(&pairs[..1])),
            Err(WebhookError::MissingHeader("X-Shopify-Hmac-Sha256"))
        );
        let no_id: Vec<_> = pairs.iter().copied().filter(|(k, _)| *k != "X-Shopify-Webhook-Id").collect();
        assert_eq!(receive(b"hush", BODY, headers(&no_id)), Err(WebhookError::MissingHeader("X-Shopify-Webhook-Id")));
        let mut bad_time = pairs;
        bad_time[6].1 = "yesterday";
        assert_eq!(receive(b"hush", BODY, headers(&bad_time)), Err(WebhookError::BadHeader("X-Shopify-Triggered-At")));
    }
}
