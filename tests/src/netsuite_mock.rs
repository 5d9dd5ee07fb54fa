//! A mock NetSuite SuiteQL endpoint for tests, speaking `POST
//! /services/rest/query/v1/suiteql?limit=&offset=` with `{"q": …}`: Token-Based Authentication
//! checked per account (the signature recomputed over the request; 401 `INVALID_LOGIN`
//! otherwise), pages of `{links, count, hasMore, items, offset, totalResults}` with every value a
//! string as SuiteQL writes them, at most 100,000 rows by offset (`400` past that, as REST
//! answers), the account's concurrency limit (`429 CONCURRENCY_LIMIT_EXCEEDED`, no
//! `Retry-After`), and scripted faults (429, the 401-under-load variant, 503).
//!
//! Records: `PUT /services/rest/record/v1/{type}/eid:{externalId}` creates or updates the record
//! with that external id (`204` and a `Location` with its id); an `inventoryAdjustment` moves the
//! stock by its `adjustQtyBy` (an update moves it by the difference only); `GET …/eid:{externalId}`
//! reads one back (`404 NONEXISTENT_ID` without). `POST …/salesOrder/{id}/!transform/itemFulfillment`
//! (or `returnAuthorization`) and `…/returnAuthorization/{id}/!transform/itemReceipt` make a record
//! of lines of one sent here (never more than is left on a line; `400` otherwise).
//! Sales orders sent here show in SuiteQL's `transaction` unless the query leaves out external ids
//! `LIKE 'qm-%'`.
//!
//! OAuth 2.0 client credentials: `POST /services/rest/auth/oauth2/v1/token` checks the signed
//! assertion of a client added with [`MockNetSuite::add_client`] (its certificate id as `kid`, the
//! client id as `iss`, the token endpoint as `aud`, `rest_webservices` in `scope`, under an hour
//! of validity; `400 invalid_grant` otherwise) and answers a bearer token (`expires_in` as a
//! string, as NetSuite writes it), taken in place of TBA until [`MockNetSuite::expire_tokens`].
//!
//! It understands the client's queries by their table (`location`, `item`,
//! `aggregateItemLocation`) and conditions (`t.id > N`, `ail.location = N`, `t.id = N`); the rest
//! of the SQL is not interpreted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, web};
use qm_connectors::netsuite::tba::{self, Credentials};
use serde_json::{Value, json};

/// One account's data.
#[derive(Debug, Clone, Default)]
pub struct Account {
    /// `(id, name)`.
    pub locations: Vec<(i64, String)>,
    /// `(id, itemid, base price, parent)`.
    pub items: Vec<(i64, String, String, Option<i64>)>,
    /// `(item, location) → (on hand, available, committed)`.
    pub stock: BTreeMap<(i64, i64), (i64, i64, i64)>,
    pub orders: Vec<SalesOrder>,
    /// An item's `lastmodifieddate` as SuiteQL writes it with `TO_CHAR` (the account's time);
    /// `2026-01-15T10:04:05` for those not here.
    pub item_modified: BTreeMap<i64, String>,
}

/// A sales order as SuiteQL's `transaction` and `transactionline` hold it.
#[derive(Debug, Clone, Default)]
pub struct SalesOrder {
    pub id: i64,
    pub tranid: String,
    /// `B` pending fulfilment, `C` cancelled, `D` partially fulfilled, …
    pub status: String,
    pub total: String,
    /// `(line id, item, quantity, shipped, location)`, quantities as positive numbers (the mock
    /// writes them negated, as NetSuite stores a sales order's lines).
    pub lines: Vec<(i64, i64, i64, i64, i64)>,
}

impl Account {
    /// `n` items (ids from 1001) stocked at two locations.
    pub fn generate(n: i64) -> Account {
        let mut a = Account { locations: vec![(1, "Main DC".into()), (2, "East 3PL".into())], ..Account::default() };
        for k in 0..n {
            let id = 1001 + k;
            a.items.push((id, format!("NS-{id}"), format!("{}.{:02}", 10 + k % 50, k % 100), None));
            a.stock.insert((id, 1), (k % 7, k % 7, 0));
            if k % 3 == 0 {
                a.stock.insert((id, 2), (1, 1, 0));
            }
        }
        a
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `429 CONCURRENCY_LIMIT_EXCEEDED`.
    Concurrency,
    /// `401 INVALID_LOGIN` though the credentials are good (NetSuite under load).
    InvalidLogin,
    Unavailable,
    /// The write is made, and the answer lost (`503`).
    LostAnswer,
}

struct Tenant {
    credentials: Credentials,
    account: Account,
    limit: usize,
    in_flight: usize,
    max_in_flight: usize,
    requests: usize,
    script: VecDeque<Fault>,
    /// `(record type, external id) → (internal id, body)`.
    records: BTreeMap<(String, String), (i64, Value)>,
    next_id: i64,
}

/// An OAuth 2.0 client: its account's realm, its certificate id and public key.
struct OAuthClient {
    realm: String,
    certificate_id: String,
    key: jsonwebtoken::DecodingKey,
}

struct Inner {
    accounts: HashMap<String, Tenant>,
    latency: Duration,
    /// By client id.
    clients: HashMap<String, OAuthClient>,
    /// Access tokens given → the realm they reach.
    tokens: HashMap<String, String>,
    token_requests: usize,
}

pub struct MockNetSuite {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    handle: actix_web::dev::ServerHandle,
}

fn error(status: u16, code: &str, detail: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).json(json!({
        "type": "https://www.rfc-editor.org/rfc/rfc9110.html",
        "title": code,
        "status": status,
        "o:errorDetails": [{ "detail": detail, "o:errorCode": code }],
    }))
}

/// The `name="value"` pairs of an OAuth header.
fn oauth_params(header: &str) -> Option<HashMap<String, String>> {
    let rest = header.strip_prefix("OAuth ")?;
    Some(
        rest.split(", ")
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.to_owned(), v.trim_matches('"').to_owned()))
            })
            .collect(),
    )
}

/// The number after the first `marker` that is followed by one (`t.id = 5`, not `t.id = ail.item`).
fn number_after(q: &str, marker: &str) -> Option<i64> {
    q.match_indices(marker).find_map(|(at, _)| {
        let rest = q[at + marker.len()..].trim_start();
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
        digits.parse().ok()
    })
}

/// Checks a request's TBA header against its account's credentials: its realm, or `Err` for
/// NetSuite's refusal ([`refused`]).
fn authenticate(req: &HttpRequest, method: &str, inner: &mut Inner) -> Result<String, ()> {
    let header = req.headers().get("Authorization").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
    if let Some(token) = header.strip_prefix("Bearer ") {
        let realm = inner.tokens.get(token).cloned().ok_or(())?;
        inner.accounts.get_mut(&realm).ok_or(())?.requests += 1;
        return Ok(realm);
    }
    let params = oauth_params(&header).ok_or(())?;
    let realm = params.get("realm").cloned().unwrap_or_default();
    let url = format!("http://{}{}", req.connection_info().host(), req.uri());
    let t = inner.accounts.get_mut(&realm).ok_or(())?;
    let (nonce, ts) = (params.get("oauth_nonce").cloned().unwrap_or_default(), params.get("oauth_timestamp"));
    let expected = ts
        .and_then(|x| x.parse::<i64>().ok())
        .and_then(|x| tba::authorization(method, &url, &t.credentials, &nonce, x).ok());
    if expected.as_deref() != Some(header.as_str()) {
        return Err(());
    }
    t.requests += 1;
    Ok(realm)
}

fn refused() -> HttpResponse {
    error(401, "INVALID_LOGIN", "Invalid login attempt.")
}

async fn suiteql(req: HttpRequest, body: web::Json<Value>, data: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let (latency, fault, rows) = {
        let mut inner = data.lock().expect("mock lock");
        let latency = inner.latency;
        let realm = match authenticate(&req, "POST", &mut inner) {
            Ok(r) => r,
            Err(()) => return refused(),
        };
        let t = inner.accounts.get_mut(&realm).expect("account");
        if let Some(f) = t.script.pop_front() {
            (latency, Some(f), None)
        } else if t.in_flight >= t.limit {
            (latency, Some(Fault::Concurrency), None)
        } else {
            t.in_flight += 1;
            t.max_in_flight = t.max_in_flight.max(t.in_flight);
            (latency, None, Some(realm.clone()))
        }
    };
    match fault {
        Some(Fault::Concurrency) => {
            return error(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded. Request blocked.");
        }
        Some(Fault::InvalidLogin) => return error(401, "INVALID_LOGIN", "Invalid login attempt."),
        Some(Fault::Unavailable | Fault::LostAnswer) => return HttpResponse::ServiceUnavailable().finish(),
        None => {}
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let realm = rows.expect("admitted");
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000).clamp(1, 1000);
    let offset: usize = query.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let q = body["q"].as_str().unwrap_or_default().to_owned();
    let mut inner = data.lock().expect("mock lock");
    let t = inner.accounts.get_mut(&realm).expect("account");
    t.in_flight -= 1;
    if offset + limit > 100_000 {
        return error(400, "INVALID_PARAMETER", "The offset and limit reach past the 100,000 rows REST serves.");
    }
    let after = number_after(&q, "t.id >").unwrap_or(i64::MIN);
    let only = number_after(&q, "t.id =");
    let all: Vec<Value> = if q.contains("FROM location") {
        t.account
            .locations
            .iter()
            .filter(|(id, _)| *id > after)
            .map(|(id, name)| json!({ "links": [], "id": id.to_string(), "name": name, "isinactive": "F" }))
            .collect()
    } else if q.contains("FROM transactionline") {
        let ids: Vec<i64> = q
            .split_once("IN (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(list, _)| list.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_default();
        let items: HashMap<i64, &String> = t.account.items.iter().map(|(id, sku, ..)| (*id, sku)).collect();
        t.account
            .orders
            .iter()
            .filter(|o| ids.contains(&o.id))
            .flat_map(|o| {
                o.lines.iter().map(|(line, item, qty, shipped, loc)| {
                    json!({ "links": [], "transaction": o.id.to_string(), "id": line.to_string(), "item": item.to_string(),
                        "itemid": items.get(item), "quantity": (-qty).to_string(), "quantityshiprecv": (-shipped).to_string(),
                        "location": loc.to_string(), "isclosed": "F" })
                })
            })
            .collect()
    } else if q.contains("FROM transaction") {
        let sent = t.records.iter().filter(|((kind, key), _)| {
            kind == "salesOrder" && !(q.contains("NOT LIKE 'qm-%'") && key.starts_with("qm-"))
        });
        let sent: Vec<Value> = sent
            .map(|(_, (id, body))| {
                json!({ "links": [], "id": id.to_string(), "tranid": body["otherRefNum"], "status": "B",
                    "foreigntotal": "0.00", "currency": "USD", "created": "2026-01-15T10:04:05",
                    "modified": "2026-01-16T09:00:00" })
            })
            .collect();
        t.account
            .orders
            .iter()
            .filter(|o| o.id > after && only.is_none_or(|x| x == o.id))
            .map(|o| {
                json!({ "links": [], "id": o.id.to_string(), "tranid": o.tranid, "status": o.status,
                    "foreigntotal": o.total, "currency": "USD", "created": "2026-01-15T10:04:05",
                    "modified": "2026-01-16T09:00:00" })
            })
            .chain(sent)
            .collect()
    } else if q.contains("FROM aggregateItemLocation") {
        let loc = number_after(&q, "ail.location =");
        t.account
            .stock
            .iter()
            .filter(|((item, l), _)| *item > after && Some(*l) == loc && only.is_none_or(|o| o == *item))
            .map(|((item, l), (on_hand, available, committed))| {
                json!({ "links": [], "id": item.to_string(), "location": l.to_string(),
                    "quantityonhand": on_hand.to_string(), "quantityavailable": available.to_string(),
                    "quantitycommitted": committed.to_string() })
            })
            .collect()
    } else if q.contains("FROM item") {
        t.account
            .items
            .iter()
            .filter(|(id, ..)| *id > after && only.is_none_or(|o| o == *id))
            .map(|(id, sku, price, parent)| {
                json!({ "links": [], "id": id.to_string(), "itemid": sku, "displayname": format!("Item {sku}"),
                    "itemtype": "InvtPart", "isinactive": "F", "parent": parent.map(|p| p.to_string()),
                    "baseprice": price,
                    "lastmodified": t.account.item_modified.get(id).map_or("2026-01-15T10:04:05", String::as_str) })
            })
            .collect()
    } else {
        return error(400, "INVALID_SEARCH", "Invalid search query.");
    };
    let total = all.len();
    let items: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    HttpResponse::Ok().json(json!({
        "links": [],
        "count": items.len(),
        "hasMore": offset + items.len() < total,
        "items": items,
        "offset": offset,
        "totalResults": total,
    }))
}

/// The record type and external id of `…/record/v1/{type}/eid:{externalId}`.
fn record_path(req: &HttpRequest) -> Option<(String, String)> {
    let kind = req.match_info().get("kind")?.to_owned();
    let key = req.match_info().get("key")?.strip_prefix("eid:")?;
    let key = url::form_urlencoded::parse(format!("k={key}").as_bytes()).next()?.1.into_owned();
    Some((kind, key))
}

async fn upsert_record(req: HttpRequest, body: web::Json<Value>, data: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let mut inner = data.lock().expect("mock lock");
    let realm = match authenticate(&req, "PUT", &mut inner) {
        Ok(r) => r,
        Err(()) => return refused(),
    };
    let Some((kind, key)) = record_path(&req) else { return error(404, "NONEXISTENT_ID", "no such record") };
    let t = inner.accounts.get_mut(&realm).expect("account");
    let fault = t.script.pop_front();
    match fault {
        Some(Fault::Concurrency) => {
            return error(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded. Request blocked.");
        }
        Some(Fault::InvalidLogin) => return error(401, "INVALID_LOGIN", "Invalid login attempt."),
        Some(Fault::Unavailable) => return HttpResponse::ServiceUnavailable().finish(),
        Some(Fault::LostAnswer) | None => {}
    }
    let body = body.into_inner();
    let before = t.records.get(&(kind.clone(), key.clone())).cloned();
    if kind == "inventoryAdjustment" {
        let moves = |b: &Value| -> Vec<(i64, i64, i64)> {
            b["inventory"]["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| {
                    let id = |v: &Value| v["id"].as_str().and_then(|x| x.parse::<i64>().ok());
                    Some((id(&l["item"])?, id(&l["location"])?, l["adjustQtyBy"].as_i64()?))
                })
                .collect()
        };
        if body["account"]["id"].as_str().is_none() {
            return error(400, "USER_ERROR", "Please enter value(s) for: Adjustment Account");
        }
        // An update replaces the old adjustment: take it back, then make the new one.
        let undo = before.as_ref().map(|(_, b)| moves(b)).unwrap_or_default();
        for (item, loc, by) in undo.into_iter().map(|(i, l, q)| (i, l, -q)).chain(moves(&body)) {
            let level = t.account.stock.entry((item, loc)).or_insert((0, 0, 0));
            level.0 += by;
            level.1 += by;
        }
    }
    let id = before.map_or_else(
        || {
            t.next_id += 1;
            9000 + t.next_id
        },
        |(id, _)| id,
    );
    t.records.insert((kind.clone(), key), (id, body));
    if fault == Some(Fault::LostAnswer) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let host = req.connection_info().host().to_owned();
    HttpResponse::NoContent()
        .insert_header(("Location", format!("http://{host}/services/rest/record/v1/{kind}/{id}")))
        .finish()
}

async fn transform(req: HttpRequest, body: web::Json<Value>, data: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let mut inner = data.lock().expect("mock lock");
    let realm = match authenticate(&req, "POST", &mut inner) {
        Ok(r) => r,
        Err(()) => return refused(),
    };
    let t = inner.accounts.get_mut(&realm).expect("account");
    let (from, id, to) = (
        req.match_info().get("kind").unwrap_or_default().to_owned(),
        req.match_info().get("id").and_then(|i| i.parse::<i64>().ok()),
        req.match_info().get("to").unwrap_or_default().to_owned(),
    );
    let order = t.records.iter().find(|((k, _), (rid, _))| *k == from && Some(*rid) == id).map(|(_, (_, b))| b.clone());
    let known = matches!(
        (from.as_str(), to.as_str()),
        ("salesOrder", "itemFulfillment" | "returnAuthorization") | ("returnAuthorization", "itemReceipt")
    );
    let (Some(order), Some(order_id), true) = (order, id, known) else {
        return error(404, "NONEXISTENT_ID", "The record instance does not exist. Provide a valid record instance ID.");
    };
    let fault = t.script.pop_front();
    match fault {
        Some(Fault::Concurrency) => {
            return error(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded. Request blocked.");
        }
        Some(Fault::InvalidLogin) => return error(401, "INVALID_LOGIN", "Invalid login attempt."),
        Some(Fault::Unavailable) => return HttpResponse::ServiceUnavailable().finish(),
        Some(Fault::LostAnswer) | None => {}
    }
    let body = body.into_inner();
    // What is left on each line after the records of this kind made from it so far.
    let mut left: Vec<i64> =
        order["item"]["items"].as_array().into_iter().flatten().map(|l| l["quantity"].as_i64().unwrap_or(0)).collect();
    let made = t.records.iter().filter(|((k, _), (_, b))| *k == to && b["createdFrom"] == order_id);
    for l in made.flat_map(|(_, (_, b))| b["item"]["items"].as_array().cloned().unwrap_or_default()) {
        let line = l["orderLine"].as_u64().unwrap_or(0) as usize;
        if let Some(q) = line.checked_sub(1).and_then(|i| left.get_mut(i)) {
            *q -= l["quantity"].as_i64().unwrap_or(0);
        }
    }
    for l in body["item"]["items"].as_array().into_iter().flatten() {
        let line = l["orderLine"].as_u64().unwrap_or(0) as usize;
        let q = l["quantity"].as_i64().unwrap_or(0);
        match line.checked_sub(1).and_then(|i| left.get_mut(i)) {
            Some(rest) if q > 0 && q <= *rest => *rest -= q,
            _ => return error(400, "USER_ERROR", &format!("You cannot {to} {q} of line {line}.")),
        }
    }
    let key = body["externalId"].as_str().map_or_else(|| format!("anonymous-{}", t.next_id), str::to_owned);
    t.next_id += 1;
    let new_id = 9000 + t.next_id;
    let mut stored = body;
    stored["createdFrom"] = json!(order_id);
    t.records.insert((to.clone(), key), (new_id, stored));
    if fault == Some(Fault::LostAnswer) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let host = req.connection_info().host().to_owned();
    HttpResponse::NoContent()
        .insert_header(("Location", format!("http://{host}/services/rest/record/v1/{to}/{new_id}")))
        .finish()
}

async fn get_record(req: HttpRequest, data: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let mut inner = data.lock().expect("mock lock");
    let realm = match authenticate(&req, "GET", &mut inner) {
        Ok(r) => r,
        Err(()) => return refused(),
    };
    let found = record_path(&req).and_then(|k| inner.accounts[&realm].records.get(&k).cloned());
    match found {
        Some((id, mut body)) => {
            body["id"] = json!(id.to_string());
            HttpResponse::Ok().json(body)
        }
        None => error(404, "NONEXISTENT_ID", "The record instance does not exist. Provide a valid record instance ID."),
    }
}

/// The token endpoint: an access token for a client's valid assertion.
async fn token(req: HttpRequest, body: web::Bytes, data: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let refuse = |code: &str| HttpResponse::BadRequest().json(json!({ "error": code }));
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return refuse("unsupported_grant_type");
    }
    let Some(assertion) = form.get("client_assertion") else { return refuse("invalid_request") };
    let Ok(header) = jsonwebtoken::decode_header(assertion) else { return refuse("invalid_request") };
    let Ok(claims) = jsonwebtoken::dangerous::insecure_decode::<Value>(assertion).map(|d| d.claims) else {
        return refuse("invalid_request");
    };
    let mut inner = data.lock().expect("mock lock");
    inner.token_requests += 1;
    let Some(client) = claims["iss"].as_str().and_then(|iss| inner.clients.get(iss)) else {
        return refuse("invalid_client");
    };
    let aud = format!("http://{}/services/rest/auth/oauth2/v1/token", req.connection_info().host());
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[aud]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let verified = jsonwebtoken::decode::<Value>(assertion, &client.key, &validation);
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    if header.kid.as_deref() != Some(client.certificate_id.as_str())
        || !matches!(header.alg, jsonwebtoken::Algorithm::PS256 | jsonwebtoken::Algorithm::ES256)
        || verified.is_err()
        || !(1..=3600).contains(&lifetime)
        || !claims["scope"].as_str().unwrap_or_default().split(',').any(|s| s.trim() == "rest_webservices")
    {
        return refuse("invalid_grant");
    }
    let realm = client.realm.clone();
    let token = format!("ns-at-{}", inner.token_requests);
    inner.tokens.insert(token.clone(), realm);
    HttpResponse::Ok().json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": "3600" }))
}

impl MockNetSuite {
    pub async fn start() -> MockNetSuite {
        let inner = Arc::new(Mutex::new(Inner {
            accounts: HashMap::new(),
            latency: Duration::ZERO,
            clients: HashMap::new(),
            tokens: HashMap::new(),
            token_requests: 0,
        }));
        let data = web::Data::new(inner.clone());
        let (port, handle) = crate::serve_loopback!(4, move || {
            App::new()
                .app_data(data.clone())
                .route("/services/rest/query/v1/suiteql", web::post().to(suiteql))
                .route("/services/rest/auth/oauth2/v1/token", web::post().to(token))
                .route("/services/rest/record/v1/{kind}/{key}", web::put().to(upsert_record))
                .route("/services/rest/record/v1/{kind}/{key}", web::get().to(get_record))
                .route("/services/rest/record/v1/{kind}/{id}/!transform/{to}", web::post().to(transform))
        });
        MockNetSuite { url: format!("http://127.0.0.1:{port}"), inner, handle }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().expect("mock lock"))
    }

    /// Serves an account whose integration signs with `credentials`, at most `limit` requests
    /// in flight.
    pub fn add_account(&self, credentials: Credentials, account: Account, limit: usize) {
        let realm = tba::realm(&credentials.account);
        self.with(|i| {
            i.accounts.insert(
                realm,
                Tenant {
                    credentials,
                    account,
                    limit,
                    in_flight: 0,
                    max_in_flight: 0,
                    requests: 0,
                    script: VecDeque::new(),
                    records: BTreeMap::new(),
                    next_id: 0,
                },
            )
        });
    }

    /// Lets OAuth 2.0 client `client_id`, whose certificate `certificate_id` has the public key
    /// `public_pem` (RSA or EC), take tokens for account `account` (added before).
    pub fn add_client(&self, account: &str, client_id: &str, certificate_id: &str, public_pem: &str) {
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes())
            .or_else(|_| jsonwebtoken::DecodingKey::from_ec_pem(public_pem.as_bytes()))
            .expect("a public key");
        let client = OAuthClient { realm: tba::realm(account), certificate_id: certificate_id.to_owned(), key };
        self.with(|i| i.clients.insert(client_id.to_owned(), client));
    }

    /// Makes every access token given so far invalid (NetSuite refuses them with 401).
    pub fn expire_tokens(&self) {
        self.with(|i| i.tokens.clear());
    }

    /// Token requests received (good or not).
    pub fn token_requests(&self) -> usize {
        self.with(|i| i.token_requests)
    }

    /// Answers an account's next requests with these faults, in order.
    pub fn script(&self, account: &str, faults: &[Fault]) {
        self.with(|i| i.accounts.get_mut(&tba::realm(account)).expect("account").script.extend(faults));
    }

    /// Holds each admitted request this long (to make requests overlap).
    pub fn latency(&self, latency: Duration) {
        self.with(|i| i.latency = latency);
    }

    /// An account's requests answered, and the most it had in flight at once.
    pub fn stats(&self, account: &str) -> (usize, usize) {
        self.with(|i| {
            let t = &i.accounts[&tba::realm(account)];
            (t.requests, t.max_in_flight)
        })
    }

    /// Changes an account's data (a change made in NetSuite).
    pub fn edit(&self, account: &str, f: impl FnOnce(&mut Account)) {
        self.with(|i| f(&mut i.accounts.get_mut(&tba::realm(account)).expect("account").account));
    }

    /// The records of `kind` the account was sent, by external id.
    pub fn records(&self, account: &str, kind: &str) -> BTreeMap<String, Value> {
        self.with(|i| {
            i.accounts[&tba::realm(account)]
                .records
                .iter()
                .filter(|((k, _), _)| k == kind)
                .map(|((_, key), (_, body))| (key.clone(), body.clone()))
                .collect()
        })
    }

    /// An item's `(on hand, available, committed)` at a location.
    pub fn stock(&self, account: &str, item: i64, location: i64) -> Option<(i64, i64, i64)> {
        self.with(|i| i.accounts[&tba::realm(account)].account.stock.get(&(item, location)).copied())
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
