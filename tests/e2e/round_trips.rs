//! The cross-system round trips of scenarios 10 and 11 with every system at once: a store
//! (Shopify), a 3PL that ships from its warehouse (ShipBob) and the order book (NetSuite), each a
//! mock speaking its wire format. An order placed in the store ships from the 3PL in two parcels:
//! each becomes a fulfilment in the store on its fulfilment-order lines with the tracking, and an
//! item fulfilment in NetSuite. The customer's return, started in the store, is authorised in
//! NetSuite and announced to the 3PL; once the 3PL's warehouse received it, NetSuite gets its
//! item receipt, once, and the store closing the return later changes nothing more.

use chrono::{DateTime, Utc};
use qm_api::db::TxMode;
use qm_api::db::entities::shipment;
use qm_connectors::netsuite::tba::Credentials;
use qm_tests::TestApp;
use qm_tests::netsuite_mock::{self, MockNetSuite};
use qm_tests::shipbob_mock::{self, Merchant, MockShipBob};
use qm_tests::shopify_mock::{MockShopify, Shop};
use sea_orm::EntityTrait;
use serde_json::json;

use crate::shipbob::through_the_api::{deliver, install, sync};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

#[tokio::test]
async fn scenarios_10_11_a_store_order_shipped_by_shipbob_and_returned_flows_through_shopify_and_netsuite() {
    let app = TestApp::spawn().await;
    let t = app.tenant("round-trip").await;
    let cicero = app.location(&t.owner_key, "CICERO").await;

    // The store: four variants at one location, which is ShipBob's Cicero centre.
    let shop = Shop::generate(4, 1, at("2026-11-01T10:00:00Z"));
    let store_location = shop.locations[0].id;
    let variants: Vec<_> = shop.variants.values().cloned().collect();
    let shopify = MockShopify::start(shop, "shpat_round_trip").await;
    let store = install(
        &app,
        &t,
        "SHOPIFY",
        "config",
        json!({ "shopDomain": "round-trip.myshopify.com", "accessToken": "shpat_round_trip", "apiVersion": "2026-01",
            "webhookSecret": "whsec-store", "baseUrl": shopify.url, "bulkImport": "NEVER",
            "locationMapping": [{ "shopifyLocationId": format!("gid://shopify/Location/{store_location}"), "locationId": cicero }] }),
    )
    .await;
    // The 3PL stocks the same SKUs at Cicero.
    let mut merchant = Merchant { locations: vec![(10, "Cicero (IL)".into())], ..Merchant::default() };
    for (k, v) in variants.iter().enumerate() {
        let k = k as u64;
        let variant = shipbob_mock::Variant { id: 500 + k, sku: v.sku.clone(), inventory_id: 900 + k };
        merchant.stock.insert((900 + k, 10), (20, 20, 0));
        merchant.products.push((100 + k, v.product_title.clone(), vec![variant]));
    }
    let sb = MockShipBob::start().await;
    sb.add_merchant("pat-rt", "81", merchant);
    let secret = qm_integrations::webhooks::generate_secret();
    let shipbob = install(
        &app,
        &t,
        "SHIPBOB",
        "shipbob",
        json!({ "accessToken": "pat-rt", "webhookSecret": secret, "channelId": "81", "baseUrl": sb.url,
            "locationMapping": [{ "shipbobLocationId": "10", "locationId": cicero }] }),
    )
    .await;
    // The order book knows the items by the same SKUs.
    let c = Credentials {
        account: "6660001".into(),
        consumer_key: "ck".into(),
        consumer_secret: "cs".into(),
        token_id: "tk".into(),
        token_secret: "ts".into(),
    };
    let mut account = netsuite_mock::Account { locations: vec![(1, "Main DC".into())], ..Default::default() };
    for (k, v) in variants.iter().enumerate() {
        account.items.push((2001 + k as i64, v.sku.clone(), "10.00".into(), None));
    }
    let ns = MockNetSuite::start().await;
    ns.add_account(c.clone(), account, 4);
    let netsuite = install(
        &app,
        &t,
        "NETSUITE",
        "netsuite",
        json!({ "accountId": c.account, "consumerKey": "ck", "consumerSecret": "cs", "tokenId": "tk", "tokenSecret": "ts",
            "webhookSecret": "ns-secret", "timeZone": "America/Chicago", "currency": "USD", "baseUrl": ns.url,
            "orderCustomerId": "42" }),
    )
    .await;
    for connector in [&store, &shipbob, &netsuite] {
        let run = sync(&app, &t, connector).await;
        assert_eq!(run["status"], "COMPLETED", "{run}");
    }

    // A customer orders two of the first variant and one of the second in the store.
    let placed = at("2026-11-02T09:00:00Z");
    let mut order_id = 0;
    shopify.edit(|s| order_id = s.place_order(store_location, &[(variants[0].id, 2), (variants[1].id, 1)], placed));
    assert_eq!(sync(&app, &t, &store).await["status"], "COMPLETED");
    app.settle_jobs(3).await;
    let at_shipbob = sb.orders("pat-rt");
    assert_eq!(at_shipbob.len(), 1, "the 3PL ships it");
    let (sb_order, _) = at_shipbob.into_iter().next().expect("one");
    assert_eq!(ns.records("6660001", "salesOrder").len(), 1, "and the order book has it");

    // Two parcels: the first variant, then the second.
    sb.ship("pat-rt", sb_order, 10, &[(500, 2)], "9400RT1");
    sb.ship("pat-rt", sb_order, 10, &[(501, 1)], "9400RT2");
    let body = json!({ "order_id": sb_order, "status": "Completed" });
    assert_eq!(deliver(&app, &shipbob, &secret, "msg_rt1", "order.shipped", &body).await, 200);
    app.settle_jobs(3).await;
    let in_store = shopify.shop().orders[&order_id].clone();
    let mut tracking: Vec<&str> = in_store.fulfillments.iter().map(|f| f.number.as_str()).collect();
    tracking.sort_unstable();
    assert_eq!(tracking, ["9400RT1", "9400RT2"], "one store fulfilment per parcel");
    assert_eq!(in_store.lines.iter().map(|l| l.fulfilled).collect::<Vec<_>>(), [2, 1], "on the right lines");
    assert_eq!(ns.records("6660001", "itemFulfillment").len(), 2);
    // The store's next read brings its fulfilments back as the shipments they came from.
    assert_eq!(sync(&app, &t, &store).await["status"], "COMPLETED");
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let shipments = shipment::Entity::find().all(&s.tx).await.expect("shipments");
    s.commit().await.expect("commit");
    assert_eq!(shipments.len(), 2, "{shipments:?}");

    // The customer returns one of the first variant in the store (after the fulfilments, which
    // the store stamped with its own clock).
    let mut return_id = 0;
    shopify.edit(|s| return_id = s.request_return(order_id, &[(0, 1)], Utc::now() + chrono::Duration::minutes(1)));
    assert_eq!(sync(&app, &t, &store).await["status"], "COMPLETED");
    app.settle_jobs(3).await;
    assert_eq!(ns.records("6660001", "returnAuthorization").len(), 1, "authorised in the order book");
    let announced = sb.returns("pat-rt");
    assert_eq!(announced.len(), 1, "and announced to the 3PL");
    let (sb_return, r) = announced.into_iter().next().expect("one");
    assert_eq!(r["inventory"][0]["id"], 900);
    assert_eq!(ns.records("6660001", "itemReceipt").len(), 0);

    // The 3PL's warehouse receives it: NetSuite gets its item receipt.
    sb.complete_return("pat-rt", sb_return);
    let body = json!({ "id": sb_return, "status": "Completed" });
    assert_eq!(deliver(&app, &shipbob, &secret, "msg_rt2", "return.completed", &body).await, 200);
    app.settle_jobs(3).await;
    assert_eq!(ns.records("6660001", "itemReceipt").len(), 1);
    // The store closes the return later: nothing is received twice.
    shopify.edit(|s| s.close_return(order_id, return_id, false, Utc::now() + chrono::Duration::minutes(2)));
    assert_eq!(sync(&app, &t, &store).await["status"], "COMPLETED");
    app.settle_jobs(3).await;
    assert_eq!(ns.records("6660001", "itemReceipt").len(), 1);
    assert_eq!(app.events(t.id, "return.received").await.len(), 1);
    sb.stop().await;
    ns.stop().await;
}
