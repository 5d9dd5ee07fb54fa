//! ShipStation's V2 API (`https://api.shipstation.com/v2/…`, header `api-key`, a key of its own):
//! the inventory of the warehouses orders are sent to through [`super::v1`].
//!
//! Stock is kept per inventory location (`inventory_location_id`, inside an inventory
//! warehouse); each V1 warehouse the connector maps is given the inventory location that holds
//! its stock ([`Config::locations`]), so levels are read and written under the V1 warehouse id the
//! rest of the connector uses, and items by SKU. V2 has no idempotency key for inventory
//! changes, so this client writes only absolute on-hand quantities (`transaction_type: adjust`),
//! compare-and-swap from the level it reads first ([`InventorySink::set`]): a retry after a lost
//! answer finds the quantity already set and sends nothing; an `increment` would count twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Limits, next_page, page_of, text};
use crate::ProviderError;
use crate::source::{Batch, ExternalLevel, InventorySink, InventorySource, Problem};

pub const PUBLIC: &str = "https://api.shipstation.com";
/// Rows a page.
pub const PAGE_SIZE: usize = 500;

#[derive(Clone)]
pub struct Config {
    pub api_key: String,
    /// Where the API is instead of [`PUBLIC`] (a mock).
    pub base_url: Option<String>,
    /// The inventory location holding each mapped V1 warehouse's stock: V1 warehouse id →
    /// `inventory_location_id`.
    pub locations: HashMap<String, String>,
    pub page_size: usize,
    pub max_wait: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("base_url", &self.base_url)
            .field("locations", &self.locations)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn new(api_key: &str, locations: HashMap<String, String>) -> Self {
        Config {
            api_key: api_key.to_owned(),
            base_url: None,
            locations,
            page_size: PAGE_SIZE,
            max_wait: Duration::from_secs(120),
        }
    }

    fn base(&self) -> String {
        self.base_url.as_deref().unwrap_or(PUBLIC).trim_end_matches('/').to_owned()
    }
}

pub struct Client {
    http: reqwest::Client,
    config: Config,
    limits: Arc<Limits>,
}

impl Client {
    pub fn new(http: reqwest::Client, config: Config, limits: Arc<Limits>) -> Self {
        Client { http, config, limits }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ProviderError> {
        let url = format!("{}/v2/{path}", self.config.base());
        let url = reqwest::Url::parse_with_params(&url, query).map_err(|e| ProviderError::Permanent(e.to_string()))?;
        let url = url.as_str().trim_end_matches('?');
        let auth = ("api-key", self.config.api_key.as_str());
        let answer = super::call(&self.http, &self.limits, self.config.max_wait, auth, method, url, body, &[]).await?;
        Ok(answer.unwrap_or(Value::Null))
    }

    /// The inventory location of V1 warehouse `warehouse`.
    fn inventory_location(&self, warehouse: &str) -> Result<&str, ProviderError> {
        self.config.locations.get(warehouse).map(String::as_str).ok_or_else(|| {
            ProviderError::Permanent(format!("warehouse {warehouse} has no V2 inventory location configured"))
        })
    }
}

/// A V2 inventory row as a level of V1 warehouse `warehouse`; the item is the SKU.
fn level_of(row: &Value, warehouse: &str) -> Result<ExternalLevel, Problem> {
    let sku = text(row, "sku").ok_or_else(|| Problem::new("", "an inventory row without a SKU"))?;
    let count =
        |k: &str| row[k].as_i64().ok_or_else(|| Problem::new(&sku, format!("an inventory row without a whole {k}")));
    let location = text(row, "inventory_location_id").unwrap_or_default();
    Ok(ExternalLevel {
        id: format!("{location}:{sku}"),
        inventory_item_id: sku.clone(),
        location_id: warehouse.to_owned(),
        on_hand: count("on_hand")?,
        available: count("available")?,
        committed: count("allocated")?,
        updated_at: None,
    })
}

#[async_trait::async_trait]
impl InventorySource for Client {
    async fn levels(
        &self,
        warehouse: &str,
        _since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalLevel>, ProviderError> {
        let location = self.inventory_location(warehouse)?;
        let page = page_of(cursor)?;
        let size = self.config.page_size.clamp(1, PAGE_SIZE);
        let (page_s, size_s) = (page.to_string(), size.to_string());
        let query =
            [("inventory_location_id", location), ("group_by", "location"), ("page", &page_s), ("limit", &size_s)];
        let body = self.call(reqwest::Method::GET, "inventory", &query, None).await?;
        let mut batch = Batch { next: next_page(&body, page), ..Batch::default() };
        for row in body["inventory"].as_array().into_iter().flatten() {
            match level_of(row, warehouse) {
                Ok(l) => batch.records.push(l),
                Err(p) => batch.problems.push(p),
            }
        }
        Ok(batch)
    }

    async fn level(&self, sku: &str, warehouse: &str) -> Result<Option<ExternalLevel>, ProviderError> {
        let location = self.inventory_location(warehouse)?;
        let query = [("sku", sku), ("inventory_location_id", location), ("group_by", "location")];
        let body = self.call(reqwest::Method::GET, "inventory", &query, None).await?;
        let row = body["inventory"].as_array().into_iter().flatten().find(|r| {
            r["sku"].as_str() == Some(sku) && r["inventory_location_id"].as_str().is_none_or(|l| l == location)
        });
        row.map(|r| level_of(r, warehouse).map_err(|p| ProviderError::Decode(p.message))).transpose()
    }
}

#[async_trait::async_trait]
impl InventorySink for Client {
    fn keyed(&self) -> bool {
        false
    }

    /// Refused: V2 takes no idempotency key, so a delta could count twice on a retry. The engine
    /// sends deltas as [`InventorySink::set`] (see [`InventorySink::keyed`]).
    async fn adjust(&self, _: &str, _: &str, _: &str, _: i64, _: &str) -> Result<(), ProviderError> {
        Err(ProviderError::Permanent("ShipStation's inventory takes absolute quantities only".into()))
    }

    /// Reads the level; when it already is `on_hand` (a retry after a lost answer, or nothing to
    /// change) sends nothing, when it is not `expected` answers [`ProviderError::Stale`], and
    /// otherwise sets it with an `adjust` transaction.
    async fn set(
        &self,
        key: &str,
        sku: &str,
        warehouse: &str,
        expected: i64,
        on_hand: i64,
        reference: &str,
    ) -> Result<(), ProviderError> {
        let now = self.level(sku, warehouse).await?.map_or(0, |l| l.on_hand);
        if now == on_hand {
            return Ok(());
        }
        if now != expected {
            return Err(ProviderError::Stale(format!("{sku} has {now} on hand at {warehouse}, not {expected}")));
        }
        let body = json!({
            "transaction_type": "adjust",
            "inventory_location_id": self.inventory_location(warehouse)?,
            "sku": sku,
            "quantity": on_hand,
            "condition": "sellable",
            "reason": "Quartermaster",
            "notes": format!("{reference} ({key})"),
        });
        self.call(reqwest::Method::POST, "inventory", &[], Some(&body)).await.map(drop)
    }
}
