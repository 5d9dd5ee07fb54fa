//! Token-Based Authentication: OAuth 1.0a with HMAC-SHA256, as NetSuite checks it.
//!
//! The signature base string is `METHOD&pct(url without query)&pct(sorted parameters)`, where
//! the parameters are the URL's query parameters and the `oauth_*` ones (never the body: NetSuite
//! has no `oauth_body_hash`, and never `realm`). The key is `pct(consumer secret)&pct(token
//! secret)`. `realm` goes in the header only and is the account id in upper case with `_`
//! (`1234567_SB1`), while hosts use lower case with `-` (`1234567-sb1`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// An integration's consumer and an access token (secrets included).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The account id in either form (`1234567_SB1` or `1234567-sb1`).
    pub account: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub token_id: String,
    pub token_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("account", &self.account)
            .field("consumer_key", &self.consumer_key)
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TbaError {
    #[error("the URL {0:?} has no scheme and host")]
    BadUrl(String),
}

/// The account id as a realm: upper case, `-` as `_`.
pub fn realm(account: &str) -> String {
    account.trim().to_uppercase().replace('-', "_")
}

/// The account id as it appears in host names: lower case, `_` as `-`.
pub fn host_account(account: &str) -> String {
    account.trim().to_lowercase().replace('_', "-")
}

/// RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - . _ ~`, with upper-case hex digits.
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes and `+` (a space in query strings) of a query component.
fn unpct(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `Authorization` header of one request. `nonce` and `timestamp` (Unix seconds) are the
/// caller's: a fresh random nonce and the current time for a real request.
pub fn authorization(
    method: &str,
    url: &str,
    c: &Credentials,
    nonce: &str,
    timestamp: i64,
) -> Result<String, TbaError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = base.split_once('#').map_or(base, |(b, _)| b);
    let Some((scheme, rest)) = base.split_once("://") else { return Err(TbaError::BadUrl(url.to_owned())) };
    if rest.is_empty() {
        return Err(TbaError::BadUrl(url.to_owned()));
    }
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let normalised = format!("{}://{}/{}", scheme.to_lowercase(), host.to_lowercase(), path);
    let timestamp = timestamp.to_string();
    let oauth = [
        ("oauth_consumer_key", c.consumer_key.as_str()),
        ("oauth_nonce", nonce),
        ("oauth_signature_method", "HMAC-SHA256"),
        ("oauth_timestamp", timestamp.as_str()),
        ("oauth_token", c.token_id.as_str()),
        ("oauth_version", "1.0"),
    ];
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct(&unpct(k)), pct(&unpct(v)))
        })
        .chain(oauth.iter().map(|(k, v)| (pct(k), pct(v))))
        .collect();
    params.sort();
    let joined = params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let base_string = format!("{}&{}&{}", method.to_uppercase(), pct(&normalised), pct(&joined));
    let key = format!("{}&{}", pct(&c.consumer_secret), pct(&c.token_secret));
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(base_string.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    Ok(format!(
        "OAuth realm=\"{}\", oauth_nonce=\"{}\", oauth_timestamp=\"{}\", oauth_version=\"1.0\", oauth_signature_method=\"HMAC-SHA256\", oauth_consumer_key=\"{}\", oauth_token=\"{}\", oauth_signature=\"{}\"",
        realm(&c.account),
        pct(nonce),
        timestamp,
        pct(&c.consumer_key),
        pct(&c.token_id),
        pct(&signature),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            account: "7654321-sb2".into(),
            consumer_key: "consumer-key-for-tests".into(),
            consumer_secret: "consumer secret/with+symbols".into(),
            token_id: "token-id-for-tests".into(),
            token_secret: "token~secret".into(),
        }
    }

    #[test]
    fn account_ids_become_realms_and_hosts() {
        assert_eq!(realm("1234567-sb1"), "1234567_SB1");
        assert_eq!(realm("1234567_SB1"), "1234567_SB1");
        assert_eq!(host_account("1234567_SB1"), "1234567-sb1");
        assert_eq!(realm("1234567"), "1234567");
    }

    #[test]
    fn percent_encoding_keeps_only_the_unreserved_characters() {
        assert_eq!(pct("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(pct("a b+c/d=e&f%"), "a%20b%2Bc%2Fd%3De%26f%25");
        assert_eq!(pct("é"), "%C3%A9");
        assert_eq!(unpct("a%20b+c%2f"), "a b c/");
    }

    /// Our own vector, computed with oauthlib 3.2.2 (`oauth1.Client(consumer_key, client_secret,
    /// resource_owner_key, resource_owner_secret, signature_method=SIGNATURE_HMAC_SHA256,
    /// realm="7654321_SB2", nonce=…, timestamp=…).sign(url, "GET")`).
    #[test]
    fn the_header_matches_an_independent_implementation_byte_for_byte() {
        let url = "https://7654321-sb2.suitetalk.api.netsuite.com/services/rest/record/v1/salesOrder?q=lastModifiedDate%20ON_OR_AFTER%20%2201%2F15%2F2026%22&limit=50";
        let got = authorization("GET", url, &creds(), "n0nce-for-a-test", 1_800_000_000).expect("header");
        assert_eq!(got, OURS);
    }

    const OURS: &str = include_str!("tba_vector.txt");

    #[test]
    fn the_signature_changes_with_every_input_it_covers() {
        let url = "https://7654321-sb2.suitetalk.api.netsuite.com/services/rest/query/v1/suiteql?limit=10";
        let sig = |h: String| h.rsplit("oauth_signature=\"").next().map(str::to_owned).unwrap_or_default();
        let base = sig(authorization("POST", url, &creds(), "n", 1).expect("h"));
        let mut other = creds();
        other.token_secret.push('x');
        for changed in [
            sig(authorization("GET", url, &creds(), "n", 1).expect("h")),
            sig(authorization("POST", &url.replace("=10", "=11"), &creds(), "n", 1).expect("h")),
            sig(authorization("POST", url, &creds(), "m", 1).expect("h")),
            sig(authorization("POST", url, &creds(), "n", 2).expect("h")),
            sig(authorization("POST", url, &other, "n", 1).expect("h")),
        ] {
            assert_ne!(changed, base);
        }
        // The realm is not signed: another account form of the same id signs the same.
        let mut same = creds();
        same.account = "7654321_SB2".into();
        assert_eq!(sig(authorization("POST", url, &same, "n", 1).expect("h")), base);
        assert!(authorization("POST", "not a url", &creds(), "n", 1).is_err());
    }

    /// The contract's published vector, when the shared contracts are beside the checkout (as in
    /// CI); a user's clone has none, and this test then checks nothing more than the others.
    #[test]
    fn the_contracts_vector_matches_when_it_is_available() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/contracts/netsuite/tba_signature_vector.json");
        let Ok(text) = std::fs::read_to_string(&path) else { return };
        let v: serde_json::Value = serde_json::from_str(&text).expect("vector JSON");
        let s = |k: &str| v[k].as_str().expect(k).to_owned();
        let c = Credentials {
            account: s("realm"),
            consumer_key: s("consumer_key"),
            consumer_secret: s("consumer_secret"),
            token_id: s("token_id"),
            token_secret: s("token_secret"),
        };
        let ts: i64 = s("timestamp").parse().expect("timestamp");
        let got = authorization(&s("method"), &s("url"), &c, &s("nonce"), ts).expect("header");
        assert_eq!(got, s("expected_authorization_header"));
    }
}
