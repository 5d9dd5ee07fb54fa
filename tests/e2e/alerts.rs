//! Alert rules: what fires when, `stock.low`, the alert history, acknowledgement, and digest e-mails.

use qm_api::db::TxMode;
use qm_api::db::entities::{Dec, daily_demand};
use qm_domain::Role;
use qm_tests::receiver::Receiver;
use qm_tests::{TestApp, TestTenant};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

const UPSERT: &str = "mutation($i: AlertRuleUpsertInput!) { alertRuleUpsert(input: $i) { alertRule { id name kind sku locationId threshold daysOfCover recipientRoles enabled } userErrors { field code message } } }";
const ALERTS: &str = "query($s: AlertStatus) { alerts(status: $s, first: 50) { nodes { id ruleId kind subject details status variantId locationId acknowledgedBy } } }";

async fn rule(app: &TestApp, token: &str, input: Value) -> Value {
    let d = app.data(token, UPSERT, json!({ "i": input })).await;
    assert_eq!(d["alertRuleUpsert"]["userErrors"], json!([]), "{d}");
    d["alertRuleUpsert"]["alertRule"].clone()
}

async fn alerts(app: &TestApp, token: &str, status: Option<&str>) -> Vec<Value> {
    let d = app.data(token, ALERTS, json!({ "s": status })).await;
    d["alerts"]["nodes"].as_array().cloned().unwrap_or_default()
}

async fn shop(app: &TestApp) -> (TestTenant, String) {
    let t = app.tenant("acme").await;
    let loc = app.location(&t.owner_key, "WH").await;
    app.product(&t.owner_key, "tee", &["TEE-1", "TEE-2"]).await;
    (t, loc)
}

#[tokio::test]
async fn a_new_tenant_alerts_owners_and_admins_about_disabled_endpoints_failed_syncs_and_return_rates() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let d = app
        .data(&t.owner_key, "{ alertRules(first: 10) { nodes { name kind recipientRoles enabled } } }", json!({}))
        .await;
    assert_eq!(
        d["alertRules"]["nodes"],
        json!([
            { "name": "Webhook endpoint disabled", "kind": "WEBHOOK_ENDPOINT_DISABLED", "recipientRoles": ["OWNER", "ADMIN"], "enabled": true },
            { "name": "Connector sync failed", "kind": "SYNC_FAILED", "recipientRoles": ["OWNER", "ADMIN"], "enabled": true },
            { "name": "Return rate anomalously high", "kind": "RETURN_RATE_HIGH", "recipientRoles": ["OWNER", "ADMIN"], "enabled": true }
        ])
    );
}

#[tokio::test]
async fn a_stock_rule_fires_once_per_crossing_and_emits_stock_low() {
    let app = TestApp::spawn().await;
    let (t, loc) = shop(&app).await;
    let rx = Receiver::start().await;
    let ep = "mutation($u: String!) { webhookEndpointCreate(input: { url: $u, eventTypes: [\"stock.low\"] }) { endpoint { id } } }";
    app.data(&t.owner_key, ep, json!({ "u": rx.url })).await;
    let r = rule(
        &app,
        &t.owner_key,
        json!({ "name": "Tees low", "kind": "STOCK_BELOW", "sku": "TEE-1", "threshold": 5, "recipientRoles": ["OWNER", "PLANNER"] }),
    )
    .await;
    assert_eq!(r["threshold"], 5);
    assert_eq!(r["recipientRoles"], json!(["OWNER", "PLANNER"]));

    app.stock(&t.owner_key, "TEE-1", &loc, 10).await;
    app.stock(&t.owner_key, "TEE-1", &loc, -4).await; // 6: above the line
    assert!(alerts(&app, &t.owner_key, None).await.is_empty());
    app.stock(&t.owner_key, "TEE-1", &loc, -1).await; // 5: crosses
    app.stock(&t.owner_key, "TEE-1", &loc, -1).await; // 4: already below, no new alert
    app.stock(&t.owner_key, "TEE-2", &loc, 3).await;
    app.stock(&t.owner_key, "TEE-2", &loc, -1).await; // another SKU: not this rule's
    let fired = alerts(&app, &t.owner_key, None).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    let a = &fired[0];
    assert_eq!(a["kind"], "STOCK_BELOW");
    assert_eq!(a["ruleId"], r["id"]);
    assert_eq!(a["subject"], "Low stock: TEE-1 at WH (WH)");
    assert_eq!(a["locationId"], loc.as_str());
    assert_eq!(a["status"], "OPEN");
    let details: Vec<&str> = a["details"].as_array().expect("details").iter().filter_map(Value::as_str).collect();
    assert!(details.contains(&"Available: 5 (on hand 5, reserved 0)"), "{details:?}");
    assert!(details.contains(&"Rule: Tees low (at or below 5 units)"), "{details:?}");

    // Back above the line and down again through an order's reservation: it fires again.
    app.stock(&t.owner_key, "TEE-1", &loc, 10).await; // 14
    let order = "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { userErrors { message } } }";
    let i = json!({ "i": { "externalId": "O-1", "locationId": loc, "lines": [{ "sku": "TEE-1", "quantity": 10 }] } });
    app.data(&t.owner_key, order, i).await; // available 4
    let fired = alerts(&app, &t.owner_key, None).await;
    assert_eq!(fired.len(), 2, "{fired:?}");
    let details: Vec<&str> =
        fired[1]["details"].as_array().expect("details").iter().filter_map(Value::as_str).collect();
    assert!(details.contains(&"Available: 4 (on hand 14, reserved 10)"), "{details:?}");

    // A disabled rule stays quiet.
    rule(
        &app,
        &t.owner_key,
        json!({ "id": r["id"], "name": "Tees low", "kind": "STOCK_BELOW", "sku": "TEE-1", "threshold": 5, "recipientRoles": ["OWNER"], "enabled": false }),
    )
    .await;
    app.stock(&t.owner_key, "TEE-1", &loc, 20).await;
    app.stock(&t.owner_key, "TEE-1", &loc, -20).await;
    assert_eq!(alerts(&app, &t.owner_key, None).await.len(), 2);

    // stock.low went out twice, with the numbers of each crossing.
    app.drain_jobs().await;
    let mut bodies: Vec<Value> =
        rx.received().iter().map(|r| serde_json::from_slice(&r.body).expect("json body")).collect();
    // Deliveries may arrive in any order; alert IDs are time-ordered.
    bodies.sort_by_key(|b| b["data"]["alertId"].as_str().unwrap_or_default().to_owned());
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies.iter().all(|b| b["type"] == "stock.low"));
    assert_eq!(bodies[0]["data"]["available"], 5);
    assert_eq!(bodies[0]["data"]["threshold"], 5);
    assert_eq!(bodies[0]["data"]["alertId"], fired[0]["id"]);
    assert_eq!(bodies[1]["data"]["available"], 4);
    assert_eq!(bodies[1]["data"]["reserved"], 10);
}

#[tokio::test]
async fn a_days_of_cover_rule_uses_recent_demand() {
    let app = TestApp::spawn().await;
    let (t, loc) = shop(&app).await;
    // 28 days of demand at 2 units a day for TEE-1 at WH.
    let d = app.data(&t.owner_key, "{ variantBySku(sku: \"TEE-1\") { id } }", json!({})).await;
    let uuid = qm_tests::uuid_of;
    let variant = uuid(d["variantBySku"]["id"].as_str().expect("variant"));
    let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
    let today = chrono::Utc::now().date_naive();
    for back in 1..=28 {
        daily_demand::Entity::insert(daily_demand::ActiveModel {
            tenant_id: Set(t.id),
            variant_id: Set(variant),
            location_id: Set(uuid(&loc)),
            day: Set(today - chrono::Duration::days(back)),
            units: Set(2),
            price: Set(Dec(rust_decimal::Decimal::new(1999, 2))),
            promo: Set(false),
            stockout: Set(false),
        })
        .exec_without_returning(&s.tx)
        .await
        .expect("demand row");
    }
    s.commit().await.expect("commit");
    rule(
        &app,
        &t.owner_key,
        json!({ "name": "A week left", "kind": "DAYS_OF_COVER_BELOW", "daysOfCover": "7", "locationId": loc, "recipientRoles": ["PLANNER"] }),
    )
    .await;
    app.stock(&t.owner_key, "TEE-1", &loc, 20).await; // 10 days
    app.stock(&t.owner_key, "TEE-1", &loc, -5).await; // 7.5 days
    assert!(alerts(&app, &t.owner_key, None).await.is_empty());
    app.stock(&t.owner_key, "TEE-1", &loc, -1).await; // 7 days: fires
    app.stock(&t.owner_key, "TEE-2", &loc, 5).await;
    app.stock(&t.owner_key, "TEE-2", &loc, -5).await; // no demand: unbounded cover, never fires
    let fired = alerts(&app, &t.owner_key, None).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    let details: Vec<&str> =
        fired[0]["details"].as_array().expect("details").iter().filter_map(Value::as_str).collect();
    assert!(details.contains(&"Days of cover: 7 at 2 a day (last 28 days)"), "{details:?}");
    assert!(details.contains(&"Rule: A week left (at or below 7 days of cover)"), "{details:?}");
}

#[tokio::test]
async fn bad_rules_are_refused_with_typed_errors_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (t, _) = shop(&app).await;
    let other = app.tenant("other").await;
    let other_loc = app.location(&other.owner_key, "X").await;
    let cases = [
        (json!({ "name": "x", "kind": "STOCK_BELOW", "recipientRoles": ["OWNER"] }), "threshold", "INVALID"),
        (
            json!({ "name": "x", "kind": "STOCK_BELOW", "threshold": -1, "recipientRoles": ["OWNER"] }),
            "threshold",
            "INVALID",
        ),
        (
            json!({ "name": "x", "kind": "DAYS_OF_COVER_BELOW", "daysOfCover": "0", "recipientRoles": ["OWNER"] }),
            "daysOfCover",
            "INVALID",
        ),
        (
            json!({ "name": "x", "kind": "STOCK_BELOW", "threshold": 1, "daysOfCover": "3", "recipientRoles": ["OWNER"] }),
            "daysOfCover",
            "INVALID",
        ),
        (json!({ "name": "", "kind": "STOCK_BELOW", "threshold": 1, "recipientRoles": ["OWNER"] }), "name", "INVALID"),
        (
            json!({ "name": "x", "kind": "STOCK_BELOW", "threshold": 1, "recipientRoles": [] }),
            "recipientRoles",
            "INVALID",
        ),
        (
            json!({ "name": "x", "kind": "STOCK_BELOW", "threshold": 1, "recipientRoles": ["SUPPLIER"] }),
            "recipientRoles",
            "INVALID",
        ),
        (
            json!({ "name": "x", "kind": "WEBHOOK_ENDPOINT_DISABLED", "sku": "TEE-1", "recipientRoles": ["OWNER"] }),
            "sku",
            "INVALID",
        ),
        (
            json!({ "name": "x", "kind": "STOCK_BELOW", "threshold": 1, "sku": "NOPE", "recipientRoles": ["OWNER"] }),
            "sku",
            "NOT_FOUND",
        ),
        (
            json!({ "name": "x", "kind": "STOCK_BELOW", "threshold": 1, "locationId": other_loc, "recipientRoles": ["OWNER"] }),
            "locationId",
            "NOT_FOUND",
        ),
        (
            json!({ "id": "gid://quartermaster/AlertRule/nope", "name": "x", "kind": "STOCK_BELOW", "threshold": 1, "recipientRoles": ["OWNER"] }),
            "id",
            "NOT_FOUND",
        ),
    ];
    for (input, field, code) in cases {
        let d = app.data(&t.owner_key, UPSERT, json!({ "i": input })).await;
        let p = &d["alertRuleUpsert"];
        assert_eq!(p["alertRule"], Value::Null, "{input}: {d}");
        assert_eq!(p["userErrors"][0]["field"], json!(["input", field]), "{input}: {d}");
        assert_eq!(p["userErrors"][0]["code"], code, "{input}: {d}");
    }
    // A rule's kind is fixed.
    let r = rule(
        &app,
        &t.owner_key,
        json!({ "name": "x", "kind": "STOCK_BELOW", "threshold": 1, "recipientRoles": ["OWNER"] }),
    )
    .await;
    let d = app
        .data(&t.owner_key, UPSERT, json!({ "i": { "id": r["id"], "name": "x", "kind": "DAYS_OF_COVER_BELOW", "daysOfCover": "2", "recipientRoles": ["OWNER"] } }))
        .await;
    assert_eq!(d["alertRuleUpsert"]["userErrors"][0]["field"], json!(["input", "kind"]), "{d}");
    let d = app.data(&t.owner_key, "{ alertRules(first: 10) { nodes { kind } } }", json!({})).await;
    assert_eq!(
        d["alertRules"]["nodes"].as_array().map(Vec::len),
        Some(4),
        "the three default rules and one stock rule"
    );
    // A viewer may read rules and alerts but not change them.
    let viewer = app.jwt(&t, &[Role::Viewer]);
    app.data(&viewer, "{ alertRules(first: 10) { nodes { id } } alerts(first: 1) { nodes { id } } }", json!({})).await;
    let (_, body) = app
        .gql(
            &viewer,
            UPSERT,
            json!({ "i": { "name": "x", "kind": "STOCK_BELOW", "threshold": 1, "recipientRoles": ["OWNER"] } }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn acknowledging_an_alert_records_who_and_is_idempotent() {
    let app = TestApp::spawn().await;
    let (t, loc) = shop(&app).await;
    rule(
        &app,
        &t.owner_key,
        json!({ "name": "Any low", "kind": "STOCK_BELOW", "threshold": 0, "recipientRoles": ["OWNER"] }),
    )
    .await;
    app.stock(&t.owner_key, "TEE-1", &loc, 1).await;
    app.stock(&t.owner_key, "TEE-1", &loc, -1).await;
    let open = alerts(&app, &t.owner_key, Some("OPEN")).await;
    assert_eq!(open.len(), 1);
    let ack = "mutation($id: ID!) { alertAcknowledge(input: { id: $id }) { alert { status acknowledgedBy } userErrors { field code } } }";
    let planner = app.jwt(&t, &[Role::Planner]);
    for _ in 0..2 {
        let d = app.data(&planner, ack, json!({ "id": open[0]["id"] })).await;
        assert_eq!(
            d["alertAcknowledge"]["alert"],
            json!({ "status": "ACKNOWLEDGED", "acknowledgedBy": "test-user" }),
            "{d}"
        );
    }
    assert!(alerts(&app, &t.owner_key, Some("OPEN")).await.is_empty());
    assert_eq!(alerts(&app, &t.owner_key, Some("ACKNOWLEDGED")).await.len(), 1);
    let d = app.data(&planner, ack, json!({ "id": "gid://quartermaster/Alert/x" })).await;
    assert_eq!(d["alertAcknowledge"]["userErrors"][0]["code"], "NOT_FOUND");
}

/// Alerts that fire together reach each recipient as one digest e-mail; a single alert as its own.
#[tokio::test]
async fn many_alerts_at_once_become_one_digest_per_recipient() {
    let Some(smtp) = qm_tests::smtp::Server::start().await else {
        eprintln!("skipping: set QM_TEST_PYTHON to a python with the aiosmtpd package");
        return;
    };
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(smtp.url().into())).await;
    let (t, loc) = shop(&app).await;
    for (email, role) in [("plan@acme.example", "PLANNER"), ("view@acme.example", "VIEWER")] {
        let q = "mutation($e: String!, $r: [Role!]!) { userInvite(input: { email: $e, roles: $r }) { user { id } } }";
        app.data(&t.owner_key, q, json!({ "e": email, "r": [role] })).await;
    }
    rule(
        &app,
        &t.owner_key,
        json!({ "name": "Low", "kind": "STOCK_BELOW", "threshold": 2, "recipientRoles": ["OWNER", "PLANNER"] }),
    )
    .await;
    rule(
        &app,
        &t.owner_key,
        json!({ "name": "Empty", "kind": "STOCK_BELOW", "threshold": 0, "recipientRoles": ["OWNER"] }),
    )
    .await;
    // All four alerts must fall in one digest window (a minute): keep clear of its end.
    use chrono::Timelike;
    let second = chrono::Utc::now().second();
    if second >= 45 {
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(61 - second))).await;
    }
    for sku in ["TEE-1", "TEE-2"] {
        app.stock(&t.owner_key, sku, &loc, 5).await;
        app.stock(&t.owner_key, sku, &loc, -5).await; // crosses both rules
    }
    assert_eq!(alerts(&app, &t.owner_key, None).await.len(), 4);
    app.drain_jobs().await;
    assert!(smtp.wait_for(1).await.is_empty(), "nothing goes out before the digest window ends");
    app.make_jobs_due().await;
    app.drain_jobs().await;
    app.drain_jobs().await;
    let mails = smtp.wait_for(2).await;
    assert_eq!(mails.len(), 2, "one digest for the owner, one for the planner, none for the viewer");
    let to_owner = mails.iter().find(|m| m.raw.contains("To: owner@acme.example")).expect("owner's digest");
    assert!(to_owner.raw.contains("Subject: [Quartermaster] 4 alerts"), "{}", to_owner.raw);
    let to_planner = mails.iter().find(|m| m.raw.contains("To: plan@acme.example")).expect("planner's digest");
    assert!(to_planner.raw.contains("Subject: [Quartermaster] 2 alerts"), "{}", to_planner.raw);
    let (text, html) = to_planner.decoded.split_once("Content-Type: text/html").expect("two parts");
    assert!(text.contains("Low stock: TEE-1 at WH (WH)") && text.contains("Low stock: TEE-2 at WH (WH)"), "{text}");
    assert!(html.contains("<h3>Low stock: TEE-1 at WH (WH)</h3>"), "{html}");
    // Every alert is marked as e-mailed; running the digest again sends nothing more.
    let d = app.data(&t.owner_key, "{ alerts(first: 10) { nodes { notifiedAt } } }", json!({})).await;
    assert!(d["alerts"]["nodes"].as_array().expect("alerts").iter().all(|a| a["notifiedAt"].is_string()), "{d}");
    app.make_jobs_due().await;
    app.drain_jobs().await;
    assert_eq!(smtp.wait_for(3).await.len(), 2);
}
