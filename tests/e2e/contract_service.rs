//! Supplier contracts end to end on the demo tenant: a contract proposed, accepted with the
//! supplier's API key and activated; a stock drop fires its rule and issues a purchase order on
//! the terms; the supplier's receiver gets signed webhooks (checked with the `standardwebhooks`
//! reference library when `QM_TEST_PYTHON` has it); the supplier acknowledges and ships, the
//! receipt raises stock; the ledger verifies in the API and offline with the public key alone,
//! and an event altered by raw SQL is named. Also: documents refused with the offending path,
//! what another supplier's key cannot reach, and a simulation that writes nothing.

use chrono::{Duration, Utc};
use qm_api::db::TxMode;
use qm_api::db::entities::{location, stock_level, supplier_item, variant};
use qm_domain::Role;
use qm_domain::demo::DemoParams;
use qm_tests::TestApp;
use qm_tests::receiver::{Receiver, independently_valid};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

const CREATE: &str = "mutation($i: ContractCreateInput!) { contractCreate(input: $i) {
    contract { id name status activeVersion supplier { name } }
    contractVersion { version status documentHash document }
    userErrors { field code message } } }";
const ACCEPT: &str = "mutation($c: ID!) { contractAccept(input: { contractId: $c }) {
    contract { id status } contractVersion { version status acceptedBy } userErrors { field code message } } }";
const ACTIVATE: &str = "mutation($c: ID!) { contractActivate(input: { contractId: $c }) {
    contract { id status activeVersion } contractVersion { version status } userErrors { field code message } } }";
const POS: &str = "{ purchaseOrders(last: 50) { nodes { id number status contractId promisedOn expectedOn
    currencyCode supplier { id } location { id } lines { id quantity receivedQuantity unitCost variant { sku } }
    shipments { carrier trackingNumber } } } }";
const VERIFY: &str = "{ contractLedgerVerify { valid eventsChecked checkpointsChecked headHash brokenSeq
    brokenEventId brokenContractId problem summary } }";

/// A demo tenant with a supplier, one of its SKUs and a location holding it.
struct Demo {
    app: TestApp,
    tenant: Uuid,
    owner: String,
    supplier: Uuid,
    other_supplier: Uuid,
    sku: String,
    location: String,
    location_id: String,
    available: i64,
}

async fn demo() -> Demo {
    let app = TestApp::spawn().await;
    let today = Utc::now().date_naive();
    let params = DemoParams { seed: 5, end: today.pred_opt().expect("yesterday"), days: 120, products: 4 };
    let seeded = qm_api::demo::seed(&app.state.db, &params).await.expect("seed");
    let tenant = seeded.tenant_id;
    let owner = app.state.jwt.mint(tenant, "contracts-owner", &[Role::Owner], None, Utc::now()).expect("token");
    let s = app.state.db.scoped(tenant, TxMode::Read).await.expect("tx");
    let items = supplier_item::Entity::find()
        .filter(supplier_item::Column::TenantId.eq(tenant))
        .order_by_asc(supplier_item::Column::VariantId)
        .all(&s.tx)
        .await
        .expect("items");
    let mut chosen = None;
    for it in &items {
        let level = stock_level::Entity::find()
            .filter(stock_level::Column::TenantId.eq(tenant))
            .filter(stock_level::Column::VariantId.eq(it.variant_id))
            .order_by_desc(stock_level::Column::OnHand)
            .one(&s.tx)
            .await
            .expect("level");
        if let Some(l) = level.filter(|l| l.on_hand - l.reserved >= 30) {
            chosen = Some((it.clone(), l));
            break;
        }
    }
    let (item, level) = chosen.expect("a demo SKU in stock");
    let other_supplier = items.iter().map(|i| i.supplier_id).find(|s| *s != item.supplier_id).expect("two suppliers");
    let v = variant::Entity::find()
        .filter(variant::Column::TenantId.eq(tenant))
        .filter(variant::Column::Id.eq(item.variant_id))
        .one(&s.tx)
        .await
        .expect("variant")
        .expect("exists");
    let loc = location::Entity::find()
        .filter(location::Column::TenantId.eq(tenant))
        .filter(location::Column::Id.eq(level.location_id))
        .one(&s.tx)
        .await
        .expect("location")
        .expect("exists");
    s.commit().await.expect("commit");
    app.drain_jobs().await;
    Demo {
        app,
        tenant,
        owner,
        supplier: item.supplier_id,
        other_supplier,
        sku: v.sku,
        location: loc.code,
        location_id: format!("gid://quartermaster/Location/{}", loc.id),
        available: level.on_hand - level.reserved,
    }
}

fn supplier_gid(id: Uuid) -> String {
    format!("gid://quartermaster/Supplier/{id}")
}

async fn supplier_key(d: &Demo, supplier: Uuid) -> String {
    let r = d
        .app
        .data(
            &d.owner,
            "mutation($s: ID!) { apiKeyCreate(input: { name: \"supplier\", roles: [SUPPLIER], supplierId: $s }) {
                secret userErrors { field message } } }",
            json!({ "s": supplier_gid(supplier) }),
        )
        .await;
    assert_eq!(r["apiKeyCreate"]["userErrors"], json!([]), "{r}");
    r["apiKeyCreate"]["secret"].as_str().expect("secret").to_owned()
}

fn document(d: &Demo, threshold: i64) -> Value {
    let today = Utc::now().date_naive();
    json!({
        "terms": {
            "currency": "USD",
            "items": [{ "sku": d.sku, "unit_price": "7.50",
                        "price_breaks": [{ "min_quantity": 100, "unit_price": "7.00" }],
                        "moq": 24, "pack_size": 12 }],
            "lead_time_days": 7,
            "payment_terms": "net 30",
            "late_penalty": { "percent_per_day": "1", "max_percent": "5" },
            "valid_from": (today - Duration::days(150)).to_string(),
            "valid_to": (today + Duration::days(365)).to_string()
        },
        "rules": [
            { "id": "reorder",
              "when": { "stock_below": { "sku": d.sku, "location": d.location, "units": threshold } },
              "then": { "issue_po": { "sku": d.sku, "location": d.location, "quantity": { "fixed": 100 } } } },
            { "id": "nudge", "when": { "po_unacknowledged": { "hours": 24 } }, "then": { "send_reminder": {} } }
        ]
    })
}

async fn create(d: &Demo, doc: Value) -> Value {
    d.app
        .data(
            &d.owner,
            CREATE,
            json!({ "i": { "supplierId": supplier_gid(d.supplier), "name": "Tees 2027", "document": doc } }),
        )
        .await
}

/// Runs the jobs due now and, once their second has come, the evaluations queued for the next
/// second (not earlier: one evaluation a second sees every change of the second before it).
async fn settle(app: &TestApp) {
    app.drain_jobs().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.drain_jobs().await;
    app.drain_jobs().await;
}

fn verify_offline(export: &Value, key: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("ledger.json");
    std::fs::write(&path, serde_json::to_vec(export).expect("json")).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .args(["contract-ledger-verify", "--public-key", key, "--file"])
        .arg(&path)
        .output()
        .expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn on_hand(app: &TestApp, tenant: Uuid, sku: &str, loc: &str) -> i64 {
    let s = app.state.db.scoped(tenant, TxMode::Read).await.expect("tx");
    let v = qm_api::services::lookup::variant_by_sku(&s, sku).await.expect("q").expect("variant");
    let l = qm_api::services::stock::level(&s, v.id, qm_tests::uuid_of(loc)).await.expect("level");
    s.commit().await.expect("commit");
    l.on_hand
}

/// Rows of the tables a simulation must not write.
async fn counts(app: &TestApp, tenant: Uuid) -> Vec<u64> {
    use qm_api::db::entities::{contract_event, contract_fired, job, purchase_order, stock_movement};
    use sea_orm::PaginatorTrait;
    let s = app.state.db.scoped(tenant, TxMode::Read).await.expect("tx");
    let n = vec![
        purchase_order::Entity::find().filter(purchase_order::Column::TenantId.eq(tenant)).count(&s.tx).await,
        contract_event::Entity::find().filter(contract_event::Column::TenantId.eq(tenant)).count(&s.tx).await,
        job::Entity::find().filter(job::Column::TenantId.eq(tenant)).count(&s.tx).await,
        contract_fired::Entity::find().filter(contract_fired::Column::TenantId.eq(tenant)).count(&s.tx).await,
        stock_movement::Entity::find().filter(stock_movement::Column::TenantId.eq(tenant)).count(&s.tx).await,
    ];
    s.commit().await.expect("commit");
    n.into_iter().map(|c| c.expect("count")).collect()
}

#[tokio::test]
async fn a_stock_drop_fires_the_contract_and_the_supplier_acknowledges_ships_and_the_ledger_verifies() {
    let d = demo().await;
    let app = &d.app;
    let supplier = supplier_key(&d, d.supplier).await;
    let rx = Receiver::start().await;
    let q = "mutation($i: WebhookEndpointCreateInput!) { webhookEndpointCreate(input: $i) {
        endpoint { id supplierId } secret userErrors { field code message } } }";
    let r = app.data(&d.owner, q, json!({ "i": { "url": rx.url, "supplierId": supplier_gid(d.supplier) } })).await;
    assert_eq!(r["webhookEndpointCreate"]["userErrors"], json!([]), "{r}");
    let secret = r["webhookEndpointCreate"]["secret"].as_str().expect("secret").to_owned();

    // Proposed by the tenant, accepted by the supplier, then activated.
    let threshold = d.available - 5;
    let r = create(&d, document(&d, threshold)).await;
    assert_eq!(r["contractCreate"]["userErrors"], json!([]), "{r}");
    let c = r["contractCreate"]["contract"].clone();
    assert_eq!(c["status"], "PROPOSED");
    assert_eq!(r["contractCreate"]["contractVersion"]["status"], "PROPOSED");
    assert_eq!(r["contractCreate"]["contractVersion"]["document"]["terms"]["items"][0]["pack_size"], 12);
    let r = app.data(&d.owner, ACTIVATE, json!({ "c": c["id"] })).await;
    assert_eq!(r["contractActivate"]["userErrors"][0]["field"], json!(["input", "contractId"]), "{r}");
    let r = app.data(&d.owner, ACCEPT, json!({ "c": c["id"] })).await;
    assert_eq!(r["contractAccept"]["userErrors"][0]["code"], "INVALID_STATE", "the tenant cannot accept: {r}");
    let r = app.data(&supplier, ACCEPT, json!({ "c": c["id"] })).await;
    assert_eq!(r["contractAccept"]["userErrors"], json!([]), "{r}");
    assert_eq!(r["contractAccept"]["contractVersion"]["status"], "ACCEPTED");
    let r = app.data(&d.owner, ACTIVATE, json!({ "c": c["id"] })).await;
    assert_eq!(r["contractActivate"]["userErrors"], json!([]), "{r}");
    assert_eq!(r["contractActivate"]["contract"]["status"], "ACTIVE");
    assert_eq!(r["contractActivate"]["contract"]["activeVersion"], 1);
    settle(app).await;
    let contract_pos = |v: &Value| -> Vec<Value> {
        v["purchaseOrders"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|p| p["contractId"] == c["id"])
            .cloned()
            .collect()
    };
    assert!(contract_pos(&app.data(&d.owner, POS, json!({})).await).is_empty(), "stock is above the threshold");

    // Stock falls below the threshold: the rule fires once and orders 100 units in the terms:
    // 108 (whole packs of 12) at the 100-unit break's price.
    app.stock(&d.owner, &d.sku, &d.location_id, -10).await;
    settle(app).await;
    let pos = contract_pos(&app.data(&d.owner, POS, json!({})).await);
    assert_eq!(pos.len(), 1, "{pos:?}");
    let po = pos[0].clone();
    assert_eq!(po["status"], "ISSUED");
    let line = po["lines"][0].clone();
    let quantity = line["quantity"].as_i64().expect("quantity");
    assert_eq!(quantity, 108, "{po}");
    assert_eq!(line["unitCost"], "7", "{po}");
    assert_eq!(line["variant"]["sku"], d.sku.as_str());
    assert_eq!(po["currencyCode"], "USD");
    // The condition stays true: evaluating again, or a further drop, orders nothing more.
    let r = app.data(&d.owner, "mutation { contractEvaluate { fired { rule action } } }", json!({})).await;
    assert_eq!(r["contractEvaluate"]["fired"], json!([]), "{r}");
    app.stock(&d.owner, &d.sku, &d.location_id, -1).await;
    settle(app).await;
    assert_eq!(contract_pos(&app.data(&d.owner, POS, json!({})).await).len(), 1);

    // The supplier's receiver: signed deliveries of its own events only.
    let got = rx.received();
    let types: Vec<String> = got
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).expect("json")["type"].as_str().expect("type").to_owned())
        .collect();
    for t in
        ["contract.proposed", "contract.accepted", "contract.activated", "contract.triggered", "purchase_order.issued"]
    {
        assert!(types.iter().any(|x| x == t), "{t} not delivered: {types:?}");
    }
    assert!(!types.iter().any(|t| t.starts_with("stock.")), "tenant events reach the supplier: {types:?}");
    assert!(got.iter().all(|r| independently_valid(&secret, r)));
    if let Some(verified) = qm_tests::receiver::reference_library_verifies(&secret, &got) {
        assert_eq!(verified, types);
    }

    // The supplier acknowledges and ships; the tenant receives; stock rises by what arrived.
    let promised = (Utc::now().date_naive() + Duration::days(6)).to_string();
    let r = app
        .data(
            &supplier,
            "mutation($p: ID!, $d: NaiveDate!) { purchaseOrderAcknowledge(input: { id: $p, promisedOn: $d }) {
                purchaseOrder { status promisedOn } userErrors { field code message } } }",
            json!({ "p": po["id"], "d": promised }),
        )
        .await;
    assert_eq!(r["purchaseOrderAcknowledge"]["userErrors"], json!([]), "{r}");
    assert_eq!(r["purchaseOrderAcknowledge"]["purchaseOrder"]["status"], "ACKNOWLEDGED");
    let notify = "mutation($p: ID!, $l: ID!, $q: Int!) { shipmentNotify(input: { purchaseOrderId: $p,
        lines: [{ lineId: $l, quantity: $q }], carrier: \"UPS\", trackingNumber: \"1Z999\" }) {
        purchaseOrder { status shipments { carrier trackingNumber } } shipment { id } userErrors { field code message } } }";
    let r = app.data(&supplier, notify, json!({ "p": po["id"], "l": line["id"], "q": quantity + 1 })).await;
    assert_eq!(r["shipmentNotify"]["userErrors"][0]["field"], json!(["input", "lines", "0", "quantity"]), "{r}");
    let r = app.data(&supplier, notify, json!({ "p": po["id"], "l": line["id"], "q": quantity })).await;
    assert_eq!(r["shipmentNotify"]["userErrors"], json!([]), "{r}");
    assert_eq!(r["shipmentNotify"]["purchaseOrder"]["status"], "SHIPPED");
    let again = app.data(&supplier, notify, json!({ "p": po["id"], "l": line["id"], "q": quantity })).await;
    assert_eq!(again["shipmentNotify"]["shipment"]["id"], r["shipmentNotify"]["shipment"]["id"], "a retried notice");
    let before = on_hand(app, d.tenant, &d.sku, &d.location_id).await;
    let r = app
        .data(
            &d.owner,
            "mutation($p: ID!, $l: ID!, $q: Int!) { purchaseOrderReceive(input: { purchaseOrderId: $p,
                lines: [{ lineId: $l, quantity: $q }] }) { purchaseOrder { status } userErrors { message } } }",
            json!({ "p": po["id"], "l": line["id"], "q": quantity }),
        )
        .await;
    assert_eq!(r["purchaseOrderReceive"]["userErrors"], json!([]), "{r}");
    assert_eq!(r["purchaseOrderReceive"]["purchaseOrder"]["status"], "RECEIVED");
    assert_eq!(on_hand(app, d.tenant, &d.sku, &d.location_id).await, before + quantity);
    settle(app).await;

    // Every step is on the ledger, which verifies; the supplier reads its contract's events.
    let r = app
        .data(
            &supplier,
            "query($c: ID) { contractEvents(contractId: $c, first: 50) { nodes { seq kind } } }",
            json!({ "c": c["id"] }),
        )
        .await;
    let kinds: Vec<&str> = r["contractEvents"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        ["created", "accepted", "activated", "triggered", "po_issued", "acknowledged", "shipped", "received"],
        "{r}"
    );
    // The firing is on the ledger with what the rule read: the stock position at that moment.
    let r = app
        .data(
            &d.owner,
            "query($c: ID) { contractEvents(contractId: $c, first: 50) { nodes { kind data } } }",
            json!({ "c": c["id"] }),
        )
        .await;
    let triggered = r["contractEvents"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|e| e["kind"] == "triggered")
        .expect("triggered")
        .clone();
    let position = &triggered["data"]["inputs"]["position"];
    assert_eq!(position["available"], d.available - 10, "{triggered}");
    assert_eq!(triggered["data"]["rule"], "reorder");
    assert_eq!(triggered["data"]["effect"]["quantity"], 108);
    let v = app.data(&d.owner, VERIFY, json!({})).await;
    assert_eq!(v["contractLedgerVerify"]["valid"], true, "{v}");
    assert_eq!(v["contractLedgerVerify"]["eventsChecked"], 8, "{v}");
    assert!(v["contractLedgerVerify"]["checkpointsChecked"].as_i64() >= Some(1), "{v}");

    // Offline, with the public key alone.
    let key = app.data(&supplier, "{ contractSigningKey { algorithm publicKey format } }", json!({})).await;
    let public_key = key["contractSigningKey"]["publicKey"].as_str().expect("key").to_owned();
    assert_eq!(key["contractSigningKey"]["algorithm"], "Ed25519");
    let export = app.data(&d.owner, "{ contractLedgerExport }", json!({})).await["contractLedgerExport"].clone();
    assert_eq!(export["format"], "qm.contract-ledger.v1");
    let (code, out) = verify_offline(&export, &public_key);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK: 8 events"), "{out}");

    // One row altered by raw SQL: the check names that event, in the API and offline.
    let issued = export["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "po_issued")
        .expect("po_issued")
        .clone();
    let sql = format!(
        "UPDATE contract_events SET data = REPLACE(data, '\"quantity\":{quantity}', '\"quantity\":{}') WHERE seq = {}",
        quantity * 10,
        issued["seq"]
    );
    let changed =
        app.owner_db.conn().execute_raw(Statement::from_string(app.owner_db.backend(), sql)).await.expect("tamper");
    assert_eq!(changed.rows_affected(), 1);
    let v = app.data(&d.owner, VERIFY, json!({})).await;
    let v = &v["contractLedgerVerify"];
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["brokenSeq"], issued["seq"], "{v}");
    assert_eq!(v["brokenEventId"], issued["id"], "{v}");
    assert_eq!(v["brokenContractId"], c["id"], "{v}");
    assert_eq!(v["problem"], "HASH_MISMATCH", "{v}");
    let export = app.data(&d.owner, "{ contractLedgerExport }", json!({})).await["contractLedgerExport"].clone();
    let (code, out) = verify_offline(&export, &public_key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("event {} ({})", issued["seq"], issued["id"].as_str().expect("id"))), "{out}");
}

#[tokio::test]
async fn documents_are_refused_with_the_path_of_the_offending_element() {
    let d = demo().await;
    let mut unknown = document(&d, 10);
    unknown["rules"][0]["when"]["stock_below"]["colour"] = json!("red");
    let mut wrong_type = document(&d, 10);
    wrong_type["terms"]["lead_time_days"] = json!("seven");
    let mut uncovered = document(&d, 10);
    uncovered["rules"][0]["when"]["stock_below"]["sku"] = json!("NOT-IN-TERMS");
    let mut cycle = document(&d, 10);
    cycle["rules"] = json!([
        { "id": "a", "when": { "rule_fired": { "rule": "b" } }, "then": { "send_reminder": {} } },
        { "id": "b", "when": { "rule_fired": { "rule": "a" } }, "then": { "send_reminder": {} } }
    ]);
    let mut no_location = document(&d, 10);
    no_location["rules"][0]["then"]["issue_po"]["location"] = json!("NOWHERE");
    for (doc, field, code) in [
        (unknown, json!(["input", "document", "rules", "0", "when", "stock_below", "colour"]), "INVALID"),
        (wrong_type, json!(["input", "document", "terms", "lead_time_days"]), "INVALID"),
        (uncovered, json!(["input", "document", "rules", "0", "when", "stock_below", "sku"]), "INVALID"),
        (cycle, json!(["input", "document", "rules", "0", "when"]), "INVALID"),
        (no_location, json!(["input", "document", "rules", "0", "then", "issue_po", "location"]), "NOT_FOUND"),
    ] {
        let r = create(&d, doc).await;
        let errors = &r["contractCreate"]["userErrors"];
        assert_eq!(errors[0]["field"], field, "{r}");
        assert_eq!(errors[0]["code"], code, "{r}");
        assert!(r["contractCreate"]["contract"].is_null());
    }
    let r = d.app.data(&d.owner, "{ contracts(first: 5) { nodes { id } } }", json!({})).await;
    assert_eq!(r["contracts"]["nodes"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_supplier_key_reaches_only_its_own_contracts_and_orders() {
    let d = demo().await;
    let app = &d.app;
    let own = supplier_key(&d, d.supplier).await;
    let other = supplier_key(&d, d.other_supplier).await;
    let r = create(&d, document(&d, d.available - 5)).await;
    let c = r["contractCreate"]["contract"]["id"].clone();
    assert_eq!(app.data(&own, ACCEPT, json!({ "c": c })).await["contractAccept"]["userErrors"], json!([]));
    app.data(&d.owner, ACTIVATE, json!({ "c": c })).await;
    app.stock(&d.owner, &d.sku, &d.location_id, -10).await;
    settle(app).await;
    let own_pos = app.data(&own, POS, json!({})).await;
    let po = own_pos["purchaseOrders"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|p| p["contractId"] == c)
        .expect("the contract's order")
        .clone();
    assert!(
        own_pos["purchaseOrders"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .all(|p| p["supplier"]["id"] == supplier_gid(d.supplier).as_str())
    );

    // The other supplier's key: nothing of it, and every action refused as not found.
    let r = app.data(&other, "{ contracts(first: 10) { nodes { id } } }", json!({})).await;
    assert_eq!(r["contracts"]["nodes"], json!([]));
    let r = app
        .data(
            &other,
            "query($c: ID!) { contract(id: $c) { id } contractVersions(contractId: $c) { version } }",
            json!({ "c": c }),
        )
        .await;
    assert_eq!((r["contract"].clone(), r["contractVersions"].clone()), (Value::Null, Value::Null), "{r}");
    let r = app
        .data(
            &other,
            "query($c: ID) { contractEvents(contractId: $c, first: 10) { nodes { seq } } }",
            json!({ "c": c }),
        )
        .await;
    assert_eq!(r["contractEvents"]["nodes"], json!([]), "{r}");
    let r = app.data(&other, POS, json!({})).await;
    assert!(r["purchaseOrders"]["nodes"].as_array().expect("nodes").iter().all(|p| p["id"] != po["id"]), "{r}");
    for id in [&po["id"], &c] {
        let r = app.data(&other, "query($p: ID!) { node(id: $p) { id } }", json!({ "p": id })).await;
        assert_eq!(r["node"], Value::Null);
        let r = app.data(&own, "query($p: ID!) { node(id: $p) { id } }", json!({ "p": id })).await;
        assert_eq!(&r["node"]["id"], id, "its own supplier's key refetches it");
    }
    let r = app.data(&other, ACCEPT, json!({ "c": c })).await;
    assert_eq!(r["contractAccept"]["userErrors"][0]["code"], "NOT_FOUND", "{r}");
    for (m, field) in [
        (
            "mutation($p: ID!) { x: purchaseOrderAcknowledge(input: { id: $p, promisedOn: \"2099-01-01\" }) { userErrors { field code } } }",
            json!(["input", "id"]),
        ),
        (
            "mutation($p: ID!) { x: purchaseOrderReject(input: { id: $p, reason: \"no\" }) { userErrors { field code } } }",
            json!(["input", "id"]),
        ),
        (
            "mutation($p: ID!) { x: shipmentNotify(input: { purchaseOrderId: $p, lines: [{ lineId: $p, quantity: 1 }], carrier: \"UPS\", trackingNumber: \"T\" }) { userErrors { field code } } }",
            json!(["input", "purchaseOrderId"]),
        ),
    ] {
        let r = app.data(&other, m, json!({ "p": po["id"] })).await;
        assert_eq!(r["x"]["userErrors"][0]["code"], "NOT_FOUND", "{m}: {r}");
        assert_eq!(r["x"]["userErrors"][0]["field"], field, "{m}: {r}");
    }
    // Its ledger export shows its own contract's events and only the place of the others'
    // (the other supplier's contract here), and verifies offline with the public key.
    let r = create(&d, document(&d, 1)).await;
    let c2 = r["contractCreate"]["contract"]["id"].clone();
    let s = app.state.db.scoped(d.tenant, TxMode::Write).await.expect("tx");
    {
        use qm_api::db::entities::contract;
        use sea_orm::sea_query::Expr;
        contract::Entity::update_many()
            .col_expr(contract::Column::SupplierId, Expr::value(d.other_supplier))
            .filter(contract::Column::TenantId.eq(d.tenant))
            .filter(contract::Column::Id.eq(qm_tests::uuid_of(c2.as_str().expect("id"))))
            .exec(&s.tx)
            .await
            .expect("moved to the other supplier");
    }
    s.commit().await.expect("commit");
    settle(app).await;
    let export = app.data(&own, "{ contractLedgerExport contractSigningKey { publicKey } }", json!({})).await;
    let key = export["contractSigningKey"]["publicKey"].as_str().expect("key").to_owned();
    let export = export["contractLedgerExport"].clone();
    let events = export["events"].as_array().expect("events");
    let c_uuid = c.as_str().expect("id").rsplit('/').next().expect("uuid");
    let c2_uuid = c2.as_str().expect("id").rsplit('/').next().expect("uuid");
    assert!(events.iter().any(|e| e["contract_id"] == c_uuid && e["data"].is_object()));
    let hidden: Vec<&Value> = events.iter().filter(|e| e["redacted"] == true).collect();
    assert!(!hidden.is_empty(), "the other contract's events are in the chain, redacted");
    assert!(hidden.iter().all(|e| e["data"].is_null() && e["kind"] == "redacted"));
    assert!(!export.to_string().contains(c2_uuid), "nothing of the other contract shows");
    let (code, out) = verify_offline(&export, &key);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("of other parties, redacted"), "{out}");
    let theirs = app.data(&other, "{ contractLedgerExport }", json!({})).await;
    assert!(!theirs.to_string().contains(c_uuid), "{theirs}");

    // Nor any tenant data outside its contracts: the ledger check, simulations, other events, writes.
    let today = Utc::now().date_naive();
    for q in [
        VERIFY.to_owned(),
        "{ contractEvents(first: 10) { nodes { seq } } }".to_owned(),
        format!(
            "{{ contractSimulate(contractId: \"{}\", from: \"{}\", to: \"{today}\") {{ version }} }}",
            c.as_str().expect("id"),
            today - Duration::days(30)
        ),
        "mutation { contractEvaluate { fired { rule } } }".to_owned(),
        "{ products(first: 1) { nodes { id } } }".to_owned(),
        "{ webhookEndpoints(first: 1) { nodes { id } } }".to_owned(),
    ] {
        let (_, body) = app.gql(&own, &q, json!({})).await;
        let code = body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default().to_owned();
        assert!(code == "FORBIDDEN" || code == "BAD_USER_INPUT", "{q}: {body}");
    }
    let (_, body) = app
        .gql(
            &own,
            CREATE,
            json!({ "i": { "supplierId": supplier_gid(d.supplier), "name": "x", "document": document(&d, 1) } }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    // A tenant viewer may not answer for the supplier; only the supplier's key or an operator.
    let viewer = app.state.jwt.mint(d.tenant, "viewer", &[Role::Viewer], None, Utc::now()).expect("token");
    let (_, body) = app
        .gql(
            &viewer,
            "mutation($p: ID!) { purchaseOrderReject(input: { id: $p, reason: \"no\" }) { userErrors { code } } }",
            json!({ "p": po["id"] }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn a_simulation_over_the_demo_history_lists_the_orders_and_writes_nothing() {
    let d = demo().await;
    let app = &d.app;
    // A threshold the demo's stock crosses as the recorded demand runs it down.
    let r = create(&d, document(&d, d.available)).await;
    assert_eq!(r["contractCreate"]["userErrors"], json!([]), "{r}");
    let c = r["contractCreate"]["contract"]["id"].clone();
    let before = counts(app, d.tenant).await;
    let today = Utc::now().date_naive();
    let q = "query($c: ID!, $f: NaiveDate!, $t: NaiveDate!) { contractSimulate(contractId: $c, from: $f, to: $t) {
        version purchaseOrdersTotal unitsOrdered valueOrdered
        actions { on rule action purchaseOrderNumber sku locationCode quantity unitPrice value dueOn } } }";
    let vars =
        json!({ "c": c, "f": (today - Duration::days(60)).to_string(), "t": today.pred_opt().expect("d").to_string() });
    let r = app.data(&d.owner, q, vars.clone()).await;
    let sim = &r["contractSimulate"];
    assert_eq!(sim["version"], 1, "the proposed version simulates before it is active: {r}");
    let actions = sim["actions"].as_array().expect("actions");
    let orders: Vec<&Value> = actions.iter().filter(|a| a["action"] == "issue_po").collect();
    assert!(!orders.is_empty(), "60 days of demand cross the threshold: {r}");
    assert_eq!(sim["purchaseOrdersTotal"].as_u64(), Some(orders.len() as u64));
    for o in &orders {
        let q = o["quantity"].as_i64().expect("quantity");
        assert!(q >= 24 && q % 12 == 0, "{o}");
        assert_eq!(o["sku"], d.sku.as_str());
        assert_eq!(o["locationCode"], d.location.as_str());
    }
    // Deterministic, and nothing was written.
    assert_eq!(app.data(&d.owner, q, vars).await, r);
    assert_eq!(counts(app, d.tenant).await, before);
    let (_, body) = app
        .gql(&d.owner, q, json!({ "c": c, "f": today.to_string(), "t": (today - Duration::days(1)).to_string() }))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
}

/// Moves a purchase order's issue and promised dates into the past, as time passing would.
async fn age_po(app: &TestApp, tenant: Uuid, po: &Value, issued_hours_ago: i64, promised_days_ago: Option<i64>) {
    use qm_api::db::entities::purchase_order;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let s = app.state.db.scoped(tenant, TxMode::Write).await.expect("tx");
    let id = qm_tests::uuid_of(po["id"].as_str().expect("id"));
    let m = purchase_order::Entity::find()
        .filter(purchase_order::Column::TenantId.eq(tenant))
        .filter(purchase_order::Column::Id.eq(id))
        .one(&s.tx)
        .await
        .expect("po")
        .expect("exists");
    let mut am: purchase_order::ActiveModel = m.into();
    am.issued_at = Set(Some(Utc::now() - Duration::hours(issued_hours_ago)));
    if let Some(days) = promised_days_ago {
        am.promised_on = Set(Some(Utc::now().date_naive() - Duration::days(days)));
    }
    am.update(&s.tx).await.expect("aged");
    s.commit().await.expect("commit");
}

/// Moves when a rule last fired into the past.
async fn age_firing(app: &TestApp, tenant: Uuid, rule: &str, hours_ago: i64) {
    use qm_api::db::entities::contract_fired;
    use sea_orm::sea_query::Expr;
    let s = app.state.db.scoped(tenant, TxMode::Write).await.expect("tx");
    contract_fired::Entity::update_many()
        .col_expr(contract_fired::Column::FiredAt, Expr::value(Utc::now() - Duration::hours(hours_ago)))
        .filter(contract_fired::Column::TenantId.eq(tenant))
        .filter(contract_fired::Column::RuleId.eq(rule))
        .exec(&s.tx)
        .await
        .expect("aged");
    s.commit().await.expect("commit");
}

async fn evaluate(app: &TestApp, token: &str) -> Vec<(String, String)> {
    let r = app.data(token, "mutation { contractEvaluate { fired { rule action purchaseOrderId } } }", json!({})).await;
    r["contractEvaluate"]["fired"]
        .as_array()
        .expect("fired")
        .iter()
        .map(|f| (f["rule"].as_str().expect("rule").to_owned(), f["action"].as_str().expect("action").to_owned()))
        .collect()
}

#[tokio::test]
async fn time_passing_reminds_escalates_cancels_and_penalises_under_the_rules() {
    let d = demo().await;
    let app = &d.app;
    let supplier = supplier_key(&d, d.supplier).await;
    let rx = Receiver::start().await;
    let q = "mutation($i: WebhookEndpointCreateInput!) { webhookEndpointCreate(input: $i) { secret userErrors { message } } }";
    let r = app.data(&d.owner, q, json!({ "i": { "url": rx.url, "supplierId": supplier_gid(d.supplier) } })).await;
    let secret = r["webhookEndpointCreate"]["secret"].as_str().expect("secret").to_owned();
    let mut doc = document(&d, d.available + 1);
    doc["rules"] = json!([
        doc["rules"][0].clone(),
        { "id": "nudge", "when": { "po_unacknowledged": { "hours": 24 } }, "then": { "send_reminder": {} } },
        { "id": "escalate", "when": { "rule_fired": { "rule": "nudge", "hours": 24 } },
          "then": { "escalate": { "email": "buyer@shop.example" } } },
        { "id": "give_up", "when": { "po_unacknowledged": { "hours": 96 } }, "then": { "cancel": {} } },
        { "id": "late", "when": { "shipment_late": { "days": 1 } }, "then": { "apply_late_penalty": {} } }
    ]);
    let r = create(&d, doc).await;
    assert_eq!(r["contractCreate"]["userErrors"], json!([]), "{r}");
    let c = r["contractCreate"]["contract"]["id"].clone();
    app.data(&supplier, ACCEPT, json!({ "c": c })).await;
    app.data(&d.owner, ACTIVATE, json!({ "c": c })).await;
    // Stock is below the threshold from the start: activation's evaluation orders.
    settle(app).await;
    let contract_pos = |v: &Value| -> Vec<Value> {
        v["purchaseOrders"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|p| p["contractId"] == c)
            .cloned()
            .collect()
    };
    let first = contract_pos(&app.data(&d.owner, POS, json!({})).await);
    assert_eq!(first.len(), 1, "{first:?}");
    let po = first[0].clone();
    assert_eq!(evaluate(app, &d.owner).await, vec![], "nothing more while the order is fresh");

    // A day without an acknowledgement: one reminder; a day after it: one escalation.
    age_po(app, d.tenant, &po, 30, None).await;
    assert_eq!(evaluate(app, &d.owner).await, vec![("nudge".to_owned(), "remind".to_owned())]);
    assert_eq!(evaluate(app, &d.owner).await, vec![], "reminded once");
    age_firing(app, d.tenant, "nudge", 25).await;
    assert_eq!(evaluate(app, &d.owner).await, vec![("escalate".to_owned(), "escalate".to_owned())]);
    // Four days: the order is cancelled; the next evaluation orders again.
    age_po(app, d.tenant, &po, 100, None).await;
    assert_eq!(evaluate(app, &d.owner).await, vec![("give_up".to_owned(), "cancel".to_owned())]);
    assert_eq!(evaluate(app, &d.owner).await, vec![("reorder".to_owned(), "issue_po".to_owned())]);
    let all = contract_pos(&app.data(&d.owner, POS, json!({})).await);
    let cancelled = all.iter().find(|p| p["id"] == po["id"]).expect("first order");
    assert_eq!(cancelled["status"], "CANCELLED", "{cancelled}");
    let second = all.iter().find(|p| p["id"] != po["id"]).expect("second order").clone();

    // The second is acknowledged, then its promised date passes by three days: 3 % of its value.
    let promised = Utc::now().date_naive().to_string();
    let r = app
        .data(
            &supplier,
            "mutation($p: ID!, $d: NaiveDate!) { purchaseOrderAcknowledge(input: { id: $p, promisedOn: $d }) { userErrors { message } } }",
            json!({ "p": second["id"], "d": promised }),
        )
        .await;
    assert_eq!(r["purchaseOrderAcknowledge"]["userErrors"], json!([]), "{r}");
    age_po(app, d.tenant, &second, 1, Some(3)).await;
    assert_eq!(evaluate(app, &d.owner).await, vec![("late".to_owned(), "penalty".to_owned())]);
    let r = app
        .data(
            &d.owner,
            "query($p: ID!) { node(id: $p) { ... on PurchaseOrder { penaltyAmount status } } }",
            json!({ "p": second["id"] }),
        )
        .await;
    // 108 units at 7.00 = 756.00; 3 % = 22.68.
    assert_eq!(r["node"]["penaltyAmount"], "22.68", "{r}");
    settle(app).await;

    // The supplier was told of each, by signed webhook.
    let got = rx.received();
    let types: Vec<String> = got
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).expect("json")["type"].as_str().expect("type").to_owned())
        .collect();
    for t in ["purchase_order.reminder", "purchase_order.cancelled", "purchase_order.penalty_applied"] {
        assert_eq!(types.iter().filter(|x| *x == t).count(), 1, "{t}: {types:?}");
    }
    assert!(got.iter().all(|r| independently_valid(&secret, r)));
    let v = app.data(&d.owner, VERIFY, json!({})).await;
    assert_eq!(v["contractLedgerVerify"]["valid"], true, "{v}");
}

#[tokio::test]
async fn an_approved_plan_line_is_ordered_under_the_contract_instead_of_its_draft() {
    let d = demo().await;
    let app = &d.app;
    let plan = app
        .data(
            &d.owner,
            "{ replenishmentPlan { id lines { id kind status sku quantity location { id code } supplier { id } } } }",
            json!({}),
        )
        .await;
    let line = plan["replenishmentPlan"]["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["kind"] == "BUY" && l["status"] == "PROPOSED" && !l["supplier"].is_null())
        .expect("the demo's plan buys something")
        .clone();
    let supplier = qm_tests::uuid_of(line["supplier"]["id"].as_str().expect("supplier"));
    let (sku, code) = (line["sku"].as_str().expect("sku"), line["location"]["code"].as_str().expect("code"));
    let today = Utc::now().date_naive();
    let doc = json!({
        "terms": {
            "currency": "USD",
            "items": [{ "sku": sku, "unit_price": "3.00", "pack_size": 5 }],
            "lead_time_days": 10,
            "valid_from": (today - Duration::days(1)).to_string(),
            "valid_to": (today + Duration::days(90)).to_string()
        },
        "rules": [{ "id": "from_plan", "when": { "plan_line_approved": { "sku": sku } },
                    "then": { "issue_po": { "sku": sku, "location": code, "quantity": "from_plan" } } }]
    });
    let r = app
        .data(
            &d.owner,
            CREATE,
            json!({ "i": { "supplierId": supplier_gid(supplier), "name": "Plan", "document": doc } }),
        )
        .await;
    assert_eq!(r["contractCreate"]["userErrors"], json!([]), "{r}");
    let c = r["contractCreate"]["contract"]["id"].clone();
    let key = supplier_key(&d, supplier).await;
    app.data(&key, ACCEPT, json!({ "c": c })).await;
    app.data(&d.owner, ACTIVATE, json!({ "c": c })).await;
    settle(app).await;

    // Approving the line makes its draft order; the contract orders it on its terms instead.
    let r = app
        .data(
            &d.owner,
            "mutation($r: ID!, $l: ID!) { replenishmentPlanApprove(input: { runId: $r, lineIds: [$l] }) {
                purchaseOrders { id status } userErrors { field code message } } }",
            json!({ "r": plan["replenishmentPlan"]["id"], "l": line["id"] }),
        )
        .await;
    assert_eq!(r["replenishmentPlanApprove"]["userErrors"], json!([]), "{r}");
    let draft = r["replenishmentPlanApprove"]["purchaseOrders"][0]["id"].clone();
    settle(app).await;
    let ours: Vec<Value> = app.data(&d.owner, POS, json!({})).await["purchaseOrders"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|p| p["contractId"] == c)
        .cloned()
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    let wanted = line["quantity"].as_i64().expect("quantity");
    let ordered = ours[0]["lines"][0]["quantity"].as_i64().expect("quantity");
    assert_eq!(ordered, (wanted + 4) / 5 * 5, "the plan's quantity in whole packs of 5");
    assert_eq!(ours[0]["lines"][0]["unitCost"], "3");
    let r = app
        .data(
            &d.owner,
            "query($p: ID!) { node(id: $p) { ... on PurchaseOrder { status statusReason lines { id } } } }",
            json!({ "p": draft }),
        )
        .await;
    assert_eq!(r["node"]["lines"], json!([]), "{r}");
    assert_eq!(r["node"]["status"], "CANCELLED", "{r}");
    assert!(
        r["node"]["statusReason"].as_str().is_some_and(|s| s.contains(ours[0]["number"].as_str().expect("n"))),
        "{r}"
    );
    let plan = app.data(&d.owner, "{ replenishmentPlan { lines { id purchaseOrderId } } }", json!({})).await;
    let now = plan["replenishmentPlan"]["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["id"] == line["id"])
        .expect("line")
        .clone();
    assert_eq!(now["purchaseOrderId"], ours[0]["id"], "the line points at the contract's order");
    let again = app.data(&d.owner, "mutation { contractEvaluate { fired { rule } } }", json!({})).await;
    assert_eq!(again["contractEvaluate"]["fired"], json!([]));
}
