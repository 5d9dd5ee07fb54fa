//! Dynamic pricing end to end on the demo tenant: policies, a pricing run, recommendations within
//! the guardrails, approval that changes the variant's price, emits `price.changed` and sends the
//! price to the connected shop (the Shopify mock), rejection, and the decisions refused.

use std::time::Duration;

use chrono::Utc;
use qm_api::db::TxMode;
use qm_api::db::entities::variant;
use qm_domain::Role;
use qm_domain::demo::DemoParams;
use qm_tests::TestApp;
use qm_tests::shopify_mock::MockShopify;
use rust_decimal::Decimal;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

const RECOMMENDATIONS: &str = "query($status: PriceRecommendationStatus, $run: ID) {
    priceRecommendations(status: $status, runId: $run, first: 100) { nodes {
        id status pricingRunId sku currentPrice recommendedPrice currencyCode unitCost elasticity elasticitySe
        confidence expectedUnitsCurrent expectedUnitsRecommended expectedProfitCurrent expectedProfitRecommended
        binding reason explanation decidedBy variant { sku price { amount } } } } }";

const DECIDE: &str = "mutation($ids: [ID!]!) {
    a: priceRecommendationApprove(input: { ids: $ids }) {
        priceRecommendations { id status decidedBy } userErrors { field code message } } }";

const REJECT: &str = "mutation($ids: [ID!]!) {
    priceRecommendationReject(input: { ids: $ids }) {
        priceRecommendations { id status decidedBy } userErrors { field code message } } }";

fn dec(v: &Value) -> Decimal {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a decimal: {v}"))
}

async fn run_pricing(app: &TestApp, token: &str) -> Value {
    let d = app
        .data(
            token,
            "mutation { pricingRun(input: { horizonDays: 28 }) { pricingRun { id status } userErrors { message } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["pricingRun"]["userErrors"], json!([]), "{d}");
    let id = d["pricingRun"]["pricingRun"]["id"].clone();
    app.drain_jobs().await;
    let d = app
        .data(
            token,
            "query($id: ID!) { node(id: $id) { ... on PricingRun { id status horizonDays skusTotal proposedTotal heldTotal error } } }",
            json!({ "id": id }),
        )
        .await;
    d["node"].clone()
}

async fn recommendations(app: &TestApp, token: &str, status: &str, run: Option<&Value>) -> Vec<Value> {
    let d = app.data(token, RECOMMENDATIONS, json!({ "status": status, "run": run })).await;
    d["priceRecommendations"]["nodes"].as_array().expect("nodes").clone()
}

#[tokio::test]
async fn a_pricing_run_on_the_demo_recommends_within_the_guardrails_and_an_approval_reaches_the_shop() {
    use qm_api::jobs::worker::{self, Registry, WorkerConfig};
    use qm_tests::shopify_demo;
    let app = TestApp::spawn().await;
    let today = Utc::now().date_naive();
    let params = DemoParams { seed: 11, end: today.pred_opt().expect("yesterday"), days: 400, products: 10 };
    let seeded = qm_api::demo::seed(&app.state.db, &params).await.expect("seed");
    let tenant = seeded.tenant_id;
    let token = app.state.jwt.mint(tenant, "pricing-owner", &[Role::Owner], None, Utc::now()).expect("token");
    // The seed's forecast, its plan and its pricing run.
    app.drain_jobs().await;

    // Guardrails: 20 % over cost at least, .99 endings, at most 10 % a step; one SKU may move 5 %.
    let upsert = "mutation($i: PricingPolicyUpsertInput!) { pricingPolicyUpsert(input: $i) {
        pricingPolicy { id scope category minMargin maxChangePerStep priceEnding variant { sku } }
        userErrors { field code message } } }";
    let d = app
        .data(&token, upsert, json!({ "i": { "minMargin": "0.2", "priceEnding": "0.99", "maxChangePerStep": "0.1" } }))
        .await;
    assert_eq!(d["pricingPolicyUpsert"]["userErrors"], json!([]), "{d}");
    assert_eq!(d["pricingPolicyUpsert"]["pricingPolicy"]["scope"], "TENANT");
    for (input, field, code) in [
        (json!({ "maxChangePerStep": "1.5" }), json!(["input", "maxChangePerStep"]), "INVALID"),
        (json!({ "minMargin": "-0.1" }), json!(["input", "minMargin"]), "INVALID"),
        (json!({ "priceEnding": "1.2" }), json!(["input", "priceEnding"]), "INVALID"),
        (json!({ "salvageValue": "-1" }), json!(["input", "salvageValue"]), "INVALID"),
        (json!({ "sku": "NO-SUCH-SKU", "minMargin": "0.1" }), json!(["input", "sku"]), "NOT_FOUND"),
        (json!({ "sku": "X", "category": "Apparel" }), json!(["input", "category"]), "INVALID"),
    ] {
        let d = app.data(&token, upsert, json!({ "i": input })).await;
        let errors = &d["pricingPolicyUpsert"]["userErrors"];
        assert_eq!(errors[0]["field"], field, "{d}");
        assert_eq!(errors[0]["code"], code, "{d}");
        assert!(d["pricingPolicyUpsert"]["pricingPolicy"].is_null());
    }

    let first = run_pricing(&app, &token).await;
    assert_eq!(first["status"], "COMPLETED", "{first}");
    let run = run_pricing(&app, &token).await;
    assert_eq!(run["status"], "COMPLETED", "{run}");
    assert_eq!(run["horizonDays"], 28);
    let proposed = recommendations(&app, &token, "PROPOSED", None).await;
    let held = recommendations(&app, &token, "HELD", None).await;
    assert_eq!(proposed.len() as i64, run["proposedTotal"].as_i64().expect("proposed"), "{run}");
    assert_eq!(held.len() as i64, run["heldTotal"].as_i64().expect("held"), "{run}");
    assert!(proposed.len() >= 4, "the demo's prices are not all at their optimum: {run}");
    assert!(run["skusTotal"].as_i64() >= Some((proposed.len() + held.len()) as i64));
    // Only the latest run's recommendations are open; the previous run's are superseded.
    assert!(proposed.iter().chain(&held).all(|r| r["pricingRunId"] == run["id"]));
    let superseded = recommendations(&app, &token, "SUPERSEDED", Some(&first["id"])).await;
    assert!(!superseded.is_empty());
    for r in &proposed {
        let (current, price, cost) = (dec(&r["currentPrice"]), dec(&r["recommendedPrice"]), dec(&r["unitCost"]));
        assert_ne!(current, price, "{r}");
        assert!(price >= cost * Decimal::new(12, 1), "the minimum margin: {r}");
        assert!((price - current).abs() <= current * Decimal::new(1, 1) + Decimal::ONE, "one step: {r}");
        assert_eq!(price.fract(), Decimal::new(99, 2), "the price ending: {r}");
        assert!(r["elasticity"].as_f64().expect("an elasticity to price on") < 0.0, "{r}");
        assert_ne!(r["confidence"], "LOW", "{r}");
        assert!(dec(&r["expectedProfitRecommended"]) > dec(&r["expectedProfitCurrent"]), "{r}");
        assert!(r["reason"].as_str().expect("reason").contains(" → "), "{r}");
        assert_eq!(r["explanation"]["guardrails"]["priceEnding"], "0.99", "{r}");
        // The seed's forecast run stored a forecast for every series: it is the baseline.
        assert_eq!(r["explanation"]["baseline"], "forecast", "{r}");
        assert_eq!(r["variant"]["price"]["amount"], r["currentPrice"], "nothing changes before approval: {r}");
    }
    for r in &held {
        assert_eq!(r["currentPrice"], r["recommendedPrice"], "{r}");
        assert!(r["reason"].as_str().expect("reason").starts_with("Keep "), "{r}");
    }
    let announced = app.events(tenant, "price.recommended").await;
    let first_event = announced.iter().find(|e| e["priceRecommendationId"] == proposed[0]["id"]).expect("announced");
    assert_eq!(first_event["recommendedPrice"], proposed[0]["recommendedPrice"]);
    assert_eq!(
        dec(&first_event["expectedProfitChange"]),
        dec(&proposed[0]["expectedProfitRecommended"]) - dec(&proposed[0]["expectedProfitCurrent"])
    );

    // The shop sells the first proposed SKU at the same price: connecting links the variant.
    let chosen = proposed[0].clone();
    let sku = chosen["sku"].as_str().expect("sku").to_owned();
    let mut shop = shopify_demo::shop(6, Utc::now() - chrono::Duration::hours(1));
    let shop_variant = *shop.variants.keys().next().expect("a variant");
    {
        let v = shop.variants.get_mut(&shop_variant).expect("variant");
        v.sku = sku.clone();
        v.price = chosen["currentPrice"].as_str().expect("price").to_owned();
    }
    let mock = MockShopify::start(shop, shopify_demo::TOKEN).await;
    let cfg = WorkerConfig { poll: Duration::from_millis(50), ..WorkerConfig::default() };
    let (stop, workers) = worker::spawn(app.state.clone(), Registry::standard(), cfg);
    let synced = shopify_demo::connect(&app.address, &token, &mock, Duration::from_secs(120)).await.expect("connected");
    let _ = stop.send(true);
    workers.await.expect("workers stop");
    assert_eq!(synced["status"], "COMPLETED", "{synced}");

    // Approve: the variant's price changes, the event says so, the shop gets the price.
    let d = app.data(&token, DECIDE, json!({ "ids": [chosen["id"]] })).await;
    assert_eq!(d["a"]["userErrors"], json!([]), "{d}");
    assert_eq!(d["a"]["priceRecommendations"][0]["status"], "APPROVED", "{d}");
    assert_eq!(d["a"]["priceRecommendations"][0]["decidedBy"], "pricing-owner", "{d}");
    let v = app
        .data(&token, "query($s: String!) { variantBySku(sku: $s) { price { amount } } }", json!({ "s": sku }))
        .await;
    assert_eq!(v["variantBySku"]["price"]["amount"], chosen["recommendedPrice"], "{v}");
    let changed = app.events(tenant, "price.changed").await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["sku"], sku.as_str());
    assert_eq!(changed[0]["previousPrice"], chosen["currentPrice"]);
    assert_eq!(changed[0]["price"], chosen["recommendedPrice"]);
    assert_eq!(changed[0]["priceRecommendationId"], chosen["id"]);
    app.drain_jobs().await;
    assert_eq!(mock.price_updates(), 1);
    assert_eq!(
        Some(mock.shop().variants[&shop_variant].price.parse::<Decimal>().expect("shop price")),
        chosen["recommendedPrice"].as_str().and_then(|p| p.parse().ok()),
        "the shop sells at the approved price"
    );

    // Approving again changes nothing and sends nothing.
    let d = app.data(&token, DECIDE, json!({ "ids": [chosen["id"]] })).await;
    assert_eq!(d["a"]["userErrors"], json!([]), "{d}");
    assert_eq!(d["a"]["priceRecommendations"][0]["status"], "APPROVED");
    app.drain_jobs().await;
    assert_eq!(app.events(tenant, "price.changed").await.len(), 1);
    assert_eq!(mock.price_updates(), 1);

    // Reject another: the price stays. Then neither decision applies to it any more.
    let other = &proposed[1];
    let d = app.data(&token, REJECT, json!({ "ids": [other["id"]] })).await;
    assert_eq!(d["priceRecommendationReject"]["priceRecommendations"][0]["status"], "REJECTED", "{d}");
    let d = app.data(&token, DECIDE, json!({ "ids": [other["id"]] })).await;
    assert_eq!(d["a"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
    assert_eq!(d["a"]["userErrors"][0]["field"], json!(["input", "ids", "0"]), "{d}");

    // Two approvals of the same recommendation at once: the price changes once, one event.
    let fourth = &proposed[3];
    let (x, y) = tokio::join!(
        app.data(&token, DECIDE, json!({ "ids": [fourth["id"]] })),
        app.data(&token, DECIDE, json!({ "ids": [fourth["id"]] }))
    );
    let approved = [&x, &y].iter().filter(|d| d["a"]["userErrors"] == json!([])).count();
    assert!(approved >= 1, "{x} {y}");
    for d in [&x, &y] {
        if d["a"]["userErrors"] != json!([]) {
            assert_eq!(d["a"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
        }
    }
    let changed = app.events(tenant, "price.changed").await;
    assert_eq!(changed.iter().filter(|e| e["priceRecommendationId"] == fourth["id"]).count(), 1, "{changed:?}");

    // All or nothing: a held recommendation and an unknown ID refuse the whole approval, and the
    // valid one in the same request stays proposed.
    let third = &proposed[2];
    let unknown = "gid://quartermaster/PriceRecommendation/01900000-0000-7000-8000-000000000000";
    let mut ids = vec![third["id"].clone(), json!(unknown)];
    if let Some(h) = held.first() {
        ids.push(h["id"].clone());
    }
    let d = app.data(&token, DECIDE, json!({ "ids": ids })).await;
    let errors = d["a"]["userErrors"].as_array().expect("errors");
    assert_eq!(errors[0]["code"], "NOT_FOUND", "{d}");
    assert_eq!(errors[0]["field"], json!(["input", "ids", "1"]), "{d}");
    if !held.is_empty() {
        assert_eq!(errors[1]["code"], "INVALID_STATE", "{d}");
    }
    let still = recommendations(&app, &token, "PROPOSED", None).await;
    assert!(still.iter().any(|r| r["id"] == third["id"]), "nothing was approved");

    // The price changed since the run (as a sync from the store would): approval is refused.
    {
        let s = app.state.db.scoped(tenant, TxMode::Write).await.expect("tx");
        let v = variant::Entity::find()
            .filter(variant::Column::TenantId.eq(tenant))
            .filter(variant::Column::Sku.eq(third["sku"].as_str().expect("sku")))
            .one(&s.tx)
            .await
            .expect("variant")
            .expect("exists");
        let mut am: variant::ActiveModel = v.into();
        am.price = Set(qm_api::db::entities::Dec(dec(&third["currentPrice"]) + Decimal::ONE));
        am.update(&s.tx).await.expect("price set");
        s.commit().await.expect("commit");
    }
    let d = app.data(&token, DECIDE, json!({ "ids": [third["id"]] })).await;
    assert_eq!(d["a"]["userErrors"][0]["code"], "INVALID_STATE", "{d}");
    assert!(d["a"]["userErrors"][0]["message"].as_str().expect("message").contains("price changed"), "{d}");

    // A reader sees the recommendations but may not decide.
    let reader = app.state.jwt.mint(tenant, "viewer", &[Role::Viewer], None, Utc::now()).expect("token");
    let (_, body) = app.gql(&reader, DECIDE, json!({ "ids": [third["id"]] })).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn policies_layer_from_tenant_to_category_to_sku_and_delete_back() {
    let app = TestApp::spawn().await;
    let t = app.tenant("layers").await;
    let token = app.jwt(&t, &[Role::Owner]);
    app.product(&token, "tee", &["TEE-1", "TEE-2"]).await;
    let upsert = "mutation($i: PricingPolicyUpsertInput!) { pricingPolicyUpsert(input: $i) {
        pricingPolicy { id scope category variant { sku } minMargin maxChangePerStep seasonEnd salvageValue updatedBy }
        userErrors { field code message } } }";
    let tenant_wide = app.data(&token, upsert, json!({ "i": { "minMargin": "0.25" } })).await;
    let category = app
        .data(&token, upsert, json!({ "i": { "category": "Apparel", "seasonEnd": "2027-02-28", "salvageValue": "3" } }))
        .await;
    let sku = app.data(&token, upsert, json!({ "i": { "sku": "TEE-1", "maxChangePerStep": "0.05" } })).await;
    assert_eq!(sku["pricingPolicyUpsert"]["pricingPolicy"]["variant"]["sku"], "TEE-1", "{sku}");
    // Upserting a scope again replaces it (same policy, new fields).
    let again = app.data(&token, upsert, json!({ "i": { "sku": "TEE-1", "maxChangePerStep": "0.07" } })).await;
    assert_eq!(again["pricingPolicyUpsert"]["pricingPolicy"]["id"], sku["pricingPolicyUpsert"]["pricingPolicy"]["id"]);
    let d = app
        .data(
            &token,
            "{ pricingPolicies { scope category variant { sku } minMargin maxChangePerStep seasonEnd } }",
            json!({}),
        )
        .await;
    assert_eq!(
        d["pricingPolicies"],
        json!([
            { "scope": "TENANT", "category": null, "variant": null, "minMargin": "0.25", "maxChangePerStep": null, "seasonEnd": null },
            { "scope": "CATEGORY", "category": "Apparel", "variant": null, "minMargin": null, "maxChangePerStep": null, "seasonEnd": "2027-02-28" },
            { "scope": "VARIANT", "category": null, "variant": { "sku": "TEE-1" }, "minMargin": null, "maxChangePerStep": "0.07", "seasonEnd": null },
        ]),
        "{d} {tenant_wide} {category}"
    );
    let delete = "mutation($i: PricingPolicyDeleteInput!) { pricingPolicyDelete(input: $i) { deletedPricingPolicyId userErrors { code } } }";
    let d = app.data(&token, delete, json!({ "i": { "sku": "TEE-1" } })).await;
    assert_eq!(d["pricingPolicyDelete"]["deletedPricingPolicyId"], sku["pricingPolicyUpsert"]["pricingPolicy"]["id"]);
    let d = app.data(&token, delete, json!({ "i": { "sku": "TEE-1" } })).await;
    assert_eq!(d["pricingPolicyDelete"], json!({ "deletedPricingPolicyId": null, "userErrors": [] }));
    let d = app.data(&token, "{ pricingPolicies { scope } }", json!({})).await;
    assert_eq!(d["pricingPolicies"], json!([{ "scope": "TENANT" }, { "scope": "CATEGORY" }]));
    // A run with nothing sold recommends nothing, and a bad horizon is refused.
    let d = app
        .data(
            &token,
            "mutation { pricingRun(input: { horizonDays: 0 }) { pricingRun { id } userErrors { field code } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["pricingRun"]["userErrors"][0]["field"], json!(["input", "horizonDays"]), "{d}");
    let d =
        app.data(&token, "mutation { pricingRun { pricingRun { id status } userErrors { code } } }", json!({})).await;
    let id = d["pricingRun"]["pricingRun"]["id"].clone();
    app.drain_jobs().await;
    let d = app
        .data(
            &token,
            "query($id: ID!) { node(id: $id) { ... on PricingRun { status skusTotal proposedTotal heldTotal } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(d["node"], json!({ "status": "COMPLETED", "skusTotal": 2, "proposedTotal": 0, "heldTotal": 0 }), "{d}");
}
