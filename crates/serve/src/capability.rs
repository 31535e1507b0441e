//! The Serving tools: `predict`, the batch jobs, the prediction log switch and the serving
//! status.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mlops_core::{Annotations, ArtifactStore, Capability, ToolDef, ToolError, ToolResponse};
use mlops_jobs::JobManager;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::batch;
use crate::endpoint::Endpoint;
use crate::log::LogSetting;
use crate::predict::{PredictInput, predict};
use crate::resolve::Selector;

/// Capability 7: Serving.
pub struct ServingCapability {
    shared: Shared,
}

#[derive(Clone)]
struct Shared {
    endpoint: Arc<Endpoint>,
    store: ArtifactStore,
    jobs: Arc<JobManager>,
}

impl ServingCapability {
    pub fn new(endpoint: Arc<Endpoint>, store: ArtifactStore, jobs: Arc<JobManager>) -> Arc<Self> {
        Arc::new(Self {
            shared: Shared {
                endpoint,
                store,
                jobs,
            },
        })
    }
}

impl Capability for ServingCapability {
    fn name(&self) -> &'static str {
        "serving"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let s = self.shared.clone();
        vec![
            ToolDef::with(
                s.clone(),
                "predict",
                "Predict with a model",
                "Score rows with a model: `model_name` (a registered model; its Production version unless `version`, `stage` or `alias` says otherwise) or `model_uri` (a models/<job> folder). Rows are `records` (up to 1,000 objects of the raw columns the model was trained on) or `data_uri` (a CSV/Parquet table); the model's own preprocessing pipeline is applied. Returns per row: label and class probabilities (classifiers), value (regressors), cluster (+ anomaly score and flag for autoencoders), components (PCA) or action (policies), with `passthrough_columns` copied; over 1,000 rows the result goes to predictions/<output_name>/part-00000.parquet. Names the version that answered. Example: {\"model_name\":\"churn\",\"records\":[{\"tenure\":12,\"plan\":\"pro\"}]}",
                Annotations::WRITES,
                |s, i: PredictInput, _ctx| async move { predict(&s.endpoint, &s.store, i).await },
            ),
            ToolDef::with(
                s.clone(),
                "batch_predict",
                "Predict over a large table",
                "Score a table of any size as a named job, in chunks so memory stays bounded (a table larger than MLOPS_MAX_TABLE_BYTES is fine): writes predictions/<output_name>/part-NNNNN.parquet atomically (a cancelled or failed job leaves nothing), and records rows in and out and the model version used. Same model choice and passthrough_columns as predict. Progress per chunk; `wait: false` returns at once (follow with get_batch_prediction); cancel with cancel_batch_prediction. Example: {\"model_name\":\"churn\",\"data_uri\":\"datasets/customers-2026-12.csv\",\"passthrough_columns\":[\"customer_id\"]}",
                Annotations::WRITES,
                |s, i: batch::BatchInput, ctx| async move {
                    batch::start(&s.endpoint, &s.store, &s.jobs, i, ctx).await
                },
            )
            .long_running(),
            ToolDef::with(
                s.clone(),
                "get_batch_prediction",
                "Get a batch prediction job",
                "Status, progress, rows in and out, the model version used and the output files of a batch_predict job by name.",
                Annotations::READ_ONLY,
                |s, i: batch::JobNameInput, _ctx| async move { batch::status(&s.jobs, &i.job_name).await },
            ),
            ToolDef::with(
                s.clone(),
                "cancel_batch_prediction",
                "Cancel a batch prediction job",
                "Stop a running batch_predict job by name; it ends within a chunk and leaves no output.",
                Annotations {
                    read_only: false,
                    destructive: true,
                    idempotent: true,
                    open_world: false,
                },
                |s, i: batch::JobNameInput, _ctx| async move { batch::cancel(&s.jobs, &i.job_name) },
            ),
            ToolDef::with(
                s.clone(),
                "set_prediction_logging",
                "Log a model's predictions",
                "Turn the prediction log of a registered model on or off, for every server sharing the database: each logged request's inputs, outputs, version and time are appended in batches to predictions/log/<model>/date=YYYY-MM-DD/part-*.parquet (the input of drift monitoring). `sample_rate` (0 to 1, default 1) logs that share of requests. Logging never holds up a request: when the store is full or unreachable, rows are dropped and counted.",
                Annotations::WRITES,
                |s, i: LoggingInput, _ctx| async move {
                    let setting = LogSetting {
                        enabled: i.enabled,
                        sample_rate: i.sample_rate,
                    };
                    mlops_core::check_folder_name("model_name", &i.model_name)
                        .map_err(ToolError::validation)?;
                    s.endpoint.log.set(&i.model_name, setting).await?;
                    Ok::<_, ToolError>(LoggingOutput {
                        model_name: i.model_name,
                        setting,
                    })
                },
            ),
            ToolDef::with(
                s,
                "get_serving_status",
                "What this server serves",
                "The models this server answers for (name, how chosen, the version answering now), the model cache (loaded, evicted), the prediction log settings, and the rows the log wrote and dropped.",
                Annotations::READ_ONLY,
                |s, _i: StatusInput, _ctx| async move {
                    Ok::<_, ToolError>(status(&s.endpoint))
                },
            ),
        ]
    }
}

/// Input of `set_prediction_logging`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoggingInput {
    /// The registered model.
    pub model_name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The share of requests logged, 0 to 1.
    #[serde(default = "everything")]
    pub sample_rate: f64,
}

fn yes() -> bool {
    true
}

fn everything() -> f64 {
    1.0
}

/// What `set_prediction_logging` set.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LoggingOutput {
    pub model_name: String,
    pub setting: LogSetting,
}

impl ToolResponse for LoggingOutput {
    fn summary(&self) -> String {
        if self.setting.enabled {
            format!(
                "Logging {:.0}% of the requests to `{}` under predictions/log/{}/",
                self.setting.sample_rate * 100.0,
                self.model_name,
                self.model_name
            )
        } else {
            format!("Not logging the requests to `{}`", self.model_name)
        }
    }
}

/// Input of `get_serving_status` (none).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {}

/// One served name.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ServedModel {
    pub model_name: String,
    /// `stage Production`, `alias champion` or `version 3`.
    pub chosen_by: String,
    pub version: Option<i64>,
    pub model_uri: String,
    pub prediction_log: Option<LogSetting>,
}

/// What `get_serving_status` reports.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ServingStatus {
    pub served: Vec<ServedModel>,
    pub models_loaded: usize,
    pub models_evicted: u64,
    /// Rows the prediction log wrote, and rows it dropped (a full queue, a store that failed).
    pub prediction_log_rows_written: u64,
    pub prediction_log_rows_dropped: u64,
}

impl ToolResponse for ServingStatus {
    fn summary(&self) -> String {
        if self.served.is_empty() {
            return format!(
                "No registered model served yet ({} models loaded)",
                self.models_loaded
            );
        }
        let lines: Vec<String> = self
            .served
            .iter()
            .map(|m| {
                format!(
                    "{} ({}): version {}",
                    m.model_name,
                    m.chosen_by,
                    m.version.map_or("?".into(), |v| v.to_string())
                )
            })
            .collect();
        format!(
            "Serving {}; {} models loaded, {} evicted",
            lines.join("; "),
            self.models_loaded,
            self.models_evicted
        )
    }
}

fn status(endpoint: &Endpoint) -> ServingStatus {
    let (models_loaded, models_evicted) = endpoint.cache_stats();
    ServingStatus {
        served: endpoint
            .served()
            .into_iter()
            .map(|(name, selector, origin)| ServedModel {
                prediction_log: endpoint.log.setting(&name),
                chosen_by: match selector {
                    Selector::Version(v) => format!("version {v}"),
                    Selector::Stage(s) => format!("stage {s}"),
                    Selector::Alias(a) => format!("alias {a}"),
                },
                model_name: name,
                version: origin.version,
                model_uri: origin.artifact_uri,
            })
            .collect(),
        models_loaded,
        models_evicted,
        prediction_log_rows_written: endpoint.metrics.log_written.load(Ordering::Relaxed),
        prediction_log_rows_dropped: endpoint.metrics.log_dropped.load(Ordering::Relaxed),
    }
}
