//! The SQL registry (sqlx `Any`: SQLite or PostgreSQL by URL).

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::{Lineage, ModelVersion, NewVersion, RegistryError};

/// Schema changes, applied in order, each once. Types are ones both SQLite and PostgreSQL know.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS registered_models (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS model_versions (
        name TEXT NOT NULL REFERENCES registered_models(name),
        version BIGINT NOT NULL,
        artifact_uri TEXT NOT NULL,
        algorithm TEXT,
        task TEXT,
        stage TEXT NOT NULL,
        approval_status TEXT NOT NULL,
        metrics TEXT NOT NULL,
        parameters TEXT NOT NULL,
        tags TEXT NOT NULL,
        description TEXT,
        dataset_uri TEXT,
        training_job_name TEXT,
        execution_id TEXT,
        issue_number BIGINT,
        git_commit TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (name, version)
    )",
)];

/// How often a registration retries after losing a race for a version number.
const MAX_ATTEMPTS: usize = 20;

/// The model registry on a SQL database.
#[derive(Clone)]
pub struct SqlRegistry {
    pool: AnyPool,
}

impl SqlRegistry {
    /// Connects (creating a SQLite file and its folder if needed) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, RegistryError> {
        sqlx::any::install_default_drivers();
        let url = prepare_sqlite_url(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if url.starts_with("sqlite:") { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await?;
        let registry = Self { pool };
        registry.migrate().await?;
        Ok(registry)
    }

    async fn migrate(&self) -> Result<(), RegistryError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS registry_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)")
            .execute(&self.pool)
            .await?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM registry_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            // Two servers starting at once: the loser's insert fails and its transaction rolls back.
            let inserted = sqlx::query("INSERT INTO registry_migrations (version, applied_at) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING")
                .bind(version)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            if inserted.rows_affected() == 1 {
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Registers a new version, numbered one above the model's latest.
    pub async fn register(&self, v: NewVersion) -> Result<ModelVersion, RegistryError> {
        let metrics =
            serde_json::to_string(&v.metrics).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let tags =
            serde_json::to_string(&v.tags).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let parameters = v.parameters.to_string();
        let mut last_error = None;
        for attempt in 0..MAX_ATTEMPTS {
            let now = now();
            let result: Result<i64, sqlx::Error> = async {
                let mut tx = self.pool.begin().await?;
                sqlx::query("INSERT INTO registered_models (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(&v.name)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                let version: i64 = sqlx::query_scalar(
                    "INSERT INTO model_versions (name, version, artifact_uri, algorithm, task, stage, approval_status, metrics, parameters, tags, description,
                        dataset_uri, training_job_name, execution_id, issue_number, git_commit, created_at, updated_at)
                     SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, 'None', 'PendingManualApproval', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14
                     FROM model_versions WHERE name = $1
                     RETURNING version",
                )
                .bind(&v.name)
                .bind(&v.artifact_uri)
                .bind(&v.algorithm)
                .bind(&v.task)
                .bind(&metrics)
                .bind(&parameters)
                .bind(&tags)
                .bind(&v.description)
                .bind(&v.lineage.dataset_uri)
                .bind(&v.lineage.training_job_name)
                .bind(&v.lineage.execution_id)
                .bind(v.lineage.issue_number)
                .bind(&v.lineage.git_commit)
                .bind(&now)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(version)
            }
            .await;
            match result {
                Ok(version) => return self.get(&v.name, version).await,
                Err(e) if is_retryable(&e) => {
                    tracing::debug!(attempt, error = %e, "version number taken by a concurrent registration; retrying");
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_millis(2 << attempt.min(6))).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Database(format!(
            "could not register `{}` after {MAX_ATTEMPTS} attempts: {}",
            v.name,
            last_error.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// One version of a model.
    pub async fn get(&self, name: &str, version: i64) -> Result<ModelVersion, RegistryError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_VERSION} WHERE name = $1 AND version = $2"
        )))
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => from_row(&row),
            None => Err(self.not_found(name, Some(version)).await),
        }
    }

    /// A model's versions, newest first.
    pub async fn list_versions(
        &self,
        name: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<ModelVersion>, i64), RegistryError> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_versions WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        if total == 0 {
            return Err(self.not_found(name, None).await);
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_VERSION} WHERE name = $1 ORDER BY version DESC LIMIT $2 OFFSET $3"
        )))
        .bind(name)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, total))
    }

    async fn not_found(&self, name: &str, version: Option<i64>) -> RegistryError {
        let known: Result<i64, _> =
            sqlx::query_scalar("SELECT COUNT(*) FROM registered_models WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await;
        match (known, version) {
            (Ok(n), Some(v)) if n > 0 => {
                RegistryError::NotFound(format!("model `{name}` has no version {v}"))
            }
            _ => RegistryError::NotFound(format!("no model named `{name}` is registered")),
        }
    }
}

const SELECT_VERSION: &str = "SELECT name, version, artifact_uri, algorithm, task, stage, approval_status, metrics, parameters, tags, description,
    dataset_uri, training_job_name, execution_id, issue_number, git_commit, created_at FROM model_versions";

fn from_row(row: &AnyRow) -> Result<ModelVersion, RegistryError> {
    let json = |col: &str| -> Result<serde_json::Value, RegistryError> {
        let text: String = row.try_get(col)?;
        serde_json::from_str(&text)
            .map_err(|e| RegistryError::Database(format!("column {col} holds invalid JSON: {e}")))
    };
    let metrics: BTreeMap<String, f64> = serde_json::from_value(json("metrics")?)
        .map_err(|e| RegistryError::Database(e.to_string()))?;
    let tags: BTreeMap<String, String> = serde_json::from_value(json("tags")?)
        .map_err(|e| RegistryError::Database(e.to_string()))?;
    Ok(ModelVersion {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        artifact_uri: row.try_get("artifact_uri")?,
        algorithm: row.try_get("algorithm")?,
        task: row.try_get("task")?,
        stage: row.try_get("stage")?,
        approval_status: row.try_get("approval_status")?,
        metrics,
        parameters: json("parameters")?,
        tags,
        description: row.try_get("description")?,
        lineage: Lineage {
            dataset_uri: row.try_get("dataset_uri")?,
            training_job_name: row.try_get("training_job_name")?,
            execution_id: row.try_get("execution_id")?,
            issue_number: row.try_get("issue_number")?,
            git_commit: row.try_get("git_commit")?,
        },
        created_at: row.try_get("created_at")?,
    })
}

/// A unique-key violation (another registration took the number) or a busy/serialization error.
fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || matches!(
                    db.code().as_deref(),
                    Some("40001") | Some("40P01") | Some("5") | Some("6") | Some("517")
                )
        }
        _ => false,
    }
}

/// For SQLite: creates the database's folder and asks sqlx to create the file.
fn prepare_sqlite_url(url: &str) -> Result<String, RegistryError> {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(url.to_string());
    };
    let path = rest.split('?').next().unwrap_or(rest);
    if path != ":memory:"
        && !path.is_empty()
        && let Some(parent) = std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            RegistryError::Database(format!("cannot create {}: {e}", parent.display()))
        })?;
    }
    Ok(if rest.contains("mode=") {
        url.to_string()
    } else if rest.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(name: &str) -> NewVersion {
        NewVersion {
            name: name.into(),
            artifact_uri: format!("models/{name}"),
            algorithm: Some("random_forest".into()),
            task: Some("classification".into()),
            metrics: BTreeMap::from([("accuracy".into(), 0.9)]),
            parameters: serde_json::json!({"n_estimators": 10}),
            tags: BTreeMap::from([("team".into(), "ml".into())]),
            description: None,
            lineage: Lineage {
                issue_number: Some(7),
                ..Default::default()
            },
        }
    }

    #[tokio::test]
    async fn versions_count_up_per_model_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/reg.db", dir.path().display());
        let reg = SqlRegistry::connect(&url).await.unwrap();
        for expected in 1..=3 {
            assert_eq!(
                reg.register(version("churn")).await.unwrap().version,
                expected
            );
        }
        assert_eq!(reg.register(version("fraud")).await.unwrap().version, 1);
        let v2 = reg.get("churn", 2).await.unwrap();
        assert_eq!(v2.metrics["accuracy"], 0.9);
        assert_eq!(v2.tags["team"], "ml");
        assert_eq!(v2.lineage.issue_number, Some(7));
        assert_eq!(v2.stage, "None");
        let (list, total) = reg.list_versions("churn", 2, 0).await.unwrap();
        assert_eq!(total, 3);
        assert_eq!(
            list.iter().map(|v| v.version).collect::<Vec<_>>(),
            vec![3, 2]
        );
        // Reopening keeps everything (migrations run once).
        drop(reg);
        let reg = SqlRegistry::connect(&url).await.unwrap();
        assert_eq!(reg.register(version("churn")).await.unwrap().version, 4);
    }

    #[tokio::test]
    async fn unknown_names_and_versions_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let reg = SqlRegistry::connect(&format!("sqlite://{}/r.db", dir.path().display()))
            .await
            .unwrap();
        reg.register(version("a")).await.unwrap();
        assert_eq!(
            reg.get("a", 9).await.unwrap_err().to_string(),
            "model `a` has no version 9"
        );
        assert_eq!(
            reg.get("b", 1).await.unwrap_err().to_string(),
            "no model named `b` is registered"
        );
    }

    #[tokio::test]
    async fn concurrent_registrations_get_distinct_versions() {
        let dir = tempfile::tempdir().unwrap();
        let reg = SqlRegistry::connect(&format!("sqlite://{}/c.db", dir.path().display()))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let r = reg.clone();
                tokio::spawn(async move { r.register(version("m")).await.unwrap().version })
            })
            .collect();
        let mut versions = Vec::new();
        for t in tasks {
            versions.push(t.await.unwrap());
        }
        versions.sort();
        assert_eq!(versions, (1..=20).collect::<Vec<_>>());
    }
}
