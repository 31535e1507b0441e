//! Per-model serving metrics for `/metrics`: requests, errors, rows and a latency histogram, plus
//! what the prediction log wrote and dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct ModelStats {
    requests: u64,
    errors: u64,
    rows: u64,
    /// Requests at or under each bucket's bound (not yet cumulative).
    buckets: [u64; BUCKETS.len()],
    seconds: f64,
}

/// Counters for every served model.
#[derive(Default)]
pub struct ServingMetrics {
    models: Mutex<BTreeMap<String, ModelStats>>,
    pub log_written: AtomicU64,
    pub log_dropped: AtomicU64,
}

impl ServingMetrics {
    /// One request to `model` that scored `rows` rows in `seconds`, or failed.
    pub fn observe(&self, model: &str, rows: usize, seconds: f64, ok: bool) {
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let stats = models.entry(model.to_string()).or_default();
        stats.requests += 1;
        if !ok {
            stats.errors += 1;
        }
        stats.rows += rows as u64;
        stats.seconds += seconds;
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            stats.buckets[i] += 1;
        }
    }

    /// Prometheus text (counters and the latency histogram per model).
    pub fn render(&self, loaded_models: usize, evicted: u64, out: &mut String) {
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP mlops_serving_requests_total Prediction requests by model.\n# TYPE mlops_serving_requests_total counter"
        );
        for (m, s) in models.iter() {
            let _ = writeln!(
                out,
                "mlops_serving_requests_total{{model=\"{}\"}} {}",
                escape(m),
                s.requests
            );
        }
        let _ = writeln!(
            out,
            "# HELP mlops_serving_errors_total Failed prediction requests by model.\n# TYPE mlops_serving_errors_total counter"
        );
        for (m, s) in models.iter() {
            let _ = writeln!(
                out,
                "mlops_serving_errors_total{{model=\"{}\"}} {}",
                escape(m),
                s.errors
            );
        }
        let _ = writeln!(
            out,
            "# HELP mlops_serving_rows_total Rows scored by model.\n# TYPE mlops_serving_rows_total counter"
        );
        for (m, s) in models.iter() {
            let _ = writeln!(
                out,
                "mlops_serving_rows_total{{model=\"{}\"}} {}",
                escape(m),
                s.rows
            );
        }
        let _ = writeln!(
            out,
            "# HELP mlops_serving_request_seconds Prediction request latency by model.\n# TYPE mlops_serving_request_seconds histogram"
        );
        for (m, s) in models.iter() {
            let m = escape(m);
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(s.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "mlops_serving_request_seconds_bucket{{model=\"{m}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "mlops_serving_request_seconds_bucket{{model=\"{m}\",le=\"+Inf\"}} {}\nmlops_serving_request_seconds_sum{{model=\"{m}\"}} {}\nmlops_serving_request_seconds_count{{model=\"{m}\"}} {}",
                s.requests, s.seconds, s.requests
            );
        }
        let _ = writeln!(
            out,
            "# HELP mlops_serving_models_loaded Models held in the serving cache.\n# TYPE mlops_serving_models_loaded gauge\nmlops_serving_models_loaded {loaded_models}\n# HELP mlops_serving_models_evicted_total Models dropped from the cache to fit its budget.\n# TYPE mlops_serving_models_evicted_total counter\nmlops_serving_models_evicted_total {evicted}"
        );
        let _ = writeln!(
            out,
            "# HELP mlops_prediction_log_rows_total Rows the prediction log wrote, or dropped (full queue, unreachable store).\n# TYPE mlops_prediction_log_rows_total counter\nmlops_prediction_log_rows_total{{outcome=\"written\"}} {}\nmlops_prediction_log_rows_total{{outcome=\"dropped\"}} {}",
            self.log_written.load(Ordering::Relaxed),
            self.log_dropped.load(Ordering::Relaxed)
        );
    }
}

/// A label value in Prometheus text: `\\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
