//! Tenant isolation: another tenant's IDs answer exactly like missing ones, for every query and
//! mutation that takes an ID (enumerated from the schema, so a new one fails this test until it is
//! covered), and lists never include another tenant's rows.

use std::collections::{BTreeMap, BTreeSet};

use qm_api::db::TxMode;
use qm_api::db::entities::{Dec, purchase_order_line, replenishment_line, return_, transfer};
use qm_tests::{TestApp, TestTenant};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};
use uuid::Uuid;

/// Fields of `type <name>` and `input <name>` blocks in the SDL: field -> raw signature.
fn blocks(sdl: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_doc = false;
    for line in sdl.lines() {
        let l = line.trim();
        if l.starts_with("\"\"\"") {
            if !(l.len() > 3 && l.ends_with("\"\"\"")) {
                in_doc = !in_doc;
            }
            continue;
        }
        if in_doc || l.starts_with('"') {
            continue;
        }
        if let Some(rest) = l.strip_prefix("type ").or_else(|| l.strip_prefix("input ")) {
            current = rest.split_whitespace().next().map(str::to_owned);
            out.insert(current.clone().unwrap_or_default(), Vec::new());
        } else if l == "}" {
            current = None;
        } else if let Some(c) = &current {
            let name: String = l.chars().take_while(|ch| ch.is_alphanumeric() || *ch == '_').collect();
            if !name.is_empty() {
                out.get_mut(c).expect("block exists").push((name, l.to_owned()));
            }
        }
    }
    out
}

fn type_names(sig: &str) -> BTreeSet<String> {
    sig.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

fn takes_id(sig: &str, blocks: &BTreeMap<String, Vec<(String, String)>>, seen: &mut BTreeSet<String>) -> bool {
    // Only the argument list of a field counts (not its return type).
    let args = sig.split_once('(').map(|(_, a)| a.rsplit_once(')').map_or(a, |(a, _)| a)).unwrap_or("");
    let args = if sig.contains('(') {
        args.to_owned()
    } else {
        sig.split_once(':').map(|(_, t)| t.to_owned()).unwrap_or_default()
    };
    type_names(&args).into_iter().any(|t| {
        t == "ID"
            || (t.ends_with("Input")
                && seen.insert(t.clone())
                && blocks.get(&t).is_some_and(|fields| {
                    fields
                        .iter()
                        .any(|(_, s)| takes_id(&format!("x: {}", s.split_once(':').map_or("", |x| x.1)), blocks, seen))
                }))
    })
}

/// Every Query and Mutation field that takes an ID somewhere in its arguments.
fn id_taking_fields() -> BTreeSet<String> {
    let sdl = qm_api::graphql::sdl();
    let b = blocks(&sdl);
    let mut out = BTreeSet::new();
    for root in ["Query", "Mutation"] {
        for (name, sig) in b.get(root).cloned().unwrap_or_default() {
            if takes_id(&sig, &b, &mut BTreeSet::new()) {
                out.insert(format!("{root}.{name}"));
            }
        }
    }
    out
}

struct World {
    a: TestTenant,
    b_owner: String,
    a_loc: String,
    /// B's IDs by GraphQL type.
    b: BTreeMap<&'static str, String>,
}

fn gid(kind: &str, id: Uuid) -> String {
    format!("gid://quartermaster/{kind}/{id}")
}

async fn world(app: &TestApp) -> World {
    let a = app.tenant("tenant-a").await;
    let b = app.tenant("tenant-b").await;
    let (ta, tb) = (a.owner_key.clone(), b.owner_key.clone());
    let a_loc = app.location(&ta, "A-WH").await;
    app.product(&ta, "a-shirt", &["A-SKU"]).await;
    app.stock(&ta, "A-SKU", &a_loc, 20).await;

    let mut ids = BTreeMap::new();
    let b_loc = app.location(&tb, "B-WH").await;
    let b_prod = app.product(&tb, "b-shirt", &["B-SKU"]).await;
    app.stock(&tb, "B-SKU", &b_loc, 30).await;
    let d = app
        .data(&tb, "{ variantBySku(sku: \"B-SKU\") { id } stockMovements(first: 1) { nodes { id } } }", json!({}))
        .await;
    ids.insert("Variant", d["variantBySku"]["id"].as_str().expect("variant").to_owned());
    ids.insert("StockMovement", d["stockMovements"]["nodes"][0]["id"].as_str().expect("movement").to_owned());
    let d = app
        .data(&tb, "mutation { supplierUpsert(input: { name: \"B Supply\", leadTimeMeanDays: \"7\", leadTimeStdDevDays: \"2\", currencyCode: \"USD\" }) { supplier { id } } }", json!({}))
        .await;
    let b_sup = d["supplierUpsert"]["supplier"]["id"].as_str().expect("supplier").to_owned();
    let mk_order = |ext: &str| json!({ "i": { "externalId": ext, "lines": [{ "sku": "B-SKU", "quantity": 1 }] } });
    let create = "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id } userErrors { message } } }";
    let d = app.data(&tb, create, mk_order("B-1")).await;
    let b_order = d["orderCreate"]["order"]["id"].as_str().expect("order").to_owned();
    let d = app.data(&tb, create, mk_order("B-2")).await;
    let shipped = d["orderCreate"]["order"]["id"].as_str().expect("order").to_owned();
    let d = app
        .data(
            &tb,
            "mutation($id: ID!) { orderFulfill(input: { id: $id }) { shipment { id } } }",
            json!({ "id": shipped }),
        )
        .await;
    ids.insert("Shipment", d["orderFulfill"]["shipment"]["id"].as_str().expect("shipment").to_owned());
    let d = app
        .data(
            &tb,
            "mutation { userInvite(input: { email: \"ann@b.example\", roles: [VIEWER] }) { user { id } } }",
            json!({}),
        )
        .await;
    ids.insert("User", d["userInvite"]["user"]["id"].as_str().expect("user").to_owned());
    let d = app
        .data(&tb, "mutation { apiKeyCreate(input: { name: \"k\", roles: [VIEWER] }) { apiKey { id } } }", json!({}))
        .await;
    ids.insert("ApiKey", d["apiKeyCreate"]["apiKey"]["id"].as_str().expect("key").to_owned());
    let d = app
        .data(
            &tb,
            "mutation { webhookEndpointCreate(input: { url: \"http://127.0.0.1:9/hook\" }) { endpoint { id } } }",
            json!({}),
        )
        .await;
    let b_ep = d["webhookEndpointCreate"]["endpoint"]["id"].as_str().expect("endpoint").to_owned();
    let d = app
        .data(
            &tb,
            "mutation($e: ID!) { webhookTestSend(input: { endpointId: $e }) { message { id } } }",
            json!({ "e": b_ep }),
        )
        .await;
    ids.insert("WebhookMessage", d["webhookTestSend"]["message"]["id"].as_str().expect("message").to_owned());
    ids.insert("WebhookEndpoint", b_ep);
    // Purchase orders and returns have no mutation yet: write them through the service layer.
    let s = app.state.db.scoped(b.id, TxMode::Write).await.expect("tx");
    let now = chrono::Utc::now();
    let ret = Uuid::now_v7();
    let parse = qm_tests::uuid_of;
    let po_gid = app.purchase_order(&s, "PO-1", &b_sup, &b_loc).await;
    return_::Entity::insert(return_::ActiveModel {
        tenant_id: Set(b.id),
        id: Set(ret),
        order_id: Set(parse(&shipped)),
        status: Set("requested".into()),
        reason: Set("too small".into()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&s.tx)
    .await
    .expect("return");
    s.commit().await.expect("commit");
    // A stock rule of B's that fires once.
    let d = app
        .data(
            &tb,
            "mutation { alertRuleUpsert(input: { name: \"low\", kind: STOCK_BELOW, threshold: 27, recipientRoles: [OWNER] }) { alertRule { id } userErrors { message } } }",
            json!({}),
        )
        .await;
    ids.insert("AlertRule", d["alertRuleUpsert"]["alertRule"]["id"].as_str().expect("rule").to_owned());
    app.stock(&tb, "B-SKU", &b_loc, -1).await;
    let d = app.data(&tb, "{ alerts(first: 5) { nodes { id } } }", json!({})).await;
    ids.insert("Alert", d["alerts"]["nodes"][0]["id"].as_str().expect("B's alert fired").to_owned());
    // B's allocation and returns policies, a graded return of its shipped order, and its plan.
    let d = app
        .data(
            &tb,
            "mutation { allocationPolicyUpsert(input: { splitCost: \"3\" }) { allocationPolicy { id } } returnsPolicyUpsert(input: { holdCost: \"2\" }) { returnsPolicy { id } } }",
            json!({}),
        )
        .await;
    assert!(d["allocationPolicyUpsert"]["allocationPolicy"]["id"].is_string(), "{d}");
    let d = app
        .data(
            &tb,
            "mutation($o: ID!) { returnCreate(input: { orderId: $o, reason: \"b\", lines: [{ sku: \"B-SKU\", quantity: 1, grade: A }] }) { return { id lines { id } } userErrors { message } } }",
            json!({ "o": shipped }),
        )
        .await;
    assert!(d["returnCreate"]["return"]["id"].is_string(), "{d}");
    ids.insert(
        "ReturnLine",
        d["returnCreate"]["return"]["lines"][0]["id"].as_str().expect("B's return line").to_owned(),
    );
    let d = app.data(&tb, "mutation { returnsPlanRun { returnsRun { id } dispositions { id } } }", json!({})).await;
    ids.insert("ReturnsRun", d["returnsPlanRun"]["returnsRun"]["id"].as_str().expect("returns run").to_owned());
    ids.insert(
        "ReturnDisposition",
        d["returnsPlanRun"]["dispositions"][0]["id"].as_str().expect("B's disposition").to_owned(),
    );
    // B's forecast (of a SKU without demand history yet) exists too.
    let d = app
        .data(&tb, "mutation { forecastRun(input: {}) { forecastRun { id } userErrors { message } } }", json!({}))
        .await;
    assert!(d["forecastRun"]["forecastRun"]["id"].is_string(), "{d}");
    app.drain_jobs().await;
    // B's replenishment run, a line of it, a transfer and a purchase order line.
    let d = app.data(&tb, "mutation { replenishmentRun { replenishmentRun { id } } }", json!({})).await;
    let b_run = d["replenishmentRun"]["replenishmentRun"]["id"].as_str().expect("run").to_owned();
    app.drain_jobs().await;
    let s = app.state.db.scoped(b.id, TxMode::Write).await.expect("tx");
    let (line, transfer, po_line) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let variant = parse(&ids["Variant"]);
    replenishment_line::Entity::insert(replenishment_line::ActiveModel::from(replenishment_line::Model {
        tenant_id: b.id,
        id: line,
        run_id: parse(&b_run),
        kind: "buy".into(),
        variant_id: variant,
        sku: "B-SKU".into(),
        location_id: parse(&b_loc),
        supplier_id: Some(parse(&b_sup)),
        from_location_id: None,
        quantity: 5,
        unit_cost: Dec(rust_decimal::Decimal::ONE),
        cost: Dec(rust_decimal::Decimal::from(5)),
        currency: "USD".into(),
        expected_service_level: 0.95,
        reason: "test".into(),
        explanation: json!({}),
        status: "proposed".into(),
        purchase_order_id: None,
        transfer_id: None,
        approved_at: None,
        created_at: now,
    }))
    .exec_without_returning(&s.tx)
    .await
    .expect("line");
    transfer::Entity::insert(transfer::ActiveModel::from(transfer::Model {
        tenant_id: b.id,
        id: transfer,
        variant_id: variant,
        from_location_id: parse(&b_loc),
        to_location_id: parse(&b_loc),
        quantity: 1,
        status: "draft".into(),
        idempotency_key: None,
        created_at: now,
        shipped_at: None,
        received_at: None,
        status_reason: None,
        replenishment_run_id: None,
    }))
    .exec_without_returning(&s.tx)
    .await
    .expect("transfer");
    purchase_order_line::Entity::insert(purchase_order_line::ActiveModel::from(purchase_order_line::Model {
        tenant_id: b.id,
        id: po_line,
        purchase_order_id: parse(&po_gid),
        variant_id: variant,
        quantity: 3,
        received_quantity: 0,
        unit_cost: Dec(rust_decimal::Decimal::ONE),
    }))
    .exec_without_returning(&s.tx)
    .await
    .expect("po line");
    let connector_id = Uuid::now_v7();
    qm_api::db::entities::connector::Entity::insert(qm_api::db::entities::connector::ActiveModel::from(
        qm_api::db::entities::connector::Model {
            tenant_id: b.id,
            id: connector_id,
            kind: "shopify".into(),
            status: "active".into(),
            external_account: "b-shop.myshopify.com".into(),
            settings: json!({ "apiVersion": "2026-01", "baseUrl": null, "locationMapping": [] }),
            credentials: String::new(),
            status_reason: None,
            throttle: None,
            created_at: now,
            updated_at: now,
        },
    ))
    .exec_without_returning(&s.tx)
    .await
    .expect("connector");
    let sync_run = Uuid::now_v7();
    qm_api::db::entities::sync_run::Entity::insert(qm_api::db::entities::sync_run::ActiveModel::from(
        qm_api::db::entities::sync_run::Model {
            tenant_id: b.id,
            id: sync_run,
            connector_id,
            resources: json!(["catalog"]),
            full_sync: true,
            trigger: "manual".into(),
            status: "completed".into(),
            position: json!({}),
            counts: json!({ "catalog": { "applied": 1, "unchanged": 0, "problems": 1 } }),
            problems: json!([{ "resource": "catalog", "externalId": "gid://shopify/ProductVariant/1", "message": "b-shirt" }]),
            problem_count: 1,
            error: None,
            created_at: now,
            started_at: Some(now),
            finished_at: Some(now),
        },
    ))
    .exec_without_returning(&s.tx)
    .await
    .expect("sync run");
    // A ready route plan with one route and one stop.
    use qm_api::db::entities::{route_plan, route_plan_route, route_plan_stop};
    let (plan, route) = (Uuid::now_v7(), Uuid::now_v7());
    route_plan::Entity::insert(route_plan::ActiveModel::from(route_plan::Model {
        tenant_id: b.id,
        id: plan,
        location_id: parse(&b_loc),
        date: now.date_naive(),
        status: "ready".into(),
        request: json!({}),
        base_plan_id: None,
        changes: None,
        matrix_source: Some("haversine".into()),
        distance_m: 1000.0,
        duration_s: 600.0,
        co2_kg: 0.2,
        cost: Some(Dec(rust_decimal::Decimal::ONE)),
        routes_total: 1,
        unassigned_total: 0,
        error: None,
        requested_by: "b".into(),
        created_at: now,
        started_at: Some(now),
        finished_at: Some(now),
    }))
    .exec_without_returning(&s.tx)
    .await
    .expect("route plan");
    route_plan_route::Entity::insert(route_plan_route::ActiveModel::from(route_plan_route::Model {
        tenant_id: b.id,
        id: route,
        plan_id: plan,
        seq: 0,
        vehicle: "B-VAN".into(),
        status: "planned".into(),
        capacity: 10,
        load: 1,
        departure_at: now,
        return_at: now,
        distance_m: 1000.0,
        duration_s: 600.0,
        driving_s: 300.0,
        co2_kg: 0.2,
        cost: Dec(rust_decimal::Decimal::ONE),
    }))
    .exec_without_returning(&s.tx)
    .await
    .expect("route");
    route_plan_stop::Entity::insert(route_plan_stop::ActiveModel::from(route_plan_stop::Model {
        tenant_id: b.id,
        id: Uuid::now_v7(),
        plan_id: plan,
        route_id: Some(route),
        seq: 1,
        order_id: parse(&b_order),
        shipment_id: None,
        latitude: Some(40.71),
        longitude: Some(-74.01),
        demand: 1,
        arrival_at: Some(now),
        service_start_at: Some(now),
        departure_at: Some(now),
        travel_distance_m: Some(500.0),
        travel_duration_s: Some(150.0),
        reason: None,
        message: None,
    }))
    .exec_without_returning(&s.tx)
    .await
    .expect("stop");
    // A completed pricing run with one proposed recommendation.
    use qm_api::db::entities::{price_recommendation, pricing_run};
    let (pricing, recommendation) = (Uuid::now_v7(), Uuid::now_v7());
    pricing_run::Entity::insert(pricing_run::ActiveModel::from(pricing_run::Model {
        tenant_id: b.id,
        id: pricing,
        status: "completed".into(),
        requested_by: "b".into(),
        forecast_run_id: None,
        horizon_days: 28,
        skus_total: 1,
        proposed_total: 1,
        held_total: 0,
        error: None,
        created_at: now,
        started_at: Some(now),
        finished_at: Some(now),
    }))
    .exec_without_returning(&s.tx)
    .await
    .expect("pricing run");
    price_recommendation::Entity::insert(price_recommendation::ActiveModel::from(price_recommendation::Model {
        tenant_id: b.id,
        id: recommendation,
        run_id: pricing,
        variant_id: parse(&ids["Variant"]),
        sku: "B-SKU".into(),
        status: "proposed".into(),
        current_price: Dec(rust_decimal::Decimal::new(10, 0)),
        recommended_price: Dec(rust_decimal::Decimal::new(11, 0)),
        currency: "USD".into(),
        unit_cost: Some(Dec(rust_decimal::Decimal::new(5, 0))),
        elasticity: Some(-2.0),
        elasticity_se: Some(0.2),
        confidence: "high".into(),
        expected_units_current: 10.0,
        expected_units_recommended: 9.0,
        expected_profit_current: Dec(rust_decimal::Decimal::new(50, 0)),
        expected_profit_recommended: Dec(rust_decimal::Decimal::new(54, 0)),
        binding: "max_change_per_step".into(),
        reason: "b".into(),
        explanation: json!({}),
        decided_by: None,
        decided_at: None,
        created_at: now,
    }))
    .exec_without_returning(&s.tx)
    .await
    .expect("price recommendation");
    // A contract of B's supplier (version 1 proposed) with one ledger event.
    use qm_api::db::entities::{contract, contract_event, contract_version};
    let contract_id = Uuid::now_v7();
    contract::Entity::insert(contract::ActiveModel::from(contract::Model {
        tenant_id: b.id,
        id: contract_id,
        supplier_id: parse(&b_sup),
        name: "B-CONTRACT".into(),
        status: "proposed".into(),
        active_version: None,
        created_at: now,
        updated_at: now,
    }))
    .exec_without_returning(&s.tx)
    .await
    .expect("contract");
    contract_version::Entity::insert(contract_version::ActiveModel::from(contract_version::Model {
        tenant_id: b.id,
        contract_id,
        version: 1,
        document: "{}".into(),
        status: "proposed".into(),
        created_by: "b".into(),
        created_at: now,
        accepted_by: None,
        accepted_at: None,
        activated_at: None,
    }))
    .exec_without_returning(&s.tx)
    .await
    .expect("contract version");
    contract_event::Entity::insert(contract_event::ActiveModel::from(contract_event::Model {
        tenant_id: b.id,
        seq: 1,
        id: Uuid::now_v7(),
        contract_id,
        kind: "created".into(),
        occurred_at_micros: now.timestamp_micros(),
        data: "{\"name\":\"B-CONTRACT\"}".into(),
        prev_hash: "0".repeat(64),
        hash: "1".repeat(64),
    }))
    .exec_without_returning(&s.tx)
    .await
    .expect("contract event");
    s.commit().await.expect("commit");
    ids.insert("Contract", gid("Contract", contract_id));
    ids.insert("PricingRun", gid("PricingRun", pricing));
    ids.insert("PriceRecommendation", gid("PriceRecommendation", recommendation));
    ids.insert("RoutePlan", gid("RoutePlan", plan));
    ids.insert("RoutePlanRoute", gid("RoutePlanRoute", route));
    ids.insert("Connector", gid("Connector", connector_id));
    ids.insert("SyncRun", gid("SyncRun", sync_run));
    ids.insert("ReplenishmentRun", b_run);
    ids.insert("ReplenishmentLine", gid("ReplenishmentLine", line));
    ids.insert("Transfer", gid("Transfer", transfer));
    ids.insert("PurchaseOrderLine", gid("PurchaseOrderLine", po_line));
    ids.insert("PurchaseOrder", po_gid);
    ids.insert("Return", gid("Return", ret));
    ids.insert("Location", b_loc);
    ids.insert("Product", b_prod);
    ids.insert("Supplier", b_sup);
    ids.insert("Order", b_order);
    World { a, b_owner: b.owner_key.clone(), a_loc, b: ids }
}

/// A request for one ID-taking field, given the ID to put where the ID goes.
struct Probe {
    query: &'static str,
    vars: fn(&World, &str) -> Value,
    kind: &'static str,
}

fn probes() -> BTreeMap<&'static str, Vec<Probe>> {
    let mut m: BTreeMap<&'static str, Vec<Probe>> = BTreeMap::new();
    let node = "query($id: ID!) { node(id: $id) { id } }";
    for kind in [
        "Location",
        "Product",
        "Variant",
        "Supplier",
        "StockMovement",
        "Order",
        "Shipment",
        "Return",
        "PurchaseOrder",
        "User",
        "ApiKey",
        "ReplenishmentRun",
        "ReplenishmentLine",
        "Transfer",
        "Connector",
        "SyncRun",
        "PricingRun",
        "PriceRecommendation",
        "Contract",
        "ReturnsRun",
        "ReturnDisposition",
    ] {
        m.entry("Query.node").or_default().push(Probe { query: node, vars: |_, id| json!({ "id": id }), kind });
    }
    m.entry("Query.nodes").or_default().push(Probe {
        query: "query($id: ID!) { nodes(ids: [$id, $id]) { id } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Order",
    });
    m.entry("Query.variant").or_default().push(Probe {
        query: "query($id: ID!) { variant(id: $id) { id sku } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Variant",
    });
    m.entry("Query.stockLevels").or_default().push(Probe {
        query: "query($id: ID!) { stockLevels(locationId: $id, first: 10) { nodes { onHand } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Query.stockMovements").or_default().push(Probe {
        query: "query($id: ID!) { stockMovements(variantId: $id, first: 10) { nodes { seq } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Variant",
    });
    m.entry("Query.stockMovements").or_default().push(Probe {
        query: "query($id: ID!) { stockMovements(locationId: $id, first: 10) { nodes { seq } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.locationUpsert").or_default().push(Probe {
        query: "mutation($id: ID!) { locationUpsert(input: { id: $id, code: \"HIJACK\", name: \"x\", kind: STORE }) { location { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.productUpsert").or_default().push(Probe {
        query: "mutation($id: ID!) { productUpsert(input: { id: $id, handle: \"hijack\", title: \"x\", variants: [] }) { product { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Product",
    });
    m.entry("Mutation.supplierUpsert").or_default().push(Probe {
        query: "mutation($id: ID!) { supplierUpsert(input: { id: $id, name: \"hijack\", leadTimeMeanDays: \"1\", leadTimeStdDevDays: \"1\", currencyCode: \"USD\" }) { supplier { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Supplier",
    });
    m.entry("Mutation.stockAdjust").or_default().push(Probe {
        query: "mutation($id: ID!) { stockAdjust(input: { sku: \"A-SKU\", locationId: $id, delta: 5 }) { stockLevel { onHand } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.stockCount").or_default().push(Probe {
        query: "mutation($id: ID!) { stockCount(input: { sku: \"A-SKU\", locationId: $id, onHand: 5 }) { stockLevel { onHand } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.replenishmentLaneCostSet").or_default().push(Probe {
        query: "mutation($a: ID!, $id: ID!) { replenishmentLaneCostSet(input: { fromLocationId: $a, toLocationId: $id, unitCost: \"1\" }) { replenishmentSettings { laneCosts { unitCost } } userErrors { field code } } }",
        vars: |w, id| json!({ "a": w.a_loc, "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.replenishmentLaneCostSet").or_default().push(Probe {
        query: "mutation($a: ID!, $id: ID!) { replenishmentLaneCostSet(input: { fromLocationId: $id, toLocationId: $a, unitCost: \"1\" }) { replenishmentSettings { laneCosts { unitCost } } userErrors { field code } } }",
        vars: |w, id| json!({ "a": w.a_loc, "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.stockTransfer").or_default().push(Probe {
        query: "mutation($from: ID!, $to: ID!) { stockTransfer(input: { sku: \"A-SKU\", fromLocationId: $from, toLocationId: $to, quantity: 1 }) { transferId userErrors { field code } } }",
        vars: |w, id| json!({ "from": w.a_loc, "to": id }),
        kind: "Location",
    });
    m.entry("Mutation.stockTransfer").or_default().push(Probe {
        query: "mutation($from: ID!, $to: ID!) { stockTransfer(input: { sku: \"A-SKU\", fromLocationId: $from, toLocationId: $to, quantity: 1 }) { transferId userErrors { field code } } }",
        vars: |w, id| json!({ "from": id, "to": w.a_loc }),
        kind: "Location",
    });
    m.entry("Mutation.orderCreate").or_default().push(Probe {
        query: "mutation($id: ID!) { orderCreate(input: { externalId: \"X-1\", locationId: $id, lines: [{ sku: \"A-SKU\", quantity: 1 }] }) { order { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.orderCancel").or_default().push(Probe {
        query: "mutation($id: ID!) { orderCancel(input: { id: $id }) { order { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Order",
    });
    m.entry("Mutation.orderFulfill").or_default().push(Probe {
        query: "mutation($id: ID!) { orderFulfill(input: { id: $id }) { order { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Order",
    });
    m.entry("Mutation.apiKeyRevoke").or_default().push(Probe {
        query: "mutation($id: ID!) { apiKeyRevoke(input: { id: $id }) { apiKey { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "ApiKey",
    });
    m.entry("Query.webhookDeliveries").or_default().push(Probe {
        query: "query($id: ID!) { webhookDeliveries(endpointId: $id, first: 10) { nodes { id } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "WebhookEndpoint",
    });
    for (field, query) in [
        (
            "Mutation.webhookEndpointUpdate",
            "mutation($id: ID!) { webhookEndpointUpdate(input: { id: $id, description: \"x\" }) { endpoint { id } userErrors { field code } } }",
        ),
        (
            "Mutation.webhookSecretRotate",
            "mutation($id: ID!) { webhookSecretRotate(input: { id: $id }) { secret userErrors { field code } } }",
        ),
        (
            "Mutation.webhookEndpointDisable",
            "mutation($id: ID!) { webhookEndpointDisable(input: { id: $id }) { endpoint { id } userErrors { field code } } }",
        ),
        (
            "Mutation.webhookEndpointDelete",
            "mutation($id: ID!) { webhookEndpointDelete(input: { id: $id }) { deletedId userErrors { field code } } }",
        ),
        (
            "Mutation.webhookTestSend",
            "mutation($id: ID!) { webhookTestSend(input: { endpointId: $id }) { message { id } userErrors { field code } } }",
        ),
        (
            "Mutation.webhookEndpointRecover",
            "mutation($id: ID!) { webhookEndpointRecover(input: { endpointId: $id, since: \"2020-01-01T00:00:00Z\" }) { resent userErrors { field code } } }",
        ),
    ] {
        m.entry(field).or_default().push(Probe { query, vars: |_, id| json!({ "id": id }), kind: "WebhookEndpoint" });
    }
    m.entry("Mutation.webhookMessageResend").or_default().push(Probe {
        query: "mutation($id: ID!) { webhookMessageResend(input: { id: $id }) { message { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "WebhookMessage",
    });
    m.entry("Mutation.alertRuleUpsert").or_default().push(Probe {
        query: "mutation($id: ID!) { alertRuleUpsert(input: { id: $id, name: \"x\", kind: STOCK_BELOW, threshold: 1, recipientRoles: [OWNER] }) { alertRule { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "AlertRule",
    });
    m.entry("Mutation.alertRuleUpsert").or_default().push(Probe {
        query: "mutation($id: ID!) { alertRuleUpsert(input: { name: \"x\", kind: STOCK_BELOW, threshold: 1, locationId: $id, recipientRoles: [OWNER] }) { alertRule { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.alertAcknowledge").or_default().push(Probe {
        query: "mutation($id: ID!) { alertAcknowledge(input: { id: $id }) { alert { id status } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Alert",
    });
    m.entry("Query.forecast").or_default().push(Probe {
        query: "query($id: ID!) { forecast(sku: \"A-SKU\", locationId: $id) { model } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.forecastRun").or_default().push(Probe {
        query: "mutation($id: ID!) { forecastRun(input: { sku: \"A-SKU\", locationId: $id }) { forecast { model } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.forecastOverrideSet").or_default().push(Probe {
        query: "mutation($id: ID!) { forecastOverrideSet(input: { sku: \"A-SKU\", locationId: $id, date: \"2030-01-01\", quantity: 5 }) { forecastOverride { quantity } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Query.replenishmentPlan").or_default().push(Probe {
        query: "query($id: ID!) { replenishmentPlan(runId: $id) { id lines { id } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "ReplenishmentRun",
    });
    for (query, kind) in [
        ("query($id: ID!) { replenishmentLines(runId: $id, first: 10) { nodes { id } } }", "ReplenishmentRun"),
        ("query($id: ID!) { replenishmentLines(supplierId: $id, first: 10) { nodes { id } } }", "Supplier"),
        ("query($id: ID!) { replenishmentLines(locationId: $id, first: 10) { nodes { id } } }", "Location"),
    ] {
        m.entry("Query.replenishmentLines").or_default().push(Probe { query, vars: |_, id| json!({ "id": id }), kind });
    }
    for (query, kind) in [
        ("query($id: ID!) { purchaseOrders(supplierId: $id, first: 10) { nodes { id } } }", "Supplier"),
        ("query($id: ID!) { purchaseOrders(locationId: $id, first: 10) { nodes { id } } }", "Location"),
    ] {
        m.entry("Query.purchaseOrders").or_default().push(Probe { query, vars: |_, id| json!({ "id": id }), kind });
    }
    for (query, kind) in [
        ("query($id: ID!) { transfers(fromLocationId: $id, first: 10) { nodes { id } } }", "Location"),
        ("query($id: ID!) { transfers(toLocationId: $id, first: 10) { nodes { id } } }", "Location"),
    ] {
        m.entry("Query.transfers").or_default().push(Probe { query, vars: |_, id| json!({ "id": id }), kind });
    }
    m.entry("Query.transfer").or_default().push(Probe {
        query: "query($id: ID!) { transfer(id: $id) { id status } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Transfer",
    });
    m.entry("Mutation.replenishmentPlanApprove").or_default().push(Probe {
        query: "mutation($id: ID!) { replenishmentPlanApprove(input: { runId: $id }) { purchaseOrders { id } transfers { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "ReplenishmentRun",
    });
    m.entry("Mutation.purchaseOrderIssue").or_default().push(Probe {
        query: "mutation($id: ID!) { purchaseOrderIssue(input: { id: $id }) { purchaseOrder { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "PurchaseOrder",
    });
    m.entry("Mutation.purchaseOrderCancel").or_default().push(Probe {
        query: "mutation($id: ID!) { purchaseOrderCancel(input: { id: $id, reason: \"probe\" }) { purchaseOrder { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "PurchaseOrder",
    });
    m.entry("Mutation.purchaseOrderReceive").or_default().push(Probe {
        query: "mutation($id: ID!) { purchaseOrderReceive(input: { purchaseOrderId: $id, lines: [{ lineId: $id, quantity: 1 }] }) { purchaseOrder { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "PurchaseOrder",
    });
    m.entry("Mutation.transferShip").or_default().push(Probe {
        query: "mutation($id: ID!) { transferShip(input: { id: $id }) { transfer { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Transfer",
    });
    m.entry("Mutation.transferCancel").or_default().push(Probe {
        query: "mutation($id: ID!) { transferCancel(input: { id: $id, reason: \"probe\" }) { transfer { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Transfer",
    });
    m.entry("Mutation.transferReceive").or_default().push(Probe {
        query: "mutation($id: ID!) { transferReceive(input: { id: $id }) { transfer { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Transfer",
    });
    m.entry("Mutation.connectorInstall").or_default().push(Probe {
        query: "mutation($id: ID!) { connectorInstall(input: { kind: SHOPIFY, config: { shopDomain: \"a-shop.myshopify.com\", accessToken: \"t\", apiVersion: \"2026-01\", webhookSecret: \"s\", locationMapping: [{ shopifyLocationId: \"gid://shopify/Location/1\", locationId: $id }] } }) { connector { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.connectorInstall").or_default().push(Probe {
        query: "mutation($id: ID!) { connectorInstall(input: { kind: NETSUITE, netsuite: { accountId: \"1234567\", consumerKey: \"k\", consumerSecret: \"s\", tokenId: \"t\", tokenSecret: \"u\", webhookSecret: \"w\", timeZone: \"UTC\", currency: \"USD\", locationMapping: [{ netsuiteLocationId: \"1\", locationId: $id }] } }) { connector { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.connectorInstall").or_default().push(Probe {
        query: "mutation($id: ID!) { connectorInstall(input: { kind: SHIPBOB, shipbob: { accessToken: \"p\", webhookSecret: \"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\", channelId: \"77\", locationMapping: [{ shipbobLocationId: \"10\", locationId: $id }] } }) { connector { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.connectorInstall").or_default().push(Probe {
        query: "mutation($id: ID!) { connectorInstall(input: { kind: SHIPSTATION, shipstation: { apiKey: \"k\", apiSecret: \"s\", webhookToken: \"0123456789abcdef0123456789\", locationMapping: [{ shipstationWarehouseId: \"17977\", locationId: $id }] } }) { connector { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.connectorUpdate").or_default().push(Probe {
        query: "mutation($id: ID!) { connectorUpdate(input: { id: $id, config: { apiVersion: \"2026-04\" } }) { connector { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Connector",
    });
    for (field, query) in [
        (
            "Mutation.connectorPause",
            "mutation($id: ID!) { connectorPause(input: { id: $id }) { connector { id } userErrors { field code } } }",
        ),
        (
            "Mutation.connectorResume",
            "mutation($id: ID!) { connectorResume(input: { id: $id }) { connector { id } userErrors { field code } } }",
        ),
        (
            "Mutation.connectorUninstall",
            "mutation($id: ID!) { connectorUninstall(input: { id: $id }) { connector { id } userErrors { field code } } }",
        ),
    ] {
        m.entry(field).or_default().push(Probe { query, vars: |_, id| json!({ "id": id }), kind: "Connector" });
    }
    m.entry("Mutation.syncRun").or_default().push(Probe {
        query: "mutation($id: ID!) { syncRun(input: { connectorId: $id }) { syncRun { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Connector",
    });
    m.entry("Query.syncRuns").or_default().push(Probe {
        query: "query($id: ID!) { syncRuns(connectorId: $id, first: 10) { nodes { id } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Connector",
    });
    m.entry("Query.routePlan").or_default().push(Probe {
        query: "query($id: ID!) { routePlan(id: $id) { id routes { id } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "RoutePlan",
    });
    m.entry("Query.routePlans").or_default().push(Probe {
        query: "query($id: ID!) { routePlans(locationId: $id, first: 10) { nodes { id } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.routePlanRun").or_default().push(Probe {
        query: "mutation($id: ID!) { routePlanRun(input: { locationId: $id, date: \"2026-12-07\", vehicles: [{ name: \"v\", capacity: 5 }] }) { routePlan { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.routePlanRun").or_default().push(Probe {
        query: "mutation($l: ID!, $id: ID!) { routePlanRun(input: { locationId: $l, date: \"2026-12-07\", vehicles: [{ name: \"v\", capacity: 5 }], shipmentIds: [$id] }) { routePlan { id } userErrors { field code } } }",
        vars: |w, id| json!({ "l": w.a_loc, "id": id }),
        kind: "Shipment",
    });
    m.entry("Mutation.routePlanReoptimise").or_default().push(Probe {
        query: "mutation($id: ID!) { routePlanReoptimise(id: $id, changes: {}) { routePlan { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "RoutePlan",
    });
    m.entry("Mutation.allocationPolicyUpsert").or_default().push(Probe {
        query: "mutation($id: ID!) { allocationPolicyUpsert(input: { locationId: $id, splitCost: \"1\" }) { allocationPolicy { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.allocationPolicyUpsert").or_default().push(Probe {
        query: "mutation($id: ID!) { allocationPolicyUpsert(input: { pinnedLocationId: $id }) { allocationPolicy { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.returnsPolicyUpsert").or_default().push(Probe {
        query: "mutation($id: ID!) { returnsPolicyUpsert(input: { locationId: $id, capacity: 3 }) { returnsPolicy { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Location",
    });
    m.entry("Mutation.orderAllocate").or_default().push(Probe {
        query: "mutation($id: ID!) { orderAllocate(input: { orderIds: [$id] }) { allocations { cost } reallocated userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Order",
    });
    m.entry("Mutation.returnCreate").or_default().push(Probe {
        query: "mutation($id: ID!) { returnCreate(input: { orderId: $id, reason: \"x\", lines: [{ sku: \"A-SKU\", quantity: 1, grade: A }] }) { return { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Order",
    });
    m.entry("Mutation.returnGrade").or_default().push(Probe {
        query: "mutation($id: ID!) { returnGrade(input: { lines: [{ id: $id, grade: D }] }) { returnLines { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "ReturnLine",
    });
    m.entry("Query.returnDispositions").or_default().push(Probe {
        query: "query($id: ID!) { returnDispositions(runId: $id, first: 10) { nodes { id } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "ReturnsRun",
    });
    for (field, query) in [
        (
            "Mutation.returnDispositionApprove",
            "mutation($id: ID!) { returnDispositionApprove(input: { ids: [$id] }) { returnDispositions { id } userErrors { field code } } }",
        ),
        (
            "Mutation.returnDispositionReject",
            "mutation($id: ID!) { returnDispositionReject(input: { ids: [$id] }) { returnDispositions { id } userErrors { field code } } }",
        ),
    ] {
        m.entry(field).or_default().push(Probe { query, vars: |_, id| json!({ "id": id }), kind: "ReturnDisposition" });
    }
    m.entry("Query.priceRecommendations").or_default().push(Probe {
        query: "query($id: ID!) { priceRecommendations(runId: $id, first: 10) { nodes { id } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "PricingRun",
    });
    for (field, query) in [
        (
            "Mutation.priceRecommendationApprove",
            "mutation($id: ID!) { priceRecommendationApprove(input: { ids: [$id] }) { priceRecommendations { id } userErrors { field code } } }",
        ),
        (
            "Mutation.priceRecommendationReject",
            "mutation($id: ID!) { priceRecommendationReject(input: { ids: [$id] }) { priceRecommendations { id } userErrors { field code } } }",
        ),
    ] {
        m.entry(field).or_default().push(Probe {
            query,
            vars: |_, id| json!({ "id": id }),
            kind: "PriceRecommendation",
        });
    }
    for (field, query) in [
        ("Query.contract", "query($id: ID!) { contract(id: $id) { id name } }"),
        ("Query.contractVersions", "query($id: ID!) { contractVersions(contractId: $id) { version } }"),
        (
            "Query.contractEvents",
            "query($id: ID!) { contractEvents(contractId: $id, first: 10) { nodes { seq kind } } }",
        ),
        (
            "Mutation.contractAccept",
            "mutation($id: ID!) { contractAccept(input: { contractId: $id }) { contract { id } userErrors { field code } } }",
        ),
        (
            "Mutation.contractActivate",
            "mutation($id: ID!) { contractActivate(input: { contractId: $id }) { contract { id } userErrors { field code } } }",
        ),
        (
            "Mutation.contractCreate",
            "mutation($id: ID!) { contractCreate(input: { contractId: $id, document: {} }) { contract { id } userErrors { field code } } }",
        ),
    ] {
        m.entry(field).or_default().push(Probe { query, vars: |_, id| json!({ "id": id }), kind: "Contract" });
    }
    m.entry("Query.contractSimulate").or_default().push(Probe {
        query: "query($id: ID!) { contractSimulate(contractId: $id, from: \"2026-11-01\", to: \"2026-11-02\") { version } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Contract",
    });
    m.entry("Query.contracts").or_default().push(Probe {
        query: "query($id: ID!) { contracts(supplierId: $id, first: 10) { nodes { id } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Supplier",
    });
    m.entry("Mutation.contractCreate").or_default().push(Probe {
        query: "mutation($id: ID!) { contractCreate(input: { supplierId: $id, name: \"x\", document: { terms: { currency: \"USD\", items: [{ sku: \"A-SKU\", unit_price: \"1\" }], lead_time_days: 1, valid_from: \"2026-01-01\", valid_to: \"2027-01-01\" } } }) { contract { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Supplier",
    });
    m.entry("Mutation.webhookEndpointCreate").or_default().push(Probe {
        query: "mutation($id: ID!) { webhookEndpointCreate(input: { url: \"https://hooks.example.com/x\", supplierId: $id }) { endpoint { id } userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Supplier",
    });
    for (field, query) in [
        (
            "Mutation.purchaseOrderAcknowledge",
            "mutation($id: ID!) { purchaseOrderAcknowledge(input: { id: $id, promisedOn: \"2099-01-01\" }) { purchaseOrder { id } userErrors { field code } } }",
        ),
        (
            "Mutation.purchaseOrderReject",
            "mutation($id: ID!) { purchaseOrderReject(input: { id: $id, reason: \"no\" }) { purchaseOrder { id } userErrors { field code } } }",
        ),
        (
            "Mutation.shipmentNotify",
            "mutation($id: ID!) { shipmentNotify(input: { purchaseOrderId: $id, lines: [{ lineId: $id, quantity: 1 }], carrier: \"UPS\", trackingNumber: \"T\" }) { purchaseOrder { id } userErrors { field code } } }",
        ),
    ] {
        m.entry(field).or_default().push(Probe { query, vars: |_, id| json!({ "id": id }), kind: "PurchaseOrder" });
    }
    m.entry("Mutation.apiKeyCreate").or_default().push(Probe {
        query: "mutation($id: ID!) { apiKeyCreate(input: { name: \"s\", roles: [SUPPLIER], supplierId: $id }) { secret userErrors { field code } } }",
        vars: |_, id| json!({ "id": id }),
        kind: "Supplier",
    });
    m
}

#[tokio::test]
async fn every_id_taking_field_is_covered_by_an_isolation_probe() {
    let fields = id_taking_fields();
    assert!(fields.contains("Query.node") && fields.contains("Mutation.stockAdjust"), "{fields:?}");
    let covered: BTreeSet<String> = probes().keys().map(|k| (*k).to_owned()).collect();
    let missing: Vec<_> = fields.difference(&covered).collect();
    assert!(missing.is_empty(), "add isolation probes for: {missing:?}");
}

#[tokio::test]
async fn another_tenants_ids_answer_exactly_like_missing_ones() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let a = w.a.owner_key.clone();
    for (field, list) in probes() {
        for p in list {
            let foreign = w.b.get(p.kind).expect("B has one of each kind");
            let missing = gid(p.kind, Uuid::now_v7());
            let (s1, with_foreign) = app.gql(&a, p.query, (p.vars)(&w, foreign)).await;
            let (s2, with_missing) = app.gql(&a, p.query, (p.vars)(&w, &missing)).await;
            assert_eq!((s1, s2), (200, 200), "{field}: {with_foreign} / {with_missing}");
            assert!(with_foreign.get("errors").is_none(), "{field} ({}): {with_foreign}", p.kind);
            assert_eq!(with_foreign, with_missing, "{field} ({}) tells a foreign id from a missing one", p.kind);
            let text = with_foreign.to_string();
            let looks_missing = text.contains("NOT_FOUND") || text.contains("null") || text.contains("\"nodes\":[]");
            assert!(looks_missing, "{field} ({}): {text}", p.kind);
            let foreign_uuid = foreign.rsplit('/').next().expect("uuid");
            assert!(!text.contains(foreign_uuid), "{field} leaked the foreign id: {text}");
        }
    }
    // B's data is untouched by all of that.
    let b_key = app.data(&w.a.owner_key, "{ me { tenant { slug } } }", json!({})).await;
    assert_eq!(b_key["me"]["tenant"]["slug"], "tenant-a");
    let d = app
        .data(&w.b_owner, "{ locations(first: 5) { nodes { code } } orders(first: 5) { nodes { status } } }", json!({}))
        .await;
    assert_eq!(d["locations"]["nodes"], json!([{ "code": "B-WH" }]));
    assert_eq!(d["orders"]["nodes"], json!([{ "status": "RESERVED" }, { "status": "FULFILLED" }]));
}

#[tokio::test]
async fn lists_never_include_another_tenants_rows() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let a = w.a.owner_key.clone();
    let lists = [
        "{ locations(first: 250) { nodes { id } } }",
        "{ products(first: 50) { nodes { id variants { id stockLevels { location { id } } } } } }",
        "{ products(first: 250, query: \"shirt\") { nodes { id } } }",
        "{ suppliers(first: 250) { nodes { id } } }",
        "{ stockLevels(first: 250) { nodes { variant { id } location { id } } } }",
        "{ stockMovements(first: 250) { nodes { id } } }",
        "{ orders(first: 250) { nodes { id } } }",
        "{ shipments(first: 250) { nodes { id } } }",
        "{ returns(first: 250) { nodes { id } } }",
        "{ purchaseOrders(first: 250) { nodes { id } } }",
        "{ transfers(first: 250) { nodes { id variant { id } fromLocation { id } toLocation { id } } } }",
        "{ purchaseOrders(status: DRAFT, first: 250) { nodes { id supplier { id } location { id } } } }",
        "{ users(first: 250) { nodes { id email } } }",
        "{ apiKeys(first: 250) { nodes { id } } }",
        "{ alertRules(first: 250) { nodes { id } } }",
        "{ alerts(first: 250) { nodes { id ruleId } } }",
        "{ forecastRuns(first: 250) { nodes { id } } }",
        "{ replenishmentRuns(first: 250) { nodes { id lines { id } } } }",
        "{ replenishmentPlan { id } replenishmentSettings { skuTargets { sku } } }",
        "{ replenishmentLines(first: 250) { nodes { id sku supplier { id } location { id } fromLocation { id } } } }",
        "{ forecastAccuracy(groupBy: LOCATION) { key series } }",
        "{ forecastAccuracy(groupBy: SKU) { key series } }",
        "{ variantBySku(sku: \"B-SKU\") { id } }",
        "{ ledgerVerify { ok checked } }",
        "{ connectors { id locationMapping { location { id } } } }",
        "{ syncRuns(first: 250) { nodes { id problems { message } } } }",
        "{ connectors { syncState { resource } lastSyncRun { id } } }",
        "{ routePlans(first: 250) { nodes { id routes { id stops { orderId } } unassigned { orderId } } } }",
        "{ pricingRuns(first: 100) { nodes { id } } pricingPolicies { id variant { id } } }",
        "{ priceRecommendations(first: 100) { nodes { id sku variant { id } } } }",
        "{ priceRecommendations(status: PROPOSED, sku: \"B-SKU\", first: 100) { nodes { id } } }",
        "{ contracts(first: 100) { nodes { id name versions { version } } } }",
        "{ contractEvents(first: 100) { nodes { seq contractId data } } contractLedgerVerify { eventsChecked } }",
        "{ contractLedgerExport contractSigningKey { publicKey } }",
        "{ allocationPolicies { id location { id } pinnedLocation { id } } allocationKpis { orders } }",
        "{ orders(first: 250) { nodes { allocation { cost lines { lineId locationId } } } } }",
        "{ returnsPolicies { id location { id } } returnsRuns(first: 100) { nodes { id itemsTotal } } }",
        "{ returnDispositions(first: 100) { nodes { id sku returnId location { id } variant { id } } } }",
        "{ returnRates(groupBy: SKU) { key } c: returnRates(groupBy: REASON) { key } }",
    ];
    for q in lists {
        let d = app.data(&a, q, json!({})).await;
        let text = d.to_string();
        for (kind, id) in &w.b {
            let uuid = id.rsplit('/').next().expect("uuid");
            assert!(!text.contains(uuid), "{q} shows tenant B's {kind}: {text}");
        }
        assert!(!text.contains("B-SKU") && !text.contains("b-shirt"), "{q}: {text}");
    }
    // And A does see its own rows, so the lists above are not trivially empty.
    let d = app.data(&a, "{ products(first: 10) { nodes { handle } } ledgerVerify { checked } }", json!({})).await;
    assert_eq!(d["products"]["nodes"], json!([{ "handle": "a-shirt" }]));
    assert_eq!(d["ledgerVerify"]["checked"], 1);
}

#[tokio::test]
async fn row_level_security_hides_other_tenants_rows_from_raw_sql() {
    let app = TestApp::spawn().await;
    if !app.is_postgres() {
        return; // SQLite has no RLS; the repository filter is the wall there (tested above).
    }
    let w = world(&app).await;
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    // The server's own pool connects as the non-owner app role.
    let s = app.state.db.scoped(w.a.id, TxMode::Read).await.expect("tx");
    let mut seen_own = 0;
    for table in qm_api::db::TENANT_TABLES
        .iter()
        .chain(qm_api::db::JOB_TABLES)
        .chain(qm_api::db::ALERT_TABLES)
        .chain(qm_api::db::FORECAST_TABLES)
        .chain(qm_api::db::REPLENISHMENT_TABLES)
        .chain(qm_api::db::CONNECTOR_TABLES)
        .chain(qm_api::db::PLAN_TERMS_TABLES)
        .chain(qm_api::db::SYNC_TABLES)
        .chain(qm_api::db::ROUTE_PLAN_TABLES)
        .chain(qm_api::db::PRICING_TABLES)
        .chain(qm_api::db::CONTRACT_TABLES)
        .chain(qm_api::db::RETURNS_TABLES)
    {
        let rows =
            s.tx.query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT tenant_id::text AS t FROM {table}"),
            ))
            .await
            .expect("select");
        for r in rows {
            let t: String = r.try_get("", "t").expect("tenant id");
            assert_eq!(t, w.a.id.to_string(), "{table} shows another tenant's row");
            seen_own += 1;
        }
    }
    assert!(seen_own > 5, "tenant A sees its own rows");
    s.commit().await.expect("commit");
    // With no tenant set, nothing at all is visible: RLS fails closed.
    let rows = app
        .state
        .db
        .conn()
        .query_all_raw(Statement::from_string(DbBackend::Postgres, "SELECT * FROM variants".to_owned()))
        .await
        .expect("select");
    assert!(rows.is_empty());
    // And a write into another tenant is refused by WITH CHECK.
    let s = app.state.db.scoped(w.a.id, TxMode::Write).await.expect("tx");
    let b_tenant = app.tenant("tenant-d").await;
    let err =
        s.tx.execute_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("INSERT INTO ledger_heads (tenant_id, seq, hash) VALUES ('{}', 0, 'x')", b_tenant.id),
        ))
        .await;
    assert!(err.is_err(), "cross-tenant insert was accepted");
}
