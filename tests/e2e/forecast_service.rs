//! Forecasts through the API: the demo tenant's runs (queued at seeding, then nightly), every
//! SKU × location forecast with accuracy, a predicted stockout announced, overrides.

use qm_api::db::TxMode;
use qm_domain::demo::DemoParams;
use qm_tests::{TestApp, TestTenant};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

const RUNS: &str =
    "{ forecastRuns(last: 10) { nodes { status horizon seriesTotal seriesDone requestedBy finishedAt } } }";

async fn demo(app: &TestApp) -> (TestTenant, usize) {
    let today = chrono::Utc::now().date_naive();
    let params = DemoParams { seed: 11, end: today.pred_opt().expect("yesterday"), days: 120, products: 6 };
    let seeded = qm_api::demo::seed(&app.state.db, &params).await.expect("seed");
    let t = TestTenant { id: seeded.tenant_id, slug: "demo".into(), owner_key: String::new() };
    (t, seeded.variants * 3)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
}

/// The `stock.out_predicted` events of one SKU at one location.
/// The `stock.out_predicted` events of one series, in the order they were emitted.
async fn stock_out_predicted(app: &TestApp, t: &TestTenant, sku: &str, loc: &str) -> Vec<Value> {
    let events = app.events(t.id, "stock.out_predicted").await;
    events.into_iter().filter(|p| p["sku"] == sku && p["locationId"] == loc).collect()
}

/// Inserts an undated purchase order in `status` with one line of `variant`.
async fn open_order(
    app: &TestApp,
    s: &qm_api::db::Scoped,
    supplier: &str,
    location: &str,
    status: &str,
    line: (uuid::Uuid, i32, i32),
) {
    use qm_api::db::entities::{Dec, purchase_order_line};
    use sea_orm::ActiveValue::Set;
    let number = format!("PO-{}", uuid::Uuid::now_v7());
    let po = app.purchase_order_in(s, &number, supplier, location, status).await;
    let (variant, quantity, received) = line;
    purchase_order_line::Entity::insert(purchase_order_line::ActiveModel {
        tenant_id: Set(s.tenant()),
        id: Set(uuid::Uuid::now_v7()),
        purchase_order_id: Set(qm_tests::uuid_of(&po)),
        variant_id: Set(variant),
        quantity: Set(quantity),
        received_quantity: Set(received),
        unit_cost: Set(Dec(rust_decimal::Decimal::ONE)),
    })
    .exec_without_returning(&s.tx)
    .await
    .expect("line");
}

#[tokio::test]
async fn the_demo_forecast_covers_every_sku_and_location_with_accuracy_and_runs_nightly() {
    let app = TestApp::spawn().await;
    let (t, series) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Planner]);
    // Seeding queued the first run; workers fit the model, then forecast the series in chunks.
    let d = app.data(&token, RUNS, json!({})).await;
    assert_eq!(d["forecastRuns"]["nodes"][0]["status"], "QUEUED", "{d}");
    app.drain_jobs().await;
    let d = app.data(&token, RUNS, json!({})).await;
    let run = &d["forecastRuns"]["nodes"][0];
    assert_eq!(run["status"], "COMPLETED", "{d}");
    assert_eq!((run["seriesTotal"].as_u64(), run["seriesDone"].as_u64()), (Some(series as u64), Some(series as u64)));
    assert_eq!(run["requestedBy"], "demo");

    // Accuracy for every series, pooled and per demand class.
    let d = app
        .data(&token, "{ forecastAccuracy(groupBy: TENANT) { key series measured wape bias mase pinball } }", json!({}))
        .await;
    let all = &d["forecastAccuracy"][0];
    assert_eq!(
        (all["key"].as_str(), all["series"].as_u64(), all["measured"].as_u64()),
        (Some("all"), Some(series as u64), Some(series as u64)),
        "{d}"
    );
    let wape = f(&all["wape"]);
    assert!(wape > 0.0 && wape < 1.0, "a forecast that is better than nothing: {d}");
    assert!(f(&all["bias"]).abs() < 0.5 && f(&all["mase"]) > 0.0 && f(&all["pinball"]) > 0.0, "{d}");
    let d = app.data(&token, "{ forecastAccuracy(groupBy: SKU, first: 250) { key series } }", json!({})).await;
    let per_sku: u64 =
        d["forecastAccuracy"].as_array().expect("rows").iter().map(|r| r["series"].as_u64().unwrap_or(0)).sum();
    assert_eq!(per_sku, series as u64);

    // One series in full: history, 28 days with ordered quantiles, the model and why.
    let d = app
        .data(
            &token,
            "{ locations(first: 1) { nodes { id } } products(first: 1) { nodes { variants { sku } } } }",
            json!({}),
        )
        .await;
    let loc = d["locations"]["nodes"][0]["id"].as_str().expect("location").to_owned();
    let sku = d["products"]["nodes"][0]["variants"][0]["sku"].as_str().expect("sku").to_owned();
    let q = "query($sku: String!, $loc: ID!) { forecast(sku: $sku, locationId: $loc) {
        sku model demandClass reason firstDate candidates { model backtestMse }
        accuracy { periods wape mase } stockoutPredictedOn
        periods { date forecast p10 p50 p90 override final }
        week: leadTimeDemand(days: 7, serviceLevel: 0.5) safe: leadTimeDemand(days: 7, serviceLevel: 0.95)
        history(days: 14) { date quantity stockout promo } } }";
    let d = app.data(&token, q, json!({ "sku": sku, "loc": loc })).await;
    let fc = &d["forecast"];
    assert_eq!(fc["sku"], sku.as_str());
    assert_eq!(
        fc["firstDate"],
        chrono::Utc::now().date_naive().to_string(),
        "the forecast starts the day after the history"
    );
    assert!(fc["reason"].as_str().is_some_and(|r| r.contains("demand")), "{fc}");
    assert!(!fc["candidates"].as_array().expect("candidates").is_empty());
    assert_eq!(fc["accuracy"]["periods"], 28);
    let periods = fc["periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 28);
    let mut mean_week = 0.0;
    for (i, p) in periods.iter().enumerate() {
        let (p10, p50, p90) = (f(&p["p10"]), f(&p["p50"]), f(&p["p90"]));
        assert!(0.0 <= p10 && p10 <= p50 && p50 <= p90, "{p}");
        assert_eq!(p["final"], p["forecast"]);
        assert!(p["override"].is_null());
        if i < 7 {
            mean_week += f(&p["forecast"]);
        }
    }
    assert!(f(&fc["safe"]) >= f(&fc["week"]), "{fc}");
    assert!(f(&fc["safe"]) >= mean_week, "the 95 % lead-time demand covers the mean: {fc}");
    assert_eq!(fc["history"].as_array().map(Vec::len), Some(14));

    // The nightly schedule runs the forecast again.
    let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
    use sea_orm::ConnectionTrait;
    let sql = if app.is_postgres() {
        "UPDATE job_schedules SET next_run_at = $1 WHERE name = 'forecast.nightly'"
    } else {
        "UPDATE job_schedules SET next_run_at = ? WHERE name = 'forecast.nightly'"
    };
    // A day back: the harness holds schedules that came due in the last hours by the clock.
    let past = chrono::Utc::now() - chrono::Duration::days(1);
    let changed =
        s.tx.execute_raw(sea_orm::Statement::from_sql_and_values(app.state.db.backend(), sql, [past.into()]))
            .await
            .expect("due");
    assert_eq!(changed.rows_affected(), 1, "the tenant has a nightly forecast schedule");
    s.commit().await.expect("commit");
    app.drain_jobs().await;
    let d = app.data(&token, RUNS, json!({})).await;
    let runs = d["forecastRuns"]["nodes"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{d}");
    assert_eq!((runs[1]["requestedBy"].as_str(), runs[1]["status"].as_str()), (Some("schedule"), Some("COMPLETED")));
    assert_eq!(runs[1]["seriesDone"].as_u64(), Some(series as u64));
    // A series holds its latest forecast: the first run's were all replaced by the second's.
    assert_eq!(runs[0]["seriesDone"].as_u64(), Some(0), "{d}");
}

#[tokio::test]
async fn a_projected_stockout_is_announced_once_and_overrides_change_the_plan() {
    let app = TestApp::spawn().await;
    let (t, _) = demo(&app).await;
    let token = app.jwt(&t, &[qm_domain::Role::Owner]);
    app.drain_jobs().await;
    // The best-selling series: plenty of stock first, so no stockout is predicted for it.
    let d = app
        .data(
            &token,
            "{ forecastAccuracy(groupBy: SKU, first: 250) { key } locations(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    let loc = d["locations"]["nodes"][0]["id"].as_str().expect("location").to_owned();
    let skus: Vec<String> = d["forecastAccuracy"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["key"].as_str().map(str::to_owned))
        .collect();
    let q = "query($sku: String!, $loc: ID!) { forecast(sku: $sku, locationId: $loc) { stockoutPredictedOn periods { forecast final override } week: leadTimeDemand(days: 7, serviceLevel: 0.9) } }";
    let mut best = (String::new(), 0.0);
    for sku in &skus {
        let d = app.data(&token, q, json!({ "sku": sku, "loc": loc })).await;
        let total: f64 = d["forecast"]["periods"].as_array().map_or(0.0, |p| p.iter().map(|x| f(&x["forecast"])).sum());
        if total > best.1 {
            best = (sku.clone(), total);
        }
    }
    assert!(best.1 > 1.0, "some series sells: {best:?}");
    let sku = best.0;
    let level = app
        .data(
            &token,
            "query($sku: String!) { variantBySku(sku: $sku) { stockLevels { location { id } available } } }",
            json!({ "sku": sku }),
        )
        .await;
    let available = level["variantBySku"]["stockLevels"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["location"]["id"] == loc.as_str()))
        .and_then(|x| x["available"].as_i64())
        .unwrap_or(0);
    let refresh = "mutation($sku: String!, $loc: ID!) { forecastRun(input: { sku: $sku, locationId: $loc }) { forecastRun { status } forecast { stockoutPredictedOn } userErrors { field code message } } }";
    app.stock(&token, &sku, &loc, 100_000).await;
    let d = app.data(&token, refresh, json!({ "sku": sku, "loc": loc })).await;
    assert_eq!(d["forecastRun"]["userErrors"], json!([]), "{d}");
    assert!(d["forecastRun"]["forecast"]["stockoutPredictedOn"].is_null(), "{d}");
    // (The first run may have predicted one already, before the stock arrived.)
    let before = stock_out_predicted(&app, &t, &sku, &loc).await.len();

    // Inbound: the open remainder of lines on open orders for this location, and only those.
    let ids = app
        .data(
            &token,
            "query($sku: String!) { variantBySku(sku: $sku) { id } suppliers(first: 1) { nodes { id } } locations(first: 3) { nodes { id } } }",
            json!({ "sku": sku }),
        )
        .await;
    let variant = qm_tests::uuid_of(ids["variantBySku"]["id"].as_str().expect("variant"));
    let supplier = ids["suppliers"]["nodes"][0]["id"].as_str().expect("a supplier");
    let elsewhere = ids["locations"]["nodes"]
        .as_array()
        .and_then(|l| l.iter().filter_map(|x| x["id"].as_str()).find(|id| *id != loc))
        .expect("a second location");
    let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
    for (at, status, quantity, received) in [
        (loc.as_str(), "issued", 40, 10),
        (loc.as_str(), "received", 70, 70),
        (loc.as_str(), "cancelled", 500, 0),
        (elsewhere, "issued", 900, 0),
    ] {
        open_order(&app, &s, supplier, at, status, (variant, quantity, received)).await;
    }
    s.commit().await.expect("commit");

    // Empty the shelf: the re-forecast projects a stockout today, before any order could arrive.
    app.stock(&token, &sku, &loc, -(100_000 + i32::try_from(available).expect("fits"))).await;
    let d = app.data(&token, refresh, json!({ "sku": sku, "loc": loc })).await;
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(d["forecastRun"]["forecast"]["stockoutPredictedOn"], today.as_str(), "{d}");
    let events = stock_out_predicted(&app, &t, &sku, &loc).await;
    assert_eq!(events.len(), before + 1, "{events:?}");
    let events = &events[before..];
    assert_eq!((events[0]["stockoutOn"].as_str(), events[0]["available"].as_i64()), (Some(today.as_str()), Some(0)));
    assert!(events[0]["nextReceiptOn"].as_str().is_some_and(|d| d > today.as_str()), "{events:?}");
    assert_eq!(events[0]["inbound"], 30, "{events:?}");
    // The alert rule recorded it for the planners.
    let d = app.data(&token, "{ alerts(last: 50) { nodes { kind subject } } }", json!({})).await;
    let alerted =
        d["alerts"]["nodes"].as_array().expect("alerts").iter().any(|a| {
            a["kind"] == "STOCKOUT_PREDICTED" && a["subject"].as_str().is_some_and(|s| s.contains(sku.as_str()))
        });
    assert!(alerted, "{d}");
    // Forecasting again while it stays predicted announces nothing new.
    app.data(&token, refresh, json!({ "sku": sku, "loc": loc })).await;
    assert_eq!(stock_out_predicted(&app, &t, &sku, &loc).await.len(), before + 1);

    // A planner's override replaces the forecast for its day; removing it restores the forecast.
    let set = "mutation($sku: String!, $loc: ID!, $date: NaiveDate!, $q: Float) { forecastOverrideSet(input: { sku: $sku, locationId: $loc, date: $date, quantity: $q, note: \"trade fair\" }) { forecastOverride { quantity note setBy } forecast { periods { forecast override final } week: leadTimeDemand(days: 7, serviceLevel: 0.9) } userErrors { field code } } }";
    let base = app.data(&token, q, json!({ "sku": sku, "loc": loc })).await;
    let d = app.data(&token, set, json!({ "sku": sku, "loc": loc, "date": today, "q": 500.0 })).await;
    let p = &d["forecastOverrideSet"];
    assert_eq!(p["forecastOverride"]["quantity"], 500.0, "{d}");
    assert_eq!(p["forecastOverride"]["note"], "trade fair");
    assert_eq!(p["forecast"]["periods"][0]["override"], 500.0);
    assert_eq!(p["forecast"]["periods"][0]["final"], 500.0);
    assert_eq!(p["forecast"]["periods"][0]["forecast"], base["forecast"]["periods"][0]["forecast"]);
    assert!(f(&p["forecast"]["week"]) > f(&base["forecast"]["week"]) + 400.0, "{p}");
    // A re-forecast keeps it in place of its new statistical value.
    let again = "mutation($sku: String!, $loc: ID!) { forecastRun(input: { sku: $sku, locationId: $loc }) { forecast { periods { override final } } } }";
    let d = app.data(&token, again, json!({ "sku": sku, "loc": loc })).await;
    assert_eq!(d["forecastRun"]["forecast"]["periods"][0]["final"], 500.0, "{d}");
    let d = app.data(&token, set, json!({ "sku": sku, "loc": loc, "date": today, "q": null })).await;
    assert!(d["forecastOverrideSet"]["forecastOverride"].is_null());
    assert_eq!(d["forecastOverrideSet"]["forecast"]["periods"][0]["final"], base["forecast"]["periods"][0]["forecast"]);
}

#[tokio::test]
async fn bad_forecast_requests_get_typed_errors() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let k = &t.owner_key;
    let loc = app.location(k, "WH").await;
    app.product(k, "shirt", &["S-1"]).await;
    app.stock(k, "S-1", &loc, 5).await;
    let run = "mutation($i: ForecastRunInput!) { forecastRun(input: $i) { forecastRun { id status } userErrors { field code } } }";
    let d = app.data(k, run, json!({ "i": { "horizon": 0 } })).await;
    assert_eq!(d["forecastRun"]["userErrors"], json!([{ "field": ["input", "horizon"], "code": "INVALID" }]));
    // Nothing to re-forecast from before a run completed.
    let d = app.data(k, run, json!({ "i": { "sku": "S-1", "locationId": loc } })).await;
    assert_eq!(d["forecastRun"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
    let d = app.data(k, run, json!({ "i": { "sku": "NOPE", "locationId": loc } })).await;
    assert_eq!(d["forecastRun"]["userErrors"], json!([{ "field": ["input", "sku"], "code": "NOT_FOUND" }]));
    // A second request while one is queued returns the queued run.
    let first = app.data(k, run, json!({ "i": {} })).await;
    let second = app.data(k, run, json!({ "i": { "horizon": 7 } })).await;
    assert_eq!(first["forecastRun"]["forecastRun"]["id"], second["forecastRun"]["forecastRun"]["id"]);
    // A run stuck for hours (its jobs died) is failed, and a new one is queued in its place.
    app.backdate_runs("forecast_runs", chrono::Duration::hours(3)).await;
    let third = app.data(k, run, json!({ "i": {} })).await;
    assert_ne!(third["forecastRun"]["forecastRun"]["id"], first["forecastRun"]["forecastRun"]["id"]);
    let d = app.data(k, "{ forecastRuns(first: 5) { nodes { status error } } }", json!({})).await;
    assert_eq!(d["forecastRuns"]["nodes"][0]["status"], "FAILED", "{d}");
    assert!(d["forecastRuns"]["nodes"][0]["error"].as_str().is_some_and(|e| e.contains("2 hours")), "{d}");
    assert_eq!(d["forecastRuns"]["nodes"][1]["status"], "QUEUED", "{d}");
    let set = "mutation($q: Float) { forecastOverrideSet(input: { sku: \"S-1\", locationId: \"gid://quartermaster/Location/0\", date: \"2030-01-01\", quantity: $q }) { userErrors { field code } } }";
    let d = app.data(k, set, json!({ "q": -1.0 })).await;
    assert_eq!(d["forecastOverrideSet"]["userErrors"], json!([{ "field": ["input", "quantity"], "code": "INVALID" }]));
    let d = app.data(k, set, json!({ "q": 1.0 })).await;
    assert_eq!(
        d["forecastOverrideSet"]["userErrors"],
        json!([{ "field": ["input", "locationId"], "code": "NOT_FOUND" }])
    );
    // A viewer reads but does not run.
    let viewer = app.jwt(&t, &[qm_domain::Role::Viewer]);
    let (_, body) = app.gql(&viewer, run, json!({ "i": {} })).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    // A product without sales is forecast as zero, with no accuracy to show.
    app.drain_jobs().await;
    let d = app.data(&viewer, "query($l: ID!) { forecast(sku: \"S-1\", locationId: $l) { model accuracy { wape } periods { forecast } } }", json!({ "l": loc })).await;
    assert!(d["forecast"]["accuracy"].is_null(), "{d}");
    assert!(
        d["forecast"]["periods"].as_array().is_some_and(|p| p.len() == 28 && p.iter().all(|x| x["forecast"] == 0.0)),
        "{d}"
    );
    let (_, body) = app
        .gql(
            &viewer,
            "query($l: ID!) { forecast(sku: \"S-1\", locationId: $l) { leadTimeDemand(days: 0, serviceLevel: 0.9) } }",
            json!({ "l": loc }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
}
