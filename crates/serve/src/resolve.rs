//! Which model answers: a folder given directly, or a registered model by version, stage or
//! alias, resolved through the registry's own tool ([`mlops_core::resolve_registered`]).

use mlops_core::{ToolError, ToolRouter, resolve_registered};

pub use mlops_core::Selector;

use crate::loaded::Origin;

/// Asks the registry which version `selector` names now, and where its files are.
pub async fn resolve(
    router: &ToolRouter,
    model_name: &str,
    selector: &Selector,
) -> Result<Origin, ToolError> {
    let found = resolve_registered(router, model_name, selector, "serve").await?;
    Ok(Origin {
        model_name: Some(found.model_name),
        version: found.version,
        artifact_uri: found.artifact_uri,
    })
}
