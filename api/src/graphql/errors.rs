//! The two error channels: top-level errors with `extensions.code`, and `userErrors` in payloads.

use async_graphql::{Enum, ErrorExtensions, SimpleObject};

/// Errors that end a field with a top-level GraphQL error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("not allowed for this principal")]
    Forbidden,
    #[error("{0}")]
    BadUserInput(String),
    /// Logged with its detail; the client sees only "internal error".
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::Forbidden => "FORBIDDEN",
            ApiError::BadUserInput(_) => "BAD_USER_INPUT",
            ApiError::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        let detail = err.to_string();
        tracing::error!(error = %detail, "internal error");
        ApiError::Internal(detail)
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        ApiError::internal(err)
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, e| e.set("code", self.code()))
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        err.extend()
    }
}

/// Why a mutation did not do what was asked. Expected failures, answered with HTTP 200.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum UserErrorCode {
    /// The object does not exist (or belongs to another tenant: the two are indistinguishable).
    NotFound,
    /// A value is malformed or out of range.
    Invalid,
    /// A unique value (SKU, handle, e-mail, code) is used by another object.
    Taken,
    /// Not enough available stock (on hand minus reserved).
    InsufficientStock,
    /// The idempotency key was used before with a different request.
    IdempotencyKeyReused,
    /// The object's state does not allow this change.
    InvalidState,
    /// Too much of the tenant's work is waiting to run; try again later (backpressure).
    Busy,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct UserError {
    /// Path to the input field at fault, e.g. `["input", "lines", "0", "sku"]`.
    pub field: Option<Vec<String>>,
    pub message: String,
    pub code: UserErrorCode,
}

impl UserError {
    pub fn new(field: &[&str], code: UserErrorCode, message: impl Into<String>) -> Self {
        Self { field: Some(field.iter().map(|s| (*s).to_owned()).collect()), message: message.into(), code }
    }

    pub fn not_found(field: &[&str], what: &str) -> Self {
        Self::new(field, UserErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn invalid(field: &[&str], message: impl Into<String>) -> Self {
        Self::new(field, UserErrorCode::Invalid, message)
    }
}

/// What a service returns: the result, or the user errors that prevented it.
pub type Outcome<T> = Result<T, Vec<UserError>>;
