//! The registry on Amazon SageMaker Model Registry (`MLOPS_REGISTRY=sagemaker`), through the signed
//! JSON 1.1 client of `mlops-aws`.
//!
//! How the registry maps onto SageMaker:
//! - A model name is a model package group, created on the model's first registration. Group names
//!   are 1 to 63 letters, digits and hyphens, so names with `_` or `.` are refused with an error.
//! - A version is a model package in the group. SageMaker numbers them (`ModelPackageVersion`)
//!   itself, per group, so servers registering at once never get the same number.
//! - The approval status is the package's `ModelApprovalStatus`.
//! - The rest lives in the package's `CustomerMetadataProperties`: `mlops:stage` holds the stage,
//!   and `mlops:data:00`, `mlops:data:01`… hold the artifact URI, algorithm, task, metrics,
//!   parameters, tags, description and lineage as one JSON document, base64-encoded and cut into
//!   pieces. Why base64: SageMaker accepts only letters, digits, spaces and `_.:/=+-@` in these
//!   values (no quotes or braces, so no raw JSON), and base64 uses only those. Why pieces:
//!   SageMaker allows at most 50 entries of at most 256 characters each, so the JSON document of a
//!   version may be at most 49 × 256 × 3/4 = 9,408 bytes; a larger one is refused at registration.
//! - An alias is a tag on the group, `mlops:alias:<alias>` = version. SageMaker allows 50 tags per
//!   resource and 128-character keys: at most 50 aliases per model, each at most 116 characters.
//!
//! What SageMaker cannot do like SQL:
//! - No transactions. Changes that touch several versions (promoting with `archive_existing`,
//!   rollback) promote the new Production version first and archive the others after, so a
//!   failure half-way leaves two versions in Production, never none; running the same call again
//!   finishes it. Changes to one model are serialized within this process; two servers changing
//!   the same model's stages at the same moment can still interleave.
//! - No history table: stage, approval, alias and delete changes are logged (tracing, shipped to
//!   CloudWatch when configured) with who and why, and an approval's reason is also kept as the
//!   package's `ApprovalDescription`.
//! - Listings carry no metadata: reading a version's stage or metrics takes a
//!   `DescribeModelPackage` each. Search, rollback and archiving describe every version of the
//!   models involved (8 at a time) and filter here; the newest version in a stage is found by
//!   describing from the newest down.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use futures::{StreamExt, TryStreamExt};
use mlops_aws::{AwsClient, AwsConfig, AwsError, Service};
use mlops_core::metric_names;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    Actor, ApprovalStatus, Lineage, MetricRange, ModelVersion, NewVersion, Registry, RegistryError,
    Rollback, SearchOrder, SearchQuery, Stage,
};

const STAGE_KEY: &str = "mlops:stage";
const DATA_PREFIX: &str = "mlops:data:";
const ALIAS_PREFIX: &str = "mlops:alias:";
/// SageMaker's limits on `CustomerMetadataProperties`: entries, and characters per value.
const MAX_METADATA_ENTRIES: usize = 50;
const MAX_METADATA_VALUE: usize = 256;
/// Every entry but the stage's may hold a piece of the data document.
const MAX_DATA_PIECES: usize = MAX_METADATA_ENTRIES - 1;
/// SageMaker's limit on tag keys, which hold the aliases.
const MAX_TAG_KEY: usize = 128;
/// SageMaker's limit on an approval description.
const MAX_APPROVAL_DESCRIPTION: usize = 1024;
/// Group names: `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`.
const MAX_GROUP_NAME: usize = 63;
/// Package ARNs end in `/<version>` of at most 9 digits.
const MAX_VERSION: i64 = 999_999_999;
/// DescribeModelPackage calls in flight at once for one read.
const DESCRIBE_CONCURRENCY: usize = 8;
/// The largest page SageMaker's list calls return.
const PAGE_SIZE: i64 = 100;

/// The model registry on SageMaker Model Registry.
pub struct SageMakerRegistry {
    client: AwsClient,
    /// One lock per existing model: changes to a model are serialized within this process, so two
    /// requests never overwrite each other's metadata, and group creation happens once.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What a version holds that SageMaker has no field for, stored in the package's metadata.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Stored {
    artifact_uri: String,
    algorithm: Option<String>,
    task: Option<String>,
    metrics: BTreeMap<String, f64>,
    parameters: Value,
    tags: BTreeMap<String, String>,
    description: Option<String>,
    lineage: Lineage,
}

/// A model package group.
struct Group {
    name: String,
    arn: String,
}

/// A model package as `ListModelPackages` describes it.
struct Summary {
    version: i64,
    arn: String,
    approval: ApprovalStatus,
    created_at: Option<DateTime<Utc>>,
}

/// A model package as `DescribeModelPackage` describes it, decoded.
struct Package {
    arn: String,
    version: i64,
    approval: ApprovalStatus,
    stage: Stage,
    /// The metadata as read, sent back whole with every update (see [`SageMakerRegistry::update`]).
    metadata: Map<String, Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    stored: Stored,
}

impl From<AwsError> for RegistryError {
    fn from(e: AwsError) -> Self {
        // AwsError's text names the operation and never holds credentials.
        let text = e.to_string();
        match e.code() {
            Some(code) if code.contains("NotFound") => RegistryError::NotFound(text),
            Some("ValidationException") => RegistryError::Invalid(text),
            Some("ResourceLimitExceeded") => RegistryError::Invalid(format!(
                "{text}; a SageMaker quota (model package groups, versions or tags) is reached"
            )),
            Some("ConflictException") => RegistryError::Database(format!(
                "{text}; another change to the same model was in progress, try again"
            )),
            _ => RegistryError::Database(text),
        }
    }
}

/// True when SageMaker says the thing asked for does not exist (it answers ValidationException
/// "... does not exist" for unknown groups and packages, ResourceNotFound for some other calls).
fn is_missing(e: &AwsError) -> bool {
    match e {
        AwsError::Service { code, message, .. } => {
            let message = message.to_ascii_lowercase();
            code.contains("NotFound")
                || (code == "ValidationException"
                    && (message.contains("does not exist") || message.contains("not found")))
        }
        _ => false,
    }
}

impl SageMakerRegistry {
    /// A registry on the SageMaker endpoint of `config` (region, credentials, endpoint override).
    /// Nothing is contacted here.
    pub fn new(config: &AwsConfig) -> Self {
        Self {
            client: AwsClient::json(config, Service::SAGEMAKER, "SageMaker"),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// A registry configured from the environment (`AWS_REGION`, the credential chain,
    /// `AWS_ENDPOINT_URL[_SAGEMAKER]`; see `mlops_aws::AwsConfig::from_env`).
    pub fn from_env() -> Result<Self, RegistryError> {
        let config = AwsConfig::from_env().map_err(|e| {
            RegistryError::Invalid(format!("configuring the SageMaker registry: {e}"))
        })?;
        Ok(Self::new(&config))
    }

    /// One cheap read, so a wrong region, endpoint or credentials fail at start-up rather than at
    /// the first tool call.
    pub async fn check(&self) -> Result<(), RegistryError> {
        self.client
            .call("ListModelPackageGroups", json!({ "MaxResults": 1 }))
            .await?;
        Ok(())
    }

    async fn lock(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Every item of a paginated list call.
    async fn paged(
        &self,
        operation: &str,
        mut input: Value,
        list: &str,
    ) -> Result<Vec<Value>, RegistryError> {
        let mut out = Vec::new();
        loop {
            let mut page = self.client.call(operation, input.clone()).await?;
            if let Some(items) = page.get_mut(list).and_then(Value::as_array_mut) {
                out.append(items);
            }
            match page["NextToken"].as_str().filter(|t| !t.is_empty()) {
                Some(token) => input["NextToken"] = json!(token),
                None => return Ok(out),
            }
        }
    }

    async fn find_group(&self, name: &str) -> Result<Option<Group>, RegistryError> {
        let input = json!({ "ModelPackageGroupName": name });
        match self.client.call("DescribeModelPackageGroup", input).await {
            Ok(out) => {
                let arn = out["ModelPackageGroupArn"].as_str().ok_or_else(|| {
                    RegistryError::Database(format!(
                        "SageMaker described model package group `{name}` without its ARN"
                    ))
                })?;
                Ok(Some(Group {
                    name: name.to_string(),
                    arn: arn.to_string(),
                }))
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The model's group, or the registry's usual error for an unknown model.
    async fn group(&self, name: &str) -> Result<Group, RegistryError> {
        check_model_name(name)?;
        self.find_group(name).await?.ok_or_else(|| {
            RegistryError::NotFound(format!("no model named `{name}` is registered"))
        })
    }

    async fn ensure_group(&self, name: &str) -> Result<(), RegistryError> {
        if self.find_group(name).await?.is_some() {
            return Ok(());
        }
        let input = json!({
            "ModelPackageGroupName": name,
            "ModelPackageGroupDescription": format!("Versions of model {name}, registered by mlops-mcp"),
        });
        match self.client.call("CreateModelPackageGroup", input).await {
            Ok(_) => Ok(()),
            // Another server created it between the two calls.
            Err(AwsError::Service { message, .. })
                if message.to_ascii_lowercase().contains("already exist") =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A package's ARN from its group's: `...:model-package-group/<Name>` becomes
    /// `...:model-package/<name>/<version>` (SageMaker writes package ARNs in lower case).
    fn package_arn(group: &Group, version: i64) -> Result<String, RegistryError> {
        let (prefix, name) = group
            .arn
            .rsplit_once(":model-package-group/")
            .ok_or_else(|| {
                RegistryError::Database(format!(
                    "unexpected model package group ARN `{}`",
                    group.arn
                ))
            })?;
        Ok(format!(
            "{prefix}:model-package/{}/{version}",
            name.to_ascii_lowercase()
        ))
    }

    /// The package at `arn`, or None when it does not exist.
    async fn describe_arn(&self, name: &str, arn: &str) -> Result<Option<Package>, RegistryError> {
        match self
            .client
            .call("DescribeModelPackage", json!({ "ModelPackageName": arn }))
            .await
        {
            Ok(raw) => parse_package(name, &raw).map(Some),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn describe(
        &self,
        group: &Group,
        version: i64,
    ) -> Result<Option<Package>, RegistryError> {
        if !(1..=MAX_VERSION).contains(&version) {
            return Ok(None);
        }
        self.describe_arn(&group.name, &Self::package_arn(group, version)?)
            .await
    }

    async fn require_version(&self, group: &Group, version: i64) -> Result<Package, RegistryError> {
        self.describe(group, version).await?.ok_or_else(|| {
            RegistryError::NotFound(format!("model `{}` has no version {version}", group.name))
        })
    }

    /// Describes packages, a few at a time, keeping their order; packages deleted since they were
    /// listed are left out.
    async fn describe_all(
        &self,
        name: &str,
        arns: Vec<String>,
    ) -> Result<Vec<Package>, RegistryError> {
        let found: Vec<Option<Package>> = futures::stream::iter(arns)
            .map(|arn| async move { self.describe_arn(name, &arn).await })
            .buffered(DESCRIBE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The group's versions, newest first (optionally only those with one approval status).
    async fn summaries(
        &self,
        group: &Group,
        approval: Option<ApprovalStatus>,
    ) -> Result<Vec<Summary>, RegistryError> {
        let mut input = json!({
            "ModelPackageGroupName": group.name,
            "ModelPackageType": "Versioned",
            "MaxResults": PAGE_SIZE,
        });
        if let Some(a) = approval {
            input["ModelApprovalStatus"] = json!(a.as_str());
        }
        let mut out = Vec::new();
        for item in self
            .paged("ListModelPackages", input, "ModelPackageSummaryList")
            .await?
        {
            let (Some(version), Some(arn)) = (
                item["ModelPackageVersion"].as_i64(),
                item["ModelPackageArn"].as_str(),
            ) else {
                continue;
            };
            out.push(Summary {
                version,
                arn: arn.to_string(),
                approval: parse_approval(&group.name, &item["ModelApprovalStatus"])?,
                created_at: timestamp(&item["CreationTime"]),
            });
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.version));
        Ok(out)
    }

    /// The newest version in `stage`, describing from the newest down, a few at a time.
    async fn newest_in_stage(
        &self,
        group: &Group,
        summaries: &[Summary],
        stage: Stage,
    ) -> Result<Option<Package>, RegistryError> {
        for chunk in summaries.chunks(DESCRIBE_CONCURRENCY) {
            let packages = self.describe_all(&group.name, arns(chunk)).await?;
            if let Some(p) = packages.into_iter().find(|p| p.stage == stage) {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// Alias → version, from the group's tags.
    async fn aliases(&self, group: &Group) -> Result<BTreeMap<String, i64>, RegistryError> {
        let input = json!({ "ResourceArn": group.arn, "MaxResults": PAGE_SIZE });
        let mut out = BTreeMap::new();
        for tag in self.paged("ListTags", input, "Tags").await? {
            if let (Some(key), Some(value)) = (tag["Key"].as_str(), tag["Value"].as_str())
                && let Some(alias) = key.strip_prefix(ALIAS_PREFIX)
                && let Ok(version) = value.parse()
            {
                // A later tag wins: AWS replaces a tag set again, moto appends a second one.
                out.insert(alias.to_string(), version);
            }
        }
        Ok(out)
    }

    async fn version_of(&self, group: &Group, p: Package) -> Result<ModelVersion, RegistryError> {
        let aliases = self.aliases(group).await?;
        Ok(to_version(&group.name, p, &aliases))
    }

    /// Sets a package's stage and approval. The whole metadata and the approval are always sent:
    /// SageMaker merges metadata keys, but moto replaces the whole map and clears an approval
    /// left out, and sending both behaves the same on either.
    async fn update(
        &self,
        p: &Package,
        stage: Stage,
        approval: ApprovalStatus,
        approval_description: Option<String>,
    ) -> Result<(), RegistryError> {
        let mut metadata = p.metadata.clone();
        metadata.insert(STAGE_KEY.into(), json!(stage.as_str()));
        let mut input = json!({
            "ModelPackageArn": p.arn,
            "ModelApprovalStatus": approval.as_str(),
            "CustomerMetadataProperties": metadata,
        });
        if let Some(d) = approval_description {
            input["ApprovalDescription"] = json!(d);
        }
        self.client.call("UpdateModelPackage", input).await?;
        Ok(())
    }

    /// Archives every Production version of the group except `keep`. Called after `keep` was
    /// promoted, so the model is never without a Production version.
    async fn archive_production(
        &self,
        group: &Group,
        keep: i64,
        actor: &Actor,
    ) -> Result<(), RegistryError> {
        let summaries = self.summaries(group, None).await?;
        let others = arns(summaries.iter().filter(|s| s.version != keep));
        for p in self.describe_all(&group.name, others).await? {
            if p.stage == Stage::Production {
                self.update(&p, Stage::Archived, p.approval, None).await?;
                audit(
                    &group.name,
                    p.version,
                    "stage",
                    "Production",
                    "Archived",
                    actor,
                );
            }
        }
        Ok(())
    }
}

/// Records a change in the log: SageMaker keeps no history of metadata changes.
fn audit(name: &str, version: i64, event: &str, from: &str, to: &str, actor: &Actor) {
    tracing::info!(
        model = name,
        version,
        event,
        from,
        to,
        who = %actor.who,
        why = actor.why.as_deref().unwrap_or(""),
        "model registry change"
    );
}

#[async_trait::async_trait]
impl Registry for SageMakerRegistry {
    async fn register(&self, v: NewVersion) -> Result<ModelVersion, RegistryError> {
        check_model_name(&v.name)?;
        if let Some((metric, value)) = v.metrics.iter().find(|(_, x)| !x.is_finite()) {
            return Err(RegistryError::Invalid(format!(
                "metric `{metric}` is {value}; metrics must be finite numbers"
            )));
        }
        let stored = Stored {
            artifact_uri: v.artifact_uri,
            algorithm: v.algorithm,
            task: v.task,
            metrics: v.metrics,
            parameters: v.parameters,
            tags: v.tags,
            description: v.description,
            lineage: v.lineage,
        };
        let mut metadata = encode(&v.name, &stored)?;
        metadata.insert(STAGE_KEY.into(), json!(Stage::None.as_str()));
        let created = {
            // Within one process, registrations of a model go one at a time: the group is created
            // once, and moto (which numbers a version by counting the group's packages, with no
            // atomicity promised) stays exact. Across servers, SageMaker's own numbering is atomic.
            let _guard = self.lock(&v.name).await;
            self.ensure_group(&v.name).await?;
            let input = json!({
                "ModelPackageGroupName": v.name,
                "ModelApprovalStatus": ApprovalStatus::PendingManualApproval.as_str(),
                "CustomerMetadataProperties": metadata,
                // The client retries failed calls: the token makes a retried create one version.
                "ClientToken": uuid::Uuid::new_v4().to_string(),
            });
            self.client.call("CreateModelPackage", input).await?
        };
        let arn = created["ModelPackageArn"].as_str().ok_or_else(|| {
            RegistryError::Database("SageMaker created a model package without an ARN".into())
        })?;
        // Read back: SageMaker assigns the version number and the creation time.
        let p = self.describe_arn(&v.name, arn).await?.ok_or_else(|| {
            RegistryError::Database(format!("SageMaker created {arn} but cannot describe it"))
        })?;
        Ok(to_version(&v.name, p, &BTreeMap::new()))
    }

    async fn get(&self, name: &str, version: i64) -> Result<ModelVersion, RegistryError> {
        let group = self.group(name).await?;
        let p = self.require_version(&group, version).await?;
        self.version_of(&group, p).await
    }

    async fn latest(
        &self,
        name: &str,
        stage: Option<Stage>,
    ) -> Result<ModelVersion, RegistryError> {
        let group = self.group(name).await?;
        let found = match stage {
            Some(stage) => {
                let summaries = self.summaries(&group, None).await?;
                self.newest_in_stage(&group, &summaries, stage).await?
            }
            None => match self.summaries(&group, None).await?.first() {
                Some(s) => self.describe_arn(name, &s.arn).await?,
                None => None,
            },
        };
        match found {
            Some(p) => self.version_of(&group, p).await,
            None => Err(RegistryError::NotFound(match stage {
                Some(s) => format!("model `{name}` has no version in stage {}", s.as_str()),
                None => format!("model `{name}` has no versions"),
            })),
        }
    }

    async fn by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion, RegistryError> {
        let group = self.group(name).await?;
        let aliases = self.aliases(&group).await?;
        let Some(&version) = aliases.get(alias) else {
            return Err(RegistryError::NotFound(format!(
                "model `{name}` has no alias `{alias}`"
            )));
        };
        let p = self.describe(&group, version).await?.ok_or_else(|| {
            RegistryError::NotFound(format!(
                "alias `{alias}` of `{name}` points at version {version}, which no longer exists"
            ))
        })?;
        Ok(to_version(name, p, &aliases))
    }

    async fn list_versions(
        &self,
        name: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<ModelVersion>, i64), RegistryError> {
        let group = self.group(name).await?;
        let summaries = self.summaries(&group, None).await?;
        if summaries.is_empty() {
            return Err(RegistryError::NotFound(format!(
                "model `{name}` has no versions"
            )));
        }
        let page = arns(
            summaries
                .iter()
                .skip(to_usize(offset))
                .take(to_usize(limit)),
        );
        let packages = self.describe_all(name, page).await?;
        let aliases = self.aliases(&group).await?;
        let versions = packages
            .into_iter()
            .map(|p| to_version(name, p, &aliases))
            .collect();
        Ok((versions, summaries.len() as i64))
    }

    async fn set_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
        actor: &Actor,
    ) -> Result<ModelVersion, RegistryError> {
        let group = self.group(name).await?;
        let _guard = self.lock(name).await;
        let p = self.require_version(&group, version).await?;
        if p.stage == stage {
            return Err(RegistryError::Invalid(format!(
                "`{name}` version {version} is already in stage {}",
                stage.as_str()
            )));
        }
        if matches!(stage, Stage::Staging | Stage::Production)
            && p.approval == ApprovalStatus::Rejected
        {
            return Err(RegistryError::Invalid(format!(
                "`{name}` version {version} was rejected; a rejected version cannot move to {}",
                stage.as_str()
            )));
        }
        if stage == Stage::Production && p.approval != ApprovalStatus::Approved {
            return Err(RegistryError::Invalid(format!(
                "`{name}` version {version} is {}; approve it (set_model_approval) before moving it to Production",
                p.approval.as_str()
            )));
        }
        self.update(&p, stage, p.approval, None).await?;
        audit(
            name,
            version,
            "stage",
            p.stage.as_str(),
            stage.as_str(),
            actor,
        );
        if stage == Stage::Production && archive_existing {
            self.archive_production(&group, version, actor).await?;
        }
        let p = self.require_version(&group, version).await?;
        self.version_of(&group, p).await
    }

    async fn set_approval(
        &self,
        name: &str,
        version: i64,
        status: ApprovalStatus,
        actor: &Actor,
    ) -> Result<ModelVersion, RegistryError> {
        let group = self.group(name).await?;
        let _guard = self.lock(name).await;
        let p = self.require_version(&group, version).await?;
        if p.approval == status {
            return Err(RegistryError::Invalid(format!(
                "`{name}` version {version} is already {}",
                status.as_str()
            )));
        }
        if status == ApprovalStatus::Rejected && p.stage == Stage::Production {
            return Err(RegistryError::Invalid(format!(
                "`{name}` version {version} is in Production; roll back (rollback_model) or move it out of Production before rejecting it"
            )));
        }
        let description = approval_description(status, actor);
        self.update(&p, p.stage, status, Some(description)).await?;
        audit(
            name,
            version,
            "approval",
            p.approval.as_str(),
            status.as_str(),
            actor,
        );
        let p = self.require_version(&group, version).await?;
        self.version_of(&group, p).await
    }

    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: i64,
        reassign: bool,
    ) -> Result<ModelVersion, RegistryError> {
        check_alias(alias)?;
        let group = self.group(name).await?;
        let _guard = self.lock(name).await;
        let p = self.require_version(&group, version).await?;
        let mut aliases = self.aliases(&group).await?;
        match aliases.get(alias) {
            Some(&v) if v == version => {}
            Some(&v) if !reassign => {
                return Err(RegistryError::Invalid(format!(
                    "alias `{alias}` of `{name}` already points at version {v}; pass reassign: true to move it to version {version}"
                )));
            }
            _ => {
                // One AddTags both creates and moves an alias: AWS replaces a tag's value in place,
                // so the alias never disappears in between.
                let input = json!({
                    "ResourceArn": group.arn,
                    "Tags": [{ "Key": format!("{ALIAS_PREFIX}{alias}"), "Value": version.to_string() }],
                });
                self.client.call("AddTags", input).await?;
                tracing::info!(model = name, version, alias, "model alias set");
                aliases.insert(alias.to_string(), version);
            }
        }
        Ok(to_version(name, p, &aliases))
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), RegistryError> {
        let group = self.group(name).await?;
        let _guard = self.lock(name).await;
        if !self.aliases(&group).await?.contains_key(alias) {
            return Err(RegistryError::NotFound(format!(
                "model `{name}` has no alias `{alias}`"
            )));
        }
        let input =
            json!({ "ResourceArn": group.arn, "TagKeys": [format!("{ALIAS_PREFIX}{alias}")] });
        self.client.call("DeleteTags", input).await?;
        tracing::info!(model = name, alias, "model alias removed");
        Ok(())
    }

    /// Not one transaction on SageMaker: the earlier approved version is promoted to Production
    /// first, and only then is the current one archived. A failure in between leaves both in
    /// Production (serving keeps a valid, approved version); calling rollback again finishes it.
    async fn rollback(&self, name: &str, actor: &Actor) -> Result<Rollback, RegistryError> {
        let group = self.group(name).await?;
        let _guard = self.lock(name).await;
        let summaries = self.summaries(&group, None).await?;
        let Some(current) = self
            .newest_in_stage(&group, &summaries, Stage::Production)
            .await?
        else {
            return Err(RegistryError::Invalid(format!(
                "`{name}` has no version in Production to roll back from"
            )));
        };
        let Some(previous) = summaries
            .iter()
            .find(|s| s.version < current.version && s.approval == ApprovalStatus::Approved)
        else {
            return Err(RegistryError::Invalid(format!(
                "`{name}` has no approved version older than Production version {}; nothing was changed",
                current.version
            )));
        };
        let previous = self.require_version(&group, previous.version).await?;
        self.update(&previous, Stage::Production, previous.approval, None)
            .await?;
        audit(
            name,
            previous.version,
            "rollback",
            &current.version.to_string(),
            &previous.version.to_string(),
            actor,
        );
        self.archive_production(&group, previous.version, actor)
            .await?;
        let aliases = self.aliases(&group).await?;
        let from = self.require_version(&group, current.version).await?;
        let to = self.require_version(&group, previous.version).await?;
        Ok(Rollback {
            from: to_version(name, from, &aliases),
            to: to_version(name, to, &aliases),
        })
    }

    async fn search(&self, q: &SearchQuery) -> Result<(Vec<ModelVersion>, i64), RegistryError> {
        let after = q.created_after.as_deref().map(parse_time).transpose()?;
        let before = q.created_before.as_deref().map(parse_time).transpose()?;
        let in_range =
            |t: DateTime<Utc>| after.is_none_or(|a| t >= a) && before.is_none_or(|b| t < b);
        let groups = self.groups_matching(q.name_pattern.as_deref()).await?;
        // Matching versions, with the index of their group.
        let mut hits: Vec<(usize, Package)> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let summaries = self.summaries(group, q.approval_status).await?;
            // The listing's creation time spares describing versions outside the date range.
            let candidates = arns(
                summaries
                    .iter()
                    .filter(|s| s.created_at.is_none_or(in_range)),
            );
            for p in self.describe_all(&group.name, candidates).await? {
                let keep = in_range(p.created_at)
                    && q.stage.is_none_or(|s| p.stage == s)
                    && q.tags.iter().all(|(k, v)| p.stored.tags.get(k) == Some(v))
                    && q.metric
                        .as_ref()
                        .is_none_or(|m| metric_in_range(&p.stored, m));
                if keep {
                    hits.push((g, p));
                }
            }
        }
        let name = |g: usize| groups[g].name.as_str();
        match &q.order {
            None | Some(SearchOrder::CreatedAt) => hits.sort_by(|(ag, a), (bg, b)| {
                b.created_at
                    .cmp(&a.created_at)
                    .then_with(|| name(*ag).cmp(name(*bg)))
                    .then_with(|| b.version.cmp(&a.version))
            }),
            Some(SearchOrder::Metric { name: metric }) => {
                let value = |p: &Package| p.stored.metrics.get(metric).copied();
                let lower_first = metric_names::lower_is_better(metric);
                hits.sort_by(|(ag, a), (bg, b)| {
                    let (x, y) = (value(a), value(b));
                    let best_first = if lower_first {
                        x.unwrap_or(0.0).total_cmp(&y.unwrap_or(0.0))
                    } else {
                        y.unwrap_or(0.0).total_cmp(&x.unwrap_or(0.0))
                    };
                    y.is_some()
                        .cmp(&x.is_some())
                        .then(best_first)
                        .then_with(|| name(*ag).cmp(name(*bg)))
                        .then_with(|| b.version.cmp(&a.version))
                })
            }
        }
        let total = hits.len() as i64;
        let mut aliases: HashMap<usize, BTreeMap<String, i64>> = HashMap::new();
        let mut page = Vec::new();
        for (g, p) in hits
            .into_iter()
            .skip(to_usize(q.offset))
            .take(to_usize(q.limit))
        {
            if let std::collections::hash_map::Entry::Vacant(e) = aliases.entry(g) {
                e.insert(self.aliases(&groups[g]).await?);
            }
            page.push(to_version(name(g), p, &aliases[&g]));
        }
        Ok((page, total))
    }

    async fn delete_version(
        &self,
        name: &str,
        version: i64,
        actor: &Actor,
    ) -> Result<(), RegistryError> {
        let group = self.group(name).await?;
        let _guard = self.lock(name).await;
        let p = self.require_version(&group, version).await?;
        if p.stage == Stage::Production {
            return Err(RegistryError::Invalid(format!(
                "`{name}` version {version} is in Production; move it to Archived (or roll back) before deleting it"
            )));
        }
        let targets: Vec<String> = self
            .aliases(&group)
            .await?
            .into_iter()
            .filter(|(_, v)| *v == version)
            .map(|(a, _)| a)
            .collect();
        if !targets.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "`{name}` version {version} is the target of alias {}; move or remove it first",
                targets.join(", ")
            )));
        }
        self.client
            .call("DeleteModelPackage", json!({ "ModelPackageName": p.arn }))
            .await?;
        audit(name, version, "deleted", p.stage.as_str(), "", actor);
        Ok(())
    }
}

impl SageMakerRegistry {
    /// The groups whose names match a `*`/`?` pattern (all groups without one). SageMaker filters
    /// by the pattern's longest literal part (`NameContains`); the pattern itself is matched here.
    async fn groups_matching(&self, pattern: Option<&str>) -> Result<Vec<Group>, RegistryError> {
        let Some(pattern) = pattern else {
            return self.list_groups(None, |_| true).await;
        };
        // A character no group name can hold: nothing matches.
        if !pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-*?".contains(c))
        {
            return Ok(Vec::new());
        }
        if !pattern.contains(['*', '?']) {
            if check_model_name(pattern).is_err() {
                return Ok(Vec::new());
            }
            return Ok(self.find_group(pattern).await?.into_iter().collect());
        }
        let literal = pattern
            .split(['*', '?'])
            .max_by_key(|s| s.len())
            .unwrap_or_default();
        if literal.len() > MAX_GROUP_NAME {
            return Ok(Vec::new());
        }
        let contains = Some(literal).filter(|l| !l.is_empty());
        self.list_groups(contains, |name| glob_match(pattern, name))
            .await
    }

    async fn list_groups(
        &self,
        name_contains: Option<&str>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<Group>, RegistryError> {
        let mut input = json!({ "MaxResults": PAGE_SIZE });
        if let Some(c) = name_contains {
            input["NameContains"] = json!(c);
        }
        let items = self
            .paged(
                "ListModelPackageGroups",
                input,
                "ModelPackageGroupSummaryList",
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|g| {
                let name = g["ModelPackageGroupName"].as_str()?;
                let arn = g["ModelPackageGroupArn"].as_str()?;
                keep(name).then(|| Group {
                    name: name.to_string(),
                    arn: arn.to_string(),
                })
            })
            .collect())
    }
}

/// SageMaker's group name rule: 1 to 63 letters, digits and hyphens, starting and ending with a
/// letter or digit.
fn check_model_name(name: &str) -> Result<(), RegistryError> {
    let ok = (1..=MAX_GROUP_NAME).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "model name `{name}` cannot be used with the SageMaker registry: model package group names are 1 to {MAX_GROUP_NAME} letters, digits and hyphens, starting and ending with a letter or digit"
        )))
    }
}

/// Aliases become tag keys: SageMaker's tag key length and characters.
fn check_alias(alias: &str) -> Result<(), RegistryError> {
    let max = MAX_TAG_KEY - ALIAS_PREFIX.len();
    let ok = (1..=max).contains(&alias.len())
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "alias `{alias}` must be 1 to {max} letters, digits, `-`, `_` or `.` (the SageMaker registry keeps aliases as tags)"
        )))
    }
}

/// The data document as metadata entries: base64, cut into pieces SageMaker accepts.
fn encode(name: &str, stored: &Stored) -> Result<Map<String, Value>, RegistryError> {
    let document = serde_json::to_vec(stored)
        .map_err(|e| RegistryError::Invalid(format!("encoding the version of `{name}`: {e}")))?;
    let text = BASE64.encode(&document);
    let max_bytes = MAX_DATA_PIECES * MAX_METADATA_VALUE / 4 * 3;
    if text.len() > MAX_DATA_PIECES * MAX_METADATA_VALUE {
        return Err(RegistryError::Invalid(format!(
            "the version of `{name}` is too large for SageMaker: its artifact URI, metrics, parameters, tags, description and lineage take {} bytes as JSON, and SageMaker's model package metadata holds at most {max_bytes}; shorten the parameters, tags or description",
            document.len()
        )));
    }
    // Base64 is ASCII, so cutting at any byte is cutting between characters.
    Ok(text
        .as_bytes()
        .chunks(MAX_METADATA_VALUE)
        .enumerate()
        .map(|(i, piece)| {
            (
                format!("{DATA_PREFIX}{i:02}"),
                json!(String::from_utf8_lossy(piece)),
            )
        })
        .collect())
}

/// The data document from metadata entries; None for a package registered by other tools.
fn decode(metadata: &Map<String, Value>) -> Result<Option<Stored>, String> {
    let mut pieces: Vec<(usize, &str)> = Vec::new();
    for (key, value) in metadata {
        if let Some(index) = key.strip_prefix(DATA_PREFIX) {
            let index = index.parse().map_err(|_| format!("bad key `{key}`"))?;
            pieces.push((index, value.as_str().unwrap_or_default()));
        }
    }
    if pieces.is_empty() {
        return Ok(None);
    }
    pieces.sort_unstable_by_key(|(i, _)| *i);
    if pieces.iter().enumerate().any(|(i, (index, _))| i != *index) {
        return Err("pieces of the data are missing".into());
    }
    let text: String = pieces.into_iter().map(|(_, piece)| piece).collect();
    let document = BASE64.decode(text).map_err(|e| e.to_string())?;
    serde_json::from_slice(&document)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn parse_approval(name: &str, value: &Value) -> Result<ApprovalStatus, RegistryError> {
    match value.as_str() {
        // SageMaker's default for a version registered without one.
        None => Ok(ApprovalStatus::PendingManualApproval),
        Some(s) => ApprovalStatus::parse(s).ok_or_else(|| {
            RegistryError::Database(format!(
                "a version of `{name}` has an unknown approval status `{s}`"
            ))
        }),
    }
}

fn parse_package(name: &str, raw: &Value) -> Result<Package, RegistryError> {
    let missing = |field: &str| {
        RegistryError::Database(format!(
            "SageMaker described a version of `{name}` without its {field}"
        ))
    };
    let arn = raw["ModelPackageArn"]
        .as_str()
        .ok_or_else(|| missing("ModelPackageArn"))?
        .to_string();
    let version = raw["ModelPackageVersion"]
        .as_i64()
        .ok_or_else(|| missing("ModelPackageVersion"))?;
    let metadata = raw["CustomerMetadataProperties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let stage = match metadata.get(STAGE_KEY).and_then(Value::as_str) {
        None => Stage::None,
        Some(s) => Stage::parse(s).ok_or_else(|| {
            RegistryError::Database(format!("{arn} has an unknown stage `{s}` in {STAGE_KEY}"))
        })?,
    };
    let stored = match decode(&metadata) {
        Ok(Some(stored)) => stored,
        // Registered by other tools (e.g. SageMaker Pipelines): what SageMaker itself knows.
        Ok(None) => Stored {
            artifact_uri: raw["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            description: raw["ModelPackageDescription"].as_str().map(str::to_string),
            ..Stored::default()
        },
        Err(e) => {
            return Err(RegistryError::Database(format!(
                "{arn} holds unreadable mlops metadata ({DATA_PREFIX}*): {e}"
            )));
        }
    };
    let created_at = timestamp(&raw["CreationTime"]).ok_or_else(|| missing("CreationTime"))?;
    Ok(Package {
        arn,
        version,
        approval: parse_approval(name, &raw["ModelApprovalStatus"])?,
        stage,
        metadata,
        created_at,
        updated_at: timestamp(&raw["LastModifiedTime"]).unwrap_or(created_at),
        stored,
    })
}

fn to_version(name: &str, p: Package, aliases: &BTreeMap<String, i64>) -> ModelVersion {
    let stored = p.stored;
    ModelVersion {
        name: name.to_string(),
        version: p.version,
        artifact_uri: stored.artifact_uri,
        algorithm: stored.algorithm,
        task: stored.task,
        stage: p.stage,
        approval_status: p.approval,
        aliases: aliases
            .iter()
            .filter(|(_, v)| **v == p.version)
            .map(|(a, _)| a.clone())
            .collect(),
        metrics: stored.metrics,
        parameters: stored.parameters,
        tags: stored.tags,
        description: stored.description,
        lineage: stored.lineage,
        created_at: format_time(p.created_at),
        updated_at: format_time(p.updated_at),
    }
}

fn metric_in_range(stored: &Stored, range: &MetricRange) -> bool {
    stored.metrics.get(&range.name).is_some_and(|v| {
        range.min.is_none_or(|min| *v >= min) && range.max.is_none_or(|max| *v <= max)
    })
}

/// AWS JSON timestamps are seconds since the epoch, with a fraction.
fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    let seconds = value.as_f64()?;
    DateTime::from_timestamp_micros((seconds * 1e6).round() as i64)
}

/// The same text as the SQL registry's timestamps.
fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A search date: RFC 3339, or a day (its midnight, UTC).
fn parse_time(text: &str) -> Result<DateTime<Utc>, RegistryError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_time(NaiveTime::MIN).and_utc())
        })
        .map_err(|_| {
            RegistryError::Invalid(format!(
                "`{text}` is not a date (use 2026-11-25 or 2026-11-25T10:00:00Z)"
            ))
        })
}

/// Who changed an approval and why, as SageMaker's `ApprovalDescription` takes it.
fn approval_description(status: ApprovalStatus, actor: &Actor) -> String {
    let text = match &actor.why {
        Some(why) => format!("{} by {}: {why}", status.as_str(), actor.who),
        None => format!("{} by {}", status.as_str(), actor.who),
    };
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_APPROVAL_DESCRIPTION)
        .collect()
}

fn arns<'a>(summaries: impl IntoIterator<Item = &'a Summary>) -> Vec<String> {
    summaries.into_iter().map(|s| s.arn.clone()).collect()
}

fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// `*` matches any run of characters, `?` one character; everything else itself, case-sensitively.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen and the text position it was tried at, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("churn-*", "churn-eu"));
        assert!(glob_match("*-eu", "churn-eu"));
        assert!(glob_match("c?urn*", "churn"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("churn-*", "xchurn-eu"));
        assert!(!glob_match("CHURN-*", "churn-eu"));
        assert!(!glob_match("a?", "a"));
    }

    #[test]
    fn model_names_and_aliases_follow_sagemaker_rules() {
        assert!(check_model_name("churn-eu-2").is_ok());
        for bad in ["", "-churn", "churn-", "fraud_x", "a.b", &"x".repeat(64)] {
            assert!(check_model_name(bad).is_err(), "{bad}");
        }
        assert!(check_alias("champion_v1.2").is_ok());
        assert!(check_alias(&"a".repeat(117)).is_err());
        assert!(check_alias("a b").is_err());
    }

    #[test]
    fn data_round_trips_through_metadata_pieces_within_limits() {
        let stored = Stored {
            artifact_uri: "s3://bucket/models/churn {weird} \"quoted\"".into(),
            parameters: json!({"text": "x".repeat(3000)}),
            ..Stored::default()
        };
        let metadata = encode("m", &stored).unwrap();
        assert!(metadata.len() > 1 && metadata.len() <= MAX_DATA_PIECES);
        for (key, value) in &metadata {
            let value = value.as_str().unwrap();
            assert!(key.len() <= MAX_TAG_KEY);
            assert!((1..=MAX_METADATA_VALUE).contains(&value.len()));
            assert!(
                value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
            );
        }
        let back = decode(&metadata).unwrap().unwrap();
        assert_eq!(back.artifact_uri, stored.artifact_uri);
        assert_eq!(back.parameters, stored.parameters);
        assert!(decode(&Map::new()).unwrap().is_none());
        let too_big = Stored {
            parameters: json!("x".repeat(9500)),
            ..Stored::default()
        };
        let err = encode("m", &too_big).unwrap_err().to_string();
        assert!(
            err.contains("too large for SageMaker") && err.contains("9408"),
            "{err}"
        );
    }

    #[test]
    fn package_arns_follow_the_group_arn() {
        let group = Group {
            name: "Churn".into(),
            arn: "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/Churn".into(),
        };
        assert_eq!(
            SageMakerRegistry::package_arn(&group, 3).unwrap(),
            "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/3"
        );
    }
}
