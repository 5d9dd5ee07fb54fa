//! A mock NetSuite SuiteQL endpoint for tests, speaking `POST
//! /services/rest/query/v1/suiteql?limit=&offset=` with `{"q": …}`: Token-Based Authentication
//! checked per account (the signature recomputed over the request; 401 `INVALID_LOGIN`
//! otherwise), pages of `{links, count, hasMore, items, offset, totalResults}` with every value a
//! string as SuiteQL writes them, at most 100,000 rows by offset (`400` past that, as REST
//! answers), the account's concurrency limit (`429 CONCURRENCY_LIMIT_EXCEEDED`, no
//! `Retry-After`), and scripted faults (429, the 401-under-load variant, 503).
//!
//! It understands the client's queries by their table (`location`, `item`,
//! `aggregateItemLocation`) and conditions (`t.id > N`, `ail.location = N`, `t.id = N`); the rest
//! of the SQL is not interpreted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
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
}

struct Tenant {
    credentials: Credentials,
    account: Account,
    limit: usize,
    in_flight: usize,
    max_in_flight: usize,
    requests: usize,
    script: VecDeque<Fault>,
}

struct Inner {
    accounts: HashMap<String, Tenant>,
    latency: Duration,
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

async fn suiteql(req: HttpRequest, body: web::Json<Value>, data: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let header = req.headers().get("Authorization").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
    let Some(params) = oauth_params(&header) else { return error(401, "INVALID_LOGIN", "Invalid login attempt.") };
    let realm = params.get("realm").cloned().unwrap_or_default();
    let url = format!("http://{}{}", req.connection_info().host(), req.uri());
    let (latency, fault, rows) = {
        let mut inner = data.lock().expect("mock lock");
        let latency = inner.latency;
        let Some(t) = inner.accounts.get_mut(&realm) else {
            return error(401, "INVALID_LOGIN", "Invalid login attempt.");
        };
        let (nonce, ts) = (params.get("oauth_nonce").cloned().unwrap_or_default(), params.get("oauth_timestamp"));
        let expected = ts
            .and_then(|x| x.parse::<i64>().ok())
            .and_then(|x| tba::authorization("POST", &url, &t.credentials, &nonce, x).ok());
        if expected.as_deref() != Some(header.as_str()) {
            return error(401, "INVALID_LOGIN", "Invalid login attempt.");
        }
        t.requests += 1;
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
        Some(Fault::Unavailable) => return HttpResponse::ServiceUnavailable().finish(),
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
        t.account
            .orders
            .iter()
            .filter(|o| o.id > after && only.is_none_or(|x| x == o.id))
            .map(|o| {
                json!({ "links": [], "id": o.id.to_string(), "tranid": o.tranid, "status": o.status,
                    "foreigntotal": o.total, "currency": "USD", "created": "2026-01-15T10:04:05",
                    "modified": "2026-01-16T09:00:00" })
            })
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
                    "baseprice": price, "lastmodified": "2026-01-15T10:04:05" })
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

impl MockNetSuite {
    pub async fn start() -> MockNetSuite {
        let inner = Arc::new(Mutex::new(Inner { accounts: HashMap::new(), latency: Duration::ZERO }));
        let data = web::Data::new(inner.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind mock netsuite");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).route("/services/rest/query/v1/suiteql", web::post().to(suiteql))
        })
        .workers(4)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
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
                },
            )
        });
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

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
