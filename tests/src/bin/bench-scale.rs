//! Scaling benchmark on PostgreSQL: background jobs per second with 1, 2 and 4 `quartermaster
//! worker` processes, and GraphQL requests per second with 1 and 2 `quartermaster serve`
//! processes, each with its ratio to one process, measured in the same run on this machine.
//!
//! Jobs: `QM_BENCH_JOBS` events (default 10,000) across ten tenants, half of them with a webhook
//! endpoint on a local receiver: a fan-out job per event and a delivery job per event of those
//! (mixed kinds, mixed tenants). The rate is taken between 10 % and 90 % done, so start-up and the
//! tail do not count. Requests: 32 concurrent clients spread over the API processes for
//! `QM_BENCH_SECONDS` (default 10) asking one variant by SKU with its stock.
//!
//! Run: `cargo run --release -p qm-tests --bin bench-scale` (the processes are this binary started
//! as `… worker` and `… serve`). PostgreSQL: `QM_BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use qm_api::db::TxMode;
use qm_tests::receiver::Receiver;
use qm_tests::{Processes, TestApp, free_port, wait_ready};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.replace('_', "").parse().ok()).unwrap_or(default)
}

/// Starts this binary as `args` with `listen` for its endpoints, and waits for its /readyz.
async fn start(app: &TestApp, fleet: &mut Processes, args: &[&str], listen_var: &str) -> anyhow::Result<String> {
    let listen = format!("127.0.0.1:{}", free_port());
    let exe = std::env::current_exe().context("this binary's path")?;
    fleet.0.push(
        Command::new(exe)
            .args(args)
            .envs(app.process_env())
            .env(listen_var, &listen)
            .env("QM_MIGRATE_ON_START", "false")
            .env("QM_DATABASE_MAX_CONNECTIONS", "16")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a process")?,
    );
    let base = format!("http://{listen}");
    if !wait_ready(&app.client, &base, Duration::from_secs(60)).await {
        bail!("{args:?} did not become ready");
    }
    Ok(base)
}

async fn done_jobs(app: &TestApp) -> anyhow::Result<u64> {
    let row = app
        .owner_db
        .conn()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM jobs WHERE status = 'done' AND kind LIKE 'webhook.%'".to_owned(),
        ))
        .await?
        .context("a count")?;
    Ok(u64::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0))
}

/// Jobs per second with `workers` worker processes, between 10 % and 90 % of `events`' jobs done.
async fn jobs_per_second(workers: usize, events: usize) -> anyhow::Result<(u64, f64)> {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    let mut tenants = Vec::new();
    for i in 0..10 {
        let t = app.tenant(&format!("tenant-{i}")).await;
        if i % 2 == 0 {
            app.webhook_endpoint(&t.owner_key, &rx.url, json!(["webhook.test"])).await;
        }
        tenants.push(t);
    }
    // Enqueued before any worker runs; round-robin over tenants, a thousand per transaction.
    let per_tenant = events / tenants.len();
    for (i, t) in tenants.iter().enumerate() {
        let mut left = per_tenant;
        while left > 0 {
            let s = app.state.db.scoped(t.id, TxMode::Write).await?;
            for n in 0..left.min(1000) {
                qm_api::events::emit(&s, "webhook.test", json!({ "tenant": i, "n": n })).await?;
            }
            s.commit().await?;
            left = left.saturating_sub(1000);
        }
    }
    let total = (per_tenant * tenants.len() + per_tenant * tenants.len().div_ceil(2)) as u64;
    let mut fleet = Processes(Vec::new());
    for _ in 0..workers {
        start(&app, &mut fleet, &["worker"], "QM_WORKER_LISTEN").await?;
    }
    let (low, high) = (total / 10, total * 9 / 10);
    let (mut at_low, mut at_high) = (None, None);
    let started = Instant::now();
    while at_high.is_none() {
        let done = done_jobs(&app).await?;
        if done >= low && at_low.is_none() {
            at_low = Some((Instant::now(), done));
        }
        if done >= high {
            at_high = Some((Instant::now(), done));
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("{workers} workers: only {done} of {total} jobs done in 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ((t0, d0), (t1, d1)) = (at_low.context("10 %")?, at_high.context("90 %")?);
    Ok((total, (d1 - d0) as f64 / (t1 - t0).as_secs_f64().max(1e-3)))
}

/// Requests per second with `servers` API processes and 32 clients for `seconds`.
async fn requests_per_second(servers: usize, seconds: u64) -> anyhow::Result<(u64, u64, f64)> {
    let app = TestApp::spawn().await;
    let t = app.tenant("shop").await;
    let location = app.location(&t.owner_key, "WH1").await;
    app.product(&t.owner_key, "widget", &["W-1"]).await;
    app.stock(&t.owner_key, "W-1", &location, 100).await;
    let mut fleet = Processes(Vec::new());
    let mut urls = Vec::new();
    for _ in 0..servers {
        urls.push(start(&app, &mut fleet, &["serve", "--no-workers"], "QM_LISTEN").await?);
    }
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let body = json!({ "query": "{ variantBySku(sku: \"W-1\") { sku stockLevels { onHand available } } }" });
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let (ok, failed, stop, urls) = (ok.clone(), failed.clone(), stop.clone(), urls.clone());
            let (client, key, body) = (reqwest::Client::new(), t.owner_key.clone(), body.clone());
            tokio::spawn(async move {
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let r =
                        client.post(format!("{}/graphql", urls[n % urls.len()])).bearer_auth(&key).json(&body).send();
                    let served = match r.await {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    if served {
                        ok.fetch_add(1, Ordering::Relaxed)
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed)
                    };
                }
            })
        })
        .collect();
    // A second's warm-up (connections, prepared statements), then the measured window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok0, started) = (ok.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (served, elapsed) = (ok.load(Ordering::Relaxed) - ok0, started.elapsed());
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await?;
    }
    Ok((served, failed.load(Ordering::Relaxed), served as f64 / elapsed.as_secs_f64()))
}

fn main() -> anyhow::Result<()> {
    if matches!(std::env::args().nth(1).as_deref(), Some("worker" | "serve")) {
        return qm_api::cli::run();
    }
    tokio::runtime::Runtime::new()?.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let pg =
        std::env::var("QM_BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    qm_api::db::Db::connect(&pg).await.with_context(|| "PostgreSQL is required (QM_BENCH_DATABASE_URL)")?;
    qm_tests::set_postgres_url(Some(pg));
    let events = env_usize("QM_BENCH_JOBS", 10_000);
    let seconds = env_usize("QM_BENCH_SECONDS", 10) as u64;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    println!(
        "Jobs: {events} events over 10 tenants (fan-out, and delivery to a local receiver for half), PostgreSQL, {cores} cores"
    );
    println!("| workers | jobs | jobs/s (10-90 %) | ratio to 1 |");
    println!("| --- | --- | --- | --- |");
    let mut base = None;
    for workers in [1, 2, 4] {
        let (total, rate) = jobs_per_second(workers, events).await?;
        let one = *base.get_or_insert(rate);
        println!("| {workers} | {total} | {rate:.0} | {:.2} |", rate / one);
    }

    println!("\nGraphQL: 32 clients, `variantBySku` with stock levels, {seconds} s after 1 s of warm-up");
    println!("| API processes | requests | failed | requests/s | ratio to 1 |");
    println!("| --- | --- | --- | --- | --- |");
    let mut base = None;
    for servers in [1, 2] {
        let (served, failed, rate) = requests_per_second(servers, seconds).await?;
        let one = *base.get_or_insert(rate);
        println!("| {servers} | {served} | {failed} | {rate:.0} | {:.2} |", rate / one);
    }
    println!("\nThe clients, the receiver, PostgreSQL and every process share this machine's {cores} cores.");
    Ok(())
}
