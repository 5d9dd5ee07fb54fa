//! Route plans through the API: a day's unshipped orders planned onto a fleet (routes, ETAs,
//! loads, CO2, unassigned stops with reasons), re-plans after late changes, bad input, and
//! (when `QM_TEST_OSRM_URL` names a real OSRM server with the Monaco map, as `.ci/run` starts)
//! a 60-stop plan over real roads checked against OSRM itself.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use qm_tests::{TestApp, TestTenant};
use serde_json::{Value, json};

/// The plans' day. A plan takes the orders placed by the end of its day, so it lies after any day
/// these tests run on (a day that had passed would plan none of the orders they place).
const DATE: &str = "2096-06-04";
const DEPOT: (f64, f64) = (43.7396, 7.4286);

const RUN: &str = "mutation($i: RoutePlanRunInput!) { routePlanRun(input: $i) { routePlan { id status } userErrors { field code message } } }";
const REPLAN: &str = "mutation($id: ID!, $c: RoutePlanChangesInput!) { routePlanReoptimise(id: $id, changes: $c) { routePlan { id status } userErrors { field code message } } }";
const PLAN: &str = "query($id: ID!) { routePlan(id: $id) { id status matrixSource distance duration co2Kg cost error basePlanId
    routes { id vehicle status load capacity departureAt returnAt distance duration drivingDuration co2Kg cost
      stops { sequence orderId latitude longitude load arrivalAt serviceStartAt departureAt travelDistance travelDuration } }
    unassigned { orderId reason message load } } }";

/// Metres along the great circle (the test's own formula, on the same mean radius).
fn great_circle(a: (f64, f64), b: (f64, f64)) -> f64 {
    let r = 6_371_008.8;
    let (p1, p2) = (a.0.to_radians(), b.0.to_radians());
    let (dp, dl) = ((b.0 - a.0).to_radians(), (b.1 - a.1).to_radians());
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().asin()
}

/// `n` points in central Monaco, the same for a seed (a small linear congruential generator).
fn points(n: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n).map(|_| (43.727 + 0.021 * next(), 7.412 + 0.025 * next())).collect()
}

fn at(s: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s.as_str().expect("a time")).expect("RFC 3339").to_utc()
}

fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

struct Shop {
    token: String,
    location: String,
}

async fn shop(app: &TestApp, t: &TestTenant) -> Shop {
    let token = t.owner_key.clone();
    let d = app
        .data(
            &token,
            "mutation($i: LocationUpsertInput!) { locationUpsert(input: $i) { location { id } userErrors { message } } }",
            json!({ "i": { "code": "DS1", "name": "Dark store", "kind": "STORE", "latitude": DEPOT.0, "longitude": DEPOT.1 } }),
        )
        .await;
    let location = d["locationUpsert"]["location"]["id"].as_str().expect("location").to_owned();
    app.product(&token, "box", &["BOX"]).await;
    app.stock(&token, "BOX", &location, 10_000).await;
    Shop { token, location }
}

async fn order(app: &TestApp, s: &Shop, ext: &str, quantity: i32, ship_to: Value) -> String {
    let d = app
        .data(
            &s.token,
            "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id } userErrors { field code message } } }",
            json!({ "i": { "externalId": ext, "locationId": s.location, "lines": [{ "sku": "BOX", "quantity": quantity }], "shipTo": ship_to } }),
        )
        .await;
    d["orderCreate"]["order"]["id"].as_str().unwrap_or_else(|| panic!("order {ext}: {d}")).to_owned()
}

fn at_point(p: (f64, f64)) -> Value {
    json!({ "address1": "1 Rue", "city": "Monaco", "latitude": p.0, "longitude": p.1 })
}

/// Queues a plan (or a re-plan), runs the jobs, and returns the plan.
async fn ready(app: &TestApp, token: &str, queued: &Value, field: &str) -> Value {
    let p = &queued[field];
    assert_eq!(p["userErrors"], json!([]), "{queued}");
    assert_eq!(p["routePlan"]["status"], "QUEUED");
    let id = p["routePlan"]["id"].as_str().expect("plan id").to_owned();
    app.drain_jobs().await;
    let d = app.data(token, PLAN, json!({ "id": id })).await;
    assert_eq!(d["routePlan"]["status"], "READY", "{d}");
    d["routePlan"].clone()
}

async fn plan(app: &TestApp, token: &str, input: Value) -> Value {
    let d = app.data(token, RUN, json!({ "i": input })).await;
    ready(app, token, &d, "routePlanRun").await
}

fn vans(n: usize, capacity: i64) -> Value {
    json!((0..n).map(|i| json!({ "name": format!("van-{}", i + 1), "capacity": capacity, "shiftStart": "08:00:00", "shiftEnd": "20:00:00", "costPerKm": "0.80", "fixedCost": "0", "co2GramsPerKm": 200.0 })).collect::<Vec<_>>())
}

/// Order ids on the plan's routes, each route's in sequence.
fn served(plan: &Value) -> Vec<Vec<String>> {
    plan["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            r["stops"]
                .as_array()
                .expect("stops")
                .iter()
                .map(|s| s["orderId"].as_str().expect("id").to_owned())
                .collect()
        })
        .collect()
}

/// Checks every route of `plan` for what a dispatcher relies on, with the leg lengths and
/// durations `leg` gives (from, to) → (metres, seconds): sequence, load within capacity, each
/// arrival the previous departure plus the drive, service after arrival, the route's totals, its
/// shift, its CO2 at 200 g/km. `fixed` routes (kept from a base plan) are checked for load only.
fn check_routes(plan: &Value, service_s: f64, leg: &dyn Fn((f64, f64), (f64, f64)) -> (f64, f64)) {
    let day = |t: &str| at(&json!(format!("{DATE}T{t}Z")));
    for r in plan["routes"].as_array().expect("routes") {
        let stops = r["stops"].as_array().expect("stops");
        assert!(!stops.is_empty(), "an empty route is not listed: {r}");
        let load: i64 = stops.iter().map(|s| s["load"].as_i64().expect("load")).sum();
        assert_eq!(r["load"].as_i64(), Some(load), "{r}");
        assert!(load <= r["capacity"].as_i64().expect("capacity"), "over capacity: {r}");
        if r["status"] == "STARTED" {
            continue;
        }
        let (mut from, mut clock) = (DEPOT, at(&r["departureAt"]));
        assert!(clock >= day("08:00:00"), "leaves before the shift: {r}");
        let (mut distance, mut driving) = (0.0, 0.0);
        for (k, s) in stops.iter().enumerate() {
            assert_eq!(s["sequence"].as_i64(), Some(k as i64 + 1));
            let to = (s["latitude"].as_f64().expect("lat"), s["longitude"].as_f64().expect("lon"));
            let (m, t) = leg(from, to);
            assert!((s["travelDistance"].as_f64().expect("m") - m).abs() < 0.5, "leg distance {s} vs {m}");
            assert!((s["travelDuration"].as_f64().expect("s") - t).abs() < 0.5, "leg duration {s} vs {t}");
            let arrival = at(&s["arrivalAt"]);
            assert!((secs(clock, arrival) - t).abs() < 1.0, "ETA is the previous departure plus the drive: {s}");
            let start = at(&s["serviceStartAt"]);
            assert!(start >= arrival, "{s}");
            assert!((secs(start, at(&s["departureAt"])) - service_s).abs() < 1.0, "{s}");
            distance += m;
            driving += t;
            clock = at(&s["departureAt"]);
            from = to;
        }
        let (m, t) = leg(from, DEPOT);
        distance += m;
        driving += t;
        assert!((secs(clock, at(&r["returnAt"])) - t).abs() < 1.0, "{r}");
        assert!(at(&r["returnAt"]) <= day("20:00:00"), "back after the shift: {r}");
        assert!((r["distance"].as_f64().expect("distance") - distance).abs() < 1.0, "{r}");
        assert!((r["drivingDuration"].as_f64().expect("driving") - driving).abs() < 1.0, "{r}");
        let duration = secs(at(&r["departureAt"]), at(&r["returnAt"]));
        assert!((r["duration"].as_f64().expect("duration") - duration).abs() < 1.0, "{r}");
        assert!((r["co2Kg"].as_f64().expect("co2") - distance / 1000.0 * 0.2).abs() < 1e-3, "{r}");
    }
    let total: f64 =
        plan["routes"].as_array().expect("routes").iter().map(|r| r["distance"].as_f64().unwrap_or(0.0)).sum();
    assert!((plan["distance"].as_f64().expect("distance") - total).abs() < 1e-6, "{plan}");
}

/// Great-circle legs at the default 30 km/h.
fn haversine_leg(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let m = great_circle(a, b);
    (m, m / (30.0 / 3.6))
}

#[tokio::test]
async fn a_day_is_planned_onto_the_fleet_with_etas_loads_and_reasons() {
    let app = TestApp::spawn().await;
    let t = app.tenant("routes").await;
    let s = shop(&app, &t).await;
    let mut servable = HashSet::new();
    for (i, p) in points(12, 7).into_iter().enumerate() {
        servable.insert(order(&app, &s, &format!("o-{i}"), 2, at_point(p)).await);
    }
    let late = points(1, 99)[0];
    let windowed = order(&app, &s, "afternoon", 1, {
        let mut v = at_point(late);
        v["deliveryWindows"] = json!([{ "from": format!("{DATE}T14:00:00Z"), "to": format!("{DATE}T14:30:00Z") }]);
        v
    })
    .await;
    servable.insert(windowed.clone());
    let nowhere = order(&app, &s, "no-address", 1, json!({ "city": "Monaco" })).await;
    let too_big = order(&app, &s, "pallet", 11, at_point(points(1, 5)[0])).await;
    let too_early = order(&app, &s, "dawn", 1, {
        let mut v = at_point(points(1, 6)[0]);
        v["deliveryWindows"] = json!([{ "from": format!("{DATE}T05:00:00Z"), "to": format!("{DATE}T06:00:00Z") }]);
        v
    })
    .await;

    let plan = plan(
        &app,
        &s.token,
        json!({ "locationId": s.location, "date": DATE, "vehicles": vans(3, 10), "timeLimitSeconds": 1 }),
    )
    .await;
    assert_eq!(plan["matrixSource"], "HAVERSINE");
    assert_eq!(plan["error"], Value::Null);
    let routes = served(&plan);
    let all: Vec<&String> = routes.iter().flatten().collect();
    assert_eq!(all.len(), servable.len(), "each servable order once: {plan}");
    assert_eq!(all.iter().map(|s| (*s).clone()).collect::<HashSet<_>>(), servable);
    check_routes(&plan, 300.0, &haversine_leg);
    let stop = plan["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .flat_map(|r| r["stops"].as_array().expect("stops").iter())
        .find(|st| st["orderId"] == json!(windowed))
        .expect("the windowed stop");
    let start = at(&stop["serviceStartAt"]);
    assert!(
        start >= at(&json!(format!("{DATE}T14:00:00Z"))) && start <= at(&json!(format!("{DATE}T14:30:00Z"))),
        "{stop}"
    );
    let reasons: HashMap<String, String> = plan["unassigned"]
        .as_array()
        .expect("unassigned")
        .iter()
        .map(|u| (u["orderId"].as_str().expect("id").to_owned(), u["reason"].as_str().expect("reason").to_owned()))
        .collect();
    let expected: HashMap<String, String> =
        [(nowhere, "NO_COORDINATES"), (too_big, "CAPACITY"), (too_early, "TIME_WINDOW")]
            .into_iter()
            .map(|(o, r)| (o, r.to_owned()))
            .collect();
    assert_eq!(reasons, expected, "{plan}");
    assert!(
        plan["unassigned"]
            .as_array()
            .expect("list")
            .iter()
            .all(|u| !u["message"].as_str().unwrap_or_default().is_empty())
    );
    let km: f64 = plan["distance"].as_f64().expect("distance") / 1000.0;
    let cost: f64 = plan["cost"].as_str().expect("cost").parse().expect("decimal");
    assert!((cost - 0.8 * km).abs() < 0.02, "cost at 0.80 per km: {cost} for {km} km");

    // With no search time the construction alone answers: still every servable stop, feasibly.
    let quick = self::plan(
        &app,
        &s.token,
        json!({ "locationId": s.location, "date": DATE, "vehicles": vans(3, 10), "timeLimitSeconds": 0 }),
    )
    .await;
    assert_eq!(served(&quick).into_iter().flatten().collect::<HashSet<_>>(), servable, "{quick}");
    check_routes(&quick, 300.0, &haversine_leg);
    assert!(
        quick["distance"].as_f64() >= plan["distance"].as_f64().map(|d| d - 1.0),
        "the search does not make it longer"
    );

    // The plan was announced, and it is listed by location and date.
    let d = app
        .data(
            &s.token,
            "query($l: ID!, $d: NaiveDate!) { routePlans(locationId: $l, date: $d, first: 5) { nodes { id status } } }",
            json!({ "l": s.location, "d": DATE }),
        )
        .await;
    assert_eq!(
        d["routePlans"]["nodes"],
        json!([{ "id": plan["id"], "status": "READY" }, { "id": quick["id"], "status": "READY" }])
    );
    let events = ready_events(&app, &t).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["planId"], plan["id"]);
    assert_eq!(events[0]["locationId"], json!(s.location));
    assert_eq!(events[0]["unassigned"], 3);
}

/// Payloads of the tenant's `route_plan.ready` events, oldest first.
async fn ready_events(app: &TestApp, t: &TestTenant) -> Vec<Value> {
    use qm_api::db::entities::event;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let s = app.state.db.scoped(t.id, qm_api::db::TxMode::Read).await.expect("tx");
    let rows = event::Entity::find()
        .filter(event::Column::TenantId.eq(t.id))
        .filter(event::Column::EventType.eq("route_plan.ready"))
        .order_by_asc(event::Column::OccurredAt)
        .all(&s.tx)
        .await
        .expect("events");
    s.commit().await.expect("commit");
    rows.into_iter().map(|e| e.payload).collect()
}

#[tokio::test]
async fn a_re_plan_keeps_started_routes_and_takes_an_urgent_order() {
    let app = TestApp::spawn().await;
    let t = app.tenant("replan").await;
    let s = shop(&app, &t).await;
    for (i, p) in points(8, 11).into_iter().enumerate() {
        order(&app, &s, &format!("o-{i}"), 1, at_point(p)).await;
    }
    let first = plan(
        &app,
        &s.token,
        json!({ "locationId": s.location, "date": DATE, "vehicles": vans(4, 3), "timeLimitSeconds": 1 }),
    )
    .await;
    let routes = first["routes"].as_array().expect("routes").clone();
    assert!(routes.len() >= 3, "8 stops on vans of 3 need three routes: {first}");
    let (started, changed) = (&routes[0], &routes[1]);
    let cancelled = changed["stops"][0]["orderId"].as_str().expect("order").to_owned();
    let urgent = order(&app, &s, "urgent", 1, {
        let mut v = at_point(points(1, 42)[0]);
        v["deliveryWindows"] = json!([{ "from": format!("{DATE}T10:00:00Z"), "to": format!("{DATE}T11:00:00Z") }]);
        v
    })
    .await;
    let as_of = format!("{DATE}T09:00:00Z");
    let changes = json!({ "startedRouteIds": [started["id"]], "cancelledOrderIds": [cancelled], "addedOrderIds": [urgent, urgent], "asOf": as_of });
    let d = app.data(&s.token, REPLAN, json!({ "id": first["id"], "c": changes })).await;
    let second = ready(&app, &s.token, &d, "routePlanReoptimise").await;
    assert_eq!(second["basePlanId"], first["id"]);
    let old =
        app.data(&s.token, "query($id: ID!) { routePlan(id: $id) { status } }", json!({ "id": first["id"] })).await;
    assert_eq!(old["routePlan"]["status"], "SUPERSEDED");

    // The started route is untouched: same vehicle, same stops in the same order, same times.
    let kept = &second["routes"][0];
    assert_eq!(kept["status"], "STARTED");
    let strip = |r: &Value| json!({ "vehicle": r["vehicle"], "departureAt": r["departureAt"], "returnAt": r["returnAt"], "distance": r["distance"], "stops": r["stops"] });
    assert_eq!(strip(kept), strip(started));
    // The urgent order is delivered in its window; the cancelled one is gone; the others stay.
    let all: Vec<String> = served(&second).into_iter().flatten().collect();
    assert!(all.contains(&urgent), "{second}");
    assert!(!all.contains(&cancelled) && !second.to_string().contains(&cancelled), "{second}");
    assert_eq!(all.len(), 8, "8 - 1 cancelled + 1 urgent, each once: {second}");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 8);
    assert_eq!(second["unassigned"], json!([]));
    let urgent_stop = second["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .flat_map(|r| r["stops"].as_array().expect("stops").iter())
        .find(|st| st["orderId"] == json!(urgent))
        .expect("urgent stop");
    let start = at(&urgent_stop["serviceStartAt"]);
    assert!(start >= at(&json!(format!("{DATE}T10:00:00Z"))) && start <= at(&json!(format!("{DATE}T11:00:00Z"))));
    for r in second["routes"].as_array().expect("routes").iter().filter(|r| r["status"] == "PLANNED") {
        assert!(at(&r["departureAt"]) >= at(&json!(as_of)), "a vehicle not on the road leaves after asOf: {r}");
    }
    check_routes(&second, 300.0, &haversine_leg);

    // A planned van breaks down: it is left out and its stops go to the others; the started
    // route is still untouched.
    let broken = second["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["status"] == "PLANNED")
        .expect("a planned route")
        .clone();
    let d = app
        .data(
            &s.token,
            REPLAN,
            json!({ "id": second["id"], "c": { "brokenDownRouteIds": [broken["id"]], "asOf": as_of } }),
        )
        .await;
    let third = ready(&app, &s.token, &d, "routePlanReoptimise").await;
    assert!(third["routes"].as_array().expect("routes").iter().all(|r| r["vehicle"] != broken["vehicle"]), "{third}");
    assert_eq!(strip(&third["routes"][0]), strip(started));
    let all: HashSet<String> = served(&third).into_iter().flatten().collect();
    assert_eq!(all.len(), 8, "every stop still served once: {third}");
    check_routes(&third, 300.0, &haversine_leg);
    assert_eq!(ready_events(&app, &t).await.len(), 3);
}

#[tokio::test]
async fn bad_route_plan_input_gets_typed_errors_and_queues_nothing() {
    let app = TestApp::spawn().await;
    let t = app.tenant("bad-routes").await;
    let s = shop(&app, &t).await;
    let no_coords = app.location(&s.token, "NOWHERE").await;
    app.data(
        &s.token,
        "mutation($i: LocationUpsertInput!) { locationUpsert(input: $i) { location { id } } }",
        json!({ "i": { "id": no_coords, "code": "NOWHERE", "name": "n", "kind": "WAREHOUSE" } }),
    )
    .await;
    let other = app.location(&s.token, "OTHER").await;
    app.stock(&s.token, "BOX", &other, 5).await;
    let d = app
        .data(
            &s.token,
            "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id } } }",
            json!({ "i": { "externalId": "elsewhere", "locationId": other, "lines": [{ "sku": "BOX", "quantity": 1 }] } }),
        )
        .await;
    let elsewhere = d["orderCreate"]["order"]["id"].as_str().expect("order").to_owned();
    let d = app
        .data(
            &s.token,
            "mutation($id: ID!) { orderFulfill(input: { id: $id }) { shipment { id } } }",
            json!({ "id": elsewhere }),
        )
        .await;
    let foreign_shipment = d["orderFulfill"]["shipment"]["id"].as_str().expect("shipment").to_owned();

    let base = json!({ "locationId": s.location, "date": DATE, "vehicles": vans(1, 5) });
    let with = |k: &str, v: Value| {
        let mut i = base.clone();
        i[k] = v;
        i
    };
    let cases = [
        (
            with("locationId", json!("gid://quartermaster/Location/00000000-0000-0000-0000-000000000001")),
            json!(["input", "locationId"]),
            "NOT_FOUND",
        ),
        (with("locationId", json!(no_coords)), json!(["input", "locationId"]), "INVALID"),
        (with("vehicles", json!([])), json!(["input", "vehicles"]), "INVALID"),
        (
            with("vehicles", json!([{ "name": "a", "capacity": 0 }])),
            json!(["input", "vehicles", "0", "capacity"]),
            "INVALID",
        ),
        (
            with("vehicles", json!([{ "name": "a", "capacity": 2 }, { "name": "a", "capacity": 2 }])),
            json!(["input", "vehicles", "1", "name"]),
            "INVALID",
        ),
        (
            with("vehicles", json!([{ "name": "a", "capacity": 2, "shiftStart": "18:00:00", "shiftEnd": "08:00:00" }])),
            json!(["input", "vehicles", "0", "shiftEnd"]),
            "INVALID",
        ),
        (
            with("vehicles", json!([{ "name": "a", "capacity": 2, "costPerKm": "-1" }])),
            json!(["input", "vehicles", "0", "costPerKm"]),
            "INVALID",
        ),
        (with("timeLimitSeconds", json!(-1)), json!(["input", "timeLimitSeconds"]), "INVALID"),
        (with("timeLimitSeconds", json!(31)), json!(["input", "timeLimitSeconds"]), "INVALID"),
        (with("date", json!("1999-12-31")), json!(["input", "date"]), "INVALID"),
        (
            with("vehicles", json!([{ "name": "a", "capacity": 2, "fixedCost": "1e12" }])),
            json!(["input", "vehicles", "0", "fixedCost"]),
            "INVALID",
        ),
        (with("serviceMinutes", json!(-1)), json!(["input", "serviceMinutes"]), "INVALID"),
        (with("shipmentIds", json!([foreign_shipment])), json!(["input", "shipmentIds", "0"]), "INVALID"),
        (with("shipmentIds", json!(["not-an-id"])), json!(["input", "shipmentIds", "0"]), "NOT_FOUND"),
    ];
    for (input, field, code) in cases {
        let d = app.data(&s.token, RUN, json!({ "i": input })).await;
        let p = &d["routePlanRun"];
        assert_eq!(p["routePlan"], Value::Null, "{input}: {d}");
        assert_eq!(
            (&p["userErrors"][0]["field"], p["userErrors"][0]["code"].as_str()),
            (&field, Some(code)),
            "{input}: {d}"
        );
    }
    let d = app.data(&s.token, "{ routePlans(first: 5) { nodes { id } } }", json!({})).await;
    assert_eq!(d["routePlans"]["nodes"], json!([]), "nothing was queued");

    // A plan not yet ready cannot be re-planned; a route of another plan is not found.
    let d = app.data(&s.token, RUN, json!({ "i": base })).await;
    let queued = d["routePlanRun"]["routePlan"]["id"].clone();
    let d = app.data(&s.token, REPLAN, json!({ "id": queued, "c": {} })).await;
    assert_eq!(d["routePlanReoptimise"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
    app.drain_jobs().await;
    let d = app.data(&s.token, REPLAN, json!({ "id": queued, "c": { "startedRouteIds": ["gid://quartermaster/RoutePlanRoute/00000000-0000-0000-0000-000000000001"] } })).await;
    assert_eq!(d["routePlanReoptimise"]["userErrors"][0]["field"], json!(["changes", "startedRouteIds", "0"]), "{d}");
    let d = app.data(&s.token, REPLAN, json!({ "id": queued, "c": { "addedOrderIds": [elsewhere] } })).await;
    assert_eq!(d["routePlanReoptimise"]["userErrors"][0]["code"], "INVALID", "an order of another location: {d}");
    // A viewer may read plans but not make them.
    let viewer = app.jwt(&t, &[qm_domain::Role::Viewer]);
    let (_, body) = app.gql(&viewer, RUN, json!({ "i": base })).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
}

/// A real OSRM server: `QM_TEST_OSRM_URL` (`.ci/run` starts one with the Monaco map). Without
/// it this test says so and passes: a user's clone has no OSRM.
fn osrm_url() -> Option<String> {
    std::env::var("QM_TEST_OSRM_URL").ok().filter(|u| !u.is_empty())
}

/// OSRM's `service` (table, route) over `points` (latitude, longitude), asked directly.
async fn osrm(url: &str, service: &str, points: &[(f64, f64)], options: &str) -> Value {
    let list = points.iter().map(|(lat, lon)| format!("{lon:.6},{lat:.6}")).collect::<Vec<_>>().join(";");
    let answer: Value = reqwest::get(format!("{url}/{service}/v1/driving/{list}?{options}"))
        .await
        .expect("OSRM answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["code"], "Ok", "{answer}");
    answer
}

#[tokio::test]
async fn sixty_stops_in_monaco_are_planned_over_osrm_roads() {
    let Some(url) = osrm_url() else {
        eprintln!("QM_TEST_OSRM_URL is not set: the OSRM test is skipped");
        return;
    };
    // Blocks of 12 points a request: the 61 points need 36 table requests.
    let app = TestApp::spawn_with(|c| {
        c.osrm_url = Some(url.clone());
        c.osrm_table_limit = 25;
    })
    .await;
    let t = app.tenant("monaco").await;
    let s = shop(&app, &t).await;
    let stops = points(60, 2026);
    let mut ids = Vec::new();
    for (i, p) in stops.iter().enumerate() {
        ids.push(order(&app, &s, &format!("m-{i}"), 1, at_point(*p)).await);
    }
    // In the sea, thousands of kilometres from any road of the map.
    let sea = order(&app, &s, "at-sea", 1, at_point((0.5, 0.5))).await;
    let plan = plan(
        &app,
        &s.token,
        json!({ "locationId": s.location, "date": DATE, "vehicles": vans(4, 20), "timeLimitSeconds": 3 }),
    )
    .await;
    assert_eq!(plan["matrixSource"], "OSRM", "{plan}");
    assert_eq!(plan["unassigned"].as_array().map(Vec::len), Some(1), "{plan}");
    assert_eq!(plan["unassigned"][0]["orderId"], json!(sea));
    assert_eq!(plan["unassigned"][0]["reason"], "UNREACHABLE");
    let all: HashSet<String> = served(&plan).into_iter().flatten().collect();
    assert_eq!(all, ids.iter().cloned().collect::<HashSet<_>>(), "all 60 served once");

    // The matrix is OSRM's: one direct table query of all 61 points gives every leg of the plan,
    // and it is asymmetric (one-way streets).
    let coords: Vec<(f64, f64)> = std::iter::once(DEPOT).chain(stops.iter().copied()).collect();
    let table = osrm(&url, "table", &coords, "annotations=duration,distance").await;
    let cell = |m: &str, i: usize, j: usize| table[m][i][j].as_f64().expect("a number");
    let asymmetric = (0..61)
        .flat_map(|i| (0..61).map(move |j| (i, j)))
        .filter(|&(i, j)| (cell("durations", i, j) - cell("durations", j, i)).abs() > 1.0)
        .count();
    assert!(asymmetric > 100, "OSRM's matrix is asymmetric ({asymmetric} pairs differ)");
    let index = |p: (f64, f64)| {
        coords.iter().position(|c| (c.0 - p.0).abs() < 1e-9 && (c.1 - p.1).abs() < 1e-9).expect("a planned point")
    };
    let leg =
        |a: (f64, f64), b: (f64, f64)| (cell("distances", index(a), index(b)), cell("durations", index(a), index(b)));
    check_routes(&plan, 300.0, &leg);

    // Each route's driving time agrees with OSRM's route through the same sequence within 1 %.
    for r in plan["routes"].as_array().expect("routes") {
        let mut way = vec![DEPOT];
        way.extend(
            r["stops"]
                .as_array()
                .expect("stops")
                .iter()
                .map(|s| (s["latitude"].as_f64().expect("lat"), s["longitude"].as_f64().expect("lon"))),
        );
        way.push(DEPOT);
        let route = osrm(&url, "route", &way, "overview=false&continue_straight=false").await;
        let osrm = route["routes"][0]["duration"].as_f64().expect("duration");
        let ours = r["drivingDuration"].as_f64().expect("driving");
        assert!((ours - osrm).abs() <= 0.01 * osrm, "route {}: {ours} s planned, OSRM's route {osrm} s", r["vehicle"]);
        let osrm_m = route["routes"][0]["distance"].as_f64().expect("distance");
        assert!((r["distance"].as_f64().expect("m") - osrm_m).abs() <= 0.01 * osrm_m, "{r} vs {osrm_m} m");
    }
}

/// A tenant's shop with one order, and the id of the plan queued for it (its job not yet run).
async fn one_order_plan(app: &TestApp) -> (Shop, String) {
    let t = app.tenant("acme").await;
    let s = shop(app, &t).await;
    order(app, &s, "o-1", 1, at_point((43.7312, 7.4197))).await;
    let input = json!({ "locationId": s.location, "date": DATE, "vehicles": vans(1, 20) });
    let d = app.data(&s.token, RUN, json!({ "i": input })).await;
    let id = d["routePlanRun"]["routePlan"]["id"].as_str().expect("plan id").to_owned();
    (s, id)
}

/// A plan whose job gives up (the road server unreachable through every attempt) is FAILED with
/// the reason, not left RUNNING for a job that will not come back.
#[tokio::test]
async fn a_plan_whose_job_gives_up_is_failed_with_the_reason() {
    let closed = format!("http://127.0.0.1:{}", qm_tests::free_port());
    let app = TestApp::spawn_with(|c| c.osrm_url = Some(closed.clone())).await;
    let (s, id) = one_order_plan(&app).await;
    // The job retries (the connection is refused: a transient error) until its attempts are used up.
    app.drain_jobs().await;
    let first = app.data(&s.token, PLAN, json!({ "id": id })).await;
    assert_eq!(first["routePlan"]["status"], "RUNNING", "{first}");
    app.settle_jobs(12).await;
    let d = app.data(&s.token, PLAN, json!({ "id": id })).await;
    assert_eq!(d["routePlan"]["status"], "FAILED", "{d}");
    let error = d["routePlan"]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("its job failed: ") && error.contains("127.0.0.1"), "{d}");
}

/// A plan whose worker dies on the job's last attempt is FAILED once the lease expires (the
/// reaper dead-letters the job and tells its handler), not left RUNNING.
#[tokio::test]
async fn a_plan_whose_worker_dies_on_the_last_attempt_is_failed() {
    let app = TestApp::spawn().await;
    let (s, id) = one_order_plan(&app).await;
    assert_eq!(app.crash_on_last_attempt("route_plan.run").await, 1);
    app.drain_jobs().await;
    let d = app.data(&s.token, PLAN, json!({ "id": id })).await;
    assert_eq!(d["routePlan"]["status"], "FAILED", "{d}");
    assert_eq!(d["routePlan"]["error"], "its job failed: lease expired", "{d}");
}
