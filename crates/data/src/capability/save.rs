//! `save_processed_data`: copy a table under `processed/`, with the pipeline that made it.

use mlops_core::{Annotations, ArtifactStore, ToolDef, ToolResponse};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_output_name, stem};
use crate::error::DataError;
use crate::io::{TableFormat, read_table, write_table};
use crate::prepared::{pipeline_beside, profile_beside, save_pipeline, save_profile};

pub(super) fn tool(store: &ArtifactStore) -> ToolDef {
    ToolDef::with(
        store.clone(),
        "save_processed_data",
        "Save processed data",
        "Copy a table to `processed/<output_name>/` as CSV or Parquet (atomic; on S3 encrypted with the configured KMS key). A `pipeline.json` beside the source travels with it, so models still recognise the data as processed.",
        Annotations::WRITES,
        |s, i: SaveProcessedInput, _ctx| async move { save_processed(&s, i).await },
    )
}

/// Input of `save_processed_data`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveProcessedInput {
    /// The table to save.
    #[serde(alias = "dataset_s3_uri")]
    pub dataset_uri: String,
    /// Folder under `processed/`.
    pub output_name: String,
    /// CSV or Parquet (default parquet).
    pub format: Option<TableFormat>,
}

/// Where `save_processed_data` wrote.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SaveProcessedOutput {
    pub uri: String,
    pub rows: usize,
    pub format: TableFormat,
    /// The pipeline copied along, when the source had one.
    pub pipeline_uri: Option<String>,
}

impl ToolResponse for SaveProcessedOutput {
    fn summary(&self) -> String {
        format!("Saved {} rows to {}", self.rows, self.uri)
    }
}

async fn save_processed(
    store: &ArtifactStore,
    i: SaveProcessedInput,
) -> Result<SaveProcessedOutput, DataError> {
    check_output_name(&i.output_name)?;
    let (r, df) = read_table(store, &i.dataset_uri).await?;
    let pipeline = pipeline_beside(store, &r).await?;
    let format = i.format.unwrap_or(TableFormat::Parquet);
    let folder = format!("processed/{}", i.output_name);
    let rows = df.height();
    let out = write_table(
        store,
        &format!("{folder}/{}.{}", stem(&r), format.extension()),
        df,
        format,
    )
    .await?;
    if let Some(profile) = profile_beside(store, &r).await? {
        save_profile(store, &folder, &profile).await?;
    }
    let pipeline_uri = match pipeline {
        Some(p) => Some(save_pipeline(store, &folder, &p).await?.uri().to_string()),
        None => None,
    };
    Ok(SaveProcessedOutput {
        uri: out.uri().into(),
        rows,
        format,
        pipeline_uri,
    })
}
