//! The request's types: what an issue asks for ([`TrainingRequest`]) and what can be wrong with it
//! ([`Problem`]).

use std::collections::BTreeMap;
use std::fmt;

use mlops_core::metric_names;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Kind of learning task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    Classification,
    Regression,
    Clustering,
    DimensionReduction,
    Reinforcement,
}

impl TaskType {
    pub const ALL: [TaskType; 5] = [
        TaskType::Classification,
        TaskType::Regression,
        TaskType::Clustering,
        TaskType::DimensionReduction,
        TaskType::Reinforcement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Classification => "classification",
            TaskType::Regression => "regression",
            TaskType::Clustering => "clustering",
            TaskType::DimensionReduction => "dimension_reduction",
            TaskType::Reinforcement => "reinforcement",
        }
    }

    /// Algorithms of this task; the first is the default.
    pub fn algorithms(self) -> &'static [&'static str] {
        match self {
            TaskType::Classification => &["random_forest", "xgboost", "neural_network"],
            TaskType::Regression => &["linear", "xgboost", "neural_network"],
            TaskType::Clustering => &["kmeans", "dbscan", "autoencoder"],
            TaskType::DimensionReduction => &["pca", "tsne"],
            TaskType::Reinforcement => &["ppo", "dqn", "a3c"],
        }
    }

    /// Metrics of this task, by the names people use; the first is the default. The vocabulary
    /// ([`mlops_core::metric_names`]) is the one every tool shares.
    pub fn metrics(self) -> Vec<&'static str> {
        metric_names::for_task(self.as_str())
            .map(|m| m.name)
            .collect()
    }

    /// Whether a target column is needed.
    pub fn supervised(self) -> bool {
        matches!(self, TaskType::Classification | TaskType::Regression)
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a higher or a lower metric value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricGoal {
    /// Passes when metric ≥ threshold.
    Maximize,
    /// Passes when metric ≤ threshold.
    Minimize,
}

impl MetricGoal {
    /// Whether `value` meets `threshold`.
    pub fn passes(self, value: f64, threshold: f64) -> bool {
        match self {
            MetricGoal::Maximize => value >= threshold,
            MetricGoal::Minimize => value <= threshold,
        }
    }
}

/// Where to send notifications: a channel kind and an optional target (`#ml-alerts`, an address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationChannel {
    /// github, slack, email, teams or discord.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The training parameters of an issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrainingRequest {
    /// The issue title.
    pub title: String,
    /// Dataset URI or path (`s3://...`, `file://...`, or a path).
    pub dataset: String,
    /// Column to predict: required for classification and regression, optional otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_column: Option<String>,
    pub task_type: TaskType,
    /// Algorithm name as the training tools spell it (e.g. `random_forest`).
    pub algorithm: String,
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, Value>,
    /// Metric judged against the threshold (e.g. `accuracy`).
    pub metric: String,
    pub metric_goal: MetricGoal,
    pub threshold: f64,
    /// How many retries an operator may approve (default 3).
    pub max_retry: u32,
    /// Notification channels (default: a comment on the issue).
    pub notify: Vec<NotificationChannel>,
    /// Name to register the model under, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// A hyperparameter search to run before training; training then uses its best settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<TuneRequest>,
    /// Which format the parameters were found in: `yaml_block` or `key_value_lines`.
    pub source: String,
}

/// The issue's `tune:` block: a search over `search_space` (as `tune_hyperparameters` takes it)
/// whose best settings the training step uses; `hyperparameters` stay fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TuneRequest {
    /// Trials to run (default 20).
    pub n_trials: u32,
    pub search_space: BTreeMap<String, Value>,
    /// Start no new trial after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// One thing wrong with an issue, as a plain sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Problem {
    /// The field concerned (`dataset`, `threshold`, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
