//! Training jobs: a name, a status, progress, a metrics history and a cancellation handle.
//!
//! Live jobs are in memory; every job is also recorded in the database (at start, every few
//! seconds while it runs, and at its end), so `get_training_metrics` answers for it after a
//! restart or from another server. A job whose record stops being refreshed ran on a server that
//! stopped: it is reported as failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    /// At most `HISTORY_POINTS` (100) points per metric, evenly spaced and always with the last one;
    /// `metrics_history_total` says how many were recorded.
    pub metrics_history: Vec<MetricPoint>,
    #[serde(default)]
    pub metrics_history_total: usize,
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

/// All jobs of this server process, and the database record of every job.
#[derive(Default)]
pub struct JobManager {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    records: Option<JobRecords>,
}

impl JobManager {
    /// Jobs in memory only (tests, tools that need no history).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Jobs recorded in the database behind `pool` as well.
    pub async fn with_database(pool: sqlx::AnyPool) -> Result<Arc<Self>, sqlx::Error> {
        mlops_db::migrate(&pool, "training_migrations", JOB_MIGRATIONS).await?;
        Ok(Arc::new(Self {
            jobs: Mutex::default(),
            records: Some(JobRecords { pool }),
        }))
    }

    /// Records a job's current state (best effort: a database hiccup never fails training).
    pub async fn record(&self, snapshot: &JobSnapshot) {
        if let Some(r) = &self.records
            && let Err(e) = r.save(snapshot).await
        {
            tracing::warn!(error = %e, training_job_name = %snapshot.training_job_name, "could not record the training job");
        }
    }

    /// A job's record, from this or any other server sharing the database.
    pub async fn recorded(&self, name: &str) -> Result<Option<JobSnapshot>, sqlx::Error> {
        match &self.records {
            Some(r) => r.load(name).await,
            None => Ok(None),
        }
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
                metrics_history_total: 0,
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

/// How often a running job's record is refreshed; a record older than `STALE_AFTER` belongs to a
/// server that stopped.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);
const STALE_AFTER_MS: i64 = 30_000;

const JOB_MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS training_jobs (
        name TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    )",
)];

/// Job records in the database: the snapshot as JSON, keyed by name.
struct JobRecords {
    pool: sqlx::AnyPool,
}

impl JobRecords {
    async fn save(&self, s: &JobSnapshot) -> Result<(), sqlx::Error> {
        let json = serde_json::to_string(s).unwrap_or_default();
        let status = serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        sqlx::query("INSERT INTO training_jobs (name, status, snapshot, updated_at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET status = excluded.status, snapshot = excluded.snapshot, updated_at_ms = excluded.updated_at_ms")
            .bind(&s.training_job_name)
            .bind(status)
            .bind(json)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load(&self, name: &str) -> Result<Option<JobSnapshot>, sqlx::Error> {
        use sqlx::Row;
        let row = sqlx::query("SELECT snapshot, updated_at_ms FROM training_jobs WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let text: String = row.try_get("snapshot")?;
        let updated: i64 = row.try_get("updated_at_ms")?;
        let Ok(mut snapshot) = serde_json::from_str::<JobSnapshot>(&text) else {
            return Ok(None);
        };
        if snapshot.status == JobStatus::Running
            && chrono::Utc::now().timestamp_millis() - updated > STALE_AFTER_MS
        {
            snapshot.status = JobStatus::Failed;
            snapshot.error = Some(
                "the server running this job stopped before it finished; start it again".into(),
            );
        }
        Ok(Some(snapshot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_histories_are_thinned_keeping_the_ends() {
        let job = JobManager::new().start("j", "random_forest").unwrap();
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
