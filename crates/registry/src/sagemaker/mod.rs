//! The registry on Amazon SageMaker Model Registry (`MLOPS_REGISTRY=sagemaker`), through the signed
//! JSON 1.1 client of `mlops-aws`. How versions, stages, approvals and aliases are kept in model
//! packages and their groups is the wire format of [`codec`].
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

mod codec;
mod search;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use futures::{StreamExt, TryStreamExt};
use mlops_aws::{AwsClient, AwsConfig, AwsError, Service};
use serde_json::{Value, json};

use crate::rules::{
    alias_moves, check_approval_change, check_deletable, check_stage_change, check_unaliased,
    no_approved_before, nothing_in_production,
};
use crate::{
    Actor, ApprovalStatus, ModelVersion, NewVersion, Registry, RegistryError, Rollback,
    SearchQuery, Stage,
};
use codec::{
    Group, MAX_VERSION, Package, Summary, alias_tag_key, aliases_from_tags, approval_description,
    check_alias, check_model_name, new_package, package_arn, parse_package, parse_summary,
    to_version, with_stage,
};

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
        self.describe_arn(&group.name, &package_arn(group, version)?)
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
            out.extend(parse_summary(&group.name, &item)?);
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
        let tags = self.paged("ListTags", input, "Tags").await?;
        Ok(aliases_from_tags(&tags))
    }

    async fn version_of(&self, group: &Group, p: Package) -> Result<ModelVersion, RegistryError> {
        let aliases = self.aliases(group).await?;
        Ok(to_version(&group.name, p, &aliases))
    }

    /// Sets a package's stage and approval. The approval is always sent, with the whole metadata
    /// ([`with_stage`]): moto clears an approval left out.
    async fn update(
        &self,
        p: &Package,
        stage: Stage,
        approval: ApprovalStatus,
        why: Option<String>,
    ) -> Result<(), RegistryError> {
        let mut input = json!({
            "ModelPackageArn": p.arn,
            "ModelApprovalStatus": approval.as_str(),
            "CustomerMetadataProperties": with_stage(p, stage),
        });
        if let Some(why) = why {
            input["ApprovalDescription"] = json!(why);
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
        let (name, metadata) = new_package(v)?;
        let created = {
            // Within one process, registrations of a model go one at a time: the group is created
            // once, and moto (which numbers a version by counting the group's packages, with no
            // atomicity promised) stays exact. Across servers, SageMaker's own numbering is atomic.
            let _guard = self.lock(&name).await;
            self.ensure_group(&name).await?;
            let input = json!({
                "ModelPackageGroupName": name,
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
        let p = self.describe_arn(&name, arn).await?.ok_or_else(|| {
            RegistryError::Database(format!("SageMaker created {arn} but cannot describe it"))
        })?;
        Ok(to_version(&name, p, &BTreeMap::new()))
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
        check_stage_change(name, version, p.stage, p.approval, stage)?;
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
        check_approval_change(name, version, p.stage, p.approval, status)?;
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
        if alias_moves(name, alias, version, aliases.get(alias).copied(), reassign)? {
            // One AddTags both creates and moves an alias: AWS replaces a tag's value in place, so
            // the alias never disappears in between.
            let input = json!({
                "ResourceArn": group.arn,
                "Tags": [{ "Key": alias_tag_key(alias), "Value": version.to_string() }],
            });
            self.client.call("AddTags", input).await?;
            tracing::info!(model = name, version, alias, "model alias set");
            aliases.insert(alias.to_string(), version);
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
        let input = json!({ "ResourceArn": group.arn, "TagKeys": [alias_tag_key(alias)] });
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
            return Err(nothing_in_production(name));
        };
        let Some(previous) = summaries
            .iter()
            .find(|s| s.version < current.version && s.approval == ApprovalStatus::Approved)
        else {
            return Err(no_approved_before(name, current.version));
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
        self.search_versions(q).await
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
        check_deletable(name, version, p.stage)?;
        let targets: Vec<String> = self
            .aliases(&group)
            .await?
            .into_iter()
            .filter(|(_, v)| *v == version)
            .map(|(a, _)| a)
            .collect();
        check_unaliased(name, version, &targets)?;
        self.client
            .call("DeleteModelPackage", json!({ "ModelPackageName": p.arn }))
            .await?;
        audit(name, version, "deleted", p.stage.as_str(), "", actor);
        Ok(())
    }
}

/// The ARNs of listed packages, to describe them.
fn arns<'a>(summaries: impl IntoIterator<Item = &'a Summary>) -> Vec<String> {
    summaries.into_iter().map(|s| s.arn.clone()).collect()
}

/// A limit or offset as an index; a negative one counts as 0.
fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}
