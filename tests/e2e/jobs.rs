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
use qm_tests::{TestApp, TestTenant};
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
    assert_eq!(jobs::reap_expired(&app.state.db).await.expect("reap"), 1);
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
