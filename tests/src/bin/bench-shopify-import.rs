//! Shopify import benchmark: the initial import of a large shop through a bulk operation (variants
//! and inventory levels per second, the worker's peak RSS), against the page-by-page import of the
//! same shop shape on Shopify Plus's rate limit; then the incremental sync of 1,000 changed
//! orders, on Plus's rate limit and with none (what the engine itself takes), against the floor
//! the rate limit alone sets. The mock Shopify runs in this process; the sync runs in a separate
//! `quartermaster worker` process (this binary started as `… worker`) whose peak RSS is read from
//! /proc.
//!
//! Run: `cargo run --release -p qm-tests --bin bench-shopify-import`.
//! Shop: `QM_BENCH_VARIANTS` (default 100,000) × `QM_BENCH_LOCATIONS` (5); the page-by-page
//! baseline: `QM_BENCH_BASELINE_VARIANTS` (default 5,000); changed orders: `QM_BENCH_ORDERS`
//! (1,000). PostgreSQL: `QM_BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`;
//! skipped if unreachable; `QM_BENCH_SQLITE=0` skips SQLite).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use qm_tests::shopify_mock::{MockShopify, Shop};
use qm_tests::{TestApp, TestTenant};
use serde_json::{Value, json};

const TOKEN: &str = "shpat_bench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.replace('_', "").parse().ok()).unwrap_or(default)
}

struct Row {
    backend: &'static str,
    what: String,
    records: String,
    seconds: f64,
    rate: String,
    peak_rss_mb: Option<f64>,
}

/// A worker process of this binary.
struct Worker(Child);

impl Worker {
    fn start(app: &TestApp) -> anyhow::Result<Worker> {
        let exe = std::env::current_exe().context("this binary's path")?;
        let child = Command::new(exe)
            .arg("worker")
            .envs(app.process_env())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the worker process")?;
        Ok(Worker(child))
    }

    /// The process's peak resident set (VmHWM), in MB.
    fn peak_rss_mb(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).ok()?;
        let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn install(app: &TestApp, t: &TestTenant, mock: &MockShopify, bulk_import: &str) -> anyhow::Result<String> {
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id } userErrors { message } } }",
            json!({ "i": { "kind": "SHOPIFY", "config": {
                "shopDomain": "bench-shop.myshopify.com", "accessToken": TOKEN, "apiVersion": "2026-01",
                "webhookSecret": "whsec", "baseUrl": mock.url, "bulkImport": bulk_import } } }),
        )
        .await;
    d["connectorInstall"]["connector"]["id"].as_str().map(str::to_owned).with_context(|| format!("install: {d}"))
}

/// Requests a sync and waits for it; the time it took and the finished run.
async fn sync(app: &TestApp, t: &TestTenant, connector: &str, input: Value) -> anyhow::Result<(f64, Value)> {
    let mut input = input;
    input["connectorId"] = json!(connector);
    let started = Instant::now();
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: SyncRunInput!) { syncRun(input: $i) { syncRun { id } } }",
            json!({ "i": input }),
        )
        .await;
    let id = d["syncRun"]["syncRun"]["id"].as_str().with_context(|| format!("syncRun: {d}"))?.to_owned();
    let query = "query($id: ID!) { node(id: $id) { ... on SyncRun { status error problemCount pages counts { resource applied unchanged } } } }";
    loop {
        let d = app.data(&t.owner_key, query, json!({ "id": id })).await;
        match d["node"]["status"].as_str() {
            Some("COMPLETED") => return Ok((started.elapsed().as_secs_f64(), d["node"].clone())),
            Some("FAILED") => bail!("the sync failed: {d}"),
            _ if started.elapsed() > Duration::from_secs(3600) => bail!("the sync did not finish in an hour: {d}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn read(run: &Value, resource: &str) -> u64 {
    run["counts"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["resource"] == resource))
        .map_or(0, |c| c["applied"].as_u64().unwrap_or(0) + c["unchanged"].as_u64().unwrap_or(0))
}

/// Imports a generated shop of `variants` × `locations` (`bulk_import` `ALWAYS` or `NEVER`) in a
/// worker process; the row, and what the orders round needs.
async fn import(
    backend: &'static str,
    variants: usize,
    locations: usize,
    bulk_import: &str,
) -> anyhow::Result<(Row, TestApp, TestTenant, MockShopify, String, Worker)> {
    let app = TestApp::spawn_for_bench(2).await;
    let t = app.tenant("bench").await;
    let shop = Shop::generate(variants, locations, chrono::Utc::now() - chrono::Duration::days(1));
    let levels = shop.levels.len();
    let mock = MockShopify::start(shop, TOKEN).await;
    // Shopify Plus: a 10,000-point bucket refilling at 1,000 points a second (the mock's default).
    mock.bulk_duration(Duration::from_secs(1));
    let connector = install(&app, &t, &mock, bulk_import).await?;
    let worker = Worker::start(&app)?;
    eprintln!("[{backend}] importing {variants} variants × {locations} locations ({bulk_import})...");
    let (seconds, run) =
        sync(&app, &t, &connector, json!({ "resources": ["LOCATIONS", "CATALOG", "INVENTORY"] })).await?;
    if (read(&run, "CATALOG"), read(&run, "INVENTORY")) != (variants as u64, levels as u64) {
        bail!("the import did not read the whole shop: {run}");
    }
    let row = Row {
        backend,
        what: if bulk_import == "ALWAYS" {
            "import, bulk operation".into()
        } else {
            "import, pages (Plus limit)".into()
        },
        records: format!("{variants} + {levels}"),
        seconds,
        rate: format!("{:.0} + {:.0}", variants as f64 / seconds, levels as f64 / seconds),
        peak_rss_mb: worker.peak_rss_mb(),
    };
    Ok((row, app, t, mock, connector, worker))
}

/// Changes `orders` orders in the shop and syncs them incrementally.
async fn orders(
    backend: &'static str,
    app: &TestApp,
    t: &TestTenant,
    mock: &MockShopify,
    connector: &str,
    orders: usize,
    limited: bool,
) -> anyhow::Result<Row> {
    let now = chrono::Utc::now();
    mock.edit(|shop| {
        let ids: Vec<u64> = shop.variants.keys().copied().take(orders * 2).collect();
        let location = shop.locations[0].id;
        for n in 0..orders {
            let lines: Vec<(u64, i64)> = ids.iter().skip(n * 2 % ids.len()).take(2).map(|v| (*v, 1)).collect();
            shop.place_order(location, &lines, now);
        }
    });
    if limited {
        mock.bucket(10_000.0, 1_000.0, 10_000.0);
    } else {
        mock.bucket(f64::MAX / 4.0, f64::MAX / 4.0, f64::MAX / 4.0);
    }
    let (seconds, run) = sync(app, t, connector, json!({ "resources": ["ORDERS"] })).await?;
    let read = read(&run, "ORDERS");
    if read < orders as u64 {
        bail!("the sync did not read the {orders} changed orders: {run}");
    }
    Ok(Row {
        backend,
        what: format!("{orders} orders changed, {}", if limited { "Plus limit" } else { "no limit" }),
        records: format!("{read} read"),
        seconds,
        rate: format!("{:.0}", orders as f64 / seconds),
        peak_rss_mb: None,
    })
}

impl Row {
    fn line(&self) -> String {
        let rss = self.peak_rss_mb.map_or_else(|| "-".to_owned(), |m| format!("{m:.0}"));
        format!(
            "{:<9} {:<34} {:>17} {:>9.1} {:>19} {:>13}",
            self.backend, self.what, self.records, self.seconds, self.rate, rss
        )
    }
}

/// Keeps a row, and shows it at once (a long run stopped early keeps what it measured).
fn keep(rows: &mut Vec<Row>, row: Row) {
    eprintln!("  {}", row.line());
    rows.push(row);
}

async fn backend(backend: &'static str, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let variants = env_usize("QM_BENCH_VARIANTS", 100_000);
    let locations = env_usize("QM_BENCH_LOCATIONS", 5);
    let baseline = env_usize("QM_BENCH_BASELINE_VARIANTS", 5_000);
    let changed = env_usize("QM_BENCH_ORDERS", 1_000);
    let (row, app, t, mock, connector, worker) = import(backend, variants, locations, "ALWAYS").await?;
    keep(rows, row);
    for limited in [true, false] {
        eprintln!("[{backend}] {changed} changed orders (rate limit: {limited})...");
        keep(rows, orders(backend, &app, &t, &mock, &connector, changed, limited).await?);
    }
    drop(worker);
    let (row, ..) = import(backend, baseline, locations, "NEVER").await?;
    keep(rows, row);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("worker") {
        return qm_api::cli::run();
    }
    tokio::runtime::Runtime::new()?.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let mut rows = Vec::new();
    if std::env::var("QM_BENCH_SQLITE").as_deref() != Ok("0") {
        qm_tests::set_postgres_url(None);
        backend("sqlite", &mut rows).await?;
    }
    let pg =
        std::env::var("QM_BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match qm_api::db::Db::connect(&pg).await {
        Ok(_) => {
            qm_tests::set_postgres_url(Some(pg));
            backend("postgres", &mut rows).await?;
        }
        Err(e) => eprintln!("PostgreSQL unreachable at {pg} ({e}); skipping that backend"),
    }
    println!();
    println!(
        "{:<9} {:<34} {:>17} {:>9} {:>19} {:>13}",
        "backend", "what", "records", "seconds", "per second", "peak RSS MB"
    );
    println!("{}", "-".repeat(106));
    for r in &rows {
        println!("{}", r.line());
    }
    println!(
        "\nImports: variants + inventory levels, read and applied by one worker process (its peak RSS). The page-by-page \
         import runs on Shopify Plus's bucket (10,000 points, 1,000/s), as a real Plus shop would. Orders: each changed \
         order costs 128 points to read, so on Plus's bucket the rate limit alone needs about \
         (orders × 128 − 10,000) / 1,000 seconds; the unlimited row is what the engine itself takes. An incremental sync \
         reads from a minute before the newest change it saw, so the second round reads the first round's orders again \
         (unchanged); its rate counts the changed orders only."
    );
    Ok(())
}
