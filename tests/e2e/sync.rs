//! The sync engine against the mock Shopify (issue 6; scenarios of the contracts README §7 in the
//! test names): locations, catalog and stock flow in page by page, exactly once, resuming from
//! the last checkpoint, obeying the shop's rate limits.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use qm_api::db::TxMode;
use qm_api::db::entities::{location, stock_level, stock_movement, variant};
use qm_domain::Role;
use qm_tests::shopify_mock::{Fault, MockShopify, Shop};
use qm_tests::{TestApp, TestTenant};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

const TOKEN: &str = "shpat_mock_token_0123456789";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

/// Installs a connector to `mock` and returns its id.
async fn install(app: &TestApp, t: &TestTenant, mock: &MockShopify, shop: &str) -> String {
    install_with(app, t, mock, shop, "AUTO").await
}

/// Installs a connector whose full reads go as `bulk_import` says.
async fn install_with(app: &TestApp, t: &TestTenant, mock: &MockShopify, shop: &str, bulk_import: &str) -> String {
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id } userErrors { field message } } }",
            json!({ "i": { "kind": "SHOPIFY", "config": {
                "shopDomain": shop, "accessToken": TOKEN, "apiVersion": "2026-01",
                "webhookSecret": "whsec-test", "baseUrl": mock.url, "bulkImport": bulk_import,
            } } }),
        )
        .await;
    assert_eq!(d["connectorInstall"]["userErrors"], json!([]), "{d}");
    d["connectorInstall"]["connector"]["id"].as_str().expect("id").to_owned()
}

const RUN_FIELDS: &str = "id status full trigger error problemCount pages counts { resource applied unchanged problems } problems { resource externalId message }";

async fn request(app: &TestApp, t: &TestTenant, connector: &str, full: bool) -> Value {
    let d = app
        .data(
            &t.owner_key,
            &format!("mutation($i: SyncRunInput!) {{ syncRun(input: $i) {{ syncRun {{ {RUN_FIELDS} }} userErrors {{ field code message }} }} }}"),
            json!({ "i": { "connectorId": connector, "full": full } }),
        )
        .await;
    assert_eq!(d["syncRun"]["userErrors"], json!([]), "{d}");
    d["syncRun"]["syncRun"].clone()
}

/// The run after every job it queued has run (retries fast-forwarded).
async fn settle(app: &TestApp, t: &TestTenant, run: &str) -> Value {
    for _ in 0..50 {
        app.drain_jobs().await;
        let d = app
            .data(
                &t.owner_key,
                &format!("query($id: ID!) {{ node(id: $id) {{ ... on SyncRun {{ {RUN_FIELDS} }} }} }}"),
                json!({ "id": run }),
            )
            .await;
        let r = d["node"].clone();
        if r["status"] == "COMPLETED" || r["status"] == "FAILED" {
            return r;
        }
        app.make_jobs_due().await;
    }
    panic!("the sync run did not finish");
}

async fn sync(app: &TestApp, t: &TestTenant, connector: &str, full: bool) -> Value {
    let run = request(app, t, connector, full).await;
    settle(app, t, run["id"].as_str().expect("run id")).await
}

fn count(run: &Value, resource: &str) -> (u64, u64, u64) {
    let c = run["counts"].as_array().and_then(|cs| cs.iter().find(|c| c["resource"] == resource));
    c.map_or((0, 0, 0), |c| {
        (c["applied"].as_u64().unwrap_or(0), c["unchanged"].as_u64().unwrap_or(0), c["problems"].as_u64().unwrap_or(0))
    })
}

/// What the tenant holds: on hand per (SKU, location code), with the number of variants and of
/// `sync` movements.
struct Mirror {
    on_hand: BTreeMap<(String, String), i64>,
    variants: usize,
    movements: usize,
}

async fn mirror(app: &TestApp, t: &TestTenant) -> Mirror {
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let variants: BTreeMap<_, _> =
        variant::Entity::find().all(&s.tx).await.expect("variants").into_iter().map(|v| (v.id, v.sku)).collect();
    let locations: BTreeMap<_, _> =
        location::Entity::find().all(&s.tx).await.expect("locations").into_iter().map(|l| (l.id, l.code)).collect();
    let on_hand = stock_level::Entity::find()
        .all(&s.tx)
        .await
        .expect("levels")
        .into_iter()
        .filter(|l| l.on_hand != 0)
        .map(|l| ((variants[&l.variant_id].clone(), locations[&l.location_id].clone()), l.on_hand))
        .collect();
    let movements = stock_movement::Entity::find()
        .filter(stock_movement::Column::Kind.eq("sync"))
        .all(&s.tx)
        .await
        .expect("movements")
        .len();
    s.commit().await.expect("commit");
    Mirror { on_hand, variants: variants.len(), movements }
}

/// What the shop holds, keyed as [`mirror`] keys ours (unmapped locations become `shopify-{id}`).
fn expected(shop: &Shop, mapped: &[(u64, &str)]) -> BTreeMap<(String, String), i64> {
    let sku: BTreeMap<u64, String> = shop.variants.values().map(|v| (v.inventory_item_id, v.sku.clone())).collect();
    shop.levels
        .iter()
        .filter(|(_, l)| l.on_hand != 0)
        .map(|((loc, item), l)| {
            let code = mapped
                .iter()
                .find(|(id, _)| id == loc)
                .map_or_else(|| format!("shopify-{loc}"), |(_, c)| (*c).to_owned());
            ((sku[item].clone(), code), l.on_hand)
        })
        .collect()
}

#[tokio::test]
async fn scenario_1_a_full_sync_follows_cursors_and_mirrors_the_shop_exactly_then_syncs_only_changes() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let t0 = at("2026-11-01T10:00:00Z");
    let shop = Shop::generate(600, 3, t0);
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    // The first Shopify location feeds our existing warehouse.
    let wh = app.location(&t.owner_key, "WH").await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    let first_location = format!("gid://shopify/Location/{}", shop.locations[0].id);
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: ConnectorUpdateInput!) { connectorUpdate(input: $i) { userErrors { message } } }",
            json!({ "i": { "id": connector, "config": { "locationMapping": [{ "shopifyLocationId": first_location, "locationId": wh }] } } }),
        )
        .await;
    assert_eq!(d["connectorUpdate"]["userErrors"], json!([]), "{d}");

    let run = sync(&app, &t, &connector, false).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["problemCount"], 0, "{run}");
    assert_eq!(count(&run, "LOCATIONS"), (3, 0, 0));
    assert_eq!(count(&run, "CATALOG"), (600, 0, 0));
    let want = expected(&shop, &[(shop.locations[0].id, "WH")]);
    let (applied, unchanged, _) = count(&run, "INVENTORY");
    assert_eq!(applied as usize, want.len(), "one movement per non-zero level");
    assert_eq!((applied + unchanged) as usize, shop.levels.len(), "every level read once");
    // Pages of 250: one of locations, three of variants, three per location of levels, one
    // (empty) of orders.
    assert_eq!(run["pages"], 1 + 3 + 3 * 3 + 1, "{run}");
    let m = mirror(&app, &t).await;
    assert_eq!(m.on_hand, want);
    assert_eq!((m.variants, m.movements), (600, want.len()));
    let seen = mock.seen();
    assert!(seen.iter().all(|s| s.status == 200 && !s.throttled), "no refusals on a roomy bucket");

    // Nothing changed: an incremental sync applies nothing and writes no movement.
    let again = sync(&app, &t, &connector, false).await;
    assert_eq!(again["status"], "COMPLETED", "{again}");
    for r in ["LOCATIONS", "CATALOG", "INVENTORY"] {
        assert_eq!(count(&again, r).0, 0, "{r}: {again}");
    }
    assert_eq!(mirror(&app, &t).await.movements, want.len());

    // One price and one level change in the shop: the next sync reads and applies just those.
    let t1 = at("2026-11-02T09:00:00Z");
    let (vid, item) = {
        // An old variant, outside the overlap window.
        let v = shop.variants.values().nth(10).expect("variant");
        (v.id, v.inventory_item_id)
    };
    let loc = shop.locations[1].id;
    mock.edit(|s| {
        let v = s.variants.get_mut(&vid).expect("variant");
        v.price = "77.70".into();
        v.updated_at = t1;
        let l = s.levels.get_mut(&(loc, item)).expect("level");
        l.on_hand += 5;
        l.updated_at = t1;
    });
    let before = mock.seen().len();
    let changed = sync(&app, &t, &connector, false).await;
    assert_eq!((count(&changed, "CATALOG").0, count(&changed, "INVENTORY").0), (1, 1), "{changed}");
    // Read: what changed, and what changed in the minute before the last sync's newest change
    // (the overlap that keeps a record saved in the same second from being missed).
    let window = t0 - chrono::Duration::seconds(60);
    let now = mock.shop();
    let variants_read = now.variants.values().filter(|v| v.updated_at >= window).count() as u64;
    let levels_read = now.levels.values().filter(|l| l.updated_at >= window).count() as u64;
    assert_eq!((variants_read, levels_read), (3, 7), "the two newest variants and their levels, and the changes");
    let read = |r: &str| count(&changed, r).0 + count(&changed, r).1;
    assert_eq!((read("CATALOG"), read("INVENTORY")), (variants_read, levels_read), "{changed}");
    assert_eq!(mock.seen().len() - before, 1 + 1 + 3 + 1, "one page each (locations, catalog, levels, orders)");
    let sku = &shop.variants[&vid].sku;
    let d = app
        .data(&t.owner_key, "query($s: String!) { variantBySku(sku: $s) { price { amount } } }", json!({ "s": sku }))
        .await;
    assert_eq!(d["variantBySku"]["price"]["amount"], "77.7", "{d}");
    let m = mirror(&app, &t).await;
    assert_eq!(m.on_hand, expected(&mock.shop(), &[(shop.locations[0].id, "WH")]));

    // The connector reports each resource's last sync.
    let d = app
        .data(
            &t.owner_key,
            "{ connectors { syncState { resource lastSyncedAt since errorCount } lastSyncRun { status } } }",
            json!({}),
        )
        .await;
    let state = &d["connectors"][0]["syncState"];
    assert_eq!(state.as_array().map(Vec::len), Some(4), "{d}");
    assert_eq!(d["connectors"][0]["lastSyncRun"]["status"], "COMPLETED");
    let catalog = state.as_array().and_then(|s| s.iter().find(|r| r["resource"] == "CATALOG")).expect("catalog");
    assert_eq!(catalog["since"], "2026-11-02T09:00:00+00:00", "{d}");
}

#[tokio::test]
async fn scenario_1_a_run_that_fails_halfway_goes_on_from_its_last_page_without_duplicates() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(1000, 2, at("2026-11-01T10:00:00Z"));
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    // Page by page (a shop this size would otherwise be read through a bulk operation).
    let connector = install_with(&app, &t, &mock, "mock-shop.myshopify.com", "NEVER").await;
    // After the locations page and two pages of variants the shop fails every call of a whole
    // attempt (the client's five tries): the job gives up and is retried later.
    mock.script_after(
        3,
        &[Fault::Status(502), Fault::Status(502), Fault::Status(502), Fault::Status(502), Fault::Status(502)],
    );
    let run = request(&app, &t, &connector, false).await;
    let id = run["id"].as_str().expect("id").to_owned();
    app.drain_jobs().await;
    let d = app
        .data(
            &t.owner_key,
            &format!("query($id: ID!) {{ node(id: $id) {{ ... on SyncRun {{ {RUN_FIELDS} }} }} }}"),
            json!({ "id": id }),
        )
        .await;
    let halfway = &d["node"];
    assert_eq!(halfway["status"], "RUNNING", "{d}");
    assert_eq!(halfway["pages"], 3, "the pages before the failure are committed: {d}");
    assert!(halfway["error"].as_str().is_some_and(|e| e.contains("502")), "{d}");
    assert_eq!(count(halfway, "CATALOG").0, 500);

    let done = settle(&app, &t, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(count(&done, "CATALOG"), (1000, 0, 0), "each variant applied once");
    let want = expected(&shop, &[]);
    assert_eq!(count(&done, "INVENTORY").0 as usize, want.len());
    let m = mirror(&app, &t).await;
    assert_eq!((m.on_hand, m.variants, m.movements), (want.clone(), 1000, want.len()));
    // The first page of variants was asked for once: the retry started from the checkpoint.
    let firsts = mock.seen().iter().filter(|s| s.root == "productVariants" && s.status == 200).count();
    assert_eq!(firsts, 4, "four pages of variants answered (250 each), none twice");
}

/// A run whose worker dies on its job's last attempt is FAILED once the lease expires, and the
/// connector syncs again: one run per connector at a time, so a run left RUNNING would hold
/// every later sync of it (asked for, scheduled or from webhooks) for good.
#[tokio::test]
async fn a_run_whose_worker_dies_on_the_last_attempt_fails_and_the_next_run_syncs() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(20, 2, at("2026-11-01T10:00:00Z"));
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    let run = request(&app, &t, &connector, false).await;
    let id = run["id"].as_str().expect("id").to_owned();
    assert_eq!(app.crash_on_last_attempt("connector.sync").await, 1);
    let failed = settle(&app, &t, &id).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["error"], "its job failed: lease expired", "{failed}");
    assert_eq!(mirror(&app, &t).await.variants, 0, "the dead job read nothing");

    let next = request(&app, &t, &connector, false).await;
    assert_ne!(next["id"], run["id"], "a new run, not the dead one");
    let done = settle(&app, &t, next["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let m = mirror(&app, &t).await;
    assert_eq!((m.on_hand, m.variants), (expected(&shop, &[]), 20));
}

#[tokio::test]
async fn scenario_1_16_a_large_shop_is_imported_through_a_bulk_operation_exactly_and_a_cut_download_goes_on_from_its_checkpoint()
 {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(1200, 2, at("2026-11-01T10:00:00Z"));
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    // The download fails in its second page of 250 variants (each with two levels, ~1 KB).
    mock.cut_next_download(400_000);
    let run = sync(&app, &t, &connector, false).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["problemCount"], 0, "{run}");
    assert_eq!(count(&run, "CATALOG"), (1200, 0, 0), "each variant applied once: {run}");
    let want = expected(&shop, &[]);
    assert_eq!(count(&run, "INVENTORY"), (want.len() as u64, (shop.levels.len() - want.len()) as u64, 0));
    // One page of locations, five of the file (250 variants each), one of orders.
    assert_eq!(run["pages"], 1 + 5 + 1, "{run}");
    let m = mirror(&app, &t).await;
    assert_eq!((m.on_hand, m.variants, m.movements), (want.clone(), 1200, want.len()));
    assert_eq!(mock.bulk_operations(), 1);
    let seen = mock.seen();
    assert!(!seen.iter().any(|s| s.root == "productVariants" || s.root == "inventoryLevels"), "no pages were read");
    let downloads = mock.downloads();
    assert_eq!(downloads.len(), 2, "{downloads:?}");
    assert!(
        downloads[0] == 0 && downloads[1] > 0 && downloads[1] < 400_000,
        "{downloads:?}: the retry asked for the rest"
    );

    // Later syncs read changes page by page.
    let again = sync(&app, &t, &connector, false).await;
    assert_eq!(
        (again["status"].as_str(), count(&again, "CATALOG").0, mock.bulk_operations()),
        (Some("COMPLETED"), 0, 1)
    );
    assert!(mock.seen().iter().any(|s| s.root == "productVariants"));
}

#[tokio::test]
async fn scenario_16_a_busy_shop_is_waited_for_a_failed_operation_gives_its_partial_data_and_an_expired_file_is_asked_for_again()
 {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(300, 1, at("2026-11-01T10:00:00Z"));
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    let connector = install_with(&app, &t, &mock, "mock-shop.myshopify.com", "ALWAYS").await;
    // Another bulk query of the app runs (the start is refused), then the import fails halfway.
    mock.busy_bulk();
    mock.fail_next_bulk("INTERNAL_SERVER_ERROR");
    let run = request(&app, &t, &connector, false).await;
    let id = run["id"].as_str().expect("id").to_owned();
    app.drain_jobs().await;
    let waiting = app
        .data(
            &t.owner_key,
            "query($id: ID!) { node(id: $id) { ... on SyncRun { status error } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(waiting["node"]["status"], "RUNNING", "{waiting}");
    assert!(waiting["node"]["error"].as_str().is_some_and(|e| e.contains("rate limited")), "{waiting}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let done = settle(&app, &t, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let problems = done["problems"].as_array().cloned().unwrap_or_default();
    assert_eq!(problems.len(), 1, "{done}");
    assert!(problems[0]["message"].as_str().is_some_and(|m| m.contains("INTERNAL_SERVER_ERROR")), "{done}");
    // Half came from the partial file; pages read them again (unchanged) and the rest.
    let (applied, unchanged, _) = count(&done, "CATALOG");
    assert_eq!(applied, 300, "{done}");
    assert!(unchanged > 100 && unchanged < 200, "{done}");
    assert_eq!(mirror(&app, &t).await.on_hand, expected(&shop, &[]));
    assert_eq!(mock.bulk_operations(), 2, "the other query and the import");

    // A full sync whose file has expired by the time it is read starts the import again; its
    // new file is cut off once, from a server that ignores ranges: the rest is read by skipping.
    mock.expire_next_download();
    // In the last page (variants 251 to 300).
    let size = qm_tests::shopify_mock::import_file(&mock.shop()).0.len();
    mock.cut_next_download(size - 2_000);
    mock.ignore_ranges(true);
    let full = sync(&app, &t, &connector, true).await;
    assert_eq!(full["status"], "COMPLETED", "{full}");
    assert_eq!(full["problemCount"], 0, "{full}");
    assert_eq!(count(&full, "CATALOG").0 + count(&full, "CATALOG").1, 300, "each variant read once: {full}");
    assert_eq!(mock.bulk_operations(), 4);
    let downloads = mock.downloads();
    assert!(downloads.len() >= 3 && *downloads.last().expect("one") > 0, "{downloads:?}");
    assert_eq!(mirror(&app, &t).await.on_hand, expected(&shop, &[]));
}

#[tokio::test]
async fn scenario_2_throttled_in_both_forms_is_waited_out_as_told() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(20, 1, at("2026-11-01T10:00:00Z"));
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    mock.script(&[Fault::Throttled, Fault::TooMany(1.0), Fault::Status(503)]);
    let run = sync(&app, &t, &connector, false).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(count(&run, "CATALOG").0, 20);
    let seen = mock.seen();
    assert_eq!(seen.iter().map(|s| s.status).take(4).collect::<Vec<_>>(), [200, 429, 503, 200]);
    // Retry-After: 1 on the 429 is obeyed.
    let gap = seen[2].at - seen[1].at;
    assert!(gap >= Duration::from_millis(950), "waited {gap:?} after a 429 with Retry-After: 1");
    assert_eq!(mirror(&app, &t).await.on_hand, expected(&shop, &[]));
}

#[tokio::test]
async fn scenario_3_the_connector_waits_for_the_bucket_before_sending_and_splits_too_costly_queries() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(900, 1, at("2026-11-01T10:00:00Z"));
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    // A bucket of 1,000 refilling at 2,000/s: a 753-point page leaves too little for the next one.
    mock.bucket(1000.0, 2000.0, 1000.0);
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    let run = sync(&app, &t, &connector, false).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let seen = mock.seen();
    assert!(seen.iter().all(|s| !s.throttled), "never sent a query the bucket could not pay for");
    assert!(seen.iter().filter(|s| s.available < 1000.0).count() >= 2, "pages did wait for the bucket");
    // The admin sees the bucket as the last page left it.
    let d = app
        .data(
            &t.owner_key,
            "{ connectors { throttle { available maximum restoreRate observedAt availableNow } lastSyncRun { startedAt finishedAt } } }",
            json!({}),
        )
        .await;
    let c = &d["connectors"][0];
    let th = &c["throttle"];
    assert_eq!((th["maximum"].as_f64(), th["restoreRate"].as_f64()), (Some(1000.0), Some(2000.0)), "{d}");
    // What the last answer reported: what the bucket held when that query came, less its cost.
    let last = seen.last().expect("calls");
    let available = th["available"].as_f64().expect("available");
    let (most, least) = (last.available + 1e-6, last.available - last.cost - 1e-6);
    assert!(available <= most && available >= least, "{last:?} {d}");
    let observed = at(th["observedAt"].as_str().expect("observedAt"));
    assert!(observed >= at(c["lastSyncRun"]["startedAt"].as_str().expect("started")), "{d}");
    assert!(observed <= at(c["lastSyncRun"]["finishedAt"].as_str().expect("finished")), "{d}");
    let now = th["availableNow"].as_f64().expect("availableNow");
    assert!(now >= available && now <= 1000.0, "refilled since, never above the maximum: {d}");

    // A shop that refuses queries above 300 points: pages shrink until they fit.
    let app2 = TestApp::spawn().await;
    let t2 = app2.tenant("beta").await;
    let mock2 = MockShopify::start(shop.clone(), TOKEN).await;
    mock2.max_cost(300.0);
    let connector2 = install(&app2, &t2, &mock2, "mock-shop.myshopify.com").await;
    let run2 = sync(&app2, &t2, &connector2, false).await;
    assert_eq!(run2["status"], "COMPLETED", "{run2}");
    assert_eq!(count(&run2, "CATALOG").0, 900);
    assert_eq!(mirror(&app2, &t2).await.on_hand, expected(&shop, &[]));
    let refused = mock2.seen().iter().filter(|s| s.cost > 300.0).count();
    assert!(refused >= 1, "the first page was refused as too costly");
    assert!(mock2.seen().iter().filter(|s| s.cost > 300.0).count() <= 2, "and smaller pages were asked for after");
}

#[tokio::test]
async fn scenario_14_15_17_a_version_drift_fails_the_run_and_refused_credentials_pause_only_that_tenant() {
    let app = TestApp::spawn().await;
    let a = app.tenant("acme").await;
    let b = app.tenant("beta").await;
    let shop = Shop::generate(10, 1, at("2026-11-01T10:00:00Z"));
    let mock_a = MockShopify::start(shop.clone(), TOKEN).await;
    let mock_b = MockShopify::start(shop.clone(), TOKEN).await;
    let ca = install(&app, &a, &mock_a, "mock-a.myshopify.com").await;
    let cb = install(&app, &b, &mock_b, "mock-b.myshopify.com").await;

    mock_a.serve_version(Some("2025-10"));
    let drift = sync(&app, &a, &ca, false).await;
    assert_eq!(drift["status"], "FAILED", "{drift}");
    assert!(drift["error"].as_str().is_some_and(|e| e.contains("2025-10") && e.contains("2026-01")), "{drift}");
    assert_eq!(mirror(&app, &a).await.variants, 0, "nothing applied from a drifted version");

    // Acme's token is revoked: its run fails and its connector pauses; beta syncs as before.
    mock_a.serve_version(None);
    mock_a.edit(|_| {});
    let d = app
        .data(
            &a.owner_key,
            "mutation($i: ConnectorUpdateInput!) { connectorUpdate(input: $i) { userErrors { message } } }",
            json!({ "i": { "id": ca, "config": { "accessToken": "shpat_revoked" } } }),
        )
        .await;
    assert_eq!(d["connectorUpdate"]["userErrors"], json!([]), "{d}");
    let refused = sync(&app, &a, &ca, false).await;
    assert_eq!(refused["status"], "FAILED", "{refused}");
    let d = app.data(&a.owner_key, "{ connectors { status statusReason } }", json!({})).await;
    assert_eq!(d["connectors"][0]["status"], "PAUSED", "{d}");
    assert!(d["connectors"][0]["statusReason"].as_str().is_some_and(|r| r.contains("credentials")), "{d}");
    // Owners and admins are alerted, and webhook consumers get sync.failed, for each failure.
    let d = app.data(&a.owner_key, "{ alerts(first: 10) { nodes { kind subject } } }", json!({})).await;
    let failed: Vec<&Value> =
        d["alerts"]["nodes"].as_array().into_iter().flatten().filter(|n| n["kind"] == "SYNC_FAILED").collect();
    assert_eq!(failed.len(), 2, "{d}");
    assert_eq!(failed[0]["subject"], "Sync of mock-a.myshopify.com failed");
    let s = app.state.db.scoped(a.id, TxMode::Read).await.expect("tx");
    let events = qm_api::db::entities::event::Entity::find()
        .filter(qm_api::db::entities::event::Column::EventType.eq("sync.failed"))
        .all(&s.tx)
        .await
        .expect("events");
    s.commit().await.expect("commit");
    assert_eq!(events.len(), 2);
    let last = events.iter().max_by_key(|e| e.occurred_at).expect("event");
    assert_eq!(last.payload["provider"], "shopify");
    assert_eq!(last.payload["connectorPaused"], true);
    assert_eq!(last.payload["connectorId"], json!(ca));
    let ok = sync(&app, &b, &cb, false).await;
    assert_eq!(ok["status"], "COMPLETED", "{ok}");
    assert_eq!(mirror(&app, &b).await.variants, 10);
    let d = app.data(&b.owner_key, "{ connectors { status } }", json!({})).await;
    assert_eq!(d["connectors"][0]["status"], "ACTIVE");
    // A paused connector does not sync: a typed error, nothing queued.
    let d = app
        .data(
            &a.owner_key,
            "mutation($i: SyncRunInput!) { syncRun(input: $i) { syncRun { id } userErrors { field code } } }",
            json!({ "i": { "connectorId": ca } }),
        )
        .await;
    assert_eq!(d["syncRun"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
}

#[tokio::test]
async fn a_bad_record_is_a_problem_of_the_run_and_the_rest_is_applied() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let mut shop = Shop::generate(6, 1, at("2026-11-01T10:00:00Z"));
    let first = *shop.variants.keys().next().expect("variant");
    shop.variants.get_mut(&first).expect("variant").sku = String::new();
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    let run = sync(&app, &t, &connector, false).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(count(&run, "CATALOG"), (5, 0, 1));
    assert_eq!(run["problems"][0]["externalId"], format!("gid://shopify/ProductVariant/{first}"));
    assert!(run["problems"][0]["message"].as_str().is_some_and(|m| m.contains("SKU")), "{run}");
    // Its stock has no variant to land on: a problem too, the other levels applied.
    assert_eq!(count(&run, "INVENTORY").2, 1, "{run}");
    assert_eq!(mirror(&app, &t).await.variants, 5);
    // Runs are listed, newest last, with their counts.
    let d = app
        .data(
            &t.owner_key,
            "query($c: ID) { syncRuns(connectorId: $c, last: 5) { nodes { status problemCount } } }",
            json!({ "c": connector }),
        )
        .await;
    assert_eq!(d["syncRuns"]["nodes"], json!([{ "status": "COMPLETED", "problemCount": 2 }]), "{d}");
    let planner = app.jwt(&t, &[Role::Planner]);
    let (_, body) = app.gql(&planner, "{ syncRuns(last: 1) { nodes { id } } }", json!({})).await;
    assert!(body["errors"][0]["extensions"]["code"] == "FORBIDDEN", "admins only: {body}");
}

/// The tenant's on-hand of `sku` at the location linked to Shopify location `location`.
async fn on_hand(app: &TestApp, t: &TestTenant, sku: &str, location: u64) -> i64 {
    mirror(app, t).await.on_hand.get(&(sku.to_owned(), format!("shopify-{location}"))).copied().unwrap_or(0)
}

async fn webhook_statuses(app: &TestApp, t: &TestTenant) -> BTreeMap<String, String> {
    use qm_api::db::entities::connector_webhook;
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let rows = connector_webhook::Entity::find().all(&s.tx).await.expect("webhooks");
    s.commit().await.expect("commit");
    rows.into_iter().map(|w| (w.webhook_id, w.status)).collect()
}

#[tokio::test]
async fn scenarios_5_6_7_webhooks_are_acked_at_once_applied_once_and_never_roll_back() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(10, 1, at("2026-11-01T10:00:00Z"));
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    assert_eq!(sync(&app, &t, &connector, false).await["status"], "COMPLETED");
    let url = format!("{}/webhooks/shopify/{}", app.address, connector.rsplit('/').next().expect("uuid"));
    let v = shop.variants.values().next().expect("variant").clone();
    let loc = shop.locations[0].id;
    let start = on_hand(&app, &t, &v.sku, loc).await;
    let movements = mirror(&app, &t).await.movements;

    // 7: the shop changes the level and notifies; the shop's API stalls, the ack does not wait.
    mock.edit(|s| {
        let l = s.levels.get_mut(&(loc, v.inventory_item_id)).expect("level");
        l.on_hand = start + 4;
        l.updated_at = at("2026-11-02T10:00:00Z");
    });
    mock.latency(Duration::from_secs(5));
    let body =
        qm_tests::shopify_mock::inventory_level_body(v.inventory_item_id, loc, start + 3, "2026-11-02T05:00:00-05:00");
    let (status, took) =
        qm_tests::shopify_mock::deliver(&url, "whsec-test", "inventory_levels/update", "wh-1", &body).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(2), "acked while the shop stalls, in {took:?}");
    assert_eq!(on_hand(&app, &t, &v.sku, loc).await, start, "queued, not applied inline");
    mock.latency(Duration::ZERO);

    // 5: the same delivery three more times, at once: three 2xx, one change.
    let copies = futures_util::future::join_all(
        (0..3).map(|_| qm_tests::shopify_mock::deliver(&url, "whsec-test", "inventory_levels/update", "wh-1", &body)),
    )
    .await;
    assert!(copies.iter().all(|(s, _)| *s == 200), "{copies:?}");
    app.drain_jobs().await;
    assert_eq!(on_hand(&app, &t, &v.sku, loc).await, start + 4, "the shop's state, read back");
    assert_eq!(mirror(&app, &t).await.movements, movements + 1, "one change for four deliveries");

    // 6: a newer change, then a late delivery of an older one: the newest state stays.
    mock.edit(|s| {
        let l = s.levels.get_mut(&(loc, v.inventory_item_id)).expect("level");
        l.on_hand = start + 9;
        l.updated_at = at("2026-11-03T10:00:00Z");
    });
    let newer =
        qm_tests::shopify_mock::inventory_level_body(v.inventory_item_id, loc, start + 8, "2026-11-03T05:00:00-05:00");
    assert_eq!(
        qm_tests::shopify_mock::deliver(&url, "whsec-test", "inventory_levels/update", "wh-2", &newer).await.0,
        200
    );
    app.drain_jobs().await;
    let older =
        qm_tests::shopify_mock::inventory_level_body(v.inventory_item_id, loc, start + 3, "2026-11-02T05:00:00-05:00");
    assert_eq!(
        qm_tests::shopify_mock::deliver(&url, "whsec-test", "inventory_levels/update", "wh-0", &older).await.0,
        200
    );
    app.drain_jobs().await;
    assert_eq!(on_hand(&app, &t, &v.sku, loc).await, start + 9);
    assert_eq!(mirror(&app, &t).await.movements, movements + 2, "the late delivery changed nothing");

    // A product update arrives, then a stale copy of an earlier one: the price is the shop's newest.
    mock.edit(|s| {
        let x = s.variants.get_mut(&v.id).expect("variant");
        x.price = "42.50".into();
        x.updated_at = at("2026-11-03T11:00:00Z");
    });
    let fresh = qm_tests::shopify_mock::product_body(&v, "42.50", "2026-11-03T06:00:00-05:00");
    let stale = qm_tests::shopify_mock::product_body(&v, &v.price, "2026-11-01T05:00:00-05:00");
    for (id, body) in [("wh-p2", &fresh), ("wh-p1", &stale)] {
        assert_eq!(qm_tests::shopify_mock::deliver(&url, "whsec-test", "products/update", id, body).await.0, 200);
        app.drain_jobs().await;
    }
    let d = app
        .data(&t.owner_key, "query($s: String!) { variantBySku(sku: $s) { price { amount } } }", json!({ "s": v.sku }))
        .await;
    assert_eq!(d["variantBySku"]["price"]["amount"], "42.5", "{d}");

    // Topics not synced yet are kept and marked ignored; the applied ones applied.
    assert_eq!(
        qm_tests::shopify_mock::deliver(&url, "whsec-test", "refunds/create", "wh-r1", "{\"id\":1}").await.0,
        200
    );
    app.drain_jobs().await;
    let statuses = webhook_statuses(&app, &t).await;
    assert_eq!(statuses["wh-1"], "applied");
    assert_eq!(statuses["wh-p1"], "applied");
    assert_eq!(statuses["wh-r1"], "ignored");
    // A tampered body is refused and stores nothing.
    let (status, _) =
        qm_tests::shopify_mock::deliver(&url, "wrong-secret", "inventory_levels/update", "wh-x", &body).await;
    assert_eq!(status, 401);
    assert!(!webhook_statuses(&app, &t).await.contains_key("wh-x"));
}

#[tokio::test]
async fn a_periodic_reconciliation_syncs_what_webhooks_missed_and_skips_paused_connectors() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(4, 1, at("2026-11-01T10:00:00Z"));
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    // Each firing is one occurrence (a schedule's jobs are deduplicated per occurrence time).
    let due = async |occurrence: i64| {
        app.make_schedules_due("connector.reconcile", chrono::Duration::minutes(10 * occurrence)).await;
        app.drain_jobs().await;
        app.drain_jobs().await;
    };
    // A level changed and its webhook never came: the scheduled sync brings it in.
    due(2).await;
    let runs = "{ syncRuns(last: 5) { nodes { trigger status } } }";
    let d = app.data(&t.owner_key, runs, json!({})).await;
    assert_eq!(d["syncRuns"]["nodes"], json!([{ "trigger": "schedule", "status": "COMPLETED" }]), "{d}");
    let v = shop.variants.values().next().expect("variant").clone();
    let loc = shop.locations[0].id;
    mock.edit(|s| {
        let l = s.levels.get_mut(&(loc, v.inventory_item_id)).expect("level");
        l.on_hand = 33;
        l.updated_at = at("2026-11-05T10:00:00Z");
    });
    due(3).await;
    assert_eq!(on_hand(&app, &t, &v.sku, loc).await, 33);
    // Paused: the schedule fires but nothing syncs.
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: ConnectorPauseInput!) { connectorPause(input: $i) { userErrors { message } } }",
            json!({ "i": { "id": connector } }),
        )
        .await;
    assert_eq!(d["connectorPause"]["userErrors"], json!([]));
    due(4).await;
    let d = app.data(&t.owner_key, runs, json!({})).await;
    assert_eq!(d["syncRuns"]["nodes"].as_array().map(Vec::len), Some(2), "{d}");
}

/// The GraphQL id of our location linked to shop location `loc` (made for it by the sync).
async fn linked_location(app: &TestApp, t: &TestTenant, loc: u64) -> String {
    let d = app.data(&t.owner_key, "{ locations(first: 10) { nodes { id code } } }", json!({})).await;
    d["locations"]["nodes"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["code"] == format!("shopify-{loc}")))
        .and_then(|l| l["id"].as_str())
        .expect("linked location")
        .to_owned()
}

#[tokio::test]
async fn scenario_8_a_stock_change_made_here_reaches_the_shop_once_even_when_its_answer_is_lost() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(4, 1, at("2026-11-01T10:00:00Z"));
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    assert_eq!(sync(&app, &t, &connector, false).await["status"], "COMPLETED");
    let v = shop.variants.values().next().expect("variant").clone();
    let loc = shop.locations[0].id;
    let start = on_hand(&app, &t, &v.sku, loc).await;
    assert_eq!(start, shop.levels[&(loc, v.inventory_item_id)].on_hand);
    let linked = linked_location(&app, &t, loc).await;

    // A receipt of 5 here; the shop applies it but the answer is lost: the retry (same key)
    // must not apply it again.
    mock.script(&[qm_tests::shopify_mock::Fault::AfterApplying(502)]);
    app.stock(&t.owner_key, &v.sku, &linked, 5).await;
    app.drain_jobs().await;
    assert_eq!(mock.adjustments(), 1, "applied once");
    assert_eq!(mock.shop().levels[&(loc, v.inventory_item_id)].on_hand, start + 5);
    let pushes = mock.seen().into_iter().filter(|s| s.root == "inventoryAdjustQuantities").count();
    assert_eq!(pushes, 2, "sent twice (the lost answer, the retry)");

    // Reading the shop back changes nothing here: both sides agree.
    let movements = mirror(&app, &t).await.movements;
    let run = sync(&app, &t, &connector, false).await;
    assert_eq!(count(&run, "INVENTORY").0, 0, "{run}");
    assert_eq!(on_hand(&app, &t, &v.sku, loc).await, start + 5);
    assert_eq!(mirror(&app, &t).await.movements, movements);

    // An order of ours shipped from the shop's location: the shop's stock drops by what shipped,
    // and reading it back changes nothing here.
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id } userErrors { message } } }",
            json!({ "i": { "externalId": "WEB-1", "locationId": linked, "lines": [{ "sku": v.sku, "quantity": 2 }] } }),
        )
        .await;
    let order = d["orderCreate"]["order"]["id"].as_str().expect("order").to_owned();
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: OrderFulfillInput!) { orderFulfill(input: $i) { userErrors { message } } }",
            json!({ "i": { "id": order } }),
        )
        .await;
    assert_eq!(d["orderFulfill"]["userErrors"], json!([]), "{d}");
    app.drain_jobs().await;
    assert_eq!(mock.adjustments(), 2);
    assert_eq!(mock.shop().levels[&(loc, v.inventory_item_id)].on_hand, start + 3);
    assert_eq!(count(&sync(&app, &t, &connector, false).await, "INVENTORY").0, 0);
    assert_eq!(on_hand(&app, &t, &v.sku, loc).await, start + 3);

    // A change at a location no shop feeds is not sent anywhere.
    let other = app.location(&t.owner_key, "BACKROOM").await;
    app.stock(&t.owner_key, &v.sku, &other, 3).await;
    app.drain_jobs().await;
    assert_eq!(mock.adjustments(), 2);
}

#[tokio::test]
async fn scenario_8_a_count_sets_the_shops_on_hand_and_a_stale_answer_is_recomputed_from_the_shops_new_stock_never_overwritten()
 {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(4, 1, at("2026-11-01T10:00:00Z"));
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    assert_eq!(sync(&app, &t, &connector, false).await["status"], "COMPLETED");
    let v = shop.variants.values().next().expect("variant").clone();
    let loc = shop.locations[0].id;
    let at_shop = || mock.shop().levels[&(loc, v.inventory_item_id)].on_hand;
    let start = on_hand(&app, &t, &v.sku, loc).await;
    assert_eq!(start, at_shop());
    let linked = linked_location(&app, &t, loc).await;
    let count = |on_hand: i64| {
        let (app, t, sku, linked) = (&app, &t, v.sku.clone(), linked.clone());
        async move {
            app.data(
                &t.owner_key,
                "mutation($i: StockCountInput!) { stockCount(input: $i) { stockLevel { onHand } movement { kind deltaOnHand reason } userErrors { code field } } }",
                json!({ "i": { "sku": sku, "locationId": linked, "onHand": on_hand } }),
            )
            .await["stockCount"]
                .clone()
        }
    };

    // A count here sets the shop's on hand from what it had.
    let d = count(start + 7).await;
    assert_eq!(d["movement"], json!({ "kind": "count", "deltaOnHand": 7, "reason": "stock count" }), "{d}");
    assert_eq!(d["stockLevel"]["onHand"], start + 7);
    let next = mock.seen().len();
    app.drain_jobs().await;
    assert_eq!(at_shop(), start + 7);
    let roots: Vec<(String, u16)> = mock.seen()[next..].iter().map(|s| (s.root.clone(), s.status)).collect();
    assert_eq!(roots, [("inventorySetQuantities".to_owned(), 200)]);

    // The shop ships 2 before the next count reaches it: the count's set is stale, the shop is
    // read again and the count recomputed to keep the shipment (counted 4 fewer: start + 3 here,
    // start + 1 there). Its answer is lost once: the retry is not applied twice.
    mock.edit(|s| s.levels.get_mut(&(loc, v.inventory_item_id)).expect("level").on_hand -= 2);
    let d = count(start + 3).await;
    assert_eq!(d["movement"]["deltaOnHand"], -4, "{d}");
    let next = mock.seen().len();
    mock.script_after(next + 2, &[Fault::AfterApplying(502)]);
    app.drain_jobs().await;
    let roots: Vec<(String, u16)> = mock.seen()[next..].iter().map(|s| (s.root.clone(), s.status)).collect();
    assert_eq!(
        roots,
        [
            ("inventorySetQuantities".to_owned(), 200),
            ("inventoryItem".to_owned(), 200),
            ("inventorySetQuantities".to_owned(), 502),
            ("inventorySetQuantities".to_owned(), 200)
        ]
    );
    assert_eq!(at_shop(), start + 1, "the count less what the shop shipped meanwhile, once");
    assert_eq!(mock.adjustments(), 2, "two counts set, nothing else");
    // Reading the shop back brings its shipment here: both sides agree.
    assert_eq!(sync(&app, &t, &connector, false).await["status"], "COMPLETED");
    assert_eq!(on_hand(&app, &t, &v.sku, loc).await, start + 1);

    // A count that matches moves nothing and sends nothing; a negative count is refused.
    let d = count(start + 1).await;
    assert_eq!((&d["movement"], &d["stockLevel"]["onHand"]), (&Value::Null, &json!(start + 1)), "{d}");
    let d = count(-1).await;
    assert_eq!(d["userErrors"], json!([{ "code": "INVALID", "field": ["input", "onHand"] }]));
    let next = mock.seen().len();
    app.drain_jobs().await;
    assert_eq!(mock.seen().len(), next, "nothing sent");
}

#[tokio::test]
async fn a_shop_location_added_later_has_all_its_stock_read_by_the_next_incremental_sync() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let t0 = at("2026-11-01T10:00:00Z");
    let shop = Shop::generate(6, 1, t0);
    let mock = MockShopify::start(shop.clone(), TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    assert_eq!(sync(&app, &t, &connector, false).await["status"], "COMPLETED");
    // The merchant adds a location whose stock was last changed long before the last sync.
    let new_location = shop.locations[0].id + 1;
    mock.edit(|s| {
        s.locations.push(qm_tests::shopify_mock::Location { id: new_location, name: "Outlet".into(), active: true });
        for v in shop.variants.values() {
            s.levels.insert(
                (new_location, v.inventory_item_id),
                qm_tests::shopify_mock::Level { on_hand: 7, committed: 0, updated_at: t0 - chrono::Duration::days(90) },
            );
        }
    });
    let run = sync(&app, &t, &connector, false).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(count(&run, "LOCATIONS").0, 1);
    assert_eq!(mirror(&app, &t).await.on_hand, expected(&mock.shop(), &[]));
    assert_eq!(on_hand(&app, &t, &shop.variants.values().next().expect("variant").sku, new_location).await, 7);
}

#[tokio::test]
async fn a_base_url_into_the_servers_own_network_is_refused_unless_allowed() {
    let app = TestApp::spawn_with(|c| c.connector_allow_private = false).await;
    let t = app.tenant("acme").await;
    let mock = MockShopify::start(Shop::generate(3, 1, at("2026-11-01T10:00:00Z")), TOKEN).await;
    let install = |base_url: String| {
        let (app, key) = (&app, t.owner_key.clone());
        async move {
            app.data(
                &key,
                "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id } userErrors { field message } } }",
                json!({ "i": { "kind": "SHOPIFY", "config": {
                    "shopDomain": "mock.myshopify.com", "accessToken": TOKEN, "apiVersion": "2026-01",
                    "webhookSecret": "whsec-test", "baseUrl": base_url,
                } } }),
            )
            .await
        }
    };
    // An address literal is refused when stored.
    for url in [mock.url.clone(), "http://169.254.169.254/latest".to_owned(), "http://[::1]:8080".to_owned()] {
        let d = install(url.clone()).await;
        let errors = &d["connectorInstall"]["userErrors"];
        assert_eq!(errors[0]["field"], json!(["input", "config", "baseUrl"]), "{url}: {d}");
        assert!(errors[0]["message"].as_str().is_some_and(|m| m.contains("private")), "{d}");
    }
    // A name is checked where it resolves: the run fails at once, nothing reaches the mock.
    let port = mock.url.rsplit(':').next().expect("port").trim_end_matches('/');
    let d = install(format!("http://localhost:{port}")).await;
    assert_eq!(d["connectorInstall"]["userErrors"], json!([]), "{d}");
    let id = d["connectorInstall"]["connector"]["id"].as_str().expect("id").to_owned();
    let run = sync(&app, &t, &id, true).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    assert!(run["error"].as_str().is_some_and(|e| e.contains("private, loopback or link-local")), "{run}");
    assert!(mock.seen().is_empty(), "no request reached the private address");
}

/// On hand and reserved per (SKU, location code), where either is not zero.
async fn holdings(app: &TestApp, tenant: uuid::Uuid) -> BTreeMap<(String, String), (i64, i64)> {
    let s = app.state.db.scoped(tenant, TxMode::Read).await.expect("tx");
    let variants: BTreeMap<_, _> =
        variant::Entity::find().all(&s.tx).await.expect("variants").into_iter().map(|v| (v.id, v.sku)).collect();
    let locations: BTreeMap<_, _> =
        location::Entity::find().all(&s.tx).await.expect("locations").into_iter().map(|l| (l.id, l.code)).collect();
    let levels = stock_level::Entity::find().all(&s.tx).await.expect("levels");
    s.commit().await.expect("commit");
    levels
        .into_iter()
        .filter(|l| l.on_hand != 0 || l.reserved != 0)
        .map(|l| ((variants[&l.variant_id].clone(), locations[&l.location_id].clone()), (l.on_hand, l.reserved)))
        .collect()
}

/// The shop's on hand and committed, keyed as [`holdings`] keys ours.
fn shop_holdings(shop: &Shop) -> BTreeMap<(String, String), (i64, i64)> {
    let sku: BTreeMap<u64, String> = shop.variants.values().map(|v| (v.inventory_item_id, v.sku.clone())).collect();
    shop.levels
        .iter()
        .filter(|(_, l)| l.on_hand != 0 || l.committed != 0)
        .map(|((loc, item), l)| ((sku[item].clone(), format!("shopify-{loc}")), (l.on_hand, l.committed)))
        .collect()
}

/// Our orders by external id: status, and each shipment's carrier and tracking number.
async fn orders_of(app: &TestApp, t: &TestTenant) -> BTreeMap<String, (String, Vec<(Option<String>, Option<String>)>)> {
    use qm_api::db::entities::{order, shipment};
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let orders = order::Entity::find().all(&s.tx).await.expect("orders");
    let shipments = shipment::Entity::find().all(&s.tx).await.expect("shipments");
    s.commit().await.expect("commit");
    orders
        .into_iter()
        .map(|o| {
            let mut sh: Vec<_> = shipments
                .iter()
                .filter(|x| x.order_id == o.id && x.status == "shipped")
                .map(|x| (x.carrier.clone(), x.tracking_number.clone()))
                .collect();
            sh.sort();
            (o.external_id, (o.status, sh))
        })
        .collect()
}

#[tokio::test]
async fn an_order_the_shop_assigns_no_location_is_allocated_where_the_stock_is() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let mut shop = Shop::generate(4, 2, at("2026-11-01T10:00:00Z"));
    let ids: Vec<u64> = shop.variants.keys().copied().collect();
    let unassigned = shop.place_order(0, &[(ids[0], 1), (ids[1], 2)], at("2026-11-01T11:00:00Z"));
    let mock = MockShopify::start(shop, TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    let run = sync(&app, &t, &connector, false).await;
    assert_eq!(count(&run, "ORDERS"), (1, 0, 0), "{run}");
    let id = order_id(&app, &t, &format!("shopify-{unassigned}")).await;
    let d = app
        .data(
            &t.owner_key,
            "query($id: ID!) { node(id: $id) { ... on Order { status location { id } allocation { method parcels lines { locationId } } } } }",
            json!({ "id": id }),
        )
        .await;
    let o = &d["node"];
    assert_eq!(o["status"], "RESERVED", "{d}");
    assert_eq!(o["allocation"]["method"], "EXACT", "{d}");
    assert_eq!(o["allocation"]["lines"].as_array().map(Vec::len), Some(2), "{d}");
    // Each line is reserved where allocation put it, and the order's location is the first's.
    assert_eq!(o["allocation"]["lines"][0]["locationId"], o["location"]["id"], "{d}");
    let reserved: i64 = holdings(&app, t.id).await.values().map(|(_, r)| r).sum();
    assert_eq!(reserved, 3, "both lines held");
    // A later sync keeps the lines where they are.
    mock.edit(|s| s.orders.get_mut(&unassigned).expect("order").updated_at = at("2026-11-02T09:00:00Z"));
    let again = sync(&app, &t, &connector, false).await;
    assert_eq!(count(&again, "ORDERS").2, 0, "{again}");
    let d2 = app
        .data(
            &t.owner_key,
            "query($id: ID!) { node(id: $id) { ... on Order { allocation { lines { locationId } } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(d2["node"]["allocation"]["lines"], o["allocation"]["lines"]);
    assert_eq!(holdings(&app, t.id).await.values().map(|(_, r)| r).sum::<i64>(), 3);
}

#[tokio::test]
async fn orders_flow_in_reserving_what_the_shop_committed_and_their_fulfilments_become_shipments() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let mut shop = Shop::generate(6, 2, at("2026-11-01T10:00:00Z"));
    let ids: Vec<u64> = shop.variants.keys().copied().collect();
    let (here, there) = (shop.locations[0].id, shop.locations[1].id);
    let a = shop.place_order(here, &[(ids[0], 2), (ids[1], 1)], at("2026-11-01T11:00:00Z"));
    let b = shop.place_order(there, &[(ids[2], 1)], at("2026-11-01T11:05:00Z"));
    let mock = MockShopify::start(shop, TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;

    let first = sync(&app, &t, &connector, false).await;
    assert_eq!(first["status"], "COMPLETED", "{first}");
    assert_eq!(count(&first, "ORDERS"), (2, 0, 0), "{first}");
    // Reserved here is what the shop committed, everywhere: available is what it can still sell.
    assert_eq!(holdings(&app, t.id).await, shop_holdings(&mock.shop()));
    let ours = orders_of(&app, &t).await;
    assert_eq!(ours[&format!("shopify-{a}")], ("reserved".to_owned(), vec![]));
    assert_eq!(ours[&format!("shopify-{b}")].0, "reserved");

    // The shop ships part of A with tracking and cancels B.
    mock.edit(|s| {
        s.fulfill(a, 0, None, "1Z999AA10123456784", at("2026-11-02T09:00:00Z"));
        s.cancel(b, at("2026-11-02T09:30:00Z"));
    });
    let second = sync(&app, &t, &connector, false).await;
    assert_eq!(count(&second, "ORDERS"), (2, 0, 0), "{second}");
    assert_eq!(holdings(&app, t.id).await, shop_holdings(&mock.shop()), "the shipment and the release mirrored");
    let ours = orders_of(&app, &t).await;
    assert_eq!(
        ours[&format!("shopify-{a}")],
        ("reserved".to_owned(), vec![(Some("UPS".to_owned()), Some("1Z999AA10123456784".to_owned()))]),
        "one line still to ship"
    );
    assert_eq!(ours[&format!("shopify-{b}")].0, "cancelled");
    let id = order_id(&app, &t, &format!("shopify-{a}")).await;
    let d = app
        .data(
            &t.owner_key,
            "{ shipments(first: 10) { nodes { orderId carrier trackingNumber trackingUrl } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        d["shipments"]["nodes"],
        json!([{ "orderId": id, "carrier": "UPS", "trackingNumber": "1Z999AA10123456784", "trackingUrl": "https://www.ups.com/track?tracknum=1Z999AA10123456784" }]),
        "the shop's tracking, with its page"
    );

    // The rest of A ships: fulfilled, two shipments; a sync with nothing new changes nothing.
    mock.edit(|s| s.fulfill(a, 1, None, "1Z999AA10123456785", at("2026-11-03T09:00:00Z")));
    // B is read again too: it changed within the overlap before the last sync's newest change.
    assert_eq!(count(&sync(&app, &t, &connector, false).await, "ORDERS"), (1, 1, 0));
    let ours = orders_of(&app, &t).await;
    assert_eq!(ours[&format!("shopify-{a}")].0, "fulfilled");
    assert_eq!(ours[&format!("shopify-{a}")].1.len(), 2);
    assert_eq!(holdings(&app, t.id).await, shop_holdings(&mock.shop()));
    let again = sync(&app, &t, &connector, false).await;
    assert_eq!(count(&again, "ORDERS").0, 0, "{again}");
    let full = sync(&app, &t, &connector, true).await;
    assert_eq!(count(&full, "ORDERS"), (0, 2, 0), "a full sync re-reads and finds nothing to change: {full}");
    assert_eq!(orders_of(&app, &t).await.len(), 2, "no duplicates");
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let mut numbers: Vec<(uuid::Uuid, i32)> = qm_api::db::entities::order_line::Entity::find()
        .all(&s.tx)
        .await
        .expect("lines")
        .into_iter()
        .map(|l| (l.order_id, l.line_no))
        .collect();
    s.commit().await.expect("commit");
    numbers.sort();
    let per_order: Vec<i32> = numbers.iter().map(|(_, n)| *n).collect();
    assert_eq!(per_order.len(), 3, "one line of ours per line of theirs");
    assert!(per_order == [0, 1, 0] || per_order == [0, 0, 1], "lines numbered in order: {numbers:?}");

    // The store owns its orders: they are cancelled there, not here.
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: OrderCancelInput!) { orderCancel(input: $i) { userErrors { code message } } }",
            json!({ "i": { "id": id } }),
        )
        .await;
    assert_eq!(d["orderCancel"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
}

/// The GraphQL id of our order with `external_id`.
async fn order_id(app: &TestApp, t: &TestTenant, external_id: &str) -> String {
    let d = app.data(&t.owner_key, "{ orders(first: 50) { nodes { id externalId } } }", json!({})).await;
    d["orders"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|o| o["externalId"] == external_id))
        .and_then(|o| o["id"].as_str())
        .expect("order")
        .to_owned()
}

#[tokio::test]
async fn scenario_10_an_order_shipped_here_becomes_one_fulfilment_in_the_shop_with_its_tracking_even_when_the_answer_is_lost()
 {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let mut shop = Shop::generate(4, 1, at("2026-11-01T10:00:00Z"));
    let ids: Vec<u64> = shop.variants.keys().copied().collect();
    let loc = shop.locations[0].id;
    let a = shop.place_order(loc, &[(ids[0], 2), (ids[1], 1)], at("2026-11-01T11:00:00Z"));
    let mock = MockShopify::start(shop, TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    assert_eq!(count(&sync(&app, &t, &connector, false).await, "ORDERS"), (1, 0, 0));
    let id = order_id(&app, &t, &format!("shopify-{a}")).await;

    // A 3PL ships it; the shop applies the fulfilment but its answer is lost (a 502 after it).
    let fulfill = "mutation($i: OrderFulfillInput!) { orderFulfill(input: $i) { order { status } shipment { carrier trackingNumber trackingUrl } userErrors { code field message } } }";
    let url = "https://www.ups.com/track?tracknum=1ZQM00000001";
    // A tracking URL that is not a web address is refused before anything ships.
    for bad in ["ups.com/track", "javascript:alert(1)", "ftp://ups.com/1Z"] {
        let d = app
            .data(
                &t.owner_key,
                fulfill,
                json!({ "i": { "id": id, "trackingNumber": "1ZQM00000001", "trackingUrl": bad } }),
            )
            .await;
        assert_eq!(d["orderFulfill"]["userErrors"][0]["code"], "INVALID", "{d}");
        assert_eq!(d["orderFulfill"]["userErrors"][0]["field"], json!(["input", "trackingUrl"]), "{d}");
    }
    assert_eq!(orders_of(&app, &t).await[&format!("shopify-{a}")], ("reserved".to_owned(), vec![]), "nothing shipped");
    let next = mock.seen().len();
    mock.script_after(next + 1, &[Fault::AfterApplying(502)]);
    let d = app
        .data(
            &t.owner_key,
            fulfill,
            json!({ "i": { "id": id, "carrier": "UPS", "trackingNumber": "1ZQM00000001", "trackingUrl": url } }),
        )
        .await;
    assert_eq!(d["orderFulfill"]["userErrors"], json!([]), "{d}");
    assert_eq!(d["orderFulfill"]["order"]["status"], "FULFILLED");
    assert_eq!(
        d["orderFulfill"]["shipment"],
        json!({ "carrier": "UPS", "trackingNumber": "1ZQM00000001", "trackingUrl": url })
    );
    for _ in 0..3 {
        app.drain_jobs().await;
        app.make_jobs_due().await;
    }
    let roots: Vec<(String, u16)> = mock.seen()[next..].iter().map(|s| (s.root.clone(), s.status)).collect();
    assert_eq!(
        roots,
        [("order".to_owned(), 200), ("fulfillmentCreate".to_owned(), 502), ("order".to_owned(), 200)],
        "the retry found the shipment instead of sending it again"
    );
    let shop = mock.shop();
    let o = &shop.orders[&a];
    assert_eq!(o.fulfillments.len(), 1, "one fulfilment in the shop");
    let f = &o.fulfillments[0];
    assert_eq!(
        (f.company.as_str(), f.number.as_str(), f.url.as_str()),
        ("UPS", "1ZQM00000001", url),
        "with its tracking"
    );
    assert!(o.lines.iter().all(|l| l.fulfilled == l.quantity), "every line, at its quantity");
    // The shop's levels dropped by the shipment; ours did too: they agree, nothing reserved.
    assert_eq!(holdings(&app, t.id).await, shop_holdings(&shop));

    // The next sync links the shop's fulfilment to our shipment: no second one.
    let after = sync(&app, &t, &connector, false).await;
    assert_eq!(after["status"], "COMPLETED", "{after}");
    assert_eq!(after["problemCount"], 0, "{after}");
    let ours = orders_of(&app, &t).await;
    assert_eq!(
        ours[&format!("shopify-{a}")],
        ("fulfilled".to_owned(), vec![(Some("UPS".to_owned()), Some("1ZQM00000001".to_owned()))])
    );
    assert_eq!(holdings(&app, t.id).await, shop_holdings(&mock.shop()));
}

#[tokio::test]
async fn scenario_6_an_order_update_before_its_create_and_late_copies_end_in_the_newest_state() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(4, 1, at("2026-11-01T10:00:00Z"));
    let ids: Vec<u64> = shop.variants.keys().copied().collect();
    let loc = shop.locations[0].id;
    let mock = MockShopify::start(shop, TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    assert_eq!(sync(&app, &t, &connector, false).await["status"], "COMPLETED");
    let url = format!("{}/webhooks/shopify/{}", app.address, connector.rsplit('/').next().expect("uuid"));
    let deliver = |topic: &'static str, id: &'static str, body: String| {
        let url = url.clone();
        async move { qm_tests::shopify_mock::deliver(&url, "whsec-test", topic, id, &body).await.0 }
    };

    // Placed and edited at once: orders/updated is delivered before orders/create.
    let mut order = 0;
    mock.edit(|s| order = s.place_order(loc, &[(ids[0], 3)], at("2026-11-02T10:00:00Z")));
    let body = |at: &str| qm_tests::shopify_mock::order_body(order, "#1001", at);
    assert_eq!(deliver("orders/updated", "wh-o2", body("2026-11-02T05:00:01-05:00")).await, 200);
    assert_eq!(deliver("orders/create", "wh-o1", body("2026-11-02T05:00:00-05:00")).await, 200);
    app.drain_jobs().await;
    assert_eq!(orders_of(&app, &t).await.len(), 1, "one order for both deliveries");
    assert_eq!(holdings(&app, t.id).await, shop_holdings(&mock.shop()));

    // Shipped; then a late copy of the create arrives: the order stays shipped.
    mock.edit(|s| s.fulfill(order, 0, None, "1Z1", at("2026-11-03T10:00:00Z")));
    assert_eq!(deliver("orders/fulfilled", "wh-o3", body("2026-11-03T05:00:00-05:00")).await, 200);
    assert_eq!(deliver("fulfillments/create", "wh-f1", format!(r#"{{"id":1,"order_id":{order}}}"#)).await, 200);
    assert_eq!(deliver("orders/create", "wh-o1-late", body("2026-11-02T05:00:00-05:00")).await, 200);
    app.drain_jobs().await;
    let ours = orders_of(&app, &t).await;
    assert_eq!(
        ours[&format!("shopify-{order}")],
        ("fulfilled".to_owned(), vec![(Some("UPS".to_owned()), Some("1Z1".to_owned()))])
    );
    // Reserved is released; on hand follows the shop's level (its webhook is the level's own).
    let sku = mock.shop().variants[&ids[0]].sku.clone();
    assert_eq!(holdings(&app, t.id).await[&(sku, format!("shopify-{loc}"))].1, 0);
    let statuses = webhook_statuses(&app, &t).await;
    assert!(
        ["wh-o1", "wh-o2", "wh-o3", "wh-f1", "wh-o1-late"].iter().all(|w| statuses[*w] == "applied"),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn the_demo_with_a_shop_fills_the_demo_tenant_from_the_mock_through_the_api() {
    use qm_api::jobs::worker::{self, Registry, WorkerConfig};
    use qm_tests::shopify_demo;
    let app = TestApp::spawn().await;
    let end = at("2026-11-30T00:00:00Z").date_naive();
    let params = qm_domain::demo::DemoParams { seed: 7, end, days: 30, products: 3 };
    let seeded = qm_api::demo::seed(&app.state.db, &params).await.expect("demo seeded");
    let token =
        app.state.jwt.mint(seeded.tenant_id, "demo-admin", &[Role::Owner], None, Utc::now()).expect("owner token");
    let shop = shopify_demo::shop(60, at("2026-12-01T10:00:00Z"));
    let mock = MockShopify::start(shop.clone(), shopify_demo::TOKEN).await;
    let cfg = WorkerConfig { poll: Duration::from_millis(50), ..WorkerConfig::default() };
    let (stop, workers) = worker::spawn(app.state.clone(), Registry::standard(), cfg);

    let run = shopify_demo::connect(&app.address, &token, &mock, Duration::from_secs(120)).await.expect("connected");
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(count(&run, "CATALOG"), (60, 0, 0), "{run}");
    assert_eq!(count(&run, "ORDERS"), (6, 0, 0), "{run}");
    // The demo tenant holds the shop's stock and commitments beside its own data.
    let ours = holdings(&app, seeded.tenant_id).await;
    for (key, theirs) in shop_holdings(&mock.shop()) {
        assert_eq!(ours.get(&key), Some(&theirs), "{key:?}");
    }
    assert!(ours.len() > shop_holdings(&mock.shop()).len(), "the demo's own stock stays");
    // Run again (a second demo start against a new mock): the connector is pointed at it, not
    // installed twice, and nothing changes.
    let again = shopify_demo::connect(&app.address, &token, &mock, Duration::from_secs(120)).await.expect("again");
    assert_eq!(again["status"], "COMPLETED", "{again}");
    assert_eq!(count(&again, "CATALOG").0, 0, "{again}");
    let _ = stop.send(true);
    workers.await.expect("workers stop");
}

#[tokio::test]
async fn scenario_11_a_return_flows_in_with_its_lines_and_a_refund_without_a_return_restocks_nothing() {
    use qm_api::db::entities::event;
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let mut shop = Shop::generate(4, 1, at("2026-11-01T10:00:00Z"));
    let ids: Vec<u64> = shop.variants.keys().copied().collect();
    let loc = shop.locations[0].id;
    let a = shop.place_order(loc, &[(ids[0], 2), (ids[1], 1)], at("2026-11-01T11:00:00Z"));
    shop.fulfill(a, 0, None, "1Z1", at("2026-11-01T12:00:00Z"));
    shop.fulfill(a, 1, None, "1Z2", at("2026-11-01T12:00:00Z"));
    let sku = shop.variants[&ids[0]].sku.clone();
    let mock = MockShopify::start(shop, TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    assert_eq!(sync(&app, &t, &connector, false).await["status"], "COMPLETED");
    let returns = || async {
        let q = "{ returns(first: 10) { nodes { status reason lines { quantity condition variant { sku } } } } }";
        app.data(&t.owner_key, q, json!({})).await["returns"]["nodes"].clone()
    };
    let received = || async {
        let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
        let n = event::Entity::find()
            .filter(event::Column::EventType.eq("return.received"))
            .all(&s.tx)
            .await
            .expect("events")
            .len();
        s.commit().await.expect("commit");
        n
    };

    // Money back without a return: nothing comes back, nothing is restocked.
    mock.edit(|s| s.refund(a, "5.00", at("2026-11-02T09:00:00Z")));
    let run = sync(&app, &t, &connector, false).await;
    assert_eq!(run["problemCount"], 0, "{run}");
    assert_eq!(returns().await, json!([]));
    assert_eq!(holdings(&app, t.id).await, shop_holdings(&mock.shop()));

    // The customer returns one of the two units of the first line.
    let mut r = 0;
    mock.edit(|s| r = s.request_return(a, &[(0, 1)], at("2026-11-03T09:00:00Z")));
    let run = sync(&app, &t, &connector, false).await;
    assert_eq!(run["problemCount"], 0, "{run}");
    assert_eq!(
        returns().await,
        json!([{ "status": "OPEN", "reason": "defective", "lines": [{ "quantity": 1, "condition": "unknown", "variant": { "sku": sku } }] }])
    );
    assert_eq!(received().await, 0);

    // It arrives and the store restocks it: closed here, announced, on hand back as the shop counts it.
    mock.edit(|s| s.close_return(a, r, true, at("2026-11-04T09:00:00Z")));
    sync(&app, &t, &connector, false).await;
    assert_eq!(returns().await[0]["status"], "CLOSED");
    assert_eq!(received().await, 1);
    assert_eq!(holdings(&app, t.id).await, shop_holdings(&mock.shop()), "the restocked unit, from the shop's level");
    let full = sync(&app, &t, &connector, true).await;
    assert_eq!(full["status"], "COMPLETED", "{full}");
    assert_eq!(returns().await.as_array().map(Vec::len), Some(1), "no duplicate");
    assert_eq!(received().await, 1, "announced once");
}

#[tokio::test]
async fn scenario_2_17_one_tenants_calls_across_its_connectors_stay_within_its_concurrency_cap_and_call_rate() {
    use qm_api::jobs::worker::{self, Registry, WorkerConfig};
    let app = TestApp::spawn_with(|c| {
        c.connector_tenant_concurrency = 2;
        c.connector_tenant_rate = 10;
    })
    .await;
    let t = app.tenant("acme").await;
    let mock = MockShopify::start(Shop::generate(600, 2, at("2026-11-01T10:00:00Z")), TOKEN).await;
    mock.latency(Duration::from_millis(20));
    // Three shops of one tenant, each allowed two calls at once, synced together by one worker.
    let mut runs = Vec::new();
    for n in 0..3 {
        let c = install(&app, &t, &mock, &format!("shop-{n}.myshopify.com")).await;
        runs.push(request(&app, &t, &c, false).await["id"].as_str().expect("run").to_owned());
    }
    let cfg = WorkerConfig { concurrency: 8, poll: Duration::from_millis(20), ..WorkerConfig::default() };
    let (stop, handle) = worker::spawn(app.state.clone(), Registry::standard(), cfg);
    let started = std::time::Instant::now();
    for run in &runs {
        loop {
            let d = app
                .data(
                    &t.owner_key,
                    "query($id: ID!) { node(id: $id) { ... on SyncRun { status } } }",
                    json!({ "id": run }),
                )
                .await;
            if d["node"]["status"] == "COMPLETED" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "the syncs did not finish: {d}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let _ = stop.send(true);
    handle.await.expect("worker stops");
    assert_eq!(mock.max_in_flight(), 2, "three syncs at once, never more than the tenant's two calls");
    // Paced to ten calls a second after a second's worth at once: calls i..=j span at least
    // (j - i + 1 - 10) / 10 seconds (less 50 ms for the network's jitter).
    let times: Vec<std::time::Instant> = mock.seen().iter().map(|s| s.at).collect();
    assert!(times.len() > 30, "{} calls", times.len());
    for i in 0..times.len() {
        for j in i..times.len() {
            let span = (times[j] - times[i]).as_secs_f64() + 0.05;
            let calls = (j - i + 1) as f64;
            assert!(calls <= 10.0 + 10.0 * span, "calls {i}..={j}: {calls} in {span:.3} s");
        }
    }
}

#[tokio::test]
async fn an_order_with_more_lines_than_one_page_is_mirrored_whole() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let mut shop = Shop::generate(130, 1, at("2026-11-01T10:00:00Z"));
    let loc = shop.locations[0].id;
    // 120 lines of variants in stock.
    let lines: Vec<(u64, i64)> = shop
        .variants
        .values()
        .filter(|v| shop.levels[&(loc, v.inventory_item_id)].on_hand > 0)
        .take(120)
        .map(|v| (v.id, 1))
        .collect();
    assert_eq!(lines.len(), 120);
    let a = shop.place_order(loc, &lines, at("2026-11-01T11:00:00Z"));
    let mock = MockShopify::start(shop, TOKEN).await;
    let connector = install(&app, &t, &mock, "mock-shop.myshopify.com").await;
    let run = sync(&app, &t, &connector, false).await;
    assert_eq!((count(&run, "ORDERS"), run["problemCount"].as_u64()), ((1, 0, 0), Some(0)), "{run}");
    // 50 lines with the order, then pages of the rest.
    assert_eq!(mock.seen().iter().filter(|s| s.root == "orderLines").count(), 1);
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let ours = qm_api::db::entities::order_line::Entity::find().all(&s.tx).await.expect("lines");
    s.commit().await.expect("commit");
    assert_eq!(ours.len(), 120, "every line of shopify-{a}");
    assert_eq!(holdings(&app, t.id).await, shop_holdings(&mock.shop()), "all 120 reserved as the shop committed them");
}

#[tokio::test]
async fn an_orders_shipments_and_returns_are_read_on_their_own_as_its_order_carries_them() {
    use std::sync::Arc;

    use qm_connectors::shopify::client::{Client, ClientConfig, ShopLimits, TenantLimits};
    use qm_connectors::source::{OrderSource, ReturnSource, ShipmentSource};
    let mut shop = Shop::generate(4, 1, at("2026-11-01T10:00:00Z"));
    let ids: Vec<u64> = shop.variants.keys().copied().collect();
    let loc = shop.locations[0].id;
    let a = shop.place_order(loc, &[(ids[0], 2), (ids[1], 1)], at("2026-11-01T11:00:00Z"));
    let b = shop.place_order(loc, &[(ids[2], 1)], at("2026-11-01T11:00:00Z"));
    shop.fulfill(a, 0, None, "1Z1", at("2026-11-01T12:00:00Z"));
    shop.fulfill(a, 1, None, "1Z2", at("2026-11-01T13:00:00Z"));
    shop.request_return(a, &[(0, 1)], at("2026-11-02T10:00:00Z"));
    let mock = MockShopify::start(shop, TOKEN).await;
    let mut config = ClientConfig::new("mock-shop.myshopify.com", TOKEN, "2026-01");
    config.base_url = Some(mock.url.clone());
    let limits = Arc::new(ShopLimits::new(2, Arc::new(TenantLimits::new(4, 20))));
    let client = Client::new(reqwest::Client::new(), config, limits);

    let id = format!("gid://shopify/Order/{a}");
    let shipments = client.shipments(&id).await.expect("shipments");
    let numbers: Vec<(Option<&str>, Option<&str>)> =
        shipments.iter().map(|s| (s.tracking[0].number.as_deref(), s.tracking[0].url.as_deref())).collect();
    assert_eq!(
        numbers,
        [
            (Some("1Z1"), Some("https://www.ups.com/track?tracknum=1Z1")),
            (Some("1Z2"), Some("https://www.ups.com/track?tracknum=1Z2"))
        ]
    );
    assert_eq!(shipments[0].location_id, Some(format!("gid://shopify/Location/{loc}")));
    assert_eq!(shipments[1].created_at, Some(at("2026-11-01T13:00:00Z")));
    let returns = client.returns(&id).await.expect("returns");
    assert_eq!(returns.len(), 1);
    assert_eq!(returns[0].lines.iter().map(|l| l.quantity).collect::<Vec<_>>(), [1]);
    // The same as the order read whole carries.
    let order = client.order(&id).await.expect("order").expect("found");
    assert_eq!((order.fulfillments, order.returns), (shipments, returns));

    // An order not shipped has none; an order the shop does not have, none either.
    let unshipped = format!("gid://shopify/Order/{b}");
    assert_eq!(client.shipments(&unshipped).await.expect("shipments"), []);
    assert_eq!(client.returns(&unshipped).await.expect("returns"), []);
    assert_eq!(client.shipments("gid://shopify/Order/999999999").await.expect("shipments"), []);
}

#[tokio::test]
async fn prices_are_set_on_the_shop_and_refused_variants_named() {
    use std::sync::Arc;

    use qm_connectors::ProviderError;
    use qm_connectors::shopify::client::{Client, ClientConfig, ShopLimits, TenantLimits};
    use qm_connectors::source::PriceSink;
    use rust_decimal::Decimal;
    let shop = Shop::generate(4, 1, at("2026-11-01T10:00:00Z"));
    let variants: Vec<(u64, u64)> = shop.variants.values().map(|v| (v.id, v.product_id)).collect();
    let (a, product) = variants[0];
    let other = variants.iter().find(|(_, p)| *p != product).map(|(v, _)| *v).expect("a variant of another product");
    let mock = MockShopify::start(shop, TOKEN).await;
    let mut config = ClientConfig::new("mock-shop.myshopify.com", TOKEN, "2026-01");
    config.base_url = Some(mock.url.clone());
    let limits = Arc::new(ShopLimits::new(2, Arc::new(TenantLimits::new(4, 20))));
    let client = Client::new(reqwest::Client::new(), config, limits);
    let product_gid = format!("gid://shopify/Product/{product}");

    client
        .set_prices(&product_gid, &[(format!("gid://shopify/ProductVariant/{a}"), Decimal::new(1099, 2))])
        .await
        .expect("set");
    assert_eq!(mock.shop().variants[&a].price, "10.99");
    assert_eq!(mock.price_updates(), 1);

    // A variant of another product under this one: refused by field, nothing set.
    let err = client
        .set_prices(
            &product_gid,
            &[
                (format!("gid://shopify/ProductVariant/{a}"), Decimal::new(1299, 2)),
                (format!("gid://shopify/ProductVariant/{other}"), Decimal::new(500, 2)),
            ],
        )
        .await
        .expect_err("refused");
    assert_eq!(err, ProviderError::Permanent("variants.1.id: Product variant does not exist".into()));
    assert_eq!(mock.shop().variants[&a].price, "10.99");
    assert_eq!(mock.price_updates(), 1);
}
