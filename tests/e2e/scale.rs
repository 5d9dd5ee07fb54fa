//! PostgreSQL at scale: the schema is ready to distribute by tenant (Citus), and one tenant can be
//! dumped with pg_dump and restored into another database with `tools/tenant-backup`.

use std::process::Command;

use qm_tests::{TestApp, postgres_enabled};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};

/// Tables kept whole on every node (Citus reference tables) rather than split by tenant: the
/// tenants themselves, and API keys, which are found by their hash before the tenant is known.
const REFERENCE_TABLES: &[&str] = &["tenants", "api_keys"];

/// docs/operations.md's plan for Citus holds on the real schema: every table but the reference
/// tables and the migration log has `tenant_id`, and every primary key and unique index of those
/// includes it (Citus refuses a unique constraint without the distribution column); foreign keys
/// point at reference tables or join on `tenant_id` (colocated shards).
#[tokio::test]
async fn every_tenant_table_is_ready_to_distribute_by_tenant_id() {
    if !postgres_enabled("the distribution plan is PostgreSQL's") {
        return;
    }
    let app = TestApp::spawn().await;
    let rows = |sql: &str| {
        let db = app.owner_db.conn().clone();
        let sql = sql.to_owned();
        async move {
            db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
                .expect("catalog query")
                .into_iter()
                .map(|r| r.try_get_by_index::<String>(0).expect("text"))
                .collect::<Vec<_>>()
        }
    };
    let without_tenant = rows(
        "SELECT t.table_name::text FROM information_schema.tables t
         WHERE t.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
           AND NOT EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_schema = t.table_schema
                           AND c.table_name = t.table_name AND c.column_name = 'tenant_id')
         ORDER BY 1",
    )
    .await;
    assert_eq!(without_tenant, vec!["seaql_migrations", "tenants"]);
    let distributed = rows(
        "SELECT c.table_name::text FROM information_schema.columns c JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
         WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id' ORDER BY 1",
    )
    .await;
    assert!(distributed.len() > 50, "{distributed:?}");
    let unique_without_tenant = rows(
        "SELECT c.relname || '.' || i.relname FROM pg_index ix
         JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class c ON c.oid = ix.indrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
         WHERE ix.indisunique AND c.relname NOT IN ('tenants', 'seaql_migrations')
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                           AND a.attnum = ANY(ix.indkey))
         ORDER BY 1",
    )
    .await;
    assert_eq!(unique_without_tenant, vec!["api_keys.ux_api_keys_hash"], "only the reference table's key hash");
    // "child -> parent: FOREIGN KEY (…) REFERENCES parent(…)"
    let foreign_keys = rows(
        "SELECT c.conrelid::regclass::text || ' -> ' || c.confrelid::regclass::text || ': ' || pg_get_constraintdef(c.oid)
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace AND n.nspname = current_schema()
         WHERE c.contype = 'f' ORDER BY 1",
    )
    .await;
    assert!(!foreign_keys.is_empty());
    for fk in &foreign_keys {
        let target = fk.split(" -> ").nth(1).and_then(|s| s.split(':').next()).unwrap_or_default();
        let colocated =
            fk.contains("FOREIGN KEY (tenant_id, ") && fk.contains(&format!("REFERENCES {target}(tenant_id, "));
        assert!(REFERENCE_TABLES.contains(&target) || colocated, "{fk}: neither a reference table nor by tenant");
    }
}

async fn tenant_view(app: &TestApp, key: &str) -> Value {
    app.data(
        key,
        "{ products(first: 10) { edges { node { handle variants { sku } } } }
           stockLevels(first: 10) { edges { node { variant { sku } onHand } } }
           ledgerVerify { ok checked } }",
        json!({}),
    )
    .await
}

fn backup(args: &[&str]) -> std::process::Output {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/tenant-backup"))
        .args(args)
        .output()
        .expect("tools/tenant-backup runs")
}

fn owner_url(app: &TestApp) -> String {
    app.process_env()
        .into_iter()
        .find(|(k, _)| k == "QM_MIGRATION_DATABASE_URL")
        .map(|(_, v)| v)
        .expect("the test database's owner URL")
}

/// A tenant dumped from one database and restored into another answers the same queries there
/// with the same API key, its ledger verifies, and nothing of the other tenant comes along.
#[tokio::test]
async fn one_tenant_is_dumped_and_restored_into_another_database() {
    if !postgres_enabled("tenant backups use pg_dump") {
        return;
    }
    let source = TestApp::spawn().await;
    let acme = source.tenant("acme").await;
    let other = source.tenant("other").await;
    for (t, sku) in [(&acme, "ACME-1"), (&other, "OTHER-1")] {
        let loc = source.location(&t.owner_key, "WH1").await;
        source.product(&t.owner_key, &format!("p-{sku}"), &[sku]).await;
        source.stock(&t.owner_key, sku, &loc, 12).await;
        source.stock(&t.owner_key, sku, &loc, -5).await;
    }
    let before = tenant_view(&source, &acme.owner_key).await;
    assert_eq!(before["ledgerVerify"], json!({ "ok": true, "checked": 2 }));

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("acme.dump");
    let file = file.to_str().expect("path");
    let out = backup(&["dump", &owner_url(&source), "acme", file]);
    assert!(out.status.success(), "dump failed: {out:?}");
    // The staging schema does not stay behind in the source.
    let schemas = source
        .owner_db
        .conn()
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'qm_backup_%'".to_owned(),
        ))
        .await
        .expect("schemas");
    assert!(schemas.is_empty());

    let target = TestApp::spawn().await;
    let out = backup(&["restore", &owner_url(&target), file]);
    assert!(out.status.success(), "restore failed: {out:?}");
    assert_eq!(tenant_view(&target, &acme.owner_key).await, before);
    // The other tenant's key means nothing there.
    let (status, _) = target.gql(&other.owner_key, "{ me { subject } }", json!({})).await;
    assert_eq!(status, 401);
    // The restored tenant keeps working: a new movement extends its chain.
    let loc = target.data(&acme.owner_key, "{ locations(first: 1) { edges { node { id } } } }", json!({})).await;
    let loc = loc["locations"]["edges"][0]["node"]["id"].as_str().expect("location").to_owned();
    target.stock(&acme.owner_key, "ACME-1", &loc, 1).await;
    let after = tenant_view(&target, &acme.owner_key).await;
    assert_eq!(after["ledgerVerify"], json!({ "ok": true, "checked": 3 }));

    // Restoring again is refused and changes nothing.
    let out = backup(&["restore", &owner_url(&target), file]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has tenant acme"), "{out:?}");
    assert_eq!(tenant_view(&target, &acme.owner_key).await, after);
}

/// Whether a statement (lower case) names `tenant_id` where it routes: an insert's columns, or
/// the conditions after `WHERE` (a select's column list names it too, which routes nothing).
fn filters_by_tenant(sql: &str) -> bool {
    if sql.trim_start().starts_with("insert") {
        return sql.contains("tenant_id");
    }
    sql.split_once(" where ").is_some_and(|(_, conditions)| conditions.contains("tenant_id"))
}

/// Statements that may leave `tenant_id` out, and why (docs/operations.md's Citus plan).
fn spans_tenants(sql: &str, table: &str) -> bool {
    match table {
        // The job queue stays on the coordinator: claims, reaping, retention and queue metrics
        // look across tenants by design.
        "jobs" | "job_schedules" => true,
        // A reference table on every node: an API key is found by its hash before the tenant is known.
        "api_keys" => sql.contains("key_hash"),
        _ => false,
    }
}

/// "Every query filters by tenant_id so it routes to one shard", checked on plain PostgreSQL (and
/// SQLite): a tenant's day through the API and its jobs — catalog, stock, orders, a forecast run
/// and a replenishment run, webhook deliveries — with every statement the application sends
/// recorded; each one that reads or writes a tenant table names `tenant_id`, except the job
/// queue's and the API-key lookup, which the Citus plan keeps off the distributed tables.
#[tokio::test]
async fn every_statement_on_a_tenant_table_filters_by_tenant() {
    let (app, recorded) = TestApp::spawn_recording().await;
    let t = app.tenant("acme").await;
    let rx = qm_tests::receiver::Receiver::start().await;
    app.webhook_endpoint(&t.owner_key, &rx.url, json!([])).await;
    let (wh1, wh2) = (app.location(&t.owner_key, "WH1").await, app.location(&t.owner_key, "WH2").await);
    app.product(&t.owner_key, "tee", &["TEE-1", "TEE-2"]).await;
    app.stock(&t.owner_key, "TEE-1", &wh1, 30).await;
    app.stock(&t.owner_key, "TEE-2", &wh2, 5).await;
    let d = app
        .data(
            &t.owner_key,
            "mutation($i: OrderCreateInput!) { orderCreate(input: $i) { order { id } userErrors { code } } }",
            json!({ "i": { "externalId": "o-1", "lines": [{ "sku": "TEE-1", "quantity": 2 }], "locationId": wh1 } }),
        )
        .await;
    let order = d["orderCreate"]["order"]["id"].as_str().expect("order").to_owned();
    let d = app
        .data(
            &t.owner_key,
            "mutation($id: ID!) { orderFulfill(input: { id: $id, carrier: \"UPS\", trackingNumber: \"1Z\" }) { userErrors { code } } }",
            json!({ "id": order }),
        )
        .await;
    assert_eq!(d["orderFulfill"]["userErrors"], json!([]), "{d}");
    let d = app
        .data(&t.owner_key, "mutation { forecastRun(input: { horizon: 14 }) { userErrors { code } } }", json!({}))
        .await;
    assert_eq!(d["forecastRun"]["userErrors"], json!([]));
    app.drain_jobs().await;
    let d = app.data(&t.owner_key, "mutation { replenishmentRun { userErrors { code } } }", json!({})).await;
    assert_eq!(d["replenishmentRun"]["userErrors"], json!([]));
    app.drain_jobs().await;
    app.data(
        &t.owner_key,
        "{ products(first: 5) { nodes { variants { sku stockLevels { onHand } } } }
           orders(first: 5) { nodes { status } } stockMovements(first: 10) { nodes { deltaOnHand } }
           forecastRuns(first: 2) { nodes { status } } replenishmentRuns(first: 2) { nodes { status } }
           webhookEndpoints(first: 2) { nodes { url } } ledgerVerify { ok } }",
        json!({}),
    )
    .await;
    assert!(rx.count() > 0, "the endpoint got events");

    let tenant_tables: Vec<String> = {
        let sql = "SELECT table_name FROM information_schema.columns WHERE column_name = 'tenant_id'";
        let sql = if app.is_postgres() {
            format!("{sql} AND table_schema = current_schema()")
        } else {
            "SELECT m.name AS table_name FROM sqlite_master m JOIN pragma_table_info(m.name) c
             WHERE m.type = 'table' AND c.name = 'tenant_id'"
                .to_owned()
        };
        app.owner_db
            .conn()
            .query_all_raw(Statement::from_string(app.owner_db.backend(), sql))
            .await
            .expect("tenant tables")
            .into_iter()
            .map(|r| r.try_get::<String>("", "table_name").expect("name"))
            .collect()
    };
    assert!(tenant_tables.len() > 50);
    let statements = recorded.lock().expect("recorded").clone();
    assert!(statements.len() > 200, "{} statements", statements.len());
    let mut checked = std::collections::BTreeSet::new();
    let mut unfiltered = Vec::new();
    for sql in &statements {
        let lower = sql.to_lowercase();
        let words: Vec<&str> =
            lower.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
        for pair in words.windows(2) {
            let (keyword, table) = (pair[0], pair[1]);
            if !matches!(keyword, "from" | "join" | "update" | "into") || !tenant_tables.iter().any(|t| t == table) {
                continue;
            }
            checked.insert(table.to_owned());
            if !filters_by_tenant(&lower) && !spans_tenants(&lower, table) {
                unfiltered.push(sql.clone());
            }
        }
    }
    assert!(checked.len() > 25, "the tour touched {} tenant tables: {checked:?}", checked.len());
    unfiltered.sort();
    unfiltered.dedup();
    assert!(unfiltered.is_empty(), "statements without tenant_id:\n{}", unfiltered.join("\n"));
}
