//! Operations: health, readiness, metrics, GraphiQL, the demo seed, pagination and refetching.

use qm_domain::demo::DemoParams;
use qm_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.address)).send();
    let r = get("/healthz").await.expect("healthz");
    assert_eq!(r.status().as_u16(), 200);
    let r = get("/readyz").await.expect("readyz");
    assert_eq!(r.json::<serde_json::Value>().await.expect("json"), json!({ "status": "ready" }));
    let q = json!({ "query": "query Me { me { subject } }", "operationName": "Me" });
    let r = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&t.owner_key)
        .json(&q)
        .send()
        .await
        .expect("me");
    assert!(r.headers().get("x-request-id").is_some());
    let text = get("/metrics").await.expect("metrics").text().await.expect("text");
    assert!(text.contains("qm_graphql_requests_total{operation=\"Me\",outcome=\"ok\"} 1"), "{text}");
    assert!(
        text.contains("qm_graphql_request_duration_seconds_bucket{operation=\"Me\",outcome=\"ok\",le=\"+Inf\"} 1"),
        "{text}"
    );
    let html = get("/graphql").await.expect("graphiql").text().await.expect("html");
    assert!(html.contains("graphiql"));
    assert_eq!(get("/nope").await.expect("404").status().as_u16(), 404);
}

#[tokio::test]
async fn graphiql_can_introspect_the_schema() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    // The shape GraphiQL sends on load: deep `ofType` nesting must pass the limits.
    let q = r#"query IntrospectionQuery { __schema { queryType { name } mutationType { name } types { ...FullType } directives { name locations args { ...InputValue } } } }
      fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name } possibleTypes { ...TypeRef } }
      fragment InputValue on __InputValue { name type { ...TypeRef } defaultValue }
      fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }"#;
    let d = app.data(&t.owner_key, q, json!({})).await;
    assert_eq!(d["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn the_demo_seed_is_deterministic_idempotent_and_queryable() {
    let app = TestApp::spawn().await;
    let params = DemoParams {
        seed: 7,
        end: chrono::NaiveDate::from_ymd_opt(2026, 11, 21).expect("date"),
        days: 30,
        products: 8,
    };
    let first = qm_api::demo::seed(&app.state.db, &params).await.expect("seed");
    assert!(first.created);
    assert_eq!(first.demand_rows, first.variants * 3 * 30);
    let again = qm_api::demo::seed(&app.state.db, &params).await.expect("seed again");
    assert!(!again.created, "seeding twice changes nothing");
    let demo = qm_tests::TestTenant { id: first.tenant_id, slug: "demo".into(), owner_key: String::new() };
    let token = app.jwt(&demo, &[qm_domain::Role::Owner]);
    let d = app
        .data(&token, "{ products(first: 5) { edges { node { title variants { sku } } } } locations(first: 5) { nodes { kind } } suppliers(first: 5) { nodes { leadTimeMeanDays } } ledgerVerify { ok } }", json!({}))
        .await;
    assert_eq!(d["products"]["edges"].as_array().map(Vec::len), Some(5));
    assert_eq!(d["locations"]["nodes"], json!([{ "kind": "WAREHOUSE" }, { "kind": "WAREHOUSE" }, { "kind": "STORE" }]));
    assert_eq!(d["suppliers"]["nodes"].as_array().map(Vec::len), Some(3));
    assert_eq!(d["ledgerVerify"]["ok"], true);
    // The demo ships a days-of-cover rule beside the default ones, so alerts show up as stock moves.
    let rules = app.data(&token, "{ alertRules(first: 5) { nodes { kind daysOfCover } } }", json!({})).await;
    assert_eq!(
        rules["alertRules"]["nodes"],
        json!([
            { "kind": "WEBHOOK_ENDPOINT_DISABLED", "daysOfCover": null },
            { "kind": "SYNC_FAILED", "daysOfCover": null },
            { "kind": "RETURN_RATE_HIGH", "daysOfCover": null },
            { "kind": "DAYS_OF_COVER_BELOW", "daysOfCover": "7" },
            { "kind": "STOCKOUT_PREDICTED", "daysOfCover": null }
        ])
    );
    let expected = qm_domain::demo::generate(&params);
    assert_eq!(d["products"]["edges"][0]["node"]["title"], expected.products[0].title.as_str());
}

#[tokio::test]
async fn connections_page_forwards_and_backwards_and_nodes_refetch() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let k = &t.owner_key;
    for i in 0..5 {
        app.product(k, &format!("p{i}"), &[&format!("SKU-{i}")]).await;
    }
    let page = "query($after: String) { products(first: 2, after: $after) { nodes { handle } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let mut handles = Vec::new();
    let mut after = serde_json::Value::Null;
    loop {
        let d = app.data(k, page, json!({ "after": after })).await;
        for n in d["products"]["nodes"].as_array().expect("nodes") {
            handles.push(n["handle"].as_str().expect("handle").to_owned());
        }
        if d["products"]["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = d["products"]["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(handles, ["p0", "p1", "p2", "p3", "p4"]);
    // A dashboard page of 50 products with their stock stays within the complexity limit.
    app.data(k, "{ products(first: 50) { nodes { title variants { sku stockLevels { onHand available location { code } } } } } }", json!({}))
        .await;
    let d = app
        .data(k, "{ products(last: 2) { nodes { handle id } pageInfo { hasPreviousPage startCursor } } }", json!({}))
        .await;
    assert_eq!(d["products"]["nodes"][0]["handle"], "p3");
    assert_eq!(d["products"]["pageInfo"]["hasPreviousPage"], true);
    let before = d["products"]["pageInfo"]["startCursor"].clone();
    let d2 = app
        .data(k, "query($b: String) { products(last: 10, before: $b) { nodes { handle } } }", json!({ "b": before }))
        .await;
    assert_eq!(d2["products"]["nodes"].as_array().map(Vec::len), Some(3));
    let id = d["products"]["nodes"][1]["id"].clone();
    let n =
        app.data(k, "query($id: ID!) { node(id: $id) { id ... on Product { handle } } }", json!({ "id": id })).await;
    assert_eq!(n["node"]["handle"], "p4");
    let n = app.data(k, "query($id: ID!) { nodes(ids: [$id, \"nope\"]) { id } }", json!({ "id": id })).await;
    assert_eq!(n["nodes"][1], serde_json::Value::Null);
    let found = app
        .data(k, "{ a: products(first: 10, query: \"P3\") { nodes { handle } } b: products(first: 10, query: \"%\") { nodes { handle } } }", json!({}))
        .await;
    assert_eq!(found["a"]["nodes"], json!([{ "handle": "p3" }]), "case-insensitive");
    assert_eq!(found["b"]["nodes"], json!([]), "% matches literally");
    let v = app
        .data(k, "{ variantBySku(sku: \"SKU-4\") { sku price { amount currencyCode } product { handle } } }", json!({}))
        .await;
    assert_eq!(
        v["variantBySku"],
        json!({ "sku": "SKU-4", "price": { "amount": "19.99", "currencyCode": "USD" }, "product": { "handle": "p4" } })
    );
}

#[tokio::test]
async fn the_generated_jwt_secret_is_private_to_its_owner() {
    let app = TestApp::spawn().await;
    let path = app.state.config.data_dir.join("jwt-secret");
    let secret = std::fs::read_to_string(&path).expect("secret written on first start");
    assert!(secret.trim().len() >= 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[tokio::test]
async fn migrations_roll_back_and_forward_again() {
    use sea_orm_migration::MigratorTrait;
    let app = TestApp::spawn().await;
    let conn = app.owner_db.conn();
    qm_api::db::Migrator::down(conn, None).await.expect("down");
    assert!(!app.owner_db.is_migrated().await.unwrap_or(false));
    qm_api::db::Migrator::up(conn, None).await.expect("up again");
    assert!(app.owner_db.is_migrated().await.expect("readable"));
}

/// A database that already has tenants when forecasting arrives gets each tenant's nightly run.
#[tokio::test]
async fn upgrading_gives_existing_tenants_the_nightly_forecast() {
    use qm_api::db::TxMode;
    use qm_api::db::entities::job_schedule;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use sea_orm_migration::MigratorTrait;
    let app = TestApp::spawn().await;
    let t = app.tenant("early").await;
    let nightly = |db: qm_api::db::Db| async move {
        let s = db.scoped(t.id, TxMode::Read).await.expect("tx");
        let rows = job_schedule::Entity::find()
            .filter(job_schedule::Column::TenantId.eq(t.id))
            .filter(job_schedule::Column::Name.eq("forecast.nightly"))
            .all(&s.tx)
            .await
            .expect("schedules");
        s.commit().await.expect("commit");
        rows
    };
    // As if the tenant predated forecasting: no schedule, and the forecast migration not applied.
    let s = app.owner_db.scoped(t.id, TxMode::Write).await.expect("tx");
    job_schedule::Entity::delete_many()
        .filter(job_schedule::Column::TenantId.eq(t.id))
        .exec(&s.tx)
        .await
        .expect("delete");
    s.commit().await.expect("commit");
    assert!(nightly(app.owner_db.clone()).await.is_empty());
    let conn = app.owner_db.conn();
    // Back past the forecast migration (and every one after it).
    qm_api::db::Migrator::down(conn, Some(steps_back_before("create_forecasts"))).await.expect("down");
    qm_api::db::Migrator::up(conn, None).await.expect("up again");
    let rows = nightly(app.owner_db.clone()).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].kind.as_str(), rows[0].interval_seconds), ("forecast.run", 86_400));
    assert!(rows[0].next_run_at > chrono::Utc::now());
}

/// How many migrations to roll back to undo the one whose name contains `name` and all later ones.
pub(crate) fn steps_back_before(name: &str) -> u32 {
    use sea_orm_migration::MigratorTrait;
    let all = qm_api::db::Migrator::migrations();
    let at = all.iter().position(|m| m.name().contains(name)).expect("a migration of that name");
    u32::try_from(all.len() - at).expect("few migrations")
}

/// A database that already has tenants when alert rules arrive gets each tenant's default rule.
#[tokio::test]
async fn upgrading_gives_existing_tenants_the_default_alert_rule() {
    use sea_orm_migration::MigratorTrait;
    let app = TestApp::spawn().await;
    let t = app.tenant("early").await;
    let conn = app.owner_db.conn();
    // Back to the schema before alert rules, then forward.
    qm_api::db::Migrator::down(conn, Some(steps_back_before("create_alerts"))).await.expect("down");
    qm_api::db::Migrator::up(conn, None).await.expect("up again");
    // As `quartermaster migrate` does after migrating: grant the app role the new tables.
    app.owner_db.grant_app_role(qm_tests::APP_ROLE).await.expect("grant");
    let d = app.data(&t.owner_key, "{ alertRules(first: 5) { nodes { kind recipientRoles } } }", json!({})).await;
    assert_eq!(
        d["alertRules"]["nodes"],
        json!([
            { "kind": "WEBHOOK_ENDPOINT_DISABLED", "recipientRoles": ["OWNER", "ADMIN"] },
            { "kind": "SYNC_FAILED", "recipientRoles": ["OWNER", "ADMIN"] },
            { "kind": "RETURN_RATE_HIGH", "recipientRoles": ["OWNER", "ADMIN"] }
        ])
    );
}

#[tokio::test]
async fn upgrading_gives_existing_tenants_the_sync_failed_and_return_rate_rules_once() {
    use sea_orm_migration::MigratorTrait;
    let app = TestApp::spawn().await;
    let t = app.tenant("early").await;
    let conn = app.owner_db.conn();
    // Back to the schema before the sync engine, then forward: one rule, not two.
    qm_api::db::Migrator::down(conn, Some(steps_back_before("create_sync"))).await.expect("down");
    let d = app.data(&t.owner_key, "{ alertRules(first: 5) { nodes { kind } } }", json!({})).await;
    assert_eq!(d["alertRules"]["nodes"], json!([{ "kind": "WEBHOOK_ENDPOINT_DISABLED" }]), "{d}");
    qm_api::db::Migrator::up(conn, None).await.expect("up again");
    app.owner_db.grant_app_role(qm_tests::APP_ROLE).await.expect("grant");
    let d = app.data(&t.owner_key, "{ alertRules(first: 5) { nodes { kind recipientRoles } } }", json!({})).await;
    assert_eq!(
        d["alertRules"]["nodes"],
        json!([
            { "kind": "WEBHOOK_ENDPOINT_DISABLED", "recipientRoles": ["OWNER", "ADMIN"] },
            { "kind": "SYNC_FAILED", "recipientRoles": ["OWNER", "ADMIN"] },
            { "kind": "RETURN_RATE_HIGH", "recipientRoles": ["OWNER", "ADMIN"] }
        ])
    );
}

/// After a key rotation, `reseal` seals every stored secret again with the new key, so the old one
/// can go: a connector's credentials, webhook endpoint secrets (a previous one that still signs,
/// and one an earlier version stored in the clear) and the contract signing key then open with the
/// new key alone, to the same values; a previous secret past its expiry is cleared. A dry run
/// changes nothing; a second run has nothing to do; a value sealed with a key no longer
/// configured is reported and left as it is.
#[tokio::test]
async fn resealing_lets_the_old_key_go() {
    use base64::Engine as _;
    use qm_api::db::entities::{connector, contract_key, webhook_endpoint};
    use qm_api::services::{connectors, contracts::ledger, reseal};
    use qm_api::webhooks::{open_secret, seal_secret};
    use qm_integrations::sealing::{SealError, Sealer};
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let key = |id: &str, byte: u8| format!("{id}:{}", base64::engine::general_purpose::STANDARD.encode([byte; 32]));
    let app = TestApp::spawn_with(|c| c.connector_keys = Some(key("k1", 1).into())).await;
    let t = app.tenant("acme").await;
    let hook = qm_integrations::webhooks::generate_secret();
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id } userErrors { message } } }",
            json!({ "i": { "kind": "SHIPBOB", "shipbob": { "accessToken": "pat-1", "webhookSecret": hook, "channelId": "77" } } }),
        )
        .await;
    assert_eq!(d["connectorInstall"]["userErrors"], json!([]), "{d}");
    let connector_id = qm_tests::uuid_of(d["connectorInstall"]["connector"]["id"].as_str().expect("id"));
    let url = "http://127.0.0.1:9/hook";
    let (rotated, first) = app.webhook_endpoint(&t.owner_key, url, json!([])).await;
    let second = app.rotate_webhook_secret(&t.owner_key, &rotated).await;
    let (retired, _) = app.webhook_endpoint(&t.owner_key, "http://127.0.0.1:9/old", json!([])).await;
    app.rotate_webhook_secret(&t.owner_key, &retired).await;
    let retired = qm_tests::uuid_of(&retired);
    let (legacy, legacy_secret) = app.webhook_endpoint(&t.owner_key, url, json!([])).await;
    let (lost, _) = app.webhook_endpoint(&t.owner_key, url, json!([])).await;
    let (rotated, legacy, lost) = (qm_tests::uuid_of(&rotated), qm_tests::uuid_of(&legacy), qm_tests::uuid_of(&lost));
    let conn = app.owner_db.conn();
    let set_secret = |id: uuid::Uuid, value: String| async move {
        webhook_endpoint::Entity::update_many()
            .filter(webhook_endpoint::Column::Id.eq(id))
            .col_expr(webhook_endpoint::Column::Secret, Expr::value(value))
            .exec(conn)
            .await
            .expect("update");
    };
    // An earlier version's clear secret, and one sealed with a key this deployment no longer has.
    set_secret(legacy, legacy_secret.clone()).await;
    let gone = Sealer::parse(&key("k0", 9)).expect("k0");
    let lost_value = seal_secret(&gone, t.id, lost, "whsec_c2VjcmV0LWZyb20tYW4tb2xkLWtleQ==");
    set_secret(lost, lost_value.clone()).await;
    // A rotation's previous secret whose day of signing is over.
    webhook_endpoint::Entity::update_many()
        .filter(webhook_endpoint::Column::Id.eq(retired))
        .col_expr(
            webhook_endpoint::Column::PreviousSecretExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::hours(1)),
        )
        .exec(conn)
        .await
        .expect("expire");
    let retired_row = || async move {
        webhook_endpoint::Entity::find_by_id((t.id, retired)).one(conn).await.expect("row").expect("endpoint")
    };
    assert!(retired_row().await.previous_secret.is_some());
    let s = app.state.db.scoped(t.id, qm_api::db::TxMode::Write).await.expect("tx");
    let public = ledger::ensure_key(&s, &app.state.sealer).await.expect("signing key");
    s.commit().await.expect("commit");

    let rows = || async move {
        let c = connector::Entity::find_by_id((t.id, connector_id)).one(conn).await.expect("row").expect("connector");
        let e = |id| async move {
            webhook_endpoint::Entity::find_by_id((t.id, id)).one(conn).await.expect("row").expect("endpoint")
        };
        let k = contract_key::Entity::find_by_id(t.id).one(conn).await.expect("row").expect("key");
        (c, e(rotated).await, e(legacy).await, e(lost).await, k)
    };
    let before = rows().await;

    // k2 now seals; k1 still opens. A dry run counts and changes nothing.
    let both = Sealer::parse(&format!("{},{}", key("k2", 2), key("k1", 1))).expect("keys");
    let dry = reseal::run(&app.state.db, &both, true).await.expect("dry run");
    let counts = |r: &reseal::Report, kind| r.counts.get(&kind).copied().unwrap_or_default();
    let want = |resealed, cleared| reseal::Counts { resealed, current: 0, cleared };
    assert_eq!(counts(&dry, reseal::Kind::WebhookSecret), want(3, 0), "{dry:?}");
    assert_eq!(counts(&dry, reseal::Kind::WebhookPreviousSecret), want(1, 1), "{dry:?}");
    assert!(dry.render(true).contains("1 expired and to clear"), "{}", dry.render(true));
    assert_eq!(rows().await, before);
    assert!(retired_row().await.previous_secret.is_some(), "a dry run clears nothing");
    let done = reseal::run(&app.state.db, &both, false).await.expect("reseal");
    assert_eq!(done.tenants, 1);
    for (kind, resealed, cleared) in [
        (reseal::Kind::ConnectorCredentials, 1, 0),
        (reseal::Kind::WebhookSecret, 3, 0),
        (reseal::Kind::WebhookPreviousSecret, 1, 1),
        (reseal::Kind::ContractSigningKey, 1, 0),
    ] {
        assert_eq!(counts(&done, kind), want(resealed, cleared), "{kind:?}: {done:?}");
    }
    let x = retired_row().await;
    assert_eq!((x.previous_secret, x.previous_secret_expires_at), (None, None), "the expired previous secret is gone");
    assert!(open_secret(&Sealer::parse(&key("k2", 2)).expect("k2"), t.id, retired, &x.secret).is_ok());
    assert_eq!(done.unopened.len(), 1, "{done:?}");
    assert_eq!((done.unopened[0].kind, done.unopened[0].id), (reseal::Kind::WebhookSecret, lost));

    // The new key alone opens everything to what it was.
    let only_new = Sealer::parse(&key("k2", 2)).expect("k2");
    let (c, r, l, x, k) = rows().await;
    let creds = connectors::open_credentials(&only_new, &c).expect("credentials open with k2");
    assert_eq!(creds, ("pat-1".to_owned(), hook.clone()));
    assert_eq!(open_secret(&only_new, t.id, rotated, &r.secret).as_deref(), Ok(second.as_str()));
    let previous = r.previous_secret.as_deref().expect("previous");
    assert_eq!(open_secret(&only_new, t.id, rotated, previous).as_deref(), Ok(first.as_str()));
    assert!(l.secret.starts_with("v1:k2:"), "the clear secret is sealed now: {}", l.secret);
    assert_eq!(open_secret(&only_new, t.id, legacy, &l.secret).as_deref(), Ok(legacy_secret.as_str()));
    assert_eq!(x.secret, lost_value, "what does not open is left as it is");
    assert!(k.sealed_secret.starts_with("v1:k2:") && k.public_key == public);
    let signing = only_new.open(&k.sealed_secret, &ledger::key_owner(t.id)).expect("signing key opens with k2");
    assert_eq!(Ok(signing), app.state.sealer.open(&before.4.sealed_secret, &ledger::key_owner(t.id)));

    // Nothing left to do but the value that does not open, now one under the current key that
    // was copied from another row: opened, not taken as current.
    set_secret(lost, l.secret.clone()).await;
    let again = reseal::run(&app.state.db, &both, false).await.expect("again");
    assert!(again.counts.values().all(|c| c.resealed == 0 && c.cleared == 0), "{again:?}");
    assert_eq!(counts(&again, reseal::Kind::WebhookSecret), reseal::Counts { resealed: 0, current: 3, cleared: 0 });
    assert_eq!(again.unopened.len(), 1, "{again:?}");
    assert_eq!((again.unopened[0].id, &again.unopened[0].error), (lost, &SealError::Tampered));
    let report = again.render(false);
    assert!(report.contains(&format!("webhook endpoint secrets of {lost} left as it is")), "{report}");
}
