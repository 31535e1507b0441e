//! A model's metrics history (per tree, boosting round, epoch or episode), saved beside it so
//! that reports and curves outlive the job that trained it.

use mlops_core::ModelArtifact;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The artifact blob that keeps a job's metrics history.
pub const HISTORY_BLOB: &str = "metrics_history.json";

/// One point of a metric's history (e.g. out-of-bag accuracy after 20 trees).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MetricPoint {
    pub step: usize,
    pub metric: String,
    pub value: f64,
}

/// The metrics history saved with a model (empty when it has none).
pub fn saved_history(artifact: &ModelArtifact) -> Vec<MetricPoint> {
    artifact
        .blobs
        .get(HISTORY_BLOB)
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default()
}
