//! Persistence: the connection, migrations and tenant-scoped transactions.
//!
//! Every repository function takes a [`Scoped`] transaction, which knows its tenant. On PostgreSQL
//! the transaction starts with `set_config('app.tenant_id', …, true)` so row-level security applies
//! as a second wall; on SQLite the repositories' `tenant_id` filters are the wall.

pub mod entities;
pub mod repo;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, SqlxSqliteConnector, Statement, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;

use crate::live::{self, Bus, Update};
pub use qm_migrations::{
    ALERT_TABLES, API_KEY_HASH_SETTING, CONNECTOR_ID_SETTING, CONNECTOR_TABLES, CONTRACT_TABLES, FORECAST_TABLES,
    JOB_TABLES, Migrator, PLAN_TERMS_TABLES, PRICING_TABLES, REPLENISHMENT_TABLES, RETURNS_TABLES, ROUTE_PLAN_TABLES,
    SYNC_TABLES, TENANT_SETTING, TENANT_TABLES, WORKER_SETTING,
};

/// Whether a transaction will write. On SQLite a writer takes the write lock at `BEGIN`
/// (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy timeout instead of failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    Read,
    Write,
    /// A write of nothing but what is recomputed from other rows anyway (a single series'
    /// re-forecast). On PostgreSQL its commit does not wait for the WAL flush
    /// (`synchronous_commit = off`): a crash may lose the last fraction of a second of such
    /// commits, whole (never half of one), and the next run makes them again.
    Derived,
}

/// A pooled connection to SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    live: Arc<Bus>,
}

impl Db {
    /// Connects to `url`: `sqlite://…` (created if missing, WAL, busy timeout) or `postgres://…`
    /// with the default pool (32 connections at most).
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        Self::connect_with(url, 32).await
    }

    /// Connects to `url` keeping at most `max_connections` PostgreSQL connections open (SQLite
    /// always has 8: one writer at a time, a few readers).
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Self, DbErr> {
        let conn = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| DbErr::Custom(format!("invalid sqlite url: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true);
            // A local file cannot go stale as a server connection can: no ping before each
            // checkout (with SQLite that is a round trip to the connection's own thread).
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
            SqlxSqliteConnector::from_sqlx_sqlite_pool(pool)
        } else {
            let mut options = ConnectOptions::new(url.to_owned());
            options
                .max_connections(max_connections.max(1))
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                // A ping on every checkout is a round trip per transaction; only a connection
                // idle long enough for the server or a proxy to have dropped it is checked.
                .test_before_acquire_if_idle_for(Duration::from_secs(30))
                .sqlx_logging(false);
            Database::connect(options).await?
        };
        Ok(Self::from_conn(conn))
    }

    /// Wraps an open connection, with its own live-update bus.
    pub fn from_conn(conn: DatabaseConnection) -> Self {
        Self { conn, live: Arc::default() }
    }

    /// A receiver of every committed live update from now on (filter by tenant!).
    pub async fn subscribe_live(&self) -> tokio::sync::broadcast::Receiver<Arc<live::Message>> {
        self.live.subscribe(&self.conn).await
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    pub fn is_postgres(&self) -> bool {
        self.backend() == DbBackend::Postgres
    }

    /// Calls `f` with every statement this handle runs, in transactions begun from it too (set it
    /// before the handle is cloned): for statement metrics, and for tests of what reaches the
    /// database.
    pub fn observe_statements(&mut self, f: impl Fn(&Statement) + Send + Sync + 'static) {
        self.conn.set_metric_callback(move |info| f(info.statement));
    }

    /// The raw connection, for work that spans tenants (migrations, bootstrap, readiness).
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.conn, None).await
    }

    /// True when every migration has been applied.
    /// Reads the migration table only (the app role may not create it, so no `install`).
    /// A database that answers but has no migration table yet is not migrated (`Ok(false)`); one
    /// that does not answer is an error.
    pub async fn is_migrated(&self) -> Result<bool, DbErr> {
        self.conn.execute_raw(Statement::from_string(self.backend(), "SELECT 1".to_owned())).await?;
        let Ok(rows) = self
            .conn
            .query_all_raw(Statement::from_string(self.backend(), "SELECT version FROM seaql_migrations".to_owned()))
            .await
        else {
            return Ok(false);
        };
        let applied: std::collections::HashSet<String> =
            rows.iter().filter_map(|r| r.try_get::<String>("", "version").ok()).collect();
        Ok(Migrator::migrations().iter().all(|m| applied.contains(m.name())))
    }

    /// Gives `role` the table access the server needs (PostgreSQL; a no-op on SQLite).
    /// The role must exist already and should be neither superuser nor table owner.
    pub async fn grant_app_role(&self, role: &str) -> Result<(), DbErr> {
        if !self.is_postgres() {
            return Ok(());
        }
        if !role.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(DbErr::Custom("role must be a plain identifier".into()));
        }
        self.conn
            .execute_unprepared(&format!(
                "DO $$ BEGIN
                   EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), '{role}');
                   EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I',
                                  current_schema(), '{role}');
                   EXECUTE format('REVOKE UPDATE, DELETE ON stock_movements FROM %I', '{role}');
                 END $$;"
            ))
            .await
            .map(|_| ())
    }

    /// A write transaction with no tenant set (cross-tenant infrastructure such as job claiming).
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        self.begin(TxMode::Write).await
    }

    async fn begin(&self, mode: TxMode) -> Result<DatabaseTransaction, DbErr> {
        let sqlite_transaction_mode = match (self.backend(), mode) {
            (DbBackend::Sqlite, TxMode::Write | TxMode::Derived) => Some(SqliteTransactionMode::Immediate),
            _ => None,
        };
        self.conn.begin_with_options(TransactionOptions { sqlite_transaction_mode, ..Default::default() }).await
    }

    /// Sets transaction-local settings (PostgreSQL; nothing on SQLite), all in one statement.
    async fn set_local(&self, tx: &DatabaseTransaction, settings: &[(&str, String)]) -> Result<(), DbErr> {
        if self.is_postgres() && !settings.is_empty() {
            let calls: Vec<String> =
                (0..settings.len()).map(|i| format!("set_config(${}, ${}, true)", 2 * i + 1, 2 * i + 2)).collect();
            let values = settings.iter().flat_map(|(k, v)| [(*k).into(), v.clone().into()]);
            tx.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!("SELECT {}", calls.join(", ")),
                values,
            ))
            .await?;
        }
        Ok(())
    }

    /// Begins a transaction that sees only `tenant`'s rows.
    pub async fn scoped(&self, tenant: Uuid, mode: TxMode) -> Result<Scoped, DbErr> {
        let tx = self.begin(mode).await?;
        let tenant_setting = (TENANT_SETTING, tenant.to_string());
        if mode == TxMode::Derived {
            self.set_local(&tx, &[tenant_setting, ("synchronous_commit", "off".into())]).await?;
        } else {
            self.set_local(&tx, &[tenant_setting]).await?;
        }
        Ok(Scoped { tx, tenant, live: self.live.clone(), postgres: self.is_postgres(), pending: Mutex::default() })
    }

    /// Begins a transaction allowed to read the one connector row `id` names, before the tenant is
    /// known (an inbound webhook names only its connector).
    pub async fn connector_lookup(&self, id: Uuid) -> Result<DatabaseTransaction, DbErr> {
        let tx = self.begin(TxMode::Read).await?;
        self.set_local(&tx, &[(CONNECTOR_ID_SETTING, id.to_string())]).await?;
        Ok(tx)
    }

    /// Begins the one transaction allowed to read an API key row by its hash, before the tenant is known.
    pub async fn api_key_lookup(&self, key_hash: &str) -> Result<DatabaseTransaction, DbErr> {
        let tx = self.begin(TxMode::Read).await?;
        self.set_local(&tx, &[(API_KEY_HASH_SETTING, key_hash.to_owned())]).await?;
        Ok(tx)
    }
}

/// A transaction bound to one tenant. Repositories take this, never a bare tenant id.
pub struct Scoped {
    pub tx: DatabaseTransaction,
    tenant: Uuid,
    live: Arc<Bus>,
    postgres: bool,
    /// Live updates that go out when (and only if) the transaction commits.
    pending: Mutex<Vec<Update>>,
}

impl Scoped {
    pub fn tenant(&self) -> Uuid {
        self.tenant
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// Queues a live update for subscribers; it is sent on commit and dropped on rollback.
    pub fn publish(&self, update: Update) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).push(update);
    }

    pub async fn commit(self) -> Result<(), DbErr> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if self.postgres {
            // NOTIFY is transactional: PostgreSQL delivers it at commit, to every listening process.
            for update in pending {
                let payload = live::Message { tenant_id: self.tenant, update }.to_notify_payload();
                self.tx
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT pg_notify($1, $2)",
                        [live::CHANNEL.into(), payload.into()],
                    ))
                    .await?;
            }
            return self.tx.commit().await;
        }
        self.tx.commit().await?;
        self.live.broadcast(self.tenant, pending);
        Ok(())
    }
}

/// True when `err` is a unique-constraint violation.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}
