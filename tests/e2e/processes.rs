//! Real `quartermaster worker` processes: two sharing one queue, and one killed with SIGKILL.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qm_api::db::TxMode;
use qm_api::db::entities::job;
use qm_tests::TestApp;
use qm_tests::receiver::Receiver;
use qm_tests::{Processes, free_port, postgres_enabled, slow_tests_enabled, wait_ready};
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
    let _workers = Processes(vec![ready_worker(&app), ready_worker(&app)]);
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
    let _restarted = Processes(vec![worker(&app, &env)]);
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
    let _restarted = Processes(vec![worker(&app, &env)]);
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
    let _server = Processes(vec![run(&["serve", "--no-workers"])]);
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

/// Starts `quartermaster serve --no-workers` on `listen` and waits until it is ready.
async fn ready_server(app: &TestApp, listen: &str) -> Child {
    let log = std::env::var_os("TEST_LOG").is_some();
    // Killed if it never becomes ready.
    let mut guard = Processes(vec![
        Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
            .args(["serve", "--no-workers"])
            .envs(app.process_env())
            .env("QM_LISTEN", listen)
            .env("QM_MIGRATE_ON_START", "false")
            .stdout(Stdio::null())
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("server process starts"),
    ]);
    assert!(
        wait_ready(&app.client, &format!("http://{listen}"), Duration::from_secs(120)).await,
        "the server on {listen} never became ready"
    );
    guard.0.pop().expect("the server")
}

/// One GraphQL request of the load: where it went, when, and whether it worked.
struct Sent {
    server: usize,
    started: Instant,
    finished: Instant,
    ok: bool,
    /// The idempotency key of a stock adjustment.
    key: Option<String>,
}

/// Issue 12's acceptance: two API processes and three worker processes on one PostgreSQL database.
/// A load generator spreads GraphQL reads and keyed stock adjustments over both API processes
/// while 10,100 webhook jobs of two tenants run (one tenant with 100× the other's); one worker is
/// SIGKILLed and one API process restarted midway. Every event reaches its endpoint and every
/// message is delivered once in effect, no job is dead-lettered, only requests in flight on the
/// restarting process may fail (a retry with the same key then changes nothing twice), and the
/// small tenant finishes long before the big one (the factor is printed).
#[tokio::test]
async fn a_fleet_of_two_servers_and_three_workers_survives_a_killed_worker_and_a_restarted_server() {
    if !slow_tests_enabled("a_fleet_of_two_servers_and_three_workers_survives_a_killed_worker_and_a_restarted_server") {
        return;
    }
    if !postgres_enabled("several processes share PostgreSQL only") {
        return;
    }
    let app = TestApp::spawn().await;
    let (big, small, shop) = (app.tenant("big").await, app.tenant("small").await, app.tenant("shop").await);
    let (big_rx, small_rx) = (Receiver::start().await, Receiver::start().await);
    for (t, rx) in [(&big, &big_rx), (&small, &small_rx)] {
        app.webhook_endpoint(&t.owner_key, &rx.url, json!(["webhook.test"])).await;
    }
    let location = app.location(&shop.owner_key, "WH1").await;
    app.product(&shop.owner_key, "widget", &["W-1"]).await;

    let listens = [format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port())];
    // Killed at the end of the test, or when it fails: [API, API, worker, worker, worker].
    let mut fleet = Processes(vec![ready_server(&app, &listens[0]).await, ready_server(&app, &listens[1]).await]);
    let env = [("QM_WORKER_LEASE_SECONDS", "5"), ("QM_WORKER_CONCURRENCY", "8")];
    fleet.0.extend((0..3).map(|_| worker(&app, &env)));

    // The load: four clients, each sending a request every 50 ms or so to the next server in
    // rotation (the machine's two cores also run the workers and PostgreSQL).
    let up = std::sync::Arc::new([std::sync::atomic::AtomicBool::new(true), std::sync::atomic::AtomicBool::new(true)]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Sent>::new()));
    let load: Vec<_> = (0..4)
        .map(|c| {
            let (up, stop, sent, listens) = (up.clone(), stop.clone(), sent.clone(), listens.clone());
            let (client, key, location) = (app.client.clone(), shop.owner_key.clone(), location.clone());
            tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 1;
                    let server = (c + n) % 2;
                    let server = if up[server].load(std::sync::atomic::Ordering::SeqCst) { server } else { 1 - server };
                    let adjust = n.is_multiple_of(3);
                    let idem = adjust.then(|| uuid::Uuid::new_v4().to_string());
                    let body = match &idem {
                        Some(k) => json!({
                            "query": "mutation($i: StockAdjustInput!) { stockAdjust(input: $i) { userErrors { code } } }",
                            "variables": { "i": { "sku": "W-1", "locationId": location, "delta": 1, "idempotencyKey": k } }
                        }),
                        None => json!({ "query": "{ me { subject } stockLevels(first: 5) { edges { node { onHand } } } }" }),
                    };
                    let started = Instant::now();
                    let answer = client
                        .post(format!("http://{}/graphql", listens[server]))
                        .bearer_auth(&key)
                        .json(&body)
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    let ok = match answer {
                        Ok(r) if r.status().is_success() => r
                            .json::<serde_json::Value>()
                            .await
                            .is_ok_and(|v| v.get("errors").is_none() && v["data"]["stockAdjust"]["userErrors"].as_array().is_none_or(Vec::is_empty)),
                        _ => false,
                    };
                    sent.lock().expect("lock").push(Sent { server, started, finished: Instant::now(), ok, key: idem });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();

    // The jobs: 5,000 events of the big tenant, then 50 of the small one behind them; each is a
    // fan-out job and a delivery job.
    for _ in 0..5 {
        let s = app.state.db.scoped(big.id, TxMode::Write).await.expect("tx");
        for i in 0..1000 {
            qm_api::events::emit(&s, "webhook.test", json!({ "i": i })).await.expect("emit");
        }
        s.commit().await.expect("commit");
    }
    let s = app.state.db.scoped(small.id, TxMode::Write).await.expect("tx");
    for i in 0..50 {
        qm_api::events::emit(&s, "webhook.test", json!({ "i": i })).await.expect("emit");
    }
    s.commit().await.expect("commit");
    let enqueued = chrono::Utc::now();
    let distinct = |rx: &Receiver| rx.received().into_iter().map(|r| r.id).collect::<HashSet<_>>().len();

    // Midway: SIGKILL a worker, and take one API process out of rotation, stop it and start it again.
    let started = Instant::now();
    while distinct(&big_rx) < 1500 {
        assert!(started.elapsed() < Duration::from_secs(600), "deliveries did not get going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fleet.0[2].kill().expect("SIGKILL");
    fleet.0[2].wait().expect("reaped");
    up[1].store(false, std::sync::atomic::Ordering::SeqCst);
    let out_of_rotation = Instant::now();
    assert_eq!(send_signal(i32::try_from(fleet.0[1].id()).expect("pid"), "TERM"), 0);
    let status = fleet.0[1].wait().expect("the server stops");
    assert!(status.success(), "the API process exited with {status}");
    fleet.0[1] = ready_server(&app, &listens[1]).await;
    up[1].store(true, std::sync::atomic::Ordering::SeqCst);

    while distinct(&big_rx) < 5000 || distinct(&small_rx) < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "only {} and {} events delivered",
            distinct(&big_rx),
            distinct(&small_rx)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for l in load {
        l.await.expect("load task");
    }

    // Requests: only those already in flight on the restarted process may have failed.
    let sent = std::mem::take(&mut *sent.lock().expect("lock"));
    let failed: Vec<&Sent> = sent.iter().filter(|r| !r.ok).collect();
    let excused = |r: &&Sent| r.server == 1 && r.started <= out_of_rotation;
    assert!(
        failed.iter().all(excused),
        "{} requests failed outside the restart",
        failed.iter().filter(|r| !excused(r)).count()
    );
    for server in 0..2 {
        assert!(
            sent.iter().any(|r| r.server == server && r.ok && r.finished > out_of_rotation),
            "server {server} served after the restart"
        );
    }
    // A client retries what failed with the same key; every key then counts exactly once.
    let keys: HashSet<&str> = sent.iter().filter_map(|r| r.key.as_deref()).collect();
    for r in failed.iter().filter(|r| r.key.is_some()) {
        let d = app
            .data(
                &shop.owner_key,
                "mutation($i: StockAdjustInput!) { stockAdjust(input: $i) { userErrors { code } } }",
                json!({ "i": { "sku": "W-1", "locationId": location, "delta": 1, "idempotencyKey": r.key } }),
            )
            .await;
        assert_eq!(d["stockAdjust"]["userErrors"], json!([]));
    }
    assert_eq!(app.on_hand(&shop.owner_key, &location, "W-1").await, keys.len() as i64);
    let d = app.data(&shop.owner_key, "{ ledgerVerify { ok checked } }", json!({})).await;
    assert_eq!(d["ledgerVerify"], json!({ "ok": true, "checked": keys.len() }));

    // Jobs: every fan-out and delivery done, nothing dead-lettered, the survivors and the killed
    // worker all took part; each message delivered, and repeats (the killed worker's) identical.
    let jobs = all_jobs(&app).await;
    assert!(jobs.iter().all(|j| j.status != "dead"), "a job was dead-lettered");
    let webhook_jobs: Vec<_> = jobs
        .iter()
        .filter(|j| [big.id, small.id].contains(&j.tenant_id))
        .filter(|j| j.kind.starts_with("webhook."))
        .collect();
    assert_eq!(webhook_jobs.len(), 2 * 5050);
    assert!(webhook_jobs.iter().all(|j| j.status == "done"));
    let by: HashSet<_> = webhook_jobs.iter().filter_map(|j| j.locked_by.clone()).collect();
    assert!(by.len() >= 2, "several workers ran the jobs: {by:?}");
    let messages =
        qm_api::db::entities::webhook_message::Entity::find().all(app.owner_db.conn()).await.expect("messages");
    assert_eq!(messages.iter().filter(|m| m.event_type == "webhook.test").count(), 5050);
    assert!(messages.iter().filter(|m| m.event_type == "webhook.test").all(|m| m.status == "delivered"));
    for rx in [&big_rx, &small_rx] {
        let mut bodies = std::collections::HashMap::new();
        for r in rx.received() {
            let prev = bodies.insert(r.id.clone(), r.body.clone());
            assert!(prev.is_none_or(|b| b == r.body), "a repeat of {} has another body", r.id);
        }
    }

    // Fairness: when each tenant's last event first arrived, after both were enqueued.
    let last = |rx: &Receiver| {
        let mut first = std::collections::HashMap::new();
        for r in rx.received() {
            first.entry(r.id).or_insert(r.received_at);
        }
        first.values().max().map(|t| (*t - enqueued).num_milliseconds().max(1) as f64 / 1000.0).unwrap_or(0.0)
    };
    let (small_s, big_s) = (last(&small_rx), last(&big_rx));
    let factor = small_s / big_s;
    eprintln!(
        "fleet: {} requests ({} failed, all in flight on the restarted server), 10,100 jobs; the small tenant's 50 events \
         all delivered after {small_s:.1} s, the big tenant's 5,000 after {big_s:.1} s: factor {factor:.3} \
         (first come, first served would be about 1)",
        sent.len(),
        failed.len()
    );
    assert!(factor < 0.25, "the small tenant waited {small_s:.1} s, the big one {big_s:.1} s");
}

/// Processes that start together each migrate and grant the app role; on PostgreSQL concurrent
/// grants fail ("tuple concurrently updated"), so they take turns and all succeed.
#[tokio::test]
async fn processes_migrating_at_once_take_turns_and_all_start() {
    if !postgres_enabled("one process owns an embedded database") {
        return;
    }
    let app = TestApp::spawn().await;
    let migrating: Vec<Child> = (0..6)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
                .arg("migrate")
                .envs(app.process_env())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("migrate starts")
        })
        .collect();
    for child in migrating {
        let out = child.wait_with_output().expect("migrate ends");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
