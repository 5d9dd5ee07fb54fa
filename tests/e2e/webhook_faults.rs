//! Webhook delivery under faults: a receiver failing for days, TLS that fails, a receiver that
//! answers 200 and resets, and the database restarting under a running worker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use qm_tests::receiver::{Received, Receiver, independently_valid};
use qm_tests::{TestApp, uuid_of};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TEST_SEND: &str =
    "mutation($e: ID!) { webhookTestSend(input: { endpointId: $e }) { message { id } userErrors { code } } }";
const DELIVERIES: &str = "query($e: ID!) { webhookDeliveries(endpointId: $e, first: 10) { nodes { status webhookId attempts { statusCode error } } } }";
const ENDPOINTS: &str = "{ webhookEndpoints(first: 10) { nodes { id status failingSince } } }";

async fn status_of(app: &TestApp, token: &str, ep: &str) -> Value {
    let d = app.data(token, ENDPOINTS, json!({})).await;
    d["webhookEndpoints"]["nodes"].as_array().expect("nodes").iter().find(|n| n["id"] == ep).cloned().expect("endpoint")
}

/// Moves the endpoint's first failure `days` into the past (the clock seam for the 5-day rule).
async fn failing_for(app: &TestApp, ep: &str, days: i64) {
    let since = chrono::Utc::now() - chrono::Duration::days(days) - chrono::Duration::minutes(1);
    let sql = if app.is_postgres() {
        "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2"
    } else {
        "UPDATE webhook_endpoints SET failing_since = ? WHERE id = ?"
    };
    app.owner_db
        .conn()
        .execute_raw(Statement::from_sql_and_values(app.owner_db.backend(), sql, [since.into(), uuid_of(ep).into()]))
        .await
        .expect("backdate");
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled_and_admins_are_told() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    rx.script(&[500, 500, 500]);
    let (ep, _) = app.webhook_endpoint(&t.owner_key, &rx.url, json!([])).await;
    let watcher = Receiver::start().await;
    app.webhook_endpoint(&t.owner_key, &watcher.url, json!(["endpoint.disabled"])).await;
    app.data(&t.owner_key, TEST_SEND, json!({ "e": ep })).await;
    app.drain_jobs().await;
    let s = status_of(&app, &t.owner_key, &ep).await;
    assert_eq!(s["status"], "ACTIVE");
    assert!(s["failingSince"].is_string(), "{s}");

    // Four days into the failure another failed attempt keeps it active.
    failing_for(&app, &ep, 4).await;
    app.make_jobs_due().await;
    app.drain_jobs().await;
    assert_eq!(status_of(&app, &t.owner_key, &ep).await["status"], "ACTIVE");
    assert_eq!(rx.received().len(), 2);

    // Past five days the next failure disables it.
    failing_for(&app, &ep, 5).await;
    app.make_jobs_due().await;
    app.drain_jobs().await;
    app.drain_jobs().await;
    assert_eq!(status_of(&app, &t.owner_key, &ep).await["status"], "DISABLED");
    assert_eq!(rx.received().len(), 3);
    let d = app.data(&t.owner_key, DELIVERIES, json!({ "e": ep })).await;
    assert_eq!(d["webhookDeliveries"]["nodes"][0]["status"], "FAILED", "{d}");
    // The other endpoint heard endpoint.disabled, and the owners' alert fired.
    let got = watcher.received();
    assert_eq!(got.len(), 1);
    let body: Value = serde_json::from_slice(&got[0].body).expect("json");
    assert_eq!(body["type"], "endpoint.disabled");
    assert_eq!(body["data"]["endpointId"], ep.as_str());
    assert_eq!(body["data"]["reason"], "failing for 5 days");
    let d = app.data(&t.owner_key, "{ alerts(first: 5) { nodes { kind subject } } }", json!({})).await;
    assert_eq!(
        d["alerts"]["nodes"],
        json!([{ "kind": "WEBHOOK_ENDPOINT_DISABLED", "subject": "A webhook endpoint was disabled" }])
    );
    // No more attempts go to a disabled endpoint.
    app.make_jobs_due().await;
    app.drain_jobs().await;
    assert_eq!(rx.received().len(), 3);
}

#[tokio::test]
async fn a_tls_failure_is_retried_and_delivers_once_the_receiver_is_fixed() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    // https:// to a server that speaks plain HTTP: the TLS handshake fails.
    let (ep, secret) = app.webhook_endpoint(&t.owner_key, &rx.url.replace("http://", "https://"), json!([])).await;
    app.data(&t.owner_key, TEST_SEND, json!({ "e": ep })).await;
    app.drain_jobs().await;
    let d = app.data(&t.owner_key, DELIVERIES, json!({ "e": ep })).await;
    let m = &d["webhookDeliveries"]["nodes"][0];
    assert_eq!(m["status"], "PENDING", "{d}");
    assert_eq!(m["attempts"][0]["statusCode"], Value::Null, "{d}");
    assert!(m["attempts"][0]["error"].as_str().is_some_and(|e| !e.is_empty()), "{d}");
    assert!(rx.received().is_empty(), "nothing readable reached the receiver");
    let update =
        "mutation($i: WebhookEndpointUpdateInput!) { webhookEndpointUpdate(input: $i) { userErrors { code } } }";
    app.data(&t.owner_key, update, json!({ "i": { "id": ep, "url": rx.url } })).await;
    app.make_jobs_due().await;
    app.drain_jobs().await;
    let d = app.data(&t.owner_key, DELIVERIES, json!({ "e": ep })).await;
    assert_eq!(d["webhookDeliveries"]["nodes"][0]["status"], "DELIVERED", "{d}");
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert!(independently_valid(&secret, &got[0]));
    assert_eq!(got[0].id, m["webhookId"].as_str().expect("webhook id"));
}

/// A receiver on raw TCP that answers its first request with a 200 status line and then resets
/// the connection in the middle of the body; later requests get a whole 200.
async fn resetting_receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut conn, _)) = listener.accept().await {
            n += 1;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let request = loop {
                let Ok(read) = conn.read(&mut chunk).await else { break None };
                if read == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..read]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)))
                            .map(|(_, v)| v.trim().to_owned())
                            .unwrap_or_default()
                    };
                    let len: usize = header("content-length").parse().unwrap_or(0);
                    if body.len() >= len {
                        break Some(Received {
                            id: header("webhook-id"),
                            timestamp: header("webhook-timestamp"),
                            signature: header("webhook-signature"),
                            body: body.as_bytes()[..len].to_vec(),
                            received_at: chrono::Utc::now(),
                        });
                    }
                }
            };
            let Some(r) = request else { continue };
            if let Ok(mut l) = log.lock() {
                l.push(r);
            }
            if n == 1 {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial").await;
                #[expect(deprecated, reason = "a zero linger resets at once; it never blocks the thread")]
                let _ = conn.set_linger(Some(Duration::ZERO));
                drop(conn); // RST
            } else {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            }
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_receiver_that_answers_200_and_resets_counts_as_delivered() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let (url, seen) = resetting_receiver().await;
    let (ep, secret) = app.webhook_endpoint(&t.owner_key, &url, json!([])).await;
    app.data(&t.owner_key, TEST_SEND, json!({ "e": ep })).await;
    app.drain_jobs().await;
    let d = app.data(&t.owner_key, DELIVERIES, json!({ "e": ep })).await;
    let m = &d["webhookDeliveries"]["nodes"][0];
    assert_eq!(m["status"], "DELIVERED", "the receiver's 200 is its answer: {d}");
    assert_eq!(m["attempts"][0]["statusCode"], 200, "{d}");
    assert!(m["attempts"][0]["error"].as_str().is_some_and(|e| e.contains("response body")), "{d}");
    let got = seen.lock().expect("log").clone();
    assert_eq!(got.len(), 1, "no duplicate for a cut-off body");
    assert!(independently_valid(&secret, &got[0]));
}

/// PostgreSQL drops every connection (as on a restart) while a worker delivers: nothing is lost,
/// every copy is signed correctly, and the API answers again right after.
#[tokio::test]
async fn deliveries_survive_the_database_dropping_every_connection() {
    let app = TestApp::spawn().await;
    if !app.is_postgres() {
        return; // An embedded SQLite database cannot restart under the process.
    }
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    // Some first attempts fail, so deliveries go on while connections are dropped.
    rx.fail_randomly(0.3, 2, 7);
    let (_, secret) = app.webhook_endpoint(&t.owner_key, &rx.url, json!(["stock.adjusted"])).await;
    let loc = app.location(&t.owner_key, "WH").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    for _ in 0..40 {
        app.stock(&t.owner_key, "TEE-1", &loc, 1).await;
    }
    // A short lease, so a job whose outcome could not be recorded comes back quickly.
    let cfg = qm_api::jobs::worker::WorkerConfig {
        poll: Duration::from_millis(20),
        lease: Duration::from_secs(2),
        ..Default::default()
    };
    let (stop, worker) =
        qm_api::jobs::worker::spawn(app.state.clone(), qm_api::jobs::worker::Registry::standard(), cfg);
    let database = app.database_name().expect("a PostgreSQL test database");
    let mut terminated = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rows = app
            .owner_db
            .conn()
            .query_all_raw(Statement::from_string(
                app.owner_db.backend(),
                format!(
                    "SELECT pg_terminate_backend(pid) AS gone FROM pg_stat_activity \
                     WHERE datname = '{database}' AND pid <> pg_backend_pid()"
                ),
            ))
            .await
            .expect("terminate");
        terminated += rows.iter().filter(|r| r.try_get::<bool>("", "gone").unwrap_or(false)).count();
    }
    assert!(terminated > 0, "the server's connections were dropped");
    let during = rx.received().len();
    // The API answers again (the pool replaces dead connections).
    let mut answered = false;
    for _ in 0..50 {
        let (status, body) = app.gql(&t.owner_key, "{ me { subject } }", json!({})).await;
        if status == 200 && body.get("errors").is_none() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "the API recovers after the database drops its connections");
    // Every event arrives; jobs whose outcome could not be recorded come back after their lease.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        app.make_jobs_due().await;
        let ids: std::collections::HashSet<String> = rx.received().into_iter().map(|r| r.id).collect();
        if ids.len() == 40 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(true);
    let _ = worker.await;
    let got = rx.received();
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 40, "every event was delivered at least once");
    assert!(got.iter().all(|r| independently_valid(&secret, r)), "every copy is correctly signed");
    assert!(during < got.len(), "deliveries went on after the connections were dropped");
}
