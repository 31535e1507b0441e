//! Executions, their steps and task tokens in the database (SQLite or PostgreSQL, the registry's
//! pool). An execution is worked on by whoever holds its lease; a lease not renewed in time is
//! taken over, so a crashed server's executions are resumed by another (or by itself on restart).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::error::WorkflowError;

const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS workflow_executions (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        state TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        issue_number BIGINT,
        model_name TEXT NOT NULL,
        context TEXT NOT NULL,
        next_run_at BIGINT NOT NULL,
        lease_owner TEXT,
        lease_expires_at BIGINT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS workflow_executions_due ON workflow_executions (status, next_run_at);
    CREATE TABLE IF NOT EXISTS workflow_steps (
        execution_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        state TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        status TEXT NOT NULL,
        input TEXT,
        output TEXT,
        error TEXT,
        worker TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        PRIMARY KEY (execution_id, seq)
    );
    CREATE TABLE IF NOT EXISTS workflow_tokens (
        token TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL,
        status TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        decided_by TEXT,
        decision_comment TEXT,
        decided_at TEXT
    )",
)];

/// Milliseconds since the epoch: how the tables store due times, deadlines and leases.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Where an execution is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    /// Waiting for an operator's decision.
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Waiting => "waiting",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "waiting" => Status::Waiting,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => Status::Running,
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }
}

/// An execution row.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Execution {
    pub id: String,
    pub status: Status,
    /// The current (or last) state.
    pub state: String,
    /// Attempt number of the current state (1 is the first).
    pub attempt: i64,
    pub issue_number: Option<i64>,
    pub model_name: String,
    /// Everything the steps produced so far.
    pub context: Value,
    pub created_at: String,
    pub updated_at: String,
}

/// One attempt of one state.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Step {
    pub seq: i64,
    pub state: String,
    pub attempt: i64,
    /// started, succeeded or failed.
    pub status: String,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub worker: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// What an operator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

fn execution_of(row: &AnyRow) -> Result<Execution, WorkflowError> {
    let context: String = row.try_get("context")?;
    Ok(Execution {
        id: row.try_get("id")?,
        status: Status::parse(&row.try_get::<String, _>("status")?),
        state: row.try_get("state")?,
        attempt: row.try_get("attempt")?,
        issue_number: row.try_get("issue_number")?,
        model_name: row.try_get("model_name")?,
        context: serde_json::from_str(&context).unwrap_or(Value::Null),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn json_of(text: Option<String>) -> Option<Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

const EXECUTION_COLUMNS: &str =
    "id, status, state, attempt, issue_number, model_name, context, created_at, updated_at";

/// The workflow tables.
#[derive(Clone)]
pub struct WorkflowStore {
    pool: AnyPool,
}

impl WorkflowStore {
    /// Uses `pool` (normally the registry's) and applies the workflow migrations.
    pub async fn open(pool: AnyPool) -> Result<Self, WorkflowError> {
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), WorkflowError> {
        mlops_db::migrate(&self.pool, "workflow_migrations", MIGRATIONS).await?;
        Ok(())
    }

    pub(crate) async fn create(
        &self,
        id: &str,
        state: &str,
        issue_number: Option<i64>,
        model_name: &str,
        context: &Value,
    ) -> Result<(), WorkflowError> {
        let now = now_text();
        sqlx::query("INSERT INTO workflow_executions (id, status, state, attempt, issue_number, model_name, context, next_run_at, created_at, updated_at) VALUES ($1, 'running', $2, 1, $3, $4, $5, $6, $7, $7)")
            .bind(id)
            .bind(state)
            .bind(issue_number)
            .bind(model_name)
            .bind(context.to_string())
            .bind(now_ms())
            .bind(&now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<Execution>, WorkflowError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXECUTION_COLUMNS} FROM workflow_executions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(execution_of).transpose()
    }

    /// Newest first; optionally one status or one issue.
    pub async fn list(
        &self,
        status: Option<Status>,
        issue_number: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Execution>, i64), WorkflowError> {
        let mut filter = String::from(" WHERE 1 = 1");
        if status.is_some() {
            filter.push_str(" AND status = $3");
        }
        if issue_number.is_some() {
            filter.push_str(if status.is_some() {
                " AND issue_number = $4"
            } else {
                " AND issue_number = $3"
            });
        }
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM workflow_executions{filter} ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(offset);
        let count_sql = format!(
            "SELECT COUNT(*) FROM workflow_executions{}",
            filter.replace("$3", "$1").replace("$4", "$2")
        );
        let mut c = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
        if let Some(s) = status {
            q = q.bind(s.as_str());
            c = c.bind(s.as_str());
        }
        if let Some(n) = issue_number {
            q = q.bind(n);
            c = c.bind(n);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let total = c.fetch_one(&self.pool).await?;
        Ok((
            rows.iter().map(execution_of).collect::<Result<_, _>>()?,
            total,
        ))
    }

    pub async fn steps(&self, id: &str) -> Result<Vec<Step>, WorkflowError> {
        let rows = sqlx::query("SELECT seq, state, attempt, status, input, output, error, worker, started_at, finished_at FROM workflow_steps WHERE execution_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Step {
                    seq: r.try_get("seq")?,
                    state: r.try_get("state")?,
                    attempt: r.try_get("attempt")?,
                    status: r.try_get("status")?,
                    input: json_of(r.try_get("input")?),
                    output: json_of(r.try_get("output")?),
                    error: r.try_get("error")?,
                    worker: r.try_get("worker")?,
                    started_at: r.try_get("started_at")?,
                    finished_at: r.try_get("finished_at")?,
                })
            })
            .collect()
    }

    /// Claims up to `limit` due executions for `owner` until `lease` from now. Running ones are
    /// due at their `next_run_at`; waiting ones when their approval times out.
    pub(crate) async fn claim_due(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<String>, WorkflowError> {
        let now = now_ms();
        let candidates: Vec<String> = sqlx::query_scalar("SELECT id FROM workflow_executions WHERE status IN ('running', 'waiting') AND next_run_at <= $1 AND (lease_owner IS NULL OR lease_expires_at < $1) ORDER BY next_run_at LIMIT $2")
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut claimed = Vec::new();
        for id in candidates {
            // The same condition again: of two claimers, exactly one updates the row.
            let r = sqlx::query("UPDATE workflow_executions SET lease_owner = $1, lease_expires_at = $2 WHERE id = $3 AND status IN ('running', 'waiting') AND next_run_at <= $4 AND (lease_owner IS NULL OR lease_expires_at < $4)")
                .bind(owner)
                .bind(now + lease.as_millis() as i64)
                .bind(&id)
                .bind(now)
                .execute(&self.pool)
                .await?;
            if r.rows_affected() == 1 {
                claimed.push(id);
            }
        }
        Ok(claimed)
    }

    /// Extends `owner`'s lease; false when it was lost (taken over, or the execution ended).
    pub(crate) async fn renew(
        &self,
        id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, WorkflowError> {
        let r = sqlx::query("UPDATE workflow_executions SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3")
            .bind(now_ms() + lease.as_millis() as i64)
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub(crate) async fn release(&self, id: &str, owner: &str) -> Result<(), WorkflowError> {
        sqlx::query("UPDATE workflow_executions SET lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the start of an attempt; returns its sequence number.
    pub(crate) async fn start_step(
        &self,
        id: &str,
        state: &str,
        attempt: i64,
        input: &Value,
        worker: &str,
    ) -> Result<i64, WorkflowError> {
        for _ in 0..5 {
            let mut tx = self.pool.begin().await?;
            let seq: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM workflow_steps WHERE execution_id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let inserted = sqlx::query("INSERT INTO workflow_steps (execution_id, seq, state, attempt, status, input, worker, started_at) VALUES ($1, $2, $3, $4, 'started', $5, $6, $7)")
                .bind(id)
                .bind(seq)
                .bind(state)
                .bind(attempt)
                .bind(input.to_string())
                .bind(worker)
                .bind(now_text())
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {
                    tx.commit().await?;
                    return Ok(seq);
                }
                Err(_) => {
                    let _ = tx.rollback().await;
                }
            }
        }
        Err(WorkflowError::Database(
            "could not record a step: its sequence number kept colliding".into(),
        ))
    }

    /// Ends a step and moves the execution on, in one transaction, if `owner` still holds the
    /// lease. Returns false (and changes nothing) when the lease was lost.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn finish_step(
        &self,
        id: &str,
        owner: &str,
        seq: i64,
        outcome: Result<&Value, &str>,
        next: Transition<'_>,
    ) -> Result<bool, WorkflowError> {
        let mut tx = self.pool.begin().await?;
        let (status, output, error) = match outcome {
            Ok(v) => ("succeeded", Some(v.to_string()), None),
            Err(e) => ("failed", None, Some(e.to_string())),
        };
        let now = now_text();
        let moved = sqlx::query("UPDATE workflow_executions SET status = $1, state = $2, attempt = $3, context = $4, next_run_at = $5, updated_at = $6, lease_owner = CASE WHEN $7 THEN NULL ELSE lease_owner END, lease_expires_at = CASE WHEN $7 THEN NULL ELSE lease_expires_at END WHERE id = $8 AND lease_owner = $9 AND status <> 'cancelled'")
            .bind(next.status.as_str())
            .bind(next.state)
            .bind(next.attempt)
            .bind(next.context.to_string())
            .bind(next.run_at_ms)
            .bind(&now)
            .bind(next.release)
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() != 1 {
            let _ = tx.rollback().await;
            return Ok(false);
        }
        if seq > 0 {
            sqlx::query("UPDATE workflow_steps SET status = $1, output = $2, error = $3, finished_at = $4 WHERE execution_id = $5 AND seq = $6")
                .bind(status)
                .bind(output)
                .bind(error)
                .bind(&now)
                .bind(id)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub(crate) async fn create_token(
        &self,
        token: &str,
        id: &str,
        expires_at_ms: i64,
    ) -> Result<(), WorkflowError> {
        sqlx::query("INSERT INTO workflow_tokens (token, execution_id, status, expires_at) VALUES ($1, $2, 'pending', $3) ON CONFLICT (token) DO NOTHING")
            .bind(token)
            .bind(id)
            .bind(expires_at_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records an operator's decision on a pending, unexpired token and wakes its execution, in
    /// one transaction. Returns the execution id.
    pub async fn decide(
        &self,
        token: &str,
        decision: Decision,
        actor: &str,
        comment: Option<&str>,
        overrides: Option<&Value>,
    ) -> Result<String, WorkflowError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT execution_id, status, expires_at FROM workflow_tokens WHERE token = $1",
        )
        .bind(token)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let _ = tx.rollback().await;
            return Err(WorkflowError::Invalid(
                "no approval is waiting for that task token; check the token in the approval request".into(),
            ));
        };
        let execution_id: String = row.try_get("execution_id")?;
        let status: String = row.try_get("status")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        if status != "pending" {
            let _ = tx.rollback().await;
            return Err(WorkflowError::Invalid(format!(
                "that task token was already used ({status}); each approval request can be answered once"
            )));
        }
        if expires_at < now_ms() {
            let _ = tx.rollback().await;
            return Err(WorkflowError::Invalid(
                "that task token has expired; the execution went on to roll back".into(),
            ));
        }
        let verdict = match decision {
            Decision::Approve => "approved",
            Decision::Reject => "rejected",
        };
        let updated = sqlx::query("UPDATE workflow_tokens SET status = $1, decided_by = $2, decision_comment = $3, decided_at = $4 WHERE token = $5 AND status = 'pending'")
            .bind(verdict)
            .bind(actor)
            .bind(comment)
            .bind(now_text())
            .bind(token)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() != 1 {
            let _ = tx.rollback().await;
            return Err(WorkflowError::Invalid(
                "that task token was just answered by someone else".into(),
            ));
        }
        // The waiting execution records the decision in its context and runs again now.
        let row = sqlx::query(
            "SELECT context FROM workflow_executions WHERE id = $1 AND status = 'waiting'",
        )
        .bind(&execution_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let _ = tx.rollback().await;
            return Err(WorkflowError::Invalid(format!(
                "execution {execution_id} is no longer waiting for approval"
            )));
        };
        let mut context: Value =
            serde_json::from_str(&row.try_get::<String, _>("context")?).unwrap_or(Value::Null);
        context["decision"] = serde_json::json!({
            "decision": verdict, "by": actor, "comment": comment, "overrides": overrides
        });
        sqlx::query("UPDATE workflow_executions SET status = 'running', context = $1, next_run_at = $2, updated_at = $3 WHERE id = $4")
            .bind(context.to_string())
            .bind(now_ms())
            .bind(now_text())
            .bind(&execution_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(execution_id)
    }

    /// Marks the pending tokens of an execution expired.
    pub(crate) async fn expire_tokens(&self, id: &str) -> Result<(), WorkflowError> {
        sqlx::query("UPDATE workflow_tokens SET status = 'expired', decided_at = $1 WHERE execution_id = $2 AND status = 'pending'")
            .bind(now_text())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Cancels an unfinished execution; false when it had already ended.
    pub(crate) async fn cancel(&self, id: &str) -> Result<bool, WorkflowError> {
        let r = sqlx::query("UPDATE workflow_executions SET status = 'cancelled', updated_at = $1 WHERE id = $2 AND status IN ('running', 'waiting')")
            .bind(now_text())
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.expire_tokens(id).await?;
        Ok(r.rows_affected() == 1)
    }

    /// Whether the execution was cancelled (checked between steps).
    pub(crate) async fn is_cancelled(&self, id: &str) -> Result<bool, WorkflowError> {
        let s: Option<String> =
            sqlx::query_scalar("SELECT status FROM workflow_executions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(s.as_deref() == Some("cancelled"))
    }
}

/// Where an execution goes after a step.
pub(crate) struct Transition<'a> {
    pub status: Status,
    pub state: &'a str,
    pub attempt: i64,
    pub context: &'a Value,
    /// When it is next due (now, after a backoff, or when an approval times out).
    pub run_at_ms: i64,
    /// Give up the lease (a wait, a backoff, or the end).
    pub release: bool,
}
