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
