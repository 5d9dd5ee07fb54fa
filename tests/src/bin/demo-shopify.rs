//! The demo with a Shopify store: starts a generated mock Shopify on loopback and the product
//! (as `cargo run --release` does: embedded SQLite, the demo tenant, GraphiQL), connects the
//! demo tenant to the mock through the GraphQL API, syncs it, prints what came in, and serves
//! until Ctrl-C.
//!
//! `cargo run --release -p qm-tests --bin demo-shopify`; `QM_DEMO_SHOP_VARIANTS` sets the shop's
//! size (default 2000 variants at three locations, an order for every tenth). Every `QM_*`
//! setting of the product applies.

use std::time::Duration;

use anyhow::Context as _;
use qm_api::app::Application;
use qm_api::config::Config;
use qm_api::jobs::worker::{self, Registry, WorkerConfig};
use qm_tests::shopify_demo;
use qm_tests::shopify_mock::MockShopify;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::load()?;
    qm_api::telemetry::init(config.log_format);
    config.demo = true;
    // The mock listens on loopback.
    config.connector_allow_private = true;
    let variants: usize = std::env::var("QM_DEMO_SHOP_VARIANTS")
        .ok()
        .map(|v| v.parse().context("QM_DEMO_SHOP_VARIANTS must be a number"))
        .transpose()?
        .unwrap_or(2000);
    let mock = MockShopify::start(shopify_demo::shop(variants, chrono::Utc::now()), shopify_demo::TOKEN).await;
    let app = Application::build(config).await?;
    let state = app.state.clone();
    let port = app.port();
    let (stop, workers) = worker::spawn(
        state.clone(),
        Registry::standard(),
        WorkerConfig {
            concurrency: state.config.worker_concurrency,
            lease: Duration::from_secs(state.config.worker_lease_seconds),
            ..WorkerConfig::default()
        },
    );
    let server = app.spawn(0)?;
    let demo =
        qm_api::services::tenants::find_by_slug(&state.db, qm_api::demo::DEMO_SLUG).await?.context("no demo tenant")?;
    let token = state.jwt.mint(demo.id, "demo-admin", &[qm_domain::Role::Owner], None, chrono::Utc::now())?;
    let address = format!("http://127.0.0.1:{port}");
    println!("Mock Shopify ({variants} variants, 3 locations) at {}; syncing the demo tenant…", mock.url);
    let run = shopify_demo::connect(&address, &token, &mock, Duration::from_secs(600)).await?;
    println!("sync {}: {} pages", run["status"].as_str().unwrap_or("?"), run["pages"]);
    println!("{:<10} {:>8} {:>10} {:>9}", "resource", "applied", "unchanged", "problems");
    for c in run["counts"].as_array().into_iter().flatten() {
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        println!(
            "{:<10} {:>8} {:>10} {:>9}",
            c["resource"].as_str().unwrap_or("?"),
            n("applied"),
            n("unchanged"),
            n("problems")
        );
    }
    if let Some(e) = run["error"].as_str() {
        println!("error: {e}");
    }
    if run["problemCount"].as_u64().unwrap_or(0) > 0 {
        println!(
            "the run's problems: syncRuns(connectorId: …, last: 1) {{ nodes {{ problems {{ externalId message }} }} }}"
        );
    }
    println!("Quartermaster is serving GraphiQL at {address}/graphql");
    println!("Demo tenant owner token; send it as `Authorization: Bearer <token>`:\n{token}");
    tokio::signal::ctrl_c().await?;
    server.stop(true).await;
    let _ = stop.send(true);
    workers.await?;
    Ok(())
}
