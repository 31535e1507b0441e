//! The prediction log (opt-in per model, with a sampling rate): each logged request's inputs,
//! outputs, version and time, appended in batches as Parquet under
//! `predictions/log/<model>/date=YYYY-MM-DD/part-*.parquet`. It never holds up a request: rows go
//! through a bounded queue, and a full queue or a store that cannot be written drops the rows and
//! counts them (`mlops_prediction_log_rows_total{outcome="dropped"}`). The monitoring tools read
//! this log.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mlops_core::{ArtifactStore, ToolError};
use mlops_data::{TableFormat, encode};
use polars::prelude::DataFrame;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::ServingMetrics;
use crate::table::{flatten, frame_of};

/// Requests waiting to be written; past this they are dropped and counted.
const QUEUE: usize = 10_000;
/// Rows that make a batch written at once, whatever the clock says.
const BATCH_ROWS: usize = 10_000;

const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS prediction_log_settings (
        model_name TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL,
        sample_rate DOUBLE PRECISION NOT NULL,
        updated_at TEXT NOT NULL
    )",
)];

/// Whether a model's predictions are logged, and which share of requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogSetting {
    pub enabled: bool,
    /// The share of requests logged, 0 to 1.
    pub sample_rate: f64,
}

/// One logged request.
pub struct LogEntry {
    pub model: String,
    pub version: Option<i64>,
    pub at: chrono::DateTime<chrono::Utc>,
    pub request_id: String,
    pub inputs: Vec<Map<String, Value>>,
    pub outputs: Vec<Map<String, Value>>,
}

enum Message {
    Entry(LogEntry),
    Flush(oneshot::Sender<()>),
}

/// The log's settings (shared by every server on the database) and its writer.
pub struct PredictionLog {
    db: AnyPool,
    settings: RwLock<HashMap<String, LogSetting>>,
    queue: mpsc::Sender<Message>,
    metrics: Arc<ServingMetrics>,
}

impl PredictionLog {
    /// Opens the settings table and starts the writer, which writes a batch every `flush_every`
    /// (or sooner when it fills).
    pub async fn open(
        db: AnyPool,
        store: ArtifactStore,
        metrics: Arc<ServingMetrics>,
        flush_every: Duration,
    ) -> Result<Arc<Self>, sqlx::Error> {
        mlops_db::migrate(&db, "prediction_log_migrations", MIGRATIONS).await?;
        let (queue, rx) = mpsc::channel(QUEUE);
        let log = Arc::new(Self {
            db,
            settings: RwLock::default(),
            queue,
            metrics: metrics.clone(),
        });
        log.refresh().await;
        tokio::spawn(write_batches(rx, store, metrics, flush_every));
        Ok(log)
    }

    /// The counters the log reports into (shared with the endpoint's).
    pub fn metrics(&self) -> Arc<ServingMetrics> {
        self.metrics.clone()
    }

    /// The setting of `model` (off unless set).
    pub fn setting(&self, model: &str) -> Option<LogSetting> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(model)
            .copied()
    }

    /// Turns logging of `model` on or off, for every server sharing the database.
    pub async fn set(&self, model: &str, setting: LogSetting) -> Result<(), ToolError> {
        if !(0.0..=1.0).contains(&setting.sample_rate) || setting.sample_rate.is_nan() {
            return Err(ToolError::validation(format!(
                "sample_rate must be between 0 and 1 (got {})",
                setting.sample_rate
            )));
        }
        sqlx::query(
            "INSERT INTO prediction_log_settings (model_name, enabled, sample_rate, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (model_name) DO UPDATE SET enabled = excluded.enabled, sample_rate = excluded.sample_rate, updated_at = excluded.updated_at",
        )
        .bind(model)
        .bind(i64::from(setting.enabled))
        .bind(setting.sample_rate)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&self.db)
        .await
        .map_err(|e| ToolError::Storage(format!("saving the prediction log setting: {e}")))?;
        self.settings
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(model.to_string(), setting);
        Ok(())
    }

    /// Reads the settings again (another server may have changed them).
    pub async fn refresh(&self) {
        let rows =
            sqlx::query("SELECT model_name, enabled, sample_rate FROM prediction_log_settings")
                .fetch_all(&self.db)
                .await;
        match rows {
            Ok(rows) => {
                let settings = rows
                    .iter()
                    .filter_map(|r| {
                        Some((
                            r.try_get::<String, _>("model_name").ok()?,
                            LogSetting {
                                enabled: r.try_get::<i64, _>("enabled").ok()? != 0,
                                sample_rate: r.try_get::<f64, _>("sample_rate").ok()?,
                            },
                        ))
                    })
                    .collect();
                *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
            }
            Err(e) => tracing::warn!(error = %e, "could not read the prediction log settings"),
        }
    }

    /// Logs a request if its model's setting and the sampling draw say so; never waits.
    pub fn offer(&self, entry: impl FnOnce() -> LogEntry, model: &str) {
        let Some(setting) = self.setting(model).filter(|s| s.enabled) else {
            return;
        };
        if setting.sample_rate < 1.0 && rand::random::<f64>() >= setting.sample_rate {
            return;
        }
        let entry = entry();
        let rows = entry.inputs.len() as u64;
        if self.queue.try_send(Message::Entry(entry)).is_err() {
            self.metrics.log_dropped.fetch_add(rows, Ordering::Relaxed);
        }
    }

    /// Writes what is queued now (tests, shutdown).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Message::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The writer: batches entries by model and day, and writes each batch as one Parquet part.
async fn write_batches(
    mut rx: mpsc::Receiver<Message>,
    store: ArtifactStore,
    metrics: Arc<ServingMetrics>,
    flush_every: Duration,
) {
    let mut pending: Vec<LogEntry> = Vec::new();
    let mut tick = tokio::time::interval(flush_every);
    loop {
        let done = tokio::select! {
            message = rx.recv() => match message {
                Some(Message::Entry(e)) => {
                    pending.push(e);
                    let rows: usize = pending.iter().map(|e| e.inputs.len()).sum();
                    if rows < BATCH_ROWS {
                        continue;
                    }
                    None
                }
                Some(Message::Flush(ack)) => Some(ack),
                None => {
                    write(&store, &metrics, std::mem::take(&mut pending)).await;
                    return;
                }
            },
            _ = tick.tick() => None,
        };
        write(&store, &metrics, std::mem::take(&mut pending)).await;
        if let Some(ack) = done {
            let _ = ack.send(());
        }
    }
}

async fn write(store: &ArtifactStore, metrics: &ServingMetrics, entries: Vec<LogEntry>) {
    let mut groups: HashMap<(String, String), Vec<LogEntry>> = HashMap::new();
    for e in entries {
        let day = e.at.format("%Y-%m-%d").to_string();
        groups.entry((e.model.clone(), day)).or_default().push(e);
    }
    for ((model, day), entries) in groups {
        let rows: u64 = entries.iter().map(|e| e.inputs.len() as u64).sum();
        let key = format!(
            "predictions/log/{model}/date={day}/part-{}-{}.parquet",
            chrono::Utc::now().format("%H%M%S%3f"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        match write_part(store, &key, &entries).await {
            Ok(()) => {
                metrics.log_written.fetch_add(rows, Ordering::Relaxed);
            }
            Err(e) => {
                metrics.log_dropped.fetch_add(rows, Ordering::Relaxed);
                tracing::warn!(error = %e, model = %model, rows, "could not write the prediction log; rows dropped");
            }
        }
    }
}

async fn write_part(
    store: &ArtifactStore,
    key: &str,
    entries: &[LogEntry],
) -> Result<(), ToolError> {
    let mut df = log_frame(entries)?;
    let bytes = encode(&mut df, TableFormat::Parquet)?;
    store.put(&store.key(key)?, bytes).await?;
    Ok(())
}

/// One row per logged row: `_ts_ms`, `_model_version`, `_request_id`, the input columns, then the
/// outputs as `_label`, `_proba_<class>`, `_value`, `_cluster`, `_anomaly_score`, `_anomaly`,
/// `_component_<i>` or `_action`.
pub fn log_frame(entries: &[LogEntry]) -> Result<DataFrame, ToolError> {
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    for e in entries {
        for (input, output) in e.inputs.iter().zip(&e.outputs) {
            let mut row = Map::new();
            row.insert("_ts_ms".into(), Value::from(e.at.timestamp_millis()));
            row.insert(
                "_model_version".into(),
                e.version.map_or(Value::Null, Value::from),
            );
            row.insert("_request_id".into(), Value::from(e.request_id.clone()));
            row.extend(input.iter().map(|(k, v)| (k.clone(), v.clone())));
            flatten(output, "_", &mut row);
            rows.push(row);
        }
    }
    frame_of(&rows)
}
