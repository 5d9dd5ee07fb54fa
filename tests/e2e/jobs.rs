//! Durable jobs: same-transaction enqueue, retries, dead letters, leases, fairness, schedules,
//! and no job claimed twice by concurrent workers.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use qm_api::db::TxMode;
use qm_api::db::entities::job;
use qm_api::jobs::worker::{self, Handler, JobError, Registry, WorkerConfig};
use qm_api::jobs::{self, NewJob};
use qm_api::state::AppState;
use qm_tests::{TestApp, TestTenant, postgres_enabled};
use sea_orm::EntityTrait;
use serde_json::json;

/// Fails until it has been called `succeed_on` times, counting calls.
struct Flaky {
    calls: Arc<AtomicUsize>,
    succeed_on: usize,
}

#[async_trait::async_trait]
impl Handler for Flaky {
    async fn run(&self, _: &AppState, _: &job::Model) -> Result<(), JobError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.succeed_on { Ok(()) } else { Err(JobError::Retry(format!("failure {n}"))) }
    }
}

async fn enqueue(app: &TestApp, t: &TestTenant, kind: &str, n: usize) {
    let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
    for i in 0..n {
        jobs::enqueue(&s, NewJob::new(kind, json!({ "i": i }))).await.expect("enqueue");
    }
    s.commit().await.expect("commit");
}

async fn counts(app: &TestApp, t: &TestTenant) -> std::collections::BTreeMap<String, i64> {
    let s = app.state.db.scoped(t.id, TxMode::Read).await.expect("tx");
    let c = jobs::counts(&s).await.expect("counts");
    s.commit().await.expect("commit");
    c
}

#[tokio::test]
async fn a_rolled_back_change_takes_its_job_with_it() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
    jobs::enqueue(&s, NewJob::new("x", json!({}))).await.expect("enqueue");
    drop(s); // rolled back
    assert!(counts(&app, &t).await.is_empty());
    enqueue(&app, &t, "x", 1).await;
    assert_eq!(counts(&app, &t).await.get("ready"), Some(&1));
}

#[tokio::test]
async fn failures_retry_with_backoff_and_end_in_the_dead_letter_state() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let registry = Registry::default().with("flaky", Flaky { calls: calls.clone(), succeed_on: 3 });
    let cfg = WorkerConfig::default();
    enqueue(&app, &t, "flaky", 1).await;
    worker::drain(&app.state, &registry, &cfg).await.expect("drain");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the retry is scheduled in the future");
    for _ in 0..2 {
        app.make_jobs_due().await;
        worker::drain(&app.state, &registry, &cfg).await.expect("drain");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(counts(&app, &t).await.get("done"), Some(&1));

    // A job that never succeeds is dead after max_attempts; an unknown kind is dead at once.
    let never =
        Registry::default().with("never", Flaky { calls: Arc::new(AtomicUsize::new(0)), succeed_on: usize::MAX });
    let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
    let mut j = NewJob::new("never", json!({}));
    j.max_attempts = 3;
    jobs::enqueue(&s, j).await.expect("enqueue");
    jobs::enqueue(&s, NewJob::new("nobody-handles-this", json!({}))).await.expect("enqueue");
    s.commit().await.expect("commit");
    for _ in 0..5 {
        app.make_jobs_due().await;
        worker::drain(&app.state, &never, &cfg).await.expect("drain");
    }
    assert_eq!(counts(&app, &t).await.get("dead"), Some(&2));
}

#[tokio::test]
async fn a_crashed_workers_job_is_picked_up_after_its_lease() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    enqueue(&app, &t, "x", 1).await;
    let lost = jobs::claim(&app.state.db, "crashed", "default", 10, Duration::from_millis(200)).await.expect("claim");
    assert_eq!(lost.len(), 1);
    assert!(
        jobs::claim(&app.state.db, "other", "default", 10, Duration::from_secs(60)).await.expect("claim").is_empty()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reaped = jobs::reap_expired(&app.state.db).await.expect("reap");
    assert_eq!(reaped.iter().map(|j| (j.id, j.status.as_str())).collect::<Vec<_>>(), [(lost[0].id, "ready")]);
    let again = jobs::claim(&app.state.db, "other", "default", 10, Duration::from_secs(60)).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, lost[0].id);
    assert_eq!(again[0].attempts, 2);
    // The crashed worker cannot complete a job it no longer holds.
    assert!(!jobs::complete(&app.state.db, &lost[0], "crashed").await.expect("complete"));
    assert!(jobs::complete(&app.state.db, &again[0], "other").await.expect("complete"));
}

#[tokio::test]
async fn one_tenants_flood_does_not_starve_another() {
    let app = TestApp::spawn().await;
    let big = app.tenant("big").await;
    let small = app.tenant("small").await;
    enqueue(&app, &big, "x", 200).await;
    enqueue(&app, &small, "x", 3).await;
    let first = jobs::claim(&app.state.db, "w", "default", 6, Duration::from_secs(60)).await.expect("claim");
    let small_share = first.iter().filter(|j| j.tenant_id == small.id).count();
    assert_eq!(small_share, 3, "the small tenant's jobs are among the first claimed");
}

#[tokio::test]
async fn concurrent_claimers_never_take_the_same_job() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    enqueue(&app, &t, "x", 300).await;
    let results = join_all((0..6).map(|w| {
        let db = app.state.db.clone();
        async move {
            let mut mine = Vec::new();
            loop {
                let got =
                    jobs::claim(&db, &format!("w{w}"), "default", 7, Duration::from_secs(60)).await.expect("claim");
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        }
    }))
    .await;
    let all: Vec<_> = results.into_iter().flatten().collect();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 300);
    assert_eq!(unique.len(), 300, "no job was claimed twice");
}

#[tokio::test]
async fn a_schedule_enqueues_each_occurrence_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let s = app.state.db.scoped(t.id, TxMode::Write).await.expect("tx");
    let first = chrono::Utc::now() - chrono::Duration::seconds(1);
    jobs::schedule(&s, "nightly-forecast", "x", json!({}), Duration::from_secs(86_400), first).await.expect("schedule");
    s.commit().await.expect("commit");
    let ticks = join_all((0..4).map(|_| jobs::tick_schedules(&app.state.db))).await;
    let enqueued: u64 = ticks.into_iter().map(|r| r.expect("tick")).sum();
    assert_eq!(enqueued, 1);
    assert_eq!(counts(&app, &t).await.get("ready"), Some(&1));
    assert_eq!(jobs::tick_schedules(&app.state.db).await.expect("tick"), 0, "the next run is tomorrow");
}

/// Runs until it is told to stop (or forever), counting starts and finishes.
struct Slow {
    sleep: Duration,
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Handler for Slow {
    async fn run(&self, _: &AppState, _: &job::Model) -> Result<(), JobError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.sleep).await;
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_stopping_worker_finishes_short_jobs_and_hands_long_ones_back_at_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let slow = |sleep| Slow { sleep, started: started.clone(), finished: finished.clone() };
    let registry = Registry::default()
        .with("short", slow(Duration::from_millis(300)))
        .with("long", slow(Duration::from_secs(3600)));
    enqueue(&app, &t, "short", 2).await;
    enqueue(&app, &t, "long", 1).await;
    let cfg = WorkerConfig {
        id: "stopping".into(),
        shutdown_grace: Duration::from_secs(2),
        lease: Duration::from_secs(600),
        ..WorkerConfig::default()
    };
    let (stop, handle) = worker::spawn(app.state.clone(), registry, cfg);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while started.load(Ordering::SeqCst) < 3 {
        assert!(std::time::Instant::now() < deadline, "the worker did not start the three jobs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = std::time::Instant::now();
    stop.send(true).expect("stop");
    handle.await.expect("worker task");
    // The grace period bounds the stop, not the long job's hour or its ten-minute lease.
    assert!(stopping.elapsed() < Duration::from_secs(10), "stopped in {:?}", stopping.elapsed());
    assert_eq!(finished.load(Ordering::SeqCst), 2, "the short jobs finished within the grace period");
    assert_eq!(counts(&app, &t).await.get("done"), Some(&2));

    // The long one is ready again now, its attempt not counted, and the next worker runs it.
    let all = job::Entity::find().all(app.owner_db.conn()).await.expect("jobs");
    let long = all.iter().find(|j| j.kind == "long").expect("the long job");
    assert_eq!((long.status.as_str(), long.attempts, long.locked_by.as_deref()), ("ready", 0, None));
    assert_eq!(long.last_error.as_deref(), Some("released at shutdown"));
    let next = jobs::claim(&app.state.db, "next", "default", 10, Duration::from_secs(60)).await.expect("claim");
    assert_eq!(next.iter().map(|j| j.id).collect::<Vec<_>>(), vec![long.id]);
    assert_eq!(next[0].attempts, 1);
}

#[tokio::test]
async fn a_small_tenant_is_claimed_next_even_behind_a_backlog_of_thousands() {
    // PostgreSQL walks the tenants with ready jobs; SQLite (one process) ranks the 2,000 oldest.
    if !postgres_enabled("fairness beyond the 2,000 oldest due jobs is PostgreSQL's claim") {
        return;
    }
    let app = TestApp::spawn().await;
    let big = app.tenant("big").await;
    let small = app.tenant("small").await;
    let s = app.state.db.scoped(big.id, TxMode::Write).await.expect("tx");
    // Enqueued in bulk, all older than the small tenant's jobs.
    let stmt = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "INSERT INTO jobs (tenant_id, id, queue, kind, payload, status, attempts, max_attempts, run_at,
                           created_at, updated_at)
         SELECT $1, gen_random_uuid(), 'default', 'x', '{}'::json, 'ready', 0, 10, now() - interval '1 hour',
                now(), now()
         FROM generate_series(1, 5000)",
        [big.id.into()],
    );
    sea_orm::ConnectionTrait::execute_raw(&s.tx, stmt).await.expect("bulk enqueue");
    s.commit().await.expect("commit");
    enqueue(&app, &small, "x", 3).await;
    let first = jobs::claim(&app.state.db, "w", "default", 6, Duration::from_secs(60)).await.expect("claim");
    assert_eq!(first.len(), 6);
    let small_share = first.iter().filter(|j| j.tenant_id == small.id).count();
    assert_eq!(small_share, 3, "the small tenant's jobs are in the first claim behind 5,000 of another's");
}

#[tokio::test]
async fn finished_jobs_past_their_retention_are_deleted_and_others_kept() {
    let app = TestApp::spawn().await;
    let t = app.tenant("acme").await;
    enqueue(&app, &t, "x", 3).await;
    let claimed = jobs::claim(&app.state.db, "w", "default", 3, Duration::from_secs(60)).await.expect("claim");
    for j in &claimed[..2] {
        assert!(jobs::complete(&app.state.db, j, "w").await.expect("complete"));
    }
    // A worker that no longer holds the job (its lease went to another) records nothing, so its
    // handler is not told the job died.
    assert_eq!(jobs::fail(&app.state.db, &claimed[2], "other", "late", None).await.expect("fail"), "lost");
    assert_eq!(jobs::fail(&app.state.db, &claimed[2], "w", "broken", None).await.expect("dead-letter"), "dead");
    enqueue(&app, &t, "x", 1).await;
    // Nothing is old enough yet.
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(jobs::prune_done(&app.state.db, an_hour_ago, 100).await.expect("prune"), 0);
    // Everything finished before now: the done ones go, one batch at a time; dead and ready stay.
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(jobs::prune_done(&app.state.db, later, 1).await.expect("prune"), 1);
    assert_eq!(jobs::prune_done(&app.state.db, later, 100).await.expect("prune"), 1);
    let c = counts(&app, &t).await;
    assert_eq!((c.get("done"), c.get("dead"), c.get("ready")), (None, Some(&1), Some(&1)), "{c:?}");
}

#[tokio::test]
async fn on_demand_runs_are_refused_while_the_tenants_queue_is_full_and_others_go_on() {
    let app = TestApp::spawn_with(|c| c.tenant_queue_limit = 5).await;
    let (busy, calm) = (app.tenant("busy").await, app.tenant("calm").await);
    enqueue(&app, &busy, "x", 5).await;
    let run =
        "mutation { forecastRun(input: { horizon: 14 }) { forecastRun { id } userErrors { field code message } } }";
    let d = app.data(&busy.owner_key, run, json!({})).await;
    assert_eq!(d["forecastRun"]["forecastRun"], json!(null));
    assert_eq!(d["forecastRun"]["userErrors"][0]["code"], "BUSY", "{d}");
    assert_eq!(d["forecastRun"]["userErrors"][0]["field"], json!(["input"]));
    let d = app
        .data(
            &busy.owner_key,
            "mutation { replenishmentRun { replenishmentRun { id } userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["replenishmentRun"]["userErrors"][0]["code"], "BUSY", "{d}");
    // Nothing was queued by the refused runs.
    assert_eq!(counts(&app, &busy).await.get("ready"), Some(&5));
    // Another tenant's runs are not held back.
    let d = app.data(&calm.owner_key, run, json!({})).await;
    assert_eq!(d["forecastRun"]["userErrors"], json!([]), "{d}");
    assert!(d["forecastRun"]["forecastRun"]["id"].is_string());
    // Once the queue is below the limit, the run is taken.
    let claimed = jobs::claim(&app.state.db, "w", "default", 1, Duration::from_secs(60)).await.expect("claim");
    let claimed: Vec<_> = claimed.into_iter().filter(|j| j.tenant_id == busy.id).collect();
    assert_eq!(claimed.len(), 1, "the busy tenant's oldest job comes first (it is older than calm's run)");
    let d = app.data(&busy.owner_key, run, json!({})).await;
    assert_eq!(d["forecastRun"]["userErrors"], json!([]), "{d}");
}
