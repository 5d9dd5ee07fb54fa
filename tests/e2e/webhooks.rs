//! Outbound webhooks: Standard Webhooks signatures (checked here with an independent HMAC),
//! retries with the same webhook-id, 410 handling, rotation, SSRF refusal and tenant isolation.

use qm_tests::TestApp;
use qm_tests::receiver::Receiver;
use serde_json::{Value, json};

use qm_tests::receiver::independently_valid;

#[tokio::test]
async fn a_stock_change_is_delivered_signed_and_in_the_documented_shape() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    let (_, secret) = app.webhook_endpoint(&t.owner_key, &rx.url, json!(["stock.*"])).await;
    assert!(secret.starts_with("whsec_"));
    let loc = app.location(&t.owner_key, "WH").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    app.stock(&t.owner_key, "TEE-1", &loc, 5).await;
    app.drain_jobs().await;
    let got = rx.received();
    assert_eq!(got.len(), 1, "one stock.adjusted event");
    let r = &got[0];
    assert!(r.id.starts_with("msg_"));
    assert!(independently_valid(&secret, r), "signature verifies independently");
    let body: Value = serde_json::from_slice(&r.body).expect("json body");
    assert_eq!(body["type"], "stock.adjusted");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(body["data"]["sku"], "TEE-1");
    assert_eq!(body["data"]["onHand"], 5);
    assert_eq!(body["data"]["locationId"], loc.as_str());
    // Our own verifier agrees, and rejects a tampered body or an old timestamp.
    let now = chrono::Utc::now().timestamp();
    let tol = std::time::Duration::from_secs(300);
    use qm_integrations::webhooks::verify;
    assert!(verify(&secret, &r.id, &r.timestamp, &r.signature, &r.body, now, tol).is_ok());
    assert!(verify(&secret, &r.id, &r.timestamp, &r.signature, b"{\"type\":\"x\"}", now, tol).is_err());
    assert!(verify(&secret, &r.id, &r.timestamp, &r.signature, &r.body, now + 3600, tol).is_err());
    let mut forged = r.clone();
    forged.body = b"{}".to_vec();
    assert!(!independently_valid(&secret, &forged));
}

#[tokio::test]
async fn failed_deliveries_retry_with_the_same_webhook_id_and_are_logged() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    rx.script(&[500, 503]);
    let (ep, secret) = app.webhook_endpoint(&t.owner_key, &rx.url, json!(["order.created"])).await;
    let loc = app.location(&t.owner_key, "WH").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    app.stock(&t.owner_key, "TEE-1", &loc, 5).await;
    let d = app
        .data(&t.owner_key, "mutation { orderCreate(input: { externalId: \"o1\", lines: [{ sku: \"TEE-1\", quantity: 1 }] }) { order { id } } }", json!({}))
        .await;
    assert!(d["orderCreate"]["order"]["id"].is_string());
    app.drain_jobs().await;
    assert_eq!(rx.received().len(), 1, "first attempt failed; the retry waits 5 s");
    for _ in 0..2 {
        app.make_jobs_due().await;
        app.drain_jobs().await;
    }
    let got = rx.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.id == got[0].id), "every retry carries the same webhook-id");
    assert!(got.iter().all(|r| independently_valid(&secret, r)));
    let q = "query($e: ID!) { webhookDeliveries(endpointId: $e, first: 10) { nodes { eventType status attemptCount attempts { statusCode responseExcerpt } } } }";
    let d = app.data(&t.owner_key, q, json!({ "e": ep })).await;
    let m = &d["webhookDeliveries"]["nodes"][0];
    assert_eq!(m["eventType"], "order.created");
    assert_eq!(m["status"], "DELIVERED");
    assert_eq!(m["attemptCount"], 3);
    let codes: Vec<Value> =
        m["attempts"].as_array().expect("attempts").iter().map(|a| a["statusCode"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(503), json!(200)]);
    assert_eq!(m["attempts"][0]["responseExcerpt"], "answered 500");
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_recover_resends() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    rx.script(&[410]);
    let (ep, _) = app.webhook_endpoint(&t.owner_key, &rx.url, json!(["stock.adjusted"])).await;
    let watcher = Receiver::start().await;
    app.webhook_endpoint(&t.owner_key, &watcher.url, json!(["endpoint.disabled"])).await;
    let loc = app.location(&t.owner_key, "WH").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    app.stock(&t.owner_key, "TEE-1", &loc, 5).await;
    app.drain_jobs().await;
    let d = app
        .data(&t.owner_key, "query($e: ID!) { node(id: $e) { ... on WebhookEndpoint { status } } }", json!({ "e": ep }))
        .await;
    assert_eq!(d["node"]["status"], "DISABLED");
    let disabled: Vec<Value> =
        watcher.received().iter().map(|r| serde_json::from_slice(&r.body).expect("json")).collect();
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["type"], "endpoint.disabled");
    assert_eq!(disabled[0]["data"]["endpointId"], ep.as_str());
    // Recovery re-enables it and resends what failed.
    let d = app
        .data(
            &t.owner_key,
            "mutation($e: ID!, $s: DateTime!) { webhookEndpointRecover(input: { endpointId: $e, since: $s }) { resent endpoint { status } } }",
            json!({ "e": ep, "s": since.to_rfc3339() }),
        )
        .await;
    assert_eq!(d["webhookEndpointRecover"], json!({ "resent": 1, "endpoint": { "status": "ACTIVE" } }));
    app.drain_jobs().await;
    assert_eq!(rx.received().len(), 2);
}

/// A message whose delivery job dies (its worker gone on the last attempt) is FAILED, not left
/// pending for good, and recovering the endpoint resends it.
#[tokio::test]
async fn a_message_whose_delivery_job_dies_is_failed_and_recover_resends_it() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    rx.script(&[500]);
    let (ep, _) = app.webhook_endpoint(&t.owner_key, &rx.url, json!(["stock.adjusted"])).await;
    let loc = app.location(&t.owner_key, "WH").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    app.stock(&t.owner_key, "TEE-1", &loc, 5).await;
    app.drain_jobs().await;
    let q = "query($e: ID!) { webhookDeliveries(endpointId: $e, first: 10) { nodes { status attemptCount } } }";
    let d = app.data(&t.owner_key, q, json!({ "e": ep })).await;
    assert_eq!(d["webhookDeliveries"]["nodes"], json!([{ "status": "PENDING", "attemptCount": 1 }]), "{d}");
    // The retry is taken by a worker that dies with it on the job's last attempt.
    assert_eq!(app.crash_on_last_attempt("webhook.deliver").await, 1);
    app.drain_jobs().await;
    let d = app.data(&t.owner_key, q, json!({ "e": ep })).await;
    assert_eq!(d["webhookDeliveries"]["nodes"], json!([{ "status": "FAILED", "attemptCount": 1 }]), "{d}");
    let d = app
        .data(
            &t.owner_key,
            "mutation($e: ID!, $s: DateTime!) { webhookEndpointRecover(input: { endpointId: $e, since: $s }) { resent } }",
            json!({ "e": ep, "s": since.to_rfc3339() }),
        )
        .await;
    assert_eq!(d["webhookEndpointRecover"]["resent"], 1, "{d}");
    app.drain_jobs().await;
    assert_eq!(rx.received().len(), 2);
    let d = app.data(&t.owner_key, q, json!({ "e": ep })).await;
    assert_eq!(d["webhookDeliveries"]["nodes"][0]["status"], "DELIVERED", "{d}");
}

#[tokio::test]
async fn a_rotated_secret_signs_with_old_and_new_keys() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    let (ep, old) = app.webhook_endpoint(&t.owner_key, &rx.url, json!([])).await;
    let d = app.data(&t.owner_key, "mutation($e: ID!) { webhookSecretRotate(input: { id: $e }) { secret endpoint { previousSecretExpiresAt } } }", json!({ "e": ep })).await;
    let new = d["webhookSecretRotate"]["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(old, new);
    let d = app
        .data(
            &t.owner_key,
            "mutation($e: ID!) { webhookTestSend(input: { endpointId: $e }) { message { eventType webhookId } } }",
            json!({ "e": ep }),
        )
        .await;
    assert_eq!(d["webhookTestSend"]["message"]["eventType"], "webhook.test");
    app.drain_jobs().await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].signature.split(' ').count(), 2);
    assert!(independently_valid(&old, &got[0]) && independently_valid(&new, &got[0]));
}

#[tokio::test]
async fn private_receivers_are_refused_unless_allowed() {
    let app = TestApp::spawn_with(|c| c.webhook_allow_private = false).await;
    let t = app.tenant("acme").await;
    for url in
        ["http://127.0.0.1:9/x", "http://[::1]/x", "http://169.254.169.254/latest", "ftp://example.com/", "not a url"]
    {
        let create = "mutation($i: WebhookEndpointCreateInput!) { webhookEndpointCreate(input: $i) { endpoint { id } userErrors { field code } } }";
        let d = app.data(&t.owner_key, create, json!({ "i": { "url": url } })).await;
        assert_eq!(d["webhookEndpointCreate"]["userErrors"][0]["field"], json!(["input", "url"]), "{url}: {d}");
    }
    // A host name that resolves to loopback passes the URL check but is refused at delivery.
    let rx = Receiver::start().await;
    let url = rx.url.replace("127.0.0.1", "localhost");
    let (ep, _) = app.webhook_endpoint(&t.owner_key, &url, json!([])).await;
    app.data(
        &t.owner_key,
        "mutation($e: ID!) { webhookTestSend(input: { endpointId: $e }) { message { id } } }",
        json!({ "e": ep }),
    )
    .await;
    app.drain_jobs().await;
    assert!(rx.received().is_empty(), "nothing reached the loopback receiver");
    let d = app
        .data(
            &t.owner_key,
            "query($e: ID!) { webhookDeliveries(endpointId: $e, first: 5) { nodes { status attempts { error } } } }",
            json!({ "e": ep }),
        )
        .await;
    let m = &d["webhookDeliveries"]["nodes"][0];
    assert_eq!(m["status"], "FAILED");
    assert!(m["attempts"][0]["error"].as_str().is_some_and(|e| e.contains("private")), "{d}");
}

#[tokio::test]
async fn events_never_reach_another_tenants_endpoints() {
    let app = TestApp::spawn().await;
    let a = app.tenant("tenant-a").await;
    let b = app.tenant("tenant-b").await;
    let rx_a = Receiver::start().await;
    app.webhook_endpoint(&a.owner_key, &rx_a.url, json!([])).await;
    let loc = app.location(&b.owner_key, "WH").await;
    app.product(&b.owner_key, "tee", &["TEE-1"]).await;
    app.stock(&b.owner_key, "TEE-1", &loc, 5).await;
    app.drain_jobs().await;
    assert!(rx_a.received().is_empty());
    let d = app.data(&a.owner_key, "{ webhookEndpoints(first: 5) { nodes { url } } }", json!({})).await;
    assert_eq!(d["webhookEndpoints"]["nodes"].as_array().map(Vec::len), Some(1));
}

/// The Python `standardwebhooks` package (the specification's reference library) must accept
/// our deliveries and reject tampered ones. `.ci/run` installs it and sets `QM_TEST_PYTHON`.
#[tokio::test]
async fn deliveries_verify_with_the_standardwebhooks_reference_library() {
    if std::env::var("QM_TEST_PYTHON").ok().filter(|p| !p.is_empty()).is_none() {
        eprintln!("skipping: set QM_TEST_PYTHON to a python with the standardwebhooks package");
        return;
    }
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    let (ep, secret) = app.webhook_endpoint(&t.owner_key, &rx.url, json!([])).await;
    let loc = app.location(&t.owner_key, "WH").await;
    app.product(&t.owner_key, "tee", &["TEE-1"]).await;
    app.stock(&t.owner_key, "TEE-1", &loc, 5).await;
    // Rotate so one delivery carries two signatures.
    app.rotate_webhook_secret(&t.owner_key, &ep).await;
    app.data(
        &t.owner_key,
        "mutation($e: ID!) { webhookTestSend(input: { endpointId: $e }) { message { id } } }",
        json!({ "e": ep }),
    )
    .await;
    app.drain_jobs().await;
    let got = rx.received();
    assert_eq!(got.len(), 2);
    let mut types = qm_tests::receiver::reference_library_verifies(&secret, &got).expect("QM_TEST_PYTHON is set");
    types.sort();
    assert_eq!(types, ["stock.adjusted", "webhook.test"]);
}

/// A real SMTP server (Python's aiosmtpd, installed by `.ci/run`) receives the alert e-mail that
/// goes to the tenant's owners and admins when an endpoint is disabled.
#[tokio::test]
async fn admins_are_emailed_when_an_endpoint_is_disabled() {
    let Some(smtp) = qm_tests::smtp::Server::start().await else {
        eprintln!("skipping: set QM_TEST_PYTHON to a python with the aiosmtpd package");
        return;
    };
    let app = TestApp::spawn_with(|c| c.smtp_url = Some(smtp.url().into())).await;
    let t = app.tenant("acme").await;
    app.data(
        &t.owner_key,
        "mutation { userInvite(input: { email: \"viewer@acme.example\", roles: [VIEWER] }) { user { id } } }",
        json!({}),
    )
    .await;
    let rx = Receiver::start().await;
    rx.script(&[410]);
    let (ep, _) = app.webhook_endpoint(&t.owner_key, &rx.url, json!([])).await;
    app.data(
        &t.owner_key,
        "mutation($e: ID!) { webhookTestSend(input: { endpointId: $e }) { message { id } } }",
        json!({ "e": ep }),
    )
    .await;
    app.drain_jobs().await;
    // The alert waits for the end of its digest window; fast-forward it.
    app.make_jobs_due().await;
    app.drain_jobs().await;
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails.len(), 1, "one e-mail: to the owner, not to the viewer");
    let raw = &mails[0].raw;
    assert!(raw.contains("To: owner@acme.example"), "{raw}");
    assert!(raw.contains("From: Quartermaster <alerts@quartermaster.invalid>"), "{raw}");
    assert!(raw.contains("Subject: [Quartermaster] A webhook endpoint was disabled"), "{raw}");
    assert!(raw.contains("multipart/alternative"), "{raw}");
    assert!(raw.contains("Content-Type: text/plain") && raw.contains("Content-Type: text/html"), "{raw}");
    let (text, html) = mails[0].decoded.split_once("Content-Type: text/html").expect("two parts");
    assert!(text.contains(&format!("Endpoint: {}", rx.url)) && text.contains("410 Gone"), "{text}");
    assert!(html.contains(&format!("<li>Endpoint: {}</li>", rx.url)), "{html}");
    // The alert is in the history too.
    let d =
        app.data(&t.owner_key, "{ alerts(first: 5) { nodes { kind subject status notifiedAt } } }", json!({})).await;
    let a = &d["alerts"]["nodes"][0];
    assert_eq!((&a["kind"], &a["status"]), (&json!("WEBHOOK_ENDPOINT_DISABLED"), &json!("OPEN")), "{d}");
    assert!(a["notifiedAt"].is_string(), "{d}");
}

/// A receiver that never finishes its body, or redirects, fails the attempt within the timeout,
/// is retried, and does not slow the API down.
#[tokio::test]
async fn hanging_and_redirecting_receivers_fail_cleanly() {
    let app = TestApp::spawn_with(|c| c.webhook_timeout_seconds = 1).await;
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    rx.script(&[999, 307]);
    let (ep, _) = app.webhook_endpoint(&t.owner_key, &rx.url, json!([])).await;
    app.data(
        &t.owner_key,
        "mutation($e: ID!) { webhookTestSend(input: { endpointId: $e }) { message { id } } }",
        json!({ "e": ep }),
    )
    .await;
    let state = app.state.clone();
    let worker = tokio::spawn(async move {
        let cfg = qm_api::jobs::worker::WorkerConfig::default();
        qm_api::jobs::worker::drain(&state, &qm_api::jobs::worker::Registry::standard(), &cfg).await
    });
    // While the receiver hangs, the API answers at once.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    app.data(&t.owner_key, "{ me { subject } }", json!({})).await;
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
    worker.await.expect("join").expect("drain");
    for _ in 0..2 {
        app.make_jobs_due().await;
        app.drain_jobs().await;
    }
    let q = "query($e: ID!) { webhookDeliveries(endpointId: $e, first: 5) { nodes { status attempts { statusCode error } } } }";
    let d = app.data(&t.owner_key, q, json!({ "e": ep })).await;
    let m = &d["webhookDeliveries"]["nodes"][0];
    assert_eq!(m["status"], "DELIVERED", "{d}");
    let attempts = m["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3, "{d}");
    assert!(attempts[0]["error"].as_str().is_some_and(|e| e.contains("timed out")), "{d}");
    assert_eq!(attempts[1]["statusCode"], 307, "a redirect is a failure, not followed");
    assert_eq!(attempts[2]["statusCode"], 200);
    assert_eq!(rx.received().len(), 3);
}

#[tokio::test]
async fn endpoint_secrets_are_sealed_at_rest_and_bound_to_their_endpoint() {
    use qm_api::db::entities::webhook_endpoint;
    use qm_api::webhooks::open_secret;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let rx = Receiver::start().await;
    let (ep, secret) = app.webhook_endpoint(&t.owner_key, &rx.url, json!([])).await;
    let (other, _) = app.webhook_endpoint(&t.owner_key, &rx.url, json!(["purchase_order.issued"])).await;
    let (id, other_id) = (qm_tests::uuid_of(&ep), qm_tests::uuid_of(&other));
    let (conn, tenant) = (app.owner_db.conn(), t.id);
    let row = |id: uuid::Uuid| async move {
        webhook_endpoint::Entity::find_by_id((tenant, id)).one(conn).await.expect("row").expect("endpoint")
    };
    let stored = row(id).await;
    let key = secret.trim_start_matches("whsec_");
    assert!(stored.secret.starts_with("v1:") && !stored.secret.contains(key), "{}", stored.secret);
    assert_eq!(open_secret(&app.state.sealer, t.id, id, &stored.secret).as_deref(), Ok(secret.as_str()));
    assert!(open_secret(&app.state.sealer, t.id, other_id, &stored.secret).is_err(), "opens for its endpoint only");

    // Rotation seals the new secret and keeps the old one sealed; both sign.
    let new = app.rotate_webhook_secret(&t.owner_key, &ep).await;
    let rotated = row(id).await;
    assert!(!rotated.secret.contains(new.trim_start_matches("whsec_")));
    assert_eq!(rotated.previous_secret.as_deref(), Some(stored.secret.as_str()));
    let send = "mutation($e: ID!) { webhookTestSend(input: { endpointId: $e }) { message { webhookId } } }";
    app.data(&t.owner_key, send, json!({ "e": ep })).await;
    app.drain_jobs().await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert!(independently_valid(&secret, &got[0]) && independently_valid(&new, &got[0]));

    // A secret stored in the clear by an earlier version still signs.
    // Stores a current secret and a previous one (signing for another hour when there is one).
    let store = |id: uuid::Uuid, value: String, previous: Option<String>| async move {
        webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::Secret, Expr::value(value))
            .col_expr(webhook_endpoint::Column::PreviousSecret, Expr::value(previous))
            .col_expr(
                webhook_endpoint::Column::PreviousSecretExpiresAt,
                Expr::value(Some(chrono::Utc::now() + chrono::Duration::hours(1))),
            )
            .filter(webhook_endpoint::Column::TenantId.eq(tenant))
            .filter(webhook_endpoint::Column::Id.eq(id))
            .exec(conn)
            .await
            .expect("update");
    };
    let clear = qm_integrations::webhooks::generate_secret();
    store(id, clear.clone(), None).await;
    app.data(&t.owner_key, send, json!({ "e": ep })).await;
    app.drain_jobs().await;
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert!(independently_valid(&clear, &got[1]));

    // Another endpoint's sealed secret copied into this row does not open: nothing goes out
    // unsigned or signed with the wrong key, and the attempt fails as one the receiver failed
    // would: recorded with why, the endpoint failing, the message waiting for its next attempt.
    store(id, row(other_id).await.secret, None).await;
    app.data(&t.owner_key, send, json!({ "e": ep })).await;
    app.drain_jobs().await;
    assert_eq!(rx.received().len(), 2, "no delivery with a secret that does not open");
    let q = "query($e: ID!) { webhookDeliveries(endpointId: $e, first: 5, status: PENDING) { nodes { status attempts { statusCode error } } } webhookEndpoints(first: 5) { nodes { id failingSince } } }";
    let d = app.data(&t.owner_key, q, json!({ "e": ep })).await;
    let waiting = d["webhookDeliveries"]["nodes"].as_array().expect("nodes");
    assert_eq!(waiting.len(), 1, "{d}");
    let attempts = waiting[0]["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{d}");
    assert!(attempts[0]["statusCode"].is_null(), "{d}");
    let why = attempts[0]["error"].as_str().unwrap_or_default();
    assert!(why.contains("does not open") && why.contains("QM_CONNECTOR_KEYS"), "{d}");
    let endpoints = d["webhookEndpoints"]["nodes"].as_array().expect("endpoints");
    assert!(endpoints.iter().any(|n| n["id"] == ep.as_str() && n["failingSince"].is_string()), "{d}");

    // Once the secret opens again, the next attempt delivers it, signed with it.
    store(id, rotated.secret.clone(), None).await;
    app.make_jobs_due().await;
    app.drain_jobs().await;
    let got = rx.received();
    assert_eq!(got.len(), 3, "the waiting message went out");
    assert!(independently_valid(&new, &got[2]));
    let d = app.data(&t.owner_key, q, json!({ "e": ep })).await;
    assert_eq!(d["webhookDeliveries"]["nodes"], json!([]), "{d}");
    let endpoints = d["webhookEndpoints"]["nodes"].as_array().expect("endpoints");
    assert!(endpoints.iter().any(|n| n["id"] == ep.as_str() && n["failingSince"].is_null()), "{d}");

    // When only the previous secret (still signing) does not open, the message goes out signed
    // with the current one alone: receivers that switched verify it, nothing waits on the key.
    store(id, rotated.secret.clone(), Some(row(other_id).await.secret)).await;
    app.data(&t.owner_key, send, json!({ "e": ep })).await;
    app.drain_jobs().await;
    let got = rx.received();
    assert_eq!(got.len(), 4, "delivered without the previous secret");
    assert!(independently_valid(&new, &got[3]) && !independently_valid(&secret, &got[3]));
    assert_eq!(got[3].signature.split(' ').count(), 1, "{}", got[3].signature);
    let d = app.data(&t.owner_key, q, json!({ "e": ep })).await;
    assert_eq!(d["webhookDeliveries"]["nodes"], json!([]), "{d}");
}
