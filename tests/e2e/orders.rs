//! Orders reserve atomically, release on cancel and consume on fulfilment.

use futures_util::future::join_all;
use qm_tests::TestApp;
use serde_json::{Value, json};

const CREATE: &str = "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id status location { code } lines { quantity variant { sku } } } userErrors { field code message } } }";

fn order(ext: &str, sku: &str, qty: i32, location: Option<&str>) -> Value {
    let mut i =
        json!({ "externalId": ext, "lines": [{ "sku": sku, "quantity": qty }], "shipTo": { "city": "Newark" } });
    if let Some(l) = location {
        i["locationId"] = json!(l);
    }
    json!({ "i": i })
}

async fn level(app: &TestApp, token: &str, location: &str) -> Value {
    let d = app
        .data(
            token,
            "query($l: ID!) { stockLevels(locationId: $l, first: 5) { nodes { onHand reserved available } } }",
            json!({ "l": location }),
        )
        .await;
    d["stockLevels"]["nodes"][0].clone()
}

#[tokio::test]
async fn fifty_concurrent_orders_for_ten_units_reserve_exactly_ten() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let loc = app.location(&t.owner_key, "WH1").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    app.stock(&t.owner_key, "TEE-1", &loc, 10).await;
    let results =
        join_all((0..50).map(|i| app.gql(&t.owner_key, CREATE, order(&format!("o-{i}"), "TEE-1", 1, Some(&loc)))))
            .await;
    let mut ok = 0;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        let p = &body["data"]["orderCreate"];
        if p["order"].is_object() {
            ok += 1;
        } else {
            assert_eq!(p["userErrors"][0]["code"], "INSUFFICIENT_STOCK", "{body}");
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(level(&app, &t.owner_key, &loc).await, json!({ "onHand": 10, "reserved": 10, "available": 0 }));
    let d =
        app.data(&t.owner_key, "{ orders(first: 100) { nodes { id } } ledgerVerify { ok checked } }", json!({})).await;
    assert_eq!(d["orders"]["nodes"].as_array().map(Vec::len), Some(10));
    assert_eq!(d["ledgerVerify"], json!({ "ok": true, "checked": 11 }));
}

#[tokio::test]
async fn an_order_that_cannot_be_filled_writes_nothing() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let loc = app.location(&t.owner_key, "WH1").await;
    app.product(&t.owner_key, "tee", &["TEE-1", "TEE-2"]).await;
    app.stock(&t.owner_key, "TEE-1", &loc, 5).await;
    app.stock(&t.owner_key, "TEE-2", &loc, 1).await;
    let input = json!({ "i": { "externalId": "big", "locationId": loc, "lines": [{ "sku": "TEE-1", "quantity": 2 }, { "sku": "TEE-2", "quantity": 2 }] } });
    let d = app.data(&t.owner_key, CREATE, input).await;
    assert_eq!(d["orderCreate"]["userErrors"][0]["code"], "INSUFFICIENT_STOCK");
    assert_eq!(d["orderCreate"]["userErrors"][0]["field"], json!(["input", "lines", "1", "quantity"]));
    let d = app
        .data(
            &t.owner_key,
            "{ orders(first: 5) { nodes { id } } stockLevels(first: 5) { nodes { reserved } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["orders"]["nodes"], json!([]));
    assert_eq!(d["stockLevels"]["nodes"], json!([{ "reserved": 0 }, { "reserved": 0 }]));
}

#[tokio::test]
async fn without_a_location_the_order_goes_where_it_can_be_filled_whole() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let a = app.location(&t.owner_key, "A-WH").await;
    let b = app.location(&t.owner_key, "B-WH").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    app.stock(&t.owner_key, "TEE-1", &a, 2).await;
    app.stock(&t.owner_key, "TEE-1", &b, 8).await;
    let d = app.data(&t.owner_key, CREATE, order("auto", "TEE-1", 5, None)).await;
    assert_eq!(d["orderCreate"]["order"]["location"]["code"], "B-WH", "{d}");
    let d = app.data(&t.owner_key, CREATE, order("too-big", "TEE-1", 9, None)).await;
    assert_eq!(d["orderCreate"]["userErrors"][0]["code"], "INSUFFICIENT_STOCK");
}

#[tokio::test]
async fn cancel_releases_and_fulfil_consumes_and_both_are_safe_to_retry() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let loc = app.location(&t.owner_key, "WH1").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    app.stock(&t.owner_key, "TEE-1", &loc, 10).await;
    let rx = qm_tests::receiver::Receiver::start().await;
    app.webhook_endpoint(&t.owner_key, &rx.url, json!(["order.*", "shipment.*"])).await;
    let first = app.data(&t.owner_key, CREATE, order("o-1", "TEE-1", 3, Some(&loc))).await;
    let replay = app.data(&t.owner_key, CREATE, order("o-1", "TEE-1", 3, Some(&loc))).await;
    assert_eq!(
        first["orderCreate"]["order"]["id"], replay["orderCreate"]["order"]["id"],
        "same externalId, same order"
    );
    let o1 = first["orderCreate"]["order"]["id"].as_str().expect("id").to_owned();
    assert_eq!(level(&app, &t.owner_key, &loc).await, json!({ "onHand": 10, "reserved": 3, "available": 7 }));

    let cancel = "mutation($id: ID!) { orderCancel(input: { id: $id }) { order { status } userErrors { code } } }";
    for _ in 0..2 {
        let d = app.data(&t.owner_key, cancel, json!({ "id": o1 })).await;
        assert_eq!(d["orderCancel"]["order"]["status"], "CANCELLED");
    }
    assert_eq!(level(&app, &t.owner_key, &loc).await, json!({ "onHand": 10, "reserved": 0, "available": 10 }));

    let second = app.data(&t.owner_key, CREATE, order("o-2", "TEE-1", 4, Some(&loc))).await;
    let o2 = second["orderCreate"]["order"]["id"].as_str().expect("id").to_owned();
    let fulfil = "mutation($id: ID!) { orderFulfill(input: { id: $id, carrier: \"UPS\", trackingNumber: \"1Z\" }) { order { status } shipment { id carrier events { status } } userErrors { code } } }";
    let f1 = app.data(&t.owner_key, fulfil, json!({ "id": o2 })).await;
    let f2 = app.data(&t.owner_key, fulfil, json!({ "id": o2 })).await;
    assert_eq!(f1["orderFulfill"]["order"]["status"], "FULFILLED");
    assert_eq!(
        f1["orderFulfill"]["shipment"]["id"], f2["orderFulfill"]["shipment"]["id"],
        "fulfilling twice ships once"
    );
    assert_eq!(f1["orderFulfill"]["shipment"]["events"], json!([{ "status": "SHIPPED" }]));
    assert_eq!(level(&app, &t.owner_key, &loc).await, json!({ "onHand": 6, "reserved": 0, "available": 6 }));
    // A fulfilled order cannot be cancelled, a cancelled one cannot be fulfilled.
    let d = app.data(&t.owner_key, cancel, json!({ "id": o2 })).await;
    assert_eq!(d["orderCancel"]["userErrors"][0]["code"], "INVALID_STATE");
    let d = app.data(&t.owner_key, fulfil, json!({ "id": o1 })).await;
    assert_eq!(d["orderFulfill"]["userErrors"][0]["code"], "INVALID_STATE");
    let d = app
        .data(
            &t.owner_key,
            "{ shipments(first: 5) { nodes { trackingNumber } } ledgerVerify { ok checked } }",
            json!({}),
        )
        .await;
    assert_eq!(d["shipments"]["nodes"], json!([{ "trackingNumber": "1Z" }]));
    // adjust, reserve, release, reserve, ship.
    assert_eq!(d["ledgerVerify"], json!({ "ok": true, "checked": 5 }));
    // Each state change emitted its event once, retries none.
    app.drain_jobs().await;
    let bodies: Vec<Value> =
        rx.received().iter().map(|r| serde_json::from_slice(&r.body).expect("json body")).collect();
    let mut types: Vec<&str> = bodies.iter().filter_map(|b| b["type"].as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, ["order.cancelled", "order.created", "order.created", "order.fulfilled", "shipment.updated"]);
    let shipped = bodies.iter().find(|b| b["type"] == "shipment.updated").expect("shipment.updated");
    assert_eq!(shipped["data"]["shipmentId"], f1["orderFulfill"]["shipment"]["id"]);
    assert_eq!(shipped["data"]["orderId"], o2.as_str());
    assert_eq!(shipped["data"]["status"], "shipped");
    assert_eq!((&shipped["data"]["carrier"], &shipped["data"]["trackingNumber"]), (&json!("UPS"), &json!("1Z")));
}
