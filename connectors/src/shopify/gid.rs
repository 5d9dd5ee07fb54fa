//! Shopify global ids: `gid://shopify/{Type}/{id}[?{query}]`, e.g.
//! `gid://shopify/InventoryLevel/523463154?inventory_item_id=808950810`. Ids are kept as the
//! strings Shopify sent (numeric ids exceed 2^53, which floating-point JSON readers round), and a
//! parsed id writes back byte for byte.

use std::fmt;
use std::str::FromStr;

const PREFIX: &str = "gid://shopify/";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gid {
    /// `Product`, `ProductVariant`, `InventoryItem`, `Location`, `Order`, …
    pub kind: String,
    pub id: String,
    /// What follows `?`, verbatim.
    pub query: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Shopify global id: {0:?}")]
pub struct BadGid(pub String);

impl Gid {
    pub fn new(kind: &str, id: u64) -> Self {
        Gid { kind: kind.to_owned(), id: id.to_string(), query: None }
    }

    /// The id as a number, when it is one (legacy REST ids and webhook payloads use these).
    pub fn number(&self) -> Option<u64> {
        self.id.parse().ok()
    }
}

impl FromStr for Gid {
    type Err = BadGid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadGid(s.to_owned());
        let rest = s.strip_prefix(PREFIX).ok_or_else(bad)?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (rest, None),
        };
        let (kind, id) = path.split_once('/').ok_or_else(bad)?;
        let word = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !word(kind) || !word(id) {
            return Err(bad());
        }
        Ok(Gid { kind: kind.to_owned(), id: id.to_owned(), query })
    }
}

impl fmt::Display for Gid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}/{}", self.kind, self.id)?;
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

/// A REST or webhook payload's numeric `id` as an exact string (a JSON number read as an
/// integer, never through `f64`), or a string id as it is.
pub fn rest_id(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_above_two_to_the_53_and_queries_round_trip() {
        let raw = "gid://shopify/InventoryLevel/820982911946154508?inventory_item_id=808950810";
        let g: Gid = raw.parse().expect("gid");
        assert_eq!((g.kind.as_str(), g.number()), ("InventoryLevel", Some(820_982_911_946_154_508)));
        assert_eq!(g.query.as_deref(), Some("inventory_item_id=808950810"));
        assert_eq!(g.to_string(), raw);
        assert_eq!(
            Gid::new("ProductVariant", 820_982_911_946_154_509).to_string(),
            "gid://shopify/ProductVariant/820982911946154509"
        );
        // f64 would have made ...508 into ...512.
        assert_ne!(820_982_911_946_154_508_u64 as f64 as u64, 820_982_911_946_154_508);
        let body: serde_json::Value = serde_json::from_str(r#"{"id":820982911946154508}"#).expect("json");
        assert_eq!(rest_id(&body["id"]).as_deref(), Some("820982911946154508"));
    }

    #[test]
    fn other_strings_are_refused() {
        for bad in
            ["", "gid://shopify/", "gid://shopify/Product", "gid://other/Product/1", "gid://shopify/Pro duct/1", "123"]
        {
            assert_eq!(bad.parse::<Gid>(), Err(BadGid(bad.to_owned())), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_numeric_gid_round_trips(kind in "[A-Z][A-Za-z]{1,20}", id in any::<u64>(), q in proptest::option::of("[a-z_]{1,12}=[0-9]{1,19}")) {
            let g = Gid { kind, id: id.to_string(), query: q };
            let back: Gid = g.to_string().parse().expect("parses");
            prop_assert_eq!(back.number(), Some(id));
            prop_assert_eq!(back, g);
        }
    }
}
