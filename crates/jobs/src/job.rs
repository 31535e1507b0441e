//! A job: a name, a status, progress, a metrics history and a cancellation handle.

use std::sync::Mutex;

use mlops_ml::MetricPoint;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// Most history points per metric a report carries (a 5000-tree forest records 5000).
pub const HISTORY_POINTS: usize = 100;

impl JobSnapshot {
    /// Thins the history to at most `HISTORY_POINTS` (100) per metric, keeping each metric's first
    /// and last points, and records the full count.
    pub fn bounded(mut self) -> Self {
        let total = self.metrics_history.len().max(self.metrics_history_total);
        let mut by_metric: Vec<(String, Vec<MetricPoint>)> = Vec::new();
        for p in self.metrics_history.drain(..) {
            match by_metric.iter_mut().find(|(m, _)| *m == p.metric) {
                Some((_, v)) => v.push(p),
                None => by_metric.push((p.metric.clone(), vec![p])),
            }
        }
        for (_, points) in by_metric {
            let n = points.len();
            if n <= HISTORY_POINTS {
                self.metrics_history.extend(points);
                continue;
            }
            let step = (n - 1) as f64 / (HISTORY_POINTS - 1) as f64;
            let keep: std::collections::BTreeSet<usize> = (0..HISTORY_POINTS)
                .map(|i| ((i as f64 * step).round() as usize).min(n - 1))
                .collect();
            self.metrics_history.extend(
                points
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| keep.contains(i))
                    .map(|(_, p)| p),
            );
        }
        self.metrics_history_total = total;
        self
    }
}

/// A job as reported to clients.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct JobSnapshot {
    /// The job's name (for a training job, its `training_job_name`).
    #[serde(rename = "training_job_name")]
    pub name: String,
    /// What the job runs (for a training job, its algorithm).
    #[serde(rename = "algorithm")]
    pub label: String,
    pub status: JobStatus,
    /// Fraction done, 0 to 1.
    pub progress: f64,
    pub message: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub metrics: serde_json::Value,
    /// At most `HISTORY_POINTS` (100) points per metric, evenly spaced and always with the last one;
    /// `metrics_history_total` says how many were recorded.
    pub metrics_history: Vec<MetricPoint>,
    #[serde(default)]
    pub metrics_history_total: usize,
    /// Where the job's result was saved (for a training job, its model folder).
    #[serde(rename = "model_uri")]
    pub output_uri: Option<String>,
    pub error: Option<String>,
}

/// A running or finished job.
pub struct Job {
    pub cancel: CancellationToken,
    pub(crate) started: std::time::Instant,
    pub(crate) state: Mutex<JobSnapshot>,
}

impl Job {
    /// Every history point recorded (saved beside the model).
    pub fn full_history(&self) -> Vec<MetricPoint> {
        self.lock().metrics_history.clone()
    }

    /// The job as reported: its history thinned to [`HISTORY_POINTS`] per metric.
    pub fn snapshot(&self) -> JobSnapshot {
        self.lock().clone().bounded()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobSnapshot> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_progress(&self, progress: f64, message: Option<String>) {
        let mut s = self.lock();
        s.progress = progress.clamp(0.0, 1.0);
        s.message = message;
    }

    pub fn push_metric(&self, step: usize, metric: &str, value: f64) {
        self.lock().metrics_history.push(MetricPoint {
            step,
            metric: metric.into(),
            value,
        });
    }

    /// Records the end of the job.
    pub fn finish(
        &self,
        status: JobStatus,
        metrics: serde_json::Value,
        output_uri: Option<String>,
        error: Option<String>,
    ) {
        let mut s = self.lock();
        s.status = status;
        if status == JobStatus::Completed {
            s.progress = 1.0;
        }
        s.metrics = metrics;
        s.output_uri = output_uri;
        s.error = error;
        s.finished_at = Some(now());
        s.duration_ms = Some(self.started.elapsed().as_millis() as u64);
    }
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_histories_are_thinned_keeping_the_ends() {
        let job = crate::JobManager::new()
            .start("j", "random_forest")
            .unwrap();
        for step in 1..=5000 {
            job.push_metric(step, "oob_accuracy", step as f64);
        }
        job.push_metric(1, "other", 1.0);
        let s = job.snapshot();
        assert_eq!(s.metrics_history_total, 5001);
        let oob: Vec<usize> = s
            .metrics_history
            .iter()
            .filter(|p| p.metric == "oob_accuracy")
            .map(|p| p.step)
            .collect();
        assert_eq!(oob.len(), HISTORY_POINTS);
        assert_eq!((oob[0], *oob.last().unwrap()), (1, 5000));
        assert_eq!(job.full_history().len(), 5001);
    }
}
