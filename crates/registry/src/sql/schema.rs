//! The registry's tables and how a row of them reads back as a [`ModelVersion`]. A version's
//! metrics, parameters and tags are kept as JSON in its row (read back whole) and its metrics and
//! tags again, one per row, in side tables that search filters and sorts on through their indexes.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{ApprovalStatus, Lineage, ModelVersion, RegistryError, Stage};

/// Schema changes, applied in order, each once.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS registered_models (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
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
        dataset_sha256 TEXT,
        training_job_name TEXT,
        execution_id TEXT,
        issue_number BIGINT,
        git_commit TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE INDEX IF NOT EXISTS model_versions_by_stage ON model_versions (stage, name);
    CREATE INDEX IF NOT EXISTS model_versions_by_created ON model_versions (created_at);
    CREATE TABLE IF NOT EXISTS model_version_metrics (
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        metric TEXT NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (name, version, metric)
    );
    CREATE INDEX IF NOT EXISTS model_version_metrics_by_value ON model_version_metrics (metric, value);
    CREATE TABLE IF NOT EXISTS model_version_tags (
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        tag TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (name, version, tag)
    );
    CREATE INDEX IF NOT EXISTS model_version_tags_by_value ON model_version_tags (tag, value);
    CREATE TABLE IF NOT EXISTS model_aliases (
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        version BIGINT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (name, alias)
    );
    CREATE TABLE IF NOT EXISTS model_events (
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        event TEXT NOT NULL,
        from_value TEXT,
        to_value TEXT,
        actor TEXT NOT NULL,
        reason TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS model_events_by_model ON model_events (name, version)",
)];

/// Every column of a version, for the queries that read versions (`v` is `model_versions`).
pub(super) const SELECT_VERSION: &str = "SELECT v.name, v.version, v.artifact_uri, v.algorithm, v.task, v.stage, v.approval_status, v.metrics, v.parameters, v.tags,
    v.description, v.dataset_uri, v.dataset_sha256, v.training_job_name, v.execution_id, v.issue_number, v.git_commit, v.created_at, v.updated_at
    FROM model_versions v";

pub(super) fn parse_stage(s: &str) -> Result<Stage, RegistryError> {
    Stage::parse(s)
        .ok_or_else(|| RegistryError::Database(format!("unknown stage `{s}` in the database")))
}

pub(super) fn parse_approval(s: &str) -> Result<ApprovalStatus, RegistryError> {
    ApprovalStatus::parse(s).ok_or_else(|| {
        RegistryError::Database(format!("unknown approval status `{s}` in the database"))
    })
}

/// A [`SELECT_VERSION`] row, without its aliases: they live in their own table and are read for a
/// whole page at once.
pub(super) fn from_row(row: &AnyRow) -> Result<ModelVersion, RegistryError> {
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
        stage: parse_stage(&row.try_get::<String, _>("stage")?)?,
        approval_status: parse_approval(&row.try_get::<String, _>("approval_status")?)?,
        aliases: Vec::new(),
        metrics,
        parameters: json("parameters")?,
        tags,
        description: row.try_get("description")?,
        lineage: Lineage {
            dataset_uri: row.try_get("dataset_uri")?,
            dataset_sha256: row.try_get("dataset_sha256")?,
            training_job_name: row.try_get("training_job_name")?,
            execution_id: row.try_get("execution_id")?,
            issue_number: row.try_get("issue_number")?,
            git_commit: row.try_get("git_commit")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
