//! Replenishment end to end on the demo tenant: forecast → plan → approve → purchase orders issued
//! and received, transfers shipped and received, with stock, ledger and events.

use qm_domain::demo::DemoParams;
use qm_tests::{TestApp, TestTenant};
use serde_json::{Value, json};

const PLAN: &str = "query($id: ID) { replenishmentPlan(runId: $id) { id status method seriesTotal linesTotal shortTotal
    lines { id kind status sku quantity unitCost cost expectedServiceLevel reason explanation
            location { id } fromLocation { id } supplier { id } purchaseOrderId transferId } } }";

async fn demo(app: &TestApp) -> (TestTenant, usize) {
    demo_of(app, 120).await
}

/// The demo tenant with `days` days of history up to yesterday, and its number of series.
async fn demo_of(app: &TestApp, days: u32) -> (TestTenant, usize) {
    let today = chrono::Utc::now().date_naive();
    let params = DemoParams { seed: 5, end: today.pred_opt().expect("yesterday"), days, products: 5 };
    let seeded = qm_api::demo::seed(&app.state.db, &params).await.expect("seed");
    (TestTenant { id: seeded.tenant_id, slug: "demo".into(), owner_key: String::new() }, seeded.variants * 3)
}

async fn on_hand(app: &TestApp, token: &str, sku: &str, loc: &str) -> i64 {
    let d = app
        .data(
            token,
            "query($s: String!) { variantBySku(sku: $s) { stockLevels { onHand location { id } } } }",
            json!({ "s": sku }),
        )
        .await;
    d["variantBySku"]["stockLevels"]
        .as_array()
        .expect("levels")
        .iter()
        .find(|l| l["location"]["id"] == loc)
        .map_or(0, |l| l["onHand"].as_i64().expect("onHand"))
}

async fn adjust(app: &TestApp, token: &str, sku: &str, loc: &str, delta: i64) {
    let d = app
        .data(
            token,
            "mutation($s: String!, $l: ID!, $d: Int!) { stockAdjust(input: { sku: $s, locationId: $l, delta: $d, reason: \"test\" }) { userErrors { message } } }",
            json!({ "s": sku, "l": loc, "d": delta }),
        )
        .await;
    assert_eq!(d["stockAdjust"]["userErrors"], json!([]), "{d}");
}

/// The demo's first SKU with 5,000 more units at the first location and none at the second:
/// (sku, full location, empty location).
async fn full_and_empty(app: &TestApp, token: &str) -> (String, String, String) {
    let d = app
        .data(
            token,
            "{ locations(first: 10) { nodes { id } } products(first: 1) { nodes { variants { sku } } } }",
            json!({}),
        )
        .await;
    let locs: Vec<String> = d["locations"]["nodes"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_owned())
        .collect();
    let sku = d["products"]["nodes"][0]["variants"][0]["sku"].as_str().expect("sku").to_owned();
    let (full, empty) = (locs[0].clone(), locs[1].clone());
    adjust(app, token, &sku, &full, 5000).await;
    let have = on_hand(app, token, &sku, &empty).await;
    if have > 0 {
        adjust(app, token, &sku, &empty, -have).await;
    }
    (sku, full, empty)
}

async fn plan(app: &TestApp, token: &str) -> Value {
    plan_as(app, token, PLAN).await
}

/// Runs a plan and reads it with `query`.
async fn plan_as(app: &TestApp, token: &str, query: &str) -> Value {
    let d = app
        .data(
            token,
            "mutation { replenishmentRun { replenishmentRun { id status } userErrors { message } } }",
            json!({}),
        )
        .await;
    let id = d["replenishmentRun"]["replenishmentRun"]["id"].as_str().expect("run").to_owned();
    app.drain_jobs().await;
    let d = app.data(token, query, json!({ "id": id })).await;
    d["replenishmentPlan"].clone()
}

#[tokio::test]
async fn forecast_plan_approve_issue_receive_and_transfer() {
    let app = TestApp::spawn().await;
    let (t, series) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    // The seeded forecast run completes and queues the first plan.
    app.drain_jobs().await;
    let d = app.data(&token, PLAN, json!({ "id": null })).await;
    let first = &d["replenishmentPlan"];
    assert_eq!(first["status"], "COMPLETED", "{d}");
    assert_eq!(first["seriesTotal"].as_u64(), Some(series as u64));

    // One SKU: plenty at one location, none at another.
    let (sku, _full, empty) = full_and_empty(&app, &token).await;

    // Targets: 95 % by default, 99 % for class A, 80 % for this SKU.
    let settings = "mutation($i: ReplenishmentSettingsSetInput!) { replenishmentSettingsSet(input: $i) {
        replenishmentSettings { serviceLevelKind targetServiceLevel classATarget classBTarget transferUnitCost skuTargets { sku targetServiceLevel } }
        userErrors { field code } } }";
    let bad = app.data(&token, settings, json!({ "i": { "targetServiceLevel": 1.5 } })).await;
    assert_eq!(
        bad["replenishmentSettingsSet"]["userErrors"][0]["field"],
        json!(["input", "targetServiceLevel"]),
        "{bad}"
    );
    let d = app
        .data(
            &token,
            settings,
            json!({ "i": { "targetServiceLevel": 0.95, "classATarget": 0.99, "transferUnitCost": "0.40" } }),
        )
        .await;
    let got = &d["replenishmentSettingsSet"]["replenishmentSettings"];
    assert_eq!(
        (got["serviceLevelKind"].as_str(), got["classATarget"].as_f64(), got["classBTarget"].is_null()),
        (Some("FILL_RATE"), Some(0.99), true),
        "{d}"
    );
    assert_eq!(got["transferUnitCost"], "0.4");
    let d = app
        .data(
            &token,
            "mutation($s: String!) { replenishmentSkuTargetSet(input: { sku: $s, targetServiceLevel: 0.8 }) { replenishmentSettings { skuTargets { sku targetServiceLevel } } userErrors { code } } }",
            json!({ "s": sku }),
        )
        .await;
    assert_eq!(
        d["replenishmentSkuTargetSet"]["replenishmentSettings"]["skuTargets"],
        json!([{ "sku": sku, "targetServiceLevel": 0.8 }]),
        "{d}"
    );

    let run = plan(&app, &token).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    for l in run["lines"].as_array().expect("lines") {
        let e = &l["explanation"];
        let want = if l["sku"] == sku.as_str() {
            (0.8, "sku".to_owned())
        } else if e["abcClass"] == "A" {
            (0.99, "class A".to_owned())
        } else {
            (0.95, "tenant".to_owned())
        };
        assert_eq!(
            (e["targetServiceLevel"].as_f64(), e["targetFrom"].as_str().map(str::to_owned)),
            (Some(want.0), Some(want.1)),
            "{l}"
        );
        if l["kind"] == "TRANSFER" {
            assert_eq!(l["unitCost"], "0.4", "{l}");
        }
    }
    let lines = run["lines"].as_array().expect("lines").clone();
    assert_eq!(run["linesTotal"].as_u64(), Some(lines.len() as u64));
    assert!(!lines.is_empty(), "{run}");
    for l in &lines {
        // Every line explains its quantity.
        let e = &l["explanation"];
        let reason = l["reason"].as_str().expect("reason");
        assert!(reason.starts_with("Order-up-to "), "{l}");
        // The days the forecast is summed over: the supplier's lead time (each day counted with
        // the chance it falls within it when the lead time spreads) and the review.
        let (lead, sd) = (e["leadTimeMeanDays"].as_f64().expect("lead"), e["leadTimeStdDevDays"].as_f64().expect("sd"));
        assert!(lead > 0.0 && e["reviewDays"].as_f64() == Some(1.0), "{l}");
        let said = if sd > 0.0 {
            format!("a lead time of {lead} ± {sd} days, each day counted")
        } else {
            format!("a lead time of {lead} days")
        };
        assert!(reason.contains(&said), "{said:?} in {reason}");
        let need = e["need"].as_i64().expect("need");
        let q = l["quantity"].as_i64().expect("quantity");
        assert!(q > 0 && need > 0, "{l}");
        assert_eq!(
            e["orderUpTo"].as_i64().expect("S") - e["position"]["total"].as_i64().expect("position"),
            need,
            "{l}"
        );
        if l["kind"] == "BUY" {
            assert!(l["supplier"]["id"].is_string() && l["fromLocation"].is_null(), "{l}");
            assert!(q >= e["moq"].as_i64().expect("moq"), "{l}");
            assert_eq!(q % e["packSize"].as_i64().expect("pack"), 0, "{l}");
        }
        // A line that covers its need expects at least its target fill rate; one that falls short
        // expects less, possibly nothing for the cycle.
        let sl = l["expectedServiceLevel"].as_f64().expect("level");
        assert!((0.0..=1.0).contains(&sl), "{l}");
        if e["shortfall"].as_i64() == Some(0) {
            assert!(sl >= e["targetServiceLevel"].as_f64().expect("target") - 1e-9, "{l}");
        }
        // What arrives at the SKU × location covers its need, or the plan says it falls short;
        // the line states what the whole plan does there: bought, moved in and out, and the
        // position that leaves; a purchase says what else comes by transfer and what goes on.
        let sum = |f: &dyn Fn(&Value) -> bool| -> i64 {
            lines.iter().filter(|o| o["sku"] == l["sku"] && f(o)).map(|o| o["quantity"].as_i64().expect("q")).sum()
        };
        let here = l["location"]["id"].clone();
        let bought = sum(&|o| o["location"]["id"] == here && o["kind"] == "BUY");
        let moved_in = sum(&|o| o["location"]["id"] == here && o["kind"] == "TRANSFER");
        let moved_out = sum(&|o| o["kind"] == "TRANSFER" && o["fromLocation"]["id"] == here);
        assert!(bought + moved_in >= need || e["shortfall"].as_i64() > Some(0), "{l}");
        let p = &e["plan"];
        assert_eq!(
            (p["bought"].as_i64(), p["transferredIn"].as_i64(), p["transferredOut"].as_i64()),
            (Some(bought), Some(moved_in), Some(moved_out)),
            "{l}"
        );
        let position = e["position"]["total"].as_i64().expect("position");
        assert_eq!(p["positionAfter"].as_i64(), Some(position + bought + moved_in - moved_out), "{l}");
        if l["kind"] == "BUY" {
            let reason = l["reason"].as_str().expect("reason");
            assert_eq!(reason.contains("more come"), moved_in > 0, "{l}");
            assert_eq!(reason.contains("on by transfer"), moved_out > 0, "{l}");
        }
    }
    // The empty location gets the SKU moved from a location with spare stock, not bought.
    let to_empty: Vec<&Value> = lines.iter().filter(|l| l["sku"] == sku && l["location"]["id"] == empty).collect();
    assert!(to_empty.iter().any(|l| l["kind"] == "TRANSFER"), "{to_empty:?}");
    assert!(!to_empty.iter().any(|l| l["kind"] == "BUY"), "{to_empty:?}");

    // Approve everything: draft purchase orders per supplier and location, draft transfers.
    let approve = "mutation($id: ID!) { replenishmentPlanApprove(input: { runId: $id }) {
        purchaseOrders { id number status lines { id quantity receivedQuantity variant { sku } } location { id } }
        transfers { id status quantity replenishmentRunId fromLocation { id } toLocation { id } variant { sku } }
        userErrors { field code message } } }";
    let d = app.data(&token, approve, json!({ "id": run["id"] })).await;
    let a = &d["replenishmentPlanApprove"];
    assert!(a["transfers"].as_array().is_some_and(|ts| ts.iter().all(|t| t["replenishmentRunId"] == run["id"])), "{d}");
    assert_eq!(a["userErrors"], json!([]), "{d}");
    let pos = a["purchaseOrders"].as_array().expect("pos").clone();
    let transfers = a["transfers"].as_array().expect("transfers").clone();
    let buys = lines.iter().filter(|l| l["kind"] == "BUY").count();
    let po_lines: usize = pos.iter().map(|p| p["lines"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(po_lines, buys);
    assert!(pos.iter().all(|p| p["status"] == "DRAFT"));
    assert_eq!(transfers.len(), lines.len() - buys);
    assert_eq!(app.events(t.id, "transfer.created").await.len(), transfers.len());
    // Runs, lines and transfers refetch through node(id:).
    let d = app
        .data(
            &token,
            "query($r: ID!, $l: ID!, $t: ID!) { r: node(id: $r) { ... on ReplenishmentRun { status } } l: node(id: $l) { ... on ReplenishmentLine { status } } t: node(id: $t) { ... on Transfer { status } } }",
            json!({ "r": run["id"], "l": lines[0]["id"], "t": transfers[0]["id"] }),
        )
        .await;
    assert_eq!(
        (d["r"]["status"].as_str(), d["l"]["status"].as_str(), d["t"]["status"].as_str()),
        (Some("COMPLETED"), Some("APPROVED"), Some("DRAFT")),
        "{d}"
    );
    // Approving again makes nothing new.
    let again = app.data(&token, approve, json!({ "id": run["id"] })).await;
    assert_eq!(again["replenishmentPlanApprove"]["purchaseOrders"], a["purchaseOrders"]);
    assert_eq!(app.events(t.id, "transfer.created").await.len(), transfers.len());

    // Planning again right away orders nothing for what was approved: open orders count.
    let rerun = plan(&app, &token).await;
    for l in rerun["lines"].as_array().expect("lines") {
        let same = lines.iter().any(|o| o["sku"] == l["sku"] && o["location"]["id"] == l["location"]["id"]);
        assert!(!same, "ordered again: {l}");
    }
    // Every run is listed, the latest last.
    let d = app.data(&token, "{ replenishmentRuns(last: 10) { nodes { id status requestedBy } } }", json!({})).await;
    let runs = d["replenishmentRuns"]["nodes"].as_array().expect("runs");
    assert_eq!(runs.len(), 3, "{d}");
    assert_eq!(runs[0]["requestedBy"], "forecast");
    assert_eq!(runs[2]["id"], rerun["id"]);
    // The old plan can no longer be approved.
    let stale = app.data(&token, approve, json!({ "id": run["id"] })).await;
    assert_eq!(stale["replenishmentPlanApprove"]["userErrors"][0]["code"], "INVALID_STATE", "{stale}");

    // Issue a purchase order: once, with its event.
    let po = &pos[0];
    let issue = "mutation($id: ID!) { purchaseOrderIssue(input: { id: $id }) { purchaseOrder { status expectedOn issuedAt } userErrors { code } } }";
    let d = app.data(&token, issue, json!({ "id": po["id"] })).await;
    assert_eq!(d["purchaseOrderIssue"]["purchaseOrder"]["status"], "ISSUED", "{d}");
    assert!(d["purchaseOrderIssue"]["purchaseOrder"]["expectedOn"].is_string());
    app.data(&token, issue, json!({ "id": po["id"] })).await;
    let issued = app.events(t.id, "purchase_order.issued").await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["number"], po["number"]);

    // Receive part of the first line, twice with one key: stock rises once, with a ledger entry.
    let line = &po["lines"][0];
    let (line_sku, loc) = (line["variant"]["sku"].as_str().expect("sku"), po["location"]["id"].as_str().expect("loc"));
    let before = on_hand(&app, &token, line_sku, loc).await;
    let part = (line["quantity"].as_i64().expect("q") / 2).max(1);
    let receive = "mutation($po: ID!, $line: ID!, $q: Int!, $k: String) { purchaseOrderReceive(input: { purchaseOrderId: $po, lines: [{ lineId: $line, quantity: $q }], idempotencyKey: $k }) { purchaseOrder { status lines { receivedQuantity } } userErrors { field code message } } }";
    for _ in 0..2 {
        let d = app.data(&token, receive, json!({ "po": po["id"], "line": line["id"], "q": part, "k": "rcv-1" })).await;
        assert_eq!(d["purchaseOrderReceive"]["userErrors"], json!([]), "{d}");
    }
    assert_eq!(on_hand(&app, &token, line_sku, loc).await, before + part);
    // Announced once, with what this receipt brought and the line's total.
    let received = app.events(t.id, "purchase_order.received").await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(
        (&received[0]["purchaseOrderId"], &received[0]["status"], &received[0]["lines"]),
        (
            &po["id"],
            &json!("partially_received"),
            &json!([{ "lineId": line["id"], "sku": line_sku, "quantity": part, "receivedQuantity": part, "orderedQuantity": line["quantity"] }])
        )
    );
    let d = app
        .data(
            &token,
            "query($l: ID!) { stockMovements(locationId: $l, first: 250) { nodes { kind reason deltaOnHand } } }",
            json!({ "l": loc }),
        )
        .await;
    let receipts: Vec<&Value> =
        d["stockMovements"]["nodes"].as_array().expect("movements").iter().filter(|m| m["kind"] == "receipt").collect();
    assert_eq!(receipts.len(), 1, "{d}");
    // More than is open is refused and changes nothing.
    let open = line["quantity"].as_i64().expect("q") - part;
    let d = app.data(&token, receive, json!({ "po": po["id"], "line": line["id"], "q": open + 1, "k": null })).await;
    assert_eq!(d["purchaseOrderReceive"]["userErrors"][0]["code"], "INVALID", "{d}");
    // The rest of every line: received.
    let rest: Vec<Value> = po["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .enumerate()
        .map(|(i, l)| json!({ "lineId": l["id"], "quantity": l["quantity"].as_i64().expect("q") - if i == 0 { part } else { 0 } }))
        .filter(|l| l["quantity"].as_i64() > Some(0))
        .collect();
    let d = app
        .data(
            &token,
            "mutation($po: ID!, $lines: [PurchaseOrderReceiveLineInput!]!) { purchaseOrderReceive(input: { purchaseOrderId: $po, lines: $lines }) { purchaseOrder { status } userErrors { message } } }",
            json!({ "po": po["id"], "lines": rest }),
        )
        .await;
    assert_eq!(d["purchaseOrderReceive"]["purchaseOrder"]["status"], "RECEIVED", "{d}");
    let received = app.events(t.id, "purchase_order.received").await;
    assert_eq!((received.len(), &received[1]["status"]), (2, &json!("received")), "{received:?}");
    assert_eq!(received[1]["lines"].as_array().map(Vec::len), Some(rest.len()));

    // Ship and receive the transfer to the empty location.
    let tr = transfers
        .iter()
        .find(|t| t["toLocation"]["id"] == empty && t["variant"]["sku"] == sku)
        .expect("a transfer to the empty location");
    let from = tr["fromLocation"]["id"].as_str().expect("from");
    let q = tr["quantity"].as_i64().expect("q");
    let src_before = on_hand(&app, &token, &sku, from).await;
    let receive_t =
        "mutation($id: ID!) { transferReceive(input: { id: $id }) { transfer { status } userErrors { code } } }";
    let d = app.data(&token, receive_t, json!({ "id": tr["id"] })).await;
    assert_eq!(d["transferReceive"]["userErrors"][0]["code"], "INVALID_STATE", "not shipped yet: {d}");
    let ship =
        "mutation($id: ID!) { transferShip(input: { id: $id }) { transfer { status shippedAt } userErrors { code } } }";
    for _ in 0..2 {
        let d = app.data(&token, ship, json!({ "id": tr["id"] })).await;
        assert_eq!(d["transferShip"]["transfer"]["status"], "IN_TRANSIT", "{d}");
    }
    assert_eq!(on_hand(&app, &token, &sku, from).await, src_before - q);
    for _ in 0..2 {
        let d = app.data(&token, receive_t, json!({ "id": tr["id"] })).await;
        assert_eq!(d["transferReceive"]["transfer"]["status"], "RECEIVED", "{d}");
    }
    assert_eq!(on_hand(&app, &token, &sku, &empty).await, q);
    // Each move announced once, with the run that planned it.
    for (event, at) in [("transfer.shipped", "shippedAt"), ("transfer.received", "receivedAt")] {
        let told = app.events(t.id, event).await;
        assert_eq!(told.len(), 1, "{event}: {told:?}");
        assert_eq!(
            (&told[0]["transferId"], &told[0]["quantity"], &told[0]["replenishmentRunId"]),
            (&tr["id"], &tr["quantity"], &run["id"]),
            "{event}"
        );
        assert!(told[0][at].is_string(), "{event}: {told:?}");
    }
}

/// The buy lines of a plan from one supplier: (sku, quantity, unit cost, cost, reason).
fn buys_from(plan: &Value, supplier: &str) -> Vec<(String, i64, f64, f64, String)> {
    let num = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or_else(|| panic!("a decimal: {v}"));
    plan["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["kind"] == "BUY" && l["supplier"]["id"] == supplier)
        .map(|l| {
            (
                l["sku"].as_str().expect("sku").to_owned(),
                l["quantity"].as_i64().expect("quantity"),
                num(&l["unitCost"]),
                num(&l["cost"]),
                l["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn supplier_budgets_capacities_and_price_breaks_shape_the_plan() {
    let app = TestApp::spawn().await;
    let (t, _) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    app.drain_jobs().await;
    let first = plan(&app, &token).await;
    assert_eq!(first["status"], "COMPLETED", "{first}");
    // The supplier the plan spends most with.
    let d = app
        .data(
            &token,
            "{ suppliers(first: 20) { nodes { id name email leadTimeMeanDays leadTimeStdDevDays currencyCode orderLineCost planBudget planCapacityUnits
                items { variant { sku } unitCost moq packSize priceBreaks { minQuantity unitCost } } } } }",
            json!({}),
        )
        .await;
    let suppliers = d["suppliers"]["nodes"].as_array().expect("suppliers").clone();
    let spend = |plan: &Value, id: &str| buys_from(plan, id).iter().map(|b| b.3).sum::<f64>();
    let sup = suppliers
        .iter()
        .max_by(|a, b| {
            spend(&first, a["id"].as_str().expect("id")).total_cmp(&spend(&first, b["id"].as_str().expect("id")))
        })
        .expect("a supplier")
        .clone();
    let sup_id = sup["id"].as_str().expect("id").to_owned();
    let before = buys_from(&first, &sup_id);
    let spent = spend(&first, &sup_id);
    assert!(before.len() >= 2 && spent > 0.0, "the demo plan buys from {}: {first}", sup["name"]);
    assert_eq!((sup["orderLineCost"].as_str(), sup["planBudget"].is_null()), (Some("0"), true), "{sup}");

    let upsert = "mutation($i: SupplierUpsertInput!) { supplierUpsert(input: $i) {
        supplier { planBudget planCapacityUnits orderLineCost items { variant { sku } unitCost priceBreaks { minQuantity unitCost } } }
        userErrors { field code message } } }";
    let terms = |extra: Value| {
        let mut i = json!({
            "id": sup_id, "name": sup["name"], "email": sup["email"], "leadTimeMeanDays": sup["leadTimeMeanDays"],
            "leadTimeStdDevDays": sup["leadTimeStdDevDays"], "currencyCode": sup["currencyCode"],
        });
        for (k, v) in extra.as_object().expect("an object") {
            i[k] = v.clone();
        }
        json!({ "i": i })
    };

    // A budget: the plan spends no more with this supplier, and says which lines fell short.
    let budget = (spent / 2.0).floor();
    let d = app.data(&token, upsert, terms(json!({ "planBudget": budget.to_string() }))).await;
    assert_eq!(d["supplierUpsert"]["userErrors"], json!([]), "{d}");
    assert_eq!(d["supplierUpsert"]["supplier"]["planBudget"], budget.to_string());
    let limited = plan(&app, &token).await;
    let after = spend(&limited, &sup_id);
    assert!(after <= budget + 1e-9 && after > 0.0, "spent {after} of a {budget} budget (was {spent})");
    assert!(buys_from(&limited, &sup_id).iter().any(|b| b.4.contains("short of the target within")), "{limited}");

    // A capacity in units instead.
    let units: i64 = before.iter().map(|b| b.1).sum();
    let cap = units / 3;
    app.data(&token, upsert, terms(json!({ "planCapacityUnits": cap }))).await;
    let capped = plan(&app, &token).await;
    let ordered: i64 = buys_from(&capped, &sup_id).iter().map(|b| b.1).sum();
    assert!(ordered <= cap && ordered > 0, "ordered {ordered} units of a {cap} capacity (was {units})");

    // A price break at the quantity the plan buys halves the price of that line.
    let (sku, qty, unit, _, _) = before.iter().find(|b| b.1 >= 2).expect("a line of two or more units").clone();
    let item = sup["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["variant"]["sku"] == sku.as_str())
        .expect("the item")
        .clone();
    let cheap = format!("{:.2}", unit / 2.0);
    let with_break = json!({ "items": [{
        "sku": sku, "unitCost": item["unitCost"], "moq": item["moq"], "packSize": item["packSize"],
        "priceBreaks": [{ "minQuantity": qty, "unitCost": cheap }],
    }] });
    let d = app.data(&token, upsert, terms(with_break)).await;
    assert_eq!(d["supplierUpsert"]["userErrors"], json!([]), "{d}");
    let stored = d["supplierUpsert"]["supplier"]["items"]
        .as_array()
        .and_then(|i| i.iter().find(|i| i["variant"]["sku"] == sku.as_str()))
        .map(|i| i["priceBreaks"].clone());
    assert_eq!(stored, Some(json!([{ "minQuantity": qty, "unitCost": cheap }])));
    let broken = plan(&app, &token).await;
    let line = buys_from(&broken, &sup_id).into_iter().find(|b| b.0 == sku).expect("the SKU is still bought");
    assert!(line.1 >= qty && (line.2 - unit / 2.0).abs() < 0.01, "{line:?}");
    assert!(line.4.contains(&format!(" at {cheap} ")), "the break's price, with its cents: {}", line.4);
    assert!(line.4.contains(&format!("the price from {qty} units, not ")), "{}", line.4);

    // Bad terms are typed errors naming the field; nothing changes.
    let bad = json!({
        "orderLineCost": "-1",
        "items": [{ "sku": sku, "unitCost": "1", "priceBreaks": [{ "minQuantity": 10, "unitCost": "1" }, { "minQuantity": 5, "unitCost": "-2" }] }],
    });
    let d = app.data(&token, upsert, terms(bad)).await;
    let fields: Vec<Value> =
        d["supplierUpsert"]["userErrors"].as_array().expect("errors").iter().map(|e| e["field"].clone()).collect();
    assert_eq!(
        fields,
        vec![
            json!(["input", "orderLineCost"]),
            json!(["input", "items", "0", "priceBreaks", "1", "minQuantity"]),
            json!(["input", "items", "0", "priceBreaks", "1", "unitCost"]),
        ],
        "{d}"
    );
    assert!(d["supplierUpsert"]["supplier"].is_null());

    // A budget for the whole plan: what it buys from every supplier together stays within it,
    // and lines left short say so. A negative budget is refused.
    let set = "mutation($i: ReplenishmentSettingsSetInput!) { replenishmentSettingsSet(input: $i) {
        replenishmentSettings { planBudget } userErrors { field code } } }";
    let total = |plan: &Value| suppliers.iter().map(|x| spend(plan, x["id"].as_str().expect("id"))).sum::<f64>();
    let all = total(&broken);
    let d = app.data(&token, set, json!({ "i": { "targetServiceLevel": 0.95, "planBudget": "-1" } })).await;
    assert_eq!(d["replenishmentSettingsSet"]["userErrors"][0]["field"], json!(["input", "planBudget"]), "{d}");
    let cap = (all / 2.0).floor();
    let d = app.data(&token, set, json!({ "i": { "targetServiceLevel": 0.95, "planBudget": cap.to_string() } })).await;
    assert_eq!(d["replenishmentSettingsSet"]["replenishmentSettings"]["planBudget"], cap.to_string(), "{d}");
    let budgeted = plan(&app, &token).await;
    let spent_all = total(&budgeted);
    assert!(spent_all <= cap + 1e-9 && spent_all > 0.0, "spent {spent_all} of a {cap} plan budget (was {all})");
    let short = budgeted["lines"].as_array().expect("lines").iter().any(|l| {
        l["reason"]
            .as_str()
            .is_some_and(|r| r.contains("short of the target within") && r.contains("the plan's budget"))
    });
    assert!(short, "{budgeted}");
}

/// The units a plan delivers to `location` (bought or moved there).
fn delivered_to(plan: &Value, location: &str) -> i64 {
    plan["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["location"]["id"] == location)
        .map(|l| l["quantity"].as_i64().expect("quantity"))
        .sum()
}

#[tokio::test]
async fn a_full_location_gets_no_more_volume() {
    let app = TestApp::spawn().await;
    let (t, _) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    app.drain_jobs().await;
    // Every unit takes room.
    let d = app
        .data(
            &token,
            "{ products(first: 50) { nodes { id handle title variants { sku title price { amount currencyCode } } } }
               locations(first: 10) { nodes { id code name kind latitude longitude } } }",
            json!({}),
        )
        .await;
    let upsert = "mutation($i: ProductUpsertInput!) { productUpsert(input: $i) { product { variants { unitVolume } } userErrors { field message } } }";
    for p in d["products"]["nodes"].as_array().expect("products") {
        let variants: Vec<Value> = p["variants"]
            .as_array()
            .expect("variants")
            .iter()
            .map(|v| {
                json!({ "sku": v["sku"], "title": v["title"], "price": v["price"]["amount"],
                        "currencyCode": v["price"]["currencyCode"], "unitVolume": 2.5 })
            })
            .collect();
        let i = json!({ "id": p["id"], "handle": p["handle"], "title": p["title"], "variants": variants });
        let r = app.data(&token, upsert, json!({ "i": i })).await;
        assert_eq!(r["productUpsert"]["userErrors"], json!([]), "{r}");
        assert_eq!(r["productUpsert"]["product"]["variants"][0]["unitVolume"], 2.5);
    }
    let open = plan(&app, &token).await;
    let locations = d["locations"]["nodes"].as_array().expect("locations").clone();
    let busiest = locations
        .iter()
        .max_by_key(|l| delivered_to(&open, l["id"].as_str().expect("id")))
        .expect("a location")
        .clone();
    let loc = busiest["id"].as_str().expect("id").to_owned();
    assert!(delivered_to(&open, &loc) > 0, "the demo plan delivers somewhere: {open}");

    // No room left: nothing more arrives there; other locations are still supplied.
    let set = "mutation($i: LocationUpsertInput!) { locationUpsert(input: $i) { location { capacityVolume } userErrors { field code } } }";
    let input = |cap: Value| {
        json!({ "i": { "id": loc, "code": busiest["code"], "name": busiest["name"], "kind": busiest["kind"],
                       "latitude": busiest["latitude"], "longitude": busiest["longitude"], "capacityVolume": cap } })
    };
    let bad = app.data(&token, set, input(json!(-1.0))).await;
    assert_eq!(
        bad["locationUpsert"]["userErrors"],
        json!([{ "field": ["input", "capacityVolume"], "code": "INVALID" }])
    );
    let d = app.data(&token, set, input(json!(0.0))).await;
    assert_eq!(d["locationUpsert"]["location"]["capacityVolume"], 0.0, "{d}");
    let full = plan(&app, &token).await;
    assert_eq!(delivered_to(&full, &loc), 0, "{full}");
    let elsewhere: i64 = locations
        .iter()
        .filter(|l| l["id"] != loc.as_str())
        .map(|l| delivered_to(&full, l["id"].as_str().expect("id")))
        .sum();
    let before: i64 = locations
        .iter()
        .filter(|l| l["id"] != loc.as_str())
        .map(|l| delivered_to(&open, l["id"].as_str().expect("id")))
        .sum();
    assert!(elsewhere > 0 || before == 0, "{full}");

    // Room for everything again: the same plan as without a limit.
    app.data(&token, set, input(json!(1e9))).await;
    let roomy = plan(&app, &token).await;
    assert_eq!(delivered_to(&roomy, &loc), delivered_to(&open, &loc), "{roomy}");
    assert_eq!(roomy["method"], open["method"]);
}

#[tokio::test]
async fn a_lanes_own_cost_decides_between_moving_and_buying() {
    let app = TestApp::spawn().await;
    let (t, _) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    app.drain_jobs().await;
    let (sku, full, empty) = full_and_empty(&app, &token).await;
    // Units of the SKU moved from the full location to the empty one.
    let moved = |plan: &Value| -> i64 {
        plan["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .filter(|l| {
                l["kind"] == "TRANSFER"
                    && l["sku"] == sku.as_str()
                    && l["location"]["id"] == empty.as_str()
                    && l["fromLocation"]["id"] == full.as_str()
            })
            .map(|l| l["quantity"].as_i64().expect("quantity"))
            .sum()
    };
    let cheap = plan(&app, &token).await;
    assert!(moved(&cheap) > 0, "the default 0.50 a unit is cheaper than buying: {cheap}");

    let set = "mutation($from: ID!, $to: ID!, $c: Decimal) { replenishmentLaneCostSet(input: { fromLocationId: $from, toLocationId: $to, unitCost: $c }) {
        replenishmentSettings { transferUnitCost laneCosts { fromLocationId toLocationId unitCost } } userErrors { field code } } }";
    let d = app.data(&token, set, json!({ "from": full, "to": empty, "c": "1000" })).await;
    assert_eq!(
        d["replenishmentLaneCostSet"]["replenishmentSettings"]["laneCosts"],
        json!([{ "fromLocationId": full, "toLocationId": empty, "unitCost": "1000" }]),
        "{d}"
    );
    let dear = plan(&app, &token).await;
    assert_eq!(moved(&dear), 0, "{dear}");
    // The empty location is served another way: bought, or moved over a lane still at the default
    // (from a third location, itself refilled from the full one, when the demo's stock has it).
    assert!(
        dear["lines"].as_array().expect("lines").iter().any(|l| {
            l["sku"] == sku.as_str()
                && l["location"]["id"] == empty.as_str()
                && (l["kind"] == "BUY" || (l["kind"] == "TRANSFER" && l["fromLocation"]["id"] != full.as_str()))
        }),
        "it buys or moves from elsewhere instead: {dear}"
    );
    // Removing the lane's own cost restores the default.
    let d = app.data(&token, set, json!({ "from": full, "to": empty, "c": null })).await;
    assert_eq!(d["replenishmentLaneCostSet"]["replenishmentSettings"]["laneCosts"], json!([]));
    assert_eq!(moved(&plan(&app, &token).await), moved(&cheap));
    // A lane joins two different locations; costs are not negative.
    let d = app.data(&token, set, json!({ "from": full, "to": full, "c": "1" })).await;
    assert_eq!(
        d["replenishmentLaneCostSet"]["userErrors"],
        json!([{ "field": ["input", "toLocationId"], "code": "INVALID" }])
    );
    let d = app.data(&token, set, json!({ "from": full, "to": empty, "c": "-1" })).await;
    assert_eq!(
        d["replenishmentLaneCostSet"]["userErrors"],
        json!([{ "field": ["input", "unitCost"], "code": "INVALID" }])
    );
}

const CALIBRATED: &str = "query($id: ID) { replenishmentPlan(runId: $id) { id status seriesTotal
    calibration { days seriesCount bias factor achieved target } lines { reason explanation } } }";

/// A run calibrates its policy's spread on the last 28 days: replayed there with the forecasts
/// each day's review would have made, the policy reaches the target with the factor the run
/// shows, and every line's safety stock uses that factor and says so. The same history gives the
/// same factor; a tenant with too little history plans with the forecast's spread as it is.
#[tokio::test]
async fn a_run_calibrates_its_spread_on_the_last_four_weeks() {
    let app = TestApp::spawn().await;
    let (t, series) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    app.drain_jobs().await;
    let run = plan_as(&app, &token, CALIBRATED).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let c = run["calibration"].clone();
    assert_eq!(c["days"].as_u64(), Some(28), "{c}");
    assert!((c["target"].as_f64().expect("target") - 0.95).abs() < 1e-9, "{c}");
    // 120 days of history: every series has the 56 days before the window.
    assert_eq!(c["seriesCount"].as_u64(), Some(series as u64), "{c}");
    let factor = c["factor"].as_f64().expect("factor");
    assert!((0.2..5.0).contains(&factor), "{c}");
    assert!((c["achieved"].as_f64().expect("achieved") - 0.95).abs() < 0.01, "{c}");
    let lines = run["lines"].as_array().expect("lines");
    assert!(!lines.is_empty(), "{run}");
    let says = format!("spread ×{factor:.2}, as the last 28 days needed");
    for l in lines {
        assert_eq!(l["explanation"]["spreadFactor"].as_f64(), Some(factor), "{l}");
        assert!(l["reason"].as_str().expect("reason").contains(&says), "{l}");
    }
    // Nothing changed: the same replay, the same factor.
    assert_eq!(plan_as(&app, &token, CALIBRATED).await["calibration"], c);

    // Seventy days of history leave too few before the window.
    let app = TestApp::spawn().await;
    let (t, _) = demo_of(&app, 70).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    app.drain_jobs().await;
    let run = plan_as(&app, &token, CALIBRATED).await;
    assert_eq!((run["status"].as_str(), run["calibration"].is_null()), (Some("COMPLETED"), true), "{run}");
    for l in run["lines"].as_array().expect("lines") {
        assert_eq!(l["explanation"]["spreadFactor"].as_f64(), Some(1.0), "{l}");
        assert!(!l["reason"].as_str().expect("reason").contains("spread ×"), "{l}");
    }
}

const LINES: &str = "query($run: ID, $status: ReplenishmentLineStatus, $kind: ReplenishmentLineKind, $sku: String,
    $supplier: ID, $loc: ID, $first: Int, $after: String) {
    replenishmentLines(runId: $run, status: $status, kind: $kind, sku: $sku, supplierId: $supplier, locationId: $loc,
        first: $first, after: $after) {
        nodes { id kind status sku supplier { id } location { id } }
        pageInfo { hasNextPage endCursor } } }";

/// Every page of `replenishmentLines` with `vars` (and `first: 7`), nodes in order.
async fn all_lines(app: &TestApp, token: &str, mut vars: Value) -> Vec<Value> {
    let mut out = Vec::new();
    vars["first"] = json!(7);
    loop {
        let d = app.data(token, LINES, vars.clone()).await;
        let c = &d["replenishmentLines"];
        out.extend(c["nodes"].as_array().expect("nodes").iter().cloned());
        if c["pageInfo"]["hasNextPage"] != true {
            return out;
        }
        vars["after"] = c["pageInfo"]["endCursor"].clone();
    }
}

fn ids(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["id"].as_str().expect("id")).collect()
}

#[tokio::test]
async fn a_plans_lines_page_in_its_order_and_filter_for_review() {
    let app = TestApp::spawn().await;
    let (t, _) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    // Before any plan there are no lines to page.
    let d = app.data(&token, LINES, json!({ "first": 10 })).await;
    assert_eq!(d["replenishmentLines"]["nodes"], json!([]), "{d}");
    app.drain_jobs().await;
    let d = app.data(&token, PLAN, json!({ "id": null })).await;
    let run = d["replenishmentPlan"].clone();
    let lines = run["lines"].as_array().expect("lines").clone();
    assert!(lines.len() > 14, "enough lines for three pages: {}", lines.len());

    // Page by page, the latest plan's lines in the plan's order (by SKU), each once.
    let paged = all_lines(&app, &token, json!({})).await;
    assert_eq!(ids(&paged), ids(&lines));
    let skus: Vec<&str> = paged.iter().map(|l| l["sku"].as_str().expect("sku")).collect();
    assert!(skus.windows(2).all(|w| w[0] <= w[1]), "{skus:?}");
    assert_eq!(ids(&all_lines(&app, &token, json!({ "run": run["id"] })).await), ids(&lines));

    // Filters: what a buyer reviews one supplier, location, SKU or kind at a time.
    let buy = lines.iter().find(|l| l["kind"] == "BUY").expect("a buy line");
    let supplier = &buy["supplier"]["id"];
    let got = all_lines(&app, &token, json!({ "supplier": supplier })).await;
    let of_supplier: Vec<&str> =
        lines.iter().filter(|l| l["supplier"]["id"] == *supplier).map(|l| l["id"].as_str().expect("id")).collect();
    assert_eq!(ids(&got), of_supplier);
    assert!(got.iter().all(|l| l["kind"] == "BUY" && l["supplier"]["id"] == *supplier), "{got:?}");
    let loc = &buy["location"]["id"];
    let got = all_lines(&app, &token, json!({ "loc": loc, "kind": "BUY" })).await;
    let want = lines.iter().filter(|l| l["location"]["id"] == *loc && l["kind"] == "BUY").count();
    assert_eq!(got.len(), want);
    let got = all_lines(&app, &token, json!({ "sku": buy["sku"] })).await;
    assert_eq!(got.len(), lines.iter().filter(|l| l["sku"] == buy["sku"]).count());
    let transfers = all_lines(&app, &token, json!({ "kind": "TRANSFER" })).await;
    assert_eq!(transfers.len(), lines.iter().filter(|l| l["kind"] == "TRANSFER").count());

    // Approve that supplier's lines: they show as APPROVED, the rest still PROPOSED.
    let chosen = of_supplier;
    let approve =
        "mutation($id: ID!, $lines: [ID!]) { replenishmentPlanApprove(input: { runId: $id, lineIds: $lines }) {
        purchaseOrders { id } userErrors { field code message } } }";
    let d = app.data(&token, approve, json!({ "id": run["id"], "lines": chosen })).await;
    assert_eq!(d["replenishmentPlanApprove"]["userErrors"], json!([]), "{d}");
    let approved = all_lines(&app, &token, json!({ "status": "APPROVED" })).await;
    assert_eq!(ids(&approved), chosen);
    let proposed = all_lines(&app, &token, json!({ "status": "PROPOSED" })).await;
    assert_eq!(proposed.len(), lines.len() - chosen.len());
    // Each approved line leads to its draft purchase order, from that supplier.
    let d = app
        .data(
            &token,
            "{ replenishmentLines(status: APPROVED, first: 250) { nodes { purchaseOrderId purchaseOrder { id status supplier { id } } } } }",
            json!({}),
        )
        .await;
    for l in d["replenishmentLines"]["nodes"].as_array().expect("nodes") {
        let po = &l["purchaseOrder"];
        assert_eq!((&po["id"], po["status"].as_str()), (&l["purchaseOrderId"], Some("DRAFT")), "{l}");
        assert_eq!(po["supplier"]["id"], *supplier, "{l}");
    }

    // An ID of another kind matches nothing; a page size out of range is refused.
    let d = app.data(&token, LINES, json!({ "run": supplier, "first": 10 })).await;
    assert_eq!(d["replenishmentLines"]["nodes"], json!([]), "{d}");
    let (_, r) = app.gql(&token, LINES, json!({ "first": 0 })).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{r}");
}

const POS: &str = "query($status: PurchaseOrderStatus, $supplier: ID, $loc: ID) {
    purchaseOrders(status: $status, supplierId: $supplier, locationId: $loc, first: 250) {
        nodes { id status supplier { id } location { id } } } }";

/// The ids of the nodes the connection `field` of `query` lists with `vars`, sorted.
async fn listed(app: &TestApp, token: &str, query: &str, field: &str, vars: Value) -> Vec<String> {
    let d = app.data(token, query, vars).await;
    sorted_ids(d[field]["nodes"].as_array().expect("nodes"), |_| true)
}

/// The ids of those of `items` that `keep`, sorted.
fn sorted_ids(items: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut ids: Vec<String> =
        items.iter().filter(|i| keep(i)).map(|i| i["id"].as_str().expect("id").to_owned()).collect();
    ids.sort();
    ids
}

async fn pos_where(app: &TestApp, token: &str, vars: Value) -> Vec<String> {
    listed(app, token, POS, "purchaseOrders", vars).await
}

#[tokio::test]
async fn purchase_orders_list_by_status_supplier_and_location() {
    let app = TestApp::spawn().await;
    let (t, _) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    app.drain_jobs().await;
    let d = app.data(&token, PLAN, json!({ "id": null })).await;
    let approve = "mutation($id: ID!) { replenishmentPlanApprove(input: { runId: $id }) {
        purchaseOrders { id supplier { id } location { id } } userErrors { code } } }";
    let d = app.data(&token, approve, json!({ "id": d["replenishmentPlan"]["id"] })).await;
    let pos = d["replenishmentPlanApprove"]["purchaseOrders"].as_array().expect("pos").clone();
    let id_of = |p: &Value| p["id"].as_str().expect("id").to_owned();
    let ids_where = |f: &dyn Fn(&Value) -> bool| sorted_ids(&pos, f);
    let suppliers: std::collections::BTreeSet<String> = pos.iter().map(|p| p["supplier"]["id"].to_string()).collect();
    assert!(suppliers.len() >= 2, "orders from several suppliers: {d}");

    // The drafts awaiting issue are every order the approval made.
    assert_eq!(pos_where(&app, &token, json!({ "status": "DRAFT" })).await, ids_where(&|_| true));
    // Issued, one leaves the drafts.
    let issue = "mutation($id: ID!) { purchaseOrderIssue(input: { id: $id }) { userErrors { code } } }";
    let d = app.data(&token, issue, json!({ "id": pos[0]["id"] })).await;
    assert_eq!(d["purchaseOrderIssue"]["userErrors"], json!([]), "{d}");
    assert_eq!(pos_where(&app, &token, json!({ "status": "ISSUED" })).await, vec![id_of(&pos[0])]);
    assert_eq!(pos_where(&app, &token, json!({ "status": "DRAFT" })).await.len(), pos.len() - 1);
    // One supplier's, one location's, and both.
    let (supplier, loc) = (&pos[0]["supplier"]["id"], &pos[0]["location"]["id"]);
    assert_eq!(
        pos_where(&app, &token, json!({ "supplier": supplier })).await,
        ids_where(&|p| p["supplier"]["id"] == *supplier)
    );
    assert_eq!(pos_where(&app, &token, json!({ "loc": loc })).await, ids_where(&|p| p["location"]["id"] == *loc));
    assert_eq!(
        pos_where(&app, &token, json!({ "supplier": supplier, "loc": loc, "status": "DRAFT" })).await,
        ids_where(&|p| p["supplier"]["id"] == *supplier && p["location"]["id"] == *loc && p["id"] != pos[0]["id"])
    );
    // An ID of another kind matches nothing; a status there is none of (nor a stored name) is
    // refused, naming the enumeration.
    assert_eq!(pos_where(&app, &token, json!({ "supplier": loc })).await, Vec::<String>::new());
    for bad in ["open", "draft"] {
        let (_, r) = app.gql(&token, POS, json!({ "status": bad })).await;
        assert_eq!(r["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{r}");
        assert!(r["errors"][0]["message"].as_str().is_some_and(|m| m.contains("PurchaseOrderStatus")), "{r}");
    }
}

const TRANSFERS: &str = "query($status: TransferStatus, $from: ID, $to: ID) {
    transfers(status: $status, fromLocationId: $from, toLocationId: $to, first: 250) {
        nodes { id status fromLocation { id } toLocation { id } } } }";

async fn transfers_where(app: &TestApp, token: &str, vars: Value) -> Vec<String> {
    listed(app, token, TRANSFERS, "transfers", vars).await
}

#[tokio::test]
async fn transfers_list_by_status_and_location() {
    let app = TestApp::spawn().await;
    let (t, _) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    app.drain_jobs().await;
    // A SKU with plenty at one location and none at another: the plan moves it.
    let (sku, full, empty) = full_and_empty(&app, &token).await;
    let run = plan(&app, &token).await;
    let approve = "mutation($id: ID!) { replenishmentPlanApprove(input: { runId: $id }) {
        transfers { id fromLocation { id } toLocation { id } } userErrors { code } } }";
    let d = app.data(&token, approve, json!({ "id": run["id"] })).await;
    let moves = d["replenishmentPlanApprove"]["transfers"].as_array().expect("transfers").clone();
    assert!(!moves.is_empty(), "{d}");
    let id_of = |t: &Value| t["id"].as_str().expect("id").to_owned();
    let ids_where = |f: &dyn Fn(&Value) -> bool| sorted_ids(&moves, f);

    // The drafts awaiting shipment are the approval's transfers; shipped, one is in transit.
    assert_eq!(transfers_where(&app, &token, json!({ "status": "DRAFT" })).await, ids_where(&|_| true));
    let ship = "mutation($id: ID!) { transferShip(input: { id: $id }) { userErrors { code } } }";
    let d = app.data(&token, ship, json!({ "id": moves[0]["id"] })).await;
    assert_eq!(d["transferShip"]["userErrors"], json!([]), "{d}");
    assert_eq!(transfers_where(&app, &token, json!({ "status": "IN_TRANSIT" })).await, vec![id_of(&moves[0])]);
    // The plan's line leads to its transfer as it is now.
    let d = app
        .data(
            &token,
            "{ replenishmentLines(kind: TRANSFER, status: APPROVED, first: 250) { nodes { transferId transfer { id status } } } }",
            json!({}),
        )
        .await;
    let nodes = d["replenishmentLines"]["nodes"].as_array().expect("nodes");
    let shipped = nodes.iter().find(|l| l["transferId"] == moves[0]["id"]).expect("the shipped transfer's line");
    assert_eq!(
        (&shipped["transfer"]["id"], shipped["transfer"]["status"].as_str()),
        (&moves[0]["id"], Some("IN_TRANSIT"))
    );
    assert!(nodes.iter().all(|l| l["transfer"]["id"] == l["transferId"]), "{d}");
    assert_eq!(transfers_where(&app, &token, json!({ "status": "DRAFT" })).await.len(), moves.len() - 1);
    // Leaving one location, reaching another.
    let (from, to) = (&moves[0]["fromLocation"]["id"], &moves[0]["toLocation"]["id"]);
    assert_eq!(
        transfers_where(&app, &token, json!({ "from": from })).await,
        ids_where(&|t| t["fromLocation"]["id"] == *from)
    );
    assert_eq!(transfers_where(&app, &token, json!({ "to": to })).await, ids_where(&|t| t["toLocation"]["id"] == *to));
    // A move made at once is listed as completed.
    let mv = "mutation($s: String!, $f: ID!, $t: ID!) { stockTransfer(input: { sku: $s, fromLocationId: $f, toLocationId: $t, quantity: 1 }) { userErrors { code message } } }";
    let d = app.data(&token, mv, json!({ "s": sku, "f": full, "t": empty })).await;
    assert_eq!(d["stockTransfer"]["userErrors"], json!([]), "{d}");
    assert_eq!(transfers_where(&app, &token, json!({ "status": "COMPLETED" })).await.len(), 1);
    // An ID of another kind matches nothing; a status there is none of is refused, naming the
    // enumeration.
    assert_eq!(transfers_where(&app, &token, json!({ "from": run["id"] })).await, Vec::<String>::new());
    let (_, r) = app.gql(&token, TRANSFERS, json!({ "status": "SHIPPED" })).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{r}");
    assert!(r["errors"][0]["message"].as_str().is_some_and(|m| m.contains("TransferStatus")), "{r}");
}

const PO_CANCEL: &str = "mutation($id: ID!, $why: String!) { purchaseOrderCancel(input: { id: $id, reason: $why }) {
    purchaseOrder { id status statusReason } userErrors { field code message } } }";

/// The (SKU, location) pairs a plan buys.
fn bought(plan: &Value) -> std::collections::BTreeSet<(String, String)> {
    plan["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["kind"] == "BUY")
        .map(|l| (l["sku"].as_str().expect("sku").to_owned(), l["location"]["id"].as_str().expect("loc").to_owned()))
        .collect()
}

#[tokio::test]
async fn a_cancelled_purchase_order_is_planned_again_and_the_supplier_is_told() {
    let app = TestApp::spawn().await;
    let (t, _) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    app.drain_jobs().await;
    let run = plan(&app, &token).await;
    let approve = "mutation($id: ID!) { replenishmentPlanApprove(input: { runId: $id }) {
        purchaseOrders { id location { id } lines { variant { sku } } } userErrors { code } } }";
    let d = app.data(&token, approve, json!({ "id": run["id"] })).await;
    let pos = d["replenishmentPlanApprove"]["purchaseOrders"].as_array().expect("pos").clone();
    assert!(pos.len() >= 3, "{d}");
    let of = |po: &Value| -> std::collections::BTreeSet<(String, String)> {
        let loc = po["location"]["id"].as_str().expect("loc").to_owned();
        po["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| (l["variant"]["sku"].as_str().expect("sku").to_owned(), loc.clone()))
            .collect()
    };
    // Right after approval nothing is bought again (the drafts count as on order).
    assert!(bought(&plan(&app, &token).await).is_disjoint(&of(&pos[0])));

    // A reason is required; the draft is then cancelled, quietly (its supplier never saw it).
    let d = app.data(&token, PO_CANCEL, json!({ "id": pos[0]["id"], "why": "  " })).await;
    assert_eq!(d["purchaseOrderCancel"]["userErrors"][0]["field"], json!(["input", "reason"]), "{d}");
    let d = app.data(&token, PO_CANCEL, json!({ "id": pos[0]["id"], "why": "ordered by phone" })).await;
    assert_eq!(
        d["purchaseOrderCancel"]["purchaseOrder"],
        json!({ "id": pos[0]["id"], "status": "CANCELLED", "statusReason": "ordered by phone" }),
        "{d}"
    );
    // Again: nothing changes, the first reason stays.
    let d = app.data(&token, PO_CANCEL, json!({ "id": pos[0]["id"], "why": "twice" })).await;
    assert_eq!(d["purchaseOrderCancel"]["purchaseOrder"]["statusReason"], "ordered by phone", "{d}");
    assert_eq!(app.events(t.id, "purchase_order.cancelled").await, Vec::<Value>::new());
    // Its units no longer count as on order: the next plan buys them again; a cancelled order
    // cannot be issued.
    assert!(of(&pos[0]).is_subset(&bought(&plan(&app, &token).await)), "the cancelled order's SKUs are bought again");
    let issue = "mutation($id: ID!) { purchaseOrderIssue(input: { id: $id }) { userErrors { code } } }";
    let d = app.data(&token, issue, json!({ "id": pos[0]["id"] })).await;
    assert_eq!(d["purchaseOrderIssue"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");

    // An issued order: the supplier is told, with the reason.
    let d = app.data(&token, issue, json!({ "id": pos[1]["id"] })).await;
    assert_eq!(d["purchaseOrderIssue"]["userErrors"], json!([]), "{d}");
    let d = app.data(&token, PO_CANCEL, json!({ "id": pos[1]["id"], "why": "the season ended early" })).await;
    assert_eq!(d["purchaseOrderCancel"]["purchaseOrder"]["status"], "CANCELLED", "{d}");
    let told = app.events(t.id, "purchase_order.cancelled").await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!((&told[0]["purchaseOrderId"], &told[0]["reason"]), (&pos[1]["id"], &json!("the season ended early")));

    // Once goods arrive against it, an order cannot be cancelled.
    app.data(&token, issue, json!({ "id": pos[2]["id"] })).await;
    let lines = app
        .data(
            &token,
            "query($id: ID!) { node(id: $id) { ... on PurchaseOrder { lines { id } } } }",
            json!({ "id": pos[2]["id"] }),
        )
        .await;
    let receive = "mutation($id: ID!, $line: ID!) { purchaseOrderReceive(input: { purchaseOrderId: $id,
        lines: [{ lineId: $line, quantity: 1 }] }) { purchaseOrder { status } userErrors { code } } }";
    let d = app.data(&token, receive, json!({ "id": pos[2]["id"], "line": lines["node"]["lines"][0]["id"] })).await;
    assert_eq!(d["purchaseOrderReceive"]["userErrors"], json!([]), "{d}");
    let d = app.data(&token, PO_CANCEL, json!({ "id": pos[2]["id"], "why": "late" })).await;
    assert_eq!(d["purchaseOrderCancel"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
    assert!(
        d["purchaseOrderCancel"]["userErrors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("receive what arrives")),
        "{d}"
    );
    // A viewer cannot cancel; an ID of another kind is not found.
    let viewer = app.jwt(&t, &[qm_domain::Role::Viewer]);
    let (_, r) = app.gql(&viewer, PO_CANCEL, json!({ "id": pos[1]["id"], "why": "x" })).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN", "{r}");
    let d = app.data(&token, PO_CANCEL, json!({ "id": run["id"], "why": "x" })).await;
    assert_eq!(d["purchaseOrderCancel"]["userErrors"][0]["code"], "NOT_FOUND", "{d}");
}

#[tokio::test]
async fn a_cancelled_transfer_frees_its_units_and_cannot_ship() {
    let app = TestApp::spawn().await;
    let (t, _) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    app.drain_jobs().await;
    let (sku, full, empty) = full_and_empty(&app, &token).await;
    let run = plan(&app, &token).await;
    let approve = "mutation($id: ID!) { replenishmentPlanApprove(input: { runId: $id }) {
        transfers { id quantity variant { sku } fromLocation { id } toLocation { id } } userErrors { code } } }";
    let d = app.data(&token, approve, json!({ "id": run["id"] })).await;
    let moves = d["replenishmentPlanApprove"]["transfers"].as_array().expect("transfers").clone();
    let m = moves
        .iter()
        .find(|m| {
            m["variant"]["sku"] == sku.as_str()
                && m["fromLocation"]["id"] == full.as_str()
                && m["toLocation"]["id"] == empty.as_str()
        })
        .unwrap_or_else(|| panic!("the plan moves {sku}: {d}"))
        .clone();
    let moved = |plan: &Value| {
        plan["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .any(|l| l["kind"] == "TRANSFER" && l["sku"] == sku.as_str() && l["location"]["id"] == empty.as_str())
    };
    // While the draft stands, the next plan does not move the units again.
    assert!(!moved(&plan(&app, &token).await));

    let cancel = "mutation($id: ID!, $why: String!) { transferCancel(input: { id: $id, reason: $why }) {
        transfer { id status statusReason } userErrors { field code message } } }";
    let d = app.data(&token, cancel, json!({ "id": m["id"], "why": "the store closed for refit" })).await;
    assert_eq!(
        d["transferCancel"]["transfer"],
        json!({ "id": m["id"], "status": "CANCELLED", "statusReason": "the store closed for refit" }),
        "{d}"
    );
    let told = app.events(t.id, "transfer.cancelled").await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(
        (&told[0]["transferId"], &told[0]["sku"], &told[0]["quantity"], &told[0]["replenishmentRunId"]),
        (&m["id"], &json!(sku), &m["quantity"], &run["id"])
    );
    // Again: nothing changes, no second event. It cannot ship, stock stays where it is, and the
    // next plan moves the units anew.
    app.data(&token, cancel, json!({ "id": m["id"], "why": "again" })).await;
    assert_eq!(app.events(t.id, "transfer.cancelled").await.len(), 1);
    let before = on_hand(&app, &token, &sku, &full).await;
    let ship = "mutation($id: ID!) { transferShip(input: { id: $id }) { userErrors { code } } }";
    let d = app.data(&token, ship, json!({ "id": m["id"] })).await;
    assert_eq!(d["transferShip"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
    assert_eq!(on_hand(&app, &token, &sku, &full).await, before);
    assert_eq!(
        transfers_where(&app, &token, json!({ "status": "CANCELLED" })).await,
        vec![m["id"].as_str().expect("id").to_owned()]
    );
    let again = plan(&app, &token).await;
    assert!(moved(&again), "the cancelled transfer's units are moved again: {again}");

    // A shipped transfer cannot be cancelled.
    let d = app.data(&token, approve, json!({ "id": again["id"] })).await;
    let next = d["replenishmentPlanApprove"]["transfers"][0]["id"].clone();
    let d = app.data(&token, ship, json!({ "id": next })).await;
    assert_eq!(d["transferShip"]["userErrors"], json!([]), "{d}");
    let d = app.data(&token, cancel, json!({ "id": next, "why": "late" })).await;
    assert_eq!(d["transferCancel"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
    assert_eq!(
        d["transferCancel"]["userErrors"][0]["message"], "a transfer in transit cannot be cancelled: receive it",
        "{d}"
    );
}

/// Transfers approved before a transfer kept its run get it from their plan line on upgrading.
#[tokio::test]
async fn upgrading_gives_approved_transfers_their_run() {
    use sea_orm_migration::MigratorTrait;
    let app = TestApp::spawn().await;
    let (t, _) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    app.drain_jobs().await;
    full_and_empty(&app, &token).await;
    let run = plan(&app, &token).await;
    let approve = "mutation($id: ID!) { replenishmentPlanApprove(input: { runId: $id }) { transfers { id } } }";
    let d = app.data(&token, approve, json!({ "id": run["id"] })).await;
    let moved = d["replenishmentPlanApprove"]["transfers"][0]["id"].clone();
    assert!(moved.is_string(), "the plan moves stock: {d}");
    let conn = app.owner_db.conn();
    qm_api::db::Migrator::down(conn, Some(crate::ops::steps_back_before("add_transfer_replenishment_run")))
        .await
        .expect("down");
    qm_api::db::Migrator::up(conn, None).await.expect("up again");
    let d = app
        .data(
            &token,
            "query($id: ID!) { node(id: $id) { ... on Transfer { replenishmentRunId } } }",
            json!({ "id": moved }),
        )
        .await;
    assert_eq!(d["node"]["replenishmentRunId"], run["id"], "{d}");
}

/// One run at a time: asking again returns the run already queued; a run asked for hours ago
/// (its job died) is failed and gives way to a new one, and the old job ending late does not
/// undo that; nor does a failure after a run completed undo its completion.
#[tokio::test]
async fn a_run_whose_job_died_gives_way_and_a_late_end_does_not_undo_it() {
    use qm_api::db::TxMode;
    use qm_api::db::entities::replenishment_run;
    use qm_api::services::runs;

    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let k = &t.owner_key;
    let request = "mutation { replenishmentRun { replenishmentRun { id status } userErrors { code } } }";
    let id = |d: &Value| d["replenishmentRun"]["replenishmentRun"]["id"].as_str().expect("run id").to_owned();
    let first = id(&app.data(k, request, json!({})).await);
    assert_eq!(id(&app.data(k, request, json!({})).await), first);
    app.backdate_runs("replenishment_runs", chrono::Duration::hours(3)).await;
    let second = id(&app.data(k, request, json!({})).await);
    assert_ne!(second, first);
    let uuid = qm_tests::uuid_of;
    // The first run's job ends late; the second's completes and then reports a failure.
    let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
    runs::start::<replenishment_run::Entity>(&s, uuid(&first)).await.expect("start");
    runs::finishing::<replenishment_run::Entity>(&s, uuid(&first), "completed").exec(&s.tx).await.expect("late end");
    runs::start::<replenishment_run::Entity>(&s, uuid(&second)).await.expect("start");
    runs::finishing::<replenishment_run::Entity>(&s, uuid(&second), "completed").exec(&s.tx).await.expect("end");
    runs::fail::<replenishment_run::Entity>(&s, uuid(&second), "a retry's error").await.expect("fail");
    s.commit().await.expect("commit");
    let d = app.data(k, "{ replenishmentRuns(first: 5) { nodes { id status error } } }", json!({})).await;
    let nodes = d["replenishmentRuns"]["nodes"].as_array().expect("runs");
    let of = |id: &str| nodes.iter().find(|n| n["id"] == id).cloned().expect("listed");
    assert_eq!(nodes.len(), 2, "{d}");
    assert_eq!(of(&first)["status"], "FAILED", "{d}");
    assert!(of(&first)["error"].as_str().is_some_and(|e| e.contains("did not finish within 2 hours")), "{d}");
    assert_eq!(of(&second)["status"], "COMPLETED", "{d}");
    assert!(of(&second)["error"].is_null(), "{d}");
}
