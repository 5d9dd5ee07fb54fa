//! The worker loop: reap expired leases, enqueue due schedules, claim, run handlers, record results.
//! Runs inside `quartermaster serve` (unless `--no-workers`) and as `quartermaster worker`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::db::entities::job;
use crate::state::AppState;

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Try again later, after the default backoff.
    #[error("{0}")]
    Retry(String),
    /// Try again at this time (a receiver's Retry-After, a schedule).
    #[error("{0}")]
    RetryAt(String, DateTime<Utc>),
    /// Do not try again: dead-letter the job.
    #[error("{0}")]
    Permanent(String),
}

impl From<sea_orm::DbErr> for JobError {
    fn from(e: sea_orm::DbErr) -> Self {
        JobError::Retry(format!("database: {e}"))
    }
}

/// Runs one kind of job. Must be idempotent: a job can run more than once.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn run(&self, state: &AppState, job: &job::Model) -> Result<(), JobError>;

    /// Called when the job is dead-lettered (a permanent error, its attempts used up, or its lease
    /// expiring on its last attempt: `error` is then "lease expired"), with the error: what the
    /// job stood for (a run, say) is to be marked failed rather than left waiting for a job that
    /// will not come back. Nothing by default. Called once, unless the worker stops between
    /// dead-lettering the job and the call.
    async fn dead(&self, _state: &AppState, _job: &job::Model, _error: &str) -> Result<(), JobError> {
        Ok(())
    }
}

/// The handlers a worker knows, by job kind.
#[derive(Default, Clone)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl Registry {
    pub fn with(mut self, kind: &str, handler: impl Handler) -> Self {
        self.handlers.insert(kind.to_owned(), Arc::new(handler));
        self
    }

    /// Every handler the application ships.
    pub fn standard() -> Self {
        let r = crate::webhooks::register(Self::default());
        let r = crate::services::forecast::register(crate::alerts::register(r));
        let r = crate::services::sync::register(crate::services::replenish::register(r));
        let r = crate::services::pricing::register(crate::services::routing::register(r));
        crate::services::contracts::evaluate::register(crate::services::contracts::ledger::register(r))
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub id: String,
    pub queue: String,
    pub concurrency: usize,
    pub lease: Duration,
    pub poll: Duration,
    /// After a stop, how long running jobs may finish before they are handed back to the queue.
    pub shutdown_grace: Duration,
    /// Finished jobs older than this are deleted; `None` keeps them.
    pub retention: Option<Duration>,
}

impl WorkerConfig {
    /// The worker the configuration describes (`worker_*` and `job_retention_days` settings).
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            concurrency: config.worker_concurrency,
            lease: Duration::from_secs(config.worker_lease_seconds),
            shutdown_grace: Duration::from_secs(config.worker_shutdown_seconds),
            retention: (config.job_retention_days > 0)
                .then(|| Duration::from_secs(u64::from(config.job_retention_days) * 86_400)),
            ..Self::default()
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            queue: super::DEFAULT_QUEUE.into(),
            concurrency: 8,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(20),
            retention: Some(Duration::from_secs(7 * 86_400)),
        }
    }
}

/// How often a worker reaps expired leases and enqueues due schedules.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(2);
/// How often a worker deletes finished jobs past their retention, and how many at most each time.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_BATCH: u64 = 5000;

/// Runs until `shutdown` turns true, then lets running jobs finish for `cfg.shutdown_grace` and
/// hands what still runs back to the queue.
pub async fn run(state: AppState, registry: Registry, cfg: WorkerConfig, mut shutdown: watch::Receiver<bool>) {
    let registry = Arc::new(registry);
    let slots = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let mut running = JoinSet::new();
    let mut last_maintenance = Instant::now() - Duration::from_secs(3600);
    let mut last_prune = Instant::now() - Duration::from_secs(3600);
    tracing::info!(worker = %cfg.id, concurrency = cfg.concurrency, "worker started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        while running.try_join_next().is_some() {}
        if last_maintenance.elapsed() > MAINTENANCE_EVERY {
            last_maintenance = Instant::now();
            let prune = last_prune.elapsed() > PRUNE_EVERY;
            if prune {
                last_prune = Instant::now();
            }
            maintain(&state, &registry, &cfg, prune).await;
        }
        let free = slots.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match super::claim(&state.db, &cfg.id, &cfg.queue, free as u64, cfg.lease).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed");
                    Vec::new()
                }
            }
        };
        // Sleep only when the queue had less than we could take; otherwise go straight on.
        let idle = free > 0 && claimed.len() < free;
        let busy = free == 0;
        for j in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else { break };
            let (state, registry, cfg) = (state.clone(), registry.clone(), cfg.clone());
            let span =
                tracing::info_span!("job", kind = %j.kind, job = %j.id, tenant = %j.tenant_id, attempt = j.attempts);
            running.spawn(
                async move {
                    execute(&state, &registry, &cfg, &j).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
        if idle {
            tokio::select! {
                _ = tokio::time::sleep(cfg.poll) => {}
                _ = shutdown.changed() => {}
            }
        } else if busy {
            // Every slot is taken: wait for one to free up.
            tokio::select! {
                permit = slots.clone().acquire_owned() => drop(permit),
                _ = shutdown.changed() => {}
            }
        }
    }
    // Claim nothing more; let running jobs finish within the grace period.
    let in_flight = running.len();
    let finished =
        tokio::time::timeout(cfg.shutdown_grace, async { while running.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        // Stop what still runs (its transactions roll back) and hand it to another worker now.
        running.abort_all();
        while running.join_next().await.is_some() {}
        match super::release(&state.db, &cfg.id).await {
            Ok(n) => tracing::info!(worker = %cfg.id, released = n, "handed unfinished jobs back to the queue"),
            Err(e) => tracing::warn!(error = %e, "handing jobs back failed; their leases will expire"),
        }
    }
    tracing::info!(worker = %cfg.id, in_flight, "worker stopped");
}

/// Returns expired leases to the queue (see [`reap`]), enqueues due schedules and, with `prune`,
/// deletes old finished jobs.
async fn maintain(state: &AppState, registry: &Registry, cfg: &WorkerConfig, prune: bool) {
    if let Err(e) = reap(state, registry).await {
        tracing::warn!(error = %e, "reaping expired leases failed");
    }
    if let Err(e) = super::tick_schedules(&state.db).await {
        tracing::warn!(error = %e, "enqueuing scheduled jobs failed");
    }
    if let Some(keep) = cfg.retention.filter(|_| prune) {
        let before = Utc::now() - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(7));
        match super::prune_done(&state.db, before, PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "deleted finished jobs past their retention"),
            Err(e) => tracing::warn!(error = %e, "deleting old finished jobs failed"),
        }
    }
}

/// Takes back the jobs whose leases expired (their worker died or they ran past their lease):
/// those with attempts left go back to the queue, the others are dead-lettered and their
/// handlers' `dead` hooks called. Returns how many were taken back.
pub async fn reap(state: &AppState, registry: &Registry) -> Result<usize, sea_orm::DbErr> {
    let reaped = super::reap_expired(&state.db).await?;
    if reaped.is_empty() {
        return Ok(0);
    }
    let dead: Vec<_> = reaped.iter().filter(|j| j.status == "dead").collect();
    tracing::warn!(recovered = reaped.len() - dead.len(), dead = dead.len(), "took back jobs whose leases expired");
    for j in dead {
        tracing::warn!(kind = %j.kind, job = %j.id, tenant = %j.tenant_id, "a job's lease expired on its last attempt");
        dead_hook(state, registry, j, j.last_error.as_deref().unwrap_or("lease expired")).await;
    }
    Ok(reaped.len())
}

/// Calls the `dead` hook of `j`'s handler, if it has one.
async fn dead_hook(state: &AppState, registry: &Registry, j: &job::Model, error: &str) {
    if let Some(h) = registry.handlers.get(&j.kind)
        && let Err(hook) = h.dead(state, j, error).await
    {
        tracing::warn!(kind = %j.kind, job = %j.id, error = %hook, "marking a dead-lettered job's work failed did not succeed");
    }
}

async fn execute(state: &AppState, registry: &Registry, cfg: &WorkerConfig, j: &job::Model) {
    let started = Instant::now();
    let result = match registry.handlers.get(&j.kind) {
        None => Err(JobError::Permanent(format!("no handler for job kind {:?}", j.kind))),
        Some(h) => match tokio::time::timeout(cfg.lease.mul_f64(0.9), h.run(state, j)).await {
            Ok(r) => r,
            Err(_) => Err(JobError::Retry("timed out".into())),
        },
    };
    let outcome = match &result {
        Ok(()) => super::complete(&state.db, j, &cfg.id).await.map(|_| "done"),
        Err(e) => {
            let retry_at = match e {
                JobError::Permanent(_) => None,
                JobError::RetryAt(_, at) => Some(*at),
                JobError::Retry(_) => {
                    let jitter = rand::rng().random::<f64>();
                    let delay = qm_integrations::retry::job_backoff(u32::try_from(j.attempts).unwrap_or(1), jitter);
                    Some(Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(1)))
                }
            };
            super::fail(&state.db, j, &cfg.id, &e.to_string(), retry_at).await
        }
    };
    if let Ok(status) = &outcome {
        let outcome = if *status == "ready" { "retried" } else { status };
        state.metrics.observe_job(&j.kind, outcome, started.elapsed());
    }
    if let (Ok("dead"), Err(e)) = (&outcome, &result) {
        dead_hook(state, registry, j, &e.to_string()).await;
    }
    match (outcome, result) {
        (Ok(status), Ok(())) => {
            tracing::debug!(status, elapsed_ms = started.elapsed().as_millis() as u64, "job finished")
        }
        (Ok(status), Err(e)) => tracing::warn!(status, error = %e, "job failed"),
        (Err(db), _) => tracing::warn!(error = %db, "recording the job's outcome failed; its lease will expire"),
    }
}

/// Starts a worker in the background; send `true` on the returned sender to stop it.
pub fn spawn(
    state: AppState,
    registry: Registry,
    cfg: WorkerConfig,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(run(state, registry, cfg, rx));
    (tx, handle)
}

/// Runs every due job to completion in the calling task, then returns how many ran.
/// For tests and one-off maintenance; the long-running loop is [`run`].
pub async fn drain(state: &AppState, registry: &Registry, cfg: &WorkerConfig) -> Result<usize, sea_orm::DbErr> {
    let mut ran = 0;
    loop {
        reap(state, registry).await?;
        super::tick_schedules(&state.db).await?;
        let jobs = super::claim(&state.db, &cfg.id, &cfg.queue, 50, cfg.lease).await?;
        if jobs.is_empty() {
            return Ok(ran);
        }
        for j in &jobs {
            execute(state, registry, cfg, j).await;
            ran += 1;
        }
    }
}
