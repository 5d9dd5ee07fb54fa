//! Durable jobs in the application's own database.
//!
//! A job is enqueued in the same transaction as the change that causes it (an outbox), so a
//! rollback takes the job with it and a commit makes it durable. Workers claim due jobs across
//! tenants (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers), oldest first but
//! round-robin over tenants so one tenant's flood cannot starve another. A claimed job holds a
//! lease; if its worker dies the reaper returns it to the queue when the lease expires. Failures
//! retry with exponential backoff and jitter until `max_attempts`, then the job is `dead`, and
//! its handler's `dead` hook is called however it died (its last failure, or its lease expiring
//! on its last attempt), so what the job stood for (a run, a webhook message) does not wait for
//! it for ever. Execution is at least once: handlers must be idempotent.

pub mod worker;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, FromQueryResult, Statement, Value};
use uuid::Uuid;

use crate::db::entities::job;
use crate::db::{Db, Scoped, TxMode, WORKER_SETTING, repo};

pub const DEFAULT_QUEUE: &str = "default";

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    pub queue: String,
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    /// At most one job per tenant with this key is ever enqueued.
    pub dedup_key: Option<String>,
}

impl NewJob {
    pub fn new(kind: &str, payload: serde_json::Value) -> Self {
        Self {
            kind: kind.to_owned(),
            payload,
            queue: DEFAULT_QUEUE.to_owned(),
            run_at: None,
            max_attempts: 10,
            dedup_key: None,
        }
    }
}

/// Enqueues `job` inside the caller's transaction. Returns `None` when a job with the same dedup
/// key already exists.
pub async fn enqueue(s: &Scoped, job: NewJob) -> Result<Option<Uuid>, DbErr> {
    let now = repo::now();
    let id = Uuid::now_v7();
    let model = job::Model {
        tenant_id: s.tenant(),
        id,
        queue: job.queue,
        kind: job.kind,
        payload: job.payload,
        status: "ready".into(),
        attempts: 0,
        max_attempts: job.max_attempts.max(1),
        run_at: job.run_at.unwrap_or(now),
        locked_until: None,
        locked_by: None,
        last_error: None,
        dedup_key: job.dedup_key,
        created_at: now,
        updated_at: now,
    };
    let inserted = job::Entity::insert(job::ActiveModel::from(model))
        .on_conflict(OnConflict::columns([job::Column::TenantId, job::Column::DedupKey]).do_nothing().to_owned())
        .exec_without_returning(&s.tx)
        .await?;
    Ok((inserted == 1).then_some(id))
}

/// A transaction that may see every tenant's jobs (PostgreSQL: `app.worker = 'on'`).
async fn worker_tx(db: &Db) -> Result<DatabaseTransaction, DbErr> {
    let tx = db.begin_write().await?;
    if db.is_postgres() {
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config($1, 'on', true)",
            [WORKER_SETTING.into()],
        ))
        .await?;
    }
    Ok(tx)
}

fn stmt(backend: DbBackend, pg_sql: &str, values: Vec<Value>) -> Statement {
    match backend {
        DbBackend::Postgres => Statement::from_sql_and_values(DbBackend::Postgres, pg_sql, values),
        // SQLite numbers its parameters the same way with `?N`.
        other => Statement::from_sql_and_values(other, pg_sql.replace('$', "?"), values),
    }
}

/// Claims up to `limit` due jobs from `queue` for `worker`, leasing them for `lease`.
/// Round-robin over tenants: each tenant's oldest due job first, then each one's second, …
///
/// PostgreSQL walks the tenants that have ready jobs through `ix_jobs_ready_tenant` (a loose index
/// scan: one probe per tenant) and takes at most `limit` due jobs of each, so a claim costs the
/// same however long any one tenant's backlog is and a small tenant is served in the next claim
/// even behind another's flood; the picked rows are locked, skipping rows another worker holds.
/// SQLite (one process, one writer at a time) ranks the 2,000 oldest due jobs instead.
pub async fn claim(db: &Db, worker: &str, queue: &str, limit: u64, lease: Duration) -> Result<Vec<job::Model>, DbErr> {
    let now = repo::now();
    let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(300));
    let update = "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $4, locked_until = $5,
                  updated_at = $2";
    let sql = if db.is_postgres() {
        // Each picked row is locked through its own exact `ix_jobs_ready_tenant` entry, walking
        // the ranking in order until `limit` are held. (Joining the ranking to the ready jobs
        // instead let the planner, misled by the row-security filter's estimate, compare every
        // ready job with every candidate: 0.8 s a claim at 8,000 ready jobs.)
        format!(
            "WITH RECURSIVE tenants AS (
               (SELECT tenant_id FROM jobs WHERE status = 'ready' AND queue = $1 ORDER BY tenant_id LIMIT 1)
               UNION ALL
               SELECT (SELECT j.tenant_id FROM jobs j
                       WHERE j.status = 'ready' AND j.queue = $1 AND j.tenant_id > t.tenant_id
                       ORDER BY j.tenant_id LIMIT 1)
               FROM tenants t WHERE t.tenant_id IS NOT NULL
             ),
             ranked AS (
               SELECT c.tenant_id, c.id, c.run_at,
                      row_number() OVER (PARTITION BY c.tenant_id ORDER BY c.run_at, c.id) AS rn
               FROM tenants t CROSS JOIN LATERAL (
                 SELECT j.tenant_id, j.id, j.run_at FROM jobs j
                 WHERE j.status = 'ready' AND j.queue = $1 AND j.tenant_id = t.tenant_id AND j.run_at <= $2
                 ORDER BY j.run_at, j.id LIMIT $3) c
               WHERE t.tenant_id IS NOT NULL
             ),
             picked AS (
               SELECT l.tenant_id, l.id FROM (SELECT * FROM ranked ORDER BY rn, run_at, id) r
               CROSS JOIN LATERAL (
                 SELECT j.tenant_id, j.id FROM jobs j
                 WHERE j.status = 'ready' AND j.queue = $1 AND j.tenant_id = r.tenant_id
                   AND j.run_at = r.run_at AND j.id = r.id
                 FOR UPDATE SKIP LOCKED) l
               LIMIT $3
             )
             {update}
             FROM picked p WHERE jobs.tenant_id = p.tenant_id AND jobs.id = p.id
             RETURNING jobs.*"
        )
    } else {
        format!(
            "{update}
             WHERE (tenant_id, id) IN (
               SELECT tenant_id, id FROM (
                 SELECT tenant_id, id, run_at, row_number() OVER (PARTITION BY tenant_id ORDER BY run_at, id) AS rn
                 FROM (SELECT tenant_id, id, run_at FROM jobs
                       WHERE status = 'ready' AND queue = $1 AND run_at <= $2
                       ORDER BY run_at LIMIT 2000) c) r
               ORDER BY rn, run_at, id LIMIT $3)
             RETURNING *"
        )
    };
    let tx = worker_tx(db).await?;
    let rows = tx
        .query_all_raw(stmt(
            db.backend(),
            &sql,
            vec![queue.into(), now.into(), (limit as i64).into(), worker.into(), until.into()],
        ))
        .await?;
    let jobs = rows.iter().map(|r| job::Model::from_query_result(r, "")).collect::<Result<Vec<_>, _>>()?;
    tx.commit().await?;
    Ok(jobs)
}

/// Marks a claimed job done. Does nothing if the lease was lost to another worker meanwhile.
pub async fn complete(db: &Db, j: &job::Model, worker: &str) -> Result<bool, DbErr> {
    let tx = worker_tx(db).await?;
    let res = tx
        .execute_raw(stmt(
            db.backend(),
            "UPDATE jobs SET status = 'done', locked_until = NULL, last_error = NULL, updated_at = $1
             WHERE tenant_id = $2 AND id = $3 AND status = 'running' AND locked_by = $4",
            vec![repo::now().into(), j.tenant_id.into(), j.id.into(), worker.into()],
        ))
        .await?;
    tx.commit().await?;
    Ok(res.rows_affected() == 1)
}

/// Records a failure: retry at `retry_at` (`"ready"`), or dead-letter when attempts are used up or
/// `retry_at` is `None` (`"dead"`); `"lost"` when the job is no longer this worker's (its lease
/// expired and it went back to the queue), so nothing was recorded.
pub async fn fail(
    db: &Db,
    j: &job::Model,
    worker: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<&'static str, DbErr> {
    let status = match retry_at {
        Some(_) if j.attempts < j.max_attempts => "ready",
        _ => "dead",
    };
    let error: String = error.chars().take(2000).collect();
    let tx = worker_tx(db).await?;
    let res = tx
        .execute_raw(stmt(
        db.backend(),
        "UPDATE jobs SET status = $1, run_at = $2, locked_until = NULL, locked_by = NULL, last_error = $3, updated_at = $4
         WHERE tenant_id = $5 AND id = $6 AND status = 'running' AND locked_by = $7",
        vec![
            status.into(),
            retry_at.unwrap_or(j.run_at).into(),
            error.into(),
            repo::now().into(),
            j.tenant_id.into(),
            j.id.into(),
            worker.into(),
        ],
    ))
    .await?;
    tx.commit().await?;
    Ok(if res.rows_affected() == 1 { status } else { "lost" })
}

/// Returns jobs whose lease expired (their worker died, or the job ran past its lease) to the
/// queue, or dead-letters them when they have used up their attempts. Returns the jobs it took
/// back, as they are now (`status` `"ready"` or `"dead"`): a dead one's handler is to be told
/// (`worker::reap` does).
pub async fn reap_expired(db: &Db) -> Result<Vec<job::Model>, DbErr> {
    let now = repo::now();
    let tx = worker_tx(db).await?;
    let rows = tx
        .query_all_raw(stmt(
            db.backend(),
            "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'ready' END,
                    locked_by = NULL, locked_until = NULL, last_error = 'lease expired', updated_at = $1
             WHERE status = 'running' AND locked_until < $1
             RETURNING *",
            vec![now.into()],
        ))
        .await?;
    let jobs = rows.iter().map(|r| job::Model::from_query_result(r, "")).collect::<Result<Vec<_>, _>>()?;
    tx.commit().await?;
    Ok(jobs)
}

/// Hands a stopping worker's running jobs back to the queue at once, without counting the attempt,
/// so another worker takes them now rather than when their leases expire. Returns how many.
pub async fn release(db: &Db, worker: &str) -> Result<u64, DbErr> {
    let tx = worker_tx(db).await?;
    let res = tx
        .execute_raw(stmt(
            db.backend(),
            "UPDATE jobs SET status = 'ready', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                    run_at = $1, locked_by = NULL, locked_until = NULL, last_error = 'released at shutdown',
                    updated_at = $1
             WHERE status = 'running' AND locked_by = $2",
            vec![repo::now().into(), worker.into()],
        ))
        .await?;
    tx.commit().await?;
    Ok(res.rows_affected())
}

/// Deletes finished (`done`) jobs last changed before `before`, at most `limit` at a time so the
/// table's churn stays in small transactions. Dead-lettered jobs are kept for inspection.
pub async fn prune_done(db: &Db, before: DateTime<Utc>, limit: u64) -> Result<u64, DbErr> {
    let tx = worker_tx(db).await?;
    let res = tx
        .execute_raw(stmt(
            db.backend(),
            "DELETE FROM jobs WHERE (tenant_id, id) IN
               (SELECT tenant_id, id FROM jobs WHERE status = 'done' AND updated_at < $1 LIMIT $2)",
            vec![before.into(), (limit as i64).into()],
        ))
        .await?;
    tx.commit().await?;
    Ok(res.rows_affected())
}

/// The queue across tenants, for /metrics: jobs by queue, kind and status (ready, running, dead),
/// how many ready ones are due, and the oldest due job's `run_at`.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct QueueStat {
    pub queue: String,
    pub kind: String,
    pub status: String,
    pub jobs: i64,
    pub due: i64,
    pub oldest_due: Option<DateTime<Utc>>,
}

pub async fn queue_stats(db: &Db) -> Result<Vec<QueueStat>, DbErr> {
    let tx = worker_tx(db).await?;
    let stats = QueueStat::find_by_statement(stmt(
        db.backend(),
        "SELECT queue, kind, status, count(*) AS jobs,
                sum(CASE WHEN status = 'ready' AND run_at <= $1 THEN 1 ELSE 0 END) AS due,
                min(CASE WHEN status = 'ready' AND run_at <= $1 THEN run_at END) AS oldest_due
         FROM jobs WHERE status IN ('ready', 'running', 'dead')
         GROUP BY queue, kind, status ORDER BY queue, kind, status",
        vec![repo::now().into()],
    ))
    .all(&tx)
    .await?;
    tx.commit().await?;
    Ok(stats)
}

/// Enqueues the due occurrences of recurring schedules (one job per occurrence, deduplicated, so
/// several workers ticking at once enqueue it once) and moves each schedule to its next time.
pub async fn tick_schedules(db: &Db) -> Result<u64, DbErr> {
    use crate::db::entities::job_schedule;
    use sea_orm::{ColumnTrait, QueryFilter};
    let now = repo::now();
    let tx = worker_tx(db).await?;
    let due = job_schedule::Entity::find().filter(job_schedule::Column::NextRunAt.lte(now)).all(&tx).await?;
    tx.commit().await?;
    let mut enqueued = 0;
    for sch in due {
        let s = db.scoped(sch.tenant_id, TxMode::Write).await?;
        let key = format!("schedule:{}:{}", sch.name, sch.next_run_at.timestamp());
        let mut job = NewJob::new(&sch.kind, sch.payload.clone());
        job.dedup_key = Some(key);
        if enqueue(&s, job).await?.is_some() {
            enqueued += 1;
        }
        let step = chrono::Duration::seconds(i64::from(sch.interval_seconds.max(1)));
        let mut next = sch.next_run_at + step;
        while next <= now {
            next += step;
        }
        job_schedule::Entity::update_many()
            .col_expr(job_schedule::Column::NextRunAt, sea_orm::sea_query::Expr::value(next))
            .col_expr(job_schedule::Column::UpdatedAt, sea_orm::sea_query::Expr::value(now))
            .filter(job_schedule::Column::TenantId.eq(s.tenant()))
            .filter(job_schedule::Column::Name.eq(sch.name.as_str()))
            .filter(job_schedule::Column::NextRunAt.eq(sch.next_run_at))
            .exec(&s.tx)
            .await?;
        s.commit().await?;
    }
    Ok(enqueued)
}

/// Creates or replaces a recurring schedule for the tenant of `s`.
pub async fn schedule(
    s: &Scoped,
    name: &str,
    kind: &str,
    payload: serde_json::Value,
    every: Duration,
    first_run: DateTime<Utc>,
) -> Result<(), DbErr> {
    use crate::db::entities::job_schedule;
    let row = job_schedule::ActiveModel {
        tenant_id: sea_orm::ActiveValue::Set(s.tenant()),
        name: sea_orm::ActiveValue::Set(name.to_owned()),
        kind: sea_orm::ActiveValue::Set(kind.to_owned()),
        payload: sea_orm::ActiveValue::Set(payload),
        interval_seconds: sea_orm::ActiveValue::Set(i32::try_from(every.as_secs()).unwrap_or(i32::MAX).max(1)),
        next_run_at: sea_orm::ActiveValue::Set(first_run),
        updated_at: sea_orm::ActiveValue::Set(repo::now()),
    };
    job_schedule::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([job_schedule::Column::TenantId, job_schedule::Column::Name])
                .update_columns([
                    job_schedule::Column::Kind,
                    job_schedule::Column::Payload,
                    job_schedule::Column::IntervalSeconds,
                    job_schedule::Column::NextRunAt,
                    job_schedule::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&s.tx)
        .await?;
    Ok(())
}

/// How many of the tenant's jobs are ready to run, counted up to `cap` (so the count costs at most
/// `cap` index entries however long the queue is).
pub async fn waiting(s: &Scoped, cap: u64) -> Result<u64, DbErr> {
    #[derive(FromQueryResult)]
    struct Count {
        n: i64,
    }
    let count = Count::find_by_statement(stmt(
        s.tx.get_database_backend(),
        "SELECT count(*) AS n FROM (SELECT 1 FROM jobs WHERE tenant_id = $1 AND status = 'ready' LIMIT $2) w",
        vec![s.tenant().into(), i64::try_from(cap).unwrap_or(i64::MAX).into()],
    ))
    .one(&s.tx)
    .await?;
    Ok(count.map_or(0, |c| u64::try_from(c.n).unwrap_or(0)))
}

/// Counts a tenant's jobs by status (for tests and the API).
pub async fn counts(s: &Scoped) -> Result<std::collections::BTreeMap<String, i64>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let rows = job::Entity::find().filter(job::Column::TenantId.eq(s.tenant())).all(&s.tx).await?;
    let mut out = std::collections::BTreeMap::new();
    for r in rows {
        *out.entry(r.status).or_insert(0) += 1;
    }
    Ok(out)
}
