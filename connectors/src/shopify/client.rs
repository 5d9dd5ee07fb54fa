//! The Admin GraphQL API client: one shop, one pinned version, the shop's cost bucket and call
//! cap shared by every client of that shop in the process ([`ShopLimits`]), so two syncs of one
//! shop budget together and two shops never wait on each other; and under the limits of the
//! tenant that connected the shop ([`TenantLimits`]: calls in flight and calls a second across
//! its shops), so one tenant cannot take every connector worker.
//!
//! Every call budgets before sending (waits until the bucket holds the query's estimated cost),
//! waits as told on THROTTLED (HTTP 200) and 429/503 (`Retry-After`), retries transient failures
//! with backoff, and gives up with the typed error once its waiting budget is spent, so the
//! durable job retries later. A query refused as too costly is asked again for a smaller page.
//! An answer served under another API version than the pinned one is an error, not data.

use std::str::FromStr as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::page::{MAX_PAGE, Page};
use super::throttle::{self, Answer, Bucket};
use crate::ProviderError;
use crate::source::{
    Batch, CatalogSource, ExternalFulfillment, ExternalLevel, ExternalLocation, ExternalOrder, ExternalOrderLine,
    ExternalProduct, ExternalReturn, ExternalReturnLine, ExternalVariant, InventorySink, InventorySource,
    LocationSource, OrderSource, PriceSink, Problem, ReturnSource, ShipmentSource, Tracking,
};

/// How one installation reaches its shop.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `example-shop.myshopify.com`.
    pub shop_domain: String,
    pub access_token: String,
    /// The pinned version, `YYYY-MM`.
    pub api_version: String,
    /// Where the API is instead of `https://{shop_domain}` (a mock, a staging proxy).
    pub base_url: Option<String>,
    /// The longest one call waits for the rate limit, in all, before it gives up.
    pub max_wait: Duration,
    /// Attempts at a call that fails transiently.
    pub max_attempts: u32,
}

impl ClientConfig {
    pub fn new(shop_domain: &str, access_token: &str, api_version: &str) -> Self {
        ClientConfig {
            shop_domain: shop_domain.to_owned(),
            access_token: access_token.to_owned(),
            api_version: api_version.to_owned(),
            base_url: None,
            max_wait: Duration::from_secs(120),
            max_attempts: 5,
        }
    }

    /// `{base}/admin/api/{version}/graphql.json`.
    pub fn endpoint(&self) -> String {
        let base = self.base_url.clone().unwrap_or_else(|| format!("https://{}", self.shop_domain));
        format!("{}/admin/api/{}/graphql.json", base.trim_end_matches('/'), self.api_version)
    }
}

/// What one shop allows, shared by all its clients: the cost bucket and a cap on calls in flight;
/// and the limits of the tenant that connected it, shared with the tenant's other shops.
#[derive(Debug)]
pub struct ShopLimits {
    bucket: Mutex<Bucket>,
    calls: Semaphore,
    tenant: std::sync::Arc<TenantLimits>,
}

impl ShopLimits {
    /// At most `concurrency` calls in flight to the shop (at least one), within the `tenant`'s
    /// limits across its shops.
    pub fn new(concurrency: usize, tenant: std::sync::Arc<TenantLimits>) -> Self {
        ShopLimits { bucket: Mutex::new(Bucket::default()), calls: Semaphore::new(concurrency.max(1)), tenant }
    }

    fn bucket(&self) -> std::sync::MutexGuard<'_, Bucket> {
        // A panic while holding the lock leaves a bucket that is still a valid estimate.
        self.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What one tenant's connectors may do together (per process), so one tenant cannot take the
/// connector workers from the others: calls in flight, and calls a second (a budget paced as a
/// generic cell rate: a burst of up to a second's calls, then one every `1 / per_second`).
#[derive(Debug)]
pub struct TenantLimits {
    calls: Semaphore,
    pace: Mutex<Pace>,
}

#[derive(Debug)]
struct Pace {
    interval: Duration,
    /// How far ahead of now the next call's theoretical time may be and still go at once.
    tolerance: Duration,
    /// When the next call would go at an even pace.
    next: Instant,
}

impl TenantLimits {
    /// At most `concurrency` calls in flight and `per_second` calls a second (each at least one).
    pub fn new(concurrency: usize, per_second: u32) -> Self {
        let per_second = per_second.max(1);
        let interval = Duration::from_secs(1) / per_second;
        TenantLimits {
            calls: Semaphore::new(concurrency.max(1)),
            pace: Mutex::new(Pace { interval, tolerance: interval * (per_second - 1), next: Instant::now() }),
        }
    }

    /// How long the next call waits for its turn, the turn taken; or, when that is longer than
    /// `limit`, how long it would wait, nothing taken.
    fn turn(&self, now: Instant, limit: Duration) -> Result<Duration, Duration> {
        let mut p = self.pace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = p.next.max(now);
        let wait = next.saturating_duration_since(now + p.tolerance);
        if wait > limit {
            return Err(wait);
        }
        p.next = next + p.interval;
        Ok(wait)
    }
}

/// The cost Shopify calculates before running a query: 1 per object, 2 plus the page size per
/// connection, a nested field counted once per element of the page around it; `outside` objects
/// beside the connection.
fn estimated_cost(first: usize, objects_per_node: usize, outside: usize) -> f64 {
    (outside + 2 + first * (1 + objects_per_node)) as f64
}

/// A client of one shop.
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    endpoint: String,
    limits: std::sync::Arc<ShopLimits>,
    /// The page size that last fitted the single-query cost limit.
    first: AtomicUsize,
}

const LOCATIONS: &str = "query Locations($first: Int!, $after: String) { locations(first: $first, after: $after, includeInactive: true) { nodes { id name isActive } pageInfo { hasNextPage endCursor } } }";
const VARIANTS: &str = "query Variants($first: Int!, $after: String, $query: String) { shop { currencyCode } productVariants(first: $first, after: $after, query: $query, sortKey: ID) { nodes { id sku title barcode price updatedAt inventoryItem { id } product { id handle title status productType } } pageInfo { hasNextPage endCursor } } }";
const LEVEL: &str = "query Level($item: ID!, $location: ID!) { inventoryItem(id: $item) { inventoryLevel(locationId: $location) { id updatedAt item { id } quantities(names: [\"available\", \"on_hand\", \"committed\"]) { name quantity } } } }";
/// An order's fields: up to 50 lines (an order with more is a problem, not a partial mirror),
/// the fulfilment orders' assigned locations and the fulfilments with their tracking.
macro_rules! order_fields {
    () => {
        "id name createdAt updatedAt cancelledAt returnStatus currencyCode totalPriceSet { shopMoney { amount } } lineItems(first: 50) { nodes { id sku quantity currentQuantity unfulfilledQuantity variant { id } } pageInfo { hasNextPage endCursor } } fulfillmentOrders(first: 5) { nodes { status assignedLocation { location { id } } } } fulfillments { id status createdAt location { id } trackingInfo { company number url } }"
    };
}
const ORDERS: &str = concat!(
    "query Orders($first: Int!, $after: String, $query: String) { orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) { nodes { ",
    order_fields!(),
    " } pageInfo { hasNextPage endCursor } } }"
);
const ORDER: &str = concat!("query Order($id: ID!) { order(id: $id) { ", order_fields!(), " } }");
/// The lines of an order past the first 50, a page at a time.
const ORDER_LINES: &str = "query OrderLines($id: ID!, $first: Int!, $after: String) { order(id: $id) { lineItems(first: $first, after: $after) { nodes { id sku quantity currentQuantity unfulfilledQuantity variant { id } } pageInfo { hasNextPage endCursor } } } }";
/// An order's fulfilments with their location and tracking (the field is a list, not a page).
const FULFILLMENTS: &str = "query Fulfillments($id: ID!) { order(id: $id) { id fulfillments { id status createdAt location { id } trackingInfo { company number url } } } }";
/// The order, and a fulfilment with its location for each of the 20 an order rarely exceeds.
const FULFILLMENTS_COST: f64 = (1 + 2 + 20 * 2) as f64;
/// An order's returns, asked for only when `returnStatus` says it has some (5 returns of 25 lines).
const RETURNS: &str = "query Returns($id: ID!) { order(id: $id) { returns(first: 5) { nodes { id name status returnLineItems(first: 25) { nodes { ... on ReturnLineItem { id quantity returnReason fulfillmentLineItem { lineItem { id } } } } } } } } }";
const RETURNS_COST: f64 = (1 + 2 + 5 * (1 + 2 + 25 * 3)) as f64;
/// Objects per order node as Shopify counts them: 50 lines with their variant, 5 fulfilment
/// orders with location, the price set and the fulfilments.
const ORDER_OBJECTS: usize = (2 + 50 * 2) + (2 + 5 * 3) + 2 + 6;
/// The single-query cost Shopify allows.
const MAX_QUERY_COST: usize = 1000;
const LEVELS: &str = "query Levels($location: ID!, $first: Int!, $after: String, $query: String) { location(id: $location) { inventoryLevels(first: $first, after: $after, query: $query) { nodes { id updatedAt item { id } quantities(names: [\"available\", \"on_hand\", \"committed\"]) { name quantity } } pageInfo { hasNextPage endCursor } } } }";

impl Client {
    pub fn new(http: reqwest::Client, config: ClientConfig, limits: std::sync::Arc<ShopLimits>) -> Self {
        let endpoint = config.endpoint();
        Client { http, config, endpoint, limits, first: AtomicUsize::new(MAX_PAGE) }
    }

    /// The shop's cost bucket as last known to this process, and when: what to show an admin.
    pub fn throttle(&self) -> Option<(throttle::ThrottleStatus, DateTime<Utc>)> {
        self.limits.bucket().last_seen()
    }

    /// Reads the rest of an order node's lines when it has more than its first page.
    async fn all_lines(&self, node: &mut Value) -> Result<(), ProviderError> {
        let Some(id) = text(node, "id") else { return Ok(()) };
        while node.pointer("/lineItems/pageInfo/hasNextPage").and_then(Value::as_bool) == Some(true) {
            let after = node.pointer("/lineItems/pageInfo/endCursor").cloned().unwrap_or(Value::Null);
            let (page, _) =
                self.page(ORDER_LINES, json!({ "id": id, "after": after }), &["order", "lineItems"], (1, 1)).await?;
            let lines = &mut node["lineItems"];
            if let Some(nodes) = lines.get_mut("nodes").and_then(Value::as_array_mut) {
                nodes.extend(page.nodes);
            }
            lines["pageInfo"] = json!({ "hasNextPage": page.has_next_page, "endCursor": page.end_cursor });
        }
        Ok(())
    }

    /// The HTTP client (for downloads that are not API calls).
    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Runs one query, budgeting, waiting and retrying as the module says.
    pub async fn query(&self, query: &str, variables: Value, cost: f64) -> Result<Answer, ProviderError> {
        self.run(query, variables, cost, true).await
    }

    /// Runs a mutation that is not idempotent once: waits out the rate limit (a throttled
    /// request did not run) but does not send it again after a transient failure, which may
    /// have come after the shop applied it; the caller finds out what happened first.
    pub async fn mutate_once(&self, query: &str, variables: Value, cost: f64) -> Result<Answer, ProviderError> {
        self.run(query, variables, cost, false).await
    }

    async fn run(&self, query: &str, variables: Value, cost: f64, retry: bool) -> Result<Answer, ProviderError> {
        let deadline = Instant::now() + self.config.max_wait;
        let body = json!({ "query": query, "variables": variables });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = self.limits.bucket().wait_before(cost, Utc::now())?;
            if !wait.is_zero() {
                if Instant::now() + wait > deadline {
                    return Err(ProviderError::RateLimited { retry_after: wait });
                }
                tracing::debug!(wait_ms = wait.as_millis() as u64, cost, "waiting for the shop's cost bucket");
                tokio::time::sleep(wait).await;
            }
            match self.limits.tenant.turn(Instant::now(), deadline.saturating_duration_since(Instant::now())) {
                Ok(wait) if !wait.is_zero() => {
                    tracing::debug!(wait_ms = wait.as_millis() as u64, "waiting for the tenant's call budget");
                    tokio::time::sleep(wait).await;
                }
                Ok(_) => {}
                Err(wait) => return Err(ProviderError::RateLimited { retry_after: wait }),
            }
            self.limits.bucket().take(cost, Utc::now());
            let answer = {
                let closed = |e: tokio::sync::AcquireError| ProviderError::Transient(e.to_string());
                let _shop = self.limits.calls.acquire().await.map_err(closed)?;
                let _tenant = self.limits.tenant.calls.acquire().await.map_err(closed)?;
                self.send(&body, cost).await
            };
            match answer {
                Ok(a) => return Ok(a),
                Err(ProviderError::RateLimited { retry_after }) => {
                    if Instant::now() + retry_after > deadline {
                        return Err(ProviderError::RateLimited { retry_after });
                    }
                    tracing::info!(retry_ms = retry_after.as_millis() as u64, "throttled by the shop; waiting");
                    tokio::time::sleep(retry_after).await;
                }
                Err(ProviderError::Transient(e)) if retry && attempt < self.config.max_attempts => {
                    let backoff = Duration::from_millis(200u64 << attempt.min(5));
                    tracing::info!(error = %e, attempt, "transient failure; retrying");
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one request that took `cost` points from the bucket; an answer that states no bucket
    /// (a failure before the shop ran it) gives them back.
    async fn send(&self, body: &Value, cost: f64) -> Result<Answer, ProviderError> {
        let sent = self
            .http
            .post(&self.endpoint)
            .header("X-Shopify-Access-Token", &self.config.access_token)
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.limits.bucket().refund(cost, Utc::now());
                return Err(crate::wire::unsent(&self.endpoint, &e));
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let retry_after = header("Retry-After");
        let served = header("X-Shopify-API-Version");
        let bytes = response.bytes().await.map_err(|e| ProviderError::Transient(e.to_string()))?;
        let (bucket, answer) = throttle::classify(status, retry_after.as_deref(), &bytes);
        match bucket {
            Some(status) => self.limits.bucket().observe(status, Utc::now()),
            None => self.limits.bucket().refund(cost, Utc::now()),
        }
        if let Some(served) = served.filter(|s| *s != self.config.api_version) {
            tracing::warn!(pinned = %self.config.api_version, %served, "Shopify served another API version");
            return Err(ProviderError::VersionMismatch { pinned: self.config.api_version.clone(), served });
        }
        answer
    }

    /// One page of a connection: asks for the largest page that fits the single-query cost limit
    /// (halving it when refused as too costly) and reads the connection at `path`.
    async fn page(
        &self,
        query: &str,
        mut variables: Value,
        path: &[&str],
        (objects_per_node, outside): (usize, usize),
    ) -> Result<(Page, Value), ProviderError> {
        // The largest page whose estimate fits the single-query limit.
        let fits = (MAX_QUERY_COST.saturating_sub(outside + 2) / (1 + objects_per_node)).max(1);
        loop {
            let first = self.first.load(Ordering::Relaxed).clamp(1, MAX_PAGE).min(fits);
            variables["first"] = json!(first);
            match self.query(query, variables.clone(), estimated_cost(first, objects_per_node, outside)).await {
                Ok(a) => return Ok((Page::read(&a.data, path)?, a.data)),
                Err(ProviderError::TooCostly { requested, maximum }) if first > 1 => {
                    let smaller = ((first as f64 * maximum / requested.max(1.0)).floor() as usize).clamp(1, first / 2);
                    tracing::info!(first, smaller, requested, maximum, "query too costly; asking for smaller pages");
                    self.first.store(smaller, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn since_filter(since: Option<DateTime<Utc>>) -> Value {
    since.map_or(Value::Null, |t| json!(format!("updated_at:>='{}'", t.to_rfc3339_opts(SecondsFormat::Secs, true))))
}

fn text(node: &Value, key: &str) -> Option<String> {
    node.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn time(node: &Value, key: &str) -> Option<DateTime<Utc>> {
    node.get(key).and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc())
}

/// A `productVariants` node as a variant with its product, or why it cannot be one.
pub fn variant_of(node: &Value, currency: &str) -> Result<ExternalVariant, Problem> {
    let id = text(node, "id").ok_or_else(|| Problem::new("", "a variant without an id"))?;
    let problem = |m: &str| Problem::new(id.clone(), m);
    let sku = text(node, "sku").map(|s| s.trim().to_owned()).unwrap_or_default();
    if sku.is_empty() {
        return Err(problem("the variant has no SKU (stock is kept by SKU): give it one in Shopify"));
    }
    let price = match node.get("price") {
        Some(Value::String(p)) => Decimal::from_str(p).map_err(|_| problem("its price is not a decimal"))?,
        _ => return Err(problem("its price is missing or not a decimal string")),
    };
    let p = node.get("product").filter(|p| p.is_object()).ok_or_else(|| problem("the variant has no product"))?;
    let product = ExternalProduct {
        id: text(p, "id").ok_or_else(|| problem("its product has no id"))?,
        handle: text(p, "handle").ok_or_else(|| problem("its product has no handle"))?,
        title: text(p, "title").unwrap_or_default(),
        status: text(p, "status").map_or_else(|| "active".to_owned(), |s| s.to_ascii_lowercase()),
        category: text(p, "productType").unwrap_or_default(),
    };
    Ok(ExternalVariant {
        sku,
        title: text(node, "title").unwrap_or_default(),
        barcode: text(node, "barcode").filter(|b| !b.is_empty()),
        price,
        currency: currency.to_owned(),
        inventory_item_id: node.get("inventoryItem").and_then(|i| text(i, "id")),
        product,
        updated_at: time(node, "updatedAt"),
        id,
    })
}

/// An `inventoryLevels` node of a location's connection.
pub fn level_of(node: &Value, location_id: &str) -> Result<ExternalLevel, Problem> {
    let id = text(node, "id").ok_or_else(|| Problem::new("", "an inventory level without an id"))?;
    let item = node
        .get("item")
        .and_then(|i| text(i, "id"))
        .ok_or_else(|| Problem::new(id.clone(), "the level names no inventory item"))?;
    let quantity = |name: &str| {
        node.get("quantities")
            .and_then(Value::as_array)
            .and_then(|qs| qs.iter().find(|q| q.get("name").and_then(Value::as_str) == Some(name)))
            .and_then(|q| q.get("quantity"))
            .and_then(Value::as_i64)
    };
    let (Some(on_hand), Some(available)) = (quantity("on_hand"), quantity("available")) else {
        return Err(Problem::new(id, "the level lacks its on_hand or available quantity"));
    };
    Ok(ExternalLevel {
        inventory_item_id: item,
        location_id: location_id.to_owned(),
        on_hand,
        available,
        committed: quantity("committed").unwrap_or(0),
        updated_at: time(node, "updatedAt"),
        id,
    })
}

/// An order node (of `orders` or `order`), or why it cannot be mirrored.
pub fn order_of(node: &Value) -> Result<ExternalOrder, Problem> {
    let id = text(node, "id").ok_or_else(|| Problem::new("", "an order without an id"))?;
    let problem = |m: &str| Problem::new(id.clone(), m);
    let lines_page = node.get("lineItems").ok_or_else(|| problem("the order has no lineItems"))?;
    if lines_page.pointer("/pageInfo/hasNextPage").and_then(Value::as_bool) == Some(true) {
        return Err(problem("the order's lines past the first page could not be read"));
    }
    let mut lines = Vec::new();
    for l in lines_page.get("nodes").and_then(Value::as_array).into_iter().flatten() {
        let line_id = text(l, "id").ok_or_else(|| problem("a line without an id"))?;
        let ordered = l.get("currentQuantity").or_else(|| l.get("quantity")).and_then(Value::as_i64);
        let Some(quantity) = ordered.filter(|q| *q >= 0) else {
            return Err(problem("a line without a quantity"));
        };
        let unfulfilled = l.get("unfulfilledQuantity").and_then(Value::as_i64).unwrap_or(0).clamp(0, quantity);
        lines.push(ExternalOrderLine {
            id: line_id,
            variant_id: l.get("variant").and_then(|v| text(v, "id")),
            sku: text(l, "sku").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
            quantity,
            unfulfilled,
        });
    }
    let total = match node.pointer("/totalPriceSet/shopMoney/amount") {
        Some(Value::String(a)) => Some(Decimal::from_str(a).map_err(|_| problem("its total is not a decimal"))?),
        _ => None,
    };
    let fulfillments = fulfillments_of(node);
    // Where the rest ships from: an open fulfilment order's location, else any fulfilment
    // order's, else where it last shipped from.
    let fulfillment_orders: Vec<&Value> =
        node.pointer("/fulfillmentOrders/nodes").and_then(Value::as_array).into_iter().flatten().collect();
    let assigned = |f: &&Value| f.pointer("/assignedLocation/location/id").and_then(Value::as_str).map(str::to_owned);
    let open =
        |f: &&&Value| !matches!(f.get("status").and_then(Value::as_str), Some("CLOSED" | "CANCELLED" | "INCOMPLETE"));
    let location_id = fulfillment_orders
        .iter()
        .filter(open)
        .find_map(assigned)
        .or_else(|| fulfillment_orders.iter().find_map(assigned))
        .or_else(|| fulfillments.iter().rev().find_map(|f| f.location_id.clone()));
    Ok(ExternalOrder {
        name: text(node, "name").unwrap_or_else(|| id.clone()),
        created_at: time(node, "createdAt"),
        updated_at: time(node, "updatedAt"),
        cancelled_at: time(node, "cancelledAt"),
        location_id,
        currency: text(node, "currencyCode").unwrap_or_default(),
        total,
        lines,
        fulfillments,
        returns: Vec::new(),
        id,
    })
}

/// An order's `fulfillments` with their tracking; fulfilments without an id are left out.
pub fn fulfillments_of(order: &Value) -> Vec<ExternalFulfillment> {
    let all = order.get("fulfillments").and_then(Value::as_array).into_iter().flatten();
    all.filter_map(|f| {
        Some(ExternalFulfillment {
            id: text(f, "id")?,
            status: text(f, "status").unwrap_or_default().to_ascii_lowercase(),
            created_at: time(f, "createdAt"),
            location_id: f.get("location").and_then(|l| text(l, "id")),
            tracking: f
                .get("trackingInfo")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| Tracking { company: text(t, "company"), number: text(t, "number"), url: text(t, "url") })
                .collect(),
            items: Vec::new(),
        })
    })
    .collect()
}

/// An order's `returns` connection (of the Returns query); returns without an id are left out.
pub fn returns_of(order: &Value) -> Vec<ExternalReturn> {
    let nodes = order.pointer("/returns/nodes").and_then(Value::as_array).into_iter().flatten();
    nodes
        .filter_map(|r| {
            let lines = r.pointer("/returnLineItems/nodes").and_then(Value::as_array).into_iter().flatten();
            Some(ExternalReturn {
                id: text(r, "id")?,
                name: text(r, "name").unwrap_or_default(),
                status: text(r, "status").unwrap_or_default().to_ascii_lowercase(),
                lines: lines
                    .filter_map(|l| {
                        Some(ExternalReturnLine {
                            id: text(l, "id")?,
                            line_id: l
                                .pointer("/fulfillmentLineItem/lineItem/id")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                            quantity: l.get("quantity").and_then(Value::as_i64)?,
                            reason: text(l, "returnReason").map(|r| r.to_ascii_lowercase()),
                        })
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Whether an order node says it has returns to read.
fn has_returns(node: &Value) -> bool {
    node.get("returnStatus").and_then(Value::as_str).is_some_and(|s| s != "NO_RETURN")
}

fn batch<T>(page: Page, read: impl Fn(&Value) -> Result<T, Problem>) -> Batch<T> {
    let mut out = Batch { next: page.next().map(str::to_owned), ..Batch::default() };
    for node in &page.nodes {
        match read(node) {
            Ok(r) => out.records.push(r),
            Err(p) => out.problems.push(p),
        }
    }
    out
}

#[async_trait::async_trait]
impl LocationSource for Client {
    async fn locations(&self, cursor: Option<&str>) -> Result<Batch<ExternalLocation>, ProviderError> {
        let (page, _) = self.page(LOCATIONS, json!({ "after": cursor }), &["locations"], (0, 0)).await?;
        Ok(batch(page, |n| {
            let id = text(n, "id").ok_or_else(|| Problem::new("", "a location without an id"))?;
            Ok(ExternalLocation {
                name: text(n, "name").filter(|s| !s.trim().is_empty()).unwrap_or_else(|| id.clone()),
                active: n.get("isActive").and_then(Value::as_bool).unwrap_or(true),
                id,
            })
        }))
    }
}

#[async_trait::async_trait]
impl CatalogSource for Client {
    async fn variants(
        &self,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalVariant>, ProviderError> {
        let vars = json!({ "after": cursor, "query": since_filter(since) });
        let (page, data) = self.page(VARIANTS, vars, &["productVariants"], (2, 1)).await?;
        let currency = data["shop"]["currencyCode"]
            .as_str()
            .ok_or_else(|| ProviderError::Decode("the answer has no shop.currencyCode".into()))?;
        Ok(batch(page, |n| variant_of(n, currency)))
    }

    async fn product_variants(
        &self,
        product_id: &str,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalVariant>, ProviderError> {
        let number = product_id
            .parse::<super::gid::Gid>()
            .ok()
            .filter(|g| g.kind == "Product" && g.number().is_some())
            .ok_or_else(|| ProviderError::Permanent(format!("not a product id: {product_id}")))?;
        let vars = json!({ "after": cursor, "query": format!("product_id:{}", number.id) });
        let (page, data) = self.page(VARIANTS, vars, &["productVariants"], (2, 1)).await?;
        let currency = data["shop"]["currencyCode"]
            .as_str()
            .ok_or_else(|| ProviderError::Decode("the answer has no shop.currencyCode".into()))?;
        Ok(batch(page, |n| variant_of(n, currency)))
    }
}

#[async_trait::async_trait]
impl InventorySource for Client {
    async fn levels(
        &self,
        location_id: &str,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalLevel>, ProviderError> {
        let vars = json!({ "location": location_id, "after": cursor, "query": since_filter(since) });
        let page = self.page(LEVELS, vars.clone(), &["location", "inventoryLevels"], (2, 1)).await;
        let page = match page {
            Err(ProviderError::Decode(_)) => {
                // `location: null`: the location is gone (deleted in Shopify since the last sync).
                return Err(ProviderError::Permanent(format!("Shopify has no location {location_id}")));
            }
            other => other?.0,
        };
        Ok(batch(page, |n| level_of(n, location_id)))
    }

    async fn level(&self, inventory_item_id: &str, location_id: &str) -> Result<Option<ExternalLevel>, ProviderError> {
        let vars = json!({ "item": inventory_item_id, "location": location_id });
        let a = self.query(LEVEL, vars, 4.0).await?;
        match a.data.get("inventoryItem").and_then(|i| i.get("inventoryLevel")) {
            Some(node) if node.is_object() => {
                level_of(node, location_id).map(Some).map_err(|p| ProviderError::Decode(p.message))
            }
            _ => Ok(None),
        }
    }
}

#[async_trait::async_trait]
impl OrderSource for Client {
    async fn orders(
        &self,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalOrder>, ProviderError> {
        let vars = json!({ "after": cursor, "query": since_filter(since) });
        let (mut page, _) = self.page(ORDERS, vars, &["orders"], (ORDER_OBJECTS, 0)).await?;
        for node in &mut page.nodes {
            self.all_lines(node).await?;
        }
        let with_returns: Vec<String> =
            page.nodes.iter().filter(|n| has_returns(n)).filter_map(|n| text(n, "id")).collect();
        let mut out = batch(page, order_of);
        for o in out.records.iter_mut().filter(|o| with_returns.contains(&o.id)) {
            o.returns = self.returns(&o.id).await?;
        }
        Ok(out)
    }

    async fn order(&self, order_id: &str) -> Result<Option<ExternalOrder>, ProviderError> {
        let a = self.query(ORDER, json!({ "id": order_id }), estimated_cost(1, ORDER_OBJECTS, 0)).await?;
        match a.data.get("order") {
            Some(node) if node.is_object() => {
                let mut node = node.clone();
                self.all_lines(&mut node).await?;
                let node = &node;
                let mut o = order_of(node).map_err(|p| ProviderError::Decode(p.message))?;
                if has_returns(node) {
                    o.returns = self.returns(&o.id).await?;
                }
                Ok(Some(o))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_gets_a_seconds_calls_at_once_then_one_per_interval() {
        let limits = super::TenantLimits::new(4, 5);
        let t0 = std::time::Instant::now();
        let limit = Duration::from_secs(10);
        let waits: Vec<Duration> = (0..7).map(|_| limits.turn(t0, limit).expect("within the limit")).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(waits, [ms(0), ms(0), ms(0), ms(0), ms(0), ms(200), ms(400)]);
        // A wait past the caller's limit is refused and takes no turn.
        assert_eq!(limits.turn(t0, ms(500)), Err(ms(600)));
        assert_eq!(limits.turn(t0, limit), Ok(ms(600)));
        // Idle for a while, the burst is back (never more than a second's calls).
        let later = t0 + Duration::from_secs(5);
        let waits: Vec<Duration> = (0..6).map(|_| limits.turn(later, limit).expect("turn")).collect();
        assert_eq!(waits, [ms(0), ms(0), ms(0), ms(0), ms(0), ms(200)]);
    }

    #[test]
    fn a_variant_node_reads_with_its_product_and_exact_price() {
        let node = json!({
            "id": "gid://shopify/ProductVariant/808950810", "sku": " IPOD2008PINK ", "title": "Pink",
            "barcode": "", "price": "199.10", "updatedAt": "2026-01-15T10:00:00-05:00",
            "inventoryItem": { "id": "gid://shopify/InventoryItem/808950810" },
            "product": { "id": "gid://shopify/Product/632910392", "handle": "ipod-nano", "title": "IPod Nano - 8GB", "status": "ACTIVE", "productType": "Cult Products" }
        });
        let v = variant_of(&node, "USD").expect("variant");
        assert_eq!(v.sku, "IPOD2008PINK");
        assert_eq!(v.price, Decimal::new(19910, 2));
        assert_eq!(v.barcode, None);
        assert_eq!(v.product.status, "active");
        assert_eq!(v.inventory_item_id.as_deref(), Some("gid://shopify/InventoryItem/808950810"));
        // The shop's offset normalised to UTC.
        assert_eq!(v.updated_at.map(|t| t.to_rfc3339()), Some("2026-01-15T15:00:00+00:00".to_owned()));
    }

    #[test]
    fn a_variant_without_sku_or_with_a_float_price_is_a_problem_naming_it() {
        let mut node = json!({ "id": "gid://shopify/ProductVariant/1", "sku": "", "price": "1.00", "product": { "id": "p", "handle": "h" } });
        assert_eq!(
            variant_of(&node, "USD").map_err(|p| p.external_id),
            Err("gid://shopify/ProductVariant/1".to_owned())
        );
        node["sku"] = json!("A-1");
        node["price"] = json!(1.5);
        assert!(variant_of(&node, "USD").unwrap_err().message.contains("price"));
        node["price"] = json!("1.5");
        assert!(variant_of(&node, "USD").is_ok());
    }

    #[test]
    fn a_level_reads_its_quantities_by_name() {
        let node = json!({
            "id": "gid://shopify/InventoryLevel/487838322?inventory_item_id=808950810",
            "updatedAt": "2026-01-15T10:00:00Z", "item": { "id": "gid://shopify/InventoryItem/808950810" },
            "quantities": [{ "name": "available", "quantity": 9 }, { "name": "committed", "quantity": 1 }, { "name": "on_hand", "quantity": 10 }]
        });
        let l = level_of(&node, "gid://shopify/Location/487838322").expect("level");
        assert_eq!((l.on_hand, l.available, l.committed), (10, 9, 1));
        let bare = json!({ "id": "x", "item": { "id": "i" }, "quantities": [{ "name": "available", "quantity": 1 }] });
        assert!(level_of(&bare, "l").is_err());
    }

    #[test]
    fn an_order_reads_its_open_location_lines_and_tracking() {
        let node = json!({
            "id": "gid://shopify/Order/450789469", "name": "#1001",
            "createdAt": "2026-01-10T16:00:00Z", "updatedAt": "2026-01-15T10:00:00-05:00", "cancelledAt": null,
            "currencyCode": "USD", "totalPriceSet": { "shopMoney": { "amount": "409.94" } },
            "lineItems": { "nodes": [
                { "id": "gid://shopify/LineItem/1", "sku": "A", "quantity": 2, "currentQuantity": 1, "unfulfilledQuantity": 0, "variant": { "id": "gid://shopify/ProductVariant/7" } },
                { "id": "gid://shopify/LineItem/2", "sku": "", "quantity": 3, "currentQuantity": 3, "unfulfilledQuantity": 3, "variant": null }
            ], "pageInfo": { "hasNextPage": false } },
            "fulfillmentOrders": { "nodes": [
                { "status": "CLOSED", "assignedLocation": { "location": { "id": "gid://shopify/Location/1" } } },
                { "status": "OPEN", "assignedLocation": { "location": { "id": "gid://shopify/Location/2" } } }
            ] },
            "fulfillments": [{ "id": "gid://shopify/Fulfillment/9", "status": "SUCCESS", "createdAt": "2026-01-15T10:00:00Z",
                "location": { "id": "gid://shopify/Location/1" },
                "trackingInfo": [{ "company": "UPS", "number": "1Z1", "url": "https://ups.example/1Z1" }] }]
        });
        let o = order_of(&node).expect("order");
        assert_eq!(o.location_id.as_deref(), Some("gid://shopify/Location/2"));
        assert_eq!(o.total, Some(Decimal::new(40994, 2)));
        assert_eq!(o.updated_at.map(|t| t.to_rfc3339()), Some("2026-01-15T15:00:00+00:00".to_owned()));
        assert_eq!((o.lines[0].quantity, o.lines[0].unfulfilled), (1, 0), "the current quantity, after edits");
        assert_eq!((o.lines[1].variant_id.as_deref(), o.lines[1].sku.as_deref()), (None, None));
        assert_eq!(o.fulfillments[0].status, "success");
        assert_eq!(o.fulfillments[0].tracking[0].number.as_deref(), Some("1Z1"));
        let mut long = node.clone();
        long["lineItems"]["pageInfo"]["hasNextPage"] = json!(true);
        assert_eq!(order_of(&long).map_err(|p| p.external_id), Err("gid://shopify/Order/450789469".to_owned()));
        // With every fulfilment order closed, the last place it shipped from.
        let mut done = node;
        done["fulfillmentOrders"]["nodes"][1]["status"] = json!("CLOSED");
        assert_eq!(order_of(&done).expect("order").location_id.as_deref(), Some("gid://shopify/Location/1"));
    }

    #[test]
    fn an_orders_returns_read_with_the_line_they_return() {
        let order = json!({ "returns": { "nodes": [
            { "id": "gid://shopify/Return/945000954", "name": "#1001-R1", "status": "OPEN",
              "returnLineItems": { "nodes": [
                { "id": "gid://shopify/ReturnLineItem/677614677", "quantity": 1, "returnReason": "DEFECTIVE",
                  "fulfillmentLineItem": { "lineItem": { "id": "gid://shopify/LineItem/466157049" } } },
                { "id": "gid://shopify/ReturnLineItem/677614678", "returnReason": "OTHER" }
              ] } },
            { "name": "no id" }
        ] } });
        let returns = returns_of(&order);
        assert_eq!(returns.len(), 1);
        assert_eq!(returns[0].status, "open");
        assert_eq!(returns[0].lines.len(), 1, "a line without a quantity is left out");
        assert_eq!(returns[0].lines[0].line_id.as_deref(), Some("gid://shopify/LineItem/466157049"));
        assert_eq!(returns[0].lines[0].reason.as_deref(), Some("defective"));
        assert!(
            has_returns(&json!({ "returnStatus": "IN_PROGRESS" }))
                && !has_returns(&json!({ "returnStatus": "NO_RETURN" }))
        );
    }

    #[test]
    fn the_endpoint_uses_the_override_and_the_pinned_version() {
        let mut c = ClientConfig::new("example-shop.myshopify.com", "t", "2026-01");
        assert_eq!(c.endpoint(), "https://example-shop.myshopify.com/admin/api/2026-01/graphql.json");
        c.base_url = Some("http://127.0.0.1:9000/".into());
        assert_eq!(c.endpoint(), "http://127.0.0.1:9000/admin/api/2026-01/graphql.json");
        assert_eq!(estimated_cost(250, 2, 1), 753.0);
        assert_eq!(
            since_filter(DateTime::from_timestamp(1_768_471_200, 0)),
            json!("updated_at:>='2026-01-15T10:00:00Z'")
        );
    }
}

/// The `@idempotent` key must be a plain token: it is written into the operation's text.
fn is_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[async_trait::async_trait]
impl ShipmentSource for Client {
    async fn shipments(&self, order_id: &str) -> Result<Vec<ExternalFulfillment>, ProviderError> {
        let a = self.query(FULFILLMENTS, json!({ "id": order_id }), FULFILLMENTS_COST).await?;
        Ok(a.data.get("order").map(fulfillments_of).unwrap_or_default())
    }
}

#[async_trait::async_trait]
impl ReturnSource for Client {
    async fn returns(&self, order_id: &str) -> Result<Vec<ExternalReturn>, ProviderError> {
        let a = self.query(RETURNS, json!({ "id": order_id }), RETURNS_COST).await?;
        Ok(a.data.get("order").map(returns_of).unwrap_or_default())
    }
}

#[async_trait::async_trait]
impl InventorySink for Client {
    async fn adjust(
        &self,
        key: &str,
        inventory_item_id: &str,
        location_id: &str,
        delta: i64,
        reference: &str,
    ) -> Result<(), ProviderError> {
        if !is_key(key) {
            return Err(ProviderError::Permanent(format!("not a usable idempotency key: {key:?}")));
        }
        // The key is the operation's: a retry of this request (same text) applies once.
        let query = format!(
            "mutation adjust($input: InventoryAdjustQuantitiesInput!) @idempotent(key: \"{key}\") {{ inventoryAdjustQuantities(input: $input) {{ inventoryAdjustmentGroup {{ createdAt changes {{ name delta quantityAfterChange }} }} userErrors {{ field message code }} }} }}"
        );
        let input = json!({ "input": {
            "reason": "correction",
            "name": "available",
            "referenceDocumentUri": reference,
            "changes": [{ "delta": delta, "inventoryItemId": inventory_item_id, "locationId": location_id }],
        }});
        let a = self.query(&query, input, 10.0).await?;
        adjustment_made(&a.data, "inventoryAdjustQuantities")
    }

    async fn set(
        &self,
        key: &str,
        inventory_item_id: &str,
        location_id: &str,
        expected: i64,
        on_hand: i64,
        reference: &str,
    ) -> Result<(), ProviderError> {
        if !is_key(key) {
            return Err(ProviderError::Permanent(format!("not a usable idempotency key: {key:?}")));
        }
        let query = format!(
            "mutation set($input: InventorySetQuantitiesInput!) @idempotent(key: \"{key}\") {{ inventorySetQuantities(input: $input) {{ inventoryAdjustmentGroup {{ createdAt changes {{ name delta quantityAfterChange }} }} userErrors {{ field message code }} }} }}"
        );
        let mut quantity =
            json!({ "inventoryItemId": inventory_item_id, "locationId": location_id, "quantity": on_hand });
        // The compare field: `changeFromQuantity` from 2026-04 on, `compareQuantity` before.
        if self.config.api_version.as_str() >= "2026-04" {
            quantity["changeFromQuantity"] = expected.into();
        } else {
            quantity["compareQuantity"] = expected.into();
        }
        let input = json!({ "input": {
            "name": "on_hand",
            "reason": "correction",
            "referenceDocumentUri": reference,
            "quantities": [quantity],
        }});
        let a = self.query(&query, input, 10.0).await?;
        adjustment_made(&a.data, "inventorySetQuantities")
    }
}

#[async_trait::async_trait]
impl PriceSink for Client {
    async fn set_prices(&self, product_id: &str, prices: &[(String, Decimal)]) -> Result<(), ProviderError> {
        const QUERY: &str = "mutation prices($productId: ID!, $variants: [ProductVariantsBulkInput!]!) { productVariantsBulkUpdate(productId: $productId, variants: $variants) { productVariants { id updatedAt } userErrors { field message } } }";
        if prices.is_empty() {
            return Ok(());
        }
        let variants: Vec<Value> =
            prices.iter().map(|(id, price)| json!({ "id": id, "price": price.normalize().to_string() })).collect();
        // Absolute prices: sending them again is harmless, so transient failures are retried.
        let a = self.query(QUERY, json!({ "productId": product_id, "variants": variants }), 10.0).await?;
        prices_set(&a.data)
    }
}

/// Whether a `productVariantsBulkUpdate` answer set the prices: its user errors as one
/// permanent error naming each field.
fn prices_set(data: &Value) -> Result<(), ProviderError> {
    let root = &data["productVariantsBulkUpdate"];
    let errors = root["userErrors"].as_array().cloned().unwrap_or_default();
    if !errors.is_empty() {
        let described: Vec<String> = errors
            .iter()
            .map(|e| {
                let field: Vec<&str> = e["field"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                format!("{}: {}", field.join("."), e["message"].as_str().unwrap_or("refused"))
            })
            .collect();
        return Err(ProviderError::Permanent(described.join("; ")));
    }
    if !root["productVariants"].is_array() {
        return Err(ProviderError::Decode("no productVariants in the productVariantsBulkUpdate answer".into()));
    }
    Ok(())
}

/// Whether an inventory mutation's answer (`root`) made its adjustment group: its user errors
/// typed (a stale compare is [`ProviderError::Stale`]).
fn adjustment_made(data: &Value, root: &str) -> Result<(), ProviderError> {
    let errors = data[root]["userErrors"].as_array().cloned().unwrap_or_default();
    if !errors.is_empty() {
        let messages = errors.iter().filter_map(|e| e["message"].as_str()).collect::<Vec<_>>().join("; ");
        let stale =
            |e: &Value| matches!(e["code"].as_str(), Some("CHANGE_FROM_QUANTITY_STALE" | "COMPARE_QUANTITY_STALE"));
        return Err(if errors.iter().any(stale) {
            ProviderError::Stale(messages)
        } else {
            ProviderError::Permanent(messages)
        });
    }
    if data[root]["inventoryAdjustmentGroup"].is_null() {
        return Err(ProviderError::Decode(format!("no inventoryAdjustmentGroup in the {root} answer")));
    }
    Ok(())
}

#[cfg(test)]
mod key_tests {
    use serde_json::json;

    #[test]
    fn a_stale_compare_is_its_own_error_and_other_user_errors_are_permanent() {
        let answer = |code: &str| {
            json!({ "inventorySetQuantities": { "inventoryAdjustmentGroup": null, "userErrors": [
                { "field": ["input", "quantities", "0", "changeFromQuantity"], "message": "The specified compare quantity does not match the current quantity.", "code": code }
            ] } })
        };
        let made = |v: &serde_json::Value| super::adjustment_made(v, "inventorySetQuantities");
        assert!(
            matches!(made(&answer("CHANGE_FROM_QUANTITY_STALE")), Err(crate::ProviderError::Stale(m)) if m.contains("compare quantity"))
        );
        assert!(matches!(made(&answer("COMPARE_QUANTITY_STALE")), Err(crate::ProviderError::Stale(_))));
        assert!(matches!(made(&answer("INVALID_LOCATION")), Err(crate::ProviderError::Permanent(_))));
        let ok = json!({ "inventorySetQuantities": { "inventoryAdjustmentGroup": { "createdAt": "2026-01-01T00:00:00Z", "changes": [] }, "userErrors": [] } });
        assert_eq!(made(&ok), Ok(()));
    }

    #[test]
    fn a_price_update_names_the_refused_field() {
        let refused = json!({ "productVariantsBulkUpdate": { "productVariants": null, "userErrors": [
            { "field": ["variants", "0", "id"], "message": "Product variant does not exist" }
        ] } });
        assert_eq!(
            super::prices_set(&refused),
            Err(crate::ProviderError::Permanent("variants.0.id: Product variant does not exist".into()))
        );
        let ok = json!({ "productVariantsBulkUpdate": { "productVariants": [
            { "id": "gid://shopify/ProductVariant/7", "updatedAt": "2026-01-01T00:00:00Z" }
        ], "userErrors": [] } });
        assert_eq!(super::prices_set(&ok), Ok(()));
        assert!(matches!(super::prices_set(&json!({})), Err(crate::ProviderError::Decode(_))));
    }

    #[test]
    fn only_plain_keys_go_into_the_operation_text() {
        assert!(super::is_key("01a23e7a-bdaa-706d-9e4c-b0987f642917"));
        for bad in ["", "a\"b", "x y", &"k".repeat(65)] {
            assert!(!super::is_key(bad), "{bad}");
        }
    }
}
