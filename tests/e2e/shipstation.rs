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
    let wrong = client(&mock, "key", "wrong", 5);
    assert!(matches!(wrong.locations(None).await, Err(ProviderError::Unauthorized(_))));
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
