//! Real `quartermaster worker` processes: two sharing one queue, and one killed with SIGKILL.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qm_api::db::TxMode;
use qm_api::db::entities::job;
use qm_tests::TestApp;
use qm_tests::receiver::Receiver;
use qm_tests::slow_tests_enabled;
use sea_orm::EntityTrait;
use serde_json::json;

fn worker(app: &TestApp, extra: &[(&str, &str)]) -> Child {
    let log = std::env::var_os("TEST_LOG").is_some();
    Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .arg("worker")
        .envs(app.process_env())
        .envs(extra.iter().map(|(k, v)| (*k, *v)))
        .stdout(Stdio::null())
        .stderr(if log { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .expect("worker process starts")
}

/// Starts a worker and returns once it logs that its claim loop runs, so a test can queue work
/// only when every process is ready to compete for it. The log keeps draining in a thread.
fn ready_worker(app: &TestApp) -> Child {
    let log = std::env::var_os("TEST_LOG").is_some();
    let mut child = Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .arg("worker")
        .envs(app.process_env())
        .env("RUST_LOG", "info,sqlx=warn,sea_orm=warn")
        .env("QM_LOG_FORMAT", "pretty")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker process starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if log {
                eprintln!("{line}");
            }
            if line.contains("worker started") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120)).expect("the worker process reports that it started");
    child
}

struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn all_jobs(app: &TestApp) -> Vec<job::Model> {
    // The owner connection sees every tenant's jobs (on PostgreSQL it bypasses nothing but is a superuser here).
    job::Entity::find().all(app.owner_db.conn()).await.expect("jobs")
}

#[tokio::test]
async fn two_worker_processes_run_ten_thousand_jobs_once_each() {
    if !slow_tests_enabled("two_worker_processes_run_ten_thousand_jobs_once_each") {
        return;
    }
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    // Both processes are polling before any work exists, so neither can drain the queue alone
    // while the other is still starting (a slow start on a loaded machine did exactly that).
    let _workers = Workers(vec![ready_worker(&app), ready_worker(&app)]);
    // 10,000 events, each with its fan-out job (no endpoints: the job reads and finishes).
    for _ in 0..10 {
        let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
        for i in 0..1000 {
            qm_api::events::emit(&s, "webhook.test", json!({ "i": i })).await.expect("emit");
        }
        s.commit().await.expect("commit");
    }
    let started = Instant::now();
    loop {
        // The fan-outs only: the tenant's nightly forecast may come due while this runs.
        let jobs: Vec<_> = all_jobs(&app).await.into_iter().filter(|j| j.kind == qm_api::webhooks::FANOUT).collect();
        let done = jobs.iter().filter(|j| j.status == "done").count();
        if done == 10_000 {
            assert!(jobs.iter().all(|j| j.attempts == 1), "a job was claimed more than once");
            // On PostgreSQL both claim side by side (SKIP LOCKED); SQLite has one writer at a
            // time, so there one process may take the whole queue before the other starts.
            if app.is_postgres() {
                let by: HashSet<_> = jobs.iter().filter_map(|j| j.locked_by.clone()).collect();
                assert_eq!(by.len(), 2, "both processes did work");
            }
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "only {done} of 10000 jobs done");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_worker_killed_mid_delivery_loses_nothing() {
    if !slow_tests_enabled("a_worker_killed_mid_delivery_loses_nothing") {
        return;
    }
    let app = TestApp::spawn_with(|c| c.webhook_retry_scale = 0.0002).await;
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    rx.fail_randomly(0.3, 3, 7);
    let d = app
        .data(
            &t.owner_key,
            "mutation($u: String!) { webhookEndpointCreate(input: { url: $u }) { secret } }",
            json!({ "u": rx.url }),
        )
        .await;
    assert!(d["webhookEndpointCreate"]["secret"].is_string());
    let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
    for i in 0..1000 {
        qm_api::events::emit(&s, "webhook.test", json!({ "i": i })).await.expect("emit");
    }
    s.commit().await.expect("commit");
    let env = [("QM_WORKER_LEASE_SECONDS", "3"), ("QM_WEBHOOK_TIMEOUT_SECONDS", "2"), ("QM_WORKER_CONCURRENCY", "16")];
    let mut first = worker(&app, &env);
    let started = Instant::now();
    while rx.count() < 300 {
        assert!(started.elapsed() < Duration::from_secs(120), "deliveries did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix.
    first.wait().expect("reaped");
    let _restarted = Workers(vec![worker(&app, &env)]);
    loop {
        let ids: HashSet<String> = rx.received().into_iter().map(|r| r.id).collect();
        if ids.len() == 1000 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "only {} of 1000 events received", ids.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every event arrived at least once; repeats carry the same webhook-id and valid bodies.
    let got = rx.received();
    let mut bodies = std::collections::HashMap::new();
    for r in &got {
        let prev = bodies.insert(r.id.clone(), r.body.clone());
        assert!(prev.is_none_or(|b| b == r.body), "a duplicate of {} has a different body", r.id);
    }
    assert!(got.len() >= 1000);
}

/// Issue 6's crash test: a full sync of 20,000 variants × 3 locations from the mock Shopify, its
/// worker process SIGKILLed halfway and a new one started: the run goes on from its checkpoint
/// and ends with exactly the shop's records, each applied once.
#[tokio::test]
async fn a_sync_killed_halfway_resumes_from_its_checkpoint_and_ends_with_exactly_the_shop() {
    if !slow_tests_enabled("a_sync_killed_halfway_resumes_from_its_checkpoint_and_ends_with_exactly_the_shop") {
        return;
    }
    killed_halfway("NEVER").await;
}

#[tokio::test]
async fn a_bulk_import_killed_halfway_resumes_from_its_checkpoint_and_ends_with_exactly_the_shop() {
    if !slow_tests_enabled("a_bulk_import_killed_halfway_resumes_from_its_checkpoint_and_ends_with_exactly_the_shop") {
        return;
    }
    killed_halfway("ALWAYS").await;
}

/// Scenario 1's crash test: a full sync of 20,000 variants × 3 locations, page by page
/// (`bulk_import` `NEVER`) or through a bulk operation (`ALWAYS`), killed with SIGKILL halfway and
/// finished by a new worker.
async fn killed_halfway(bulk_import: &str) {
    use qm_api::db::entities::{external_ref, location, product, stock_level, stock_movement, variant};
    use qm_tests::shopify_mock::{MockShopify, Shop};
    use sea_orm::{ColumnTrait, QueryFilter};
    let bulk = bulk_import == "ALWAYS";
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let shop = Shop::generate(20_000, 3, chrono::Utc::now() - chrono::Duration::days(30));
    let mock = MockShopify::start(shop.clone(), "shpat_crash").await;
    // A roomy, fast-refilling bucket: this test is about the crash, not the rate limit.
    mock.bucket(100_000.0, 100_000.0, 100_000.0);
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: ConnectorInstallInput!) { connectorInstall(input: $i) { connector { id } } }",
            json!({ "i": { "kind": "SHOPIFY", "config": {
                "shopDomain": "crash-shop.myshopify.com", "accessToken": "shpat_crash", "apiVersion": "2026-01",
                "webhookSecret": "whsec", "baseUrl": mock.url, "bulkImport": bulk_import } } }),
        )
        .await;
    let connector = d["connectorInstall"]["connector"]["id"].as_str().expect("connector").to_owned();
    let d = app
        .data(
            &t.owner_key,
            "mutation($c: ID!) { syncRun(input: { connectorId: $c, full: true }) { syncRun { id } } }",
            json!({ "c": connector }),
        )
        .await;
    let run = d["syncRun"]["syncRun"]["id"].as_str().expect("run").to_owned();
    // Page by page: 1 page of locations, 80 of variants, 3 × 80 of levels; bulk: 1 page of
    // locations and 80 of the file (250 variants with their levels each). Killed about halfway.
    let env = [("QM_WORKER_LEASE_SECONDS", "6")];
    let mut first = worker(&app, &env);
    let started = Instant::now();
    let query = "query($id: ID!) { node(id: $id) { ... on SyncRun { status pages error counts { resource applied unchanged problems } } } }";
    loop {
        let halfway = if bulk {
            let d = app.data(&t.owner_key, query, json!({ "id": run })).await;
            d["node"]["pages"].as_u64().unwrap_or(0) >= 40
        } else {
            mock.seen().len() >= 160
        };
        if halfway {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the sync did not get halfway");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let halfway = app.data(&t.owner_key, query, json!({ "id": run })).await;
    assert_eq!(halfway["node"]["status"], "RUNNING", "{halfway}");
    let _restarted = Workers(vec![worker(&app, &env)]);
    let done = loop {
        let d = app.data(&t.owner_key, query, json!({ "id": run })).await;
        if d["node"]["status"] == "COMPLETED" || d["node"]["status"] == "FAILED" {
            break d;
        }
        assert!(started.elapsed() < Duration::from_secs(1200), "the restarted sync did not finish: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["node"]["status"], "COMPLETED", "{done}");
    // Locations, catalog, levels at three locations, and the shop's (empty) orders.
    let pages = if bulk { 1 + 80 + 1 } else { 1 + 80 + 240 + 1 };
    assert_eq!(done["node"]["pages"], pages, "every page committed once: {done}");
    if bulk {
        assert_eq!(mock.bulk_operations(), 1, "the import started once");
        let downloads = mock.downloads();
        assert!(
            downloads.len() >= 2 && downloads.last() > Some(&0),
            "the new worker read on from the checkpoint: {downloads:?}"
        );
    }
    let nonzero = shop.levels.values().filter(|l| l.on_hand != 0).count() as u64;
    let count =
        |r: &str| done["node"]["counts"].as_array().and_then(|c| c.iter().find(|c| c["resource"] == r)).cloned();
    assert_eq!(count("CATALOG").map(|c| c["applied"].clone()), Some(json!(20_000)), "{done}");
    assert_eq!(
        count("INVENTORY").map(|c| (c["applied"].clone(), c["unchanged"].clone())),
        Some((json!(nonzero), json!(60_000 - nonzero)))
    );

    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let n = |v: usize| v as u64;
    assert_eq!(n(variant::Entity::find().all(&s.tx).await.expect("variants").len()), 20_000);
    assert_eq!(n(product::Entity::find().all(&s.tx).await.expect("products").len()), 10_000);
    assert_eq!(n(location::Entity::find().all(&s.tx).await.expect("locations").len()), 3);
    let movements = stock_movement::Entity::find()
        .filter(stock_movement::Column::Kind.eq("sync"))
        .all(&s.tx)
        .await
        .expect("movements");
    assert_eq!(n(movements.len()), nonzero, "one movement per stocked level, none twice");
    let levels = stock_level::Entity::find().all(&s.tx).await.expect("levels");
    let total: i64 = levels.iter().map(|l| l.on_hand).sum();
    assert_eq!(total, shop.levels.values().map(|l| l.on_hand).sum::<i64>());
    let refs = external_ref::Entity::find().all(&s.tx).await.expect("refs");
    let by_kind = |k: &str| n(refs.iter().filter(|r| r.kind == k).count());
    assert_eq!(
        (
            by_kind("location"),
            by_kind("product"),
            by_kind("variant"),
            by_kind("inventory_item"),
            by_kind("inventory_level")
        ),
        (3, 10_000, 20_000, 20_000, 60_000)
    );
    s.commit().await.expect("commit");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// What an orchestrator sees of a `quartermaster worker`: health, readiness and job metrics on
/// `QM_WORKER_LISTEN`, and a prompt, clean exit on SIGTERM.
#[tokio::test]
async fn a_worker_process_serves_probes_and_job_metrics_and_stops_on_sigterm() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
    for i in 0..3 {
        qm_api::jobs::enqueue(&s, qm_api::jobs::NewJob::new("nobody.handles", json!({ "i": i })))
            .await
            .expect("enqueue");
    }
    s.commit().await.expect("commit");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
        .arg("worker")
        .envs(app.process_env())
        .env("QM_WORKER_LISTEN", &listen)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker process starts");
    let guard_pid = child.id();
    let base = format!("http://{listen}");
    let started = Instant::now();
    let metrics = loop {
        assert!(started.elapsed() < Duration::from_secs(120), "the worker's metrics never showed the jobs");
        if let Ok(r) = app.client.get(format!("{base}/metrics")).send().await {
            let text = r.text().await.expect("text");
            if text.contains("outcome=\"dead\"} 3") {
                break text;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Jobs of a kind nobody handles are dead-lettered at once: counted by this process, and in
    // the queue's gauges read from the database.
    assert!(metrics.contains("qm_jobs_processed_total{kind=\"nobody_handles\",outcome=\"dead\"} 3"), "{metrics}");
    assert!(metrics.contains("qm_jobs{queue=\"default\",kind=\"nobody_handles\",status=\"dead\"} 3"), "{metrics}");
    assert!(metrics.contains("# TYPE qm_jobs_oldest_due_age_seconds gauge"), "{metrics}");
    let health = app.client.get(format!("{base}/healthz")).send().await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let ready = app.client.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.json::<serde_json::Value>().await.expect("json"), json!({ "status": "ready" }));
    // The worker serves no API.
    let api = app.client.post(format!("{base}/graphql")).json(&json!({ "query": "{ me { subject } }" })).send();
    assert_eq!(api.await.expect("answer").status().as_u16(), 404);

    let stopping = Instant::now();
    let pid = i32::try_from(guard_pid).expect("pid");
    assert_eq!(send_signal(pid, "TERM"), 0, "SIGTERM sent");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(stopping.elapsed() < Duration::from_secs(30), "the worker did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exited with {status}");
}

/// Sends a signal with the `kill` command (no libc binding in the tests).
fn send_signal(pid: i32, signal: &str) -> i32 {
    Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().map_or(-1, |s| s.code().unwrap_or(-1))
}

/// The Helm chart's order of things: replicas started with `QM_MIGRATE_ON_START=false` leave the
/// schema alone and report not ready until the migration step has run, then ready.
#[tokio::test]
async fn a_server_that_does_not_migrate_is_not_ready_until_migrate_has_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = format!("127.0.0.1:{}", free_port());
    let env = [
        ("QM_DATA_DIR", dir.path().display().to_string()),
        ("QM_LISTEN", listen.clone()),
        ("QM_MIGRATE_ON_START", "false".to_owned()),
        ("QM_LOG_FORMAT", "json".to_owned()),
    ];
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("process starts")
    };
    let _server = Workers(vec![run(&["serve", "--no-workers"])]);
    let client = reqwest::Client::new();
    let readyz = || client.get(format!("http://{listen}/readyz")).send();
    let started = Instant::now();
    let first = loop {
        if let Ok(r) = readyz().await {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the server did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(first.status().as_u16(), 503);
    assert_eq!(first.json::<serde_json::Value>().await.expect("json"), json!({ "status": "migrations pending" }));

    let migrated = run(&["migrate"]).wait_with_output().expect("migrate runs");
    assert!(migrated.status.success());
    let r = readyz().await.expect("readyz");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.expect("json"), json!({ "status": "ready" }));
}
