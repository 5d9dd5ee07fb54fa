//! Stock changes: idempotency, concurrency and the tamper-evident ledger.

use futures_util::future::join_all;
use qm_tests::TestApp;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;

const ADJUST: &str = "mutation($i: StockAdjustInput!) { stockAdjust(input: $i) { stockLevel { onHand available } movement { id seq } userErrors { field code message } } }";

#[tokio::test]
async fn the_same_idempotency_key_applies_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let loc = app.location(&t.owner_key, "WH1").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    let input =
        json!({ "i": { "sku": "TEE-1", "locationId": loc, "delta": 7, "reason": "count", "idempotencyKey": "k-1" } });
    let first = app.data(&t.owner_key, ADJUST, input.clone()).await;
    let second = app.data(&t.owner_key, ADJUST, input).await;
    assert_eq!(first["stockAdjust"]["movement"], second["stockAdjust"]["movement"]);
    assert_eq!(second["stockAdjust"]["stockLevel"]["onHand"], 7);
    let d = app.data(&t.owner_key, "{ stockMovements(first: 10) { nodes { seq deltaOnHand } } }", json!({})).await;
    assert_eq!(d["stockMovements"]["nodes"], json!([{ "seq": 1, "deltaOnHand": 7 }]));
    // The same key for a different change is refused, and changes nothing.
    let other = json!({ "i": { "sku": "TEE-1", "locationId": loc, "delta": 9, "idempotencyKey": "k-1" } });
    let d = app.data(&t.owner_key, ADJUST, other).await;
    assert_eq!(d["stockAdjust"]["userErrors"][0]["code"], "IDEMPOTENCY_KEY_REUSED");
    let d = app.data(&t.owner_key, "{ stockLevels(first: 5) { nodes { onHand } } }", json!({})).await;
    assert_eq!(d["stockLevels"]["nodes"], json!([{ "onHand": 7 }]));
}

#[tokio::test]
async fn concurrent_retries_with_one_key_still_apply_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let loc = app.location(&t.owner_key, "WH1").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    let input = json!({ "i": { "sku": "TEE-1", "locationId": loc, "delta": 3, "idempotencyKey": "same" } });
    let results = join_all((0..10).map(|_| app.gql(&t.owner_key, ADJUST, input.clone()))).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["data"]["stockAdjust"]["userErrors"], json!([]), "{body}");
    }
    let d = app
        .data(
            &t.owner_key,
            "{ stockLevels(first: 5) { nodes { onHand } } stockMovements(first: 50) { nodes { seq } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["stockLevels"]["nodes"], json!([{ "onHand": 3 }]));
    assert_eq!(d["stockMovements"]["nodes"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn stock_never_goes_negative_through_adjustments() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let loc = app.location(&t.owner_key, "WH1").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    app.stock(&t.owner_key, "TEE-1", &loc, 5).await;
    let d = app.data(&t.owner_key, ADJUST, json!({ "i": { "sku": "TEE-1", "locationId": loc, "delta": -6 } })).await;
    assert_eq!(d["stockAdjust"]["userErrors"][0]["code"], "INSUFFICIENT_STOCK");
    let d = app.data(&t.owner_key, ADJUST, json!({ "i": { "sku": "TEE-1", "locationId": loc, "delta": -5 } })).await;
    assert_eq!(d["stockAdjust"]["stockLevel"]["onHand"], 0);
}

#[tokio::test]
async fn transfers_move_stock_between_locations_atomically() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let (a, b) = (app.location(&t.owner_key, "A").await, app.location(&t.owner_key, "B").await);
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    app.stock(&t.owner_key, "TEE-1", &a, 10).await;
    let q = "mutation($i: StockTransferInput!) { stockTransfer(input: $i) { from { onHand } to { onHand } userErrors { code field } } }";
    let input = json!({ "i": { "sku": "TEE-1", "fromLocationId": a, "toLocationId": b, "quantity": 4, "idempotencyKey": "t1" } });
    let d = app.data(&t.owner_key, q, input.clone()).await;
    assert_eq!(d["stockTransfer"]["from"]["onHand"], 6);
    assert_eq!(d["stockTransfer"]["to"]["onHand"], 4);
    let again = app.data(&t.owner_key, q, input).await;
    assert_eq!(again["stockTransfer"]["from"]["onHand"], 6, "a retried transfer applies once");
    let d = app
        .data(
            &t.owner_key,
            q,
            json!({ "i": { "sku": "TEE-1", "fromLocationId": a, "toLocationId": b, "quantity": 7 } }),
        )
        .await;
    assert_eq!(d["stockTransfer"]["userErrors"][0]["code"], "INSUFFICIENT_STOCK");
    let d = app.data(&t.owner_key, "{ ledgerVerify { ok checked } }", json!({})).await;
    assert_eq!(d["ledgerVerify"], json!({ "ok": true, "checked": 3 }));
}

#[tokio::test]
async fn ledger_verify_finds_a_movement_altered_by_raw_sql() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let loc = app.location(&t.owner_key, "WH1").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    for delta in [5, 3, -2, 4] {
        app.stock(&t.owner_key, "TEE-1", &loc, delta).await;
    }
    let d = app.data(&t.owner_key, "{ ledgerVerify { ok checked firstBrokenSeq } }", json!({})).await;
    assert_eq!(d["ledgerVerify"], json!({ "ok": true, "checked": 4, "firstBrokenSeq": null }));
    // Someone with database access edits the third movement.
    let backend = if app.is_postgres() { DbBackend::Postgres } else { DbBackend::Sqlite };
    let sql = format!("UPDATE stock_movements SET delta_on_hand = 50 WHERE seq = 3 AND tenant_id = '{}'", t.id);
    let sql =
        if app.is_postgres() { sql } else { sql.replace(&format!("'{}'", t.id), &format!("X'{}'", t.id.simple())) };
    let changed = app.owner_db.conn().execute_raw(Statement::from_string(backend, sql)).await.expect("raw update");
    assert_eq!(changed.rows_affected(), 1);
    let d = app.data(&t.owner_key, "{ ledgerVerify { ok firstBrokenSeq problem } }", json!({})).await;
    assert_eq!(d["ledgerVerify"], json!({ "ok": false, "firstBrokenSeq": 3, "problem": "HASH_MISMATCH" }));
}
