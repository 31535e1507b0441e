//! Studies and their trials in the database, shared by every server on it. A study is run by one
//! server at a time, the holder of its lease (a conditional update only one server can win); a
//! server that stops loses the lease and another takes the study over. A trial is claimed by
//! inserting its row, keyed by study and number, so no number is ever run twice; the trials a
//! stopped server left running are marked `interrupted` and do not count.

use serde_json::{Map, Value};
use sqlx::{AnyPool, Row};

use crate::error::TrainError;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS tuning_studies (
            name TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            status TEXT NOT NULL,
            lease_owner TEXT,
            lease_expires_at BIGINT,
            baseline_value DOUBLE PRECISION,
            model_uri TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT
        )",
    ),
    (
        2,
        "CREATE TABLE IF NOT EXISTS tuning_trials (
            study TEXT NOT NULL,
            number BIGINT NOT NULL,
            params TEXT NOT NULL,
            status TEXT NOT NULL,
            value DOUBLE PRECISION,
            fold_means TEXT NOT NULL,
            runner TEXT NOT NULL,
            started_at TEXT NOT NULL,
            seconds DOUBLE PRECISION,
            error TEXT,
            PRIMARY KEY (study, number)
        )",
    ),
];

/// Where a study or a trial is in its life, as stored.
pub mod status {
    pub const RUNNING: &str = "running";
    pub const COMPLETED: &str = "completed";
    pub const CANCELLED: &str = "cancelled";
    pub const FAILED: &str = "failed";
    /// A trial that ran to its end.
    pub const COMPLETE: &str = "complete";
    /// A trial the pruner stopped early.
    pub const PRUNED: &str = "pruned";
    /// A trial whose server stopped before it ended.
    pub const INTERRUPTED: &str = "interrupted";
}

/// A study row.
#[derive(Debug, Clone)]
pub struct StudyRow {
    pub name: String,
    pub spec: Value,
    pub status: String,
    pub baseline_value: Option<f64>,
    pub model_uri: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// A trial row.
#[derive(Debug, Clone)]
pub struct TrialRow {
    pub number: i64,
    pub params: Map<String, Value>,
    pub status: String,
    /// The metric's mean over the folds scored (the study's direction as given, not negated).
    pub value: Option<f64>,
    /// The running mean after each fold scored, for the pruner.
    pub fold_means: Vec<f64>,
    pub started_at: String,
    pub seconds: Option<f64>,
    pub error: Option<String>,
}

impl TrialRow {
    /// Whether the trial has ended and counts toward the study's `n_trials`.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status.as_str(),
            status::COMPLETE | status::PRUNED | status::FAILED
        )
    }
}

/// The study tables.
#[derive(Clone)]
pub struct Studies {
    pool: AnyPool,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn db(e: sqlx::Error) -> TrainError {
    TrainError::failed(format!("the tuning tables: {e}"))
}

impl Studies {
    pub async fn open(pool: AnyPool) -> Result<Self, sqlx::Error> {
        mlops_db::migrate(&pool, "tuning_migrations", MIGRATIONS).await?;
        Ok(Self { pool })
    }

    /// Records a new study, leased to `owner`; false when a study of that name exists.
    pub async fn create(
        &self,
        name: &str,
        spec: &Value,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, TrainError> {
        let done = sqlx::query(
            "INSERT INTO tuning_studies (name, spec, status, lease_owner, lease_expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(spec.to_string())
        .bind(status::RUNNING)
        .bind(owner)
        .bind(now_ms() + lease_ms)
        .bind(now_text())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn get(&self, name: &str) -> Result<Option<StudyRow>, TrainError> {
        let row = sqlx::query(
            "SELECT name, spec, status, baseline_value, model_uri, error, created_at, finished_at FROM tuning_studies WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(study_row).transpose()
    }

    /// Studies, newest first, optionally only those of one status.
    pub async fn list(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StudyRow>, TrainError> {
        let rows = sqlx::query(
            "SELECT name, spec, status, baseline_value, model_uri, error, created_at, finished_at FROM tuning_studies WHERE ($1 = '' OR status = $1) ORDER BY created_at DESC, name LIMIT $2",
        )
        .bind(status.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(study_row).collect()
    }

    /// A running study whose lease has run out (its server stopped), taken over by `owner`: one
    /// at a time, so a server takes no more than it starts at once.
    pub async fn claim_abandoned(
        &self,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Vec<String>, TrainError> {
        let now = now_ms();
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM tuning_studies WHERE status = $1 AND lease_expires_at < $2 ORDER BY created_at LIMIT 1",
        )
        .bind(status::RUNNING)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut claimed = Vec::new();
        for name in names {
            let done = sqlx::query(
                "UPDATE tuning_studies SET lease_owner = $1, lease_expires_at = $2 WHERE name = $3 AND status = $4 AND lease_expires_at < $5",
            )
            .bind(owner)
            .bind(now + lease_ms)
            .bind(&name)
            .bind(status::RUNNING)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            if done.rows_affected() == 1 {
                claimed.push(name);
            }
        }
        Ok(claimed)
    }

    /// Extends `owner`'s lease; false when the study is no longer running under it (cancelled
    /// from another server, or taken over after this server stalled).
    pub async fn renew(&self, name: &str, owner: &str, lease_ms: i64) -> Result<bool, TrainError> {
        let done = sqlx::query(
            "UPDATE tuning_studies SET lease_expires_at = $1 WHERE name = $2 AND lease_owner = $3 AND status = $4",
        )
        .bind(now_ms() + lease_ms)
        .bind(name)
        .bind(owner)
        .bind(status::RUNNING)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_baseline(&self, name: &str, value: f64) -> Result<(), TrainError> {
        sqlx::query("UPDATE tuning_studies SET baseline_value = $1 WHERE name = $2")
            .bind(value)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Ends a running study; false when it had already ended (cancelled meanwhile) or, with an
    /// `owner`, when another server holds it now (its runner ends only a study it still holds).
    pub async fn finish(
        &self,
        name: &str,
        status: &str,
        model_uri: Option<&str>,
        error: Option<&str>,
        owner: Option<&str>,
    ) -> Result<bool, TrainError> {
        let done = sqlx::query(
            "UPDATE tuning_studies SET status = $1, model_uri = $2, error = $3, finished_at = $4, lease_owner = NULL WHERE name = $5 AND status = $6 AND ($7 = '' OR lease_owner = $7)",
        )
        .bind(status)
        .bind(model_uri)
        .bind(error)
        .bind(now_text())
        .bind(name)
        .bind(status::RUNNING)
        .bind(owner.unwrap_or(""))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // No trial of an ended study is running any more.
        let trials = if status == status::CANCELLED {
            status::CANCELLED
        } else {
            status::INTERRUPTED
        };
        sqlx::query("UPDATE tuning_trials SET status = $1 WHERE study = $2 AND status = $3")
            .bind(trials)
            .bind(name)
            .bind(status::RUNNING)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(true)
    }

    pub async fn trials(&self, study: &str) -> Result<Vec<TrialRow>, TrainError> {
        let rows = sqlx::query(
            "SELECT number, params, status, value, fold_means, started_at, seconds, error FROM tuning_trials WHERE study = $1 ORDER BY number",
        )
        .bind(study)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(trial_row).collect()
    }

    /// Marks the trials still running under another runner as interrupted: `owner` holds the
    /// study's lease now, so their server stopped or lost it.
    pub async fn interrupt_others(&self, study: &str, owner: &str) -> Result<u64, TrainError> {
        let done = sqlx::query(
            "UPDATE tuning_trials SET status = $1, error = $2 WHERE study = $3 AND status = $4 AND runner <> $5",
        )
        .bind(status::INTERRUPTED)
        .bind("the server running this trial stopped; the study went on without it")
        .bind(study)
        .bind(status::RUNNING)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected())
    }

    /// Claims trial `number` with `params` for `runner`; false when that number is taken, or when
    /// the study is no longer running under `runner` (cancelled, or taken over).
    pub async fn claim_trial(
        &self,
        study: &str,
        number: i64,
        params: &Map<String, Value>,
        runner: &str,
    ) -> Result<bool, TrainError> {
        let done = sqlx::query(
            "INSERT INTO tuning_trials (study, number, params, status, fold_means, runner, started_at) SELECT $1, CAST($2 AS BIGINT), $3, $4, '[]', $5, $6 WHERE EXISTS (SELECT 1 FROM tuning_studies WHERE name = $1 AND status = $4 AND lease_owner = $5) ON CONFLICT (study, number) DO NOTHING",
        )
        .bind(study)
        .bind(number)
        .bind(Value::Object(params.clone()).to_string())
        .bind(status::RUNNING)
        .bind(runner)
        .bind(now_text())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a running trial of `runner`'s.
    pub async fn finish_trial(
        &self,
        study: &str,
        number: i64,
        runner: &str,
        outcome: &TrialEnd<'_>,
    ) -> Result<(), TrainError> {
        sqlx::query(
            "UPDATE tuning_trials SET status = $1, value = $2, fold_means = $3, seconds = $4, error = $5 WHERE study = $6 AND number = $7 AND runner = $8 AND status = $9",
        )
        .bind(outcome.status)
        .bind(outcome.value)
        .bind(serde_json::to_string(outcome.fold_means).unwrap_or_else(|_| "[]".into()))
        .bind(outcome.seconds)
        .bind(outcome.error)
        .bind(study)
        .bind(number)
        .bind(runner)
        .bind(status::RUNNING)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }
}

/// How a trial ended.
pub struct TrialEnd<'a> {
    pub status: &'a str,
    pub value: Option<f64>,
    pub fold_means: &'a [f64],
    pub seconds: f64,
    pub error: Option<&'a str>,
}

fn study_row(row: sqlx::any::AnyRow) -> Result<StudyRow, TrainError> {
    let spec: String = row.try_get("spec").map_err(db)?;
    Ok(StudyRow {
        name: row.try_get("name").map_err(db)?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| TrainError::failed(format!("a stored study spec does not decode: {e}")))?,
        status: row.try_get("status").map_err(db)?,
        baseline_value: row.try_get("baseline_value").map_err(db)?,
        model_uri: row.try_get("model_uri").map_err(db)?,
        error: row.try_get("error").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        finished_at: row.try_get("finished_at").map_err(db)?,
    })
}

fn trial_row(row: sqlx::any::AnyRow) -> Result<TrialRow, TrainError> {
    let params: String = row.try_get("params").map_err(db)?;
    let folds: String = row.try_get("fold_means").map_err(db)?;
    Ok(TrialRow {
        number: row.try_get("number").map_err(db)?,
        params: serde_json::from_str(&params).unwrap_or_default(),
        status: row.try_get("status").map_err(db)?,
        value: row.try_get("value").map_err(db)?,
        fold_means: serde_json::from_str(&folds).unwrap_or_default(),
        started_at: row.try_get("started_at").map_err(db)?,
        seconds: row.try_get("seconds").map_err(db)?,
        error: row.try_get("error").map_err(db)?,
    })
}
