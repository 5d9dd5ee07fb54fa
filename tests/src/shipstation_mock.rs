//! A mock ShipStation V1 API for tests: an account per API key and secret (`Authorization: Basic`;
//! 401 otherwise), `GET /warehouses`, `GET /products` (`page`/`pageSize`, body `{products, total,
//! page, pages}`), `POST /orders/createorder` (an upsert by `orderKey`), `GET /shipments`
//! (`orderId` or `batchId`, `includeShipmentItems`, pages), with V1's Pacific wall-clock dates, and
//! the rate window in `X-Rate-Limit-Limit`/`-Remaining`/`-Reset` on every answer: a window of
//! `limit` requests, then `429` until it resets.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
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
}

type Shared = Arc<Mutex<HashMap<String, Tenant>>>;

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
    let Some(t) = all.get_mut(&credentials(&req)) else {
        return HttpResponse::Unauthorized().json(json!({ "Message": "Unauthorized" }));
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
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind mock shipstation");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(handle)))
            .workers(2)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        MockShipStation { url: format!("http://127.0.0.1:{port}"), inner, handle }
    }

    fn with<T>(&self, key: &str, secret: &str, f: impl FnOnce(&mut Tenant) -> T) -> T {
        f(self.inner.lock().expect("mock lock").get_mut(&format!("{key}:{secret}")).expect("account"))
    }

    /// Serves an account reached with `key` and `secret`: `limit` requests a `window`.
    pub fn add_account(&self, key: &str, secret: &str, account: Account, limit: u32, window: Duration) {
        let t = Tenant { account, limit, window, window_start: Instant::now(), used: 0, requests: 0, next_id: 0 };
        self.inner.lock().expect("mock lock").insert(format!("{key}:{secret}"), t);
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
