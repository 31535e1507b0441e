//! All jobs of one kind in this server process, and the database record of every job, so a job
//! can be reported on after a restart or from another server. A job whose record stops being
//! refreshed ran on a server that stopped: it is reported as failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::job::{Job, JobSnapshot, JobStatus, now};

/// Where a kind of job is recorded: its table and the table of its migrations.
#[derive(Debug, Clone, Copy)]
pub struct JobTable {
    pub jobs: &'static str,
    pub migrations: &'static str,
}

impl JobTable {
    pub const TRAINING: JobTable = JobTable {
        jobs: "training_jobs",
        migrations: "training_migrations",
    };
    pub const BATCH_PREDICTION: JobTable = JobTable {
        jobs: "batch_prediction_jobs",
        migrations: "batch_prediction_migrations",
    };
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
    pub async fn with_database(
        pool: sqlx::AnyPool,
        table: JobTable,
    ) -> Result<Arc<Self>, sqlx::Error> {
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (
                name TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                snapshot TEXT NOT NULL,
                updated_at_ms BIGINT NOT NULL
            )",
            table.jobs
        );
        mlops_db::migrate(&pool, table.migrations, &[(1, create.as_str())]).await?;
        Ok(Arc::new(Self {
            jobs: Mutex::default(),
            records: Some(JobRecords { pool, table }),
        }))
    }

    /// Records a job's current state (best effort: a database hiccup never fails training).
    pub async fn record(&self, snapshot: &JobSnapshot) {
        if let Some(r) = &self.records
            && let Err(e) = r.save(snapshot).await
        {
            tracing::warn!(error = %e, job = %snapshot.name, "could not record the job");
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
    pub fn start(&self, name: &str, label: &str) -> Result<Arc<Job>, String> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = jobs.get(name)
            && existing.snapshot().status == JobStatus::Running
        {
            return Err(format!(
                "job `{name}` is already running; choose another name or cancel it first"
            ));
        }
        let job = Arc::new(Job {
            cancel: CancellationToken::new(),
            started: std::time::Instant::now(),
            state: Mutex::new(JobSnapshot {
                name: name.into(),
                label: label.into(),
                status: JobStatus::Running,
                progress: 0.0,
                message: None,
                started_at: now(),
                finished_at: None,
                duration_ms: None,
                metrics: serde_json::Value::Null,
                metrics_history: Vec::new(),
                metrics_history_total: 0,
                output_uri: None,
                error: None,
            }),
        });
        jobs.insert(name.into(), job.clone());
        Ok(job)
    }

    /// Stops the job `name` if it is running (e.g. a retried step replacing it): cancels it and
    /// waits, briefly, for it to end.
    pub async fn stop(&self, name: &str) {
        let Some(old) = self.get(name) else { return };
        if old.snapshot().status != JobStatus::Running {
            return;
        }
        old.cancel.cancel();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while old.snapshot().status == JobStatus::Running && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
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

/// Job records in the database: the snapshot as JSON, keyed by name.
struct JobRecords {
    pool: sqlx::AnyPool,
    table: JobTable,
}

impl JobRecords {
    async fn save(&self, s: &JobSnapshot) -> Result<(), sqlx::Error> {
        let json = serde_json::to_string(s).unwrap_or_default();
        let status = serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO {} (name, status, snapshot, updated_at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET status = excluded.status, snapshot = excluded.snapshot, updated_at_ms = excluded.updated_at_ms", self.table.jobs)))
            .bind(&s.name)
            .bind(status)
            .bind(json)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load(&self, name: &str) -> Result<Option<JobSnapshot>, sqlx::Error> {
        use sqlx::Row;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT snapshot, updated_at_ms FROM {} WHERE name = $1",
            self.table.jobs
        )))
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
