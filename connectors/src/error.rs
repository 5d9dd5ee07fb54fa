//! What can go wrong talking to a provider, typed so the sync engine knows what to do next.

use std::time::Duration;

/// A provider call's failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// Over the provider's rate budget: try again after `retry_after`.
    #[error("rate limited by the provider; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The credentials were refused (revoked token, uninstalled app): pause the connector.
    #[error("the provider refused the credentials: {0}")]
    Unauthorized(String),
    /// Worth retrying with backoff (5xx, timeouts, connection resets).
    #[error("transient provider failure: {0}")]
    Transient(String),
    /// Retrying the same request cannot succeed (validation errors, unknown resources).
    #[error("the provider rejected the request: {0}")]
    Permanent(String),
    /// A single query costs more than the provider ever allows: split it into smaller pages.
    #[error("the query costs {requested} points, more than the provider's maximum of {maximum}")]
    TooCostly { requested: f64, maximum: f64 },
    /// The provider answered with another API version than the one pinned in the configuration
    /// (the pinned one left support): answers may differ silently, so the sync stops until an
    /// admin moves the pin.
    #[error("the provider served API version {served}, not the pinned {pinned}")]
    VersionMismatch { pinned: String, served: String },
    /// A compare-and-swap write found another quantity than the one it was computed from (the
    /// provider's stock changed meanwhile): read it again and recompute; never write blindly.
    #[error("the provider's quantity changed since it was read: {0}")]
    Stale(String),
    /// The answer did not have the documented shape.
    #[error("could not read the provider's answer: {0}")]
    Decode(String),
}

impl ProviderError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::RateLimited { .. } | ProviderError::Transient(_))
    }
}
