//! Load benchmark: seeds 10,000 variants x 3 locations, drives the running server with wrk at 64
//! connections, and prints requests/s and p50/p99 latency on SQLite and on PostgreSQL, next to a
//! trivial static actix-web route measured in the same run as this machine's ceiling.
//!
//! Run: `cargo run --release -p qm-tests --bin bench-load` (needs `wrk`: `apt-get install -y wrk`).
//! PostgreSQL: `QM_BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`; skipped if unreachable).
//! Duration per scenario: `QM_BENCH_SECONDS` (default 10).

use std::process::Command;

use anyhow::{Context, bail};
use qm_api::db::TxMode;
use qm_api::db::entities::{Dec, location, product, stock_level, variant};
use qm_domain::Role;
use qm_tests::TestApp;
use rust_decimal::Decimal;
use sea_orm::{ActiveValue::Set, EntityTrait};
use uuid::Uuid;

const VARIANTS: usize = 10_000;
const PER_PRODUCT: usize = 4;
const CONNECTIONS: u32 = 64;
const PRODUCTS_QUERY: &str =
    "{ products(first: 50) { nodes { title variants { sku stockLevels { onHand available location { code } } } } } }";
const BY_SKU_QUERY: &str =
    "query($s: String!) { variantBySku(sku: $s) { sku price { amount } stockLevels { onHand } } }";
const ADJUST_QUERY: &str =
    "mutation($i: StockAdjustInput!) { stockAdjust(input: $i) { stockLevel { onHand } userErrors { code } } }";

struct Row {
    backend: String,
    scenario: &'static str,
    rps: f64,
    p50: String,
    p99: String,
    errors: String,
}

async fn seed(app: &TestApp) -> anyhow::Result<(String, Vec<String>)> {
    let t = app.tenant("bench").await;
    let s = app.state.db.scoped(t.id, TxMode::Write).await?;
    let now = chrono::Utc::now();
    let mut locations = Vec::new();
    for (i, code) in ["WH-1", "WH-2", "STORE-1"].iter().enumerate() {
        let id = Uuid::now_v7();
        locations.push(id);
        location::Entity::insert(location::ActiveModel::from(location::Model {
            tenant_id: t.id,
            id,
            code: (*code).into(),
            name: (*code).into(),
            kind: if i < 2 { "warehouse".into() } else { "store".into() },
            latitude: Some(40.0),
            longitude: Some(-74.0),
            created_at: now,
            updated_at: now,
            capacity_volume: None,
        }))
        .exec_without_returning(&s.tx)
        .await?;
    }
    let mut skus = Vec::with_capacity(VARIANTS);
    let mut variant_ids = Vec::with_capacity(VARIANTS);
    for p in 0..VARIANTS / PER_PRODUCT {
        let pid = Uuid::now_v7();
        product::Entity::insert(product::ActiveModel::from(product::Model {
            tenant_id: t.id,
            id: pid,
            title: format!("Product {p}"),
            handle: format!("product-{p}"),
            category: "Bench".into(),
            status: "active".into(),
            created_at: now,
            updated_at: now,
        }))
        .exec_without_returning(&s.tx)
        .await?;
        let rows: Vec<_> = (0..PER_PRODUCT)
            .map(|v| {
                let sku = format!("SKU-{p:05}-{v}");
                let id = Uuid::now_v7();
                skus.push(sku.clone());
                variant_ids.push(id);
                variant::ActiveModel {
                    tenant_id: Set(t.id),
                    id: Set(id),
                    product_id: Set(pid),
                    sku: Set(sku),
                    title: Set(format!("Variant {v}")),
                    price: Set(Dec(Decimal::new(1999, 2))),
                    currency: Set("USD".into()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    unit_volume: Set(None),
                }
            })
            .collect();
        variant::Entity::insert_many(rows).exec_without_returning(&s.tx).await?;
    }
    for chunk in variant_ids.chunks(500) {
        let rows = chunk.iter().flat_map(|v| {
            locations.iter().map(move |l| stock_level::ActiveModel {
                tenant_id: Set(t.id),
                variant_id: Set(*v),
                location_id: Set(*l),
                on_hand: Set(1_000_000),
                reserved: Set(0),
                inbound: Set(0),
                updated_at: Set(now),
            })
        });
        stock_level::Entity::insert_many(rows).exec_without_returning(&s.tx).await?;
    }
    s.commit().await?;
    let token = app.jwt(&t, &[Role::Owner]);
    let loc = format!("gid://quartermaster/Location/{}", locations[0]);
    let mut out = skus;
    out.push(loc);
    Ok((token, out))
}

fn lua_post(dir: &std::path::Path, name: &str, token: &str, body_fn: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(format!("{name}.lua"));
    let script = format!(
        r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
math.randomseed(42)
{body_fn}
"#
    );
    std::fs::write(&path, script)?;
    Ok(path)
}

fn wrk(url: &str, script: Option<&std::path::Path>, seconds: u32) -> anyhow::Result<(f64, String, String, String)> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{seconds}s"), "--latency"]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd.arg(url).output().context("running wrk (install it: apt-get install -y wrk)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| -> String {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    let rps = field("Requests/sec:").parse::<f64>().unwrap_or(0.0);
    let errors = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Non-2xx") || l.starts_with("Socket errors"))
        .collect::<Vec<_>>()
        .join("; ");
    Ok((rps, field("50%"), field("99%"), if errors.is_empty() { "-".into() } else { errors }))
}

async fn run_backend(backend: &str, rows: &mut Vec<Row>, seconds: u32, workers: usize) -> anyhow::Result<()> {
    let app = TestApp::spawn_for_bench(workers).await;
    eprintln!("[{backend}] seeding {VARIANTS} variants x 3 locations...");
    let (token, mut skus) = seed(&app).await?;
    let loc = skus.pop().context("location id")?;
    let dir = tempfile::tempdir()?;
    let sku_table = skus.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(",");
    let url = format!("{}/graphql", app.address);
    let products = lua_post(
        dir.path(),
        "products",
        &token,
        &format!("wrk.body = '{}'", serde_json::json!({ "query": PRODUCTS_QUERY })),
    )?;
    let by_sku = lua_post(
        dir.path(),
        "by_sku",
        &token,
        &format!(
            r#"local skus = {{{sku_table}}}
request = function()
  local body = '{{"query":"{BY_SKU_QUERY}","variables":{{"s":"' .. skus[math.random(#skus)] .. '"}}}}'
  return wrk.format(nil, nil, nil, body)
end"#
        ),
    )?;
    let adjust = lua_post(
        dir.path(),
        "adjust",
        &token,
        &format!(
            r#"local skus = {{{sku_table}}}
request = function()
  local body = '{{"query":"{ADJUST_QUERY}","variables":{{"i":{{"sku":"' .. skus[math.random(#skus)] .. '","locationId":"{loc}","delta":1,"reason":"bench"}}}}}}'
  return wrk.format(nil, nil, nil, body)
end"#
        ),
    )?;
    // Each scenario's request must succeed, or the numbers would measure error responses.
    let samples = [
        ("products(first: 50) + stock", &products, PRODUCTS_QUERY.to_owned(), serde_json::json!({})),
        ("variantBySku", &by_sku, BY_SKU_QUERY.to_owned(), serde_json::json!({ "s": skus[0] })),
        (
            "stockAdjust",
            &adjust,
            ADJUST_QUERY.to_owned(),
            serde_json::json!({ "i": { "sku": skus[0], "locationId": loc, "delta": 1, "reason": "bench" } }),
        ),
    ];
    for (scenario, script, query, vars) in samples {
        let (status, body) = app.gql(&token, &query, vars).await;
        let user_errors =
            body.pointer("/data/stockAdjust/userErrors").and_then(|e| e.as_array()).is_some_and(|e| !e.is_empty());
        if status != 200 || body.get("errors").is_some() || user_errors {
            bail!("{scenario}: the benchmark request fails: {body}");
        }
        eprintln!("[{backend}] {scenario}...");
        let (rps, p50, p99, errors) = wrk(&url, Some(script), seconds)?;
        rows.push(Row { backend: backend.into(), scenario, rps, p50, p99, errors });
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u32 = std::env::var("QM_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let workers = std::thread::available_parallelism().map(usize::from).unwrap_or(2);
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed: apt-get install -y wrk");
    }
    let mut rows = Vec::new();

    // The ceiling: a static actix-web route on the same machine, same wrk settings.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server =
        actix_web::HttpServer::new(|| actix_web::App::new().route("/", actix_web::web::get().to(|| async { "ok" })))
            .workers(workers)
            .listen(listener)?
            .run();
    let handle = server.handle();
    tokio::spawn(server);
    eprintln!("[ceiling] static route...");
    let (rps, p50, p99, errors) = wrk(&format!("http://127.0.0.1:{port}/"), None, seconds)?;
    rows.push(Row { backend: "actix static".into(), scenario: "GET / (ceiling)", rps, p50, p99, errors });
    handle.stop(true).await;

    qm_tests::set_postgres_url(None);
    run_backend("sqlite", &mut rows, seconds, workers).await?;
    let pg =
        std::env::var("QM_BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match qm_api::db::Db::connect(&pg).await {
        Ok(_) => {
            qm_tests::set_postgres_url(Some(pg));
            run_backend("postgres", &mut rows, seconds, workers).await?;
        }
        Err(e) => eprintln!("PostgreSQL unreachable at {pg} ({e}); skipping that backend"),
    }

    println!();
    println!("{:<14} {:<30} {:>12} {:>10} {:>10}  errors", "backend", "scenario", "requests/s", "p50", "p99");
    println!("{}", "-".repeat(90));
    for r in &rows {
        println!("{:<14} {:<30} {:>12.0} {:>10} {:>10}  {}", r.backend, r.scenario, r.rps, r.p50, r.p99, r.errors);
    }
    println!("\n{CONNECTIONS} connections, 2 wrk threads, {seconds} s per scenario, {workers} server workers.");
    Ok(())
}
