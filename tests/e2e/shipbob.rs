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
            OutboundLine { item_id: "500".into(), quantity: 2, price: Decimal::new(1999, 2) },
            OutboundLine { item_id: "503".into(), quantity: 1, price: Decimal::new(500, 2) },
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
