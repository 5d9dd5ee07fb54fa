//! The initial import of a large shop through a bulk operation: one `bulkOperationRunQuery` of
//! every variant with its product and its stock levels at every location, polled until Shopify
//! has written the result, then the JSONL file downloaded as a stream and read a group (a variant
//! and its levels) at a time. A download can start at any group boundary (an HTTP range, or
//! skipping when the server ignores ranges), so a sync that stops after a page goes on from there.
//!
//! Bulk queries do not draw on the cost bucket beyond their start and polls, and Shopify runs them
//! while the shop serves other calls: for a first import they are many times faster than pages.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::bulk::{BulkError, Group, Grouper, Resume};
use super::client::{Client, level_of, variant_of};
use crate::ProviderError;
use crate::source::{ExternalLevel, ExternalVariant, Problem};

/// Every variant with its product and its levels at every location (bulk queries page by
/// themselves: no `first`, `edges { node }` only).
pub const IMPORT_QUERY: &str = "{ productVariants { edges { node { id sku title barcode price updatedAt inventoryItem { id inventoryLevels { edges { node { id updatedAt location { id } item { id } quantities(names: [\"available\", \"on_hand\", \"committed\"]) { name quantity } } } } } product { id handle title status productType } } } } }";
const RUN: &str = "mutation Import($query: String!) { bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message code } } }";
macro_rules! operation_fields {
    () => {
        "id status errorCode createdAt completedAt objectCount fileSize url partialDataUrl query"
    };
}
const NODE: &str =
    concat!("query Bulk($id: ID!) { node(id: $id) { ... on BulkOperation { ", operation_fields!(), " } } }");
const CURRENT: &str = concat!("query Current { currentBulkOperation(type: QUERY) { ", operation_fields!(), " } }");
const SIZE: &str = "query Size { shop { currencyCode } productVariantsCount { count precision } }";

/// How long Shopify keeps a result's URL valid.
pub const URL_LIFETIME: chrono::Duration = chrono::Duration::days(7);

/// A bulk operation as Shopify reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkOperation {
    pub id: String,
    /// `CREATED`, `RUNNING`, `COMPLETED`, `CANCELING`, `CANCELED`, `FAILED`, `EXPIRED`.
    pub status: String,
    /// `ACCESS_DENIED`, `INTERNAL_SERVER_ERROR`, `TIMEOUT` when it failed.
    pub error_code: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub object_count: u64,
    /// The result file; `None` when the operation found nothing.
    pub url: Option<String>,
    /// What a failed operation wrote before it stopped.
    pub partial_data_url: Option<String>,
    pub query: Option<String>,
}

impl BulkOperation {
    pub fn is_running(&self) -> bool {
        matches!(self.status.as_str(), "CREATED" | "RUNNING" | "CANCELING")
    }

    fn read(node: &Value) -> Result<BulkOperation, ProviderError> {
        let text = |k: &str| node.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(BulkOperation {
            id: text("id").ok_or_else(|| ProviderError::Decode("a bulk operation without an id".into()))?,
            status: text("status").unwrap_or_default(),
            error_code: text("errorCode"),
            completed_at: text("completedAt").and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.to_utc()),
            // An unsigned 64-bit integer, sent as a string.
            object_count: match node.get("objectCount") {
                Some(Value::String(s)) => s.parse().unwrap_or(0),
                Some(v) => v.as_u64().unwrap_or(0),
                None => 0,
            },
            url: text("url"),
            partial_data_url: text("partialDataUrl"),
            query: text("query"),
        })
    }
}

/// What asking for the import operation gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    Started(BulkOperation),
    /// Another bulk query of this app runs on the shop (one at a time before 2026-01, five
    /// after): try again once it is done.
    Busy(String),
}

/// The shop's size and currency, to choose between a bulk import and pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopSize {
    pub currency: String,
    /// Variants, counted exactly up to Shopify's count limit (at least this many beyond it).
    pub variants: u64,
}

fn same_query(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

impl Client {
    pub async fn shop_size(&self) -> Result<ShopSize, ProviderError> {
        let a = self.query(SIZE, json!({}), 2.0).await?;
        let currency = a.data["shop"]["currencyCode"]
            .as_str()
            .ok_or_else(|| ProviderError::Decode("the answer has no shop.currencyCode".into()))?
            .to_owned();
        let variants = a.data["productVariantsCount"]["count"]
            .as_u64()
            .ok_or_else(|| ProviderError::Decode("the answer has no productVariantsCount".into()))?;
        Ok(ShopSize { currency, variants })
    }

    /// Starts the import query. When Shopify says a bulk query is already running and it is this
    /// import (started by an attempt that stopped before it could note the id), that one is used.
    pub async fn start_import(&self) -> Result<Started, ProviderError> {
        let a = self.query(RUN, json!({ "query": IMPORT_QUERY }), 10.0).await?;
        let result = &a.data["bulkOperationRunQuery"];
        let errors: Vec<&str> =
            result["userErrors"].as_array().into_iter().flatten().filter_map(|e| e["message"].as_str()).collect();
        if errors.is_empty() {
            let op = result.get("bulkOperation").filter(|o| o.is_object()).ok_or_else(|| {
                ProviderError::Decode("bulkOperationRunQuery answered neither an operation nor errors".into())
            })?;
            return BulkOperation::read(op).map(Started::Started);
        }
        let message = errors.join("; ");
        if !message.contains("already in progress") {
            return Err(ProviderError::Permanent(format!("the bulk import was refused: {message}")));
        }
        let current = self.query(CURRENT, json!({}), 2.0).await?;
        match current.data.get("currentBulkOperation").filter(|o| o.is_object()).map(BulkOperation::read) {
            Some(Ok(op)) if op.is_running() && op.query.as_deref().is_some_and(|q| same_query(q, IMPORT_QUERY)) => {
                tracing::info!(operation = %op.id, "the import this sync started before is still running; waiting for it");
                Ok(Started::Started(op))
            }
            _ => Ok(Started::Busy(message)),
        }
    }

    /// The operation as it is now; `None` when the shop no longer knows it.
    pub async fn bulk_operation(&self, id: &str) -> Result<Option<BulkOperation>, ProviderError> {
        let a = self.query(NODE, json!({ "id": id }), 2.0).await?;
        a.data.get("node").filter(|n| n.is_object()).map(BulkOperation::read).transpose()
    }

    /// Downloads a result file from `at` on; `None` when the URL no longer serves it (expired).
    /// The URL is signed for the file alone: the access token is not sent.
    pub async fn download(&self, url: &str, at: Resume, timeout: Duration) -> Result<Option<Download>, ProviderError> {
        let mut request = self.http().get(url).timeout(timeout);
        if at.offset > 0 {
            request = request.header("Range", format!("bytes={}-", at.offset));
        }
        let response = request.send().await.map_err(|e| crate::wire::unsent("the bulk result's address", &e))?;
        let status = response.status().as_u16();
        let skip = match status {
            206 => 0,
            200 => at.offset,
            // Nothing after the offset: the file was read to its end.
            416 => return Ok(Some(Download::finished(at))),
            400 | 401 | 403 | 404 | 410 => {
                tracing::info!(status, "the bulk result's URL no longer serves it");
                return Ok(None);
            }
            429 | 500.. => return Err(ProviderError::Transient(format!("downloading the bulk result: HTTP {status}"))),
            _ => return Err(ProviderError::Permanent(format!("downloading the bulk result: HTTP {status}"))),
        };
        Ok(Some(Download {
            response: Some(response),
            buffer: Vec::new(),
            start: 0,
            skip,
            grouper: Grouper::starting_at(at),
        }))
    }
}

/// A result file being read.
pub struct Download {
    response: Option<reqwest::Response>,
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts.
    start: usize,
    /// Bytes still to drop (the server sent the whole file, not the range asked for).
    skip: u64,
    grouper: Grouper,
}

impl Download {
    fn finished(at: Resume) -> Self {
        Download { response: None, buffer: Vec::new(), start: 0, skip: 0, grouper: Grouper::starting_at(at) }
    }

    /// Whether the whole file has been handed out (the next call answers `None`).
    pub fn at_end(&self) -> bool {
        self.response.is_none() && self.start >= self.buffer.len() && self.grouper.is_empty()
    }

    /// The next group, or a line's problem; `None` at the end of the file.
    pub async fn next(&mut self) -> Result<Option<Result<Group, BulkError>>, ProviderError> {
        loop {
            if let Some(n) = self.buffer[self.start..].iter().position(|b| *b == b'\n') {
                let end = self.start + n + 1;
                let out = self.grouper.push(&self.buffer[self.start..end]);
                self.start = end;
                match out {
                    Some(out) => return Ok(Some(out)),
                    None => continue,
                }
            }
            let Some(response) = self.response.as_mut() else {
                // The end: a last line without its newline, then the last group.
                if self.start < self.buffer.len() {
                    let out = self.grouper.push(&self.buffer[self.start..]);
                    self.start = self.buffer.len();
                    if let Some(out) = out {
                        return Ok(Some(out));
                    }
                }
                return Ok(self.grouper.finish().map(Ok));
            };
            match response.chunk().await {
                Ok(Some(mut chunk)) => {
                    if self.skip > 0 {
                        let drop = (self.skip as usize).min(chunk.len());
                        self.skip -= drop as u64;
                        chunk = chunk.slice(drop..);
                    }
                    self.buffer.drain(..self.start);
                    self.start = 0;
                    self.buffer.extend_from_slice(&chunk);
                }
                Ok(None) => self.response = None,
                Err(e) => return Err(ProviderError::Transient(format!("reading the bulk result: {e}"))),
            }
        }
    }
}

/// A group of the import file as a variant and its levels (each location's level read on its own:
/// a bad level is a problem of that level only).
pub fn import_record(
    group: &Group,
    currency: &str,
) -> (Result<ExternalVariant, Problem>, Vec<Result<ExternalLevel, Problem>>) {
    let variant = variant_of(&group.root.value, currency);
    let levels = group
        .descendants
        .iter()
        .filter(|d| d.id.starts_with("gid://shopify/InventoryLevel/"))
        .map(|d| match d.value.pointer("/location/id").and_then(Value::as_str) {
            Some(location) => level_of(&d.value, location),
            None => Err(Problem::new(d.id.clone(), "the level names no location")),
        })
        .collect();
    (variant, levels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::bulk::Groups;

    #[test]
    fn an_import_group_reads_as_a_variant_with_its_levels() {
        let file = concat!(
            r#"{"id":"gid:\/\/shopify\/ProductVariant\/21","sku":"TEE-S","title":"S","price":"12.50","updatedAt":"2026-02-01T09:00:00Z","inventoryItem":{"id":"gid:\/\/shopify\/InventoryItem\/41"},"product":{"id":"gid:\/\/shopify\/Product\/11","handle":"tee","title":"Tee","status":"ACTIVE","productType":"Shirts"}}"#,
            "\n",
            r#"{"id":"gid:\/\/shopify\/InventoryLevel\/31?inventory_item_id=41","updatedAt":"2026-02-01T09:00:00Z","location":{"id":"gid:\/\/shopify\/Location\/31"},"item":{"id":"gid:\/\/shopify\/InventoryItem\/41"},"quantities":[{"name":"available","quantity":4},{"name":"on_hand","quantity":5},{"name":"committed","quantity":1}],"__parentId":"gid:\/\/shopify\/ProductVariant\/21"}"#,
            "\n",
            r#"{"id":"gid:\/\/shopify\/InventoryLevel\/32?inventory_item_id=41","updatedAt":"2026-02-01T09:00:00Z","item":{"id":"gid:\/\/shopify\/InventoryItem\/41"},"quantities":[],"__parentId":"gid:\/\/shopify\/ProductVariant\/21"}"#,
            "\n"
        );
        let groups: Vec<Group> = Groups::new(file.as_bytes()).collect::<Result<_, _>>().expect("valid");
        let (variant, levels) = import_record(&groups[0], "EUR");
        let variant = variant.expect("variant");
        assert_eq!((variant.sku.as_str(), variant.currency.as_str()), ("TEE-S", "EUR"));
        assert_eq!(variant.price.to_string(), "12.50");
        let first = levels[0].as_ref().expect("level");
        assert_eq!(first.location_id, "gid://shopify/Location/31");
        assert_eq!((first.on_hand, first.available, first.committed), (5, 4, 1));
        assert_eq!(
            levels[1].as_ref().map_err(|p| p.external_id.as_str()),
            Err("gid://shopify/InventoryLevel/32?inventory_item_id=41")
        );
    }

    #[test]
    fn an_operation_reads_with_its_string_count_and_empty_url_as_none() {
        let op = BulkOperation::read(&json!({
            "id": "gid://shopify/BulkOperation/1", "status": "COMPLETED", "errorCode": null,
            "completedAt": "2026-01-28T19:11:09Z", "objectCount": "16", "url": "", "partialDataUrl": null
        }))
        .expect("operation");
        assert_eq!((op.object_count, op.is_running(), op.url), (16, false, None));
        assert!(same_query(IMPORT_QUERY, &IMPORT_QUERY.replace(' ', "\n  ")));
    }
}
