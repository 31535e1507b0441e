//! Writes in transactions: the retry loop that every change runs in, and the steps that changes
//! share (locking a model, reading a version's state, moving a stage, recording an event).
//!
//! Concurrent writers are expected (several servers on one PostgreSQL, or two tasks on one SQLite
//! file): a write that loses a race is rolled back and run again, from the start, a bounded number
//! of times.

use std::time::Duration;

use sqlx::{Any, Row, Transaction};

use super::now;
use super::schema::{parse_approval, parse_stage};
use crate::{Actor, ApprovalStatus, RegistryError, Stage};

/// How often a write retries after losing a race (a version number taken, a serialization failure).
const MAX_ATTEMPTS: u32 = 30;

pub(super) type Tx = Transaction<'static, Any>;

/// Errors inside a retried transaction: SQL errors may be retried, registry errors end it.
pub(super) enum TxError {
    Sql(sqlx::Error),
    Registry(RegistryError),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        TxError::Sql(e)
    }
}

impl From<RegistryError> for TxError {
    fn from(e: RegistryError) -> Self {
        TxError::Registry(e)
    }
}

/// Runs `$body` in a transaction, retrying when a concurrent writer won a race (a version number
/// taken, a serialization failure, a busy database). Evaluates to the body's value. Its helpers are
/// named by full path so that a caller needs to import only the macro.
macro_rules! in_transaction {
    ($self:expr, $what:expr, |$tx:ident| $body:block) => {{
        let mut attempt = 0u32;
        loop {
            let mut txn = $self.pool.begin().await?;
            let result: Result<_, $crate::sql::tx::TxError> = {
                let $tx: &mut $crate::sql::tx::Tx = &mut txn;
                async { $body }.await
            };
            match $crate::sql::tx::settle(txn, result, &mut attempt, $what).await? {
                Some(value) => break value,
                None => continue,
            }
        }
    }};
}
// A `macro_rules!` is visible only below its definition; this makes it a path the registry can use.
pub(super) use in_transaction;

/// Commits a successful body; says whether a failed one should be retried.
pub(super) async fn settle<T>(
    tx: Tx,
    result: Result<T, TxError>,
    attempt: &mut u32,
    what: &str,
) -> Result<Option<T>, RegistryError> {
    // A dropped transaction only queues its ROLLBACK until the connection's next use, holding its
    // locks meanwhile; roll back explicitly so a refused change never blocks the next one.
    let error = match result {
        Ok(value) => match tx.commit().await {
            Ok(()) => return Ok(Some(value)),
            Err(e) => e,
        },
        Err(TxError::Registry(e)) => {
            tx.rollback().await?;
            return Err(e);
        }
        Err(TxError::Sql(e)) => {
            // The transaction may already be aborted; a failed rollback changes nothing here.
            let _ = tx.rollback().await;
            e
        }
    };
    if !mlops_db::is_retryable(&error) {
        return Err(error.into());
    }
    *attempt += 1;
    if *attempt >= MAX_ATTEMPTS {
        return Err(RegistryError::Database(format!(
            "{what} kept conflicting with concurrent writes: {error}"
        )));
    }
    tracing::debug!(attempt = *attempt, what, error = %error, "concurrent write; retrying");
    tokio::time::sleep(Duration::from_millis(1 << (*attempt).min(7))).await;
    Ok(None)
}

/// Takes the model's row lock first, so changes to one model's stages serialize (on PostgreSQL a
/// row lock; on SQLite the database write lock).
pub(super) async fn lock_model(tx: &mut Tx, name: &str) -> Result<(), TxError> {
    let n = sqlx::query("UPDATE registered_models SET updated_at = $1 WHERE name = $2")
        .bind(now())
        .bind(name)
        .execute(&mut **tx)
        .await?;
    if n.rows_affected() == 0 {
        return Err(
            RegistryError::NotFound(format!("no model named `{name}` is registered")).into(),
        );
    }
    Ok(())
}

/// A version's stage and approval, read inside the transaction so that the checks on them hold
/// until it commits.
pub(super) async fn current(
    tx: &mut Tx,
    name: &str,
    version: i64,
) -> Result<(Stage, ApprovalStatus), TxError> {
    let row = sqlx::query(
        "SELECT stage, approval_status FROM model_versions WHERE name = $1 AND version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("model `{name}` has no version {version}")))?;
    Ok((
        parse_stage(&row.try_get::<String, _>("stage")?)?,
        parse_approval(&row.try_get::<String, _>("approval_status")?)?,
    ))
}

/// Appends to the model's history (`model_events`): who changed what, from what to what, and why.
pub(super) async fn record(
    tx: &mut Tx,
    name: &str,
    version: i64,
    event: &str,
    from: &str,
    to: &str,
    actor: &Actor,
) -> Result<(), TxError> {
    sqlx::query("INSERT INTO model_events (name, version, event, from_value, to_value, actor, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(name)
        .bind(version)
        .bind(event)
        .bind(from)
        .bind(to)
        .bind(&actor.who)
        .bind(&actor.why)
        .bind(now())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A part of a version's state whose every change is recorded in the model's history.
#[derive(Clone, Copy)]
pub(super) enum Field {
    Stage,
    Approval,
}

impl Field {
    /// The column of `model_versions` that holds it.
    fn column(self) -> &'static str {
        match self {
            Field::Stage => "stage",
            Field::Approval => "approval_status",
        }
    }

    /// The event its changes are recorded as.
    fn event(self) -> &'static str {
        match self {
            Field::Stage => "stage",
            Field::Approval => "approval",
        }
    }
}

/// Changes a version's `field` from `from` to `to`, recording the change.
pub(super) async fn update_field(
    tx: &mut Tx,
    name: &str,
    version: i64,
    field: Field,
    from: &str,
    to: &str,
    actor: &Actor,
) -> Result<(), TxError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE model_versions SET {} = $1, updated_at = $2 WHERE name = $3 AND version = $4",
        field.column()
    )))
    .bind(to)
    .bind(now())
    .bind(name)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    record(tx, name, version, field.event(), from, to, actor).await
}

/// Moves a version to another stage, recording the move.
pub(super) async fn update_stage(
    tx: &mut Tx,
    name: &str,
    version: i64,
    from: Stage,
    to: Stage,
    actor: &Actor,
) -> Result<(), TxError> {
    let (from, to) = (from.as_str(), to.as_str());
    update_field(tx, name, version, Field::Stage, from, to, actor).await
}

/// Archives every Production version of `name` except `keep`.
pub(super) async fn archive_production(
    tx: &mut Tx,
    name: &str,
    keep: i64,
    actor: &Actor,
) -> Result<(), TxError> {
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM model_versions WHERE name = $1 AND stage = 'Production' AND version <> $2")
        .bind(name)
        .bind(keep)
        .fetch_all(&mut **tx)
        .await?;
    for v in versions {
        update_stage(tx, name, v, Stage::Production, Stage::Archived, actor).await?;
    }
    Ok(())
}
