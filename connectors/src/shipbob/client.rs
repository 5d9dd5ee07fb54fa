//! A client of ShipBob's dated API (`2026-01`) for one merchant: its fulfilment centres, products
//! and variants, stock per fulfilment centre, orders sent to it and the shipments it made of
//! them, as the capability traits of [`crate::source`].
//!
//! ShipBob owns the stock in its warehouses: it is read, never set (inbound stock goes as
//! receiving orders). Auth is a personal access token (`Authorization: Bearer`); writes carry the
//! `shipbob_channel_id` header. Paging: products and stock pages carry the URL of the next page
//! (`next`), which the cursor keeps as a path under the API's own address (a `next` pointing
//! anywhere else is refused: the client never follows a provider's answer off its host). Limits:
//! 150 requests a minute a user; a `429` says how many seconds to wait in `x-retry-after`, which
//! is waited out within [`Config::max_wait`]. Orders are idempotent by `reference_id` (unique per
//! channel): a `422` for a duplicate is answered by looking the order up by it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::ProviderError;
use crate::source::{
    Batch, CatalogSource, ExportedOrder, ExternalFulfillment, ExternalLevel, ExternalLocation, ExternalProduct,
    ExternalReturn, ExternalReturnLine, ExternalVariant, InboundOrder, InboundSink, InboundStatus, InventorySource,
    ItemUnits, LocationSource, OrderSink, OutboundOrder, OutboundReturn, Problem, ReturnSink, ShipmentSource,
    ShippedItem, Tracking,
};
use crate::wire::{text, unsent};

pub const API_VERSION: &str = "2026-01";
/// Rows a page (ShipBob allows 1 to 250).
pub const PAGE_SIZE: usize = 250;

#[derive(Debug, Clone)]
pub struct Config {
    pub token: String,
    /// The channel orders are sent in (`GET /channel`).
    pub channel_id: Option<String>,
    /// Where the API is instead of `https://api.shipbob.com` (a mock, the sandbox).
    pub base_url: Option<String>,
    /// The shipping method orders are sent with.
    pub shipping_method: String,
    pub page_size: usize,
    /// The longest one call waits for the rate limit in all.
    pub max_wait: Duration,
}

impl Config {
    pub fn new(token: &str) -> Self {
        Config {
            token: token.to_owned(),
            channel_id: None,
            base_url: None,
            shipping_method: "Standard".into(),
            page_size: PAGE_SIZE,
            max_wait: Duration::from_secs(120),
        }
    }

    fn origin(&self) -> String {
        self.base_url.as_deref().unwrap_or("https://api.shipbob.com").trim_end_matches('/').to_owned()
    }
}

/// One merchant's calls in flight, shared by its clients in this process.
#[derive(Debug)]
pub struct Limits {
    calls: Semaphore,
}

impl Limits {
    pub fn new(concurrency: usize) -> Self {
        Limits { calls: Semaphore::new(concurrency.max(1)) }
    }
}

pub struct Client {
    http: reqwest::Client,
    config: Config,
    limits: Arc<Limits>,
}

/// An answer: status and body.
struct Answer {
    status: u16,
    body: Value,
}

impl Client {
    pub fn new(http: reqwest::Client, config: Config, limits: Arc<Limits>) -> Self {
        Client { http, config, limits }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{API_VERSION}/{}", self.config.origin(), path.trim_start_matches('/'))
    }

    /// The path (under the API's address) of a `next` URL, or why it cannot be followed.
    fn relative(&self, next: &str) -> Result<String, ProviderError> {
        let origin = self.config.origin();
        let path = next.strip_prefix(&origin).unwrap_or(next);
        if !path.starts_with('/') || path.starts_with("//") {
            return Err(ProviderError::Permanent(format!("ShipBob's next page {next:?} is not under {origin}")));
        }
        Ok(path.to_owned())
    }

    /// Sends a request, waiting out 429s within the configured time; the answer when ShipBob took
    /// it or when its status is in `answers`.
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        answers: &[u16],
    ) -> Result<Answer, ProviderError> {
        let deadline = Instant::now() + self.config.max_wait;
        let mut transient = 0;
        loop {
            let sent = {
                let _turn = self.limits.calls.acquire().await.map_err(|e| ProviderError::Transient(e.to_string()))?;
                let mut request = self.http.request(method.clone(), url).bearer_auth(&self.config.token);
                if let Some(channel) = &self.config.channel_id {
                    request = request.header("shipbob_channel_id", channel);
                }
                if let Some(b) = body {
                    request = request.json(b);
                }
                request.send().await
            };
            // A write may have been made: the caller finds out (orders by reference id).
            let response = sent.map_err(|e| unsent(url, &e))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("x-retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)));
            let bytes = response.bytes().await.map_err(|e| ProviderError::Transient(e.to_string()))?;
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let wait = match status {
                s if (200..300).contains(&s) || answers.contains(&s) => return Ok(Answer { status, body }),
                429 => retry_after.unwrap_or(Duration::from_secs(60)),
                401 | 403 => return Err(ProviderError::Unauthorized(format!("HTTP {status}: {}", message(&body)))),
                500..=599 if method == reqwest::Method::GET && transient < 3 => {
                    transient += 1;
                    Duration::from_millis(200 << transient)
                }
                500..=599 => return Err(ProviderError::Transient(format!("HTTP {status}: {}", message(&body)))),
                _ => return Err(ProviderError::Permanent(format!("HTTP {status}: {}", message(&body)))),
            };
            if Instant::now() + wait > deadline {
                return Err(ProviderError::RateLimited { retry_after: wait });
            }
            tracing::info!(url, wait_ms = wait.as_millis() as u64, status, "waiting for ShipBob");
            tokio::time::sleep(wait).await;
        }
    }

    async fn get(&self, url: &str) -> Result<Value, ProviderError> {
        Ok(self.call(reqwest::Method::GET, url, None, &[]).await?.body)
    }

    /// A page of a cursor-paged list: the first from `first` (a path with its query), the next
    /// from the cursor; its items and the cursor after it.
    async fn page(&self, first: &str, cursor: Option<&str>) -> Result<(Vec<Value>, Option<String>), ProviderError> {
        let url = match cursor {
            Some(c) => format!("{}{}", self.config.origin(), self.relative(c)?),
            None => self.url(first),
        };
        let body = self.get(&url).await?;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        let next = match body["next"].as_str().filter(|n| !n.is_empty()) {
            Some(n) if !items.is_empty() => Some(self.relative(n)?),
            _ => None,
        };
        Ok((items, next))
    }
}

/// The errors ShipBob gives (`{"errors": [...]}`, a `title`, or a string).
fn message(body: &Value) -> String {
    match body {
        Value::Object(o) if o.contains_key("errors") => o["errors"].to_string(),
        Value::Object(o) if o.contains_key("title") => o["title"].as_str().unwrap_or_default().to_owned(),
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn quantity(v: &Value, k: &str) -> i64 {
    v[k].as_i64().unwrap_or(0)
}

fn instant(v: &Value, k: &str) -> Option<DateTime<Utc>> {
    v[k].as_str().and_then(crate::time::rfc3339)
}

#[async_trait::async_trait]
impl LocationSource for Client {
    async fn locations(&self, _cursor: Option<&str>) -> Result<Batch<ExternalLocation>, ProviderError> {
        let body = self.get(&self.url("location?IncludeInactive=true")).await?;
        let mut batch = Batch::default();
        for l in body.as_array().into_iter().flatten() {
            match (text(l, "id"), text(l, "name")) {
                (Some(id), Some(name)) => {
                    batch.records.push(ExternalLocation { id, name, active: l["is_active"].as_bool().unwrap_or(true) })
                }
                _ => batch
                    .problems
                    .push(Problem::new(text(l, "id").unwrap_or_default(), "a location without an id or a name")),
            }
        }
        Ok(batch)
    }
}

/// A product's variants; a variant without an id, a SKU or its inventory item is a problem.
fn variants_of(product: &Value, batch: &mut Batch<ExternalVariant>) {
    let Some(product_id) = text(product, "id") else {
        batch.problems.push(Problem::new("", "a product without an id"));
        return;
    };
    let name = text(product, "name").unwrap_or_else(|| product_id.clone());
    let updated = instant(product, "updated_on");
    for v in product["variants"].as_array().into_iter().flatten() {
        let id = text(v, "id").unwrap_or_default();
        let (Some(sku), Some(item)) = (text(v, "sku"), text(&v["inventory"], "inventory_id")) else {
            batch.problems.push(Problem::new(&id, "a variant without a SKU or an inventory item"));
            continue;
        };
        let barcode = text(v, "upc").or_else(|| v["barcodes"].get(0).and_then(|b| text(b, "value")));
        let price = v["channel_metadata"]
            .get(0)
            .and_then(|m| m["price"].as_f64())
            .and_then(|p| Decimal::try_from(p).ok())
            .map(|p| p.round_dp(2))
            .unwrap_or_default();
        let currency = v["channel_metadata"].get(0).and_then(|m| text(m, "currency")).unwrap_or_else(|| "USD".into());
        batch.records.push(ExternalVariant {
            id,
            sku,
            title: text(v, "name").unwrap_or_else(|| name.clone()),
            barcode,
            price,
            currency,
            inventory_item_id: Some(item),
            product: ExternalProduct {
                id: product_id.clone(),
                handle: format!("shipbob-{product_id}"),
                title: name.clone(),
                status: if text(v, "status").as_deref() == Some("Inactive") { "archived" } else { "active" }.into(),
                category: product["taxonomy"]["name"].as_str().unwrap_or_default().to_owned(),
            },
            updated_at: instant(v, "updated_on").or(updated),
        });
    }
}

#[async_trait::async_trait]
impl CatalogSource for Client {
    async fn variants(
        &self,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalVariant>, ProviderError> {
        let mut first =
            format!("product?PageSize={}&SortBy=Id&SortOrder=ASC", self.config.page_size.clamp(1, PAGE_SIZE));
        if let Some(t) = since {
            first.push_str(&format!("&LastUpdatedTimestamp={}", t.format("%Y-%m-%dT%H:%M:%SZ")));
        }
        let (items, next) = self.page(&first, cursor).await?;
        let mut batch = Batch { next, ..Batch::default() };
        for p in &items {
            variants_of(p, &mut batch);
        }
        Ok(batch)
    }

    async fn product_variants(
        &self,
        product_id: &str,
        _cursor: Option<&str>,
    ) -> Result<Batch<ExternalVariant>, ProviderError> {
        let id: u64 = product_id.parse().map_err(|_| ProviderError::Permanent(format!("product id {product_id:?}")))?;
        let product = self.get(&self.url(&format!("product/{id}"))).await?;
        let mut batch = Batch::default();
        variants_of(&product, &mut batch);
        Ok(batch)
    }
}

fn level_of(item: &str, l: &Value) -> Option<ExternalLevel> {
    let location = text(l, "location_id")?;
    Some(ExternalLevel {
        id: format!("{item}:{location}"),
        inventory_item_id: item.to_owned(),
        location_id: location,
        on_hand: quantity(l, "on_hand_quantity"),
        available: quantity(l, "fulfillable_quantity"),
        committed: quantity(l, "committed_quantity"),
        updated_at: None,
    })
}

#[async_trait::async_trait]
impl InventorySource for Client {
    /// Stock at one fulfilment centre, whole on every read (ShipBob's levels carry no change time).
    async fn levels(
        &self,
        location_id: &str,
        _since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalLevel>, ProviderError> {
        let loc: u64 =
            location_id.parse().map_err(|_| ProviderError::Permanent(format!("location id {location_id:?}")))?;
        let first = format!(
            "inventory-level/locations?LocationId={loc}&PageSize={}",
            self.config.page_size.clamp(1, PAGE_SIZE)
        );
        let (items, next) = self.page(&first, cursor).await?;
        let mut batch = Batch { next, ..Batch::default() };
        for i in &items {
            let Some(item) = text(i, "inventory_id") else {
                batch.problems.push(Problem::new("", "a stock row without an inventory id"));
                continue;
            };
            let here = i["locations"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|l| text(l, "location_id").as_deref() == Some(location_id));
            batch.records.extend(here.filter_map(|l| level_of(&item, l)));
        }
        Ok(batch)
    }

    async fn level(&self, inventory_item_id: &str, location_id: &str) -> Result<Option<ExternalLevel>, ProviderError> {
        let item: u64 = inventory_item_id
            .parse()
            .map_err(|_| ProviderError::Permanent(format!("inventory id {inventory_item_id:?}")))?;
        let answer = self
            .call(reqwest::Method::GET, &self.url(&format!("inventory-level/{item}/locations")), None, &[404])
            .await?;
        if answer.status == 404 {
            return Ok(None);
        }
        let locations = answer.body["locations"].as_array().cloned().unwrap_or_default();
        Ok(locations
            .iter()
            .filter(|l| text(l, "location_id").as_deref() == Some(location_id))
            .find_map(|l| level_of(inventory_item_id, l)))
    }
}

/// Our order's `shipTo` as ShipBob's recipient.
fn recipient(ship_to: Option<&Value>, number: &str) -> Value {
    let empty = Value::Null;
    let to = ship_to.unwrap_or(&empty);
    let pick = |keys: &[&str]| keys.iter().find_map(|k| text(to, k));
    json!({
        "name": pick(&["name", "fullName"]).unwrap_or_else(|| format!("Order {number}")),
        "email": pick(&["email"]),
        "phone_number": pick(&["phone", "phoneNumber"]),
        "address": {
            "address1": pick(&["address1", "street", "address"]).unwrap_or_default(),
            "address2": pick(&["address2"]),
            "city": pick(&["city"]).unwrap_or_default(),
            "state": pick(&["state", "province", "region"]),
            "zip_code": pick(&["postalCode", "zip", "zipCode"]),
            "country": pick(&["country", "countryCode"]).unwrap_or_else(|| "US".into()),
        },
    })
}

impl Client {
    /// The order sent with `reference_id`, as ShipBob has it.
    async fn order_by_reference(&self, reference: &str) -> Result<Option<Value>, ProviderError> {
        let body = self.get(&self.query_url("order", "ReferenceIds", reference)?).await?;
        Ok(body.as_array().and_then(|a| a.iter().find(|o| o["reference_id"] == reference)).cloned())
    }
}

fn exported(order: &Value) -> Result<ExportedOrder, ProviderError> {
    let id = text(order, "id").ok_or_else(|| ProviderError::Decode("an order without an id".into()))?;
    let line_ids = order["products"].as_array().into_iter().flatten().filter_map(|p| text(p, "id")).collect();
    Ok(ExportedOrder { id, line_ids })
}

/// Orders sent to ShipBob to ship: `reference_id` is our order's id, unique per channel, so a
/// retry or a second send finds the first order (a `422` for the duplicate, or a lost answer)
/// instead of making another. Lines name ShipBob's variants by id.
#[async_trait::async_trait]
impl OrderSink for Client {
    async fn export(&self, order: &OutboundOrder) -> Result<ExportedOrder, ProviderError> {
        if self.config.channel_id.is_none() {
            return Err(ProviderError::Permanent("no ShipBob channel is configured for orders".into()));
        }
        if let Some(found) = self.order_by_reference(&order.key).await? {
            return exported(&found);
        }
        let products: Vec<Value> = order
            .lines
            .iter()
            .map(|l| json!({ "id": l.item_id.parse::<u64>().ok(), "quantity": l.quantity, "unit_price": l.price }))
            .collect();
        let mut body = json!({
            "reference_id": order.key,
            "order_number": order.number,
            "type": "DTC",
            "shipping_method": self.config.shipping_method,
            "purchase_date": order.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "recipient": recipient(order.ship_to.as_ref(), &order.number),
            "products": products,
        });
        if let Some(location) = order.location_id.as_ref().and_then(|l| l.parse::<u64>().ok()) {
            body["location_id"] = json!(location);
        }
        let answer = self.call(reqwest::Method::POST, &self.url("order"), Some(&body), &[422]).await?;
        if answer.status != 422 {
            return exported(&answer.body);
        }
        // A duplicate reference: the order an earlier attempt made.
        match self.order_by_reference(&order.key).await? {
            Some(found) => exported(&found),
            None => Err(ProviderError::Permanent(format!("ShipBob refused the order: {}", message(&answer.body)))),
        }
    }
}

impl Client {
    /// `path` with one query parameter, escaped.
    fn query_url(&self, path: &str, key: &str, value: &str) -> Result<String, ProviderError> {
        reqwest::Url::parse_with_params(&self.url(path), [(key, value)])
            .map(String::from)
            .map_err(|e| ProviderError::Permanent(e.to_string()))
    }

    /// The return an earlier attempt made with reference `reference`, if any.
    async fn return_by_reference(&self, reference: &str) -> Result<Option<Value>, ProviderError> {
        let body = self.get(&self.query_url("return", "ReferenceIds", reference)?).await?;
        let rows = body.as_array().or_else(|| body["items"].as_array());
        Ok(rows.into_iter().flatten().find(|r| r["reference_id"].as_str() == Some(reference)).cloned())
    }

    /// Return `id` as ShipBob has it now: its status (`awaitingarrival`, `arrived`, `processing`,
    /// `completed`, `cancelled`) and its units by inventory item; `None` when there is none.
    pub async fn return_of(&self, id: &str) -> Result<Option<ExternalReturn>, ProviderError> {
        let id: u64 = id.parse().map_err(|_| ProviderError::Permanent(format!("return id {id:?}")))?;
        let answer = self.call(reqwest::Method::GET, &self.url(&format!("return/{id}")), None, &[404]).await?;
        Ok((answer.status != 404).then(|| return_of(&answer.body)).flatten())
    }
}

/// A ShipBob return: its status in lower case, its lines by inventory item.
pub fn return_of(r: &Value) -> Option<ExternalReturn> {
    let lines = r["inventory"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some(ExternalReturnLine {
                id: text(i, "id")?,
                line_id: None,
                quantity: quantity(i, "quantity"),
                reason: None,
            })
        })
        .collect();
    Some(ExternalReturn {
        id: text(r, "id")?,
        name: text(r, "reference_id").unwrap_or_default(),
        status: r["status"].as_str().unwrap_or_default().to_ascii_lowercase(),
        lines,
    })
}

/// The shipment of `shipments` (an order's, as ShipBob lists them) the returned `items` went out
/// in: the latest holding all of them, else the latest holding the first.
fn shipped_in(shipments: &[Value], items: &[ItemUnits]) -> Option<u64> {
    let holds = |s: &Value, item: &str| {
        s["products"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["inventory_items"].as_array().into_iter().flatten())
            .any(|i| text(i, "id").as_deref() == Some(item))
    };
    let latest = |keep: &dyn Fn(&Value) -> bool| {
        shipments
            .iter()
            .filter(|s| keep(s))
            .max_by_key(|s| (instant(&s["tracking"], "shipping_date"), s["id"].as_u64()))
            .and_then(|s| s["id"].as_u64())
    };
    latest(&|s| items.iter().all(|i| holds(s, &i.inventory_item_id)))
        .or_else(|| latest(&|s| items.first().is_some_and(|i| holds(s, &i.inventory_item_id))))
}

/// Returns announced to ShipBob's warehouse (`POST /return`, keyed by `reference_id` = our return's
/// id: an earlier attempt's return is found by it, never a second made), against the shipment
/// of the order the units went out in; ShipBob reports their arrival itself.
#[async_trait::async_trait]
impl ReturnSink for Client {
    async fn authorize(&self, order_id: &str, ret: &OutboundReturn) -> Result<String, ProviderError> {
        if self.config.channel_id.is_none() {
            return Err(ProviderError::Permanent("no ShipBob channel is configured for returns".into()));
        }
        if let Some(found) = self.return_by_reference(&ret.key).await? {
            return text(&found, "id").ok_or_else(|| ProviderError::Decode("a return without an id".into()));
        }
        let order: u64 = order_id.parse().map_err(|_| ProviderError::Permanent(format!("order id {order_id:?}")))?;
        let answer =
            self.call(reqwest::Method::GET, &self.url(&format!("order/{order}/shipment")), None, &[404]).await?;
        let shipments = answer.body.as_array().cloned().unwrap_or_default();
        let Some(shipment) = shipped_in(&shipments, &ret.items) else {
            return Err(ProviderError::Permanent("no ShipBob shipment of the order holds the returned units".into()));
        };
        let inventory: Vec<Value> = ret
            .items
            .iter()
            .map(|i| {
                json!({ "id": i.inventory_item_id.parse::<u64>().ok(), "quantity": i.quantity, "requested_action": "Default" })
            })
            .collect();
        let body = json!({ "reference_id": ret.key, "original_shipment_id": shipment, "inventory": inventory });
        let answer = self.call(reqwest::Method::POST, &self.url("return"), Some(&body), &[422]).await?;
        if answer.status != 422 {
            return text(&answer.body, "id").ok_or_else(|| ProviderError::Decode("a return without an id".into()));
        }
        match self.return_by_reference(&ret.key).await? {
            Some(found) => text(&found, "id").ok_or_else(|| ProviderError::Decode("a return without an id".into())),
            None => Err(ProviderError::Permanent(format!("ShipBob refused the return: {}", message(&answer.body)))),
        }
    }

    fn receives_itself(&self) -> bool {
        true
    }

    async fn receive(&self, _authorization_id: &str, _ret: &OutboundReturn) -> Result<String, ProviderError> {
        Err(ProviderError::Permanent("ShipBob's warehouse receives returns itself".into()))
    }
}

/// Receiving orders (WROs): goods on their way to a fulfilment centre, announced with `POST
/// /receiving` (one box holding everything, its `purchase_order_number` our reference: an earlier
/// attempt's order is found by it, never a second made), and read back with what arrived.
#[async_trait::async_trait]
impl InboundSink for Client {
    async fn expect(&self, order: &InboundOrder) -> Result<String, ProviderError> {
        let body = self.get(&self.query_url("receiving", "PurchaseOrderNumbers", &order.reference)?).await?;
        let rows = body.as_array().or_else(|| body["items"].as_array());
        let found = rows.into_iter().flatten().find(|r| r["purchase_order_number"].as_str() == Some(&order.reference));
        if let Some(found) = found {
            return text(found, "id").ok_or_else(|| ProviderError::Decode("a receiving order without an id".into()));
        }
        let centre: u64 = order
            .location_id
            .parse()
            .map_err(|_| ProviderError::Permanent(format!("fulfilment centre {:?}", order.location_id)))?;
        let items: Vec<Value> = order
            .items
            .iter()
            .map(|i| json!({ "inventory_id": i.inventory_item_id.parse::<u64>().ok(), "quantity": i.quantity }))
            .collect();
        let body = json!({
            "fulfillment_center": { "id": centre },
            "package_type": "Package",
            "box_packaging_type": "EverythingInOneBox",
            "boxes": [{ "tracking_number": order.reference, "box_items": items }],
            "expected_arrival_date": order.expected_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "purchase_order_number": order.reference,
        });
        let answer = self.call(reqwest::Method::POST, &self.url("receiving"), Some(&body), &[]).await?;
        text(&answer.body, "id").ok_or_else(|| ProviderError::Decode("a receiving order without an id".into()))
    }

    async fn inbound(&self, id: &str) -> Result<Option<InboundStatus>, ProviderError> {
        let id: u64 = id.parse().map_err(|_| ProviderError::Permanent(format!("receiving order id {id:?}")))?;
        let answer = self.call(reqwest::Method::GET, &self.url(&format!("receiving/{id}")), None, &[404]).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        let w = &answer.body;
        let received = w["inventory_quantities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|q| {
                Some(ItemUnits {
                    inventory_item_id: text(q, "inventory_id")?,
                    quantity: quantity(q, "received_quantity"),
                })
            })
            .collect();
        Ok(Some(InboundStatus {
            id: id.to_string(),
            status: w["status"].as_str().unwrap_or_default().to_ascii_lowercase(),
            received,
        }))
    }

    /// `POST /receiving/{id}:cancel`. ShipBob refuses (422) an order past `Awaiting`; one already
    /// cancelled (a repeated call whose first answer was lost) is read back and counts as done.
    async fn cancel(&self, id: &str) -> Result<(), ProviderError> {
        let n: u64 = id.parse().map_err(|_| ProviderError::Permanent(format!("receiving order id {id:?}")))?;
        match self.call(reqwest::Method::POST, &self.url(&format!("receiving/{n}:cancel")), None, &[404]).await {
            Ok(_) => Ok(()),
            Err(ProviderError::Permanent(why)) => match self.inbound(id).await? {
                Some(w) if w.status == "cancelled" => Ok(()),
                _ => Err(ProviderError::Permanent(why)),
            },
            Err(e) => Err(e),
        }
    }
}

/// A shipment as ShipBob reports it: its tracking, its fulfilment centre and what it holds by
/// ShipBob variant (products with their inventory items' quantities).
pub fn shipment_of(s: &Value) -> Option<ExternalFulfillment> {
    let t = &s["tracking"];
    let tracking = match (text(t, "tracking_number").or_else(|| text(t, "tracking_id")), text(t, "carrier")) {
        (None, None) => Vec::new(),
        (number, company) => vec![Tracking { company, number, url: text(t, "tracking_url") }],
    };
    let items = s["products"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let quantity = p["inventory_items"].as_array().into_iter().flatten().map(|i| quantity(i, "quantity")).sum();
            Some(ShippedItem { variant_id: text(p, "id")?, quantity })
        })
        .filter(|i| i.quantity > 0)
        .collect();
    Some(ExternalFulfillment {
        id: text(s, "id")?,
        status: s["status"].as_str().unwrap_or_default().to_ascii_lowercase(),
        created_at: instant(&s["tracking"], "shipping_date").or_else(|| instant(s, "actual_fulfillment_date")),
        location_id: text(&s["location"], "id"),
        tracking,
        items,
    })
}

#[async_trait::async_trait]
impl ShipmentSource for Client {
    async fn shipments(&self, order_id: &str) -> Result<Vec<ExternalFulfillment>, ProviderError> {
        let id: u64 = order_id.parse().map_err(|_| ProviderError::Permanent(format!("order id {order_id:?}")))?;
        let answer = self.call(reqwest::Method::GET, &self.url(&format!("order/{id}/shipment")), None, &[404]).await?;
        if answer.status == 404 {
            return Ok(Vec::new());
        }
        Ok(answer.body.as_array().into_iter().flatten().filter_map(shipment_of).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        let mut c = Config::new("pat");
        c.base_url = Some(base.into());
        Client::new(reqwest::Client::new(), c, Arc::new(Limits::new(1)))
    }

    #[test]
    fn next_pages_are_followed_only_on_shipbobs_own_address() {
        let c = client("https://api.shipbob.com");
        assert_eq!(
            c.relative("https://api.shipbob.com/2026-01/product?Cursor=abc").as_deref(),
            Ok("/2026-01/product?Cursor=abc")
        );
        assert_eq!(c.relative("/2026-01/product?Cursor=abc").as_deref(), Ok("/2026-01/product?Cursor=abc"));
        for bad in ["https://evil.example/2026-01/product", "//evil.example/x", "http://169.254.169.254/latest", "x"] {
            assert!(c.relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_shipment_reads_with_its_tracking_and_units_by_variant() {
        let s = json!({
            "id": 7001, "status": "Completed", "location": { "id": 10, "name": "Cicero (IL)" },
            "tracking": { "carrier": "USPS", "tracking_number": "9400", "tracking_url": "https://t.example/9400",
                "shipping_date": "2025-10-23T15:55:09.3614767Z" },
            "products": [
                { "id": 31, "sku": "A", "inventory_items": [{ "id": 1, "quantity": 2 }, { "id": 1, "quantity": 1 }] },
                { "id": 32, "sku": "B", "inventory_items": [{ "id": 2, "quantity": 0 }] }
            ]
        });
        let f = shipment_of(&s).expect("shipment");
        assert_eq!(f.id, "7001");
        assert_eq!(f.location_id.as_deref(), Some("10"));
        assert_eq!(f.tracking[0].number.as_deref(), Some("9400"));
        assert_eq!(f.items, vec![ShippedItem { variant_id: "31".into(), quantity: 3 }]);
        assert_eq!(
            f.created_at,
            Some("2025-10-23T15:55:09.361476700Z".parse().expect("instant")),
            "seven fractional digits"
        );
    }
}
