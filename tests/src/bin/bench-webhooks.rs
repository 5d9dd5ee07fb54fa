//! Webhook delivery benchmark: stock changes fan out to 1, 10 and 100 endpoints on a local
//! receiver; prints deliveries per second and the p50/p99 latency from the change (the event's
//! timestamp) to its arrival at the receiver, on SQLite and on PostgreSQL.
//!
//! Run: `cargo run --release -p qm-tests --bin bench-webhooks`.
//! PostgreSQL: `QM_BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`; skipped if unreachable).
//! Stock changes per round: `QM_BENCH_CHANGES` (default 200).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::future::join_all;
use qm_api::jobs::worker::{self, Registry, WorkerConfig};
use qm_tests::TestApp;
use qm_tests::receiver::Receiver;
use serde_json::json;

struct Row {
    backend: &'static str,
    endpoints: usize,
    deliveries: usize,
    per_second: f64,
    p50_ms: i64,
    p99_ms: i64,
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn round(backend: &'static str, endpoints: usize, changes: usize) -> anyhow::Result<Row> {
    let app = TestApp::spawn_for_bench(2).await;
    let t = app.tenant("bench").await;
    let key = t.owner_key.clone();
    let rx = Receiver::start().await;
    for i in 0..endpoints {
        let url = format!("{}/{i}", rx.url);
        let d = app
            .data(&key, "mutation($u: String!) { webhookEndpointCreate(input: { url: $u, eventTypes: [\"stock.adjusted\"] }) { secret } }", json!({ "u": url }))
            .await;
        if !d["webhookEndpointCreate"]["secret"].is_string() {
            bail!("endpoint not created: {d}");
        }
    }
    let loc = app.location(&key, "WH").await;
    app.product(&key, "bench", &["SKU-1", "SKU-2", "SKU-3", "SKU-4"]).await;
    let cfg = WorkerConfig { concurrency: 32, poll: Duration::from_millis(20), ..WorkerConfig::default() };
    let (stop, handle) = worker::spawn(app.state.clone(), Registry::standard(), cfg);
    let started = Instant::now();
    let q = "mutation($i: StockAdjustInput!) { stockAdjust(input: $i) { userErrors { code } } }";
    for chunk in (0..changes).collect::<Vec<_>>().chunks(8) {
        join_all(chunk.iter().map(|i| {
            let sku = format!("SKU-{}", i % 4 + 1);
            app.gql(&key, q, json!({ "i": { "sku": sku, "locationId": loc, "delta": 1 } }))
        }))
        .await;
    }
    let expected = changes * endpoints;
    while rx.count() < expected {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("{backend}/{endpoints}: only {} of {expected} deliveries arrived", rx.count());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    handle.await.context("worker")?;
    let mut latencies: Vec<i64> = rx
        .received()
        .iter()
        .filter_map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
            let at = chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str()?).ok()?;
            Some((r.received_at - at.with_timezone(&chrono::Utc)).num_milliseconds())
        })
        .collect();
    latencies.sort_unstable();
    Ok(Row {
        backend,
        endpoints,
        deliveries: expected,
        per_second: expected as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let changes: usize = std::env::var("QM_BENCH_CHANGES").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let mut rows = Vec::new();
    qm_tests::set_postgres_url(None);
    for n in [1, 10, 100] {
        eprintln!("[sqlite] {n} endpoints...");
        rows.push(round("sqlite", n, changes).await?);
    }
    let pg =
        std::env::var("QM_BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match qm_api::db::Db::connect(&pg).await {
        Ok(_) => {
            qm_tests::set_postgres_url(Some(pg));
            for n in [1, 10, 100] {
                eprintln!("[postgres] {n} endpoints...");
                rows.push(round("postgres", n, changes).await?);
            }
        }
        Err(e) => eprintln!("PostgreSQL unreachable at {pg} ({e}); skipping that backend"),
    }
    println!();
    println!(
        "{:<10} {:>9} {:>11} {:>14} {:>9} {:>9}",
        "backend", "endpoints", "deliveries", "deliveries/s", "p50 ms", "p99 ms"
    );
    println!("{}", "-".repeat(68));
    for r in &rows {
        println!(
            "{:<10} {:>9} {:>11} {:>14.0} {:>9} {:>9}",
            r.backend, r.endpoints, r.deliveries, r.per_second, r.p50_ms, r.p99_ms
        );
    }
    println!(
        "\n{changes} stock changes per round, one in-process worker with 32 concurrent jobs; latency from the change to arrival."
    );
    Ok(())
}
