//! Relay cursor connections over keyset pagination: `first/after` or `last/before`, 1..=250 a page.

use async_graphql::OutputType;
use async_graphql::connection::{Connection, Edge};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::db::repo::{Page, PageArgs};

pub const MAX_PAGE: i32 = 250;

/// The four Relay arguments as a resolver receives them.
#[derive(Debug, Default, Clone)]
pub struct Window {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

fn decode_cursor<K: DeserializeOwned>(raw: &str, arg: &str) -> Result<K, ApiError> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::BadUserInput(format!("\"{arg}\" is not a valid cursor")))
}

impl Window {
    pub fn new(first: Option<i32>, after: Option<String>, last: Option<i32>, before: Option<String>) -> Self {
        Self { first, after, last, before }
    }

    /// Validates the window into keyset arguments.
    pub fn args<K: DeserializeOwned>(&self) -> Result<PageArgs<K>, ApiError> {
        let (limit, backward) = match (self.first, self.last) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadUserInput("pass either \"first\" or \"last\", not both".into()));
            }
            (None, None) => {
                return Err(ApiError::BadUserInput("pass \"first\" or \"last\" to page through this list".into()));
            }
            (Some(n), None) => (n, false),
            (None, Some(n)) => (n, true),
        };
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::BadUserInput(format!(
                "\"{}\" must be between 1 and {MAX_PAGE}",
                if backward { "last" } else { "first" }
            )));
        }
        Ok(PageArgs {
            after: self.after.as_deref().map(|c| decode_cursor(c, "after")).transpose()?,
            before: self.before.as_deref().map(|c| decode_cursor(c, "before")).transpose()?,
            limit: limit as u64,
            backward,
        })
    }
}

/// Turns a page of rows into a connection, with each row's key as its cursor.
pub fn connection<M, T, K>(page: Page<M>, key: impl Fn(&M) -> K, node: impl Fn(M) -> T) -> Connection<String, T>
where
    T: OutputType,
    K: Serialize,
{
    let mut c = Connection::new(page.has_previous, page.has_next);
    c.edges.extend(page.rows.into_iter().map(|m| Edge::new(encode_cursor(&key(&m)), node(m))));
    c
}
