//! Reading providers' JSON answers.

use serde_json::Value;

/// Field `k` of `v` as text: a non-empty string as it is, a number as written (ids that are
/// numbers in one answer and strings in another read the same); `None` otherwise.
pub(crate) fn text(v: &Value, k: &str) -> Option<String> {
    match &v[k] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Why a request to `what` (its URL, or what it is) got no answer: a permanent error when the
/// address is one the server may not reach (it will not resolve elsewhere on a retry), else a
/// transient one.
pub(crate) fn unsent(what: &str, e: &reqwest::Error) -> crate::ProviderError {
    if qm_integrations::net::is_forbidden(e) {
        crate::ProviderError::Permanent(format!("{what}: {}", qm_integrations::net::FORBIDDEN))
    } else {
        crate::ProviderError::Transient(format!("{what}: {e}"))
    }
}
