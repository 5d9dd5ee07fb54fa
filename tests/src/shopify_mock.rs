//! A mock Shopify Admin GraphQL API for tests and the demo, speaking the wire format of
//! `POST /admin/api/{version}/graphql.json`: the access-token header (401 without it), Relay pages
//! with opaque cursors (`first` at most 250), `updated_at` search filters, the calculated query
//! cost in `extensions.cost` with a leaky bucket per shop (THROTTLED in an HTTP 200 when a query
//! costs more than is left, `MAX_COST_EXCEEDED` above 1,000 points), the served version in
//! `X-Shopify-API-Version`, and scripted faults (429/503 with `Retry-After`, forced THROTTLED,
//! 5xx).
//!
//! It answers the queries the connector sends (`locations`, `productVariants` with `shop`, a
//! location's `inventoryLevels`, `orders` sorted by `updated_at` with cursors that carry it, one
//! `order`, `productVariantsCount`), recognised by their root fields; anything else is a GraphQL
//! error, as Shopify answers a field it does not know.
//!
//! Bulk operations: `bulkOperationRunQuery` of the import query (one at a time; a second start is
//! refused with Shopify's userError), `node(id:)` and `currentBulkOperation` polls that see it
//! RUNNING for [`MockShopify::bulk_duration`] and then COMPLETED with a URL, and the JSONL file at
//! that URL (`/bulk/{id}.jsonl`, variants with their levels as children, `/` escaped as Shopify
//! writes it), served with HTTP ranges. Scripted: an operation that FAILS with a `partialDataUrl`,
//! a download cut off mid-file, URLs that have expired. Orders placed, shipped and cancelled through [`Shop`] move
//! the levels' committed and on-hand quantities as Shopify does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, web};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Location {
    pub id: u64,
    pub name: String,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct Variant {
    pub id: u64,
    pub product_id: u64,
    pub handle: String,
    pub product_title: String,
    pub sku: String,
    pub title: String,
    pub price: String,
    pub inventory_item_id: u64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub on_hand: i64,
    pub committed: i64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct OrderLine {
    pub id: u64,
    /// `None`: a custom item.
    pub variant_id: Option<u64>,
    pub sku: String,
    pub quantity: i64,
    pub fulfilled: i64,
}

#[derive(Debug, Clone)]
pub struct Fulfillment {
    pub id: u64,
    /// `SUCCESS` or `CANCELLED`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub location_id: u64,
    pub company: String,
    pub number: String,
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub id: u64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The open fulfilment order's assigned location (0: none assigned).
    pub location_id: u64,
    pub lines: Vec<OrderLine>,
    pub fulfillments: Vec<Fulfillment>,
    pub returns: Vec<Return>,
    /// Amounts refunded (with or without a return).
    pub refunds: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Return {
    pub id: u64,
    /// `REQUESTED`, `OPEN`, `CLOSED`, `DECLINED`, `CANCELED`.
    pub status: String,
    /// (index of the order's line, quantity, reason).
    pub lines: Vec<(usize, i64, String)>,
}

/// The shop's data.
#[derive(Debug, Clone, Default)]
pub struct Shop {
    pub currency: String,
    pub locations: Vec<Location>,
    /// By variant id (the order pages come in).
    pub variants: BTreeMap<u64, Variant>,
    /// By (location id, inventory item id).
    pub levels: BTreeMap<(u64, u64), Level>,
    /// By order id.
    pub orders: BTreeMap<u64, Order>,
}

impl Shop {
    /// `variants` variants (two per product), each stocked at every one of `locations` locations
    /// with a quantity derived from its number; ids above 2^53 like real ones. Variant `v` and its
    /// levels were last changed `variants - 1 - v` minutes before `at`. Nothing is committed
    /// until an order is placed ([`Shop::place_order`]).
    pub fn generate(variants: usize, locations: usize, at: DateTime<Utc>) -> Shop {
        let base: u64 = 9_007_199_254_740_993; // 2^53 + 1
        let mut shop = Shop { currency: "USD".into(), ..Shop::default() };
        for l in 0..locations {
            shop.locations.push(Location { id: base + 100 + l as u64, name: format!("Store {}", l + 1), active: true });
        }
        for v in 0..variants {
            let product = v / 2;
            let id = base + 1_000_000 + v as u64;
            let updated_at = at - chrono::Duration::minutes((variants - 1 - v) as i64);
            shop.variants.insert(
                id,
                Variant {
                    id,
                    product_id: base + 500_000 + product as u64,
                    handle: format!("product-{product}"),
                    product_title: format!("Product {product}"),
                    sku: format!("SKU-{v:06}"),
                    title: if v % 2 == 0 { "Small".into() } else { "Large".into() },
                    price: format!("{}.{:02}", 5 + v % 50, v % 100),
                    inventory_item_id: base + 2_000_000 + v as u64,
                    updated_at,
                },
            );
            for l in &shop.locations {
                let on_hand = ((v * 7 + l.id as usize) % 40) as i64;
                shop.levels.insert((l.id, base + 2_000_000 + v as u64), Level { on_hand, committed: 0, updated_at });
            }
        }
        shop
    }
}

impl Shop {
    /// Places an order at `location` for `(variant id, quantity)` lines, committing the stock as
    /// Shopify does (on hand stays, committed grows); returns its id.
    pub fn place_order(&mut self, location: u64, lines: &[(u64, i64)], at: DateTime<Utc>) -> u64 {
        let id = 9_007_199_254_740_993 + 7_000_000 + self.orders.len() as u64;
        let mut order = Order {
            id,
            name: format!("#{}", 1001 + self.orders.len()),
            created_at: at,
            updated_at: at,
            cancelled_at: None,
            location_id: location,
            lines: Vec::new(),
            fulfillments: Vec::new(),
            returns: Vec::new(),
            refunds: Vec::new(),
        };
        for (n, (variant, quantity)) in lines.iter().enumerate() {
            let v = &self.variants[variant];
            order.lines.push(OrderLine {
                id: id * 1000 + n as u64,
                variant_id: Some(*variant),
                sku: v.sku.clone(),
                quantity: *quantity,
                fulfilled: 0,
            });
            if let Some(l) = self.levels.get_mut(&(location, v.inventory_item_id)) {
                l.committed += quantity;
                l.updated_at = at;
            }
        }
        self.orders.insert(id, order);
        id
    }

    /// Ships `quantity` of line `line` (all that is left when `None`) from the order's location
    /// with tracking: on hand and committed drop.
    pub fn fulfill(&mut self, order: u64, line: usize, quantity: Option<i64>, number: &str, at: DateTime<Utc>) {
        let o = self.orders.get_mut(&order).expect("order");
        let l = &mut o.lines[line];
        let q = quantity.unwrap_or(l.quantity - l.fulfilled).min(l.quantity - l.fulfilled);
        l.fulfilled += q;
        let item = l.variant_id.map(|v| self.variants[&v].inventory_item_id);
        o.fulfillments.push(Fulfillment {
            id: order * 100 + o.fulfillments.len() as u64,
            status: "SUCCESS".into(),
            created_at: at,
            location_id: o.location_id,
            company: "UPS".into(),
            number: number.into(),
            url: format!("https://www.ups.com/track?tracknum={number}"),
        });
        o.updated_at = at;
        if let Some(level) = item.and_then(|i| self.levels.get_mut(&(o.location_id, i))) {
            level.on_hand -= q;
            level.committed -= q;
            level.updated_at = at;
        }
    }

    /// The customer starts a return of `(line index, quantity)` of a shipped order; its id.
    pub fn request_return(&mut self, order: u64, lines: &[(usize, i64)], at: DateTime<Utc>) -> u64 {
        let o = self.orders.get_mut(&order).expect("order");
        let id = order * 10 + o.returns.len() as u64;
        o.returns.push(Return {
            id,
            status: "OPEN".into(),
            lines: lines.iter().map(|(l, q)| (*l, *q, "DEFECTIVE".into())).collect(),
        });
        o.updated_at = at;
        id
    }

    /// The returned items arrived and were processed: the return closes and, with `restock`, they
    /// are back on hand at the order's location.
    pub fn close_return(&mut self, order: u64, return_id: u64, restock: bool, at: DateTime<Utc>) {
        let o = self.orders.get_mut(&order).expect("order");
        let r = o.returns.iter_mut().find(|r| r.id == return_id).expect("return");
        r.status = "CLOSED".into();
        o.updated_at = at;
        if restock {
            for (line, quantity, _) in &r.lines {
                let item = o.lines[*line].variant_id.map(|v| self.variants[&v].inventory_item_id);
                if let Some(level) = item.and_then(|i| self.levels.get_mut(&(o.location_id, i))) {
                    level.on_hand += quantity;
                    level.updated_at = at;
                }
            }
        }
    }

    /// Refunds money without a return: no stock moves.
    pub fn refund(&mut self, order: u64, amount: &str, at: DateTime<Utc>) {
        let o = self.orders.get_mut(&order).expect("order");
        o.refunds.push(amount.to_owned());
        o.updated_at = at;
    }

    /// Cancels the order: what it committed is free again.
    pub fn cancel(&mut self, order: u64, at: DateTime<Utc>) {
        let o = self.orders.get_mut(&order).expect("order");
        o.cancelled_at = Some(at);
        o.updated_at = at;
        for l in &o.lines {
            let item = l.variant_id.map(|v| self.variants[&v].inventory_item_id);
            if let Some(level) = item.and_then(|i| self.levels.get_mut(&(o.location_id, i))) {
                level.committed -= l.quantity - l.fulfilled;
                level.updated_at = at;
            }
        }
    }
}

/// A scripted answer, used before the normal one.
#[derive(Debug, Clone)]
pub enum Fault {
    /// HTTP 200 with a THROTTLED error, whatever the bucket holds.
    Throttled,
    /// HTTP 429 with `Retry-After` in seconds.
    TooMany(f64),
    /// This status with a short text body.
    Status(u16),
    /// Run the request (a mutation takes effect), then answer this status as if the connection
    /// failed before the answer arrived.
    AfterApplying(u16),
}

/// One request as the mock saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub root: String,
    pub cost: f64,
    /// What was left in the bucket when it arrived (before paying).
    pub available: f64,
    /// Answered THROTTLED because the bucket could not pay (not scripted).
    pub throttled: bool,
    pub status: u16,
}

struct Inner {
    shop: Shop,
    token: String,
    /// Answer with this version instead of the one asked for.
    served_version: Option<String>,
    maximum: f64,
    restore_rate: f64,
    available: f64,
    refilled_at: Instant,
    script: VecDeque<Fault>,
    /// Faults that join the script once this many requests have been answered.
    later: Option<(usize, Vec<Fault>)>,
    /// Answers of mutations already run, by their `@idempotent` key.
    idempotent: BTreeMap<String, Value>,
    /// How many adjustments took effect.
    pub adjustments: usize,
    /// How many variant prices `productVariantsBulkUpdate` set.
    pub price_updates: usize,
    max_cost: f64,
    seen: Vec<Seen>,
    in_flight: usize,
    max_in_flight: usize,
    latency: Duration,
    /// Where the mock is served (for result URLs).
    base_url: String,
    bulk: Vec<BulkOp>,
    /// How long an operation runs before its result is ready.
    bulk_duration: Duration,
    /// Error codes the next operations fail with (writing half their result as partial data).
    bulk_failures: VecDeque<String>,
    /// The next downloads stop after this many bytes.
    download_cuts: VecDeque<usize>,
    /// Every result download: the offset it asked for.
    downloads: Vec<u64>,
    /// Serve result files whole, ignoring `Range` (as some servers do).
    ignore_ranges: bool,
    /// The next downloads answer 403, as Shopify's URLs do once older than seven days.
    expired_downloads: usize,
}

struct BulkOp {
    id: u64,
    started: Instant,
    created_at: DateTime<Utc>,
    query: String,
    /// `RUNNING`, then `COMPLETED` or `FAILED`.
    status: &'static str,
    error_code: Option<String>,
    completed_at: Option<DateTime<Utc>>,
    objects: usize,
    data: Arc<Vec<u8>>,
}

/// A running mock shop; stops when dropped.
pub struct MockShopify {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    handle: actix_web::dev::ServerHandle,
}

/// What a query costs here: 1 per object, 2 plus `first` per connection, nested fields per node.
fn cost_of(root: &str, first: u64) -> f64 {
    match root {
        "locations" => (2 + first) as f64,
        // shop (1) + the connection, each node with its product and inventory item.
        "productVariants" => (1 + 2 + first * 3) as f64,
        // location (1) + the connection, each node with its item and quantities.
        "inventoryLevels" => (1 + 2 + first * 3) as f64,
        // inventoryItem, its level, the level's item and quantities.
        "inventoryItem" => 4.0,
        "inventoryAdjustQuantities" | "inventorySetQuantities" => 10.0,
        // Each order with 50 lines and their variants, 5 fulfilment orders with their location,
        // the price set and the fulfilments.
        "orders" => (2 + first * 128) as f64,
        "orderLines" => (3 + first * 2) as f64,
        "order" => 128.0,
        "bulkOperationRunQuery" | "fulfillmentCreate" | "productVariantsBulkUpdate" => 10.0,
        _ => 1.0,
    }
}

fn cursor_of(id: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"last_id\":{id}}}"))
}

fn after_of(cursor: &Value) -> Result<Option<u64>, String> {
    let Some(c) = cursor.as_str() else { return Ok(None) };
    let raw = base64::engine::general_purpose::STANDARD.decode(c).map_err(|_| format!("Invalid cursor {c}"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| format!("Invalid cursor {c}"))?;
    v["last_id"].as_u64().map(Some).ok_or_else(|| format!("Invalid cursor {c}"))
}

/// `updated_at:>='…'` (or `>`) of a search query.
fn since_of(query: &Value) -> Option<(DateTime<Utc>, bool)> {
    let q = query.as_str()?;
    let rest = q.split("updated_at:").nth(1)?;
    let inclusive = rest.starts_with(">=");
    let value = rest.trim_start_matches(['>', '=']).trim_matches(['\'', '"', ' ']);
    let value = value.split(['\'', '"']).next()?;
    Some((DateTime::parse_from_rfc3339(value).ok()?.to_utc(), inclusive))
}

fn newer(t: DateTime<Utc>, since: Option<(DateTime<Utc>, bool)>) -> bool {
    match since {
        None => true,
        Some((s, true)) => t >= s,
        Some((s, false)) => t > s,
    }
}

fn gid(kind: &str, id: u64) -> String {
    format!("gid://shopify/{kind}/{id}")
}

fn page(nodes: Vec<Value>, last: Option<u64>, more: bool) -> Value {
    json!({ "nodes": nodes, "pageInfo": { "hasNextPage": more, "endCursor": last.map(cursor_of) } })
}

fn variant_node(v: &Variant) -> Value {
    json!({
        "id": gid("ProductVariant", v.id), "sku": v.sku, "title": v.title, "barcode": null,
        "price": v.price, "updatedAt": time(v.updated_at),
        "inventoryItem": { "id": gid("InventoryItem", v.inventory_item_id) },
        "product": { "id": gid("Product", v.product_id), "handle": v.handle, "title": v.product_title, "status": "ACTIVE", "productType": "Mock" }
    })
}

fn level_node(location: u64, item: u64, level: &Level) -> Value {
    json!({
        "id": format!("gid://shopify/InventoryLevel/{location}?inventory_item_id={item}"),
        "updatedAt": level.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "item": { "id": gid("InventoryItem", item) },
        "quantities": [
            { "name": "available", "quantity": level.on_hand - level.committed },
            { "name": "on_hand", "quantity": level.on_hand },
            { "name": "committed", "quantity": level.committed }
        ]
    })
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn line_node(o: &Order, l: &OrderLine) -> Value {
    json!({
        "id": gid("LineItem", l.id), "sku": l.sku, "quantity": l.quantity, "currentQuantity": l.quantity,
        "unfulfilledQuantity": if o.cancelled_at.is_some() { 0 } else { l.quantity - l.fulfilled },
        "variant": l.variant_id.map(|v| json!({ "id": gid("ProductVariant", v) })),
    })
}

fn order_node(o: &Order) -> Value {
    let lines: Vec<Value> = o.lines.iter().map(|l| line_node(o, l)).collect();
    let open = o.cancelled_at.is_none() && o.lines.iter().any(|l| l.fulfilled < l.quantity);
    json!({
        "id": gid("Order", o.id), "name": o.name, "createdAt": time(o.created_at), "updatedAt": time(o.updated_at),
        "cancelledAt": o.cancelled_at.map(time), "currencyCode": "USD",
        "totalPriceSet": { "shopMoney": { "amount": "10.00" } },
        // The first 50 lines, as the connector asks; the rest through `orderLines`.
        "lineItems": {
            "nodes": lines.iter().take(50).collect::<Vec<_>>(),
            "pageInfo": { "hasNextPage": lines.len() > 50, "endCursor": o.lines.get(49).map(|l| cursor_of(l.id)) },
        },
        // One fulfilment order per order, its line items numbered as the order's lines; none
        // for an order placed at location 0 (no location assigned yet).
        "fulfillmentOrders": { "nodes": if o.location_id == 0 { vec![] } else { vec![json!({
            "id": gid("FulfillmentOrder", o.id),
            "status": if open { "OPEN" } else { "CLOSED" },
            "assignedLocation": { "location": { "id": gid("Location", o.location_id) } },
            "lineItems": { "nodes": o.lines.iter().map(|l| json!({
                "id": gid("FulfillmentOrderLineItem", l.id), "totalQuantity": l.quantity,
                "remainingQuantity": if o.cancelled_at.is_some() { 0 } else { l.quantity - l.fulfilled },
                "lineItem": { "id": gid("LineItem", l.id) },
            })).collect::<Vec<_>>() },
        })] } },
        "returnStatus": if o.returns.is_empty() {
            "NO_RETURN"
        } else if o.returns.iter().any(|r| r.status == "OPEN" || r.status == "REQUESTED") {
            "IN_PROGRESS"
        } else {
            "RETURNED"
        },
        "returns": { "nodes": o.returns.iter().map(|r| json!({
            "id": gid("Return", r.id), "name": format!("{}-R{}", o.name, r.id % 10 + 1), "status": r.status,
            "returnLineItems": { "nodes": r.lines.iter().enumerate().map(|(n, (line, quantity, reason))| json!({
                "id": gid("ReturnLineItem", r.id * 100 + n as u64), "quantity": quantity, "returnReason": reason,
                "fulfillmentLineItem": { "lineItem": { "id": gid("LineItem", o.lines[*line].id) } },
            })).collect::<Vec<_>>() },
        })).collect::<Vec<_>>() },
        "refunds": o.refunds.iter().enumerate().map(|(n, amount)| json!({
            "id": gid("Refund", o.id * 10 + n as u64),
            "totalRefundedSet": { "shopMoney": { "amount": amount, "currencyCode": "USD" } },
        })).collect::<Vec<_>>(),
        "fulfillments": o.fulfillments.iter().map(|f| json!({
            "id": gid("Fulfillment", f.id), "status": f.status, "createdAt": time(f.created_at),
            "location": { "id": gid("Location", f.location_id) },
            "trackingInfo": [{ "company": f.company, "number": f.number, "url": f.url }],
        })).collect::<Vec<_>>(),
    })
}

/// An `orders` cursor: the sort value (`updated_at`) and the id, as Shopify's carry both.
fn order_cursor(o: &Order) -> String {
    base64::engine::general_purpose::STANDARD.encode(
        json!({ "last_id": o.id, "last_value": o.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true) })
            .to_string(),
    )
}

fn graphql_error(message: &str, code: &str) -> Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

/// The shop as a bulk result of the import query: each variant, then its levels as children; and
/// the number of objects in it.
pub fn import_file(shop: &Shop) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut objects = 0;
    let mut push = |v: Value| {
        // Shopify writes `/` escaped.
        out.extend_from_slice(v.to_string().replace('/', "\\/").as_bytes());
        out.push(b'\n');
        objects += 1;
    };
    for v in shop.variants.values() {
        push(variant_node(v));
        for l in &shop.locations {
            if let Some(level) = shop.levels.get(&(l.id, v.inventory_item_id)) {
                let mut node = level_node(l.id, v.inventory_item_id, level);
                node["location"] = json!({ "id": gid("Location", l.id) });
                node["__parentId"] = json!(gid("ProductVariant", v.id));
                push(node);
            }
        }
    }
    (out, objects)
}

impl Inner {
    /// `fulfillmentCreate`: ships the fulfilment-order line items asked for (on hand and
    /// committed drop at the order's location), or answers Shopify's userErrors.
    fn create_fulfillment(&mut self, vars: &Value) -> Value {
        let refuse = |message: &str| json!({ "fulfillmentCreate": { "fulfillment": null, "userErrors": [{ "field": ["fulfillment"], "message": message }] } });
        let f = &vars["fulfillment"];
        let groups = f["lineItemsByFulfillmentOrder"].as_array().cloned().unwrap_or_default();
        let mut shipped: Vec<(u64, usize, i64)> = Vec::new();
        for g in &groups {
            let order = g["fulfillmentOrderId"]
                .as_str()
                .and_then(|id| self.shop.orders.values().find(|o| gid("FulfillmentOrder", o.id) == id));
            let Some(o) = order.filter(|o| o.cancelled_at.is_none()) else {
                return refuse("Fulfillment order does not exist.");
            };
            for item in g["fulfillmentOrderLineItems"].as_array().into_iter().flatten() {
                let line = item["id"]
                    .as_str()
                    .and_then(|id| o.lines.iter().position(|l| gid("FulfillmentOrderLineItem", l.id) == id));
                let quantity = item["quantity"].as_i64().unwrap_or(0);
                match line {
                    Some(n) if quantity > 0 && quantity <= o.lines[n].quantity - o.lines[n].fulfilled => {
                        shipped.push((o.id, n, quantity));
                    }
                    _ => return refuse("Invalid fulfillment order line item quantity requested."),
                }
            }
        }
        let Some(order_id) = shipped.first().map(|s| s.0) else { return refuse("Line items are required.") };
        let now = Utc::now();
        let tracking = &f["trackingInfo"];
        let o = self.shop.orders.get_mut(&order_id).expect("order found above");
        let id = order_id * 100 + o.fulfillments.len() as u64;
        for (_, n, quantity) in &shipped {
            let line = &mut o.lines[*n];
            line.fulfilled += quantity;
            let item = line.variant_id.map(|v| self.shop.variants[&v].inventory_item_id);
            if let Some(level) = item.and_then(|i| self.shop.levels.get_mut(&(o.location_id, i))) {
                level.on_hand -= quantity;
                level.committed -= quantity;
                level.updated_at = now;
            }
        }
        o.fulfillments.push(Fulfillment {
            id,
            status: "SUCCESS".into(),
            created_at: now,
            location_id: o.location_id,
            company: tracking["company"].as_str().unwrap_or_default().into(),
            number: tracking["number"].as_str().unwrap_or_default().into(),
            url: tracking["url"].as_str().unwrap_or_default().into(),
        });
        o.updated_at = now;
        json!({ "fulfillmentCreate": { "fulfillment": { "id": gid("Fulfillment", id), "status": "SUCCESS" }, "userErrors": [] } })
    }

    fn start_bulk(&mut self, vars: &Value) -> Value {
        let query = vars["query"].as_str().unwrap_or_default().to_owned();
        for id in 0..self.bulk.len() {
            self.refresh_bulk(id);
        }
        if self.bulk.iter().any(|b| b.status == "RUNNING") {
            return json!({ "bulkOperationRunQuery": { "bulkOperation": null, "userErrors": [{
                "field": null, "message": "A bulk query operation for this app and shop is already in progress: gid://shopify/BulkOperation/1."
            }] } });
        }
        if !(query.contains("productVariants") && query.contains("inventoryLevels")) {
            return json!({ "bulkOperationRunQuery": { "bulkOperation": null, "userErrors": [{
                "field": ["query"], "message": "This mock runs only the import query."
            }] } });
        }
        let id = 720_918 + self.bulk.len() as u64;
        self.bulk.push(BulkOp {
            id,
            started: Instant::now(),
            created_at: Utc::now(),
            query,
            status: "RUNNING",
            error_code: None,
            completed_at: None,
            objects: 0,
            data: Arc::default(),
        });
        json!({ "bulkOperationRunQuery": { "bulkOperation": { "id": gid("BulkOperation", id), "status": "CREATED" }, "userErrors": [] } })
    }

    /// Finishes operation `n` once it has run its time: the shop as it is then, or half of it
    /// when a failure is scripted.
    fn refresh_bulk(&mut self, n: usize) {
        if self.bulk[n].status != "RUNNING" || self.bulk[n].started.elapsed() < self.bulk_duration {
            return;
        }
        if !self.bulk[n].query.contains("productVariants") {
            // Another query of the app ([`MockShopify::busy_bulk`]): done, nothing to read here.
            (self.bulk[n].status, self.bulk[n].completed_at) = ("COMPLETED", Some(Utc::now()));
            return;
        }
        let (mut data, mut objects) = import_file(&self.shop);
        let op = &mut self.bulk[n];
        op.completed_at = Some(Utc::now());
        match self.bulk_failures.pop_front() {
            Some(code) => {
                op.status = "FAILED";
                op.error_code = Some(code);
                // What was written before it stopped: the first half, cut at a line.
                let half = data.len() / 2;
                let cut = data[..half].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                objects = data[..cut].iter().filter(|b| **b == b'\n').count();
                data.truncate(cut);
            }
            None => op.status = "COMPLETED",
        }
        op.objects = objects;
        op.data = Arc::new(data);
    }

    fn bulk_state(&mut self, root: &str, vars: &Value) -> Value {
        let n = if root == "node" {
            let id = vars["id"].as_str().unwrap_or_default();
            self.bulk.iter().position(|b| gid("BulkOperation", b.id) == id)
        } else {
            self.bulk.len().checked_sub(1)
        };
        let Some(n) = n else { return json!({ root: null }) };
        self.refresh_bulk(n);
        let op = &self.bulk[n];
        let url = format!("{}/bulk/{}.jsonl", self.base_url, op.id);
        let has_data = op.objects > 0;
        json!({ root: {
            "id": gid("BulkOperation", op.id), "status": op.status, "errorCode": op.error_code,
            "createdAt": time(op.created_at), "completedAt": op.completed_at.map(time),
            "objectCount": op.objects.to_string(), "fileSize": op.data.len().to_string(),
            "url": if op.status == "COMPLETED" && has_data { Some(&url) } else { None },
            "partialDataUrl": if op.status == "FAILED" && has_data { Some(&url) } else { None },
            "query": op.query,
        } })
    }
    fn refill(&mut self) {
        let now = Instant::now();
        self.available =
            (self.available + (now - self.refilled_at).as_secs_f64() * self.restore_rate).min(self.maximum);
        self.refilled_at = now;
    }

    fn cost(&self, requested: f64, actual: Option<f64>) -> Value {
        json!({ "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": { "maximumAvailable": self.maximum, "currentlyAvailable": self.available, "restoreRate": self.restore_rate }
        }})
    }

    /// Runs a query or mutation: its data, or a GraphQL error message.
    fn run(&mut self, root: &str, query: &str, vars: &Value) -> Result<Value, String> {
        match root {
            "bulkOperationRunQuery" => return Ok(self.start_bulk(vars)),
            "fulfillmentCreate" => return Ok(self.create_fulfillment(vars)),
            "productVariantsBulkUpdate" => return Ok(self.update_prices(vars)),
            "node" | "currentBulkOperation" => return Ok(self.bulk_state(root, vars)),
            "inventoryAdjustQuantities" | "inventorySetQuantities" => {}
            _ => return self.data(root, vars),
        }
        let key = query.split("@idempotent(key:").nth(1).and_then(|r| r.split('"').nth(1)).map(str::to_owned);
        let Some(key) = key else {
            // Required from 2026-04; this mock requires it always.
            return Err("The @idempotent directive is required for this mutation".into());
        };
        if let Some(done) = self.idempotent.get(&key) {
            return Ok(done.clone());
        }
        if root == "inventorySetQuantities" {
            let data = self.set_quantities(&vars["input"]);
            self.idempotent.insert(key, data.clone());
            return Ok(data);
        }
        let input = &vars["input"];
        let mut changes = Vec::new();
        let mut errors = Vec::new();
        let now = Utc::now();
        for (n, c) in input["changes"].as_array().into_iter().flatten().enumerate() {
            let id = |k: &str, kind: &str| {
                c[k].as_str()
                    .and_then(|g| g.strip_prefix(&format!("gid://shopify/{kind}/")))
                    .and_then(|n| n.parse::<u64>().ok())
            };
            let (Some(item), Some(location), Some(delta)) =
                (id("inventoryItemId", "InventoryItem"), id("locationId", "Location"), c["delta"].as_i64())
            else {
                errors.push(json!({ "field": ["input", "changes", n.to_string()], "message": "Invalid change", "code": "INVALID" }));
                continue;
            };
            let Some(level) = self.shop.levels.get_mut(&(location, item)) else {
                errors.push(json!({ "field": ["input", "changes", n.to_string(), "inventoryItemId"], "message": "The item is not stocked at the location.", "code": "ITEM_NOT_STOCKED_AT_LOCATION" }));
                continue;
            };
            level.on_hand += delta;
            level.updated_at = now;
            changes.push(
                json!({ "name": "available", "delta": delta, "quantityAfterChange": level.on_hand - level.committed }),
            );
        }
        let data = if errors.is_empty() {
            self.adjustments += changes.len();
            json!({ "inventoryAdjustQuantities": { "inventoryAdjustmentGroup": { "createdAt": now.to_rfc3339(), "changes": changes }, "userErrors": [] } })
        } else {
            json!({ "inventoryAdjustQuantities": { "inventoryAdjustmentGroup": null, "userErrors": errors } })
        };
        self.idempotent.insert(key, data.clone());
        Ok(data)
    }

    /// `productVariantsBulkUpdate` of prices: every variant must exist under `productId` and
    /// every price be a non-negative decimal string, or nothing is set (the user errors name the
    /// field as Shopify does).
    fn update_prices(&mut self, vars: &Value) -> Value {
        let number = |v: &Value, kind: &str| {
            v.as_str()
                .and_then(|g| g.strip_prefix(&format!("gid://shopify/{kind}/")))
                .and_then(|n| n.parse::<u64>().ok())
        };
        let product = number(&vars["productId"], "Product");
        let mut updates = Vec::new();
        let mut errors = Vec::new();
        for (n, v) in vars["variants"].as_array().into_iter().flatten().enumerate() {
            let id = number(&v["id"], "ProductVariant")
                .filter(|id| self.shop.variants.get(id).is_some_and(|x| Some(x.product_id) == product));
            let price = v["price"].as_str().filter(|p| p.parse::<f64>().is_ok_and(|p| p >= 0.0));
            match (id, price) {
                (Some(id), Some(price)) => updates.push((id, price.to_owned())),
                (None, _) => errors.push(
                    json!({ "field": ["variants", n.to_string(), "id"], "message": "Product variant does not exist" }),
                ),
                (_, None) => {
                    errors.push(json!({ "field": ["variants", n.to_string(), "price"], "message": "Price is invalid" }))
                }
            }
        }
        if !errors.is_empty() {
            return json!({ "productVariantsBulkUpdate": { "productVariants": null, "userErrors": errors } });
        }
        let now = Utc::now();
        let mut changed = Vec::new();
        for (id, price) in updates {
            if let Some(v) = self.shop.variants.get_mut(&id) {
                v.price = price;
                v.updated_at = now;
                self.price_updates += 1;
                changed.push(json!({ "id": gid("ProductVariant", id), "updatedAt": now.to_rfc3339() }));
            }
        }
        json!({ "productVariantsBulkUpdate": { "productVariants": changed, "userErrors": [] } })
    }

    /// `inventorySetQuantities` of `on_hand`, compare-and-swap: each quantity carries the one it
    /// changes from (`changeFromQuantity`, or `compareQuantity` before 2026-04; `null` to opt
    /// out); any mismatch (`CHANGE_FROM_QUANTITY_STALE`) and nothing is set.
    fn set_quantities(&mut self, input: &Value) -> Value {
        let refuse = |errors: Vec<Value>| json!({ "inventorySetQuantities": { "inventoryAdjustmentGroup": null, "userErrors": errors } });
        if input["name"] != "on_hand" {
            return refuse(vec![
                json!({ "field": ["input", "name"], "message": "Only on_hand is supported here.", "code": "INVALID_NAME" }),
            ]);
        }
        let mut sets = Vec::new();
        let mut errors = Vec::new();
        for (n, q) in input["quantities"].as_array().into_iter().flatten().enumerate() {
            let field = |f: &str| json!(["input", "quantities", n.to_string(), f]);
            let id = |k: &str, kind: &str| {
                q[k].as_str()
                    .and_then(|g| g.strip_prefix(&format!("gid://shopify/{kind}/")))
                    .and_then(|n| n.parse::<u64>().ok())
            };
            let (Some(item), Some(location), Some(quantity)) =
                (id("inventoryItemId", "InventoryItem"), id("locationId", "Location"), q["quantity"].as_i64())
            else {
                errors.push(json!({ "field": field("quantity"), "message": "Invalid quantity", "code": "INVALID" }));
                continue;
            };
            let Some(level) = self.shop.levels.get(&(location, item)) else {
                errors.push(json!({ "field": field("inventoryItemId"), "message": "The item is not stocked at the location.", "code": "ITEM_NOT_STOCKED_AT_LOCATION" }));
                continue;
            };
            let compare = ["changeFromQuantity", "compareQuantity"].into_iter().find_map(|f| q.get(f).map(|v| (f, v)));
            match compare {
                None => errors.push(json!({ "field": field("changeFromQuantity"), "message": "changeFromQuantity is required.", "code": "INVALID" })),
                Some((f, v)) if !v.is_null() && v.as_i64() != Some(level.on_hand) => errors.push(json!({
                    "field": field(f), "message": "The specified compare quantity does not match the current quantity.",
                    "code": "CHANGE_FROM_QUANTITY_STALE",
                })),
                Some(_) => sets.push(((location, item), quantity)),
            }
        }
        if !errors.is_empty() {
            return refuse(errors);
        }
        let now = Utc::now();
        let mut changes = Vec::new();
        for (at, quantity) in sets {
            let level = self.shop.levels.get_mut(&at).expect("checked above");
            changes
                .push(json!({ "name": "on_hand", "delta": quantity - level.on_hand, "quantityAfterChange": quantity }));
            level.on_hand = quantity;
            level.updated_at = now;
        }
        self.adjustments += changes.len();
        json!({ "inventorySetQuantities": { "inventoryAdjustmentGroup": { "createdAt": now.to_rfc3339(), "changes": changes }, "userErrors": [] } })
    }

    /// The data of a query, or a GraphQL error message.
    fn data(&self, root: &str, vars: &Value) -> Result<Value, String> {
        if root == "inventoryItem" {
            let item = vars["item"].as_str().unwrap_or_default();
            let location = vars["location"].as_str().unwrap_or_default();
            let key = self
                .shop
                .levels
                .keys()
                .find(|(l, i)| gid("InventoryItem", *i) == item && gid("Location", *l) == location);
            let Some((l, i)) = key.copied() else {
                let known = self.shop.levels.keys().any(|(_, i)| gid("InventoryItem", *i) == item);
                return Ok(
                    json!({ "inventoryItem": if known { json!({ "inventoryLevel": null }) } else { Value::Null } }),
                );
            };
            return Ok(json!({ "inventoryItem": { "inventoryLevel": level_node(l, i, &self.shop.levels[&(l, i)]) } }));
        }
        if root == "productVariantsCount" {
            return Ok(json!({ "shop": { "currencyCode": self.shop.currency },
                "productVariantsCount": { "count": self.shop.variants.len(), "precision": "EXACT" } }));
        }
        if root == "order" {
            let id = vars["id"].as_str().unwrap_or_default();
            let found = self.shop.orders.values().find(|o| gid("Order", o.id) == id);
            return Ok(json!({ "order": found.map(order_node) }));
        }
        let first = vars["first"].as_u64().unwrap_or(0);
        if !(1..=250).contains(&first) {
            return Err("The first argument must be between 1 and 250".into());
        }
        if root == "orderLines" {
            let id = vars["id"].as_str().unwrap_or_default();
            let Some(o) = self.shop.orders.values().find(|o| gid("Order", o.id) == id) else {
                return Ok(json!({ "order": null }));
            };
            let after = after_of(&vars["after"])?;
            let rest: Vec<&OrderLine> = o.lines.iter().filter(|l| after.is_none_or(|a| l.id > a)).collect();
            let take = first as usize;
            let nodes: Vec<Value> = rest.iter().take(take).map(|l| line_node(o, l)).collect();
            let last = rest.get(take.min(rest.len()).saturating_sub(1)).filter(|_| !rest.is_empty()).map(|l| l.id);
            return Ok(json!({ "order": { "lineItems": page(nodes, last, rest.len() > take) } }));
        }
        if root == "orders" {
            let after = match vars["after"].as_str() {
                Some(c) => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(c)
                        .map_err(|_| format!("Invalid cursor {c}"))?;
                    let v: Value = serde_json::from_slice(&raw).map_err(|_| format!("Invalid cursor {c}"))?;
                    let at = v["last_value"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                    match (at, v["last_id"].as_u64()) {
                        (Some(at), Some(id)) => Some((at.to_utc(), id)),
                        _ => return Err(format!("Invalid cursor {c}")),
                    }
                }
                None => None,
            };
            let since = since_of(&vars["query"]);
            let mut all: Vec<&Order> = self
                .shop
                .orders
                .values()
                .filter(|o| newer(o.updated_at, since) && after.is_none_or(|a| (o.updated_at, o.id) > a))
                .collect();
            all.sort_by_key(|o| (o.updated_at, o.id));
            let take = first as usize;
            let nodes: Vec<Value> = all.iter().take(take).map(|o| order_node(o)).collect();
            let end =
                all.get(take.min(all.len()).saturating_sub(1)).filter(|_| !all.is_empty()).map(|o| order_cursor(o));
            return Ok(json!({ "orders": {
                "nodes": nodes, "pageInfo": { "hasNextPage": all.len() > take, "endCursor": end }
            } }));
        }
        let after = after_of(&vars["after"])?;
        let since = since_of(&vars["query"]);
        let product = vars["query"]
            .as_str()
            .and_then(|q| q.split("product_id:").nth(1))
            .and_then(|p| p.trim_matches(['\'', '"']).split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok());
        let take = first as usize;
        match root {
            "locations" => {
                let rest: Vec<&Location> =
                    self.shop.locations.iter().filter(|l| after.is_none_or(|a| l.id > a)).collect();
                let nodes = rest
                    .iter()
                    .take(take)
                    .map(|l| json!({ "id": gid("Location", l.id), "name": l.name, "isActive": l.active }))
                    .collect();
                let last = rest.get(take.min(rest.len()).saturating_sub(1)).filter(|_| take > 0).map(|l| l.id);
                Ok(json!({ "locations": page(nodes, last, rest.len() > take) }))
            }
            "productVariants" => {
                let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
                let mut nodes = Vec::new();
                let mut last = None;
                let mut more = false;
                for v in self.shop.variants.range((start, std::ops::Bound::Unbounded)).map(|(_, v)| v) {
                    if !newer(v.updated_at, since) || product.is_some_and(|p| p != v.product_id) {
                        continue;
                    }
                    if nodes.len() == take {
                        more = true;
                        break;
                    }
                    last = Some(v.id);
                    nodes.push(variant_node(v));
                }
                Ok(
                    json!({ "shop": { "currencyCode": self.shop.currency }, "productVariants": page(nodes, last, more) }),
                )
            }
            "inventoryLevels" => {
                let location = vars["location"].as_str().unwrap_or_default();
                let Some(l) = self.shop.locations.iter().find(|l| gid("Location", l.id) == location) else {
                    return Ok(json!({ "location": null }));
                };
                let start =
                    after.map_or(std::ops::Bound::Included((l.id, 0)), |a| std::ops::Bound::Excluded((l.id, a)));
                let mut nodes = Vec::new();
                let mut last = None;
                let mut more = false;
                for ((_, item), level) in self.shop.levels.range((start, std::ops::Bound::Included((l.id, u64::MAX)))) {
                    if !newer(level.updated_at, since) {
                        continue;
                    }
                    if nodes.len() == take {
                        more = true;
                        break;
                    }
                    last = Some(*item);
                    nodes.push(level_node(l.id, *item, level));
                }
                Ok(json!({ "location": { "inventoryLevels": page(nodes, last, more) } }))
            }
            other => Err(format!("Field '{other}' doesn't exist on type 'QueryRoot'")),
        }
    }
}

/// The root field a query asks for.
fn root_of(query: &str) -> &'static str {
    if query.contains("inventoryAdjustQuantities(") {
        "inventoryAdjustQuantities"
    } else if query.contains("inventorySetQuantities(") {
        "inventorySetQuantities"
    } else if query.contains("fulfillmentCreate(") {
        "fulfillmentCreate"
    } else if query.contains("productVariantsBulkUpdate(") {
        "productVariantsBulkUpdate"
    } else if query.contains("bulkOperationRunQuery(") {
        "bulkOperationRunQuery"
    } else if query.contains("currentBulkOperation(") {
        "currentBulkOperation"
    } else if query.contains("lineItems(first: $first") {
        "orderLines"
    } else if query.contains("productVariantsCount") {
        "productVariantsCount"
    } else if query.contains("node(") {
        "node"
    } else if query.contains("orders(") {
        "orders"
    } else if query.contains("order(") {
        "order"
    } else if query.contains("productVariants(") {
        "productVariants"
    } else if query.contains("inventoryLevels(") {
        "inventoryLevels"
    } else if query.contains("locations(") {
        "locations"
    } else if query.contains("inventoryItem(") {
        "inventoryItem"
    } else {
        "unknown"
    }
}

async fn graphql(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    inner: web::Data<Arc<Mutex<Inner>>>,
) -> HttpResponse {
    let version = path.into_inner();
    let latency = {
        let mut i = inner.lock().expect("mock lock");
        i.in_flight += 1;
        i.max_in_flight = i.max_in_flight.max(i.in_flight);
        i.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = answer(&req, &version, &body, &inner);
    inner.lock().expect("mock lock").in_flight -= 1;
    response
}

fn answer(req: &HttpRequest, version: &str, body: &[u8], inner: &Mutex<Inner>) -> HttpResponse {
    let mut i = inner.lock().expect("mock lock");
    let served = i.served_version.clone().unwrap_or_else(|| version.to_owned());
    let token = req.headers().get("X-Shopify-Access-Token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let query = request["query"].as_str().unwrap_or_default();
    let root = root_of(query);
    let first = request["variables"]["first"].as_u64().unwrap_or(0);
    let cost = cost_of(root, first);
    i.refill();
    let mut seen =
        Seen { at: Instant::now(), root: root.to_owned(), cost, available: i.available, throttled: false, status: 200 };
    let respond = |i: &mut Inner, seen: Seen, status: u16, retry_after: Option<f64>, body: Value| {
        i.seen.push(Seen { status, ..seen });
        let mut r = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"));
        r.insert_header(("X-Shopify-API-Version", served.as_str()));
        if let Some(s) = retry_after {
            r.insert_header(("Retry-After", s.to_string()));
        }
        r.content_type("application/json").body(body.to_string())
    };
    if token != i.token {
        let body = json!({ "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)" });
        return respond(&mut i, seen, 401, None, body);
    }
    if i.later.as_ref().is_some_and(|(n, _)| i.seen.len() >= *n)
        && let Some((_, faults)) = i.later.take()
    {
        i.script.extend(faults);
    }
    if let Some(fault) = i.script.pop_front() {
        return match fault {
            Fault::Throttled => {
                let mut body = graphql_error("Throttled", "THROTTLED");
                body["extensions"] = i.cost(cost, None);
                respond(&mut i, seen, 200, None, body)
            }
            Fault::TooMany(s) => respond(&mut i, seen, 429, Some(s), json!({ "errors": "Too many requests" })),
            Fault::Status(code) => respond(&mut i, seen, code, None, json!({ "errors": format!("HTTP {code}") })),
            Fault::AfterApplying(code) => {
                let _ = i.run(root, query, &request["variables"]);
                respond(&mut i, seen, code, None, json!({ "errors": format!("HTTP {code}") }))
            }
        };
    }
    if cost > i.max_cost {
        let max = i.max_cost;
        let mut body = graphql_error(
            &format!("Query cost is {cost}, which exceeds the single query max cost limit ({max})."),
            "MAX_COST_EXCEEDED",
        );
        body["errors"][0]["extensions"]["cost"] = json!(cost);
        body["errors"][0]["extensions"]["maxCost"] = json!(max);
        return respond(&mut i, seen, 200, None, body);
    }
    if cost > i.available {
        seen.throttled = true;
        let mut body = graphql_error("Throttled", "THROTTLED");
        body["extensions"] = i.cost(cost, None);
        return respond(&mut i, seen, 200, None, body);
    }
    match i.run(root, query, &request["variables"]) {
        Ok(data) => {
            i.available -= cost;
            let extensions = i.cost(cost, Some(cost));
            respond(&mut i, seen, 200, None, json!({ "data": data, "extensions": extensions }))
        }
        Err(message) => respond(&mut i, seen, 200, None, graphql_error(&message, "BAD_REQUEST")),
    }
}

/// A bulk result file: from the offset of a `Range: bytes=N-` header (206), whole otherwise.
async fn download(req: HttpRequest, path: web::Path<String>, inner: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let mut i = inner.lock().expect("mock lock");
    let id = path.trim_end_matches(".jsonl").parse::<u64>().ok();
    let Some(op) = i.bulk.iter().find(|b| Some(b.id) == id && b.completed_at.is_some()) else {
        return HttpResponse::NotFound().body("NoSuchKey");
    };
    let data = op.data.clone();
    if i.expired_downloads > 0 {
        i.expired_downloads -= 1;
        return HttpResponse::Forbidden()
            .body("<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>");
    }
    let from = req
        .headers()
        .get("Range")
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
    i.downloads.push(from.unwrap_or(0) as u64);
    let from = from.filter(|_| !i.ignore_ranges);
    let cut = i.download_cuts.pop_front();
    drop(i);
    let start = from.unwrap_or(0);
    if start > data.len() {
        return HttpResponse::RangeNotSatisfiable().finish();
    }
    let mut r = if from.is_some() { HttpResponse::PartialContent() } else { HttpResponse::Ok() };
    r.content_type("application/jsonl");
    let body = web::Bytes::copy_from_slice(&data[start..]);
    match cut {
        None => r.body(body),
        Some(n) => {
            // The first `n` bytes, then the connection fails.
            let head = body.slice(..n.min(body.len()));
            let chunks: Vec<Result<web::Bytes, std::io::Error>> =
                vec![Ok(head), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut"))];
            r.streaming(futures_util::stream::iter(chunks))
        }
    }
}

impl MockShopify {
    /// Serves `shop` to requests carrying `token`, with a bucket of 10,000 points refilling at
    /// 1,000 a second (Shopify Plus) unless changed with [`MockShopify::bucket`].
    pub async fn start(shop: Shop, token: &str) -> MockShopify {
        let inner = Arc::new(Mutex::new(Inner {
            shop,
            token: token.to_owned(),
            served_version: None,
            maximum: 10_000.0,
            restore_rate: 1000.0,
            available: 10_000.0,
            refilled_at: Instant::now(),
            script: VecDeque::new(),
            later: None,
            idempotent: BTreeMap::new(),
            adjustments: 0,
            price_updates: 0,
            max_cost: 1000.0,
            seen: Vec::new(),
            in_flight: 0,
            max_in_flight: 0,
            latency: Duration::ZERO,
            base_url: String::new(),
            bulk: Vec::new(),
            bulk_duration: Duration::from_millis(300),
            bulk_failures: VecDeque::new(),
            download_cuts: VecDeque::new(),
            downloads: Vec::new(),
            ignore_ranges: false,
            expired_downloads: 0,
        }));
        let data = web::Data::new(inner.clone());
        let (port, handle) = crate::serve_loopback!(2, move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/admin/api/{version}/graphql.json", web::post().to(graphql))
                .route("/bulk/{file}", web::get().to(download))
        });
        // Bulk result URLs point here; nothing is asked before this returns.
        inner.lock().expect("mock lock").base_url = format!("http://127.0.0.1:{port}");
        MockShopify { url: format!("http://127.0.0.1:{port}"), inner, handle }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().expect("mock lock"))
    }

    /// Sets the bucket: its size, refill rate and what is in it now.
    pub fn bucket(&self, maximum: f64, restore_rate: f64, available: f64) {
        self.with(|i| {
            i.maximum = maximum;
            i.restore_rate = restore_rate;
            i.available = available;
            i.refilled_at = Instant::now();
        });
    }

    /// Answers the next requests with these faults, in order.
    pub fn script(&self, faults: &[Fault]) {
        self.with(|i| i.script.extend(faults.iter().cloned()));
    }

    /// Answers with these faults once `after` requests have been answered.
    pub fn script_after(&self, after: usize, faults: &[Fault]) {
        self.with(|i| i.later = Some((after, faults.to_vec())));
    }

    /// Refuses queries that cost more than `max` points (Shopify: 1,000).
    pub fn max_cost(&self, max: f64) {
        self.with(|i| i.max_cost = max);
    }

    /// Answers as if it served `version` (a pinned version out of support).
    pub fn serve_version(&self, version: Option<&str>) {
        self.with(|i| i.served_version = version.map(str::to_owned));
    }

    /// Each request takes at least this long.
    pub fn latency(&self, latency: Duration) {
        self.with(|i| i.latency = latency);
    }

    /// Changes the shop's data.
    pub fn edit(&self, f: impl FnOnce(&mut Shop)) {
        self.with(|i| f(&mut i.shop));
    }

    /// How many variant prices were set.
    pub fn price_updates(&self) -> usize {
        self.with(|i| i.price_updates)
    }

    /// How many stock adjustments took effect (a replayed idempotent mutation is not counted).
    pub fn adjustments(&self) -> usize {
        self.with(|i| i.adjustments)
    }

    pub fn shop(&self) -> Shop {
        self.with(|i| i.shop.clone())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.with(|i| i.seen.clone())
    }

    /// How long a bulk operation runs before its result is ready.
    pub fn bulk_duration(&self, d: Duration) {
        self.with(|i| i.bulk_duration = d);
    }

    /// The next bulk operation fails with this error code, with half its result as partial data.
    pub fn fail_next_bulk(&self, code: &str) {
        self.with(|i| i.bulk_failures.push_back(code.to_owned()));
    }

    /// The next result download stops after `bytes` bytes, the connection failing.
    pub fn cut_next_download(&self, bytes: usize) {
        self.with(|i| i.download_cuts.push_back(bytes));
    }

    /// The next result download answers 403, as Shopify's URLs do once older than seven days.
    pub fn expire_next_download(&self) {
        self.with(|i| i.expired_downloads += 1);
    }

    /// Another bulk query of the app (not the import) runs for [`MockShopify::bulk_duration`].
    pub fn busy_bulk(&self) {
        self.with(|i| {
            let id = 720_918 + i.bulk.len() as u64;
            i.bulk.push(BulkOp {
                id,
                started: Instant::now(),
                created_at: Utc::now(),
                query: "{ orders { edges { node { id } } } }".into(),
                status: "RUNNING",
                error_code: None,
                completed_at: None,
                objects: 0,
                data: Arc::default(),
            });
        });
    }

    /// Serves result files whole whatever `Range` asks for.
    pub fn ignore_ranges(&self, ignore: bool) {
        self.with(|i| i.ignore_ranges = ignore);
    }

    /// Bulk operations started.
    pub fn bulk_operations(&self) -> usize {
        self.with(|i| i.bulk.len())
    }

    /// The offsets result downloads started from.
    pub fn downloads(&self) -> Vec<u64> {
        self.with(|i| i.downloads.clone())
    }

    /// The most requests that were being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.with(|i| i.max_in_flight)
    }
}

/// Delivers a webhook as Shopify does: POSTs `body` (sent byte for byte) to `url` with the
/// topic, shop, version, delivery id and trigger time headers, signed with `secret`
/// (base64 HMAC-SHA256 over the raw body). Returns the status and how long the answer took.
pub async fn deliver(url: &str, secret: &str, topic: &str, webhook_id: &str, body: &str) -> (u16, Duration) {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Hmac-Sha256", signature)
        .header("X-Shopify-Shop-Domain", "mock-shop.myshopify.com")
        .header("X-Shopify-API-Version", "2026-01")
        .header("X-Shopify-Webhook-Id", webhook_id)
        .header("X-Shopify-Event-Id", format!("event-{webhook_id}"))
        .header("X-Shopify-Triggered-At", Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .body(body.to_owned())
        .send()
        .await
        .expect("deliver webhook");
    (response.status().as_u16(), started.elapsed())
}

/// An `inventory_levels/update` body as Shopify sends it (REST form: numeric ids, the shop's
/// offset in `updated_at`, `/` escaped as `\/`, compact).
pub fn inventory_level_body(item: u64, location: u64, available: i64, updated_at: &str) -> String {
    format!(
        r#"{{"inventory_item_id":{item},"location_id":{location},"available":{available},"updated_at":"{updated_at}","admin_graphql_api_id":"gid:\/\/shopify\/InventoryLevel\/{location}?inventory_item_id={item}"}}"#
    )
}

/// An `orders/*` body for order `id` (REST form: the order's numeric id, the shop's offset).
pub fn order_body(id: u64, name: &str, updated_at: &str) -> String {
    format!(
        r#"{{"id":{id},"name":"{name}","updated_at":"{updated_at}","admin_graphql_api_id":"gid:\/\/shopify\/Order\/{id}"}}"#
    )
}

/// A `products/update` body for `v`'s product (REST form).
pub fn product_body(v: &Variant, price: &str, updated_at: &str) -> String {
    format!(
        r#"{{"id":{},"title":"{}","handle":"{}","updated_at":"{updated_at}","status":"active","variants":[{{"id":{},"product_id":{},"sku":"{}","price":"{price}","inventory_item_id":{},"updated_at":"{updated_at}"}}],"admin_graphql_api_id":"gid:\/\/shopify\/Product\/{}"}}"#,
        v.product_id, v.product_title, v.handle, v.id, v.product_id, v.sku, v.inventory_item_id, v.product_id
    )
}

impl Drop for MockShopify {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
