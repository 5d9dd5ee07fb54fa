//! Prometheus metrics: request counts and latency histograms by GraphQL operation and outcome, jobs
//! run by this process by kind and outcome, and the job queue across processes (read at scrape
//! time). Small enough to keep in-house: mutex-guarded maps rendered as the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Distinct operation names kept; more are counted as "other" so clients cannot blow up memory.
const MAX_OPERATIONS: usize = 200;

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// (GraphQL operation or job kind, outcome): what a series is keyed by.
type Key = (String, &'static str);

#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<Key, Series>>,
    /// Jobs run by this process: (kind, outcome) → (count, seconds).
    jobs: Mutex<BTreeMap<Key, (u64, f64)>>,
}

fn sanitize(op: &str) -> String {
    op.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect()
}

/// A job kind as a label value: `webhook.deliver` → `webhook_deliver`.
fn kind_label(kind: &str) -> String {
    sanitize(&kind.replace('.', "_"))
}

impl Metrics {
    pub fn observe(&self, operation: &str, outcome: &'static str, elapsed: Duration) {
        let Ok(mut map) = self.series.lock() else { return };
        let mut op = sanitize(operation);
        if op.is_empty() {
            op = "anonymous".into();
        }
        let distinct = map.keys().filter(|(o, _)| *o != op).count();
        if distinct >= MAX_OPERATIONS && !map.keys().any(|(o, _)| *o == op) {
            op = "other".into();
        }
        let s = map.entry((op, outcome)).or_default();
        let secs = elapsed.as_secs_f64();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// A job this process ran: `outcome` is done, retried or dead.
    pub fn observe_job(&self, kind: &str, outcome: &'static str, elapsed: Duration) {
        let Ok(mut map) = self.jobs.lock() else { return };
        let mut kind = kind_label(kind);
        if map.len() >= MAX_OPERATIONS && !map.keys().any(|(k, _)| *k == kind) {
            kind = "other".into();
        }
        let entry = map.entry((kind, outcome)).or_default();
        entry.0 += 1;
        entry.1 += elapsed.as_secs_f64();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(map) = self.series.lock() else { return out };
        out.push_str("# HELP qm_graphql_requests_total GraphQL requests by operation and outcome.\n");
        out.push_str("# TYPE qm_graphql_requests_total counter\n");
        for ((op, outcome), s) in map.iter() {
            let _ = writeln!(out, "qm_graphql_requests_total{{operation=\"{op}\",outcome=\"{outcome}\"}} {}", s.count);
        }
        out.push_str("# HELP qm_graphql_request_duration_seconds GraphQL request latency by operation.\n");
        out.push_str("# TYPE qm_graphql_request_duration_seconds histogram\n");
        for ((op, outcome), s) in map.iter() {
            let labels = format!("operation=\"{op}\",outcome=\"{outcome}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ =
                    writeln!(out, "qm_graphql_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}", s.buckets[i]);
            }
            let _ = writeln!(out, "qm_graphql_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(out, "qm_graphql_request_duration_seconds_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(out, "qm_graphql_request_duration_seconds_count{{{labels}}} {}", s.count);
        }
        drop(map);
        let Ok(jobs) = self.jobs.lock() else { return out };
        out.push_str(
            "# HELP qm_jobs_processed_total Jobs this process ran, by kind and outcome (done, retried, dead).\n",
        );
        out.push_str("# TYPE qm_jobs_processed_total counter\n");
        for ((kind, outcome), (count, _)) in jobs.iter() {
            let _ = writeln!(out, "qm_jobs_processed_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {count}");
        }
        out.push_str(
            "# HELP qm_jobs_processed_seconds_total Time this process spent running jobs, by kind and outcome.\n",
        );
        out.push_str("# TYPE qm_jobs_processed_seconds_total counter\n");
        for ((kind, outcome), (_, secs)) in jobs.iter() {
            let _ = writeln!(out, "qm_jobs_processed_seconds_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {secs}");
        }
        out
    }
}

/// The job queue across every process and tenant: jobs by status, the due backlog, and the age of
/// each queue's oldest due job (0 when nothing is due).
pub fn render_queue(stats: &[crate::jobs::QueueStat], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    out.push_str("# HELP qm_jobs Jobs in the queue by queue, kind and status (ready, running, dead).\n");
    out.push_str("# TYPE qm_jobs gauge\n");
    for s in stats {
        let (queue, kind) = (sanitize(&s.queue), kind_label(&s.kind));
        let _ = writeln!(out, "qm_jobs{{queue=\"{queue}\",kind=\"{kind}\",status=\"{}\"}} {}", s.status, s.jobs);
    }
    out.push_str("# HELP qm_jobs_due Ready jobs whose time has come (the backlog), by queue and kind.\n");
    out.push_str("# TYPE qm_jobs_due gauge\n");
    for s in stats.iter().filter(|s| s.status == "ready") {
        let (queue, kind) = (sanitize(&s.queue), kind_label(&s.kind));
        let _ = writeln!(out, "qm_jobs_due{{queue=\"{queue}\",kind=\"{kind}\"}} {}", s.due);
    }
    let mut oldest: BTreeMap<String, f64> = BTreeMap::new();
    for s in stats.iter().filter(|s| s.status == "ready") {
        let age = s.oldest_due.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        let entry = oldest.entry(sanitize(&s.queue)).or_insert(0.0);
        *entry = entry.max(age);
    }
    out.push_str("# HELP qm_jobs_oldest_due_age_seconds How long the oldest due job of each queue has waited.\n");
    out.push_str("# TYPE qm_jobs_oldest_due_age_seconds gauge\n");
    for (queue, age) in oldest {
        let _ = writeln!(out, "qm_jobs_oldest_due_age_seconds{{queue=\"{queue}\"}} {age}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_render_as_prometheus_text() {
        let m = Metrics::default();
        m.observe("Products", "ok", Duration::from_millis(3));
        m.observe("Products", "ok", Duration::from_millis(300));
        m.observe("bad name!{}", "error", Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("qm_graphql_requests_total{operation=\"Products\",outcome=\"ok\"} 2"), "{text}");
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("operation=\"badname\""), "{text}");
    }

    #[test]
    fn jobs_and_the_queue_render_as_prometheus_text() {
        let m = Metrics::default();
        m.observe_job("webhook.deliver", "done", Duration::from_millis(20));
        m.observe_job("webhook.deliver", "done", Duration::from_millis(30));
        m.observe_job("webhook.deliver", "retried", Duration::from_millis(5));
        let text = m.render();
        assert!(text.contains("qm_jobs_processed_total{kind=\"webhook_deliver\",outcome=\"done\"} 2"), "{text}");
        assert!(text.contains("qm_jobs_processed_total{kind=\"webhook_deliver\",outcome=\"retried\"} 1"), "{text}");
        assert!(
            text.contains("qm_jobs_processed_seconds_total{kind=\"webhook_deliver\",outcome=\"done\"} 0.05"),
            "{text}"
        );

        let now = Utc::now();
        let stat = |kind: &str, status: &str, jobs, due, waited: Option<i64>| crate::jobs::QueueStat {
            queue: "default".into(),
            kind: kind.into(),
            status: status.into(),
            jobs,
            due,
            oldest_due: waited.map(|s| now - chrono::Duration::seconds(s)),
        };
        let text = render_queue(
            &[
                stat("forecast.chunk", "ready", 40, 30, Some(12)),
                stat("webhook.deliver", "ready", 5, 0, None),
                stat("webhook.deliver", "running", 3, 0, None),
                stat("webhook.deliver", "dead", 1, 0, None),
            ],
            now,
        );
        assert!(text.contains("qm_jobs{queue=\"default\",kind=\"forecast_chunk\",status=\"ready\"} 40"), "{text}");
        assert!(text.contains("qm_jobs{queue=\"default\",kind=\"webhook_deliver\",status=\"dead\"} 1"), "{text}");
        assert!(text.contains("qm_jobs_due{queue=\"default\",kind=\"forecast_chunk\"} 30"), "{text}");
        assert!(!text.contains("qm_jobs_due{queue=\"default\",kind=\"webhook_deliver\"} 3"), "{text}");
        assert!(text.contains("qm_jobs_oldest_due_age_seconds{queue=\"default\"} 12"), "{text}");
    }
}
