//! The SageMaker wire format: how a registry version is kept in a SageMaker model package and its
//! model package group, and how it is read back from what the SageMaker API answers.
//!
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

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Actor, ApprovalStatus, Lineage, ModelVersion, NewVersion, RegistryError, Stage};

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
pub(super) const MAX_GROUP_NAME: usize = 63;
/// Package ARNs end in `/<version>` of at most 9 digits.
pub(super) const MAX_VERSION: i64 = 999_999_999;

/// What a version holds that SageMaker has no field for, stored in the package's metadata.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Stored {
    artifact_uri: String,
    algorithm: Option<String>,
    task: Option<String>,
    pub(super) metrics: BTreeMap<String, f64>,
    parameters: Value,
    pub(super) tags: BTreeMap<String, String>,
    description: Option<String>,
    lineage: Lineage,
}

/// A model package group.
pub(super) struct Group {
    pub(super) name: String,
    pub(super) arn: String,
}

/// A model package as `ListModelPackages` describes it.
pub(super) struct Summary {
    pub(super) version: i64,
    pub(super) arn: String,
    pub(super) approval: ApprovalStatus,
    pub(super) created_at: Option<DateTime<Utc>>,
}

/// A model package as `DescribeModelPackage` describes it, decoded.
pub(super) struct Package {
    pub(super) arn: String,
    pub(super) version: i64,
    pub(super) approval: ApprovalStatus,
    pub(super) stage: Stage,
    /// The metadata as read, sent back whole with every update (see [`with_stage`]).
    metadata: Map<String, Value>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) stored: Stored,
}

/// SageMaker's group name rule: 1 to 63 letters, digits and hyphens, starting and ending with a
/// letter or digit.
pub(super) fn check_model_name(name: &str) -> Result<(), RegistryError> {
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
pub(super) fn check_alias(alias: &str) -> Result<(), RegistryError> {
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

/// A version to register as its model's name and the metadata of its new package: stage None and
/// the data document. Metrics must be finite: JSON has no NaN or infinity.
pub(super) fn new_package(v: NewVersion) -> Result<(String, Map<String, Value>), RegistryError> {
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
    Ok((v.name, metadata))
}

/// The whole metadata of a package with its stage changed. The whole of it is always sent:
/// SageMaker merges metadata keys, but moto replaces the whole map, and sending it all behaves the
/// same on either.
pub(super) fn with_stage(p: &Package, stage: Stage) -> Map<String, Value> {
    let mut metadata = p.metadata.clone();
    metadata.insert(STAGE_KEY.into(), json!(stage.as_str()));
    metadata
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

/// The group's tag that holds an alias.
pub(super) fn alias_tag_key(alias: &str) -> String {
    format!("{ALIAS_PREFIX}{alias}")
}

/// Alias → version, from a group's tags (`ListTags`); other tags are left out.
pub(super) fn aliases_from_tags(tags: &[Value]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for tag in tags {
        if let (Some(key), Some(value)) = (tag["Key"].as_str(), tag["Value"].as_str())
            && let Some(alias) = key.strip_prefix(ALIAS_PREFIX)
            && let Ok(version) = value.parse()
        {
            // A later tag wins: AWS replaces a tag set again, moto appends a second one.
            out.insert(alias.to_string(), version);
        }
    }
    out
}

/// A package's ARN from its group's: `...:model-package-group/<Name>` becomes
/// `...:model-package/<name>/<version>` (SageMaker writes package ARNs in lower case).
pub(super) fn package_arn(group: &Group, version: i64) -> Result<String, RegistryError> {
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

/// A group as `ListModelPackageGroups` lists it; None for an entry without a name or ARN.
pub(super) fn parse_group(item: &Value) -> Option<Group> {
    Some(Group {
        name: item["ModelPackageGroupName"].as_str()?.to_string(),
        arn: item["ModelPackageGroupArn"].as_str()?.to_string(),
    })
}

/// A package as `ListModelPackages` lists it; None for an entry without a version or ARN.
pub(super) fn parse_summary(name: &str, item: &Value) -> Result<Option<Summary>, RegistryError> {
    let (Some(version), Some(arn)) = (
        item["ModelPackageVersion"].as_i64(),
        item["ModelPackageArn"].as_str(),
    ) else {
        return Ok(None);
    };
    Ok(Some(Summary {
        version,
        arn: arn.to_string(),
        approval: parse_approval(name, &item["ModelApprovalStatus"])?,
        created_at: timestamp(&item["CreationTime"]),
    }))
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

/// A package as `DescribeModelPackage` describes it.
pub(super) fn parse_package(name: &str, raw: &Value) -> Result<Package, RegistryError> {
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

/// The registry's version from a decoded package and its group's aliases.
pub(super) fn to_version(name: &str, p: Package, aliases: &BTreeMap<String, i64>) -> ModelVersion {
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

/// AWS JSON timestamps are seconds since the epoch, with a fraction.
fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    let seconds = value.as_f64()?;
    DateTime::from_timestamp_micros((seconds * 1e6).round() as i64)
}

/// The same text as the SQL registry's timestamps.
fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Who changed an approval and why, as SageMaker's `ApprovalDescription` takes it.
pub(super) fn approval_description(status: ApprovalStatus, actor: &Actor) -> String {
    let text = match &actor.why {
        Some(why) => format!("{} by {}: {why}", status.as_str(), actor.who),
        None => format!("{} by {}", status.as_str(), actor.who),
    };
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_APPROVAL_DESCRIPTION)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            package_arn(&group, 3).unwrap(),
            "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/3"
        );
    }
}
