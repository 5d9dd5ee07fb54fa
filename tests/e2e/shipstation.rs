//! The ShipStation V1 client against the mock: warehouses and products read whole across
//! `page`/`pages` (scenario 1), a spent rate window waited out as `X-Rate-Limit-Reset` says
//! (scenario 2), an order upserted by `orderKey` however often it is sent (scenario 9), a
//! SHIP_NOTIFY's `resource_url` fetched only on ShipStation's own host and its Pacific dates read
//! as UTC (scenarios 10 and 12).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qm_connectors::ProviderError;
use qm_connectors::shipstation::v1::{Client, Config, Limits, shipment_of};
use qm_connectors::source::{CatalogSource, LocationSource, OrderSink, OutboundLine, OutboundOrder, ShipmentSource};
use qm_tests::shipstation_mock::{Account, MockShipStation};
use rust_decimal::Decimal;
use serde_json::json;

fn client(mock: &MockShipStation, key: &str, secret: &str, page: usize) -> Client {
    let mut c = Config::new(key, secret);
    c.base_url = Some(mock.url.clone());
    c.page_size = page;
    c.max_wait = Duration::from_secs(10);
    Client::new(reqwest::Client::new(), c, Arc::new(Limits::default()))
}

#[tokio::test]
async fn scenario_1_2_products_are_read_whole_across_pages_within_the_rate_window() {
    let mock = MockShipStation::start().await;
    // Four requests a two-second window: six pages need a wait for the next window.
    mock.add_account("key", "secret", Account::generate(23), 4, Duration::from_secs(2));
    let ss = client(&mock, "key", "secret", 5);
    assert_eq!(ss.locations(None).await.expect("warehouses").records.len(), 2);
    let started = Instant::now();
    let (mut skus, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let b = ss.variants(None, cursor.as_deref()).await.expect("page");
        skus.extend(b.records.iter().map(|v| v.sku.clone()));
        pages += 1;
        cursor = b.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(skus.len(), 23);
    assert_eq!(skus.iter().collect::<BTreeSet<_>>().len(), 23);
    assert!(started.elapsed() >= Duration::from_millis(900), "waited for the window to reset");
    assert_eq!(mock.requests("key", "secret"), 6, "never sent into a spent window");
    // A restart from a checkpoint (a new client, the cursor after two pages) reads the rest once.
    let first_two: Vec<String> = {
        let p1 = ss.variants(None, None).await.expect("page 1");
        let p2 = ss.variants(None, p1.next.as_deref()).await.expect("page 2");
        let checkpoint = p2.next.clone().expect("more");
        let restarted = client(&mock, "key", "secret", 5);
        let mut all: Vec<String> = p1.records.iter().chain(&p2.records).map(|v| v.sku.clone()).collect();
        let mut cursor = Some(checkpoint);
        while let Some(c) = cursor {
            let b = restarted.variants(None, Some(&c)).await.expect("page");
            all.extend(b.records.iter().map(|v| v.sku.clone()));
            cursor = b.next;
        }
        all
    };
    assert_eq!(first_two.len(), 23, "no page twice, none skipped");
    assert_eq!(first_two.iter().collect::<BTreeSet<_>>().len(), 23);
    let wrong = client(&mock, "key", "wrong", 5);
    assert!(matches!(wrong.locations(None).await, Err(ProviderError::Unauthorized(_))));
    mock.stop().await;
}

#[tokio::test]
async fn scenario_17_two_accounts_on_one_mock_never_slow_or_see_each_other() {
    let mock = MockShipStation::start().await;
    // Account a has one request a ten-minute window; b has its own.
    mock.add_account("key-a", "secret-a", Account::generate(4), 1, Duration::from_secs(600));
    mock.add_account("key-b", "secret-b", Account::generate(6), 40, Duration::from_secs(60));
    let (a, b) = (client(&mock, "key-a", "secret-a", 50), client(&mock, "key-b", "secret-b", 50));
    a.locations(None).await.expect("a's one request");
    let started = Instant::now();
    let (ra, rb) = tokio::join!(a.variants(None, None), b.variants(None, None));
    assert!(matches!(ra, Err(ProviderError::RateLimited { .. })), "a's window is spent: {ra:?}");
    assert_eq!(rb.expect("b reads").records.len(), 6, "b sees its own products only");
    assert!(started.elapsed() < Duration::from_secs(5), "b did not wait for a's window");
    let revoked = client(&mock, "key-b", "revoked", 50);
    assert!(matches!(revoked.locations(None).await, Err(ProviderError::Unauthorized(_))));
    assert_eq!(b.locations(None).await.expect("b").records.len(), 2);
    mock.stop().await;
}

fn order() -> OutboundOrder {
    OutboundOrder {
        key: "0193-our-order".into(),
        number: "#2001".into(),
        created_at: "2026-02-03T17:20:00Z".parse().expect("instant"),
        location_id: Some("17977".into()),
        lines: vec![
            OutboundLine { item_id: "7000".into(), sku: "SS-0".into(), quantity: 2, price: Decimal::new(1250, 2) },
            OutboundLine { item_id: "7001".into(), sku: "SS-1".into(), quantity: 1, price: Decimal::new(999, 2) },
        ],
        ship_to: Some(
            json!({ "name": "Ada", "address1": "1 Main St", "city": "Portland", "state": "OR", "postalCode": "97201" }),
        ),
    }
}

#[tokio::test]
async fn scenario_9_10_12_an_order_is_upserted_by_its_key_and_its_shipment_read_from_a_ship_notify() {
    let mock = MockShipStation::start().await;
    mock.add_account("key", "secret", Account::generate(3), 40, Duration::from_secs(60));
    let ss = client(&mock, "key", "secret", 100);
    let first = ss.export(&order()).await.expect("sent");
    let again = ss.export(&order()).await.expect("sent again");
    assert_eq!(first, again, "the same order");
    assert_eq!(first.line_ids, ["7000", "7001"]);
    let orders = mock.orders("key", "secret");
    assert_eq!(orders.len(), 1);
    let sent = &orders["0193-our-order"];
    assert_eq!(sent["orderDate"], "2026-02-03T09:20:00.0000000", "Pacific wall-clock time, as V1 reads it");
    assert_eq!(sent["advancedOptions"]["warehouseId"], 17977);
    assert_eq!(sent["items"][0]["unitPrice"], "12.50", "money stays exact");

    let id: u64 = first.id.parse().expect("id");
    mock.ship("key", "secret", (id, 555), &[("7000", 2)], "9400SS1", "2026-02-03T09:45:00.0000000");
    let shipments = ss.shipments(&first.id).await.expect("shipments");
    assert_eq!(shipments.len(), 1);
    assert_eq!(shipments[0].created_at, Some("2026-02-03T17:45:00Z".parse().expect("instant")), "PST is UTC-8");
    assert_eq!(shipments[0].items[0].variant_id, "7000");

    // A SHIP_NOTIFY names its batch; its items are asked for whatever the URL says.
    let notify = format!("{}/shipments?storeID=1&batchId=555&includeShipmentItems=False", mock.url);
    let batch = ss.resource(&notify).await.expect("fetched");
    let got = shipment_of(&batch["shipments"][0]).expect("shipment");
    assert_eq!((got.tracking[0].number.as_deref(), got.items.len()), (Some("9400SS1"), 1));
    // Never another host, whatever a forged webhook names.
    for forged in [
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "https://evil.example/shipments?batchId=555".to_owned(),
        format!("{}/shipments", mock.url.replace("127.0.0.1", "localhost")),
        "not a url".to_owned(),
    ] {
        assert!(matches!(ss.resource(&forged).await, Err(ProviderError::Permanent(_))), "{forged}");
    }
    mock.stop().await;
}

mod through_the_api {
    //! ShipStation installed through the API: an order allocated to its warehouse sent to it,
    //! and its labels, named by thin SHIP_NOTIFY webhooks carrying the connector's token, becoming
    //! shipments here part by part (scenario 10's ShipStation leg); a wrong token or a forged
    //! resource URL changes nothing.

    use qm_api::db::TxMode;
    use qm_api::db::entities::shipment;
    use qm_tests::TestApp;
    use qm_tests::shipstation_mock::{Account, MockShipStation};
    use sea_orm::EntityTrait;
    use serde_json::{Value, json};

    const TOKEN: &str = "ss-webhook-token-0123456789abcdef";

    async fn notify(app: &TestApp, connector: &str, token: Option<&str>, body: &Value) -> u16 {
        let uuid = connector.rsplit('/').next().expect("uuid");
        let url = match token {
            Some(t) => format!("{}/webhooks/shipstation/{uuid}?token={t}", app.address),
            None => format!("{}/webhooks/shipstation/{uuid}", app.address),
        };
        app.client.post(url).json(body).send().await.expect("sent").status().as_u16()
    }

    #[tokio::test]
    async fn scenario_10_shipstation_labels_named_by_ship_notify_become_shipments_here() {
        let app = TestApp::spawn().await;
        let t = app.tenant("ss-flow").await;
        let mock = MockShipStation::start().await;
        mock.add_account("key", "secret", Account::generate(3), 40, std::time::Duration::from_secs(60));
        let main = app.location(&t.owner_key, "MAIN").await;
        let d = app
            .data(
                &t.owner_key,
                "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id kind } userErrors { field code message } } }",
                json!({ "i": { "kind": "SHIPSTATION", "shipstation": { "apiKey": "key", "apiSecret": "secret",
                    "webhookToken": TOKEN, "baseUrl": mock.url,
                    "locationMapping": [{ "shipstationWarehouseId": "17977", "locationId": main }] } } }),
            )
            .await;
        assert_eq!(d["connectorInstall"]["userErrors"], json!([]), "{d}");
        let connector = d["connectorInstall"]["connector"]["id"].as_str().expect("id").to_owned();
        app.sync_connector(&t.owner_key, &connector).await;
        app.stock(&t.owner_key, "SS-0", &main, 5).await;
        let d = app
            .data(
                &t.owner_key,
                "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id } userErrors { field message } } }",
                json!({ "i": { "externalId": "WEB-SS", "locationId": main, "lines": [{ "sku": "SS-0", "quantity": 2 }] } }),
            )
            .await;
        assert_eq!(d["orderCreate"]["userErrors"], json!([]), "{d}");
        let order = d["orderCreate"]["order"]["id"].as_str().expect("order").to_owned();
        app.drain_jobs().await;
        let sent = mock.orders("key", "secret");
        assert_eq!(sent.len(), 1, "sent to the warehouse's ShipStation");
        let ss_order = sent.values().next().expect("one")["orderId"].as_u64().expect("id");

        let status = async || {
            let d = app
                .data(
                    &t.owner_key,
                    "query($id: ID!) { node(id: $id) { ... on Order { status } } }",
                    json!({ "id": order }),
                )
                .await;
            d["node"]["status"].clone()
        };
        let shipments = async || {
            let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
            let all = shipment::Entity::find().all(&s.tx).await.expect("shipments");
            s.commit().await.expect("commit");
            all.len()
        };
        mock.ship("key", "secret", (ss_order, 555), &[("7000", 1)], "9400P1", "2026-02-03T09:45:00.0000000");
        let batch = json!({ "resource_url": format!("{}/shipments?storeID=1&batchId=555&includeShipmentItems=False", mock.url),
            "resource_type": "SHIP_NOTIFY" });
        for _ in 0..3 {
            assert_eq!(notify(&app, &connector, Some(TOKEN), &batch).await, 200);
        }
        assert_eq!(notify(&app, &connector, Some("wrong-token-0123456789abcdef00"), &batch).await, 401);
        assert_eq!(notify(&app, &connector, None, &batch).await, 401);
        let forged =
            json!({ "resource_url": "http://169.254.169.254/latest/meta-data", "resource_type": "SHIP_NOTIFY" });
        assert_eq!(notify(&app, &connector, Some(TOKEN), &forged).await, 200, "stored, never fetched");
        app.settle_jobs(3).await;
        assert_eq!(shipments().await, 1, "one label, one shipment");
        assert_eq!(status().await, "RESERVED", "one of two units shipped");

        mock.ship("key", "secret", (ss_order, 556), &[("7000", 1)], "9400P2", "2026-02-03T10:05:00.0000000");
        let second = json!({ "resource_url": format!("{}/shipments?storeID=1&batchId=556", mock.url), "resource_type": "SHIP_NOTIFY" });
        assert_eq!(notify(&app, &connector, Some(TOKEN), &second).await, 200);
        app.drain_jobs().await;
        assert_eq!(shipments().await, 2);
        assert_eq!(status().await, "FULFILLED");
        mock.stop().await;
    }

    /// A V2 webhook signed with the test key at `timestamp`, its signature header replaced by
    /// `signature` when given, a header left out when `drop` names it.
    async fn signed(
        app: &TestApp,
        connector: &str,
        body: &[u8],
        timestamp: &str,
        signature: Option<&str>,
        drop: Option<&str>,
    ) -> u16 {
        let uuid = connector.rsplit('/').next().expect("uuid");
        let mut req = app
            .client
            .post(format!("{}/webhooks/shipstation/{uuid}", app.address))
            .header("content-type", "application/json");
        for (k, v) in qm_tests::shipstation_mock::sign_v2(body, timestamp) {
            if drop == Some(k) {
                continue;
            }
            let v = match (k, signature) {
                ("x-shipengine-rsa-sha256-signature", Some(s)) => s.to_owned(),
                _ => v,
            };
            req = req.header(k, v);
        }
        req.body(body.to_vec()).send().await.expect("sent").status().as_u16()
    }

    #[tokio::test]
    async fn scenario_4_8_v2_stock_is_read_and_set_once_through_a_lost_answer_and_signed_tracking_updates_apply_once() {
        let app = TestApp::spawn().await;
        let t = app.tenant("ss-v2").await;
        let mock = MockShipStation::start().await;
        mock.add_account("key", "secret", Account::generate(3), 40, std::time::Duration::from_secs(60));
        mock.add_v2_key("key", "secret", "v2-key");
        mock.stock("key", "secret", "se-il-1", "SS-0", 7, 1);
        mock.stock("key", "secret", "se-il-1", "SS-1", 4, 0);
        mock.stock("key", "secret", "se-il-other", "SS-0", 50, 0);
        let main = app.location(&t.owner_key, "MAIN").await;
        let jwks = std::fs::read_to_string(TestApp::repo_root().join("tests/fixtures/jwt/rsa_public.jwks.json"))
            .expect("jwks");
        let install = "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id
            shipstation { v2 webhookKeyIds } locationMapping { providerLocationId stockMaster inventoryLocationId } }
            userErrors { field code message } } }";
        let config = |mapping: Value, keys: Value| {
            json!({ "i": { "kind": "SHIPSTATION", "shipstation": { "apiKey": "key", "apiSecret": "secret",
                "webhookToken": TOKEN, "baseUrl": mock.url, "v2ApiKey": "v2-key", "webhookPublicKeys": keys,
                "locationMapping": mapping } } })
        };
        // Bad input is refused field by field, nothing stored.
        let d = app
            .data(
                &t.owner_key,
                install,
                config(json!([{ "shipstationWarehouseId": "17977", "locationId": main, "inventoryLocationId": "has space" }]), json!("not a key")),
            )
            .await;
        let fields: Vec<Value> = d["connectorInstall"]["userErrors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].clone())
            .collect();
        assert_eq!(
            fields,
            [
                json!(["input", "shipstation", "webhookPublicKeys"]),
                json!(["input", "shipstation", "locationMapping", "0", "inventoryLocationId"])
            ],
            "{d}"
        );
        let d = app
            .data(
                &t.owner_key,
                install,
                config(json!([{ "shipstationWarehouseId": "17977", "locationId": main, "inventoryLocationId": "se-il-1" }]), json!(jwks)),
            )
            .await;
        assert_eq!(d["connectorInstall"]["userErrors"], json!([]), "{d}");
        let c = &d["connectorInstall"]["connector"];
        assert_eq!(c["shipstation"], json!({ "v2": true, "webhookKeyIds": ["qm-test-rsa"] }));
        assert_eq!(
            c["locationMapping"],
            json!([{ "providerLocationId": "17977", "stockMaster": false, "inventoryLocationId": "se-il-1" }])
        );
        let connector = c["id"].as_str().expect("id").to_owned();
        app.sync_connector(&t.owner_key, &connector).await;
        assert_eq!(app.on_hand(&t.owner_key, &main, "SS-0").await, 7, "the warehouse's inventory location only");
        assert_eq!(app.on_hand(&t.owner_key, &main, "SS-1").await, 4);

        // Scenario 8: a change made here is set in ShipStation as an absolute quantity. The first
        // answer is lost after ShipStation applied it: the retry finds the quantity set and sends
        // nothing, where an `increment` would have counted twice.
        mock.lose_inventory_answers("key", "secret", 1);
        app.stock(&t.owner_key, "SS-0", &main, 3).await;
        app.settle_jobs(3).await;
        assert_eq!(mock.on_hand("key", "secret", "se-il-1", "SS-0"), Some(10));
        let sent = mock.transactions("key", "secret");
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!((sent[0]["transaction_type"].as_str(), sent[0]["quantity"].as_i64()), (Some("adjust"), Some(10)));
        assert_eq!(mock.on_hand("key", "secret", "se-il-other", "SS-0"), Some(50), "another location untouched");

        // An order sent to ShipStation and shipped there: its stock movement is not sent back.
        let d = app
            .data(
                &t.owner_key,
                "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id } userErrors { field message } } }",
                json!({ "i": { "externalId": "WEB-V2", "locationId": main, "lines": [{ "sku": "SS-0", "quantity": 1 }] } }),
            )
            .await;
        assert_eq!(d["orderCreate"]["userErrors"], json!([]), "{d}");
        app.drain_jobs().await;
        let ss_order = mock.orders("key", "secret").values().next().expect("sent")["orderId"].as_u64().expect("id");
        mock.ship("key", "secret", (ss_order, 700), &[("7000", 1)], "9400V2", "2026-02-03T09:45:00.0000000");
        let batch =
            json!({ "resource_url": format!("{}/shipments?batchId=700", mock.url), "resource_type": "SHIP_NOTIFY" });
        assert_eq!(notify(&app, &connector, Some(TOKEN), &batch).await, 200);
        app.drain_jobs().await;
        assert_eq!(app.on_hand(&t.owner_key, &main, "SS-0").await, 9);
        assert_eq!(mock.transactions("key", "secret").len(), 1, "ShipStation counted its own shipment");

        // Scenario 4 for V2: a carrier's delivery scan, signed; delivered three times, applied once.
        let now = chrono::Utc::now();
        let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let body = br#"{"resource_url":"https:\/\/api.shipstation.com\/v2\/labels\/se-1\/track","resource_type":"API_TRACK","data":{"tracking_number":"9400V2","status_code":"DE","status_description":"Delivered","carrier_code":"stamps_com"}}"#;
        let mut flipped = body.to_vec();
        flipped[40] ^= 1;
        let stale = (now - chrono::Duration::minutes(6)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let good = qm_tests::shipstation_mock::sign_v2(body, &ts).remove(1).1;
        assert_eq!(signed(&app, &connector, &flipped, &ts, Some(&good), None).await, 401, "a flipped byte");
        let reserialised = String::from_utf8_lossy(body).replace("\\/", "/");
        assert_ne!(reserialised.as_bytes(), body);
        let sent = signed(&app, &connector, reserialised.as_bytes(), &ts, Some(&good), None).await;
        assert_eq!(sent, 401, "re-serialised");
        assert_eq!(signed(&app, &connector, body, &stale, None, None).await, 400, "stale");
        assert_eq!(
            signed(&app, &connector, body, &ts, None, Some("x-shipengine-rsa-sha256-signature")).await,
            404,
            "a missing header hides the endpoint"
        );
        let other = qm_tests::shipstation_mock::sign_v2(b"{}", &ts).remove(1).1;
        assert_eq!(signed(&app, &connector, body, &ts, Some(&other), None).await, 401, "another body's signature");
        let sends = (0..3).map(|_| signed(&app, &connector, body, &ts, None, None));
        assert_eq!(futures_util::future::join_all(sends).await, [200, 200, 200], "three at once");
        app.drain_jobs().await;
        let d = app
            .data(
                &t.owner_key,
                "{ shipments(first: 5) { nodes { trackingNumber status events { status description } } } }",
                json!({}),
            )
            .await;
        let sh = &d["shipments"]["nodes"][0];
        assert_eq!((sh["trackingNumber"].as_str(), sh["status"].as_str()), (Some("9400V2"), Some("DELIVERED")), "{d}");
        assert_eq!(
            sh["events"].as_array().expect("events").iter().filter(|e| e["status"] == "DELIVERED").count(),
            1,
            "{d}"
        );
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_stock_master_of_a_location_is_configuration_its_levels_win_and_its_followers_follow() {
        let app = TestApp::spawn().await;
        let t = app.tenant("ss-master").await;
        let mock = MockShipStation::start().await;
        for (key, on_hand) in [("a", 20), ("b", 99)] {
            mock.add_account(key, "secret", Account::generate(2), 40, std::time::Duration::from_secs(60));
            mock.add_v2_key(key, "secret", &format!("v2-{key}"));
            mock.stock(key, "secret", "se-il-1", "SS-0", on_hand, 0);
        }
        let main = app.location(&t.owner_key, "MAIN").await;
        let install = async |key: &str, master: bool| {
            let d = app
                .data(
                    &t.owner_key,
                    "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id } userErrors { field code message } } }",
                    json!({ "i": { "kind": "SHIPSTATION", "shipstation": { "apiKey": key, "apiSecret": "secret",
                        "webhookToken": TOKEN, "baseUrl": mock.url, "v2ApiKey": format!("v2-{key}"),
                        "locationMapping": [{ "shipstationWarehouseId": "17977", "locationId": main,
                            "inventoryLocationId": "se-il-1", "stockMaster": master }] } } }),
                )
                .await;
            d["connectorInstall"].clone()
        };
        let a = install("a", true).await["connector"]["id"].as_str().expect("a").to_owned();
        let b = install("b", false).await["connector"]["id"].as_str().expect("b").to_owned();
        let taken = install("c", true).await;
        assert_eq!(taken["userErrors"][0]["code"], "TAKEN", "{taken}");
        assert_eq!(
            taken["userErrors"][0]["field"],
            json!(["input", "shipstation", "locationMapping", "0", "stockMaster"])
        );
        for id in [&b, &a] {
            app.sync_connector(&t.owner_key, id).await;
        }
        assert_eq!(app.on_hand(&t.owner_key, &main, "SS-0").await, 20, "the master's 20, never the follower's 99");
        assert_eq!(mock.on_hand("b", "secret", "se-il-1", "SS-0"), Some(20), "what the master said goes on");
        app.stock(&t.owner_key, "SS-0", &main, -2).await;
        mock.stock("a", "secret", "se-il-1", "SS-0", 18, 0);
        for _ in 0..2 {
            app.drain_jobs().await;
        }
        assert_eq!(mock.on_hand("b", "secret", "se-il-1", "SS-0"), Some(18), "the follower follows our level");
        assert_eq!(mock.transactions("a", "secret"), Vec::<Value>::new(), "the master counts its own");
        let sent: Vec<_> = mock.transactions("b", "secret").iter().map(|t| t["quantity"].as_i64()).collect();
        assert_eq!(sent, [Some(20), Some(18)], "absolute quantities, never a delta");
        // The master's next read changes nothing here, and sends the follower nothing.
        app.sync_connector(&t.owner_key, &a).await;
        assert_eq!(app.on_hand(&t.owner_key, &main, "SS-0").await, 18);
        assert_eq!(mock.transactions("b", "secret").len(), 2);
        mock.stop().await;
    }
}
