//! Which version of a registered model a caller means — by number, stage or alias — looked up
//! through the registry's own tool (`get_model_version`), so the capabilities that load
//! registered models (serving, monitoring) never depend on the registry's crate.

use serde_json::{Value, json};

use crate::error::ToolError;
use crate::tool::{ToolContext, ToolRouter};

/// How a registered model's version is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    Version(i64),
    Stage(String),
    Alias(String),
}

impl Selector {
    /// The version in Production: what an endpoint serves and a monitor watches unless asked
    /// otherwise.
    pub fn production() -> Self {
        Selector::Stage("Production".into())
    }

    /// One of `version`, `stage` or `alias` (Production when none is given); two are ambiguous.
    pub fn from_parts(
        version: Option<i64>,
        stage: Option<String>,
        alias: Option<String>,
    ) -> Result<Self, ToolError> {
        match (version, stage, alias) {
            (None, None, None) => Ok(Self::production()),
            (Some(v), None, None) => Ok(Selector::Version(v)),
            (None, Some(s), None) => Ok(Selector::Stage(s)),
            (None, None, Some(a)) => Ok(Selector::Alias(a)),
            _ => Err(ToolError::validation(
                "give one of version, stage or alias (they could name different versions)",
            )),
        }
    }

    /// In words, e.g. "the Production version".
    pub fn describe(&self) -> String {
        match self {
            Selector::Version(v) => format!("version {v}"),
            Selector::Stage(s) => format!("the {s} version"),
            Selector::Alias(a) => format!("alias `{a}`"),
        }
    }
}

/// A registered model version and where its files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredVersion {
    pub model_name: String,
    pub version: Option<i64>,
    /// The model folder (`file://…/models/<job>` or `s3://…`).
    pub artifact_uri: String,
}

/// Asks the registry which version `selector` names now. `purpose` completes the error
/// "cannot {purpose} {selector} of `model`: …" (e.g. "serve").
pub async fn resolve_registered(
    router: &ToolRouter,
    model_name: &str,
    selector: &Selector,
    purpose: &str,
) -> Result<RegisteredVersion, ToolError> {
    let mut args = json!({ "model_name": model_name });
    match selector {
        Selector::Version(v) => args["version"] = json!(v),
        Selector::Stage(s) => args["stage"] = json!(s),
        Selector::Alias(a) => args["alias"] = json!(a),
    }
    let found = router
        .call_quietly("get_model_version", args, ToolContext::default())
        .await
        .map_err(|e| match e {
            ToolError::Validation(m) => ToolError::Validation(format!(
                "cannot {purpose} {} of `{model_name}`: {m}",
                selector.describe()
            )),
            e => e,
        })?
        .structured;
    let artifact_uri = found
        .get("artifact_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ToolError::Execution(format!(
                "the registry's record of `{model_name}` has no artifact_uri"
            ))
        })?;
    Ok(RegisteredVersion {
        model_name: model_name.to_string(),
        version: found.get("version").and_then(Value::as_i64),
        artifact_uri: artifact_uri.to_string(),
    })
}
