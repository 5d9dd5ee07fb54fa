//! A mock ShipBob API (`/2026-01/…`) for tests: a merchant per personal access token
//! (`Authorization: Bearer`; 401 otherwise), fulfilment centres (`GET /location`), products with
//! their variants and inventory ids (`GET /product` in cursor pages whose `next` is a URL carrying
//! an opaque `Cursor`; `GET /product/{id}`), stock per centre (`GET /inventory-level/locations`
//! with `LocationId`, cursor pages; `GET /inventory-level/{id}/locations`), orders (`POST /order`
//! needs `shipbob_channel_id`; a second order with the same `reference_id` in the channel is
//! `422`; `GET /order?ReferenceIds=`), and shipments (`GET /order/{id}/shipment`). Scripted
//! faults: `429` with `x-retry-after` and `x-remaining-calls: 0`, and an order made whose answer
//! is lost (`503`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

/// A variant: its id, SKU and inventory id (ShipBob's inventory ids differ from variant ids).
#[derive(Debug, Clone)]
pub struct Variant {
    pub id: u64,
    pub sku: String,
    pub inventory_id: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Merchant {
    /// `(id, name)`.
    pub locations: Vec<(u64, String)>,
    /// `(product id, name, variants)`.
    pub products: Vec<(u64, String, Vec<Variant>)>,
    /// `(inventory id, location) → (on hand, fulfillable, committed)`.
    pub stock: BTreeMap<(u64, u64), (i64, i64, i64)>,
    /// Orders received, by id: the request body with `id`, `status` and line ids added.
    pub orders: BTreeMap<u64, Value>,
    /// Shipments by order id.
    pub shipments: BTreeMap<u64, Vec<Value>>,
    /// Returns received, by id.
    pub returns: BTreeMap<u64, Value>,
    /// Receiving orders (WROs), by id.
    pub receiving: BTreeMap<u64, Value>,
}

impl Merchant {
    /// `n` products of one variant each (product ids from 100, variant ids from 500, inventory
    /// ids from 900, SKUs `SB-{k}`), stocked at two centres.
    pub fn generate(n: u64) -> Merchant {
        let mut m = Merchant {
            locations: vec![(10, "Cicero (IL)".into()), (11, "Riverside (CA)".into())],
            ..Merchant::default()
        };
        for k in 0..n {
            let v = Variant { id: 500 + k, sku: format!("SB-{k}"), inventory_id: 900 + k };
            m.stock.insert((v.inventory_id, 10), (i64::try_from(k % 5).unwrap_or(0) + 1, 1, 0));
            if k % 2 == 0 {
                m.stock.insert((v.inventory_id, 11), (2, 2, 0));
            }
            m.products.push((100 + k, format!("Product {k}"), vec![v]));
        }
        m
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `429` with `x-retry-after` seconds.
    RateLimited(u64),
    /// The order is made and the answer lost (`503`).
    LostAnswer,
}

struct Tenant {
    merchant: Merchant,
    channel: String,
    script: VecDeque<Fault>,
    requests: usize,
    next_id: u64,
}

type Shared = Arc<Mutex<HashMap<String, Tenant>>>;

pub struct MockShipBob {
    pub url: String,
    inner: Shared,
    handle: actix_web::dev::ServerHandle,
}

fn token(req: &HttpRequest) -> String {
    let h = req.headers().get("Authorization").and_then(|h| h.to_str().ok()).unwrap_or_default();
    h.strip_prefix("Bearer ").unwrap_or_default().to_owned()
}

fn query(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect()
}

/// One cursor page of `all`: the items and the `next` URL.
fn cursor_page(req: &HttpRequest, all: Vec<Value>) -> HttpResponse {
    let q = query(req);
    let size: usize = q.get("PageSize").and_then(|s| s.parse().ok()).unwrap_or(50).clamp(1, 250);
    let at: usize = q.get("Cursor").and_then(|c| c.strip_prefix("cur-")).and_then(|c| c.parse().ok()).unwrap_or(0);
    let items: Vec<Value> = all.iter().skip(at).take(size).cloned().collect();
    let next = (at + items.len() < all.len()).then(|| {
        let mut rest: Vec<(String, String)> = q.into_iter().filter(|(k, _)| k != "Cursor").collect();
        rest.sort();
        rest.push(("Cursor".into(), format!("cur-{}", at + items.len())));
        let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(rest).finish();
        format!("http://{}{}?{qs}", req.connection_info().host(), req.path())
    });
    HttpResponse::Ok().json(json!({ "first": null, "prev": null, "next": next, "last": null, "items": items }))
}

fn variant_json(v: &Variant) -> Value {
    json!({ "id": v.id, "sku": v.sku, "name": v.sku, "status": "Active", "upc": null, "barcodes": [],
        "inventory": { "inventory_id": v.inventory_id, "on_hand_qty": 0 }, "channel_metadata": [],
        "updated_on": "2025-10-23T15:55:09.3614767Z" })
}

fn product_json(p: &(u64, String, Vec<Variant>)) -> Value {
    json!({ "id": p.0, "name": p.1, "type": "Regular", "taxonomy": { "id": 1, "name": "Apparel" },
        "updated_on": "2025-10-23T15:55:09.3614767Z", "variants": p.2.iter().map(variant_json).collect::<Vec<_>>() })
}

async fn handle(req: HttpRequest, body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let mut all = data.lock().expect("mock lock");
    let Some(t) = all.get_mut(&token(&req)) else {
        return HttpResponse::Unauthorized().json(json!({ "title": "Unauthorized" }));
    };
    t.requests += 1;
    let fault = match t.script.front() {
        Some(Fault::LostAnswer) if req.method() != actix_web::http::Method::POST => None,
        _ => t.script.pop_front(),
    };
    if let Some(Fault::RateLimited(secs)) = fault {
        return HttpResponse::TooManyRequests()
            .insert_header(("x-retry-after", secs.to_string()))
            .insert_header(("x-remaining-calls", "0"))
            .finish();
    }
    let path = req.path().trim_start_matches("/2026-01/").to_owned();
    let parts: Vec<&str> = path.split('/').collect();
    let m = &mut t.merchant;
    match (req.method().as_str(), parts.as_slice()) {
        ("GET", ["location"]) => HttpResponse::Ok().json(
            m.locations
                .iter()
                .map(|(id, name)| json!({ "id": id, "name": name, "is_active": true, "abbreviation": name }))
                .collect::<Vec<_>>(),
        ),
        ("GET", ["product"]) => cursor_page(&req, m.products.iter().map(product_json).collect()),
        ("GET", ["product", id]) => match m.products.iter().find(|p| id.parse() == Ok(p.0)) {
            Some(p) => HttpResponse::Ok().json(product_json(p)),
            None => HttpResponse::NotFound().finish(),
        },
        ("GET", ["inventory-level", "locations"]) => {
            let loc: Option<u64> = query(&req).get("LocationId").and_then(|l| l.parse().ok());
            let skus: HashMap<u64, String> =
                m.products.iter().flat_map(|p| p.2.iter().map(|v| (v.inventory_id, v.sku.clone()))).collect();
            let rows = m
                .stock
                .iter()
                .filter(|((_, l), _)| loc.is_none_or(|x| x == *l))
                .map(|((item, l), (on_hand, fulfillable, committed))| {
                    json!({ "inventory_id": item, "sku": skus.get(item), "name": skus.get(item),
                        "locations": [{ "location_id": l, "name": "centre", "on_hand_quantity": on_hand,
                            "fulfillable_quantity": fulfillable, "committed_quantity": committed,
                            "awaiting_quantity": 0, "internal_transfer_quantity": 0 }] })
                })
                .collect();
            cursor_page(&req, rows)
        }
        ("GET", ["inventory-level", id, "locations"]) => {
            let Ok(item) = id.parse::<u64>() else { return HttpResponse::NotFound().finish() };
            let locations: Vec<Value> = m
                .stock
                .iter()
                .filter(|((i, _), _)| *i == item)
                .map(|((_, l), (on_hand, fulfillable, committed))| {
                    json!({ "location_id": l, "on_hand_quantity": on_hand, "fulfillable_quantity": fulfillable,
                        "committed_quantity": committed })
                })
                .collect();
            if locations.is_empty() {
                return HttpResponse::NotFound().finish();
            }
            HttpResponse::Ok().json(json!({ "inventory_id": item, "locations": locations }))
        }
        ("GET", ["order"]) => {
            let refs: Vec<String> =
                query(&req).get("ReferenceIds").map(|r| r.split(',').map(str::to_owned).collect()).unwrap_or_default();
            HttpResponse::Ok().json(
                m.orders
                    .values()
                    .filter(|o| refs.is_empty() || refs.iter().any(|r| o["reference_id"] == r.as_str()))
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        }
        ("POST", ["order"]) => {
            let channel = req.headers().get("shipbob_channel_id").and_then(|h| h.to_str().ok());
            if channel != Some(t.channel.as_str()) {
                return HttpResponse::BadRequest()
                    .json(json!({ "errors": ["shipbob_channel_id is missing or not yours"] }));
            }
            let Ok(mut order) = serde_json::from_slice::<Value>(&body) else {
                return HttpResponse::BadRequest().json(json!({ "errors": ["the body is not JSON"] }));
            };
            let reference = order["reference_id"].as_str().unwrap_or_default().to_owned();
            if reference.is_empty() || m.orders.values().any(|o| o["reference_id"] == reference.as_str()) {
                return HttpResponse::UnprocessableEntity()
                    .json(json!({ "errors": [format!("Order with reference id {reference} already exists")] }));
            }
            t.next_id += 1;
            let id = 100_000 + t.next_id;
            order["id"] = json!(id);
            order["status"] = json!("Processing");
            if let Some(products) = order["products"].as_array_mut() {
                for (i, p) in products.iter_mut().enumerate() {
                    p["order_product_id"] = json!(i + 1);
                }
            }
            m.orders.insert(id, order.clone());
            if fault == Some(Fault::LostAnswer) {
                return HttpResponse::ServiceUnavailable().finish();
            }
            HttpResponse::Created().json(order)
        }
        ("GET", ["return"]) => {
            let refs: Vec<String> =
                query(&req).get("ReferenceIds").map(|r| r.split(',').map(str::to_owned).collect()).unwrap_or_default();
            HttpResponse::Ok().json(
                m.returns
                    .values()
                    .filter(|r| refs.is_empty() || refs.iter().any(|x| r["reference_id"] == x.as_str()))
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        }
        ("GET", ["return", id]) => match id.parse::<u64>().ok().and_then(|i| m.returns.get(&i)) {
            Some(r) => HttpResponse::Ok().json(r),
            None => HttpResponse::NotFound().json(json!({ "title": "Not Found" })),
        },
        ("POST", ["return"]) => {
            let channel = req.headers().get("shipbob_channel_id").and_then(|h| h.to_str().ok());
            if channel != Some(t.channel.as_str()) {
                return HttpResponse::BadRequest()
                    .json(json!({ "errors": ["shipbob_channel_id is missing or not yours"] }));
            }
            let Ok(request) = serde_json::from_slice::<Value>(&body) else {
                return HttpResponse::BadRequest().json(json!({ "errors": ["the body is not JSON"] }));
            };
            let reference = request["reference_id"].as_str().unwrap_or_default().to_owned();
            if reference.is_empty() || m.returns.values().any(|r| r["reference_id"] == reference.as_str()) {
                return HttpResponse::UnprocessableEntity()
                    .json(json!({ "errors": [format!("Return with reference id {reference} already exists")] }));
            }
            let shipment = request["original_shipment_id"].as_u64();
            let shipped = m.shipments.values().flatten().find(|s| s["id"].as_u64() == shipment).cloned();
            let Some(shipped) = shipped else {
                return HttpResponse::UnprocessableEntity()
                    .json(json!({ "errors": ["original_shipment_id is not a shipment of this channel"] }));
            };
            t.next_id += 1;
            let id = 800_000 + t.next_id;
            let ret = json!({
                "id": id, "reference_id": reference, "status": "AwaitingArrival", "return_type": "Regular",
                "original_shipment_id": shipment, "channel": { "id": t.channel.parse::<u64>().unwrap_or(0), "name": "channel" },
                "fulfillment_center": shipped["location"].clone(), "insert_date": "2026-02-05T10:00:00.1234567Z",
                "inventory": request["inventory"].as_array().into_iter().flatten().map(|i| json!({
                    "id": i["id"], "quantity": i["quantity"], "name": "item",
                    "action_requested": { "action": i["requested_action"], "action_type": "Merchant" }, "action_taken": [] })).collect::<Vec<_>>(),
                "status_history": [{ "status": "AwaitingArrival", "timestamp": "2026-02-05T10:00:00.1234567Z" }],
            });
            m.returns.insert(id, ret.clone());
            if fault == Some(Fault::LostAnswer) {
                return HttpResponse::ServiceUnavailable().finish();
            }
            HttpResponse::Created().json(ret)
        }
        ("GET", ["receiving"]) => {
            let numbers: Vec<String> = query(&req)
                .get("PurchaseOrderNumbers")
                .map(|r| r.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            HttpResponse::Ok().json(
                m.receiving
                    .values()
                    .filter(|w| numbers.is_empty() || numbers.iter().any(|n| w["purchase_order_number"] == n.as_str()))
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        }
        ("GET", ["receiving", id]) => match id.parse::<u64>().ok().and_then(|i| m.receiving.get(&i)) {
            Some(w) => HttpResponse::Ok().json(w),
            None => HttpResponse::NotFound().json(json!({ "title": "Not Found" })),
        },
        ("POST", ["receiving", cancel]) if cancel.ends_with(":cancel") => {
            let id = cancel.trim_end_matches(":cancel").parse::<u64>().ok();
            let Some(w) = id.and_then(|i| m.receiving.get_mut(&i)) else {
                return HttpResponse::NotFound().json(json!({ "title": "Not Found", "status": 404 }));
            };
            match w["status"].as_str() {
                Some("Awaiting") => {
                    w["status"] = json!("Cancelled");
                    if let Some(h) = w["status_history"].as_array_mut() {
                        let n = h.len() + 1;
                        h.push(json!({ "id": n, "status": "Cancelled", "timestamp": "2026-02-06T10:00:00.1234567Z" }));
                    }
                    HttpResponse::Ok().json(w.clone())
                }
                status => HttpResponse::UnprocessableEntity()
                    .json(json!({ "status": [format!("a receiving order that is {} cannot be cancelled", status.unwrap_or("unknown"))] })),
            }
        }
        ("POST", ["receiving"]) => {
            let Ok(request) = serde_json::from_slice::<Value>(&body) else {
                return HttpResponse::BadRequest().json(json!({ "errors": ["the body is not JSON"] }));
            };
            let centre = request["fulfillment_center"]["id"].as_u64();
            let Some(centre) = m.locations.iter().find(|l| Some(l.0) == centre).cloned() else {
                return HttpResponse::BadRequest().json(json!({ "errors": ["fulfillment_center.id is not a centre"] }));
            };
            let missing = ["box_packaging_type", "boxes", "expected_arrival_date", "package_type"]
                .into_iter()
                .find(|k| request[*k].is_null());
            if let Some(k) = missing {
                return HttpResponse::BadRequest().json(json!({ "errors": [format!("{k} is required")] }));
            }
            let mut expected: BTreeMap<u64, i64> = BTreeMap::new();
            for item in request["boxes"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|b| b["box_items"].as_array().into_iter().flatten())
            {
                *expected.entry(item["inventory_id"].as_u64().unwrap_or(0)).or_default() +=
                    item["quantity"].as_i64().unwrap_or(0);
            }
            t.next_id += 1;
            let id = 900_000 + t.next_id;
            let wro = json!({
                "id": id, "purchase_order_number": request["purchase_order_number"], "status": "Awaiting",
                "package_type": request["package_type"], "box_packaging_type": request["box_packaging_type"],
                "expected_arrival_date": request["expected_arrival_date"],
                "fulfillment_center": { "id": centre.0, "name": centre.1 },
                "insert_date": "2026-02-05T10:00:00.1234567Z",
                "inventory_quantities": expected.iter().map(|(i, q)| json!({ "inventory_id": i, "sku": null,
                    "expected_quantity": q, "received_quantity": 0, "stowed_quantity": 0 })).collect::<Vec<_>>(),
                "status_history": [{ "id": 1, "status": "Awaiting", "timestamp": "2026-02-05T10:00:00.1234567Z" }],
            });
            m.receiving.insert(id, wro.clone());
            if fault == Some(Fault::LostAnswer) {
                return HttpResponse::ServiceUnavailable().finish();
            }
            HttpResponse::Created().json(wro)
        }
        ("GET", ["order", id, "shipment"]) => match id.parse::<u64>().ok().filter(|i| m.orders.contains_key(i)) {
            Some(i) => HttpResponse::Ok().json(m.shipments.get(&i).cloned().unwrap_or_default()),
            None => HttpResponse::NotFound().finish(),
        },
        _ => HttpResponse::NotFound().json(json!({ "title": "Not Found" })),
    }
}

impl MockShipBob {
    pub async fn start() -> MockShipBob {
        let inner: Shared = Arc::default();
        let data = web::Data::new(inner.clone());
        let (port, handle) =
            crate::serve_loopback!(2, move || App::new().app_data(data.clone()).default_service(web::to(handle)));
        MockShipBob { url: format!("http://127.0.0.1:{port}"), inner, handle }
    }

    fn with<T>(&self, token: &str, f: impl FnOnce(&mut Tenant) -> T) -> T {
        f(self.inner.lock().expect("mock lock").get_mut(token).expect("merchant"))
    }

    /// Serves a merchant reached with `token`, whose orders go in `channel`.
    pub fn add_merchant(&self, token: &str, channel: &str, merchant: Merchant) {
        let t = Tenant { merchant, channel: channel.to_owned(), script: VecDeque::new(), requests: 0, next_id: 0 };
        self.inner.lock().expect("mock lock").insert(token.to_owned(), t);
    }

    /// Answers the merchant's next requests with these faults, in order (a lost answer waits for
    /// the next order).
    pub fn script(&self, token: &str, faults: &[Fault]) {
        self.with(token, |t| t.script.extend(faults));
    }

    pub fn requests(&self, token: &str) -> usize {
        self.with(token, |t| t.requests)
    }

    pub fn orders(&self, token: &str) -> BTreeMap<u64, Value> {
        self.with(token, |t| t.merchant.orders.clone())
    }

    /// Ships `items` (`(variant id, units)`) of order `order` from centre `location` with a
    /// tracking number: a shipment as ShipBob reports it; its id.
    pub fn ship(&self, token: &str, order: u64, location: u64, items: &[(u64, i64)], tracking: &str) -> u64 {
        self.with(token, |t| {
            t.next_id += 1;
            let id = 700_000 + t.next_id;
            let skus: HashMap<u64, (String, u64)> = t
                .merchant
                .products
                .iter()
                .flat_map(|p| p.2.iter().map(|v| (v.id, (v.sku.clone(), v.inventory_id))))
                .collect();
            let products: Vec<Value> = items
                .iter()
                .map(|(v, q)| {
                    let (sku, inventory) = skus.get(v).cloned().unwrap_or_default();
                    json!({ "id": v, "sku": sku, "reference_id": sku,
                        "inventory_items": [{ "id": inventory, "quantity": q, "quantity_committed": 0 }] })
                })
                .collect();
            let shipment = json!({
                "id": id, "order_id": order, "status": "Completed",
                "location": { "id": location, "name": "centre" },
                "tracking": { "carrier": "USPS", "carrier_service": "Priority", "tracking_number": tracking,
                    "tracking_url": format!("https://tools.usps.com/go/TrackConfirmAction?tLabels={tracking}"),
                    "shipping_date": "2026-02-03T17:20:00.1234567Z" },
                "products": products,
            });
            t.merchant.shipments.entry(order).or_default().push(shipment);
            id
        })
    }

    /// The shipments of order `order`.
    pub fn shipments(&self, token: &str, order: u64) -> Vec<Value> {
        self.with(token, |t| t.merchant.shipments.get(&order).cloned().unwrap_or_default())
    }

    pub fn receiving(&self, token: &str) -> BTreeMap<u64, Value> {
        self.with(token, |t| t.merchant.receiving.clone())
    }

    /// The warehouse received (and stowed) `items` (`(inventory id, units)`) of receiving order
    /// `id`: its counts and the centre's stock up; `Completed` once all that was expected came.
    pub fn receive(&self, token: &str, id: u64, items: &[(u64, i64)]) {
        self.with(token, |t| {
            let m = &mut t.merchant;
            let wro = m.receiving.get_mut(&id).expect("receiving order");
            let centre = wro["fulfillment_center"]["id"].as_u64().unwrap_or(0);
            let mut all = true;
            for q in wro["inventory_quantities"].as_array_mut().into_iter().flatten() {
                let item = q["inventory_id"].as_u64().unwrap_or(0);
                let add: i64 = items.iter().filter(|(i, _)| *i == item).map(|(_, n)| n).sum();
                let got = q["received_quantity"].as_i64().unwrap_or(0) + add;
                q["received_quantity"] = json!(got);
                q["stowed_quantity"] = json!(got);
                all &= got >= q["expected_quantity"].as_i64().unwrap_or(0);
            }
            wro["status"] = json!(if all { "Completed" } else { "PartiallyArrived" });
            for (item, n) in items {
                let level = m.stock.entry((*item, centre)).or_insert((0, 0, 0));
                level.0 += n;
                level.1 += n;
            }
        });
    }

    pub fn returns(&self, token: &str) -> BTreeMap<u64, Value> {
        self.with(token, |t| t.merchant.returns.clone())
    }

    /// The warehouse received return `id` and restocked its units at the centre it was sent to:
    /// `Completed`, each item's action taken, the centre's on hand up.
    pub fn complete_return(&self, token: &str, id: u64) {
        self.with(token, |t| {
            let m = &mut t.merchant;
            let ret = m.returns.get_mut(&id).expect("return");
            let centre = ret["fulfillment_center"]["id"].as_u64().unwrap_or(0);
            ret["status"] = json!("Completed");
            ret["completed_date"] = json!("2026-02-07T12:00:00.1234567Z");
            let mut back = Vec::new();
            for i in ret["inventory"].as_array_mut().into_iter().flatten() {
                let q = i["quantity"].as_i64().unwrap_or(0);
                i["action_taken"] = json!([{ "action": "Restock", "action_reason": "Good", "quantity_processed": q }]);
                back.push((i["id"].as_u64().unwrap_or(0), q));
            }
            for (item, q) in back {
                let level = m.stock.entry((item, centre)).or_insert((0, 0, 0));
                level.0 += q;
                level.1 += q;
            }
        });
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
