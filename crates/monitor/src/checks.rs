//! The record of drift checks: one row per `detect_drift` run, shared by every server on the
//! database, read back by `list_drift_checks`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

use mlops_core::ToolError;

const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS drift_checks (
        check_id TEXT PRIMARY KEY,
        model_name TEXT,
        model_version BIGINT,
        checked_at TEXT NOT NULL,
        status TEXT NOT NULL,
        verdict TEXT,
        drifted_features TEXT NOT NULL,
        max_severity DOUBLE PRECISION,
        current_rows BIGINT NOT NULL,
        report_uri TEXT
    )",
)];

/// One recorded check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DriftCheck {
    pub check_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<i64>,
    pub checked_at: String,
    /// `compared`, or `nothing_to_compare` when the window held no rows.
    pub status: String,
    /// `ok`, `warn` or `drift` (absent when nothing was compared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    pub drifted_features: Vec<String>,
    /// The worst feature's severity (its worst statistic over that statistic's drift level).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_severity: Option<f64>,
    pub current_rows: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_uri: Option<String>,
}

/// The `drift_checks` table.
#[derive(Clone)]
pub struct Checks {
    db: AnyPool,
}

impl Checks {
    pub async fn open(db: AnyPool) -> Result<Self, sqlx::Error> {
        mlops_db::migrate(&db, "drift_check_migrations", MIGRATIONS).await?;
        Ok(Self { db })
    }

    pub async fn record(&self, c: &DriftCheck) -> Result<(), ToolError> {
        sqlx::query(
            "INSERT INTO drift_checks (check_id, model_name, model_version, checked_at, status, verdict, drifted_features, max_severity, current_rows, report_uri)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.check_id)
        .bind(&c.model_name)
        .bind(c.model_version)
        .bind(&c.checked_at)
        .bind(&c.status)
        .bind(&c.verdict)
        .bind(serde_json::to_string(&c.drifted_features).unwrap_or_default())
        .bind(c.max_severity)
        .bind(c.current_rows)
        .bind(&c.report_uri)
        .execute(&self.db)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// The latest checks, newest first, of one model or of all.
    pub async fn list(
        &self,
        model: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DriftCheck>, ToolError> {
        let rows = match model {
            Some(m) => {
                sqlx::query(
                    "SELECT check_id, model_name, model_version, checked_at, status, verdict, drifted_features, max_severity, current_rows, report_uri
                     FROM drift_checks WHERE model_name = $1 ORDER BY checked_at DESC, check_id DESC LIMIT $2",
                )
                .bind(m)
                .bind(limit)
                .fetch_all(&self.db)
                .await
            }
            None => {
                sqlx::query(
                    "SELECT check_id, model_name, model_version, checked_at, status, verdict, drifted_features, max_severity, current_rows, report_uri
                     FROM drift_checks ORDER BY checked_at DESC, check_id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.db)
                .await
            }
        }
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                let drifted: String = r.try_get("drifted_features")?;
                Ok(DriftCheck {
                    check_id: r.try_get("check_id")?,
                    model_name: r.try_get("model_name")?,
                    model_version: r.try_get("model_version")?,
                    checked_at: r.try_get("checked_at")?,
                    status: r.try_get("status")?,
                    verdict: r.try_get("verdict")?,
                    drifted_features: serde_json::from_str(&drifted).unwrap_or_default(),
                    max_severity: r.try_get("max_severity")?,
                    current_rows: r.try_get("current_rows")?,
                    report_uri: r.try_get("report_uri")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_error)
    }
}

/// A number for `/metrics` and CloudWatch.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    pub metric: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Checks {
    /// Per model, from its latest compared check: the worst severity and the drifted features.
    pub async fn latest_by_model(&self) -> Result<Vec<Gauge>, ToolError> {
        let rows = sqlx::query(
            "SELECT model_name, max_severity, drifted_features FROM drift_checks d
             WHERE status = 'compared' AND model_name IS NOT NULL AND checked_at =
               (SELECT MAX(checked_at) FROM drift_checks e WHERE e.model_name = d.model_name AND e.status = 'compared')",
        )
        .fetch_all(&self.db)
        .await
        .map_err(db_error)?;
        let mut out = Vec::new();
        for r in rows {
            let model: String = r.try_get("model_name").map_err(db_error)?;
            let severity: Option<f64> = r.try_get("max_severity").map_err(db_error)?;
            let drifted: String = r.try_get("drifted_features").map_err(db_error)?;
            let drifted: Vec<String> = serde_json::from_str(&drifted).unwrap_or_default();
            out.push(Gauge {
                metric: "mlops_drift_severity",
                help: "The worst feature's drift severity in a model's latest check (1 = at its drift level).",
                labels: vec![("model", model.clone())],
                value: severity.unwrap_or(0.0),
            });
            out.push(Gauge {
                metric: "mlops_drift_drifted_features",
                help: "Features that drifted in a model's latest check.",
                labels: vec![("model", model)],
                value: drifted.len() as f64,
            });
        }
        Ok(out)
    }
}

fn db_error(e: sqlx::Error) -> ToolError {
    ToolError::Execution(format!(
        "the drift-check record could not be read or written: {e}"
    ))
}
