//! mlops-registry: Capability 5, Model Registry.
//!
//! Model versions with metrics, parameters, tags and lineage, numbered 1, 2, 3… per model name,
//! in SQL through sqlx (SQLite by default; the same queries run on PostgreSQL). Version numbers are
//! assigned inside the insert and protected by the primary key, so concurrent registrations retry
//! rather than collide. [`SageMakerRegistry`] keeps the same registry on Amazon SageMaker Model
//! Registry instead (`MLOPS_REGISTRY=sagemaker`).
//!
//! This file is the crate's whole public face: the [`Registry`] trait and the types it speaks,
//! its two stores ([`SqlRegistry`], [`SageMakerRegistry`]), and the MCP tools over either
//! ([`RegistryCapability`]). The modules behind it are private.

mod capability;
mod rules;
mod sagemaker;
mod sql;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use capability::RegistryCapability;
pub use sagemaker::SageMakerRegistry;
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

impl From<mlops_db::DbError> for RegistryError {
    fn from(e: mlops_db::DbError) -> Self {
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

/// Lifecycle stage of a version (MLflow's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Stage {
    None,
    Staging,
    Production,
    Archived,
}

/// Approval status of a version (SageMaker Model Registry's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApprovalStatus {
    PendingManualApproval,
    Approved,
    Rejected,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident),* }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => stringify!($v)),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $(stringify!($v) => Some(Self::$v),)* _ => None }
            }
        }
    };
}
text_enum!(Stage {
    None,
    Staging,
    Production,
    Archived
});
text_enum!(ApprovalStatus {
    PendingManualApproval,
    Approved,
    Rejected
});

/// Where a version came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    /// The data the model was trained on.
    pub dataset_uri: Option<String>,
    /// Checksum of that data, when known.
    pub dataset_sha256: Option<String>,
    pub training_job_name: Option<String>,
    /// The workflow execution that produced it.
    pub execution_id: Option<String>,
    /// The GitHub issue that asked for it.
    pub issue_number: Option<i64>,
    /// The git commit of the code that trained it.
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
    pub stage: Stage,
    pub approval_status: ApprovalStatus,
    /// Aliases pointing at this version (e.g. `champion`).
    pub aliases: Vec<String>,
    pub metrics: BTreeMap<String, f64>,
    pub parameters: serde_json::Value,
    pub tags: BTreeMap<String, String>,
    pub description: Option<String>,
    pub lineage: Lineage,
    pub created_at: String,
    pub updated_at: String,
}

/// Who changed something, and why (recorded with every stage, approval and rollback change).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub who: String,
    pub why: Option<String>,
}

/// The outcome of a rollback.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Rollback {
    /// The version that was in Production and is now Archived.
    pub from: ModelVersion,
    /// The version that is now in Production.
    pub to: ModelVersion,
}

/// How search results are ordered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SearchOrder {
    /// Newest first (the default).
    CreatedAt,
    /// By a metric, best first (highest; lowest for error metrics such as rmse or log_loss);
    /// versions without it come last.
    Metric { name: String },
}

/// A range a metric must fall in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricRange {
    pub name: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// What to search for; every filter is optional and they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Model name with `*` wildcards, e.g. `churn-*`.
    pub name_pattern: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub stage: Option<Stage>,
    pub approval_status: Option<ApprovalStatus>,
    pub metric: Option<MetricRange>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
    pub order: Option<SearchOrder>,
    pub limit: i64,
    pub offset: i64,
}

/// The registry's operations, whatever stores them.
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    /// Registers the next version of a model (1 for a new name).
    async fn register(&self, v: NewVersion) -> Result<ModelVersion, RegistryError>;
    async fn get(&self, name: &str, version: i64) -> Result<ModelVersion, RegistryError>;
    /// The newest version, or the newest in `stage`.
    async fn latest(&self, name: &str, stage: Option<Stage>)
    -> Result<ModelVersion, RegistryError>;
    async fn by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion, RegistryError>;
    /// A page of a model's versions, newest first, and how many there are in all.
    async fn list_versions(
        &self,
        name: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<ModelVersion>, i64), RegistryError>;
    /// Moves a version to a stage. Production needs an approved version; with `archive_existing`
    /// the versions now in Production are archived in the same transaction.
    async fn set_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
        actor: &Actor,
    ) -> Result<ModelVersion, RegistryError>;
    async fn set_approval(
        &self,
        name: &str,
        version: i64,
        status: ApprovalStatus,
        actor: &Actor,
    ) -> Result<ModelVersion, RegistryError>;
    /// Points an alias at a version; an alias already on another version moves only with `reassign`.
    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: i64,
        reassign: bool,
    ) -> Result<ModelVersion, RegistryError>;
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), RegistryError>;
    /// Makes the newest approved version older than the current Production one the Production
    /// version, archiving the current one, in one transaction.
    async fn rollback(&self, name: &str, actor: &Actor) -> Result<Rollback, RegistryError>;
    async fn search(&self, q: &SearchQuery) -> Result<(Vec<ModelVersion>, i64), RegistryError>;
    /// Deletes a version that is not in Production and has no alias.
    async fn delete_version(
        &self,
        name: &str,
        version: i64,
        actor: &Actor,
    ) -> Result<(), RegistryError>;
}
