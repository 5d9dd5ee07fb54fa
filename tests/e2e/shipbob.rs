//! The ShipBob client against the mock: fulfilment centres, the catalog and stock read whole
//! across cursor pages (scenario 1), `429` with `x-retry-after` waited out (scenario 2), an order
//! sent once however often it is sent, a lost answer included (scenario 9), shipments read with
//! their units by variant, and two merchants on one mock apart (scenario 17).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qm_connectors::ProviderError;
use qm_connectors::shipbob::client::{Client, Config, Limits};
use qm_connectors::source::{
    CatalogSource, InventorySource, LocationSource, OrderSink, OutboundLine, OutboundOrder, ShipmentSource, ShippedItem,
};
use qm_tests::shipbob_mock::{Fault, Merchant, MockShipBob};
use rust_decimal::Decimal;
use serde_json::json;

fn client(mock: &MockShipBob, token: &str, channel: Option<&str>, page: usize) -> Client {
    let mut c = Config::new(token);
    c.base_url = Some(mock.url.clone());
    c.channel_id = channel.map(str::to_owned);
    c.page_size = page;
    c.max_wait = Duration::from_secs(10);
    Client::new(reqwest::Client::new(), c, Arc::new(Limits::new(2)))
}

#[tokio::test]
async fn scenario_1_centres_catalog_and_stock_are_read_whole_across_cursor_pages() {
    let mock = MockShipBob::start().await;
    mock.add_merchant("pat-a", "77", Merchant::generate(30));
    let sb = client(&mock, "pat-a", None, 7);
    let centres = sb.locations(None).await.expect("centres");
    assert_eq!(centres.records.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["10", "11"]);
    let (mut skus, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let b = sb.variants(None, cursor.as_deref()).await.expect("page");
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        skus.extend(b.records.iter().map(|v| (v.sku.clone(), v.inventory_item_id.clone())));
        pages += 1;
        cursor = b.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(skus.len(), 30);
    assert_eq!(skus.iter().collect::<BTreeSet<_>>().len(), 30, "no variant twice");
    assert_eq!(skus[0], ("SB-0".to_owned(), Some("900".to_owned())), "the inventory id, not the variant's");
    // A sync restarted from its checkpoint goes on from it.
    let first = sb.variants(None, None).await.expect("page");
    let second = sb.variants(None, first.next.as_deref()).await.expect("page");
    assert_eq!(second.records[0].sku, "SB-7");
    let (mut levels, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let b = sb.levels("11", None, cursor.as_deref()).await.expect("levels");
        levels.extend(b.records);
        cursor = b.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(levels.len(), 15, "every other item is at Riverside");
    assert!(levels.iter().all(|l| l.location_id == "11" && l.on_hand == 2));
    let one = sb.level("903", "10").await.expect("level").expect("stocked");
    assert_eq!((one.on_hand, one.available), (4, 1));
    assert_eq!(sb.level("903", "11").await.expect("level"), None);
    mock.stop().await;
}

#[tokio::test]
async fn scenario_2_a_429_is_waited_out_as_x_retry_after_says() {
    let mock = MockShipBob::start().await;
    mock.add_merchant("pat-a", "77", Merchant::generate(3));
    mock.script("pat-a", &[Fault::RateLimited(1)]);
    let sb = client(&mock, "pat-a", None, 50);
    let started = Instant::now();
    let b = sb.variants(None, None).await.expect("read after waiting");
    assert_eq!(b.records.len(), 3);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited the second it was told to");
    assert_eq!(mock.requests("pat-a"), 2);
    // Longer than the client may wait within a job: it says when to come back instead.
    mock.script("pat-a", &[Fault::RateLimited(600)]);
    match sb.variants(None, None).await {
        Err(ProviderError::RateLimited { retry_after }) => assert_eq!(retry_after, Duration::from_secs(600)),
        other => panic!("{other:?}"),
    }
    mock.stop().await;
}

fn order(key: &str) -> OutboundOrder {
    OutboundOrder {
        key: key.into(),
        number: "#1001".into(),
        created_at: "2026-02-01T10:00:00Z".parse().expect("instant"),
        location_id: Some("10".into()),
        lines: vec![
            OutboundLine { item_id: "500".into(), sku: "SB-0".into(), quantity: 2, price: Decimal::new(1999, 2) },
            OutboundLine { item_id: "503".into(), sku: "SB-3".into(), quantity: 1, price: Decimal::new(500, 2) },
        ],
        ship_to: Some(
            json!({ "name": "Ada", "address1": "1 Main St", "city": "Newark", "postalCode": "07102", "country": "US" }),
        ),
    }
}

#[tokio::test]
async fn scenario_9_an_order_goes_to_shipbob_once_and_its_shipments_come_back_by_variant() {
    let mock = MockShipBob::start().await;
    mock.add_merchant("pat-a", "77", Merchant::generate(5));
    let without_channel = client(&mock, "pat-a", None, 50);
    assert!(matches!(without_channel.export(&order("o-1")).await, Err(ProviderError::Permanent(_))));
    let sb = client(&mock, "pat-a", Some("77"), 50);
    // Made, then the answer lost: sent again, the first is found, never a second.
    mock.script("pat-a", &[Fault::LostAnswer]);
    assert!(matches!(sb.export(&order("o-1")).await, Err(ProviderError::Transient(_))));
    let again = sb.export(&order("o-1")).await.expect("found");
    let third = sb.export(&order("o-1")).await.expect("found");
    assert_eq!(again, third);
    assert_eq!(again.line_ids, ["500", "503"]);
    let orders = mock.orders("pat-a");
    assert_eq!(orders.len(), 1, "{orders:?}");
    let sent = orders.values().next().expect("one");
    assert_eq!(sent["reference_id"], "o-1");
    assert_eq!(sent["recipient"]["address"]["zip_code"], "07102");
    assert_eq!(sent["products"][0]["unit_price"], "19.99", "money stays exact");
    // Split: two shipments from two centres.
    let id: u64 = again.id.parse().expect("id");
    mock.ship("pat-a", id, 10, &[(500, 2)], "9400A");
    mock.ship("pat-a", id, 11, &[(503, 1)], "9400B");
    let shipments = sb.shipments(&again.id).await.expect("shipments");
    assert_eq!(shipments.len(), 2);
    assert_eq!(shipments[0].items, [ShippedItem { variant_id: "500".into(), quantity: 2 }]);
    assert_eq!(shipments[1].location_id.as_deref(), Some("11"));
    assert_eq!(shipments[1].tracking[0].number.as_deref(), Some("9400B"));
    assert_eq!(
        shipments[0].created_at,
        Some("2026-02-03T17:20:00.1234567Z".parse().expect("instant")),
        "seven fractional digits read"
    );
    mock.stop().await;
}

#[tokio::test]
async fn scenario_17_two_merchants_on_one_mock_never_see_or_slow_each_other() {
    let mock = MockShipBob::start().await;
    mock.add_merchant("pat-a", "77", Merchant::generate(4));
    mock.add_merchant("pat-b", "88", Merchant::generate(6));
    mock.script("pat-a", &[Fault::RateLimited(600)]);
    let (a, b) = (client(&mock, "pat-a", Some("77"), 50), client(&mock, "pat-b", Some("88"), 50));
    let started = Instant::now();
    let (ra, rb) = tokio::join!(a.variants(None, None), b.variants(None, None));
    assert!(matches!(ra, Err(ProviderError::RateLimited { .. })));
    assert_eq!(rb.expect("b reads").records.len(), 6);
    assert!(started.elapsed() < Duration::from_secs(5), "b did not wait for a's limit");
    let revoked = client(&mock, "pat-revoked", Some("77"), 50);
    assert!(matches!(revoked.locations(None).await, Err(ProviderError::Unauthorized(_))));
    assert_eq!(b.locations(None).await.expect("b").records.len(), 2);
    mock.stop().await;
}

pub(crate) mod through_the_api {
    //! ShipBob installed through the API beside NetSuite: its centres' stock synced, an order
    //! allocated to one of its warehouses sent to it (and to NetSuite), and its split shipments,
    //! reported by a signed webhook or read by the reconciliation when none came, becoming
    //! shipments here and item fulfilments in NetSuite with their tracking (scenario 10's 3PL
    //! leg), once however often a webhook is delivered.

    use qm_api::db::TxMode;
    use qm_api::db::entities::{purchase_order_line, shipment, variant};
    use qm_connectors::netsuite::tba::Credentials;
    use qm_tests::netsuite_mock::{Account, MockNetSuite};
    use qm_tests::shipbob_mock::{Fault, Merchant, MockShipBob};
    use qm_tests::{TestApp, TestTenant};
    use sea_orm::EntityTrait;
    use serde_json::{Value, json};

    pub(crate) async fn install(app: &TestApp, t: &TestTenant, kind: &str, key: &str, config: Value) -> String {
        let d = app
            .data(
                &t.owner_key,
                "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id kind } userErrors { field code message } } }",
                json!({ "i": { "kind": kind, key: config } }),
            )
            .await;
        assert_eq!(d["connectorInstall"]["userErrors"], json!([]), "{d}");
        d["connectorInstall"]["connector"]["id"].as_str().expect("id").to_owned()
    }

    pub(crate) async fn sync(app: &TestApp, t: &TestTenant, connector: &str) -> Value {
        app.sync_connector(&t.owner_key, connector).await
    }

    /// Delivers a ShipBob webhook signed with `secret` (Standard Webhooks).
    pub(crate) async fn deliver(
        app: &TestApp,
        connector: &str,
        secret: &str,
        id: &str,
        topic: &str,
        body: &Value,
    ) -> u16 {
        let raw = serde_json::to_vec(body).expect("json");
        let ts = chrono::Utc::now().timestamp();
        let signature = qm_integrations::webhooks::sign(&[secret], id, ts, &raw).expect("sign");
        let uuid = connector.rsplit('/').next().expect("uuid");
        app.client
            .post(format!("{}/webhooks/shipbob/{uuid}", app.address))
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .header("x-webhook-topic", topic)
            .body(raw)
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16()
    }

    async fn order_status(app: &TestApp, t: &TestTenant, id: &str) -> Value {
        let d = app
            .data(&t.owner_key, "query($id: ID!) { node(id: $id) { ... on Order { status } } }", json!({ "id": id }))
            .await;
        d["node"]["status"].clone()
    }

    #[tokio::test]
    async fn scenario_5_10_11_a_shipbob_split_shipment_becomes_item_fulfilments_and_its_return_an_item_receipt_once_back()
     {
        let app = TestApp::spawn().await;
        let t = app.tenant("sb-flow").await;
        let (sb, ns) = (MockShipBob::start().await, MockNetSuite::start().await);
        sb.add_merchant("pat-1", "77", Merchant::generate(5));
        // NetSuite holds the catalog (the same SKUs) and the order book.
        let c = Credentials {
            account: "5550001".into(),
            consumer_key: "ck".into(),
            consumer_secret: "cs".into(),
            token_id: "tk".into(),
            token_secret: "ts".into(),
        };
        let mut account = Account { locations: vec![(1, "Main DC".into())], ..Account::default() };
        for k in 0..5_i64 {
            account.items.push((1001 + k, format!("SB-{k}"), format!("{}.50", 10 + k), None));
        }
        // NetSuite counts 99 of SB-3 at its location 1, which is ShipBob's Cicero centre too.
        account.stock.insert((1004, 1), (99, 99, 0));
        ns.add_account(c.clone(), account, 4);
        let cicero = app.location(&t.owner_key, "CICERO").await;
        let riverside = app.location(&t.owner_key, "RIVERSIDE").await;
        let netsuite = install(
            &app,
            &t,
            "NETSUITE",
            "netsuite",
            json!({
                "accountId": c.account, "consumerKey": c.consumer_key, "consumerSecret": c.consumer_secret,
                "tokenId": c.token_id, "tokenSecret": c.token_secret, "webhookSecret": "ns-secret",
                "timeZone": "America/Chicago", "currency": "USD", "baseUrl": ns.url, "orderCustomerId": "42",
            }),
        )
        .await;
        let secret = qm_integrations::webhooks::generate_secret();
        let shipbob = install(&app, &t, "SHIPBOB", "shipbob", json!({
            "accessToken": "pat-1", "webhookSecret": secret, "channelId": "77", "baseUrl": sb.url,
            "locationMapping": [{ "shipbobLocationId": "10", "locationId": cicero }, { "shipbobLocationId": "11", "locationId": riverside }],
        }))
        .await;
        assert_eq!(sync(&app, &t, &netsuite).await["status"], "COMPLETED");
        let run = sync(&app, &t, &shipbob).await;
        assert_eq!(run["status"], "COMPLETED", "{run}");
        assert_eq!(run["problemCount"], 0, "{run}");
        // ShipBob linked to NetSuite's variants by SKU and changed none of them.
        let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
        let variants = variant::Entity::find().all(&s.tx).await.expect("variants");
        s.commit().await.expect("commit");
        assert_eq!(variants.len(), 5);
        // ShipBob is the stock master of its warehouse: NetSuite's count there is not applied.
        assert_eq!(sync(&app, &t, &netsuite).await["status"], "COMPLETED");
        let sb3 = variants.iter().find(|v| v.sku == "SB-3").expect("SB-3").id;
        let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
        let level = qm_api::services::stock::level(&s, sb3, qm_tests::uuid_of(&cicero)).await.expect("level");
        s.commit().await.expect("commit");
        assert_eq!(level.on_hand, 4, "ShipBob's 4, not NetSuite's 99");
        assert!(
            variants
                .iter()
                .any(|v| v.sku == "SB-3" && v.price.0 == rust_decimal::Decimal::new(1350, 2) && v.title == "Item SB-3"),
            "{variants:?}"
        );

        let d = app
            .data(
                &t.owner_key,
                "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id } userErrors { field message } } }",
                json!({ "i": { "externalId": "WEB-9", "locationId": cicero, "shipTo": { "name": "Ada", "city": "Chicago" },
                    "lines": [{ "sku": "SB-3", "quantity": 3 }, { "sku": "SB-1", "quantity": 1 }] } }),
            )
            .await;
        assert_eq!(d["orderCreate"]["userErrors"], json!([]), "{d}");
        let order = d["orderCreate"]["order"]["id"].as_str().expect("order").to_owned();
        app.drain_jobs().await;
        let at_shipbob = sb.orders("pat-1");
        assert_eq!(at_shipbob.len(), 1, "sent to the warehouse's 3PL");
        let (sb_id, sent) = at_shipbob.into_iter().next().expect("one");
        assert_eq!(sent["reference_id"], json!(qm_tests::uuid_of(&order).to_string()));
        assert_eq!(sent["location_id"], 10);
        assert_eq!(ns.records("5550001", "salesOrder").len(), 1, "and to the order book");

        // Two parcels from two centres: SB-3 ×2 first, then SB-3 ×1 with SB-1 ×1.
        sb.ship("pat-1", sb_id, 10, &[(503, 2)], "9400A");
        let body = json!({ "event_time": "2026-02-03T17:20:00.1234567Z", "order_id": sb_id, "status": "Completed" });
        for _ in 0..3 {
            assert_eq!(deliver(&app, &shipbob, &secret, "msg_1", "order.shipped", &body).await, 200);
        }
        app.drain_jobs().await;
        assert_eq!(order_status(&app, &t, &order).await, "RESERVED", "partly shipped");
        // The second parcel's webhook never comes: the hourly reconciliation reads it.
        sb.ship("pat-1", sb_id, 11, &[(503, 1), (501, 1)], "9400B");
        app.make_schedules_due("connector.reconcile", chrono::Duration::minutes(10)).await;
        assert_eq!(
            deliver(
                &app,
                &shipbob,
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                "msg_3",
                "order.shipped",
                &body
            )
            .await,
            401
        );
        app.settle_jobs(3).await;
        assert_eq!(order_status(&app, &t, &order).await, "FULFILLED");
        let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
        let mut shipments = shipment::Entity::find().all(&s.tx).await.expect("shipments");
        s.commit().await.expect("commit");
        shipments.sort_by_key(|sh| sh.tracking_number.clone());
        let seen: Vec<(Option<String>, bool)> = shipments
            .iter()
            .map(|sh| (sh.tracking_number.clone(), sh.location_id == qm_tests::uuid_of(&riverside)))
            .collect();
        assert_eq!(
            seen,
            [(Some("9400A".into()), false), (Some("9400B".into()), true)],
            "one per parcel, from its centre"
        );
        let fulfilments = ns.records("5550001", "itemFulfillment");
        let mut got: Vec<(String, Vec<(i64, i64)>)> = fulfilments
            .values()
            .map(|f| {
                let lines = f["item"]["items"]
                    .as_array()
                    .expect("lines")
                    .iter()
                    .map(|l| (l["orderLine"].as_i64().expect("line"), l["quantity"].as_i64().expect("qty")))
                    .collect();
                (f["package"]["items"][0]["packageTrackingNumber"].as_str().expect("tracking").to_owned(), lines)
            })
            .collect();
        got.sort();
        assert_eq!(got, [("9400A".to_owned(), vec![(1, 2)]), ("9400B".to_owned(), vec![(1, 1), (2, 1)])]);

        // Scenario 11's 3PL leg: a return of one unit is authorised in NetSuite and announced to
        // ShipBob's warehouse against the parcel it went out in, once though ShipBob's first
        // answer is lost.
        sb.script("pat-1", &[Fault::LostAnswer]);
        let d = app
            .data(
                &t.owner_key,
                "mutation($i: ReturnCreateInput!) { returnCreate(input: $i) { return { id } userErrors { field code message } } }",
                json!({ "i": { "orderId": order, "reason": "too big", "lines": [{ "sku": "SB-3", "quantity": 1 }] } }),
            )
            .await;
        assert_eq!(d["returnCreate"]["userErrors"], json!([]), "{d}");
        let ret = d["returnCreate"]["return"]["id"].as_str().expect("return").to_owned();
        app.settle_jobs(3).await;
        let announced = sb.returns("pat-1");
        assert_eq!(announced.len(), 1, "{announced:?}");
        let (sb_return, r) = announced.into_iter().next().expect("one");
        assert_eq!(r["reference_id"], json!(qm_tests::uuid_of(&ret).to_string()));
        let parcel_b =
            sb.shipments("pat-1", sb_id).iter().find(|s| s["tracking"]["tracking_number"] == "9400B").expect("B")["id"]
                .clone();
        assert_eq!(r["original_shipment_id"], parcel_b, "the latest parcel that held the unit");
        assert_eq!(r["inventory"][0]["id"], 903);
        assert_eq!(r["inventory"][0]["quantity"], 1);
        assert_eq!(ns.records("5550001", "returnAuthorization").len(), 1);
        assert_eq!(ns.records("5550001", "itemReceipt").len(), 0, "not back yet");
        let return_status = async || {
            let d = app
                .data(
                    &t.owner_key,
                    "query($id: ID!) { node(id: $id) { ... on Return { status } } }",
                    json!({ "id": ret }),
                )
                .await;
            d["node"]["status"].clone()
        };
        assert_ne!(return_status().await, "RECEIVED");

        // The warehouse receives and restocks it; its webhook comes three times at once
        // (scenario 5): our return is received once, NetSuite gets one item receipt, and the
        // restocked unit shows in ShipBob's levels.
        sb.complete_return("pat-1", sb_return);
        let body =
            json!({ "id": sb_return, "reference_id": qm_tests::uuid_of(&ret).to_string(), "status": "Completed" });
        let sends = (0..3).map(|_| deliver(&app, &shipbob, &secret, "msg_r1", "return.completed", &body));
        assert_eq!(futures_util::future::join_all(sends).await, [200, 200, 200]);
        app.settle_jobs(3).await;
        assert_eq!(return_status().await, "RECEIVED");
        assert_eq!(ns.records("5550001", "itemReceipt").len(), 1);
        let received = app.events(t.id, "return.received").await;
        assert_eq!(received.len(), 1, "{received:?}");
        let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
        let level = qm_api::services::stock::level(&s, sb3, qm_tests::uuid_of(&riverside)).await.expect("level");
        s.commit().await.expect("commit");
        assert_eq!(level.on_hand, 1, "ShipBob restocked it at Riverside");
        sb.stop().await;
        ns.stop().await;
    }

    /// A tenant with a ShipBob connector (merchant `pat-w`) whose centre 10 is location CICERO,
    /// and a draft purchase order PO-77 for CICERO of 5 SB-1 and 3 SB-2: (tenant, mock, CICERO,
    /// purchase order, connector, webhook secret).
    async fn wro_setup(app: &TestApp) -> (TestTenant, MockShipBob, String, String, String, String) {
        let t = app.tenant("sb-wro").await;
        let sb = MockShipBob::start().await;
        sb.add_merchant("pat-w", "78", Merchant::generate(3));
        let cicero = app.location(&t.owner_key, "CICERO").await;
        let secret = qm_integrations::webhooks::generate_secret();
        let shipbob = install(
            app,
            &t,
            "SHIPBOB",
            "shipbob",
            json!({
                "accessToken": "pat-w", "webhookSecret": secret, "channelId": "78", "baseUrl": sb.url,
                "locationMapping": [{ "shipbobLocationId": "10", "locationId": cicero }],
            }),
        )
        .await;
        assert_eq!(sync(app, &t, &shipbob).await["status"], "COMPLETED");
        let d = app
            .data(&t.owner_key, "mutation { supplierUpsert(input: { name: \"Acme\", leadTimeMeanDays: \"7\", leadTimeStdDevDays: \"2\", currencyCode: \"USD\" }) { supplier { id } } }", json!({}))
            .await;
        let supplier = d["supplierUpsert"]["supplier"]["id"].as_str().expect("supplier").to_owned();
        let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
        let po = app.purchase_order_in(&s, "PO-77", &supplier, &cicero, "draft").await;
        let variants = variant::Entity::find().all(&s.tx).await.expect("variants");
        for (sku, q) in [("SB-1", 5), ("SB-2", 3)] {
            use sea_orm::ActiveValue::Set;
            let v = variants.iter().find(|v| v.sku == sku).expect("variant");
            purchase_order_line::Entity::insert(purchase_order_line::ActiveModel {
                tenant_id: Set(t.id),
                id: Set(uuid::Uuid::now_v7()),
                purchase_order_id: Set(qm_tests::uuid_of(&po)),
                variant_id: Set(v.id),
                quantity: Set(q),
                received_quantity: Set(0),
                unit_cost: Set(qm_api::db::entities::Dec(rust_decimal::Decimal::new(450, 2))),
            })
            .exec_without_returning(&s.tx)
            .await
            .expect("line");
        }
        s.commit().await.expect("commit");
        (t, sb, cicero, po, shipbob, secret)
    }

    #[tokio::test]
    async fn a_purchase_order_for_a_shipbob_warehouse_becomes_one_receiving_order_and_its_receipts_come_back_once() {
        let app = TestApp::spawn().await;
        let (t, sb, cicero, po, shipbob, secret) = wro_setup(&app).await;
        let on_hand = async |sku: &str| app.on_hand(&t.owner_key, &cicero, sku).await;
        let before = on_hand("SB-1").await;

        // Issued: ShipBob is told what to expect, once though its first answer is lost.
        sb.script("pat-w", &[Fault::LostAnswer]);
        let d = app
            .data(
                &t.owner_key,
                "mutation($i: PurchaseOrderIssueInput!) { purchaseOrderIssue(input: $i) { userErrors { message } } }",
                json!({ "i": { "id": po } }),
            )
            .await;
        assert_eq!(d["purchaseOrderIssue"]["userErrors"], json!([]), "{d}");
        app.settle_jobs(3).await;
        let wros = sb.receiving("pat-w");
        assert_eq!(wros.len(), 1, "{wros:?}");
        let (wro, w) = wros.into_iter().next().expect("one");
        assert_eq!(
            (w["purchase_order_number"].as_str(), w["fulfillment_center"]["id"].as_u64()),
            (Some("PO-77"), Some(10))
        );
        let expected: Vec<(u64, i64)> = w["inventory_quantities"]
            .as_array()
            .expect("items")
            .iter()
            .map(|q| (q["inventory_id"].as_u64().expect("id"), q["expected_quantity"].as_i64().expect("q")))
            .collect();
        assert_eq!(expected, [(901, 5), (902, 3)]);

        let po_state = async || {
            let d = app
                .data(
                    &t.owner_key,
                    "query($id: ID!) { node(id: $id) { ... on PurchaseOrder { status lines { receivedQuantity } } } }",
                    json!({ "id": po }),
                )
                .await;
            let lines: Vec<i64> = d["node"]["lines"]
                .as_array()
                .expect("lines")
                .iter()
                .map(|l| l["receivedQuantity"].as_i64().expect("q"))
                .collect();
            (d["node"]["status"].as_str().expect("status").to_owned(), lines)
        };
        // The warehouse counts SB-1; the webhook comes twice: received here once.
        sb.receive("pat-w", wro, &[(901, 5)]);
        let body = json!({ "id": wro, "status": "PartiallyArrived" });
        for id in ["msg_w1", "msg_w2"] {
            assert_eq!(deliver(&app, &shipbob, &secret, id, "receiving.updated", &body).await, 200);
        }
        app.drain_jobs().await;
        assert_eq!(po_state().await, ("PARTIALLY_RECEIVED".to_owned(), vec![5, 0]));
        assert_eq!(on_hand("SB-1").await, before + 5);
        // Then SB-2, read by the reconciliation without a webhook: the order is received.
        sb.receive("pat-w", wro, &[(902, 3)]);
        app.make_schedules_due("connector.reconcile", chrono::Duration::minutes(10)).await;
        for _ in 0..3 {
            app.drain_jobs().await;
        }
        assert_eq!(po_state().await, ("RECEIVED".to_owned(), vec![5, 3]));
        // Each count announced once, as ShipBob's.
        let told = app.events(t.id, "purchase_order.received").await;
        let said: Vec<(&Value, &Value, Option<usize>)> =
            told.iter().map(|e| (&e["status"], &e["by"], e["lines"].as_array().map(Vec::len))).collect();
        assert_eq!(
            said,
            vec![
                (&json!("partially_received"), &json!("shipbob"), Some(1)),
                (&json!("received"), &json!("shipbob"), Some(1))
            ],
            "{told:?}"
        );
        // ShipBob's levels, read again, agree: nothing counted twice.
        assert_eq!(sync(&app, &t, &shipbob).await["status"], "COMPLETED");
        assert_eq!(on_hand("SB-1").await, before + 5);
        sb.stop().await;
    }

    #[tokio::test]
    async fn a_cancelled_purchase_order_withdraws_its_shipbob_receiving_order() {
        let app = TestApp::spawn().await;
        let (t, sb, _, po, _, _) = wro_setup(&app).await;
        let issue = "mutation($id: ID!) { purchaseOrderIssue(input: { id: $id }) { userErrors { message } } }";
        let d = app.data(&t.owner_key, issue, json!({ "id": po })).await;
        assert_eq!(d["purchaseOrderIssue"]["userErrors"], json!([]), "{d}");
        app.settle_jobs(3).await;
        let wro = *sb.receiving("pat-w").keys().next().expect("a receiving order");

        // Cancelled here: ShipBob withdraws the receiving order.
        let cancel = "mutation($id: ID!) { purchaseOrderCancel(input: { id: $id, reason: \"not needed\" }) {
            purchaseOrder { status } userErrors { message } } }";
        let d = app.data(&t.owner_key, cancel, json!({ "id": po })).await;
        assert_eq!(d["purchaseOrderCancel"]["purchaseOrder"]["status"], "CANCELLED", "{d}");
        app.settle_jobs(3).await;
        let w = &sb.receiving("pat-w")[&wro];
        assert_eq!(w["status"], "Cancelled", "{w}");
        let history: Vec<&str> =
            w["status_history"].as_array().expect("history").iter().filter_map(|h| h["status"].as_str()).collect();
        assert_eq!(history, ["Awaiting", "Cancelled"]);
        // A repeated withdrawal (its first answer lost) finds it cancelled and is done.
        use qm_connectors::source::InboundSink;
        let client = super::client(&sb, "pat-w", Some("78"), 50);
        client.cancel(&wro.to_string()).await.expect("cancelled already counts as done");
        // One the warehouse has begun to receive cannot be withdrawn: ShipBob's reason comes back.
        sb.receive("pat-w", wro, &[(901, 1)]);
        let refused = client.cancel(&wro.to_string()).await;
        assert!(
            matches!(&refused, Err(qm_connectors::ProviderError::Permanent(m)) if m.contains("cannot be cancelled")),
            "{refused:?}"
        );
        sb.stop().await;
    }

    #[tokio::test]
    async fn a_shipbob_connector_is_reconfigured_in_place_keeping_its_id_status_and_account() {
        let app = TestApp::spawn().await;
        let t = app.tenant("sb-update").await;
        let sb = MockShipBob::start().await;
        sb.add_merchant("pat-u", "79", Merchant::generate(2));
        let cicero = app.location(&t.owner_key, "CICERO").await;
        let riverside = app.location(&t.owner_key, "RIVERSIDE").await;
        let secret = qm_integrations::webhooks::generate_secret();
        let config = |channel: &str, method: &str, mapping: Value| {
            json!({ "accessToken": "pat-u", "webhookSecret": secret, "channelId": channel, "shippingMethod": method,
                "baseUrl": sb.url, "locationMapping": mapping })
        };
        let shipbob = install(
            &app,
            &t,
            "SHIPBOB",
            "shipbob",
            config("79", "Standard", json!([{ "shipbobLocationId": "10", "locationId": cicero }])),
        )
        .await;
        let d = app
            .data(
                &t.owner_key,
                "mutation($i: ConnectorPauseInput!) { connectorPause(input: $i) { userErrors { message } } }",
                json!({ "i": { "id": shipbob, "reason": "moving warehouses" } }),
            )
            .await;
        assert_eq!(d["connectorPause"]["userErrors"], json!([]), "{d}");
        let update = "mutation($i: ConnectorUpdateInput!) { connectorUpdate(input: $i) { connector { id status statusReason
            shipbob { shippingMethod } locationMapping { providerLocationId stockMaster } } userErrors { field code message } } }";
        let both = json!([{ "shipbobLocationId": "10", "locationId": cicero }, { "shipbobLocationId": "11", "locationId": riverside, "stockMaster": false }]);
        // Another channel is another connector; Shopify's config is not ShipBob's.
        let d = app
            .data(
                &t.owner_key,
                update,
                json!({ "i": { "id": shipbob, "shipbob": config("80", "Standard", both.clone()) } }),
            )
            .await;
        assert_eq!(d["connectorUpdate"]["userErrors"][0]["field"], json!(["input", "shipbob", "channelId"]), "{d}");
        let d = app
            .data(&t.owner_key, update, json!({ "i": { "id": shipbob, "config": { "apiVersion": "2026-04" } } }))
            .await;
        assert_eq!(d["connectorUpdate"]["userErrors"][0]["field"], json!(["input", "shipbob"]), "{d}");
        let d = app
            .data(&t.owner_key, update, json!({ "i": { "id": shipbob, "shipbob": config("79", "Expedited", both) } }))
            .await;
        assert_eq!(d["connectorUpdate"]["userErrors"], json!([]), "{d}");
        let c = &d["connectorUpdate"]["connector"];
        assert_eq!(c["id"], json!(shipbob), "the same connector");
        assert_eq!((c["status"].as_str(), c["statusReason"].as_str()), (Some("PAUSED"), Some("moving warehouses")));
        assert_eq!(c["shipbob"]["shippingMethod"], "Expedited");
        assert_eq!(
            c["locationMapping"],
            json!([{ "providerLocationId": "10", "stockMaster": true }, { "providerLocationId": "11", "stockMaster": false }])
        );
        let d = app
            .data(
                &t.owner_key,
                "mutation($i: ConnectorIdInput!) { connectorResume(input: $i) { userErrors { message } } }",
                json!({ "i": { "id": shipbob } }),
            )
            .await;
        assert_eq!(d["connectorResume"]["userErrors"], json!([]), "{d}");
        assert_eq!(sync(&app, &t, &shipbob).await["status"], "COMPLETED");
        let d = app.data(&t.owner_key, "{ locations(first: 10) { nodes { code } } }", json!({})).await;
        assert_eq!(d["locations"]["nodes"].as_array().map(Vec::len), Some(2), "both centres mapped, none made: {d}");
        sb.stop().await;
    }

    #[tokio::test]
    async fn scenario_17_tenants_on_one_shipbob_mock_a_throttled_or_revoked_one_never_holds_up_another() {
        let app = TestApp::spawn().await;
        let (a, b, c) = (app.tenant("sb-throttled").await, app.tenant("sb-fine").await, app.tenant("sb-revoked").await);
        let sb = MockShipBob::start().await;
        sb.add_merchant("pat-a", "91", Merchant::generate(4));
        sb.add_merchant("pat-b", "92", Merchant::generate(6));
        // Tenant a's merchant is over ShipBob's limit for ten minutes; tenant c's token was revoked.
        sb.script("pat-a", &[Fault::RateLimited(600)]);
        let mut connectors = Vec::new();
        for (t, token, channel) in [(&a, "pat-a", "91"), (&b, "pat-b", "92"), (&c, "pat-revoked", "93")] {
            let centre = app.location(&t.owner_key, "CICERO").await;
            let secret = qm_integrations::webhooks::generate_secret();
            connectors.push(
                install(&app, t, "SHIPBOB", "shipbob", json!({ "accessToken": token, "webhookSecret": secret,
                    "channelId": channel, "baseUrl": sb.url, "locationMapping": [{ "shipbobLocationId": "10", "locationId": centre }] }))
                .await,
            );
        }
        let started = std::time::Instant::now();
        let (run_a, run_b, run_c) = tokio::join!(
            sync(&app, &a, &connectors[0]),
            sync(&app, &b, &connectors[1]),
            sync(&app, &c, &connectors[2])
        );
        assert_eq!(run_b["status"], "COMPLETED", "{run_b}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "b never waited for a's limit");
        assert_eq!(run_c["status"], "FAILED", "{run_c}");
        let d = app.data(&c.owner_key, "{ connectors { status } }", json!({})).await;
        assert_eq!(d["connectors"][0]["status"], "PAUSED", "{d}");
        for t in [&a, &b] {
            let d = app.data(&t.owner_key, "{ connectors { status } }", json!({})).await;
            assert_eq!(d["connectors"][0]["status"], "ACTIVE", "{d}");
        }
        // a's sync waited its limit out (the harness brings the retry forward) and completed with
        // its own four products, none of b's.
        assert_eq!(run_a["status"], "COMPLETED", "{run_a}");
        assert!(sb.requests("pat-a") >= 2, "a was refused once, then read");
        let s = app.state.db.scoped(a.id, TxMode::Read).await.expect("tx");
        let variants = qm_api::db::repo::find::<variant::Entity>(&s).all(&s.tx).await.expect("variants");
        s.commit().await.expect("commit");
        assert_eq!(variants.len(), 4);
        sb.stop().await;
    }
}
