//! The demo with a shop: a generated mock Shopify connected to a tenant through the public
//! GraphQL API, as a merchant would (install, sync, wait), used by the `demo-shopify` binary and
//! its end-to-end test.

use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::shopify_mock::{MockShopify, Shop};

/// The demo shop's domain and access token.
pub const SHOP_DOMAIN: &str = "demo-shop.myshopify.com";
pub const TOKEN: &str = "shpat_demo_mock_token";
pub const WEBHOOK_SECRET: &str = "demo-webhook-secret";

/// `variants` variants at three locations, with an order for every tenth variant (some shipped
/// with tracking, some cancelled), as of `at`.
pub fn shop(variants: usize, at: DateTime<Utc>) -> Shop {
    let mut shop = Shop::generate(variants, 3, at);
    let ids: Vec<u64> = shop.variants.keys().copied().collect();
    let locations: Vec<u64> = shop.locations.iter().map(|l| l.id).collect();
    for (n, chunk) in ids.chunks(10).enumerate() {
        let lines: Vec<(u64, i64)> = chunk.iter().take(2).map(|v| (*v, 1)).collect();
        let placed = at - chrono::Duration::minutes(30 + n as i64);
        let order = shop.place_order(locations[n % locations.len()], &lines, placed);
        match n % 4 {
            1 => shop.fulfill(order, 0, None, &format!("1ZDEMO{n:08}"), placed + chrono::Duration::minutes(10)),
            3 => shop.cancel(order, placed + chrono::Duration::minutes(5)),
            _ => {}
        }
    }
    shop
}

async fn gql(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let body: Value = client
        .post(format!("{address}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .context("calling the GraphQL API")?
        .json()
        .await
        .context("reading the GraphQL answer")?;
    if let Some(errors) = body.get("errors") {
        bail!("GraphQL errors: {errors}");
    }
    Ok(body["data"].clone())
}

/// Connects the tenant whose owner `token` is to `mock` (installing the connector, or pointing
/// the one installed by an earlier demo at this mock), runs a sync and waits for it; returns
/// the finished run.
pub async fn connect(address: &str, token: &str, mock: &MockShopify, wait: Duration) -> anyhow::Result<Value> {
    let client = reqwest::Client::new();
    let listed = gql(&client, address, token, "{ connectors { id shopDomain status } }", json!({})).await?;
    let existing = listed["connectors"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["shopDomain"] == SHOP_DOMAIN && c["status"] != "UNINSTALLED"))
        .and_then(|c| c["id"].as_str())
        .map(str::to_owned);
    let config = json!({
        "accessToken": TOKEN, "apiVersion": "2026-01", "webhookSecret": WEBHOOK_SECRET, "baseUrl": mock.url,
    });
    let id = match existing {
        Some(id) => {
            let d = gql(
                &client,
                address,
                token,
                "mutation($i: ConnectorUpdateInput!) { connectorUpdate(input: $i) { userErrors { field message } } }",
                json!({ "i": { "id": id, "config": config } }),
            )
            .await?;
            if d["connectorUpdate"]["userErrors"] != json!([]) {
                bail!("connectorUpdate: {}", d["connectorUpdate"]["userErrors"]);
            }
            let _ = gql(
                &client,
                address,
                token,
                "mutation($i: ConnectorIdInput!) { connectorResume(input: $i) { userErrors { message } } }",
                json!({ "i": { "id": id } }),
            )
            .await;
            id
        }
        None => {
            let mut config = config;
            config["shopDomain"] = json!(SHOP_DOMAIN);
            let d = gql(
                &client,
                address,
                token,
                "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id } userErrors { field message } } }",
                json!({ "i": { "kind": "SHOPIFY", "config": config } }),
            )
            .await?;
            d["connectorInstall"]["connector"]["id"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("connectorInstall: {}", d["connectorInstall"]["userErrors"]))?
        }
    };
    let fields = "id status error pages problemCount counts { resource applied unchanged problems }";
    let d = gql(
        &client,
        address,
        token,
        &format!(
            "mutation($i: SyncRunInput!) {{ syncRun(input: $i) {{ syncRun {{ {fields} }} userErrors {{ message }} }} }}"
        ),
        json!({ "i": { "connectorId": id } }),
    )
    .await?;
    let run = d["syncRun"]["syncRun"]["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("syncRun: {}", d["syncRun"]["userErrors"]))?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let d = gql(
            &client,
            address,
            token,
            &format!("query($id: ID!) {{ node(id: $id) {{ ... on SyncRun {{ {fields} }} }} }}"),
            json!({ "id": run }),
        )
        .await?;
        let r = d["node"].clone();
        if r["status"] == "COMPLETED" || r["status"] == "FAILED" {
            return Ok(r);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the sync did not finish within {wait:?}: {r}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
