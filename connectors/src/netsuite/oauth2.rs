//! OAuth 2.0 client credentials (machine to machine), NetSuite's preferred authentication: the
//! integration's client id and a certificate mapped to it (Setup > Integration > OAuth 2.0 Client
//! Credentials (M2M) Setup). To get an access token the client posts to the account's token
//! endpoint (`/services/rest/auth/oauth2/v1/token`, form-encoded) a JWT assertion signed with the
//! certificate's private key:
//!
//! - header `{"typ": "JWT", "alg": "PS256", "kid": <certificate id>}` (`ES256` for a P-256 key;
//!   NetSuite takes no PKCS#1 v1.5 `RS256`);
//! - claims `iss` = client id, `scope` = `rest_webservices`, `aud` = the token endpoint, `iat`,
//!   and `exp` under an hour later.
//!
//! The answer's `access_token` (valid `expires_in` seconds, an hour) goes out as
//! `Authorization: Bearer`. The token is kept per account ([`TokenCache`]) and taken again a
//! minute before it expires, or at once when NetSuite refuses it.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::Value;

use crate::ProviderError;

/// The token endpoint's path under the account's address.
pub const TOKEN_PATH: &str = "/services/rest/auth/oauth2/v1/token";
/// What the token may be used for.
pub const SCOPE: &str = "rest_webservices";
/// How long an assertion is valid (NetSuite allows under an hour).
const ASSERTION_LIFETIME: i64 = 30 * 60;
/// How long before its expiry a token is taken again.
const EARLY: Duration = Duration::from_secs(60);

/// The integration's client id, the certificate id and the certificate's private key (PEM).
#[derive(Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub certificate_id: String,
    pub private_key: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("certificate_id", &self.certificate_id)
            .finish_non_exhaustive()
    }
}

/// The signing key and its algorithm: an RSA key signs PS256, a P-256 EC key ES256.
pub fn signing_key(pem: &str) -> Result<(EncodingKey, Algorithm), String> {
    if let Ok(k) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
        return Ok((k, Algorithm::PS256));
    }
    EncodingKey::from_ec_pem(pem.as_bytes())
        .map(|k| (k, Algorithm::ES256))
        .map_err(|_| "not an RSA or EC (P-256) private key in PEM".to_owned())
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// The signed assertion for the token endpoint at `token_url`, issued at `now` (Unix seconds).
pub fn assertion(c: &ClientCredentials, token_url: &str, now: i64) -> Result<String, String> {
    let (key, alg) = signing_key(&c.private_key)?;
    let mut header = Header::new(alg);
    header.typ = Some("JWT".into());
    header.kid = Some(c.certificate_id.clone());
    let claims = Claims { iss: &c.client_id, scope: SCOPE, aud: token_url, iat: now, exp: now + ASSERTION_LIFETIME };
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())
}

/// The form body of a token request.
pub fn token_request(assertion: &str) -> String {
    let pairs = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion),
    ];
    pairs.iter().map(|(k, v)| format!("{k}={}", super::tba::pct(v))).collect::<Vec<_>>().join("&")
}

/// The token endpoint's answer: the access token and how long it lasts, or why not. A refused
/// client or assertion (`invalid_client`, `invalid_grant`, 401) is [`ProviderError::Unauthorized`]:
/// the credentials are wrong, not the moment.
pub fn token_answer(status: u16, body: &[u8]) -> Result<(String, Duration), ProviderError> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let why = || {
        let e = v["error"].as_str().unwrap_or("no error code");
        format!("token endpoint HTTP {status}: {e} {}", v["error_description"].as_str().unwrap_or_default())
    };
    match status {
        200 => {
            let token = v["access_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ProviderError::Decode("a token answer without access_token".into()))?;
            // NetSuite writes `expires_in` as a string ("3600").
            let secs = v["expires_in"].as_u64().or_else(|| v["expires_in"].as_str()?.parse().ok()).unwrap_or(3600);
            Ok((token.to_owned(), Duration::from_secs(secs)))
        }
        429 => Err(ProviderError::RateLimited { retry_after: Duration::from_secs(2) }),
        400 | 401 | 403 => Err(ProviderError::Unauthorized(why())),
        500..=599 => Err(ProviderError::Transient(why())),
        _ => Err(ProviderError::Permanent(why())),
    }
}

/// An account's access token, shared by its clients in this process.
#[derive(Debug, Default)]
pub struct TokenCache {
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl TokenCache {
    /// The token while it has more than a minute left, else a new one from `fetch` (one fetch at
    /// a time: callers waiting meanwhile take the token it brings).
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<String, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, Duration), ProviderError>>,
    {
        let mut slot = self.token.lock().await;
        if let Some((t, until)) = slot.as_ref()
            && Instant::now() + EARLY < *until
        {
            return Ok(t.clone());
        }
        let (token, lasts) = fetch().await?;
        *slot = Some((token.clone(), Instant::now() + lasts));
        Ok(token)
    }

    /// Forgets `token` (NetSuite refused it: expired or revoked early), unless another has
    /// replaced it meanwhile.
    pub async fn forget(&self, token: &str) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|(t, _)| t == token) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/jwt").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn the_assertion_is_a_ps256_jwt_naming_the_certificate_the_client_and_the_token_endpoint() {
        let c = ClientCredentials {
            client_id: "client-1".into(),
            certificate_id: "cert-1".into(),
            private_key: key("rsa_private.pem"),
        };
        let url = "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token";
        let jwt = assertion(&c, url, 1_767_225_600).expect("signed");
        let header = jsonwebtoken::decode_header(&jwt).expect("header");
        assert_eq!(
            (header.alg, header.kid.as_deref(), header.typ.as_deref()),
            (Algorithm::PS256, Some("cert-1"), Some("JWT"))
        );
        let public = jsonwebtoken::DecodingKey::from_rsa_pem(key("rsa_public.pem").as_bytes()).expect("public key");
        let mut v = jsonwebtoken::Validation::new(Algorithm::PS256);
        v.set_audience(&[url]);
        v.validate_exp = false;
        let claims = jsonwebtoken::decode::<Value>(&jwt, &public, &v).expect("verifies").claims;
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["scope"], SCOPE);
        assert!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat") < 3600);
        assert!(signing_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
        let body = token_request("a.b-c_d");
        assert!(
            body.contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer")
        );
    }

    #[test]
    fn token_answers_read_netsuites_string_expiry_and_refusals_are_credentials() {
        let (t, lasts) = token_answer(200, br#"{"access_token":"eyJ.x.y","expires_in":"3600","token_type":"Bearer"}"#)
            .expect("token");
        assert_eq!((t.as_str(), lasts), ("eyJ.x.y", Duration::from_secs(3600)));
        assert!(
            matches!(token_answer(400, br#"{"error":"invalid_grant"}"#), Err(ProviderError::Unauthorized(m)) if m.contains("invalid_grant"))
        );
        assert!(matches!(token_answer(503, b""), Err(ProviderError::Transient(_))));
    }
}
