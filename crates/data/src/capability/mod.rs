//! The Data Preparation tools: the capability, and the steps several tool groups share.
//!
//! Each tool group lives in its own file with its `ToolDef`, input, output and handler; this file
//! lists them (in the order clients see them) and holds what more than one group does: naming the
//! output folder, reading the `apply_to` tables, writing processed tables, writing JSON beside
//! them, and running polars work off the async runtime.

mod features;
mod load;
mod preprocess;
mod reinforcement;
mod save;
mod split;
mod validation;

use std::sync::Arc;

use mlops_core::{ArtifactRef, ArtifactStore, Capability, ToolDef};
use polars::prelude::DataFrame;
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::DataError;
use crate::io::{TableFormat, dataset_name, read_table, write_table};

/// Capability 1: Data Preparation.
pub struct DataCapability {
    store: ArtifactStore,
}

impl DataCapability {
    pub fn new(store: ArtifactStore) -> Arc<Self> {
        Arc::new(Self { store })
    }
}

impl Capability for DataCapability {
    fn name(&self) -> &'static str {
        "data_preparation"
    }

    fn tools(&self) -> Vec<ToolDef> {
        // Clients list the tools in this order, that of a workflow: look at the data, check it,
        // split it, preprocess it, engineer features, and save the result last.
        let store = &self.store;
        vec![
            load::tool(store),
            validation::tool(store),
            split::tool(store),
            preprocess::supervised_tool(store),
            preprocess::unsupervised_tool(store),
            features::tool(store),
            reinforcement::tool(store),
            save::tool(store),
        ]
    }
}

/// One processed table.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProcessedTable {
    /// The table it came from (or the split part).
    pub source: String,
    pub uri: String,
    pub rows: usize,
}

/// A table on its way through a tool that writes one output per input.
struct Labelled {
    /// The output file's stem.
    label: String,
    /// Where the rows came from, reported back as [`ProcessedTable::source`].
    source: String,
    frame: DataFrame,
}

impl Labelled {
    /// The whole table read from `r`, labelled by its file stem.
    fn of(r: &ArtifactRef, frame: DataFrame) -> Self {
        Self {
            label: stem(r),
            source: r.uri().into(),
            frame,
        }
    }
}

/// Reads the further tables a fitted step is re-applied to (`apply_to`), in order.
async fn read_labelled(store: &ArtifactStore, uris: &[String]) -> Result<Vec<Labelled>, DataError> {
    let mut tables = Vec::with_capacity(uris.len());
    for uri in uris {
        let (r, df) = read_table(store, uri).await?;
        tables.push(Labelled::of(&r, df));
    }
    Ok(tables)
}

/// Writes every table as `<folder>/<label>.<extension>`.
async fn write_labelled(
    store: &ArtifactStore,
    folder: &str,
    format: TableFormat,
    tables: Vec<Labelled>,
) -> Result<Vec<ProcessedTable>, DataError> {
    let mut outputs = Vec::with_capacity(tables.len());
    for t in tables {
        let rows = t.frame.height();
        let out = write_table(
            store,
            &format!("{folder}/{}.{}", t.label, format.extension()),
            t.frame,
            format,
        )
        .await?;
        outputs.push(ProcessedTable {
            source: t.source,
            uri: out.uri().into(),
            rows,
        });
    }
    Ok(outputs)
}

/// Writes `value` as pretty-printed JSON at `key`, for the fitted steps and summaries that travel
/// beside processed tables.
async fn put_json(
    store: &ArtifactStore,
    key: &str,
    value: &impl Serialize,
) -> Result<ArtifactRef, DataError> {
    let r = store.key(key)?;
    let json = serde_json::to_vec_pretty(value).map_err(|e| DataError::invalid(e.to_string()))?;
    store.put(&r, bytes::Bytes::from(json)).await?;
    Ok(r)
}

/// Runs CPU-bound polars work on the blocking pool, so a large table does not stall the async
/// runtime that serves other requests; `what` names the work if it is cut short.
async fn off_runtime<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> Result<T, DataError> + Send + 'static,
) -> Result<T, DataError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DataError::invalid(format!("{what} was interrupted: {e}")))?
}

/// The folder under `processed/` a tool writes to: the one asked for, or the dataset's name.
fn output_name(given: Option<String>, r: &ArtifactRef) -> Result<String, DataError> {
    let name = given.unwrap_or_else(|| dataset_name(r));
    check_output_name(&name)?;
    Ok(name)
}

/// Refuses names that would escape `processed/` or make awkward folder names.
fn check_output_name(name: &str) -> Result<(), DataError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.starts_with('.')
    {
        return Err(DataError::invalid(format!(
            "output_name `{name}` must be letters, digits, `-`, `_` or `.` (it names a folder under processed/)"
        )));
    }
    Ok(())
}

/// The file name without its extension, so an output keeps its input's name in a new format.
fn stem(r: &ArtifactRef) -> String {
    let f = r.file_name();
    f.rsplit_once('.').map(|(s, _)| s).unwrap_or(f).to_string()
}
