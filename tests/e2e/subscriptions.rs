//! GraphQL subscriptions over graphql-transport-ws: live stock and events, tenant-scoped,
//! authenticated in `connection_init`, and (on PostgreSQL) across server processes.

use std::time::{Duration, Instant};

use qm_domain::Role;
use qm_tests::ws::{Client, Closed};
use qm_tests::{TestApp, TestTenant};
use serde_json::{Value, json};

const STOCK: &str = "subscription($loc: ID, $sku: String) { stockChanged(locationId: $loc, sku: $sku) { sku locationId onHand reserved available delta kind } }";
const EVENTS: &str = "subscription($types: [String!]) { events(types: $types) { id type version data } }";

fn of(messages: &[Value], id: &str) -> Vec<Value> {
    messages.iter().filter(|m| m["id"] == id).cloned().collect()
}

/// Adjusts a probe SKU until subscription `id` on `client` sees it: from then on the server
/// delivers every change (a subscription has no "started" message in the protocol).
async fn wait_until_live(app: &TestApp, t: &TestTenant, client: &mut Client, id: &str, loc: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        app.stock(&t.owner_key, "PROBE", loc, 1).await;
        let got = client.drain(Duration::from_millis(300)).await;
        let live = of(&got, id).iter().any(|m| m["payload"]["data"]["stockChanged"]["sku"] == "PROBE");
        seen.extend(got);
        if live {
            return seen;
        }
    }
    panic!("subscription {id} never went live; saw {} messages, first {:?}", seen.len(), seen.first());
}

async fn setup(app: &TestApp, slug: &str) -> (TestTenant, String) {
    let t = app.tenant(slug).await;
    let loc = app.location(&t.owner_key, "WH").await;
    app.product(&t.owner_key, "tee", &["TEE-1", "PROBE"]).await;
    (t, loc)
}

#[tokio::test]
async fn a_client_receives_its_own_stock_changes_and_never_another_tenants() {
    let app = TestApp::spawn().await;
    let (a, a_loc) = setup(&app, "tenant-a").await;
    let (b, b_loc) = setup(&app, "tenant-b").await;

    // A reader's JWT in connection_init, as browsers send it.
    let token = app.jwt(&a, &[Role::Viewer]);
    let mut client = Client::connect(&app.address, json!({ "Authorization": format!("Bearer {token}") }))
        .await
        .expect("acknowledged");
    client.subscribe("all", STOCK, json!({})).await;
    client.subscribe("tee", STOCK, json!({ "loc": a_loc, "sku": "TEE-1" })).await;
    client.subscribe("events", EVENTS, json!({ "types": ["stock.*"] })).await;
    // Tenant B's location ID from tenant A's client matches nothing.
    client.subscribe("b-loc", STOCK, json!({ "loc": b_loc })).await;
    wait_until_live(&app, &a, &mut client, "all", &a_loc).await;

    // B changes stock first; then A. If B's change leaked, it would arrive before A's.
    app.stock(&b.owner_key, "TEE-1", &b_loc, 5).await;
    app.stock(&b.owner_key, "PROBE", &b_loc, 5).await;
    app.stock(&a.owner_key, "TEE-1", &a_loc, 3).await;
    let order = "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { userErrors { message } } }";
    let d = app
        .data(
            &a.owner_key,
            order,
            json!({ "i": { "externalId": "A-1", "locationId": a_loc, "lines": [{ "sku": "TEE-1", "quantity": 2 }] } }),
        )
        .await;
    assert_eq!(d["orderCreate"]["userErrors"], json!([]));
    let got = client.drain(Duration::from_millis(1500)).await;

    for m in &got {
        assert_eq!(m["type"], "next", "{m}");
        if let Some(c) = m["payload"]["data"].get("stockChanged") {
            assert_eq!(c["locationId"], a_loc.as_str(), "a change of another location or tenant arrived: {m}");
        }
    }
    let tee: Vec<Value> = of(&got, "tee").into_iter().map(|m| m["payload"]["data"]["stockChanged"].clone()).collect();
    assert_eq!(
        tee,
        vec![
            json!({ "sku": "TEE-1", "locationId": a_loc, "onHand": 3, "reserved": 0, "available": 3, "delta": 3, "kind": "adjust" }),
            json!({ "sku": "TEE-1", "locationId": a_loc, "onHand": 3, "reserved": 2, "available": 1, "delta": -2, "kind": "reserve" }),
        ]
    );
    // The unfiltered subscription saw the same two TEE-1 changes (and only A's probes besides).
    let all = of(&got, "all");
    assert!(
        all.iter()
            .all(|m| ["TEE-1", "PROBE"].contains(&m["payload"]["data"]["stockChanged"]["sku"].as_str().unwrap_or("")))
    );
    assert_eq!(all.iter().filter(|m| m["payload"]["data"]["stockChanged"]["sku"] == "TEE-1").count(), 2);
    // events(types: ["stock.*"]) carries the webhook payload of A's adjustment, not order.created.
    let events: Vec<Value> = of(&got, "events").into_iter().map(|m| m["payload"]["data"]["events"].clone()).collect();
    let tee_event = events.iter().find(|e| e["data"]["sku"] == "TEE-1").expect("stock.adjusted for TEE-1");
    assert_eq!(tee_event["type"], "stock.adjusted");
    assert_eq!(tee_event["version"], 1);
    assert_eq!(tee_event["data"]["locationId"], a_loc.as_str());
    assert_eq!(tee_event["data"]["onHand"], 3);
    assert!(events.iter().all(|e| e["type"].as_str().is_some_and(|t| t.starts_with("stock."))), "{events:?}");
    assert!(of(&got, "b-loc").is_empty(), "B's location must match nothing for A");

    // Completing a subscription stops it; the others go on.
    client.send(json!({ "id": "all", "type": "complete" })).await;
    app.stock(&a.owner_key, "TEE-1", &a_loc, 1).await;
    let got = client.drain(Duration::from_millis(1000)).await;
    assert_eq!(of(&got, "all"), vec![json!({ "id": "all", "type": "complete" })], "{got:?}");
    assert_eq!(of(&got, "tee").len(), 1, "{got:?}");
    client.close().await;
}

#[tokio::test]
async fn bad_credentials_close_the_connection_and_bad_arguments_are_typed_errors() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app, "tenant-a").await;

    // async-graphql 7.2 closes a refused connection_init with 1002 (the protocol suggests 4403).
    for payload in [json!({}), json!({ "Authorization": "Bearer not-a-token" }), json!({ "token": "sk_live_nope" })] {
        let closed = Client::connect(&app.address, payload.clone()).await.err();
        let refused = Closed { code: 1002, reason: "missing or invalid credentials".into() };
        assert_eq!(closed, Some(refused), "{payload}");
    }

    // An API key works too, as a bare token.
    let mut client = Client::connect(&app.address, json!({ "token": a.owner_key })).await.expect("acknowledged");
    client.subscribe("bad", EVENTS, json!({ "types": ["stock.nope"] })).await;
    // Resolver errors come as a `next` with errors, then `complete`.
    let m = client.recv(Duration::from_secs(5)).await.expect("open").expect("an answer");
    assert_eq!((&m["type"], &m["id"]), (&json!("next"), &json!("bad")), "{m}");
    assert_eq!(m["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{m}");
    let m = client.recv(Duration::from_secs(5)).await.expect("open").expect("an answer");
    assert_eq!(m, json!({ "id": "bad", "type": "complete" }));

    // A role that may not read stock (a supplier) gets FORBIDDEN, not data.
    let supplier = app.jwt(&a, &[Role::Supplier]);
    let mut client = Client::connect(&app.address, json!({ "authorization": supplier })).await.expect("acknowledged");
    client.subscribe("s", STOCK, json!({})).await;
    let m = client.recv(Duration::from_secs(5)).await.expect("open").expect("an answer");
    assert_eq!(m["type"], "next", "{m}");
    assert_eq!(m["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN", "{m}");
    assert_eq!(m["payload"]["data"], json!(null), "{m}");
}

/// A change made through one server reaches a subscriber on another server process of the same
/// database (PostgreSQL LISTEN/NOTIFY). SQLite has one server per database, so this needs PostgreSQL.
#[tokio::test]
async fn changes_reach_subscribers_on_another_server_process() {
    let app = TestApp::spawn().await;
    if !app.is_postgres() {
        return;
    }
    let (a, a_loc) = setup(&app, "tenant-a").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let replica = format!("http://127.0.0.1:{port}");
    let mut server = Server(
        std::process::Command::new(env!("CARGO_BIN_EXE_qm-under-test"))
            .args(["serve", "--no-workers"])
            .envs(app.process_env())
            .env("QM_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .spawn()
            .expect("server process starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.client.get(format!("{replica}/readyz")).send().await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(Instant::now() < deadline, "the second server never became ready");
        assert!(server.0.try_wait().ok().flatten().is_none(), "the second server exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = Client::connect(&replica, json!({ "token": a.owner_key })).await.expect("acknowledged");
    client.subscribe("s", STOCK, json!({ "sku": "PROBE" })).await;
    // Mutations go to the test's server; the subscriber listens on the other process.
    wait_until_live(&app, &a, &mut client, "s", &a_loc).await;
    app.stock(&a.owner_key, "PROBE", &a_loc, 10).await;
    let got = client.drain(Duration::from_millis(1500)).await;
    let last = got.last().expect("the change arrived");
    assert_eq!(last["payload"]["data"]["stockChanged"]["delta"], 10, "{got:?}");
    client.close().await;
    let _ = server.0.kill();
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
