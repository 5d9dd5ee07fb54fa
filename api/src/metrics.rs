//! Prometheus metrics: request counts and latency histograms by GraphQL operation and outcome.
//! Small enough to keep in-house: one mutex-guarded map rendered as the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Distinct operation names kept; more are counted as "other" so clients cannot blow up memory.
const MAX_OPERATIONS: usize = 200;

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, &'static str), Series>>,
}

fn sanitize(op: &str) -> String {
    op.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect()
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
        out
    }
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
}
