//! A NetSuite connector installed through the API and driven by the sync engine against the mock:
//! locations, items, stock per location and sales orders read into the tenant (scenario 1),
//! stock changed here sent back as one inventory adjustment even when an answer is lost
//! (scenario 8), the User Event script's signed messages applied once and tampered, replayed or
//! stale ones refused, and one tenant's refused credentials pausing only its own connector
//! (scenarios 15 and 17).

use std::collections::BTreeMap;

use qm_api::db::TxMode;
use qm_api::db::entities::{connector_webhook, location, order, stock_level, variant};
use qm_connectors::netsuite::inbound;
use qm_connectors::netsuite::tba::Credentials;
use qm_tests::netsuite_mock::{Account, Fault, MockNetSuite, SalesOrder};
use qm_tests::{TestApp, TestTenant};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

const SECRET: &str = "ns-installation-secret";

fn credentials(account: &str, secret: &str) -> Credentials {
    Credentials {
        account: account.into(),
        consumer_key: format!("ck-{account}"),
        consumer_secret: format!("cs-{secret}"),
        token_id: format!("tk-{account}"),
        token_secret: format!("ts-{secret}"),
    }
}

/// An account of 25 items at two locations with one open sales order.
fn account() -> Account {
    let mut a = Account::generate(25);
    a.orders.push(SalesOrder {
        id: 5001,
        tranid: "SO-5001".into(),
        status: "B".into(),
        total: "199.00".into(),
        lines: vec![(1, 1004, 2, 0, 1)],
    });
    a
}

/// Installs a NetSuite connector for `c` on the mock, NetSuite location 1 mapped to `main`.
async fn install(
    app: &TestApp,
    t: &TestTenant,
    mock: &MockNetSuite,
    c: &Credentials,
    main: &str,
    extra: Value,
) -> String {
    let mut config = json!({
        "accountId": c.account, "consumerKey": c.consumer_key, "consumerSecret": c.consumer_secret,
        "tokenId": c.token_id, "tokenSecret": c.token_secret, "webhookSecret": SECRET,
        "timeZone": "America/New_York", "currency": "USD", "baseUrl": mock.url,
        "locationMapping": [{ "netsuiteLocationId": "1", "locationId": main }],
    });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id kind account netsuite { timeZone dateStyle currency concurrency } } userErrors { field code message } } }",
            json!({ "i": { "kind": "NETSUITE", "netsuite": config } }),
        )
        .await;
    assert_eq!(d["connectorInstall"]["userErrors"], json!([]), "{d}");
    let installed = &d["connectorInstall"]["connector"];
    assert_eq!(installed["kind"], "NETSUITE");
    assert_eq!(installed["netsuite"]["dateStyle"], "MONTH_FIRST");
    installed["id"].as_str().expect("id").to_owned()
}

const RUN: &str = "id status error problemCount counts { resource applied unchanged problems } problems { resource externalId message }";

/// Runs a sync of the connector to its end.
async fn sync(app: &TestApp, t: &TestTenant, connector: &str) -> Value {
    let d = app
        .data(
            &t.owner_key,
            &format!("mutation($i: SyncRunInput!) {{ syncRun(input: $i) {{ syncRun {{ {RUN} }} userErrors {{ message }} }} }}"),
            json!({ "i": { "connectorId": connector } }),
        )
        .await;
    assert_eq!(d["syncRun"]["userErrors"], json!([]), "{d}");
    let id = d["syncRun"]["syncRun"]["id"].as_str().expect("run").to_owned();
    // Bounded by time: another tenant's sync may be draining this one's jobs meanwhile.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < until {
        app.drain_jobs().await;
        let d = app
            .data(
                &t.owner_key,
                &format!("query($id: ID!) {{ node(id: $id) {{ ... on SyncRun {{ {RUN} }} }} }}"),
                json!({ "id": id }),
            )
            .await;
        if d["node"]["status"] == "COMPLETED" || d["node"]["status"] == "FAILED" {
            return d["node"].clone();
        }
        app.make_jobs_due().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the sync run did not finish");
}

fn applied(run: &Value, resource: &str) -> (u64, u64) {
    let c = run["counts"].as_array().and_then(|cs| cs.iter().find(|c| c["resource"] == resource.to_uppercase()));
    c.map_or((0, 0), |c| (c["applied"].as_u64().unwrap_or(0), c["unchanged"].as_u64().unwrap_or(0)))
}

/// On hand per (SKU, location code), and the variants by SKU with their price.
async fn mirror(app: &TestApp, t: &TestTenant) -> (BTreeMap<(String, String), i64>, BTreeMap<String, String>) {
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let variants = variant::Entity::find().all(&s.tx).await.expect("variants");
    let skus: BTreeMap<_, _> = variants.iter().map(|v| (v.id, v.sku.clone())).collect();
    let locations: BTreeMap<_, _> =
        location::Entity::find().all(&s.tx).await.expect("locations").into_iter().map(|l| (l.id, l.code)).collect();
    let on_hand = stock_level::Entity::find()
        .all(&s.tx)
        .await
        .expect("levels")
        .into_iter()
        .filter(|l| l.on_hand != 0)
        .map(|l| ((skus[&l.variant_id].clone(), locations[&l.location_id].clone()), l.on_hand))
        .collect();
    let prices = variants.into_iter().map(|v| (v.sku, v.price.0.normalize().to_string())).collect();
    s.commit().await.expect("commit");
    (on_hand, prices)
}

#[tokio::test]
async fn scenario_1_a_netsuite_account_syncs_into_the_tenant_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("ns-sync").await;
    let mock = MockNetSuite::start().await;
    let c = credentials("1234567_SB1", "a");
    mock.add_account(c.clone(), account(), 4);
    let main = app.location(&t.owner_key, "MAIN").await;
    let connector = install(&app, &t, &mock, &c, &main, json!({})).await;

    let run = sync(&app, &t, &connector).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["problemCount"], 0, "{run}");
    assert_eq!(applied(&run, "locations").0, 2);
    assert_eq!(applied(&run, "catalog").0, 25);
    assert_eq!(applied(&run, "orders").0, 1);
    let (on_hand, prices) = mirror(&app, &t).await;
    assert_eq!(prices.len(), 25);
    assert_eq!(prices["NS-1001"], "10");
    assert_eq!(prices["NS-1013"], "22.12", "SuiteQL's numeric strings stay exact decimals");
    let mut expected = BTreeMap::new();
    for k in 0..25_i64 {
        let sku = format!("NS-{}", 1001 + k);
        if k % 7 != 0 {
            expected.insert((sku.clone(), "MAIN".to_owned()), k % 7);
        }
        if k % 3 == 0 {
            // The unmapped NetSuite location became a location of ours.
            expected.insert((sku, "netsuite-2".to_owned()), 1);
        }
    }
    assert_eq!(on_hand, expected);
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let orders = order::Entity::find().all(&s.tx).await.expect("orders");
    s.commit().await.expect("commit");
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].external_id, "netsuite-5001");
    assert_eq!(orders[0].location_id, qm_tests::uuid_of(&main), "the line's NetSuite location, mapped");

    // Again: every record is already up to date; nothing doubles.
    let again = sync(&app, &t, &connector).await;
    assert_eq!(again["status"], "COMPLETED", "{again}");
    assert_eq!(applied(&again, "catalog"), (0, 25), "{again}");
    assert_eq!(mirror(&app, &t).await.0, expected);
    mock.stop().await;
}

#[tokio::test]
async fn an_account_moved_to_oauth2_client_credentials_in_place_syncs_and_its_key_and_choice_are_checked() {
    let app = TestApp::spawn().await;
    let t = app.tenant("ns-m2m").await;
    let mock = MockNetSuite::start().await;
    let c = credentials("2345678", "unused");
    mock.add_account(c.clone(), account(), 4);
    let key = |name: &str| {
        std::fs::read_to_string(TestApp::repo_root().join("tests/fixtures/jwt").join(name)).expect("test key")
    };
    mock.add_client("2345678", "client-9", "cert-9", &key("rsa_public.pem"));
    let main = app.location(&t.owner_key, "MAIN").await;
    let m2m = |private_key: &str| {
        json!({ "consumerKey": null, "consumerSecret": null, "tokenId": null, "tokenSecret": null,
            "clientCredentials": { "clientId": "client-9", "certificateId": "cert-9", "privateKey": private_key } })
    };
    let attempt = async |extra: Value| {
        let mut config = json!({ "accountId": "2345678", "consumerKey": c.consumer_key, "consumerSecret": c.consumer_secret,
            "tokenId": c.token_id, "tokenSecret": c.token_secret, "webhookSecret": SECRET, "timeZone": "America/New_York",
            "currency": "USD", "baseUrl": mock.url });
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        app.data(
            &t.owner_key,
            "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id } userErrors { field message } } }",
            json!({ "i": { "kind": "NETSUITE", "netsuite": config } }),
        )
        .await["connectorInstall"]["userErrors"]
            .clone()
    };
    let both = attempt(json!({ "clientCredentials": { "clientId": "client-9", "certificateId": "cert-9", "privateKey": key("rsa_private.pem") } })).await;
    assert_eq!(both[0]["field"], json!(["input", "netsuite", "clientCredentials"]), "TBA and M2M at once: {both}");
    let bad = attempt(m2m("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----")).await;
    assert_eq!(bad[0]["field"], json!(["input", "netsuite", "clientCredentials", "privateKey"]), "{bad}");
    // Installed with token-based authentication, then moved to client credentials in place.
    let connector = install(&app, &t, &mock, &c, &main, json!({})).await;
    let mut config = json!({ "accountId": "2345678", "webhookSecret": SECRET, "timeZone": "America/New_York",
        "currency": "USD", "baseUrl": mock.url, "locationMapping": [{ "netsuiteLocationId": "1", "locationId": main }] });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), m2m(&key("rsa_private.pem")).as_object()) {
        config.extend(extra.clone());
    }
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: ConnectorUpdateInput!) { connectorUpdate(input: $i) { connector { id netsuite { authentication } } userErrors { field message } } }",
            json!({ "i": { "id": connector, "netsuite": config } }),
        )
        .await;
    assert_eq!(d["connectorUpdate"]["userErrors"], json!([]), "{d}");
    assert_eq!(d["connectorUpdate"]["connector"]["id"], json!(connector));
    assert_eq!(d["connectorUpdate"]["connector"]["netsuite"]["authentication"], "CLIENT_CREDENTIALS");
    let run = sync(&app, &t, &connector).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(applied(&run, "catalog").0, 25);
    let (on_hand, _) = mirror(&app, &t).await;
    assert_eq!(on_hand.get(&("NS-1004".to_owned(), "MAIN".to_owned())), Some(&3), "stock read with a bearer token");
    assert!(mock.token_requests() >= 1);
    mock.stop().await;
}

#[tokio::test]
async fn scenario_8_stock_changed_here_is_one_netsuite_adjustment_even_when_the_answer_is_lost() {
    let app = TestApp::spawn().await;
    let t = app.tenant("ns-push").await;
    let mock = MockNetSuite::start().await;
    let c = credentials("7654321", "b");
    mock.add_account(c.clone(), account(), 4);
    let main = app.location(&t.owner_key, "MAIN").await;
    let connector = install(&app, &t, &mock, &c, &main, json!({ "adjustmentAccountId": "215" })).await;
    assert_eq!(sync(&app, &t, &connector).await["status"], "COMPLETED");
    assert_eq!(mock.stock("7654321", 1002, 1), Some((1, 1, 0)));

    // NetSuite makes the adjustment and the answer is lost: the retry updates that adjustment.
    mock.script("7654321", &[Fault::LostAnswer]);
    app.stock(&t.owner_key, "NS-1002", &main, 5).await;
    app.drain_jobs().await;
    assert_eq!(mock.stock("7654321", 1002, 1), Some((6, 6, 0)), "moved once");
    let sent = mock.records("7654321", "inventoryAdjustment");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (key, adjustment) = sent.iter().next().expect("one");
    assert!(key.starts_with("qm-"), "the movement is the external id: {key}");
    assert_eq!(adjustment["externalId"], json!(key));
    assert_eq!(adjustment["account"]["id"], "215");
    assert_eq!(adjustment["adjLocation"]["id"], "1");
    assert_eq!(adjustment["inventory"]["items"][0]["item"]["id"], "1002");
    assert_eq!(adjustment["inventory"]["items"][0]["adjustQtyBy"], 5);

    // A change at a location NetSuite does not hold is not sent.
    let other = app.location(&t.owner_key, "ELSEWHERE").await;
    app.stock(&t.owner_key, "NS-1002", &other, 3).await;
    app.stock(&t.owner_key, "NS-1002", &main, -2).await;
    app.drain_jobs().await;
    assert_eq!(mock.stock("7654321", 1002, 1), Some((4, 4, 0)));
    assert_eq!(mock.records("7654321", "inventoryAdjustment").len(), 2);
    mock.stop().await;
}

/// Posts a message of the User Event script.
async fn post(app: &TestApp, connector: &str, body: &[u8], headers: &[(&str, String)]) -> u16 {
    let id = connector.rsplit('/').next().expect("uuid");
    let mut request = app.client.post(format!("{}/webhooks/netsuite/{id}", app.address)).body(body.to_vec());
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    request.send().await.expect("sent").status().as_u16()
}

fn signed(secret: &str, ts: i64, event: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("X-QM-Timestamp", ts.to_string()),
        ("X-QM-Event-Id", event.to_owned()),
        ("X-QM-Signature", inbound::sign(secret.as_bytes(), ts, body)),
        ("Content-Type", "application/json".to_owned()),
    ]
}

fn change(account: &str, kind: &str, record_type: &str, id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "account": account, "kind": kind, "recordType": record_type, "id": id, "externalId": null,
        "event": "edit", "lastModified": "2026-02-01T13:00:00.000Z",
    }))
    .expect("json")
}

#[tokio::test]
async fn the_netsuite_endpoint_applies_a_signed_change_once_and_refuses_tampered_replayed_and_stale_ones() {
    let app = TestApp::spawn().await;
    let t = app.tenant("ns-inbound").await;
    let mock = MockNetSuite::start().await;
    let c = credentials("2468024_SB2", "c");
    mock.add_account(c.clone(), account(), 4);
    let main = app.location(&t.owner_key, "MAIN").await;
    let connector = install(&app, &t, &mock, &c, &main, json!({})).await;
    assert_eq!(sync(&app, &t, &connector).await["status"], "COMPLETED");

    // An ERP user reprices an item; the script reports it.
    mock.edit("2468024_SB2", |a| {
        a.items[1].2 = "99.95".into();
        a.item_modified.insert(1002, "2026-02-01T08:00:00".into());
    });
    let body = change("2468024-sb2", "item", "inventoryitem", "1002");
    let now = chrono::Utc::now().timestamp();
    let event = "2468024_SB2:inventoryitem:1002:edit:2026-02-01T13:00:00.000Z";
    let headers = signed(SECRET, now, event, &body);
    for _ in 0..3 {
        assert_eq!(post(&app, &connector, &body, &headers).await, 200, "a retry is answered 200");
    }
    app.drain_jobs().await;
    assert_eq!(mirror(&app, &t).await.1["NS-1002"], "99.95");
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let stored = connector_webhook::Entity::find().all(&s.tx).await.expect("rows");
    s.commit().await.expect("commit");
    assert_eq!(stored.len(), 1, "three deliveries of one event are one");
    assert_eq!(stored[0].status, "applied");

    // Refused: a changed byte, another secret, a replay after five minutes, a future timestamp,
    // no event id, another account's change, an unknown connector.
    let tampered = change("2468024-sb2", "item", "inventoryitem", "1003");
    assert_eq!(post(&app, &connector, &tampered, &headers).await, 401);
    assert_eq!(post(&app, &connector, &body, &signed("another secret", now, event, &body)).await, 401);
    assert_eq!(post(&app, &connector, &body, &signed(SECRET, now - 301, event, &body)).await, 401);
    assert_eq!(post(&app, &connector, &body, &signed(SECRET, now + 3600, event, &body)).await, 401);
    let mut no_id = signed(SECRET, now, event, &body);
    no_id.retain(|(k, _)| *k != "X-QM-Event-Id");
    assert_eq!(post(&app, &connector, &body, &no_id).await, 400);
    let foreign = change("1111111", "item", "inventoryitem", "1002");
    assert_eq!(post(&app, &connector, &foreign, &signed(SECRET, now, "x:1", &foreign)).await, 400);
    let nobody = format!("gid://quartermaster/Connector/{}", uuid::Uuid::now_v7());
    assert_eq!(post(&app, &nobody, &body, &headers).await, 404);

    // A new sales order, reported, is imported; stock moved by a fulfilment is read again.
    mock.edit("2468024_SB2", |a| {
        a.orders.push(SalesOrder {
            id: 5002,
            tranid: "SO-5002".into(),
            status: "B".into(),
            total: "30.00".into(),
            lines: vec![(1, 1005, 1, 0, 1)],
        });
        a.stock.insert((1005, 1), (9, 9, 0));
    });
    let so = change("2468024_SB2", "sales_order", "salesorder", "5002");
    assert_eq!(post(&app, &connector, &so, &signed(SECRET, now, "so:5002", &so)).await, 200);
    let moved = change("2468024_SB2", "inventory", "inventoryadjustment", "77");
    assert_eq!(post(&app, &connector, &moved, &signed(SECRET, now, "adj:77", &moved)).await, 200);
    app.settle_jobs(5).await;
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let orders = order::Entity::find().all(&s.tx).await.expect("orders");
    s.commit().await.expect("commit");
    assert!(orders.iter().any(|o| o.external_id == "netsuite-5002"), "{orders:?}");
    assert_eq!(mirror(&app, &t).await.0[&("NS-1005".to_owned(), "MAIN".to_owned())], 9);
    mock.stop().await;
}

#[tokio::test]
async fn scenario_15_17_refused_credentials_pause_only_their_own_tenants_connector() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("ns-revoked").await, app.tenant("ns-fine").await);
    let mock = MockNetSuite::start().await;
    // Tenant A's token was revoked in NetSuite: the account signs with another secret now.
    let (ca, cb) = (credentials("1000001", "old"), credentials("1000002", "b"));
    mock.add_account(credentials("1000001", "new"), account(), 4);
    mock.add_account(cb.clone(), account(), 4);
    let main_a = app.location(&a.owner_key, "MAIN").await;
    let main_b = app.location(&b.owner_key, "MAIN").await;
    let conn_a = install(&app, &a, &mock, &ca, &main_a, json!({})).await;
    let conn_b = install(&app, &b, &mock, &cb, &main_b, json!({})).await;

    let (run_a, run_b) = tokio::join!(sync(&app, &a, &conn_a), sync(&app, &b, &conn_b));
    assert_eq!(run_b["status"], "COMPLETED", "{run_b}");
    assert_eq!(applied(&run_b, "catalog").0, 25);
    assert_eq!(run_a["status"], "FAILED", "{run_a}");
    let d = app.data(&a.owner_key, "{ connectors { status statusReason } }", json!({})).await;
    assert_eq!(d["connectors"][0]["status"], "PAUSED", "{d}");
    assert!(d["connectors"][0]["statusReason"].as_str().is_some_and(|r| r.contains("INVALID_LOGIN")), "{d}");
    let d = app.data(&b.owner_key, "{ connectors { status } }", json!({})).await;
    assert_eq!(d["connectors"][0]["status"], "ACTIVE");
    mock.stop().await;
}

#[tokio::test]
async fn scenarios_9_10_an_order_goes_to_netsuite_once_and_its_shipment_becomes_one_item_fulfilment() {
    let app = TestApp::spawn().await;
    let t = app.tenant("ns-orders").await;
    let mock = MockNetSuite::start().await;
    let c = credentials("3691215", "d");
    mock.add_account(c.clone(), account(), 4);
    let main = app.location(&t.owner_key, "MAIN").await;
    let extra = json!({ "orderCustomerId": "42", "adjustmentAccountId": "215" });
    let connector = install(&app, &t, &mock, &c, &main, extra).await;
    assert_eq!(sync(&app, &t, &connector).await["status"], "COMPLETED");
    app.stock(&t.owner_key, "NS-1002", &main, 4).await;
    app.drain_jobs().await;
    let before = mock.stock("3691215", 1002, 1).expect("stocked");
    assert_eq!(before, (5, 5, 0), "the receipt here was sent as an adjustment");

    // An order made here: the answer to the sales order is lost, and the retry updates it.
    mock.script("3691215", &[Fault::LostAnswer]);
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id } userErrors { field message } } }",
            json!({ "i": { "externalId": "WEB-77", "locationId": main,
                "lines": [{ "sku": "NS-1002", "quantity": 2 }, { "sku": "NS-1004", "quantity": 1 }] } }),
        )
        .await;
    assert_eq!(d["orderCreate"]["userErrors"], json!([]), "{d}");
    let order_id = d["orderCreate"]["order"]["id"].as_str().expect("order").to_owned();
    app.drain_jobs().await;
    let sent = mock.records("3691215", "salesOrder");
    assert_eq!(sent.len(), 1, "one sales order however often it is sent: {sent:?}");
    let (key, so) = sent.iter().next().expect("one");
    assert_eq!(*key, format!("qm-{}", qm_tests::uuid_of(&order_id)));
    assert_eq!(so["entity"]["id"], "42");
    assert_eq!(so["otherRefNum"], "WEB-77");
    assert_eq!(so["location"]["id"], "1");
    let items = so["item"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!((items[0]["item"]["id"].as_str(), items[0]["quantity"].as_i64()), (Some("1002"), Some(2)));
    assert_eq!(items[0]["rate"], "11.01", "the variant's price, exact");
    assert_eq!((items[1]["item"]["id"].as_str(), items[1]["quantity"].as_i64()), (Some("1004"), Some(1)));

    // Polling NetSuite again never reads our own sales order back as a new order.
    let again = sync(&app, &t, &connector).await;
    assert_eq!(again["status"], "COMPLETED", "{again}");
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let orders = order::Entity::find().all(&s.tx).await.expect("orders");
    s.commit().await.expect("commit");
    assert_eq!(orders.len(), 2, "SO-5001 and ours: {orders:?}");

    // Shipped here: an item fulfilment of the sales order with the tracking number; the answer
    // is lost, and the retry finds the fulfilment instead of making a second.
    mock.script("3691215", &[Fault::LostAnswer]);
    let d = app
        .data(
            &t.owner_key,
            "mutation($id: ID!) { orderFulfill(input: { id: $id, carrier: \"UPS\", trackingNumber: \"1Z999\" }) { order { status } userErrors { code } } }",
            json!({ "id": order_id }),
        )
        .await;
    assert_eq!(d["orderFulfill"]["userErrors"], json!([]), "{d}");
    app.settle_jobs(4).await;
    let fulfilments = mock.records("3691215", "itemFulfillment");
    assert_eq!(fulfilments.len(), 1, "{fulfilments:?}");
    let f = fulfilments.values().next().expect("one");
    assert_eq!(f["package"]["items"][0]["packageTrackingNumber"], "1Z999");
    assert_eq!(f["package"]["items"][0]["packageDescr"], "UPS");
    let lines: Vec<(i64, i64)> = f["item"]["items"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| (l["orderLine"].as_i64().expect("line"), l["quantity"].as_i64().expect("qty")))
        .collect();
    assert_eq!(lines, vec![(1, 2), (2, 1)]);
    assert_eq!(
        mock.stock("3691215", 1002, 1),
        Some(before),
        "the shipment is NetSuite's item fulfilment: no stock adjustment on top"
    );
    assert_eq!(mock.records("3691215", "inventoryAdjustment").len(), 1);
    mock.stop().await;
}

#[tokio::test]
async fn scenario_11_a_return_of_an_order_sent_to_netsuite_is_authorised_then_received_once_back() {
    let app = TestApp::spawn().await;
    let t = app.tenant("ns-returns").await;
    let mock = MockNetSuite::start().await;
    let c = credentials("4812000", "e");
    mock.add_account(c.clone(), account(), 4);
    let main = app.location(&t.owner_key, "MAIN").await;
    let connector = install(&app, &t, &mock, &c, &main, json!({ "orderCustomerId": "42" })).await;
    assert_eq!(sync(&app, &t, &connector).await["status"], "COMPLETED");
    app.stock(&t.owner_key, "NS-1003", &main, 5).await;
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id } userErrors { field message } } }",
            json!({ "i": { "externalId": "WEB-88", "locationId": main,
                "lines": [{ "sku": "NS-1002", "quantity": 1 }, { "sku": "NS-1003", "quantity": 3 }] } }),
        )
        .await;
    let order = d["orderCreate"]["order"]["id"].as_str().expect("order").to_owned();
    app.drain_jobs().await;
    let fulfil = "mutation($id: ID!) { orderFulfill(input: { id: $id, carrier: \"UPS\", trackingNumber: \"1Z11\" }) { userErrors { code } } }";
    assert_eq!(app.data(&t.owner_key, fulfil, json!({ "id": order })).await["orderFulfill"]["userErrors"], json!([]));
    app.drain_jobs().await;
    let so = mock.records("4812000", "salesOrder");
    assert_eq!(so.len(), 1);

    // The customer sends two of NS-1003 back: authorised at once; received when inspected.
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: ReturnCreateInput!) { returnCreate(input: $i) { return { id lines { id } } userErrors { field code message } } }",
            json!({ "i": { "orderId": order, "reason": "too big", "lines": [{ "sku": "NS-1003", "quantity": 2 }] } }),
        )
        .await;
    assert_eq!(d["returnCreate"]["userErrors"], json!([]), "{d}");
    let ret = d["returnCreate"]["return"]["id"].as_str().expect("return").to_owned();
    let line = d["returnCreate"]["return"]["lines"][0]["id"].as_str().expect("line").to_owned();
    app.drain_jobs().await;
    let authorisations = mock.records("4812000", "returnAuthorization");
    assert_eq!(authorisations.len(), 1, "{authorisations:?}");
    let (key, ra) = authorisations.iter().next().expect("one");
    assert_eq!(*key, format!("qm-ret-{}", qm_tests::uuid_of(&ret)));
    assert_eq!(
        ra["item"]["items"],
        json!([{ "orderLine": 2, "itemReceive": true, "quantity": 2 }]),
        "NS-1003 is line 2"
    );
    assert!(mock.records("4812000", "itemReceipt").is_empty(), "nothing is back yet");

    let grade = "mutation($i: ReturnGradeInput!) { returnGrade(input: $i) { userErrors { field code message } } }";
    let d = app.data(&t.owner_key, grade, json!({ "i": { "lines": [{ "id": line, "grade": "A" }] } })).await;
    assert_eq!(d["returnGrade"]["userErrors"], json!([]), "{d}");
    app.drain_jobs().await;
    app.drain_jobs().await;
    let receipts = mock.records("4812000", "itemReceipt");
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    let receipt = receipts.values().next().expect("one");
    assert_eq!(receipt["item"]["items"], json!([{ "orderLine": 1, "itemReceive": true, "quantity": 2 }]));
    assert_eq!(mock.records("4812000", "returnAuthorization").len(), 1, "not authorised twice");
    mock.stop().await;
}
