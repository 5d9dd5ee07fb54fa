//! Every way a credential can be wrong answers 401 UNAUTHENTICATED; roles decide what is FORBIDDEN.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use qm_domain::Role;
use qm_tests::{TestApp, TestTenant};
use serde_json::{Value, json};

const ME: &str = "{ me { subject roles tenant { slug } } }";

fn assert_unauthenticated(status: u16, body: &Value) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{body}");
    assert!(body.get("data").is_none(), "{body}");
}

fn claims(t: &TestTenant, patch: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({
        "sub": "u1", "tid": t.id, "roles": ["owner"], "iss": "quartermaster", "aud": "quartermaster-api",
        "iat": now, "nbf": now, "exp": now + 600, "jti": "j1"
    });
    patch(c.as_object_mut().expect("object"));
    c
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).expect("encode")
}

fn server_secret(app: &TestApp) -> Vec<u8> {
    std::fs::read_to_string(app.state.config.data_dir.join("jwt-secret"))
        .expect("secret file")
        .trim()
        .as_bytes()
        .to_vec()
}

#[tokio::test]
async fn a_valid_token_and_a_valid_api_key_are_accepted() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let d = app.data(&app.jwt(&t, &[Role::Planner]), ME, json!({})).await;
    assert_eq!(d["me"]["tenant"]["slug"], "acme");
    assert_eq!(d["me"]["roles"], json!(["PLANNER"]));
    let d = app.data(&t.owner_key, "{ me { credential roles } }", json!({})).await;
    assert_eq!(d["me"], json!({ "credential": "API_KEY", "roles": ["OWNER"] }));
    // A token we craft with the server's own secret and all claims right works too (the test is sound).
    let ok = hs256(&server_secret(&app), &claims(&t, |_| {}));
    assert_eq!(app.gql(&ok, ME, json!({})).await.0, 200);
}

#[tokio::test]
async fn each_bad_credential_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let secret = server_secret(&app);
    let now = chrono::Utc::now().timestamp();

    // No token at all.
    let resp =
        app.client.post(format!("{}/graphql", app.address)).json(&json!({ "query": ME })).send().await.expect("sent");
    let status = resp.status().as_u16();
    assert_unauthenticated(status, &resp.json().await.expect("json"));

    let mut bad: Vec<(&str, String)> = vec![
        ("garbage", "not-a-token".into()),
        ("bad signature", hs256(b"another secret that is long enough!!", &claims(&t, |_| {}))),
        (
            "expired",
            hs256(
                &secret,
                &claims(&t, |c| {
                    c.insert("exp".into(), json!(now - 3600));
                }),
            ),
        ),
        (
            "future nbf",
            hs256(
                &secret,
                &claims(&t, |c| {
                    c.insert("nbf".into(), json!(now + 3600));
                }),
            ),
        ),
        (
            "missing aud",
            hs256(
                &secret,
                &claims(&t, |c| {
                    c.remove("aud");
                }),
            ),
        ),
        (
            "wrong aud",
            hs256(
                &secret,
                &claims(&t, |c| {
                    c.insert("aud".into(), json!("someone-else"));
                }),
            ),
        ),
        (
            "missing iss",
            hs256(
                &secret,
                &claims(&t, |c| {
                    c.remove("iss");
                }),
            ),
        ),
        (
            "wrong iss",
            hs256(
                &secret,
                &claims(&t, |c| {
                    c.insert("iss".into(), json!("evil"));
                }),
            ),
        ),
        (
            "unknown tenant",
            hs256(
                &secret,
                &claims(&t, |c| {
                    c.insert("tid".into(), json!(uuid::Uuid::new_v4()));
                }),
            ),
        ),
        (
            "unknown role",
            hs256(
                &secret,
                &claims(&t, |c| {
                    c.insert("roles".into(), json!(["root"]));
                }),
            ),
        ),
        ("unknown api key", "sk_live_0000000000000000000000000000000000000000000".into()),
    ];
    // alg: none, with the signature stripped.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&t, |_| {})).expect("json"));
    bad.push(("alg none", format!("{header}.{payload}.")));
    for (what, token) in bad {
        let (status, body) = app.gql(&token, ME, json!({})).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_unauthenticated(status, &body);
    }
    // Not a bearer scheme.
    let resp = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("authorization", format!("Basic {}", t.owner_key))
        .json(&json!({ "query": ME }))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn a_revoked_api_key_is_unauthenticated_at_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let d = app
        .data(
            &t.owner_key,
            "mutation { apiKeyCreate(input: { name: \"connector\", roles: [INTEGRATION] }) { secret apiKey { id prefix } userErrors { message } } }",
            json!({}),
        )
        .await;
    let key = d["apiKeyCreate"]["secret"].as_str().expect("secret shown once").to_owned();
    let id = d["apiKeyCreate"]["apiKey"]["id"].as_str().expect("id").to_owned();
    assert!(key.starts_with(d["apiKeyCreate"]["apiKey"]["prefix"].as_str().expect("prefix")));
    assert_eq!(app.gql(&key, ME, json!({})).await.0, 200);
    let d = app
        .data(
            &t.owner_key,
            "mutation($id: ID!) { apiKeyRevoke(input: { id: $id }) { apiKey { revokedAt } } }",
            json!({ "id": id }),
        )
        .await;
    assert!(d["apiKeyRevoke"]["apiKey"]["revokedAt"].is_string());
    let (status, body) = app.gql(&key, ME, json!({})).await;
    assert_unauthenticated(status, &body);
    // The key list never shows the secret.
    let d = app.data(&t.owner_key, "{ apiKeys(first: 10) { nodes { name prefix lastUsedAt } } }", json!({})).await;
    assert!(!d.to_string().contains(&key[12..]));
}

#[tokio::test]
async fn an_hs256_token_is_refused_by_an_rs256_server() {
    let dir = TestApp::repo_root().join("tests/fixtures/jwt");
    let public = std::fs::read_to_string(dir.join("rsa_public.pem")).expect("fixture");
    let private = std::fs::read_to_string(dir.join("rsa_private.pem")).expect("fixture");
    let app = TestApp::spawn_with(|c| {
        c.jwt.algorithm = qm_api::config::JwtAlgorithm::Rs256;
        c.jwt.public_key_pem = Some(public.clone());
        c.jwt.private_key_pem = Some(private.clone().into());
    })
    .await;
    let t = app.tenant("acme").await;
    // The server's own RS256 token works.
    assert_eq!(app.gql(&app.jwt(&t, &[Role::Owner]), ME, json!({})).await.0, 200);
    // HS256 signed with the public key as the secret: the classic confusion attack.
    let forged = hs256(public.as_bytes(), &claims(&t, |_| {}));
    let (status, body) = app.gql(&forged, ME, json!({})).await;
    assert_unauthenticated(status, &body);
}

#[tokio::test]
async fn an_eddsa_server_accepts_its_own_tokens() {
    let dir = TestApp::repo_root().join("tests/fixtures/jwt");
    let public = std::fs::read_to_string(dir.join("ed25519_public.pem")).expect("fixture");
    let private = std::fs::read_to_string(dir.join("ed25519_private.pem")).expect("fixture");
    let app = TestApp::spawn_with(|c| {
        c.jwt.algorithm = qm_api::config::JwtAlgorithm::EdDsa;
        c.jwt.public_key_pem = Some(public.clone());
        c.jwt.private_key_pem = Some(private.clone().into());
    })
    .await;
    let t = app.tenant("acme").await;
    assert_eq!(app.gql(&app.jwt(&t, &[Role::Viewer]), ME, json!({})).await.0, 200);
    let (status, body) =
        app.gql(&hs256(b"whatever-secret-of-enough-length!!", &claims(&t, |_| {})), ME, json!({})).await;
    assert_unauthenticated(status, &body);
}

#[tokio::test]
async fn roles_limit_what_a_principal_may_do() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let viewer = app.jwt(&t, &[Role::Viewer]);
    let mutation = "mutation { locationUpsert(input: { code: \"X\", name: \"X\", kind: STORE }) { location { id } } }";
    let (status, body) = app.gql(&viewer, mutation, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    assert_eq!(body["data"]["locationUpsert"], Value::Null);
    // Viewers read; planners write stock but cannot manage keys.
    assert!(app.gql(&viewer, "{ locations(first: 5) { nodes { id } } }", json!({})).await.1.get("errors").is_none());
    let planner = app.jwt(&t, &[Role::Planner]);
    let (_, body) = app
        .gql(&planner, "mutation { apiKeyCreate(input: { name: \"k\", roles: [VIEWER] }) { secret } }", json!({}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    // A supplier sees purchase orders only.
    let supplier = app.jwt(&t, &[Role::Supplier]);
    let (_, body) = app.gql(&supplier, "{ products(first: 1) { nodes { id } } }", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    let d = app.data(&supplier, "{ purchaseOrders(first: 5) { nodes { id } } }", json!({})).await;
    assert_eq!(d["purchaseOrders"]["nodes"], json!([]));
}

#[tokio::test]
async fn the_platform_token_creates_tenants_and_nothing_else() {
    let app =
        TestApp::spawn_with(|c| c.platform_token = Some("platform-secret-token-for-tests".to_owned().into())).await;
    let create = "mutation($i: TenantCreateInput!) { tenantCreate(input: $i) { tenant { slug } ownerToken userErrors { code field } } }";
    let input = json!({ "i": { "slug": "newco", "name": "New Co", "ownerEmail": "boss@newco.example" } });
    let d = app.data("platform-secret-token-for-tests", create, input.clone()).await;
    assert_eq!(d["tenantCreate"]["tenant"]["slug"], "newco");
    let owner = d["tenantCreate"]["ownerToken"].as_str().expect("owner token").to_owned();
    let me = app.data(&owner, "{ me { tenant { slug } roles } }", json!({})).await;
    assert_eq!(me["me"], json!({ "tenant": { "slug": "newco" }, "roles": ["OWNER"] }));
    // The slug is taken now.
    let d = app.data("platform-secret-token-for-tests", create, input).await;
    assert_eq!(d["tenantCreate"]["userErrors"][0]["code"], "TAKEN");
    // A tenant owner cannot create tenants; the platform token reads no tenant data.
    let (_, body) =
        app.gql(&owner, create, json!({ "i": { "slug": "x2", "name": "X", "ownerEmail": "a@b.example" } })).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    let (_, body) =
        app.gql("platform-secret-token-for-tests", "{ locations(first: 1) { nodes { id } } }", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn a_supplier_key_sees_only_its_own_suppliers_purchase_orders() {
    use qm_api::db::TxMode;
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let k = &t.owner_key;
    let loc = app.location(k, "WH").await;
    let sup = |name: &str| {
        format!(
            "mutation {{ supplierUpsert(input: {{ name: \"{name}\", leadTimeMeanDays: \"5\", leadTimeStdDevDays: \"1\", currencyCode: \"USD\" }}) {{ supplier {{ id }} }} }}"
        )
    };
    let mine =
        app.data(k, &sup("Mine"), json!({})).await["supplierUpsert"]["supplier"]["id"].as_str().expect("id").to_owned();
    let other = app.data(k, &sup("Other"), json!({})).await["supplierUpsert"]["supplier"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
    for (n, supplier) in [("PO-MINE", &mine), ("PO-OTHER", &other)] {
        app.purchase_order(&s, n, supplier, &loc).await;
    }
    s.commit().await.expect("commit");
    let d = app
        .data(k, "mutation($s: ID!) { apiKeyCreate(input: { name: \"supplier\", roles: [SUPPLIER], supplierId: $s }) { secret } }", json!({ "s": mine }))
        .await;
    let key = d["apiKeyCreate"]["secret"].as_str().expect("secret").to_owned();
    let d = app.data(&key, "{ purchaseOrders(first: 10) { nodes { number supplier { name } } } }", json!({})).await;
    assert_eq!(d["purchaseOrders"]["nodes"], json!([{ "number": "PO-MINE", "supplier": { "name": "Mine" } }]));
    let d = app.data(k, "{ purchaseOrders(first: 10) { nodes { number } } }", json!({})).await;
    assert_eq!(d["purchaseOrders"]["nodes"].as_array().map(Vec::len), Some(2), "the owner sees both");
    // A supplier key needs a supplier.
    let d = app
        .data(
            k,
            "mutation { apiKeyCreate(input: { name: \"s\", roles: [SUPPLIER] }) { secret userErrors { field code } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["apiKeyCreate"]["userErrors"][0]["field"], json!(["input", "supplierId"]));
    // Its use is recorded (off the request path, so give it a moment).
    let mut used = false;
    for _ in 0..50 {
        let d = app.data(k, "{ apiKeys(first: 10) { nodes { name lastUsedAt } } }", json!({})).await;
        let nodes = d["apiKeys"]["nodes"].as_array().cloned().unwrap_or_default();
        if nodes.iter().any(|n| n["name"] == "supplier" && n["lastUsedAt"].is_string()) {
            used = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(used, "last use of the supplier key is recorded");
}
