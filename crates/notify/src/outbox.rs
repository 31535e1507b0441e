//! The durable outbox (sqlx `Any`: SQLite or PostgreSQL by URL, the registry's database).
//!
//! One row per (notification, channel), written before anything is sent. A worker claims due rows
//! by setting a lease (`lease_owner`, `lease_until`) in one conditional UPDATE, so two instances
//! never send the same row at once; a row whose lease expired (its worker died mid-send) is claimed
//! again. Delivery is therefore at-least-once: a crash between the send and the mark can repeat it.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Row};

use crate::NotifyError;
use crate::channel::Message;

/// Schema changes, applied in order, each once (own migrations table: `notify_migrations`).
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS notification_deliveries (
        id TEXT PRIMARY KEY,
        notification_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        template TEXT NOT NULL,
        title TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        max_attempts BIGINT NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        lease_owner TEXT,
        lease_until BIGINT,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        delivered_at TEXT
    );
    CREATE INDEX IF NOT EXISTS notification_deliveries_due ON notification_deliveries (state, next_attempt_at);
    CREATE INDEX IF NOT EXISTS notification_deliveries_by_notification ON notification_deliveries (notification_id);
    CREATE INDEX IF NOT EXISTS notification_deliveries_by_created ON notification_deliveries (created_at)",
)];

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its (next) attempt.
    Pending,
    /// Claimed by a worker, being sent.
    Sending,
    Delivered,
    /// Gave up: a permanent error, or every attempt failed.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "sending" => Self::Sending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
    /// Delivered or failed: nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Failed)
    }
}

/// One delivery (a notification on one channel) as stored.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DeliveryRecord {
    pub id: String,
    pub notification_id: String,
    pub channel: String,
    pub template: String,
    pub title: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Why the last attempt failed (never contains a secret).
    pub last_error: Option<String>,
    /// When the next attempt is due (pending rows).
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub delivered_at: Option<String>,
}

/// A delivery claimed by a worker.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub channel: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub max_attempts: i64,
    pub message: Message,
}

/// The outbox table.
#[derive(Clone)]
pub struct Outbox {
    pool: AnyPool,
}

const SELECT: &str = "SELECT id, notification_id, channel, template, title, state, attempts, max_attempts, last_error, next_attempt_at, created_at, updated_at, delivered_at FROM notification_deliveries";

impl Outbox {
    /// Connects (creating a SQLite file and its folder if needed) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, NotifyError> {
        let pool = mlops_db::connect(url).await?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool (e.g. the registry's) and applies migrations.
    pub async fn from_pool(pool: AnyPool) -> Result<Self, NotifyError> {
        let outbox = Self { pool };
        outbox.migrate().await?;
        Ok(outbox)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn migrate(&self) -> Result<(), NotifyError> {
        mlops_db::migrate(&self.pool, "notify_migrations", MIGRATIONS).await?;
        Ok(())
    }

    /// Inserts one pending delivery per (channel, message), in one transaction. Returns their ids.
    pub async fn insert(
        &self,
        notification_id: &str,
        deliveries: &[(String, Message)],
        max_attempts: u32,
    ) -> Result<Vec<String>, NotifyError> {
        let now = crate::now_text();
        let due = crate::now_millis();
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::new();
        for (channel, message) in deliveries {
            let id = format!("{notification_id}-{channel}");
            let payload = serde_json::to_string(message)
                .map_err(|e| NotifyError::Invalid(format!("cannot encode the message: {e}")))?;
            sqlx::query("INSERT INTO notification_deliveries (id, notification_id, channel, template, title, payload, state, attempts, max_attempts, next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $9, $9)")
                .bind(&id)
                .bind(notification_id)
                .bind(channel)
                .bind(&message.rendered.template)
                .bind(&message.rendered.title)
                .bind(payload)
                .bind(i64::from(max_attempts))
                .bind(due)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Claims up to `limit` due deliveries for `owner` (pending and due, or sending with an expired
    /// lease), counting the attempt. A row is claimed by one owner only.
    pub async fn claim(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<Claimed>, NotifyError> {
        let now = crate::now_millis();
        let lease_until = now + lease.as_millis() as i64;
        // The condition is repeated outside the subquery: on PostgreSQL a concurrent claimer that
        // waited for the row lock re-checks it against the committed row and skips it.
        let rows = sqlx::query(
            "UPDATE notification_deliveries
             SET state = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3
             WHERE id IN (SELECT id FROM notification_deliveries
                          WHERE (state = 'pending' AND next_attempt_at <= $4) OR (state = 'sending' AND lease_until < $4)
                          ORDER BY next_attempt_at LIMIT $5)
               AND ((state = 'pending' AND next_attempt_at <= $4) OR (state = 'sending' AND lease_until < $4))
             RETURNING id, channel, attempts, max_attempts, payload",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(crate::now_text())
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id")?;
            let payload: String = row.try_get("payload")?;
            match serde_json::from_str::<Message>(&payload) {
                Ok(message) => out.push(Claimed {
                    channel: row.try_get("channel")?,
                    attempts: row.try_get("attempts")?,
                    max_attempts: row.try_get("max_attempts")?,
                    message,
                    id,
                }),
                Err(e) => {
                    self.mark_failed(&id, owner, &format!("stored message is unreadable: {e}"))
                        .await?;
                }
            }
        }
        Ok(out)
    }

    /// Marks a claimed delivery delivered. False when the lease was lost to another worker.
    pub async fn mark_delivered(&self, id: &str, owner: &str) -> Result<bool, NotifyError> {
        self.end_claim(
            id,
            owner,
            "state = 'delivered', delivered_at = $3, updated_at = $3",
            |q| q.bind(crate::now_text()),
        )
        .await
    }

    /// Puts a claimed delivery back to pending, due after `delay`, with the failure's reason.
    pub async fn reschedule(
        &self,
        id: &str,
        owner: &str,
        delay: Duration,
        reason: &str,
    ) -> Result<bool, NotifyError> {
        let due = crate::now_millis() + delay.as_millis() as i64;
        self.end_claim(
            id,
            owner,
            "state = 'pending', next_attempt_at = $3, last_error = $4, updated_at = $5",
            |q| {
                q.bind(due)
                    .bind(mlops_core::logging::mask_str(reason))
                    .bind(crate::now_text())
            },
        )
        .await
    }

    /// Gives up on a claimed delivery, recording why.
    pub async fn mark_failed(
        &self,
        id: &str,
        owner: &str,
        reason: &str,
    ) -> Result<bool, NotifyError> {
        self.end_claim(
            id,
            owner,
            "state = 'failed', last_error = $3, updated_at = $4",
            |q| {
                q.bind(mlops_core::logging::mask_str(reason))
                    .bind(crate::now_text())
            },
        )
        .await
    }

    /// Ends `owner`'s claim on a delivery: sets `set` (the new state and what goes with it, whose
    /// values `bind` adds as `$3` on) and releases the lease, in one UPDATE that matches only while
    /// `owner` still holds the lease, so a worker that lost it cannot overwrite the new holder's
    /// outcome. False when the lease was lost.
    async fn end_claim<'q>(
        &self,
        id: &'q str,
        owner: &'q str,
        set: &str,
        bind: impl FnOnce(Query<'q, Any, AnyArguments>) -> Query<'q, Any, AnyArguments>,
    ) -> Result<bool, NotifyError> {
        let sql = format!(
            "UPDATE notification_deliveries SET {set}, lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2 AND state = 'sending'"
        );
        let r = bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(owner))
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The deliveries of one notification, by channel.
    pub async fn deliveries(
        &self,
        notification_id: &str,
    ) -> Result<Vec<DeliveryRecord>, NotifyError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE notification_id = $1 ORDER BY channel"
        )))
        .bind(notification_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// The newest deliveries, optionally in one state.
    pub async fn list(
        &self,
        state: Option<DeliveryState>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, NotifyError> {
        let rows = match state {
            Some(s) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{SELECT} WHERE state = $1 ORDER BY created_at DESC, notification_id, channel LIMIT $2"
                )))
                .bind(s.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{SELECT} ORDER BY created_at DESC, notification_id, channel LIMIT $1"
                )))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(record).collect()
    }

    /// Milliseconds until the earliest pending delivery is due (None when nothing is pending).
    pub async fn next_due_in(&self) -> Result<Option<i64>, NotifyError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM notification_deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(next.map(|t| (t - crate::now_millis()).max(0)))
    }
}

fn record(row: &AnyRow) -> Result<DeliveryRecord, NotifyError> {
    let state: String = row.try_get("state")?;
    let state = DeliveryState::parse(&state)
        .ok_or_else(|| NotifyError::Database(format!("unknown delivery state `{state}`")))?;
    let next: i64 = row.try_get("next_attempt_at")?;
    Ok(DeliveryRecord {
        id: row.try_get("id")?,
        notification_id: row.try_get("notification_id")?,
        channel: row.try_get("channel")?,
        template: row.try_get("template")?,
        title: row.try_get("title")?,
        state,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        last_error: row.try_get("last_error")?,
        next_attempt_at: (state == DeliveryState::Pending)
            .then(|| chrono::DateTime::from_timestamp_millis(next))
            .flatten()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}
