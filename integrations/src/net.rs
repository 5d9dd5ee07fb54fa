//! Outbound HTTP to addresses someone else chose (a webhook endpoint, a connector's base URL):
//! unless private addresses are allowed, loopback, private and link-local addresses are refused
//! after DNS resolution, so the check holds for the address actually connected to (no DNS
//! rebinding between check and connect), and redirects are never followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The error text a refused address carries through reqwest's error chain.
pub const FORBIDDEN: &str = "address is private, loopback or link-local";

/// True for addresses outbound calls must not reach unless private addresses are allowed.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || v4.octets()[0] == 0
                || (v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])) // CGNAT
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local
                || (seg0 & 0xffc0) == 0xfe80 // link local
        }
    }
}

/// A DNS resolver that drops forbidden addresses.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| allow || !is_private(a.ip())).collect();
            if allowed.is_empty() {
                return Err(FORBIDDEN.into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A client builder that resolves through the guard and follows no redirects; the caller adds
/// its timeouts and agent.
pub fn guarded_client(allow_private: bool) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
}

/// An error with all its sources, `: `-separated (reqwest's own text leaves out the cause).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Whether a request failed because the guard refused every address of its host.
pub fn is_forbidden(err: &reqwest::Error) -> bool {
    chain(err).contains(FORBIDDEN)
}

/// Checks a URL before it is stored: http(s), a host, no credentials, and not a forbidden IP
/// literal (host names are checked again when resolved).
pub fn check_url(raw: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http and https URLs are allowed".into());
    }
    let literal = match url.host() {
        None => return Err("the URL has no host".into()),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
    };
    if !allow_private && literal.is_some_and(is_private) {
        return Err("private, loopback and link-local addresses are not allowed".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not allowed".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
        ] {
            assert!(is_private(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(!is_private(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_guarded_client_does_not_reach_loopback_by_name() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let client = guarded_client(false).build().expect("client");
        let err = client.get(format!("http://localhost:{port}/")).send().await.expect_err("refused");
        assert!(is_forbidden(&err), "{}", chain(&err));
        let open = guarded_client(true).build().expect("client");
        let err =
            open.get(format!("http://localhost:{port}/")).timeout(std::time::Duration::from_millis(200)).send().await;
        assert!(err.is_err_and(|e| !is_forbidden(&e)), "allowed: connects (and times out, nobody answers)");
    }
}
