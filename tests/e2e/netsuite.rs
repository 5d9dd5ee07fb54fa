//! The NetSuite SuiteQL client against the mock: every row read once across pages (offset
//! paging, then keyset past 100,000 rows), the account's concurrency cap kept, a 429 without
//! `Retry-After` and a 401 burst under load waited out, persistent 401s refused, and two accounts
//! on one mock never delaying or mis-signing each other.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qm_connectors::ProviderError;
use qm_connectors::netsuite::client::{Auth, Client, Config, Limits};
use qm_connectors::netsuite::oauth2::ClientCredentials;
use qm_connectors::netsuite::tba::Credentials;
use qm_connectors::source::{CatalogSource, InventorySource, LocationSource, OrderSource};
use qm_tests::netsuite_mock::{Account, Fault, MockNetSuite, SalesOrder};

fn credentials(account: &str, secret: &str) -> Credentials {
    Credentials {
        account: account.into(),
        consumer_key: format!("ck-{account}"),
        consumer_secret: format!("cs-{secret}"),
        token_id: format!("tk-{account}"),
        token_secret: format!("ts-{secret}"),
    }
}

fn client(mock: &MockNetSuite, c: Credentials, limits: Arc<Limits>, page: usize) -> Client {
    client_with(mock, &c.account.clone(), Auth::Tba(c), limits, page)
}

fn client_with(mock: &MockNetSuite, account: &str, auth: Auth, limits: Arc<Limits>, page: usize) -> Client {
    let mut config = Config::new(account, auth, chrono_tz::America::New_York, "USD");
    config.base_url = Some(mock.url.clone());
    config.page_size = page;
    config.first_backoff = Duration::from_millis(20);
    config.max_wait = Duration::from_secs(20);
    Client::new(reqwest::Client::new(), config, limits)
}

#[tokio::test]
async fn scenario_1_a_catalog_and_its_stock_are_read_whole_across_pages() {
    let mock = MockNetSuite::start().await;
    let c = credentials("1234567_SB1", "a");
    mock.add_account(c.clone(), Account::generate(2_345), 4);
    let ns = client(&mock, c, Arc::new(Limits::new(2)), 1000);
    let locations = ns.locations(None).await.expect("locations");
    assert_eq!(locations.records.len(), 2);
    assert_eq!(locations.next, None);
    let (mut ids, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let b = ns.variants(None, cursor.as_deref()).await.expect("page");
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        ids.extend(b.records.iter().map(|v| v.id.clone()));
        pages += 1;
        cursor = b.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 2_345);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 2_345, "no row twice");
    let first = ns.variants(None, None).await.expect("page").records.remove(0);
    assert_eq!((first.sku.as_str(), first.price.to_string().as_str()), ("NS-1001", "10.00"));
    assert_eq!(first.updated_at, Some("2026-01-15T15:04:05Z".parse().expect("utc")), "New York wall time to UTC");
    let levels = ns.levels("2", None, None).await.expect("levels");
    assert_eq!(levels.records.len(), 782, "every third item is stocked at location 2");
    assert!(levels.records.iter().all(|l| l.on_hand == 1 && l.location_id == "2"));
    let one = ns.level("1004", "1").await.expect("level").expect("stocked");
    assert_eq!((one.on_hand, one.available), (3, 3));
    assert_eq!(ns.level("1002", "2").await.expect("level"), None);
    // A sync restarted from a checkpoint goes on from it: no row twice, none skipped.
    let page1 = ns.variants(None, None).await.expect("page");
    let rest = ns.variants(None, page1.next.as_deref()).await.expect("page");
    assert_eq!(rest.records[0].id, "2001");
    mock.stop().await;
}

#[tokio::test]
async fn past_100000_rows_the_pages_go_on_by_id() {
    if !qm_tests::slow_tests_enabled("past_100000_rows_the_pages_go_on_by_id") {
        return;
    }
    let mock = MockNetSuite::start().await;
    let c = credentials("7654321", "k");
    mock.add_account(c.clone(), Account::generate(101_500), 4);
    let ns = client(&mock, c, Arc::new(Limits::new(4)), 1000);
    let (mut n, mut last, mut cursor) = (0usize, 0i64, None::<String>);
    loop {
        let b = ns.variants(None, cursor.as_deref()).await.expect("page (offset past 100,000 would be refused)");
        for v in &b.records {
            let id: i64 = v.id.parse().expect("id");
            assert!(id > last, "ids ascend across pages: {id} after {last}");
            last = id;
        }
        n += b.records.len();
        cursor = b.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(n, 101_500);
    mock.stop().await;
}

#[tokio::test]
async fn scenario_2_15_throttling_and_login_bursts_are_waited_out_within_the_concurrency_cap() {
    let mock = MockNetSuite::start().await;
    let c = credentials("1234567", "t");
    mock.add_account(c.clone(), Account::generate(50), 2);
    mock.latency(Duration::from_millis(40));
    let limits = Arc::new(Limits::new(2));
    let ns = Arc::new(client(&mock, c.clone(), limits.clone(), 10));
    // Eight concurrent reads never exceed the account's two.
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let ns = ns.clone();
            tokio::spawn(async move { ns.locations(None).await })
        })
        .collect();
    for r in reads {
        r.await.expect("task").expect("read");
    }
    assert_eq!(mock.stats("1234567").1, 2, "at most two in flight");
    // 429 without Retry-After, then the 401-under-load variant twice: waited out.
    mock.script("1234567", &[Fault::Concurrency, Fault::Concurrency, Fault::InvalidLogin, Fault::InvalidLogin]);
    let before = mock.stats("1234567").0;
    ns.locations(None).await.expect("succeeds after the faults");
    assert_eq!(mock.stats("1234567").0 - before, 5, "four faults and the answer");
    // 401s that go on are bad credentials.
    let fresh = client(&mock, credentials("1234567", "wrong"), Arc::new(Limits::new(2)), 10);
    match fresh.locations(None).await {
        Err(ProviderError::Unauthorized(m)) => assert!(m.contains("INVALID_LOGIN"), "{m}"),
        other => panic!("persistent 401s: {other:?}"),
    }
    mock.stop().await;
}

#[tokio::test]
async fn scenario_17_one_accounts_throttling_or_bad_login_never_delays_or_mis_signs_another() {
    let mock = MockNetSuite::start().await;
    let (a, b) = (credentials("1111111", "a-secret"), credentials("2222222", "b-secret"));
    mock.add_account(a.clone(), Account::generate(20), 2);
    mock.add_account(b.clone(), Account::generate(20), 2);
    let busy = client(&mock, a, Arc::new(Limits::new(2)), 10);
    let calm = client(&mock, b, Arc::new(Limits::new(2)), 10);
    mock.script("1111111", &[Fault::Concurrency; 6]);
    let slow = tokio::spawn(async move { busy.locations(None).await });
    let started = Instant::now();
    let got = calm.locations(None).await.expect("B reads");
    assert!(started.elapsed() < Duration::from_millis(500), "B waited on A: {:?}", started.elapsed());
    assert_eq!(got.records.len(), 2);
    slow.await.expect("task").expect("A gets through in the end");
    // B's requests were signed with B's secrets (the mock checks every signature per account).
    assert!(mock.stats("2222222").0 >= 1);
    mock.stop().await;
}

#[tokio::test]
async fn sales_orders_come_with_every_line_quantities_made_positive_and_what_is_left_to_ship() {
    let mock = MockNetSuite::start().await;
    let c = credentials("3333333", "o");
    let mut account = Account::generate(60);
    // 30 orders of 50 lines: one page of orders, their 1,500 lines in two pages.
    for k in 0..30i64 {
        let lines = (0..50i64).map(|n| (k * 100 + n, 1001 + n, 2, if n == 0 { 1 } else { 0 }, 1)).collect();
        let status = if k == 7 { "C" } else { "B" };
        account.orders.push(SalesOrder {
            id: 5000 + k,
            tranid: format!("SO{k}"),
            status: status.into(),
            total: "199.00".into(),
            lines,
        });
    }
    mock.add_account(c.clone(), account, 4);
    let ns = client(&mock, c, Arc::new(Limits::new(2)), 1000);
    let b = ns.orders(None, None).await.expect("orders");
    assert!(b.problems.is_empty(), "{:?}", b.problems);
    assert_eq!(b.records.len(), 30);
    assert_eq!(b.next, None);
    assert!(b.records.iter().all(|o| o.lines.len() == 50), "no order's lines cut off at a page");
    let first = &b.records[0];
    assert_eq!(first.name, "SO0");
    assert_eq!(first.total, Some(rust_decimal::Decimal::new(19900, 2)), "money stays exact");
    assert_eq!(first.location_id.as_deref(), Some("1"));
    assert_eq!((first.lines[0].quantity, first.lines[0].unfulfilled), (2, 1), "negated quantities read as positive");
    assert_eq!(first.lines[1].sku.as_deref(), Some("NS-1002"));
    assert_eq!(first.updated_at, Some("2026-01-16T14:00:00Z".parse().expect("utc")));
    assert!(b.records[7].cancelled_at.is_some() && b.records[6].cancelled_at.is_none());
    let one = ns.order("5003").await.expect("order").expect("found");
    assert_eq!((one.name.as_str(), one.lines.len()), ("SO3", 50));
    assert_eq!(ns.order("9999").await.expect("order"), None);
    mock.stop().await;
}

fn test_key(name: &str) -> String {
    std::fs::read_to_string(qm_tests::TestApp::repo_root().join("tests/fixtures/jwt").join(name)).expect("test key")
}

#[tokio::test]
async fn scenario_15_oauth2_client_credentials_take_one_token_take_another_when_refused_and_a_wrong_certificate_is_refused()
 {
    let mock = MockNetSuite::start().await;
    let c = credentials("7654321", "unused");
    mock.add_account(c.clone(), Account::generate(40), 4);
    mock.add_client("7654321", "client-1", "cert-1", &test_key("rsa_public.pem"));
    let m2m = |certificate: &str| {
        Auth::ClientCredentials(ClientCredentials {
            client_id: "client-1".into(),
            certificate_id: certificate.into(),
            private_key: test_key("rsa_private.pem"),
        })
    };
    let limits = Arc::new(Limits::new(2));
    let ns = client_with(&mock, "7654321", m2m("cert-1"), limits.clone(), 25);
    let mut read = 0;
    let mut cursor = None;
    loop {
        let b = ns.variants(None, cursor.as_deref()).await.expect("a page");
        read += b.records.len();
        match b.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(read, 40);
    assert_eq!(mock.token_requests(), 1, "one token for every page");
    // Another client of the account takes the same token.
    let again = client_with(&mock, "7654321", m2m("cert-1"), limits.clone(), 25);
    again.locations(None).await.expect("locations");
    assert_eq!(mock.token_requests(), 1);
    // NetSuite stops taking it (expired early, revoked): a new one is taken at once, no refusal.
    mock.expire_tokens();
    assert_eq!(again.locations(None).await.expect("locations").records.len(), 2);
    assert_eq!(mock.token_requests(), 2);
    // A certificate NetSuite does not know: the assertion is refused; after the burst allowance
    // the credentials are refused for good.
    let wrong = client_with(&mock, "7654321", m2m("cert-2"), Arc::new(Limits::new(2)), 25);
    assert!(matches!(wrong.locations(None).await, Err(ProviderError::Unauthorized(m)) if m.contains("invalid_grant")));
    mock.stop().await;
}
