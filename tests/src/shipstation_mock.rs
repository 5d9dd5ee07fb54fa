//! A mock ShipStation V1 API for tests: an account per API key and secret (`Authorization: Basic`;
//! 401 otherwise), `GET /warehouses`, `GET /products` (`page`/`pageSize`, body `{products, total,
//! page, pages}`), `POST /orders/createorder` (an upsert by `orderKey`), `GET /shipments`
//! (`orderId` or `batchId`, `includeShipmentItems`, pages), with V1's Pacific wall-clock dates, and
//! the rate window in `X-Rate-Limit-Limit`/`-Remaining`/`-Reset` on every answer: a window of
//! `limit` requests, then `429` until it resets.
//!
//! The same account's V2 API answers a key of its own (header `api-key`, [`MockShipStation::add_v2_key`]):
//! `GET /v2/inventory` (`sku`, `inventory_location_id`, `group_by=location`, `page`/`limit`) and
//! `POST /v2/inventory` (`increment`, `decrement`, `adjust`; `204`, no idempotency key), with a
//! lost-answer fault (applied, then `504`). [`sign_v2`] signs a V2 webhook as ShipStation does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde_json::{Value, json};

#[derive(Debug, Clone, Default)]
pub struct Account {
    /// `(id, name)`.
    pub warehouses: Vec<(u64, String)>,
    /// `(product id, SKU)`.
    pub products: Vec<(u64, String)>,
    /// Orders by `orderKey`: the body last sent, with `orderId`.
    pub orders: BTreeMap<String, Value>,
    /// Shipments: `(batch id, shipment)`.
    pub shipments: Vec<(u64, Value)>,
    /// V2 stock: `(inventory location, SKU)` → `(on hand, allocated)`.
    pub inventory: BTreeMap<(String, String), (i64, i64)>,
    /// The V2 inventory transactions received, in order.
    pub transactions: Vec<Value>,
}

impl Account {
    /// Two warehouses and `n` products (ids from 7000, SKUs `SS-{k}`).
    pub fn generate(n: u64) -> Account {
        Account {
            warehouses: vec![(17977, "Main warehouse".into()), (17978, "West".into())],
            products: (0..n).map(|k| (7000 + k, format!("SS-{k}"))).collect(),
            ..Account::default()
        }
    }
}

struct Tenant {
    account: Account,
    /// Requests a window, the window's length, and the current window.
    limit: u32,
    window: Duration,
    window_start: Instant,
    used: u32,
    requests: usize,
    next_id: u64,
    /// Inventory changes to apply and then answer `504` for.
    lose_answers: u32,
}

/// Accounts by `key:secret` (V1), and V2 keys → the V1 account's `key:secret`.
#[derive(Default)]
struct State {
    tenants: HashMap<String, Tenant>,
    v2_keys: HashMap<String, String>,
}

type Shared = Arc<Mutex<State>>;

pub struct MockShipStation {
    pub url: String,
    inner: Shared,
    handle: actix_web::dev::ServerHandle,
}

fn credentials(req: &HttpRequest) -> String {
    let h = req.headers().get("Authorization").and_then(|h| h.to_str().ok()).unwrap_or_default();
    let raw = h.strip_prefix("Basic ").unwrap_or_default();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(raw).unwrap_or_default()).unwrap_or_default()
}

fn query(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect()
}

/// A page of `all` as V1 lists are: `{key: [...], total, page, pages}`.
fn page(req: &HttpRequest, key: &str, all: Vec<Value>) -> Value {
    let q = query(req);
    let size: usize = q.get("pageSize").and_then(|s| s.parse().ok()).unwrap_or(100).clamp(1, 500);
    let page: usize = q.get("page").and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let items: Vec<Value> = all.iter().skip((page - 1) * size).take(size).cloned().collect();
    json!({ key: items, "total": all.len(), "page": page, "pages": all.len().div_ceil(size) })
}

async fn handle(req: HttpRequest, body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let mut all = data.lock().expect("mock lock");
    let v2 = req.path().starts_with("/v2/");
    let account = if v2 {
        let key = req.headers().get("api-key").and_then(|h| h.to_str().ok()).unwrap_or_default();
        all.v2_keys.get(key).cloned().unwrap_or_default()
    } else {
        credentials(&req)
    };
    let Some(t) = all.tenants.get_mut(&account) else {
        return if v2 {
            HttpResponse::Unauthorized().json(json!({ "request_id": "r-1", "errors": [{ "error_source": "shipstation",
                "error_type": "security", "error_code": "unauthorized", "message": "The API key is invalid." }] }))
        } else {
            HttpResponse::Unauthorized().json(json!({ "Message": "Unauthorized" }))
        };
    };
    t.requests += 1;
    let now = Instant::now();
    if now.duration_since(t.window_start) >= t.window {
        (t.window_start, t.used) = (now, 0);
    }
    let reset = (t.window.saturating_sub(now.duration_since(t.window_start))).as_secs_f64().ceil() as u64;
    if t.used >= t.limit {
        return HttpResponse::TooManyRequests()
            .insert_header(("X-Rate-Limit-Limit", t.limit.to_string()))
            .insert_header(("X-Rate-Limit-Remaining", "0"))
            .insert_header(("X-Rate-Limit-Reset", reset.to_string()))
            .finish();
    }
    t.used += 1;
    let remaining = t.limit - t.used;
    let a = &mut t.account;
    let answer = match (req.method().as_str(), req.path().trim_start_matches('/')) {
        ("GET", "warehouses") => json!(
            a.warehouses
                .iter()
                .map(|(id, name)| json!({ "warehouseId": id, "warehouseName": name, "isDefault": *id == 17977,
                "createDate": "2014-10-21T08:11:43.8800000" }))
                .collect::<Vec<_>>()
        ),
        ("GET", "products") => page(
            &req,
            "products",
            a.products
                .iter()
                .map(|(id, sku)| {
                    json!({ "productId": id, "sku": sku, "name": format!("Product {sku}"), "price": 12.5,
                    "active": true, "modifyDate": "2026-01-15T07:04:05.0000000" })
                })
                .collect(),
        ),
        ("POST", "orders/createorder") => {
            let Ok(mut order) = serde_json::from_slice::<Value>(&body) else {
                return HttpResponse::BadRequest().json(json!({ "Message": "The request is invalid." }));
            };
            let key = order["orderKey"].as_str().unwrap_or_default().to_owned();
            let id = match a.orders.get(&key) {
                Some(existing) => existing["orderId"].as_u64().unwrap_or_default(),
                None => {
                    t.next_id += 1;
                    40_000_000 + t.next_id
                }
            };
            order["orderId"] = json!(id);
            order["createDate"] = json!("2026-02-01T02:00:00.0000000");
            order["modifyDate"] = json!("2026-02-01T02:00:00.0000000");
            a.orders.insert(key, order.clone());
            order
        }
        ("GET", "shipments") => {
            let q = query(&req);
            let with_items = q.get("includeShipmentItems").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let order: Option<u64> = q.get("orderId").and_then(|o| o.parse().ok());
            let batch: Option<u64> = q.get("batchId").and_then(|b| b.parse().ok());
            let rows = a
                .shipments
                .iter()
                .filter(|(b, s)| order.is_none_or(|o| s["orderId"] == o) && batch.is_none_or(|x| x == *b))
                .map(|(_, s)| {
                    let mut s = s.clone();
                    if !with_items {
                        s["shipmentItems"] = Value::Null;
                    }
                    s
                })
                .collect();
            page(&req, "shipments", rows)
        }
        ("GET", "v2/inventory") => {
            let q = query(&req);
            let rows: Vec<Value> = a
                .inventory
                .iter()
                .filter(|((loc, sku), _)| {
                    q.get("sku").is_none_or(|s| s == sku) && q.get("inventory_location_id").is_none_or(|l| l == loc)
                })
                .map(|((loc, sku), (on_hand, allocated))| {
                    json!({ "sku": sku, "on_hand": on_hand, "allocated": allocated, "available": on_hand - allocated,
                        "average_cost": { "amount": 4.5, "currency": "usd" }, "inventory_warehouse_id": "se-iw-1",
                        "inventory_location_id": loc })
                })
                .collect();
            let size: usize = q.get("limit").and_then(|s| s.parse().ok()).unwrap_or(100).clamp(1, 500);
            let page: usize = q.get("page").and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
            let items: Vec<Value> = rows.iter().skip((page - 1) * size).take(size).cloned().collect();
            json!({ "inventory": items, "total": rows.len(), "page": page, "pages": rows.len().div_ceil(size), "links": {} })
        }
        ("POST", "v2/inventory") => {
            let tx: Value = serde_json::from_slice(&body).unwrap_or_default();
            let (Some(kind), Some(sku), Some(loc), Some(q)) = (
                tx["transaction_type"].as_str(),
                tx["sku"].as_str(),
                tx["inventory_location_id"].as_str(),
                tx["quantity"].as_i64(),
            ) else {
                return HttpResponse::BadRequest().json(json!({ "request_id": "r-2", "errors": [{ "error_source": "shipstation",
                    "error_type": "validation", "error_code": "invalid_field_value", "message": "transaction_type, sku, quantity and inventory_location_id are required" }] }));
            };
            let level = a.inventory.entry((loc.to_owned(), sku.to_owned())).or_default();
            match kind {
                "increment" => level.0 += q,
                "decrement" => level.0 -= q,
                "adjust" => level.0 = q,
                _ => {}
            }
            a.transactions.push(tx.clone());
            if t.lose_answers > 0 {
                t.lose_answers -= 1;
                return HttpResponse::GatewayTimeout().finish();
            }
            return HttpResponse::NoContent().insert_header(("X-Rate-Limit-Remaining", remaining.to_string())).finish();
        }
        _ => return HttpResponse::NotFound().json(json!({ "Message": "Not found" })),
    };
    HttpResponse::Ok()
        .insert_header(("X-Rate-Limit-Limit", t.limit.to_string()))
        .insert_header(("X-Rate-Limit-Remaining", remaining.to_string()))
        .insert_header(("X-Rate-Limit-Reset", reset.to_string()))
        .json(answer)
}

impl MockShipStation {
    pub async fn start() -> MockShipStation {
        let inner: Shared = Arc::default();
        let data = web::Data::new(inner.clone());
        let (port, handle) =
            crate::serve_loopback!(2, move || App::new().app_data(data.clone()).default_service(web::to(handle)));
        MockShipStation { url: format!("http://127.0.0.1:{port}"), inner, handle }
    }

    fn with<T>(&self, key: &str, secret: &str, f: impl FnOnce(&mut Tenant) -> T) -> T {
        f(self.inner.lock().expect("mock lock").tenants.get_mut(&format!("{key}:{secret}")).expect("account"))
    }

    /// Serves an account reached with `key` and `secret`: `limit` requests a `window`.
    pub fn add_account(&self, key: &str, secret: &str, account: Account, limit: u32, window: Duration) {
        let t = Tenant {
            account,
            limit,
            window,
            window_start: Instant::now(),
            used: 0,
            requests: 0,
            next_id: 0,
            lose_answers: 0,
        };
        self.inner.lock().expect("mock lock").tenants.insert(format!("{key}:{secret}"), t);
    }

    /// Lets V2 key `v2_key` reach the account of `key` and `secret`.
    pub fn add_v2_key(&self, key: &str, secret: &str, v2_key: &str) {
        self.inner.lock().expect("mock lock").v2_keys.insert(v2_key.to_owned(), format!("{key}:{secret}"));
    }

    /// Sets the V2 stock of `sku` at inventory location `location`.
    pub fn stock(&self, key: &str, secret: &str, location: &str, sku: &str, on_hand: i64, allocated: i64) {
        self.with(key, secret, |t| {
            t.account.inventory.insert((location.to_owned(), sku.to_owned()), (on_hand, allocated))
        });
    }

    /// The V2 on hand of `sku` at `location`.
    pub fn on_hand(&self, key: &str, secret: &str, location: &str, sku: &str) -> Option<i64> {
        self.with(key, secret, |t| t.account.inventory.get(&(location.to_owned(), sku.to_owned())).map(|l| l.0))
    }

    /// The V2 inventory transactions received.
    pub fn transactions(&self, key: &str, secret: &str) -> Vec<Value> {
        self.with(key, secret, |t| t.account.transactions.clone())
    }

    /// Applies the next `n` inventory changes and answers each with `504` (the answer lost).
    pub fn lose_inventory_answers(&self, key: &str, secret: &str, n: u32) {
        self.with(key, secret, |t| t.lose_answers = n);
    }

    pub fn orders(&self, key: &str, secret: &str) -> BTreeMap<String, Value> {
        self.with(key, secret, |t| t.account.orders.clone())
    }

    pub fn requests(&self, key: &str, secret: &str) -> usize {
        self.with(key, secret, |t| t.requests)
    }

    /// A label printed for order `order_id` in batch `batch`: `(lineItemKey, quantity)` items, the
    /// create date in Pacific wall-clock time as V1 writes it. Its shipment id.
    pub fn ship(
        &self,
        key: &str,
        secret: &str,
        (order_id, batch): (u64, u64),
        items: &[(&str, i64)],
        tracking: &str,
        create_date: &str,
    ) -> u64 {
        self.with(key, secret, |t| {
            t.next_id += 1;
            let id = 33_000_000 + t.next_id;
            let items: Vec<Value> =
                items.iter().map(|(k, q)| json!({ "lineItemKey": k, "sku": k, "quantity": q })).collect();
            t.account.shipments.push((
                batch,
                json!({ "shipmentId": id, "orderId": order_id, "createDate": create_date, "shipDate": &create_date[..10],
                    "trackingNumber": tracking, "carrierCode": "stamps_com", "voided": false, "warehouseId": 17977,
                    "shipmentItems": items }),
            ));
            id
        })
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// The headers ShipStation signs a V2 webhook with, at `timestamp`, with the test RSA key
/// (`tests/fixtures/jwt/rsa_private.pem`, kid `qm-test-rsa`): base64 RSA-SHA256 of
/// `{timestamp}.{body}`.
pub fn sign_v2(body: &[u8], timestamp: &str) -> Vec<(&'static str, String)> {
    let pem = std::fs::read(crate::TestApp::repo_root().join("tests/fixtures/jwt/rsa_private.pem")).expect("test key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("test key");
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    let url_safe = jsonwebtoken::crypto::sign(&message, &key, jsonwebtoken::Algorithm::RS256).expect("sign");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(url_safe).expect("base64");
    vec![
        ("x-shipengine-rsa-sha256-key-id", "qm-test-rsa".to_owned()),
        ("x-shipengine-rsa-sha256-signature", base64::engine::general_purpose::STANDARD.encode(raw)),
        ("x-shipengine-timestamp", timestamp.to_owned()),
    ]
}
