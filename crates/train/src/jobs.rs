//! Training jobs: a name, a status, progress, a metrics history and a cancellation handle.
//!
//! Jobs live in memory while the server runs; a finished job's metrics are also in its model's
//! manifest, so `get_training_metrics` still answers for it after a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// One point of a metric's history (e.g. out-of-bag accuracy after 20 trees).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MetricPoint {
    pub step: usize,
    pub metric: String,
    pub value: f64,
}

/// A job as reported to clients.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobSnapshot {
    pub training_job_name: String,
    pub algorithm: String,
    pub status: JobStatus,
    /// Fraction done, 0 to 1.
    pub progress: f64,
    pub message: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub metrics: serde_json::Value,
    pub metrics_history: Vec<MetricPoint>,
    pub model_uri: Option<String>,
    pub error: Option<String>,
}

/// A running or finished job.
pub struct Job {
    pub cancel: CancellationToken,
    started: std::time::Instant,
    state: Mutex<JobSnapshot>,
}

impl Job {
    pub fn snapshot(&self) -> JobSnapshot {
        self.lock().clone()
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
        model_uri: Option<String>,
        error: Option<String>,
    ) {
        let mut s = self.lock();
        s.status = status;
        if status == JobStatus::Completed {
            s.progress = 1.0;
        }
        s.metrics = metrics;
        s.model_uri = model_uri;
        s.error = error;
        s.finished_at = Some(now());
        s.duration_ms = Some(self.started.elapsed().as_millis() as u64);
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// All jobs of this server process.
#[derive(Default)]
pub struct JobManager {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl JobManager {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a new running job; fails if a job of that name is still running.
    pub fn start(&self, name: &str, algorithm: &str) -> Result<Arc<Job>, String> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = jobs.get(name)
            && existing.snapshot().status == JobStatus::Running
        {
            return Err(format!(
                "training job `{name}` is already running; choose another training_job_name or cancel it first"
            ));
        }
        let job = Arc::new(Job {
            cancel: CancellationToken::new(),
            started: std::time::Instant::now(),
            state: Mutex::new(JobSnapshot {
                training_job_name: name.into(),
                algorithm: algorithm.into(),
                status: JobStatus::Running,
                progress: 0.0,
                message: None,
                started_at: now(),
                finished_at: None,
                duration_ms: None,
                metrics: serde_json::Value::Null,
                metrics_history: Vec::new(),
                model_uri: None,
                error: None,
            }),
        });
        jobs.insert(name.into(), job.clone());
        Ok(job)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}
