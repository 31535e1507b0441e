//! Tool-call counters and latency histograms, rendered as Prometheus text. The router records
//! every call; the HTTP server serves the text at `/metrics`, and a publisher (CloudWatch) can take
//! per-period totals with [`ToolMetrics::take_window`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0];

#[derive(Default)]
struct Latency {
    /// Calls at or under each bucket's bound (not cumulative; summed when rendered).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

/// One tool's calls since the previous [`ToolMetrics::take_window`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolWindow {
    pub calls: u64,
    /// Calls whose outcome was not `success`.
    pub errors: u64,
    pub latency_sum: Duration,
    pub latency_min: Duration,
    pub latency_max: Duration,
}

/// Calls by (tool, outcome) and latency by tool.
#[derive(Default)]
pub struct ToolMetrics {
    calls: Mutex<BTreeMap<(String, &'static str), u64>>,
    latency: Mutex<BTreeMap<String, Latency>>,
    window: Mutex<BTreeMap<String, ToolWindow>>,
}

impl ToolMetrics {
    /// Records one call: `outcome` is `success` or an error kind.
    pub fn record(&self, tool: &str, outcome: &'static str, took: Duration) {
        *self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((tool.to_string(), outcome))
            .or_default() += 1;
        let seconds = took.as_secs_f64();
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let l = latency.entry(tool.to_string()).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            l.buckets[i] += 1;
        }
        l.count += 1;
        l.sum_seconds += seconds;
        drop(latency);
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let w = window.entry(tool.to_string()).or_default();
        w.latency_min = if w.calls == 0 {
            took
        } else {
            w.latency_min.min(took)
        };
        w.latency_max = w.latency_max.max(took);
        w.calls += 1;
        w.errors += u64::from(outcome != "success");
        w.latency_sum += took;
    }

    /// Each tool's calls since the previous call of this method (or since start), and a fresh
    /// window. Meant for one periodic publisher.
    pub fn take_window(&self) -> BTreeMap<String, ToolWindow> {
        std::mem::take(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Appends the Prometheus text of the counters and histograms.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP mlops_tool_calls_total Tool calls by tool and outcome (success or the error kind).\n# TYPE mlops_tool_calls_total counter\n");
        for ((tool, outcome), n) in self.calls.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "mlops_tool_calls_total{{tool=\"{tool}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP mlops_tool_call_duration_seconds Tool call latency.\n# TYPE mlops_tool_call_duration_seconds histogram\n");
        for (tool, l) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(l.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "mlops_tool_call_duration_seconds_bucket{{tool=\"{tool}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "mlops_tool_call_duration_seconds_bucket{{tool=\"{tool}\",le=\"+Inf\"}} {}\nmlops_tool_call_duration_seconds_sum{{tool=\"{tool}\"}} {}\nmlops_tool_call_duration_seconds_count{{tool=\"{tool}\"}} {}",
                l.count, l.sum_seconds, l.count
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = ToolMetrics::default();
        m.record("load_dataset", "success", Duration::from_millis(3));
        m.record("load_dataset", "success", Duration::from_millis(70));
        m.record("load_dataset", "validation", Duration::from_micros(500));
        let mut text = String::new();
        m.render(&mut text);
        assert!(
            text.contains("mlops_tool_calls_total{tool=\"load_dataset\",outcome=\"success\"} 2")
        );
        assert!(
            text.contains("mlops_tool_calls_total{tool=\"load_dataset\",outcome=\"validation\"} 1")
        );
        assert!(text.contains(
            "mlops_tool_call_duration_seconds_bucket{tool=\"load_dataset\",le=\"0.005\"} 2"
        ));
        assert!(text.contains(
            "mlops_tool_call_duration_seconds_bucket{tool=\"load_dataset\",le=\"0.1\"} 3"
        ));
        assert!(text.contains("mlops_tool_call_duration_seconds_count{tool=\"load_dataset\"} 3"));
    }

    #[test]
    fn windows_hold_the_calls_since_the_last_take() {
        let m = ToolMetrics::default();
        m.record("train", "success", Duration::from_millis(30));
        m.record("train", "validation", Duration::from_millis(10));
        let w = m.take_window();
        assert_eq!(
            w["train"],
            ToolWindow {
                calls: 2,
                errors: 1,
                latency_sum: Duration::from_millis(40),
                latency_min: Duration::from_millis(10),
                latency_max: Duration::from_millis(30),
            }
        );
        assert!(m.take_window().is_empty());
        m.record("train", "success", Duration::from_millis(5));
        assert_eq!(m.take_window()["train"].calls, 1);
        let mut text = String::new();
        m.render(&mut text);
        assert!(text.contains("mlops_tool_calls_total{tool=\"train\",outcome=\"success\"} 2"));
    }
}
