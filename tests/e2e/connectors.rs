//! Installing connectors (issue 6, first part): admins connect a Shopify store; the credentials
//! are sealed at rest, never returned, and bound to their tenant and connector.

use qm_api::db::TxMode;
use qm_api::db::entities::connector;
use qm_domain::Role;
use qm_tests::TestApp;
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

const FIELDS: &str = "id kind status statusReason shopDomain apiVersion baseUrl hasCredentials locationMapping { shopifyLocationId location { id code } }";
const TOKEN: &str = "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";
const SECRET: &str = "whsec-app-client-secret-1234";

fn install_query() -> String {
    format!(
        "mutation($i: ConnectorInstallInput!) {{ connectorInstall(input: $i) {{ connector {{ {FIELDS} }} userErrors {{ field code message }} }} }}"
    )
}

fn config(location: &str) -> Value {
    json!({
        "shopDomain": "example-shop.myshopify.com",
        "accessToken": TOKEN,
        "apiVersion": "2026-01",
        "webhookSecret": SECRET,
        "baseUrl": "http://127.0.0.1:9/mock",
        "locationMapping": [{ "shopifyLocationId": "gid://shopify/Location/820982911946154508", "locationId": location }],
    })
}

#[tokio::test]
async fn an_admin_connects_a_shop_and_its_credentials_are_sealed_and_never_returned() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let wh = app.location(&t.owner_key, "WH").await;
    let d =
        app.data(&t.owner_key, &install_query(), json!({ "i": { "kind": "SHOPIFY", "config": config(&wh) } })).await;
    let p = &d["connectorInstall"];
    assert_eq!(p["userErrors"], json!([]), "{d}");
    let c = &p["connector"];
    assert_eq!(
        (c["kind"].as_str(), c["status"].as_str(), c["shopDomain"].as_str(), c["apiVersion"].as_str()),
        (Some("SHOPIFY"), Some("ACTIVE"), Some("example-shop.myshopify.com"), Some("2026-01"))
    );
    assert_eq!(c["baseUrl"], "http://127.0.0.1:9/mock");
    assert_eq!(c["hasCredentials"], true);
    assert_eq!(c["locationMapping"][0]["shopifyLocationId"], "gid://shopify/Location/820982911946154508");
    assert_eq!(c["locationMapping"][0]["location"]["code"], "WH");
    // Nothing the API answers holds the token or the secret.
    let listed = app.data(&t.owner_key, &format!("{{ connectors {{ {FIELDS} }} }}"), json!({})).await;
    let node = app
        .data(
            &t.owner_key,
            "query($id: ID!) { node(id: $id) { id ... on Connector { shopDomain } } }",
            json!({ "id": c["id"] }),
        )
        .await;
    assert_eq!(node["node"]["shopDomain"], "example-shop.myshopify.com");
    for text in [d.to_string(), listed.to_string(), node.to_string()] {
        assert!(!text.contains(TOKEN) && !text.contains(SECRET), "{text}");
    }
    // At rest: sealed, not in the clear; it opens to what was given, for this connector only.
    let id = qm_tests::uuid_of(c["id"].as_str().expect("id"));
    let row = connector::Entity::find().all(app.owner_db.conn()).await.expect("rows");
    assert_eq!(row.len(), 1);
    let stored = &row[0];
    assert!(stored.credentials.starts_with("v1:") && !stored.credentials.contains(TOKEN), "{}", stored.credentials);
    let opened = qm_api::services::connectors::open_credentials(&app.state.sealer, stored);
    assert_eq!(opened, Some((TOKEN.to_owned(), SECRET.to_owned())));
    let mut moved = stored.clone();
    moved.id = uuid::Uuid::now_v7();
    assert_eq!(qm_api::services::connectors::open_credentials(&app.state.sealer, &moved), None);
    assert_eq!(stored.id, id);
}

#[tokio::test]
async fn bad_configuration_is_refused_field_by_field_and_a_shop_connects_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let wh = app.location(&t.owner_key, "WH").await;
    let bad = json!({
        "shopDomain": "example.com",
        "accessToken": " ",
        "apiVersion": "2026-02",
        "webhookSecret": SECRET,
        "baseUrl": "ftp://mock",
        "locationMapping": [
            { "shopifyLocationId": "gid://shopify/Product/1", "locationId": wh },
            { "shopifyLocationId": "gid://shopify/Location/2", "locationId": "gid://quartermaster/Location/00000000-0000-7000-8000-000000000000" },
        ],
    });
    let d = app.data(&t.owner_key, &install_query(), json!({ "i": { "kind": "SHOPIFY", "config": bad } })).await;
    let fields: Vec<String> = d["connectorInstall"]["userErrors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            e["field"]
                .as_array()
                .expect("field")
                .iter()
                .map(|f| f.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    assert_eq!(
        fields,
        [
            "input.config.shopDomain",
            "input.config.accessToken",
            "input.config.apiVersion",
            "input.config.baseUrl",
            "input.config.locationMapping.0.shopifyLocationId",
            "input.config.locationMapping.1.locationId",
        ],
        "{d}"
    );
    assert!(d["connectorInstall"]["connector"].is_null());
    let none = app.data(&t.owner_key, "{ connectors { id } }", json!({})).await;
    assert_eq!(none["connectors"], json!([]), "nothing was stored");
    // Installed once; a second install of the same shop is TAKEN.
    let ok =
        app.data(&t.owner_key, &install_query(), json!({ "i": { "kind": "SHOPIFY", "config": config(&wh) } })).await;
    assert_eq!(ok["connectorInstall"]["userErrors"], json!([]), "{ok}");
    let again =
        app.data(&t.owner_key, &install_query(), json!({ "i": { "kind": "SHOPIFY", "config": config(&wh) } })).await;
    assert_eq!(again["connectorInstall"]["userErrors"][0]["code"], "TAKEN", "{again}");
}

#[tokio::test]
async fn pause_resume_update_and_uninstall() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let wh = app.location(&t.owner_key, "WH").await;
    let d =
        app.data(&t.owner_key, &install_query(), json!({ "i": { "kind": "SHOPIFY", "config": config(&wh) } })).await;
    let id = d["connectorInstall"]["connector"]["id"].clone();
    let call = |name: &str, input_type: &str| {
        format!(
            "mutation($i: {input_type}!) {{ {name}(input: $i) {{ connector {{ {FIELDS} }} userErrors {{ field code message }} }} }}"
        )
    };
    let paused = app
        .data(
            &t.owner_key,
            &call("connectorPause", "ConnectorPauseInput"),
            json!({ "i": { "id": id, "reason": "stocktake" } }),
        )
        .await;
    let c = &paused["connectorPause"]["connector"];
    assert_eq!((c["status"].as_str(), c["statusReason"].as_str()), (Some("PAUSED"), Some("stocktake")), "{paused}");
    let resumed =
        app.data(&t.owner_key, &call("connectorResume", "ConnectorIdInput"), json!({ "i": { "id": id } })).await;
    assert_eq!(resumed["connectorResume"]["connector"]["status"], "ACTIVE");
    // A new token only: the webhook secret stays; the base URL override is removed.
    let updated = app
        .data(
            &t.owner_key,
            &call("connectorUpdate", "ConnectorUpdateInput"),
            json!({ "i": { "id": id, "config": { "accessToken": "shpat_new", "apiVersion": "2026-04", "baseUrl": null } } }),
        )
        .await;
    let c = &updated["connectorUpdate"]["connector"];
    assert_eq!((c["apiVersion"].as_str(), c["baseUrl"].is_null()), (Some("2026-04"), true), "{updated}");
    let row = &connector::Entity::find().all(app.owner_db.conn()).await.expect("rows")[0];
    assert_eq!(
        qm_api::services::connectors::open_credentials(&app.state.sealer, row),
        Some(("shpat_new".to_owned(), SECRET.to_owned()))
    );
    let other_shop = app
        .data(
            &t.owner_key,
            &call("connectorUpdate", "ConnectorUpdateInput"),
            json!({ "i": { "id": id, "config": { "shopDomain": "other.myshopify.com" } } }),
        )
        .await;
    assert_eq!(other_shop["connectorUpdate"]["userErrors"][0]["field"], json!(["input", "config", "shopDomain"]));
    // Uninstalled: credentials erased, still listed, and the shop can be connected again.
    let gone =
        app.data(&t.owner_key, &call("connectorUninstall", "ConnectorIdInput"), json!({ "i": { "id": id } })).await;
    let c = &gone["connectorUninstall"]["connector"];
    assert_eq!((c["status"].as_str(), c["hasCredentials"].as_bool()), (Some("UNINSTALLED"), Some(false)), "{gone}");
    let row = &connector::Entity::find().all(app.owner_db.conn()).await.expect("rows")[0];
    assert!(row.credentials.is_empty());
    let paused_again =
        app.data(&t.owner_key, &call("connectorPause", "ConnectorPauseInput"), json!({ "i": { "id": id } })).await;
    assert_eq!(paused_again["connectorPause"]["userErrors"][0]["code"], "INVALID_STATE");
    let back =
        app.data(&t.owner_key, &install_query(), json!({ "i": { "kind": "SHOPIFY", "config": config(&wh) } })).await;
    assert_eq!(back["connectorInstall"]["connector"]["id"], id, "{back}");
    assert_eq!(back["connectorInstall"]["connector"]["status"], "ACTIVE");
    // Stored so: sealed credentials again, active.
    let row = &connector::Entity::find().all(app.owner_db.conn()).await.expect("rows")[0];
    assert_eq!(row.status, "active");
    assert!(row.credentials.starts_with("v1:"), "{}", row.credentials);
}

#[tokio::test]
async fn only_owners_and_admins_see_or_change_connectors() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let wh = app.location(&t.owner_key, "WH").await;
    let planner = app.jwt(&t, &[Role::Planner]);
    let (status, body) =
        app.gql(&planner, &install_query(), json!({ "i": { "kind": "SHOPIFY", "config": config(&wh) } })).await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    let (_, listed) = app.gql(&planner, "{ connectors { id } }", json!({})).await;
    assert_eq!(listed["errors"][0]["extensions"]["code"], "FORBIDDEN", "{listed}");
    let admin = app.jwt(&t, &[Role::Admin]);
    let d = app.data(&admin, &install_query(), json!({ "i": { "kind": "SHOPIFY", "config": config(&wh) } })).await;
    assert_eq!(d["connectorInstall"]["userErrors"], json!([]), "{d}");
    // Hidden from node(id:) for those who may not manage connectors.
    let id = d["connectorInstall"]["connector"]["id"].clone();
    let (_, n) = app.gql(&planner, "query($id: ID!) { node(id: $id) { id } }", json!({ "id": id })).await;
    assert!(n["data"]["node"].is_null(), "{n}");
    // A connector row of another tenant is neither listed nor reachable.
    let other = app.tenant("other").await;
    let s = app.owner_db.scoped(other.id, TxMode::Write).await.expect("tx");
    let now = chrono::Utc::now();
    connector::Entity::insert(connector::ActiveModel {
        tenant_id: Set(other.id),
        id: Set(uuid::Uuid::now_v7()),
        kind: Set("shopify".into()),
        status: Set("active".into()),
        external_account: Set("theirs.myshopify.com".into()),
        settings: Set(json!({ "apiVersion": "2026-01", "baseUrl": null, "locationMapping": [] })),
        credentials: Set(String::new()),
        status_reason: Set(None),
        throttle: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&s.tx)
    .await
    .expect("insert");
    s.commit().await.expect("commit");
    let mine = app.data(&t.owner_key, "{ connectors { shopDomain } }", json!({})).await;
    assert_eq!(mine["connectors"], json!([{ "shopDomain": "example-shop.myshopify.com" }]));
}

/// Shopify's signature, computed here independently of the server's code.
fn shopify_hmac(secret: &str, body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    m.update(body);
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

async fn post_webhook(app: &TestApp, connector: &str, topic: &str, webhook_id: &str, body: &[u8], hmac: &str) -> u16 {
    let id = connector.rsplit('/').next().expect("uuid");
    app.client
        .post(format!("{}/webhooks/shopify/{id}", app.address))
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Hmac-Sha256", hmac)
        .header("X-Shopify-Shop-Domain", "example-shop.myshopify.com")
        .header("X-Shopify-API-Version", "2026-01")
        .header("X-Shopify-Webhook-Id", webhook_id)
        .header("X-Shopify-Triggered-At", "2026-03-02T15:15:00.123Z")
        .body(body.to_vec())
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

async fn stored_webhooks(app: &TestApp) -> Vec<qm_api::db::entities::connector_webhook::Model> {
    qm_api::db::entities::connector_webhook::Entity::find().all(app.owner_db.conn()).await.expect("rows")
}

#[tokio::test]
async fn inbound_webhooks_are_verified_stored_once_per_delivery_and_uninstall_pauses() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let wh = app.location(&t.owner_key, "WH").await;
    let d =
        app.data(&t.owner_key, &install_query(), json!({ "i": { "kind": "SHOPIFY", "config": config(&wh) } })).await;
    let id = d["connectorInstall"]["connector"]["id"].as_str().expect("id").to_owned();
    // Compact, with `\/` escaped, as Shopify sends it.
    let body = br#"{"inventory_item_id":808950810,"location_id":820982911946154508,"available":6,"updated_at":"2026-03-02T10:15:00-05:00","admin_graphql_api_id":"gid:\/\/shopify\/InventoryLevel\/820982911946154508?inventory_item_id=808950810"}"#;
    let sig = shopify_hmac(SECRET, body);
    // The same delivery three times at once: three 200s, one stored row.
    let sends = (0..3).map(|_| post_webhook(&app, &id, "inventory_levels/update", "wh-1", body, &sig));
    let codes = futures_util::future::join_all(sends).await;
    assert_eq!(codes, [200, 200, 200]);
    let rows = stored_webhooks(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].topic.as_str(), rows[0].status.as_str()), ("inventory_levels/update", "received"));
    assert_eq!(rows[0].body.as_bytes(), body, "stored exactly as signed");
    assert_eq!(rows[0].triggered_at.map(|t| t.to_rfc3339()), Some("2026-03-02T15:15:00.123+00:00".to_owned()));
    // Refused: a flipped byte, a re-serialised body, another secret, no signature; nothing stored.
    let mut flipped = body.to_vec();
    flipped[30] ^= 1;
    assert_eq!(post_webhook(&app, &id, "inventory_levels/update", "wh-2", &flipped, &sig).await, 401);
    let reserialised = serde_json::to_vec(&serde_json::from_slice::<Value>(body).expect("json")).expect("json");
    assert_eq!(post_webhook(&app, &id, "inventory_levels/update", "wh-3", &reserialised, &sig).await, 401);
    assert_eq!(
        post_webhook(&app, &id, "inventory_levels/update", "wh-4", body, &shopify_hmac("other", body)).await,
        401
    );
    assert_eq!(post_webhook(&app, &id, "inventory_levels/update", "wh-5", body, "").await, 401);
    let no_topic = app
        .client
        .post(format!("{}/webhooks/shopify/{}", app.address, id.rsplit('/').next().expect("uuid")))
        .header("X-Shopify-Hmac-Sha256", &sig)
        .header("X-Shopify-Webhook-Id", "wh-9")
        .body(body.to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(no_topic.status().as_u16(), 400, "signed, but without the topic and the shop");
    let unknown = format!("gid://quartermaster/Connector/{}", uuid::Uuid::now_v7());
    assert_eq!(post_webhook(&app, &unknown, "inventory_levels/update", "wh-6", body, &sig).await, 404);
    assert_eq!(stored_webhooks(&app).await.len(), 1);
    // app/uninstalled pauses the connector, with the reason.
    let gone = br#"{"id":548380009,"name":"Example Shop","domain":"example-shop.myshopify.com"}"#;
    assert_eq!(post_webhook(&app, &id, "app/uninstalled", "wh-7", gone, &shopify_hmac(SECRET, gone)).await, 200);
    let c = app.data(&t.owner_key, "{ connectors { status statusReason } }", json!({})).await;
    assert_eq!(c["connectors"][0]["status"], "PAUSED", "{c}");
    assert_eq!(c["connectors"][0]["statusReason"], "the app was uninstalled from the shop");
    // Once uninstalled here, the connector has no secret and takes nothing.
    let uninstall = "mutation($id: ID!) { connectorUninstall(input: { id: $id }) { userErrors { code } } }";
    app.data(&t.owner_key, uninstall, json!({ "id": id })).await;
    assert_eq!(post_webhook(&app, &id, "inventory_levels/update", "wh-8", body, &sig).await, 404);
    assert_eq!(stored_webhooks(&app).await.len(), 2);
}
