//! The Model Registry tools.

use std::collections::BTreeMap;
use std::sync::Arc;

use mlops_core::metric_names;
use mlops_core::{
    Annotations, ArtifactStore, Capability, ModelArtifact, ToolDef, ToolError, ToolResponse,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    Actor, ApprovalStatus, Lineage, MetricRange, ModelVersion, NewVersion, Registry, Rollback,
    SearchOrder, SearchQuery, Stage,
};

/// Longest model name or alias accepted.
const MAX_NAME: usize = 128;
/// Most versions one page returns.
const MAX_PAGE: i64 = 100;

/// Capability 5: Model Registry.
pub struct RegistryCapability {
    registry: Arc<dyn Registry>,
    store: ArtifactStore,
}

impl RegistryCapability {
    pub fn new(registry: Arc<dyn Registry>, store: ArtifactStore) -> Arc<Self> {
        Arc::new(Self { registry, store })
    }
}

const CHANGES: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};

impl Capability for RegistryCapability {
    fn name(&self) -> &'static str {
        "model_registry"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let r = &self.registry;
        let store = self.store.clone();
        vec![
            ToolDef::with(
                r.clone(),
                "register_model",
                "Register a model version",
                "Register a trained model (its `models/<training_job_name>` folder) as the next version of `model_name` (1, 2, 3…). The model is loaded and its checksums verified first. Metrics default to those recorded at training; pass evaluation metrics to record those instead. New versions start in stage None, approval PendingManualApproval.",
                Annotations::WRITES,
                move |reg, i: RegisterModelInput, _ctx| {
                    let store = store.clone();
                    async move { register_model(reg.as_ref(), &store, i).await }
                },
            ),
            ToolDef::with(
                r.clone(),
                "get_model_version",
                "Get a model version",
                "One version of a model: by `version`, by `alias` (e.g. champion), the newest in a `stage` (e.g. Production), or the newest of all when none is given. Returns its artifact URI, stage, approval, metrics, parameters, tags and lineage.",
                Annotations::READ_ONLY,
                |reg, i: GetVersionInput, _ctx| async move {
                    check_name(&i.model_name)?;
                    let v = match (i.version, i.alias, i.stage) {
                        (Some(v), None, None) => reg.get(&i.model_name, v).await?,
                        (None, Some(a), None) => reg.by_alias(&i.model_name, &a).await?,
                        (None, None, stage) => reg.latest(&i.model_name, stage).await?,
                        _ => {
                            return Err(ToolError::validation(
                                "give at most one of version, alias and stage",
                            ));
                        }
                    };
                    Ok::<_, ToolError>(VersionReport(v))
                },
            ),
            ToolDef::with(
                r.clone(),
                "list_model_versions",
                "List model versions",
                "The registered versions of a model, newest first, with stage, approval status and metrics. Paginated: `limit` (1–100) and `offset`; the result says how many there are in all and the next offset.",
                Annotations::READ_ONLY,
                |reg, i: ListVersionsInput, _ctx| async move {
                    check_name(&i.model_name)?;
                    check_page(i.limit, i.offset)?;
                    let (versions, total) =
                        reg.list_versions(&i.model_name, i.limit, i.offset).await?;
                    Ok::<_, ToolError>(VersionPage::new(versions, total, i.offset))
                },
            ),
            ToolDef::with(
                r.clone(),
                "search_models",
                "Search model versions",
                "Find versions across models by name pattern (`*` wildcards), tags, stage, approval status, a metric range and creation date; sort by newest or by a metric. Paginated with `limit` and `offset`.",
                Annotations::READ_ONLY,
                |reg, i: SearchInput, _ctx| async move {
                    check_page(i.limit, i.offset)?;
                    // Metrics are stored under the shared vocabulary's keys (see register_model),
                    // so `f1`, `F1 score` and `f1_macro` find the same values.
                    let metric = i.metric.map(|m| MetricRange {
                        name: metric_names::storage_key(&m.name),
                        ..m
                    });
                    let order = i.order.map(|o| match o {
                        SearchOrder::Metric { name } => SearchOrder::Metric {
                            name: metric_names::storage_key(&name),
                        },
                        o => o,
                    });
                    let q = SearchQuery {
                        name_pattern: i.name_pattern,
                        tags: i.tags,
                        stage: i.stage,
                        approval_status: i.approval_status,
                        metric,
                        created_after: i.created_after,
                        created_before: i.created_before,
                        order,
                        limit: i.limit,
                        offset: i.offset,
                    };
                    if let Some(m) = &q.metric
                        && let (Some(lo), Some(hi)) = (m.min, m.max)
                        && lo > hi
                    {
                        return Err(ToolError::validation(format!(
                            "metric range for `{}` is empty: min {lo} is above max {hi}",
                            m.name
                        )));
                    }
                    let (versions, total) = reg.search(&q).await?;
                    Ok::<_, ToolError>(VersionPage::new(versions, total, i.offset))
                },
            ),
            ToolDef::with(
                r.clone(),
                "transition_model_stage",
                "Move a version to a stage",
                "Move a version to None, Staging, Production or Archived. Production needs an Approved version; by default the version now in Production is archived in the same transaction. Recorded with who and why.",
                CHANGES,
                |reg, i: StageInput, _ctx| async move {
                    check_name(&i.model_name)?;
                    let actor = actor(i.actor, i.reason);
                    Ok::<_, ToolError>(VersionReport(
                        reg.set_stage(
                            &i.model_name,
                            i.version,
                            i.stage,
                            i.archive_existing,
                            &actor,
                        )
                        .await?,
                    ))
                },
            ),
            ToolDef::with(
                r.clone(),
                "set_model_approval",
                "Approve or reject a version",
                "Set a version's approval status: Approved, Rejected or PendingManualApproval (SageMaker Model Registry's statuses). Only approved versions can go to Production or be rolled back to. Recorded with who and why.",
                CHANGES,
                |reg, i: ApprovalInput, _ctx| async move {
                    check_name(&i.model_name)?;
                    let actor = actor(i.actor, i.reason);
                    Ok::<_, ToolError>(VersionReport(
                        reg.set_approval(&i.model_name, i.version, i.approval_status, &actor)
                            .await?,
                    ))
                },
            ),
            ToolDef::with(
                r.clone(),
                "set_model_alias",
                "Set or remove an alias",
                "Point an alias (e.g. `champion`) at a version, or remove it by leaving `version` out. An alias already on another version moves only with `reassign: true`.",
                CHANGES,
                |reg, i: AliasInput, _ctx| async move {
                    check_name(&i.model_name)?;
                    check_name(&i.alias).map_err(|_| {
                        ToolError::validation(format!(
                            "alias `{}` must be letters, digits, `-`, `_` or `.`",
                            i.alias
                        ))
                    })?;
                    match i.version {
                        Some(v) => Ok::<_, ToolError>(AliasReport {
                            removed: false,
                            version: Some(
                                reg.set_alias(&i.model_name, &i.alias, v, i.reassign)
                                    .await?,
                            ),
                        }),
                        None => {
                            reg.delete_alias(&i.model_name, &i.alias).await?;
                            Ok::<_, ToolError>(AliasReport {
                                removed: true,
                                version: None,
                            })
                        }
                    }
                },
            ),
            ToolDef::with(
                r.clone(),
                "rollback_model",
                "Roll back to the previous approved version",
                "Make the newest Approved version older than the current Production version the Production one, and archive the current one, in one transaction. Fails, changing nothing, when there is no such version. Recorded with who and why.",
                Annotations {
                    read_only: false,
                    destructive: true,
                    idempotent: false,
                    open_world: false,
                },
                |reg, i: RollbackInput, _ctx| async move {
                    check_name(&i.model_name)?;
                    let actor = actor(i.actor, i.reason);
                    Ok::<_, ToolError>(RollbackReport(reg.rollback(&i.model_name, &actor).await?))
                },
            ),
            ToolDef::with(
                r.clone(),
                "delete_model_version",
                "Delete a model version",
                "Delete a version's registry record (not its artifact). Refused for a version in Production or one an alias points at; `confirm` must be true. Version numbers are never reused.",
                Annotations {
                    read_only: false,
                    destructive: true,
                    idempotent: false,
                    open_world: false,
                },
                |reg, i: DeleteInput, _ctx| async move {
                    check_name(&i.model_name)?;
                    if !i.confirm {
                        return Err(ToolError::validation(
                            "deleting a version cannot be undone; pass confirm: true",
                        ));
                    }
                    let actor = actor(i.actor, i.reason);
                    reg.delete_version(&i.model_name, i.version, &actor).await?;
                    Ok::<_, ToolError>(Deleted {
                        model_name: i.model_name,
                        version: i.version,
                    })
                },
            ),
        ]
    }
}

fn actor(who: Option<String>, why: Option<String>) -> Actor {
    Actor {
        who: who.unwrap_or_else(|| "mcp-client".into()),
        why,
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

fn check_page(limit: i64, offset: i64) -> Result<(), ToolError> {
    if !(1..=MAX_PAGE).contains(&limit) || offset < 0 {
        return Err(ToolError::validation(format!(
            "limit must be between 1 and {MAX_PAGE} and offset at least 0"
        )));
    }
    Ok(())
}

fn default_limit() -> i64 {
    20
}
fn default_true() -> bool {
    true
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

/// Input of `get_model_version`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetVersionInput {
    pub model_name: String,
    pub version: Option<i64>,
    pub alias: Option<String>,
    /// The newest version in this stage.
    pub stage: Option<Stage>,
}

/// Input of `list_model_versions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListVersionsInput {
    pub model_name: String,
    #[serde(default = "default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

/// Input of `search_models`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchInput {
    /// Model name with `*` (any run) and `?` (one character) wildcards.
    pub name_pattern: Option<String>,
    /// Every tag given must match exactly.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub stage: Option<Stage>,
    pub approval_status: Option<ApprovalStatus>,
    pub metric: Option<MetricRange>,
    /// Registered at or after this date/time (RFC 3339 or YYYY-MM-DD).
    pub created_after: Option<String>,
    /// Registered before this date/time.
    pub created_before: Option<String>,
    pub order: Option<SearchOrder>,
    #[serde(default = "default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

/// Input of `transition_model_stage`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    pub model_name: String,
    pub version: i64,
    pub stage: Stage,
    /// Archive the versions now in Production when moving this one there.
    #[serde(default = "default_true")]
    pub archive_existing: bool,
    /// Who asks (recorded).
    pub actor: Option<String>,
    /// Why (recorded).
    pub reason: Option<String>,
}

/// Input of `set_model_approval`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalInput {
    pub model_name: String,
    pub version: i64,
    pub approval_status: ApprovalStatus,
    pub actor: Option<String>,
    pub reason: Option<String>,
}

/// Input of `set_model_alias`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasInput {
    pub model_name: String,
    pub alias: String,
    /// The version to point at; leave out to remove the alias.
    pub version: Option<i64>,
    /// Move the alias if it already points at another version.
    #[serde(default)]
    pub reassign: bool,
}

/// Input of `rollback_model`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackInput {
    pub model_name: String,
    pub actor: Option<String>,
    pub reason: Option<String>,
}

/// Input of `delete_model_version`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteInput {
    pub model_name: String,
    pub version: i64,
    /// Must be true: deletion cannot be undone.
    #[serde(default)]
    pub confirm: bool,
    pub actor: Option<String>,
    pub reason: Option<String>,
}

fn describe(v: &ModelVersion) -> String {
    let metrics: Vec<String> = v
        .metrics
        .iter()
        .map(|(k, m)| format!("{k} {m:.4}"))
        .collect();
    let aliases = if v.aliases.is_empty() {
        String::new()
    } else {
        format!(", aliases {}", v.aliases.join(", "))
    };
    format!(
        "`{}` v{} ({}, {}{aliases}): {}; metrics: {}",
        v.name,
        v.version,
        v.stage.as_str(),
        v.approval_status.as_str(),
        v.artifact_uri,
        if metrics.is_empty() {
            "none".into()
        } else {
            metrics.join(", ")
        }
    )
}

/// One version.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct VersionReport(pub ModelVersion);

impl ToolResponse for VersionReport {
    fn summary(&self) -> String {
        describe(&self.0)
    }
}

/// A page of versions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionPage {
    /// How many versions match in all.
    pub total: i64,
    pub versions: Vec<ModelVersion>,
    /// Pass as `offset` for the next page; absent on the last page.
    pub next_offset: Option<i64>,
}

impl VersionPage {
    fn new(mut versions: Vec<ModelVersion>, total: i64, offset: i64) -> Self {
        mlops_core::fit_page(&mut versions);
        let end = offset + versions.len() as i64;
        Self {
            total,
            next_offset: (end < total).then_some(end),
            versions,
        }
    }
}

impl ToolResponse for VersionPage {
    fn summary(&self) -> String {
        let lines: Vec<String> = self.versions.iter().map(describe).collect();
        let more = self
            .next_offset
            .map(|o| format!("\n(more: offset {o})"))
            .unwrap_or_default();
        format!(
            "{} of {} versions:\n{}{more}",
            self.versions.len(),
            self.total,
            lines.join("\n")
        )
    }
}

/// An alias change.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AliasReport {
    pub removed: bool,
    /// The version the alias now points at.
    pub version: Option<ModelVersion>,
}

impl ToolResponse for AliasReport {
    fn summary(&self) -> String {
        match &self.version {
            Some(v) => format!("Alias set: {}", describe(v)),
            None => "Alias removed".into(),
        }
    }
}

/// A rollback's outcome.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct RollbackReport(pub Rollback);

impl ToolResponse for RollbackReport {
    fn summary(&self) -> String {
        format!(
            "Rolled `{}` back: v{} is now Production, v{} is Archived",
            self.0.to.name, self.0.to.version, self.0.from.version
        )
    }
}

/// A deleted version.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    pub model_name: String,
    pub version: i64,
}

impl ToolResponse for Deleted {
    fn summary(&self) -> String {
        format!("Deleted `{}` version {}", self.model_name, self.version)
    }
}

async fn register_model(
    reg: &dyn Registry,
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
    let metrics: BTreeMap<String, f64> = match i.metrics {
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
    // One key per metric, whatever it was called (`F1` and `f1_macro` are one metric), so
    // search_models finds it by any of its names.
    let mut stored = BTreeMap::new();
    for (name, value) in metrics {
        let key = metric_names::storage_key(&name);
        if stored.insert(key.clone(), value).is_some() {
            return Err(ToolError::validation(format!(
                "metric `{key}` is given twice (as `{name}` and under another of its names)"
            )));
        }
    }
    let metrics = stored;
    let mut lineage = i.lineage;
    lineage
        .training_job_name
        .get_or_insert_with(|| m.name.clone());
    if lineage.dataset_uri.is_none() {
        lineage.dataset_uri = m.training_data_uri.clone();
    }
    if lineage.git_commit.is_none() {
        lineage.git_commit = option_env!("MLOPS_GIT_COMMIT").map(str::to_string);
    }
    let version = reg
        .register(NewVersion {
            name: i.model_name,
            artifact_uri: artifact.folder_uri(),
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
