//! A SuiteQL and record client for one NetSuite account, implemented as the capability traits of
//! [`crate::source`], authenticated with Token-Based Authentication ([`tba`]) or OAuth 2.0 client
//! credentials ([`oauth2`]; a refused access token is taken again once before anything else).
//!
//! Paging: offset and limit (at most 1,000 a page, `hasMore` says whether there is more), every
//! query ordered by id; REST serves at most 100,000 rows of one query, so past that the cursor
//! switches to keyset paging (`WHERE id > last ORDER BY id`), which also keeps a restarted sync
//! from skipping or repeating rows. Cursors are `o:<offset>:<last id>` and `k:<last id>`.
//!
//! Limits: NetSuite's limit is concurrency, account-wide and shared by every integration; a
//! request over it is answered `429 CONCURRENCY_LIMIT_EXCEEDED` without a `Retry-After`. Calls
//! go through the account's [`Limits`] (a semaphore, 2 by default) and a 429 is retried with
//! exponential backoff and jitter until [`Config::max_wait`]. Under load some accounts answer
//! `401 INVALID_LOGIN` instead: a 401 is retried as throttling while fewer than
//! [`UNAUTHORIZED_BURST`] have come within a minute, and only then refused as bad credentials.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::oauth2::{self, ClientCredentials, TokenCache};
use super::suiteql::{self, DATE_FORMAT, DateStyle};
use super::tba::{self, Credentials};
use crate::ProviderError;
use crate::source::{
    Batch, CatalogSource, ExportedOrder, ExternalLevel, ExternalLocation, ExternalOrder, ExternalOrderLine,
    ExternalProduct, ExternalVariant, InventorySink, InventorySource, LocationSource, OrderSink, OrderSource,
    OutboundOrder, OutboundReturn, Problem, ReturnSink, ShipmentSink, ShippedLine, Tracking,
};
use crate::wire::{text, unsent};

/// The most rows one SuiteQL page holds.
pub const MAX_PAGE: usize = 1000;
/// The most rows REST serves of one query by offset.
pub const MAX_OFFSET_ROWS: usize = 100_000;
/// 401s within a minute that are still taken for throttling.
pub const UNAUTHORIZED_BURST: usize = 3;

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Token-Based Authentication (OAuth 1.0a) headers on every request.
    Tba(Credentials),
    /// OAuth 2.0 client credentials: a bearer token taken with a signed assertion.
    ClientCredentials(ClientCredentials),
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The account id (`1234567` or `1234567_SB1`).
    pub account: String,
    pub auth: Auth,
    /// Where the API is instead of `https://{account}.suitetalk.api.netsuite.com` (a mock).
    pub base_url: Option<String>,
    /// The account's time zone and the integration user's date style (for dates SuiteQL writes).
    pub time_zone: Tz,
    pub date_style: DateStyle,
    /// The account's currency (item prices carry none in SuiteQL).
    pub currency: String,
    /// Rows a page (at most [`MAX_PAGE`]).
    pub page_size: usize,
    /// The longest one call waits for the account in all before it gives up.
    pub max_wait: Duration,
    /// The first backoff after a 429; it doubles each time, with jitter.
    pub first_backoff: Duration,
    /// The account inventory adjustments post to (stock pushed back); none: nothing is pushed.
    pub adjustment_account: Option<String>,
    /// The subsidiary of the adjustments, in OneWorld accounts.
    pub subsidiary: Option<String>,
    /// The customer orders sent to NetSuite are entered for; none: no order is sent.
    pub order_customer: Option<String>,
}

impl Config {
    pub fn new(account: &str, auth: Auth, time_zone: Tz, currency: &str) -> Self {
        Config {
            account: account.to_owned(),
            auth,
            base_url: None,
            time_zone,
            date_style: DateStyle::MonthFirst,
            currency: currency.to_owned(),
            page_size: MAX_PAGE,
            max_wait: Duration::from_secs(120),
            first_backoff: Duration::from_secs(2),
            adjustment_account: None,
            subsidiary: None,
            order_customer: None,
        }
    }

    fn base(&self) -> String {
        match &self.base_url {
            Some(b) => b.trim_end_matches('/').to_owned(),
            None => format!("https://{}.suitetalk.api.netsuite.com", tba::host_account(&self.account)),
        }
    }
}

/// One account's limits, shared by every client of the account in this process: requests in
/// flight and the recent 401s.
#[derive(Debug)]
pub struct Limits {
    calls: Semaphore,
    unauthorized: Mutex<VecDeque<Instant>>,
    /// The OAuth 2.0 access token, when the account uses one.
    token: TokenCache,
}

impl Limits {
    /// At most `concurrency` requests in flight (at least one).
    pub fn new(concurrency: usize) -> Self {
        Limits {
            calls: Semaphore::new(concurrency.max(1)),
            unauthorized: Mutex::new(VecDeque::new()),
            token: TokenCache::default(),
        }
    }

    /// Records a 401 now; whether it is still within a burst taken for throttling.
    fn unauthorized_is_throttling(&self, now: Instant) -> bool {
        let mut seen = self.unauthorized.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while seen.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60)) {
            seen.pop_front();
        }
        seen.push_back(now);
        seen.len() < UNAUTHORIZED_BURST
    }
}

/// One page of SuiteQL rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub items: Vec<Value>,
    pub has_more: bool,
}

/// Where the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// By offset; the last id read so far.
    Offset(usize, i64),
    /// By id.
    After(i64),
}

impl Cursor {
    pub fn parse(raw: Option<&str>) -> Result<Cursor, ProviderError> {
        let bad = || ProviderError::Permanent(format!("not a NetSuite cursor: {raw:?}"));
        let Some(raw) = raw else { return Ok(Cursor::Offset(0, 0)) };
        let mut parts = raw.split(':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("o"), Some(o), Some(l)) => {
                Ok(Cursor::Offset(o.parse().map_err(|_| bad())?, l.parse().map_err(|_| bad())?))
            }
            (Some("k"), Some(l), None) => Ok(Cursor::After(l.parse().map_err(|_| bad())?)),
            _ => Err(bad()),
        }
    }

    pub fn render(self) -> String {
        match self {
            Cursor::Offset(o, l) => format!("o:{o}:{l}"),
            Cursor::After(l) => format!("k:{l}"),
        }
    }

    /// The cursor after a page of `read` rows whose last id is `last`, or `None` at the end.
    pub fn next(self, read: usize, last: Option<i64>, has_more: bool) -> Option<Cursor> {
        if !has_more || read == 0 {
            return None;
        }
        let last = last.unwrap_or(match self {
            Cursor::Offset(_, l) | Cursor::After(l) => l,
        });
        Some(match self {
            Cursor::Offset(o, _) if o + read + MAX_PAGE <= MAX_OFFSET_ROWS => Cursor::Offset(o + read, last),
            _ => Cursor::After(last),
        })
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

    /// Runs one SuiteQL page, waiting and retrying as the module says.
    pub async fn suiteql(&self, q: &str, limit: usize, offset: usize) -> Result<Rows, ProviderError> {
        let url = format!(
            "{}/services/rest/query/v1/suiteql?limit={}&offset={offset}",
            self.config.base(),
            limit.clamp(1, MAX_PAGE)
        );
        let body = json!({ "q": q });
        let answer = self.call(reqwest::Method::POST, &url, &body, &[("Prefer", "transient")], &[], true).await?;
        classify(answer.status, &answer.body)
    }

    /// Sends one request, waiting for the account's turn and retrying 429s, 401 bursts and
    /// transient failures as the module says; the answer when NetSuite took it (2xx, or a status
    /// in `answers`) or refused it for good. A request that is not `idempotent` is not sent again
    /// after a transient failure (NetSuite may have done it): that is the caller's to find out.
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: &Value,
        headers: &[(&str, &str)],
        answers: &[u16],
        idempotent: bool,
    ) -> Result<Answer, ProviderError> {
        let deadline = Instant::now() + self.config.max_wait;
        let mut attempt: u32 = 0;
        let mut fresh_token = false;
        loop {
            attempt += 1;
            let (answer, bearer) = {
                let _turn = self.limits.calls.acquire().await.map_err(|e| ProviderError::Transient(e.to_string()))?;
                match self.send(method.clone(), url, body, headers).await {
                    Ok((a, bearer)) if answers.contains(&a.status) => (Ok(a), bearer),
                    Ok((a, bearer)) => (a.checked(), bearer),
                    Err(e) => (Err(e), None),
                }
            };
            let wait = match answer {
                Ok(a) => return Ok(a),
                Err(ProviderError::RateLimited { .. }) => self.backoff(attempt),
                // An access token NetSuite no longer takes (expired early, revoked): take another,
                // once, before the refusal counts.
                Err(ProviderError::Unauthorized(e)) if bearer.is_some() && !fresh_token => {
                    tracing::info!(error = %e, "NetSuite refused the access token; taking another");
                    self.limits.token.forget(bearer.as_deref().unwrap_or_default()).await;
                    fresh_token = true;
                    continue;
                }
                Err(ProviderError::Unauthorized(e)) => {
                    if !self.limits.unauthorized_is_throttling(Instant::now()) {
                        return Err(ProviderError::Unauthorized(e));
                    }
                    tracing::info!(error = %e, "NetSuite refused the login; taken for throttling while it is a burst");
                    self.backoff(attempt)
                }
                Err(ProviderError::Transient(e)) if idempotent && attempt < 5 => {
                    tracing::info!(error = %e, attempt, "transient NetSuite failure; retrying");
                    self.backoff(attempt)
                }
                Err(e) => return Err(e),
            };
            if Instant::now() + wait > deadline {
                return Err(ProviderError::RateLimited { retry_after: wait });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Exponential backoff with full jitter: up to `first × 2^(attempt-1)`, at most a minute.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.config.first_backoff.saturating_mul(1 << attempt.saturating_sub(1).min(5));
        let ceiling = ceiling.min(Duration::from_secs(60));
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    /// The `Authorization` header of a request, and the bearer token in it (OAuth 2.0).
    async fn authorization(
        &self,
        method: &reqwest::Method,
        url: &str,
    ) -> Result<(String, Option<String>), ProviderError> {
        match &self.config.auth {
            Auth::Tba(credentials) => {
                let nonce: String = {
                    let mut r = rand::rng();
                    (0..24)
                        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[r.random_range(0..36)]))
                        .collect()
                };
                let header = tba::authorization(method.as_str(), url, credentials, &nonce, Utc::now().timestamp())
                    .map_err(|e| ProviderError::Permanent(e.to_string()))?;
                Ok((header, None))
            }
            Auth::ClientCredentials(c) => {
                let token = self.limits.token.get(|| self.take_token(c)).await?;
                Ok((format!("Bearer {token}"), Some(token)))
            }
        }
    }

    /// A new access token from the account's token endpoint.
    async fn take_token(&self, c: &ClientCredentials) -> Result<(String, Duration), ProviderError> {
        let url = format!("{}{}", self.config.base(), oauth2::TOKEN_PATH);
        let assertion = oauth2::assertion(c, &url, Utc::now().timestamp()).map_err(ProviderError::Unauthorized)?;
        let response = self
            .http
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(oauth2::token_request(&assertion))
            .send()
            .await;
        let response = response.map_err(|e| unsent(&url, &e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| ProviderError::Transient(e.to_string()))?;
        tracing::debug!(status, "NetSuite access token requested");
        oauth2::token_answer(status, &body)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<(Answer, Option<String>), ProviderError> {
        let (header, bearer) = self.authorization(&method, url).await?;
        let mut request = self.http.request(method, url).header("Authorization", header);
        if !body.is_null() {
            request = request.json(body);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.map_err(|e| unsent(url, &e))?;
        let status = response.status().as_u16();
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.bytes().await.map_err(|e| ProviderError::Transient(e.to_string()))?.to_vec();
        Ok((Answer { status, location, body }, bearer))
    }

    /// Creates or updates the record of `record_type` whose external id is `external_id`
    /// (`PUT record/v1/{type}/eid:{externalId}`): sending it again updates that record, never
    /// makes a second one. The record's internal id, from the `Location` NetSuite answers with.
    pub async fn upsert(
        &self,
        record_type: &str,
        external_id: &str,
        body: &Value,
    ) -> Result<Option<String>, ProviderError> {
        let url = format!("{}/services/rest/record/v1/{record_type}/eid:{}", self.config.base(), tba::pct(external_id));
        let answer = self.call(reqwest::Method::PUT, &url, body, &[], &[], true).await?;
        match answer.created_id() {
            Some(id) => Ok(Some(id)),
            None => self.find(record_type, external_id).await,
        }
    }

    /// The internal id of the record of `record_type` with external id `external_id`, if NetSuite
    /// has one.
    pub async fn find(&self, record_type: &str, external_id: &str) -> Result<Option<String>, ProviderError> {
        let url = format!(
            "{}/services/rest/record/v1/{record_type}/eid:{}?fields=id",
            self.config.base(),
            tba::pct(external_id)
        );
        let answer = self.call(reqwest::Method::GET, &url, &Value::Null, &[], &[404], true).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        Ok(Some(
            text(&body, "id")
                .ok_or_else(|| ProviderError::Decode(format!("{record_type} {external_id} without an id")))?,
        ))
    }

    /// Transforms record `id` of `from` into a new record of `to` (`POST
    /// record/v1/{from}/{id}/!transform/{to}`); the new record's id. Not idempotent: sent once,
    /// never again on a transient failure (see [`Client::call`]).
    pub async fn transform(
        &self,
        from: &str,
        id: &str,
        to: &str,
        body: &Value,
    ) -> Result<Option<String>, ProviderError> {
        let url = format!("{}/services/rest/record/v1/{from}/{}/!transform/{to}", self.config.base(), tba::pct(id));
        let answer = self.call(reqwest::Method::POST, &url, body, &[], &[], false).await?;
        Ok(answer.created_id())
    }
}

/// An answer as received.
struct Answer {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    /// The id of the record made, from the `Location` NetSuite answers a create with.
    fn created_id(&self) -> Option<String> {
        self.location.as_deref().and_then(|l| l.rsplit('/').next()).filter(|id| !id.is_empty()).map(str::to_owned)
    }

    /// The answer if NetSuite took the request, else its error typed.
    fn checked(self) -> Result<Answer, ProviderError> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let body: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        let (code, detail) = error_of(&body);
        Err(match self.status {
            429 => ProviderError::RateLimited { retry_after: Duration::ZERO },
            401 | 403 => ProviderError::Unauthorized(format!("{code}: {detail}")),
            500..=599 => ProviderError::Transient(format!("HTTP {} {code}: {detail}", self.status)),
            s => ProviderError::Permanent(format!("HTTP {s} {code}: {detail}")),
        })
    }
}

/// The error code and detail of a NetSuite error body.
fn error_of(body: &Value) -> (String, String) {
    let d = &body["o:errorDetails"][0];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&d["o:errorCode"]), text(&d["detail"]))
}

/// An answer as rows or a typed error.
pub fn classify(status: u16, bytes: &[u8]) -> Result<Rows, ProviderError> {
    let answer = Answer { status, location: None, body: bytes.to_vec() }.checked()?;
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let items = body["items"]
        .as_array()
        .cloned()
        .ok_or_else(|| ProviderError::Decode("a SuiteQL page without items".into()))?;
    Ok(Rows { items, has_more: body["hasMore"].as_bool().unwrap_or(false) })
}

impl Client {
    /// One page of a query over a table with an `id`: `select` with `{where}` where the paging
    /// condition goes (joined with `and` to `filter`), ordered by id.
    async fn page(
        &self,
        select: &str,
        filter: &str,
        cursor: Option<&str>,
    ) -> Result<(Rows, Option<String>), ProviderError> {
        let at = Cursor::parse(cursor)?;
        let (condition, offset) = match at {
            Cursor::Offset(o, _) => (filter.to_owned(), o),
            Cursor::After(last) => (format!("{filter} AND t.id > {last}"), 0),
        };
        let q = select.replace("{where}", &condition);
        let limit = self.config.page_size.clamp(1, MAX_PAGE);
        let rows = self.suiteql(&q, limit, offset).await?;
        let last = rows.items.iter().rev().find_map(|r| suiteql::integer(&r["id"]));
        let next = at.next(rows.items.len(), last, rows.has_more).map(Cursor::render);
        Ok((rows, next))
    }

    fn since(&self, since: Option<DateTime<Utc>>) -> String {
        match since {
            // The account's own zone, as SuiteQL compares.
            Some(t) => format!(
                "t.lastmodifieddate >= TO_DATE('{}', 'YYYY-MM-DD HH24:MI:SS')",
                t.with_timezone(&self.config.time_zone).format("%Y-%m-%d %H:%M:%S")
            ),
            None => "1 = 1".into(),
        }
    }
}

#[async_trait::async_trait]
impl LocationSource for Client {
    async fn locations(&self, cursor: Option<&str>) -> Result<Batch<ExternalLocation>, ProviderError> {
        let select = "SELECT t.id, t.name, t.isinactive FROM location t WHERE {where} ORDER BY t.id";
        let (rows, next) = self.page(select, "1 = 1", cursor).await?;
        let mut batch = Batch { next, ..Batch::default() };
        for r in rows.items {
            match (text(&r, "id"), text(&r, "name")) {
                (Some(id), Some(name)) => batch.records.push(ExternalLocation {
                    id,
                    name,
                    active: suiteql::boolean(&r["isinactive"]) != Some(true),
                }),
                _ => batch
                    .problems
                    .push(Problem::new(text(&r, "id").unwrap_or_default(), "a location without an id or a name")),
            }
        }
        Ok(batch)
    }
}

/// The item columns read: a matrix item's `parent` is its product.
const ITEMS: &str = "SELECT t.id, t.itemid, t.displayname, t.upccode, t.itemtype, t.isinactive, t.parent, \
    t.baseprice, TO_CHAR(t.lastmodifieddate, '{format}') AS lastmodified FROM item t \
    WHERE {where} AND t.itemtype IN ('InvtPart', 'Assembly', 'Kit') ORDER BY t.id";

impl Client {
    fn variant_of(&self, r: &Value) -> Result<ExternalVariant, Problem> {
        let id = text(r, "id").ok_or_else(|| Problem::new("", "an item without an id"))?;
        let sku = text(r, "itemid").ok_or_else(|| Problem::new(&id, "an item without an item name (SKU)"))?;
        let price = match &r["baseprice"] {
            Value::Null => rust_decimal::Decimal::ZERO,
            v => suiteql::decimal(v).ok_or_else(|| Problem::new(&id, format!("its base price {v} is not a number")))?,
        };
        let updated_at = match text(r, "lastmodified") {
            Some(s) => Some(
                suiteql::instant(&s, self.config.time_zone, self.config.date_style)
                    .ok_or_else(|| Problem::new(&id, format!("its last-modified date {s:?} is not a date")))?,
            ),
            None => None,
        };
        let title = text(r, "displayname").unwrap_or_else(|| sku.clone());
        let inactive = suiteql::boolean(&r["isinactive"]) == Some(true);
        let product_id = text(r, "parent").unwrap_or_else(|| id.clone());
        Ok(ExternalVariant {
            id: id.clone(),
            sku: sku.clone(),
            title: title.clone(),
            barcode: text(r, "upccode"),
            price,
            currency: self.config.currency.clone(),
            inventory_item_id: Some(id),
            product: ExternalProduct {
                handle: format!("netsuite-{product_id}"),
                id: product_id,
                title,
                status: if inactive { "archived" } else { "active" }.into(),
                category: text(r, "itemtype").unwrap_or_default(),
            },
            updated_at,
        })
    }
}

impl Client {
    /// A page of item rows as variants, the unreadable ones as problems.
    fn variants_of(&self, rows: &[Value], next: Option<String>) -> Batch<ExternalVariant> {
        let mut batch = Batch { next, ..Batch::default() };
        for r in rows {
            match self.variant_of(r) {
                Ok(v) => batch.records.push(v),
                Err(p) => batch.problems.push(p),
            }
        }
        batch
    }
}

#[async_trait::async_trait]
impl CatalogSource for Client {
    async fn variants(
        &self,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalVariant>, ProviderError> {
        let select = ITEMS.replace("{format}", DATE_FORMAT);
        let (rows, next) = self.page(&select, &self.since(since), cursor).await?;
        Ok(self.variants_of(&rows.items, next))
    }

    async fn product_variants(
        &self,
        product_id: &str,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalVariant>, ProviderError> {
        let id: i64 = product_id.parse().map_err(|_| ProviderError::Permanent(format!("item id {product_id:?}")))?;
        let select = ITEMS.replace("{format}", DATE_FORMAT);
        let (rows, next) = self.page(&select, &format!("(t.id = {id} OR t.parent = {id})"), cursor).await?;
        Ok(self.variants_of(&rows.items, next))
    }
}

/// Stock per item at one location (`aggregateItemLocation`: one row per item there), paged by item.
const LEVELS: &str = "SELECT t.id, ail.location, ail.quantityonhand, ail.quantityavailable, ail.quantitycommitted \
    FROM aggregateItemLocation ail JOIN item t ON t.id = ail.item WHERE {where} ORDER BY t.id";

fn level_of(r: &Value, location: &str) -> Result<ExternalLevel, Problem> {
    let item = text(r, "id").ok_or_else(|| Problem::new("", "a stock row without an item"))?;
    let qty = |k: &str| match &r[k] {
        Value::Null => Ok(0),
        v => suiteql::integer(v).ok_or_else(|| Problem::new(&item, format!("its {k} {v} is not a whole number"))),
    };
    Ok(ExternalLevel {
        id: format!("{item}:{location}"),
        inventory_item_id: item.clone(),
        location_id: location.to_owned(),
        on_hand: qty("quantityonhand")?,
        available: qty("quantityavailable")?,
        committed: qty("quantitycommitted")?,
        updated_at: None,
    })
}

#[async_trait::async_trait]
impl InventorySource for Client {
    async fn levels(
        &self,
        location_id: &str,
        _since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalLevel>, ProviderError> {
        // aggregateItemLocation has no last-modified date: every read is whole.
        let loc: i64 =
            location_id.parse().map_err(|_| ProviderError::Permanent(format!("location id {location_id:?}")))?;
        let (rows, next) = self.page(LEVELS, &format!("ail.location = {loc}"), cursor).await?;
        let mut batch = Batch { next, ..Batch::default() };
        for r in &rows.items {
            match level_of(r, location_id) {
                Ok(l) => batch.records.push(l),
                Err(p) => batch.problems.push(p),
            }
        }
        Ok(batch)
    }

    async fn level(&self, inventory_item_id: &str, location_id: &str) -> Result<Option<ExternalLevel>, ProviderError> {
        let (item, loc): (i64, i64) = match (inventory_item_id.parse(), location_id.parse()) {
            (Ok(i), Ok(l)) => (i, l),
            _ => return Err(ProviderError::Permanent(format!("item {inventory_item_id:?} at {location_id:?}"))),
        };
        let q = LEVELS.replace("{where}", &format!("t.id = {item} AND ail.location = {loc}"));
        let rows = self.suiteql(&q, 1, 0).await?;
        rows.items.first().map(|r| level_of(r, location_id)).transpose().map_err(|p| ProviderError::Decode(p.message))
    }
}

/// Stock changed here, pushed back as inventory adjustments whose external id is the change's
/// key: a retry updates the adjustment it made before (`PUT …/eid:`), never posts a second one.
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
        let Some(account) = &self.config.adjustment_account else {
            return Err(ProviderError::Permanent(
                "no adjustment account is configured: stock changes are not sent to NetSuite".into(),
            ));
        };
        let mut body = json!({
            "externalId": format!("qm-{key}"),
            "account": { "id": account },
            "adjLocation": { "id": location_id },
            "tranDate": Utc::now().with_timezone(&self.config.time_zone).format("%Y-%m-%d").to_string(),
            "memo": reference,
            "inventory": { "items": [
                { "item": { "id": inventory_item_id }, "location": { "id": location_id }, "adjustQtyBy": delta }
            ] },
        });
        if let Some(subsidiary) = &self.config.subsidiary {
            body["subsidiary"] = json!({ "id": subsidiary });
        }
        let id = self.upsert("inventoryAdjustment", &format!("qm-{key}"), &body).await?;
        tracing::debug!(key, adjustment = ?id, "inventory adjustment sent to NetSuite");
        Ok(())
    }

    /// NetSuite has no compare-and-swap: the level is read, and the difference adjusted only if it
    /// still is `expected` ([`ProviderError::Stale`] otherwise, for the caller to recompute).
    async fn set(
        &self,
        key: &str,
        inventory_item_id: &str,
        location_id: &str,
        expected: i64,
        on_hand: i64,
        reference: &str,
    ) -> Result<(), ProviderError> {
        // A retry of a round whose adjustment was made (its answer lost) finds it and stops: the
        // level it reads now already has the change, and adjusting from it again would double it.
        if self.find("inventoryAdjustment", &format!("qm-{key}")).await?.is_some() {
            return Ok(());
        }
        let now = self.level(inventory_item_id, location_id).await?.map_or(0, |l| l.on_hand);
        if now != expected {
            return Err(ProviderError::Stale(format!("NetSuite has {now}, not {expected}")));
        }
        if on_hand == now {
            return Ok(());
        }
        self.adjust(key, inventory_item_id, location_id, on_hand - now, reference).await
    }
}

/// Orders of ours become sales orders whose external id is our order's (`qm-{key}`): sent again,
/// NetSuite updates that sales order (`PUT …/eid:`). Their lines are numbered 1, 2, … in the order
/// sent, as NetSuite numbers a new order's lines. The customer is the account's configured one.
#[async_trait::async_trait]
impl OrderSink for Client {
    async fn export(&self, order: &OutboundOrder) -> Result<ExportedOrder, ProviderError> {
        let Some(customer) = &self.config.order_customer else {
            return Err(ProviderError::Permanent("no customer is configured for orders sent to NetSuite".into()));
        };
        let external_id = format!("qm-{}", order.key);
        let at = |location: &Option<String>| location.as_ref().map(|l| json!({ "id": l }));
        let items: Vec<Value> = order
            .lines
            .iter()
            .map(|l| {
                let mut line = json!({ "item": { "id": l.item_id }, "quantity": l.quantity, "rate": l.price });
                if let Some(loc) = at(&order.location_id) {
                    line["location"] = loc;
                }
                line
            })
            .collect();
        let mut body = json!({
            "externalId": external_id,
            "entity": { "id": customer },
            "tranDate": order.created_at.with_timezone(&self.config.time_zone).format("%Y-%m-%d").to_string(),
            "otherRefNum": order.number,
            "memo": format!("Quartermaster order {}", order.number),
            "item": { "items": items },
        });
        if let Some(loc) = at(&order.location_id) {
            body["location"] = loc;
        }
        let id = self
            .upsert("salesOrder", &external_id, &body)
            .await?
            .ok_or_else(|| ProviderError::Decode(format!("NetSuite kept no sales order {external_id}")))?;
        Ok(ExportedOrder { id, line_ids: (1..=order.lines.len()).map(|n| n.to_string()).collect() })
    }
}

/// A shipment becomes an item fulfilment transformed from the sales order, with the tracking
/// number on its package. Its external id is made of the order and the tracking number (or the
/// lines, without one), so a retry after a lost answer finds the fulfilment it made.
#[async_trait::async_trait]
impl ShipmentSink for Client {
    async fn ship(&self, order_id: &str, lines: &[ShippedLine], tracking: &Tracking) -> Result<String, ProviderError> {
        let what = match &tracking.number {
            Some(n) => n.clone(),
            None => lines.iter().map(|l| format!("{}x{}", l.line_id, l.quantity)).collect::<Vec<_>>().join("-"),
        };
        let external_id = format!("qm-ship-{order_id}-{what}").chars().take(300).collect::<String>();
        let mut package = json!({ "packageDescr": tracking.company.clone().unwrap_or_else(|| "Shipped".into()) });
        if let Some(n) = &tracking.number {
            package["packageTrackingNumber"] = json!(n);
        }
        let extra = json!({ "shipStatus": { "id": "C" }, "package": { "items": [package] } });
        self.transform_once(("salesOrder", order_id, "itemFulfillment"), &external_id, lines, extra).await
    }
}

impl Client {
    /// Record `to` made from record `id` of `from` with `lines` (`orderLine`, `quantity`,
    /// `itemReceive`) and the fields of `extra`, external id `external_id`: found when an earlier
    /// attempt made it, else transformed once.
    async fn transform_once(
        &self,
        (from, id, to): (&str, &str, &str),
        external_id: &str,
        lines: &[ShippedLine],
        extra: Value,
    ) -> Result<String, ProviderError> {
        if let Some(found) = self.find(to, external_id).await? {
            return Ok(found);
        }
        let mut items = Vec::with_capacity(lines.len());
        for l in lines.iter().filter(|l| l.quantity > 0) {
            let line: i64 =
                l.line_id.parse().map_err(|_| ProviderError::Permanent(format!("order line {:?}", l.line_id)))?;
            items.push(json!({ "orderLine": line, "itemReceive": true, "quantity": l.quantity }));
        }
        let mut body = json!({ "externalId": external_id, "item": { "items": items } });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        match self.transform(from, id, to, &body).await? {
            Some(made) => Ok(made),
            None => self
                .find(to, external_id)
                .await?
                .ok_or_else(|| ProviderError::Decode(format!("NetSuite kept no {to} {external_id}"))),
        }
    }
}

/// A return becomes a return authorisation transformed from the sales order (external id
/// `qm-ret-{return}`), and once its units are back an item receipt transformed from the
/// authorisation (`qm-rcv-{return}`); each is found again on a retry rather than made twice.
#[async_trait::async_trait]
impl ReturnSink for Client {
    async fn authorize(&self, order_id: &str, ret: &OutboundReturn) -> Result<String, ProviderError> {
        let key = format!("qm-ret-{}", ret.key);
        self.transform_once(("salesOrder", order_id, "returnAuthorization"), &key, &ret.lines, Value::Null).await
    }

    async fn receive(&self, authorization_id: &str, ret: &OutboundReturn) -> Result<String, ProviderError> {
        // The authorisation's lines are the return's, numbered as they were sent.
        let lines: Vec<ShippedLine> = ret
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| ShippedLine { line_id: (i + 1).to_string(), quantity: l.quantity })
            .collect();
        let key = format!("qm-rcv-{}", ret.key);
        self.transform_once(("returnAuthorization", authorization_id, "itemReceipt"), &key, &lines, Value::Null).await
    }
}

/// Sales orders, a page of orders at a time; their lines are read for the page's orders in a
/// second query, so an order's lines are never split across pages. The orders Quartermaster sent
/// (external id `qm-…`) are its own and never read back.
const SALES_ORDERS: &str = "SELECT t.id, t.tranid, t.status, t.foreigntotal, c.symbol AS currency, \
    TO_CHAR(t.createddate, '{format}') AS created, TO_CHAR(t.lastmodifieddate, '{format}') AS modified \
    FROM transaction t LEFT JOIN currency c ON c.id = t.currency WHERE {where} AND t.type = 'SalesOrd' \
    AND (t.externalid IS NULL OR t.externalid NOT LIKE 'qm-%') ORDER BY t.id";

/// The lines of some orders: NetSuite stores a sales order's quantities negated on its lines
/// (`quantity`, `quantityshiprecv`); the main line and tax/shipping lines are left out.
const ORDER_LINES: &str = "SELECT tl.transaction, tl.id, tl.item, i.itemid, tl.quantity, tl.quantityshiprecv, \
    tl.location, tl.isclosed FROM transactionline tl LEFT JOIN item i ON i.id = tl.item \
    WHERE tl.transaction IN ({ids}) AND tl.mainline = 'F' AND tl.taxline = 'F' AND tl.itemtype IN ('InvtPart', 'Assembly', 'Kit') \
    ORDER BY tl.transaction, tl.id";

impl Client {
    fn instant_of(&self, r: &Value, k: &str) -> Option<DateTime<Utc>> {
        text(r, k).and_then(|s| suiteql::instant(&s, self.config.time_zone, self.config.date_style))
    }

    /// The orders of a page with their lines read in one more query.
    async fn with_lines(&self, rows: Vec<Value>) -> Result<Batch<ExternalOrder>, ProviderError> {
        let ids: Vec<i64> = rows.iter().filter_map(|r| suiteql::integer(&r["id"])).collect();
        let mut lines: std::collections::BTreeMap<String, Vec<Value>> = std::collections::BTreeMap::new();
        if !ids.is_empty() {
            let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
            // At most a page of orders: their lines may be more than one page.
            let mut offset = 0;
            loop {
                let page = self.suiteql(&ORDER_LINES.replace("{ids}", &list), MAX_PAGE, offset).await?;
                offset += page.items.len();
                for l in page.items {
                    if let Some(order) = text(&l, "transaction") {
                        lines.entry(order).or_default().push(l);
                    }
                }
                if !page.has_more || offset >= MAX_OFFSET_ROWS {
                    break;
                }
            }
        }
        let mut batch = Batch::default();
        for r in rows {
            let Some(id) = text(&r, "id") else {
                batch.problems.push(Problem::new("", "a sales order without an id"));
                continue;
            };
            let total = match &r["foreigntotal"] {
                Value::Null => None,
                v => match suiteql::decimal(v) {
                    Some(d) => Some(d),
                    None => {
                        batch.problems.push(Problem::new(&id, format!("its total {v} is not a number")));
                        continue;
                    }
                },
            };
            let mut order_lines = Vec::new();
            let mut location = None;
            let mut bad = None;
            for l in lines.remove(&id).unwrap_or_default() {
                let (Some(line_id), Some(q)) = (text(&l, "id"), suiteql::integer(&l["quantity"])) else {
                    bad = Some("a line without an id or a quantity");
                    break;
                };
                // Sales order lines carry quantities negated.
                let quantity = q.abs();
                let shipped = suiteql::integer(&l["quantityshiprecv"]).unwrap_or(0).abs();
                let closed = suiteql::boolean(&l["isclosed"]) == Some(true);
                location = location.or_else(|| text(&l, "location"));
                order_lines.push(ExternalOrderLine {
                    id: line_id,
                    variant_id: text(&l, "item"),
                    sku: text(&l, "itemid"),
                    quantity,
                    unfulfilled: if closed { 0 } else { (quantity - shipped).max(0) },
                });
            }
            if let Some(why) = bad {
                batch.problems.push(Problem::new(&id, why));
                continue;
            }
            let status = text(&r, "status").unwrap_or_default();
            let updated_at = self.instant_of(&r, "modified");
            batch.records.push(ExternalOrder {
                name: text(&r, "tranid").unwrap_or_else(|| id.clone()),
                created_at: self.instant_of(&r, "created"),
                updated_at,
                // `C`: cancelled; NetSuite keeps no time of it, so the last change stands for it.
                cancelled_at: if status == "C" || status == "SalesOrd:C" {
                    updated_at.or_else(|| Some(Utc::now()))
                } else {
                    None
                },
                location_id: location,
                currency: text(&r, "currency").unwrap_or_else(|| self.config.currency.clone()),
                total,
                lines: order_lines,
                fulfillments: Vec::new(),
                returns: Vec::new(),
                id,
            });
        }
        Ok(batch)
    }
}

#[async_trait::async_trait]
impl OrderSource for Client {
    async fn orders(
        &self,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Batch<ExternalOrder>, ProviderError> {
        let select = SALES_ORDERS.replace("{format}", DATE_FORMAT);
        let (rows, next) = self.page(&select, &self.since(since), cursor).await?;
        let mut batch = self.with_lines(rows.items).await?;
        batch.next = next;
        Ok(batch)
    }

    async fn order(&self, order_id: &str) -> Result<Option<ExternalOrder>, ProviderError> {
        let id: i64 = order_id.parse().map_err(|_| ProviderError::Permanent(format!("sales order id {order_id:?}")))?;
        let q = SALES_ORDERS.replace("{format}", DATE_FORMAT).replace("{where}", &format!("t.id = {id}"));
        let rows = self.suiteql(&q, 1, 0).await?;
        let mut batch = self.with_lines(rows.items).await?;
        if let Some(p) = batch.problems.pop() {
            return Err(ProviderError::Decode(p.message));
        }
        Ok(batch.records.pop())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_give_way_to_ids_before_the_row_limit() {
        let start = Cursor::parse(None).expect("start");
        assert_eq!(start, Cursor::Offset(0, 0));
        assert_eq!(start.next(1000, Some(1500), true), Some(Cursor::Offset(1000, 1500)));
        assert_eq!(start.next(1000, Some(1500), false), None, "the last page");
        assert_eq!(
            Cursor::Offset(98_000, 7).next(1000, Some(98_999), true),
            Some(Cursor::Offset(99_000, 98_999)),
            "the last 1,000 rows by offset"
        );
        assert_eq!(
            Cursor::Offset(99_000, 7).next(1000, Some(99_999), true),
            Some(Cursor::After(99_999)),
            "past 100,000 by id"
        );
        assert_eq!(Cursor::After(99_999).next(1000, Some(120_000), true), Some(Cursor::After(120_000)));
        for c in [Cursor::Offset(3000, 42), Cursor::After(42)] {
            assert_eq!(Cursor::parse(Some(&c.render())), Ok(c));
        }
        assert!(Cursor::parse(Some("x:1")).is_err());
        assert!(Cursor::parse(Some("o:1")).is_err());
    }

    #[test]
    fn answers_are_rows_or_typed_errors() {
        let page = br#"{"links":[],"count":1,"hasMore":true,"items":[{"links":[],"id":"1201","itemid":"A"}],"offset":0,"totalResults":2}"#;
        let rows = classify(200, page).expect("rows");
        assert!(rows.has_more);
        assert_eq!(rows.items.len(), 1);
        let limited = br#"{"status":429,"o:errorDetails":[{"detail":"Concurrent request limit exceeded.","o:errorCode":"CONCURRENCY_LIMIT_EXCEEDED"}]}"#;
        assert!(matches!(classify(429, limited), Err(ProviderError::RateLimited { .. })));
        let login =
            br#"{"status":401,"o:errorDetails":[{"detail":"Invalid login attempt.","o:errorCode":"INVALID_LOGIN"}]}"#;
        assert!(matches!(classify(401, login), Err(ProviderError::Unauthorized(m)) if m.starts_with("INVALID_LOGIN")));
        assert!(matches!(classify(400, b"{}"), Err(ProviderError::Permanent(_))));
        assert!(matches!(classify(503, b""), Err(ProviderError::Transient(_))));
        assert!(matches!(classify(200, b"{}"), Err(ProviderError::Decode(_))));
    }

    #[test]
    fn a_burst_of_401s_is_throttling_until_it_persists() {
        let l = Limits::new(2);
        let now = Instant::now();
        assert!(l.unauthorized_is_throttling(now));
        assert!(l.unauthorized_is_throttling(now + Duration::from_secs(1)));
        assert!(!l.unauthorized_is_throttling(now + Duration::from_secs(2)), "the third within a minute");
        let later = Limits::new(2);
        assert!(later.unauthorized_is_throttling(now));
        assert!(later.unauthorized_is_throttling(now + Duration::from_secs(61)), "the first expired");
    }
}
