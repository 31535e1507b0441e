//! Monitors and their runs in the database, shared by every server on it. A run is claimed with a
//! lease exactly like a workflow execution (a conditional update only one server can win), and
//! each scheduled tick has one row in `monitor_runs` (its key is the monitor and the tick), so a
//! tick is checked once however many servers watch the table.

use chrono::{DateTime, Utc};
use mlops_core::ToolError;
use mlops_data::drift::DriftThresholds;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{AnyPool, Row};

use crate::schedule::Schedule;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS monitors (
            name TEXT PRIMARY KEY,
            model_name TEXT NOT NULL,
            spec TEXT NOT NULL,
            paused BIGINT NOT NULL,
            next_run_at BIGINT NOT NULL,
            lease_owner TEXT,
            lease_expires_at BIGINT,
            created_at TEXT NOT NULL
        )",
    ),
    (
        2,
        "CREATE TABLE IF NOT EXISTS monitor_runs (
            monitor TEXT NOT NULL,
            scheduled_for BIGINT NOT NULL,
            runner TEXT NOT NULL,
            attempts BIGINT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            verdict TEXT,
            check_id TEXT,
            drifted_features TEXT,
            issue_number BIGINT,
            execution_id TEXT,
            notified BIGINT NOT NULL,
            error TEXT,
            PRIMARY KEY (monitor, scheduled_for)
        )",
    ),
];

/// What a monitor does when a check finds drift.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Actions {
    /// Send the `drift` notification (default true).
    #[serde(default = "yes")]
    pub notify: bool,
    /// Channels for it (default: the configured ones).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Open a GitHub issue labelled `mlops:train` that retrains the model on new data (once per
    /// monitor and tick, however often the tick is retried).
    #[serde(default)]
    pub open_retraining_issue: bool,
    /// Also start the training workflow on that issue at once, instead of waiting for its webhook.
    #[serde(default)]
    pub start_workflow: bool,
    /// Act on warnings too, not only on drift.
    #[serde(default)]
    pub on_warn: bool,
}

impl Default for Actions {
    fn default() -> Self {
        Self {
            notify: true,
            channels: Vec::new(),
            open_retraining_issue: false,
            start_workflow: false,
            on_warn: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// How to retrain: what the retraining issue asks for. Unset fields come from the Production
/// version (its algorithm, hyperparameters, target and task) and the metric's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retrain {
    /// The labelled data to train on (default: the monitor's `data_uri`).
    pub data_uri: Option<String>,
    pub algorithm: Option<String>,
    pub hyperparameters: Option<Map<String, Value>>,
    /// The metric judged (any name list_metric_names accepts, e.g. `accuracy`, `f1`, `rmse`).
    pub metric: Option<String>,
    pub threshold: Option<f64>,
}

/// A monitor as created.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    /// 1 to 63 letters, digits, `-`, `_` or `.`.
    pub name: String,
    /// The registered model watched; each run checks its Production version at that moment.
    pub model_name: String,
    /// Run every this many seconds (ticks at whole multiples since the epoch)...
    pub every_seconds: Option<u64>,
    /// ...or on this cron pattern (`0 6 * * *`: daily at 06:00 UTC; six fields add seconds).
    pub cron: Option<String>,
    /// The current rows: this table, read again at every run (a path that is rewritten, e.g. the
    /// latest export). Without it, the model's prediction log over the window before each tick.
    pub data_uri: Option<String>,
    /// The prediction-log window before each tick (default: the schedule's period).
    pub window_seconds: Option<u64>,
    #[serde(default)]
    pub thresholds: DriftThresholds,
    #[serde(default)]
    pub actions: Actions,
    #[serde(default)]
    pub retrain: Retrain,
}

impl MonitorSpec {
    /// Checks what can be checked before the first run.
    pub fn validate(&self) -> Result<Schedule, ToolError> {
        mlops_core::check_folder_name("name", &self.name).map_err(ToolError::validation)?;
        mlops_core::check_folder_name("model_name", &self.model_name)
            .map_err(ToolError::validation)?;
        self.thresholds.validate()?;
        if self.window_seconds == Some(0) {
            return Err(ToolError::validation("window_seconds must be at least 1"));
        }
        if self.actions.start_workflow && !self.actions.open_retraining_issue {
            return Err(ToolError::validation(
                "start_workflow runs the retraining issue: set open_retraining_issue too",
            ));
        }
        if self.actions.open_retraining_issue
            && self.retrain.data_uri.is_none()
            && self.data_uri.is_none()
        {
            return Err(ToolError::validation(
                "open_retraining_issue needs labelled data to retrain on: set retrain.data_uri (the prediction log has no labels) or data_uri",
            ));
        }
        if let Some(m) = &self.retrain.metric
            && mlops_core::metric_names::lookup(m).is_none()
        {
            return Err(ToolError::validation(format!(
                "retrain.metric `{m}` is not a metric name this server knows (e.g. accuracy, f1, roc_auc, r2, rmse)"
            )));
        }
        Schedule::parse(self.every_seconds, self.cron.as_deref())
    }
}

/// A monitor with its state.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Monitor {
    #[serde(flatten)]
    pub spec: MonitorSpec,
    pub paused: bool,
    /// The next tick (RFC 3339).
    pub next_run_at: String,
    pub created_at: String,
}

/// One run of a monitor (one tick).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MonitorRun {
    pub monitor: String,
    /// The tick this run checked (RFC 3339).
    pub scheduled_for: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    /// Tries of this tick (more than one when a server died during it).
    pub attempts: i64,
    pub runner: String,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// `ok`, `warn`, `drift`, or `nothing_to_compare`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_id: Option<String>,
    pub drifted_features: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    pub notified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a finished run records.
#[derive(Debug, Default)]
pub struct Outcome {
    pub verdict: Option<String>,
    pub check_id: Option<String>,
    pub drifted_features: Vec<String>,
    pub issue_number: Option<i64>,
    pub execution_id: Option<String>,
    pub notified: bool,
    pub error: Option<String>,
}

/// The monitor tables.
#[derive(Clone)]
pub struct Monitors {
    db: AnyPool,
}

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn db_error(e: sqlx::Error) -> ToolError {
    ToolError::Execution(format!(
        "the monitor tables could not be read or written: {e}"
    ))
}

impl Monitors {
    pub async fn open(db: AnyPool) -> Result<Self, sqlx::Error> {
        mlops_db::migrate(&db, "monitor_migrations", MIGRATIONS).await?;
        Ok(Self { db })
    }

    pub async fn create(&self, spec: &MonitorSpec, first: DateTime<Utc>) -> Result<(), ToolError> {
        let body = serde_json::to_string(spec).unwrap_or_default();
        let r = sqlx::query(
            "INSERT INTO monitors (name, model_name, spec, paused, next_run_at, created_at) VALUES ($1, $2, $3, 0, $4, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&spec.name)
        .bind(&spec.model_name)
        .bind(body)
        .bind(ms(first))
        .bind(now_text())
        .execute(&self.db)
        .await
        .map_err(db_error)?;
        if r.rows_affected() == 0 {
            return Err(ToolError::validation(format!(
                "a monitor named `{}` already exists; delete it first or choose another name",
                spec.name
            )));
        }
        Ok(())
    }

    pub async fn get(&self, name: &str) -> Result<Option<Monitor>, ToolError> {
        let row = sqlx::query(
            "SELECT spec, paused, next_run_at, created_at FROM monitors WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.db)
        .await
        .map_err(db_error)?;
        row.map(|r| monitor_of(&r)).transpose()
    }

    /// The monitor, or an error naming the ones there are.
    pub async fn require(&self, name: &str) -> Result<Monitor, ToolError> {
        if let Some(m) = self.get(name).await? {
            return Ok(m);
        }
        let names: Vec<String> = self
            .list()
            .await?
            .into_iter()
            .map(|m| m.spec.name)
            .collect();
        Err(ToolError::validation(format!(
            "no monitor named `{name}`; monitors: {}",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )))
    }

    pub async fn list(&self) -> Result<Vec<Monitor>, ToolError> {
        let rows =
            sqlx::query("SELECT spec, paused, next_run_at, created_at FROM monitors ORDER BY name")
                .fetch_all(&self.db)
                .await
                .map_err(db_error)?;
        rows.iter().map(monitor_of).collect()
    }

    /// Deletes a monitor and its runs; false when there was none.
    pub async fn delete(&self, name: &str) -> Result<bool, ToolError> {
        let mut tx = self.db.begin().await.map_err(db_error)?;
        sqlx::query("DELETE FROM monitor_runs WHERE monitor = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let r = sqlx::query("DELETE FROM monitors WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(r.rows_affected() > 0)
    }

    /// Pauses or resumes; a resumed monitor's next tick is the first after now (missed ticks are
    /// not run).
    pub async fn set_paused(
        &self,
        name: &str,
        paused: bool,
        next: Option<DateTime<Utc>>,
    ) -> Result<(), ToolError> {
        let r = match next {
            Some(next) => {
                sqlx::query("UPDATE monitors SET paused = $1, next_run_at = $2 WHERE name = $3")
                    .bind(i64::from(paused))
                    .bind(ms(next))
                    .bind(name)
                    .execute(&self.db)
                    .await
            }
            None => {
                sqlx::query("UPDATE monitors SET paused = $1 WHERE name = $2")
                    .bind(i64::from(paused))
                    .bind(name)
                    .execute(&self.db)
                    .await
            }
        }
        .map_err(db_error)?;
        if r.rows_affected() == 0 {
            self.require(name).await?;
        }
        Ok(())
    }

    /// Claims up to `limit` due monitors for `owner` until `lease_ms` from now: (name, tick).
    pub async fn claim_due(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, ToolError> {
        let now = ms(Utc::now());
        let due = sqlx::query(
            "SELECT name, next_run_at FROM monitors WHERE paused = 0 AND next_run_at <= $1 AND (lease_owner IS NULL OR lease_expires_at < $1) ORDER BY next_run_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.db)
        .await
        .map_err(db_error)?;
        let mut claimed = Vec::new();
        for row in due {
            let name: String = row.try_get("name").map_err(db_error)?;
            let tick: i64 = row.try_get("next_run_at").map_err(db_error)?;
            let won = sqlx::query(
                "UPDATE monitors SET lease_owner = $1, lease_expires_at = $2 WHERE name = $3 AND next_run_at = $4 AND paused = 0 AND (lease_owner IS NULL OR lease_expires_at < $5)",
            )
            .bind(owner)
            .bind(now + lease_ms)
            .bind(&name)
            .bind(tick)
            .bind(now)
            .execute(&self.db)
            .await
            .map_err(db_error)?;
            if won.rows_affected() == 1 {
                claimed.push((name, tick));
            }
        }
        Ok(claimed)
    }

    /// Starts (or, after a server died in it, takes over) the run of one tick. Returns the run
    /// so far, or None when the tick already finished (its result stands).
    pub async fn begin_run(
        &self,
        monitor: &str,
        tick: i64,
        owner: &str,
    ) -> Result<Option<MonitorRun>, ToolError> {
        sqlx::query(
            "INSERT INTO monitor_runs (monitor, scheduled_for, runner, attempts, started_at, status, drifted_features, notified)
             VALUES ($1, $2, $3, 1, $4, 'running', '[]', 0)
             ON CONFLICT (monitor, scheduled_for) DO UPDATE SET runner = excluded.runner, attempts = monitor_runs.attempts + 1
             WHERE monitor_runs.status = 'running'",
        )
        .bind(monitor)
        .bind(tick)
        .bind(owner)
        .bind(now_text())
        .execute(&self.db)
        .await
        .map_err(db_error)?;
        let run = self.run(monitor, tick).await?;
        Ok(run.filter(|r| r.status == "running" && r.runner == owner))
    }

    async fn run(&self, monitor: &str, tick: i64) -> Result<Option<MonitorRun>, ToolError> {
        let row = sqlx::query(RUN_COLUMNS_WHERE_TICK)
            .bind(monitor)
            .bind(tick)
            .fetch_optional(&self.db)
            .await
            .map_err(db_error)?;
        row.map(|r| run_of(&r)).transpose()
    }

    /// Records what a run did so far (the issue it opened, the notification), so a takeover
    /// does not do it again.
    pub async fn note_progress(
        &self,
        monitor: &str,
        tick: i64,
        o: &Outcome,
    ) -> Result<(), ToolError> {
        sqlx::query(
            "UPDATE monitor_runs SET verdict = $1, check_id = $2, drifted_features = $3, issue_number = $4, execution_id = $5, notified = $6 WHERE monitor = $7 AND scheduled_for = $8",
        )
        .bind(&o.verdict)
        .bind(&o.check_id)
        .bind(serde_json::to_string(&o.drifted_features).unwrap_or_default())
        .bind(o.issue_number)
        .bind(&o.execution_id)
        .bind(i64::from(o.notified))
        .bind(monitor)
        .bind(tick)
        .execute(&self.db)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Ends a run and schedules the monitor's next tick, releasing the lease.
    pub async fn finish(
        &self,
        monitor: &str,
        tick: i64,
        owner: &str,
        o: &Outcome,
        next: DateTime<Utc>,
    ) -> Result<(), ToolError> {
        self.note_progress(monitor, tick, o).await?;
        let mut tx = self.db.begin().await.map_err(db_error)?;
        sqlx::query(
            "UPDATE monitor_runs SET status = $1, finished_at = $2, error = $3 WHERE monitor = $4 AND scheduled_for = $5",
        )
        .bind(if o.error.is_some() { "failed" } else { "done" })
        .bind(now_text())
        .bind(&o.error)
        .bind(monitor)
        .bind(tick)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "UPDATE monitors SET next_run_at = $1, lease_owner = NULL, lease_expires_at = NULL WHERE name = $2 AND lease_owner = $3 AND next_run_at = $4",
        )
        .bind(ms(next))
        .bind(monitor)
        .bind(owner)
        .bind(tick)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    /// Schedules the next tick of a monitor whose current tick already finished elsewhere.
    pub async fn advance(
        &self,
        monitor: &str,
        tick: i64,
        owner: &str,
        next: DateTime<Utc>,
    ) -> Result<(), ToolError> {
        sqlx::query(
            "UPDATE monitors SET next_run_at = $1, lease_owner = NULL, lease_expires_at = NULL WHERE name = $2 AND lease_owner = $3 AND next_run_at = $4",
        )
        .bind(ms(next))
        .bind(monitor)
        .bind(owner)
        .bind(tick)
        .execute(&self.db)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Runs per monitor and outcome (`ok`, `warn`, `drift`, `nothing_to_compare`, `failed`).
    pub async fn outcome_counts(&self) -> Result<Vec<(String, String, i64)>, ToolError> {
        let rows = sqlx::query(
            "SELECT monitor, CASE WHEN status = 'failed' THEN 'failed' ELSE COALESCE(verdict, status) END AS outcome, COUNT(*) AS n
             FROM monitor_runs WHERE status <> 'running' GROUP BY monitor, outcome",
        )
        .fetch_all(&self.db)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("monitor")?,
                    r.try_get("outcome")?,
                    r.try_get("n")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_error)
    }

    /// The latest runs of a monitor, newest first.
    pub async fn runs(&self, monitor: &str, limit: i64) -> Result<Vec<MonitorRun>, ToolError> {
        let rows = sqlx::query(RUN_COLUMNS_NEWEST)
            .bind(monitor)
            .bind(limit)
            .fetch_all(&self.db)
            .await
            .map_err(db_error)?;
        rows.iter().map(run_of).collect()
    }
}

const RUN_COLUMNS_WHERE_TICK: sqlx::AssertSqlSafe<&str> = sqlx::AssertSqlSafe(
    "SELECT monitor, scheduled_for, runner, attempts, started_at, finished_at, status, verdict, check_id, drifted_features, issue_number, execution_id, notified, error FROM monitor_runs WHERE monitor = $1 AND scheduled_for = $2",
);
const RUN_COLUMNS_NEWEST: sqlx::AssertSqlSafe<&str> = sqlx::AssertSqlSafe(
    "SELECT monitor, scheduled_for, runner, attempts, started_at, finished_at, status, verdict, check_id, drifted_features, issue_number, execution_id, notified, error FROM monitor_runs WHERE monitor = $1 ORDER BY scheduled_for DESC LIMIT $2",
);

fn monitor_of(r: &sqlx::any::AnyRow) -> Result<Monitor, ToolError> {
    let spec: String = r.try_get("spec").map_err(db_error)?;
    let paused: i64 = r.try_get("paused").map_err(db_error)?;
    let next: i64 = r.try_get("next_run_at").map_err(db_error)?;
    Ok(Monitor {
        spec: serde_json::from_str(&spec)
            .map_err(|e| ToolError::Execution(format!("a stored monitor is unreadable: {e}")))?,
        paused: paused != 0,
        next_run_at: rfc3339(next),
        created_at: r.try_get("created_at").map_err(db_error)?,
    })
}

fn run_of(r: &sqlx::any::AnyRow) -> Result<MonitorRun, ToolError> {
    let get_err = db_error;
    let tick: i64 = r.try_get("scheduled_for").map_err(get_err)?;
    let drifted: Option<String> = r.try_get("drifted_features").map_err(get_err)?;
    let attempts: i64 = r.try_get("attempts").map_err(get_err)?;
    let notified: i64 = r.try_get("notified").map_err(get_err)?;
    Ok(MonitorRun {
        monitor: r.try_get("monitor").map_err(get_err)?,
        scheduled_for: rfc3339(tick),
        status: r.try_get("status").map_err(get_err)?,
        attempts,
        runner: r.try_get("runner").map_err(get_err)?,
        started_at: r.try_get("started_at").map_err(get_err)?,
        finished_at: r.try_get("finished_at").map_err(get_err)?,
        verdict: r.try_get("verdict").map_err(get_err)?,
        check_id: r.try_get("check_id").map_err(get_err)?,
        drifted_features: drifted
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or_default(),
        issue_number: r.try_get("issue_number").map_err(get_err)?,
        execution_id: r.try_get("execution_id").map_err(get_err)?,
        notified: notified != 0,
        error: r.try_get("error").map_err(get_err)?,
    })
}
