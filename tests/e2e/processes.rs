//! Real `quartermaster worker` processes: two sharing one queue, and one killed with SIGKILL.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qm_api::db::TxMode;
use qm_api::db::entities::job;
use qm_tests::TestApp;
use qm_tests::receiver::Receiver;
use sea_orm::EntityTrait;
use serde_json::json;

/// These tests start real processes and move thousands of jobs: they run when `QM_SLOW_TESTS=1`
/// (as `.ci/run` sets).
fn slow_tests_enabled(name: &str) -> bool {
    let on = std::env::var("QM_SLOW_TESTS").is_ok_and(|v| v == "1");
    if !on {
        eprintln!("skipping {name}: set QM_SLOW_TESTS=1 to run it");
    }
    on
}

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
        let jobs = all_jobs(&app).await;
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
