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
