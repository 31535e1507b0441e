//! The Model Registry tools.

use std::collections::BTreeMap;
use std::sync::Arc;

use mlops_core::{
    Annotations, ArtifactStore, Capability, ModelArtifact, ToolContext, ToolDef, ToolError,
    ToolResponse,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Lineage, ModelVersion, NewVersion, SqlRegistry};

/// Longest model name accepted.
const MAX_NAME: usize = 128;

/// Capability 5: Model Registry.
pub struct RegistryCapability {
    registry: SqlRegistry,
    store: ArtifactStore,
}

impl RegistryCapability {
    pub fn new(registry: SqlRegistry, store: ArtifactStore) -> Arc<Self> {
        Arc::new(Self { registry, store })
    }
}

impl Capability for RegistryCapability {
    fn name(&self) -> &'static str {
        "model_registry"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let register = {
            let (reg, store) = (self.registry.clone(), self.store.clone());
            ToolDef::new(
                "register_model",
                "Register a model version",
                "Register a trained model (its `models/<training_job_name>` folder) as the next version of `model_name` (1, 2, 3…). The model is loaded and its checksums verified first. Metrics default to those recorded at training; pass evaluation metrics to record those instead. New versions start in stage None with approval PendingManualApproval.",
                Annotations::WRITES,
                move |i: RegisterModelInput, _ctx: ToolContext| {
                    let (reg, store) = (reg.clone(), store.clone());
                    async move { register_model(&reg, &store, i).await }
                },
            )
        };
        let list = {
            let reg = self.registry.clone();
            ToolDef::new(
                "list_model_versions",
                "List model versions",
                "The registered versions of a model, newest first, with stage, approval status and metrics. Paginated with `limit` and `offset`.",
                Annotations::READ_ONLY,
                move |i: ListVersionsInput, _ctx: ToolContext| {
                    let reg = reg.clone();
                    async move {
                        if !(1..=100).contains(&i.limit) || i.offset < 0 {
                            return Err(ToolError::validation(
                                "limit must be between 1 and 100 and offset at least 0",
                            ));
                        }
                        let (versions, total) =
                            reg.list_versions(&i.model_name, i.limit, i.offset).await?;
                        let next_offset = (i.offset + (versions.len() as i64) < total)
                            .then_some(i.offset + versions.len() as i64);
                        Ok(VersionList {
                            model_name: i.model_name,
                            total,
                            versions,
                            next_offset,
                        })
                    }
                },
            )
        };
        let get = {
            let reg = self.registry.clone();
            ToolDef::new(
                "get_model_version",
                "Get a model version",
                "One registered version of a model, with its artifact URI, metrics, parameters, tags and lineage.",
                Annotations::READ_ONLY,
                move |i: GetVersionInput, _ctx: ToolContext| {
                    let reg = reg.clone();
                    async move { Ok(VersionReport(reg.get(&i.model_name, i.version).await?)) }
                },
            )
        };
        vec![register, list, get]
    }
}

/// Input of `register_model`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterModelInput {
    /// The registered model's name (letters, digits, `-`, `_`, `.`).
    pub model_name: String,
    /// The trained model: `models/<training_job_name>` or its manifest.json.
    #[serde(alias = "model_s3_uri")]
    pub model_uri: String,
    /// Metrics to record (numbers only), e.g. from evaluate_classifier. Defaults to the training metrics.
    pub metrics: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub description: Option<String>,
    #[serde(default)]
    pub lineage: Lineage,
}

/// Input of `list_model_versions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListVersionsInput {
    pub model_name: String,
    /// At most this many versions (1 to 100).
    #[serde(default = "default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

fn default_limit() -> i64 {
    20
}

/// Input of `get_model_version`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetVersionInput {
    pub model_name: String,
    pub version: i64,
}

/// One version.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct VersionReport(pub ModelVersion);

impl ToolResponse for VersionReport {
    fn summary(&self) -> String {
        let v = &self.0;
        let metrics: Vec<String> = v
            .metrics
            .iter()
            .map(|(k, m)| format!("{k} {m:.4}"))
            .collect();
        format!(
            "`{}` version {} (stage {}, {}): {}; metrics: {}",
            v.name,
            v.version,
            v.stage,
            v.approval_status,
            v.artifact_uri,
            if metrics.is_empty() {
                "none".into()
            } else {
                metrics.join(", ")
            }
        )
    }
}

/// A page of versions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionList {
    pub model_name: String,
    /// How many versions the model has in all.
    pub total: i64,
    pub versions: Vec<ModelVersion>,
    /// Pass as `offset` for the next page; absent on the last page.
    pub next_offset: Option<i64>,
}

impl ToolResponse for VersionList {
    fn summary(&self) -> String {
        let lines: Vec<String> = self
            .versions
            .iter()
            .map(|v| {
                format!(
                    "v{} {} {} {}",
                    v.version, v.stage, v.approval_status, v.created_at
                )
            })
            .collect();
        format!(
            "`{}` has {} versions:\n{}",
            self.model_name,
            self.total,
            lines.join("\n")
        )
    }
}

fn check_name(name: &str) -> Result<(), ToolError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ToolError::validation(format!(
            "model_name `{name}` must be 1 to {MAX_NAME} letters, digits, `-`, `_` or `.`"
        )))
    }
}

async fn register_model(
    reg: &SqlRegistry,
    store: &ArtifactStore,
    i: RegisterModelInput,
) -> Result<VersionReport, ToolError> {
    check_name(&i.model_name)?;
    // Verifies the model exists and is intact before it is recorded.
    let artifact = ModelArtifact::load(store, &i.model_uri).await.map_err(|e| match e {
        mlops_core::StoreError::NotFound { .. } => {
            ToolError::validation(format!("no model at `{}`; pass the folder a training job wrote (models/<training_job_name>)", i.model_uri))
        }
        e => e.into(),
    })?;
    let m = &artifact.manifest;
    let metrics = match i.metrics {
        Some(metrics) => {
            if let Some((k, _)) = metrics.iter().find(|(_, v)| !v.is_finite()) {
                return Err(ToolError::validation(format!(
                    "metric `{k}` is not a finite number"
                )));
            }
            metrics
        }
        None => m
            .metrics
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut lineage = i.lineage;
    lineage
        .training_job_name
        .get_or_insert_with(|| m.name.clone());
    if lineage.dataset_uri.is_none() {
        lineage.dataset_uri = m.training_data_uri.clone();
    }
    let version = reg
        .register(NewVersion {
            name: i.model_name,
            artifact_uri: artifact
                .uri
                .clone()
                .unwrap_or_default()
                .trim_end_matches("/manifest.json")
                .to_string(),
            algorithm: Some(m.algorithm.clone()),
            task: Some(m.task.clone()),
            metrics,
            parameters: m.hyperparameters.clone(),
            tags: i.tags,
            description: i.description,
            lineage,
        })
        .await?;
    Ok(VersionReport(version))
}
