//! mlops-registry: Capability 5, Model Registry.
//!
//! Model versions with metrics, parameters, tags and lineage, numbered 1, 2, 3… per model name,
//! in SQL through sqlx (SQLite by default; the same queries run on PostgreSQL). Version numbers are
//! assigned inside the insert and protected by the primary key, so concurrent registrations retry
//! rather than collide.

pub mod capability;
pub mod sql;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use capability::RegistryCapability;
pub use sql::SqlRegistry;

/// Registry errors.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for RegistryError {
    fn from(e: sqlx::Error) -> Self {
        RegistryError::Database(mlops_core::logging::mask_str(&e.to_string()))
    }
}

impl From<RegistryError> for mlops_core::ToolError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(m) | RegistryError::NotFound(m) => {
                mlops_core::ToolError::Validation(m)
            }
            RegistryError::Database(m) => mlops_core::ToolError::Storage(format!("database: {m}")),
        }
    }
}

/// Where a version came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    /// The data the model was trained on.
    pub dataset_uri: Option<String>,
    pub training_job_name: Option<String>,
    /// The workflow execution that produced it.
    pub execution_id: Option<String>,
    /// The GitHub issue that asked for it.
    pub issue_number: Option<i64>,
    pub git_commit: Option<String>,
}

/// A version to register.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub name: String,
    pub artifact_uri: String,
    pub algorithm: Option<String>,
    pub task: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    pub parameters: serde_json::Value,
    pub tags: BTreeMap<String, String>,
    pub description: Option<String>,
    pub lineage: Lineage,
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub artifact_uri: String,
    pub algorithm: Option<String>,
    pub task: Option<String>,
    /// None, Staging, Production or Archived.
    pub stage: String,
    /// PendingManualApproval, Approved or Rejected.
    pub approval_status: String,
    pub metrics: BTreeMap<String, f64>,
    pub parameters: serde_json::Value,
    pub tags: BTreeMap<String, String>,
    pub description: Option<String>,
    pub lineage: Lineage,
    pub created_at: String,
}
