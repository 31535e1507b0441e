//! Processed data and the pipeline that made it.
//!
//! A processed table lives in a folder with the `pipeline.json` that produced it. Models carry the
//! same pipeline, so given any table a model can tell whether it is raw (apply the pipeline) or was
//! processed by its own pipeline (use it as is), and refuse data processed by another pipeline.

use bytes::Bytes;
use mlops_core::{ArtifactRef, ArtifactStore, StoreError};
use polars::prelude::*;

use crate::drift::{PROFILE_FILE, ReferenceProfile};
use crate::error::DataError;
use crate::io::read_table;
use crate::pipeline::FittedPipeline;

/// The pipeline's file name inside a processed folder.
pub const PIPELINE_FILE: &str = "pipeline.json";

/// Saves a pipeline as `<folder>/pipeline.json`.
pub async fn save_pipeline(
    store: &ArtifactStore,
    folder_key: &str,
    p: &FittedPipeline,
) -> Result<ArtifactRef, DataError> {
    let r = store.key(&format!("{folder_key}/{PIPELINE_FILE}"))?;
    let json = serde_json::to_vec_pretty(p).map_err(|e| DataError::invalid(e.to_string()))?;
    store.put(&r, Bytes::from(json)).await?;
    Ok(r)
}

/// Saves a reference profile as `<folder>/profile.json` (beside the pipeline fitted on the same
/// rows).
pub async fn save_profile(
    store: &ArtifactStore,
    folder_key: &str,
    profile: &ReferenceProfile,
) -> Result<ArtifactRef, DataError> {
    let r = store.key(&format!("{folder_key}/{PROFILE_FILE}"))?;
    store.put(&r, Bytes::from(profile.to_json())).await?;
    Ok(r)
}

/// The reference profile saved in the folder of `file` (a table or a pipeline), if there is one.
pub async fn profile_beside(
    store: &ArtifactStore,
    file: &ArtifactRef,
) -> Result<Option<ReferenceProfile>, DataError> {
    let Some((folder, _)) = file.uri().rsplit_once('/') else {
        return Ok(None);
    };
    let r = store.resolve(&format!("{folder}/{PROFILE_FILE}"))?;
    if !store.exists(&r).await? {
        return Ok(None);
    }
    ReferenceProfile::from_json(&store.get(&r).await?).map(Some)
}

/// Reads a pipeline from its URI.
pub async fn load_pipeline(store: &ArtifactStore, uri: &str) -> Result<FittedPipeline, DataError> {
    let r = store.resolve(uri)?;
    let raw = store.get(&r).await?;
    serde_json::from_slice(&raw).map_err(|e| {
        StoreError::Corrupt {
            uri: r.uri().into(),
            reason: format!("not a pipeline: {e}"),
        }
        .into()
    })
}

/// The pipeline saved beside a table, if there is one.
pub async fn pipeline_beside(
    store: &ArtifactStore,
    table: &ArtifactRef,
) -> Result<Option<FittedPipeline>, DataError> {
    let Some((folder, _)) = table.uri().rsplit_once('/') else {
        return Ok(None);
    };
    let r = store.resolve(&format!("{folder}/{PIPELINE_FILE}"))?;
    if !store.exists(&r).await? {
        return Ok(None);
    }
    load_pipeline(store, r.uri()).await.map(Some)
}

/// Reads a table for a model with `pipeline`: features in the model's order, plus the target when
/// present. Raw data goes through the pipeline; data processed by the same pipeline is used as is.
pub async fn load_model_input(
    store: &ArtifactStore,
    uri: &str,
    pipeline: &FittedPipeline,
) -> Result<DataFrame, DataError> {
    let (r, df) = read_table(store, uri).await?;
    to_model_input(store, &r, df, pipeline).await
}

/// As [`load_model_input`], for a table already read from `r`.
pub async fn to_model_input(
    store: &ArtifactStore,
    r: &ArtifactRef,
    df: DataFrame,
    pipeline: &FittedPipeline,
) -> Result<DataFrame, DataError> {
    match pipeline_beside(store, r).await? {
        Some(p) if p.fingerprint() == pipeline.fingerprint() => {
            let mut names: Vec<&str> = pipeline.feature_names.iter().map(String::as_str).collect();
            if let Some(t) = pipeline
                .target
                .as_ref()
                .filter(|t| df.schema().contains(&t.name))
            {
                names.push(&t.name);
            }
            let missing: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| !df.schema().contains(n))
                .collect();
            if !missing.is_empty() {
                return Err(DataError::invalid(format!(
                    "`{}` lacks the model's feature columns: {}",
                    r.uri(),
                    missing.join(", ")
                )));
            }
            Ok(df.select(names)?)
        }
        Some(_) => Err(DataError::invalid(format!(
            "`{}` was preprocessed by a different pipeline than the model's; pass the raw data (the model applies its own pipeline) or data processed with the model's pipeline",
            r.uri()
        ))),
        None => pipeline.transform(&df),
    }
}
