//! Bad input gets a typed error or a 4xx, never a 500 and never a partial write.

use qm_tests::TestApp;
use serde_json::{Value, json};

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn malformed_requests_get_4xx_with_a_code() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let k = &t.owner_key;
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("malformed json", "application/json", b"{\"query\": ".to_vec(), 400),
        ("batch array", "application/json", br#"[{"query":"{ me { subject } }"}]"#.to_vec(), 400),
        ("unknown body field", "application/json", br#"{"query":"{ me { subject } }","sneaky":1}"#.to_vec(), 400),
        (
            "variables not an object",
            "application/json",
            br#"{"query":"{ me { subject } }","variables":[1]}"#.to_vec(),
            400,
        ),
        ("invalid utf-8", "application/json", b"{\"query\": \"\xff\xfe\"}".to_vec(), 400),
        ("form post", "application/x-www-form-urlencoded", b"query=%7B+me+%7B+subject+%7D+%7D".to_vec(), 415),
        ("text plain", "text/plain", br#"{"query":"{ me { subject } }"}"#.to_vec(), 415),
    ];
    for (what, ct, body, expected) in cases {
        let (status, resp) = app.raw(k, ct, body).await;
        assert_eq!(status, expected, "{what}: {resp}");
        assert!(code(&resp) != "<none>", "{what}: {resp}");
    }
    // JSON with a charset parameter is fine.
    let (status, _) =
        app.raw(k, "application/json; charset=utf-8", br#"{"query":"{ me { subject } }"}"#.to_vec()).await;
    assert_eq!(status, 200);
    // Oversized bodies are refused before parsing.
    let big =
        format!("{{\"query\":\"{{ me {{ subject }} }}\",\"variables\":{{\"x\":\"{}\"}}}}", "a".repeat(2 * 1024 * 1024));
    let (status, _) = app.raw(k, "application/json", big.into_bytes()).await;
    assert_eq!(status, 413);
    // GET never executes operations (CSRF): it serves GraphiQL.
    let resp = app
        .client
        .get(format!("{}/graphql?query=mutation%7BlocationUpsert(input:%7Bcode:%22X%22,name:%22X%22,kind:STORE%7D)%7Blocation%7Bid%7D%7D%7D", app.address))
        .bearer_auth(k)
        .send()
        .await
        .expect("sent");
    assert!(resp.text().await.expect("html").contains("graphiql"));
    let d = app.data(k, "{ locations(first: 5) { nodes { id } } }", json!({})).await;
    assert_eq!(d["locations"]["nodes"], json!([]));
}

#[tokio::test]
async fn invalid_documents_get_typed_errors() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let k = &t.owner_key;
    let cases = [
        ("syntax", "{ me { subject ", "GRAPHQL_PARSE_FAILED"),
        ("unknown field", "{ me { password } }", "GRAPHQL_VALIDATION_FAILED"),
        (
            "unknown input field",
            "mutation { stockAdjust(input: { sku: \"A\", locationId: \"x\", delta: 1, bogus: 1 }) { userErrors { code } } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "int overflow",
            "mutation { stockAdjust(input: { sku: \"A\", locationId: \"x\", delta: 2147483648 }) { userErrors { code } } }",
            "BAD_USER_INPUT",
        ),
        ("page too big", "{ products(first: 251) { nodes { id } } }", "BAD_USER_INPUT"),
        ("page zero", "{ products(first: 0) { nodes { id } } }", "BAD_USER_INPUT"),
        ("negative last", "{ products(last: -1) { nodes { id } } }", "BAD_USER_INPUT"),
        ("no page size", "{ products { nodes { id } } }", "BAD_USER_INPUT"),
        ("first and last", "{ products(first: 1, last: 1) { nodes { id } } }", "BAD_USER_INPUT"),
        ("bad cursor", "{ products(first: 1, after: \"!!\") { nodes { id } } }", "BAD_USER_INPUT"),
        (
            "too complex",
            "{ a: products(first: 250) { nodes { variants { stockLevels { location { id } variant { sku } } } } } b: products(first: 250) { nodes { variants { stockLevels { location { id } } } } } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ];
    for (what, q, expected) in cases {
        let (status, body) = app.gql(k, q, json!({})).await;
        assert!(status < 500, "{what}: {status}");
        assert_eq!(code(&body), expected, "{what}: {body}");
        assert!(!body.to_string().contains("Did you mean"), "{what}: suggestions leak the schema");
    }
    let deep = format!(
        "{{ products(first: 1) {{ nodes {{ {} sku {} }} }} }}",
        "variants { product { ".repeat(10),
        "} } ".repeat(10)
    );
    let (status, body) = app.gql(k, &deep, json!({})).await;
    assert_eq!((status, code(&body)), (200, "GRAPHQL_VALIDATION_FAILED"), "{body}");
    let aliases: String = (0..40).map(|i| format!("a{i}: __typename ")).collect();
    let (_, body) = app.gql(k, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
}

#[tokio::test]
async fn business_rule_violations_are_user_errors_and_write_nothing() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let k = &t.owner_key;
    let loc = app.location(k, "WH1").await;
    app.product(k, "tee", &["TEE-1"]).await;
    let adjust = "mutation($i: StockAdjustInput!) { stockAdjust(input: $i) { userErrors { field code } } }";
    let create =
        "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id } userErrors { field code } } }";
    let cases = [
        (
            adjust,
            json!({ "sku": "TEE-1", "locationId": loc, "delta": 0 }),
            "stockAdjust",
            "INVALID",
            json!(["input", "delta"]),
        ),
        (
            adjust,
            json!({ "sku": "NOPE", "locationId": loc, "delta": 1 }),
            "stockAdjust",
            "NOT_FOUND",
            json!(["input", "sku"]),
        ),
        (
            adjust,
            json!({ "sku": "TEE-1", "locationId": "gid://quartermaster/Location/not-a-uuid", "delta": 1 }),
            "stockAdjust",
            "NOT_FOUND",
            json!(["input", "locationId"]),
        ),
        (
            adjust,
            json!({ "sku": "TEE-1", "locationId": "garbage", "delta": 1 }),
            "stockAdjust",
            "NOT_FOUND",
            json!(["input", "locationId"]),
        ),
        (
            adjust,
            json!({ "sku": "TEE-1", "locationId": loc, "delta": 1, "idempotencyKey": "" }),
            "stockAdjust",
            "INVALID",
            json!(["input", "idempotencyKey"]),
        ),
        (
            create,
            json!({ "externalId": "o1", "lines": [{ "sku": "TEE-1", "quantity": 0 }] }),
            "orderCreate",
            "INVALID",
            json!(["input", "lines", "0", "quantity"]),
        ),
        (
            create,
            json!({ "externalId": "o1", "lines": [{ "sku": "TEE-1", "quantity": -3 }] }),
            "orderCreate",
            "INVALID",
            json!(["input", "lines", "0", "quantity"]),
        ),
        (create, json!({ "externalId": "o1", "lines": [] }), "orderCreate", "INVALID", json!(["input", "lines"])),
        (
            create,
            json!({ "externalId": "", "lines": [{ "sku": "TEE-1", "quantity": 1 }] }),
            "orderCreate",
            "INVALID",
            json!(["input", "externalId"]),
        ),
        (
            create,
            json!({ "externalId": "o1", "lines": [{ "sku": "NOPE", "quantity": 1 }] }),
            "orderCreate",
            "NOT_FOUND",
            json!(["input", "lines", "0", "sku"]),
        ),
        (
            create,
            json!({ "externalId": "o1", "locationId": "gid://quartermaster/Location/00000000-0000-0000-0000-000000000000", "lines": [{ "sku": "TEE-1", "quantity": 1 }] }),
            "orderCreate",
            "NOT_FOUND",
            json!(["input", "locationId"]),
        ),
    ];
    for (q, input, field, expected, path) in cases {
        let d = app.data(k, q, json!({ "i": input })).await;
        assert_eq!(d[field]["userErrors"][0]["code"], expected, "{input}: {d}");
        assert_eq!(d[field]["userErrors"][0]["field"], path, "{input}: {d}");
    }
    let upsert =
        "mutation($i: ProductUpsertInput!) { productUpsert(input: $i) { product { id } userErrors { field code } } }";
    let d = app
        .data(k, upsert, json!({ "i": { "handle": "bad", "title": "Bad", "variants": [{ "sku": "B 1", "title": "x", "price": "-1", "currencyCode": "usd" }] } }))
        .await;
    assert_eq!(d["productUpsert"]["userErrors"].as_array().map(Vec::len), Some(2), "{d}");
    let (status, body) = app
        .gql(k, upsert, json!({ "i": { "handle": "bad", "title": "Bad", "variants": [{ "sku": "B1", "title": "x", "price": "abc", "currencyCode": "USD" }] } }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    // Nothing of the above was written.
    let d = app
        .data(k, "{ orders(first: 5) { nodes { id } } stockMovements(first: 5) { nodes { id } } products(first: 5) { nodes { handle } } }", json!({}))
        .await;
    assert_eq!(
        d,
        json!({ "orders": { "nodes": [] }, "stockMovements": { "nodes": [] }, "products": { "nodes": [{ "handle": "tee" }] } })
    );
}
