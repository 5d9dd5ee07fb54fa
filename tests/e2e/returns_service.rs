//! Order allocation and returns end to end on the demo tenant: orders placed without a location
//! are allocated (nearest stock, split when no location has every line, a pinned location, a
//! store that does not ship online), open orders re-allocated as a batch with their reservations
//! moved through the ledger; returns recorded, planned within capacities, approved into stock
//! with ledger movements and events; return rates and the anomaly alert.

use chrono::Utc;
use qm_domain::Role;
use qm_domain::demo::DemoParams;
use qm_tests::TestApp;
use serde_json::{Value, json};

const CREATE: &str = "mutation($i: OrderCreateInput!) { orderCreate(input: $i) {
    order { id status location { code } allocation { method parcels shipping handling split cost fromStore
        lines { lineId locationId } } }
    userErrors { field code message } } }";

const POLICY: &str = "mutation($i: AllocationPolicyUpsertInput!) { allocationPolicyUpsert(input: $i) {
    allocationPolicy { id location { code } pinnedLocation { code } shipFromStore bands { maxKm parcel unit } }
    userErrors { field code message } } }";

const ALLOCATE: &str = "mutation($i: OrderAllocateInput) { orderAllocate(input: $i) {
    allocations { order { id location { code } } method parcels cost lines { locationId } }
    reallocated method costBefore costAfter userErrors { field code message } } }";

const FULFIL: &str =
    "mutation($id: ID!) { orderFulfill(input: { id: $id, carrier: \"UPS\", trackingNumber: \"1Z9\" }) {
    order { status } shipment { trackingNumber location { code } } shipments { trackingNumber location { code } }
    userErrors { code message } } }";

const RETURN: &str = "mutation($i: ReturnCreateInput!) { returnCreate(input: $i) {
    return { id status lines { id quantity condition } } userErrors { field code message } } }";

const PLAN: &str = "mutation { returnsPlanRun {
    returnsRun { id method itemsTotal heldTotal ungradedTotal objective bound gap }
    dispositions { id sku quantity grade disposition status location { code } expectedRecovery net }
    userErrors { message } } }";

const APPROVE: &str = "mutation($ids: [ID!]!) { returnDispositionApprove(input: { ids: $ids }) {
    returnDispositions { id status decidedBy } userErrors { field code message } } }";

/// The demo tenant (3 locations with coordinates) and an owner's token.
async fn demo(app: &TestApp) -> (uuid::Uuid, String) {
    let today = Utc::now().date_naive();
    let params = DemoParams { seed: 5, end: today.pred_opt().expect("yesterday"), days: 60, products: 3 };
    let seeded = qm_api::demo::seed(&app.state.db, &params).await.expect("seed");
    let token = app.state.jwt.mint(seeded.tenant_id, "returns-owner", &[Role::Owner], None, Utc::now()).expect("token");
    app.drain_jobs().await;
    (seeded.tenant_id, token)
}

async fn location_ids(app: &TestApp, token: &str) -> std::collections::HashMap<String, String> {
    let d = app.data(token, "{ locations(first: 10) { nodes { id code } } }", json!({})).await;
    d["locations"]["nodes"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|l| (l["code"].as_str().expect("code").to_owned(), l["id"].as_str().expect("id").to_owned()))
        .collect()
}

async fn level(app: &TestApp, token: &str, sku: &str, location: &str) -> (i64, i64) {
    let d = app
        .data(
            token,
            "query($l: ID, $s: String) { stockLevels(locationId: $l, sku: $s, first: 1) { nodes { onHand reserved } } }",
            json!({ "l": location, "s": sku }),
        )
        .await;
    let n = &d["stockLevels"]["nodes"][0];
    (n["onHand"].as_i64().unwrap_or(0), n["reserved"].as_i64().unwrap_or(0))
}

fn order(ext: &str, lines: Value, lat: f64, lon: f64, location: Option<&str>) -> Value {
    json!({ "i": { "externalId": ext, "lines": lines, "locationId": location,
        "shipTo": { "name": "Customer", "latitude": lat, "longitude": lon } } })
}

const LA: (f64, f64) = (34.05, -118.25);
const NEWARK: (f64, f64) = (40.73, -74.17);

#[tokio::test]
async fn orders_are_allocated_on_creation_and_open_ones_reallocated_as_a_batch() {
    let app = TestApp::spawn().await;
    let (tenant, token) = demo(&app).await;
    let loc = location_ids(&app, &token).await;
    let (east, west, store) = (&loc["WH-EAST"], &loc["WH-WEST"], &loc["STORE-NYC"]);
    app.product(&token, "alloc-tee", &["AL-TEE", "AL-CAP", "AL-MUG"]).await;
    for at in [east, west, store] {
        app.stock(&token, "AL-TEE", at, 10).await;
    }
    app.stock(&token, "AL-CAP", west, 5).await;
    app.stock(&token, "AL-MUG", east, 5).await;

    // Policy input is checked field by field.
    for (input, field, code) in [
        (
            json!({ "bands": [{ "maxKm": 500, "parcel": "5" }, { "maxKm": 100, "parcel": "7" }] }),
            json!(["input", "bands", "1", "maxKm"]),
            "INVALID",
        ),
        (json!({ "locationId": east, "pinnedLocationId": west }), json!(["input", "pinnedLocationId"]), "INVALID"),
        (json!({ "splitCost": "-1" }), json!(["input", "splitCost"]), "INVALID"),
        (
            json!({ "locationId": "gid://quartermaster/Location/00000000-0000-7000-8000-000000000000" }),
            json!(["input", "locationId"]),
            "NOT_FOUND",
        ),
    ] {
        let d = app.data(&token, POLICY, json!({ "i": input })).await;
        let e = &d["allocationPolicyUpsert"]["userErrors"][0];
        assert_eq!((&e["field"], e["code"].as_str()), (&field, Some(code)), "{d}");
    }

    // Los Angeles: the west warehouse, one parcel.
    let d =
        app.data(&token, CREATE, order("al-1", json!([{ "sku": "AL-TEE", "quantity": 2 }]), LA.0, LA.1, None)).await;
    let o = &d["orderCreate"]["order"];
    assert_eq!(o["location"]["code"], "WH-WEST", "{d}");
    assert_eq!(o["allocation"]["method"], "EXACT");
    assert_eq!(o["allocation"]["parcels"], 1);
    assert_eq!(o["allocation"]["lines"][0]["locationId"], *west);
    assert_eq!(level(&app, &token, "AL-TEE", west).await, (10, 2));

    // Newark, with the store not shipping online orders: the east warehouse.
    let d = app.data(&token, POLICY, json!({ "i": { "locationId": store, "shipFromStore": false } })).await;
    assert_eq!(d["allocationPolicyUpsert"]["allocationPolicy"]["shipFromStore"], false, "{d}");
    let d = app
        .data(&token, CREATE, order("al-2", json!([{ "sku": "AL-TEE", "quantity": 1 }]), NEWARK.0, NEWARK.1, None))
        .await;
    assert_eq!(d["orderCreate"]["order"]["location"]["code"], "WH-EAST", "{d}");

    // A tee and a cap to Newark: the cap is only in the west and the tee nearer in the east, but
    // one far parcel costs less than a near one and a far one: both from the west.
    let d = app
        .data(
            &token,
            CREATE,
            order(
                "al-3",
                json!([{ "sku": "AL-TEE", "quantity": 1 }, { "sku": "AL-CAP", "quantity": 1 }]),
                NEWARK.0,
                NEWARK.1,
                None,
            ),
        )
        .await;
    let a = &d["orderCreate"]["order"]["allocation"];
    assert_eq!(a["parcels"], 1, "{d}");
    assert_eq!(a["lines"][0]["locationId"], *west, "{d}");
    assert_eq!(a["lines"][1]["locationId"], *west, "{d}");
    // A mug (only in the east) and a cap (only in the west): two parcels, the split charged.
    let d = app.data(&token, POLICY, json!({ "i": { "splitCost": "7.5" } })).await;
    assert_eq!(d["allocationPolicyUpsert"]["userErrors"], json!([]), "{d}");
    let d = app
        .data(
            &token,
            CREATE,
            order(
                "al-4",
                json!([{ "sku": "AL-MUG", "quantity": 1 }, { "sku": "AL-CAP", "quantity": 1 }]),
                NEWARK.0,
                NEWARK.1,
                None,
            ),
        )
        .await;
    let a = &d["orderCreate"]["order"]["allocation"];
    assert_eq!(a["parcels"], 2, "{d}");
    assert_eq!(a["split"], "7.5", "{d}");
    assert_eq!(a["lines"][0]["locationId"], *east, "{d}");
    assert_eq!(a["lines"][1]["locationId"], *west, "{d}");
    assert_eq!(d["orderCreate"]["order"]["location"]["code"], "WH-EAST", "the first line's location");
    let split_order = d["orderCreate"]["order"]["id"].clone();

    // The split order ships as two parcels, the tracking on the order's own.
    let d = app.data(&token, FULFIL, json!({ "id": split_order })).await;
    assert_eq!(d["orderFulfill"]["order"]["status"], "FULFILLED", "{d}");
    let parcels = d["orderFulfill"]["shipments"].as_array().expect("shipments");
    assert_eq!(parcels.len(), 2, "{d}");
    assert_eq!(d["orderFulfill"]["shipment"]["location"]["code"], "WH-EAST");
    assert_eq!(d["orderFulfill"]["shipment"]["trackingNumber"], "1Z9");

    // A pinned location takes every order.
    let d = app.data(&token, POLICY, json!({ "i": { "pinnedLocationId": west } })).await;
    assert_eq!(d["allocationPolicyUpsert"]["allocationPolicy"]["pinnedLocation"]["code"], "WH-WEST", "{d}");
    let d = app
        .data(&token, CREATE, order("al-5", json!([{ "sku": "AL-TEE", "quantity": 1 }]), NEWARK.0, NEWARK.1, None))
        .await;
    assert_eq!(d["orderCreate"]["order"]["location"]["code"], "WH-WEST", "{d}");
    assert_eq!(d["orderCreate"]["order"]["allocation"]["method"], "PINNED");
    let d = app.data(&token, POLICY, json!({ "i": {} })).await;
    assert_eq!(d["allocationPolicyUpsert"]["allocationPolicy"]["pinnedLocation"], Value::Null, "{d}");

    // An order placed at a location it named is not allocated; re-allocating the open orders
    // moves it (and the pinned one) east, with its reservation.
    let d = app
        .data(
            &token,
            CREATE,
            order("al-6", json!([{ "sku": "AL-TEE", "quantity": 3 }]), NEWARK.0, NEWARK.1, Some(west)),
        )
        .await;
    let named = d["orderCreate"]["order"]["id"].clone();
    assert_eq!(d["orderCreate"]["order"]["allocation"], Value::Null, "{d}");
    let before_west = level(&app, &token, "AL-TEE", west).await;
    let before_east = level(&app, &token, "AL-TEE", east).await;
    let d = app.data(&token, ALLOCATE, json!({ "i": { "orderIds": [named] } })).await;
    let p = &d["orderAllocate"];
    assert_eq!(p["userErrors"], json!([]), "{d}");
    assert_eq!(p["reallocated"], 1, "{d}");
    assert_eq!(p["method"], "MILP");
    assert_eq!(p["allocations"][0]["order"]["location"]["code"], "WH-EAST");
    let (cost_before, cost_after): (f64, f64) = (
        p["costBefore"].as_str().expect("before").parse().expect("decimal"),
        p["costAfter"].as_str().expect("after").parse().expect("decimal"),
    );
    assert!(cost_after < cost_before, "{d}");
    assert_eq!(level(&app, &token, "AL-TEE", west).await, (before_west.0, before_west.1 - 3));
    assert_eq!(level(&app, &token, "AL-TEE", east).await, (before_east.0, before_east.1 + 3));
    // Again: nothing left to gain.
    let d = app.data(&token, ALLOCATE, json!({ "i": { "orderIds": [named] } })).await;
    assert_eq!(d["orderAllocate"]["reallocated"], 0, "{d}");
    // Every open order at once.
    let d = app.data(&token, ALLOCATE, json!({})).await;
    assert_eq!(d["orderAllocate"]["userErrors"], json!([]), "{d}");
    let costs: Vec<&Value> = d["orderAllocate"]["allocations"].as_array().expect("allocations").iter().collect();
    assert!(costs.len() >= 4, "{d}");
    let after: f64 = d["orderAllocate"]["costAfter"].as_str().expect("after").parse().expect("decimal");
    let before: f64 = d["orderAllocate"]["costBefore"].as_str().expect("before").parse().expect("decimal");
    assert!(after <= before, "{d}");

    // Refused: a fulfilled order, an unknown one; nothing changes.
    let d = app
        .data(
            &token,
            ALLOCATE,
            json!({ "i": { "orderIds": [split_order, "gid://quartermaster/Order/00000000-0000-7000-8000-000000000000"] } }),
        )
        .await;
    let e = &d["orderAllocate"]["userErrors"];
    assert_eq!(e[0]["code"], "INVALID_STATE", "{d}");
    assert_eq!(e[1]["code"], "NOT_FOUND", "{d}");

    // The ledger holds the moves and still verifies; events went out; KPIs count the orders.
    let d = app
        .data(
            &token,
            "query($l: ID) { stockMovements(locationId: $l, last: 50) { nodes { kind reason deltaReserved } } ledgerVerify { ok } }",
            json!({ "l": west }),
        )
        .await;
    assert_eq!(d["ledgerVerify"]["ok"], true, "{d}");
    assert!(
        d["stockMovements"]["nodes"]
            .as_array()
            .expect("movements")
            .iter()
            .any(|m| m["kind"] == "release" && m["reason"] == "order re-allocated" && m["deltaReserved"] == -3),
        "{d}"
    );
    let allocated = app.events(tenant, "order.allocated").await;
    assert!(allocated.len() >= 6, "{allocated:?}");
    assert!(allocated.iter().any(|e| e["method"] == "milp" && e["lines"][0]["sku"] == "AL-TEE"));
    let d = app
        .data(
            &token,
            "{ allocationKpis { orders averageShippingCost averageCost splitRate shipFromStoreShare } }",
            json!({}),
        )
        .await;
    let k = &d["allocationKpis"];
    assert!(k["orders"].as_u64() >= Some(5), "{d}");
    assert!(k["splitRate"].as_f64().expect("split rate") > 0.0, "{d}");
    assert!(k["averageShippingCost"].as_str().expect("avg").parse::<f64>().expect("decimal") > 0.0);

    // A viewer reads but cannot change.
    let viewer = app.state.jwt.mint(tenant, "viewer", &[Role::Viewer], None, Utc::now()).expect("token");
    let (_, body) = app.gql(&viewer, ALLOCATE, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn a_returns_plan_is_approved_into_the_stock_of_its_location_with_ledger_movements_and_events() {
    let app = TestApp::spawn().await;
    let (tenant, token) = demo(&app).await;
    let loc = location_ids(&app, &token).await;
    let (east, west) = (&loc["WH-EAST"], &loc["WH-WEST"]);
    app.product(&token, "ret-tee", &["RT-TEE"]).await;
    app.stock(&token, "RT-TEE", east, 20).await;
    let d = app
        .data(&token, CREATE, order("rt-1", json!([{ "sku": "RT-TEE", "quantity": 4 }]), NEWARK.0, NEWARK.1, None))
        .await;
    let o = d["orderCreate"]["order"]["id"].clone();

    // Only shipped units come back, at most what was ordered.
    let lines =
        json!([{ "sku": "RT-TEE", "quantity": 2, "grade": "A" }, { "sku": "RT-TEE", "quantity": 1, "grade": "D" }]);
    let d = app.data(&token, RETURN, json!({ "i": { "orderId": o, "reason": "too small", "lines": lines } })).await;
    assert_eq!(d["returnCreate"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
    let d = app.data(&token, FULFIL, json!({ "id": o })).await;
    assert_eq!(d["orderFulfill"]["order"]["status"], "FULFILLED", "{d}");
    let too_many = json!([{ "sku": "RT-TEE", "quantity": 5, "grade": "A" }]);
    let d = app.data(&token, RETURN, json!({ "i": { "orderId": o, "reason": "too small", "lines": too_many } })).await;
    assert_eq!(d["returnCreate"]["userErrors"][0]["field"], json!(["input", "lines", "0", "quantity"]), "{d}");
    let d = app.data(&token, RETURN, json!({ "i": { "orderId": o, "reason": "too small", "lines": lines } })).await;
    assert_eq!(d["returnCreate"]["userErrors"], json!([]), "{d}");
    assert_eq!(d["returnCreate"]["return"]["status"], "OPEN");
    // An ungraded unit waits for inspection.
    let ungraded = json!([{ "sku": "RT-TEE", "quantity": 1 }]);
    let d =
        app.data(&token, RETURN, json!({ "i": { "orderId": o, "reason": "changed mind", "lines": ungraded } })).await;
    assert_eq!(d["returnCreate"]["userErrors"], json!([]), "{d}");

    // Capacity: two items a day in the east, one in the west, none at the store: the third
    // item would cross the country to be liquidated, so it waits.
    let rp = "mutation($i: ReturnsPolicyUpsertInput!) { returnsPolicyUpsert(input: $i) {
        returnsPolicy { capacity } userErrors { field code message } } }";
    for (at, capacity) in [(east, 2), (west, 1)] {
        let d = app.data(&token, rp, json!({ "i": { "locationId": at, "capacity": capacity } })).await;
        assert_eq!(d["returnsPolicyUpsert"]["returnsPolicy"]["capacity"], capacity, "{d}");
    }
    let d = app.data(&token, rp, json!({ "i": { "locationId": east, "terms": [] } })).await;
    assert_eq!(d["returnsPolicyUpsert"]["userErrors"][0]["field"], json!(["input", "terms"]), "{d}");
    let d = app.data(&token, PLAN, json!({})).await;
    let run = &d["returnsPlanRun"]["returnsRun"];
    assert_eq!(run["itemsTotal"], 3, "{d}");
    assert_eq!(run["ungradedTotal"], 1, "{d}");
    assert_eq!(run["heldTotal"], 1, "{d}");
    assert_eq!(run["method"], "MILP");
    let first_run = run["id"].clone();
    let d = app
        .data(
            &token,
            "query($id: ID!) { node(id: $id) { ... on ReturnsRun { id heldTotal } } }",
            json!({ "id": first_run }),
        )
        .await;
    assert_eq!(d["node"]["heldTotal"], 1, "{d}");

    // Room for all: the next run replaces the first's proposals.
    for at in [east, west] {
        let d = app.data(&token, rp, json!({ "i": { "locationId": at, "capacity": 50 } })).await;
        assert_eq!(d["returnsPolicyUpsert"]["userErrors"], json!([]), "{d}");
    }
    let d = app.data(&token, PLAN, json!({})).await;
    let run = d["returnsPlanRun"]["returnsRun"].clone();
    assert_eq!(run["heldTotal"], 0, "{d}");
    assert_eq!(run["gap"], 0.0);
    let dispositions = d["returnsPlanRun"]["dispositions"].as_array().expect("dispositions").clone();
    let q = "query($run: ID) { returnDispositions(status: SUPERSEDED, runId: $run, first: 10) { nodes { id } } }";
    let superseded = app.data(&token, q, json!({ "run": first_run })).await;
    assert!(!superseded["returnDispositions"]["nodes"].as_array().expect("nodes").is_empty(), "{superseded}");
    let restock = dispositions.iter().find(|x| x["grade"] == "A").expect("grade A").clone();
    assert_eq!(restock["disposition"], "RESTOCK_NEW", "{d}");
    assert_eq!(restock["quantity"], 2);
    assert_eq!(restock["location"]["code"], "WH-EAST", "the nearest to the customer: {d}");
    let broken = dispositions.iter().find(|x| x["grade"] == "D").expect("grade D").clone();
    assert!(!["RESTOCK_NEW", "OPEN_BOX"].contains(&broken["disposition"].as_str().expect("disposition")), "{d}");

    // Nothing moves before approval.
    let (on_hand, _) = level(&app, &token, "RT-TEE", east).await;
    assert_eq!(on_hand, 16);
    // Two plans racing could each propose the same units: a copy of the restock proposal (as a
    // concurrent run would leave) can never be received on top of it.
    let copy = {
        use qm_api::db::entities::return_disposition;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let s = app.state.db.scoped(tenant, qm_api::db::TxMode::Write).await.expect("tx");
        let id = qm_tests::uuid_of(restock["id"].as_str().expect("id"));
        let row = return_disposition::Entity::find()
            .filter(return_disposition::Column::TenantId.eq(tenant))
            .filter(return_disposition::Column::Id.eq(id))
            .one(&s.tx)
            .await
            .expect("read")
            .expect("row");
        let dup = return_disposition::Model { id: uuid::Uuid::now_v7(), ..row };
        return_disposition::Entity::insert(return_disposition::ActiveModel::from(dup.clone()))
            .exec_without_returning(&s.tx)
            .await
            .expect("insert");
        s.commit().await.expect("commit");
        format!("gid://quartermaster/ReturnDisposition/{}", dup.id)
    };
    let d = app.data(&token, APPROVE, json!({ "ids": [restock["id"], copy] })).await;
    let e = &d["returnDispositionApprove"]["userErrors"][0];
    assert_eq!((&e["field"], e["code"].as_str()), (&json!(["input", "ids", "1"]), Some("INVALID_STATE")), "{d}");
    assert_eq!(level(&app, &token, "RT-TEE", east).await.0, 16, "all or none: nothing received");
    let ids = json!([restock["id"], broken["id"]]);
    let d = app.data(&token, APPROVE, json!({ "ids": ids })).await;
    assert_eq!(d["returnDispositionApprove"]["userErrors"], json!([]), "{d}");
    assert!(
        d["returnDispositionApprove"]["returnDispositions"]
            .as_array()
            .expect("decided")
            .iter()
            .all(|x| x["status"] == "APPROVED")
    );
    assert_eq!(level(&app, &token, "RT-TEE", east).await.0, 18, "the two grade-A units are back on the shelf");
    let d = app.data(&token, APPROVE, json!({ "ids": [copy] })).await;
    assert_eq!(d["returnDispositionApprove"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
    assert_eq!(level(&app, &token, "RT-TEE", east).await.0, 18, "received once");
    // Approving again changes nothing.
    let d = app.data(&token, APPROVE, json!({ "ids": ids })).await;
    assert_eq!(d["returnDispositionApprove"]["userErrors"], json!([]), "{d}");
    assert_eq!(level(&app, &token, "RT-TEE", east).await.0, 18);
    // Unknown ids refuse the whole decision.
    let d = app
        .data(&token, APPROVE, json!({ "ids": [restock["id"], "gid://quartermaster/ReturnDisposition/00000000-0000-7000-8000-000000000000"] }))
        .await;
    assert_eq!(d["returnDispositionApprove"]["userErrors"][0]["field"], json!(["input", "ids", "1"]), "{d}");

    let d = app
        .data(
            &token,
            "query($l: ID) { stockMovements(locationId: $l, last: 5) { nodes { kind reason deltaOnHand reference } } ledgerVerify { ok } returns(first: 5) { nodes { status reason } } }",
            json!({ "l": east }),
        )
        .await;
    assert_eq!(d["ledgerVerify"]["ok"], true, "{d}");
    let moves = d["stockMovements"]["nodes"].as_array().expect("movements");
    let back: Vec<&Value> = moves.iter().filter(|m| m["kind"] == "return").collect();
    assert_eq!(back.len(), 1, "{d}");
    assert_eq!(back[0]["deltaOnHand"], 2);
    assert_eq!(back[0]["reason"], "return restocked as new");
    let statuses: Vec<(&str, &str)> = d["returns"]["nodes"]
        .as_array()
        .expect("returns")
        .iter()
        .map(|r| (r["reason"].as_str().unwrap_or(""), r["status"].as_str().unwrap_or("")))
        .collect();
    assert!(statuses.contains(&("too small", "CLOSED")), "every line decided: {statuses:?}");
    assert!(statuses.contains(&("changed mind", "OPEN")), "{statuses:?}");
    let decided = app.events(tenant, "return.disposition_decided").await;
    assert_eq!(decided.len(), 2, "{decided:?}");
    let restocked = decided.iter().find(|e| e["disposition"] == "restock_new").expect("restock event");
    assert_eq!(restocked["quantity"], 2);
    assert_eq!(restocked["locationId"], *east);

    // A later run plans only what is still undecided (nothing graded).
    let d = app.data(&token, PLAN, json!({})).await;
    assert_eq!(d["returnsPlanRun"]["returnsRun"]["itemsTotal"], 0, "{d}");
    assert_eq!(d["returnsPlanRun"]["returnsRun"]["ungradedTotal"], 1, "{d}");

    // The ungraded unit, graded on inspection, is planned by the next run.
    let d = app.data(&token, "{ returns(first: 5) { nodes { reason lines { id condition } } } }", json!({})).await;
    let ungraded = d["returns"]["nodes"]
        .as_array()
        .expect("returns")
        .iter()
        .find(|r| r["reason"] == "changed mind")
        .map(|r| r["lines"][0].clone())
        .expect("the ungraded return");
    assert_eq!(ungraded["condition"], "unknown");
    let grade = "mutation($i: ReturnGradeInput!) { returnGrade(input: $i) { returnLines { id condition } userErrors { field code } } }";
    let d = app.data(&token, grade, json!({ "i": { "lines": [{ "id": ungraded["id"], "grade": "B" }] } })).await;
    assert_eq!(d["returnGrade"]["returnLines"][0]["condition"], "B", "{d}");
    let d = app.data(&token, PLAN, json!({})).await;
    assert_eq!(d["returnsPlanRun"]["returnsRun"]["itemsTotal"], 1, "{d}");
    assert_eq!(d["returnsPlanRun"]["returnsRun"]["ungradedTotal"], 0, "{d}");
    // A line whose units were received keeps its grade.
    let d = app.data(&token, "{ returns(first: 5) { nodes { reason lines { id } } } }", json!({})).await;
    let small = d["returns"]["nodes"]
        .as_array()
        .expect("returns")
        .iter()
        .find(|r| r["reason"] == "too small")
        .cloned()
        .expect("return");
    let d =
        app.data(&token, grade, json!({ "i": { "lines": [{ "id": small["lines"][0]["id"], "grade": "D" }] } })).await;
    assert_eq!(d["returnGrade"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");

    // Rates over the window.
    let rates = "query($g: ReturnRateGroup!) { returnRates(groupBy: $g) { key sold returned rate anomalous } }";
    let d = app.data(&token, rates, json!({ "g": "SKU" })).await;
    let tee =
        d["returnRates"].as_array().expect("rates").iter().find(|r| r["key"] == "RT-TEE").expect("RT-TEE").clone();
    assert_eq!((tee["sold"].as_u64(), tee["returned"].as_u64()), (Some(4), Some(4)), "{d}");
    let d = app.data(&token, rates, json!({ "g": "REASON" })).await;
    let small =
        d["returnRates"].as_array().expect("rates").iter().find(|r| r["key"] == "too small").expect("reason").clone();
    assert_eq!(small["returned"], 3, "{d}");
    let d = app.data(&token, rates, json!({ "g": "CHANNEL" })).await;
    assert_eq!(d["returnRates"][0]["key"], "api", "{d}");
}

#[tokio::test]
async fn a_sku_returned_far_more_than_its_category_raises_an_alert() {
    let app = TestApp::spawn().await;
    let t = app.tenant("rates").await;
    let wh = app.location(&t.owner_key, "WH").await;
    app.product(&t.owner_key, "tees", &["BAD-TEE", "OK-TEE-1", "OK-TEE-2"]).await;
    for (sku, returned) in [("BAD-TEE", 20), ("OK-TEE-1", 1), ("OK-TEE-2", 1)] {
        app.stock(&t.owner_key, sku, &wh, 40).await;
        let d = app
            .data(
                &t.owner_key,
                CREATE,
                order(&format!("o-{sku}"), json!([{ "sku": sku, "quantity": 40 }]), 40.7, -74.0, None),
            )
            .await;
        let id = d["orderCreate"]["order"]["id"].clone();
        let d = app.data(&t.owner_key, FULFIL, json!({ "id": id })).await;
        assert_eq!(d["orderFulfill"]["userErrors"], json!([]), "{d}");
        let lines = json!([{ "sku": sku, "quantity": returned, "grade": "B" }]);
        let d =
            app.data(&t.owner_key, RETURN, json!({ "i": { "orderId": id, "reason": "defect", "lines": lines } })).await;
        assert_eq!(d["returnCreate"]["userErrors"], json!([]), "{d}");
    }
    let d = app
        .data(
            &t.owner_key,
            "{ returnRates(groupBy: SKU) { key sold returned anomalous pValue categoryRate } }",
            json!({}),
        )
        .await;
    let rates = d["returnRates"].as_array().expect("rates");
    let flagged: Vec<&str> =
        rates.iter().filter(|r| r["anomalous"] == true).filter_map(|r| r["key"].as_str()).collect();
    assert_eq!(flagged, ["BAD-TEE"], "{d}");
    let d = app.data(&t.owner_key, PLAN, json!({})).await;
    assert_eq!(d["returnsPlanRun"]["returnsRun"]["itemsTotal"], 22, "{d}");
    let d = app.data(&t.owner_key, "{ alerts(first: 10) { nodes { kind subject variantId } } }", json!({})).await;
    let alerts: Vec<&Value> =
        d["alerts"]["nodes"].as_array().expect("alerts").iter().filter(|a| a["kind"] == "RETURN_RATE_HIGH").collect();
    assert_eq!(alerts.len(), 1, "{d}");
    assert!(alerts[0]["subject"].as_str().expect("subject").contains("BAD-TEE"));
    // Planning again the same week raises no second alert.
    app.data(&t.owner_key, PLAN, json!({})).await;
    let d = app.data(&t.owner_key, "{ alerts(first: 10) { nodes { kind } } }", json!({})).await;
    let n = d["alerts"]["nodes"].as_array().expect("alerts").iter().filter(|a| a["kind"] == "RETURN_RATE_HIGH").count();
    assert_eq!(n, 1, "{d}");
}

#[tokio::test]
async fn units_held_for_capacity_are_planned_again_after_the_rest_of_their_line_is_received() {
    let app = TestApp::spawn().await;
    let (_, token) = demo(&app).await;
    let loc = location_ids(&app, &token).await;
    let (east, west) = (&loc["WH-EAST"], &loc["WH-WEST"]);
    app.product(&token, "held-tee", &["HT-TEE"]).await;
    app.stock(&token, "HT-TEE", east, 10).await;
    let d = app
        .data(&token, CREATE, order("ht-1", json!([{ "sku": "HT-TEE", "quantity": 3 }]), NEWARK.0, NEWARK.1, None))
        .await;
    let o = d["orderCreate"]["order"]["id"].clone();
    app.data(&token, FULFIL, json!({ "id": o })).await;
    let lines = json!([{ "sku": "HT-TEE", "quantity": 3, "grade": "A" }]);
    let d = app.data(&token, RETURN, json!({ "i": { "orderId": o, "reason": "too big", "lines": lines } })).await;
    assert_eq!(d["returnCreate"]["userErrors"], json!([]), "{d}");
    let rp = "mutation($i: ReturnsPolicyUpsertInput!) { returnsPolicyUpsert(input: $i) { userErrors { message } } }";
    for (at, capacity) in [(east, 2), (west, 0)] {
        app.data(&token, rp, json!({ "i": { "locationId": at, "capacity": capacity } })).await;
    }
    let d = app.data(&token, PLAN, json!({})).await;
    assert_eq!(d["returnsPlanRun"]["returnsRun"]["heldTotal"], 1, "{d}");
    let proposed: Vec<Value> = d["returnsPlanRun"]["dispositions"]
        .as_array()
        .expect("dispositions")
        .iter()
        .filter(|x| x["status"] == "PROPOSED")
        .cloned()
        .collect();
    assert_eq!(proposed.len(), 1, "{d}");
    assert_eq!(proposed[0]["quantity"], 2);
    let d = app.data(&token, APPROVE, json!({ "ids": [proposed[0]["id"]] })).await;
    assert_eq!(d["returnDispositionApprove"]["userErrors"], json!([]), "{d}");
    // The next day's plan takes the held unit, and only it.
    let d = app.data(&token, PLAN, json!({})).await;
    assert_eq!(d["returnsPlanRun"]["returnsRun"]["itemsTotal"], 1, "{d}");
    let left = &d["returnsPlanRun"]["dispositions"][0];
    assert_eq!((left["quantity"].as_i64(), left["status"].as_str()), (Some(1), Some("PROPOSED")), "{d}");
}
