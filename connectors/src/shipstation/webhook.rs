//! ShipStation V2 webhooks: signed with RSA-SHA256 (PKCS#1 v1.5) over `{timestamp}.{raw body}`,
//! the key named by `x-shipengine-rsa-sha256-key-id`, the base64 signature in
//! `x-shipengine-rsa-sha256-signature`, the time in `x-shipengine-timestamp`. The public keys
//! are ShipStation's published JWKS, configured with the connector (a JWKS document, or one PEM
//! key for every key id). A message is refused when a header is missing, when its time is more
//! than [`TOLERANCE`] from ours either way (a replay), when no configured key has its id, and
//! when the signature does not verify over the exact bytes received.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, jwk::JwkSet};

/// How far a message's time may be from ours, either way.
pub const TOLERANCE: chrono::Duration = chrono::Duration::minutes(5);

pub const KEY_ID: &str = "x-shipengine-rsa-sha256-key-id";
pub const SIGNATURE: &str = "x-shipengine-rsa-sha256-signature";
pub const TIMESTAMP: &str = "x-shipengine-timestamp";

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a signature header is missing")]
    Missing,
    #[error("the message's time is unreadable or more than five minutes from ours")]
    Stale,
    #[error("no configured key has the message's key id")]
    UnknownKey,
    #[error("the signature does not verify")]
    BadSignature,
}

/// The public keys messages are verified with.
#[derive(Clone)]
pub struct PublicKeys {
    /// By key id; a key without one (a PEM) verifies any id.
    keys: Vec<(Option<String>, DecodingKey)>,
}

impl std::fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|(id, _)| id)).finish()
    }
}

impl PublicKeys {
    /// Reads a JWKS document (`{"keys": [{"kty": "RSA", "kid", "n", "e"}, …]}`) or a PEM RSA
    /// public key; why not, for an admin.
    pub fn parse(text: &str) -> Result<PublicKeys, String> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            let key = DecodingKey::from_rsa_pem(text.as_bytes()).map_err(|e| format!("not an RSA public key: {e}"))?;
            return Ok(PublicKeys { keys: vec![(None, key)] });
        }
        let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("neither a PEM key nor a JWKS: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let Some(id) = jwk.common.key_id.clone() else { return Err("a JWKS key without a kid".into()) };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {id}: {e}"))?;
            keys.push((Some(id), key));
        }
        if keys.is_empty() {
            return Err("the JWKS has no keys".into());
        }
        Ok(PublicKeys { keys })
    }

    /// The key ids (`*` for a key without one, which verifies any id).
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|(id, _)| id.clone().unwrap_or_else(|| "*".into())).collect()
    }

    fn find(&self, id: &str) -> Option<&DecodingKey> {
        self.keys.iter().find(|(k, _)| k.as_deref().is_none_or(|k| k == id)).map(|(_, key)| key)
    }
}

/// A header value as the verifier takes it: `None` when absent.
pub struct Headers<'a> {
    pub key_id: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
}

/// A message time: RFC 3339 (what ShipStation sends), or seconds since the epoch.
fn time_of(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| s.parse::<i64>().ok().and_then(|secs| DateTime::from_timestamp(secs, 0)))
}

/// Verifies a message received at `now`.
pub fn verify(keys: &PublicKeys, h: &Headers<'_>, body: &[u8], now: DateTime<Utc>) -> Result<(), Refused> {
    let (Some(id), Some(signature), Some(timestamp)) = (h.key_id, h.signature, h.timestamp) else {
        return Err(Refused::Missing);
    };
    let at = time_of(timestamp).ok_or(Refused::Stale)?;
    if (now - at).abs() > TOLERANCE {
        return Err(Refused::Stale);
    }
    let key = keys.find(id.trim()).ok_or(Refused::UnknownKey)?;
    let raw = base64::engine::general_purpose::STANDARD.decode(signature.trim()).map_err(|_| Refused::BadSignature)?;
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    match jsonwebtoken::crypto::verify(&signature, &message, key, Algorithm::RS256) {
        Ok(true) => Ok(()),
        _ => Err(Refused::BadSignature),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_message_without_its_headers_or_out_of_time_before_any_key_is_looked_up() {
        let keys = PublicKeys { keys: Vec::new() };
        let now: DateTime<Utc> = "2026-08-04T12:00:00Z".parse().expect("time");
        let h = |ts| Headers { key_id: Some("k"), signature: Some("AAAA"), timestamp: ts };
        assert_eq!(verify(&keys, &h(None), b"{}", now), Err(Refused::Missing));
        assert_eq!(verify(&keys, &h(Some("2026-08-04T11:54:59Z")), b"{}", now), Err(Refused::Stale));
        assert_eq!(verify(&keys, &h(Some("2026-08-04T12:05:01Z")), b"{}", now), Err(Refused::Stale), "future skew too");
        assert_eq!(verify(&keys, &h(Some("yesterday")), b"{}", now), Err(Refused::Stale));
        assert_eq!(verify(&keys, &h(Some("2026-08-04T12:04:00.000Z")), b"{}", now), Err(Refused::UnknownKey));
        assert!(PublicKeys::parse("{\"keys\": []}").is_err());
        assert!(PublicKeys::parse("not a key").is_err());
    }

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/jwt").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// What ShipStation sends: base64 RSA-SHA256 of `{timestamp}.{body}`.
    fn sign(timestamp: &str, body: &[u8]) -> String {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(fixture("rsa_private.pem").as_bytes()).expect("key");
        let mut message = format!("{timestamp}.").into_bytes();
        message.extend_from_slice(body);
        let url_safe = jsonwebtoken::crypto::sign(&message, &key, Algorithm::RS256).expect("sign");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(url_safe).expect("b64");
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    #[test]
    fn scenario_4_a_signed_v2_message_verifies_with_the_jwks_or_the_pem_and_a_changed_one_does_not() {
        let body =
            br#"{"resource_url":"https:\/\/api.shipstation.com\/v2\/labels\/se-1\/track","resource_type":"API_TRACK"}"#;
        let ts = "2026-08-04T12:00:00.000Z";
        let now: DateTime<Utc> = "2026-08-04T12:03:00Z".parse().expect("time");
        let signature = sign(ts, body);
        let jwks = PublicKeys::parse(&fixture("rsa_public.jwks.json")).expect("jwks");
        let pem = PublicKeys::parse(&fixture("rsa_public.pem")).expect("pem");
        let h = |id| Headers { key_id: Some(id), signature: Some(&signature), timestamp: Some(ts) };
        assert_eq!(verify(&jwks, &h("qm-test-rsa"), body, now), Ok(()));
        assert_eq!(verify(&pem, &h("any-id"), body, now), Ok(()));
        assert_eq!(verify(&jwks, &h("another-key"), body, now), Err(Refused::UnknownKey));
        let mut flipped = body.to_vec();
        flipped[10] ^= 1;
        assert_eq!(verify(&jwks, &h("qm-test-rsa"), &flipped, now), Err(Refused::BadSignature));
        let reserialised = String::from_utf8_lossy(body).replace("\\/", "/");
        assert_eq!(verify(&jwks, &h("qm-test-rsa"), reserialised.as_bytes(), now), Err(Refused::BadSignature));
        let other_time = Headers { timestamp: Some("2026-08-04T12:00:01.000Z"), ..h("qm-test-rsa") };
        assert_eq!(verify(&jwks, &other_time, body, now), Err(Refused::BadSignature), "the time is signed too");
        let later: DateTime<Utc> = "2026-08-04T12:05:01Z".parse().expect("time");
        assert_eq!(verify(&jwks, &h("qm-test-rsa"), body, later), Err(Refused::Stale));
    }
}
