//! End-to-end test harness: `TestApp::spawn()` starts the real application on `127.0.0.1:0`
//! against a fresh SQLite file, or a fresh PostgreSQL database when `QM_TEST_DATABASE_URL` is set.
//!
//! On PostgreSQL the tables are owned by the connecting (admin) role and the server runs as
//! `qm_app`, which is neither owner nor superuser, so row-level security really applies.
//! Logs appear only with `TEST_LOG=1`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};

use anyhow::Context;
use qm_api::app::Application;
use qm_api::config::Config;
use qm_api::db::Db;
use qm_api::services::tenants;
use qm_api::state::AppState;
use qm_domain::Role;
use serde_json::{Value, json};
use uuid::Uuid;

/// The role the server connects as on PostgreSQL.
pub const APP_ROLE: &str = "qm_app";

static LOGS: Once = Once::new();

fn init_logs() {
    LOGS.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            qm_api::telemetry::init(qm_api::config::LogFormat::Pretty);
        }
    });
}

static PG_OVERRIDE: std::sync::Mutex<Option<Option<String>>> = std::sync::Mutex::new(None);

/// Overrides `QM_TEST_DATABASE_URL` for this process (benchmarks run both backends in one process).
/// CPU seconds used by this process so far (Linux /proc; clock ticks of 1/100 s), for benchmarks.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The Python that runs a benchmark's peers: `QM_BENCH_PYTHON`, or a virtualenv under
/// target/bench-venv where `import {import}` works, made (once) by installing `package`. `None`,
/// with the reason on standard error, when `QM_BENCH_PEERS=0` or there is none.
pub fn bench_python(import: &str, package: &str) -> Option<String> {
    if std::env::var("QM_BENCH_PEERS").is_ok_and(|v| v == "0") {
        eprintln!("peers skipped (QM_BENCH_PEERS=0)");
        return None;
    }
    if let Some(p) = std::env::var("QM_BENCH_PYTHON").ok().filter(|p| !p.is_empty()) {
        return Some(p);
    }
    let venv = TestApp::repo_root().join("target/bench-venv");
    let python = venv.join("bin/python");
    let has = |py: &std::path::Path| {
        std::process::Command::new(py)
            .args(["-c", &format!("import {import}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has(&python) {
        eprintln!("installing {package} into {} for the peers (once)...", venv.display());
        let made = (python.exists()
            || std::process::Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success()))
            && std::process::Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", package])
                .status()
                .is_ok_and(|s| s.success());
        if !made || !has(&python) {
            eprintln!("peers skipped: no virtualenv with {package} (set QM_BENCH_PYTHON to one)");
            return None;
        }
    }
    Some(python.display().to_string())
}

pub fn set_postgres_url(url: Option<String>) {
    if let Ok(mut o) = PG_OVERRIDE.lock() {
        *o = Some(url);
    }
}

/// The PostgreSQL server to test against, if any.
pub fn postgres_url() -> Option<String> {
    if let Some(o) = PG_OVERRIDE.lock().ok().and_then(|o| o.clone()) {
        return o;
    }
    std::env::var("QM_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

/// `url` with its database name replaced (and its user, if `user` is given).
pub fn with_database(url: &str, db: &str, user: Option<&str>) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').unwrap_or((base, ""));
    let server = match user {
        Some(u) => {
            let (scheme, rest) = server.split_once("://").unwrap_or(("postgres", server));
            let hostpart = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{u}@{hostpart}")
        }
        None => server.to_owned(),
    };
    match query {
        Some(q) => format!("{server}/{db}?{q}"),
        None => format!("{server}/{db}"),
    }
}

/// The UUID inside a global ID (`gid://quartermaster/<Type>/<uuid>`).
/// Whether the slow tests run (real processes, thousands of jobs, 100,000-row reads): when
/// `QM_SLOW_TESTS=1`, as `.ci/run` sets; otherwise the test says it is skipped.
pub fn slow_tests_enabled(name: &str) -> bool {
    let on = std::env::var("QM_SLOW_TESTS").is_ok_and(|v| v == "1");
    if !on {
        eprintln!("skipping {name}: set QM_SLOW_TESTS=1 to run it");
    }
    on
}

/// A loopback port free at the time of asking (another process could take it before it is used;
/// callers bind it at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Child processes (servers, workers) killed and reaped when dropped, so a failing test or
/// benchmark leaves none behind.
pub struct Processes(pub Vec<std::process::Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until `GET {base}/readyz` answers with success; false after `within`.
pub async fn wait_ready(client: &reqwest::Client, base: &str, within: std::time::Duration) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// Whether a PostgreSQL-only test runs (`QM_TEST_DATABASE_URL` is set); otherwise the test says
/// why it is skipped on SQLite, before starting anything.
pub fn postgres_enabled(why: &str) -> bool {
    let on = postgres_url().is_some();
    if !on {
        eprintln!("skipping on SQLite: {why}");
    }
    on
}

pub fn uuid_of(gid: &str) -> Uuid {
    Uuid::parse_str(gid.rsplit('/').next().unwrap_or_default()).expect("a global id")
}

/// A tenant made for a test, with an owner API key and a helper to mint JWTs.
#[derive(Clone, Debug)]
pub struct TestTenant {
    pub id: Uuid,
    pub slug: String,
    /// The owner's API key (`sk_…`).
    pub owner_key: String,
}

/// Something done to the application's database handle before it serves (e.g. record statements).
type Observe = Box<dyn FnOnce(&mut Db)>;

pub struct TestApp {
    pub address: String,
    pub state: AppState,
    /// A connection with the table owner's rights (raw SQL in tests; bypasses nothing on SQLite).
    pub owner_db: Db,
    pub client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    process_env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
    pg_database: Option<(String, String)>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with a configuration changed by `adjust` (JWT algorithm, platform token, limits…).
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::try_spawn(adjust, 1).await.expect("test app starts")
    }

    /// Spawns with every SQL statement the application runs recorded (the harness's own queries
    /// through `owner_db` are not).
    pub async fn spawn_recording() -> (TestApp, Arc<Mutex<Vec<String>>>) {
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let sink = recorded.clone();
        let observe = move |db: &mut Db| {
            db.observe_statements(move |s| {
                if let Ok(mut v) = sink.lock() {
                    v.push(s.sql.clone());
                }
            })
        };
        let app = Self::try_spawn_observed(|_| {}, 1, Some(Box::new(observe))).await.expect("test app starts");
        (app, recorded)
    }

    /// Spawns with `workers` HTTP workers, for benchmarks.
    pub async fn spawn_for_bench(workers: usize) -> TestApp {
        Self::try_spawn(|_| {}, workers).await.expect("bench app starts")
    }

    async fn try_spawn(adjust: impl FnOnce(&mut Config), workers: usize) -> anyhow::Result<TestApp> {
        Self::try_spawn_observed(adjust, workers, None).await
    }

    async fn try_spawn_observed(
        adjust: impl FnOnce(&mut Config),
        workers: usize,
        observe: Option<Observe>,
    ) -> anyhow::Result<TestApp> {
        init_logs();
        let dir = tempfile::tempdir()?;
        let mut config = Config::for_tests(dir.path());
        let mut pg_database = None;
        let owner_url;
        if let Some(admin_url) = postgres_url() {
            let name = format!("qm_t_{}", Uuid::new_v4().simple());
            let admin = Db::connect(&admin_url).await.context("connecting to QM_TEST_DATABASE_URL")?;
            use sea_orm::ConnectionTrait;
            admin
                .conn()
                .execute_unprepared(&format!(
                    "DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS;
                     EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;"
                ))
                .await?;
            admin.conn().execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
            admin.conn().clone().close().await.ok();
            owner_url = with_database(&admin_url, &name, None);
            config.migration_database_url = Some(owner_url.clone());
            config.database_url = Some(with_database(&admin_url, &name, Some(APP_ROLE)));
            config.database_app_role = Some(APP_ROLE.into());
            pg_database = Some((admin_url, name));
        } else {
            owner_url = config.effective_database_url();
        }
        adjust(&mut config);
        let mut process_env = vec![
            ("QM_DATABASE_URL".to_owned(), config.effective_database_url()),
            ("QM_DATA_DIR".to_owned(), config.data_dir.display().to_string()),
            ("QM_DEMO".to_owned(), "false".to_owned()),
            ("QM_LOG_FORMAT".to_owned(), "json".to_owned()),
            ("QM_WEBHOOK_ALLOW_PRIVATE".to_owned(), config.webhook_allow_private.to_string()),
            ("QM_CONNECTOR_ALLOW_PRIVATE".to_owned(), config.connector_allow_private.to_string()),
            ("QM_WEBHOOK_RETRY_SCALE".to_owned(), config.webhook_retry_scale.to_string()),
        ];
        if let Some(u) = &config.migration_database_url {
            process_env.push(("QM_MIGRATION_DATABASE_URL".to_owned(), u.clone()));
        }
        if let Some(r) = &config.database_app_role {
            process_env.push(("QM_DATABASE_APP_ROLE".to_owned(), r.clone()));
        }
        let mut app = Application::build(config).await?;
        if let Some(observe) = observe {
            observe(&mut app.state.db);
        }
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.state.clone();
        let handle = app.spawn(workers)?;
        let owner_db = Db::connect(&owner_url).await?;
        Ok(TestApp {
            address,
            state,
            owner_db,
            client: reqwest::Client::new(),
            handle,
            process_env,
            _dir: dir,
            pg_database,
        })
    }

    /// Environment for a `quartermaster` process that shares this app's database and data dir.
    pub fn process_env(&self) -> Vec<(String, String)> {
        self.process_env.clone()
    }

    /// The per-test PostgreSQL database's name.
    pub fn database_name(&self) -> Option<&str> {
        self.pg_database.as_ref().map(|(_, name)| name.as_str())
    }

    pub fn is_postgres(&self) -> bool {
        self.pg_database.is_some()
    }

    /// Creates a tenant directly through the service layer.
    pub async fn tenant(&self, slug: &str) -> TestTenant {
        let created =
            tenants::create(&self.state.db, slug, &format!("Tenant {slug}"), &format!("owner@{slug}.example"), "Owner")
                .await
                .expect("tenant insert")
                .expect("slug is free");
        TestTenant { id: created.tenant.id, slug: slug.into(), owner_key: created.owner_key }
    }

    /// Mints a JWT for `tenant` with `roles` using the server's own keys.
    pub fn jwt(&self, tenant: &TestTenant, roles: &[Role]) -> String {
        self.state.jwt.mint(tenant.id, "test-user", roles, None, chrono::Utc::now()).expect("server can mint")
    }

    /// POSTs a GraphQL request; returns the status and the JSON body.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Like [`gql`](Self::gql) but expects HTTP 200 and no top-level errors, and returns `data`.
    pub async fn data(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.gql(token, query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Sends raw bytes with the given content type.
    pub async fn raw(&self, token: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Creates a location and returns its global ID.
    pub async fn location(&self, token: &str, code: &str) -> String {
        let d = self
            .data(
                token,
                "mutation($i: LocationUpsertInput!) { locationUpsert(input: $i) { location { id } userErrors { message } } }",
                json!({ "i": { "code": code, "name": code, "kind": "WAREHOUSE", "latitude": 40.7, "longitude": -74.0 } }),
            )
            .await;
        d["locationUpsert"]["location"]["id"].as_str().expect("location created").to_owned()
    }

    /// Creates a product with one variant per SKU and returns the product's global ID.
    pub async fn product(&self, token: &str, handle: &str, skus: &[&str]) -> String {
        let variants: Vec<Value> =
            skus.iter().map(|s| json!({ "sku": s, "title": s, "price": "19.99", "currencyCode": "USD" })).collect();
        let d = self
            .data(
                token,
                "mutation($i: ProductUpsertInput!) { productUpsert(input: $i) { product { id } userErrors { message } } }",
                json!({ "i": { "handle": handle, "title": handle, "variants": variants } }),
            )
            .await;
        d["productUpsert"]["product"]["id"].as_str().expect("product created").to_owned()
    }

    /// Adjusts stock and asserts it worked.
    pub async fn stock(&self, token: &str, sku: &str, location: &str, delta: i32) {
        let d = self
            .data(
                token,
                "mutation($i: StockAdjustInput!) { stockAdjust(input: $i) { userErrors { message code } } }",
                json!({ "i": { "sku": sku, "locationId": location, "delta": delta, "reason": "test" } }),
            )
            .await;
        assert_eq!(d["stockAdjust"]["userErrors"], json!([]), "{d}");
    }

    /// Creates a webhook endpoint; returns its global ID and its `whsec_` secret.
    pub async fn webhook_endpoint(&self, token: &str, url: &str, types: Value) -> (String, String) {
        let q = "mutation($i: WebhookEndpointCreateInput!) { webhookEndpointCreate(input: $i) { endpoint { id status } secret userErrors { field code message } } }";
        let d = self.data(token, q, json!({ "i": { "url": url, "eventTypes": types, "description": "test" } })).await;
        let p = &d["webhookEndpointCreate"];
        assert_eq!(p["userErrors"], json!([]), "{d}");
        (p["endpoint"]["id"].as_str().expect("id").to_owned(), p["secret"].as_str().expect("secret").to_owned())
    }

    /// Rotates endpoint `id`'s signing secret; returns the new `whsec_` secret.
    pub async fn rotate_webhook_secret(&self, token: &str, id: &str) -> String {
        let q = "mutation($e: ID!) { webhookSecretRotate(input: { id: $e }) { secret userErrors { field code } } }";
        let d = self.data(token, q, json!({ "e": id })).await;
        assert_eq!(d["webhookSecretRotate"]["userErrors"], json!([]), "{d}");
        d["webhookSecretRotate"]["secret"].as_str().expect("new secret").to_owned()
    }

    /// The payloads of a tenant's events of one type, in the order they were emitted.
    pub async fn events(&self, tenant: Uuid, kind: &str) -> Vec<Value> {
        use qm_api::db::entities::event;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let s = self.state.db.scoped(tenant, qm_api::db::TxMode::Read).await.expect("tx");
        let rows = event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::EventType.eq(kind))
            .order_by_asc(event::Column::OccurredAt)
            .order_by_asc(event::Column::Id)
            .all(&s.tx)
            .await
            .expect("events");
        s.commit().await.expect("commit");
        rows.into_iter().map(|e| e.payload).collect()
    }

    /// Runs every due background job now, in this task; returns how many ran.
    pub async fn drain_jobs(&self) -> usize {
        self.hold_nightly_schedules().await;
        // No other worker takes these jobs, so the lease only bounds how long one may run (0.9 of
        // it): on a machine busy with the whole suite a replenishment plan of the demo tenant can
        // outrun the default minute, and a job timed out here would wait for its retry's backoff.
        let cfg = qm_api::jobs::worker::WorkerConfig {
            lease: std::time::Duration::from_secs(600),
            ..qm_api::jobs::worker::WorkerConfig::default()
        };
        qm_api::jobs::worker::drain(&self.state, &qm_api::jobs::worker::Registry::standard(), &cfg)
            .await
            .expect("jobs drain")
    }

    /// Tenants get a nightly forecast at 02:00 UTC: a test running across that hour would see an
    /// extra run. A schedule that came due within the last two hours by the clock is moved a day
    /// on; one a test makes due on purpose sets its time further back (see the forecast tests).
    async fn hold_nightly_schedules(&self) {
        use sea_orm::{ConnectionTrait, Statement};
        let now = chrono::Utc::now();
        let (since, tomorrow) = (now - chrono::Duration::hours(2), now + chrono::Duration::days(1));
        let sql = if self.is_postgres() {
            "UPDATE job_schedules SET next_run_at = $1 WHERE name = 'forecast.nightly' AND next_run_at > $2 AND next_run_at <= $3"
        } else {
            "UPDATE job_schedules SET next_run_at = ? WHERE name = 'forecast.nightly' AND next_run_at > ? AND next_run_at <= ?"
        };
        self.owner_db
            .conn()
            .execute_raw(Statement::from_sql_and_values(
                self.owner_db.backend(),
                sql,
                [tomorrow.into(), since.into(), now.into()],
            ))
            .await
            .expect("hold the nightly schedules");
    }

    /// `rounds` of running the queued jobs, then making the waiting ones (retries) due.
    pub async fn settle_jobs(&self, rounds: usize) {
        for _ in 0..rounds {
            self.drain_jobs().await;
            self.make_jobs_due().await;
        }
    }

    /// Runs a sync of `connector` (a global id) to its end, retries brought forward; the run
    /// (`id status error problemCount problems { resource externalId message }`).
    pub async fn sync_connector(&self, token: &str, connector: &str) -> Value {
        const RUN: &str = "id status error problemCount problems { resource externalId message }";
        let d = self
            .data(
                token,
                &format!("mutation($i: SyncRunInput!) {{ syncRun(input: $i) {{ syncRun {{ {RUN} }} userErrors {{ message }} }} }}"),
                json!({ "i": { "connectorId": connector } }),
            )
            .await;
        let id = d["syncRun"]["syncRun"]["id"].as_str().unwrap_or_else(|| panic!("no run: {d}")).to_owned();
        for _ in 0..50 {
            self.drain_jobs().await;
            let d = self
                .data(
                    token,
                    &format!("query($id: ID!) {{ node(id: $id) {{ ... on SyncRun {{ {RUN} }} }} }}"),
                    json!({ "id": id }),
                )
                .await;
            if d["node"]["status"] == "COMPLETED" || d["node"]["status"] == "FAILED" {
                return d["node"].clone();
            }
            self.make_jobs_due().await;
        }
        panic!("the sync run did not finish");
    }

    /// On hand of `sku` at `location` (a global id), as the API shows it; 0 when not stocked.
    pub async fn on_hand(&self, token: &str, location: &str, sku: &str) -> i64 {
        let d = self
            .data(
                token,
                "query($l: ID, $s: String) { stockLevels(locationId: $l, sku: $s, first: 1) { nodes { onHand } } }",
                json!({ "l": location, "s": sku }),
            )
            .await;
        d["stockLevels"]["nodes"][0]["onHand"].as_i64().unwrap_or(0)
    }

    /// Makes every waiting job due now (fast-forwards retry delays).
    pub async fn make_jobs_due(&self) {
        use sea_orm::{ConnectionTrait, Statement};
        let backend = self.owner_db.backend();
        let past = chrono::Utc::now() - chrono::Duration::seconds(1);
        let sql = if self.is_postgres() {
            "UPDATE jobs SET run_at = $1 WHERE status = 'ready'"
        } else {
            "UPDATE jobs SET run_at = ? WHERE status = 'ready'"
        };
        self.owner_db
            .conn()
            .execute_raw(Statement::from_sql_and_values(backend, sql, [past.into()]))
            .await
            .expect("fast-forward jobs");
    }

    /// As if a worker had taken every ready job of `kind` (every tenant's) on its last attempt and
    /// died: they are running under a lease that has expired, for the next drain's reaper to
    /// dead-letter. Returns how many.
    pub async fn crash_on_last_attempt(&self, kind: &str) -> u64 {
        use sea_orm::{ConnectionTrait, Statement};
        let sql = if self.is_postgres() {
            "UPDATE jobs SET status = 'running', attempts = max_attempts, locked_by = 'crashed-worker', locked_until = $1
             WHERE status = 'ready' AND kind = $2"
        } else {
            "UPDATE jobs SET status = 'running', attempts = max_attempts, locked_by = 'crashed-worker', locked_until = ?
             WHERE status = 'ready' AND kind = ?"
        };
        let expired = chrono::Utc::now() - chrono::Duration::seconds(1);
        let backend = self.owner_db.backend();
        self.owner_db
            .conn()
            .execute_raw(Statement::from_sql_and_values(backend, sql, [expired.into(), kind.into()]))
            .await
            .expect("crash jobs")
            .rows_affected()
    }

    /// Moves the runs in `table` (`forecast_runs`, `replenishment_runs`…; every tenant's) back to
    /// `ago` before now, as if asked for then.
    pub async fn backdate_runs(&self, table: &str, ago: chrono::Duration) {
        use sea_orm::{ConnectionTrait, Statement};
        let placeholder = if self.is_postgres() { "$1" } else { "?" };
        let sql = format!("UPDATE {table} SET created_at = {placeholder}");
        let past = chrono::Utc::now() - ago;
        let backend = self.owner_db.backend();
        self.owner_db
            .conn()
            .execute_raw(Statement::from_sql_and_values(backend, sql, [past.into()]))
            .await
            .expect("backdate runs");
    }

    /// Makes the schedules of job `kind` (every tenant's) due `ago` back and enqueues their jobs,
    /// as the scheduler would (one job per occurrence: a later `ago` is another occurrence).
    pub async fn make_schedules_due(&self, kind: &str, ago: chrono::Duration) {
        use sea_orm::{ConnectionTrait, Statement};
        let sql = if self.is_postgres() {
            "UPDATE job_schedules SET next_run_at = $1 WHERE kind = $2"
        } else {
            "UPDATE job_schedules SET next_run_at = ? WHERE kind = ?"
        };
        let past = chrono::Utc::now() - ago;
        let backend = self.owner_db.backend();
        self.owner_db
            .conn()
            .execute_raw(Statement::from_sql_and_values(backend, sql, [past.into(), kind.into()]))
            .await
            .expect("due");
        qm_api::jobs::tick_schedules(&self.state.db).await.expect("tick");
    }

    /// Inserts an issued purchase order (without lines) and returns its global ID.
    /// `supplier` and `location` are global IDs.
    pub async fn purchase_order(&self, s: &qm_api::db::Scoped, number: &str, supplier: &str, location: &str) -> String {
        self.purchase_order_in(s, number, supplier, location, "issued").await
    }

    /// [`Self::purchase_order`] in `status` (`draft`, `issued`, `received`, `cancelled`, …).
    pub async fn purchase_order_in(
        &self,
        s: &qm_api::db::Scoped,
        number: &str,
        supplier: &str,
        location: &str,
        status: &str,
    ) -> String {
        use qm_api::db::entities::purchase_order;
        use sea_orm::{ActiveValue::Set, EntityTrait};
        let (id, now) = (Uuid::now_v7(), chrono::Utc::now());
        purchase_order::Entity::insert(purchase_order::ActiveModel {
            tenant_id: Set(s.tenant()),
            id: Set(id),
            number: Set(number.into()),
            supplier_id: Set(uuid_of(supplier)),
            location_id: Set(uuid_of(location)),
            status: Set(status.into()),
            currency: Set("USD".into()),
            expected_on: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            issued_at: Set(Some(now)),
            contract_id: Set(None),
            promised_on: Set(None),
            acknowledged_at: Set(None),
            penalty_amount: Set(None),
            status_reason: Set(None),
        })
        .exec_without_returning(&s.tx)
        .await
        .expect("purchase order");
        format!("gid://quartermaster/PurchaseOrder/{id}")
    }

    /// The repository root (for committed files such as `api/schema.graphql`).
    pub fn repo_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
    }

    /// A folder of the benchmark data beside the repository (`../shared/data/<folder>`), where
    /// the benchmarks read it unless told another.
    pub fn shared_data(folder: &str) -> PathBuf {
        Self::repo_root().join("../shared/data").join(folder)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        drop(handle.stop(false));
        if let Some((admin_url, name)) = self.pg_database.take() {
            // Drop the per-test database from a plain thread: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                rt.block_on(async move {
                    use sea_orm::ConnectionTrait;
                    if let Ok(admin) = Db::connect(&admin_url).await {
                        let _ = admin
                            .conn()
                            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                        admin.conn().clone().close().await.ok();
                    }
                });
            })
            .join();
        }
    }
}

/// Serves an actix app (`factory`, as for `HttpServer::new`) on a free loopback port with
/// `workers` workers, in the background: `(port, handle)`. The mocks and receivers of the tests
/// start this way.
#[macro_export]
macro_rules! serve_loopback {
    ($workers:expr, $factory:expr) => {{
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("addr").port();
        let server = actix_web::HttpServer::new($factory)
            .workers($workers)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        (port, handle)
    }};
}

pub mod netsuite_mock;
pub mod shipbob_mock;
pub mod shipstation_mock;
pub mod shopify_demo;
pub mod shopify_mock;

/// A minimal graphql-transport-ws client (the protocol of the `graphql-ws` library), speaking
/// the wire messages directly so tests see exactly what a client sees.
pub mod ws {
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    pub struct Client {
        stream: Stream,
    }

    /// How a connection ended before it was acknowledged.
    #[derive(Debug, PartialEq)]
    pub struct Closed {
        pub code: u16,
        pub reason: String,
    }

    impl Client {
        /// Opens `/graphql` on `address` (http://…) and sends `connection_init` with `payload`.
        pub async fn connect(address: &str, payload: Value) -> Result<Client, Closed> {
            let url = format!("{}/graphql", address.replacen("http://", "ws://", 1));
            let mut request = url.into_client_request().expect("ws url");
            request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
            let (stream, response) = tokio_tungstenite::connect_async(request).await.expect("websocket handshake");
            assert_eq!(
                response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()),
                Some("graphql-transport-ws")
            );
            let mut client = Client { stream };
            client.send(json!({ "type": "connection_init", "payload": payload })).await;
            match client.recv(Duration::from_secs(10)).await {
                Ok(Some(m)) if m["type"] == "connection_ack" => Ok(client),
                Ok(other) => panic!("expected connection_ack, got {other:?}"),
                Err(closed) => Err(closed),
            }
        }

        pub async fn send(&mut self, message: Value) {
            self.stream.send(Message::text(message.to_string())).await.expect("ws send");
        }

        /// Starts subscription `id`.
        pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
            self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
                .await;
        }

        /// The next protocol message (pings are answered), `Ok(None)` after `timeout` of silence,
        /// or how the server closed the socket.
        pub async fn recv(&mut self, timeout: Duration) -> Result<Option<Value>, Closed> {
            loop {
                let frame = match tokio::time::timeout(timeout, self.stream.next()).await {
                    Err(_) => return Ok(None),
                    Ok(None) => return Err(Closed { code: 1006, reason: "connection dropped".into() }),
                    Ok(Some(Err(e))) => return Err(Closed { code: 1006, reason: e.to_string() }),
                    Ok(Some(Ok(f))) => f,
                };
                match frame {
                    Message::Text(t) => {
                        let v: Value = serde_json::from_str(t.as_str()).expect("server sends JSON");
                        if v["type"] == "ping" {
                            self.send(json!({ "type": "pong" })).await;
                            continue;
                        }
                        return Ok(Some(v));
                    }
                    Message::Close(c) => {
                        return Err(c.map_or(Closed { code: 1005, reason: String::new() }, |c| Closed {
                            code: u16::from(c.code),
                            reason: c.reason.to_string(),
                        }));
                    }
                    _ => {}
                }
            }
        }

        /// Every message that arrives until `quiet` passes without one.
        pub async fn drain(&mut self, quiet: Duration) -> Vec<Value> {
            let mut out = Vec::new();
            while let Ok(Some(m)) = self.recv(quiet).await {
                out.push(m);
            }
            out
        }

        pub async fn close(mut self) {
            let _ = self
                .stream
                .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                }))
                .await;
        }
    }
}

/// A real SMTP server for tests: Python's `aiosmtpd` (installed by `.ci/run`) writing a maildir.
pub mod smtp {
    use std::path::PathBuf;
    use std::time::Duration;

    pub struct Server {
        pub port: u16,
        maildir: tempfile::TempDir,
        child: std::process::Child,
    }

    /// One received message, with quoted-printable soft breaks and the escapes our parts use undone.
    pub struct Mail {
        pub raw: String,
        pub decoded: String,
    }

    impl Server {
        /// Starts aiosmtpd with `QM_TEST_PYTHON`; `None` (the caller skips) when it is not set.
        pub async fn start() -> Option<Server> {
            let python = std::env::var("QM_TEST_PYTHON").ok().filter(|p| !p.is_empty())?;
            let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
            let maildir = tempfile::tempdir().expect("maildir");
            for sub in ["tmp", "new", "cur"] {
                std::fs::create_dir_all(maildir.path().join(sub)).expect("maildir layout");
            }
            let child = std::process::Command::new(python)
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
                .arg(maildir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("aiosmtpd starts");
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some(Server { port, maildir, child })
        }

        pub fn url(&self) -> String {
            format!("smtp://127.0.0.1:{}", self.port)
        }

        fn files(&self) -> Vec<PathBuf> {
            let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.path().join("new"))
                .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            files
        }

        /// Waits until at least `n` messages arrived (up to 5 s), then a little longer for
        /// stragglers, and returns all of them.
        pub async fn wait_for(&self, n: usize) -> Vec<Mail> {
            for _ in 0..50 {
                if self.files().len() >= n {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.files()
                .iter()
                .map(|p| {
                    let raw = std::fs::read_to_string(p).expect("mail file");
                    let decoded = raw.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=").replace("=20", " ");
                    Mail { raw, decoded }
                })
                .collect()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A webhook receiver on loopback that records every request and answers from a script.
pub mod receiver {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use actix_web::{App, HttpRequest, HttpResponse, web};

    /// Verifies a delivery from first principles (Standard Webhooks: HMAC-SHA256 over
    /// `id.timestamp.body`), without the server's own code.
    pub fn independently_valid(secret: &str, r: &Received) -> bool {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        use hmac::{Hmac, Mac};
        let key = STANDARD.decode(secret.trim_start_matches("whsec_")).expect("base64 secret");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
        mac.update(format!("{}.{}.", r.id, r.timestamp).as_bytes());
        mac.update(&r.body);
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        r.signature.split(' ').any(|s| s == expected)
    }

    /// Checks deliveries with the Python `standardwebhooks` package (the specification's
    /// reference library) at `QM_TEST_PYTHON` (`.ci/run` installs it and sets it): each must
    /// verify and the same body with one byte added must not. The event types verified, in order;
    /// `None` when `QM_TEST_PYTHON` is not set. Panics when the library refuses one.
    pub fn reference_library_verifies(secret: &str, got: &[Received]) -> Option<Vec<String>> {
        use std::io::Write;
        let python = std::env::var("QM_TEST_PYTHON").ok().filter(|p| !p.is_empty())?;
        let cases: Vec<serde_json::Value> = got
            .iter()
            .map(|r| {
                serde_json::json!({ "id": r.id, "timestamp": r.timestamp, "signature": r.signature,
                    "body": String::from_utf8_lossy(&r.body) })
            })
            .collect();
        let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
data = json.load(sys.stdin)
wh = Webhook(data["secret"])
types = []
for c in data["cases"]:
    headers = {"webhook-id": c["id"], "webhook-timestamp": c["timestamp"], "webhook-signature": c["signature"]}
    types.append(wh.verify(c["body"].encode(), headers)["type"])
    try:
        wh.verify((c["body"] + " ").encode(), headers)
        sys.exit("a tampered body verified")
    except WebhookVerificationError:
        pass
print(json.dumps(types))
"#;
        let mut child = std::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python starts");
        let input = serde_json::json!({ "secret": secret, "cases": cases }).to_string();
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
        let out = child.wait_with_output().expect("python finishes");
        assert!(out.status.success(), "standardwebhooks refused a delivery: {}", String::from_utf8_lossy(&out.stderr));
        Some(serde_json::from_slice(&out.stdout).expect("the verified types"))
    }

    /// One request as received.
    #[derive(Debug, Clone)]
    pub struct Received {
        pub id: String,
        pub timestamp: String,
        pub signature: String,
        pub body: Vec<u8>,
        pub received_at: chrono::DateTime<chrono::Utc>,
    }

    #[derive(Default)]
    struct Inner {
        received: Vec<Received>,
        /// Status codes to answer with, in order; 200 once exhausted.
        script: VecDeque<u16>,
        /// Fail this share of requests at random, but no message more than `max` times.
        random: Option<(f64, u32, rand::rngs::StdRng)>,
        failures: std::collections::HashMap<String, u32>,
    }

    #[derive(Clone)]
    pub struct Receiver {
        pub url: String,
        inner: Arc<Mutex<Inner>>,
        handle: actix_web::dev::ServerHandle,
    }

    async fn hook(req: HttpRequest, body: web::Bytes, inner: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
        let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let mut i = inner.lock().expect("receiver lock");
        i.received.push(Received {
            id: h("webhook-id"),
            timestamp: h("webhook-timestamp"),
            signature: h("webhook-signature"),
            body: body.to_vec(),
            received_at: chrono::Utc::now(),
        });
        let mut status = i.script.pop_front().unwrap_or(200);
        let id = h("webhook-id");
        let so_far = i.failures.get(&id).copied().unwrap_or(0);
        if let Some((rate, max, rng)) = i.random.as_mut() {
            use rand::Rng;
            if so_far < *max && rng.random::<f64>() < *rate {
                status = 500;
            }
        }
        if status >= 300 {
            *i.failures.entry(id).or_insert(0) += 1;
        }
        drop(i);
        // 999: answer 200 but never finish the body. 307: redirect elsewhere (must not be followed).
        if status == 999 {
            let forever = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Some((Ok::<_, actix_web::Error>(web::Bytes::from_static(b".")), ()))
            });
            return HttpResponse::Ok().streaming(forever);
        }
        if status == 307 {
            return HttpResponse::TemporaryRedirect()
                .insert_header(("location", "http://127.0.0.1:9/elsewhere"))
                .finish();
        }
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
            .body(format!("answered {status}"))
    }

    impl Receiver {
        pub async fn start() -> Receiver {
            let inner = Arc::new(Mutex::new(Inner::default()));
            let data = web::Data::new(inner.clone());
            let (port, handle) =
                crate::serve_loopback!(1, move || { App::new().app_data(data.clone()).default_service(web::to(hook)) });
            Receiver { url: format!("http://127.0.0.1:{port}/hook"), inner, handle }
        }

        /// Answers the next requests with these status codes (then 200).
        pub fn script(&self, codes: &[u16]) {
            self.inner.lock().expect("lock").script.extend(codes.iter().copied());
        }

        /// Fails `rate` of requests at random (seeded), at most `max_per_message` times per webhook-id.
        pub fn fail_randomly(&self, rate: f64, max_per_message: u32, seed: u64) {
            use rand::SeedableRng;
            self.inner.lock().expect("lock").random =
                Some((rate, max_per_message, rand::rngs::StdRng::seed_from_u64(seed)));
        }

        /// How many requests arrived so far.
        pub fn count(&self) -> usize {
            self.inner.lock().expect("lock").received.len()
        }

        pub fn received(&self) -> Vec<Received> {
            self.inner.lock().expect("lock").received.clone()
        }
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            drop(self.handle.stop(false));
        }
    }
}
