//! Start-up: connect, migrate, seed the demo on an empty database, bind the listener.

use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Context;
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};

use crate::auth::jwt::JwtKeys;
use crate::config::Config;
use crate::db::Db;
use crate::db::entities::tenant;
use crate::metrics::Metrics;
use crate::state::AppState;

/// A built application: state ready, listener bound, not yet serving.
pub struct Application {
    pub state: AppState,
    listener: TcpListener,
    port: u16,
}

/// Connects to the configured database and applies migrations (with the owner connection, if one
/// is configured), then grants the app role its table access. On PostgreSQL, processes starting
/// at once take turns (a session advisory lock): concurrent migrations or grants would fail.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<Db> {
    let db = connect(config).await?;
    let owner = match &config.migration_database_url {
        Some(url) => Some(Db::connect_with(url, 2).await.context("connecting with QM_MIGRATION_DATABASE_URL")?),
        None => None,
    };
    let migrator = owner.as_ref().unwrap_or(&db);
    let lock = if migrator.is_postgres() {
        let url = config.migration_database_url.clone().unwrap_or_else(|| config.effective_database_url());
        // One connection of its own: the lock belongs to the session that took it.
        let lock = Db::connect_with(&url, 1).await.context("connecting to take the migration lock")?;
        lock.conn()
            .execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            .await
            .context("taking the migration lock")?;
        Some(lock)
    } else {
        None
    };
    let migrated = migrate(migrator, config).await;
    if let Some(lock) = lock {
        // Closing the session releases the lock even if the unlock fails.
        lock.conn().execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).await.ok();
        lock.conn().clone().close().await.ok();
    }
    if let Some(owner) = owner {
        owner.conn().clone().close().await.ok();
    }
    migrated?;
    Ok(db)
}

/// The advisory lock key migrating processes share ("qm_migr").
const MIGRATION_LOCK: i64 = 0x0071_6d5f_6d69_6772;

/// Connects to the configured database (the data directory's SQLite file by default).
pub async fn connect(config: &Config) -> anyhow::Result<Db> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    }
    Db::connect_with(&config.effective_database_url(), config.database_max_connections)
        .await
        .context("connecting to the database")
}

async fn migrate(db: &Db, config: &Config) -> anyhow::Result<()> {
    db.migrate().await.context("running migrations")?;
    if let Some(role) = &config.database_app_role {
        db.grant_app_role(role).await.context("granting the app role")?;
    }
    Ok(())
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (db, migrated) = if config.migrate_on_start {
            (connect_and_migrate(&config).await?, true)
        } else {
            let db = connect(&config).await?;
            let migrated = db.is_migrated().await.context("reading the applied migrations")?;
            if !migrated {
                // Not fatal: /readyz says so until `quartermaster migrate` has run.
                tracing::warn!("the database lacks migrations this version needs; run `quartermaster migrate`");
            }
            (db, migrated)
        };
        if db.is_postgres() {
            // Generated keys live in this process's data directory: other processes on the same
            // database (replicas, workers on other machines) would not share them.
            if config.jwt.algorithm == crate::config::JwtAlgorithm::Hs256 && config.jwt.secret.is_none() {
                tracing::warn!(
                    "QM_JWT_SECRET is not set: tokens are signed with a secret generated in the data directory, which other processes do not share"
                );
            }
            if config.connector_keys.is_none() {
                tracing::warn!(
                    "QM_CONNECTOR_KEYS is not set: connector credentials are sealed with a key generated in the data directory, which other processes do not share"
                );
            }
        }
        let jwt = JwtKeys::from_config(&config.jwt, &config.data_dir).context("loading JWT keys")?;
        let sealer = crate::services::connectors::sealer(config.connector_keys.as_ref(), &config.data_dir)
            .context("connector_keys (QM_CONNECTOR_KEYS)")?;
        if config.demo && migrated && tenant::Entity::find().count(db.conn()).await? == 0 {
            let params = crate::demo::default_params(config.demo_seed, chrono::Utc::now().date_naive());
            tracing::info!("empty database: seeding the demo tenant");
            let seeded = crate::demo::seed(&db, &params).await.context("seeding the demo tenant")?;
            tracing::info!(variants = seeded.variants, demand_rows = seeded.demand_rows, "demo tenant seeded");
        }
        let listener = TcpListener::bind(&config.listen).with_context(|| format!("binding {}", config.listen))?;
        let port = listener.local_addr()?.port();
        let webhooks = qm_integrations::webhooks::Deliverer::new(qm_integrations::webhooks::DeliveryConfig {
            timeout: std::time::Duration::from_secs(config.webhook_timeout_seconds),
            allow_private: config.webhook_allow_private,
            ..Default::default()
        })
        .context("building the webhook client")?;
        let mailer = match &config.smtp_url {
            Some(url) => Some(Arc::new(
                qm_integrations::email::Mailer::new(&qm_integrations::email::EmailConfig {
                    smtp_url: secrecy::ExposeSecret::expose_secret(url).to_owned(),
                    from: config.email_from.clone(),
                })
                .context("smtp_url (QM_SMTP_URL) or email_from (QM_EMAIL_FROM)")?,
            )),
            None => None,
        };
        let providers = Arc::new(
            crate::services::sync::Providers::new(
                config.connector_allow_private,
                config.connector_tenant_concurrency,
                config.connector_tenant_rate,
            )
            .context("building the connectors' HTTP client")?,
        );
        let roads = Arc::new(
            crate::routing::roads::Roads::from_config(&config)
                .context("osrm_url (QM_OSRM_URL): building the OSRM client")?,
        );
        let state = AppState {
            db,
            jwt: Arc::new(jwt),
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            webhooks: Arc::new(webhooks),
            mailer,
            forecast_models: Arc::default(),
            sealer: Arc::new(sealer),
            providers,
            roads,
        };
        Ok(Self { state, listener, port })
    }

    /// The state alone, for processes that serve no HTTP (`quartermaster worker`).
    pub async fn build_without_listener(config: Config) -> anyhow::Result<AppState> {
        let mut config = config;
        config.demo = false;
        config.listen = "127.0.0.1:0".into();
        Ok(Self::build(config).await?.state)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests (up to 30 s).
    pub async fn run_until_stopped(self, workers: usize) -> anyhow::Result<()> {
        crate::http::serve(self.listener, self.state, workers)?.await?;
        Ok(())
    }

    /// Starts serving in the background and returns the server handle (tests, benchmarks).
    pub fn spawn(self, workers: usize) -> anyhow::Result<actix_web::dev::ServerHandle> {
        let server = crate::http::serve(self.listener, self.state, workers)?;
        let handle = server.handle();
        tokio::spawn(server);
        Ok(handle)
    }
}
