//! Outbound webhooks to the Standard Webhooks specification.
//!
//! Signing: `webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`, several
//! space-separated signatures while a secret rotates. Delivery refuses loopback, private and
//! link-local addresses after DNS resolution (unless allowed), never follows redirects, bounds the
//! whole exchange by a timeout and keeps only an excerpt of the response.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::net;

pub const SECRET_PREFIX: &str = "whsec_";
const EXCERPT_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("secret must be whsec_ followed by base64")]
    BadSecret,
    #[error("missing or malformed webhook headers")]
    BadHeaders,
    #[error("timestamp outside the tolerance")]
    StaleTimestamp,
    #[error("no signature matches")]
    BadSignature,
}

/// A fresh endpoint secret: `whsec_` and base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

fn key(secret: &str) -> Result<Vec<u8>, WebhookError> {
    let raw = secret.strip_prefix(SECRET_PREFIX).ok_or(WebhookError::BadSecret)?;
    let bytes = STANDARD.decode(raw).map_err(|_| WebhookError::BadSecret)?;
    if bytes.len() < 24 || bytes.len() > 64 {
        return Err(WebhookError::BadSecret);
    }
    Ok(bytes)
}

fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(msg_id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `webhook-signature` header value: one `v1,<sig>` per secret, space-separated.
pub fn sign(secrets: &[&str], msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, WebhookError> {
    let mut sigs = Vec::with_capacity(secrets.len());
    for s in secrets {
        let tag = mac(&key(s)?, msg_id, timestamp, body).finalize().into_bytes();
        sigs.push(format!("v1,{}", STANDARD.encode(tag)));
    }
    Ok(sigs.join(" "))
}

/// Verifies a delivery as a receiver would (constant-time comparison, `tolerance` on the timestamp).
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| WebhookError::BadHeaders)?;
    if (now - ts).unsigned_abs() > tolerance.as_secs() {
        return Err(WebhookError::StaleTimestamp);
    }
    let key = key(secret)?;
    for part in signature.split_whitespace() {
        let Some(b64) = part.strip_prefix("v1,") else { continue };
        let Ok(given) = STANDARD.decode(b64) else { continue };
        if mac(&key, msg_id, ts, body).verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err(WebhookError::BadSignature)
}

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub timeout: Duration,
    pub allow_private: bool,
    pub user_agent: String,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), allow_private: false, user_agent: "Quartermaster-Webhooks/1".into() }
    }
}

/// What happened to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// Try again later (network error, timeout, 3xx, 4xx, 5xx).
    Failed,
    /// 410 Gone: the receiver asks us to stop; disable the endpoint.
    Gone,
    /// Never sent: invalid URL or a forbidden address. Retrying cannot help.
    Refused,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub latency: Duration,
    pub excerpt: String,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Report {
    /// A delivery that failed before anything was sent (`error` says why): retried like one the
    /// receiver failed.
    pub fn not_sent(error: String) -> Report {
        Report {
            outcome: Outcome::Failed,
            status: None,
            latency: Duration::ZERO,
            excerpt: String::new(),
            error: Some(error),
            retry_after: None,
        }
    }
}

/// One delivery to make.
pub struct Outgoing<'a> {
    pub url: &'a str,
    pub msg_id: &'a str,
    pub timestamp: i64,
    pub body: &'a [u8],
    pub secrets: &'a [&'a str],
}

#[derive(Clone)]
pub struct Deliverer {
    config: DeliveryConfig,
    client: reqwest::Client,
}

impl Deliverer {
    pub fn new(config: DeliveryConfig) -> Result<Self, reqwest::Error> {
        let client = net::guarded_client(config.allow_private)
            .connect_timeout(config.timeout)
            .user_agent(config.user_agent.clone())
            .pool_max_idle_per_host(8)
            .build()?;
        Ok(Self { config, client })
    }

    /// Checks a URL before it is stored: see [`net::check_url`].
    pub fn check_url(&self, raw: &str) -> Result<reqwest::Url, String> {
        net::check_url(raw, self.config.allow_private)
    }

    pub async fn deliver(&self, out: &Outgoing<'_>) -> Report {
        let started = Instant::now();
        let refused = |error: String| Report {
            outcome: Outcome::Refused,
            status: None,
            latency: started.elapsed(),
            excerpt: String::new(),
            error: Some(error),
            retry_after: None,
        };
        let url = match self.check_url(out.url) {
            Ok(u) => u,
            Err(e) => return refused(e),
        };
        let signature = match sign(out.secrets, out.msg_id, out.timestamp, out.body) {
            Ok(s) => s,
            Err(e) => return refused(e.to_string()),
        };
        let request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", out.msg_id)
            .header("webhook-timestamp", out.timestamp.to_string())
            .header("webhook-signature", signature)
            .body(out.body.to_vec());
        let exchange = async {
            let resp = request.send().await?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(86_400)));
            // The status is the receiver's answer; a body cut off after it (a reset, say) is noted
            // but does not turn a 2xx into a failure, which would only cause a duplicate.
            let mut excerpt = Vec::new();
            let mut body_error = None;
            let mut resp = resp;
            while excerpt.len() < EXCERPT_BYTES {
                match resp.chunk().await {
                    Ok(Some(c)) => excerpt.extend_from_slice(&c[..c.len().min(EXCERPT_BYTES - excerpt.len())]),
                    Ok(None) => break,
                    Err(e) => {
                        body_error = Some(format!("reading the response body: {e}"));
                        break;
                    }
                }
            }
            Ok::<_, reqwest::Error>((status, retry_after, String::from_utf8_lossy(&excerpt).into_owned(), body_error))
        };
        match tokio::time::timeout(self.config.timeout, exchange).await {
            Err(_) => Report {
                outcome: Outcome::Failed,
                status: None,
                latency: started.elapsed(),
                excerpt: String::new(),
                error: Some(format!("timed out after {:?}", self.config.timeout)),
                retry_after: None,
            },
            Ok(Err(e)) => {
                let text = net::chain(&e);
                let forbidden = text.contains(net::FORBIDDEN);
                Report {
                    outcome: if forbidden { Outcome::Refused } else { Outcome::Failed },
                    status: None,
                    latency: started.elapsed(),
                    excerpt: String::new(),
                    error: Some(text),
                    retry_after: None,
                }
            }
            Ok(Ok((status, retry_after, excerpt, body_error))) => Report {
                outcome: match status {
                    200..=299 => Outcome::Delivered,
                    410 => Outcome::Gone,
                    _ => Outcome::Failed,
                },
                status: Some(status),
                latency: started.elapsed(),
                excerpt,
                error: body_error,
                retry_after,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let secret = generate_secret();
        let body = br#"{"type":"stock.adjusted","timestamp":"2026-11-22T00:00:00Z","data":{}}"#;
        let sig = sign(&[&secret], "msg_1", 1_700_000_000, body).expect("sign");
        let ok = verify(&secret, "msg_1", "1700000000", &sig, body, 1_700_000_010, Duration::from_secs(300));
        assert_eq!(ok, Ok(()));
        let tampered = verify(&secret, "msg_1", "1700000000", &sig, b"{}", 1_700_000_010, Duration::from_secs(300));
        assert_eq!(tampered, Err(WebhookError::BadSignature));
        let stale = verify(&secret, "msg_1", "1700000000", &sig, body, 1_700_001_000, Duration::from_secs(300));
        assert_eq!(stale, Err(WebhookError::StaleTimestamp));
    }

    #[test]
    fn the_standard_webhooks_test_vector_matches() {
        // The example from the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).expect("sign");
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_sends_both_signatures() {
        let (old, new) = (generate_secret(), generate_secret());
        let sig = sign(&[&new, &old], "m", 1, b"x").expect("sign");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(verify(&old, "m", "1", &sig, b"x", 1, Duration::from_secs(1)).is_ok());
        assert!(verify(&new, "m", "1", &sig, b"x", 1, Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn urls_are_checked_before_they_are_stored() {
        let d = Deliverer::new(DeliveryConfig::default()).expect("client");
        assert!(d.check_url("https://hooks.example.com/x").is_ok());
        assert!(d.check_url("ftp://example.com").is_err());
        assert!(d.check_url("http://127.0.0.1:8080/").is_err());
        assert!(d.check_url("http://[::1]/").is_err());
        assert!(d.check_url("http://user:pw@example.com/").is_err());
        assert!(d.check_url("not a url").is_err());
        let open = Deliverer::new(DeliveryConfig { allow_private: true, ..Default::default() }).expect("client");
        assert!(open.check_url("http://127.0.0.1:8080/").is_ok());
    }
}
