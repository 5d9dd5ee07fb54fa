//! Relay connections as the Admin GraphQL API pages them: `{ edges { cursor node } | nodes,
//! pageInfo { hasNextPage endCursor } }`, at most 250 a page. [`Page::read`] takes one page of a
//! connection out of an answer's `data`; [`Page::next`] is the cursor to ask for next, or `None`
//! at the end (the sync engine stores it as its checkpoint).

use serde_json::Value;

use crate::ProviderError;

/// The most Shopify returns in one page.
pub const MAX_PAGE: usize = 250;

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub nodes: Vec<Value>,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

impl Page {
    /// The connection at `path` (e.g. `["products"]`, `["order", "fulfillmentOrders"]`) of an
    /// answer's `data`.
    pub fn read(data: &Value, path: &[&str]) -> Result<Page, ProviderError> {
        let mut at = data;
        for key in path {
            at = at.get(key).ok_or_else(|| ProviderError::Decode(format!("no {key:?} in the answer")))?;
        }
        let nodes = match (at.get("nodes"), at.get("edges")) {
            (Some(Value::Array(nodes)), _) => nodes.clone(),
            (_, Some(Value::Array(edges))) => edges.iter().filter_map(|e| e.get("node").cloned()).collect(),
            _ => return Err(ProviderError::Decode(format!("{} is not a connection", path.join(".")))),
        };
        let info = at.get("pageInfo");
        let has_next_page = info.and_then(|i| i.get("hasNextPage")).and_then(Value::as_bool).unwrap_or(false);
        let end_cursor = info
            .and_then(|i| i.get("endCursor"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            // Pages through `edges` may carry the cursor on the last edge only.
            .or_else(|| at.get("edges")?.as_array()?.last()?.get("cursor")?.as_str().map(str::to_owned));
        if has_next_page && end_cursor.is_none() {
            return Err(ProviderError::Decode(format!("{} says there is more but gives no cursor", path.join("."))));
        }
        Ok(Page { nodes, has_next_page, end_cursor })
    }

    /// The `after` of the next request, or `None` when this was the last page.
    pub fn next(&self) -> Option<&str> {
        if self.has_next_page { self.end_cursor.as_deref() } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn edges_and_nodes_pages_give_their_nodes_and_the_next_cursor() {
        let data = json!({ "products": {
            "edges": [
                { "cursor": "c1", "node": { "id": "gid://shopify/Product/1", "variants": { "nodes": [{ "sku": "A" }] } } },
                { "cursor": "c2", "node": { "id": "gid://shopify/Product/2", "variants": { "nodes": [] } } }
            ],
            "pageInfo": { "hasNextPage": true, "endCursor": "c2" }
        }});
        let p = Page::read(&data, &["products"]).expect("page");
        assert_eq!(p.nodes.len(), 2);
        assert_eq!(p.nodes[0]["variants"]["nodes"][0]["sku"], "A");
        assert_eq!(p.next(), Some("c2"));
        let last = json!({ "order": { "fulfillmentOrders": { "nodes": [{ "id": "gid://shopify/FulfillmentOrder/5" }], "pageInfo": { "hasNextPage": false, "endCursor": "z" } } } });
        let p = Page::read(&last, &["order", "fulfillmentOrders"]).expect("page");
        assert_eq!((p.nodes.len(), p.next()), (1, None));
        // The cursor from the last edge when pageInfo leaves it out.
        let bare =
            json!({ "locations": { "edges": [{ "cursor": "e9", "node": {} }], "pageInfo": { "hasNextPage": true } } });
        assert_eq!(Page::read(&bare, &["locations"]).expect("page").next(), Some("e9"));
    }

    #[test]
    fn answers_that_are_not_pages_are_decode_errors() {
        assert!(matches!(Page::read(&json!({}), &["products"]), Err(ProviderError::Decode(_))));
        assert!(matches!(
            Page::read(&json!({ "products": { "count": 3 } }), &["products"]),
            Err(ProviderError::Decode(_))
        ));
        let endless = json!({ "products": { "nodes": [], "pageInfo": { "hasNextPage": true } } });
        assert!(matches!(Page::read(&endless, &["products"]), Err(ProviderError::Decode(_))));
    }
}
