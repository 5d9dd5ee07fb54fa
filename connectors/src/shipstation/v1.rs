//! ShipStation's V1 API (`https://ssapi.shipstation.com`, `Authorization: Basic
//! base64(key:secret)`): warehouses, products, orders sent (`POST /orders/createorder`, an upsert
//! by `orderKey`: sending an order again updates it, never makes a second) and the shipments made
//! of them, with their items.
//!
//! V1 writes its dates in ShipStation's own wall-clock time, Pacific, with no offset
//! (`2026-02-03T09:20:00.0000000`): they are read and written through
//! [`crate::time::SHIPSTATION_V1_ZONE`]. Limits: 40 requests a minute (see [`super`]).
//!
//! V1 webhooks are thin and unsigned (`{resource_url, resource_type}`): the receiver fetches the
//! resource with the account's credentials, so [`Client::resource`] fetches only a URL on
//! ShipStation's own API host (the configured one), never one a forged webhook names.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::ProviderError;
use crate::source::{
    Batch, CatalogSource, ExportedOrder, ExternalFulfillment, ExternalLocation, ExternalProduct, ExternalVariant,
    LocationSource, OrderSink, OutboundOrder, Problem, ShipmentSource, ShippedItem, Tracking,
};
use crate::time::SHIPSTATION_V1_ZONE;

pub use super::Limits;
use super::{next_page, page_of, text};

pub const PUBLIC: &str = "https://ssapi.shipstation.com";
/// Rows a page (V1 allows up to 500).
pub const PAGE_SIZE: usize = 500;

#[derive(Clone)]
pub struct Config {
    pub api_key: String,
    pub api_secret: String,
    /// Where the API is instead of [`PUBLIC`] (a mock).
    pub base_url: Option<String>,
    pub page_size: usize,
    pub max_wait: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &self.api_key)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn new(api_key: &str, api_secret: &str) -> Self {
        Config {
            api_key: api_key.to_owned(),
            api_secret: api_secret.to_owned(),
            base_url: None,
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

/// A V1 date: Pacific wall-clock time.
pub fn instant(v: &Value, k: &str) -> Option<DateTime<Utc>> {
    let s = v[k].as_str()?;
    crate::time::local(s, SHIPSTATION_V1_ZONE)
        .or_else(|| crate::time::local(&format!("{s}T00:00:00"), SHIPSTATION_V1_ZONE))
}

/// An instant as V1 writes it (Pacific wall-clock time, seven fractional digits).
pub fn v1_date(t: DateTime<Utc>) -> String {
    use chrono::Timelike as _;
    let local = t.with_timezone(&SHIPSTATION_V1_ZONE);
    format!("{}.{:07}", local.format("%Y-%m-%dT%H:%M:%S"), local.nanosecond() % 1_000_000_000 / 100)
}

impl Client {
    pub fn new(http: reqwest::Client, config: Config, limits: Arc<Limits>) -> Self {
        Client { http, config, limits }
    }

    fn auth(&self) -> String {
        let raw = format!("{}:{}", self.config.api_key, self.config.api_secret);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }

    /// Sends a request within the account's rate window (see [`super::call`]).
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        absent: &[u16],
    ) -> Result<Option<Value>, ProviderError> {
        let auth = ("Authorization", self.auth());
        super::call(&self.http, &self.limits, self.config.max_wait, (auth.0, &auth.1), method, url, body, absent).await
    }

    async fn get(&self, path: &str) -> Result<Value, ProviderError> {
        let url = format!("{}/{}", self.config.base(), path.trim_start_matches('/'));
        Ok(self.call(reqwest::Method::GET, &url, None, &[]).await?.unwrap_or(Value::Null))
    }

    /// Fetches what a V1 webhook's `resource_url` names, only on ShipStation's own API host (the
    /// configured one: scheme, host and port), with shipment items asked for.
    pub async fn resource(&self, resource_url: &str) -> Result<Value, ProviderError> {
        let base = reqwest::Url::parse(&self.config.base()).map_err(|e| ProviderError::Permanent(e.to_string()))?;
        let mut url = reqwest::Url::parse(resource_url)
            .map_err(|_| ProviderError::Permanent(format!("not a URL: {resource_url:?}")))?;
        if url.scheme() != base.scheme()
            || url.host_str() != base.host_str()
            || url.port_or_known_default() != base.port_or_known_default()
        {
            return Err(ProviderError::Permanent(format!("{resource_url} is not on ShipStation's API host")));
        }
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("includeShipmentItems"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .chain([("includeShipmentItems".to_owned(), "true".to_owned())])
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        Ok(self.call(reqwest::Method::GET, url.as_str(), None, &[]).await?.unwrap_or(Value::Null))
    }
}

#[async_trait::async_trait]
impl LocationSource for Client {
    async fn locations(&self, _cursor: Option<&str>) -> Result<Batch<ExternalLocation>, ProviderError> {
        let body = self.get("warehouses").await?;
        let mut batch = Batch::default();
        for w in body.as_array().into_iter().flatten() {
            match (text(w, "warehouseId"), text(w, "warehouseName")) {
                (Some(id), Some(name)) => batch.records.push(ExternalLocation { id, name, active: true }),
                _ => batch.problems.push(Problem::new(
                    text(w, "warehouseId").unwrap_or_default(),
                    "a warehouse without an id or a name",
                )),
            }
        }
        Ok(batch)
    }
}

/// A V1 product as a variant: ShipStation keys items by SKU (its inventory item).
fn variant_of(p: &Value) -> Result<ExternalVariant, Problem> {
    let id = text(p, "productId").ok_or_else(|| Problem::new("", "a product without an id"))?;
    let sku = text(p, "sku").ok_or_else(|| Problem::new(&id, "a product without a SKU"))?;
    let name = text(p, "name").unwrap_or_else(|| sku.clone());
    let price = p["price"].as_f64().and_then(|x| Decimal::try_from(x).ok()).map(|x| x.round_dp(2)).unwrap_or_default();
    Ok(ExternalVariant {
        id: id.clone(),
        sku: sku.clone(),
        title: name.clone(),
        barcode: text(p, "upc"),
        price,
        currency: "USD".into(),
        inventory_item_id: Some(sku),
        product: ExternalProduct {
            handle: format!("shipstation-{id}"),
            id,
            title: name,
            status: if p["active"].as_bool() == Some(false) { "archived" } else { "active" }.into(),
            category: p["productCategory"]["name"].as_str().unwrap_or_default().to_owned(),
        },
        updated_at: instant(p, "modifyDate"),
    })
}

#[async_trait::async_trait]
impl CatalogSource for Client {
    async fn variants(
        &self,
        _since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalVariant>, ProviderError> {
        let page = page_of(cursor)?;
        let size = self.config.page_size.clamp(1, PAGE_SIZE);
        let body = self.get(&format!("products?page={page}&pageSize={size}&sortBy=ProductId&sortDir=ASC")).await?;
        let mut batch = Batch { next: next_page(&body, page), ..Batch::default() };
        for p in body["products"].as_array().into_iter().flatten() {
            match variant_of(p) {
                Ok(v) => batch.records.push(v),
                Err(e) => batch.problems.push(e),
            }
        }
        Ok(batch)
    }

    async fn product_variants(
        &self,
        product_id: &str,
        _cursor: Option<&str>,
    ) -> Result<Batch<ExternalVariant>, ProviderError> {
        let id: u64 = product_id.parse().map_err(|_| ProviderError::Permanent(format!("product id {product_id:?}")))?;
        let p = self.get(&format!("products/{id}")).await?;
        let mut batch = Batch::default();
        match variant_of(&p) {
            Ok(v) => batch.records.push(v),
            Err(e) => batch.problems.push(e),
        }
        Ok(batch)
    }
}

/// Orders sent to ShipStation to ship, upserted by `orderKey` (our order's id): sent again, the
/// same order is updated. Each line's `lineItemKey` is the provider's product id, so its
/// shipments name what they hold by it.
#[async_trait::async_trait]
impl OrderSink for Client {
    async fn export(&self, order: &OutboundOrder) -> Result<ExportedOrder, ProviderError> {
        let to = order.ship_to.clone().unwrap_or(Value::Null);
        let pick = |keys: &[&str]| keys.iter().find_map(|k| text(&to, k));
        let address = json!({
            "name": pick(&["name", "fullName"]).unwrap_or_else(|| format!("Order {}", order.number)),
            "street1": pick(&["address1", "street", "address"]),
            "street2": pick(&["address2"]),
            "city": pick(&["city"]),
            "state": pick(&["state", "province", "region"]),
            "postalCode": pick(&["postalCode", "zip", "zipCode"]),
            "country": pick(&["country", "countryCode"]).unwrap_or_else(|| "US".into()),
        });
        let items: Vec<Value> = order
            .lines
            .iter()
            .map(|l| json!({ "lineItemKey": l.item_id, "sku": l.sku, "name": l.sku, "quantity": l.quantity, "unitPrice": l.price }))
            .collect();
        let mut body = json!({
            "orderNumber": order.number,
            "orderKey": order.key,
            "orderDate": v1_date(order.created_at),
            "orderStatus": "awaiting_shipment",
            "billTo": address,
            "shipTo": address,
            "items": items,
        });
        if let Some(w) = order.location_id.as_ref().and_then(|w| w.parse::<u64>().ok()) {
            body["advancedOptions"] = json!({ "warehouseId": w });
        }
        let url = format!("{}/orders/createorder", self.config.base());
        let made = self.call(reqwest::Method::POST, &url, Some(&body), &[]).await?.unwrap_or(Value::Null);
        let id = text(&made, "orderId").ok_or_else(|| ProviderError::Decode("an order without an orderId".into()))?;
        let line_ids = made["items"].as_array().into_iter().flatten().filter_map(|i| text(i, "lineItemKey")).collect();
        Ok(ExportedOrder { id, line_ids })
    }
}

/// A V1 shipment: its tracking, its warehouse and its items by `lineItemKey` (else SKU); a voided
/// label is `cancelled`.
pub fn shipment_of(s: &Value) -> Option<ExternalFulfillment> {
    let number = text(s, "trackingNumber");
    let company = text(s, "carrierCode");
    let tracking = match (&number, &company) {
        (None, None) => Vec::new(),
        _ => vec![Tracking { company, number, url: None }],
    };
    let items = s["shipmentItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some(ShippedItem {
                variant_id: text(i, "lineItemKey").or_else(|| text(i, "sku"))?,
                quantity: i["quantity"].as_i64().unwrap_or(0),
            })
        })
        .filter(|i| i.quantity > 0)
        .collect();
    Some(ExternalFulfillment {
        id: text(s, "shipmentId")?,
        status: if s["voided"].as_bool() == Some(true) { "cancelled" } else { "success" }.into(),
        created_at: instant(s, "createDate"),
        location_id: text(s, "warehouseId"),
        tracking,
        items,
    })
}

#[async_trait::async_trait]
impl ShipmentSource for Client {
    async fn shipments(&self, order_id: &str) -> Result<Vec<ExternalFulfillment>, ProviderError> {
        let id: u64 = order_id.parse().map_err(|_| ProviderError::Permanent(format!("order id {order_id:?}")))?;
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let size = self.config.page_size.clamp(1, PAGE_SIZE);
            let body = self
                .get(&format!("shipments?orderId={id}&includeShipmentItems=true&page={page}&pageSize={size}"))
                .await?;
            out.extend(body["shipments"].as_array().into_iter().flatten().filter_map(shipment_of));
            match next_page(&body, page) {
                Some(_) => page += 1,
                None => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_dates_are_pacific_wall_clock_time_both_ways() {
        let t: DateTime<Utc> = "2026-02-03T17:20:00Z".parse().expect("instant");
        assert_eq!(v1_date(t), "2026-02-03T09:20:00.0000000");
        let s = json!({ "shipmentId": 1, "createDate": "2026-07-01T05:00:00.1230000", "shipDate": "2026-07-01",
            "trackingNumber": "9400", "carrierCode": "usps", "voided": false, "warehouseId": 17977,
            "shipmentItems": [{ "lineItemKey": "SKU-1", "sku": "SKU-1", "quantity": 2 }, { "lineItemKey": null, "sku": "SKU-2", "quantity": 1 }] });
        let f = shipment_of(&s).expect("shipment");
        assert_eq!(f.created_at, Some("2026-07-01T12:00:00.123Z".parse().expect("instant")), "PDT is UTC-7");
        assert_eq!(
            f.items.iter().map(|i| (i.variant_id.as_str(), i.quantity)).collect::<Vec<_>>(),
            [("SKU-1", 2), ("SKU-2", 1)]
        );
        assert_eq!(f.location_id.as_deref(), Some("17977"));
    }
}
